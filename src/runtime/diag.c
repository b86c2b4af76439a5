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
#include "strbuf.h"

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

/* Length of the printable UTF-8 character at p (at most n bytes), or 0 when
 * the bytes there are a control character or not valid UTF-8 (shown as ?
 * so a diagnostic cannot garble the terminal). */
static int printable_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c >= 32 && c < 127) return 1;
    int k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (k == 0 || (size_t)k > n) return 0;
    for (int i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (c == 0xC2 && p[1] < 0xA0) return 0;                 /* C1 controls */
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F) ||
        (c == 0xED && p[1] > 0x9F))
        return 0;                                            /* overlong, surrogate, too big */
    return k;
}

/* Display cells of line[from, to): one per character; tabs count as tabs. */
static void show_source(rt_sb *o, const char *line, long from, long to) {
    for (long i = from; i < to;) {
        const unsigned char *p = (const unsigned char *)line + i;
        int k = *p == '\t' ? 1 : printable_len(p, (size_t)(to - i));
        if (k == 0) {
            rt_sb_put(o, "?", 1);
            k = 1;
        } else {
            rt_sb_put(o, line + i, (size_t)k);
        }
        i += k;
    }
}

/* The caret line: blanks (tabs kept) under line[from, col0), then one ^ per
 * character of line[col0, col0 + ncar), at least one. */
static void show_carets(rt_sb *o, const char *line, long len, long from, long col0, long ncar) {
    for (long i = from; i < col0;) {
        const unsigned char *p = (const unsigned char *)line + i;
        int k = *p == '\t' ? 1 : printable_len(p, (size_t)(len - i));
        rt_sb_put(o, *p == '\t' ? "\t" : " ", 1);
        i += k ? k : 1;
    }
    long n = 0;
    for (long i = col0; i < col0 + ncar && i < len; n++) {
        int k = printable_len((const unsigned char *)line + i, (size_t)(len - i));
        i += k ? k : 1;
    }
    if (n < 1) n = 1;
    for (long i = 0; i < n; i++) rt_sb_put(o, "^", 1);
}

static void format_one(rt_sb *o, const rt_diag *d) {
    rt_sb_printf(o, "error: %s\n", d->msg);
    if (!d->src || d->loc.line <= 0) return;
    const rt_source *s = d->src;
    char num[16];
    int w = snprintf(num, sizeof num, "%d", d->loc.line);
    rt_sb_printf(o, "%*s--> %s:%d:%d\n", w + 1, "", s->name, d->loc.line, d->loc.col);
    size_t ulen;
    long start = line_span(s, d->loc.line, &ulen);
    if (start < 0) return;
    const char *line = s->text + start;
    long len = (long)ulen;
    if (len > 0 && line[len - 1] == '\r') len--;            /* CRLF files */
    long col0 = d->loc.col > 0 ? d->loc.col - 1 : 0;
    if (col0 > len) col0 = len;
    /* a multi-line span is marked to the end of its first line */
    long ncar = d->loc.end_line == d->loc.line ? (long)d->loc.end_col - d->loc.col + 1
              : d->loc.end_line > d->loc.line ? len - col0 : 1;
    if (ncar > len - col0) ncar = len - col0;
    if (ncar < 1) ncar = 1;
    /* cut long lines to a window around the caret */
    long from = 0, to = len;
    if (len > MAX_SHOWN_LINE) {
        from = col0 > MAX_SHOWN_LINE / 2 ? col0 - MAX_SHOWN_LINE / 2 : 0;
        to = from + MAX_SHOWN_LINE < len ? from + MAX_SHOWN_LINE : len;
        if (ncar > to - col0) ncar = to - col0;
    }
    rt_sb_printf(o, "%*s |\n", w + 1, "");
    rt_sb_printf(o, " %s | ", num);
    if (from > 0) rt_sb_puts(o, "...");
    show_source(o, line, from, to);
    if (to < len) rt_sb_puts(o, "...");
    rt_sb_puts(o, "\n");
    rt_sb_printf(o, "%*s | ", w + 1, "");
    if (from > 0) rt_sb_puts(o, "   ");
    show_carets(o, line, to, from, col0, ncar);
    rt_sb_puts(o, "\n");
}

char *rt_diag_format(const rt_diag *d) {
    rt_sb o = {0};
    format_one(&o, d);
    return rt_sb_finish(&o);
}

char *rt_diaglist_format(const rt_diaglist *d) {
    rt_sb o = {0};
    for (int i = 0; i < d->n; i++) format_one(&o, &d->items[i]);
    return rt_sb_finish(&o);
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
