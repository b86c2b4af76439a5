/* eval_builtins.c - evaluation metrics for predictive models (the table of
 * docs/EVALUATION.md): negative log-likelihood, expected calibration error,
 * prediction-interval coverage, sharpness, Brier score, CRPS, and the
 * central predictive interval of a set of draws.
 *
 *   nll(d, y)                    -mean(d.log_prob(y))          (differentiable)
 *   nll(d, y, mixture=true)      -mean_i log(1/S sum_s p_s(y_i))  (leading dim S)
 *   ece(probs, labels, bins=10)  top-label expected calibration error
 *   brier(probs, labels)         mean squared error of the probabilities
 *   interval_coverage(lo, hi, y) | (samples, y, level=) | (d, y, level=)
 *   sharpness(lo, hi) | (samples) | (samples, level=) | (d)
 *   crps(samples, y)             empirical CRPS from draws [S, ...]
 *   crps(Normal(mu, s), y)       closed form                   (differentiable)
 *   predictive_interval(samples, level=0.9) -> {lower, upper, median, mean}
 *
 * Draws always come first along axis 0: samples[S, ...] pairs with y[...].
 * Every metric returns a scalar mean over the observations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "dist.h"

/* ---- helpers ------------------------------------------------------------ */

/* Copy a tensor's elements into a malloc'd array (row-major). */
static double *copy_values(rt_vm *vm, const rt_call *c, const bk_tensor *t) {
    double *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    if (!v) {
        rt_fail(vm, 5, c->loc, "out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++) v[i] = bk_get(t, i);
    return v;
}

static int ret_scalar(rt_vm *vm, const rt_call *c, double x, rt_value *out) {
    bk_tensor *t = bk_scalar(vm->bk, x);
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

static int ret_tensor(rt_vm *vm, const rt_call *c, bk_tensor *t, rt_value *out) {
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

static const sl_dist *arg_dist(const rt_call *c, int pos, const char *name) {
    const rt_value *v = rt_arg(c, pos, name);
    return v && v->tag == RT_DIST ? (const sl_dist *)v->u.o : NULL;
}

/* Number of draws S and observations per draw of a samples tensor whose
 * trailing part must hold as many elements as y. */
static int draws_layout(rt_vm *vm, const rt_call *c, const char *fn, const bk_tensor *s, const bk_tensor *y,
                        int64_t *S, int64_t *n) {
    if (s->ndim < 1 || s->shape[0] < 1)
        return rt_error_arg(vm, c, 0, "%s: samples must have the draws along axis 0 (shape [S, ...])", fn);
    *S = s->shape[0];
    *n = s->numel / *S;
    if (y && y->numel != *n) {
        char a[64], b[64];
        return rt_error_arg(vm, c, 1, "%s: y has shape %s but the samples have shape %s (expected [S] + y's shape)", fn,
                            bk_shape_str(y, b, sizeof b), bk_shape_str(s, a, sizeof a));
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Central interval of each observation's draws: lo/hi/med/mean of length n
 * (any of them may be NULL).  vals is [S, n] row-major. */
static int draw_quantiles(rt_vm *vm, const rt_call *c, const double *vals, int64_t S, int64_t n, double level,
                          double *lo, double *hi, double *med, double *mean) {
    double *col = malloc((size_t)S * sizeof *col);
    if (!col) return rt_fail(vm, 5, c->loc, "out of memory");
    for (int64_t j = 0; j < n; j++) {
        double m = 0;
        for (int64_t s = 0; s < S; s++) {
            col[s] = vals[s * n + j];
            m += col[s];
        }
        qsort(col, (size_t)S, sizeof *col, cmp_double);
        if (lo) lo[j] = inf_quantile_sorted(col, (int)S, (1 - level) / 2);
        if (hi) hi[j] = inf_quantile_sorted(col, (int)S, (1 + level) / 2);
        if (med) med[j] = inf_quantile_sorted(col, (int)S, 0.5);
        if (mean) mean[j] = m / (double)S;
    }
    free(col);
    return 0;
}

static int arg_level(rt_vm *vm, const rt_call *c, const char *fn, double *level, bool *given) {
    const rt_value *lv = rt_arg(c, -1, "level");
    if (given) *given = lv != NULL;
    if (rt_arg_number(vm, c, -1, "level", 0.9, false, level)) return -1;
    if (!(*level > 0 && *level < 1)) return rt_error_kw(vm, c, "level", "%s: level must be in (0, 1), got %g", fn, *level);
    return 0;
}

/* ---- nll ------------------------------------------------------------- */

static int b_nll(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"d", "y", "mixture", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const sl_dist *d = arg_dist(c, 0, "d");
    if (!d) return rt_error_arg(vm, c, 0, "nll: the first argument must be a distribution (nll(Normal(mu, s), y))");
    bk_tensor *y;
    double mix;
    if (rt_arg_tensor(vm, c, 1, "y", true, &y) || rt_arg_number(vm, c, -1, "mixture", 0, false, &mix)) return -1;
    bk_ctx *ctx = vm->bk;
    bk_tensor *lp = sl_log_prob(ctx, d, y);
    if (!lp) return rt_error_bk(vm, c);
    bk_tensor *r = NULL;
    if (mix != 0) {
        if (lp->ndim < 1) {
            bk_release(lp);
            return rt_error_kw(vm, c, "mixture", "nll: mixture=true needs the posterior draws along axis 0 of the log-density (it is a scalar)");
        }
        double S = (double)lp->shape[0];
        bk_tensor *l = bk_reduce(ctx, BK_OP_LOGSUMEXP, lp, 0, false);
        bk_tensor *m = l ? bk_reduce(ctx, BK_OP_MEAN, l, BK_ALL_AXES, false) : NULL;
        bk_tensor *a = m ? bk_add_s(ctx, m, -log(S)) : NULL;
        r = a ? bk_mul_s(ctx, a, -1.0) : NULL;
        bk_release(l);
        bk_release(m);
        bk_release(a);
    } else {
        bk_tensor *m = bk_reduce(ctx, BK_OP_MEAN, lp, BK_ALL_AXES, false);
        r = m ? bk_mul_s(ctx, m, -1.0) : NULL;
        bk_release(m);
    }
    bk_release(lp);
    return ret_tensor(vm, c, r, out);
}

/* ---- classification: ece, brier --------------------------------------- */

typedef struct cls_data {
    double *p;      /* [n, k] probabilities (k >= 2; binary expanded to 2) */
    int *label;     /* [n] */
    int64_t n, k;
} cls_data;

static void cls_free(cls_data *d) {
    free(d->p);
    free(d->label);
}

/* probs: [N] (P(label = 1)) or [N, K]; labels: [N] integers in 0..K-1. */
static int cls_load(rt_vm *vm, const rt_call *c, const char *fn, cls_data *out) {
    memset(out, 0, sizeof *out);
    bk_tensor *p, *l;
    if (rt_arg_tensor(vm, c, 0, "probs", true, &p) || rt_arg_tensor(vm, c, 1, "labels", true, &l)) return -1;
    if (p->ndim != 1 && p->ndim != 2)
        return rt_error_arg(vm, c, 0, "%s: probs must be [N] (binary: probability of label 1) or [N, K], got %d dimensions",
                            fn, p->ndim);
    int64_t n = p->shape[0], k = p->ndim == 2 ? p->shape[1] : 2;
    if (n < 1) return rt_error_arg(vm, c, 0, "%s: probs is empty", fn);
    if (k < 2) return rt_error_arg(vm, c, 0, "%s: probs needs at least 2 classes, got %lld", fn, (long long)k);
    if (l->numel != n)
        return rt_error_arg(vm, c, 1, "%s: labels has %lld elements but probs has %lld rows", fn, (long long)l->numel,
                            (long long)n);
    out->p = malloc((size_t)(n * k) * sizeof *out->p);
    out->label = malloc((size_t)n * sizeof *out->label);
    if (!out->p || !out->label) {
        cls_free(out);
        return rt_fail(vm, 5, c->loc, "out of memory");
    }
    out->n = n;
    out->k = k;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < k; j++) {
            double v = p->ndim == 2 ? bk_get(p, i * k + j) : (j == 1 ? bk_get(p, i) : 1 - bk_get(p, i));
            if (!(v >= 0 && v <= 1)) {
                cls_free(out);
                return rt_error_arg(vm, c, 0, "%s: probabilities must lie in [0, 1], got %g (row %lld)", fn,
                                    p->ndim == 2 ? v : bk_get(p, i), (long long)i);
            }
            out->p[i * k + j] = v;
        }
        double lv = bk_get(l, i);
        if (!(lv >= 0 && lv < (double)k && lv == floor(lv))) {
            cls_free(out);
            return rt_error_arg(vm, c, 1, "%s: labels must be integers in 0..%lld, got %g (row %lld)", fn,
                                (long long)(k - 1), lv, (long long)i);
        }
        out->label[i] = (int)lv;
    }
    return 0;
}

static int b_ece(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"probs", "labels", "bins", NULL};
    if (rt_check_args(vm, c, 3, names)) return -1;
    double nb;
    if (rt_arg_number(vm, c, 2, "bins", 10, false, &nb)) return -1;
    if (!(nb >= 1 && nb <= 10000 && nb == floor(nb)))
        return rt_error_arg(vm, c, 2, "ece: bins must be an integer in 1..10000, got %g", nb);
    cls_data d;
    if (cls_load(vm, c, "ece", &d)) return -1;
    int bins = (int)nb;
    double *acc = calloc((size_t)bins * 3, sizeof *acc);
    if (!acc) {
        cls_free(&d);
        return rt_fail(vm, 5, c->loc, "out of memory");
    }
    double *conf = acc + bins, *cnt = acc + 2 * bins;
    for (int64_t i = 0; i < d.n; i++) {
        const double *row = d.p + i * d.k;
        int64_t best = 0;
        for (int64_t j = 1; j < d.k; j++)
            if (row[j] > row[best]) best = j;
        double cf = row[best];
        /* bin b holds b/bins < conf <= (b+1)/bins (confidence 0 goes to bin 0) */
        int b = 0;
        while (b < bins - 1 && cf > (double)(b + 1) / bins) b++;
        acc[b] += best == d.label[i];
        conf[b] += cf;
        cnt[b] += 1;
    }
    double e = 0;
    for (int b = 0; b < bins; b++)
        if (cnt[b] > 0) e += fabs(acc[b] - conf[b]) / (double)d.n;
    free(acc);
    cls_free(&d);
    return ret_scalar(vm, c, e, out);
}

static int b_brier(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"probs", "labels", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    bk_tensor *p;
    if (rt_arg_tensor(vm, c, 0, "probs", true, &p)) return -1;
    bool binary = p->ndim == 1;
    cls_data d;
    if (cls_load(vm, c, "brier", &d)) return -1;
    double s = 0;
    for (int64_t i = 0; i < d.n; i++) {
        if (binary) {
            double r = d.p[i * 2 + 1] - (d.label[i] == 1);
            s += r * r;
            continue;
        }
        for (int64_t j = 0; j < d.k; j++) {
            double r = d.p[i * d.k + j] - (d.label[i] == j);
            s += r * r;
        }
    }
    double n = (double)d.n;
    cls_free(&d);
    return ret_scalar(vm, c, s / n, out);
}

/* ---- intervals: coverage, sharpness, predictive_interval -------------- */

/* Lower and upper bounds of the central `level` interval of a distribution
 * (through its inverse cdf) as new tensors. */
static int dist_interval(rt_vm *vm, const rt_call *c, const char *fn, const sl_dist *d, double level, bk_tensor **lo,
                         bk_tensor **hi) {
    if (!d->fam->icdf || d->reinterpreted || d->nevent)
        return rt_error_arg(vm, c, 0, "%s: %s has no closed-form quantiles; pass predictive draws instead", fn, d->fam->name);
    bk_tensor *ql = bk_scalar(vm->bk, (1 - level) / 2), *qh = bk_scalar(vm->bk, (1 + level) / 2);
    *lo = ql ? d->fam->icdf(vm->bk, d, ql) : NULL;
    *hi = qh && *lo ? d->fam->icdf(vm->bk, d, qh) : NULL;
    bk_release(ql);
    bk_release(qh);
    if (!*hi) {
        bk_release(*lo);
        return rt_error_bk(vm, c);
    }
    return 0;
}

/* mean(lo <= y <= hi) with broadcasting. */
static int coverage_of(rt_vm *vm, const rt_call *c, bk_tensor *lo, bk_tensor *hi, bk_tensor *y, rt_value *out) {
    bk_ctx *ctx = vm->bk;
    bool g = bk_set_grad_enabled(ctx, false);
    bk_tensor *a = bk_binop(ctx, BK_OP_LE, lo, y);
    bk_tensor *b = a ? bk_binop(ctx, BK_OP_LE, y, hi) : NULL;
    bk_tensor *m = b ? bk_mul(ctx, a, b) : NULL;
    bk_tensor *r = m ? bk_reduce(ctx, BK_OP_MEAN, m, BK_ALL_AXES, false) : NULL;
    bk_set_grad_enabled(ctx, g);
    bk_release(a);
    bk_release(b);
    bk_release(m);
    return ret_tensor(vm, c, r, out);
}

/* Central intervals of draws [S, ...] as tensors of the trailing shape. */
static int draws_interval(rt_vm *vm, const rt_call *c, const char *fn, bk_tensor *s, double level, bk_tensor **lo,
                          bk_tensor **hi) {
    int64_t S = 0, n = 0;
    if (draws_layout(vm, c, fn, s, NULL, &S, &n)) return -1;
    double *v = copy_values(vm, c, s);
    if (!v) return -1;
    *lo = bk_empty(vm->bk, BK_F64, s->ndim - 1, s->shape + 1);
    *hi = *lo ? bk_empty(vm->bk, BK_F64, s->ndim - 1, s->shape + 1) : NULL;
    int rc = *hi ? draw_quantiles(vm, c, v, S, n, level, bk_data(*lo), bk_data(*hi), NULL, NULL) : rt_error_bk(vm, c);
    free(v);
    if (rc) {
        bk_release(*lo);
        bk_release(*hi);
    }
    return rc;
}

static int b_interval_coverage(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"lower", "upper", "y", "level", NULL};
    static const char *const fn = "interval_coverage";
    if (rt_check_args(vm, c, 3, names)) return -1;
    double level;
    bool has_level;
    if (arg_level(vm, c, fn, &level, &has_level)) return -1;
    bk_tensor *lo = NULL, *hi = NULL, *y;
    int rc;
    if (c->nargs == 3) {
        if (has_level) return rt_error_kw(vm, c, "level", "%s: level is for (samples, y) or (dist, y); (lower, upper, y) is already an interval", fn);
        if (rt_arg_tensor(vm, c, 0, "lower", true, &lo) || rt_arg_tensor(vm, c, 1, "upper", true, &hi) ||
            rt_arg_tensor(vm, c, 2, "y", true, &y))
            return -1;
        return coverage_of(vm, c, lo, hi, y, out);
    }
    if (c->nargs != 2)
        return rt_error(vm, c, "%s: call it as (lower, upper, y), (samples, y, level=) or (dist, y, level=)", fn);
    if (rt_arg_tensor(vm, c, 1, "y", true, &y)) return -1;
    const sl_dist *d = arg_dist(c, 0, "lower");
    if (d) {
        rc = dist_interval(vm, c, fn, d, level, &lo, &hi);
    } else {
        bk_tensor *s;
        if (rt_arg_tensor(vm, c, 0, "samples", true, &s)) return -1;
        int64_t S = 0, n = 0;
        if (draws_layout(vm, c, fn, s, y, &S, &n)) return -1;
        rc = draws_interval(vm, c, fn, s, level, &lo, &hi);
        if (rc == 0 && lo->ndim != y->ndim) {
            /* same element count, other shape: compare element by element */
            bk_tensor *r = bk_reshape(vm->bk, y, lo->ndim, lo->shape);
            if (!r) rc = rt_error_bk(vm, c);
            else {
                rc = coverage_of(vm, c, lo, hi, r, out);
                bk_release(r);
            }
            bk_release(lo);
            bk_release(hi);
            return rc;
        }
    }
    if (rc) return -1;
    rc = coverage_of(vm, c, lo, hi, y, out);
    bk_release(lo);
    bk_release(hi);
    return rc;
}

static int mean_width(rt_vm *vm, const rt_call *c, bk_tensor *lo, bk_tensor *hi, rt_value *out) {
    bk_tensor *w = bk_sub(vm->bk, hi, lo);
    bk_tensor *r = w ? bk_reduce(vm->bk, BK_OP_MEAN, w, BK_ALL_AXES, false) : NULL;
    bk_release(w);
    return ret_tensor(vm, c, r, out);
}

static int b_sharpness(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"lower", "upper", "level", NULL};
    static const char *const fn = "sharpness";
    if (rt_check_args(vm, c, 2, names)) return -1;
    double level;
    bool has_level;
    if (arg_level(vm, c, fn, &level, &has_level)) return -1;
    bk_tensor *lo, *hi;
    if (c->nargs == 2) {
        if (rt_arg_tensor(vm, c, 0, "lower", true, &lo) || rt_arg_tensor(vm, c, 1, "upper", true, &hi)) return -1;
        return mean_width(vm, c, lo, hi, out);
    }
    if (c->nargs != 1) return rt_error(vm, c, "%s: call it as (lower, upper), (samples), (samples, level=) or (dist)", fn);
    const sl_dist *d = arg_dist(c, 0, "lower");
    if (d) {
        if (has_level) {
            if (dist_interval(vm, c, fn, d, level, &lo, &hi)) return -1;
            int rc = mean_width(vm, c, lo, hi, out);
            bk_release(lo);
            bk_release(hi);
            return rc;
        }
        /* mean predictive standard deviation */
        bk_tensor *v = sl_variance(vm->bk, d);
        bk_tensor *s = v ? bk_unop(vm->bk, BK_OP_SQRT, v) : NULL;
        bk_tensor *r = s ? bk_reduce(vm->bk, BK_OP_MEAN, s, BK_ALL_AXES, false) : NULL;
        bk_release(v);
        bk_release(s);
        return ret_tensor(vm, c, r, out);
    }
    bk_tensor *s;
    if (rt_arg_tensor(vm, c, 0, "samples", true, &s)) return -1;
    if (has_level) {
        if (draws_interval(vm, c, fn, s, level, &lo, &hi)) return -1;
        int rc = mean_width(vm, c, lo, hi, out);
        bk_release(lo);
        bk_release(hi);
        return rc;
    }
    int64_t S = 0, n = 0;
    if (draws_layout(vm, c, fn, s, NULL, &S, &n)) return -1;
    double *v = copy_values(vm, c, s);
    if (!v) return -1;
    double tot = 0;
    for (int64_t j = 0; j < n; j++) {
        double m = 0, q = 0;
        for (int64_t k = 0; k < S; k++) m += v[k * n + j];
        m /= (double)S;
        for (int64_t k = 0; k < S; k++) q += (v[k * n + j] - m) * (v[k * n + j] - m);
        tot += sqrt(q / (double)S);
    }
    free(v);
    return ret_scalar(vm, c, tot / (double)n, out);
}

static int b_predictive_interval(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"samples", "level", NULL};
    static const char *const fn = "predictive_interval";
    if (rt_check_args(vm, c, 1, names)) return -1;
    double level;
    bk_tensor *s;
    if (arg_level(vm, c, fn, &level, NULL) || rt_arg_tensor(vm, c, 0, "samples", true, &s)) return -1;
    int64_t S = 0, n = 0;
    if (draws_layout(vm, c, fn, s, NULL, &S, &n)) return -1;
    double *v = copy_values(vm, c, s);
    if (!v) return -1;
    bk_tensor *t[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        if (!(t[i] = bk_empty(vm->bk, BK_F64, s->ndim - 1, s->shape + 1))) rc = rt_error_bk(vm, c);
    if (rc == 0) rc = draw_quantiles(vm, c, v, S, n, level, bk_data(t[0]), bk_data(t[1]), bk_data(t[2]), bk_data(t[3]));
    free(v);
    rt_record *r = rc == 0 ? rt_record_new() : NULL;
    if (rc == 0 && !r) rc = rt_fail(vm, 5, c->loc, "out of memory");
    static const char *const keys[] = {"lower", "upper", "median", "mean"};
    for (int i = 0; i < 4; i++) {
        if (rc == 0 && rt_record_set(r, keys[i], rt_tensor(t[i])) == 0) continue;
        if (rc == 0) rc = rt_fail(vm, 5, c->loc, "out of memory");
        bk_release(t[i]);
    }
    if (rc) {
        if (r) rt_release(rt_obj_value(&r->h));
        return -1;
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

/* ---- crps --------------------------------------------------------------- */

/* CRPS of Normal(mu, s) at y:  s * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)),
 * z = (y - mu) / s, built from backend ops so it is differentiable. */
static bk_tensor *crps_normal(bk_ctx *ctx, bk_tensor *mu, bk_tensor *s, bk_tensor *y) {
    bk_tensor *t[10] = {0};
    t[0] = bk_sub(ctx, y, mu);
    t[1] = t[0] ? bk_div(ctx, t[0], s) : NULL;                         /* z */
    t[2] = t[1] ? bk_mul_s(ctx, t[1], M_SQRT1_2) : NULL;
    t[3] = t[2] ? bk_unop(ctx, BK_OP_ERF, t[2]) : NULL;                /* 2 Phi(z) - 1 */
    t[4] = t[3] ? bk_mul(ctx, t[1], t[3]) : NULL;                      /* z (2 Phi - 1) */
    t[5] = t[1] ? bk_unop(ctx, BK_OP_SQUARE, t[1]) : NULL;
    t[6] = t[5] ? bk_mul_s(ctx, t[5], -0.5) : NULL;
    t[7] = t[6] ? bk_unop(ctx, BK_OP_EXP, t[6]) : NULL;               /* sqrt(2 pi) phi(z) */
    t[8] = t[7] ? bk_mul_s(ctx, t[7], 2.0 / sqrt(2.0 * M_PI)) : NULL; /* 2 phi(z) */
    t[9] = t[8] && t[4] ? bk_add(ctx, t[4], t[8]) : NULL;
    bk_tensor *u = t[9] ? bk_add_s(ctx, t[9], -1.0 / sqrt(M_PI)) : NULL;
    bk_tensor *v = u ? bk_mul(ctx, u, s) : NULL;
    bk_tensor *r = v ? bk_reduce(ctx, BK_OP_MEAN, v, BK_ALL_AXES, false) : NULL;
    for (int i = 0; i < 10; i++) bk_release(t[i]);
    bk_release(u);
    bk_release(v);
    return r;
}

static int b_crps(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"samples", "y", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    bk_tensor *y;
    if (rt_arg_tensor(vm, c, 1, "y", true, &y)) return -1;
    const sl_dist *d = arg_dist(c, 0, "samples");
    if (d) {
        if (strcmp(d->fam->name, "Normal") != 0)
            return rt_error_arg(vm, c, 0, "crps: closed form only for Normal, got %s (pass predictive draws instead)",
                                d->fam->name);
        return ret_tensor(vm, c, crps_normal(vm->bk, d->p[0], d->p[1], y), out);
    }
    bk_tensor *s;
    if (rt_arg_tensor(vm, c, 0, "samples", true, &s)) return -1;
    int64_t S = 0, n = 0;
    if (draws_layout(vm, c, "crps", s, y, &S, &n)) return -1;
    double *v = copy_values(vm, c, s);
    double *col = v ? malloc((size_t)S * sizeof *col) : NULL;
    if (!col) {
        free(v);
        return v ? rt_fail(vm, 5, c->loc, "out of memory") : -1;
    }
    /* CRPS = E|X - y| - 1/2 E|X - X'|, the expectations over the draws;
     * sum_{s,t} |x_s - x_t| = 2 sum_i (2i - S + 1) x_(i) for sorted x. */
    double tot = 0;
    for (int64_t j = 0; j < n; j++) {
        double yj = bk_get(y, j), a = 0, b = 0;
        for (int64_t k = 0; k < S; k++) {
            col[k] = v[k * n + j];
            a += fabs(col[k] - yj);
        }
        qsort(col, (size_t)S, sizeof *col, cmp_double);
        for (int64_t k = 0; k < S; k++) b += (double)(2 * k - S + 1) * col[k];
        tot += a / (double)S - b / ((double)S * (double)S);
    }
    free(col);
    free(v);
    return ret_scalar(vm, c, tot / (double)n, out);
}

const rt_builtin_def inf_eval_builtins[] = {
    {"nll", b_nll},
    {"ece", b_ece},
    {"brier", b_brier},
    {"interval_coverage", b_interval_coverage},
    {"sharpness", b_sharpness},
    {"predictive_interval", b_predictive_interval},
    {"crps", b_crps},
    {NULL, NULL},
};
