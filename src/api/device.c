/* device.c - the public question "can tensors go on this device here?",
 * answered by the backend (the CLI's --device check). */
#include <stdio.h>
#include "ppl.h"
#include "tensor.h"

int ppl_device_available(const char *name, char *why, size_t n) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    if (!ctx) {
        if (why && n) snprintf(why, n, "out of memory");
        return -1;
    }
    /* a probe: naming a device makes no device state */
    int rc = bk_device_named(ctx, name) ? 0 : -1;
    if (rc && why && n) snprintf(why, n, "%s", bk_errmsg(ctx));
    bk_ctx_free(ctx);
    return rc;
}
