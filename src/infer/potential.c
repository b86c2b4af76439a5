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

void inf_potential_free(inf_potential *p) {
    if (!p) return;
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
    }
    bk_tensor *ld = NULL;
    bk_tensor *x = st->leaf[i] ? sl_to_constrained(c, &sup, st->leaf[i], L->ndim, L->shape, &ld) : NULL;
    sl_constraint_clear(&sup);
    if (!x) return rt_fail_bk(vm, m->loc);
    bk_tensor *acc = bk_add(c, st->logdet, ld);
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
    if (inf_latents_discover(vm, model, data, loc,
                             "MCMC needs it marginalized out (sum over its values with logsumexp in a "
                             "factor), or use SVI with a guide for it",
                             &p->lat, &p->nlat, &p->dim)) {
        free(p);
        return -1;
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

int inf_potential_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep) {
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    int64_t d = p->dim;
    bk_tape_reset(c);
    bk_tensor *leaf_small[16] = {NULL};
    bk_tensor **leaf = p->nlat <= 16 ? leaf_small : calloc((size_t)p->nlat, sizeof *leaf);
    if (!leaf) return rt_fail(vm, 5, p->loc, "out of memory");
    bool g = bk_set_grad_enabled(c, grad != NULL);
    unc_state st = {.pot = p, .q = q, .grad = grad != NULL, .leaf = leaf, .logdet = bk_scalar(c, 0.0)};
    rt_trace tr;
    rt_trace_init(&tr);
    rt_handler hu, ht;
    memset(&hu, 0, sizeof hu);
    hu.type = "unconstrain";
    hu.process = unconstrain_process;
    hu.state = &st;
    rt_handler_trace(&ht, &tr);
    int rc = st.logdet ? 0 : -1;
    /* trace outside, unconstrain inside: the trace records the values the
     * unconstrain handler supplies */
    if (rc == 0 && rt_push_handler(vm, &ht) == 0) {
        if (rt_push_handler(vm, &hu) == 0) {
            rt_value ret = rt_none();
            rc = rt_call_with_data(vm, p->model, p->data, p->loc, &ret);
            rt_release(ret);
            rt_pop_handler(vm, &hu);
        } else {
            rc = -1;
        }
        rt_pop_handler(vm, &ht);
    }
    bk_tensor *lp = NULL;
    if (rc == 0) {
        bk_tensor *lj = rt_trace_log_prob_sum(vm, &tr, LOGP_KINDS);
        lp = lj ? bk_add(c, lj, st.logdet) : NULL;
        bk_release(lj);
        if (!lp) rc = rt_fail_bk(vm, p->loc);
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
    bk_release(st.logdet);
    if (keep && rc == 0) *keep = tr;
    else rt_trace_clear(&tr);
    bk_tape_reset(c);
    for (int i = 0; i < p->nlat; i++) bk_release(leaf[i]);
    if (leaf != leaf_small) free(leaf);
    bk_set_grad_enabled(c, g);
    return rc;
}
