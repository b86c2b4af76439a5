/* ast.c - construction, destruction and a debugging dump of AST nodes.
 *
 * Nodes made by ast_new carry their subtree height next to them (the parser
 * limits it, see parse_internal.h).  ast_free needs no recursion, so even a
 * tree built by hand of any depth is freed without touching the C stack. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "strbuf.h"
#include "parse_internal.h"

typedef struct ast_box {
    ast_node node;          /* first: a node pointer is a box pointer */
    int height;
} ast_box;

ast_node *ast_new(int kind, rt_loc loc) {
    ast_box *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->node.kind = kind;
    b->node.loc = loc;
    b->height = 1;
    return &b->node;
}

int ast_height(const ast_node *n) { return n ? ((const ast_box *)n)->height : 0; }

int ast_update_height(ast_node *n) {
    if (!n) return 0;
    int h = ast_height(n->a);
    if (ast_height(n->b) > h) h = ast_height(n->b);
    if (ast_height(n->c) > h) h = ast_height(n->c);
    for (int i = 0; i < n->nkids; i++)
        if (ast_height(n->kids[i]) > h) h = ast_height(n->kids[i]);
    ((ast_box *)n)->height = h + 1;
    return h + 1;
}

int ast_raise_height(ast_node *n, const ast_node *kid) {
    ast_box *b = (ast_box *)n;
    if (ast_height(kid) + 1 > b->height) b->height = ast_height(kid) + 1;
    return b->height;
}

/* The pending list of ast_free is threaded through `num` (a node being
 * freed no longer needs it), so freeing needs neither recursion nor memory. */
_Static_assert(sizeof(ast_node *) <= sizeof(double), "a pointer fits in num");

static void pend(ast_node **list, ast_node *n) {
    if (!n) return;
    memcpy(&n->num, list, sizeof *list);
    *list = n;
}

void ast_free(ast_node *n) {
    ast_node *list = NULL;
    pend(&list, n);
    while (list) {
        ast_node *cur = list;
        memcpy(&list, &cur->num, sizeof list);
        pend(&list, cur->a);
        pend(&list, cur->b);
        pend(&list, cur->c);
        for (int i = 0; i < cur->nkids; i++) pend(&list, cur->kids[i]);
        free(cur->kids);
        for (int i = 0; i < cur->nnames; i++) free(cur->names[i]);
        free(cur->names);
        free(cur->str);
        free(cur);
    }
}

/* Arrays grow to powers of two, so a block of many statements is built in
 * linear time; the capacity follows from the count. */
static int grow(void **arr, int n, size_t elem) {
    size_t cap;
    if (n == 0) cap = 4;
    else if (n < 4 || (n & (n - 1)) != 0) return 0;   /* room left */
    else if (n >= INT32_MAX / 2) return -1;
    else cap = (size_t)n * 2;
    void *p = realloc(*arr, cap * elem);
    if (!p) return -1;
    *arr = p;
    return 0;
}

int ast_push_kid(ast_node *n, ast_node *kid) {
    if (grow((void **)&n->kids, n->nkids, sizeof *n->kids)) {
        ast_free(kid);
        return -1;
    }
    n->kids[n->nkids++] = kid;
    return 0;
}

int ast_push_name(ast_node *n, char *name) {
    if (grow((void **)&n->names, n->nnames, sizeof *n->names)) {
        free(name);
        return -1;
    }
    n->names[n->nnames++] = name;
    return 0;
}

const char *ast_kind_name(int kind) {
    static const char *const names[AST_KIND_COUNT] = {
        "num", "str", "bool", "name", "list", "record", "field", "index", "slice", "call",
        "binop", "unop", "and", "or", "block", "expr", "assign", "sample", "observe", "param",
        "deterministic", "factor", "plate", "if", "for", "while", "return", "break", "continue", "def"};
    return kind >= 0 && kind < AST_KIND_COUNT && names[kind] ? names[kind] : "?";
}

/* ---- dump: (kind [op] [str] [names:] a b c kids...), NULL as _ ---- */


static const char *op_name(int op) {
    static const char *const ops[] = {"+", "-", "*", "/", "**", "@", "%", "<", "<=",
                                      ">", ">=", "==", "!=", "neg", "not", "pos"};
    return op >= 0 && op <= AST_OP_POS ? ops[op] : "?";
}

static const char *role_name(int role) {
    return role == AST_ROLE_MODEL ? "model" : role == AST_ROLE_GUIDE ? "guide" : "func";
}

#define DUMP_MAX_DEPTH 2000   /* deeper trees print "..." (ast_dump is for tests) */

static void dump(rt_sb *b, const ast_node *n, int depth) {
    char tmp[64];
    if (!n) {
        rt_sb_puts(b, "_");
        return;
    }
    if (depth > DUMP_MAX_DEPTH) {
        rt_sb_puts(b, "...");
        return;
    }
    rt_sb_puts(b, "(");
    rt_sb_puts(b, ast_kind_name(n->kind));
    if (n->kind == AST_NUM || n->kind == AST_BOOL) {
        snprintf(tmp, sizeof tmp, " %.15g", n->num);   /* shortest that reads back */
        if (strtod(tmp, NULL) != n->num) snprintf(tmp, sizeof tmp, " %.17g", n->num);
        rt_sb_puts(b, tmp);
    }
    if (n->kind == AST_BINOP || n->kind == AST_UNOP) {
        rt_sb_puts(b, " ");
        rt_sb_puts(b, op_name(n->op));
    }
    if (n->kind == AST_DEF) {
        rt_sb_puts(b, " ");
        rt_sb_puts(b, role_name(n->op));
    }
    if (n->str) {
        rt_sb_puts(b, n->kind == AST_STR ? " \"" : " ");
        rt_sb_puts(b, n->str);
        if (n->kind == AST_STR) rt_sb_puts(b, "\"");
    }
    for (int i = 0; i < n->nnames; i++) {
        rt_sb_puts(b, " ");
        rt_sb_puts(b, n->names[i] ? n->names[i] : "_");
        rt_sb_puts(b, ":");
    }
    if (n->a || n->b || n->c) {
        rt_sb_puts(b, " ");
        dump(b, n->a, depth + 1);
        if (n->b || n->c) {
            rt_sb_puts(b, " ");
            dump(b, n->b, depth + 1);
        }
        if (n->c) {
            rt_sb_puts(b, " ");
            dump(b, n->c, depth + 1);
        }
    }
    for (int i = 0; i < n->nkids; i++) {
        rt_sb_puts(b, " ");
        dump(b, n->kids[i], depth + 1);
    }
    rt_sb_puts(b, ")");
}

char *ast_dump(const ast_node *n) {
    rt_sb b = {0};
    dump(&b, n, 0);
    return rt_sb_finish(&b);
}
