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

#define ROW_MAX 4096
#define ROW_TOKENS 32

/* The next row of a fixture file (lines starting with # skipped): the
 * line itself in line (for messages), its space-separated tokens in tok
 * (pointing into buf); the number of tokens, or -1 at the end. */
static int next_row(FILE *f, char line[ROW_MAX], char buf[ROW_MAX], char *tok[ROW_TOKENS]) {
    while (fgets(line, ROW_MAX, f)) {
        if (line[0] == '#') continue;
        line[strcspn(line, "\n")] = 0;
        strcpy(buf, line);
        int nt = 0;
        for (char *s = strtok(buf, " "); s && nt < ROW_TOKENS; s = strtok(NULL, " ")) tok[nt++] = s;
        return nt;
    }
    return -1;
}

START_TEST(test_fixtures) {
    FILE *f = fopen("tests/fixtures/dist_logprob.txt", "r");
    ck_assert_msg(f != NULL, "missing tests/fixtures/dist_logprob.txt");
    bk_ctx *ctx = bk_ctx_new(NULL);
    char line[ROW_MAX];
    int fails = 0, rows = 0;
    char buf[ROW_MAX], *tok[ROW_TOKENS];
    int nt;
    while ((nt = next_row(f, line, buf, tok)) >= 0) {
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
    char line[ROW_MAX];
    int rows = 0;
    char buf[ROW_MAX], *tok[ROW_TOKENS];
    int nt;
    while ((nt = next_row(f, line, buf, tok)) >= 0) {
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

/* MultivariateNormal at n = 100 with the AR(1) covariance rho^|i-j| (the
 * MCMC benchmark's mvn100), a batch of three points, against the closed
 * form in long double, independent of any Cholesky factor or triangular
 * solve: the precision is tridiagonal, (1 - rho^2) P = tridiag(-rho, 1 +
 * rho^2 (1 at both ends), -rho), and log det Sigma = (n - 1) log(1 -
 * rho^2).  The gradient in x is -P (x - mu) (the transposed solve). */
START_TEST(test_mvn_ar1_100) {
    enum { N = 100, NB = 3 };
    const long double rho = 0.9L;
    bk_ctx *ctx = bk_ctx_new(NULL);
    double *S = malloc(sizeof *S * N * N), mu[N], x[NB * N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) S[i * N + j] = (double)powl(rho, (long double)abs(i - j));
        mu[i] = 0.01 * (i % 7) - 0.03;
    }
    bk_rng r;
    bk_rng_init(&r, 7, 0);
    for (int i = 0; i < NB * N; i++) x[i] = 3 * bk_rng_uniform(&r) - 1.5;
    bk_tensor *p[2] = {bk_from_f64(ctx, 1, (int64_t[]){N}, mu), bk_from_f64(ctx, 2, (int64_t[]){N, N}, S)};
    bk_tensor *xt = bk_from_f64(ctx, 2, (int64_t[]){NB, N}, x);
    bk_set_requires_grad(xt, true);
    sl_dist *d = make(ctx, "MultivariateNormal", 0, 2, p);
    bk_tensor *lp = sl_log_prob(ctx, d, xt), *tot = lp ? bk_reduce(ctx, BK_OP_SUM, lp, -1, false) : NULL;
    ck_assert_msg(tot != NULL, "%s", bk_errmsg(ctx));
    ck_assert_int_eq(bk_backward(ctx, tot), 0);
    const long double q = 1 - rho * rho;
    for (int b = 0; b < NB; b++) {
        long double y[N], quad = 0;
        for (int i = 0; i < N; i++) y[i] = (long double)x[b * N + i] - mu[i];
        for (int i = 0; i < N; i++) {
            long double diag = (i == 0 || i == N - 1) ? 1 : 1 + rho * rho;
            long double Py = diag * y[i] - (i > 0 ? rho * y[i - 1] : 0) - (i < N - 1 ? rho * y[i + 1] : 0);
            Py /= q;
            quad += y[i] * Py;
            double g = bk_get(xt->grad, b * N + i);
            ck_assert_msg(fabsl(g + Py) <= 1e-12L * (1 + fabsl(Py)), "grad [%d, %d]: %.17g, want %.17Lg", b, i, g,
                          -Py);
        }
        long double want = -0.5L * (N * logl(2 * acosl(-1.0L)) + (N - 1) * logl(q) + quad);
        double got = bk_get(lp, b);
        ck_assert_msg(fabsl(got - want) <= 1e-13L * fabsl(want), "log_prob [%d]: %.17g, want %.17Lg", b, got, want);
    }
    bk_release(tot);
    bk_release(lp);
    bk_release(xt);
    sl_dist_release(d);
    bk_tape_reset(ctx);
    bk_release(p[0]);
    bk_release(p[1]);
    free(S);
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

/* ------------------------ LowRankMVN, OneHotCategorical, Transformed --- */

#include "transform.h"

/* "exp", "sigmoid", "tanh", "softplus", "affine:L:S", "power:E" */
static sl_transform *parse_tf(bk_ctx *ctx, const char *s) {
    if (strcmp(s, "exp") == 0) return sl_transform_new(ctx, SL_T_EXP);
    if (strcmp(s, "sigmoid") == 0) return sl_transform_new(ctx, SL_T_SIGMOID);
    if (strcmp(s, "tanh") == 0) return sl_transform_new(ctx, SL_T_TANH);
    if (strcmp(s, "softplus") == 0) return sl_transform_new(ctx, SL_T_SOFTPLUS);
    if (strncmp(s, "affine:", 7) == 0) {
        char *end;
        double l = strtod(s + 7, &end), sc = strtod(end + 1, NULL);
        bk_tensor *a = bk_scalar(ctx, l), *b = bk_scalar(ctx, sc);
        sl_transform *t = sl_transform_affine(ctx, a, b);
        bk_release(a);
        bk_release(b);
        return t;
    }
    if (strncmp(s, "power:", 6) == 0) {
        bk_tensor *e = bk_scalar(ctx, strtod(s + 6, NULL));
        sl_transform *t = sl_transform_power(ctx, e);
        bk_release(e);
        return t;
    }
    ck_abort_msg("unknown transform %s", s);
    return NULL;
}

START_TEST(test_transformed_fixtures) {
    FILE *f = fopen("tests/fixtures/dist_transformed.txt", "r");
    ck_assert_msg(f != NULL, "missing tests/fixtures/dist_transformed.txt");
    bk_ctx *ctx = bk_ctx_new(NULL);
    char line[ROW_MAX];
    int rows = 0, fails = 0;
    char buf[ROW_MAX], *tok[ROW_TOKENS];
    int nt;
    while ((nt = next_row(f, line, buf, tok)) >= 0) {
        int variant = atoi(tok[1]), np = atoi(tok[2]);
        bk_tensor *p[SL_MAXP];
        for (int i = 0; i < np; i++) p[i] = parse_tensor(ctx, tok[3 + i]);
        int ntf = atoi(tok[3 + np]);
        ck_assert_int_eq(nt, 4 + np + ntf + 4);
        sl_transform *parts[8];
        for (int i = 0; i < ntf; i++) parts[i] = parse_tf(ctx, tok[4 + np + i]);
        sl_transform *tf = sl_transform_compose(ctx, ntf, parts);
        sl_dist *base = make(ctx, tok[0], variant, np, p);
        sl_dist *d = sl_transformed_new(ctx, base, tf);
        ck_assert_msg(d != NULL, "%s: %s", line, bk_errmsg(ctx));
        const char **r = (const char **)tok + 4 + np + ntf;
        bk_tensor *y = parse_tensor(ctx, r[0]), *ref = parse_tensor(ctx, r[1]);
        bk_tensor *lp = sl_log_prob(ctx, d, y);
        fails += check_value("TransformedDistribution log_prob", line, lp, ref,
                             strtod(r[2], NULL), 0);
        bk_release(lp);
        bk_release(ref);
        /* every chain here is monotone and every base has a cdf */
        ref = parse_tensor(ctx, r[3]);
        bk_tensor *F = d->fam->cdf(ctx, d, y);
        fails += check_value("TransformedDistribution cdf", line, F, ref, 0, 1e-9);
        double q = F ? bk_item(F) : NAN, yv = bk_item(y);
        if (base->fam->icdf && q > 1e-6 && q < 1 - 1e-6) {   /* icdf inverts cdf */
            bk_tensor *qt = bk_scalar(ctx, q), *yb = d->fam->icdf(ctx, d, qt);
            ck_assert_msg(yb && fabs(bk_item(yb) - yv) <= 1e-7 * fmax(1, fabs(yv)),
                          "icdf(cdf(%g)) = %.17g (%s)", yv, yb ? bk_item(yb) : NAN, line);
            bk_release(yb);
            bk_release(qt);
        }
        bk_release(F);
        bk_release(ref);
        bk_release(y);
        sl_dist_release(d);
        sl_dist_release(base);
        sl_transform_release(tf);
        for (int i = 0; i < ntf; i++) sl_transform_release(parts[i]);
        for (int i = 0; i < np; i++) bk_release(p[i]);
        rows++;
    }
    fclose(f);
    bk_ctx_free(ctx);
    ck_assert_int_ge(rows, 20);
    ck_assert_msg(fails == 0, "%d fixture mismatches", fails);
}
END_TEST

/* Parameters given as small tensors, for the gradient checks below. */
typedef struct vparams {
    int np;
    int nd[4];
    int64_t sh[4][2];
    double v[4][8];
} vparams;

static int64_t vp_count(const vparams *vp, int k) {
    int64_t n = 1;
    for (int i = 0; i < vp->nd[k]; i++) n *= vp->sh[k][i];
    return n;
}

typedef bk_tensor *(*objective_fn)(bk_ctx *, bk_tensor **p);

/* d J / d p (backward) against central differences, every entry. */
static void check_grad_fd(const char *name, const vparams *vp, objective_fn obj, double tol) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    for (int pi = 0; pi < vp->np; pi++)
        for (int64_t e = 0; e < vp_count(vp, pi); e++) {
            double out[3], g = 0;
            for (int s = 0; s < 3; s++) {
                double h = 1e-6 * fmax(1, fabs(vp->v[pi][e]));
                bk_tensor *p[4];
                for (int k = 0; k < vp->np; k++) {
                    double buf[8];
                    memcpy(buf, vp->v[k], sizeof buf);
                    if (k == pi && s > 0) buf[e] += s == 1 ? h : -h;
                    p[k] = vp->nd[k] == 0 ? bk_scalar(ctx, buf[0])
                                          : bk_from_f64(ctx, vp->nd[k], vp->sh[k], buf);
                    if (s == 0) bk_set_requires_grad(p[k], true);
                }
                bk_tensor *J = obj(ctx, p);
                ck_assert_msg(J != NULL, "%s: %s", name, bk_errmsg(ctx));
                out[s] = bk_item(J);
                if (s == 0) {
                    ck_assert_int_eq(bk_backward(ctx, J), 0);
                    ck_assert_msg(p[pi]->grad != NULL, "%s: no gradient for parameter %d", name, pi);
                    g = bk_get(p[pi]->grad, e);
                }
                bk_release(J);
                bk_tape_reset(ctx);
                for (int k = 0; k < vp->np; k++) bk_release(p[k]);
                if (s == 2) {
                    double fd = (out[1] - out[2]) / (2 * h);
                    ck_assert_msg(fabs(g - fd) <= tol * fmax(1, fabs(fd)),
                                  "%s p%d[%d]: grad %.10g fd %.10g", name, pi, (int)e, g, fd);
                }
            }
        }
    bk_ctx_free(ctx);
}

static const vparams lowrank_params = {
    3, {1, 2, 1}, {{3}, {3, 2}, {3}},
    {{0.5, -1, 0.2}, {1.0, 0.3, -0.5, 0.8, 0.2, -0.1}, {0.7, 1.3, 0.4}}};

static bk_tensor *obj_lowrank_lp(bk_ctx *ctx, bk_tensor **p) {
    sl_dist *d = make(ctx, "LowRankMultivariateNormal", 0, 3, p);
    bk_tensor *x = bk_from_f64(ctx, 1, (int64_t[]){3}, (double[]){0.1, 0.2, -0.4});
    bk_tensor *lp = sl_log_prob(ctx, d, x);
    bk_release(x);
    sl_dist_release(d);
    return lp;
}

/* mean(sin(rsample)) with a fixed seed: a smooth function of the parameters */
static bk_tensor *mean_sin_draws(bk_ctx *ctx, sl_dist *d, int64_t n) {
    bk_rng rng;
    bk_rng_init(&rng, 42, 3);
    bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
    bk_tensor *s = x ? bk_unop(ctx, BK_OP_SIN, x) : NULL;
    bk_tensor *J = s ? bk_reduce(ctx, BK_OP_MEAN, s, BK_ALL_AXES, false) : NULL;
    bk_release(s);
    bk_release(x);
    return J;
}

static bk_tensor *obj_lowrank_rs(bk_ctx *ctx, bk_tensor **p) {
    sl_dist *d = make(ctx, "LowRankMultivariateNormal", 0, 3, p);
    bk_tensor *J = mean_sin_draws(ctx, d, 500);
    sl_dist_release(d);
    return J;
}

/* TransformedDistribution(Normal(p0, p1), [AffineTransform(p2, p3), Exp]) */
static const vparams td_params = {4, {0, 0, 0, 0}, {{0}}, {{0.3}, {0.6}, {-0.2}, {0.7}}};

static sl_dist *td_make(bk_ctx *ctx, bk_tensor **p) {
    sl_dist *base = make(ctx, "Normal", 0, 2, p);
    sl_transform *parts[2] = {sl_transform_affine(ctx, p[2], p[3]), sl_transform_new(ctx, SL_T_EXP)};
    sl_transform *tf = sl_transform_compose(ctx, 2, parts);
    sl_dist *d = sl_transformed_new(ctx, base, tf);
    ck_assert_msg(d != NULL, "%s", bk_errmsg(ctx));
    sl_transform_release(tf);
    sl_transform_release(parts[0]);
    sl_transform_release(parts[1]);
    sl_dist_release(base);
    return d;
}

static bk_tensor *obj_td_rs(bk_ctx *ctx, bk_tensor **p) {
    sl_dist *d = td_make(ctx, p);
    bk_tensor *J = mean_sin_draws(ctx, d, 500);
    sl_dist_release(d);
    return J;
}

static bk_tensor *obj_td_lp(bk_ctx *ctx, bk_tensor **p) {
    sl_dist *d = td_make(ctx, p);
    bk_tensor *y = bk_scalar(ctx, 1.3);
    bk_tensor *lp = sl_log_prob(ctx, d, y);
    bk_release(y);
    sl_dist_release(d);
    return lp;
}

START_TEST(test_new_family_grads) {
    check_grad_fd("LowRankMultivariateNormal log_prob", &lowrank_params, obj_lowrank_lp, 1e-6);
    check_grad_fd("LowRankMultivariateNormal rsample", &lowrank_params, obj_lowrank_rs, 1e-6);
    check_grad_fd("TransformedDistribution rsample", &td_params, obj_td_rs, 1e-6);
    check_grad_fd("TransformedDistribution log_prob", &td_params, obj_td_lp, 1e-6);
    /* sample() of a transformed non-reparameterized base is not an rsample */
    bk_ctx *ctx = bk_ctx_new(NULL);
    sl_dist *g = make_s(ctx, "Gamma", 0, 2, (double[]){2, 1});
    sl_transform *e = sl_transform_new(ctx, SL_T_EXP);
    sl_dist *d = sl_transformed_new(ctx, g, e);
    ck_assert(sl_dist_reparam(d));   /* Gamma has implicit reparameterization */
    sl_dist *pz = make_s(ctx, "Poisson", 0, 1, (double[]){3});
    ck_assert_ptr_null(sl_transformed_new(ctx, pz, e));
    ck_assert(strstr(bk_errmsg(ctx), "base must be a continuous distribution"));
    sl_dist_release(pz);
    sl_dist_release(d);
    sl_dist_release(g);
    sl_transform_release(e);
    bk_ctx_free(ctx);
}
END_TEST

static double normal_cdf(double x, double m, double s) { return 0.5 * erfc(-(x - m) / (s * M_SQRT2)); }

/* KS statistic * sqrt(n) of v (sorted in place) against cdf. */
static double ks_stat(double *v, int64_t n, double (*cdf)(double, const double *), const double *a) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double D = 0;
    for (int64_t i = 0; i < n; i++) {
        double fi = cdf(v[i], a);
        D = fmax(D, fmax(fabs(fi - (double)i / n), fabs(fi - (double)(i + 1) / n)));
    }
    return D * sqrt((double)n);
}
static double cdf_normal_a(double x, const double *a) { return normal_cdf(x, a[0], a[1]); }
static double cdf_lognormal_a(double x, const double *a) {
    return x <= 0 ? 0 : normal_cdf(log(x), a[0], a[1]);
}
static double cdf_tanh_normal_a(double y, const double *a) {
    return y <= -1 ? 0 : y >= 1 ? 1 : normal_cdf(atanh(y), a[0], a[1]);
}

START_TEST(test_new_family_sampling) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng rng;
    bk_rng_init(&rng, 2024, 1);
    int64_t n = NDRAW;
    double *v = malloc(NDRAW * sizeof *v);

    /* LowRankMultivariateNormal: KS per marginal, means, variances, covariance */
    bk_tensor *p[3];
    for (int k = 0; k < 3; k++)
        p[k] = bk_from_f64(ctx, lowrank_params.nd[k], lowrank_params.sh[k], lowrank_params.v[k]);
    sl_dist *d = make(ctx, "LowRankMultivariateNormal", 0, 3, p);
    bk_tensor *x = sl_sample(ctx, &rng, d, 1, &n);
    ck_assert_msg(x != NULL, "%s", bk_errmsg(ctx));
    ck_assert_int_eq(x->ndim, 2);
    ck_assert_int_eq(x->shape[1], 3);
    bk_tensor *mt = sl_mean(ctx, d), *vt = sl_variance(ctx, d);
    const double *W = lowrank_params.v[1];
    for (int k = 0; k < 3; k++) {
        double mu = bk_get(mt, k), var = bk_get(vt, k);
        ck_assert(fabs(var - (W[2 * k] * W[2 * k] + W[2 * k + 1] * W[2 * k + 1] +
                              lowrank_params.v[2][k])) < 1e-14);
        for (int64_t i = 0; i < n; i++) v[i] = bk_get(x, i * 3 + k);
        sl_dist *marg = make_s(ctx, "Normal", 0, 2, (double[]){mu, sqrt(var)});
        check_moments("LowRankMultivariateNormal", v, n, marg, ctx);
        sl_dist_release(marg);
        double a[2] = {mu, sqrt(var)};
        double ks = ks_stat(v, n, cdf_normal_a, a);
        ck_assert_msg(ks < 1.95, "LowRankMultivariateNormal[%d]: KS %g", k, ks);
    }
    /* cov(x0, x1) = W0 . W1 */
    double s01 = W[0] * W[2] + W[1] * W[3], m0 = 0, m1 = 0, c01 = 0;
    for (int64_t i = 0; i < n; i++) {
        m0 += bk_get(x, i * 3);
        m1 += bk_get(x, i * 3 + 1);
    }
    m0 /= n;
    m1 /= n;
    for (int64_t i = 0; i < n; i++) c01 += (bk_get(x, i * 3) - m0) * (bk_get(x, i * 3 + 1) - m1);
    c01 /= n - 1;
    double se = sqrt((bk_get(vt, 0) * bk_get(vt, 1) + s01 * s01) / n);
    ck_assert_msg(fabs(c01 - s01) < 5 * se, "LowRank covariance %g vs %g", c01, s01);
    bk_release(mt);
    bk_release(vt);
    bk_release(x);
    sl_dist_release(d);
    for (int k = 0; k < 3; k++) bk_release(p[k]);

    /* OneHotCategorical: one-hot rows, chi-square on the class counts */
    double probs[] = {0.1, 0.2, 0.3, 0.4};
    bk_tensor *pt = bk_from_f64(ctx, 1, (int64_t[]){4}, probs);
    for (int variant = 0; variant < 2; variant++) {
        bk_tensor *par = variant ? bk_unop(ctx, BK_OP_LOG, pt) : bk_retain(pt);
        d = make(ctx, "OneHotCategorical", variant, 1, &par);
        x = sl_sample(ctx, &rng, d, 1, &n);
        ck_assert_int_eq(x->ndim, 2);
        ck_assert_int_eq(x->shape[1], 4);
        double obs[4] = {0};
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int k = 0; k < 4; k++) {
                double e = bk_get(x, i * 4 + k);
                ck_assert(e == 0 || e == 1);
                s += e;
                obs[k] += e;
            }
            ck_assert(s == 1);
        }
        double stat = 0;
        for (int k = 0; k < 4; k++) stat += pow(obs[k] - n * probs[k], 2) / (n * probs[k]);
        ck_assert_msg(stat < chi2_crit(3), "OneHotCategorical chi-square %g", stat);
        /* mean / variance per component against the sample */
        mt = sl_mean(ctx, d);
        vt = sl_variance(ctx, d);
        for (int k = 0; k < 4; k++) {
            double mu = bk_get(mt, k), var = bk_get(vt, k), m = obs[k] / n;
            ck_assert(fabs(mu - probs[k]) < 1e-15 && fabs(var - probs[k] * (1 - probs[k])) < 1e-15);
            ck_assert_msg(fabs(m - mu) < 5 * sqrt(var / n), "OneHot mean[%d] %g vs %g", k, m, mu);
        }
        /* log_prob of every draw = log p of its class */
        bk_tensor *lp = sl_log_prob(ctx, d, x);
        ck_assert_int_eq(lp->ndim, 1);
        for (int64_t i = 0; i < 50; i++) {
            int k = 0;
            while (bk_get(x, i * 4 + k) == 0) k++;
            ck_assert(fabs(bk_get(lp, i) - log(probs[k])) < 1e-14);
        }
        bk_release(lp);
        bk_release(mt);
        bk_release(vt);
        bk_release(x);
        sl_dist_release(d);
        bk_release(par);
    }
    bk_release(pt);

    /* TransformedDistribution: Normal + Exp is LogNormal, Normal + Tanh */
    for (int j = 0; j < 2; j++) {
        double a[2] = {0.3, 0.5};
        sl_dist *base = make_s(ctx, "Normal", 0, 2, a);
        sl_transform *t = sl_transform_new(ctx, j ? SL_T_TANH : SL_T_EXP);
        d = sl_transformed_new(ctx, base, t);
        x = sl_sample(ctx, &rng, d, 1, &n);
        ck_assert_msg(x != NULL, "%s", bk_errmsg(ctx));
        bk_copy_out(x, v);
        if (j == 0) {
            double m = 0;
            for (int64_t i = 0; i < n; i++) m += v[i];
            m /= n;
            double mu = exp(0.3 + 0.125), var = (exp(0.25) - 1) * exp(0.6 + 0.25);
            ck_assert_msg(fabs(m - mu) < 5 * sqrt(var / n), "TD(Normal, Exp) mean %g vs %g", m, mu);
        }
        double ks = ks_stat(v, n, j ? cdf_tanh_normal_a : cdf_lognormal_a, a);
        ck_assert_msg(ks < 1.95, "TransformedDistribution %d: KS %g", j, ks);
        sl_constraint cs;
        ck_assert_int_eq(sl_support(ctx, d, &cs), 0);
        ck_assert_int_eq(cs.kind, j ? SL_C_INTERVAL : SL_C_POSITIVE);
        sl_constraint_clear(&cs);
        bk_release(x);
        sl_dist_release(d);
        sl_dist_release(base);
        sl_transform_release(t);
    }
    free(v);
    bk_ctx_free(ctx);
}
END_TEST

START_TEST(test_new_family_shapes) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng rng;
    bk_rng_init(&rng, 3, 3);
    /* LowRank: loc [2, 3] gives batch [2], event [3] */
    double locv[6] = {0, 1, 2, 3, 4, 5};
    bk_tensor *p[3] = {bk_from_f64(ctx, 2, (int64_t[]){2, 3}, locv),
                       bk_from_f64(ctx, 2, (int64_t[]){3, 1}, (double[]){1, 0.5, -0.5}),
                       bk_from_f64(ctx, 1, (int64_t[]){3}, (double[]){1, 2, 3})};
    sl_dist *d = make(ctx, "LowRankMultivariateNormal", 0, 3, p);
    ck_assert_int_eq(d->nbatch, 1);
    ck_assert_int_eq(d->batch[0], 2);
    ck_assert_int_eq(d->nevent, 1);
    ck_assert_int_eq(d->event[0], 3);
    bk_tensor *s = sl_sample(ctx, &rng, d, 1, (int64_t[]){5});
    assert_shape(s, 3, (int64_t[]){5, 2, 3});
    bk_tensor *lp = sl_log_prob(ctx, d, s);
    assert_shape(lp, 2, (int64_t[]){5, 2});
    /* against the dense MultivariateNormal with covariance W W^T + diag(D) */
    double cov[9];
    const double w[3] = {1, 0.5, -0.5}, dg[3] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) cov[i * 3 + j] = w[i] * w[j] + (i == j ? dg[i] : 0);
    bk_tensor *C = bk_from_f64(ctx, 2, (int64_t[]){3, 3}, cov);
    sl_dist *mv = make(ctx, "MultivariateNormal", 0, 2, (bk_tensor *[]){p[0], C});
    bk_tensor *lp2 = sl_log_prob(ctx, mv, s);
    for (int i = 0; i < 10; i++) ck_assert(fabs(bk_get(lp, i) - bk_get(lp2, i)) < 1e-12);
    bk_tensor *h1 = sl_entropy(ctx, d), *h2 = sl_entropy(ctx, mv);
    assert_shape(h1, 1, (int64_t[]){2});
    ck_assert(fabs(bk_get(h1, 1) - bk_get(h2, 1)) < 1e-12);
    sl_dist *e = sl_to_event(ctx, d, 1);
    bk_tensor *lpe = sl_log_prob(ctx, e, s);
    assert_shape(lpe, 1, (int64_t[]){5});
    ck_assert(fabs(bk_get(lpe, 0) - bk_get(lp, 0) - bk_get(lp, 1)) < 1e-12);
    bk_tensor *bad = bk_from_f64(ctx, 1, (int64_t[]){2}, (double[]){0, 0});
    ck_assert_ptr_null(sl_log_prob(ctx, d, bad));
    ck_assert(strstr(bk_errmsg(ctx), "value must have shape [..., 3]"));
    bk_release(lpe);
    bk_release(h1);
    bk_release(h2);
    bk_release(lp2);
    bk_release(C);
    bk_release(lp);
    bk_release(s);
    bk_release(bad);
    sl_dist_release(e);
    sl_dist_release(mv);
    sl_dist_release(d);

    /* validation messages */
    bk_tensor *Wbad = bk_from_f64(ctx, 2, (int64_t[]){2, 1}, (double[]){1, 1});
    ck_assert_ptr_null(sl_dist_make(ctx, sl_find_family("LowRankMultivariateNormal"), 0, 3,
                                    (bk_tensor *[]){p[0], Wbad, p[2]}));
    ck_assert_str_eq(bk_errmsg(ctx), "LowRankMultivariateNormal: cov_factor must have shape "
                     "[..., 3, rank] with rank >= 1 to match loc, got [2, 1]");
    bk_release(Wbad);
    for (int k = 0; k < 3; k++) bk_release(p[k]);

    /* OneHotCategorical: batch [2], event [3]; enumerate_support [3, 2, 3] */
    bk_tensor *pr = bk_from_f64(ctx, 2, (int64_t[]){2, 3}, (double[]){1, 2, 3, 3, 2, 1});
    d = make(ctx, "OneHotCategorical", 0, 1, &pr);
    ck_assert_int_eq(d->nbatch, 1);
    ck_assert_int_eq(d->nevent, 1);
    bk_tensor *en = d->fam->enumerate_support(ctx, d);
    assert_shape(en, 3, (int64_t[]){3, 2, 3});
    lp = sl_log_prob(ctx, d, en);
    assert_shape(lp, 2, (int64_t[]){3, 2});
    double tot[2] = {0, 0};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) tot[b] += exp(bk_get(lp, k * 2 + b));
    ck_assert(fabs(tot[0] - 1) < 1e-14 && fabs(tot[1] - 1) < 1e-14);
    ck_assert(fabs(bk_get(lp, 2 * 2 + 0) - log(0.5)) < 1e-14);
    bk_release(lp);
    bk_release(en);
    sl_dist_release(d);
    bk_tensor *zero = bk_from_f64(ctx, 1, (int64_t[]){2}, (double[]){0, 0});
    ck_assert_ptr_null(sl_dist_make(ctx, sl_find_family("OneHotCategorical"), 0, 1, &zero));
    ck_assert(strstr(bk_errmsg(ctx), "probs must have a positive finite sum"));
    bk_release(zero);
    bk_release(pr);

    /* TransformedDistribution: an Affine with a vector loc widens the batch */
    sl_dist *base = make_s(ctx, "Normal", 0, 2, (double[]){0, 1});
    bk_tensor *l3 = bk_from_f64(ctx, 1, (int64_t[]){3}, (double[]){0, 1, 2}), *two = bk_scalar(ctx, 2);
    sl_transform *af = sl_transform_affine(ctx, l3, two);
    d = sl_transformed_new(ctx, base, af);
    ck_assert_int_eq(d->nbatch, 1);
    ck_assert_int_eq(d->batch[0], 3);
    s = sl_sample(ctx, &rng, d, 1, (int64_t[]){4});
    assert_shape(s, 2, (int64_t[]){4, 3});
    e = sl_to_event(ctx, d, 1);
    lp = sl_log_prob(ctx, e, s);
    assert_shape(lp, 1, (int64_t[]){4});
    /* y = loc + 2 x: log p(y) = Normal(loc, 2).log_prob(y) summed over the event */
    sl_dist *ref = make(ctx, "Normal", 0, 2, (bk_tensor *[]){l3, two});
    bk_tensor *lr = sl_log_prob(ctx, ref, s);
    for (int i = 0; i < 4; i++) {
        double sum = 0;
        for (int k = 0; k < 3; k++) sum += bk_get(lr, i * 3 + k);
        ck_assert(fabs(sum - bk_get(lp, i)) < 1e-12);
    }
    bk_release(lr);
    sl_dist_release(ref);
    bk_release(lp);
    bk_release(s);
    sl_dist_release(e);
    sl_dist_release(d);
    sl_transform_release(af);
    bk_release(l3);
    bk_release(two);
    sl_dist_release(base);

    /* a vector base: log|J| is summed over the event; a row outside the image is -inf */
    bk_tensor *mp[2] = {bk_from_f64(ctx, 1, (int64_t[]){2}, (double[]){0, 1}),
                        bk_from_f64(ctx, 2, (int64_t[]){2, 2}, (double[]){1, 0, 0.5, 2})};
    sl_dist *mvn = make(ctx, "MultivariateNormal", 1, 2, mp);
    sl_transform *ex = sl_transform_new(ctx, SL_T_EXP);
    d = sl_transformed_new(ctx, mvn, ex);
    ck_assert_int_eq(d->nevent, 1);
    bk_tensor *yv = bk_from_f64(ctx, 2, (int64_t[]){2, 2}, (double[]){0.5, 3, 1, -1});
    bk_tensor *ly = bk_from_f64(ctx, 1, (int64_t[]){2}, (double[]){log(0.5), log(3.0)});
    lp = sl_log_prob(ctx, d, yv);
    lr = sl_log_prob(ctx, mvn, ly);
    assert_shape(lp, 1, (int64_t[]){2});
    ck_assert(fabs(bk_get(lp, 0) - (bk_item(lr) - log(0.5) - log(3.0))) < 1e-13);
    ck_assert(bk_get(lp, 1) == -INFINITY);
    bk_release(lp);
    bk_release(lr);
    bk_release(ly);
    bk_release(yv);
    sl_dist_release(d);
    sl_transform_release(ex);
    sl_dist_release(mvn);
    bk_release(mp[0]);
    bk_release(mp[1]);
    bk_ctx_free(ctx);
}
END_TEST

/* The fused no-tape log_prob kernels (Gamma, Beta, Poisson, Categorical)
 * against the tensor-op formulas (taken when a parameter requires grad),
 * with scalar and elementwise parameters and values outside the support. */
START_TEST(test_fused_log_prob) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    const double xs[8] = {0.3, 1.7, 0.0, -1.0, 5.0, 0.999, 2.0, 1e-300};
    const double ks[8] = {0, 1, 3, 2.5, -1, 40, 300, 7};
    struct {
        const char *fam;
        int variant, np;
        double p[2][8];
        const double *x;
    } cases[] = {
        {"Gamma", 0, 2, {{2.5, 0.3, 1, 7, 1e-3, 50, 2, 1}, {0.7, 2, 1, 1e3, 1, 0.5, 3, 1}}, xs},
        {"Beta", 0, 2, {{2, 0.5, 1, 30, 1e-3, 2, 5, 0.7}, {3.5, 0.5, 1, 2, 1, 1e3, 5, 0.2}}, xs},
        {"Poisson", 0, 1, {{7.5, 1e-3, 0, 3, 100, 2, 250, 1}}, ks},
    };
    for (int j = 0; j < 3; j++)
        for (int scalar = 0; scalar < 2; scalar++) {
            int64_t n = 8;
            bk_tensor *x = bk_from_f64(ctx, 1, &n, cases[j].x), *r[2];
            for (int path = 0; path < 2; path++) {
                bk_tensor *p[2];
                for (int k = 0; k < cases[j].np; k++) {
                    p[k] = scalar ? bk_scalar(ctx, cases[j].p[k][0])
                                  : bk_from_f64(ctx, 1, &n, cases[j].p[k]);
                    if (path) bk_set_requires_grad(p[k], true);   /* the tensor-op path */
                }
                sl_dist *d = make(ctx, cases[j].fam, 0, cases[j].np, p);
                r[path] = sl_log_prob(ctx, d, x);
                ck_assert_msg(r[path] != NULL, "%s", bk_errmsg(ctx));
                sl_dist_release(d);
                for (int k = 0; k < cases[j].np; k++) bk_release(p[k]);
            }
            for (int i = 0; i < 8; i++) {
                double a = bk_get(r[0], i), b = bk_get(r[1], i);
                ck_assert_msg(a == b || fabs(a - b) <= 1e-15 * fabs(b), "%s scalar=%d x[%d]: "
                              "fused %.17g, ops %.17g", cases[j].fam, scalar, i, a, b);
            }
            bk_release(r[0]);
            bk_release(r[1]);
            bk_tape_reset(ctx);
            bk_release(x);
        }
    /* Categorical, probs and logits, values in and out of range */
    double pv[4] = {0.1, 0.0, 0.6, 0.3}, cx[7] = {0, 1, 2, 3, 4, -1, 1.5};
    int64_t K = 4, n7 = 7;
    bk_tensor *x = bk_from_f64(ctx, 1, &n7, cx);
    for (int variant = 0; variant < 2; variant++) {
        bk_tensor *r[2];
        for (int path = 0; path < 2; path++) {
            bk_tensor *p = bk_from_f64(ctx, 1, &K, pv);
            if (variant) {
                bk_tensor *l = bk_add_s(ctx, p, 0.5);   /* logits */
                bk_release(p);
                p = l;
            }
            if (path) bk_set_requires_grad(p, true);
            sl_dist *d = make(ctx, "Categorical", variant, 1, &p);
            r[path] = sl_log_prob(ctx, d, x);
            sl_dist_release(d);
            bk_release(p);
        }
        for (int i = 0; i < 7; i++)
            ck_assert_msg(bk_get(r[0], i) == bk_get(r[1], i), "Categorical v%d x=%g: %.17g vs %.17g",
                          variant, cx[i], bk_get(r[0], i), bk_get(r[1], i));
        bk_release(r[0]);
        bk_release(r[1]);
        bk_tape_reset(ctx);
    }
    bk_release(x);
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
    tcase_add_test(tc, test_mvn_ar1_100);
    tcase_add_loop_test(tc, test_rsample_grad_fd, 0, (int)(sizeof rs_cases / sizeof *rs_cases));
    tcase_add_test(tc, test_rsample_grad_implicit);
    tcase_add_loop_test(tc, test_logprob_grad_fd, 0, (int)(sizeof lp_cases / sizeof *lp_cases));
    tcase_add_test(tc, test_logprob_grad_vector);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_transformed_fixtures);
    tcase_add_test(tc, test_new_family_grads);
    tcase_add_test(tc, test_new_family_sampling);
    tcase_add_test(tc, test_new_family_shapes);
    tcase_add_test(tc, test_fused_log_prob);
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
