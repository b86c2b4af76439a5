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

typedef unsigned __int128 u128;

/* 5^k for k = 0..55 (5^55 < 2^128), as {high, low} 64-bit halves. */
static const uint64_t pow5[56][2] = {
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000000001)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000000005)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000000019)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000000000007d)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000000271)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000000c35)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000000003d09)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000000001312d)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000000005f5e1)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x00000000001dcd65)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x00000000009502f9)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000002e90edd)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000000e8d4a51)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000000048c27395)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000016bcc41e9)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000071afd498d)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0000002386f26fc1)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000000b1a2bc2ec5)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000003782dace9d9)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x00001158e460913d)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000056bc75e2d631)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0001b1ae4d6e2ef5)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x000878678326eac9)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x002a5a058fc295ed)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x00d3c21bcecceda1)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x0422ca8b0a00a425)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x14adf4b7320334b9)},
    {UINT64_C(0x0000000000000000), UINT64_C(0x6765c793fa10079d)},
    {UINT64_C(0x0000000000000002), UINT64_C(0x04fce5e3e2502611)},
    {UINT64_C(0x000000000000000a), UINT64_C(0x18f07d736b90be55)},
    {UINT64_C(0x0000000000000032), UINT64_C(0x7cb2734119d3b7a9)},
    {UINT64_C(0x00000000000000fc), UINT64_C(0x6f7c40458122964d)},
    {UINT64_C(0x00000000000004ee), UINT64_C(0x2d6d415b85acef81)},
    {UINT64_C(0x00000000000018a6), UINT64_C(0xe32246c99c60ad85)},
    {UINT64_C(0x0000000000007b42), UINT64_C(0x6fab61f00de36399)},
    {UINT64_C(0x000000000002684c), UINT64_C(0x2e58e9b04570f1fd)},
    {UINT64_C(0x00000000000c097c), UINT64_C(0xe7bc90715b34b9f1)},
    {UINT64_C(0x00000000003c2f70), UINT64_C(0x86aed236c807a1b5)},
    {UINT64_C(0x00000000012ced32), UINT64_C(0xa16a1b11e8262889)},
    {UINT64_C(0x0000000005e0a1fd), UINT64_C(0x2712875988becaad)},
    {UINT64_C(0x000000001d6329f1), UINT64_C(0xc35ca4bfabb9f561)},
    {UINT64_C(0x0000000092efd1b8), UINT64_C(0xd0cf37be5aa1cae5)},
    {UINT64_C(0x00000002deaf189c), UINT64_C(0x140c16b7c528f679)},
    {UINT64_C(0x0000000e596b7b0c), UINT64_C(0x643c7196d9ccd05d)},
    {UINT64_C(0x00000047bf19673d), UINT64_C(0xf52e37f2410011d1)},
    {UINT64_C(0x00000166bb7f0435), UINT64_C(0xc9e717bb45005915)},
    {UINT64_C(0x00000701a97b150c), UINT64_C(0xf18376a85901bd69)},
    {UINT64_C(0x000023084f676940), UINT64_C(0xb7915149bd08b30d)},
    {UINT64_C(0x0000af298d050e43), UINT64_C(0x95d69670b12b7f41)},
    {UINT64_C(0x00036bcfc1194751), UINT64_C(0xed30f03375d97c45)},
    {UINT64_C(0x00111b0ec57e6499), UINT64_C(0xa1f4b1014d3f6d59)},
    {UINT64_C(0x00558749db77f700), UINT64_C(0x29c77506823d22bd)},
    {UINT64_C(0x01aba4714957d300), UINT64_C(0xd0e549208b31adb1)},
    {UINT64_C(0x085a36366eb71f04), UINT64_C(0x147a6da2b7f86475)},
    {UINT64_C(0x29c30f1029939b14), UINT64_C(0x6664242d97d9f649)},
    {UINT64_C(0xd0cf4b50cfe20765), UINT64_C(0xfff4b4e3f741cf6d)},
};

/* p10_dbl[i]: the double nearest 10^(i - 40), i = 0..58 */
static const double p10_dbl[] = {1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33, 1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

/* The floor of V = w2:w1:w0 (192 bits) over 2^r, r >= 1, if below 2^64
 * (else UINT64_MAX), and how the remainder compares with 2^(r - 1), half a
 * unit of it: -1 below, 0 equal, 1 above. */
static uint64_t shift_floor(uint64_t w2, uint64_t w1, uint64_t w0, int r, int *half) {
    u128 h = (u128)w2 << 64 | w1;   /* V >> 64 */
    if (r >= 192) {                  /* floor 0, V < 2^(r - 1) as r is far past V's bits */
        *half = -1;
        return 0;
    }
    if (r < 64) {
        if (r + 64 < 128 && h >> (r + 64)) return UINT64_MAX;
        u128 fl = h << (64 - r) | (u128)(w0 >> r);
        uint64_t rem = w0 & ((UINT64_C(1) << r) - 1), hv = UINT64_C(1) << (r - 1);
        *half = rem > hv ? 1 : rem == hv ? 0 : -1;
        return fl >> 64 ? UINT64_MAX : (uint64_t)fl;
    }
    int r2 = r - 64;   /* 0..127 */
    u128 fl = h >> r2;
    if (r2 == 0) {
        *half = w0 > UINT64_C(1) << 63 ? 1 : w0 == UINT64_C(1) << 63 ? 0 : -1;
    } else {
        u128 rem = h & (((u128)1 << r2) - 1), hv = (u128)1 << (r2 - 1);
        *half = rem > hv ? 1 : rem < hv ? -1 : w0 ? 1 : 0;
    }
    return fl >> 64 ? UINT64_MAX : (uint64_t)fl;
}

/* The 17 significant digits of x > 0, rounded to nearest with ties to even
 * as glibc's printf rounds them, as the integer N in [10^16, 10^17) with
 * x ~ N * 10^(e10 - 16); 0 outside 1e-39 <= x < 1e17 (there printf
 * itself writes them).  Exact integer arithmetic: x = m 2^q, so
 * x 10^k = m 5^k 2^(q + k), and m 5^k (at most 53 + 128 bits) is two
 * 64 x 64-bit products. */
static int digits17(double x, uint64_t *n, int *e10) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int be = (int)(bits >> 52) & 0x7ff;
    if (!be) return 0;   /* subnormal: far below 1e-39 */
    uint64_t m = (bits & ((UINT64_C(1) << 52) - 1)) | UINT64_C(1) << 52;
    int q = be - 1075, b = be - 1023;
    /* x in [2^b, 2^(b+1)): e = floor(b log10 2), within one of floor(log10 x)
     * (78913 / 2^18 is log10 2 to 6e-7, exact in the floor for |b| < 1700) */
    int e = b >= 0 ? (b * 78913) >> 18 : -((-b * 78913 + (1 << 18) - 1) >> 18);
    /* and one up where x reaches the next power (the double nearest it:
     * a retry below mends the rare x between the two) */
    if (e >= -40 && e <= 17 && x >= p10_dbl[e + 41]) e++;
    for (int tries = 0; tries < 3; tries++) {
        int k = 16 - e;   /* N = x * 10^k */
        if (k < 0 || k > 55) return 0;
        int s = q + k, half = -1;
        uint64_t fl;
        if (k <= 27 && s < 0 && s > -64) {
            /* the common case (1e-11 <= x < 1e16): 5^k and so m 5^k fit
             * in 64 and 128 bits, the floor in the shift of one product */
            int r = -s;
            u128 p = (u128)m * pow5[k][1], f = p >> r;
            uint64_t rem = (uint64_t)p & ((UINT64_C(1) << r) - 1), hv = UINT64_C(1) << (r - 1);
            half = rem > hv ? 1 : rem == hv ? 0 : -1;
            fl = f >> 64 ? UINT64_MAX : (uint64_t)f;
        } else {
            u128 p0 = (u128)m * pow5[k][1], p1 = (u128)m * pow5[k][0];
            u128 t = (p0 >> 64) + (uint64_t)p1;   /* below 2^65 */
            uint64_t w0 = (uint64_t)p0, w1 = (uint64_t)t, w2 = (uint64_t)(t >> 64) + (uint64_t)(p1 >> 64);
            if (s >= 0)   /* an integer: V 2^s */
                fl = w2 || w1 || s >= 64 || (s && w0 >> (64 - s)) ? UINT64_MAX : w0 << s;
            else
                fl = shift_floor(w2, w1, w0, -s, &half);
        }
        /* the digit count is the exact value's, before rounding */
        if (fl >= UINT64_C(100000000000000000)) {
            e++;
            continue;
        }
        if (fl < UINT64_C(10000000000000000)) {
            e--;
            continue;
        }
        uint64_t r = fl + (half > 0 || (half == 0 && (fl & 1)));
        if (r == UINT64_C(100000000000000000)) {   /* carried: 10^16 at the next exponent */
            *n = UINT64_C(10000000000000000);
            *e10 = e + 1;
            return 1;
        }
        *n = r;
        *e10 = e;
        return 1;
    }
    return 0;
}

/* "00" .. "99" */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The 8 decimal digits of v < 10^8, two at a time: y = v c with
 * c = ceil(2^47 / 10^6) holds v / 10^6 in its top bits and the rest as a
 * fraction of 2^47, each next pair one multiplication by 100 away (J.
 * Anhalt's method; v (c - 2^47 / 10^6) < 2^47 / 10^6 keeps the fraction's
 * error below one unit of the last pair; a loop over every v < 10^8 found
 * each pair right, test_strbuf checks a sample through printf). */
static void put8(char *d, uint32_t v) {
    const uint64_t mask = (UINT64_C(1) << 47) - 1;
    uint64_t y = (uint64_t)v * UINT64_C(140737489);
    memcpy(d, digit_pairs + 2 * (y >> 47), 2);
    y = (y & mask) * 100;
    memcpy(d + 2, digit_pairs + 2 * (y >> 47), 2);
    y = (y & mask) * 100;
    memcpy(d + 4, digit_pairs + 2 * (y >> 47), 2);
    y = (y & mask) * 100;
    memcpy(d + 6, digit_pairs + 2 * (y >> 47), 2);
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
