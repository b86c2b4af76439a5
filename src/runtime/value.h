/* value.h - runtime values and the interface of built-in functions.
 *
 * A value is a small tagged struct passed by value; heap objects are
 * reference counted.  Every number is a tensor (a scalar is 0-d).
 * Ownership: functions returning an rt_value through an out pointer hand
 * over one reference; arguments are borrowed. */
#ifndef PPL_RUNTIME_VALUE_H
#define PPL_RUNTIME_VALUE_H

#include <stdbool.h>
#include <stdint.h>
#include "tensor.h"
#include "rng.h"
#include "diag.h"

typedef enum {
    RT_NONE = 0,
    RT_TENSOR,   /* t */
    RT_STR,      /* o: rt_str */
    RT_RECORD,   /* o: rt_record  ({a: 1}) */
    RT_LIST,     /* o: rt_list    (list of non-numeric values, e.g. strings) */
    RT_FUNC,     /* o: rt_func    (a def / model / guide) */
    RT_BUILTIN,  /* o: rt_builtin (a C function, maybe bound to a receiver) */
    RT_DIST,     /* o: sl_dist    (stdlib/dist.h) */
    RT_OPAQUE    /* o: rt_opaque  (optimizer specs, guides, fits, ...) */
} rt_tag;

typedef struct rt_obj rt_obj;
typedef struct rt_vm rt_vm;
typedef void (*rt_obj_free_fn)(rt_obj *);

/* Header of every heap object. */
struct rt_obj {
    int refcount;
    int tag;                /* rt_tag */
    rt_obj_free_fn free;    /* releases the object's contents and itself */
};

typedef struct rt_value {
    int tag;
    union {
        bk_tensor *t;
        rt_obj *o;
    } u;
} rt_value;

typedef struct rt_str {
    rt_obj h;
    size_t len;
    char s[];               /* NUL-terminated */
} rt_str;

typedef struct rt_record {
    rt_obj h;
    int n, cap;
    char **keys;
    rt_value *vals;
} rt_record;

typedef struct rt_list {
    rt_obj h;
    int n, cap;
    rt_value *items;
} rt_list;

/* Opaque objects carry a type name (for messages) and a destructor. */
typedef struct rt_opaque {
    rt_obj h;
    const char *type;       /* "Adam", "AutoNormal", "svi_fit", ... */
    void *data;
    void (*data_free)(void *data);
    /* optional: printed form (malloc'd) and field access (obj.name) */
    char *(*repr)(bk_ctx *ctx, void *data);
    int (*getattr)(rt_vm *vm, void *data, const char *name, rt_loc loc, rt_value *out);
    /* optional: the value as JSON text (malloc'd; NULL when out of memory,
     * which fails the whole conversion), for write_json; without it the
     * type name is written */
    char *(*to_json)(bk_ctx *ctx, void *data);
} rt_opaque;

static inline rt_value rt_none(void) { rt_value v = {RT_NONE, {0}}; return v; }
/* Wrap a tensor; takes over the caller's reference. */
static inline rt_value rt_tensor(bk_tensor *t) { rt_value v; v.tag = RT_TENSOR; v.u.t = t; return v; }
/* Wrap a heap object; takes over the caller's reference. */
static inline rt_value rt_obj_value(rt_obj *o) { rt_value v; v.tag = o->tag; v.u.o = o; return v; }

rt_value rt_retain(rt_value v);
void rt_release(rt_value v);
const char *rt_type_name(rt_value v);    /* "tensor", "string", "record", ... */

/* Constructors return RT_NONE-tagged value with u.o == NULL on OOM. */
rt_str *rt_str_new(const char *s, size_t len);
rt_record *rt_record_new(void);
/* Set (or replace) a field; takes over `v`'s reference. -1 on OOM. */
int rt_record_set(rt_record *r, const char *key, rt_value v);
/* Borrowed pointer to the field's value, or NULL. */
rt_value *rt_record_get(const rt_record *r, const char *key);
rt_list *rt_list_new(void);
int rt_list_push(rt_list *l, rt_value v);   /* takes over v */
rt_opaque *rt_opaque_new(const char *type, void *data, void (*data_free)(void *));

/* Shortest text that reads back to the same double ("42", "0.1"). */
void rt_format_number(double x, char *buf, size_t n);
/* Render a value for printing (REPL echo, print()).  malloc'd string. */
char *rt_value_repr(bk_ctx *ctx, rt_value v);

/* ------------------------------------------------------- built-ins --- */

typedef struct rt_vm rt_vm;

/* One call of a built-in function. */
typedef struct rt_call {
    int nargs;               /* positional */
    rt_value *args;          /* borrowed */
    rt_loc *argloc;          /* location of each positional argument */
    int nkw;                 /* keyword arguments */
    const char **kwnames;
    rt_value *kwargs;        /* borrowed */
    rt_loc *kwloc;
    rt_loc loc;              /* the whole call */
    const char *name;        /* the name it was called by (for messages) */
    rt_value self;           /* receiver for methods (d.log_prob): else NONE */
} rt_call;

/* A built-in returns 0 and sets *out (a new reference), or -1 after
 * reporting an error with rt_error / rt_error_at. */
typedef int (*rt_builtin_fn)(rt_vm *vm, const rt_call *call, rt_value *out);

typedef struct rt_builtin {
    rt_obj h;
    const char *name;
    rt_builtin_fn fn;
    rt_value self;           /* bound receiver (methods), else NONE */
} rt_builtin;

typedef struct rt_builtin_def {
    const char *name;
    rt_builtin_fn fn;
} rt_builtin_def;

/* A built-in value (name must outlive it: use a string literal); `self` is
 * retained (pass rt_none() for plain functions). */
rt_builtin *rt_builtin_new(const char *name, rt_builtin_fn fn, rt_value self);

/* Register a table of built-ins (ends with {NULL, NULL}) under their names
 * in the VM's global table.  -1 on OOM. */
int rt_register_builtins(rt_vm *vm, const rt_builtin_def *defs);

/* Report an error at the call's location (or at argument i when i >= 0,
 * or at a keyword argument's location via rt_error_kw). Always returns -1. */
int rt_error(rt_vm *vm, const rt_call *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rt_error_arg(rt_vm *vm, const rt_call *call, int i, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int rt_error_kw(rt_vm *vm, const rt_call *call, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Report an error at an explicit location.  Always returns -1. */
int rt_error_loc(rt_vm *vm, rt_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Report the backend's pending error (bk_errmsg) at the call.  Returns -1. */
int rt_error_bk(rt_vm *vm, const rt_call *call);

/* Moves the tensors of v (a tensor, or records and lists of them) that are
 * not 0-d to the backend's default device (bk_place_nd), in place.  -1 with
 * the backend's error set (v then holds what was moved so far). */
int rt_place_value(bk_ctx *ctx, rt_value *v);

/* Access to the VM's backend context and its current random generator. */
bk_ctx *rt_vm_bk(rt_vm *vm);
bk_rng *rt_vm_rng(rt_vm *vm);

/* Argument helpers: fetch argument `name` (position pos, or keyword name),
 * NULL when absent.  Unknown keywords and extra positionals are reported by
 * rt_check_args. */
const rt_value *rt_arg(const rt_call *call, int pos, const char *name);
/* Checks that every keyword is one of `names` (NULL-terminated) and that
 * there are at most `maxpos` positionals.  -1 with an error otherwise. */
int rt_check_args(rt_vm *vm, const rt_call *call, int maxpos, const char *const *names);
/* Coerce helpers: -1 with an error naming the argument when the type is
 * wrong.  rt_arg_tensor returns a borrowed tensor. */
int rt_arg_number(rt_vm *vm, const rt_call *call, int pos, const char *name,
                  double dflt, bool required, double *out);
int rt_arg_tensor(rt_vm *vm, const rt_call *call, int pos, const char *name,
                  bool required, bk_tensor **out);
int rt_arg_string(rt_vm *vm, const rt_call *call, int pos, const char *name,
                  bool required, const char **out);

#endif
