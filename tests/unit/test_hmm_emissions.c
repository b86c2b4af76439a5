/* test_hmm_emissions.c - DiscreteHMM with the emission families other than
 * Categorical and Normal (test_hmm.c has those): Poisson, Exponential,
 * MultivariateNormal (scale_tril) and products of Bernoullis made by
 * to_event(1), by probs and by logits.  For each: log_prob, the Viterbi path
 * and its log-probability, the marginals and the filter against brute-force
 * enumeration of all K^T paths (emission densities written out here, not
 * taken from the library), to 1e-10; gradients of log_prob in init, trans
 * and every emission parameter against central finite differences; and
 * sample(): the mean of y[t] over many draws against sum_k p(z_t = k) E[y | k].
 * Also the keyword forms init_logits= and trans_logits= (homogeneous and
 * [T, K, K], with lengths=) from a script: unnormalized logits (any shift
 * per row) give the probabilities' results. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "hmm.h"
#include "rng.h"
#include "vm.h"
#include "vm_fixture.h"

enum { FAM_POISSON, FAM_EXPONENTIAL, FAM_MVN, FAM_BERN_PROBS, FAM_BERN_LOGITS, NFAM };
static const char *const FAM_NAME[NFAM] = {"Poisson", "Exponential", "MultivariateNormal",
                                           "Bernoulli(probs).to_event(1)", "Bernoulli(logits).to_event(1)"};

enum { K = 3, T = 5, D = 2, B = 3 };   /* states, steps, MVN dimension, Bernoulli dimension */

/* One HMM: parameters and an observed sequence (y[t][0..dim-1]). */
typedef struct hmm {
    int fam, dim;                 /* dim: the emission's event size (1 for scalars) */
    double pi[K], A[K][K];
    double rate[K];               /* Poisson, Exponential */
    double mu[K][D], L[D][D];     /* MVN: loc per state, one lower Cholesky factor */
    double q[K][B];               /* Bernoulli: probs, or logits */
    double y[T][B];
} hmm;

static void rand_simplex(bk_rng *r, double *p, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += p[i] = 0.2 + bk_rng_uniform(r);
    for (int i = 0; i < n; i++) p[i] /= s;
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

static void rand_hmm(bk_rng *r, hmm *h, int fam) {
    memset(h, 0, sizeof *h);
    h->fam = fam;
    h->dim = fam == FAM_MVN ? D : fam >= FAM_BERN_PROBS ? B : 1;
    rand_simplex(r, h->pi, K);
    for (int i = 0; i < K; i++) rand_simplex(r, h->A[i], K);
    for (int k = 0; k < K; k++) {
        h->rate[k] = 0.5 + 4 * bk_rng_uniform(r);
        for (int j = 0; j < D; j++) h->mu[k][j] = 3 * bk_rng_normal(r);
        for (int j = 0; j < B; j++)
            h->q[k][j] = fam == FAM_BERN_LOGITS ? 2 * bk_rng_normal(r) : 0.1 + 0.8 * bk_rng_uniform(r);
    }
    h->L[0][0] = 1.3, h->L[1][0] = -0.6, h->L[1][1] = 0.8;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < h->dim; j++) {
            double u = bk_rng_uniform(r);
            switch (fam) {
            case FAM_POISSON: h->y[t][j] = floor(6 * u); break;
            case FAM_EXPONENTIAL: h->y[t][j] = 3 * u; break;
            case FAM_MVN: h->y[t][j] = 8 * u - 4; break;
            default: h->y[t][j] = u < 0.5;
            }
        }
}

/* log p(y[t] | z_t = k), written out from the textbook densities. */
static double emit_lp(const hmm *h, int k, int t) {
    const double *y = h->y[t];
    switch (h->fam) {
    case FAM_POISSON: return y[0] * log(h->rate[k]) - h->rate[k] - lgamma(y[0] + 1);
    case FAM_EXPONENTIAL: return log(h->rate[k]) - h->rate[k] * y[0];
    case FAM_MVN: {
        /* z = L^-1 (y - mu) by forward substitution */
        double z0 = (y[0] - h->mu[k][0]) / h->L[0][0];
        double z1 = (y[1] - h->mu[k][1] - h->L[1][0] * z0) / h->L[1][1];
        return -0.5 * (z0 * z0 + z1 * z1) - log(h->L[0][0]) - log(h->L[1][1]) - log(2 * M_PI);
    }
    default: {
        double s = 0;
        for (int j = 0; j < B; j++) {
            double p = h->fam == FAM_BERN_LOGITS ? sigmoid(h->q[k][j]) : h->q[k][j];
            s += y[j] ? log(p) : log1p(-p);
        }
        return s;
    }
    }
}

static double path_lp(const hmm *h, const int *z) {
    double lp = log(h->pi[z[0]]) + emit_lp(h, z[0], 0);
    for (int t = 1; t < T; t++) lp += log(h->A[z[t - 1]][z[t]]) + emit_lp(h, z[t], t);
    return lp;
}

static bool next_path(int *z) {
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

/* The HMM's tensors: leaf[0] init, leaf[1] trans, then the emission's
 * parameters (the ones a gradient is checked for). */
typedef struct built {
    sl_dist *h;
    bk_tensor *leaf[4];
    int nleaf;
    bk_tensor *y;
} built;

static void build(bk_ctx *ctx, const hmm *m, built *b, int64_t duration) {
    memset(b, 0, sizeof *b);
    b->leaf[0] = tensor(ctx, 1, (int64_t[]){K}, m->pi);
    b->leaf[1] = tensor(ctx, 2, (int64_t[]){K, K}, &m->A[0][0]);
    sl_dist *em = NULL;
    switch (m->fam) {
    case FAM_POISSON:
    case FAM_EXPONENTIAL:
        b->leaf[2] = tensor(ctx, 1, (int64_t[]){K}, m->rate);
        em = sl_dist_make(ctx, sl_find_family(m->fam == FAM_POISSON ? "Poisson" : "Exponential"), 0, 1, b->leaf + 2);
        b->nleaf = 3;
        break;
    case FAM_MVN:
        b->leaf[2] = tensor(ctx, 2, (int64_t[]){K, D}, &m->mu[0][0]);
        b->leaf[3] = tensor(ctx, 2, (int64_t[]){D, D}, &m->L[0][0]);
        em = sl_dist_make(ctx, sl_find_family("MultivariateNormal"), 1, 2, b->leaf + 2);   /* scale_tril */
        b->nleaf = 4;
        break;
    default: {
        b->leaf[2] = tensor(ctx, 2, (int64_t[]){K, B}, &m->q[0][0]);
        sl_dist *be = sl_dist_make(ctx, sl_find_family("Bernoulli"), m->fam == FAM_BERN_LOGITS, 1, b->leaf + 2);
        ck_assert_msg(be != NULL, "%s", bk_errmsg(ctx));
        em = sl_to_event(ctx, be, 1);
        sl_dist_release(be);
        b->nleaf = 3;
    }
    }
    ck_assert_msg(em != NULL, "%s: %s", FAM_NAME[m->fam], bk_errmsg(ctx));
    ck_assert_int_eq(em->nbatch, 1);
    ck_assert_int_eq(em->batch[0], K);
    b->h = sl_hmm_make(ctx, b->leaf[0], b->leaf[1], em, 0, duration);
    ck_assert_msg(b->h != NULL, "%s: %s", FAM_NAME[m->fam], bk_errmsg(ctx));
    sl_dist_release(em);
    double y[T * B];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < m->dim; j++) y[t * m->dim + j] = m->y[t][j];
    b->y = m->dim == 1 || m->fam == FAM_POISSON || m->fam == FAM_EXPONENTIAL
               ? tensor(ctx, 1, (int64_t[]){T}, y)
               : tensor(ctx, 2, (int64_t[]){T, m->dim}, y);
}

static void unbuild(built *b) {
    sl_dist_release(b->h);
    for (int i = 0; i < b->nleaf; i++) bk_release(b->leaf[i]);
    bk_release(b->y);
}

static int call(rt_vm *vm, const char *name, rt_value *args, rt_value *out) {
    rt_loc loc[2];
    memset(loc, 0, sizeof loc);
    rt_call c;
    memset(&c, 0, sizeof c);
    c.nargs = 2, c.args = args, c.argloc = loc, c.kwloc = loc, c.name = name, c.self = rt_none();
    for (int i = 0; inf_hmm_builtins[i].name; i++)
        if (strcmp(inf_hmm_builtins[i].name, name) == 0) return inf_hmm_builtins[i].fn(vm, &c, out);
    ck_abort_msg("no built-in %s", name);
    return -1;
}

/* ----------------------------------------------------- brute force --- */

static void check_brute(rt_vm *vm, const hmm *m) {
    bk_ctx *ctx = rt_vm_bk(vm);
    const char *fn = FAM_NAME[m->fam];
    int z[T] = {0}, bestz[T] = {0};
    double marg[T][K] = {{0}}, best = -INFINITY, tot = 0, shift = path_lp(m, z);
    do {
        double lp = path_lp(m, z), w = exp(lp - shift);
        tot += w;
        for (int t = 0; t < T; t++) marg[t][z[t]] += w;
        if (lp > best) {
            best = lp;
            memcpy(bestz, z, sizeof z);
        }
    } while (next_path(z));
    double logZ = shift + log(tot);

    built b;
    build(ctx, m, &b, -1);
    bk_tensor *lp = sl_log_prob(ctx, b.h, b.y);
    ck_assert_msg(lp && lp->ndim == 0, "%s: %s", fn, bk_errmsg(ctx));
    ck_assert_msg(fabs(bk_item(lp) - logZ) < 1e-10, "%s: log_prob %.15g vs %.15g", fn, bk_item(lp), logZ);
    bk_release(lp);

    rt_value args[2] = {rt_obj_value(&b.h->h), rt_tensor(b.y)}, out;
    ck_assert_msg(call(vm, "hmm_viterbi", args, &out) == 0, "%s: %s", fn, rt_vm_errmsg(vm));
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *path = rt_record_get(rec, "path")->u.t;
    ck_assert_msg(fabs(bk_item(rt_record_get(rec, "log_prob")->u.t) - best) < 1e-10, "%s: viterbi", fn);
    for (int t = 0; t < T; t++) ck_assert_msg((int)bk_get(path, t) == bestz[t], "%s: path[%d]", fn, t);
    rt_release(out);

    ck_assert_msg(call(vm, "hmm_marginals", args, &out) == 0, "%s: %s", fn, rt_vm_errmsg(vm));
    ck_assert_int_eq(out.u.t->numel, T * K);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++)
            ck_assert_msg(fabs(bk_get(out.u.t, t * K + k) - marg[t][k] / tot) < 1e-10, "%s: marginal [%d, %d]",
                          fn, t, k);
    rt_release(out);

    ck_assert(call(vm, "hmm_filter", args, &out) == 0);
    sl_dist *f = (sl_dist *)out.u.o;
    for (int k = 0; k < K; k++)
        ck_assert_msg(fabs(bk_get(f->p[0], k) - marg[T - 1][k] / tot) < 1e-10, "%s: filter", fn);
    rt_release(out);
    unbuild(&b);
}

START_TEST(brute_force) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 17, 0);
    for (int fam = 0; fam < NFAM; fam++)
        for (int rep = 0; rep < 3; rep++) {
            hmm m;
            rand_hmm(&r, &m, fam);
            check_brute(vm, &m);
        }
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------------------------- gradients --- */

static double eval_lp(bk_ctx *ctx, const built *b) {
    bool g = bk_set_grad_enabled(ctx, false);
    bk_tensor *lp = sl_log_prob(ctx, b->h, b->y);
    bk_set_grad_enabled(ctx, g);
    ck_assert(lp != NULL);
    double v = bk_item(lp);
    bk_release(lp);
    return v;
}

/* Every leaf entry's gradient against central differences, perturbing the
 * leaf's data in place (the HMM keeps the same tensors).  The upper
 * triangle of a scale_tril is not a parameter and is skipped. */
static void check_grads(bk_ctx *ctx, const hmm *m, built *b) {
    for (int i = 0; i < b->nleaf; i++) bk_set_requires_grad(b->leaf[i], true);
    bk_tensor *lp = sl_log_prob(ctx, b->h, b->y);
    ck_assert_msg(lp != NULL, "%s", bk_errmsg(ctx));
    ck_assert(bk_backward(ctx, lp) == 0);
    bk_release(lp);
    bk_tape_reset(ctx);
    for (int i = 0; i < b->nleaf; i++) {
        double *v = bk_data(b->leaf[i]);
        ck_assert_msg(b->leaf[i]->grad != NULL, "%s: no gradient for leaf %d", FAM_NAME[m->fam], i);
        for (int64_t k = 0; k < b->leaf[i]->numel; k++) {
            if (m->fam == FAM_MVN && i == 3 && k % D > k / D) continue;
            double x = v[k], e = 1e-5 * fmax(1.0, fabs(x));
            v[k] = x + e;
            double up = eval_lp(ctx, b);
            v[k] = x - e;
            double dn = eval_lp(ctx, b);
            v[k] = x;
            double fd = (up - dn) / (2 * e), g = bk_get(b->leaf[i]->grad, k);
            ck_assert_msg(fabs(g - fd) <= 1e-6 * fmax(1.0, fabs(fd)), "%s: leaf %d elem %lld: grad %.12g vs fd %.12g",
                          FAM_NAME[m->fam], i, (long long)k, g, fd);
        }
    }
}

START_TEST(gradients) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 23, 0);
    for (int fam = 0; fam < NFAM; fam++) {
        hmm m;
        rand_hmm(&r, &m, fam);
        built b;
        build(ctx, &m, &b, -1);
        check_grads(ctx, &m, &b);
        unbuild(&b);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* --------------------------------------------------------- sample() --- */

/* E[y_t] = sum_k p(z_t = k) E[y | k], p(z_t) = init A^t; the mean of N
 * draws must be within 5 standard errors (from the draws) of it for every
 * t and every coordinate, and every draw in the emission's support. */
START_TEST(sample_moments) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r, s;
    bk_rng_init(&r, 29, 0);
    bk_rng_init(&s, 31, 0);
    enum { N = 20000 };
    for (int fam = 0; fam < NFAM; fam++) {
        hmm m;
        rand_hmm(&r, &m, fam);
        built b;
        build(ctx, &m, &b, T);
        bk_tensor *ys = sl_sample(ctx, &s, b.h, 1, (int64_t[]){N});
        ck_assert_msg(ys != NULL, "%s: %s", FAM_NAME[fam], bk_errmsg(ctx));
        ck_assert_int_eq(ys->numel, (int64_t)N * T * m.dim);
        ck_assert_int_eq(ys->shape[0], N);
        ck_assert_int_eq(ys->shape[1], T);
        double pz[K];
        memcpy(pz, m.pi, sizeof pz);
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < m.dim; j++) {
                double want = 0, sum = 0, sum2 = 0;
                for (int k = 0; k < K; k++) {
                    double mk = m.fam == FAM_POISSON       ? m.rate[k]
                                : m.fam == FAM_EXPONENTIAL ? 1 / m.rate[k]
                                : m.fam == FAM_MVN         ? m.mu[k][j]
                                : m.fam == FAM_BERN_LOGITS ? sigmoid(m.q[k][j])
                                                           : m.q[k][j];
                    want += pz[k] * mk;
                }
                for (int n = 0; n < N; n++) {
                    double v = bk_get(ys, ((int64_t)n * T + t) * m.dim + j);
                    if (m.fam == FAM_POISSON) ck_assert(v >= 0 && v == floor(v));
                    if (m.fam == FAM_EXPONENTIAL) ck_assert(v >= 0);
                    if (m.fam >= FAM_BERN_PROBS) ck_assert(v == 0 || v == 1);
                    sum += v;
                    sum2 += v * v;
                }
                double mean = sum / N, se = sqrt((sum2 / N - mean * mean) / N);
                ck_assert_msg(fabs(mean - want) < 5 * se, "%s: E[y[%d][%d]] %g, want %g (se %g)", FAM_NAME[fam], t,
                              j, mean, want, se);
            }
            double nz[K] = {0};
            for (int i = 0; i < K; i++)
                for (int k = 0; k < K; k++) nz[k] += pz[i] * m.A[i][k];
            memcpy(pz, nz, sizeof pz);
        }
        bk_release(ys);
        unbuild(&b);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* ---------------------------------------------- logits keywords --- */

START_TEST(logits_keywords) {
    rt_vm *vm = vm_running(
        "A = [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]]\n"
        "p0 = [0.5, 0.3, 0.2]\n"
        "shift = [[1.5], [-2.0], [0.25]]\n"
        "y = [0, 3, 7, 1, 2, 4]\n"
        "em = Poisson([0.5, 2.0, 6.0])\n"
        "hp = DiscreteHMM(p0, A, em)\n"
        "hl = DiscreteHMM(init_logits=log(p0) + 3.0, trans_logits=log(A) + shift, emission=em)\n"
        "d1 = abs(hp.log_prob(y) - hl.log_prob(y))\n"
        "d2 = max(abs(hmm_marginals(hp, y) - hmm_marginals(hl, y)))\n"
        "d3 = sum(hmm_viterbi(hp, y).path != hmm_viterbi(hl, y).path)\n"
        "d4 = abs(hmm_viterbi(hp, y).log_prob - hmm_viterbi(hl, y).log_prob)\n"
        "At = stack([A, A[[2, 0, 1]], A[[1, 2, 0]], A, A[[2, 1, 0]], A])\n"
        "htp = DiscreteHMM(p0, At, em, lengths=[6, 4])\n"
        "htl = DiscreteHMM(p0, trans_logits=log(At) - 7.0, emission=em, lengths=[6, 4])\n"
        "ys = [y, [2, 2, 0, 5, -1, -1]]\n"
        "d5 = max(abs(htp.log_prob(ys) - htl.log_prob(ys)))\n");
    static const char *const names[] = {"d1", "d2", "d3", "d4", "d5"};
    for (int i = 0; i < 5; i++) {
        rt_value *v = rt_global_get(vm, names[i]);
        ck_assert(v && v->tag == RT_TENSOR);
        ck_assert_msg(bk_item(v->u.t) < 1e-12, "%s = %g", names[i], bk_item(v->u.t));
    }
    /* the time-varying rows really were used: sequence 1 differs from a
     * homogeneous HMM's value */
    rt_vm_free(vm);
    vm = vm_running("A = [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]]\n"
                    "At = stack([A, A[[2, 0, 1]], A, A])\n"
                    "h1 = DiscreteHMM([0.5, 0.3, 0.2], trans_logits=log(At), emission=Poisson([0.5, 2.0, 6.0]))\n"
                    "h2 = DiscreteHMM([0.5, 0.3, 0.2], A, Poisson([0.5, 2.0, 6.0]))\n"
                    "d = abs(h1.log_prob([0, 3, 7, 1]) - h2.log_prob([0, 3, 7, 1]))\n");
    ck_assert(bk_item(rt_global_get(vm, "d")->u.t) > 1e-3);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hmm_emissions");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, brute_force);
    tcase_add_test(tc, gradients);
    tcase_add_test(tc, sample_moments);
    tcase_add_test(tc, logits_keywords);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
