/* test_enumerate.c - discrete latents summed out of the MCMC potential:
 * the log density against brute-force sums written here, its gradient
 * against central finite differences, posteriors (continuous sites and
 * the discrete sites' probabilities) against exact values computed by
 * enumerating every assignment with conjugate Gaussian algebra, the
 * change-point model against quadrature, and the errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "enumerate.h"
#include "mcmc.h"
#include "vm_fixture.h"

static double lse2(double a, double b) {
    double m = fmax(a, b);
    return m == -INFINITY ? m : m + log(exp(a - m) + exp(b - m));
}

static double lognormal_pdf(double x, double mu, double s) {
    return -0.5 * log(2 * M_PI) - log(s) - (x - mu) * (x - mu) / (2 * s * s);
}

static inf_potential *potential_of(rt_vm *vm, const char *model) {
    rt_value *data = rt_global_get(vm, "data");
    ck_assert(data && data->tag == RT_RECORD);
    inf_potential *p = NULL;
    ck_assert_msg(inf_potential_init(vm, (rt_func *)rt_global_get(vm, model)->u.o, (rt_record *)data->u.o,
                                     (rt_loc){0}, &p) == 0, "%s", rt_vm_errmsg(vm));
    return p;
}

/* logp at q equals want, and its gradient central differences */
static void check_potential(inf_potential *p, const double *q, double want) {
    int d = (int)p->dim;
    double lp, g[8], qp[8], qm[8];
    ck_assert(d <= 8);
    ck_assert_msg(inf_potential_eval(p, q, &lp, g, NULL) == 0, "%s", rt_vm_errmsg(p->vm));
    ck_assert_msg(fabs(lp - want) < 1e-10 * fmax(1, fabs(want)), "logp %.15g want %.15g", lp, want);
    for (int i = 0; i < d; i++) {
        double h = 1e-6, lpp, lpm;
        memcpy(qp, q, sizeof(double) * (size_t)d);
        memcpy(qm, q, sizeof(double) * (size_t)d);
        qp[i] += h;
        qm[i] -= h;
        ck_assert(inf_potential_eval(p, qp, &lpp, NULL, NULL) == 0);
        ck_assert(inf_potential_eval(p, qm, &lpm, NULL, NULL) == 0);
        double fd = (lpp - lpm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dq[%d]: %.10g vs %.10g", i, g[i], fd);
    }
}

/* A global Categorical (3 values, sequential) and a Bernoulli per point
 * (along the plate) together. */
START_TEST(potential_global_and_local) {
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal(0.0, 2.0)\n  sample s ~ HalfNormal(1.0)\n"
                           "  sample z ~ Categorical([0.2, 0.5, 0.3])\n  plate n(len(y)) {\n"
                           "    sample w ~ Bernoulli(0.35)\n    observe y ~ Normal(mu + z + 2.0 * w, s)\n  }\n}\n"
                           "data = {y: [0.5, 2.9, 1.2, -0.4]}\n");
    inf_potential *p = potential_of(vm, "m");
    ck_assert_int_eq(p->dim, 2);
    ck_assert(p->en && !inf_enum_parallel(p->en));
    const double y[4] = {0.5, 2.9, 1.2, -0.4}, pz[3] = {0.2, 0.5, 0.3};
    double q[2] = {0.4, -0.3}, mu = q[0], s = exp(q[1]);
    double sum = -INFINITY;
    for (int z = 0; z < 3; z++) {
        double t = log(pz[z]);
        for (int i = 0; i < 4; i++)
            t += lse2(log(0.65) + lognormal_pdf(y[i], mu + z, s), log(0.35) + lognormal_pdf(y[i], mu + z + 2, s));
        sum = lse2(sum, t);
    }
    double want = lognormal_pdf(mu, 0, 2) + 0.5 * log(2 / M_PI) - s * s / 2 + q[1] + sum;
    check_potential(p, q, want);
    inf_potential_free(p);
    rt_vm_free(vm);
}
END_TEST

/* The plate tree: a global switch k, per group c (plate groups), per member
 * of a group z (plate members inside groups), and in a sibling plate a
 * three-valued w; the log density against the sum over all 2 * 2^2 * 2^6
 * * 3^2 joint values written out here. */
static const char *TREE =
    "model m(y, x) {\n  sample mu ~ Normal(0.0, 1.0)\n  sample s ~ HalfNormal(1.0)\n"
    "  sample k ~ Bernoulli(0.3)\n  plate groups(2) {\n    sample c ~ Bernoulli(where(k == 1.0, 0.7, 0.4))\n"
    "    plate members(3) {\n      sample z ~ Bernoulli(where(c == 1.0, 0.8, 0.25))\n"
    "      observe y ~ Normal(mu + 1.5 * z + 0.5 * c + k, s)\n    }\n  }\n"
    "  plate other(2) {\n    sample w ~ Categorical([0.2, 0.5, 0.3])\n    observe x ~ Normal(mu * w - k, 1.0)\n"
    "  }\n}\ndata = {y: [[0.3, 2.1], [1.7, -0.2], [2.9, 1.1]], x: [0.4, 1.9]}\n";

static double tree_brute_force(const double *q) {
    const double y[3][2] = {{0.3, 2.1}, {1.7, -0.2}, {2.9, 1.1}}, x[2] = {0.4, 1.9}, pw[3] = {0.2, 0.5, 0.3};
    double mu = q[0], s = exp(q[1]), sum = -INFINITY;
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 4; c++)
            for (int z = 0; z < 64; z++)
                for (int w = 0; w < 9; w++) {
                    double t = log(k ? 0.3 : 0.7);
                    for (int g = 0; g < 2; g++) {
                        int cg = (c >> g) & 1;
                        double pc = k ? 0.7 : 0.4, pz = cg ? 0.8 : 0.25;
                        t += log(cg ? pc : 1 - pc);
                        for (int mb = 0; mb < 3; mb++) {
                            int zi = (z >> (mb * 2 + g)) & 1;
                            t += log(zi ? pz : 1 - pz) + lognormal_pdf(y[mb][g], mu + 1.5 * zi + 0.5 * cg + k, s);
                        }
                    }
                    for (int j = 0, wr = w; j < 2; j++, wr /= 3)
                        t += log(pw[wr % 3]) + lognormal_pdf(x[j], mu * (wr % 3) - k, 1);
                    sum = lse2(sum, t);
                }
    return lognormal_pdf(mu, 0, 1) + 0.5 * log(2 / M_PI) - s * s / 2 + q[1] + sum;
}

START_TEST(potential_plate_tree) {
    rt_vm *vm = vm_running(TREE);
    inf_potential *p = potential_of(vm, "m");
    ck_assert_int_eq(p->dim, 2);
    const double qs[3][2] = {{0.4, -0.3}, {-1.2, 0.5}, {1.7, 0.1}};
    for (int i = 0; i < 3; i++) check_potential(p, qs[i], tree_brute_force(qs[i]));
    inf_potential_free(p);
    rt_vm_free(vm);
}
END_TEST

/* Two discrete sites per member (a joint of 2 x 3 values per element) in
 * a nested plate with no discrete site in the outer one. */
START_TEST(potential_nested_joint) {
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate g(2) {\n    plate i(2) {\n"
                           "      sample a ~ Bernoulli(0.6)\n      sample b ~ Categorical([0.5, 0.3, 0.2])\n"
                           "      observe y ~ Normal(mu * a + b, 1.0)\n    }\n  }\n}\n"
                           "data = {y: [[0.5, 2.2], [1.1, -0.7]]}\n");
    inf_potential *p = potential_of(vm, "m");
    const double y[4] = {0.5, 2.2, 1.1, -0.7}, pb[3] = {0.5, 0.3, 0.2};
    double q[1] = {0.8}, want = lognormal_pdf(q[0], 0, 1);
    /* brute force over the 6^4 joint values */
    double sum = -INFINITY;
    for (int v = 0; v < 1296; v++) {
        double t = 0;
        for (int e = 0, r = v; e < 4; e++, r /= 6) {
            int a = r % 2, b = (r / 2) % 3;
            t += log(a ? 0.6 : 0.4) + log(pb[b]) + lognormal_pdf(y[e], q[0] * a + b, 1);
        }
        sum = lse2(sum, t);
    }
    check_potential(p, q, want + sum);
    inf_potential_free(p);
    rt_vm_free(vm);
}
END_TEST

/* A site per group only, observed data per member of a group: the members'
 * terms are summed into their group's before its sum over c; and a
 * three-level nesting with the discrete site in the middle plate. */
START_TEST(potential_outer_site_inner_terms) {
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate g(3) {\n"
                           "    sample c ~ Categorical([0.2, 0.3, 0.5])\n    plate i(2) {\n"
                           "      observe y ~ Normal(mu + c, 1.0)\n    }\n  }\n}\n"
                           "model m3(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate a(2) {\n    plate b(2) {\n"
                           "      sample c ~ Bernoulli(0.3)\n      plate d(2) {\n"
                           "        observe y ~ Normal(mu * c, 1.0)\n      }\n    }\n  }\n}\n"
                           "data = {y: [[0.5, 2.2, 1.0], [1.1, -0.7, 2.4]]}\n"
                           "data3 = {y: [[[0.5, 2.2], [1.0, 1.1]], [[-0.7, 2.4], [0.3, 1.9]]]}\n");
    inf_potential *p = potential_of(vm, "m");
    const double y[2][3] = {{0.5, 2.2, 1.0}, {1.1, -0.7, 2.4}}, pc[3] = {0.2, 0.3, 0.5};
    double q[1] = {0.35}, want = lognormal_pdf(q[0], 0, 1);
    double sum = -INFINITY;
    for (int v = 0; v < 27; v++) {
        double t = 0;
        for (int g = 0, r = v; g < 3; g++, r /= 3)
            t += log(pc[r % 3]) + lognormal_pdf(y[0][g], q[0] + r % 3, 1) + lognormal_pdf(y[1][g], q[0] + r % 3, 1);
        sum = lse2(sum, t);
    }
    check_potential(p, q, want + sum);
    inf_potential_free(p);
    /* m3: y is [d, b, a]; c is [b, a] */
    rt_value *d3 = rt_global_get(vm, "data3");
    inf_potential *p3 = NULL;
    ck_assert_msg(inf_potential_init(vm, (rt_func *)rt_global_get(vm, "m3")->u.o, (rt_record *)d3->u.o,
                                     (rt_loc){0}, &p3) == 0, "%s", rt_vm_errmsg(vm));
    const double y3[2][2][2] = {{{0.5, 2.2}, {1.0, 1.1}}, {{-0.7, 2.4}, {0.3, 1.9}}};
    double sum3 = -INFINITY;
    for (int v = 0; v < 16; v++) {
        double t = 0;
        for (int b = 0; b < 2; b++)
            for (int a = 0; a < 2; a++) {
                int c = (v >> (b * 2 + a)) & 1;
                t += log(c ? 0.3 : 0.7);
                for (int d = 0; d < 2; d++) t += lognormal_pdf(y3[d][b][a], q[0] * c, 1);
            }
        sum3 = lse2(sum3, t);
    }
    check_potential(p3, q, lognormal_pdf(q[0], 0, 1) + sum3);
    inf_potential_free(p3);
    rt_vm_free(vm);
}
END_TEST

/* The change point summed out in one run along a batch dimension. */
START_TEST(potential_parallel_change_point) {
    rt_vm *vm = vm_running("model cp(y) {\n  sample a ~ Exponential(1.0)\n  sample b ~ Exponential(1.0)\n"
                           "  sample s ~ Categorical(ones(5) / 5)\n  plate t(5) {\n"
                           "    observe y ~ Poisson(where(arange(5) < s, a, b))\n  }\n}\n"
                           "data = {y: [4.0, 3.0, 5.0, 1.0, 0.0]}\n");
    inf_potential *p = potential_of(vm, "cp");
    ck_assert(inf_enum_parallel(p->en));
    const double y[5] = {4, 3, 5, 1, 0};
    double q[2] = {1.1, -0.2}, a = exp(q[0]), b = exp(q[1]), sum = -INFINITY;
    for (int s = 0; s < 5; s++) {
        double t = log(0.2);
        for (int i = 0; i < 5; i++) {
            double r = i < s ? a : b;
            t += y[i] * log(r) - r - lgamma(y[i] + 1);
        }
        sum = lse2(sum, t);
    }
    check_potential(p, q, -a - b + q[0] + q[1] + sum);
    inf_potential_free(p);
    rt_vm_free(vm);
}
END_TEST

/* A site that exists only when z = 1: the odometer over the sites met
 * sums 1 + 3 assignments. */
static const char *DYNAMIC = "model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  sample z ~ Bernoulli(0.4)\n"
                             "  if z == 1.0 {\n    sample w ~ Categorical([0.5, 0.25, 0.25])\n"
                             "    observe y ~ Normal(mu + w, 1.0)\n  } else {\n"
                             "    observe y ~ Normal(mu - 1.0, 1.0)\n  }\n}\n";

START_TEST(potential_dynamic_structure) {
    char src[512];
    snprintf(src, sizeof src, "%sdata = {y: 1.2}\n", DYNAMIC);
    rt_vm *vm = vm_running(src);
    inf_potential *p = potential_of(vm, "m");
    ck_assert_int_eq(p->dim, 1);
    double q[1] = {0.3}, y = 1.2, pw[3] = {0.5, 0.25, 0.25}, on = -INFINITY;
    for (int w = 0; w < 3; w++) on = lse2(on, log(pw[w]) + lognormal_pdf(y, q[0] + w, 1));
    double want = lognormal_pdf(q[0], 0, 1) + lse2(log(0.6) + lognormal_pdf(y, q[0] - 1, 1), log(0.4) + on);
    check_potential(p, q, want);
    inf_potential_free(p);
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------------------------------ posteriors --- */

typedef struct want {
    const char *name;
    double mean, sd;       /* sd < 0: only the mean is known (checked with the draws' sd) */
} want;

static inf_mcmc *run_mcmc(rt_vm *vm, const char *model, int chains, int warmup, int samples) {
    rt_value *data = rt_global_get(vm, "data");
    inf_mcmc_opts o = {.chains = chains, .warmup = warmup, .samples = samples, .max_depth = 10,
                       .target_accept = 0.8, .seed = 11};
    inf_mcmc *m = NULL;
    ck_assert_msg(inf_mcmc_run(vm, (rt_func *)rt_global_get(vm, model)->u.o, (rt_record *)data->u.o, &o,
                               (rt_loc){0}, &m) == 0, "%s", rt_vm_errmsg(vm));
    return m;
}

/* Means (and sds) within 4 Monte Carlo standard errors + 2% of the sd. */
static void check_rows(const inf_mcmc *m, const want *w, int nw) {
    inf_result *r = inf_mcmc_result(m);
    ck_assert(r != NULL);
    for (int k = 0; k < nw; k++) {
        const inf_row *row = NULL;
        for (int i = 0; i < r->nrows; i++)
            if (strcmp(r->rows[i].name, w[k].name) == 0) row = &r->rows[i];
        ck_assert_msg(row != NULL, "no row %s", w[k].name);
        double ess = row->ess_bulk, sd = w[k].sd >= 0 ? w[k].sd : row->sd;
        ck_assert_msg(ess > 100, "%s: bulk ESS only %g", w[k].name, ess);
        double tol_m = 4 * sd / sqrt(ess) + 0.02 * sd;
        ck_assert_msg(fabs(row->mean - w[k].mean) < tol_m, "%s: mean %g, want %g +- %g", w[k].name, row->mean,
                      w[k].mean, tol_m);
        if (w[k].sd >= 0) {
            double tol_s = 4 * sd / sqrt(2 * ess) + 0.02 * sd;
            ck_assert_msg(fabs(row->sd - w[k].sd) < tol_s, "%s: sd %g, want %g +- %g", w[k].name, row->sd, w[k].sd,
                          tol_s);
        }
    }
    inf_result_free(r);
}

/* mu ~ N(0, 1); z_i ~ Bernoulli(0.3); y_i ~ N(mu + 2 z_i, 1).  Exact over
 * the 8 values of z: y - 2z ~ N(mu 1, I), mu | z, y ~ N(sum(y - 2z) / 4,
 * 1/4), weights 0.3^|z| 0.7^(3-|z|) N(y - 2z; 0, I + 1 1'). */
static void shifted_exact(double *mean, double *sd, double pz[3]) {
    const double y[3] = {1.5, 2.5, -0.5};
    double lw[8], mz[8], lmax = -INFINITY;
    for (int z = 0; z < 8; z++) {
        double sr = 0, rr = 0;
        int k = 0;
        for (int i = 0; i < 3; i++) {
            int zi = (z >> i) & 1;
            double r = y[i] - 2.0 * zi;
            k += zi;
            sr += r;
            rr += r * r;
        }
        lw[z] = k * log(0.3) + (3 - k) * log(0.7) - 0.5 * (rr - sr * sr / 4.0) - 0.5 * log(4.0);
        mz[z] = sr / 4.0;
        lmax = fmax(lmax, lw[z]);
    }
    double tot = 0, m1 = 0, m2 = 0;
    for (int z = 0; z < 8; z++) tot += exp(lw[z] - lmax);
    pz[0] = pz[1] = pz[2] = 0;
    for (int z = 0; z < 8; z++) {
        double wz = exp(lw[z] - lmax) / tot;
        m1 += wz * mz[z];
        m2 += wz * (mz[z] * mz[z] + 0.25);
        for (int i = 0; i < 3; i++) pz[i] += wz * ((z >> i) & 1);
    }
    *mean = m1;
    *sd = sqrt(m2 - m1 * m1);
}

static void shifted_check(const char *src) {
    double mean, sd, pz[3];
    shifted_exact(&mean, &sd, pz);
    rt_vm *vm = vm_running(src);
    inf_mcmc *m = run_mcmc(vm, "m", 4, 500, 1000);
    want w[] = {{"mu", mean, sd},
                {"z_probs[0, 1]", pz[0], -1}, {"z_probs[1, 1]", pz[1], -1}, {"z_probs[2, 1]", pz[2], -1},
                {"z[0]", pz[0], -1}, {"z[2]", pz[2], -1}};
    check_rows(m, w, 6);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}

/* a Bernoulli per point inside the plate: 2 runs per evaluation */
START_TEST(bernoulli_per_point_in_plate) {
    shifted_check("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate n(len(y)) {\n"
                  "    sample z ~ Bernoulli(0.3)\n    observe y ~ Normal(mu + 2.0 * z, 1.0)\n  }\n}\n"
                  "data = {y: [1.5, 2.5, -0.5]}\n");
}
END_TEST

/* the same as one vector site outside plates: its 2^3 joint values */
START_TEST(bernoulli_vector_joint) {
    shifted_check("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  sample z ~ Bernoulli(0.3).expand([3])\n"
                  "  observe y ~ Normal(mu + 2.0 * z, 1.0)\n}\n"
                  "data = {y: [1.5, 2.5, -0.5]}\n");
}
END_TEST

/* A mixture of two Normals with unknown means: mu_j ~ N(m_j, 1), m = (-2,
 * 2); z_i ~ Bernoulli(0.4) picks mu_{z_i}; y_i ~ N(mu_{z_i}, 1).  Exact by
 * the 2^6 assignments: given z each mean is conjugate, mu_j | z, y ~
 * N((m_j + S_j) / (1 + n_j), 1 / (1 + n_j)), and z's weight is
 * p(z) prod_j N(y_j - m_j; 0, I + 1 1'). */
START_TEST(two_normal_mixture) {
    const double y[6] = {-2.3, -1.4, -2.9, 1.7, 2.6, 0.3}, m0[2] = {-2, 2};
    enum { N = 6 };
    double lw[1 << N], mj[1 << N][2], vj[1 << N][2], lmax = -INFINITY;
    for (int z = 0; z < 1 << N; z++) {
        lw[z] = 0;
        for (int j = 0; j < 2; j++) {
            double sr = 0, rr = 0;
            int n = 0;
            for (int i = 0; i < N; i++)
                if (((z >> i) & 1) == j) {
                    double r = y[i] - m0[j];
                    sr += r;
                    rr += r * r;
                    n++;
                }
            lw[z] += (j ? n * log(0.4) : n * log(0.6)) - 0.5 * n * log(2 * M_PI) - 0.5 * log(1.0 + n) -
                     0.5 * (rr - sr * sr / (1.0 + n));
            mj[z][j] = m0[j] + sr / (1.0 + n);
            vj[z][j] = 1 / (1.0 + n);
        }
        lmax = fmax(lmax, lw[z]);
    }
    double tot = 0, e1[2] = {0}, e2[2] = {0}, pz[N] = {0};
    for (int z = 0; z < 1 << N; z++) tot += exp(lw[z] - lmax);
    for (int z = 0; z < 1 << N; z++) {
        double wz = exp(lw[z] - lmax) / tot;
        for (int j = 0; j < 2; j++) {
            e1[j] += wz * mj[z][j];
            e2[j] += wz * (mj[z][j] * mj[z][j] + vj[z][j]);
        }
        for (int i = 0; i < N; i++) pz[i] += wz * ((z >> i) & 1);
    }
    rt_vm *vm = vm_running("model mix(y) {\n  sample mu ~ Normal([-2.0, 2.0], 1.0)\n  plate n(len(y)) {\n"
                           "    sample z ~ Bernoulli(0.4)\n    observe y ~ Normal(where(z == 1.0, mu[1], mu[0]), 1.0)\n"
                           "  }\n}\ndata = {y: [-2.3, -1.4, -2.9, 1.7, 2.6, 0.3]}\n");
    inf_mcmc *m = run_mcmc(vm, "mix", 4, 500, 1000);
    want w[] = {{"mu[0]", e1[0], sqrt(e2[0] - e1[0] * e1[0])}, {"mu[1]", e1[1], sqrt(e2[1] - e1[1] * e1[1])},
                {"z_probs[1, 1]", pz[1], -1}, {"z_probs[3, 1]", pz[3], -1}, {"z_probs[5, 1]", pz[5], -1},
                {"z_probs[5, 0]", 1 - pz[5], -1}};
    check_rows(m, w, 6);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}
END_TEST

/* The exact posterior of a two-Normal mixture (mu_j ~ N(m_j, 1), m = (-2,
 * 2), y_i ~ N(mu_{z_i}, 1)) given the log prior lpz[z] of every
 * assignment z of the n <= 6 points: given z each mean is conjugate,
 * mu_j | z, y ~ N((m_j + S_j) / (1 + n_j), 1 / (1 + n_j)), and z's
 * weight is p(z) prod_j N(y_j - m_j; 0, I + 1 1').  Returns the means'
 * posterior means and sds and the weights w[z]. */
static void mixture_exact(const double *y, int n, const double *lpz, double e1[2], double sd[2], double *w) {
    const double m0[2] = {-2, 2};
    double lw[64], mj[64][2], vj[64][2], lmax = -INFINITY;
    for (int z = 0; z < 1 << n; z++) {
        lw[z] = lpz[z];
        for (int j = 0; j < 2; j++) {
            double sr = 0, rr = 0;
            int c = 0;
            for (int i = 0; i < n; i++)
                if (((z >> i) & 1) == j) {
                    double r = y[i] - m0[j];
                    sr += r;
                    rr += r * r;
                    c++;
                }
            lw[z] += -0.5 * c * log(2 * M_PI) - 0.5 * log(1.0 + c) - 0.5 * (rr - sr * sr / (1.0 + c));
            mj[z][j] = m0[j] + sr / (1.0 + c);
            vj[z][j] = 1 / (1.0 + c);
        }
        lmax = fmax(lmax, lw[z]);
    }
    double tot = 0, e2[2] = {0};
    e1[0] = e1[1] = 0;
    for (int z = 0; z < 1 << n; z++) tot += exp(lw[z] - lmax);
    for (int z = 0; z < 1 << n; z++) {
        w[z] = exp(lw[z] - lmax) / tot;
        for (int j = 0; j < 2; j++) {
            e1[j] += w[z] * mj[z][j];
            e2[j] += w[z] * (mj[z][j] * mj[z][j] + vj[z][j]);
        }
    }
    for (int j = 0; j < 2; j++) sd[j] = sqrt(e2[j] - e1[j] * e1[j]);
}

/* The mixture with its assignments in nested plates: each group's type c
 * (plate groups) sets how likely its members (plate members) are in
 * component 1.  Exact by summing c in closed form for every z. */
START_TEST(nested_mixture_posterior) {
    /* y is [members, groups]: point i = 2 * member + group */
    const double y[6] = {-2.3, 1.7, -1.4, 2.6, -2.9, 0.3};
    double lpz[64], lpc[64][4];
    for (int z = 0; z < 64; z++) {
        lpz[z] = -INFINITY;
        for (int c = 0; c < 4; c++) {
            double t = 2 * log(0.5);
            for (int i = 0; i < 6; i++) {
                double p1 = (c >> (i % 2)) & 1 ? 0.9 : 0.1;
                t += log((z >> i) & 1 ? p1 : 1 - p1);
            }
            lpc[z][c] = t;
            lpz[z] = lse2(lpz[z], t);
        }
    }
    double e1[2], sd[2], w[64], pc[2] = {0}, pz[6] = {0};
    mixture_exact(y, 6, lpz, e1, sd, w);
    for (int z = 0; z < 64; z++) {
        for (int c = 0; c < 4; c++)
            for (int g = 0; g < 2; g++) pc[g] += w[z] * exp(lpc[z][c] - lpz[z]) * ((c >> g) & 1);
        for (int i = 0; i < 6; i++) pz[i] += w[z] * ((z >> i) & 1);
    }
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal([-2.0, 2.0], 1.0)\n  plate groups(2) {\n"
                           "    sample c ~ Bernoulli(0.5)\n    plate members(3) {\n"
                           "      sample z ~ Bernoulli(where(c == 1.0, 0.9, 0.1))\n"
                           "      observe y ~ Normal(where(z == 1.0, mu[1], mu[0]), 1.0)\n    }\n  }\n}\n"
                           "data = {y: [[-2.3, 1.7], [-1.4, 2.6], [-2.9, 0.3]]}\n");
    inf_mcmc *m = run_mcmc(vm, "m", 4, 500, 1000);
    want wt[] = {{"mu[0]", e1[0], sd[0]}, {"mu[1]", e1[1], sd[1]}, {"c_probs[0, 1]", pc[0], -1},
                 {"c_probs[1, 1]", pc[1], -1}, {"z_probs[2, 1, 1]", pz[5], -1}, {"z_probs[0, 1, 1]", pz[1], -1},
                 {"z_probs[1, 0, 0]", 1 - pz[2], -1}, {"c[1]", pc[1], -1}, {"z[2, 1]", pz[5], -1}};
    check_rows(m, wt, 9);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}
END_TEST

/* A global switch k with per-point assignments whose prior depends on it:
 * exact by summing k in closed form for every z. */
START_TEST(global_switch_mixture_posterior) {
    const double y[5] = {-2.3, -1.4, 1.7, 2.6, 0.3};
    double lpz[64], pk1[64], e1[2], sd[2], w[64], pk = 0, pz[5] = {0};
    for (int z = 0; z < 32; z++) {
        double t[2];
        for (int k = 0; k < 2; k++) {
            double p1 = k ? 0.8 : 0.3;
            t[k] = log(k ? 0.4 : 0.6);
            for (int i = 0; i < 5; i++) t[k] += log((z >> i) & 1 ? p1 : 1 - p1);
        }
        lpz[z] = lse2(t[0], t[1]);
        pk1[z] = exp(t[1] - lpz[z]);
    }
    mixture_exact(y, 5, lpz, e1, sd, w);
    for (int z = 0; z < 32; z++) {
        pk += w[z] * pk1[z];
        for (int i = 0; i < 5; i++) pz[i] += w[z] * ((z >> i) & 1);
    }
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal([-2.0, 2.0], 1.0)\n  sample k ~ Bernoulli(0.4)\n"
                           "  plate n(len(y)) {\n    sample z ~ Bernoulli(where(k == 1.0, 0.8, 0.3))\n"
                           "    observe y ~ Normal(where(z == 1.0, mu[1], mu[0]), 1.0)\n  }\n}\n"
                           "data = {y: [-2.3, -1.4, 1.7, 2.6, 0.3]}\n");
    inf_mcmc *m = run_mcmc(vm, "m", 4, 500, 1000);
    want wt[] = {{"mu[0]", e1[0], sd[0]}, {"mu[1]", e1[1], sd[1]}, {"k_probs[1]", pk, -1}, {"k", pk, -1},
                 {"z_probs[4, 1]", pz[4], -1}, {"z_probs[1, 1]", pz[1], -1}};
    check_rows(m, wt, 6);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}
END_TEST

/* Chains on 1 and 3 threads give the same draws (continuous and drawn
 * discrete sites, the probabilities) for a model summed along nested plates. */
START_TEST(nested_draws_do_not_depend_on_threads) {
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal([-2.0, 2.0], 1.0)\n  plate groups(2) {\n"
                           "    sample c ~ Bernoulli(0.5)\n    plate members(3) {\n"
                           "      sample z ~ Bernoulli(where(c == 1.0, 0.9, 0.1))\n"
                           "      observe y ~ Normal(where(z == 1.0, mu[1], mu[0]), 1.0)\n    }\n  }\n}\n"
                           "data = {y: [[-2.3, 1.7], [-1.4, 2.6], [-2.9, 0.3]]}\n");
    rt_value *data = rt_global_get(vm, "data");
    rt_func *model = (rt_func *)rt_global_get(vm, "m")->u.o;
    inf_mcmc *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        inf_mcmc_opts o = {.chains = 3, .warmup = 60, .samples = 40, .max_depth = 10, .target_accept = 0.8,
                           .seed = 4, .threads = i ? 3 : 1};
        ck_assert_msg(inf_mcmc_run(vm, model, (rt_record *)data->u.o, &o, (rt_loc){0}, &r[i]) == 0, "%s",
                      rt_vm_errmsg(vm));
    }
    ck_assert_int_eq(r[0]->nnames, r[1]->nnames);
    size_t n = (size_t)r[0]->chains * (size_t)r[0]->samples * (size_t)r[0]->nnames;
    ck_assert(memcmp(r[0]->draws, r[1]->draws, n * sizeof(double)) == 0);
    inf_mcmc_free(r[0]);
    inf_mcmc_free(r[1]);
    rt_vm_free(vm);
}
END_TEST

/* examples/coal_mining.ppl with the change point sampled: the posterior of
 * the rates equals the quadrature of bench/changepoint_reference.py. */
START_TEST(change_point_matches_quadrature) {
    rt_vm *vm = vm_running("model cp(first_year, y) {\n  sample early ~ Exponential(1.0)\n"
                           "  sample late ~ Exponential(1.0)\n  T = len(y)\n  sample s ~ Categorical(ones(T) / T)\n"
                           "  plate t(T) {\n    observe y ~ Poisson(where(arange(T) < s, early, late))\n  }\n}\n"
                           "data = load_json(\"examples/coal_mining.json\")\n");
    inf_mcmc *m = run_mcmc(vm, "cp", 2, 250, 300);
    want w[] = {{"early", 3.0642, 0.2846}, {"late", 0.9224, 0.1162}};
    check_rows(m, w, 2);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}
END_TEST

/* the drawn discrete values go to predictive like any latent site */
START_TEST(predictive_uses_the_drawn_values) {
    rt_vm *vm = vm_running("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate n(len(y)) {\n"
                           "    sample z ~ Bernoulli(0.3)\n    observe y ~ Normal(mu + 2.0 * z, 1.0)\n  }\n}\n"
                           "data = {y: [1.5, 2.5, -0.5]}\n"
                           "post = mcmc(m, data, warmup=100, samples=50, chains=1, seed=3)\n"
                           "pred = predictive(m, post, data)\n"
                           "same = sum(abs(pred.z - post.z)) == 0.0\n");
    rt_value *same = rt_global_get(vm, "same");
    ck_assert(same && same->tag == RT_TENSOR && bk_item(same->u.t) == 1.0);
    rt_vm_free(vm);
    /* nested plates: the drawn c (per group) and z (per member) */
    vm = vm_running("model m(y) {\n  sample mu ~ Normal([-2.0, 2.0], 1.0)\n  plate groups(2) {\n"
                    "    sample c ~ Bernoulli(0.5)\n    plate members(3) {\n"
                    "      sample z ~ Bernoulli(where(c == 1.0, 0.9, 0.1))\n"
                    "      observe y ~ Normal(where(z == 1.0, mu[1], mu[0]), 1.0)\n    }\n  }\n}\n"
                    "data = {y: [[-2.3, 1.7], [-1.4, 2.6], [-2.9, 0.3]]}\n"
                    "post = mcmc(m, data, warmup=100, samples=50, chains=1, seed=3)\n"
                    "pred = predictive(m, post, data)\n"
                    "same = sum(abs(reshape(pred.z, [50, 6]) - post.z)) + sum(abs(pred.c - post.c)) == 0.0\n");
    same = rt_global_get(vm, "same");
    ck_assert(same && same->tag == RT_TENSOR && bk_item(same->u.t) == 1.0);
    rt_vm_free(vm);
}
END_TEST

/* ---------------------------------------------------------------- errors --- */

static char *error_of(const char *src) {
    rt_vm *vm = rt_vm_new(NULL);
    ck_assert(vm && inf_register_builtins(vm) == 0);
    rt_source *s = rt_source_new("m.ppl", src, strlen(src));
    ck_assert(rt_run_source(vm, s, false, NULL) != 0);
    char *msg = rt_vm_errmsg(vm);
    rt_source_release(s);
    rt_vm_free(vm);
    return msg;
}

START_TEST(outside_term_depending_on_plate_site) {
    char *msg = error_of("model m(y, t) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate n(3) {\n"
                         "    sample z ~ Bernoulli(0.3)\n    observe y ~ Normal(mu + z, 1.0)\n  }\n"
                         "  observe t ~ Normal(sum(z), 1.0)\n}\n"
                         "post = mcmc(m, {y: [1.0, 0.0, 2.0], t: 1.0}, warmup=10, samples=10, chains=1)\n");
    ck_assert_msg(strstr(msg, "site \"t\" is outside plate \"n\" but depends on the discrete latent sites \"z\""),
                  "%s", msg);
    ck_assert_msg(strstr(msg, "m.ppl:7:"), "%s", msg);
    free(msg);
}
END_TEST

START_TEST(infinite_support_is_an_error) {
    char *msg = error_of("model m(y) {\n  sample mu ~ Normal(0.0, 1.0)\n  sample k ~ Poisson(3.0)\n"
                         "  observe y ~ Normal(mu + k, 1.0)\n}\npost = mcmc(m, {y: 1.0})\n");
    ck_assert_msg(strstr(msg, "discrete latent site \"k\": Poisson has no finite support"), "%s", msg);
    ck_assert_msg(strstr(msg, "m.ppl:3:"), "%s", msg);
    free(msg);
}
END_TEST

/* summed out fine, but the draws need the same sites every time */
START_TEST(site_on_one_branch_is_an_error_for_the_draws) {
    char src[640];
    snprintf(src, sizeof src, "%spost = mcmc(m, {y: 1.2}, warmup=20, samples=20, chains=1, seed=2)\n", DYNAMIC);
    char *msg = error_of(src);
    ck_assert_msg(strstr(msg, "\"w\" exists for some values of the other discrete sites"), "%s", msg);
    free(msg);
}
END_TEST

/* a term outside a nested plate that depends on the sites inside it */
START_TEST(term_outside_nested_plate_is_an_error) {
    char *msg = error_of("model m(y, t) {\n  sample mu ~ Normal(0.0, 1.0)\n  plate a(2) {\n    plate b(3) {\n"
                         "      sample z ~ Bernoulli(0.5)\n      observe y ~ Normal(mu + z, 1.0)\n    }\n"
                         "    observe t ~ Normal(sum(z, 0), 1.0)\n  }\n}\n"
                         "post = mcmc(m, {y: [[0.0, 1.0], [1.0, 2.0], [0.5, 0.5]], t: [1.0, 2.5]})\n");
    ck_assert_msg(strstr(msg, "site \"t\" is outside plate \"b\" but depends on the discrete latent sites \"z\""),
                  "%s", msg);
    ck_assert_msg(strstr(msg, "m.ppl:8:"), "%s", msg);
    free(msg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("enumerate");
    TCase *tc = tcase_create("enumerate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, potential_global_and_local);
    tcase_add_test(tc, potential_parallel_change_point);
    tcase_add_test(tc, bernoulli_per_point_in_plate);
    tcase_add_test(tc, bernoulli_vector_joint);
    tcase_add_test(tc, two_normal_mixture);
    tcase_add_test(tc, change_point_matches_quadrature);
    tcase_add_test(tc, predictive_uses_the_drawn_values);
    tcase_add_test(tc, outside_term_depending_on_plate_site);
    tcase_add_test(tc, infinite_support_is_an_error);
    tcase_add_test(tc, term_outside_nested_plate_is_an_error);
    tcase_add_test(tc, potential_plate_tree);
    tcase_add_test(tc, potential_nested_joint);
    tcase_add_test(tc, potential_outer_site_inner_terms);
    tcase_add_test(tc, nested_mixture_posterior);
    tcase_add_test(tc, global_switch_mixture_posterior);
    tcase_add_test(tc, nested_draws_do_not_depend_on_threads);
    tcase_add_test(tc, potential_dynamic_structure);
    tcase_add_test(tc, site_on_one_branch_is_an_error_for_the_draws);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
