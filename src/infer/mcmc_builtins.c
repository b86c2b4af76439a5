/* mcmc_builtins.c - the script side of MCMC: NUTS(...), HMC(...) kernel
 * specs, mcmc(model, data, kernel=, warmup=, samples=, chains=, seed=), and
 * the posterior value it returns (summary, draws, Stan CSV). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc.h"
#include "strbuf.h"

typedef struct kernel_spec {
    int hmc_steps;        /* 0: NUTS, MC_RWM: random-walk Metropolis,
                             MC_HMC_TRAJ: HMC(trajectory_length=) */
    int max_depth;
    double target_accept;
    int dense;
    double trajectory_length;   /* MC_HMC_TRAJ only */
} kernel_spec;

/* *out = a new "kernel" value holding these settings. */
static int kernel_value(rt_vm *vm, const rt_call *c, int hmc_steps, double traj, int max_depth, double ta,
                        int dense, rt_value *out) {
    kernel_spec *k = malloc(sizeof *k);
    if (!k) return rt_error(vm, c, "out of memory");
    k->hmc_steps = hmc_steps;
    k->trajectory_length = traj;
    k->max_depth = max_depth;
    k->target_accept = ta;
    k->dense = dense;
    rt_opaque *o = rt_opaque_new("kernel", k, free);
    if (!o) {
        free(k);
        return rt_error(vm, c, "out of memory");
    }
    *out = rt_obj_value(&o->h);
    return 0;
}

/* NUTS(target_accept=0.8, max_depth=10, dense_mass=false) and
 * HMC(num_steps=10 | trajectory_length=L, target_accept=, dense_mass=). */
static int make_kernel(rt_vm *vm, const rt_call *c, rt_value *out, bool nuts) {
    static const char *const nuts_names[] = {"target_accept", "max_depth", "dense_mass", "num_steps", NULL};
    static const char *const hmc_names[] = {"target_accept", "max_depth", "dense_mass", "num_steps",
                                            "trajectory_length", NULL};
    if (nuts && rt_arg(c, -1, "trajectory_length"))
        return rt_error_kw(vm, c, "trajectory_length",
                           "NUTS chooses its trajectory lengths itself; trajectory_length is an argument of "
                           "HMC(...)");
    if (rt_check_args(vm, c, 0, nuts ? nuts_names : hmc_names)) return -1;
    double ta, md, dense, steps, traj = 0;
    if (rt_arg_number(vm, c, -1, "target_accept", 0.8, false, &ta) ||
        rt_arg_number(vm, c, -1, "max_depth", 10, false, &md) ||
        rt_arg_number(vm, c, -1, "dense_mass", 0, false, &dense) ||
        rt_arg_number(vm, c, -1, "num_steps", nuts ? 0 : 10, false, &steps) ||
        (!nuts && rt_arg_number(vm, c, -1, "trajectory_length", 0, false, &traj)))
        return -1;
    if (!(ta > 0 && ta < 1)) return rt_error_kw(vm, c, "target_accept", "%s: target_accept must be in (0, 1), got %g", c->name, ta);
    if (md < 1 || md > 30 || md != floor(md)) return rt_error_kw(vm, c, "max_depth", "%s: max_depth must be an integer in 1..30", c->name);
    if (!nuts && rt_arg(c, -1, "trajectory_length")) {
        if (rt_arg(c, -1, "num_steps"))
            return rt_error_kw(vm, c, "trajectory_length",
                               "HMC: give num_steps or trajectory_length, not both (with "
                               "trajectory_length the steps follow the step size)");
        if (!(isfinite(traj) && traj > 0))
            return rt_error_kw(vm, c, "trajectory_length", "HMC: trajectory_length must be finite and > 0, got %g",
                               traj);
        return kernel_value(vm, c, MC_HMC_TRAJ, traj, (int)md, ta, dense != 0, out);
    }
    if (!nuts && (steps < 1 || steps != floor(steps))) return rt_error_kw(vm, c, "num_steps", "HMC: num_steps must be a positive integer");
    return kernel_value(vm, c, nuts ? 0 : (int)steps, 0, (int)md, ta, dense != 0, out);
}

/* RWM(target_accept=0.234, dense_mass=false): random-walk Metropolis. */
static int b_rwm(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"target_accept", "dense_mass", NULL};
    if (rt_check_args(vm, c, 0, names)) return -1;
    double ta, dense;
    if (rt_arg_number(vm, c, -1, "target_accept", 0.234, false, &ta) ||
        rt_arg_number(vm, c, -1, "dense_mass", 0, false, &dense))
        return -1;
    if (!(ta > 0 && ta < 1)) return rt_error_kw(vm, c, "target_accept", "RWM: target_accept must be in (0, 1), got %g", ta);
    return kernel_value(vm, c, MC_RWM, 0, 10, ta, dense != 0, out);
}

static int b_nuts(rt_vm *vm, const rt_call *c, rt_value *out) { return make_kernel(vm, c, out, true); }
static int b_hmc(rt_vm *vm, const rt_call *c, rt_value *out) { return make_kernel(vm, c, out, false); }

/* ------------------------------------------------------------ posterior --- */

typedef struct posterior {
    inf_mcmc *m;
    inf_result *r;
} posterior;

static void posterior_free(void *p) {
    posterior *q = p;
    inf_mcmc_free(q->m);
    inf_result_free(q->r);
    free(q);
}

static char *posterior_repr(bk_ctx *ctx, void *p) {
    char *t = inf_result_table(((posterior *)p)->r);
    if (t) {
        size_t n = strlen(t);
        while (n && t[n - 1] == '\n') t[--n] = 0;
    }
    return t;
}

/* post.NAME: the draws of a scalar column (all chains), or of a whole site
 * as [draws, ...site shape] when NAME is a site; post.divergences. */
static int posterior_getattr(rt_vm *vm, void *p, const char *name, rt_loc loc, rt_value *out) {
    posterior *q = p;
    inf_mcmc *m = q->m;
    int64_t n = (int64_t)m->chains * m->samples;
    if (strcmp(name, "divergences") == 0) {
        bk_tensor *t = bk_scalar(vm->bk, m->divergences);
        if (!t) return rt_fail_bk(vm, loc);
        *out = rt_tensor(t);
        return 0;
    }
    /* columns belonging to site `name`: "name" or "name[...]" */
    int first = -1, count = 0;
    size_t ln = strlen(name);
    for (int j = 0; j < m->nnames; j++)
        if (strncmp(m->names[j], name, ln) == 0 && (m->names[j][ln] == 0 || m->names[j][ln] == '[')) {
            if (first < 0) first = j;
            count++;
        }
    if (first < 0) return rt_error_loc(vm, loc, "the posterior has no site \"%s\"", name);
    int64_t shape[2] = {n, count};
    bk_tensor *t = bk_empty(vm->bk, BK_F64, m->names[first][ln] == 0 ? 1 : 2, shape);
    if (!t) return rt_fail_bk(vm, loc);
    double *d = bk_data(t);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < count; k++) d[i * count + k] = m->draws[i * m->nnames + first + k];
    if (!(t = bk_place_nd(vm->bk, t))) return rt_fail_bk(vm, loc); /* on the run's device */
    *out = rt_tensor(t);
    return 0;
}

/* The length of the site name that scalar column `name` belongs to
 * ("theta" of "theta[3]"). */
static size_t site_len(const char *name) {
    const char *b = strchr(name, '[');
    return b ? (size_t)(b - name) : strlen(name);
}

static void json_number(rt_sb *b, double x) {
    if (isfinite(x)) rt_sb_put_g17(b, x);
    else rt_sb_puts(b, isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
}

/* write_json(path, post): {"chains", "samples", "draws": {site: the draws
 * as post.site gives them: [chains * samples] for a scalar site, else
 * [chains * samples][n] over its scalars in order}, then the fields of the
 * summary JSON (DESIGN 1.8: "summary", "divergences", ...)}. */
static char *posterior_json(bk_ctx *ctx, void *p) {
    const posterior *q = p;
    const inf_mcmc *m = q->m;
    char *summary = inf_result_json(ctx, q->r);
    if (!summary) return NULL;
    rt_sb b = {0};
    int64_t n = (int64_t)m->chains * m->samples;
    rt_sb_printf(&b, "{\"chains\": %d, \"samples\": %d, \"draws\": {", m->chains, m->samples);
    for (int j = 0; j < m->nnames;) {
        size_t ln = site_len(m->names[j]);
        int count = 1;
        while (j + count < m->nnames && site_len(m->names[j + count]) == ln &&
               strncmp(m->names[j + count], m->names[j], ln) == 0)
            count++;
        bool vec = m->names[j][ln] == '[';
        rt_sb_printf(&b, "%s\n  \"", j ? "," : "");
        rt_sb_put(&b, m->names[j], ln);
        rt_sb_puts(&b, "\": [");
        for (int64_t i = 0; i < n; i++) {
            rt_sb_puts(&b, i ? (vec ? ", [" : ", ") : (vec ? "[" : ""));
            for (int k = 0; k < count; k++) {
                if (k) rt_sb_puts(&b, ", ");
                json_number(&b, m->draws[i * m->nnames + j + k]);
            }
            if (vec) rt_sb_puts(&b, "]");
        }
        rt_sb_puts(&b, "]");
        j += count;
    }
    rt_sb_printf(&b, "\n},\n%s", summary + 1);   /* the summary object's fields */
    free(summary);
    char *text = rt_sb_finish(&b);
    if (text) {   /* inf_result_json ends with a newline that write_json adds too */
        size_t len = strlen(text);
        while (len && text[len - 1] == '\n') text[--len] = 0;
    }
    return text;
}

rt_value inf_posterior_value(inf_mcmc *m) {
    posterior *q = calloc(1, sizeof *q);
    inf_result *r = q ? inf_mcmc_result(m) : NULL;
    rt_opaque *o = r ? rt_opaque_new("posterior", q, posterior_free) : NULL;
    if (!o) {
        free(q);
        inf_result_free(r);
        inf_mcmc_free(m);
        return rt_none();
    }
    q->m = m;
    q->r = r;
    o->repr = posterior_repr;
    o->getattr = posterior_getattr;
    o->to_json = posterior_json;
    return rt_obj_value(&o->h);
}

const inf_result *inf_posterior_result(rt_value v) {
    if (v.tag != RT_OPAQUE || strcmp(((rt_opaque *)v.u.o)->type, "posterior") != 0) return NULL;
    return ((posterior *)((rt_opaque *)v.u.o)->data)->r;
}

const inf_mcmc *inf_posterior_mcmc(rt_value v) {
    if (v.tag != RT_OPAQUE || strcmp(((rt_opaque *)v.u.o)->type, "posterior") != 0) return NULL;
    return ((posterior *)((rt_opaque *)v.u.o)->data)->m;
}

static int b_mcmc(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"model", "data", "kernel", "warmup", "samples", "chains", "seed",
                                        "checkpoint", "resume", "checkpoint_every", "threads", "fast", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const rt_value *m = rt_arg(c, 0, "model");
    const rt_value *d = rt_arg(c, 1, "data");
    if (!m || m->tag != RT_FUNC) return rt_error_arg(vm, c, 0, "mcmc: the first argument must be a model");
    if (d && d->tag != RT_RECORD && d->tag != RT_NONE)
        return rt_error_arg(vm, c, 1, "mcmc: data must be a record like {y: [1, 2]}, got a %s", rt_type_name(*d));
    inf_mcmc_opts o = {.chains = 4, .warmup = 1000, .samples = 1000, .max_depth = 10, .target_accept = 0.8};
    double w, s, ch, seed;
    if (rt_arg_number(vm, c, -1, "warmup", 1000, false, &w) || rt_arg_number(vm, c, -1, "samples", 1000, false, &s) ||
        rt_arg_number(vm, c, -1, "chains", 4, false, &ch) ||
        rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed))
        return -1;
    if (w < 0 || s < 1 || ch < 1 || ch > 64 || w != floor(w) || s != floor(s) || ch != floor(ch))
        return rt_error(vm, c, "mcmc: warmup >= 0, samples >= 1 and 1 <= chains <= 64 must be integers");
    o.warmup = (int)w;
    o.samples = (int)s;
    o.chains = (int)ch;
    o.seed = (uint64_t)seed;
    double every;
    if (rt_arg_string(vm, c, -1, "checkpoint", false, &o.checkpoint) ||
        rt_arg_string(vm, c, -1, "resume", false, &o.resume) ||
        rt_arg_number(vm, c, -1, "checkpoint_every", 100, false, &every))
        return -1;
    if (every < 1 || every != floor(every) || every > 1e9)
        return rt_error_kw(vm, c, "checkpoint_every", "mcmc: checkpoint_every must be a positive integer");
    o.checkpoint_every = (int)every;
    double th;
    if (rt_arg_number(vm, c, -1, "threads", 0, false, &th)) return -1;
    if (th < 0 || th > 1024 || th != floor(th))
        return rt_error_kw(vm, c, "threads", "mcmc: threads must be an integer in 0..1024 (0: one per core)");
    o.threads = (int)th;
    double fast;
    if (rt_arg_number(vm, c, -1, "fast", 1, false, &fast)) return -1;
    o.no_fast = fast == 0;
    const rt_value *k = rt_arg(c, -1, "kernel");
    if (k) {
        if (k->tag != RT_OPAQUE || strcmp(((rt_opaque *)k->u.o)->type, "kernel") != 0)
            return rt_error_kw(vm, c, "kernel", "mcmc: kernel must be NUTS(...), HMC(...) or RWM(...)");
        kernel_spec *ks = ((rt_opaque *)k->u.o)->data;
        o.hmc_steps = ks->hmc_steps;
        o.trajectory_length = ks->trajectory_length;
        o.max_depth = ks->max_depth;
        o.target_accept = ks->target_accept;
        o.dense = ks->dense;
    }
    inf_mcmc *res;
    if (inf_mcmc_run(vm, (rt_func *)m->u.o, d && d->tag == RT_RECORD ? (rt_record *)d->u.o : NULL, &o, c->loc, &res))
        return -1;
    *out = inf_posterior_value(res);
    if (out->tag == RT_NONE) return rt_error(vm, c, "out of memory");
    return 0;
}

static int b_write_stan_csv(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 2, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    const rt_value *v = rt_arg(c, 1, "posterior");
    if (!v || v->tag != RT_OPAQUE || strcmp(((rt_opaque *)v->u.o)->type, "posterior") != 0)
        return rt_error_arg(vm, c, 1, "write_stan_csv: expected the result of mcmc(...)");
    char err[512];
    if (inf_mcmc_write_csv(((posterior *)((rt_opaque *)v->u.o)->data)->m, path, err, sizeof err))
        return rt_fail(vm, 4, c->loc, "%s", err);
    *out = rt_none();
    return 0;
}

static int b_mcmc_on(rt_vm *vm, const rt_call *c, rt_value *out) { return inf_with_device(vm, c, out, b_mcmc, 1); }

const rt_builtin_def inf_mcmc_builtins[] = {
    {"NUTS", b_nuts},
    {"HMC", b_hmc},
    {"RWM", b_rwm},
    {"mcmc", b_mcmc_on},
    {"write_stan_csv", b_write_stan_csv},
    {NULL, NULL},
};
