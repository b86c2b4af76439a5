/* test_api_dist.c - distribution families registered by the host through
 * ppl_register_distribution: log_prob, sampling and validation from .ppl
 * code, gradients (MAP by SVI against the same density written as a
 * `factor` in the language), the no-gradient rule, registration errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ppl.h"

/* Gumbel(loc, scale): z = (x - loc) / scale, log p = -log scale - z - e^-z */
static void gumbel_lp(void *ud, size_t n, const double *x, const double *const *p, double *out) {
    (void)ud;
    for (size_t k = 0; k < n; k++) {
        double z = (x[k] - p[0][k]) / p[1][k];
        out[k] = -log(p[1][k]) - z - exp(-z);
    }
}

static void gumbel_grad(void *ud, size_t n, const double *x, const double *const *p, double *dx,
                        double *const *dp) {
    (*(int *)ud)++;   /* counts gradient calls */
    for (size_t k = 0; k < n; k++) {
        double s = p[1][k], z = (x[k] - p[0][k]) / s, dz = -1 + exp(-z);  /* d lp / dz */
        if (dx) dx[k] = dz / s;
        if (dp[0]) dp[0][k] = -dz / s;
        if (dp[1]) dp[1][k] = -1 / s - dz * z / s;
    }
}

static void gumbel_sample(void *ud, size_t n, const double *const *p, double *out,
                          double (*uniform)(void *), void *rng) {
    (void)ud;
    for (size_t k = 0; k < n; k++) out[k] = p[0][k] - p[1][k] * log(-log(uniform(rng)));
}

static const char *gumbel_check(void *ud, int i, double v) {
    (void)ud;
    if (i == 1 && !(v > 0)) return "must be > 0";
    if (i == 0 && !isfinite(v)) return "must be finite";
    return NULL;
}

static const char *const gumbel_names[] = {"loc", "scale"};

static ppl_dist_def gumbel_def(int *counter) {
    ppl_dist_def d = {0};
    d.name = "Gumbel";
    d.nparams = 2;
    d.param_names = gumbel_names;
    d.log_prob = gumbel_lp;
    d.grad = gumbel_grad;
    d.sample = gumbel_sample;
    d.check = gumbel_check;
    d.ud = counter;
    return d;
}

static double get1(ppl_state *S, const char *name) {
    double v = NAN;
    size_t n = 0;
    ck_assert_msg(ppl_get_f64(S, name, &v, 1, &n) == PPL_OK, "%s", ppl_errmsg(S));
    return v;
}

START_TEST(test_host_log_prob_sample) {
    ppl_state *S = ppl_open(NULL);
    int calls = 0;
    ppl_dist_def def = gumbel_def(&calls);
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_OK);
    ck_assert_int_eq(ppl_load_string(S, "<t>",
                     "d = Gumbel(0.5, scale=2.0)\n"
                     "lp = d.log_prob([0.0, 1.0, 30.0])\n"
                     "lp0 = lp[0]\nlp2 = lp[2]\n"
                     "bs = len(Gumbel([1.0, 2.0, 3.0], 1.0).log_prob(0.0))\n"
                     "x = d.sample([20000])\n"
                     "m = mean(x)\nv = mean((x - m) ** 2)\n"),
                     PPL_OK);
    double z0 = (0.0 - 0.5) / 2, z2 = (30.0 - 0.5) / 2;
    ck_assert(fabs(get1(S, "lp0") - (-log(2.0) - z0 - exp(-z0))) < 1e-14);
    ck_assert(fabs(get1(S, "lp2") - (-log(2.0) - z2 - exp(-z2))) < 1e-13);
    ck_assert(get1(S, "bs") == 3);
    /* Gumbel mean loc + gamma scale, variance pi^2 scale^2 / 6 */
    double mu = 0.5 + 0.5772156649015329 * 2, var = M_PI * M_PI * 4 / 6;
    ck_assert_msg(fabs(get1(S, "m") - mu) < 5 * sqrt(var / 20000), "mean %g", get1(S, "m"));
    ck_assert_msg(fabs(get1(S, "v") - var) < 0.1 * var, "variance %g", get1(S, "v"));
    ck_assert_int_eq(calls, 0);   /* no gradient was needed */

    /* validation names the family, the argument and the value, with a caret */
    ck_assert_int_ne(ppl_load_string(S, "<bad>", "d = Gumbel(0.0, -1.0)\n"), PPL_OK);
    const char *msg = ppl_errmsg(S);
    ck_assert_msg(strstr(msg, "Gumbel: scale must be > 0, got -1") && strchr(msg, '^'), "%s", msg);
    ck_assert_int_ne(ppl_load_string(S, "<bad>", "d = Gumbel(0.0)\n"), PPL_OK);
    ck_assert_msg(strstr(ppl_errmsg(S), "Gumbel: missing argument \"scale\""), "%s", ppl_errmsg(S));
    ck_assert_int_ne(ppl_load_string(S, "<bad>", "d = Gumbel(0.0, 1.0, shape=2)\n"), PPL_OK);
    ppl_close(S);
}
END_TEST

/* MAP of mu under y ~ Gumbel(mu, 1.5): the host family against the same
 * density as a factor in the language; equal optima need equal gradients. */
START_TEST(test_host_gradients) {
    ppl_state *S = ppl_open(NULL);
    int calls = 0;
    ppl_dist_def def = gumbel_def(&calls);
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_OK);
    double y[8] = {1.2, 0.3, 2.5, 1.9, 0.8, 3.1, 1.4, 0.1};
    int64_t n = 8;
    ck_assert_int_eq(ppl_set_data_f64(S, "y", y, 1, &n), PPL_OK);
    ck_assert_int_eq(ppl_load_string(S, "<m>",
                     "model host(y) {\n"
                     "    sample mu ~ Normal(0.0, 10.0)\n"
                     "    sample s ~ LogNormal(0.0, 1.0)\n"
                     "    plate obs(len(y)) { observe y ~ Gumbel(mu, s) }\n"
                     "}\n"
                     "model lang(y) {\n"
                     "    sample mu ~ Normal(0.0, 10.0)\n"
                     "    sample s ~ LogNormal(0.0, 1.0)\n"
                     "    factor f = -log(s) - (y - mu) / s - exp(-(y - mu) / s)\n"
                     "}\n"),
                     PPL_OK);
    double est[2][2];
    const char *models[2] = {"host", "lang"};
    for (int j = 0; j < 2; j++) {
        ppl_svi_opts o = ppl_svi_defaults();
        o.guide = "auto_delta";
        o.steps = 1500;
        o.lr = 0.05;
        o.summary_samples = 10;
        ppl_result *R = NULL;
        ck_assert_msg(ppl_svi(S, models[j], &o, &R) == PPL_OK, "%s", ppl_errmsg(S));
        double sd;
        ck_assert_int_eq(ppl_result_summary(R, "mu", &est[j][0], &sd), PPL_OK);
        ck_assert_int_eq(ppl_result_summary(R, "s", &est[j][1], &sd), PPL_OK);
        ppl_result_free(R);
    }
    ck_assert_int_gt(calls, 100);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(fabs(est[0][k] - est[1][k]) < 1e-6 * fmax(1, fabs(est[1][k])),
                      "param %d: host %.12g vs language %.12g", k, est[0][k], est[1][k]);
    ppl_close(S);
}
END_TEST

/* A family without a gradient: fine for observed data with constant
 * parameters, a clear error where a gradient must flow. */
static void pois_lp(void *ud, size_t n, const double *x, const double *const *p, double *out) {
    (void)ud;
    for (size_t k = 0; k < n; k++)
        out[k] = x[k] >= 0 && x[k] == floor(x[k]) ? x[k] * log(p[0][k]) - p[0][k] - lgamma(x[k] + 1)
                                                  : -INFINITY;
}

START_TEST(test_host_no_gradient) {
    ppl_state *S = ppl_open(NULL);
    static const char *const names[] = {"rate"};
    ppl_dist_def def = {0};
    def.name = "HostPoisson";
    def.nparams = 1;
    def.param_names = names;
    def.log_prob = pois_lp;
    def.support = "nonnegative_integer";
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_OK);
    ck_assert_int_eq(ppl_load_string(S, "<t>",
                     "a = HostPoisson(3.0).log_prob(2.0)\nb = Poisson(3.0).log_prob(2.0)\n"
                     "c = HostPoisson(3.0).log_prob(-1.0)\nsup = HostPoisson(1.0).support\n"
                     "model m(k) {\n    sample r ~ Gamma(2.0, 1.0)\n    observe k ~ HostPoisson(r)\n}\n"),
                     PPL_OK);
    ck_assert(fabs(get1(S, "a") - get1(S, "b")) < 1e-14);
    ck_assert(get1(S, "c") == -INFINITY);
    double k = 4;
    ck_assert_int_eq(ppl_set_data_f64(S, "k", &k, 0, NULL), PPL_OK);
    ppl_mcmc_opts o = ppl_mcmc_defaults();
    o.chains = 1;
    o.warmup = o.samples = 10;
    ppl_result *R = NULL;
    ck_assert_int_ne(ppl_mcmc(S, "m", &o, &R), PPL_OK);
    ck_assert_msg(strstr(ppl_errmsg(S), "HostPoisson: this host-defined family has no gradient "
                         "callback"), "%s", ppl_errmsg(S));
    /* no sampler: sampling it is an error too */
    ck_assert_int_ne(ppl_load_string(S, "<t>", "z = HostPoisson(2.0).sample()\n"), PPL_OK);
    ck_assert_msg(strstr(ppl_errmsg(S), "has no sampler"), "%s", ppl_errmsg(S));
    ppl_close(S);
}
END_TEST

START_TEST(test_host_registration_errors) {
    ppl_state *S = ppl_open(NULL);
    int calls = 0;
    ppl_dist_def def = gumbel_def(&calls);
    def.name = "Normal";
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    ck_assert(strstr(ppl_errmsg(S), "Normal is a built-in distribution"));
    def.name = "2bad";
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    def.name = "Ok";
    def.log_prob = NULL;
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    ck_assert(strstr(ppl_errmsg(S), "log_prob is required"));
    def = gumbel_def(&calls);
    def.support = "simplex";
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    def.support = "interval";
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    def.support = NULL;
    def.nparams = 7;
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_ERR_MISUSE);
    ck_assert_int_eq(ppl_register_distribution(NULL, &def), PPL_ERR_MISUSE);
    ck_assert_int_eq(ppl_register_distribution(S, NULL), PPL_ERR_MISUSE);
    /* re-registering replaces; a distribution built before keeps its family */
    def = gumbel_def(&calls);
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_OK);
    ck_assert_int_eq(ppl_load_string(S, "<t>", "old = Gumbel(0.0, 1.0)\n"), PPL_OK);
    ck_assert_int_eq(ppl_register_distribution(S, &def), PPL_OK);
    ck_assert_int_eq(ppl_load_string(S, "<t>", "v = old.log_prob(0.0)\n"), PPL_OK);
    ck_assert(fabs(get1(S, "v") - (-1.0)) < 1e-15);
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("api_dist");
    TCase *tc = tcase_create("api_dist");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_host_log_prob_sample);
    tcase_add_test(tc, test_host_gradients);
    tcase_add_test(tc, test_host_no_gradient);
    tcase_add_test(tc, test_host_registration_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
