/* test_data_io.c - CmdStan-style JSON and CSV data: good files, every kind
 * of error with its file:line:col message, and the JSON round trip. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data_io.h"
#include "vm.h"

static bk_ctx *C;
static char err[512];

static rt_value parse(const char *text) {
    rt_value v;
    int rc = rt_parse_json_text(C, "d.json", text, strlen(text), &v, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    return v;
}

static void parse_fails(const char *text, const char *msg) {
    rt_value v;
    ck_assert(rt_parse_json_text(C, "d.json", text, strlen(text), &v, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, msg), "got \"%s\", want \"%s\"", err, msg);
}

static void setup(void) { C = bk_ctx_new(NULL); }
static void teardown(void) { bk_ctx_free(C); }

START_TEST(json_values) {
    rt_value v = parse("{\"N\": 3, \"y\": [1, 2.5, -3e2], \"X\": [[1, 2], [3, 4], [5, 6]],\n"
                       " \"name\": \"a\\\"b\", \"flag\": true, \"inner\": {\"z\": []}, \"inf\": Infinity,\n"
                       " \"mixed\": [\"s\", 1]}");
    ck_assert_int_eq(v.tag, RT_RECORD);
    rt_record *r = (rt_record *)v.u.o;
    ck_assert(bk_item(rt_record_get(r, "N")->u.t) == 3);
    bk_tensor *y = rt_record_get(r, "y")->u.t;
    ck_assert_int_eq(y->ndim, 1);
    ck_assert(bk_get(y, 2) == -300);
    bk_tensor *X = rt_record_get(r, "X")->u.t;
    ck_assert(X->ndim == 2 && X->shape[0] == 3 && X->shape[1] == 2 && bk_get(X, 5) == 6);
    ck_assert_str_eq(((rt_str *)rt_record_get(r, "name")->u.o)->s, "a\"b");
    ck_assert(bk_item(rt_record_get(r, "flag")->u.t) == 1);
    rt_record *inner = (rt_record *)rt_record_get(r, "inner")->u.o;
    ck_assert_int_eq(rt_record_get(inner, "z")->u.t->shape[0], 0);
    ck_assert(isinf(bk_item(rt_record_get(r, "inf")->u.t)));
    ck_assert_int_eq(rt_record_get(r, "mixed")->tag, RT_LIST);
    rt_release(v);
}
END_TEST

START_TEST(json_errors) {
    parse_fails("{\"y\": [1, 2,\n  3 4]}", "d.json:2:5: expected \",\" or \"]\" after an array element");
    parse_fails("{\"y\": [[1, 2], [3]]}", "ragged array");
    parse_fails("{\"y\": tru}", "d.json:1:7: expected a value");
    parse_fails("{\"y\": 1", "d.json:1:8: expected \",\" or \"}\" after a field");
    parse_fails("{\"y\": \"abc}", "unterminated string");
    parse_fails("{y: 1}", "expected a field name in quotes");
    parse_fails("{\"a\": 1} x", "unexpected text after the end of the data");
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = 0;
    parse_fails(deep, "nesting is too deep");
}
END_TEST

START_TEST(json_round_trip) {
    double vals[5] = {0.1, 1.0 / 3.0, -2.5e-300, 1e300, 123456789.123456789};
    bk_tensor *t = bk_from_f64(C, 1, (int64_t[]){5}, vals);
    rt_record *r = rt_record_new();
    rt_record_set(r, "x", rt_tensor(t));
    char *text = rt_to_json(C, rt_obj_value(&r->h));
    rt_value back = parse(text);
    bk_tensor *bt = rt_record_get((rt_record *)back.u.o, "x")->u.t;
    for (int i = 0; i < 5; i++) ck_assert(bk_get(bt, i) == vals[i]); /* bit-exact */
    free(text);
    rt_release(back);
    rt_release(rt_obj_value(&r->h));
}
END_TEST

START_TEST(csv) {
    const char *good = "# comment\n\"a\",b\r\n1,2\n\n3.5, -4\n";
    rt_value v;
    ck_assert(rt_parse_csv_text(C, "d.csv", good, strlen(good), &v, err, sizeof err) == 0);
    rt_record *r = (rt_record *)v.u.o;
    bk_tensor *a = rt_record_get(r, "a")->u.t, *b = rt_record_get(r, "b")->u.t;
    ck_assert(a->shape[0] == 2 && bk_get(a, 1) == 3.5 && bk_get(b, 1) == -4);
    rt_release(v);
    const char *bad = "a,b\n1,2\n3,x\n";
    ck_assert(rt_parse_csv_text(C, "d.csv", bad, strlen(bad), &v, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "d.csv:3:3: \"x\" is not a number (column \"b\")"), "%s", err);
    const char *short_row = "a,b\n1\n";
    ck_assert(rt_parse_csv_text(C, "d.csv", short_row, strlen(short_row), &v, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "d.csv:2:1: expected 2 fields like the header, got 1"), "%s", err);
}
END_TEST

START_TEST(atomic_write) {
    char path[] = "/tmp/ppl_atomic_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert(rt_write_file_atomic(path, "hello", 5, err, sizeof err) == 0);
    size_t n;
    char *t = rt_read_file(path, &n, err, sizeof err);
    ck_assert(t && n == 5 && memcmp(t, "hello", 5) == 0);
    free(t);
    unlink(path);
    ck_assert(rt_write_file_atomic("/nonexistent/dir/x.json", "x", 1, err, sizeof err) != 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("data_io");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, json_values);
    tcase_add_test(tc, json_errors);
    tcase_add_test(tc, json_round_trip);
    tcase_add_test(tc, csv);
    tcase_add_test(tc, atomic_write);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
