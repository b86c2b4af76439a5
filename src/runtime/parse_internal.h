/* parse_internal.h - state shared by the scanner (grammar/ppl.l), the
 * parser (grammar/ppl.y), the driver (parse.c) and ast.c.  Not a public
 * header. */
#ifndef PPL_RUNTIME_PARSE_INTERNAL_H
#define PPL_RUNTIME_PARSE_INTERNAL_H

#include <stdbool.h>
#include "ast.h"

/* After this many syntax errors the parser stops ("too many errors"). */
#define PPL_MAX_SYNTAX_ERRORS 20

/* Operator chains (1+1+1+..., - - - x, if/else if chains) make trees as deep
 * as brackets do; later passes recurse over the tree, so its height is
 * limited too. */
#define PPL_MAX_AST_HEIGHT 1000

/* Longest token text kept for error messages ("unexpected "foo""). */
#define PPL_TOKTEXT_MAX 32

struct lex_extra {
    int line, col;          /* position of the next character */
    int prev_line_len;      /* length of the line before `line` (EOF locations) */
    int depth;              /* nesting of ( [ { */
    int paren;              /* nesting of ( [ (newlines ignored inside) */
    char open_tok[PPL_MAX_PARSE_DEPTH + 1];    /* the open brackets, innermost last */
    rt_loc open_loc[PPL_MAX_PARSE_DEPTH + 1];
    bool stop;              /* stop scanning: return end of input */
    bool oom;
    bool too_deep;          /* the parser's stack limit was reached */
    const rt_source *src;
    rt_diaglist *diags;
    int nerr;
    char toktext[PPL_TOKTEXT_MAX + 4];   /* text of the last token (maybe cut) */
    ast_node *result;       /* the program's top-level block */
};

/* Report a located error (counts toward the error limit). */
typedef struct YYLTYPE YYLTYPE;
void lex_error(struct lex_extra *x, const YYLTYPE *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lex_error_at(struct lex_extra *x, rt_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Forget the ( and [ open since the innermost { (after a syntax error). */
void lex_abandon_parens(struct lex_extra *x);

/* Height of a subtree built by ast_new (1 for a leaf, 0 for NULL), kept in
 * the node's allocation by ast.c; ast_update_height recomputes it from the
 * direct children and returns it. */
int ast_height(const ast_node *n);
int ast_update_height(ast_node *n);
/* The height after `kid` was added to `n` (constant time, for long lists). */
int ast_raise_height(ast_node *n, const ast_node *kid);

#endif
