/* test_eval.c - the evaluation built-ins (nll, ece, brier,
 * interval_coverage, sharpness, crps, predictive_interval) against
 * NumPy/SciPy references in tests/fixtures/eval_metrics.json (written by
 * tests/gen_eval_fixtures.py), their error messages, and that nll and the
 * Normal CRPS carry gradients (SVI minimizing them finds the known optimum). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ppl.h"

static ppl_state *S;

static void setup(void) {
    S = ppl_open(NULL);
    ck_assert_msg(ppl_load_string(S, "<fixture>", "d = load_json(\"tests/fixtures/eval_metrics.json\")\nE = d.expect\n") ==
                      PPL_OK,
                  "%s", ppl_errmsg(S));
}

static void teardown(void) { ppl_close(S); }

static double value_of(const char *expr) {
    char src[1024];
    snprintf(src, sizeof src, "r__ = %s\n", expr);
    ck_assert_msg(ppl_load_string(S, "<test>", src) == PPL_OK, "%s: %s", expr, ppl_errmsg(S));
    double v;
    size_t n;
    ck_assert_msg(ppl_get_f64(S, "r__", &v, 1, &n) == PPL_OK && n == 1, "%s: not a scalar", expr);
    return v;
}

static void check_close(const char *expr, const char *ref, double tol) {
    double a = value_of(expr), b = value_of(ref);
    ck_assert_msg(fabs(a - b) <= tol * (1 + fabs(b)), "%s = %.17g, reference %s = %.17g", expr, a, ref, b);
}

START_TEST(regression_metrics) {
    check_close("nll(Normal(d.mu, d.sd), d.y)", "E.nll", 1e-12);
    check_close("nll(Normal(d.draws, d.sd), d.y, mixture=true)", "E.nll_mixture", 1e-12);
    check_close("crps(Normal(d.mu, d.sd), d.y)", "E.crps_normal", 1e-12);
    check_close("crps(d.draws, d.y)", "E.crps_draws", 1e-12);
    check_close("interval_coverage(d.draws, d.y, level=0.9)", "E.coverage_draws", 1e-15);
    check_close("interval_coverage(d.draws, d.y)", "E.coverage_draws", 1e-15);
    check_close("interval_coverage(Normal(d.mu, d.sd), d.y, level=0.8)", "E.coverage_normal80", 1e-15);
    check_close("interval_coverage(d.lower, d.upper, d.y)", "E.coverage_bounds", 1e-15);
    check_close("sharpness(d.draws, level=0.9)", "E.width_draws", 1e-12);
    check_close("sharpness(d.draws)", "E.sd_draws", 1e-12);
    check_close("sharpness(Normal(d.mu, d.sd))", "E.sd_normal", 1e-12);
    check_close("sharpness(Normal(d.mu, d.sd), level=0.8)", "E.width_normal80", 1e-9);
    check_close("sharpness(d.lower, d.upper)", "E.width_bounds", 1e-12);
    check_close("predictive_interval(d.draws).lower[0]", "E.pi_lower0", 1e-12);
    check_close("predictive_interval(d.draws, level=0.9).upper[7]", "E.pi_upper7", 1e-12);
    check_close("predictive_interval(d.draws).median[3]", "E.pi_median3", 1e-12);
    check_close("predictive_interval(d.draws).mean[5]", "mean(d.draws[:, 5])", 1e-12);
}
END_TEST

START_TEST(classification_metrics) {
    check_close("ece(d.pb, d.yb)", "E.ece_bin", 1e-12);
    check_close("ece(d.pb, d.yb, bins=15)", "E.ece_bin15", 1e-12);
    check_close("ece(d.pm, d.ym)", "E.ece_mc", 1e-12);
    check_close("brier(d.pb, d.yb)", "E.brier_bin", 1e-12);
    check_close("brier(d.pm, d.ym)", "E.brier_mc", 1e-12);
    /* hand-checked: each prediction alone in its bin */
    check_close("ece([0.9, 0.2, 0.6, 0.7], [1, 0, 0, 1])", "0.3", 1e-15);
    check_close("ece([[1, 0], [0, 1]], [0, 1])", "0", 0);
    check_close("brier([1, 0], [1, 0])", "0", 0);
}
END_TEST

static void fails(const char *src, const char *frag) {
    ppl_status st = ppl_load_string(S, "t.ppl", src);
    ck_assert_msg(st != PPL_OK, "%s: should fail", src);
    ck_assert_msg(strstr(ppl_errmsg(S), frag), "%s: message lacks \"%s\":\n%s", src, frag, ppl_errmsg(S));
    ck_assert_msg(strstr(ppl_errmsg(S), "t.ppl:1:"), "%s: no location:\n%s", src, ppl_errmsg(S));
}

START_TEST(errors) {
    fails("ece([0.5, 1.5], [0, 1])", "ece: probabilities must lie in [0, 1], got 1.5 (row 1)");
    fails("ece([0.5, 0.5], [0, 2])", "ece: labels must be integers in 0..1, got 2 (row 1)");
    fails("brier([[0.5, 0.5]], [0, 1])", "brier: labels has 2 elements but probs has 1 rows");
    fails("ece([0.5], [1], bins=0)", "ece: bins must be an integer in 1..10000");
    fails("crps(zeros([10, 3]), zeros(4))", "crps: y has shape [4] but the samples have shape [10, 3]");
    fails("crps(Gamma(1, 1), 1)", "crps: closed form only for Normal, got Gamma");
    fails("nll(3, 1)", "nll: the first argument must be a distribution");
    fails("interval_coverage(zeros([5, 2]), zeros(2), level=1.5)", "interval_coverage: level must be in (0, 1)");
    fails("interval_coverage(1, 2, 3, level=0.5)", "level is for (samples, y) or (dist, y)");
    fails("sharpness(Dirichlet(ones(3)), level=0.5)", "sharpness: Dirichlet has no closed-form quantiles");
    fails("predictive_interval(2)", "predictive_interval: samples must have the draws along axis 0");
}
END_TEST

/* Minimizing N * nll over a location gives the sample mean; minimizing the
 * Normal CRPS of symmetric data gives its centre: both need gradients. */
START_TEST(gradients) {
    const char *src =
        "model m_nll(y) { param m = 0.0\n factor f = -len(y) * nll(Normal(m, 1.0), y) }\n"
        "guide g_none(y) { }\n"
        "fit = svi(m_nll, g_none, {y: [1.0, 2.0, 3.0, 6.0]}, steps=1500, optim=Adam(lr=0.05), seed=1)\n"
        "a__ = fit.params.m\n"
        "model m_crps(y) { param c = 0.0\n factor f = -len(y) * crps(Normal(c, 0.5), y) }\n"
        "fit2 = svi(m_crps, g_none, {y: [3.0, 4.5, 5.5, 7.0]}, steps=1500, optim=Adam(lr=0.05), seed=1)\n"
        "b__ = fit2.params.c\n";
    ck_assert_msg(ppl_load_string(S, "<grad>", src) == PPL_OK, "%s", ppl_errmsg(S));
    double a, b;
    size_t n;
    ck_assert(ppl_get_f64(S, "a__", &a, 1, &n) == PPL_OK);
    ck_assert(ppl_get_f64(S, "b__", &b, 1, &n) == PPL_OK);
    ck_assert_msg(fabs(a - 3.0) < 1e-3, "nll minimizer %g, want 3", a);
    ck_assert_msg(fabs(b - 5.0) < 1e-3, "crps minimizer %g, want 5", b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, regression_metrics);
    tcase_add_test(tc, classification_metrics);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, gradients);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    return nf ? 1 : 0;
}
