/* diagnostics.c - convergence diagnostics over several chains, following
 * Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021) as ArviZ computes
 * them: rank-normalized split R-hat, bulk and tail ESS (Geyer's initial
 * monotone sequence on the autocovariance, computed directly rather than
 * by FFT), the MCSE of the mean, and E-BFMI.  Input layout: x[c * n + i]
 * for chain c, draw i.  Invalid input (NaN, fewer than 4 draws) gives NaN. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc_core.h"
#include "special.h"

static int invalid(const double *x, int chains, int n) {
    if (!x || chains < 1 || n < 4) return 1;
    for (size_t i = 0; i < (size_t)chains * n; i++)
        if (isnan(x[i])) return 1;
    return 0;
}

/* Halves each chain (dropping the middle draw of an odd chain): 2m chains
 * of n/2 draws. */
static double *split_chains(const double *x, int chains, int n, int *half) {
    int h = n / 2;
    double *s = malloc((size_t)2 * chains * h * sizeof *s);
    if (!s) return NULL;
    for (int c = 0; c < chains; c++) {
        memcpy(s + (size_t)(2 * c) * h, x + (size_t)c * n, (size_t)h * sizeof *s);
        memcpy(s + (size_t)(2 * c + 1) * h, x + (size_t)c * n + (n - h), (size_t)h * sizeof *s);
    }
    *half = h;
    return s;
}

/* Order-preserving map of a double to an unsigned key (NaN excluded):
 * negative numbers reverse, positive ones get the sign bit. */
static uint64_t sort_key(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b >> 63 ? ~b : b | (UINT64_C(1) << 63);
}

/* LSD radix sort of n keys by bytes, carrying idx along (idx may be NULL);
 * a byte all keys share costs one counting pass and no move.  With the
 * diagnostics' seven sorts of every column, qsort's comparison callbacks
 * were a quarter of a whole `ppl sample` run; this is several times faster
 * and its order is the same up to equal values (which every caller treats
 * alike). */
static int radix_sort(uint64_t *key, uint32_t *idx, size_t n) {
    uint64_t *k2 = malloc(n * sizeof *k2);
    uint32_t *i2 = idx ? malloc(n * sizeof *i2) : NULL;
    if (!k2 || (idx && !i2)) {
        free(k2);
        free(i2);
        return -1;
    }
    for (int shift = 0; shift < 64; shift += 8) {
        size_t cnt[256] = {0};
        for (size_t i = 0; i < n; i++) cnt[(key[i] >> shift) & 255]++;
        if (n && cnt[(key[0] >> shift) & 255] == n) continue;
        size_t pos = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = cnt[b];
            cnt[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++) {
            size_t d = cnt[(key[i] >> shift) & 255]++;
            k2[d] = key[i];
            if (idx) i2[d] = idx[i];
        }
        memcpy(key, k2, n * sizeof *key);
        if (idx) memcpy(idx, i2, n * sizeof *idx);
    }
    free(k2);
    free(i2);
    return 0;
}

int mc_sort_doubles(double *a, size_t n) {
    uint64_t *key = malloc((n ? n : 1) * sizeof *key);
    if (!key) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(a[i])) key[m++] = sort_key(a[i]);
    if (radix_sort(key, NULL, m)) {
        free(key);
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        uint64_t b = key[i] >> 63 ? key[i] & ~(UINT64_C(1) << 63) : ~key[i];
        memcpy(&a[i], &b, sizeof b);
    }
    for (size_t i = m; i < n; i++) a[i] = NAN;   /* NaNs last */
    free(key);
    return 0;
}

/* Writes the normal scores of the average ranks (Blom's offset 3/8) of
 * a[0..size) to z, given ord, the indices of a in ascending order. */
static void z_from_order(const double *a, const uint32_t *ord, size_t size, double *z) {
    for (size_t i = 0; i < size;) {
        size_t j = i;
        while (j + 1 < size && a[ord[j + 1]] == a[ord[i]]) j++;
        double avg = 0.5 * (double)(i + j) + 1.0;    /* 1-based ranks i+1..j+1 */
        double zi = bk_ndtri((avg - 0.375) / ((double)size + 0.25));
        for (size_t k = i; k <= j; k++) z[ord[k]] = zi;
        i = j + 1;
    }
}

/* The ascending order of a[0..size) (no NaN) in ord. */
static int argsort(const double *a, size_t size, uint32_t *ord) {
    if (size > UINT32_MAX) return -1;
    uint64_t *key = malloc((size ? size : 1) * sizeof *key);
    if (!key) return -1;
    for (size_t i = 0; i < size; i++) {
        key[i] = sort_key(a[i]);
        ord[i] = (uint32_t)i;
    }
    int rc = radix_sort(key, ord, size);
    free(key);
    return rc;
}

/* Replaces a[0..size) by the normal scores of its average ranks, the rank
 * normalization.  a holds no NaN (invalid()). */
static int z_scale(double *a, size_t size) {
    uint32_t *ord = malloc((size ? size : 1) * sizeof *ord);
    double *z = malloc((size ? size : 1) * sizeof *z);
    int rc = -1;
    if (ord && z && argsort(a, size, ord) == 0) {
        z_from_order(a, ord, size, z);
        memcpy(a, z, size * sizeof *a);
        rc = 0;
    }
    free(ord);
    free(z);
    return rc;
}

static double mean_of(const double *a, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i];
    return s / (double)n;
}

/* sample variance with ddof = 1 */
static double var_of(const double *a, size_t n) {
    double m = mean_of(a, n), s = 0.0;
    for (size_t i = 0; i < n; i++) s += (a[i] - m) * (a[i] - m);
    return s / (double)(n - 1);
}

/* Classic R-hat of m chains of n draws. */
static double rhat_basic(const double *a, int m, int n) {
    double *cm = malloc((size_t)m * sizeof *cm);
    if (!cm) return NAN;
    double w = 0.0;
    for (int c = 0; c < m; c++) {
        cm[c] = mean_of(a + (size_t)c * n, (size_t)n);
        w += var_of(a + (size_t)c * n, (size_t)n);
    }
    w /= m;
    double b = n * var_of(cm, (size_t)m);
    free(cm);
    return sqrt((b / w + n - 1.0) / n);
}

/* Mean over chains of the biased lag-t autocovariance. */
static double mean_acov(const double *a, const double *cm, int m, int n, int t) {
    double s = 0.0;
    for (int c = 0; c < m; c++) {
        const double *x = a + (size_t)c * n;
        double acc = 0.0;
        for (int i = 0; i + t < n; i++) acc += (x[i] - cm[c]) * (x[i + t] - cm[c]);
        s += acc / n;
    }
    return s / m;
}

/* Sums the autocorrelations with Geyer's initial positive sequence made
 * monotone; tau = -1 + 2 * sum. */
static double tau_hat(const double *a, const double *cm, int m, int n, double *rho) {
    double mean_var = mean_acov(a, cm, m, n, 0) * n / (n - 1.0);
    double var_plus = mean_var * (n - 1.0) / n;
    if (m > 1) var_plus += var_of(cm, (size_t)m);
    memset(rho, 0, (size_t)n * sizeof *rho);
    double even = 1.0, odd = 1.0 - (mean_var - mean_acov(a, cm, m, n, 1)) / var_plus;
    rho[0] = even;
    rho[1] = odd;
    int t = 1;
    while (t < n - 3 && even + odd > 0.0) {
        even = 1.0 - (mean_var - mean_acov(a, cm, m, n, t + 1)) / var_plus;
        odd = 1.0 - (mean_var - mean_acov(a, cm, m, n, t + 2)) / var_plus;
        if (even + odd >= 0.0) {
            rho[t + 1] = even;
            rho[t + 2] = odd;
        }
        t += 2;
    }
    int max_t = t - 2;
    if (even > 0.0) rho[max_t + 1] = even;
    for (t = 1; t <= max_t - 2; t += 2) {
        if (rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]) {
            rho[t + 1] = 0.5 * (rho[t - 1] + rho[t]);
            rho[t + 2] = rho[t + 1];
        }
    }
    double sum = 0.0;
    int nan_seen = 0;
    for (int i = 0; i < n; i++) nan_seen |= isnan(rho[i]);
    for (int i = 0; i <= max_t; i++) sum += rho[i];
    double tau = -1.0 + 2.0 * sum + (max_t + 1 < n ? rho[max_t + 1] : 0.0);
    return nan_seen ? NAN : tau;
}

/* ESS of m chains of n draws as they are. */
static double ess_basic(const double *a, int m, int n) {
    size_t size = (size_t)m * n;
    double lo = a[0], hi = a[0];
    for (size_t i = 1; i < size; i++) {
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    if (hi - lo < 1e-15) return (double)size;   /* constant: no information lost */
    if (n < 4) return NAN;
    double *cm = malloc((size_t)m * sizeof *cm);
    double *rho = malloc((size_t)n * sizeof *rho);
    double tau = NAN;
    if (cm && rho) {
        for (int c = 0; c < m; c++) cm[c] = mean_of(a + (size_t)c * n, (size_t)n);
        tau = tau_hat(a, cm, m, n, rho);
    }
    free(cm);
    free(rho);
    double floor_tau = 1.0 / log10((double)size);
    if (tau < floor_tau) tau = floor_tau;
    return (double)size / tau;
}

/* NumPy's median (mean of the two middle values for even sizes). */
static int median_of(const double *a, size_t size, double *med) {
    double *s = malloc(size * sizeof *s);
    if (!s) return -1;
    memcpy(s, a, size * sizeof *s);
    if (mc_sort_doubles(s, size)) {
        free(s);
        return -1;
    }
    *med = size % 2 ? s[size / 2] : 0.5 * (s[size / 2 - 1] + s[size / 2]);
    free(s);
    return 0;
}

/* R's type-7 quantile (linear interpolation) of all values. */
static int quantile7(const double *a, size_t size, double p, double *q) {
    double *s = malloc(size * sizeof *s);
    if (!s) return -1;
    memcpy(s, a, size * sizeof *s);
    if (mc_sort_doubles(s, size)) {
        free(s);
        return -1;
    }
    double hpos = (double)(size - 1) * p;
    size_t k = (size_t)floor(hpos);
    double g = hpos - (double)k;
    *q = k + 1 < size ? (1.0 - g) * s[k] + g * s[k + 1] : s[size - 1];
    free(s);
    return 0;
}

double mc_rhat(const double *x, int chains, int n) {
    /* ArviZ wants 2 chains; one chain still splits into two, as the
     * `posterior` package allows */
    if (invalid(x, chains, n)) return NAN;
    int h;
    double *s = split_chains(x, chains, n, &h);
    size_t size = (size_t)2 * chains * h;
    double *f = malloc(size * sizeof *f);
    double med, r = NAN;
    if (s && f && median_of(s, size, &med) == 0) {
        for (size_t i = 0; i < size; i++) f[i] = fabs(s[i] - med);
        if (z_scale(s, size) == 0 && z_scale(f, size) == 0) {
            double bulk = rhat_basic(s, 2 * chains, h), tail = rhat_basic(f, 2 * chains, h);
            r = bulk > tail ? bulk : tail;
            if (isnan(bulk) || isnan(tail)) r = NAN;
        }
    }
    free(s);
    free(f);
    return r;
}

double mc_ess_bulk(const double *x, int chains, int n) {
    if (invalid(x, chains, n)) return NAN;
    int h;
    double *s = split_chains(x, chains, n, &h);
    double e = NAN;
    if (s && z_scale(s, (size_t)2 * chains * h) == 0) e = ess_basic(s, 2 * chains, h);
    free(s);
    return e;
}

double mc_ess_mean(const double *x, int chains, int n) {
    if (invalid(x, chains, n)) return NAN;
    int h;
    double *s = split_chains(x, chains, n, &h);
    double e = s ? ess_basic(s, 2 * chains, h) : NAN;
    free(s);
    return e;
}

/* ESS of the indicator x <= (the p-quantile of all draws). */
static double ess_quantile(const double *x, int chains, int n, double p) {
    size_t size = (size_t)chains * n;
    double q;
    double *ind = malloc(size * sizeof *ind);
    double e = NAN;
    if (ind && quantile7(x, size, p, &q) == 0) {
        for (size_t i = 0; i < size; i++) ind[i] = x[i] <= q ? 1.0 : 0.0;
        e = mc_ess_mean(ind, chains, n);
    }
    free(ind);
    return e;
}

double mc_ess_tail(const double *x, int chains, int n) {
    if (invalid(x, chains, n)) return NAN;
    double lo = ess_quantile(x, chains, n, 0.05), hi = ess_quantile(x, chains, n, 0.95);
    if (isnan(lo) || isnan(hi)) return NAN;
    return lo < hi ? lo : hi;
}

double mc_mcse_mean(const double *x, int chains, int n) {
    if (invalid(x, chains, n)) return NAN;
    double ess = mc_ess_mean(x, chains, n);
    return sqrt(var_of(x, (size_t)chains * n)) / sqrt(ess);
}

/* E-BFMI of one chain: mean squared energy change over the energy variance
 * (ddof = 1, as ArviZ's bfmi). */
double mc_ebfmi(const double *energy, int n) {
    if (!energy || n < 2) return NAN;
    double num = 0.0;
    for (int i = 1; i < n; i++) num += (energy[i] - energy[i - 1]) * (energy[i] - energy[i - 1]);
    num /= (n - 1);
    return num / var_of(energy, (size_t)n);
}

/* R's type-7 quantile of sorted values. */
static double quantile7_sorted(const double *s, size_t size, double p) {
    double hpos = (double)(size - 1) * p;
    size_t k = (size_t)floor(hpos);
    double g = hpos - (double)k;
    return k + 1 < size ? (1.0 - g) * s[k] + g * s[k + 1] : s[size - 1];
}

static double ess_below(const double *x, size_t size, double q, double *ind, int chains, int n) {
    for (size_t i = 0; i < size; i++) ind[i] = x[i] <= q ? 1.0 : 0.0;
    return mc_ess_mean(ind, chains, n);
}

/* R-hat, bulk and tail ESS of one column with two sorts instead of the
 * seven that mc_rhat, mc_ess_bulk and mc_ess_tail do apart (the summary's
 * cost was mostly sorting): with an even n the split chains are x itself
 * in memory, so one order of x gives the median, the quantiles and the
 * bulk ranks, and only the folded draws need a sort of their own.  The
 * results are those of the three functions, bit for bit. */
int mc_column_diag(const double *x, int chains, int n, double *sorted, double *rhat, double *ess_bulk,
                   double *ess_tail) {
    size_t size = (size_t)chains * (size_t)n;
    if (invalid(x, chains, n) || n % 2) {
        *rhat = mc_rhat(x, chains, n);
        *ess_bulk = mc_ess_bulk(x, chains, n);
        *ess_tail = mc_ess_tail(x, chains, n);
        if (sorted) {
            memcpy(sorted, x, size * sizeof *sorted);
            if (mc_sort_doubles(sorted, size)) return -1;
        }
        return 0;
    }
    uint32_t *ord = malloc(size * sizeof *ord);
    double *s = malloc(size * sizeof *s), *z = malloc(size * sizeof *z), *f = malloc(size * sizeof *f);
    int rc = -1;
    if (ord && s && z && f && argsort(x, size, ord) == 0) {
        for (size_t i = 0; i < size; i++) s[i] = x[ord[i]];
        if (sorted) memcpy(sorted, s, size * sizeof *s);
        double med = size % 2 ? s[size / 2] : 0.5 * (s[size / 2 - 1] + s[size / 2]);
        int h = n / 2;
        z_from_order(x, ord, size, z);   /* bulk: the split chains' ranks */
        double bulk = rhat_basic(z, 2 * chains, h);
        *ess_bulk = ess_basic(z, 2 * chains, h);
        double q05 = quantile7_sorted(s, size, 0.05), q95 = quantile7_sorted(s, size, 0.95);
        for (size_t i = 0; i < size; i++) f[i] = fabs(x[i] - med);
        if (argsort(f, size, ord) == 0) {
            z_from_order(f, ord, size, z);
            double tail = rhat_basic(z, 2 * chains, h);
            *rhat = bulk > tail ? bulk : tail;
            if (isnan(bulk) || isnan(tail)) *rhat = NAN;
            double lo = ess_below(x, size, q05, f, chains, n), hi = ess_below(x, size, q95, f, chains, n);
            *ess_tail = isnan(lo) || isnan(hi) ? NAN : lo < hi ? lo : hi;
            rc = 0;
        }
    }
    free(ord);
    free(s);
    free(z);
    free(f);
    return rc;
}
