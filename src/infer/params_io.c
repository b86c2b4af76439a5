/* params_io.c - save_params(path) / load_params(path): the parameter store
 * as JSON, written atomically (file.tmp, then rename).  Values are stored
 * unconstrained, with 17 significant digits, so a loaded store continues
 * exactly where the saved one stopped:
 *   {"params": {"loc": {"constraint": "real", "shape": [], "unconstrained": 17.4}, ...}}
 * Bounds of interval / greater_than / less_than constraints are stored as
 * "lo" / "hi". */
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "data_io.h"

static rt_record *param_entry(rt_vm *vm, const rt_param *p) {
    rt_record *e = rt_record_new();
    if (!e) return NULL;
    const char *cn = sl_constraint_name(p->c.kind);
    rt_str *s = rt_str_new(cn, strlen(cn));
    double shp[BK_MAXDIM];
    for (int d = 0; d < p->ndim; d++) shp[d] = (double)p->shape[d];
    bk_tensor *shape = bk_from_f64(vm->bk, 1, (int64_t[]){p->ndim}, shp);
    bk_tensor *u = bk_detach(vm->bk, p->u);
    int bad = !s || !shape || !u;
    bad |= s ? rt_record_set(e, "constraint", rt_obj_value(&s->h)) : 0;
    bad |= shape ? rt_record_set(e, "shape", rt_tensor(shape)) : 0;
    bad |= u ? rt_record_set(e, "unconstrained", rt_tensor(u)) : 0;
    if (p->c.lo) bad |= rt_record_set(e, "lo", rt_tensor(bk_detach(vm->bk, p->c.lo)));
    if (p->c.hi) bad |= rt_record_set(e, "hi", rt_tensor(bk_detach(vm->bk, p->c.hi)));
    if (bad) {
        rt_release(rt_obj_value(&e->h));
        return NULL;
    }
    return e;
}

static int b_save_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    rt_record *all = rt_record_new(), *top = rt_record_new();
    int rc = (all && top) ? 0 : rt_error(vm, c, "out of memory");
    for (int i = 0; i < vm->params.n && rc == 0; i++) {
        rt_record *e = param_entry(vm, &vm->params.items[i]);
        if (!e || rt_record_set(all, vm->params.items[i].name, rt_obj_value(&e->h))) rc = rt_error(vm, c, "out of memory");
    }
    char *text = NULL;
    if (rc == 0) {
        rt_record_set(top, "params", rt_obj_value(&all->h));
        all = NULL;
        text = rt_to_json(vm->bk, rt_obj_value(&top->h));
        if (!text) rc = rt_error(vm, c, "out of memory");
    }
    if (rc == 0) {
        char err[512];
        if (rt_write_file_atomic(path, text, strlen(text), err, sizeof err)) rc = rt_fail(vm, 4, c->loc, "%s", err);
    }
    free(text);
    if (all) rt_release(rt_obj_value(&all->h));
    if (top) rt_release(rt_obj_value(&top->h));
    *out = rt_none();
    return rc;
}

/* One saved parameter back into the store (created or overwritten). */
static int restore(rt_vm *vm, const rt_call *c, const char *path, const char *name, rt_value v) {
    rt_record *e = v.tag == RT_RECORD ? (rt_record *)v.u.o : NULL;
    rt_value *cn = e ? rt_record_get(e, "constraint") : NULL;
    rt_value *u = e ? rt_record_get(e, "unconstrained") : NULL;
    rt_value *shape = e ? rt_record_get(e, "shape") : NULL;
    int n = 0;
    int kind = cn && cn->tag == RT_STR ? sl_constraint_lookup(((rt_str *)cn->u.o)->s, &n) : -1;
    if (kind < 0 || !u || u->tag != RT_TENSOR || !shape || shape->tag != RT_TENSOR || shape->u.t->numel > BK_MAXDIM)
        return rt_error(vm, c, "load_params: %s: parameter \"%s\" is malformed", path, name);
    sl_constraint con = {.kind = kind};
    rt_value *lo = rt_record_get(e, "lo"), *hi = rt_record_get(e, "hi");
    if (lo && lo->tag == RT_TENSOR) con.lo = bk_retain(lo->u.t);
    if (hi && hi->tag == RT_TENSOR) con.hi = bk_retain(hi->u.t);
    int ndim = (int)shape->u.t->numel;
    int64_t shp[BK_MAXDIM];
    for (int d = 0; d < ndim; d++) shp[d] = (int64_t)bk_get(shape->u.t, d);
    bool g = bk_set_grad_enabled(vm->bk, false);
    bk_tensor *x = sl_to_constrained(vm->bk, &con, u->u.t, ndim, shp, NULL);
    bk_set_grad_enabled(vm->bk, g);
    int rc = 0;
    if (!x) {
        rc = rt_error(vm, c, "load_params: %s: parameter \"%s\": %s", path, name, bk_errmsg(vm->bk));
    } else {
        rt_param *p = rt_param_find(vm, name);
        if (p && p->u->numel == u->u.t->numel) {
            bk_copy_out(u->u.t, bk_data(p->u)); /* keep the leaf the optimizer knows */
        } else {
            if (p) rc = rt_error(vm, c, "load_params: parameter \"%s\" exists with another shape", name);
            else if (!rt_param_create(vm, name, x, &con, c->loc)) rc = -1;
        }
        bk_release(x);
    }
    sl_constraint_clear(&con);
    return rc;
}

static int b_load_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    rt_value v;
    if (rt_load_json(vm, path, c->loc, &v)) return -1;
    rt_value *ps = v.tag == RT_RECORD ? rt_record_get((rt_record *)v.u.o, "params") : NULL;
    int rc = 0;
    if (!ps || ps->tag != RT_RECORD) {
        rc = rt_error(vm, c, "load_params: %s has no \"params\" object (write it with save_params)", path);
    } else {
        rt_record *r = (rt_record *)ps->u.o;
        for (int i = 0; i < r->n && rc == 0; i++) rc = restore(vm, c, path, r->keys[i], r->vals[i]);
    }
    rt_release(v);
    *out = rt_none();
    return rc;
}

static int b_clear_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    rt_params_clear(vm);
    *out = rt_none();
    return 0;
}

const rt_builtin_def inf_params_builtins[] = {
    {"save_params", b_save_params},
    {"load_params", b_load_params},
    {"clear_params", b_clear_params},
    {NULL, NULL},
};
