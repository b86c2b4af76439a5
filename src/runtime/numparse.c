/* numparse.c - decimal text to double, bit-identical to strtod (see numparse.h).
 *
 * Three steps, each exact where it answers:
 *   1. Clinger: m <= 2^53 and |e10| <= 22.  m and 10^|e10| are then exact
 *      doubles, so one IEEE multiplication or division rounds the exact
 *      value once: the correctly rounded result.
 *   2. Eisel-Lemire (Lemire, "Number Parsing at a Gigabyte per Second",
 *      2021; the form here follows Nigel Tao's write-up and Go's strconv):
 *      m times a 128-bit truncated mantissa of 10^e10; when the product's
 *      error cannot change the rounding, it gives the double directly.  It
 *      declines subnormals, overflow and (rare) ambiguous products.
 *   3. strtod on a NUL-terminated copy for everything declined. */
#include <float.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include "numparse.h"

#define NUMPARSE_POW10_MIN (-342)
#define NUMPARSE_POW10_MAX 308

static const uint64_t POW10_128[][2] = {
#include "pow10_table.inc"
};

/* The high and low 64 bits of a * b. */
static inline void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    *hi = (uint64_t)(r >> 64);
    *lo = (uint64_t)r;
#else
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    *lo = (mid << 32) | (uint32_t)p00;
#endif
}

static inline int clz64(uint64_t x) { /* x != 0 */
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clzll(x);
#else
    int n = 0;
    while (!(x >> 63)) x <<= 1, n++;
    return n;
#endif
}

static double from_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* Step 1.  Needs double arithmetic in double precision (not x87's
 * extended registers), hence the FLT_EVAL_METHOD guard. */
static bool clinger(uint64_t m, int64_t e10, bool neg, double *v) {
#if FLT_EVAL_METHOD == 0 && !defined(__FAST_MATH__)
    static const double P10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (m > (UINT64_C(1) << 53) || e10 < -22 || e10 > 22) return false;
    double d = (double)m;
    d = e10 >= 0 ? d * P10[e10] : d / P10[-e10];
    *v = neg ? -d : d;
    return true;
#else
    (void)m, (void)e10, (void)neg, (void)v;
    return false;
#endif
}

/* floor(e * log2(10)) for |e| < 1500, without relying on >> of a negative. */
static int64_t floor_log2_pow10(int64_t e) {
    int64_t t = 217706 * e; /* 217706 / 2^16 ~ log2(10) */
    return t >= 0 ? t >> 16 : -((-t + 65535) >> 16);
}

/* Step 2.  The comments name the sections of Nigel Tao's post
 * (nigeltao.github.io/blog/2020/eisel-lemire.html). */
static bool eisel_lemire(uint64_t m, int64_t e10, bool neg, double *v) {
    if (e10 < NUMPARSE_POW10_MIN || e10 > NUMPARSE_POW10_MAX) return false;
    const uint64_t *pw = POW10_128[e10 - NUMPARSE_POW10_MIN];
    /* normalization: the top bit of m set */
    int clz = clz64(m);
    m <<= clz;
    uint64_t exp2 = (uint64_t)(floor_log2_pow10(e10) + 64 + 1023 - clz);
    /* multiplication by the high half of 10^e10's mantissa */
    uint64_t hi, lo;
    mul64(m, pw[0], &hi, &lo);
    /* wider approximation: the low half matters only when the high product
     * sits just below a rounding boundary */
    if ((hi & 0x1FF) == 0x1FF && lo + m < m) {
        uint64_t yhi, ylo;
        mul64(m, pw[1], &yhi, &ylo);
        uint64_t mhi = hi, mlo = lo + yhi;
        if (mlo < lo) mhi++;
        if ((mhi & 0x1FF) == 0x1FF && mlo + 1 == 0 && ylo + m < m) return false;
        hi = mhi;
        lo = mlo;
    }
    /* shift to 54 bits */
    uint64_t msb = hi >> 63;
    uint64_t mant = hi >> (msb + 9);
    exp2 -= 1 ^ msb;
    /* halfway ambiguity: exactly between two doubles, or too close to tell */
    if (lo == 0 && (hi & 0x1FF) == 0 && (mant & 3) == 1) return false;
    /* from 54 to 53 bits, rounding half to even */
    mant += mant & 1;
    mant >>= 1;
    if (mant >> 53) {
        mant >>= 1;
        exp2++;
    }
    /* exp2 0 or wrapped below: subnormal; 0x7FF and up: inf (strtod decides) */
    if (exp2 - 1 >= 0x7FF - 1) return false;
    uint64_t bits = exp2 << 52 | (mant & ((UINT64_C(1) << 52) - 1));
    if (neg) bits |= UINT64_C(1) << 63;
    *v = from_bits(bits);
    return true;
}

static inline bool decimal_to_double(uint64_t m, int64_t e10, bool neg, double *v) {
    if (m == 0) {
        *v = neg ? -0.0 : 0.0;
        return true;
    }
    return clinger(m, e10, neg, v) || eisel_lemire(m, e10, neg, v);
}

bool rt_decimal_to_double(uint64_t m, int64_t e10, bool neg, double *v) {
    return decimal_to_double(m, e10, neg, v);
}

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

/* strtod in the "C" locale: the calling thread's locale switched for the
 * call only (other threads are untouched). */
static double strtod_in_c(const char *s, char **endp) {
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    double v = strtod(s, endp);
    if (c) {
        uselocale(old);
        freelocale(c);
    }
    return v;
}

double rt_strtod_c(const char *s, char **endp) {
    /* a number in JSON's grammar (most are) needs no locale: what strtod
     * reads of it, unless "0x" makes it a hexadecimal float for strtod */
    double v;
    const char *stop;
    if (rt_parse_number(s, s + strlen(s), &v, &stop) == RT_NUM_OK && *stop != 'x' && *stop != 'X') {
        if (endp) *endp = (char *)stop;
        return v;
    }
    return strtod_in_c(s, endp);
}

/* Step 3: strtod on a NUL-terminated copy of [s, s + n). */
static int strtod_copy(const char *s, size_t n, double *v) {
    char small[64], *txt = n < sizeof small ? small : malloc(n + 1);
    if (!txt) return RT_NUM_OOM;
    memcpy(txt, s, n);
    txt[n] = 0;
    *v = strtod_in_c(txt, NULL);
    if (txt != small) free(txt);
    return RT_NUM_OK;
}

/* An exponent this large in magnitude is out of every double's range
 * whatever the digits (strtod then decides); saturating keeps it in int64. */
#define EXP_CAP 100000000

/* Eight digit characters at p as one number (p[0] the most significant),
 * with three multiplications instead of eight; false when any of the
 * eight is not a digit.  Little-endian loads only. */
static inline bool eight_digits(const char *p, uint64_t *out) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ULL, threes = 0x3030303030303030ULL;
    uint64_t v;
    memcpy(&v, p, 8);
    /* every byte 0x30..0x39: high nibble 3, and still 3 after adding 6 */
    if ((v & hi) != threes || ((v + 0x0606060606060606ULL) & hi) != threes) return false;
    v -= threes;
    /* byte i is digit i; pair the lanes up: 2, then 4, then 8 digits */
    v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFULL;
    v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFULL;
    *out = (v * 10000 + (v >> 32)) & 0xFFFFFFFFULL;
    return true;
#else
    (void)p, (void)out;
    return false;
#endif
}

/* Digits from *q on into m (m * 10 + d each; it wraps past 19 digits, and
 * the caller then does not use it). */
static inline __attribute__((always_inline)) void digits(const char **q, const char *end, uint64_t *m) {
    const char *p = *q;
    uint64_t eight;
    while (end - p >= 8 && eight_digits(p, &eight)) {
        *m = *m * 100000000 + eight;
        p += 8;
    }
    for (; p < end && is_digit(*p); p++) *m = *m * 10 + (uint64_t)(*p - '0');
    *q = p;
}

/* More than 19 significant digits in [first, last) (digits and one '.')?
 * Leading zeros do not count. */
static bool too_many_digits(const char *first, const char *last) {
    int64_t n = 0;
    for (const char *p = first; p < last; p++) {
        if (*p == '.') continue;
        if (n == 0 && *p == '0') continue;
        if (++n > 19) return true;
    }
    return false;
}

int rt_parse_number(const char *s, const char *end, double *v, const char **stop) {
    const char *q = s;
    *stop = s;
    bool neg = q < end && *q == '-';
    if (neg) q++;
    if (q >= end || !is_digit(*q)) return neg ? RT_NUM_MALFORMED : RT_NUM_NONE;
    if (*q == '0' && q + 1 < end && is_digit(q[1])) return RT_NUM_LEADING_ZERO;
    /* m = all the digits as one integer (leading zeros add nothing); exact
     * while there are at most 19 significant ones: 10^19 - 1 < 2^64 */
    const char *first = q;
    uint64_t m = 0;
    /* the integer part is mostly one digit or a few: one at a time */
    for (; q < end && is_digit(*q); q++) m = m * 10 + (uint64_t)(*q - '0');
    int64_t e10 = 0;
    bool point = q < end && *q == '.';
    if (point) {
        q++;
        if (q >= end || !is_digit(*q)) return RT_NUM_MALFORMED;
        const char *frac = q;
        digits(&q, end, &m);
        e10 = -(int64_t)(q - frac);
    }
    const char *last = q;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        bool eneg = q < end && *q == '-';
        if (q < end && (*q == '-' || *q == '+')) q++;
        if (q >= end || !is_digit(*q)) return RT_NUM_MALFORMED;
        int64_t x = 0;
        for (; q < end && is_digit(*q); q++)
            if (x < EXP_CAP) x = x * 10 + (*q - '0');
        e10 += eneg ? -x : x;
    }
    *stop = q;
    /* count the significant digits only when there may be too many */
    bool exact_m = (last - first) - point <= 19 || !too_many_digits(first, last);
    if (exact_m && decimal_to_double(m, e10, neg, v)) return RT_NUM_OK;
    int rc = strtod_copy(s, (size_t)(q - s), v);
    if (rc != RT_NUM_OK) *stop = s;
    return rc;
}
