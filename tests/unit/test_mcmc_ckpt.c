/* test_mcmc_ckpt.c - a chain saved as text after any number of iterations
 * and restored continues bit for bit as the uninterrupted chain (warmup
 * windows, dual averaging, Welford sums, metric, random stream, draws), and
 * a stop request undoes the iteration it interrupted. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mcmc_core.h"
#include "mcmc.h"
#include "data_io.h"
#include "vm_fixture.h"

/* a correlated 3-D Gaussian: precision P */
static int gauss3(void *ud, const double *q, double *lp, double *g) {
    (void)ud;
    double gs[3];
    if (!g) g = gs;   /* RWM asks for no gradient */
    static const double P[9] = {2.0, -0.8, 0.1, -0.8, 1.5, 0.3, 0.1, 0.3, 0.7};
    *lp = 0.0;
    for (int i = 0; i < 3; i++) {
        double s = 0.0;
        for (int j = 0; j < 3; j++) s += P[i * 3 + j] * q[j];
        g[i] = -s;
        *lp -= 0.5 * q[i] * s;
    }
    return 0;
}

static const double Q0[3] = {0.4, -1.2, 0.9};

static mc_opts opts(int dense, int hmc) {
    mc_opts o = mc_opts_default();
    o.warmup = 300;   /* init buffer 75, slow windows ending at 99, 149, 249, term buffer */
    o.samples = 60;
    o.dense = dense;
    o.hmc_steps = hmc;
    if (hmc == MC_HMC_TRAJ) o.trajectory_length = 2.5;   /* about 4..25 steps through warmup */
    return o;
}

static void same_out(const mc_chain_out *a, const mc_chain_out *b) {
    size_t n = (size_t)a->samples;
    ck_assert_int_eq(a->samples, b->samples);
    ck_assert_mem_eq(a->draws, b->draws, n * 3 * sizeof(double));
    ck_assert_mem_eq(a->lp, b->lp, n * sizeof(double));
    ck_assert_mem_eq(a->accept_stat, b->accept_stat, n * sizeof(double));
    ck_assert_mem_eq(a->stepsize, b->stepsize, n * sizeof(double));
    ck_assert_mem_eq(a->treedepth, b->treedepth, n * sizeof(double));
    ck_assert_mem_eq(a->energy, b->energy, n * sizeof(double));
    ck_assert_mem_eq(a->inv_metric, b->inv_metric, (a->dense ? 9 : 3) * sizeof(double));
    ck_assert(a->final_step == b->final_step);
}

static void resume_at(int dense, int hmc, int stop_at) {
    mc_opts o = opts(dense, hmc);
    bk_rng r;
    bk_rng_init(&r, 77, 2);
    char err[256] = "";
    mc_chain_out ref, got;
    bk_rng r1 = r;
    ck_assert_int_eq(mc_run_chain(gauss3, NULL, 3, Q0, &o, &r1, &ref, err, sizeof err), 0);

    mc_chain *c;
    ck_assert_int_eq(mc_chain_new(gauss3, NULL, 3, Q0, &o, &r, &c, err, sizeof err), 0);
    for (int i = 0; i < stop_at; i++) ck_assert_int_eq(mc_chain_step(c, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(mc_chain_done(c), stop_at);
    rt_sb sb = {0};
    mc_chain_save(c, &sb);
    char *text = rt_sb_finish(&sb);
    ck_assert_ptr_nonnull(text);
    mc_chain_free(c);

    mc_ck_reader rd = {text, err, sizeof err};
    ck_assert_msg(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c) == 0, "load: %s", err);
    free(text);
    while (mc_chain_done(c) < mc_chain_total(c))
        ck_assert_int_eq(mc_chain_step(c, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(mc_chain_finish(c, &got), 0);
    same_out(&ref, &got);
    mc_chain_out_free(&ref);
    mc_chain_out_free(&got);
}

/* the points: start, init buffer, inside / at the end of slow windows, the
 * terminal buffer, the last warmup iteration, sampling, the end */
static const int STOPS[] = {0, 7, 74, 75, 99, 100, 149, 150, 200, 249, 250, 299, 300, 331, 360};
#define NSTOPS (int)(sizeof STOPS / sizeof STOPS[0])

START_TEST(test_resume_nuts_diag) { resume_at(0, 0, STOPS[_i]); }
END_TEST
START_TEST(test_resume_nuts_dense) { resume_at(1, 0, STOPS[_i]); }
END_TEST
START_TEST(test_resume_hmc) { resume_at(0, 5, STOPS[_i]); }
END_TEST
START_TEST(test_resume_rwm) { resume_at(1, MC_RWM, STOPS[_i]); }
END_TEST
START_TEST(test_resume_hmc_traj) { resume_at(1, MC_HMC_TRAJ, STOPS[_i]); }
END_TEST

/* stop polled after the transition: the iteration is undone */
static int stop_calls;
static int stop_third(void *ud) {
    (void)ud;
    return ++stop_calls == 3;
}

START_TEST(test_stop_undoes_iteration) {
    mc_opts o = opts(0, 0);
    bk_rng r;
    bk_rng_init(&r, 5, 1);
    char err[256];
    mc_chain_out ref, got;
    bk_rng r1 = r;
    ck_assert_int_eq(mc_run_chain(gauss3, NULL, 3, Q0, &o, &r1, &ref, err, sizeof err), 0);
    mc_chain *c;
    ck_assert_int_eq(mc_chain_new(gauss3, NULL, 3, Q0, &o, &r, &c, err, sizeof err), 0);
    stop_calls = 0;
    int rc = 0;
    while (rc == 0 && mc_chain_done(c) < mc_chain_total(c)) rc = mc_chain_step(c, stop_third, NULL, err, sizeof err);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(mc_chain_done(c), 2);
    while (mc_chain_done(c) < mc_chain_total(c)) ck_assert_int_eq(mc_chain_step(c, stop_third, NULL, err, sizeof err), 0);
    ck_assert_int_eq(mc_chain_finish(c, &got), 0);
    same_out(&ref, &got);
    mc_chain_out_free(&ref);
    mc_chain_out_free(&got);
}
END_TEST

START_TEST(test_load_rejects_mismatch) {
    mc_opts o = opts(0, 0);
    bk_rng r;
    bk_rng_init(&r, 5, 1);
    char err[256] = "";
    mc_chain *c;
    ck_assert_int_eq(mc_chain_new(gauss3, NULL, 3, Q0, &o, &r, &c, err, sizeof err), 0);
    rt_sb sb = {0};
    mc_chain_save(c, &sb);
    char *text = rt_sb_finish(&sb);
    mc_chain_free(c);
    o.samples = 61;
    mc_ck_reader rd = {text, err, sizeof err};
    ck_assert_int_eq(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c), -1);
    ck_assert_msg(strstr(err, "samples 60") != NULL, "%s", err);
    /* a truncated text */
    o.samples = 60;
    text[strlen(text) / 2] = 0;
    rd.p = text;
    ck_assert_int_eq(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c), -1);
    ck_assert_msg(strstr(err, "checkpoint") != NULL, "%s", err);
    free(text);
}
END_TEST

START_TEST(test_load_rejects_trajectory_length) {
    mc_opts o = opts(0, MC_HMC_TRAJ);
    bk_rng r;
    bk_rng_init(&r, 5, 1);
    char err[256] = "";
    mc_chain *c;
    ck_assert_int_eq(mc_chain_new(gauss3, NULL, 3, Q0, &o, &r, &c, err, sizeof err), 0);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(mc_chain_step(c, NULL, NULL, err, sizeof err), 0);
    rt_sb sb = {0};
    mc_chain_save(c, &sb);
    char *text = rt_sb_finish(&sb);
    mc_chain_free(c);
    ck_assert_ptr_nonnull(strstr(text, "\ntrajectory_length "));
    o.trajectory_length = 2.0;
    mc_ck_reader rd = {text, err, sizeof err};
    ck_assert_int_eq(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c), -1);
    ck_assert_msg(strstr(err, "trajectory_length 2.5, this run has 2") != NULL, "%s", err);
    /* nor as fixed-step HMC */
    o = opts(0, 7);
    rd.p = text;
    ck_assert_int_eq(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c), -1);
    ck_assert_msg(strstr(err, "kernel") != NULL, "%s", err);
    /* the same options load */
    o = opts(0, MC_HMC_TRAJ);
    rd.p = text;
    ck_assert_msg(mc_chain_load(gauss3, NULL, 3, &o, &rd, &c) == 0, "%s", err);
    ck_assert_int_eq(mc_chain_done(c), 10);
    mc_chain_free(c);
    free(text);
}
END_TEST

/* ---- the model level: interrupted after a chain, resumed from the file -- */

static void interrupt_after_first(void *ud, const char *phase, long done, long total, double value) {
    (void)phase, (void)total, (void)value;
    if (done == 1) ((rt_vm *)ud)->interrupted = 1;
}

static inf_mcmc *run_model(rt_vm *vm, const inf_mcmc_opts *o, int expect_rc) {
    inf_mcmc *m = NULL;
    int rc = inf_mcmc_run(vm, (rt_func *)rt_global_get(vm, "m")->u.o, (rt_record *)rt_global_get(vm, "data")->u.o,
                          o, (rt_loc){0}, &m);
    ck_assert_msg(rc == expect_rc, "rc %d: %s", rc, rt_vm_errmsg(vm));
    rt_vm_clear_error(vm);
    return m;
}

/* The model both resume tests run, with its data. */
static const char normal_model_src[] = "model m(y) {\n  sample mu ~ Normal(0.0, 10.0)\n  sample s ~ HalfNormal(2.0)\n"
                                       "  plate n(len(y)) {\n    observe y ~ Normal(mu, s)\n  }\n}\n"
                                       "data = {y: [1.5, 3.0, 2.0, 4.5, 1.5]}\n";

/* An empty file made at path (a mkstemp template), for a checkpoint. */
static void make_temp(char *path) {
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

START_TEST(test_model_resume_after_interrupt) {
    rt_vm *vm = vm_running(normal_model_src);
    char path[] = "/tmp/ppl_ckpt_XXXXXX";
    make_temp(path);
    /* chains in turn: the stop comes right after chain 1, whatever the
     * machine's cores and load (parallel chains: test_mcmc_threads.c) */
    inf_mcmc_opts o = {.chains = 3, .warmup = 200, .samples = 150, .max_depth = 10, .target_accept = 0.8, .seed = 3,
                       .threads = 1};
    inf_mcmc *ref = run_model(vm, &o, 0);
    o.checkpoint = path;
    vm->progress = interrupt_after_first;
    vm->progress_ud = vm;
    ck_assert_ptr_null(run_model(vm, &o, -1));
    vm->progress = NULL;
    /* the file holds chain 1 finished, the others not started */
    char err[256] = "";
    size_t len;
    char *text = rt_read_file(path, &len, err, sizeof err);
    ck_assert_msg(text != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(text, "\nchain 0 saved\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nchain 1 pending\nchain 2 pending\nend\n"));
    free(text);
    o.checkpoint = NULL;
    o.resume = path;
    inf_mcmc *got = run_model(vm, &o, 0);
    ck_assert_int_eq(ref->nnames, got->nnames);
    ck_assert_mem_eq(ref->draws, got->draws, sizeof(double) * 3 * 150 * (size_t)ref->nnames);
    /* a finished checkpoint resumes to the same result again */
    inf_mcmc *again = run_model(vm, &o, 0);
    ck_assert_mem_eq(ref->draws, again->draws, sizeof(double) * 3 * 150 * (size_t)ref->nnames);
    inf_mcmc_free(ref);
    inf_mcmc_free(got);
    inf_mcmc_free(again);
    remove(path);
    rt_vm_free(vm);
}
END_TEST

/* HMC(trajectory_length=): the file records the length; a resume with
 * another length or kernel is refused, the same one continues exactly. */
START_TEST(test_model_resume_trajectory_length) {
    rt_vm *vm = vm_running(normal_model_src);
    char path[] = "/tmp/ppl_ckpt_XXXXXX";
    make_temp(path);
    inf_mcmc_opts o = {.chains = 2, .warmup = 150, .samples = 100, .max_depth = 10, .target_accept = 0.8, .seed = 4,
                       .threads = 1, .hmc_steps = MC_HMC_TRAJ, .trajectory_length = 1.5};
    inf_mcmc *ref = run_model(vm, &o, 0);
    o.checkpoint = path;
    vm->progress = interrupt_after_first;
    vm->progress_ud = vm;
    ck_assert_ptr_null(run_model(vm, &o, -1));
    vm->progress = NULL;
    o.checkpoint = NULL;
    o.resume = path;
    const struct { int steps; double traj; const char *msg; } bad[] = {
        {MC_HMC_TRAJ, 2.0, "it was made with trajectory_length 1.5, this run has 2"},
        {0, 0.0, "it was made with kernel HMC(trajectory_length=...), this run has NUTS"},
        {10, 0.0, "it was made with kernel HMC(trajectory_length=...), this run has HMC(num_steps=...)"},
    };
    for (int k = 0; k < 3; k++) {
        inf_mcmc_opts b = o;
        b.hmc_steps = bad[k].steps;
        b.trajectory_length = bad[k].traj;
        inf_mcmc *m = NULL;
        int rc = inf_mcmc_run(vm, (rt_func *)rt_global_get(vm, "m")->u.o,
                              (rt_record *)rt_global_get(vm, "data")->u.o, &b, (rt_loc){0}, &m);
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(m);
        char *msg = rt_vm_errmsg(vm);
        ck_assert_msg(strstr(msg, bad[k].msg) != NULL, "%s", msg);
        free(msg);
        rt_vm_clear_error(vm);
    }
    inf_mcmc *got = run_model(vm, &o, 0);
    ck_assert_int_eq(ref->nnames, got->nnames);
    ck_assert_mem_eq(ref->draws, got->draws, sizeof(double) * 2 * 100 * (size_t)ref->nnames);
    for (int c = 0; c < 2; c++)
        ck_assert_mem_eq(ref->out[c].n_leapfrog, got->out[c].n_leapfrog, sizeof(double) * 100);
    inf_mcmc_free(ref);
    inf_mcmc_free(got);
    remove(path);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("mcmc_ckpt");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_resume_nuts_diag, 0, NSTOPS);
    tcase_add_loop_test(tc, test_resume_nuts_dense, 0, NSTOPS);
    tcase_add_loop_test(tc, test_resume_hmc, 0, NSTOPS);
    tcase_add_loop_test(tc, test_resume_rwm, 0, NSTOPS);
    tcase_add_loop_test(tc, test_resume_hmc_traj, 0, NSTOPS);
    tcase_add_test(tc, test_stop_undoes_iteration);
    tcase_add_test(tc, test_load_rejects_mismatch);
    tcase_add_test(tc, test_model_resume_after_interrupt);
    tcase_add_test(tc, test_load_rejects_trajectory_length);
    tcase_add_test(tc, test_model_resume_trajectory_length);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
