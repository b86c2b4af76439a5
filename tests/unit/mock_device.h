/* mock_device.h - a test device whose memory is host memory and which has
 * no kernels but the views: every op takes the CPU fallback and every
 * backward rule runs on host copies.  test_cuda.c runs the op loop against
 * it and test_device_runtime.c whole models, so the device machinery is
 * checked in every build, without a GPU (it cannot catch a host read of
 * device memory: its memory is the host's). */
#ifndef PPL_TEST_MOCK_DEVICE_H
#define PPL_TEST_MOCK_DEVICE_H
#include <string.h>
#include "tensor.h"

static void *mock_alloc(bk_ctx *c, size_t n) { return bk_malloc(c, n ? n : 1); }
static void mock_free(bk_ctx *c, void *p) { bk_free(c, p); }
static int mock_copy(bk_ctx *c, void *dst, const void *src, size_t n, int dir) {
    (void)c;
    (void)dir;
    if (n) memcpy(dst, src, n);
    return 0;
}
static bool mock_supports(int op) { return op == BK_OP_TRANSPOSE || op == BK_OP_EXPAND; }
static bk_forward_fn mock_kernel(int op) { return bk_optable[op].forward; }
static bk_backward_fn mock_backward(int op) {
    (void)op;
    return NULL;
}
static const bk_device mock_device = {"mock", mock_alloc, mock_free, mock_copy, mock_supports,
                                      mock_kernel, mock_backward, NULL};

#endif
