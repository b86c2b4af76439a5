/* test_hmm.c - DiscreteHMM and the HMM built-ins: log_prob, marginals and
 * Viterbi against brute-force enumeration of all K^T paths, log_prob
 * gradients against central finite differences, FFBS path frequencies
 * (chi-square), Baum-Welch monotonicity and parameter recovery, sampling
 * and error messages. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "hmm.h"
#include "ops_hmm.h"
#include "rng.h"
#include "vm.h"

/* ------------------------------------------------------------ helpers --- */

typedef struct model {
    int K, T, V, normal, tv;       /* V categories (Categorical); tv: trans [T, K, K] */
    double pi[3], A[7][3][3], E[3][3], mu[3], sd[3];
} model;

static double unif(bk_rng *r) { return bk_rng_uniform(r); }

static void rand_simplex(bk_rng *r, double *p, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += p[i] = 0.05 + unif(r);
    for (int i = 0; i < n; i++) p[i] /= s;
}

static void rand_model(bk_rng *r, model *m, int K, int T, int normal, int tv) {
    memset(m, 0, sizeof *m);
    m->K = K, m->T = T, m->V = 3, m->normal = normal, m->tv = tv;
    rand_simplex(r, m->pi, K);
    for (int t = 0; t < (tv ? T : 1); t++)
        for (int i = 0; i < K; i++) rand_simplex(r, m->A[t][i], K);
    for (int k = 0; k < K; k++) {
        rand_simplex(r, m->E[k], m->V);
        m->mu[k] = 3 * unif(r) - 1.5;
        m->sd[k] = 0.5 + unif(r);
    }
}

static double trans_p(const model *m, int t, int i, int j) { return m->A[m->tv ? t : 0][i][j]; }

static double emit_lp(const model *m, int k, double y) {
    if (!m->normal) return log(m->E[k][(int)y]);
    double z = (y - m->mu[k]) / m->sd[k];
    return -0.5 * z * z - log(m->sd[k]) - 0.5 * log(2 * M_PI);
}

static double path_lp(const model *m, const int *z, const double *y) {
    double lp = log(m->pi[z[0]]) + emit_lp(m, z[0], y[0]);
    for (int t = 1; t < m->T; t++) lp += log(trans_p(m, t, z[t - 1], z[t])) + emit_lp(m, z[t], y[t]);
    return lp;
}

/* Advance z as a base-K odometer; false after the last path. */
static bool next_path(int *z, int T, int K) {
    for (int t = T - 1; t >= 0; t--) {
        if (++z[t] < K) return true;
        z[t] = 0;
    }
    return false;
}

static bk_tensor *tensor(bk_ctx *ctx, int nd, const int64_t *shape, const double *v) {
    bk_tensor *t = bk_from_f64(ctx, nd, shape, v);
    ck_assert(t != NULL);
    return t;
}

/* The model as a DiscreteHMM (emission built by family). */
static sl_dist *make_hmm(bk_ctx *ctx, const model *m) {
    int64_t K = m->K;
    double tr[7 * 9];
    int n = 0;
    for (int t = 0; t < (m->tv ? m->T : 1); t++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) tr[n++] = m->A[t][i][j];
    bk_tensor *pi = tensor(ctx, 1, (int64_t[]){K}, m->pi);
    bk_tensor *A = m->tv ? tensor(ctx, 3, (int64_t[]){m->T, K, K}, tr)
                         : tensor(ctx, 2, (int64_t[]){K, K}, tr);
    sl_dist *em;
    if (m->normal) {
        bk_tensor *p[2] = {tensor(ctx, 1, (int64_t[]){K}, m->mu), tensor(ctx, 1, (int64_t[]){K}, m->sd)};
        em = sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, p);
        bk_release(p[0]);
        bk_release(p[1]);
    } else {
        double e[9];
        for (int k = 0; k < K; k++) memcpy(e + k * m->V, m->E[k], m->V * sizeof *e);
        bk_tensor *p = tensor(ctx, 2, (int64_t[]){K, m->V}, e);
        em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &p);
        bk_release(p);
    }
    ck_assert_msg(em != NULL, "%s", bk_errmsg(ctx));
    sl_dist *h = sl_hmm_make(ctx, pi, A, em, 0, -1);
    ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
    bk_release(pi);
    bk_release(A);
    sl_dist_release(em);
    return h;
}

static void rand_obs(bk_rng *r, const model *m, double *y) {
    for (int t = 0; t < m->T; t++) y[t] = m->normal ? 4 * unif(r) - 2 : (double)(bk_rng_u32(r) % 3);
}

/* Call one of the HMM built-ins directly. */
static int call(rt_vm *vm, const char *name, int nargs, rt_value *args, int nkw,
                const char **kwn, rt_value *kwv, rt_value *out) {
    rt_loc loc[8];
    memset(loc, 0, sizeof loc);
    rt_call c;
    memset(&c, 0, sizeof c);
    c.nargs = nargs, c.args = args, c.argloc = loc, c.nkw = nkw, c.kwnames = kwn, c.kwargs = kwv;
    c.kwloc = loc, c.name = name, c.self = rt_none();
    for (int i = 0; inf_hmm_builtins[i].name; i++)
        if (strcmp(inf_hmm_builtins[i].name, name) == 0) return inf_hmm_builtins[i].fn(vm, &c, out);
    ck_abort_msg("no built-in %s", name);
    return -1;
}

static rt_value hval(sl_dist *h) { return rt_obj_value(&h->h); }   /* borrowed */

/* ----------------------------------------------------- brute force --- */

static void check_brute(rt_vm *vm, bk_rng *r, int K, int T, int normal, int tv) {
    bk_ctx *ctx = rt_vm_bk(vm);
    model m;
    double y[7], marg[7][3] = {{0}}, best = -INFINITY, tot = 0;
    int z[7] = {0}, bestz[7] = {0};
    rand_model(r, &m, K, T, normal, tv);
    rand_obs(r, &m, y);
    /* enumeration: log-sum-exp with the first path's value as shift */
    double shift = path_lp(&m, z, y);
    do {
        double lp = path_lp(&m, z, y), w = exp(lp - shift);
        tot += w;
        for (int t = 0; t < T; t++) marg[t][z[t]] += w;
        if (lp > best) {
            best = lp;
            memcpy(bestz, z, sizeof z);
        }
    } while (next_path(z, T, K));
    double logZ = shift + log(tot);

    sl_dist *h = make_hmm(ctx, &m);
    bk_tensor *yt = tensor(ctx, 1, (int64_t[]){T}, y);
    bk_tensor *lp = sl_log_prob(ctx, h, yt);
    ck_assert_msg(lp && lp->ndim == 0, "%s", bk_errmsg(ctx));
    ck_assert_msg(fabs(bk_item(lp) - logZ) < 1e-10, "K=%d T=%d: log_prob %.15g vs %.15g", K, T,
                  bk_item(lp), logZ);
    bk_release(lp);

    rt_value args[2] = {hval(h), rt_tensor(yt)}, out;
    ck_assert(call(vm, "hmm_viterbi", 2, args, 0, NULL, NULL, &out) == 0);
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *path = rt_record_get(rec, "path")->u.t;
    ck_assert_msg(fabs(bk_item(rt_record_get(rec, "log_prob")->u.t) - best) < 1e-10,
                  "viterbi log_prob");
    for (int t = 0; t < T; t++) ck_assert_int_eq((int)bk_get(path, t), bestz[t]);
    rt_release(out);

    ck_assert(call(vm, "hmm_marginals", 2, args, 0, NULL, NULL, &out) == 0);
    ck_assert_int_eq(out.u.t->numel, T * K);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++)
            ck_assert_msg(fabs(bk_get(out.u.t, t * K + k) - marg[t][k] / tot) < 1e-10,
                          "marginal [%d, %d]", t, k);
    rt_release(out);

    /* the filter is the last marginal */
    ck_assert(call(vm, "hmm_filter", 2, args, 0, NULL, NULL, &out) == 0);
    ck_assert_int_eq(out.tag, RT_DIST);
    sl_dist *f = (sl_dist *)out.u.o;
    for (int k = 0; k < K; k++)
        ck_assert(fabs(bk_get(f->p[0], k) - marg[T - 1][k] / tot) < 1e-10);
    rt_release(out);
    bk_release(yt);
    sl_dist_release(h);
}

START_TEST(brute_force) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 7, 0);
    for (int K = 1; K <= 3; K++)
        for (int T = 1; T <= 7; T++)
            for (int normal = 0; normal <= 1; normal++)
                for (int tv = 0; tv <= 1; tv++) check_brute(vm, &r, K, T, normal, tv);
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------------------------- gradients --- */

static double eval_lp(bk_ctx *ctx, const sl_dist *h, bk_tensor *y) {
    bool g = bk_set_grad_enabled(ctx, false);
    bk_tensor *lp = sl_log_prob(ctx, h, y);
    bk_set_grad_enabled(ctx, g);
    ck_assert(lp != NULL);
    double v = 0;
    for (int64_t i = 0; i < lp->numel; i++) v += bk_get(lp, i);   /* a batch: the sum */
    bk_release(lp);
    return v;
}

/* Every leaf's gradient against central differences, perturbing the leaf's
 * data in place (no re-validation: perturbed probs need not sum to 1). */
static void check_grads(bk_ctx *ctx, sl_dist *h, bk_tensor *y, bk_tensor **leaf, int nleaf) {
    for (int i = 0; i < nleaf; i++) bk_set_requires_grad(leaf[i], true);
    bk_tensor *lp1 = sl_log_prob(ctx, h, y);
    ck_assert_msg(lp1 != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *lp = bk_sum_all(ctx, lp1);
    ck_assert(bk_backward(ctx, lp) == 0);
    bk_release(lp);
    bk_release(lp1);
    bk_tape_reset(ctx);
    for (int i = 0; i < nleaf; i++) {
        double *v = bk_data(leaf[i]);
        ck_assert(leaf[i]->grad != NULL);
        for (int64_t k = 0; k < leaf[i]->numel; k++) {
            double x = v[k], e = 1e-5 * fmax(1.0, fabs(x));
            v[k] = x + e;
            double up = eval_lp(ctx, h, y);
            v[k] = x - e;
            double dn = eval_lp(ctx, h, y);
            v[k] = x;
            double fd = (up - dn) / (2 * e), g = bk_get(leaf[i]->grad, k);
            ck_assert_msg(fabs(g - fd) <= 1e-6 * fmax(1.0, fabs(fd)),
                          "leaf %d elem %lld: grad %.12g vs fd %.12g", i, (long long)k, g, fd);
        }
    }
}

START_TEST(gradients_probs_normal) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 11, 0);
    model m;
    rand_model(&r, &m, 3, 6, 1, 0);
    double y[6], tr[9];
    rand_obs(&r, &m, y);
    for (int i = 0; i < 9; i++) tr[i] = m.A[0][i / 3][i % 3];
    bk_tensor *leaf[4] = {tensor(ctx, 1, (int64_t[]){3}, m.pi), tensor(ctx, 2, (int64_t[]){3, 3}, tr),
                          tensor(ctx, 1, (int64_t[]){3}, m.mu), tensor(ctx, 1, (int64_t[]){3}, m.sd)};
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, leaf + 2);
    sl_dist *h = sl_hmm_make(ctx, leaf[0], leaf[1], em, 0, -1);
    ck_assert(h != NULL);
    bk_tensor *yt = tensor(ctx, 1, (int64_t[]){6}, y);
    check_grads(ctx, h, yt, leaf, 4);
    bk_release(yt);
    sl_dist_release(h);
    sl_dist_release(em);
    for (int i = 0; i < 4; i++) bk_release(leaf[i]);
    bk_ctx_free(ctx);
}
END_TEST

START_TEST(gradients_logits_categorical_timevarying) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 12, 0);
    double il[3], tl[5 * 9], el[9], y[5];
    for (int i = 0; i < 3; i++) il[i] = bk_rng_normal(&r);
    for (int i = 0; i < 45; i++) tl[i] = bk_rng_normal(&r);
    for (int i = 0; i < 9; i++) el[i] = bk_rng_normal(&r);
    for (int t = 0; t < 5; t++) y[t] = (double)(bk_rng_u32(&r) % 3);
    bk_tensor *leaf[3] = {tensor(ctx, 1, (int64_t[]){3}, il), tensor(ctx, 3, (int64_t[]){5, 3, 3}, tl),
                          tensor(ctx, 2, (int64_t[]){3, 3}, el)};
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Categorical"), 1, 1, leaf + 2);
    sl_dist *h = sl_hmm_make(ctx, leaf[0], leaf[1], em, SL_HMM_INIT_LOGITS | SL_HMM_TRANS_LOGITS, -1);
    ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *yt = tensor(ctx, 1, (int64_t[]){5}, y);
    check_grads(ctx, h, yt, leaf, 3);
    bk_release(yt);
    sl_dist_release(h);
    sl_dist_release(em);
    for (int i = 0; i < 3; i++) bk_release(leaf[i]);
    bk_ctx_free(ctx);
}
END_TEST

/* ------------------------------------------------------------ FFBS --- */

START_TEST(ffbs_frequencies) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 5, 0);
    bk_rng_init(rt_vm_rng(vm), 2024, 0);
    model m;
    rand_model(&r, &m, 3, 3, 1, 0);
    double y[3];
    rand_obs(&r, &m, y);
    double post[27], tot = 0;
    int z[3] = {0}, n = 0;
    do tot += post[n++] = exp(path_lp(&m, z, y));
    while (next_path(z, 3, 3));
    sl_dist *h = make_hmm(ctx, &m);
    bk_tensor *yt = tensor(ctx, 1, (int64_t[]){3}, y);
    rt_value args[2] = {hval(h), rt_tensor(yt)}, out;
    int counts[27] = {0}, N = 20000;
    for (int i = 0; i < N; i++) {
        ck_assert(call(vm, "hmm_sample_states", 2, args, 0, NULL, NULL, &out) == 0);
        int idx = 0;
        for (int t = 0; t < 3; t++) idx = idx * 3 + (int)bk_get(out.u.t, t);
        counts[idx]++;
        rt_release(out);
    }
    double chi2 = 0;
    for (int i = 0; i < 27; i++) {
        double e = N * post[i] / tot;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    /* 26 degrees of freedom: P(chi2 > 60) < 2e-4 */
    ck_assert_msg(chi2 < 60, "chi-square %g", chi2);
    bk_release(yt);
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------------------------ Baum-Welch --- */

START_TEST(baum_welch_normal_recovery) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 99, 0);
    const double A[2][2] = {{0.95, 0.05}, {0.1, 0.9}}, mu[2] = {-1.0, 2.0}, sd[2] = {0.7, 1.2};
    const int lens[3] = {50000, 30000, 20000};
    rt_list *ys = rt_list_new();
    for (int s = 0; s < 3; s++) {
        double *y = malloc(lens[s] * sizeof *y);
        int z = bk_rng_uniform(&r) < 0.5;
        for (int t = 0; t < lens[s]; t++) {
            if (t) z = bk_rng_uniform(&r) < A[z][1];
            y[t] = mu[z] + sd[z] * bk_rng_normal(&r);
        }
        ck_assert(rt_list_push(ys, rt_tensor(tensor(ctx, 1, (int64_t[]){lens[s]}, y))) == 0);
        free(y);
    }
    model m0 = {.K = 2, .normal = 1, .pi = {0.5, 0.5}, .A = {{{0.6, 0.4}, {0.4, 0.6}}},
                .mu = {0.0, 1.0}, .sd = {1.0, 1.0}};
    sl_dist *h = make_hmm(ctx, &m0);
    rt_value args[4] = {hval(h), rt_obj_value(&ys->h), rt_tensor(bk_scalar(ctx, 200)),
                        rt_tensor(bk_scalar(ctx, 1e-8))}, out;
    ck_assert_msg(call(vm, "baum_welch", 4, args, 0, NULL, NULL, &out) == 0, "%s",
                  rt_vm_errmsg(vm));
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *ll = rt_record_get(rec, "log_likelihoods")->u.t;
    ck_assert(ll->numel > 2);
    for (int64_t i = 1; i < ll->numel; i++)
        ck_assert_msg(bk_get(ll, i) >= bk_get(ll, i - 1) - 1e-9 * fabs(bk_get(ll, i)),
                      "log-likelihood decreased at %lld", (long long)i);
    bk_tensor *fa = rt_record_get(rec, "trans")->u.t, *fm = rt_record_get(rec, "loc")->u.t,
              *fs = rt_record_get(rec, "scale")->u.t;
    int lo = bk_get(fm, 0) < bk_get(fm, 1) ? 0 : 1;   /* label permutation */
    int map[2] = {lo, 1 - lo};
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(fabs(bk_get(fm, map[k]) - mu[k]) < 0.03 * fabs(mu[k]), "loc %d", k);
        ck_assert_msg(fabs(bk_get(fs, map[k]) - sd[k]) < 0.03 * sd[k], "scale %d", k);
        for (int j = 0; j < 2; j++)
            ck_assert_msg(fabs(bk_get(fa, map[k] * 2 + map[j]) - A[k][j]) < 0.1 * A[k][j],
                          "trans %d %d: %g", k, j, bk_get(fa, map[k] * 2 + map[j]));
    }
    rt_release(out);
    rt_release(args[1]);
    rt_release(args[2]);
    rt_release(args[3]);
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

START_TEST(baum_welch_categorical_monotone) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 3, 0);
    model m;
    rand_model(&r, &m, 3, 7, 0, 0);
    sl_dist *h = make_hmm(ctx, &m);
    double y[2 * 40];
    for (int i = 0; i < 80; i++) y[i] = (double)(bk_rng_u32(&r) % 3);
    rt_value args[2] = {hval(h), rt_tensor(tensor(ctx, 2, (int64_t[]){2, 40}, y))}, out;
    const char *kwn[2] = {"lengths", "iters"};
    rt_value kwv[2] = {rt_tensor(tensor(ctx, 1, (int64_t[]){2}, (double[]){40, 25})),
                       rt_tensor(bk_scalar(ctx, 30))};
    ck_assert_msg(call(vm, "baum_welch", 2, args, 2, kwn, kwv, &out) == 0, "%s", rt_vm_errmsg(vm));
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *ll = rt_record_get(rec, "log_likelihoods")->u.t;
    for (int64_t i = 1; i < ll->numel; i++)
        ck_assert(bk_get(ll, i) >= bk_get(ll, i - 1) - 1e-9 * fabs(bk_get(ll, i)));
    bk_tensor *probs = rt_record_get(rec, "probs")->u.t;
    ck_assert_int_eq(probs->ndim, 2);
    ck_assert_int_eq(probs->shape[1], 3);
    rt_release(out);
    rt_release(args[1]);
    rt_release(kwv[0]);
    rt_release(kwv[1]);
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

/* K = 25 takes the BLAS paths (dgemv, the pair-marginal GEMM): Baum-Welch
 * stays monotone with stochastic rows, its first log-likelihood equals
 * log_prob, and the marginals are distributions. */
START_TEST(baum_welch_large_k) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 8, 0);
    enum { KL = 25, VL = 4, TL = 300 };
    double pi[KL], A[KL * KL], E[KL * VL], y[TL];
    rand_simplex(&r, pi, KL);
    for (int i = 0; i < KL; i++) rand_simplex(&r, A + i * KL, KL);
    for (int i = 0; i < KL; i++) rand_simplex(&r, E + i * VL, VL);
    for (int t = 0; t < TL; t++) y[t] = (double)(bk_rng_u32(&r) % VL);
    bk_tensor *tp = tensor(ctx, 1, (int64_t[]){KL}, pi), *tA = tensor(ctx, 2, (int64_t[]){KL, KL}, A);
    bk_tensor *tE = tensor(ctx, 2, (int64_t[]){KL, VL}, E), *ty = tensor(ctx, 1, (int64_t[]){TL}, y);
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &tE);
    sl_dist *h = sl_hmm_make(ctx, tp, tA, em, 0, -1);
    ck_assert(h != NULL);
    double lp = eval_lp(ctx, h, ty);
    rt_value args[2] = {hval(h), rt_tensor(ty)}, out;
    ck_assert(call(vm, "hmm_marginals", 2, args, 0, NULL, NULL, &out) == 0);
    for (int t = 0; t < TL; t++) {
        double tot = 0;
        for (int k = 0; k < KL; k++) tot += bk_get(out.u.t, t * KL + k);
        ck_assert(fabs(tot - 1) < 1e-12);
    }
    rt_release(out);
    const char *kwn[1] = {"iters"};
    rt_value kwv[1] = {rt_tensor(bk_scalar(ctx, 8))};
    ck_assert_msg(call(vm, "baum_welch", 2, args, 1, kwn, kwv, &out) == 0, "%s", rt_vm_errmsg(vm));
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *ll = rt_record_get(rec, "log_likelihoods")->u.t, *fA = rt_record_get(rec, "trans")->u.t;
    ck_assert_msg(fabs(bk_get(ll, 0) - lp) < 1e-9 * fabs(lp), "%.15g vs %.15g", bk_get(ll, 0), lp);
    for (int64_t i = 1; i < ll->numel; i++)
        ck_assert(bk_get(ll, i) >= bk_get(ll, i - 1) - 1e-9 * fabs(bk_get(ll, i)));
    ck_assert(bk_get(ll, ll->numel - 1) > bk_get(ll, 0) + 1);
    for (int i = 0; i < KL; i++) {
        double tot = 0;
        for (int j = 0; j < KL; j++) tot += bk_get(fA, i * KL + j);
        ck_assert(fabs(tot - 1) < 1e-12);
    }
    rt_release(out);
    rt_release(kwv[0]);
    /* one EM step: its trans are the expected transition counts, rows
     * normalized; the counts are A[i, j] d log p / d A[i, j] (the forward
     * op's gradient, itself checked against finite differences) */
    const char *kwn1[1] = {"iters"};
    rt_value kwv1[1] = {rt_tensor(bk_scalar(ctx, 1))};
    ck_assert(call(vm, "baum_welch", 2, args, 1, kwn1, kwv1, &out) == 0);
    fA = rt_record_get((rt_record *)out.u.o, "trans")->u.t;
    double lpi[KL], lE[KL * VL];
    for (int k = 0; k < KL; k++) lpi[k] = log(pi[k]);
    for (int k = 0; k < KL * VL; k++) lE[k] = log(E[k]);
    bk_tensor *in[4] = {tensor(ctx, 1, (int64_t[]){KL}, lpi), tensor(ctx, 2, (int64_t[]){KL, KL}, A),
                        tensor(ctx, 2, (int64_t[]){KL, VL}, lE), ty};
    bk_set_requires_grad(in[1], true);
    bool g = bk_set_grad_enabled(ctx, true);
    bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
    ck_assert(f != NULL && bk_backward(ctx, f) == 0 && in[1]->grad != NULL);
    bk_set_grad_enabled(ctx, g);
    for (int i = 0; i < KL; i++) {
        double row = 0;
        for (int j = 0; j < KL; j++) row += A[i * KL + j] * bk_get(in[1]->grad, i * KL + j);
        for (int j = 0; j < KL; j++) {
            double want = A[i * KL + j] * bk_get(in[1]->grad, i * KL + j) / row;
            ck_assert_msg(fabs(bk_get(fA, i * KL + j) - want) < 1e-10, "trans[%d, %d]", i, j);
        }
    }
    bk_release(f);
    bk_tape_reset(ctx);
    for (int i = 0; i < 3; i++) bk_release(in[i]);
    rt_release(out);
    rt_release(kwv1[0]);
    bk_release(tp);
    bk_release(tA);
    bk_release(tE);
    bk_release(ty);
    sl_dist_release(em);
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

/* The parallel-scan forward equals the sequential op: both forms, a
 * homogeneous and a time-varying trans, a padded batch, 1 to 4 threads,
 * K from 1 to 30 (the BLAS path from 24). */
START_TEST(parallel_scan_forward) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 41, 0);
    const int Ks[] = {1, 2, 3, 8, 30};
    enum { BS = 3, TS = 3000, VS = 5 };
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (int tv = 0; tv <= 1; tv++) {
            int64_t K = Ks[ki], nA = (tv ? TS : 1) * K * K;
            double *A = malloc((size_t)nA * sizeof *A), *lB = malloc(BS * TS * K * sizeof *lB);
            double *lE = malloc((size_t)(K * VS) * sizeof *lE), lpi[30], y[BS * TS];
            for (int64_t i = 0; i < nA / K; i++) rand_simplex(&r, A + i * K, (int)K);
            for (int64_t i = 0; i < BS * TS * K; i++) lB[i] = 3 * bk_rng_normal(&r);
            for (int64_t i = 0; i < K * VS; i++) lE[i] = log(0.05 + bk_rng_uniform(&r));
            for (int64_t k = 0; k < K; k++) lpi[k] = -log((double)K);
            const double L[BS] = {TS, 17, 1};
            for (int b = 0; b < BS; b++)
                for (int t = 0; t < TS; t++) y[b * TS + t] = t < L[b] ? (double)(bk_rng_u32(&r) % VS) : -1.0;
            bk_tensor *tpi = tensor(ctx, 1, (int64_t[]){K}, lpi);
            bk_tensor *tA = tv ? tensor(ctx, 3, (int64_t[]){TS, K, K}, A)
                               : tensor(ctx, 2, (int64_t[]){K, K}, A);
            bk_tensor *tB = tensor(ctx, 3, (int64_t[]){BS, TS, K}, lB);
            bk_tensor *tE = tensor(ctx, 2, (int64_t[]){K, VS}, lE);
            bk_tensor *ty = tensor(ctx, 2, (int64_t[]){BS, TS}, y);
            bk_tensor *tL = tensor(ctx, 1, (int64_t[]){BS}, L);
            for (int cat = 0; cat <= 1; cat++) {
                bk_tensor *in[4] = {tpi, tA, cat ? tE : tB, cat ? ty : tL};
                bk_tensor *ref = bk_apply(ctx, cat ? BK_OP_HMM_FORWARD_CAT : BK_OP_HMM_FORWARD, 4,
                                          in, NULL);
                ck_assert_msg(ref != NULL, "%s", bk_errmsg(ctx));
                for (int nt = 1; nt <= 4; nt++) {
                    double out[BS];
                    ck_assert(bk_hmm_forward_scan(ctx, in, cat, nt, out) == 0);
                    for (int b = 0; b < BS; b++)
                        ck_assert_msg(fabs(out[b] - bk_get(ref, b)) <= 1e-10 * fabs(bk_get(ref, b)),
                                      "K=%d tv=%d cat=%d threads=%d seq %d: %.15g vs %.15g",
                                      (int)K, tv, cat, nt, b, out[b], bk_get(ref, b));
                }
                bk_release(ref);
            }
            bk_release(tpi);
            bk_release(tA);
            bk_release(tB);
            bk_release(tE);
            bk_release(ty);
            bk_release(tL);
            free(A);
            free(lB);
            free(lE);
        }
    bk_ctx_free(ctx);
}
END_TEST

/* ---------------------------------------------------- sample, errors --- */

START_TEST(sample_shapes) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 1, 0);
    model m;
    rand_model(&r, &m, 2, 4, 0, 0);
    sl_dist *h = make_hmm(ctx, &m);
    ck_assert(sl_sample(ctx, &r, h, 0, NULL) == NULL);   /* no length known */
    ck_assert(strstr(bk_errmsg(ctx), "duration") != NULL);
    sl_dist *h2 = sl_hmm_make(ctx, h->p[0], h->p[1], h->sub[0], 0, 12);
    ck_assert(h2 != NULL);
    bk_tensor *s = sl_sample(ctx, &r, h2, 1, (int64_t[]){5});
    ck_assert_msg(s != NULL, "%s", bk_errmsg(ctx));
    ck_assert_int_eq(s->ndim, 2);
    ck_assert_int_eq(s->shape[0], 5);
    ck_assert_int_eq(s->shape[1], 12);
    for (int64_t i = 0; i < s->numel; i++) {
        double v = bk_get(s, i);
        ck_assert(v >= 0 && v <= 2 && v == floor(v));
    }
    bk_tensor *lp = sl_log_prob(ctx, h2, s);   /* [5, 12] is not one sequence */
    ck_assert(lp == NULL);
    bk_release(s);
    sl_dist_release(h2);
    sl_dist_release(h);
    bk_ctx_free(ctx);
}
END_TEST

/* ----------------------------------------------- batches (lengths=) --- */

/* Exact answers for one sequence of m->T steps by enumeration. */
static void enumerate(const model *m, const double *y, double *logZ, double marg[7][3],
                      double *best, int *bestz) {
    int z[7] = {0};
    double tot = 0, shift;
    memset(marg, 0, 7 * sizeof marg[0]);
    *best = -INFINITY;
    if (m->T == 0) {
        *logZ = *best = 0;
        return;
    }
    shift = path_lp(m, z, y);
    do {
        double lp = path_lp(m, z, y), w = exp(lp - shift);
        tot += w;
        for (int t = 0; t < m->T; t++) marg[t][z[t]] += w;
        if (lp > *best) {
            *best = lp;
            memcpy(bestz, z, sizeof z);
        }
    } while (next_path(z, m->T, m->K));
    for (int t = 0; t < m->T; t++)
        for (int k = 0; k < m->K; k++) marg[t][k] /= tot;
    *logZ = shift + log(tot);
}

enum { NB = 4, TB = 7 };
static const double LENS[NB] = {7, 3, 0, 5};

/* A batch of NB sequences padded to TB steps (padding: NaN for Normal, -1
 * for Categorical, which the emission must never see), checked per
 * sequence against enumeration: log_prob, Viterbi, marginals, filter,
 * FFBS paths (within the sequence's length) and the padding of results. */
static void check_batch(rt_vm *vm, bk_rng *r, int K, int normal, int tv) {
    bk_ctx *ctx = rt_vm_bk(vm);
    model m;
    double y[NB * TB];
    rand_model(r, &m, K, TB, normal, tv);
    for (int b = 0; b < NB; b++) {
        rand_obs(r, &m, y + b * TB);
        for (int t = (int)LENS[b]; t < TB; t++) y[b * TB + t] = normal ? NAN : -1;
    }
    sl_dist *h1 = make_hmm(ctx, &m);
    bk_tensor *L = tensor(ctx, 1, (int64_t[]){NB}, LENS);
    sl_dist *h = sl_hmm_make_batch(ctx, h1->p[0], h1->p[1], h1->sub[0], 0, -1, L);
    ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
    ck_assert_int_eq(h->nbatch, 1);
    ck_assert_int_eq(h->batch[0], NB);
    bk_tensor *yt = tensor(ctx, 2, (int64_t[]){NB, TB}, y);
    bk_tensor *lp = sl_log_prob(ctx, h, yt);
    ck_assert_msg(lp && lp->ndim == 1 && lp->shape[0] == NB, "%s", bk_errmsg(ctx));
    rt_value args[2] = {hval(h), rt_tensor(yt)}, vit, mg, fl, ss;
    ck_assert(call(vm, "hmm_viterbi", 2, args, 0, NULL, NULL, &vit) == 0);
    ck_assert(call(vm, "hmm_marginals", 2, args, 0, NULL, NULL, &mg) == 0);
    ck_assert(call(vm, "hmm_filter", 2, args, 0, NULL, NULL, &fl) == 0);
    ck_assert(call(vm, "hmm_sample_states", 2, args, 0, NULL, NULL, &ss) == 0);
    bk_tensor *path = rt_record_get((rt_record *)vit.u.o, "path")->u.t;
    bk_tensor *vlp = rt_record_get((rt_record *)vit.u.o, "log_prob")->u.t;
    bk_tensor *fp = ((sl_dist *)fl.u.o)->p[0];
    ck_assert_int_eq(path->numel, NB * TB);
    ck_assert_int_eq(mg.u.t->numel, NB * TB * K);
    ck_assert_int_eq(fp->numel, NB * K);
    for (int b = 0; b < NB; b++) {
        model mb = m;
        mb.T = (int)LENS[b];
        double logZ, marg[7][3], best;
        int bestz[7] = {0};
        enumerate(&mb, y + b * TB, &logZ, marg, &best, bestz);
        ck_assert_msg(fabs(bk_get(lp, b) - logZ) < 1e-10, "K=%d seq %d: log_prob %.15g vs %.15g",
                      K, b, bk_get(lp, b), logZ);
        ck_assert(fabs(bk_get(vlp, b) - best) < 1e-10);
        for (int t = 0; t < TB; t++) {
            ck_assert_int_eq((int)bk_get(path, b * TB + t), t < mb.T ? bestz[t] : -1);
            double zs = bk_get(ss.u.t, b * TB + t);
            ck_assert(t < mb.T ? zs >= 0 && zs < K : zs == -1);
            for (int k = 0; k < K; k++)
                ck_assert(fabs(bk_get(mg.u.t, (b * TB + t) * K + k) -
                               (t < mb.T ? marg[t][k] : 0)) < 1e-10);
        }
        for (int k = 0; k < K; k++)
            ck_assert(fabs(bk_get(fp, b * K + k) - (mb.T ? marg[mb.T - 1][k] : m.pi[k])) < 1e-10);
    }
    rt_release(vit);
    rt_release(mg);
    rt_release(fl);
    rt_release(ss);
    bk_release(lp);
    bk_release(yt);
    bk_release(L);
    sl_dist_release(h);
    sl_dist_release(h1);
}

START_TEST(batch_brute_force) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 17, 0);
    for (int K = 1; K <= 3; K++)
        for (int normal = 0; normal <= 1; normal++)
            for (int tv = 0; tv <= 1; tv++) check_batch(vm, &r, K, normal, tv);
    rt_vm_free(vm);
}
END_TEST

/* Gradients of the summed batch log-likelihood (Normal emission, padding
 * NaN: a NaN reaching the emission would poison every gradient). */
START_TEST(batch_gradients) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 21, 0);
    model m;
    rand_model(&r, &m, 3, TB, 1, 0);
    double y[NB * TB], tr[9];
    for (int b = 0; b < NB; b++) {
        rand_obs(&r, &m, y + b * TB);
        for (int t = (int)LENS[b]; t < TB; t++) y[b * TB + t] = NAN;
    }
    for (int i = 0; i < 9; i++) tr[i] = m.A[0][i / 3][i % 3];
    bk_tensor *leaf[4] = {tensor(ctx, 1, (int64_t[]){3}, m.pi), tensor(ctx, 2, (int64_t[]){3, 3}, tr),
                          tensor(ctx, 1, (int64_t[]){3}, m.mu), tensor(ctx, 1, (int64_t[]){3}, m.sd)};
    bk_tensor *L = tensor(ctx, 1, (int64_t[]){NB}, LENS);
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, leaf + 2);
    sl_dist *h = sl_hmm_make_batch(ctx, leaf[0], leaf[1], em, 0, -1, L);
    ck_assert(h != NULL);
    bk_tensor *yt = tensor(ctx, 2, (int64_t[]){NB, TB}, y);
    check_grads(ctx, h, yt, leaf, 4);
    /* the batched value is the sum of the per-sequence values */
    double tot = 0;
    for (int b = 0; b < NB; b++) {
        bk_tensor *yb = sl_hmm_seq(ctx, h, yt, b);
        sl_dist *hb = sl_hmm_make(ctx, leaf[0], leaf[1], em, 0, -1);
        tot += eval_lp(ctx, hb, yb);
        sl_dist_release(hb);
        bk_release(yb);
    }
    ck_assert(fabs(tot - eval_lp(ctx, h, yt)) < 1e-10);
    bk_release(yt);
    bk_release(L);
    sl_dist_release(h);
    sl_dist_release(em);
    for (int i = 0; i < 4; i++) bk_release(leaf[i]);
    bk_ctx_free(ctx);
}
END_TEST

START_TEST(batch_errors) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 3, 0);
    model m;
    rand_model(&r, &m, 2, 4, 0, 1);
    sl_dist *h = make_hmm(ctx, &m);
    bk_tensor *L = tensor(ctx, 1, (int64_t[]){2}, (double[]){4, 5});
    ck_assert(sl_hmm_make_batch(ctx, h->p[0], h->p[1], h->sub[0], 0, -1, L) == NULL);
    ck_assert_str_eq(bk_errmsg(ctx), "DiscreteHMM: lengths[1] = 5 exceeds the 4 steps of trans");
    bk_tensor *L2 = tensor(ctx, 1, (int64_t[]){2}, (double[]){4, 1.5});
    ck_assert(sl_hmm_make_batch(ctx, h->p[0], h->p[1], h->sub[0], 0, -1, L2) == NULL);
    ck_assert_str_eq(bk_errmsg(ctx), "DiscreteHMM: lengths must be a non-negative integer, got 1.5");
    bk_tensor *L3 = tensor(ctx, 1, (int64_t[]){2}, (double[]){4, 2});
    sl_dist *hb = sl_hmm_make_batch(ctx, h->p[0], h->p[1], h->sub[0], 0, -1, L3);
    ck_assert(hb != NULL);
    bk_tensor *y3 = bk_zeros(ctx, BK_F64, 2, (int64_t[]){3, 4});
    ck_assert(sl_log_prob(ctx, hb, y3) == NULL);
    ck_assert(strstr(bk_errmsg(ctx), "must have shape [B, T] with B = 2") != NULL);
    /* a batch sample: [2, 4], padded with 0 past each length */
    bk_tensor *s = sl_sample(ctx, &r, hb, 0, NULL);
    ck_assert_msg(s && s->ndim == 2 && s->shape[0] == 2 && s->shape[1] == 4, "%s", bk_errmsg(ctx));
    ck_assert(bk_get(s, 6) == 0 && bk_get(s, 7) == 0);
    bk_tensor *lp = sl_log_prob(ctx, hb, s);
    ck_assert(lp && lp->numel == 2 && isfinite(bk_get(lp, 0)) && isfinite(bk_get(lp, 1)));
    bk_release(lp);
    bk_release(s);
    /* homogeneous trans: the sample is as long as the longest sequence */
    model m2;
    rand_model(&r, &m2, 2, 1, 0, 0);
    sl_dist *hh = make_hmm(ctx, &m2);
    bk_tensor *L4 = tensor(ctx, 1, (int64_t[]){3}, (double[]){2, 6, 0});
    sl_dist *hb2 = sl_hmm_make_batch(ctx, hh->p[0], hh->p[1], hh->sub[0], 0, -1, L4);
    ck_assert(hb2 != NULL);
    bk_tensor *s2 = sl_sample(ctx, &r, hb2, 1, (int64_t[]){4});
    ck_assert_msg(s2 && s2->ndim == 3 && s2->shape[0] == 4 && s2->shape[1] == 3 &&
                  s2->shape[2] == 6, "%s", bk_errmsg(ctx));
    for (int64_t n = 0; n < 4; n++)
        for (int64_t t = 0; t < 6; t++) {
            ck_assert(t < 2 || bk_get(s2, (n * 3 + 0) * 6 + t) == 0);
            ck_assert(bk_get(s2, (n * 3 + 2) * 6 + t) == 0);
        }
    /* lengths beyond duration */
    ck_assert(sl_hmm_make_batch(ctx, hh->p[0], hh->p[1], hh->sub[0], 0, 5, L4) == NULL);
    ck_assert_str_eq(bk_errmsg(ctx), "DiscreteHMM: lengths[1] = 6 exceeds the 5 steps of duration");
    bk_release(s2);
    bk_release(L4);
    sl_dist_release(hb2);
    sl_dist_release(hh);
    bk_release(y3);
    bk_release(L);
    bk_release(L2);
    bk_release(L3);
    sl_dist_release(hb);
    sl_dist_release(h);
    bk_ctx_free(ctx);
}
END_TEST

/* Long sequences, where the scales' product must be flushed to the log
 * many times: log_prob (Categorical fast path and Normal with a tiny sd,
 * whose per-step likelihoods are far from 1) against a log-space forward
 * written here, with a logsumexp per entry. */
static double logspace_forward(const model *m, int64_t T, const double *y) {
    int K = m->K;
    double a[3], n[3];
    for (int k = 0; k < K; k++) a[k] = log(m->pi[k]) + emit_lp(m, k, y[0]);
    for (int64_t t = 1; t < T; t++) {
        for (int j = 0; j < K; j++) {
            double mx = -INFINITY, s = 0;
            for (int i = 0; i < K; i++) mx = fmax(mx, a[i] + log(m->A[0][i][j]));
            for (int i = 0; i < K; i++) s += exp(a[i] + log(m->A[0][i][j]) - mx);
            n[j] = mx + log(s) + emit_lp(m, j, y[t]);
        }
        memcpy(a, n, sizeof a);
    }
    double mx = -INFINITY, s = 0;
    for (int k = 0; k < K; k++) mx = fmax(mx, a[k]);
    for (int k = 0; k < K; k++) s += exp(a[k] - mx);
    return mx + log(s);
}

START_TEST(long_sequences) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 31, 0);
    enum { TL = 20000 };
    double *y = malloc(TL * sizeof *y);
    for (int normal = 0; normal <= 1; normal++) {
        model m;
        rand_model(&r, &m, 3, 1, normal, 0);
        for (int k = 0; k < 3; k++) m.sd[k] = 1e-3 * (1 + k);
        for (int64_t t = 0; t < TL; t++)
            y[t] = normal ? m.mu[bk_rng_u32(&r) % 3] + 0.01 * bk_rng_normal(&r)
                          : (double)(bk_rng_u32(&r) % 3);
        sl_dist *h = make_hmm(ctx, &m);
        bk_tensor *yt = tensor(ctx, 1, (int64_t[]){TL}, y);
        double want = logspace_forward(&m, TL, y), got = eval_lp(ctx, h, yt);
        ck_assert_msg(fabs(got - want) < 1e-9 * fabs(want), "normal=%d: %.15g vs %.15g", normal,
                      got, want);
        bk_release(yt);
        sl_dist_release(h);
    }
    free(y);
    bk_ctx_free(ctx);
}
END_TEST

START_TEST(error_messages) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_tensor *pi = tensor(ctx, 1, (int64_t[]){2}, (double[]){0.5, 0.5});
    bk_tensor *bad_pi = tensor(ctx, 1, (int64_t[]){2}, (double[]){0.5, 0.4});
    bk_tensor *A = tensor(ctx, 2, (int64_t[]){2, 2}, (double[]){0.5, 0.5, 0.4, 0.3});
    bk_tensor *ok_A = tensor(ctx, 2, (int64_t[]){2, 2}, (double[]){0.5, 0.5, 0.4, 0.6});
    bk_tensor *p3 = tensor(ctx, 2, (int64_t[]){3, 2}, (double[]){0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
    sl_dist *em3 = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &p3);
    ck_assert(em3 != NULL);

    /* through the constructor: the message is located at the argument */
    rt_value args[3] = {rt_tensor(pi), rt_tensor(A), rt_obj_value(&em3->h)};
    rt_loc loc[3] = {{1, 13, 1, 22}, {1, 24, 1, 50}, {1, 52, 1, 60}};
    rt_call c;
    memset(&c, 0, sizeof c);
    c.nargs = 3, c.args = args, c.argloc = loc, c.name = "DiscreteHMM", c.self = rt_none();
    const sl_family *fam = sl_find_family("DiscreteHMM");
    ck_assert(fam != NULL);
    sl_dist *d = sl_dist_new(fam);
    sl_args a = {vm, &c};
    ck_assert(fam->build(&a, d) == -1);
    sl_dist_release(d);
    char *msg = rt_vm_errmsg(vm);
    ck_assert_msg(strstr(msg, "DiscreteHMM: trans rows must sum to 1, got 0.7 in row 1"), "%s", msg);
    free(msg);
    rt_vm_clear_error(vm);

    ck_assert(sl_hmm_make(ctx, bad_pi, ok_A, em3, 0, -1) == NULL);
    ck_assert_str_eq(bk_errmsg(ctx), "DiscreteHMM: init must sum to 1, got 0.9");
    ck_assert(sl_hmm_make(ctx, pi, ok_A, em3, 0, -1) == NULL);
    ck_assert_str_eq(bk_errmsg(ctx),
                     "DiscreteHMM: emission must have batch shape [2] (one per state), got [3]");
    bk_release(pi);
    bk_release(bad_pi);
    bk_release(A);
    bk_release(ok_A);
    bk_release(p3);
    sl_dist_release(em3);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hmm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, brute_force);
    tcase_add_test(tc, gradients_probs_normal);
    tcase_add_test(tc, gradients_logits_categorical_timevarying);
    tcase_add_test(tc, ffbs_frequencies);
    tcase_add_test(tc, baum_welch_normal_recovery);
    tcase_add_test(tc, baum_welch_categorical_monotone);
    tcase_add_test(tc, sample_shapes);
    tcase_add_test(tc, error_messages);
    tcase_add_test(tc, batch_brute_force);
    tcase_add_test(tc, batch_gradients);
    tcase_add_test(tc, batch_errors);
    tcase_add_test(tc, long_sequences);
    tcase_add_test(tc, baum_welch_large_k);
    tcase_add_test(tc, parallel_scan_forward);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
