/* test_nn.c - neural-network layers (stdlib/nn.c) and their language face
 * (stdlib/nn_builtins.c).
 *
 *  - the gradient of every layer (linear, layer norm, each activation,
 *    dropout with a fixed mask, a whole MLP with layer norm) from the tape
 *    against central finite differences;
 *  - a 784-400-20 MLP forward + backward records a handful of tape entries
 *    (whole-tensor ops, the products through BLAS), independent of sizes;
 *  - initializers: Xavier's bound and variance, Kaiming's sd, seeding;
 *  - dropout: the fraction dropped and the 1/(1-p) scaling;
 *  - in the language: parameter names in the store, net(x) against the
 *    same computation written out with the stored weights, reproducible
 *    initialization, the train flag, SVI moving the weights, and errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"
#include "ppl.h"

/* ------------------------------------------------- finite differences --- */

typedef bk_tensor *(*layer_fn)(bk_ctx *, bk_tensor **in);

static uint64_t lcg = 987654321;
static double urand(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

static bk_tensor *rand_tensor(bk_ctx *c, int nd, const int64_t *shape, double lo, double hi) {
    bk_tensor *t = bk_empty(c, BK_F64, nd, shape);
    for (int64_t i = 0; i < t->numel; i++) bk_data(t)[i] = lo + (hi - lo) * urand();
    return t;
}

static double loss_value(bk_ctx *c, layer_fn f, bk_tensor **in, const double *w) {
    bool g = bk_set_grad_enabled(c, false);
    bk_tensor *out = f(c, in);
    bk_set_grad_enabled(c, g);
    ck_assert_msg(out != NULL, "%s", bk_errmsg(c));
    double s = 0;
    for (int64_t e = 0; e < out->numel; e++) s += bk_get(out, e) * w[e];
    bk_release(out);
    return s;
}

/* d sum(f(in) * w) / d in[i] from the tape against central differences */
static void check_grad(const char *label, layer_fn f, int nin, bk_tensor **in, bk_ctx *c) {
    for (int i = 0; i < nin; i++) bk_set_requires_grad(in[i], true);
    bk_set_grad_enabled(c, true);
    bk_tensor *out = f(c, in);
    ck_assert_msg(out != NULL, "%s: %s", label, bk_errmsg(c));
    double *w = malloc(sizeof(double) * (size_t)out->numel);
    for (int64_t e = 0; e < out->numel; e++) w[e] = -1 + 2 * urand();
    bk_tensor *wt = bk_from_f64(c, out->ndim, out->shape, w);
    bk_tensor *p = bk_mul(c, out, wt);
    bk_tensor *loss = bk_sum_all(c, p);
    ck_assert_msg(bk_backward(c, loss) == 0, "%s backward: %s", label, bk_errmsg(c));
    for (int i = 0; i < nin; i++) {
        bk_tensor *x = in[i];
        for (int64_t e = 0; e < x->numel; e++) {
            double x0 = bk_get(x, e), h = 1e-6 * fmax(1.0, fabs(x0));
            bk_set(x, e, x0 + h);
            double fp = loss_value(c, f, in, w);
            bk_set(x, e, x0 - h);
            double fm = loss_value(c, f, in, w);
            bk_set(x, e, x0);
            double fd = (fp - fm) / (2 * h), ad = x->grad ? bk_get(x->grad, e) : 0.0;
            ck_assert_msg(fabs(fd - ad) / fmax(1.0, fabs(fd)) < 1e-6, "%s: d/d input %d [%lld]: tape %.12g, fd %.12g",
                          label, i, (long long)e, ad, fd);
        }
    }
    bk_release(wt);
    bk_release(p);
    bk_release(loss);
    bk_release(out);
    bk_tape_reset(c);
    bk_set_grad_enabled(c, false);
    free(w);
}

static bk_tensor *f_linear(bk_ctx *c, bk_tensor **in) { return nn_linear(c, in[0], in[1], in[2]); }
static bk_tensor *f_linear_3d(bk_ctx *c, bk_tensor **in) { return nn_linear(c, in[0], in[1], NULL); }
static bk_tensor *f_layer_norm(bk_ctx *c, bk_tensor **in) { return nn_layer_norm(c, in[0], in[1], in[2], 1e-5); }
static int cur_act;
static double cur_k;
static bk_tensor *f_act(bk_ctx *c, bk_tensor **in) { return nn_activate(c, cur_act, cur_k, in[0]); }
static bk_tensor *f_dropout(bk_ctx *c, bk_tensor **in) {
    bk_rng r; /* the same mask on every evaluation */
    bk_rng_init(&r, 5, 0);
    return nn_dropout(c, &r, in[0], 0.4);
}
/* linear -> layer norm -> tanh -> linear -> softplus */
static bk_tensor *f_mlp(bk_ctx *c, bk_tensor **in) {
    bk_tensor *h = nn_linear(c, in[0], in[1], in[2]);
    bk_tensor *n = nn_layer_norm(c, h, in[3], in[4], 1e-5);
    bk_tensor *a = nn_activate(c, NN_ACT_TANH, 0, n);
    bk_tensor *o = nn_linear(c, a, in[5], in[6]);
    bk_tensor *r = nn_activate(c, NN_ACT_SOFTPLUS, 0, o);
    bk_release(h);
    bk_release(n);
    bk_release(a);
    bk_release(o);
    return r;
}

START_TEST(layer_gradients) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *in[7];
    in[0] = rand_tensor(c, 2, (int64_t[]){3, 4}, -1.5, 1.5);
    in[1] = rand_tensor(c, 2, (int64_t[]){4, 2}, -1, 1);
    in[2] = rand_tensor(c, 1, (int64_t[]){2}, -1, 1);
    check_grad("linear", f_linear, 3, in, c);
    for (int i = 0; i < 3; i++) bk_release(in[i]);
    in[0] = rand_tensor(c, 3, (int64_t[]){2, 3, 4}, -1.5, 1.5); /* batch dims before [in] */
    in[1] = rand_tensor(c, 2, (int64_t[]){4, 2}, -1, 1);
    check_grad("linear 3-d input", f_linear_3d, 2, in, c);
    for (int i = 0; i < 2; i++) bk_release(in[i]);
    in[0] = rand_tensor(c, 2, (int64_t[]){3, 5}, -2, 2);
    in[1] = rand_tensor(c, 1, (int64_t[]){5}, 0.5, 1.5);
    in[2] = rand_tensor(c, 1, (int64_t[]){5}, -1, 1);
    check_grad("layer_norm", f_layer_norm, 3, in, c);
    for (int i = 0; i < 3; i++) bk_release(in[i]);
    for (int act = 0; act < NN_ACT_COUNT; act++) {
        cur_act = act;
        cur_k = act == NN_ACT_ELU ? 0.7 : act == NN_ACT_LEAKY_RELU ? 0.1 : 0;
        in[0] = rand_tensor(c, 2, (int64_t[]){4, 3}, -3, 3);
        check_grad(nn_act_name(act), f_act, 1, in, c);
        bk_release(in[0]);
    }
    in[0] = rand_tensor(c, 2, (int64_t[]){4, 5}, -2, 2);
    check_grad("dropout", f_dropout, 1, in, c);
    bk_release(in[0]);
    in[0] = rand_tensor(c, 2, (int64_t[]){4, 3}, -1.5, 1.5);
    in[1] = rand_tensor(c, 2, (int64_t[]){3, 5}, -1, 1);
    in[2] = rand_tensor(c, 1, (int64_t[]){5}, -1, 1);
    in[3] = rand_tensor(c, 1, (int64_t[]){5}, 0.5, 1.5);
    in[4] = rand_tensor(c, 1, (int64_t[]){5}, -1, 1);
    in[5] = rand_tensor(c, 2, (int64_t[]){5, 2}, -1, 1);
    in[6] = rand_tensor(c, 1, (int64_t[]){2}, -1, 1);
    check_grad("mlp", f_mlp, 7, in, c);
    for (int i = 0; i < 7; i++) bk_release(in[i]);
    bk_ctx_free(c);
}
END_TEST

/* forward + backward of a 784-400-20 ReLU MLP on a batch of 128: a fixed,
 * small number of whole-tensor ops on the tape */
START_TEST(big_mlp_is_a_few_tensor_ops) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 1, 0);
    bk_tensor *x = bk_rand_uniform(c, &r, 2, (int64_t[]){128, 784});
    bk_tensor *w1 = nn_init_kaiming(c, &r, 784, 400, sqrt(2.0)), *w2 = nn_init_xavier(c, &r, 400, 20, 1.0);
    bk_tensor *b1 = bk_zeros(c, BK_F64, 1, (int64_t[]){400}), *b2 = bk_zeros(c, BK_F64, 1, (int64_t[]){20});
    bk_tensor *ps[4] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) bk_set_requires_grad(ps[i], true);
    bk_set_grad_enabled(c, true);
    bk_tensor *h = nn_linear(c, x, w1, b1);
    bk_tensor *a = nn_activate(c, NN_ACT_RELU, 0, h);
    bk_tensor *o = nn_linear(c, a, w2, b2);
    bk_tensor *l = bk_sum_all(c, o);
    ck_assert_int_eq((long)bk_tape_len(c), 6); /* matmul, add, relu, matmul, add, sum */
    ck_assert(bk_backward(c, l) == 0);
    for (int i = 0; i < 4; i++) ck_assert(ps[i]->grad && ps[i]->grad->numel == ps[i]->numel);
    /* d sum / d b2 = batch size */
    ck_assert(bk_get(b2->grad, 3) == 128);
    bk_tensor *tmp[] = {h, a, o, l, x, w1, w2, b1, b2};
    for (int i = 0; i < 9; i++) bk_release(tmp[i]);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

START_TEST(initializers) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 3, 0);
    bk_tensor *w = nn_init_xavier(c, &r, 400, 200, 1.0);
    double a = sqrt(6.0 / 600), ss = 0, mx = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        double v = bk_get(w, i);
        ss += v * v;
        mx = fmax(mx, fabs(v));
    }
    /* uniform(-a, a): variance a^2/3; 80000 draws give the sample variance
     * to a relative sd of sqrt(0.8 / 80000) = 0.3% */
    ck_assert(mx <= a && mx > 0.99 * a);
    ck_assert_msg(fabs(ss / w->numel / (a * a / 3) - 1) < 0.015, "xavier variance %g", ss / w->numel);
    bk_release(w);
    w = nn_init_kaiming(c, &r, 400, 200, sqrt(2.0));
    ss = 0;
    for (int64_t i = 0; i < w->numel; i++) ss += bk_get(w, i) * bk_get(w, i);
    /* normal with sd sqrt(2/400): variance's relative sd sqrt(2/80000) = 0.5% */
    ck_assert_msg(fabs(ss / w->numel / (2.0 / 400) - 1) < 0.025, "kaiming variance %g", ss / w->numel);
    bk_release(w);
    /* same seed, same weights */
    bk_rng r1, r2;
    bk_rng_init(&r1, 9, 0);
    bk_rng_init(&r2, 9, 0);
    bk_tensor *u = nn_init_xavier(c, &r1, 5, 3, 1.0), *v = nn_init_xavier(c, &r2, 5, 3, 1.0);
    for (int64_t i = 0; i < u->numel; i++) ck_assert(bk_get(u, i) == bk_get(v, i));
    bk_release(u);
    bk_release(v);
    ck_assert(nn_init_xavier(c, &r1, 0, 3, 1.0) == NULL);
    bk_ctx_free(c);
}
END_TEST

START_TEST(dropout_statistics) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 11, 0);
    bk_tensor *x = bk_full(c, BK_F64, 1, (int64_t[]){100000}, 2.0);
    bk_tensor *y = nn_dropout(c, &r, x, 0.3);
    int64_t zeros = 0;
    for (int64_t i = 0; i < y->numel; i++) {
        double v = bk_get(y, i);
        if (v == 0) zeros++;
        else ck_assert(fabs(v - 2.0 / 0.7) < 1e-12);
    }
    /* binomial(1e5, 0.3): sd 145; 5 sd */
    ck_assert_msg(llabs(zeros - 30000) < 725, "dropped %lld", (long long)zeros);
    bk_release(y);
    y = nn_dropout(c, &r, x, 0.0);
    ck_assert(y == x);
    bk_release(y);
    ck_assert(nn_dropout(c, &r, x, 1.0) == NULL);
    ck_assert(strstr(bk_errmsg(c), "dropout: the probability must be in [0, 1)"));
    bk_release(x);
    bk_ctx_free(c);
}
END_TEST

/* ---------------------------------------------------------- language --- */

static ppl_state *open_state(void) {
    ppl_options o = ppl_default_options();
    ppl_state *S = ppl_open(&o);
    ck_assert(S != NULL);
    return S;
}

static void run_ok(ppl_state *S, const char *src) {
    ck_assert_msg(ppl_load_string(S, "t.ppl", src) == PPL_OK, "%s\n%s", src, ppl_errmsg(S));
}

static const char *eval_ok(ppl_state *S, const char *src) {
    const char *echo;
    ck_assert_msg(ppl_eval(S, "t", src, &echo) == PPL_OK, "%s\n%s", src, ppl_errmsg(S));
    return echo;
}

static void fails(ppl_state *S, const char *src, const char *frag) {
    ck_assert_msg(ppl_load_string(S, "t.ppl", src) == PPL_ERR_RUNTIME, "%s ran", src);
    ck_assert_msg(strstr(ppl_errmsg(S), frag), "%s: message lacks \"%s\":\n%s", src, frag, ppl_errmsg(S));
}

START_TEST(language_mlp) {
    ppl_state *S = open_state();
    run_ok(S, "net = MLP(\"enc\", [3, 4, 2], activation=\"elu\", seed=7)\n"
              "x = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]\n"
              "model m(x) { return net(x) }\n"
              "tr = trace(m, {x: x})\n"
              "s = tr.sites\n"
              "W0 = s[\"enc.0.weight\"].value\n"
              "b0 = s[\"enc.0.bias\"].value\n"
              "W1 = s[\"enc.1.weight\"].value\n"
              "b1 = s[\"enc.1.bias\"].value\n"
              "by_hand = elu(x @ W0 + b0) @ W1 + b1\n");
    ck_assert_str_eq(eval_ok(S, "s[\"enc.0.weight\"].kind"), "param");
    ck_assert_str_eq(eval_ok(S, "str(net)"), "<MLP enc [3, 4, 2] elu>");
    ck_assert_str_eq(eval_ok(S, "W0.shape"), "[3, 4]");
    ck_assert_str_eq(eval_ok(S, "b1.shape"), "[2]");
    ck_assert_str_eq(eval_ok(S, "max(abs(net(x) - by_hand)) < 1e-12"), "1");
    ck_assert_str_eq(eval_ok(S, "sum(abs(b0))"), "0");            /* biases start at zero */
    ck_assert_str_eq(eval_ok(S, "len(s)"), "4");
    /* the same seed gives the same weights in another state; another seed others */
    const char *w = eval_ok(S, "str(W0[1, 2])");
    char want[64];
    snprintf(want, sizeof want, "%s", w);
    ppl_state *S2 = open_state();
    run_ok(S2, "net = MLP(\"enc\", [3, 4, 2], activation=\"elu\", seed=7)\n"
               "other = MLP(\"other\", [3, 4, 2], activation=\"elu\", seed=8)\n");
    ck_assert_str_eq(eval_ok(S2, "str(net([[0.5, -1.0, 2.0]])[0, 1]) == str(other([[0.5, -1.0, 2.0]])[0, 1])"), "0");
    ppl_close(S2);
    S2 = open_state();
    run_ok(S2, "net = MLP(\"enc\", [3, 4, 2], activation=\"elu\", seed=7)\n"
               "model m() { return net(zeros([1, 3])) }\n"
               "W0 = trace(m, {}).sites[\"enc.0.weight\"].value\n");
    ck_assert_str_eq(eval_ok(S2, "str(W0[1, 2])"), want);
    ppl_close(S2);
    ppl_close(S);
}
END_TEST

START_TEST(language_layers) {
    ppl_state *S = open_state();
    run_ok(S, "lin = Linear(3, 2, name=\"head\", bias=false)\n"
              "ln = LayerNorm(\"norm\", 3)\n"
              "x = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]\n"
              "model m(x) { return ln(x) + lin(x)[:, 0:1] }\n"
              "s = trace(m, {x: x}).sites\n");
    ck_assert_str_eq(eval_ok(S, "len(s)"), "3"); /* head.weight, norm.weight, norm.bias */
    ck_assert_str_eq(eval_ok(S, "s[\"norm.weight\"].value"), "[1, 1, 1]");
    ck_assert_str_eq(eval_ok(S, "max(abs(ln(x) - layer_norm(x))) < 1e-15"), "1");
    ck_assert_str_eq(eval_ok(S, "max(abs(mean(ln(x), axis=1)))  < 1e-12"), "1");
    ck_assert_str_eq(eval_ok(S, "round(mean(square(ln(x)), axis=1), 4)"), "[1, 1]");
    ck_assert_str_eq(eval_ok(S, "leaky_relu([-2.0, 3.0], 0.5)"), "[-1, 3]");
    ck_assert_str_eq(eval_ok(S, "elu(0.0)"), "0");
    ck_assert_str_eq(eval_ok(S, "xavier_uniform([4, 5], seed=2).shape"), "[4, 5]");
    ck_assert_str_eq(eval_ok(S, "kaiming_normal([4, 5], seed=2) == kaiming_normal([4, 5], seed=2)"),
                     "[[1, 1, 1, 1, 1],\n [1, 1, 1, 1, 1],\n [1, 1, 1, 1, 1],\n [1, 1, 1, 1, 1]]");
    ppl_close(S);
}
END_TEST

/* dropout is off at the top level, on with train=true (MC dropout) and
 * under svi (gradients recorded) */
START_TEST(language_dropout_and_svi) {
    ppl_state *S = open_state();
    run_ok(S, "net = MLP(\"d\", [2, 50, 1], dropout=0.5, seed=1)\n"
              "x = [[1.0, 2.0]]\n"
              "a = net(x)\n"
              "b = net(x)\n"
              "c = net(x, train=true)\n"
              "d = net(x, train=true)\n");
    ck_assert_str_eq(eval_ok(S, "a == b"), "[[1]]");
    ck_assert_str_eq(eval_ok(S, "c == d"), "[[0]]");
    ck_assert_str_eq(eval_ok(S, "a == c"), "[[0]]");
    /* maximum likelihood of y = 2 x with a linear net: the weight moves to 2 */
    run_ok(S, "lin = Linear(1, 1, name=\"fit\", seed=3)\n"
              "xs = reshape(linspace(-1, 1, 20), [20, 1])\n"
              "ys = 2 * reshape(xs, [20])\n"
              "model reg2(xs, ys) {\n"
              "    plate data(20) { observe ys ~ Normal(reshape(lin(xs), [20]), 0.1) }\n"
              "}\n"
              "guide none() { }\n"
              "fit = svi(reg2, none, {xs: xs, ys: ys}, steps=600, optim=Adam(lr=0.05), summary_samples=0)\n");
    ck_assert_str_eq(eval_ok(S, "round(fit.params[\"fit.weight\"], 2)"), "[[2]]");
    ck_assert_str_eq(eval_ok(S, "round(fit.params[\"fit.bias\"], 2)"), "[0]");
    ppl_close(S);
}
END_TEST

START_TEST(language_errors) {
    ppl_state *S = open_state();
    fails(S, "net = MLP(\"e\", [3, 4])\nnet([[1.0, 2.0]])\n", "e: the input has shape [1, 2]; its last dimension must be 3");
    fails(S, "n1 = MLP(\"same\", [3, 4])\nn2 = MLP(\"same\", [3, 5])\n",
          "parameter \"same.0.weight\" already exists with another shape; the layer needs [3, 5]");
    fails(S, "net = MLP(\"a\", [3, 4], activation=\"swish\")\n", "MLP: unknown activation \"swish\"");
    fails(S, "net = MLP(\"a\", [3])\n", "MLP: sizes must be a list of 2 to 65 layer widths");
    fails(S, "net = MLP(\"a\", [3, 0])\n", "MLP: every layer width must be a positive integer, got 0");
    fails(S, "net = MLP(\"a\", [3, 2], dropout=1)\n", "MLP: dropout must be in [0, 1), got 1");
    fails(S, "net = Linear(3, 2.5)\n", "Linear: out must be a positive integer, got 2.5");
    fails(S, "net = MLP(\"a\", [3, 2], init=\"he\")\n", "MLP: init must be \"xavier\", \"kaiming\" or \"auto\"");
    fails(S, "dropout([1.0], 1.5)\n", "dropout: p must be in [0, 1), got 1.5");
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("nn");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, layer_gradients);
    tcase_add_test(tc, big_mlp_is_a_few_tensor_ops);
    tcase_add_test(tc, initializers);
    tcase_add_test(tc, dropout_statistics);
    tcase_add_test(tc, language_mlp);
    tcase_add_test(tc, language_layers);
    tcase_add_test(tc, language_dropout_and_svi);
    tcase_add_test(tc, language_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
