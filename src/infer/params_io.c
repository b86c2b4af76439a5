/* params_io.c - save_params(path) / load_params(path): the parameter store
 * and the state of the last SVI run as JSON, written atomically (file.tmp,
 * then rename).  Numbers are written with up to 17 significant digits (the
 * shortest text that reads back to the same double), so a loaded state
 * continues exactly where the saved one stopped:
 *   {"values": {"loc": 17.4, ...},                       constrained, to read
 *    "params": {"loc": {"constraint": "real", "shape": [], "unconstrained": 17.4}, ...},
 *    "optim": {"kind": "Adam", "t": 100,
 *              "slots": {"loc": {"t": 100, "m": [...], "v": [...]}, ...}},
 *              (a slot with float32 moments, Adam's on a float32 weight, says
 *              "dtype": "float32"; its numbers are exact as doubles and are
 *              read back to the same floats; without "dtype" a slot is double,
 *              as in every older file)
 *    "rng": {"key": [k0, k1], "ctr": [c0, c1, c2, c3], "buf": [...], "used": 4,
 *            "has_spare": 0, "spare": 0},
 *    "svi": {"steps": 100, "baseline": 0}}
 * "optim", "rng" and "svi" are present once svi(...) has run; they are what
 * svi(..., resume=true) and `ppl svi --resume` continue from.  Bounds of
 * interval / greater_than / less_than constraints are stored as "lo" / "hi". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "infer.h"
#include "data_io.h"

/* A 1-D tensor value of n doubles (RT_NONE on OOM). */
static rt_value vec(rt_vm *vm, int64_t n, const double *x) {
    bk_tensor *t = bk_from_f64(vm->bk, 1, &n, x);
    return t ? rt_tensor(t) : rt_none();
}

/* The same of n floats (each exact as a double). */
static rt_value vec32(rt_vm *vm, int64_t n, const float *x) {
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    if (!d) return rt_none();
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    rt_value v = vec(vm, n, d);
    free(d);
    return v;
}

static rt_value num(rt_vm *vm, double x) {
    bk_tensor *t = bk_scalar(vm->bk, x);
    return t ? rt_tensor(t) : rt_none();
}

/* set a field; a NONE value (failed constructor) counts as OOM */
static int put(rt_record *r, const char *k, rt_value v) {
    if (v.tag == RT_NONE) return -1;
    if (rt_record_set(r, k, v)) {
        rt_release(v);
        return -1;
    }
    return 0;
}

static rt_value rec_value(rt_record *r) { return r ? rt_obj_value(&r->h) : rt_none(); }

static rt_record *param_entry(rt_vm *vm, const rt_param *p) {
    rt_record *e = rt_record_new();
    if (!e) return NULL;
    const char *cn = sl_constraint_name(p->c.kind);
    rt_str *s = rt_str_new(cn, strlen(cn));
    double shp[BK_MAXDIM];
    for (int d = 0; d < p->ndim; d++) shp[d] = (double)p->shape[d];
    bk_tensor *u = bk_detach(vm->bk, p->u);
    int bad = !s;
    bad |= s ? put(e, "constraint", rt_obj_value(&s->h)) : 0;
    bad |= put(e, "shape", vec(vm, p->ndim, shp));
    bad |= put(e, "unconstrained", u ? rt_tensor(u) : rt_none());
    if (p->c.lo) bad |= put(e, "lo", rt_tensor(bk_detach(vm->bk, p->c.lo)));
    if (p->c.hi) bad |= put(e, "hi", rt_tensor(bk_detach(vm->bk, p->c.hi)));
    if (bad) {
        rt_release(rt_obj_value(&e->h));
        return NULL;
    }
    return e;
}

static rt_record *optim_entry(rt_vm *vm, const inf_optim *o) {
    rt_record *e = rt_record_new(), *slots = rt_record_new();
    const char *kn = inf_optim_kind_name(o->spec.kind);
    rt_str *k = rt_str_new(kn, strlen(kn));
    int bad = !e || !slots || !k;
    if (!bad) {
        bad |= put(e, "kind", rt_obj_value(&k->h));
        k = NULL;
        bad |= put(e, "t", num(vm, (double)o->t));
    }
    for (int i = 0; i < o->nslots && !bad; i++) {
        const inf_optim_slot *s = &o->slots[i];
        rt_record *se = rt_record_new();
        bad |= !se;
        if (!se) break;
        bad |= put(se, "t", num(vm, (double)s->t));
        if (s->m32) {
            rt_str *dt = rt_str_new("float32", 7);
            bad |= dt ? put(se, "dtype", rt_obj_value(&dt->h)) : -1;
            bad |= put(se, "m", vec32(vm, s->n, s->m32));
            bad |= put(se, "v", vec32(vm, s->n, s->v32));
        } else {
            bad |= put(se, "m", vec(vm, s->n, s->m));
            bad |= put(se, "v", vec(vm, s->n, s->v));
        }
        bad |= put(slots, s->name, rec_value(se));
    }
    if (!bad) {
        bad |= put(e, "slots", rec_value(slots));
        slots = NULL;
    }
    if (k) rt_release(rt_obj_value(&k->h));
    if (slots) rt_release(rec_value(slots));
    if (bad) {
        if (e) rt_release(rec_value(e));
        return NULL;
    }
    return e;
}

static rt_record *rng_entry(rt_vm *vm, const bk_rng *r) {
    rt_record *e = rt_record_new();
    if (!e) return NULL;
    double key[2] = {r->key[0], r->key[1]}, ctr[4], buf[4];
    for (int i = 0; i < 4; i++) {
        ctr[i] = r->ctr[i];
        buf[i] = r->buf[i];
    }
    int bad = put(e, "key", vec(vm, 2, key));
    bad |= put(e, "ctr", vec(vm, 4, ctr));
    bad |= put(e, "buf", vec(vm, 4, buf));
    bad |= put(e, "used", num(vm, r->used));
    bad |= put(e, "has_spare", num(vm, r->has_spare));
    bad |= put(e, "spare", num(vm, r->has_spare ? r->spare : 0.0));
    if (bad) {
        rt_release(rec_value(e));
        return NULL;
    }
    return e;
}

int inf_params_save(rt_vm *vm, const char *path, rt_loc loc) {
    rt_record *all = rt_record_new(), *vals = rt_record_new(), *top = rt_record_new();
    int bad = !all || !vals || !top;
    bool g = bk_set_grad_enabled(vm->bk, false);
    for (int i = 0; i < vm->params.n && !bad; i++) {
        rt_param *p = &vm->params.items[i];
        bk_tensor *v = rt_param_value(vm, p);
        bad |= put(vals, p->name, v ? rt_tensor(v) : rt_none());
        bad |= put(all, p->name, rec_value(param_entry(vm, p)));
    }
    bk_set_grad_enabled(vm->bk, g);
    if (!bad) {
        bad |= put(top, "values", rec_value(vals));
        vals = NULL;
        bad |= put(top, "params", rec_value(all));
        all = NULL;
    }
    const inf_svi_state *st = inf_svi_state_get(vm);
    if (st && !bad) {
        rt_record *sv = rt_record_new();
        bad |= put(top, "optim", rec_value(optim_entry(vm, &st->opt)));
        bad |= put(top, "rng", rec_value(rng_entry(vm, &st->rng)));
        bad |= !sv;
        if (sv) {
            bad |= put(sv, "steps", num(vm, (double)st->steps));
            bad |= put(sv, "baseline", num(vm, st->baseline));
            bad |= put(top, "svi", rec_value(sv));
        }
    }
    char *text = bad ? NULL : rt_to_json(vm->bk, rec_value(top));
    int rc = text ? 0 : rt_fail(vm, 5, loc, "save_params: out of memory");
    if (rc == 0) {
        char err[512];
        if (rt_write_file_atomic(path, text, strlen(text), err, sizeof err)) rc = rt_fail(vm, 4, loc, "%s", err);
    }
    free(text);
    if (all) rt_release(rec_value(all));
    if (vals) rt_release(rec_value(vals));
    if (top) rt_release(rec_value(top));
    return rc;
}

/* One saved parameter back into the store (created or overwritten), with
 * its unconstrained value copied exactly. */
static int restore(rt_vm *vm, rt_loc loc, const char *path, const char *name, rt_value v) {
    rt_record *e = v.tag == RT_RECORD ? (rt_record *)v.u.o : NULL;
    rt_value *cn = e ? rt_record_get(e, "constraint") : NULL;
    rt_value *u = e ? rt_record_get(e, "unconstrained") : NULL;
    rt_value *shape = e ? rt_record_get(e, "shape") : NULL;
    int n = 0;
    int kind = cn && cn->tag == RT_STR ? sl_constraint_lookup(((rt_str *)cn->u.o)->s, &n) : -1;
    if (kind < 0 || !u || u->tag != RT_TENSOR || !shape || shape->tag != RT_TENSOR || shape->u.t->numel > BK_MAXDIM)
        return rt_error_loc(vm, loc, "load_params: %s: parameter \"%s\" is malformed", path, name);
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
        rc = rt_error_loc(vm, loc, "load_params: %s: parameter \"%s\": %s", path, name, bk_errmsg(vm->bk));
    } else {
        rt_param *p = rt_param_find(vm, name);
        if (p && p->u->numel != u->u.t->numel) {
            rc = rt_error_loc(vm, loc, "load_params: parameter \"%s\" exists with another shape", name);
        } else {
            if (!p) p = rt_param_create(vm, name, x, &con, loc);
            if (!p) rc = -1;
            else if (p->u->numel != u->u.t->numel)
                rc = rt_error_loc(vm, loc, "load_params: %s: parameter \"%s\" is malformed", path, name);
            else if (bk_copy_values(vm->bk, p->u, u->u.t)) /* exact (float32: rounded); keeps the leaf the optimizer knows */
                rc = rt_fail_bk(vm, loc);
        }
        bk_release(x);
    }
    sl_constraint_clear(&con);
    return rc;
}

/* n numbers of field k of record r into out; -1 when missing or of another size. */
static int get_vec(const rt_record *r, const char *k, int64_t n, double *out) {
    rt_value *v = r ? rt_record_get(r, k) : NULL;
    if (!v || v->tag != RT_TENSOR || v->u.t->numel != n) return -1;
    bk_copy_out(v->u.t, out);
    return 0;
}

/* A slot's "m" and "v" into its double or float32 moments; 0 or -1. */
static int get_moments(const rt_record *s, int64_t n, inf_optim_slot *slot) {
    if (!slot->m32) return get_vec(s, "m", n, slot->m) || get_vec(s, "v", n, slot->v) ? -1 : 0;
    double *d = malloc((size_t)n * sizeof *d);
    int rc = -1;
    if (d && get_vec(s, "m", n, d) == 0) {
        for (int64_t i = 0; i < n; i++) slot->m32[i] = (float)d[i];
        if (get_vec(s, "v", n, d) == 0) {
            for (int64_t i = 0; i < n; i++) slot->v32[i] = (float)d[i];
            rc = 0;
        }
    }
    free(d);
    return rc;
}

static const rt_record *get_rec(const rt_record *r, const char *k) {
    rt_value *v = r ? rt_record_get(r, k) : NULL;
    return v && v->tag == RT_RECORD ? (const rt_record *)v->u.o : NULL;
}

/* The "optim", "rng" and "svi" objects back into an SVI state (NULL with
 * an error message on a malformed file). */
static inf_svi_state *restore_state(const rt_record *top, char *why, size_t nwhy) {
    const rt_record *o = get_rec(top, "optim"), *r = get_rec(top, "rng"), *sv = get_rec(top, "svi");
    const rt_record *slots = get_rec(o, "slots");
    rt_value *kind = o ? rt_record_get(o, "kind") : NULL;
    int k = kind && kind->tag == RT_STR ? inf_optim_kind_lookup(((rt_str *)kind->u.o)->s) : -1;
    double t, key[2], ctr[4], buf[4], used, hs, spare, steps, baseline;
    if (!o || !r || !sv || !slots || k < 0 || get_vec(o, "t", 1, &t) || get_vec(r, "key", 2, key) ||
        get_vec(r, "ctr", 4, ctr) || get_vec(r, "buf", 4, buf) || get_vec(r, "used", 1, &used) ||
        get_vec(r, "has_spare", 1, &hs) || get_vec(r, "spare", 1, &spare) || get_vec(sv, "steps", 1, &steps) ||
        get_vec(sv, "baseline", 1, &baseline) || !(used >= 0 && used <= 4)) {
        snprintf(why, nwhy, "the SVI state (\"optim\", \"rng\", \"svi\") is malformed");
        return NULL;
    }
    inf_svi_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(why, nwhy, "out of memory");
        return NULL;
    }
    inf_optim_spec spec = inf_adam_defaults();
    spec.kind = k;
    inf_optim_init(&st->opt, &spec);
    st->opt.t = (long)t;
    for (int i = 0; i < slots->n; i++) {
        const rt_record *s = slots->vals[i].tag == RT_RECORD ? (const rt_record *)slots->vals[i].u.o : NULL;
        rt_value *m = s ? rt_record_get(s, "m") : NULL;
        int64_t n = m && m->tag == RT_TENSOR ? m->u.t->numel : -1;
        rt_value *dt = s ? rt_record_get(s, "dtype") : NULL;
        bool f32 = dt && dt->tag == RT_STR && strcmp(((rt_str *)dt->u.o)->s, "float32") == 0;
        inf_optim_slot *slot = n > 0 ? inf_optim_slot_get(&st->opt, slots->keys[i], n, f32) : NULL;
        double st_t;
        if (!slot || (dt && !f32) || get_moments(s, n, slot) || get_vec(s, "t", 1, &st_t)) {
            snprintf(why, nwhy, "the optimizer state of \"%s\" is malformed", slots->keys[i]);
            inf_optim_free(&st->opt);
            free(st);
            return NULL;
        }
        slot->t = (long)st_t;
    }
    st->rng.key[0] = (uint32_t)key[0];
    st->rng.key[1] = (uint32_t)key[1];
    for (int i = 0; i < 4; i++) {
        st->rng.ctr[i] = (uint32_t)ctr[i];
        st->rng.buf[i] = (uint32_t)buf[i];
    }
    st->rng.used = (int)used;
    st->rng.has_spare = hs != 0;
    st->rng.spare = spare;
    st->steps = (long)steps;
    st->baseline = baseline;
    return st;
}

int inf_params_load(rt_vm *vm, const char *path, rt_loc loc) {
    rt_value v;
    if (rt_load_json(vm, path, loc, &v)) return -1;
    const rt_record *top = v.tag == RT_RECORD ? (const rt_record *)v.u.o : NULL;
    const rt_record *r = get_rec(top, "params");
    int rc = 0;
    if (!r) {
        rc = rt_error_loc(vm, loc, "load_params: %s has no \"params\" object (write it with save_params)", path);
    } else {
        inf_svi_state *st = NULL;
        char why[256];
        if (rt_record_get(top, "optim") && !(st = restore_state(top, why, sizeof why)))
            rc = rt_error_loc(vm, loc, "load_params: %s: %s", path, why);
        for (int i = 0; i < r->n && rc == 0; i++) rc = restore(vm, loc, path, r->keys[i], r->vals[i]);
        /* a file without SVI state leaves none behind: resume then says so */
        if (rc == 0) inf_svi_state_set(vm, st);
        else if (st) {
            inf_optim_free(&st->opt);
            free(st);
        }
    }
    rt_release(v);
    return rc;
}

static int b_save_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    *out = rt_none();
    return inf_params_save(vm, path, c->loc);
}

static int b_load_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    *out = rt_none();
    return inf_params_load(vm, path, c->loc);
}

static int b_clear_params(rt_vm *vm, const rt_call *c, rt_value *out) {
    if (rt_check_args(vm, c, 0, NULL)) return -1;
    rt_params_clear(vm); /* and the SVI state that belongs to them */
    *out = rt_none();
    return 0;
}

const rt_builtin_def inf_params_builtins[] = {
    {"save_params", b_save_params},
    {"load_params", b_load_params},
    {"clear_params", b_clear_params},
    {NULL, NULL},
};
