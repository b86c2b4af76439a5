/* ir.h - the trace IR: the checked, name-resolved form the interpreter runs.
 *
 * Lowering (lower.c) turns the AST into a tree of ir_nodes in which every
 * variable is a slot (a local in the current frame, or a global), every
 * constant is a value, and every random choice is an explicit node
 * (IR_SAMPLE, IR_OBSERVE, IR_PARAM, IR_DETERMINISTIC, IR_FACTOR, IR_PLATE)
 * carrying its site-name expression and its source location. */
#ifndef PPL_RUNTIME_IR_H
#define PPL_RUNTIME_IR_H

#include "value.h"
#include "diag.h"

typedef enum {
    /* expressions */
    IR_CONST,      /* k */
    IR_LOCAL,      /* slot */
    IR_GLOBAL,     /* slot = index in the VM's global table */
    IR_LIST,       /* kids = elements */
    IR_RECORD,     /* kids = values, names = keys */
    IR_FIELD,      /* kids[0] = object, str = field */
    IR_INDEX,      /* kids[0] = object, kids[1..] = items (IR_SLICE or expr) */
    IR_SLICE,      /* kids[0..2] = start, stop, step (each may be NULL) */
    IR_CALL,       /* kids[0] = callee, kids[1..] = args, names[i] = keyword
                      of argument i (NULL = positional), nnames = nargs */
    IR_BINOP,      /* aux = ast_op, kids[0], kids[1] */
    IR_UNOP,       /* aux = ast_op, kids[0] */
    IR_AND, IR_OR, /* kids[0], kids[1] */
    /* random choices: expressions that return the site's value */
    IR_SAMPLE,     /* kids[0] = site-name expr, kids[1] = dist,
                      ctr = optional constraint (sample x: C ~ D) */
    IR_OBSERVE,    /* kids[0] = site-name expr, kids[1] = dist, kids[2] = value */
    IR_PARAM,      /* kids[0] = site-name expr, kids[1] = init, ctr */
    IR_DETERMINISTIC, /* kids[0] = site-name expr, kids[1] = value */
    IR_FACTOR,     /* kids[0] = site-name expr, kids[1] = value */
    /* statements */
    IR_BLOCK,      /* kids */
    IR_EXPR,       /* kids[0]; aux = 1 when it is the REPL's echo candidate */
    IR_ASSIGN,     /* target = tgt; kids[0] = value */
    IR_BIND,       /* target = tgt; kids[0] = random-choice expr; assigns its
                      value (the statement forms `sample x ~ D` etc.) */
    IR_PLATE,      /* str = name, kids[0] = size, kids[1] = subsample or NULL,
                      kids[2] = body; slot = the `as` variable's slot or -1,
                      aux = scope of that variable (IR_LOCAL / IR_GLOBAL) */
    IR_IF,         /* kids[0] = cond, kids[1] = then, kids[2] = else or NULL */
    IR_FOR,        /* slot/aux = loop variable, kids[0] = iterable, kids[1] = body */
    IR_WHILE,      /* kids[0] = cond, kids[1] = body */
    IR_RETURN,     /* kids[0] or NULL */
    IR_BREAK, IR_CONTINUE,
    IR_DEF         /* fn = the function object; binds global slot */
} ir_op;

/* Assignment target: a variable, optionally indexed (x[i, j] = v) or a
 * field (r.a = v). */
typedef struct ir_target {
    int scope;              /* IR_LOCAL or IR_GLOBAL */
    int slot;
    const char *name;       /* for messages and site names */
    struct ir_node **idx;   /* index items (NULL when none) */
    int nidx;
    const char *field;      /* r.a = v (NULL when none) */
} ir_target;

/* A constraint as written: sample x: C ~ D or param p: C = init. */
typedef struct ir_constraint {
    int kind;               /* sl_ckind */
    struct ir_node *lo, *hi;/* bound expressions or NULL */
} ir_constraint;

struct rt_func;

typedef struct ir_node {
    int op;                 /* ir_op */
    int aux;
    int slot;
    rt_loc loc;
    rt_value k;             /* IR_CONST */
    char *str;
    struct ir_node **kids;
    int nkids;
    char **names;
    int nnames;
    ir_target tgt;          /* IR_ASSIGN / IR_BIND */
    ir_constraint *ctr;     /* IR_SAMPLE / IR_PARAM, or NULL */
    struct rt_func *fn;     /* IR_DEF */
} ir_node;

/* A user function (def / model / guide). */
typedef struct rt_func {
    rt_obj h;               /* tag RT_FUNC */
    char *name;
    int role;               /* ast_role */
    int nparams;
    char **pnames;
    ir_node **defaults;     /* per parameter, NULL = required */
    int nslots;             /* frame size (params first) */
    char **slotnames;       /* for messages */
    ir_node *body;
    rt_loc loc;
    rt_source *src;         /* retained: messages point into it */
} rt_func;

/* A lowered unit of top-level code (a file or a REPL chunk). */
typedef struct ir_unit {
    ir_node *body;          /* IR_BLOCK */
    rt_source *src;
    int echo;               /* 1: the unit is one expression (REPL echo) */
} ir_unit;

void ir_free(ir_node *n);
void rt_func_free(rt_obj *o);
void ir_unit_free(ir_unit *u);

#endif
