/* test_rwm.c - random-walk Metropolis: the moments of a correlated
 * Gaussian within 4 MCSE + 2% sd (diagonal and dense proposal shapes), the
 * adapted acceptance near its 0.234 target, no gradient ever requested,
 * and a model without usable gradients (floor in the density). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>
#include "mcmc_core.h"
#include "mcmc.h"
#include "vm_fixture.h"

/* x ~ N(0, S), S = [[4, 1.8], [1.8, 1]] (correlation 0.9, scales 2 and 1) */
static int grad_calls;
static int gauss2(void *ud, const double *q, double *lp, double *g) {
    (void)ud;
    const double det = 4.0 - 1.8 * 1.8, p00 = 1.0 / det, p01 = -1.8 / det, p11 = 4.0 / det;
    double a = p00 * q[0] + p01 * q[1], b = p01 * q[0] + p11 * q[1];
    *lp = -0.5 * (q[0] * a + q[1] * b);
    if (g) {
        grad_calls++;
        g[0] = -a;
        g[1] = -b;
    }
    return 0;
}

static void run(int dense) {
    mc_opts o = mc_opts_default();
    o.hmc_steps = MC_RWM;
    o.target_accept = 0.234;
    o.dense = dense;
    o.warmup = 2000;
    o.samples = 20000;
    bk_rng r;
    bk_rng_init(&r, 31 + dense, 0);
    double q0[2] = {1.0, -0.5};
    mc_chain_out out;
    char err[256];
    grad_calls = 0;
    ck_assert_int_eq(mc_run_chain(gauss2, NULL, 2, q0, &o, &r, &out, err, sizeof err), 0);
    ck_assert_int_eq(grad_calls, 0);
    int n = out.samples;
    double *col = malloc((size_t)n * sizeof *col);
    const double sd[2] = {2.0, 1.0};
    for (int j = 0; j < 2; j++) {
        double m = 0.0, v = 0.0;
        for (int i = 0; i < n; i++) m += (col[i] = out.draws[2 * i + j]);
        m /= n;
        for (int i = 0; i < n; i++) v += (col[i] - m) * (col[i] - m);
        double s = sqrt(v / (n - 1));
        double mcse = mc_mcse_mean(col, 1, n), ess = mc_ess_bulk(col, 1, n);
        ck_assert_msg(ess > 500, "dim %d: ESS %g", j, ess);
        ck_assert_msg(fabs(m) < 4 * mcse + 0.02 * sd[j], "dim %d: mean %g (mcse %g)", j, m, mcse);
        ck_assert_msg(fabs(s - sd[j]) < 4 * sd[j] / sqrt(2 * ess) + 0.02 * sd[j], "dim %d: sd %g", j, s);
    }
    double acc = 0.0;
    for (int i = 0; i < n; i++) acc += out.accept_stat[i];
    acc /= n;
    /* dual averaging aims the mean Metropolis probability at 0.234; the
     * final scale exp(x_bar) of noisy 0/1-like statistics lands within
     * about 0.08 of it (seeds 31-70: 0.16-0.29) */
    ck_assert_msg(acc > 0.15 && acc < 0.35, "mean acceptance %g", acc);
    free(col);
    mc_chain_out_free(&out);
}

START_TEST(test_rwm_diag) { run(0); }
END_TEST
START_TEST(test_rwm_dense) { run(1); }
END_TEST

/* A model whose density has no gradient (floor): NUTS would see a zero
 * gradient almost everywhere; RWM samples it.  y ~ Poisson(floor(lam) + 1),
 * lam ~ Uniform(0, 6): the posterior of k = floor(lam) is proportional to
 * Poisson(y | k + 1) on k = 0..5 (each k has prior mass 1/6). */
START_TEST(test_rwm_model_without_gradient) {
    const char *src = "model m(y) {\n  sample lam ~ Uniform(0.0, 6.0)\n"
                      "  plate n(len(y)) {\n    observe y ~ Poisson(floor(lam) + 1.0)\n  }\n"
                      "  deterministic k = floor(lam)\n}\ndata = {y: [2.0, 4.0, 3.0]}\n";
    rt_vm *vm = vm_running(src);
    inf_mcmc_opts o = {.chains = 2, .warmup = 1000, .samples = 4000, .target_accept = 0.234,
                       .hmc_steps = MC_RWM, .seed = 9};
    inf_mcmc *m;
    ck_assert_msg(inf_mcmc_run(vm, (rt_func *)rt_global_get(vm, "m")->u.o, (rt_record *)rt_global_get(vm, "data")->u.o,
                               &o, (rt_loc){0}, &m) == 0, "%s", rt_vm_errmsg(vm));
    /* exact: p(k) ~ (k+1)^9 exp(-3 (k+1)) */
    double w[6], z = 0.0, ek = 0.0, ek2 = 0.0;
    for (int k = 0; k < 6; k++) z += (w[k] = pow(k + 1.0, 9.0) * exp(-3.0 * (k + 1.0)));
    for (int k = 0; k < 6; k++) ek += k * w[k] / z, ek2 += k * k * w[k] / z;
    int kc = -1;
    for (int j = 0; j < m->nnames; j++)
        if (strcmp(m->names[j], "k") == 0) kc = j;
    ck_assert_int_ge(kc, 0);
    int n = m->chains * m->samples;
    double *col = malloc(sizeof(double) * (size_t)n), mean = 0.0;
    for (int i = 0; i < n; i++) mean += (col[i] = m->draws[(size_t)i * m->nnames + kc]);
    mean /= n;
    double sd = sqrt(ek2 - ek * ek), mcse = mc_mcse_mean(col, m->chains, m->samples);
    ck_assert_msg(fabs(mean - ek) < 4 * mcse + 0.02 * sd, "E[k] %g, exact %g (mcse %g)", mean, ek, mcse);
    free(col);
    /* the Stan CSV names the algorithm: RWM rows are not NUTS rows */
    char path[] = "/tmp/ppl_rwm_XXXXXX", err[256];
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    char csv[300];
    snprintf(csv, sizeof csv, "%s.csv", path);
    ck_assert_msg(inf_mcmc_write_csv(m, csv, err, sizeof err) == 0, "%s", err);
    char f1[320], line[256];
    snprintf(f1, sizeof f1, "%s_1.csv", path);
    FILE *f = fopen(f1, "r");
    ck_assert(f);
    bool rwm = false, nuts = false;
    while (fgets(line, sizeof line, f) && line[0] == '#') {
        if (strstr(line, "algorithm = rwm")) rwm = true;
        if (strstr(line, "nuts")) nuts = true;
    }
    fclose(f);
    ck_assert(rwm && !nuts);
    remove(f1);
    snprintf(f1, sizeof f1, "%s_2.csv", path);
    remove(f1);
    remove(path);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rwm");
    TCase *tc = tcase_create("rwm");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rwm_diag);
    tcase_add_test(tc, test_rwm_dense);
    tcase_add_test(tc, test_rwm_model_without_gradient);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
