/* bench_potential.c - the cost of one MCMC gradient (log density + gradient
 * of the potential over the unconstrained space, potential.c) on a model
 * file, with the recorded-op fast path (program.c) and without it (the
 * model interpreted under its handlers each time), on the same points.
 * CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), medians of REPS runs,
 * the two paths interleaved.
 * Build (after building the library in build/) and run, from the root:
 *   gcc -O2 -std=gnu11 -Iinclude -Isrc/backend -Isrc/runtime -Isrc/infer -Istdlib \
 *       bench/bench_potential.c build/libppl.a -o /tmp/bench_potential \
 *       -lopenblas -llapacke -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 /tmp/bench_potential examples/eight_schools.ppl schools \
 *       examples/eight_schools.json
 * NEVAL=N (environment) sets the replayed evaluations per run (default 20000; the
 * interpreted path runs a tenth of them), for models whose gradient costs far more;
 * NSLOW=N sets the interpreted evaluations per run apart (0: none; for instruction
 * counts of the replayed path alone under callgrind: two runs with different NEVAL and
 * NSLOW=0, the difference in instructions / (REPS x the difference in NEVAL)). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "data_io.h"
#include "infer.h"
#include "potential.h"
#include "program.h"
#include "rng.h"
#include "vm.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define REPS 9
#define NPTS 64

/* ns per gradient over n evaluations cycling through the points */
static double time_grads(inf_potential *p, const double *pts, int n, double *sink) {
    int d = (int)p->dim;
    double g[4096], lp = 0, t0 = now();
    for (int i = 0; i < n; i++) {
        if (inf_potential_eval(p, pts + (size_t)(i % NPTS) * d, &lp, g, NULL)) {
            fprintf(stderr, "evaluation failed: %s\n", rt_vm_errmsg(p->vm));
            exit(1);
        }
        *sink += lp + g[0];
    }
    return (now() - t0) / n * 1e9;
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
    vm->defs_only = true; /* definitions, not the script's actions */
    if (rt_run_source(vm, s, false, NULL)) {
        fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        return 1;
    }
    rt_source_release(s);
    rt_value data;
    if (rt_load_json(vm, argv[3], (rt_loc){0}, &data) || data.tag != RT_RECORD) {
        fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        return 1;
    }
    rt_value *m = rt_global_get(vm, argv[2]);
    if (!m || m->tag != RT_FUNC) {
        fprintf(stderr, "no model %s\n", argv[2]);
        return 1;
    }
    inf_potential *fast, *slow;
    if (inf_potential_init(vm, (rt_func *)m->u.o, (rt_record *)data.u.o, (rt_loc){0}, &fast) ||
        inf_potential_init(vm, (rt_func *)m->u.o, (rt_record *)data.u.o, (rt_loc){0}, &slow)) {
        fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        return 1;
    }
    slow->fast = false;
    int d = (int)fast->dim;
    double *pts = malloc(sizeof *pts * (size_t)d * NPTS);
    bk_rng r;
    bk_rng_init(&r, 1, 0);
    for (int i = 0; i < d * NPTS; i++) pts[i] = 2 * bk_rng_uniform(&r) - 1;
    double sink = 0, tf[REPS], ts[REPS];
    int neval = getenv("NEVAL") ? atoi(getenv("NEVAL")) : 20000;
    if (neval < 10) neval = 10;
    int nslow = getenv("NSLOW") ? atoi(getenv("NSLOW")) : neval / 10;
    if (nslow < 0) nslow = 0;
    time_grads(fast, pts, 100, &sink); /* record and verify */
    if (fast->fast_state != 1) fprintf(stderr, "note: no fast path: %s\n", fast->fast_why);
    for (int k = 0; k < REPS; k++) {
        tf[k] = time_grads(fast, pts, neval, &sink);
        ts[k] = nslow ? time_grads(slow, pts, nslow, &sink) : 0;
    }
    qsort(tf, REPS, sizeof *tf, cmp);
    qsort(ts, REPS, sizeof *ts, cmp);
    printf("%s: dim %d, %zu recorded ops\n", argv[2], d, fast->prog ? bk_prog_len(fast->prog) : 0);
    if (getenv("DUMP") && fast->prog) bk_prog_dump(fast->prog, stdout);
    printf("gradient, replay (fast path): %.0f ns\n", tf[REPS / 2]);
    printf("gradient, interpreted:        %.0f ns\n", ts[REPS / 2]);
    printf("speedup %.1fx (sink %g)\n", ts[REPS / 2] / tf[REPS / 2], sink);
    printf("replayed evaluations %d x %d, interpreted %d x %d\n", REPS, neval, REPS, nslow);
    inf_potential_free(fast);
    inf_potential_free(slow);
    rt_release(data);
    free(pts);
    free(src);
    rt_vm_free(vm);
    return 0;
}
