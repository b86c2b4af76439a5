/* enumerate.c - discrete latents summed out of the MCMC potential.
 *
 * log p(u) = log sum_z p(u, z): for every assignment z of the discrete
 * latent sites the model runs once with those values (each enumerated site
 * is *conditioned* on its value, so the unconstrain handler leaves it
 * alone and the trace counts its log mass), and the runs' log joints are
 * combined by a streaming logsumexp.  The gradient is the posterior-
 * weighted mean of the per-assignment gradients, sum_z p(z | u) d/du log
 * p(u, z), accumulated the same way (one backward per assignment, so the
 * tape never holds more than one assignment's runs).
 *
 * Two kinds of sites:
 *  - global sites (outside plates) are enumerated jointly and sequentially:
 *    an odometer over the sites in the order the model meets them, so a
 *    model whose later sites depend on earlier values (structure that
 *    changes with z) is handled too.  A site with batch shape [n] and K
 *    values has K^n joint values.
 *  - local sites (inside one plate, one value per element): the plate
 *    declares its elements conditionally independent, so each element's
 *    terms depend on its own z_i only, and
 *        sum_z prod_i f_i(z_i) = prod_i sum_k f_i(k).
 *    The model runs once per value k with z_i = k for every element (all
 *    local sites of the plate jointly: prod K runs), the terms of the sites
 *    inside the plate are kept per element, and each element gets its own
 *    logsumexp over the runs: K runs instead of K^N.  The terms outside the
 *    plate must then not depend on the local sites: they are compared
 *    across the runs, and a difference is an error naming the site.
 *
 * The cost is the number of runs per evaluation (product of the global
 * joint supports and of the local supports), bounded by INF_ENUM_MAX_RUNS;
 * beyond it, an error names the sites and suggests marginalizing by hand.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "enumerate.h"

typedef struct en_site {       /* a discrete site of the prototype run */
    char *name;
    rt_loc loc;
    bool local;                /* inside the plate: enumerated per element */
    int64_t k;                 /* values per element */
    int64_t n;                 /* elements (the batch shape's size) */
    int nbatch;
    int64_t batch[BK_MAXDIM];
    int64_t radix;             /* local: its place in the joint local index */
} en_site;

struct inf_enum {
    en_site *s;
    int n;
    bool has_local;
    char *plate;               /* the local sites' plate */
    int64_t plate_size;
    int64_t local_runs;        /* runs per global assignment */
    /* one scalar global site and nothing else: its values along a new
     * leading batch dimension in one run (Pyro's parallel enumeration), when
     * that gives the sequential sum at two test points */
    bool parallel;
    int psite;                 /* the site */
    int pdims;                 /* plate dimensions to its right */
    bk_rng rng;
};

int inf_enum_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep);
static int eval_sum(inf_potential *p, const double *q, double *logp, double *grad, bool *fatal);
static const unsigned LOGP_KINDS = (1u << RT_SITE_SAMPLE) | (1u << RT_SITE_OBSERVE) | (1u << RT_SITE_FACTOR);

void inf_enum_free(inf_enum *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) free(e->s[i].name);
    free(e->s);
    free(e->plate);
    free(e);
}

bool inf_enum_parallel(const inf_enum *e) { return e && e->parallel; }

void inf_enum_seed(inf_enum *e, uint64_t seed) { bk_rng_init(&e->rng, seed, 9); }

static int find_site(const inf_enum *e, const char *name) {
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, name) == 0) return i;
    return -1;
}

/* K^n, or INT64_MAX when above the limit. */
static int64_t joint_count(int64_t k, int64_t n) {
    int64_t c = 1;
    for (int64_t j = 0; j < n; j++) {
        if (k != 0 && c > INF_ENUM_MAX_RUNS / k) return INT64_MAX;
        c *= k;
    }
    return c;
}

/* The support of a site's distribution, [K, batch..., event...]. */
static bk_tensor *support_values(rt_vm *vm, const sl_dist *d, const char *name, rt_loc loc) {
    if (!d->fam->enumerate_support)
        return rt_error_loc(vm, loc, "cannot handle the discrete latent site \"%s\": %s has no finite support "
                            "to sum over; MCMC needs it marginalized out by hand (sum over its values with "
                            "logsumexp in a factor), or use SVI with a guide for it", name, d->fam->name),
               NULL;
    if (d->reinterpreted)
        return rt_error_loc(vm, loc, "cannot enumerate the discrete latent site \"%s\": its distribution was "
                            "made with to_event; drop to_event (enumeration treats every element on its own)",
                            name),
               NULL;
    bk_tensor *en = d->fam->enumerate_support(vm->bk, d);
    if (!en) rt_fail_bk(vm, loc);
    return en;
}

static int64_t batch_numel(const sl_dist *d) {
    int64_t n = 1;
    for (int i = 0; i < d->nbatch; i++) n *= d->batch[i];
    return n;
}

/* ------------------------------------------------------------ discovery --- */

/* "s (112 values), z (2^8 joint values) and w (3 values per element)" */
static void list_sites(const inf_enum *e, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < e->n && k < len; i++) {
        const en_site *s = &e->s[i];
        const char *sep = i == 0 ? "" : i == e->n - 1 ? " and " : ", ";
        if (s->local)
            k += (size_t)snprintf(buf + k, len - k, "%s%s (%lld values per element of plate \"%s\")", sep, s->name,
                                  (long long)s->k, e->plate);
        else if (s->n == 1)
            k += (size_t)snprintf(buf + k, len - k, "%s%s (%lld values)", sep, s->name, (long long)s->k);
        else
            k += (size_t)snprintf(buf + k, len - k, "%s%s (%lld^%lld joint values)", sep, s->name, (long long)s->k,
                                  (long long)s->n);
    }
}

static int limit_error(rt_vm *vm, const inf_enum *e, rt_loc loc) {
    char sites[1024];
    list_sites(e, sites, sizeof sites);
    return rt_error_loc(vm, loc, "summing out the discrete latent sites %s takes more than %d runs of the model "
                        "per density evaluation; marginalize some of them by hand (a logsumexp over their "
                        "values in a factor), put independent ones in a plate, or use SVI with a guide for them",
                        sites, INF_ENUM_MAX_RUNS);
}

/* A local site: one plate, not subsampled, one value per element. */
static int add_local(rt_vm *vm, inf_enum *e, const rt_site *t, en_site *s) {
    if (t->nplates != 1)
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": it is inside %d plates; "
                            "enumeration sums out discrete sites outside plates or inside one plate",
                            t->name, t->nplates);
    const rt_plate *pl = &t->plates[0];
    if (pl->sub != pl->size)
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": plate \"%s\" is "
                            "subsampled; MCMC needs the whole plate", t->name, pl->name);
    if (s->n != pl->size)
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": it has %lld values "
                            "inside plate \"%s\" of size %lld; enumeration along a plate needs one value per "
                            "element", t->name, (long long)s->n, pl->name, (long long)pl->size);
    if (e->plate && strcmp(e->plate, pl->name) != 0)
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\" in plate \"%s\": the "
                            "discrete sites inside plates must all be in the same plate (\"%s\")",
                            t->name, pl->name, e->plate);
    if (!e->plate && !(e->plate = strdup(pl->name))) return rt_fail(vm, 5, t->loc, "out of memory");
    e->plate_size = pl->size;
    e->has_local = true;
    s->local = true;
    s->radix = e->local_runs;
    if (e->local_runs > INF_ENUM_MAX_RUNS / (s->k ? s->k : 1)) e->local_runs = INT64_MAX;
    else e->local_runs *= s->k;
    return 0;
}

/* Parallel enumeration needs a model that broadcasts the site's values
 * along the new dimension (no sums over all axes, no branches on it).
 * Use it when it gives the sequential log density and gradient at two
 * points (unconstrained 0 and a seeded uniform(-2, 2) one), else keep the
 * sequential sum (any error of the parallel attempt is dropped). */
static void try_parallel(inf_potential *p, inf_enum *e) {
    int64_t d = p->dim;
    double *q = malloc(sizeof(double) * (size_t)(4 * d + 1));
    if (!q) return;
    double *gs = q + d, *gp = q + 2 * d, *q1 = q + 3 * d;
    bk_rng rng;
    bk_rng_init(&rng, 0x5eed, 3);
    for (int64_t i = 0; i < d; i++) {
        q[i] = 0;
        q1[i] = -2 + 4 * bk_rng_uniform(&rng);
    }
    inf_enum *saved = p->en;
    p->en = e;
    e->psite = 0;
    int agree = 0, differ = 0;
    for (int t = 0; t < 2 && !differ; t++) {
        const double *x = t ? q1 : q;
        double ls, lp;
        e->parallel = false;
        if (inf_enum_eval(p, x, &ls, gs, NULL) || !isfinite(ls)) {
            rt_vm_clear_error(p->vm);
            continue;
        }
        e->parallel = true;
        if (inf_enum_eval(p, x, &lp, gp, NULL) || !(fabs(lp - ls) <= 1e-9 * (1 + fabs(ls)))) {
            rt_vm_clear_error(p->vm);
            differ = 1;
            break;
        }
        for (int64_t i = 0; i < d; i++)
            if (!(fabs(gp[i] - gs[i]) <= 1e-7 * (1 + fabs(gs[i])))) differ = 1;
        agree += !differ;
    }
    e->parallel = agree > 0 && !differ;
    if (!e->parallel) e->psite = -1;
    p->en = saved;
    free(q);
}

int inf_enum_init(inf_potential *p, inf_enum **out) {
    *out = NULL;
    rt_vm *vm = p->vm;
    rt_trace tr;
    rt_trace_init(&tr);
    if (inf_latents_prototype(vm, p->model, p->data, p->loc, &tr)) return -1;
    inf_enum *e = calloc(1, sizeof *e);
    int rc = e ? 0 : rt_fail(vm, 5, p->loc, "out of memory");
    if (e) e->local_runs = 1;
    int64_t global = 1;
    rt_loc first = p->loc;
    bool over = false;
    for (int i = 0; i < tr.n && e; i++)
        if (tr.sites[i].nplates > e->pdims) e->pdims = tr.sites[i].nplates;
    for (int i = 0; i < tr.n && rc == 0; i++) {
        const rt_site *t = &tr.sites[i];
        if (t->kind != RT_SITE_SAMPLE || !t->dist) continue;
        sl_constraint sup = {0};
        if (t->has_constraint) sup = sl_constraint_copy(&t->constraint);
        else if (sl_support(vm->bk, t->dist, &sup)) {
            rc = rt_fail_bk(vm, t->loc);
            break;
        }
        bool discrete = sl_constraint_is_discrete(&sup);
        sl_constraint_clear(&sup);
        if (!discrete) continue;
        bk_tensor *en = support_values(vm, t->dist, t->name, t->loc);
        if (!en) {
            rc = -1;
            break;
        }
        en_site *ns = realloc(e->s, (size_t)(e->n + 1) * sizeof *ns);
        if (!ns) {
            bk_release(en);
            rc = rt_fail(vm, 5, t->loc, "out of memory");
            break;
        }
        e->s = ns;
        en_site *s = &e->s[e->n];
        memset(s, 0, sizeof *s);
        s->name = strdup(t->name);
        s->loc = t->loc;
        s->k = en->shape[0];
        s->n = batch_numel(t->dist);
        s->nbatch = t->dist->nbatch;
        memcpy(s->batch, t->dist->batch, sizeof s->batch);
        bk_release(en);
        if (!s->name) {
            rc = rt_fail(vm, 5, t->loc, "out of memory");
            break;
        }
        e->n++;
        if (t->nplates > 0) {
            rc = add_local(vm, e, t, s);
        } else {
            int64_t c = joint_count(s->k, s->n);
            global = c == INT64_MAX || global > INF_ENUM_MAX_RUNS / (c ? c : 1) ? INT64_MAX : global * c;
        }
        /* the error points at the site that crosses the limit */
        if (!over && (global == INT64_MAX || e->local_runs == INT64_MAX || global > INF_ENUM_MAX_RUNS / e->local_runs)) {
            over = true;
            first = t->loc;
        }
    }
    rt_trace_clear(&tr);
    if (rc == 0 && over) rc = limit_error(vm, e, first);
    if (rc || e->n == 0) {
        inf_enum_free(e);
        return rc;
    }
    inf_enum_seed(e, 0);
    e->psite = -1;
    /* a layout enumeration cannot sum shows at any point: say so here, at
     * its site, rather than as 100 failed starting points */
    if (rc == 0 && p->dim > 0) {
        double *q = calloc((size_t)p->dim, sizeof *q), lp;
        bool fatal = false;
        p->en = e;
        if (!q) rc = rt_fail(vm, 5, p->loc, "out of memory");
        else if (eval_sum(p, q, &lp, NULL, &fatal) && !fatal) rt_vm_clear_error(vm);
        else if (fatal) rc = -1;
        p->en = NULL;
        free(q);
    }
    if (rc) {
        inf_enum_free(e);
        return rc;
    }
    if (e->n == 1 && !e->has_local && e->s[0].n == 1) try_parallel(p, e);
    *out = e;
    return 0;
}

/* ---------------------------------------------------------- one run --- */

typedef struct en_choice {
    int64_t idx, count;        /* joint value index of a global site, out of count */
} en_choice;

typedef struct en_run {
    inf_enum *e;
    en_choice *path;           /* the odometer over the global sites met */
    int npath, cap;
    int pos;                   /* global sites met in this run */
    int64_t *gidx;             /* per prototype site: its joint index in this run (-1: not met) */
    int64_t r;                 /* the joint local index of this run */
    int64_t **ldigits;         /* a final draw: per site, the value index of each element (local sites) */
    char **met;                /* a final draw: names of the sites enumerated (else NULL) */
    int nmet;
    long runs;                 /* runs so far in this evaluation */
    bool parallel;             /* this run enumerates e->psite along a batch dimension */
    bool fatal;                /* the error is the model's layout, not this point's density */
} en_run;


/* A value of a site from its support en ([K, batch..., event...], n batch
 * elements): element j takes value digits[j]; or (digits NULL) digit j of
 * the joint index idx in base K (element 0 fastest); or (constant) idx. */
static bk_tensor *value_of(bk_ctx *c, const bk_tensor *en, int64_t n, const int64_t *digits, int64_t idx,
                          bool constant) {
    int64_t k = en->shape[0];
    bk_tensor *v = bk_empty(c, BK_F64, en->ndim - 1, en->shape + 1);
    if (!v || n == 0 || k == 0) return v;
    int64_t per = v->numel, ev = per / n, rem = idx;
    const double *src = bk_data(en);
    double *dst = bk_data(v);
    for (int64_t j = 0; j < n; j++) {
        int64_t d = digits ? digits[j] : constant ? idx : rem % k;
        if (!digits && !constant) rem /= k;
        memcpy(dst + j * ev, src + d * per + j * ev, sizeof(double) * (size_t)ev);
    }
    return v;
}

static int push_choice(rt_vm *vm, en_run *R, int64_t count, rt_loc loc) {
    if (R->npath == R->cap) {
        int cap = R->cap ? 2 * R->cap : 8;
        en_choice *np = realloc(R->path, (size_t)cap * sizeof *np);
        if (!np) return rt_fail(vm, 5, loc, "out of memory");
        R->path = np;
        R->cap = cap;
    }
    R->path[R->npath++] = (en_choice){0, count};
    return 0;
}

static int note_met(rt_vm *vm, en_run *R, const char *name, rt_loc loc) {
    char **nm = realloc(R->met, (size_t)(R->nmet + 1) * sizeof *nm);
    if (!nm) return rt_fail(vm, 5, loc, "out of memory");
    R->met = nm;
    if (!(nm[R->nmet] = strdup(name))) return rt_fail(vm, 5, loc, "out of memory");
    R->nmet++;
    return 0;
}

/* The innermost handler: gives each discrete latent site this run's value
 * and conditions the model on it (so the unconstrain handler skips it and
 * the trace counts its log mass). */
static int en_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    en_run *R = h->state;
    if (m->kind != RT_SITE_SAMPLE || m->observed || m->done || !m->dist) return 0;
    const inf_enum *e = R->e;
    int si = find_site(e, m->name);
    if (si < 0 && !m->dist->fam->discrete) return 0;
    if (si < 0 && m->nplates > 0)
        return rt_error_loc(vm, m->loc, "the discrete latent site \"%s\" inside plate \"%s\" did not appear in the "
                            "prototype run; enumeration needs the discrete sites inside plates on every run",
                            m->name, m->plates[0].name);
    bk_tensor *en = support_values(vm, m->dist, m->name, m->loc);
    R->fatal = en == NULL;
    if (!en) return -1;
    int64_t n = batch_numel(m->dist), k = en->shape[0];
    bk_tensor *v = NULL;
    int rc = 0;
    if (R->parallel && si == e->psite) {
        /* [K, 1, ..., 1]: left of every plate dimension */
        int64_t shape[BK_MAXDIM];
        shape[0] = k;
        for (int i = 1; i <= e->pdims; i++) shape[i] = 1;
        v = en->ndim == 1 && e->pdims < BK_MAXDIM ? bk_reshape(vm->bk, en, e->pdims + 1, shape) : NULL;
        if (!v) rc = rt_fail_bk(vm, m->loc);
    } else if (si >= 0 && e->s[si].local) {
        const en_site *s = &e->s[si];
        if (k != s->k || n != s->n)
            rc = rt_error_loc(vm, m->loc, "the discrete latent site \"%s\" changed its support between runs "
                              "(%lld x %lld values, first %lld x %lld); enumeration along a plate needs a fixed one",
                              m->name, (long long)n, (long long)k, (long long)s->n, (long long)s->k);
        else if (R->ldigits) v = value_of(vm->bk, en, n, R->ldigits[si], 0, false);
        else v = value_of(vm->bk, en, n, NULL, (R->r / s->radix) % s->k, true);
    } else {
        int64_t count = joint_count(k, n);
        if (count == INT64_MAX) rc = limit_error(vm, e, m->loc);
        else if (count == 0)
            rc = rt_error_loc(vm, m->loc, "the discrete latent site \"%s\" has no values to sum over", m->name);
        else if (R->pos == R->npath) rc = push_choice(vm, R, count, m->loc);
        else if (R->path[R->pos].count != count)
            rc = rt_error_loc(vm, m->loc, "internal error: the discrete latent site \"%s\" has %lld joint values "
                              "on one run and %lld on another with the same earlier values", m->name,
                              (long long)count, (long long)R->path[R->pos].count);
        if (rc == 0) {
            int64_t idx = R->path[R->pos++].idx;
            if (si >= 0) R->gidx[si] = idx;
            v = value_of(vm->bk, en, n, NULL, idx, false);
        }
    }
    bk_release(en);
    R->fatal = rc != 0;
    if (rc) return -1;
    if (!v) return rt_fail_bk(vm, m->loc);
    if (R->met && note_met(vm, R, m->name, m->loc)) {
        bk_release(v);
        return -1;
    }
    bk_release(m->value);
    m->value = v;
    m->done = true;
    m->observed = true;
    return 0;
}

/* ------------------------------------------------- local (plate) terms --- */

static int plate_of(const rt_site *s, const char *plate) {
    for (int j = 0; j < s->nplates; j++)
        if (strcmp(s->plates[j].name, plate) == 0) return j;
    return -1;
}

/* A site's per-element log density inside the plate: its batch log density
 * summed over every dimension but the plate's, [B]. */
static bk_tensor *per_element(rt_vm *vm, const rt_site *s, const rt_plate *pl) {
    bk_ctx *c = vm->bk;
    bk_tensor *t = s->log_prob_batch;
    int axis = t ? t->ndim + pl->dim : -1;
    if (!t || axis < 0 || t->shape[axis] != pl->sub) {
        char sh[64] = "[]";
        if (t) bk_shape_str(t, sh, sizeof sh);
        return rt_error_loc(vm, s->loc, "site \"%s\" inside plate \"%s\": its log density (shape %s) has no "
                            "dimension for the plate, which enumeration along the plate needs", s->name,
                            pl->name, sh),
               NULL;
    }
    bk_tensor *cur = bk_retain(t);
    for (int ax = cur->ndim - 1; cur && ax > axis; ax--) {
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, ax, false);
        bk_release(cur);
        cur = r;
    }
    for (int ax = 0; cur && ax < axis; ax++) {
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, 0, false);
        bk_release(cur);
        cur = r;
    }
    if (!cur) rt_fail_bk(vm, s->loc);
    return cur;
}

/* Splits one run's log density into the terms outside the plate (G, with
 * log|det J|) and the per-element terms inside it (E, [B]). */
static int split_terms(rt_vm *vm, const inf_enum *e, const rt_trace *tr, bk_tensor *logdet, bk_tensor **G,
                       bk_tensor **E) {
    bk_ctx *c = vm->bk;
    *G = bk_retain(logdet);
    *E = bk_zeros(c, BK_F64, 1, &e->plate_size);
    if (!*E) return rt_fail_bk(vm, tr->n ? tr->sites[0].loc : (rt_loc){0});
    for (int i = 0; i < tr->n; i++) {
        const rt_site *s = &tr->sites[i];
        if (!s->log_prob || !(LOGP_KINDS & (1u << s->kind))) continue;
        int pj = plate_of(s, e->plate);
        bk_tensor **acc = pj < 0 ? G : E, *term;
        if (pj < 0) {
            term = bk_retain(s->log_prob);
        } else {
            if (s->scale != 1.0)
                return rt_error_loc(vm, s->loc, "site \"%s\" inside plate \"%s\" is scaled (by %g); enumeration "
                                    "along the plate needs unscaled terms", s->name, e->plate, s->scale);
            if (!(term = per_element(vm, s, &s->plates[pj]))) return -1;
        }
        bk_tensor *sum = bk_add(c, *acc, term);
        bk_release(term);
        if (!sum) return rt_fail_bk(vm, s->loc);
        bk_release(*acc);
        *acc = sum;
    }
    return 0;
}

/* The terms outside the plate of run r differ from run 0's: name the site. */
static int outside_error(rt_vm *vm, const inf_enum *e, const rt_trace *t0, const rt_trace *tr, rt_loc loc) {
    char local[512];
    size_t k = 0;
    local[0] = 0;
    for (int i = 0; i < e->n && k < sizeof local; i++)
        if (e->s[i].local) k += (size_t)snprintf(local + k, sizeof local - k, "%s\"%s\"", k ? ", " : "", e->s[i].name);
    for (int i = 0; i < t0->n && i < tr->n; i++) {
        const rt_site *a = &t0->sites[i], *b = &tr->sites[i];
        if (strcmp(a->name, b->name) != 0 || a->kind != b->kind)
            return rt_error_loc(vm, b->loc, "the model's sites change with the discrete latent sites %s inside "
                                "plate \"%s\" (\"%s\" where another run had \"%s\"); enumeration along a plate "
                                "needs the same sites for every value", local, e->plate, b->name, a->name);
        if (!a->log_prob || !b->log_prob || plate_of(a, e->plate) >= 0) continue;
        double x = bk_item(a->log_prob), y = bk_item(b->log_prob);
        if (!(x == y || fabs(x - y) <= 1e-9 * (1 + fabs(x))))
            return rt_error_loc(vm, b->loc, "site \"%s\" is outside plate \"%s\" but depends on the discrete "
                                "latent sites %s inside it; enumeration along the plate needs every term that "
                                "involves them inside the plate (or marginalize them by hand in a factor)",
                                b->name, e->plate, local);
    }
    return rt_error_loc(vm, loc, "the support of a latent site depends on the discrete latent sites %s inside "
                        "plate \"%s\"; enumeration along the plate cannot sum them out", local, e->plate);
}

/* ------------------------------------------------------------- a group --- */

static void reset_met(en_run *R) {
    R->pos = 0;
    for (int i = 0; i < R->e->n; i++) R->gidx[i] = -1;
}

/* One run with the enumerate handler innermost. */
static int run_once(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, rt_trace *tr,
                    bk_tensor **logdet) {
    rt_handler h;
    memset(&h, 0, sizeof h);
    h.type = "enumerate";
    h.process = en_process;
    h.state = R;
    reset_met(R);
    if (inf_potential_run(p, q, grad, &h, leaf, tr, logdet)) return -1;
    if (R->pos != R->npath) {
        bk_release(*logdet);
        rt_trace_clear(tr);
        return rt_error_loc(p->vm, p->loc, "internal error: a run met %d discrete sites where the same earlier "
                            "values met %d", R->pos, R->npath);
    }
    return 0;
}

/* The log density of the global assignment on R->path (a tensor on the
 * tape: the local runs share the leaves).  With wout, also the elements'
 * conditionals over the local runs, w[r * B + i] (malloc'd). */
static int run_group(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, bk_tensor **lp,
                     double **wout) {
    const inf_enum *e = R->e;
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    int64_t nr = e->local_runs;
    *lp = NULL;
    if (R->runs + nr > INF_ENUM_MAX_RUNS) {
        R->fatal = true;
        return limit_error(vm, e, p->loc);
    }
    R->runs += nr;
    rt_trace tr, t0;
    bk_tensor *ld = NULL;
    if (!e->has_local) {
        if (run_once(p, R, q, grad, leaf, &tr, &ld)) return -1;
        bk_tensor *lj = rt_trace_log_prob_sum(vm, &tr, LOGP_KINDS);
        *lp = lj ? bk_add(c, lj, ld) : NULL;
        bk_release(lj);
        bk_release(ld);
        rt_trace_clear(&tr);
        return *lp ? 0 : rt_fail_bk(vm, p->loc);
    }
    bk_tensor **E = calloc((size_t)nr, sizeof *E), *G0 = NULL;
    int rc = E ? 0 : rt_fail(vm, 5, p->loc, "out of memory");
    double g0 = 0;
    rt_trace_init(&t0);
    for (int64_t r = 0; r < nr && rc == 0; r++) {
        R->r = r;
        if (run_once(p, R, q, grad, leaf, &tr, &ld)) {
            rc = -1;
            break;
        }
        bk_tensor *G = NULL;
        rc = split_terms(vm, e, &tr, ld, &G, &E[r]);
        R->fatal = rc != 0;
        bk_release(ld);
        double gv = rc == 0 ? bk_item(G) : 0;
        if (rc == 0 && r == 0) {
            t0 = tr;
            G0 = G;
            g0 = gv;
            continue;
        }
        if (rc == 0 && !(gv == g0 || fabs(gv - g0) <= 1e-9 * (1 + fabs(g0)))) {
            rc = outside_error(vm, e, &t0, &tr, p->loc);
            R->fatal = true;
        }
        bk_release(G);
        rt_trace_clear(&tr);
    }
    bk_tensor *st = rc == 0 ? bk_stack(c, (int)nr, E, 0) : NULL;
    bk_tensor *lse = st ? bk_reduce(c, BK_OP_LOGSUMEXP, st, 0, false) : NULL;
    bk_tensor *tot = lse ? bk_sum_all(c, lse) : NULL;
    if (tot) *lp = bk_add(c, G0, tot);
    if (rc == 0 && !*lp) rc = rt_fail_bk(vm, p->loc);
    if (rc == 0 && wout) {
        int64_t B = e->plate_size;
        double *w = malloc(sizeof(double) * (size_t)(nr * B + 1));
        if (!w) rc = rt_fail(vm, 5, p->loc, "out of memory");
        for (int64_t i = 0; w && i < B; i++) {
            double l = bk_get(lse, i);
            for (int64_t r = 0; r < nr; r++)
                w[r * B + i] = isfinite(l) ? exp(bk_get(st, r * B + i) - l) : 1.0 / (double)nr;
        }
        *wout = w;
    }
    bk_release(st);
    bk_release(lse);
    bk_release(tot);
    bk_release(G0);
    for (int64_t r = 0; E && r < nr; r++) bk_release(E[r]);
    free(E);
    rt_trace_clear(&t0);
    return rc;
}

/* The log density with the site e->psite enumerated along a leading batch
 * dimension in one run: the terms whose batch log density has that
 * dimension (K, left of the plate dimensions) are kept per value, the
 * others added to each, and lp = logsumexp over the values.  With tout,
 * the per-value log joints T[k] (malloc'd). */
static int run_parallel(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, bk_tensor **lp,
                        double **tout) {
    const inf_enum *e = R->e;
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    int64_t K = e->s[e->psite].k;
    int P = e->pdims;
    rt_trace tr;
    bk_tensor *ld = NULL;
    *lp = NULL;
    R->parallel = true;
    int rc = run_once(p, R, q, grad, leaf, &tr, &ld);
    R->parallel = false;
    if (rc) return -1;
    bk_tensor *T = bk_zeros(c, BK_F64, 1, &K), *t;
    if (T && (t = bk_add(c, T, ld))) {
        bk_release(T);
        T = t;
    }
    bk_release(ld);
    for (int i = 0; i < tr.n && T && rc == 0; i++) {
        const rt_site *s = &tr.sites[i];
        if (!s->log_prob || !(LOGP_KINDS & (1u << s->kind))) continue;
        const bk_tensor *b = s->log_prob_batch;
        int ax = b ? b->ndim - (P + 1) : -1;
        bk_tensor *term;
        if (b && ax >= 0 && b->shape[ax] == K && K != 1) {
            if (ax != 0) {
                rc = rt_error_loc(vm, s->loc, "site \"%s\": batch dimensions left of the enumerated one", s->name);
                break;
            }
            term = bk_retain((bk_tensor *)b);
            for (int a = term->ndim - 1; term && a > 0; a--) {
                bk_tensor *r = bk_reduce(c, BK_OP_SUM, term, a, false);
                bk_release(term);
                term = r;
            }
            if (term && s->scale != 1.0) {
                bk_tensor *r = bk_mul_s(c, term, s->scale);
                bk_release(term);
                term = r;
            }
        } else {
            term = bk_retain(s->log_prob);
        }
        bk_tensor *sum = term ? bk_add(c, T, term) : NULL;
        bk_release(term);
        bk_release(T);
        T = sum;
    }
    rt_trace_clear(&tr);
    if (rc == 0 && T) *lp = bk_reduce(c, BK_OP_LOGSUMEXP, T, 0, false);
    if (rc == 0 && !*lp) rc = rt_fail_bk(vm, p->loc);
    if (rc == 0 && tout) {
        if (!(*tout = malloc(sizeof(double) * (size_t)K))) rc = rt_fail(vm, 5, p->loc, "out of memory");
        else bk_copy_out(T, *tout);
    }
    bk_release(T);
    return rc;
}

/* The next global assignment (odometer, last site fastest); false after
 * the last. */
static bool advance(en_run *R) {
    while (R->npath > 0) {
        en_choice *ch = &R->path[R->npath - 1];
        if (++ch->idx < ch->count) return true;
        R->npath--;
    }
    return false;
}

static void release_leaves(inf_potential *p, bk_tensor **leaf) {
    for (int i = 0; i < p->nlat; i++) {
        bk_release(leaf[i]);
        leaf[i] = NULL;
    }
}

/* d lp / dq from the leaves (zero for sites lp does not reach). */
static int group_grad(inf_potential *p, bk_tensor *lp, bk_tensor **leaf, double *g) {
    for (int64_t i = 0; i < p->dim; i++) g[i] = 0;
    if (!lp->requires_grad) return 0;
    if (bk_backward(p->vm->bk, lp)) return rt_fail_bk(p->vm, p->loc);
    for (int i = 0; i < p->nlat; i++)
        if (leaf[i] && leaf[i]->grad) bk_copy_out(leaf[i]->grad, g + p->lat[i].offset);
    return 0;
}

/* Streaming logsumexp: sum_a exp(v_a) = exp(*m) * *S; the accumulators
 * acc (n values) are kept on the same scale.  Returns exp(v - *m), the
 * weight of this term. */
static double accumulate(double v, double *m, double *S, double *acc, int64_t n) {
    if (v > *m) {
        double f = exp(*m - v);
        *S *= f;
        for (int64_t i = 0; acc && i < n; i++) acc[i] *= f;
        *m = v;
    }
    double w = exp(v - *m);
    *S += w;
    return w;
}

/* ------------------------------------------------------- the potential --- */

static int eval_keep(inf_potential *p, const double *q, double *logp, rt_trace *keep);

static int eval_sum(inf_potential *p, const double *q, double *logp, double *grad, bool *fatal);

int inf_enum_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep) {
    bool fatal;
    return keep ? eval_keep(p, q, logp, keep) : eval_sum(p, q, logp, grad, &fatal);
}

static int eval_sum(inf_potential *p, const double *q, double *logp, double *grad, bool *fatal) {
    inf_enum *e = p->en;
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    int64_t d = p->dim;
    en_run R = {.e = e};
    R.gidx = malloc(sizeof(int64_t) * (size_t)e->n);
    bk_tensor **leaf = calloc((size_t)p->nlat + 1, sizeof *leaf);
    double *ga = grad ? malloc(sizeof(double) * (size_t)d) : NULL, *acc = grad ? calloc((size_t)d, sizeof(double)) : NULL;
    int rc = R.gidx && leaf && (!grad || (ga && acc)) ? 0 : rt_fail(vm, 5, p->loc, "out of memory");
    bool g = bk_set_grad_enabled(c, grad != NULL);
    double m = -INFINITY, S = 0;
    bool bad = false;   /* a NaN or +inf term */
    while (rc == 0) {
        bk_tape_reset(c);
        bk_tensor *lp = NULL;
        rc = e->parallel ? run_parallel(p, &R, q, grad != NULL, leaf, &lp, NULL)
                         : run_group(p, &R, q, grad != NULL, leaf, &lp, NULL);
        double v = rc == 0 ? bk_item(lp) : 0;
        if (rc == 0 && (isnan(v) || v == INFINITY)) bad = true;
        else if (rc == 0 && v > -INFINITY) {
            if (grad) rc = group_grad(p, lp, leaf, ga);
            if (rc == 0) {
                double w = accumulate(v, &m, &S, acc, d);
                for (int64_t i = 0; grad && i < d; i++) acc[i] += w * ga[i];
            }
        }
        bk_release(lp);
        release_leaves(p, leaf);
        if (rc || !advance(&R)) break;
    }
    bk_tape_reset(c);
    bk_set_grad_enabled(c, g);
    if (rc == 0) {
        *logp = bad ? NAN : S > 0 ? m + log(S) : -INFINITY;
        for (int64_t i = 0; grad && i < d; i++) grad[i] = isfinite(*logp) ? acc[i] / S : 0;
    }
    *fatal = rc != 0 && R.fatal;
    free(ga);
    free(acc);
    free(leaf);
    free(R.gidx);
    free(R.path);
    return rc;
}

/* ------------------------------------------- the posterior of the sites --- */

/* Appends the deterministic site NAME_probs (batch + [K]) to tr. */
static int add_probs_site(rt_vm *vm, rt_trace *tr, const en_site *s, const double *probs) {
    size_t len = strlen(s->name) + 7;
    char *name = malloc(len);
    if (!name) return rt_fail(vm, 5, s->loc, "out of memory");
    snprintf(name, len, "%s_probs", s->name);
    if (rt_trace_find(tr, name)) {
        int rc = rt_error_loc(vm, s->loc, "the model has a site named \"%s\", the name MCMC gives the posterior "
                              "probabilities of the enumerated site \"%s\"; rename it", name, s->name);
        free(name);
        return rc;
    }
    int64_t shape[BK_MAXDIM + 1];
    memcpy(shape, s->batch, sizeof(int64_t) * (size_t)s->nbatch);
    shape[s->nbatch] = s->k;
    bk_tensor *v = s->nbatch < BK_MAXDIM ? bk_from_f64(vm->bk, s->nbatch + 1, shape, probs) : NULL;
    if (tr->n == tr->cap) {
        int cap = tr->cap ? 2 * tr->cap : 16;
        rt_site *ns = v ? realloc(tr->sites, (size_t)cap * sizeof *ns) : NULL;
        if (!ns) {
            bk_release(v);
            free(name);
            return rt_fail(vm, 5, s->loc, "out of memory");
        }
        tr->sites = ns;
        tr->cap = cap;
    }
    if (!v) {
        free(name);
        return rt_fail(vm, 5, s->loc, "out of memory");
    }
    rt_site *t = &tr->sites[tr->n++];
    memset(t, 0, sizeof *t);
    t->kind = RT_SITE_DETERMINISTIC;
    t->name = name;
    t->value = v;
    t->scale = 1.0;
    t->loc = s->loc;
    return 0;
}

/* Element i's draw of the joint local index from its conditional. */
static int64_t draw_local(bk_rng *rng, const double *w, int64_t nr, int64_t B, int64_t i) {
    double u = bk_rng_uniform(rng), cum = 0;
    for (int64_t r = 0; r < nr; r++) {
        cum += w[r * B + i];
        if (u < cum) return r;
    }
    return nr - 1;
}

typedef struct en_groups {     /* what the first pass keeps per global assignment */
    double *lp;
    en_choice *path;           /* the paths, one after another */
    int *len;
    int n, cap;
    int64_t nidx, capidx;
} en_groups;

static int keep_group(en_groups *G, const en_run *R, double v) {
    if (G->n == G->cap) {
        int cap = G->cap ? 2 * G->cap : 16;
        double *a = realloc(G->lp, (size_t)cap * sizeof *a);
        if (!a) return -1;
        G->lp = a;
        int *b = realloc(G->len, (size_t)cap * sizeof *b);
        if (!b) return -1;
        G->len = b;
        G->cap = cap;
    }
    if (G->nidx + R->npath > G->capidx) {
        int64_t cap = 2 * (G->nidx + R->npath) + 16;
        en_choice *x = realloc(G->path, (size_t)cap * sizeof *x);
        if (!x) return -1;
        G->path = x;
        G->capidx = cap;
    }
    if (R->npath) memcpy(G->path + G->nidx, R->path, sizeof *R->path * (size_t)R->npath);
    G->nidx += R->npath;
    G->lp[G->n] = v;
    G->len[G->n++] = R->npath;
    return 0;
}

/* Adds group a's weight wa to the marginals: global sites at this run's
 * values, local ones through the elements' conditionals w. */
static void add_marginals(const inf_enum *e, const en_run *R, const double *w, double wa, double **acc,
                          double *pres) {
    for (int si = 0; si < e->n; si++) {
        const en_site *s = &e->s[si];
        if (s->local) {
            int64_t B = e->plate_size;
            for (int64_t r = 0; r < e->local_runs; r++) {
                int64_t k = (r / s->radix) % s->k;
                for (int64_t i = 0; i < B; i++) acc[si][i * s->k + k] += wa * w[r * B + i];
            }
            pres[si] += wa;
        } else if (R->gidx[si] >= 0) {
            int64_t rem = R->gidx[si];
            for (int64_t j = 0; j < s->n; j++, rem /= s->k) acc[si][j * s->k + rem % s->k] += wa;
            pres[si] += wa;
        }
    }
}

static int branch_error(rt_vm *vm, const char *name, rt_loc loc) {
    return rt_error_loc(vm, loc, "the discrete latent site \"%s\" exists for some values of the other discrete "
                        "sites and not for others; it is summed out, but MCMC's draws need the same sites on "
                        "every draw: give it a value on every branch (or marginalize it by hand)", name);
}

static int eval_keep(inf_potential *p, const double *q, double *logp, rt_trace *keep) {
    inf_enum *e = p->en;
    rt_vm *vm = p->vm;
    bk_ctx *c = vm->bk;
    en_run R = {.e = e};
    en_groups G = {0};
    R.gidx = malloc(sizeof(int64_t) * (size_t)e->n);
    double **acc = calloc((size_t)e->n, sizeof *acc), *pres = calloc((size_t)e->n, sizeof *pres);
    int64_t **digits = calloc((size_t)e->n, sizeof *digits), nacc = 0;
    bk_tensor **leaf = calloc((size_t)p->nlat + 1, sizeof *leaf);
    int rc = R.gidx && acc && pres && digits && leaf ? 0 : rt_fail(vm, 5, p->loc, "out of memory");
    /* the accumulators as one block, rescaled together */
    for (int i = 0; rc == 0 && i < e->n; i++) nacc += e->s[i].n * e->s[i].k;
    double *block = rc == 0 ? calloc((size_t)nacc + 1, sizeof *block) : NULL;
    if (rc == 0 && !block) rc = rt_fail(vm, 5, p->loc, "out of memory");
    for (int i = 0, off = 0; rc == 0 && i < e->n; off += (int)(e->s[i].n * e->s[i].k), i++) acc[i] = block + off;
    bool g = bk_set_grad_enabled(c, false);
    double m = -INFINITY, S = 0;
    /* parallel: one run gives every value's log joint */
    if (rc == 0 && e->parallel) {
        double *T = NULL;
        bk_tensor *lp = NULL;
        bk_tape_reset(c);
        rc = run_parallel(p, &R, q, false, leaf, &lp, &T);
        bk_release(lp);
        release_leaves(p, leaf);
        int64_t K = e->s[e->psite].k;
        for (int64_t k = 0; rc == 0 && k < K; k++) {
            R.npath = 0;
            if (push_choice(vm, &R, K, p->loc) || keep_group(&G, &R, T[k])) {
                rc = rt_fail(vm, 5, p->loc, "out of memory");
                break;
            }
            G.path[G.nidx - 1].idx = k;
            if (T[k] > -INFINITY && T[k] < INFINITY) {
                if (T[k] > m) pres[e->psite] *= exp(m - T[k]);
                double wa = accumulate(T[k], &m, &S, block, nacc);
                reset_met(&R);
                R.gidx[e->psite] = k;
                add_marginals(e, &R, NULL, wa, acc, pres);
            }
        }
        free(T);
    }
    /* first pass: every assignment's log density and the marginals */
    while (rc == 0 && !e->parallel) {
        bk_tape_reset(c);
        bk_tensor *lp = NULL;
        double *w = NULL;
        rc = run_group(p, &R, q, false, leaf, &lp, e->has_local ? &w : NULL);
        double v = rc == 0 ? bk_item(lp) : 0;
        if (rc == 0 && keep_group(&G, &R, v)) rc = rt_fail(vm, 5, p->loc, "out of memory");
        if (rc == 0 && v > -INFINITY && v < INFINITY) {
            if (v > m) {
                double f = exp(m - v);
                for (int i = 0; i < e->n; i++) pres[i] *= f;
            }
            double wa = accumulate(v, &m, &S, block, nacc);
            add_marginals(e, &R, w, wa, acc, pres);
        }
        free(w);
        bk_release(lp);
        release_leaves(p, leaf);
        if (rc || !advance(&R)) break;
    }
    if (rc == 0 && !(S > 0))
        rc = rt_error_loc(vm, p->loc, "no value of the discrete latent sites has a positive probability at this "
                          "draw of the continuous ones");
    /* a global assignment from its posterior weight ... */
    int a = -1;
    int64_t at = 0;
    if (rc == 0) {
        double u = bk_rng_uniform(&e->rng) * S, cum = 0;
        int64_t off = 0;
        for (int i = 0; i < G.n; i++, off += G.len[i - 1]) {
            if (!(G.lp[i] > -INFINITY && G.lp[i] < INFINITY)) continue;
            a = i;
            at = off;
            cum += exp(G.lp[i] - m);
            if (u < cum) break;
        }
        R.npath = 0;
        for (int j = 0; j < G.len[a] && rc == 0; j++) {
            rc = push_choice(vm, &R, G.path[at + j].count, p->loc);
            if (rc == 0) R.path[j].idx = G.path[at + j].idx;
        }
    }
    /* ... then each element's local values from its conditional given it */
    if (rc == 0 && e->has_local) {
        double *w = NULL;
        bk_tensor *lp = NULL;
        bk_tape_reset(c);
        R.runs = 0;
        rc = run_group(p, &R, q, false, leaf, &lp, &w);
        bk_release(lp);
        release_leaves(p, leaf);
        for (int si = 0; rc == 0 && si < e->n; si++)
            if (e->s[si].local && !(digits[si] = malloc(sizeof(int64_t) * (size_t)e->plate_size)))
                rc = rt_fail(vm, 5, p->loc, "out of memory");
        for (int64_t i = 0; rc == 0 && i < e->plate_size; i++) {
            int64_t r = draw_local(&e->rng, w, e->local_runs, e->plate_size, i);
            for (int si = 0; si < e->n; si++)
                if (e->s[si].local) digits[si][i] = (r / e->s[si].radix) % e->s[si].k;
        }
        free(w);
    }
    /* the run at the drawn values, kept: the enumerated sites as latent
     * sample sites, deterministic sites computed from them */
    bk_tensor *ld = NULL;
    bool kept = false;
    if (rc == 0) {
        bk_tape_reset(c);
        R.ldigits = e->has_local ? digits : NULL;
        R.met = calloc(1, sizeof *R.met);
        rc = R.met ? run_once(p, &R, q, false, leaf, keep, &ld) : rt_fail(vm, 5, p->loc, "out of memory");
        kept = rc == 0;
        bk_release(ld);
        release_leaves(p, leaf);
    }
    /* the draws are a table: every draw needs the same enumerated sites */
    for (int si = 0; rc == 0 && si < e->n; si++) {
        bool met = false;
        for (int j = 0; j < R.nmet; j++) met = met || strcmp(R.met[j], e->s[si].name) == 0;
        if (!met) rc = branch_error(vm, e->s[si].name, e->s[si].loc);
    }
    for (int j = 0; rc == 0 && j < R.nmet; j++)
        if (find_site(e, R.met[j]) < 0) {
            const rt_site *t = rt_trace_find(keep, R.met[j]);
            rc = branch_error(vm, R.met[j], t ? t->loc : p->loc);
        }
    if (rc == 0) {
        for (int i = 0; i < keep->n; i++)
            for (int j = 0; j < R.nmet; j++)
                if (strcmp(keep->sites[i].name, R.met[j]) == 0) {
                    keep->sites[i].kind = RT_SITE_SAMPLE;
                    keep->sites[i].observed = false;
                }
        for (int si = 0; rc == 0 && si < e->n; si++) {
            const en_site *s = &e->s[si];
            for (int64_t j = 0; j < s->n * s->k; j++) acc[si][j] = pres[si] > 0 ? acc[si][j] / pres[si] : NAN;
            rc = add_probs_site(vm, keep, s, acc[si]);
        }
        if (rc == 0) *logp = m + log(S);
    }
    if (rc && kept) rt_trace_clear(keep);
    bk_tape_reset(c);
    bk_set_grad_enabled(c, g);
    for (int j = 0; j < R.nmet; j++) free(R.met[j]);
    free(R.met);
    for (int si = 0; si < e->n && digits; si++) free(digits[si]);
    free(digits);
    free(block);
    free(acc);
    free(pres);
    free(leaf);
    free(R.gidx);
    free(R.path);
    free(G.lp);
    free(G.path);
    free(G.len);
    return rc;
}
