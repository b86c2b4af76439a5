/* plot_builtins.c - the plot_* built-ins: each writes one SVG file
 * (atomically: a temporary file and a rename) through svg.c and returns
 * nothing.
 *
 *   plot_lines(path, y | [k, n] | {x:, y:} | {x:, ys: [k, n]}, labels=, smooth=, logy=)
 *   plot_band(path, x, mean, lower, upper, points={x:, y:}, truth=, label=)
 *   plot_hist(path, samples, bins=30, density=true, ref=)
 *   plot_density(path, samples[S] | [S, k], labels=, ref=)
 *   plot_scatter(path, x, y, label=)
 *   plot_images(path, images[N, H, W] | [H, W], cols=8, vmin=, vmax=, invert=false)
 *
 * All but plot_images also take title=, xlabel=, ylabel=; plot_images takes
 * title=. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data_io.h"
#include "svg.h"
#include "vm.h"

#define MAX_SERIES 32

/* Everything a call allocates, freed at its end. */
typedef struct pool {
    void *p[2 * MAX_SERIES + 16];
    int n;
} pool;

static void pool_free(pool *P) {
    for (int i = 0; i < P->n; i++) free(P->p[i]);
    P->n = 0;
}

static double *pool_alloc(rt_vm *vm, const rt_call *c, pool *P, int64_t n) {
    double *v = P->n < (int)(sizeof P->p / sizeof P->p[0]) ? malloc((size_t)(n > 0 ? n : 1) * sizeof *v) : NULL;
    if (!v) {
        rt_fail(vm, 5, c->loc, "out of memory");
        return NULL;
    }
    P->p[P->n++] = v;
    return v;
}

static double *values(rt_vm *vm, const rt_call *c, pool *P, const bk_tensor *t) {
    double *v = pool_alloc(vm, c, P, t->numel);
    if (v)
        for (int64_t i = 0; i < t->numel; i++) v[i] = bk_get(t, i);
    return v;
}

static const char *const COMMON[] = {"title", "xlabel", "ylabel"};

/* Keyword names: the call's own followed by title, xlabel, ylabel. */
static int check(rt_vm *vm, const rt_call *c, int maxpos, const char *const *own, bool common) {
    const char *names[24];
    int k = 0;
    for (; own[k]; k++) names[k] = own[k];
    for (int i = 0; common && i < 3; i++) names[k++] = COMMON[i];
    names[k] = NULL;
    return rt_check_args(vm, c, maxpos, names);
}

static int panel_text(rt_vm *vm, const rt_call *c, rt_svg_panel *p) {
    return rt_arg_string(vm, c, -1, "title", false, &p->title) || rt_arg_string(vm, c, -1, "xlabel", false, &p->xlabel) ||
           rt_arg_string(vm, c, -1, "ylabel", false, &p->ylabel);
}

static int write_svg(rt_vm *vm, const rt_call *c, const char *path, char *svg, rt_value *out) {
    if (!svg) return rt_fail(vm, 5, c->loc, "out of memory");
    char err[512];
    int rc = rt_write_file_atomic(path, svg, strlen(svg), err, sizeof err);
    free(svg);
    if (rc) return rt_fail(vm, 4, c->loc, "%s", err);
    *out = rt_none();
    return 0;
}

static int render_one(rt_vm *vm, const rt_call *c, const char *path, rt_svg_panel *p, rt_value *out) {
    return write_svg(vm, c, path, rt_svg_render(NULL, p, 1, 1), out);
}

/* A 1-D tensor argument (any shape is flattened) of n elements (n < 0: any). */
static int vec_arg(rt_vm *vm, const rt_call *c, const char *fn, int pos, const char *name, pool *P, int64_t n,
                   bool required, double **out, int64_t *len) {
    bk_tensor *t = NULL;
    *out = NULL;
    if (rt_arg_tensor(vm, c, pos, name, required, &t)) return -1;
    if (!t) return 0;
    if (n >= 0 && t->numel != n) {
        char buf[64];
        return pos >= 0 && pos < c->nargs
                   ? rt_error_arg(vm, c, pos, "%s: %s has shape %s, expected %lld values", fn, name, bk_shape_str(t, buf, sizeof buf), (long long)n)
                   : rt_error_kw(vm, c, name, "%s: %s has shape %s, expected %lld values", fn, name, bk_shape_str(t, buf, sizeof buf), (long long)n);
    }
    if (len) *len = t->numel;
    *out = values(vm, c, P, t);
    return *out ? 0 : -1;
}

/* labels=: a string or a list of k strings; *lab[i] NULL when absent. */
static int labels_arg(rt_vm *vm, const rt_call *c, const char *fn, int k, const char **lab) {
    for (int i = 0; i < k; i++) lab[i] = NULL;
    const rt_value *v = rt_arg(c, -1, "labels");
    if (!v) v = rt_arg(c, -1, "label");
    if (!v) return 0;
    const char *kw = rt_arg(c, -1, "labels") ? "labels" : "label";
    if (v->tag == RT_STR) {
        lab[0] = ((rt_str *)v->u.o)->s;
        return 0;
    }
    if (v->tag != RT_LIST) return rt_error_kw(vm, c, kw, "%s: %s must be a string or a list of strings", fn, kw);
    const rt_list *l = (const rt_list *)v->u.o;
    if (l->n != k) return rt_error_kw(vm, c, kw, "%s: %d labels for %d series", fn, l->n, k);
    for (int i = 0; i < k; i++) {
        if (l->items[i].tag != RT_STR) return rt_error_kw(vm, c, kw, "%s: %s must be strings", fn, kw);
        lab[i] = ((rt_str *)l->items[i].u.o)->s;
    }
    return 0;
}

static double *index_x(rt_vm *vm, const rt_call *c, pool *P, int64_t n) {
    double *x = pool_alloc(vm, c, P, n);
    if (x)
        for (int64_t i = 0; i < n; i++) x[i] = (double)i;
    return x;
}

/* ---- plot_lines ----------------------------------------------------------- */

static int b_plot_lines(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "data", "labels", "label", "smooth", "logy", NULL};
    static const char *const fn = "plot_lines";
    const char *path;
    rt_svg_panel p = {0};
    double smooth, logy;
    if (check(vm, c, 2, own, true) || rt_arg_string(vm, c, 0, "path", true, &path) || panel_text(vm, c, &p) ||
        rt_arg_number(vm, c, -1, "smooth", 1, false, &smooth) || rt_arg_number(vm, c, -1, "logy", 0, false, &logy))
        return -1;
    if (!(smooth >= 1 && smooth == floor(smooth) && smooth <= 1e6))
        return rt_error_kw(vm, c, "smooth", "%s: smooth must be a window length (an integer >= 1)", fn);
    const rt_value *d = rt_arg(c, 1, "data");
    if (!d) return rt_error(vm, c, "%s: missing the data (plot_lines(path, y) or plot_lines(path, {x: x, y: y}))", fn);
    const bk_tensor *ys = NULL, *xs = NULL;
    if (d->tag == RT_TENSOR) {
        ys = d->u.t;
    } else if (d->tag == RT_RECORD) {
        const rt_record *r = (const rt_record *)d->u.o;
        const rt_value *vx = rt_record_get(r, "x"), *vy = rt_record_get(r, "y"), *vys = rt_record_get(r, "ys");
        if ((vy != NULL) == (vys != NULL))
            return rt_error_arg(vm, c, 1, "%s: the record needs exactly one of y (one series) or ys (several, [k, n])", fn);
        const rt_value *v = vy ? vy : vys;
        if (v->tag != RT_TENSOR || (vx && vx->tag != RT_TENSOR))
            return rt_error_arg(vm, c, 1, "%s: x, y and ys must be tensors", fn);
        ys = v->u.t;
        xs = vx ? vx->u.t : NULL;
        if (vy && ys->ndim > 1) return rt_error_arg(vm, c, 1, "%s: y must be 1-D (use ys for several series)", fn);
    } else {
        return rt_error_arg(vm, c, 1, "%s: data must be a tensor or a record {x:, y:} / {x:, ys:}, got a %s", fn,
                            rt_type_name(*d));
    }
    if (ys->ndim > 2 || ys->numel == 0) return rt_error_arg(vm, c, 1, "%s: the series must be a non-empty [n] or [k, n] tensor", fn);
    int k = ys->ndim == 2 ? (int)ys->shape[0] : 1;
    int64_t n = ys->ndim == 2 ? ys->shape[1] : ys->numel;
    if (k > MAX_SERIES) return rt_error_arg(vm, c, 1, "%s: at most %d series, got %d", fn, MAX_SERIES, k);
    if (xs && xs->numel != n)
        return rt_error_arg(vm, c, 1, "%s: x has %lld values but each series has %lld", fn, (long long)xs->numel, (long long)n);
    const char *lab[MAX_SERIES];
    if (labels_arg(vm, c, fn, k, lab)) return -1;
    pool P = {0};
    rt_svg_series s[2 * MAX_SERIES];
    memset(s, 0, sizeof s);
    int rc = 0, ns = 0, w = (int)smooth;
    double *x = xs ? values(vm, c, &P, xs) : index_x(vm, c, &P, n);
    double *all = x ? values(vm, c, &P, ys) : NULL;
    if (!all) rc = -1;
    for (int i = 0; rc == 0 && i < k; i++) {
        double *y = all + (int64_t)i * n;
        if (w > 1) {
            /* raw series faintly, then its trailing moving average */
            double *m = pool_alloc(vm, c, &P, n);
            if (!m) {
                rc = -1;
                break;
            }
            double acc = 0;
            int64_t cnt = 0;
            for (int64_t j = 0; j < n; j++) {
                if (isfinite(y[j])) acc += y[j], cnt++;
                if (j >= w && isfinite(y[j - w])) acc -= y[j - w], cnt--;
                m[j] = cnt ? acc / (double)cnt : NAN;
            }
            s[ns++] = (rt_svg_series){.kind = RT_SVG_LINE, .x = x, .y = y, .n = n, .color = i, .opacity = 0.3, .width = 1};
            s[ns++] = (rt_svg_series){.kind = RT_SVG_LINE, .x = x, .y = m, .n = n, .color = i, .label = lab[i], .width = 2};
        } else {
            s[ns++] = (rt_svg_series){.kind = RT_SVG_LINE, .x = x, .y = y, .n = n, .color = i, .label = lab[i]};
        }
    }
    if (rc == 0) {
        p.series = s;
        p.nseries = ns;
        p.logy = logy != 0;
        rc = render_one(vm, c, path, &p, out);
    }
    pool_free(&P);
    return rc;
}

/* ---- plot_band ------------------------------------------------------------ */

typedef struct keyed {
    double x;
    int64_t i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *p = a, *q = b;
    if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
    return (p->i > q->i) - (p->i < q->i);
}

/* Reorder v[n] by the permutation idx. */
static void permute(double *v, const int64_t *idx, double *tmp, int64_t n) {
    if (!v) return;
    for (int64_t i = 0; i < n; i++) tmp[i] = v[idx[i]];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static int b_plot_band(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "x", "mean", "lower", "upper", "points", "truth", "label", NULL};
    static const char *const fn = "plot_band";
    const char *path, *label = NULL;
    rt_svg_panel p = {0};
    if (check(vm, c, 5, own, true) || rt_arg_string(vm, c, 0, "path", true, &path) || panel_text(vm, c, &p) ||
        rt_arg_string(vm, c, -1, "label", false, &label))
        return -1;
    pool P = {0};
    double *x, *m, *lo, *hi, *truth = NULL, *ptx = NULL, *pty = NULL;
    int64_t n = 0, np = 0;
    int rc = vec_arg(vm, c, fn, 1, "x", &P, -1, true, &x, &n);
    if (rc == 0) rc = vec_arg(vm, c, fn, 2, "mean", &P, n, true, &m, NULL);
    if (rc == 0) rc = vec_arg(vm, c, fn, 3, "lower", &P, n, true, &lo, NULL);
    if (rc == 0) rc = vec_arg(vm, c, fn, 4, "upper", &P, n, true, &hi, NULL);
    if (rc == 0) rc = vec_arg(vm, c, fn, -1, "truth", &P, n, false, &truth, NULL);
    const rt_value *pts = rt_arg(c, -1, "points");
    if (rc == 0 && pts) {
        const rt_value *px_ = pts->tag == RT_RECORD ? rt_record_get((const rt_record *)pts->u.o, "x") : NULL;
        const rt_value *py_ = pts->tag == RT_RECORD ? rt_record_get((const rt_record *)pts->u.o, "y") : NULL;
        if (!px_ || !py_ || px_->tag != RT_TENSOR || py_->tag != RT_TENSOR || px_->u.t->numel != py_->u.t->numel)
            rc = rt_error_kw(vm, c, "points", "%s: points must be a record {x: ..., y: ...} of equal-length tensors", fn);
        else if (!(ptx = values(vm, c, &P, px_->u.t)) || !(pty = values(vm, c, &P, py_->u.t)))
            rc = -1;
        else
            np = px_->u.t->numel;
    }
    if (rc == 0) {
        /* draw along increasing x */
        keyed *kx = malloc((size_t)(n ? n : 1) * sizeof *kx);
        int64_t *idx = kx ? malloc((size_t)(n ? n : 1) * sizeof *idx) : NULL;
        double *tmp = idx ? pool_alloc(vm, c, &P, n) : NULL;
        if (!tmp) {
            rc = idx ? -1 : rt_fail(vm, 5, c->loc, "out of memory");
            free(kx);
            free(idx);
        } else {
            for (int64_t i = 0; i < n; i++) kx[i] = (keyed){x[i], i};
            qsort(kx, (size_t)n, sizeof *kx, cmp_keyed);
            for (int64_t i = 0; i < n; i++) idx[i] = kx[i].i;
            free(kx);
            permute(m, idx, tmp, n);
            permute(lo, idx, tmp, n);
            permute(hi, idx, tmp, n);
            permute(truth, idx, tmp, n);
            permute(x, idx, tmp, n);
            free(idx);
        }
    }
    if (rc == 0) {
        rt_svg_series s[4];
        int ns = 0;
        s[ns++] = (rt_svg_series){.kind = RT_SVG_BAND, .x = x, .y = lo, .y2 = hi, .n = n, .color = 0, .label = "interval"};
        s[ns++] = (rt_svg_series){.kind = RT_SVG_LINE, .x = x, .y = m, .n = n, .color = 0, .label = label ? label : "mean", .width = 2};
        if (truth) s[ns++] = (rt_svg_series){.kind = RT_SVG_LINE, .x = x, .y = truth, .n = n, .color = 3, .label = "truth", .dashed = true};
        if (ptx) s[ns++] = (rt_svg_series){.kind = RT_SVG_POINTS, .x = ptx, .y = pty, .n = np, .color = 7, .label = "data"};
        p.series = s;
        p.nseries = ns;
        rc = render_one(vm, c, path, &p, out);
    }
    pool_free(&P);
    return rc;
}

/* ---- plot_hist / plot_density ------------------------------------------- */

static int b_plot_hist(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "samples", "bins", "density", "ref", NULL};
    static const char *const fn = "plot_hist";
    const char *path;
    rt_svg_panel p = {0};
    double bins, density;
    if (check(vm, c, 3, own, true) || rt_arg_string(vm, c, 0, "path", true, &path) || panel_text(vm, c, &p) ||
        rt_arg_number(vm, c, 2, "bins", 30, false, &bins) || rt_arg_number(vm, c, -1, "density", 1, false, &density))
        return -1;
    if (!(bins >= 1 && bins <= 10000 && bins == floor(bins)))
        return rt_error_kw(vm, c, "bins", "%s: bins must be an integer in 1..10000, got %g", fn, bins);
    pool P = {0};
    double *v, *ref = NULL;
    int64_t n = 0, nref = 0;
    int rc = vec_arg(vm, c, fn, 1, "samples", &P, -1, true, &v, &n);
    if (rc == 0) rc = vec_arg(vm, c, fn, -1, "ref", &P, -1, false, &ref, &nref);
    double *edges = rc == 0 ? pool_alloc(vm, c, &P, (int64_t)bins + 1) : NULL;
    double *h = edges ? pool_alloc(vm, c, &P, (int64_t)bins) : NULL;
    if (rc == 0 && !h) rc = -1;
    if (rc == 0 && rt_svg_histogram(v, n, (int)bins, density != 0, edges, h))
        rc = rt_error_arg(vm, c, 1, "%s: the samples have no finite value", fn);
    if (rc == 0) {
        rt_svg_series s[2] = {{.kind = RT_SVG_BARS, .x = edges, .y = h, .n = (int64_t)bins, .color = 0}};
        int ns = 1;
        if (ref) s[ns++] = (rt_svg_series){.kind = RT_SVG_VLINE, .x = ref, .n = nref, .color = 3, .label = "reference"};
        if (!p.ylabel) p.ylabel = density != 0 ? "density" : "count";
        p.series = s;
        p.nseries = ns;
        rc = render_one(vm, c, path, &p, out);
    }
    pool_free(&P);
    return rc;
}

static int b_plot_density(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "samples", "labels", "label", "ref", NULL};
    static const char *const fn = "plot_density";
    const char *path;
    rt_svg_panel p = {0};
    bk_tensor *t;
    if (check(vm, c, 2, own, true) || rt_arg_string(vm, c, 0, "path", true, &path) || panel_text(vm, c, &p) ||
        rt_arg_tensor(vm, c, 1, "samples", true, &t))
        return -1;
    if (t->ndim > 2 || t->numel == 0) return rt_error_arg(vm, c, 1, "%s: samples must be [S] or [S, k] (k curves)", fn);
    int k = t->ndim == 2 ? (int)t->shape[1] : 1;
    int64_t S = t->ndim == 2 ? t->shape[0] : t->numel;
    if (k > MAX_SERIES) return rt_error_arg(vm, c, 1, "%s: at most %d curves, got %d", fn, MAX_SERIES, k);
    const char *lab[MAX_SERIES];
    if (labels_arg(vm, c, fn, k, lab)) return -1;
    pool P = {0};
    double *ref = NULL;
    int64_t nref = 0;
    int rc = vec_arg(vm, c, fn, -1, "ref", &P, -1, false, &ref, &nref);
    double *all = rc == 0 ? values(vm, c, &P, t) : NULL, *col = all ? pool_alloc(vm, c, &P, S) : NULL;
    if (!col) rc = -1;
    rt_svg_series s[MAX_SERIES + 1];
    enum { GRID = 256 };
    for (int i = 0; rc == 0 && i < k; i++) {
        double *gx = pool_alloc(vm, c, &P, GRID), *gy = gx ? pool_alloc(vm, c, &P, GRID) : NULL;
        if (!gy) {
            rc = -1;
            break;
        }
        for (int64_t j = 0; j < S; j++) col[j] = all[j * k + i];
        if (rt_svg_kde(col, S, GRID, gx, gy)) {
            rc = rt_error_arg(vm, c, 1, "%s: curve %d has no finite value", fn, i);
            break;
        }
        s[i] = (rt_svg_series){.kind = RT_SVG_LINE, .x = gx, .y = gy, .n = GRID, .color = i, .label = lab[i], .width = 2};
    }
    if (rc == 0) {
        int ns = k;
        if (ref) s[ns++] = (rt_svg_series){.kind = RT_SVG_VLINE, .x = ref, .n = nref, .color = 3, .label = "reference"};
        if (!p.ylabel) p.ylabel = "density";
        p.series = s;
        p.nseries = ns;
        rc = render_one(vm, c, path, &p, out);
    }
    pool_free(&P);
    return rc;
}

/* ---- plot_scatter ------------------------------------------------------- */

static int b_plot_scatter(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "x", "y", "label", NULL};
    static const char *const fn = "plot_scatter";
    const char *path, *label = NULL;
    rt_svg_panel p = {0};
    if (check(vm, c, 3, own, true) || rt_arg_string(vm, c, 0, "path", true, &path) || panel_text(vm, c, &p) ||
        rt_arg_string(vm, c, -1, "label", false, &label))
        return -1;
    pool P = {0};
    double *x, *y;
    int64_t n = 0;
    int rc = vec_arg(vm, c, fn, 1, "x", &P, -1, true, &x, &n);
    if (rc == 0) rc = vec_arg(vm, c, fn, 2, "y", &P, n, true, &y, NULL);
    if (rc == 0) {
        rt_svg_series s = {.kind = RT_SVG_POINTS, .x = x, .y = y, .n = n, .color = 0, .label = label};
        p.series = &s;
        p.nseries = 1;
        rc = render_one(vm, c, path, &p, out);
    }
    pool_free(&P);
    return rc;
}

/* ---- plot_images -------------------------------------------------------- */

static int b_plot_images(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const own[] = {"path", "images", "cols", "vmin", "vmax", "invert", "title", NULL};
    static const char *const fn = "plot_images";
    const char *path, *title;
    bk_tensor *t;
    double cols, vmin, vmax, invert;
    if (check(vm, c, 3, own, false) || rt_arg_string(vm, c, 0, "path", true, &path) ||
        rt_arg_string(vm, c, -1, "title", false, &title) || rt_arg_tensor(vm, c, 1, "images", true, &t) ||
        rt_arg_number(vm, c, 2, "cols", 8, false, &cols) || rt_arg_number(vm, c, -1, "invert", 0, false, &invert))
        return -1;
    if (t->ndim != 2 && t->ndim != 3)
        return rt_error_arg(vm, c, 1, "%s: images must be [N, H, W] (or one [H, W] image), got %d dimensions", fn, t->ndim);
    if (!(cols >= 1 && cols <= 1000 && cols == floor(cols)))
        return rt_error_arg(vm, c, 2, "%s: cols must be an integer in 1..1000, got %g", fn, cols);
    int64_t n = t->ndim == 3 ? t->shape[0] : 1, h = t->shape[t->ndim - 2], w = t->shape[t->ndim - 1];
    if (t->numel == 0) return rt_error_arg(vm, c, 1, "%s: no images", fn);
    if (n * h * w > 4000000) return rt_error_arg(vm, c, 1, "%s: at most 4 million pixels in one picture", fn);
    pool P = {0};
    double *v = values(vm, c, &P, t);
    if (!v) return -1;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < t->numel; i++)
        if (isfinite(v[i])) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    if (!(lo <= hi)) lo = 0, hi = 1;
    int rc = rt_arg_number(vm, c, -1, "vmin", lo, false, &vmin) || rt_arg_number(vm, c, -1, "vmax", hi, false, &vmax) ? -1 : 0;
    if (rc == 0 && !(vmax >= vmin)) rc = rt_error_kw(vm, c, "vmax", "%s: vmax must be >= vmin", fn);
    if (rc == 0) rc = write_svg(vm, c, path, rt_svg_images(title, v, n, h, w, (int)cols, vmin, vmax, invert != 0), out);
    pool_free(&P);
    return rc;
}

const rt_builtin_def rt_plot_builtins[] = {
    {"plot_lines", b_plot_lines},
    {"plot_band", b_plot_band},
    {"plot_hist", b_plot_hist},
    {"plot_density", b_plot_density},
    {"plot_scatter", b_plot_scatter},
    {"plot_images", b_plot_images},
    {NULL, NULL},
};
