/* svi_fast.c - Trace_ELBO steps replayed from a recording (svi_fast.h).
 *
 * Inputs of the program: every parameter's unconstrained tensor (in the
 * store's order), then the noise the guide drew (bk_rand_normal registers
 * it).  Outputs: the surrogate loss (differentiated) and the ELBO (the
 * value svi.c reads with bk_prog_result).  A recording is kept only when
 * the noise accounts for every draw of the step (a plate's subsample
 * permutation, a gamma or discrete draw: no program) and the step had no
 * score-function term; the first replays are checked against an
 * interpreted step on the same noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "svi_fast.h"

#define SVI_FAST_VERIFY 2

void inf_svi_fast_init(inf_svi_fast *f, const inf_svi_opts *o) {
    memset(f, 0, sizeof *f);
    f->on = !o->no_fast && o->particles == 1 && !o->renyi && !o->mean_field;
    f->state = f->on ? 0 : 2;
    f->verify = SVI_FAST_VERIFY;
}

static void drop(inf_svi_fast *f, const char *why) {
    bk_prog_free(f->prog);
    f->prog = NULL;
    f->state = 2;
    f->pending = false;
    if (why) snprintf(f->why, sizeof f->why, "%s", why);
}

void inf_svi_fast_free(inf_svi_fast *f) {
    bk_prog_free(f->prog);
    free(f->off);
    free(f->x);
    free(f->g);
    free(f->vg);
    free(f->has);
    free(f->vhas);
    memset(f, 0, sizeof *f);
}

void inf_svi_fast_begin(inf_svi_fast *f, rt_vm *vm) {
    if (f->state != 0 || vm->params.n == 0 || bk_prog_recording(vm->bk)) return;
    if (bk_prog_begin(vm->bk)) {
        bk_clearerr(vm->bk);
        return;
    }
    f->recording = true;
    f->rng0 = vm->rng;
    f->nparams = vm->params.n;
    int64_t off = 0;
    for (int i = 0; i < vm->params.n; i++) {
        bk_tensor *u = vm->params.items[i].u;
        bk_prog_input(vm->bk, u, off);
        off += u->numel;
    }
    f->dim = off;
}

void inf_svi_fast_end(inf_svi_fast *f, rt_vm *vm, bk_tensor *l, bool scored) {
    if (!f->recording) return;
    f->recording = false;
    if (scored) bk_prog_taint(vm->bk, "a score-function term (its signal is a host value)");
    bk_prog *p = bk_prog_end(vm->bk, l, f->why, sizeof f->why);
    if (vm->params.n != f->nparams) { /* a parameter was created: record the next step */
        bk_prog_free(p);
        return;
    }
    if (!p) {
        f->state = 2;
        return;
    }
    if (!bk_prog_noise_matches(p, &f->rng0, &vm->rng)) {
        bk_prog_free(p);
        drop(f, "the step draws random numbers besides the guide's standard normal noise "
                "(a subsample, a non-normal draw)");
        return;
    }
    size_t n = (size_t)(f->dim ? f->dim : 1), np = (size_t)f->nparams;
    size_t ni = bk_prog_ninputs(p); /* has[] covers the noise inputs too */
    f->off = malloc(np * sizeof *f->off);
    f->x = malloc(n * sizeof *f->x);
    f->g = malloc(n * sizeof *f->g);
    f->vg = malloc(n * sizeof *f->vg);
    f->has = malloc(ni + 1);
    f->vhas = malloc(ni + 1);
    if (!f->off || !f->x || !f->g || !f->vg || !f->has || !f->vhas) {
        bk_prog_free(p);
        drop(f, "out of memory");
        return;
    }
    int64_t off = 0;
    for (int i = 0; i < f->nparams; i++) {
        f->off[i] = off;
        off += vm->params.items[i].u->numel;
    }
    f->prog = p;
    f->state = 1;
}

/* The replay's gradients into the parameters' ->grad, as a backward pass
 * leaves them (a tensor of the parameter's shape, or none). */
static bool set_grads(inf_svi_fast *f, rt_vm *vm) {
    for (int i = 0; i < f->nparams; i++) {
        bk_tensor *u = vm->params.items[i].u;
        bk_zero_grad(u);
        if (!f->has[i]) continue;
        u->grad = bk_from_f64(vm->bk, u->ndim, u->shape, f->g + f->off[i]);
        if (!u->grad) return false;
    }
    return true;
}

bool inf_svi_fast_step(inf_svi_fast *f, rt_vm *vm, double *elbo) {
    f->pending = false;
    if (f->state != 1) return false;
    if (vm->params.n != f->nparams) {
        drop(f, "the parameters changed");
        return false;
    }
    for (int i = 0; i < f->nparams; i++) {
        const bk_tensor *u = vm->params.items[i].u;
        int64_t numel = (i + 1 < f->nparams ? f->off[i + 1] : f->dim) - f->off[i];
        if (u->numel != numel) {
            drop(f, "the parameters changed");
            return false;
        }
        bk_copy_out(u, f->x + f->off[i]);
    }
    bk_rng saved = vm->rng;
    bk_prog_io io = {.x = f->x, .rng = &vm->rng, .grad = f->g, .has = f->has};
    int rc = bk_prog_exec(f->prog, vm->bk, &io);
    if (rc || !isfinite(io.value) || !isfinite(io.result)) {
        vm->rng = saved; /* interpretation draws the same noise (and reports what went wrong) */
        return false;
    }
    if (f->verify > 0) { /* interpret the same step too, then compare (inf_svi_fast_check) */
        f->pending = true;
        f->vloss = io.result;
        memcpy(f->vg, f->g, (size_t)f->dim * sizeof *f->g);
        memcpy(f->vhas, f->has, (size_t)f->nparams);
        f->vrng = vm->rng;
        vm->rng = saved;
        return false;
    }
    if (!set_grads(f, vm)) {
        vm->rng = saved;
        for (int i = 0; i < f->nparams; i++) bk_zero_grad(vm->params.items[i].u);
        bk_clearerr(vm->bk);
        return false;
    }
    f->replays++;
    *elbo = io.result;
    return true;
}

static bool same_double(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

void inf_svi_fast_check(inf_svi_fast *f, rt_vm *vm, double elbo) {
    if (!f->pending) return;
    f->pending = false;
    bool same = same_double(f->vloss, elbo) && memcmp(&f->vrng, &vm->rng, sizeof f->vrng) == 0;
    for (int i = 0; same && i < f->nparams; i++) {
        const bk_tensor *u = vm->params.items[i].u;
        same = (u->grad != NULL) == (f->vhas[i] != 0);
        for (int64_t k = 0; same && u->grad && k < u->numel; k++)
            same = same_double(bk_get(u->grad, k), f->vg[f->off[i] + k]);
    }
    if (same) f->verify--;
    else drop(f, "a replay differed from the interpreted step");
}
