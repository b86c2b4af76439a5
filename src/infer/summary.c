/* summary.c - the summary table and the summary JSON of DESIGN 1.8. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "data_io.h"
#include "strbuf.h"

static void num(rt_sb *b, double x, int width) {
    char s[40];
    if (isnan(x)) snprintf(s, sizeof s, "nan");
    else if (fabs(x) >= 1e5 || (fabs(x) < 1e-3 && x != 0)) snprintf(s, sizeof s, "%.3g", x);
    else snprintf(s, sizeof s, "%.3f", x);
    rt_sb_printf(b, "%*s", width, s);
}

char *inf_result_table(const inf_result *r) {
    rt_sb b = {0};
    int w = 8;
    for (int i = 0; i < r->nrows; i++)
        if ((int)strlen(r->rows[i].name) > w) w = (int)strlen(r->rows[i].name);
    bool mcmc = r->kind == 1;
    rt_sb_printf(&b, "%-*s %9s %9s %9s %9s %9s", w, "", "mean", "sd", "q5", "q50", "q95");
    if (mcmc) rt_sb_printf(&b, " %9s %9s %9s", "ess_bulk", "ess_tail", "r_hat");
    rt_sb_printf(&b, "\n");
    for (int i = 0; i < r->nrows; i++) {
        const inf_row *x = &r->rows[i];
        rt_sb_printf(&b, "%-*s ", w, x->name);
        num(&b, x->mean, 9);
        rt_sb_printf(&b, " ");
        num(&b, x->sd, 9);
        rt_sb_printf(&b, " ");
        num(&b, x->q5, 9);
        rt_sb_printf(&b, " ");
        num(&b, x->q50, 9);
        rt_sb_printf(&b, " ");
        num(&b, x->q95, 9);
        if (mcmc) {
            rt_sb_printf(&b, " %9.0f %9.0f", x->ess_bulk, x->ess_tail);
            rt_sb_printf(&b, " ");
            num(&b, x->r_hat, 9);
        }
        rt_sb_printf(&b, "\n");
    }
    if (!mcmc && r->nlosses) rt_sb_printf(&b, "\nfinal ELBO: %.6g (mean of the last 10%% of %ld steps)\n", r->elbo, r->nlosses);
    const inf_epoch_log *ep = r->epochs;
    if (!mcmc && ep && ep->nepochs) {
        long k = ep->best_epoch;
        rt_sb_printf(&b, "epochs: %ld%s; best epoch %ld: train ELBO %.6g", ep->nepochs,
                     ep->stopped_early ? " (stopped early)" : "", k + 1, -ep->train[k]);
        if (ep->has_val) rt_sb_printf(&b, ", validation ELBO %.6g", -ep->val[k]);
        rt_sb_printf(&b, "%s\n", ep->restored ? " (its parameters restored)" : "");
    }
    if (mcmc) {
        rt_sb_printf(&b, "\ndivergences: %d\n", r->divergences);
        if (r->divergences > 0)
            rt_sb_printf(&b, "warning: %d divergent transitions: the sampler could not follow the posterior's "
                    "curvature; raise target_accept (e.g. 0.95) or reparameterize (non-centered)\n",
                r->divergences);
        double worst = 0;
        for (int i = 0; i < r->nrows; i++)
            if (r->rows[i].r_hat > worst) worst = r->rows[i].r_hat;
        if (worst > 1.01)
            rt_sb_printf(&b, "warning: r_hat up to %.3f > 1.01: the chains disagree; run longer warmup or more samples\n", worst);
        if (r->treedepth_hits > 0)
            rt_sb_printf(&b, "warning: %d of %d iterations reached the maximum tree depth %d: the trajectories were "
                    "cut short, so the sampler explores slowly; raise max_depth or reparameterize (strong "
                    "correlations or scales that differ a lot)\n", r->treedepth_hits, r->ndraws, r->max_depth);
        if (r->min_ebfmi < 0.3)
            rt_sb_printf(&b, "warning: E-BFMI %.2f < 0.3 in a chain: the momentum resampling explores the energy "
                    "poorly (heavy tails or a funnel); reparameterize the model\n", r->min_ebfmi);
    }
    return rt_sb_finish(&b);
}

static void jnum(rt_sb *b, double x) {
    if (isnan(x)) rt_sb_printf(b, "NaN");
    else if (isinf(x)) rt_sb_printf(b, x > 0 ? "Infinity" : "-Infinity");
    else rt_sb_printf(b, "%.17g", x);
}

char *inf_result_json(bk_ctx *ctx, const inf_result *r) {
    rt_sb b = {0};
    rt_sb_printf(&b, "{\"summary\": {");
    for (int i = 0; i < r->nrows; i++) {
        const inf_row *x = &r->rows[i];
        rt_sb_printf(&b, "%s\n  \"%s\": {\"mean\": ", i ? "," : "", x->name);
        jnum(&b, x->mean);
        rt_sb_printf(&b, ", \"sd\": ");
        jnum(&b, x->sd);
        rt_sb_printf(&b, ", \"q5\": ");
        jnum(&b, x->q5);
        rt_sb_printf(&b, ", \"q50\": ");
        jnum(&b, x->q50);
        rt_sb_printf(&b, ", \"q95\": ");
        jnum(&b, x->q95);
        if (r->kind == 1) {
            rt_sb_printf(&b, ", \"ess_bulk\": ");
            jnum(&b, x->ess_bulk);
            rt_sb_printf(&b, ", \"ess_tail\": ");
            jnum(&b, x->ess_tail);
            rt_sb_printf(&b, ", \"r_hat\": ");
            jnum(&b, x->r_hat);
        }
        rt_sb_printf(&b, "}");
    }
    rt_sb_printf(&b, "\n}");
    if (r->kind == 0) {
        char *p = r->params ? rt_to_json(ctx, rt_obj_value((rt_obj *)&r->params->h)) : NULL;
        rt_sb_printf(&b, ",\n\"params\": %s", p ? p : "{}");
        free(p);
        rt_sb_printf(&b, ",\n\"elbo\": ");
        jnum(&b, r->elbo);
        rt_sb_printf(&b, ",\n\"steps\": %ld", r->nlosses);
        if (r->epochs) {
            const inf_epoch_log *ep = r->epochs;
            rt_sb_printf(&b, ",\n\"epochs\": {\"train_elbo\": [");
            for (long e = 0; e < ep->nepochs; e++) {
                rt_sb_printf(&b, e ? ", " : "");
                jnum(&b, -ep->train[e]);
            }
            rt_sb_printf(&b, "], \"val_elbo\": [");
            for (long e = 0; ep->has_val && e < ep->nepochs; e++) {
                rt_sb_printf(&b, e ? ", " : "");
                jnum(&b, -ep->val[e]);
            }
            rt_sb_printf(&b, "], \"best_epoch\": %ld, \"stopped_early\": %s, \"restored\": %s}", ep->best_epoch,
                         ep->stopped_early ? "true" : "false", ep->restored ? "true" : "false");
        }
    } else {
        rt_sb_printf(&b, ",\n\"divergences\": %d", r->divergences);
        if (r->max_depth > 0)
            rt_sb_printf(&b, ",\n\"max_depth\": %d,\n\"treedepth_hits\": %d", r->max_depth, r->treedepth_hits);
        rt_sb_printf(&b, ",\n\"min_ebfmi\": ");
        jnum(&b, r->min_ebfmi);
        if (r->chain_secs) {   /* the CPU seconds of the Stan CSV's "Elapsed Time" */
            for (int ph = 0; ph < 2; ph++) {
                rt_sb_printf(&b, ph ? "], \"sampling\": [" : ",\n\"time\": {\"warmup\": [");
                for (int c = 0; c < r->nchains; c++) {
                    if (c) rt_sb_puts(&b, ", ");
                    jnum(&b, r->chain_secs[2 * c + ph]);
                }
            }
            rt_sb_puts(&b, "]}");
        }
    }
    rt_sb_printf(&b, "}\n");
    return rt_sb_finish(&b);
}
