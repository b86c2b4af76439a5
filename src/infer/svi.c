/* svi.c - stochastic variational inference with Trace_ELBO.
 *
 * One step, per particle: run the guide under `trace`; run the model under
 * `replay(guide trace)` and `trace`; ELBO = log p(model trace) - log q(guide
 * trace).  Reparameterized guide sites carry pathwise gradients through the
 * tape; for the others the surrogate adds log q(z) * detach(ELBO) (the
 * score-function estimator).  The loss -ELBO/particles is differentiated
 * and the optimizer updates the unconstrained parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "svi_fast.h"

static const unsigned MODEL_KINDS = (1u << RT_SITE_SAMPLE) | (1u << RT_SITE_OBSERVE) | (1u << RT_SITE_FACTOR);
static const unsigned GUIDE_KINDS = (1u << RT_SITE_SAMPLE);

/* The batch-shaped log-prob of site t times its scale, summed over every
 * dimension that is not a plate dimension shared (by name) with site s;
 * keepdim, so the result broadcasts against s's batch shape.  Not on the
 * tape (the caller has gradients off). */
static bk_tensor *term_for(bk_ctx *c, const rt_site *t, const rt_site *s) {
    bk_tensor *cur = bk_retain(t->log_prob_batch ? t->log_prob_batch : t->log_prob);
    for (int k = 1; cur && k <= cur->ndim; k++) {
        bool keep = false;
        for (int i = 0; i < t->nplates && !keep; i++) {
            if (t->plates[i].dim != -k) continue;
            for (int j = 0; j < s->nplates && !keep; j++) keep = strcmp(t->plates[i].name, s->plates[j].name) == 0;
        }
        if (keep || cur->shape[cur->ndim - k] == 1) continue;
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, cur->ndim - k, true);
        bk_release(cur);
        cur = r;
    }
    bk_tensor *sc = cur && t->scale != 1.0 ? bk_mul_s(c, cur, t->scale) : bk_retain(cur);
    bk_release(cur);
    return sc;
}

/* Plate-wise Rao-Blackwellization (Pyro's Trace_ELBO with plates): the
 * learning signal of a site in plates is log p - log q with every term
 * reduced to the site's plate slices, so slice i of z sees only the terms
 * of slice i of its plates (and the terms outside them). */
static bk_tensor *local_signal(rt_vm *vm, const rt_trace *mtr, const rt_trace *gtr, const rt_site *s) {
    bk_ctx *c = vm->bk;
    bk_tensor *acc = bk_scalar(c, 0.0);
    for (int pass = 0; pass < 2 && acc; pass++) {
        const rt_trace *tr = pass ? gtr : mtr;
        for (int i = 0; acc && i < tr->n; i++) {
            const rt_site *t = &tr->sites[i];
            if (!t->log_prob || !((pass ? GUIDE_KINDS : MODEL_KINDS) & (1u << t->kind))) continue;
            bk_tensor *x = term_for(c, t, s);
            bk_tensor *a = x ? (pass ? bk_sub(c, acc, x) : bk_add(c, acc, x)) : NULL;
            bk_release(x);
            bk_release(acc);
            acc = a;
        }
    }
    return acc;
}

/* The score-function part of the surrogate: over the guide's
 * non-reparameterized sample sites, sum(scale * log q(z) * signal) with the
 * signal constant to the tape: the whole ELBO minus the baseline for sites
 * outside plates (or with rb off), the plate-local signal otherwise. */
static bk_tensor *score_terms(rt_vm *vm, const rt_trace *mtr, const rt_trace *g, double elbo, double baseline,
                              bool rb, bool *any) {
    bk_ctx *c = vm->bk;
    bk_tensor *acc = bk_scalar(c, 0.0);
    *any = false;
    for (int i = 0; acc && i < g->n; i++) {
        const rt_site *s = &g->sites[i];
        if (s->kind != RT_SITE_SAMPLE || !s->dist || !s->log_prob || sl_dist_reparam(s->dist)) continue;
        *any = true;
        bk_tensor *term = NULL;
        if (rb && s->nplates > 0 && s->log_prob_batch) {
            bool gr = bk_set_grad_enabled(c, false);
            bk_tensor *sig = local_signal(vm, mtr, g, s);
            bk_set_grad_enabled(c, gr);
            bk_tensor *w = sig ? bk_mul(c, s->log_prob_batch, sig) : NULL;
            bk_tensor *ws = w ? bk_sum_all(c, w) : NULL;
            term = ws ? bk_mul_s(c, ws, s->scale) : NULL;
            bk_release(sig);
            bk_release(w);
            bk_release(ws);
        } else {
            term = bk_mul_s(c, s->log_prob, elbo - baseline);
        }
        bk_tensor *a = term ? bk_add(c, acc, term) : NULL;
        bk_release(term);
        bk_release(acc);
        acc = a;
    }
    return acc;
}

/* TraceMeanField_ELBO: the observed and factor terms, plus for every latent
 * site either -KL(q || p) in closed form (when the pair is registered) or
 * the Monte Carlo term log p(z) - log q(z). */
static bk_tensor *mean_field_elbo(rt_vm *vm, const rt_trace *mtr, const rt_trace *gtr) {
    bk_ctx *c = vm->bk;
    bk_tensor *acc = rt_trace_log_prob_sum(vm, mtr, (1u << RT_SITE_OBSERVE) | (1u << RT_SITE_FACTOR));
    for (int i = 0; acc && i < mtr->n; i++) {
        const rt_site *m = &mtr->sites[i];
        if (m->kind != RT_SITE_SAMPLE) continue;
        const rt_site *g = rt_trace_find(gtr, m->name);
        bk_tensor *term = NULL;
        bk_tensor *kl = (g && g->dist && m->dist) ? sl_kl(c, g->dist, m->dist) : NULL;
        if (kl) {
            bk_tensor *ks = bk_sum_all(c, kl);
            bk_tensor *sc = ks ? bk_mul_s(c, ks, -m->scale) : NULL;
            bk_release(kl);
            bk_release(ks);
            term = sc;
        } else {
            bk_clearerr(c);
            bk_tensor *zero = bk_scalar(c, 0.0);
            term = (g && g->log_prob) ? bk_sub(c, m->log_prob, g->log_prob) : bk_add(c, m->log_prob, zero);
            bk_release(zero);
        }
        bk_tensor *a = term ? bk_add(c, acc, term) : NULL;
        bk_release(term);
        bk_release(acc);
        acc = a;
    }
    return acc;
}

/* One particle: returns the surrogate objective (to maximize) and the ELBO value. */
static bk_tensor *particle(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                           rt_loc loc, bool mean_field, bool rb, double baseline, double *elbo_value,
                           bool *scored) {
    rt_trace gtr, mtr;
    rt_trace_init(&gtr);
    rt_trace_init(&mtr);
    bk_tensor *sur = NULL;
    if (inf_guide_run(vm, guide, data, loc, &gtr)) goto done;
    rt_handler hr, ht;
    rt_handler_replay(&hr, &gtr);
    rt_handler_trace(&ht, &mtr);
    if (rt_push_handler(vm, &hr)) goto done;
    if (rt_push_handler(vm, &ht)) {
        rt_pop_handler(vm, &hr);
        goto done;
    }
    rt_value ret = rt_none();
    int rc = rt_call_with_data(vm, model, data, loc, &ret);
    rt_pop_handler(vm, &ht);
    rt_pop_handler(vm, &hr);
    rt_release(ret);
    if (rc) goto done;
    /* every latent site of the model must come from the guide */
    for (int i = 0; i < mtr.n; i++) {
        rt_site *s = &mtr.sites[i];
        if (s->kind == RT_SITE_SAMPLE && !rt_trace_find(&gtr, s->name)) {
            rt_error_loc(vm, s->loc, "latent site \"%s\" of the model is missing from the guide", s->name);
            goto done;
        }
    }
    bk_tensor *elbo;
    if (mean_field) {
        elbo = mean_field_elbo(vm, &mtr, &gtr);
    } else {
        bk_tensor *lp = rt_trace_log_prob_sum(vm, &mtr, MODEL_KINDS);
        bk_tensor *lq = rt_trace_log_prob_sum(vm, &gtr, GUIDE_KINDS);
        elbo = (lp && lq) ? bk_sub(vm->bk, lp, lq) : NULL;
        bk_release(lp);
        bk_release(lq);
    }
    if (!elbo) {
        rt_fail_bk(vm, loc);
        goto done;
    }
    *elbo_value = bk_prog_result(vm->bk, elbo); /* (a recorded step's result: svi_fast.c) */
    bool any;
    /* learning signal: the ELBO minus a baseline (0, or a decaying average
     * of past ELBOs), or the plate-local signal; constant to the tape */
    bk_tensor *sc = score_terms(vm, &mtr, &gtr, *elbo_value, baseline, rb, &any);
    *scored = any;
    if (sc && any) sur = bk_add(vm->bk, elbo, sc);
    else if (sc) sur = bk_retain(elbo);
    bk_release(sc);
    bk_release(elbo);
    if (!sur) rt_fail_bk(vm, loc);
done:
    rt_trace_clear(&gtr);
    rt_trace_clear(&mtr);
    return sur;
}

static int loss_and_grads_run(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                              const inf_svi_opts *o, rt_loc loc, double *baseline, double *loss,
                              inf_svi_fast *fast);

/* The loss of one step and its gradient in every parameter's ->grad
 * (replayed from a recording when `fast` has one: svi_fast.h). */
static int loss_and_grads(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                          const inf_svi_opts *o, rt_loc loc, double *baseline, double *loss,
                          inf_svi_fast *fast) {
    double ev1;
    if (fast && inf_svi_fast_step(fast, vm, &ev1)) { /* a replayed step: the same numbers */
        double elbo_sum = 0;
        elbo_sum += ev1;
        *loss = -elbo_sum / 1;
        if (o->baseline_beta > 0) *baseline = o->baseline_beta * *baseline + (1 - o->baseline_beta) * elbo_sum;
        return 0;
    }
    if (fast) inf_svi_fast_begin(fast, vm);
    int rc = loss_and_grads_run(vm, model, guide, data, o, loc, baseline, loss, fast);
    if (fast && fast->recording) inf_svi_fast_end(fast, vm, NULL, false); /* the step failed */
    if (fast && rc == 0) inf_svi_fast_check(fast, vm, -*loss);
    return rc;
}

static int loss_and_grads_run(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                              const inf_svi_opts *o, rt_loc loc, double *baseline, double *loss,
                              inf_svi_fast *fast) {
    bk_tape_reset(vm->bk);
    bk_tensor *total = bk_scalar(vm->bk, 0.0);
    double elbo_sum = 0;
    if (!total) return rt_fail_bk(vm, loc);
    bk_tensor *each[256];
    int K = o->particles;
    if (o->renyi && K > 256) {
        bk_release(total);
        return rt_error_loc(vm, loc, "RenyiELBO: at most 256 particles");
    }
    bool any_scored = false;
    for (int p = 0; p < K; p++) {
        double ev = 0;
        bool scored = false;
        bk_tensor *s = particle(vm, model, guide, data, loc, o->mean_field, !o->whole_signal, *baseline, &ev, &scored);
        if (!s) {
            for (int k = 0; o->renyi && k < p; k++) bk_release(each[k]);
            bk_release(total);
            return -1;
        }
        if (o->renyi && scored) {
            for (int k = 0; k < p; k++) bk_release(each[k]);
            bk_release(s);
            bk_release(total);
            return rt_error_loc(vm, loc, "RenyiELBO needs a reparameterizable guide (it has a discrete or "
                                "non-reparameterized site); use Trace_ELBO");
        }
        elbo_sum += ev;
        any_scored = any_scored || scored;
        if (o->renyi) {
            each[p] = s;
            continue;
        }
        bk_tensor *t = bk_add(vm->bk, total, s);
        bk_release(s);
        bk_release(total);
        total = t;
        if (!total) return rt_fail_bk(vm, loc);
    }
    bk_tensor *l;
    if (o->renyi) {
        /* 1/(1-alpha) log mean_k exp((1-alpha) w_k); alpha = 0 is the IWAE bound */
        bk_tensor *w = bk_stack(vm->bk, K, each, 0);
        for (int k = 0; k < K; k++) bk_release(each[k]);
        bk_tensor *sw = w ? bk_mul_s(vm->bk, w, 1 - o->alpha) : NULL;
        bk_tensor *lse = sw ? bk_reduce(vm->bk, BK_OP_LOGSUMEXP, sw, 0, false) : NULL;
        bk_tensor *m = lse ? bk_add_s(vm->bk, lse, -log((double)K)) : NULL;
        l = m ? bk_mul_s(vm->bk, m, -1.0 / (1 - o->alpha)) : NULL;
        if (l) *loss = bk_item(l);
        bk_release(w);
        bk_release(sw);
        bk_release(lse);
        bk_release(m);
    } else {
        l = bk_mul_s(vm->bk, total, -1.0 / K);
        *loss = -elbo_sum / K;
    }
    bk_release(total);
    if (fast) inf_svi_fast_end(fast, vm, l, any_scored);
    if (!l) return rt_fail_bk(vm, loc);
    if (o->baseline_beta > 0)
        *baseline = o->baseline_beta * *baseline + (1 - o->baseline_beta) * (elbo_sum / K);
    int rc = 0;
    if (l->requires_grad && bk_backward(vm->bk, l)) rc = rt_fail_bk(vm, loc);
    bk_release(l);
    bk_tape_reset(vm->bk);
    if (rc == 0 && !isfinite(*loss))
        rc = rt_error_loc(vm, loc, "the ELBO is not finite (%g); check the model's supports and "
                          "the guide's initial values", -*loss);
    return rc;
}

static int svi_step(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                    const inf_svi_opts *o, inf_optim *opt, rt_loc loc, double *baseline, double *loss,
                    inf_svi_fast *fast) {
    int rc = loss_and_grads(vm, model, guide, data, o, loc, baseline, loss, fast);
    if (rc == 0) rc = inf_optim_step(opt, vm);
    return rc;
}

int inf_svi_step(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                 inf_optim *opt, rt_loc loc, double *baseline, double *loss) {
    return svi_step(vm, model, guide, data, o, opt, loc, baseline, loss, NULL); /* epochs subsample: interpreted */
}

int inf_svi_eval_loss(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                      rt_loc loc, double *loss) {
    bool g = bk_set_grad_enabled(vm->bk, false);
    double baseline = 0;
    int rc = loss_and_grads(vm, model, guide, data, o, loc, &baseline, loss, NULL);
    bk_set_grad_enabled(vm->bk, g);
    return rc;
}

int inf_elbo_grad(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                  rt_loc loc, double *loss, rt_record **grads) {
    *grads = NULL;
    if (o->particles < 1) return rt_error_loc(vm, loc, "elbo_grad: particles must be >= 1, got %d", o->particles);
    rt_handler hs, hd;
    rt_seed_state ss, sd;
    rt_handler_seed(&hs, &ss, o->seed);
    rt_handler_seed(&hd, &sd, o->seed);
    bk_rng_init(&sd.rng, o->seed, 1); /* as svi: discovery on a stream of its own */
    if (rt_push_handler(vm, &hs)) return rt_fail(vm, 5, loc, "out of memory");
    int rc = rt_push_handler(vm, &hd) ? rt_fail(vm, 5, loc, "out of memory") : 0;
    if (rc == 0) {
        rc = inf_guide_prepare(vm, guide, data, loc);
        rt_pop_handler(vm, &hd);
    }
    bool grad = bk_set_grad_enabled(vm->bk, true);
    double baseline = 0;
    if (rc == 0) rc = loss_and_grads(vm, model, guide, data, o, loc, &baseline, loss, NULL);
    bk_set_grad_enabled(vm->bk, grad);
    rt_pop_handler(vm, &hs);
    rt_record *rec = rc == 0 ? rt_record_new() : NULL;
    if (rc == 0 && !rec) rc = rt_fail(vm, 5, loc, "out of memory");
    for (int i = 0; i < vm->params.n; i++) {
        rt_param *p = &vm->params.items[i];
        if (rc == 0 && p->u->grad) {
            bk_tensor *g = bk_detach(vm->bk, p->u->grad);
            if (!g || rt_record_set(rec, p->name, rt_tensor(g))) rc = rt_fail(vm, 5, loc, "out of memory");
        }
        bk_zero_grad(p->u);
    }
    if (rc) {
        if (rec) rt_release(rt_obj_value(&rec->h));
        return -1;
    }
    *grads = rec;
    return 0;
}

/* ------------------------------------------------ Laplace approximation --- */

/* d ELBO / d loc for the point-mass Laplace guide (deterministic: the guide
 * draws nothing), into out[D]. */
static int elbo_grad(rt_vm *vm, rt_func *model, inf_guide *g, const rt_record *data, rt_loc loc, rt_param *p,
                     double *out) {
    bk_tape_reset(vm->bk);
    double ev;
    bool scored;
    bk_tensor *s = particle(vm, model, g, data, loc, false, true, 0, &ev, &scored);
    if (!s) return -1;
    int rc = (s->requires_grad && bk_backward(vm->bk, s)) ? rt_fail_bk(vm, loc) : 0;
    bk_release(s);
    bk_tape_reset(vm->bk);
    if (rc == 0 && !isfinite(ev))
        rc = rt_error_loc(vm, loc, "AutoLaplaceApproximation: the log density is not finite near the MAP point");
    for (int64_t i = 0; i < p->u->numel; i++) out[i] = p->u->grad ? bk_get(p->u->grad, i) : 0.0;
    for (int i = 0; i < vm->params.n; i++) bk_zero_grad(vm->params.items[i].u);
    return rc;
}

/* After the MAP steps: H = the Hessian of -log p(T(u)) - log|det J| at
 * u = loc, by central differences of the autodiff gradient (step 1e-5
 * max(1, |u_j|), then symmetrized); ".scale_tril" = cholesky(inverse(H)),
 * and the guide turns Gaussian. */
static int laplace_fit(rt_vm *vm, rt_func *model, inf_guide *g, const rt_record *data, rt_loc loc) {
    char name[256];
    snprintf(name, sizeof name, "%s.loc", g->prefix);
    rt_param *p = rt_param_find(vm, name);
    if (!p) { /* no step taken: one guide run creates loc */
        rt_trace tr;
        rt_trace_init(&tr);
        int rc = inf_guide_run(vm, g, data, loc, &tr);
        rt_trace_clear(&tr);
        bk_tape_reset(vm->bk);
        if (rc) return -1;
        p = rt_param_find(vm, name);
        if (!p) return rt_error_loc(vm, loc, "AutoLaplaceApproximation: the model has no latent sites");
    }
    int64_t D = p->u->numel;
    double *u0 = malloc(D * sizeof *u0), *H = malloc(D * D * sizeof *H), *gp = malloc(D * sizeof *gp),
           *gm = malloc(D * sizeof *gm);
    int rc = (u0 && H && gp && gm) ? 0 : rt_fail(vm, 5, loc, "out of memory");
    if (rc == 0) bk_copy_out(p->u, u0);
    for (int64_t j = 0; j < D && rc == 0; j++) {
        double h = 1e-5 * fmax(1.0, fabs(u0[j]));
        bk_set(p->u, j, u0[j] + h); /* on any device */
        rc = elbo_grad(vm, model, g, data, loc, p, gp);
        bk_set(p->u, j, u0[j] - h);
        if (rc == 0) rc = elbo_grad(vm, model, g, data, loc, p, gm);
        bk_set(p->u, j, u0[j]);
        for (int64_t i = 0; i < D && rc == 0; i++) H[i * D + j] = -(gp[i] - gm[i]) / (2 * h);
    }
    bk_tensor *Ht = NULL, *cov = NULL, *L = NULL;
    if (rc == 0) {
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j < i; j++) H[i * D + j] = H[j * D + i] = 0.5 * (H[i * D + j] + H[j * D + i]);
        bool gr = bk_set_grad_enabled(vm->bk, false);
        Ht = bk_from_f64(vm->bk, 2, (int64_t[]){D, D}, H);
        L = Ht ? bk_cholesky(vm->bk, Ht) : NULL; /* H itself must be positive definite */
        cov = L ? bk_inverse(vm->bk, Ht) : NULL;
        bk_release(L);
        L = cov ? bk_cholesky(vm->bk, cov) : NULL;
        bk_set_grad_enabled(vm->bk, gr);
        if (!L) {
            bk_clearerr(vm->bk);
            rc = rt_error_loc(vm, loc, "AutoLaplaceApproximation: the Hessian of the negative log joint is not "
                              "positive definite at the end of the MAP steps (not at a maximum yet?); train "
                              "longer or with another learning rate");
        }
    }
    if (rc == 0) {
        snprintf(name, sizeof name, "%s.scale_tril", g->prefix);
        sl_constraint lc = {.kind = SL_C_LOWER_CHOLESKY};
        rt_param *q = rt_param_find(vm, name);
        bool gr = bk_set_grad_enabled(vm->bk, false);
        if (!q) {
            if (!rt_param_create(vm, name, L, &lc, loc)) rc = -1;
        } else {
            bk_tensor *u = sl_to_unconstrained(vm->bk, &lc, L);
            if (u && u->numel == q->u->numel) rc = bk_copy_values(vm->bk, q->u, u) ? rt_fail_bk(vm, loc) : rc;
            else rc = rt_error_loc(vm, loc, "AutoLaplaceApproximation: parameter \"%s\" has another shape", name);
            bk_release(u);
        }
        bk_set_grad_enabled(vm->bk, gr);
    }
    if (rc == 0) g->gaussian = true;
    bk_release(Ht);
    bk_release(cov);
    bk_release(L);
    free(u0);
    free(H);
    free(gp);
    free(gm);
    return rc;
}

/* ------------------------------------------------------------- summary --- */

static int row_name(char *buf, size_t n, const char *site, const bk_tensor *v, int64_t flat) {
    if (v->ndim == 0) return snprintf(buf, n, "%s", site);
    size_t k = (size_t)snprintf(buf, n, "%s[", site);
    int64_t rem = flat;
    int64_t idx[BK_MAXDIM];
    for (int d = v->ndim - 1; d >= 0; d--) {
        idx[d] = rem % v->shape[d];
        rem /= v->shape[d];
    }
    for (int d = 0; d < v->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double inf_quantile_sorted(const double *x, int n, double q) {
    if (n <= 0) return NAN;
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return x[n - 1];
    double f = pos - i;
    return x[i] * (1 - f) + x[i + 1] * f;
}

/* Draw from the guide and summarize every scalar of every latent site. */
static int summarize(rt_vm *vm, inf_guide *guide, const rt_record *data, int ndraws, rt_loc loc,
                     inf_result *r) {
    bool grad = bk_set_grad_enabled(vm->bk, false);
    int rc = 0;
    int cap = 0;
    for (int d = 0; d < ndraws && rc == 0; d++) {
        rt_trace tr;
        rt_trace_init(&tr);
        rc = inf_guide_run(vm, guide, data, loc, &tr);
        int row = 0;
        for (int i = 0; i < tr.n && rc == 0; i++) {
            rt_site *s = &tr.sites[i];
            if (s->kind != RT_SITE_SAMPLE) continue;
            for (int64_t k = 0; k < s->value->numel; k++, row++) {
                if (d == 0) {
                    if (r->nrows == cap) {
                        cap = cap ? cap * 2 : 16;
                        inf_row *nr = realloc(r->rows, cap * sizeof *nr);
                        double **nd = realloc(r->draws, cap * sizeof *nd);
                        if (nr) r->rows = nr;
                        if (nd) r->draws = nd;
                        if (!nr || !nd) {
                            rc = rt_fail(vm, 5, loc, "out of memory");
                            break;
                        }
                    }
                    char name[256];
                    row_name(name, sizeof name, s->name, s->value, k);
                    memset(&r->rows[r->nrows], 0, sizeof r->rows[0]);
                    r->rows[r->nrows].name = strdup(name);
                    r->draws[r->nrows] = calloc(ndraws, sizeof(double));
                    r->nrows++;
                    if (!r->rows[r->nrows - 1].name || !r->draws[r->nrows - 1]) {
                        rc = rt_fail(vm, 5, loc, "out of memory");
                        break;
                    }
                }
                if (row < r->nrows) r->draws[row][d] = bk_get(s->value, k);
            }
        }
        rt_trace_clear(&tr);
        bk_tape_reset(vm->bk);
    }
    bk_set_grad_enabled(vm->bk, grad);
    if (rc) return rc;
    r->ndraws = ndraws;
    double *tmp = malloc((ndraws ? ndraws : 1) * sizeof *tmp);
    if (!tmp) return rt_fail(vm, 5, loc, "out of memory");
    for (int i = 0; i < r->nrows; i++) {
        inf_row *w = &r->rows[i];
        double m = 0, v = 0;
        for (int d = 0; d < ndraws; d++) m += r->draws[i][d];
        m /= ndraws;
        for (int d = 0; d < ndraws; d++) v += (r->draws[i][d] - m) * (r->draws[i][d] - m);
        w->mean = m;
        w->sd = ndraws > 1 ? sqrt(v / (ndraws - 1)) : 0;
        memcpy(tmp, r->draws[i], ndraws * sizeof *tmp);
        qsort(tmp, ndraws, sizeof *tmp, cmp_double);
        w->q5 = inf_quantile_sorted(tmp, ndraws, 0.05);
        w->q50 = inf_quantile_sorted(tmp, ndraws, 0.5);
        w->q95 = inf_quantile_sorted(tmp, ndraws, 0.95);
        w->ess_bulk = w->ess_tail = w->r_hat = NAN;
    }
    free(tmp);
    return 0;
}

void inf_result_free(inf_result *r) {
    if (!r) return;
    for (int i = 0; i < r->nrows; i++) {
        free(r->rows[i].name);
        free(r->draws[i]);
    }
    free(r->rows);
    free(r->draws);
    if (r->params) rt_release(rt_obj_value(&r->params->h));
    rt_release(r->model);
    rt_release(r->guide);
    free(r->losses);
    free(r->chain_secs);
    inf_epoch_log_free(r->epochs);
    free(r);
}

static rt_record *param_record(rt_vm *vm) {
    rt_record *rec = rt_record_new();
    if (!rec) return NULL;
    bool g = bk_set_grad_enabled(vm->bk, false);
    for (int i = 0; i < vm->params.n; i++) {
        bk_tensor *v = rt_param_value(vm, &vm->params.items[i]);
        if (!v || rt_record_set(rec, vm->params.items[i].name, rt_tensor(v))) {
            rt_release(rt_obj_value(&rec->h));
            rec = NULL;
            break;
        }
    }
    bk_set_grad_enabled(vm->bk, g);
    return rec;
}

static void svi_state_free(void *p) {
    inf_svi_state *st = p;
    if (!st) return;
    inf_optim_free(&st->opt);
    free(st);
}

inf_svi_state *inf_svi_state_get(rt_vm *vm) {
    return vm->svi_state_free == svi_state_free ? vm->svi_state : NULL;
}

void inf_svi_state_set(rt_vm *vm, inf_svi_state *st) {
    if (vm->svi_state_free) vm->svi_state_free(vm->svi_state);
    vm->svi_state = st;
    vm->svi_state_free = st ? svi_state_free : NULL;
}

int inf_svi_run(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                const inf_svi_opts *o, rt_loc loc, inf_result **out) {
    *out = NULL;
    if (o->steps < 0) return rt_error_loc(vm, loc, "svi: steps must be >= 0, got %ld", o->steps);
    if (o->particles < 1) return rt_error_loc(vm, loc, "svi: particles must be >= 1, got %d", o->particles);
    const inf_svi_state *prev = o->resume ? inf_svi_state_get(vm) : NULL;
    if (o->resume && !prev)
        return rt_error_loc(vm, loc, "svi: resume needs a saved SVI state: run svi(...) first or load_params(path) "
                            "a file written by save_params after svi");
    if (prev && prev->opt.spec.kind != o->optim.kind)
        return rt_error_loc(vm, loc, "svi: cannot resume: the saved optimizer state is %s's, this run uses %s",
                            inf_optim_kind_name(prev->opt.spec.kind), inf_optim_kind_name(o->optim.kind));
    inf_svi_state *st = calloc(1, sizeof *st);
    inf_result *r = st ? calloc(1, sizeof *r) : NULL;
    if (r) r->losses = malloc((o->steps ? o->steps : 1) * sizeof *r->losses);
    if (!r || !r->losses) {
        free(st);
        if (r) free(r);
        return rt_fail(vm, 5, loc, "out of memory");
    }
    if (prev) {
        if (inf_optim_copy(&st->opt, &prev->opt, &o->optim)) {
            free(st);
            inf_result_free(r);
            return rt_fail(vm, 5, loc, "out of memory");
        }
        st->rng = prev->rng;
        st->baseline = prev->baseline;
        st->steps = prev->steps;
    } else {
        inf_optim_init(&st->opt, &o->optim);
    }
    inf_optim *opt = &st->opt;
    rt_handler hs;
    rt_seed_state ss;
    rt_handler_seed(&hs, &ss, o->seed);
    if (prev) ss.rng = prev->rng; /* the stream continues where it stopped */
    if (rt_push_handler(vm, &hs)) {
        svi_state_free(st);
        inf_result_free(r);
        return rt_fail(vm, 5, loc, "out of memory");
    }
    /* an autoguide's prototype run and init draws use a stream of their own
     * (seed, stream 1), so that the main stream depends only on the steps
     * taken: a resumed run continues exactly */
    rt_handler hd;
    rt_seed_state sd;
    rt_handler_seed(&hd, &sd, o->seed);
    bk_rng_init(&sd.rng, o->seed, 1);
    int rc = rt_push_handler(vm, &hd) ? rt_fail(vm, 5, loc, "out of memory") : 0;
    if (rc == 0) {
        rc = inf_guide_prepare(vm, guide, data, loc);
        rt_pop_handler(vm, &hd);
    }
    bool grad = bk_set_grad_enabled(vm->bk, true);
    double baseline = st->baseline;
    guide->gaussian = false; /* AutoLaplaceApproximation trains its point mass */
    inf_svi_fast fast;
    inf_svi_fast_init(&fast, o);
    for (long s = 0; !o->ep && s < o->steps && rc == 0; s++) {
        if (vm->interrupted) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
            break;
        }
        rc = svi_step(vm, model, guide, data, o, opt, loc, &baseline, &r->losses[s], &fast);
        if (rc == 0) r->nlosses = s + 1;
        long every = o->steps >= 100 ? o->steps / 100 : 1;
        if (rc == 0 && vm->progress && ((s + 1) % every == 0 || s + 1 == o->steps))
            vm->progress(vm->progress_ud, "svi", s + 1, o->steps, -r->losses[s]);
    }
    if (rc == 0 && o->ep) rc = inf_svi_epochs(vm, model, guide, data, o, st, &baseline, loc, r);
    r->fast_replays = fast.replays;
    inf_svi_fast_free(&fast);
    if (rc == 0 && guide->kind == INF_GUIDE_LAPLACE) rc = laplace_fit(vm, model, guide, data, loc);
    bk_set_grad_enabled(vm->bk, grad);
    if (rc == 0) {
        /* the state save_params writes and resume continues from */
        st->rng = vm->rng;
        st->baseline = baseline;
        st->steps += r->nlosses;
        inf_svi_state_set(vm, st);
        st = NULL;
    }
    if (rc == 0 && o->summary_samples > 0) rc = summarize(vm, guide, data, o->summary_samples, loc, r);
    rt_pop_handler(vm, &hs);
    svi_state_free(st);
    if (rc == 0) {
        long k = r->nlosses / 10 > 0 ? r->nlosses / 10 : r->nlosses;
        double m = 0;
        for (long i = r->nlosses - k; i < r->nlosses; i++) m += r->losses[i];
        r->elbo = k ? -m / k : NAN;
        r->params = param_record(vm);
        if (!r->params) rc = rt_fail(vm, 5, loc, "out of memory");
    }
    if (rc) {
        inf_result_free(r);
        return -1;
    }
    *out = r;
    return 0;
}
