/* dist_mvnormal.c - MultivariateNormal(loc, covariance_matrix= |
 * precision_matrix= | scale_tril=).  Everything goes through the lower
 * Cholesky factor L (Sigma = L L^T), computed once by init and kept in
 * p[2] (past np, so it is not shown as a parameter). */
#include <string.h>
#include "dist_impl.h"

enum { V_COV = 0, V_TRIL = 1, V_PREC = 2 };
static const char *const matname[] = {"covariance_matrix", "scale_tril", "precision_matrix"};

static bk_tensor *factor(bk_ctx *ctx, const sl_dist *d) {
    bk_tensor *m = d->p[1];
    if (d->variant == V_TRIL) return bk_retain(m);
    if (d->variant == V_COV) return bk_cholesky(ctx, m);
    bk_tensor *cov = bk_inverse(ctx, m);
    if (!cov) return NULL;
    bk_tensor *L = bk_cholesky(ctx, cov);
    bk_release(cov);
    return L;
}

static int check_matrix(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *loc = d->p[0], *m = d->p[1];
    const char *mn = matname[d->variant];
    if (loc->ndim < 1) {
        bk_seterr(ctx, "MultivariateNormal: loc must have at least 1 dimension");
        *bad = 0;
        return -1;
    }
    int64_t n = loc->shape[loc->ndim - 1];
    if (m->ndim < 2 || m->shape[m->ndim - 1] != n || m->shape[m->ndim - 2] != n) {
        char sh[64];
        bk_seterr(ctx, "MultivariateNormal: %s must have shape [..., %lld, %lld] to match loc, got %s",
                  mn, (long long)n, (long long)n, bk_shape_str(m, sh, sizeof sh));
        *bad = 1;
        return -1;
    }
    if (sl_check_param(ctx, d, 0, "loc", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 1, mn, SL_V_REAL, bad))
        return -1;
    if (d->variant == V_TRIL)
        for (int64_t i = 0; i < m->numel; i++) {
            int64_t c = i % n, r = (i / n) % n;
            double v = bk_get(m, i);
            if ((r == c && !(v > 0)) || (c > r && v != 0)) {
                bk_seterr(ctx, "MultivariateNormal: scale_tril must be lower triangular with a "
                          "positive diagonal, got %g at [%lld, %lld]", v, (long long)r, (long long)c);
                *bad = 1;
                return -1;
            }
        }
    return 0;
}

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    static const int ev[] = {1, 2};
    if (check_matrix(ctx, d, bad) || sl_shape_broadcast(ctx, d, ev, bad)) return -1;
    d->nevent = 1;
    d->event[0] = d->p[0]->shape[d->p[0]->ndim - 1];
    bk_tensor *L = factor(ctx, d);
    if (!L) {
        bk_seterr(ctx, "MultivariateNormal: %s must be symmetric positive definite",
                  matname[d->variant]);
        *bad = 1;
        return -1;
    }
    bk_release(d->p[2]);
    d->p[2] = L;
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"loc", "covariance_matrix", "precision_matrix",
                                        "scale_tril", NULL};
    const rt_call *c = a->call;
    sl_bindinfo b;
    if (rt_check_args(a->vm, c, 2, names) || sl_bind_param(a, &b, d, 0, 0, "loc", NAN)) return -1;
    int given = c->nargs > 1, which = given ? V_COV : -1;
    static const int variants[] = {V_COV, V_PREC, V_TRIL};
    for (int k = 0; k < 3; k++)
        if (rt_arg(c, -1, names[k + 1])) {
            given++;
            which = variants[k];
        }
    if (given != 1)
        return rt_error(a->vm, c, "MultivariateNormal: give exactly one of covariance_matrix=, "
                        "precision_matrix= or scale_tril=");
    d->variant = which;
    if (sl_bind_param(a, &b, d, 1, which == V_COV ? 1 : -1, matname[which], NAN)) return -1;
    d->np = 2;
    return sl_build_finish(a, &b, d);
}

/* a expanded to shape (nd dims), or a itself where it has that shape: an
 * expand to the same shape would be one more op per evaluation (a copy, in
 * a recorded program) for nothing. */
static bk_tensor *expand_to(sl_scope *s, bk_tensor *a, int nd, const int64_t *shape) {
    if (s->err || !a) {
        s->err = true;
        return NULL;
    }
    if (a->ndim == nd && !memcmp(a->shape, shape, (size_t)nd * sizeof *shape)) return a;
    return s_expand(s, a, nd, shape);
}

/* L broadcast to batch shape B (nb dims) + [n, n]. */
static bk_tensor *L_for(sl_scope *s, const sl_dist *d, int nb, const int64_t *B) {
    int64_t sh[BK_MAXDIM];
    int64_t n = d->event[d->nevent - 1];
    memcpy(sh, B, nb * sizeof *sh);
    sh[nb] = n;
    sh[nb + 1] = n;
    return expand_to(s, d->p[2], nb + 2, sh);
}

static bk_tensor *half_logdet(sl_scope *s, const sl_dist *d) {
    return s_sum(s, s_log(s, s_diag(s, d->p[2])), -1, false);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    int64_t n = d->p[0]->shape[d->p[0]->ndim - 1], B[BK_MAXDIM];
    int nb;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != n) {
        char sh[64];
        bk_seterr(ctx, "MultivariateNormal: value must have shape [..., %lld], got %s",
                  (long long)n, bk_shape_str(x, sh, sizeof sh));
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *diff = s_sub(&s, x, d->p[0]);
    if (s.err) return s_done(&s, NULL);
    const bk_tensor *L = d->p[2];
    if (bk_broadcast_shapes(ctx, diff->ndim - 1, diff->shape, L->ndim - 2, L->shape, &nb, B) ||
        nb + 2 > BK_MAXDIM)
        return s_done(&s, NULL);
    B[nb] = n;
    diff = expand_to(&s, diff, nb + 1, B);
    bk_tensor *Lb = L_for(&s, d, nb, B);
    bk_tensor *z = NULL;
    /* diff [B, n] against L [B, n, n]: solve_triangular takes diff as a
     * batch of vectors (one forward substitution each), z = L^-1 diff */
    if (!s.err) z = s_keep(&s, bk_solve_triangular(ctx, Lb, diff, false));
    bk_tensor *maha = s_sum(&s, s_square(&s, z), -1, false);
    bk_tensor *lp = s_adds(&s, s_muls(&s, maha, -0.5), -0.5 * (double)n * SL_LOG_2PI);
    return s_done(&s, s_sub(&s, lp, half_logdet(&s, d)));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0 || nd + 1 > BK_MAXDIM) {
        bk_seterr(ctx, "MultivariateNormal: sample has too many dimensions");
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *eps = s_keep(&s, bk_place_nd(ctx, bk_rand_normal(ctx, rng, nd, shape)));
    bk_tensor *Lb = L_for(&s, d, nd - 1, shape);
    bk_tensor *y = s_sq(&s, s_matmul(&s, Lb, s_unsq(&s, eps, -1)), -1);
    return s_done(&s, s_add(&s, y, d->p[0]));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_sum(&s, s_square(&s, d->p[2]), -1, false));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    double n = (double)d->event[d->nevent - 1];
    return s_done(&s, s_adds(&s, half_logdet(&s, d), 0.5 * n * (1.0 + SL_LOG_2PI)));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_mvnormal = {
    .name = "MultivariateNormal", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
