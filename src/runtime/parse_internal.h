/* parse_internal.h - state shared by the scanner (grammar/ppl.l), the
 * parser (grammar/ppl.y) and the driver (parse.c).  Not a public header. */
#ifndef PPL_RUNTIME_PARSE_INTERNAL_H
#define PPL_RUNTIME_PARSE_INTERNAL_H

#include <stdbool.h>
#include "ast.h"

#define PPL_MAX_SYNTAX_ERRORS 20

struct lex_extra {
    int line, col;          /* position of the next character */
    int depth;              /* nesting of ( [ { */
    int paren;              /* nesting of ( [ (newlines ignored inside) */
    bool stop;              /* stop scanning: return end of input */
    bool oom;
    const rt_source *src;
    rt_diaglist *diags;
    int nerr;
    ast_node *result;       /* the program's top-level block */
};

/* Report a located error (counts toward the error limit). */
typedef struct YYLTYPE YYLTYPE;
void lex_error(struct lex_extra *x, const YYLTYPE *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
