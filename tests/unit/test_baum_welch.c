/* test_baum_welch.c - baum_welch beyond test_hmm.c's Normal recovery:
 * a Categorical HMM simulated here for 10^5 steps (four sequences of
 * different lengths, given as a list) is recovered up to label permutation
 * with a never-decreasing log-likelihood trace; and the stopping rule:
 * `tol` stops at the first gain below it (converged, the trace as long as
 * `iterations`, the returned `hmm` scoring the data at the trace's last
 * value), while `iters` caps the E-steps without convergence. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "hmm.h"
#include "rng.h"
#include "vm.h"

enum { K = 2, V = 4 };
static const double PI0[K] = {0.5, 0.5};
static const double A0[K][K] = {{0.9, 0.1}, {0.2, 0.8}};
static const double E0[K][V] = {{0.6, 0.25, 0.1, 0.05}, {0.05, 0.1, 0.25, 0.6}};

static bk_tensor *tensor(bk_ctx *ctx, int nd, const int64_t *shape, const double *v) {
    bk_tensor *t = bk_from_f64(ctx, nd, shape, v);
    ck_assert(t != NULL);
    return t;
}

static int draw(bk_rng *r, const double *p, int n) {
    double u = bk_rng_uniform(r), c = 0;
    for (int i = 0; i < n - 1; i++)
        if (u < (c += p[i])) return i;
    return n - 1;
}

/* Sequences of the given lengths from the generating HMM, as a list. */
static rt_list *simulate(bk_ctx *ctx, bk_rng *r, const int *lens, int n) {
    rt_list *ys = rt_list_new();
    for (int s = 0; s < n; s++) {
        double *y = malloc((size_t)lens[s] * sizeof *y);
        int z = draw(r, PI0, K);
        for (int t = 0; t < lens[s]; t++) {
            if (t) z = draw(r, A0[z], K);
            y[t] = draw(r, E0[z], V);
        }
        ck_assert(rt_list_push(ys, rt_tensor(tensor(ctx, 1, (int64_t[]){lens[s]}, y))) == 0);
        free(y);
    }
    return ys;
}

/* A Categorical HMM from row-major init, trans and emission tables. */
static sl_dist *make_hmm(bk_ctx *ctx, const double *pi, const double *A, const double *E) {
    bk_tensor *p = tensor(ctx, 1, (int64_t[]){K}, pi), *a = tensor(ctx, 2, (int64_t[]){K, K}, A),
              *e = tensor(ctx, 2, (int64_t[]){K, V}, E);
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &e);
    ck_assert(em != NULL);
    sl_dist *h = sl_hmm_make(ctx, p, a, em, 0, -1);
    ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
    bk_release(p);
    bk_release(a);
    bk_release(e);
    sl_dist_release(em);
    return h;
}

/* baum_welch(h, ys, iters=, tol=) through the built-in. */
static rt_record *fit(rt_vm *vm, sl_dist *h, rt_list *ys, double iters, double tol) {
    bk_ctx *ctx = rt_vm_bk(vm);
    rt_value args[4] = {rt_obj_value(&h->h), rt_obj_value(&ys->h), rt_tensor(bk_scalar(ctx, iters)),
                        rt_tensor(bk_scalar(ctx, tol))}, out;
    rt_loc loc[4];
    memset(loc, 0, sizeof loc);
    rt_call c;
    memset(&c, 0, sizeof c);
    c.nargs = 4, c.args = args, c.argloc = loc, c.kwloc = loc, c.name = "baum_welch", c.self = rt_none();
    int rc = -1;
    for (int i = 0; inf_hmm_builtins[i].name; i++)
        if (strcmp(inf_hmm_builtins[i].name, "baum_welch") == 0) rc = inf_hmm_builtins[i].fn(vm, &c, &out);
    ck_assert_msg(rc == 0, "%s", rt_vm_errmsg(vm));
    rt_release(args[2]);
    rt_release(args[3]);
    return (rt_record *)out.u.o;
}

static bk_tensor *field(rt_record *r, const char *name) {
    rt_value *v = rt_record_get(r, name);
    ck_assert_msg(v && v->tag == RT_TENSOR, "no field %s", name);
    return v->u.t;
}

static void check_monotone(bk_tensor *ll) {
    for (int64_t i = 1; i < ll->numel; i++)
        ck_assert_msg(bk_get(ll, i) >= bk_get(ll, i - 1) - 1e-9 * fabs(bk_get(ll, i)),
                      "log-likelihood decreased at %lld: %.12g -> %.12g", (long long)i, bk_get(ll, i - 1),
                      bk_get(ll, i));
}

START_TEST(categorical_recovery) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 41, 0);
    const int lens[4] = {40000, 30000, 20000, 10000};
    rt_list *ys = simulate(ctx, &r, lens, 4);
    /* a start that only leans the right way */
    sl_dist *h = make_hmm(ctx, (double[]){0.5, 0.5}, (double[]){0.6, 0.4, 0.4, 0.6},
                          (double[]){0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3});
    rt_record *rec = fit(vm, h, ys, 500, 1e-8);
    bk_tensor *ll = field(rec, "log_likelihoods");
    ck_assert(ll->numel > 5);
    check_monotone(ll);
    ck_assert(bk_item(field(rec, "converged")) == 1);
    bk_tensor *A = field(rec, "trans"), *E = field(rec, "probs");
    /* label permutation: the state that favours symbol 0 is state 0 */
    int lo = bk_get(E, 0) > bk_get(E, V) ? 0 : 1, map[K] = {lo, 1 - lo};
    for (int k = 0; k < K; k++) {
        for (int v = 0; v < V; v++)
            ck_assert_msg(fabs(bk_get(E, map[k] * V + v) - E0[k][v]) < 0.02, "probs[%d, %d] %g, want %g", k, v,
                          bk_get(E, map[k] * V + v), E0[k][v]);
        for (int j = 0; j < K; j++)
            ck_assert_msg(fabs(bk_get(A, map[k] * K + map[j]) - A0[k][j]) < 0.1 * A0[k][j], "trans[%d, %d] %g", k, j,
                          bk_get(A, map[k] * K + map[j]));
    }
    rt_release(rt_obj_value(&rec->h));
    rt_release(rt_obj_value(&ys->h));
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

START_TEST(tolerance_and_iteration_cap) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 43, 0);
    const int lens[2] = {700, 300};
    rt_list *ys = simulate(ctx, &r, lens, 2);
    const double pi[K] = {0.5, 0.5}, A[K * K] = {0.6, 0.4, 0.4, 0.6},
                 E[K * V] = {0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3};
    sl_dist *h = make_hmm(ctx, pi, A, E);

    /* tol: stops at the first gain below 1e-3 */
    rt_record *rec = fit(vm, h, ys, 1000, 1e-3);
    bk_tensor *ll = field(rec, "log_likelihoods");
    int64_t n = ll->numel;
    ck_assert(bk_item(field(rec, "converged")) == 1);
    ck_assert_int_eq((int64_t)bk_item(field(rec, "iterations")), n);
    ck_assert_msg(n > 3 && n < 1000, "%lld iterations", (long long)n);
    check_monotone(ll);
    ck_assert(bk_get(ll, n - 1) - bk_get(ll, n - 2) < 1e-3);
    for (int64_t i = 1; i < n - 1; i++) ck_assert(bk_get(ll, i) - bk_get(ll, i - 1) >= 1e-3);
    /* the fitted HMM is the one the last E-step scored */
    rt_value *hv = rt_record_get(rec, "hmm");
    ck_assert(hv && hv->tag == RT_DIST);
    double tot = 0;
    for (int s = 0; s < 2; s++) {
        bk_tensor *lp = sl_log_prob(ctx, (sl_dist *)hv->u.o, ys->items[s].u.t);
        ck_assert_msg(lp != NULL, "%s", bk_errmsg(ctx));
        tot += bk_item(lp);
        bk_release(lp);
    }
    ck_assert_msg(fabs(tot - bk_get(ll, n - 1)) < 1e-8 * fabs(tot), "log_prob %.12g vs trace %.12g", tot,
                  bk_get(ll, n - 1));
    double last_loose = bk_get(ll, n - 1);
    rt_release(rt_obj_value(&rec->h));

    /* a tighter tol runs longer and ends higher */
    rec = fit(vm, h, ys, 1000, 1e-7);
    ll = field(rec, "log_likelihoods");
    ck_assert(ll->numel > n);
    ck_assert(bk_get(ll, ll->numel - 1) >= last_loose);
    rt_release(rt_obj_value(&rec->h));

    /* iters caps the E-steps: not converged */
    rec = fit(vm, h, ys, 3, 1e-7);
    ll = field(rec, "log_likelihoods");
    ck_assert_int_eq(ll->numel, 3);
    ck_assert_int_eq((int64_t)bk_item(field(rec, "iterations")), 3);
    ck_assert(bk_item(field(rec, "converged")) == 0);
    rt_release(rt_obj_value(&rec->h));

    rt_release(rt_obj_value(&ys->h));
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("baum_welch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, categorical_recovery);
    tcase_add_test(tc, tolerance_and_iteration_cap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
