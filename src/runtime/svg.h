/* svg.h - a small SVG plot writer: panels with axes, ticks, labels, a
 * legend, and series drawn as lines, bands, points, bars and reference
 * lines; and grids of grayscale images.  Pure C, no state: every function
 * renders into a malloc'd string (NULL on out-of-memory) that the caller
 * writes, e.g. with rt_write_file_atomic.  Used by the plot_* built-ins
 * (plot_builtins.c) and by `ppl svi|sample --plot`. */
#ifndef PPL_RUNTIME_SVG_H
#define PPL_RUNTIME_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RT_SVG_LINE,    /* x[n], y[n]: a polyline, broken at non-finite values */
    RT_SVG_BAND,    /* x[n], y[n] lower, y2[n] upper: a filled region */
    RT_SVG_POINTS,  /* x[n], y[n]: dots */
    RT_SVG_BARS,    /* x[n + 1] bin edges, y[n] heights (histograms) */
    RT_SVG_VLINE    /* x[n]: dashed vertical reference lines */
} rt_svg_kind;

typedef struct rt_svg_series {
    int kind;            /* rt_svg_kind */
    const double *x, *y, *y2;
    int64_t n;
    const char *label;   /* legend entry, or NULL */
    int color;           /* index into the palette (10 colours, cycled) */
    double width;        /* stroke width / point radius (0: default) */
    double opacity;      /* 0: the kind's default */
    bool dashed;
} rt_svg_series;

typedef struct rt_svg_panel {
    const char *title, *xlabel, *ylabel;  /* each may be NULL */
    bool logy;           /* logarithmic y axis (non-positive values skipped) */
    const rt_svg_series *series;
    int nseries;
} rt_svg_panel;

/* A document with `npanels` panels laid out in `cols` columns under an
 * optional overall title. */
char *rt_svg_render(const char *title, const rt_svg_panel *panels, int npanels, int cols);

/* A grid of n grayscale images (row-major [n, h, w] data), `cols` per row;
 * values are mapped linearly from [vmin, vmax] (clamped) to black..white,
 * or white..black when `invert`. */
char *rt_svg_images(const char *title, const double *data, int64_t n, int64_t h, int64_t w, int cols, double vmin,
                    double vmax, bool invert);

/* Gaussian kernel density estimate of x[n] (Silverman's bandwidth) on a
 * grid of m points spanning the data plus three bandwidths: gx[m], gy[m].
 * Non-finite values are ignored; -1 when fewer than one finite value. */
int rt_svg_kde(const double *x, int64_t n, int64_t m, double *gx, double *gy);

/* Histogram of x[n] in `bins` equal-width bins: edges[bins + 1] and
 * heights[bins] (counts, or a density integrating to 1).  -1 when no
 * value is finite. */
int rt_svg_histogram(const double *x, int64_t n, int bins, bool density, double *edges, double *heights);

#endif
