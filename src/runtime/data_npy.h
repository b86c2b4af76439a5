/* data_npy.h - NumPy .npy files (see data_npy.c for what is read). */
#ifndef PPL_RUNTIME_DATA_NPY_H
#define PPL_RUNTIME_DATA_NPY_H

#include <stddef.h>
#include "value.h"

/* Parse the bytes of an NPY file into a new float64 tensor.  0, or -1 with
 * "NAME: byte K: message" in err (-2 when out of memory). */
int rt_parse_npy(bk_ctx *ctx, const char *name, const unsigned char *buf, size_t len, bk_tensor **out,
                 char *err, size_t errlen);
/* load_npy(path): errors are reported at callloc (PPL_ERR_IO when the file
 * cannot be read). */
int rt_load_npy(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out);

#endif
