/* test_npy.c - load_npy against files written by NumPy itself
 * (tests/gen_npy_fixtures.py): every dtype read, version 1 and 2 headers,
 * 0-d and empty arrays, and each kind of bad file with its located
 * message; hand-made headers for the parser's corner cases; and the
 * built-in through the public API. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_io.h"
#include "data_npy.h"
#include "ppl.h"

static bk_ctx *C;
static char err[512];

static void setup(void) { C = bk_ctx_new(NULL); }
static void teardown(void) { bk_ctx_free(C); }

static bk_tensor *load(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/npy/%s", name);
    size_t n;
    char *buf = rt_read_file(path, &n, err, sizeof err);
    ck_assert_msg(buf != NULL, "%s", err);
    bk_tensor *t;
    int rc = rt_parse_npy(C, name, (const unsigned char *)buf, n, &t, err, sizeof err);
    free(buf);
    ck_assert_msg(rc == 0, "%s: %s", name, err);
    return t;
}

static void load_fails(const char *name, const char *msg) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/npy/%s", name);
    size_t n;
    char *buf = rt_read_file(path, &n, err, sizeof err);
    ck_assert_msg(buf != NULL, "%s", err);
    bk_tensor *t = (bk_tensor *)1;
    int rc = rt_parse_npy(C, name, (const unsigned char *)buf, n, &t, err, sizeof err);
    free(buf);
    ck_assert_msg(rc == -1 && t == NULL, "%s parsed", name);
    ck_assert_msg(strcmp(err, msg) == 0, "got  \"%s\"\nwant \"%s\"", err, msg);
}

static void check_shape(const bk_tensor *t, int nd, const int64_t *shape) {
    ck_assert_int_eq(t->ndim, nd);
    for (int d = 0; d < nd; d++) ck_assert_int_eq(t->shape[d], shape[d]);
    ck_assert_int_eq(t->dtype, BK_F64);
}

START_TEST(every_dtype) {
    bk_tensor *t = load("f8_2x3.npy");
    check_shape(t, 2, (int64_t[]){2, 3});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == (k - 2.5) * 1.25);
    bk_release(t);
    t = load("v2_f8_2x3.npy");
    check_shape(t, 2, (int64_t[]){2, 3});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == (k - 2.5) * 1.25);
    bk_release(t);
    t = load("f4_6.npy"); /* k/4 steps are exact in float32 */
    check_shape(t, 1, (int64_t[]){6});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == (k - 2.5) * 1.25);
    bk_release(t);
    t = load("i8_3x2.npy");
    check_shape(t, 2, (int64_t[]){3, 2});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == k * 7 - 20);
    bk_release(t);
    t = load("i4_2x1x3.npy");
    check_shape(t, 3, (int64_t[]){2, 1, 3});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == k * 7 - 20);
    bk_release(t);
    t = load("u1_6.npy");
    check_shape(t, 1, (int64_t[]){6});
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == k * 50);
    bk_release(t);
    t = load("bool_6.npy");
    for (int k = 0; k < 6; k++) ck_assert(bk_get(t, k) == k % 2);
    bk_release(t);
    t = load("scalar.npy");
    check_shape(t, 0, NULL);
    ck_assert(bk_item(t) == 3.75);
    bk_release(t);
    t = load("empty_0x3.npy");
    check_shape(t, 2, (int64_t[]){0, 3});
    bk_release(t);
}
END_TEST

START_TEST(bad_files) {
    load_fails("bad_magic.npy", "bad_magic.npy: byte 0: not an NPY file (the magic \\x93NUMPY is missing)");
    load_fails("bad_fortran.npy",
               "bad_fortran.npy: byte 44: Fortran-order arrays are not read (save with np.ascontiguousarray)");
    load_fails("bad_bigendian.npy", "bad_bigendian.npy: byte 20: unsupported dtype '>f8' (big-endian; use .astype('<f8'))");
    load_fails("bad_complex.npy",
               "bad_complex.npy: byte 20: unsupported dtype '<c16' (f8, f4, i8, i4, u1 and bool are read)");
    load_fails("bad_truncated.npy", "bad_truncated.npy: byte 128: the data has 43 bytes, the header's shape and dtype need 48");
}
END_TEST

static int parse_mem(const char *header, size_t ndata, bk_tensor **t) {
    unsigned char buf[512];
    size_t h = strlen(header);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(h & 0xff);
    buf[9] = (unsigned char)(h >> 8);
    memcpy(buf + 10, header, h);
    memset(buf + 10 + h, 0, ndata);
    return rt_parse_npy(C, "m.npy", buf, 10 + h + ndata, t, err, sizeof err);
}

START_TEST(header_corner_cases) {
    bk_tensor *t;
    /* double quotes, no trailing comma, keys in another order */
    ck_assert_msg(parse_mem("{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<i4\"}\n", 8, &t) == 0, "%s", err);
    check_shape(t, 1, (int64_t[]){2});
    bk_release(t);
    ck_assert(parse_mem("{'descr': '<f8', 'shape': (2,)}", 16, &t) == -1);
    ck_assert_str_eq(err, "m.npy: byte 41: the header lacks one of 'descr', 'fortran_order', 'shape'");
    ck_assert(parse_mem("{'descr': '<f8', 'fortran_order': False, 'shape': (2, x)}", 16, &t) == -1);
    ck_assert_str_eq(err, "m.npy: byte 64: expected a dimension (a non-negative integer)");
    ck_assert(parse_mem("{'descr': '<f8', 'fortran_order': Maybe, 'shape': ()}", 8, &t) == -1);
    ck_assert_str_eq(err, "m.npy: byte 44: fortran_order must be True or False");
    ck_assert(parse_mem("{'descr': '<f8', 'colour': 1}", 8, &t) == -1);
    ck_assert_str_eq(err, "m.npy: byte 27: unknown header key 'colour'");
    ck_assert(parse_mem("{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 8, &t) == -1);
    ck_assert_str_eq(err, "m.npy: byte 77: more than 8 dimensions");
    unsigned char shortbuf[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 200, 0, '{', '}'};
    ck_assert(rt_parse_npy(C, "s.npy", shortbuf, sizeof shortbuf, &t, err, sizeof err) == -1);
    ck_assert_str_eq(err, "s.npy: byte 10: the header (200 bytes) runs past the end of the file");
    shortbuf[6] = 9;
    ck_assert(rt_parse_npy(C, "s.npy", shortbuf, sizeof shortbuf, &t, err, sizeof err) == -1);
    ck_assert_str_eq(err, "s.npy: byte 6: unsupported NPY version 9.0 (1, 2 and 3 are read)");
}
END_TEST

START_TEST(builtin) {
    ppl_options o = ppl_default_options();
    ppl_state *S = ppl_open(&o);
    ck_assert(S != NULL);
    const char *echo;
    ck_assert_msg(ppl_eval(S, "t", "a = load_npy(\"tests/fixtures/npy/i8_3x2.npy\")", &echo) == PPL_OK, "%s",
                  ppl_errmsg(S));
    ck_assert(ppl_eval(S, "t", "a[2, 1]", &echo) == PPL_OK);
    ck_assert_str_eq(echo, "15");
    /* the error carries the file's byte offset and the call's location */
    ck_assert(ppl_load_string(S, "t.ppl", "x = 1\nb = load_npy(\"tests/fixtures/npy/bad_bigendian.npy\")\n") ==
              PPL_ERR_RUNTIME);
    ck_assert_msg(strstr(ppl_errmsg(S), "error: tests/fixtures/npy/bad_bigendian.npy: byte 20: unsupported dtype "
                                        "'>f8'") && strstr(ppl_errmsg(S), "t.ppl:2:5"), "%s", ppl_errmsg(S));
    ck_assert(ppl_load_string(S, "t.ppl", "b = load_npy(\"tests/fixtures/npy/missing.npy\")\n") == PPL_ERR_IO);
    ck_assert(ppl_load_string(S, "t.ppl", "b = load_npy(3)\n") == PPL_ERR_RUNTIME);
    ck_assert_msg(strstr(ppl_errmsg(S), "load_npy: path must be a string"), "%s", ppl_errmsg(S));
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_dtype);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, header_corner_cases);
    tcase_add_test(tc, builtin);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
