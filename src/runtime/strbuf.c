/* strbuf.c - the growable string builder (strbuf.h). */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "strbuf.h"

/* Room for n more bytes plus the terminating NUL. */
bool rt_sb_reserve(rt_sb *b, size_t n) {
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
    if (!rt_sb_reserve(b, n)) return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void rt_sb_puts(rt_sb *b, const char *s) { rt_sb_put(b, s, strlen(s)); }

void rt_sb_printf(rt_sb *b, const char *fmt, ...) {
    /* format straight into the free space: one vsnprintf unless the text
     * does not fit (writers such as the Stan CSV call this per number, and
     * a measuring pass first doubled their cost) */
    if (b->oom || !rt_sb_reserve(b, 64)) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)k >= b->cap - b->n) {
        if (!rt_sb_reserve(b, (size_t)k)) return;
        va_start(ap, fmt);
        vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
}

/* The 17 significant digits of x, rounded to nearest, as the integer
 * N in [10^16, 10^17) with x ~ N * 10^(e10 - 16); 0 when the fast way cannot
 * be sure of them.  One product (or quotient) with an exact power of ten in
 * 64-bit-mantissa long double is off by at most 2^-64 relative, i.e. by 0.006
 * in N; unless the fraction is that close to one half, rounding it gives the
 * correctly rounded digits that glibc's printf computes in multiprecision. */
static int digits17(double x, uint64_t *n, int *e10) {
#if LDBL_MANT_DIG >= 64
    static const long double p10[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
                                      1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
                                      1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
    /* x in [2^b, 2^(b+1)): e = floor(b log10 2), within one of floor(log10 x)
     * (78913 / 2^18 is log10 2 to 6e-7, exact in the floor for |b| < 1700);
     * from the bits, not frexp and floor, which are calls */
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int be = (int)(bits >> 52) & 0x7ff, b;
    if (be) {
        b = be - 1023;
    } else {   /* subnormal */
        frexp(x, &b);
        b--;
    }
    int e = b >= 0 ? (b * 78913) >> 18 : -((-b * 78913 + (1 << 18) - 1) >> 18);
    for (int tries = 0; tries < 3; tries++) {
        int k = 16 - e;   /* N = x * 10^k */
        if (k > 27 || k < -27) return 0;
        long double v = k >= 0 ? (long double)x * p10[k] : (long double)x / p10[-k];
        if (!(v < 1e18L)) {   /* 17 digits are below 1e17: one too many */
            e++;
            continue;
        }
        /* v < 2^63: the signed conversion, one instruction where the
         * unsigned one branches */
        long double f = (long double)(int64_t)v, frac = v - f;   /* v > 0: truncation is floor */
        if (fabsl(frac - 0.5L) < 1.0L / 64) return 0;
        /* the digit count is v's, before rounding */
        if (f >= 1e17L) {
            e++;
            continue;
        }
        if (f < 1e16L) {
            e--;
            continue;
        }
        uint64_t r = (uint64_t)(int64_t)f + (frac > 0.5L);
        if (r == UINT64_C(100000000000000000)) {   /* carried: 10^16 at the next exponent */
            *n = UINT64_C(10000000000000000);
            *e10 = e + 1;
            return 1;
        }
        *n = r;
        *e10 = e;
        return 1;
    }
#else
    (void)x, (void)n, (void)e10;
#endif
    return 0;
}

/* "00" .. "99" */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The 8 decimal digits of v < 10^8, two at a time, in 32-bit arithmetic. */
static void put8(char *d, uint32_t v) {
    uint32_t hi = v / 10000, lo = v % 10000;
    memcpy(d, digit_pairs + 2 * (hi / 100), 2);
    memcpy(d + 2, digit_pairs + 2 * (hi % 100), 2);
    memcpy(d + 4, digit_pairs + 2 * (lo / 100), 2);
    memcpy(d + 6, digit_pairs + 2 * (lo % 100), 2);
}

/* The 17 digits of n in [10^16, 10^17): one 64-bit division into a
 * leading nine and a trailing eight, then pairs (digit by digit, the
 * 64-bit divisions by ten were half of the function). */
static void put17(char *d, uint64_t n) {
    uint32_t hi = (uint32_t)(n / 100000000), lo = (uint32_t)(n % 100000000);
    d[0] = (char)('0' + hi / 100000000);
    put8(d + 1, hi % 100000000);
    put8(d + 9, lo);
}

char *rt_g17_at(char *out, double x) {
    uint64_t n;
    int e;
    double a = fabs(x);
    if (!isfinite(x) || a == 0 || !digits17(a, &n, &e)) {
        int len = snprintf(out, RT_G17_ROOM, "%.17g", x);   /* at most 24 bytes */
        return out + (len > 0 ? len : 0);
    }
    /* at most 24 bytes ("-d.dddddddddddddddde-308"), but the copies below
     * move fixed 16 or 17 bytes (inline moves, where a copy of the digits'
     * own length was a call) past the text's end: RT_G17_ROOM in all.
     * The 17 digits, then 16 zeros that the fixed 16-byte copy of the
     * fraction may read past them. */
    char d[33];
    put17(d, n);
    memset(d + 17, '0', 16);
    int nd = 17;
    while (nd > 1 && d[nd - 1] == '0') nd--;   /* %g drops trailing zeros */
    size_t k = 0;
    if (x < 0) out[k++] = '-';
    if (e < -4 || e >= 17) {   /* %g's exponent form */
        out[k] = d[0];
        out[k + 1] = '.';
        memcpy(out + k + 2, d + 1, 16);
        k += nd > 1 ? (size_t)nd + 1 : 1;
        out[k++] = 'e';
        out[k++] = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae >= 100) out[k++] = (char)('0' + ae / 100);
        memcpy(out + k, digit_pairs + 2 * (ae % 100), 2);
        k += 2;
    } else if (e < 0) {   /* 0.000ddd: up to three zeros after the point */
        memcpy(out + k, "0.000", 5);
        k += (size_t)(1 - e);
        memcpy(out + k, d, 17);
        k += (size_t)nd;
    } else {
        /* the digits (those past nd are the zeros an integer needs), then
         * the fraction moved one place right for the point */
        memcpy(out + k, d, 17);
        if (nd > e + 1) {
            memcpy(out + k + e + 2, d + e + 1, 16);
            out[k + e + 1] = '.';
            k += (size_t)nd + 1;
        } else {
            k += (size_t)e + 1;
        }
    }
    return out + k;
}

void rt_sb_put_g17(rt_sb *b, double x) {
    if ((b->oom || b->n + RT_G17_ROOM + 1 > b->cap) && !rt_sb_reserve(b, RT_G17_ROOM)) return;
    b->n = (size_t)(rt_g17_at(b->s + b->n, x) - b->s);
    b->s[b->n] = 0;
}

void rt_sb_putc(rt_sb *b, char c) {
    if ((b->oom || b->n + 2 > b->cap) && !rt_sb_reserve(b, 1)) return;
    b->s[b->n++] = c;
    b->s[b->n] = 0;
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
