/* device_select.c - devices by name, and the CUDA probe of builds without
 * the CUDA backend (which then say how to get it). */
#include <stdio.h>
#include <string.h>
#include "device_cuda.h"

#ifndef PPL_CUDA
int bk_cuda_probe(char *why, size_t n) {
    if (why && n) snprintf(why, n, "ppl was built without CUDA support; rebuild with -DPPL_CUDA=ON");
    return -1;
}
#endif

const bk_device *bk_device_named(bk_ctx *ctx, const char *name) {
    if (strcmp(name, "cpu") == 0) return &bk_cpu_device;
    if (strcmp(name, "cuda") == 0) {
        char why[256];
        if (bk_cuda_probe(why, sizeof why)) {
            bk_seterr(ctx, "%s", why);
            return NULL;
        }
#ifdef PPL_CUDA
        return &bk_cuda_device;
#endif
    }
    bk_seterr(ctx, "unknown device \"%s\" (devices: cpu, cuda)", name);
    return NULL;
}
