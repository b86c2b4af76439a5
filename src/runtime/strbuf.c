/* strbuf.c - the growable string builder (strbuf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "strbuf.h"

/* Room for n more bytes plus the terminating NUL. */
static bool reserve(rt_sb *b, size_t n) {
    if (b->oom) return false;
    if (b->n + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->s = p;
    b->cap = cap;
    return true;
}

void rt_sb_put(rt_sb *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void rt_sb_puts(rt_sb *b, const char *s) { rt_sb_put(b, s, strlen(s)); }

void rt_sb_printf(rt_sb *b, const char *fmt, ...) {
    /* format straight into the free space: one vsnprintf unless the text
     * does not fit (writers such as the Stan CSV call this per number, and
     * a measuring pass first doubled their cost) */
    if (b->oom || !reserve(b, 64)) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)k >= b->cap - b->n) {
        if (!reserve(b, (size_t)k)) return;
        va_start(ap, fmt);
        vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
}

char *rt_sb_finish(rt_sb *b) {
    if (b->oom) {
        free(b->s);
        b->s = NULL;
        return NULL;
    }
    if (!b->s) {
        b->s = malloc(1);
        if (b->s) b->s[0] = 0;
    }
    return b->s;
}
