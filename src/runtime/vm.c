/* vm.c - the interpreter state: creation, globals, the parameter store, and
 * running a source text (parse, lower, execute). */
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "data_io.h"

extern const rt_builtin_def rt_plot_builtins[]; /* plot_builtins.c */

rt_vm *rt_vm_new(const bk_alloc *alloc) {
    rt_vm *vm = calloc(1, sizeof *vm);
    if (!vm) return NULL;
    vm->bk = bk_ctx_new(alloc);
    if (!vm->bk) {
        free(vm);
        return NULL;
    }
    vm->max_depth = 200;
    vm->max_loop = 100000000L;
    vm->seed = 0;
    bk_rng_init(&vm->rng, 0, 0);
    /* Plain script code records nothing; inference turns recording on. */
    bk_set_grad_enabled(vm->bk, false);
    rt_diaglist_init(&vm->errs);
    if (rt_register_builtins(vm, rt_core_builtins) || rt_register_builtins(vm, rt_math_builtins) ||
        rt_register_builtins(vm, rt_data_io_builtins) || rt_register_builtins(vm, rt_plot_builtins) ||
        sl_register_dist_builtins(vm) || rt_register_constraints(vm) ||
        rt_register_builtins(vm, sl_nn_builtins) || rt_register_builtins(vm, sl_nn_bayes_builtins) ||
        rt_register_builtins(vm, rt_npy_builtins)) {
        rt_vm_free(vm);
        return NULL;
    }
    return vm;
}

void rt_params_clear(rt_vm *vm) {
    for (int i = 0; i < vm->params.n; i++) {
        rt_param *p = &vm->params.items[i];
        free(p->name);
        bk_release(p->u);
        sl_constraint_clear(&p->c);
    }
    free(vm->params.items);
    memset(&vm->params, 0, sizeof vm->params);
    if (vm->svi_state_free) vm->svi_state_free(vm->svi_state);
    vm->svi_state = NULL;
    vm->svi_state_free = NULL;
}

void rt_vm_free(rt_vm *vm) {
    if (!vm) return;
    /* globals hold functions which hold IR; release values first */
    for (int i = 0; i < vm->nglobals; i++) {
        rt_release(vm->gvals[i]);
        free(vm->gnames[i]);
    }
    free(vm->gvals);
    free(vm->gnames);
    for (int i = 0; i < vm->nunits; i++) ir_unit_free(vm->units[i]);
    free(vm->units);
    rt_params_clear(vm);
    free(vm->hstack);
    rt_diaglist_free(&vm->errs);
    bk_tape_reset(vm->bk);
    bk_ctx_free(vm->bk);
    free(vm);
}

void rt_vm_clear_error(rt_vm *vm) {
    rt_diaglist_free(&vm->errs);
    rt_diaglist_init(&vm->errs);
    vm->errcode = 0;
    bk_clearerr(vm->bk);
}

char *rt_vm_errmsg(rt_vm *vm) { return rt_diaglist_format(&vm->errs); }

void rt_vm_write(rt_vm *vm, const char *s, size_t n) {
    if (vm->out) vm->out(vm->out_ud, s, n);
}

/* -------------------------------------------------------------- globals --- */

int rt_global_find(const rt_vm *vm, const char *name) {
    for (int i = vm->nglobals - 1; i >= 0; i--)
        if (strcmp(vm->gnames[i], name) == 0) return i;
    return -1;
}

int rt_global_declare(rt_vm *vm, const char *name) {
    int i = rt_global_find(vm, name);
    if (i >= 0) return i;
    if (vm->nglobals == vm->capglobals) {
        int cap = vm->capglobals ? vm->capglobals * 2 : 128;
        char **n = realloc(vm->gnames, cap * sizeof *n);
        if (!n) return -1;
        vm->gnames = n;
        rt_value *v = realloc(vm->gvals, cap * sizeof *v);
        if (!v) return -1;
        vm->gvals = v;
        vm->capglobals = cap;
    }
    vm->gnames[vm->nglobals] = strdup(name);
    if (!vm->gnames[vm->nglobals]) return -1;
    vm->gvals[vm->nglobals] = rt_none();
    return vm->nglobals++;
}

int rt_global_set(rt_vm *vm, const char *name, rt_value v) {
    int i = rt_global_declare(vm, name);
    if (i < 0) {
        rt_release(v);
        return -1;
    }
    rt_release(vm->gvals[i]);
    vm->gvals[i] = v;
    return 0;
}

rt_value *rt_global_get(rt_vm *vm, const char *name) {
    int i = rt_global_find(vm, name);
    return i < 0 ? NULL : &vm->gvals[i];
}

static void builtin_free(rt_obj *o) {
    rt_builtin *b = (rt_builtin *)o;
    rt_release(b->self);
    free(b);
}

rt_builtin *rt_builtin_new(const char *name, rt_builtin_fn fn, rt_value self) {
    rt_builtin *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->h.refcount = 1;
    b->h.tag = RT_BUILTIN;
    b->h.free = builtin_free;
    b->name = name;
    b->fn = fn;
    b->self = rt_retain(self);
    return b;
}

int rt_register_builtins(rt_vm *vm, const rt_builtin_def *defs) {
    for (const rt_builtin_def *d = defs; d->name; d++) {
        rt_builtin *b = rt_builtin_new(d->name, d->fn, rt_none());
        if (!b || rt_global_set(vm, d->name, rt_obj_value(&b->h))) return -1;
    }
    return 0;
}

void rt_func_free(rt_obj *o) {
    rt_func *f = (rt_func *)o;
    for (int i = 0; i < f->nparams; i++) {
        free(f->pnames[i]);
        ir_free(f->defaults[i]);
    }
    free(f->pnames);
    free(f->defaults);
    for (int i = 0; i < f->nslots; i++) free(f->slotnames[i]);
    free(f->slotnames);
    ir_free(f->body);
    rt_source_release(f->src);
    free(f->name);
    free(f);
}

/* ----------------------------------------------------------- parameters --- */

rt_param *rt_param_find(rt_vm *vm, const char *name) {
    for (int i = 0; i < vm->params.n; i++)
        if (strcmp(vm->params.items[i].name, name) == 0) return &vm->params.items[i];
    return NULL;
}

rt_param *rt_param_create(rt_vm *vm, const char *name, bk_tensor *init, const sl_constraint *c,
                          rt_loc loc) {
    bk_tensor *ok = sl_check(vm->bk, c, init);
    if (!ok) {
        rt_fail_bk(vm, loc);
        return NULL;
    }
    bool inside = true;
    for (int64_t i = 0; i < ok->numel; i++)
        if (bk_get(ok, i) == 0) inside = false;
    bk_release(ok);
    if (!inside) {
        rt_error_loc(vm, loc, "initial value of parameter \"%s\" is outside its constraint %s",
                     name, sl_constraint_name(c->kind));
        return NULL;
    }
    /* the transform runs where the parameter will live */
    bk_tensor *on = bk_to_device(vm->bk, init, bk_default_device(vm->bk));
    bk_tensor *u = on ? sl_to_unconstrained(vm->bk, c, on) : NULL;
    bk_release(on);
    if (!u) {
        rt_fail_bk(vm, loc);
        return NULL;
    }
    bk_tensor *leaf = bk_place(vm->bk, bk_detach(vm->bk, u)); /* on the run's device */
    bk_release(u);
    if (!leaf) {
        rt_fail_bk(vm, loc);
        return NULL;
    }
    if (vm->params.n == vm->params.cap) {
        int cap = vm->params.cap ? vm->params.cap * 2 : 8;
        rt_param *p = realloc(vm->params.items, cap * sizeof *p);
        if (!p) {
            bk_release(leaf);
            rt_fail(vm, 5, loc, "out of memory");
            return NULL;
        }
        vm->params.items = p;
        vm->params.cap = cap;
    }
    rt_param *p = &vm->params.items[vm->params.n];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    if (!p->name) {
        bk_release(leaf);
        rt_fail(vm, 5, loc, "out of memory");
        return NULL;
    }
    vm->params.n++;
    bk_set_requires_grad(leaf, true);
    p->u = leaf;
    p->c = sl_constraint_copy(c);
    p->ndim = init->ndim;
    memcpy(p->shape, init->shape, sizeof p->shape);
    return p;
}

bk_tensor *rt_param_value(rt_vm *vm, rt_param *p) {
    bk_tensor *v = sl_to_constrained(vm->bk, &p->c, p->u, p->ndim, p->shape, NULL);
    if (!v || bk_grad_enabled(vm->bk)) return v;
    /* Outside a gradient computation the value may outlive this step (a
     * trace, fit.params): copy it so later in-place optimizer updates of
     * the parameter do not show through a view. */
    bk_tensor *c = bk_detach(vm->bk, v);
    bk_release(v);
    return c;
}

/* -------------------------------------------------------------- running --- */

static int keep_unit(rt_vm *vm, ir_unit *u) {
    if (vm->nunits == vm->capunits) {
        int cap = vm->capunits ? vm->capunits * 2 : 8;
        ir_unit **p = realloc(vm->units, cap * sizeof *p);
        if (!p) return -1;
        vm->units = p;
        vm->capunits = cap;
    }
    vm->units[vm->nunits++] = u;
    return 0;
}

int rt_run_source(rt_vm *vm, rt_source *src, bool check_only, rt_value *echo) {
    rt_vm_clear_error(vm);
    if (echo) *echo = rt_none();
    ast_program *prog = rt_parse(src, &vm->errs);
    if (!prog) {
        vm->errcode = vm->errs.n ? 1 : 5; /* PPL_ERR_SYNTAX / NOMEM */
        return -1;
    }
    ir_unit *u = rt_lower(vm, prog, echo != NULL);
    ast_program_free(prog);
    if (!u) return -1;
    if (check_only) {
        ir_unit_free(u);
        return 0;
    }
    if (keep_unit(vm, u)) {
        ir_unit_free(u);
        return rt_fail(vm, 5, (rt_loc){0, 0, 0, 0}, "out of memory");
    }
    int rc = rt_exec_unit(vm, u, echo);
    bk_tape_reset(vm->bk);
    return rc;
}
