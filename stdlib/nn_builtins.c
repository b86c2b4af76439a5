/* nn_builtins.c - the language face of neural networks.
 *
 *   net = MLP("enc", [784, 400, 20], activation="relu")   # a network value
 *   h = net(x)                                            # x [B, 784] -> [B, 20]
 *   lin = Linear(3, 2, name="head")
 *   ln = LayerNorm("norm", 20)
 *
 * A network is a built-in function bound to an opaque "module" that holds
 * its structure.  Its weights live in the parameter store under dotted
 * names (MLP: NAME.I.weight [in, out], NAME.I.bias [out], with layer_norm
 * NAME.I.norm.weight / .bias; Linear and LayerNorm: NAME.weight,
 * NAME.bias).  They are created when the network is built (and again on a
 * call if the store was cleared), from an initializer seeded by the
 * module's seed and the parameter's name, so the same program gives the
 * same weights whatever the order of creation.  Each call reads them
 * through `param` messages, so svi() optimizes them, traces show them and
 * substitute() can replace them.  Dropout is active while gradients are
 * recorded (inside svi) or when the call says train=true (MC dropout at
 * prediction); train=false turns it off.
 *
 * Also plain functions: elu, leaky_relu, layer_norm, dropout,
 * xavier_uniform, kaiming_normal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "nn.h"
#include "nn_args.h"

#define NN_MAXLAYERS 64

enum { NN_LINEAR, NN_MLP, NN_LAYERNORM };
enum { NN_INIT_AUTO, NN_INIT_XAVIER, NN_INIT_KAIMING };

typedef struct nn_module {
    int kind;
    char *name;
    int nlin;                          /* number of affine layers */
    int64_t sizes[NN_MAXLAYERS + 1];
    int act, out_act;
    double act_k, out_k;
    double dropout;
    bool layer_norm, bias;
    int init;
    uint64_t seed;
    double eps;
    bk_dtype dtype;                    /* of the weights and the computation */
} nn_module;

static void module_free(void *p) {
    nn_module *m = p;
    free(m->name);
    free(m);
}

static char *module_repr(bk_ctx *ctx, void *p) {
    (void)ctx;
    nn_module *m = p;
    char buf[1024];
    size_t n = 0;
    const char *kind = m->kind == NN_MLP ? "MLP" : m->kind == NN_LINEAR ? "Linear" : "LayerNorm";
    n += (size_t)snprintf(buf, sizeof buf, "<%s %s [", kind, m->name);
    int ns = m->kind == NN_LAYERNORM ? 1 : m->nlin + 1;
    for (int i = 0; i < ns && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", i ? ", " : "", (long long)m->sizes[i]);
    if (n < sizeof buf && m->kind == NN_MLP)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "] %s>", nn_act_name(m->act));
    else if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, "]>");
    return strdup(buf);
}

uint64_t nn_name_stream(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

enum { P_WEIGHT, P_ZEROS, P_ONES };

static bk_tensor *initial_value(rt_vm *vm, const nn_module *m, const char *pname, int what, int64_t in,
                                int64_t out, int act) {
    bk_ctx *c = vm->bk;
    if (what == P_ZEROS) return bk_zeros(c, m->dtype, 1, (int64_t[]){out});
    if (what == P_ONES) return bk_full(c, m->dtype, 1, (int64_t[]){out}, 1.0);
    bk_rng r;
    bk_rng_init(&r, m->seed, nn_name_stream(pname));
    int init = m->init;
    bool relu_like = act == NN_ACT_RELU || act == NN_ACT_ELU || act == NN_ACT_LEAKY_RELU;
    if (init == NN_INIT_AUTO) init = relu_like ? NN_INIT_KAIMING : NN_INIT_XAVIER;
    bk_tensor *w = init == NN_INIT_KAIMING ? nn_init_kaiming(c, &r, in, out, sqrt(2.0))
                                           : nn_init_xavier(c, &r, in, out, 1.0);
    if (!w || m->dtype == BK_F64) return w;
    /* float32 weights: the same draws, rounded */
    bk_tensor *w32 = bk_cast(c, w, BK_F32);
    bk_release(w);
    return w32;
}

/* The value of parameter pname (created if missing), read through a param
 * message.  what: P_WEIGHT [in, out], P_ZEROS / P_ONES [out]. */
static bk_tensor *module_param(rt_vm *vm, const nn_module *m, const char *pname, int what, int64_t in,
                               int64_t out, int act, rt_loc loc) {
    rt_param *p = rt_param_find(vm, pname);
    int ndim = what == P_WEIGHT ? 2 : 1;
    int64_t shape[2] = {what == P_WEIGHT ? in : out, out};
    if (!p) {
        bool g = bk_set_grad_enabled(vm->bk, false);
        bk_tensor *init = initial_value(vm, m, pname, what, in, out, act);
        sl_constraint real = {0};
        p = init ? rt_param_create(vm, pname, init, &real, loc) : NULL;
        if (!init) rt_fail_bk(vm, loc);
        bk_release(init);
        bk_set_grad_enabled(vm->bk, g);
        if (!p) return NULL;
    } else {
        bool same = p->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = p->shape[d] == shape[d];
        if (same && p->u->dtype != (int8_t)m->dtype) {
            rt_error_loc(vm, loc, "parameter \"%s\" already exists as %s; the layer is %s (give each "
                         "network its own name, or clear_params())", pname,
                         p->u->dtype == BK_F32 ? "float32" : "float64",
                         m->dtype == BK_F32 ? "float32" : "float64");
            return NULL;
        }
        if (!same) {
            char want[64];
            if (ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
            else snprintf(want, sizeof want, "[%lld]", (long long)shape[0]);
            rt_error_loc(vm, loc, "parameter \"%s\" already exists with another shape; the layer needs %s "
                         "(give each network its own name, or clear_params())", pname, want);
            return NULL;
        }
    }
    rt_msg msg;
    memset(&msg, 0, sizeof msg);
    sl_constraint real = {0};
    msg.kind = RT_SITE_PARAM;
    msg.name = pname;
    msg.scale = 1.0;
    msg.loc = loc;
    msg.constraint = &real;
    if (rt_apply_message(vm, &msg)) return NULL;
    return msg.value;
}

/* Parameter names of affine layer i (MLP) or of the module itself. */
static void pname(const nn_module *m, int i, const char *suffix, char *buf, size_t n) {
    if (m->kind == NN_MLP) snprintf(buf, n, "%s.%d.%s", m->name, i, suffix);
    else snprintf(buf, n, "%s.%s", m->name, suffix);
}

/* Affine layer i of m on h (NULL h: only make sure the parameters exist). */
static bk_tensor *affine(rt_vm *vm, const nn_module *m, int i, bk_tensor *h, rt_loc loc) {
    char wn[320], bn[320];
    int64_t in = m->sizes[i], out = m->sizes[i + 1];
    int act = i == m->nlin - 1 ? m->out_act : m->act;
    pname(m, i, "weight", wn, sizeof wn);
    pname(m, i, "bias", bn, sizeof bn);
    bk_tensor *w = module_param(vm, m, wn, P_WEIGHT, in, out, act, loc);
    bk_tensor *b = w && m->bias ? module_param(vm, m, bn, P_ZEROS, in, out, act, loc) : NULL;
    if (!w || (m->bias && !b)) {
        bk_release(w);
        return NULL;
    }
    bk_tensor *r;
    if (!h) {
        r = bk_retain(w);
    } else {
        r = nn_linear(vm->bk, h, w, b);
        if (!r) rt_fail_bk(vm, loc);
    }
    bk_release(w);
    bk_release(b);
    return r;
}

static bk_tensor *norm(rt_vm *vm, const nn_module *m, int i, bk_tensor *h, rt_loc loc) {
    char gn[320], bn[320];
    int64_t size = m->kind == NN_LAYERNORM ? m->sizes[0] : m->sizes[i + 1];
    if (m->kind == NN_LAYERNORM) {
        pname(m, 0, "weight", gn, sizeof gn);
        pname(m, 0, "bias", bn, sizeof bn);
    } else {
        pname(m, i, "norm.weight", gn, sizeof gn);
        pname(m, i, "norm.bias", bn, sizeof bn);
    }
    bk_tensor *g = module_param(vm, m, gn, P_ONES, size, size, NN_ACT_NONE, loc);
    bk_tensor *b = g ? module_param(vm, m, bn, P_ZEROS, size, size, NN_ACT_NONE, loc) : NULL;
    bk_tensor *r = NULL;
    if (g && b) {
        if (!h) r = bk_retain(g);
        else if (!(r = nn_layer_norm(vm->bk, h, g, b, m->eps))) rt_fail_bk(vm, loc);
    }
    bk_release(g);
    bk_release(b);
    return r;
}

/* Create every parameter of m (when missing). */
static int module_setup(rt_vm *vm, const nn_module *m, rt_loc loc) {
    if (m->kind == NN_LAYERNORM) {
        bk_tensor *t = norm(vm, m, 0, NULL, loc);
        bk_release(t);
        return t ? 0 : -1;
    }
    for (int i = 0; i < m->nlin; i++) {
        bk_tensor *t = affine(vm, m, i, NULL, loc);
        if (!t) return -1;
        bk_release(t);
        if (m->layer_norm && i < m->nlin - 1) {
            if (!(t = norm(vm, m, i, NULL, loc))) return -1;
            bk_release(t);
        }
    }
    return 0;
}

static int module_call(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "train", NULL};
    if (rt_check_args(vm, c, 1, names)) return -1;
    const nn_module *m = ((rt_opaque *)c->self.u.o)->data;
    bk_tensor *x;
    double train;
    if (rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, -1, "train", bk_grad_enabled(vm->bk) ? 1 : 0, false, &train))
        return -1;
    int64_t in = m->sizes[0];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != in) {
        char s[64];
        return rt_error_arg(vm, c, 0, "%s: the input has shape %s; its last dimension must be %lld", m->name,
                            bk_shape_str(x, s, sizeof s), (long long)in);
    }
    /* the network computes in its dtype: an input of the other dtype is
     * converted first (a recorded cast, so gradients flow back to it) */
    bk_tensor *h = x->dtype == (int8_t)m->dtype ? bk_retain(x) : bk_cast(vm->bk, x, m->dtype);
    if (!h) return rt_error_bk(vm, c);
    if (m->kind == NN_LAYERNORM) {
        bk_tensor *r = norm(vm, m, 0, h, c->loc);
        bk_release(h);
        if (!r) return -1;
        *out = rt_tensor(r);
        return 0;
    }
    for (int i = 0; i < m->nlin && h; i++) {
        bk_tensor *y = affine(vm, m, i, h, c->loc);
        bk_release(h);
        h = y;
        if (!h) break;
        bool last = i == m->nlin - 1;
        if (!last && m->layer_norm) {
            y = norm(vm, m, i, h, c->loc);
            bk_release(h);
            if (!(h = y)) break;
        }
        y = nn_activate(vm->bk, last ? m->out_act : m->act, last ? m->out_k : m->act_k, h);
        bk_release(h);
        if (!(h = y)) {
            rt_fail_bk(vm, c->loc);
            break;
        }
        if (!last && m->dropout > 0 && train != 0) {
            y = nn_dropout(vm->bk, &vm->rng, h, m->dropout);
            bk_release(h);
            if (!(h = y)) rt_fail_bk(vm, c->loc);
        }
    }
    if (!h) return -1;
    *out = rt_tensor(h);
    return 0;
}

/* --------------------------------------------------------- construction --- */

int nn_act_arg(rt_vm *vm, const rt_call *c, const char *kw, int dflt, int *act) {
    const rt_value *v = rt_arg(c, -1, kw);
    *act = dflt;
    if (!v || v->tag == RT_NONE) return 0;
    if (v->tag != RT_STR) return rt_error_kw(vm, c, kw, "%s: %s must be a string such as \"relu\"", c->name, kw);
    int a = nn_act_lookup(((rt_str *)v->u.o)->s);
    if (a < 0)
        return rt_error_kw(vm, c, kw, "%s: unknown activation \"%s\" (relu, tanh, sigmoid, softplus, elu, "
                           "leaky_relu, none)", c->name, ((rt_str *)v->u.o)->s);
    *act = a;
    return 0;
}

static int init_arg(rt_vm *vm, const rt_call *c, int *init) {
    const char *s;
    *init = NN_INIT_AUTO;
    if (rt_arg_string(vm, c, -1, "init", false, &s)) return -1;
    if (!s || strcmp(s, "auto") == 0) return 0;
    if (strcmp(s, "xavier") == 0) *init = NN_INIT_XAVIER;
    else if (strcmp(s, "kaiming") == 0) *init = NN_INIT_KAIMING;
    else return rt_error_kw(vm, c, "init", "%s: init must be \"xavier\", \"kaiming\" or \"auto\", got \"%s\"", c->name, s);
    return 0;
}

int nn_size_arg(rt_vm *vm, const rt_call *c, int pos, const char *name, double v, int64_t *out) {
    if (!(v >= 1) || v != floor(v) || v > 1e9)
        return rt_error_arg(vm, c, pos, "%s: %s must be a positive integer, got %g", c->name, name, v);
    *out = (int64_t)v;
    return 0;
}

/* dtype="float64" (the default) or "float32". */
static int dtype_arg(rt_vm *vm, const rt_call *c, bk_dtype *dt) {
    const char *s;
    *dt = BK_F64;
    if (rt_arg_string(vm, c, -1, "dtype", false, &s)) return -1;
    if (!s || strcmp(s, "float64") == 0) return 0;
    if (strcmp(s, "float32") == 0) {
        *dt = BK_F32;
        return 0;
    }
    return rt_error_kw(vm, c, "dtype", "%s: dtype must be \"float64\" or \"float32\", got \"%s\"", c->name, s);
}

/* Common keywords: seed, dtype; wraps m as a callable value. */
static int finish_module(rt_vm *vm, const rt_call *c, nn_module *m, rt_value *out) {
    double seed;
    int rc = rt_arg_number(vm, c, -1, "seed", (double)vm->seed, false, &seed);
    if (rc == 0) rc = dtype_arg(vm, c, &m->dtype);
    if (rc == 0) m->seed = (uint64_t)seed;
    if (rc == 0 && !m->name) rc = rt_error(vm, c, "out of memory");
    if (rc == 0) rc = module_setup(vm, m, c->loc);
    if (rc) {
        module_free(m);
        return -1;
    }
    rt_opaque *o = rt_opaque_new("module", m, module_free);
    if (!o) {
        module_free(m);
        return rt_error(vm, c, "out of memory");
    }
    o->repr = module_repr;
    rt_builtin *b = rt_builtin_new(c->name, module_call, rt_obj_value(&o->h));
    rt_release(rt_obj_value(&o->h));
    if (!b) return rt_error(vm, c, "out of memory");
    *out = rt_obj_value(&b->h);
    return 0;
}

/* MLP(name, sizes, activation="relu", output_activation="none", dropout=0,
 *     layer_norm=false, init="auto", bias=true, seed=, dtype="float64") */
static int b_mlp(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"name", "sizes", "activation", "output_activation", "dropout",
                                        "layer_norm", "init", "bias", "seed", "alpha", "eps", "dtype", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const char *name;
    bk_tensor *sizes;
    double dropout, ln, bias, alpha, eps;
    if (rt_arg_string(vm, c, 0, "name", true, &name) || rt_arg_tensor(vm, c, 1, "sizes", true, &sizes) ||
        rt_arg_number(vm, c, -1, "dropout", 0, false, &dropout) ||
        rt_arg_number(vm, c, -1, "layer_norm", 0, false, &ln) ||
        rt_arg_number(vm, c, -1, "bias", 1, false, &bias) || rt_arg_number(vm, c, -1, "eps", 1e-5, false, &eps))
        return -1;
    if (sizes->ndim != 1 || sizes->numel < 2 || sizes->numel > NN_MAXLAYERS + 1)
        return rt_error_arg(vm, c, 1, "MLP: sizes must be a list of 2 to %d layer widths like [784, 400, 20]",
                            NN_MAXLAYERS + 1);
    if (!(dropout >= 0 && dropout < 1))
        return rt_error_kw(vm, c, "dropout", "MLP: dropout must be in [0, 1), got %g", dropout);
    nn_module *m = calloc(1, sizeof *m);
    if (!m) return rt_error(vm, c, "out of memory");
    m->kind = NN_MLP;
    m->nlin = (int)sizes->numel - 1;
    for (int i = 0; i < sizes->numel; i++)
        if (nn_size_arg(vm, c, 1, "every layer width", bk_get(sizes, i), &m->sizes[i])) {
            module_free(m);
            return -1;
        }
    if (nn_act_arg(vm, c, "activation", NN_ACT_RELU, &m->act) ||
        nn_act_arg(vm, c, "output_activation", NN_ACT_NONE, &m->out_act) || init_arg(vm, c, &m->init) ||
        rt_arg_number(vm, c, -1, "alpha", nn_act_default_k(m->act), false, &alpha)) {
        module_free(m);
        return -1;
    }
    m->act_k = alpha;
    m->out_k = nn_act_default_k(m->out_act);
    m->dropout = dropout;
    m->layer_norm = ln != 0;
    m->bias = bias != 0;
    m->eps = eps;
    m->name = strdup(name);
    return finish_module(vm, c, m, out);
}

/* Linear(in, out, name="linear", init="xavier", bias=true, seed=, dtype="float64") */
static int b_linear(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"in", "out", "name", "init", "bias", "seed", "dtype", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    double in, o, bias;
    const char *name;
    if (rt_arg_number(vm, c, 0, "in", 0, true, &in) || rt_arg_number(vm, c, 1, "out", 0, true, &o) ||
        rt_arg_string(vm, c, -1, "name", false, &name) || rt_arg_number(vm, c, -1, "bias", 1, false, &bias))
        return -1;
    nn_module *m = calloc(1, sizeof *m);
    if (!m) return rt_error(vm, c, "out of memory");
    m->kind = NN_LINEAR;
    m->nlin = 1;
    if (nn_size_arg(vm, c, 0, "in", in, &m->sizes[0]) || nn_size_arg(vm, c, 1, "out", o, &m->sizes[1]) ||
        init_arg(vm, c, &m->init)) {
        module_free(m);
        return -1;
    }
    m->act = m->out_act = NN_ACT_NONE;
    m->bias = bias != 0;
    m->name = strdup(name ? name : "linear");
    return finish_module(vm, c, m, out);
}

/* LayerNorm(name, size, eps=1e-5) */
static int b_layernorm(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"name", "size", "eps", "seed", "dtype", NULL};
    if (rt_check_args(vm, c, 2, names)) return -1;
    const char *name;
    double size, eps;
    if (rt_arg_string(vm, c, 0, "name", true, &name) || rt_arg_number(vm, c, 1, "size", 0, true, &size) ||
        rt_arg_number(vm, c, -1, "eps", 1e-5, false, &eps))
        return -1;
    nn_module *m = calloc(1, sizeof *m);
    if (!m) return rt_error(vm, c, "out of memory");
    m->kind = NN_LAYERNORM;
    if (nn_size_arg(vm, c, 1, "size", size, &m->sizes[0])) {
        module_free(m);
        return -1;
    }
    m->eps = eps;
    m->name = strdup(name);
    return finish_module(vm, c, m, out);
}

/* ------------------------------------------------------ plain functions --- */

static int ret(rt_vm *vm, const rt_call *c, bk_tensor *t, rt_value *out) {
    if (!t) return rt_error_bk(vm, c);
    *out = rt_tensor(t);
    return 0;
}

static int b_elu(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "alpha", NULL};
    bk_tensor *x;
    double k;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, 1, "alpha", 1.0, false, &k))
        return -1;
    return ret(vm, c, bk_elu(vm->bk, x, k), out);
}

static int b_leaky_relu(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "slope", NULL};
    bk_tensor *x;
    double k;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, 1, "slope", 0.01, false, &k))
        return -1;
    return ret(vm, c, bk_leaky_relu(vm->bk, x, k), out);
}

/* layer_norm(x, weight=none, bias=none, eps=1e-5) over the last axis */
static int b_layer_norm(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "weight", "bias", "eps", NULL};
    bk_tensor *x, *g, *b;
    double eps;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_tensor(vm, c, -1, "weight", false, &g) || rt_arg_tensor(vm, c, -1, "bias", false, &b) ||
        rt_arg_number(vm, c, -1, "eps", 1e-5, false, &eps))
        return -1;
    return ret(vm, c, nn_layer_norm(vm->bk, x, g, b, eps), out);
}

/* dropout(x, p, train=true) */
static int b_dropout(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"x", "p", "train", NULL};
    bk_tensor *x;
    double p, train;
    if (rt_check_args(vm, c, 2, names) || rt_arg_tensor(vm, c, 0, "x", true, &x) ||
        rt_arg_number(vm, c, 1, "p", 0, true, &p) || rt_arg_number(vm, c, -1, "train", 1, false, &train))
        return -1;
    if (!(p >= 0 && p < 1)) return rt_error_arg(vm, c, 1, "dropout: p must be in [0, 1), got %g", p);
    return ret(vm, c, train != 0 ? nn_dropout(vm->bk, &vm->rng, x, p) : bk_retain(x), out);
}

/* xavier_uniform([in, out], gain=1, seed=) and kaiming_normal([in, out],
 * gain=sqrt(2), seed=): without a seed they draw from the current stream. */
static int b_init(rt_vm *vm, const rt_call *c, rt_value *out) {
    static const char *const names[] = {"shape", "gain", "seed", NULL};
    bool xavier = strcmp(c->name, "xavier_uniform") == 0;
    bk_tensor *shape;
    double gain, seed;
    if (rt_check_args(vm, c, 1, names) || rt_arg_tensor(vm, c, 0, "shape", true, &shape) ||
        rt_arg_number(vm, c, -1, "gain", xavier ? 1.0 : sqrt(2.0), false, &gain) ||
        rt_arg_number(vm, c, -1, "seed", -1, false, &seed))
        return -1;
    if (shape->ndim != 1 || shape->numel != 2)
        return rt_error_arg(vm, c, 0, "%s: shape must be [fan_in, fan_out]", c->name);
    int64_t in = 0, o = 0;
    if (nn_size_arg(vm, c, 0, "fan_in", bk_get(shape, 0), &in) || nn_size_arg(vm, c, 0, "fan_out", bk_get(shape, 1), &o))
        return -1;
    bk_rng own, *r = &vm->rng;
    if (seed >= 0) {
        bk_rng_init(&own, (uint64_t)seed, 0);
        r = &own;
    }
    return ret(vm, c, xavier ? nn_init_xavier(vm->bk, r, in, o, gain) : nn_init_kaiming(vm->bk, r, in, o, gain), out);
}

const rt_builtin_def sl_nn_builtins[] = {
    {"MLP", b_mlp},
    {"Linear", b_linear},
    {"LayerNorm", b_layernorm},
    {"elu", b_elu},
    {"leaky_relu", b_leaky_relu},
    {"layer_norm", b_layer_norm},
    {"dropout", b_dropout},
    {"xavier_uniform", b_init},
    {"kaiming_normal", b_init},
    {NULL, NULL},
};
