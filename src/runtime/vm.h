/* vm.h - the interpreter state shared by the runtime files, the effect
 * handler stack (the Pyro/poutine design) and traces.  Inference code in
 * src/infer uses this header; hosts use include/ppl.h. */
#ifndef PPL_RUNTIME_VM_H
#define PPL_RUNTIME_VM_H

#include <signal.h>
#include "value.h"
#include "ir.h"
#include "ast.h"
#include "dist.h"
#include "constraint.h"

/* ------------------------------------------------------------ messages --- */

typedef enum { RT_SITE_SAMPLE, RT_SITE_OBSERVE, RT_SITE_PARAM,
               RT_SITE_DETERMINISTIC, RT_SITE_FACTOR,
               RT_SITE_PLATE /* a plate's subsample indices */ } rt_site_kind;
const char *rt_site_kind_name(int kind);

#define RT_MAXPLATES 8

typedef struct rt_plate {
    const char *name;       /* borrowed from the IR */
    int64_t size;           /* full size N */
    int64_t sub;            /* subsample size B (== size when none) */
    int dim;                /* batch dim from the right: -1, -2, ... */
    bk_tensor *idx;         /* subsample indices [B] (retained) */
} rt_plate;

/* One random choice on its way through the handler stack. */
typedef struct rt_msg {
    int kind;               /* rt_site_kind */
    const char *name;       /* site name (owned by the message's creator) */
    sl_dist *dist;          /* SAMPLE/OBSERVE (borrowed) */
    bk_tensor *value;       /* set by a handler or by the default action */
    bool observed;
    bool done;              /* a handler supplied the value */
    bool stop;              /* block: do not pass to outer handlers */
    double scale;           /* product of scale handlers and subsample N/B */
    bk_tensor *mask;        /* or NULL */
    const sl_constraint *constraint; /* PARAM, or sample x: C */
    int nplates;
    rt_plate plates[RT_MAXPLATES];
    rt_loc loc;
    /* PLATE messages: the plate's size N and subsample size B (set by
     * rt_apply_message_plate).  A handler that supplies the indices may set
     * plate_sub to their count, 1..N (the epoch driver's last, smaller
     * minibatch); the plate then scales by N / plate_sub.  `subsampled`:
     * the plate was declared with subsample=; `sized`: a handler chose
     * plate_sub (the declared subsample size is then not used). */
    int64_t plate_size, plate_sub;
    bool subsampled, sized;
} rt_msg;

typedef struct rt_handler rt_handler;
struct rt_handler {
    const char *type;
    /* called from the top of the stack down before the default action */
    int (*process)(rt_vm *, rt_handler *, rt_msg *);
    /* called from the bottom up after it */
    int (*postprocess)(rt_vm *, rt_handler *, rt_msg *);
    /* called by rt_push_handler / rt_pop_handler (may be NULL) */
    void (*enter)(rt_vm *, rt_handler *);
    void (*exit)(rt_vm *, rt_handler *);
    void *state;
};

/* -------------------------------------------------------------- traces --- */

typedef struct rt_site {
    int kind;               /* rt_site_kind */
    char *name;
    sl_dist *dist;          /* retained, or NULL */
    bk_tensor *value;       /* retained */
    bk_tensor *log_prob;    /* retained: scaled and masked, summed to 0-d
                               (NULL for params / deterministic) */
    bk_tensor *log_prob_batch; /* retained: masked, not scaled, not summed (the
                               batch shape, plate dims included); NULL when
                               not recorded (use log_prob) */
    double scale;
    bool observed;
    int nplates;
    rt_plate plates[RT_MAXPLATES]; /* idx retained */
    rt_loc loc;
    bool has_constraint;    /* sample x: C ~ D */
    sl_constraint constraint;  /* C (lo/hi retained) */
} rt_site;

typedef struct rt_trace {
    rt_site *sites;
    int n, cap;
} rt_trace;

void rt_trace_init(rt_trace *t);
void rt_trace_clear(rt_trace *t);
rt_site *rt_trace_find(const rt_trace *t, const char *name);
/* Sum of the log-probs of the sites of the given kinds mask
 * (1 << RT_SITE_SAMPLE | ...).  New 0-d tensor, or NULL on error. */
bk_tensor *rt_trace_log_prob_sum(rt_vm *vm, const rt_trace *t, unsigned kinds);

/* Handlers (handlers.c).  Each constructor fills a handler struct whose
 * state points to caller-owned memory; push/pop around a run. */
void rt_handler_trace(rt_handler *h, rt_trace *tr);
void rt_handler_replay(rt_handler *h, const rt_trace *guide_trace);
/* The site of the guide trace that replay handlers on the stack hold for
 * `name` (the one whose value a replayed message receives), or NULL: a
 * layer reads the guide's distribution of its weights through it (local
 * reparameterization, stdlib/nn_bayes.c). */
const rt_site *rt_replayed_site(const rt_vm *vm, const char *name);
/* condition: data is a record of observed values by site name */
void rt_handler_condition(rt_handler *h, const rt_record *data);
/* substitute: values for sample/param sites by name */
void rt_handler_substitute(rt_handler *h, const rt_record *values);
/* block: hide sites from outer handlers (all when names is NULL) */
typedef struct rt_block_state { const char *const *names; int n; } rt_block_state;
void rt_handler_block(rt_handler *h, rt_block_state *st, const char *const *names, int n);
void rt_handler_scale(rt_handler *h, double *scale);
typedef struct rt_seed_state { bk_rng rng; bk_rng saved; } rt_seed_state;
void rt_handler_seed(rt_handler *h, rt_seed_state *st, uint64_t seed);

int rt_push_handler(rt_vm *vm, rt_handler *h);
void rt_pop_handler(rt_vm *vm, rt_handler *h);

/* ---------------------------------------------------------- parameters --- */

typedef struct rt_param {
    char *name;
    bk_tensor *u;           /* unconstrained leaf, requires_grad */
    sl_constraint c;
    int ndim;
    int64_t shape[BK_MAXDIM]; /* constrained shape */
} rt_param;

typedef struct rt_paramstore {
    rt_param *items;
    int n, cap;
} rt_paramstore;

rt_param *rt_param_find(rt_vm *vm, const char *name);
/* Create a parameter from a constrained initial value. */
rt_param *rt_param_create(rt_vm *vm, const char *name, bk_tensor *init,
                          const sl_constraint *c, rt_loc loc);
/* The constrained value (recorded on the tape). */
bk_tensor *rt_param_value(rt_vm *vm, rt_param *p);
void rt_params_clear(rt_vm *vm);

/* ------------------------------------------------------------------ VM --- */

typedef void (*rt_write_fn)(void *ud, const char *text, size_t len);
struct ppl_mcmc_progress;   /* include/ppl.h */

struct rt_vm {
    bk_ctx *bk;
    bk_rng rng;                 /* current stream (seed handler swaps it) */
    uint64_t seed;
    /* globals: names and values; builtins are globals too */
    int nglobals, capglobals;
    char **gnames;
    rt_value *gvals;
    /* lowered units kept alive (functions point into them) */
    ir_unit **units;
    int nunits, capunits;
    /* effect handlers, innermost last */
    rt_handler **hstack;
    int nh, caph;
    /* active plates, outermost first */
    rt_plate plates[RT_MAXPLATES];
    int nplates;
    rt_paramstore params;
    /* what the last svi(...) leaves for save_params and resume (optimizer
     * moments, random stream position); owned, freed with the parameters */
    void *svi_state;
    void (*svi_state_free)(void *);
    /* the last error */
    rt_diaglist errs;
    int errcode;                /* ppl_status */
    /* limits */
    int depth, max_depth;
    long max_loop;
    volatile sig_atomic_t interrupted;
    rt_write_fn out;
    void *out_ud;
    /* progress of long runs (ppl_options.progress), or NULL */
    void (*progress)(void *ud, const char *phase, long done, long total, double value);
    void *progress_ud;
    /* progress of svi(epochs=) runs (ppl_options.progress_epoch), or NULL */
    void (*progress_epoch)(void *ud, long epoch, long epochs, long step, long steps, double elbo, double val_elbo);
    /* progress within MCMC chains (ppl_options.mcmc_progress), or NULL */
    void (*mcmc_progress)(void *ud, const struct ppl_mcmc_progress *p);
    const char *cur_site;       /* site whose distribution is being built */
    bool defs_only;             /* run only definitions and data assignments */
    const rt_source *cur_src;   /* source of the code running now */
    uint64_t site_counter;
};

rt_vm *rt_vm_new(const bk_alloc *alloc);
void rt_vm_free(rt_vm *vm);
void rt_vm_clear_error(rt_vm *vm);
/* Format the pending error(s) as one string (malloc'd). */
char *rt_vm_errmsg(rt_vm *vm);
void rt_vm_write(rt_vm *vm, const char *s, size_t n);

/* Globals */
int rt_global_find(const rt_vm *vm, const char *name);
int rt_global_declare(rt_vm *vm, const char *name);      /* index, -1 OOM */
int rt_global_set(rt_vm *vm, const char *name, rt_value v); /* takes v */
rt_value *rt_global_get(rt_vm *vm, const char *name);

/* Front end */
ir_unit *rt_lower(rt_vm *vm, const ast_program *prog, bool repl);
/* Parse + lower + run a source text.  On a single-expression REPL chunk,
 * *echo receives the value (else RT_NONE).  0 or -1. */
int rt_run_source(rt_vm *vm, rt_source *src, bool check_only, rt_value *echo);

/* Interpreter */
int rt_exec_unit(rt_vm *vm, ir_unit *u, rt_value *echo);
/* Call any callable value with positional args and keyword args. */
int rt_call_value(rt_vm *vm, rt_value fn, int nargs, rt_value *args, int nkw,
                  const char **kwnames, rt_value *kwargs, rt_loc loc, rt_value *out);
/* Call a model/guide with arguments taken by name from a data record
 * (missing arguments are an error naming them). */
int rt_call_with_data(rt_vm *vm, rt_func *f, const rt_record *data, rt_loc loc,
                      rt_value *out);
/* Send a message through the handler stack and apply the default action. */
int rt_apply_message(rt_vm *vm, rt_msg *m);
/* The same for a plate's subsample site (default: random B of N indices). */
int rt_apply_message_plate(rt_vm *vm, rt_msg *m, int64_t size, int64_t sub);

/* Errors with a location (the interpreter's own). */
int rt_fail(rt_vm *vm, int code, rt_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Backend error at loc. */
int rt_fail_bk(rt_vm *vm, rt_loc loc);

/* Value helpers */
int rt_to_tensor(rt_vm *vm, rt_value v, rt_loc loc, bk_tensor **out); /* new ref */
bool rt_truthy(rt_vm *vm, rt_value v, rt_loc loc, int *err);

/* Built-in tables registered at VM creation */
extern const rt_builtin_def rt_math_builtins[];
extern const rt_builtin_def rt_core_builtins[];
/* Networks (stdlib/nn_builtins.c) and NPY files (data_npy.c) */
extern const rt_builtin_def sl_nn_builtins[];
/* Bayesian layers (stdlib/nn_bayes.c) */
extern const rt_builtin_def sl_nn_bayes_builtins[];
extern const rt_builtin_def rt_npy_builtins[];
/* Globals real, positive, simplex, ... bound to constraint values. */
int rt_register_constraints(rt_vm *vm);

#endif
