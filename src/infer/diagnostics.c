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

/* sample variance with ddof = 1 about m, the mean of a */
static double var_about(const double *a, size_t n, double m) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (a[i] - m) * (a[i] - m);
    return s / (double)(n - 1);
}

static double var_of(const double *a, size_t n) { return var_about(a, n, mean_of(a, n)); }

/* Classic R-hat of m chains of n draws; their means left in cm. */
static double rhat_cm(const double *a, int m, int n, double *cm) {
    double w = 0.0;
    for (int c = 0; c < m; c++) {
        cm[c] = mean_of(a + (size_t)c * n, (size_t)n);
        w += var_about(a + (size_t)c * n, (size_t)n, cm[c]);   /* var_of without its second mean */
    }
    w /= m;
    double b = n * var_of(cm, (size_t)m);
    return sqrt((b / w + n - 1.0) / n);
}

static double rhat_basic(const double *a, int m, int n) {
    double *cm = malloc((size_t)m * sizeof *cm);
    double r = cm ? rhat_cm(a, m, n, cm) : NAN;
    free(cm);
    return r;
}

/* The mean over chains of the biased lag-t and lag-(t + 1) autocovariances
 * of the centered draws c (chain ch: c[ch * n + i], its mean subtracted)
 * in one pass; each sum runs over i in order, chain by chain. */
static void acov_pair(const double *c, int m, int n, int t, double *at, double *at1) {
    double st = 0.0, st1 = 0.0;
    for (int ch = 0; ch < m; ch++) {
        const double *x = c + (size_t)ch * n;
        double a0 = 0.0, a1 = 0.0;
        int i = 0;
        for (; i + t + 1 < n; i++) {
            a0 += x[i] * x[i + t];
            a1 += x[i] * x[i + t + 1];
        }
        for (; i + t < n; i++) a0 += x[i] * x[i + t];
        st += a0 / n;
        st1 += a1 / n;
    }
    *at = st / m;
    *at1 = st1 / m;
}

/* Sums the autocorrelations of the centered draws c of m chains of n (cm:
 * the chain means) with Geyer's initial positive sequence made monotone;
 * tau = -1 + 2 * sum.  rho: n doubles of scratch.  The one place for it:
 * ess_basic and the per-column ess_ws both come here, so their results are
 * the same bits. */
static double tau_centered(const double *c, const double *cm, int m, int n, double *rho) {
    double a0, a1;
    acov_pair(c, m, n, 0, &a0, &a1);
    double mean_var = a0 * n / (n - 1.0);
    double var_plus = mean_var * (n - 1.0) / n;
    if (m > 1) var_plus += var_of(cm, (size_t)m);
    memset(rho, 0, (size_t)n * sizeof *rho);
    double even = 1.0, odd = 1.0 - (mean_var - a1) / var_plus;
    rho[0] = even;
    rho[1] = odd;
    int t = 1;
    while (t < n - 3 && even + odd > 0.0) {
        double e1, e2;
        acov_pair(c, m, n, t + 1, &e1, &e2);
        even = 1.0 - (mean_var - e1) / var_plus;
        odd = 1.0 - (mean_var - e2) / var_plus;
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

/* tau_centered of the draws a, centered into cen (m * n doubles). */
static double tau_hat(const double *a, const double *cm, int m, int n, double *rho, double *cen) {
    for (int ch = 0; ch < m; ch++)
        for (int i = 0; i < n; i++) cen[(size_t)ch * n + i] = a[(size_t)ch * n + i] - cm[ch];
    return tau_centered(cen, cm, m, n, rho);
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
    double *cen = malloc(size * sizeof *cen);
    double tau = NAN;
    if (cm && rho && cen) {
        for (int c = 0; c < m; c++) cm[c] = mean_of(a + (size_t)c * n, (size_t)n);
        tau = tau_hat(a, cm, m, n, rho, cen);
    }
    free(cm);
    free(rho);
    free(cen);
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

/* ------------------------------------------- one column, with scratch --- */

/* Scratch for the columns of one run (chains x n draws, n even): buffers
 * allocated once, and the normal scores of the ranks 1..size without ties,
 * which every column without ties shares (bk_ndtri of every draw of every
 * column was a fifth of the diagnostics). */
struct mc_diag_ws {
    int chains, n;
    size_t size;
    double *zt;           /* zt[i]: the normal score of rank i + 1 */
    uint64_t *key, *key2; /* radix sort keys and their ping-pong copy */
    uint32_t *ord, *ord2; /* the draws' order; the folded draws' (first the sort's ping-pong copy) */
    double *s, *fs;       /* the draws sorted, the folded draws sorted */
    double *z;            /* normal scores, then the tail's indicators */
    double *f, *cen;      /* ess_ws: chain means and autocorrelations; centered draws */
    uint32_t *cnt;        /* radix histograms */
};

#define RADIX_BITS 11
#define RADIX_PASSES 3   /* of the high 33 bits; ws_argsort's counting is written for three */

void mc_diag_ws_free(mc_diag_ws *w) {
    if (!w) return;
    free(w->zt);
    free(w->key);
    free(w->key2);
    free(w->ord);
    free(w->ord2);
    free(w->s);
    free(w->fs);
    free(w->z);
    free(w->f);
    free(w->cen);
    free(w->cnt);
    free(w);
}

mc_diag_ws *mc_diag_ws_new(int chains, int n) {
    if (chains < 1 || n < 1 || (size_t)chains * (size_t)n > UINT32_MAX) return NULL;
    mc_diag_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    size_t size = (size_t)chains * (size_t)n;
    w->chains = chains;
    w->n = n;
    w->size = size;
    w->zt = malloc(size * sizeof *w->zt);
    w->key = malloc(size * sizeof *w->key);
    w->key2 = malloc(size * sizeof *w->key2);
    w->ord = malloc(size * sizeof *w->ord);
    w->ord2 = malloc(size * sizeof *w->ord2);
    w->s = malloc(size * sizeof *w->s);
    w->fs = malloc(size * sizeof *w->fs);
    w->z = malloc(size * sizeof *w->z);
    w->f = malloc(size * sizeof *w->f);
    w->cen = malloc(size * sizeof *w->cen);
    w->cnt = malloc((size_t)RADIX_PASSES * ((size_t)1 << RADIX_BITS) * sizeof *w->cnt);
    if (!w->zt || !w->key || !w->key2 || !w->ord || !w->ord2 || !w->s || !w->fs || !w->z || !w->f || !w->cen ||
        !w->cnt) {
        mc_diag_ws_free(w);
        return NULL;
    }
    for (size_t i = 0; i < size && n % 2 == 0; i++) {   /* odd n: mc_column_diag_ws does not use them */
        /* z_from_order's expression for a group of one (i == j), so the
         * scores are the same bits */
        double avg = 0.5 * (double)(i + i) + 1.0;
        w->zt[i] = bk_ndtri((avg - 0.375) / ((double)size + 0.25));
    }
    return w;
}

/* One LSD pass of 11-bit digit `shift` from (*k, *o) into (*k2, *o2),
 * given the digit's counts, then the buffers swapped (ping-pong: *k, *o
 * hold the result); nothing moves when every key has the same digit. */
static void radix_pass(uint64_t **k, uint32_t **o, uint64_t **k2, uint32_t **o2, size_t n, int shift,
                       uint32_t *cnt) {
    const uint64_t mask = ((uint64_t)1 << RADIX_BITS) - 1;
    const uint64_t *ka = *k;
    const uint32_t *oa = *o;
    uint64_t *kb = *k2;
    uint32_t *ob = *o2;
    if (cnt[(ka[0] >> shift) & mask] == n) return;   /* a digit all keys share */
    uint32_t pos = 0;
    for (size_t b = 0; b < (size_t)1 << RADIX_BITS; b++) {
        uint32_t c = cnt[b];
        cnt[b] = pos;
        pos += c;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t d = cnt[(ka[i] >> shift) & mask]++;
        kb[d] = ka[i];
        ob[d] = oa[i];
    }
    *k2 = *k;
    *o2 = *o;
    *k = kb;
    *o = ob;
}

/* Orders a run of keys that agree above bit RUN_SHIFT by their low bits, in
 * place (k2, o2: as much scratch): insertion for a short run (the usual one
 * or two keys), else three radix passes over bits 0..32. */
#define RUN_SHIFT 31
static void sort_run(uint64_t *k, uint32_t *o, size_t len, uint64_t *k2, uint32_t *o2, uint32_t *cnt) {
    if (len <= 48) {
        for (size_t i = 1; i < len; i++) {
            uint64_t v = k[i];
            uint32_t ov = o[i];
            size_t j = i;
            for (; j > 0 && k[j - 1] > v; j--) {
                k[j] = k[j - 1];
                o[j] = o[j - 1];
            }
            k[j] = v;
            o[j] = ov;
        }
        return;
    }
    size_t nb = (size_t)1 << RADIX_BITS;
    const uint64_t mask = nb - 1;
    uint64_t *ka = k, *kb = k2;
    uint32_t *oa = o, *ob = o2;
    for (int shift = 0; shift < RUN_SHIFT; shift += RADIX_BITS) {
        memset(cnt, 0, nb * sizeof *cnt);
        for (size_t i = 0; i < len; i++) cnt[(ka[i] >> shift) & mask]++;
        radix_pass(&ka, &oa, &kb, &ob, len, shift, cnt);
    }
    if (ka != k) {
        memcpy(k, ka, len * sizeof *k);
        memcpy(o, oa, len * sizeof *o);
    }
}

/* The ascending order of x (no NaN) in w->ord and the sorted values in w->s:
 * an LSD radix sort on the keys' high 33 bits only (three 11-bit passes,
 * all histograms in one pass over the keys, ping-pong buffers instead of
 * copies back), then the runs that agree on those bits (two draws within
 * a relative 2^-20 or so: rare in continuous draws, whole runs of one value
 * in discrete ones) ordered by the rest: half the passes of sorting all 64
 * bits.  Any sorted order would do (ties get equal scores). */
static void ws_argsort(mc_diag_ws *w, const double *x) {
    size_t n = w->size, nb = (size_t)1 << RADIX_BITS;
    uint64_t *k = w->key, *k2 = w->key2, mask = nb - 1;
    uint32_t *o = w->ord, *o2 = w->ord2;
    memset(w->cnt, 0, 3 * nb * sizeof *w->cnt);
    uint32_t *c0 = w->cnt, *c1 = c0 + nb, *c2 = c1 + nb;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = sort_key(x[i]);
        k[i] = v;
        o[i] = (uint32_t)i;
        c0[(v >> RUN_SHIFT) & mask]++;
        c1[(v >> (RUN_SHIFT + RADIX_BITS)) & mask]++;
        c2[v >> (RUN_SHIFT + 2 * RADIX_BITS)]++;
    }
    for (int p = 0; p < 3; p++)
        radix_pass(&k, &o, &k2, &o2, n, RUN_SHIFT + p * RADIX_BITS, w->cnt + (size_t)p * nb);
    for (size_t i = 0; i + 1 < n;) {
        size_t j = i + 1;
        uint64_t hi = k[i] >> RUN_SHIFT;
        int same = 1;   /* the whole keys equal: already in order */
        for (; j < n && k[j] >> RUN_SHIFT == hi; j++) same &= k[j] == k[i];
        if (j - i > 1 && !same) sort_run(k + i, o + i, j - i, k2 + i, o2 + i, w->cnt);
        i = j;
    }
    if (o != w->ord) memcpy(w->ord, o, n * sizeof *o);
    for (size_t i = 0; i < n; i++) w->s[i] = x[w->ord[i]];
}

/* z_from_order with the sorted values v (v[i] = a[ord[i]]) at hand: the
 * shared score wherever a value is unique, the average rank of a group of
 * ties as z_from_order computes it. */
static void ws_scores(const mc_diag_ws *w, const double *v, const uint32_t *ord, double *z) {
    size_t size = w->size;
    for (size_t i = 0; i < size;) {
        if (i + 1 == size || v[i + 1] != v[i]) {
            z[ord[i]] = w->zt[i];
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < size && v[j + 1] == v[i]) j++;
        double avg = 0.5 * (double)(i + j) + 1.0;
        double zi = bk_ndtri((avg - 0.375) / ((double)size + 0.25));
        for (size_t k = i; k <= j; k++) z[ord[k]] = zi;
        i = j + 1;
    }
}

/* The order of f = |x - med| from the order of x: the draws below the
 * median, from the median down, and those at or above it, upwards, are
 * each in ascending order of f (x - med rounds monotonically), so one merge
 * sorts f.  Order in w->ord2, values in w->fs. */
static void ws_fold_order(mc_diag_ws *w, double med) {
    size_t size = w->size, p = 0;
    while (p < size && w->s[p] < med) p++;
    size_t lo = p, hi = p, k = 0;   /* lo: one past the next below; hi: the next at or above */
    while (lo > 0 || hi < size) {
        double fl = lo > 0 ? fabs(w->s[lo - 1] - med) : INFINITY, fh = hi < size ? fabs(w->s[hi] - med) : INFINITY;
        if (hi == size || (lo > 0 && fl <= fh)) {
            w->fs[k] = fl;
            w->ord2[k++] = w->ord[--lo];
        } else {
            w->fs[k] = fh;
            w->ord2[k++] = w->ord[hi++];
        }
    }
}

/* ess_basic's end for the 2 * chains split chains: their range hi - lo,
 * their centered draws c and chain means w->f (ess_basic's values, from
 * wherever the caller had them at hand); rho goes after the means. */
static double ess_centered_ws(mc_diag_ws *w, double range, const double *c) {
    int m = 2 * w->chains, n = w->n / 2;
    size_t size = (size_t)m * n;
    if (range < 1e-15) return (double)size;
    if (n < 4) return NAN;
    double *cm = w->f, *rho = w->f + m;   /* m + n <= m * n = size for m, n >= 2 */
    double tau = tau_centered(c, cm, m, n, rho);
    double floor_tau = 1.0 / log10((double)size);
    if (tau < floor_tau) tau = floor_tau;
    return (double)size / tau;
}

/* ESS of the indicator x <= q (mc_ess_mean of it: with an even n its split
 * chains are itself).  A 0/1 chain's sum is its count, exactly, so its mean
 * is count / n as mean_of divides it, and its centered draws are 1 - mean
 * and 0 - mean: two passes where the indicators, their range, means and
 * centering were four. */
static double ess_below_ws(mc_diag_ws *w, const double *x, double q) {
    int m = 2 * w->chains, n = w->n / 2;
    double *cm = w->f, *c = w->cen;
    size_t total = 0;
    for (int ch = 0; ch < m; ch++) {
        const double *xc = x + (size_t)ch * n;
        size_t cnt = 0;
        for (int i = 0; i < n; i++) cnt += xc[i] <= q;
        cm[ch] = (double)cnt / (double)n;
        total += cnt;
    }
    if (total == 0 || total == w->size) return (double)w->size;   /* constant: range 0 */
    for (int ch = 0; ch < m; ch++) {
        const double *xc = x + (size_t)ch * n;
        double *cc = c + (size_t)ch * n;
        const double cv[2] = {0.0 - cm[ch], 1.0 - cm[ch]};   /* indexed by the indicator: no branch */
        for (int i = 0; i < n; i++) cc[i] = cv[xc[i] <= q];
    }
    return ess_centered_ws(w, 1.0, c);
}

/* mc_column_diag_ws's result by the three functions apart (the draws'
 * order not shared): for the cases its shortcuts do not cover. */
static int column_diag_apart(const double *x, int chains, int n, double *sorted, double *rhat, double *ess_bulk,
                             double *ess_tail) {
    *rhat = mc_rhat(x, chains, n);
    *ess_bulk = mc_ess_bulk(x, chains, n);
    *ess_tail = mc_ess_tail(x, chains, n);
    if (sorted) {
        memcpy(sorted, x, (size_t)chains * n * sizeof *sorted);
        if (mc_sort_doubles(sorted, (size_t)chains * n)) return -1;
    }
    return 0;
}

/* R-hat, bulk and tail ESS of one column with one sort instead of the
 * seven that mc_rhat, mc_ess_bulk and mc_ess_tail do apart: with an even n
 * the split chains are x itself in memory, so one order of x gives the
 * median, the quantiles, the bulk ranks and (by a merge) the order of the
 * folded draws.  The results are those of the three functions, bit for
 * bit. */
int mc_column_diag_ws(mc_diag_ws *w, const double *x, double *sorted, double *rhat, double *ess_bulk,
                      double *ess_tail) {
    int chains = w->chains, n = w->n;
    size_t size = w->size;
    if (invalid(x, chains, n) || n % 2) return column_diag_apart(x, chains, n, sorted, rhat, ess_bulk, ess_tail);
    ws_argsort(w, x);
    const double *s = w->s;
    double med = size % 2 ? s[size / 2] : 0.5 * (s[size / 2 - 1] + s[size / 2]);
    /* an infinite median makes |x - med| NaN at the infinite draws, where
     * the merge below would order them otherwise than the sort does */
    if (!isfinite(med)) return column_diag_apart(x, chains, n, sorted, rhat, ess_bulk, ess_tail);
    if (sorted) memcpy(sorted, s, size * sizeof *s);
    int h = n / 2;
    ws_scores(w, s, w->ord, w->z);   /* bulk: the split chains' ranks */
    double bulk = rhat_cm(w->z, 2 * chains, h, w->f);   /* the chain means, for the ESS too */
    for (int ch = 0; ch < 2 * chains; ch++)
        for (int i = 0; i < h; i++) w->cen[(size_t)ch * h + i] = w->z[(size_t)ch * h + i] - w->f[ch];
    /* the scores rise with the values: their range from the ends of the order */
    *ess_bulk = ess_centered_ws(w, w->z[w->ord[size - 1]] - w->z[w->ord[0]], w->cen);
    ws_fold_order(w, med);
    ws_scores(w, w->fs, w->ord2, w->z);
    double tail = rhat_cm(w->z, 2 * chains, h, w->f);
    *rhat = bulk > tail ? bulk : tail;
    if (isnan(bulk) || isnan(tail)) *rhat = NAN;
    double q05 = quantile7_sorted(s, size, 0.05), q95 = quantile7_sorted(s, size, 0.95);
    double lo = ess_below_ws(w, x, q05), hi = ess_below_ws(w, x, q95);
    *ess_tail = isnan(lo) || isnan(hi) ? NAN : lo < hi ? lo : hi;
    return 0;
}

int mc_column_diag(const double *x, int chains, int n, double *sorted, double *rhat, double *ess_bulk,
                   double *ess_tail) {
    mc_diag_ws *w = mc_diag_ws_new(chains, n);
    if (!w) {
        if (chains < 1 || n < 1) {   /* nothing to sort: the NaNs of invalid input */
            *rhat = *ess_bulk = *ess_tail = NAN;
            return 0;
        }
        return -1;
    }
    int rc = mc_column_diag_ws(w, x, sorted, rhat, ess_bulk, ess_tail);
    mc_diag_ws_free(w);
    return rc;
}
