/* ppl.y - the ppl grammar: a pure, reentrant Bison parser with locations.
 * Actions only build AST nodes (src/runtime/ast.h); names, arity and
 * targets are checked when the AST is lowered (lower.c).  Syntax errors are
 * reported as plain sentences with readable token names, and the parser
 * recovers at the next statement boundary to report several. */
%define api.pure full
%define parse.error custom
%define parse.lac full
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

/* The parser's stack lives on the heap and is bounded: bracket nesting is
 * limited by the scanner, chains of operators by PPL_MAX_AST_HEIGHT, and a
 * longer right-recursive chain (- - - x, a ** b ** ...) ends here with an
 * error instead of unbounded memory. */
#define YYMAXDEPTH 10000
#define YYINITDEPTH 200

static rt_loc L(YYLTYPE a) {
    rt_loc l = {a.first_line, a.first_column, a.last_line, a.last_column};
    return l;
}
static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct lex_extra *X, const char *msg);
static ast_node *mk(struct lex_extra *X, int kind, int op, YYLTYPE loc, ast_node *a, ast_node *b, ast_node *c,
                    char *str);
static ast_node *name_node(struct lex_extra *X, YYLTYPE loc, char *name);
static ast_node *push(struct lex_extra *X, ast_node *n, ast_node *kid);
static ast_node *push_arg(struct lex_extra *X, ast_node *call, char *kw, ast_node *arg, YYLTYPE aloc);
static ast_node *push_field(struct lex_extra *X, ast_node *rec, char *key, ast_node *val);
static ast_node *push_param(struct lex_extra *X, ast_node *def, char *name, ast_node *dflt, YYLTYPE loc);
static ast_node *postfix_of(struct lex_extra *X, ast_node *items, int kind, ast_node *obj, YYLTYPE loc);
static ast_node *keyword_name(struct lex_extra *X, const char *kw, YYLTYPE loc) {
    char *s = strdup(kw);
    return s ? name_node(X, loc, s) : NULL;
}

static ast_node *keyword_call(struct lex_extra *X, const char *kw, YYLTYPE kwloc, ast_node *args, YYLTYPE loc);
static ast_node *keyword_name(struct lex_extra *X, const char *kw, YYLTYPE loc);
static ast_node *make_plate(struct lex_extra *X, YYLTYPE loc, char *name, ast_node *args, char *as, ast_node *body);
static ast_node *make_def(struct lex_extra *X, YYLTYPE loc, int role, char *name, ast_node *params, ast_node *body);
static ast_node *checked(struct lex_extra *X, ast_node *n);
static ast_node *checked_height(struct lex_extra *X, ast_node *n, int height);

/* Out of memory: stop parsing; whatever is on the stack is destroyed. */
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

%type <node> body stmt_list stmt simple_stmt compound_stmt block if_stmt expr or_expr and_expr not_expr
%type <node> comparison arith term unary power postfix primary args arg_list list_items index_items
%type <node> expr_list index_item opt_expr record record_items params param_list sample_target constraint
%type <str> opt_as word

%destructor { ast_free($$); } <node>
%destructor { free($$); } <str>
%destructor { (void)$$; } <num>

/* One known conflict: `observe (e) ~ D` against the call form
 * `observe(name, D, value)` on the ')' after a single expression; shifting
 * (the statement form) is right, since the call form needs 3 arguments. */
%expect 1

%start program

%%

program
    : body                           { X->result = $1; $1->loc = (rt_loc){1, 1, X->line, X->col > 1 ? X->col - 1 : 1}; }
    ;

/* A block's statements; the last one needs no separator before "}" or the
 * end of input.  `error` recovers at the next newline or ";". */
body
    : stmt_list                      { $$ = $1; }
    | stmt_list stmt                 { $$ = push(X, $1, $2); OOM($$); }
    | stmt_list error                { $$ = $1; }
    ;

stmt_list
    : %empty                         { $$ = mk(X, AST_BLOCK, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | stmt_list sep                  { $$ = $1; }
    | stmt_list stmt sep             { $$ = push(X, $1, $2); OOM($$); }
    | stmt_list error sep            { $$ = $1; yyerrok; }
    ;

sep : NEWLINE | ';' ;

stmt
    : simple_stmt
    | compound_stmt
    ;

simple_stmt
    : expr                           { $$ = mk(X, AST_EXPR_STMT, 0, @$, $1, NULL, NULL, NULL); OOM($$); }
    | expr '=' expr                  { $$ = mk(X, AST_ASSIGN, 0, @$, $1, $3, NULL, NULL); OOM($$); }
    | SAMPLE sample_target '~' expr  { $$ = mk(X, AST_SAMPLE, 0, @$, $2, $4, NULL, NULL); OOM($$); }
    | SAMPLE sample_target ':' constraint '~' expr
                                     { $$ = mk(X, AST_SAMPLE, 0, @$, $2, $6, $4, NULL); OOM($$); }
    | OBSERVE expr '~' expr          { $$ = mk(X, AST_OBSERVE, 0, @$, $2, $4, NULL, NULL); OOM($$); }
    | PARAM NAME '=' expr            { $$ = mk(X, AST_PARAM, 0, @$, NULL, $4, NULL, $2); OOM($$); }
    | PARAM NAME ':' constraint '=' expr
                                     { $$ = mk(X, AST_PARAM, 0, @$, NULL, $6, $4, $2); OOM($$); }
    | DETERMINISTIC NAME '=' expr    { $$ = mk(X, AST_DETERMINISTIC, 0, @$, NULL, $4, NULL, $2); OOM($$); }
    | FACTOR NAME '=' expr           { $$ = mk(X, AST_FACTOR, 0, @$, NULL, $4, NULL, $2); OOM($$); }
    | RETURN                         { $$ = mk(X, AST_RETURN, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | RETURN expr                    { $$ = mk(X, AST_RETURN, 0, @$, $2, NULL, NULL, NULL); OOM($$); }
    | BREAK                          { $$ = mk(X, AST_BREAK, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | CONTINUE                       { $$ = mk(X, AST_CONTINUE, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    ;

sample_target
    : NAME                           { $$ = name_node(X, @1, $1); OOM($$); }
    | NAME '[' index_items ']'       { $$ = postfix_of(X, $3, AST_INDEX, name_node(X, @1, $1), @$); OOM($$); }
    ;

/* `positive`, `interval(0, 1 - a)` */
constraint
    : NAME                           { $$ = name_node(X, @1, $1); OOM($$); }
    | NAME '(' args ')'              { $$ = postfix_of(X, $3, AST_CALL, name_node(X, @1, $1), @$); OOM($$); }
    ;

compound_stmt
    : if_stmt
    | FOR NAME IN expr block         { $$ = mk(X, AST_FOR, 0, @$, $4, $5, NULL, $2); OOM($$); }
    | WHILE expr block               { $$ = mk(X, AST_WHILE, 0, @$, $2, $3, NULL, NULL); OOM($$); }
    | PLATE NAME '(' args ')' opt_as block
                                     { $$ = make_plate(X, @$, $2, $4, $6, $7); OOM($$); }
    | DEF NAME '(' params ')' block  { $$ = make_def(X, @$, AST_ROLE_FUNC, $2, $4, $6); OOM($$); }
    | MODEL NAME '(' params ')' block
                                     { $$ = make_def(X, @$, AST_ROLE_MODEL, $2, $4, $6); OOM($$); }
    | GUIDE NAME '(' params ')' block
                                     { $$ = make_def(X, @$, AST_ROLE_GUIDE, $2, $4, $6); OOM($$); }
    ;

if_stmt
    : IF expr block                  { $$ = mk(X, AST_IF, 0, @$, $2, $3, NULL, NULL); OOM($$); }
    | IF expr block ELSE block       { $$ = mk(X, AST_IF, 0, @$, $2, $3, $5, NULL); OOM($$); }
    | IF expr block ELSE if_stmt     { $$ = mk(X, AST_IF, 0, @$, $2, $3, $5, NULL); OOM($$); }
    ;

opt_as
    : %empty                         { $$ = NULL; }
    | AS NAME                        { $$ = $2; }
    ;

block
    : '{' body '}'                   { $$ = $2; $$->loc = L(@$); }
    ;

/* Parameters collect into an AST_DEF: names[i] and default kids[i]. */
params
    : %empty                         { $$ = mk(X, AST_DEF, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | param_list                     { $$ = $1; }
    | param_list ','                 { $$ = $1; }
    ;

param_list
    : NAME                           { $$ = push_param(X, mk(X, AST_DEF, 0, @$, NULL, NULL, NULL, NULL), $1, NULL, @1); OOM($$); }
    | NAME '=' expr                  { $$ = push_param(X, mk(X, AST_DEF, 0, @$, NULL, NULL, NULL, NULL), $1, $3, @1); OOM($$); }
    | param_list ',' NAME            { $$ = push_param(X, $1, $3, NULL, @3); OOM($$); }
    | param_list ',' NAME '=' expr   { $$ = push_param(X, $1, $3, $5, @3); OOM($$); }
    ;

/* After "." and before "=" in arguments any word is a name: d.sample(),
 * predictive(model, guide=g). */
word
    : NAME                           { $$ = $1; }
    | MODEL                        { $$ = strdup("model"); OOM($$); }
    | GUIDE                        { $$ = strdup("guide"); OOM($$); }
    | DEF                          { $$ = strdup("def"); OOM($$); }
    | SAMPLE                       { $$ = strdup("sample"); OOM($$); }
    | OBSERVE                      { $$ = strdup("observe"); OOM($$); }
    | PARAM                        { $$ = strdup("param"); OOM($$); }
    | DETERMINISTIC                { $$ = strdup("deterministic"); OOM($$); }
    | FACTOR                       { $$ = strdup("factor"); OOM($$); }
    | PLATE                        { $$ = strdup("plate"); OOM($$); }
    | AS                           { $$ = strdup("as"); OOM($$); }
    | IF                           { $$ = strdup("if"); OOM($$); }
    | ELSE                         { $$ = strdup("else"); OOM($$); }
    | FOR                          { $$ = strdup("for"); OOM($$); }
    | IN                           { $$ = strdup("in"); OOM($$); }
    | WHILE                        { $$ = strdup("while"); OOM($$); }
    | RETURN                       { $$ = strdup("return"); OOM($$); }
    | BREAK                        { $$ = strdup("break"); OOM($$); }
    | CONTINUE                     { $$ = strdup("continue"); OOM($$); }
    | TRUE_                        { $$ = strdup("true"); OOM($$); }
    | FALSE_                       { $$ = strdup("false"); OOM($$); }
    | AND                          { $$ = strdup("and"); OOM($$); }
    | OR                           { $$ = strdup("or"); OOM($$); }
    | NOT                          { $$ = strdup("not"); OOM($$); }
    ;

expr : or_expr ;

or_expr
    : and_expr
    | or_expr OR and_expr            { $$ = mk(X, AST_OR, 0, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

and_expr
    : not_expr
    | and_expr AND not_expr          { $$ = mk(X, AST_AND, 0, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

not_expr
    : comparison
    | NOT not_expr                   { $$ = mk(X, AST_UNOP, AST_OP_NOT, @$, $2, NULL, NULL, NULL); OOM($$); }
    ;

/* Comparisons do not chain: `a < b < c` is a syntax error. */
comparison
    : arith
    | arith '<' arith                { $$ = mk(X, AST_BINOP, AST_OP_LT, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith LE arith                 { $$ = mk(X, AST_BINOP, AST_OP_LE, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith '>' arith                { $$ = mk(X, AST_BINOP, AST_OP_GT, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith GE arith                 { $$ = mk(X, AST_BINOP, AST_OP_GE, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith EQ arith                 { $$ = mk(X, AST_BINOP, AST_OP_EQ, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith NE arith                 { $$ = mk(X, AST_BINOP, AST_OP_NE, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

arith
    : term
    | arith '+' term                 { $$ = mk(X, AST_BINOP, AST_OP_ADD, @$, $1, $3, NULL, NULL); OOM($$); }
    | arith '-' term                 { $$ = mk(X, AST_BINOP, AST_OP_SUB, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

term
    : unary
    | term '*' unary                 { $$ = mk(X, AST_BINOP, AST_OP_MUL, @$, $1, $3, NULL, NULL); OOM($$); }
    | term '/' unary                 { $$ = mk(X, AST_BINOP, AST_OP_DIV, @$, $1, $3, NULL, NULL); OOM($$); }
    | term '@' unary                 { $$ = mk(X, AST_BINOP, AST_OP_MATMUL, @$, $1, $3, NULL, NULL); OOM($$); }
    | term '%' unary                 { $$ = mk(X, AST_BINOP, AST_OP_MOD, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

unary
    : power
    | '-' unary                      { $$ = mk(X, AST_UNOP, AST_OP_NEG, @$, $2, NULL, NULL, NULL); OOM($$); }
    | '+' unary                      { $$ = mk(X, AST_UNOP, AST_OP_POS, @$, $2, NULL, NULL, NULL); OOM($$); }
    ;

/* Right-associative and tighter than unary minus on its left:
 * -x**2 is -(x**2), 2**-1 is 2**(-1). */
power
    : postfix
    | postfix POW unary              { $$ = mk(X, AST_BINOP, AST_OP_POW, @$, $1, $3, NULL, NULL); OOM($$); }
    ;

postfix
    : primary
    | postfix '(' args ')'           { $$ = postfix_of(X, $3, AST_CALL, $1, @$); OOM($$); }
    | postfix '[' index_items ']'    { $$ = postfix_of(X, $3, AST_INDEX, $1, @$); OOM($$); }
    | postfix '.' word               { $$ = mk(X, AST_FIELD, 0, @$, $1, NULL, NULL, $3); OOM($$); }
    ;

primary
    : NUM                            { $$ = mk(X, AST_NUM, 0, @$, NULL, NULL, NULL, NULL); OOM($$); $$->num = $1; }
    | STR                            { $$ = mk(X, AST_STR, 0, @$, NULL, NULL, NULL, $1); OOM($$); }
    | TRUE_                          { $$ = mk(X, AST_BOOL, 0, @$, NULL, NULL, NULL, NULL); OOM($$); $$->num = 1; }
    | FALSE_                         { $$ = mk(X, AST_BOOL, 0, @$, NULL, NULL, NULL, NULL); OOM($$); $$->num = 0; }
    | NAME                           { $$ = name_node(X, @$, $1); OOM($$); }
    /* model and guide are keywords only where a definition starts:
     * svi(model, guide, data) */
    | MODEL                          { $$ = keyword_name(X, "model", @$); OOM($$); }
    | GUIDE                          { $$ = keyword_name(X, "guide", @$); OOM($$); }
    | '(' expr ')'                   { $$ = $2; }
    | '[' list_items ']'             { $$ = $2; $$->loc = L(@$); }
    | record
    | SAMPLE '(' args ')'            { $$ = keyword_call(X, "sample", @1, $3, @$); OOM($$); }
    | OBSERVE '(' args ')'           { $$ = keyword_call(X, "observe", @1, $3, @$); OOM($$); }
    | PARAM '(' args ')'             { $$ = keyword_call(X, "param", @1, $3, @$); OOM($$); }
    | DETERMINISTIC '(' args ')'     { $$ = keyword_call(X, "deterministic", @1, $3, @$); OOM($$); }
    | FACTOR '(' args ')'            { $$ = keyword_call(X, "factor", @1, $3, @$); OOM($$); }
    ;

/* Records may span lines: newlines may follow "{" and "," and precede "}". */
record
    : '{' opt_nl '}'                 { $$ = mk(X, AST_RECORD, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | '{' opt_nl record_items opt_nl '}'
                                     { $$ = $3; $$->loc = L(@$); }
    | '{' opt_nl record_items ',' opt_nl '}'
                                     { $$ = $3; $$->loc = L(@$); }
    ;

opt_nl : %empty | opt_nl NEWLINE ;

record_items
    : NAME ':' expr                  { $$ = push_field(X, mk(X, AST_RECORD, 0, @$, NULL, NULL, NULL, NULL), $1, $3); OOM($$); }
    | STR ':' expr                   { $$ = push_field(X, mk(X, AST_RECORD, 0, @$, NULL, NULL, NULL, NULL), $1, $3); OOM($$); }
    | record_items ',' opt_nl NAME ':' expr
                                     { $$ = push_field(X, $1, $4, $6); OOM($$); }
    | record_items ',' opt_nl STR ':' expr
                                     { $$ = push_field(X, $1, $4, $6); OOM($$); }
    ;

list_items
    : %empty                         { $$ = mk(X, AST_LIST, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | expr_list                      { $$ = $1; }
    | expr_list ','                  { $$ = $1; }
    ;

expr_list
    : expr                           { $$ = push(X, mk(X, AST_LIST, 0, @$, NULL, NULL, NULL, NULL), $1); OOM($$); }
    | expr_list ',' expr             { $$ = push(X, $1, $3); OOM($$); }
    ;

/* Call arguments collect into an AST_CALL whose callee is set later. */
args
    : %empty                         { $$ = mk(X, AST_CALL, 0, @$, NULL, NULL, NULL, NULL); OOM($$); }
    | arg_list                       { $$ = $1; }
    | arg_list ','                   { $$ = $1; }
    ;

arg_list
    : expr                           { $$ = push_arg(X, mk(X, AST_CALL, 0, @$, NULL, NULL, NULL, NULL), NULL, $1, @1); OOM($$); }
    | word '=' expr                  { $$ = push_arg(X, mk(X, AST_CALL, 0, @$, NULL, NULL, NULL, NULL), $1, $3, @$); OOM($$); }
    | arg_list ',' expr              { $$ = push_arg(X, $1, NULL, $3, @3); OOM($$); }
    | arg_list ',' word '=' expr     { $$ = push_arg(X, $1, $3, $5, @3); OOM($$); }
    ;

/* Index items collect into an AST_CALL node that becomes the AST_INDEX. */
index_items
    : index_item                     { $$ = push(X, mk(X, AST_CALL, 0, @$, NULL, NULL, NULL, NULL), $1); OOM($$); }
    | index_items ',' index_item     { $$ = push(X, $1, $3); OOM($$); }
    ;

index_item
    : expr                           { $$ = $1; }
    | opt_expr ':' opt_expr          { $$ = mk(X, AST_SLICE, 0, @$, $1, $3, NULL, NULL); OOM($$); }
    | opt_expr ':' opt_expr ':' opt_expr
                                     { $$ = mk(X, AST_SLICE, 0, @$, $1, $3, $5, NULL); OOM($$); }
    ;

opt_expr
    : %empty                         { $$ = NULL; }
    | expr                           { $$ = $1; }
    ;

%%

/* A node that owns a, b, c and str from now on (all freed if it cannot be
 * made). */
static ast_node *mk(struct lex_extra *X, int kind, int op, YYLTYPE loc, ast_node *a, ast_node *b, ast_node *c,
                    char *str) {
    ast_node *n = ast_new(kind, L(loc));
    if (!n) {
        ast_free(a);
        ast_free(b);
        ast_free(c);
        free(str);
        return NULL;
    }
    n->op = op;
    n->a = a;
    n->b = b;
    n->c = c;
    n->str = str;
    return checked(X, n);
}

/* Keeps the tree's height bounded: past the limit the error is reported
 * once and scanning stops (the tree is still well formed and freed). */
static ast_node *checked(struct lex_extra *X, ast_node *n) {
    return checked_height(X, n, n ? ast_update_height(n) : 0);
}

static ast_node *checked_height(struct lex_extra *X, ast_node *n, int height) {
    if (n && height > PPL_MAX_AST_HEIGHT && !X->stop) {
        lex_error_at(X, n->loc, "too many nested operators (the limit is %d)", PPL_MAX_AST_HEIGHT);
        X->stop = true;
    }
    return n;
}

static ast_node *name_node(struct lex_extra *X, YYLTYPE loc, char *name) {
    return mk(X, AST_NAME, 0, loc, NULL, NULL, NULL, name);
}

static ast_node *push(struct lex_extra *X, ast_node *n, ast_node *kid) {
    if (!n) {
        ast_free(kid);
        return NULL;
    }
    if (ast_push_kid(n, kid)) {
        ast_free(n);
        return NULL;
    }
    return checked_height(X, n, ast_raise_height(n, kid));
}

/* Argument `arg` (keyword `kw` or NULL) appended to `call`; a positional
 * argument after a keyword one is reported (as Python does). */
static ast_node *push_arg(struct lex_extra *X, ast_node *call, char *kw, ast_node *arg, YYLTYPE aloc) {
    if (!call) {
        free(kw);
        ast_free(arg);
        return NULL;
    }
    if (!kw && call->nnames > 0 && call->names[call->nnames - 1])
        lex_error(X, &aloc, "a positional argument cannot follow a keyword argument");
    if (ast_push_kid(call, arg)) {
        free(kw);
        ast_free(call);
        return NULL;
    }
    if (ast_push_name(call, kw)) {
        ast_free(call);
        return NULL;
    }
    return checked_height(X, call, ast_raise_height(call, arg));
}

static ast_node *push_field(struct lex_extra *X, ast_node *rec, char *key, ast_node *val) {
    return push_arg(X, rec, key, val, (YYLTYPE){0, 0, 0, 0});
}

static ast_node *push_param(struct lex_extra *X, ast_node *def, char *name, ast_node *dflt, YYLTYPE loc) {
    if (!def) {
        free(name);
        ast_free(dflt);
        return NULL;
    }
    if (!dflt && def->nkids > 0 && def->kids[def->nkids - 1])
        lex_error(X, &loc, "parameter \"%s\" needs a default value, as the ones before it have", name);
    if (ast_push_name(def, name)) {
        ast_free(dflt);
        ast_free(def);
        return NULL;
    }
    if (ast_push_kid(def, dflt)) {
        ast_free(def);
        return NULL;
    }
    return checked_height(X, def, ast_raise_height(def, dflt));
}

/* `items` (an AST_CALL holding arguments or index items) applied to `obj`. */
static ast_node *postfix_of(struct lex_extra *X, ast_node *items, int kind, ast_node *obj, YYLTYPE loc) {
    if (!items || !obj) {
        ast_free(items);
        ast_free(obj);
        return NULL;
    }
    items->kind = kind;
    items->a = obj;
    items->loc = L(loc);
    if (kind == AST_INDEX) {   /* index items have no keywords */
        for (int i = 0; i < items->nnames; i++) free(items->names[i]);
        free(items->names);
        items->names = NULL;
        items->nnames = 0;
    }
    return checked(X, items);
}

/* `sample(...)` and the like: ordinary calls of the built-in by that name. */
static ast_node *keyword_call(struct lex_extra *X, const char *kw, YYLTYPE kwloc, ast_node *args, YYLTYPE loc) {
    char *s = strdup(kw);
    if (!s) {
        ast_free(args);
        return NULL;
    }
    return postfix_of(X, args, AST_CALL, name_node(X, kwloc, s), loc);
}

static ast_node *make_plate(struct lex_extra *X, YYLTYPE loc, char *name, ast_node *args, char *as, ast_node *body) {
    ast_node *n = mk(X, AST_PLATE, 0, loc, NULL, NULL, body, name);
    if (!n) {
        free(as);
        ast_free(args);
        return NULL;
    }
    for (int i = 0; i < args->nkids; i++) {
        const char *kw = args->names[i];
        rt_loc aloc = args->kids[i]->loc;
        if (!kw && !n->a && !n->b) {
            n->a = args->kids[i];
            args->kids[i] = NULL;
        } else if (kw && strcmp(kw, "subsample") == 0 && !n->b) {
            n->b = args->kids[i];
            args->kids[i] = NULL;
        } else if (kw) {
            lex_error_at(X, aloc, "plate has no argument \"%s\" (it takes a size and subsample=)", kw);
        } else {
            lex_error_at(X, aloc, "plate takes one size argument");
        }
    }
    if (!n->a) lex_error(X, &loc, "plate \"%s\" needs a size, like plate %s(N)", n->str, n->str);
    ast_free(args);
    if (as && ast_push_name(n, as)) {
        ast_free(n);
        return NULL;
    }
    return checked(X, n);
}

/* `params` is an AST_DEF carrying names and default values. */
static ast_node *make_def(struct lex_extra *X, YYLTYPE loc, int role, char *name, ast_node *params, ast_node *body) {
    params->op = role;
    params->str = name;
    params->c = body;
    params->loc = L(loc);
    return checked(X, params);
}

void lex_error_at(struct lex_extra *x, rt_loc loc, const char *fmt, ...) {
    if (x->nerr >= PPL_MAX_SYNTAX_ERRORS) return;
    x->nerr++;
    va_list ap;
    va_start(ap, fmt);
    if (rt_diag_addv(x->diags, x->src, loc, fmt, ap)) x->oom = true;
    va_end(ap);
    if (x->nerr == PPL_MAX_SYNTAX_ERRORS) {
        if (rt_diag_add(x->diags, NULL, (rt_loc){0, 0, 0, 0}, "too many errors; stopping")) x->oom = true;
        x->stop = true;
    }
}

void lex_error(struct lex_extra *x, const YYLTYPE *loc, const char *fmt, ...) {
    if (x->nerr >= PPL_MAX_SYNTAX_ERRORS) return;
    x->nerr++;
    rt_loc l = L(*loc);
    va_list ap;
    va_start(ap, fmt);
    if (rt_diag_addv(x->diags, x->src, l, fmt, ap)) x->oom = true;
    va_end(ap);
    if (x->nerr == PPL_MAX_SYNTAX_ERRORS) {
        if (rt_diag_add(x->diags, NULL, (rt_loc){0, 0, 0, 0}, "too many errors; stopping")) x->oom = true;
        x->stop = true;
    }
}

/* Bison calls this only when its stack is full ("memory exhausted"): a
 * chain of operators too long to hold. */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, struct lex_extra *X, const char *msg) {
    (void)scanner;
    (void)msg;
    X->too_deep = true;
    if (!X->stop) lex_error(X, loc, "too many nested operators (the limit is %d)", PPL_MAX_AST_HEIGHT);
    X->stop = true;
}

/* ---- syntax error messages ----
 * The expected tokens are summarized: the tokens that can start an
 * expression become "an expression", binary and postfix operators "an
 * operator", newline and ";" "the end of the statement". */

/* The character of a one-character token, else 0. */
static int sym_char(yysymbol_kind_t k) {
    static const char chars[] = "()[]{}+-*/%@<>=~:,;.";
    for (int i = 0; chars[i]; i++) {
        int c = chars[i];
        if (YYTRANSLATE(c) == k) return c;
    }
    return 0;
}

static yysymbol_kind_t char_symbol(int c) { return YYTRANSLATE(c); }

static bool starts_expr(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_NUM: case YYSYMBOL_STR: case YYSYMBOL_NAME: case YYSYMBOL_TRUE_: case YYSYMBOL_FALSE_:
    case YYSYMBOL_NOT: case YYSYMBOL_SAMPLE: case YYSYMBOL_OBSERVE: case YYSYMBOL_PARAM: case YYSYMBOL_MODEL: case YYSYMBOL_GUIDE:
    case YYSYMBOL_DETERMINISTIC: case YYSYMBOL_FACTOR:
        return true;
    default:
        return sym_char(k) && strchr("-+([{", sym_char(k));
    }
}

static bool starts_stmt(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_MODEL: case YYSYMBOL_GUIDE: case YYSYMBOL_DEF: case YYSYMBOL_IF: case YYSYMBOL_FOR:
    case YYSYMBOL_WHILE: case YYSYMBOL_RETURN: case YYSYMBOL_BREAK: case YYSYMBOL_CONTINUE:
    case YYSYMBOL_PLATE:
        return true;
    default:
        return starts_expr(k);
    }
}

static bool is_operator(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_POW: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE:
    case YYSYMBOL_AND: case YYSYMBOL_OR:
        return true;
    default:
        return sym_char(k) && strchr("+-*/%@<>.([=", sym_char(k));
    }
}

static bool is_comparison(yysymbol_kind_t k) {
    return k == YYSYMBOL_EQ || k == YYSYMBOL_NE || k == YYSYMBOL_LE || k == YYSYMBOL_GE || sym_char(k) == '<' ||
           sym_char(k) == '>';
}

static bool expects_token(const yypcontext_t *ctx, yysymbol_kind_t k) {
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    for (int i = 0; i < n; i++)
        if (exp[i] == k) return true;
    return false;
}

static bool ends_stmt(yysymbol_kind_t k) {
    return k == YYSYMBOL_NEWLINE || k == YYSYMBOL_YYEOF || sym_char(k) == ';' || sym_char(k) == '}';
}

/* A token's readable name: a name, newline, "}", "if" ... */
static const char *tok_name(yysymbol_kind_t k, char *buf, size_t n) {
    if (k == YYSYMBOL_YYEOF) return "end of input";
    const char *s = yysymbol_name(k);
    size_t len = strlen(s);
    if (len >= 2 && (s[0] == '\'' || s[0] == '"')) {  /* '(' -> ( */
        s++;
        len -= 2;
    }
    if (strncmp(s, "a ", 2) == 0 || strncmp(s, "newline", 7) == 0 || strncmp(s, "invalid", 7) == 0)
        snprintf(buf, n, "%.*s", (int)len, s);        /* a phrase */
    else
        snprintf(buf, n, "\"%.*s\"", (int)len, s);   /* a token as written */
    return buf;
}

/* The unexpected token as the user wrote it. */
static void got_name(yysymbol_kind_t k, const struct lex_extra *X, char *buf, size_t n) {
    if (k == YYSYMBOL_YYEOF) snprintf(buf, n, "end of input");
    else if (k == YYSYMBOL_NEWLINE) snprintf(buf, n, "newline");
    else if (k == YYSYMBOL_STR) snprintf(buf, n, "string %s", X->toktext);
    else snprintf(buf, n, "\"%s\"", X->toktext);
}

static void expected_list(const yypcontext_t *ctx, char *want, size_t wn) {
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    bool stmt = false, expr = false, op = false, end = false;
    for (int i = 0; i < n; i++) {
        if (exp[i] == YYSYMBOL_WHILE) stmt = true;   /* only where a statement starts */
        if (exp[i] == YYSYMBOL_NUM) expr = true;
        if (sym_char(exp[i]) == '*') op = true;
        if (sym_char(exp[i]) == ';') end = true;
    }
    const char *items[YYNTOKENS + 4];
    char names[YYNTOKENS][24];
    int k = 0;
    if (stmt) items[k++] = "a statement";
    else if (expr) items[k++] = "an expression";
    if (op) items[k++] = "an operator";
    if (end && !stmt) items[k++] = "the end of the statement";
    for (int i = 0; i < n; i++) {
        yysymbol_kind_t t = exp[i];
        if ((stmt && (starts_stmt(t) || ends_stmt(t))) || (expr && starts_expr(t)) || (op && is_operator(t)) ||
            (end && ends_stmt(t)))
            continue;
        items[k++] = tok_name(t, names[i], sizeof names[i]);
    }
    want[0] = 0;
    if (k == 0 || k > 4) return;
    size_t len = (size_t)snprintf(want, wn, " (expected ");
    for (int i = 0; i < k && len < wn; i++)
        len += (size_t)snprintf(want + len, wn - len, "%s%s", i == 0 ? "" : i == k - 1 ? " or " : ", ", items[i]);
    if (len < wn) snprintf(want + len, wn - len, ")");
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, struct lex_extra *X) {
    (void)scanner;
    yysymbol_kind_t got = yypcontext_token(ctx);
    bool at_eof_open = got == YYSYMBOL_YYEOF && X->depth > 0;
    if (!at_eof_open) lex_abandon_parens(X);
    if (got == YYSYMBOL_LEXERROR || X->stop) return 0; /* already reported */
    if (at_eof_open) {                                 /* point at the bracket left open */
        char open = X->open_tok[X->depth - 1];
        char close = open == '(' ? ')' : open == '[' ? ']' : '}';
        lex_error_at(X, X->open_loc[X->depth - 1], "unclosed \"%c\" (no matching \"%c\" before the end of input)",
                     open, close);
        return 0;
    }
    if (is_comparison(got) && !expects_token(ctx, got) && expects_token(ctx, char_symbol('*'))) {
        lex_error(X, yypcontext_location(ctx), "comparisons do not chain (write \"a < b and b < c\")");
        return 0;
    }
    char g[PPL_TOKTEXT_MAX + 16], want[256];
    got_name(got, X, g, sizeof g);
    expected_list(ctx, want, sizeof want);
    lex_error(X, yypcontext_location(ctx), "unexpected %s%s", g, want);
    return 0;
}
