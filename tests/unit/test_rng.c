/* test_rng.c - Philox4x32-10 known answers and goodness of fit of every
 * sampler at fixed seeds: Kolmogorov-Smirnov for the continuous ones,
 * chi-square for the discrete ones (1e5 draws each, p-value threshold 1e-4,
 * the p-values computed here with the library's incomplete gamma), moments
 * of the Dirichlet, reproducibility of (seed, stream), and the implicit
 * reparameterization gradient of Gamma draws through the tape. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "special.h"

#define N 100000
#define P_MIN 1e-4

static double buf[N];

START_TEST(philox_known_answers) {
    /* Random123's kat_vectors for philox4x32_10 */
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                       {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                        {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        bk_philox4x32_10(ctr[i], key[i], out);
        for (int k = 0; k < 4; k++) ck_assert_uint_eq(out[k], want[i][k]);
    }
}
END_TEST

START_TEST(generator_layout) {
    /* key = seed halves, ctr[2..3] = stream halves, ctr[0..1] = block */
    bk_rng r;
    bk_rng_init(&r, 0x0123456789abcdefULL, 0xfedcba9876543210ULL);
    ck_assert_uint_eq(r.key[0], 0x89abcdef);
    ck_assert_uint_eq(r.key[1], 0x01234567);
    ck_assert_uint_eq(r.ctr[2], 0x76543210);
    ck_assert_uint_eq(r.ctr[3], 0xfedcba98);
    uint32_t c[4] = {1, 0, r.ctr[2], r.ctr[3]}, out[4];
    bk_philox4x32_10(c, r.key, out); /* the second block */
    for (int i = 0; i < 4; i++) (void)bk_rng_u32(&r);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(bk_rng_u32(&r), out[i]);
}
END_TEST

/* The uniform a twin generator's next two words define (as bk_rng_uniform
 * documents it), or 0 where that k is 0 and would be redrawn. */
static double uniform_of_words(bk_rng *twin) {
    uint64_t a = bk_rng_u32(twin) >> 5, b = bk_rng_u32(twin) >> 6;
    return (double)((a << 26) | b) * 0x1p-53;
}

START_TEST(uniform_and_normal_from_words) {
    /* uniforms and normals read the word stream exactly as word-at-a-time
     * draws would, from every offset within a block (0..3 words used),
     * across block boundaries and with the cached second normal */
    for (int shift = 0; shift < 4; shift++) {
        bk_rng r, twin;
        bk_rng_init(&r, 0x5eed0000u + (uint64_t)shift, 3);
        twin = r;
        for (int i = 0; i < shift; i++) ck_assert_uint_eq(bk_rng_u32(&r), bk_rng_u32(&twin));
        for (int i = 0; i < 2000; i++) {
            if (i % 7 == 3) { /* an odd word now and then moves the offset */
                ck_assert_uint_eq(bk_rng_u32(&r), bk_rng_u32(&twin));
                continue;
            }
            if (i % 2) {
                double want = uniform_of_words(&twin);
                ck_assert(want > 0);
                ck_assert(bk_rng_uniform(&r) == want);
                continue;
            }
            double u1 = uniform_of_words(&twin), u2 = uniform_of_words(&twin);
            ck_assert(u1 > 0 && u2 > 0);
            double rad = sqrt(-2 * log(u1)), th = 2 * 3.14159265358979323846 * u2;
            ck_assert(bk_rng_normal(&r) == rad * cos(th));
            ck_assert(bk_rng_normal(&r) == rad * sin(th)); /* the spare */
        }
        ck_assert_int_eq(r.used, twin.used);
        ck_assert_uint_eq(r.ctr[0], twin.ctr[0]);
    }
}
END_TEST

START_TEST(reproducible_streams) {
    bk_rng a, b, c, d;
    bk_rng_init(&a, 99, 1);
    bk_rng_init(&b, 99, 1);
    bk_rng_init(&c, 99, 2);
    bk_rng_init(&d, 100, 1);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        double x = bk_rng_normal(&a), y = bk_rng_normal(&b);
        ck_assert(x == y);
        same_c += x == bk_rng_normal(&c);
        same_d += x == bk_rng_normal(&d);
    }
    ck_assert_int_lt(same_c, 2);
    ck_assert_int_lt(same_d, 2);
    for (int i = 0; i < N; i++) {
        double u = bk_rng_uniform(&a);
        ck_assert(u > 0 && u < 1);
    }
}
END_TEST

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Kolmogorov-Smirnov p-value of a sample against cdf: the statistic D with
 * Stephens' finite-n correction, then the Kolmogorov distribution's series
 * Q(t) = 2 sum_k (-1)^(k-1) exp(-2 k^2 t^2). */
static double ks_pvalue(double *x, int n, double (*cdf)(double, const double *), const double *par) {
    qsort(x, n, sizeof *x, cmp);
    double d = 0;
    for (int i = 0; i < n; i++) {
        double f = cdf(x[i], par);
        d = fmax(d, fmax(f - (double)i / n, (double)(i + 1) / n - f));
    }
    double t = (sqrt((double)n) + 0.12 + 0.11 / sqrt((double)n)) * d, p = 0;
    for (int k = 1; k < 100; k++) p += 2 * (k % 2 ? 1 : -1) * exp(-2.0 * k * k * t * t);
    return fmin(1, fmax(0, p));
}

static double cdf_uniform(double x, const double *p) { return x; }
static double cdf_normal(double x, const double *p) { return 0.5 * erfc(-x / sqrt(2)); }
static double cdf_gamma(double x, const double *p) { return bk_gammainc_lower(p[0], x); }
static double cdf_beta(double x, const double *p) { return bk_betainc(p[0], p[1], x); }

START_TEST(uniform_and_normal_fit) {
    bk_rng r;
    bk_rng_init(&r, 42, 0);
    for (int i = 0; i < N; i++) buf[i] = bk_rng_uniform(&r);
    double p = ks_pvalue(buf, N, cdf_uniform, NULL);
    ck_assert_msg(p > P_MIN, "uniform: KS p-value %g", p);
    for (int i = 0; i < N; i++) buf[i] = bk_rng_normal(&r);
    p = ks_pvalue(buf, N, cdf_normal, NULL);
    ck_assert_msg(p > P_MIN, "normal: KS p-value %g", p);
}
END_TEST

START_TEST(gamma_fit) {
    bk_rng r;
    bk_rng_init(&r, 42, 1);
    const double shapes[] = {0.1, 0.7, 1.0, 2.5, 50.0};
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < N; i++) buf[i] = bk_rng_gamma(&r, shapes[s]);
        double p = ks_pvalue(buf, N, cdf_gamma, &shapes[s]);
        ck_assert_msg(p > P_MIN, "gamma(%g): KS p-value %g", shapes[s], p);
    }
    ck_assert(isnan(bk_rng_gamma(&r, 0)) && isnan(bk_rng_gamma(&r, -1)));
}
END_TEST

START_TEST(beta_fit) {
    bk_rng r;
    bk_rng_init(&r, 42, 2);
    const double ab[][2] = {{2, 5}, {0.5, 0.3}, {30, 0.8}};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++) buf[i] = bk_rng_beta(&r, ab[s][0], ab[s][1]);
        double p = ks_pvalue(buf, N, cdf_beta, ab[s]);
        ck_assert_msg(p > P_MIN, "beta(%g, %g): KS p-value %g", ab[s][0], ab[s][1], p);
    }
}
END_TEST

/* Chi-square p-value of observed counts against expected probabilities
 * prob[0..k): neighbouring cells are pooled until each expects >= 5
 * (the remainder joins the last cell); df = cells - 1. */
static double chi2_pvalue(const double *count, const double *prob, int k, double n) {
    double stat = 0, o = 0, e = 0, lo = 0, le = 0;
    int cells = 0;
    for (int i = 0; i < k; i++) {
        o += count[i];
        e += n * prob[i];
        if (e >= 5) {
            stat += (o - e) * (o - e) / e;
            cells++;
            lo = o, le = e;
            o = e = 0;
        }
    }
    if (e > 0 || o > 0) { /* fold the short tail into the last cell */
        stat -= (lo - le) * (lo - le) / le;
        lo += o, le += e;
        stat += (lo - le) * (lo - le) / le;
    }
    return bk_gammainc_upper((cells - 1) / 2.0, stat / 2);
}

START_TEST(poisson_fit) {
    bk_rng r;
    bk_rng_init(&r, 7, 3);
    const double rates[] = {0.5, 5, 9.9, 10, 50, 500};
    for (int s = 0; s < 6; s++) {
        double lam = rates[s];
        int k = (int)(lam + 10 * sqrt(lam) + 20);
        double *count = calloc(k, sizeof *count), *prob = calloc(k, sizeof *prob);
        for (int i = 0; i < N; i++) {
            int64_t v = bk_rng_poisson(&r, lam);
            ck_assert(v >= 0);
            count[v < k ? v : k - 1]++;
        }
        for (int j = 0; j < k; j++) prob[j] = exp(j * log(lam) - lam - lgamma(j + 1.0));
        double p = chi2_pvalue(count, prob, k, N);
        free(count);
        free(prob);
        ck_assert_msg(p > P_MIN, "poisson(%g): chi-square p-value %g", lam, p);
    }
    ck_assert_int_eq(bk_rng_poisson(&r, 0), 0);
    ck_assert_int_eq(bk_rng_poisson(&r, -1), -1);
    ck_assert_int_eq(bk_rng_poisson(&r, NAN), -1);
}
END_TEST

START_TEST(binomial_fit) {
    bk_rng r;
    bk_rng_init(&r, 7, 4);
    /* inversion (n p < 30), BTRS, and p > 1/2 by symmetry */
    const struct { int64_t n; double p; } cases[] = {{20, 0.3}, {1000, 0.4}, {100, 0.93}, {50000, 0.01}, {7, 0.5}};
    for (int s = 0; s < 5; s++) {
        int64_t n = cases[s].n;
        double pr = cases[s].p;
        double *count = calloc(n + 1, sizeof *count), *prob = calloc(n + 1, sizeof *prob);
        for (int i = 0; i < N; i++) {
            int64_t v = bk_rng_binomial(&r, n, pr);
            ck_assert(v >= 0 && v <= n);
            count[v]++;
        }
        for (int64_t j = 0; j <= n; j++)
            prob[j] = exp(lgamma(n + 1.0) - lgamma(j + 1.0) - lgamma(n - j + 1.0) + j * log(pr) + (n - j) * log1p(-pr));
        double p = chi2_pvalue(count, prob, (int)n + 1, N);
        free(count);
        free(prob);
        ck_assert_msg(p > P_MIN, "binomial(%ld, %g): chi-square p-value %g", (long)n, pr, p);
    }
    ck_assert_int_eq(bk_rng_binomial(&r, 10, 0), 0);
    ck_assert_int_eq(bk_rng_binomial(&r, 10, 1), 10);
}
END_TEST

START_TEST(categorical_fit) {
    bk_rng r;
    bk_rng_init(&r, 7, 5);
    const double w[] = {1, 2, 3, 4, 0, 10, 0.05};
    double total = 20.05, count[7] = {0}, prob[7];
    for (int i = 0; i < N; i++) {
        int64_t v = bk_rng_categorical(&r, 7, w);
        ck_assert(v >= 0 && v < 7 && v != 4);
        count[v]++;
    }
    for (int j = 0; j < 7; j++) prob[j] = w[j] / total;
    double p = chi2_pvalue(count, prob, 7, N);
    ck_assert_msg(p > P_MIN, "categorical: chi-square p-value %g", p);
    const double zero[] = {0, 0};
    ck_assert_int_eq(bk_rng_categorical(&r, 2, zero), -1);
}
END_TEST

START_TEST(permutation_fit) {
    bk_rng r;
    bk_rng_init(&r, 7, 6);
    /* every element equally likely at every position (n = 10: 100 cells,
     * 81 df), and all 120 orders of n = 5 equally likely */
    static double pos[100];
    double prob[120];
    int64_t perm[10];
    for (int i = 0; i < N; i++) {
        bk_rng_permutation(&r, 10, perm);
        for (int j = 0; j < 10; j++) pos[j * 10 + perm[j]]++;
    }
    double stat = 0, e = N / 10.0;
    for (int j = 0; j < 100; j++) stat += (pos[j] - e) * (pos[j] - e) / e;
    double p = bk_gammainc_upper(81 / 2.0, stat / 2);
    ck_assert_msg(p > P_MIN, "permutation positions: chi-square p-value %g", p);

    double count[120] = {0};
    for (int i = 0; i < N; i++) {
        bk_rng_permutation(&r, 5, perm);
        int code = 0; /* Lehmer code: rank of the permutation */
        for (int j = 0; j < 5; j++) {
            int smaller = 0;
            for (int k = j + 1; k < 5; k++) smaller += perm[k] < perm[j];
            code = code * (5 - j) + smaller;
        }
        count[code]++;
    }
    for (int j = 0; j < 120; j++) prob[j] = 1 / 120.0;
    p = chi2_pvalue(count, prob, 120, N);
    ck_assert_msg(p > P_MIN, "permutation orders: chi-square p-value %g", p);
}
END_TEST

START_TEST(dirichlet_moments) {
    bk_rng r;
    bk_rng_init(&r, 11, 0);
    const double alpha[3] = {0.5, 2, 7.5};
    double a0 = 10, sum[3] = {0}, sum2[3] = {0}, x[3];
    const int n = 50000;
    for (int i = 0; i < n; i++) {
        bk_rng_dirichlet(&r, 3, alpha, x);
        ck_assert(fabs(x[0] + x[1] + x[2] - 1) < 1e-12);
        for (int j = 0; j < 3; j++) {
            sum[j] += x[j];
            sum2[j] += x[j] * x[j];
        }
    }
    for (int j = 0; j < 3; j++) {
        double m = alpha[j] / a0, v = alpha[j] * (a0 - alpha[j]) / (a0 * a0 * (a0 + 1));
        double mean = sum[j] / n, var = sum2[j] / n - mean * mean;
        /* mean within 5 standard errors; variance within 10% (its standard
         * error is under 2% here even for the skewed alpha = 0.5 marginal) */
        ck_assert_msg(fabs(mean - m) < 5 * sqrt(v / n), "dirichlet mean %d: %g vs %g", j, mean, m);
        ck_assert_msg(fabs(var - v) < 0.1 * v, "dirichlet var %d: %g vs %g", j, var, v);
    }
    /* tiny concentrations: the gammas underflow, the log-space draw does not */
    const double tiny[4] = {0.01, 0.01, 0.02, 0.005};
    int hits[4] = {0};
    for (int i = 0; i < 4000; i++) {
        double y[4];
        bk_rng_dirichlet(&r, 4, tiny, y);
        double s = 0;
        for (int j = 0; j < 4; j++) {
            ck_assert(y[j] >= 0 && y[j] <= 1);
            s += y[j];
            hits[j] += y[j] > 0.5;
        }
        ck_assert(fabs(s - 1) < 1e-12);
    }
    /* mass lands on each coordinate about alpha_j / alpha_0 of the time */
    for (int j = 0; j < 4; j++) ck_assert_msg(fabs(hits[j] / 4000.0 - tiny[j] / 0.045) < 0.05, "tiny %d: %d", j, hits[j]);
}
END_TEST

START_TEST(tensor_draws) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r1, r2;
    bk_rng_init(&r1, 5, 9);
    bk_rng_init(&r2, 5, 9);
    int64_t shape[2] = {3, 4};
    bk_tensor *u = bk_rand_uniform(ctx, &r1, 2, shape), *z = bk_rand_normal(ctx, &r1, 2, shape);
    ck_assert(u && z);
    ck_assert_int_eq(u->numel, 12);
    ck_assert_int_eq(z->ndim, 2);
    for (int i = 0; i < 12; i++) ck_assert(bk_get(u, i) == bk_rng_uniform(&r2));
    for (int i = 0; i < 12; i++) ck_assert(bk_get(z, i) == bk_rng_normal(&r2));
    bk_release(u);
    bk_release(z);
    bk_ctx_free(ctx);
}
END_TEST

/* mean over draws of f(z) through the tape: returns d mean / d alpha */
static double gamma_grad(bk_ctx *ctx, bk_rng *r, double a, int use_log, double *value) {
    bk_tensor *alpha = bk_scalar(ctx, a);
    bk_set_requires_grad(alpha, true);
    int64_t shape[1] = {N};
    bk_tensor *z = bk_rand_gamma(ctx, r, alpha, 1, shape);
    ck_assert_msg(z != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *f = use_log ? bk_unop(ctx, BK_OP_LOG, z) : bk_retain(z);
    bk_tensor *loss = bk_reduce(ctx, BK_OP_MEAN, f, BK_ALL_AXES, false);
    ck_assert(loss != NULL);
    *value = bk_item(loss);
    ck_assert_int_eq(bk_backward(ctx, loss), 0);
    ck_assert(alpha->grad != NULL);
    double g = bk_item(alpha->grad);
    bk_release(loss);
    bk_release(f);
    bk_release(z);
    bk_tape_reset(ctx);
    bk_release(alpha);
    return g;
}

START_TEST(gamma_reparam_gradient) {
    /* E[z] = a, so d/da E[z] = 1; E[log z] = digamma(a), so its
     * derivative is trigamma(a): the pathwise gradients must average to
     * these (5 standard errors, estimated from the per-draw spread bound) */
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 3, 3);
    const double as[] = {0.3, 4.0};
    for (int i = 0; i < 2; i++) {
        double a = as[i], v;
        double g = gamma_grad(ctx, &r, a, 0, &v);
        ck_assert_msg(fabs(v - a) < 5 * sqrt(a / N), "mean %g vs %g", v, a);
        ck_assert_msg(fabs(g - 1) < 0.02, "d E[z]/da at %g: %g", a, g);
        g = gamma_grad(ctx, &r, a, 1, &v);
        ck_assert_msg(fabs(v - bk_digamma(a)) < 5 * sqrt(bk_trigamma(a) / N), "E log z %g", v);
        ck_assert_msg(fabs(g / bk_trigamma(a) - 1) < 0.03, "d E[log z]/da at %g: %g vs %g", a, g, bk_trigamma(a));
    }
    /* without requires_grad: a plain draw, nothing on the tape */
    bk_tensor *alpha = bk_scalar(ctx, 2.0);
    int64_t shape[1] = {5};
    bk_tensor *z = bk_rand_gamma(ctx, &r, alpha, 1, shape);
    ck_assert(z && !z->requires_grad);
    ck_assert_uint_eq(bk_tape_len(ctx), 0);
    bk_release(z);
    bk_release(alpha);
    bk_ctx_free(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, generator_layout);
    tcase_add_test(tc, uniform_and_normal_from_words);
    tcase_add_test(tc, reproducible_streams);
    tcase_add_test(tc, uniform_and_normal_fit);
    tcase_add_test(tc, gamma_fit);
    tcase_add_test(tc, beta_fit);
    tcase_add_test(tc, poisson_fit);
    tcase_add_test(tc, binomial_fit);
    tcase_add_test(tc, categorical_fit);
    tcase_add_test(tc, permutation_fit);
    tcase_add_test(tc, dirichlet_moments);
    tcase_add_test(tc, tensor_draws);
    tcase_add_test(tc, gamma_reparam_gradient);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
