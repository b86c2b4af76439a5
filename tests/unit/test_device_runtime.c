/* test_device_runtime.c - models run on the backend's default device.
 *
 * With the default device set to the mock device (mock_device.h: host
 * memory, every op through the CPU fallback), the temperature model's SVI
 * and a short NUTS run of eight schools must give the CPU run's numbers
 * exactly (the fallback runs the CPU kernels on copies, so any difference
 * is a tensor the runtime made on the CPU and an op mixed, or a value lost
 * on the way), and the parameter store, data and draws must live on the
 * mock device.  Then the script surface: to() and device(), the device=
 * option, mixed-device and unknown-device errors with their locations. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_io.h"
#include "infer.h"
#include "ppl.h"
#include "mock_device.h"
#include "vm.h"

/* A VM with the inference built-ins and default device dev, after running
 * src (NULL on a failed run, with the message in err). */
static rt_vm *run_on(const bk_device *dev, const char *src, char *err, size_t n) {
    rt_vm *vm = rt_vm_new(NULL);
    ck_assert(vm && inf_register_builtins(vm) == 0);
    bk_set_default_device(vm->bk, dev);
    rt_source *s = rt_source_new("m.ppl", src, strlen(src));
    int rc = rt_run_source(vm, s, false, NULL);
    rt_source_release(s);
    if (rc) {
        char *m = rt_vm_errmsg(vm); /* malloc'd */
        snprintf(err, n, "%s", m ? m : "out of memory");
        free(m);
        rt_vm_free(vm);
        return NULL;
    }
    return vm;
}

static void discard(void *ud, const char *text, size_t len) {
    (void)ud;
    (void)text;
    (void)len;
}

/* run_on, with what the program prints discarded */
static rt_vm *run_quiet(const bk_device *dev, const char *src, char *err, size_t n) {
    rt_vm *vm = rt_vm_new(NULL);
    ck_assert(vm && inf_register_builtins(vm) == 0);
    vm->out = discard;
    bk_set_default_device(vm->bk, dev);
    rt_source *s = rt_source_new("m.ppl", src, strlen(src));
    int rc = rt_run_source(vm, s, false, NULL);
    rt_source_release(s);
    if (rc) {
        char *m = rt_vm_errmsg(vm); /* malloc'd */
        snprintf(err, n, "%s", m ? m : "out of memory");
        free(m);
        rt_vm_free(vm);
        return NULL;
    }
    return vm;
}

static rt_vm *run_ok(const bk_device *dev, const char *src) {
    char err[1024];
    rt_vm *vm = run_on(dev, src, err, sizeof err);
    ck_assert_msg(vm, "%s", err);
    return vm;
}

static bk_tensor *global_tensor(rt_vm *vm, const char *name) {
    rt_value *v = rt_global_get(vm, name);
    ck_assert_msg(v && v->tag == RT_TENSOR, "global %s is not a tensor", name);
    return v->u.t;
}

/* The globals `names` of the two runs hold equal tensors (to 1e-12). */
static void assert_same(rt_vm *a, rt_vm *b, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        bk_tensor *x = global_tensor(a, names[i]), *y = global_tensor(b, names[i]);
        ck_assert_int_eq(x->numel, y->numel);
        ck_assert(x->numel > 0);
        for (int64_t k = 0; k < x->numel; k++) {
            double u = bk_get(x, k), v = bk_get(y, k);
            ck_assert_msg(fabs(u - v) <= 1e-12 * fmax(1.0, fabs(u)), "%s[%lld]: cpu %.17g, mock %.17g", names[i],
                          (long long)k, u, v);
        }
    }
}

static const char TEMPERATURE[] =
    "model weather(sensor) {\n"
    "    sample temp ~ Normal(15.0, 2.0)\n"
    "    observe sensor ~ Normal(temp, 1.0)\n"
    "}\n"
    "guide weather_guide(sensor) {\n"
    "    param loc = 15.0\n"
    "    param scale: positive = 1.0\n"
    "    sample temp ~ Normal(loc, scale)\n"
    "}\n"
    "fit = svi(weather, weather_guide, {sensor: 18.0}, steps=300, optim=Adam(lr=0.05), seed=1)\n"
    "loc = fit.params.loc\n"
    "scale = fit.params.scale\n"
    "losses = fit.losses\n";

START_TEST(svi_temperature_same_on_mock) {
    rt_vm *c = run_ok(&bk_cpu_device, TEMPERATURE), *m = run_ok(&mock_device, TEMPERATURE);
    static const char *const names[] = {"loc", "scale", "losses", NULL};
    assert_same(c, m, names);
    ck_assert_int_eq(m->params.n, 2);
    for (int i = 0; i < m->params.n; i++) {
        ck_assert_ptr_eq(bk_tensor_device(m->params.items[i].u), &mock_device);
        ck_assert_ptr_eq(bk_tensor_device(c->params.items[i].u), &bk_cpu_device);
    }
    ck_assert(fabs(bk_item(global_tensor(m, "loc")) - 17.4) < 0.5); /* it did learn */
    rt_vm_free(c);
    rt_vm_free(m);
}
END_TEST

/* A vector guide: parameters of shape [3] on the device, learned the same. */
static const char VECTOR_SVI[] =
    "y = [0.5, -1.0, 2.0]\n"
    "model m(y) {\n"
    "    sample z ~ Normal(zeros(3), 1.0)\n"
    "    observe y ~ Normal(z, 0.5)\n"
    "}\n"
    "guide g(y) {\n"
    "    param loc = zeros(3)\n"
    "    param scale: positive = ones(3)\n"
    "    sample z ~ Normal(loc, scale)\n"
    "}\n"
    "fit = svi(m, g, {y: y}, steps=200, optim=Adam(lr=0.05), seed=2)\n"
    "loc = fit.params.loc\n"
    "scale = fit.params.scale\n"
    "draw = Normal(zeros(3), 1.0).sample()\n"
    "where_y = device(y)\n"
    "where_draw = device(draw)\n";

static const char *global_str(rt_vm *vm, const char *name) {
    rt_value *v = rt_global_get(vm, name);
    ck_assert_msg(v && v->tag == RT_STR, "global %s is not a string", name);
    return ((rt_str *)v->u.o)->s;
}

START_TEST(svi_vector_same_on_mock) {
    rt_vm *c = run_ok(&bk_cpu_device, VECTOR_SVI), *m = run_ok(&mock_device, VECTOR_SVI);
    static const char *const names[] = {"loc", "scale", "draw", NULL};
    assert_same(c, m, names);
    ck_assert_str_eq(global_str(m, "where_y"), "mock");
    ck_assert_str_eq(global_str(m, "where_draw"), "mock");
    ck_assert_str_eq(global_str(c, "where_y"), "cpu");
    for (int i = 0; i < m->params.n; i++) ck_assert_ptr_eq(bk_tensor_device(m->params.items[i].u), &mock_device);
    rt_vm_free(c);
    rt_vm_free(m);
}
END_TEST

static const char SCHOOLS[] =
    "model schools(J, y, sigma) {\n"
    "    sample mu ~ Normal(0.0, 5.0)\n"
    "    sample tau ~ HalfCauchy(5.0)\n"
    "    plate school(J) {\n"
    "        sample theta_raw ~ Normal(0.0, 1.0)\n"
    "        deterministic theta = mu + tau * theta_raw\n"
    "        observe y ~ Normal(theta, sigma)\n"
    "    }\n"
    "}\n"
    "data = {J: 8, y: [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],\n"
    "        sigma: [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]}\n"
    "post = mcmc(schools, data, kernel=NUTS(target_accept=0.8), warmup=0, samples=15, chains=1, seed=1)\n"
    "mu = post.mu\n"
    "tau = post.tau\n"
    "theta = post.theta_raw\n"
    "where_sigma = device(data.sigma)\n";

/* No warmup: the step size search and 15 NUTS transitions, bit for bit.
 * (With adaptation windows the two runs part in the last bits after a few
 * iterations: the fallback hands the CPU kernels contiguous copies where
 * the CPU run passes broadcast views, which some kernels round differently
 * by an ulp, and NUTS trajectories amplify that; it is not a placement
 * error, which would fail the run.) */
START_TEST(nuts_schools_same_on_mock) {
    rt_vm *c = run_ok(&bk_cpu_device, SCHOOLS), *m = run_ok(&mock_device, SCHOOLS);
    static const char *const names[] = {"mu", "tau", "theta", NULL};
    assert_same(c, m, names);
    ck_assert_str_eq(global_str(m, "where_sigma"), "mock");
    rt_vm_free(c);
    rt_vm_free(m);
}
END_TEST

/* The exact-inference built-ins of a DiscreteHMM (src/infer/hmm.c) compute
 * on the host; their results go to the run's device, as the runtime's
 * other tensors do, with the CPU run's values.  Batched (lengths=) and
 * single sequences, Categorical and Normal emissions, Baum-Welch. */
static const char HMM_RESULTS[] =
    "h = DiscreteHMM([0.6, 0.4], [[0.9, 0.1], [0.2, 0.8]],\n"
    "                Categorical(probs=[[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]]))\n"
    "y = [0, 1, 2, 2, 1, 0, 2]\n"
    "vit = hmm_viterbi(h, y)\n"
    "path = vit.path\n"
    "marg = hmm_marginals(h, y)\n"
    "states = hmm_sample_states(h, y)\n"
    "filt = hmm_filter(h, y)\n"
    "hb = DiscreteHMM([0.6, 0.4], [[0.9, 0.1], [0.2, 0.8]], Normal([0.0, 2.0], 1.0),\n"
    "                 lengths=[3, 2])\n"
    "yb = [[0.1, 1.9, 2.2], [-0.3, 0.4, 0.0]]\n"
    "bpath = hmm_viterbi(hb, yb).path\n"
    "blp = hmm_viterbi(hb, yb).log_prob\n"
    "bmarg = hmm_marginals(hb, yb)\n"
    "fit = baum_welch(h, [y, [2, 2, 1, 0, 1, 1, 0]], iters=5)\n"
    "init = fit.init\n"
    "trans = fit.trans\n"
    "probs = fit.probs\n"
    "lls = fit.log_likelihoods\n"
    "hinit = exp(fit.hmm.log_prob([0, 1, 2, 2]))\n"
    "fitn = baum_welch(hb, yb, iters=3)\n"
    "loc = fitn.loc\n"
    "scale = fitn.scale\n"
    "where = [device(path), device(marg), device(states), device(bpath),\n"
    "         device(blp), device(bmarg), device(init), device(trans), device(probs),\n"
    "         device(lls), device(hinit), device(loc), device(scale), device(y)]\n";

START_TEST(hmm_results_on_mock) {
    rt_vm *c = run_ok(&bk_cpu_device, HMM_RESULTS), *m = run_ok(&mock_device, HMM_RESULTS);
    static const char *const names[] = {"path", "marg", "states", "bpath", "blp", "bmarg",
                                        "init", "trans", "probs", "lls", "loc", "scale", NULL};
    assert_same(c, m, names);
    for (int i = 0; names[i]; i++) {
        ck_assert_msg(bk_tensor_device(global_tensor(m, names[i])) == &mock_device, "%s is not on the mock device",
                      names[i]);
        ck_assert_msg(bk_tensor_device(global_tensor(c, names[i])) == &bk_cpu_device, "%s is not on the cpu", names[i]);
    }
    /* the script's view: device(result) == device(y) for all of them */
    rt_value *w = rt_global_get(m, "where");
    ck_assert(w && w->tag == RT_LIST);
    const rt_list *l = (const rt_list *)w->u.o;
    ck_assert_int_eq(l->n, 14);
    for (int64_t i = 0; i < l->n; i++) {
        ck_assert(l->items[i].tag == RT_STR);
        ck_assert_str_eq(((rt_str *)l->items[i].u.o)->s, "mock");
    }
    /* hmm_filter's Categorical has its probabilities there */
    rt_value *fc = rt_global_get(c, "filt"), *fm = rt_global_get(m, "filt");
    ck_assert(fc && fm && fc->tag == RT_DIST && fm->tag == RT_DIST);
    bk_tensor *pc = ((sl_dist *)fc->u.o)->p[0], *pm = ((sl_dist *)fm->u.o)->p[0];
    ck_assert_ptr_eq(bk_tensor_device(pm), &mock_device);
    ck_assert_int_eq(pc->numel, 2);
    for (int k = 0; k < 2; k++) ck_assert_double_eq_tol(bk_get(pc, k), bk_get(pm, k), 1e-12);
    ck_assert_double_eq_tol(bk_get(pm, 0) + bk_get(pm, 1), 1.0, 1e-12);
    /* the fitted model evaluates there (its log_prob's codes join its tensors) */
    ck_assert_ptr_eq(bk_tensor_device(global_tensor(m, "hinit")), &mock_device);
    ck_assert_double_eq_tol(bk_item(global_tensor(m, "hinit")), bk_item(global_tensor(c, "hinit")), 1e-12);
    rt_vm_free(c);
    rt_vm_free(m);
}
END_TEST

START_TEST(to_round_trip) {
    rt_vm *m = run_ok(&mock_device, "x = [1.5, -2.0, 3.25]\n"
                                    "h = to(x, \"cpu\")\n"
                                    "back = to(h, device=\"mock\")\n"
                                    "same = to(x, \"mock\")\n"
                                    "a = device(x)\n"
                                    "b = device(h)\n"
                                    "c = device(back)\n"
                                    "s = sum(back * 2.0)\n");
    ck_assert_str_eq(global_str(m, "a"), "mock");
    ck_assert_str_eq(global_str(m, "b"), "cpu");
    ck_assert_str_eq(global_str(m, "c"), "mock");
    bk_tensor *h = global_tensor(m, "h"), *back = global_tensor(m, "back");
    ck_assert_ptr_eq(bk_tensor_device(h), &bk_cpu_device);
    ck_assert_ptr_eq(bk_tensor_device(back), &mock_device);
    ck_assert_ptr_eq(global_tensor(m, "same"), global_tensor(m, "x")); /* already there: no copy */
    static const double want[] = {1.5, -2.0, 3.25};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq(bk_get(h, i), want[i]);
        ck_assert_double_eq(bk_get(back, i), want[i]);
    }
    ck_assert_double_eq(bk_item(global_tensor(m, "s")), 5.5);
    rt_vm_free(m);
    /* on the CPU, to(x, "cpu") is x */
    rt_vm *c = run_ok(&bk_cpu_device, "x = [1.0, 2.0]\ny = to(x, \"cpu\")\nd = device(y)\n");
    ck_assert_ptr_eq(global_tensor(c, "x"), global_tensor(c, "y"));
    ck_assert_str_eq(global_str(c, "d"), "cpu");
    rt_vm_free(c);
}
END_TEST

/* err holds the run's message: at line:col, saying what */
static void assert_fails(const bk_device *dev, const char *src, const char *where, const char *what) {
    char err[1024];
    rt_vm *vm = run_on(dev, src, err, sizeof err);
    ck_assert_msg(!vm, "the program ran");
    ck_assert_msg(strstr(err, where), "no \"%s\" in: %s", where, err);
    ck_assert_msg(strstr(err, what), "no \"%s\" in: %s", what, err);
}

START_TEST(device_errors) {
    /* mixing: the message names the op, both devices and the fix; the
     * location is the expression's */
    assert_fails(&mock_device, "x = [1.0, 2.0]\ny = to(x, \"cpu\")\nz = x + y\n", "m.ppl:3:",
                 "inputs are on different devices (mock and cpu");
    assert_fails(&mock_device, "x = [1.0, 2.0]\ny = to(x, \"cpu\")\nz = x + y\n", "m.ppl:3:", "to()");
    /* a 0-d CPU constant joins any device */
    rt_vm *m = run_ok(&mock_device, "x = [1.0, 2.0]\nz = sum(x * to(3.0, \"cpu\"))\n");
    ck_assert_double_eq(bk_item(global_tensor(m, "z")), 9.0);
    rt_vm_free(m);
    /* unknown names, at the argument, with a caret line */
    assert_fails(&bk_cpu_device, "x = [1.0]\ny = to(x, \"gpu\")\n", "m.ppl:2:11", "unknown device \"gpu\" (devices: cpu, cuda)");
    assert_fails(&bk_cpu_device, "x = [1.0]\ny = to(x, \"gpu\")\n", "^", "to:");
    assert_fails(&bk_cpu_device, "x = [1.0]\ny = to(x, 3)\n", "m.ppl:2:", "string");
    assert_fails(&bk_cpu_device, "x = device(\"cpu\")\n", "m.ppl:1:", "tensor");
#ifndef PPL_CUDA
    assert_fails(&bk_cpu_device, "x = to([1.0], \"cuda\")\n", "m.ppl:1:", "ppl was built without CUDA support");
#endif
}
END_TEST

static const char OPT_SVI[] =
    "model m(y) {\n"
    "    sample z ~ Normal(0.0, 1.0)\n"
    "    observe y ~ Normal(z, 0.5)\n"
    "}\n"
    "guide g(y) {\n"
    "    param loc = zeros(2)\n"
    "    sample z ~ Normal(loc, 1.0)\n"
    "}\n";

START_TEST(device_option) {
    char src[2048];
    /* device="cpu" in a run whose default is the mock: the parameters and
     * the data copy go on the CPU, the default comes back afterwards */
    snprintf(src, sizeof src, "%sy = [0.5, 1.0]\nfit = svi(m, g, {y: y}, steps=20, seed=1, device=\"cpu\")\n"
             "loc = fit.params.loc\nafter = device(zeros(2))\nwhere_y = device(y)\n", OPT_SVI);
    rt_vm *m = run_ok(&mock_device, src);
    ck_assert_ptr_eq(bk_tensor_device(m->params.items[0].u), &bk_cpu_device);
    ck_assert_str_eq(global_str(m, "after"), "mock");
    ck_assert_str_eq(global_str(m, "where_y"), "mock"); /* the caller's data is not moved */
    rt_vm *c = run_ok(&bk_cpu_device, src);
    static const char *const names[] = {"loc", NULL};
    assert_same(c, m, names);
    rt_vm_free(c);
    rt_vm_free(m);
    /* mcmc(device=) and predictive(device=) take it too */
    rt_vm *k = run_ok(&mock_device, "model n(y) {\n    sample mu ~ Normal(0.0, 1.0)\n    observe y ~ Normal(mu, 1.0)\n}\n"
                                     "post = mcmc(n, {y: [0.1, 0.2]}, warmup=10, samples=5, chains=1, seed=1, device=\"cpu\")\n"
                                     "pred = predictive(n, post, {y: [0.1, 0.2]}, device=\"mock\")\n"
                                     "mu = post.mu\n");
    ck_assert_int_eq(global_tensor(k, "mu")->numel, 5);
    rt_vm_free(k);
    snprintf(src, sizeof src, "%sfit = svi(m, g, {y: [1.0, 2.0]}, steps=2, device=\"tpu\")\n", OPT_SVI);
    assert_fails(&bk_cpu_device, src, "m.ppl:9:", "svi: unknown device \"tpu\"");
    snprintf(src, sizeof src, "%sfit = svi(m, g, {y: [1.0, 2.0]}, steps=2, device=1)\n", OPT_SVI);
    assert_fails(&bk_cpu_device, src, "m.ppl:9:", "device must be a string");
}
END_TEST

START_TEST(api_set_device) {
    ppl_state *S = ppl_open(NULL);
    ck_assert_ptr_nonnull(S);
    ck_assert_int_eq(ppl_set_device(S, "cpu"), PPL_OK);
    ck_assert_int_eq(ppl_set_device(S, "gpu"), PPL_ERR_MISUSE);
    ck_assert_str_eq(ppl_errmsg(S), "error: unknown device \"gpu\" (devices: cpu, cuda)");
    char why[256];
    if (ppl_device_available("cuda", why, sizeof why)) {
        ck_assert_int_eq(ppl_set_device(S, "cuda"), PPL_ERR_MISUSE);
        ck_assert_ptr_nonnull(strstr(ppl_errmsg(S), why));
    }
    ck_assert_int_eq(ppl_load_string(S, "m.ppl", "x = sum([1.0, 2.0] * 2.0)\n"), PPL_OK);
    ck_assert_str_eq(ppl_device_warnings(S), ""); /* the CPU falls back to nothing */
    ppl_close(S);
}
END_TEST

/* Examples that use autoguides, constraints with host-built constants
 * (simplex, lower Cholesky), HMMs with padding and a Laplace approximation
 * run on the mock device without an op mixing devices. */
START_TEST(examples_run_on_mock) {
    static const char *const files[] = {"examples/hmm_svi.ppl", "examples/hmm_batch.ppl",
                                        "examples/laplace_lowrank.ppl", NULL};
    for (int i = 0; files[i]; i++) {
        size_t n;
        char err[1024];
        char *src = rt_read_file(files[i], &n, err, sizeof err);
        ck_assert_msg(src, "%s", err);
        rt_vm *vm = run_quiet(&mock_device, src, err, sizeof err);
        free(src);
        ck_assert_msg(vm, "%s on the mock device: %s", files[i], err);
        rt_vm_free(vm);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("device runtime");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, svi_temperature_same_on_mock);
    tcase_add_test(t, svi_vector_same_on_mock);
    tcase_add_test(t, nuts_schools_same_on_mock);
    tcase_add_test(t, hmm_results_on_mock);
    tcase_add_test(t, to_round_trip);
    tcase_add_test(t, device_errors);
    tcase_add_test(t, device_option);
    tcase_add_test(t, api_set_device);
    tcase_add_test(t, examples_run_on_mock);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
