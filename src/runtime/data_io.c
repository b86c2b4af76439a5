/* data_io.c - JSON and CSV data files, JSON output, atomic writes.
 *
 * The JSON reader is a small recursive-descent parser with a depth limit.
 * Arrays whose leaves are all numbers and whose rows have equal lengths
 * become float64 tensors (CmdStan data); anything else becomes a list. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_io.h"
#include "vm.h"

#define JSON_MAX_DEPTH 64

/* ---------------------------------------------------------------- files --- */

char *rt_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 >= cap) {
            char *p = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
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

typedef struct jp {
    bk_ctx *ctx;
    const char *name, *s, *end;
    const char *line_start;
    int line;
    char *err;
    size_t errlen;
    bool failed;
} jp;

static void jfail(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jfail(jp *p, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s:%d:%d: %s", p->name, p->line, (int)(p->s - p->line_start) + 1, msg);
}

static void skip_ws(jp *p) {
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

static bool lit(jp *p, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) >= n && memcmp(p->s, w, n) == 0) {
        p->s += n;
        return true;
    }
    return false;
}

/* A parsed JSON node before conversion to values (so rectangular numeric
 * arrays can become one tensor). */
typedef struct jnode {
    int kind; /* 0 number, 1 string, 2 array, 3 object */
    double num;
    char *str;
    struct jnode **kids;
    char **keys;
    int n, cap;
} jnode;

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

static bool jpush(jp *p, jnode *n, jnode *kid, char *key) {
    if (n->n == n->cap) {
        int cap = n->cap ? n->cap * 2 : 8;
        jnode **k = realloc(n->kids, cap * sizeof *k);
        if (!k) goto oom;
        n->kids = k;
        if (n->kind == 3) {
            char **ks = realloc(n->keys, cap * sizeof *ks);
            if (!ks) goto oom;
            n->keys = ks;
        }
        n->cap = cap;
    }
    n->kids[n->n] = kid;
    if (n->kind == 3) n->keys[n->n] = key;
    n->n++;
    return true;
oom:
    jfree(kid);
    free(key);
    jfail(p, "out of memory");
    return false;
}

static char *parse_string(jp *p) {
    p->s++; /* opening quote */
    size_t cap = 32, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        jfail(p, "out of memory");
        return NULL;
    }
    while (p->s < p->end && *p->s != '"') {
        char c = *p->s++;
        if (c == '\n') {
            jfail(p, "unterminated string");
            free(buf);
            return NULL;
        }
        if (c == '\\' && p->s < p->end) {
            char e = *p->s++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (e == 'u') {
                /* keep \uXXXX for ASCII, '?' otherwise */
                unsigned v = 0;
                for (int i = 0; i < 4 && p->s < p->end; i++, p->s++) {
                    char h = *p->s;
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
                }
                c = v < 128 ? (char)v : '?';
            }
        }
        if (n + 2 > cap) {
            char *q = realloc(buf, cap *= 2);
            if (!q) {
                free(buf);
                jfail(p, "out of memory");
                return NULL;
            }
            buf = q;
        }
        buf[n++] = c;
    }
    if (p->s >= p->end) {
        free(buf);
        jfail(p, "unterminated string");
        return NULL;
    }
    p->s++;
    buf[n] = 0;
    return buf;
}

static jnode *parse_value(jp *p, int depth);

static jnode *new_node(jp *p, int kind) {
    jnode *n = calloc(1, sizeof *n);
    if (!n) jfail(p, "out of memory");
    else n->kind = kind;
    return n;
}

static jnode *parse_container(jp *p, int depth, bool object) {
    jnode *n = new_node(p, object ? 3 : 2);
    if (!n) return NULL;
    p->s++;
    skip_ws(p);
    if (p->s < p->end && *p->s == (object ? '}' : ']')) {
        p->s++;
        return n;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (object) {
            if (p->s >= p->end || *p->s != '"') {
                jfail(p, "expected a field name in quotes");
                break;
            }
            key = parse_string(p);
            if (!key) break;
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                jfail(p, "expected \":\" after the field name");
                break;
            }
            p->s++;
        }
        jnode *kid = parse_value(p, depth + 1);
        if (!kid) {
            free(key);
            break;
        }
        if (!jpush(p, n, kid, key)) break;
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == (object ? '}' : ']')) {
            p->s++;
            return n;
        }
        jfail(p, object ? "expected \",\" or \"}\" after a field" : "expected \",\" or \"]\" after an array element");
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
        jfail(p, "unexpected end of the file");
        return NULL;
    }
    char c = *p->s;
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') {
        jnode *n = new_node(p, 1);
        if (n && !(n->str = parse_string(p))) {
            jfree(n);
            return NULL;
        }
        return n;
    }
    double v;
    if (lit(p, "true")) v = 1;
    else if (lit(p, "false")) v = 0;
    else if (lit(p, "NaN")) v = NAN;
    else if (lit(p, "Infinity") || lit(p, "inf")) v = INFINITY;
    else if (lit(p, "-Infinity") || lit(p, "-inf")) v = -INFINITY;
    else {
        char *endp;
        if (!(c == '-' || (c >= '0' && c <= '9'))) {
            jfail(p, "expected a value (a number, string, array or object)");
            return NULL;
        }
        errno = 0;
        v = strtod(p->s, &endp);
        if (endp == p->s || endp > p->end) {
            jfail(p, "expected a number");
            return NULL;
        }
        p->s = endp;
    }
    jnode *n = new_node(p, 0);
    if (n) n->num = v;
    return n;
}

/* Shape of a rectangular numeric array, or -1 (then it is a list). */
static int numeric_shape(const jnode *n, int depth, int64_t *shape, int *ndim) {
    if (n->kind == 0) {
        if (*ndim < 0) *ndim = depth;
        return *ndim == depth ? 0 : -1;
    }
    if (n->kind != 2 || depth >= BK_MAXDIM) return -1;
    if (n->n == 0) {
        if (*ndim < 0) *ndim = depth + 1;
        if (*ndim != depth + 1) return -1;
        shape[depth] = 0;
        return 0;
    }
    if (*ndim >= 0 && depth < *ndim && shape[depth] != n->n) return -2; /* ragged */
    shape[depth] = n->n;
    for (int i = 0; i < n->n; i++) {
        int rc = numeric_shape(n->kids[i], depth + 1, shape, ndim);
        if (rc) return rc;
    }
    return 0;
}

static void fill_numbers(const jnode *n, double *out, int64_t *k) {
    if (n->kind == 0) {
        out[(*k)++] = n->num;
        return;
    }
    for (int i = 0; i < n->n; i++) fill_numbers(n->kids[i], out, k);
}

static int to_value(jp *p, const jnode *n, rt_value *out) {
    *out = rt_none();
    switch (n->kind) {
    case 0: {
        bk_tensor *t = bk_scalar(p->ctx, n->num);
        if (!t) return -1;
        *out = rt_tensor(t);
        return 0;
    }
    case 1: {
        rt_str *s = rt_str_new(n->str, strlen(n->str));
        if (!s) return -1;
        *out = rt_obj_value(&s->h);
        return 0;
    }
    case 2: {
        int64_t shape[BK_MAXDIM];
        int ndim = -1;
        int rc = numeric_shape(n, 0, shape, &ndim);
        if (rc == 0) {
            bk_tensor *t = bk_empty(p->ctx, BK_F64, ndim, shape);
            if (!t) return -1;
            int64_t k = 0;
            fill_numbers(n, bk_data(t), &k);
            *out = rt_tensor(t);
            return 0;
        }
        bool all_num_arrays = true;
        for (int i = 0; i < n->n; i++)
            if (n->kids[i]->kind == 1 || n->kids[i]->kind == 3) all_num_arrays = false;
        if (rc == -2 && all_num_arrays) {
            snprintf(p->err, p->errlen, "%s: ragged array: rows of different lengths cannot form a tensor", p->name);
            p->failed = true;
            return -1;
        }
        rt_list *l = rt_list_new();
        if (!l) return -1;
        for (int i = 0; i < n->n; i++) {
            rt_value v;
            if (to_value(p, n->kids[i], &v) || rt_list_push(l, v)) {
                rt_release(rt_obj_value(&l->h));
                return -1;
            }
        }
        *out = rt_obj_value(&l->h);
        return 0;
    }
    default: {
        rt_record *r = rt_record_new();
        if (!r) return -1;
        for (int i = 0; i < n->n; i++) {
            rt_value v;
            if (to_value(p, n->kids[i], &v) || rt_record_set(r, n->keys[i], v)) {
                rt_release(rt_obj_value(&r->h));
                return -1;
            }
        }
        *out = rt_obj_value(&r->h);
        return 0;
    }
    }
}

int rt_parse_json_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                       size_t errlen) {
    jp p = {ctx, name, text, text + len, text, 1, err, errlen, false};
    *out = rt_none();
    jnode *n = parse_value(&p, 0);
    if (n) {
        skip_ws(&p);
        if (p.s < p.end) jfail(&p, "unexpected text after the end of the data");
    }
    int rc = -1;
    if (n && !p.failed) {
        rc = to_value(&p, n, out);
        if (rc && !p.failed) snprintf(err, errlen, "%s: out of memory", name);
    }
    jfree(n);
    return rc;
}

int rt_load_json(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out) {
    char err[512];
    size_t len;
    char *text = rt_read_file(path, &len, err, sizeof err);
    if (!text) return rt_fail(vm, 4, callloc, "%s", err);
    int rc = rt_parse_json_text(vm->bk, path, text, len, out, err, sizeof err);
    free(text);
    if (rc) return rt_error_loc(vm, callloc, "%s", err);
    return 0;
}

/* -------------------------------------------------------------- CSV in --- */

typedef struct column {
    char *name;
    double *v;
    int64_t n, cap;
} column;

static void columns_free(column *c, int n) {
    for (int i = 0; i < n; i++) {
        free(c[i].name);
        free(c[i].v);
    }
    free(c);
}

/* Split one line into fields (double quotes allowed around a field);
 * returns the field count (fields beyond max are counted, not stored). */
static int split_fields(char *line, char **fields, int max) {
    int n = 0;
    char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        char *start = s, *stop;
        if (*s == '"') {
            start = ++s;
            while (*s && *s != '"') s++;
            stop = s;
            if (*s == '"') s++;
            while (*s && *s != ',') s++;
        } else {
            while (*s && *s != ',') s++;
            stop = s;
        }
        bool more = *s == ',';
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r')) stop--;
        *stop = 0;
        if (n < max) fields[n] = start;
        n++;
        if (!more) break;
        s++;
    }
    return n;
}

int rt_parse_csv_text(bk_ctx *ctx, const char *name, const char *text, size_t len, rt_value *out, char *err,
                      size_t errlen) {
    *out = rt_none();
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    column *cols = NULL;
    int ncols = 0, rc = -1, lineno = 0;
    char *fields[1024];
    char *save = buf;
    while (save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = 0;
            save = nl + 1;
        } else {
            save = NULL;
        }
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        char *t = line;
        while (*t == ' ' || *t == '\t') t++;
        if (!*t || *t == '#') continue;
        int nf = split_fields(line, fields, 1024);
        if (nf > 1024) {
            snprintf(err, errlen, "%s:%d:1: too many columns (the limit is 1024)", name, lineno);
            goto done;
        }
        if (!cols) {
            cols = calloc((size_t)nf, sizeof *cols);
            if (!cols) goto oom;
            ncols = nf;
            for (int i = 0; i < nf; i++) {
                if (!*fields[i]) {
                    snprintf(err, errlen, "%s:%d:%d: empty column name", name, lineno, (int)(fields[i] - line) + 1);
                    goto done;
                }
                if (!(cols[i].name = strdup(fields[i]))) goto oom;
            }
            continue;
        }
        if (nf != ncols) {
            snprintf(err, errlen, "%s:%d:1: expected %d fields like the header, got %d", name, lineno, ncols, nf);
            goto done;
        }
        for (int i = 0; i < nf; i++) {
            char *endp;
            double v = strtod(fields[i], &endp);
            if (endp == fields[i] || *endp) {
                snprintf(err, errlen, "%s:%d:%d: \"%s\" is not a number (column \"%s\")", name, lineno,
                         (int)(fields[i] - line) + 1, fields[i], cols[i].name);
                goto done;
            }
            column *c = &cols[i];
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                double *p = realloc(c->v, (size_t)c->cap * sizeof *p);
                if (!p) goto oom;
                c->v = p;
            }
            c->v[c->n++] = v;
        }
    }
    if (!cols) {
        snprintf(err, errlen, "%s:1:1: no header row", name);
        goto done;
    }
    rt_record *r = rt_record_new();
    if (!r) goto oom;
    for (int i = 0; i < ncols; i++) {
        bk_tensor *tns = bk_from_f64(ctx, 1, &cols[i].n, cols[i].v);
        if (!tns || rt_record_set(r, cols[i].name, rt_tensor(tns))) {
            rt_release(rt_obj_value(&r->h));
            goto oom;
        }
    }
    *out = rt_obj_value(&r->h);
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "%s: out of memory", name);
done:
    columns_free(cols, ncols);
    free(buf);
    return rc;
}

int rt_load_csv(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out) {
    char err[512];
    size_t len;
    char *text = rt_read_file(path, &len, err, sizeof err);
    if (!text) return rt_fail(vm, 4, callloc, "%s", err);
    int rc = rt_parse_csv_text(vm->bk, path, text, len, out, err, sizeof err);
    free(text);
    if (rc) return rt_error_loc(vm, callloc, "%s", err);
    return 0;
}

/* ------------------------------------------------------------ JSON out --- */

typedef struct jb {
    char *s;
    size_t n, cap;
    bool oom;
} jb;

static void jput(jb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void jputs(jb *b, const char *s) { jput(b, s, strlen(s)); }

static void jnum(jb *b, double x) {
    char buf[40];
    if (isnan(x)) snprintf(buf, sizeof buf, "NaN");
    else if (isinf(x)) snprintf(buf, sizeof buf, x > 0 ? "Infinity" : "-Infinity");
    else if (x == floor(x) && fabs(x) < 1e15) snprintf(buf, sizeof buf, "%.0f", x);
    else snprintf(buf, sizeof buf, "%.17g", x);
    jputs(b, buf);
}

static void jstr(jb *b, const char *s) {
    jputs(b, "\"");
    for (; *s; s++) {
        char e[8];
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            jput(b, e, 2);
        } else if (c == '\n') jputs(b, "\\n");
        else if (c == '\t') jputs(b, "\\t");
        else if (c < 32) {
            snprintf(e, sizeof e, "\\u%04x", c);
            jputs(b, e);
        } else jput(b, (const char *)&c, 1);
    }
    jputs(b, "\"");
}

static void jtensor(jb *b, const bk_tensor *t, int dim, int64_t *flat) {
    if (dim == t->ndim) {
        jnum(b, bk_get(t, (*flat)++));
        return;
    }
    jputs(b, "[");
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (i) jputs(b, ", ");
        jtensor(b, t, dim + 1, flat);
    }
    jputs(b, "]");
}

static void jvalue(jb *b, rt_value v, int depth) {
    if (depth > 64) {
        jputs(b, "null");
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
        jputs(b, "{");
        for (int i = 0; i < r->n; i++) {
            if (i) jputs(b, ", ");
            jstr(b, r->keys[i]);
            jputs(b, ": ");
            jvalue(b, r->vals[i], depth + 1);
        }
        jputs(b, "}");
        break;
    }
    case RT_LIST: {
        rt_list *l = (rt_list *)v.u.o;
        jputs(b, "[");
        for (int i = 0; i < l->n; i++) {
            if (i) jputs(b, ", ");
            jvalue(b, l->items[i], depth + 1);
        }
        jputs(b, "]");
        break;
    }
    case RT_NONE: jputs(b, "null"); break;
    default: jstr(b, rt_type_name(v));
    }
}

char *rt_to_json(bk_ctx *ctx, rt_value v) {
    (void)ctx;
    jb b = {0};
    jvalue(&b, v, 0);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : strdup("null");
}

/* ------------------------------------------------------------ builtins --- */

static int b_load_json(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    return rt_load_json(vm, path, c->loc, out);
}

static int b_load_csv(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 1, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    return rt_load_csv(vm, path, c->loc, out);
}

static int b_write_json(rt_vm *vm, const rt_call *c, rt_value *out) {
    const char *path;
    if (rt_check_args(vm, c, 2, NULL) || rt_arg_string(vm, c, 0, "path", true, &path)) return -1;
    const rt_value *v = rt_arg(c, 1, "value");
    if (!v) return rt_error(vm, c, "write_json: missing the value to write");
    char *text = rt_to_json(vm->bk, *v);
    if (!text) return rt_error(vm, c, "out of memory");
    size_t n = strlen(text);
    char *full = realloc(text, n + 2);
    if (!full) {
        free(text);
        return rt_error(vm, c, "out of memory");
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
