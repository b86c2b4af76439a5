/* program_native.h - the compiled replay's instruction and buffers, shared
 * by program_native.c (compiling, the elementwise kinds, the replay loop)
 * and program_native_ops.c (the kinds for broadcasting, reductions, scans,
 * indexing, concatenation, and any other op called through its kernel). */
#ifndef PPL_BACKEND_PROGRAM_NATIVE_H
#define PPL_BACKEND_PROGRAM_NATIVE_H

#include "program_impl.h"

enum {
    K_SCALAR, K_MAP, K_WHERE, K_FUSED, K_SUM, K_MATVEC,
    /* program_native_ops.c */
    K_BMAP,   /* pointwise op or where with broadcasting over any shapes */
    K_RED,    /* sum, mean, max, min, prod, logsumexp along an axis or all */
    K_SCAN,   /* cumsum, softmax, log_softmax along an axis */
    K_GATHER, /* out[i] = x[offs[i]]: index, index_select, gather, expand,
                 reshape, transpose, contiguous */
    K_CONCAT, /* concat, stack */
    K_SOLVE,  /* a constant triangular [n, n] matrix solving a vector (the
                 MultivariateNormal density's L^-1 (x - loc)) */
    K_CALL    /* any other op: its kernel and backward rule on tensors */
};

typedef struct natx natx; /* a program_native_ops.c kind's own data */

typedef struct nat_ins {
    int16_t op;
    uint8_t kind;
    uint8_t nin;
    uint8_t rg;                   /* the output needs a gradient (on the tape) */
    int32_t out;                  /* slot */
    int32_t guard;                /* 1 + first guard on out, 0: none */
    int64_t n;                    /* output elements */
    int32_t src[BK_MAXIN];        /* input slot, -1 for a constant */
    const double *x[BK_MAXIN];    /* input values */
    int64_t inc[BK_MAXIN];        /* 0: one element repeated, 1: n elements */
    const bk_fused *fused;
    double *o;                    /* the output's values */
    double *ga;                   /* the output's tensor adjoint (in at) */
    int64_t m, k;                 /* K_MATVEC: a constant [m, k] matrix times x[1] */
    uint8_t pass[BK_MAXIN];       /* K_SCALAR: input k gets 0 nothing, 1 a scalar
                                     adjoint, 2 a leaf's gradient */
    natx *ext;                    /* the kinds from K_BMAP on, else NULL */
    uint8_t bw;                   /* the backward sweep runs this instruction (rg, and
                                     not a chain's member before its last) */
    uint8_t cpos;                 /* a chain's member after its first: the input that is
                                     the member before's output */
    int32_t chain;                /* a chain's last member: the chain's length (the
                                     members are this one and the chain - 1 before) */
    uint8_t need;                 /* bit k: input k is a slot that needs a gradient */
    uint8_t alone;                /* bit k: input k is a slot of n elements that no
                                     other input of this op is (K_FUSED's direct writes) */
} nat_ins;

struct bk_native {
    bk_ctx *ctx;
    nat_ins *ins;
    size_t nins;
    int32_t nslots;
    int64_t *off;                 /* per slot: first element in val / at */
    int64_t *numel;
    uint8_t *rg;                  /* per slot: needs a gradient */
    uint8_t *leaf;                /* per slot: an input */
    double *val, *at, *as;
    uint8_t *has;                 /* per slot: HAS_S, HAS_T, HAS_U (program_native.c) */
    double *scratch;              /* BK_MAXIN runs of the largest n */
    int64_t maxn;
    size_t ncall;                 /* K_CALL instructions (bk__natx_done's work) */
    size_t input_guards;          /* guards on inputs (checked before the ops) */
};

/* ops_linalg.c's one-right-hand-side triangular solve, the loops
 * solve_triangular runs for a vector: x = op(A)^-1 x, A [n, n] row-major
 * (upper or lower, op the transpose when trans, a unit diagonal not read
 * when unit); false on a zero diagonal entry (x is then partly solved).
 * program_native_ops.c's K_SOLVE calls it on the replay's own buffers:
 * the interpreted op's bits, with no tensor made or copied. */
bool bk__trsv(int64_t n, const double *A, bool upper, bool trans, bool unit, double *x);

/* The kind (K_*) of compiled instruction i of p, -1 when p is not
 * compiled (for the tests). */
int bk__native_kind(const bk_prog *p, size_t i);
/* The length of the chain of scalar additions (program_native.c's
 * find_chains) instruction i of p ends, 0 when none ends there or p is not
 * compiled (for the tests). */
int bk__native_chain(const bk_prog *p, size_t i);

/* The tensor adjoint of slot s += c (m elements: s's own, or its single
 * element gets the four-way sum of c), as tensor.c's accumulate. */
void bk__nat_accumulate(bk_native *N, int32_t s, const double *c, int64_t m);

/* program_native_ops.c.  The kind of instruction I (inputs in, output out
 * as recorded) among K_BMAP ... K_CALL, its data in J->ext; -1 when none
 * applies (the program is then replayed through bk_apply), or out of
 * memory.  */
int bk__natx_compile(bk_native *N, const bk_prog *p, const prog_ins *pi, bk_tensor *const *in,
                     const bk_tensor *out, nat_ins *J);
void bk__natx_free(bk_ctx *ctx, natx *x);
/* J's forward into J->o; 0, or -1 when the op failed (K_CALL). */
int bk__natx_forward(bk_native *N, const nat_ins *J);
/* J's backward, g its output's gradient: contributions accumulated into
 * its inputs' tensor adjoints; 0 or -1. */
int bk__natx_backward(bk_native *N, const nat_ins *J, const double *g);
/* Drop what K_CALL instructions hold from the last replay. */
void bk__natx_done(bk_native *N);

#endif
