/* test_dist.c - distributions: log densities and moments against the
 * scipy/mpmath fixtures, sampling (KS / chi-square, mean and variance),
 * rsample and log_prob gradients against finite differences, shapes
 * (batch / event, to_event, expand, mask), KL values and error messages. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "rng.h"

/* ------------------------------------------------------------ helpers --- */

/* "v" (scalar), "v,v" or "v," (vector), "v,v;v,v;" (matrix) -> tensor */
static bk_tensor *parse_tensor(bk_ctx *ctx, const char *s) {
    double v[256];
    int n = 0, rows = 0, vec = strchr(s, ',') != NULL || strchr(s, ';') != NULL;
    const char *p = s;
    while (*p && n < 256) {
        char *end;
        v[n++] = strtod(p, &end);
        if (*end == ';') rows++;
        if (!*end) break;
        p = end + 1;
    }
    if (!vec) return bk_scalar(ctx, v[0]);
    if (!strchr(s, ';')) return bk_from_f64(ctx, 1, (int64_t[]){n}, v);
    return bk_from_f64(ctx, 2, (int64_t[]){rows, n / rows}, v);
}

static bool near(double a, double ref, double rel, double abs_tol) {
    if (isnan(ref)) return true;
    if (isinf(ref)) return a == ref;
    if (!isfinite(a)) return false;
    return fabs(a - ref) <= rel * fmax(1.0, fabs(ref)) + abs_tol;
}

static sl_dist *make(bk_ctx *ctx, const char *fam, int variant, int np, bk_tensor **p) {
    const sl_family *f = sl_find_family(fam);
    ck_assert_msg(f != NULL, "family %s not registered", fam);
    sl_dist *d = sl_dist_make(ctx, f, variant, np, p);
    ck_assert_msg(d != NULL, "%s: %s", fam, bk_errmsg(ctx));
    return d;
}

/* A distribution from scalar parameters. */
static sl_dist *make_s(bk_ctx *ctx, const char *fam, int variant, int np, const double *v) {
    bk_tensor *p[SL_MAXP];
    for (int i = 0; i < np; i++) p[i] = bk_scalar(ctx, v[i]);
    sl_dist *d = make(ctx, fam, variant, np, p);
    for (int i = 0; i < np; i++) bk_release(p[i]);
    return d;
}

/* --------------------------------------------------------- fixtures --- */

static int check_value(const char *what, const char *line, bk_tensor *t, bk_tensor *ref,
                       double cond, double abs_tol) {
    int bad = 0;
    if (!t) {
        fprintf(stderr, "%s failed (%s): %s\n", what, line, bk_errmsg(ref->ctx));
        return 1;
    }
    if (t->numel != ref->numel) {
        fprintf(stderr, "%s: %lld values, expected %lld (%s)\n", what, (long long)t->numel,
                (long long)ref->numel, line);
        return 1;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        double a = bk_get(t, i), r = bk_get(ref, i);
        if (!near(a, r, 1e-10, 1e-15 * cond + abs_tol)) {
            if (bad++ == 0)
                fprintf(stderr, "%s: got %.17g, expected %.17g (%s)\n", what, a, r, line);
        }
    }
    return bad != 0;
}

START_TEST(test_fixtures) {
    FILE *f = fopen("tests/fixtures/dist_logprob.txt", "r");
    ck_assert_msg(f != NULL, "missing tests/fixtures/dist_logprob.txt");
    bk_ctx *ctx = bk_ctx_new(NULL);
    char line[4096];
    int fails = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = 0;
        char buf[4096];
        strcpy(buf, line);
        char *tok[32];
        int nt = 0;
        for (char *s = strtok(buf, " "); s && nt < 32; s = strtok(NULL, " ")) tok[nt++] = s;
        int variant = atoi(tok[1]), np = atoi(tok[2]);
        ck_assert_int_eq(nt, 3 + np + 8);
        bk_tensor *p[SL_MAXP];
        for (int i = 0; i < np; i++) p[i] = parse_tensor(ctx, tok[3 + i]);
        const char **r = (const char **)tok + 3 + np;
        sl_dist *d = make(ctx, tok[0], variant, np, p);
        bk_tensor *x = parse_tensor(ctx, r[0]);
        double cond = strtod(r[6], NULL), econd = strtod(r[7], NULL);
        const char *names[] = {"log_prob", "cdf", "mean", "variance", "entropy"};
        for (int k = 0; k < 5; k++) {
            bk_tensor *ref = parse_tensor(ctx, r[1 + k]);
            bk_tensor *t = NULL;
            bool skip = ref->numel == 1 && isnan(bk_get(ref, 0));
            if (!skip) {
                switch (k) {
                case 0: t = sl_log_prob(ctx, d, x); break;
                case 1: skip = !d->fam->cdf; if (!skip) t = d->fam->cdf(ctx, d, x); break;
                case 2: skip = !d->fam->mean; if (!skip) t = sl_mean(ctx, d); break;
                case 3: skip = !d->fam->variance; if (!skip) t = sl_variance(ctx, d); break;
                case 4: skip = !d->fam->entropy; if (!skip) t = sl_entropy(ctx, d); break;
                }
            }
            /* cond / econd: the rounding slack of the log density / entropy
             * formulas; the cdfs rest on the backend's incomplete gamma and
             * beta functions, accurate to about 1e-9 at concentrations of 1e6 */
            if (!skip)
                fails += check_value(names[k], line, t, ref,
                                     k == 0 ? cond : k == 4 ? econd : 0, k == 1 ? 1e-9 : 0);
            bk_release(t);
            bk_release(ref);
        }
        bk_release(x);
        for (int i = 0; i < np; i++) bk_release(p[i]);
        sl_dist_release(d);
        rows++;
    }
    fclose(f);
    bk_ctx_free(ctx);
    ck_assert_int_gt(rows, 400);
    ck_assert_msg(fails == 0, "%d fixture mismatches", fails);
}
END_TEST

START_TEST(test_kl_fixtures) {
    FILE *f = fopen("tests/fixtures/dist_kl.txt", "r");
    ck_assert_msg(f != NULL, "missing tests/fixtures/dist_kl.txt");
    bk_ctx *ctx = bk_ctx_new(NULL);
    char line[4096];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = 0;
        char buf[4096];
        strcpy(buf, line);
        char *tok[32];
        int nt = 0;
        for (char *s = strtok(buf, " "); s && nt < 32; s = strtok(NULL, " ")) tok[nt++] = s;
        sl_dist *d[2];
        bk_tensor *p[2][SL_MAXP];
        int at = 0, np[2];
        for (int j = 0; j < 2; j++) {
            np[j] = atoi(tok[at + 2]);
            for (int i = 0; i < np[j]; i++) p[j][i] = parse_tensor(ctx, tok[at + 3 + i]);
            d[j] = make(ctx, tok[at], atoi(tok[at + 1]), np[j], p[j]);
            at += 3 + np[j];
        }
        double ref = strtod(tok[at], NULL);
        bk_tensor *k = sl_kl(ctx, d[0], d[1]);
        ck_assert_msg(k != NULL, "%s: %s", line, bk_errmsg(ctx));
        ck_assert_msg(near(bk_item(k), ref, 1e-9, 0), "KL %s: got %.17g", line, bk_item(k));
        bk_release(k);
        for (int j = 0; j < 2; j++) {
            for (int i = 0; i < np[j]; i++) bk_release(p[j][i]);
            sl_dist_release(d[j]);
        }
        rows++;
    }
    fclose(f);
    bk_ctx_free(ctx);
    ck_assert_int_ge(rows, 20);
}
END_TEST

/* --------------------------------------------------------- sampling --- */

#define NDRAW 20000

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* chi-square critical value at p = 0.001 (Wilson-Hilferty) */
static double chi2_crit(int k) {
    double h = 2.0 / (9.0 * k);
    return k * pow(1 - h + 3.09 * sqrt(h), 3);
}

typedef struct scase {
    const char *fam;
    int variant, np;
    double p[3];
} scase;

static const scase sample_cases[] = {
    {"Normal", 0, 2, {1, 2}},        {"HalfNormal", 0, 1, {1.5}},
    {"LogNormal", 0, 2, {0.3, 0.5}}, {"Exponential", 0, 1, {2}},
    {"Uniform", 0, 2, {-1, 3}},      {"Cauchy", 0, 2, {0.5, 2}},
    {"HalfCauchy", 0, 1, {2}},       {"Laplace", 0, 2, {1, 0.5}},
    {"StudentT", 0, 3, {5, 1, 2}},   {"StudentT", 0, 3, {1.5, 0, 1}},
    {"Gamma", 0, 2, {0.5, 2}},       {"Gamma", 0, 2, {3, 1}},
    {"Beta", 0, 2, {0.5, 0.8}},      {"Beta", 0, 2, {2, 3}},
    {"InverseGamma", 0, 2, {5, 2}},  {"Bernoulli", 0, 1, {0.3}},
    {"Bernoulli", 1, 1, {-1}},       {"Poisson", 0, 1, {3.5}},
    {"Poisson", 0, 1, {40}},         {"Binomial", 0, 2, {10, 0.3}},
    {"Binomial", 1, 2, {20, 1.0}},   {"Geometric", 0, 1, {0.3}},
    {"NegativeBinomial", 0, 2, {3, 0.4}},
};

static void check_moments(const char *name, const double *v, int64_t n, sl_dist *d, bk_ctx *ctx) {
    if (!d->fam->mean || !d->fam->variance) return;
    bk_tensor *mt = sl_mean(ctx, d), *vt = sl_variance(ctx, d);
    double mu = bk_item(mt), var = bk_item(vt);
    bk_release(mt);
    bk_release(vt);
    if (!isfinite(mu) || !isfinite(var)) return;
    double m = 0, s2 = 0, m4 = 0;
    for (int64_t i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int64_t i = 0; i < n; i++) {
        double e = v[i] - m;
        s2 += e * e;
        m4 += e * e * e * e;
    }
    s2 /= n - 1;
    m4 /= n;
    ck_assert_msg(fabs(m - mu) <= 5 * sqrt(var / n), "%s: sample mean %g vs %g", name, m, mu);
    ck_assert_msg(fabs(s2 - var) <= 5 * sqrt(fmax(m4 - s2 * s2, 0) / n) + 1e-12,
                  "%s: sample variance %g vs %g", name, s2, var);
}

START_TEST(test_sampling) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    const scase *c = &sample_cases[_i];
    sl_dist *d = make_s(ctx, c->fam, c->variant, c->np, c->p);
    bk_rng rng;
    bk_rng_init(&rng, 1234 + (uint64_t)_i, 7);
    int64_t n = NDRAW;
    bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
    ck_assert_msg(x != NULL, "%s: %s", c->fam, bk_errmsg(ctx));
    ck_assert_int_eq(x->ndim, 1);
    ck_assert_int_eq(x->shape[0], NDRAW);
    double *v = malloc(NDRAW * sizeof *v);
    bk_copy_out(x, v);
    if (!d->fam->discrete) {
        qsort(v, NDRAW, sizeof *v, cmp_double);
        bk_tensor *xs = bk_from_f64(ctx, 1, &n, v);
        bk_tensor *F = d->fam->cdf(ctx, d, xs);
        double D = 0;
        for (int64_t i = 0; i < n; i++) {
            double fi = bk_get(F, i);
            D = fmax(D, fmax(fabs(fi - (double)i / n), fabs(fi - (double)(i + 1) / n)));
        }
        ck_assert_msg(D * sqrt((double)n) < 1.95, "%s: KS statistic %g", c->fam, D * sqrt((double)n));
        bk_release(F);
        bk_release(xs);
    } else {
        /* chi-square over the values with expected count >= 5 plus the rest */
        int64_t kmax = 0;
        for (int64_t i = 0; i < n; i++) {
            ck_assert(v[i] >= 0 && v[i] == floor(v[i]));
            if (v[i] > kmax) kmax = (int64_t)v[i];
        }
        int64_t K = kmax + 1;
        double *obs = calloc(K, sizeof *obs);
        for (int64_t i = 0; i < n; i++) obs[(int64_t)v[i]]++;
        bk_tensor *ks = bk_arange(ctx, 0, (double)K, 1);
        bk_tensor *lp = sl_log_prob(ctx, d, ks);
        double stat = 0, rest_o = n, rest_e = n;
        int bins = 0;
        for (int64_t k = 0; k < K; k++) {
            double e = n * exp(bk_get(lp, k));
            if (e < 5) continue;
            stat += (obs[k] - e) * (obs[k] - e) / e;
            rest_o -= obs[k];
            rest_e -= e;
            bins++;
        }
        if (rest_e >= 1) {
            stat += (rest_o - rest_e) * (rest_o - rest_e) / rest_e;
            bins++;
        }
        if (bins > 1)
            ck_assert_msg(stat < chi2_crit(bins - 1), "%s: chi-square %g with %d bins", c->fam,
                          stat, bins);
        bk_release(lp);
        bk_release(ks);
        free(obs);
    }
    bk_copy_out(x, v);
    check_moments(c->fam, v, n, d, ctx);
    free(v);
    bk_release(x);
    sl_dist_release(d);
    bk_ctx_free(ctx);
}
END_TEST

/* Dirichlet and MultivariateNormal: per-component moments and shapes. */
START_TEST(test_sampling_vector) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng rng;
    bk_rng_init(&rng, 99, 0);
    double alpha[] = {1, 2, 3.5};
    bk_tensor *a = bk_from_f64(ctx, 1, (int64_t[]){3}, alpha);
    double loc[] = {1, -2}, L[] = {2, 0, 0.5, 0.3};
    bk_tensor *lt = bk_from_f64(ctx, 1, (int64_t[]){2}, loc);
    bk_tensor *Lt = bk_from_f64(ctx, 2, (int64_t[]){2, 2}, L);
    sl_dist *ds[2] = {make(ctx, "Dirichlet", 0, 1, &a),
                      make(ctx, "MultivariateNormal", 1, 2, (bk_tensor *[]){lt, Lt})};
    for (int j = 0; j < 2; j++) {
        sl_dist *d = ds[j];
        int64_t n = NDRAW, K = d->event[0];
        bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
        ck_assert_msg(x != NULL, "%s", bk_errmsg(ctx));
        ck_assert_int_eq(x->ndim, 2);
        ck_assert_int_eq(x->shape[1], K);
        bk_tensor *mt = sl_mean(ctx, d), *vt = sl_variance(ctx, d);
        for (int64_t k = 0; k < K; k++) {
            double m = 0, s2 = 0;
            for (int64_t i = 0; i < n; i++) m += bk_get(x, i * K + k);
            m /= n;
            for (int64_t i = 0; i < n; i++) s2 += pow(bk_get(x, i * K + k) - m, 2);
            s2 /= n - 1;
            double mu = bk_get(mt, k), var = bk_get(vt, k);
            ck_assert_msg(fabs(m - mu) <= 5 * sqrt(var / n), "%s[%d] mean %g vs %g",
                          d->fam->name, (int)k, m, mu);
            ck_assert_msg(fabs(s2 - var) <= 5 * var * sqrt(3.0 / n), "%s[%d] var %g vs %g",
                          d->fam->name, (int)k, s2, var);
        }
        if (j == 0)
            for (int64_t i = 0; i < n; i++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) s += bk_get(x, i * K + k);
                ck_assert(fabs(s - 1) < 1e-12);
            }
        bk_release(mt);
        bk_release(vt);
        bk_release(x);
        sl_dist_release(d);
    }
    bk_release(a);
    bk_release(lt);
    bk_release(Lt);
    bk_ctx_free(ctx);
}
END_TEST

/* -------------------------------------------------------- gradients --- */

/* J(params) = mean(sin(rsample)) with a fixed seed; grad by backward. */
static double rs_objective(bk_ctx *ctx, const char *fam, int variant, int np, bk_tensor **p,
                           bool grad, int64_t n) {
    sl_dist *d = make(ctx, fam, variant, np, p);
    bk_rng rng;
    bk_rng_init(&rng, 42, 3);
    bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
    ck_assert_msg(x != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *s = bk_unop(ctx, BK_OP_SIN, x);
    bk_tensor *J = bk_reduce(ctx, BK_OP_MEAN, s, BK_ALL_AXES, false);
    double v = bk_item(J);
    if (grad) ck_assert_int_eq(bk_backward(ctx, J), 0);
    bk_release(J);
    bk_release(s);
    bk_release(x);
    sl_dist_release(d);
    bk_tape_reset(ctx);
    return v;
}

typedef struct gcase {
    const char *fam;
    int variant, np;
    double p[3];
} gcase;

/* families whose rsample is an explicit transform of parameter-free noise */
static const gcase rs_cases[] = {
    {"Normal", 0, 2, {0.3, 1.7}},  {"LogNormal", 0, 2, {0.1, 0.4}}, {"Laplace", 0, 2, {-1, 0.8}},
    {"Cauchy", 0, 2, {0.2, 0.5}},  {"Uniform", 0, 2, {-0.5, 2}},    {"HalfNormal", 0, 1, {1.3}},
    {"HalfCauchy", 0, 1, {0.7}},   {"Exponential", 0, 1, {1.7}},
};

START_TEST(test_rsample_grad_fd) {
    const gcase *c = &rs_cases[_i];
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_tensor *p[3];
    for (int i = 0; i < c->np; i++) {
        p[i] = bk_scalar(ctx, c->p[i]);
        bk_set_requires_grad(p[i], true);
    }
    rs_objective(ctx, c->fam, c->variant, c->np, p, true, 1000);
    for (int i = 0; i < c->np; i++) {
        ck_assert_msg(p[i]->grad != NULL, "%s: no gradient for parameter %d", c->fam, i);
        double g = bk_item(p[i]->grad), h = 1e-6 * fmax(1, fabs(c->p[i])), J[2];
        for (int s = 0; s < 2; s++) {
            bk_tensor *q[3];
            for (int k = 0; k < c->np; k++)
                q[k] = bk_scalar(ctx, c->p[k] + (k == i ? (s ? -h : h) : 0));
            J[s] = rs_objective(ctx, c->fam, c->variant, c->np, q, false, 1000);
            for (int k = 0; k < c->np; k++) bk_release(q[k]);
        }
        double fd = (J[0] - J[1]) / (2 * h);
        ck_assert_msg(fabs(g - fd) <= 1e-6 * fmax(1, fabs(fd)), "%s param %d: grad %.10g fd %.10g",
                      c->fam, i, g, fd);
    }
    for (int i = 0; i < c->np; i++) bk_release(p[i]);
    bk_ctx_free(ctx);
}
END_TEST

/* Gamma-based rsample (implicit reparameterization): the gradient of the
 * sample mean must match the analytic derivative of the expectation. */
START_TEST(test_rsample_grad_implicit) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    struct {
        const char *fam;
        double a, b;
        double da, db; /* d E[x] / d params */
    } cases[] = {
        {"Gamma", 2.5, 1.5, 1 / 1.5, -2.5 / (1.5 * 1.5)},
        {"Gamma", 0.3, 1.0, 1.0, -0.3},
        {"Beta", 2.0, 3.0, 3.0 / 25, -2.0 / 25},
        {"InverseGamma", 4.0, 2.0, -2.0 / 9, 1.0 / 3},
    };
    for (int j = 0; j < 4; j++) {
        bk_tensor *p[2] = {bk_scalar(ctx, cases[j].a), bk_scalar(ctx, cases[j].b)};
        bk_set_requires_grad(p[0], true);
        bk_set_requires_grad(p[1], true);
        sl_dist *d = make(ctx, cases[j].fam, 0, 2, p);
        bk_rng rng;
        bk_rng_init(&rng, 5, 0);
        int64_t n = 40000;
        bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
        ck_assert_msg(x != NULL, "%s", bk_errmsg(ctx));
        bk_tensor *J = bk_reduce(ctx, BK_OP_MEAN, x, BK_ALL_AXES, false);
        ck_assert_int_eq(bk_backward(ctx, J), 0);
        double ga = bk_item(p[0]->grad), gb = bk_item(p[1]->grad);
        ck_assert_msg(fabs(ga - cases[j].da) <= 0.05 * fabs(cases[j].da) + 0.01,
                      "%s d/da: %g vs %g", cases[j].fam, ga, cases[j].da);
        ck_assert_msg(fabs(gb - cases[j].db) <= 0.05 * fabs(cases[j].db) + 0.01,
                      "%s d/db: %g vs %g", cases[j].fam, gb, cases[j].db);
        bk_release(J);
        bk_release(x);
        sl_dist_release(d);
        bk_tape_reset(ctx);
        bk_release(p[0]);
        bk_release(p[1]);
    }
    bk_ctx_free(ctx);
}
END_TEST

typedef struct lcase {
    const char *fam;
    int variant, np;
    double p[3];
    double x;
    bool dx;      /* also check d/dx */
} lcase;

static const lcase lp_cases[] = {
    {"Normal", 0, 2, {0.3, 1.7}, 1.1, true},
    {"HalfNormal", 0, 1, {1.3}, 0.4, true},
    {"LogNormal", 0, 2, {0.1, 0.4}, 1.3, true},
    {"Exponential", 0, 1, {1.7}, 0.6, true},
    {"Gamma", 0, 2, {2.5, 1.5}, 0.9, true},
    {"Beta", 0, 2, {2.0, 0.7}, 0.35, true},
    {"Cauchy", 0, 2, {0.2, 0.5}, -0.4, true},
    {"HalfCauchy", 0, 1, {0.7}, 1.2, true},
    {"Laplace", 0, 2, {-1, 0.8}, 0.5, true},
    {"StudentT", 0, 3, {4.5, 0.3, 1.2}, -0.7, true},
    {"InverseGamma", 0, 2, {3, 2}, 0.8, true},
    {"Uniform", 0, 2, {-0.5, 2}, 0.3, false},
    {"Bernoulli", 0, 1, {0.3}, 1, false},
    {"Bernoulli", 1, 1, {-0.8}, 0, false},
    {"Poisson", 0, 1, {3.5}, 2, false},
    {"Binomial", 0, 2, {10, 0.3}, 4, false},
    {"Binomial", 1, 2, {10, 0.3}, 4, false},
    {"Geometric", 0, 1, {0.3}, 3, false},
    {"NegativeBinomial", 0, 2, {3.3, 0.4}, 5, false},
};

static double lp_value(bk_ctx *ctx, const lcase *c, const double *pv, double xv, bk_tensor **leaf,
                       bk_tensor **xleaf) {
    bk_tensor *p[3];
    for (int i = 0; i < c->np; i++) {
        p[i] = bk_scalar(ctx, pv[i]);
        if (leaf) {
            bk_set_requires_grad(p[i], true);
            leaf[i] = p[i];
        }
    }
    bk_tensor *x = bk_scalar(ctx, xv);
    if (xleaf) {
        bk_set_requires_grad(x, true);
        *xleaf = x;
    }
    sl_dist *d = make(ctx, c->fam, c->variant, c->np, p);
    bk_tensor *lp = sl_log_prob(ctx, d, x);
    ck_assert_msg(lp != NULL, "%s", bk_errmsg(ctx));
    double v = bk_item(lp);
    if (leaf) ck_assert_int_eq(bk_backward(ctx, lp), 0);
    bk_release(lp);
    sl_dist_release(d);
    if (!leaf)
        for (int i = 0; i < c->np; i++) bk_release(p[i]);
    if (!xleaf) bk_release(x);
    return v;
}

START_TEST(test_logprob_grad_fd) {
    const lcase *c = &lp_cases[_i];
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_tensor *leaf[3], *xl = NULL;
    lp_value(ctx, c, c->p, c->x, leaf, c->dx ? &xl : NULL);
    /* Binomial total_count and the like: integer parameters are not
     * differentiated (the FD would leave the support) */
    int first = (strcmp(c->fam, "Binomial") == 0) ? 1 : 0;
    for (int i = first; i <= c->np; i++) {
        bool isx = i == c->np;
        if (isx && !c->dx) break;
        bk_tensor *t = isx ? xl : leaf[i];
        ck_assert_msg(t->grad != NULL, "%s: no gradient for %d", c->fam, i);
        double g = bk_item(t->grad), base = isx ? c->x : c->p[i];
        double h = 1e-6 * fmax(1, fabs(base)), v[2];
        for (int s = 0; s < 2; s++) {
            double pv[3] = {c->p[0], c->p[1], c->p[2]}, xv = c->x;
            if (isx) xv += s ? -h : h;
            else pv[i] += s ? -h : h;
            v[s] = lp_value(ctx, c, pv, xv, NULL, NULL);
        }
        double fd = (v[0] - v[1]) / (2 * h);
        ck_assert_msg(fabs(g - fd) <= 1e-6 * fmax(1, fabs(fd)), "%s d/d%s%d: %.10g vs fd %.10g",
                      c->fam, isx ? "x" : "p", i, g, fd);
    }
    for (int i = 0; i < c->np; i++) bk_release(leaf[i]);
    bk_release(xl);
    bk_tape_reset(ctx);
    bk_ctx_free(ctx);
}
END_TEST

/* Vector families: gradients w.r.t. every entry of the parameters. */
START_TEST(test_logprob_grad_vector) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    struct {
        const char *fam;
        int variant, np;
        int64_t n0, n1[2];
        double v0[3], v1[9];
        double x[3];
        int nx;
    } cases[] = {
        {"Categorical", 1, 1, 3, {0}, {0.2, -1, 0.5}, {0}, {2}, 0},
        {"Categorical", 0, 1, 3, {0}, {0.2, 0.3, 0.5}, {0}, {1}, 0},
        {"Dirichlet", 0, 1, 3, {0}, {1.5, 2, 0.7}, {0}, {0.2, 0.3, 0.5}, 3},
        {"MultivariateNormal", 1, 2, 2, {2, 2}, {0.5, -1}, {1.5, 0, 0.4, 0.8}, {0.1, 0.2}, 2},
        {"MultivariateNormal", 0, 2, 2, {2, 2}, {0.5, -1}, {2, 0.3, 0.3, 1}, {0.1, 0.2}, 2},
    };
    for (int j = 0; j < 5; j++) {
        int np = cases[j].np;
        double *vals[2] = {cases[j].v0, cases[j].v1};
        int64_t cnt[2] = {cases[j].n0, cases[j].n1[0] * cases[j].n1[1]};
        for (int pi = 0; pi < np; pi++)
            for (int64_t e = 0; e < cnt[pi]; e++) {
                /* covariance entries: only the diagonal can move alone and
                 * keep the matrix symmetric */
                if (j == 4 && pi == 1 && e % 3 != 0) continue;
                if (j == 3 && pi == 1 && e == 1) continue;  /* upper part of scale_tril */
                double out[3], g = 0;
                for (int s = 0; s < 3; s++) {
                    double h = 1e-6, buf[9];
                    bk_tensor *p[2];
                    for (int k = 0; k < np; k++) {
                        memcpy(buf, vals[k], cnt[k] * sizeof *buf);
                        if (k == pi && s > 0) buf[e] += s == 1 ? h : -h;
                        p[k] = k == 0 ? bk_from_f64(ctx, 1, &cases[j].n0, buf)
                                      : bk_from_f64(ctx, 2, cases[j].n1, buf);
                        if (s == 0) bk_set_requires_grad(p[k], true);
                    }
                    bk_tensor *x = cases[j].nx ? bk_from_f64(ctx, 1, (int64_t[]){cases[j].nx}, cases[j].x)
                                               : bk_scalar(ctx, cases[j].x[0]);
                    sl_dist *d = make(ctx, cases[j].fam, cases[j].variant, np, p);
                    bk_tensor *lp = sl_log_prob(ctx, d, x);
                    ck_assert_msg(lp != NULL, "%s", bk_errmsg(ctx));
                    out[s] = bk_item(lp);
                    if (s == 0) {
                        ck_assert_int_eq(bk_backward(ctx, lp), 0);
                        g = bk_get(p[pi]->grad, e);
                    }
                    bk_release(lp);
                    bk_release(x);
                    sl_dist_release(d);
                    bk_tape_reset(ctx);
                    for (int k = 0; k < np; k++) bk_release(p[k]);
                }
                double fd = (out[1] - out[2]) / 2e-6;
                ck_assert_msg(fabs(g - fd) <= 1e-6 * fmax(1, fabs(fd)), "%s v%d p%d[%d]: %.10g vs %.10g",
                              cases[j].fam, cases[j].variant, pi, (int)e, g, fd);
            }
    }
    bk_ctx_free(ctx);
}
END_TEST

/* ----------------------------------------------------------- shapes --- */

static void assert_shape(const bk_tensor *t, int nd, const int64_t *shape) {
    ck_assert_msg(t != NULL, "NULL tensor");
    ck_assert_int_eq(t->ndim, nd);
    for (int i = 0; i < nd; i++) ck_assert_int_eq(t->shape[i], shape[i]);
}

START_TEST(test_shapes) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng rng;
    bk_rng_init(&rng, 1, 1);
    double locv[] = {0, 1, 2};
    bk_tensor *loc = bk_from_f64(ctx, 1, (int64_t[]){3}, locv), *one = bk_scalar(ctx, 1.0);
    sl_dist *d = make(ctx, "Normal", 0, 2, (bk_tensor *[]){loc, one});
    ck_assert_int_eq(d->nbatch, 1);
    ck_assert_int_eq(d->batch[0], 3);
    ck_assert_int_eq(d->nevent, 0);
    bk_tensor *s = sl_sample(ctx, &rng, d, 1, (int64_t[]){5});
    assert_shape(s, 2, (int64_t[]){5, 3});
    bk_tensor *lp = sl_log_prob(ctx, d, s);
    assert_shape(lp, 2, (int64_t[]){5, 3});
    bk_release(lp);
    bk_release(s);
    bk_tensor *x0 = bk_scalar(ctx, 0.5);
    lp = sl_log_prob(ctx, d, x0);   /* a scalar value broadcasts to the batch */
    assert_shape(lp, 1, (int64_t[]){3});
    double sum = 0;
    for (int i = 0; i < 3; i++) sum += bk_get(lp, i);
    bk_release(lp);

    /* to_event: the batch dim moves into the event and log_prob sums it */
    sl_dist *e = sl_to_event(ctx, d, 1);
    ck_assert_int_eq(e->nbatch, 0);
    ck_assert_int_eq(e->nevent, 1);
    lp = sl_log_prob(ctx, e, x0);
    assert_shape(lp, 0, NULL);
    ck_assert(fabs(bk_item(lp) - sum) < 1e-12);
    bk_release(lp);
    bk_tensor *h = sl_entropy(ctx, e);
    assert_shape(h, 0, NULL);
    bk_release(h);
    ck_assert_ptr_null(sl_to_event(ctx, e, 1));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "batch dimension"));

    /* expand: new leading dims, independent draws */
    sl_dist *x = sl_expand(ctx, d, 2, (int64_t[]){2, 3});
    ck_assert_int_eq(x->nbatch, 2);
    s = sl_sample(ctx, &rng, x, 1, (int64_t[]){4});
    assert_shape(s, 3, (int64_t[]){4, 2, 3});
    ck_assert(bk_get(s, 0) != bk_get(s, 3));
    bk_release(s);
    lp = sl_log_prob(ctx, x, x0);
    assert_shape(lp, 2, (int64_t[]){2, 3});
    bk_release(lp);
    bk_tensor *m = sl_mean(ctx, x);
    assert_shape(m, 2, (int64_t[]){2, 3});
    bk_release(m);
    ck_assert_ptr_null(sl_expand(ctx, d, 1, (int64_t[]){4}));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "cannot expand"));
    sl_dist *xe = sl_to_event(ctx, x, 1);   /* expand then to_event */
    lp = sl_log_prob(ctx, xe, x0);
    assert_shape(lp, 1, (int64_t[]){2});
    ck_assert(fabs(bk_get(lp, 1) - sum) < 1e-12);
    bk_release(lp);
    sl_dist_release(xe);

    /* expand of a size-1 batch draws independently */
    bk_tensor *l1 = bk_from_f64(ctx, 1, (int64_t[]){1}, locv);
    sl_dist *d1 = make(ctx, "Normal", 0, 2, (bk_tensor *[]){l1, one});
    sl_dist *d5 = sl_expand(ctx, d1, 1, (int64_t[]){5});
    s = sl_sample(ctx, &rng, d5, 0, NULL);
    assert_shape(s, 1, (int64_t[]){5});
    ck_assert(bk_get(s, 0) != bk_get(s, 1));
    bk_release(s);

    /* mask: masked entries contribute exactly 0, even outside the support */
    double mv[] = {1, 0, 1};
    bk_tensor *mask = bk_from_f64(ctx, 1, (int64_t[]){3}, mv);
    bk_tensor *hp = bk_scalar(ctx, 2.0);
    sl_dist *hn = make(ctx, "HalfNormal", 0, 1, &hp);
    sl_dist *hx = sl_expand(ctx, hn, 1, (int64_t[]){3});
    sl_dist *hm = sl_mask(ctx, hx, mask);
    double xv[] = {1, -1, -1};
    bk_tensor *xt = bk_from_f64(ctx, 1, (int64_t[]){3}, xv);
    lp = sl_log_prob(ctx, hm, xt);
    ck_assert(isfinite(bk_get(lp, 0)));
    ck_assert(bk_get(lp, 1) == 0.0);
    ck_assert(isinf(bk_get(lp, 2)) && bk_get(lp, 2) < 0);
    bk_release(lp);

    /* Categorical: last param dim is the category dim */
    double pv[] = {0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25};
    bk_tensor *pt = bk_from_f64(ctx, 2, (int64_t[]){2, 4}, pv);
    sl_dist *cat = make(ctx, "Categorical", 0, 1, &pt);
    ck_assert_int_eq(cat->nbatch, 1);
    ck_assert_int_eq(cat->batch[0], 2);
    ck_assert_int_eq(cat->nevent, 0);
    s = sl_sample(ctx, &rng, cat, 1, (int64_t[]){6});
    assert_shape(s, 2, (int64_t[]){6, 2});
    bk_release(s);
    double cv[] = {3, 0};
    bk_tensor *ct = bk_from_f64(ctx, 1, (int64_t[]){2}, cv);
    lp = sl_log_prob(ctx, cat, ct);
    assert_shape(lp, 1, (int64_t[]){2});
    ck_assert(fabs(bk_get(lp, 0) - log(0.4)) < 1e-14);
    ck_assert(fabs(bk_get(lp, 1) - log(0.25)) < 1e-14);
    bk_release(lp);
    bk_tensor *en = cat->fam->enumerate_support(ctx, cat);
    assert_shape(en, 2, (int64_t[]){4, 2});
    ck_assert(bk_get(en, 7) == 3.0);
    lp = sl_log_prob(ctx, cat, en);   /* all values at once: [4, 2] */
    assert_shape(lp, 2, (int64_t[]){4, 2});
    bk_release(lp);
    bk_release(en);

    /* Dirichlet: event [K] */
    bk_tensor *conc = bk_full(ctx, BK_F64, 2, (int64_t[]){2, 3}, 1.5);
    sl_dist *dir = make(ctx, "Dirichlet", 0, 1, &conc);
    ck_assert_int_eq(dir->nbatch, 1);
    ck_assert_int_eq(dir->nevent, 1);
    ck_assert_int_eq(dir->event[0], 3);
    s = sl_sample(ctx, &rng, dir, 1, (int64_t[]){4});
    assert_shape(s, 3, (int64_t[]){4, 2, 3});
    lp = sl_log_prob(ctx, dir, s);
    assert_shape(lp, 2, (int64_t[]){4, 2});
    bk_release(lp);
    bk_release(s);

    /* Uniform support carries its bounds */
    double lh[] = {-1, 2};
    bk_tensor *lo = bk_scalar(ctx, lh[0]), *hi = bk_scalar(ctx, lh[1]);
    sl_dist *u = make(ctx, "Uniform", 0, 2, (bk_tensor *[]){lo, hi});
    sl_constraint c;
    ck_assert_int_eq(sl_support(ctx, u, &c), 0);
    ck_assert_int_eq(c.kind, SL_C_INTERVAL);
    ck_assert(bk_item(c.lo) == -1 && bk_item(c.hi) == 2);
    sl_constraint_clear(&c);

    sl_dist *all[] = {d, e, x, d1, d5, hn, hx, hm, cat, dir, u};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) sl_dist_release(all[i]);
    bk_tensor *ts[] = {loc, one, x0, l1, mask, hp, xt, pt, ct, conc, lo, hi};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bk_release(ts[i]);
    bk_ctx_free(ctx);
}
END_TEST

/* ----------------------------------------------------------- errors --- */

START_TEST(test_errors) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    struct {
        const char *fam;
        int variant, np;
        double p[3];
        const char *msg;
    } cases[] = {
        {"Normal", 0, 2, {0, -1}, "Normal: scale must be > 0, got -1"},
        {"Normal", 0, 2, {NAN, 1}, "Normal: loc must be a real number, got nan"},
        {"Bernoulli", 0, 1, {1.5}, "Bernoulli: probs must be in [0, 1], got 1.5"},
        {"Gamma", 0, 2, {0, 1}, "Gamma: concentration must be > 0, got 0"},
        {"Beta", 0, 2, {1, -0.25}, "Beta: concentration0 must be > 0, got -0.25"},
        {"Binomial", 0, 2, {2.5, 0.5}, "Binomial: total_count must be a non-negative integer, got 2.5"},
        {"Uniform", 0, 2, {1, 0}, "Uniform: high must be > low, got low=1, high=0"},
        {"StudentT", 0, 3, {1, 0, 0}, "StudentT: scale must be > 0, got 0"},
    };
    for (size_t j = 0; j < sizeof cases / sizeof *cases; j++) {
        bk_tensor *p[3];
        for (int i = 0; i < cases[j].np; i++) p[i] = bk_scalar(ctx, cases[j].p[i]);
        sl_dist *d = sl_dist_make(ctx, sl_find_family(cases[j].fam), cases[j].variant, cases[j].np, p);
        ck_assert_ptr_null(d);
        ck_assert_str_eq(bk_errmsg(ctx), cases[j].msg);
        for (int i = 0; i < cases[j].np; i++) bk_release(p[i]);
    }
    /* a bad value in a tensor names the first one */
    double sv[] = {1, 2, -3, -4};
    bk_tensor *st = bk_from_f64(ctx, 1, (int64_t[]){4}, sv), *z = bk_scalar(ctx, 0);
    ck_assert_ptr_null(sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){z, st}));
    ck_assert_str_eq(bk_errmsg(ctx), "Normal: scale must be > 0, got -3");
    /* shapes that do not broadcast */
    bk_tensor *a3 = bk_zeros(ctx, BK_F64, 1, (int64_t[]){3});
    bk_tensor *a2 = bk_full(ctx, BK_F64, 1, (int64_t[]){2}, 1.0);
    ck_assert_ptr_null(sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){a3, a2}));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "do not broadcast"));

    /* ImproperUniform: flat, cannot be sampled */
    bk_tensor *shape = bk_from_f64(ctx, 1, (int64_t[]){1}, (double[]){3});
    sl_dist *iu = sl_dist_make(ctx, sl_find_family("ImproperUniform"), SL_C_POSITIVE, 1, &shape);
    ck_assert_ptr_nonnull(iu);
    ck_assert_int_eq(iu->nbatch, 1);
    bk_rng rng;
    bk_rng_init(&rng, 1, 0);
    ck_assert_ptr_null(sl_sample(ctx, &rng, iu, 0, NULL));
    ck_assert_str_eq(bk_errmsg(ctx), "ImproperUniform cannot be sampled; use MCMC or MAP");
    bk_tensor *lp = sl_log_prob(ctx, iu, a3);
    assert_shape(lp, 1, (int64_t[]){3});
    ck_assert(bk_get(lp, 0) == 0.0);
    bk_release(lp);
    sl_constraint c;
    ck_assert_int_eq(sl_support(ctx, iu, &c), 0);
    ck_assert_int_eq(c.kind, SL_C_POSITIVE);

    /* KL without a closed form */
    bk_tensor *one = bk_scalar(ctx, 1);
    sl_dist *n = make(ctx, "Normal", 0, 2, (bk_tensor *[]){z, one});
    sl_dist *g = make(ctx, "Gamma", 0, 2, (bk_tensor *[]){one, one});
    ck_assert_ptr_null(sl_kl(ctx, n, g));
    ck_assert_str_eq(bk_errmsg(ctx), "no closed-form KL for Normal || Gamma");

    /* Delta: point mass, event_dim */
    double vv[] = {1, 2};
    bk_tensor *v = bk_from_f64(ctx, 1, (int64_t[]){2}, vv);
    sl_dist *dl = sl_dist_make(ctx, sl_find_family("Delta"), 1, 2, (bk_tensor *[]){v, z});
    ck_assert_ptr_nonnull(dl);
    ck_assert_int_eq(dl->nevent, 1);
    lp = sl_log_prob(ctx, dl, v);
    assert_shape(lp, 0, NULL);
    ck_assert(bk_item(lp) == 0.0);
    bk_release(lp);
    lp = sl_log_prob(ctx, dl, a2);
    ck_assert(isinf(bk_item(lp)) && bk_item(lp) < 0);
    bk_release(lp);

    sl_dist_release(iu);
    sl_dist_release(n);
    sl_dist_release(g);
    sl_dist_release(dl);
    bk_tensor *ts[] = {st, z, a3, a2, shape, one, v};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bk_release(ts[i]);
    bk_ctx_free(ctx);
}
END_TEST

static Suite *dist_suite(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fixtures);
    tcase_add_test(tc, test_kl_fixtures);
    tcase_add_loop_test(tc, test_sampling, 0, (int)(sizeof sample_cases / sizeof *sample_cases));
    tcase_add_test(tc, test_sampling_vector);
    tcase_add_loop_test(tc, test_rsample_grad_fd, 0, (int)(sizeof rs_cases / sizeof *rs_cases));
    tcase_add_test(tc, test_rsample_grad_implicit);
    tcase_add_loop_test(tc, test_logprob_grad_fd, 0, (int)(sizeof lp_cases / sizeof *lp_cases));
    tcase_add_test(tc, test_logprob_grad_vector);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(dist_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
