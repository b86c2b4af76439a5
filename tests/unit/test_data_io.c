/* test_data_io.c - CmdStan-style JSON and CSV data: good files of every
 * kind, every kind of error with its exact file:line:col message, deep
 * nesting, huge numbers, the write_json -> load_json round trip
 * (bit-exact), atomic writes, and the built-ins through the public API. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data_io.h"
#include "ppl.h"

static bk_ctx *C;
static char err[512];

static rt_value parse(const char *text) {
    rt_value v;
    int rc = rt_parse_json_text(C, "d.json", text, strlen(text), &v, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    return v;
}

/* The message must be exactly `msg`. */
static void parse_fails(const char *text, const char *msg) {
    rt_value v = {RT_TENSOR, {0}};
    ck_assert_msg(rt_parse_json_text(C, "d.json", text, strlen(text), &v, err, sizeof err) != 0, "%s parsed", text);
    ck_assert_int_eq(v.tag, RT_NONE);
    ck_assert_msg(strcmp(err, msg) == 0, "got  \"%s\"\nwant \"%s\"", err, msg);
}

static rt_value field(rt_value rec, const char *name) {
    ck_assert_int_eq(rec.tag, RT_RECORD);
    rt_value *v = rt_record_get((rt_record *)rec.u.o, name);
    ck_assert_msg(v != NULL, "no field %s", name);
    return *v;
}

static bk_tensor *tfield(rt_value rec, const char *name) {
    rt_value v = field(rec, name);
    ck_assert_msg(v.tag == RT_TENSOR, "%s is a %s", name, rt_type_name(v));
    return v.u.t;
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void setup(void) { C = bk_ctx_new(NULL); }
static void teardown(void) { bk_ctx_free(C); }

/* ------------------------------------------------------------- JSON in --- */

START_TEST(json_good_file) {
    size_t n;
    char *text = rt_read_file("tests/fixtures/data_good.json", &n, err, sizeof err);
    ck_assert_msg(text != NULL, "%s", err);
    rt_value v;
    ck_assert_msg(rt_parse_json_text(C, "data_good.json", text, n, &v, err, sizeof err) == 0, "%s", err);
    free(text);
    bk_tensor *t = tfield(v, "N");
    ck_assert(t->ndim == 0 && bk_item(t) == 3);
    t = tfield(v, "y");
    ck_assert(t->ndim == 1 && t->shape[0] == 3 && bk_get(t, 1) == 2.5 && bk_get(t, 2) == -300);
    t = tfield(v, "X");
    ck_assert(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && bk_get(t, 3) == 4 && bk_get(t, 5) == 6);
    t = tfield(v, "A");
    ck_assert(t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 2 && t->shape[2] == 2 && bk_get(t, 6) == 7);
    t = tfield(v, "empty");
    ck_assert(t->ndim == 1 && t->shape[0] == 0);
    t = tfield(v, "empty2");
    ck_assert(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 0);
    t = tfield(v, "flags");
    ck_assert(bk_get(t, 0) == 1 && bk_get(t, 1) == 0);
    t = tfield(v, "special");
    ck_assert(bk_get(t, 0) == INFINITY && bk_get(t, 1) == -INFINITY && isnan(bk_get(t, 2)));
    ck_assert(bk_item(tfield(v, "big")) == 1.7976931348623157e308);
    ck_assert(bk_item(tfield(v, "tiny")) == 4.9406564584124654e-324);
    rt_value s = field(v, "name");
    ck_assert_int_eq(s.tag, RT_STR);
    ck_assert_str_eq(((rt_str *)s.u.o)->s, "caf\xc3\xa9 \"quoted\"");
    rt_value l = field(v, "labels");
    ck_assert(l.tag == RT_LIST && ((rt_list *)l.u.o)->n == 2);
    ck_assert_str_eq(((rt_str *)((rt_list *)l.u.o)->items[1].u.o)->s, "b");
    rt_value nested = field(v, "nested");
    ck_assert(bk_item(tfield(nested, "mu")) == 0.5 && tfield(nested, "sigma")->shape[0] == 2);
    ck_assert_int_eq(field(v, "nothing").tag, RT_NONE);
    rt_release(v);
}
END_TEST

START_TEST(json_scalars_and_lists) {
    rt_value v = parse("\xEF\xBB\xBF[1, null, \"s\"]"); /* byte order mark, mixed list */
    ck_assert(v.tag == RT_LIST && ((rt_list *)v.u.o)->n == 3);
    ck_assert_int_eq(((rt_list *)v.u.o)->items[1].tag, RT_NONE);
    rt_release(v);
    v = parse("[{\"a\": 1}, {\"a\": [2, 3]}]"); /* a list of records */
    ck_assert(v.tag == RT_LIST && ((rt_list *)v.u.o)->items[1].tag == RT_RECORD);
    rt_release(v);
    v = parse("[[1, 2], \"x\"]"); /* arrays inside a list still become tensors */
    ck_assert_int_eq(((rt_list *)v.u.o)->items[0].tag, RT_TENSOR);
    rt_release(v);
    v = parse(" -0 ");
    ck_assert(bk_item(v.u.t) == 0 && signbit(bk_item(v.u.t)));
    rt_release(v);
    v = parse("[1e-400, 12345678901234567890, -Inf, inf, \"\\ud83d\\ude00\\t\\/\"]");
    rt_list *l = (rt_list *)v.u.o;
    ck_assert(bk_item(l->items[0].u.t) == 0); /* underflow reads as 0, as strtod does */
    ck_assert(bk_item(l->items[1].u.t) == 12345678901234567890.0);
    ck_assert(bk_item(l->items[2].u.t) == -INFINITY && bk_item(l->items[3].u.t) == INFINITY);
    ck_assert_str_eq(((rt_str *)l->items[4].u.o)->s, "\xF0\x9F\x98\x80\t/");
    rt_release(v);
    v = parse("{}");
    ck_assert(v.tag == RT_RECORD && ((rt_record *)v.u.o)->n == 0);
    rt_release(v);
    v = parse("{\"a\": 1,\r\n \"b\": [true]}\r\n");
    ck_assert(bk_get(tfield(v, "b"), 0) == 1);
    rt_release(v);
}
END_TEST

START_TEST(json_errors) {
    parse_fails("{\"y\": [1, 2,\n  3 4]}", "d.json:2:5: expected \",\" or \"]\" after an array element");
    parse_fails("{\"X\": [[1, 2, 3, 4],\n [5, 6, 7]]}", "d.json:2:2: ragged array: row 2 has 3 elements, row 1 has 4");
    parse_fails("{\"X\": [[[1], [2]], [[3], [4, 5]]]}", "d.json:1:26: ragged array: row 2 has 2 elements, row 1 has 1");
    parse_fails("{\"X\": [[1], []]}", "d.json:1:13: ragged array: row 2 has 0 elements, row 1 has 1");
    parse_fails("{\"y\": [[1, 2], 3]}", "d.json:1:16: ragged array: expected an array like the first element, found a number");
    parse_fails("{\"y\": [1, [2]]}", "d.json:1:11: ragged array: expected a number like the first element, found an array");
    parse_fails("{\"y\": [[[1]], [2]]}", "d.json:1:15: ragged array: expected an array like the first element, found a number");
    parse_fails("{\"y\": tru}", "d.json:1:7: expected a value (a number, string, array or object)");
    parse_fails("{\"y\": -x}", "d.json:1:7: expected a number");
    parse_fails("{\"y\": [1.]}", "d.json:1:8: expected a number");
    parse_fails("{\"y\": 2e+}", "d.json:1:7: expected a number");
    parse_fails("{\"y\": 1e400}", "d.json:1:7: the number 1e400 is too large for a float64");
    parse_fails("[-2e999]", "d.json:1:2: the number -2e999 is too large for a float64");
    parse_fails("{\"y\": 012}", "d.json:1:7: a number cannot start with 0 (leading zeros are not JSON)");
    parse_fails("{\"y\": 1", "d.json:1:8: unexpected end of the file: missing \"}\"");
    parse_fails("[1, 2", "d.json:1:6: unexpected end of the file: missing \"]\"");
    parse_fails("", "d.json:1:1: unexpected end of the file: expected a value");
    parse_fails("{\"y\": \"abc}", "d.json:1:7: unterminated string");
    parse_fails("{\"y\": \"abc\n\"}", "d.json:1:7: unterminated string");
    parse_fails("{y: 1}", "d.json:1:2: expected a field name in quotes");
    parse_fails("{\"a\" 1}", "d.json:1:6: expected \":\" after the field name");
    parse_fails("{\"a\": 1,}", "d.json:1:9: expected a field name in quotes");
    parse_fails("{\"a\": 1} x", "d.json:1:10: unexpected text after the end of the data");
    parse_fails("{\"a\": 1, \"a\": 2}", "d.json:1:10: duplicate field \"a\"");
    parse_fails("[\"a\\qb\"]", "d.json:1:4: invalid escape in a string (use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)");
    parse_fails("[\"\\u12\"]", "d.json:1:3: \\u must be followed by four hex digits");
    parse_fails("[\"\\ud800x\"]", "d.json:1:3: unpaired surrogate in a \\u escape");
    parse_fails("[\"a\tb\"]", "d.json:1:4: control character in a string (write it as an escape such as \\t)");
    parse_fails("[1, nul]", "d.json:1:5: expected a value (a number, string, array or object)");
    parse_fails("[truex]", "d.json:1:2: expected a value (a number, string, array or object)");
}
END_TEST

START_TEST(json_deep_nesting) {
    /* 64 levels parse; 65 are refused with a message, never a crash */
    char buf[2048];
    size_t n = 0;
    for (int i = 0; i < 64; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"a\": ");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "1");
    for (int i = 0; i < 64; i++) buf[n++] = '}';
    buf[n] = 0;
    rt_value v = parse(buf);
    rt_value cur = v;
    for (int i = 0; i < 64; i++) cur = field(cur, "a");
    ck_assert(bk_item(cur.u.t) == 1);
    rt_release(v);
    char deep[100001];
    memset(deep, '[', 100000);
    deep[100000] = 0;
    parse_fails(deep, "d.json:1:66: nesting is too deep (the limit is 64)");
    /* 8 dimensions make a tensor; 9 cannot */
    v = parse("[[[[[[[[1, 2]]]]]]]]");
    ck_assert(v.tag == RT_TENSOR && v.u.t->ndim == 8 && v.u.t->shape[7] == 2);
    rt_release(v);
    parse_fails("[[[[[[[[[1]]]]]]]]]", "d.json:1:1: an array with more than 8 dimensions cannot be a tensor");
}
END_TEST

START_TEST(json_large_array) {
    /* a long numeric vector goes to one flat buffer */
    int64_t N = 200000;
    char *text = malloc((size_t)N * 24 + 16);
    size_t n = 0;
    text[n++] = '[';
    for (int64_t i = 0; i < N; i++) n += (size_t)sprintf(text + n, "%s%.17g", i ? "," : "", i * 0.001 - 7);
    text[n++] = ']';
    text[n] = 0;
    rt_value v = parse(text);
    ck_assert(v.tag == RT_TENSOR && v.u.t->shape[0] == N);
    ck_assert(bk_get(v.u.t, N - 1) == (N - 1) * 0.001 - 7);
    rt_release(v);
    free(text);
}
END_TEST

/* Rows of a matrix share one number pool; an array that meets a non-number
 * gives its numbers back to the pool, and the arrays after it reuse the
 * space.  Every number must land in its own place, equal to strtod's. */
START_TEST(json_number_pool) {
    enum { R = 300, K = 7 };
    char *text = malloc((size_t)R * K * 26 + 16);
    size_t n = 0;
    text[n++] = '[';
    for (int r = 0; r < R; r++) {
        n += (size_t)sprintf(text + n, "%s[", r ? ", " : "");
        for (int k = 0; k < K; k++)
            n += (size_t)sprintf(text + n, "%s%.17g", k ? ", " : "", ((double)(r * K + k) - 1000.0) / 7.0);
        text[n++] = ']';
    }
    text[n++] = ']';
    text[n] = 0;
    rt_value v = parse(text);
    ck_assert(v.tag == RT_TENSOR && v.u.t->ndim == 2 && v.u.t->shape[0] == R && v.u.t->shape[1] == K);
    char num[40];
    for (int i = 0; i < R * K; i++) {
        snprintf(num, sizeof num, "%.17g", ((double)i - 1000.0) / 7.0);
        ck_assert(same_bits(bk_get(v.u.t, i), strtod(num, NULL)));
    }
    rt_release(v);
    free(text);
    /* [1, 2] become nodes when "x" comes; the arrays after reuse the pool */
    v = parse("[1.5, 2.5, \"x\", [3.25, 4.5], {\"m\": [[5, 6], [7, 8]]}, [9]]");
    rt_list *l = (rt_list *)v.u.o;
    ck_assert(v.tag == RT_LIST && l->n == 6);
    ck_assert(bk_item(l->items[0].u.t) == 1.5 && bk_item(l->items[1].u.t) == 2.5);
    bk_tensor *t = l->items[3].u.t;
    ck_assert(t->shape[0] == 2 && bk_get(t, 0) == 3.25 && bk_get(t, 1) == 4.5);
    t = tfield(l->items[4], "m");
    ck_assert(t->shape[0] == 2 && t->shape[1] == 2 && bk_get(t, 0) == 5 && bk_get(t, 3) == 8);
    ck_assert(bk_get(l->items[5].u.t, 0) == 9);
    rt_release(v);
    v = parse("[[1, 2, \"a\"], [4, 5]]"); /* a row unflattened, then a flat one */
    l = (rt_list *)v.u.o;
    ck_assert(v.tag == RT_LIST && l->items[0].tag == RT_LIST && l->items[1].tag == RT_TENSOR);
    ck_assert(bk_get(l->items[1].u.t, 0) == 4 && bk_get(l->items[1].u.t, 1) == 5);
    ck_assert(bk_item(((rt_list *)l->items[0].u.o)->items[1].u.t) == 2);
    rt_release(v);
    parse_fails("[[1, 2], [3, [4]]]", "d.json:1:14: ragged array: expected a number like the first element, found an array");
}
END_TEST

/* ------------------------------------------------------------ JSON out --- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_bits(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static bool same_number(double a, double b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

START_TEST(json_round_trip_bit_exact) {
    /* random bit patterns cover every exponent; plus the special values */
    double vals[1000];
    for (int i = 0; i < 1000; i++) {
        uint64_t b = next_bits();
        memcpy(&vals[i], &b, sizeof b);
    }
    double special[] = {0.0, -0.0, NAN, INFINITY, -INFINITY, 0.1, 1.0 / 3.0, 5e-324, 2.2250738585072014e-308,
                        1.7976931348623157e308, 1e15, 1e15 + 1, 123456789.123456789, -2.5e-300, 9007199254740993.0};
    memcpy(vals, special, sizeof special);
    rt_record *r = rt_record_new();
    rt_record_set(r, "v", rt_tensor(bk_from_f64(C, 1, (int64_t[]){1000}, vals)));
    rt_record_set(r, "m", rt_tensor(bk_from_f64(C, 3, (int64_t[]){2, 3, 4}, vals + 100)));
    rt_record_set(r, "s", rt_tensor(bk_scalar(C, vals[500])));
    rt_record_set(r, "e", rt_tensor(bk_zeros(C, BK_F64, 2, (int64_t[]){2, 0})));
    const char *raw = "a\"b\\c\n\t\r\b\f\x01 \xc3\xa9";
    rt_str *str = rt_str_new(raw, strlen(raw));
    rt_record_set(r, "str", rt_obj_value(&str->h));
    rt_list *l = rt_list_new();
    rt_str *s2 = rt_str_new("x", 1);
    rt_list_push(l, rt_obj_value(&s2->h));
    rt_list_push(l, rt_none());
    rt_record_set(r, "list", rt_obj_value(&l->h));
    rt_record *inner = rt_record_new();
    rt_record_set(inner, "k", rt_tensor(bk_scalar(C, -7)));
    rt_record_set(r, "rec", rt_obj_value(&inner->h));
    char *text = rt_to_json(C, rt_obj_value(&r->h));
    ck_assert(text != NULL);
    rt_value back = parse(text);
    bk_tensor *v = tfield(back, "v"), *m = tfield(back, "m");
    for (int i = 0; i < 1000; i++) ck_assert_msg(same_number(bk_get(v, i), vals[i]), "%.17g -> %.17g", vals[i], bk_get(v, i));
    ck_assert(m->ndim == 3 && m->shape[0] == 2 && m->shape[1] == 3 && m->shape[2] == 4);
    for (int i = 0; i < 24; i++) ck_assert(same_number(bk_get(m, i), vals[100 + i]));
    ck_assert(same_number(bk_item(tfield(back, "s")), vals[500]));
    ck_assert(tfield(back, "e")->ndim == 2 && tfield(back, "e")->shape[1] == 0);
    ck_assert(strcmp(((rt_str *)field(back, "str").u.o)->s, raw) == 0);
    rt_list *bl = (rt_list *)field(back, "list").u.o;
    ck_assert(bl->n == 2 && bl->items[1].tag == RT_NONE);
    ck_assert(bk_item(tfield(field(back, "rec"), "k")) == -7);
    free(text);
    rt_release(back);
    rt_release(rt_obj_value(&r->h));
}
END_TEST

START_TEST(json_output_format) {
    double xs[5] = {1, 0.1, -2.5, NAN, -INFINITY};
    rt_record *r = rt_record_new();
    rt_record_set(r, "x", rt_tensor(bk_from_f64(C, 1, (int64_t[]){5}, xs)));
    rt_record_set(r, "M", rt_tensor(bk_from_f64(C, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4})));
    rt_record_set(r, "n", rt_tensor(bk_scalar(C, 3)));
    char *text = rt_to_json(C, rt_obj_value(&r->h));
    ck_assert_str_eq(text, "{\"x\": [1, 0.1, -2.5, NaN, -Infinity], \"M\": [[1, 2], [3, 4]], \"n\": 3}");
    free(text);
    rt_release(rt_obj_value(&r->h));
    text = rt_to_json(C, rt_none());
    ck_assert_str_eq(text, "null");
    free(text);
}
END_TEST

/* -------------------------------------------------------------- CSV in --- */

static void csv_fails(const char *text, const char *msg) {
    rt_value v;
    ck_assert_msg(rt_parse_csv_text(C, "d.csv", text, strlen(text), &v, err, sizeof err) != 0, "%s parsed", text);
    ck_assert_msg(strcmp(err, msg) == 0, "got  \"%s\"\nwant \"%s\"", err, msg);
}

START_TEST(csv_good) {
    size_t n;
    char *text = rt_read_file("tests/fixtures/data_good.csv", &n, err, sizeof err);
    ck_assert_msg(text != NULL, "%s", err);
    rt_value v;
    ck_assert_msg(rt_parse_csv_text(C, "data_good.csv", text, n, &v, err, sizeof err) == 0, "%s", err);
    free(text);
    bk_tensor *a = tfield(v, "a"), *b = tfield(v, "b c");
    ck_assert(a->ndim == 1 && a->shape[0] == 2 && bk_get(a, 0) == 1 && bk_get(a, 1) == 3.5);
    ck_assert(bk_get(b, 0) == 2 && bk_get(b, 1) == -4);
    rt_release(v);
    /* quotes inside quoted names, special numbers, a header with no rows */
    const char *t2 = "\"say \"\"hi\"\"\",y\nnan,inf\n-inf,1e-3\n";
    ck_assert(rt_parse_csv_text(C, "d.csv", t2, strlen(t2), &v, err, sizeof err) == 0);
    bk_tensor *s = tfield(v, "say \"hi\"");
    ck_assert(isnan(bk_get(s, 0)) && bk_get(s, 1) == -INFINITY && bk_get(tfield(v, "y"), 1) == 1e-3);
    rt_release(v);
    const char *t3 = "a,b\n";
    ck_assert(rt_parse_csv_text(C, "d.csv", t3, strlen(t3), &v, err, sizeof err) == 0);
    ck_assert(tfield(v, "a")->shape[0] == 0);
    rt_release(v);
}
END_TEST

START_TEST(csv_many_columns) {
    /* wide files (Stan draws of big models) have no column limit */
    int ncol = 3000;
    char *text = malloc((size_t)ncol * 24);
    size_t n = 0;
    for (int j = 0; j < ncol; j++) n += (size_t)sprintf(text + n, "%stheta.%d", j ? "," : "", j + 1);
    text[n++] = '\n';
    for (int j = 0; j < ncol; j++) n += (size_t)sprintf(text + n, "%s%d", j ? "," : "", j);
    text[n++] = '\n';
    rt_value v;
    ck_assert_msg(rt_parse_csv_text(C, "w.csv", text, n, &v, err, sizeof err) == 0, "%s", err);
    ck_assert(((rt_record *)v.u.o)->n == ncol && bk_item(tfield(v, "theta.3000")) == 2999);
    rt_release(v);
    free(text);
}
END_TEST

START_TEST(csv_errors) {
    csv_fails("a,b\n1,2\n3,x\n", "d.csv:3:3: \"x\" is not a number (column \"b\")");
    csv_fails("a,b\n1\n", "d.csv:2:2: expected 2 fields like the header, got 1");
    csv_fails("a,b\r\n1,2,3\r\n", "d.csv:2:5: expected 2 fields like the header, got 3");
    csv_fails("a,b\n1,\n", "d.csv:2:3: empty cell in column \"b\"");
    csv_fails("a,\"b\n1,2\n", "d.csv:1:3: unterminated quoted field");
    csv_fails("\"a\"x,b\n", "d.csv:1:4: unexpected text after a quoted field");
    csv_fails("a,b,a\n", "d.csv:1:5: duplicate column name \"a\"");
    csv_fails("a,,b\n", "d.csv:1:3: empty column name");
    csv_fails("# only a comment\n\n",
              "d.csv:1:1: no header row (the first line that is not blank or a # comment names the columns)");
    csv_fails("x\n1\n2 3\n", "d.csv:3:1: \"2 3\" is not a number (column \"x\")");
}
END_TEST

/* ---------------------------------------------------------------- files --- */

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
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert(access(tmp, F_OK) != 0); /* the temporary is gone */
    unlink(path);
    ck_assert(rt_write_file_atomic("/nonexistent/dir/x.json", "x", 1, err, sizeof err) != 0);
    ck_assert_str_eq(err, "cannot write \"/nonexistent/dir/x.json.tmp\": No such file or directory");
    ck_assert(rt_read_file("/nonexistent/x.json", &n, err, sizeof err) == NULL);
    ck_assert_str_eq(err, "cannot open \"/nonexistent/x.json\": No such file or directory");
}
END_TEST

/* ----------------------------------------------------- through the VM --- */

static ppl_state *open_state(void) {
    ppl_options o = ppl_default_options();
    ppl_state *S = ppl_open(&o);
    ck_assert(S != NULL);
    return S;
}

static void script_fails(ppl_state *S, const char *src, ppl_status code, const char *frag) {
    ppl_status st = ppl_load_string(S, "t.ppl", src);
    ck_assert_msg(st == code, "%s: status %d: %s", src, st, ppl_errmsg(S));
    ck_assert_msg(strstr(ppl_errmsg(S), frag), "%s: message lacks \"%s\":\n%s", src, frag, ppl_errmsg(S));
}

/* load_json maps the file: a file of exactly one page that ends in the
 * middle of nothing (no newline, no NUL after it) must read to its last
 * byte and not past it (ASan builds would catch a read past the mapping);
 * an empty file is an error, as before. */
START_TEST(load_json_page_sized_file) {
    char path[] = "/tmp/ppl_page_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    char text[4096];
    memset(text, ' ', sizeof text);
    memcpy(text + sizeof text - 20, "-0.12345678901234567", 20);
    ck_assert(write(fd, text, sizeof text) == (ssize_t)sizeof text);
    close(fd);
    ppl_state *S = open_state();
    const char *echo;
    char src[128];
    snprintf(src, sizeof src, "load_json(\"%s\") == -0.12345678901234567", path);
    ck_assert_msg(ppl_eval(S, "t", src, &echo) == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_str_eq(echo, "1");
    memcpy(text + sizeof text - 3, "5e-", 3); /* cut inside the exponent */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert(fd >= 0 && write(fd, text, sizeof text) == (ssize_t)sizeof text);
    close(fd);
    snprintf(src, sizeof src, "d = load_json(\"%s\")", path);
    script_fails(S, src, PPL_ERR_RUNTIME, ":1:4077: expected a number"); /* after 4076 spaces */
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    script_fails(S, src, PPL_ERR_RUNTIME, ":1:1: unexpected end of the file: expected a value");
    unlink(path);
    ppl_close(S);
}
END_TEST

START_TEST(builtins) {
    ppl_state *S = open_state();
    const char *echo;
    ck_assert_msg(ppl_eval(S, "t", "d = load_json(\"tests/fixtures/data_good.json\")", &echo) == PPL_OK, "%s",
                  ppl_errmsg(S));
    ck_assert_msg(ppl_eval(S, "t", "d.X[1, 2]", &echo) == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_str_eq(echo, "6");
    ck_assert_msg(ppl_eval(S, "t", "c = load_csv(\"tests/fixtures/data_good.csv\")", &echo) == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert(ppl_eval(S, "t", "c.a[1]", &echo) == PPL_OK);
    ck_assert_str_eq(echo, "3.5");
    /* data errors carry the data file's position, at the call */
    script_fails(S, "d = load_json(\"tests/fixtures/data_bad_number.json\")", PPL_ERR_RUNTIME,
                 "error: tests/fixtures/data_bad_number.json:3:14: expected a number\n  --> t.ppl:1:5");
    script_fails(S, "d = load_json(\"tests/fixtures/data_ragged.json\")", PPL_ERR_RUNTIME,
                 "error: tests/fixtures/data_ragged.json:3:9: ragged array: row 2 has 3 elements, row 1 has 4\n");
    script_fails(S, "c = load_csv(\"tests/fixtures/data_bad.csv\")", PPL_ERR_RUNTIME,
                 "error: tests/fixtures/data_bad.csv:3:3: \"x\" is not a number (column \"b\")\n");
    script_fails(S, "d = load_json(\"tests/fixtures/missing.json\")", PPL_ERR_IO,
                 "error: cannot open \"tests/fixtures/missing.json\": No such file or directory");
    script_fails(S, "d = load_json(3)", PPL_ERR_RUNTIME, "load_json: path must be a string");
    script_fails(S, "d = load_json(\"a\", \"b\")", PPL_ERR_RUNTIME, "load_json takes at most 1 positional argument, got 2");
    /* write_json then load_json */
    char path[] = "/tmp/ppl_wj_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    char src[256];
    snprintf(src, sizeof src, "write_json(\"%s\", {a: [0.1, 2], s: \"x\", f: Normal(0, 1)})", path);
    ck_assert_msg(ppl_eval(S, "t", src, &echo) == PPL_OK, "%s", ppl_errmsg(S));
    size_t n;
    char *text = rt_read_file(path, &n, err, sizeof err);
    ck_assert(text != NULL);
    ck_assert_str_eq(text, "{\"a\": [0.1, 2], \"s\": \"x\", \"f\": \"Normal\"}\n");
    free(text);
    snprintf(src, sizeof src, "load_json(\"%s\").a[0]", path);
    ck_assert(ppl_eval(S, "t", src, &echo) == PPL_OK);
    ck_assert_str_eq(echo, "0.1");
    unlink(path);
    script_fails(S, "write_json(\"/nonexistent/dir/x.json\", 1)", PPL_ERR_IO, "cannot write");
    script_fails(S, "write_json(\"x.json\")", PPL_ERR_RUNTIME, "write_json: missing the value to write");
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("data_io");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, json_good_file);
    tcase_add_test(tc, json_scalars_and_lists);
    tcase_add_test(tc, json_errors);
    tcase_add_test(tc, json_deep_nesting);
    tcase_add_test(tc, json_large_array);
    tcase_add_test(tc, json_number_pool);
    tcase_add_test(tc, json_round_trip_bit_exact);
    tcase_add_test(tc, json_output_format);
    tcase_add_test(tc, csv_good);
    tcase_add_test(tc, csv_many_columns);
    tcase_add_test(tc, csv_errors);
    tcase_add_test(tc, atomic_write);
    tcase_add_test(tc, builtins);
    tcase_add_test(tc, load_json_page_sized_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
