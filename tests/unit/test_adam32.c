/* test_adam32.c - Adam's float32 moments for float32 weights (optim.c,
 * params_io.c).
 *
 *  - Adam, Adam with weight decay and ClippedAdam (clamping some gradient
 *    elements, decaying the rate) on float32 weights keep float32 moments
 *    and follow the same recurrence computed in double from the same
 *    gradients to relative 1e-5 per step (float arithmetic is within a few
 *    ulps per operation, about 1e-7 each; the gradients keep their sign
 *    from step to step, so no moment cancels towards 0 and a relative
 *    bound is meaningful); a float64 weight keeps double moments;
 *  - an optimizer of another kind resuming a float32-moment state widens
 *    it to double exactly instead of reading missing moments;
 *  - svi with float32 weights: 2N steps == N steps, save_params, a fresh
 *    state, load by resume, N steps (bit-identical losses and weights), and
 *    the file marks the float32 moments. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api_fixture.h"
#include "vm_fixture.h"

#define REL 1e-5
#define STEPS 6

static uint64_t lcg = 20261202;
static double urand(double a, double b) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return a + (b - a) * (double)(lcg >> 11) / 9007199254740992.0;
}

/* |got - ref| <= REL |scale| (scale: ref itself, or the largest magnitude
 * on the way for a weight, whose float roundings are relative to that) */
static void rel_close(const char *what, int step, int64_t i, double got, double ref, double scale) {
    ck_assert_msg(fabs(got - ref) <= REL * fabs(scale), "%s step %d [%lld]: %.9g vs reference %.9g", what, step,
                  (long long)i, got, ref);
}

/* The double reference of one step of the rule in optim.c for element i. */
typedef struct {
    double w, m, v, wmax; /* wmax: the largest |w| so far */
} ref_elt;

static void ref_step(const inf_optim_spec *sp, long t, double g, ref_elt *e) {
    g += sp->weight_decay * e->w;
    bool clipped = sp->kind == INF_OPT_CLIPPED_ADAM;
    if (clipped) g = g > sp->clip_norm ? sp->clip_norm : g < -sp->clip_norm ? -sp->clip_norm : g;
    double lr = clipped ? sp->lr * pow(sp->lrd, (double)(t - 1)) : sp->lr;
    double bc1 = 1 - pow(sp->beta1, (double)t), bc2 = 1 - pow(sp->beta2, (double)t);
    e->m = sp->beta1 * e->m + (1 - sp->beta1) * g;
    e->v = sp->beta2 * e->v + (1 - sp->beta2) * g * g;
    e->w -= lr / bc1 * e->m / (sqrt(e->v) / sqrt(bc2) + sp->eps);
    e->wmax = fmax(e->wmax, fabs(e->w));
}

static void check_rule(const inf_optim_spec *sp) {
    rt_vm *vm = vm_running("net = Linear(7, 5, name=\"l\", dtype=\"float32\")\n"
                           "net64 = Linear(2, 1, name=\"d\")\n"
                           "y = net(ones([1, 7]))\n"
                           "y64 = net64(ones([1, 2]))\n");
    inf_optim o;
    inf_optim_init(&o, sp);
    int np = vm->params.n;
    ck_assert_int_eq(np, 4);
    ref_elt *ref[4];
    double *sign[4];
    for (int i = 0; i < np; i++) {
        bk_tensor *u = vm->params.items[i].u;
        ref[i] = calloc((size_t)u->numel, sizeof *ref[i]);
        sign[i] = malloc((size_t)u->numel * sizeof *sign[i]);
        for (int64_t k = 0; k < u->numel; k++) {
            ref[i][k].w = bk_get(u, k);
            ref[i][k].wmax = fabs(ref[i][k].w);
            sign[i][k] = urand(0, 1) < 0.5 ? -1 : 1;
        }
    }
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < np; i++) {
            bk_tensor *u = vm->params.items[i].u;
            bk_tensor *g = bk_empty(vm->bk, u->dtype, u->ndim, u->shape);
            ck_assert_ptr_nonnull(g);
            for (int64_t k = 0; k < u->numel; k++) {
                /* magnitudes 0.01..3: with clip_norm 1 some are clamped */
                double x = sign[i][k] * exp(urand(log(0.01), log(3.0)));
                if (u->dtype == BK_F32) bk_data_f32(g)[k] = (float)x;
                else bk_data(g)[k] = x;
                ref_step(sp, step, u->dtype == BK_F32 ? (double)(float)x : x, &ref[i][k]);
            }
            bk_zero_grad(u);
            u->grad = g;
        }
        ck_assert_msg(inf_optim_step(&o, vm) == 0, "%s", rt_vm_errmsg(vm));
        for (int i = 0; i < np; i++) {
            rt_param *p = &vm->params.items[i];
            inf_optim_slot *s = inf_optim_slot_for(&o, p->name, p->u->numel);
            ck_assert_ptr_nonnull(s);
            bool f32 = p->u->dtype == BK_F32;
            ck_assert_msg(f32 ? s->m32 && s->v32 && !s->m && !s->v : s->m && s->v && !s->m32 && !s->v32,
                          "%s: moments of the wrong dtype", p->name);
            for (int64_t k = 0; k < p->u->numel; k++) {
                rel_close("w", step, k, bk_get(p->u, k), ref[i][k].w, ref[i][k].wmax);
                rel_close("m", step, k, f32 ? s->m32[k] : s->m[k], ref[i][k].m, ref[i][k].m);
                rel_close("v", step, k, f32 ? s->v32[k] : s->v[k], ref[i][k].v, ref[i][k].v);
            }
        }
    }
    /* SGD with momentum resuming this state: the float32 moments widen (exactly) */
    inf_optim_spec sgd = *sp;
    sgd.kind = INF_OPT_SGD;
    sgd.momentum = 0.5;
    sgd.weight_decay = 0;
    inf_optim o2;
    ck_assert_int_eq(inf_optim_copy(&o2, &o, &sgd), 0);
    rt_param *p0 = &vm->params.items[0];
    ck_assert_int_eq(p0->u->dtype, BK_F32);
    inf_optim_slot *s0 = inf_optim_slot_for(&o2, p0->name, p0->u->numel);
    double m0 = s0->m32[0];
    bk_tensor *g = bk_empty(vm->bk, BK_F32, p0->u->ndim, p0->u->shape);
    for (int64_t k = 0; k < g->numel; k++) bk_data_f32(g)[k] = 0.25f;
    bk_zero_grad(p0->u);
    p0->u->grad = g;
    ck_assert_msg(inf_optim_step(&o2, vm) == 0, "%s", rt_vm_errmsg(vm));
    s0 = inf_optim_slot_for(&o2, p0->name, p0->u->numel);
    ck_assert(s0->m && !s0->m32);
    ck_assert_double_eq(s0->m[0], 0.5 * m0 + 0.25);
    inf_optim_free(&o2);
    inf_optim_free(&o);
    for (int i = 0; i < np; i++) {
        free(ref[i]);
        free(sign[i]);
    }
    rt_vm_free(vm);
}

START_TEST(adam_float32_moments_match_double_reference) {
    inf_optim_spec sp = inf_adam_defaults();
    sp.lr = 0.01;
    check_rule(&sp);
    sp.weight_decay = 0.1;
    check_rule(&sp);
    sp = inf_adam_defaults();
    sp.kind = INF_OPT_CLIPPED_ADAM;
    sp.lr = 0.02;
    sp.clip_norm = 1.0;
    sp.lrd = 0.9;
    check_rule(&sp);
}
END_TEST

/* ---- resume with float32 weights: 2N steps == N, save, fresh state, N ---- */

static const char *NET_SRC =
    "X = float32(Normal(0.0, 1.0).sample([64, 4]))\n"
    "Y = float32(matmul(float64(X), [1.0, -2.0, 0.5, 0.0]) + 0.3 * Normal(0.0, 1.0).sample([64]))\n"
    "net = MLP(\"n\", [4, 8, 1], seed=2, dtype=\"float32\")\n"
    "model m(X, Y) {\n  sample s ~ LogNormal(0.0, 1.0)\n  observe Y ~ Normal(net(X)[:, 0], s)\n}\n"
    "guide g(X, Y) {\n  param a = 0.0\n  param b: positive = 0.5\n  sample s ~ LogNormal(a, b)\n}\n";

static void leg(int steps, const char *optim, const char *from, const char *to, double *w, double *losses) {
    ppl_close(S);
    S = ppl_open(NULL); /* a fresh state each leg: the data are drawn again alike */
    RUN(NET_SRC);
    char src[1024];
    snprintf(src, sizeof src,
             "f = svi(m, g, {X: X, Y: Y}, steps=%d, optim=%s, seed=4, summary_samples=0%s%s%s)\n"
             "W = float64(net(eye(4)))[:, 0]\nL = f.losses\na = f.params.a\n",
             steps, optim, from ? ", resume=\"" : "", from ? from : "", from ? "\"" : "");
    RUN(src);
    size_t n;
    ck_assert_int_eq(ppl_get_f64(S, "W", w, 4, &n), PPL_OK);
    w[4] = get("a");
    ck_assert_int_eq(ppl_get_f64(S, "L", losses, (size_t)steps, &n), PPL_OK);
    ck_assert_int_eq((int)n, steps);
    if (to) {
        snprintf(src, sizeof src, "save_params(\"%s\")\n", to);
        RUN(src);
    }
}

static void resume_equal(const char *optim) {
    const char *path = "test_adam32_resume.json";
    double full[5], half[5], res[5], lf[30], lh[15], lr[15];
    leg(30, optim, NULL, NULL, full, lf);
    leg(15, optim, NULL, path, half, lh);
    /* the file marks the float32 moments */
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "\"dtype\": \"float32\""));
    leg(15, optim, path, NULL, res, lr);
    remove(path);
    ck_assert(half[0] != full[0]);
    for (int i = 0; i < 5; i++) ck_assert_msg(res[i] == full[i], "weight %d: %.17g vs %.17g", i, res[i], full[i]);
    for (int i = 0; i < 15; i++) {
        ck_assert(lh[i] == lf[i]);
        ck_assert_msg(lr[i] == lf[15 + i], "loss %d: %.17g vs %.17g", 15 + i, lr[i], lf[15 + i]);
    }
}

START_TEST(float32_resume_equals_uninterrupted) {
    resume_equal("Adam(lr=0.05)");
    resume_equal("ClippedAdam(lr=0.05, lrd=0.99, clip_norm=2.0)");
}
END_TEST

int main(void) {
    Suite *s = suite_create("adam32");
    TCase *t = tcase_create("adam32");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, adam_float32_moments_match_double_reference);
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, float32_resume_equals_uninterrupted);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    return nf ? 1 : 0;
}
