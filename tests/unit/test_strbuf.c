/* test_strbuf.c - rt_sb_put_g17 against glibc's printf("%.17g"), byte for
 * byte: random bit patterns over the whole exponent range, values of the
 * sizes draws have, integers, powers of ten and their neighbours (where
 * the rounding can carry into a new digit), subnormals, the ends of
 * binades, %g's switch between fixed and exponent forms, and the special
 * values (0, -0, infinities, NaN). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "strbuf.h"

static uint64_t next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t z = *s;
    z ^= z >> 33;
    z *= 0xff51afd7ed558ccdULL;
    return z ^ (z >> 29);
}

static void check_one(double x) {
    char ref[64];
    snprintf(ref, sizeof ref, "%.17g", x);
    rt_sb sb = {0};
    rt_sb_put_g17(&sb, x);
    char *got = rt_sb_finish(&sb);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(strcmp(got, ref) == 0, "%a: got \"%s\", printf \"%s\"", x, got, ref);
    free(got);
}

START_TEST(test_g17_matches_printf) {
    uint64_t st = 7;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next(&st);
        double x;
        memcpy(&x, &bits, sizeof x);
        check_one(x);
        /* values of ordinary size: mantissa random, exponent in 1e-12..1e45 */
        double u = (double)(next(&st) >> 11) / 9007199254740992.0;
        check_one((u - 0.5) * pow(10.0, (double)(i % 58) - 12));
        check_one((double)(int64_t)(next(&st) >> (i % 64)));
    }
    for (int k = -30; k <= 50; k++) {
        double p = pow(10.0, k);
        check_one(p);
        check_one(-p);
        check_one(nextafter(p, 0));
        check_one(nextafter(p, INFINITY));
        check_one(p * 9.99999999999999999);
    }
    /* subnormals (random mantissas, and the extremes), each binade's ends,
     * and where %g switches between its fixed and exponent forms */
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next(&st) & ((UINT64_C(1) << 52) - 1);
        double x;
        memcpy(&x, &bits, sizeof x);
        check_one(x);
        check_one(-x);
        bits = (next(&st) & (UINT64_C(0x7fe) << 52)) | (i & 1 ? 0 : (UINT64_C(1) << 52) - 1);
        memcpy(&x, &bits, sizeof x);
        check_one(x);
        check_one(nextafter(x, INFINITY));
    }
    for (int k = 1; k < 4096; k++) {
        check_one(ldexp(1.0, k - 1074 - 1));
        check_one((double)k * 1e-5);
        check_one((double)k * 1e13 + 0.5);
        check_one(1e17 - (double)k * 16);
    }
    const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 4.9e-324, 2.2250738585072014e-308,
                              1.7976931348623157e308, 0.1, 0.5, 1.5, 123456789012345678.0, 1e-5, 9.9999e-5};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) check_one(special[i]);
}
END_TEST

/* Exact ties, x 10^k = N + 1/2 with 17-digit N (the digits come from
 * integer arithmetic; printf rounds them to even), and their neighbours:
 * m 2^-j for 53-bit m and j = 1..60 puts the half at every shift the
 * product can have, with k up to 34.  Then x = d 10^p for every 8-digit
 * block pattern the digit pairs write (each v < 10^8 as the low and the
 * high block of 17 digits), and random values over the whole exact range
 * 1e-39..1e17 and just outside it. */
START_TEST(test_g17_ties_and_digits) {
    uint64_t st = 5;
    for (int j = 1; j <= 60; j++)
        for (int i = 0; i < 400; i++) {
            uint64_t m = (next(&st) >> 11) | UINT64_C(1) << 52;
            double x = ldexp((double)(m | 1), -j);
            check_one(x);
            check_one(nextafter(x, 0));
            check_one(nextafter(x, INFINITY));
        }
    for (uint32_t v = 0; v < 100000000; v += 997) {
        check_one(1e16 + (double)v);              /* the low block, exact */
        check_one((1.0 + (double)v * 1e-8) * 1e8); /* the high block */
    }
    for (int i = 0; i < 60000; i++) {
        double u = (double)(next(&st) >> 11) / 9007199254740992.0;
        check_one((1.0 + u) * pow(10.0, (double)(i % 60) - 42));
    }
}
END_TEST

/* Many values and commas (rt_sb_putc) into one buffer, which grows while
 * they are written in place: the concatenation of printf's texts. */
START_TEST(test_g17_appends) {
    rt_sb sb = {0};
    size_t cap = 1 << 20, len = 0;
    char *ref = malloc(cap);
    ck_assert_ptr_nonnull(ref);
    uint64_t st = 11;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next(&st);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (i % 3) x = (double)(next(&st) >> 11) / 9007199254740992.0 * 200 - 100;
        rt_sb_put_g17(&sb, x);
        rt_sb_putc(&sb, ',');
        len += (size_t)snprintf(ref + len, cap - len, "%.17g,", x);
        ck_assert(len < cap - 64);
    }
    char *got = rt_sb_finish(&sb);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), len);
    ck_assert(strcmp(got, ref) == 0);
    free(got);
    free(ref);
}
END_TEST

int main(void) {
    Suite *s = suite_create("strbuf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_g17_matches_printf);
    tcase_add_test(tc, test_g17_ties_and_digits);
    tcase_add_test(tc, test_g17_appends);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
