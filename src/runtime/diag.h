/* diag.h - source texts, locations and diagnostics in the one shape ppl uses
 * everywhere (DESIGN 1.8):
 *
 *   error: unknown name "sigm" (did you mean "sigma"?)
 *     --> model.ppl:7:28
 *      |
 *    7 |     observe y ~ Normal(mu, sigm)
 *      |                            ^^^^
 */
#ifndef PPL_RUNTIME_DIAG_H
#define PPL_RUNTIME_DIAG_H

#include <stddef.h>
#include <stdarg.h>

/* A source text kept alive for as long as something may point into it. */
typedef struct rt_source {
    int refcount;
    char *name;      /* file name as given, or "<repl>", "<string>" */
    char *text;      /* NUL-terminated copy */
    size_t len;
} rt_source;

/* 1-based lines and columns; end is inclusive (end_col >= col on one line). */
typedef struct rt_loc {
    int line, col, end_line, end_col;
} rt_loc;

typedef struct rt_diag {
    char *msg;           /* plain sentence, no location */
    const rt_source *src; /* may be NULL: no location */
    rt_loc loc;
} rt_diag;

/* A growable list of diagnostics (the parser reports several). */
typedef struct rt_diaglist {
    rt_diag *items;
    int n, cap;
} rt_diaglist;

rt_source *rt_source_new(const char *name, const char *text, size_t len);
rt_source *rt_source_retain(rt_source *s);
void rt_source_release(rt_source *s);

void rt_diaglist_init(rt_diaglist *d);
void rt_diaglist_free(rt_diaglist *d);
/* Add a diagnostic; printf-style message. Returns 0, or -1 out of memory. */
int rt_diag_add(rt_diaglist *d, const rt_source *src, rt_loc loc,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int rt_diag_addv(rt_diaglist *d, const rt_source *src, rt_loc loc,
                 const char *fmt, va_list ap);

/* Render one diagnostic in the DESIGN 1.8 shape into a malloc'd string
 * (ends with a newline).  NULL on out of memory. */
char *rt_diag_format(const rt_diag *d);
/* Render all, concatenated. */
char *rt_diaglist_format(const rt_diaglist *d);

/* Edit distance helper for "did you mean": returns the closest candidate to
 * `name` among `cands` (NULL-terminated) when close enough, else NULL. */
const char *rt_did_you_mean(const char *name, const char *const *cands, int ncands);

#endif
