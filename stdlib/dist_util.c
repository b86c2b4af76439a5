/* dist_util.c - the helpers of dist_impl.h: tensor scope, argument binding,
 * parameter validation, shapes and the elementwise scalar map. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"
#include "program.h"

/* ------------------------------------------------------------ scope --- */

bk_tensor *s_keep(sl_scope *s, bk_tensor *t) {
    if (!t) {
        s->err = true;
        return NULL;
    }
    if (s->n == SL_SCOPE_MAX) {
        /* a formula longer than the scope: a bug, reported not crashed */
        bk_release(t);
        bk_seterr(s->ctx, "internal error: distribution formula too long");
        s->err = true;
        return NULL;
    }
    s->t[s->n++] = t;
    return t;
}

bk_tensor *s_done(sl_scope *s, bk_tensor *r) {
    if (s->err || !r) r = NULL;
    else bk_retain(r);
    for (int i = 0; i < s->n; i++) bk_release(s->t[i]);
    s->n = 0;
    return r;
}

/* Every op helper returns NULL without calling the backend once the scope
 * has failed, so chained formulas need no intermediate checks. */
#define LIVE1(a) if (s->err || !(a)) { s->err = true; return NULL; }
#define LIVE2(a, b) if (s->err || !(a) || !(b)) { s->err = true; return NULL; }

bk_tensor *s_scalar(sl_scope *s, double v) {
    if (s->err) return NULL;
    return s_keep(s, bk_scalar(s->ctx, v));
}
bk_tensor *s_bin(sl_scope *s, int op, bk_tensor *a, bk_tensor *b) {
    LIVE2(a, b);
    return s_keep(s, bk_binop(s->ctx, op, a, b));
}
bk_tensor *s_add(sl_scope *s, bk_tensor *a, bk_tensor *b) { return s_bin(s, BK_OP_ADD, a, b); }
bk_tensor *s_sub(sl_scope *s, bk_tensor *a, bk_tensor *b) { return s_bin(s, BK_OP_SUB, a, b); }
bk_tensor *s_mul(sl_scope *s, bk_tensor *a, bk_tensor *b) { return s_bin(s, BK_OP_MUL, a, b); }
bk_tensor *s_div(sl_scope *s, bk_tensor *a, bk_tensor *b) { return s_bin(s, BK_OP_DIV, a, b); }
bk_tensor *s_un(sl_scope *s, int op, bk_tensor *a) {
    LIVE1(a);
    return s_keep(s, bk_unop(s->ctx, op, a));
}
bk_tensor *s_adds(sl_scope *s, bk_tensor *a, double v) {
    LIVE1(a);
    return s_keep(s, bk_add_s(s->ctx, a, v));
}
bk_tensor *s_muls(sl_scope *s, bk_tensor *a, double v) {
    LIVE1(a);
    return s_keep(s, bk_mul_s(s->ctx, a, v));
}
bk_tensor *s_rsubs(sl_scope *s, double v, bk_tensor *a) { return s_adds(s, s_muls(s, a, -1.0), v); }
bk_tensor *s_where(sl_scope *s, bk_tensor *c, bk_tensor *a, bk_tensor *b) {
    LIVE2(a, b);
    LIVE1(c);
    return s_keep(s, bk_where(s->ctx, c, a, b));
}
bk_tensor *s_wheres(sl_scope *s, bk_tensor *c, bk_tensor *a, double b) {
    return s_where(s, c, a, s_scalar(s, b));
}
bk_tensor *s_red(sl_scope *s, int op, bk_tensor *a, int64_t axis, bool keep) {
    LIVE1(a);
    return s_keep(s, bk_reduce(s->ctx, op, a, axis, keep));
}
bk_tensor *s_sum(sl_scope *s, bk_tensor *a, int64_t axis, bool keep) {
    return s_red(s, BK_OP_SUM, a, axis, keep);
}
bk_tensor *s_matmul(sl_scope *s, bk_tensor *a, bk_tensor *b) {
    LIVE2(a, b);
    return s_keep(s, bk_matmul(s->ctx, a, b));
}
bk_tensor *s_expand(sl_scope *s, bk_tensor *a, int nd, const int64_t *shape) {
    LIVE1(a);
    return s_keep(s, bk_expand(s->ctx, a, nd, shape));
}
bk_tensor *s_unsq(sl_scope *s, bk_tensor *a, int64_t axis) {
    LIVE1(a);
    return s_keep(s, bk_unsqueeze(s->ctx, a, axis));
}
bk_tensor *s_sq(sl_scope *s, bk_tensor *a, int64_t axis) {
    LIVE1(a);
    return s_keep(s, bk_squeeze(s->ctx, a, axis));
}
bk_tensor *s_log(sl_scope *s, bk_tensor *a) { return s_un(s, BK_OP_LOG, a); }
bk_tensor *s_exp(sl_scope *s, bk_tensor *a) { return s_un(s, BK_OP_EXP, a); }
bk_tensor *s_square(sl_scope *s, bk_tensor *a) { return s_un(s, BK_OP_SQUARE, a); }
bk_tensor *s_lgamma(sl_scope *s, bk_tensor *a) { return s_un(s, BK_OP_LGAMMA, a); }
bk_tensor *s_digamma(sl_scope *s, bk_tensor *a) { return s_un(s, BK_OP_DIGAMMA, a); }

bk_tensor *s_xlogy(sl_scope *s, bk_tensor *x, bk_tensor *logy) {
    bk_tensor *zero = s_scalar(s, 0.0);
    bk_tensor *nz = s_bin(s, BK_OP_NE, x, zero);
    return s_where(s, nz, s_mul(s, x, s_safe(s, nz, logy, 0.0)), zero);
}
/* where(ok, x, v) is x itself when ok holds everywhere and does not widen
 * x's shape (the common case: a value inside its support); the shortcut
 * skips the where op (and its scalar) and their tape records, same bits. */
static bool where_is_x(const bk_tensor *ok, const bk_tensor *x) {
    if (!ok || !x || x->dtype != BK_F64 || ok->ndim > x->ndim || ok->st->dev != &bk_cpu_device) return false;
    for (int i = 1; i <= ok->ndim; i++) {
        int64_t d = ok->shape[ok->ndim - i];
        if (d != 1 && d != x->shape[x->ndim - i]) return false;
    }
    for (int64_t k = 0; k < ok->numel; k++)
        if (bk_get(ok, k) == 0) return false;
    return true;
}
bk_tensor *s_guard(sl_scope *s, bk_tensor *ok, bk_tensor *lp) {
    LIVE2(ok, lp);
    if (where_is_x(ok, lp)) return s_keep(s, bk_retain(lp));
    return s_wheres(s, ok, lp, -INFINITY);
}
bk_tensor *s_safe(sl_scope *s, bk_tensor *ok, bk_tensor *x, double v) {
    LIVE2(ok, x);
    /* only off the tape: a differentiated x gets its gradient from every
     * use, and dropping this node would change the order of that sum */
    if (!x->requires_grad && where_is_x(ok, x)) return s_keep(s, bk_retain(x));
    return s_wheres(s, ok, x, v);
}
bk_tensor *s_isint(sl_scope *s, bk_tensor *x) {
    return s_bin(s, BK_OP_EQ, x, s_un(s, BK_OP_FLOOR, x));
}
bk_tensor *s_and(sl_scope *s, bk_tensor *a, bk_tensor *b) { return s_mul(s, a, b); }

bk_tensor *s_diag(sl_scope *s, bk_tensor *m) {
    LIVE1(m);
    if (m->ndim < 2) {
        bk_seterr(s->ctx, "expected a matrix");
        s->err = true;
        return NULL;
    }
    bk_tensor *eye = s_keep(s, bk_eye(s->ctx, m->shape[m->ndim - 1]));
    eye = s->err ? NULL : s_keep(s, bk_to_device(s->ctx, eye, bk_tensor_device(m))); /* made on the host */
    return s_sum(s, s_mul(s, m, eye), -1, false);
}

bk_tensor *s_probs(sl_scope *s, const sl_dist *d, int i) {
    return d->variant == 0 ? d->p[i] : s_un(s, BK_OP_SIGMOID, d->p[i]);
}
bk_tensor *s_logp(sl_scope *s, const sl_dist *d, int i) {
    return d->variant == 0 ? s_log(s, d->p[i]) : s_un(s, BK_OP_LOG_SIGMOID, d->p[i]);
}
bk_tensor *s_log1mp(sl_scope *s, const sl_dist *d, int i) {
    return d->variant == 0 ? s_un(s, BK_OP_LOG1P, s_muls(s, d->p[i], -1.0))
                           : s_un(s, BK_OP_LOG_SIGMOID, s_muls(s, d->p[i], -1.0));
}

/* --------------------------------------------------------- building --- */

static int bind_value(const sl_args *a, sl_dist *d, int slot, const rt_value *v, int pos,
                      const char *name, bool kw) {
    const rt_call *c = a->call;
    if (v->tag != RT_TENSOR) {
        if (kw)
            return rt_error_kw(a->vm, c, name, "%s: %s must be a number or tensor, got a %s",
                               d->fam->name, name, rt_type_name(*v));
        return rt_error_arg(a->vm, c, pos, "%s: %s must be a number or tensor, got a %s",
                            d->fam->name, name, rt_type_name(*v));
    }
    bk_tensor *t = v->u.t;
    t = t->dtype == BK_F64 || d->fam->native_f32 ? bk_retain(t) : bk_cast(rt_vm_bk(a->vm), t, BK_F64);
    if (!t) return rt_error_bk(a->vm, c);
    bk_release(d->p[slot]);
    d->p[slot] = t;
    if (slot >= d->np) d->np = slot + 1;
    return 0;
}

static const rt_value *find_kw(const rt_call *c, const char *name) {
    for (int i = 0; i < c->nkw; i++)
        if (strcmp(c->kwnames[i], name) == 0) return &c->kwargs[i];
    return NULL;
}

int sl_bind_param(const sl_args *a, sl_bindinfo *b, sl_dist *d, int slot, int pos,
                  const char *name, double dflt) {
    const rt_call *c = a->call;
    const rt_value *v = find_kw(c, name);
    b->kw[slot] = v ? name : NULL;
    b->pos[slot] = -1;
    if (!v && pos >= 0 && pos < c->nargs) {
        v = &c->args[pos];
        b->pos[slot] = pos;
    }
    if (v) return bind_value(a, d, slot, v, pos, name, b->kw[slot] != NULL);
    if (isnan(dflt))
        return rt_error(a->vm, c, "%s: missing argument \"%s\"", d->fam->name, name);
    bk_tensor *t = bk_scalar(rt_vm_bk(a->vm), dflt);
    if (!t) return rt_error_bk(a->vm, c);
    bk_release(d->p[slot]);
    d->p[slot] = t;
    if (slot >= d->np) d->np = slot + 1;
    return 0;
}

int sl_bind_choice(const sl_args *a, sl_bindinfo *b, sl_dist *d, int slot, int pos,
                   const char *n0, const char *n1) {
    const rt_call *c = a->call;
    const rt_value *v0 = find_kw(c, n0), *v1 = find_kw(c, n1);
    int p0 = -1;
    if (!v0 && pos >= 0 && pos < c->nargs) {
        v0 = &c->args[pos];
        p0 = pos;
    }
    if (v0 && v1)
        return rt_error_kw(a->vm, c, n1, "%s: give either %s or %s, not both", d->fam->name, n0,
                           n1);
    if (!v0 && !v1)
        return rt_error(a->vm, c, "%s: missing argument: give %s= or %s=", d->fam->name, n0, n1);
    d->variant = v0 ? 0 : 1;
    b->pos[slot] = p0;
    b->kw[slot] = v0 ? (p0 < 0 ? n0 : NULL) : n1;
    return bind_value(a, d, slot, v0 ? v0 : v1, p0, v0 ? n0 : n1, p0 < 0);
}

int sl_build_simple(const sl_args *a, sl_dist *d, const char *const *names, const double *dflts) {
    int n = 0;
    while (names[n]) n++;
    if (rt_check_args(a->vm, a->call, n, names)) return -1;
    sl_bindinfo b;
    for (int i = 0; i < n; i++)
        if (sl_bind_param(a, &b, d, i, i, names[i], dflts ? dflts[i] : NAN)) return -1;
    return sl_build_finish(a, &b, d);
}

int sl_build_probs_logits(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"probs", "logits", NULL};
    sl_bindinfo b;
    if (rt_check_args(a->vm, a->call, 1, names) ||
        sl_bind_choice(a, &b, d, 0, 0, "probs", "logits"))
        return -1;
    return sl_build_finish(a, &b, d);
}

int sl_build_finish(const sl_args *a, const sl_bindinfo *b, sl_dist *d) {
    int bad = -1;
    bk_ctx *ctx = rt_vm_bk(a->vm);
    if (!d->fam->init || d->fam->init(ctx, d, &bad) == 0) return 0;
    const char *msg = bk_errmsg(ctx);
    if (bad >= 0 && bad < SL_MAXP && b && b->kw[bad])
        return rt_error_kw(a->vm, a->call, b->kw[bad], "%s", msg);
    if (bad >= 0 && bad < SL_MAXP && b && b->pos[bad] >= 0)
        return rt_error_arg(a->vm, a->call, b->pos[bad], "%s", msg);
    return rt_error(a->vm, a->call, "%s", msg);
}


static bool value_ok(int kind, double v) {
    switch (kind) {
    case SL_V_REAL: return !isnan(v);
    case SL_V_POS: return v > 0;
    case SL_V_NONNEG: return v >= 0;
    case SL_V_PROB: return v >= 0 && v <= 1;
    case SL_V_NONNEG_INT: return v >= 0 && v == floor(v) && !isinf(v);
    }
    return false;
}

/* value_ok over n values, in loops without a call per element (a replay
 * runs this on every evaluation: 10^4 logits of a logistic regression). */
static bool values_ok(int kind, const double *v, int64_t n) {
    if (kind == SL_V_REAL && n < 64) { /* no NaN, for a few values: v != v, four at a time */
        bool nan = false;
        int64_t k = 0;
        for (; k + 4 <= n; k += 4)
            nan |= (v[k] != v[k]) | (v[k + 1] != v[k + 1]) | (v[k + 2] != v[k + 2]) | (v[k + 3] != v[k + 3]);
        for (; k < n; k++) nan |= v[k] != v[k];
        return !nan;
    }
    if (kind == SL_V_REAL) { /* no NaN: an OR over the bits, in blocks of 64 (a loop gcc vectorizes) */
        int64_t o = 0, k = 0;
        for (; k + 64 <= n; k += 64) {
            int64_t ob = 0;
            for (int j = 0; j < 64; j++) {
                int64_t b;
                memcpy(&b, &v[k + j], sizeof b);
                ob |= (b & INT64_MAX) > 0x7ff0000000000000;
            }
            o |= ob;
        }
        for (; k < n; k++) {
            int64_t b;
            memcpy(&b, &v[k], sizeof b);
            o |= (b & INT64_MAX) > 0x7ff0000000000000;
        }
        return !o;
    }
    bool ok = true;
    switch (kind) {
    case SL_V_POS: for (int64_t k = 0; k < n; k++) ok &= v[k] > 0; break;
    case SL_V_NONNEG: for (int64_t k = 0; k < n; k++) ok &= v[k] >= 0; break;
    case SL_V_PROB: for (int64_t k = 0; k < n; k++) ok &= v[k] >= 0 && v[k] <= 1; break;
    default: for (int64_t k = 0; k < n && ok; k++) ok = value_ok(kind, v[k]);
    }
    return ok;
}

int sl_check_param(bk_ctx *ctx, const sl_dist *d, int i, const char *name, int kind, int *bad) {
    static const char *const what[] = {"a real number", "> 0", ">= 0", "in [0, 1]",
                                       "a non-negative integer"};
    const bk_tensor *t = d->p[i];
    if (!t) return 0;
    if (t->dtype == BK_F32 && kind == SL_V_REAL && bk_is_contiguous(t) && bk_tensor_device(t) == &bk_cpu_device) {
        /* a network's float32 outputs (10^5 logits): no NaN, by an OR over
         * the bits, which vectorizes.  No guard is needed: the recorder
         * refuses float32 programs. */
        const float *p32 = bk_data_f32(t);
        uint32_t nan = 0;
        for (int64_t k = 0; k < t->numel; k++) {
            uint32_t b;
            memcpy(&b, &p32[k], sizeof b);
            nan |= (b & 0x7fffffffu) > 0x7f800000u;
        }
        if (!nan) return 0;
    }
    /* (through the recorder: a recorded program re-checks it per replay) */
    int64_t k = bk_prog_check_all(ctx, t, value_ok, values_ok, kind);
    if (k < 0) return 0;
    double v = bk_get(t, k);
    /* shortest form that still reads back the same value */
    char buf[32];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || isnan(v)) break;
    }
    bk_seterr(ctx, "%s: %s must be %s, got %s", d->fam->name, name, what[kind], buf);
    *bad = i;
    return -1;
}

int sl_shape_broadcast(bk_ctx *ctx, sl_dist *d, const int *ev, int *bad) {
    int nb = 0;
    int64_t b[BK_MAXDIM];
    for (int i = 0; i < d->np; i++) {
        const bk_tensor *t = d->p[i];
        if (!t) continue;
        int e = ev ? ev[i] : 0;
        int nd = t->ndim - e;
        if (nd < 0) {
            bk_seterr(ctx, "%s: parameter %d must have at least %d dimension%s", d->fam->name,
                      i + 1, e, e == 1 ? "" : "s");
            *bad = i;
            return -1;
        }
        int64_t out[BK_MAXDIM];
        int no;
        if (bk_broadcast_shapes(ctx, nb, b, nd, t->shape, &no, out)) {
            char s1[64], s2[64];
            bk_tensor tmp = *t;
            tmp.ndim = (int8_t)nd;
            bk_shape_str(&tmp, s2, sizeof s2);
            tmp.ndim = (int8_t)nb;
            memcpy(tmp.shape, b, sizeof b);
            bk_shape_str(&tmp, s1, sizeof s1);
            bk_seterr(ctx, "%s: parameter shapes %s and %s do not broadcast", d->fam->name, s1,
                      s2);
            *bad = i;
            return -1;
        }
        nb = no;
        memcpy(b, out, sizeof b);
    }
    d->nbatch = nb;
    memcpy(d->batch, b, sizeof b);
    d->nevent = 0;
    return 0;
}

/* ----------------------------------------------------------- shapes --- */

int sl_draw_shape(const sl_dist *d, int nsample, const int64_t *sample_shape, int64_t *shape) {
    int n = nsample + d->nbatch + d->nevent;
    if (n > BK_MAXDIM) return -1;
    int k = 0;
    for (int i = 0; i < nsample; i++) shape[k++] = sample_shape[i];
    for (int i = 0; i < d->nbatch; i++) shape[k++] = d->batch[i];
    for (int i = 0; i < d->nevent; i++) shape[k++] = d->event[i];
    return n;
}

int sl_fam_batch(const sl_dist *d, int64_t *shape) {
    int k = 0;
    for (int i = 0; i < d->nbatch; i++) shape[k++] = d->batch[i];
    for (int i = 0; i < d->reinterpreted; i++) shape[k++] = d->event[i];
    return k;
}

bk_tensor *sl_map(bk_ctx *ctx, bk_rng *rng, int nd, const int64_t *shape, int n, bk_tensor **in,
                  sl_mapfn fn, const void *ud) {
    int64_t sh[BK_MAXDIM] = {0};
    if (!shape) {
        nd = 0;
        for (int j = 0; j < n; j++) {
            int64_t o[BK_MAXDIM];
            int no;
            if (bk_broadcast_shapes(ctx, nd, sh, in[j]->ndim, in[j]->shape, &no, o)) return NULL;
            nd = no;
            memcpy(sh, o, sizeof o);
        }
        shape = sh;
    }
    /* logical (row-major) strides of each input inside the broadcast shape */
    int64_t ls[4][BK_MAXDIM];
    if (n > 4) {
        bk_seterr(ctx, "internal error: sl_map takes at most 4 inputs");
        return NULL;
    }
    for (int j = 0; j < n; j++) {
        const bk_tensor *t = in[j];
        int off = nd - t->ndim;
        if (off < 0) {
            bk_seterr(ctx, "internal error: sl_map input has too many dimensions");
            return NULL;
        }
        int64_t st = 1;
        for (int k = nd - 1; k >= 0; k--) {
            int tk = k - off;
            if (tk < 0) {
                ls[j][k] = 0;
                continue;
            }
            if (t->shape[tk] != 1 && t->shape[tk] != shape[k]) {
                bk_seterr(ctx, "shapes do not broadcast");
                return NULL;
            }
            ls[j][k] = t->shape[tk] == 1 ? 0 : st;
            st *= t->shape[tk];
        }
    }
    bk_tensor *out = bk_empty(ctx, BK_F64, nd, shape);
    if (!out) return NULL;
    double *o = bk_data(out);
    int64_t idx[BK_MAXDIM] = {0}, flat[4] = {0};
    double args[4];
    for (int64_t i = 0; i < out->numel; i++) {
        for (int j = 0; j < n; j++) args[j] = bk_get(in[j], flat[j]);
        o[i] = fn(rng, args, ud);
        /* odometer step, keeping each input's flat index in sync */
        for (int k = nd - 1; k >= 0; k--) {
            idx[k]++;
            for (int j = 0; j < n; j++) flat[j] += ls[j][k];
            if (idx[k] < shape[k]) break;
            for (int j = 0; j < n; j++) flat[j] -= ls[j][k] * shape[k];
            idx[k] = 0;
        }
    }
    return out;
}

static double identity_fn(bk_rng *r, const double *a, const void *ud) { return a[0]; }

bk_tensor *sl_dense(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape) {
    return sl_map(ctx, NULL, nd, shape, 1, &t, identity_fn, NULL);
}

bk_tensor *s_axis(sl_scope *s, int op, bk_tensor *a, int64_t axis) {
    LIVE1(a);
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    args.keepdim = 1;
    return s_keep(s, bk_apply(s->ctx, op, 1, &a, &args));
}

bk_tensor *s_cat_logp(sl_scope *s, const sl_dist *d, int i) {
    if (d->variant == 1) return s_axis(s, BK_OP_LOG_SOFTMAX, d->p[i], -1);
    bk_tensor *p = d->p[i];
    return s_log(s, s_div(s, p, s_sum(s, p, -1, true)));
}

bk_tensor *s_cat_probs(sl_scope *s, const sl_dist *d, int i) {
    if (d->variant == 1) return s_axis(s, BK_OP_SOFTMAX, d->p[i], -1);
    return s_div(s, d->p[i], s_sum(s, d->p[i], -1, true));
}

int sl_check_cat_param(bk_ctx *ctx, const sl_dist *d, int *bad) {
    const char *name = d->variant == 0 ? "probs" : "logits";
    if (d->p[0]->ndim < 1 || d->p[0]->shape[d->p[0]->ndim - 1] < 1) {
        bk_seterr(ctx, "%s: %s must have a last dimension of at least 1 category", d->fam->name,
                  name);
        *bad = 0;
        return -1;
    }
    return sl_check_param(ctx, d, 0, name, d->variant == 0 ? SL_V_NONNEG : SL_V_REAL, bad);
}

bk_tensor *sl_cat_entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *h = s_sum(&s, s_xlogy(&s, s_cat_probs(&s, d, 0), s_cat_logp(&s, d, 0)), -1, false);
    return s_done(&s, s_muls(&s, h, -1.0));
}

/* ------------------------------------------------------ family bits --- */

int sl_support_kind(sl_constraint *out, int kind) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    return 0;
}

bk_tensor *sl_noise(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss,
                    sl_mapfn fn, const void *ud) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0) {
        bk_seterr(ctx, "%s: sample has too many dimensions", d->fam->name);
        return NULL;
    }
    return sl_map(ctx, rng, nd, shape, 0, NULL, fn, ud);
}

/* noise (a fresh CPU draw) on the device of loc or scale when one is not
 * the CPU, else on the default device; noise is consumed. */
static bk_tensor *noise_on_device(bk_ctx *ctx, bk_tensor *loc, bk_tensor *scale, bk_tensor *noise) {
    if (!noise || noise->ndim == 0) return noise;
    const bk_device *cpu = &bk_cpu_device, *dev = bk_default_device(ctx);
    if (loc && bk_tensor_device(loc) != cpu) dev = bk_tensor_device(loc);
    if (scale && bk_tensor_device(scale) != cpu) dev = bk_tensor_device(scale);
    if (bk_tensor_device(noise) == dev) return noise;
    bk_tensor *r = bk_to_device(ctx, noise, dev);
    bk_release(noise);
    return r;
}

bk_tensor *sl_noise_normal(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns,
                           const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0) {
        bk_seterr(ctx, "%s: sample has too many dimensions", d->fam->name);
        return NULL;
    }
    bk_tensor *eps = bk_rand_normal(ctx, rng, nd, shape);
    /* float32 parameters: float32 noise, so the draw stays float32 */
    bk_tensor *ps[SL_MAXP];
    int np = 0;
    for (int i = 0; i < d->np; i++)
        if (d->p[i]) ps[np++] = d->p[i];
    if (!eps || bk_promote(np, ps) != BK_F32) return eps;
    bk_tensor *e32 = bk_cast(ctx, eps, BK_F32);
    bk_release(eps);
    return e32;
}

bk_tensor *sl_affine(bk_ctx *ctx, bk_tensor *loc, bk_tensor *scale, bk_tensor *noise) {
    /* the noise is drawn on the CPU: it joins the device of the
     * parameters (or the run's) */
    noise = noise_on_device(ctx, loc, scale, noise);
    if (!noise) return NULL;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *r = s_mul(&s, s_keep(&s, noise), scale);
    if (loc) r = s_add(&s, r, loc);
    return s_done(&s, r);
}

bk_tensor *sl_gamma_noise(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, bk_tensor *alpha, int ns,
                          const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0) {
        bk_seterr(ctx, "%s: sample has too many dimensions", d->fam->name);
        return NULL;
    }
    return bk_rand_gamma(ctx, rng, alpha, nd, shape);
}

bk_tensor *sl_gamma_noise_pos(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, bk_tensor *alpha,
                              int ns, const int64_t *ss) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *g = s_keep(&s, sl_gamma_noise(ctx, rng, d, alpha, ns, ss));
    return s_done(&s, s_bin(&s, BK_OP_MAXIMUM, g, s_scalar(&s, DBL_MIN)));
}

bk_tensor *sl_enumerate(bk_ctx *ctx, const sl_dist *d, int64_t n) {
    int64_t shape[BK_MAXDIM];
    if (d->nbatch + 1 > BK_MAXDIM) {
        bk_seterr(ctx, "%s: too many dimensions to enumerate", d->fam->name);
        return NULL;
    }
    shape[0] = n;
    memcpy(shape + 1, d->batch, d->nbatch * sizeof *shape);
    bk_tensor *t = bk_empty(ctx, BK_F64, d->nbatch + 1, shape);
    if (!t) return NULL;
    double *v = bk_data(t);
    int64_t per = n > 0 ? t->numel / n : 0;
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < per; j++) v[k * per + j] = (double)k;
    return t;
}

/* -------------------------------------------------- fused log_prob --- */

bool sl_needs_grad(bk_ctx *ctx, const bk_tensor *t) {
    return t && t->requires_grad && bk_grad_enabled(ctx);
}

static bool fusable(bk_ctx *ctx, const bk_tensor *t, int nd, const int64_t *shape) {
    /* a host loop over the data: CPU tensors only */
    if (t->dtype != BK_F64 || !bk_is_contiguous(t) || sl_needs_grad(ctx, t) || bk_tensor_device(t) != &bk_cpu_device)
        return false;
    if (t->numel == 1) return true;
    if (t->ndim != nd) return false;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

int sl_fused_try(bk_ctx *ctx, const sl_dist *d, int np, bk_tensor *x,
                 void (*kernel)(const sl_fused *), bk_tensor **res) {
    sl_fused f;
    int fr = sl_fused_begin(ctx, d, np, x, &f);
    *res = NULL;
    if (fr == 0) return 0;
    if (fr > 0) {
        kernel(&f);
        *res = f.res;
    }
    return 1;
}

int sl_fused_begin(bk_ctx *ctx, const sl_dist *d, int np, bk_tensor *x, sl_fused *f) {
    int nd = x->ndim;
    int64_t shape[BK_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    for (int i = 0; i < np; i++) {
        int no;
        int64_t o[BK_MAXDIM];
        if (bk_broadcast_shapes(ctx, nd, shape, d->p[i]->ndim, d->p[i]->shape, &no, o)) {
            bk_clearerr(ctx);
            return 0;   /* the tensor-op path reports the mismatch */
        }
        nd = no;
        memcpy(shape, o, sizeof o);
    }
    if (!fusable(ctx, x, nd, shape)) return 0;
    f->scalar_params = true;
    for (int i = 0; i < np; i++) {
        if (!fusable(ctx, d->p[i], nd, shape)) return 0;
        f->p[i] = bk_data(d->p[i]);
        f->sp[i] = d->p[i]->numel == 1 ? 0 : 1;
        if (f->sp[i]) f->scalar_params = false;
    }
    f->x = bk_data(x);
    f->sx = x->numel == 1 ? 0 : 1;
    f->res = bk_empty(ctx, BK_F64, nd, shape);
    if (!f->res) return -1;
    f->n = f->res->numel;
    f->out = bk_data(f->res);
    return 1;
}
