/* ast.c - construction, destruction and a debugging dump of AST nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ast.h"

ast_node *ast_new(int kind, rt_loc loc) {
    ast_node *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->loc = loc;
    }
    return n;
}

void ast_free(ast_node *n) {
    /* depth is bounded by PPL_MAX_PARSE_DEPTH, so recursion is safe here */
    if (!n) return;
    ast_free(n->a);
    ast_free(n->b);
    ast_free(n->c);
    for (int i = 0; i < n->nkids; i++) ast_free(n->kids[i]);
    free(n->kids);
    for (int i = 0; i < n->nnames; i++) free(n->names[i]);
    free(n->names);
    free(n->str);
    free(n);
}

int ast_push_kid(ast_node *n, ast_node *kid) {
    ast_node **k = realloc(n->kids, (size_t)(n->nkids + 1) * sizeof *k);
    if (!k) {
        ast_free(kid);
        return -1;
    }
    n->kids = k;
    n->kids[n->nkids++] = kid;
    return 0;
}

int ast_push_name(ast_node *n, char *name) {
    char **k = realloc(n->names, (size_t)(n->nnames + 1) * sizeof *k);
    if (!k) {
        free(name);
        return -1;
    }
    n->names = k;
    n->names[n->nnames++] = name;
    return 0;
}

const char *ast_kind_name(int kind) {
    static const char *const names[AST_KIND_COUNT] = {
        "num", "str", "bool", "name", "list", "record", "field", "index", "slice", "call",
        "binop", "unop", "and", "or", "block", "expr", "assign", "sample", "observe", "param",
        "deterministic", "factor", "plate", "if", "for", "while", "return", "break", "continue", "def"};
    return kind >= 0 && kind < AST_KIND_COUNT ? names[kind] : "?";
}

typedef struct dbuf {
    char *s;
    size_t n, cap;
} dbuf;

static void dput(dbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n + 1);
    b->n += n;
}

static void dump(dbuf *b, const ast_node *n) {
    static const char *const ops[] = {"+", "-", "*", "/", "**", "@", "%", "<", "<=", ">", ">=", "==", "!=", "neg", "not", "pos"};
    char tmp[64];
    if (!n) {
        dput(b, "_");
        return;
    }
    dput(b, "(");
    dput(b, ast_kind_name(n->kind));
    if (n->kind == AST_NUM || n->kind == AST_BOOL) {
        snprintf(tmp, sizeof tmp, " %g", n->num);
        dput(b, tmp);
    }
    if (n->kind == AST_BINOP || n->kind == AST_UNOP) {
        dput(b, " ");
        dput(b, n->op >= 0 && n->op <= AST_OP_POS ? ops[n->op] : "?");
    }
    if (n->str) {
        dput(b, " ");
        dput(b, n->str);
    }
    for (int i = 0; i < n->nnames; i++) {
        dput(b, " ");
        dput(b, n->names[i] ? n->names[i] : "_");
        dput(b, ":");
    }
    if (n->a || n->b || n->c) {
        dput(b, " ");
        dump(b, n->a);
        if (n->b || n->c) {
            dput(b, " ");
            dump(b, n->b);
        }
        if (n->c) {
            dput(b, " ");
            dump(b, n->c);
        }
    }
    for (int i = 0; i < n->nkids; i++) {
        dput(b, " ");
        dump(b, n->kids[i]);
    }
    dput(b, ")");
}

char *ast_dump(const ast_node *n) {
    dbuf b = {0};
    dump(&b, n);
    return b.s;
}
