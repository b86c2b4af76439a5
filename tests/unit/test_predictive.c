/* test_predictive.c - posterior predictive from MCMC draws.
 *
 * predictive(model, post, data) with post = mcmc(...) sets every latent site
 * to one stored draw and draws the observe sites afresh.  The conjugate
 * model checks the result against the analytic posterior predictive; the
 * others check the draw bookkeeping (which rows, shapes, return_sites) and
 * the errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "ppl.h"

#include "api_fixture.h"

START_TEST(conjugate_normal_posterior_predictive) {
    /* mu ~ N(0, 2), y_i ~ N(mu, 1), y = (1, 2, 0.5, 1.5): the posterior is
     * N(mu_n, sigma_n) with precision 1/4 + 4 = 4.25, mu_n = 5 / 4.25, and a
     * new observation is N(mu_n, sqrt(sigma_n^2 + 1)). */
    RUN("model m(y) {\n  sample mu ~ Normal(0.0, 2.0)\n  observe y ~ Normal(mu, 1.0)\n"
        "  deterministic z = mu * 2.0\n}\n"
        "d = {y: [1.0, 2.0, 0.5, 1.5]}\n"
        "post = mcmc(m, d, warmup=300, samples=1000, chains=2, seed=3)\n"
        "p = predictive(m, post, d, seed=4)\n"
        "n = len(p.y)\npm = mean(p.y)\npsd = sqrt(mean(p.y ** 2) - pm ** 2)\n"
        "dmu = max(abs(p.mu - post.mu))\ndz = max(abs(p.z - 2.0 * post.mu))\n");
    double prec = 4.25, mu_n = 5 / prec, s2 = 1 / prec + 1, N = 2000;
    /* by default every pooled draw once, in order: the latents are the draws */
    ck_assert(get("n") == N);
    ck_assert(get("dmu") == 0);
    ck_assert(get("dz") == 0); /* deterministic sites recomputed from the draw */
    /* y* = mu_draw + eps: the mean's standard error is at most
     * sqrt((2 sigma_n^2 + 1) / N) when the chains' ESS is >= N / 2; the
     * sd's is about sd / sqrt(2N) (x1.2 for the same correlation); 4 se */
    double se_m = sqrt((2 / prec + 1) / N), se_s = 1.2 * sqrt(s2) / sqrt(2 * N);
    ck_assert_msg(fabs(get("pm") - mu_n) < 4 * se_m, "predictive mean %g vs %g", get("pm"), mu_n);
    ck_assert_msg(fabs(get("psd") - sqrt(s2)) < 4 * se_s, "predictive sd %g vs %g", get("psd"), sqrt(s2));
}
END_TEST

START_TEST(draws_shapes_and_return_sites) {
    RUN("model m(y) {\n  sample theta ~ Normal(zeros(3), 1.0).to_event(1)\n"
        "  plate obs(5) {\n    observe y ~ Normal(theta[0] + theta[1] - theta[2], 1.0)\n  }\n}\n"
        "d = {y: [0.5, 1.0, -0.5, 2.0, 1.5]}\n"
        "post = mcmc(m, d, warmup=100, samples=200, chains=2, seed=1)\n"
        "p = predictive(m, post, d, samples=7, seed=2)\n"
        "st0 = shape(p.theta)[0]\nst1 = shape(p.theta)[1]\nsy0 = shape(p.y)[0]\nsy1 = shape(p.y)[1]\n"
        /* 7 of N = 400 draws, evenly spaced: rows floor(s * 400 / 7) */
        "e0 = max(abs(p.theta[0] - post.theta[0]))\ne6 = max(abs(p.theta[6] - post.theta[342]))\n"
        "q = predictive(m, post, d, samples=3, return_sites=[\"y\"])\nnq = len(q)\nsq = shape(q.y)[0]\n"
        "r = predictive(m, post, d, samples=900, seed=2)\nnr = len(r.y)\n"
        "r2 = predictive(m, post, d, samples=900, seed=2)\nsame = max(abs(r.y - r2.y))\n");
    ck_assert(get("st0") == 7 && get("st1") == 3);
    ck_assert(get("sy0") == 7 && get("sy1") == 5);
    ck_assert(get("e0") == 0 && get("e6") == 0);
    ck_assert(get("nq") == 1 && get("sq") == 3);
    ck_assert(get("nr") == 900); /* more than the 400 draws: rows repeat */
    ck_assert(get("same") == 0); /* same seed, same draws */
}
END_TEST

START_TEST(predictive_errors) {
    RUN("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  observe y ~ Normal(mu, 1.0)\n}\n"
        "model other(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  sample tau ~ Normal(0.0, 1.0)\n"
        "  observe y ~ Normal(mu + tau, 1.0)\n}\n"
        "post = mcmc(m, {y: 1.0}, warmup=50, samples=50, chains=1, seed=1)\n");
    ck_assert_int_eq(ppl_load_string(S, "t.ppl", "p = predictive(other, post, {y: 1.0})\n"), PPL_ERR_RUNTIME);
    ck_assert_msg(strstr(ppl_errmsg(S), "no draws of the latent site \"tau\""), "%s", ppl_errmsg(S));
    ck_assert_int_eq(ppl_load_string(S, "t.ppl", "p = predictive(m, post, {y: 1.0}, samples=0)\n"), PPL_ERR_RUNTIME);
    ck_assert_msg(strstr(ppl_errmsg(S), "samples must be an integer"), "%s", ppl_errmsg(S));
    ck_assert_int_eq(ppl_load_string(S, "t.ppl", "p = predictive(m, 3, {y: 1.0})\n"), PPL_ERR_RUNTIME);
    ck_assert_msg(strstr(ppl_errmsg(S), "svi(...) or mcmc(...)"), "%s", ppl_errmsg(S));
}
END_TEST

int main(void) {
    Suite *s = suite_create("predictive");
    TCase *tc = tcase_create("predictive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, conjugate_normal_posterior_predictive);
    tcase_add_test(tc, draws_shapes_and_return_sites);
    tcase_add_test(tc, predictive_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
