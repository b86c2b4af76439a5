/* bench_cuda.c - the CUDA backend against the CPU backend, side by side:
 *  - GEMM GFLOP/s through bk_matmul, float32 and float64, n = 1024..4096;
 *  - one training step (forward + backward + tape reset) of a VAE-sized
 *    MLP, 784-400-20(mu, log var)-400-784, float32, batches 128 and 1024;
 *  - elementwise throughput (exp, add) on 10^7 elements.
 * Wall-clock times (the GPU works asynchronously: every timing ends with a
 * read of one element, which waits for the stream); medians of several
 * repetitions.  The CPU rows use the OpenBLAS threads the environment gives
 * (OPENBLAS_NUM_THREADS): they are printed.  Built by CMake with
 * -DPPL_CUDA=ON (target bench_cuda); scripts/gpu_check.sh runs it.
 * Usage: bench_cuda [max_gemm_n]   (default 4096) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "device_cuda.h"
#include "rng.h"
#include "tensor.h"

static const bk_device *CPU = &bk_cpu_device;
static const bk_device *GPU = &bk_cuda_device;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(bk_ctx *c, const char *what) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, bk_errmsg(c));
    exit(1);
}

/* Waits for the device's work on t (a one-element read). */
static void sync_on(bk_tensor *t) { (void)bk_get(t, 0); }

static bk_tensor *random_on(bk_ctx *c, bk_rng *r, const bk_device *dev, int dt, int ndim, const int64_t *shape,
                            double scale) {
    bk_tensor *h = bk_rand_normal(c, r, ndim, shape);
    bk_tensor *s = h ? bk_mul_s(c, h, scale) : NULL;
    bk_tensor *t = s && dt == BK_F32 ? bk_cast(c, s, BK_F32) : bk_retain(s);
    bk_tensor *d = t ? bk_to_device(c, t, dev) : NULL;
    bk_release(h);
    bk_release(s);
    bk_release(t);
    if (!d) die(c, "input");
    return d;
}

/* ------------------------------------------------------------------ GEMM --- */

static double gemm_gflops(bk_ctx *c, bk_rng *r, const bk_device *dev, int dt, int64_t n, int reps) {
    int64_t sh[2] = {n, n};
    bk_tensor *a = random_on(c, r, dev, dt, 2, sh, 1), *b = random_on(c, r, dev, dt, 2, sh, 1);
    double t[8];
    for (int k = -1; k < reps; k++) { /* one warm-up */
        double t0 = now();
        bk_tensor *p = bk_matmul(c, a, b);
        if (!p) die(c, "matmul");
        sync_on(p);
        if (k >= 0) t[k] = now() - t0;
        bk_release(p);
    }
    bk_release(a);
    bk_release(b);
    return 2.0 * (double)n * (double)n * (double)n / median(t, reps) * 1e-9;
}

/* ------------------------------------------------------------------- MLP --- */

typedef struct mlp {
    bk_tensor *w[5], *b[5]; /* enc 784-400, mu 400-20, logvar 400-20, dec 20-400, 400-784 */
} mlp;

static const int64_t LAYER[5][2] = {{784, 400}, {400, 20}, {400, 20}, {20, 400}, {400, 784}};

static void mlp_init(bk_ctx *c, bk_rng *r, const bk_device *dev, mlp *m) {
    for (int i = 0; i < 5; i++) {
        m->w[i] = random_on(c, r, dev, BK_F32, 2, LAYER[i], 1 / sqrt((double)LAYER[i][0]));
        m->b[i] = random_on(c, r, dev, BK_F32, 1, &LAYER[i][1], 0.01);
        bk_set_requires_grad(m->w[i], true);
        bk_set_requires_grad(m->b[i], true);
    }
}

static void mlp_free(mlp *m) {
    for (int i = 0; i < 5; i++) {
        bk_release(m->w[i]);
        bk_release(m->b[i]);
    }
}

static bk_tensor *dense(bk_ctx *c, bk_tensor *x, bk_tensor *w, bk_tensor *b, int act) {
    bk_tensor *p = bk_matmul(c, x, w), *q = p ? bk_add(c, p, b) : NULL;
    bk_tensor *r = !q ? NULL : act == 1 ? bk_unop(c, BK_OP_RELU, q) : act == 2 ? bk_unop(c, BK_OP_SIGMOID, q)
                                                                             : bk_retain(q);
    bk_release(p);
    bk_release(q);
    return r;
}

/* One step: the negative ELBO of a Gaussian VAE (squared-error decoder),
 * forward and backward; returns the loss. */
static double mlp_step(bk_ctx *c, mlp *m, bk_tensor *x, bk_tensor *eps) {
    bk_tensor *h = dense(c, x, m->w[0], m->b[0], 1);
    bk_tensor *mu = dense(c, h, m->w[1], m->b[1], 0), *lv = dense(c, h, m->w[2], m->b[2], 0);
    bk_tensor *hl = bk_mul_s(c, lv, 0.5), *sd = bk_unop(c, BK_OP_EXP, hl), *n = bk_mul(c, sd, eps);
    bk_tensor *z = bk_add(c, mu, n);
    bk_tensor *h2 = dense(c, z, m->w[3], m->b[3], 1), *xh = dense(c, h2, m->w[4], m->b[4], 2);
    bk_tensor *d = bk_sub(c, xh, x), *d2 = bk_unop(c, BK_OP_SQUARE, d), *rec = bk_sum_all(c, d2);
    bk_tensor *ev = bk_unop(c, BK_OP_EXP, lv), *m2 = bk_unop(c, BK_OP_SQUARE, mu), *s1 = bk_add(c, ev, m2);
    bk_tensor *s2 = bk_sub(c, s1, lv), *kl0 = bk_sum_all(c, s2), *kl = bk_mul_s(c, kl0, 0.5);
    bk_tensor *loss = bk_add(c, rec, kl);
    if (!loss || bk_backward(c, loss)) die(c, "mlp step");
    double v = bk_item(loss); /* waits for the device */
    bk_tensor *all[] = {h, mu, lv, hl, sd, n, z, h2, xh, d, d2, rec, ev, m2, s1, s2, kl0, kl, loss};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_tape_reset(c);
    return v;
}

static double mlp_ms(bk_ctx *c, bk_rng *r, const bk_device *dev, int64_t batch, int reps) {
    mlp m;
    mlp_init(c, r, dev, &m);
    int64_t xs[2] = {batch, 784}, es[2] = {batch, 20};
    bk_tensor *x = random_on(c, r, dev, BK_F32, 2, xs, 0.3), *eps = random_on(c, r, dev, BK_F32, 2, es, 1);
    double t[32];
    for (int k = -2; k < reps; k++) {
        double t0 = now();
        double v = mlp_step(c, &m, x, eps);
        if (!isfinite(v)) die(c, "loss is not finite");
        if (k >= 0) t[k] = now() - t0;
    }
    bk_release(x);
    bk_release(eps);
    mlp_free(&m);
    return 1e3 * median(t, reps);
}

/* ----------------------------------------------------------- elementwise --- */

static double ew_ns(bk_ctx *c, bk_rng *r, const bk_device *dev, int dt, int op, int reps) {
    int64_t n = 10000000;
    bk_tensor *a = random_on(c, r, dev, dt, 1, &n, 1), *b = random_on(c, r, dev, dt, 1, &n, 1);
    double t[16];
    for (int k = -1; k < reps; k++) {
        double t0 = now();
        bk_tensor *o = op == BK_OP_ADD ? bk_add(c, a, b) : bk_unop(c, op, a);
        if (!o) die(c, "elementwise");
        sync_on(o);
        if (k >= 0) t[k] = now() - t0;
        bk_release(o);
    }
    bk_release(a);
    bk_release(b);
    return 1e9 * median(t, reps) / (double)n;
}

int main(int argc, char **argv) {
    int64_t maxn = argc > 1 ? atoll(argv[1]) : 4096;
    char why[256];
    if (bk_cuda_probe(why, sizeof why)) {
        printf("bench_cuda: %s\n", why);
        return 0;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    printf("GPU: %s (%d SMs, %.0f GiB); CPU rows: OpenBLAS threads %s\n", prop.name, prop.multiProcessorCount,
           (double)prop.totalGlobalMem / (1 << 30), thr ? thr : "(default)");
    bk_ctx *c = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 1, 0);
    printf("\n## GEMM through bk_matmul (GFLOP/s, median)\n%-6s %-5s %10s %10s %8s\n", "n", "dtype", "cpu", "cuda",
           "ratio");
    for (int64_t n = 1024; n <= maxn; n *= 2)
        for (int dt = BK_F64; dt <= BK_F32; dt++) {
            double g = gemm_gflops(c, &r, GPU, dt, n, 5);
            double h = gemm_gflops(c, &r, CPU, dt, n, n >= 4096 ? 1 : 2);
            printf("%-6lld %-5s %10.1f %10.1f %8.1f\n", (long long)n, dt == BK_F32 ? "f32" : "f64", h, g, g / h);
            fflush(stdout);
        }
    printf("\n## VAE 784-400-20 step, float32 (forward + backward, ms, median)\n%-6s %10s %10s %8s\n", "batch",
           "cpu", "cuda", "speedup");
    for (int64_t b = 128; b <= 1024; b *= 8) {
        double g = mlp_ms(c, &r, GPU, b, 20), h = mlp_ms(c, &r, CPU, b, 5);
        printf("%-6lld %10.3f %10.3f %8.1f\n", (long long)b, h, g, h / g);
        fflush(stdout);
    }
    printf("\n## elementwise, 10^7 elements (ns per element, median)\n%-4s %-5s %10s %10s %8s\n", "op", "dtype",
           "cpu", "cuda", "speedup");
    const int ops[2] = {BK_OP_EXP, BK_OP_ADD};
    for (int i = 0; i < 2; i++)
        for (int dt = BK_F64; dt <= BK_F32; dt++) {
            double g = ew_ns(c, &r, GPU, dt, ops[i], 10), h = ew_ns(c, &r, CPU, dt, ops[i], 3);
            printf("%-4s %-5s %10.3f %10.4f %8.0f\n", bk_optable[ops[i]].name, dt == BK_F32 ? "f32" : "f64", h, g, h / g);
            fflush(stdout);
        }
    bk_cuda_stats st;
    if (bk_cuda_get_stats(c, &st) == 0)
        printf("\nallocator: %ld cudaMalloc, %ld cache hits, peak %.1f MiB in use\n", st.device_mallocs, st.cache_hits,
               (double)st.peak_in_use / (1 << 20));
    const char *w = bk_device_warnings(c);
    printf("fallbacks: %s\n", w[0] ? w : "none");
    bk_ctx_free(c);
    return 0;
}
