/* program.h - recorded-op programs: the fast path of DESIGN 2.2.5.
 *
 * When a model's structure does not depend on its random values, the ops
 * one evaluation makes are the same at every point.  A recording notes,
 * for one evaluation, every op whose inputs depend on the registered
 * inputs (the leaves: an unconstrained vector for MCMC), the constants the
 * other inputs are (data, values computed once), and the output.  A replay
 * then runs that op list at a new point: no interpretation, no handlers,
 * no distribution objects, only the backend's ops, their tape and the
 * reverse sweep, so value and gradient are bit-identical to an
 * interpreted evaluation at the same point.
 *
 * Soundness.  A program is made only if nothing that depends on an input
 * left the recorded ops: a host read of such a tensor (bk_item, bk_get,
 * bk_copy_out, bk_data: an `if` on a latent, an integer index or a shape
 * computed from one, printing) ends the recording without a program, as
 * does an index tensor computed from an input, a direct view of one, or a
 * float32 or non-CPU tensor among the recorded ops.  One exception keeps
 * the common support checks on the fast path: a read of a tensor of truth
 * values, all 0 or 1 (`ok = x > 0`, then "all true?"), becomes a guard: a
 * replay where it holds other values stops and reports it, and the caller
 * evaluates that point by interpretation (bk_prog_check_all makes the
 * same kind of guard for a parameter check).  Random draws are not
 * seen here: the caller must check that none happened (potential.c
 * compares the VM's RNG state).
 */
#ifndef PPL_BACKEND_PROGRAM_H
#define PPL_BACKEND_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "tensor.h"

typedef struct bk_rec bk_rec;    /* a recording in progress */
typedef struct bk_prog bk_prog;  /* a finished program */

/* Start recording on ctx (at most one recording per context).  Record
 * with grad enabled: the program remembers which tensors need a gradient.
 * 0, or -1 with an error set. */
int bk_prog_begin(bk_ctx *ctx);
bool bk_prog_recording(const bk_ctx *ctx);
/* Register `leaf` (a float64 tensor made by the caller, before any op
 * uses it) as an input whose values a replay reads from x[offset ...
 * offset + numel).  No-op when no recording runs. */
void bk_prog_input(bk_ctx *ctx, bk_tensor *leaf, int64_t offset);
/* Mark the recording unusable (a value escaped in a way only the caller
 * sees: a random draw, say).  No-op when no recording runs. */
void bk_prog_taint(bk_ctx *ctx, const char *why);
/* The first k with !pred(kind, t[k]), or -1 when pred holds everywhere
 * (a parameter check: "scale > 0").  While recording, a t that depends on
 * an input gets a guard instead of counting as an escape: a replay where
 * pred fails stops (bk_prog_run returns 1), so the interpreted
 * evaluation raises the error the check raises.  all (or NULL) is pred over
 * n contiguous values at once, true when it holds for every one: the same
 * test in a loop without a call per element (a replay checks 10^4 logits
 * per evaluation); it must agree with pred. */
int64_t bk_prog_check_all(bk_ctx *ctx, const bk_tensor *t, bool (*pred)(int kind, double v),
                          bool (*all)(int kind, const double *v, int64_t n), int kind);
/* Register t as one more output: a replay writes its values (numel, in
 * logical order) to bk_prog_io.outs after those of the outputs registered
 * before it.  A t that does not depend on an input is a constant output
 * (its values now).  No-op when no recording runs.  A program of such
 * outputs only (bk_prog_end with out NULL) may be recorded with grad
 * disabled: its replays compute values, no gradient. */
void bk_prog_output(bk_ctx *ctx, bk_tensor *t);
/* Total elements of the outputs bk_prog_output registered. */
int64_t bk_prog_outputs_numel(const bk_prog *p);
/* Stop recording.  Returns the program computing `out` (a 1-element
 * tensor) from the inputs, or NULL when the recording is unusable (why,
 * when not NULL, receives the reason) or out of memory.  out may be NULL
 * in a program of bk_prog_output's outputs only (its value is then NAN). */
bk_prog *bk_prog_end(bk_ctx *ctx, bk_tensor *out, char *why, size_t whylen);
void bk_prog_free(bk_prog *p);
/* Number of recorded ops after dropping those the output does not need. */
size_t bk_prog_len(const bk_prog *p);

/* Whether p runs compiled on double buffers (program_native.c: the small
 * elementwise models) rather than through the backend's ops. */
bool bk_prog_native(const bk_prog *p);
/* The op list, one line per op (for debugging and the docs). */
void bk_prog_dump(const bk_prog *p, FILE *f);

/* Register t (just filled with standard normal draws from one generator,
 * bk_rand_normal) as a noise input: a replay draws its values afresh, in
 * the order of registration, from the generator it is given, so a replay
 * consumes the stream exactly as the interpreted evaluation would.  No-op
 * when no recording runs. */
void bk_prog_noise(bk_ctx *ctx, bk_tensor *t);
/* bk_item(t) for a value the caller takes as a result of the evaluation
 * (SVI's ELBO before the loss is formed): no escape; a replay returns it
 * (bk_prog_io.result).  At most one such tensor per recording. */
double bk_prog_result(bk_ctx *ctx, const bk_tensor *t);
/* Whether the recording's noise draws account for every draw between the
 * generator states `before` and `after` (nothing else drew from it). */
struct bk_rng;
bool bk_prog_noise_matches(const bk_prog *p, const struct bk_rng *before, const struct bk_rng *after);
/* Number of registered inputs (noise inputs included). */
size_t bk_prog_ninputs(const bk_prog *p);
/* Number of noise draws (elements of the noise inputs) of a replay. */
int64_t bk_prog_noise_count(const bk_prog *p);

/* One replay: inputs x (as registered), noise from rng; out: value, the
 * result (bk_prog_result's tensor, else NAN), and when grad != NULL the
 * gradients (grad[offset + k]; 0 where out does not depend on the input)
 * and, when has != NULL, has[i] = whether registered input i got one
 * (noise inputs never do). */
typedef struct bk_prog_io {
    const double *x;
    struct bk_rng *rng;
    double value, result;
    double *grad;
    unsigned char *has;
    double *outs;     /* bk_prog_outputs_numel values (NULL: not wanted) */
} bk_prog_io;
/* 0: done; 1: a guard or an op failed (evaluate this point another way;
 * the tape is left empty; noise may have been drawn). */
int bk_prog_exec(bk_prog *p, bk_ctx *ctx, bk_prog_io *io);

/* Replay at x: *value = out, and when grad != NULL, grad[offset + k] =
 * d out / d input (0 for inputs out does not depend on).  ctx must be the
 * recording context; its tape is reset before and after.  0: done;
 * 1: a guard failed or an op failed (evaluate this point another way;
 * nothing is left on the tape). */
int bk_prog_run(bk_prog *p, bk_ctx *ctx, const double *x, double *value, double *grad);

/* Internal: the hooks tensor.c calls while a recording runs. */
bk_rec **bk__ctx_rec(bk_ctx *ctx);
void bk__prog_note(bk_ctx *ctx, bk_rec *r, int op, int nin, bk_tensor **in, const bk_opargs *args,
                   bk_tensor *out);
void bk__prog_read(bk_ctx *ctx, bk_rec *r, const bk_tensor *t);
void bk__prog_view(bk_ctx *ctx, bk_rec *r, const bk_tensor *base);

#endif
