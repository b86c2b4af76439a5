/* adapt.c - Stan's warmup adaptation: dual averaging of the step size,
 * the windowed schedule of metric estimation, Welford (co)variance with
 * Stan's regularization, and the "find a reasonable step size" heuristic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc_core.h"

/* ---- dual averaging (Hoffman & Gelman 2014, section 3.2) -------------- */

void mc_dual_avg_init(mc_dual_avg *da, double eps0, double delta) {
    da->delta = delta;
    da->gamma = 0.05;
    da->kappa = 0.75;
    da->t0 = 10.0;
    mc_dual_avg_restart(da, eps0);
}

void mc_dual_avg_restart(mc_dual_avg *da, double eps0) {
    da->mu = log(10.0 * eps0);
    da->counter = 0.0;
    da->s_bar = 0.0;
    da->x_bar = 0.0;
}

double mc_dual_avg_learn(mc_dual_avg *da, double accept_stat) {
    double a = accept_stat > 1.0 ? 1.0 : accept_stat;
    if (isnan(a)) a = 0.0;
    da->counter += 1.0;
    double eta = 1.0 / (da->counter + da->t0);
    da->s_bar = (1.0 - eta) * da->s_bar + eta * (da->delta - a);
    double x = da->mu - da->s_bar * sqrt(da->counter) / da->gamma;
    double x_eta = pow(da->counter, -da->kappa);
    da->x_bar = (1.0 - x_eta) * da->x_bar + x_eta * x;
    return exp(x);
}

double mc_dual_avg_final(const mc_dual_avg *da) {
    return exp(da->x_bar);
}

/* ---- warmup windows --------------------------------------------------- */

void mc_windows_init(mc_windows *w, int num_warmup) {
    w->num_warmup = num_warmup;
    w->init_buffer = 75;
    w->term_buffer = 50;
    w->base_window = 25;
    w->enabled = num_warmup >= 20;
    /* too short for the default layout: 15% / 75% / 10%, as Stan does */
    if (w->enabled && w->init_buffer + w->base_window + w->term_buffer > num_warmup) {
        w->init_buffer = (int)(0.15 * num_warmup);
        w->term_buffer = (int)(0.1 * num_warmup);
        w->base_window = num_warmup - (w->init_buffer + w->term_buffer);
    }
    w->counter = 0;
    w->window_size = w->base_window;
    w->next_window = w->init_buffer + w->window_size - 1;
}

int mc_windows_in_slow(const mc_windows *w) {
    return w->counter >= w->init_buffer && w->counter < w->num_warmup - w->term_buffer &&
           w->counter != w->num_warmup;
}

int mc_windows_end_slow(const mc_windows *w) {
    return w->counter == w->next_window && w->counter != w->num_warmup;
}

/* Doubles the window; a window that would leave less than twice its size
 * before the terminal buffer is stretched to reach it. */
void mc_windows_next(mc_windows *w) {
    int last = w->num_warmup - w->term_buffer - 1;
    if (w->next_window == last) return;
    w->window_size *= 2;
    w->next_window = w->counter + w->window_size;
    if (w->next_window != last) {
        int boundary = w->next_window + 2 * w->window_size;
        if (boundary >= w->num_warmup - w->term_buffer) w->next_window = last;
    }
}

/* ---- Welford estimates ------------------------------------------------ */

int mc_welford_init(mc_welford *w, int d, int dense) {
    memset(w, 0, sizeof *w);
    w->d = d;
    w->dense = dense;
    w->mean = calloc((size_t)d, sizeof(double));
    w->m2 = calloc(dense ? (size_t)d * d : (size_t)d, sizeof(double));
    w->delta = calloc((size_t)d, sizeof(double));
    if (!w->mean || !w->m2 || !w->delta) {
        mc_welford_free(w);
        return -1;
    }
    return 0;
}

void mc_welford_restart(mc_welford *w) {
    int d = w->d;
    w->n = 0;
    memset(w->mean, 0, (size_t)d * sizeof(double));
    memset(w->m2, 0, (w->dense ? (size_t)d * d : (size_t)d) * sizeof(double));
}

void mc_welford_add(mc_welford *w, const double *q) {
    int d = w->d;
    w->n++;
    for (int i = 0; i < d; i++) {
        w->delta[i] = q[i] - w->mean[i];
        w->mean[i] += w->delta[i] / (double)w->n;
    }
    if (!w->dense) {
        for (int i = 0; i < d; i++) w->m2[i] += w->delta[i] * (q[i] - w->mean[i]);
        return;
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) w->m2[(size_t)i * d + j] += w->delta[i] * (q[j] - w->mean[j]);
}

void mc_welford_metric(const mc_welford *w, double *inv_metric) {
    int d = w->d;
    double n = (double)w->n;
    double shrink = n / (n + 5.0), jitter = 1e-3 * (5.0 / (n + 5.0));
    double denom = n > 1 ? n - 1.0 : 1.0;
    if (!w->dense) {
        for (int i = 0; i < d; i++) inv_metric[i] = shrink * (w->m2[i] / denom) + jitter;
        return;
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            /* symmetrize: the running update is symmetric only up to rounding */
            double c = 0.5 * (w->m2[(size_t)i * d + j] + w->m2[(size_t)j * d + i]) / denom;
            inv_metric[(size_t)i * d + j] = shrink * c + (i == j ? jitter : 0.0);
        }
}

void mc_welford_free(mc_welford *w) {
    free(w->mean);
    free(w->m2);
    free(w->delta);
    w->mean = w->m2 = w->delta = NULL;
}

/* ---- initial step size ------------------------------------------------ */

/* Energy change H0 - H after one leapfrog step of eps from q with fresh
 * momentum; -inf when the density fails. */
static int one_step_delta(const mc_ham *h, bk_rng *rng, const double *q0, double lp0,
                          const double *g0, double eps, double *buf, double *delta) {
    int d = h->d;
    double *q = buf, *p = buf + d, *g = buf + 2 * d;
    memcpy(q, q0, (size_t)d * sizeof(double));
    memcpy(g, g0, (size_t)d * sizeof(double));
    double lp = lp0;
    mc_sample_momentum(h, rng, p);
    double H0 = -lp + mc_kinetic(h, p);
    const double *m = h->inv_metric;
    int rc = mc_leapfrog(h->f, h->ud, d, m, h->dense, eps, 1, q, p, g, &lp);
    if (rc != 0 && lp != -INFINITY) return -1;   /* out of memory */
    double H = -lp + mc_kinetic(h, p);
    if (isnan(H)) H = INFINITY;
    *delta = H0 - H;
    return 0;
}

int mc_find_step_size(const mc_ham *h, bk_rng *rng, const double *q, double logp,
                      const double *grad, double *eps, char *err, size_t errlen) {
    if (!(*eps > 0.0) || *eps > 1e7 || isnan(*eps)) return 0;
    double *buf = malloc(3 * (size_t)h->d * sizeof(double));
    if (!buf) {
        snprintf(err, errlen, "mcmc: out of memory");
        return -1;
    }
    const double target = log(0.8);
    double delta;
    int rc = one_step_delta(h, rng, q, logp, grad, *eps, buf, &delta);
    int dir = delta > target ? 1 : -1;
    while (rc == 0) {
        rc = one_step_delta(h, rng, q, logp, grad, *eps, buf, &delta);
        if (rc != 0) break;
        if (dir == 1 && !(delta > target)) break;
        if (dir == -1 && !(delta < target)) break;
        *eps = dir == 1 ? 2.0 * *eps : 0.5 * *eps;
        if (*eps > 1e7) {
            snprintf(err, errlen, "mcmc: step size search diverged to infinity "
                                  "(is the posterior improper?)");
            rc = -2;
        } else if (*eps == 0.0) {
            snprintf(err, errlen, "mcmc: step size search collapsed to zero "
                                  "(the density may be discontinuous or its gradient wrong)");
            rc = -2;
        }
    }
    if (rc == -1) snprintf(err, errlen, "mcmc: out of memory");
    free(buf);
    return rc == 0 ? 0 : -1;
}
