/* autoguide.c - guides: a user's guide function run under the trace
 * handler, or an automatic guide built from the model's latent sites.
 *
 * Automatic guides work in unconstrained space (as Pyro's): each latent x
 * with support C is x = T_C(u), u drawn from the guide's base family, and
 * log q(x) = log q(u) - log|det dT/du|.
 *   AutoNormal / AutoDiagonalNormal: u ~ Normal(loc, scale) per element,
 *     params "<prefix>.locs.<site>" and "<prefix>.scales.<site>".
 *   AutoMultivariateNormal: u = loc + L eps over the flattened vector,
 *     L = scale[:, None] * (strict lower part of scale_tril + I) as Pyro's;
 *     params "AutoMultivariateNormal.loc", ".scale" and ".scale_tril".
 *   AutoDelta: x = T_C(param "AutoDelta.<site>"), log q = 0 (MAP).
 *   AutoLowRankMultivariateNormal (Pyro's parameterization): u = loc +
 *     W eps_r + scale * eps_D with W = cov_factor * scale (row-wise), so
 *     Cov u = W W^T + diag(scale^2); log q by the Woodbury identity and the
 *     [rank, rank] capacitance matrix.
 *   AutoLaplaceApproximation: while svi trains, a point mass at the
 *     unconstrained param ".loc" with log q = -log|det J| (MAP of the
 *     unconstrained density, as Pyro's); svi then sets ".scale_tril" to the
 *     Cholesky factor of the inverse Hessian there (svi.c) and the guide
 *     becomes u = loc + L eps, as AutoMultivariateNormal.
 * The latent sites, their shapes and supports come from one prototype run
 * of the model (so supports whose bounds depend on other latents use the
 * prototype's bounds - documented in docs/INFERENCE.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"

void inf_guide_free(inf_guide *g) {
    if (!g) return;
    inf_latents_free(g->lat, g->nlat);
    if (g->init_values) rt_release(rt_obj_value(&g->init_values->h));
    if (g->fn) rt_release(rt_obj_value(&g->fn->h));
    free(g);
}

/* The constrained initial value of a latent under the guide's strategy. */
static bk_tensor *init_value(rt_vm *vm, const inf_guide *g, const inf_latent *L) {
    bk_ctx *c = vm->bk;
    switch (g->init) {
    case INF_INIT_SAMPLE: return bk_retain(L->proto);
    case INF_INIT_MEDIAN: {
        /* the median of 15 prior draws, as Pyro's init_to_median */
        int64_t n = 15;
        bk_tensor *draws = sl_sample(c, &vm->rng, L->dist, 1, &n);
        if (!draws) return NULL;
        int64_t per = L->proto->numel;
        bk_tensor *r = bk_empty(c, BK_F64, L->ndim, L->shape);
        double col[15];
        for (int64_t k = 0; r && k < per; k++) {
            for (int i = 0; i < 15; i++) col[i] = bk_get(draws, i * per + k);
            for (int i = 1; i < 15; i++) /* insertion sort: 15 values */
                for (int j = i; j > 0 && col[j - 1] > col[j]; j--) {
                    double t = col[j];
                    col[j] = col[j - 1];
                    col[j - 1] = t;
                }
            bk_data(r)[k] = col[7];
        }
        bk_release(draws);
        return bk_place_nd(c, r); /* the medians, on the run's device */
    }
    case INF_INIT_VALUE: {
        rt_value *v = g->init_values ? rt_record_get(g->init_values, L->name) : NULL;
        if (v && v->tag == RT_TENSOR) return bk_expand(c, v->u.t, L->ndim, L->shape);
        return NULL; /* not given: feasible */
    }
    default: return NULL;
    }
}

/* Discover the model's latent sites from a prototype run, and their
 * initial unconstrained values. */
static int discover(rt_vm *vm, inf_guide *g, const rt_record *data, rt_loc loc) {
    if (inf_latents_discover(vm, g->fn, data, loc, "write a guide for it or marginalize it out", &g->lat,
                             &g->nlat, &g->dim))
        return -1;
    bool grad = bk_set_grad_enabled(vm->bk, false);
    int rc = 0;
    for (int i = 0; i < g->nlat && rc == 0; i++) {
        inf_latent *L = &g->lat[i];
        bk_tensor *x = init_value(vm, g, L);
        bk_tensor *u = x ? sl_to_unconstrained(vm->bk, &L->support, x) : NULL;
        bk_release(x);
        if (u) {
            bk_tensor *r = bk_reshape(vm->bk, u, L->undim, L->ushape);
            bk_release(u);
            u = r;
        }
        bool finite = u != NULL;
        for (int64_t k = 0; u && k < u->numel; k++)
            if (!isfinite(bk_get(u, k))) finite = false;
        if (!finite) {
            /* feasible: the middle of the support (unconstrained zero) */
            bk_release(u);
            bk_clearerr(vm->bk);
            u = bk_place_nd(vm->bk, bk_zeros(vm->bk, BK_F64, L->undim, L->ushape));
        }
        L->init_u = u;
        if (!u) rc = rt_fail_bk(vm, loc);
    }
    bk_set_grad_enabled(vm->bk, grad);
    if (rc == 0) g->ready = true;
    return rc;
}

/* Get or create a parameter with constraint c from a constrained initial
 * value; returns its constrained value (recorded on the tape). */
static bk_tensor *guide_param_c(rt_vm *vm, const char *name, bk_tensor *init, const sl_constraint *c, rt_loc loc) {
    rt_param *p = rt_param_find(vm, name);
    if (!p) {
        bool g = bk_set_grad_enabled(vm->bk, false);
        p = rt_param_create(vm, name, init, c, loc);
        bk_set_grad_enabled(vm->bk, g);
        if (!p) return NULL;
    } else if (p->ndim != init->ndim || memcmp(p->shape, init->shape, sizeof(int64_t) * (size_t)init->ndim) != 0) {
        rt_error_loc(vm, loc, "parameter \"%s\" exists with another shape (left by another model's guide? "
                     "clear_params() first)", name);
        return NULL;
    }
    bk_tensor *v = rt_param_value(vm, p);
    if (!v) rt_fail_bk(vm, loc);
    return v;
}

static bk_tensor *guide_param(rt_vm *vm, const char *name, bk_tensor *init, int ckind, rt_loc loc) {
    sl_constraint c = {.kind = ckind};
    return guide_param_c(vm, name, init, &c, loc);
}

static int add_site(rt_vm *vm, rt_trace *tr, const char *name, bk_tensor *value, bk_tensor *lp,
                    rt_loc loc) {
    if (tr->n == tr->cap) {
        int cap = tr->cap ? tr->cap * 2 : 16;
        rt_site *s = realloc(tr->sites, cap * sizeof *s);
        if (!s) return rt_fail(vm, 5, loc, "out of memory");
        tr->sites = s;
        tr->cap = cap;
    }
    rt_site *s = &tr->sites[tr->n];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    if (!s->name) return rt_fail(vm, 5, loc, "out of memory");
    tr->n++;
    s->kind = RT_SITE_SAMPLE;
    s->value = value;
    s->log_prob = lp;
    s->scale = 1.0;
    s->loc = loc;
    return 0;
}

static const double HALF_LOG_2PI = 0.91893853320467274178;

/* u ~ Normal(loc, scale) elementwise: returns u (rsample), sets *lq. */
static bk_tensor *normal_rsample(rt_vm *vm, bk_tensor *loc_, bk_tensor *scale, bk_tensor **lq) {
    bk_ctx *c = vm->bk;
    bk_tensor *eps = bk_place_nd(c, bk_rand_normal(c, &vm->rng, loc_->ndim, loc_->shape));
    bk_tensor *se = eps ? bk_mul(c, scale, eps) : NULL;
    bk_tensor *u = se ? bk_add(c, loc_, se) : NULL;
    /* log q(u) = sum(-eps^2/2 - log scale - log sqrt(2 pi)) */
    bk_tensor *e2 = eps ? bk_mul(c, eps, eps) : NULL;
    bk_tensor *ls = bk_unop(c, BK_OP_LOG, scale);
    bk_tensor *a = e2 ? bk_mul_s(c, e2, -0.5) : NULL;
    bk_tensor *b = (a && ls) ? bk_sub(c, a, ls) : NULL;
    bk_tensor *s = b ? bk_sum_all(c, b) : NULL;
    *lq = s ? bk_add_s(c, s, -HALF_LOG_2PI * (double)loc_->numel) : NULL;
    bk_release(eps);
    bk_release(se);
    bk_release(e2);
    bk_release(ls);
    bk_release(a);
    bk_release(b);
    bk_release(s);
    if (!*lq) {
        bk_release(u);
        return NULL;
    }
    return u;
}

/* x = T(u) and the site's log q = lq_u - log|det J|. */
static int emit(rt_vm *vm, rt_trace *tr, const inf_latent *L, bk_tensor *u, bk_tensor *lq_u, rt_loc loc) {
    bk_tensor *ld = NULL;
    bk_tensor *x = sl_to_constrained(vm->bk, &L->support, u, L->ndim, L->shape, lq_u ? &ld : NULL);
    if (!x) return rt_fail_bk(vm, loc);
    bk_tensor *lq = NULL;
    if (lq_u) {
        lq = bk_sub(vm->bk, lq_u, ld);
        bk_release(ld);
        if (!lq) {
            bk_release(x);
            return rt_fail_bk(vm, loc);
        }
    } else {
        lq = bk_scalar(vm->bk, 0.0);
    }
    if (add_site(vm, tr, L->name, x, lq, loc)) {
        bk_release(x);
        bk_release(lq);
        return -1;
    }
    return 0;
}

static int run_normal(rt_vm *vm, inf_guide *g, rt_trace *tr, rt_loc loc) {
    char name[512];
    for (int i = 0; i < g->nlat; i++) {
        inf_latent *L = &g->lat[i];
        bk_tensor *z = bk_retain(L->init_u);
        bk_tensor *s0 = bk_full(vm->bk, BK_F64, L->undim, L->ushape, g->init_scale);
        snprintf(name, sizeof name, "%s.locs.%s", g->prefix, L->name);
        bk_tensor *loc_ = z ? guide_param(vm, name, z, SL_C_REAL, loc) : NULL;
        snprintf(name, sizeof name, "%s.scales.%s", g->prefix, L->name);
        bk_tensor *scale = (loc_ && s0) ? guide_param(vm, name, s0, SL_C_POSITIVE, loc) : NULL;
        bk_release(z);
        bk_release(s0);
        bk_tensor *lq = NULL, *u = NULL;
        if (scale) u = normal_rsample(vm, loc_, scale, &lq);
        bk_release(loc_);
        bk_release(scale);
        if (!u) return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
        int rc = emit(vm, tr, L, u, lq, loc);
        bk_release(u);
        bk_release(lq);
        if (rc) return -1;
    }
    return 0;
}

/* AutoDelta: a point mass at a parameter that lives in the site's support
 * (MAP in constrained space, as Pyro's), log q = 0. */
static int run_delta(rt_vm *vm, inf_guide *g, rt_trace *tr, rt_loc loc) {
    char name[512];
    for (int i = 0; i < g->nlat; i++) {
        inf_latent *L = &g->lat[i];
        bk_tensor *x0 = sl_to_constrained(vm->bk, &L->support, L->init_u, L->ndim, L->shape, NULL);
        bk_tensor *x0d = x0 ? bk_detach(vm->bk, x0) : NULL;
        bk_release(x0);
        snprintf(name, sizeof name, "%s.%s", g->prefix, L->name);
        bk_tensor *x = x0d ? guide_param_c(vm, name, x0d, &L->support, loc) : NULL;
        bk_release(x0d);
        if (!x) return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
        bk_tensor *zero = bk_scalar(vm->bk, 0.0);
        if (!zero || add_site(vm, tr, L->name, x, zero, loc)) {
            bk_release(x);
            bk_release(zero);
            return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
        }
    }
    return 0;
}

/* Split the flattened unconstrained vector u into the sites; the joint log
 * q(u) goes on the first site (each site also gets its -log|det J|).
 * Takes over u and lq; either NULL (an op failed) fails with that error. */
static int split_emit(rt_vm *vm, inf_guide *g, rt_trace *tr, bk_tensor *u, bk_tensor *lq, rt_loc loc) {
    bk_ctx *c = vm->bk;
    if (!u || !lq) {
        bk_release(u);
        bk_release(lq);
        return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
    }
    int rc = 0;
    for (int i = 0; i < g->nlat && rc == 0; i++) {
        inf_latent *L = &g->lat[i];
        bk_idx sl = {.kind = BK_IDX_SLICE, .start = L->offset, .stop = L->offset + L->unumel, .step = 1};
        bk_tensor *part = bk_index(c, u, 1, &sl);
        bk_tensor *ui = part ? bk_reshape(c, part, L->undim, L->ushape) : NULL;
        bk_release(part);
        if (!ui) {
            rc = rt_fail_bk(vm, loc);
            break;
        }
        bk_tensor *zero = bk_scalar(c, 0.0);
        rc = emit(vm, tr, L, ui, i == 0 ? lq : zero, loc);
        bk_release(zero);
        bk_release(ui);
    }
    bk_release(u);
    bk_release(lq);
    return rc;
}

/* The guide parameter <prefix>.loc [D], first set to the latents'
 * initial values, flattened (unconstrained); NULL + error on failure. */
static bk_tensor *loc_param(rt_vm *vm, const inf_guide *g, rt_loc loc) {
    int64_t D = g->dim;
    char name[256];
    snprintf(name, sizeof name, "%s.loc", g->prefix);
    bk_tensor *z = bk_zeros(vm->bk, BK_F64, 1, &D);
    for (int i = 0; z && i < g->nlat; i++)
        bk_copy_out(g->lat[i].init_u, bk_data(z) + g->lat[i].offset);
    bk_tensor *mu = z ? guide_param(vm, name, z, SL_C_REAL, loc) : NULL;
    bk_release(z);
    return mu;
}

/* u = loc + L eps over the flattened latent vector (AutoMultivariateNormal,
 * and AutoLaplaceApproximation once fitted: there scale_tril must exist). */
static int run_mvn(rt_vm *vm, inf_guide *g, rt_trace *tr, rt_loc loc) {
    bk_ctx *c = vm->bk;
    int64_t D = g->dim;
    bk_tensor *mu = loc_param(vm, g, loc);
    bk_tensor *l0 = bk_place_nd(c, bk_eye(c, D)); /* constants on the run's device */
    bk_tensor *l0s = l0 ? bk_mul_s(c, l0, g->init_scale) : NULL;
    char name[256];
    snprintf(name, sizeof name, "%s.scale_tril", g->prefix);
    bk_tensor *Lt = NULL;
    if (g->kind == INF_GUIDE_LAPLACE) {
        if (mu && !rt_param_find(vm, name))
            rt_error_loc(vm, loc, "AutoLaplaceApproximation: no %s yet; fit the guide with svi(...) first", name);
        else if (mu && l0s) Lt = guide_param(vm, name, l0s, SL_C_LOWER_CHOLESKY, loc);
    } else if (mu && l0) {
        /* Pyro's parameterization: L = scale[:, None] * (strict lower part of
         * scale_tril + I), so every step changes the factor relative to its
         * row's scale (a plain lower_cholesky moves the off-diagonal entries
         * in absolute units, slow for tight posteriors) */
        bk_tensor *P = guide_param(vm, name, l0, SL_C_REAL, loc);
        char sname[256];
        snprintf(sname, sizeof sname, "%s.scale", g->prefix);
        bk_tensor *s0 = P ? bk_full(c, BK_F64, 1, &D, g->init_scale) : NULL;
        bk_tensor *sc = s0 ? guide_param(vm, sname, s0, SL_C_POSITIVE, loc) : NULL;
        bk_tensor *mask = sc ? bk_zeros(c, BK_F64, 2, (int64_t[]){D, D}) : NULL;
        for (int64_t i = 0; mask && i < D; i++)
            for (int64_t j = 0; j < i; j++) bk_data(mask)[i * D + j] = 1.0;
        mask = bk_place_nd(c, mask);
        bk_tensor *PM = mask ? bk_mul(c, P, mask) : NULL;
        bk_tensor *U = PM ? bk_add(c, PM, l0) : NULL;
        bk_tensor *scol = U ? bk_reshape(c, sc, 2, (int64_t[]){D, 1}) : NULL;
        Lt = scol ? bk_mul(c, U, scol) : NULL;
        bk_release(P);
        bk_release(s0);
        bk_release(sc);
        bk_release(mask);
        bk_release(PM);
        bk_release(U);
        bk_release(scol);
    }
    bk_release(l0);
    bk_release(l0s);
    if (!Lt) {
        bk_release(mu);
        return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
    }
    bk_tensor *eps = bk_place_nd(c, bk_rand_normal(c, &vm->rng, 1, &D));
    bk_tensor *Le = eps ? bk_matmul(c, Lt, eps) : NULL;
    bk_tensor *u = Le ? bk_add(c, mu, Le) : NULL;
    /* log q(u) = -|eps|^2/2 - sum log diag L - D log sqrt(2 pi) */
    bk_tensor *lq = NULL;
    if (u) {
        /* sum log diag L, with diag(L) = rowsum(L * I) */
        bk_tensor *I = bk_place_nd(c, bk_eye(c, D));
        bk_tensor *LI = I ? bk_mul(c, Lt, I) : NULL;
        bk_tensor *diag = LI ? bk_reduce(c, BK_OP_SUM, LI, 1, false) : NULL;
        bk_tensor *ld = diag ? bk_unop(c, BK_OP_LOG, diag) : NULL;
        bk_tensor *sld = ld ? bk_sum_all(c, ld) : NULL;
        bk_tensor *e2 = bk_mul(c, eps, eps);
        bk_tensor *se2 = e2 ? bk_sum_all(c, e2) : NULL;
        bk_tensor *h = se2 ? bk_mul_s(c, se2, -0.5) : NULL;
        bk_tensor *t = (h && sld) ? bk_sub(c, h, sld) : NULL;
        lq = t ? bk_add_s(c, t, -HALF_LOG_2PI * (double)D) : NULL;
        bk_release(I);
        bk_release(LI);
        bk_release(diag);
        bk_release(ld);
        bk_release(sld);
        bk_release(e2);
        bk_release(se2);
        bk_release(h);
        bk_release(t);
    }
    bk_release(eps);
    bk_release(Le);
    bk_release(mu);
    bk_release(Lt);
    return split_emit(vm, g, tr, u, lq, loc);
}

/* AutoLowRankMultivariateNormal, parameterized as Pyro's. */
static int run_lowrank(rt_vm *vm, inf_guide *g, rt_trace *tr, rt_loc loc) {
    bk_ctx *c = vm->bk;
    int64_t D = g->dim, R = g->rank > 0 ? g->rank : (int64_t)ceil(sqrt((double)D));
    if (R < 1) R = 1;
    char name[256];
    bk_tensor *cf = NULL, *sc = NULL, *mu = loc_param(vm, g, loc);
    snprintf(name, sizeof name, "%s.cov_factor", g->prefix);
    if (mu) {
        bk_tensor *w0 = NULL;
        if (!rt_param_find(vm, name)) { /* N(0, 1/sqrt(rank)) entries, drawn once */
            bk_tensor *e = bk_place_nd(c, bk_rand_normal(c, &vm->rng, 2, (int64_t[]){D, R}));
            w0 = e ? bk_mul_s(c, e, 1 / sqrt((double)R)) : NULL;
            bk_release(e);
        } else {
            w0 = bk_zeros(c, BK_F64, 2, (int64_t[]){D, R}); /* unused: the parameter exists */
        }
        cf = w0 ? guide_param(vm, name, w0, SL_C_REAL, loc) : NULL;
        bk_release(w0);
    }
    snprintf(name, sizeof name, "%s.scale", g->prefix);
    if (cf) {
        bk_tensor *s0 = bk_full(c, BK_F64, 1, &D, sqrt(0.5) * g->init_scale);
        sc = s0 ? guide_param(vm, name, s0, SL_C_POSITIVE, loc) : NULL;
        bk_release(s0);
    }
    if (!sc) {
        bk_release(mu);
        bk_release(cf);
        return vm->errs.n ? -1 : rt_fail_bk(vm, loc);
    }
    /* W = cov_factor * scale[:, None], d = scale^2 */
    bk_tensor *scol = bk_reshape(c, sc, 2, (int64_t[]){D, 1});
    bk_tensor *W = scol ? bk_mul(c, cf, scol) : NULL;
    bk_tensor *d = bk_mul(c, sc, sc);
    bk_tensor *e1 = bk_place_nd(c, bk_rand_normal(c, &vm->rng, 1, &R));
    bk_tensor *e2 = bk_place_nd(c, bk_rand_normal(c, &vm->rng, 1, &D));
    bk_tensor *We = (W && e1) ? bk_matmul(c, W, e1) : NULL;
    bk_tensor *se = e2 ? bk_mul(c, sc, e2) : NULL;
    bk_tensor *r = (We && se) ? bk_add(c, We, se) : NULL; /* u - loc */
    bk_tensor *u = r ? bk_add(c, mu, r) : NULL;
    /* log N(u; loc, W W^T + diag d): with C = I + W^T diag(1/d) W = L L^T,
     * maha = r^T r/d - |L^-1 W^T (r/d)|^2 and log det = 2 sum log diag L + sum log d */
    bk_tensor *rd = r && d ? bk_div(c, r, d) : NULL;
    bk_tensor *Wt = W ? bk_transpose(c, W, 0, 1) : NULL;
    bk_tensor *dcol = d ? bk_reshape(c, d, 2, (int64_t[]){D, 1}) : NULL;
    bk_tensor *Wd = (W && dcol) ? bk_div(c, W, dcol) : NULL;
    bk_tensor *WtWd = (Wt && Wd) ? bk_matmul(c, Wt, Wd) : NULL;
    bk_tensor *I = bk_place_nd(c, bk_eye(c, R));
    bk_tensor *C = (WtWd && I) ? bk_add(c, WtWd, I) : NULL;
    bk_tensor *L = C ? bk_cholesky(c, C) : NULL;
    bk_tensor *a = (Wt && rd) ? bk_matmul(c, Wt, rd) : NULL;
    bk_tensor *y = (L && a) ? bk_solve_triangular(c, L, a, false) : NULL;
    bk_tensor *rr = (r && rd) ? bk_mul(c, r, rd) : NULL;
    bk_tensor *t1 = rr ? bk_sum_all(c, rr) : NULL;
    bk_tensor *yy = y ? bk_mul(c, y, y) : NULL;
    bk_tensor *t2 = yy ? bk_sum_all(c, yy) : NULL;
    bk_tensor *maha = (t1 && t2) ? bk_sub(c, t1, t2) : NULL;
    bk_tensor *LI = (L && I) ? bk_mul(c, L, I) : NULL;
    bk_tensor *dg = LI ? bk_reduce(c, BK_OP_SUM, LI, 1, false) : NULL;
    bk_tensor *ldg = dg ? bk_unop(c, BK_OP_LOG, dg) : NULL;
    bk_tensor *sl = ldg ? bk_sum_all(c, ldg) : NULL;
    bk_tensor *lsc = bk_unop(c, BK_OP_LOG, sc);
    bk_tensor *sls = lsc ? bk_sum_all(c, lsc) : NULL;
    bk_tensor *half = (sl && sls) ? bk_add(c, sl, sls) : NULL; /* log det / 2 */
    bk_tensor *hm = maha ? bk_mul_s(c, maha, -0.5) : NULL;
    bk_tensor *t = (hm && half) ? bk_sub(c, hm, half) : NULL;
    bk_tensor *lq = t ? bk_add_s(c, t, -HALF_LOG_2PI * (double)D) : NULL;
    bk_tensor *tmp[] = {mu, cf, sc, scol, W, d, e1, e2, We, se, r, rd, Wt, dcol, Wd, WtWd, I, C, L, a, y, rr,
                        t1, yy, t2, maha, LI, dg, ldg, sl, lsc, sls, half, hm, t};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) bk_release(tmp[i]);
    return split_emit(vm, g, tr, u, lq, loc);
}

/* AutoLaplaceApproximation while training: a point mass at the
 * unconstrained loc; log q = -log|det J| per site (emit subtracts it). */
static int run_laplace_delta(rt_vm *vm, inf_guide *g, rt_trace *tr, rt_loc loc) {
    bk_ctx *c = vm->bk;
    bk_tensor *mu = loc_param(vm, g, loc);
    bk_tensor *zero = mu ? bk_scalar(c, 0.0) : NULL;
    return split_emit(vm, g, tr, mu, zero, loc);
}

int inf_guide_prepare(rt_vm *vm, inf_guide *g, const rt_record *data, rt_loc loc) {
    if (g->kind == INF_GUIDE_USER || g->ready) return 0;
    return discover(vm, g, data, loc);
}

int inf_guide_run(rt_vm *vm, inf_guide *g, const rt_record *data, rt_loc loc, rt_trace *tr) {
    if (g->kind == INF_GUIDE_USER) {
        rt_handler ht;
        rt_handler_trace(&ht, tr);
        if (rt_push_handler(vm, &ht)) return rt_fail(vm, 5, loc, "out of memory");
        rt_value ret = rt_none();
        int rc = rt_call_with_data(vm, g->fn, data, loc, &ret);
        rt_pop_handler(vm, &ht);
        rt_release(ret);
        return rc;
    }
    if (!g->ready && discover(vm, g, data, loc)) return -1;
    switch (g->kind) {
    case INF_GUIDE_NORMAL:
    case INF_GUIDE_DIAG: return run_normal(vm, g, tr, loc);
    case INF_GUIDE_MVN: return run_mvn(vm, g, tr, loc);
    case INF_GUIDE_DELTA: return run_delta(vm, g, tr, loc);
    case INF_GUIDE_LOWRANK: return run_lowrank(vm, g, tr, loc);
    case INF_GUIDE_LAPLACE: return g->gaussian ? run_mvn(vm, g, tr, loc) : run_laplace_delta(vm, g, tr, loc);
    }
    return -1;
}
