/* mcmc_clone.c - a private evaluation context for a chain on another thread.
 *
 * Evaluating a model touches shared objects on every run: the interpreter
 * retains IR constants, globals and data values (plain reference counts),
 * the tape marks the tensors it meets, a released tensor goes back to the
 * free lists of the context that made it, and an error retains its source.
 * None of that is safe across threads, so a thread does not share: it gets
 * a VM of its own (backend context, handler stack, errors) holding deep
 * copies of the model, of every global the model reaches (functions with
 * their IR, tensors, records, lists, strings, built-ins) and of the data.
 * The copies are exact, so a chain computes the same numbers there as on
 * the caller's VM.  A model that reaches a value that cannot be copied (a
 * distribution or another opaque value held in a global) or that has
 * `param` sites gets no clone, and the caller runs its chains in turn. */
#include <stdlib.h>
#include <string.h>
#include "mcmc_clone.h"

typedef struct cl_ctx {
    rt_vm *from, *to;
    const rt_source **src_from;   /* source map: originals and their copies */
    rt_source **src_to;
    int nsrc, capsrc;
    bool bad;                     /* something could not be copied */
} cl_ctx;

static rt_source *map_source(cl_ctx *k, const rt_source *s) {
    if (!s) return NULL;
    for (int i = 0; i < k->nsrc; i++)
        if (k->src_from[i] == s) return rt_source_retain(k->src_to[i]);
    if (k->nsrc == k->capsrc) {
        int cap = k->capsrc ? 2 * k->capsrc : 4;
        const rt_source **f = realloc(k->src_from, (size_t)cap * sizeof *f);
        if (f) k->src_from = f;
        rt_source **t = realloc(k->src_to, (size_t)cap * sizeof *t);
        if (t) k->src_to = t;
        if (!f || !t) {
            k->bad = true;
            return NULL;
        }
        k->capsrc = cap;
    }
    rt_source *c = rt_source_new(s->name, s->text, s->len);
    if (!c) {
        k->bad = true;
        return NULL;
    }
    k->src_from[k->nsrc] = s;
    k->src_to[k->nsrc++] = c;
    return rt_source_retain(c);
}

static char *dup_str(cl_ctx *k, const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) k->bad = true;
    return d;
}

static rt_value clone_value(cl_ctx *k, rt_value v);

static ir_node *clone_ir(cl_ctx *k, const ir_node *n) {
    if (!n || k->bad) return NULL;
    ir_node *c = calloc(1, sizeof *c);
    if (!c) {
        k->bad = true;
        return NULL;
    }
    c->op = n->op;
    c->aux = n->aux;
    c->slot = n->slot;
    c->loc = n->loc;
    c->k = clone_value(k, n->k);
    c->str = dup_str(k, n->str);
    if (n->nkids) {
        c->kids = calloc((size_t)n->nkids, sizeof *c->kids);
        if (!c->kids) k->bad = true;
        else c->nkids = n->nkids;
        for (int i = 0; i < c->nkids; i++) c->kids[i] = clone_ir(k, n->kids[i]);
    }
    if (n->nnames) {
        c->names = calloc((size_t)n->nnames, sizeof *c->names);
        if (!c->names) k->bad = true;
        else c->nnames = n->nnames;
        for (int i = 0; i < c->nnames; i++) c->names[i] = dup_str(k, n->names[i]);
    }
    c->tgt.scope = n->tgt.scope;
    c->tgt.slot = n->tgt.slot;
    c->tgt.name = dup_str(k, n->tgt.name);
    c->tgt.field = dup_str(k, n->tgt.field);
    if (n->tgt.nidx) {
        c->tgt.idx = calloc((size_t)n->tgt.nidx, sizeof *c->tgt.idx);
        if (!c->tgt.idx) k->bad = true;
        else c->tgt.nidx = n->tgt.nidx;
        for (int i = 0; i < c->tgt.nidx; i++) c->tgt.idx[i] = clone_ir(k, n->tgt.idx[i]);
    }
    if (n->ctr) {
        c->ctr = calloc(1, sizeof *c->ctr);
        if (!c->ctr) {
            k->bad = true;
        } else {
            c->ctr->kind = n->ctr->kind;
            c->ctr->lo = clone_ir(k, n->ctr->lo);
            c->ctr->hi = clone_ir(k, n->ctr->hi);
        }
    }
    /* functions are defined only at the top level, and `param` sites would
     * need the caller's parameter store */
    if (n->fn || n->op == IR_PARAM) k->bad = true;
    return c;
}

static rt_func *clone_func(cl_ctx *k, const rt_func *f) {
    rt_func *c = calloc(1, sizeof *c);
    if (!c) {
        k->bad = true;
        return NULL;
    }
    c->h.refcount = 1;
    c->h.tag = RT_FUNC;
    c->h.free = rt_func_free;
    c->name = dup_str(k, f->name);
    c->role = f->role;
    c->loc = f->loc;
    c->src = map_source(k, f->src);
    c->pnames = calloc((size_t)f->nparams + 1, sizeof *c->pnames);
    c->defaults = calloc((size_t)f->nparams + 1, sizeof *c->defaults);
    if (!c->pnames || !c->defaults) k->bad = true;
    else c->nparams = f->nparams;
    for (int i = 0; i < c->nparams; i++) {
        c->pnames[i] = dup_str(k, f->pnames[i]);
        c->defaults[i] = clone_ir(k, f->defaults[i]);
    }
    if (f->nslots) {
        c->slotnames = calloc((size_t)f->nslots, sizeof *c->slotnames);
        if (!c->slotnames) k->bad = true;
        else c->nslots = f->nslots;
        for (int i = 0; i < c->nslots; i++) c->slotnames[i] = dup_str(k, f->slotnames[i]);
    }
    c->body = clone_ir(k, f->body);
    return c;
}

/* A deep copy made in k->to's backend context; RT_NONE with k->bad set
 * when v cannot be copied. */
static rt_value clone_value(cl_ctx *k, rt_value v) {
    if (k->bad) return rt_none();
    switch (v.tag) {
    case RT_NONE:
        return rt_none();
    case RT_TENSOR: {
        const bk_tensor *t = v.u.t;
        double *buf = malloc(sizeof(double) * (size_t)(t->numel ? t->numel : 1));
        bk_tensor *c = NULL;
        if (buf && t->dtype == BK_F64) {
            bk_copy_out(t, buf);
            c = bk_place_nd(k->to->bk, bk_from_f64(k->to->bk, t->ndim, t->shape, buf));
        }
        free(buf);
        if (!c) {
            k->bad = true;
            return rt_none();
        }
        return rt_tensor(c);
    }
    case RT_STR: {
        const rt_str *s = (const rt_str *)v.u.o;
        rt_str *c = rt_str_new(s->s, s->len);
        if (!c) break;
        return rt_obj_value(&c->h);
    }
    case RT_RECORD: {
        const rt_record *r = (const rt_record *)v.u.o;
        rt_record *c = rt_record_new();
        if (!c) break;
        for (int i = 0; i < r->n && !k->bad; i++)
            if (rt_record_set(c, r->keys[i], clone_value(k, r->vals[i]))) k->bad = true;
        return rt_obj_value(&c->h);
    }
    case RT_LIST: {
        const rt_list *l = (const rt_list *)v.u.o;
        rt_list *c = rt_list_new();
        if (!c) break;
        for (int i = 0; i < l->n && !k->bad; i++)
            if (rt_list_push(c, clone_value(k, l->items[i]))) k->bad = true;
        return rt_obj_value(&c->h);
    }
    case RT_FUNC: {
        rt_func *c = clone_func(k, (const rt_func *)v.u.o);
        if (!c) break;
        return rt_obj_value(&c->h);
    }
    case RT_BUILTIN: {
        const rt_builtin *b = (const rt_builtin *)v.u.o;
        if (b->self.tag != RT_NONE) break;   /* a bound method */
        rt_builtin *c = rt_builtin_new(b->name, b->fn, rt_none());
        if (!c) break;
        return rt_obj_value(&c->h);
    }
    default:
        break;   /* distributions and opaque values */
    }
    k->bad = true;
    return rt_none();
}

static void mark_globals(const rt_vm *vm, const ir_node *n, bool *used);

/* Functions inside a value (directly, or in records and lists) read
 * globals too. */
static void mark_value(const rt_vm *vm, rt_value v, bool *used, int depth) {
    if (depth > 64) return;
    if (v.tag == RT_FUNC) {
        const rt_func *f = (const rt_func *)v.u.o;
        for (int i = 0; i < f->nparams; i++) mark_globals(vm, f->defaults[i], used);
        mark_globals(vm, f->body, used);
    } else if (v.tag == RT_RECORD) {
        const rt_record *r = (const rt_record *)v.u.o;
        for (int i = 0; i < r->n; i++) mark_value(vm, r->vals[i], used, depth + 1);
    } else if (v.tag == RT_LIST) {
        const rt_list *l = (const rt_list *)v.u.o;
        for (int i = 0; i < l->n; i++) mark_value(vm, l->items[i], used, depth + 1);
    }
}

/* Marks in `used` every global slot the IR reads, following functions. */
static void mark_globals(const rt_vm *vm, const ir_node *n, bool *used) {
    if (!n) return;
    if (n->op == IR_GLOBAL && n->slot >= 0 && n->slot < vm->nglobals && !used[n->slot]) {
        used[n->slot] = true;
        mark_value(vm, vm->gvals[n->slot], used, 0);
    }
    if (n->tgt.scope == IR_GLOBAL && n->tgt.slot >= 0 && n->tgt.slot < vm->nglobals) used[n->tgt.slot] = true;
    for (int i = 0; i < n->nkids; i++) mark_globals(vm, n->kids[i], used);
    for (int i = 0; i < n->tgt.nidx; i++) mark_globals(vm, n->tgt.idx[i], used);
    if (n->ctr) {
        mark_globals(vm, n->ctr->lo, used);
        mark_globals(vm, n->ctr->hi, used);
    }
}

void inf_clone_free(inf_clone *c) {
    if (!c) return;
    if (c->model) rt_release(rt_obj_value(&c->model->h));
    if (c->data) rt_release(rt_obj_value(&c->data->h));
    rt_vm_free(c->vm);
    memset(c, 0, sizeof *c);
}

int inf_clone_make(rt_vm *vm, const rt_func *model, const rt_record *data, inf_clone *out) {
    memset(out, 0, sizeof *out);
    bk_alloc a = bk_ctx_allocator(vm->bk);
    rt_vm *to = rt_vm_new(&a);
    if (to) bk_set_default_device(to->bk, bk_default_device(vm->bk)); /* the chain runs where the run does */
    bool *used = calloc((size_t)vm->nglobals + 1, sizeof *used);
    char **names = calloc((size_t)vm->nglobals + 1, sizeof *names);
    rt_value *vals = calloc((size_t)vm->nglobals + 1, sizeof *vals);
    cl_ctx k = {.from = vm, .to = to, .bad = !to || !used || !names || !vals};
    if (!k.bad) {
        mark_value(vm, rt_obj_value((rt_obj *)&model->h), used, 0);
        if (data) mark_value(vm, rt_obj_value((rt_obj *)&data->h), used, 0);
        /* the same global table layout (IR_GLOBAL holds slot numbers):
         * the reachable values copied, the others left empty */
        for (int i = 0; i < vm->nglobals && !k.bad; i++) {
            names[i] = dup_str(&k, vm->gnames[i]);
            vals[i] = used[i] ? clone_value(&k, vm->gvals[i]) : rt_none();
        }
    }
    if (!k.bad) {
        for (int i = 0; i < to->nglobals; i++) {
            rt_release(to->gvals[i]);
            free(to->gnames[i]);
        }
        free(to->gvals);
        free(to->gnames);
        to->gnames = names;
        to->gvals = vals;
        to->nglobals = to->capglobals = vm->nglobals;
        names = NULL;
        vals = NULL;
        to->max_depth = vm->max_depth;
        to->max_loop = vm->max_loop;
        to->seed = vm->seed;
        to->rng = vm->rng;
        to->out = vm->out;
        to->out_ud = vm->out_ud;
        out->vm = to;
        out->model = clone_func(&k, model);
        if (data) {
            rt_value d = clone_value(&k, rt_obj_value((rt_obj *)&data->h));
            out->data = d.tag == RT_RECORD ? (rt_record *)d.u.o : NULL;
            if (!out->data) {
                rt_release(d);
                k.bad = true;
            }
        }
    }
    for (int i = 0; names && i < vm->nglobals; i++) {
        free(names[i]);
        rt_release(vals[i]);
    }
    free(names);
    free(vals);
    free(used);
    for (int i = 0; i < k.nsrc; i++) rt_source_release(k.src_to[i]);
    free(k.src_from);
    free(k.src_to);
    if (k.bad || !out->model) {
        if (out->vm) inf_clone_free(out);
        else rt_vm_free(to);
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}
