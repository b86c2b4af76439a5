/* predictive.c - prior and posterior predictive distributions.
 *
 *   pred = predictive(model, fit, data, samples=1000, seed=, return_sites=["y"])
 *   pred = predictive(model, post, data)      # post = mcmc(...): every draw
 *
 * Each draw runs the model with its observed sites set free: a `predict`
 * handler turns every observe into a fresh sample from its distribution.
 * With an SVI fit, the latent sites are first drawn from the fitted guide
 * and replayed into the model (posterior predictive); with an MCMC
 * posterior they are set to one stored (constrained) draw of the pooled
 * chains; without either (predictive(model, data=d)) they come from the
 * prior (prior predictive).  The result is a record: site name ->
 * tensor [samples, ...site shape]. */
#include <stdlib.h>
#include <string.h>
#include "mcmc.h"

/* The MCMC draw a `posterior` handler substitutes: row `row` of m. */
typedef struct post_draw {
    const inf_mcmc *m;
    int64_t row;
} post_draw;

/* The shape of site `name` from its columns first..first+count-1, named
 * "name" (scalar) or "name[i, j]" (row-major; the last names the extents). */
static int site_shape(const inf_mcmc *m, const char *name, int first, int count, int *ndim, int64_t *shape) {
    size_t ln = strlen(name);
    const char *last = m->names[first + count - 1];
    *ndim = 0;
    if (last[ln] == 0) return count == 1 ? 0 : -1;
    const char *p = last + ln + 1;
    int64_t numel = 1;
    while (*p && *p != ']') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || *ndim >= BK_MAXDIM) return -1;
        shape[(*ndim)++] = v + 1;
        numel *= v + 1;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return numel == count ? 0 : -1;
}

static int posterior_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    const post_draw *pd = h->state;
    if (m->kind != RT_SITE_SAMPLE || m->observed || m->done) return 0;
    const inf_mcmc *mc = pd->m;
    int first = -1, count = 0;
    size_t ln = strlen(m->name);
    for (int j = 0; j < mc->nnames; j++)
        if (strncmp(mc->names[j], m->name, ln) == 0 && (mc->names[j][ln] == 0 || mc->names[j][ln] == '[')) {
            if (first < 0) first = j;
            count++;
        }
    if (first < 0)
        return rt_error_loc(vm, m->loc,
                            "predictive: the MCMC posterior has no draws of the latent site \"%s\" (was it run on another model?)",
                            m->name);
    int ndim;
    int64_t shape[BK_MAXDIM];
    if (site_shape(mc, m->name, first, count, &ndim, shape))
        return rt_error_loc(vm, m->loc, "predictive: the MCMC draws of site \"%s\" have an unexpected layout", m->name);
    bk_tensor *t = bk_empty(vm->bk, BK_F64, ndim, shape);
    if (!t) return rt_fail_bk(vm, m->loc);
    double *d = bk_data(t);
    const double *row = mc->draws + pd->row * mc->nnames + first;
    memcpy(d, row, sizeof(double) * (size_t)count);
    if (!(t = bk_place_nd(vm->bk, t))) return rt_fail_bk(vm, m->loc); /* the draw, on the run's device */
    bk_release(m->value);
    m->value = t;
    m->done = true;
    return 0;
}

static int predict_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    (void)vm;
    (void)h;
    if (m->kind != RT_SITE_OBSERVE) return 0;
    bk_release(m->value);
    m->value = NULL;
    m->kind = RT_SITE_SAMPLE;
    m->observed = false;
    m->done = false;
    return 0;
}

/* One predictive draw into tr. */
static int one_draw(rt_vm *vm, rt_func *model, inf_guide *guide, const post_draw *pd, const rt_record *data,
                    rt_loc loc, rt_trace *tr) {
    rt_trace gtr;
    rt_trace_init(&gtr);
    int rc = guide ? inf_guide_run(vm, guide, data, loc, &gtr) : 0;
    rt_handler ht, hr, hp, hq;
    memset(&hp, 0, sizeof hp);
    hp.type = "predict";
    hp.process = predict_process;
    /* above `predict`, so that it sees observe sites before they are set free */
    memset(&hq, 0, sizeof hq);
    hq.type = "posterior";
    hq.process = posterior_process;
    hq.state = (void *)pd;
    rt_handler_trace(&ht, tr);
    rt_handler_replay(&hr, &gtr);
    if (rc == 0 && rt_push_handler(vm, &ht) == 0) {
        if (rt_push_handler(vm, &hr) == 0) {
            if (rt_push_handler(vm, &hp) == 0) {
                if (!pd || rt_push_handler(vm, &hq) == 0) {
                    rt_value ret = rt_none();
                    rc = rt_call_with_data(vm, model, data, loc, &ret);
                    rt_release(ret);
                    if (pd) rt_pop_handler(vm, &hq);
                } else {
                    rc = -1;
                }
                rt_pop_handler(vm, &hp);
            } else {
                rc = -1;
            }
            rt_pop_handler(vm, &hr);
        } else {
            rc = -1;
        }
        rt_pop_handler(vm, &ht);
    }
    rt_trace_clear(&gtr);
    return rc;
}

static bool wanted(const rt_list *sites, const char *name) {
    if (!sites) return true;
    for (int i = 0; i < sites->n; i++)
        if (sites->items[i].tag == RT_STR && strcmp(((rt_str *)sites->items[i].u.o)->s, name) == 0) return true;
    return false;
}

/* Draw s of `samples` uses MCMC row floor(s * N / samples) of the N pooled
 * draws (chain-major): every draw in order when samples == N, evenly spaced
 * rows when fewer, rows repeated evenly when more. */
static int predictive_run(rt_vm *vm, rt_func *model, inf_guide *guide, const inf_mcmc *mc, const rt_record *data,
                          int samples, uint64_t seed, const rt_list *return_sites, rt_loc loc, rt_value *out) {
    rt_handler hs;
    rt_seed_state ss;
    rt_handler_seed(&hs, &ss, seed);
    if (rt_push_handler(vm, &hs)) return rt_fail(vm, 5, loc, "out of memory");
    bool grad = bk_set_grad_enabled(vm->bk, false);
    rt_trace *draws = calloc((size_t)samples, sizeof *draws);
    int rc = draws ? 0 : rt_fail(vm, 5, loc, "out of memory");
    int64_t ntot = mc ? (int64_t)mc->chains * mc->samples : 0;
    for (int s = 0; s < samples && rc == 0; s++) {
        post_draw pd = {mc, mc ? (int64_t)((double)s * (double)ntot / samples) : 0};
        if (pd.row >= ntot) pd.row = ntot - 1;
        rc = one_draw(vm, model, guide, mc ? &pd : NULL, data, loc, &draws[s]);
    }
    bk_set_grad_enabled(vm->bk, grad);
    rt_pop_handler(vm, &hs);
    rt_record *rec = rc == 0 ? rt_record_new() : NULL;
    if (rc == 0 && !rec) rc = rt_fail(vm, 5, loc, "out of memory");
    /* stack each site's values over the draws */
    for (int i = 0; rc == 0 && samples > 0 && i < draws[0].n; i++) {
        const rt_site *s0 = &draws[0].sites[i];
        if (s0->kind != RT_SITE_SAMPLE && s0->kind != RT_SITE_DETERMINISTIC) continue;
        if (!wanted(return_sites, s0->name)) continue;
        int n = samples;
        bk_tensor **vals = malloc(sizeof *vals * (size_t)n);
        if (!vals) {
            rc = rt_fail(vm, 5, loc, "out of memory");
            break;
        }
        for (int k = 0; k < n && rc == 0; k++) {
            const rt_site *sk = rt_trace_find(&draws[k], s0->name);
            if (!sk || !bk_same_shape(sk->value, s0->value))
                rc = rt_error_loc(vm, loc, "predictive: site \"%s\" is missing or changes shape between draws", s0->name);
            else vals[k] = sk->value;
        }
        bk_tensor *st = rc ? NULL : bk_stack(vm->bk, n, vals, 0);
        free(vals);
        if (rc) break;
        if (!st || rt_record_set(rec, s0->name, rt_tensor(st))) rc = rt_fail_bk(vm, loc);
    }
    for (int s = 0; draws && s < samples; s++) rt_trace_clear(&draws[s]);
    free(draws);
    if (rc) {
        if (rec) rt_release(rt_obj_value(&rec->h));
        return -1;
    }
    *out = rt_obj_value(&rec->h);
    return 0;
}

int inf_predictive(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, int samples, uint64_t seed,
                   const rt_list *return_sites, rt_loc loc, rt_value *out) {
    return predictive_run(vm, model, guide, NULL, data, samples, seed, return_sites, loc, out);
}

static int b_predictive(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"model", "posterior", "data", "samples", "seed", "return_sites", NULL};
    if (rt_check_args(vm, c, 3, names)) return -1;
    const rt_value *m = rt_arg(c, 0, "model");
    const rt_value *post = rt_arg(c, 1, "posterior");
    const rt_value *d = rt_arg(c, 2, "data");
    if (!m || m->tag != RT_FUNC) return rt_error_arg(vm, c, 0, "predictive: the first argument must be a model");
    if (d && d->tag != RT_RECORD && d->tag != RT_NONE)
        return rt_error_arg(vm, c, 2, "predictive: data must be a record, got a %s", rt_type_name(*d));
    double ns, seed;
    if (rt_arg_number(vm, c, -1, "samples", 1000, false, &ns) ||
        rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed))
        return -1;
    const rt_value *rs = rt_arg(c, -1, "return_sites");
    if (rs && rs->tag != RT_LIST) return rt_error_kw(vm, c, "return_sites", "predictive: return_sites must be a list of site names like [\"y\"]");
    const rt_record *dr = d && d->tag == RT_RECORD ? (rt_record *)d->u.o : NULL;
    const inf_mcmc *mc = post ? inf_posterior_mcmc(*post) : NULL;
    if (mc) {
        /* default: every pooled draw once, as NumPyro's Predictive(posterior_samples=...) */
        int64_t ntot = (int64_t)mc->chains * mc->samples;
        if (!rt_arg(c, -1, "samples")) ns = (double)ntot;
        if (ns < 1 || ns > 1000000 || ns != (int)ns)
            return rt_error_kw(vm, c, "samples", "predictive: samples must be an integer in 1..1000000 (default: all %lld MCMC draws)",
                               (long long)ntot);
        return predictive_run(vm, (rt_func *)m->u.o, NULL, mc, dr, (int)ns, (uint64_t)seed, rs ? (rt_list *)rs->u.o : NULL,
                              c->loc, out);
    }
    if (ns < 1 || ns > 1000000 || ns != (int)ns) return rt_error_kw(vm, c, "samples", "predictive: samples must be an integer in 1..1000000");
    inf_guide *guide = NULL;
    inf_guide user = {0};
    if (post && post->tag != RT_NONE) {
        const inf_result *r = NULL;
        if (post->tag == RT_OPAQUE && strcmp(((rt_opaque *)post->u.o)->type, "svi_fit") == 0)
            r = ((rt_opaque *)post->u.o)->data;
        if (!r || r->guide.tag == RT_NONE)
            return rt_error_arg(vm, c, 1, "predictive: the second argument must be the result of svi(...) or mcmc(...) (leave it out, predictive(model, data=d), for the prior predictive)");
        if (r->guide.tag == RT_FUNC) {
            user.kind = INF_GUIDE_USER;
            user.fn = (rt_func *)r->guide.u.o;
            guide = &user;
        } else {
            guide = ((rt_opaque *)r->guide.u.o)->data;
        }
    }
    return inf_predictive(vm, (rt_func *)m->u.o, guide, dr, (int)ns, (uint64_t)seed, rs ? (rt_list *)rs->u.o : NULL, c->loc, out);
}

static int b_predictive_on(rt_vm *vm, const rt_call *c, rt_value *out) { return inf_with_device(vm, c, out, b_predictive, 2); }

const rt_builtin_def inf_predictive_builtins[] = {
    {"predictive", b_predictive_on},
    {NULL, NULL},
};
