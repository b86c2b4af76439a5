/* hmm.c - exact inference on a DiscreteHMM with plain double loops (no
 * tape): Viterbi, forward-backward marginals, forward-filter backward-sample,
 * filtering and Baum-Welch EM for Categorical and Normal emissions.
 *
 * The filter of FFBS and hmm_filter runs in probability space, rescaled at
 * every step (Rabiner's scaling): the emission likelihoods of step t are
 * shifted by their max (c[t]) before exponentiation and the alphas are
 * normalized to sum 1 (scale s[t]), so log p(y) = sum_t (log s[t] + c[t]).
 * Marginals and Baum-Welch's E-step are the backward sweep of the HMM op
 * (bk_hmm_expected_counts, src/backend/ops_hmm.c).  Viterbi runs in log
 * space. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hmm.h"
#include "ops_hmm.h"

/* --------------------------------------------------------- the model --- */

/* An HMM's numbers for one sequence, all malloc'd. */
typedef struct hmm_num {
    int64_t K, T;
    bool tv;            /* time-varying trans: A + t*K*K is step t's matrix */
    double *logpi;      /* [K] */
    double *logA;       /* [K*K] or [T*K*K] */
    double *logB;       /* [T*K] emission log-likelihoods (NULL with ltab) */
    /* Categorical emissions (optional, else NULL): the symbols y [T] and
     * the table etab[v*K + k] = p(v | k) / exp(cmax[v]), which the scaled
     * recursions look up instead of exponentiating logB */
    const double *y;    /* owned by num_load's hmm_num, borrowed in baum_welch */
    double *etab, *cmax;
    double *ltab;       /* [V*K] log p(v | k) at v*K + k: logB's rows by lookup */
} hmm_num;

/* Emission log-likelihoods of step t, [K]. */
static inline const double *logB_row(const struct hmm_num *m, int64_t t) {
    return m->ltab ? m->ltab + (int64_t)m->y[t] * m->K : m->logB + t * m->K;
}

static void num_free(hmm_num *m) {
    free((void *)m->y);
    free(m->logpi);
    free(m->logA);
    free(m->logB);
    free(m->ltab);
    free(m->etab);
    free(m->cmax);
    memset(m, 0, sizeof *m);
}

/* etab / cmax from the log emission table logE [K*V]; -1 when out of memory. */
static int cat_table(hmm_num *m, const double *logE, int64_t V) {
    int64_t K = m->K;
    m->etab = malloc((size_t)(V * K) * sizeof(double));
    m->cmax = malloc((size_t)V * sizeof(double));
    if (!m->etab || !m->cmax) return -1;
    bk_hmm_emission_table(K, V, logE, m->etab, m->cmax);
    return 0;
}

static double *copy_tensor(bk_ctx *ctx, bk_tensor *t) {
    if (!t) return NULL;
    double *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    if (v) bk_copy_out(t, v);
    else bk_seterr(ctx, "out of memory");
    bk_release(t);
    return v;
}

static void normalize_row(double *r, int64_t V, int variant);
static double *dense(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape);

/* The Categorical fast path of num_load: ltab (logB's rows by lookup in
 * the emission's log table) and etab.  1: done; 0: not applicable (another emission, a
 * time-varying trans of another length, a symbol outside the categories:
 * the general path handles it); -1: out of memory. */
static int num_load_cat(bk_ctx *ctx, const sl_dist *h, bk_tensor *y, hmm_num *m) {
    const sl_dist *e = h->sub[0];
    if (strcmp(e->fam->name, "Categorical") != 0 || e->mask || e->reinterpreted ||
        e->p[0]->ndim > 2 || y->ndim != 1)
        return 0;
    if (h->p[1]->ndim == 3 && (sl_hmm_nseq(h) < 0 ? y->shape[0] != h->p[1]->shape[0]
                                                  : y->shape[0] > h->p[1]->shape[0]))
        return 0;
    int64_t K = sl_hmm_nstates(h), T = y->shape[0], V = e->p[0]->shape[e->p[0]->ndim - 1];
    double *yv = malloc((size_t)(T ? T : 1) * sizeof *yv);
    if (!yv) return -1;
    bk_copy_out(y, yv);
    for (int64_t t = 0; t < T; t++)
        if (!(yv[t] >= 0 && yv[t] < (double)V && yv[t] == floor(yv[t]))) {
            free(yv);
            return 0;
        }
    double *logE = dense(ctx, e->p[0], 2, (int64_t[]){K, V});
    m->K = K;
    m->T = T;
    m->ltab = malloc((size_t)(V * K) * sizeof(double));
    if (!logE || !m->ltab) {
        free(yv);
        free(logE);
        return -1;
    }
    for (int64_t k = 0; k < K; k++) {
        normalize_row(logE + k * V, V, e->variant);
        for (int64_t v = 0; v < V; v++) logE[k * V + v] = log(logE[k * V + v]);
    }
    for (int64_t v = 0; v < V; v++)
        for (int64_t k = 0; k < K; k++) m->ltab[v * K + k] = logE[k * V + v];
    m->y = yv;
    int rc = cat_table(m, logE, V);
    free(logE);
    return rc ? -1 : 1;
}

/* Fill m from h and the sequence y (off the tape).  0 or -1 + bk error. */
static int num_load(bk_ctx *ctx, const sl_dist *h, bk_tensor *y, hmm_num *m) {
    memset(m, 0, sizeof *m);
    bool g = bk_set_grad_enabled(ctx, false);
    int cat = num_load_cat(ctx, h, y, m);
    if (cat) {
        m->tv = h->p[1]->ndim == 3;
        m->logpi = cat > 0 ? copy_tensor(ctx, sl_hmm_log_init(ctx, h)) : NULL;
        m->logA = m->logpi ? copy_tensor(ctx, sl_hmm_log_trans(ctx, h)) : NULL;
        bk_set_grad_enabled(ctx, g);
        if (m->logA) return 0;
        num_free(m);
        if (!bk_errmsg(ctx)[0]) bk_seterr(ctx, "out of memory");
        return -1;
    }
    bk_tensor *B = sl_hmm_emission_logp(ctx, h, y);
    m->K = sl_hmm_nstates(h);
    m->T = B ? B->shape[0] : 0;
    m->tv = h->p[1]->ndim == 3;
    m->logB = copy_tensor(ctx, B);
    m->logpi = m->logB ? copy_tensor(ctx, sl_hmm_log_init(ctx, h)) : NULL;
    m->logA = m->logpi ? copy_tensor(ctx, sl_hmm_log_trans(ctx, h)) : NULL;
    bk_set_grad_enabled(ctx, g);
    if (m->logA) return 0;
    num_free(m);
    return -1;
}

static const double *step_logA(const hmm_num *m, int64_t t) {
    return m->logA + (m->tv ? t * m->K * m->K : 0);
}

/* ---------------------------------------------------- forward-backward --- */

/* Scaled forward pass: alpha[T*K] (each row normalized); returns log p(y)
 * (-inf when y is impossible).  b[T*K] receives the shifted emission
 * likelihoods exp(logB - c[t]) (looked up in etab for Categorical
 * emissions) and s[T] the scales (both used by the backward pass). */
/* Row t of the shifted emission likelihoods: the table row of y[t]
 * (Categorical: never stored) or row t of b. */
static inline const double *b_row(const hmm_num *m, const double *b, int64_t t) {
    return m->etab ? m->etab + (int64_t)m->y[t] * m->K : b + t * m->K;
}

static double forward(const hmm_num *m, const double *A, double *alpha, double *b, double *s) {
    int64_t K = m->K;
    double ll = 0, prod = 1;
    for (int64_t t = 0; t < m->T; t++) {
        const double *bt;
        double c;
        if (m->etab) {
            bt = b_row(m, b, t);
            c = m->cmax[(int64_t)m->y[t]];
        } else {
            const double *lb = logB_row(m, t);
            double *br = b + t * K;
            c = -INFINITY;
            for (int64_t k = 0; k < K; k++) c = fmax(c, lb[k]);
            if (!isfinite(c)) c = 0;
            for (int64_t k = 0; k < K; k++) br[k] = exp(lb[k] - c);
            bt = br;
        }
        if (!isfinite(c)) c = 0;
        double *a = alpha + t * K, tot = 0;
        if (t == 0)
            for (int64_t j = 0; j < K; j++) a[j] = exp(m->logpi[j]);
        else
            bk_hmm_vecmat(K, a - K, A + (m->tv ? t * K * K : 0), a);
        for (int64_t j = 0; j < K; j++) tot += a[j] *= bt[j];
        s[t] = tot;
        if (tot > 0) {
            double inv = 1.0 / tot;
            for (int64_t j = 0; j < K; j++) a[j] *= inv;
        }
        ll += c;
        bk_hmm_add_scale(&ll, &prod, tot);
    }
    return ll + log(prod);
}

/* Workspace of the recursions for one sequence. */
typedef struct hmm_work {
    double *A, *alpha, *b, *s;
} hmm_work;

static void work_free(hmm_work *w) {
    free(w->A);
    free(w->alpha);
    free(w->b);
    free(w->s);
}

static int work_alloc(bk_ctx *ctx, hmm_work *w, int64_t K, int64_t T, int64_t nA) {
    size_t n = (size_t)((T ? T : 1) * K);
    w->A = malloc((size_t)nA * sizeof(double));
    w->alpha = malloc(n * sizeof(double));
    w->b = malloc(n * sizeof(double));
    w->s = malloc((size_t)(T ? T : 1) * sizeof(double));
    if (w->A && w->alpha && w->b && w->s) return 0;
    work_free(w);
    bk_seterr(ctx, "out of memory");
    return -1;
}

/* exp of the log transition matrices into w->A. */
static void fill_A(const hmm_num *m, hmm_work *w) {
    int64_t n = (m->tv ? m->T : 1) * m->K * m->K;
    for (int64_t i = 0; i < n; i++) w->A[i] = exp(m->logA[i]);
}

static int work_for(bk_ctx *ctx, const hmm_num *m, hmm_work *w) {
    if (work_alloc(ctx, w, m->K, m->T, (m->tv ? m->T : 1) * m->K * m->K)) return -1;
    fill_A(m, w);
    return 0;
}

/* ---------------------------------------------------- argument checks --- */

static int hmm_args(rt_vm *vm, const rt_call *c, int maxpos, const char *const *names,
                    sl_dist **h, bk_tensor **y) {
    if (rt_check_args(vm, c, maxpos, names)) return -1;
    const rt_value *v = rt_arg(c, 0, "h");
    if (!v) return rt_error(vm, c, "%s: missing argument \"h\"", c->name);
    if (v->tag != RT_DIST || ((sl_dist *)v->u.o)->fam != &sl_family_discretehmm)
        return rt_error_arg(vm, c, 0, "%s: h must be a DiscreteHMM, got a %s", c->name,
                            v->tag == RT_DIST ? ((sl_dist *)v->u.o)->fam->name
                                              : rt_type_name(*v));
    *h = (sl_dist *)v->u.o;
    return y ? rt_arg_tensor(vm, c, 1, names[1], true, y) : 0;
}

/* A call on one sequence y, or on a batch ys [B, T] when h has lengths=:
 * nseq sequences, each padded to T steps in the results. */
typedef struct hmm_call {
    sl_dist *h;
    bk_tensor *y;
    int64_t nseq, T;   /* nseq = -1: not batched (T is then y's length) */
} hmm_call;

static int call_args(rt_vm *vm, const rt_call *c, hmm_call *hc) {
    static const char *const names[] = {"h", "y", NULL};
    if (hmm_args(vm, c, 2, names, &hc->h, &hc->y)) return -1;
    hc->nseq = sl_hmm_nseq(hc->h);
    hc->T = hc->y->ndim ? hc->y->shape[hc->nseq >= 0 && hc->y->ndim > 1 ? 1 : 0] : 0;
    return 0;
}

/* Load sequence b of the call (b = 0 when not batched); errors are
 * reported at y. */
static int load_seq(rt_vm *vm, const rt_call *c, const hmm_call *hc, int64_t b, hmm_num *m) {
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_tensor *y = hc->nseq >= 0 ? sl_hmm_seq(ctx, hc->h, hc->y, b) : bk_retain(hc->y);
    int rc = y ? num_load(ctx, hc->h, y, m) : -1;
    bk_release(y);
    if (rc) return rt_error_arg(vm, c, 1, "%s: %s", c->name, bk_errmsg(ctx));
    return 0;
}

/* The error of a sequence of probability 0 (sequence b of a batch), at y. */
static int zero_prob(rt_vm *vm, const rt_call *c, const hmm_call *hc, int64_t b) {
    if (hc->nseq >= 0)
        return rt_error_arg(vm, c, 1, "%s: sequence %lld has probability 0 under the model",
                            c->name, (long long)b);
    return rt_error_arg(vm, c, 1, "%s: the sequence has probability 0 under the model", c->name);
}

/* A result (filled on the host) on the run's device, as the runtime places
 * the tensors it makes (bk_place_nd: a 0-d one stays a host scalar). */
static int ret_tensor(rt_vm *vm, const rt_call *c, bk_tensor *t, rt_value *out) {
    if (!(t = bk_place_nd(rt_vm_bk(vm), t))) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

/* Result [T] + tail (not batched) or [nseq, T] + tail, filled with `pad`. */
static bk_tensor *result_tensor(bk_ctx *ctx, const hmm_call *hc, int ntail, const int64_t *tail,
                                double pad) {
    int64_t shape[4];
    int nd = 0;
    if (hc->nseq >= 0) shape[nd++] = hc->nseq;
    shape[nd++] = hc->T;
    for (int i = 0; i < ntail; i++) shape[nd++] = tail[i];
    bk_tensor *t = bk_empty(ctx, BK_F64, nd, shape);
    for (int64_t i = 0; t && i < t->numel; i++) bk_data(t)[i] = pad;
    return t;
}

static int64_t nseqs(const hmm_call *hc) { return hc->nseq >= 0 ? hc->nseq : 1; }

/* ------------------------------------------------------------- viterbi --- */

/* MAP path into z[T]; returns its joint log-probability with y.  The
 * forward sweep keeps only the scores delta (the max-plus product, one
 * vectorized pass per step with no argmax bookkeeping); the backtrack
 * recovers each best predecessor from the stored scores, z[t-1] = the first
 * i maximizing delta[t-1, i] + log A[i, z[t]] (the same sums, so the same
 * path as keeping back-pointers), K work per step instead of K^2. */
static double viterbi(const hmm_num *m, double *delta, int64_t *z) {
    int64_t K = m->K, T = m->T;
    for (int64_t k = 0; k < K && T > 0; k++) delta[k] = m->logpi[k] + logB_row(m, 0)[k];
    for (int64_t t = 1; t < T; t++) {
        double *best = delta + t * K;
        bk_hmm_maxplus(K, delta + (t - 1) * K, step_logA(m, t), best);
        const double *lb = logB_row(m, t);
        for (int64_t j = 0; j < K; j++) best[j] += lb[j];
    }
    if (T == 0) return 0;
    double top = -INFINITY;
    z[T - 1] = 0;
    for (int64_t k = 0; k < K; k++)
        if (delta[(T - 1) * K + k] > top) {
            top = delta[(T - 1) * K + k];
            z[T - 1] = k;
        }
    for (int64_t t = T - 1; t > 0; t--) {
        const double *prev = delta + (t - 1) * K, *lA = step_logA(m, t);
        int64_t j = z[t], arg = 0;
        double bv = -INFINITY;
        for (int64_t i = 0; i < K; i++) {
            double v = prev[i] + lA[i * K + j];
            if (v > bv) {
                bv = v;
                arg = i;
            }
        }
        z[t - 1] = arg;
    }
    return top;
}

/* Record {path, log_prob} (both taken over, placed on the run's device). */
static int path_record(rt_vm *vm, const rt_call *c, bk_tensor *path, bk_tensor *lpt,
                       rt_value *out) {
    bk_ctx *ctx = rt_vm_bk(vm);
    if (!(path = bk_place_nd(ctx, path))) {
        bk_release(lpt);
        return rt_error_bk(vm, c);
    }
    if (!(lpt = bk_place_nd(ctx, lpt))) {
        bk_release(path);
        return rt_error_bk(vm, c);
    }
    rt_record *r = rt_record_new();
    if (!r) {
        bk_release(path);
        bk_release(lpt);
        return rt_error(vm, c, "out of memory");
    }
    /* rt_record_set takes over the values it gets */
    if (rt_record_set(r, "path", rt_tensor(path)) || rt_record_set(r, "log_prob", rt_tensor(lpt))) {
        rt_release(rt_obj_value(&r->h));
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

static int b_viterbi(rt_vm *vm, const rt_call *c, rt_value *out) {
    hmm_call hc;
    if (call_args(vm, c, &hc)) return -1;
    bk_ctx *ctx = rt_vm_bk(vm);
    int64_t K = sl_hmm_nstates(hc.h), nb = nseqs(&hc);
    size_t n = (size_t)((hc.T ? hc.T : 1) * K);
    double *delta = malloc(n * sizeof *delta);
    int64_t *z = malloc((size_t)(hc.T ? hc.T : 1) * sizeof *z);
    bk_tensor *path = result_tensor(ctx, &hc, 0, NULL, -1.0);
    bk_tensor *lpt = bk_empty(ctx, BK_F64, hc.nseq >= 0 ? 1 : 0, (int64_t[]){nb});
    int rc = 0;
    if (!delta || !z || !path || !lpt) rc = rt_error(vm, c, "out of memory");
    for (int64_t b = 0; rc == 0 && b < nb; b++) {
        hmm_num m;
        if ((rc = load_seq(vm, c, &hc, b, &m))) break;
        double lp = viterbi(&m, delta, z);
        bk_data(lpt)[b] = lp;
        for (int64_t t = 0; t < m.T; t++) bk_data(path)[b * hc.T + t] = (double)z[t];
        num_free(&m);
        /* no path has positive probability (as hmm_marginals says) */
        if (!(lp > -INFINITY)) rc = zero_prob(vm, c, &hc, b);
    }
    free(delta);
    free(z);
    if (rc) {
        bk_release(path);
        bk_release(lpt);
        return rc;
    }
    return path_record(vm, c, path, lpt, out);
}

/* The common start of marginals, FFBS and filtering on one sequence: load
 * it, allocate the work arrays and run the scaled forward pass.  On
 * failure everything is freed and the error reported. */
static int filtered(rt_vm *vm, const rt_call *c, const hmm_call *hc, int64_t b, hmm_num *m,
                    hmm_work *w) {
    if (load_seq(vm, c, hc, b, m)) return -1;
    if (work_for(rt_vm_bk(vm), m, w)) {
        num_free(m);
        return rt_error_bk(vm, c);
    }
    if (!isfinite(forward(m, w->A, w->alpha, w->b, w->s))) {
        work_free(w);
        num_free(m);
        return zero_prob(vm, c, hc, b);
    }
    return 0;
}

/* ----------------------------------------------------------- marginals --- */

/* Posterior marginals of one loaded sequence into gv [T*K] (zeros): the
 * HMM op's backward sweep, whose gradient w.r.t. the emission
 * log-likelihoods is gamma.  0, 1 when the sequence has probability 0, -1
 * + bk error. */
static int seq_marginals(bk_ctx *ctx, const hmm_num *m, double *gv) {
    int64_t K = m->K, T = m->T, nA = (m->tv ? T : 1) * K * K;
    bk_tensor *in[4] = {bk_from_f64(ctx, 1, (int64_t[]){K}, m->logpi),
                        m->tv ? bk_empty(ctx, BK_F64, 3, (int64_t[]){T, K, K})
                              : bk_empty(ctx, BK_F64, 2, (int64_t[]){K, K}),
                        bk_empty(ctx, BK_F64, 2, (int64_t[]){T, K}), bk_scalar(ctx, (double)T)};
    int rc = -1;
    double ll = NAN;
    if (in[0] && in[1] && in[2] && in[3]) {
        for (int64_t i = 0; i < nA; i++) bk_data(in[1])[i] = exp(m->logA[i]);
        for (int64_t t = 0; t < T; t++) memcpy(bk_data(in[2]) + t * K, logB_row(m, t), (size_t)K * sizeof(double));
        rc = bk_hmm_expected_counts(ctx, in, false, &ll, NULL, NULL, gv, NULL);
    } else {
        bk_seterr(ctx, "out of memory");
    }
    for (int i = 0; i < 4; i++) bk_release(in[i]);
    return rc ? -1 : isfinite(ll) ? 0 : 1;
}

static int b_marginals(rt_vm *vm, const rt_call *c, rt_value *out) {
    hmm_call hc;
    if (call_args(vm, c, &hc)) return -1;
    bk_ctx *ctx = rt_vm_bk(vm);
    int64_t K = sl_hmm_nstates(hc.h);
    bk_tensor *g = result_tensor(ctx, &hc, 1, &K, 0.0);
    if (!g) return rt_error_bk(vm, c);
    for (int64_t b = 0; b < nseqs(&hc); b++) {
        hmm_num m;
        if (load_seq(vm, c, &hc, b, &m)) {
            bk_release(g);
            return -1;
        }
        int rc = m.T ? seq_marginals(ctx, &m, bk_data(g) + b * hc.T * K) : 0;
        num_free(&m);
        if (rc) {
            bk_release(g);
            if (rc < 0) return rt_error_bk(vm, c);
            return zero_prob(vm, c, &hc, b);
        }
    }
    return ret_tensor(vm, c, g, out);
}

/* ----------------------------------------------------- sample / filter --- */

static int b_sample_states(rt_vm *vm, const rt_call *c, rt_value *out) {
    hmm_call hc;
    if (call_args(vm, c, &hc)) return -1;
    int64_t K = sl_hmm_nstates(hc.h);
    bk_tensor *zt = result_tensor(rt_vm_bk(vm), &hc, 0, NULL, -1.0);
    int64_t *z = malloc((size_t)(hc.T ? hc.T : 1) * sizeof *z);
    double *p = malloc((size_t)K * sizeof *p);
    int rc = zt && z && p ? 0 : rt_error(vm, c, "out of memory");
    bk_rng *rng = rt_vm_rng(vm);
    for (int64_t b = 0; rc == 0 && b < nseqs(&hc); b++) {
        hmm_num m;
        hmm_work w;
        if ((rc = filtered(vm, c, &hc, b, &m, &w))) break;
        int64_t T = m.T;
        /* z[T-1] from the filter, then z[t] | z[t+1] ~ alpha[t] * A[:, z[t+1]] */
        if (T > 0) z[T - 1] = bk_rng_categorical(rng, K, w.alpha + (T - 1) * K);
        for (int64_t t = T - 2; t >= 0; t--) {
            const double *At = w.A + (m.tv ? (t + 1) * K * K : 0);
            for (int64_t i = 0; i < K; i++) p[i] = w.alpha[t * K + i] * At[i * K + z[t + 1]];
            z[t] = bk_rng_categorical(rng, K, p);
        }
        for (int64_t t = 0; t < T; t++) bk_data(zt)[b * hc.T + t] = (double)z[t];
        work_free(&w);
        num_free(&m);
    }
    free(z);
    free(p);
    if (rc) {
        bk_release(zt);
        return rc;
    }
    return ret_tensor(vm, c, zt, out);
}

static int b_filter(rt_vm *vm, const rt_call *c, rt_value *out) {
    hmm_call hc;
    if (call_args(vm, c, &hc)) return -1;
    bk_ctx *ctx = rt_vm_bk(vm);
    int64_t K = sl_hmm_nstates(hc.h), nb = nseqs(&hc);
    bk_tensor *p = hc.nseq >= 0 ? bk_empty(ctx, BK_F64, 2, (int64_t[]){nb, K})
                                : bk_empty(ctx, BK_F64, 1, (int64_t[]){K});
    if (!p) return rt_error_bk(vm, c);
    for (int64_t b = 0; b < nb; b++) {
        hmm_num m;
        hmm_work w;
        if (filtered(vm, c, &hc, b, &m, &w)) {
            bk_release(p);
            return -1;
        }
        double *pv = bk_data(p) + b * K;
        for (int64_t k = 0; k < K; k++)
            pv[k] = m.T == 0 ? exp(m.logpi[k]) : w.alpha[(m.T - 1) * K + k];
        work_free(&w);
        num_free(&m);
    }
    if (!(p = bk_place_nd(ctx, p))) return rt_error_bk(vm, c);
    sl_dist *d = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &p);
    bk_release(p);
    if (!d) return rt_error_bk(vm, c);
    *out = rt_obj_value(&d->h);
    return 0;
}

/* ---------------------------------------------------------- baum-welch --- */

enum { EM_CATEGORICAL, EM_NORMAL };

/* EM state: the current parameters and the E-step's expected counts. */
typedef struct bw_state {
    int kind;
    int64_t K, V;           /* V: Categorical categories */
    double *pi, *A;         /* [K], [K*K] */
    double *E;              /* Categorical probs [K*V] */
    double *mu, *sd;        /* Normal [K] */
    /* accumulators */
    double *c_pi, *c_A, *c_g, *c_E, *c_y, *c_yy;
} bw_state;

typedef struct bw_seq {
    int64_t T;
    const double *y;
} bw_seq;

static void bw_free(bw_state *s) {
    double **f[] = {&s->pi, &s->A, &s->E, &s->mu, &s->sd, &s->c_pi,
                    &s->c_A, &s->c_g, &s->c_E, &s->c_y, &s->c_yy};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
}

/* Parameters broadcast to n values (a dense copy). */
static double *dense(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape) {
    return copy_tensor(ctx, bk_expand(ctx, t, nd, shape));
}

/* Category probabilities of one row of Categorical probs (variant 0) or
 * logits (variant 1), in place. */
static void normalize_row(double *r, int64_t V, int variant) {
    double m = -INFINITY, tot = 0;
    for (int64_t v = 0; variant == 1 && v < V; v++) m = fmax(m, r[v]);
    for (int64_t v = 0; v < V; v++) tot += r[v] = variant == 1 ? exp(r[v] - m) : r[v];
    for (int64_t v = 0; v < V; v++) r[v] /= tot;
}

static int bw_init(bk_ctx *ctx, const sl_dist *h, bw_state *s) {
    const sl_dist *e = h->sub[0];
    int64_t K = sl_hmm_nstates(h);
    memset(s, 0, sizeof *s);
    s->K = K;
    if (h->p[1]->ndim == 3) {
        bk_seterr(ctx, "baum_welch: time-varying trans is not supported");
        return -1;
    }
    if (e->mask || e->reinterpreted) {
        bk_seterr(ctx, "baum_welch: the emission must be a plain Categorical or Normal");
        return -1;
    }
    bool g = bk_set_grad_enabled(ctx, false);
    int64_t kk[2] = {K, K};
    s->pi = copy_tensor(ctx, sl_hmm_log_init(ctx, h));
    s->A = copy_tensor(ctx, sl_hmm_log_trans(ctx, h));
    for (int64_t i = 0; s->pi && i < K; i++) s->pi[i] = exp(s->pi[i]);
    for (int64_t i = 0; s->A && i < K * K; i++) s->A[i] = exp(s->A[i]);
    int rc = s->pi && s->A ? 0 : -1;
    if (rc == 0 && strcmp(e->fam->name, "Categorical") == 0) {
        s->kind = EM_CATEGORICAL;
        s->V = e->p[0]->shape[e->p[0]->ndim - 1];
        kk[1] = s->V;
        s->E = dense(ctx, e->p[0], 2, kk);
        for (int64_t k = 0; s->E && k < K; k++) normalize_row(s->E + k * s->V, s->V, e->variant);
        rc = s->E ? 0 : -1;
    } else if (rc == 0 && strcmp(e->fam->name, "Normal") == 0) {
        s->kind = EM_NORMAL;
        s->mu = dense(ctx, e->p[0], 1, kk);
        s->sd = s->mu ? dense(ctx, e->p[1], 1, kk) : NULL;
        rc = s->sd ? 0 : -1;
    } else if (rc == 0) {
        bk_seterr(ctx, "baum_welch: emission must be Categorical or Normal, got %s", e->fam->name);
        rc = -1;
    }
    bk_set_grad_enabled(ctx, g);
    int64_t V = s->kind == EM_CATEGORICAL ? s->V : 1;
    if (rc == 0) {
        s->c_pi = calloc((size_t)K, sizeof(double));
        s->c_A = calloc((size_t)(K * K), sizeof(double));
        s->c_g = calloc((size_t)K, sizeof(double));
        s->c_E = calloc((size_t)(K * V), sizeof(double));
        s->c_y = calloc((size_t)K, sizeof(double));
        s->c_yy = calloc((size_t)K, sizeof(double));
        if (!s->c_pi || !s->c_A || !s->c_g || !s->c_E || !s->c_y || !s->c_yy) {
            bk_seterr(ctx, "out of memory");
            rc = -1;
        }
    }
    if (rc) bw_free(s);
    return rc;
}

/* Emission log-likelihoods of one sequence under the current parameters. */
/* (Normal emissions; Categorical ones are looked up in m->etab.)  lnorm[k]
 * = log sd[k] + log(2 pi) / 2. */
static void bw_logB(const bw_state *s, const bw_seq *q, const double *lnorm, double *logB) {
    int64_t K = s->K;
    for (int64_t t = 0; t < q->T; t++)
        for (int64_t k = 0; k < K; k++) {
            double zz = (q->y[t] - s->mu[k]) / s->sd[k];
            logB[t * K + k] = -0.5 * zz * zz - lnorm[k];
        }
}

/* E-step over all sequences, fused: one forward and one backward sweep per
 * sequence through the HMM op's backward rule (bk_hmm_expected_counts),
 * whose gradients are the expected counts: d/d logpi = gamma_0, d/d A =
 * the pair-marginal sums before the M-step's multiplication by A (one GEMM
 * per block of steps for large K), d/d logE[k, v] = the emission counts
 * (Categorical), d/d logB[t, k] = gamma_t(k) (Normal: weighted sums of y
 * and y^2 from it).  in: logpi, A, logE | logB, codes | lengths (the op's
 * inputs); gem: scratch shaped like in[2]; work: the op's workspace.  Returns the summed log p(y)
 * (-inf or NaN when a sequence is impossible), or NAN + bk error when out
 * of memory (*oom set). */
static double bw_estep(bk_ctx *ctx, bw_state *s, const bw_seq *seqs, int64_t nseq, int64_t maxT,
                       bk_tensor **in, double *gem, double *lls, double *work, bool *oom) {
    int64_t K = s->K, V = s->kind == EM_CATEGORICAL ? s->V : 1;
    bool cat = s->kind == EM_CATEGORICAL;
    memset(gem, 0, (size_t)in[2]->numel * sizeof(double));
    *oom = bk_hmm_expected_counts(ctx, in, cat, lls, s->c_pi, s->c_A, gem, work) != 0;
    if (*oom) return NAN;
    double ll = 0;
    for (int64_t i = 0; i < nseq; i++) ll += lls[i];
    if (cat) {
        memcpy(s->c_E, gem, (size_t)(K * V) * sizeof(double));
        for (int64_t k = 0; k < K; k++)
            for (int64_t v = 0; v < V; v++) s->c_g[k] += gem[k * V + v];
        return ll;
    }
    for (int64_t i = 0; i < nseq; i++)
        for (int64_t t = 0; t < seqs[i].T; t++) {
            const double *g = gem + (i * maxT + t) * K;
            double y = seqs[i].y[t];
            for (int64_t k = 0; k < K; k++) {
                s->c_g[k] += g[k];
                s->c_y[k] += g[k] * y;
                s->c_yy[k] += g[k] * y * y;
            }
        }
    return ll;
}

/* M-step: new parameters from the counts (a state never visited keeps its
 * emission), then clear the counts. */
static void bw_mstep(bw_state *s, int64_t nseq) {
    int64_t K = s->K, V = s->kind == EM_CATEGORICAL ? s->V : 1;
    for (int64_t k = 0; k < K; k++) s->pi[k] = s->c_pi[k] / (double)nseq;
    for (int64_t i = 0; i < K * K; i++) s->c_A[i] *= s->A[i];
    for (int64_t i = 0; i < K; i++) {
        double r = 0;
        for (int64_t j = 0; j < K; j++) r += s->c_A[i * K + j];
        if (r > 0)
            for (int64_t j = 0; j < K; j++) s->A[i * K + j] = s->c_A[i * K + j] / r;
        double g = s->c_g[i];
        if (!(g > 0)) continue;
        if (s->kind == EM_CATEGORICAL) {
            for (int64_t v = 0; v < V; v++) s->E[i * V + v] = s->c_E[i * V + v] / g;
        } else {
            double mu = s->c_y[i] / g, var = s->c_yy[i] / g - mu * mu;
            /* a floor keeps a state that owns one point from collapsing */
            double floor = 1e-10 * (1.0 + mu * mu);
            s->mu[i] = mu;
            s->sd[i] = sqrt(var > floor ? var : floor);
        }
    }
    memset(s->c_pi, 0, (size_t)K * sizeof(double));
    memset(s->c_A, 0, (size_t)(K * K) * sizeof(double));
    memset(s->c_g, 0, (size_t)K * sizeof(double));
    memset(s->c_E, 0, (size_t)(K * V) * sizeof(double));
    memset(s->c_y, 0, (size_t)K * sizeof(double));
    memset(s->c_yy, 0, (size_t)K * sizeof(double));
}

/* The sequences of `ys`: a tensor [T] (one), [N, T] (N; `lengths` may cut
 * each row), or a list of [T_i] tensors.  seqs[i].y points into *buf. */
static int bw_sequences(rt_vm *vm, const rt_call *c, const sl_dist *h, const bw_state *st,
                        bw_seq **seqs,
                        int64_t *nseq, double **buf, int64_t *maxT) {
    const rt_value *v = rt_arg(c, 1, "ys");
    bk_tensor *lens = NULL;
    if (!v) return rt_error(vm, c, "baum_welch: missing argument \"ys\"");
    if (rt_arg(c, -1, "lengths") && rt_arg_tensor(vm, c, -1, "lengths", false, &lens)) return -1;
    /* a batched h lends its lengths to a matrix ys */
    if (!lens && sl_hmm_nseq(h) >= 0 && v->tag == RT_TENSOR && v->u.t->ndim == 2)
        lens = h->p[3];
    int64_t n, total = 0;
    bool is_list = v->tag == RT_LIST;
    const rt_list *l = is_list ? (const rt_list *)v->u.o : NULL;
    if (is_list) {
        n = l->n;
        for (int64_t i = 0; i < n; i++) {
            if (l->items[i].tag != RT_TENSOR || l->items[i].u.t->ndim != 1)
                return rt_error_arg(vm, c, 1, "baum_welch: ys must be a list of vectors");
            total += l->items[i].u.t->numel;
        }
    } else if (v->tag == RT_TENSOR && (v->u.t->ndim == 1 || v->u.t->ndim == 2)) {
        n = v->u.t->ndim == 1 ? 1 : v->u.t->shape[0];
        total = v->u.t->numel;
    } else {
        return rt_error_arg(vm, c, 1, "baum_welch: ys must be a sequence [T], a matrix [N, T] "
                                      "or a list of sequences");
    }
    if (lens && (is_list || lens->numel != n))
        return rt_error_kw(vm, c, "lengths", "baum_welch: lengths must have one entry per row of ys");
    if (n <= 0 || total < 0) return rt_error_arg(vm, c, 1, "baum_welch: ys holds no sequence");
    *seqs = calloc((size_t)n, sizeof **seqs);
    *buf = malloc((size_t)(total ? total : 1) * sizeof **buf);
    if (!*seqs || !*buf) return rt_error(vm, c, "out of memory");
    *nseq = n;
    *maxT = 0;
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        bk_tensor *t = is_list ? l->items[i].u.t : v->u.t;
        int64_t T = is_list || t->ndim == 1 ? t->numel : t->shape[1];
        if (is_list) bk_copy_out(t, *buf + off);
        else if (i == 0) bk_copy_out(t, *buf);
        (*seqs)[i].y = *buf + (is_list ? off : i * T);
        if (lens) {
            double L = bk_get(lens, i);
            if (!(L >= 0 && L <= T && L == floor(L)))
                return rt_error_kw(vm, c, "lengths", "baum_welch: lengths[%lld] must be an "
                                   "integer in [0, %lld]", (long long)i, (long long)T);
            T = (int64_t)L;
        }
        (*seqs)[i].T = T;
        if (T > *maxT) *maxT = T;
        off += is_list ? t->numel : 0;
    }
    /* Categorical observations must be category indices */
    for (int64_t i = 0; st->kind == EM_CATEGORICAL && i < n; i++)
        for (int64_t t = 0; t < (*seqs)[i].T; t++) {
            double y = (*seqs)[i].y[t];
            if (!(y >= 0 && y < (double)st->V && y == floor(y)))
                return rt_error_arg(vm, c, 1, "baum_welch: observations must be integers in "
                                    "[0, %lld], got %g", (long long)(st->V - 1), y);
        }
    return 0;
}

/* A result of baum_welch, on the run's device. */
static bk_tensor *vec(bk_ctx *ctx, const double *v, int nd, int64_t a, int64_t b) {
    return bk_place_nd(ctx, bk_from_f64(ctx, nd, (int64_t[]){a, b}, v));
}

/* Result record: init, trans, probs | loc + scale, emission, hmm,
 * log_likelihoods, iterations, converged. */
static int bw_result(rt_vm *vm, const rt_call *c, const bw_state *s, const double *lls,
                     int64_t nll, bool converged, rt_value *out) {
    bk_ctx *ctx = rt_vm_bk(vm);
    int64_t K = s->K;
    rt_record *r = rt_record_new();
    if (!r) return rt_error(vm, c, "out of memory");
    bk_tensor *pi = vec(ctx, s->pi, 1, K, 0), *A = vec(ctx, s->A, 2, K, K);
    bk_tensor *p0 = NULL, *p1 = NULL;
    const sl_family *fam;
    if (s->kind == EM_CATEGORICAL) {
        fam = sl_find_family("Categorical");
        p0 = vec(ctx, s->E, 2, K, s->V);
    } else {
        fam = sl_find_family("Normal");
        p0 = vec(ctx, s->mu, 1, K, 0);
        p1 = vec(ctx, s->sd, 1, K, 0);
    }
    bk_tensor *ps[2] = {p0, p1};
    sl_dist *em = pi && A && p0 ? sl_dist_make(ctx, fam, 0, p1 ? 2 : 1, ps) : NULL;
    sl_dist *h = em ? sl_hmm_make(ctx, pi, A, em, 0, -1) : NULL;
    bk_tensor *ll = vec(ctx, lls, 1, nll, 0);
    bk_tensor *it = bk_scalar(ctx, (double)nll), *cv = bk_scalar(ctx, converged ? 1.0 : 0.0);
    int bad = !h || !ll || !it || !cv;
    if (!bad) {
        bad |= rt_record_set(r, "init", rt_tensor(bk_retain(pi)));
        bad |= rt_record_set(r, "trans", rt_tensor(bk_retain(A)));
        if (s->kind == EM_CATEGORICAL) {
            bad |= rt_record_set(r, "probs", rt_tensor(bk_retain(p0)));
        } else {
            bad |= rt_record_set(r, "loc", rt_tensor(bk_retain(p0)));
            bad |= rt_record_set(r, "scale", rt_tensor(bk_retain(p1)));
        }
        em->h.refcount++;
        bad |= rt_record_set(r, "emission", rt_obj_value(&em->h));
        h->h.refcount++;
        bad |= rt_record_set(r, "hmm", rt_obj_value(&h->h));
        bad |= rt_record_set(r, "log_likelihoods", rt_tensor(bk_retain(ll)));
        bad |= rt_record_set(r, "iterations", rt_tensor(bk_retain(it)));
        bad |= rt_record_set(r, "converged", rt_tensor(bk_retain(cv)));
    }
    bk_release(pi);
    bk_release(A);
    bk_release(p0);
    bk_release(p1);
    bk_release(ll);
    bk_release(it);
    bk_release(cv);
    sl_dist_release(em);
    sl_dist_release(h);
    if (bad) {
        rt_release(rt_obj_value(&r->h));
        return bk_errmsg(ctx)[0] ? rt_error_bk(vm, c) : rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

static int b_baum_welch(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"h", "ys", "iters", "tol", "lengths", NULL};
    sl_dist *h;
    double iters, tol;
    if (hmm_args(vm, c, 4, names, &h, NULL) ||
        rt_arg_number(vm, c, 2, "iters", 100, false, &iters) ||
        rt_arg_number(vm, c, 3, "tol", 1e-6, false, &tol))
        return -1;
    if (!(iters >= 1 && iters == floor(iters) && iters < 1e9))
        return rt_error(vm, c, "baum_welch: iters must be a positive integer, got %g", iters);
    bk_ctx *ctx = rt_vm_bk(vm);
    bw_state s;
    if (bw_init(ctx, h, &s)) return rt_error_arg(vm, c, 0, "%s", bk_errmsg(ctx));
    bw_seq *seqs = NULL;
    double *buf = NULL, *lls = NULL, *lnorm = NULL, *gem = NULL, *seqll = NULL, *work = NULL;
    int64_t nseq = 0, maxT = 0, K = s.K, nll = 0;
    bool converged = false;
    bool cat = s.kind == EM_CATEGORICAL;
    /* the op's inputs: in[0] logpi, in[1] A, in[2] logE [K, V] or logB
     * [N, T, K], in[3] the codes [N, T] (-1 past each length) or lengths */
    bk_tensor *in[4] = {NULL, NULL, NULL, NULL};
    int rc = bw_sequences(vm, c, h, &s, &seqs, &nseq, &buf, &maxT);
    int64_t Tp = maxT ? maxT : 1;
    if (rc == 0) {
        lls = malloc((size_t)iters * sizeof *lls);
        seqll = malloc((size_t)nseq * sizeof *seqll);
        lnorm = malloc((size_t)(K * (cat ? s.V : 1)) * sizeof(double));
        in[0] = bk_zeros(ctx, BK_F64, 1, (int64_t[]){K});
        in[1] = bk_zeros(ctx, BK_F64, 2, (int64_t[]){K, K});
        in[2] = cat ? bk_zeros(ctx, BK_F64, 2, (int64_t[]){K, s.V})
                    : bk_zeros(ctx, BK_F64, 3, (int64_t[]){nseq, Tp, K});
        in[3] = cat ? bk_full(ctx, BK_F64, 2, (int64_t[]){nseq, Tp}, -1.0)
                    : bk_zeros(ctx, BK_F64, 1, (int64_t[]){nseq});
        gem = in[2] ? malloc((size_t)in[2]->numel * sizeof *gem) : NULL;
        work = malloc(bk_hmm_counts_worksize(K, Tp, cat) * sizeof *work);
        if (!lls || !seqll || !lnorm || !in[0] || !in[1] || !in[2] || !in[3] || !gem || !work)
            rc = rt_error(vm, c, "out of memory");
    }
    for (int64_t i = 0; rc == 0 && i < nseq; i++) {
        if (!cat) bk_data(in[3])[i] = (double)seqs[i].T;
        for (int64_t t = 0; cat && t < seqs[i].T; t++) bk_data(in[3])[i * Tp + t] = seqs[i].y[t];
    }
    for (int64_t it = 0; rc == 0 && it < (int64_t)iters; it++) {
        for (int64_t k = 0; k < K; k++) bk_data(in[0])[k] = log(s.pi[k]);
        memcpy(bk_data(in[1]), s.A, (size_t)(K * K) * sizeof(double));
        if (cat) {
            for (int64_t i = 0; i < K * s.V; i++) bk_data(in[2])[i] = log(s.E[i]);
        } else {
            /* the per-state constants of the density, then the emission
             * log-likelihoods of every sequence */
            for (int64_t k = 0; k < K; k++) lnorm[k] = log(s.sd[k]) + 0.5 * log(2 * M_PI);
            for (int64_t i = 0; i < nseq; i++)
                bw_logB(&s, &seqs[i], lnorm, bk_data(in[2]) + i * Tp * K);
        }
        bool oom;
        double ll = bw_estep(ctx, &s, seqs, nseq, Tp, in, gem, seqll, work, &oom);
        if (oom) {
            rc = rt_error_bk(vm, c);
            break;
        }
        if (!isfinite(ll)) {
            rc = rt_error_arg(vm, c, 1, "baum_welch: the data have probability 0 under the "
                                        "starting parameters");
            break;
        }
        lls[nll++] = ll;
        if (nll > 1 && ll - lls[nll - 2] < tol) {
            converged = true;
            break;
        }
        bw_mstep(&s, nseq);
    }
    if (rc == 0) rc = bw_result(vm, c, &s, lls, nll, converged, out);
    for (int i = 0; i < 4; i++) bk_release(in[i]);
    free(gem);
    free(work);
    free(seqll);
    free(lnorm);
    free(lls);
    free(seqs);
    free(buf);
    bw_free(&s);
    return rc;
}

const rt_builtin_def inf_hmm_builtins[] = {
    {"hmm_viterbi", b_viterbi},
    {"hmm_marginals", b_marginals},
    {"hmm_sample_states", b_sample_states},
    {"hmm_filter", b_filter},
    {"baum_welch", b_baum_welch},
    {NULL, NULL},
};
