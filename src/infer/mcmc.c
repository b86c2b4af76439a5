/* mcmc.c - MCMC on a model: chains of NUTS (or HMC) over the potential of
 * potential.c, then the constrained draws of every latent and deterministic
 * site, the summary with R-hat and ESS, and the Stan CSV writer.
 *
 * Chains run one after another on the state's single backend context; each
 * has its own random stream (seed, chain), so the result does not depend on
 * anything but the seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "ppl.h"
#include "mcmc_clone.h"
#include "mcmc.h"
#include "potential.h"
#include "enumerate.h"
#include "data_io.h"
#include "strbuf.h"

static int logp_cb(void *ud, const double *q, double *logp, double *grad) {
    inf_potential *p = ud;
    if (p->stop && atomic_load(p->stop)) p->vm->interrupted = 1;
    /* after Ctrl-C every evaluation fails fast, so the chain ends quickly;
     * inf_mcmc_run then reports the interrupt */
    if (p->vm->interrupted) {
        *logp = -INFINITY;
        return -1;
    }
    if (inf_potential_eval(p, q, logp, grad, NULL)) {
        /* the interpreter consumes an interrupt it sees inside the model:
         * keep it raised for the sampler */
        if (p->vm->errcode == 7) p->vm->interrupted = 1;
        /* a density that cannot be evaluated here counts as -inf */
        rt_vm_clear_error(p->vm);
        *logp = -INFINITY;
        return -1;
    }
    return 0;
}

/* Find a starting point: uniform(-2, 2) in unconstrained space, retried. */
static int initial_point(inf_potential *p, bk_rng *rng, double *q, bool need_grad, rt_loc loc) {
    double *g = malloc(sizeof(double) * (size_t)p->dim);
    if (!g) return rt_fail(p->vm, 5, loc, "out of memory");
    char *why = NULL;   /* the last evaluation error, if any */
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int64_t i = 0; i < p->dim; i++) q[i] = -2 + 4 * bk_rng_uniform(rng);
        double lp;
        int rc = inf_potential_eval(p, q, &lp, need_grad ? g : NULL, NULL);
        if (rc == 0 && isfinite(lp)) {
            bool ok = true;
            for (int64_t i = 0; i < p->dim && need_grad; i++)
                if (!isfinite(g[i])) ok = false;
            if (ok) {
                free(g);
                free(why);
                return 0;
            }
        }
        if (rc) {
            free(why);
            why = rt_vm_errmsg(p->vm);
        }
        rt_vm_clear_error(p->vm);
    }
    free(g);
    /* an evaluation that failed says why better than "no finite density" */
    if (why) {
        char *m = why, *nl = strchr(m, '\n');
        if (nl) *nl = 0;
        if (strncmp(m, "error: ", 7) == 0) m += 7;
        int rc = rt_error_loc(p->vm, loc, "MCMC could not evaluate the log density at any of 100 "
                              "starting points: %s", m);
        free(why);
        return rc;
    }
    return rt_error_loc(p->vm, loc, "MCMC found no starting point with a finite log density in 100 "
                        "tries (uniform in (-2, 2) on the unconstrained scale); check the model's "
                        "supports and data");
}

void inf_mcmc_free(inf_mcmc *m) {
    if (!m) return;
    for (int i = 0; i < m->nnames; i++) free(m->names[i]);
    free(m->names);
    free(m->draws);
    for (int c = 0; c < m->chains; c++) mc_chain_out_free(&m->out[c]);
    free(m->out);
    free(m->secs);
    free(m);
}

static int add_name(inf_mcmc *m, const char *name, int *cap) {
    if (m->nnames == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        char **n = realloc(m->names, (size_t)*cap * sizeof *n);
        if (!n) return -1;
        m->names = n;
    }
    m->names[m->nnames] = strdup(name);
    return m->names[m->nnames++] ? 0 : -1;
}

/* Name of scalar k of a site value: "theta[1, 2]" or "mu". */
static void scalar_name(char *buf, size_t n, const char *site, const bk_tensor *v, int64_t k) {
    if (v->ndim == 0) {
        snprintf(buf, n, "%s", site);
        return;
    }
    size_t len = (size_t)snprintf(buf, n, "%s[", site);
    int64_t idx[BK_MAXDIM], rem = k;
    for (int d = v->ndim - 1; d >= 0; d--) {
        idx[d] = rem % v->shape[d];
        rem /= v->shape[d];
    }
    for (int d = 0; d < v->ndim && len < n; d++) len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Record the constrained values of one draw (latent + deterministic sites)
 * in row `row`; row -1 only names the columns. */
static int record_draw(inf_mcmc *m, inf_potential *p, const double *q, int64_t row, int *cap, rt_loc loc) {
    if (row >= 0) { /* the recorded ops when the model allows (potential.c), else the trace */
        int vr = inf_potential_values(p, q, m->draws + row * m->nnames, m->nnames);
        if (vr <= 0) return vr;
    }
    rt_trace tr;
    double lp;
    bool g = bk_set_grad_enabled(p->vm->bk, false);
    int rc = inf_potential_eval(p, q, &lp, NULL, &tr);
    bk_set_grad_enabled(p->vm->bk, g);
    if (rc) return -1;
    int col = 0;
    for (int i = 0; i < tr.n && rc == 0; i++) {
        rt_site *s = &tr.sites[i];
        if (s->kind != RT_SITE_SAMPLE && s->kind != RT_SITE_DETERMINISTIC) continue;
        for (int64_t k = 0; k < s->value->numel; k++, col++) {
            if (row < 0) {
                char name[256];
                scalar_name(name, sizeof name, s->name, s->value, k);
                if (add_name(m, name, cap)) rc = rt_fail(p->vm, 5, loc, "out of memory");
                continue;
            }
            if (col >= m->nnames) {
                rc = rt_error_loc(p->vm, loc, "site \"%s\" changed shape between draws", s->name);
                break;
            }
            m->draws[row * m->nnames + col] = bk_get(s->value, k);
        }
    }
    rt_trace_clear(&tr);
    return rc;
}

/* ---------------------------------------------------------- checkpoints --- */

/* The file: a header with the run's options, then per chain "chain K
 * pending" (not started: it restarts from its seeded stream) or "chain K
 * saved" and its state (mc_chain_save), then "end". */
typedef struct ckpt {
    const char *path;        /* NULL: no checkpoints */
    int every;
    double last;             /* monotonic time of the last periodic write */
    pthread_mutex_t *mu;     /* parallel chains: guards snap, last and the file */
    char **snap;             /* per chain: its last saved state, or NULL */
    const char *model;
    int dim;
} ckpt;

static void ckpt_header(rt_sb *sb, const ckpt *k, const inf_mcmc_opts *o) {
    rt_sb_printf(sb, "ppl-mcmc-checkpoint 1\nmodel %s\n", k->model);
    long long v[] = {k->dim, o->chains, o->warmup, o->samples, o->max_depth > 0 ? o->max_depth : 10,
                     o->dense != 0, o->hmc_steps, (long long)(o->seed >> 32), (long long)(o->seed & 0xffffffffu)};
    mc_ck_put_ints(sb, "options", v, 9);
    mc_ck_put_doubles(sb, "target_accept", &o->target_accept, 1);
    if (o->hmc_steps == MC_HMC_TRAJ) mc_ck_put_doubles(sb, "trajectory_length", &o->trajectory_length, 1);
}

static int ckpt_write(rt_vm *vm, const ckpt *k, const inf_mcmc_opts *o, rt_loc loc) {
    rt_sb sb = {0};
    ckpt_header(&sb, k, o);
    for (int c = 0; c < o->chains; c++) {
        rt_sb_printf(&sb, "chain %d %s\n", c, k->snap[c] ? "saved" : "pending");
        if (k->snap[c]) rt_sb_puts(&sb, k->snap[c]);
    }
    rt_sb_puts(&sb, "end\n");
    char *text = rt_sb_finish(&sb);
    if (!text) return rt_fail(vm, 5, loc, "out of memory");
    char err[512];
    int rc = rt_write_file_atomic(k->path, text, strlen(text), err, sizeof err);
    free(text);
    return rc ? rt_fail(vm, 4, loc, "mcmc: checkpoint: %s", err) : 0;
}

/* Saves chain c's state as its snapshot, then the file. */
static int ckpt_save(rt_vm *vm, ckpt *k, const inf_mcmc_opts *o, int c, const mc_chain *ch, rt_loc loc) {
    if (!k->path) return 0;
    rt_sb sb = {0};
    mc_chain_save(ch, &sb);
    char *t = rt_sb_finish(&sb);
    if (!t) return rt_fail(vm, 5, loc, "out of memory");
    if (k->mu) pthread_mutex_lock(k->mu);
    free(k->snap[c]);
    k->snap[c] = t;
    int rc = ckpt_write(vm, k, o, loc);
    if (k->mu) pthread_mutex_unlock(k->mu);
    return rc;
}

/* The kernel of an inf_mcmc_opts.hmc_steps value, for messages. */
static const char *kernel_name(long long hmc_steps) {
    return hmc_steps == 0             ? "NUTS"
           : hmc_steps == MC_RWM      ? "RWM"
           : hmc_steps == MC_HMC_TRAJ ? "HMC(trajectory_length=...)"
           : hmc_steps > 0            ? "HMC(num_steps=...)"
                                      : "(unknown)";
}

/* Reads a checkpoint made by a run with the same model and options;
 * ch[c] receives the saved chains. */
static int ckpt_load(rt_vm *vm, const char *path, const ckpt *k, const inf_mcmc_opts *o, inf_potential *p,
                     const mc_opts *mo, mc_chain **ch, rt_loc loc) {
    char err[512] = "";
    size_t len;
    char *text = rt_read_file(path, &len, err, sizeof err);
    if (!text) return rt_fail(vm, 4, loc, "mcmc: cannot resume: %s", err);
    mc_ck_reader rd = {text, err, sizeof err};
    char word[256];
    long long v[9], ver, idx;
    double ta;
    int rc = mc_ck_word(&rd, "ppl-mcmc-checkpoint") || mc_ck_get_ints(&rd, NULL, &ver, 1) ||
             mc_ck_word(&rd, "model") || mc_ck_next_word(&rd, word, sizeof word);
    if (rc == 0 && (ver != 1 || strcmp(word, k->model) != 0))
        rc = mc_ck_fail(&rd, ver != 1 ? "unknown checkpoint version" : "the checkpoint is of model \"%s\"", word);
    if (rc == 0) rc = mc_ck_get_ints(&rd, "options", v, 9) || mc_ck_get_doubles(&rd, "target_accept", &ta, 1);
    if (rc == 0) {
        /* the header must be this run's */
        static const char *const what[] = {"latent dimension", "chains", "warmup", "samples", "max_depth",
                                           "dense metric", "HMC steps", "seed", "seed"};
        long long mine[] = {k->dim, o->chains, o->warmup, o->samples, o->max_depth > 0 ? o->max_depth : 10,
                            o->dense != 0, o->hmc_steps, (long long)(o->seed >> 32),
                            (long long)(o->seed & 0xffffffffu)};
        for (int i = 0; i < 9 && rc == 0; i++)
            if (v[i] != mine[i]) {
                if (i >= 7)
                    rc = mc_ck_fail(&rd, "it was made with seed %llu, this run has seed %llu",
                                    (unsigned long long)v[7] << 32 | (unsigned long long)v[8],
                                    (unsigned long long)o->seed);
                else if (i == 6 && (v[6] <= 0 || mine[6] <= 0))
                    rc = mc_ck_fail(&rd, "it was made with kernel %s, this run has %s", kernel_name(v[6]),
                                    kernel_name(mine[6]));
                else
                    rc = mc_ck_fail(&rd, "it was made with %s %lld, this run has %lld", what[i], v[i], mine[i]);
            }
        if (rc == 0 && ta != o->target_accept)
            rc = mc_ck_fail(&rd, "it was made with target_accept %g, this run has %g", ta, o->target_accept);
        double traj;
        if (rc == 0 && o->hmc_steps == MC_HMC_TRAJ &&
            (rc = mc_ck_get_doubles(&rd, "trajectory_length", &traj, 1)) == 0 && traj != o->trajectory_length)
            rc = mc_ck_fail(&rd, "it was made with trajectory_length %g, this run has %g", traj,
                            o->trajectory_length);
    }
    for (int c = 0; c < o->chains && rc == 0; c++) {
        rc = mc_ck_word(&rd, "chain") || mc_ck_get_ints(&rd, NULL, &idx, 1) || mc_ck_next_word(&rd, word, sizeof word);
        if (rc == 0 && idx != c) rc = mc_ck_fail(&rd, "the checkpoint is damaged: chain %lld out of order", idx);
        if (rc || strcmp(word, "pending") == 0) continue;
        if (strcmp(word, "saved") != 0) rc = mc_ck_fail(&rd, "the checkpoint is damaged near chain %d", c);
        else rc = mc_chain_load(logp_cb, p, (int)p->dim, mo, &rd, &ch[c]);
    }
    if (rc == 0) rc = mc_ck_word(&rd, "end");
    free(text);
    if (rc) return rt_fail(vm, 4, loc, "mcmc: cannot resume from \"%s\": %s", path, err);
    return 0;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The periodic save: every k->every iterations, but at most once a second
 * (a fast model would otherwise spend its time writing). */
static int ckpt_periodic(rt_vm *vm, ckpt *k, const inf_mcmc_opts *o, int c, const mc_chain *ch, rt_loc loc) {
    if (!k->path) return 0;
    double t = now_sec();
    if (k->mu) pthread_mutex_lock(k->mu);
    bool due = t - k->last >= 1.0;
    if (due) k->last = t;
    if (k->mu) pthread_mutex_unlock(k->mu);
    return due ? ckpt_save(vm, k, o, c, ch, loc) : 0;
}

/* ------------------------------------------------------------- progress --- */

/* Progress within the chains (vm->mcmc_progress).  Each chain publishes its
 * iterations, step size and divergences after every iteration into its own
 * atomic slots (the worker thread that runs it writes them, the calling
 * thread reads them); the calling thread reports when the iterations of all
 * chains cross the next multiple of 1% of the total (and at the total).
 * With chains in turn it polls after every iteration, so the reports are
 * exactly those crossings; with threads it polls every 5 ms, so some
 * crossings can share one report.  Nothing here feeds back into sampling. */
typedef struct progress {
    rt_vm *vm;               /* NULL: no progress wanted */
    int chains;
    long warmup, samples, total, stride, next;
    atomic_long *done, *div;
    atomic_ullong *step;     /* a double's bits */
    long *snap_done;
    double *snap_step;
} progress;

static void progress_free(progress *pg) {
    free(pg->done);
    free(pg->div);
    free(pg->step);
    free(pg->snap_done);
    free(pg->snap_step);
}

static void progress_publish(progress *pg, int c, const mc_chain *ch) {
    if (!pg->vm) return;
    double eps = mc_chain_step_size(ch);
    unsigned long long bits;
    memcpy(&bits, &eps, sizeof bits);
    atomic_store_explicit(&pg->step[c], bits, memory_order_relaxed);
    if (mc_chain_last_divergent(ch)) atomic_fetch_add_explicit(&pg->div[c], 1, memory_order_relaxed);
    atomic_store_explicit(&pg->done[c], mc_chain_done(ch), memory_order_release);
}

static void progress_next(progress *pg, long sum) {
    long n = (sum / pg->stride + 1) * pg->stride;
    pg->next = sum >= pg->total ? pg->total + 1 : n < pg->total ? n : pg->total;
}

/* On the calling thread: report if the next threshold is reached. */
static void progress_poll(progress *pg) {
    if (!pg->vm) return;
    long sum = 0, div = 0;
    for (int c = 0; c < pg->chains; c++) {
        pg->snap_done[c] = atomic_load_explicit(&pg->done[c], memory_order_acquire);
        unsigned long long bits = atomic_load_explicit(&pg->step[c], memory_order_relaxed);
        memcpy(&pg->snap_step[c], &bits, sizeof bits);
        div += atomic_load_explicit(&pg->div[c], memory_order_relaxed);
        sum += pg->snap_done[c];
    }
    if (sum < pg->next) return;
    progress_next(pg, sum);
    ppl_mcmc_progress info = {.chains = pg->chains, .warmup = pg->warmup, .samples = pg->samples,
                              .done = sum, .total = pg->total, .chain_done = pg->snap_done,
                              .chain_step = pg->snap_step, .divergences = div};
    pg->vm->mcmc_progress(pg->vm->progress_ud, &info);
}

/* Whether progress_poll would report now: the chains' iterations reached
 * the next threshold (a cheap test, so the host's callback alone can be
 * kept out of a chain's clock). */
static bool progress_due(const progress *pg) {
    if (!pg->vm) return false;
    long sum = 0;
    for (int c = 0; c < pg->chains; c++) sum += atomic_load_explicit(&pg->done[c], memory_order_acquire);
    return sum >= pg->next;
}

/* Chains restored from a checkpoint start where they stopped. */
static int progress_init(progress *pg, rt_vm *vm, const inf_mcmc_opts *o, mc_chain *const *ch) {
    memset(pg, 0, sizeof *pg);
    if (!vm->mcmc_progress) return 0;
    int n = o->chains;
    pg->chains = n;
    pg->warmup = o->warmup;
    pg->samples = o->samples;
    pg->total = (long)n * (o->warmup + o->samples);
    pg->stride = (pg->total + 99) / 100;
    pg->done = calloc((size_t)n, sizeof *pg->done);
    pg->div = calloc((size_t)n, sizeof *pg->div);
    pg->step = calloc((size_t)n, sizeof *pg->step);
    pg->snap_done = calloc((size_t)n, sizeof *pg->snap_done);
    pg->snap_step = calloc((size_t)n, sizeof *pg->snap_step);
    if (!pg->done || !pg->div || !pg->step || !pg->snap_done || !pg->snap_step) {
        progress_free(pg);
        return -1;
    }
    long sum = 0;
    for (int c = 0; c < n; c++) {
        atomic_init(&pg->done[c], ch[c] ? mc_chain_done(ch[c]) : 0);
        atomic_init(&pg->div[c], ch[c] ? mc_chain_divergences(ch[c]) : 0);
        atomic_init(&pg->step[c], 0);
        sum += ch[c] ? mc_chain_done(ch[c]) : 0;
    }
    pg->vm = vm;
    progress_next(pg, sum);
    return 0;
}

static int stop_requested(void *ud) {
    inf_potential *p = ud;
    if (p->stop && atomic_load(p->stop)) p->vm->interrupted = 1;
    return p->vm->interrupted != 0;
}

/* CPU seconds of the calling thread: a chain's own work whatever else runs
 * beside it (other chains' threads, other processes), unlike wall time;
 * NaN where the clock is missing. */
static double thread_cpu_sec(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) return NAN;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The chain's clock: thread CPU seconds since the last mark go to the
 * current phase (0 warm-up, 1 sampling) of secs. */
typedef struct chain_clock {
    double *secs, mark;
} chain_clock;

static void clock_charge(chain_clock *t, int phase) {
    double now = thread_cpu_sec();
    t->secs[phase] += now - t->mark;
    t->mark = now;
}

/* A checkpoint save or a progress report is output, not sampling: its
 * time is left out. */
static void clock_skip(chain_clock *t, double since) { t->mark += thread_cpu_sec() - since; }

/* Runs chain c to its end (from its saved state when *chp is set), adding
 * its warm-up and sampling seconds to secs[0] and secs[1].  As Stan's
 * "Elapsed Time", they start after the initial point and step size are
 * found; a resumed chain counts this run's iterations only. */
static int run_chain(inf_potential *p, const inf_mcmc_opts *o, const mc_opts *mo, int c, mc_chain **chp,
                     ckpt *k, progress *pg, bool poll, double *q, mc_chain_out *out, double *secs, rt_loc loc) {
    rt_vm *vm = p->vm;
    char err[256] = "";
    if (!*chp) {
        bk_rng rng;
        bk_rng_init(&rng, o->seed, (uint64_t)c + 1);
        if (initial_point(p, &rng, q, mo->hmc_steps != MC_RWM, loc)) return -1;
        if (mc_chain_new(logp_cb, p, (int)p->dim, q, mo, &rng, chp, err, sizeof err)) {
            if (vm->interrupted) {
                vm->interrupted = 0;
                return rt_fail(vm, 7, loc, "interrupted");
            }
            return rt_error_loc(vm, loc, "mcmc: chain %d: %s", c + 1, err);
        }
    }
    mc_chain *ch = *chp;
    mc_chain_bind(ch, logp_cb, p);   /* a restored chain: this thread's model */
    int total = mc_chain_total(ch), every = k->every;
    chain_clock clk = {.secs = secs, .mark = thread_cpu_sec()};
    while (mc_chain_done(ch) < total) {
        bool warming = mc_chain_done(ch) < mo->warmup;
        int src = mc_chain_step(ch, stop_requested, p, err, sizeof err);
        if (src == 0 && vm->interrupted) src = 1;
        if (src == 1 || src == 2) {
            vm->interrupted = 0;
            /* an exact state (1) is saved; otherwise the last save stands */
            if (src == 1 && ckpt_save(vm, k, o, c, ch, loc)) return -1;
            return rt_fail(vm, 7, loc, "interrupted");
        }
        if (src < 0) return rt_error_loc(vm, loc, "mcmc: chain %d: %s", c + 1, err);
        int done = mc_chain_done(ch);
        if (warming && done >= mo->warmup) clock_charge(&clk, 0);
        progress_publish(pg, c, ch);
        if (poll && progress_due(pg)) { /* the host's callback is not the chain's time */
            double t0 = thread_cpu_sec();
            progress_poll(pg);
            clock_skip(&clk, t0);
        }
        if (done % every == 0 && done < total && k->path) {
            double t0 = thread_cpu_sec();
            if (ckpt_periodic(vm, k, o, c, ch, loc)) return -1;
            clock_skip(&clk, t0);
        }
    }
    clock_charge(&clk, mc_chain_done(ch) > mo->warmup ? 1 : 0);
    if (ckpt_save(vm, k, o, c, ch, loc)) return -1;
    mc_chain_finish(ch, out);
    *chp = NULL;
    return 0;
}

/* ---------------------------------------------------------- parallel chains --- */

typedef struct pool {
    pthread_mutex_t mu;
    atomic_int stop;
    int next, active;        /* next chain to start; workers still running */
    int *state;              /* per chain: 0 not finished, 1 done, -1 failed */
    int *code;               /* per failed chain: its error code */
    char **err;              /* ... and message */
    const inf_mcmc_opts *o;
    const mc_opts *mo;
    mc_chain **ch;
    mc_chain_out *out;
    double *secs;            /* per chain: warm-up and sampling seconds */
    ckpt *k;
    progress *pg;
    rt_loc loc;
} pool;

typedef struct worker {
    pool *pl;
    inf_clone cl;
    inf_potential pot;       /* the caller's latents, this clone's VM */
    double *q;
    pthread_t th;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    pool *pl = w->pl;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        int c = pl->next < pl->o->chains && !atomic_load(&pl->stop) ? pl->next++ : -1;
        pthread_mutex_unlock(&pl->mu);
        if (c < 0) break;
        int rc = run_chain(&w->pot, pl->o, pl->mo, c, &pl->ch[c], pl->k, pl->pg, false, w->q, &pl->out[c],
                           pl->secs + 2 * c, pl->loc);
        rt_vm *cv = w->cl.vm;
        pthread_mutex_lock(&pl->mu);
        if (rc) {
            pl->state[c] = -1;
            pl->code[c] = cv->errcode ? cv->errcode : 3;
            pl->err[c] = strdup(cv->errs.n ? cv->errs.items[0].msg : "mcmc: chain failed");
            atomic_store(&pl->stop, 1);
        } else {
            pl->state[c] = 1;
        }
        pthread_mutex_unlock(&pl->mu);
        rt_vm_clear_error(cv);
        cv->interrupted = 0;
    }
    pthread_mutex_lock(&pl->mu);
    pl->active--;
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

static int divergences_of(const mc_chain_out *out, int samples) {
    int div = 0;
    for (int i = 0; i < samples; i++) div += out->divergent[i] != 0;
    return div;
}

/* Runs the chains on nthreads threads, each with a private copy of the
 * model.  1: the model cannot be copied (nothing was run); 0 / -1. */
static int run_parallel(inf_potential *p, rt_func *model, const rt_record *data, const inf_mcmc_opts *o,
                        const mc_opts *mo, mc_chain **ch, ckpt *k, progress *pg, mc_chain_out *out, double *secs,
                        int nthreads, rt_loc loc) {
    rt_vm *vm = p->vm;
    worker *w = calloc((size_t)nthreads, sizeof *w);
    pool pl = {.o = o, .mo = mo, .ch = ch, .out = out, .secs = secs, .k = k, .pg = pg, .loc = loc};
    pl.state = calloc((size_t)o->chains, sizeof *pl.state);
    pl.code = calloc((size_t)o->chains, sizeof *pl.code);
    pl.err = calloc((size_t)o->chains, sizeof *pl.err);
    /* per chain, for the calling thread: 1 finished, 2 reported */
    char *told = calloc((size_t)o->chains, 1);
    int made = 0, rc = 0;
    if (!w || !pl.state || !pl.code || !pl.err || !told) rc = rt_fail(vm, 5, loc, "out of memory");
    for (; rc == 0 && made < nthreads; made++) {
        if (inf_clone_make(vm, model, data, &w[made].cl)) break;
        w[made].pl = &pl;
        w[made].pot = *p;
        w[made].pot.vm = w[made].cl.vm;
        w[made].pot.model = w[made].cl.model;
        w[made].pot.data = w[made].cl.data;
        w[made].pot.stop = &pl.stop;
        w[made].pot.prog = NULL; /* the caller's program is its VM's */
        inf_potential_fast_reset(&w[made].pot);
        if (!(w[made].q = malloc(sizeof(double) * (size_t)p->dim))) {
            inf_clone_free(&w[made].cl);
            rc = rt_fail(vm, 5, loc, "out of memory");
            break;
        }
    }
    int started = 0;
    if (rc == 0 && made == nthreads) {
        pthread_mutex_init(&pl.mu, NULL);
        atomic_init(&pl.stop, 0);
        k->mu = &pl.mu;
        pl.active = nthreads;
        for (; started < nthreads; started++)
            if (pthread_create(&w[started].th, NULL, worker_main, &w[started])) break;
        pthread_mutex_lock(&pl.mu);
        pl.active -= nthreads - started;
        pthread_mutex_unlock(&pl.mu);
        /* the caller's thread relays Ctrl-C and reports each finished chain
         * once (chains that end within one poll are still reported one by
         * one, as in turn: done counts 1, 2, ..., whatever the timing) */
        int reported = 0, div = 0;
        for (bool busy = started > 0; busy;) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            if (vm->interrupted) atomic_store(&pl.stop, 1);
            progress_poll(pg);
            pthread_mutex_lock(&pl.mu);
            for (int c = 0; c < o->chains; c++)
                if (pl.state[c] == 1 && !told[c]) told[c] = 1;
            busy = pl.active > 0;
            pthread_mutex_unlock(&pl.mu);
            /* a finished chain's output is no longer written by its worker */
            for (int c = 0; c < o->chains; c++)
                if (told[c] == 1) {
                    told[c] = 2;
                    reported++;
                    div += divergences_of(&out[c], o->samples);
                    if (vm->progress) vm->progress(vm->progress_ud, "sample", reported, o->chains, div);
                }
        }
        for (int t = 0; t < started; t++) pthread_join(w[t].th, NULL);
        progress_poll(pg);   /* the last iterations, if the poll above missed them */
        k->mu = NULL;
        pthread_mutex_destroy(&pl.mu);
        /* the error of the first chain that failed by itself, else an
         * interrupt, else chains that never ran (a thread did not start) */
        int first = -1, intr = vm->interrupted != 0;
        for (int c = 0; c < o->chains; c++) {
            if (pl.state[c] == -1 && pl.code[c] != 7 && first < 0) first = c;
            if (pl.state[c] == -1 && pl.code[c] == 7) intr = 1;
        }
        if (first >= 0) {
            rc = rt_fail(vm, pl.code[first], loc, "%s", pl.err[first] ? pl.err[first] : "mcmc: chain failed");
        } else if (intr) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
        } else {
            for (int c = 0; c < o->chains && rc == 0; c++)
                if (pl.state[c] != 1) rc = rt_fail(vm, 5, loc, "mcmc: could not start a thread");
        }
    } else if (rc == 0) {
        rc = 1;   /* not copyable: run in turn */
    }
    for (int t = 0; t < made && w; t++) {
        inf_potential_fast_reset(&w[t].pot);
        inf_clone_free(&w[t].cl);
        free(w[t].q);
    }
    for (int c = 0; pl.err && c < o->chains; c++) free(pl.err[c]);
    free(pl.err);
    free(told);
    free(pl.code);
    free(pl.state);
    free(w);
    return rc;
}

static int default_threads(int chains) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n < chains ? (int)n : chains;
}

int inf_mcmc_run(rt_vm *vm, rt_func *model, const rt_record *data, const inf_mcmc_opts *o, rt_loc loc,
                 inf_mcmc **out) {
    *out = NULL;
    if (o->chains < 1 || o->samples < 1 || o->warmup < 0)
        return rt_error_loc(vm, loc, "mcmc: chains and samples must be >= 1 and warmup >= 0");
    inf_potential *p;
    if (inf_potential_init(vm, model, data, loc, &p)) return -1;
    p->fast = !o->no_fast;
    /* the draws of enumerated discrete sites depend on the seed only */
    if (p->en) inf_enum_seed(p->en, o->seed);
    inf_mcmc *m = calloc(1, sizeof *m);
    double *q = malloc(sizeof(double) * (size_t)p->dim);
    mc_chain **ch = calloc((size_t)o->chains, sizeof *ch);
    ckpt k = {.path = o->checkpoint ? o->checkpoint : o->resume,
              .every = o->checkpoint_every > 0 ? o->checkpoint_every : 100,
              .snap = calloc((size_t)o->chains, sizeof(char *)),
              .model = model->name,
              .dim = (int)p->dim,
              .last = -INFINITY};   /* the first periodic save is due at once */
    if (!m || !q || !ch || !k.snap || !(m->out = calloc((size_t)o->chains, sizeof *m->out)) ||
        !(m->secs = calloc((size_t)o->chains * 2, sizeof *m->secs))) {
        free(q);
        free(ch);
        free(k.snap);
        if (m) free(m->out);
        if (m) free(m->secs);
        free(m);
        inf_potential_free(p);
        return rt_fail(vm, 5, loc, "out of memory");
    }
    m->chains = o->chains;
    m->samples = o->samples;
    m->dim = (int)p->dim;
    m->rwm = o->hmc_steps == MC_RWM;
    int rc = 0, cap = 0;
    mc_opts mo = {.warmup = o->warmup, .samples = o->samples, .max_depth = o->max_depth,
                  .target_accept = o->target_accept, .dense = o->dense, .hmc_steps = o->hmc_steps,
                  .trajectory_length = o->trajectory_length};
    if (o->resume) rc = ckpt_load(vm, o->resume, &k, o, p, &mo, ch, loc);
    int nthreads = o->threads > 0 ? o->threads : default_threads(o->chains);
    if (nthreads > o->chains) nthreads = o->chains;
    int seq = 1;
    progress pg;
    if (rc == 0 && progress_init(&pg, vm, o, ch)) rc = rt_fail(vm, 5, loc, "out of memory");
    else if (rc) memset(&pg, 0, sizeof pg);
    if (rc == 0 && nthreads > 1) {
        int prc = run_parallel(p, model, data, o, &mo, ch, &k, &pg, m->out, m->secs, nthreads, loc);
        if (prc != 1) {
            rc = prc;
            seq = 0;
        }
    }
    for (int c = 0; c < o->chains && rc == 0 && seq; c++) {
        rc = run_chain(p, o, &mo, c, &ch[c], &k, &pg, true, q, &m->out[c], m->secs + 2 * c, loc);
        if (rc == 0 && vm->progress) {
            int div = 0;
            for (int j = 0; j <= c; j++)
                for (int i = 0; i < o->samples; i++) div += m->out[j].divergent[i] != 0;
            vm->progress(vm->progress_ud, "sample", c + 1, o->chains, div);
        }
        if (rc == 0 && vm->interrupted) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
        }
    }
    progress_free(&pg);
    for (int c = 0; c < o->chains; c++) {
        mc_chain_free(ch[c]);
        free(k.snap[c]);
    }
    free(ch);
    free(k.snap);
    /* constrained draws: a first pass names the columns */
    if (rc == 0) rc = record_draw(m, p, m->out[0].draws, -1, &cap, loc);
    if (rc == 0 && !(m->draws = calloc((size_t)o->chains * (size_t)o->samples * (size_t)(m->nnames ? m->nnames : 1), sizeof(double))))
        rc = rt_fail(vm, 5, loc, "out of memory");
    for (int c = 0; c < o->chains && rc == 0; c++)
        for (int i = 0; i < o->samples && rc == 0; i++)
            rc = record_draw(m, p, m->out[c].draws + (size_t)i * (size_t)p->dim, (int64_t)c * o->samples + i, &cap, loc);
    free(q);
    inf_potential_free(p);
    if (rc) {
        inf_mcmc_free(m);
        return -1;
    }
    /* NUTS trees that stopped at the depth limit rather than at a U-turn
     * (Stan's "saturated the maximum tree depth"; HMC and RWM have none) */
    m->max_depth = o->hmc_steps != 0 ? 0 : o->max_depth > 0 ? o->max_depth : 10;
    for (int c = 0; c < m->chains; c++)
        for (int i = 0; i < m->samples; i++) {
            m->divergences += m->out[c].divergent[i] != 0;
            m->treedepth_hits += m->max_depth > 0 && m->out[c].treedepth[i] >= m->max_depth;
        }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------- summary --- */

inf_result *inf_mcmc_result(const inf_mcmc *m) {
    inf_result *r = calloc(1, sizeof *r);
    int64_t n = (int64_t)m->chains * m->samples;
    double *sorted = malloc(sizeof(double) * (size_t)n);
    /* the diagnostics' scratch, made once for all the columns */
    mc_diag_ws *ws = mc_diag_ws_new(m->chains, m->samples);
    if (!r || !sorted || !ws || !(r->rows = calloc((size_t)(m->nnames ? m->nnames : 1), sizeof *r->rows)) ||
        !(r->draws = calloc((size_t)(m->nnames ? m->nnames : 1), sizeof *r->draws)))
        goto fail;
    r->kind = 1;
    r->ndraws = (int)n;
    r->divergences = m->divergences;
    r->max_depth = m->max_depth;
    r->treedepth_hits = m->treedepth_hits;
    r->min_ebfmi = INFINITY;
    if (m->secs) {
        if (!(r->chain_secs = malloc(sizeof(double) * 2 * (size_t)m->chains))) goto fail;
        memcpy(r->chain_secs, m->secs, sizeof(double) * 2 * (size_t)m->chains);
        r->nchains = m->chains;
    }
    for (int c = 0; c < m->chains && !m->rwm; c++) {
        double e = mc_ebfmi(m->out[c].energy, m->samples);
        if (e < r->min_ebfmi) r->min_ebfmi = e;
    }
    for (int j = 0; j < m->nnames; j++) {
        inf_row *w = &r->rows[r->nrows];
        w->name = strdup(m->names[j]);
        double *col = r->draws[r->nrows] = malloc(sizeof(double) * (size_t)n);
        r->nrows++;
        if (!w->name || !col) goto fail;
        /* the column gathered straight into the result's copy, its sum on the way */
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++) {
            col[i] = m->draws[i * m->nnames + j];
            mean += col[i];
        }
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) var += (col[i] - mean) * (col[i] - mean);
        w->mean = mean;
        w->sd = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
        if (mc_column_diag_ws(ws, col, sorted, &w->r_hat, &w->ess_bulk, &w->ess_tail)) goto fail;
        w->q5 = inf_quantile_sorted(sorted, (int)n, 0.05);
        w->q50 = inf_quantile_sorted(sorted, (int)n, 0.5);
        w->q95 = inf_quantile_sorted(sorted, (int)n, 0.95);
    }
    free(sorted);
    mc_diag_ws_free(ws);
    return r;
fail:
    free(sorted);
    mc_diag_ws_free(ws);
    inf_result_free(r);
    return NULL;
}

/* ------------------------------------------------------------ Stan CSV --- */

/* "theta[1, 2]" -> "theta.2.3" (Stan's 1-based dotted names). */
static void stan_name(const char *name, char *out, size_t n) {
    size_t k = 0;
    const char *b = strchr(name, '[');
    if (!b) {
        snprintf(out, n, "%s", name);
        return;
    }
    k = (size_t)snprintf(out, n, "%.*s", (int)(b - name), name);
    const char *s = b + 1;
    while (*s && *s != ']' && k < n) {
        char *end;
        long v = strtol(s, &end, 10);
        k += (size_t)snprintf(out + k, n - k, ".%ld", v + 1);
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
}

/* ",a,b,c," for the sampler's integer columns at out, without printf;
 * returns the end (at most 36 bytes). */
static char *put_small_ints(char *out, int a, int b, int c) {
    int v[3] = {a, b, c};
    *out++ = ',';
    for (int i = 0; i < 3; i++) {
        char d[12];
        int nd = 0;
        unsigned u = v[i] < 0 ? 0u - (unsigned)v[i] : (unsigned)v[i];
        do d[nd++] = (char)('0' + u % 10); while (u /= 10);
        if (v[i] < 0) *out++ = '-';
        while (nd) *out++ = d[--nd];
        *out++ = ',';
    }
    return out;
}

/* One draw's line: the sampler's columns, then the model's.  The room for
 * the whole line is reserved once and the numbers written straight into it
 * (rt_g17_at), with no room check, call or NUL per number. */
static void put_draw_line(rt_sb *sb, const mc_chain_out *o, int i, const double *row, int nnames) {
    if (!rt_sb_reserve(sb, ((size_t)nnames + 4) * RT_G17_ROOM + 40)) return;
    char *p = sb->s + sb->n;
    p = rt_g17_at(p, o->lp[i]);
    *p++ = ',';
    p = rt_g17_at(p, o->accept_stat[i]);
    *p++ = ',';
    p = rt_g17_at(p, o->stepsize[i]);
    p = put_small_ints(p, (int)o->treedepth[i], (int)o->n_leapfrog[i], (int)o->divergent[i]);
    p = rt_g17_at(p, o->energy[i]);
    for (int j = 0; j < nnames; j++) {
        *p++ = ',';
        p = rt_g17_at(p, row[j]);
    }
    *p++ = '\n';
    *p = 0;
    sb->n = (size_t)(p - sb->s);
}

/* Stan's footer (stan::services::util::mcmc_writer::write_timing, through
 * its "# " comment writer), which ArviZ's from_cmdstan and cmdstanpy read
 * as the chain's warm-up and sampling times; %g is C++'s default stream
 * format. */
static void put_elapsed(rt_sb *sb, double warmup, double sampling) {
    rt_sb_printf(sb, "# \n#  Elapsed Time: %g seconds (Warm-up)\n#                %g seconds (Sampling)\n"
                 "#                %g seconds (Total)\n# \n", warmup, sampling, warmup + sampling);
}

int inf_mcmc_write_csv(const inf_mcmc *m, const char *path, char *err, size_t errlen) {
    /* one buffer for every chain's file, sized once for a chain's draws
     * (~24 bytes a number; growing it by doubling copied the text ~twice) */
    rt_sb sb = {0};
    if (!rt_sb_reserve(&sb, (size_t)m->samples * ((size_t)m->nnames + 7) * 24 + 4096))
        sb.oom = false;   /* only a guess: the lines reserve what they need */
    int rc = 0;
    /* draws.csv with one chain; draws_1.csv ... with several */
    for (int c = 0; c < m->chains && rc == 0; c++) {
        char file[4096];
        if (m->chains == 1) {
            snprintf(file, sizeof file, "%s", path);
        } else {
            const char *dot = strrchr(path, '.');
            const char *slash = strrchr(path, '/');
            if (!dot || (slash && dot < slash)) dot = path + strlen(path);
            snprintf(file, sizeof file, "%.*s_%d%s", (int)(dot - path), path, c + 1, dot);
        }
        sb.n = 0;
        if (sb.s) sb.s[0] = 0;
        const mc_chain_out *o = &m->out[c];
        rt_sb_printf(&sb, "# model = ppl\n# method = sample (Default)\n#   sample\n#     num_samples = %d\n",
                     m->samples);
        /* Stan has no random-walk Metropolis: name it, so no reader takes the
         * treedepth__ / n_leapfrog__ columns (zeros) for NUTS output; static
         * HMC (max_depth 0) is Stan's engine "static" */
        if (m->rwm)
            rt_sb_puts(&sb, "#     algorithm = rwm (random-walk Metropolis, ppl)\n");
        else
            rt_sb_printf(&sb, "#     algorithm = hmc (Default)\n#       hmc\n#         engine = %s\n",
                         m->max_depth ? "nuts (Default)" : "static");
        rt_sb_printf(&sb, "# chain_id = %d\n", c + 1);
        rt_sb_puts(&sb, "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__");
        for (int j = 0; j < m->nnames; j++) {
            char nm[300];
            stan_name(m->names[j], nm, sizeof nm);
            rt_sb_printf(&sb, ",%s", nm);
        }
        rt_sb_printf(&sb, "\n# Adaptation terminated\n# Step size = %.17g\n", o->final_step);
        for (int i = 0; i < m->samples; i++)
            put_draw_line(&sb, o, i, m->draws + ((size_t)c * m->samples + (size_t)i) * (size_t)m->nnames, m->nnames);
        if (m->secs) put_elapsed(&sb, m->secs[2 * c], m->secs[2 * c + 1]);
        if (sb.oom) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        } else {
            rc = rt_write_file_atomic(file, sb.s, sb.n, err, errlen);
        }
    }
    free(sb.s);
    return rc ? -1 : 0;
}
