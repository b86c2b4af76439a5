/* bench_gemm.c - backend matmul against direct OpenBLAS gemm.
 *
 * For n = 64 ... 2048 it times C = A B through bk_matmul (which allocates
 * its result each call) and through cblas_dgemm / cblas_sgemm into a
 * preallocated C, and prints GFLOP/s and the ratio backend / direct.  The
 * "t" rows pass A as a transposed view (the backend must hand BLAS a Trans
 * flag, not copy).  "k" rows call the matmul kernel straight from the op
 * table, without bk_apply (which converts float32 inputs to float64 for
 * every op but cast: the f32 rows through bk_apply measure that).  Build from the repository root, e.g.
 *   gcc -O2 -std=gnu11 -I src/backend bench/bench_gemm.c src/backend/(all .c files)
 *       -o /tmp/bench_gemm -lopenblas -llapacke -lm
 * It first prints the OpenBLAS kernel set in use (openblas_get_corename;
 * OPENBLAS_CORETYPE=Haswell etc. overrides the detection) and checks one
 * dgemm / sgemm against a plain triple loop, so a kernel set that gives
 * wrong results on this CPU is caught before it is timed.
 * bench/gemm_coretypes.sh runs it under several OPENBLAS_CORETYPE values.
 * Usage: bench_gemm [max_n] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "tensor.h"

static double now(void)
{
    struct timespec ts;
    /* CPU time of this thread: with one BLAS thread all the work is here,
     * and other load on a shared machine does not count */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define ROUNDS 7

/* Repetitions so one batch takes about 0.05 s (at least 2). */
static int reps_for(int n)
{
    double flops = 2.0 * n * n * (double)n;
    int r = (int)(0.05 * 30e9 / flops);
    return r < 2 ? 2 : r;
}

typedef struct {
    bk_ctx *ctx;
    bk_tensor *a, *b;
    void *da, *db, *dc;  /* raw buffers for the direct call */
    int n;
    bk_dtype dt;
    int trans_a;         /* pass A transposed */
    int kernel;          /* call the op table's kernel, not bk_matmul */
} job;

/* Seconds per call, one batch of reps calls. */
static double time_backend(job *j, int reps)
{
    double t0 = now();
    for (int i = 0; i < reps; i++) {
        bk_tensor *in[2] = {j->a, j->b};
        bk_tensor *c = j->kernel ? bk_optable[BK_OP_MATMUL].forward(j->ctx, in, NULL)
                                 : bk_matmul(j->ctx, j->a, j->b);
        if (!c) {
            fprintf(stderr, "bk_matmul: %s\n", bk_errmsg(j->ctx));
            exit(1);
        }
        bk_release(c);
    }
    return (now() - t0) / reps;
}

static double time_direct(job *j, int reps)
{
    int n = j->n;
    CBLAS_TRANSPOSE ta = j->trans_a ? CblasTrans : CblasNoTrans;
    double t0 = now();
    for (int i = 0; i < reps; i++) {
        if (j->dt == BK_F32)
            cblas_sgemm(CblasRowMajor, ta, CblasNoTrans, n, n, n, 1.0f, j->da, n, j->db, n, 0.0f,
                        j->dc, n);
        else
            cblas_dgemm(CblasRowMajor, ta, CblasNoTrans, n, n, n, 1.0, j->da, n, j->db, n, 0.0,
                        j->dc, n);
    }
    return (now() - t0) / reps;
}

static bk_tensor *random_matrix(bk_ctx *ctx, int n, bk_dtype dt)
{
    int64_t shape[2] = {n, n};
    bk_tensor *t = bk_empty(ctx, BK_F64, 2, shape), *c;
    for (int64_t i = 0; i < t->numel; i++)
        bk_set(t, i, (double)rand() / RAND_MAX - 0.5);
    if (dt == BK_F64)
        return t;
    c = bk_cast(ctx, t, dt);
    bk_release(t);
    return c;
}

static void *raw(bk_tensor *t)
{
    size_t esz = t->dtype == BK_F32 ? sizeof(float) : sizeof(double);
    return (char *)t->st->data + (size_t)t->offset * esz;
}

static void run(bk_ctx *ctx, int n, bk_dtype dt, int trans_a, int kernel)
{
    job j = {ctx, NULL, NULL, NULL, NULL, NULL, n, dt, trans_a, kernel};
    bk_tensor *a0 = random_matrix(ctx, n, dt);
    size_t esz = dt == BK_F32 ? sizeof(float) : sizeof(double);
    int reps = reps_for(n) * (dt == BK_F32 ? 2 : 1);
    double tb, td, gf;
    j.b = random_matrix(ctx, n, dt);
    j.a = trans_a ? bk_transpose(ctx, a0, 0, 1) : bk_retain(a0);
    j.da = raw(a0);
    j.db = raw(j.b);
    j.dc = malloc((size_t)n * n * esz);
    time_backend(&j, 1); /* warm up both paths */
    time_direct(&j, 1);
    /* alternate the two, best of ROUNDS each, so drift hits both alike */
    tb = td = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double x = time_backend(&j, reps), y = time_direct(&j, reps);
        tb = x < tb ? x : tb;
        td = y < td ? y : td;
    }
    gf = 2.0 * n * n * (double)n * 1e-9;
    printf("%-4s %-2s %5d  backend %8.2f GFLOP/s  direct %8.2f GFLOP/s  ratio %.3f\n",
           dt == BK_F32 ? "f32" : "f64", trans_a ? "t" : kernel ? "k" : "", n, gf / tb, gf / td, td / tb);
    fflush(stdout);
    free(j.dc);
    bk_release(a0);
    bk_release(j.a);
    bk_release(j.b);
}

char *openblas_get_corename(void);
char *openblas_get_config(void);

/* Max relative error of dgemm and sgemm against a triple loop (n = 77). */
static double check_kernels(void)
{
    enum { N = 77 };
    static double a[N * N], b[N * N], c[N * N];
    static float af[N * N], bf[N * N], cf[N * N];
    double worst = 0;
    for (int i = 0; i < N * N; i++) {
        a[i] = (double)rand() / RAND_MAX - 0.5;
        b[i] = (double)rand() / RAND_MAX - 0.5;
        af[i] = (float)a[i];
        bf[i] = (float)b[i];
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, a, N, b, N, 0.0, c, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, af, N, bf, N, 0.0f, cf, N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < N; k++) {
                s += a[i * N + k] * b[k * N + j];
                m += fabs(a[i * N + k] * b[k * N + j]);
            }
            double ed = fabs(c[i * N + j] - s) / m, ef = fabs(cf[i * N + j] - s) / m * 1e-8;
            worst = ed > worst ? ed : worst;
            worst = ef > worst ? ef : worst;   /* float error scaled to the double scale */
        }
    return worst;
}

int main(int argc, char **argv)
{
    int maxn = argc > 1 ? atoi(argv[1]) : 2048;
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_set_grad_enabled(ctx, false);
    double err = check_kernels();
    printf("OpenBLAS kernels: %s (%s); check vs triple loop: %s (max rel err %.1e, float scaled by 1e-8)\n",
           openblas_get_corename(), openblas_get_config(), err < 1e-13 ? "ok" : "WRONG", err);
    if (err >= 1e-13)
        return 1;
    printf("ratio = direct time / backend time (1.0 = no overhead)\n");
    for (int n = 64; n <= maxn; n *= 2) {
        run(ctx, n, BK_F64, 0, 0);
        run(ctx, n, BK_F64, 1, 0);
        run(ctx, n, BK_F32, 0, 0);
        run(ctx, n, BK_F32, 0, 1);
    }
    bk_ctx_free(ctx);
    return 0;
}
