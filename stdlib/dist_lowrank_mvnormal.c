/* dist_lowrank_mvnormal.c - LowRankMultivariateNormal(loc, cov_factor,
 * cov_diag): a multivariate normal with covariance W W^T + diag(D), W of
 * shape [..., n, r], D of shape [..., n], loc of shape [..., n].
 *
 * Nothing of size n x n is formed.  With the capacitance matrix
 * C = I_r + W^T D^-1 W and its Cholesky factor L_C (computed once by init
 * and kept in p[3], past np):
 *   log det Sigma = 2 sum log diag(L_C) + sum log D            (det lemma)
 *   d^T Sigma^-1 d = d^T D^-1 d - |L_C^-1 W^T D^-1 d|^2          (Woodbury)
 * rsample = loc + W eps_r + sqrt(D) eps_n, differentiable in all three. */
#include <string.h>
#include "dist_impl.h"

static const char *const FAM = "LowRankMultivariateNormal";

static int64_t dim_n(const sl_dist *d) { return d->p[0]->shape[d->p[0]->ndim - 1]; }
static int64_t dim_r(const sl_dist *d) { return d->p[1]->shape[d->p[1]->ndim - 1]; }

/* C = I + W^T D^-1 W, [..., r, r], and its Cholesky factor. */
static bk_tensor *capacitance_tril(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *W = d->p[1];
    bk_tensor *DinvW = s_div(&s, W, s_unsq(&s, d->p[2], -1));
    bk_tensor *Wt = s.err ? NULL : s_keep(&s, bk_transpose(ctx, W, -1, -2));
    bk_tensor *I = s_keep(&s, bk_eye(ctx, dim_r(d)));
    I = s.err ? NULL : s_keep(&s, bk_to_device(ctx, I, bk_tensor_device(W))); /* made on the host */
    bk_tensor *C = s_add(&s, s_matmul(&s, Wt, DinvW), I);
    bk_tensor *L = s.err ? NULL : s_keep(&s, bk_cholesky(ctx, C));
    return s_done(&s, L);
}

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *loc = d->p[0], *W = d->p[1], *D = d->p[2];
    char sh[64];
    if (loc->ndim < 1) {
        bk_seterr(ctx, "%s: loc must have at least 1 dimension", FAM);
        *bad = 0;
        return -1;
    }
    int64_t n = dim_n(d);
    if (W->ndim < 2 || W->shape[W->ndim - 2] != n || W->shape[W->ndim - 1] < 1) {
        bk_seterr(ctx, "%s: cov_factor must have shape [..., %lld, rank] with rank >= 1 to match "
                  "loc, got %s", FAM, (long long)n, bk_shape_str(W, sh, sizeof sh));
        *bad = 1;
        return -1;
    }
    if (D->ndim < 1 || D->shape[D->ndim - 1] != n) {
        bk_seterr(ctx, "%s: cov_diag must have shape [..., %lld] to match loc, got %s", FAM,
                  (long long)n, bk_shape_str(D, sh, sizeof sh));
        *bad = 2;
        return -1;
    }
    if (sl_check_param(ctx, d, 0, "loc", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 1, "cov_factor", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 2, "cov_diag", SL_V_POS, bad))
        return -1;
    static const int ev[] = {1, 2, 1};
    if (sl_shape_broadcast(ctx, d, ev, bad)) return -1;
    d->nevent = 1;
    d->event[0] = n;
    bk_tensor *L = capacitance_tril(ctx, d);
    if (!L) {
        bk_seterr(ctx, "%s: the capacitance matrix I + W^T D^-1 W is not numerically positive "
                  "definite", FAM);
        *bad = 1;
        return -1;
    }
    bk_release(d->p[3]);
    d->p[3] = L;
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"loc", "cov_factor", "cov_diag", NULL};
    if (rt_check_args(a->vm, a->call, 3, names)) return -1;
    sl_bindinfo b;
    for (int i = 0; i < 3; i++)
        if (sl_bind_param(a, &b, d, i, i, names[i], NAN)) return -1;
    d->np = 3;
    return sl_build_finish(a, &b, d);
}

/* t expanded to batch B (nb dims) + its own last `k` dims. */
static bk_tensor *batch_to(sl_scope *s, bk_tensor *t, int k, int nb, const int64_t *B) {
    if (!t || s->err) return NULL;
    int64_t sh[BK_MAXDIM];
    memcpy(sh, B, nb * sizeof *sh);
    for (int i = 0; i < k; i++) sh[nb + i] = t->shape[t->ndim - k + i];
    return s_expand(s, t, nb + k, sh);
}

/* log det Sigma, of the family batch shape. */
static bk_tensor *logdet(sl_scope *s, const sl_dist *d) {
    bk_tensor *c = s_muls(s, s_sum(s, s_log(s, s_diag(s, d->p[3])), -1, false), 2.0);
    return s_add(s, c, s_sum(s, s_log(s, d->p[2]), -1, false));
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    int64_t n = dim_n(d), B[BK_MAXDIM];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != n) {
        char sh[64];
        bk_seterr(ctx, "%s: value must have shape [..., %lld], got %s", FAM, (long long)n,
                  bk_shape_str(x, sh, sizeof sh));
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *diff = s_sub(&s, x, d->p[0]);
    if (s.err) return s_done(&s, NULL);
    int nb;
    /* the family batch is d->batch followed by the reinterpreted event dims */
    int64_t fb[BK_MAXDIM];
    int nfb = sl_fam_batch(d, fb);
    if (bk_broadcast_shapes(ctx, diff->ndim - 1, diff->shape, nfb, fb, &nb, B) ||
        nb + 2 > BK_MAXDIM)
        return s_done(&s, NULL);
    B[nb] = n;
    diff = s_expand(&s, diff, nb + 1, B);
    bk_tensor *Dinv_diff = s_div(&s, diff, d->p[2]);
    bk_tensor *t1 = s_sum(&s, s_mul(&s, diff, Dinv_diff), -1, false);
    bk_tensor *Wb = batch_to(&s, d->p[1], 2, nb, B);
    bk_tensor *Wt = s.err ? NULL : s_keep(&s, bk_transpose(ctx, Wb, -1, -2));
    bk_tensor *v = s_matmul(&s, Wt, s_unsq(&s, Dinv_diff, -1));          /* [..., r, 1] */
    bk_tensor *Lb = batch_to(&s, d->p[3], 2, nb, B);
    bk_tensor *z = s.err ? NULL : s_keep(&s, bk_solve_triangular(ctx, Lb, v, false));
    bk_tensor *t2 = s_sum(&s, s_sum(&s, s_square(&s, z), -1, false), -1, false);
    bk_tensor *maha = s_sub(&s, t1, t2);
    bk_tensor *tot = s_add(&s, maha, logdet(&s, d));
    return s_done(&s, s_adds(&s, s_muls(&s, tot, -0.5), -0.5 * (double)n * SL_LOG_2PI));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0 || nd + 1 > BK_MAXDIM) {
        bk_seterr(ctx, "%s: sample has too many dimensions", FAM);
        return NULL;
    }
    int64_t rshape[BK_MAXDIM];
    memcpy(rshape, shape, nd * sizeof *shape);
    rshape[nd - 1] = dim_r(d);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *eps_n = s_keep(&s, bk_place_nd(ctx, bk_rand_normal(ctx, rng, nd, shape)));
    bk_tensor *eps_r = s_keep(&s, bk_place_nd(ctx, bk_rand_normal(ctx, rng, nd, rshape)));
    bk_tensor *Wb = batch_to(&s, d->p[1], 2, nd - 1, shape);
    bk_tensor *y = s_sq(&s, s_matmul(&s, Wb, s_unsq(&s, eps_r, -1)), -1);
    y = s_add(&s, y, s_mul(&s, s_un(&s, BK_OP_SQRT, d->p[2]), eps_n));
    return s_done(&s, s_add(&s, y, d->p[0]));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_add(&s, s_sum(&s, s_square(&s, d->p[1]), -1, false), d->p[2]));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    double n = (double)dim_n(d);
    return s_done(&s, s_adds(&s, s_muls(&s, logdet(&s, d), 0.5), 0.5 * n * (1.0 + SL_LOG_2PI)));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_lowrank_mvnormal = {
    .name = "LowRankMultivariateNormal", .build = build, .log_prob = log_prob,
    .sample = sample, .mean = mean, .variance = variance, .entropy = entropy,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
