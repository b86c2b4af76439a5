/* device_cpu.c - the CPU device: host memory through the context's
 * allocator and the reference kernels of the op table.  Other devices
 * (CUDA) implement the same vtable; ops they lack fall back to these. */
#include <string.h>
#include "tensor.h"

static void *cpu_alloc(bk_ctx *ctx, size_t n) { return bk_malloc(ctx, n); }
static void cpu_free(bk_ctx *ctx, void *p) { bk_free(ctx, p); }

static int cpu_copy(bk_ctx *ctx, void *dst, const void *src, size_t n, int dir) {
    (void)ctx;
    (void)dir;
    if (n) memcpy(dst, src, n);
    return 0;
}

static bool cpu_supports(int op) { return op >= 0 && op < BK_OP_COUNT; }
static bk_forward_fn cpu_kernel(int op) { return bk_optable[op].forward; }

const bk_device bk_cpu_device = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .supports_op = cpu_supports,
    .kernel = cpu_kernel,
};
