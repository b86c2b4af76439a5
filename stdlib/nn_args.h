/* nn_args.h - argument parsing shared by the network builtins
 * (nn_builtins.c: MLP, Linear, LayerNorm; nn_bayes.c: BayesMLP,
 * BayesLinear, BayesGuide), so both give the same messages. */
#ifndef PPL_STDLIB_NN_ARGS_H
#define PPL_STDLIB_NN_ARGS_H

#include <stdint.h>
#include "vm.h"

/* Keyword `kw` naming an activation ("relu", ..., "none"), dflt when absent. */
int nn_act_arg(rt_vm *vm, const rt_call *c, const char *kw, int dflt, int *act);
/* v (argument `pos`, called `what` in the message) as a positive integer size. */
int nn_size_arg(rt_vm *vm, const rt_call *c, int pos, const char *what, double v, int64_t *out);
/* The random stream of a named weight (FNV-1a of the name): initial values
 * depend on the seed and the name only, not on creation order. */
uint64_t nn_name_stream(const char *name);

#endif
