/* test_program.c - the recorded-op fast path (src/backend/program.c) in the
 * MCMC potential: at many random points the replayed log density and
 * gradient are bit-identical to an interpreted evaluation (a second
 * potential with the fast path off) for several models (eight schools,
 * logistic regression, hierarchical Poisson, bounds that depend on other
 * latents, plates, the fused Normal density), the gradient matches central
 * finite differences, and models whose ops depend on their random values
 * (an `if` on a latent, an index computed from one, a host read, a random
 * draw) fall back to interpretation with the same results.  The backend
 * API is tested directly too (guards, escapes, pruning). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "potential.h"
#include "program.h"
#include "rng.h"
#include "vm_fixture.h"

/* Data for the models below, as globals the tests pass as model arguments. */
static const char *DATA =
    "ys = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]\n"
    "sig = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]\n"
    "X = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.1, -0.4, 0.9], [-1.3, 0.6, 0.2]]\n"
    "yb = [1.0, 0.0, 1.0, 1.0, 0.0]\n"
    "tp = [94.3, 15.7, 62.9, 126.0, 5.24, 31.4]\n"
    "xp = [5.0, 1.0, 5.0, 14.0, 3.0, 19.0]\n"
    "tab = [1.0, 2.0, 3.0, 4.0, 5.0]\n";

static const char *MODELS =
    "model schools(y, sigma) {\n"
    "  sample mu ~ Normal(0.0, 5.0)\n"
    "  sample tau ~ HalfCauchy(5.0)\n"
    "  plate school(len(y)) {\n"
    "    sample theta_raw ~ Normal(0.0, 1.0)\n"
    "    deterministic theta = mu + tau * theta_raw\n"
    "    observe y ~ Normal(theta, sigma)\n"
    "  }\n"
    "}\n"
    "model logreg(X, y) {\n"
    "  sample b ~ Normal(0.0, 5.0)\n"
    "  sample w ~ Normal(zeros(3), 5.0).to_event(1)\n"
    "  plate data(len(y)) {\n"
    "    observe y ~ Bernoulli(logits=b + X @ w)\n"
    "  }\n"
    "}\n"
    "model pumps(t, x) {\n"
    "  sample alpha ~ Exponential(1.0)\n"
    "  sample beta ~ Gamma(0.1, 1.0)\n"
    "  plate pump(len(x)) {\n"
    "    sample theta ~ Gamma(alpha, beta)\n"
    "    observe x ~ Poisson(theta * t)\n"
    "  }\n"
    "}\n"
    "model bounds(y) {\n"
    "  sample a ~ Beta(2.0, 3.0)\n"
    "  sample b ~ Uniform(0.0, 1.0 - a)\n"
    "  sample s ~ HalfNormal(2.0)\n"
    "  sample m ~ Normal(0.0, 1.0)\n"
    "  observe y[0] ~ Normal(m + b, s)\n"
    "}\n"
    /* value-dependent branch: a guard (the comparison) */
    "model branch(y) {\n"
    "  sample m ~ Normal(0.0, 2.0)\n"
    "  if m > 0.0 {\n"
    "    observe y[0] ~ Normal(m, 1.0)\n"
    "  } else {\n"
    "    observe y[0] ~ Normal(2.0 * m, 3.0)\n"
    "  }\n"
    "}\n"
    /* an integer index computed from a latent: an escape (k is 2, 3 or 4,
     * never a truth value that could be a guard) */
    "model pick(y, tab) {\n"
    "  sample u ~ Normal(0.0, 1.0)\n"
    "  k = 2.0 + floor(3.0 * sigmoid(u))\n"
    "  observe y[0] ~ Normal(tab[k] * u, 1.0)\n"
    "}\n"
    /* a random draw inside the model: its value would go stale */
    "model noisy(y) {\n"
    "  sample m ~ Normal(0.0, 1.0)\n"
    "  e = Normal(0.0, 1.0).sample()\n"
    "  observe y[0] ~ Normal(m + 0.0 * e, 1.0)\n"
    "}\n";

typedef struct pair {
    rt_vm *vm;
    rt_record *data;
    inf_potential *fast, *slow;
} pair;

static pair make_pair(const char *model, const char *a0, const char *a1, const char *g0, const char *g1) {
    char *src = malloc(strlen(DATA) + strlen(MODELS) + 1);
    strcpy(src, DATA);
    strcat(src, MODELS);
    pair P = {.vm = vm_running(src)};
    free(src);
    P.data = rt_record_new();
    rt_record_set(P.data, a0, rt_retain(*rt_global_get(P.vm, g0)));
    if (a1) rt_record_set(P.data, a1, rt_retain(*rt_global_get(P.vm, g1)));
    rt_func *f = (rt_func *)rt_global_get(P.vm, model)->u.o;
    ck_assert_msg(inf_potential_init(P.vm, f, P.data, (rt_loc){0}, &P.fast) == 0, "%s", rt_vm_errmsg(P.vm));
    ck_assert(inf_potential_init(P.vm, f, P.data, (rt_loc){0}, &P.slow) == 0);
    P.slow->fast = false;
    return P;
}

static void free_pair(pair *P) {
    inf_potential_free(P->fast);
    inf_potential_free(P->slow);
    rt_release(rt_obj_value(&P->data->h));
    rt_vm_free(P->vm);
}

static bool same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* n random points uniform in (-2, 2) (and a few far out): fast == slow, bit
 * for bit; returns how many evaluations the program replayed. */
static void compare_points(pair *P, int n, uint64_t seed) {
    int d = (int)P->fast->dim;
    double *q = malloc(sizeof *q * (size_t)d), *g1 = malloc(sizeof *g1 * (size_t)d),
           *g2 = malloc(sizeof *g2 * (size_t)d);
    bk_rng r;
    bk_rng_init(&r, seed, 0);
    for (int t = 0; t < n; t++) {
        double scale = t % 10 == 9 ? 12.0 : 2.0;
        for (int i = 0; i < d; i++) q[i] = scale * (2 * bk_rng_uniform(&r) - 1);
        double l1, l2;
        bool wantg = t % 4 != 3;
        ck_assert_msg(inf_potential_eval(P->fast, q, &l1, wantg ? g1 : NULL, NULL) == 0, "%s",
                      rt_vm_errmsg(P->vm));
        ck_assert(inf_potential_eval(P->slow, q, &l2, wantg ? g2 : NULL, NULL) == 0);
        ck_assert_msg(same(l1, l2), "point %d: logp %.17g (fast) vs %.17g", t, l1, l2);
        for (int i = 0; wantg && i < d; i++)
            ck_assert_msg(same(g1[i], g2[i]), "point %d: grad[%d] %.17g (fast) vs %.17g", t, i, g1[i], g2[i]);
    }
    free(q);
    free(g1);
    free(g2);
}

/* central differences of the fast potential at q */
static void check_fd(inf_potential *p, const double *q0) {
    int d = (int)p->dim;
    double *q = malloc(sizeof *q * (size_t)d), *g = malloc(sizeof *g * (size_t)d), lp;
    memcpy(q, q0, sizeof *q * (size_t)d);
    ck_assert(inf_potential_eval(p, q, &lp, g, NULL) == 0);
    for (int i = 0; i < d; i++) {
        double h = 1e-6, lpp, lpm, x = q[i];
        q[i] = x + h;
        ck_assert(inf_potential_eval(p, q, &lpp, NULL, NULL) == 0);
        q[i] = x - h;
        ck_assert(inf_potential_eval(p, q, &lpm, NULL, NULL) == 0);
        q[i] = x;
        double fd = (lpp - lpm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dq[%d]: %.10g vs %.10g", i, g[i], fd);
    }
    free(q);
    free(g);
}

static void fast_model_case(const char *model, const char *a0, const char *a1, const char *g0, const char *g1,
                            bool native) {
    pair P = make_pair(model, a0, a1, g0, g1);
    compare_points(&P, 200, 7);
    ck_assert_msg(P.fast->fast_state == 1, "%s: no program (%s)", model, P.fast->fast_why);
    ck_assert(P.fast->prog && bk_prog_len(P.fast->prog) > 0);
    ck_assert_msg(bk_prog_native(P.fast->prog) == native, "%s: native %d", model, !native);
    ck_assert_int_eq(P.fast->fast_verify, 0); /* the checks passed */
    ck_assert(P.slow->prog == NULL);
    double *q = calloc((size_t)P.fast->dim, sizeof *q);
    for (int i = 0; i < P.fast->dim; i++) q[i] = 0.3 - 0.17 * i;
    check_fd(P.fast, q);
    free(q);
    free_pair(&P);
}

START_TEST(replay_eight_schools) { fast_model_case("schools", "y", "sigma", "ys", "sig", true); }
END_TEST
START_TEST(replay_logistic_regression) { fast_model_case("logreg", "X", "y", "X", "yb", false); }
END_TEST
START_TEST(replay_hierarchical_poisson) { fast_model_case("pumps", "t", "x", "tp", "xp", true); }
END_TEST
START_TEST(replay_dependent_bounds) { fast_model_case("bounds", "y", NULL, "ys", NULL, true); }
END_TEST

/* The branch on m > 0 is a guard: points on the other side than the
 * recording are evaluated by interpretation, with the same results. */
START_TEST(fallback_value_dependent_if) {
    pair P = make_pair("branch", "y", NULL, "ys", NULL);
    compare_points(&P, 200, 11);
    ck_assert(P.fast->fast_state == 1);
    ck_assert(P.fast->fast_misses > 0 && P.fast->fast_replays > 0);
    free_pair(&P);
}
END_TEST

START_TEST(fallback_index_from_latent) {
    pair P = make_pair("pick", "y", "tab", "ys", "tab");
    compare_points(&P, 100, 13);
    ck_assert_int_eq(P.fast->fast_state, 2);
    ck_assert(P.fast->prog == NULL && P.fast->fast_replays == 0);
    free_pair(&P);
}
END_TEST

START_TEST(fallback_random_draw) {
    pair P = make_pair("noisy", "y", NULL, "ys", NULL);
    double q = 0.4, lp, g;
    ck_assert(inf_potential_eval(P.fast, &q, &lp, &g, NULL) == 0);
    ck_assert_int_eq(P.fast->fast_state, 2);
    ck_assert_msg(strstr(P.fast->fast_why, "random") != NULL, "%s", P.fast->fast_why);
    free_pair(&P);
}
END_TEST

/* The backend API directly: f(x) = sum(exp(x) * c) + (x0 > 0 ? ...) */
START_TEST(program_api) {
    bk_ctx *c = bk_ctx_new(NULL);
    double xv[3] = {0.1, -0.4, 0.7}, cv[3] = {2.0, 3.0, -1.0};
    bk_tensor *k = bk_from_f64(c, 1, (int64_t[]){3}, cv);
    ck_assert(bk_prog_begin(c) == 0);
    ck_assert(bk_prog_recording(c));
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){3}, xv);
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    bk_tensor *e = bk_unop(c, BK_OP_EXP, x);
    bk_tensor *dead = bk_unop(c, BK_OP_SIN, x); /* not needed by the output: pruned */
    bk_tensor *m = bk_mul(c, e, k);
    bk_tensor *m1 = bk_scalar(c, -1.0);
    bk_tensor *pos = bk_binop(c, BK_OP_GT, x, m1);
    ck_assert(bk_get(pos, 0) == 1); /* a read of a comparison: a guard */
    bk_tensor *s = bk_sum_all(c, m);
    bk_prog *p = bk_prog_end(c, s, NULL, 0);
    ck_assert(p != NULL);
    ck_assert(!bk_prog_recording(c));
    ck_assert_uint_eq(bk_prog_len(p), 4); /* exp, mul, gt (the guard), sum */
    ck_assert(bk_prog_native(p));
    double at[3] = {0.3, 0.2, -0.5}, v, g[3];
    ck_assert_int_eq(bk_prog_run(p, c, at, &v, g), 0);
    double want = 0;
    for (int i = 0; i < 3; i++) want += exp(at[i]) * cv[i];
    ck_assert(fabs(v - want) < 1e-14 * fabs(want));
    for (int i = 0; i < 3; i++) ck_assert(fabs(g[i] - exp(at[i]) * cv[i]) < 1e-14);
    double bad[3] = {0.3, -2.0, 0.0}; /* x1 > -1 fails: the guard stops the replay */
    ck_assert_int_eq(bk_prog_run(p, c, bad, &v, g), 1);
    ck_assert_uint_eq(bk_tape_len(c), 0);
    bk_prog_free(p);
    /* a host read of a continuous value refuses the recording */
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *y = bk_from_f64(c, 1, (int64_t[]){3}, xv);
    bk_prog_input(c, y, 0);
    bk_tensor *ey = bk_unop(c, BK_OP_EXP, y);
    (void)bk_item(ey);
    bk_tensor *sy = bk_sum_all(c, ey);
    char why[160];
    ck_assert(bk_prog_end(c, sy, why, sizeof why) == NULL);
    ck_assert_msg(strstr(why, "read by the host") != NULL, "%s", why);
    bk_release(x), bk_release(e), bk_release(dead), bk_release(m), bk_release(pos), bk_release(s);
    bk_release(y), bk_release(ey), bk_release(sy), bk_release(k), bk_release(m1);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("program");
    TCase *tc = tcase_create("program");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, program_api);
    tcase_add_test(tc, replay_eight_schools);
    tcase_add_test(tc, replay_logistic_regression);
    tcase_add_test(tc, replay_hierarchical_poisson);
    tcase_add_test(tc, replay_dependent_bounds);
    tcase_add_test(tc, fallback_value_dependent_if);
    tcase_add_test(tc, fallback_index_from_latent);
    tcase_add_test(tc, fallback_random_draw);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
