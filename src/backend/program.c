/* program.c - recording the ops of one evaluation and replaying them (see
 * program.h for what is recorded and when a recording is refused).
 *
 * Slots name the tensors a program computes: the inputs first come in as
 * registered, then one slot per recorded op output.  While recording, a
 * hash map from tensor object to slot says which tensors depend on an
 * input; the recorder holds a reference to every such tensor, so an object
 * cannot be recycled into a different tensor while the map names it.
 *
 * A replay runs the recorded ops through bk_apply with the same arguments
 * and constants, so every value, tape record and the reverse sweep are
 * those of the interpreted evaluation: the results are bit-identical. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "program_impl.h"
#include "rng.h"

struct bk_rec {
    bk_prog *p;
    /* tensor -> slot (open addressing; keys NULL when empty) */
    const bk_tensor **keys;
    int32_t *slots;
    size_t cap, used;
    bk_tensor **held;  /* per slot: the recorded tensor (a reference) */
    int16_t *made_by;  /* per slot: the op that made it, -1 for an input */
    size_t capheld;
    bool failed;
    char why[160];
};

/* Grow a dynamic array (p, n, cap) of elements of size sz to hold one
 * more; 0 or -1 (error set). */
static int grow(bk_ctx *ctx, void **p, size_t n, size_t *cap, size_t sz) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = bk_realloc(ctx, *p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}
#define GROW(ctx, arr, n, cap) grow((ctx), (void **)&(arr), (n), &(cap), sizeof *(arr))

/* ------------------------------------------------------------ recorder --- */

static void rec_fail(bk_rec *r, const char *why) {
    if (r->failed) return;
    r->failed = true;
    snprintf(r->why, sizeof r->why, "%s", why);
}

static size_t hash_ptr(const void *p, size_t cap) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 7) & (cap - 1);
}

static int32_t lookup(const bk_rec *r, const bk_tensor *t) {
    if (!t || !r->cap) return -1;
    for (size_t i = hash_ptr(t, r->cap);; i = (i + 1) & (r->cap - 1)) {
        if (!r->keys[i]) return -1;
        if (r->keys[i] == t) return r->slots[i];
    }
}

static int map_put(bk_ctx *ctx, bk_rec *r, const bk_tensor *t, int32_t slot) {
    if (2 * (r->used + 1) > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        const bk_tensor **k = bk_malloc(ctx, cap * sizeof *k);
        int32_t *s = bk_malloc(ctx, cap * sizeof *s);
        if (!k || !s) {
            bk_free(ctx, k);
            bk_free(ctx, s);
            return -1;
        }
        memset(k, 0, cap * sizeof *k);
        for (size_t i = 0; i < r->cap; i++) {
            if (!r->keys[i]) continue;
            size_t j = hash_ptr(r->keys[i], cap);
            while (k[j]) j = (j + 1) & (cap - 1);
            k[j] = r->keys[i];
            s[j] = r->slots[i];
        }
        bk_free(ctx, r->keys);
        bk_free(ctx, r->slots);
        r->keys = k;
        r->slots = s;
        r->cap = cap;
    }
    size_t j = hash_ptr(t, r->cap);
    while (r->keys[j]) j = (j + 1) & (r->cap - 1);
    r->keys[j] = t;
    r->slots[j] = slot;
    r->used++;
    return 0;
}

/* A new slot for tensor t (made by op, -1 for an input): -1 when out of memory. */
static int32_t new_slot(bk_ctx *ctx, bk_rec *r, bk_tensor *t, int op) {
    bk_prog *p = r->p;
    int32_t s = p->nslots;
    if ((size_t)s == r->capheld) {
        size_t cap = r->capheld ? r->capheld * 2 : 64;
        bk_tensor **h = bk_realloc(ctx, r->held, cap * sizeof *h);
        if (!h) return -1;
        r->held = h;
        int16_t *m = bk_realloc(ctx, r->made_by, cap * sizeof *m);
        if (!m) return -1;
        r->made_by = m;
        r->capheld = cap;
    }
    if (map_put(ctx, r, t, s)) return -1;
    r->held[s] = bk_retain(t);
    r->made_by[s] = (int16_t)op;
    p->nslots++;
    return s;
}

static void prog_clear(bk_prog *p) {
    bk_ctx *ctx = p->ctx;
    for (size_t i = 0; i < p->nconsts; i++) bk_release(p->consts[i]);
    for (size_t i = 0; i < p->nargs; i++)
        for (int k = 0; k < p->args[i].nidx; k++)
            if (p->args[i].idx[k].kind == BK_IDX_TENSOR) bk_release(p->args[i].idx[k].idx);
    for (size_t i = 0; i < p->nguards; i++) bk_free(ctx, p->guards[i].vals);
    for (size_t i = 0; i < p->nouts; i++) bk_release(p->outs[i].konst);
    bk_free(ctx, p->outs);
    bk_free(ctx, p->ins);
    bk_free(ctx, p->srcs);
    bk_free(ctx, p->args);
    bk_free(ctx, p->consts);
    bk_free(ctx, p->inputs);
    bk_free(ctx, p->guards);
    bk_free(ctx, p->val);
    bk__native_free(ctx, p->nat);
}

void bk_prog_free(bk_prog *p) {
    if (!p) return;
    bk_ctx *ctx = p->ctx;
    prog_clear(p);
    bk_free(ctx, p);
}

static void rec_free(bk_ctx *ctx, bk_rec *r) {
    if (!r) return;
    if (r->p) {
        for (int32_t s = r->p->nslots; s-- > 0;) bk_release(r->held[s]);
        bk_prog_free(r->p);
    }
    bk_free(ctx, r->held);
    bk_free(ctx, r->made_by);
    bk_free(ctx, r->keys);
    bk_free(ctx, r->slots);
    bk_free(ctx, r);
}

int bk_prog_begin(bk_ctx *ctx) {
    bk_rec **rp = bk__ctx_rec(ctx);
    if (*rp) {
        bk_seterr(ctx, "a recording is already running");
        return -1;
    }
    bk_rec *r = bk_malloc(ctx, sizeof *r);
    bk_prog *p = bk_malloc(ctx, sizeof *p);
    if (!r || !p) {
        bk_free(ctx, r);
        bk_free(ctx, p);
        return -1;
    }
    memset(r, 0, sizeof *r);
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->out = -1;
    p->result = -1;
    r->p = p;
    *rp = r;
    return 0;
}

bool bk_prog_recording(const bk_ctx *ctx) { return *bk__ctx_rec((bk_ctx *)ctx) != NULL; }

void bk_prog_taint(bk_ctx *ctx, const char *why) {
    bk_rec *r = *bk__ctx_rec(ctx);
    if (r) rec_fail(r, why);
}

void bk_prog_input(bk_ctx *ctx, bk_tensor *leaf, int64_t offset) {
    bk_rec *r = *bk__ctx_rec(ctx);
    if (!r || r->failed || !leaf) return;
    bk_prog *p = r->p;
    if (leaf->dtype != BK_F64 || lookup(r, leaf) >= 0) {
        rec_fail(r, "an input is not a new float64 tensor");
        return;
    }
    if (GROW(ctx, p->inputs, p->ninputs, p->capinputs)) {
        rec_fail(r, "out of memory");
        return;
    }
    int32_t s = new_slot(ctx, r, leaf, -1);
    if (s < 0) {
        rec_fail(r, "out of memory");
        return;
    }
    prog_input *in = &p->inputs[p->ninputs++];
    in->slot = s;
    in->ndim = leaf->ndim;
    memcpy(in->shape, leaf->shape, sizeof in->shape);
    in->numel = leaf->numel;
    in->offset = offset;
    in->noise = false;
}

void bk_prog_noise(bk_ctx *ctx, bk_tensor *t) {
    bk_rec *r = *bk__ctx_rec(ctx);
    if (!r || r->failed || !t) return;
    if (t->requires_grad) {
        rec_fail(r, "a noise input that needs a gradient");
        return;
    }
    bk_prog_input(ctx, t, -1);
    if (!r->failed) r->p->inputs[r->p->ninputs - 1].noise = true;
}

double bk_prog_result(bk_ctx *ctx, const bk_tensor *t) {
    bk_rec **rp = bk__ctx_rec(ctx);
    bk_rec *r = *rp;
    if (r && !r->failed) {
        int32_t s = lookup(r, t);
        if (s >= 0 && r->p->result >= 0 && r->p->result != s) rec_fail(r, "two results");
        else if (s >= 0 && t->numel != 1) rec_fail(r, "a result of more than one element");
        else if (s >= 0) r->p->result = s;
    }
    *rp = NULL; /* the read is not an escape */
    double v = bk_item(t);
    *rp = r;
    return v;
}

void bk_prog_output(bk_ctx *ctx, bk_tensor *t) {
    bk_rec *r = *bk__ctx_rec(ctx);
    if (!r || r->failed || !t) return;
    bk_prog *p = r->p;
    if (GROW(ctx, p->outs, p->nouts, p->capouts)) {
        rec_fail(r, "out of memory");
        return;
    }
    prog_out *o = &p->outs[p->nouts++];
    o->slot = lookup(r, t);
    o->konst = o->slot < 0 ? bk_retain(t) : NULL;
    o->numel = t->numel;
}

int64_t bk_prog_outputs_numel(const bk_prog *p) {
    int64_t n = 0;
    for (size_t i = 0; i < p->nouts; i++) n += p->outs[i].numel;
    return n;
}

size_t bk_prog_ninputs(const bk_prog *p) { return p->ninputs; }

int64_t bk_prog_noise_count(const bk_prog *p) {
    int64_t n = 0;
    for (size_t i = 0; i < p->ninputs; i++)
        if (p->inputs[i].noise) n += p->inputs[i].numel;
    return n;
}

bool bk_prog_noise_matches(const bk_prog *p, const bk_rng *before, const bk_rng *after) {
    bk_rng r = *before;
    for (int64_t k = bk_prog_noise_count(p); k > 0; k--) (void)bk_rng_normal(&r);
    return memcmp(&r, after, sizeof r) == 0;
}

static bool is_float64_cpu(const bk_tensor *t) { return t->dtype == BK_F64 && t->st->dev == &bk_cpu_device; }

/* The index list is most of bk_opargs and mostly unused: copy the entries
 * in use, retaining index tensors. */
static void args_copy(bk_opargs *dst, const bk_opargs *src) {
    memcpy(dst, src, offsetof(bk_opargs, idx));
    for (int i = 0; i < src->nidx; i++) {
        dst->idx[i] = src->idx[i];
        if (dst->idx[i].kind == BK_IDX_TENSOR) bk_retain(dst->idx[i].idx);
    }
    dst->upper = src->upper;
    dst->trans = src->trans;
    dst->unit = src->unit;
    dst->n = src->n;
}

void bk__prog_note(bk_ctx *ctx, bk_rec *r, int op, int nin, bk_tensor **in, const bk_opargs *args,
                   bk_tensor *out) {
    if (r->failed) return;
    bool dep = false;
    for (int k = 0; k < nin; k++) dep = dep || lookup(r, in[k]) >= 0;
    if (args)
        for (int k = 0; k < args->nidx && k < BK_MAXDIM; k++)
            if (args->idx[k].kind == BK_IDX_TENSOR && lookup(r, args->idx[k].idx) >= 0) {
                rec_fail(r, "an index tensor depends on a random value");
                return;
            }
    if (!dep) return;                    /* a constant */
    if (lookup(r, out) >= 0) return;     /* the op returned an input itself */
    if (nin > 64 || nin > INT16_MAX) {
        rec_fail(r, "an op with too many inputs");
        return;
    }
    for (int k = 0; k < nin; k++)
        if (!is_float64_cpu(in[k])) {
            rec_fail(r, "a float32 or non-CPU tensor");
            return;
        }
    if (!is_float64_cpu(out)) {
        rec_fail(r, "a float32 or non-CPU tensor");
        return;
    }
    bk_prog *p = r->p;
    if (GROW(ctx, p->ins, p->nins, p->capins)) goto oom;
    prog_ins *I = &p->ins[p->nins];
    I->op = (int16_t)op;
    I->nin = (int16_t)nin;
    I->src = (int32_t)p->nsrcs;
    I->guard = 0;
    I->args = 0;
    for (int k = 0; k < nin; k++) {
        if (GROW(ctx, p->srcs, p->nsrcs, p->capsrcs)) goto oom;
        int32_t s = lookup(r, in[k]);
        if (s < 0) {
            if (GROW(ctx, p->consts, p->nconsts, p->capconsts)) goto oom;
            p->consts[p->nconsts] = bk_retain(in[k]);
            s = -(int32_t)(++p->nconsts);
        }
        p->srcs[p->nsrcs++] = s;
    }
    if (args) {
        if (GROW(ctx, p->args, p->nargs, p->capargs)) goto oom;
        args_copy(&p->args[p->nargs], args);
        I->args = (int32_t)++p->nargs;
    }
    I->out = new_slot(ctx, r, out, op);
    if (I->out < 0) goto oom;
    p->nins++;
    return;
oom:
    rec_fail(r, "out of memory");
}

/* Every element is 0 or 1: a truth value (a comparison, a product of
 * comparisons).  (Called with the recorder's reads off.) */
static bool zero_one(const bk_tensor *t) {
    for (int64_t k = 0; k < t->numel; k++) {
        double v = bk_get(t, k);
        if (v != 0 && v != 1) return false;
    }
    return true;
}

/* The guard on slot s of this kind (a bits guard when pred is NULL), new
 * or found; NULL when out of memory (the recording then fails). */
static prog_guard *add_guard(bk_ctx *ctx, bk_rec *r, int32_t s, bool (*pred)(int, double), int kind) {
    bk_prog *p = r->p;
    for (size_t i = 0; i < p->nguards; i++)
        if (p->guards[i].slot == s && p->guards[i].pred == pred && p->guards[i].kind == kind)
            return &p->guards[i];
    if (GROW(ctx, p->guards, p->nguards, p->capguards)) {
        rec_fail(r, "out of memory");
        return NULL;
    }
    prog_guard *g = &p->guards[p->nguards++];
    memset(g, 0, sizeof *g);
    g->slot = s;
    g->on_input = r->made_by[s] < 0;
    g->pred = pred;
    g->kind = kind;
    return g;
}

void bk__prog_read(bk_ctx *ctx, bk_rec *r, const bk_tensor *t) {
    if (r->failed) return;
    int32_t s = lookup(r, t);
    if (s < 0) return;
    if (!zero_one(t)) {
        rec_fail(r, "a value that depends on a random value was read by the host "
                    "(control flow, an index or a shape computed from it)");
        return;
    }
    prog_guard *g = add_guard(ctx, r, s, NULL, 0);
    if (!g || g->vals) return;
    g->numel = t->numel;
    g->vals = bk_malloc(ctx, (size_t)(t->numel ? t->numel : 1) * sizeof(double));
    if (!g->vals) {
        rec_fail(r, "out of memory");
        return;
    }
    bk_copy_out(t, g->vals);
}

int64_t bk_prog_check_all(bk_ctx *ctx, const bk_tensor *t, bool (*pred)(int kind, double v),
                          bool (*all)(int kind, const double *v, int64_t n), int kind) {
    bk_rec **rp = bk__ctx_rec(ctx);
    bk_rec *r = *rp;
    *rp = NULL; /* these reads are the guard's own */
    int64_t bad = -1;
    if (t->dtype == BK_F64 && bk_is_contiguous(t) && bk_tensor_device(t) == &bk_cpu_device) {
        const double *x = bk_data(t); /* (a network's outputs: 10^5 values) */
        if (!all || !all(kind, x, t->numel))
            for (int64_t k = 0; k < t->numel && bad < 0; k++)
                if (!pred(kind, x[k])) bad = k;
    } else {
        for (int64_t k = 0; k < t->numel && bad < 0; k++)
            if (!pred(kind, bk_get(t, k))) bad = k;
    }
    *rp = r;
    if (r && !r->failed && bad < 0) {
        int32_t s = lookup(r, t);
        prog_guard *g = s >= 0 ? add_guard(ctx, r, s, pred, kind) : NULL;
        if (g) g->all = all;
    }
    return bad;
}

void bk__prog_view(bk_ctx *ctx, bk_rec *r, const bk_tensor *base) {
    (void)ctx;
    if (!r->failed && lookup(r, base) >= 0) rec_fail(r, "a view of a value that depends on a random value");
}

/* Keep only the ops the outputs or a guard needs. */
static int prune(bk_ctx *ctx, bk_prog *p) {
    char *live = bk_malloc(ctx, (size_t)p->nslots + 1);
    if (!live) return -1;
    memset(live, 0, (size_t)p->nslots + 1);
    if (p->out >= 0) live[p->out] = 1;
    if (p->result >= 0) live[p->result] = 1;
    for (size_t i = 0; i < p->nouts; i++)
        if (p->outs[i].slot >= 0) live[p->outs[i].slot] = 1;
    for (size_t i = 0; i < p->nguards; i++) live[p->guards[i].slot] = 1;
    size_t n = 0;
    for (size_t i = p->nins; i-- > 0;) {
        const prog_ins *I = &p->ins[i];
        if (!live[I->out]) continue;
        for (int k = 0; k < I->nin; k++)
            if (p->srcs[I->src + k] >= 0) live[p->srcs[I->src + k]] = 1;
    }
    for (size_t i = 0; i < p->nins; i++)
        if (live[p->ins[i].out]) p->ins[n++] = p->ins[i];
    p->nins = n;
    bk_free(ctx, live);
    return 0;
}

bk_prog *bk_prog_end(bk_ctx *ctx, bk_tensor *out, char *why, size_t whylen) {
    bk_rec **rp = bk__ctx_rec(ctx);
    bk_rec *r = *rp;
    *rp = NULL;
    if (!r) {
        if (why && whylen) snprintf(why, whylen, "no recording was running");
        return NULL;
    }
    bk_prog *p = r->p;
    int32_t s = out ? lookup(r, out) : -1;
    if (!r->failed && (out || !p->nouts) && (s < 0 || out->numel != 1))
        rec_fail(r, "the output does not depend on the inputs");
    if (!r->failed) {
        p->out = s;
        if (prune(ctx, p)) rec_fail(r, "out of memory");
    }
    if (!r->failed) {
        /* chain the guards of each op's output to the op */
        for (size_t i = 0; i < p->nins; i++) p->ins[i].guard = 0;
        for (size_t g = p->nguards; g-- > 0;)
            for (size_t i = 0; i < p->nins; i++)
                if (p->ins[i].out == p->guards[g].slot) {
                    p->guards[g].next = p->ins[i].guard;
                    p->ins[i].guard = (int32_t)g + 1;
                }
        p->val = bk_malloc(ctx, (size_t)p->nslots * sizeof *p->val);
        if (!p->val) rec_fail(r, "out of memory");
        else memset(p->val, 0, (size_t)p->nslots * sizeof *p->val);
    }
    if (r->failed) {
        if (why && whylen) snprintf(why, whylen, "%s", r->why);
        rec_free(ctx, r);
        return NULL;
    }
    p->nat = bk__native_compile(p, r->held);
    for (int32_t k = p->nslots; k-- > 0;) bk_release(r->held[k]);
    r->p = NULL;
    rec_free(ctx, r);
    if (why && whylen) why[0] = 0;
    return p;
}

size_t bk_prog_len(const bk_prog *p) { return p ? p->nins : 0; }
bool bk_prog_native(const bk_prog *p) { return p && p->nat; }

/* -------------------------------------------------------------- replay --- */

static bool guard_holds(const prog_guard *g, const bk_tensor *t) {
    if (g->pred) {
        for (int64_t k = 0; k < t->numel; k++)
            if (!g->pred(g->kind, bk_get(t, k))) return false;
        return true;
    }
    if (t->numel != g->numel) return false;
    for (int64_t k = 0; k < g->numel; k++)
        if (bk_get(t, k) != g->vals[k]) return false;
    return true;
}

/* Every guard of the chain starting at 1 + index gi holds for t. */
static bool guards_hold(const bk_prog *p, int32_t gi, const bk_tensor *t) {
    for (; gi; gi = p->guards[gi - 1].next)
        if (!guard_holds(&p->guards[gi - 1], t)) return false;
    return true;
}

int bk_prog_run(bk_prog *p, bk_ctx *ctx, const double *x, double *value, double *grad) {
    bk_prog_io io = {.x = x, .grad = grad};
    int rc = bk_prog_exec(p, ctx, &io);
    *value = io.value;
    return rc;
}

int bk_prog_exec(bk_prog *p, bk_ctx *ctx, bk_prog_io *io) {
    bk_tape_reset(ctx); /* (a replay leaves it empty) */
    io->result = NAN;
    if (bk_prog_noise_count(p) > 0 && !io->rng) return 1;
    if (p->nat) return bk__native_run(p, p->nat, io);
    double *grad = io->grad;
    bool g = bk_set_grad_enabled(ctx, grad != NULL);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->ninputs; i++) {
        const prog_input *in = &p->inputs[i];
        bk_tensor *t = in->noise ? bk_rand_normal(ctx, io->rng, in->ndim, in->shape)
                                 : bk_from_f64(ctx, in->ndim, in->shape, io->x + in->offset);
        if (!t) rc = 1;
        else if (grad && !in->noise) bk_set_requires_grad(t, true);
        p->val[in->slot] = t;
    }
    for (size_t i = 0; rc == 0 && i < p->nguards; i++)
        if (p->guards[i].on_input && !guard_holds(&p->guards[i], p->val[p->guards[i].slot])) rc = 1;
    for (size_t i = 0; rc == 0 && i < p->nins; i++) {
        const prog_ins *I = &p->ins[i];
        bk_tensor *in[64];
        for (int k = 0; k < I->nin; k++) {
            int32_t s = p->srcs[I->src + k];
            in[k] = s >= 0 ? p->val[s] : p->consts[-s - 1];
        }
        bk_tensor *o = bk_apply(ctx, I->op, I->nin, in, I->args ? &p->args[I->args - 1] : NULL);
        p->val[I->out] = o;
        if (!o || (I->guard && !guards_hold(p, I->guard, o))) rc = 1;
    }
    if (rc == 0 && io->outs) {
        double *v = io->outs;
        for (size_t i = 0; i < p->nouts; i++) {
            const prog_out *o = &p->outs[i];
            bk_copy_out(o->slot >= 0 ? p->val[o->slot] : o->konst, v);
            v += o->numel;
        }
    }
    if (rc == 0 && p->out < 0) io->value = NAN;
    if (rc == 0 && p->out >= 0) {
        bk_tensor *out = p->val[p->out];
        io->value = bk_item(out);
        if (p->result >= 0) io->result = bk_item(p->val[p->result]);
        if (grad) {
            if (out->requires_grad && bk_backward(ctx, out)) rc = 1;
            for (size_t i = 0; rc == 0 && i < p->ninputs; i++) {
                const prog_input *in = &p->inputs[i];
                bk_tensor *t = p->val[in->slot];
                bool got = out->requires_grad && t->grad;
                if (io->has) io->has[i] = got;
                if (in->noise) continue;
                if (got) bk_copy_out(t->grad, grad + in->offset);
                else memset(grad + in->offset, 0, (size_t)in->numel * sizeof *grad);
            }
        }
    }
    bk_tape_reset(ctx);
    for (int32_t s = 0; s < p->nslots; s++) {
        bk_release(p->val[s]);
        p->val[s] = NULL;
    }
    bk_set_grad_enabled(ctx, g);
    return rc;
}

void bk_prog_dump(const bk_prog *p, FILE *f) {
    for (size_t i = 0; i < p->ninputs; i++)
        fprintf(f, "input s%d (%lld elements %s %lld)\n", p->inputs[i].slot, (long long)p->inputs[i].numel,
                p->inputs[i].noise ? "of noise" : "at", (long long)p->inputs[i].offset);
    for (size_t i = 0; i < p->nins; i++) {
        const prog_ins *I = &p->ins[i];
        fprintf(f, "s%d = %s(", I->out, bk_optable[I->op].name);
        for (int k = 0; k < I->nin; k++) {
            int32_t s = p->srcs[I->src + k];
            const bk_tensor *t = s < 0 ? p->consts[-s - 1] : NULL;
            if (s >= 0) fprintf(f, "%ss%d", k ? ", " : "", s);
            else fprintf(f, "%sconst[%lld]", k ? ", " : "", (long long)t->numel);
        }
        fprintf(f, ")%s\n", I->guard ? " guarded" : "");
    }
    if (p->out >= 0) fprintf(f, "output s%d\n", p->out);
    for (size_t i = 0; i < p->nouts; i++) {
        if (p->outs[i].slot >= 0) fprintf(f, "output %zu: s%d\n", i, p->outs[i].slot);
        else fprintf(f, "output %zu: const[%lld]\n", i, (long long)p->outs[i].numel);
    }
}
