/* data_io.c - JSON and CSV data files, JSON output, atomic writes.
 *
 * The JSON reader is a small recursive-descent parser with a depth limit.
 * Arrays whose leaves are all numbers and whose rows have equal lengths
 * become float64 tensors (CmdStan data); anything else becomes a list. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data_io.h"
#include "numparse.h"
#include "strbuf.h"
#include "dist.h"
#include "vm.h"

#define JSON_MAX_DEPTH 64

/* ---------------------------------------------------------------- files --- */

/* The size of a regular file, as a first buffer size (0: unknown). */
static size_t size_hint(FILE *f) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) return 0;
    return (uint64_t)st.st_size < ((uint64_t)1 << 31) ? (size_t)st.st_size : 0;
}

char *rt_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    /* one buffer of the file's size (and its NUL) where the size is known,
     * so a data file is read in one go without growing copies; pipes and
     * files that grow meanwhile still read to the end by doubling */
    size_t cap = size_hint(f) + 1, n = 0;
    if (cap < 4096) cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 >= cap) {
            int c = getc(f); /* full: at the end, or more to come? */
            if (c == EOF) break;
            char *p = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
            buf[n++] = (char)c;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "cannot read \"%s\"", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int rt_write_file_atomic(const char *path, const char *data, size_t n, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot write \"%s\": %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    bool ok = fwrite(data, 1, n, f) == n;
    /* on disk before the rename makes it the file */
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* ------------------------------------------------------------- JSON in --- */

/* The reader first builds a small tree (so a rectangular numeric array can
 * become one tensor with a known shape), then converts it to values.
 * Arrays of plain numbers keep them in a flat buffer instead of one node
 * per number: data files are mostly long numeric vectors.  That buffer is
 * one pool for the whole text (a matrix's 10,000 rows make no 10,000
 * allocations): an array that holds only numbers is parsed without any
 * other array starting inside it, so its numbers are the pool's last ones
 * while it is read, and a run [off, off + nn) of the pool after. */

enum { J_NUM, J_STR, J_ARR, J_OBJ, J_NULL };

typedef struct jnode {
    int kind;
    int line, col;              /* where the value starts (for messages) */
    double num;                 /* J_NUM */
    char *str;                  /* J_STR */
    struct jnode **kids;        /* J_ARR (not flat), J_OBJ */
    char **keys;                /* J_OBJ */
    int n, cap;
    int64_t off, nn;            /* J_ARR while it holds only numbers: pool[off..] */
} jnode;

typedef struct jp {
    bk_ctx *ctx;
    const char *name, *s, *end;
    const char *line_start;
    int line;
    char *err;
    size_t errlen;
    bool failed, oom;
    double *pool;               /* the numbers of all-number arrays */
    int64_t npool, cappool;
} jp;

static void jfail_atv(jp *p, int line, int col, const char *fmt, va_list ap) {
    if (p->failed) return;
    p->failed = true;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    snprintf(p->err, p->errlen, "%s:%d:%d: %s", p->name, line, col, msg);
}

static void jfail_at(jp *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void jfail_at(jp *p, int line, int col, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jfail_atv(p, line, col, fmt, ap);
    va_end(ap);
}

static int jcol(const jp *p) { return (int)(p->s - p->line_start) + 1; }

/* An error at the current position. */
static void jfail(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jfail(jp *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jfail_atv(p, p->line, jcol(p), fmt, ap);
    va_end(ap);
}

static void joom(jp *p) {
    p->oom = true;
    jfail(p, "out of memory");
}

static void skip_ws_slow(jp *p) {
    while (p->s < p->end) {
        char c = *p->s;
        if (c == '\n') {
            p->line++;
            p->line_start = p->s + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        p->s++;
    }
}

/* Called between every two tokens: most often there is nothing or one
 * space to skip. */
static inline void skip_ws(jp *p) {
    if (p->s < p->end && *p->s == ' ') p->s++;
    if (p->s < p->end && (unsigned char)*p->s <= ' ') skip_ws_slow(p);
}

/* Match a literal word that is not the start of a longer word. */
static bool lit(jp *p, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0) return false;
    if (p->s + n < p->end && isalnum((unsigned char)p->s[n])) return false;
    p->s += n;
    return true;
}

static void jfree(jnode *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) {
        jfree(n->kids[i]);
        if (n->keys) free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->str);
    free(n);
}

static jnode *new_node(jp *p, int kind, int line, int col) {
    jnode *n = calloc(1, sizeof *n);
    if (!n) {
        joom(p);
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    n->col = col;
    return n;
}

/* Append a child (and its key for objects); takes over both. */
static bool jpush(jp *p, jnode *n, jnode *kid, char *key) {
    if (n->n == n->cap) {
        int cap = n->cap ? n->cap * 2 : 8;
        jnode **k = realloc(n->kids, (size_t)cap * sizeof *k);
        if (k) n->kids = k;
        char **ks = k && n->kind == J_OBJ ? realloc(n->keys, (size_t)cap * sizeof *ks) : NULL;
        if (ks) n->keys = ks;
        if (!k || (n->kind == J_OBJ && !ks)) {
            jfree(kid);
            free(key);
            joom(p);
            return false;
        }
        n->cap = cap;
    }
    n->kids[n->n] = kid;
    if (n->kind == J_OBJ) n->keys[n->n] = key;
    n->n++;
    return true;
}

static bool push_num(jp *p, jnode *a, double v) {
    if (p->npool == p->cappool) {
        int64_t cap = p->cappool ? p->cappool * 2 : 4096;
        double *q = realloc(p->pool, (size_t)cap * sizeof *q);
        if (!q) {
            joom(p);
            return false;
        }
        p->pool = q;
        p->cappool = cap;
    }
    if (a->nn == 0) a->off = p->npool;
    p->pool[p->npool++] = v;
    a->nn++;
    return true;
}

/* An array that held only numbers meets something else: its numbers
 * become ordinary child nodes (and leave the pool's end). */
static bool unflatten(jp *p, jnode *a) {
    for (int64_t i = 0; i < a->nn; i++) {
        jnode *k = new_node(p, J_NUM, a->line, a->col);
        if (!k || !jpush(p, a, k, NULL)) return false;
        k->num = p->pool[a->off + i];
    }
    p->npool = a->off;
    a->nn = 0;
    return true;
}

/* ---- strings ---- */

static bool put_byte(jp *p, char **buf, size_t *n, size_t *cap, char c) {
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        char *q = realloc(*buf, nc);
        if (!q) {
            joom(p);
            return false;
        }
        *buf = q;
        *cap = nc;
    }
    (*buf)[(*n)++] = c;
    return true;
}

static bool put_utf8(jp *p, char **buf, size_t *n, size_t *cap, unsigned cp) {
    unsigned char b[4];
    int k;
    if (cp < 0x80) b[0] = (unsigned char)cp, k = 1;
    else if (cp < 0x800) b[0] = (unsigned char)(0xC0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3F)), k = 2;
    else if (cp < 0x10000)
        b[0] = (unsigned char)(0xE0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)), k = 3;
    else
        b[0] = (unsigned char)(0xF0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (unsigned char)(0x80 | (cp & 0x3F)), k = 4;
    for (int i = 0; i < k; i++)
        if (!put_byte(p, buf, n, cap, (char)b[i])) return false;
    return true;
}

/* Four hex digits after "\u"; -1 when malformed. */
static long hex4(const jp *p, const char *s) {
    if (p->end - s < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = (unsigned char)s[i], d = isdigit(h) ? h - '0' : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* \uXXXX (with a surrogate pair for code points above U+FFFF). */
static bool parse_u_escape(jp *p, char **buf, size_t *n, size_t *cap) {
    const char *at = p->s - 2; /* the backslash */
    long v = hex4(p, p->s);
    if (v < 0) {
        p->s = at;
        jfail(p, "\\u must be followed by four hex digits");
        return false;
    }
    p->s += 4;
    if (v >= 0xD800 && v <= 0xDBFF) {
        long lo = p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u' ? hex4(p, p->s + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            p->s = at;
            jfail(p, "unpaired surrogate in a \\u escape");
            return false;
        }
        p->s += 6;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
    } else if (v >= 0xDC00 && v <= 0xDFFF) {
        p->s = at;
        jfail(p, "unpaired surrogate in a \\u escape");
        return false;
    }
    return put_utf8(p, buf, n, cap, (unsigned)v);
}

static char *parse_string(jp *p) {
    int line = p->line, col = jcol(p);
    p->s++; /* opening quote */
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (p->s >= p->end || *p->s == '\n') {
            free(buf);
            jfail_at(p, line, col, "unterminated string");
            return NULL;
        }
        char c = *p->s;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) {
            free(buf);
            jfail(p, "control character in a string (write it as an escape such as \\t)");
            return NULL;
        }
        p->s++;
        if (c == '\\') {
            char e = p->s < p->end ? *p->s++ : 0;
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(from, e) : NULL;
            if (e == 'u') {
                if (!parse_u_escape(p, &buf, &n, &cap)) {
                    free(buf);
                    return NULL;
                }
                continue;
            }
            if (!hit) {
                p->s -= e ? 2 : 1;
                free(buf);
                jfail(p, "invalid escape in a string (use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)");
                return NULL;
            }
            c = to[hit - from];
        }
        if (!put_byte(p, &buf, &n, &cap, c)) {
            free(buf);
            return NULL;
        }
    }
    p->s++;
    if (!buf && !(buf = malloc(1))) {
        joom(p);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* ---- numbers and literals ---- */

/* One of the words CmdStan writes for numbers (and true / false). */
static bool number_word(jp *p, double *v) {
    static const struct {
        const char *w;
        double v;
    } words[] = {{"true", 1},          {"false", 0},          {"NaN", NAN},        {"Infinity", INFINITY},
                 {"-Infinity", -INFINITY}, {"Inf", INFINITY}, {"-Inf", -INFINITY}, {"inf", INFINITY},
                 {"-inf", -INFINITY},  {"nan", NAN}};
    if (p->s >= p->end || !memchr("tfNIin-", *p->s, 7)) return false; /* no word starts so */
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (lit(p, words[i].w)) {
            *v = words[i].v;
            return true;
        }
    return false;
}

/* A number in JSON's grammar, or one of the words CmdStan writes.
 * Returns 1 with *v set, 0 when the text is not a number, -1 on error
 * (reported at the number's start). */
static int parse_number(jp *p, double *v) {
    const char *stop;
    switch (rt_parse_number(p->s, p->end, v, &stop)) {
    case RT_NUM_OK: break;
    case RT_NUM_NONE: return number_word(p, v) ? 1 : 0;
    case RT_NUM_MALFORMED:
        if (number_word(p, v)) return 1; /* -Infinity, -inf */
        jfail(p, "expected a number");
        return -1;
    case RT_NUM_LEADING_ZERO: jfail(p, "a number cannot start with 0 (leading zeros are not JSON)"); return -1;
    default: joom(p); return -1;
    }
    if (isinf(*v)) {
        size_t len = (size_t)(stop - p->s);
        jfail(p, "the number %.*s is too large for a float64", len > 40 ? 40 : (int)len, p->s);
        return -1;
    }
    p->s = stop;
    return 1;
}

/* ---- containers ---- */

static jnode *parse_value(jp *p, int depth);

static bool duplicate_key(const jnode *o, const char *key) {
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) return true;
    return false;
}

/* One array element: numbers go to the flat buffer while there are only
 * numbers. */
static bool array_element(jp *p, jnode *a, int depth) {
    skip_ws(p);
    if (a->n == 0 && p->s < p->end) {
        double v;
        const char *at = p->s;
        int rc = parse_number(p, &v);
        if (rc < 0) return false;
        if (rc > 0) return push_num(p, a, v);
        p->s = at;
    }
    if (a->nn > 0 && !unflatten(p, a)) return false;
    jnode *kid = parse_value(p, depth + 1);
    return kid && jpush(p, a, kid, NULL);
}

static bool object_field(jp *p, jnode *o, int depth) {
    skip_ws(p);
    if (p->s >= p->end || *p->s != '"') {
        jfail(p, "expected a field name in quotes");
        return false;
    }
    int line = p->line, col = jcol(p);
    char *key = parse_string(p);
    if (!key) return false;
    if (duplicate_key(o, key)) {
        jfail_at(p, line, col, "duplicate field \"%s\"", key);
        free(key);
        return false;
    }
    skip_ws(p);
    if (p->s >= p->end || *p->s != ':') {
        free(key);
        jfail(p, "expected \":\" after the field name");
        return false;
    }
    p->s++;
    jnode *kid = parse_value(p, depth + 1);
    if (!kid) {
        free(key);
        return false;
    }
    return jpush(p, o, kid, key);
}

static jnode *parse_container(jp *p, int depth, bool object) {
    jnode *n = new_node(p, object ? J_OBJ : J_ARR, p->line, jcol(p));
    if (!n) return NULL;
    char close = object ? '}' : ']';
    p->s++;
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return n;
    }
    for (;;) {
        if (!(object ? object_field(p, n, depth) : array_element(p, n, depth))) break;
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == close) {
            p->s++;
            return n;
        }
        if (p->s >= p->end) jfail(p, "unexpected end of the file: %s", object ? "missing \"}\"" : "missing \"]\"");
        else jfail(p, object ? "expected \",\" or \"}\" after a field" : "expected \",\" or \"]\" after an array element");
        break;
    }
    jfree(n);
    return NULL;
}

static jnode *parse_value(jp *p, int depth) {
    if (depth > JSON_MAX_DEPTH) {
        jfail(p, "nesting is too deep (the limit is %d)", JSON_MAX_DEPTH);
        return NULL;
    }
    skip_ws(p);
    if (p->s >= p->end) {
        jfail(p, "unexpected end of the file: expected a value");
        return NULL;
    }
    int line = p->line, col = jcol(p);
    char c = *p->s;
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') {
        char *s = parse_string(p);
        jnode *n = s ? new_node(p, J_STR, line, col) : NULL;
        if (n) n->str = s;
        else free(s);
        return n;
    }
    if (lit(p, "null")) return new_node(p, J_NULL, line, col);
    double v;
    int rc = parse_number(p, &v);
    if (rc == 0) jfail(p, "expected a value (a number, string, array or object)");
    if (rc <= 0) return NULL;
    jnode *n = new_node(p, J_NUM, line, col);
    if (n) n->num = v;
    return n;
}

/* ---- tree -> values ---- */

/* True when an array holds only numbers and arrays, all the way down. */
static bool all_numeric(const jnode *a) {
    for (int i = 0; i < a->n; i++) {
        const jnode *k = a->kids[i];
        if (k->kind != J_NUM && (k->kind != J_ARR || !all_numeric(k))) return false;
    }
    return true;
}

/* The shape read along the first elements; -1 past BK_MAXDIM dims. */
static int first_shape(jp *p, const jnode *a, int64_t *shape) {
    const jnode *top = a;
    int nd = 0;
    for (;;) {
        if (nd == BK_MAXDIM) {
            jfail_at(p, top->line, top->col, "an array with more than %d dimensions cannot be a tensor", BK_MAXDIM);
            return -1;
        }
        shape[nd++] = a->n ? a->n : a->nn;
        if (a->n == 0 || a->kids[0]->kind != J_ARR) return nd;
        a = a->kids[0];
    }
}

/* Every row must match the first one's shape. */
static bool check_rect(jp *p, const jnode *a, int d, int nd, const int64_t *shape) {
    for (int i = 0; i < a->n; i++) {
        const jnode *k = a->kids[i];
        bool want_num = d + 1 == nd;
        if (want_num != (k->kind == J_NUM)) {
            jfail_at(p, k->line, k->col, "ragged array: expected %s like the first element, found %s",
                     want_num ? "a number" : "an array", want_num ? "an array" : "a number");
            return false;
        }
        if (want_num) continue;
        int64_t len = k->n ? k->n : k->nn;
        if (len != shape[d + 1]) {
            jfail_at(p, k->line, k->col, "ragged array: row %d has %lld element%s, row 1 has %lld", i + 1,
                     (long long)len, len == 1 ? "" : "s", (long long)shape[d + 1]);
            return false;
        }
        if (k->nn > 0 && d + 2 < nd) {
            jfail_at(p, k->line, k->col, "ragged array: expected an array like the first element, found a number");
            return false;
        }
        if (!check_rect(p, k, d + 1, nd, shape)) return false;
    }
    return true;
}

static void fill_numbers(const jp *p, const jnode *a, double *out, int64_t *k) {
    if (a->nn) {
        memcpy(out + *k, p->pool + a->off, (size_t)a->nn * sizeof *out);
        *k += a->nn;
        return;
    }
    for (int i = 0; i < a->n; i++) {
        if (a->kids[i]->kind == J_NUM) out[(*k)++] = a->kids[i]->num;
        else fill_numbers(p, a->kids[i], out, k);
    }
}

static int to_value(jp *p, const jnode *n, rt_value *out);

static int array_tensor(jp *p, const jnode *a, rt_value *out) {
    int64_t shape[BK_MAXDIM];
    int nd = first_shape(p, a, shape);
    if (nd < 0 || !check_rect(p, a, 0, nd, shape)) return -1;
    bk_tensor *t = bk_empty(p->ctx, BK_F64, nd, shape);
    if (!t) {
        joom(p);
        return -1;
    }
    int64_t k = 0;
    if (t->numel) fill_numbers(p, a, bk_data(t), &k);
    *out = rt_tensor(t);
    return 0;
}

static int array_list(jp *p, const jnode *a, rt_value *out) {
    rt_list *l = rt_list_new();
    if (!l) {
        joom(p);
        return -1;
    }
    for (int i = 0; i < a->n; i++) {
        rt_value v;
        if (to_value(p, a->kids[i], &v)) {
            rt_release(rt_obj_value(&l->h));
            return -1;
        }
        if (rt_list_push(l, v)) {
            rt_release(rt_obj_value(&l->h));
            joom(p);
            return -1;
        }
    }
    *out = rt_obj_value(&l->h);
    return 0;
}

static int object_record(jp *p, const jnode *o, rt_value *out) {
    rt_record *r = rt_record_new();
    if (!r) {
        joom(p);
        return -1;
    }
    for (int i = 0; i < o->n; i++) {
        rt_value v;
        if (to_value(p, o->kids[i], &v)) {
            rt_release(rt_obj_value(&r->h));
            return -1;
        }
        if (rt_record_set(r, o->keys[i], v)) {
            rt_release(rt_obj_value(&r->h));
            joom(p);
            return -1;
        }
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

static int to_value(jp *p, const jnode *n, rt_value *out) {
    *out = rt_none();
    switch (n->kind) {
    case J_NUM: {
        bk_tensor *t = bk_scalar(p->ctx, n->num);
        if (!t) {
            joom(p);
            return -1;
        }
        *out = rt_tensor(t);
        return 0;
    }
    case J_STR: {
        rt_str *s = rt_str_new(n->str, strlen(n->str));
        if (!s) {
            joom(p);
            return -1;
        }
        *out = rt_obj_value(&s->h);
        return 0;
    }
    case J_NULL: return 0;
    case J_ARR: return all_numeric(n) ? array_tensor(p, n, out) : array_list(p, n, out);
    default: return object_record(p, n, out);
    }
}

/* The core of rt_parse_json_text: 0, -1 (bad data) or -2 (out of memory). */
static int parse_json(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                      size_t errlen) {
    jp p = {.ctx = ctx, .name = name, .s = text, .end = text + len, .line_start = text, .line = 1,
            .err = err, .errlen = errlen};
    *out = rt_none();
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.s += 3; /* a UTF-8 byte order mark */
    jnode *n = parse_value(&p, 0);
    if (n) {
        skip_ws(&p);
        if (p.s < p.end) jfail(&p, "unexpected text after the end of the data");
    }
    int rc = n && !p.failed ? to_value(&p, n, out) : -1;
    jfree(n);
    free(p.pool);
    if (rc) rt_release(*out), *out = rt_none();
    return rc ? (p.oom ? -2 : -1) : 0;
}

int rt_parse_json_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                       size_t errlen) {
    return parse_json(ctx, name, text, len, out, err, errlen) ? -1 : 0;
}

/* Read a data file and run a parser; errors are reported at callloc. */
typedef int (*text_parser)(bk_ctx *, const char *, const char *, size_t, rt_value *, char *, size_t);

static int load_file(rt_vm *vm, const char *path, rt_loc callloc, text_parser parse, rt_value *out) {
    char err[512];
    size_t len;
    *out = rt_none();
    /* Read into memory, not mapped: a host program must get an error, never
     * SIGBUS, when another process cuts the file short while it is parsed. */
    char *text = rt_read_file(path, &len, err, sizeof err);
    if (!text) return rt_fail(vm, 4, callloc, "%s", err);
    int rc = parse(vm->bk, path, text, len, out, err, sizeof err);
    free(text);
    if (rc == -2) return rt_fail(vm, 5, callloc, "%s", err);
    if (rc) return rt_error_loc(vm, callloc, "%s", err);
    if (rt_place_value(vm->bk, out)) return rt_fail(vm, 5, callloc, "%s: %s", path, bk_errmsg(vm->bk));
    return 0;
}

int rt_load_json(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out) {
    return load_file(vm, path, callloc, parse_json, out);
}

/* -------------------------------------------------------------- CSV in --- */

typedef struct column {
    char *name;
    double *v;
    int64_t n, cap;
} column;

/* One field of a line: [start, stop) after unquoting, and its column. */
typedef struct field {
    char *s;     /* NUL-terminated in the line buffer */
    int col;     /* 1-based column of the field's first character */
} field;

typedef struct csvp {
    const char *name;
    int lineno;
    char *err;
    size_t errlen;
    bool oom;
    field *f;
    int nf, cap;
} csvp;

static int csv_fail(csvp *c, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int csv_fail(csvp *c, int col, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->name, c->lineno, col, msg);
    return -1;
}

static int csv_oom(csvp *c) {
    c->oom = true;
    snprintf(c->err, c->errlen, "%s: out of memory", c->name);
    return -1;
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* Split a line (modified in place) into fields.  A field may be quoted
 * ("a, b"), with "" standing for one quote inside; spaces around fields are
 * dropped.  Returns 0 or -1 with a message. */
static int split_fields(csvp *c, char *line) {
    c->nf = 0;
    char *s = line;
    for (;;) {
        while (is_blank(*s)) s++;
        if (c->nf == c->cap) {
            int cap = c->cap ? c->cap * 2 : 16;
            field *f = realloc(c->f, (size_t)cap * sizeof *f);
            if (!f) return csv_oom(c);
            c->f = f;
            c->cap = cap;
        }
        field *f = &c->f[c->nf++];
        f->col = (int)(s - line) + 1;
        char *w = s, *stop;
        if (*s == '"') {
            f->s = w = ++s;
            for (;;) {
                if (!*s) return csv_fail(c, f->col, "unterminated quoted field");
                if (*s == '"' && s[1] == '"') *w++ = '"', s += 2;
                else if (*s == '"') break;
                else *w++ = *s++;
            }
            stop = w;
            s++;
            while (is_blank(*s)) s++;
            if (*s && *s != ',') return csv_fail(c, (int)(s - line) + 1, "unexpected text after a quoted field");
        } else {
            f->s = s;
            while (*s && *s != ',') s++;
            stop = s;
            while (stop > f->s && is_blank(stop[-1])) stop--;
        }
        bool more = *s == ',';
        *stop = 0;
        if (!more) return 0;
        s++;
    }
}

static int csv_header(csvp *c, column **cols, int *ncols) {
    *cols = calloc((size_t)c->nf, sizeof **cols);
    if (!*cols) return csv_oom(c);
    *ncols = c->nf;
    for (int i = 0; i < c->nf; i++) {
        if (!*c->f[i].s) return csv_fail(c, c->f[i].col, "empty column name");
        for (int j = 0; j < i; j++)
            if (strcmp((*cols)[j].name, c->f[i].s) == 0)
                return csv_fail(c, c->f[i].col, "duplicate column name \"%s\"", c->f[i].s);
        if (!((*cols)[i].name = strdup(c->f[i].s))) return csv_oom(c);
    }
    return 0;
}

/* A whole cell as a number, as strtod reads it (so "+1", ".5", "1." and
 * "inf" too); the fast reader takes the common JSON-style numbers. */
static bool csv_number(const char *cell, double *v) {
    const char *end = cell + strlen(cell), *stop;
    if (rt_parse_number(cell, end, v, &stop) == RT_NUM_OK && stop == end) return true;
    char *endp;
    *v = rt_strtod_c(cell, &endp);
    return !*endp;
}

static int csv_row(csvp *c, column *cols, int ncols, int line_len) {
    if (c->nf != ncols)
        return csv_fail(c, c->nf < ncols ? line_len + 1 : c->f[ncols].col, "expected %d field%s like the header, got %d",
                        ncols, ncols == 1 ? "" : "s", c->nf);
    for (int i = 0; i < ncols; i++) {
        const field *f = &c->f[i];
        if (!*f->s) return csv_fail(c, f->col, "empty cell in column \"%s\"", cols[i].name);
        double v;
        if (!csv_number(f->s, &v))
            return csv_fail(c, f->col, "\"%s\" is not a number (column \"%s\")", f->s, cols[i].name);
        column *col = &cols[i];
        if (col->n == col->cap) {
            int64_t cap = col->cap ? col->cap * 2 : 64;
            double *q = realloc(col->v, (size_t)cap * sizeof *q);
            if (!q) return csv_oom(c);
            col->v = q;
            col->cap = cap;
        }
        col->v[col->n++] = v;
    }
    return 0;
}

static int csv_record(bk_ctx *ctx, csvp *c, column *cols, int ncols, rt_value *out) {
    rt_record *r = rt_record_new();
    if (!r) return csv_oom(c);
    for (int i = 0; i < ncols; i++) {
        bk_tensor *t = cols[i].n ? bk_from_f64(ctx, 1, &cols[i].n, cols[i].v) : bk_zeros(ctx, BK_F64, 1, &cols[i].n);
        if (!t || rt_record_set(r, cols[i].name, rt_tensor(t))) {
            rt_release(rt_obj_value(&r->h));
            return csv_oom(c);
        }
    }
    *out = rt_obj_value(&r->h);
    return 0;
}

static int parse_csv(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                     size_t errlen) {
    *out = rt_none();
    csvp c = {.name = name, .err = err, .errlen = errlen};
    char *buf = malloc(len + 1);
    if (!buf) return csv_oom(&c), -2;
    memcpy(buf, text, len);
    buf[len] = 0;
    column *cols = NULL;
    int ncols = 0, rc = 0;
    for (char *line = buf; line && rc == 0;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        char *next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        c.lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        const char *t = line;
        while (is_blank(*t)) t++;
        if (*t && *t != '#') {
            rc = split_fields(&c, line);
            if (rc == 0) rc = cols ? csv_row(&c, cols, ncols, (int)ll) : csv_header(&c, &cols, &ncols);
        }
        line = next;
    }
    if (rc == 0 && !cols) {
        c.lineno = 1;
        rc = csv_fail(&c, 1, "no header row (the first line that is not blank or a # comment names the columns)");
    }
    if (rc == 0) rc = csv_record(ctx, &c, cols, ncols, out);
    for (int i = 0; cols && i < ncols; i++) {
        free(cols[i].name);
        free(cols[i].v);
    }
    free(cols);
    free(c.f);
    free(buf);
    return rc ? (c.oom ? -2 : -1) : 0;
}

int rt_parse_csv_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                      size_t errlen) {
    return parse_csv(ctx, name, text, len, out, err, errlen) ? -1 : 0;
}

int rt_load_csv(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out) {
    return load_file(vm, path, callloc, parse_csv, out);
}

/* ------------------------------------------------------------ JSON out --- */

/* Numbers as CmdStan writes them: integers plainly, others with the fewest
 * significant digits (at most 17) that read back to the same double. */
static void jnum(rt_sb *b, double x) {
    char buf[40];
    if (isnan(x)) snprintf(buf, sizeof buf, "NaN");
    else if (isinf(x)) snprintf(buf, sizeof buf, x > 0 ? "Infinity" : "-Infinity");
    else if (x == floor(x) && fabs(x) < 1e15) snprintf(buf, sizeof buf, "%.0f", x);
    else
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
    rt_sb_puts(b, buf);
}

static void jstr(rt_sb *b, const char *s) {
    rt_sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t"
                          : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        char e[8];
        if (!esc && c < 32) {
            snprintf(e, sizeof e, "\\u%04x", c);
            esc = e;
        }
        if (esc) rt_sb_puts(b, esc);
        else rt_sb_put(b, (const char *)&c, 1);
    }
    rt_sb_puts(b, "\"");
}

static void jtensor(rt_sb *b, const bk_tensor *t, int dim, int64_t *flat) {
    if (dim == t->ndim) {
        jnum(b, bk_get(t, (*flat)++));
        return;
    }
    rt_sb_puts(b, "[");
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (i) rt_sb_puts(b, ", ");
        jtensor(b, t, dim + 1, flat);
    }
    rt_sb_puts(b, "]");
}

static void jvalue(bk_ctx *ctx, rt_sb *b, rt_value v, int depth) {
    if (depth > 64) {
        rt_sb_puts(b, "null");
        return;
    }
    switch (v.tag) {
    case RT_TENSOR: {
        int64_t flat = 0;
        jtensor(b, v.u.t, 0, &flat);
        break;
    }
    case RT_STR: jstr(b, ((rt_str *)v.u.o)->s); break;
    case RT_RECORD: {
        rt_record *r = (rt_record *)v.u.o;
        rt_sb_puts(b, "{");
        for (int i = 0; i < r->n; i++) {
            if (i) rt_sb_puts(b, ", ");
            jstr(b, r->keys[i]);
            rt_sb_puts(b, ": ");
            jvalue(ctx, b, r->vals[i], depth + 1);
        }
        rt_sb_puts(b, "}");
        break;
    }
    case RT_LIST: {
        rt_list *l = (rt_list *)v.u.o;
        rt_sb_puts(b, "[");
        for (int i = 0; i < l->n; i++) {
            if (i) rt_sb_puts(b, ", ");
            jvalue(ctx, b, l->items[i], depth + 1);
        }
        rt_sb_puts(b, "]");
        break;
    }
    case RT_NONE: rt_sb_puts(b, "null"); break;
    case RT_DIST: jstr(b, ((const sl_dist *)v.u.o)->fam->name); break; /* "Normal" */
    case RT_OPAQUE: {
        /* results (posteriors, SVI fits) know their own JSON form */
        const rt_opaque *o = (const rt_opaque *)v.u.o;
        if (!o->to_json) {
            jstr(b, o->type);
            break;
        }
        char *text = o->to_json(ctx, o->data);
        if (text) rt_sb_puts(b, text);
        else b->oom = true;   /* rt_to_json then fails: out of memory */
        free(text);
        break;
    }
    default: jstr(b, rt_type_name(v));
    }
}

char *rt_to_json(bk_ctx *ctx, rt_value v) {
    rt_sb b = {0};
    jvalue(ctx, &b, v, 0);
    return rt_sb_finish(&b);
}

/* ------------------------------------------------------------ builtins --- */

static const char *const PATH_ARGS[] = {"path", NULL};
static const char *const WRITE_ARGS[] = {"path", "value", NULL};

static int b_load_json(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, PATH_ARGS) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    return rt_load_json(vm, path, c->loc, out);
}

static int b_load_csv(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, PATH_ARGS) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    return rt_load_csv(vm, path, c->loc, out);
}

static int b_write_json(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 2, WRITE_ARGS) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    const rt_value *v = rt_arg(c, 1, "value");
    if (!v) return rt_error(vm, c, "write_json: missing the value to write (write_json(path, value))");
    char *text = rt_to_json(vm->bk, *v);
    size_t n = text ? strlen(text) : 0;
    char *full = text ? realloc(text, n + 2) : NULL;
    if (!full) {
        free(text);
        return rt_fail(vm, 5, c->loc, "out of memory");
    }
    full[n] = '\n';
    full[n + 1] = 0;
    char err[512];
    int rc = rt_write_file_atomic(path, full, n + 1, err, sizeof err);
    free(full);
    if (rc) return rt_fail(vm, 4, c->loc, "%s", err);
    *out = rt_none();
    return 0;
}

const rt_builtin_def rt_data_io_builtins[] = {
    {"load_json", b_load_json},
    {"load_csv", b_load_csv},
    {"write_json", b_write_json},
    {NULL, NULL},
};
