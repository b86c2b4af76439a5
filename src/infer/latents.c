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

/* Sites whose distribution cannot be sampled (ImproperUniform) get a
 * placeholder in the prototype run: the middle of their support
 * (unconstrained zero), which is all discovery needs (shape, support). */
static int placeholder_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    (void)h;
    if (m->kind != RT_SITE_SAMPLE || m->observed || m->done || !m->dist ||
        strcmp(m->dist->fam->name, "ImproperUniform") != 0)
        return 0;
    int n = m->dist->nbatch + m->dist->nevent;
    int64_t shape[BK_MAXDIM];
    if (n > BK_MAXDIM) return rt_error_loc(vm, m->loc, "too many dimensions");
    memcpy(shape, m->dist->batch, sizeof(int64_t) * (size_t)m->dist->nbatch);
    memcpy(shape + m->dist->nbatch, m->dist->event, sizeof(int64_t) * (size_t)m->dist->nevent);
    sl_constraint sup = {0};
    if (m->constraint) sup = sl_constraint_copy(m->constraint);
    else if (sl_support(vm->bk, m->dist, &sup)) return rt_fail_bk(vm, m->loc);
    int und;
    int64_t ushape[BK_MAXDIM];
    bk_tensor *x = NULL;
    if (sl_unconstrained_shape(vm->bk, &sup, n, shape, &und, ushape) == 0) {
        bk_tensor *u = bk_place_nd(vm->bk, bk_zeros(vm->bk, BK_F64, und, ushape));
        x = u ? sl_to_constrained(vm->bk, &sup, u, n, shape, NULL) : NULL;
        bk_release(u);
    }
    sl_constraint_clear(&sup);
    if (!x) return rt_fail_bk(vm, m->loc);
    bk_release(m->value);
    m->value = x;
    m->done = true;
    return 0;
}

/* Run the model once (seeded, no gradients) under the trace handler. */
int inf_latents_prototype(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, rt_trace *tr) {
    rt_handler ht, hs, hp;
    rt_seed_state ss;
    rt_handler_trace(&ht, tr);
    rt_handler_seed(&hs, &ss, 0x5eed);
    memset(&hp, 0, sizeof hp);
    hp.type = "placeholder";
    hp.process = placeholder_process;
    bool grad = bk_set_grad_enabled(vm->bk, false);
    int rc = rt_push_handler(vm, &hs);
    if (rc == 0 && (rc = rt_push_handler(vm, &ht)) != 0) rt_pop_handler(vm, &hs);
    if (rc == 0 && (rc = rt_push_handler(vm, &hp)) != 0) {
        rt_pop_handler(vm, &ht);
        rt_pop_handler(vm, &hs);
    }
    rt_value ret = rt_none();
    if (rc == 0) {
        rc = rt_call_with_data(vm, model, data, loc, &ret);
        rt_pop_handler(vm, &hp);
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
    int rc = inf_latents_prototype(vm, model, data, loc, &tr);
    int n = 0;
    for (int i = 0; i < tr.n; i++)
        if (tr.sites[i].kind == RT_SITE_SAMPLE) n++;
    inf_latent *L = rc ? NULL : calloc(n ? (size_t)n : 1, sizeof *L);
    if (rc == 0 && !L) rc = rt_fail(vm, 5, loc, "out of memory");
    int k = 0;
    for (int i = 0; i < tr.n && rc == 0; i++) {
        const rt_site *s = &tr.sites[i];
        if (s->kind != RT_SITE_SAMPLE) continue;
        /* `sample x: C ~ D` works in C's space; other sites in D's support */
        if (s->has_constraint) L[k].support = sl_constraint_copy(&s->constraint);
        else if (sl_support(vm->bk, s->dist, &L[k].support)) {
            rc = rt_fail_bk(vm, s->loc);
            break;
        }
        /* no hint: the caller handles discrete sites itself (enumeration) */
        if (!discrete_hint && sl_constraint_is_discrete(&L[k].support)) {
            sl_constraint_clear(&L[k].support);
            memset(&L[k], 0, sizeof L[k]);
            continue;
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
