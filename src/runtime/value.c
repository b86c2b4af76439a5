/* value.c - runtime values: strings, records, lists, opaque objects, their
 * reference counting and printed form, and the argument helpers built-ins
 * use. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "strbuf.h"
#include "transform.h"

/* ------------------------------------------------------ ref counting --- */

rt_value rt_retain(rt_value v) {
    if (v.tag == RT_TENSOR) bk_retain(v.u.t);
    else if (v.tag != RT_NONE && v.u.o) v.u.o->refcount++;
    return v;
}

void rt_release(rt_value v) {
    if (v.tag == RT_TENSOR) {
        bk_release(v.u.t);
    } else if (v.tag != RT_NONE && v.u.o) {
        if (--v.u.o->refcount == 0) v.u.o->free(v.u.o);
    }
}

const char *rt_type_name(rt_value v) {
    switch (v.tag) {
    case RT_NONE: return "none";
    case RT_TENSOR: return "tensor";
    case RT_STR: return "string";
    case RT_RECORD: return "record";
    case RT_LIST: return "list";
    case RT_FUNC: return "function";
    case RT_BUILTIN: return "built-in function";
    case RT_DIST: return "distribution";
    case RT_OPAQUE: return ((rt_opaque *)v.u.o)->type;
    }
    return "value";
}

/* --------------------------------------------------------------- objects --- */

static void str_free(rt_obj *o) { free(o); }

rt_str *rt_str_new(const char *s, size_t len) {
    rt_str *r = malloc(sizeof *r + len + 1);
    if (!r) return NULL;
    r->h.refcount = 1;
    r->h.tag = RT_STR;
    r->h.free = str_free;
    r->len = len;
    memcpy(r->s, s, len);
    r->s[len] = 0;
    return r;
}

static void record_free(rt_obj *o) {
    rt_record *r = (rt_record *)o;
    for (int i = 0; i < r->n; i++) {
        free(r->keys[i]);
        rt_release(r->vals[i]);
    }
    free(r->keys);
    free(r->vals);
    free(r);
}

rt_record *rt_record_new(void) {
    rt_record *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->h.refcount = 1;
    r->h.tag = RT_RECORD;
    r->h.free = record_free;
    return r;
}

rt_value *rt_record_get(const rt_record *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->keys[i], key) == 0) return &r->vals[i];
    return NULL;
}

int rt_record_set(rt_record *r, const char *key, rt_value v) {
    rt_value *old = rt_record_get(r, key);
    if (old) {
        rt_release(*old);
        *old = v;
        return 0;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 4;
        char **k = realloc(r->keys, cap * sizeof *k);
        if (!k) goto oom;
        r->keys = k;
        rt_value *vals = realloc(r->vals, cap * sizeof *vals);
        if (!vals) goto oom;
        r->vals = vals;
        r->cap = cap;
    }
    r->keys[r->n] = strdup(key);
    if (!r->keys[r->n]) goto oom;
    r->vals[r->n++] = v;
    return 0;
oom:
    rt_release(v);
    return -1;
}

static void list_free(rt_obj *o) {
    rt_list *l = (rt_list *)o;
    for (int i = 0; i < l->n; i++) rt_release(l->items[i]);
    free(l->items);
    free(l);
}

rt_list *rt_list_new(void) {
    rt_list *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->h.refcount = 1;
    l->h.tag = RT_LIST;
    l->h.free = list_free;
    return l;
}

int rt_list_push(rt_list *l, rt_value v) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        rt_value *it = realloc(l->items, cap * sizeof *it);
        if (!it) {
            rt_release(v);
            return -1;
        }
        l->items = it;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return 0;
}

static void opaque_free(rt_obj *o) {
    rt_opaque *p = (rt_opaque *)o;
    if (p->data_free) p->data_free(p->data);
    free(p);
}

rt_opaque *rt_opaque_new(const char *type, void *data, void (*data_free)(void *)) {
    rt_opaque *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->h.refcount = 1;
    p->h.tag = RT_OPAQUE;
    p->h.free = opaque_free;
    p->type = type;
    p->data = data;
    p->data_free = data_free;
    return p;
}

/* ------------------------------------------------------------- printing --- */

/* Shortest representation that reads back to the same double, as Python
 * prints floats; integers print without a decimal point. */
void rt_format_number(double x, char *buf, size_t n) {
    if (isnan(x)) { snprintf(buf, n, "nan"); return; }
    if (isinf(x)) { snprintf(buf, n, x > 0 ? "inf" : "-inf"); return; }
    if (x == floor(x) && fabs(x) < 1e16) { snprintf(buf, n, "%.0f", x); return; }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static void repr_tensor(rt_sb *b, const bk_tensor *t, int dim, int64_t *flat) {
    char num[40];
    if (dim == t->ndim) {
        rt_format_number(bk_get(t, (*flat)++), num, sizeof num);
        rt_sb_puts(b, num);
        return;
    }
    rt_sb_puts(b, "[");
    int64_t n = t->shape[dim];
    /* Long vectors are elided in the middle, as NumPy does. */
    int64_t inner = 1;
    for (int d = dim + 1; d < t->ndim; d++) inner *= t->shape[d];
    for (int64_t i = 0; i < n; i++) {
        if (n > 20 && i == 6) {
            rt_sb_puts(b, "..., ");
            *flat += (n - 12) * inner;
            i = n - 6;
        }
        if (i) rt_sb_puts(b, dim + 1 < t->ndim ? ",\n " : ", ");
        repr_tensor(b, t, dim + 1, flat);
    }
    rt_sb_puts(b, "]");
}

static void repr_value(rt_sb *b, bk_ctx *ctx, rt_value v, int depth);

/* The keyword a family prints parameter slot i with, or NULL (positional). */
static const char *slot_kw(const sl_family *fam, int i) {
    const char *const *kw = fam ? fam->repr_kw : NULL;
    for (int k = 0; kw && kw[k]; k++)
        if (k == i) return kw[k][0] ? kw[k] : NULL;
    return NULL;
}

static void repr_dist(rt_sb *b, bk_ctx *ctx, const sl_dist *d, int depth) {
    rt_sb_puts(b, d->fam ? d->fam->name : "Distribution");
    rt_sb_puts(b, "(");
    int sub_at = d->fam && d->sub[0] ? d->fam->repr_sub_at : 0;
    for (int i = 0; i <= d->np; i++) {
        if (sub_at > 0 && i == sub_at) { /* a component among the arguments */
            rt_sb_puts(b, ", ");
            if (depth < 20) repr_dist(b, ctx, d->sub[0], depth + 1);
            else rt_sb_puts(b, "...");
        }
        if (i == d->np) break;
        const char *kw = slot_kw(d->fam, i);
        if (kw && !d->p[i]) continue; /* a keyword not given */
        if (i) rt_sb_puts(b, ", ");
        if (kw) rt_sb_puts(b, kw);
        if (d->p[i]) repr_value(b, ctx, rt_tensor(d->p[i]), depth + 1);
    }
    /* families built from distributions (MixtureSameFamily, TransformedDistribution) */
    for (int i = 0; d->np == 0 && i < 2 && depth < 20; i++)
        if (d->sub[i]) {
            if (i) rt_sb_puts(b, ", ");
            repr_dist(b, ctx, d->sub[i], depth + 1);
        }
    if (d->tf) {
        const sl_transform *t = d->tf;
        rt_sb_puts(b, t->kind == SL_T_COMPOSE ? ", [" : ", ");
        for (int i = 0; t->kind == SL_T_COMPOSE && i < t->n; i++) {
            if (i) rt_sb_puts(b, ", ");
            rt_sb_puts(b, sl_transform_name(t->parts[i]));
        }
        rt_sb_puts(b, t->kind == SL_T_COMPOSE ? "]" : sl_transform_name(t));
    }
    rt_sb_puts(b, ")");
}

static void repr_value(rt_sb *b, bk_ctx *ctx, rt_value v, int depth) {
    if (depth > 20) {
        rt_sb_puts(b, "...");
        return;
    }
    switch (v.tag) {
    case RT_NONE: rt_sb_puts(b, "none"); break;
    case RT_TENSOR: {
        int64_t flat = 0;
        repr_tensor(b, v.u.t, 0, &flat);
        break;
    }
    case RT_STR: rt_sb_puts(b, ((rt_str *)v.u.o)->s); break;
    case RT_RECORD: {
        rt_record *r = (rt_record *)v.u.o;
        rt_sb_puts(b, "{");
        for (int i = 0; i < r->n; i++) {
            if (i) rt_sb_puts(b, ", ");
            rt_sb_puts(b, r->keys[i]);
            rt_sb_puts(b, ": ");
            if (r->vals[i].tag == RT_STR) rt_sb_puts(b, "\"");
            repr_value(b, ctx, r->vals[i], depth + 1);
            if (r->vals[i].tag == RT_STR) rt_sb_puts(b, "\"");
        }
        rt_sb_puts(b, "}");
        break;
    }
    case RT_LIST: {
        rt_list *l = (rt_list *)v.u.o;
        rt_sb_puts(b, "[");
        for (int i = 0; i < l->n; i++) {
            if (i) rt_sb_puts(b, ", ");
            if (l->items[i].tag == RT_STR) rt_sb_puts(b, "\"");
            repr_value(b, ctx, l->items[i], depth + 1);
            if (l->items[i].tag == RT_STR) rt_sb_puts(b, "\"");
        }
        rt_sb_puts(b, "]");
        break;
    }
    case RT_FUNC: {
        rt_func *f = (rt_func *)v.u.o;
        rt_sb_puts(b, f->role == AST_ROLE_MODEL ? "<model " : f->role == AST_ROLE_GUIDE ? "<guide " : "<function ");
        rt_sb_puts(b, f->name);
        rt_sb_puts(b, ">");
        break;
    }
    case RT_BUILTIN:
        /* a network (a built-in bound to a "module") prints as the module */
        if (((rt_builtin *)v.u.o)->self.tag == RT_OPAQUE &&
            strcmp(((rt_opaque *)((rt_builtin *)v.u.o)->self.u.o)->type, "module") == 0) {
            repr_value(b, ctx, ((rt_builtin *)v.u.o)->self, depth);
            break;
        }
        rt_sb_puts(b, "<built-in ");
        rt_sb_puts(b, ((rt_builtin *)v.u.o)->name);
        rt_sb_puts(b, ">");
        break;
    case RT_DIST: repr_dist(b, ctx, (const sl_dist *)v.u.o, depth); break;
    case RT_OPAQUE:
        if (((rt_opaque *)v.u.o)->repr) {
            char *r = ((rt_opaque *)v.u.o)->repr(ctx, ((rt_opaque *)v.u.o)->data);
            if (!r) {
                b->oom = 1;
                break;
            }
            rt_sb_puts(b, r);
            free(r);
            break;
        }
        rt_sb_puts(b, "<");
        rt_sb_puts(b, ((rt_opaque *)v.u.o)->type);
        rt_sb_puts(b, ">");
        break;
    }
}

char *rt_value_repr(bk_ctx *ctx, rt_value v) {
    rt_sb b = {0};
    repr_value(&b, ctx, v, 0);
    return rt_sb_finish(&b);
}

/* ------------------------------------------------------ argument helpers --- */

const rt_value *rt_arg(const rt_call *call, int pos, const char *name) {
    if (name)
        for (int i = 0; i < call->nkw; i++)
            if (strcmp(call->kwnames[i], name) == 0) return &call->kwargs[i];
    if (pos >= 0 && pos < call->nargs) return &call->args[pos];
    return NULL;
}

int rt_check_args(rt_vm *vm, const rt_call *call, int maxpos, const char *const *names) {
    if (call->nargs > maxpos)
        return rt_error_arg(vm, call, maxpos, "%s takes at most %d positional argument%s, got %d",
                            call->name, maxpos, maxpos == 1 ? "" : "s", call->nargs);
    for (int i = 0; i < call->nkw; i++) {
        int ok = 0, n = 0;
        for (const char *const *p = names; p && *p; p++, n++)
            if (strcmp(*p, call->kwnames[i]) == 0) ok = 1;
        if (!ok) {
            const char *hint = names ? rt_did_you_mean(call->kwnames[i], names, n) : NULL;
            if (hint)
                return rt_error_kw(vm, call, call->kwnames[i],
                                   "%s has no argument \"%s\" (did you mean \"%s\"?)",
                                   call->name, call->kwnames[i], hint);
            return rt_error_kw(vm, call, call->kwnames[i], "%s has no argument \"%s\"",
                               call->name, call->kwnames[i]);
        }
        /* a keyword that repeats a positional argument */
        for (int j = 0; j < n && j < call->nargs; j++)
            if (strcmp(names[j], call->kwnames[i]) == 0)
                return rt_error_kw(vm, call, call->kwnames[i],
                                   "%s got argument \"%s\" twice", call->name, names[j]);
    }
    return 0;
}

static int arg_index(const rt_call *call, int pos, const char *name, int *kw) {
    if (name)
        for (int i = 0; i < call->nkw; i++)
            if (strcmp(call->kwnames[i], name) == 0) {
                *kw = 1;
                return i;
            }
    *kw = 0;
    return pos >= 0 && pos < call->nargs ? pos : -1;
}

static int arg_error(rt_vm *vm, const rt_call *call, int pos, const char *name,
                     const char *what, const rt_value *v) {
    int kw;
    int i = arg_index(call, pos, name, &kw);
    const char *nm = name ? name : "argument";
    if (i < 0) return rt_error(vm, call, "%s: missing argument \"%s\"", call->name, nm);
    if (kw)
        return rt_error_kw(vm, call, name, "%s: %s must be %s, got a %s", call->name, nm, what,
                           rt_type_name(*v));
    return rt_error_arg(vm, call, i, "%s: %s must be %s, got a %s", call->name, nm, what,
                        rt_type_name(*v));
}

int rt_arg_number(rt_vm *vm, const rt_call *call, int pos, const char *name, double dflt,
                  bool required, double *out) {
    const rt_value *v = rt_arg(call, pos, name);
    if (!v) {
        if (required) return arg_error(vm, call, pos, name, "a number", NULL);
        *out = dflt;
        return 0;
    }
    if (v->tag != RT_TENSOR || v->u.t->numel != 1) {
        if (v->tag == RT_TENSOR) {
            int kw;
            int i = arg_index(call, pos, name, &kw);
            char sh[64];
            bk_shape_str(v->u.t, sh, sizeof sh);
            if (kw)
                return rt_error_kw(vm, call, name, "%s: %s must be a single number, got shape %s",
                                   call->name, name, sh);
            return rt_error_arg(vm, call, i, "%s: %s must be a single number, got shape %s",
                                call->name, name ? name : "argument", sh);
        }
        return arg_error(vm, call, pos, name, "a number", v);
    }
    *out = bk_item(v->u.t);
    return 0;
}

int rt_arg_tensor(rt_vm *vm, const rt_call *call, int pos, const char *name, bool required,
                  bk_tensor **out) {
    const rt_value *v = rt_arg(call, pos, name);
    *out = NULL;
    if (!v) {
        if (required) return arg_error(vm, call, pos, name, "a tensor", NULL);
        return 0;
    }
    if (v->tag != RT_TENSOR) return arg_error(vm, call, pos, name, "a number or tensor", v);
    *out = v->u.t;
    return 0;
}

int rt_arg_string(rt_vm *vm, const rt_call *call, int pos, const char *name, bool required,
                  const char **out) {
    const rt_value *v = rt_arg(call, pos, name);
    *out = NULL;
    if (!v) {
        if (required) return arg_error(vm, call, pos, name, "a string", NULL);
        return 0;
    }
    if (v->tag != RT_STR) return arg_error(vm, call, pos, name, "a string", v);
    *out = ((rt_str *)v->u.o)->s;
    return 0;
}

/* ---------------------------------------------------------------- errors --- */

static int verror(rt_vm *vm, rt_loc loc, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (vm->cur_site && !strstr(msg, "(site \"")) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, " (site \"%s\")", vm->cur_site);
    }
    rt_diaglist_free(&vm->errs);
    rt_diaglist_init(&vm->errs);
    rt_diag_add(&vm->errs, vm->cur_src, loc, "%s", msg);
    if (!vm->errcode) vm->errcode = 3; /* PPL_ERR_RUNTIME */
    return -1;
}

int rt_error_loc(rt_vm *vm, rt_loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(vm, loc, fmt, ap);
    va_end(ap);
    return -1;
}

int rt_error(rt_vm *vm, const rt_call *call, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(vm, call->loc, fmt, ap);
    va_end(ap);
    return -1;
}

int rt_error_arg(rt_vm *vm, const rt_call *call, int i, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rt_loc loc = (i >= 0 && i < call->nargs && call->argloc) ? call->argloc[i] : call->loc;
    verror(vm, loc, fmt, ap);
    va_end(ap);
    return -1;
}

int rt_error_kw(rt_vm *vm, const rt_call *call, const char *kw, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rt_loc loc = call->loc;
    for (int i = 0; i < call->nkw; i++)
        if (kw && strcmp(call->kwnames[i], kw) == 0 && call->kwloc) loc = call->kwloc[i];
    verror(vm, loc, fmt, ap);
    va_end(ap);
    return -1;
}

int rt_error_bk(rt_vm *vm, const rt_call *call) {
    return rt_error(vm, call, "%s: %s", call->name, bk_errmsg(vm->bk));
}

int rt_fail(rt_vm *vm, int code, rt_loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(vm, loc, fmt, ap);
    va_end(ap);
    vm->errcode = code;
    return -1;
}

int rt_fail_bk(rt_vm *vm, rt_loc loc) { return rt_error_loc(vm, loc, "%s", bk_errmsg(vm->bk)); }

bk_ctx *rt_vm_bk(rt_vm *vm) { return vm->bk; }
bk_rng *rt_vm_rng(rt_vm *vm) { return &vm->rng; }

int rt_place_value(bk_ctx *ctx, rt_value *v) {
    if (v->tag == RT_TENSOR) {
        bk_tensor *t = bk_place_nd(ctx, v->u.t);
        *v = t ? rt_tensor(t) : rt_none();
        return t ? 0 : -1;
    }
    if (v->tag == RT_RECORD) {
        rt_record *r = (rt_record *)v->u.o;
        for (int i = 0; i < r->n; i++)
            if (rt_place_value(ctx, &r->vals[i])) return -1;
    } else if (v->tag == RT_LIST) {
        rt_list *l = (rt_list *)v->u.o;
        for (int i = 0; i < l->n; i++)
            if (rt_place_value(ctx, &l->items[i])) return -1;
    }
    return 0;
}
