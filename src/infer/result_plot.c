/* result_plot.c - the pictures behind `ppl svi --plot` and `ppl sample
 * --plot`, drawn with the SVG writer of src/runtime/svg.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_io.h"
#include "result_plot.h"
#include "svg.h"

enum { MAX_CHAINS = 32, GRID = 256 };

static int write_doc(char *svg, const char *path, char *err, size_t errlen) {
    if (!svg) {
        snprintf(err, errlen, "out of memory drawing \"%s\"", path);
        return -1;
    }
    int rc = rt_write_file_atomic(path, svg, strlen(svg), err, errlen);
    free(svg);
    return rc;
}

static int plot_losses(const inf_result *r, const char *path, char *err, size_t errlen) {
    long n = r->nlosses;
    if (n < 1) {
        snprintf(err, errlen, "no SVI steps to plot");
        return -1;
    }
    double *x = malloc((size_t)n * 2 * sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    double *sm = x + n, lo = INFINITY, hi = -INFINITY, acc = 0;
    long w = n / 50 > 1 ? n / 50 : 1, cnt = 0;
    for (long i = 0; i < n; i++) {
        x[i] = (double)(i + 1);
        double v = r->losses[i];
        if (isfinite(v)) {
            lo = fmin(lo, v), hi = fmax(hi, v);
            acc += v, cnt++;
        }
        if (i >= w && isfinite(r->losses[i - w])) acc -= r->losses[i - w], cnt--;
        sm[i] = cnt ? acc / (double)cnt : NAN;
    }
    char title[96];
    snprintf(title, sizeof title, "SVI loss (final ELBO %.6g)", r->elbo);
    rt_svg_series s[2] = {
        {.kind = RT_SVG_LINE, .x = x, .y = r->losses, .n = n, .color = 0, .opacity = w > 1 ? 0.3 : 0, .width = 1,
         .label = w > 1 ? NULL : "-ELBO"},
        {.kind = RT_SVG_LINE, .x = x, .y = sm, .n = n, .color = 0, .width = 2, .label = "-ELBO (moving average)"},
    };
    /* a log axis when the loss is positive and falls by orders of magnitude */
    rt_svg_panel p = {.title = title, .xlabel = "step", .ylabel = "loss (-ELBO)", .logy = lo > 0 && hi / lo > 50,
                      .series = s, .nseries = w > 1 ? 2 : 1};
    int rc = write_doc(rt_svg_render(NULL, &p, 1, 1), path, err, errlen);
    free(x);
    return rc;
}

static int plot_first_latent(const inf_mcmc *m, const char *path, char *err, size_t errlen) {
    if (m->nnames < 1 || m->samples < 1) {
        snprintf(err, errlen, "no draws to plot");
        return -1;
    }
    int C = m->chains < MAX_CHAINS ? m->chains : MAX_CHAINS, S = m->samples;
    double *buf = malloc(((size_t)S * (C + 1) + (size_t)2 * GRID * C) * sizeof *buf);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    double *it = buf, *tr = buf + S, *kde = tr + (size_t)S * C;
    rt_svg_series ts[MAX_CHAINS], ds[MAX_CHAINS];
    char labels[MAX_CHAINS][16];
    for (int i = 0; i < S; i++) it[i] = (double)(i + 1);
    for (int c = 0; c < C; c++) {
        double *y = tr + (size_t)c * S, *gx = kde + (size_t)2 * GRID * c, *gy = gx + GRID;
        for (int i = 0; i < S; i++) y[i] = m->draws[((size_t)c * S + i) * m->nnames];
        snprintf(labels[c], sizeof labels[c], "chain %d", c + 1);
        ts[c] = (rt_svg_series){.kind = RT_SVG_LINE, .x = it, .y = y, .n = S, .color = c, .width = 1, .opacity = 0.8,
                                .label = C > 1 ? labels[c] : NULL};
        if (rt_svg_kde(y, S, GRID, gx, gy)) {
            for (int j = 0; j < GRID; j++) gx[j] = gy[j] = NAN;
        }
        ds[c] = (rt_svg_series){.kind = RT_SVG_LINE, .x = gx, .y = gy, .n = GRID, .color = c, .width = 2,
                                .label = C > 1 ? labels[c] : NULL};
    }
    char t1[160], t2[160], title[160];
    const char *name = m->names[0];
    snprintf(t1, sizeof t1, "trace of %.100s", name);
    snprintf(t2, sizeof t2, "posterior density of %.100s", name);
    snprintf(title, sizeof title, "NUTS: %d chain%s x %d draws, %d divergence%s", m->chains, m->chains == 1 ? "" : "s", S,
             m->divergences, m->divergences == 1 ? "" : "s");
    rt_svg_panel p[2] = {
        {.title = t1, .xlabel = "draw", .ylabel = name, .series = ts, .nseries = C},
        {.title = t2, .xlabel = name, .ylabel = "density", .series = ds, .nseries = C},
    };
    int rc = write_doc(rt_svg_render(title, p, 2, 2), path, err, errlen);
    free(buf);
    return rc;
}

int inf_result_plot(const inf_result *r, const inf_mcmc *m, const char *path, char *err, size_t errlen) {
    return m ? plot_first_latent(m, path, err, errlen) : plot_losses(r, path, err, errlen);
}
