/* svi_epochs.c - SVI by epochs: svi(model, guide, data, epochs=E,
 * batch_size=B, shuffle=true, validation=V, patience=P, min_delta=D).
 *
 * An epoch visits every index of one plate exactly once: the indices
 * 0..N-1 in a fresh order (a Fisher-Yates permutation drawn from the run's
 * own seeded stream when the epoch starts, so the orders depend only on the
 * seed and a resumed run continues them), cut into consecutive minibatches
 * of B, the last one smaller.  A handler outside the guide's and the model's runs answers the
 * plate's message with the current minibatch and its size, so the plate
 * scales its log-densities by N / len(batch): each step's loss is an
 * unbiased estimate of the full-data loss, the last, smaller batch too.
 * The data arrays are never copied; X[idx] inside the plate gathers the
 * minibatch's rows.
 *
 * After each epoch the validation loss (the same ELBO on `validation`
 * data, gradients off, val_particles particles, the plate in consecutive
 * batches of val_batch_size or whole) is computed on common random numbers
 * (the stream (seed, VAL_STREAM) afresh each epoch), and early stopping
 * watches it as Keras's EarlyStopping(patience, min_delta,
 * restore_best_weights=True) does. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"

/* The validation draws' Philox stream: 0 is the steps' stream, 1 the
 * autoguide's discovery. */
#define VAL_STREAM ((uint64_t)2 << 32)

/* ------------------------------------------------------- options --- */

/* An error at one of svi(...)'s keywords while the model runs: the
 * location is in the source of the svi call, not the model's. */
static int option_error(rt_vm *vm, const inf_epoch_opts *eo, rt_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int option_error(rt_vm *vm, const inf_epoch_opts *eo, rt_loc loc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const rt_source *src = vm->cur_src;
    const char *site = vm->cur_site;
    vm->cur_src = eo->src;
    vm->cur_site = NULL;
    rt_error_loc(vm, eo->src ? loc : (rt_loc){0, 0, 0, 0}, "%s", msg);
    vm->cur_src = src;
    vm->cur_site = site;
    return -1;
}

static const char *const EPOCH_KWS[] = {"batch_size", "shuffle", "validation", "val_batch_size", "val_particles",
                                        "patience", "min_delta", "restore_best", "plate", NULL};

static rt_loc kw_loc(const rt_call *c, const char *kw) {
    for (int i = 0; i < c->nkw; i++)
        if (strcmp(c->kwnames[i], kw) == 0 && c->kwloc) return c->kwloc[i];
    return c->loc;
}

/* An integer keyword >= lo (absent: dflt). */
static int kw_int(rt_vm *vm, const rt_call *c, const char *kw, double dflt, double lo, double *out) {
    if (rt_arg_number(vm, c, -1, kw, dflt, false, out)) return -1;
    if (rt_arg(c, -1, kw) && !(*out >= lo && *out == floor(*out) && *out < 9e15))
        return rt_error_kw(vm, c, kw, "svi: %s must be an integer >= %g, got %g", kw, lo, *out);
    return 0;
}

int inf_epoch_opts_parse(rt_vm *vm, const rt_call *c, inf_epoch_opts *eo, bool *any) {
    memset(eo, 0, sizeof *eo);
    const rt_value *ev = rt_arg(c, -1, "epochs");
    *any = ev != NULL;
    if (!ev) {
        for (int i = 0; EPOCH_KWS[i]; i++)
            if (rt_arg(c, -1, EPOCH_KWS[i]))
                return rt_error_kw(vm, c, EPOCH_KWS[i], "svi: %s= needs epochs= (the number of passes over "
                                   "the data)", EPOCH_KWS[i]);
        return 0;
    }
    if (rt_arg(c, -1, "steps"))
        return rt_error_kw(vm, c, "steps", "svi: give steps= or epochs=, not both (with epochs= the number of "
                           "steps is epochs * ceil(N / batch_size))");
    double e, b, sh, vb, vp, pat, md, rb;
    if (kw_int(vm, c, "epochs", 1, 1, &e) || kw_int(vm, c, "batch_size", 0, 1, &b) ||
        kw_int(vm, c, "val_batch_size", 0, 1, &vb) || kw_int(vm, c, "val_particles", 4, 1, &vp) ||
        kw_int(vm, c, "patience", 1, 1, &pat) || rt_arg_number(vm, c, -1, "shuffle", 1, false, &sh) ||
        rt_arg_number(vm, c, -1, "min_delta", 0, false, &md) ||
        rt_arg_number(vm, c, -1, "restore_best", 1, false, &rb))
        return -1;
    if (vp > 1e6) return rt_error_kw(vm, c, "val_particles", "svi: val_particles must be at most 1000000");
    if (!(md >= 0 && isfinite(md)))
        return rt_error_kw(vm, c, "min_delta", "svi: min_delta must be a number >= 0, got %g", md);
    const rt_value *v = rt_arg(c, -1, "validation");
    if (v && v->tag != RT_RECORD)
        return rt_error_kw(vm, c, "validation", "svi: validation must be a record binding the model's arguments "
                           "like the data, e.g. {X: Xval}, got a %s", rt_type_name(*v));
    const char *plate = NULL;
    if (rt_arg(c, -1, "plate") && rt_arg_string(vm, c, -1, "plate", false, &plate)) return -1;
    eo->epochs = (long)e;
    eo->batch_size = (int64_t)b;
    eo->shuffle = sh != 0;
    eo->plate = plate;
    eo->validation = v ? (const rt_record *)v->u.o : NULL;
    eo->val_batch_size = (int64_t)vb;
    eo->val_particles = (int)vp;
    eo->patience = rt_arg(c, -1, "patience") ? (long)pat : -1;
    eo->min_delta = md;
    eo->restore_best = rb != 0;
    eo->batch_loc = kw_loc(c, "batch_size");
    eo->plate_loc = kw_loc(c, "plate");
    eo->src = vm->cur_src;
    return 0;
}

void inf_epoch_log_free(inf_epoch_log *l) {
    if (!l) return;
    free(l->train);
    free(l->val);
    free(l);
}

/* --------------------------------------------------- batch plans --- */

/* The minibatches of one pass over the driven plate. */
typedef struct batch_plan {
    const inf_epoch_opts *eo;
    const char *name;        /* the driven plate; NULL until one is seen */
    bool strict;             /* another subsampled plate is an error */
    int64_t want;            /* batch size asked for (0: see plan_learn) */
    rt_loc want_loc;
    bool whole;              /* want 0: the whole plate (validation) */
    bool shuffle;
    bool fresh;              /* the pass's order is still to be drawn */
    bool known;              /* N learned (the plate ran) */
    int64_t N, B;
    int64_t *order;          /* this pass's order of 0..N-1 */
    int64_t pos, len;        /* the current batch is order[pos .. pos + len) */
    bk_tensor *idx;          /* ... as indices, made on first use */
} batch_plan;

static void plan_order(rt_vm *vm, batch_plan *p) {
    if (p->shuffle) {
        bk_rng_permutation(rt_vm_rng(vm), p->N, p->order);
    } else {
        for (int64_t i = 0; i < p->N; i++) p->order[i] = i;
    }
}

/* The driven plate's first message: its size, the batch size, the order. */
static int plan_learn(rt_vm *vm, batch_plan *p, const rt_msg *m) {
    p->N = m->plate_size;
    p->B = p->want ? p->want : m->subsampled && !p->whole ? m->plate_sub : p->N;
    if (p->B > p->N && p->want && !p->whole)
        return option_error(vm, p->eo, p->want_loc, "svi: batch size %lld is larger than plate \"%s\" (size %lld)",
                            (long long)p->B, m->name, (long long)p->N);
    if (p->B > p->N) p->B = p->N;
    p->order = malloc((p->N ? p->N : 1) * sizeof *p->order);
    if (!p->order) return rt_fail(vm, 5, m->loc, "out of memory");
    p->known = true;
    return 0;
}

static int plan_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    batch_plan *p = h->state;
    if (m->kind != RT_SITE_PLATE) return 0;
    if (!p->name) {
        if (!m->subsampled) return 0;
        p->name = m->name;
    } else if (strcmp(p->name, m->name) != 0) {
        if (p->strict && m->subsampled)
            return rt_error_loc(vm, m->loc, "svi(epochs=): plates \"%s\" and \"%s\" are both subsampled; name the "
                                "one the epochs run over with plate=\"%s\" (the others keep drawing random "
                                "subsamples)", p->name, m->name, p->name);
        return 0;
    }
    if (!p->known) {
        if (plan_learn(vm, p, m)) return -1;
    } else if (m->plate_size != p->N) {
        return rt_error_loc(vm, m->loc, "svi(epochs=): plate \"%s\" has size %lld here but %lld before; the "
                            "epochs need a fixed size", m->name, (long long)m->plate_size, (long long)p->N);
    }
    if (p->fresh) {
        /* drawn here, at the pass's first plate message, in every epoch
         * alike, so a resumed run draws the same orders */
        plan_order(vm, p);
        p->fresh = false;
        p->pos = 0;
        p->len = p->B < p->N ? p->B : p->N;
    }
    if (!p->idx) {
        p->idx = bk_empty(vm->bk, BK_F64, 1, (int64_t[]){p->len});
        if (!p->idx) return rt_fail_bk(vm, m->loc);
        for (int64_t i = 0; i < p->len; i++) bk_data(p->idx)[i] = (double)p->order[p->pos + i];
    }
    bk_release(m->value);
    m->value = bk_retain(p->idx);
    m->plate_sub = p->len;
    m->sized = true;
    m->done = true;
    return 0;
}

/* A new pass: its order is drawn at the plate's first message. */
static void plan_start(batch_plan *p) {
    p->pos = 0;
    p->fresh = true;
    bk_release(p->idx);
    p->idx = NULL;
}

/* The share of the data the current batch is (1 when no plate ran). */
static double plan_weight(const batch_plan *p) { return p->known && p->N > 0 ? (double)p->len / p->N : 1.0; }

/* After a step: the next batch; true when the pass is over. */
static bool plan_advance(batch_plan *p) {
    bk_release(p->idx);
    p->idx = NULL;
    if (!p->known || p->N == 0) return true;
    p->pos += p->len;
    int64_t left = p->N - p->pos;
    p->len = left < p->B ? left : p->B;
    return left <= 0;
}

static long plan_steps(const batch_plan *p) { return p->known && p->N > 0 ? (p->N + p->B - 1) / p->B : 1; }

static void plan_free(batch_plan *p) {
    bk_release(p->idx);
    p->idx = NULL;
    free(p->order);
    p->order = NULL;
}

static void plan_handler(rt_handler *h, batch_plan *p) {
    memset(h, 0, sizeof *h);
    h->type = "minibatch";
    h->process = plan_process;
    h->state = p;
}

/* ------------------------------------------------ parameter copy --- */

/* The unconstrained parameters at the best epoch so far. */
typedef struct snapshot {
    int n;
    char **names;
    double **vals;
    int64_t *numel;
} snapshot;

static void snapshot_free(snapshot *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->vals[i]);
    }
    free(s->names);
    free(s->vals);
    free(s->numel);
    memset(s, 0, sizeof *s);
}

static int snapshot_take(rt_vm *vm, snapshot *s, rt_loc loc) {
    snapshot_free(s);
    int n = vm->params.n;
    s->names = calloc(n ? n : 1, sizeof *s->names);
    s->vals = calloc(n ? n : 1, sizeof *s->vals);
    s->numel = calloc(n ? n : 1, sizeof *s->numel);
    if (!s->names || !s->vals || !s->numel) goto oom;
    for (int i = 0; i < n; i++, s->n++) {
        const rt_param *p = &vm->params.items[i];
        s->names[i] = strdup(p->name);
        s->vals[i] = malloc((p->u->numel ? p->u->numel : 1) * sizeof(double));
        s->numel[i] = p->u->numel;
        if (!s->names[i] || !s->vals[i]) {
            s->n++;
            goto oom;
        }
        bk_copy_out(p->u, s->vals[i]);
    }
    return 0;
oom:
    snapshot_free(s);
    return rt_fail(vm, 5, loc, "out of memory");
}

/* Parameters created after the snapshot keep their values. */
static void snapshot_restore(rt_vm *vm, const snapshot *s) {
    for (int i = 0; i < s->n; i++) {
        rt_param *p = rt_param_find(vm, s->names[i]);
        if (p && p->u->numel == s->numel[i]) (void)bk_copy_in(vm->bk, p->u, s->vals[i]); /* cannot fail: same size */
    }
}

/* ----------------------------------------------------- the loop --- */

/* The validation loss: the plate over the validation data in consecutive
 * batches (or whole), each batch's loss weighted by its share, so the sum
 * estimates the full validation loss; the same draws every epoch. */
static int validate(rt_vm *vm, rt_func *model, inf_guide *guide, const inf_svi_opts *o, const batch_plan *tp,
                    rt_loc loc, double *out) {
    const inf_epoch_opts *eo = o->ep;
    inf_svi_opts vo = *o;
    vo.particles = eo->val_particles;
    vo.ep = NULL;
    batch_plan vp = {.eo = eo, .name = tp->name, .strict = tp->strict, .want = eo->val_batch_size, .whole = true};
    rt_handler hs, hp;
    rt_seed_state ss;
    rt_handler_seed(&hs, &ss, o->seed);
    bk_rng_init(&ss.rng, o->seed, VAL_STREAM);
    plan_handler(&hp, &vp);
    if (rt_push_handler(vm, &hs)) return rt_fail(vm, 5, loc, "out of memory");
    int rc = rt_push_handler(vm, &hp) ? rt_fail(vm, 5, loc, "out of memory") : 0;
    double acc = 0;
    plan_start(&vp);
    for (bool end = false; rc == 0 && !end;) {
        double l = 0;
        if (vm->interrupted) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
            break;
        }
        rc = inf_svi_eval_loss(vm, model, guide, eo->validation, &vo, loc, &l);
        if (rc) break;
        acc += plan_weight(&vp) * l;
        end = plan_advance(&vp);
    }
    rt_pop_handler(vm, &hp);
    rt_pop_handler(vm, &hs);
    plan_free(&vp);
    *out = acc;
    return rc;
}

static int grow_losses(rt_vm *vm, inf_result *r, long *cap, rt_loc loc) {
    if (r->nlosses < *cap) return 0;
    long nc = *cap ? *cap * 2 : 64;
    double *l = realloc(r->losses, nc * sizeof *l);
    if (!l) return rt_fail(vm, 5, loc, "out of memory");
    r->losses = l;
    *cap = nc;
    return 0;
}

static void report(rt_vm *vm, long e, long E, long step, long steps, double elbo, double val) {
    if (vm->progress_epoch) vm->progress_epoch(vm->progress_ud, e, E, step, steps, elbo, val);
    else if (vm->progress && step == steps) vm->progress(vm->progress_ud, "epoch", e, E, elbo);
}

/* One epoch of steps; its weighted mean loss in *mean. */
static int train_epoch(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                       inf_svi_state *st, double *baseline, rt_loc loc, inf_result *r, long *cap, batch_plan *tp,
                       long e, double *mean) {
    const inf_epoch_opts *eo = o->ep;
    double acc = 0, wdone = 0;
    long done = 0;
    for (bool end = false; !end;) {
        if (vm->interrupted) {
            vm->interrupted = 0;
            return rt_fail(vm, 7, loc, "interrupted");
        }
        if (grow_losses(vm, r, cap, loc)) return -1;
        double l = 0;
        if (inf_svi_step(vm, model, guide, data, o, &st->opt, loc, baseline, &l)) return -1;
        r->losses[r->nlosses++] = l;
        if (done == 0 && e == 0) {
            /* after the first step: is the plate the options name there? */
            if (eo->plate && !tp->known)
                return option_error(vm, eo, eo->plate_loc, "svi: plate=\"%s\": no plate of that name ran in the model "
                                    "or the guide", eo->plate);
            if (eo->batch_size && !tp->known)
                return option_error(vm, eo, eo->batch_loc, "svi: batch_size= needs a minibatch plate: declare "
                                    "plate NAME(N, subsample=B) in the model (or name a plate with plate=)");
        }
        double w = plan_weight(tp);
        acc += w * l;
        wdone += w;
        done++;
        long steps = plan_steps(tp);
        end = plan_advance(tp);
        long every = steps >= 30 ? steps / 30 : 1;
        if (!end && done % every == 0) report(vm, e + 1, eo->epochs, done, steps, -acc / wdone, NAN);
    }
    *mean = acc / wdone;
    return 0;
}

int inf_svi_epochs(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                   inf_svi_state *st, double *baseline, rt_loc loc, inf_result *r) {
    const inf_epoch_opts *eo = o->ep;
    inf_epoch_log *lg = calloc(1, sizeof *lg);
    if (lg) {
        lg->train = malloc(eo->epochs * sizeof *lg->train);
        lg->val = malloc(eo->epochs * sizeof *lg->val);
    }
    if (!lg || !lg->train || !lg->val) {
        inf_epoch_log_free(lg);
        return rt_fail(vm, 5, loc, "out of memory");
    }
    r->epochs = lg;
    lg->has_val = eo->validation != NULL;
    lg->best_epoch = -1;
    long cap = 0;
    batch_plan tp = {.eo = eo, .name = eo->plate, .strict = eo->plate == NULL, .want = eo->batch_size,
                     .want_loc = eo->batch_loc, .shuffle = eo->shuffle};
    rt_handler hp;
    plan_handler(&hp, &tp);
    snapshot best_params = {0};
    bool keep = eo->patience >= 0 && eo->restore_best;
    double best = INFINITY;
    long wait = 0;
    int rc = 0;
    for (long e = 0; e < eo->epochs && rc == 0; e++) {
        plan_start(&tp);
        double train = 0, val = NAN;
        if (rt_push_handler(vm, &hp)) {
            rc = rt_fail(vm, 5, loc, "out of memory");
            break;
        }
        rc = train_epoch(vm, model, guide, data, o, st, baseline, loc, r, &cap, &tp, e, &train);
        rt_pop_handler(vm, &hp);
        if (rc == 0 && eo->validation) rc = validate(vm, model, guide, o, &tp, loc, &val);
        if (rc) break;
        lg->train[e] = train;
        lg->val[e] = val;
        lg->nepochs = e + 1;
        /* Keras's EarlyStopping: an improvement is a drop by more than min_delta */
        double mon = eo->validation ? val : train;
        if (mon < best - eo->min_delta || lg->best_epoch < 0) {
            best = mon;
            lg->best_epoch = e;
            wait = 0;
            if (keep) rc = snapshot_take(vm, &best_params, loc);
        } else if (eo->patience >= 0 && ++wait >= eo->patience) {
            lg->stopped_early = e + 1 < eo->epochs;
        }
        report(vm, e + 1, eo->epochs, plan_steps(&tp), plan_steps(&tp), -train, -val);
        if (lg->stopped_early) break;
    }
    if (rc == 0 && keep && lg->best_epoch >= 0 && lg->best_epoch + 1 < lg->nepochs) {
        snapshot_restore(vm, &best_params);
        lg->restored = true;
    }
    snapshot_free(&best_params);
    plan_free(&tp);
    return rc;
}
