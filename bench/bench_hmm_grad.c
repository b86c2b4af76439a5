/* bench_hmm_grad.c - the HMM op at the size used inside NUTS by
 * bench/hmm_cat_model.ppl (issue 7): K = 3 states, Categorical emissions
 * over V = 10 symbols, T = 600 steps.  Times (thread CPU time, medians of
 * interleaved repetitions, each repetition the mean over many calls) of:
 * the op's forward (hmm_forward_cat, no tape), its gradient (forward with
 * the tape + backward w.r.t. logpi, A and logE: what one NUTS gradient
 * pays for the likelihood), and the backward sweep alone
 * (bk_hmm_expected_counts).  Optional arguments: K V T.
 * Build: see bench/bench_hmm.sh (the same flags). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "ops_hmm.h"
#include "rng.h"
#include "tensor.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* a sticky random model, y simulated from it */
static void make(bk_rng *r, int K, int V, int T, double *lpi, double *A, double *lE, double *y) {
    double E[64 * 64], P[64];
    for (int k = 0; k < K; k++) lpi[k] = -log((double)K);
    for (int i = 0; i < K; i++) {
        double s = 0;
        for (int j = 0; j < K; j++) s += A[i * K + j] = (i == j ? 5.0 : 0.0) + bk_rng_uniform(r);
        for (int j = 0; j < K; j++) A[i * K + j] /= s;
        s = 0;
        for (int v = 0; v < V; v++) s += E[i * V + v] = 0.1 + bk_rng_uniform(r);
        for (int v = 0; v < V; v++) lE[i * V + v] = log(E[i * V + v] /= s);
    }
    for (int k = 0; k < K; k++) P[k] = 1.0 / K;
    int z = (int)bk_rng_categorical(r, K, P);
    for (int t = 0; t < T; t++) {
        if (t) z = (int)bk_rng_categorical(r, K, A + z * K);
        y[t] = (double)bk_rng_categorical(r, V, E + z * V);
    }
}

int main(int argc, char **argv) {
    int K = argc > 1 ? atoi(argv[1]) : 3, V = argc > 2 ? atoi(argv[2]) : 10;
    int T = argc > 3 ? atoi(argv[3]) : 600;
    if (K < 1 || K > 64 || V < 1 || V > 64 || T < 1) return 2;
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 7, 0);
    double *lpi = malloc(K * sizeof *lpi), *A = malloc((size_t)K * K * sizeof *A);
    double *lE = malloc((size_t)K * V * sizeof *lE), *y = malloc((size_t)T * sizeof *y);
    make(&r, K, V, T, lpi, A, lE, y);
    bk_tensor *leaf[3] = {bk_from_f64(ctx, 1, (int64_t[]){K}, lpi),
                          bk_from_f64(ctx, 2, (int64_t[]){K, K}, A),
                          bk_from_f64(ctx, 2, (int64_t[]){K, V}, lE)};
    bk_tensor *ty = bk_from_f64(ctx, 1, (int64_t[]){T}, y);
    bk_tensor *in[4] = {leaf[0], leaf[1], leaf[2], ty};
    double *work = malloc(bk_hmm_counts_worksize(K, T, true) * sizeof *work);
    double *g = calloc((size_t)(K + K * K + K * V), sizeof *g), ll;
    enum { REPS = 15, N = 2000 };
    double t[3][REPS], chk = 0;
    for (int rep = 0; rep < REPS; rep++) {
        /* forward */
        bool ge = bk_set_grad_enabled(ctx, false);
        double t0 = now();
        for (int i = 0; i < N; i++) {
            bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
            chk += bk_item(f);
            bk_release(f);
        }
        t[0][rep] = (now() - t0) / N;
        /* gradient through the tape */
        bk_set_grad_enabled(ctx, true);
        for (int l = 0; l < 3; l++) bk_set_requires_grad(leaf[l], true);
        t0 = now();
        for (int i = 0; i < N; i++) {
            bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
            if (!f || bk_backward(ctx, f)) {
                fprintf(stderr, "%s\n", bk_errmsg(ctx));
                return 1;
            }
            bk_release(f);
            bk_tape_reset(ctx);
            for (int l = 0; l < 3; l++) bk_zero_grad(leaf[l]);
        }
        t[1][rep] = (now() - t0) / N;
        for (int l = 0; l < 3; l++) bk_set_requires_grad(leaf[l], false);
        bk_set_grad_enabled(ctx, ge);
        /* the sweep alone (forward with stored rows + backward) */
        t0 = now();
        for (int i = 0; i < N; i++)
            bk_hmm_expected_counts(ctx, in, true, &ll, g, g + K, g + K + K * K, work);
        t[2][rep] = (now() - t0) / N;
    }
    const char *name[3] = {"op_forward", "op_gradient (forward + backward)",
                           "expected_counts (stored forward + sweep)"};
    printf("# K=%d V=%d T=%d, thread CPU time, median of %d reps x %d calls (check %.6g)\n", K, V,
           T, REPS, N, chk / (REPS * N));
    for (int m = 0; m < 3; m++) {
        qsort(t[m], REPS, sizeof(double), cmp);
        printf("%-42s %8.2f us  %6.2f ns/step\n", name[m], t[m][REPS / 2] * 1e6,
               t[m][REPS / 2] * 1e9 / T);
    }
    for (int l = 0; l < 3; l++) bk_release(leaf[l]);
    bk_release(ty);
    free(lpi), free(A), free(lE), free(y), free(work), free(g);
    bk_ctx_free(ctx);
    return 0;
}
