/* mcmc_clone.h - a private VM with deep copies of a model, the globals it
 * reaches and its data, for running a chain on another thread. */
#ifndef PPL_INFER_MCMC_CLONE_H
#define PPL_INFER_MCMC_CLONE_H

#include "vm.h"

typedef struct inf_clone {
    rt_vm *vm;
    rt_func *model;
    rt_record *data;   /* NULL when there is none */
} inf_clone;

/* 0, or -1 when the model reaches a value that cannot be copied (a
 * distribution or opaque value in a global), has `param` sites, or memory
 * ran out: the caller then runs its chains on its own VM. */
int inf_clone_make(rt_vm *vm, const rt_func *model, const rt_record *data, inf_clone *out);
void inf_clone_free(inf_clone *c);

#endif
