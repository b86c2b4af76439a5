/* program_impl.h - the inside of a recorded program, shared by program.c
 * (recording, replay through the backend's ops) and program_native.c (the
 * compiled replay on plain double buffers). */
#ifndef PPL_BACKEND_PROGRAM_IMPL_H
#define PPL_BACKEND_PROGRAM_IMPL_H

#include "program.h"

typedef struct prog_ins {
    int16_t op;
    int16_t nin;
    int32_t out;      /* slot */
    int32_t src;      /* index of the first of nin entries in prog.srcs */
    int32_t args;     /* 1 + index into prog.args, 0: none */
    int32_t guard;    /* 1 + index into prog.guards, 0: none */
} prog_ins;

typedef struct prog_input {
    int32_t slot;
    int ndim;
    int64_t shape[BK_MAXDIM];
    int64_t numel, offset;
    bool noise;       /* drawn N(0, 1) from io->rng at each replay (offset unused) */
} prog_input;

typedef struct prog_guard {
    int32_t slot;
    int32_t next;     /* 1 + index of the next guard on the same slot, 0: none */
    bool on_input;
    int64_t numel;
    double *vals;     /* bits guard: the 0/1 values seen when recording */
    bool (*pred)(int kind, double v); /* else: pred(kind, v) for every element */
    bool (*all)(int kind, const double *v, int64_t n); /* pred on all n at once, or NULL */
    int kind;
} prog_guard;

/* One more output (bk_prog_output): a slot, or a constant tensor. */
typedef struct prog_out {
    int32_t slot;     /* -1: konst */
    bk_tensor *konst; /* a value that does not depend on the inputs (a reference) */
    int64_t numel;
} prog_out;

struct bk_prog {
    bk_ctx *ctx;
    prog_ins *ins;
    size_t nins, capins;
    int32_t *srcs;    /* slot >= 0, or -(1 + k) for constant k */
    size_t nsrcs, capsrcs;
    bk_opargs *args;
    size_t nargs, capargs;
    bk_tensor **consts;
    size_t nconsts, capconsts;
    prog_input *inputs;
    size_t ninputs, capinputs;
    prog_guard *guards;
    size_t nguards, capguards;
    prog_out *outs;   /* bk_prog_output's, in registration order */
    size_t nouts, capouts;
    int32_t nslots, out; /* out -1: no scalar output (a program of outputs only) */
    int32_t result;   /* the slot bk_prog_result read, -1: none */
    bk_tensor **val;  /* per slot, during a replay */
    struct bk_native *nat; /* the compiled form (program_native.c), or NULL */
};

typedef struct bk_native bk_native;
/* The compiled form of p (held[s]: the tensor slot s held when recording),
 * or NULL when some op has no native replay (p is
 * then replayed through bk_apply).  NULL also when out of memory. */
bk_native *bk__native_compile(bk_prog *p, bk_tensor *const *held);
void bk__native_free(bk_ctx *ctx, bk_native *n);
/* As bk_prog_exec. */
int bk__native_run(bk_prog *p, bk_native *n, bk_prog_io *io);

#endif
