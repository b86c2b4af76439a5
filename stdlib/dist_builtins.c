/* dist_builtins.c - the language face of distributions: one constructor
 * built-in per family, `kl_divergence`, and field / method access on a
 * distribution value (`d.mean`, `d.log_prob(x)`, `d.sample([10])`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"

static int ret_tensor(rt_vm *vm, const rt_call *c, bk_tensor *t, rt_value *out) {
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

static int ret_dist(rt_vm *vm, const rt_call *c, sl_dist *d, rt_value *out) {
    if (!d) return rt_error_bk(vm, c);
    *out = rt_obj_value(&d->h);
    return 0;
}

/* ---------------------------------------------------- constructors --- */

/* The family is found by the built-in's own name (an alias keeps it). */
static int b_construct(rt_vm *vm, const rt_call *c, rt_value *out) {
    const sl_family *fam = sl_find_family(c->name);
    if (!fam || !fam->build) return rt_error(vm, c, "%s is not a distribution", c->name);
    sl_dist *d = sl_dist_new(fam);
    if (!d) return rt_error(vm, c, "out of memory");
    sl_args a = {vm, c};
    if (fam->build(&a, d)) {
        sl_dist_release(d);
        return -1;
    }
    *out = rt_obj_value(&d->h);
    return 0;
}

static int dist_arg(rt_vm *vm, const rt_call *c, int pos, const char *name, sl_dist **out) {
    const rt_value *v = rt_arg(c, pos, name);
    if (!v) return rt_error(vm, c, "%s: missing argument \"%s\"", c->name, name);
    if (v->tag != RT_DIST)
        return rt_error_arg(vm, c, pos, "%s: %s must be a distribution, got a %s", c->name, name,
                            rt_type_name(*v));
    *out = (sl_dist *)v->u.o;
    return 0;
}

static int b_kl(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"p", "q", NULL};
    sl_dist *p = NULL, *q = NULL;
    if (rt_check_args(vm, c, 2, names) || dist_arg(vm, c, 0, "p", &p) ||
        dist_arg(vm, c, 1, "q", &q))
        return -1;
    return ret_tensor(vm, c, sl_kl(rt_vm_bk(vm), p, q), out);
}

int sl_register_dist_builtins(rt_vm *vm) {
    int n = 0;
    while (sl_families[n]) n++;
    rt_builtin_def *defs = calloc((size_t)n + 2, sizeof *defs);
    if (!defs) return -1;
    for (int i = 0; i < n; i++) {
        defs[i].name = sl_families[i]->name;   /* a literal: outlives the VM */
        defs[i].fn = b_construct;
    }
    defs[n].name = "kl_divergence";
    defs[n].fn = b_kl;
    int rc = rt_register_builtins(vm, defs);
    free(defs);
    return rc ? rc : sl_register_transform_builtins(vm);
}

/* ---------------------------------------------------------- methods --- */

static sl_dist *self_dist(const rt_call *c) { return (sl_dist *)c->self.u.o; }

/* A sample shape: absent -> [], a number n -> [n], a list of sizes. */
static int shape_arg(rt_vm *vm, const rt_call *c, int pos, const char *name, int *nd,
                     int64_t *shape) {
    const rt_value *v = rt_arg(c, pos, name);
    *nd = 0;
    if (!v || v->tag == RT_NONE) return 0;
    if (v->tag != RT_TENSOR || v->u.t->ndim > 1)
        return rt_error_arg(vm, c, pos, "%s: %s must be a number or a list of sizes", c->name,
                            name);
    bk_tensor *t = v->u.t;
    if (t->numel > BK_MAXDIM)
        return rt_error_arg(vm, c, pos, "%s: at most %d dimensions", c->name, BK_MAXDIM);
    *nd = (int)t->numel;
    for (int i = 0; i < *nd; i++) {
        double x = bk_get(t, i);
        if (!(x >= 0) || x != floor(x) || x > 1e12)
            return rt_error_arg(vm, c, pos, "%s: sizes must be non-negative integers, got %g",
                                c->name, x);
        shape[i] = (int64_t)x;
    }
    return 0;
}

static int m_log_prob(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"value", NULL};
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "value", true, &x)) return -1;
    return ret_tensor(vm, c, sl_log_prob(rt_vm_bk(vm), self_dist(c), x), out);
}

static int draw(rt_vm *vm, const rt_call *c, rt_value *out, bool reparam) {
    static const char *const names[] = {"sample_shape", NULL};
    sl_dist *d = self_dist(c);
    int nd;
    int64_t shape[BK_MAXDIM];
    if (rt_check_args(vm, c, 1, names) || shape_arg(vm, c, 0, "sample_shape", &nd, shape))
        return -1;
    if (reparam && !sl_dist_reparam(d))
        return rt_error(vm, c, "%s has no reparameterized sampler; use sample()", d->fam->name);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_tensor *t = bk_place_nd(ctx, sl_sample(ctx, rt_vm_rng(vm), d, nd, shape));
    if (t && !reparam && t->requires_grad) {
        /* sample() is a plain draw: cut it off the tape */
        bk_tensor *u = bk_detach(ctx, t);
        bk_release(t);
        t = u;
    }
    return ret_tensor(vm, c, t, out);
}
static int m_sample(rt_vm *vm, const rt_call *c, rt_value *out) { return draw(vm, c, out, false); }
static int m_rsample(rt_vm *vm, const rt_call *c, rt_value *out) { return draw(vm, c, out, true); }

static int m_entropy(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    return ret_tensor(vm, c, sl_entropy(rt_vm_bk(vm), self_dist(c)), out);
}

static int cdf_like(rt_vm *vm, const rt_call *c, rt_value *out, bool inverse) {
    static const char *const names[] = {"value", NULL};
    sl_dist *d = self_dist(c);
    bk_tensor *x;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "value", true, &x)) return -1;
    bk_tensor *(*fn)(bk_ctx *, const sl_dist *, bk_tensor *) = inverse ? d->fam->icdf : d->fam->cdf;
    if (!fn)
        return rt_error(vm, c, "%s has no closed-form %s", d->fam->name, inverse ? "icdf" : "cdf");
    if (d->reinterpreted)
        return rt_error(vm, c, "%s: %s is not defined after to_event", d->fam->name, c->name);
    return ret_tensor(vm, c, fn(rt_vm_bk(vm), d, x), out);
}
static int m_cdf(rt_vm *vm, const rt_call *c, rt_value *out) { return cdf_like(vm, c, out, false); }
static int m_icdf(rt_vm *vm, const rt_call *c, rt_value *out) { return cdf_like(vm, c, out, true); }

static int m_to_event(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"reinterpreted_batch_ndims", NULL};
    double n;
    if (rt_check_args(vm, c, 1, names) ||
        rt_arg_number(vm, c, 0, "reinterpreted_batch_ndims", -1, false, &n))
        return -1;
    if (n != floor(n) || n < -1 || n > BK_MAXDIM)
        return rt_error_arg(vm, c, 0, "to_event: n must be a non-negative integer, got %g", n);
    return ret_dist(vm, c, sl_to_event(rt_vm_bk(vm), self_dist(c), (int)n), out);
}

static int m_expand(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"batch_shape", NULL};
    int nd;
    int64_t shape[BK_MAXDIM];
    if (rt_check_args(vm, c, 1, names) || shape_arg(vm, c, 0, "batch_shape", &nd, shape))
        return -1;
    if (!rt_arg(c, 0, "batch_shape"))
        return rt_error(vm, c, "expand: missing argument \"batch_shape\"");
    return ret_dist(vm, c, sl_expand(rt_vm_bk(vm), self_dist(c), nd, shape), out);
}

static int m_mask(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"mask", NULL};
    bk_tensor *m;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "mask", true, &m)) return -1;
    return ret_dist(vm, c, sl_mask(rt_vm_bk(vm), self_dist(c), m), out);
}

static int m_no_rsample(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    return ret_dist(vm, c, sl_no_rsample(rt_vm_bk(vm), self_dist(c)), out);
}

static int m_enumerate(rt_vm *vm, const rt_call *c, rt_value *out) {
    sl_dist *d = self_dist(c);
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    if (!d->fam->enumerate_support)
        return rt_error(vm, c, "%s has no finite support to enumerate", d->fam->name);
    if (d->reinterpreted)
        return rt_error(vm, c, "%s: enumerate_support is not defined after to_event",
                        d->fam->name);
    return ret_tensor(vm, c, d->fam->enumerate_support(rt_vm_bk(vm), d), out);
}

typedef struct method {
    const char *name;
    rt_builtin_fn fn;
} method;

static const method methods[] = {
    {"log_prob", m_log_prob}, {"sample", m_sample},     {"rsample", m_rsample},
    {"entropy", m_entropy},   {"cdf", m_cdf},           {"icdf", m_icdf},
    {"to_event", m_to_event}, {"expand", m_expand},     {"mask", m_mask},
    {"enumerate_support", m_enumerate}, {"no_rsample", m_no_rsample}, {NULL, NULL}};

/* ----------------------------------------------------------- fields --- */

static bk_tensor *shape_tensor(bk_ctx *ctx, int n, const int64_t *shape) {
    double v[BK_MAXDIM];
    for (int i = 0; i < n; i++) v[i] = (double)shape[i];
    int64_t len = n;
    return bk_from_f64(ctx, 1, &len, v);
}

static int get_field(rt_vm *vm, sl_dist *d, const char *name, rt_loc loc, rt_value *out) {
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_tensor *t = NULL;
    if (strcmp(name, "support") == 0) {
        sl_constraint cs;
        if (sl_support(ctx, d, &cs)) return rt_error_loc(vm, loc, "%s", bk_errmsg(ctx));
        const char *s = sl_constraint_name(cs.kind);
        sl_constraint_clear(&cs);
        rt_str *str = rt_str_new(s, strlen(s));
        if (!str) return rt_error_loc(vm, loc, "out of memory");
        *out = rt_obj_value(&str->h);
        return 0;
    }
    if (strcmp(name, "mean") == 0) t = sl_mean(ctx, d);
    else if (strcmp(name, "variance") == 0) t = sl_variance(ctx, d);
    else if (strcmp(name, "batch_shape") == 0) t = shape_tensor(ctx, d->nbatch, d->batch);
    else if (strcmp(name, "event_shape") == 0) t = shape_tensor(ctx, d->nevent, d->event);
    else return 1;
    if (!t) return rt_error_loc(vm, loc, "%s", bk_errmsg(ctx));
    *out = rt_tensor(t);
    return 0;
}

int sl_dist_getattr(rt_vm *vm, sl_dist *d, const char *name, rt_loc loc, rt_value *out) {
    int rc = get_field(vm, d, name, loc, out);
    if (rc <= 0) return rc;
    for (const method *m = methods; m->name; m++)
        if (strcmp(m->name, name) == 0) {
            rt_builtin *b = rt_builtin_new(m->name, m->fn, rt_obj_value(&d->h));
            if (!b) return rt_error_loc(vm, loc, "out of memory");
            *out = rt_obj_value(&b->h);
            return 0;
        }
    static const char *const all[] = {"mean", "variance", "batch_shape", "event_shape",
                                      "support", "log_prob", "sample", "rsample", "entropy",
                                      "cdf", "icdf", "to_event", "expand", "mask",
                                      "enumerate_support", "no_rsample", NULL};
    const char *hint = rt_did_you_mean(name, all, 16);
    if (hint)
        return rt_error_loc(vm, loc, "a %s distribution has no field \"%s\" (did you mean \"%s\"?)",
                            d->fam->name, name, hint);
    return rt_error_loc(vm, loc, "a %s distribution has no field \"%s\"", d->fam->name, name);
}
