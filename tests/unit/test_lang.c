/* test_lang.c - the language core through the public API: expressions,
 * statements, functions, records, indexing, errors with locations, limits,
 * traces and handlers, and that the state survives every error. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ppl.h"

static ppl_state *S;
static char outbuf[65536];
static size_t outlen;

static void capture(void *ud, const char *text, size_t len) {
    (void)ud;
    if (outlen + len < sizeof outbuf) {
        memcpy(outbuf + outlen, text, len);
        outlen += len;
        outbuf[outlen] = 0;
    }
}

static void setup(void) {
    ppl_options o = ppl_default_options();
    o.out = capture;
    S = ppl_open(&o);
    outlen = 0;
    outbuf[0] = 0;
}

static void teardown(void) { ppl_close(S); }

/* Evaluate an expression chunk and compare its echo. */
#define ECHO(src, want)                                                          \
    do {                                                                         \
        const char *e;                                                           \
        ppl_status st_ = ppl_eval(S, "<test>", src, &e);                         \
        ck_assert_msg(st_ == PPL_OK, "%s: %s", src, ppl_errmsg(S));              \
        ck_assert_str_eq(e, want);                                               \
    } while (0)

#define RUN(src)                                                                 \
    do {                                                                         \
        ppl_status st_ = ppl_load_string(S, "<test>", src);                      \
        ck_assert_msg(st_ == PPL_OK, "%s: %s", src, ppl_errmsg(S));              \
    } while (0)

/* Expect an error whose message contains `frag`. */
#define FAILS(src, code, frag)                                                   \
    do {                                                                         \
        ppl_status st_ = ppl_load_string(S, "t.ppl", src);                       \
        ck_assert_msg(st_ == (code), "%s: status %d: %s", src, st_, ppl_errmsg(S)); \
        ck_assert_msg(strstr(ppl_errmsg(S), frag), "%s: message lacks \"%s\":\n%s", src, frag, ppl_errmsg(S)); \
    } while (0)

START_TEST(arithmetic) {
    ECHO("1 + 2 * 3", "7");
    ECHO("2 ** 10", "1024");
    ECHO("-2 ** 2", "-4");
    ECHO("7 % 3", "1");
    ECHO("-7 % 3", "2");
    ECHO("0.1 + 0.2", "0.30000000000000004");
    ECHO("1 / 4", "0.25");
    ECHO("[1, 2, 3] * 2", "[2, 4, 6]");
    ECHO("[[1, 2], [3, 4]] @ [1, 1]", "[3, 7]");
    ECHO("[1, 2] + [[10], [20]]", "[[11, 12],\n [21, 22]]");
    ECHO("1 < 2 and 3 > 4", "0");
    ECHO("not 0", "1");
    ECHO("true or false", "1");
}
END_TEST

START_TEST(builtins) {
    ECHO("sum([1, 2, 3])", "6");
    ECHO("mean([1, 2, 3, 4])", "2.5");
    ECHO("exp(0)", "1");
    ECHO("log(1)", "0");
    ECHO("sqrt(16)", "4");
    ECHO("max([3, 9, 2])", "9");
    ECHO("len([4, 5, 6])", "3");
    ECHO("zeros(3)", "[0, 0, 0]");
    ECHO("ones([2, 2])", "[[1, 1],\n [1, 1]]");
    ECHO("arange(4)", "[0, 1, 2, 3]");
    ECHO("shape(zeros([2, 3]))", "[2, 3]");
    ECHO("str(3) + \"x\"", "3x");
    ECHO("sigmoid(0)", "0.5");
    ECHO("logsumexp([0, 0])", "0.6931471805599453");
    ECHO("cumsum([1, 2, 3])", "[1, 3, 6]");
    ECHO("transpose([[1, 2], [3, 4]])", "[[1, 3],\n [2, 4]]");
    ECHO("dot([1, 2], [3, 4])", "11");
}
END_TEST

START_TEST(indexing) {
    RUN("x = [10, 20, 30, 40]");
    ECHO("x[0]", "10");
    ECHO("x[-1]", "40");
    ECHO("x[1:3]", "[20, 30]");
    ECHO("x[::2]", "[10, 30]");
    ECHO("x[::-1]", "[40, 30, 20, 10]");
    RUN("m = [[1, 2, 3], [4, 5, 6]]");
    ECHO("m[1, 2]", "6");
    ECHO("m[:, 1]", "[2, 5]");
    RUN("x[1] = 99");
    ECHO("x", "[10, 99, 30, 40]");
    RUN("m[0, :] = [7, 8, 9]");
    ECHO("m", "[[7, 8, 9],\n [4, 5, 6]]");
}
END_TEST

START_TEST(records_and_strings) {
    RUN("r = {a: 1, b: [2, 3], s: \"hi\"}");
    ECHO("r.a", "1");
    ECHO("r.b[1]", "3");
    ECHO("r.s + \"!\"", "hi!");
    RUN("r.a = 5");
    ECHO("r.a", "5");
    ECHO("\"a\" == \"a\"", "1");
    ECHO("len(\"hello\")", "5");
}
END_TEST

START_TEST(functions_and_control) {
    RUN("def fact(n) { if n <= 1 { return 1 }; return n * fact(n - 1) }");
    ECHO("fact(10)", "3628800");
    RUN("def f(a, b=10) { return a + b }");
    ECHO("f(1)", "11");
    ECHO("f(1, b=2)", "3");
    RUN("s = 0\nfor i in range(5) { s = s + i }");
    ECHO("s", "10");
    RUN("n = 0\nwhile n < 100 { n = n + 7\n if n > 50 { break } }");
    ECHO("n", "56");
    RUN("t = 0\nfor v in [1, 2, 3, 4] { if v == 2 { continue }\n t = t + v }");
    ECHO("t", "8");
    RUN("acc = zeros(3)\nfor i in range(3) { acc[i] = i * i }");
    ECHO("acc", "[0, 1, 4]");
    RUN("def later() { return helper() + 1 }\ndef helper() { return 41 }");
    ECHO("later()", "42");
}
END_TEST

START_TEST(print_output) {
    RUN("print(1, \"two\", [3, 4])");
    ck_assert_str_eq(outbuf, "1 two [3, 4]\n");
}
END_TEST

START_TEST(errors_are_located) {
    FAILS("x = 1 +\n", PPL_ERR_SYNTAX, "t.ppl:1:");
    FAILS("y = undefined_thing + 1\n", PPL_ERR_NAME, "unknown name \"undefined_thing\"");
    FAILS("sigma = 1\nz = sigm\n", PPL_ERR_NAME, "did you mean \"sigma\"?");
    FAILS("x = [1, 2, 3] + [1, 2]\n", PPL_ERR_RUNTIME, "t.ppl:1:");
    FAILS("x = [1, 2]\ny = x[7]\n", PPL_ERR_RUNTIME, "index 7 is out of bounds for axis 0 with size 2");
    FAILS("def f(a) { return a }\nf(1, 2)\n", PPL_ERR_NAME, "f takes 1 argument, got 2");
    FAILS("x = \"a\" + 1\n", PPL_ERR_RUNTIME, "convert numbers with str()");
    FAILS("return 1\n", PPL_ERR_NAME, "return outside a function");
    /* the caret line is there */
    FAILS("q = nope\n", PPL_ERR_NAME, "^^^^");
    /* and the state still works */
    ECHO("1 + 1", "2");
}
END_TEST

START_TEST(limits) {
    FAILS("def f(n) { return f(n + 1) }\nf(0)\n", PPL_ERR_LIMIT, "recursion is too deep");
    ECHO("2 + 2", "4");
}
END_TEST

START_TEST(loop_limit) {
    ppl_options o = ppl_default_options();
    o.max_loop_iterations = 1000;
    ppl_state *T = ppl_open(&o);
    ck_assert_int_eq(ppl_load_string(T, "t.ppl", "while true { x = 1 }"), PPL_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(ppl_errmsg(T), "limit"));
    ppl_close(T);
}
END_TEST

START_TEST(distributions_in_language) {
    ECHO("Normal(0, 1).log_prob(0.0)", "-0.9189385332046728");
    ECHO("Normal(0, 1).mean", "0");
    ECHO("shape(Normal(0, 1).sample([3]))", "[3]"); /* keywords work as method names */
    RUN("d = Normal(zeros(3), 1)");
    ECHO("d.log_prob([0, 0, 0])", "[-0.9189385332046728, -0.9189385332046728, -0.9189385332046728]");
    ECHO("abs(d.to_event(1).log_prob([0, 0, 0]) - 3 * Normal(0, 1).log_prob(0.0)) < 1e-14", "1");
    FAILS("x = Normal(0, -1)\n", PPL_ERR_RUNTIME, "Normal: scale must be > 0, got -1");
}
END_TEST

START_TEST(trace_sites) {
    RUN("model m(y) {\n"
        "  sample mu ~ Normal(0, 1)\n"
        "  deterministic twice = 2 * mu\n"
        "  observe y ~ Normal(mu, 1)\n"
        "  factor bonus = -1.5\n"
        "}\n"
        "tr = trace(m, {y: 0.5}, seed=3)\n"
        "print(tr)\n");
    ck_assert_ptr_nonnull(strstr(outbuf, "mu"));
    ck_assert_ptr_nonnull(strstr(outbuf, "observe"));
    ck_assert_ptr_nonnull(strstr(outbuf, "deterministic"));
    ck_assert_ptr_nonnull(strstr(outbuf, "factor"));
    /* log joint = N(mu|0,1) + N(0.5|mu,1) - 1.5, checked against the values */
    RUN("mu = tr.mu\n"
        "want = Normal(0, 1).log_prob(mu) + Normal(mu, 1).log_prob(0.5) - 1.5\n"
        "diff = abs(tr.log_prob - want)\n");
    double d;
    size_t n;
    ck_assert_int_eq(ppl_get_f64(S, "diff", &d, 1, &n), PPL_OK);
    ck_assert(d < 1e-12);
    /* the same seed gives the same trace */
    RUN("a = trace(m, {y: 0.5}, seed=7).mu\nb = trace(m, {y: 0.5}, seed=7).mu\nsame = a == b\n");
    ck_assert_int_eq(ppl_get_f64(S, "same", &d, 1, &n), PPL_OK);
    ck_assert(d == 1.0);
    FAILS("tr2 = trace(m, {})\n", PPL_ERR_RUNTIME, "needs argument \"y\"");
}
END_TEST

START_TEST(plates_vectorize) {
    RUN("model m(y) {\n"
        "  sample mu ~ Normal(0, 1)\n"
        "  plate data(4) {\n"
        "    observe y ~ Normal(mu, 1)\n"
        "  }\n"
        "}\n"
        "y = [0.1, -0.3, 0.7, 1.2]\n"
        "tr = trace(m, {y: y}, seed=1)\n"
        "want = Normal(0, 1).log_prob(tr.mu) + sum(Normal(tr.mu, 1).log_prob(y))\n"
        "diff = abs(tr.log_prob - want)\n");
    double d;
    size_t n;
    ck_assert_int_eq(ppl_get_f64(S, "diff", &d, 1, &n), PPL_OK);
    ck_assert(d < 1e-12);
    /* subsampling scales the log-likelihood by N/B */
    RUN("model s(y) {\n"
        "  plate data(4, subsample=2) as idx {\n"
        "    observe y[idx] ~ Normal(0, 1)\n"
        "  }\n"
        "}\n"
        "tr2 = trace(s, {y: [1, 2, 3, 4]}, seed=2)\n"
        "idx = tr2.data\n"
        "want2 = 2 * sum(Normal(0, 1).log_prob([1, 2, 3, 4][idx]))\n"
        "diff2 = abs(tr2.log_prob - want2)\n"
        "nidx = len(idx)\n");
    ck_assert_int_eq(ppl_get_f64(S, "diff2", &d, 1, &n), PPL_OK);
    ck_assert(d < 1e-12);
    ck_assert_int_eq(ppl_get_f64(S, "nidx", &d, 1, &n), PPL_OK);
    ck_assert(d == 2.0);
}
END_TEST

START_TEST(params_and_constraints) {
    RUN("model m() {\n  param s: positive = 2.0\n  param p: interval(0, 1) = 0.25\n  deterministic t = s + p\n}\n"
        "tr = trace(m, {})\nv = tr.t\n");
    double d;
    size_t n;
    ck_assert_int_eq(ppl_get_f64(S, "v", &d, 1, &n), PPL_OK);
    ck_assert(d > 2.25 - 1e-12 && d < 2.25 + 1e-12);
    FAILS("model b() {\n  param s_bad: positive = -1.0\n}\ntr = trace(b, {})\n", PPL_ERR_RUNTIME,
          "outside its constraint positive");
}
END_TEST

START_TEST(misuse) {
    ck_assert_int_eq(ppl_load_string(NULL, "x", "1"), PPL_ERR_MISUSE);
    ck_assert_int_eq(ppl_eval(NULL, "x", "1", NULL), PPL_ERR_MISUSE);
    ck_assert_int_eq(ppl_errcode(NULL), PPL_ERR_MISUSE);
    ck_assert_ptr_nonnull(ppl_errmsg(NULL));
    ck_assert_int_eq(ppl_load_string(S, "x", NULL), PPL_ERR_MISUSE);
    ck_assert_int_eq(ppl_load_file(S, "/nonexistent/file.ppl"), PPL_ERR_IO);
    ck_assert_int_eq(ppl_call(S, "no_such_function", 0, NULL, NULL), PPL_ERR_NAME);
}
END_TEST

START_TEST(incomplete_input) {
    ck_assert(ppl_incomplete("def f(x) {"));
    ck_assert(ppl_incomplete("x = [1, 2,"));
    ck_assert(!ppl_incomplete("x = 1"));
    ck_assert(!ppl_incomplete("def f(x) { return x }"));
}
END_TEST

/* A definitions-only load (what ppl sample / svi FILE run): definitions
 * and data assignments, not script actions, nor assignments that read what
 * a skipped one would have assigned (and, in turn, what those assign). */
START_TEST(definitions_only_load) {
    char path[] = "/tmp/ppl_defs_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    const char *src = "data = {y: [1.0, 2.0]}\n"
                      "model m(y) {\n    sample mu ~ Normal(0.0, 1.0)\n    observe y ~ Normal(mu, 1.0)\n}\n"
                      "post = mcmc(m, data, warmup=10, samples=10, chains=1, seed=1)\n"
                      "pz = mean(post.mu)\n"
                      "pz2 = pz + 1\n"
                      "r = {a: 1}\n"
                      "r.a = pz\n"
                      "n = len(data.y)\n"
                      "print(\"not run\")\n";
    ck_assert(write(fd, src, strlen(src)) == (ssize_t)strlen(src));
    close(fd);
    ppl_status st = ppl_load_definitions(S, path);
    unlink(path);
    ck_assert_msg(st == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_str_eq(outbuf, "");
    ECHO("n", "2");
    ECHO("r.a", "1");
    const char *e;
    ck_assert_int_ne(ppl_eval(S, "<test>", "pz2", &e), PPL_OK);
    ck_assert_int_ne(ppl_eval(S, "<test>", "post", &e), PPL_OK);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lang");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, arithmetic);
    tcase_add_test(tc, builtins);
    tcase_add_test(tc, indexing);
    tcase_add_test(tc, records_and_strings);
    tcase_add_test(tc, functions_and_control);
    tcase_add_test(tc, print_output);
    tcase_add_test(tc, errors_are_located);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, loop_limit);
    tcase_add_test(tc, distributions_in_language);
    tcase_add_test(tc, trace_sites);
    tcase_add_test(tc, plates_vectorize);
    tcase_add_test(tc, params_and_constraints);
    tcase_add_test(tc, misuse);
    tcase_add_test(tc, incomplete_input);
    tcase_add_test(tc, definitions_only_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
