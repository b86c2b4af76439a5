/* optim.c - optimizers with PyTorch's update rules and defaults:
 * Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8), ClippedAdam (Pyro: clip
 * each gradient element to +-clip_norm, lr decays by lrd per step), SGD
 * (momentum, Nesterov), RMSprop (alpha 0.99, eps 1e-8), Adagrad (eps 1e-10).
 * They update the unconstrained parameter tensors in place. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"

inf_optim_spec inf_adam_defaults(void) {
    inf_optim_spec s = {0};
    s.kind = INF_OPT_ADAM;
    s.lr = 1e-3;
    s.beta1 = 0.9;
    s.beta2 = 0.999;
    s.eps = 1e-8;
    s.alpha = 0.99;
    s.clip_norm = 10.0;
    s.lrd = 1.0;
    s.lr_decay = 1.0;
    s.lr_gamma = 1.0;
    return s;
}

void inf_optim_init(inf_optim *o, const inf_optim_spec *spec) {
    memset(o, 0, sizeof *o);
    o->spec = *spec;
}

void inf_optim_free(inf_optim *o) {
    for (int i = 0; i < o->nslots; i++) {
        free(o->slots[i].name);
        free(o->slots[i].m);
        free(o->slots[i].v);
        free(o->slots[i].m32);
        free(o->slots[i].v32);
    }
    free(o->slots);
    memset(o, 0, sizeof *o);
}

inf_optim_slot *inf_optim_slot_get(inf_optim *o, const char *name, int64_t n, bool f32) {
    for (int i = 0; i < o->nslots; i++)
        if (strcmp(o->slots[i].name, name) == 0) return o->slots[i].n == n ? &o->slots[i] : NULL;
    if (o->nslots == o->cap) {
        int cap = o->cap ? o->cap * 2 : 8;
        inf_optim_slot *s = realloc(o->slots, cap * sizeof *s);
        if (!s) return NULL;
        o->slots = s;
        o->cap = cap;
    }
    inf_optim_slot *s = &o->slots[o->nslots];
    memset(s, 0, sizeof *s);
    size_t sz = (size_t)(n ? n : 1);
    s->name = strdup(name);
    if (f32) {
        s->m32 = calloc(sz, sizeof *s->m32);
        s->v32 = calloc(sz, sizeof *s->v32);
    } else {
        s->m = calloc(sz, sizeof *s->m);
        s->v = calloc(sz, sizeof *s->v);
    }
    if (!s->name || (f32 ? !s->m32 || !s->v32 : !s->m || !s->v)) {
        free(s->name);
        free(s->m);
        free(s->v);
        free(s->m32);
        free(s->v32);
        return NULL;
    }
    s->n = n;
    o->nslots++;
    return s;
}

inf_optim_slot *inf_optim_slot_for(inf_optim *o, const char *name, int64_t n) {
    return inf_optim_slot_get(o, name, n, false);
}

/* A float32 slot's moments widened to double (exact), for the general
 * path; 0 or -1 (OOM, the slot unchanged). */
static int slot_widen(inf_optim_slot *s) {
    size_t sz = (size_t)(s->n ? s->n : 1);
    double *m = malloc(sz * sizeof *m), *v = malloc(sz * sizeof *v);
    if (!m || !v) {
        free(m);
        free(v);
        return -1;
    }
    for (int64_t i = 0; i < s->n; i++) {
        m[i] = s->m32[i];
        v[i] = s->v32[i];
    }
    free(s->m32);
    free(s->v32);
    s->m32 = s->v32 = NULL;
    s->m = m;
    s->v = v;
    return 0;
}

/* Plain Adam as one branch-free loop, the same arithmetic as the general
 * loop in update().  This file is compiled with -fno-math-errno and the
 * dynamic vectorizer cost model (CMakeLists.txt), so the loop vectorizes;
 * vector sqrt and division are correctly rounded too, so the result is
 * bit-identical to the scalar loop. */
static void adam_loop(int64_t n, double b1, double b2, double wd, double eps, double bc1, double bc2,
                      double step, double *restrict m, double *restrict v, double *restrict w,
                      const double *restrict g0) {
    for (int64_t i = 0; i < n; i++) {
        double g = g0[i] + wd * w[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        w[i] -= step * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
}

/* The float32 coefficients of one Adam / ClippedAdam step. */
typedef struct {
    float b1, c1, b2, c2, wd, clip, scale, step, bc2s, eps;
} adam32_coef;

/* Adam on a float32 weight with float32 moments, every operation in float
 * as PyTorch's single-tensor Adam does for a float32 parameter:
 *   m = m*b1 + (1-b1)*g;  v = v*b2 + (1-b2)*g*g;
 *   w = w - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
 * with the scalars rounded to float once per step.  Each element's result
 * is within a few float ulps of the same recurrence in double (checked in
 * test_f32.c).  The gradient is first scaled (global norm clipping) and,
 * for ClippedAdam, clamped to +-clip (clip = inf for Adam, so the loop has
 * no branch and vectorizes; an AVX2 clone is picked at load time where the
 * CPU has it, the same arithmetic, so the same results).  7 streams of 4
 * bytes per element, against 11 with double moments. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void adam_loop_f32(int64_t n, adam32_coef k, float *restrict m, float *restrict v, float *restrict w,
                          const float *restrict g0) {
    for (int64_t i = 0; i < n; i++) {
        float g = g0[i] * k.scale + k.wd * w[i];
        g = g > k.clip ? k.clip : g; /* minps / maxps: vectorizes, unlike fminf */
        g = g < -k.clip ? -k.clip : g;
        m[i] = m[i] * k.b1 + k.c1 * g;
        v[i] = v[i] * k.b2 + k.c2 * g * g;
        w[i] = w[i] - k.step * m[i] / (sqrtf(v[i]) / k.bc2s + k.eps);
    }
}

/* Adam / ClippedAdam on a float32 weight with float32 moments (slot
 * s->m32), without copies: 1 when done, 0 when the general path must run
 * (a non-finite gradient, which it reports, another optimizer resuming
 * this state, or a gradient or weight that is not contiguous float32). */
static int adam_f32(const inf_optim_spec *sp, double lr, double scale, inf_optim_slot *s, bk_tensor *u) {
    bk_tensor *g = u->grad;
    if ((sp->kind != INF_OPT_ADAM && sp->kind != INF_OPT_CLIPPED_ADAM) || u->dtype != BK_F32 ||
        g->dtype != BK_F32 || !bk_is_contiguous(g) || !bk_is_contiguous(u) ||
        bk_tensor_device(u) != &bk_cpu_device || bk_tensor_device(g) != &bk_cpu_device)
        return 0; /* (a weight on another device: the host path below) */
    const float *gf = bk_data_f32(g);
    /* any exponent field all ones (inf or NaN): an OR over the bits, which
     * vectorizes (a float sum would be one serial chain) */
    uint32_t bad = 0;
    for (int64_t k = 0; k < u->numel; k++) {
        uint32_t b;
        memcpy(&b, &gf[k], sizeof b);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    if (bad) return 0;
    s->t++;
    const double bc1 = 1 - pow(sp->beta1, (double)s->t), bc2 = 1 - pow(sp->beta2, (double)s->t);
    const bool clipped = sp->kind == INF_OPT_CLIPPED_ADAM;
    const double step = clipped ? lr * pow(sp->lrd, (double)(s->t - 1)) : lr;
    adam32_coef k = {
        .b1 = (float)sp->beta1, .c1 = (float)(1 - sp->beta1), .b2 = (float)sp->beta2, .c2 = (float)(1 - sp->beta2),
        .wd = (float)sp->weight_decay, .clip = clipped ? (float)sp->clip_norm : INFINITY, .scale = (float)scale,
        .step = (float)(step / bc1), .bc2s = (float)sqrt(bc2), .eps = (float)sp->eps,
    };
    adam_loop_f32(s->n, k, s->m32, s->v32, bk_data_f32(u), gf);
    return 1;
}

int inf_optim_copy(inf_optim *dst, const inf_optim *src, const inf_optim_spec *spec) {
    inf_optim_init(dst, spec);
    dst->t = src->t;
    for (int i = 0; i < src->nslots; i++) {
        const inf_optim_slot *a = &src->slots[i];
        inf_optim_slot *b = inf_optim_slot_get(dst, a->name, a->n, a->m32 != NULL);
        if (!b) {
            inf_optim_free(dst);
            return -1;
        }
        if (a->m32) {
            memcpy(b->m32, a->m32, (size_t)a->n * sizeof *b->m32);
            memcpy(b->v32, a->v32, (size_t)a->n * sizeof *b->v32);
        } else {
            memcpy(b->m, a->m, (size_t)a->n * sizeof *b->m);
            memcpy(b->v, a->v, (size_t)a->n * sizeof *b->v);
        }
        b->t = a->t;
    }
    return 0;
}

static const char *const KIND_NAMES[] = {"Adam", "SGD", "RMSprop", "Adagrad", "ClippedAdam"};

const char *inf_optim_kind_name(int kind) {
    return kind >= 0 && kind < 5 ? KIND_NAMES[kind] : "?";
}

int inf_optim_kind_lookup(const char *name) {
    for (int i = 0; i < 5; i++)
        if (strcmp(KIND_NAMES[i], name) == 0) return i;
    return -1;
}

static void update(const inf_optim_spec *sp, double lr, inf_optim_slot *s, double *w, const double *g0) {
    int64_t n = s->n;
    s->t++;
    /* Adam's bias corrections and ClippedAdam's decayed rate, once per step */
    const double bc1 = 1 - pow(sp->beta1, (double)s->t), bc2 = 1 - pow(sp->beta2, (double)s->t);
    const double adam_step = sp->kind == INF_OPT_CLIPPED_ADAM ? lr * pow(sp->lrd, (double)(s->t - 1)) : lr;
    if (sp->kind == INF_OPT_ADAM) {
        adam_loop(n, sp->beta1, sp->beta2, sp->weight_decay, sp->eps, bc1, bc2, adam_step, s->m, s->v, w, g0);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double g = g0[i] + sp->weight_decay * w[i];
        switch (sp->kind) {
        case INF_OPT_CLIPPED_ADAM:
            if (g > sp->clip_norm) g = sp->clip_norm;
            if (g < -sp->clip_norm) g = -sp->clip_norm;
            /* fall through */
        case INF_OPT_ADAM: {
            s->m[i] = sp->beta1 * s->m[i] + (1 - sp->beta1) * g;
            s->v[i] = sp->beta2 * s->v[i] + (1 - sp->beta2) * g * g;
            double mh = s->m[i] / bc1;
            double vh = s->v[i] / bc2;
            w[i] -= adam_step * mh / (sqrt(vh) + sp->eps);
            break;
        }
        case INF_OPT_SGD:
            if (sp->momentum != 0) {
                s->m[i] = s->t == 1 ? g : sp->momentum * s->m[i] + g;
                g = sp->nesterov ? g + sp->momentum * s->m[i] : s->m[i];
            }
            w[i] -= lr * g;
            break;
        case INF_OPT_RMSPROP:
            s->v[i] = sp->alpha * s->v[i] + (1 - sp->alpha) * g * g;
            w[i] -= lr * g / (sqrt(s->v[i]) + sp->eps);
            break;
        case INF_OPT_ADAGRAD:
            s->v[i] += g * g;
            w[i] -= lr * g / (sqrt(s->v[i]) + sp->eps);
            break;
        }
    }
}

/* The update of a parameter on another device: on a host copy of its
 * values, written back (the parameters are small next to one step). */
static int update_on_host(bk_ctx *ctx, const inf_optim_spec *sp, double lr, inf_optim_slot *s, bk_tensor *u,
                          const double *g) {
    double *w = malloc((size_t)(u->numel ? u->numel : 1) * sizeof *w);
    if (!w) {
        bk_seterr(ctx, "out of memory");
        return -1;
    }
    bk_copy_out(u, w);
    update(sp, lr, s, w, g);
    int rc = bk_copy_in(ctx, u, w);
    free(w);
    return rc;
}

/* Scale that brings the global L2 norm of all gradients to at most max
 * (1 when clipping is off or the norm is already within it). */
static double clip_scale(const inf_optim *o, rt_vm *vm) {
    if (!(o->spec.max_grad_norm > 0)) return 1.0;
    double ss = 0;
    for (int i = 0; i < vm->params.n; i++) {
        bk_tensor *g = vm->params.items[i].u->grad;
        for (int64_t k = 0; g && k < g->numel; k++) ss += bk_get(g, k) * bk_get(g, k);
    }
    double norm = sqrt(ss);
    return norm > o->spec.max_grad_norm ? o->spec.max_grad_norm / norm : 1.0;
}

int inf_optim_step(inf_optim *o, rt_vm *vm) {
    const inf_optim_spec *sp = &o->spec;
    double lr = sp->lr * pow(sp->lr_decay, (double)o->t);
    if (sp->lr_step > 0) lr *= pow(sp->lr_gamma, (double)(o->t / sp->lr_step));
    double scale = clip_scale(o, vm);
    o->t++;
    for (int i = 0; i < vm->params.n; i++) {
        rt_param *p = &vm->params.items[i];
        bk_tensor *g = p->u->grad;
        if (!g) continue;
        /* Adam's moments of a float32 weight in float32, as PyTorch keeps them */
        bool f32 = p->u->dtype == BK_F32 && (sp->kind == INF_OPT_ADAM || sp->kind == INF_OPT_CLIPPED_ADAM);
        inf_optim_slot *s = inf_optim_slot_get(o, p->name, p->u->numel, f32);
        if (!s) return rt_error_loc(vm, (rt_loc){0, 0, 0, 0}, "optimizer: out of memory or parameter \"%s\" changed shape", p->name);
        if (s->m32) {
            if (adam_f32(sp, lr, scale, s, p->u)) {
                bk_zero_grad(p->u);
                continue;
            }
            /* a case the float loop does not take: the general path, in double */
            if (slot_widen(s)) return rt_error_loc(vm, (rt_loc){0, 0, 0, 0}, "out of memory");
        }
        double gbuf[64];
        double *gd = p->u->numel <= 64 ? gbuf : malloc(p->u->numel * sizeof *gd);
        if (!gd) return rt_error_loc(vm, (rt_loc){0, 0, 0, 0}, "out of memory");
        bk_copy_out(g, gd);
        bool finite = true;
        for (int64_t k = 0; k < p->u->numel; k++)
            if (!isfinite(gd[k])) finite = false;
        if (!finite) {
            if (gd != gbuf) free(gd);
            return rt_error_loc(vm, (rt_loc){0, 0, 0, 0},
                                "the gradient of parameter \"%s\" is not finite; lower the learning "
                                "rate or check the model for invalid values", p->name);
        }
        if (scale != 1.0)
            for (int64_t k = 0; k < p->u->numel; k++) gd[k] *= scale;
        if (bk_tensor_device(p->u) == &bk_cpu_device && p->u->dtype == BK_F64) {
            update(&o->spec, lr, s, bk_data(p->u), gd);
        } else if (update_on_host(vm->bk, &o->spec, lr, s, p->u, gd)) {
            /* float32 weights (the moments are double) or another device:
             * the update runs in double on a host copy, written back */
            if (gd != gbuf) free(gd);
            return rt_fail_bk(vm, (rt_loc){0, 0, 0, 0});
        }
        if (gd != gbuf) free(gd);
        bk_zero_grad(p->u);
    }
    return 0;
}
