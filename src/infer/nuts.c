/* nuts.c - static HMC and the No-U-Turn sampler with multinomial sampling
 * and the generalized no-U-turn criterion (Betancourt 2017), as Stan's
 * base_nuts does it, plus the chain driver that runs warmup and sampling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc_core.h"

#define MC_MAX_DELTA_H 1000.0   /* energy error that counts as a divergence */

mc_opts mc_opts_default(void) {
    mc_opts o = {1000, 1000, 10, 0.8, 0, 0, 1.0, 0.0};
    return o;
}

/* ---- the Hamiltonian -------------------------------------------------- */

void mc_dtau_dp(const mc_ham *h, const double *p, double *out) {
    int d = h->d;
    if (!h->inv_metric) {
        memcpy(out, p, (size_t)d * sizeof *out);
    } else if (!h->dense) {
        const double *m = h->inv_metric;
        for (int i = 0; i < d; i++) out[i] = m[i] * p[i];
    } else {
        for (int i = 0; i < d; i++) {
            const double *row = h->inv_metric + (size_t)i * d;
            double s = 0.0;
            for (int j = 0; j < d; j++) s += row[j] * p[j];
            out[i] = s;
        }
    }
}

double mc_kinetic(const mc_ham *h, const double *p) {
    int d = h->d;
    const double *m = h->inv_metric;
    double s = 0.0;
    if (!m) {
        for (int i = 0; i < d; i++) s += p[i] * p[i];
    } else if (!h->dense) {
        for (int i = 0; i < d; i++) s += m[i] * p[i] * p[i];
    } else {
        for (int i = 0; i < d; i++) {
            const double *row = h->inv_metric + (size_t)i * d;
            double r = 0.0;
            for (int j = 0; j < d; j++) r += row[j] * p[j];
            s += p[i] * r;
        }
    }
    return 0.5 * s;
}

int mc_ham_factor(mc_ham *h) {
    int d = h->d;
    if (!h->dense) return 0;
    const double *a = h->inv_metric;
    double *l = h->chol;
    memset(l, 0, (size_t)d * d * sizeof *l);
    for (int j = 0; j < d; j++) {
        double s = a[(size_t)j * d + j];
        for (int k = 0; k < j; k++) s -= l[(size_t)j * d + k] * l[(size_t)j * d + k];
        if (!(s > 0.0)) return -1;
        double ljj = sqrt(s);
        l[(size_t)j * d + j] = ljj;
        for (int i = j + 1; i < d; i++) {
            double t = a[(size_t)i * d + j];
            for (int k = 0; k < j; k++) t -= l[(size_t)i * d + k] * l[(size_t)j * d + k];
            l[(size_t)i * d + j] = t / ljj;
        }
    }
    return 0;
}

/* p ~ N(0, M): diagonal p_i = u_i / sqrt(minv_i); dense p = L^-T u, whose
 * covariance is (L L')^-1 = M. */
void mc_sample_momentum(const mc_ham *h, bk_rng *rng, double *p) {
    int d = h->d;
    for (int i = 0; i < d; i++) p[i] = bk_rng_normal(rng);
    if (!h->inv_metric) return;
    if (!h->dense) {
        const double *m = h->inv_metric;
        for (int i = 0; i < d; i++) p[i] /= sqrt(m[i]);
        return;
    }
    const double *l = h->chol;
    for (int i = d - 1; i >= 0; i--) {
        double s = p[i];
        for (int k = i + 1; k < d; k++) s -= l[(size_t)k * d + i] * p[k];
        p[i] = s / l[(size_t)i * d + i];
    }
}

/* A leapfrog step's half kick and drift for a diagonal metric m, in one
 * pass (the arithmetic of mc_dtau_dp term for term). */
static inline __attribute__((always_inline)) void kick_drift_diag(int d, const double *m, double eps, double *q,
                                                                   double *p, const double *grad) {
    for (int i = 0; i < d; i++) {
        p[i] += 0.5 * eps * grad[i];
        q[i] += eps * (m[i] * p[i]);
    }
}

static int ham_leapfrog(const mc_ham *h, double eps, int steps, double *q, double *p,
                        double *grad, double *logp, double *scratch) {
    int d = h->d;
    for (int s = 0; s < steps; s++) {
        if (h->dense) {
            for (int i = 0; i < d; i++) p[i] += 0.5 * eps * grad[i];
            mc_dtau_dp(h, p, scratch);
            for (int i = 0; i < d; i++) q[i] += eps * scratch[i];
        } else if (h->inv_metric) {
            kick_drift_diag(d, h->inv_metric, eps, q, p, grad);
        } else {
            for (int i = 0; i < d; i++) {
                p[i] += 0.5 * eps * grad[i];
                q[i] += eps * p[i];
            }
        }
        if (h->f(h->ud, q, logp, grad) != 0 || isnan(*logp)) {
            *logp = -INFINITY;
            return -1;
        }
        for (int i = 0; i < d; i++) p[i] += 0.5 * eps * grad[i];
    }
    return 0;
}

int mc_leapfrog(mc_logp_fn f, void *ud, int d, const double *inv_metric, int dense,
                double eps, int steps, double *q, double *p, double *grad, double *logp) {
    mc_ham h = {f, ud, d, dense, (double *)inv_metric, NULL};
    double *scratch = malloc((size_t)(d > 0 ? d : 1) * sizeof *scratch);
    if (!scratch) return -1;
    int rc = ham_leapfrog(&h, eps, steps, q, p, grad, logp, scratch);
    free(scratch);
    return rc;
}

/* ---- NUTS workspace --------------------------------------------------- */

typedef struct point { double *q, *p, *g; double lp; } point;

/* Temporaries of one recursion level of build_tree. */
typedef struct level {
    point z_final;
    double *p_init_end, *ps_init_end, *rho_init, *p_final_beg, *ps_final_beg, *rho_final;
} level;

typedef struct nuts_ws {
    mc_ham *h;
    bk_rng *rng;
    int d, max_depth;
    double eps;
    point z, z_fwd, z_bck, z_sample, z_propose;
    double *p_ff, *ps_ff, *p_fb, *ps_fb, *p_bf, *ps_bf, *p_bb, *ps_bb;
    double *rho, *rho_fwd, *rho_bck, *scratch;
    level *lv;            /* lv[1..max_depth] */
    double *mem;
    /* per-transition results */
    int n_leapfrog, divergent, depth;
    double sum_metro_prob;
} nuts_ws;

/* Every point is cut by point_carve, q, p and g adjacent (point_swap keeps
 * the three together), so one copy moves all three. */
static void point_copy(point *dst, const point *src, int d) {
    memcpy(dst->q, src->q, 3 * (size_t)d * sizeof(double));
    dst->lp = src->lp;
}

/* The transition's points and end vectors are scratch buffers of one
 * workspace: where Stan copies one into another whose old value is dead,
 * the two are exchanged instead (same values, no copy). */
static void point_swap(point *a, point *b) {
    point t = *a;
    *a = *b;
    *b = t;
}

static void vswap(double **a, double **b) {
    double *t = *a;
    *a = *b;
    *b = t;
}

static double *carve(double **cur, int d) {
    double *r = *cur;
    *cur += d;
    return r;
}

static void point_carve(point *pt, double **cur, int d) {
    pt->q = carve(cur, d);
    pt->p = carve(cur, d);
    pt->g = carve(cur, d);
    pt->lp = 0.0;
}

static int ws_init(nuts_ws *w, mc_ham *h, bk_rng *rng, int max_depth) {
    int d = h->d;
    memset(w, 0, sizeof *w);
    w->h = h;
    w->rng = rng;
    w->d = d;
    w->max_depth = max_depth;
    size_t nvec = 5 * 3 + 8 + 4 + (size_t)max_depth * 9;
    w->mem = calloc(nvec * (size_t)d + 1, sizeof(double));
    w->lv = calloc((size_t)max_depth + 1, sizeof(level));
    if (!w->mem || !w->lv) {
        free(w->mem);
        free(w->lv);
        return -1;
    }
    double *c = w->mem;
    point_carve(&w->z, &c, d);
    point_carve(&w->z_fwd, &c, d);
    point_carve(&w->z_bck, &c, d);
    point_carve(&w->z_sample, &c, d);
    point_carve(&w->z_propose, &c, d);
    double **vecs[] = {&w->p_ff, &w->ps_ff, &w->p_fb, &w->ps_fb, &w->p_bf, &w->ps_bf,
                       &w->p_bb, &w->ps_bb, &w->rho, &w->rho_fwd, &w->rho_bck, &w->scratch};
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) *vecs[i] = carve(&c, d);
    for (int k = 1; k <= max_depth; k++) {
        level *l = &w->lv[k];
        point_carve(&l->z_final, &c, d);
        l->p_init_end = carve(&c, d);
        l->ps_init_end = carve(&c, d);
        l->rho_init = carve(&c, d);
        l->p_final_beg = carve(&c, d);
        l->ps_final_beg = carve(&c, d);
        l->rho_final = carve(&c, d);
    }
    return 0;
}

static void ws_free(nuts_ws *w) {
    free(w->mem);
    free(w->lv);
}

static double hamiltonian(const nuts_ws *w, const point *z) {
    double e = -z->lp + mc_kinetic(w->h, z->p);
    return isnan(e) ? INFINITY : e;
}

/* hamiltonian(w, z) given z's velocity ps = M^-1 p, without a second
 * product with the metric: mc_kinetic's terms are ps_i p_i in every form
 * (diagonal (m_i p_i) p_i, dense p_i times the row product that is ps_i,
 * unit p_i p_i), summed in the same order. */
static double hamiltonian_v(const nuts_ws *w, const point *z, const double *ps) {
    double k = 0.0;
    for (int i = 0; i < w->d; i++) k += ps[i] * z->p[i];
    double e = -z->lp + 0.5 * k;
    return isnan(e) ? INFINITY : e;
}

/* m + log(exp(a - m) + exp(b - m)), m the larger: for finite m one of the
 * two terms is exp(0) = 1 exactly, so only the other is computed (the sum
 * 1 + exp(o - m) is the same double either way round). */
static double log_sum_exp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b, o = a > b ? b : a;
    if (!isfinite(m)) return m + log(exp(a - m) + exp(b - m)); /* +inf, NaN: as the formula gives */
    return m + log(1.0 + exp(o - m));
}

/* The join of two adjacent subtrees, a then b in the direction of travel:
 * rho_out = base + (rho_a + rho_b) and Stan's three generalized no-U-turn
 * checks there (Betancourt 2017), each a pair of dot products that must
 * stay positive:
 *   the whole: ps_beg, ps_end along rho_a + rho_b;
 *   the extended ones across the seam: ps_beg, ps_b_beg along rho_a + p_b_beg
 *   and ps_a_end, ps_end along rho_b + p_a_end.
 * One pass; each sum is accumulated in index order, as separate loops did.
 * base is -0.0 (x + -0 = x for every x, signed zeros included) for a plain
 * sum, or +0.0 where the subtree's rho used to be added into a zeroed
 * accumulator (0 + x: the same double). */
static int merge_ok(const double *ps_beg, const double *ps_end, const double *rho_a, const double *rho_b,
                    const double *ps_a_end, const double *p_a_end, const double *ps_b_beg,
                    const double *p_b_beg, double *rho_out, double base, int d) {
    double wp = 0.0, wm = 0.0, ap = 0.0, am = 0.0, bp = 0.0, bm = 0.0;
    for (int i = 0; i < d; i++) {
        double r = rho_a[i] + rho_b[i];
        double ra = rho_a[i] + p_b_beg[i], rb = rho_b[i] + p_a_end[i];
        wp += ps_end[i] * r;
        wm += ps_beg[i] * r;
        ap += ps_b_beg[i] * ra;
        am += ps_beg[i] * ra;
        bp += ps_end[i] * rb;
        bm += ps_a_end[i] * rb;
        rho_out[i] = base + r;
    }
    return wp > 0.0 && wm > 0.0 && ap > 0.0 && am > 0.0 && bp > 0.0 && bm > 0.0;
}

/* leaf_ends' pass for a diagonal metric (kick: first the last half kick
 * of a leapfrog step of size eps, fused in): the ends' velocities and
 * momenta, rho, and the Hamiltonian (mc_dtau_dp's and mc_kinetic's
 * arithmetic: the kinetic terms are the velocity times p_i). */
static inline __attribute__((always_inline)) double ends_diag(nuts_ws *w, bool kick, double eps, double *ps_beg,
                                                              double *ps_end, double *rho, double *p_beg,
                                                              double *p_end) {
    int d = w->d;
    double *p = w->z.p, k = 0.0;
    const double *m = w->h->inv_metric, *g = w->z.g;
    for (int i = 0; i < d; i++) {
        double pi = kick ? p[i] + 0.5 * eps * g[i] : p[i];
        double v = m[i] * pi;
        p[i] = pi;
        k += v * pi;
        ps_beg[i] = ps_end[i] = v;
        rho[i] = 0.0 + pi;
        p_beg[i] = p_end[i] = pi;
    }
    double e = -w->z.lp + 0.5 * k;
    return isnan(e) ? INFINITY : e;
}

/* A new leaf w->z: its velocity into ps_beg and ps_end, its momentum into
 * p_beg and p_end and into rho, written as 0 + p (rho is the subtree's
 * accumulator, which the leaf is the first to fill: the value a zeroed one
 * plus p would hold); returns its Hamiltonian.  For a diagonal metric in
 * one pass, with the arithmetic of mc_dtau_dp and mc_kinetic (whose terms
 * minv_i * p_i * p_i are the velocity times p_i). */
static double leaf_ends(nuts_ws *w, double *ps_beg, double *ps_end, double *rho, double *p_beg, double *p_end) {
    int d = w->d;
    const double *p = w->z.p, *m = w->h->inv_metric;
    if (w->h->dense || !m) {
        mc_dtau_dp(w->h, p, ps_beg);
        double e = hamiltonian_v(w, &w->z, ps_beg);
        memcpy(ps_end, ps_beg, (size_t)d * sizeof(double));
        for (int i = 0; i < d; i++) rho[i] = 0.0 + p[i];
        memcpy(p_beg, p, (size_t)d * sizeof(double));
        memcpy(p_end, p, (size_t)d * sizeof(double));
        return e;
    }
    return ends_diag(w, false, 0.0, ps_beg, ps_end, rho, p_beg, p_end);
}

/* One leapfrog step of w->z of size eps, then leaf_ends; the Hamiltonian,
 * or INFINITY when the density failed.  For a diagonal metric the last
 * half kick is fused with leaf_ends' pass (ham_leapfrog's arithmetic, term
 * for term). */
static double leaf(nuts_ws *w, double eps, double *ps_beg, double *ps_end, double *rho, double *p_beg,
                   double *p_end) {
    const mc_ham *h = w->h;
    const double *m = h->inv_metric;
    if (h->dense || !m) {
        int bad = ham_leapfrog(h, eps, 1, w->z.q, w->z.p, w->z.g, &w->z.lp, w->scratch);
        double e = leaf_ends(w, ps_beg, ps_end, rho, p_beg, p_end);
        return bad ? INFINITY : e;
    }
    double *q = w->z.q, *g = w->z.g;
    kick_drift_diag(w->d, m, eps, q, w->z.p, g);
    if (h->f(h->ud, q, &w->z.lp, g) != 0 || isnan(w->z.lp)) {
        w->z.lp = -INFINITY;
        leaf_ends(w, ps_beg, ps_end, rho, p_beg, p_end); /* (as ham_leapfrog's failure left it) */
        return INFINITY;
    }
    return ends_diag(w, true, eps, ps_beg, ps_end, rho, p_beg, p_end);
}

/* Extends the trajectory by 2^depth leapfrog steps in direction sign from
 * w->z, sampling z_propose multinomially within the new subtree; rho is
 * written (not added to) with the subtree's momentum sum.  Returns 0 when
 * the subtree diverged or turned back on itself. */
static int build_tree(nuts_ws *w, int depth, point *z_propose, double *ps_beg, double *ps_end,
                      double *rho, double *p_beg, double *p_end, double H0, double sign,
                      double *log_sum_weight) {
    int d = w->d;
    if (depth == 0) {
        double h = leaf(w, sign * w->eps, ps_beg, ps_end, rho, p_beg, p_end);
        w->n_leapfrog++;
        if (h - H0 > MC_MAX_DELTA_H) w->divergent = 1;
        *log_sum_weight = log_sum_exp(*log_sum_weight, H0 - h);
        w->sum_metro_prob += H0 - h > 0 ? 1.0 : exp(H0 - h);
        point_copy(z_propose, &w->z, d);
        return !w->divergent;
    }
    level *L = &w->lv[depth];
    double lsw_init = -INFINITY;
    if (!build_tree(w, depth - 1, z_propose, ps_beg, L->ps_init_end, L->rho_init, p_beg,
                    L->p_init_end, H0, sign, &lsw_init))
        return 0;
    double lsw_final = -INFINITY;
    if (!build_tree(w, depth - 1, &L->z_final, L->ps_final_beg, ps_end, L->rho_final,
                    L->p_final_beg, p_end, H0, sign, &lsw_final))
        return 0;
    /* multinomial choice between the two halves, by their weights (the
     * losing half's point is dead: exchanged, not copied) */
    double lsw_sub = log_sum_exp(lsw_init, lsw_final);
    *log_sum_weight = log_sum_exp(*log_sum_weight, lsw_sub);
    if (lsw_final > lsw_sub || bk_rng_uniform(w->rng) < exp(lsw_final - lsw_sub))
        point_swap(z_propose, &L->z_final);
    /* rho = 0 + (rho_init + rho_final), as the sum into a zeroed rho was;
     * the extended criteria across the halves' seam and the subtree's own */
    return merge_ok(ps_beg, ps_end, L->rho_init, L->rho_final, L->ps_init_end, L->p_init_end,
                    L->ps_final_beg, L->p_final_beg, rho, 0.0, d);
}

typedef struct trans_stats {
    double accept_stat, energy;
    int n_leapfrog, depth, divergent;
} trans_stats;

/* One NUTS transition from *cur (q, grad, lp); *cur becomes the draw.
 * Vectors whose old value is dead when Stan copies into them are exchanged
 * instead (point_swap, vswap); the ends' p_fb, p_bf, ps_fb, ps_bf and
 * z_propose are written before they are read, so they start unset. */
static void nuts_transition(nuts_ws *w, point *cur, trans_stats *st) {
    int d = w->d;
    point *z0 = &w->z_fwd;
    memcpy(z0->q, cur->q, (size_t)d * sizeof(double));
    memcpy(z0->g, cur->g, (size_t)d * sizeof(double));
    z0->lp = cur->lp;
    mc_sample_momentum(w->h, w->rng, z0->p);
    point_copy(&w->z_bck, z0, d);
    point_copy(&w->z_sample, z0, d);
    memcpy(w->p_ff, z0->p, (size_t)d * sizeof(double));
    memcpy(w->p_bb, z0->p, (size_t)d * sizeof(double));
    mc_dtau_dp(w->h, z0->p, w->ps_ff);
    memcpy(w->ps_bb, w->ps_ff, (size_t)d * sizeof(double));
    memcpy(w->rho, z0->p, (size_t)d * sizeof(double));
    double log_sum_weight = 0.0;
    double H0 = hamiltonian_v(w, z0, w->ps_ff);
    w->n_leapfrog = 0;
    w->sum_metro_prob = 0.0;
    w->divergent = 0;
    int depth = 0;
    while (depth < w->max_depth) {
        double lsw_sub = -INFINITY;
        int valid;
        if (bk_rng_uniform(w->rng) > 0.5) {
            point_swap(&w->z, &w->z_fwd);
            /* the old trajectory becomes the backward part: its forward
             * end is the old forward-most point (p_ff), as in Stan */
            vswap(&w->rho_bck, &w->rho);
            vswap(&w->p_bf, &w->p_ff);
            vswap(&w->ps_bf, &w->ps_ff);
            valid = build_tree(w, depth, &w->z_propose, w->ps_fb, w->ps_ff, w->rho_fwd,
                               w->p_fb, w->p_ff, H0, 1.0, &lsw_sub);
            point_swap(&w->z_fwd, &w->z);
        } else {
            point_swap(&w->z, &w->z_bck);
            /* ... and here the forward part: its backward end is p_bb */
            vswap(&w->rho_fwd, &w->rho);
            vswap(&w->p_fb, &w->p_bb);
            vswap(&w->ps_fb, &w->ps_bb);
            valid = build_tree(w, depth, &w->z_propose, w->ps_bf, w->ps_bb, w->rho_bck,
                               w->p_bf, w->p_bb, H0, -1.0, &lsw_sub);
            point_swap(&w->z_bck, &w->z);
        }
        if (!valid) break;
        depth++;
        /* biased progressive sampling: favour the new subtree */
        if (lsw_sub > log_sum_weight || bk_rng_uniform(w->rng) < exp(lsw_sub - log_sum_weight))
            point_swap(&w->z_sample, &w->z_propose);
        log_sum_weight = log_sum_exp(log_sum_weight, lsw_sub);
        /* rho = rho_bck + rho_fwd, and the checks over the whole trajectory */
        if (!merge_ok(w->ps_bb, w->ps_ff, w->rho_bck, w->rho_fwd, w->ps_bf, w->p_bf, w->ps_fb, w->p_fb,
                      w->rho, -0.0, d))
            break;
    }
    st->n_leapfrog = w->n_leapfrog;
    st->depth = depth;
    st->divergent = w->divergent;
    st->accept_stat = w->n_leapfrog > 0 ? w->sum_metro_prob / w->n_leapfrog : 0.0;
    point_copy(cur, &w->z_sample, d);
    st->energy = hamiltonian(w, cur);
}

/* One static HMC transition of `steps` leapfrog steps with a Metropolis
 * correction. */
static void hmc_transition(nuts_ws *w, point *cur, int steps, trans_stats *st) {
    int d = w->d;
    point_copy(&w->z, cur, d);
    mc_sample_momentum(w->h, w->rng, w->z.p);
    double H0 = hamiltonian(w, &w->z);
    int bad = ham_leapfrog(w->h, w->eps, steps, w->z.q, w->z.p, w->z.g, &w->z.lp, w->scratch);
    double h = bad ? INFINITY : hamiltonian(w, &w->z);
    double a = exp(H0 - h);
    if (isnan(a)) a = 0.0;
    st->divergent = h - H0 > MC_MAX_DELTA_H;
    st->n_leapfrog = steps;
    st->depth = 0;
    st->accept_stat = a > 1.0 ? 1.0 : a;
    if (bk_rng_uniform(w->rng) < a) {
        point_copy(cur, &w->z, d);
        st->energy = h;
    } else {
        /* rejected: the old position with the fresh momentum, as Stan reports */
        st->energy = H0;
    }
}

/* ---- the chain driver ------------------------------------------------- */

void mc_chain_out_free(mc_chain_out *o) {
    if (!o) return;
    free(o->draws);
    free(o->lp);
    free(o->accept_stat);
    free(o->stepsize);
    free(o->treedepth);
    free(o->n_leapfrog);
    free(o->divergent);
    free(o->energy);
    free(o->inv_metric);
    memset(o, 0, sizeof *o);
}

static int out_alloc(mc_chain_out *out, int d, int n, int dense) {
    memset(out, 0, sizeof *out);
    size_t nn = (size_t)(n > 0 ? n : 1);
    out->draws = calloc(nn * (size_t)(d > 0 ? d : 1), sizeof(double));
    double **cols[] = {&out->lp, &out->accept_stat, &out->stepsize, &out->treedepth,
                       &out->n_leapfrog, &out->divergent, &out->energy};
    int ok = out->draws != NULL;
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        *cols[i] = calloc(nn, sizeof(double));
        ok = ok && *cols[i];
    }
    out->inv_metric = calloc(dense ? (size_t)d * d : (size_t)d, sizeof(double));
    ok = ok && out->inv_metric;
    out->d = d;
    out->samples = n;
    out->dense = dense;
    if (!ok) mc_chain_out_free(out);
    return ok ? 0 : -1;
}

static void set_unit_metric(double *m, int d, int dense) {
    memset(m, 0, (dense ? (size_t)d * d : (size_t)d) * sizeof(double));
    for (int i = 0; i < d; i++) m[dense ? (size_t)i * d + i : (size_t)i] = 1.0;
}

/* A chain between iterations: everything its future depends on (and so
 * everything a checkpoint holds). */
struct mc_chain {
    mc_opts o;
    int d, iter;              /* iterations done (warmup first) */
    double delta;             /* target acceptance */
    bk_rng rng;
    mc_ham h;
    nuts_ws w;
    point cur;
    double *cur_mem;          /* cur's vectors, then the undo copy of q, g */
    double undo_lp;
    bk_rng undo_rng;
    mc_welford wf;
    mc_windows win;
    mc_dual_avg da;
    mc_chain_out out;
};

/* One random-walk Metropolis step from *cur (no gradient: cur->g stays). */
static void rwm_transition(nuts_ws *w, point *cur, trans_stats *st) {
    const mc_ham *h = w->h;
    int d = w->d;
    double *z = w->scratch, *prop = w->z.q;
    for (int i = 0; i < d; i++) z[i] = bk_rng_normal(w->rng);
    for (int i = 0; i < d; i++) {
        double s;
        if (!h->dense) {
            s = sqrt(h->inv_metric[i]) * z[i];
        } else {
            s = 0.0;
            for (int k = 0; k <= i; k++) s += h->chol[(size_t)i * d + k] * z[k];
        }
        prop[i] = cur->q[i] + w->eps * s;
    }
    double lp;
    if (h->f(h->ud, prop, &lp, NULL) != 0 || isnan(lp)) lp = -INFINITY;
    double a = lp == -INFINITY ? 0.0 : exp(lp - cur->lp);
    if (isnan(a)) a = 0.0;
    st->accept_stat = a > 1.0 ? 1.0 : a;
    st->n_leapfrog = 1;
    st->depth = 0;
    st->divergent = 0;
    if (bk_rng_uniform(w->rng) < a) {
        memcpy(cur->q, prop, (size_t)d * sizeof(double));
        cur->lp = lp;
    }
    st->energy = -cur->lp;
}

int mc_hmc_traj_steps(double trajectory_length, double eps) {
    double x = trajectory_length / eps;
    if (!(x > 1.0)) return 1;   /* also NaN */
    x = ceil(x * (1.0 - 1e-9));
    return x < MC_HMC_MAX_STEPS ? (int)x : MC_HMC_MAX_STEPS;
}

static void transition(mc_chain *c, trans_stats *st) {
    if (c->o.hmc_steps == MC_RWM)
        rwm_transition(&c->w, &c->cur, st);
    else if (c->o.hmc_steps > 0)
        hmc_transition(&c->w, &c->cur, c->o.hmc_steps, st);
    else if (c->o.hmc_steps == MC_HMC_TRAJ)
        /* the step count follows the step size: adapting in warmup, final after */
        hmc_transition(&c->w, &c->cur, mc_hmc_traj_steps(c->o.trajectory_length, c->w.eps), st);
    else
        nuts_transition(&c->w, &c->cur, st);
}

/* One warmup iteration's adaptation: step size always, metric in the slow
 * windows; a new metric restarts the step size search (as Stan does), which
 * *searched reports. */
static int adapt_step(mc_chain *c, double accept_stat, int *searched, char *err, size_t errlen) {
    c->w.eps = mc_dual_avg_learn(&c->da, accept_stat);
    if (!c->win.enabled) return 0;
    if (mc_windows_in_slow(&c->win)) mc_welford_add(&c->wf, c->cur.q);
    if (mc_windows_end_slow(&c->win)) {
        mc_windows_next(&c->win);
        mc_welford_metric(&c->wf, c->h.inv_metric);
        mc_welford_restart(&c->wf);
        if (mc_ham_factor(&c->h) != 0) {
            snprintf(err, errlen, "mcmc: estimated metric is not positive definite");
            return -1;
        }
        if (c->o.hmc_steps == MC_RWM) {
            /* the scale is relative to the metric, so it carries over to
             * the new shape: dual averaging goes on without a restart (its
             * 0/1-like acceptance statistics need the whole warmup, not
             * one window, to settle) */
            c->win.counter++;
            return 0;
        }
        *searched = 1;
        if (mc_find_step_size(&c->h, c->w.rng, c->cur.q, c->cur.lp, c->cur.g, &c->w.eps, err,
                              errlen) != 0)
            return -1;
        mc_dual_avg_restart(&c->da, c->w.eps);
    }
    c->win.counter++;
    return 0;
}

static void record(mc_chain_out *out, int i, const point *cur, const trans_stats *st, double eps,
                   int d) {
    memcpy(out->draws + (size_t)i * d, cur->q, (size_t)d * sizeof(double));
    out->lp[i] = cur->lp;
    out->accept_stat[i] = st->accept_stat;
    out->stepsize[i] = eps;
    out->treedepth[i] = st->depth;
    out->n_leapfrog[i] = st->n_leapfrog;
    out->divergent[i] = st->divergent;
    out->energy[i] = st->energy;
}

void mc_chain_free(mc_chain *c) {
    if (!c) return;
    ws_free(&c->w);
    free(c->cur_mem);
    free(c->h.chol);
    mc_welford_free(&c->wf);
    mc_chain_out_free(&c->out);
    free(c);
}

/* Everything but the starting point: buffers, the unit metric, counters. */
static mc_chain *chain_alloc(mc_logp_fn f, void *ud, int d, const mc_opts *o, const bk_rng *rng) {
    mc_chain *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->o = *o;
    if (c->o.max_depth <= 0) c->o.max_depth = 10;
    c->o.dense = o->dense != 0;
    c->d = d;
    c->delta = o->target_accept > 0 && o->target_accept < 1 ? o->target_accept : 0.8;
    c->rng = *rng;
    if (out_alloc(&c->out, d, o->samples, c->o.dense) != 0) {
        free(c);
        return NULL;
    }
    c->h.f = f;
    c->h.ud = ud;
    c->h.d = d;
    c->h.dense = c->o.dense;
    c->h.inv_metric = c->out.inv_metric;
    set_unit_metric(c->out.inv_metric, d, c->h.dense);
    c->h.chol = c->h.dense ? calloc((size_t)d * d, sizeof(double)) : NULL;
    c->cur_mem = calloc(5 * (size_t)d, sizeof(double));
    int fail = !c->cur_mem || (c->h.dense && !c->h.chol) ||
               ws_init(&c->w, &c->h, &c->rng, c->o.max_depth);
    if (!fail && mc_welford_init(&c->wf, d, c->h.dense)) {
        ws_free(&c->w);
        fail = 1;
    } else if (fail) {
        memset(&c->w, 0, sizeof c->w);
    }
    if (fail) {
        free(c->cur_mem);
        free(c->h.chol);
        mc_chain_out_free(&c->out);
        free(c);
        return NULL;
    }
    mc_ham_factor(&c->h);
    double *m = c->cur_mem;
    point_carve(&c->cur, &m, d);
    mc_windows_init(&c->win, o->warmup);
    return c;
}

int mc_chain_new(mc_logp_fn f, void *ud, int d, const double *q0, const mc_opts *o,
                 const bk_rng *rng, mc_chain **out, char *err, size_t errlen) {
    *out = NULL;
    if (!f || d <= 0 || !q0 || !o || !rng || o->warmup < 0 || o->samples < 0) {
        snprintf(err, errlen, "mcmc: invalid arguments");
        return -1;
    }
    if (o->hmc_steps == MC_HMC_TRAJ && !(isfinite(o->trajectory_length) && o->trajectory_length > 0)) {
        snprintf(err, errlen, "HMC: trajectory_length must be finite and > 0, got %g", o->trajectory_length);
        return -1;
    }
    mc_chain *c = chain_alloc(f, ud, d, o, rng);
    if (!c) {
        snprintf(err, errlen, "mcmc: out of memory");
        return -1;
    }
    memcpy(c->cur.q, q0, (size_t)d * sizeof(double));
    int rwm = o->hmc_steps == MC_RWM;
    if (f(ud, c->cur.q, &c->cur.lp, rwm ? NULL : c->cur.g) != 0 || !isfinite(c->cur.lp)) {
        snprintf(err, errlen, "mcmc: the log density cannot be evaluated at the initial point");
        mc_chain_free(c);
        return -1;
    }
    for (int i = 0; i < d; i++)
        if (!isfinite(c->cur.g[i])) {
            snprintf(err, errlen, "mcmc: the gradient is not finite at the initial point");
            mc_chain_free(c);
            return -1;
        }
    c->w.eps = o->init_step > 0 ? o->init_step : rwm ? 2.38 / sqrt((double)d) : 1.0;
    if (o->warmup > 0 && !rwm &&
        mc_find_step_size(&c->h, &c->rng, c->cur.q, c->cur.lp, c->cur.g, &c->w.eps, err, errlen)) {
        mc_chain_free(c);
        return -1;
    }
    mc_dual_avg_init(&c->da, c->w.eps, c->delta);
    if (rwm) c->da.mu = log(c->w.eps);   /* not 10x: no preference for long steps */
    *out = c;
    return 0;
}

void mc_chain_bind(mc_chain *c, mc_logp_fn f, void *ud) {
    c->h.f = f;
    c->h.ud = ud;
}

int mc_chain_done(const mc_chain *c) { return c->iter; }
double mc_chain_step_size(const mc_chain *c) { return c->w.eps; }
int mc_chain_divergences(const mc_chain *c) {
    int n = 0;
    for (int i = 0; i + c->o.warmup < c->iter; i++) n += c->out.divergent[i] != 0;
    return n;
}
int mc_chain_last_divergent(const mc_chain *c) {
    return c->iter > c->o.warmup && c->out.divergent[c->iter - 1 - c->o.warmup] != 0;
}
int mc_chain_total(const mc_chain *c) { return c->o.warmup + c->o.samples; }

int mc_chain_step(mc_chain *c, int (*stop)(void *), void *stop_ud, char *err, size_t errlen) {
    int d = c->d;
    if (c->iter >= c->o.warmup + c->o.samples) return 0;
    /* the undo copy: a transition changes only the point and the stream */
    double *uq = c->cur_mem + 3 * (size_t)d, *ug = uq + d;
    memcpy(uq, c->cur.q, (size_t)d * sizeof(double));
    memcpy(ug, c->cur.g, (size_t)d * sizeof(double));
    c->undo_lp = c->cur.lp;
    c->undo_rng = c->rng;
    trans_stats st;
    transition(c, &st);
    if (stop && stop(stop_ud)) {
        memcpy(c->cur.q, uq, (size_t)d * sizeof(double));
        memcpy(c->cur.g, ug, (size_t)d * sizeof(double));
        c->cur.lp = c->undo_lp;
        c->rng = c->undo_rng;
        return 1;
    }
    if (c->iter < c->o.warmup) {
        int searched = 0;
        int rc = adapt_step(c, st.accept_stat, &searched, err, errlen);
        if (searched && stop && stop(stop_ud)) return 2;
        if (rc) return -1;
        if (c->iter + 1 == c->o.warmup) c->w.eps = mc_dual_avg_final(&c->da);
    } else {
        record(&c->out, c->iter - c->o.warmup, &c->cur, &st, c->w.eps, d);
    }
    c->iter++;
    return 0;
}

int mc_chain_finish(mc_chain *c, mc_chain_out *out) {
    if (c->iter < c->o.warmup + c->o.samples) return -1;
    c->out.final_step = c->w.eps;
    *out = c->out;
    memset(&c->out, 0, sizeof c->out);
    mc_chain_free(c);
    return 0;
}

/* ---- checkpoints: the chain as text (hexadecimal floats, exact) -------- */

void mc_chain_save(const mc_chain *c, rt_sb *sb) {
    int d = c->d;
    const mc_opts *o = &c->o;
    rt_sb_printf(sb, "chain_state 1\n");
    long long hdr[] = {d, o->dense, o->warmup, o->samples, o->hmc_steps, o->max_depth, c->iter};
    mc_ck_put_ints(sb, "shape", hdr, 7);
    mc_ck_put_doubles(sb, "target", &c->delta, 1);
    if (o->hmc_steps == MC_HMC_TRAJ) mc_ck_put_doubles(sb, "trajectory_length", &o->trajectory_length, 1);
    const bk_rng *r = &c->rng;
    long long rs[] = {r->key[0], r->key[1], r->ctr[0], r->ctr[1], r->ctr[2], r->ctr[3],
                      r->buf[0], r->buf[1], r->buf[2], r->buf[3], r->used, r->has_spare};
    mc_ck_put_ints(sb, "rng", rs, 12);
    mc_ck_put_doubles(sb, "rng_spare", &r->spare, 1);
    mc_ck_put_doubles(sb, "eps", &c->w.eps, 1);
    mc_ck_put_doubles(sb, "q", c->cur.q, (size_t)d);
    mc_ck_put_doubles(sb, "grad", c->cur.g, (size_t)d);
    mc_ck_put_doubles(sb, "lp", &c->cur.lp, 1);
    const mc_dual_avg *a = &c->da;
    double da[] = {a->mu, a->s_bar, a->x_bar, a->delta, a->gamma, a->kappa, a->t0, a->counter};
    mc_ck_put_doubles(sb, "dual_avg", da, 8);
    const mc_windows *w = &c->win;
    long long win[] = {w->num_warmup, w->init_buffer, w->term_buffer, w->base_window,
                       w->counter, w->window_size, w->next_window, w->enabled};
    mc_ck_put_ints(sb, "windows", win, 8);
    long long wn = c->wf.n;
    mc_ck_put_ints(sb, "welford_n", &wn, 1);
    size_t mm = o->dense ? (size_t)d * d : (size_t)d;
    mc_ck_put_doubles(sb, "welford_mean", c->wf.mean, (size_t)d);
    mc_ck_put_doubles(sb, "welford_m2", c->wf.m2, mm);
    mc_ck_put_doubles(sb, "inv_metric", c->h.inv_metric, mm);
    size_t n = c->iter > o->warmup ? (size_t)(c->iter - o->warmup) : 0;
    const mc_chain_out *out = &c->out;
    mc_ck_put_doubles(sb, "draws", out->draws, n * (size_t)d);
    mc_ck_put_doubles(sb, "lp__", out->lp, n);
    mc_ck_put_doubles(sb, "accept_stat__", out->accept_stat, n);
    mc_ck_put_doubles(sb, "stepsize__", out->stepsize, n);
    mc_ck_put_doubles(sb, "treedepth__", out->treedepth, n);
    mc_ck_put_doubles(sb, "n_leapfrog__", out->n_leapfrog, n);
    mc_ck_put_doubles(sb, "divergent__", out->divergent, n);
    mc_ck_put_doubles(sb, "energy__", out->energy, n);
    rt_sb_printf(sb, "end_chain\n");
}

int mc_chain_load(mc_logp_fn f, void *ud, int d, const mc_opts *o, mc_ck_reader *rd,
                  mc_chain **out) {
    *out = NULL;
    if (mc_ck_word(rd, "chain_state")) return -1;
    long long ver, hdr[7];
    if (mc_ck_get_ints(rd, NULL, &ver, 1) || mc_ck_get_ints(rd, "shape", hdr, 7)) return -1;
    mc_opts oo = *o;
    if (oo.max_depth <= 0) oo.max_depth = 10;
    long long want[] = {d, oo.dense != 0, oo.warmup, oo.samples, oo.hmc_steps, oo.max_depth};
    static const char *const what[] = {"dimension", "metric", "warmup", "samples",
                                       "kernel (hmc steps)", "max_depth"};
    if (ver != 1) return mc_ck_fail(rd, "unknown chain state version %lld", ver);
    for (int i = 0; i < 6; i++)
        if (hdr[i] != want[i])
            return mc_ck_fail(rd, "the checkpoint was made with %s %lld, this run has %lld", what[i],
                              hdr[i], want[i]);
    if (hdr[6] < 0 || hdr[6] > oo.warmup + oo.samples) return mc_ck_fail(rd, "bad iteration count");
    bk_rng r0;
    memset(&r0, 0, sizeof r0);
    mc_chain *c = chain_alloc(f, ud, d, &oo, &r0);
    if (!c) return mc_ck_fail(rd, "out of memory");
    c->iter = (int)hdr[6];
    long long rs[12], win[8], wn;
    double da[8];
    size_t mm = oo.dense ? (size_t)d * d : (size_t)d;
    size_t n = c->iter > oo.warmup ? (size_t)(c->iter - oo.warmup) : 0;
    mc_chain_out *co = &c->out;
    double traj = oo.trajectory_length;
    int bad = mc_ck_get_doubles(rd, "target", &c->delta, 1) ||
              (oo.hmc_steps == MC_HMC_TRAJ && mc_ck_get_doubles(rd, "trajectory_length", &traj, 1)) ||
              mc_ck_get_ints(rd, "rng", rs, 12) ||
              mc_ck_get_doubles(rd, "rng_spare", &c->rng.spare, 1) ||
              mc_ck_get_doubles(rd, "eps", &c->w.eps, 1) ||
              mc_ck_get_doubles(rd, "q", c->cur.q, (size_t)d) ||
              mc_ck_get_doubles(rd, "grad", c->cur.g, (size_t)d) ||
              mc_ck_get_doubles(rd, "lp", &c->cur.lp, 1) || mc_ck_get_doubles(rd, "dual_avg", da, 8) ||
              mc_ck_get_ints(rd, "windows", win, 8) || mc_ck_get_ints(rd, "welford_n", &wn, 1) ||
              mc_ck_get_doubles(rd, "welford_mean", c->wf.mean, (size_t)d) ||
              mc_ck_get_doubles(rd, "welford_m2", c->wf.m2, mm) ||
              mc_ck_get_doubles(rd, "inv_metric", c->h.inv_metric, mm) ||
              mc_ck_get_doubles(rd, "draws", co->draws, n * (size_t)d) ||
              mc_ck_get_doubles(rd, "lp__", co->lp, n) ||
              mc_ck_get_doubles(rd, "accept_stat__", co->accept_stat, n) ||
              mc_ck_get_doubles(rd, "stepsize__", co->stepsize, n) ||
              mc_ck_get_doubles(rd, "treedepth__", co->treedepth, n) ||
              mc_ck_get_doubles(rd, "n_leapfrog__", co->n_leapfrog, n) ||
              mc_ck_get_doubles(rd, "divergent__", co->divergent, n) ||
              mc_ck_get_doubles(rd, "energy__", co->energy, n) || mc_ck_word(rd, "end_chain");
    if (bad) {
        mc_chain_free(c);
        return -1;
    }
    if (fabs(c->delta - (oo.target_accept > 0 && oo.target_accept < 1 ? oo.target_accept : 0.8)) > 0) {
        mc_chain_free(c);
        return mc_ck_fail(rd, "the checkpoint was made with another target acceptance");
    }
    if (traj != oo.trajectory_length) {
        mc_chain_free(c);
        return mc_ck_fail(rd, "the checkpoint was made with trajectory_length %g, this run has %g", traj,
                          oo.trajectory_length);
    }
    bk_rng *r = &c->rng;
    for (int i = 0; i < 2; i++) r->key[i] = (uint32_t)rs[i];
    for (int i = 0; i < 4; i++) {
        r->ctr[i] = (uint32_t)rs[2 + i];
        r->buf[i] = (uint32_t)rs[6 + i];
    }
    r->used = (int)rs[10];
    r->has_spare = (int)rs[11];
    mc_dual_avg *a = &c->da;
    a->mu = da[0], a->s_bar = da[1], a->x_bar = da[2], a->delta = da[3];
    a->gamma = da[4], a->kappa = da[5], a->t0 = da[6], a->counter = da[7];
    mc_windows *w = &c->win;
    w->num_warmup = (int)win[0], w->init_buffer = (int)win[1], w->term_buffer = (int)win[2];
    w->base_window = (int)win[3], w->counter = (int)win[4], w->window_size = (int)win[5];
    w->next_window = (int)win[6], w->enabled = (int)win[7];
    c->wf.n = (long)wn;
    if (mc_ham_factor(&c->h) != 0) {
        mc_chain_free(c);
        return mc_ck_fail(rd, "the saved metric is not positive definite");
    }
    *out = c;
    return 0;
}

int mc_run_chain(mc_logp_fn f, void *ud, int d, const double *q0, const mc_opts *o,
                 bk_rng *rng, mc_chain_out *out, char *err, size_t errlen) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) {
        snprintf(err, errlen, "mcmc: invalid arguments");
        return -1;
    }
    mc_chain *c;
    if (mc_chain_new(f, ud, d, q0, o, rng, &c, err, errlen)) return -1;
    while (c->iter < c->o.warmup + c->o.samples)
        if (mc_chain_step(c, NULL, NULL, err, errlen) != 0) {
            mc_chain_free(c);
            return -1;
        }
    *rng = c->rng;
    return mc_chain_finish(c, out);
}
