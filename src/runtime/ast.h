/* ast.h - the abstract syntax tree built by the parser (grammar/ppl.y).
 * Grammar actions only build these nodes; all checking happens in lower.c.
 *
 * One node struct for every kind; the comment on each kind says which
 * fields it uses.  Children lists are `kids` (nkids); names lists are
 * `names` (nnames).  All strings and children are owned by the node.
 */
#ifndef PPL_RUNTIME_AST_H
#define PPL_RUNTIME_AST_H

#include "diag.h"

typedef enum {
    /* ---- expressions ---- */
    AST_NUM,        /* num */
    AST_STR,        /* str (unescaped contents) */
    AST_BOOL,       /* num = 0 or 1 */
    AST_NAME,       /* str = identifier */
    AST_LIST,       /* kids = elements  ([a, b, c]) */
    AST_RECORD,     /* names[i] = key, kids[i] = value  ({a: 1, b: 2}) */
    AST_FIELD,      /* a = object, str = field name  (r.a) */
    AST_INDEX,      /* a = object, kids = index items (AST_SLICE or expr) */
    AST_SLICE,      /* a = start or NULL, b = stop or NULL, c = step or NULL
                       (x[a:b:c], x[:]) */
    AST_CALL,       /* a = callee expr; kids = arguments in order; names has
                       nkids entries: NULL for a positional argument, else the
                       keyword (f(1, scale=2) -> names = {NULL, "scale"}) */
    AST_BINOP,      /* op = AST_OP_*, a = left, b = right */
    AST_UNOP,       /* op = AST_OP_NEG / AST_OP_NOT / AST_OP_POS, a = operand */
    AST_AND,        /* a and b (short-circuit) */
    AST_OR,         /* a or b (short-circuit) */

    /* ---- statements ---- */
    AST_BLOCK,      /* kids = statements */
    AST_EXPR_STMT,  /* a = expression */
    AST_ASSIGN,     /* a = target (AST_NAME, AST_INDEX of a name, AST_FIELD),
                       b = value */
    AST_SAMPLE,     /* a = target (AST_NAME or AST_INDEX of a name),
                       b = distribution expr, c = constraint expr or NULL
                       (sample x: C ~ D) */
    AST_OBSERVE,    /* a = observed expression, b = distribution */
    AST_PARAM,      /* str = name, b = init expr, c = constraint expr or NULL */
    AST_DETERMINISTIC, /* str = name, b = expr */
    AST_FACTOR,     /* str = name, b = expr */
    AST_PLATE,      /* str = plate name, a = size expr, b = subsample expr or
                       NULL, names[0] = "as" variable or nnames == 0,
                       c = body (AST_BLOCK) */
    AST_IF,         /* a = cond, b = then block, c = else block / AST_IF / NULL */
    AST_FOR,        /* str = loop variable, a = iterable expr (range(...) or
                       a tensor / list), b = body */
    AST_WHILE,      /* a = cond, b = body */
    AST_RETURN,     /* a = value or NULL */
    AST_BREAK,
    AST_CONTINUE,
    AST_DEF,        /* str = name, op = AST_ROLE_*, names = parameter names,
                       kids = default value per parameter (NULL = required),
                       c = body */
    AST_KIND_COUNT
} ast_kind;

typedef enum {
    AST_OP_ADD, AST_OP_SUB, AST_OP_MUL, AST_OP_DIV, AST_OP_POW, AST_OP_MATMUL,
    AST_OP_MOD,
    AST_OP_LT, AST_OP_LE, AST_OP_GT, AST_OP_GE, AST_OP_EQ, AST_OP_NE,
    AST_OP_NEG, AST_OP_NOT, AST_OP_POS
} ast_op;

typedef enum { AST_ROLE_FUNC, AST_ROLE_MODEL, AST_ROLE_GUIDE } ast_role;

typedef struct ast_node {
    int kind;               /* ast_kind */
    int op;                 /* ast_op or ast_role */
    rt_loc loc;             /* the whole construct; for AST_NAME the name */
    double num;
    char *str;
    struct ast_node *a, *b, *c;
    struct ast_node **kids;
    int nkids;
    char **names;
    int nnames;
} ast_node;

/* A parsed unit: top-level statements plus the source they came from. */
typedef struct ast_program {
    ast_node *body;          /* AST_BLOCK */
    rt_source *src;          /* retained */
} ast_program;

ast_node *ast_new(int kind, rt_loc loc);
void ast_free(ast_node *n);           /* frees the subtree; NULL-safe */
/* Append a child / a name (takes ownership); -1 on out of memory. */
int ast_push_kid(ast_node *n, ast_node *kid);
int ast_push_name(ast_node *n, char *name);
const char *ast_kind_name(int kind);
/* S-expression form of a subtree, for tests (malloc'd). */
char *ast_dump(const ast_node *n);

/* Limits that turn adversarial input into ordinary errors. */
#define PPL_MAX_PARSE_DEPTH 200     /* nesting of brackets / blocks */
#define PPL_MAX_IDENT_LEN 256       /* longer identifiers are an error */

/* Parse `src` into a program.  On syntax errors returns NULL and adds one
 * diagnostic per error to `diags` (the parser recovers to report several,
 * up to a limit).  Never prints. */
ast_program *rt_parse(rt_source *src, rt_diaglist *diags);
void ast_program_free(ast_program *p);

/* True when `text` is an incomplete statement that more lines could finish
 * (unclosed bracket or block, trailing operator) - the REPL's continuation
 * test.  Does not allocate diagnostics. */
int rt_parse_incomplete(const char *text);

#endif
