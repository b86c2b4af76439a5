/* infer_builtins.c - the inference built-ins a script sees: svi(...),
 * summary(...), the optimizers (Adam, ClippedAdam, SGD, RMSprop, Adagrad),
 * Trace_ELBO, and the autoguides (AutoNormal, AutoDiagonalNormal,
 * AutoMultivariateNormal, AutoDelta, AutoLowRankMultivariateNormal,
 * AutoLaplaceApproximation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"

/* ----------------------------------------------------------- optimizers --- */

static int make_optim(rt_vm *vm, const rt_call *c, rt_value *out, int kind) {
    static const char *const names[] = {"lr", "betas", "eps", "momentum", "nesterov", "alpha",
                                        "weight_decay", "clip_norm", "lrd", "max_grad_norm",
                                        "lr_decay", "lr_step", "lr_gamma", NULL};
    if (rt_check_args(vm, c, 1, names)) return -1;
    inf_optim_spec *s = malloc(sizeof *s);
    if (!s) return rt_error(vm, c, "out of memory");
    *s = inf_adam_defaults();
    s->kind = kind;
    double nest = 0, lr_step = 0;
    double dflt_lr = kind == INF_OPT_ADAGRAD ? 1e-2 : 1e-3;
    if (kind == INF_OPT_RMSPROP) s->eps = 1e-8;
    if (kind == INF_OPT_ADAGRAD) s->eps = 1e-10;
    if (rt_arg_number(vm, c, 0, "lr", dflt_lr, kind == INF_OPT_SGD, &s->lr) ||
        rt_arg_number(vm, c, -1, "eps", s->eps, false, &s->eps) ||
        rt_arg_number(vm, c, -1, "momentum", 0, false, &s->momentum) ||
        rt_arg_number(vm, c, -1, "nesterov", 0, false, &nest) ||
        rt_arg_number(vm, c, -1, "alpha", 0.99, false, &s->alpha) ||
        rt_arg_number(vm, c, -1, "weight_decay", 0, false, &s->weight_decay) ||
        rt_arg_number(vm, c, -1, "clip_norm", 10.0, false, &s->clip_norm) ||
        rt_arg_number(vm, c, -1, "lrd", 1.0, false, &s->lrd) ||
        rt_arg_number(vm, c, -1, "max_grad_norm", 0, false, &s->max_grad_norm) ||
        rt_arg_number(vm, c, -1, "lr_decay", 1.0, false, &s->lr_decay) ||
        rt_arg_number(vm, c, -1, "lr_gamma", 1.0, false, &s->lr_gamma) ||
        rt_arg_number(vm, c, -1, "lr_step", 0, false, &lr_step)) {
        free(s);
        return -1;
    }
    const rt_value *betas = rt_arg(c, -1, "betas");
    if (betas) {
        if (betas->tag != RT_TENSOR || betas->u.t->numel != 2) {
            free(s);
            return rt_error_kw(vm, c, "betas", "%s: betas must be a pair like [0.9, 0.999]", c->name);
        }
        s->beta1 = bk_get(betas->u.t, 0);
        s->beta2 = bk_get(betas->u.t, 1);
    }
    s->nesterov = nest != 0;
    if (lr_step < 0 || lr_step != floor(lr_step) || !(s->lr_decay > 0 && s->lr_decay <= 1) ||
        !(s->lr_gamma > 0 && s->lr_gamma <= 1) || s->max_grad_norm < 0) {
        free(s);
        return rt_error(vm, c, "%s: lr_step must be a non-negative integer, lr_decay and lr_gamma in (0, 1], "
                        "max_grad_norm >= 0", c->name);
    }
    s->lr_step = (long)lr_step;
    if (!(s->lr > 0)) {
        double lr = s->lr;
        free(s);
        return rt_error_kw(vm, c, "lr", "%s: lr must be > 0, got %g", c->name, lr);
    }
    if (s->beta1 < 0 || s->beta1 >= 1 || s->beta2 < 0 || s->beta2 >= 1) {
        free(s);
        return rt_error_kw(vm, c, "betas", "%s: betas must be in [0, 1)", c->name);
    }
    rt_opaque *o = rt_opaque_new("optimizer", s, free);
    if (!o) {
        free(s);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

static int b_adam(rt_vm *vm, const rt_call *c, rt_value *out) { return make_optim(vm, c, out, INF_OPT_ADAM); }
static int b_clipped_adam(rt_vm *vm, const rt_call *c, rt_value *out) { return make_optim(vm, c, out, INF_OPT_CLIPPED_ADAM); }
static int b_sgd(rt_vm *vm, const rt_call *c, rt_value *out) { return make_optim(vm, c, out, INF_OPT_SGD); }
static int b_rmsprop(rt_vm *vm, const rt_call *c, rt_value *out) { return make_optim(vm, c, out, INF_OPT_RMSPROP); }
static int b_adagrad(rt_vm *vm, const rt_call *c, rt_value *out) { return make_optim(vm, c, out, INF_OPT_ADAGRAD); }

/* ----------------------------------------------------------------- ELBO --- */

typedef struct elbo_spec {
    int particles;
    bool mean_field;
    bool renyi;
    double alpha;
    double baseline;
    bool whole_signal;
} elbo_spec;

static int make_elbo(rt_vm *vm, const rt_call *c, rt_value *out, bool mean_field) {
    static const char *const names[] = {"particles", "num_particles", "baseline", "rao_blackwellize", NULL};
    double p, p2, beta, rb;
    if (rt_check_args(vm, c, 0, names) || rt_arg_number(vm, c, -1, "particles", 1, false, &p) ||
        rt_arg_number(vm, c, -1, "num_particles", p, false, &p2) ||
        rt_arg_number(vm, c, -1, "baseline", 0, false, &beta) ||
        rt_arg_number(vm, c, -1, "rao_blackwellize", 1, false, &rb))
        return -1;
    if (!(beta >= 0 && beta < 1))
        return rt_error_kw(vm, c, "baseline", "%s: baseline must be a decay factor in [0, 1), like 0.9", c->name);
    if (p2 < 1 || p2 != floor(p2) || p2 > 1e6)
        return rt_error(vm, c, "Trace_ELBO: particles must be a positive integer, got %g", p2);
    elbo_spec *e = calloc(1, sizeof *e);
    if (!e) return rt_error(vm, c, "out of memory");
    e->particles = (int)p2;
    e->mean_field = mean_field;
    e->baseline = beta;
    e->whole_signal = rb == 0;
    rt_opaque *o = rt_opaque_new("ELBO", e, free);
    if (!o) {
        free(e);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

static int b_trace_elbo(rt_vm *vm, const rt_call *c, rt_value *out) { return make_elbo(vm, c, out, false); }
static int b_mean_field_elbo(rt_vm *vm, const rt_call *c, rt_value *out) { return make_elbo(vm, c, out, true); }

/* RenyiELBO(alpha=0, particles=K): alpha = 0 is the importance-weighted bound */
static int b_renyi_elbo(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"alpha", "particles", "num_particles", NULL};
    double a, p, p2;
    if (rt_check_args(vm, c, 1, names) || rt_arg_number(vm, c, 0, "alpha", 0, false, &a) ||
        rt_arg_number(vm, c, -1, "particles", 2, false, &p) || rt_arg_number(vm, c, -1, "num_particles", p, false, &p2))
        return -1;
    if (a == 1 || !isfinite(a)) return rt_error_arg(vm, c, 0, "RenyiELBO: alpha must be a number other than 1 (alpha = 1 is Trace_ELBO)");
    if (p2 < 1 || p2 != floor(p2) || p2 > 256) return rt_error(vm, c, "RenyiELBO: particles must be an integer in 1..256");
    elbo_spec *e = calloc(1, sizeof *e);
    if (!e) return rt_error(vm, c, "out of memory");
    e->particles = (int)p2;
    e->renyi = true;
    e->alpha = a;
    rt_opaque *o = rt_opaque_new("ELBO", e, free);
    if (!o) {
        free(e);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

/* ------------------------------------------------------------ autoguides --- */

static void guide_data_free(void *p) { inf_guide_free(p); }

inf_guide *inf_guide_new(int kind, rt_func *model, double init_scale) {
    inf_guide *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->kind = kind;
    model->h.refcount++;
    g->fn = model;
    g->init_scale = init_scale;
    g->prefix = kind == INF_GUIDE_NORMAL ? "AutoNormal"
              : kind == INF_GUIDE_DIAG ? "AutoDiagonalNormal"
              : kind == INF_GUIDE_MVN ? "AutoMultivariateNormal"
              : kind == INF_GUIDE_DELTA ? "AutoDelta"
              : kind == INF_GUIDE_LOWRANK ? "AutoLowRankMultivariateNormal"
              : kind == INF_GUIDE_LAPLACE ? "AutoLaplaceApproximation" : "guide";
    return g;
}

/* init_to_feasible() / init_to_median() / init_to_sample() /
 * init_to_value(values={...}): an init strategy for autoguides. */
typedef struct init_spec {
    int kind;
    rt_value values;
} init_spec;

static void init_spec_free(void *p) {
    init_spec *s = p;
    rt_release(s->values);
    free(s);
}

static int make_init(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"values", NULL};
    int kind = strcmp(c->name, "init_to_median") == 0 ? INF_INIT_MEDIAN
             : strcmp(c->name, "init_to_sample") == 0 ? INF_INIT_SAMPLE
             : strcmp(c->name, "init_to_value") == 0 ? INF_INIT_VALUE : INF_INIT_FEASIBLE;
    if (rt_check_args(vm, c, kind == INF_INIT_VALUE ? 1 : 0, names)) return -1;
    const rt_value *v = rt_arg(c, 0, "values");
    if (kind == INF_INIT_VALUE && (!v || v->tag != RT_RECORD))
        return rt_error(vm, c, "init_to_value needs values={site: value, ...}");
    init_spec *s = calloc(1, sizeof *s);
    if (!s) return rt_error(vm, c, "out of memory");
    s->kind = kind;
    s->values = v ? rt_retain(*v) : rt_none();
    rt_opaque *o = rt_opaque_new("init", s, init_spec_free);
    if (!o) {
        init_spec_free(s);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

static int make_autoguide(rt_vm *vm, const rt_call *c, rt_value *out, int kind) {
    static const char *const names[] = {"model", "init_scale", "init_loc_fn", "rank", NULL};
    static const char *const names_norank[] = {"model", "init_scale", "init_loc_fn", NULL};
    if (rt_check_args(vm, c, 1, kind == INF_GUIDE_LOWRANK ? names : names_norank)) return -1;
    double rank = 0;
    if (kind == INF_GUIDE_LOWRANK && rt_arg_number(vm, c, -1, "rank", 0, false, &rank)) return -1;
    if (!(rank >= 0 && rank == floor(rank) && rank < 1e6))
        return rt_error_kw(vm, c, "rank", "%s: rank must be a positive integer, got %g", c->name, rank);
    const rt_value *m = rt_arg(c, 0, "model");
    if (!m || m->tag != RT_FUNC)
        return rt_error_arg(vm, c, 0, "%s: the first argument must be a model", c->name);
    double scale;
    if (rt_arg_number(vm, c, -1, "init_scale", 0.1, false, &scale)) return -1;
    if (!(scale > 0)) return rt_error_kw(vm, c, "init_scale", "%s: init_scale must be > 0, got %g", c->name, scale);
    int init = INF_INIT_FEASIBLE;
    rt_record *values = NULL;
    const rt_value *il = rt_arg(c, -1, "init_loc_fn");
    if (il) {
        rt_value spec = rt_none();
        if (il->tag == RT_BUILTIN && strncmp(((rt_builtin *)il->u.o)->name, "init_to_", 8) == 0) {
            /* the strategy itself, as in Pyro: init_loc_fn=init_to_median */
            rt_call none = {0};
            none.name = ((rt_builtin *)il->u.o)->name;
            none.loc = c->loc;
            if (make_init(vm, &none, &spec)) return -1;
        } else if (il->tag == RT_OPAQUE && strcmp(((rt_opaque *)il->u.o)->type, "init") == 0) {
            spec = rt_retain(*il);
        } else {
            return rt_error_kw(vm, c, "init_loc_fn", "%s: init_loc_fn must be init_to_feasible, init_to_median, "
                               "init_to_sample or init_to_value(values={...})", c->name);
        }
        init_spec *is = ((rt_opaque *)spec.u.o)->data;
        init = is->kind;
        if (is->values.tag == RT_RECORD) {
            values = (rt_record *)is->values.u.o;
            values->h.refcount++;
        }
        rt_release(spec);
    }
    inf_guide *g = inf_guide_new(kind, (rt_func *)m->u.o, scale);
    if (!g) {
        if (values) rt_release(rt_obj_value(&values->h));
        return rt_error(vm, c, "out of memory");
    }
    g->init = init;
    g->init_values = values;
    g->rank = (int)rank;
    rt_opaque *o = rt_opaque_new("autoguide", g, guide_data_free);
    if (!o) {
        inf_guide_free(g);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

static int b_auto_normal(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_NORMAL); }
static int b_auto_diag(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_DIAG); }
static int b_auto_mvn(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_MVN); }
static int b_auto_delta(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_DELTA); }
static int b_auto_lowrank(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_LOWRANK); }
static int b_auto_laplace(rt_vm *vm, const rt_call *c, rt_value *out) { return make_autoguide(vm, c, out, INF_GUIDE_LAPLACE); }

/* ------------------------------------------------------------------ fit --- */

static void result_data_free(void *p) { inf_result_free(p); }

static char *fit_repr(bk_ctx *ctx, void *p) {
    char *t = inf_result_table(p);
    if (t) {
        size_t n = strlen(t);
        while (n && t[n - 1] == '\n') t[--n] = 0;
    }
    return t;
}

static int fit_getattr(rt_vm *vm, void *p, const char *name, rt_loc loc, rt_value *out) {
    inf_result *r = p;
    if (strcmp(name, "params") == 0) {
        r->params->h.refcount++;
        *out = rt_obj_value(&r->params->h);
        return 0;
    }
    if (strcmp(name, "losses") == 0) {
        bk_tensor *t = bk_from_f64(vm->bk, 1, (int64_t[]){r->nlosses}, r->losses);
        if (!t) return rt_fail_bk(vm, loc);
        *out = rt_tensor(t);
        return 0;
    }
    if (strcmp(name, "elbo") == 0) {
        bk_tensor *t = bk_scalar(vm->bk, r->elbo);
        if (!t) return rt_fail_bk(vm, loc);
        *out = rt_tensor(t);
        return 0;
    }
    const inf_epoch_log *ep = r->epochs;
    if (strcmp(name, "epoch_losses") == 0 || strcmp(name, "val_losses") == 0) {
        bool val = name[0] == 'v';
        long n = ep && (!val || ep->has_val) ? ep->nepochs : 0;
        bk_tensor *t = bk_from_f64(vm->bk, 1, (int64_t[]){n}, n ? (val ? ep->val : ep->train) : NULL);
        if (!t) return rt_fail_bk(vm, loc);
        *out = rt_tensor(t);
        return 0;
    }
    if (strcmp(name, "best_epoch") == 0 || strcmp(name, "stopped_early") == 0) {
        if (!ep) return rt_error_loc(vm, loc, "fit.%s: this fit ran by steps; svi(..., epochs=E) reports epochs", name);
        bk_tensor *t = bk_scalar(vm->bk, name[0] == 'b' ? (double)ep->best_epoch : (double)ep->stopped_early);
        if (!t) return rt_fail_bk(vm, loc);
        *out = rt_tensor(t);
        return 0;
    }
    return rt_error_loc(vm, loc, "an SVI fit has no field \"%s\" (it has params, losses, elbo, epoch_losses, "
                        "val_losses, best_epoch, stopped_early)", name);
}

/* write_json(path, fit): the summary JSON of `ppl svi --summary` (DESIGN 1.8). */
static char *fit_json(bk_ctx *ctx, void *p) { return inf_result_json(ctx, p); }

rt_value inf_fit_value(inf_result *r) {
    rt_opaque *o = rt_opaque_new("svi_fit", r, result_data_free);
    if (!o) {
        inf_result_free(r);
        return rt_none();
    }
    o->repr = fit_repr;
    o->getattr = fit_getattr;
    o->to_json = fit_json;
    return rt_obj_value(&o->h);
}

/* elbo_grad(model, guide, data, loss=, seed=): one step's loss and the
 * surrogate loss's gradient in every unconstrained parameter, no update:
 * {loss: x, grads: {name: tensor}}. */
static int elbo_grad_finish(rt_vm *vm, const rt_call *c, const rt_value *m, const rt_value *g, const rt_value *d,
                            const inf_svi_opts *o, rt_value *out) {
    inf_guide user = {0}, *guide = &user;
    if (g->tag == RT_FUNC) {
        user.kind = INF_GUIDE_USER;
        user.fn = (rt_func *)g->u.o;
    } else {
        guide = ((rt_opaque *)g->u.o)->data;
    }
    if (o->renyi) return rt_error_kw(vm, c, "loss", "elbo_grad: RenyiELBO is not supported; use Trace_ELBO");
    double loss = 0;
    rt_record *grads;
    const rt_record *data = d && d->tag == RT_RECORD ? (const rt_record *)d->u.o : NULL;
    if (inf_elbo_grad(vm, (rt_func *)m->u.o, guide, data, o, c->loc, &loss, &grads)) return -1;
    rt_record *r = rt_record_new();
    bk_tensor *l = bk_scalar(vm->bk, loss);
    if (!r || !l || rt_record_set(r, "loss", rt_tensor(l)) || rt_record_set(r, "grads", rt_obj_value(&grads->h))) {
        if (r) rt_release(rt_obj_value(&r->h));
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

static int svi_or_grad(rt_vm *vm, const rt_call *c, rt_value *out, bool eg) {
    static const char *const names[] = {"model", "guide", "data", "steps", "optim", "loss", "seed",
                                        "summary_samples", "resume", "epochs", "batch_size", "shuffle",
                                        "validation", "val_batch_size", "val_particles", "patience",
                                        "min_delta", "restore_best", "plate", "fast", NULL};
    static const char *const gnames[] = {"model", "guide", "data", "loss", "seed", NULL};
    if (rt_check_args(vm, c, 3, eg ? gnames : names)) return -1;
    const rt_value *m = rt_arg(c, 0, "model");
    const rt_value *g = rt_arg(c, 1, "guide");
    const rt_value *d = rt_arg(c, 2, "data");
    if (!m || m->tag != RT_FUNC) return rt_error_arg(vm, c, 0, "svi: the first argument must be a model");
    if (!g || (g->tag != RT_FUNC && !(g->tag == RT_OPAQUE && strcmp(((rt_opaque *)g->u.o)->type, "autoguide") == 0)))
        return rt_error_arg(vm, c, 1, "svi: the second argument must be a guide function or an autoguide such as AutoNormal(model)");
    if (d && d->tag != RT_RECORD && d->tag != RT_NONE)
        return rt_error_arg(vm, c, 2, "svi: data must be a record like {y: [1, 2]}, got a %s", rt_type_name(*d));
    inf_svi_opts o = {0};
    double steps, seed, ns;
    if (rt_arg_number(vm, c, -1, "steps", 1000, false, &steps) ||
        rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed) ||
        rt_arg_number(vm, c, -1, "summary_samples", 1000, false, &ns))
        return -1;
    if (steps < 0 || steps != floor(steps)) return rt_error_kw(vm, c, "steps", "svi: steps must be a non-negative integer");
    o.steps = (long)steps;
    o.seed = (uint64_t)seed;
    o.summary_samples = (int)ns;
    o.particles = 1;
    o.optim = inf_adam_defaults();
    const rt_value *opt = rt_arg(c, -1, "optim");
    if (opt) {
        if (opt->tag != RT_OPAQUE || strcmp(((rt_opaque *)opt->u.o)->type, "optimizer") != 0)
            return rt_error_kw(vm, c, "optim", "svi: optim must be an optimizer such as Adam(lr=0.01)");
        o.optim = *(inf_optim_spec *)((rt_opaque *)opt->u.o)->data;
    }
    const rt_value *loss = rt_arg(c, -1, "loss");
    if (loss) {
        if (loss->tag != RT_OPAQUE || strcmp(((rt_opaque *)loss->u.o)->type, "ELBO") != 0)
            return rt_error_kw(vm, c, "loss", "svi: loss must be Trace_ELBO(...) or TraceMeanField_ELBO(...)");
        o.particles = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->particles;
        o.mean_field = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->mean_field;
        o.renyi = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->renyi;
        o.alpha = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->alpha;
        o.baseline_beta = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->baseline;
        o.whole_signal = ((elbo_spec *)((rt_opaque *)loss->u.o)->data)->whole_signal;
    }
    if (eg) return elbo_grad_finish(vm, c, m, g, d, &o, out);
    inf_epoch_opts eo;
    bool epochs;
    if (inf_epoch_opts_parse(vm, c, &eo, &epochs)) return -1;
    if (epochs) {
        o.ep = &eo;
        o.steps = 0;
    }
    double fast;
    if (rt_arg_number(vm, c, -1, "fast", 1, false, &fast)) return -1;
    o.no_fast = fast == 0;
    /* resume=true continues the last run (or the state load_params read);
     * resume="P.json" loads that file first */
    const rt_value *res = rt_arg(c, -1, "resume");
    if (res && res->tag == RT_STR) {
        if (inf_params_load(vm, ((rt_str *)res->u.o)->s, c->loc)) return -1;
        o.resume = true;
    } else if (res) {
        double rv;
        if (rt_arg_number(vm, c, -1, "resume", 0, false, &rv)) return -1;
        o.resume = rv != 0;
    }
    inf_guide *guide;
    inf_guide user = {0};
    if (g->tag == RT_FUNC) {
        user.kind = INF_GUIDE_USER;
        user.fn = (rt_func *)g->u.o;
        guide = &user;
    } else {
        guide = ((rt_opaque *)g->u.o)->data;
    }
    inf_result *r;
    const rt_record *data = d && d->tag == RT_RECORD ? (const rt_record *)d->u.o : NULL;
    if (inf_svi_run(vm, (rt_func *)m->u.o, guide, data, &o, c->loc, &r)) return -1;
    r->model = rt_retain(*m);
    r->guide = rt_retain(*g);
    *out = inf_fit_value(r);
    if (out->tag == RT_NONE) return rt_error(vm, c, "out of memory");
    return 0;
}

static int b_svi(rt_vm *vm, const rt_call *c, rt_value *out) { return svi_or_grad(vm, c, out, false); }
static int b_elbo_grad(rt_vm *vm, const rt_call *c, rt_value *out) { return svi_or_grad(vm, c, out, true); }

static int b_summary(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 1, NULL)) return -1;
    const rt_value *f = rt_arg(c, 0, NULL);
    const inf_result *post = f ? inf_posterior_result(*f) : NULL;
    if (!post && (!f || f->tag != RT_OPAQUE || strcmp(((rt_opaque *)f->u.o)->type, "svi_fit") != 0))
        return rt_error_arg(vm, c, 0, "summary: expected the result of svi(...) or mcmc(...)");
    char *t = inf_result_table(post ? post : ((rt_opaque *)f->u.o)->data);
    if (!t) return rt_error(vm, c, "out of memory");
    rt_vm_write(vm, t, strlen(t));
    free(t);
    *out = rt_none();
    return 0;
}

static int b_svi_on(rt_vm *vm, const rt_call *c, rt_value *out) { return inf_with_device(vm, c, out, b_svi, 2); }

static const rt_builtin_def infer_builtins[] = {
    {"svi", b_svi_on},
    {"elbo_grad", b_elbo_grad},
    {"summary", b_summary},
    {"Adam", b_adam},
    {"ClippedAdam", b_clipped_adam},
    {"SGD", b_sgd},
    {"RMSprop", b_rmsprop},
    {"Adagrad", b_adagrad},
    {"Trace_ELBO", b_trace_elbo},
    {"TraceMeanField_ELBO", b_mean_field_elbo},
    {"RenyiELBO", b_renyi_elbo},
    {"AutoNormal", b_auto_normal},
    {"AutoDiagonalNormal", b_auto_diag},
    {"AutoMultivariateNormal", b_auto_mvn},
    {"AutoDelta", b_auto_delta},
    {"AutoLowRankMultivariateNormal", b_auto_lowrank},
    {"AutoLaplaceApproximation", b_auto_laplace},
    {"init_to_feasible", make_init},
    {"init_to_median", make_init},
    {"init_to_sample", make_init},
    {"init_to_value", make_init},
    {NULL, NULL},
};

extern const rt_builtin_def inf_predictive_builtins[];
extern const rt_builtin_def inf_params_builtins[];
extern const rt_builtin_def inf_mcmc_builtins[];

int inf_register_builtins(rt_vm *vm) {
    const rt_builtin_def *const tables[] = {infer_builtins, inf_predictive_builtins, inf_params_builtins, inf_mcmc_builtins, NULL};
    for (int i = 0; tables[i]; i++)
        if (rt_register_builtins(vm, tables[i])) return -1;
    { extern const rt_builtin_def inf_hmm_builtins[]; if (rt_register_builtins(vm, inf_hmm_builtins)) return -1; }
    { extern const rt_builtin_def inf_eval_builtins[]; if (rt_register_builtins(vm, inf_eval_builtins)) return -1; }
    return 0;
}
