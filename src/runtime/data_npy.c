/* data_npy.c - NumPy .npy files: load_npy(path) -> a float64 tensor.
 *
 * Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor
 * version byte, the header length (2 bytes little-endian in version 1, 4 in
 * versions 2 and 3), then an ASCII Python dict literal such as
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw data.  Read here:
 * little-endian (or byte-order-free) f8, f4, i8, i4, u1 and b1 (bool), C
 * order, up to BK_MAXDIM dimensions; every element becomes a float64.
 * Errors name the file and the byte offset of the problem ("d.npy: byte
 * 42: unsupported dtype '>f8' (big-endian)"). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "data_io.h"
#include "data_npy.h"

typedef struct hdr {
    const char *name;
    const char *s;        /* header text */
    size_t n, pos, base;  /* length, cursor, offset of the text in the file */
    char *err;
    size_t errlen;
} hdr;

static int herr(hdr *h, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(h->err, h->errlen, "%s: byte %zu: %s", h->name, h->base + h->pos, msg);
    return -1;
}

static void skip_ws(hdr *h) {
    while (h->pos < h->n && (h->s[h->pos] == ' ' || h->s[h->pos] == '\n' || h->s[h->pos] == '\t')) h->pos++;
}

static bool eat(hdr *h, char ch) {
    skip_ws(h);
    if (h->pos < h->n && h->s[h->pos] == ch) {
        h->pos++;
        return true;
    }
    return false;
}

/* a quoted Python string into buf */
static int read_str(hdr *h, char *buf, size_t cap) {
    skip_ws(h);
    if (h->pos >= h->n || (h->s[h->pos] != '\'' && h->s[h->pos] != '"')) return herr(h, "expected a quoted string%s", "");
    char q = h->s[h->pos++];
    size_t k = 0;
    while (h->pos < h->n && h->s[h->pos] != q) {
        if (k + 1 < cap) buf[k++] = h->s[h->pos];
        h->pos++;
    }
    if (h->pos >= h->n) return herr(h, "unterminated string%s", "");
    h->pos++;
    buf[k] = 0;
    return 0;
}

typedef struct npy_info {
    char descr[16];
    int fortran;          /* -1 unset */
    int ndim;             /* -1 unset */
    int64_t shape[BK_MAXDIM];
    size_t descr_pos, fortran_pos, key_pos; /* where they start (for messages) */
} npy_info;

static int read_value(hdr *h, const char *key, npy_info *info) {
    skip_ws(h);
    if (strcmp(key, "descr") == 0) {
        info->descr_pos = h->pos;
        return read_str(h, info->descr, sizeof info->descr);
    }
    if (strcmp(key, "fortran_order") == 0) {
        info->fortran_pos = h->pos;
        if (h->n - h->pos >= 4 && strncmp(h->s + h->pos, "True", 4) == 0) {
            info->fortran = 1;
            h->pos += 4;
        } else if (h->n - h->pos >= 5 && strncmp(h->s + h->pos, "False", 5) == 0) {
            info->fortran = 0;
            h->pos += 5;
        } else {
            return herr(h, "fortran_order must be True or False%s", "");
        }
        return 0;
    }
    if (strcmp(key, "shape") == 0) {
        if (!eat(h, '(')) return herr(h, "shape must be a tuple like (3, 4)%s", "");
        info->ndim = 0;
        while (!eat(h, ')')) {
            skip_ws(h);
            size_t start = h->pos;
            int64_t v = 0;
            while (h->pos < h->n && isdigit((unsigned char)h->s[h->pos])) {
                if (v > (int64_t)1 << 50) return herr(h, "dimension too large%s", "");
                v = v * 10 + (h->s[h->pos++] - '0');
            }
            if (h->pos == start) return herr(h, "expected a dimension (a non-negative integer)%s", "");
            if (info->ndim == BK_MAXDIM) {
                h->pos = start;
                return herr(h, "more than 8 dimensions%s", "");
            }
            info->shape[info->ndim++] = v;
            if (!eat(h, ',')) {
                if (!eat(h, ')')) return herr(h, "expected ',' or ')' in the shape%s", "");
                break;
            }
        }
        return 0;
    }
    h->pos = info->key_pos;
    return herr(h, "unknown header key '%s'", key);
}

int rt_parse_npy(bk_ctx *ctx, const char *name, const unsigned char *buf, size_t len, bk_tensor **out,
                 char *err, size_t errlen) {
    *out = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        snprintf(err, errlen, "%s: byte 0: not an NPY file (the magic \\x93NUMPY is missing)", name);
        return -1;
    }
    int major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            snprintf(err, errlen, "%s: byte %zu: the file ends inside the header length", name, len);
            return -1;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        snprintf(err, errlen, "%s: byte 6: unsupported NPY version %d.%d (1, 2 and 3 are read)", name, major, buf[7]);
        return -1;
    }
    if (hlen > len - hstart) {
        snprintf(err, errlen, "%s: byte %zu: the header (%zu bytes) runs past the end of the file", name, hstart, hlen);
        return -1;
    }
    hdr h = {name, (const char *)buf + hstart, hlen, 0, hstart, err, errlen};
    npy_info info = {{0}, -1, -1, {0}, 0, 0, 0};
    if (!eat(&h, '{')) return herr(&h, "the header must be a dict starting with '{'%s", "");
    while (!eat(&h, '}')) {
        char key[64];
        skip_ws(&h);
        info.key_pos = h.pos;
        if (read_str(&h, key, sizeof key)) return -1;
        if (!eat(&h, ':')) return herr(&h, "expected ':' after the key%s", "");
        if (read_value(&h, key, &info)) return -1;
        if (!eat(&h, ',')) {
            if (!eat(&h, '}')) return herr(&h, "expected ',' or '}' in the header%s", "");
            break;
        }
    }
    if (!info.descr[0] || info.fortran < 0 || info.ndim < 0)
        return herr(&h, "the header lacks one of 'descr', 'fortran_order', 'shape'%s", "");
    h.pos = info.fortran_pos;
    if (info.fortran) return herr(&h, "Fortran-order arrays are not read (save with np.ascontiguousarray)%s", "");
    const char *d = info.descr;
    h.pos = info.descr_pos;
    if (d[0] == '>') return herr(&h, "unsupported dtype '%s' (big-endian; use .astype('<f8'))", d);
    if (d[0] != '<' && d[0] != '|' && d[0] != '=')
        return herr(&h, "unsupported dtype '%s'", d);
    const char *t = d + 1;
    size_t esize;
    if (strcmp(t, "f8") == 0 || strcmp(t, "i8") == 0) esize = 8;
    else if (strcmp(t, "f4") == 0 || strcmp(t, "i4") == 0) esize = 4;
    else if (strcmp(t, "u1") == 0 || strcmp(t, "b1") == 0) esize = 1;
    else return herr(&h, "unsupported dtype '%s' (f8, f4, i8, i4, u1 and bool are read)", d);
    int64_t numel = 1;
    for (int i = 0; i < info.ndim; i++) {
        if (info.shape[i] && numel > ((int64_t)1 << 40) / info.shape[i])
            return herr(&h, "the array is too large%s", "");
        numel *= info.shape[i];
    }
    size_t dstart = hstart + hlen;
    if ((size_t)numel * esize != len - dstart) {
        snprintf(err, errlen, "%s: byte %zu: the data has %zu bytes, the header's shape and dtype need %zu", name,
                 dstart, len - dstart, (size_t)numel * esize);
        return -1;
    }
    bk_tensor *r = bk_empty(ctx, BK_F64, info.ndim, info.shape);
    if (!r) {
        snprintf(err, errlen, "%s: %s", name, bk_errmsg(ctx));
        return -2;
    }
    double *o = bk_data(r);
    const unsigned char *p = buf + dstart;
    for (int64_t i = 0; i < numel; i++, p += esize) {
        switch (t[0] == 'b' ? 'u' : t[0]) {
        case 'f':
            if (esize == 8) {
                memcpy(&o[i], p, 8);
            } else {
                float f;
                memcpy(&f, p, 4);
                o[i] = f;
            }
            break;
        case 'i':
            if (esize == 8) {
                int64_t v;
                memcpy(&v, p, 8);
                o[i] = (double)v;
            } else {
                int32_t v;
                memcpy(&v, p, 4);
                o[i] = v;
            }
            break;
        default: o[i] = t[0] == 'b' ? (p[0] != 0) : p[0]; break;
        }
    }
    *out = r;
    return 0;
}

int rt_load_npy(rt_vm *vm, const char *path, rt_loc callloc, rt_value *out) {
    char err[512];
    size_t len;
    *out = rt_none();
    char *buf = rt_read_file(path, &len, err, sizeof err);
    if (!buf) return rt_fail(vm, 4, callloc, "%s", err);
    bk_tensor *t;
    int rc = rt_parse_npy(vm->bk, path, (const unsigned char *)buf, len, &t, err, sizeof err);
    free(buf);
    if (rc == -2) return rt_fail(vm, 5, callloc, "%s", err);
    if (rc) return rt_error_loc(vm, callloc, "%s", err);
    *out = rt_tensor(t);
    if (rt_place_value(vm->bk, out)) return rt_fail(vm, 5, callloc, "%s: %s", path, bk_errmsg(vm->bk));
    return 0;
}

/* load_npy(path, dtype="float64"): dtype="float32" gives a float32 tensor
 * (the values rounded to float). */
static int b_load_npy(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"path", "dtype", NULL};
    const char *path, *dt;
    if (rt_check_args(vm, c, 1, names) || rt_arg_string(vm, c, 0, "path", true, &path) ||
        rt_arg_string(vm, c, -1, "dtype", false, &dt))
        return -1;
    if (dt && strcmp(dt, "float64") != 0 && strcmp(dt, "float32") != 0)
        return rt_error_kw(vm, c, "dtype", "load_npy: dtype must be \"float64\" or \"float32\", got \"%s\"", dt);
    if (rt_load_npy(vm, path, c->loc, out)) return -1;
    if (!dt || strcmp(dt, "float32") != 0) return 0;
    bk_tensor *t = bk_cast(vm->bk, out->u.t, BK_F32);
    rt_release(*out);
    *out = rt_none();
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

const rt_builtin_def rt_npy_builtins[] = {
    {"load_npy", b_load_npy},
    {NULL, NULL},
};
