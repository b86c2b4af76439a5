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
 *  - local sites (inside plates, one value per element of them): a plate
 *    declares its elements conditionally independent, so each element's
 *    terms depend on its own z_i only, and
 *        sum_z prod_i f_i(z_i) = prod_i sum_k f_i(k).
 *    The local sites are grouped by their set of plates (a node); the
 *    nodes form a tree by inclusion (groups > members: a type per group,
 *    a membership per member), and each term belongs to the deepest node
 *    whose plates it is inside.  Every run gives all elements of a node
 *    one value; the runs cover every value of every root-to-node chain,
 *    each term is kept per element of its node in a table indexed by its
 *    chain's values, and the nodes are eliminated deepest first: per
 *    element a logsumexp over the node's own value, summed over the plates
 *    its parent is not in, added to the parent's entry (variable
 *    elimination along the plates, as Pyro's TraceEnum).  A term must not
 *    depend on a node off its chain (a global site using a plate's z):
 *    two runs with the same chain values must give it the same value, and
 *    a difference is an error naming the term.
 *
 * The cost is the number of runs per evaluation (product of the global
 * joint supports and of the local runs), bounded by INF_ENUM_MAX_RUNS;
 * beyond it, an error names the sites and suggests marginalizing by hand.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "enumerate.h"

/* At most this many distinct plate sets holding discrete sites. */
#define EN_MAXNODES 8

typedef struct en_site {       /* a discrete site of the prototype run */
    char *name;
    rt_loc loc;
    bool local;                /* inside plates: enumerated per element */
    int node;                  /* local: its node (its set of plates) */
    int64_t k;                 /* values per element */
    int64_t n;                 /* elements (the batch shape's size) */
    int nbatch;
    int64_t batch[BK_MAXDIM];
    int64_t radix;             /* local: its place in its node's joint index */
} en_site;

/* The local sites that share one set of plates, and the plates.  The nodes
 * form a tree by inclusion of their plate sets (a node's parent has the
 * largest proper subset); every element of a node's plates has its own
 * joint value, summed out given its ancestors' values at the elements it
 * lies in (variable elimination along the plates, as Pyro's TraceEnum). */
typedef struct en_node {
    int np;
    char *plate[RT_MAXPLATES];
    int pdim[RT_MAXPLATES];    /* their batch dims, -1, -2, ... */
    int parent;                /* -1: none (under the global terms) */
    int nchain;                /* ancestors root-first, then the node */
    int chain[EN_MAXNODES];
    int64_t R;                 /* joint values per element (product of its sites' k) */
    int64_t ncfg;              /* product of R along the chain: the tables' size */
    int nd;                    /* element shape: plate sizes at their dims, 1 elsewhere */
    int64_t shape[BK_MAXDIM];
    int64_t E;                 /* elements */
    int64_t *proj;             /* per element: the parent's element it lies in */
    int site;                  /* its first site (for messages) */
} en_node;

struct inf_enum {
    en_site *s;
    int n;
    bool has_local;
    en_node node[EN_MAXNODES];
    int nnodes;
    /* the runs per global assignment: every node's joint index in each run
     * (all elements of a node take the same value); the nodes whose index
     * is not 0 lie on one chain, so each node's table is filled by the runs
     * that vary its chain and the others check it does not depend on them */
    int64_t local_runs;
    int64_t *cfg;              /* [local_runs][nnodes] */
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
    for (int i = 0; i < e->nnodes; i++) {
        for (int j = 0; j < e->node[i].np; j++) free(e->node[i].plate[j]);
        free(e->node[i].proj);
    }
    free(e->cfg);
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

/* 'plate "n"' or 'plates "g" and "m"' */
static void plates_str(const en_node *nd, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "plate%s ", nd->np > 1 ? "s" : "");
    for (int j = 0; j < nd->np && k < len; j++)
        k += (size_t)snprintf(buf + k, len - k, "%s\"%s\"", j == 0 ? "" : j == nd->np - 1 ? " and " : ", ",
                              nd->plate[j]);
}

/* "s (112 values), z (2^8 joint values) and w (3 values per element of plate "n")" */
static void list_sites(const inf_enum *e, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < e->n && k < len; i++) {
        const en_site *s = &e->s[i];
        const char *sep = i == 0 ? "" : i == e->n - 1 ? " and " : ", ";
        if (s->local) {
            char pl[256];
            plates_str(&e->node[s->node], pl, sizeof pl);
            k += (size_t)snprintf(buf + k, len - k, "%s%s (%lld values per element of %s)", sep, s->name,
                                  (long long)s->k, pl);
        } else if (s->n == 1)
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

/* A plate is its name at its dim (the same name nested elsewhere is another). */
static bool node_has_plate(const en_node *nd, const char *name, int dim) {
    for (int j = 0; j < nd->np; j++)
        if (nd->pdim[j] == dim && strcmp(nd->plate[j], name) == 0) return true;
    return false;
}

/* Whether every plate of a is a plate of b. */
static bool node_subset(const en_node *a, const en_node *b) {
    for (int j = 0; j < a->np; j++)
        if (!node_has_plate(b, a->plate[j], a->pdim[j])) return false;
    return true;
}

/* The node of a site's plates (made when new), or -1 with an error. */
static int node_of(rt_vm *vm, inf_enum *e, const rt_site *t, int si) {
    en_node nd;
    memset(&nd, 0, sizeof nd);
    nd.np = t->nplates;
    for (int j = 0; j < t->nplates; j++) {
        nd.plate[j] = (char *)t->plates[j].name;
        nd.pdim[j] = t->plates[j].dim;
        if (-nd.pdim[j] > nd.nd) nd.nd = -nd.pdim[j];
    }
    for (int i = 0; i < e->nnodes; i++)
        if (e->node[i].np == nd.np && node_subset(&nd, &e->node[i])) return i;
    if (e->nnodes == EN_MAXNODES || nd.nd > BK_MAXDIM)
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": the discrete sites "
                            "inside plates are in more than %d different sets of plates (or the plates are nested "
                            "too deep); marginalize some of them by hand (a logsumexp over their values in a "
                            "factor), or use SVI with a guide for them", t->name, EN_MAXNODES);
    nd.E = 1;
    for (int a = 0; a < nd.nd; a++) nd.shape[a] = 1;
    for (int j = 0; j < nd.np; j++) {
        nd.shape[nd.nd + nd.pdim[j]] = t->plates[j].size;
        nd.E *= t->plates[j].size;
    }
    for (int j = 0; j < nd.np; j++)
        if (!(nd.plate[j] = strdup(nd.plate[j]))) {
            for (int i = 0; i < j; i++) free(nd.plate[i]);
            return rt_fail(vm, 5, t->loc, "out of memory");
        }
    nd.R = 1;
    nd.parent = -1;
    nd.site = si;
    e->node[e->nnodes] = nd;
    return e->nnodes++;
}

/* A local site: plates not subsampled, one value per element of them. */
static int add_local(rt_vm *vm, inf_enum *e, const rt_site *t, en_site *s) {
    for (int j = 0; j < t->nplates; j++)
        if (t->plates[j].sub != t->plates[j].size)
            return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": plate \"%s\" is "
                                "subsampled; MCMC needs the whole plate", t->name, t->plates[j].name);
    int ni = node_of(vm, e, t, e->n - 1);
    if (ni < 0) return -1;
    en_node *nd = &e->node[ni];
    /* its batch shape, right-aligned, is the node's element shape */
    bool same = s->n == nd->E;
    for (int o = 1; same && o <= s->nbatch; o++)
        same = s->batch[s->nbatch - o] == (o <= nd->nd ? nd->shape[nd->nd - o] : 1);
    if (!same) {
        char pl[256];
        plates_str(nd, pl, sizeof pl);
        return rt_error_loc(vm, t->loc, "cannot enumerate the discrete latent site \"%s\": it has %lld values "
                            "inside %s (%lld elements); enumeration along plates needs one value per element",
                            t->name, (long long)s->n, pl, (long long)nd->E);
    }
    e->has_local = true;
    s->local = true;
    s->node = ni;
    s->radix = nd->R;
    if (nd->R > INF_ENUM_MAX_RUNS / (s->k ? s->k : 1)) nd->R = INF_ENUM_MAX_RUNS + 1;
    else nd->R *= s->k;
    return 0;
}

/* The node tree: each node's parent is the node with the largest proper
 * subset of its plates.  Plate names are unique in a run, so every site's
 * plates are a path of the program's plate nesting from the outermost
 * plate, and the subsets of a node's plates held by other nodes nest. */
static void build_tree(inf_enum *e) {
    for (int i = 0; i < e->nnodes; i++) {
        en_node *nd = &e->node[i];
        nd->parent = -1;
        for (int j = 0; j < e->nnodes; j++) {
            const en_node *a = &e->node[j];
            if (j != i && a->np < nd->np && node_subset(a, nd) && (nd->parent < 0 || a->np > e->node[nd->parent].np))
                nd->parent = j;
        }
    }
    /* chains, root first (parents have fewer plates: settle them first) */
    for (int np = 1; np <= RT_MAXPLATES; np++)
        for (int i = 0; i < e->nnodes; i++) {
            en_node *nd = &e->node[i];
            if (nd->np != np) continue;
            const en_node *pa = nd->parent >= 0 ? &e->node[nd->parent] : NULL;
            nd->nchain = pa ? pa->nchain : 0;
            if (pa) memcpy(nd->chain, pa->chain, sizeof nd->chain);
            nd->chain[nd->nchain++] = i;
            int64_t pc = pa ? pa->ncfg : 1;
            nd->ncfg = pc > INF_ENUM_MAX_RUNS / nd->R ? INF_ENUM_MAX_RUNS + 1 : pc * nd->R;
        }
}

/* The runs per global assignment: all nodes at 0, then for each node n
 * every value of its chain with n's own index at least 1 (so each
 * configuration whose non-zero nodes lie on one chain comes once). */
static int64_t count_runs(const inf_enum *e) {
    int64_t runs = 1;
    for (int i = 0; i < e->nnodes; i++) {
        const en_node *nd = &e->node[i];
        int64_t pc = nd->parent >= 0 ? e->node[nd->parent].ncfg : 1;
        if (nd->ncfg > INF_ENUM_MAX_RUNS) return INT64_MAX;
        runs += pc * (nd->R - 1);
        if (runs > INF_ENUM_MAX_RUNS) return INT64_MAX;
    }
    return runs;
}

static int make_configs(rt_vm *vm, inf_enum *e, rt_loc loc) {
    int nn = e->nnodes;
    e->cfg = calloc((size_t)(e->local_runs * nn), sizeof *e->cfg);
    if (!e->cfg) return rt_fail(vm, 5, loc, "out of memory");
    int64_t r = 1;
    for (int i = 0; i < nn; i++) {
        const en_node *nd = &e->node[i];
        int64_t pc = nd->parent >= 0 ? e->node[nd->parent].ncfg : 1;
        for (int64_t tp = 0; tp < pc; tp++)
            for (int64_t v = 1; v < nd->R; v++, r++) {
                int64_t *row = e->cfg + r * nn, rem = tp;
                row[i] = v;
                for (int j = nd->nchain - 2; j >= 0; j--) {
                    int a = nd->chain[j];
                    row[a] = rem % e->node[a].R;
                    rem /= e->node[a].R;
                }
            }
    }
    return 0;
}

/* A node's index into its table in the run with configuration row:
 * its chain's values, mixed radix, the node's own fastest. */
static int64_t chain_key(const inf_enum *e, int ni, const int64_t *row) {
    const en_node *nd = &e->node[ni];
    int64_t t = 0;
    for (int j = 0; j < nd->nchain; j++) t = t * e->node[nd->chain[j]].R + row[nd->chain[j]];
    return t;
}

/* Per element of a node: the element of its parent that holds it. */
static int make_projections(rt_vm *vm, inf_enum *e, rt_loc loc) {
    for (int i = 0; i < e->nnodes; i++) {
        en_node *nd = &e->node[i];
        if (nd->parent < 0) continue;
        const en_node *pa = &e->node[nd->parent];
        if (!(nd->proj = malloc(sizeof(int64_t) * (size_t)(nd->E + 1)))) return rt_fail(vm, 5, loc, "out of memory");
        for (int64_t x = 0; x < nd->E; x++) {
            int64_t rem = x, px = 0, stride = 1;
            for (int o = 1; o <= nd->nd; o++) {
                int64_t idx = rem % nd->shape[nd->nd - o];
                rem /= nd->shape[nd->nd - o];
                if (o <= pa->nd && pa->shape[pa->nd - o] > 1) {
                    px += idx * stride;
                    stride *= pa->shape[pa->nd - o];
                }
            }
            nd->proj[x] = px;
        }
    }
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
            if (rc == 0) {
                build_tree(e);
                e->local_runs = count_runs(e);
            }
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
    if (rc == 0 && e->has_local) rc = make_configs(vm, e, p->loc);
    if (rc == 0 && e->has_local) rc = make_projections(vm, e, p->loc);
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
    int64_t r;                 /* this run's row of e->cfg (the nodes' joint indices) */
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
        else v = value_of(vm->bk, en, n, NULL, (e->cfg[R->r * e->nnodes + s->node] / s->radix) % s->k, true);
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

static int plate_index(const rt_site *s, const char *plate, int dim) {
    for (int j = 0; j < s->nplates; j++)
        if (s->plates[j].dim == dim && strcmp(s->plates[j].name, plate) == 0) return j;
    return -1;
}

/* The node a term belongs to: among the nodes whose plates are all the
 * term's, the one with the most (-1: none, a global term).  The term may
 * depend on that node and its ancestors only (checked across the runs). */
static int attach(const inf_enum *e, const rt_site *s) {
    int best = -1;
    for (int i = 0; i < e->nnodes; i++) {
        const en_node *nd = &e->node[i];
        bool in = true;
        for (int j = 0; in && j < nd->np; j++) in = plate_index(s, nd->plate[j], nd->pdim[j]) >= 0;
        if (in && (best < 0 || nd->np > e->node[best].np)) best = i;
    }
    return best;
}

static bool on_chain(const en_node *nd, int m) {
    for (int j = 0; j < nd->nchain; j++)
        if (nd->chain[j] == m) return true;
    return false;
}

/* A term's log density per element of node nd: its batch log density with
 * the node's plate dimensions kept and every other one summed, in the
 * node's element shape. */
static bk_tensor *node_terms(rt_vm *vm, const rt_site *s, const en_node *nd) {
    bk_ctx *c = vm->bk;
    bk_tensor *t = s->log_prob_batch;
    for (int j = 0; j < nd->np; j++) {
        int axis = t ? t->ndim + nd->pdim[j] : -1;
        const rt_plate *pl = &s->plates[plate_index(s, nd->plate[j], nd->pdim[j])];
        if (!t || axis < 0 || t->shape[axis] != pl->sub) {
            char sh[64] = "[]";
            if (t) bk_shape_str(t, sh, sizeof sh);
            return rt_error_loc(vm, s->loc, "site \"%s\" inside plate \"%s\": its log density (shape %s) has no "
                                "dimension for the plate, which enumeration along the plate needs", s->name,
                                pl->name, sh),
                   NULL;
        }
    }
    bk_tensor *cur = bk_retain(t);
    while (cur && cur->ndim > nd->nd) {
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, 0, false);
        bk_release(cur);
        cur = r;
    }
    for (int a = 0; cur && a < cur->ndim; a++) {
        if (nd->shape[nd->nd - (cur->ndim - a)] != 1 || cur->shape[a] == 1) continue;
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, a, true);
        bk_release(cur);
        cur = r;
    }
    bk_tensor *r = cur ? bk_reshape(c, cur, nd->nd, nd->shape) : NULL;
    bk_release(cur);
    if (!r) rt_fail_bk(vm, s->loc);
    return r;
}

/* A child's message summed into its parent's element shape (the plates
 * the parent is not in summed out); nd == NULL: to a scalar. */
static bk_tensor *to_parent(bk_ctx *c, bk_tensor *m, const en_node *ch, const en_node *nd) {
    if (!nd) return bk_sum_all(c, m);
    bk_tensor *cur = bk_retain(m);
    for (int a = 0; cur && a < ch->nd; a++) {
        int o = ch->nd - a;
        if ((o <= nd->nd && nd->shape[nd->nd - o] > 1) || cur->shape[a] == 1) continue;
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, a, true);
        bk_release(cur);
        cur = r;
    }
    bk_tensor *r = cur ? bk_reshape(c, cur, nd->nd, nd->shape) : NULL;
    bk_release(cur);
    return r;
}

static bool close_to(double x, double y) {
    return x == y || (isnan(x) && isnan(y)) || fabs(x - y) <= 1e-9 * (1 + fabs(x));
}

static bool same_terms(const bk_tensor *a, const bk_tensor *b) {
    if (a->numel != b->numel) return false;
    for (int64_t i = 0; i < a->numel; i++)
        if (!close_to(bk_get(a, i), bk_get(b, i))) return false;
    return true;
}

/* '"z", "w"': the sites of node m */
static void node_sites(const inf_enum *e, int m, char *buf, size_t len, size_t *k) {
    for (int si = 0; si < e->n && *k < len; si++)
        if (e->s[si].local && e->s[si].node == m)
            *k += (size_t)snprintf(buf + *k, len - *k, "%s\"%s\"", *k ? ", " : "", e->s[si].name);
}

static int run_once(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, rt_trace *tr,
                    bk_tensor **logdet);

/* The terms of node ni (-1: the global terms) differ between run ra and
 * this run (trace tb) though their chain's values agree: some term depends
 * on a discrete site whose plates it is not in.  Runs ra again to find
 * the term, and names it and the sites. */
static int dependence_error(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, int ni,
                            int64_t ra, const rt_trace *tb) {
    const inf_enum *e = R->e;
    rt_vm *vm = p->vm;
    int64_t rb = R->r;
    const int64_t *A = e->cfg + ra * e->nnodes, *B = e->cfg + rb * e->nnodes;
    char names[512];
    size_t k = 0;
    names[0] = 0;
    int culprit = -1;
    for (int m = 0; m < e->nnodes; m++) {
        if (A[m] == B[m] || (ni >= 0 && on_chain(&e->node[ni], m))) continue;
        if (culprit < 0) culprit = m;
        node_sites(e, m, names, sizeof names, &k);
    }
    if (culprit < 0) culprit = 0;
    rt_trace ta;
    bk_tensor *ld = NULL;
    R->r = ra;
    int rc = run_once(p, R, q, grad, leaf, &ta, &ld);
    R->r = rb;
    if (rc) return -1;
    bk_release(ld);
    const rt_site *x = NULL;
    for (int i = 0; !x && i < tb->n && i < ta.n; i++) {
        const rt_site *a = &ta.sites[i], *b = &tb->sites[i];
        if (!a->log_prob || !b->log_prob || !(LOGP_KINDS & (1u << b->kind)) || attach(e, b) != ni) continue;
        if (ni < 0) {
            if (!close_to(bk_item(a->log_prob), bk_item(b->log_prob))) x = b;
            continue;
        }
        bk_tensor *ua = node_terms(vm, a, &e->node[ni]), *ub = ua ? node_terms(vm, b, &e->node[ni]) : NULL;
        if (ub && !same_terms(ua, ub)) x = b;
        bk_release(ua);
        bk_release(ub);
    }
    rt_vm_clear_error(vm);
    rt_trace_clear(&ta);
    const en_node *cn = &e->node[culprit];
    char pl[256];
    plates_str(cn, pl, sizeof pl);
    /* the nodes of the plates x is in lie on ni's chain, so x misses
     * one of the culprit's plates */
    const char *outside = NULL;
    for (int j = 0; x && j < cn->np && !outside; j++)
        if (plate_index(x, cn->plate[j], cn->pdim[j]) < 0) outside = cn->plate[j];
    if (!outside)
        return rt_error_loc(vm, p->loc, "the support of a latent site depends on the discrete latent sites %s "
                            "inside %s; enumeration along plates cannot sum them out: marginalize them by hand (a "
                            "logsumexp over their values in a factor), or use SVI with a guide for them", names, pl);
    return rt_error_loc(vm, x->loc, "site \"%s\" is outside plate \"%s\" but depends on the discrete latent "
                        "sites %s inside it; enumeration along the plate needs every term that involves them "
                        "inside the plate: move the term inside it, marginalize them by hand (a logsumexp over "
                        "their values in a factor), or use SVI with a guide for them", x->name, outside, names);
}

/* The sites of run r differ from run 0's: name them. */
static int structure_error(rt_vm *vm, const inf_enum *e, const rt_trace *t0, const rt_trace *tr, rt_loc loc) {
    char local[512];
    size_t k = 0;
    local[0] = 0;
    for (int m = 0; m < e->nnodes; m++) node_sites(e, m, local, sizeof local, &k);
    for (int i = 0; i < t0->n && i < tr->n; i++) {
        const rt_site *a = &t0->sites[i], *b = &tr->sites[i];
        if (strcmp(a->name, b->name) != 0 || a->kind != b->kind)
            return rt_error_loc(vm, b->loc, "the model's sites change with the discrete latent sites %s inside "
                                "plates (\"%s\" where another run had \"%s\"); enumeration along plates needs the "
                                "same sites for every value", local, b->name, a->name);
    }
    return rt_error_loc(vm, loc, "the model's sites change with the discrete latent sites %s inside plates (%d "
                        "sites where another run had %d); enumeration along plates needs the same sites for "
                        "every value", local, tr->n, t0->n);
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

/* What a group's local elimination leaves for the draws: per node, its
 * messages (its terms plus its children's sums) as doubles, [ncfg][E]. */
typedef struct en_tabs {
    double *v[EN_MAXNODES];
} en_tabs;

static void tabs_free(en_tabs *tb) {
    for (int i = 0; i < EN_MAXNODES; i++) {
        free(tb->v[i]);
        tb->v[i] = NULL;
    }
}

/* One run's terms split by node: the global ones (with log|det J|) into
 * *G, node i's per element into N[i] (zeros when it has none). */
static int split_terms(rt_vm *vm, const inf_enum *e, const rt_trace *tr, bk_tensor *logdet, bk_tensor **G,
                       bk_tensor **N) {
    bk_ctx *c = vm->bk;
    *G = bk_retain(logdet);
    for (int i = 0; i < tr->n; i++) {
        const rt_site *s = &tr->sites[i];
        if (!s->log_prob || !(LOGP_KINDS & (1u << s->kind))) continue;
        int ni = attach(e, s);
        bk_tensor **acc = ni < 0 ? G : &N[ni], *term;
        if (ni < 0) {
            term = bk_retain(s->log_prob);
        } else {
            if (s->scale != 1.0)
                return rt_error_loc(vm, s->loc, "site \"%s\" inside plate \"%s\" is scaled (by %g); enumeration "
                                    "along the plate needs unscaled terms", s->name, e->node[ni].plate[0], s->scale);
            if (!(term = node_terms(vm, s, &e->node[ni]))) return -1;
        }
        bk_tensor *sum = *acc ? bk_add(c, *acc, term) : bk_retain(term);
        bk_release(term);
        if (!sum) return rt_fail_bk(vm, s->loc);
        bk_release(*acc);
        *acc = sum;
    }
    for (int i = 0; i < e->nnodes; i++)
        if (!N[i] && !(N[i] = bk_zeros(c, BK_F64, e->node[i].nd, e->node[i].shape))) return rt_fail_bk(vm, (rt_loc){0});
    return 0;
}

/* Sums the nodes out, deepest first: a node's entries for one value of
 * its parent's chain, stacked over its own R values, logsumexp'd per
 * element and summed over the plates its parent is not in, add to the
 * parent's entry (to the global terms *G for a top node). */
static int eliminate(rt_vm *vm, const inf_enum *e, bk_tensor **T[], bk_tensor **G) {
    bk_ctx *c = vm->bk;
    for (int depth = EN_MAXNODES; depth >= 1; depth--)
        for (int i = 0; i < e->nnodes; i++) {
            const en_node *nd = &e->node[i];
            if (nd->nchain != depth) continue;
            const en_node *pa = nd->parent >= 0 ? &e->node[nd->parent] : NULL;
            int64_t pc = pa ? pa->ncfg : 1;
            for (int64_t tp = 0; tp < pc; tp++) {
                bk_tensor *st = bk_stack(c, (int)nd->R, T[i] + tp * nd->R, 0);
                bk_tensor *lse = st ? bk_reduce(c, BK_OP_LOGSUMEXP, st, 0, false) : NULL;
                bk_tensor *m = lse ? to_parent(c, lse, nd, pa) : NULL;
                bk_release(st);
                bk_release(lse);
                bk_tensor **dst = pa ? &T[nd->parent][tp] : G;
                bk_tensor *sum = m ? bk_add(c, *dst, m) : NULL;
                bk_release(m);
                if (!sum) return rt_fail_bk(vm, e->s[nd->site].loc);
                bk_release(*dst);
                *dst = sum;
            }
        }
    return 0;
}

/* The local runs of one global assignment: every run's terms go to their
 * node's table at the run's chain values (a second run with the same
 * chain values must give the same terms: the check that no term depends
 * on a discrete site whose plates it is not in), then eliminate. */
static int local_group(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, bk_tensor **lp,
                       en_tabs *out) {
    const inf_enum *e = R->e;
    rt_vm *vm = p->vm;
    int nn = e->nnodes;
    bk_tensor **T[EN_MAXNODES] = {NULL}, *G0 = NULL;
    int64_t *who[EN_MAXNODES] = {NULL};
    int rc = 0;
    for (int i = 0; i < nn && rc == 0; i++) {
        T[i] = calloc((size_t)e->node[i].ncfg, sizeof *T[i]);
        who[i] = calloc((size_t)e->node[i].ncfg, sizeof *who[i]);
        if (!T[i] || !who[i]) rc = rt_fail(vm, 5, p->loc, "out of memory");
    }
    double g0 = 0;
    rt_trace t0, tr;
    rt_trace_init(&t0);
    for (int64_t r = 0; r < e->local_runs && rc == 0; r++) {
        R->r = r;
        bk_tensor *ld = NULL, *G = NULL, *N[EN_MAXNODES] = {NULL};
        if (run_once(p, R, q, grad, leaf, &tr, &ld)) {
            rc = -1;
            break;
        }
        if (r > 0 && tr.n != t0.n) rc = structure_error(vm, e, &t0, &tr, p->loc);
        for (int i = 0; rc == 0 && r > 0 && i < tr.n; i++)
            if (strcmp(tr.sites[i].name, t0.sites[i].name) != 0 || tr.sites[i].kind != t0.sites[i].kind)
                rc = structure_error(vm, e, &t0, &tr, p->loc);
        if (rc == 0) rc = split_terms(vm, e, &tr, ld, &G, N);
        bk_release(ld);
        double gv = rc == 0 ? bk_item(G) : 0;
        if (rc == 0 && r == 0) {
            G0 = bk_retain(G);
            g0 = gv;
        } else if (rc == 0 && !close_to(g0, gv)) {
            rc = dependence_error(p, R, q, grad, leaf, -1, 0, &tr);
        }
        for (int i = 0; i < nn; i++) {
            int64_t key = chain_key(e, i, e->cfg + r * nn);
            if (rc == 0 && !T[i][key]) {
                T[i][key] = N[i];
                who[i][key] = r;
                N[i] = NULL;
            } else if (rc == 0 && !same_terms(T[i][key], N[i])) {
                rc = dependence_error(p, R, q, grad, leaf, i, who[i][key], &tr);
            }
            bk_release(N[i]);
        }
        bk_release(G);
        R->fatal = rc != 0;
        if (r == 0) t0 = tr;
        else rt_trace_clear(&tr);
    }
    if (rc == 0) rc = eliminate(vm, e, T, &G0);
    for (int i = 0; rc == 0 && out && i < nn; i++) {
        const en_node *nd = &e->node[i];
        if (!(out->v[i] = malloc(sizeof(double) * (size_t)(nd->ncfg * nd->E)))) {
            rc = rt_fail(vm, 5, p->loc, "out of memory");
            break;
        }
        for (int64_t t = 0; t < nd->ncfg; t++) bk_copy_out(T[i][t], out->v[i] + t * nd->E);
    }
    if (rc == 0) *lp = bk_retain(G0);
    bk_release(G0);
    for (int i = 0; i < nn; i++) {
        for (int64_t t = 0; T[i] && t < e->node[i].ncfg; t++) bk_release(T[i][t]);
        free(T[i]);
        free(who[i]);
    }
    rt_trace_clear(&t0);
    return rc;
}

/* The log density of the global assignment on R->path (a tensor on the
 * tape: the local runs share the leaves).  With out, also the local
 * messages for the draws. */
static int run_group(inf_potential *p, en_run *R, const double *q, bool grad, bk_tensor **leaf, bk_tensor **lp,
                     en_tabs *out) {
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
    if (e->has_local) return local_group(p, R, q, grad, leaf, lp, out);
    rt_trace tr;
    bk_tensor *ld = NULL;
    if (run_once(p, R, q, grad, leaf, &tr, &ld)) return -1;
    bk_tensor *lj = rt_trace_log_prob_sum(vm, &tr, LOGP_KINDS);
    *lp = lj ? bk_add(c, lj, ld) : NULL;
    bk_release(lj);
    bk_release(ld);
    rt_trace_clear(&tr);
    return *lp ? 0 : rt_fail_bk(vm, p->loc);
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

/* p(own value r | the parent's chain value tp) at element x of a node,
 * from its messages v, into w[0..R). */
static void cond_probs(const en_node *nd, const double *v, int64_t tp, int64_t x, double *w) {
    double m = -INFINITY, s = 0;
    for (int64_t r = 0; r < nd->R; r++) m = fmax(m, v[(tp * nd->R + r) * nd->E + x]);
    for (int64_t r = 0; r < nd->R; r++) {
        w[r] = isfinite(m) ? exp(v[(tp * nd->R + r) * nd->E + x] - m) : 1;
        s += w[r];
    }
    for (int64_t r = 0; r < nd->R; r++) w[r] /= s;
}

/* The probability of each node's chain values at each of its elements,
 * P[i][t * E + x] (malloc'd), parents first. */
static int chain_probs(const inf_enum *e, const en_tabs *tb, double **P) {
    for (int depth = 1; depth <= EN_MAXNODES; depth++)
        for (int i = 0; i < e->nnodes; i++) {
            const en_node *nd = &e->node[i];
            if (nd->nchain != depth) continue;
            const en_node *pa = nd->parent >= 0 ? &e->node[nd->parent] : NULL;
            int64_t pc = pa ? pa->ncfg : 1;
            double *w = malloc(sizeof(double) * (size_t)nd->R);
            if (!w || !(P[i] = malloc(sizeof(double) * (size_t)(nd->ncfg * nd->E)))) {
                free(w);
                return -1;
            }
            for (int64_t tp = 0; tp < pc; tp++)
                for (int64_t x = 0; x < nd->E; x++) {
                    double pp = pa ? P[nd->parent][tp * pa->E + nd->proj[x]] : 1;
                    cond_probs(nd, tb->v[i], tp, x, w);
                    for (int64_t r = 0; r < nd->R; r++) P[i][(tp * nd->R + r) * nd->E + x] = pp * w[r];
                }
            free(w);
        }
    return 0;
}

/* Each element's joint value, parents first, from its conditional given
 * the values drawn for the elements it lies in; then the sites' digits. */
static int draw_nodes(inf_enum *e, const en_tabs *tb, int64_t **digits) {
    int64_t *tuple[EN_MAXNODES] = {NULL};
    int rc = 0;
    for (int depth = 1; depth <= EN_MAXNODES && rc == 0; depth++)
        for (int i = 0; i < e->nnodes && rc == 0; i++) {
            const en_node *nd = &e->node[i];
            if (nd->nchain != depth) continue;
            double *w = malloc(sizeof(double) * (size_t)nd->R);
            if (!w || !(tuple[i] = malloc(sizeof(int64_t) * (size_t)nd->E))) {
                free(w);
                rc = -1;
                break;
            }
            for (int64_t x = 0; x < nd->E; x++) {
                int64_t tp = nd->parent >= 0 ? tuple[nd->parent][nd->proj[x]] : 0, r = 0;
                cond_probs(nd, tb->v[i], tp, x, w);
                double u = bk_rng_uniform(&e->rng), cum = 0;
                for (r = 0; r < nd->R - 1; r++) {
                    cum += w[r];
                    if (u < cum) break;
                }
                tuple[i][x] = tp * nd->R + r;
            }
            free(w);
        }
    for (int si = 0; rc == 0 && si < e->n; si++) {
        const en_site *s = &e->s[si];
        if (!s->local) continue;
        const en_node *nd = &e->node[s->node];
        for (int64_t x = 0; x < nd->E; x++) digits[si][x] = ((tuple[s->node][x] % nd->R) / s->radix) % s->k;
    }
    for (int i = 0; i < EN_MAXNODES; i++) free(tuple[i]);
    return rc;
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
 * values, local ones through their chain values' probabilities (from the
 * group's messages tb).  -1: out of memory. */
static int add_marginals(const inf_enum *e, const en_run *R, const en_tabs *tb, double wa, double **acc,
                         double *pres) {
    double *P[EN_MAXNODES] = {NULL};
    int rc = e->has_local && tb ? chain_probs(e, tb, P) : 0;
    for (int si = 0; rc == 0 && si < e->n; si++) {
        const en_site *s = &e->s[si];
        if (s->local && P[s->node]) {
            const en_node *nd = &e->node[s->node];
            for (int64_t t = 0; t < nd->ncfg; t++) {
                int64_t k = ((t % nd->R) / s->radix) % s->k;
                for (int64_t x = 0; x < nd->E; x++) acc[si][x * s->k + k] += wa * P[s->node][t * nd->E + x];
            }
            pres[si] += wa;
        } else if (!s->local && R->gidx[si] >= 0) {
            int64_t rem = R->gidx[si];
            for (int64_t j = 0; j < s->n; j++, rem /= s->k) acc[si][j * s->k + rem % s->k] += wa;
            pres[si] += wa;
        }
    }
    for (int i = 0; i < EN_MAXNODES; i++) free(P[i]);
    return rc;
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
                if (add_marginals(e, &R, NULL, wa, acc, pres)) rc = rt_fail(vm, 5, p->loc, "out of memory");
            }
        }
        free(T);
    }
    /* first pass: every assignment's log density and the marginals */
    while (rc == 0 && !e->parallel) {
        bk_tape_reset(c);
        bk_tensor *lp = NULL;
        en_tabs tb = {{NULL}};
        rc = run_group(p, &R, q, false, leaf, &lp, e->has_local ? &tb : NULL);
        double v = rc == 0 ? bk_item(lp) : 0;
        if (rc == 0 && keep_group(&G, &R, v)) rc = rt_fail(vm, 5, p->loc, "out of memory");
        if (rc == 0 && v > -INFINITY && v < INFINITY) {
            if (v > m) {
                double f = exp(m - v);
                for (int i = 0; i < e->n; i++) pres[i] *= f;
            }
            double wa = accumulate(v, &m, &S, block, nacc);
            if (add_marginals(e, &R, &tb, wa, acc, pres)) rc = rt_fail(vm, 5, p->loc, "out of memory");
        }
        tabs_free(&tb);
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
        en_tabs tb = {{NULL}};
        bk_tensor *lp = NULL;
        bk_tape_reset(c);
        R.runs = 0;
        rc = run_group(p, &R, q, false, leaf, &lp, &tb);
        bk_release(lp);
        release_leaves(p, leaf);
        for (int si = 0; rc == 0 && si < e->n; si++)
            if (e->s[si].local && !(digits[si] = malloc(sizeof(int64_t) * (size_t)e->node[e->s[si].node].E)))
                rc = rt_fail(vm, 5, p->loc, "out of memory");
        if (rc == 0 && draw_nodes(e, &tb, digits)) rc = rt_fail(vm, 5, p->loc, "out of memory");
        tabs_free(&tb);
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
