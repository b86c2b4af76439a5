/* ops_elementwise.c - elementwise ops with NumPy broadcasting over strided
 * inputs, and their backward rules.
 *
 * The kernels run on float64, or on float32 in float (ops_map.inc is the
 * driver, included once per type).  One driver walks any number of inputs with
 * broadcast strides (a zero stride repeats an element); contiguous inputs
 * of the output's shape and scalar inputs take flat fast paths.  Backward
 * rules are written with ops (grad recording is off while they run). */
#include <math.h>
#include <string.h>
#include "ops_impl.h"
#include "special.h"

/* ------------------------------------------------------- scalar kernels --- */

static double apply_bin(int op, double x, double y) {
    switch (op) {
    case BK_OP_ADD: return x + y;
    case BK_OP_SUB: return x - y;
    case BK_OP_MUL: return x * y;
    case BK_OP_DIV: return x / y;
    case BK_OP_POW: return pow(x, y);
    case BK_OP_MAXIMUM: return x >= y || isnan(x) ? x : y;
    case BK_OP_MINIMUM: return x <= y || isnan(x) ? x : y;
    case BK_OP_LT: return x < y;
    case BK_OP_LE: return x <= y;
    case BK_OP_GT: return x > y;
    case BK_OP_GE: return x >= y;
    case BK_OP_EQ: return x == y;
    case BK_OP_NE: return x != y;
    }
    return NAN;
}

static double apply_un(int op, double x) {
    switch (op) {
    case BK_OP_NEG: return -x;
    case BK_OP_ABS: return fabs(x);
    case BK_OP_EXP: return exp(x);
    case BK_OP_LOG: return log(x);
    case BK_OP_LOG1P: return log1p(x);
    case BK_OP_EXPM1: return expm1(x);
    case BK_OP_SQRT: return sqrt(x);
    case BK_OP_SQUARE: return x * x;
    case BK_OP_SIGMOID: return bk_sigmoid(x);
    case BK_OP_LOGIT: return log(x) - log1p(-x);
    case BK_OP_SOFTPLUS: return bk_softplus(x);
    case BK_OP_LOG_SIGMOID: return bk_log_sigmoid(x);
    case BK_OP_TANH: return tanh(x);
    case BK_OP_RELU: return x > 0 ? x : 0.0;
    case BK_OP_SIN: return sin(x);
    case BK_OP_COS: return cos(x);
    case BK_OP_LGAMMA: return lgamma(x);
    case BK_OP_DIGAMMA: return bk_digamma(x);
    case BK_OP_TRIGAMMA: return bk_trigamma(x);
    case BK_OP_ERF: return erf(x);
    case BK_OP_ERFC: return erfc(x);
    case BK_OP_FLOOR: return floor(x);
    case BK_OP_NOT: return x == 0;
    }
    return NAN;
}

/* The same kernels in float (float32 tensors), with float libm calls;
 * the special functions without a float form are taken in double. */
static inline float sigmoid_f(float x) {
    if (x >= 0) return 1 / (1 + expf(-x));
    float e = expf(x);
    return e / (1 + e);
}

static inline float softplus_f(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

static float apply_bin_f(int op, float x, float y) {
    switch (op) {
    case BK_OP_ADD: return x + y;
    case BK_OP_SUB: return x - y;
    case BK_OP_MUL: return x * y;
    case BK_OP_DIV: return x / y;
    case BK_OP_POW: return powf(x, y);
    case BK_OP_MAXIMUM: return x >= y || isnan(x) ? x : y;
    case BK_OP_MINIMUM: return x <= y || isnan(x) ? x : y;
    case BK_OP_LT: return x < y;
    case BK_OP_LE: return x <= y;
    case BK_OP_GT: return x > y;
    case BK_OP_GE: return x >= y;
    case BK_OP_EQ: return x == y;
    case BK_OP_NE: return x != y;
    }
    return NAN;
}

static float apply_un_f(int op, float x) {
    switch (op) {
    case BK_OP_NEG: return -x;
    case BK_OP_ABS: return fabsf(x);
    case BK_OP_EXP: return expf(x);
    case BK_OP_LOG: return logf(x);
    case BK_OP_LOG1P: return log1pf(x);
    case BK_OP_EXPM1: return expm1f(x);
    case BK_OP_SQRT: return sqrtf(x);
    case BK_OP_SQUARE: return x * x;
    case BK_OP_SIGMOID: return sigmoid_f(x);
    case BK_OP_LOGIT: return logf(x) - log1pf(-x);
    case BK_OP_SOFTPLUS: return softplus_f(x);
    case BK_OP_LOG_SIGMOID: return -softplus_f(-x);
    case BK_OP_TANH: return tanhf(x);
    case BK_OP_RELU: return x > 0 ? x : 0.0f;
    case BK_OP_SIN: return sinf(x);
    case BK_OP_COS: return cosf(x);
    case BK_OP_ERF: return erff(x);
    case BK_OP_ERFC: return erfcf(x);
    case BK_OP_FLOOR: return floorf(x);
    case BK_OP_NOT: return x == 0;
    }
    return (float)apply_un(op, x); /* lgamma, digamma, trigamma */
}

/* --------------------------------------------- 1-element fast paths --- */

const signed char bk__pointwise_arity[BK_OP_COUNT] = {
    [BK_OP_ADD] = 2, [BK_OP_SUB] = 2, [BK_OP_MUL] = 2, [BK_OP_DIV] = 2, [BK_OP_POW] = 2,
    [BK_OP_MAXIMUM] = 2, [BK_OP_MINIMUM] = 2, [BK_OP_LT] = 2, [BK_OP_LE] = 2, [BK_OP_GT] = 2,
    [BK_OP_GE] = 2, [BK_OP_EQ] = 2, [BK_OP_NE] = 2,
    [BK_OP_NEG] = 1, [BK_OP_ABS] = 1, [BK_OP_EXP] = 1, [BK_OP_LOG] = 1, [BK_OP_LOG1P] = 1,
    [BK_OP_EXPM1] = 1, [BK_OP_SQRT] = 1, [BK_OP_SQUARE] = 1, [BK_OP_SIGMOID] = 1,
    [BK_OP_LOGIT] = 1, [BK_OP_SOFTPLUS] = 1, [BK_OP_LOG_SIGMOID] = 1, [BK_OP_TANH] = 1,
    [BK_OP_RELU] = 1, [BK_OP_SIN] = 1, [BK_OP_COS] = 1, [BK_OP_LGAMMA] = 1,
    [BK_OP_DIGAMMA] = 1, [BK_OP_TRIGAMMA] = 1, [BK_OP_ERF] = 1, [BK_OP_ERFC] = 1,
    [BK_OP_FLOOR] = 1, [BK_OP_NOT] = 1,
};

__attribute__((flatten)) double bk__pointwise(int op, double x, double y) {
    return bk__pointwise_arity[op] == 2 ? apply_bin(op, x, y) : apply_un(op, x);
}

#define TWO_OVER_SQRT_PI 1.1283791670955125739

/* The same derivatives as the tensor backward rules below, on doubles. */
bk_dpair bk__pointwise_grad(int op, double x, double y, double o) {
    double d[2] = {0, 0}; /* a local array, returned in registers */
    switch (op) {
    case BK_OP_ADD: d[0] = 1; d[1] = 1; break;
    case BK_OP_SUB: d[0] = 1; d[1] = -1; break;
    case BK_OP_MUL: d[0] = y; d[1] = x; break;
    case BK_OP_DIV: d[0] = 1 / y; d[1] = -(o / y); break;
    case BK_OP_POW:
        d[0] = y == 0 ? 0 : y * pow(x, y - 1);
        d[1] = x > 0 ? o * log(x) : 0;
        break;
    case BK_OP_MAXIMUM: d[0] = x >= y; d[1] = !(x >= y); break;
    case BK_OP_MINIMUM: d[0] = x <= y; d[1] = !(x <= y); break;
    case BK_OP_NEG: d[0] = -1; break;
    case BK_OP_ABS: d[0] = (double)(x > 0) - (double)(x < 0); break;
    case BK_OP_EXP: d[0] = o; break;
    case BK_OP_LOG: d[0] = 1 / x; break;
    case BK_OP_LOG1P: d[0] = 1 / (x + 1); break;
    case BK_OP_EXPM1: d[0] = o + 1; break;
    case BK_OP_SQRT: d[0] = 0.5 / o; break;
    case BK_OP_SQUARE: d[0] = 2 * x; break;
    case BK_OP_SIGMOID: d[0] = o * (1 - o); break;
    case BK_OP_LOGIT: d[0] = 1 / (x * (1 - x)); break;
    case BK_OP_SOFTPLUS: d[0] = bk_sigmoid(x); break;
    case BK_OP_LOG_SIGMOID: d[0] = bk_sigmoid(-x); break;
    case BK_OP_TANH: d[0] = 1 - o * o; break;
    case BK_OP_RELU: d[0] = x > 0; break;
    case BK_OP_SIN: d[0] = cos(x); break;
    case BK_OP_COS: d[0] = -sin(x); break;
    case BK_OP_LGAMMA: d[0] = bk_digamma(x); break;
    case BK_OP_DIGAMMA: d[0] = bk_trigamma(x); break;
    case BK_OP_ERF: d[0] = TWO_OVER_SQRT_PI * exp(-(x * x)); break;
    case BK_OP_ERFC: d[0] = -TWO_OVER_SQRT_PI * exp(-(x * x)); break;
    default: break; /* comparisons, trigamma, floor, not: no gradient */
    }
    return (bk_dpair){{d[0], d[1]}};
}

/* ------------------------------------------------------------- driver --- */

/* Strides of t broadcast to an output of ndim dims (0 where repeated). */
static void bcast_strides(const bk_tensor *t, int ndim, const int64_t *shape, int64_t *st) {
    for (int d = 0; d < ndim; d++) {
        int td = d - (ndim - t->ndim);
        st[d] = (td < 0 || t->shape[td] == 1) ? 0 : t->strides[td];
        (void)shape;
    }
}

static bool plain(const bk_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim || !bk_is_contiguous(t)) return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

#define MAP_T double
#define MAP_DT BK_F64
#define MAP_NAME map_f64
#define MAP_UN apply_un
#define MAP_BIN apply_bin
#include "ops_map.inc"
#undef MAP_T
#undef MAP_DT
#undef MAP_NAME
#undef MAP_UN
#undef MAP_BIN

#define MAP_T float
#define MAP_DT BK_F32
#define MAP_NAME map_f32
#define MAP_UN apply_un_f
#define MAP_BIN apply_bin_f
#include "ops_map.inc"
#undef MAP_T
#undef MAP_DT
#undef MAP_NAME
#undef MAP_UN
#undef MAP_BIN

/* out = op(in[0], ..., in[n-1]) elementwise; n is 1, 2 or 3 (WHERE).  The
 * inputs have one dtype (bk_apply converts mixed ones); float32 is
 * computed in float. */
static bk_tensor *map_n(bk_ctx *ctx, int op, int n, bk_tensor **in) {
    return in[0]->dtype == BK_F32 ? map_f32(ctx, op, n, in) : map_f64(ctx, op, n, in);
}

/* ----------------------------------------------------- backward helpers --- */

#define IN(k) (e->in[k])
#define WANT(k) (e->in[k]->requires_grad)

static bk_tensor *scal(bk_ctx *c, double v) { return bk_scalar(c, v); }

/* g * f, releasing f; NULL-safe. */
static bk_tensor *times(bk_ctx *c, bk_tensor *g, bk_tensor *f) {
    if (!f) return NULL;
    bk_tensor *r = bk_mul(c, g, f);
    bk_release(f);
    return r;
}

static int done(bk_ctx *c, bk_tensor **gin, int n) {
    (void)c;
    (void)gin;
    (void)n;
    return 0;
}

/* ----------------------------------------------------------- binary ops --- */

#define FW_BIN(E)                                                            \
    bk_tensor *bk_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {    \
        (void)a;                                                             \
        return map_n(c, BK_OP_##E, 2, in);                                   \
    }
FW_BIN(ADD)
FW_BIN(SUB)
FW_BIN(MUL)
FW_BIN(DIV)
FW_BIN(POW)
FW_BIN(MAXIMUM)
FW_BIN(MINIMUM)
FW_BIN(LT)
FW_BIN(LE)
FW_BIN(GT)
FW_BIN(GE)
FW_BIN(EQ)
FW_BIN(NE)

int bk_bw_ADD(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    if (WANT(0)) gin[0] = bk_retain(g);
    if (WANT(1)) gin[1] = bk_retain(g);
    return done(c, gin, 2);
}

int bk_bw_SUB(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    if (WANT(0)) gin[0] = bk_retain(g);
    if (WANT(1) && !(gin[1] = bk_unop(c, BK_OP_NEG, g))) return -1;
    return 0;
}

int bk_bw_MUL(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    if (WANT(0) && !(gin[0] = bk_mul(c, g, IN(1)))) return -1;
    if (WANT(1) && !(gin[1] = bk_mul(c, g, IN(0)))) return -1;
    return 0;
}

int bk_bw_DIV(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    if (WANT(0) && !(gin[0] = bk_div(c, g, IN(1)))) return -1;
    if (WANT(1)) {
        /* d(a/b)/db = -out / b */
        bk_tensor *q = bk_div(c, e->out, IN(1));
        bk_tensor *n = q ? bk_unop(c, BK_OP_NEG, q) : NULL;
        bk_release(q);
        if (!(gin[1] = times(c, g, n))) return -1;
    }
    return 0;
}

int bk_bw_POW(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *a = IN(0), *b = IN(1);
    if (WANT(0)) {
        /* b * a^(b-1); where b == 0 the derivative is 0 (avoids 0 * inf) */
        bk_tensor *one = scal(c, 1.0);
        bk_tensor *bm1 = one ? bk_sub(c, b, one) : NULL;
        bk_tensor *p = bm1 ? bk_pow(c, a, bm1) : NULL;
        bk_tensor *d = p ? bk_mul(c, b, p) : NULL;
        bk_tensor *zero = scal(c, 0.0);
        bk_tensor *bz = zero ? bk_binop(c, BK_OP_EQ, b, zero) : NULL;
        bk_tensor *safe = (bz && d) ? bk_where(c, bz, zero, d) : NULL;
        bk_release(one);
        bk_release(bm1);
        bk_release(p);
        bk_release(d);
        bk_release(zero);
        bk_release(bz);
        if (!(gin[0] = times(c, g, safe))) return -1;
    }
    if (WANT(1)) {
        /* out * log(a), only where a > 0 (elsewhere 0) */
        bk_tensor *zero = scal(c, 0.0);
        bk_tensor *pos = zero ? bk_binop(c, BK_OP_GT, a, zero) : NULL;
        bk_tensor *one = scal(c, 1.0);
        bk_tensor *sa = (pos && one) ? bk_where(c, pos, a, one) : NULL;
        bk_tensor *la = sa ? bk_unop(c, BK_OP_LOG, sa) : NULL;
        bk_tensor *d = la ? bk_mul(c, e->out, la) : NULL;
        bk_tensor *safe = d ? bk_where(c, pos, d, zero) : NULL;
        bk_release(zero);
        bk_release(pos);
        bk_release(one);
        bk_release(sa);
        bk_release(la);
        bk_release(d);
        if (!(gin[1] = times(c, g, safe))) return -1;
    }
    return 0;
}

static int bw_select(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin, int op0) {
    /* the gradient goes to the input that was selected (the first on ties) */
    bk_tensor *m0 = bk_binop(c, op0, IN(0), IN(1));
    if (!m0) return -1;
    int rc = 0;
    if (WANT(0) && !(gin[0] = bk_mul(c, g, m0))) rc = -1;
    if (rc == 0 && WANT(1)) {
        bk_tensor *m1 = bk_unop(c, BK_OP_NOT, m0);
        if (!(gin[1] = times(c, g, m1))) rc = -1;
    }
    bk_release(m0);
    return rc;
}

int bk_bw_MAXIMUM(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_select(c, e, g, gin, BK_OP_GE); }
int bk_bw_MINIMUM(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_select(c, e, g, gin, BK_OP_LE); }

#define BW_NONE(E)                                                                          \
    int bk_bw_##E(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {       \
        (void)c;                                                                            \
        (void)e;                                                                            \
        (void)g;                                                                            \
        (void)gin;                                                                          \
        return 0;                                                                           \
    }
BW_NONE(LT)
BW_NONE(LE)
BW_NONE(GT)
BW_NONE(GE)
BW_NONE(EQ)
BW_NONE(NE)
BW_NONE(TRIGAMMA)
BW_NONE(FLOOR)
BW_NONE(NOT)

bk_tensor *bk_fw_WHERE(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    (void)a;
    return map_n(c, BK_OP_WHERE, 3, in);
}

int bk_bw_WHERE(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *zero = scal(c, 0.0);
    if (!zero) return -1;
    int rc = 0;
    if (WANT(1) && !(gin[1] = bk_where(c, IN(0), g, zero))) rc = -1;
    if (rc == 0 && WANT(2) && !(gin[2] = bk_where(c, IN(0), zero, g))) rc = -1;
    bk_release(zero);
    return rc;
}

/* ------------------------------------------------------------ unary ops --- */

#define FW_UN(E)                                                             \
    bk_tensor *bk_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {    \
        (void)a;                                                             \
        return map_n(c, BK_OP_##E, 1, in);                                   \
    }
FW_UN(NEG)
FW_UN(ABS)
FW_UN(EXP)
FW_UN(LOG)
FW_UN(LOG1P)
FW_UN(EXPM1)
FW_UN(SQRT)
FW_UN(SQUARE)
FW_UN(SIGMOID)
FW_UN(LOGIT)
FW_UN(SOFTPLUS)
FW_UN(LOG_SIGMOID)
FW_UN(TANH)
FW_UN(RELU)
FW_UN(SIN)
FW_UN(COS)
FW_UN(LGAMMA)
FW_UN(DIGAMMA)
FW_UN(TRIGAMMA)
FW_UN(ERF)
FW_UN(ERFC)
FW_UN(FLOOR)
FW_UN(NOT)

/* gin[0] = g * f(x, out) where f is built by `deriv`. */
typedef bk_tensor *(*deriv_fn)(bk_ctx *, bk_tensor *x, bk_tensor *out);

static int bw_unary(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin, deriv_fn f) {
    if (!WANT(0)) return 0;
    gin[0] = times(c, g, f(c, IN(0), e->out));
    return gin[0] ? 0 : -1;
}

static bk_tensor *d_neg(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)x; (void)o; return scal(c, -1.0); }
static bk_tensor *d_abs(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    /* sign(x), with 0 at 0 */
    (void)o;
    bk_tensor *z = scal(c, 0.0);
    bk_tensor *p = z ? bk_binop(c, BK_OP_GT, x, z) : NULL;
    bk_tensor *n = z ? bk_binop(c, BK_OP_LT, x, z) : NULL;
    bk_tensor *s = (p && n) ? bk_sub(c, p, n) : NULL;
    bk_release(z);
    bk_release(p);
    bk_release(n);
    return s;
}
static bk_tensor *d_exp(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)c; (void)x; return bk_retain(o); }
static bk_tensor *d_log(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)o;
    bk_tensor *one = scal(c, 1.0);
    bk_tensor *r = one ? bk_div(c, one, x) : NULL;
    bk_release(one);
    return r;
}
static bk_tensor *d_log1p(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)o;
    bk_tensor *one = scal(c, 1.0);
    bk_tensor *d = bk_add_s(c, x, 1.0);
    bk_tensor *r = (one && d) ? bk_div(c, one, d) : NULL;
    bk_release(one);
    bk_release(d);
    return r;
}
static bk_tensor *d_expm1(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)x; return bk_add_s(c, o, 1.0); }
static bk_tensor *d_sqrt(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)x;
    bk_tensor *h = scal(c, 0.5);
    bk_tensor *r = h ? bk_div(c, h, o) : NULL;
    bk_release(h);
    return r;
}
static bk_tensor *d_square(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return bk_mul_s(c, x, 2.0); }
static bk_tensor *d_sigmoid(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)x;
    bk_tensor *one = scal(c, 1.0);
    bk_tensor *m = one ? bk_sub(c, one, o) : NULL;
    bk_tensor *r = m ? bk_mul(c, o, m) : NULL;
    bk_release(one);
    bk_release(m);
    return r;
}
static bk_tensor *d_logit(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)o;
    bk_tensor *one = scal(c, 1.0);
    bk_tensor *m = one ? bk_sub(c, one, x) : NULL;
    bk_tensor *p = m ? bk_mul(c, x, m) : NULL;
    bk_tensor *r = p ? bk_div(c, one, p) : NULL;
    bk_release(one);
    bk_release(m);
    bk_release(p);
    return r;
}
static bk_tensor *d_softplus(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return bk_unop(c, BK_OP_SIGMOID, x); }
static bk_tensor *d_log_sigmoid(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    /* 1 - sigmoid(x) = sigmoid(-x) */
    (void)o;
    bk_tensor *n = bk_unop(c, BK_OP_NEG, x);
    bk_tensor *r = n ? bk_unop(c, BK_OP_SIGMOID, n) : NULL;
    bk_release(n);
    return r;
}
static bk_tensor *d_tanh(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)x;
    bk_tensor *one = scal(c, 1.0);
    bk_tensor *s = bk_mul(c, o, o);
    bk_tensor *r = (one && s) ? bk_sub(c, one, s) : NULL;
    bk_release(one);
    bk_release(s);
    return r;
}
static bk_tensor *d_relu(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)o;
    bk_tensor *z = scal(c, 0.0);
    bk_tensor *r = z ? bk_binop(c, BK_OP_GT, x, z) : NULL;
    bk_release(z);
    return r;
}
static bk_tensor *d_sin(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return bk_unop(c, BK_OP_COS, x); }
static bk_tensor *d_cos(bk_ctx *c, bk_tensor *x, bk_tensor *o) {
    (void)o;
    bk_tensor *s = bk_unop(c, BK_OP_SIN, x);
    bk_tensor *r = s ? bk_unop(c, BK_OP_NEG, s) : NULL;
    bk_release(s);
    return r;
}
static bk_tensor *d_lgamma(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return bk_unop(c, BK_OP_DIGAMMA, x); }
static bk_tensor *d_digamma(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return bk_unop(c, BK_OP_TRIGAMMA, x); }
static bk_tensor *d_erf_k(bk_ctx *c, bk_tensor *x, double k) {
    /* k * 2/sqrt(pi) * exp(-x^2) */
    bk_tensor *s = bk_mul(c, x, x);
    bk_tensor *n = s ? bk_mul_s(c, s, -1.0) : NULL;
    bk_tensor *ex = n ? bk_unop(c, BK_OP_EXP, n) : NULL;
    bk_tensor *r = ex ? bk_mul_s(c, ex, k * TWO_OVER_SQRT_PI) : NULL;
    bk_release(s);
    bk_release(n);
    bk_release(ex);
    return r;
}
static bk_tensor *d_erf(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return d_erf_k(c, x, 1.0); }
static bk_tensor *d_erfc(bk_ctx *c, bk_tensor *x, bk_tensor *o) { (void)o; return d_erf_k(c, x, -1.0); }

#define BW_UN(E, f)                                                                          \
    int bk_bw_##E(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {        \
        return bw_unary(c, e, g, gin, f);                                                    \
    }
BW_UN(NEG, d_neg)
BW_UN(ABS, d_abs)
BW_UN(EXP, d_exp)
BW_UN(LOG, d_log)
BW_UN(LOG1P, d_log1p)
BW_UN(EXPM1, d_expm1)
BW_UN(SQRT, d_sqrt)
BW_UN(SQUARE, d_square)
BW_UN(SIGMOID, d_sigmoid)
BW_UN(LOGIT, d_logit)
BW_UN(SOFTPLUS, d_softplus)
BW_UN(LOG_SIGMOID, d_log_sigmoid)
BW_UN(TANH, d_tanh)
BW_UN(RELU, d_relu)
BW_UN(SIN, d_sin)
BW_UN(COS, d_cos)
BW_UN(LGAMMA, d_lgamma)
BW_UN(DIGAMMA, d_digamma)
BW_UN(ERF, d_erf)
BW_UN(ERFC, d_erfc)
