/* interp.c - the interpreter: runs trace IR.  Expressions evaluate to
 * values; statements return a control code.  Random choices become
 * messages sent through the effect-handler stack (handlers.c).
 *
 * Every function returns 0 on success or -1 after recording an error in the
 * VM; values handed out are new references, so error paths release what
 * they hold and nothing leaks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "program.h"

enum { CTL_NORMAL = 0, CTL_ERROR = -1, CTL_BREAK = 1, CTL_CONTINUE = 2, CTL_RETURN = 3 };
enum { ERR_RUNTIME = 3, ERR_NOMEM = 5, ERR_INTERRUPTED = 7, ERR_LIMIT = 8 };

typedef struct frame {
    rt_value *slots;
    int nslots;
    rt_value ret;
    const rt_func *fn;
} frame;

static int eval(rt_vm *vm, frame *F, const ir_node *n, rt_value *out);
static int exec(rt_vm *vm, frame *F, const ir_node *n);

static int oom(rt_vm *vm, rt_loc loc) { return rt_fail(vm, ERR_NOMEM, loc, "out of memory"); }

static int check_interrupt(rt_vm *vm, rt_loc loc) {
    if (vm->interrupted) {
        vm->interrupted = 0;
        return rt_fail(vm, ERR_INTERRUPTED, loc, "interrupted");
    }
    return 0;
}

/* -------------------------------------------------------- conversions --- */

int rt_to_tensor(rt_vm *vm, rt_value v, rt_loc loc, bk_tensor **out) {
    if (v.tag == RT_TENSOR) {
        *out = bk_retain(v.u.t);
        return 0;
    }
    return rt_error_loc(vm, loc, "expected a number or tensor, got a %s", rt_type_name(v));
}

bool rt_truthy(rt_vm *vm, rt_value v, rt_loc loc, int *err) {
    *err = 0;
    if (v.tag == RT_TENSOR) {
        if (v.u.t->numel != 1) {
            char sh[64];
            rt_error_loc(vm, loc, "the truth value of a tensor of shape %s is ambiguous; use "
                         "sum(), min() or max() to reduce it", bk_shape_str(v.u.t, sh, sizeof sh));
            *err = 1;
            return false;
        }
        return bk_item(v.u.t) != 0;
    }
    if (v.tag == RT_NONE) return false;
    if (v.tag == RT_STR) return ((rt_str *)v.u.o)->len > 0;
    return true;
}

/* Integer value of a scalar tensor (indices, sizes). */
static int to_int(rt_vm *vm, rt_value v, rt_loc loc, const char *what, int64_t *out) {
    if (v.tag != RT_TENSOR || v.u.t->numel != 1)
        return rt_error_loc(vm, loc, "%s must be a single integer, got a %s", what,
                            v.tag == RT_TENSOR ? "tensor with several elements" : rt_type_name(v));
    double d = bk_item(v.u.t);
    if (d != floor(d) || fabs(d) > 9e15)
        return rt_error_loc(vm, loc, "%s must be an integer, got %g", what, d);
    *out = (int64_t)d;
    return 0;
}

/* ------------------------------------------------------------ operators --- */

__attribute__((noinline)) static int str_concat(rt_vm *vm, rt_value a, rt_value b, rt_value *out, rt_loc loc) {
    rt_str *x = (rt_str *)a.u.o, *y = (rt_str *)b.u.o;
    char *buf = malloc(x->len + y->len + 1);
    if (!buf) return oom(vm, loc);
    memcpy(buf, x->s, x->len);
    memcpy(buf + x->len, y->s, y->len);
    rt_str *s = rt_str_new(buf, x->len + y->len);
    free(buf);
    if (!s) return oom(vm, loc);
    *out = rt_obj_value(&s->h);
    return 0;
}

static const char *op_symbol(int op) {
    static const char *const sym[] = {"+", "-", "*", "/", "**", "@", "%", "<", "<=", ">",
                                      ">=", "==", "!=", "-", "not", "+"};
    return op >= 0 && op <= AST_OP_POS ? sym[op] : "?";
}

/* w = x op y for 0-d float64 operands that need no gradient; false when the
 * general path must run. */
static bool scalar_binop(int op, const bk_tensor *x, const bk_tensor *y, double *w) {
    if (x->ndim != 0 || y->ndim != 0 || x->dtype != BK_F64 || y->dtype != BK_F64 || x->requires_grad ||
        y->requires_grad || bk_tensor_device(x) != &bk_cpu_device || bk_tensor_device(y) != &bk_cpu_device)
        return false;
    /* a recording (program.h) must see the op: x may depend on a latent
     * without needing a gradient (a comparison's result) */
    if (bk_prog_recording(x->ctx)) return false;
    double u = ((const double *)x->st->data)[x->offset], v = ((const double *)y->st->data)[y->offset];
    switch (op) {
    case AST_OP_ADD: *w = u + v; return true;
    case AST_OP_SUB: *w = u - v; return true;
    case AST_OP_MUL: *w = u * v; return true;
    case AST_OP_DIV: *w = u / v; return true;
    case AST_OP_LT: *w = u < v; return true;
    case AST_OP_LE: *w = u <= v; return true;
    case AST_OP_GT: *w = u > v; return true;
    case AST_OP_GE: *w = u >= v; return true;
    case AST_OP_EQ: *w = u == v; return true;
    case AST_OP_NE: *w = u != v; return true;
    default: return false;
    }
}

/* A variable's or constant's tensor, borrowed (no reference taken), or NULL. */
static bk_tensor *peek_tensor(rt_vm *vm, const frame *F, const ir_node *n) {
    const rt_value *v = n->op == IR_CONST ? &n->k
                      : n->op == IR_LOCAL ? &F->slots[n->slot]
                      : n->op == IR_GLOBAL ? &vm->gvals[n->slot] : NULL;
    return v && v->tag == RT_TENSOR ? v->u.t : NULL;
}

static int binop_values(rt_vm *vm, int op, rt_value a, rt_value b, rt_loc loc, rt_value *out) {
    if (a.tag == RT_STR && b.tag == RT_STR) {
        if (op == AST_OP_ADD) return str_concat(vm, a, b, out, loc);
        if (op == AST_OP_EQ || op == AST_OP_NE) {
            int eq = strcmp(((rt_str *)a.u.o)->s, ((rt_str *)b.u.o)->s) == 0;
            bk_tensor *t = bk_scalar(vm->bk, (op == AST_OP_EQ) == eq);
            if (!t) return oom(vm, loc);
            *out = rt_tensor(t);
            return 0;
        }
    }
    if (a.tag != RT_TENSOR || b.tag != RT_TENSOR) {
        if (op == AST_OP_EQ || op == AST_OP_NE) {
            /* different kinds of values are never equal */
            bk_tensor *t = bk_scalar(vm->bk, op == AST_OP_NE);
            if (!t) return oom(vm, loc);
            *out = rt_tensor(t);
            return 0;
        }
        if ((a.tag == RT_STR || b.tag == RT_STR) && op == AST_OP_ADD)
            return rt_error_loc(vm, loc, "cannot add a %s and a %s; convert numbers with str()",
                                rt_type_name(a), rt_type_name(b));
        return rt_error_loc(vm, loc, "operator %s is not defined for a %s and a %s",
                            op_symbol(op), rt_type_name(a), rt_type_name(b));
    }
    bk_ctx *c = vm->bk;
    bk_tensor *x = a.u.t, *y = b.u.t, *r = NULL;
    /* Scalar fast path: plain numbers that no gradient flows through skip
     * the general op machinery (this is most of a scalar loop's work). */
    double w;
    if (scalar_binop(op, x, y, &w)) {
        /* reuse an operand nobody else holds (a temporary) for the result */
        if (x->refcount == 1 && x->st->refcount == 1 && !x->grad) r = bk_retain(x);
        else if (y->refcount == 1 && y->st->refcount == 1 && !y->grad) r = bk_retain(y);
        else r = bk_scalar(c, w);
        if (!r) return oom(vm, loc);
        *bk_data(r) = w;
        *out = rt_tensor(r);
        return 0;
    }
    switch (op) {
    case AST_OP_ADD: r = bk_add(c, x, y); break;
    case AST_OP_SUB: r = bk_sub(c, x, y); break;
    case AST_OP_MUL: r = bk_mul(c, x, y); break;
    case AST_OP_DIV: r = bk_div(c, x, y); break;
    case AST_OP_POW: r = bk_pow(c, x, y); break;
    case AST_OP_MATMUL: r = bk_matmul(c, x, y); break;
    case AST_OP_MOD: {
        /* Python's modulo: a - floor(a / b) * b (sign of b) */
        bk_tensor *q = bk_div(c, x, y);
        bk_tensor *f = q ? bk_unop(c, BK_OP_FLOOR, q) : NULL;
        bk_tensor *m = f ? bk_mul(c, f, y) : NULL;
        r = m ? bk_sub(c, x, m) : NULL;
        bk_release(q);
        bk_release(f);
        bk_release(m);
        break;
    }
    case AST_OP_LT: r = bk_binop(c, BK_OP_LT, x, y); break;
    case AST_OP_LE: r = bk_binop(c, BK_OP_LE, x, y); break;
    case AST_OP_GT: r = bk_binop(c, BK_OP_GT, x, y); break;
    case AST_OP_GE: r = bk_binop(c, BK_OP_GE, x, y); break;
    case AST_OP_EQ: r = bk_binop(c, BK_OP_EQ, x, y); break;
    case AST_OP_NE: r = bk_binop(c, BK_OP_NE, x, y); break;
    default: return rt_error_loc(vm, loc, "unknown operator");
    }
    if (!r) {
        if (op == AST_OP_MATMUL) return rt_error_loc(vm, loc, "%s", bk_errmsg(c));
        return rt_error_loc(vm, loc, "%s (operator %s)", bk_errmsg(c), op_symbol(op));
    }
    *out = rt_tensor(r);
    return 0;
}

/* -------------------------------------------------------------- indexing --- */

static void free_specs(bk_idx *spec, int n) {
    for (int i = 0; i < n; i++)
        if (spec[i].kind == BK_IDX_TENSOR) bk_release(spec[i].idx);
}

/* Evaluate index items against a tensor of shape `shape` into specs. */
static int eval_index_specs(rt_vm *vm, frame *F, ir_node *const *items, int nitems,
                            const bk_tensor *t, bk_idx *spec, rt_loc loc) {
    if (nitems > t->ndim)
        return rt_error_loc(vm, loc, "too many indices: a tensor of %d dimension%s indexed with %d",
                            t->ndim, t->ndim == 1 ? "" : "s", nitems);
    if (nitems > BK_MAXDIM) return rt_error_loc(vm, loc, "too many indices");
    for (int d = 0; d < nitems; d++) {
        const ir_node *it = items[d];
        int64_t size = t->shape[d];
        memset(&spec[d], 0, sizeof spec[d]);
        if (it->op == IR_SLICE) {
            int64_t v[3] = {0, size, 1};
            bool given[3] = {false, false, false};
            for (int k = 0; k < 3; k++) {
                if (!it->kids[k]) continue;
                rt_value x;
                if (eval(vm, F, it->kids[k], &x)) goto fail;
                int rc = to_int(vm, x, it->kids[k]->loc, "a slice bound", &v[k]);
                rt_release(x);
                if (rc) goto fail;
                given[k] = true;
            }
            if (v[2] == 0) {
                rt_error_loc(vm, it->loc, "slice step cannot be zero");
                goto fail;
            }
            /* Python slice normalization */
            int64_t lo = v[2] > 0 ? 0 : -1, hi = v[2] > 0 ? size : size - 1;
            int64_t st = given[0] ? v[0] : (v[2] > 0 ? 0 : size - 1);
            int64_t sp = given[1] ? v[1] : (v[2] > 0 ? size : -size - 1);
            if (given[0]) { if (st < 0) st += size; st = st < lo ? lo : st > hi ? hi : st; }
            if (given[1]) { if (sp < 0) sp += size; sp = sp < lo ? lo : sp > hi ? hi : sp; }
            else if (v[2] < 0) sp = -1;
            spec[d].kind = BK_IDX_SLICE;
            spec[d].start = st;
            spec[d].stop = sp;
            spec[d].step = v[2];
            continue;
        }
        rt_value x;
        if (eval(vm, F, it, &x)) goto fail;
        if (x.tag == RT_TENSOR && x.u.t->ndim > 0) {
            spec[d].kind = BK_IDX_TENSOR;
            spec[d].idx = x.u.t; /* reference handed to the spec */
            continue;
        }
        int64_t i;
        int rc = to_int(vm, x, it->loc, "an index", &i);
        rt_release(x);
        if (rc) goto fail;
        if (i < -size || i >= size) {
            rt_error_loc(vm, it->loc, "index %lld is out of bounds for axis %d with size %lld",
                         (long long)i, d, (long long)size);
            goto fail;
        }
        spec[d].kind = BK_IDX_INT;
        spec[d].start = i < 0 ? i + size : i;
        continue;
    fail:
        free_specs(spec, d);
        return -1;
    }
    return 0;
}

__attribute__((noinline)) static int index_value(rt_vm *vm, frame *F, const ir_node *n, rt_value obj, rt_value *out) {
    int nitems = n->nkids - 1;
    ir_node *const *items = n->kids + 1;
    if (obj.tag == RT_LIST || obj.tag == RT_STR) {
        if (nitems != 1 || items[0]->op == IR_SLICE)
            return rt_error_loc(vm, n->loc, "a %s takes one integer index", rt_type_name(obj));
        rt_value x;
        if (eval(vm, F, items[0], &x)) return -1;
        int64_t i;
        int rc = to_int(vm, x, items[0]->loc, "an index", &i);
        rt_release(x);
        if (rc) return -1;
        int64_t len = obj.tag == RT_LIST ? ((rt_list *)obj.u.o)->n : (int64_t)((rt_str *)obj.u.o)->len;
        if (i < -len || i >= len)
            return rt_error_loc(vm, items[0]->loc, "index %lld is out of bounds for a %s of length %lld",
                                (long long)i, rt_type_name(obj), (long long)len);
        if (i < 0) i += len;
        if (obj.tag == RT_LIST) {
            *out = rt_retain(((rt_list *)obj.u.o)->items[i]);
        } else {
            rt_str *s = rt_str_new(((rt_str *)obj.u.o)->s + i, 1);
            if (!s) return oom(vm, n->loc);
            *out = rt_obj_value(&s->h);
        }
        return 0;
    }
    if (obj.tag == RT_RECORD) {
        rt_value k;
        if (nitems != 1 || eval(vm, F, items[0], &k)) return nitems != 1 ? rt_error_loc(vm, n->loc, "a record takes one string index") : -1;
        if (k.tag != RT_STR) {
            rt_release(k);
            return rt_error_loc(vm, items[0]->loc, "a record is indexed by a field name string");
        }
        rt_value *v = rt_record_get((rt_record *)obj.u.o, ((rt_str *)k.u.o)->s);
        if (!v) {
            rt_error_loc(vm, items[0]->loc, "record has no field \"%s\"", ((rt_str *)k.u.o)->s);
            rt_release(k);
            return -1;
        }
        rt_release(k);
        *out = rt_retain(*v);
        return 0;
    }
    if (obj.tag != RT_TENSOR) return rt_error_loc(vm, n->loc, "a %s cannot be indexed", rt_type_name(obj));
    bk_idx spec[BK_MAXDIM];
    if (eval_index_specs(vm, F, items, nitems, obj.u.t, spec, n->loc)) return -1;
    bk_tensor *r = bk_index(vm->bk, obj.u.t, nitems, spec);
    free_specs(spec, nitems);
    if (!r) return rt_fail_bk(vm, n->loc);
    *out = rt_tensor(r);
    return 0;
}

/* ----------------------------------------------------------------- calls --- */

static int call_func(rt_vm *vm, rt_func *f, int nargs, rt_value *args, int nkw,
                     const char **kwnames, rt_value *kwargs, rt_loc loc, rt_value *out);

int rt_call_value(rt_vm *vm, rt_value fn, int nargs, rt_value *args, int nkw, const char **kwnames,
                  rt_value *kwargs, rt_loc loc, rt_value *out) {
    *out = rt_none();
    if (fn.tag == RT_FUNC)
        return call_func(vm, (rt_func *)fn.u.o, nargs, args, nkw, kwnames, kwargs, loc, out);
    if (fn.tag == RT_BUILTIN) {
        rt_builtin *b = (rt_builtin *)fn.u.o;
        rt_loc argloc[64], kwloc[64];
        for (int i = 0; i < nargs && i < 64; i++) argloc[i] = loc;
        for (int i = 0; i < nkw && i < 64; i++) kwloc[i] = loc;
        rt_call call = {nargs, args, argloc, nkw, kwnames, kwargs, kwloc, loc, b->name, b->self};
        return b->fn(vm, &call, out);
    }
    return rt_error_loc(vm, loc, "a %s cannot be called", rt_type_name(fn));
}

static int call_func(rt_vm *vm, rt_func *f, int nargs, rt_value *args, int nkw,
                     const char **kwnames, rt_value *kwargs, rt_loc loc, rt_value *out) {
    *out = rt_none();
    if (nargs > f->nparams)
        return rt_error_loc(vm, loc, "%s takes %d argument%s, got %d", f->name, f->nparams,
                            f->nparams == 1 ? "" : "s", nargs);
    if (vm->depth >= vm->max_depth)
        return rt_fail(vm, ERR_LIMIT, loc, "recursion is too deep (the limit is %d nested calls)",
                       vm->max_depth);
    if (check_interrupt(vm, loc)) return -1;
    frame F = {0};
    F.fn = f;
    F.nslots = f->nslots;
    F.slots = calloc(f->nslots ? f->nslots : 1, sizeof *F.slots);
    if (!F.slots) return oom(vm, loc);
    int rc = 0;
    for (int i = 0; i < nargs; i++) F.slots[i] = rt_retain(args[i]);
    for (int k = 0; k < nkw && rc == 0; k++) {
        int p = -1;
        for (int i = 0; i < f->nparams; i++)
            if (strcmp(f->pnames[i], kwnames[k]) == 0) p = i;
        if (p < 0) {
            const char *s = rt_did_you_mean(kwnames[k], (const char *const *)f->pnames, f->nparams);
            rc = s ? rt_error_loc(vm, loc, "%s has no parameter \"%s\" (did you mean \"%s\"?)", f->name, kwnames[k], s)
                   : rt_error_loc(vm, loc, "%s has no parameter \"%s\"", f->name, kwnames[k]);
        } else if (F.slots[p].tag != RT_NONE || p < nargs) {
            rc = rt_error_loc(vm, loc, "%s got argument \"%s\" twice", f->name, kwnames[k]);
        } else {
            F.slots[p] = rt_retain(kwargs[k]);
        }
    }
    const rt_source *saved_src = vm->cur_src;
    for (int i = 0; i < f->nparams && rc == 0; i++) {
        if (F.slots[i].tag != RT_NONE || i < nargs) continue;
        if (!f->defaults[i]) {
            rc = rt_error_loc(vm, loc, "%s: missing argument \"%s\"", f->name, f->pnames[i]);
            break;
        }
        vm->cur_src = f->src;
        rc = eval(vm, NULL, f->defaults[i], &F.slots[i]);
        vm->cur_src = saved_src;
    }
    if (rc == 0) {
        vm->depth++;
        vm->cur_src = f->src;
        int c = exec(vm, &F, f->body);
        vm->cur_src = saved_src;
        vm->depth--;
        if (c == CTL_ERROR) rc = -1;
        else if (c == CTL_RETURN) {
            *out = F.ret;
            F.ret = rt_none();
        }
    }
    for (int i = 0; i < F.nslots; i++) rt_release(F.slots[i]);
    rt_release(F.ret);
    free(F.slots);
    return rc;
}

int rt_call_with_data(rt_vm *vm, rt_func *f, const rt_record *data, rt_loc loc, rt_value *out) {
    rt_value args[64];
    *out = rt_none();
    int n = f->nparams;
    if (n > 64) return rt_error_loc(vm, loc, "%s has too many parameters", f->name);
    int k = 0;
    for (; k < n; k++) {
        rt_value *v = data ? rt_record_get(data, f->pnames[k]) : NULL;
        if (!v) break;
        args[k] = *v;
    }
    /* Remaining parameters: keyword if present later, else defaults. */
    const char *kwn[64];
    rt_value kwv[64];
    int nkw = 0;
    for (int i = k; i < n; i++) {
        rt_value *v = data ? rt_record_get(data, f->pnames[i]) : NULL;
        if (v) {
            kwn[nkw] = f->pnames[i];
            kwv[nkw++] = *v;
        } else if (!f->defaults[i]) {
            return rt_error_loc(vm, loc, "%s %s needs argument \"%s\", which the data does not have",
                                f->role == AST_ROLE_MODEL ? "model" : f->role == AST_ROLE_GUIDE ? "guide" : "function",
                                f->name, f->pnames[i]);
        }
    }
    return call_func(vm, f, k, args, nkw, kwn, kwv, loc, out);
}

__attribute__((noinline)) static int eval_call(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    int nargs = n->nkids - 1;
    rt_value fn;
    if (eval(vm, F, n->kids[0], &fn)) return -1;
    rt_value args[64], kwargs[64];
    const char *kwnames[64];
    rt_loc argloc[64], kwloc[64];
    int np = 0, nk = 0, rc = 0;
    if (nargs > 64) {
        rt_release(fn);
        return rt_error_loc(vm, n->loc, "too many arguments (the limit is 64)");
    }
    for (int i = 0; i < nargs; i++) {
        rt_value v;
        if (eval(vm, F, n->kids[i + 1], &v)) {
            rc = -1;
            break;
        }
        const char *kw = i < n->nnames ? n->names[i] : NULL;
        if (kw) {
            kwnames[nk] = kw;
            kwloc[nk] = n->kids[i + 1]->loc;
            kwargs[nk++] = v;
        } else {
            if (nk) {
                rt_release(v);
                rc = rt_error_loc(vm, n->kids[i + 1]->loc, "a positional argument cannot follow a keyword argument");
                break;
            }
            argloc[np] = n->kids[i + 1]->loc;
            args[np++] = v;
        }
    }
    if (rc == 0) {
        *out = rt_none();
        if (fn.tag == RT_FUNC) {
            rc = call_func(vm, (rt_func *)fn.u.o, np, args, nk, kwnames, kwargs, n->loc, out);
        } else if (fn.tag == RT_BUILTIN) {
            rt_builtin *b = (rt_builtin *)fn.u.o;
            rt_call call = {np, args, argloc, nk, kwnames, kwargs, kwloc, n->loc, b->name, b->self};
            rc = b->fn(vm, &call, out);
        } else {
            rc = rt_error_loc(vm, n->kids[0]->loc, "a %s cannot be called", rt_type_name(fn));
        }
    }
    for (int i = 0; i < np; i++) rt_release(args[i]);
    for (int i = 0; i < nk; i++) rt_release(kwargs[i]);
    rt_release(fn);
    return rc;
}

/* ------------------------------------------------------- random choices --- */

/* "x[3]" or "x[1, 2]" from a base name and evaluated index items. */
static char *indexed_name(rt_vm *vm, frame *F, const char *base, ir_node *const *items, int n,
                          rt_loc loc) {
    char buf[512];
    size_t len = (size_t)snprintf(buf, sizeof buf, "%s[", base);
    for (int i = 0; i < n; i++) {
        rt_value v;
        if (items[i]->op == IR_SLICE) {
            rt_error_loc(vm, items[i]->loc, "a site name cannot contain a slice");
            return NULL;
        }
        if (eval(vm, F, items[i], &v)) return NULL;
        if (v.tag == RT_TENSOR && v.u.t->ndim > 0) {
            /* a vectorized site (y[idx] in a plate) is named after y alone */
            rt_release(v);
            return strdup(base);
        }
        int64_t k = 0;
        int rc = to_int(vm, v, items[i]->loc, "an index in a site name", &k);
        rt_release(v);
        if (rc) return NULL;
        if (len < sizeof buf)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lld", i ? ", " : "", (long long)k);
    }
    if (len < sizeof buf) snprintf(buf + len, sizeof buf - len, "]");
    return strdup(buf);
}

static char *site_name(rt_vm *vm, frame *F, const ir_node *name_expr, rt_loc loc) {
    rt_value v;
    if (eval(vm, F, name_expr, &v)) return NULL;
    if (v.tag != RT_STR) {
        rt_error_loc(vm, name_expr->loc, "a site name must be a string, got a %s", rt_type_name(v));
        rt_release(v);
        return NULL;
    }
    char *s = strdup(((rt_str *)v.u.o)->s);
    rt_release(v);
    if (!s) oom(vm, loc);
    return s;
}

static int eval_dist(rt_vm *vm, frame *F, const ir_node *n, const char *site, sl_dist **out) {
    const char *saved = vm->cur_site;
    vm->cur_site = site;
    rt_value d;
    int rc = eval(vm, F, n, &d);
    vm->cur_site = saved;
    if (rc) return -1;
    if (d.tag != RT_DIST) {
        rt_error_loc(vm, n->loc, "expected a distribution for site \"%s\", got a %s", site, rt_type_name(d));
        rt_release(d);
        return -1;
    }
    *out = (sl_dist *)d.u.o;
    return 0;
}

static int eval_constraint(rt_vm *vm, frame *F, const ir_constraint *ic, sl_constraint *c) {
    memset(c, 0, sizeof *c);
    c->kind = ic->kind;
    rt_value v;
    if (ic->lo) {
        if (eval(vm, F, ic->lo, &v)) return -1;
        if (rt_to_tensor(vm, v, ic->lo->loc, &c->lo)) {
            rt_release(v);
            return -1;
        }
        rt_release(v);
    }
    if (ic->hi) {
        if (eval(vm, F, ic->hi, &v)) goto fail;
        if (rt_to_tensor(vm, v, ic->hi->loc, &c->hi)) {
            rt_release(v);
            goto fail;
        }
        rt_release(v);
    }
    return 0;
fail:
    sl_constraint_clear(c);
    return -1;
}

static void msg_init(rt_vm *vm, rt_msg *m, int kind, const char *name, rt_loc loc) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->name = name;
    m->scale = 1.0;
    m->loc = loc;
    m->nplates = vm->nplates;
    for (int i = 0; i < vm->nplates; i++) {
        m->plates[i] = vm->plates[i];
        if (vm->plates[i].sub != vm->plates[i].size)
            m->scale *= (double)vm->plates[i].size / (double)vm->plates[i].sub;
    }
}

/* Expand a distribution's batch shape over the enclosing plates. */
static sl_dist *dist_over_plates(rt_vm *vm, sl_dist *d, rt_loc loc) {
    if (vm->nplates == 0) {
        d->h.refcount++;
        return d;
    }
    int nb = d->nbatch;
    int64_t shape[BK_MAXDIM];
    int need = 0;
    for (int i = 0; i < vm->nplates; i++)
        if (-vm->plates[i].dim > need) need = -vm->plates[i].dim;
    int n = nb > need ? nb : need;
    if (n > BK_MAXDIM) {
        rt_error_loc(vm, loc, "too many batch dimensions");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int bi = i - (n - nb);
        shape[i] = bi >= 0 ? d->batch[bi] : 1;
    }
    for (int i = 0; i < vm->nplates; i++) {
        int pos = n + vm->plates[i].dim;
        int64_t want = vm->plates[i].sub;
        if (shape[pos] != 1 && shape[pos] != want) {
            char bs[128];
            size_t k = 0;
            k += snprintf(bs + k, sizeof bs - k, "[");
            for (int j = 0; j < nb && k < sizeof bs; j++)
                k += snprintf(bs + k, sizeof bs - k, "%s%lld", j ? ", " : "", (long long)d->batch[j]);
            if (k < sizeof bs) snprintf(bs + k, sizeof bs - k, "]");
            rt_error_loc(vm, loc, "batch shape %s does not fit plate \"%s\" of size %lld at dim %d",
                         bs, vm->plates[i].name, (long long)want, vm->plates[i].dim);
            return NULL;
        }
        shape[pos] = want;
    }
    sl_dist *e = sl_expand(vm->bk, d, n, shape);
    if (!e) rt_fail_bk(vm, loc);
    return e;
}

__attribute__((noinline)) static int eval_sample(rt_vm *vm, frame *F, const ir_node *n, const ir_target *tgt, rt_value *out) {
    char *name = n->kids[0] ? site_name(vm, F, n->kids[0], n->loc)
                            : indexed_name(vm, F, tgt->name, tgt->idx, tgt->nidx, n->loc);
    if (!name) return -1;
    sl_dist *d0 = NULL, *d = NULL;
    sl_constraint c = {0};
    int rc = -1;
    if (eval_dist(vm, F, n->kids[1], name, &d0)) goto done;
    if (!(d = dist_over_plates(vm, d0, n->loc))) goto done;
    if (n->ctr && eval_constraint(vm, F, n->ctr, &c)) goto done;
    rt_msg m;
    msg_init(vm, &m, RT_SITE_SAMPLE, name, n->loc);
    m.dist = d;
    m.constraint = n->ctr ? &c : NULL;
    if (rt_apply_message(vm, &m)) goto done;
    *out = rt_tensor(m.value);
    rc = 0;
done:
    if (d0) rt_release(rt_obj_value(&d0->h));
    if (d) rt_release(rt_obj_value(&d->h));
    sl_constraint_clear(&c);
    free(name);
    return rc;
}

__attribute__((noinline)) static int eval_observe(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    const ir_node *vexpr = n->kids[2];
    char *name;
    if (n->kids[0]) name = site_name(vm, F, n->kids[0], n->loc);
    else name = indexed_name(vm, F, n->str, vexpr->kids + 1, vexpr->nkids - 1, n->loc);
    if (!name) return -1;
    sl_dist *d0 = NULL, *d = NULL;
    rt_value v = rt_none();
    int rc = -1;
    if (eval(vm, F, vexpr, &v)) goto done;
    if (v.tag != RT_TENSOR) {
        rt_error_loc(vm, vexpr->loc, "observed value of site \"%s\" must be a number or tensor, got a %s",
                     name, rt_type_name(v));
        goto done;
    }
    if (eval_dist(vm, F, n->kids[1], name, &d0)) goto done;
    if (!(d = dist_over_plates(vm, d0, n->loc))) goto done;
    rt_msg m;
    msg_init(vm, &m, RT_SITE_OBSERVE, name, n->loc);
    m.dist = d;
    m.value = bk_retain(v.u.t);
    m.observed = true;
    m.done = true;
    if (rt_apply_message(vm, &m)) goto done;
    *out = rt_tensor(m.value);
    rc = 0;
done:
    rt_release(v);
    if (d0) rt_release(rt_obj_value(&d0->h));
    if (d) rt_release(rt_obj_value(&d->h));
    free(name);
    return rc;
}

__attribute__((noinline)) static int eval_param(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    char *name = site_name(vm, F, n->kids[0], n->loc);
    if (!name) return -1;
    int rc = -1;
    sl_constraint c = {0};
    rt_value init = rt_none();
    rt_msg m;
    msg_init(vm, &m, RT_SITE_PARAM, name, n->loc);
    m.scale = 1.0;
    m.nplates = 0;
    if (n->ctr && eval_constraint(vm, F, n->ctr, &c)) goto done;
    m.constraint = &c;
    rt_param *p = rt_param_find(vm, name);
    if (!p) {
        /* the initial value is evaluated only when the parameter is created */
        bk_tensor *t = NULL;
        if (eval(vm, F, n->kids[1], &init)) goto done;
        if (rt_to_tensor(vm, init, n->kids[1]->loc, &t)) goto done;
        bool g = bk_set_grad_enabled(vm->bk, false);
        p = rt_param_create(vm, name, t, &c, n->kids[1]->loc);
        bk_set_grad_enabled(vm->bk, g);
        bk_release(t);
        if (!p) goto done;
    }
    if (rt_apply_message(vm, &m)) goto done;
    *out = rt_tensor(m.value);
    rc = 0;
done:
    rt_release(init);
    sl_constraint_clear(&c);
    free(name);
    return rc;
}

__attribute__((noinline)) static int eval_det_factor(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    char *name = site_name(vm, F, n->kids[0], n->loc);
    if (!name) return -1;
    rt_value v;
    int rc = -1;
    if (eval(vm, F, n->kids[1], &v)) goto done;
    if (v.tag != RT_TENSOR) {
        rt_error_loc(vm, n->kids[1]->loc, "%s site \"%s\" needs a number or tensor, got a %s",
                     n->op == IR_FACTOR ? "factor" : "deterministic", name, rt_type_name(v));
        rt_release(v);
        goto done;
    }
    rt_msg m;
    msg_init(vm, &m, n->op == IR_FACTOR ? RT_SITE_FACTOR : RT_SITE_DETERMINISTIC, name, n->loc);
    m.value = v.u.t;
    m.done = true;
    if (rt_apply_message(vm, &m)) goto done;
    *out = rt_tensor(m.value);
    rc = 0;
done:
    free(name);
    return rc;
}

/* ------------------------------------------------------------ evaluation --- */

__attribute__((noinline)) static int eval_list(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    int k = n->nkids;
    rt_value *vals = calloc(k ? k : 1, sizeof *vals);
    if (!vals) return oom(vm, n->loc);
    int rc = 0, ntensor = 0;
    for (int i = 0; i < k && rc == 0; i++) {
        rc = eval(vm, F, n->kids[i], &vals[i]);
        if (rc == 0 && vals[i].tag == RT_TENSOR) ntensor++;
    }
    if (rc == 0 && k > 0 && ntensor == k) {
        /* numbers and tensors of one shape stack into a tensor (differentiably) */
        bk_tensor *ts[k];
        for (int i = 0; i < k; i++) {
            ts[i] = vals[i].u.t;
            if (!bk_same_shape(ts[i], ts[0])) {
                char a[64], b[64];
                rc = rt_error_loc(vm, n->kids[i]->loc, "list elements have different shapes: %s and %s",
                                  bk_shape_str(ts[0], a, sizeof a), bk_shape_str(ts[i], b, sizeof b));
                break;
            }
        }
        if (rc == 0) {
            bk_tensor *t = bk_place_nd(vm->bk, bk_stack(vm->bk, k, ts, 0));
            if (!t) rc = rt_fail_bk(vm, n->loc);
            else *out = rt_tensor(t);
        }
    } else if (rc == 0 && k == 0) {
        bk_tensor *t = bk_zeros(vm->bk, BK_F64, 1, (int64_t[]){0});
        if (!t) rc = oom(vm, n->loc);
        else *out = rt_tensor(t);
    } else if (rc == 0) {
        rt_list *l = rt_list_new();
        if (!l) rc = oom(vm, n->loc);
        for (int i = 0; i < k && rc == 0; i++) {
            rc = rt_list_push(l, vals[i]) ? oom(vm, n->loc) : 0;
            vals[i] = rt_none();
        }
        if (rc == 0) *out = rt_obj_value(&l->h);
        else if (l) rt_release(rt_obj_value(&l->h));
    }
    for (int i = 0; i < k; i++) rt_release(vals[i]);
    free(vals);
    return rc;
}

__attribute__((noinline)) static int eval_field(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    rt_value obj;
    if (eval(vm, F, n->kids[0], &obj)) return -1;
    int rc = 0;
    if (obj.tag == RT_RECORD) {
        rt_value *v = rt_record_get((rt_record *)obj.u.o, n->str);
        if (!v) {
            rt_record *r = (rt_record *)obj.u.o;
            const char *s = rt_did_you_mean(n->str, (const char *const *)r->keys, r->n);
            rc = s ? rt_error_loc(vm, n->loc, "record has no field \"%s\" (did you mean \"%s\"?)", n->str, s)
                   : rt_error_loc(vm, n->loc, "record has no field \"%s\"", n->str);
        } else {
            *out = rt_retain(*v);
        }
    } else if (obj.tag == RT_DIST) {
        rc = sl_dist_getattr(vm, (sl_dist *)obj.u.o, n->str, n->loc, out);
    } else if (obj.tag == RT_OPAQUE && ((rt_opaque *)obj.u.o)->getattr) {
        rt_opaque *o = (rt_opaque *)obj.u.o;
        rc = o->getattr(vm, o->data, n->str, n->loc, out);
    } else if (obj.tag == RT_TENSOR && strcmp(n->str, "shape") == 0) {
        bk_tensor *t = obj.u.t;
        double sh[BK_MAXDIM];
        for (int i = 0; i < t->ndim; i++) sh[i] = (double)t->shape[i];
        bk_tensor *r = bk_from_f64(vm->bk, 1, (int64_t[]){t->ndim}, sh);
        if (!r) rc = oom(vm, n->loc);
        else *out = rt_tensor(r);
    } else if (obj.tag == RT_TENSOR && strcmp(n->str, "T") == 0) {
        bk_tensor *t = obj.u.t;
        bk_tensor *r = t->ndim < 2 ? bk_retain(t) : bk_transpose(vm->bk, t, -1, -2);
        if (!r) rc = rt_fail_bk(vm, n->loc);
        else *out = rt_tensor(r);
    } else {
        rc = rt_error_loc(vm, n->loc, "a %s has no field \"%s\"", rt_type_name(obj), n->str);
    }
    rt_release(obj);
    return rc;
}

static int eval(rt_vm *vm, frame *F, const ir_node *n, rt_value *out) {
    *out = rt_none();
    switch (n->op) {
    case IR_CONST: *out = rt_retain(n->k); return 0;
    case IR_LOCAL:
        if (F->slots[n->slot].tag == RT_NONE && n->slot >= (F->fn ? F->fn->nparams : 0))
            return rt_error_loc(vm, n->loc, "\"%s\" is used before it is assigned", n->str);
        *out = rt_retain(F->slots[n->slot]);
        return 0;
    case IR_GLOBAL: {
        rt_value v = vm->gvals[n->slot];
        if (v.tag == RT_NONE)
            return rt_error_loc(vm, n->loc, "\"%s\" is used before it is assigned", n->str);
        *out = rt_retain(v);
        return 0;
    }
    case IR_LIST: return eval_list(vm, F, n, out);
    case IR_RECORD: {
        rt_record *r = rt_record_new();
        if (!r) return oom(vm, n->loc);
        for (int i = 0; i < n->nkids; i++) {
            rt_value v;
            if (eval(vm, F, n->kids[i], &v) || rt_record_set(r, n->names[i], v)) {
                rt_release(rt_obj_value(&r->h));
                return -1;
            }
        }
        *out = rt_obj_value(&r->h);
        return 0;
    }
    case IR_FIELD: return eval_field(vm, F, n, out);
    case IR_INDEX: {
        rt_value obj;
        if (eval(vm, F, n->kids[0], &obj)) return -1;
        int rc = index_value(vm, F, n, obj, out);
        rt_release(obj);
        return rc;
    }
    case IR_CALL: return eval_call(vm, F, n, out);
    case IR_BINOP: {
        /* both operands plain numbers held by variables or constants: no
         * evaluation calls and no reference traffic */
        bk_tensor *pa = peek_tensor(vm, F, n->kids[0]), *pb = pa ? peek_tensor(vm, F, n->kids[1]) : NULL;
        double w;
        if (pb && scalar_binop(n->aux, pa, pb, &w)) {
            bk_tensor *r = bk_scalar(vm->bk, w);
            if (!r) return oom(vm, n->loc);
            *out = rt_tensor(r);
            return 0;
        }
        rt_value a, b;
        if (eval(vm, F, n->kids[0], &a)) return -1;
        if (eval(vm, F, n->kids[1], &b)) {
            rt_release(a);
            return -1;
        }
        int rc = binop_values(vm, n->aux, a, b, n->loc, out);
        rt_release(a);
        rt_release(b);
        return rc;
    }
    case IR_UNOP: {
        rt_value a;
        if (eval(vm, F, n->kids[0], &a)) return -1;
        int rc = 0;
        if (n->aux == AST_OP_NOT) {
            int err;
            bool t = rt_truthy(vm, a, n->loc, &err);
            if (err) rc = -1;
            else {
                bk_tensor *r = bk_scalar(vm->bk, !t);
                if (!r) rc = oom(vm, n->loc);
                else *out = rt_tensor(r);
            }
        } else if (a.tag != RT_TENSOR) {
            rc = rt_error_loc(vm, n->loc, "unary %s is not defined for a %s", op_symbol(n->aux), rt_type_name(a));
        } else if (n->aux == AST_OP_POS) {
            *out = rt_retain(a);
        } else {
            bk_tensor *r = bk_unop(vm->bk, BK_OP_NEG, a.u.t);
            if (!r) rc = rt_fail_bk(vm, n->loc);
            else *out = rt_tensor(r);
        }
        rt_release(a);
        return rc;
    }
    case IR_AND:
    case IR_OR: {
        rt_value a;
        if (eval(vm, F, n->kids[0], &a)) return -1;
        int err;
        bool t = rt_truthy(vm, a, n->kids[0]->loc, &err);
        if (err) {
            rt_release(a);
            return -1;
        }
        if ((n->op == IR_AND && !t) || (n->op == IR_OR && t)) {
            *out = a;
            return 0;
        }
        rt_release(a);
        return eval(vm, F, n->kids[1], out);
    }
    case IR_SAMPLE: return eval_sample(vm, F, n, NULL, out);
    case IR_OBSERVE: return eval_observe(vm, F, n, out);
    case IR_PARAM: return eval_param(vm, F, n, out);
    case IR_DETERMINISTIC:
    case IR_FACTOR: return eval_det_factor(vm, F, n, out);
    default: return rt_error_loc(vm, n->loc, "internal error: not an expression");
    }
}

/* ------------------------------------------------------------ statements --- */

static rt_value *slot_ref(rt_vm *vm, frame *F, int scope, int slot) {
    return scope == IR_LOCAL ? &F->slots[slot] : &vm->gvals[slot];
}

static int assign(rt_vm *vm, frame *F, const ir_target *t, rt_value v, rt_loc loc) {
    rt_value *dst = slot_ref(vm, F, t->scope, t->slot);
    if (t->field) {
        if (dst->tag != RT_RECORD) {
            rt_release(v);
            return rt_error_loc(vm, loc, "cannot set field \"%s\" of a %s", t->field, rt_type_name(*dst));
        }
        /* records are values: copy on write when shared */
        rt_record *r = (rt_record *)dst->u.o;
        if (r->h.refcount > 1) {
            rt_record *c = rt_record_new();
            if (!c) {
                rt_release(v);
                return oom(vm, loc);
            }
            for (int i = 0; i < r->n; i++) rt_record_set(c, r->keys[i], rt_retain(r->vals[i]));
            rt_release(*dst);
            *dst = rt_obj_value(&c->h);
            r = c;
        }
        return rt_record_set(r, t->field, v) ? oom(vm, loc) : 0;
    }
    if (t->nidx) {
        if (dst->tag != RT_TENSOR) {
            rt_release(v);
            return rt_error_loc(vm, loc, "cannot assign an element of a %s", rt_type_name(*dst));
        }
        if (v.tag != RT_TENSOR) {
            rt_error_loc(vm, loc, "cannot store a %s in a tensor element", rt_type_name(v));
            rt_release(v);
            return -1;
        }
        bk_idx spec[BK_MAXDIM];
        if (eval_index_specs(vm, F, t->idx, t->nidx, dst->u.t, spec, loc)) {
            rt_release(v);
            return -1;
        }
        bk_tensor *r = bk_index_put(vm->bk, dst->u.t, t->nidx, spec, v.u.t);
        free_specs(spec, t->nidx);
        rt_release(v);
        if (!r) return rt_fail_bk(vm, loc);
        rt_release(*dst);
        *dst = rt_tensor(r);
        return 0;
    }
    rt_release(*dst);
    *dst = v;
    return 0;
}

__attribute__((noinline)) static int exec_plate(rt_vm *vm, frame *F, const ir_node *n) {
    rt_value sz, sub = rt_none();
    int64_t size, b;
    if (eval(vm, F, n->kids[0], &sz)) return CTL_ERROR;
    int rc = to_int(vm, sz, n->kids[0]->loc, "a plate size", &size);
    rt_release(sz);
    if (rc) return CTL_ERROR;
    b = size;
    if (n->kids[1]) {
        if (eval(vm, F, n->kids[1], &sub)) return CTL_ERROR;
        rc = to_int(vm, sub, n->kids[1]->loc, "a subsample size", &b);
        rt_release(sub);
        if (rc) return CTL_ERROR;
    }
    /* checked unless a handler (the epoch driver) sizes the minibatch */
    int64_t want = b;
    bool bad = n->kids[1] && (b < 1 || b > size);
    if (bad) b = size < 1 ? size : b < 1 ? 1 : size;
    if (size < 0) return rt_error_loc(vm, n->kids[0]->loc, "plate size must be >= 0, got %lld", (long long)size);
    if (vm->nplates >= RT_MAXPLATES) return rt_error_loc(vm, n->loc, "plates are nested too deeply");
    /* The subsample indices are a site of their own so that replay gives
     * the model the guide's minibatch. */
    rt_msg m;
    msg_init(vm, &m, RT_SITE_PLATE, n->str, n->loc);
    m.nplates = 0;
    m.scale = 1.0;
    m.subsampled = n->kids[1] != NULL;
    if (rt_apply_message_plate(vm, &m, size, b)) return CTL_ERROR;
    if (bad && !m.sized) {
        bk_release(m.value);
        return rt_error_loc(vm, n->kids[1]->loc, "subsample size must be between 1 and %lld, got %lld",
                            (long long)size, (long long)want);
    }
    rt_plate *p = &vm->plates[vm->nplates];
    p->name = n->str;
    p->size = size;
    p->sub = m.plate_sub; /* b, or the epoch driver's minibatch size */
    p->dim = -1 - vm->nplates;
    p->idx = m.value;
    vm->nplates++;
    int c = CTL_NORMAL;
    if (n->slot >= 0) c = assign(vm, F, &(ir_target){.scope = n->aux, .slot = n->slot}, rt_tensor(bk_retain(m.value)), n->loc) ? CTL_ERROR : CTL_NORMAL;
    if (c == CTL_NORMAL) c = exec(vm, F, n->kids[2]);
    vm->nplates--;
    bk_release(p->idx);
    p->idx = NULL;
    return c;
}

__attribute__((noinline)) static int exec_for(rt_vm *vm, frame *F, const ir_node *n) {
    const ir_node *it = n->kids[0];
    ir_target tv = {.scope = n->aux, .slot = n->slot};
    long limit = vm->max_loop;
    if (it->aux == 1) {
        /* for i in range(a[, b[, step]]): plain numbers */
        double v[3] = {0, 0, 1};
        int na = it->nkids - 1;
        if (na < 1 || na > 3) return rt_error_loc(vm, it->loc, "range takes 1 to 3 arguments, got %d", na);
        for (int i = 0; i < na; i++) {
            rt_value x;
            if (eval(vm, F, it->kids[i + 1], &x)) return CTL_ERROR;
            int64_t k;
            int rc = to_int(vm, x, it->kids[i + 1]->loc, "a range bound", &k);
            rt_release(x);
            if (rc) return CTL_ERROR;
            v[na == 1 ? 1 : i] = (double)k;
        }
        if (v[2] == 0) return rt_error_loc(vm, it->loc, "range step cannot be zero");
        long count = 0;
        for (double i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            if (++count > limit)
                return rt_fail(vm, ERR_LIMIT, n->loc, "loop ran more than %ld iterations (the limit)", limit);
            if ((count & 1023) == 0 && check_interrupt(vm, n->loc)) return CTL_ERROR;
            rt_value *cur = slot_ref(vm, F, tv.scope, tv.slot);
            if (cur->tag == RT_TENSOR && cur->u.t->refcount == 1 && cur->u.t->st->refcount == 1 &&
                cur->u.t->ndim == 0 && cur->u.t->dtype == BK_F64 && !cur->u.t->requires_grad) {
                /* the loop variable is held only here: update it in place */
                *bk_data(cur->u.t) = i;
            } else {
                bk_tensor *t = bk_scalar(vm->bk, i);
                if (!t) return oom(vm, n->loc);
                if (assign(vm, F, &tv, rt_tensor(t), n->loc)) return CTL_ERROR;
            }
            int c = exec(vm, F, n->kids[1]);
            if (c == CTL_BREAK) break;
            if (c == CTL_ERROR || c == CTL_RETURN) return c;
        }
        return CTL_NORMAL;
    }
    rt_value coll;
    if (eval(vm, F, it, &coll)) return CTL_ERROR;
    int64_t len = 0;
    if (coll.tag == RT_TENSOR) {
        if (coll.u.t->ndim == 0) {
            rt_release(coll);
            return rt_error_loc(vm, it->loc, "cannot iterate over a scalar; use range(n)");
        }
        len = coll.u.t->shape[0];
    } else if (coll.tag == RT_LIST) {
        len = ((rt_list *)coll.u.o)->n;
    } else {
        rt_error_loc(vm, it->loc, "cannot iterate over a %s", rt_type_name(coll));
        rt_release(coll);
        return CTL_ERROR;
    }
    int c = CTL_NORMAL;
    for (int64_t i = 0; i < len; i++) {
        if ((i & 1023) == 1023 && check_interrupt(vm, n->loc)) {
            c = CTL_ERROR;
            break;
        }
        rt_value item;
        if (coll.tag == RT_LIST) {
            item = rt_retain(((rt_list *)coll.u.o)->items[i]);
        } else {
            bk_idx spec = {.kind = BK_IDX_INT, .start = i};
            bk_tensor *t = bk_index(vm->bk, coll.u.t, 1, &spec);
            if (!t) {
                c = rt_fail_bk(vm, it->loc);
                break;
            }
            item = rt_tensor(t);
        }
        if (assign(vm, F, &tv, item, n->loc)) {
            c = CTL_ERROR;
            break;
        }
        c = exec(vm, F, n->kids[1]);
        if (c == CTL_BREAK) {
            c = CTL_NORMAL;
            break;
        }
        if (c == CTL_CONTINUE) c = CTL_NORMAL;
        if (c != CTL_NORMAL) break;
    }
    rt_release(coll);
    return c;
}

static int exec(rt_vm *vm, frame *F, const ir_node *n) {
    if (!n) return CTL_NORMAL;
    switch (n->op) {
    case IR_BLOCK:
        for (int i = 0; i < n->nkids; i++) {
            int c = exec(vm, F, n->kids[i]);
            if (c != CTL_NORMAL) return c;
        }
        return CTL_NORMAL;
    case IR_EXPR: {
        rt_value v;
        if (eval(vm, F, n->kids[0], &v)) return CTL_ERROR;
        rt_release(v);
        return CTL_NORMAL;
    }
    case IR_ASSIGN: {
        rt_value v;
        if (eval(vm, F, n->kids[0], &v)) return CTL_ERROR;
        return assign(vm, F, &n->tgt, v, n->loc) ? CTL_ERROR : CTL_NORMAL;
    }
    case IR_BIND: {
        rt_value v;
        const ir_node *c = n->kids[0];
        int rc = c->op == IR_SAMPLE ? eval_sample(vm, F, c, &n->tgt, &v) : eval(vm, F, c, &v);
        if (rc) return CTL_ERROR;
        return assign(vm, F, &n->tgt, v, n->loc) ? CTL_ERROR : CTL_NORMAL;
    }
    case IR_PLATE: return exec_plate(vm, F, n);
    case IR_IF: {
        rt_value v;
        if (eval(vm, F, n->kids[0], &v)) return CTL_ERROR;
        int err;
        bool t = rt_truthy(vm, v, n->kids[0]->loc, &err);
        rt_release(v);
        if (err) return CTL_ERROR;
        return exec(vm, F, t ? n->kids[1] : n->kids[2]);
    }
    case IR_FOR: return exec_for(vm, F, n);
    case IR_WHILE: {
        long count = 0;
        for (;;) {
            if (++count > vm->max_loop)
                return rt_fail(vm, ERR_LIMIT, n->loc, "loop ran more than %ld iterations (the limit)", vm->max_loop);
            if ((count & 1023) == 0 && check_interrupt(vm, n->loc)) return CTL_ERROR;
            rt_value v;
            if (eval(vm, F, n->kids[0], &v)) return CTL_ERROR;
            int err;
            bool t = rt_truthy(vm, v, n->kids[0]->loc, &err);
            rt_release(v);
            if (err) return CTL_ERROR;
            if (!t) return CTL_NORMAL;
            int c = exec(vm, F, n->kids[1]);
            if (c == CTL_BREAK) return CTL_NORMAL;
            if (c == CTL_ERROR || c == CTL_RETURN) return c;
        }
    }
    case IR_RETURN:
        if (n->kids[0] && eval(vm, F, n->kids[0], &F->ret)) return CTL_ERROR;
        return CTL_RETURN;
    case IR_BREAK: return CTL_BREAK;
    case IR_CONTINUE: return CTL_CONTINUE;
    case IR_DEF:
        rt_release(vm->gvals[n->slot]);
        vm->gvals[n->slot] = rt_retain(rt_obj_value(&n->fn->h));
        return CTL_NORMAL;
    default: {
        rt_value v;
        if (eval(vm, F, n, &v)) return CTL_ERROR;
        rt_release(v);
        return CTL_NORMAL;
    }
    }
}

/* True when the expression calls one of the script-level actions that a
 * definitions-only load skips (inference runs, output). */
static bool calls_action(const rt_vm *vm, const ir_node *n) {
    static const char *const actions[] = {"svi", "mcmc", "trace", "summary", "print", "write_json",
                                          "write_stan_csv", NULL};
    if (!n) return false;
    if (n->op == IR_CALL && n->kids[0] && n->kids[0]->op == IR_GLOBAL)
        for (const char *const *a = actions; *a; a++)
            if (strcmp(vm->gnames[n->kids[0]->slot], *a) == 0) return true;
    for (int i = 0; i < n->nkids; i++)
        if (calls_action(vm, n->kids[i])) return true;
    return false;
}

/* True when the expression reads a global that skipped[] marks. */
static bool reads_skipped(const ir_node *n, const bool *skipped) {
    if (!n) return false;
    if (n->op == IR_GLOBAL && skipped[n->slot]) return true;
    for (int i = 0; i < n->nkids; i++)
        if (reads_skipped(n->kids[i], skipped)) return true;
    return false;
}

/* A definitions-only load (ppl sample / svi FILE): definitions and data
 * assignments run; script actions do not, nor does an assignment that
 * reads what a skipped one would have assigned (`pz = mean(post.z)` after
 * `post = mcmc(...)`), which is then skipped in turn. */
static int exec_definitions(rt_vm *vm, frame *top, const ir_unit *u) {
    bool *skipped = calloc((size_t)(vm->nglobals > 0 ? vm->nglobals : 1), sizeof *skipped);
    if (!skipped) {
        oom(vm, u->body->loc);
        return CTL_ERROR;
    }
    int c = CTL_NORMAL;
    for (int i = 0; i < u->body->nkids && c == CTL_NORMAL; i++) {
        const ir_node *st = u->body->kids[i];
        if (st->op == IR_DEF) {
            c = exec(vm, top, st);
            continue;
        }
        if (st->op != IR_ASSIGN) continue;
        const ir_target *t = &st->tgt;
        bool skip = calls_action(vm, st->kids[0]) || reads_skipped(st->kids[0], skipped);
        for (int k = 0; k < t->nidx && !skip; k++) skip = reads_skipped(t->idx[k], skipped);
        if (t->scope == IR_GLOBAL && (t->nidx || t->field) && skipped[t->slot]) skip = true;
        if (!skip) c = exec(vm, top, st);
        else if (t->scope == IR_GLOBAL) skipped[t->slot] = true;
    }
    free(skipped);
    return c;
}

int rt_exec_unit(rt_vm *vm, ir_unit *u, rt_value *echo) {
    frame top = {0};
    const rt_source *saved = vm->cur_src;
    vm->cur_src = u->src;
    int c = CTL_NORMAL;
    if (echo) *echo = rt_none();
    if (vm->defs_only) {
        c = exec_definitions(vm, &top, u);
    } else if (u->echo && echo) {
        c = eval(vm, &top, u->body->kids[0]->kids[0], echo) ? CTL_ERROR : CTL_NORMAL;
    } else {
        c = exec(vm, &top, u->body);
    }
    vm->cur_src = saved;
    rt_release(top.ret);
    return c == CTL_ERROR ? -1 : 0;
}
