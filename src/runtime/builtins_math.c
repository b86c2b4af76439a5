/* builtins_math.c - the math built-ins of DESIGN 1.3: elementwise
 * functions, reductions, tensor constructors and linear algebra.  Each is a
 * thin binding of a backend op, so gradients flow through all of them. */
#include <math.h>
#include <string.h>
#include "vm.h"

static int ret_tensor(rt_vm *vm, const rt_call *c, bk_tensor *t, rt_value *out) {
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

/* ------------------------------------------------------------ unary --- */

static int unary(rt_vm *vm, const rt_call *c, rt_value *out, int op) {
    static const char *const names[] = {"x", NULL};
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    return ret_tensor(vm, c, bk_unop(vm->bk, op, x), out);
}

#define UNARY(fname, OP) \
    static int b_##fname(rt_vm *vm, const rt_call *c, rt_value *out) { return unary(vm, c, out, BK_OP_##OP); }
UNARY(exp, EXP)
UNARY(log, LOG)
UNARY(log1p, LOG1P)
UNARY(expm1, EXPM1)
UNARY(sqrt, SQRT)
UNARY(abs, ABS)
UNARY(sigmoid, SIGMOID)
UNARY(logit, LOGIT)
UNARY(softplus, SOFTPLUS)
UNARY(log_sigmoid, LOG_SIGMOID)
UNARY(tanh, TANH)
UNARY(relu, RELU)
UNARY(sin, SIN)
UNARY(cos, COS)
UNARY(lgamma, LGAMMA)
UNARY(digamma, DIGAMMA)
UNARY(erf, ERF)
UNARY(erfc, ERFC)
UNARY(floor, FLOOR)
UNARY(square, SQUARE)

/* round(x, ndigits=0): rounds half up (NumPy rounds half to even); see
 * docs/LANGUAGE.md. */
static int b_round(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "ndigits", NULL};
    bk_tensor *x;
    double nd;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, 1, "ndigits", 0, false, &nd))
        return -1;
    double sc = pow(10.0, nd);
    bk_tensor *a = bk_mul_s(vm->bk, x, sc);
    bk_tensor *b = a ? bk_add_s(vm->bk, a, 0.5) : NULL;
    bk_tensor *f = b ? bk_unop(vm->bk, BK_OP_FLOOR, b) : NULL;
    bk_tensor *d = bk_scalar(vm->bk, sc);
    /* divide (not multiply by 1/sc): 3066 / 1000 is the double nearest 3.066 */
    bk_tensor *r = (f && d) ? bk_div(vm->bk, f, d) : NULL;
    bk_release(d);
    bk_release(a);
    bk_release(b);
    bk_release(f);
    return ret_tensor(vm, c, r, out);
}

static int b_detach(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    return ret_tensor(vm, c, bk_detach(vm->bk, x), out);
}

/* --------------------------------------------------------- reductions --- */

static int reduce(rt_vm *vm, const rt_call *c, rt_value *out, int op) {
    static const char *const names[] = {"x", "axis", "keepdim", NULL};
    bk_tensor *x;
    double axis = BK_ALL_AXES, keep = 0;
    const rt_value *ax = rt_arg(c, 1, "axis");
    if (rt_check_args(vm, c, 3, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        (ax && ax->tag != RT_NONE && rt_arg_number(vm, c, 1, "axis", 0, true, &axis)) ||
        rt_arg_number(vm, c, 2, "keepdim", 0, false, &keep))
        return -1;
    if (op == BK_OP_CUMSUM || op == BK_OP_SOFTMAX || op == BK_OP_LOG_SOFTMAX) {
        if (axis == BK_ALL_AXES) axis = -1;
    }
    return ret_tensor(vm, c, bk_reduce(vm->bk, op, x, (int64_t)axis, keep != 0), out);
}

#define REDUCE(fname, OP) \
    static int b_##fname(rt_vm *vm, const rt_call *c, rt_value *out) { return reduce(vm, c, out, BK_OP_##OP); }
REDUCE(sum, SUM)
REDUCE(mean, MEAN)
REDUCE(prod, PROD)
REDUCE(logsumexp, LOGSUMEXP)
REDUCE(softmax, SOFTMAX)
REDUCE(log_softmax, LOG_SOFTMAX)
REDUCE(cumsum, CUMSUM)

/* max(x) / max(x, axis=0) reduce; max(a, b) with two tensors is elementwise */
static int minmax(rt_vm *vm, const rt_call *c, rt_value *out, int rop, int eop) {
    /* max(a, b) with two positional tensors compares elementwise (as
     * Python's max); max(x) and max(x, axis=k) reduce. */
    if (c->nargs == 2 && c->nkw == 0 && c->args[0].tag == RT_TENSOR && c->args[1].tag == RT_TENSOR)
        return ret_tensor(vm, c, bk_binop(vm->bk, eop, c->args[0].u.t, c->args[1].u.t), out);
    return reduce(vm, c, out, rop);
}
static int b_max(rt_vm *vm, const rt_call *c, rt_value *out) { return minmax(vm, c, out, BK_OP_MAX, BK_OP_MAXIMUM); }
static int b_min(rt_vm *vm, const rt_call *c, rt_value *out) { return minmax(vm, c, out, BK_OP_MIN, BK_OP_MINIMUM); }

/* ------------------------------------------------------- constructors --- */

/* A shape argument: a number n -> [n], a list/tensor of sizes. */
static int shape_arg(rt_vm *vm, const rt_call *c, int pos, const char *name, int *nd, int64_t *shape) {
    const rt_value *v = rt_arg(c, pos, name);
    *nd = 0;
    if (!v) return 0;
    if (v->tag != RT_TENSOR || v->u.t->ndim > 1)
        return rt_error_arg(vm, c, pos, "%s: shape must be a number or a list of sizes", c->name);
    bk_tensor *t = v->u.t;
    if (t->numel > BK_MAXDIM)
        return rt_error_arg(vm, c, pos, "%s: at most %d dimensions", c->name, BK_MAXDIM);
    *nd = t->ndim == 0 ? 1 : (int)t->numel;
    for (int i = 0; i < *nd; i++) {
        double d = bk_get(t, i);
        if (d < 0 || d != floor(d) || d > 1e12)
            return rt_error_arg(vm, c, pos, "%s: sizes must be non-negative integers, got %g", c->name, d);
        shape[i] = (int64_t)d;
    }
    return 0;
}

static int filled(rt_vm *vm, const rt_call *c, rt_value *out, double v) {
    static const char *const names[] = {"shape", NULL};
    int nd;
    int64_t shape[BK_MAXDIM];
    if (rt_check_args(vm, c, 1, names) || shape_arg(vm, c, 0, "shape", &nd, shape)) return -1;
    if (!rt_arg(c, 0, "shape")) nd = 0;
    return ret_tensor(vm, c, bk_place_nd(vm->bk, bk_full(vm->bk, BK_F64, nd, shape, v)), out);
}
static int b_zeros(rt_vm *vm, const rt_call *c, rt_value *out) { return filled(vm, c, out, 0.0); }
static int b_ones(rt_vm *vm, const rt_call *c, rt_value *out) { return filled(vm, c, out, 1.0); }

static int b_full(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"shape", "value", NULL};
    int nd;
    int64_t shape[BK_MAXDIM];
    double v;
    if (rt_check_args(vm, c, 2, names) || shape_arg(vm, c, 0, "shape", &nd, shape) ||
        rt_arg_number(vm, c, 1, "value", 0, true, &v))
        return -1;
    return ret_tensor(vm, c, bk_place_nd(vm->bk, bk_full(vm->bk, BK_F64, nd, shape, v)), out);
}

static int b_eye(rt_vm *vm, const rt_call *c, rt_value *out) {
    double n;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_number(vm, c, 0, "n", 0, true, &n)) return -1;
    if (n < 0 || n != floor(n)) return rt_error_arg(vm, c, 0, "eye: n must be a non-negative integer");
    return ret_tensor(vm, c, bk_place_nd(vm->bk, bk_eye(vm->bk, (int64_t)n)), out);
}

static int b_arange(rt_vm *vm, const rt_call *c, rt_value *out) {
    double a, b = 0, s = 1;
    if (rt_check_args(vm, c, 3, NULL) || rt_arg_number(vm, c, 0, "start", 0, true, &a) ||
        rt_arg_number(vm, c, 1, NULL, NAN, false, &b) || rt_arg_number(vm, c, 2, NULL, 1, false, &s))
        return -1;
    if (isnan(b)) {
        b = a;
        a = 0;
    }
    if (s == 0) return rt_error_arg(vm, c, 2, "%s: step cannot be zero", c->name);
    if (fabs((b - a) / s) > 1e9) return rt_error(vm, c, "%s: too many elements", c->name);
    return ret_tensor(vm, c, bk_place_nd(vm->bk, bk_arange(vm->bk, a, b, s)), out);
}

static int b_linspace(rt_vm *vm, const rt_call *c, rt_value *out) {
    double a, b, n;
    if (rt_check_args(vm, c, 3, NULL) || rt_arg_number(vm, c, 0, "start", 0, true, &a) ||
        rt_arg_number(vm, c, 1, "stop", 0, true, &b) || rt_arg_number(vm, c, 2, "num", 0, true, &n))
        return -1;
    if (n < 0 || n != floor(n) || n > 1e9) return rt_error_arg(vm, c, 2, "linspace: num must be a non-negative integer");
    return ret_tensor(vm, c, bk_place_nd(vm->bk, bk_linspace(vm->bk, a, b, (int64_t)n)), out);
}

/* ------------------------------------------------------- shape and LA --- */

static int b_dot(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *a, *b;
    if (rt_check_args(vm, c, 2, NULL) || rt_arg_tensor(vm, c, 0, "a", true, &a) ||
        rt_arg_tensor(vm, c, 1, "b", true, &b))
        return -1;
    if (a->ndim != 1 || b->ndim != 1) return rt_error(vm, c, "dot: both arguments must be vectors");
    return ret_tensor(vm, c, bk_matmul(vm->bk, a, b), out);
}

static int b_matmul(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *a, *b;
    if (rt_check_args(vm, c, 2, NULL) || rt_arg_tensor(vm, c, 0, "a", true, &a) ||
        rt_arg_tensor(vm, c, 1, "b", true, &b))
        return -1;
    return ret_tensor(vm, c, bk_matmul(vm->bk, a, b), out);
}

static int b_transpose(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    double d0 = -2, d1 = -1;
    if (rt_check_args(vm, c, 3, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, 1, NULL, -2, false, &d0) || rt_arg_number(vm, c, 2, NULL, -1, false, &d1))
        return -1;
    if (x->ndim < 2) return ret_tensor(vm, c, bk_retain(x), out);
    return ret_tensor(vm, c, bk_transpose(vm->bk, x, (int64_t)d0, (int64_t)d1), out);
}

static int b_reshape(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "shape", NULL};
    bk_tensor *x;
    int nd;
    int64_t shape[BK_MAXDIM];
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    const rt_value *s = rt_arg(c, 1, "shape");
    if (!s || s->tag != RT_TENSOR) return rt_error(vm, c, "reshape: missing shape");
    /* reshape allows one -1 */
    nd = s->u.t->ndim == 0 ? 1 : (int)s->u.t->numel;
    if (nd > BK_MAXDIM) return rt_error_arg(vm, c, 1, "reshape: at most %d dimensions", BK_MAXDIM);
    for (int i = 0; i < nd; i++) shape[i] = (int64_t)bk_get(s->u.t, i);
    return ret_tensor(vm, c, bk_reshape(vm->bk, x, nd, shape), out);
}

static int tensors_arg(rt_vm *vm, const rt_call *c, bk_tensor **ts, int *n) {
    const rt_value *v = rt_arg(c, 0, "tensors");
    if (!v) return rt_error(vm, c, "%s: missing the list of tensors", c->name);
    if (v->tag == RT_LIST) {
        rt_list *l = (rt_list *)v->u.o;
        if (l->n > 64) return rt_error_arg(vm, c, 0, "%s: at most 64 tensors", c->name);
        for (int i = 0; i < l->n; i++) {
            if (l->items[i].tag != RT_TENSOR) return rt_error_arg(vm, c, 0, "%s: element %d is a %s, not a tensor", c->name, i, rt_type_name(l->items[i]));
            ts[i] = l->items[i].u.t;
        }
        *n = l->n;
        return 0;
    }
    if (v->tag == RT_TENSOR && v->u.t->ndim >= 1) {
        /* a stacked list literal [a, b]: split along the first dim */
        *n = (int)v->u.t->shape[0];
        if (*n > 64) return rt_error_arg(vm, c, 0, "%s: at most 64 tensors", c->name);
        for (int i = 0; i < *n; i++) {
            bk_idx s = {.kind = BK_IDX_INT, .start = i};
            ts[i] = bk_index(vm->bk, v->u.t, 1, &s);
            if (!ts[i]) {
                for (int k = 0; k < i; k++) bk_release(ts[k]);
                return rt_error_bk(vm, c);
            }
        }
        return 1; /* caller releases */
    }
    return rt_error_arg(vm, c, 0, "%s: expected a list of tensors", c->name);
}

static int concat_stack(rt_vm *vm, const rt_call *c, rt_value *out, int stack) {
    static const char *const names[] = {"tensors", "axis", NULL};
    bk_tensor *ts[64];
    int n = 0;
    double axis;
    if (rt_check_args(vm, c, 2, names) || rt_arg_number(vm, c, 1, "axis", 0, false, &axis)) return -1;
    int own = tensors_arg(vm, c, ts, &n);
    if (own < 0) return -1;
    bk_tensor *r = stack ? bk_stack(vm->bk, n, ts, (int64_t)axis) : bk_concat(vm->bk, n, ts, (int64_t)axis);
    if (own)
        for (int i = 0; i < n; i++) bk_release(ts[i]);
    return ret_tensor(vm, c, r, out);
}
static int b_concat(rt_vm *vm, const rt_call *c, rt_value *out) { return concat_stack(vm, c, out, 0); }
static int b_stack(rt_vm *vm, const rt_call *c, rt_value *out) { return concat_stack(vm, c, out, 1); }

static int b_cholesky(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    return ret_tensor(vm, c, bk_cholesky(vm->bk, x), out);
}

static int b_solve_triangular(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"a", "b", "upper", NULL};
    bk_tensor *a, *b;
    double upper = 0;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "a", true, &a) ||
        rt_arg_tensor(vm, c, 1, "b", true, &b) || rt_arg_number(vm, c, -1, "upper", 0, false, &upper))
        return -1;
    return ret_tensor(vm, c, bk_solve_triangular(vm->bk, a, b, upper != 0), out);
}

static int b_logdet(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    return ret_tensor(vm, c, bk_logdet(vm->bk, x), out);
}

static int b_inverse(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    return ret_tensor(vm, c, bk_inverse(vm->bk, x), out);
}

static int b_where(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *k, *a, *b;
    if (rt_check_args(vm, c, 3, NULL) || rt_arg_tensor(vm, c, 0, "cond", true, &k) ||
        rt_arg_tensor(vm, c, 1, "a", true, &a) || rt_arg_tensor(vm, c, 2, "b", true, &b))
        return -1;
    return ret_tensor(vm, c, bk_where(vm->bk, k, a, b), out);
}

/* float32(x), float64(x): x in that dtype (a recorded cast: gradients flow
 * back in x's dtype); dtype(x): "float32" or "float64". */
static int cast_to(rt_vm *vm, const rt_call *c, rt_value *out, bk_dtype dt) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    if (x->dtype == (int8_t)dt) return ret_tensor(vm, c, bk_retain(x), out);
    return ret_tensor(vm, c, bk_cast(vm->bk, x, dt), out);
}

static int b_float32(rt_vm *vm, const rt_call *c, rt_value *out) { return cast_to(vm, c, out, BK_F32); }
static int b_float64(rt_vm *vm, const rt_call *c, rt_value *out) { return cast_to(vm, c, out, BK_F64); }

static int b_dtype(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    const char *name = x->dtype == BK_F32 ? "float32" : "float64";
    rt_str *s = rt_str_new(name, strlen(name));
    if (!s) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&s->h);
    return 0;
}

static int b_shape(rt_vm *vm, const rt_call *c, rt_value *out) {
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    double sh[BK_MAXDIM];
    for (int i = 0; i < x->ndim; i++) sh[i] = (double)x->shape[i];
    return ret_tensor(vm, c, bk_from_f64(vm->bk, 1, (int64_t[]){x->ndim}, sh), out);
}

/* ----------------------------------------------------------- devices --- */

/* The device called `name`: "cpu", "cuda", or the run's default device by
 * its own name (a test device); NULL after an error at argument pos. */
static const bk_device *device_arg(rt_vm *vm, const rt_call *c, const char *name) {
    const bk_device *def = bk_default_device(vm->bk);
    if (strcmp(name, def->name) == 0) return def;
    const bk_device *d = bk_device_named(vm->bk, name);
    if (d) return d;
    if (c->nargs > 1) rt_error_arg(vm, c, 1, "%s: %s", c->name, bk_errmsg(vm->bk));
    else rt_error_kw(vm, c, "device", "%s: %s", c->name, bk_errmsg(vm->bk));
    return NULL;
}

/* to(x, device): a copy of x on the device (x itself when it is there).
 * Like detach, the copy is not differentiable. */
static int b_to(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "device", NULL};
    bk_tensor *x;
    const char *name;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_string(vm, c, 1, "device", true, &name))
        return -1;
    const bk_device *d = device_arg(vm, c, name);
    return d ? ret_tensor(vm, c, bk_to_device(vm->bk, x, d), out) : -1;
}

/* device(x): the name of the device x lives on. */
static int b_device(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", NULL};
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    const char *name = bk_tensor_device(x)->name;
    rt_str *s = rt_str_new(name, strlen(name));
    if (!s) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&s->h);
    return 0;
}

const rt_builtin_def rt_math_builtins[] = {
    {"exp", b_exp}, {"log", b_log}, {"log1p", b_log1p}, {"expm1", b_expm1},
    {"sqrt", b_sqrt}, {"abs", b_abs}, {"sigmoid", b_sigmoid}, {"logit", b_logit},
    {"softplus", b_softplus}, {"log_sigmoid", b_log_sigmoid}, {"tanh", b_tanh},
    {"relu", b_relu}, {"sin", b_sin}, {"cos", b_cos}, {"lgamma", b_lgamma},
    {"digamma", b_digamma}, {"erf", b_erf}, {"erfc", b_erfc}, {"floor", b_floor},
    {"square", b_square}, {"detach", b_detach}, {"round", b_round},
    {"sum", b_sum}, {"mean", b_mean}, {"prod", b_prod}, {"max", b_max}, {"min", b_min},
    {"logsumexp", b_logsumexp}, {"softmax", b_softmax}, {"log_softmax", b_log_softmax},
    {"cumsum", b_cumsum},
    {"zeros", b_zeros}, {"ones", b_ones}, {"full", b_full}, {"eye", b_eye},
    {"arange", b_arange}, {"range", b_arange}, {"linspace", b_linspace},
    {"dot", b_dot}, {"matmul", b_matmul}, {"transpose", b_transpose}, {"reshape", b_reshape},
    {"concat", b_concat}, {"stack", b_stack}, {"cholesky", b_cholesky},
    {"solve_triangular", b_solve_triangular}, {"logdet", b_logdet}, {"inverse", b_inverse},
    {"where", b_where}, {"shape", b_shape}, {"float32", b_float32}, {"float64", b_float64},
    {"dtype", b_dtype}, {"to", b_to}, {"device", b_device},
    {NULL, NULL},
};
