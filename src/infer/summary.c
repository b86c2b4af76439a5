/* summary.c - the summary table and the summary JSON of DESIGN 1.8. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "data_io.h"

typedef struct buf {
    char *s;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap ? b->cap : 256);
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

static void num(buf *b, double x, int width) {
    char s[40];
    if (isnan(x)) snprintf(s, sizeof s, "nan");
    else if (fabs(x) >= 1e5 || (fabs(x) < 1e-3 && x != 0)) snprintf(s, sizeof s, "%.3g", x);
    else snprintf(s, sizeof s, "%.3f", x);
    put(b, "%*s", width, s);
}

char *inf_result_table(const inf_result *r) {
    buf b = {0};
    int w = 8;
    for (int i = 0; i < r->nrows; i++)
        if ((int)strlen(r->rows[i].name) > w) w = (int)strlen(r->rows[i].name);
    bool mcmc = r->kind == 1;
    put(&b, "%-*s %9s %9s %9s %9s %9s", w, "", "mean", "sd", "q5", "q50", "q95");
    if (mcmc) put(&b, " %9s %9s %9s", "ess_bulk", "ess_tail", "r_hat");
    put(&b, "\n");
    for (int i = 0; i < r->nrows; i++) {
        const inf_row *x = &r->rows[i];
        put(&b, "%-*s ", w, x->name);
        num(&b, x->mean, 9);
        put(&b, " ");
        num(&b, x->sd, 9);
        put(&b, " ");
        num(&b, x->q5, 9);
        put(&b, " ");
        num(&b, x->q50, 9);
        put(&b, " ");
        num(&b, x->q95, 9);
        if (mcmc) {
            put(&b, " %9.0f %9.0f", x->ess_bulk, x->ess_tail);
            put(&b, " ");
            num(&b, x->r_hat, 9);
        }
        put(&b, "\n");
    }
    if (!mcmc && r->nlosses) put(&b, "\nfinal ELBO: %.6g (mean of the last 10%% of %ld steps)\n", r->elbo, r->nlosses);
    if (mcmc) {
        put(&b, "\ndivergences: %d\n", r->divergences);
        if (r->divergences > 0)
            put(&b, "warning: %d divergent transitions: the sampler could not follow the posterior's "
                    "curvature; raise target_accept (e.g. 0.95) or reparameterize (non-centered)\n",
                r->divergences);
        double worst = 0;
        for (int i = 0; i < r->nrows; i++)
            if (r->rows[i].r_hat > worst) worst = r->rows[i].r_hat;
        if (worst > 1.01)
            put(&b, "warning: r_hat up to %.3f > 1.01: the chains disagree; run longer warmup or more samples\n", worst);
        if (r->min_ebfmi < 0.3)
            put(&b, "warning: E-BFMI %.2f < 0.3 in a chain: the momentum resampling explores the energy "
                    "poorly (heavy tails or a funnel); reparameterize the model\n", r->min_ebfmi);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static void jnum(buf *b, double x) {
    if (isnan(x)) put(b, "NaN");
    else if (isinf(x)) put(b, x > 0 ? "Infinity" : "-Infinity");
    else put(b, "%.17g", x);
}

char *inf_result_json(bk_ctx *ctx, const inf_result *r) {
    buf b = {0};
    put(&b, "{\"summary\": {");
    for (int i = 0; i < r->nrows; i++) {
        const inf_row *x = &r->rows[i];
        put(&b, "%s\n  \"%s\": {\"mean\": ", i ? "," : "", x->name);
        jnum(&b, x->mean);
        put(&b, ", \"sd\": ");
        jnum(&b, x->sd);
        put(&b, ", \"q5\": ");
        jnum(&b, x->q5);
        put(&b, ", \"q50\": ");
        jnum(&b, x->q50);
        put(&b, ", \"q95\": ");
        jnum(&b, x->q95);
        if (r->kind == 1) {
            put(&b, ", \"ess_bulk\": ");
            jnum(&b, x->ess_bulk);
            put(&b, ", \"ess_tail\": ");
            jnum(&b, x->ess_tail);
            put(&b, ", \"r_hat\": ");
            jnum(&b, x->r_hat);
        }
        put(&b, "}");
    }
    put(&b, "\n}");
    if (r->kind == 0) {
        char *p = r->params ? rt_to_json(ctx, rt_obj_value((rt_obj *)&r->params->h)) : NULL;
        put(&b, ",\n\"params\": %s", p ? p : "{}");
        free(p);
        put(&b, ",\n\"elbo\": ");
        jnum(&b, r->elbo);
        put(&b, ",\n\"steps\": %ld", r->nlosses);
    } else {
        put(&b, ",\n\"divergences\": %d", r->divergences);
        put(&b, ",\n\"min_ebfmi\": ");
        jnum(&b, r->min_ebfmi);
    }
    put(&b, "}\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
