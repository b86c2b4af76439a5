/* mcmc_ckpt.c - the text of MCMC checkpoints: "key n v1 ... vn" lines,
 * doubles as C99 hexadecimal floats (%a), which read back bit for bit. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mcmc_core.h"

void mc_ck_put_doubles(rt_sb *sb, const char *key, const double *v, size_t n) {
    rt_sb_printf(sb, "%s %zu", key, n);
    for (size_t i = 0; i < n; i++) rt_sb_printf(sb, " %a", v[i]);
    rt_sb_puts(sb, "\n");
}

void mc_ck_put_ints(rt_sb *sb, const char *key, const long long *v, size_t n) {
    rt_sb_printf(sb, "%s %zu", key, n);
    for (size_t i = 0; i < n; i++) rt_sb_printf(sb, " %lld", v[i]);
    rt_sb_puts(sb, "\n");
}

int mc_ck_fail(mc_ck_reader *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (r->err && r->errlen) vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_space(mc_ck_reader *r) {
    while (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r') r->p++;
}

int mc_ck_next_word(mc_ck_reader *r, char *buf, size_t n) {
    skip_space(r);
    size_t k = 0;
    while (*r->p && *r->p != ' ' && *r->p != '\n' && *r->p != '\t' && *r->p != '\r') {
        if (k + 1 < n) buf[k++] = *r->p;
        r->p++;
    }
    buf[k] = 0;
    return k ? 0 : mc_ck_fail(r, "the checkpoint ends early");
}

int mc_ck_word(mc_ck_reader *r, const char *word) {
    char buf[64];
    if (mc_ck_next_word(r, buf, sizeof buf)) return -1;
    if (strcmp(buf, word) != 0)
        return mc_ck_fail(r, "the checkpoint is damaged: expected \"%s\", found \"%s\"", word, buf);
    return 0;
}

static int get_count(mc_ck_reader *r, const char *key, size_t n) {
    if (key && mc_ck_word(r, key)) return -1;
    char *end;
    skip_space(r);
    errno = 0;
    unsigned long long k = strtoull(r->p, &end, 10);
    if (end == r->p || errno) return mc_ck_fail(r, "the checkpoint is damaged near \"%s\"", key ? key : "?");
    r->p = end;
    if (k != n)
        return mc_ck_fail(r, "the checkpoint's \"%s\" has %llu values, expected %zu", key ? key : "?", k, n);
    return 0;
}

int mc_ck_get_doubles(mc_ck_reader *r, const char *key, double *v, size_t n) {
    if (get_count(r, key, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        char *end;
        v[i] = strtod(r->p, &end);
        if (end == r->p) return mc_ck_fail(r, "the checkpoint is damaged in \"%s\"", key ? key : "?");
        r->p = end;
    }
    return 0;
}

int mc_ck_get_ints(mc_ck_reader *r, const char *key, long long *v, size_t n) {
    if (key) {
        if (get_count(r, key, n)) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtoll(r->p, &end, 10);
        if (end == r->p || errno) return mc_ck_fail(r, "the checkpoint is damaged in \"%s\"", key ? key : "?");
        r->p = end;
    }
    return 0;
}
