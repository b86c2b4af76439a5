/* test_program.c - the recorded-op fast path (src/backend/program.c) in the
 * MCMC potential: at many random points the replayed log density and
 * gradient are bit-identical to an interpreted evaluation (a second
 * potential with the fast path off) for several models (eight schools,
 * logistic regression, hierarchical Poisson, bounds that depend on other
 * latents, plates, the fused Normal density, a data matrix times a latent
 * vector, a MultivariateNormal with a constant covariance; indexing and a
 * product along an axis, compiled by program_native_ops.c;
 * test_program_native.c has the op-by-op cases), the gradient matches central
 * finite differences, and models whose ops depend on their random values
 * (an `if` on a latent, an index computed from one, a host read, a random
 * draw) fall back to interpretation with the same results.  SVI steps
 * replayed (AutoNormal, a hand-written guide) give the same losses bit for
 * bit as interpreted ones; a discrete guide site and a subsampled plate
 * are interpreted.  The backend
 * API is tested directly too (guards, escapes, pruning, constants folded
 * at record time and what is not folded, several outputs).  The values of
 * a draw (latent and deterministic sites) replayed equal the trace's bit
 * for bit, with guards and random draws falling back, and MCMC gives the
 * same draws with and without the fast path. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "mcmc.h"
#include "potential.h"
#include "program.h"
#include "rng.h"
#include "vm_fixture.h"

/* Data for the models below, as globals the tests pass as model arguments. */
static const char *DATA =
    "ys = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]\n"
    "sig = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]\n"
    "X = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.1, -0.4, 0.9], [-1.3, 0.6, 0.2]]\n"
    "yb = [1.0, 0.0, 1.0, 1.0, 0.0]\n"
    "tp = [94.3, 15.7, 62.9, 126.0, 5.24, 31.4]\n"
    "xp = [5.0, 1.0, 5.0, 14.0, 3.0, 19.0]\n"
    "tab = [1.0, 2.0, 3.0, 4.0, 5.0]\n"
    "i9 = arange(9)\n"
    "S9 = exp(abs(reshape(i9, [9, 1]) - reshape(i9, [1, 9])) * log(0.9))\n";

static const char *MODELS =
    "model schools(y, sigma) {\n"
    "  sample mu ~ Normal(0.0, 5.0)\n"
    "  sample tau ~ HalfCauchy(5.0)\n"
    "  plate school(len(y)) {\n"
    "    sample theta_raw ~ Normal(0.0, 1.0)\n"
    "    deterministic theta = mu + tau * theta_raw\n"
    "    observe y ~ Normal(theta, sigma)\n"
    "  }\n"
    "}\n"
    "model logreg(X, y) {\n"
    "  sample b ~ Normal(0.0, 5.0)\n"
    "  sample w ~ Normal(zeros(3), 5.0).to_event(1)\n"
    "  plate data(len(y)) {\n"
    "    observe y ~ Bernoulli(logits=b + X @ w)\n"
    "  }\n"
    "}\n"
    "model pumps(t, x) {\n"
    "  sample alpha ~ Exponential(1.0)\n"
    "  sample beta ~ Gamma(0.1, 1.0)\n"
    "  plate pump(len(x)) {\n"
    "    sample theta ~ Gamma(alpha, beta)\n"
    "    observe x ~ Poisson(theta * t)\n"
    "  }\n"
    "}\n"
    "model bounds(y) {\n"
    "  sample a ~ Beta(2.0, 3.0)\n"
    "  sample b ~ Uniform(0.0, 1.0 - a)\n"
    "  sample s ~ HalfNormal(2.0)\n"
    "  sample m ~ Normal(0.0, 1.0)\n"
    "  observe y[0] ~ Normal(m + b, s)\n"
    "}\n"
    /* indexing and a product over an axis (program_native_ops.c's kinds) */
    "model indexed(y) {\n"
    "  sample w ~ Normal(zeros(3), 1.0).to_event(1)\n"
    "  sample s ~ HalfNormal(1.0)\n"
    "  observe y[0] ~ Normal(w[0] * w[2] + prod(w), s)\n"
    "}\n"
    /* value-dependent branch: a guard (the comparison) */
    "model branch(y) {\n"
    "  sample m ~ Normal(0.0, 2.0)\n"
    "  if m > 0.0 {\n"
    "    observe y[0] ~ Normal(m, 1.0)\n"
    "  } else {\n"
    "    observe y[0] ~ Normal(2.0 * m, 3.0)\n"
    "  }\n"
    "}\n"
    /* an integer index computed from a latent: an escape (k is 2, 3 or 4,
     * never a truth value that could be a guard) */
    "model pick(y, tab) {\n"
    "  sample u ~ Normal(0.0, 1.0)\n"
    "  k = 2.0 + floor(3.0 * sigmoid(u))\n"
    "  observe y[0] ~ Normal(tab[k] * u, 1.0)\n"
    "}\n"
    /* deterministic sites: one of the latents, one of the data only (a
     * constant of the recording), one through a sum */
    "model dets(y) {\n"
    "  sample m ~ Normal(0.0, 2.0)\n"
    "  sample s ~ HalfNormal(1.0)\n"
    "  deterministic twice = 2.0 * m\n"
    "  deterministic ymean = sum(y) / 8.0\n"
    "  deterministic both = [m, s] * y[0:2]\n"
    "  plate n(len(y)) {\n"
    "    observe y ~ Normal(m, s)\n"
    "  }\n"
    "}\n"
    /* a random draw inside the model: its value would go stale */
    "model noisy(y) {\n"
    "  sample m ~ Normal(0.0, 1.0)\n"
    "  e = Normal(0.0, 1.0).sample()\n"
    "  observe y[0] ~ Normal(m + 0.0 * e, 1.0)\n"
    "}\n"
    /* MultivariateNormal, n = 9 (two blocks of the triangular solves and a
     * row left over): the constant factor, a loc depending on a latent */
    "model mvn(S) {\n"
    "  sample x ~ MultivariateNormal(zeros(9), covariance_matrix=S)\n"
    "  sample y ~ MultivariateNormal(0.5 * x, covariance_matrix=S)\n"
    "}\n";

typedef struct pair {
    rt_vm *vm;
    rt_record *data;
    inf_potential *fast, *slow;
} pair;

static pair make_pair(const char *model, const char *a0, const char *a1, const char *g0, const char *g1) {
    char *src = malloc(strlen(DATA) + strlen(MODELS) + 1);
    strcpy(src, DATA);
    strcat(src, MODELS);
    pair P = {.vm = vm_running(src)};
    free(src);
    P.data = rt_record_new();
    rt_record_set(P.data, a0, rt_retain(*rt_global_get(P.vm, g0)));
    if (a1) rt_record_set(P.data, a1, rt_retain(*rt_global_get(P.vm, g1)));
    rt_func *f = (rt_func *)rt_global_get(P.vm, model)->u.o;
    ck_assert_msg(inf_potential_init(P.vm, f, P.data, (rt_loc){0}, &P.fast) == 0, "%s", rt_vm_errmsg(P.vm));
    ck_assert(inf_potential_init(P.vm, f, P.data, (rt_loc){0}, &P.slow) == 0);
    P.slow->fast = false;
    return P;
}

static void free_pair(pair *P) {
    inf_potential_free(P->fast);
    inf_potential_free(P->slow);
    rt_release(rt_obj_value(&P->data->h));
    rt_vm_free(P->vm);
}

static bool same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* n random points uniform in (-2, 2) (and a few far out): fast == slow, bit
 * for bit; returns how many evaluations the program replayed. */
static void compare_points(pair *P, int n, uint64_t seed) {
    int d = (int)P->fast->dim;
    double *q = malloc(sizeof *q * (size_t)d), *g1 = malloc(sizeof *g1 * (size_t)d),
           *g2 = malloc(sizeof *g2 * (size_t)d);
    bk_rng r;
    bk_rng_init(&r, seed, 0);
    for (int t = 0; t < n; t++) {
        double scale = t % 10 == 9 ? 12.0 : 2.0;
        for (int i = 0; i < d; i++) q[i] = scale * (2 * bk_rng_uniform(&r) - 1);
        double l1, l2;
        bool wantg = t % 4 != 3;
        ck_assert_msg(inf_potential_eval(P->fast, q, &l1, wantg ? g1 : NULL, NULL) == 0, "%s",
                      rt_vm_errmsg(P->vm));
        ck_assert(inf_potential_eval(P->slow, q, &l2, wantg ? g2 : NULL, NULL) == 0);
        ck_assert_msg(same(l1, l2), "point %d: logp %.17g (fast) vs %.17g", t, l1, l2);
        for (int i = 0; wantg && i < d; i++)
            ck_assert_msg(same(g1[i], g2[i]), "point %d: grad[%d] %.17g (fast) vs %.17g", t, i, g1[i], g2[i]);
    }
    free(q);
    free(g1);
    free(g2);
}

/* central differences of the fast potential at q */
static void check_fd(inf_potential *p, const double *q0) {
    int d = (int)p->dim;
    double *q = malloc(sizeof *q * (size_t)d), *g = malloc(sizeof *g * (size_t)d), lp;
    memcpy(q, q0, sizeof *q * (size_t)d);
    ck_assert(inf_potential_eval(p, q, &lp, g, NULL) == 0);
    for (int i = 0; i < d; i++) {
        double h = 1e-6, lpp, lpm, x = q[i];
        q[i] = x + h;
        ck_assert(inf_potential_eval(p, q, &lpp, NULL, NULL) == 0);
        q[i] = x - h;
        ck_assert(inf_potential_eval(p, q, &lpm, NULL, NULL) == 0);
        q[i] = x;
        double fd = (lpp - lpm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dq[%d]: %.10g vs %.10g", i, g[i], fd);
    }
    free(q);
    free(g);
}

static void fast_model_case(const char *model, const char *a0, const char *a1, const char *g0, const char *g1,
                            bool native) {
    pair P = make_pair(model, a0, a1, g0, g1);
    compare_points(&P, 200, 7);
    ck_assert_msg(P.fast->fast_state == 1, "%s: no program (%s)", model, P.fast->fast_why);
    ck_assert(P.fast->prog && bk_prog_len(P.fast->prog) > 0);
    ck_assert_msg(bk_prog_native(P.fast->prog) == native, "%s: native %d", model, !native);
    ck_assert_int_eq(P.fast->fast_verify, 0); /* the checks passed */
    ck_assert(P.slow->prog == NULL);
    double *q = calloc((size_t)P.fast->dim, sizeof *q);
    for (int i = 0; i < P.fast->dim; i++) q[i] = 0.3 - 0.17 * i;
    check_fd(P.fast, q);
    free(q);
    free_pair(&P);
}

START_TEST(replay_eight_schools) { fast_model_case("schools", "y", "sigma", "ys", "sig", true); }
END_TEST
START_TEST(replay_logistic_regression) { fast_model_case("logreg", "X", "y", "X", "yb", true); }
END_TEST
START_TEST(replay_through_ops) { fast_model_case("indexed", "y", NULL, "ys", NULL, true); }
END_TEST
START_TEST(replay_hierarchical_poisson) { fast_model_case("pumps", "t", "x", "tp", "xp", true); }
END_TEST
START_TEST(replay_dependent_bounds) { fast_model_case("bounds", "y", NULL, "ys", NULL, true); }
END_TEST
START_TEST(replay_mvnormal) { fast_model_case("mvn", "S", NULL, "S9", NULL, true); }
END_TEST

/* The branch on m > 0 is a guard: points on the other side than the
 * recording are evaluated by interpretation, with the same results. */
START_TEST(fallback_value_dependent_if) {
    pair P = make_pair("branch", "y", NULL, "ys", NULL);
    compare_points(&P, 200, 11);
    ck_assert(P.fast->fast_state == 1);
    ck_assert(P.fast->fast_misses > 0 && P.fast->fast_replays > 0);
    free_pair(&P);
}
END_TEST

START_TEST(fallback_index_from_latent) {
    pair P = make_pair("pick", "y", "tab", "ys", "tab");
    compare_points(&P, 100, 13);
    ck_assert_int_eq(P.fast->fast_state, 2);
    ck_assert(P.fast->prog == NULL && P.fast->fast_replays == 0);
    free_pair(&P);
}
END_TEST

START_TEST(fallback_random_draw) {
    pair P = make_pair("noisy", "y", NULL, "ys", NULL);
    double q = 0.4, lp, g;
    ck_assert(inf_potential_eval(P.fast, &q, &lp, &g, NULL) == 0);
    ck_assert_int_eq(P.fast->fast_state, 2);
    ck_assert_msg(strstr(P.fast->fast_why, "random") != NULL, "%s", P.fast->fast_why);
    free_pair(&P);
}
END_TEST

/* The backend API directly: f(x) = sum(exp(x) * c) + (x0 > 0 ? ...) */
START_TEST(program_api) {
    bk_ctx *c = bk_ctx_new(NULL);
    double xv[3] = {0.1, -0.4, 0.7}, cv[3] = {2.0, 3.0, -1.0};
    bk_tensor *k = bk_from_f64(c, 1, (int64_t[]){3}, cv);
    ck_assert(bk_prog_begin(c) == 0);
    ck_assert(bk_prog_recording(c));
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){3}, xv);
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    bk_tensor *e = bk_unop(c, BK_OP_EXP, x);
    bk_tensor *dead = bk_unop(c, BK_OP_SIN, x); /* not needed by the output: pruned */
    bk_tensor *m = bk_mul(c, e, k);
    bk_tensor *m1 = bk_scalar(c, -1.0);
    bk_tensor *pos = bk_binop(c, BK_OP_GT, x, m1);
    ck_assert(bk_get(pos, 0) == 1); /* a read of a comparison: a guard */
    bk_tensor *s = bk_sum_all(c, m);
    bk_prog *p = bk_prog_end(c, s, NULL, 0);
    ck_assert(p != NULL);
    ck_assert(!bk_prog_recording(c));
    ck_assert_uint_eq(bk_prog_len(p), 4); /* exp, mul, gt (the guard), sum */
    ck_assert(bk_prog_native(p));
    double at[3] = {0.3, 0.2, -0.5}, v, g[3];
    ck_assert_int_eq(bk_prog_run(p, c, at, &v, g), 0);
    double want = 0;
    for (int i = 0; i < 3; i++) want += exp(at[i]) * cv[i];
    ck_assert(fabs(v - want) < 1e-14 * fabs(want));
    for (int i = 0; i < 3; i++) ck_assert(fabs(g[i] - exp(at[i]) * cv[i]) < 1e-14);
    double bad[3] = {0.3, -2.0, 0.0}; /* x1 > -1 fails: the guard stops the replay */
    ck_assert_int_eq(bk_prog_run(p, c, bad, &v, g), 1);
    ck_assert_uint_eq(bk_tape_len(c), 0);
    bk_prog_free(p);
    /* a host read of a continuous value refuses the recording */
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *y = bk_from_f64(c, 1, (int64_t[]){3}, xv);
    bk_prog_input(c, y, 0);
    bk_tensor *ey = bk_unop(c, BK_OP_EXP, y);
    (void)bk_item(ey);
    bk_tensor *sy = bk_sum_all(c, ey);
    char why[160];
    ck_assert(bk_prog_end(c, sy, why, sizeof why) == NULL);
    ck_assert_msg(strstr(why, "read by the host") != NULL, "%s", why);
    bk_release(x), bk_release(e), bk_release(dead), bk_release(m), bk_release(pos), bk_release(s);
    bk_release(y), bk_release(ey), bk_release(sy), bk_release(k), bk_release(m1);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

/* Tensors a test makes, released together at its end. */
typedef struct pool {
    bk_tensor *t[64];
    int n;
} pool;

static bk_tensor *K(pool *p, bk_tensor *t) {
    ck_assert(t != NULL && p->n < 64);
    return p->t[p->n++] = t;
}

static void pool_free(pool *p) {
    while (p->n > 0) bk_release(p->t[--p->n]);
}

/* The op list as bk_prog_dump writes it. */
static char *dump_of(const bk_prog *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert(f != NULL);
    bk_prog_dump(p, f);
    fclose(f);
    return buf;
}

/* Ops on constants only are computed once, when recording, and are not in
 * the program (log(c) here); ops on an input (log(exp(x))) or on a noise
 * input (a random value drawn afresh by every replay) are recorded and
 * replayed.  A read of a comparison of constants is no guard; one of an
 * input is. */
START_TEST(constant_folding) {
    bk_ctx *c = bk_ctx_new(NULL);
    pool P = {.n = 0};
    double xv[3] = {0.1, -0.4, 0.7}, cv[3] = {2.0, 3.0, 0.5};
    bk_tensor *k = K(&P, bk_from_f64(c, 1, (int64_t[]){3}, cv));
    bk_rng rng, rng0;
    bk_rng_init(&rng, 5, 0);
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *x = K(&P, bk_from_f64(c, 1, (int64_t[]){3}, xv));
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    rng0 = rng;
    bk_tensor *nz = K(&P, bk_rand_normal(c, &rng, 1, (int64_t[]){3})); /* a noise input (bk_prog_noise) */
    bk_tensor *lk = K(&P, bk_unop(c, BK_OP_LOG, k));                  /* constants only: folded */
    bk_tensor *kpos = K(&P, bk_binop(c, BK_OP_GT, k, lk));            /* a comparison of constants */
    ck_assert(bk_get(kpos, 0) == 1);                           /* ... read: no guard */
    bk_tensor *lx = K(&P, bk_unop(c, BK_OP_LOG, K(&P, bk_unop(c, BK_OP_EXP, x)))); /* on the input: recorded */
    bk_tensor *xpos = K(&P, bk_binop(c, BK_OP_GT, lx, K(&P, bk_scalar(c, -1.0))));
    ck_assert(bk_get(xpos, 0) == 1);                           /* ... read: a guard */
    bk_tensor *t1 = K(&P, bk_mul(c, lx, lk));
    bk_tensor *t2 = K(&P, bk_mul(c, nz, lk));                         /* on noise: recorded */
    bk_tensor *s = K(&P, bk_sum_all(c, K(&P, bk_add(c, t1, t2))));
    char why[160];
    bk_prog *p = bk_prog_end(c, s, why, sizeof why);
    ck_assert_msg(p != NULL, "%s", why);
    char *d = dump_of(p);
    /* exp, log, gt (guarded), mul, mul, add, sum: no log of the constants */
    ck_assert_msg(bk_prog_len(p) == 7, "%s", d);
    ck_assert_msg(strstr(d, "log(const") == NULL, "%s", d);
    ck_assert_msg(strstr(d, "gt(const") == NULL, "%s", d);
    ck_assert_msg(strstr(d, "guarded") != NULL, "%s", d);
    free(d);
    /* a replay at another point, with the noise drawn again from rng0's stream */
    double at[3] = {0.3, 0.2, -0.5}, g[3];
    bk_rng r2 = rng0;
    bk_prog_io io = {.x = at, .rng = &r2, .grad = g};
    ck_assert_int_eq(bk_prog_exec(p, c, &io), 0);
    bk_rng r3 = rng0;
    double want = 0;
    for (int i = 0; i < 3; i++) want += log(exp(at[i])) * log(cv[i]) + bk_rng_normal(&r3) * log(cv[i]);
    ck_assert_msg(fabs(io.value - want) < 1e-13, "%.17g vs %.17g", io.value, want);
    for (int i = 0; i < 3; i++) ck_assert(fabs(g[i] - log(cv[i])) < 1e-14);
    /* the guard on the input's comparison stops a replay where it fails */
    double bad[3] = {-3.0, 0.0, 0.0};
    r2 = rng0;
    ck_assert_int_eq(bk_prog_exec(p, c, &io), 0);
    io.x = bad;
    r2 = rng0;
    ck_assert_int_eq(bk_prog_exec(p, c, &io), 1);
    bk_prog_free(p);
    pool_free(&P);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

/* Several outputs (bk_prog_output): an input itself, an op's value and a
 * constant, written in registration order; no scalar output needed. */
START_TEST(program_outputs) {
    bk_ctx *c = bk_ctx_new(NULL);
    pool P = {.n = 0};
    double xv[2] = {0.5, -1.5}, cv[2] = {4.0, 8.0};
    bk_tensor *k = K(&P, bk_from_f64(c, 1, (int64_t[]){2}, cv));
    bool g = bk_set_grad_enabled(c, false);
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *x = K(&P, bk_from_f64(c, 1, (int64_t[]){2}, xv));
    bk_prog_input(c, x, 0);
    bk_tensor *e = K(&P, bk_mul(c, K(&P, bk_unop(c, BK_OP_EXP, x)), k));
    bk_tensor *half = K(&P, bk_unop(c, BK_OP_SQRT, k));
    bk_prog_output(c, x);
    bk_prog_output(c, e);
    bk_prog_output(c, half);
    bk_prog *p = bk_prog_end(c, NULL, NULL, 0);
    ck_assert(p != NULL);
    ck_assert_int_eq(bk_prog_outputs_numel(p), 6);
    ck_assert_uint_eq(bk_prog_len(p), 2);
    ck_assert(bk_prog_native(p));
    double at[2] = {0.25, 2.0}, v[6];
    bk_prog_io io = {.x = at, .outs = v};
    ck_assert_int_eq(bk_prog_exec(p, c, &io), 0);
    ck_assert(isnan(io.value));
    double want[6] = {0.25, 2.0, exp(0.25) * 4.0, exp(2.0) * 8.0, 2.0, sqrt(8.0)};
    ck_assert_mem_eq(v, want, sizeof want);
    bk_prog_free(p);
    pool_free(&P);
    bk_set_grad_enabled(c, g);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

/* The Normal density's log(scale) is a constant of the recording when the
 * scale is data (eight schools' sigma: four inputs, three of them
 * constants), and stays in the kernel when the scale is a latent. */
START_TEST(normal_log_scale_folded) {
    pair P = make_pair("schools", "y", "sigma", "ys", "sig");
    compare_points(&P, 50, 3);
    ck_assert(P.fast->prog);
    char *d = dump_of(P.fast->prog);
    char *obs = strstr(d, "fused(const[8], s"); /* observe y ~ Normal(theta, sigma) */
    ck_assert_msg(obs && strncmp(strchr(obs + 17, ','), ", const[8], const[8])", 21) == 0, "%s", d);
    ck_assert_msg(strstr(d, "log(") == NULL, "%s", d);
    free(d);
    free_pair(&P);
    P = make_pair("bounds", "y", NULL, "ys", NULL);
    compare_points(&P, 50, 4);
    ck_assert(P.fast->prog);
    d = dump_of(P.fast->prog);
    /* Normal(m + b, s) with the latent s: three inputs, the last a slot */
    bool three = false;
    for (char *l = strstr(d, "fused("); l; l = strstr(l + 1, "fused(")) {
        char *e = strchr(l, ')');
        int commas = 0;
        for (char *q = l; q < e; q++) commas += *q == ',';
        if (commas == 2 && e[-1] != ']') three = true;
    }
    ck_assert_msg(three, "%s", d);
    free(d);
    free_pair(&P);
}
END_TEST

/* HalfCauchy's fused log density gives the values and gradients of the op
 * chain it replaces, bit for bit: one element (the tape's scalar records)
 * and a vector (its tensor rules), inside and outside the support. */
static bk_tensor *hc_chain(bk_ctx *c, pool *P, bk_tensor *x, double scale) {
    bk_tensor *sc = K(P, bk_scalar(c, scale)), *zero = K(P, bk_scalar(c, 0.0));
    bk_tensor *ok = K(P, bk_binop(c, BK_OP_GE, x, zero));
    bk_tensor *v = K(P, bk_where(c, ok, x, zero));
    bk_tensor *z = K(P, bk_div(c, v, sc));
    bk_tensor *l = K(P, bk_add(c, K(P, bk_unop(c, BK_OP_LOG1P, K(P, bk_unop(c, BK_OP_SQUARE, z)))),
                               K(P, bk_unop(c, BK_OP_LOG, sc))));
    bk_tensor *r = K(P, bk_add(c, K(P, bk_mul(c, l, K(P, bk_scalar(c, -1.0)))),
                               K(P, bk_scalar(c, 0.69314718055994530942 - 1.1447298858494001741))));
    bool all = true;
    for (int64_t k = 0; k < ok->numel; k++) all = all && bk_get(ok, k) != 0;
    return all ? r : K(P, bk_where(c, ok, r, K(P, bk_scalar(c, -INFINITY))));
}

static void hc_case(int n, const double *u0, double scale) {
    bk_ctx *c = bk_ctx_new(NULL);
    double lp[2][8], g[2][8];
    for (int way = 0; way < 2; way++) {
        pool P = {.n = 0};
        bk_tensor *u = K(&P, n == 1 ? bk_scalar(c, u0[0]) : bk_from_f64(c, 1, (int64_t[]){n}, u0));
        bk_set_requires_grad(u, true);
        bk_tensor *x = K(&P, bk_mul(c, u, K(&P, bk_scalar(c, 1.5)))); /* an op's output, as a latent's value is */
        bk_tensor *sc = K(&P, bk_scalar(c, scale));
        sl_dist *d = sl_dist_make(c, sl_find_family("HalfCauchy"), 0, 1, &sc);
        ck_assert(d != NULL);
        bk_tensor *l = way == 0 ? K(&P, sl_log_prob(c, d, x)) : hc_chain(c, &P, x, scale);
        ck_assert_int_eq(l->numel, n);
        bk_copy_out(l, lp[way]);
        bk_tensor *loss = K(&P, bk_add(c, K(&P, bk_sum_all(c, l)), K(&P, bk_scalar(c, 0.25))));
        ck_assert(bk_backward(c, loss) == 0);
        bk_copy_out(u->grad, g[way]);
        sl_dist_release(d);
        bk_tape_reset(c);
        pool_free(&P);
    }
    ck_assert_mem_eq(lp[0], lp[1], sizeof(double) * (size_t)n);
    ck_assert_mem_eq(g[0], g[1], sizeof(double) * (size_t)n);
    bk_ctx_free(c);
}

START_TEST(halfcauchy_fused_same_bits) {
    double one[1] = {0.7}, neg[1] = {-0.3}, vec[6] = {0.7, 2.5, 1e-3, 0.0, 13.0, 0.4},
           out[6] = {0.7, -2.5, 1e-3, 0.0, 13.0, -0.4};
    hc_case(1, one, 5.0);
    hc_case(1, neg, 5.0);
    hc_case(6, vec, 2.0);
    hc_case(6, out, 0.5);
    for (int t = 0; t < 50; t++) { /* many magnitudes */
        double v[6];
        for (int i = 0; i < 6; i++) v[i] = exp(0.37 * (t - 25) + i);
        hc_case(1, v, 3.0);
        hc_case(6, v, 3.0);
    }
}
END_TEST

/* The values of a draw: the trace's latent and deterministic values,
 * bit for bit (trace order; a deterministic site of data only included) */
static int64_t trace_draw_values(inf_potential *p, const double *q, double *v, int64_t n) {
    rt_trace tr;
    double lp;
    ck_assert(inf_potential_eval(p, q, &lp, NULL, &tr) == 0);
    int64_t m = 0;
    for (int i = 0; i < tr.n; i++) {
        rt_site *s = &tr.sites[i];
        if (s->kind != RT_SITE_SAMPLE && s->kind != RT_SITE_DETERMINISTIC) continue;
        for (int64_t k = 0; k < s->value->numel; k++, m++)
            if (m < n) v[m] = bk_get(s->value, k);
    }
    rt_trace_clear(&tr);
    return m;
}

static void values_case(const char *model, const char *a0, const char *a1, const char *g0, const char *g1,
                        bool native) {
    pair P = make_pair(model, a0, a1, g0, g1);
    int d = (int)P.fast->dim;
    double q[64], v[64], w[64];
    for (int i = 0; i < d; i++) q[i] = 0.1 * i - 0.3;
    int64_t n = trace_draw_values(P.slow, q, w, 64);
    ck_assert(n <= 64);
    ck_assert_int_eq(inf_potential_values(P.fast, q, v, n + 1), 1); /* a wrong count: not done */
    ck_assert_int_eq(P.fast->vals_state, 2);
    inf_potential_fast_reset(P.fast);
    bk_rng r;
    bk_rng_init(&r, 9, 0);
    for (int t = 0; t < 100; t++) {
        for (int i = 0; i < d; i++) q[i] = 3 * (2 * bk_rng_uniform(&r) - 1);
        ck_assert_int_eq(inf_potential_values(P.fast, q, v, n), 0);
        ck_assert_int_eq(trace_draw_values(P.slow, q, w, n), n);
        ck_assert_msg(memcmp(v, w, sizeof *v * (size_t)n) == 0, "%s: point %d", model, t);
    }
    ck_assert_int_eq(P.fast->vals_state, 1);
    ck_assert_int_eq(P.fast->vals_verify, 0);
    if (native) {
        char *dd = dump_of(P.fast->vprog);
        ck_assert_msg(bk_prog_native(P.fast->vprog), "%s", dd);
        free(dd);
    }
    ck_assert_int_eq(inf_potential_values(P.slow, q, v, n), 1); /* fast off: the trace answers */
    free_pair(&P);
}

START_TEST(values_replay) {
    values_case("schools", "y", "sigma", "ys", "sig", true);
    values_case("dets", "y", NULL, "ys", NULL, false); /* (stack: through the ops) */
    values_case("logreg", "X", "y", "X", "yb", true); /* no deterministic site */
}
END_TEST

/* A guard of the values program sends the points past it to the trace;
 * a model that draws random numbers gets no values program. */
START_TEST(values_fallback) {
    pair P = make_pair("branch", "y", NULL, "ys", NULL);
    double q = 0.5, v;
    ck_assert_int_eq(inf_potential_values(P.fast, &q, &v, 1), 0);
    ck_assert(v == 0.5 && P.fast->vals_state == 1);
    q = -0.5;
    ck_assert_int_eq(inf_potential_values(P.fast, &q, &v, 1), 1);
    q = 0.75;
    ck_assert_int_eq(inf_potential_values(P.fast, &q, &v, 1), 0);
    ck_assert(v == 0.75);
    free_pair(&P);
    P = make_pair("noisy", "y", NULL, "ys", NULL);
    q = 0.4;
    ck_assert_int_eq(inf_potential_values(P.fast, &q, &v, 1), 0); /* the recording run's own values */
    ck_assert(v == 0.4);
    ck_assert_int_eq(P.fast->vals_state, 2);
    ck_assert_int_eq(inf_potential_values(P.fast, &q, &v, 1), 1);
    ck_assert(P.fast->vprog == NULL);
    free_pair(&P);
}
END_TEST

/* MCMC with and without the fast path: the same draws (deterministic
 * sites included) and sampler columns, for the diagonal and dense metrics */
START_TEST(mcmc_fast_same_draws) {
    pair P = make_pair("dets", "y", NULL, "ys", NULL);
    rt_func *f = (rt_func *)rt_global_get(P.vm, "dets")->u.o;
    for (int dense = 0; dense < 2; dense++) {
        inf_mcmc *m[2];
        for (int nf = 0; nf < 2; nf++) {
            inf_mcmc_opts o = {.chains = 2, .warmup = 150, .samples = 100, .max_depth = 10, .target_accept = 0.8,
                               .dense = dense, .seed = 3, .threads = 1, .no_fast = nf};
            ck_assert_msg(inf_mcmc_run(P.vm, f, P.data, &o, (rt_loc){0}, &m[nf]) == 0, "%s", rt_vm_errmsg(P.vm));
        }
        ck_assert_int_eq(m[0]->nnames, 2 + 1 + 1 + 2);
        ck_assert_mem_eq(m[0]->draws, m[1]->draws, sizeof(double) * 200 * (size_t)m[0]->nnames);
        for (int c = 0; c < 2; c++) {
            ck_assert_mem_eq(m[0]->out[c].energy, m[1]->out[c].energy, sizeof(double) * 100);
            ck_assert_mem_eq(m[0]->out[c].n_leapfrog, m[1]->out[c].n_leapfrog, sizeof(double) * 100);
        }
        inf_mcmc_free(m[0]);
        inf_mcmc_free(m[1]);
    }
    free_pair(&P);
}
END_TEST

/* ---------------------------------------------------------------- SVI --- */

static const char *SVI_MODELS =
    "ys = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]\n"
    "sig = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]\n"
    "model schools(y, sigma) {\n"
    "  sample mu ~ Normal(0.0, 5.0)\n"
    "  sample tau ~ HalfCauchy(5.0)\n"
    "  plate school(len(y)) {\n"
    "    sample theta_raw ~ Normal(0.0, 1.0)\n"
    "    observe y ~ Normal(mu + tau * theta_raw, sigma)\n"
    "  }\n"
    "}\n"
    "model sensor(y) {\n"
    "  sample t ~ Normal(15.0, 2.0)\n"
    "  observe y ~ Normal(t, 0.75)\n"
    "}\n"
    "guide sensor_q(y) {\n"
    "  param a = 15.0\n"
    "  param b: positive = 1.0\n"
    "  sample t ~ Normal(a, b)\n"
    "}\n"
    "model coin(y) {\n"
    "  sample z ~ Bernoulli(0.3)\n"
    "  observe y ~ Normal(2.0 * z, 1.0)\n"
    "}\n"
    "guide coin_q(y) {\n"
    "  param q: unit_interval = 0.5\n"
    "  sample z ~ Bernoulli(q)\n"
    "}\n"
    "model sub(y) {\n"
    "  sample m ~ Normal(0.0, 3.0)\n"
    "  plate data(len(y), subsample=3) as idx {\n"
    "    observe y[idx] ~ Normal(m, 2.0)\n"
    "  }\n"
    "}\n";

/* The losses of svi(...) run on a fresh VM (the parameter store is the
 * VM's); *replays: how many steps the fast path replayed. */
static bk_tensor *svi_losses(const char *call, long *replays) {
    char *src = malloc(strlen(SVI_MODELS) + strlen(call) + 64);
    sprintf(src, "%sf = %s\nl = f.losses\n", SVI_MODELS, call);
    rt_vm *vm = vm_running(src);
    free(src);
    bk_tensor *l = bk_detach(vm->bk, rt_global_get(vm, "l")->u.t);
    const rt_opaque *o = (const rt_opaque *)rt_global_get(vm, "f")->u.o;
    *replays = ((const inf_result *)o->data)->fast_replays;
    double *v = malloc(sizeof *v * (size_t)l->numel);
    bk_copy_out(l, v);
    bk_ctx *c = bk_ctx_new(NULL); /* (outlives the VM) */
    bk_tensor *r = bk_from_f64(c, 1, &l->numel, v);
    free(v);
    bk_release(l);
    rt_vm_free(vm);
    return r;
}

/* svi(...) with the fast path and without: the same losses bit for bit;
 * returns how many steps were replayed */
static long svi_pair(const char *call_fast, const char *call_slow, long steps) {
    long r1, r2;
    bk_tensor *l1 = svi_losses(call_fast, &r1), *l2 = svi_losses(call_slow, &r2);
    ck_assert_int_eq(l1->numel, steps);
    ck_assert_int_eq(l2->numel, steps);
    for (int64_t k = 0; k < steps; k++)
        ck_assert_msg(bk_get(l1, k) == bk_get(l2, k), "step %lld: loss %.17g (fast) vs %.17g", (long long)k,
                      bk_get(l1, k), bk_get(l2, k));
    ck_assert_int_eq(r2, 0);
    bk_ctx *c1 = l1->ctx, *c2 = l2->ctx;
    bk_release(l1);
    bk_release(l2);
    bk_ctx_free(c1);
    bk_ctx_free(c2);
    return r1;
}

START_TEST(svi_replay_autonormal) {
    long r = svi_pair("svi(schools, AutoNormal(schools), {y: ys, sigma: sig}, steps=300, seed=3, summary_samples=1)",
                      "svi(schools, AutoNormal(schools), {y: ys, sigma: sig}, steps=300, seed=3, summary_samples=1, "
                      "fast=false)", 300);
    ck_assert_int_ge(r, 290); /* all but the recorded and the checked steps */
}
END_TEST

START_TEST(svi_replay_user_guide) {
    long r = svi_pair("svi(sensor, sensor_q, {y: 9.5}, steps=200, seed=5, summary_samples=1)",
                      "svi(sensor, sensor_q, {y: 9.5}, steps=200, seed=5, summary_samples=1, fast=false)", 200);
    ck_assert_int_ge(r, 190);
}
END_TEST

/* a discrete guide site (score function) and a subsampled plate (its
 * indices are fresh draws): interpreted, same results */
START_TEST(svi_fallback_discrete_and_subsample) {
    ck_assert_int_eq(svi_pair("svi(coin, coin_q, {y: 1.5}, steps=100, seed=2, summary_samples=1)",
                              "svi(coin, coin_q, {y: 1.5}, steps=100, seed=2, summary_samples=1, fast=false)", 100),
                     0);
    ck_assert_int_eq(svi_pair("svi(sub, AutoNormal(sub), {y: ys}, steps=100, seed=2, summary_samples=1)",
                              "svi(sub, AutoNormal(sub), {y: ys}, steps=100, seed=2, summary_samples=1, fast=false)",
                              100),
                     0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("program");
    TCase *tc = tcase_create("program");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, program_api);
    tcase_add_test(tc, replay_eight_schools);
    tcase_add_test(tc, replay_logistic_regression);
    tcase_add_test(tc, replay_hierarchical_poisson);
    tcase_add_test(tc, replay_through_ops);
    tcase_add_test(tc, replay_dependent_bounds);
    tcase_add_test(tc, replay_mvnormal);
    tcase_add_test(tc, fallback_value_dependent_if);
    tcase_add_test(tc, fallback_index_from_latent);
    tcase_add_test(tc, fallback_random_draw);
    tcase_add_test(tc, constant_folding);
    tcase_add_test(tc, program_outputs);
    tcase_add_test(tc, normal_log_scale_folded);
    tcase_add_test(tc, halfcauchy_fused_same_bits);
    tcase_add_test(tc, values_replay);
    tcase_add_test(tc, values_fallback);
    tcase_add_test(tc, mcmc_fast_same_draws);
    tcase_add_test(tc, svi_replay_autonormal);
    tcase_add_test(tc, svi_replay_user_guide);
    tcase_add_test(tc, svi_fallback_discrete_and_subsample);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
