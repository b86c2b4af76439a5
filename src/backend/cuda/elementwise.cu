/* elementwise.cu - the elementwise ops (binary, unary, comparisons, where,
 * the activations with a constant) with NumPy broadcasting over strided
 * inputs, the ELU / leaky ReLU backward rules, and the copy / cast driver
 * the shape ops use.  Each op is a template instance, so its math folds
 * into a grid-stride loop; the formulas are those of ops_elementwise.c and
 * special.c, in double. */
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

/* ------------------------------------------- special functions (device) --- */

__device__ static const double CU_PI = 3.14159265358979323846;
__device__ static const double PSI_ROOT_HI = 1.4616321449683622, PSI_ROOT_LO = 9.549995429965697e-17;
__device__ static const double PSI_ROOT_C[] = {
    9.6767224544762117e-1,  -4.4276316898359211e-1, 2.5849976095565101e-1,  -1.6394270544240653e-1,
    1.0782405069126237e-1,  -7.2199561256454711e-2, 4.8804288164143107e-2,  -3.3161126474847359e-2,
    2.2597648232218105e-2,  -1.5424765904948959e-2, 1.0538791616612175e-2,  -7.2045343863568682e-3,
    4.9267813957298534e-3,  -3.3698016554393281e-3, 2.3051263267349278e-3,  -1.5769367714301973e-3,
    1.0788252019162966e-3,  -7.3807093899600513e-4, 5.0495326583460204e-4,  -3.454680251063077e-4,
    2.3635601564027053e-4,  -1.6170622091974803e-4, 1.1063372768747411e-4,  -7.5691795821950659e-5};

__device__ static double d_digamma_gap(double x) {
    double f = 1 / (x * x);
    return 0.5 / x + f * (1.0 / 12 + f * (-1.0 / 120 + f * (1.0 / 252 + f * (-1.0 / 240 + f * (1.0 / 132 +
           f * (-691.0 / 32760 + f * (1.0 / 12)))))));
}

__device__ static double d_cotpi(double r) {
    double ar = fabs(r);
    double c = ar < 0.25 ? 1 / tan(CU_PI * ar) : tan(CU_PI * (0.5 - ar));
    return r < 0 ? -c : c;
}

/* special.c's bk_digamma, line for line */
__device__ static double d_digamma(double x) {
    if (isnan(x) || x == -INFINITY) return NAN;
    if (x == INFINITY) return INFINITY;
    if (x <= 0 && x == floor(x)) return NAN;
    double r = 0;
    if (x < 0) {
        r = -CU_PI * d_cotpi(x - rint(x));
        x = 1 - x;
    }
    if (fabs(x - PSI_ROOT_HI) < 0.25) {
        double d = (x - PSI_ROOT_HI) - PSI_ROOT_LO, s = 0;
        for (int n = (int)(sizeof PSI_ROOT_C / sizeof *PSI_ROOT_C); n-- > 0;) s = (s + PSI_ROOT_C[n]) * d;
        return r + s;
    }
    while (x < 10) {
        r -= 1 / x;
        x += 1;
    }
    return r + log(x) - d_digamma_gap(x);
}

/* special.c's bk_trigamma (the reflection without recursion) */
__device__ static double d_trigamma(double x) {
    if (isnan(x) || x == -INFINITY) return NAN;
    if (x == INFINITY) return 0;
    if (x <= 0 && x == floor(x)) return INFINITY;
    double refl = 0, sign = 1;
    if (x < 0) {
        double s = sin(CU_PI * (x - rint(x)));
        refl = CU_PI * CU_PI / (s * s);
        sign = -1;
        x = 1 - x;
    }
    double r = 0;
    while (x < 10) {
        r += 1 / (x * x);
        x += 1;
    }
    double f = 1 / (x * x);
    double t = 1 / x + f / 2 + (1 / x) * f * (1.0 / 6 + f * (-1.0 / 30 + f * (1.0 / 42 + f * (-1.0 / 30 +
               f * (5.0 / 66 + f * (-691.0 / 2730 + f * (7.0 / 6 + f * (-3617.0 / 510))))))));
    return sign * (r + t) + refl;
}

__device__ static double d_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
__device__ static double d_sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

template <int OP>
__device__ __forceinline__ double ew_apply(double x, double y, double z, double k) {
    switch (OP) {
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
    case BK_OP_WHERE: return x != 0 ? y : z;
    case BK_OP_NEG: return -x;
    case BK_OP_ABS: return fabs(x);
    case BK_OP_EXP: return exp(x);
    case BK_OP_LOG: return log(x);
    case BK_OP_LOG1P: return log1p(x);
    case BK_OP_EXPM1: return expm1(x);
    case BK_OP_SQRT: return sqrt(x);
    case BK_OP_SQUARE: return x * x;
    case BK_OP_SIGMOID: return d_sigmoid(x);
    case BK_OP_LOGIT: return log(x) - log1p(-x);
    case BK_OP_SOFTPLUS: return d_softplus(x);
    case BK_OP_LOG_SIGMOID: return -d_softplus(-x);
    case BK_OP_TANH: return tanh(x);
    case BK_OP_RELU: return x > 0 ? x : 0.0;
    case BK_OP_ELU: return x > 0 ? x : k * expm1(x);
    case BK_OP_LEAKY_RELU: return x > 0 ? x : k * x;
    case BK_OP_SIN: return sin(x);
    case BK_OP_COS: return cos(x);
    case BK_OP_LGAMMA: return lgamma(x);
    case BK_OP_DIGAMMA: return d_digamma(x);
    case BK_OP_TRIGAMMA: return d_trigamma(x);
    case BK_OP_ERF: return erf(x);
    case BK_OP_ERFC: return erfc(x);
    case BK_OP_FLOOR: return floor(x);
    case BK_OP_NOT: return x == 0;
    case CU_OP_COPY: return x;
    case CU_OP_ELU_BW: return y * (x > 0 ? 1.0 : k * exp(x));   /* x: input, y: gradient */
    case CU_OP_LEAKY_BW: return y * (x > 0 ? 1.0 : k);
    }
    return NAN;
}

/* One input of the driver: a strided view broadcast to the output (zero
 * strides repeat), or a constant. */
typedef struct ew_in {
    cu_view v;
    int constant;
    double value;
} ew_in;

typedef struct ew_job {
    int n;
    ew_in a[3];
    double k;
} ew_job;

__device__ __forceinline__ double ew_get(const ew_in &a, int64_t i) {
    return a.constant ? a.value : cu_load(a.v, i);
}

template <int OP>
__global__ void ew_kernel(ew_job J, void *out, int out32, int64_t N) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
        double x = ew_get(J.a[0], i);
        double y = J.n > 1 ? ew_get(J.a[1], i) : 0.0;
        double z = J.n > 2 ? ew_get(J.a[2], i) : 0.0;
        cu_store(out, out32, i, ew_apply<OP>(x, y, z, J.k));
    }
}

bk_tensor *cu_elementwise(bk_ctx *ctx, int op, int n, bk_tensor **in, double k, int outdt) {
    cu_state *s = cu_get(ctx);
    if (!s) return NULL;
    int ndim = in[0]->ndim;
    int64_t shape[BK_MAXDIM];
    memcpy(shape, in[0]->shape, sizeof shape);
    bool any32 = false;
    for (int i = 0; i < n; i++) {
        if (in[i]->dtype == BK_F32) any32 = true;
        if (i == 0) continue;
        int64_t s2[BK_MAXDIM];
        int nd2;
        if (bk_broadcast_shapes(ctx, ndim, shape, in[i]->ndim, in[i]->shape, &nd2, s2)) return NULL;
        ndim = nd2;
        memcpy(shape, s2, sizeof shape);
    }
    int dt = outdt >= 0 ? outdt : any32 ? BK_F32 : BK_F64;
    bk_tensor *out = cu_empty(ctx, dt, ndim, shape);
    if (!out || out->numel == 0) return out;
    ew_job J;
    memset(&J, 0, sizeof J);
    J.n = n;
    J.k = k;
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = in[i];
        ew_in *a = &J.a[i];
        if (bk_tensor_device(t) == &bk_cpu_device) { /* a 0-d constant (tensor.c allows no other) */
            a->constant = 1;
            a->value = bk_item(t);
            continue;
        }
        /* t's strides aligned to the output's dims, 0 where broadcast */
        cu_view v;
        memset(&v, 0, sizeof v);
        v.p = t->st->data;
        v.f32 = t->dtype == BK_F32;
        v.ndim = ndim;
        v.off = t->offset;
        bool same = t->ndim == ndim;
        for (int d = 0; d < ndim; d++) {
            int td = d - (ndim - t->ndim);
            v.shape[d] = shape[d];
            v.st[d] = (td < 0 || t->shape[td] == 1) ? 0 : t->strides[td];
            if (td >= 0 && t->shape[td] != shape[d]) same = false;
        }
        v.plain = same && bk_is_contiguous(t);
        a->v = v;
    }
    int64_t N = out->numel;
    unsigned g = cu_grid(N);
    void *o = out->st->data;
    int o32 = dt == BK_F32;
    switch (op) {
#define EW_CASE(E) \
    case BK_OP_##E: ew_kernel<BK_OP_##E><<<g, CU_THREADS, 0, s->stream>>>(J, o, o32, N); break;
        CU_EW_OPS(EW_CASE)
#undef EW_CASE
    case CU_OP_COPY: ew_kernel<CU_OP_COPY><<<g, CU_THREADS, 0, s->stream>>>(J, o, o32, N); break;
    case CU_OP_ELU_BW: ew_kernel<CU_OP_ELU_BW><<<g, CU_THREADS, 0, s->stream>>>(J, o, o32, N); break;
    case CU_OP_LEAKY_BW: ew_kernel<CU_OP_LEAKY_BW><<<g, CU_THREADS, 0, s->stream>>>(J, o, o32, N); break;
    default:
        bk_release(out);
        bk_seterr(ctx, "cuda: op %d is not elementwise", op);
        return NULL;
    }
    if (cu_launched(ctx, bk_optable[op < BK_OP_COUNT ? op : BK_OP_CONTIGUOUS].name)) {
        bk_release(out);
        return NULL;
    }
    return out;
}

#define FW_EW(E, N)                                                       \
    bk_tensor *cu_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { \
        (void)a;                                                          \
        return cu_elementwise(c, BK_OP_##E, N, in, 0, -1);                \
    }
FW_EW(ADD, 2) FW_EW(SUB, 2) FW_EW(MUL, 2) FW_EW(DIV, 2) FW_EW(POW, 2) FW_EW(MAXIMUM, 2)
FW_EW(MINIMUM, 2) FW_EW(LT, 2) FW_EW(LE, 2) FW_EW(GT, 2) FW_EW(GE, 2) FW_EW(EQ, 2) FW_EW(NE, 2)
FW_EW(WHERE, 3) FW_EW(NEG, 1) FW_EW(ABS, 1) FW_EW(EXP, 1) FW_EW(LOG, 1) FW_EW(LOG1P, 1)
FW_EW(EXPM1, 1) FW_EW(SQRT, 1) FW_EW(SQUARE, 1) FW_EW(SIGMOID, 1) FW_EW(LOGIT, 1)
FW_EW(SOFTPLUS, 1) FW_EW(LOG_SIGMOID, 1) FW_EW(TANH, 1) FW_EW(RELU, 1) FW_EW(SIN, 1)
FW_EW(COS, 1) FW_EW(LGAMMA, 1) FW_EW(DIGAMMA, 1) FW_EW(TRIGAMMA, 1) FW_EW(ERF, 1)
FW_EW(ERFC, 1) FW_EW(FLOOR, 1) FW_EW(NOT, 1)
#undef FW_EW

bk_tensor *cu_fw_ELU(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    return cu_elementwise(c, BK_OP_ELU, 1, in, a->scalar, -1);
}
bk_tensor *cu_fw_LEAKY_RELU(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    return cu_elementwise(c, BK_OP_LEAKY_RELU, 1, in, a->scalar, -1);
}

/* gin = g * f'(x) in one pass, as ops_nn.c (float64, the input's shape). */
static int act_backward(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin, int op) {
    if (!e->in[0]->requires_grad) return 0;
    if (g->numel != e->in[0]->numel) {
        bk_seterr(c, "%s backward: gradient has %lld elements, expected %lld", bk_optable[e->op].name,
                  (long long)g->numel, (long long)e->in[0]->numel);
        return -1;
    }
    bk_tensor *in2[2] = {e->in[0], g};
    gin[0] = cu_elementwise(c, op, 2, in2, e->args.scalar, BK_F64);
    return gin[0] ? 0 : -1;
}

int cu_bw_ELU(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    return act_backward(c, e, g, gin, CU_OP_ELU_BW);
}
int cu_bw_LEAKY_RELU(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    return act_backward(c, e, g, gin, CU_OP_LEAKY_BW);
}
