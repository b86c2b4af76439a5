/* diag.c - source texts and diagnostics in the one shape ppl uses:
 *
 *   error: unknown name "sigm" (did you mean "sigma"?)
 *     --> model.ppl:7:28
 *      |
 *    7 |     observe y ~ Normal(mu, sigm)
 *      |                            ^^^^
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diag.h"

#define MAX_SHOWN_LINE 200   /* longer source lines are cut around the caret */

rt_source *rt_source_new(const char *name, const char *text, size_t len) {
    rt_source *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->refcount = 1;
    s->name = strdup(name ? name : "<string>");
    s->text = malloc(len + 1);
    if (!s->name || !s->text) {
        free(s->name);
        free(s->text);
        free(s);
        return NULL;
    }
    if (len) memcpy(s->text, text, len);
    s->text[len] = 0;
    s->len = len;
    return s;
}

rt_source *rt_source_retain(rt_source *s) {
    if (s) s->refcount++;
    return s;
}

void rt_source_release(rt_source *s) {
    if (!s || --s->refcount > 0) return;
    free(s->name);
    free(s->text);
    free(s);
}

void rt_diaglist_init(rt_diaglist *d) { memset(d, 0, sizeof *d); }

void rt_diaglist_free(rt_diaglist *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].msg);
        rt_source_release((rt_source *)d->items[i].src);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

int rt_diag_addv(rt_diaglist *d, const rt_source *src, rt_loc loc, const char *fmt, va_list ap) {
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 4;
        rt_diag *p = realloc(d->items, cap * sizeof *p);
        if (!p) return -1;
        d->items = p;
        d->cap = cap;
    }
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char *msg = strdup(buf);
    if (!msg) return -1;
    rt_diag *x = &d->items[d->n++];
    x->msg = msg;
    /* the diagnostic keeps its source alive */
    x->src = rt_source_retain((rt_source *)src);
    x->loc = loc;
    return 0;
}

int rt_diag_add(rt_diaglist *d, const rt_source *src, rt_loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = rt_diag_addv(d, src, loc, fmt, ap);
    va_end(ap);
    return rc;
}

typedef struct out {
    char *s;
    size_t n, cap;
    int oom;
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n + 1) cap *= 2;
        char *p = realloc(o->s, cap);
        if (!p) {
            o->oom = 1;
            return;
        }
        o->s = p;
        o->cap = cap;
    }
    memcpy(o->s + o->n, s, n);
    o->n += n;
    o->s[o->n] = 0;
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

static void fmt(out *o, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void fmt(out *o, const char *f, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, f);
    int k = vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    if (k > 0) put(o, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}

/* Start and length of 1-based line `line` of the source; -1 if absent. */
static long line_span(const rt_source *s, int line, size_t *len) {
    const char *p = s->text, *end = s->text + s->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return -1;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    return (long)(p - s->text);
}

static void format_one(out *o, const rt_diag *d) {
    fmt(o, "error: %s\n", d->msg);
    if (!d->src || d->loc.line <= 0) return;
    const rt_source *s = d->src;
    fmt(o, "  --> %s:%d:%d\n", s->name, d->loc.line, d->loc.col);
    size_t len;
    long start = line_span(s, d->loc.line, &len);
    if (start < 0) return;
    char num[16];
    int w = snprintf(num, sizeof num, "%d", d->loc.line);
    const char *line = s->text + start;
    long col0 = d->loc.col > 0 ? d->loc.col - 1 : 0;
    long ncar = (d->loc.end_line == d->loc.line && d->loc.end_col >= d->loc.col) ? d->loc.end_col - d->loc.col + 1 : 1;
    if (col0 > (long)len) col0 = (long)len;
    if (col0 + ncar > (long)len + 1) ncar = (long)len + 1 - col0;
    if (ncar < 1) ncar = 1;
    /* cut long lines to a window around the caret */
    long from = 0, to = (long)len;
    if (to > MAX_SHOWN_LINE) {
        from = col0 > MAX_SHOWN_LINE / 2 ? col0 - MAX_SHOWN_LINE / 2 : 0;
        to = from + MAX_SHOWN_LINE < (long)len ? from + MAX_SHOWN_LINE : (long)len;
        if (ncar > to - col0 + 1) ncar = to - col0 + 1;
        if (ncar < 1) ncar = 1;
    }
    fmt(o, " %*s |\n", w, "");
    fmt(o, " %s | ", num);
    if (from > 0) puts_(o, "...");
    for (long i = from; i < to; i++) {
        unsigned char c = (unsigned char)line[i];
        char ch = (c == '\t' || (c >= 32 && c < 127) || c >= 128) ? (char)c : '?';
        if (c >= 128) ch = '?'; /* keep columns aligned with bytes */
        put(o, &ch, 1);
    }
    puts_(o, "\n");
    fmt(o, " %*s | ", w, "");
    if (from > 0) puts_(o, "   ");
    for (long i = from; i < col0; i++) put(o, line[i] == '\t' ? "\t" : " ", 1);
    for (long i = 0; i < ncar; i++) put(o, "^", 1);
    puts_(o, "\n");
}

char *rt_diag_format(const rt_diag *d) {
    out o = {0};
    format_one(&o, d);
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s;
}

char *rt_diaglist_format(const rt_diaglist *d) {
    out o = {0};
    for (int i = 0; i < d->n; i++) format_one(&o, &d->items[i]);
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s ? o.s : strdup("");
}

static int levenshtein(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

const char *rt_did_you_mean(const char *name, const char *const *cands, int ncands) {
    int limit = (int)strlen(name) / 3;
    if (limit < 1) limit = 1;
    const char *best = NULL;
    int bestd = limit + 1;
    for (int i = 0; i < ncands; i++) {
        if (!cands[i] || strcmp(cands[i], name) == 0) continue;
        int d = levenshtein(name, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}
