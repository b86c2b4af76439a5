/* ops_table.c - the op name table: binds each op of BK_OPS to its forward
 * kernel and backward rule (see ops_impl.h for the naming convention). */
#include "ops_impl.h"

const bk_opinfo bk_optable[BK_OP_COUNT] = {
#define BK_OP_ROW(E, nm, n, d) [BK_OP_##E] = {nm, n, d, bk_fw_##E, bk_bw_##E},
    BK_OPS(BK_OP_ROW)
#undef BK_OP_ROW
};
