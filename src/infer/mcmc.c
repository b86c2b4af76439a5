/* mcmc.c - MCMC on a model: chains of NUTS (or HMC) over the potential of
 * potential.c, then the constrained draws of every latent and deterministic
 * site, the summary with R-hat and ESS, and the Stan CSV writer.
 *
 * Chains run one after another on the state's single backend context; each
 * has its own random stream (seed, chain), so the result does not depend on
 * anything but the seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc.h"
#include "potential.h"
#include "data_io.h"

static int logp_cb(void *ud, const double *q, double *logp, double *grad) {
    inf_potential *p = ud;
    /* after Ctrl-C every evaluation fails fast, so the chain ends quickly;
     * inf_mcmc_run then reports the interrupt */
    if (p->vm->interrupted) {
        *logp = -INFINITY;
        return -1;
    }
    if (inf_potential_eval(p, q, logp, grad, NULL)) {
        /* a density that cannot be evaluated here counts as -inf */
        rt_vm_clear_error(p->vm);
        *logp = -INFINITY;
        return -1;
    }
    return 0;
}

/* Find a starting point: uniform(-2, 2) in unconstrained space, retried. */
static int initial_point(inf_potential *p, bk_rng *rng, double *q, rt_loc loc) {
    double *g = malloc(sizeof(double) * (size_t)p->dim);
    if (!g) return rt_fail(p->vm, 5, loc, "out of memory");
    char *why = NULL;   /* the last evaluation error, if any */
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int64_t i = 0; i < p->dim; i++) q[i] = -2 + 4 * bk_rng_uniform(rng);
        double lp;
        int rc = inf_potential_eval(p, q, &lp, g, NULL);
        if (rc == 0 && isfinite(lp)) {
            bool ok = true;
            for (int64_t i = 0; i < p->dim; i++)
                if (!isfinite(g[i])) ok = false;
            if (ok) {
                free(g);
                free(why);
                return 0;
            }
        }
        if (rc) {
            free(why);
            why = rt_vm_errmsg(p->vm);
        }
        rt_vm_clear_error(p->vm);
    }
    free(g);
    /* an evaluation that failed says why better than "no finite density" */
    if (why) {
        char *m = why, *nl = strchr(m, '\n');
        if (nl) *nl = 0;
        if (strncmp(m, "error: ", 7) == 0) m += 7;
        int rc = rt_error_loc(p->vm, loc, "MCMC could not evaluate the log density at any of 100 "
                              "starting points: %s", m);
        free(why);
        return rc;
    }
    return rt_error_loc(p->vm, loc, "MCMC found no starting point with a finite log density in 100 "
                        "tries (uniform in (-2, 2) on the unconstrained scale); check the model's "
                        "supports and data");
}

void inf_mcmc_free(inf_mcmc *m) {
    if (!m) return;
    for (int i = 0; i < m->nnames; i++) free(m->names[i]);
    free(m->names);
    free(m->draws);
    for (int c = 0; c < m->chains; c++) mc_chain_out_free(&m->out[c]);
    free(m->out);
    free(m);
}

static int add_name(inf_mcmc *m, const char *name, int *cap) {
    if (m->nnames == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        char **n = realloc(m->names, (size_t)*cap * sizeof *n);
        if (!n) return -1;
        m->names = n;
    }
    m->names[m->nnames] = strdup(name);
    return m->names[m->nnames++] ? 0 : -1;
}

/* Name of scalar k of a site value: "theta[1, 2]" or "mu". */
static void scalar_name(char *buf, size_t n, const char *site, const bk_tensor *v, int64_t k) {
    if (v->ndim == 0) {
        snprintf(buf, n, "%s", site);
        return;
    }
    size_t len = (size_t)snprintf(buf, n, "%s[", site);
    int64_t idx[BK_MAXDIM], rem = k;
    for (int d = v->ndim - 1; d >= 0; d--) {
        idx[d] = rem % v->shape[d];
        rem /= v->shape[d];
    }
    for (int d = 0; d < v->ndim && len < n; d++) len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Record the constrained values of one draw (latent + deterministic sites)
 * in row `row`; row -1 only names the columns. */
static int record_draw(inf_mcmc *m, inf_potential *p, const double *q, int64_t row, int *cap, rt_loc loc) {
    rt_trace tr;
    double lp;
    bool g = bk_set_grad_enabled(p->vm->bk, false);
    int rc = inf_potential_eval(p, q, &lp, NULL, &tr);
    bk_set_grad_enabled(p->vm->bk, g);
    if (rc) return -1;
    int col = 0;
    for (int i = 0; i < tr.n && rc == 0; i++) {
        rt_site *s = &tr.sites[i];
        if (s->kind != RT_SITE_SAMPLE && s->kind != RT_SITE_DETERMINISTIC) continue;
        for (int64_t k = 0; k < s->value->numel; k++, col++) {
            if (row < 0) {
                char name[256];
                scalar_name(name, sizeof name, s->name, s->value, k);
                if (add_name(m, name, cap)) rc = rt_fail(p->vm, 5, loc, "out of memory");
                continue;
            }
            if (col >= m->nnames) {
                rc = rt_error_loc(p->vm, loc, "site \"%s\" changed shape between draws", s->name);
                break;
            }
            m->draws[row * m->nnames + col] = bk_get(s->value, k);
        }
    }
    rt_trace_clear(&tr);
    return rc;
}

int inf_mcmc_run(rt_vm *vm, rt_func *model, const rt_record *data, const inf_mcmc_opts *o, rt_loc loc,
                 inf_mcmc **out) {
    *out = NULL;
    if (o->chains < 1 || o->samples < 1 || o->warmup < 0)
        return rt_error_loc(vm, loc, "mcmc: chains and samples must be >= 1 and warmup >= 0");
    inf_potential *p;
    if (inf_potential_init(vm, model, data, loc, &p)) return -1;
    inf_mcmc *m = calloc(1, sizeof *m);
    double *q = malloc(sizeof(double) * (size_t)p->dim);
    if (!m || !q || !(m->out = calloc((size_t)o->chains, sizeof *m->out))) {
        free(q);
        free(m);
        inf_potential_free(p);
        return rt_fail(vm, 5, loc, "out of memory");
    }
    m->chains = o->chains;
    m->samples = o->samples;
    m->dim = (int)p->dim;
    int rc = 0, cap = 0;
    mc_opts mo = {.warmup = o->warmup, .samples = o->samples, .max_depth = o->max_depth,
                  .target_accept = o->target_accept, .dense = o->dense, .hmc_steps = o->hmc_steps};
    for (int c = 0; c < o->chains && rc == 0; c++) {
        bk_rng rng;
        bk_rng_init(&rng, o->seed, (uint64_t)c + 1);
        if (initial_point(p, &rng, q, loc)) {
            rc = -1;
            break;
        }
        char err[256] = "";
        int crc = mc_run_chain(logp_cb, p, (int)p->dim, q, &mo, &rng, &m->out[c], err, sizeof err);
        if (vm->interrupted) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
            break;
        }
        if (crc) {
            rc = rt_error_loc(vm, loc, "mcmc: chain %d: %s", c + 1, err);
            break;
        }
        if (vm->progress) {
            int div = 0;
            for (int k = 0; k <= c; k++)
                for (int i = 0; i < o->samples; i++) div += m->out[k].divergent[i] != 0;
            vm->progress(vm->progress_ud, "sample", c + 1, o->chains, div);
        }
        if (vm->interrupted) {
            vm->interrupted = 0;
            rc = rt_fail(vm, 7, loc, "interrupted");
        }
    }
    /* constrained draws: a first pass names the columns */
    if (rc == 0) rc = record_draw(m, p, m->out[0].draws, -1, &cap, loc);
    if (rc == 0 && !(m->draws = calloc((size_t)o->chains * (size_t)o->samples * (size_t)(m->nnames ? m->nnames : 1), sizeof(double))))
        rc = rt_fail(vm, 5, loc, "out of memory");
    for (int c = 0; c < o->chains && rc == 0; c++)
        for (int i = 0; i < o->samples && rc == 0; i++)
            rc = record_draw(m, p, m->out[c].draws + (size_t)i * (size_t)p->dim, (int64_t)c * o->samples + i, &cap, loc);
    free(q);
    inf_potential_free(p);
    if (rc) {
        inf_mcmc_free(m);
        return -1;
    }
    for (int c = 0; c < m->chains; c++)
        for (int i = 0; i < m->samples; i++) m->divergences += m->out[c].divergent[i] != 0;
    *out = m;
    return 0;
}

/* ------------------------------------------------------------- summary --- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

inf_result *inf_mcmc_result(const inf_mcmc *m) {
    inf_result *r = calloc(1, sizeof *r);
    int64_t n = (int64_t)m->chains * m->samples;
    double *col = malloc(sizeof(double) * (size_t)n), *sorted = malloc(sizeof(double) * (size_t)n);
    if (!r || !col || !sorted || !(r->rows = calloc((size_t)(m->nnames ? m->nnames : 1), sizeof *r->rows)) ||
        !(r->draws = calloc((size_t)(m->nnames ? m->nnames : 1), sizeof *r->draws))) {
        free(col);
        free(sorted);
        inf_result_free(r);
        return NULL;
    }
    r->kind = 1;
    r->ndraws = (int)n;
    r->divergences = m->divergences;
    r->min_ebfmi = INFINITY;
    for (int c = 0; c < m->chains; c++) {
        double e = mc_ebfmi(m->out[c].energy, m->samples);
        if (e < r->min_ebfmi) r->min_ebfmi = e;
    }
    for (int j = 0; j < m->nnames; j++) {
        for (int64_t i = 0; i < n; i++) col[i] = m->draws[i * m->nnames + j];
        inf_row *w = &r->rows[r->nrows];
        w->name = strdup(m->names[j]);
        r->draws[r->nrows] = malloc(sizeof(double) * (size_t)n);
        r->nrows++;
        if (!w->name || !r->draws[r->nrows - 1]) {
            free(col);
            free(sorted);
            inf_result_free(r);
            return NULL;
        }
        memcpy(r->draws[r->nrows - 1], col, sizeof(double) * (size_t)n);
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++) mean += col[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) var += (col[i] - mean) * (col[i] - mean);
        w->mean = mean;
        w->sd = n > 1 ? sqrt(var / (double)(n - 1)) : 0;
        memcpy(sorted, col, sizeof(double) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
        w->q5 = inf_quantile_sorted(sorted, (int)n, 0.05);
        w->q50 = inf_quantile_sorted(sorted, (int)n, 0.5);
        w->q95 = inf_quantile_sorted(sorted, (int)n, 0.95);
        w->ess_bulk = mc_ess_bulk(col, m->chains, m->samples);
        w->ess_tail = mc_ess_tail(col, m->chains, m->samples);
        w->r_hat = mc_rhat(col, m->chains, m->samples);
    }
    free(col);
    free(sorted);
    return r;
}

/* ------------------------------------------------------------ Stan CSV --- */

/* "theta[1, 2]" -> "theta.2.3" (Stan's 1-based dotted names). */
static void stan_name(const char *name, char *out, size_t n) {
    size_t k = 0;
    const char *b = strchr(name, '[');
    if (!b) {
        snprintf(out, n, "%s", name);
        return;
    }
    k = (size_t)snprintf(out, n, "%.*s", (int)(b - name), name);
    const char *s = b + 1;
    while (*s && *s != ']' && k < n) {
        char *end;
        long v = strtol(s, &end, 10);
        k += (size_t)snprintf(out + k, n - k, ".%ld", v + 1);
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
}

int inf_mcmc_write_csv(const inf_mcmc *m, const char *path, char *err, size_t errlen) {
    /* draws.csv with one chain; draws_1.csv ... with several */
    for (int c = 0; c < m->chains; c++) {
        char file[4096];
        if (m->chains == 1) {
            snprintf(file, sizeof file, "%s", path);
        } else {
            const char *dot = strrchr(path, '.');
            const char *slash = strrchr(path, '/');
            if (!dot || (slash && dot < slash)) dot = path + strlen(path);
            snprintf(file, sizeof file, "%.*s_%d%s", (int)(dot - path), path, c + 1, dot);
        }
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap);
        if (!buf) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int k_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                      \
        while (k_ >= 0 && (size_t)k_ >= cap - len) {                                               \
            char *nb = realloc(buf, cap * 2);                                                      \
            if (!nb) {                                                                             \
                free(buf);                                                                         \
                snprintf(err, errlen, "out of memory");                                            \
                return -1;                                                                         \
            }                                                                                      \
            buf = nb;                                                                              \
            cap *= 2;                                                                              \
            k_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                      \
        }                                                                                          \
        len += (size_t)k_;                                                                         \
    } while (0)
        const mc_chain_out *o = &m->out[c];
        EMIT("# model = ppl\n# method = sample (Default)\n#   sample\n#     num_samples = %d\n", m->samples);
        EMIT("#     algorithm = hmc (Default)\n#       hmc\n#         engine = nuts (Default)\n");
        EMIT("# chain_id = %d\n", c + 1);
        EMIT("lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__");
        for (int j = 0; j < m->nnames; j++) {
            char nm[300];
            stan_name(m->names[j], nm, sizeof nm);
            EMIT(",%s", nm);
        }
        EMIT("\n# Adaptation terminated\n# Step size = %.17g\n", o->final_step);
        for (int i = 0; i < m->samples; i++) {
            EMIT("%.17g,%.17g,%.17g,%d,%d,%d,%.17g", o->lp[i], o->accept_stat[i], o->stepsize[i],
                 (int)o->treedepth[i], (int)o->n_leapfrog[i], (int)o->divergent[i], o->energy[i]);
            const double *row = m->draws + ((size_t)c * m->samples + (size_t)i) * (size_t)m->nnames;
            for (int j = 0; j < m->nnames; j++) EMIT(",%.17g", row[j]);
            EMIT("\n");
        }
#undef EMIT
        int rc = rt_write_file_atomic(file, buf, len, err, errlen);
        free(buf);
        if (rc) return -1;
    }
    return 0;
}
