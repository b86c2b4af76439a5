/* handlers.c - the effect-handler stack (Pyro's poutine design) and the
 * default action of each kind of random choice.
 *
 * A message travels from the innermost handler outwards (process), stopping
 * early if a handler blocks it; then the default action fills in a value
 * that no handler supplied; then the handlers that saw it run postprocess
 * from the outermost inwards. */
#include <stdlib.h>
#include <string.h>
#include "vm.h"

int rt_push_handler(rt_vm *vm, rt_handler *h) {
    if (vm->nh == vm->caph) {
        int cap = vm->caph ? vm->caph * 2 : 8;
        rt_handler **p = realloc(vm->hstack, cap * sizeof *p);
        if (!p) return -1;
        vm->hstack = p;
        vm->caph = cap;
    }
    vm->hstack[vm->nh++] = h;
    if (h->enter) h->enter(vm, h);
    return 0;
}

void rt_pop_handler(rt_vm *vm, rt_handler *h) {
    /* handlers are popped in LIFO order; tolerate a missing one */
    for (int i = vm->nh - 1; i >= 0; i--) {
        if (vm->hstack[i] == h) {
            if (h->exit) h->exit(vm, h);
            memmove(&vm->hstack[i], &vm->hstack[i + 1], (vm->nh - i - 1) * sizeof *vm->hstack);
            vm->nh--;
            return;
        }
    }
}

const char *rt_site_kind_name(int kind) {
    static const char *const names[] = {"sample", "observe", "param", "deterministic", "factor", "plate"};
    return kind >= 0 && kind <= RT_SITE_PLATE ? names[kind] : "?";
}

/* Draw a value for a latent site, honouring `sample x: C ~ D`. */
static int default_sample(rt_vm *vm, rt_msg *m) {
    for (int attempt = 0; attempt < 100; attempt++) {
        bk_tensor *v = bk_place_nd(vm->bk, sl_sample(vm->bk, &vm->rng, m->dist, 0, NULL));
        if (!v) return rt_fail_bk(vm, m->loc);
        if (!m->constraint) {
            m->value = v;
            return 0;
        }
        bk_tensor *ok = sl_check(vm->bk, m->constraint, v);
        if (!ok) {
            bk_release(v);
            return rt_fail_bk(vm, m->loc);
        }
        bool inside = true;
        for (int64_t i = 0; i < ok->numel; i++)
            if (bk_get(ok, i) == 0) inside = false;
        bk_release(ok);
        if (inside) {
            m->value = v;
            return 0;
        }
        bk_release(v);
    }
    return rt_error_loc(vm, m->loc, "could not draw a value of site \"%s\" inside its constraint %s "
                        "(100 tries); give it an initial value or use MCMC", m->name,
                        sl_constraint_name(m->constraint->kind));
}

static int default_action(rt_vm *vm, rt_msg *m) {
    int64_t plate_size = m->plate_size, plate_sub = m->plate_sub;
    switch (m->kind) {
    case RT_SITE_SAMPLE: return default_sample(vm, m);
    case RT_SITE_PARAM: {
        rt_param *p = rt_param_find(vm, m->name);
        if (!p) return rt_error_loc(vm, m->loc, "parameter \"%s\" does not exist", m->name);
        m->value = rt_param_value(vm, p);
        return m->value ? 0 : rt_fail_bk(vm, m->loc);
    }
    case RT_SITE_PLATE: {
        bk_tensor *idx;
        if (plate_sub == plate_size) {
            idx = bk_arange(vm->bk, 0, (double)plate_size, 1);
        } else {
            int64_t *perm = malloc((plate_size ? plate_size : 1) * sizeof *perm);
            if (!perm) return rt_fail(vm, 5, m->loc, "out of memory");
            bk_rng_permutation(&vm->rng, plate_size, perm);
            idx = bk_empty(vm->bk, BK_F64, 1, (int64_t[]){plate_sub});
            if (idx)
                for (int64_t i = 0; i < plate_sub; i++) bk_data(idx)[i] = (double)perm[i];
            free(perm);
        }
        if (!idx) return rt_fail_bk(vm, m->loc);
        m->value = idx;
        return 0;
    }
    default: return 0;
    }
}

static int apply(rt_vm *vm, rt_msg *m, int64_t plate_size, int64_t plate_sub) {
    m->plate_size = plate_size;
    m->plate_sub = plate_sub;
    int lowest = 0; /* index of the outermost handler that saw the message */
    for (int i = vm->nh - 1; i >= 0; i--) {
        rt_handler *h = vm->hstack[i];
        lowest = i;
        if (h->process && h->process(vm, h, m)) {
            bk_release(m->value);
            m->value = NULL;
            return -1;
        }
        if (m->stop) break;
    }
    if (!m->done || !m->value) {
        if (m->value) {
            bk_release(m->value);
            m->value = NULL;
        }
        if (default_action(vm, m)) return -1;
    }
    if (m->kind == RT_SITE_PLATE && m->value &&
        (m->value->numel != m->plate_sub || m->plate_sub < (plate_size > 0) || m->plate_sub > plate_size)) {
        int rc = rt_error_loc(vm, m->loc, "plate \"%s\": replayed subsample has %lld indices, expected %lld",
                              m->name, (long long)m->value->numel, (long long)m->plate_sub);
        bk_release(m->value);
        m->value = NULL;
        return rc;
    }
    for (int i = lowest; i < vm->nh; i++) {
        rt_handler *h = vm->hstack[i];
        if (h->postprocess && h->postprocess(vm, h, m)) {
            bk_release(m->value);
            m->value = NULL;
            return -1;
        }
    }
    return 0;
}

int rt_apply_message(rt_vm *vm, rt_msg *m) { return apply(vm, m, 0, 0); }

int rt_apply_message_plate(rt_vm *vm, rt_msg *m, int64_t size, int64_t sub) {
    return apply(vm, m, size, sub);
}

/* ---------------------------------------------------------------- trace --- */

static int trace_post(rt_vm *vm, rt_handler *h, rt_msg *m) {
    rt_trace *tr = h->state;
    if (rt_trace_find(tr, m->name)) {
        if (m->kind == RT_SITE_PARAM) return 0; /* a param read twice is one site */
        return rt_error_loc(vm, m->loc, "site \"%s\" appears twice in one run; site names must be "
                            "unique (use sample(\"name_\" + str(i), D) in loops)", m->name);
    }
    bk_tensor *lp = NULL, *batch = NULL;
    if (m->kind == RT_SITE_SAMPLE || m->kind == RT_SITE_OBSERVE) {
        bk_tensor *raw = sl_log_prob(vm->bk, m->dist, m->value);
        if (!raw) {
            char a[64];
            return rt_error_loc(vm, m->loc, "site \"%s\": %s (value of shape %s)", m->name,
                                bk_errmsg(vm->bk), bk_shape_str(m->value, a, sizeof a));
        }
        if (m->mask) {
            bk_tensor *t = bk_mul(vm->bk, raw, m->mask);
            bk_release(raw);
            raw = t;
        }
        lp = raw ? bk_sum_all(vm->bk, raw) : NULL;
        batch = raw;
        if (lp && m->scale != 1.0) {
            bk_tensor *t = bk_mul_s(vm->bk, lp, m->scale);
            bk_release(lp);
            lp = t;
        }
        if (!lp) {
            bk_release(batch);
            return rt_fail_bk(vm, m->loc);
        }
    } else if (m->kind == RT_SITE_FACTOR) {
        lp = bk_sum_all(vm->bk, m->value);
        batch = lp ? bk_retain(m->value) : NULL;
        if (lp && m->scale != 1.0) {
            bk_tensor *t = bk_mul_s(vm->bk, lp, m->scale);
            bk_release(lp);
            lp = t;
        }
        if (!lp) {
            bk_release(batch);
            return rt_fail_bk(vm, m->loc);
        }
    }
    if (tr->n == tr->cap) {
        int cap = tr->cap ? tr->cap * 2 : 16;
        rt_site *s = realloc(tr->sites, cap * sizeof *s);
        if (!s) {
            bk_release(lp);
            bk_release(batch);
            return rt_fail(vm, 5, m->loc, "out of memory");
        }
        tr->sites = s;
        tr->cap = cap;
    }
    rt_site *s = &tr->sites[tr->n];
    memset(s, 0, sizeof *s);
    s->name = strdup(m->name);
    if (!s->name) {
        bk_release(lp);
        bk_release(batch);
        return rt_fail(vm, 5, m->loc, "out of memory");
    }
    tr->n++;
    s->kind = m->kind == RT_SITE_SAMPLE && m->observed ? RT_SITE_OBSERVE : m->kind;
    if (m->dist) {
        m->dist->h.refcount++;
        s->dist = m->dist;
    }
    s->value = bk_retain(m->value);
    s->log_prob = lp;
    s->log_prob_batch = batch;
    s->scale = m->scale;
    s->observed = m->observed;
    s->loc = m->loc;
    if (m->kind == RT_SITE_SAMPLE && m->constraint) {
        s->has_constraint = true;
        s->constraint = sl_constraint_copy(m->constraint);
    }
    s->nplates = m->nplates;
    for (int i = 0; i < m->nplates; i++) {
        s->plates[i] = m->plates[i];
        bk_retain(s->plates[i].idx);
    }
    return 0;
}

void rt_handler_trace(rt_handler *h, rt_trace *tr) {
    memset(h, 0, sizeof *h);
    h->type = "trace";
    h->postprocess = trace_post;
    h->state = tr;
}

void rt_trace_init(rt_trace *t) { memset(t, 0, sizeof *t); }

void rt_trace_clear(rt_trace *t) {
    for (int i = 0; i < t->n; i++) {
        rt_site *s = &t->sites[i];
        free(s->name);
        if (s->dist) rt_release(rt_obj_value(&s->dist->h));
        bk_release(s->value);
        bk_release(s->log_prob);
        bk_release(s->log_prob_batch);
        for (int k = 0; k < s->nplates; k++) bk_release(s->plates[k].idx);
        if (s->has_constraint) sl_constraint_clear(&s->constraint);
    }
    free(t->sites);
    memset(t, 0, sizeof *t);
}

rt_site *rt_trace_find(const rt_trace *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->sites[i].name, name) == 0) return &t->sites[i];
    return NULL;
}

bk_tensor *rt_trace_log_prob_sum(rt_vm *vm, const rt_trace *t, unsigned kinds) {
    bk_tensor *acc = bk_scalar(vm->bk, 0.0);
    for (int i = 0; acc && i < t->n; i++) {
        const rt_site *s = &t->sites[i];
        if (!s->log_prob || !(kinds & (1u << s->kind))) continue;
        bk_tensor *a = bk_add(vm->bk, acc, s->log_prob);
        bk_release(acc);
        acc = a;
    }
    return acc;
}

/* --------------------------------------------------------------- replay --- */

static int replay_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    const rt_trace *g = h->state;
    if ((m->kind != RT_SITE_SAMPLE || m->observed) && m->kind != RT_SITE_PLATE) return 0;
    rt_site *s = rt_trace_find(g, m->name);
    if (!s) return 0;
    bk_release(m->value);
    m->value = bk_retain(s->value);
    m->done = true;
    return 0;
}

void rt_handler_replay(rt_handler *h, const rt_trace *guide_trace) {
    memset(h, 0, sizeof *h);
    h->type = "replay";
    h->process = replay_process;
    h->state = (void *)guide_trace;
}

const rt_site *rt_replayed_site(const rt_vm *vm, const char *name) {
    /* every replay handler that holds the site sets the value and the
     * outermost one runs last, so its site is the one the value came from */
    for (int i = 0; i < vm->nh; i++) {
        const rt_handler *h = vm->hstack[i];
        if (h->process != replay_process) continue;
        const rt_site *s = rt_trace_find(h->state, name);
        if (s) return s;
    }
    return NULL;
}

/* ------------------------------------------------------------ condition --- */

static int condition_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    const rt_record *data = h->state;
    if (m->kind != RT_SITE_SAMPLE) return 0;
    rt_value *v = rt_record_get(data, m->name);
    if (!v) return 0;
    if (v->tag != RT_TENSOR)
        return rt_error_loc(vm, m->loc, "conditioned value of site \"%s\" must be a tensor, got a %s",
                            m->name, rt_type_name(*v));
    bk_release(m->value);
    m->value = bk_retain(v->u.t);
    m->observed = true;
    m->done = true;
    return 0;
}

void rt_handler_condition(rt_handler *h, const rt_record *data) {
    memset(h, 0, sizeof *h);
    h->type = "condition";
    h->process = condition_process;
    h->state = (void *)data;
}

/* ----------------------------------------------------------- substitute --- */

static int substitute_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    const rt_record *vals = h->state;
    if (m->kind != RT_SITE_SAMPLE && m->kind != RT_SITE_PARAM) return 0;
    rt_value *v = rt_record_get(vals, m->name);
    if (!v || v->tag != RT_TENSOR) return 0;
    bk_release(m->value);
    m->value = bk_retain(v->u.t);
    m->done = true;
    return 0;
}

void rt_handler_substitute(rt_handler *h, const rt_record *values) {
    memset(h, 0, sizeof *h);
    h->type = "substitute";
    h->process = substitute_process;
    h->state = (void *)values;
}

/* ---------------------------------------------------------------- block --- */

static int block_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    rt_block_state *b = h->state;
    if (!b->names) {
        m->stop = true;
        return 0;
    }
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->names[i], m->name) == 0) m->stop = true;
    return 0;
}

void rt_handler_block(rt_handler *h, rt_block_state *st, const char *const *names, int n) {
    memset(h, 0, sizeof *h);
    h->type = "block";
    h->process = block_process;
    st->names = names;
    st->n = n;
    h->state = st;
}

/* ---------------------------------------------------------------- scale --- */

static int scale_process(rt_vm *vm, rt_handler *h, rt_msg *m) {
    m->scale *= *(double *)h->state;
    return 0;
}

void rt_handler_scale(rt_handler *h, double *scale) {
    memset(h, 0, sizeof *h);
    h->type = "scale";
    h->process = scale_process;
    h->state = scale;
}

/* ----------------------------------------------------------------- seed --- */

static void seed_enter(rt_vm *vm, rt_handler *h) {
    rt_seed_state *s = h->state;
    s->saved = vm->rng;
    vm->rng = s->rng;
}

static void seed_exit(rt_vm *vm, rt_handler *h) {
    rt_seed_state *s = h->state;
    s->rng = vm->rng;
    vm->rng = s->saved;
}

void rt_handler_seed(rt_handler *h, rt_seed_state *st, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->type = "seed";
    h->enter = seed_enter;
    h->exit = seed_exit;
    bk_rng_init(&st->rng, seed, 0);
    h->state = st;
}
