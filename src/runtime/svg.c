/* svg.c - the SVG plot writer of svg.h.
 *
 * Layout of one panel (pixels): a plot area inside margins that hold the
 * tick labels, axis labels and the panel title.  Ticks are "nice" numbers
 * (1, 2 or 5 times a power of ten, about six per axis; powers of ten on a
 * log axis); grid lines are drawn at the ticks; series are clipped to the
 * plot area.  All text is XML-escaped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "strbuf.h"
#include "svg.h"

enum { PANEL_W = 640, PANEL_H = 400, M_LEFT = 74, M_RIGHT = 24, M_TOP = 36, M_BOTTOM = 54, TITLE_H = 34 };

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static const char *color(int i) { return PALETTE[(i % 10 + 10) % 10]; }

static void put_escaped(rt_sb *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': rt_sb_puts(b, "&amp;"); break;
        case '<': rt_sb_puts(b, "&lt;"); break;
        case '>': rt_sb_puts(b, "&gt;"); break;
        case '"': rt_sb_puts(b, "&quot;"); break;
        case '\'': rt_sb_puts(b, "&apos;"); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') rt_sb_put(b, " ", 1);
            else rt_sb_put(b, s, 1);
        }
    }
}

static void text(rt_sb *b, double x, double y, const char *anchor, int size, const char *extra, const char *s) {
    rt_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"%s%s>", x, y, anchor, size,
                 extra ? " " : "", extra ? extra : "");
    put_escaped(b, s);
    rt_sb_puts(b, "</text>\n");
}

/* ---- axes ------------------------------------------------------------- */

typedef struct axis {
    double lo, hi;     /* data range shown (log10 of it on a log axis) */
    bool log;
    double ticks[64];
    int nticks;
    double step;       /* tick step (linear axes) */
} axis;

static double nice_step(double range, int target) {
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    double m = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return m * p;
}

/* Fix the range (padding a little, widening a degenerate one) and ticks. */
static void axis_setup(axis *a, double lo, double hi, double pad, bool zero_floor) {
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * (fabs(lo) + fabs(hi)) || hi == lo) {
        double d = a->log ? 0.5 : (fabs(lo) > 0 ? 0.1 * fabs(lo) : 0.5);
        lo -= d;
        hi += d;
    }
    double span = hi - lo;
    bool floor0 = zero_floor && lo >= 0 && !a->log;
    a->lo = floor0 ? lo : lo - pad * span;
    a->hi = hi + pad * span;
    a->nticks = 0;
    if (a->log) {
        double k0 = ceil(a->lo - 1e-9), k1 = floor(a->hi + 1e-9);
        double every = k1 - k0 > 8 ? ceil((k1 - k0) / 8) : 1;
        for (double k = k0; k <= k1 && a->nticks < 64; k += every) a->ticks[a->nticks++] = k;
        /* less than a decade or two: 1-2-5 multiples, or all of 1..9 */
        static const double mult[2][9] = {{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
        static const int nmult[2] = {3, 9};
        for (int m = 0; m < 2 && a->nticks < 3; m++) {
            a->nticks = 0;
            for (double k = floor(a->lo) - 1; k <= a->hi && a->nticks < 60; k++)
                for (int j = 0; j < nmult[m]; j++) {
                    double v = k + log10(mult[m][j]);
                    if (v >= a->lo && v <= a->hi && a->nticks < 64) a->ticks[a->nticks++] = v;
                }
        }
        a->step = 1;
        return;
    }
    a->step = nice_step(a->hi - a->lo, 6);
    for (double t = ceil(a->lo / a->step - 1e-9) * a->step; t <= a->hi + 1e-9 * a->step && a->nticks < 64; t += a->step)
        a->ticks[a->nticks++] = fabs(t) < 1e-9 * a->step ? 0 : t;
}

static void tick_label(const axis *a, double t, char *buf, size_t n) {
    if (a->log) {
        double v = pow(10, t);
        if (t >= -3 && t <= 5) snprintf(buf, n, "%g", v);
        else if (fabs(t - round(t)) < 1e-9) snprintf(buf, n, "1e%d", (int)lround(t));
        else snprintf(buf, n, "%.3g", v);
        return;
    }
    double m = fmax(fabs(a->lo), fabs(a->hi));
    if (m >= 1e6 || (m < 1e-3 && m > 0)) {
        snprintf(buf, n, "%.3g", t);
        return;
    }
    int dec = (int)fmax(0, -floor(log10(a->step) + 1e-9));
    snprintf(buf, n, "%.*f", dec, t);
}

static double axis_value(const axis *a, double v) { return a->log ? (v > 0 ? log10(v) : NAN) : v; }

/* ---- panels ----------------------------------------------------------- */

typedef struct frame {
    double x0, y0, w, h;   /* plot area in pixels */
    axis ax, ay;
} frame;

static double px(const frame *f, double v) { return f->x0 + (v - f->ax.lo) / (f->ax.hi - f->ax.lo) * f->w; }
static double py(const frame *f, double v) {
    double u = axis_value(&f->ay, v);
    return f->y0 + f->h - (u - f->ay.lo) / (f->ay.hi - f->ay.lo) * f->h;
}

static void extend(double *lo, double *hi, double v) {
    if (!isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

static void data_range(const rt_svg_panel *p, frame *f) {
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    bool bars = false;
    for (int i = 0; i < p->nseries; i++) {
        const rt_svg_series *s = &p->series[i];
        int64_t nx = s->kind == RT_SVG_BARS ? s->n + 1 : s->n;
        for (int64_t k = 0; k < nx; k++) extend(&xl, &xh, s->x[k]);
        if (s->kind == RT_SVG_VLINE) continue;
        bars |= s->kind == RT_SVG_BARS;
        for (int64_t k = 0; k < s->n; k++) {
            extend(&yl, &yh, axis_value(&f->ay, s->y[k]));
            if (s->y2) extend(&yl, &yh, axis_value(&f->ay, s->y2[k]));
        }
    }
    if (bars && !f->ay.log) extend(&yl, &yh, 0);
    if (!(xl <= xh)) xl = 0, xh = 1;
    if (!(yl <= yh)) yl = 0, yh = 1;
    axis_setup(&f->ax, xl, xh, bars ? 0.0 : 0.02, false);
    axis_setup(&f->ay, yl, yh, 0.05, bars);
}

/* Polyline state: points are appended to an open <polyline>, which a
 * non-finite value closes. */
typedef struct pline {
    rt_sb *b;
    const rt_svg_series *s;
    bool open;
} pline;

static void pline_point(pline *L, double X, double Y) {
    rt_sb *b = L->b;
    if (!isfinite(X) || !isfinite(Y)) {
        if (L->open) rt_sb_puts(b, "\"/>\n");
        L->open = false;
        return;
    }
    if (!L->open) {
        const rt_svg_series *s = L->s;
        rt_sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.2g\" stroke-linejoin=\"round\"",
                     color(s->color), s->width > 0 ? s->width : 1.6);
        if (s->dashed) rt_sb_puts(b, " stroke-dasharray=\"6,4\"");
        if (s->opacity > 0) rt_sb_printf(b, " stroke-opacity=\"%.2g\"", s->opacity);
        rt_sb_puts(b, " points=\"");
        L->open = true;
    }
    rt_sb_printf(b, "%.2f,%.2f ", X, Y);
}

/* A long series (more than 4 points per pixel column) is thinned: of each
 * run of points falling in one column only the first, the lowest, the
 * highest and the last are drawn, which keeps the picture's envelope. */
static void draw_line(rt_sb *b, const frame *f, const rt_svg_series *s) {
    pline L = {b, s, false};
    bool thin = (double)s->n > 4 * f->w;
    int64_t k = 0;
    while (k < s->n) {
        double X = px(f, s->x[k]), Y = py(f, s->y[k]);
        if (!thin || !isfinite(X) || !isfinite(Y)) {
            pline_point(&L, X, Y);
            k++;
            continue;
        }
        /* the run of finite points in this pixel column */
        double col = floor(X), ylo = Y, yhi = Y, xlo = X, xhi = X, lx = X, ly = Y;
        int64_t e = k + 1;
        for (; e < s->n; e++) {
            double X2 = px(f, s->x[e]), Y2 = py(f, s->y[e]);
            if (!isfinite(X2) || !isfinite(Y2) || floor(X2) != col) break;
            if (Y2 < ylo) ylo = Y2, xlo = X2;
            if (Y2 > yhi) yhi = Y2, xhi = X2;
            lx = X2, ly = Y2;
        }
        pline_point(&L, X, Y);
        if (e - k > 2) {
            if (xlo <= xhi) {
                pline_point(&L, xlo, ylo);
                pline_point(&L, xhi, yhi);
            } else {
                pline_point(&L, xhi, yhi);
                pline_point(&L, xlo, ylo);
            }
        }
        if (e - k > 1) pline_point(&L, lx, ly);
        k = e;
    }
    if (L.open) rt_sb_puts(b, "\"/>\n");
}

static void draw_band(rt_sb *b, const frame *f, const rt_svg_series *s) {
    /* one closed path per run of finite points */
    int64_t k = 0;
    while (k < s->n) {
        while (k < s->n && !(isfinite(py(f, s->y[k])) && isfinite(py(f, s->y2[k])) && isfinite(s->x[k]))) k++;
        int64_t e = k;
        while (e < s->n && isfinite(py(f, s->y[e])) && isfinite(py(f, s->y2[e])) && isfinite(s->x[e])) e++;
        if (e > k) {
            rt_sb_printf(b, "<path fill=\"%s\" fill-opacity=\"%.2g\" stroke=\"none\" d=\"", color(s->color),
                         s->opacity > 0 ? s->opacity : 0.25);
            for (int64_t j = k; j < e; j++) rt_sb_printf(b, "%s%.2f,%.2f ", j == k ? "M" : "L", px(f, s->x[j]), py(f, s->y2[j]));
            for (int64_t j = e - 1; j >= k; j--) rt_sb_printf(b, "L%.2f,%.2f ", px(f, s->x[j]), py(f, s->y[j]));
            rt_sb_puts(b, "Z\"/>\n");
        }
        k = e;
    }
}

static void draw_points(rt_sb *b, const frame *f, const rt_svg_series *s) {
    double r = s->width > 0 ? s->width : (s->n > 2000 ? 1.2 : 2.6);
    rt_sb_printf(b, "<g fill=\"%s\" fill-opacity=\"%.2g\">\n", color(s->color), s->opacity > 0 ? s->opacity : 0.75);
    for (int64_t k = 0; k < s->n; k++) {
        double X = px(f, s->x[k]), Y = py(f, s->y[k]);
        if (isfinite(X) && isfinite(Y)) rt_sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2g\"/>\n", X, Y, r);
    }
    rt_sb_puts(b, "</g>\n");
}

static void draw_bars(rt_sb *b, const frame *f, const rt_svg_series *s) {
    rt_sb_printf(b, "<g fill=\"%s\" fill-opacity=\"%.2g\" stroke=\"white\" stroke-width=\"0.5\">\n", color(s->color),
                 s->opacity > 0 ? s->opacity : 0.6);
    double base = f->ay.log ? f->y0 + f->h : py(f, 0);
    for (int64_t k = 0; k < s->n; k++) {
        double X0 = px(f, s->x[k]), X1 = px(f, s->x[k + 1]), Y = py(f, s->y[k]);
        if (!isfinite(X0) || !isfinite(X1) || !isfinite(Y)) continue;
        rt_sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", fmin(X0, X1), fmin(Y, base),
                     fabs(X1 - X0), fabs(base - Y));
    }
    rt_sb_puts(b, "</g>\n");
}

static void draw_vlines(rt_sb *b, const frame *f, const rt_svg_series *s) {
    for (int64_t k = 0; k < s->n; k++) {
        double X = px(f, s->x[k]);
        if (!isfinite(X)) continue;
        rt_sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"%.2g\" "
                        "stroke-dasharray=\"6,4\"/>\n",
                     X, f->y0, X, f->y0 + f->h, color(s->color), s->width > 0 ? s->width : 1.5);
    }
}

static void draw_legend(rt_sb *b, const frame *f, const rt_svg_panel *p) {
    int n = 0;
    size_t longest = 0;
    for (int i = 0; i < p->nseries; i++)
        if (p->series[i].label && p->series[i].label[0]) {
            n++;
            size_t l = strlen(p->series[i].label);
            if (l > longest) longest = l;
        }
    if (!n) return;
    double w = 34 + 6.6 * (double)(longest > 40 ? 40 : longest), h = 8 + 18.0 * n;
    /* the corner that hides the fewest drawn points (top right on ties) */
    double best = INFINITY, x = 0, y = 0;
    for (int corner = 0; corner < 4; corner++) {
        double cx = corner % 2 == 0 ? f->x0 + f->w - w - 8 : f->x0 + 8;
        double cy = corner < 2 ? f->y0 + 8 : f->y0 + f->h - h - 8;
        double hidden = 0;
        for (int i = 0; i < p->nseries; i++) {
            const rt_svg_series *s = &p->series[i];
            if (s->kind == RT_SVG_VLINE) continue;
            for (int k = 0; k < 2; k++) {
                const double *v = k == 0 ? s->y : s->y2;
                if (!v) continue;
                int64_t step = s->n > 2000 ? s->n / 2000 : 1;
                for (int64_t j = 0; j < s->n; j += step) {
                    double X = s->kind == RT_SVG_BARS ? 0.5 * (px(f, s->x[j]) + px(f, s->x[j + 1])) : px(f, s->x[j]);
                    double Y = py(f, v[j]);
                    if (X >= cx && X <= cx + w && Y >= cy && Y <= cy + h) hidden += (double)step;
                    /* a bar hides everything between its top and the axis */
                    if (s->kind == RT_SVG_BARS && X >= cx && X <= cx + w && Y < cy) hidden += (double)step;
                }
            }
        }
        if (hidden < best) best = hidden, x = cx, y = cy;
    }
    rt_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" fill-opacity=\"0.85\" "
                    "stroke=\"#bbbbbb\"/>\n",
                 x, y, w, h);
    int row = 0;
    for (int i = 0; i < p->nseries; i++) {
        const rt_svg_series *s = &p->series[i];
        if (!s->label || !s->label[0]) continue;
        double cy = y + 13 + 18.0 * row++;
        switch (s->kind) {
        case RT_SVG_POINTS:
            rt_sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x + 15, cy, color(s->color));
            break;
        case RT_SVG_BAND:
        case RT_SVG_BARS:
            rt_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" fill=\"%s\" fill-opacity=\"0.4\"/>\n",
                         x + 6, cy - 5, color(s->color));
            break;
        default:
            rt_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                         x + 6, cy, x + 24, cy, color(s->color),
                         s->dashed || s->kind == RT_SVG_VLINE ? " stroke-dasharray=\"4,3\"" : "");
        }
        char buf[48];
        snprintf(buf, sizeof buf, "%.40s", s->label);
        text(b, x + 30, cy + 4, "start", 11, NULL, buf);
    }
}

static void draw_panel(rt_sb *b, const rt_svg_panel *p, double ox, double oy, int id) {
    frame f;
    memset(&f, 0, sizeof f);
    f.ay.log = p->logy;
    f.x0 = ox + M_LEFT;
    f.y0 = oy + M_TOP;
    f.w = PANEL_W - M_LEFT - M_RIGHT;
    f.h = PANEL_H - M_TOP - M_BOTTOM;
    data_range(p, &f);
    rt_sb_printf(b, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n", id,
                 f.x0, f.y0, f.w, f.h);
    rt_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"none\"/>\n",
                 f.x0, f.y0, f.w, f.h);
    /* grid and ticks */
    char lab[64];
    rt_sb_puts(b, "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    for (int i = 0; i < f.ax.nticks; i++) {
        double X = f.x0 + (f.ax.ticks[i] - f.ax.lo) / (f.ax.hi - f.ax.lo) * f.w;
        rt_sb_printf(b, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", X, f.y0, X, f.y0 + f.h);
    }
    for (int i = 0; i < f.ay.nticks; i++) {
        double Y = f.y0 + f.h - (f.ay.ticks[i] - f.ay.lo) / (f.ay.hi - f.ay.lo) * f.h;
        rt_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n", f.x0, Y, f.x0 + f.w, Y);
    }
    rt_sb_puts(b, "</g>\n<g stroke=\"#333333\" stroke-width=\"1\">\n");
    for (int i = 0; i < f.ax.nticks; i++) {
        double X = f.x0 + (f.ax.ticks[i] - f.ax.lo) / (f.ax.hi - f.ax.lo) * f.w;
        rt_sb_printf(b, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", X, f.y0 + f.h, X, f.y0 + f.h + 5);
    }
    for (int i = 0; i < f.ay.nticks; i++) {
        double Y = f.y0 + f.h - (f.ay.ticks[i] - f.ay.lo) / (f.ay.hi - f.ay.lo) * f.h;
        rt_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\"/>\n", f.x0 - 5, Y, f.x0, Y);
    }
    rt_sb_puts(b, "</g>\n<g fill=\"#333333\" font-family=\"sans-serif\">\n");
    for (int i = 0; i < f.ax.nticks; i++) {
        double X = f.x0 + (f.ax.ticks[i] - f.ax.lo) / (f.ax.hi - f.ax.lo) * f.w;
        tick_label(&f.ax, f.ax.ticks[i], lab, sizeof lab);
        text(b, X, f.y0 + f.h + 18, "middle", 11, NULL, lab);
    }
    for (int i = 0; i < f.ay.nticks; i++) {
        double Y = f.y0 + f.h - (f.ay.ticks[i] - f.ay.lo) / (f.ay.hi - f.ay.lo) * f.h;
        tick_label(&f.ay, f.ay.ticks[i], lab, sizeof lab);
        text(b, f.x0 - 8, Y + 4, "end", 11, NULL, lab);
    }
    if (p->xlabel && p->xlabel[0]) text(b, f.x0 + f.w / 2, f.y0 + f.h + 40, "middle", 13, NULL, p->xlabel);
    if (p->ylabel && p->ylabel[0]) {
        char rot[96];
        double X = ox + 16, Y = f.y0 + f.h / 2;
        snprintf(rot, sizeof rot, "transform=\"rotate(-90 %.1f %.1f)\"", X, Y);
        text(b, X, Y, "middle", 13, rot, p->ylabel);
    }
    if (p->title && p->title[0]) text(b, f.x0 + f.w / 2, oy + 22, "middle", 14, "font-weight=\"bold\"", p->title);
    rt_sb_puts(b, "</g>\n");
    /* series */
    rt_sb_printf(b, "<g clip-path=\"url(#clip%d)\">\n", id);
    static const int order[] = {RT_SVG_BAND, RT_SVG_BARS, RT_SVG_LINE, RT_SVG_VLINE, RT_SVG_POINTS};
    for (int o = 0; o < 5; o++)
        for (int i = 0; i < p->nseries; i++) {
            const rt_svg_series *s = &p->series[i];
            if (s->kind != order[o]) continue;
            switch (s->kind) {
            case RT_SVG_LINE: draw_line(b, &f, s); break;
            case RT_SVG_BAND: draw_band(b, &f, s); break;
            case RT_SVG_POINTS: draw_points(b, &f, s); break;
            case RT_SVG_BARS: draw_bars(b, &f, s); break;
            case RT_SVG_VLINE: draw_vlines(b, &f, s); break;
            }
        }
    rt_sb_puts(b, "</g>\n");
    rt_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", f.x0,
                 f.y0, f.w, f.h);
    draw_legend(b, &f, p);
}

static void header(rt_sb *b, int w, int h) {
    rt_sb_printf(b,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                 w, h, w, h);
}

char *rt_svg_render(const char *title, const rt_svg_panel *panels, int npanels, int cols) {
    if (cols < 1) cols = 1;
    if (cols > npanels) cols = npanels > 0 ? npanels : 1;
    int rows = npanels > 0 ? (npanels + cols - 1) / cols : 1;
    int top = title ? TITLE_H : 0;
    rt_sb b = {0};
    header(&b, cols * PANEL_W, rows * PANEL_H + top);
    if (title && title[0]) text(&b, cols * PANEL_W / 2.0, 24, "middle", 16, "font-weight=\"bold\" fill=\"#222222\"", title);
    for (int i = 0; i < npanels; i++) draw_panel(&b, &panels[i], (i % cols) * PANEL_W, top + (i / cols) * PANEL_H, i);
    rt_sb_puts(&b, "</svg>\n");
    return rt_sb_finish(&b);
}

/* ---- image grids ------------------------------------------------------- */

char *rt_svg_images(const char *title, const double *data, int64_t n, int64_t h, int64_t w, int cols, double vmin,
                    double vmax, bool invert) {
    if (cols < 1) cols = 1;
    if (cols > n) cols = n > 0 ? (int)n : 1;
    int64_t rows = n > 0 ? (n + cols - 1) / cols : 1;
    int64_t big = h > w ? h : w;
    /* a few images are drawn large, many small */
    double target = n <= 4 ? 256 : n <= 16 ? 160 : 112;
    double pix = big > 0 ? fmax(1.0, floor(target / (double)big)) : 1;
    double gap = 6, cw = pix * (double)w, ch = pix * (double)h;
    double W = cols * (cw + gap) + gap, top = title ? TITLE_H : 0, H = top + (double)rows * (ch + gap) + gap;
    double need = title ? 8.5 * (double)strlen(title) + 40 : 200;
    if (W < need) W = need;
    rt_sb b = {0};
    header(&b, (int)ceil(W), (int)ceil(H));
    if (title) text(&b, W / 2, 22, "middle", 14, "font-weight=\"bold\" fill=\"#222222\"", title);
    double range = vmax > vmin ? vmax - vmin : 1;
    rt_sb_puts(&b, "<g shape-rendering=\"crispEdges\" stroke=\"none\">\n");
    for (int64_t i = 0; i < n; i++) {
        double ox = gap + (double)(i % cols) * (cw + gap), oy = top + gap + (double)(i / cols) * (ch + gap);
        int bg = invert ? 255 : 0;
        rt_sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\"/>\n", ox, oy, cw, ch,
                     bg, bg, bg);
        const double *img = data + i * h * w;
        for (int64_t r = 0; r < h; r++) {
            int64_t c = 0;
            while (c < w) {
                double t = (img[r * w + c] - vmin) / range;
                t = isfinite(t) ? fmin(1, fmax(0, t)) : 0;
                int level = (int)lround(255 * (invert ? 1 - t : t));
                int64_t e = c + 1;
                while (e < w) {
                    double u = (img[r * w + e] - vmin) / range;
                    u = isfinite(u) ? fmin(1, fmax(0, u)) : 0;
                    if ((int)lround(255 * (invert ? 1 - u : u)) != level) break;
                    e++;
                }
                if (level != bg)
                    rt_sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\"/>\n",
                                 ox + pix * (double)c, oy + pix * (double)r, pix * (double)(e - c), pix, level, level, level);
                c = e;
            }
        }
    }
    rt_sb_puts(&b, "</g>\n</svg>\n");
    return rt_sb_finish(&b);
}

/* ---- density estimates --------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int rt_svg_kde(const double *x, int64_t n, int64_t m, double *gx, double *gy) {
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) v[k++] = x[i];
    if (k < 1 || m < 2) {
        free(v);
        return -1;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < k; i++) mean += v[i];
    mean /= (double)k;
    for (int64_t i = 0; i < k; i++) var += (v[i] - mean) * (v[i] - mean);
    double sd = k > 1 ? sqrt(var / (double)(k - 1)) : 0;
    double iqr = v[(int64_t)(0.75 * (double)(k - 1))] - v[(int64_t)(0.25 * (double)(k - 1))];
    double s = iqr > 0 ? fmin(sd, iqr / 1.34) : sd;
    double bw = 0.9 * s * pow((double)k, -0.2);
    if (!(bw > 0)) bw = fabs(mean) > 0 ? 1e-3 * fabs(mean) : 1e-3;
    double lo = v[0] - 3 * bw, hi = v[k - 1] + 3 * bw;
    double norm = 1.0 / ((double)k * bw * sqrt(2 * M_PI));
    for (int64_t j = 0; j < m; j++) {
        double g = lo + (hi - lo) * (double)j / (double)(m - 1), d = 0;
        /* only points within 8 bandwidths contribute measurably */
        for (int64_t i = 0; i < k; i++) {
            double z = (g - v[i]) / bw;
            if (z > -8 && z < 8) d += exp(-0.5 * z * z);
        }
        gx[j] = g;
        gy[j] = d * norm;
    }
    free(v);
    return 0;
}

int rt_svg_histogram(const double *x, int64_t n, int bins, bool density, double *edges, double *heights) {
    double lo = INFINITY, hi = -INFINITY;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            extend(&lo, &hi, x[i]);
            k++;
        }
    if (!k || bins < 1) return -1;
    if (hi == lo) lo -= 0.5, hi += 0.5;
    for (int b = 0; b <= bins; b++) edges[b] = lo + (hi - lo) * b / bins;
    for (int b = 0; b < bins; b++) heights[b] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        int b = (int)((x[i] - lo) / (hi - lo) * bins);
        heights[b < 0 ? 0 : b >= bins ? bins - 1 : b] += 1;
    }
    if (density)
        for (int b = 0; b < bins; b++) heights[b] /= (double)k * (hi - lo) / bins;
    return 0;
}
