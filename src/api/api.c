/* api.c - the public C API (include/ppl.h).  Every entry point is a
 * protected boundary: it checks its arguments (a NULL or closed state is an
 * error, not a crash), runs the operation, and turns a failure into a status
 * code plus a message read with ppl_errmsg.  The state stays usable after
 * any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ppl.h"
#include "vm.h"
#include "infer.h"
#include "data_io.h"
#include "mcmc.h"
#include "result_plot.h"
#include "dist.h"

#define PPL_MAGIC 0x70706c5fu
#define PPL_CLOSED 0xdeadbeefu

struct ppl_state {
    unsigned magic;
    rt_vm *vm;
    char *err;        /* last message (owned) */
    ppl_status code;
    char *echo;       /* last REPL echo (owned) */
};

struct ppl_result {
    inf_result *r;
    inf_mcmc *m;      /* MCMC results keep their chains (Stan CSV) */
    bk_ctx *ctx;      /* for JSON rendering (the state's) */
};

static const char NOMEM_MSG[] = "error: out of memory";
static const char MISUSE_MSG[] = "error: invalid ppl_state (NULL or closed)";

ppl_options ppl_default_options(void) {
    ppl_options o;
    memset(&o, 0, sizeof o);
    return o;
}

const char *ppl_version(void) { return PPL_VERSION_STRING; }

static bool valid(const ppl_state *S) { return S && S->magic == PPL_MAGIC; }

static ppl_status set_error(ppl_state *S, ppl_status code, char *msg) {
    free(S->err);
    S->err = msg;
    S->code = code;
    return code;
}

static ppl_status ok(ppl_state *S) {
    free(S->err);
    S->err = NULL;
    S->code = PPL_OK;
    return PPL_OK;
}

/* Turn the VM's pending error into the state's message. */
static ppl_status vm_error(ppl_state *S) {
    int code = S->vm->errcode ? S->vm->errcode : PPL_ERR_RUNTIME;
    char *m = rt_vm_errmsg(S->vm);
    if (m) {
        size_t n = strlen(m);
        while (n && m[n - 1] == '\n') m[--n] = 0;
    }
    rt_vm_clear_error(S->vm);
    return set_error(S, (ppl_status)code, m);
}

static ppl_status fmt_error(ppl_state *S, ppl_status code, const char *fmt, const char *arg) {
    size_t n = strlen(fmt) + (arg ? strlen(arg) : 0) + 16;
    char *m = malloc(n);
    if (m) snprintf(m, n, fmt, arg ? arg : "");
    return set_error(S, code, m);
}

ppl_state *ppl_open(const ppl_options *opts) {
    ppl_state *S = calloc(1, sizeof *S);
    if (!S) return NULL;
    bk_alloc alloc = {0}, *ap = NULL;
    if (opts && opts->malloc_fn && opts->realloc_fn && opts->free_fn) {
        alloc.malloc_fn = opts->malloc_fn;
        alloc.realloc_fn = opts->realloc_fn;
        alloc.free_fn = opts->free_fn;
        alloc.ud = opts->alloc_ud;
        ap = &alloc;
    }
    S->vm = rt_vm_new(ap);
    if (!S->vm || inf_register_builtins(S->vm)) {
        rt_vm_free(S->vm);
        free(S);
        return NULL;
    }
    S->magic = PPL_MAGIC;
    if (opts) {
        S->vm->out = (rt_write_fn)opts->out;
        S->vm->out_ud = opts->out_ud;
        S->vm->progress = opts->progress;
        S->vm->progress_ud = opts->progress_ud;
        S->vm->progress_epoch = opts->progress_epoch;
        S->vm->mcmc_progress = opts->mcmc_progress;
        S->vm->seed = opts->seed;
        if (opts->max_recursion > 0) S->vm->max_depth = (int)opts->max_recursion;
        if (opts->max_loop_iterations > 0) S->vm->max_loop = opts->max_loop_iterations;
    }
    bk_rng_init(&S->vm->rng, S->vm->seed, 0);
    return S;
}

void ppl_close(ppl_state *S) {
    if (!valid(S)) return;
    S->magic = PPL_CLOSED;
    rt_vm_free(S->vm);
    free(S->err);
    free(S->echo);
    free(S);
}

const char *ppl_errmsg(const ppl_state *S) {
    if (!valid(S)) return MISUSE_MSG;
    if (S->code != PPL_OK && !S->err) return NOMEM_MSG;
    return S->err ? S->err : "";
}

ppl_status ppl_errcode(const ppl_state *S) { return valid(S) ? S->code : PPL_ERR_MISUSE; }

/* Read a whole file; NULL with a malloc'd "error: ..." message on failure. */
static char *read_file(const char *path, size_t *len, char **err) {
    char msg[600];
    char *text = rt_read_file(path, len, msg, sizeof msg);
    if (!text) {
        size_t n = strlen(msg) + 8;
        *err = malloc(n);
        if (*err) snprintf(*err, n, "error: %s", msg);
    }
    return text;
}

static ppl_status run_text(ppl_state *S, const char *name, const char *text, size_t len, bool check,
                           bool repl) {
    S->vm->interrupted = 0; /* a Ctrl-C that arrived after the last call ended */
    rt_source *src = rt_source_new(name, text, len);
    if (!src) return set_error(S, PPL_ERR_NOMEM, NULL);
    rt_value echo = rt_none();
    int rc = rt_run_source(S->vm, src, check, repl ? &echo : NULL);
    rt_source_release(src);
    if (rc) return vm_error(S);
    free(S->echo);
    S->echo = NULL;
    if (repl && echo.tag != RT_NONE) S->echo = rt_value_repr(S->vm->bk, echo);
    rt_release(echo);
    return ok(S);
}

static ppl_status load_file(ppl_state *S, const char *path, bool check) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!path) return fmt_error(S, PPL_ERR_MISUSE, "error: path is NULL%s", NULL);
    size_t len;
    char *err = NULL;
    char *text = read_file(path, &len, &err);
    if (!text) return set_error(S, PPL_ERR_IO, err);
    ppl_status st = run_text(S, path, text, len, check, false);
    free(text);
    return st;
}

ppl_status ppl_load_file(ppl_state *S, const char *path) { return load_file(S, path, false); }

ppl_status ppl_load_definitions(ppl_state *S, const char *path) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    S->vm->defs_only = true;
    ppl_status st = load_file(S, path, false);
    S->vm->defs_only = false;
    return st;
}
ppl_status ppl_check_file(ppl_state *S, const char *path) { return load_file(S, path, true); }

ppl_status ppl_load_string(ppl_state *S, const char *name, const char *text) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!text) return fmt_error(S, PPL_ERR_MISUSE, "error: text is NULL%s", NULL);
    return run_text(S, name ? name : "<string>", text, strlen(text), false, false);
}

ppl_status ppl_check_string(ppl_state *S, const char *name, const char *text) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!text) return fmt_error(S, PPL_ERR_MISUSE, "error: text is NULL%s", NULL);
    return run_text(S, name ? name : "<string>", text, strlen(text), true, false);
}

ppl_status ppl_eval(ppl_state *S, const char *name, const char *text, const char **echo) {
    if (echo) *echo = "";
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!text) return fmt_error(S, PPL_ERR_MISUSE, "error: text is NULL%s", NULL);
    ppl_status st = run_text(S, name ? name : "<repl>", text, strlen(text), false, true);
    if (st == PPL_OK && echo) *echo = S->echo ? S->echo : "";
    return st;
}

int ppl_incomplete(const char *text) { return text ? rt_parse_incomplete(text) : 0; }

void ppl_interrupt(ppl_state *S) {
    if (valid(S)) S->vm->interrupted = 1;
}

ppl_status ppl_seed(ppl_state *S, uint64_t seed) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    S->vm->seed = seed;
    bk_rng_init(&S->vm->rng, seed, 0);
    return ok(S);
}

ppl_status ppl_set_device(ppl_state *S, const char *name) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!name) return fmt_error(S, PPL_ERR_MISUSE, "error: device name is NULL%s", NULL);
    const bk_device *d = bk_device_named(S->vm->bk, name);
    if (!d) return fmt_error(S, PPL_ERR_MISUSE, "error: %s", bk_errmsg(S->vm->bk));
    bk_set_default_device(S->vm->bk, d);
    return ok(S);
}

const char *ppl_device_warnings(const ppl_state *S) { return valid(S) ? bk_device_warnings(S->vm->bk) : ""; }

ppl_status ppl_set_data_f64(ppl_state *S, const char *name, const double *data, int ndim,
                            const int64_t *shape) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!name || (!data && ndim > 0) || ndim < 0 || ndim > BK_MAXDIM || (ndim > 0 && !shape))
        return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_set_data_f64: bad arguments for \"%s\"", name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_set_data_f64: negative size for \"%s\"", name);
        n *= shape[i];
    }
    bk_tensor *t = ndim == 0 ? bk_scalar(S->vm->bk, data ? data[0] : 0) : bk_from_f64(S->vm->bk, ndim, shape, data);
    (void)n;
    if (!t || rt_global_set(S->vm, name, rt_tensor(t))) return set_error(S, PPL_ERR_NOMEM, NULL);
    return ok(S);
}

ppl_status ppl_set_data_json(ppl_state *S, const char *path) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    rt_value v;
    if (rt_load_json(S->vm, path, (rt_loc){0, 0, 0, 0}, &v)) return vm_error(S);
    if (v.tag != RT_RECORD) {
        rt_release(v);
        return fmt_error(S, PPL_ERR_RUNTIME, "error: %s: the top level must be an object", path);
    }
    rt_record *r = (rt_record *)v.u.o;
    for (int i = 0; i < r->n; i++)
        if (rt_global_set(S->vm, r->keys[i], rt_retain(r->vals[i]))) {
            rt_release(v);
            return set_error(S, PPL_ERR_NOMEM, NULL);
        }
    rt_release(v);
    return ok(S);
}

ppl_status ppl_get_f64(ppl_state *S, const char *name, double *buf, size_t cap, size_t *n) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    rt_value *v = name ? rt_global_get(S->vm, name) : NULL;
    if (!v || v->tag != RT_TENSOR)
        return fmt_error(S, PPL_ERR_NAME, "error: no numeric global named \"%s\"", name ? name : "(null)");
    bk_tensor *t = v->u.t;
    if (n) *n = (size_t)t->numel;
    for (int64_t i = 0; i < t->numel && (size_t)i < cap && buf; i++) buf[i] = bk_get(t, i);
    return ok(S);
}

ppl_status ppl_call(ppl_state *S, const char *fn, int nargs, const double *args, double *result) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    rt_value *f = fn ? rt_global_get(S->vm, fn) : NULL;
    if (!f || (f->tag != RT_FUNC && f->tag != RT_BUILTIN))
        return fmt_error(S, PPL_ERR_NAME, "error: no function named \"%s\"", fn ? fn : "(null)");
    if (nargs < 0 || nargs > 64 || (nargs > 0 && !args))
        return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_call: bad arguments for \"%s\"", fn);
    rt_value av[64];
    for (int i = 0; i < nargs; i++) {
        bk_tensor *t = bk_scalar(S->vm->bk, args[i]);
        if (!t) {
            for (int k = 0; k < i; k++) rt_release(av[k]);
            return set_error(S, PPL_ERR_NOMEM, NULL);
        }
        av[i] = rt_tensor(t);
    }
    rt_vm_clear_error(S->vm);
    S->vm->interrupted = 0;
    rt_value fv = rt_retain(*f), out = rt_none();
    int rc = rt_call_value(S->vm, fv, nargs, av, 0, NULL, NULL, (rt_loc){0, 0, 0, 0}, &out);
    rt_release(fv);
    for (int i = 0; i < nargs; i++) rt_release(av[i]);
    bk_tape_reset(S->vm->bk);
    if (rc) return vm_error(S);
    if (result) *result = out.tag == RT_TENSOR && out.u.t->numel > 0 ? bk_get(out.u.t, 0) : 0.0;
    rt_release(out);
    return ok(S);
}

/* ------------------------------------------------------------- inference --- */

ppl_svi_opts ppl_svi_defaults(void) {
    ppl_svi_opts o;
    memset(&o, 0, sizeof o);
    o.guide = "auto_normal";
    o.steps = 1000;
    o.lr = 0.01;
    o.particles = 1;
    o.seed = 1;
    o.summary_samples = 1000;
    return o;
}

static ppl_status find_func(ppl_state *S, const char *name, const char *what, rt_func **out) {
    rt_value *v = name ? rt_global_get(S->vm, name) : NULL;
    if (!v || v->tag != RT_FUNC) {
        size_t n = (name ? strlen(name) : 6) + strlen(what) + 64;
        char *m = malloc(n);
        if (m) snprintf(m, n, "error: no %s named \"%s\"", what, name ? name : "(null)");
        return set_error(S, PPL_ERR_NAME, m);
    }
    *out = (rt_func *)v->u.o;
    return PPL_OK;
}

/* The model's arguments: the data file's fields, then globals by name. */
static ppl_status model_data(ppl_state *S, rt_func *m, const char *json, rt_value *out) {
    rt_value data = rt_none();
    if (json) {
        if (rt_load_json(S->vm, json, (rt_loc){0, 0, 0, 0}, &data)) return vm_error(S);
        if (data.tag != RT_RECORD) {
            rt_release(data);
            return fmt_error(S, PPL_ERR_RUNTIME, "error: %s: the top level must be an object", json);
        }
    } else {
        rt_record *rec = rt_record_new();
        if (!rec) return set_error(S, PPL_ERR_NOMEM, NULL);
        data = rt_obj_value(&rec->h);
    }
    for (int i = 0; i < m->nparams; i++) {
        rt_value *gv = rt_global_get(S->vm, m->pnames[i]);
        if (gv && gv->tag == RT_TENSOR && !rt_record_get((rt_record *)data.u.o, m->pnames[i]) &&
            rt_record_set((rt_record *)data.u.o, m->pnames[i], rt_retain(*gv))) {
            rt_release(data);
            return set_error(S, PPL_ERR_NOMEM, NULL);
        }
    }
    *out = data;
    return PPL_OK;
}

ppl_status ppl_svi(ppl_state *S, const char *model, const ppl_svi_opts *o, ppl_result **out) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!out) return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_svi: out is NULL%s", NULL);
    *out = NULL;
    ppl_svi_opts d = o ? *o : ppl_svi_defaults();
    rt_func *m;
    if (find_func(S, model, "model", &m)) return S->code;
    rt_value data;
    if (model_data(S, m, d.data_json, &data)) return S->code;
    inf_guide *g = NULL;
    inf_guide user = {0};
    const char *gname = d.guide ? d.guide : "auto_normal";
    int kind = strcmp(gname, "auto_normal") == 0 ? INF_GUIDE_NORMAL
             : strcmp(gname, "auto_diag") == 0 ? INF_GUIDE_DIAG
             : strcmp(gname, "auto_mvn") == 0 ? INF_GUIDE_MVN
             : strcmp(gname, "auto_delta") == 0 ? INF_GUIDE_DELTA
             : strcmp(gname, "auto_lowrank") == 0 ? INF_GUIDE_LOWRANK
             : strcmp(gname, "auto_laplace") == 0 ? INF_GUIDE_LAPLACE : INF_GUIDE_USER;
    if (kind == INF_GUIDE_USER) {
        rt_func *gf;
        if (find_func(S, gname, "guide", &gf)) {
            rt_release(data);
            return S->code;
        }
        user.kind = INF_GUIDE_USER;
        user.fn = gf;
        g = &user;
    } else {
        g = inf_guide_new(kind, m, 0.1);
        if (!g) {
            rt_release(data);
            return set_error(S, PPL_ERR_NOMEM, NULL);
        }
    }
    inf_svi_opts so = {0};
    so.steps = d.steps;
    so.particles = d.particles > 0 ? d.particles : 1;
    so.seed = d.seed;
    so.optim = inf_adam_defaults();
    so.optim.lr = d.lr > 0 ? d.lr : 0.01;
    so.summary_samples = d.summary_samples > 0 ? d.summary_samples : 1000;
    /* epochs: the validation data bind the model's arguments as the data do */
    inf_epoch_opts eo = {.epochs = d.epochs, .batch_size = d.batch_size > 0 ? d.batch_size : 0, .shuffle = true,
                         .val_particles = 4, .patience = d.patience > 0 ? d.patience : -1,
                         .min_delta = d.min_delta > 0 ? d.min_delta : 0, .restore_best = true};
    rt_value vdata = rt_none();
    if (d.epochs > 0) {
        so.ep = &eo;
        so.steps = 0;
        if (d.validation_json && model_data(S, m, d.validation_json, &vdata)) {
            if (g != &user) inf_guide_free(g);
            rt_release(data);
            return S->code;
        }
        eo.validation = vdata.tag == RT_RECORD ? (const rt_record *)vdata.u.o : NULL;
    }
    so.no_fast = d.no_fast_path != 0;
    rt_vm_clear_error(S->vm);
    S->vm->interrupted = 0;
    inf_result *r = NULL;
    so.resume = d.resume != NULL;
    int rc = d.resume ? inf_params_load(S->vm, d.resume, (rt_loc){0, 0, 0, 0}) : 0;
    if (rc == 0) rc = inf_svi_run(S->vm, m, g, data.tag == RT_RECORD ? (rt_record *)data.u.o : NULL, &so,
                         (rt_loc){0, 0, 0, 0}, &r);
    if (g != &user) inf_guide_free(g);
    rt_release(data);
    rt_release(vdata);
    bk_tape_reset(S->vm->bk);
    if (rc) return vm_error(S);
    ppl_result *R = calloc(1, sizeof *R);
    if (!R) {
        inf_result_free(r);
        return set_error(S, PPL_ERR_NOMEM, NULL);
    }
    R->r = r;
    R->ctx = S->vm->bk;
    *out = R;
    return ok(S);
}

ppl_status ppl_save_params(ppl_state *S, const char *path) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!path) return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_save_params: path is NULL%s", NULL);
    rt_vm_clear_error(S->vm);
    if (inf_params_save(S->vm, path, (rt_loc){0, 0, 0, 0})) return vm_error(S);
    return ok(S);
}

ppl_mcmc_opts ppl_mcmc_defaults(void) {
    ppl_mcmc_opts o;
    memset(&o, 0, sizeof o);
    o.chains = 4;
    o.warmup = 1000;
    o.samples = 1000;
    o.max_depth = 10;
    o.target_accept = 0.8;
    o.seed = 1;
    return o;
}

ppl_status ppl_mcmc(ppl_state *S, const char *model, const ppl_mcmc_opts *o, ppl_result **out) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    if (!out) return fmt_error(S, PPL_ERR_MISUSE, "error: ppl_mcmc: out is NULL%s", NULL);
    *out = NULL;
    ppl_mcmc_opts d = o ? *o : ppl_mcmc_defaults();
    rt_func *m;
    if (find_func(S, model, "model", &m)) return S->code;
    rt_value data;
    if (model_data(S, m, d.data_json, &data)) return S->code;
    inf_mcmc_opts mo = {.chains = d.chains, .warmup = d.warmup, .samples = d.samples, .max_depth = d.max_depth,
                        .target_accept = d.target_accept, .dense = d.dense_metric, .seed = d.seed,
                        .checkpoint = d.checkpoint, .resume = d.resume, .checkpoint_every = d.checkpoint_every,
                        .threads = d.threads, .no_fast = d.no_fast_path};
    rt_vm_clear_error(S->vm);
    S->vm->interrupted = 0;
    inf_mcmc *res = NULL;
    int rc = inf_mcmc_run(S->vm, m, (rt_record *)data.u.o, &mo, (rt_loc){0, 0, 0, 0}, &res);
    rt_release(data);
    bk_tape_reset(S->vm->bk);
    if (rc) return vm_error(S);
    ppl_result *R = calloc(1, sizeof *R);
    inf_result *r = inf_mcmc_result(res);
    if (!R || !r) {
        free(R);
        inf_result_free(r);
        inf_mcmc_free(res);
        return set_error(S, PPL_ERR_NOMEM, NULL);
    }
    R->r = r;
    R->m = res;
    R->ctx = S->vm->bk;
    *out = R;
    return ok(S);
}

ppl_status ppl_result_write_stan_csv(const ppl_result *R, const char *path, char *err, size_t errlen) {
    if (!R || !R->m || !path) {
        if (err && errlen) snprintf(err, errlen, "not an MCMC result");
        return PPL_ERR_MISUSE;
    }
    char tmp[512];
    if (inf_mcmc_write_csv(R->m, path, err ? err : tmp, err ? errlen : sizeof tmp)) return PPL_ERR_IO;
    return PPL_OK;
}

ppl_status ppl_result_write_plot(const ppl_result *R, const char *path, char *err, size_t errlen) {
    char tmp[512];
    if (!err || !errlen) err = tmp, errlen = sizeof tmp;
    if (!R || !path) {
        snprintf(err, errlen, "no result or no path");
        return PPL_ERR_MISUSE;
    }
    return inf_result_plot(R->r, R->m, path, err, errlen) ? PPL_ERR_IO : PPL_OK;
}

ppl_status ppl_result_summary(const ppl_result *R, const char *name, double *mean, double *sd) {
    if (!R || !name) return PPL_ERR_MISUSE;
    for (int i = 0; i < R->r->nrows; i++)
        if (strcmp(R->r->rows[i].name, name) == 0) {
            if (mean) *mean = R->r->rows[i].mean;
            if (sd) *sd = R->r->rows[i].sd;
            return PPL_OK;
        }
    return PPL_ERR_NAME;
}

ppl_status ppl_result_draws_f64(const ppl_result *R, const char *name, double *buf, size_t cap,
                                size_t *n) {
    if (!R || !name) return PPL_ERR_MISUSE;
    for (int i = 0; i < R->r->nrows; i++)
        if (strcmp(R->r->rows[i].name, name) == 0) {
            if (n) *n = (size_t)R->r->ndraws;
            for (int k = 0; k < R->r->ndraws && (size_t)k < cap && buf; k++) buf[k] = R->r->draws[i][k];
            return PPL_OK;
        }
    rt_value *p = R->r->params ? rt_record_get(R->r->params, name) : NULL;
    if (p && p->tag == RT_TENSOR) {
        if (n) *n = (size_t)p->u.t->numel;
        for (int64_t k = 0; k < p->u.t->numel && (size_t)k < cap && buf; k++) buf[k] = bk_get(p->u.t, k);
        return PPL_OK;
    }
    return PPL_ERR_NAME;
}

char *ppl_result_table(const ppl_result *R) { return R ? inf_result_table(R->r) : NULL; }
char *ppl_result_json(const ppl_result *R) { return R ? inf_result_json(R->ctx, R->r) : NULL; }

char *ppl_result_params_json(const ppl_result *R) {
    if (!R || !R->r->params) return NULL;
    rt_value v = rt_obj_value(&R->r->params->h);
    return rt_to_json(R->ctx, v);
}

void ppl_result_free(ppl_result *R) {
    if (!R) return;
    inf_mcmc_free(R->m);
    inf_result_free(R->r);
    free(R);
}

/* ---- host-defined distribution families (stdlib/dist_host.c) ---------- */

ppl_status ppl_register_distribution(ppl_state *S, const ppl_dist_def *def) {
    if (!valid(S)) return PPL_ERR_MISUSE;
    char err[400];
    if (sl_register_host_family(S->vm, def, err, sizeof err))
        return fmt_error(S, strcmp(err, "out of memory") == 0 ? PPL_ERR_NOMEM : PPL_ERR_MISUSE,
                         "error: %s", err);
    return ok(S);
}
