/* dist_delta.c - Delta(v, log_density=0, event_dim=0): all mass at v.
 * variant holds event_dim (how many rightmost dims of v are the event). */
#include <math.h>
#include <string.h>
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *v = d->p[0];
    int e = d->variant;
    if (e < 0 || e > v->ndim) {
        bk_seterr(ctx, "Delta: event_dim must be between 0 and the number of dims of v (%d), got %d",
                  v->ndim, e);
        *bad = 2;
        return -1;
    }
    int ev[2] = {e, 0};
    if (sl_shape_broadcast(ctx, d, ev, bad)) return -1;
    d->nevent = e;
    memcpy(d->event, v->shape + (v->ndim - e), e * sizeof *d->event);
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"v", "log_density", "event_dim", NULL};
    sl_bindinfo b;
    double e;
    if (rt_check_args(a->vm, a->call, 3, names) || sl_bind_param(a, &b, d, 0, 0, "v", NAN) ||
        sl_bind_param(a, &b, d, 1, 1, "log_density", 0.0) ||
        rt_arg_number(a->vm, a->call, 2, "event_dim", 0, false, &e))
        return -1;
    if (e != floor(e) || e < 0 || e > BK_MAXDIM)
        return rt_error(a->vm, a->call, "Delta: event_dim must be a non-negative integer, got %g", e);
    d->variant = (int)e;
    b.pos[2] = a->call->nargs > 2 ? 2 : -1;
    b.kw[2] = b.pos[2] < 0 ? "event_dim" : NULL;
    return sl_build_finish(a, &b, d);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *eq = s_bin(&s, BK_OP_EQ, x, d->p[0]);
    for (int i = 0; i < d->variant; i++) eq = s_red(&s, BK_OP_MIN, eq, -1, false);
    return s_done(&s, s_guard(&s, eq, d->p[1]));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0) {
        bk_seterr(ctx, "Delta: sample has too many dimensions");
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_un(&s, BK_OP_CONTIGUOUS, s_expand(&s, d->p[0], nd, shape)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }
static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    return bk_mul_s(ctx, d->p[0], 0.0);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_delta = {
    .name = "Delta", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
