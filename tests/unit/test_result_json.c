/* test_result_json.c - write_json of inference results (DESIGN 1.5:
 * `write_json("out.json", post)`): a posterior from mcmc(...) writes its
 * draws per site (as post.NAME gives them) with the summary JSON, and an SVI
 * fit writes the summary JSON of `ppl svi --summary`; load_json reads both
 * back to the same numbers (17 significant digits). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vm_fixture.h"

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/ppl_result_json_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/out.json", dir);
    unlink(p);
    rmdir(dir);
}

/* Runs src with PATH replaced by the output file; the script sets `ok`. */
static void check_script(const char *src) {
    char path[128], *text = malloc(strlen(src) + 512), *w = text;
    snprintf(path, sizeof path, "%s/out.json", dir);
    for (const char *s = src; *s;) {
        if (strncmp(s, "PATH", 4) == 0) {
            w += sprintf(w, "\"%s\"", path);
            s += 4;
        } else {
            *w++ = *s++;
        }
    }
    *w = 0;
    rt_vm *vm = vm_running(text);
    rt_value *ok = rt_global_get(vm, "ok");
    ck_assert_msg(ok && ok->tag == RT_TENSOR && bk_item(ok->u.t) == 1, "the read-back values differ");
    free(text);
    rt_vm_free(vm);
}

START_TEST(posterior_round_trip) {
    check_script("model schools(J, y, sigma) {\n"
                 "  sample mu ~ Normal(0.0, 5.0)\n"
                 "  sample tau ~ HalfCauchy(5.0)\n"
                 "  plate school(J) {\n"
                 "    sample theta_raw ~ Normal(0.0, 1.0)\n"
                 "    deterministic theta = mu + tau * theta_raw\n"
                 "    observe y ~ Normal(theta, sigma)\n"
                 "  }\n"
                 "}\n"
                 "data = load_json(\"examples/eight_schools.json\")\n"
                 "post = mcmc(schools, data, warmup=100, samples=60, chains=2, seed=4)\n"
                 "write_json(PATH, post)\n"
                 "d = load_json(PATH)\n"
                 "ok = d.chains == 2 and d.samples == 60 and shape(d.draws.theta)[0] == 120\n"
                 "ok = ok and shape(d.draws.theta)[1] == 8 and shape(d.draws.mu)[0] == 120\n"
                 "ok = ok and sum(d.draws.mu != post.mu) == 0 and sum(d.draws.tau != post.tau) == 0\n"
                 "ok = ok and sum(d.draws.theta != post.theta) == 0 and sum(d.draws.theta_raw != post.theta_raw) == 0\n"
                 "ok = ok and abs(d.summary.mu.mean - mean(post.mu)) < 1e-12 and d.divergences == post.divergences\n"
                 "ok = ok and d.max_depth == 10\n");
}
END_TEST

START_TEST(svi_fit_round_trip) {
    check_script("model weather(sensor) {\n"
                 "  sample temp ~ Normal(15.0, 2.0)\n"
                 "  observe sensor ~ Normal(temp, 1.0)\n"
                 "}\n"
                 "fit = svi(weather, AutoNormal(weather), {sensor: 18.0}, steps=50, seed=1)\n"
                 "write_json(PATH, fit)\n"
                 "d = load_json(PATH)\n"
                 "ok = d.params[\"AutoNormal.locs.temp\"] == fit.params[\"AutoNormal.locs.temp\"]\n"
                 "ok = ok and d.params[\"AutoNormal.scales.temp\"] == fit.params[\"AutoNormal.scales.temp\"]\n"
                 "ok = ok and d.elbo == fit.elbo and d.steps == 50 and d.summary.temp.sd > 0\n");
}
END_TEST

int main(void) {
    Suite *s = suite_create("result_json");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, posterior_round_trip);
    tcase_add_test(tc, svi_fit_round_trip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
