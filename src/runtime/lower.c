/* lower.c - checks the AST and lowers it to the trace IR (ir.h).
 *
 * Checks: unknown names (with "did you mean"), arity of calls to user
 * functions known at this point, constraint names and their arity,
 * assignment targets, break/continue/return placement, the statement forms
 * of random choices.  Errors are collected (up to a limit) so that one run
 * reports several. */
#include <stdlib.h>
#include <string.h>
#include "vm.h"

#define MAX_LOWER_ERRORS 20

typedef struct lscope {
    char **names;
    int n, cap;
} lscope;

typedef struct lctx {
    rt_vm *vm;
    rt_source *src;
    lscope *fn;          /* locals of the function being lowered, or NULL */
    const ast_node *top; /* the unit's top-level block (for arity checks) */
    int loops;
    int nerr;
    bool oom;
} lctx;

static ir_node *lower_expr(lctx *L, const ast_node *a);
static ir_node *lower_stmt(lctx *L, const ast_node *a);
static ir_node *lower_block(lctx *L, const ast_node *a);

static void lerr(lctx *L, rt_loc loc, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void lerr(lctx *L, rt_loc loc, int code, const char *fmt, ...) {
    if (L->nerr == 0) {
        rt_diaglist_free(&L->vm->errs);
        rt_diaglist_init(&L->vm->errs);
        L->vm->errcode = code;
    }
    L->nerr++;
    if (L->nerr > MAX_LOWER_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    rt_diag_addv(&L->vm->errs, L->src, loc, fmt, ap);
    va_end(ap);
}

enum { ERR_NAME = 2 }; /* PPL_ERR_NAME */

/* ------------------------------------------------------------- nodes --- */

static ir_node *node(lctx *L, int op, rt_loc loc) {
    ir_node *n = calloc(1, sizeof *n);
    if (!n) {
        L->oom = true;
        return NULL;
    }
    n->op = op;
    n->loc = loc;
    n->slot = -1;
    return n;
}

static void push_kid(lctx *L, ir_node *n, ir_node *kid) {
    if (!n) {
        ir_free(kid);
        return;
    }
    ir_node **k = realloc(n->kids, (n->nkids + 1) * sizeof *k);
    if (!k) {
        L->oom = true;
        ir_free(kid);
        return;
    }
    n->kids = k;
    n->kids[n->nkids++] = kid;
}

static void push_name(lctx *L, ir_node *n, const char *name) {
    if (!n) return;
    char **k = realloc(n->names, (n->nnames + 1) * sizeof *k);
    if (!k) {
        L->oom = true;
        return;
    }
    n->names = k;
    n->names[n->nnames++] = name ? strdup(name) : NULL;
}

void ir_free(ir_node *n) {
    if (!n) return;
    for (int i = 0; i < n->nkids; i++) ir_free(n->kids[i]);
    free(n->kids);
    for (int i = 0; i < n->nnames; i++) free(n->names[i]);
    free(n->names);
    free(n->str);
    rt_release(n->k);
    for (int i = 0; i < n->tgt.nidx; i++) ir_free(n->tgt.idx[i]);
    free(n->tgt.idx);
    free((char *)n->tgt.name);
    free((char *)n->tgt.field);
    if (n->ctr) {
        ir_free(n->ctr->lo);
        ir_free(n->ctr->hi);
        free(n->ctr);
    }
    if (n->fn) rt_release(rt_obj_value(&n->fn->h));
    free(n);
}

void ir_unit_free(ir_unit *u) {
    if (!u) return;
    ir_free(u->body);
    rt_source_release(u->src);
    free(u);
}

/* ------------------------------------------------------------ scopes --- */

static int scope_find(const lscope *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) return i;
    return -1;
}

static int scope_add(lctx *L, lscope *s, const char *name) {
    int i = scope_find(s, name);
    if (i >= 0) return i;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        char **p = realloc(s->names, cap * sizeof *p);
        if (!p) {
            L->oom = true;
            return -1;
        }
        s->names = p;
        s->cap = cap;
    }
    s->names[s->n] = strdup(name);
    if (!s->names[s->n]) {
        L->oom = true;
        return -1;
    }
    return s->n++;
}


/* The variable a target expression assigns: x, x[i], r.a. */
static const ast_node *target_var(const ast_node *t) {
    if (!t) return NULL;
    if (t->kind == AST_NAME) return t;
    if ((t->kind == AST_INDEX || t->kind == AST_FIELD) && t->a && t->a->kind == AST_NAME) return t->a;
    return NULL;
}

/* Declare every name a block binds (not descending into nested defs). */
static void collect_bindings(lctx *L, const ast_node *a, lscope *fn) {
    if (!a) return;
    const char *name = NULL;
    switch (a->kind) {
    case AST_BLOCK:
        for (int i = 0; i < a->nkids; i++) collect_bindings(L, a->kids[i], fn);
        return;
    case AST_ASSIGN:
        if (a->a && a->a->kind == AST_NAME) name = a->a->str;
        break;
    case AST_SAMPLE:
        if (a->a && a->a->kind == AST_NAME) name = a->a->str;
        break;
    case AST_PARAM:
    case AST_DETERMINISTIC:
        name = a->str;
        break;
    case AST_FOR:
        name = a->str;
        collect_bindings(L, a->b, fn);
        break;
    case AST_WHILE:
        collect_bindings(L, a->b, fn);
        return;
    case AST_IF:
        collect_bindings(L, a->b, fn);
        collect_bindings(L, a->c, fn);
        return;
    case AST_PLATE:
        if (a->nnames > 0) name = a->names[0];
        collect_bindings(L, a->c, fn);
        break;
    case AST_DEF:
        if (!fn) name = a->str;
        break;
    default:
        return;
    }
    if (!name) return;
    if (fn) scope_add(L, fn, name);
    else if (rt_global_declare(L->vm, name) < 0) L->oom = true;
}

/* All names visible here, for "did you mean". */
static const char *suggest(lctx *L, const char *name) {
    int n = L->vm->nglobals + (L->fn ? L->fn->n : 0);
    const char **cands = malloc((n + 1) * sizeof *cands);
    if (!cands) return NULL;
    int k = 0;
    if (L->fn)
        for (int i = 0; i < L->fn->n; i++) cands[k++] = L->fn->names[i];
    for (int i = 0; i < L->vm->nglobals; i++) cands[k++] = L->vm->gnames[i];
    cands[k] = NULL;
    const char *s = rt_did_you_mean(name, (const char *const *)cands, k);
    free(cands);
    return s;
}

/* Resolve a variable read; reports unknown names. */
static ir_node *lower_name(lctx *L, const ast_node *a) {
    if (L->fn) {
        int i = scope_find(L->fn, a->str);
        if (i >= 0) {
            ir_node *n = node(L, IR_LOCAL, a->loc);
            if (n) {
                n->slot = i;
                n->str = strdup(a->str);
            }
            return n;
        }
    }
    int g = rt_global_find(L->vm, a->str);
    if (g < 0) {
        const char *s = suggest(L, a->str);
        if (s)
            lerr(L, a->loc, ERR_NAME, "unknown name \"%s\" (did you mean \"%s\"?)", a->str, s);
        else
            lerr(L, a->loc, ERR_NAME, "unknown name \"%s\"", a->str);
        return NULL;
    }
    ir_node *n = node(L, IR_GLOBAL, a->loc);
    if (n) {
        n->slot = g;
        n->str = strdup(a->str);
    }
    return n;
}

static ir_node *const_str(lctx *L, const char *s, rt_loc loc) {
    ir_node *n = node(L, IR_CONST, loc);
    if (!n) return NULL;
    rt_str *str = rt_str_new(s, strlen(s));
    if (!str) {
        L->oom = true;
        return n;
    }
    n->k = rt_obj_value(&str->h);
    return n;
}

/* ------------------------------------------------------- constraints --- */

static ir_constraint *lower_constraint(lctx *L, const ast_node *c) {
    const char *name = NULL;
    int nargs = 0;
    if (c->kind == AST_NAME) name = c->str;
    else if (c->kind == AST_CALL && c->a && c->a->kind == AST_NAME) {
        name = c->a->str;
        nargs = c->nkids;
    }
    if (!name) {
        lerr(L, c->loc, ERR_NAME, "expected a constraint such as positive or interval(0, 1)");
        return NULL;
    }
    int want = 0;
    int kind = sl_constraint_lookup(name, &want);
    if (kind < 0 || kind >= SL_C_BOOLEAN) {
        static const char *const names[] = {"real", "positive", "greater_than", "less_than",
                                            "interval", "unit_interval", "simplex",
                                            "lower_cholesky", "corr_cholesky", "ordered",
                                            "positive_ordered", NULL};
        const char *s = rt_did_you_mean(name, names, 11);
        if (s)
            lerr(L, c->loc, ERR_NAME, "unknown constraint \"%s\" (did you mean \"%s\"?)", name, s);
        else
            lerr(L, c->loc, ERR_NAME, "unknown constraint \"%s\"", name);
        return NULL;
    }
    if (nargs != want) {
        lerr(L, c->loc, ERR_NAME, "constraint %s takes %d argument%s, got %d", name, want,
             want == 1 ? "" : "s", nargs);
        return NULL;
    }
    ir_constraint *ic = calloc(1, sizeof *ic);
    if (!ic) {
        L->oom = true;
        return NULL;
    }
    ic->kind = kind;
    if (kind == SL_C_LESS_THAN) ic->hi = lower_expr(L, c->kids[0]);
    else if (nargs >= 1) ic->lo = lower_expr(L, c->kids[0]);
    if (nargs == 2) ic->hi = lower_expr(L, c->kids[1]);
    return ic;
}

/* ------------------------------------------------------------- calls --- */

static int find_def_arity(lctx *L, const char *name, int *minargs, int *maxargs) {
    rt_value *g = rt_global_get(L->vm, name);
    if (L->fn && scope_find(L->fn, name) >= 0) return 0; /* a local shadows */
    if (g && g->tag == RT_FUNC) {
        rt_func *f = (rt_func *)g->u.o;
        *maxargs = f->nparams;
        *minargs = 0;
        for (int i = 0; i < f->nparams; i++)
            if (!f->defaults[i]) *minargs = i + 1;
        return 1;
    }
    if (L->top)
        for (int i = 0; i < L->top->nkids; i++) {
            const ast_node *d = L->top->kids[i];
            if (d->kind == AST_DEF && strcmp(d->str, name) == 0) {
                *maxargs = d->nnames;
                *minargs = 0;
                for (int j = 0; j < d->nkids; j++)
                    if (!d->kids[j]) *minargs = j + 1;
                return 1;
            }
        }
    return 0;
}

/* The function-call forms of random statements:
 *   sample(name, D[, obs=v]), observe(name, D, value),
 *   param(name, init, constraint=C), deterministic(name, v), factor(name, v) */
static ir_node *lower_random_call(lctx *L, const ast_node *a, const char *fname) {
    int npos = 0;
    const ast_node *pos[4] = {0};
    const ast_node *obs = NULL, *constraint = NULL;
    for (int i = 0; i < a->nkids; i++) {
        const char *kw = i < a->nnames ? a->names[i] : NULL;
        if (!kw) {
            if (npos < 4) pos[npos] = a->kids[i];
            npos++;
        } else if (strcmp(fname, "sample") == 0 && strcmp(kw, "obs") == 0) {
            obs = a->kids[i];
        } else if (strcmp(fname, "param") == 0 && strcmp(kw, "constraint") == 0) {
            constraint = a->kids[i];
        } else {
            lerr(L, a->kids[i]->loc, ERR_NAME, "%s() has no argument \"%s\"", fname, kw);
            return NULL;
        }
    }
    int want = strcmp(fname, "observe") == 0 ? 3 : 2;
    if (npos != want) {
        static const char *const usage[] = {
            "sample(name, distribution)", "observe(name, distribution, value)",
            "param(name, init, constraint=C)", "deterministic(name, value)",
            "factor(name, value)"};
        int u = fname[0] == 's' ? 0 : fname[0] == 'o' ? 1 : fname[0] == 'p' ? 2 : fname[0] == 'd' ? 3 : 4;
        lerr(L, a->loc, ERR_NAME, "%s takes %d positional arguments, got %d (use %s)", fname,
             want, npos, usage[u]);
        return NULL;
    }
    int op = fname[0] == 's' ? (obs ? IR_OBSERVE : IR_SAMPLE)
           : fname[0] == 'o' ? IR_OBSERVE
           : fname[0] == 'p' ? IR_PARAM
           : fname[0] == 'd' ? IR_DETERMINISTIC : IR_FACTOR;
    ir_node *n = node(L, op, a->loc);
    push_kid(L, n, lower_expr(L, pos[0]));
    push_kid(L, n, lower_expr(L, pos[1]));
    if (op == IR_OBSERVE) push_kid(L, n, lower_expr(L, obs ? obs : pos[2]));
    if (constraint && n) n->ctr = lower_constraint(L, constraint);
    return n;
}

static ir_node *lower_call(lctx *L, const ast_node *a) {
    if (a->a && a->a->kind == AST_NAME) {
        const char *f = a->a->str;
        bool shadowed = (L->fn && scope_find(L->fn, f) >= 0);
        if (!shadowed && (strcmp(f, "sample") == 0 || strcmp(f, "observe") == 0 ||
                          strcmp(f, "param") == 0 || strcmp(f, "deterministic") == 0 ||
                          strcmp(f, "factor") == 0))
            return lower_random_call(L, a, f);
        int lo, hi, npos = 0;
        for (int i = 0; i < a->nkids; i++)
            if (i >= a->nnames || !a->names[i]) npos++;
        if (find_def_arity(L, f, &lo, &hi) && (npos > hi || (npos < lo && a->nkids < lo))) {
            lerr(L, a->loc, ERR_NAME, "%s takes %s%d argument%s, got %d", f,
                 lo == hi ? "" : npos > hi ? "at most " : "at least ", npos > hi ? hi : lo,
                 (npos > hi ? hi : lo) == 1 ? "" : "s", npos);
            return NULL;
        }
    }
    ir_node *n = node(L, IR_CALL, a->loc);
    push_kid(L, n, lower_expr(L, a->a));
    for (int i = 0; i < a->nkids; i++) {
        push_kid(L, n, lower_expr(L, a->kids[i]));
        push_name(L, n, i < a->nnames ? a->names[i] : NULL);
    }
    return n;
}

/* ------------------------------------------------------- expressions --- */

static ir_node *lower_expr(lctx *L, const ast_node *a) {
    if (!a) return NULL;
    ir_node *n = NULL;
    switch (a->kind) {
    case AST_NUM:
    case AST_BOOL:
        n = node(L, IR_CONST, a->loc);
        if (n) {
            bk_tensor *t = bk_scalar(L->vm->bk, a->num);
            if (!t) L->oom = true;
            else n->k = rt_tensor(t);
        }
        return n;
    case AST_STR: return const_str(L, a->str, a->loc);
    case AST_NAME: return lower_name(L, a);
    case AST_LIST:
        n = node(L, IR_LIST, a->loc);
        for (int i = 0; i < a->nkids; i++) push_kid(L, n, lower_expr(L, a->kids[i]));
        return n;
    case AST_RECORD:
        n = node(L, IR_RECORD, a->loc);
        for (int i = 0; i < a->nkids; i++) {
            for (int j = 0; j < i; j++)
                if (strcmp(a->names[i], a->names[j]) == 0)
                    lerr(L, a->kids[i]->loc, ERR_NAME, "field \"%s\" appears twice in the record",
                         a->names[i]);
            push_kid(L, n, lower_expr(L, a->kids[i]));
            push_name(L, n, a->names[i]);
        }
        return n;
    case AST_FIELD:
        n = node(L, IR_FIELD, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        if (n) n->str = strdup(a->str);
        return n;
    case AST_INDEX:
        n = node(L, IR_INDEX, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        for (int i = 0; i < a->nkids; i++) push_kid(L, n, lower_expr(L, a->kids[i]));
        return n;
    case AST_SLICE:
        n = node(L, IR_SLICE, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        push_kid(L, n, lower_expr(L, a->b));
        push_kid(L, n, lower_expr(L, a->c));
        return n;
    case AST_CALL: return lower_call(L, a);
    case AST_BINOP:
    case AST_UNOP:
    case AST_AND:
    case AST_OR:
        n = node(L, a->kind == AST_BINOP ? IR_BINOP : a->kind == AST_UNOP ? IR_UNOP
                  : a->kind == AST_AND ? IR_AND : IR_OR, a->loc);
        if (n) n->aux = a->op;
        push_kid(L, n, lower_expr(L, a->a));
        if (a->kind != AST_UNOP) push_kid(L, n, lower_expr(L, a->b));
        return n;
    default:
        lerr(L, a->loc, ERR_NAME, "a statement cannot be used as a value here");
        return NULL;
    }
}

/* ------------------------------------------------------- statements --- */

/* Fill a target (x, x[i, j], r.a) for an assignment. */
static bool lower_target(lctx *L, const ast_node *t, ir_target *out, const char *what) {
    const ast_node *v = target_var(t);
    if (!v) {
        lerr(L, t->loc, ERR_NAME, "cannot assign to this expression (%s needs a name, an "
             "indexed name like x[i], or a field like r.a)", what);
        return false;
    }
    if (L->fn && scope_find(L->fn, v->str) >= 0) {
        out->scope = IR_LOCAL;
        out->slot = scope_find(L->fn, v->str);
    } else {
        int g = rt_global_find(L->vm, v->str);
        if (g < 0) {
            if (t->kind != AST_NAME) {
                lerr(L, v->loc, ERR_NAME, "unknown name \"%s\" (assign it before setting an "
                     "element or field)", v->str);
                return false;
            }
            g = rt_global_declare(L->vm, v->str);
        }
        out->scope = IR_GLOBAL;
        out->slot = g;
    }
    out->name = strdup(v->str);
    if (t->kind == AST_INDEX) {
        out->idx = calloc(t->nkids ? t->nkids : 1, sizeof *out->idx);
        if (!out->idx) {
            L->oom = true;
            return false;
        }
        out->nidx = t->nkids;
        for (int i = 0; i < t->nkids; i++) out->idx[i] = lower_expr(L, t->kids[i]);
    } else if (t->kind == AST_FIELD) {
        out->field = strdup(t->str);
    }
    return true;
}

static ir_node *bind(lctx *L, const ast_node *a, const ast_node *target, ir_node *choice,
                     const char *what) {
    ir_node *n = node(L, IR_BIND, a->loc);
    if (!n) {
        ir_free(choice);
        return NULL;
    }
    push_kid(L, n, choice);
    if (target) lower_target(L, target, &n->tgt, what);
    return n;
}

static ir_node *lower_named_choice(lctx *L, const ast_node *a, int op) {
    /* param p = init / deterministic d = e / factor f = e */
    ir_node *c = node(L, op, a->loc);
    push_kid(L, c, const_str(L, a->str, a->loc));
    push_kid(L, c, lower_expr(L, a->b));
    if (c && op == IR_PARAM && a->c) c->ctr = lower_constraint(L, a->c);
    if (op == IR_FACTOR) {
        ir_node *s = node(L, IR_EXPR, a->loc);
        push_kid(L, s, c);
        return s;
    }
    ast_node name = {.kind = AST_NAME, .loc = a->loc, .str = a->str};
    return bind(L, a, &name, c, op == IR_PARAM ? "param" : "deterministic");
}

static ir_node *lower_def(lctx *L, const ast_node *a) {
    if (L->fn) {
        lerr(L, a->loc, ERR_NAME, "functions can only be defined at the top level");
        return NULL;
    }
    rt_func *f = calloc(1, sizeof *f);
    if (!f) {
        L->oom = true;
        return NULL;
    }
    f->h.refcount = 1;
    f->h.tag = RT_FUNC;
    f->h.free = rt_func_free;
    f->name = strdup(a->str);
    f->role = a->op;
    f->loc = a->loc;
    f->src = rt_source_retain(L->src);
    f->nparams = a->nnames;
    f->pnames = calloc(a->nnames + 1, sizeof *f->pnames);
    f->defaults = calloc(a->nnames + 1, sizeof *f->defaults);
    lscope sc = {0};
    bool ok = f->pnames && f->defaults && f->name;
    bool seen_default = false;
    for (int i = 0; ok && i < a->nnames; i++) {
        if (scope_find(&sc, a->names[i]) >= 0)
            lerr(L, a->loc, ERR_NAME, "parameter \"%s\" appears twice in %s", a->names[i], a->str);
        scope_add(L, &sc, a->names[i]);
        f->pnames[i] = strdup(a->names[i]);
        const ast_node *d = i < a->nkids ? a->kids[i] : NULL;
        if (d) {
            seen_default = true;
            lscope *saved = L->fn;
            L->fn = NULL; /* defaults are evaluated in the global scope */
            f->defaults[i] = lower_expr(L, d);
            L->fn = saved;
        } else if (seen_default) {
            lerr(L, a->loc, ERR_NAME, "parameter \"%s\" without a default follows one with a default",
                 a->names[i]);
        }
    }
    collect_bindings(L, a->c, &sc);
    lscope *saved = L->fn;
    int saved_loops = L->loops;
    L->fn = &sc;
    L->loops = 0;
    f->body = lower_block(L, a->c);
    L->fn = saved;
    L->loops = saved_loops;
    f->nslots = sc.n;
    f->slotnames = sc.names; /* hand over */
    sc.names = NULL;
    ir_node *n = node(L, IR_DEF, a->loc);
    if (!n) {
        rt_func_free(&f->h);
        return NULL;
    }
    n->fn = f;
    n->slot = rt_global_declare(L->vm, a->str);
    return n;
}

static ir_node *lower_block(lctx *L, const ast_node *a) {
    ir_node *n = node(L, IR_BLOCK, a ? a->loc : (rt_loc){0, 0, 0, 0});
    if (!a) return n;
    if (a->kind != AST_BLOCK) {
        push_kid(L, n, lower_stmt(L, a));
        return n;
    }
    for (int i = 0; i < a->nkids; i++) push_kid(L, n, lower_stmt(L, a->kids[i]));
    return n;
}

static bool is_range_call(lctx *L, const ast_node *it) {
    if (!it || it->kind != AST_CALL || !it->a || it->a->kind != AST_NAME) return false;
    if (strcmp(it->a->str, "range") != 0) return false;
    if (L->fn && scope_find(L->fn, "range") >= 0) return false;
    rt_value *g = rt_global_get(L->vm, "range");
    for (int i = 0; i < it->nnames; i++)
        if (it->names[i]) return false; /* keyword arguments: the general path */
    return g && g->tag == RT_BUILTIN;
}

static ir_node *lower_stmt(lctx *L, const ast_node *a) {
    if (!a) return NULL;
    ir_node *n = NULL;
    switch (a->kind) {
    case AST_BLOCK: return lower_block(L, a);
    case AST_EXPR_STMT:
        n = node(L, IR_EXPR, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        return n;
    case AST_ASSIGN:
        n = node(L, IR_ASSIGN, a->loc);
        push_kid(L, n, lower_expr(L, a->b));
        if (n) lower_target(L, a->a, &n->tgt, "assignment");
        return n;
    case AST_SAMPLE: {
        const ast_node *t = a->a;
        if (!target_var(t) || t->kind == AST_FIELD) {
            lerr(L, t ? t->loc : a->loc, ERR_NAME,
                 "sample needs a name or an indexed name (sample x ~ D, sample x[i] ~ D)");
            return NULL;
        }
        ir_node *c = node(L, IR_SAMPLE, a->loc);
        if (t->kind == AST_NAME) push_kid(L, c, const_str(L, t->str, t->loc));
        else push_kid(L, c, NULL); /* site name from the target's index values */
        push_kid(L, c, lower_expr(L, a->b));
        if (c && a->c) c->ctr = lower_constraint(L, a->c);
        return bind(L, a, t, c, "sample");
    }
    case AST_OBSERVE: {
        const ast_node *e = a->a;
        const ast_node *v = target_var(e);
        if (!v || e->kind == AST_FIELD) {
            lerr(L, e ? e->loc : a->loc, ERR_NAME,
                 "observe needs a name or an indexed name to name the site; for a computed "
                 "value use observe(\"name\", distribution, value)");
            return NULL;
        }
        n = node(L, IR_OBSERVE, a->loc);
        if (e->kind == AST_NAME) push_kid(L, n, const_str(L, e->str, e->loc));
        else push_kid(L, n, NULL); /* "y[3]": built from the index values */
        push_kid(L, n, lower_expr(L, a->b));
        push_kid(L, n, lower_expr(L, e));
        if (n) n->str = strdup(v->str);
        ir_node *s = node(L, IR_EXPR, a->loc);
        push_kid(L, s, n);
        return s;
    }
    case AST_PARAM: return lower_named_choice(L, a, IR_PARAM);
    case AST_DETERMINISTIC: return lower_named_choice(L, a, IR_DETERMINISTIC);
    case AST_FACTOR: return lower_named_choice(L, a, IR_FACTOR);
    case AST_PLATE:
        n = node(L, IR_PLATE, a->loc);
        if (!n) return NULL;
        n->str = strdup(a->str);
        push_kid(L, n, lower_expr(L, a->a));
        push_kid(L, n, a->b ? lower_expr(L, a->b) : NULL);
        if (a->nnames > 0) {
            if (L->fn) {
                n->aux = IR_LOCAL;
                n->slot = scope_find(L->fn, a->names[0]);
            } else {
                n->aux = IR_GLOBAL;
                n->slot = rt_global_declare(L->vm, a->names[0]);
            }
        }
        push_kid(L, n, lower_block(L, a->c));
        return n;
    case AST_IF:
        n = node(L, IR_IF, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        push_kid(L, n, lower_block(L, a->b));
        push_kid(L, n, a->c ? lower_block(L, a->c) : NULL);
        return n;
    case AST_FOR:
        n = node(L, IR_FOR, a->loc);
        if (!n) return NULL;
        if (L->fn) {
            n->aux = IR_LOCAL;
            n->slot = scope_find(L->fn, a->str);
        } else {
            n->aux = IR_GLOBAL;
            n->slot = rt_global_declare(L->vm, a->str);
        }
        n->str = strdup(a->str);
        push_kid(L, n, lower_expr(L, a->a));
        /* for i in range(...) runs on plain numbers, without a tensor */
        if (is_range_call(L, a->a) && n->kids[0]) n->kids[0]->aux = 1;
        L->loops++;
        push_kid(L, n, lower_block(L, a->b));
        L->loops--;
        return n;
    case AST_WHILE:
        n = node(L, IR_WHILE, a->loc);
        push_kid(L, n, lower_expr(L, a->a));
        L->loops++;
        push_kid(L, n, lower_block(L, a->b));
        L->loops--;
        return n;
    case AST_RETURN:
        if (!L->fn) {
            lerr(L, a->loc, ERR_NAME, "return outside a function");
            return NULL;
        }
        n = node(L, IR_RETURN, a->loc);
        push_kid(L, n, a->a ? lower_expr(L, a->a) : NULL);
        return n;
    case AST_BREAK:
    case AST_CONTINUE:
        if (!L->loops) {
            lerr(L, a->loc, ERR_NAME, "%s outside a loop", a->kind == AST_BREAK ? "break" : "continue");
            return NULL;
        }
        return node(L, a->kind == AST_BREAK ? IR_BREAK : IR_CONTINUE, a->loc);
    case AST_DEF: return lower_def(L, a);
    default: {
        /* an expression used as a statement */
        n = node(L, IR_EXPR, a->loc);
        push_kid(L, n, lower_expr(L, a));
        return n;
    }
    }
}

ir_unit *rt_lower(rt_vm *vm, const ast_program *prog, bool repl) {
    lctx L = {.vm = vm, .src = prog->src, .top = prog->body};
    collect_bindings(&L, prog->body, NULL);
    ir_node *body = lower_block(&L, prog->body);
    if (L.oom || L.nerr) {
        if (L.nerr > MAX_LOWER_ERRORS)
            rt_diag_add(&vm->errs, NULL, (rt_loc){0, 0, 0, 0}, "too many errors; stopping");
        if (L.oom && !L.nerr) {
            rt_diaglist_free(&vm->errs);
            rt_diaglist_init(&vm->errs);
            rt_diag_add(&vm->errs, NULL, (rt_loc){0, 0, 0, 0}, "out of memory");
            vm->errcode = 5;
        }
        ir_free(body);
        return NULL;
    }
    ir_unit *u = calloc(1, sizeof *u);
    if (!u) {
        ir_free(body);
        return NULL;
    }
    u->body = body;
    u->src = rt_source_retain(prog->src);
    u->echo = repl && body->nkids == 1 && body->kids[0]->op == IR_EXPR &&
              prog->body->nkids == 1 && prog->body->kids[0]->kind == AST_EXPR_STMT;
    return u;
}
