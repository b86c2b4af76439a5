/* device_option.c - the device= option of svi(), mcmc() and predictive():
 * the call runs with the backend's default device set to that device (so
 * the parameters, draws and constants of the run are made there), on a
 * copy of its data record whose tensors are moved there; the default is
 * put back afterwards. */
#include <string.h>
#include "infer.h"

/* The device `name` names: "cpu", "cuda", or the current default device by
 * its own name (a test device).  NULL after an error at the keyword. */
static const bk_device *named_device(rt_vm *vm, const rt_call *c, const char *name) {
    const bk_device *def = bk_default_device(vm->bk);
    if (strcmp(name, def->name) == 0) return def;
    const bk_device *d = bk_device_named(vm->bk, name);
    if (!d) rt_error_kw(vm, c, "device", "%s: %s", c->name, bk_errmsg(vm->bk));
    return d;
}

/* A copy of record r with its tensors on the default device (NULL: OOM or
 * a failed copy, error set). */
static rt_record *placed_record(rt_vm *vm, const rt_record *r) {
    rt_record *p = rt_record_new();
    for (int i = 0; p && i < r->n; i++) {
        rt_value v = rt_retain(r->vals[i]);
        if (rt_place_value(vm->bk, &v) || rt_record_set(p, r->keys[i], v)) {
            rt_release(v);
            rt_release(rt_obj_value(&p->h));
            return NULL;
        }
    }
    return p;
}

int inf_with_device(rt_vm *vm, const rt_call *c, rt_value *out, rt_builtin_fn fn, int data_pos) {
    int kd = -1;
    for (int i = 0; i < c->nkw; i++)
        if (strcmp(c->kwnames[i], "device") == 0) kd = i;
    if (kd < 0) return fn(vm, c, out);
    if (c->kwargs[kd].tag != RT_STR)
        return rt_error_kw(vm, c, "device", "%s: device must be a string such as \"cpu\" or \"cuda\"", c->name);
    const bk_device *dev = named_device(vm, c, ((rt_str *)c->kwargs[kd].u.o)->s);
    if (!dev) return -1;
    /* the call without device=, its data record placed on dev */
    rt_call k = *c;
    rt_value args[64], kwargs[64];
    const char *kwnames[64];
    rt_loc kwloc[64];
    int n = 0;
    for (int i = 0; i < c->nkw && n < 64; i++) {
        if (i == kd) continue;
        kwnames[n] = c->kwnames[i];
        kwargs[n] = c->kwargs[i];
        kwloc[n++] = c->kwloc[i];
    }
    for (int i = 0; i < c->nargs && i < 64; i++) args[i] = c->args[i];
    k.nkw = n;
    k.kwnames = kwnames;
    k.kwargs = kwargs;
    k.kwloc = kwloc;
    k.args = args;
    rt_value *d = NULL;
    if (data_pos < c->nargs) d = &args[data_pos];
    for (int i = 0; i < n && !d; i++)
        if (strcmp(kwnames[i], "data") == 0) d = &kwargs[i];
    const bk_device *saved = bk_default_device(vm->bk);
    bk_set_default_device(vm->bk, dev);
    rt_record *placed = NULL;
    if (d && d->tag == RT_RECORD) {
        if (!(placed = placed_record(vm, (const rt_record *)d->u.o))) {
            bk_set_default_device(vm->bk, saved);
            return rt_error_bk(vm, c);
        }
        *d = rt_obj_value(&placed->h);
    }
    int rc = fn(vm, &k, out);
    bk_set_default_device(vm->bk, saved);
    if (placed) rt_release(rt_obj_value(&placed->h));
    return rc;
}
