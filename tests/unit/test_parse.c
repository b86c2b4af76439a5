/* test_parse.c - the front end: every Part 1 example of DESIGN.md parses,
 * the tree has the right shape (precedence, slices, keywords, records,
 * sample forms, plates, call forms), syntax errors carry exact messages and
 * locations, adversarial inputs end in ordinary errors, the REPL's
 * continuation test, and the diagnostic renderer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "diag.h"

/* ---- helpers ---- */

static ast_program *parse_text(const char *text, size_t len, rt_diaglist *d, rt_source **srcp) {
    rt_source *src = rt_source_new("t.ppl", text, len);
    ck_assert_ptr_nonnull(src);
    rt_diaglist_init(d);
    ast_program *p = rt_parse(src, d);
    *srcp = src;
    return p;
}

/* The dump of the whole program, or NULL (with the errors printed into the
 * failure message) when it does not parse. */
static char *dump_of(const char *text) {
    rt_diaglist d;
    rt_source *src;
    ast_program *p = parse_text(text, strlen(text), &d, &src);
    char *errs = rt_diaglist_format(&d);
    ck_assert_msg(p != NULL, "parse failed:\n%s\n%s", text, errs ? errs : "");
    ck_assert_int_eq(d.n, 0);
    char *s = ast_dump(p->body);
    free(errs);
    ast_program_free(p);
    rt_diaglist_free(&d);
    rt_source_release(src);
    return s;
}

#define PARSES(text) free(dump_of(text))

/* The one statement of `text` dumped. */
#define SHAPE(text, want)                                                       \
    do {                                                                        \
        char *s_ = dump_of(text);                                               \
        char w_[4096];                                                          \
        snprintf(w_, sizeof w_, "(block %s)", want);                            \
        ck_assert_str_eq(s_, w_);                                               \
        free(s_);                                                               \
    } while (0)

/* The errors of a bad input as "line:col-end_line:end_col msg" lines. */
static char *errors_of_n(const char *text, size_t len) {
    rt_diaglist d;
    rt_source *src;
    ast_program *p = parse_text(text, len, &d, &src);
    ck_assert_ptr_null(p);
    ck_assert_int_gt(d.n, 0);
    size_t cap = 64 + (size_t)d.n * 300, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (int i = 0; i < d.n; i++) {
        rt_loc l = d.items[i].loc;
        n += (size_t)snprintf(out + n, cap - n, "%s%d:%d-%d:%d %s", i ? "\n" : "", l.line, l.col, l.end_line,
                              l.end_col, d.items[i].msg);
    }
    rt_diaglist_free(&d);
    rt_source_release(src);
    return out;
}

#define ERRORS(text, want)                                                      \
    do {                                                                        \
        char *e_ = errors_of_n(text, strlen(text));                             \
        ck_assert_str_eq(e_, want);                                             \
        free(e_);                                                               \
    } while (0)

/* ---- DESIGN Part 1 examples ---- */

static const char temperature[] =
    "# examples/temperature.ppl\n"
    "model weather(sensor) {\n"
    "    sample temp ~ Normal(15.0, 2.0)\n"
    "    observe sensor ~ Normal(temp, 1.0)\n"
    "}\n"
    "\n"
    "guide weather_guide(sensor) {\n"
    "    param loc = 15.0\n"
    "    param scale: positive = 1.0\n"
    "    sample temp ~ Normal(loc, scale)\n"
    "}\n"
    "\n"
    "fit = svi(weather, weather_guide, {sensor: 18.0}, steps=2000, optim=Adam(lr=0.05), seed=1)\n"
    "print(fit.params)          # loc ~ 17.4, scale ~ 0.894 (the exact posterior)\n";

START_TEST(temperature_example) {
    char *s = dump_of(temperature);
    ck_assert_str_eq(s,
        "(block (def model weather sensor: _ _ (block (sample (name temp) (call _: _: (name Normal) (num 15) (num 2)))"
        " (observe (name sensor) (call _: _: (name Normal) (name temp) (num 1)))) _)"
        " (def guide weather_guide sensor: _ _ (block (param loc _ (num 15))"
        " (param scale _ (num 1) (name positive))"
        " (sample (name temp) (call _: _: (name Normal) (name loc) (name scale)))) _)"
        " (assign (name fit) (call _: _: _: steps: optim: seed: (name svi) (name weather) (name weather_guide)"
        " (record sensor: (num 18)) (num 2000) (call lr: (name Adam) (num 0.05)) (num 1)))"
        " (expr (call _: (name print) (field params (name fit)))))");
    free(s);
}
END_TEST

START_TEST(statement_table) {
    PARSES("model m(x, y, N) {\n"
           "    sample x ~ D\n"
           "    sample x[i] ~ D\n"
           "    sample mu: ordered ~ Normal(zeros(2), 2)\n"
           "    sample b: interval(0, 1 - a) ~ ImproperUniform()\n"
           "    observe y ~ Normal(mu, sigma)\n"
           "    observe y[i] ~ Normal(mu, sigma)\n"
           "    observe a + b ~ Normal(0, 1)\n"
           "    param p = 0.5\n"
           "    param s: positive = 1.0\n"
           "    param t: interval(0, 1) = 0.5\n"
           "    deterministic d = mu * 2\n"
           "    factor f = -0.5 * x ** 2\n"
           "    plate data(N) {\n        observe y ~ Normal(mu, 1)\n    }\n"
           "    plate data(N, subsample=10) as idx {\n        observe y[idx] ~ Normal(mu, 1)\n    }\n"
           "    x = e; x[i] = e; x[i, j] = e; r.a = e\n"
           "    if c { } else { }\n"
           "    if c { a = 1 } else if d { a = 2 } else { a = 3 }\n"
           "    for i in range(a, b) { }\n"
           "    for v in [1, 2, 3] { continue }\n"
           "    while c { break }\n"
           "    return e\n"
           "}\n"
           "def f(a, b=1) { return }\n"
           "guide g() { }\n"
           "sample(\"z_\" + str(t), D)\n"
           "observe(\"y\", D, value)\n"
           "param(\"w\", init, constraint=positive)\n"
           "deterministic(\"d\", x)\n"
           "factor(\"f\", x)\n");
}
END_TEST

START_TEST(values_and_inference_examples) {
    PARSES("a = 1; b = 2.5e-3; c = true; d = \"text\"; e = [1, 2, 3]; f = [[1, 2], [3, 4]]\n"
           "r = {a: 1, b: [2, 3]}\n"
           "z = r.a\n"
           "w = x @ y + -x ** 2 / 3 - 1 * 2\n"
           "ok = a < b and not (c == d) or e >= f\n"
           "lp = d.log_prob(x); s = d.sample(); m = d.mean; v = d.variance\n"
           "d2 = d.to_event(1).expand([3]).mask(m)\n"
           "fit  = svi(model, guide, data, steps=5000, optim=Adam(lr=0.01), loss=Trace_ELBO(particles=1), seed=1)\n"
           "fit  = svi(model, AutoNormal(model), data)      # also AutoDiagonalNormal\n"
           "post = mcmc(model, data, kernel=NUTS(target_accept=0.8, max_depth=10), warmup=1000, samples=1000, "
           "chains=4, seed=1)\n"
           "summary(post)                                        # table, see 1.8\n"
           "pred = predictive(model, post, data, samples=1000)   # posterior predictive\n"
           "tr   = trace(model, data, seed=1)                    # one execution\n"
           "write_json(\"out.json\", post)                         # any value as JSON\n"
           "h = DiscreteHMM(init, trans, Categorical(probs=E))\n"
           "v = hmm_viterbi(h, y).path\n"
           "hm = baum_welch(h, ys, iters=100, tol=1e-6)\n"
           "data = load_json(\"data.json\")\n");
}
END_TEST

/* ---- shapes ---- */

START_TEST(precedence) {
    SHAPE("1 + 2 * 3", "(expr (binop + (num 1) (binop * (num 2) (num 3))))");
    SHAPE("1 - 2 - 3", "(expr (binop - (binop - (num 1) (num 2)) (num 3)))");
    SHAPE("-x ** 2", "(expr (unop neg (binop ** (name x) (num 2))))");
    SHAPE("2 ** -1", "(expr (binop ** (num 2) (unop neg (num 1))))");
    SHAPE("a ** b ** c", "(expr (binop ** (name a) (binop ** (name b) (name c))))");
    SHAPE("a @ b % c / d", "(expr (binop / (binop % (binop @ (name a) (name b)) (name c)) (name d)))");
    SHAPE("not a == b", "(expr (unop not (binop == (name a) (name b))))");
    SHAPE("a or b and c", "(expr (or (name a) (and (name b) (name c))))");
    SHAPE("a + b < c * d", "(expr (binop < (binop + (name a) (name b)) (binop * (name c) (name d))))");
    SHAPE("+a != -b", "(expr (binop != (unop pos (name a)) (unop neg (name b))))");
    SHAPE("(1 + 2) * 3", "(expr (binop * (binop + (num 1) (num 2)) (num 3)))");
    SHAPE("-f(x)[0].a ** 2",
          "(expr (unop neg (binop ** (field a (index (call _: (name f) (name x)) (num 0))) (num 2))))");
    SHAPE(".5 + 1e3 + 2.5E-3", "(expr (binop + (binop + (num 0.5) (num 1000)) (num 0.0025)))");
    SHAPE("\"a\\n\\t\\\"\\\\b\"", "(expr (str \"a\n\t\"\\b\"))");
    SHAPE("false", "(expr (bool 0))");
}
END_TEST

START_TEST(slices_and_calls) {
    SHAPE("x[a:b]", "(expr (index (name x) (slice (name a) (name b))))");
    SHAPE("x[:, j]", "(expr (index (name x) (slice) (name j)))");
    SHAPE("x[::2]", "(expr (index (name x) (slice _ _ (num 2))))");
    SHAPE("x[1:]", "(expr (index (name x) (slice (num 1))))");
    SHAPE("x[:-1, 0:n:k]", "(expr (index (name x) (slice _ (unop neg (num 1))) (slice (num 0) (name n) (name k))))");
    SHAPE("f(1, scale=2)", "(expr (call _: scale: (name f) (num 1) (num 2)))");
    SHAPE("f()", "(expr (call (name f)))");
    SHAPE("f(1, 2,)", "(expr (call _: _: (name f) (num 1) (num 2)))");
    SHAPE("d.log_prob(x)", "(expr (call _: (field log_prob (name d)) (name x)))");
    SHAPE("[1, [2, 3],]", "(expr (list (num 1) (list (num 2) (num 3))))");
    SHAPE("[]", "(expr (list))");
    SHAPE("f(\n  1,\n  2\n)", "(expr (call _: _: (name f) (num 1) (num 2)))");
}
END_TEST

START_TEST(records) {
    SHAPE("r = {a: 1, b: [2, 3]}", "(assign (name r) (record a: b: (num 1) (list (num 2) (num 3))))");
    SHAPE("r = {}", "(assign (name r) (record))");
    SHAPE("r = {\n  a: 1,\n  \"b c\": 2,\n}\n", "(assign (name r) (record a: b c: (num 1) (num 2)))");
    SHAPE("r = {a: {b: 1}}", "(assign (name r) (record a: (record b: (num 1))))");
    SHAPE("r.a = 2", "(assign (field a (name r)) (num 2))");
}
END_TEST

START_TEST(sample_forms) {
    SHAPE("sample x ~ D", "(sample (name x) (name D))");
    SHAPE("sample x[i] ~ Normal(0, 1)",
          "(sample (index (name x) (name i)) (call _: _: (name Normal) (num 0) (num 1)))");
    SHAPE("sample x: positive ~ D", "(sample (name x) (name D) (name positive))");
    SHAPE("sample b: interval(0, 1 - a) ~ D",
          "(sample (name b) (name D) (call _: _: (name interval) (num 0) (binop - (num 1) (name a))))");
    SHAPE("observe y[i] ~ D", "(observe (index (name y) (name i)) (name D))");
    SHAPE("observe (a + b) ~ D", "(observe (binop + (name a) (name b)) (name D))");
    SHAPE("param p: positive = 1", "(param p _ (num 1) (name positive))");
    SHAPE("deterministic d = x", "(deterministic d _ (name x))");
    SHAPE("factor f = x", "(factor f _ (name x))");
    SHAPE("sample(\"z_\" + str(t), D)",
          "(expr (call _: _: (name sample) (binop + (str \"z_\") (call _: (name str) (name t))) (name D)))");
    SHAPE("observe(\"y\", D, v)", "(expr (call _: _: _: (name observe) (str \"y\") (name D) (name v)))");
    SHAPE("param(\"w\", 0, constraint=positive)",
          "(expr (call _: _: constraint: (name param) (str \"w\") (num 0) (name positive)))");
    SHAPE("x = deterministic(\"d\", 1)", "(assign (name x) (call _: _: (name deterministic) (str \"d\") (num 1)))");
    SHAPE("factor(\"f\", 1)", "(expr (call _: _: (name factor) (str \"f\") (num 1)))");
}
END_TEST

START_TEST(blocks_and_defs) {
    SHAPE("plate p(N) { x = 1 }", "(plate p (name N) _ (block (assign (name x) (num 1))))");
    SHAPE("plate p(N, subsample=B) as idx { }", "(plate p idx: (name N) (name B) (block))");
    SHAPE("def f(a, b=1,) { return a }",
          "(def func f a: b: _ _ (block (return (name a))) _ (num 1))");
    SHAPE("model m() { }", "(def model m _ _ (block))");
    SHAPE("guide g(x) { }", "(def guide g x: _ _ (block) _)");
    SHAPE("if a { } else if b { } else { x = 1 }",
          "(if (name a) (block) (if (name b) (block) (block (assign (name x) (num 1)))))");
    SHAPE("if a {\n}\n\n  # comment\nelse {\n}\n", "(if (name a) (block) (block))");
    SHAPE("for i in range(0, n) { break }",
          "(for i (call _: _: (name range) (num 0) (name n)) (block (break)))");
    SHAPE("while x < 3 { continue }", "(while (binop < (name x) (num 3)) (block (continue)))");
    SHAPE("x = 1; ; y = 2\n\n", "(assign (name x) (num 1)) (assign (name y) (num 2))");
    char *e0 = dump_of("");
    ck_assert_str_eq(e0, "(block)");
    free(e0);
    char *s = dump_of("# only a comment\n\n");
    ck_assert_str_eq(s, "(block)");
    free(s);
    s = dump_of("elsewhere = 1\nx = 2\n");
    ck_assert_str_eq(s, "(block (assign (name elsewhere) (num 1)) (assign (name x) (num 2)))");
    free(s);
}
END_TEST

/* Locations: names are their span, calls run from callee to ")",
 * statements from their keyword to their end. */
START_TEST(locations) {
    rt_diaglist d;
    rt_source *src;
    const char *text = "model m(y) {\n    observe y ~ Normal(mu, sigm)\n}\n";
    ast_program *p = parse_text(text, strlen(text), &d, &src);
    ck_assert_ptr_nonnull(p);
    ast_node *def = p->body->kids[0];
    ck_assert_int_eq(def->loc.line, 1);
    ck_assert_int_eq(def->loc.col, 1);
    ck_assert_int_eq(def->loc.end_line, 3);
    ck_assert_int_eq(def->loc.end_col, 1);
    ast_node *obs = def->c->kids[0];
    ck_assert_int_eq(obs->kind, AST_OBSERVE);
    ck_assert_int_eq(obs->loc.line, 2);
    ck_assert_int_eq(obs->loc.col, 5);
    ck_assert_int_eq(obs->loc.end_col, 32);
    ast_node *call = obs->b;
    ck_assert_int_eq(call->loc.col, 17);
    ck_assert_int_eq(call->loc.end_col, 32);
    ast_node *sigm = call->kids[1];
    ck_assert_str_eq(sigm->str, "sigm");
    ck_assert_int_eq(sigm->loc.line, 2);
    ck_assert_int_eq(sigm->loc.col, 28);
    ck_assert_int_eq(sigm->loc.end_col, 31);
    ast_program_free(p);
    rt_diaglist_free(&d);
    rt_source_release(src);
}
END_TEST

/* ---- errors ---- */

START_TEST(error_messages) {
    ERRORS("model m(y) {\n    sample mu ~ Normal(0, 1)\n",
           "1:12-1:12 unclosed \"{\" (no matching \"}\" before the end of input)");
    ERRORS("x = \ny = 2\n", "1:5-1:5 unexpected newline (expected an expression)");
    ERRORS("x = 1.2.3\n", "1:5-1:9 invalid number \"1.2.3\"");
    ERRORS("x = 2.5e\n", "1:5-1:8 invalid number \"2.5e\"");
    ERRORS("print(\"hello)\n", "1:7-1:13 unterminated string");
    ERRORS("x = 1\n\x01\x02\xff\x03\x04garbage\n", "2:1-2:5 invalid character '\\x01'");
    ERRORS("x = y ! z\n", "1:7-1:7 invalid character '!' (use \"not\" for negation)");
    ERRORS("sample ~ Normal(0,1)\n", "1:8-1:8 unexpected \"~\" (expected a name or \"(\")");
    ERRORS("x = 1\n}\n", "2:1-2:1 unexpected \"}\" (expected a statement)");
    ERRORS("1 +", "1:4-1:4 unexpected end of input (expected an expression)");
    ERRORS("x = = 2\n", "1:5-1:5 unexpected \"=\" (expected an expression)");
    ERRORS("x = f(1 2)\n", "1:9-1:9 unexpected \"2\" (expected an operator, \")\" or \",\")");
    ERRORS("x = a < b < c\n", "1:11-1:11 comparisons do not chain (write \"a < b and b < c\")");
    ERRORS("x = [1, 2\n", "1:5-1:5 unclosed \"[\" (no matching \"]\" before the end of input)");
    ERRORS("x = f(a=1, 2)\n", "1:12-1:12 a positional argument cannot follow a keyword argument");
    ERRORS("def f(a=1, b) { }\n", "1:12-1:12 parameter \"b\" needs a default value, as the ones before it have");
    ERRORS("plate p(subsample=2) { }\n", "1:1-1:24 plate \"p\" needs a size, like plate p(N)");
    ERRORS("x = {a: 1 b: 2}\n", "1:11-1:11 unexpected \"b\" (expected an operator, newline, \"}\" or \",\")");
    ERRORS("if x > 0 { y = 1 } else z = 2\n", "1:25-1:25 unexpected \"z\" (expected \"if\" or \"{\")");
    ERRORS("x = \"a\" \"b\"\n",
           "1:9-1:11 unexpected string \"b\" (expected an operator or the end of the statement)");
    ERRORS("x = σ\n", "1:5-1:6 invalid character 'σ'");
}
END_TEST

START_TEST(several_errors) {
    ERRORS("x = 1 +\ny = * 2\nz = ]\nok = 1\nsample x[1 ~ N\nw = 3 4\n",
           "1:8-1:8 unexpected newline (expected an expression)\n"
           "2:5-2:5 unexpected \"*\" (expected an expression)\n"
           "3:5-3:5 unexpected \"]\" (expected an expression)\n"
           "5:12-5:12 unexpected \"~\" (expected an operator, \":\", \"]\" or \",\")\n"
           "6:7-6:7 unexpected \"4\" (expected an operator or the end of the statement)");
    /* errors inside blocks recover inside the block */
    ERRORS("model m() {\n  x = = 1\n  y = 2 +\n}\nz = )\n",
           "2:7-2:7 unexpected \"=\" (expected an expression)\n"
           "3:10-3:10 unexpected newline (expected an expression)\n"
           "5:5-5:5 unexpected \")\" (expected an expression)");
}
END_TEST

START_TEST(error_limit) {
    char *text = malloc(30 * 8 + 1);
    text[0] = 0;
    for (int i = 0; i < 30; i++) strcat(text, "x = = 1\n");
    rt_diaglist d;
    rt_source *src;
    ast_program *p = parse_text(text, strlen(text), &d, &src);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(d.n, 21);
    ck_assert_int_eq(d.items[19].loc.line, 20);
    ck_assert_str_eq(d.items[20].msg, "too many errors; stopping");
    ck_assert_ptr_null(d.items[20].src);
    rt_diaglist_free(&d);
    rt_source_release(src);
    free(text);
}
END_TEST

/* A big input of one repeated piece. */
static char *repeat(const char *head, const char *piece, int times, const char *tail) {
    size_t hn = strlen(head), pn = strlen(piece), tn = strlen(tail);
    char *s = malloc(hn + pn * (size_t)times + tn + 1);
    memcpy(s, head, hn);
    for (int i = 0; i < times; i++) memcpy(s + hn + pn * (size_t)i, piece, pn);
    memcpy(s + hn + pn * (size_t)times, tail, tn + 1);
    return s;
}

#define ERRORS_BIG(head, piece, times, tail, want)                             \
    do {                                                                        \
        char *t_ = repeat(head, piece, times, tail);                            \
        char *e_ = errors_of_n(t_, strlen(t_));                                 \
        ck_assert_str_eq(e_, want);                                             \
        free(e_);                                                               \
        free(t_);                                                               \
    } while (0)

START_TEST(limits) {
    ERRORS_BIG("x = ", "(", 10000, "1", "1:205-1:205 nesting is too deep (the limit is 200)");
    ERRORS_BIG("", "{", 100000, "", "1:2-1:2 unexpected \"{\" (expected a string, a name, newline or \"}\")\n"
                                    "1:201-1:201 nesting is too deep (the limit is 200)");
    ERRORS_BIG("x = ", "a", 1000000, " + 1\n",
               "1:5-1:1000004 identifier is too long (1000000 characters; the limit is 256)");
    ERRORS_BIG("x = 1", " + 1", 500000, "\n", "1:5-1:4005 too many nested operators (the limit is 1000)");
    ERRORS_BIG("x = ", "-", 1000000, "1\n", "1:10000-1:10000 too many nested operators (the limit is 1000)");
    ERRORS_BIG("x = ", "2 ** ", 300000, "1\n", "1:24992-1:24993 too many nested operators (the limit is 1000)");
    ERRORS_BIG("x = f", "(1)", 300000, "\n", "1:5-1:3005 too many nested operators (the limit is 1000)");
    /* nesting up to the limit is fine */
    char *ok = repeat("x = ", "[", 200, "1");
    char *ok2 = repeat(ok, "]", 200, "\n");
    PARSES(ok2);
    free(ok);
    free(ok2);
    /* long flat inputs parse in linear time */
    char *stmts = repeat("", "x = 1\n", 100000, "");
    PARSES(stmts);
    free(stmts);
    char *list = repeat("x = [", "1, ", 100000, "]\n");
    PARSES(list);
    free(list);
    char *blank = repeat("", "\n  # c\n", 100000, "x = 1");
    PARSES(blank);
    free(blank);
}
END_TEST

START_TEST(garbage_and_nul) {
    /* embedded NUL bytes are invalid characters, not the end of the text */
    char *e = errors_of_n("x\0 = 1\ny = 2\n", 13);
    ck_assert_str_eq(e, "1:2-1:2 invalid character '\\x00'");
    free(e);
    /* 1 MB of pseudo-random bytes: at most 20 errors, quickly */
    size_t n = 1 << 20;
    char *junk = malloc(n);
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (char)(s >> 16);
    }
    rt_diaglist d;
    rt_source *src;
    ast_program *p = parse_text(junk, n, &d, &src);
    ck_assert_ptr_null(p);
    ck_assert_int_ge(d.n, 1);
    ck_assert_int_le(d.n, 21);
    rt_diaglist_free(&d);
    rt_source_release(src);
    free(junk);
    /* 1 MB of quotes and backslashes */
    char *q = repeat("", "\"", 1 << 20, "");
    e = errors_of_n(q, strlen(q));
    free(e);
    free(q);
    q = repeat("\"", "\\", 1 << 20, "");
    e = errors_of_n(q, strlen(q));
    ck_assert_str_eq(e, "1:1-1:1048577 unterminated string");
    free(e);
    free(q);
}
END_TEST

/* ---- REPL continuation ---- */

START_TEST(incomplete) {
    ck_assert(rt_parse_incomplete("model m() {\n"));
    ck_assert(rt_parse_incomplete("x = f(1,\n"));
    ck_assert(rt_parse_incomplete("x = [1, [2\n"));
    ck_assert(rt_parse_incomplete("x = 1 +\n"));
    ck_assert(rt_parse_incomplete("x = 1 + # comment\n"));
    ck_assert(rt_parse_incomplete("sample x ~\n"));
    ck_assert(rt_parse_incomplete("x =\n"));
    ck_assert(rt_parse_incomplete("r = {a: 1,\n"));
    ck_assert(rt_parse_incomplete("ok = a and\n"));
    ck_assert(rt_parse_incomplete("x = \"abc"));
    ck_assert(rt_parse_incomplete("if a { x = 1 } else\n"));
    ck_assert(!rt_parse_incomplete(""));
    ck_assert(!rt_parse_incomplete("x = 1\n"));
    ck_assert(!rt_parse_incomplete("model m() { }\n"));
    ck_assert(!rt_parse_incomplete("x = \"(\"\n"));
    ck_assert(!rt_parse_incomplete("x = \"a\\\"(\"\n"));
    ck_assert(!rt_parse_incomplete("x = 1 # (\n"));
    ck_assert(!rt_parse_incomplete("x = 1 # ends with +\n"));
    ck_assert(!rt_parse_incomplete("}\n"));
    ck_assert(!rt_parse_incomplete("x = \"abc\n"));      /* an error, not more input */
    ck_assert(!rt_parse_incomplete("band = 1\n"));
    ck_assert(!rt_parse_incomplete("x = y[1:2]\n"));
    /* a number's trailing decimal point ends nothing; a field access does */
    ck_assert(!rt_parse_incomplete("x = 1.\n"));
    ck_assert(!rt_parse_incomplete("x = 1."));
    ck_assert(rt_parse_incomplete("x = a.\n"));
    ck_assert(rt_parse_incomplete("x = a1.\n"));
    ck_assert(rt_parse_incomplete("x = f(1).\n"));
    ck_assert(rt_parse_incomplete("x = a !=\n"));
    /* input that is already an error is handed to the parser, not continued */
    ck_assert(!rt_parse_incomplete("x = [f(1]\n"));
    ck_assert(!rt_parse_incomplete("x = '(' \n"));
    ck_assert(!rt_parse_incomplete("x = (1 + \x01\n"));
    ck_assert(!rt_parse_incomplete("x = y !\n"));
    ck_assert(rt_parse_incomplete("x = \"\xcf\x83 (\" + (\n"));   /* UTF-8 inside a string is fine */
    char *deep = repeat("x = ", "(", 100000, "");
    ck_assert(!rt_parse_incomplete(deep));               /* past the nesting limit */
    free(deep);
    deep = repeat("x = ", "(", 200, "");
    ck_assert(rt_parse_incomplete(deep));
    free(deep);
}
END_TEST

/* ---- diagnostics ---- */

static char *format_at(const char *text, rt_loc loc, const char *msg) {
    rt_source *src = rt_source_new("model.ppl", text, strlen(text));
    rt_diaglist d;
    rt_diaglist_init(&d);
    ck_assert_int_eq(rt_diag_add(&d, src, loc, "%s", msg), 0);
    rt_source_release(src); /* the diagnostic keeps it alive */
    char *s = rt_diag_format(&d.items[0]);
    rt_diaglist_free(&d);
    return s;
}

#define FORMAT(text, l, c, el, ec, msg, want)                                   \
    do {                                                                        \
        char *s_ = format_at(text, (rt_loc){l, c, el, ec}, msg);                \
        ck_assert_str_eq(s_, want);                                             \
        free(s_);                                                               \
    } while (0)

START_TEST(diag_format) {
    FORMAT("\n\n\n\n\n\n    observe y ~ Normal(mu, sigm)\n", 7, 28, 7, 31,
           "unknown name \"sigm\" (did you mean \"sigma\"?)",
           "error: unknown name \"sigm\" (did you mean \"sigma\"?)\n"
           "  --> model.ppl:7:28\n"
           "   |\n"
           " 7 |     observe y ~ Normal(mu, sigm)\n"
           "   |                            ^^^^\n");
    /* two-digit line numbers widen the gutter */
    FORMAT("\n\n\n\n\n\n\n\n\nx = y\n", 10, 5, 10, 5, "oops",
           "error: oops\n"
           "   --> model.ppl:10:5\n"
           "    |\n"
           " 10 | x = y\n"
           "    |     ^\n");
    /* tabs stay tabs, control characters show as ?, at least one caret */
    FORMAT("\tx = \x01\x02 + y", 1, 6, 1, 5, "bad",
           "error: bad\n"
           "  --> model.ppl:1:6\n"
           "   |\n"
           " 1 | \tx = ?? + y\n"
           "   | \t    ^\n");
    /* a multi-line span is marked to the end of its first line */
    FORMAT("f(a,\n  b)\n", 1, 1, 2, 4, "span",
           "error: span\n"
           "  --> model.ppl:1:1\n"
           "   |\n"
           " 1 | f(a,\n"
           "   | ^^^^\n");
    /* UTF-8 is shown as is; carets count characters */
    FORMAT("s = \"h\xc3\xa9\" + \xcf\x83\r\n", 1, 13, 1, 14, "utf",
           "error: utf\n"
           "  --> model.ppl:1:13\n"
           "   |\n"
           " 1 | s = \"h\xc3\xa9\" + \xcf\x83\n"
           "   |            ^\n");
    /* a span at the end of the line (end of input) */
    FORMAT("x = 1 +", 1, 8, 1, 8, "end",
           "error: end\n"
           "  --> model.ppl:1:8\n"
           "   |\n"
           " 1 | x = 1 +\n"
           "   |        ^\n");
    /* no source: only the message */
    rt_diag nd = {.msg = "too many errors; stopping", .src = NULL};
    char *s = rt_diag_format(&nd);
    ck_assert_str_eq(s, "error: too many errors; stopping\n");
    free(s);
}
END_TEST

START_TEST(diag_long_line) {
    /* the window starts 100 bytes before the caret */
    char *line = repeat("", "a+", 300, " = = 3");
    char *s = format_at(line, (rt_loc){1, 606, 1, 606}, "long");
    char want[1024];
    snprintf(want, sizeof want, "error: long\n  --> model.ppl:1:606\n   |\n 1 | ...%s\n   |    %100s^\n", line + 505, "");
    ck_assert_str_eq(s, want);
    free(line);
    free(s);
    /* cut on both sides */
    line = repeat("", "x", 1000, "");
    s = format_at(line, (rt_loc){1, 500, 1, 501}, "mid");
    ck_assert_ptr_nonnull(strstr(s, " 1 | ..."));
    ck_assert_ptr_nonnull(strstr(s, "x...\n"));
    ck_assert_ptr_nonnull(strstr(s, "   |    "));
    ck_assert_ptr_nonnull(strstr(s, " ^^\n"));
    free(line);
    free(s);
}
END_TEST

START_TEST(diaglist) {
    rt_source *src = rt_source_new("a.ppl", "x\ny\n", 4);
    rt_diaglist d;
    rt_diaglist_init(&d);
    for (int i = 0; i < 10; i++) rt_diag_add(&d, src, (rt_loc){1 + i % 2, 1, 1 + i % 2, 1}, "e%d", i);
    ck_assert_int_eq(d.n, 10);
    ck_assert_str_eq(d.items[9].msg, "e9");
    char *all = rt_diaglist_format(&d);
    ck_assert_ptr_nonnull(strstr(all, "error: e0\n  --> a.ppl:1:1\n   |\n 1 | x\n   | ^\nerror: e1\n"));
    free(all);
    rt_diaglist_free(&d);
    rt_source_release(src);
    rt_diaglist_init(&d);
    all = rt_diaglist_format(&d);
    ck_assert_str_eq(all, "");
    free(all);
}
END_TEST

START_TEST(did_you_mean) {
    const char *const c[] = {"sigma", "mu", "tau", "sigmas"};
    ck_assert_str_eq(rt_did_you_mean("sigm", c, 4), "sigma");
    ck_assert_str_eq(rt_did_you_mean("mi", c, 4), "mu");
    ck_assert_ptr_null(rt_did_you_mean("xyz", c, 4));
    ck_assert_str_eq(rt_did_you_mean("ta", c, 4), "tau");
    ck_assert_ptr_null(rt_did_you_mean("sgmaa", c, 4));       /* distance 2 > max(1, 5/3) */
    ck_assert_str_eq(rt_did_you_mean("sigmaX", c, 4), "sigma"); /* tie: first wins */
    const char *const t[] = {"Normal", "LogNormal", "HalfNormal"};
    ck_assert_str_eq(rt_did_you_mean("Nromal", t, 3), "Normal");
    ck_assert_ptr_null(rt_did_you_mean("x", c, 0));
}
END_TEST

static Suite *parse_suite(void) {
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, temperature_example);
    tcase_add_test(tc, statement_table);
    tcase_add_test(tc, values_and_inference_examples);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, slices_and_calls);
    tcase_add_test(tc, records);
    tcase_add_test(tc, sample_forms);
    tcase_add_test(tc, blocks_and_defs);
    tcase_add_test(tc, locations);
    tcase_add_test(tc, error_messages);
    tcase_add_test(tc, several_errors);
    tcase_add_test(tc, error_limit);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, garbage_and_nul);
    tcase_add_test(tc, incomplete);
    tcase_add_test(tc, diag_format);
    tcase_add_test(tc, diag_long_line);
    tcase_add_test(tc, diaglist);
    tcase_add_test(tc, did_you_mean);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(parse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
