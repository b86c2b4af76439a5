/* transform_builtins.c - the language face of the flow bijections of
 * transform.h: ExpTransform(), SigmoidTransform(), TanhTransform(),
 * SoftplusTransform(), AffineTransform(loc, scale), PowerTransform(exponent)
 * and ComposeTransform([t1, t2, ...]), as opaque "transform" values with
 * methods t.forward(x), t.inverse(y) and t.log_abs_det_jacobian(x, y).
 * TransformedDistribution(base, transforms) takes one of them or a list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"
#include "transform.h"

static const char *const TYPE = "transform";

static void tf_free(void *p) { sl_transform_release(p); }

static char *tf_repr(bk_ctx *ctx, void *p) {
    (void)ctx;
    const char *n = sl_transform_name(p);
    char *s = malloc(strlen(n) + 4);
    if (s) sprintf(s, "<%s>", n);
    return s;
}

static int tf_getattr(rt_vm *vm, void *data, const char *name, rt_loc loc, rt_value *out);

/* A value holding t (takes over the caller's reference). */
static int tf_value(rt_vm *vm, const rt_call *c, sl_transform *t, rt_value *out) {
    if (!t) return rt_error_bk(vm, c);
    rt_opaque *o = rt_opaque_new(TYPE, t, tf_free);
    if (!o) {
        sl_transform_release(t);
        return rt_error(vm, c, "out of memory");
    }
    o->repr = tf_repr;
    o->getattr = tf_getattr;
    *out = rt_obj_value(&o->h);
    return 0;
}

static bool is_tf(rt_value v) {
    return v.tag == RT_OPAQUE && strcmp(((rt_opaque *)v.u.o)->type, TYPE) == 0;
}

int sl_transform_from_value(rt_vm *vm, const rt_call *c, int pos, rt_value v, sl_transform **out) {
    if (is_tf(v)) {
        *out = sl_transform_retain(((rt_opaque *)v.u.o)->data);
        return 0;
    }
    if (v.tag == RT_LIST) {
        rt_list *l = (rt_list *)v.u.o;
        sl_transform **parts = malloc(((size_t)l->n + 1) * sizeof *parts);
        if (!parts) return rt_error(vm, c, "out of memory");
        for (int i = 0; i < l->n; i++) {
            if (!is_tf(l->items[i])) {
                free(parts);
                return rt_error_arg(vm, c, pos, "%s: element %d of the list is a %s, not a "
                                    "transform", c->name, i, rt_type_name(l->items[i]));
            }
            parts[i] = ((rt_opaque *)l->items[i].u.o)->data;
        }
        *out = sl_transform_compose(rt_vm_bk(vm), l->n, parts);
        free(parts);
        return *out ? 0 : rt_error_bk(vm, c);
    }
    return rt_error_arg(vm, c, pos, "%s: expected a transform or a list of transforms "
                        "(ExpTransform(), AffineTransform(loc, scale), ...), got a %s",
                        c->name, rt_type_name(v));
}

/* ---------------------------------------------------- constructors --- */

static int simple(rt_vm *vm, const rt_call *c, rt_value *out, int kind) {
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    return tf_value(vm, c, sl_transform_new(rt_vm_bk(vm), kind), out);
}
static int b_exp(rt_vm *vm, const rt_call *c, rt_value *o) { return simple(vm, c, o, SL_T_EXP); }
static int b_sigmoid(rt_vm *vm, const rt_call *c, rt_value *o) {
    return simple(vm, c, o, SL_T_SIGMOID);
}
static int b_tanh(rt_vm *vm, const rt_call *c, rt_value *o) { return simple(vm, c, o, SL_T_TANH); }
static int b_softplus(rt_vm *vm, const rt_call *c, rt_value *o) {
    return simple(vm, c, o, SL_T_SOFTPLUS);
}

/* A float64 tensor argument with every element != 0 and finite. */
static int nonzero_arg(rt_vm *vm, const rt_call *c, int pos, const char *name, bk_tensor **out) {
    bk_tensor *t;
    if (rt_arg_tensor(vm, c, pos, name, true, &t)) return -1;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = bk_get(t, i);
        if (!(v != 0) || !isfinite(v)) {
            const rt_value *kv = NULL;
            for (int k = 0; k < c->nkw; k++)
                if (strcmp(c->kwnames[k], name) == 0) kv = &c->kwargs[k];
            if (kv)
                return rt_error_kw(vm, c, name, "%s: %s must be finite and != 0, got %g",
                                   c->name, name, v);
            return rt_error_arg(vm, c, pos, "%s: %s must be finite and != 0, got %g", c->name,
                                name, v);
        }
    }
    *out = t->dtype == BK_F64 ? bk_retain(t) : bk_cast(rt_vm_bk(vm), t, BK_F64);
    return *out ? 0 : rt_error_bk(vm, c);
}

static int b_affine(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"loc", "scale", NULL};
    bk_tensor *loc, *scale;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "loc", true, &loc)) return -1;
    for (int64_t i = 0; i < loc->numel; i++)
        if (!isfinite(bk_get(loc, i)))
            return rt_error_arg(vm, c, 0, "AffineTransform: loc must be finite, got %g",
                                bk_get(loc, i));
    if (nonzero_arg(vm, c, 1, "scale", &scale)) return -1;
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_tensor *l = loc->dtype == BK_F64 ? bk_retain(loc) : bk_cast(ctx, loc, BK_F64);
    sl_transform *t = l ? sl_transform_affine(ctx, l, scale) : NULL;
    bk_release(l);
    bk_release(scale);
    return tf_value(vm, c, t, out);
}

static int b_power(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"exponent", NULL};
    bk_tensor *e;
    if (rt_check_args(vm, c, 1, names) || nonzero_arg(vm, c, 0, "exponent", &e)) return -1;
    sl_transform *t = sl_transform_power(rt_vm_bk(vm), e);
    bk_release(e);
    return tf_value(vm, c, t, out);
}

static int b_compose(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"parts", NULL};
    const rt_value *v;
    if (rt_check_args(vm, c, 1, names)) return -1;
    if (!(v = rt_arg(c, 0, "parts")))
        return rt_error(vm, c, "ComposeTransform: missing argument \"parts\"");
    sl_transform *t;
    if (sl_transform_from_value(vm, c, 0, *v, &t)) return -1;
    return tf_value(vm, c, t, out);
}

/* ---------------------------------------------------------- methods --- */

static sl_transform *self_tf(const rt_call *c) {
    return ((rt_opaque *)c->self.u.o)->data;
}

static int m_forward(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", NULL};
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    bk_tensor *y = sl_transform_forward(rt_vm_bk(vm), self_tf(c), x);
    if (!y) return rt_error_bk(vm, c);
    *out = rt_tensor(y);
    return 0;
}

static int m_inverse(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"y", NULL};
    bk_tensor *y;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "y", true, &y)) return -1;
    bk_tensor *x = sl_transform_inverse(rt_vm_bk(vm), self_tf(c), y);
    if (!x) return rt_error_bk(vm, c);
    *out = rt_tensor(x);
    return 0;
}

static int m_ladj(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "y", NULL};
    bk_tensor *x, *y = NULL;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_tensor(vm, c, 1, "y", false, &y))
        return -1;
    bk_tensor *r = sl_transform_log_abs_det_jacobian(rt_vm_bk(vm), self_tf(c), x, y);
    if (!r) return rt_error_bk(vm, c);
    *out = rt_tensor(r);
    return 0;
}

static int tf_getattr(rt_vm *vm, void *data, const char *name, rt_loc loc, rt_value *out) {
    static const struct {
        const char *name;
        rt_builtin_fn fn;
    } methods[] = {{"forward", m_forward},
                   {"inverse", m_inverse},
                   {"log_abs_det_jacobian", m_ladj}};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        if (strcmp(name, methods[i].name) != 0) continue;
        /* the method's receiver: a fresh value holding the same transform */
        rt_opaque *o = rt_opaque_new(TYPE, sl_transform_retain(data), tf_free);
        if (!o) {
            sl_transform_release(data);
            return rt_error_loc(vm, loc, "out of memory");
        }
        o->repr = tf_repr;
        o->getattr = tf_getattr;
        rt_value self = rt_obj_value(&o->h);
        rt_builtin *b = rt_builtin_new(methods[i].name, methods[i].fn, self);
        rt_release(self);
        if (!b) return rt_error_loc(vm, loc, "out of memory");
        *out = rt_obj_value(&b->h);
        return 0;
    }
    return rt_error_loc(vm, loc, "a %s has no field \"%s\" (it has forward, inverse and "
                        "log_abs_det_jacobian)", sl_transform_name(data), name);
}

static const rt_builtin_def transform_builtins[] = {
    {"ExpTransform", b_exp},         {"SigmoidTransform", b_sigmoid},
    {"TanhTransform", b_tanh},       {"SoftplusTransform", b_softplus},
    {"AffineTransform", b_affine},   {"PowerTransform", b_power},
    {"ComposeTransform", b_compose}, {NULL, NULL},
};

int sl_register_transform_builtins(rt_vm *vm) {
    return rt_register_builtins(vm, transform_builtins);
}
