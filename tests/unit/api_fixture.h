/* api_fixture.h - the fixture of the unit tests that drive ppl through its
 * public API: one state per test, RUN(src) loads a program and fails the
 * test with the diagnostic if it does not run, get(name) reads a scalar
 * global.  Included by one test file each (static definitions). */
#ifndef PPL_TEST_API_FIXTURE_H
#define PPL_TEST_API_FIXTURE_H
#include <check.h>
#include <math.h>
#include "ppl.h"

static ppl_state *S;

static void setup(void) { S = ppl_open(NULL); }
static void teardown(void) { ppl_close(S); }

static double get(const char *name) {
    double v = NAN;
    size_t n;
    ck_assert_msg(ppl_get_f64(S, name, &v, 1, &n) == PPL_OK, "%s", ppl_errmsg(S));
    return v;
}

#define RUN(src)                                                                 \
    do {                                                                         \
        ppl_status st_ = ppl_load_string(S, "<test>", src);                      \
        ck_assert_msg(st_ == PPL_OK, "%s", ppl_errmsg(S));                       \
    } while (0)

#endif
