/* test_svi_epochs.c - svi(epochs=): every index once per epoch in a seeded
 * fresh order, the N / len(batch) scale of every minibatch (the last,
 * smaller one too), the epoch loss as an unbiased estimate of the
 * full-data loss (exactly, for a point-mass guide; in expectation, for the
 * exact posterior of a conjugate model, whose full-data ELBO is the
 * analytic log evidence), early stopping with the best parameters put
 * back, resume, the C API's epochs and the option errors.
 *
 * A recording handler, pushed below svi's own, sees every plate message
 * (the minibatch indices as the model got them) and the scale of the
 * observed site "y". */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ppl.h"
#include "vm_fixture.h"

#define MAXREC 20000

typedef struct rec {
    int n;                   /* plate messages seen */
    int len[MAXREC];         /* minibatch sizes */
    int64_t *idx;            /* all indices, concatenated */
    int64_t nidx, cap;
    int nscale;
    double scale[MAXREC];    /* scale of site "y", per model run */
} rec;

static int rec_post(rt_vm *vm, rt_handler *h, rt_msg *m) {
    (void)vm;
    rec *r = h->state;
    if (m->kind == RT_SITE_PLATE && r->n < MAXREC) {
        r->len[r->n++] = (int)m->value->numel;
        if (r->nidx + m->value->numel > r->cap) {
            r->cap = 2 * (r->cap + m->value->numel);
            r->idx = realloc(r->idx, r->cap * sizeof *r->idx);
        }
        for (int64_t i = 0; i < m->value->numel; i++) r->idx[r->nidx++] = (int64_t)bk_get(m->value, i);
    }
    if ((m->kind == RT_SITE_OBSERVE || (m->kind == RT_SITE_SAMPLE && m->observed)) && strcmp(m->name, "y") == 0 &&
        r->nscale < MAXREC)
        r->scale[r->nscale++] = m->scale;
    return 0;
}

static rt_vm *V;
static rt_handler H;
static rec *R;

static void vsetup(void) {
    V = vm_running("y = [1.0, 2.0, 0.5, 1.5, 3.0, 2.5, 1.2, 0.8, 2.2, 1.9]\n"
                   "model m(y) {\n"
                   "    sample mu ~ Normal(0.0, 10.0)\n"
                   "    plate data(len(y), subsample=3) as idx {\n"
                   "        observe y[idx] ~ Normal(mu, 1.0)\n"
                   "    }\n"
                   "}\n"
                   "guide g(y) {\n"
                   "    param loc = 0.0\n"
                   "    param scale: positive = 1.0\n"
                   "    sample mu ~ Normal(loc, scale)\n"
                   "}\n");
    R = calloc(1, sizeof *R);
    memset(&H, 0, sizeof H);
    H.type = "record";
    H.postprocess = rec_post;
    H.state = R;
    ck_assert(rt_push_handler(V, &H) == 0);
}

static void vteardown(void) {
    rt_pop_handler(V, &H);
    free(R->idx);
    free(R);
    rt_vm_free(V);
}

static void rec_reset(void) {
    free(R->idx);
    memset(R, 0, sizeof *R);
}

static int run_src(const char *src) {
    rt_source *s = rt_source_new("t.ppl", src, strlen(src));
    int rc = rt_run_source(V, s, false, NULL);
    rt_source_release(s);
    return rc;
}

#define RUNV(src)                                                                                    \
    do {                                                                                             \
        if (run_src(src)) {                                                                          \
            char *m_ = rt_vm_errmsg(V);                                                              \
            ck_abort_msg("%s", m_);                                                                  \
        }                                                                                            \
    } while (0)

/* Element i of a numeric global. */
static double gv(const char *name, int64_t i) {
    rt_value *v = rt_global_get(V, name);
    ck_assert_msg(v && v->tag == RT_TENSOR, "%s is not a tensor", name);
    ck_assert_int_lt(i, v->u.t->numel);
    return bk_get(v->u.t, i);
}

static int64_t glen(const char *name) {
    rt_value *v = rt_global_get(V, name);
    ck_assert(v && v->tag == RT_TENSOR);
    return v->u.t->numel;
}

/* The error of a program expected to fail, with its location. */
static void expect_error(const char *src, const char *what, const char *where) {
    ck_assert_int_ne(run_src(src), 0);
    char *m = rt_vm_errmsg(V);
    ck_assert_msg(strstr(m, what), "expected \"%s\" in: %s", what, m);
    if (where) ck_assert_msg(strstr(m, where), "expected location \"%s\" in: %s", where, m);
    free(m);
    rt_vm_clear_error(V);
}

static const double Y[10] = {1.0, 2.0, 0.5, 1.5, 3.0, 2.5, 1.2, 0.8, 2.2, 1.9};

/* Each epoch's indices, 0..N-1 each exactly once, in batches of 3, 3, 3, 1
 * scaled by 10/3 and 10; reproducible for a seed, fresh per epoch. */
START_TEST(every_index_once_per_epoch) {
    RUNV("f = svi(m, g, {y: y}, epochs=6, optim=Adam(lr=0.01), seed=5, summary_samples=0)\n"
         "nl = len(f.losses)\nne = len(f.epoch_losses)\nnv = len(f.val_losses)\n");
    ck_assert_int_eq(R->n, 24);
    ck_assert_int_eq((int)gv("nl", 0), 24);
    ck_assert_int_eq((int)gv("ne", 0), 6);
    ck_assert_int_eq((int)gv("nv", 0), 0);
    int64_t first[60];
    memcpy(first, R->idx, sizeof first);
    for (int e = 0; e < 6; e++) {
        int seen[10] = {0};
        for (int k = 0; k < 4; k++) {
            ck_assert_int_eq(R->len[4 * e + k], k < 3 ? 3 : 1);
            double want = k < 3 ? 10.0 / 3.0 : 10.0;
            ck_assert_msg(fabs(R->scale[4 * e + k] - want) < 1e-15, "scale %g, want %g", R->scale[4 * e + k], want);
        }
        for (int i = 0; i < 10; i++) seen[first[10 * e + i]]++;
        for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
    }
    /* six orders, all different (the chance that two of 10! coincide is nil) */
    for (int a = 0; a < 6; a++)
        for (int b = a + 1; b < 6; b++)
            ck_assert(memcmp(first + 10 * a, first + 10 * b, 10 * sizeof *first) != 0);
    /* the same seed: the same orders; another seed: others */
    rec_reset();
    RUNV("clear_params()\nf = svi(m, g, {y: y}, epochs=6, optim=Adam(lr=0.01), seed=5, summary_samples=0)\n");
    ck_assert(R->nidx == 60 && memcmp(first, R->idx, sizeof first) == 0);
    rec_reset();
    RUNV("clear_params()\nf = svi(m, g, {y: y}, epochs=6, optim=Adam(lr=0.01), seed=6, summary_samples=0)\n");
    ck_assert(R->nidx == 60 && memcmp(first, R->idx, sizeof first) != 0);
    /* shuffle=false: 0..9 in order; batch_size= overrides subsample= */
    rec_reset();
    RUNV("clear_params()\nf = svi(m, g, {y: y}, epochs=2, batch_size=4, shuffle=false, summary_samples=0)\n");
    ck_assert_int_eq(R->n, 6);
    for (int k = 0; k < 6; k++) ck_assert_int_eq(R->len[k], k % 3 < 2 ? 4 : 2);
    ck_assert(fabs(R->scale[2] - 5.0) < 1e-15);
    for (int i = 0; i < 20; i++) ck_assert_int_eq(R->idx[i], i % 10);
}
END_TEST

static double log_normal(double x, double mu, double sd) {
    return -0.5 * log(2 * M_PI) - log(sd) - 0.5 * (x - mu) * (x - mu) / (sd * sd);
}

/* A point-mass guide: each step's loss is -(log p(mu) + 10/len sum_batch
 * log p(y_i | mu)), exactly, and each epoch's (batch-weighted) loss is the
 * full-data loss, whatever the order. */
START_TEST(epoch_loss_is_full_data_loss) {
    RUNV("guide gd(y) {\n    sample mu ~ Delta(1.3)\n}\n"
         "f = svi(m, gd, {y: y}, epochs=5, seed=2, summary_samples=0)\nL = f.losses\nE = f.epoch_losses\n");
    double ll[10], full = -log_normal(1.3, 0, 10);
    for (int i = 0; i < 10; i++) full -= ll[i] = log_normal(Y[i], 1.3, 1);
    ck_assert_int_eq(R->n, 20);
    int64_t off = 0;
    for (int s = 0; s < 20; s++) {
        double sum = 0;
        for (int k = 0; k < R->len[s]; k++) sum += ll[R->idx[off + k]];
        off += R->len[s];
        double want = -(log_normal(1.3, 0, 10) + 10.0 / R->len[s] * sum);
        ck_assert_msg(fabs(gv("L", s) - want) < 1e-12 * fabs(want), "step %d: %.17g vs %.17g", s, gv("L", s), want);
    }
    for (int e = 0; e < 5; e++)
        ck_assert_msg(fabs(gv("E", e) - full) < 1e-12 * full, "epoch %d: %.17g vs %.17g", e, gv("E", e), full);
}
END_TEST

/* The exact posterior of the conjugate model as the guide: the full-data
 * ELBO is log p(y) (analytic), and the minibatch estimators must have it
 * as their expectation: the epoch loss, and the last (size 1, scale 10)
 * step's loss alone, over 3000 epochs; within 4 standard errors. */
START_TEST(estimator_expectation_is_log_evidence) {
    double sy = 0, syy = 0;
    for (int i = 0; i < 10; i++) {
        sy += Y[i];
        syy += Y[i] * Y[i];
    }
    double prec = 1.0 / 100 + 10, pm = sy / prec, ps = sqrt(1 / prec);
    /* y ~ N(0, I + 100 11'): det = 1 + 1000, inverse I - 100/1001 11' */
    double logz = -5 * log(2 * M_PI) - 0.5 * log(1001.0) - 0.5 * (syy - 100.0 * sy * sy / 1001.0);
    char src[512];
    snprintf(src, sizeof src,
             "guide gp(y) {\n    sample mu ~ Normal(%.17g, %.17g)\n}\n"
             "f = svi(m, gp, {y: y}, epochs=3000, seed=11, summary_samples=0)\nL = f.losses\nE = f.epoch_losses\n",
             pm, ps);
    RUNV(src);
    int n = 3000;
    double me = 0, ve = 0, ml = 0, vl = 0;
    for (int e = 0; e < n; e++) {
        me += gv("E", e);
        ml += gv("L", 4 * e + 3);
    }
    me /= n;
    ml /= n;
    for (int e = 0; e < n; e++) {
        ve += (gv("E", e) - me) * (gv("E", e) - me);
        vl += (gv("L", 4 * e + 3) - ml) * (gv("L", 4 * e + 3) - ml);
    }
    double se_e = sqrt(ve / (n - 1) / n), se_l = sqrt(vl / (n - 1) / n);
    ck_assert_msg(fabs(me + logz) < 4 * se_e, "epoch loss mean %.6g vs -log p(y) %.6g (se %.3g)", me, -logz, se_e);
    ck_assert_msg(fabs(ml + logz) < 4 * se_l, "last-batch loss mean %.6g vs %.6g (se %.3g)", ml, -logz, se_l);
    /* the scale matters: without it the last batch's mean would be ~9 nats off */
    ck_assert(se_l < 1.0);
}
END_TEST

/* Training data around 5, validation data around 1: with a point mass
 * moving from 0 towards 5 the validation loss falls, then rises; the run
 * stops `patience` epochs after its best epoch and puts that epoch's
 * parameters back (equal, bit for bit, to a run of best + 1 epochs). */
START_TEST(early_stopping_restores_best) {
    RUNV("yt = [4.0, 5.0, 6.0, 5.5, 4.5, 5.2, 4.8, 5.0]\nyv = [0.5, 1.5, 1.0]\n"
         "model mt(y) {\n    sample mu ~ Normal(0.0, 10.0)\n"
         "    plate data(len(y), subsample=4) as idx {\n        observe y[idx] ~ Normal(mu, 1.0)\n    }\n}\n"
         "guide gt(y) {\n    param loc = 0.0\n    sample mu ~ Delta(loc)\n}\n"
         "f = svi(mt, gt, {y: yt}, epochs=200, optim=SGD(lr=0.002), validation={y: yv}, patience=3, seed=1,\n"
         "        summary_samples=0)\n"
         "V = f.val_losses\nbest = f.best_epoch\nstopped = f.stopped_early\nloc = f.params.loc\n");
    int best = (int)gv("best", 0);
    int64_t ne = glen("V");
    ck_assert(gv("stopped", 0) == 1);
    ck_assert_int_eq(ne, best + 1 + 3);
    ck_assert_int_gt(best, 2);
    for (int64_t e = 0; e < ne; e++) ck_assert(gv("V", e) >= gv("V", best));
    for (int e = 1; e <= best; e++) ck_assert(gv("V", e) < gv("V", e - 1)); /* falling until the best */
    double loc = gv("loc", 0);
    char src[400];
    snprintf(src, sizeof src,
             "clear_params()\nf2 = svi(mt, gt, {y: yt}, epochs=%d, optim=SGD(lr=0.002), seed=1, summary_samples=0)\n"
             "loc2 = f2.params.loc\n"
             "clear_params()\nf3 = svi(mt, gt, {y: yt}, epochs=%d, optim=SGD(lr=0.002), seed=1, summary_samples=0)\n"
             "loc3 = f3.params.loc\n",
             best + 1, (int)ne);
    RUNV(src);
    ck_assert_msg(loc == gv("loc2", 0), "restored %.17g, best epoch's %.17g", loc, gv("loc2", 0));
    ck_assert(loc != gv("loc3", 0));
    /* restore_best=false keeps the last epoch's parameters */
    RUNV("clear_params()\nf = svi(mt, gt, {y: yt}, epochs=200, optim=SGD(lr=0.002), validation={y: yv}, patience=3,\n"
         "        seed=1, summary_samples=0, restore_best=false)\nloc4 = f.params.loc\n");
    ck_assert(gv("loc4", 0) == gv("loc3", 0));
    /* min_delta: no later epoch improves by 1e6, so epoch 0 stays the best */
    RUNV("clear_params()\nf = svi(mt, gt, {y: yt}, epochs=200, optim=SGD(lr=0.002), validation={y: yv}, patience=2,\n"
         "        min_delta=1e6, seed=1, summary_samples=0)\nb5 = f.best_epoch\nn5 = len(f.epoch_losses)\n");
    ck_assert(gv("b5", 0) == 0 && gv("n5", 0) == 3);
    /* without validation the train epoch loss is watched; no stop here */
    RUNV("clear_params()\nf = svi(mt, gt, {y: yt}, epochs=20, optim=SGD(lr=0.002), patience=3, seed=1,\n"
         "        summary_samples=0)\ns6 = f.stopped_early\nb6 = f.best_epoch\n");
    ck_assert(gv("s6", 0) == 0 && gv("b6", 0) == 19);
}
END_TEST

/* The validation loss is the full-data loss on the validation data, whole
 * or in batches (no gradient, the same draws every epoch); for a point
 * mass it is exact. */
START_TEST(validation_loss_exact_for_point_mass) {
    RUNV("yv = [0.5, 1.5, 1.0, 2.0, 0.0]\nguide gd(y) {\n    sample mu ~ Delta(1.3)\n}\n"
         "f = svi(m, gd, {y: y}, epochs=2, validation={y: yv}, seed=2, summary_samples=0)\nV1 = f.val_losses\n"
         "f = svi(m, gd, {y: y}, epochs=2, validation={y: yv}, val_batch_size=2, seed=2, summary_samples=0)\n"
         "V2 = f.val_losses\n");
    const double yv[5] = {0.5, 1.5, 1.0, 2.0, 0.0};
    double want = -log_normal(1.3, 0, 10);
    for (int i = 0; i < 5; i++) want -= log_normal(yv[i], 1.3, 1);
    for (int e = 0; e < 2; e++) {
        ck_assert(fabs(gv("V1", e) - want) < 1e-12 * want);
        ck_assert(fabs(gv("V2", e) - want) < 1e-12 * want);
    }
}
END_TEST

/* resume=true and resume="file" continue the epochs: the orders and the
 * parameters of 3 + 3 epochs are those of 6. */
START_TEST(resume_continues_epochs) {
    const char *path = "/tmp/ppl_test_epochs_resume.json";
    RUNV("f = svi(m, g, {y: y}, epochs=6, seed=4, summary_samples=0)\nl6 = f.params.loc\n");
    int64_t all[60];
    memcpy(all, R->idx, sizeof all);
    rec_reset();
    char src[400];
    snprintf(src, sizeof src,
             "clear_params()\nf = svi(m, g, {y: y}, epochs=3, seed=4, summary_samples=0)\nsave_params(\"%s\")\n"
             "clear_params()\nf = svi(m, g, {y: y}, epochs=3, summary_samples=0, resume=\"%s\")\nl33 = f.params.loc\n",
             path, path);
    RUNV(src);
    ck_assert(R->nidx == 60 && memcmp(all, R->idx, sizeof all) == 0);
    ck_assert_msg(gv("l33", 0) == gv("l6", 0), "%.17g vs %.17g", gv("l33", 0), gv("l6", 0));
    remove(path);
}
END_TEST

/* No subsampled plate: an epoch is one full-data step. */
START_TEST(no_plate_one_step_per_epoch) {
    RUNV("model mf(y) {\n    sample mu ~ Normal(0.0, 10.0)\n    plate data(len(y)) as idx {\n"
         "        observe y[idx] ~ Normal(mu, 1.0)\n    }\n}\n"
         "f = svi(mf, g, {y: y}, epochs=5, summary_samples=0)\nn = len(f.losses)\nL = f.losses\nE = f.epoch_losses\n");
    ck_assert(gv("n", 0) == 5);
    for (int i = 0; i < 5; i++) ck_assert(gv("L", i) == gv("E", i));
    /* plate= drives a plate declared without subsample= */
    rec_reset();
    RUNV("f = svi(mf, g, {y: y}, epochs=2, batch_size=5, plate=\"data\", summary_samples=0)\nn = len(f.losses)\n");
    ck_assert(gv("n", 0) == 4 && R->n == 4 && R->len[0] == 5);
    ck_assert(fabs(R->scale[0] - 2.0) < 1e-15);
}
END_TEST

START_TEST(option_errors) {
    expect_error("f = svi(m, g, {y: y}, batch_size=4)\n", "svi: batch_size= needs epochs=", "t.ppl:1:34");
    expect_error("f = svi(m, g, {y: y}, steps=10, epochs=2)\n", "give steps= or epochs=, not both", "t.ppl:1:29");
    expect_error("f = svi(m, g, {y: y}, epochs=2, batch_size=11)\n",
                 "batch size 11 is larger than plate \"data\" (size 10)", "t.ppl:1:44");
    expect_error("f = svi(m, g, {y: y}, epochs=0)\n", "epochs must be an integer >= 1", "t.ppl:1:30");
    expect_error("f = svi(m, g, {y: y}, epochs=2, patience=0)\n", "patience must be an integer >= 1", NULL);
    expect_error("f = svi(m, g, {y: y}, epochs=2, validation=3)\n", "validation must be a record", "t.ppl:1:44");
    expect_error("f = svi(m, g, {y: y}, epochs=2, min_delta=-1)\n", "min_delta must be a number >= 0", NULL);
    expect_error("f = svi(m, g, {y: y}, epochs=2, plate=\"nope\")\n", "plate=\"nope\": no plate of that name",
                 "t.ppl:1:39");
    expect_error("model m0(y) {\n    sample mu ~ Normal(0.0, 10.0)\n    observe y ~ Normal(mu, 1.0)\n}\n"
                 "f = svi(m0, g, {y: 1.0}, epochs=2, batch_size=2)\n", "batch_size= needs a minibatch plate",
                 "t.ppl:5:47");
    /* two subsampled plates: ambiguous, located at the second */
    expect_error("model m2(y, w) {\n    sample mu ~ Normal(0.0, 10.0)\n"
                 "    plate a(len(y), subsample=2) as i {\n        observe y[i] ~ Normal(mu, 1.0)\n    }\n"
                 "    plate b(len(w), subsample=2) as j {\n        observe w[j] ~ Normal(mu, 2.0)\n    }\n}\n"
                 "f = svi(m2, g, {y: y, w: y}, epochs=1)\n",
                 "plates \"a\" and \"b\" are both subsampled; name the one the epochs run over with plate=\"a\"",
                 "t.ppl:6:");
    RUNV("f = svi(m2, g, {y: y, w: y}, epochs=1, plate=\"b\", summary_samples=0)\nn2 = len(f.losses)\n");
    ck_assert(gv("n2", 0) == 5);
    expect_error("f = svi(m, g, {y: y}, steps=2)\nx = f.best_epoch\n", "this fit ran by steps", "t.ppl:2:");
}
END_TEST

/* The C API (ppl svi --epochs ...): epochs, validation file, patience; the
 * epoch progress once per epoch with the validation ELBO; the JSON. */
static int ncalls, nends;
static double last_val;
static void on_epoch(void *ud, long epoch, long epochs, long step, long steps, double elbo, double val) {
    (void)ud;
    (void)epoch;
    (void)epochs;
    (void)elbo;
    ncalls++;
    if (step == steps) {
        nends++;
        last_val = val;
    }
}

START_TEST(api_epochs) {
    const char *vpath = "/tmp/ppl_test_epochs_val.json";
    FILE *f = fopen(vpath, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"y\": [1.1, 2.1, 1.4]}\n", f);
    fclose(f);
    ppl_options po = ppl_default_options();
    po.progress_epoch = on_epoch;
    ppl_state *S = ppl_open(&po);
    ck_assert_int_eq(ppl_load_string(S, "a.ppl",
                                     "y = [1.0, 2.0, 0.5, 1.5, 3.0, 2.5, 1.2, 0.8, 2.2, 1.9]\n"
                                     "model m(y) {\n    sample mu ~ Normal(0.0, 10.0)\n"
                                     "    plate data(len(y), subsample=3) as idx {\n"
                                     "        observe y[idx] ~ Normal(mu, 1.0)\n    }\n}\n"),
                     PPL_OK);
    ppl_svi_opts so = ppl_svi_defaults();
    so.epochs = 7;
    so.batch_size = 4;
    so.validation_json = vpath;
    so.summary_samples = 100;
    ppl_result *res = NULL;
    ck_assert_msg(ppl_svi(S, "m", &so, &res) == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_int_eq(nends, 7);
    ck_assert(isfinite(last_val));
    char *js = ppl_result_json(res);
    ck_assert_ptr_nonnull(strstr(js, "\"steps\": 21"));
    ck_assert_ptr_nonnull(strstr(js, "\"epochs\": {\"train_elbo\": ["));
    ck_assert_ptr_nonnull(strstr(js, "\"stopped_early\": false"));
    free(js);
    ppl_result_free(res);
    ppl_close(S);
    remove(vpath);
}
END_TEST

int main(void) {
    Suite *s = suite_create("svi_epochs");
    TCase *tc = tcase_create("epochs");
    tcase_add_checked_fixture(tc, vsetup, vteardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_index_once_per_epoch);
    tcase_add_test(tc, epoch_loss_is_full_data_loss);
    tcase_add_test(tc, estimator_expectation_is_log_evidence);
    tcase_add_test(tc, early_stopping_restores_best);
    tcase_add_test(tc, validation_loss_exact_for_point_mass);
    tcase_add_test(tc, resume_continues_epochs);
    tcase_add_test(tc, no_plate_one_step_per_epoch);
    tcase_add_test(tc, option_errors);
    tcase_add_test(tc, api_epochs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
