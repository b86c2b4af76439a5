/* dist_hmm.c - DiscreteHMM(init, trans, emission): a hidden Markov model
 * over a whole observed sequence y[0..T-1].
 *
 *   init[k]     = p(z_0 = k)             (the state that emits y[0])
 *   trans[i, j] = p(z_t = j | z_{t-1} = i), or time-varying [T, K, K] where
 *                 trans[t] moves z_{t-1} to z_t (trans[0] is unused)
 *   emission    a distribution of batch shape [K]: p(y_t | z_t = k)
 *
 * Parameters: p[0] init, p[1] trans, p[2] optional duration (scalar; the
 * sequence length sample() draws when trans is not time-varying), p[3]
 * optional lengths [B] (a batch of B sequences padded to a common length:
 * y is [B, T] + emission event and sequence b uses its first lengths[b]
 * steps); sub[0] the emission.  variant bit 0: init_logits, bit 1:
 * trans_logits.  The event is the whole sequence: event = [T] + emission
 * event, with T = 0 when the length is only known from the observed value;
 * the batch is [B] with lengths, [] without.
 *
 * log_prob is the fused forward op (bk op hmm_forward, src/backend/
 * ops_hmm.c): a scaled forward recursion whose backward rule is the
 * forward-backward algorithm, so it is differentiable in init, trans and
 * the emission's parameters at the cost of two plain passes.
 *
 * The helpers sl_hmm_* are declared in src/infer/hmm.h (the inference code
 * that uses them); this file does not include it to keep stdlib below
 * infer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"
#include "ops_hmm.h"

enum { HMM_INIT_LOGITS = 1, HMM_TRANS_LOGITS = 2, HMM_LENGTHS = 3, HMM_EMISSION_SLOT = 4 };
/* tolerance of the "sums to 1" checks (relative to 1) */
#define HMM_SUM_TOL 1e-6

sl_dist *sl_hmm_make(bk_ctx *ctx, bk_tensor *init, bk_tensor *trans, sl_dist *emission,
                     int variant, int64_t duration);
sl_dist *sl_hmm_make_batch(bk_ctx *ctx, bk_tensor *init, bk_tensor *trans, sl_dist *emission,
                           int variant, int64_t duration, bk_tensor *lengths);
int64_t sl_hmm_nstates(const sl_dist *d);
bk_tensor *sl_hmm_log_init(bk_ctx *ctx, const sl_dist *d);
bk_tensor *sl_hmm_log_trans(bk_ctx *ctx, const sl_dist *d);
bk_tensor *sl_hmm_emission_logp(bk_ctx *ctx, const sl_dist *d, bk_tensor *y);
int64_t sl_hmm_nseq(const sl_dist *d);
int64_t sl_hmm_length(const sl_dist *d, int64_t b);
bk_tensor *sl_hmm_seq(bk_ctx *ctx, const sl_dist *d, bk_tensor *ys, int64_t b);

extern const sl_family sl_family_discretehmm;

int64_t sl_hmm_nstates(const sl_dist *d) { return d->p[0]->shape[0]; }

static bool time_varying(const sl_dist *d) { return d->p[1]->ndim == 3; }

/* Number of sequences of a batched HMM (lengths=), -1 when not batched. */
int64_t sl_hmm_nseq(const sl_dist *d) { return d->p[HMM_LENGTHS] ? d->p[HMM_LENGTHS]->numel : -1; }

int64_t sl_hmm_length(const sl_dist *d, int64_t b) {
    return (int64_t)bk_get(d->p[HMM_LENGTHS], b);
}

/* ------------------------------------------------------- validation --- */

/* Shortest text that reads back to v (as in the other families' messages). */
static void num_text(double v, char *buf, size_t n) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || isnan(v)) break;
    }
}

/* Each row of length K of t (its last axis) must sum to 1.  Computed with
 * backend ops, not a host loop: a recorded program (program.h) keeps the
 * 0/1 result as a guard, so rows made of latents (a Dirichlet draw) do not
 * stop the fast path. */
static int check_rows(bk_ctx *ctx, bk_tensor *t, int64_t K, const char *name, int *bad,
                      int slot) {
    bk_tensor *sum = bk_reduce(ctx, BK_OP_SUM, t, -1, false);
    bk_tensor *one = bk_scalar(ctx, 1.0), *tol = bk_scalar(ctx, HMM_SUM_TOL);
    bk_tensor *dev = sum && one ? bk_sub(ctx, sum, one) : NULL;
    bk_tensor *adev = dev ? bk_unop(ctx, BK_OP_ABS, dev) : NULL;
    bk_tensor *ok = adev && tol ? bk_binop(ctx, BK_OP_LE, adev, tol) : NULL;
    bk_release(one);
    bk_release(tol);
    bk_release(dev);
    bk_release(adev);
    int rc = ok ? 0 : -1;
    for (int64_t r = 0; ok && r < ok->numel; r++) {
        if (bk_get(ok, r) != 0) continue;
        char buf[32];
        num_text(bk_get(sum, r), buf, sizeof buf);
        if (t->ndim == 1)
            bk_seterr(ctx, "DiscreteHMM: %s must sum to 1, got %s", name, buf);
        else if (t->ndim == 2)
            bk_seterr(ctx, "DiscreteHMM: %s rows must sum to 1, got %s in row %lld", name,
                      buf, (long long)r);
        else
            bk_seterr(ctx, "DiscreteHMM: %s rows must sum to 1, got %s in row %lld of %s[%lld]",
                      name, buf, (long long)(r % K), name, (long long)(r / K));
        *bad = slot;
        rc = -1;
        break;
    }
    bk_release(ok);
    bk_release(sum);
    return rc;
}

static int check_init(bk_ctx *ctx, sl_dist *d, int *bad) {
    bk_tensor *p = d->p[0];
    const char *name = d->variant & HMM_INIT_LOGITS ? "init_logits" : "init";
    char buf[64];
    if (p->ndim != 1 || p->shape[0] < 1) {
        bk_seterr(ctx, "DiscreteHMM: %s must be a vector [K] with K >= 1, got shape %s", name,
                  bk_shape_str(p, buf, sizeof buf));
        *bad = 0;
        return -1;
    }
    if (d->variant & HMM_INIT_LOGITS) return sl_check_param(ctx, d, 0, name, SL_V_REAL, bad);
    if (sl_check_param(ctx, d, 0, name, SL_V_NONNEG, bad)) return -1;
    return check_rows(ctx, p, p->shape[0], name, bad, 0);
}

static int check_trans(bk_ctx *ctx, sl_dist *d, int *bad) {
    bk_tensor *p = d->p[1];
    int64_t K = sl_hmm_nstates(d);
    const char *name = d->variant & HMM_TRANS_LOGITS ? "trans_logits" : "trans";
    char buf[64];
    if ((p->ndim != 2 && p->ndim != 3) || p->shape[p->ndim - 1] != K ||
        p->shape[p->ndim - 2] != K) {
        bk_seterr(ctx, "DiscreteHMM: %s must have shape [K, K] or [T, K, K] with K = %lld "
                       "(from init), got %s",
                  name, (long long)K, bk_shape_str(p, buf, sizeof buf));
        *bad = 1;
        return -1;
    }
    if (d->variant & HMM_TRANS_LOGITS) return sl_check_param(ctx, d, 1, name, SL_V_REAL, bad);
    if (sl_check_param(ctx, d, 1, name, SL_V_NONNEG, bad)) return -1;
    return check_rows(ctx, p, K, name, bad, 1);
}

static int check_emission(bk_ctx *ctx, sl_dist *d, int *bad) {
    const sl_dist *e = d->sub[0];
    int64_t K = sl_hmm_nstates(d);
    char buf[64];
    *bad = HMM_EMISSION_SLOT;
    if (!e) {
        bk_seterr(ctx, "DiscreteHMM: missing emission distribution");
        return -1;
    }
    if (e->nbatch > 1 || (e->nbatch == 1 && e->batch[0] != K && e->batch[0] != 1)) {
        bk_seterr(ctx, "DiscreteHMM: emission must have batch shape [%lld] (one per state), "
                       "got %s",
                  (long long)K, bk_dims_str(e->nbatch, e->batch, buf, sizeof buf));
        return -1;
    }
    if (1 + e->nevent > BK_MAXDIM - 1) {
        bk_seterr(ctx, "DiscreteHMM: emission event has too many dimensions");
        return -1;
    }
    *bad = -1;
    return 0;
}

/* The sequence length known from the parameters: time-varying trans or
 * duration; 0 when unknown. */
static int check_length(bk_ctx *ctx, sl_dist *d, int64_t *T, int *bad) {
    *T = time_varying(d) ? d->p[1]->shape[0] : 0;
    if (!d->p[2]) return 0;
    if (d->p[2]->numel != 1 || sl_check_param(ctx, d, 2, "duration", SL_V_NONNEG_INT, bad)) {
        if (d->p[2]->numel != 1) bk_seterr(ctx, "DiscreteHMM: duration must be a number");
        *bad = 2;
        return -1;
    }
    int64_t n = (int64_t)bk_item(d->p[2]);
    if (*T && n != *T) {
        bk_seterr(ctx, "DiscreteHMM: duration %lld does not match the %lld steps of trans",
                  (long long)n, (long long)*T);
        *bad = 2;
        return -1;
    }
    *T = n;
    return 0;
}

/* lengths: a vector of non-negative integers, at most the steps of a
 * time-varying trans. */
static int check_lengths(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *L = d->p[HMM_LENGTHS];
    if (!L) return 0;
    *bad = HMM_LENGTHS;
    if (L->ndim != 1) {
        bk_seterr(ctx, "DiscreteHMM: lengths must be a vector [B], one length per sequence");
        return -1;
    }
    if (sl_check_param(ctx, d, HMM_LENGTHS, "lengths", SL_V_NONNEG_INT, bad)) return -1;
    /* the steps fixed by a time-varying trans or duration bound the lengths */
    int64_t T = time_varying(d) ? d->p[1]->shape[0] : d->p[2] ? (int64_t)bk_item(d->p[2]) : -1;
    for (int64_t b = 0; T >= 0 && b < L->numel; b++)
        if (bk_get(L, b) > (double)T) {
            bk_seterr(ctx, "DiscreteHMM: lengths[%lld] = %lld exceeds the %lld steps of %s",
                      (long long)b, (long long)bk_get(L, b), (long long)T,
                      time_varying(d) ? "trans" : "duration");
            return -1;
        }
    *bad = -1;
    return 0;
}

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    int64_t T;
    if (!d->p[0] || !d->p[1]) {
        bk_seterr(ctx, "DiscreteHMM: needs init and trans");
        return -1;
    }
    if (check_init(ctx, d, bad) || check_trans(ctx, d, bad) || check_emission(ctx, d, bad) ||
        check_length(ctx, d, &T, bad) || check_lengths(ctx, d, bad))
        return -1;
    const sl_dist *e = d->sub[0];
    d->nbatch = d->p[HMM_LENGTHS] ? 1 : 0;
    if (d->nbatch) d->batch[0] = d->p[HMM_LENGTHS]->numel;
    d->nevent = 1 + e->nevent;
    d->event[0] = T;
    for (int i = 0; i < e->nevent; i++) d->event[1 + i] = e->event[i];
    return 0;
}

/* --------------------------------------------------------- building --- */

static int bind_emission(const sl_args *a, sl_bindinfo *b, sl_dist *d) {
    const rt_call *c = a->call;
    const rt_value *v = rt_arg(c, 2, "emission");
    bool kw = v && !(c->nargs > 2 && v == &c->args[2]);
    b->pos[HMM_EMISSION_SLOT] = v && !kw ? 2 : -1;
    b->kw[HMM_EMISSION_SLOT] = kw ? "emission" : NULL;
    if (!v) return rt_error(a->vm, c, "DiscreteHMM: missing argument \"emission\"");
    if (v->tag != RT_DIST) {
        if (kw)
            return rt_error_kw(a->vm, c, "emission",
                               "DiscreteHMM: emission must be a distribution, got a %s",
                               rt_type_name(*v));
        return rt_error_arg(a->vm, c, 2, "DiscreteHMM: emission must be a distribution, got a %s",
                            rt_type_name(*v));
    }
    d->sub[0] = (sl_dist *)v->u.o;
    d->sub[0]->h.refcount++;
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"init", "trans", "emission", "init_logits",
                                        "trans_logits", "duration", "lengths", NULL};
    sl_bindinfo b;
    for (int i = 0; i < SL_MAXP; i++) {
        b.pos[i] = -1;
        b.kw[i] = NULL;
    }
    if (rt_check_args(a->vm, a->call, 3, names) ||
        sl_bind_choice(a, &b, d, 0, 0, "init", "init_logits"))
        return -1;
    int v0 = d->variant;
    if (sl_bind_choice(a, &b, d, 1, 1, "trans", "trans_logits")) return -1;
    d->variant = v0 | (d->variant ? HMM_TRANS_LOGITS : 0);
    if (rt_arg(a->call, -1, "duration") &&
        sl_bind_param(a, &b, d, 2, -1, "duration", NAN))
        return -1;
    if (rt_arg(a->call, -1, "lengths") &&
        sl_bind_param(a, &b, d, HMM_LENGTHS, -1, "lengths", NAN))
        return -1;
    d->np = 4;
    if (bind_emission(a, &b, d)) return -1;
    return sl_build_finish(a, &b, d);
}

sl_dist *sl_hmm_make(bk_ctx *ctx, bk_tensor *init_p, bk_tensor *trans, sl_dist *emission,
                     int variant, int64_t duration) {
    return sl_hmm_make_batch(ctx, init_p, trans, emission, variant, duration, NULL);
}

sl_dist *sl_hmm_make_batch(bk_ctx *ctx, bk_tensor *init_p, bk_tensor *trans, sl_dist *emission,
                           int variant, int64_t duration, bk_tensor *lengths) {
    bk_tensor *p[4] = {init_p, trans, NULL, lengths};
    if (!init_p || !trans || !emission) {
        bk_seterr(ctx, "DiscreteHMM: needs init, trans and emission");
        return NULL;
    }
    sl_dist *d = sl_dist_new(&sl_family_discretehmm);
    if (!d) {
        bk_seterr(ctx, "out of memory");
        return NULL;
    }
    d->variant = variant;
    d->np = 4;
    if (duration >= 0 && !(p[2] = bk_scalar(ctx, (double)duration))) goto fail;
    for (int i = 0; i < 4; i++) {
        bk_tensor *t = p[i];
        if (!t) continue;
        d->p[i] = t->dtype == BK_F64 ? bk_retain(t) : bk_cast(ctx, t, BK_F64);
        if (!d->p[i]) goto fail;
    }
    if (duration >= 0) bk_release(p[2]);
    p[2] = NULL;
    d->sub[0] = emission;
    emission->h.refcount++;
    int bad = -1;
    if (init(ctx, d, &bad)) goto fail;
    return d;
fail:
    bk_release(p[2]);
    sl_dist_release(d);
    return NULL;
}

/* -------------------------------------------------- log parameters --- */

/* log of normalized probabilities along the last axis; log 0 = -inf with a
 * zero (not NaN) gradient. */
static bk_tensor *s_norm_logp(sl_scope *s, bk_tensor *p, bool logits) {
    if (logits) return s_axis(s, BK_OP_LOG_SOFTMAX, p, -1);
    bk_tensor *q = s_div(s, p, s_sum(s, p, -1, true));
    bk_tensor *pos = s_bin(s, BK_OP_GT, q, s_scalar(s, 0.0));
    return s_guard(s, pos, s_log(s, s_safe(s, pos, q, 1.0)));
}

/* Normalized probabilities along the last axis. */
static bk_tensor *s_norm_p(sl_scope *s, bk_tensor *p, bool logits) {
    if (logits) return s_axis(s, BK_OP_SOFTMAX, p, -1);
    return s_div(s, p, s_sum(s, p, -1, true));
}

bk_tensor *sl_hmm_log_init(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_norm_logp(&s, d->p[0], d->variant & HMM_INIT_LOGITS));
}

bk_tensor *sl_hmm_log_trans(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_norm_logp(&s, d->p[1], d->variant & HMM_TRANS_LOGITS));
}

/* Emission log-likelihoods [lead..., T, K] of y [lead..., T] + event
 * (nlead = 0: one sequence; 1: a batch [B, T]). */
static bk_tensor *emission_logp(bk_ctx *ctx, const sl_dist *d, bk_tensor *y, int nlead) {
    const sl_dist *e = d->sub[0];
    int ne = e->nevent, nl = nlead + 1;
    char buf[64], buf2[64];
    bool ok = y->ndim == nl + ne;
    for (int i = 0; ok && i < ne; i++) ok = y->shape[nl + i] == e->event[i];
    if (ok && nlead) ok = y->shape[0] == sl_hmm_nseq(d);
    if (!ok) {
        if (nlead)
            bk_seterr(ctx, "DiscreteHMM: the observed sequences must have shape [B, T]%s with "
                           "B = %lld (the entries of lengths), got %s",
                      ne ? " + the emission's event shape" : "", (long long)sl_hmm_nseq(d),
                      bk_shape_str(y, buf, sizeof buf));
        else
            bk_seterr(ctx, "DiscreteHMM: the observed sequence must have shape [T]%s, got %s",
                      ne ? " + the emission's event shape" : "",
                      bk_shape_str(y, buf, sizeof buf));
        return NULL;
    }
    int64_t T = y->shape[nlead], K = sl_hmm_nstates(d);
    /* a sequence of a batch may be shorter than a time-varying trans */
    if (time_varying(d) && (nlead || sl_hmm_nseq(d) < 0 ? T != d->p[1]->shape[0]
                                                         : T > d->p[1]->shape[0])) {
        bk_seterr(ctx, "DiscreteHMM: the sequence has %lld steps but trans has %lld",
                  (long long)T, (long long)d->p[1]->shape[0]);
        return NULL;
    }
    /* y[lead..., T, 1, event...] broadcasts against the emission batch [K] */
    int64_t shape[BK_MAXDIM], oshape[3];
    for (int i = 0; i < nl; i++) oshape[i] = shape[i] = y->shape[i];
    oshape[nl] = K;
    shape[nl] = 1;
    for (int i = 0; i < ne; i++) shape[nl + 1 + i] = e->event[i];
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *yr = s_keep(&s, bk_reshape(ctx, y, nl + 1 + ne, shape));
    bk_tensor *lp = s.err ? NULL : s_keep(&s, sl_log_prob(ctx, e, yr));
    ok = !s.err && lp->ndim == nl + 1 && (lp->shape[nl] == K || lp->shape[nl] == 1);
    for (int i = 0; ok && i < nl; i++) ok = lp->shape[i] == oshape[i];
    if (!s.err && !ok) {
        bk_seterr(ctx, "DiscreteHMM: emission log_prob has shape %s, expected %s",
                  bk_shape_str(lp, buf, sizeof buf), bk_dims_str(nl + 1, oshape, buf2, sizeof buf2));
        return s_done(&s, NULL);
    }
    return s_done(&s, s_expand(&s, lp, nl + 1, oshape));
}

bk_tensor *sl_hmm_emission_logp(bk_ctx *ctx, const sl_dist *d, bk_tensor *y) {
    return emission_logp(ctx, d, y, 0);
}

/* Sequence b of a batch ys [B, T] + event, cut to its length (new
 * reference); NULL + bk error when ys does not fit the HMM. */
bk_tensor *sl_hmm_seq(bk_ctx *ctx, const sl_dist *d, bk_tensor *ys, int64_t b) {
    const sl_dist *e = d->sub[0];
    char buf[64];
    int64_t B = sl_hmm_nseq(d);
    bool ok = B >= 0 && ys->ndim == 2 + e->nevent && ys->shape[0] == B && b < B;
    for (int i = 0; ok && i < e->nevent; i++) ok = ys->shape[2 + i] == e->event[i];
    if (!ok) {
        bk_seterr(ctx, "DiscreteHMM: the observed sequences must have shape [B, T]%s with "
                       "B = %lld (the entries of lengths), got %s",
                  e->nevent ? " + the emission's event shape" : "", (long long)B,
                  bk_shape_str(ys, buf, sizeof buf));
        return NULL;
    }
    int64_t L = sl_hmm_length(d, b);
    if (L > ys->shape[1]) {
        bk_seterr(ctx, "DiscreteHMM: lengths[%lld] = %lld exceeds the %lld steps of the "
                       "observed sequences", (long long)b, (long long)L, (long long)ys->shape[1]);
        return NULL;
    }
    bk_idx ix[2] = {{.kind = BK_IDX_INT, .start = b},
                    {.kind = BK_IDX_SLICE, .start = 0, .stop = L, .step = 1}};
    return bk_index(ctx, ys, 2, ix);
}

/* --------------------------------------------------------- log_prob --- */

/* A batch y [B, T] + event with the steps past each length replaced by a
 * valid observation (the first step of a non-empty sequence), so that the
 * emission's log density and its gradient stay finite there: the forward
 * op ignores those steps.  Returns a new reference (y itself when nothing
 * is padded). */
static bk_tensor *fill_padding(bk_ctx *ctx, const sl_dist *d, bk_tensor *y) {
    int64_t B = y->shape[0], T = y->shape[1], ev = 1, fill = -1;
    bool padded = false;
    for (int i = 2; i < y->ndim; i++) ev *= y->shape[i];
    for (int64_t b = 0; b < B; b++) {
        int64_t L = sl_hmm_length(d, b);
        if (L < T) padded = true;
        if (L > 0 && fill < 0) fill = b;
    }
    if (!padded || fill < 0) return bk_retain(y);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *on = s_keep(&s, bk_zeros(ctx, BK_F64, y->ndim, y->shape));
    if (s.err) return s_done(&s, NULL);
    double *o = bk_data(on);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < sl_hmm_length(d, b) * ev; t++) o[b * T * ev + t] = 1.0;
    /* the replacement: y[fill, 0] broadcast to y's shape */
    bk_idx ix[2] = {{.kind = BK_IDX_SLICE, .start = fill, .stop = fill + 1, .step = 1},
                    {.kind = BK_IDX_SLICE, .start = 0, .stop = 1, .step = 1}};
    bk_tensor *first = s_keep(&s, bk_index(ctx, y, 2, ix));
    bk_tensor *rep = s_expand(&s, first, y->ndim, y->shape);
    on = s_keep(&s, bk_to_device(ctx, on, bk_tensor_device(y))); /* made on the host */
    bk_tensor *c = s.err ? NULL : s_bin(&s, BK_OP_NE, on, s_scalar(&s, 0.0));
    return s_done(&s, s_where(&s, c, y, rep));
}

/* The Categorical fast path: the observed symbols as a tensor of codes
 * ([T], or [B, T] with -1 past each length) for the op hmm_forward_cat,
 * which looks up one exponentiated emission table instead of building the
 * [T, K] log-likelihoods.  NULL (no error) when it does not apply: another
 * emission, x on the tape, or a value outside the categories (the general
 * path then gives the Categorical's answer). */
static bk_tensor *cat_codes(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    const sl_dist *e = d->sub[0];
    int64_t B = sl_hmm_nseq(d);
    int nd = B >= 0 ? 2 : 1;
    if (strcmp(e->fam->name, "Categorical") != 0 || e->mask || e->reinterpreted ||
        e->nevent != 0 || e->p[0]->ndim > 2 || x->requires_grad || x->ndim != nd ||
        (B >= 0 && x->shape[0] != B))
        return NULL;
    if (time_varying(d) && x->shape[nd - 1] != d->p[1]->shape[0]) return NULL;
    int64_t T = x->shape[nd - 1], V = e->p[0]->shape[e->p[0]->ndim - 1];
    bk_tensor *c = bk_empty(ctx, BK_F64, nd, x->shape);
    if (!c) return NULL;
    double *v = bk_data(c);
    bk_copy_out(x, v);
    for (int64_t b = 0; b < (B >= 0 ? B : 1); b++) {
        int64_t L = B >= 0 ? sl_hmm_length(d, b) : T;
        for (int64_t t = 0; t < T; t++) {
            double *y = v + b * T + t;
            if (t >= L) *y = -1;
            /* the cast is defined once 0 <= y < V holds (and inline, unlike floor) */
            else if (!(*y >= 0 && *y < (double)V && *y == (double)(int64_t)*y)) {
                bk_release(c);
                return NULL;
            }
        }
    }
    /* made on the host: on x's device, with the other inputs of the op */
    bk_tensor *on = bk_to_device(ctx, c, bk_tensor_device(x));
    bk_release(c);
    return on;
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    int64_t B = sl_hmm_nseq(d);
    bool fits = true;
    for (int64_t b = 0; b < B && x->ndim >= 2; b++) fits = sl_hmm_length(d, b) <= x->shape[1];
    bk_tensor *codes = fits ? cat_codes(ctx, d, x) : NULL;
    if (codes) {
        s_keep(&s, codes);
        const sl_dist *e = d->sub[0];
        int64_t K = sl_hmm_nstates(d), V = e->p[0]->shape[e->p[0]->ndim - 1];
        bk_tensor *logE = s_expand(&s, s_cat_logp(&s, e, 0), 2, (int64_t[]){K, V});
        bk_tensor *A = s_norm_p(&s, d->p[1], d->variant & HMM_TRANS_LOGITS);
        bk_tensor *logpi = s_norm_logp(&s, d->p[0], d->variant & HMM_INIT_LOGITS);
        if (s.err) return s_done(&s, NULL);
        bk_tensor *in[4] = {logpi, A, logE, codes};
        /* codes is ours, just checked by cat_codes, and written by no one
         * after: the op need not check it at each call and replay */
        bk_opargs args;
        memset(&args, 0, sizeof args);
        args.scalar = BK_HMM_CODES_CHECKED;
        return s_done(&s, s_keep(&s, bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, &args)));
    }
    bk_tensor *lengths, *E;
    if (B >= 0) {
        if (x->ndim >= 2 && x->ndim == 2 + d->sub[0]->nevent && x->shape[0] == B)
            for (int64_t b = 0; b < B; b++)
                if (sl_hmm_length(d, b) > x->shape[1]) {
                    bk_seterr(ctx, "DiscreteHMM: lengths[%lld] = %lld exceeds the %lld steps of "
                                   "the observed sequences", (long long)b,
                              (long long)sl_hmm_length(d, b), (long long)x->shape[1]);
                    return s_done(&s, NULL);
                }
        bk_tensor *xf = x->ndim >= 2 ? s_keep(&s, fill_padding(ctx, d, x)) : x;
        E = xf ? s_keep(&s, emission_logp(ctx, d, xf, 1)) : NULL;
        lengths = d->p[HMM_LENGTHS];
    } else {
        E = s_keep(&s, sl_hmm_emission_logp(ctx, d, x));
        lengths = s.err ? NULL : s_scalar(&s, (double)x->shape[0]);
    }
    if (s.err) return s_done(&s, NULL);
    bk_tensor *A = s_norm_p(&s, d->p[1], d->variant & HMM_TRANS_LOGITS);
    bk_tensor *logpi = s_norm_logp(&s, d->p[0], d->variant & HMM_INIT_LOGITS);
    if (s.err) return s_done(&s, NULL);
    bk_tensor *in[4] = {logpi, A, E, lengths};
    return s_done(&s, s_keep(&s, bk_apply(ctx, BK_OP_HMM_FORWARD, 4, in, NULL)));
}

/* ----------------------------------------------------------- sample --- */

/* exp of a log-parameter tensor as a malloc'd contiguous copy. */
static double *probs_copy(bk_ctx *ctx, bk_tensor *(*fn)(bk_ctx *, const sl_dist *),
                          const sl_dist *d) {
    bool g = bk_set_grad_enabled(ctx, false);
    bk_tensor *t = fn(ctx, d);
    bk_set_grad_enabled(ctx, g);
    if (!t) return NULL;
    double *v = malloc((size_t)t->numel * sizeof *v);
    if (!v) bk_seterr(ctx, "out of memory");
    else {
        bk_copy_out(t, v);
        for (int64_t i = 0; i < t->numel; i++) v[i] = exp(v[i]);
    }
    bk_release(t);
    return v;
}

/* A state path of length T into z. */
static void draw_path(bk_rng *rng, const sl_dist *d, const double *pi, const double *A,
                      int64_t T, int64_t *z) {
    int64_t K = sl_hmm_nstates(d);
    bool tv = time_varying(d);
    for (int64_t t = 0; t < T; t++) {
        const double *p = t == 0 ? pi : A + (tv ? t * K * K : 0) + z[t - 1] * K;
        z[t] = bk_rng_categorical(rng, K, p);
    }
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    const sl_dist *e = d->sub[0];
    int64_t T = d->event[0], N = 1, shape[BK_MAXDIM], B = sl_hmm_nseq(d);
    /* a batch: sequences of lengths[b] steps padded with 0 to the longest
     * (or to the steps of a time-varying trans / duration) */
    int64_t Lmax = 0;
    for (int64_t b = 0; b < B; b++)
        if (sl_hmm_length(d, b) > Lmax) Lmax = sl_hmm_length(d, b);
    if (T == 0) T = Lmax;
    if (T == 0 && !time_varying(d) && !d->p[2] && B < 0) {
        bk_seterr(ctx, "DiscreteHMM: sample needs the sequence length: give duration= or a "
                       "time-varying trans [T, K, K]");
        return NULL;
    }
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0) {
        bk_seterr(ctx, "DiscreteHMM: sample has too many dimensions");
        return NULL;
    }
    shape[ns + d->nbatch] = T;
    for (int i = 0; i < ns + d->nbatch; i++) N *= shape[i];
    int64_t kb = e->nbatch ? e->batch[0] : 1, ev = 1;
    for (int i = 0; i < e->nevent; i++) ev *= e->event[i];
    double *pi = probs_copy(ctx, sl_hmm_log_init, d);
    double *A = pi ? probs_copy(ctx, sl_hmm_log_trans, d) : NULL;
    int64_t *z = malloc((size_t)(T ? T : 1) * sizeof *z);
    /* every state's emission drawn at every step; the path picks one */
    bk_tensor *draws = A && z ? sl_sample(ctx, rng, e, 1, (int64_t[]){N * T}) : NULL;
    double *dv = draws ? malloc((size_t)(draws->numel ? draws->numel : 1) * sizeof *dv) : NULL;
    bk_tensor *out = dv ? bk_empty(ctx, BK_F64, nd, shape) : NULL;
    if (out) {
        bk_copy_out(draws, dv);
        double *o = bk_data(out);
        for (int64_t n = 0; n < N; n++) {
            int64_t L = B >= 0 ? sl_hmm_length(d, n % B) : T;
            draw_path(rng, d, pi, A, L, z);
            for (int64_t t = 0; t < T; t++) {
                int64_t k = kb == 1 || t >= L ? 0 : z[t];
                if (t < L)
                    memcpy(o + (n * T + t) * ev, dv + ((n * T + t) * kb + k) * ev,
                           (size_t)ev * sizeof *o);
                else
                    memset(o + (n * T + t) * ev, 0, (size_t)ev * sizeof *o);
            }
        }
    } else if (!z || (draws && !dv)) {
        bk_seterr(ctx, "out of memory");
    }
    free(pi);
    free(A);
    free(z);
    free(dv);
    bk_release(draws);
    return out;
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support(ctx, d->sub[0], out);
}

/* printed as DiscreteHMM(init, trans, emission, duration=, lengths=) */
static const char *const repr_kw[] = {"", "", "duration=", "lengths=", NULL};

const sl_family sl_family_discretehmm = {
    .name = "DiscreteHMM", .build = build, .log_prob = log_prob, .sample = sample,
    .support = support, .reparam = false, .discrete = false, .init = init,
    .repr_kw = repr_kw, .repr_sub_at = 2,
};
