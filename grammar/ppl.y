/* ppl.y - the ppl grammar: a pure, reentrant Bison parser with locations.
 * Actions only build AST nodes (src/runtime/ast.h); names, arity and
 * targets are checked when the AST is lowered (lower.c).  Syntax errors are
 * reported as plain sentences with readable token names, and the parser
 * recovers at the next statement boundary to report several. */
%define api.pure full
%define parse.error custom
%locations
%param {yyscan_t scanner}
%parse-param {struct lex_extra *X}

%code requires {
#include "ast.h"
#include "parse_internal.h"
typedef void *yyscan_t;
}

%code {
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ppl_lexer.h"

static rt_loc L(YYLTYPE a) {
    rt_loc l = {a.first_line, a.first_column, a.last_line, a.last_column};
    return l;
}
static rt_loc SPAN(YYLTYPE a, YYLTYPE b) {
    rt_loc l = {a.first_line, a.first_column, b.last_line, b.last_column};
    return l;
}
static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct lex_extra *X, const char *msg);
static ast_node *node(struct lex_extra *X, int kind, rt_loc loc);
static ast_node *node2(struct lex_extra *X, int kind, int op, rt_loc loc, ast_node *a, ast_node *b);
static ast_node *push(struct lex_extra *X, ast_node *n, ast_node *kid);
static ast_node *push_arg(struct lex_extra *X, ast_node *call, ast_node *arg, YYLTYPE aloc);
static ast_node *make_plate(struct lex_extra *X, YYLTYPE loc, char *name, ast_node *args, char *as, ast_node *body);
static ast_node *make_def(struct lex_extra *X, YYLTYPE loc, int role, char *name, ast_node *params, ast_node *body);

#define OOM(p) do { if (!(p)) { X->oom = true; YYABORT; } } while (0)
}

%union {
    ast_node *node;
    char *str;
    double num;
}

%token <num> NUM "a number"
%token <str> STR "a string"
%token <str> NAME "a name"
%token NEWLINE "newline"
%token LEXERROR "invalid text"
%token MODEL "model" GUIDE "guide" DEF "def" SAMPLE "sample" OBSERVE "observe" PARAM "param"
%token DETERMINISTIC "deterministic" FACTOR "factor" PLATE "plate" AS "as" IF "if" ELSE "else"
%token FOR "for" IN "in" WHILE "while" RETURN "return" BREAK "break" CONTINUE "continue"
%token TRUE_ "true" FALSE_ "false" AND "and" OR "or" NOT "not"
%token POW "**" EQ "==" NE "!=" LE "<=" GE ">="

%type <node> body stmt_list simple_stmt compound_stmt block if_stmt expr or_expr and_expr not_expr
%type <node> comparison arith term unary power postfix primary args arg_list list_items index_items
%type <node> expr_list index_item opt_expr record_items params param_list param sample_target constraint
%type <str> opt_as

%destructor { ast_free($$); } <node>
%destructor { free($$); } <str>

/* One known conflict: `observe (e) ~ D` against the call form
 * `observe(name, D, value)` on the ')' after a single expression; shifting
 * (the statement form) is right, since the call form needs 3 arguments. */
%expect 1

%start program

%%

program
    : body                           { X->result = $1; }
    ;

/* A simple statement ends at a newline or ";" (or at the "}" / end of
 * input that closes its body); a compound statement ends at its "}". */
body
    : stmt_list                      { $$ = $1; }
    | stmt_list simple_stmt          { $$ = push(X, $1, $2); OOM($$); }
    ;

stmt_list
    : %empty                         { $$ = node(X, AST_BLOCK, L(@$)); OOM($$); }
    | stmt_list sep                  { $$ = $1; }
    | stmt_list simple_stmt sep      { $$ = push(X, $1, $2); OOM($$); }
    | stmt_list compound_stmt        { $$ = push(X, $1, $2); OOM($$); }
    | stmt_list error sep            { $$ = $1; yyerrok; }
    ;

sep : NEWLINE | ';' ;

simple_stmt
    : expr                           { $$ = node2(X, AST_EXPR_STMT, 0, L(@$), $1, NULL); OOM($$); }
    | expr '=' expr                  { $$ = node2(X, AST_ASSIGN, 0, L(@$), $1, $3); OOM($$); }
    | SAMPLE sample_target '~' expr  { $$ = node2(X, AST_SAMPLE, 0, L(@$), $2, $4); OOM($$); }
    | SAMPLE sample_target ':' constraint '~' expr
                                     { $$ = node2(X, AST_SAMPLE, 0, L(@$), $2, $6); OOM($$); $$->c = $4; }
    | OBSERVE expr '~' expr          { $$ = node2(X, AST_OBSERVE, 0, L(@$), $2, $4); OOM($$); }
    | PARAM NAME '=' expr            { $$ = node2(X, AST_PARAM, 0, L(@$), NULL, $4); OOM($$); $$->str = $2; }
    | PARAM NAME ':' constraint '=' expr
                                     { $$ = node2(X, AST_PARAM, 0, L(@$), NULL, $6); OOM($$); $$->str = $2; $$->c = $4; }
    | DETERMINISTIC NAME '=' expr    { $$ = node2(X, AST_DETERMINISTIC, 0, L(@$), NULL, $4); OOM($$); $$->str = $2; }
    | FACTOR NAME '=' expr           { $$ = node2(X, AST_FACTOR, 0, L(@$), NULL, $4); OOM($$); $$->str = $2; }
    | RETURN                         { $$ = node(X, AST_RETURN, L(@$)); OOM($$); }
    | RETURN expr                    { $$ = node2(X, AST_RETURN, 0, L(@$), $2, NULL); OOM($$); }
    | BREAK                          { $$ = node(X, AST_BREAK, L(@$)); OOM($$); }
    | CONTINUE                       { $$ = node(X, AST_CONTINUE, L(@$)); OOM($$); }
    ;

sample_target
    : NAME                           { $$ = node(X, AST_NAME, L(@1)); OOM($$); $$->str = $1; }
    | NAME '[' index_items ']'       {
                                       ast_node *n = node(X, AST_NAME, L(@1)); OOM(n); n->str = $1;
                                       $$ = $3; $$->kind = AST_INDEX; $$->a = n; $$->loc = L(@$);
                                     }
    ;

constraint
    : NAME                           { $$ = node(X, AST_NAME, L(@1)); OOM($$); $$->str = $1; }
    | NAME '(' args ')'              {
                                       ast_node *n = node(X, AST_NAME, L(@1)); OOM(n); n->str = $1;
                                       $$ = $3; $$->a = n; $$->loc = L(@$);
                                     }
    ;

compound_stmt
    : if_stmt
    | FOR NAME IN expr block         { $$ = node2(X, AST_FOR, 0, L(@$), $4, $5); OOM($$); $$->str = $2; }
    | WHILE expr block               { $$ = node2(X, AST_WHILE, 0, L(@$), $2, $3); OOM($$); }
    | PLATE NAME '(' args ')' opt_as block
                                     { $$ = make_plate(X, @$, $2, $4, $6, $7); OOM($$); }
    | DEF NAME '(' params ')' block  { $$ = make_def(X, @$, AST_ROLE_FUNC, $2, $4, $6); OOM($$); }
    | MODEL NAME '(' params ')' block
                                     { $$ = make_def(X, @$, AST_ROLE_MODEL, $2, $4, $6); OOM($$); }
    | GUIDE NAME '(' params ')' block
                                     { $$ = make_def(X, @$, AST_ROLE_GUIDE, $2, $4, $6); OOM($$); }
    ;

if_stmt
    : IF expr block                  { $$ = node2(X, AST_IF, 0, L(@$), $2, $3); OOM($$); }
    | IF expr block ELSE block       { $$ = node2(X, AST_IF, 0, L(@$), $2, $3); OOM($$); $$->c = $5; }
    | IF expr block ELSE if_stmt     { $$ = node2(X, AST_IF, 0, L(@$), $2, $3); OOM($$); $$->c = $5; }
    ;

opt_as
    : %empty                         { $$ = NULL; }
    | AS NAME                        { $$ = $2; }
    ;

block
    : '{' body '}'                   { $$ = $2; $$->loc = L(@$); }
    ;

params
    : %empty                         { $$ = node(X, AST_DEF, L(@$)); OOM($$); }
    | param_list                     { $$ = $1; }
    | param_list ','                 { $$ = $1; }
    ;

param_list
    : param                          { $$ = node(X, AST_DEF, L(@$)); OOM($$);
                                       if (ast_push_name($$, $1->str)) { X->oom = true; ast_free($1); YYABORT; }
                                       $1->str = NULL; if (ast_push_kid($$, $1->a)) { X->oom = true; $1->a = NULL; ast_free($1); YYABORT; }
                                       $1->a = NULL; ast_free($1); }
    | param_list ',' param           { $$ = $1;
                                       if (ast_push_name($$, $3->str)) { X->oom = true; ast_free($3); YYABORT; }
                                       $3->str = NULL; if (ast_push_kid($$, $3->a)) { X->oom = true; $3->a = NULL; ast_free($3); YYABORT; }
                                       $3->a = NULL; ast_free($3); }
    ;

param
    : NAME                           { $$ = node(X, AST_NAME, L(@$)); OOM($$); $$->str = $1; }
    | NAME '=' expr                  { $$ = node(X, AST_NAME, L(@$)); OOM($$); $$->str = $1; $$->a = $3; }
    ;

expr : or_expr ;

or_expr
    : and_expr
    | or_expr OR and_expr            { $$ = node2(X, AST_OR, 0, L(@$), $1, $3); OOM($$); }
    ;

and_expr
    : not_expr
    | and_expr AND not_expr          { $$ = node2(X, AST_AND, 0, L(@$), $1, $3); OOM($$); }
    ;

not_expr
    : comparison
    | NOT not_expr                   { $$ = node2(X, AST_UNOP, AST_OP_NOT, L(@$), $2, NULL); OOM($$); }
    ;

comparison
    : arith
    | arith '<' arith                { $$ = node2(X, AST_BINOP, AST_OP_LT, L(@$), $1, $3); OOM($$); }
    | arith LE arith                 { $$ = node2(X, AST_BINOP, AST_OP_LE, L(@$), $1, $3); OOM($$); }
    | arith '>' arith                { $$ = node2(X, AST_BINOP, AST_OP_GT, L(@$), $1, $3); OOM($$); }
    | arith GE arith                 { $$ = node2(X, AST_BINOP, AST_OP_GE, L(@$), $1, $3); OOM($$); }
    | arith EQ arith                 { $$ = node2(X, AST_BINOP, AST_OP_EQ, L(@$), $1, $3); OOM($$); }
    | arith NE arith                 { $$ = node2(X, AST_BINOP, AST_OP_NE, L(@$), $1, $3); OOM($$); }
    ;

arith
    : term
    | arith '+' term                 { $$ = node2(X, AST_BINOP, AST_OP_ADD, L(@$), $1, $3); OOM($$); }
    | arith '-' term                 { $$ = node2(X, AST_BINOP, AST_OP_SUB, L(@$), $1, $3); OOM($$); }
    ;

term
    : unary
    | term '*' unary                 { $$ = node2(X, AST_BINOP, AST_OP_MUL, L(@$), $1, $3); OOM($$); }
    | term '/' unary                 { $$ = node2(X, AST_BINOP, AST_OP_DIV, L(@$), $1, $3); OOM($$); }
    | term '@' unary                 { $$ = node2(X, AST_BINOP, AST_OP_MATMUL, L(@$), $1, $3); OOM($$); }
    | term '%' unary                 { $$ = node2(X, AST_BINOP, AST_OP_MOD, L(@$), $1, $3); OOM($$); }
    ;

unary
    : power
    | '-' unary                      { $$ = node2(X, AST_UNOP, AST_OP_NEG, L(@$), $2, NULL); OOM($$); }
    | '+' unary                      { $$ = node2(X, AST_UNOP, AST_OP_POS, L(@$), $2, NULL); OOM($$); }
    ;

power
    : postfix
    | postfix POW unary              { $$ = node2(X, AST_BINOP, AST_OP_POW, L(@$), $1, $3); OOM($$); }
    ;

postfix
    : primary
    | postfix '(' args ')'           { $$ = $3; $$->a = $1; $$->loc = L(@$); }
    | postfix '[' index_items ']'    { $$ = $3; $$->kind = AST_INDEX; $$->a = $1; $$->loc = L(@$); }
    | postfix '.' NAME               { $$ = node2(X, AST_FIELD, 0, L(@$), $1, NULL); OOM($$); $$->str = $3; }
    ;

primary
    : NUM                            { $$ = node(X, AST_NUM, L(@$)); OOM($$); $$->num = $1; }
    | STR                            { $$ = node(X, AST_STR, L(@$)); OOM($$); $$->str = $1; }
    | TRUE_                          { $$ = node(X, AST_BOOL, L(@$)); OOM($$); $$->num = 1; }
    | FALSE_                         { $$ = node(X, AST_BOOL, L(@$)); OOM($$); $$->num = 0; }
    | NAME                           { $$ = node(X, AST_NAME, L(@$)); OOM($$); $$->str = $1; }
    | '(' expr ')'                   { $$ = $2; }
    | '[' list_items ']'             { $$ = $2; $$->loc = L(@$); }
    | '{' opt_nl '}'                 { $$ = node(X, AST_RECORD, L(@$)); OOM($$); }
    | '{' opt_nl record_items opt_nl '}'
                                     { $$ = $3; $$->loc = L(@$); }
    | '{' opt_nl record_items ',' opt_nl '}'
                                     { $$ = $3; $$->loc = L(@$); }
    | SAMPLE '(' args ')'            { $$ = $3; $$->a = node(X, AST_NAME, L(@1)); OOM($$->a); $$->a->str = strdup("sample"); OOM($$->a->str); $$->loc = L(@$); }
    | OBSERVE '(' args ')'           { $$ = $3; $$->a = node(X, AST_NAME, L(@1)); OOM($$->a); $$->a->str = strdup("observe"); OOM($$->a->str); $$->loc = L(@$); }
    | PARAM '(' args ')'             { $$ = $3; $$->a = node(X, AST_NAME, L(@1)); OOM($$->a); $$->a->str = strdup("param"); OOM($$->a->str); $$->loc = L(@$); }
    | DETERMINISTIC '(' args ')'     { $$ = $3; $$->a = node(X, AST_NAME, L(@1)); OOM($$->a); $$->a->str = strdup("deterministic"); OOM($$->a->str); $$->loc = L(@$); }
    | FACTOR '(' args ')'            { $$ = $3; $$->a = node(X, AST_NAME, L(@1)); OOM($$->a); $$->a->str = strdup("factor"); OOM($$->a->str); $$->loc = L(@$); }
    ;

opt_nl : %empty | opt_nl NEWLINE ;

record_items
    : NAME ':' expr                  { $$ = node(X, AST_RECORD, L(@$)); OOM($$);
                                       if (ast_push_name($$, $1) || ast_push_kid($$, $3)) { X->oom = true; YYABORT; } }
    | STR ':' expr                   { $$ = node(X, AST_RECORD, L(@$)); OOM($$);
                                       if (ast_push_name($$, $1) || ast_push_kid($$, $3)) { X->oom = true; YYABORT; } }
    | record_items ',' opt_nl NAME ':' expr
                                     { $$ = $1; if (ast_push_name($$, $4) || ast_push_kid($$, $6)) { X->oom = true; YYABORT; } }
    | record_items ',' opt_nl STR ':' expr
                                     { $$ = $1; if (ast_push_name($$, $4) || ast_push_kid($$, $6)) { X->oom = true; YYABORT; } }
    ;

list_items
    : %empty                         { $$ = node(X, AST_LIST, L(@$)); OOM($$); }
    | expr_list                      { $$ = $1; }
    | expr_list ','                  { $$ = $1; }
    ;

expr_list
    : expr                           { $$ = node(X, AST_LIST, L(@$)); OOM($$); $$ = push(X, $$, $1); OOM($$); }
    | expr_list ',' expr             { $$ = push(X, $1, $3); OOM($$); }
    ;

args
    : %empty                         { $$ = node(X, AST_CALL, L(@$)); OOM($$); }
    | arg_list                       { $$ = $1; }
    | arg_list ','                   { $$ = $1; }
    ;

arg_list
    : expr                           { $$ = node(X, AST_CALL, L(@$)); OOM($$); $$ = push_arg(X, $$, $1, @1); OOM($$); }
    | expr '=' expr                  { $$ = node(X, AST_CALL, L(@$)); OOM($$);
                                       $$ = push_arg(X, $$, node2(X, AST_ASSIGN, 0, L(@$), $1, $3), @$); OOM($$); }
    | arg_list ',' expr              { $$ = push_arg(X, $1, $3, @3); OOM($$); }
    | arg_list ',' expr '=' expr     { $$ = push_arg(X, $1, node2(X, AST_ASSIGN, 0, SPAN(@3, @5), $3, $5), @$); OOM($$); }
    ;

index_items
    : index_item                     { $$ = node(X, AST_CALL, L(@$)); OOM($$); $$ = push(X, $$, $1); OOM($$); }
    | index_items ',' index_item     { $$ = push(X, $1, $3); OOM($$); }
    ;

index_item
    : expr                           { $$ = $1; }
    | opt_expr ':' opt_expr          { $$ = node2(X, AST_SLICE, 0, L(@$), $1, $3); OOM($$); }
    | opt_expr ':' opt_expr ':' opt_expr
                                     { $$ = node2(X, AST_SLICE, 0, L(@$), $1, $3); OOM($$); $$->c = $5; }
    ;

opt_expr
    : %empty                         { $$ = NULL; }
    | expr                           { $$ = $1; }
    ;

%%

static ast_node *node(struct lex_extra *X, int kind, rt_loc loc) {
    ast_node *n = ast_new(kind, loc);
    if (!n) X->oom = true;
    return n;
}

static ast_node *node2(struct lex_extra *X, int kind, int op, rt_loc loc, ast_node *a, ast_node *b) {
    ast_node *n = node(X, kind, loc);
    if (!n) {
        ast_free(a);
        ast_free(b);
        return NULL;
    }
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static ast_node *push(struct lex_extra *X, ast_node *n, ast_node *kid) {
    if (!n) {
        ast_free(kid);
        return NULL;
    }
    if (ast_push_kid(n, kid)) {
        X->oom = true;
        ast_free(n);
        return NULL;
    }
    return n;
}

/* A call argument: positional, or `name = value` (kept as AST_ASSIGN until
 * here, then split into the keyword and the value). */
static ast_node *push_arg(struct lex_extra *X, ast_node *call, ast_node *arg, YYLTYPE aloc) {
    if (!call || !arg) {
        ast_free(call);
        ast_free(arg);
        X->oom = true;
        return NULL;
    }
    char *kw = NULL;
    if (arg->kind == AST_ASSIGN) {
        if (!arg->a || arg->a->kind != AST_NAME) {
            lex_error(X, &aloc, "a keyword argument needs a name before \"=\" (like scale=2)");
        } else {
            kw = arg->a->str;
            arg->a->str = NULL;
        }
        ast_node *v = arg->b;
        arg->b = NULL;
        ast_free(arg);
        arg = v;
    } else {
        for (int i = 0; i < call->nnames; i++)
            if (call->names[i]) {
                lex_error(X, &aloc, "a positional argument cannot follow a keyword argument");
                break;
            }
    }
    if (ast_push_kid(call, arg) || ast_push_name(call, kw)) {
        X->oom = true;
        ast_free(call);
        return NULL;
    }
    return call;
}

static ast_node *make_plate(struct lex_extra *X, YYLTYPE loc, char *name, ast_node *args, char *as, ast_node *body) {
    ast_node *n = node(X, AST_PLATE, L(loc));
    if (!n) {
        free(name);
        free(as);
        ast_free(args);
        ast_free(body);
        return NULL;
    }
    n->str = name;
    n->c = body;
    int npos = 0;
    for (int i = 0; i < args->nkids; i++) {
        const char *kw = i < args->nnames ? args->names[i] : NULL;
        if (!kw && npos == 0) {
            n->a = args->kids[i];
            args->kids[i] = NULL;
            npos++;
        } else if (kw && strcmp(kw, "subsample") == 0 && !n->b) {
            n->b = args->kids[i];
            args->kids[i] = NULL;
        } else {
            lex_error(X, &loc, kw ? "plate has no argument \"%s\" (it takes a size and subsample=)"
                                  : "plate takes one size argument%s", kw ? kw : "");
        }
    }
    if (!n->a) lex_error(X, &loc, "plate %s needs a size, like plate %s(N)", name, name);
    ast_free(args);
    if (as && ast_push_name(n, as)) X->oom = true;
    return n;
}

static ast_node *make_def(struct lex_extra *X, YYLTYPE loc, int role, char *name, ast_node *params, ast_node *body) {
    /* params is an AST_DEF carrying names and default values */
    params->op = role;
    params->str = name;
    params->c = body;
    params->loc = L(loc);
    return params;
}

void lex_error(struct lex_extra *x, const YYLTYPE *loc, const char *fmt, ...) {
    if (x->nerr >= PPL_MAX_SYNTAX_ERRORS) return;
    x->nerr++;
    rt_loc l = {loc->first_line, loc->first_column, loc->last_line, loc->last_column};
    va_list ap;
    va_start(ap, fmt);
    rt_diag_addv(x->diags, x->src, l, fmt, ap);
    va_end(ap);
    if (x->nerr == PPL_MAX_SYNTAX_ERRORS) {
        rt_diag_add(x->diags, NULL, (rt_loc){0, 0, 0, 0}, "too many errors; stopping");
        x->stop = true;
    }
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct lex_extra *X, const char *msg) {
    (void)scanner;
    lex_error(X, loc, "%s", msg);
}

/* A token's readable name: "a name", "newline", "}" ... */
static const char *tok_name(yysymbol_kind_t k, char *buf, size_t n) {
    const char *s = yysymbol_name(k);
    if (k == YYSYMBOL_YYEOF) return "end of input";
    size_t len = strlen(s);
    if (len >= 2 && (s[0] == '"' || s[0] == '\'')) {
        /* "a name" stays a phrase; quoted single tokens keep quotes */
        bool phrase = s[0] == '"' && (strncmp(s + 1, "a ", 2) == 0 || strncmp(s + 1, "newline", 7) == 0 ||
                                      strncmp(s + 1, "invalid", 7) == 0);
        if (phrase) snprintf(buf, n, "%.*s", (int)len - 2, s + 1);
        else snprintf(buf, n, "\"%.*s\"", (int)len - 2, s + 1);
        return buf;
    }
    return s;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, struct lex_extra *X) {
    (void)scanner;
    yysymbol_kind_t got = yypcontext_token(ctx);
    if (got == YYSYMBOL_LEXERROR || X->stop) return 0; /* already reported */
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    bool expr = false;
    for (int i = 0; i < n && n > 0; i++)
        if (exp[i] == YYSYMBOL_NUM || exp[i] == YYSYMBOL_NAME) expr = true;
    char gbuf[64], want[256] = "";
    const char *g = tok_name(got, gbuf, sizeof gbuf);
    if (expr && n > 3) {
        snprintf(want, sizeof want, " (expected an expression)");
    } else if (n > 0 && n <= 4) {
        size_t k = (size_t)snprintf(want, sizeof want, " (expected ");
        for (int i = 0; i < n && k < sizeof want; i++) {
            char e[64];
            k += (size_t)snprintf(want + k, sizeof want - k, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                                  tok_name(exp[i], e, sizeof e));
        }
        if (k < sizeof want) snprintf(want + k, sizeof want - k, ")");
    }
    const YYLTYPE *loc = yypcontext_location(ctx);
    if (got == YYSYMBOL_YYEOF) lex_error(X, loc, "unexpected end of input%s", want);
    else lex_error(X, loc, "unexpected %s%s", g, want);
    return 0;
}
