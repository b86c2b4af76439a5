/* latents.c - the latent sites of a model, found by one prototype run:
 * their names, shapes, supports and places in one unconstrained vector.
 * Autoguides and the MCMC potential are both built on this. */
#include <stdlib.h>
#include <string.h>
#include "infer.h"

void inf_latents_free(inf_latent *lat, int n) {
    for (int i = 0; i < n; i++) {
        free(lat[i].name);
        sl_constraint_clear(&lat[i].support);
        bk_release(lat[i].proto);
        bk_release(lat[i].init_u);
        if (lat[i].dist) rt_release(rt_obj_value(&lat[i].dist->h));
    }
    free(lat);
}

/* Run the model once (seeded, no gradients) under the trace handler. */
static int prototype(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, rt_trace *tr) {
    rt_handler ht, hs;
    rt_seed_state ss;
    rt_handler_trace(&ht, tr);
    rt_handler_seed(&hs, &ss, 0x5eed);
    bool grad = bk_set_grad_enabled(vm->bk, false);
    int rc = rt_push_handler(vm, &hs);
    if (rc == 0 && (rc = rt_push_handler(vm, &ht)) != 0) rt_pop_handler(vm, &hs);
    rt_value ret = rt_none();
    if (rc == 0) {
        rc = rt_call_with_data(vm, model, data, loc, &ret);
        rt_pop_handler(vm, &ht);
        rt_pop_handler(vm, &hs);
    }
    bk_set_grad_enabled(vm->bk, grad);
    rt_release(ret);
    return rc;
}

static int describe(rt_vm *vm, const rt_site *s, inf_latent *L, const char *discrete_hint) {
    if (sl_constraint_is_discrete(&L->support))
        return rt_error_loc(vm, s->loc, "cannot handle the discrete latent site \"%s\"; %s", s->name, discrete_hint);
    L->ndim = s->value->ndim;
    memcpy(L->shape, s->value->shape, sizeof L->shape);
    if (sl_unconstrained_shape(vm->bk, &L->support, L->ndim, L->shape, &L->undim, L->ushape))
        return rt_fail_bk(vm, s->loc);
    L->unumel = 1;
    for (int d = 0; d < L->undim; d++) L->unumel *= L->ushape[d];
    return 0;
}

int inf_latents_discover(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, const char *discrete_hint,
                         inf_latent **lat, int *nlat, int64_t *dim) {
    *lat = NULL;
    *nlat = 0;
    *dim = 0;
    rt_trace tr;
    rt_trace_init(&tr);
    int rc = prototype(vm, model, data, loc, &tr);
    int n = 0;
    for (int i = 0; i < tr.n; i++)
        if (tr.sites[i].kind == RT_SITE_SAMPLE) n++;
    inf_latent *L = rc ? NULL : calloc(n ? (size_t)n : 1, sizeof *L);
    if (rc == 0 && !L) rc = rt_fail(vm, 5, loc, "out of memory");
    int k = 0;
    for (int i = 0; i < tr.n && rc == 0; i++) {
        const rt_site *s = &tr.sites[i];
        if (s->kind != RT_SITE_SAMPLE) continue;
        if (sl_support(vm->bk, s->dist, &L[k].support)) {
            rc = rt_fail_bk(vm, s->loc);
            break;
        }
        L[k].name = strdup(s->name);
        L[k].proto = bk_retain(s->value);
        L[k].dist = s->dist;
        if (s->dist) s->dist->h.refcount++;
        rc = L[k].name ? describe(vm, s, &L[k], discrete_hint) : rt_fail(vm, 5, loc, "out of memory");
        L[k].offset = *dim;
        *dim += L[k].unumel;
        k++;
    }
    rt_trace_clear(&tr);
    if (rc) {
        inf_latents_free(L, k);
        *dim = 0;
        return -1;
    }
    *lat = L;
    *nlat = k;
    return 0;
}
