/* strbuf.h - a growable, NUL-terminated string: the one builder behind
 * value printing, JSON output, diagnostics, AST dumps and summary tables.
 * After an allocation failure further appends are ignored and `oom` is set;
 * rt_sb_finish then frees the text and returns NULL. */
#ifndef PPL_RUNTIME_STRBUF_H
#define PPL_RUNTIME_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rt_sb {
    char *s;
    size_t n, cap;
    bool oom;
} rt_sb;

/* Room for n more bytes (and the NUL) at b->s + b->n: false after OOM.  A
 * writer that fills it itself (rt_g17_at) then advances b->n and writes
 * the NUL. */
bool rt_sb_reserve(rt_sb *b, size_t n);
void rt_sb_put(rt_sb *b, const char *s, size_t n);
void rt_sb_puts(rt_sb *b, const char *s);
void rt_sb_putc(rt_sb *b, char c);
void rt_sb_printf(rt_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* x as printf's "%.17g" writes it (round-trippable), byte for byte, without
 * printf's multiprecision arithmetic in the common case. */
void rt_sb_put_g17(rt_sb *b, double x);
/* rt_sb_put_g17's text written at out, with no NUL; returns its end.  It
 * needs RT_G17_ROOM bytes at out (the text is at most 24, the fixed-size
 * copies that write it reach further), so a writer of many numbers
 * reserves once per line and skips each number's room check. */
#define RT_G17_ROOM 48
char *rt_g17_at(char *out, double x);
/* The text (malloc'd, "" when nothing was written), or NULL after OOM. */
char *rt_sb_finish(rt_sb *b);

#endif
