/* nn_bayes.c - Bayesian layers: networks whose weights are sample sites.
 *
 *   net = BayesMLP("net", [1, 50, 1], activation="tanh", prior=Normal(0, 1))
 *   lin = BayesLinear("head", 20, 2, prior=Laplace(0, 0.5))
 *   q = BayesGuide(net, init_scale=0.05)    # mean-field Normal guide
 *
 * Called inside a model, `net(x)` draws each layer's weight and bias as
 * the sample sites NAME.I.weight [in, out] and NAME.I.bias [out]
 * (BayesLinear: NAME.weight, NAME.bias) from the prior, expanded to the
 * site's shape and made one event (Pyro's PyroSample(prior.expand(shape)
 * .to_event(n))), then computes the network with them.  The sites are
 * ordinary batched sample sites outside every plate, so autoguides, user
 * guides, NUTS, predictive and substitute all see them.
 *
 * `q()` inside a guide draws the same sites from independent Normals
 * with parameters PREFIX.locs.SITE (real) and PREFIX.scales.SITE
 * (positive), as AutoNormal names them, but through sample messages that
 * carry the Normal distribution, so the trace shows it and
 * TraceMeanField_ELBO takes the KL to a Normal prior in closed form.
 *
 * Local reparameterization (local_reparam=true on the network): while
 * gradients are recorded (inside svi, elbo_grad) and the weight site's
 * value is replayed from a guide site drawn from a Normal, the layer does
 * not use that draw for its output: it reads the Normal's loc and scale
 * from the replayed guide trace (rt_replayed_site) and draws the
 * pre-activations from their exact distribution per data point
 * (nn_lr_linear).  The weight sites stay in the traces, so the ELBO's
 * log p(w) - log q(w) (or its closed-form KL) is unchanged; only the
 * likelihood term is estimated with independent noise per row.  Outside
 * training (predictive, trace, MCMC) the drawn weights are used, so a
 * predictive draw is one coherent function. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "nn.h"
#include "nn_args.h"
#include "nn_bayes.h"

/* ------------------------------------------------------------ the math --- */

static bk_tensor *square(bk_ctx *c, bk_tensor *t) { return bk_unop(c, BK_OP_SQUARE, t); }

bk_tensor *nn_lr_moments(bk_ctx *c, bk_tensor *x, bk_tensor *wloc, bk_tensor *wscale, bk_tensor *bloc,
                         bk_tensor *bscale, bk_tensor **var) {
    *var = NULL;
    if (!wscale || wscale->ndim != 2 || wloc->ndim != 2 || wscale->shape[0] != wloc->shape[0] ||
        wscale->shape[1] != wloc->shape[1] || (bscale && !bloc)) {
        bk_seterr(c, "local reparameterization: the weight scale must have the weight loc's shape");
        return NULL;
    }
    bk_tensor *mean = nn_linear(c, x, wloc, bloc);
    if (!mean) return NULL;
    bk_tensor *x2 = square(c, x);
    bk_tensor *s2 = square(c, wscale);
    bk_tensor *v = x2 && s2 ? bk_matmul(c, x2, s2) : NULL;
    bk_release(x2);
    bk_release(s2);
    if (v && bscale) {
        bk_tensor *b2 = square(c, bscale);
        bk_tensor *t = b2 ? bk_add(c, v, b2) : NULL;
        bk_release(b2);
        bk_release(v);
        v = t;
    }
    if (v) {
        bk_tensor *t = bk_add_s(c, v, NN_LR_VAR_FLOOR);
        bk_release(v);
        v = t;
    }
    if (!v) {
        bk_release(mean);
        return NULL;
    }
    *var = v;
    return mean;
}

bk_tensor *nn_lr_linear(bk_ctx *c, bk_tensor *x, bk_tensor *wloc, bk_tensor *wscale, bk_tensor *bloc,
                        bk_tensor *bscale, bk_tensor *eps) {
    bk_tensor *var = NULL;
    bk_tensor *mean = nn_lr_moments(c, x, wloc, wscale, bloc, bscale, &var);
    if (!mean) return NULL;
    bk_tensor *r = NULL;
    if (!bk_same_shape(eps, mean)) {
        char a[64], b[64];
        bk_seterr(c, "local reparameterization: the noise has shape %s, the pre-activations %s",
                  bk_shape_str(eps, a, sizeof a), bk_shape_str(mean, b, sizeof b));
    } else {
        bk_tensor *sd = bk_unop(c, BK_OP_SQRT, var);
        bk_tensor *se = sd ? bk_mul(c, sd, eps) : NULL;
        r = se ? bk_add(c, mean, se) : NULL;
        bk_release(sd);
        bk_release(se);
    }
    bk_release(mean);
    bk_release(var);
    return r;
}

/* ------------------------------------------------------------- modules --- */

#define BN_MAXLAYERS 64

typedef struct bn_net {
    char *name;
    bool mlp;                  /* BayesMLP: sites NAME.I.weight; BayesLinear: NAME.weight */
    int nlin;                  /* affine layers */
    int64_t sizes[BN_MAXLAYERS + 1];
    int act, out_act;
    double act_k, out_k;
    bool bias, local_reparam;
    sl_dist *prior, *bias_prior; /* retained: univariate, real support */
} bn_net;

typedef struct bn_guide {
    rt_value netv;             /* the network value (retained: keeps net alive) */
    const bn_net *net;
    char *prefix;
    double init_scale;
    int init;                  /* NN_INIT_* below */
    uint64_t seed;
} bn_guide;

enum { BN_INIT_AUTO, BN_INIT_XAVIER, BN_INIT_KAIMING };

/* Networks and guides are built-ins bound to an opaque "module", the type
 * that prints as its repr (value.c); a Bayesian network is recognized by
 * its call function. */
static const char BN_MODULE[] = "module";

static void net_free(void *p) {
    bn_net *n = p;
    free(n->name);
    sl_dist_release(n->prior);
    sl_dist_release(n->bias_prior);
    free(n);
}

static void guide_free(void *p) {
    bn_guide *g = p;
    rt_release(g->netv);
    free(g->prefix);
    free(g);
}

static size_t put_sizes(char *buf, size_t n, size_t k, const bn_net *m) {
    for (int i = 0; i <= m->nlin && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)m->sizes[i]);
    return k;
}

static char *net_repr(bk_ctx *ctx, void *p) {
    (void)ctx;
    const bn_net *m = p;
    char buf[1024];
    size_t k = (size_t)snprintf(buf, sizeof buf, "<%s %s [", m->mlp ? "BayesMLP" : "BayesLinear", m->name);
    k = put_sizes(buf, sizeof buf, k, m);
    if (k < sizeof buf)
        snprintf(buf + k, sizeof buf - k, "]%s%s, prior %s%s>", m->mlp ? " " : "", m->mlp ? nn_act_name(m->act) : "",
                 m->prior->fam->name, m->local_reparam ? ", local_reparam" : "");
    return strdup(buf);
}

static char *guide_repr(bk_ctx *ctx, void *p) {
    (void)ctx;
    const bn_guide *g = p;
    char buf[512];
    snprintf(buf, sizeof buf, "<BayesGuide %s of %s, init_scale %g>", g->prefix, g->net->name, g->init_scale);
    return strdup(buf);
}

/* Site name of layer i's weight or bias. */
static void site_name(const bn_net *m, int i, const char *what, char *buf, size_t n) {
    if (m->mlp) snprintf(buf, n, "%s.%d.%s", m->name, i, what);
    else snprintf(buf, n, "%s.%s", m->name, what);
}

static bool has_shape(const bk_tensor *t, int nd, const int64_t *shape) {
    if (t->ndim != nd) return false;
    for (int d = 0; d < nd; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

/* Send a sample message for `site` (outside every plate, scale 1) and
 * check the value it comes back with has the site's shape. */
static bk_tensor *sample_site(rt_vm *vm, const char *site, sl_dist *d, int nd, const int64_t *shape, rt_loc loc) {
    rt_msg m;
    memset(&m, 0, sizeof m);
    m.kind = RT_SITE_SAMPLE;
    m.name = site;
    m.dist = d;
    m.scale = 1.0;
    m.loc = loc;
    if (rt_apply_message(vm, &m)) return NULL;
    if (!has_shape(m.value, nd, shape)) {
        char a[64], b[64];
        rt_error_loc(vm, loc, "site \"%s\" got a value of shape %s; the layer needs %s", site,
                     bk_shape_str(m.value, a, sizeof a), bk_dims_str(nd, shape, b, sizeof b));
        bk_release(m.value);
        return NULL;
    }
    return m.value;
}

/* The weights of a layer drawn from the prior: prior.expand(shape).to_event(nd). */
static bk_tensor *draw_weights(rt_vm *vm, const char *site, const sl_dist *prior, int nd, const int64_t *shape,
                               rt_loc loc) {
    sl_dist *e = sl_expand(vm->bk, prior, nd, shape);
    sl_dist *d = e ? sl_to_event(vm->bk, e, nd) : NULL;
    sl_dist_release(e);
    if (!d) {
        rt_fail_bk(vm, loc);
        return NULL;
    }
    bk_tensor *v = sample_site(vm, site, d, nd, shape, loc);
    sl_dist_release(d);
    return v;
}

/* When the value of `site` was replayed from a guide site, that site's
 * Normal loc and scale broadcast to the value's shape (1).  0 when the
 * value did not come from a guide (MCMC, substitute, no guide site); -1
 * with an error when it did but the guide's distribution is not a plain
 * reparameterized Normal. */
static int guide_normal(rt_vm *vm, const char *site, bk_tensor *value, bk_tensor **mu, bk_tensor **sd, rt_loc loc) {
    *mu = *sd = NULL;
    const rt_site *g = rt_replayed_site(vm, site);
    if (!g || g->value != value) return 0;
    const sl_dist *d = g->dist;
    char why[160] = "";
    if (!d) snprintf(why, sizeof why, "the guide's site carries no distribution (autoguides such as AutoNormal "
                     "draw their sites directly)");
    else if (strcmp(d->fam->name, "Normal") != 0 || d->host || d->tf)
        snprintf(why, sizeof why, "the guide draws it from %s", d->fam->name);
    else if (d->mask) snprintf(why, sizeof why, "the guide's Normal is masked");
    else if (d->no_rsample) snprintf(why, sizeof why, "the guide's Normal is not reparameterized (no_rsample)");
    if (why[0])
        return rt_error_loc(vm, loc, "site \"%s\": local_reparam=true needs the guide to draw it from a Normal "
                            "(use BayesGuide(net)); %s", site, why);
    bk_tensor *p[2] = {d->p[0], d->p[1]}, *out[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        out[k] = has_shape(p[k], value->ndim, value->shape) ? bk_retain(p[k])
                                                             : bk_expand(vm->bk, p[k], value->ndim, value->shape);
        if (!out[k]) {
            bk_release(out[0]);
            return rt_fail_bk(vm, loc);
        }
    }
    *mu = out[0];
    *sd = out[1];
    return 1;
}

/* Layer i's pre-activations by the local reparameterization when the
 * weights come from a Normal guide, else h @ w + b.  b may be NULL. */
static bk_tensor *lr_affine(rt_vm *vm, const bn_net *m, int i, bk_tensor *h, bk_tensor *w, bk_tensor *b, rt_loc loc) {
    char wn[320], bn[320];
    site_name(m, i, "weight", wn, sizeof wn);
    site_name(m, i, "bias", bn, sizeof bn);
    bk_tensor *wl, *ws, *bl = NULL, *bs = NULL;
    int k = guide_normal(vm, wn, w, &wl, &ws, loc);
    if (k < 0) return NULL;
    if (k == 0) {
        bk_tensor *r = nn_linear(vm->bk, h, w, b);
        if (!r) rt_fail_bk(vm, loc);
        return r;
    }
    if (b) {
        int kb = guide_normal(vm, bn, b, &bl, &bs, loc);
        if (kb < 0) {
            bk_release(wl);
            bk_release(ws);
            return NULL;
        }
        if (kb == 0) bl = bk_retain(b); /* a bias not from a Normal guide: fixed */
    }
    int64_t shape[BK_MAXDIM];
    memcpy(shape, h->shape, sizeof(int64_t) * (size_t)h->ndim);
    shape[h->ndim - 1] = w->shape[1];
    bk_tensor *eps = bk_place_nd(vm->bk, bk_rand_normal(vm->bk, &vm->rng, h->ndim, shape));
    bk_tensor *r = eps ? nn_lr_linear(vm->bk, h, wl, ws, bl, bs, eps) : NULL;
    if (!r) rt_fail_bk(vm, loc);
    bk_release(eps);
    bk_release(wl);
    bk_release(ws);
    bk_release(bl);
    bk_release(bs);
    return r;
}

static bk_tensor *bayes_affine(rt_vm *vm, const bn_net *m, int i, bk_tensor *h, rt_loc loc) {
    char wn[320], bn[320];
    int64_t in = m->sizes[i], out = m->sizes[i + 1];
    site_name(m, i, "weight", wn, sizeof wn);
    site_name(m, i, "bias", bn, sizeof bn);
    bk_tensor *w = draw_weights(vm, wn, m->prior, 2, (int64_t[]){in, out}, loc);
    bk_tensor *b = w && m->bias ? draw_weights(vm, bn, m->bias_prior, 1, &out, loc) : NULL;
    bk_tensor *r = NULL;
    if (w && (b || !m->bias)) {
        if (m->local_reparam && bk_grad_enabled(vm->bk)) {
            r = lr_affine(vm, m, i, h, w, b, loc);
        } else if (!(r = nn_linear(vm->bk, h, w, b))) {
            rt_fail_bk(vm, loc);
        }
    }
    bk_release(w);
    bk_release(b);
    return r;
}

/* net(x) in a model */
static int net_call(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", NULL};
    if (rt_check_args(vm, c, 1, names)) return -1;
    const bn_net *m = ((rt_opaque *)c->self.u.o)->data;
    bk_tensor *x;
    if (rt_arg_tensor(vm, c, 0, "x", true, &x)) return -1;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != m->sizes[0]) {
        char s[64];
        return rt_error_arg(vm, c, 0, "%s: the input has shape %s; its last dimension must be %lld", m->name,
                            bk_shape_str(x, s, sizeof s), (long long)m->sizes[0]);
    }
    bk_tensor *h = bk_retain(x);
    for (int i = 0; i < m->nlin && h; i++) {
        bk_tensor *y = bayes_affine(vm, m, i, h, c->loc);
        bk_release(h);
        if (!(h = y)) break;
        bool last = i == m->nlin - 1;
        y = nn_activate(vm->bk, last ? m->out_act : m->act, last ? m->out_k : m->act_k, h);
        bk_release(h);
        if (!(h = y)) rt_fail_bk(vm, c->loc);
    }
    if (!h) return -1;
    *out = rt_tensor(h);
    return 0;
}

/* ---------------------------------------------------------------- guide --- */

/* The means start at the weights MLP(name, sizes) would start at: the
 * same stream per name (nn_name_stream). */
static bk_tensor *initial_loc(rt_vm *vm, const bn_guide *g, const char *site, int nd, const int64_t *shape, int act) {
    if (nd == 1) return bk_zeros(vm->bk, BK_F64, 1, shape);
    bk_rng r;
    bk_rng_init(&r, g->seed, nn_name_stream(site));
    int init = g->init;
    if (init == BN_INIT_AUTO)
        init = act == NN_ACT_RELU || act == NN_ACT_ELU || act == NN_ACT_LEAKY_RELU ? BN_INIT_KAIMING : BN_INIT_XAVIER;
    return init == BN_INIT_KAIMING ? nn_init_kaiming(vm->bk, &r, shape[0], shape[1], sqrt(2.0))
                                   : nn_init_xavier(vm->bk, &r, shape[0], shape[1], 1.0);
}

/* The value of guide parameter pname (created from init() when missing),
 * read through a param message. */
static bk_tensor *guide_param(rt_vm *vm, const bn_guide *g, const char *pname, const char *site, int ckind, int nd,
                              const int64_t *shape, int act, rt_loc loc) {
    sl_constraint con = {.kind = ckind};
    rt_param *p = rt_param_find(vm, pname);
    if (!p) {
        bool gr = bk_set_grad_enabled(vm->bk, false);
        bk_tensor *init = ckind == SL_C_POSITIVE ? bk_full(vm->bk, BK_F64, nd, shape, g->init_scale)
                                                 : initial_loc(vm, g, site, nd, shape, act);
        p = init ? rt_param_create(vm, pname, init, &con, loc) : NULL;
        if (!init) rt_fail_bk(vm, loc);
        bk_release(init);
        bk_set_grad_enabled(vm->bk, gr);
        if (!p) return NULL;
    } else if (p->ndim != nd || memcmp(p->shape, shape, sizeof(int64_t) * (size_t)nd) != 0) {
        char want[64];
        rt_error_loc(vm, loc, "parameter \"%s\" already exists with another shape; the guide needs %s (give the "
                     "network another name, or clear_params())", pname, bk_dims_str(nd, shape, want, sizeof want));
        return NULL;
    }
    rt_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.kind = RT_SITE_PARAM;
    msg.name = pname;
    msg.scale = 1.0;
    msg.loc = loc;
    msg.constraint = &con;
    if (rt_apply_message(vm, &msg)) return NULL;
    return msg.value;
}

/* One weight or bias site drawn from Normal(loc, scale).to_event(nd). */
static int guide_site(rt_vm *vm, const bn_guide *g, const char *site, int nd, const int64_t *shape, int act,
                      rt_loc loc) {
    char ln[400], sn[400];
    snprintf(ln, sizeof ln, "%s.locs.%s", g->prefix, site);
    snprintf(sn, sizeof sn, "%s.scales.%s", g->prefix, site);
    bk_tensor *mu = guide_param(vm, g, ln, site, SL_C_REAL, nd, shape, act, loc);
    bk_tensor *sd = mu ? guide_param(vm, g, sn, site, SL_C_POSITIVE, nd, shape, act, loc) : NULL;
    sl_dist *n = sd ? sl_dist_make(vm->bk, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){mu, sd}) : NULL;
    sl_dist *d = n ? sl_to_event(vm->bk, n, nd) : NULL;
    if (sd && !d) rt_fail_bk(vm, loc);
    bk_release(mu);
    bk_release(sd);
    sl_dist_release(n);
    if (!d) return -1;
    bk_tensor *v = sample_site(vm, site, d, nd, shape, loc);
    sl_dist_release(d);
    bk_release(v);
    return v ? 0 : -1;
}

/* q() in a guide */
static int guide_call(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {NULL};
    if (rt_check_args(vm, c, 0, names)) return -1;
    const bn_guide *g = ((rt_opaque *)c->self.u.o)->data;
    const bn_net *m = g->net;
    char site[320];
    for (int i = 0; i < m->nlin; i++) {
        int64_t in = m->sizes[i], o = m->sizes[i + 1];
        int act = i == m->nlin - 1 ? m->out_act : m->act;
        site_name(m, i, "weight", site, sizeof site);
        if (guide_site(vm, g, site, 2, (int64_t[]){in, o}, act, c->loc)) return -1;
        site_name(m, i, "bias", site, sizeof site);
        if (m->bias && guide_site(vm, g, site, 1, &o, act, c->loc)) return -1;
    }
    *out = rt_none();
    return 0;
}

/* --------------------------------------------------------- construction --- */

/* A prior argument: a univariate distribution over the real line
 * (retained into *out), or dflt when absent. */
static int prior_arg(rt_vm *vm, const rt_call *c, const char *kw, sl_dist *dflt, sl_dist **out) {
    const rt_value *v = rt_arg(c, -1, kw);
    *out = NULL;
    if (!v || v->tag == RT_NONE) {
        dflt->h.refcount++;
        *out = dflt;
        return 0;
    }
    if (v->tag != RT_DIST)
        return rt_error_kw(vm, c, kw, "%s: %s must be a distribution such as Normal(0, 1), got a %s", c->name, kw,
                           rt_type_name(*v));
    sl_dist *d = (sl_dist *)v->u.o;
    if (d->nevent != 0)
        return rt_error_kw(vm, c, kw, "%s: %s must be univariate (it is applied to each weight independently); "
                           "%s has event shape of %d dimension%s", c->name, kw, d->fam->name, d->nevent,
                           d->nevent == 1 ? "" : "s");
    sl_constraint sup = {0};
    if (sl_support(vm->bk, d, &sup)) return rt_error_bk(vm, c);
    int kind = sup.kind;
    sl_constraint_clear(&sup);
    if (kind != SL_C_REAL)
        return rt_error_kw(vm, c, kw, "%s: %s must be a distribution over the real line (weights are real); %s "
                           "has support %s", c->name, kw, d->fam->name, sl_constraint_name(kind));
    d->h.refcount++;
    *out = d;
    return 0;
}

/* The priors must broadcast to every layer's weight / bias shape. */
static int check_prior_shapes(rt_vm *vm, const rt_call *c, const bn_net *m) {
    char site[320], a[64], b[64];
    for (int i = 0; i < m->nlin; i++) {
        int64_t shape[2] = {m->sizes[i], m->sizes[i + 1]};
        for (int k = 0; k < (m->bias ? 2 : 1); k++) {
            const sl_dist *p = k == 0 ? m->prior : m->bias_prior;
            int nd = k == 0 ? 2 : 1;
            sl_dist *e = sl_expand(vm->bk, p, nd, k == 0 ? shape : shape + 1);
            if (e) {
                sl_dist_release(e);
                continue;
            }
            bk_clearerr(vm->bk);
            site_name(m, i, k == 0 ? "weight" : "bias", site, sizeof site);
            bool own = k == 1 && rt_arg(c, -1, "bias_prior");
            const char *kw = own ? "bias_prior" : "prior";
            return rt_error_kw(vm, c, kw, "%s: the %s's batch shape %s does not broadcast to the shape %s of "
                               "site \"%s\"%s", c->name, kw, bk_dims_str(p->nbatch, p->batch, a, sizeof a),
                               bk_dims_str(nd, k == 0 ? shape : shape + 1, b, sizeof b), site,
                               k == 1 && !own ? " (give the biases their own bias_prior=)" : "");
        }
    }
    return 0;
}

/* Normal(0, 1), the default prior. */
static sl_dist *standard_normal(rt_vm *vm) {
    bk_tensor *z = bk_scalar(vm->bk, 0.0), *o = bk_scalar(vm->bk, 1.0);
    sl_dist *d = z && o ? sl_dist_make(vm->bk, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){z, o}) : NULL;
    bk_release(z);
    bk_release(o);
    return d;
}

/* Common keywords (prior, bias_prior, bias, local_reparam); wraps m. */
static int finish_net(rt_vm *vm, const rt_call *c, bn_net *m, rt_value *out) {
    double bias, lr;
    sl_dist *dflt = standard_normal(vm);
    int rc = dflt ? 0 : rt_error_bk(vm, c);
    if (rc == 0 && !m->name) rc = rt_error(vm, c, "out of memory");
    if (rc == 0)
        rc = rt_arg_number(vm, c, -1, "bias", 1, false, &bias) ||
             rt_arg_number(vm, c, -1, "local_reparam", 0, false, &lr) || prior_arg(vm, c, "prior", dflt, &m->prior);
    if (rc == 0) rc = prior_arg(vm, c, "bias_prior", m->prior, &m->bias_prior);
    sl_dist_release(dflt);
    if (rc == 0) {
        m->bias = bias != 0;
        m->local_reparam = lr != 0;
        rc = check_prior_shapes(vm, c, m);
    }
    if (rc) {
        net_free(m);
        return -1;
    }
    rt_opaque *o = rt_opaque_new(BN_MODULE, m, net_free);
    if (!o) {
        net_free(m);
        return rt_error(vm, c, "out of memory");
    }
    o->repr = net_repr;
    rt_builtin *b = rt_builtin_new(c->name, net_call, rt_obj_value(&o->h));
    rt_release(rt_obj_value(&o->h));
    if (!b) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&b->h);
    return 0;
}

/* BayesMLP(name, sizes, activation="relu", output_activation="none",
 *          prior=Normal(0, 1), bias_prior=prior, bias=true, local_reparam=false, alpha=) */
static int b_bayes_mlp(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"name", "sizes", "activation", "output_activation", "prior", "bias_prior",
                                        "bias", "local_reparam", "alpha", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const char *name;
    bk_tensor *sizes;
    double alpha;
    if (rt_arg_string(vm, c, 0, "name", true, &name) || rt_arg_tensor(vm, c, 1, "sizes", true, &sizes)) return -1;
    if (sizes->ndim != 1 || sizes->numel < 2 || sizes->numel > BN_MAXLAYERS + 1)
        return rt_error_arg(vm, c, 1, "BayesMLP: sizes must be a list of 2 to %d layer widths like [1, 50, 1]",
                            BN_MAXLAYERS + 1);
    bn_net *m = calloc(1, sizeof *m);
    if (!m) return rt_error(vm, c, "out of memory");
    m->mlp = true;
    m->nlin = (int)sizes->numel - 1;
    for (int i = 0; i < sizes->numel; i++)
        if (nn_size_arg(vm, c, 1, "every layer width", bk_get(sizes, i), &m->sizes[i])) {
            net_free(m);
            return -1;
        }
    if (nn_act_arg(vm, c, "activation", NN_ACT_RELU, &m->act) ||
        nn_act_arg(vm, c, "output_activation", NN_ACT_NONE, &m->out_act) ||
        rt_arg_number(vm, c, -1, "alpha", nn_act_default_k(m->act), false, &alpha)) {
        net_free(m);
        return -1;
    }
    m->act_k = alpha;
    m->out_k = nn_act_default_k(m->out_act);
    m->name = strdup(name);
    return finish_net(vm, c, m, out);
}

/* BayesLinear(name, in, out, prior=Normal(0, 1), bias_prior=prior, bias=true, local_reparam=false) */
static int b_bayes_linear(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"name", "in", "out", "prior", "bias_prior", "bias", "local_reparam", NULL};
    if (rt_check_args(vm, c, 3, names)) return -1;
    const char *name;
    double in, o;
    if (rt_arg_string(vm, c, 0, "name", true, &name) || rt_arg_number(vm, c, 1, "in", 0, true, &in) ||
        rt_arg_number(vm, c, 2, "out", 0, true, &o))
        return -1;
    bn_net *m = calloc(1, sizeof *m);
    if (!m) return rt_error(vm, c, "out of memory");
    m->nlin = 1;
    if (nn_size_arg(vm, c, 1, "in", in, &m->sizes[0]) || nn_size_arg(vm, c, 2, "out", o, &m->sizes[1])) {
        net_free(m);
        return -1;
    }
    m->act = m->out_act = NN_ACT_NONE;
    m->name = strdup(name);
    return finish_net(vm, c, m, out);
}

/* BayesGuide(net, prefix="BayesGuide", init_scale=0.1, init="auto", seed=) */
static int b_bayes_guide(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"net", "prefix", "init_scale", "init", "seed", NULL};
    if (rt_check_args(vm, c, 1, names)) return -1;
    const rt_value *nv = rt_arg(c, 0, "net");
    const rt_builtin *nb = nv && nv->tag == RT_BUILTIN ? (const rt_builtin *)nv->u.o : NULL;
    const rt_opaque *no = nb && nb->fn == net_call && nb->self.tag == RT_OPAQUE ? (const rt_opaque *)nb->self.u.o
                                                                                : NULL;
    if (!no)
        return rt_error_arg(vm, c, nv ? 0 : -1, "BayesGuide: the argument must be a Bayesian network made by "
                            "BayesMLP or BayesLinear, got %s", nv ? rt_type_name(*nv) : "nothing");
    const char *prefix, *init;
    double scale, seed;
    if (rt_arg_string(vm, c, -1, "prefix", false, &prefix) ||
        rt_arg_number(vm, c, -1, "init_scale", 0.1, false, &scale) ||
        rt_arg_string(vm, c, -1, "init", false, &init) ||
        rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed))
        return -1;
    if (!(scale > 0) || !isfinite(scale))
        return rt_error_kw(vm, c, "init_scale", "BayesGuide: init_scale must be a positive number, got %g", scale);
    int ik = BN_INIT_AUTO;
    if (init && strcmp(init, "xavier") == 0) ik = BN_INIT_XAVIER;
    else if (init && strcmp(init, "kaiming") == 0) ik = BN_INIT_KAIMING;
    else if (init && strcmp(init, "auto") != 0)
        return rt_error_kw(vm, c, "init", "BayesGuide: init must be \"xavier\", \"kaiming\" or \"auto\", got \"%s\"",
                           init);
    bn_guide *g = calloc(1, sizeof *g);
    if (!g) return rt_error(vm, c, "out of memory");
    g->netv = rt_retain(*nv);
    g->net = no->data;
    g->prefix = strdup(prefix ? prefix : "BayesGuide");
    g->init_scale = scale;
    g->init = ik;
    g->seed = (uint64_t)seed;
    rt_opaque *o = g->prefix ? rt_opaque_new(BN_MODULE, g, guide_free) : NULL;
    if (!o) {
        guide_free(g);
        return rt_error(vm, c, "out of memory");
    }
    o->repr = guide_repr;
    rt_builtin *b = rt_builtin_new("BayesGuide", guide_call, rt_obj_value(&o->h));
    rt_release(rt_obj_value(&o->h));
    if (!b) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&b->h);
    return 0;
}

const rt_builtin_def sl_nn_bayes_builtins[] = {
    {"BayesMLP", b_bayes_mlp},
    {"BayesLinear", b_bayes_linear},
    {"BayesGuide", b_bayes_guide},
    {NULL, NULL},
};
