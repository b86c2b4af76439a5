/* dist_host.c - distribution families defined by the embedding program
 * through ppl_register_distribution (include/ppl.h).
 *
 * Each registration makes one object (an opaque value) that owns a copy of
 * the definition and an sl_family whose callbacks call the host's; the
 * constructor built-in carries that object as its receiver, and every
 * distribution built from it retains it, so a family outlives a rebinding
 * of its name.  The host works on float64 arrays of the broadcast shape.
 *
 * Gradients: the host's derivatives g enter the tape through the surrogate
 *     lp + sum_i (p_i - detach(p_i)) * g_i
 * whose value is lp exactly and whose first derivatives are g_i. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"
#include "ppl.h"
#include "vm.h"

typedef struct host_fam {
    sl_family fam;              /* first: d->fam points here */
    ppl_dist_def def;           /* name and param_names point to the copies */
    char *name;
    char *pnames[SL_MAXP];
    const char *names[SL_MAXP + 1]; /* NULL-terminated, for rt_check_args */
    int support;                /* sl_ckind */
} host_fam;

static const host_fam *hf_of(const sl_dist *d) { return (const host_fam *)d->fam; }

static void hf_free(void *p) {
    host_fam *h = p;
    if (!h) return;
    free(h->name);
    for (int i = 0; i < SL_MAXP; i++) free(h->pnames[i]);
    free(h);
}

/* ------------------------------------------------------- the family --- */

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    const host_fam *h = hf_of(d);
    if (h->def.check)
        for (int i = 0; i < h->def.nparams; i++) {
            const bk_tensor *t = d->p[i];
            for (int64_t k = 0; k < t->numel; k++) {
                double v = bk_get(t, k);
                const char *why = h->def.check(h->def.ud, i, v);
                if (why) {
                    char num[32];
                    rt_format_number(v, num, sizeof num);
                    bk_seterr(ctx, "%s: %s %s, got %s", h->name, h->pnames[i], why, num);
                    *bad = i;
                    return -1;
                }
            }
        }
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

/* Dense float64 copies of ins[0..n-1] broadcast together: shape in nb/B. */
static int densify(bk_ctx *ctx, int n, bk_tensor **ins, bk_tensor **dense, int *nb, int64_t *B) {
    *nb = 0;
    for (int i = 0; i < n; i++) {
        int no;
        int64_t o[BK_MAXDIM];
        if (bk_broadcast_shapes(ctx, *nb, B, ins[i]->ndim, ins[i]->shape, &no, o)) return -1;
        *nb = no;
        memcpy(B, o, sizeof o);
    }
    for (int i = 0; i < n; i++) dense[i] = NULL;
    for (int i = 0; i < n; i++)
        if (!(dense[i] = sl_dense(ctx, ins[i], *nb, B))) return -1;
    return 0;
}

/* Replace non-finite derivatives (where the density is -inf) by 0. */
static void clean(bk_tensor *g, const double *lp) {
    double *v = bk_data(g);
    for (int64_t k = 0; k < g->numel; k++)
        if (!isfinite(v[k]) || lp[k] == -INFINITY) v[k] = 0;
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    const host_fam *h = hf_of(d);
    int np = h->def.nparams, nb = 0;
    int64_t B[BK_MAXDIM] = {0};
    bk_tensor *ins[SL_MAXP + 1], *dense[SL_MAXP + 1];
    ins[0] = x;
    for (int i = 0; i < np; i++) ins[i + 1] = d->p[i];
    sl_scope s;
    sl_scope_init(&s, ctx);
    int rc = densify(ctx, np + 1, ins, dense, &nb, B);
    for (int i = 0; i <= np; i++)
        if (dense[i]) s_keep(&s, dense[i]);
    if (rc) return s_done(&s, NULL);
    bk_tensor *out = s_keep(&s, bk_empty(ctx, BK_F64, nb, B));
    if (!out) return s_done(&s, NULL);
    const double *pp[SL_MAXP];
    for (int i = 0; i < np; i++) pp[i] = bk_data(dense[i + 1]);
    size_t n = (size_t)out->numel;
    double *o = bk_data(out);
    h->def.log_prob(h->def.ud, n, bk_data(dense[0]), pp, o);
    for (size_t k = 0; k < n; k++)
        if (isnan(o[k])) o[k] = -INFINITY;
    bool need = false;
    for (int i = 0; i <= np; i++) need = need || ins[i]->requires_grad;
    if (!need) return s_done(&s, out);
    if (!h->def.grad) {
        bk_seterr(ctx, "%s: this host-defined family has no gradient callback, so it can be used "
                  "only where no gradient flows through it (observed values with constant "
                  "parameters)", h->name);
        return s_done(&s, NULL);
    }
    bk_tensor *g[SL_MAXP + 1] = {0};
    double *gp[SL_MAXP] = {0};
    for (int i = 0; i <= np; i++)
        if (ins[i]->requires_grad && !(g[i] = s_keep(&s, bk_zeros(ctx, BK_F64, nb, B))))
            return s_done(&s, NULL);
    for (int i = 0; i < np; i++) gp[i] = g[i + 1] ? bk_data(g[i + 1]) : NULL;
    h->def.grad(h->def.ud, n, bk_data(dense[0]), pp, g[0] ? bk_data(g[0]) : NULL, gp);
    bk_tensor *r = out;
    for (int i = 0; i <= np; i++) {
        if (!g[i]) continue;
        clean(g[i], o);
        bk_tensor *dt = s_keep(&s, bk_detach(ctx, ins[i]));
        r = s_add(&s, r, s_mul(&s, s_sub(&s, ins[i], dt), g[i]));
    }
    return s_done(&s, r);
}

static double uniform(void *rng) { return bk_rng_uniform(rng); }

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    const host_fam *h = hf_of(d);
    if (!h->def.sample) {
        bk_seterr(ctx, "%s: this host-defined family has no sampler", h->name);
        return NULL;
    }
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape), np = h->def.nparams;
    if (nd < 0) {
        bk_seterr(ctx, "%s: sample has too many dimensions", h->name);
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    const double *pp[SL_MAXP];
    for (int i = 0; i < np; i++) {
        bk_tensor *t = s.err ? NULL : s_keep(&s, sl_dense(ctx, d->p[i], nd, shape));
        pp[i] = t ? bk_data(t) : NULL;
    }
    bk_tensor *out = s.err ? NULL : s_keep(&s, bk_empty(ctx, BK_F64, nd, shape));
    if (s.err) return s_done(&s, NULL);
    h->def.sample(h->def.ud, (size_t)out->numel, pp, bk_data(out), uniform, rng);
    return s_done(&s, out);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, hf_of(d)->support);
}

/* ---------------------------------------------------- constructor --- */

static int b_host(rt_vm *vm, const rt_call *c, rt_value *out) {
    rt_opaque *o = (rt_opaque *)c->self.u.o;
    host_fam *h = o->data;
    sl_dist *d = sl_dist_new(&h->fam);
    if (!d) return rt_error(vm, c, "out of memory");
    d->host = &o->h;
    o->h.refcount++;
    sl_args a = {vm, c};
    sl_bindinfo b;
    int rc = rt_check_args(vm, c, h->def.nparams, h->names);
    for (int i = 0; rc == 0 && i < h->def.nparams; i++)
        rc = sl_bind_param(&a, &b, d, i, i, h->pnames[i], NAN);
    if (rc == 0) rc = sl_build_finish(&a, &b, d);
    if (rc) {
        sl_dist_release(d);
        return -1;
    }
    *out = rt_obj_value(&d->h);
    return 0;
}

static bool is_ident(const char *s) {
    if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return false;
    return true;
}

static char *dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *r = malloc(n);
    if (r) memcpy(r, s, n);
    return r;
}

int sl_register_host_family(rt_vm *vm, const ppl_dist_def *def, char *err, size_t errlen) {
    if (!def || !is_ident(def->name)) {
        snprintf(err, errlen, "ppl_register_distribution: the name must be an identifier");
        return -1;
    }
    if (sl_find_family(def->name)) {
        snprintf(err, errlen, "ppl_register_distribution: %s is a built-in distribution",
                 def->name);
        return -1;
    }
    if (def->nparams < 1 || def->nparams > SL_MAXP || !def->param_names) {
        snprintf(err, errlen, "ppl_register_distribution: %s: nparams must be 1 to %d, with "
                 "param_names", def->name, SL_MAXP);
        return -1;
    }
    for (int i = 0; i < def->nparams; i++)
        if (!is_ident(def->param_names[i])) {
            snprintf(err, errlen, "ppl_register_distribution: %s: parameter name %d must be an "
                     "identifier", def->name, i + 1);
            return -1;
        }
    if (!def->log_prob) {
        snprintf(err, errlen, "ppl_register_distribution: %s: log_prob is required", def->name);
        return -1;
    }
    int kind = SL_C_REAL, nargs = 0;
    if (def->support) {
        kind = sl_constraint_lookup(def->support, &nargs);
        if (kind < 0 || nargs != 0 || kind == SL_C_ONE_HOT || kind == SL_C_SIMPLEX ||
            kind == SL_C_ORDERED || kind == SL_C_POSITIVE_ORDERED || kind == SL_C_LOWER_CHOLESKY ||
            kind == SL_C_CORR_CHOLESKY) {
            snprintf(err, errlen, "ppl_register_distribution: %s: support \"%s\" is not a "
                     "parameter-free elementwise constraint (real, positive, unit_interval, "
                     "boolean, nonnegative_integer)", def->name, def->support);
            return -1;
        }
    }
    host_fam *h = calloc(1, sizeof *h);
    if (!h) goto nomem;
    h->def = *def;
    h->name = dup(def->name);
    if (!h->name) goto nomem;
    for (int i = 0; i < def->nparams; i++) {
        if (!(h->pnames[i] = dup(def->param_names[i]))) goto nomem;
        h->names[i] = h->pnames[i];
    }
    h->def.name = h->name;
    h->def.param_names = (const char *const *)h->pnames;
    h->def.support = NULL;
    h->support = kind;
    sl_constraint sc = {.kind = kind};
    h->fam = (sl_family){
        .name = h->name, .build = NULL, .log_prob = log_prob, .sample = sample,
        .support = support, .reparam = false, .discrete = sl_constraint_is_discrete(&sc),
        .init = init,
    };
    rt_opaque *o = rt_opaque_new("distribution family", h, hf_free);
    if (!o) goto nomem;
    h = NULL;   /* owned by o */
    rt_value self = rt_obj_value(&o->h);
    rt_builtin *b = rt_builtin_new(((host_fam *)o->data)->name, b_host, self);
    rt_release(self);
    if (!b || rt_global_set(vm, ((host_fam *)o->data)->name, rt_obj_value(&b->h))) goto nomem;
    return 0;
nomem:
    hf_free(h);
    snprintf(err, errlen, "out of memory");
    return -1;
}
