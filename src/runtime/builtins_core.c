/* builtins_core.c - language built-ins that are not math: print, str, len,
 * and trace(model, data, seed=) which runs a model once under the trace
 * handler and returns the trace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"

static int b_print(rt_vm *vm, const rt_call *c, rt_value *out) {
    for (int i = 0; i < c->nargs; i++) {
        char *s = rt_value_repr(vm->bk, c->args[i]);
        if (!s) return rt_error(vm, c, "out of memory");
        if (i) rt_vm_write(vm, " ", 1);
        rt_vm_write(vm, s, strlen(s));
        free(s);
    }
    rt_vm_write(vm, "\n", 1);
    *out = rt_none();
    return 0;
}

static int b_str(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 1, NULL)) return -1;
    if (c->nargs != 1) return rt_error(vm, c, "str takes 1 argument, got %d", c->nargs);
    char *s = rt_value_repr(vm->bk, c->args[0]);
    if (!s) return rt_error(vm, c, "out of memory");
    rt_str *r = rt_str_new(s, strlen(s));
    free(s);
    if (!r) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&r->h);
    return 0;
}

static int b_len(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 1, NULL)) return -1;
    if (c->nargs != 1) return rt_error(vm, c, "len takes 1 argument, got %d", c->nargs);
    rt_value v = c->args[0];
    double n;
    switch (v.tag) {
    case RT_TENSOR:
        if (v.u.t->ndim == 0) return rt_error_arg(vm, c, 0, "len of a scalar is undefined");
        n = (double)v.u.t->shape[0];
        break;
    case RT_STR: n = (double)((rt_str *)v.u.o)->len; break;
    case RT_LIST: n = ((rt_list *)v.u.o)->n; break;
    case RT_RECORD: n = ((rt_record *)v.u.o)->n; break;
    default: return rt_error_arg(vm, c, 0, "a %s has no length", rt_type_name(v));
    }
    bk_tensor *t = bk_scalar(vm->bk, n);
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

/* ---------------------------------------------------------------- trace --- */

typedef struct trace_obj {
    rt_trace tr;
} trace_obj;

static void trace_obj_free(void *p) {
    trace_obj *t = p;
    rt_trace_clear(&t->tr);
    free(t);
}

static char *trace_repr(bk_ctx *ctx, void *p) {
    trace_obj *t = p;
    size_t cap = 256, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    n += (size_t)snprintf(s, cap, "%-16s %-13s %-10s %-22s %s\n", "site", "kind", "shape", "value", "log_prob");
    for (int i = 0; i < t->tr.n; i++) {
        const rt_site *st = &t->tr.sites[i];
        char shape[64], val[96], lp[40];
        bk_shape_str(st->value, shape, sizeof shape);
        if (st->value->numel == 1) {
            rt_format_number(bk_item(st->value), val, sizeof val);
        } else {
            char a[32], b[32];
            rt_format_number(bk_get(st->value, 0), a, sizeof a);
            rt_format_number(bk_get(st->value, st->value->numel - 1), b, sizeof b);
            snprintf(val, sizeof val, "[%s .. %s]", a, b);
        }
        if (st->log_prob) rt_format_number(bk_item(st->log_prob), lp, sizeof lp);
        else snprintf(lp, sizeof lp, "-");
        char line[256];
        int k = snprintf(line, sizeof line, "%-16s %-13s %-10s %-22s %s\n", st->name,
                         rt_site_kind_name(st->kind), shape, val, lp);
        if (k < 0) continue;
        if (n + (size_t)k + 1 > cap) {
            cap = (n + k + 1) * 2;
            char *q = realloc(s, cap);
            if (!q) {
                free(s);
                return NULL;
            }
            s = q;
        }
        memcpy(s + n, line, (size_t)k + 1);
        n += (size_t)k;
    }
    if (n && s[n - 1] == '\n') s[n - 1] = 0; /* print() adds the newline */
    return s;
}

/* tr.log_prob: total log joint; tr.sites: {name: {kind, value, log_prob}};
 * tr.NAME: the value of site NAME. */
static int trace_getattr(rt_vm *vm, void *p, const char *name, rt_loc loc, rt_value *out) {
    trace_obj *t = p;
    if (strcmp(name, "log_prob") == 0) {
        bk_tensor *lp = rt_trace_log_prob_sum(vm, &t->tr, ~0u);
        if (!lp) return rt_fail_bk(vm, loc);
        *out = rt_tensor(lp);
        return 0;
    }
    if (strcmp(name, "sites") == 0) {
        rt_record *r = rt_record_new();
        if (!r) return rt_fail(vm, 5, loc, "out of memory");
        for (int i = 0; i < t->tr.n; i++) {
            const rt_site *s = &t->tr.sites[i];
            rt_record *e = rt_record_new();
            rt_str *k = rt_str_new(rt_site_kind_name(s->kind), strlen(rt_site_kind_name(s->kind)));
            if (!e || !k) {
                if (e) rt_release(rt_obj_value(&e->h));
                if (k) rt_release(rt_obj_value(&k->h));
                rt_release(rt_obj_value(&r->h));
                return rt_fail(vm, 5, loc, "out of memory");
            }
            rt_record_set(e, "kind", rt_obj_value(&k->h));
            rt_record_set(e, "value", rt_tensor(bk_retain(s->value)));
            if (s->log_prob) rt_record_set(e, "log_prob", rt_tensor(bk_retain(s->log_prob)));
            rt_record_set(r, s->name, rt_obj_value(&e->h));
        }
        *out = rt_obj_value(&r->h);
        return 0;
    }
    rt_site *s = rt_trace_find(&t->tr, name);
    if (!s) return rt_error_loc(vm, loc, "trace has no site \"%s\"", name);
    *out = rt_tensor(bk_retain(s->value));
    return 0;
}

static int b_trace(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"model", "data", "seed", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const rt_value *m = rt_arg(c, 0, "model");
    const rt_value *d = rt_arg(c, 1, "data");
    double seed;
    if (!m || m->tag != RT_FUNC) return rt_error_arg(vm, c, 0, "trace: the first argument must be a model");
    if (d && d->tag != RT_RECORD && d->tag != RT_NONE)
        return rt_error_arg(vm, c, 1, "trace: data must be a record, got a %s", rt_type_name(*d));
    if (rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed)) return -1;
    trace_obj *t = calloc(1, sizeof *t);
    if (!t) return rt_error(vm, c, "out of memory");
    rt_handler ht, hs;
    rt_seed_state ss;
    rt_handler_trace(&ht, &t->tr);
    rt_handler_seed(&hs, &ss, (uint64_t)seed);
    if (rt_push_handler(vm, &hs)) {
        trace_obj_free(t);
        return rt_error(vm, c, "out of memory");
    }
    if (rt_push_handler(vm, &ht)) {
        rt_pop_handler(vm, &hs);
        trace_obj_free(t);
        return rt_error(vm, c, "out of memory");
    }
    rt_value ret;
    int rc = rt_call_with_data(vm, (rt_func *)m->u.o, d && d->tag == RT_RECORD ? (rt_record *)d->u.o : NULL,
                               c->loc, &ret);
    rt_pop_handler(vm, &ht);
    rt_pop_handler(vm, &hs);
    if (rc) {
        trace_obj_free(t);
        return -1;
    }
    rt_release(ret);
    rt_opaque *o = rt_opaque_new("trace", t, trace_obj_free);
    if (!o) {
        trace_obj_free(t);
        return rt_error(vm, c, "out of memory");
    }
    o->repr = trace_repr;
    o->getattr = trace_getattr;
    *out = rt_obj_value(&o->h);
    return 0;
}

/* ---------------------------------------------------------- constraints --- */

/* Constraints as values (ImproperUniform(support=positive), ...): an opaque
 * "constraint" holding an sl_constraint. */
static void constraint_free(void *p) {
    sl_constraint_clear(p);
    free(p);
}

static char *constraint_repr(bk_ctx *ctx, void *p) {
    (void)ctx;
    const char *n = sl_constraint_name(((sl_constraint *)p)->kind);
    char *s = malloc(strlen(n) + 16);
    if (s) sprintf(s, "<constraint %s>", n);
    return s;
}

static rt_value constraint_value(int kind, bk_tensor *lo, bk_tensor *hi) {
    sl_constraint *c = calloc(1, sizeof *c);
    rt_opaque *o = c ? rt_opaque_new("constraint", c, constraint_free) : NULL;
    if (!o) {
        free(c);
        return rt_none();
    }
    c->kind = kind;
    c->lo = bk_retain(lo);
    c->hi = bk_retain(hi);
    o->repr = constraint_repr;
    return rt_obj_value(&o->h);
}

int rt_register_constraints(rt_vm *vm) {
    for (int k = 0; k < SL_C_COUNT; k++) {
        int nargs = 0;
        sl_constraint_lookup(sl_constraint_name(k), &nargs);
        if (nargs != 0) continue; /* interval(...) etc. are functions */
        rt_value v = constraint_value(k, NULL, NULL);
        if (v.tag == RT_NONE || rt_global_set(vm, sl_constraint_name(k), v)) return -1;
    }
    return 0;
}

/* interval(a, b), greater_than(a), less_than(b) as values */
static int b_bounded(rt_vm *vm, const rt_call *c, rt_value *out) {
    int nargs = 0, kind = sl_constraint_lookup(c->name, &nargs);
    if (rt_check_args(vm, c, nargs, NULL)) return -1;
    if (c->nargs != nargs) return rt_error(vm, c, "%s takes %d argument%s, got %d", c->name, nargs, nargs == 1 ? "" : "s", c->nargs);
    bk_tensor *a, *b = NULL;
    if (rt_arg_tensor(vm, c, 0, NULL, true, &a) || (nargs == 2 && rt_arg_tensor(vm, c, 1, NULL, true, &b))) return -1;
    bk_tensor *lo = kind == SL_C_LESS_THAN ? NULL : a, *hi = kind == SL_C_LESS_THAN ? a : b;
    *out = constraint_value(kind, lo, hi);
    return out->tag == RT_NONE ? rt_error(vm, c, "out of memory") : 0;
}

const rt_builtin_def rt_core_builtins[] = {
    {"interval", b_bounded},
    {"greater_than", b_bounded},
    {"less_than", b_bounded},
    {"print", b_print},
    {"str", b_str},
    {"len", b_len},
    {"trace", b_trace},
    {NULL, NULL},
};
