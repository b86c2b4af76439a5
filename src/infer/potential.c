/* potential.c - a model as a log density over one unconstrained vector, for
 * MCMC.
 *
 * The latent sites (names, shapes, supports) come from a prototype run.
 * Evaluating at u runs the model under an `unconstrain` handler: at each
 * latent site it takes that site's slice of u, maps it through the site's
 * support (or its `sample x: C` constraint) - computed from the
 * distribution in this very run, so bounds that depend on other latents
 * (Uniform(0, 1 - a)) are right - and adds log|det J|.  The log joint plus
 * the log-Jacobians is differentiated by the tape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "potential.h"
#include "enumerate.h"
#include "program.h"

/* replays checked against interpretation before the program is trusted */
#define FAST_VERIFY 2

void inf_potential_fast_reset(inf_potential *p) {
    bk_prog_free(p->prog);
    p->prog = NULL;
    p->fast_state = 0;
    p->fast_verify = FAST_VERIFY;
    bk_prog_free(p->vprog);
    p->vprog = NULL;
    p->vals_state = 0;
    p->vals_verify = FAST_VERIFY;
}

void inf_potential_free(inf_potential *p) {
    if (!p) return;
    bk_prog_free(p->prog);
    bk_prog_free(p->vprog);
    inf_enum_free(p->en);
    inf_latents_free(p->lat, p->nlat);
    free(p);
}

/* ------------------------------------------------------------- handler --- */

typedef struct unc_state {
    inf_potential *pot;
    const double *q;       /* the unconstrained point */
    bool grad;             /* the leaves require a gradient */
    bk_tensor **leaf;      /* per latent: its slice of q as a leaf (or NULL) */
    bk_tensor *logdet;     /* running sum */
    int failed;
} unc_state;

static int find_latent(const inf_potential *p, const char *name) {
    for (int i = 0; i < p->nlat; i++)
        if (strcmp(p->lat[i].name, name) == 0) return i;
    return -1;
}

static int unconstrain_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    unc_state *st = h->state;
    if (m->kind != RT_SITE_SAMPLE || m->observed) return 0;
    int i = find_latent(st->pot, m->name);
    if (i < 0)
        return rt_error_loc(vm, m->loc, "latent site \"%s\" did not appear in the prototype run; "
                            "MCMC needs the same latent sites on every run", m->name);
    inf_latent *L = &st->pot->lat[i];
    bk_ctx *c = vm->bk;
    sl_constraint sup = {0};
    if (m->constraint) sup = sl_constraint_copy(m->constraint);
    else if (sl_support(c, m->dist, &sup)) return rt_fail_bk(vm, m->loc);
    /* the site's own leaf, in its unconstrained shape: no slice and
     * reshape of one big leaf, whose backward would scatter into a
     * zero-filled full-length gradient per site */
    if (!st->leaf[i]) {
        st->leaf[i] = bk_place(c, bk_from_f64(c, L->undim, L->ushape, st->q + L->offset));
        if (st->leaf[i] && st->grad) bk_set_requires_grad(st->leaf[i], true);
        bk_prog_input(c, st->leaf[i], L->offset);
    }
    bk_tensor *ld = NULL;
    bk_tensor *x = st->leaf[i] ? sl_to_constrained(c, &sup, st->leaf[i], L->ndim, L->shape, &ld) : NULL;
    bool real = sup.kind == SL_C_REAL;
    sl_constraint_clear(&sup);
    if (!x) return rt_fail_bk(vm, m->loc);
    /* the real line's log-det, the constant +0, adds nothing: the running
     * sum starts at +0 and so is never -0, and adding +0 leaves its bits */
    bk_tensor *acc = real ? bk_retain(st->logdet) : bk_add(c, st->logdet, ld);
    bk_release(ld);
    if (!acc) {
        bk_release(x);
        return rt_fail_bk(vm, m->loc);
    }
    bk_release(st->logdet);
    st->logdet = acc;
    bk_release(m->value);
    m->value = x;
    m->done = true;
    return 0;
}

/* --------------------------------------------------------- prototype --- */

int inf_potential_init(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, inf_potential **out) {
    *out = NULL;
    inf_potential *p = calloc(1, sizeof *p);
    if (!p) return rt_fail(vm, 5, loc, "out of memory");
    p->vm = vm;
    p->model = model;
    p->data = data;
    p->loc = loc;
    p->fast = true;
    p->fast_verify = FAST_VERIFY;
    p->vals_verify = FAST_VERIFY;
    /* continuous latents here; the discrete ones are summed out */
    if (inf_latents_discover(vm, model, data, loc, NULL, &p->lat, &p->nlat, &p->dim)) {
        free(p);
        return -1;
    }
    if (inf_enum_init(p, &p->en)) {
        inf_potential_free(p);
        return -1;
    }
    if (p->dim == 0 && p->en) {
        inf_potential_free(p);
        return rt_error_loc(vm, loc, "the model has no continuous latent sites to sample: its discrete sites "
                            "are summed out, which leaves nothing for MCMC");
    }
    if (p->dim == 0) {
        inf_potential_free(p);
        return rt_error_loc(vm, loc, "the model has no latent sites to sample");
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------ evaluate --- */

static const unsigned LOGP_KINDS = (1u << RT_SITE_SAMPLE) | (1u << RT_SITE_OBSERVE) | (1u << RT_SITE_FACTOR);

int inf_potential_run(inf_potential *p, const double *q, bool grad, rt_handler *inner, bk_tensor **leaf,
                      rt_trace *tr, bk_tensor **logdet) {
    rt_vm *vm = p->vm;
    unc_state st = {.pot = p, .q = q, .grad = grad, .leaf = leaf, .logdet = bk_scalar(vm->bk, 0.0)};
    rt_trace_init(tr);
    rt_handler hu, ht;
    memset(&hu, 0, sizeof hu);
    hu.type = "unconstrain";
    hu.process = unconstrain_process;
    hu.state = &st;
    rt_handler_trace(&ht, tr);
    int rc = st.logdet ? 0 : -1, pushed = 0;
    rt_handler *hs[3] = {&ht, &hu, inner};
    for (int i = 0; i < 3 && rc == 0 && hs[i]; i++) {
        if (rt_push_handler(vm, hs[i])) rc = rt_fail(vm, 5, p->loc, "out of memory");
        else pushed++;
    }
    if (rc == 0) {
        rt_value ret = rt_none();
        rc = rt_call_with_data(vm, p->model, p->data, p->loc, &ret);
        rt_release(ret);
    }
    while (pushed > 0) rt_pop_handler(vm, hs[--pushed]);
    if (rc) {
        bk_release(st.logdet);
        rt_trace_clear(tr);
        return -1;
    }
    *logdet = st.logdet;
    return 0;
}

/* Whether site s holds a value of a draw (inf_potential_values, mcmc.c). */
static bool draw_site(const rt_site *s) { return s->kind == RT_SITE_SAMPLE || s->kind == RT_SITE_DETERMINISTIC; }

enum { REC_NONE, REC_POTENTIAL, REC_VALUES };

/* The model run under the handlers; with `record`, its ops become p->prog
 * (REC_POTENTIAL: the log density) or p->vprog (REC_VALUES: the values of
 * the trace's draw sites; grad NULL, keep set). */
static int eval_interp(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep,
                       int record) {
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    int64_t d = p->dim;
    bk_tape_reset(c);
    bk_rng rng0 = vm->rng;
    if (record && bk_prog_begin(c)) {
        bk_clearerr(c);
        record = REC_NONE;
    }
    bk_tensor *leaf_small[16] = {NULL};
    bk_tensor **leaf = p->nlat <= 16 ? leaf_small : calloc((size_t)p->nlat, sizeof *leaf);
    if (!leaf) return rt_fail(vm, 5, p->loc, "out of memory");
    bool g = bk_set_grad_enabled(c, grad != NULL);
    rt_trace tr;
    bk_tensor *logdet = NULL;
    int rc = inf_potential_run(p, q, grad != NULL, NULL, leaf, &tr, &logdet);
    bk_tensor *lp = NULL;
    if (rc == 0) {
        bk_tensor *lj = rt_trace_log_prob_sum(vm, &tr, LOGP_KINDS);
        lp = lj ? bk_add(c, lj, logdet) : NULL;
        bk_release(lj);
        if (!lp) rc = rt_fail_bk(vm, p->loc);
    }
    if (record) {
        /* a random draw made while recording would be a stale constant */
        if (memcmp(&rng0, &vm->rng, sizeof rng0) != 0) bk_prog_taint(c, "the model draws random numbers");
        if (record == REC_POTENTIAL) {
            p->prog = bk_prog_end(c, rc == 0 ? lp : NULL, p->fast_why, sizeof p->fast_why);
            if (rc == 0) p->fast_state = p->prog ? 1 : 2;
        } else {
            if (rc) bk_prog_taint(c, "the run failed");
            for (int i = 0; rc == 0 && i < tr.n; i++)
                if (draw_site(&tr.sites[i])) bk_prog_output(c, tr.sites[i].value);
            p->vprog = bk_prog_end(c, NULL, NULL, 0);
            if (rc == 0) p->vals_state = p->vprog ? 1 : 2;
        }
    }
    if (rc == 0) {
        *logp = bk_item(lp);
        if (grad) {
            if (!isfinite(*logp)) {
                for (int64_t i = 0; i < d; i++) grad[i] = 0;
            } else if (lp->requires_grad) {
                if (bk_backward(c, lp)) rc = rt_fail_bk(vm, p->loc);
                for (int i = 0; rc == 0 && i < p->nlat; i++) {
                    const inf_latent *L = &p->lat[i];
                    if (leaf[i] && leaf[i]->grad) bk_copy_out(leaf[i]->grad, grad + L->offset);
                    else
                        for (int64_t k = 0; k < L->unumel; k++) grad[L->offset + k] = 0;
                }
            } else {
                for (int64_t i = 0; i < d; i++) grad[i] = 0;
            }
        }
    }
    bk_release(lp);
    bk_release(logdet);
    if (keep && rc == 0) *keep = tr;
    else rt_trace_clear(&tr);
    bk_tape_reset(c);
    for (int i = 0; i < p->nlat; i++) bk_release(leaf[i]);
    if (leaf != leaf_small) free(leaf);
    bk_set_grad_enabled(c, g);
    return rc;
}

static bool same_double(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* A replay at q, checked against interpretation while fast_verify lasts;
 * 1 when the point needs interpretation (a guard failed). */
static int eval_fast(inf_potential *p, const double *q, double *logp, double *grad) {
    if (p->fast_verify <= 0) {
        if (bk_prog_run(p->prog, p->vm->bk, q, logp, grad)) {
            /* a guard that fails more often than not only costs time */
            if (++p->fast_misses > 100 && p->fast_misses > p->fast_replays) {
                bk_prog_free(p->prog);
                p->prog = NULL;
                p->fast_state = 2;
                snprintf(p->fast_why, sizeof p->fast_why, "its guards failed at most points");
            }
            return 1;
        }
        p->fast_replays++;
        if (grad && !isfinite(*logp)) memset(grad, 0, sizeof *grad * (size_t)p->dim);
        return 0;
    }
    double lp2, small[32], *g2 = NULL;
    if (grad) g2 = p->dim <= 32 ? small : malloc(sizeof *g2 * (size_t)p->dim);
    if (grad && !g2) return 1;
    int fr = bk_prog_run(p->prog, p->vm->bk, q, &lp2, g2);
    if (fr) p->fast_misses++;
    if (fr == 0 && grad && !isfinite(lp2)) memset(g2, 0, sizeof *g2 * (size_t)p->dim);
    int rc = eval_interp(p, q, logp, grad, NULL, false);
    if (rc == 0 && fr == 0) {
        bool same = same_double(lp2, *logp);
        for (int64_t i = 0; same && grad && i < p->dim; i++) same = same_double(g2[i], grad[i]);
        if (same) {
            p->fast_verify--;
        } else { /* the program does not compute this model: never use it */
            bk_prog_free(p->prog);
            p->prog = NULL;
            p->fast_state = 2;
            snprintf(p->fast_why, sizeof p->fast_why, "a replay differed from the interpreted evaluation");
        }
    }
    if (g2 != small) free(g2);
    return rc ? -1 : 0;
}

int inf_potential_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep) {
    /* discrete latents: the sum over their values (enumerate.c); no fast path */
    if (p->en) return inf_enum_eval(p, q, logp, grad, keep);
    if (!keep && p->prog && p->fast_state == 1) {
        int rc = eval_fast(p, q, logp, grad);
        if (rc <= 0) return rc;
    }
    int record = !keep && grad && p->fast && p->fast_state == 0 ? REC_POTENTIAL : REC_NONE;
    return eval_interp(p, q, logp, grad, keep, record);
}

/* The draw sites' values in tr as v[0 .. n): the number of values there
 * (more than n: only n written). */
static int64_t trace_values(const rt_trace *tr, double *v, int64_t n) {
    int64_t m = 0;
    for (int i = 0; i < tr->n; i++) {
        const rt_site *s = &tr->sites[i];
        if (!draw_site(s)) continue;
        if (m + s->value->numel <= n) bk_copy_out(s->value, v + m);
        m += s->value->numel;
    }
    return m;
}

/* An interpreted run at q without a gradient (REC_VALUES: recording
 * p->vprog): its values into v, 1 when they are not n. */
static int values_interp(inf_potential *p, const double *q, double *v, int64_t n, int record) {
    bk_ctx *c = p->vm->bk;
    bool g = bk_set_grad_enabled(c, false);
    rt_trace tr;
    double lp;
    int rc = eval_interp(p, q, &lp, NULL, &tr, record);
    bk_set_grad_enabled(c, g);
    if (rc) return -1;
    int64_t m = trace_values(&tr, v, n);
    rt_trace_clear(&tr);
    return m == n ? 0 : 1;
}

int inf_potential_values(inf_potential *p, const double *q, double *v, int64_t n) {
    if (p->en || !p->fast || p->vals_state == 2) return 1;
    if (p->vals_state == 0) {
        int rc = values_interp(p, q, v, n, REC_VALUES);
        if (rc == 0 && p->vprog && bk_prog_outputs_numel(p->vprog) != n) rc = 1;
        if (rc == 1) { /* (the values are not the caller's columns) */
            bk_prog_free(p->vprog);
            p->vprog = NULL;
            p->vals_state = 2;
        }
        return rc;
    }
    bk_prog_io io = {.x = q, .outs = v};
    if (bk_prog_exec(p->vprog, p->vm->bk, &io)) return 1; /* a guard failed: the trace answers */
    if (p->vals_verify <= 0) return 0;
    double small[64], *w = n <= 64 ? small : malloc(sizeof *w * (size_t)n);
    if (!w) return 1;
    int rc = values_interp(p, q, w, n, REC_NONE);
    if (rc == 0) {
        if (memcmp(v, w, sizeof *w * (size_t)n) == 0) { /* (bits: the draws are written as they are) */
            p->vals_verify--;
        } else { /* never use the program again; this draw takes the interpreted values */
            memcpy(v, w, sizeof *w * (size_t)n);
            bk_prog_free(p->vprog);
            p->vprog = NULL;
            p->vals_state = 2;
        }
    }
    if (w != small) free(w);
    return rc;
}
