/* ops_impl.h - naming convention binding the op table to the op files.
 * Every op E in BK_OPS defines, in one of the ops_*.c files,
 *     bk_tensor *bk_fw_E(bk_ctx *, bk_tensor **in, const bk_opargs *);
 *     int        bk_bw_E(bk_ctx *, const bk_tape_entry *, bk_tensor *gout,
 *                        bk_tensor **gin);
 * (non-differentiable ops define bk_bw_E to leave gin NULL and return 0).
 * ops_table.c builds bk_optable from these names, so an op missing either
 * function fails to link. */
#ifndef PPL_BACKEND_OPS_IMPL_H
#define PPL_BACKEND_OPS_IMPL_H
#include "tensor.h"

#define BK_DECLARE_OP(E, name, nin, diff)                                    \
    bk_tensor *bk_fw_##E(bk_ctx *, bk_tensor **, const bk_opargs *);        \
    int bk_bw_##E(bk_ctx *, const bk_tape_entry *, bk_tensor *, bk_tensor **);
BK_OPS(BK_DECLARE_OP)
#undef BK_DECLARE_OP

#endif
