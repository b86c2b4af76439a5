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

bk_tensor *bk_place(bk_ctx *ctx, bk_tensor *t) {
    if (!t) return NULL;
    const bk_device *dev = bk_default_device(ctx);
    if (bk_tensor_device(t) == dev) return t;
    bk_tensor *r = bk_to_device(ctx, t, dev);
    bk_release(t);
    return r;
}

bk_tensor *bk_place_nd(bk_ctx *ctx, bk_tensor *t) {
    /* a 0-d CPU tensor joins any device; one on the tape stays where it is
     * (a copy would cut its gradient) */
    if (t && ((t->ndim == 0 && bk_tensor_device(t) == &bk_cpu_device) || t->requires_grad)) return t;
    return bk_place(ctx, t);
}

int bk_copy_values(bk_ctx *ctx, bk_tensor *dst, const bk_tensor *src) {
    if (src->numel != dst->numel) {
        bk_seterr(ctx, "bk_copy_values: %lld values into %lld", (long long)src->numel, (long long)dst->numel);
        return -1;
    }
    double *buf = bk_malloc(ctx, (size_t)(src->numel ? src->numel : 1) * sizeof *buf);
    if (!buf) return -1;
    bk_copy_out(src, buf);
    int rc = bk_copy_in(ctx, dst, buf);
    bk_free(ctx, buf);
    return rc;
}

int bk_copy_in(bk_ctx *ctx, bk_tensor *t, const double *src) {
    if ((t->dtype != BK_F64 && t->dtype != BK_F32) || !bk_is_contiguous(t)) {
        bk_seterr(ctx, "bk_copy_in: needs a contiguous tensor");
        return -1;
    }
    bool cpu = bk_tensor_device(t) == &bk_cpu_device;
    if (t->dtype == BK_F32) { /* rounded to float, on the host */
        float *dst = cpu ? (float *)t->st->data + t->offset
                         : bk_malloc(ctx, (size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!dst) return -1;
        for (int64_t k = 0; k < t->numel; k++) dst[k] = (float)src[k];
        if (cpu) return 0;
        size_t nb = (size_t)t->numel * sizeof(float);
        int rc = nb ? t->st->dev->copy(ctx, (float *)t->st->data + t->offset, dst, nb, 0) : 0;
        bk_free(ctx, dst);
        return rc;
    }
    size_t nb = (size_t)t->numel * sizeof(double);
    double *dst = (double *)t->st->data + t->offset;
    if (cpu) {
        if (nb) memcpy(dst, src, nb);
        return 0;
    }
    return nb ? t->st->dev->copy(ctx, dst, src, nb, 0) : 0;
}
