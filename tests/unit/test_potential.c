/* test_potential.c - the MCMC potential: log density over the unconstrained
 * vector (with log|det J|) against a hand-written formula, and its gradient
 * against central finite differences, including a support whose bound
 * depends on another latent (Uniform(0, 1 - a)). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "potential.h"

static const char *MODEL =
    "model m(y) {\n"
    "  sample a ~ Beta(2.0, 3.0)\n"
    "  sample b ~ Uniform(0.0, 1.0 - a)\n"
    "  sample s ~ HalfNormal(2.0)\n"
    "  sample mu ~ Normal(0.0, 1.0)\n"
    "  observe y ~ Normal(mu + b, s)\n"
    "}\n";

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* log p + log|J| computed by hand */
static double reference(const double *q, double y) {
    double a = sigmoid(q[0]), b = (1 - a) * sigmoid(q[1]), s = exp(q[2]), mu = q[3];
    double lp = 0;
    lp += lgamma(5) - lgamma(2) - lgamma(3) + log(a) + 2 * log(1 - a);   /* Beta(2, 3) */
    lp += -log(1 - a);                                                  /* Uniform(0, 1 - a) */
    lp += 0.5 * log(2 / M_PI) - log(2.0) - s * s / 8;                   /* HalfNormal(2) */
    lp += -0.5 * log(2 * M_PI) - mu * mu / 2;                           /* Normal(0, 1) */
    lp += -0.5 * log(2 * M_PI) - log(s) - (y - mu - b) * (y - mu - b) / (2 * s * s);
    /* Jacobians: a = sigmoid, b = (1 - a) sigmoid, s = exp */
    lp += log(a * (1 - a)) + log((1 - a) * sigmoid(q[1]) * (1 - sigmoid(q[1]))) + q[2];
    return lp;
}

START_TEST(potential_matches_formula_and_gradient) {
    rt_vm *vm = rt_vm_new(NULL);
    ck_assert(vm && inf_register_builtins(vm) == 0);
    rt_source *src = rt_source_new("m.ppl", MODEL, strlen(MODEL));
    ck_assert_msg(rt_run_source(vm, src, false, NULL) == 0, "%s", rt_vm_errmsg(vm));
    rt_source_release(src);
    rt_record *data = rt_record_new();
    rt_record_set(data, "y", rt_tensor(bk_scalar(vm->bk, 0.7)));
    inf_potential *p;
    ck_assert(inf_potential_init(vm, (rt_func *)rt_global_get(vm, "m")->u.o, data, (rt_loc){0}, &p) == 0);
    ck_assert_int_eq(p->dim, 4);
    double q[4] = {0.3, -0.8, 0.2, 0.5}, lp, g[4];
    ck_assert(inf_potential_eval(p, q, &lp, g, NULL) == 0);
    ck_assert_msg(fabs(lp - reference(q, 0.7)) < 1e-12, "logp %.15g want %.15g", lp, reference(q, 0.7));
    for (int i = 0; i < 4; i++) {
        double h = 1e-6, qp[4], qm[4], lpp, lpm;
        memcpy(qp, q, sizeof q);
        memcpy(qm, q, sizeof q);
        qp[i] += h;
        qm[i] -= h;
        ck_assert(inf_potential_eval(p, qp, &lpp, NULL, NULL) == 0);
        ck_assert(inf_potential_eval(p, qm, &lpm, NULL, NULL) == 0);
        double fd = (lpp - lpm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dq[%d]: %.10g vs %.10g", i, g[i], fd);
    }
    inf_potential_free(p);
    rt_release(rt_obj_value(&data->h));
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("potential");
    TCase *tc = tcase_create("potential");
    tcase_add_test(tc, potential_matches_formula_and_gradient);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
