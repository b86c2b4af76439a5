/* test_nn_bayes.c - Bayesian layers (stdlib/nn_bayes.c).
 *
 *  - the local reparameterization: moments against loops written out,
 *    gradients (x, weight loc and scale, bias loc and scale) against central
 *    differences, and the law of the drawn pre-activations (mean and
 *    variance of 40000 draws against the analytic values, and against
 *    x @ W + b with W drawn per row), tolerances from the Monte Carlo error;
 *  - in the language: the sample sites of BayesMLP / BayesLinear in a trace
 *    (names, shapes, kinds, priors), the log joint and its gradient against
 *    the same model written with sample statements (through the MCMC
 *    potential), the gradient of the whole ELBO (weight sampling and local
 *    reparameterization, BayesGuide's parameters) against central
 *    differences at a fixed seed, TraceMeanField_ELBO's closed-form KL for
 *    BayesGuide's sites, the local-reparameterization ELBO against
 *    the weight-sampling one (same expectation, smaller variance of the
 *    loss and of the gradient), autoguides, and the errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"
#include "nn_bayes.h"
#include "potential.h"
#include "vm_fixture.h"

static uint64_t lcg = 12345678987654321ULL;
static double urand(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

static bk_tensor *rand_tensor(bk_ctx *c, int nd, const int64_t *shape, double lo, double hi) {
    bk_tensor *t = bk_empty(c, BK_F64, nd, shape);
    for (int64_t i = 0; i < t->numel; i++) bk_data(t)[i] = lo + (hi - lo) * urand();
    return t;
}

/* ------------------------------------------ local reparameterization --- */

/* in: x, wloc, wscale, bloc, bscale, eps (bloc / bscale may be NULL) */
static bk_tensor *lr_out(bk_ctx *c, bk_tensor **in) { return nn_lr_linear(c, in[0], in[1], in[2], in[3], in[4], in[5]); }

static double weighted(bk_ctx *c, bk_tensor **in, const double *w) {
    bool g = bk_set_grad_enabled(c, false);
    bk_tensor *out = lr_out(c, in);
    bk_set_grad_enabled(c, g);
    ck_assert_msg(out != NULL, "%s", bk_errmsg(c));
    double s = 0;
    for (int64_t e = 0; e < out->numel; e++) s += bk_get(out, e) * w[e];
    bk_release(out);
    return s;
}

/* d sum(lr(in) * w) / d in[i] for the five inputs, tape against central
 * differences (eps fixed) */
static void check_lr_grad(const char *label, bk_tensor **in, bk_ctx *c) {
    for (int i = 0; i < 5; i++)
        if (in[i]) bk_set_requires_grad(in[i], true);
    bk_set_grad_enabled(c, true);
    bk_tensor *out = lr_out(c, in);
    ck_assert_msg(out != NULL, "%s: %s", label, bk_errmsg(c));
    double *w = malloc(sizeof(double) * (size_t)out->numel);
    for (int64_t e = 0; e < out->numel; e++) w[e] = -1 + 2 * urand();
    bk_tensor *wt = bk_from_f64(c, out->ndim, out->shape, w);
    bk_tensor *p = bk_mul(c, out, wt);
    bk_tensor *loss = bk_sum_all(c, p);
    ck_assert_msg(bk_backward(c, loss) == 0, "%s backward: %s", label, bk_errmsg(c));
    for (int i = 0; i < 5; i++) {
        bk_tensor *x = in[i];
        if (!x) continue;
        for (int64_t e = 0; e < x->numel; e++) {
            double x0 = bk_get(x, e), h = 1e-6 * fmax(1.0, fabs(x0));
            bk_set(x, e, x0 + h);
            double fp = weighted(c, in, w);
            bk_set(x, e, x0 - h);
            double fm = weighted(c, in, w);
            bk_set(x, e, x0);
            double fd = (fp - fm) / (2 * h), ad = x->grad ? bk_get(x->grad, e) : 0.0;
            ck_assert_msg(fabs(fd - ad) < 1e-6 * fmax(1.0, fabs(fd)), "%s: d/d input %d [%lld]: tape %.12g, fd %.12g",
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

START_TEST(lr_moments_and_gradients) {
    bk_ctx *c = bk_ctx_new(NULL);
    int64_t B = 3, I = 4, O = 2;
    bk_tensor *in[6];
    in[0] = rand_tensor(c, 2, (int64_t[]){B, I}, -1.5, 1.5);
    in[1] = rand_tensor(c, 2, (int64_t[]){I, O}, -1, 1);
    in[2] = rand_tensor(c, 2, (int64_t[]){I, O}, 0.2, 1);
    in[3] = rand_tensor(c, 1, (int64_t[]){O}, -1, 1);
    in[4] = rand_tensor(c, 1, (int64_t[]){O}, 0.2, 1);
    in[5] = rand_tensor(c, 2, (int64_t[]){B, O}, -2, 2);
    /* the moments against loops */
    bk_tensor *var = NULL, *mean = nn_lr_moments(c, in[0], in[1], in[2], in[3], in[4], &var);
    ck_assert_msg(mean && var, "%s", bk_errmsg(c));
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < O; o++) {
            double m = bk_get(in[3], o), v = bk_get(in[4], o) * bk_get(in[4], o);
            for (int64_t i = 0; i < I; i++) {
                double x = bk_get(in[0], b * I + i), s = bk_get(in[2], i * O + o);
                m += x * bk_get(in[1], i * O + o);
                v += x * x * s * s;
            }
            ck_assert(fabs(bk_get(mean, b * O + o) - m) < 1e-12);
            ck_assert(fabs(bk_get(var, b * O + o) - v - NN_LR_VAR_FLOOR) < 1e-12);
        }
    bk_release(mean);
    bk_release(var);
    check_lr_grad("lr with bias", in, c);
    /* a fixed bias (no bias noise), and no bias at all */
    bk_tensor *bs = in[4];
    in[4] = NULL;
    check_lr_grad("lr fixed bias", in, c);
    bk_tensor *bl = in[3];
    in[3] = NULL;
    check_lr_grad("lr no bias", in, c);
    in[3] = bl;
    in[4] = bs;
    /* more batch dimensions before [in] */
    bk_release(in[0]);
    bk_release(in[5]);
    in[0] = rand_tensor(c, 3, (int64_t[]){2, B, I}, -1.5, 1.5);
    in[5] = rand_tensor(c, 3, (int64_t[]){2, B, O}, -2, 2);
    check_lr_grad("lr 3-d input", in, c);
    /* a noise of the wrong shape is an error */
    bk_tensor *e = rand_tensor(c, 2, (int64_t[]){B, O + 1}, -1, 1);
    bk_tensor *x2 = rand_tensor(c, 2, (int64_t[]){B, I}, -1, 1);
    ck_assert(nn_lr_linear(c, x2, in[1], in[2], in[3], in[4], e) == NULL);
    ck_assert(strstr(bk_errmsg(c), "the noise has shape [3, 3], the pre-activations [3, 2]"));
    bk_release(e);
    bk_release(x2);
    for (int i = 0; i < 6; i++) bk_release(in[i]);
    bk_ctx_free(c);
}
END_TEST

/* 40000 pre-activations of one input row drawn by the local
 * reparameterization, and 40000 drawn as x @ W + b with W, b drawn per row:
 * both have the analytic mean and variance (tolerance 4.5 standard errors:
 * sd / sqrt(n) for the mean, var sqrt(2 / (n - 1)) for the variance, exact
 * for a Normal). */
START_TEST(lr_preactivation_law) {
    bk_ctx *c = bk_ctx_new(NULL);
    const int64_t I = 3, O = 4, n = 40000;
    bk_tensor *wl = rand_tensor(c, 2, (int64_t[]){I, O}, -1, 1);
    bk_tensor *ws = rand_tensor(c, 2, (int64_t[]){I, O}, 0.1, 0.8);
    bk_tensor *bl = rand_tensor(c, 1, (int64_t[]){O}, -1, 1);
    bk_tensor *bs = rand_tensor(c, 1, (int64_t[]){O}, 0.1, 0.5);
    const double xrow[3] = {0.7, -1.3, 2.1};
    bk_tensor *x = bk_empty(c, BK_F64, 2, (int64_t[]){n, I});
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < I; i++) bk_data(x)[r * I + i] = xrow[i];
    bk_rng rng;
    bk_rng_init(&rng, 42, 0);
    bk_tensor *eps = bk_rand_normal(c, &rng, 2, (int64_t[]){n, O});
    bk_tensor *lr = nn_lr_linear(c, x, wl, ws, bl, bs, eps);
    ck_assert_msg(lr != NULL, "%s", bk_errmsg(c));
    /* weight sampling: one draw of W and b per row */
    double *ref = malloc(sizeof(double) * (size_t)(n * O));
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < O; o++) {
            double a = bk_get(bl, o) + bk_get(bs, o) * bk_rng_normal(&rng);
            for (int64_t i = 0; i < I; i++)
                a += xrow[i] * (bk_get(wl, i * O + o) + bk_get(ws, i * O + o) * bk_rng_normal(&rng));
            ref[r * O + o] = a;
        }
    for (int64_t o = 0; o < O; o++) {
        double mu = bk_get(bl, o), v = bk_get(bs, o) * bk_get(bs, o);
        for (int64_t i = 0; i < I; i++) {
            mu += xrow[i] * bk_get(wl, i * O + o);
            v += xrow[i] * xrow[i] * bk_get(ws, i * O + o) * bk_get(ws, i * O + o);
        }
        for (int k = 0; k < 2; k++) {
            double s1 = 0, s2 = 0;
            for (int64_t r = 0; r < n; r++) {
                double a = k == 0 ? bk_get(lr, r * O + o) : ref[r * O + o];
                s1 += a;
                s2 += a * a;
            }
            double m = s1 / (double)n, vh = (s2 - (double)n * m * m) / (double)(n - 1);
            double tm = 4.5 * sqrt(v / (double)n), tv = 4.5 * v * sqrt(2.0 / (double)(n - 1));
            ck_assert_msg(fabs(m - mu) < tm, "%s unit %lld: mean %.6g, analytic %.6g (tol %.3g)",
                          k ? "weights" : "local", (long long)o, m, mu, tm);
            ck_assert_msg(fabs(vh - v) < tv, "%s unit %lld: variance %.6g, analytic %.6g (tol %.3g)",
                          k ? "weights" : "local", (long long)o, vh, v, tv);
        }
    }
    /* distinct rows are independent: the lag-one correlation of the draws */
    double sxy = 0, sx = 0, sxx = 0;
    for (int64_t r = 0; r + 1 < n; r++) {
        double a = bk_get(lr, r * O), b = bk_get(lr, (r + 1) * O);
        sxy += a * b;
        sx += a;
        sxx += a * a;
    }
    double m = sx / (double)(n - 1), corr = (sxy / (double)(n - 1) - m * m) / (sxx / (double)(n - 1) - m * m);
    ck_assert_msg(fabs(corr) < 4.5 / sqrt((double)n), "lag-one correlation %.4g", corr);
    free(ref);
    bk_release(x);
    bk_release(eps);
    bk_release(lr);
    bk_release(wl);
    bk_release(ws);
    bk_release(bl);
    bk_release(bs);
    bk_ctx_free(c);
}
END_TEST

/* ----------------------------------------------------------- language --- */

static void run(rt_vm *vm, const char *src) {
    rt_source *s = rt_source_new("t.ppl", src, strlen(src));
    ck_assert_msg(rt_run_source(vm, s, false, NULL) == 0, "%s\n%s", src, rt_vm_errmsg(vm));
    rt_source_release(s);
}

static double num(rt_vm *vm, const char *name) {
    rt_value *v = rt_global_get(vm, name);
    ck_assert_msg(v && v->tag == RT_TENSOR, "%s is not a tensor", name);
    return bk_item(v->u.t);
}

static void fails(rt_vm *vm, const char *src, const char *frag) {
    rt_source *s = rt_source_new("t.ppl", src, strlen(src));
    ck_assert_msg(rt_run_source(vm, s, false, NULL) != 0, "%s ran", src);
    rt_source_release(s);
    char *msg = rt_vm_errmsg(vm);
    ck_assert_msg(strstr(msg, frag), "%s: message lacks \"%s\":\n%s", src, frag, msg);
    free(msg);
    rt_vm_clear_error(vm);
}

static const char *SITES =
    "net = BayesMLP(\"net\", [2, 3, 1], activation=\"tanh\", prior=Laplace(0.0, 0.5), bias_prior=Normal(0.0, 2.0))\n"
    "head = BayesLinear(\"head\", 2, 2)\n"
    "nob = BayesLinear(\"nob\", 2, 1, bias=false)\n"
    "x = [[0.5, -1.0], [1.5, 0.25], [-0.3, 0.8]]\n"
    "model m(x) {\n"
    "    deterministic f = net(x)\n"
    "    deterministic g = head(x)\n"
    "    deterministic h = nob(x)\n"
    "}\n"
    "s = trace(m, {x: x}, seed=4).sites\n"
    "W0 = s[\"net.0.weight\"].value\n"
    "b0 = s[\"net.0.bias\"].value\n"
    "W1 = s[\"net.1.weight\"].value\n"
    "b1 = s[\"net.1.bias\"].value\n"
    "n_sites = len(s)\n"
    "kind_ok = s[\"net.0.weight\"].kind == \"sample\" and s[\"head.bias\"].kind == \"sample\"\n"
    "Wh = s[\"head.weight\"].value\n"
    "Wn = s[\"nob.weight\"].value\n"
    "lp_w = s[\"net.0.weight\"].log_prob - sum(Laplace(0.0, 0.5).log_prob(W0))\n"
    "lp_b = s[\"net.1.bias\"].log_prob - sum(Normal(0.0, 2.0).log_prob(b1))\n"
    "lp_h = s[\"head.weight\"].log_prob - sum(Normal(0.0, 1.0).log_prob(s[\"head.weight\"].value))\n"
    "fwd = max(abs(s[\"f\"].value - (tanh(x @ W0 + b0) @ W1 + b1)))\n"
    "r1 = str(net)\nr2 = str(nob)\nr3 = str(BayesGuide(net))\n";

static const char *str_global(rt_vm *vm, const char *name) {
    rt_value *v = rt_global_get(vm, name);
    ck_assert(v && v->tag == RT_STR);
    return ((rt_str *)v->u.o)->s;
}

START_TEST(trace_sites_and_priors) {
    rt_vm *vm = vm_running(SITES);
    /* net: 4 sites, head: 2, nob: 1 (no bias), 3 deterministic */
    ck_assert_int_eq((int)num(vm, "n_sites"), 10);
    ck_assert(num(vm, "kind_ok") == 1);
    static const char *const names[] = {"W0", "b0", "W1", "b1", "Wh", "Wn"};
    static const char *const shapes[] = {"[2, 3]", "[3]", "[3, 1]", "[1]", "[2, 2]", "[2, 1]"};
    for (int i = 0; i < 6; i++) {
        char buf[64];
        ck_assert_str_eq(bk_shape_str(rt_global_get(vm, names[i])->u.t, buf, sizeof buf), shapes[i]);
    }
    ck_assert_msg(fabs(num(vm, "lp_w")) < 1e-12, "prior log density off by %g", num(vm, "lp_w"));
    ck_assert_msg(fabs(num(vm, "lp_b")) < 1e-12, "bias prior log density off by %g", num(vm, "lp_b"));
    ck_assert_msg(fabs(num(vm, "lp_h")) < 1e-12, "default prior log density off by %g", num(vm, "lp_h"));
    ck_assert_msg(num(vm, "fwd") < 1e-12, "forward off by %g", num(vm, "fwd"));
    ck_assert_str_eq(str_global(vm, "r1"), "<BayesMLP net [2, 3, 1] tanh, prior Laplace>");
    ck_assert_str_eq(str_global(vm, "r2"), "<BayesLinear nob [2, 1], prior Normal>");
    ck_assert_str_eq(str_global(vm, "r3"), "<BayesGuide BayesGuide of net, init_scale 0.1>");
    rt_vm_free(vm);
}
END_TEST

/* The log joint of a BayesMLP regression, through the MCMC potential (the
 * sites in model order, unconstrained = constrained for real supports),
 * equals the same model written out with sample statements, and its
 * gradient matches central differences. */
static const char *TWO_MODELS =
    "net = BayesMLP(\"net\", [1, 3, 1], activation=\"tanh\", prior=Normal(0.0, 0.8))\n"
    "x = [[-1.0], [0.2], [0.9], [1.7]]\n"
    "y = [0.3, -0.1, 0.6, 1.2]\n"
    "model bayes(x, y) {\n"
    "    f = reshape(net(x), [4])\n"
    "    plate data(4) { observe y ~ Normal(f, 0.5) }\n"
    "}\n"
    "model hand(x, y) {\n"
    "    W0 = sample(\"net.0.weight\", Normal(zeros([1, 3]), 0.8).to_event(2))\n"
    "    b0 = sample(\"net.0.bias\", Normal(zeros(3), 0.8).to_event(1))\n"
    "    W1 = sample(\"net.1.weight\", Normal(zeros([3, 1]), 0.8).to_event(2))\n"
    "    b1 = sample(\"net.1.bias\", Normal(zeros(1), 0.8).to_event(1))\n"
    "    f = reshape(tanh(x @ W0 + b0) @ W1 + b1, [4])\n"
    "    plate data(4) { observe y ~ Normal(f, 0.5) }\n"
    "}\n";

START_TEST(log_density_and_gradient) {
    rt_vm *vm = vm_running(TWO_MODELS);
    rt_record *data = rt_record_new();
    rt_record_set(data, "x", rt_retain(*rt_global_get(vm, "x")));
    rt_record_set(data, "y", rt_retain(*rt_global_get(vm, "y")));
    inf_potential *pb, *ph;
    ck_assert_msg(inf_potential_init(vm, (rt_func *)rt_global_get(vm, "bayes")->u.o, data, (rt_loc){0}, &pb) == 0,
                  "%s", rt_vm_errmsg(vm));
    ck_assert_msg(inf_potential_init(vm, (rt_func *)rt_global_get(vm, "hand")->u.o, data, (rt_loc){0}, &ph) == 0,
                  "%s", rt_vm_errmsg(vm));
    ck_assert_int_eq(pb->dim, 10);
    ck_assert_int_eq(ph->dim, 10);
    double q[10], g[10], gh[10], lp, lph;
    for (int i = 0; i < 10; i++) q[i] = -1.2 + 0.27 * i;
    ck_assert(inf_potential_eval(pb, q, &lp, g, NULL) == 0);
    ck_assert(inf_potential_eval(ph, q, &lph, gh, NULL) == 0);
    ck_assert_msg(fabs(lp - lph) < 1e-12, "BayesMLP log joint %.15g, written out %.15g", lp, lph);
    for (int i = 0; i < 10; i++) {
        double h = 1e-6, qp[10], qm[10], lpp, lpm;
        memcpy(qp, q, sizeof q);
        memcpy(qm, q, sizeof q);
        qp[i] += h;
        qm[i] -= h;
        ck_assert(inf_potential_eval(pb, qp, &lpp, NULL, NULL) == 0);
        ck_assert(inf_potential_eval(pb, qm, &lpm, NULL, NULL) == 0);
        double fd = (lpp - lpm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dq[%d]: %.10g vs fd %.10g", i, g[i], fd);
        ck_assert(fabs(g[i] - gh[i]) < 1e-10);
    }
    inf_potential_free(pb);
    inf_potential_free(ph);
    rt_release(rt_obj_value(&data->h));
    rt_vm_free(vm);
}
END_TEST

/* The gradient elbo_grad reports for every parameter of BayesGuide (in
 * unconstrained space) against central differences of its loss at the
 * same seed: weight sampling and local reparameterization, Trace_ELBO and
 * TraceMeanField_ELBO (closed-form KL to the Normal prior). */
static const char *ELBO_MODELS =
    "nw = BayesMLP(\"net\", [2, 3, 1], activation=\"tanh\")\n"
    "nl = BayesMLP(\"net\", [2, 3, 1], activation=\"tanh\", local_reparam=true)\n"
    "q = BayesGuide(nw, init_scale=0.3, seed=3)\n"
    "x = [[-1.0, 0.5], [0.2, -0.3], [0.9, 1.1], [1.7, 0.0], [-0.4, -1.2]]\n"
    "y = [0.3, -0.1, 0.6, 1.2, -0.8]\n"
    "d = {x: x, y: y}\n"
    "model mw(x, y) {\n"
    "    f = reshape(nw(x), [5])\n"
    "    plate data(5) { observe y ~ Normal(f, 0.4) }\n"
    "}\n"
    "model ml(x, y) {\n"
    "    f = reshape(nl(x), [5])\n"
    "    plate data(5) { observe y ~ Normal(f, 0.4) }\n"
    "}\n"
    "guide g(x, y) { q() }\n"
    "mf = TraceMeanField_ELBO()\n";

static void check_elbo_grad(rt_vm *vm, const char *model, const char *loss) {
    char src[256];
    snprintf(src, sizeof src, "r = elbo_grad(%s, g, d, seed=7, loss=%s)\nL0 = r.loss\n", model, loss);
    run(vm, src);
    rt_value *gr = rt_record_get((rt_record *)rt_global_get(vm, "r")->u.o, "grads");
    ck_assert(gr && gr->tag == RT_RECORD);
    const rt_record *grads = (const rt_record *)gr->u.o;
    ck_assert_int_eq(grads->n, 8); /* locs and scales of 2 weights and 2 biases */
    snprintf(src, sizeof src, "Lx = elbo_grad(%s, g, d, seed=7, loss=%s).loss\n", model, loss);
    for (int k = 0; k < grads->n; k++) {
        rt_param *p = rt_param_find(vm, grads->keys[k]);
        ck_assert(p != NULL);
        bk_tensor *gt = grads->vals[k].u.t;
        double *u = bk_data(p->u);
        for (int64_t e = 0; e < p->u->numel; e++) {
            double u0 = u[e], h = 1e-5;
            u[e] = u0 + h;
            run(vm, src);
            double fp = num(vm, "Lx");
            u[e] = u0 - h;
            run(vm, src);
            double fm = num(vm, "Lx");
            u[e] = u0;
            double fd = (fp - fm) / (2 * h), ad = bk_get(gt, e);
            ck_assert_msg(fabs(fd - ad) < 1e-5 * fmax(1, fabs(fd)), "%s %s: d/d %s[%lld]: %.10g vs fd %.10g", model,
                          loss, grads->keys[k], (long long)e, ad, fd);
        }
    }
}

START_TEST(elbo_gradients) {
    rt_vm *vm = vm_running(ELBO_MODELS);
    check_elbo_grad(vm, "mw", "Trace_ELBO()");
    check_elbo_grad(vm, "ml", "Trace_ELBO()");
    check_elbo_grad(vm, "ml", "mf");
    /* the two estimators differ at one seed (the layer draws its own noise) */
    run(vm, "dl = elbo_grad(mw, g, d, seed=7).loss - elbo_grad(ml, g, d, seed=7).loss\n");
    ck_assert(fabs(num(vm, "dl")) > 1e-6);
    /* guide parameters: names, shapes, initial scale; the means start at
     * MLP("net", ...)'s Xavier draws (tanh), the bias means at zero */
    run(vm, "tr = trace(g, d, seed=1).sites\n"
            "mlp = MLP(\"net\", [2, 3, 1], activation=\"tanh\", seed=3)\n"
            "model det() { return mlp(x) }\n"
            "w0 = trace(det, {}).sites[\"net.0.weight\"].value\n"
            "w_init = max(abs(tr[\"BayesGuide.locs.net.0.weight\"].value - w0))\n"
            "b_init = max(abs(tr[\"BayesGuide.locs.net.1.bias\"].value))\n"
            "s_init = max(abs(tr[\"BayesGuide.scales.net.0.weight\"].value - 0.3))\n");
    ck_assert(num(vm, "w_init") == 0);
    ck_assert(num(vm, "b_init") == 0);
    ck_assert(num(vm, "s_init") < 1e-15);
    /* TraceMeanField_ELBO takes BayesGuide's KL to the Normal prior in
     * closed form: without a likelihood the loss is the KL itself, the same
     * at every seed */
    run(vm, "model prior_only(x, y) { f = nw(x) }\n"
            "def kl(site) {\n"
            "    m = tr[\"BayesGuide.locs.\" + site].value\n"
            "    v = tr[\"BayesGuide.scales.\" + site].value\n"
            "    return sum(-log(v) + (v * v + m * m) / 2 - 0.5)\n"
            "}\n"
            "kl_sum = kl(\"net.0.weight\") + kl(\"net.0.bias\") + kl(\"net.1.weight\") + kl(\"net.1.bias\")\n"
            "k1 = elbo_grad(prior_only, g, d, seed=1, loss=mf).loss - kl_sum\n"
            "k2 = elbo_grad(prior_only, g, d, seed=2, loss=mf).loss - kl_sum\n"
            "k3 = elbo_grad(prior_only, g, d, seed=2).loss - kl_sum\n");
    ck_assert_msg(fabs(num(vm, "k1")) < 1e-10 && fabs(num(vm, "k2")) < 1e-10, "KL off by %g, %g", num(vm, "k1"),
                  num(vm, "k2"));
    ck_assert(fabs(num(vm, "k3")) > 1e-6); /* Trace_ELBO: a Monte Carlo estimate */
    rt_vm_free(vm);
}
END_TEST

/* Same expectation, smaller variance: M = 400 seeded estimates of the loss
 * (TraceMeanField_ELBO and Trace_ELBO) and of a gradient, weight sampling
 * (mw) against the local reparameterization (ml) on the same seeds.  The
 * paired difference of the losses has mean zero within 4 standard errors;
 * the variances drop (they do by 10 and 40 times here; the test asks for 3). */
static const char *VARIANCE =
    "H = 10\n"
    "N = 100\n"
    "x = reshape(linspace(-2, 2, N), [N, 1])\n"
    "y = sin(2 * reshape(x, [N]))\n"
    "nw = BayesMLP(\"net\", [1, H, 1], activation=\"tanh\")\n"
    "nl = BayesMLP(\"net\", [1, H, 1], activation=\"tanh\", local_reparam=true)\n"
    "q = BayesGuide(nw, init_scale=0.2)\n"
    "model mw(x, y) {\n"
    "    f = reshape(nw(x), [N])\n"
    "    plate data(N) { observe y ~ Normal(f, 0.3) }\n"
    "}\n"
    "model ml(x, y) {\n"
    "    f = reshape(nl(x), [N])\n"
    "    plate data(N) { observe y ~ Normal(f, 0.3) }\n"
    "}\n"
    "guide g(x, y) { q() }\n"
    "d = {x: x, y: y}\n"
    "M = 400\n"
    "def estimates(loss) {\n"
    "    lw = zeros(M)\n"
    "    ll = zeros(M)\n"
    "    gw = zeros(M)\n"
    "    gl = zeros(M)\n"
    "    for s in range(M) {\n"
    "        a = elbo_grad(mw, g, d, seed=s + 1, loss=loss)\n"
    "        b = elbo_grad(ml, g, d, seed=s + 1, loss=loss)\n"
    "        lw[s] = a.loss\n"
    "        ll[s] = b.loss\n"
    "        gw[s] = sum(a.grads[\"BayesGuide.locs.net.1.weight\"])\n"
    "        gl[s] = sum(b.grads[\"BayesGuide.locs.net.1.weight\"])\n"
    "    }\n"
    "    dd = lw - ll\n"
    "    v = [mean(square(lw - mean(lw))), mean(square(ll - mean(ll))), mean(square(gw - mean(gw))),\n"
    "         mean(square(gl - mean(gl)))]\n"
    "    return {z: mean(dd) / sqrt(mean(square(dd - mean(dd))) / M),\n"
    "            zg: (mean(gw) - mean(gl)) / sqrt((v[2] + v[3]) / M),\n"
    "            loss_ratio: v[1] / v[0], grad_ratio: v[3] / v[2]}\n"
    "}\n"
    "e1 = estimates(TraceMeanField_ELBO())\n"
    "e2 = estimates(Trace_ELBO())\n"
    "z1 = e1.z\nzg1 = e1.zg\nr1 = e1.loss_ratio\nrg1 = e1.grad_ratio\n"
    "z2 = e2.z\nr2 = e2.loss_ratio\n";

START_TEST(lr_elbo_unbiased_lower_variance) {
    rt_vm *vm = vm_running(VARIANCE);
    ck_assert_msg(fabs(num(vm, "z1")) < 4, "mean-field ELBO: paired difference %.3g standard errors", num(vm, "z1"));
    ck_assert_msg(fabs(num(vm, "zg1")) < 4, "gradient means differ by %.3g standard errors", num(vm, "zg1"));
    ck_assert_msg(fabs(num(vm, "z2")) < 4, "Trace_ELBO: paired difference %.3g standard errors", num(vm, "z2"));
    ck_assert_msg(num(vm, "r1") < 1.0 / 3, "loss variance ratio %.3g", num(vm, "r1"));
    ck_assert_msg(num(vm, "rg1") < 1.0 / 3, "gradient variance ratio %.3g", num(vm, "rg1"));
    ck_assert_msg(num(vm, "r2") < 1.0 / 3, "Trace_ELBO loss variance ratio %.3g", num(vm, "r2"));
    rt_vm_free(vm);
}
END_TEST

/* Autoguides and outside training: AutoNormal / AutoDiagonalNormal fit the
 * sites; a local_reparam network uses its drawn weights outside svi (a
 * trace's deterministic output is the network at the traced weights). */
START_TEST(autoguides_and_prediction) {
    rt_vm *vm = vm_running(
        "net = BayesMLP(\"net\", [1, 4, 1], activation=\"tanh\", local_reparam=true)\n"
        "lin = BayesMLP(\"lin\", [1, 4, 1], activation=\"tanh\")\n"
        "x = reshape(linspace(-1, 1, 8), [8, 1])\n"
        "y = reshape(x, [8])\n"
        "model m(x, y) {\n"
        "    deterministic f = reshape(lin(x), [8])\n"
        "    plate data(8) { observe y ~ Normal(f, 0.2) }\n"
        "}\n"
        "model ml(x, y) {\n"
        "    deterministic f = reshape(net(x), [8])\n"
        "    plate data(8) { observe y ~ Normal(f, 0.2) }\n"
        "}\n"
        "f1 = svi(m, AutoNormal(m), {x: x, y: y}, steps=5, seed=1, summary_samples=0)\n"
        "f2 = svi(m, AutoDiagonalNormal(m), {x: x, y: y}, steps=5, seed=1, summary_samples=0)\n"
        "ok1 = f1.params[\"AutoNormal.locs.lin.0.weight\"].shape == [1, 4]\n"
        "ok2 = f2.params[\"AutoDiagonalNormal.scales.lin.1.bias\"].shape == [1]\n"
        "s = trace(ml, {x: x, y: y}, seed=2).sites\n"
        "W0 = s[\"net.0.weight\"].value\nb0 = s[\"net.0.bias\"].value\n"
        "W1 = s[\"net.1.weight\"].value\nb1 = s[\"net.1.bias\"].value\n"
        "off = max(abs(s[\"f\"].value - reshape(tanh(x @ W0 + b0) @ W1 + b1, [8])))\n");
    ck_assert(num(vm, "ok1") == 1);
    ck_assert(num(vm, "ok2") == 1);
    ck_assert(num(vm, "off") < 1e-12);
    rt_vm_free(vm);
}
END_TEST

START_TEST(errors) {
    rt_vm *vm = vm_running("x = [[1.0, 2.0]]\n");
    fails(vm, "n = BayesMLP(\"e\", [3, 4])\nmodel m() { return n(x) }\ntrace(m, {})\n",
          "e: the input has shape [1, 2]; its last dimension must be 3");
    fails(vm, "n = BayesMLP(\"e\", [2, 4], prior=1.0)\n",
          "BayesMLP: prior must be a distribution such as Normal(0, 1), got a tensor");
    fails(vm, "n = BayesMLP(\"e\", [2, 4], prior=HalfNormal(1.0))\n",
          "BayesMLP: prior must be a distribution over the real line (weights are real); HalfNormal has support positive");
    fails(vm, "n = BayesMLP(\"e\", [2, 4], prior=Normal(zeros(2), 1.0).to_event(1))\n",
          "BayesMLP: prior must be univariate");
    fails(vm, "n = BayesMLP(\"e\", [2, 4], prior=Normal(zeros(3), 1.0))\n",
          "BayesMLP: the prior's batch shape [3] does not broadcast to the shape [2, 4] of site \"e.0.weight\"");
    fails(vm, "n = BayesLinear(\"e\", 2, 4, prior=Normal(zeros([2, 4]), 1.0))\n",
          "the prior's batch shape [2, 4] does not broadcast to the shape [4] of site \"e.bias\" (give the biases "
          "their own bias_prior=)");
    fails(vm, "n = BayesMLP(\"e\", [2, 4], activation=\"swish\")\n", "BayesMLP: unknown activation \"swish\"");
    fails(vm, "n = BayesMLP(\"e\", [2])\n", "BayesMLP: sizes must be a list of 2 to 65 layer widths");
    fails(vm, "n = BayesLinear(\"e\", 2, 0)\n", "BayesLinear: out must be a positive integer, got 0");
    fails(vm, "q = BayesGuide(MLP(\"p\", [2, 2]))\n",
          "BayesGuide: the argument must be a Bayesian network made by BayesMLP or BayesLinear");
    fails(vm, "n = BayesMLP(\"e\", [2, 4])\nq = BayesGuide(n, init_scale=0)\n",
          "BayesGuide: init_scale must be a positive number, got 0");
    /* a network called twice in one run draws its sites twice */
    fails(vm, "n = BayesMLP(\"t\", [2, 1])\nmodel m() { a = n(x)\n b = n(x) }\ntrace(m, {})\n",
          "site \"t.0.weight\" appears twice in one run");
    /* local reparameterization needs the guide's Normal */
    fails(vm, "n = BayesMLP(\"lr\", [2, 1], local_reparam=true)\n"
              "model m(x) { observe(\"o\", Normal(n(x)[0, 0], 1.0), 1.0) }\n"
              "elbo_grad(m, AutoNormal(m), {x: x})\n",
          "site \"lr.0.weight\": local_reparam=true needs the guide to draw it from a Normal (use BayesGuide(net)); "
          "the guide's site carries no distribution");
    fails(vm, "n = BayesMLP(\"lr2\", [2, 1], local_reparam=true)\n"
              "model m(x) { observe(\"o\", Normal(n(x)[0, 0], 1.0), 1.0) }\n"
              "guide gg(x) {\n"
              "    sample(\"lr2.0.weight\", Laplace(zeros([2, 1]), 1.0).to_event(2))\n"
              "    sample(\"lr2.0.bias\", Normal(zeros(1), 1.0).to_event(1))\n"
              "}\n"
              "elbo_grad(m, gg, {x: x})\n",
          "the guide draws it from Laplace");
    /* a guide value of the wrong shape */
    fails(vm, "n = BayesMLP(\"sh\", [2, 1])\n"
              "model m(x) { observe(\"o\", Normal(n(x)[0, 0], 1.0), 1.0) }\n"
              "guide gg(x) {\n"
              "    sample(\"sh.0.weight\", Normal(zeros([2, 2]), 1.0).to_event(2))\n"
              "    sample(\"sh.0.bias\", Normal(zeros(1), 1.0).to_event(1))\n"
              "}\n"
              "elbo_grad(m, gg, {x: x})\n",
          "site \"sh.0.weight\"");
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("nn_bayes");
    TCase *tc = tcase_create("nn_bayes");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lr_moments_and_gradients);
    tcase_add_test(tc, lr_preactivation_law);
    tcase_add_test(tc, trace_sites_and_priors);
    tcase_add_test(tc, log_density_and_gradient);
    tcase_add_test(tc, elbo_gradients);
    tcase_add_test(tc, lr_elbo_unbiased_lower_variance);
    tcase_add_test(tc, autoguides_and_prediction);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
