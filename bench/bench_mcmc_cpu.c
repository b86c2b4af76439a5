/* bench_mcmc_cpu.c - the sampling cost of NUTS on a model, timed inside the
 * process: inf_mcmc_run with 4 chains x (1000 warmup + 1000 draws) and with
 * the same warmup and 1 draw, one thread, seed 1; the difference is the
 * sampling phase (leapfrogs, NUTS trees, each kept draw's constrained
 * values and deterministic sites), without the process start, the summary
 * diagnostics or the output files (what `time ppl sample` also counts).
 * With the recorded-op fast path (default) and without it (every
 * gradient interpreted); the draws are the same.  CPU time of the process
 * (CLOCK_PROCESS_CPUTIME_ID), medians of REPS, the variants interleaved.
 * Build and run from the root (after building build/):
 *   gcc -O2 -std=gnu11 -Iinclude -Isrc/backend -Isrc/runtime -Isrc/infer -Istdlib \
 *       bench/bench_mcmc_cpu.c build/libppl.a -o /tmp/bench_mcmc_cpu \
 *       -lopenblas -llapacke -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 /tmp/bench_mcmc_cpu examples/eight_schools.ppl schools \
 *       examples/eight_schools.json */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "data_io.h"
#include "infer.h"
#include "mcmc.h"
#include "mcmc_core.h"
#include "vm.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define REPS 5

/* One run: CPU seconds; *lf = leapfrogs of the kept draws */
static double run(rt_vm *vm, rt_func *m, rt_record *d, int samples, int no_fast, double *lf) {
    inf_mcmc_opts o = {.chains = 4, .warmup = 1000, .samples = samples, .max_depth = 10,
                       .target_accept = 0.8, .seed = 1, .threads = 1, .no_fast = no_fast};
    inf_mcmc *res;
    double t0 = now();
    if (inf_mcmc_run(vm, m, d, &o, (rt_loc){0}, &res)) {
        fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        exit(1);
    }
    double t = now() - t0;
    *lf = 0;
    for (int c = 0; c < res->chains; c++)
        for (int i = 0; i < res->samples; i++) *lf += res->out[c].n_leapfrog[i];
    inf_mcmc_free(res);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE.ppl MODEL DATA.json\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    char *src = malloc(1 << 20);
    size_t len = fread(src, 1, (1 << 20) - 1, f);
    fclose(f);
    src[len] = 0;
    rt_vm *vm = rt_vm_new(NULL);
    if (!vm || inf_register_builtins(vm)) return 1;
    rt_source *s = rt_source_new(argv[1], src, len);
    vm->defs_only = true;
    if (rt_run_source(vm, s, false, NULL)) {
        fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        return 1;
    }
    rt_source_release(s);
    rt_value data;
    if (rt_load_json(vm, argv[3], (rt_loc){0}, &data) || data.tag != RT_RECORD) return 1;
    rt_value *mv = rt_global_get(vm, argv[2]);
    if (!mv || mv->tag != RT_FUNC) return 1;
    rt_func *m = (rt_func *)mv->u.o;
    rt_record *d = (rt_record *)data.u.o;
    double full[2][REPS], one[2][REPS], lf = 0, lf1;
    for (int r = 0; r < REPS; r++)
        for (int v = 0; v < 2; v++) {
            full[v][r] = run(vm, m, d, 1000, v, &lf);
            one[v][r] = run(vm, m, d, 1, v, &lf1);
        }
    const char *name[2] = {"replay (fast path)", "interpreted"};
    for (int v = 0; v < 2; v++) {
        qsort(full[v], REPS, sizeof(double), cmp);
        qsort(one[v], REPS, sizeof(double), cmp);
        double samp = full[v][REPS / 2] - one[v][REPS / 2];
        printf("%-19s: 1000 draws %.4f s, 1 draw %.4f s, sampling %.4f s CPU, %.0f leapfrogs, %.3f us per leapfrog\n",
               name[v], full[v][REPS / 2], one[v][REPS / 2], samp, lf, samp / lf * 1e6);
    }
    rt_release(data);
    free(src);
    rt_vm_free(vm);
    return 0;
}
