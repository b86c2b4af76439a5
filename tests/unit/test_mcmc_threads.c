/* test_mcmc_threads.c - chains in parallel threads give the very draws of
 * chains run in turn, for any thread count: with globals the model reaches
 * (a function, a tensor, a record, a string), with a global the copy cannot
 * take (a distribution: the chains then run in turn), with NUTS and RWM,
 * and when a parallel run is interrupted and resumed. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mcmc.h"
#include "ppl.h"
#include "vm_fixture.h"

static const char *SRC =
    "scale = 2.0\n"
    "info = {offset: [0.5, -0.5], label: \"x\"}\n"
    "def shift(v) {\n  return v + info.offset\n}\n"
    "prior = Normal(0.0, 3.0)\n"
    "model m(y) {\n  sample mu ~ Normal(zeros(2), scale).to_event(1)\n  sample s ~ HalfNormal(1.0)\n"
    "  plate n(len(y)) {\n    observe y ~ Normal(shift(mu)[0] * 0.5 + mu[1], s)\n  }\n"
    "  deterministic d = mu[0] - mu[1]\n}\n"
    "model uses_dist(y) {\n  sample mu ~ prior\n  plate n(len(y)) {\n    observe y ~ Normal(mu, 1.0)\n  }\n}\n"
    "data = {y: [1.5, 3.0, 2.0, 4.5, 1.5, 0.3]}\n";

static rt_vm *vm_with_source(void) { return vm_running(SRC); }

static inf_mcmc *run(rt_vm *vm, const char *model, inf_mcmc_opts *o, int expect_rc) {
    inf_mcmc *m = NULL;
    int rc = inf_mcmc_run(vm, (rt_func *)rt_global_get(vm, model)->u.o, (rt_record *)rt_global_get(vm, "data")->u.o,
                          o, (rt_loc){0}, &m);
    ck_assert_msg(rc == expect_rc, "rc %d: %s", rc, rt_vm_errmsg(vm));
    rt_vm_clear_error(vm);
    return m;
}

static void same(const inf_mcmc *a, const inf_mcmc *b) {
    ck_assert_int_eq(a->nnames, b->nnames);
    ck_assert_int_eq(a->chains * a->samples, b->chains * b->samples);
    ck_assert_mem_eq(a->draws, b->draws, sizeof(double) * (size_t)a->chains * a->samples * (size_t)a->nnames);
    for (int c = 0; c < a->chains; c++) {
        ck_assert_mem_eq(a->out[c].energy, b->out[c].energy, sizeof(double) * (size_t)a->samples);
        ck_assert(a->out[c].final_step == b->out[c].final_step);
    }
}

static void thread_counts(const char *model, int hmc_steps) {
    rt_vm *vm = vm_with_source();
    inf_mcmc_opts o = {.chains = 5, .warmup = 150, .samples = 100, .max_depth = 10,
                       .target_accept = hmc_steps == MC_RWM ? 0.234 : 0.8, .hmc_steps = hmc_steps, .seed = 11};
    o.threads = 1;
    inf_mcmc *ref = run(vm, model, &o, 0);
    int counts[] = {2, 3, 8};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        o.threads = counts[i];
        inf_mcmc *m = run(vm, model, &o, 0);
        same(ref, m);
        inf_mcmc_free(m);
    }
    inf_mcmc_free(ref);
    rt_vm_free(vm);
}

START_TEST(test_threads_nuts) { thread_counts("m", 0); }
END_TEST
START_TEST(test_threads_rwm) { thread_counts("m", MC_RWM); }
END_TEST
/* `prior` is a distribution held in a global: no private copy, in turn */
START_TEST(test_threads_fallback) { thread_counts("uses_dist", 0); }
END_TEST

/* "sample" progress comes once per finished chain, done = 1, 2, ..., from
 * the calling thread, even when several chains end within one poll (on a
 * loaded machine they often do: the calling thread is descheduled) */
typedef struct seen {
    long calls, last_done, bad;   /* bad: the call number that was out of line */
    double last_div;
} seen;

/* checked after the run (an assertion here would jump out past the threads) */
static void count_progress(void *ud, const char *phase, long done, long total, double value) {
    seen *s = ud;
    s->calls++;
    if (!s->bad && (strcmp(phase, "sample") != 0 || total != 6 || done != s->last_done + 1 || value < s->last_div))
        s->bad = s->calls;
    s->last_done = done;
    s->last_div = value;
}

START_TEST(test_threads_progress_each_chain) {
    rt_vm *vm = vm_with_source();
    /* six short chains on six threads end at about the same time */
    inf_mcmc_opts o = {.chains = 6, .warmup = 20, .samples = 10, .max_depth = 10, .target_accept = 0.8,
                       .seed = 2, .threads = 6};
    seen s = {0};
    vm->progress = count_progress;
    vm->progress_ud = &s;
    inf_mcmc *m = run(vm, "m", &o, 0);
    ck_assert_msg(s.bad == 0, "progress call %ld out of line (done %ld)", s.bad, s.last_done);
    ck_assert_int_eq(s.calls, 6);
    ck_assert(s.last_div == (double)m->divergences);
    inf_mcmc_free(m);
    vm->progress = NULL;
    rt_vm_free(vm);
}
END_TEST

/* Progress within the chains: the reports are counted by the iterations
 * they carry, never by time.  In turn the calling thread polls after every
 * iteration, so the reports are exactly the crossings of each 1% of the
 * total; with threads some crossings may share a report.  Either way the
 * iterations grow, the per-chain counts add up, the last report has the
 * total and the divergences of the result, and the draws are the same as
 * without progress. */
typedef struct iters {
    long calls, last, bad, dones[128];
    long last_div;
    int steps_ok;
} iters;

static void count_iterations(void *ud, const ppl_mcmc_progress *p) {
    iters *s = ud;
    long sum = 0;
    for (int c = 0; c < p->chains; c++) {
        sum += p->chain_done[c];
        /* a chain that has iterated has a step size */
        if (p->chain_done[c] > 0 && !(p->chain_step[c] > 0)) s->steps_ok = 0;
    }
    if (!s->bad && (p->done <= s->last || sum != p->done || p->total != 3 * 250 || p->divergences < s->last_div))
        s->bad = s->calls + 1;
    if (s->calls < 128) s->dones[s->calls] = p->done;
    s->calls++;
    s->last = p->done;
    s->last_div = p->divergences;
}

static void progress_within_chains(int threads) {
    rt_vm *vm = vm_with_source();
    inf_mcmc_opts o = {.chains = 3, .warmup = 150, .samples = 100, .max_depth = 10, .target_accept = 0.8,
                       .seed = 4, .threads = threads};
    inf_mcmc *ref = run(vm, "m", &o, 0);
    iters s = {.steps_ok = 1};
    vm->mcmc_progress = count_iterations;
    vm->progress_ud = &s;
    inf_mcmc *m = run(vm, "m", &o, 0);
    vm->mcmc_progress = NULL;
    ck_assert_msg(s.bad == 0, "progress report %ld out of line", s.bad);
    ck_assert(s.steps_ok);
    ck_assert_int_eq(s.last, 750);
    ck_assert_int_eq(s.last_div, m->divergences);
    /* 1% of 750 iterations is 8 (rounded up): at most ceil(750 / 8) = 94 reports */
    ck_assert_int_le(s.calls, 94);
    if (threads == 1) {
        ck_assert_int_eq(s.calls, 94);
        for (long i = 0; i < s.calls; i++) ck_assert_int_eq(s.dones[i], i < 93 ? 8 * (i + 1) : 750);
    }
    same(ref, m);
    inf_mcmc_free(ref);
    inf_mcmc_free(m);
    rt_vm_free(vm);
}

START_TEST(test_progress_in_turn) { progress_within_chains(1); }
END_TEST
START_TEST(test_progress_threads) { progress_within_chains(3); }
END_TEST

static void interrupt_after_first(void *ud, const char *phase, long done, long total, double value) {
    (void)phase, (void)total, (void)value;
    if (done >= 1) ((rt_vm *)ud)->interrupted = 1;
}

START_TEST(test_threads_interrupt_resume) {
    rt_vm *vm = vm_with_source();
    char path[] = "/tmp/ppl_thr_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    inf_mcmc_opts o = {.chains = 4, .warmup = 300, .samples = 200, .max_depth = 10, .target_accept = 0.8,
                       .seed = 5, .threads = 1};
    inf_mcmc *ref = run(vm, "m", &o, 0);
    o.threads = 2;
    o.checkpoint = path;
    o.checkpoint_every = 25;
    vm->progress = interrupt_after_first;
    vm->progress_ud = vm;
    ck_assert_ptr_null(run(vm, "m", &o, -1));
    vm->progress = NULL;
    o.checkpoint = NULL;
    o.resume = path;
    o.threads = 3;
    inf_mcmc *got = run(vm, "m", &o, 0);
    same(ref, got);
    inf_mcmc_free(ref);
    inf_mcmc_free(got);
    remove(path);
    rt_vm_free(vm);
}
END_TEST

int main(void) {
    Suite *s = suite_create("mcmc_threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_nuts);
    tcase_add_test(tc, test_threads_rwm);
    tcase_add_test(tc, test_threads_fallback);
    tcase_add_test(tc, test_threads_interrupt_resume);
    tcase_add_test(tc, test_threads_progress_each_chain);
    tcase_add_test(tc, test_progress_in_turn);
    tcase_add_test(tc, test_progress_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
