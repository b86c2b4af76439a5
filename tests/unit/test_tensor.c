/* test_tensor.c - the tensor core: creation, views and strides,
 * broadcasting rules and errors, reference counts, float32 conversion,
 * device mixing, the tape and the reverse sweep (leaf / intermediate
 * gradients, reset, detach, no-grad mode), out-of-memory at every
 * allocation of a sequence of ops, and memory that stays flat over a
 * million scalar op + backward + reset cycles. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor.h"

/* An allocator hook that counts live blocks, so leaks and growth show. */
typedef struct counter {
    long live, total;
} counter;

static void *cnt_malloc(void *ud, size_t n) {
    void *p = malloc(n);
    if (p) ((counter *)ud)->live++, ((counter *)ud)->total++;
    return p;
}
static void *cnt_realloc(void *ud, void *p, size_t n) {
    void *q = realloc(p, n);
    if (q && !p) ((counter *)ud)->live++, ((counter *)ud)->total++;
    return q;
}
static void cnt_free(void *ud, void *p) {
    if (p) ((counter *)ud)->live--;
    free(p);
}

static bk_ctx *counted_ctx(counter *k) {
    memset(k, 0, sizeof *k);
    bk_alloc a = {cnt_malloc, cnt_realloc, cnt_free, k};
    return bk_ctx_new(&a);
}

START_TEST(creation) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *z = bk_zeros(c, BK_F64, 2, (int64_t[]){2, 3});
    ck_assert_int_eq(z->ndim, 2);
    ck_assert_int_eq(z->numel, 6);
    ck_assert(z->strides[0] == 3 && z->strides[1] == 1);
    for (int i = 0; i < 6; i++) ck_assert(bk_get(z, i) == 0);
    bk_tensor *f = bk_full(c, BK_F32, 1, (int64_t[]){3}, 2.5);
    ck_assert_int_eq(f->dtype, BK_F32);
    ck_assert(bk_get(f, 2) == 2.5);
    bk_tensor *s = bk_scalar(c, -1.5);
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(s->numel, 1);
    ck_assert(bk_item(s) == -1.5);
    bk_tensor *a = bk_arange(c, 0, 1, 0.25);
    ck_assert_int_eq(a->numel, 4);
    ck_assert(bk_get(a, 3) == 0.75);
    bk_tensor *l = bk_linspace(c, 1, 2, 5);
    ck_assert(bk_get(l, 0) == 1 && bk_get(l, 4) == 2 && bk_get(l, 2) == 1.5);
    bk_tensor *e = bk_eye(c, 3);
    for (int i = 0; i < 9; i++) ck_assert(bk_get(e, i) == (i % 4 == 0));
    bk_tensor *d = bk_from_f64(c, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
    ck_assert(bk_get(d, 3) == 4 && bk_data(d)[1] == 2);
    bk_tensor *empty = bk_empty(c, BK_F64, 2, (int64_t[]){0, 5});
    ck_assert_int_eq(empty->numel, 0);
    char buf[64];
    ck_assert_str_eq(bk_shape_str(d, buf, sizeof buf), "[2, 2]");
    ck_assert_str_eq(bk_shape_str(s, buf, sizeof buf), "[]");
    /* errors */
    ck_assert(bk_arange(c, 0, 1, 0) == NULL);
    ck_assert(strstr(bk_errmsg(c), "step") != NULL);
    ck_assert(bk_empty(c, BK_F64, 1, (int64_t[]){-2}) == NULL);
    ck_assert(bk_empty(c, BK_F64, BK_MAXDIM + 1, (int64_t[BK_MAXDIM + 1]){0}) == NULL);
    ck_assert(bk_linspace(c, 0, 1, -1) == NULL);
    bk_tensor *all[] = {z, f, s, a, l, e, d, empty};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

START_TEST(views_and_strides) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = bk_from_f64(c, 2, (int64_t[]){2, 3}, (double[]){0, 1, 2, 3, 4, 5});
    /* transposed view [3, 2] */
    bk_tensor *t = bk_view(c, x, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3}, 0);
    ck_assert(!bk_is_contiguous(t));
    ck_assert(bk_is_contiguous(x));
    double out[6];
    bk_copy_out(t, out);
    const double want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++) ck_assert(out[i] == want[i]);
    /* reversed columns of row 1, through a negative stride and an offset */
    bk_tensor *r = bk_view(c, x, 1, (int64_t[]){3}, (int64_t[]){-1}, 5);
    ck_assert(bk_get(r, 0) == 5 && bk_get(r, 2) == 3);
    /* a broadcast (stride 0) view */
    bk_tensor *b = bk_view(c, x, 2, (int64_t[]){4, 3}, (int64_t[]){0, 1}, 3);
    ck_assert(bk_get(b, 10) == 4);
    /* views share storage: a write through x shows in them */
    bk_set(x, 4, 40);
    ck_assert(bk_get(t, 3) == 40);
    ck_assert(bk_get(b, 1) == 40);
    /* elementwise ops read strided inputs */
    bk_tensor *s = bk_add(c, t, t);
    ck_assert(bk_is_contiguous(s));
    ck_assert(bk_get(s, 3) == 80 && bk_get(s, 1) == 6);
    bk_tensor *e = bk_unop(c, BK_OP_NEG, r);
    ck_assert(bk_get(e, 0) == -5 && bk_get(e, 1) == -40);
    /* a view outlives its base: the storage is reference counted */
    bk_release(x);
    ck_assert(bk_get(t, 5) == 5);
    bk_tensor *rt = bk_retain(t);
    ck_assert_int_eq(t->refcount, 2);
    bk_release(rt);
    ck_assert_int_eq(t->refcount, 1);
    bk_release(NULL);
    ck_assert(bk_retain(NULL) == NULL);
    bk_release(t);
    bk_release(r);
    bk_release(b);
    bk_release(s);
    bk_release(e);
    bk_ctx_free(c);
}
END_TEST

START_TEST(broadcasting) {
    bk_ctx *c = bk_ctx_new(NULL);
    int n;
    int64_t out[BK_MAXDIM];
    ck_assert_int_eq(bk_broadcast_shapes(c, 2, (int64_t[]){3, 1}, 1, (int64_t[]){4}, &n, out), 0);
    ck_assert(n == 2 && out[0] == 3 && out[1] == 4);
    ck_assert_int_eq(bk_broadcast_shapes(c, 0, NULL, 3, (int64_t[]){2, 1, 5}, &n, out), 0);
    ck_assert(n == 3 && out[0] == 2 && out[1] == 1 && out[2] == 5);
    ck_assert_int_eq(bk_broadcast_shapes(c, 3, (int64_t[]){2, 1, 0}, 2, (int64_t[]){3, 1}, &n, out), 0);
    ck_assert(n == 3 && out[0] == 2 && out[1] == 3 && out[2] == 0);
    ck_assert_int_eq(bk_broadcast_shapes(c, 1, (int64_t[]){3}, 1, (int64_t[]){4}, &n, out), -1);
    ck_assert_str_eq(bk_errmsg(c), "shapes [3] and [4] cannot be broadcast together");
    /* through an op */
    bk_tensor *a = bk_full(c, BK_F64, 2, (int64_t[]){2, 3}, 1);
    bk_tensor *b = bk_full(c, BK_F64, 1, (int64_t[]){2}, 1);
    bk_clearerr(c);
    ck_assert(bk_mul(c, a, b) == NULL);
    ck_assert_str_eq(bk_errmsg(c), "shapes [2, 3] and [2] cannot be broadcast together");
    /* a failed input propagates NULL without a crash */
    ck_assert(bk_add(c, NULL, a) == NULL);
    /* 1-element inputs of different ranks: the output takes the larger rank */
    bk_tensor *one = bk_full(c, BK_F64, 3, (int64_t[]){1, 1, 1}, 2);
    bk_tensor *s = bk_scalar(c, 3);
    bk_tensor *p = bk_mul(c, s, one);
    ck_assert_int_eq(p->ndim, 3);
    ck_assert(bk_item(p) == 6);
    /* sum_to reduces a broadcast shape back */
    bk_tensor *big = bk_full(c, BK_F64, 3, (int64_t[]){2, 3, 4}, 1);
    bk_tensor *st = bk_sum_to(c, big, 2, (int64_t[]){3, 1});
    ck_assert(st->ndim == 2 && st->shape[0] == 3 && st->shape[1] == 1);
    ck_assert(bk_get(st, 2) == 8);
    ck_assert(bk_sum_to(c, big, 2, (int64_t[]){2, 4}) == NULL);
    bk_tensor *all[] = {a, b, one, s, p, big, st};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

START_TEST(reductions_and_axes) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = bk_from_f64(c, 2, (int64_t[]){2, 3}, (double[]){1, 5, 3, 4, 2, 6});
    bk_tensor *m = bk_reduce(c, BK_OP_MAX, x, -1, true);
    ck_assert(m->ndim == 2 && m->shape[0] == 2 && m->shape[1] == 1);
    ck_assert(bk_get(m, 0) == 5 && bk_get(m, 1) == 6);
    bk_tensor *s = bk_reduce(c, BK_OP_SUM, x, BK_ALL_AXES, false);
    ck_assert(s->ndim == 0 && bk_item(s) == 21);
    bk_tensor *cs = bk_reduce(c, BK_OP_CUMSUM, x, 1, false);
    ck_assert(bk_get(cs, 2) == 9 && bk_get(cs, 5) == 12);
    bk_tensor *sm = bk_reduce(c, BK_OP_SOFTMAX, x, 0, false);
    ck_assert(fabs(bk_get(sm, 0) + bk_get(sm, 3) - 1) < 1e-15);
    bk_tensor *lse = bk_reduce(c, BK_OP_LOGSUMEXP, x, 1, false);
    ck_assert(fabs(bk_get(lse, 0) - log(exp(1) + exp(5) + exp(3))) < 1e-14);
    /* stable for large inputs */
    bk_tensor *huge = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){1000, 1000});
    bk_tensor *l2 = bk_reduce(c, BK_OP_LOGSUMEXP, huge, 0, false);
    ck_assert(fabs(bk_item(l2) - (1000 + log(2))) < 1e-12);
    ck_assert(bk_reduce(c, BK_OP_SUM, x, 2, false) == NULL);
    ck_assert(strstr(bk_errmsg(c), "out of range") != NULL);
    /* softplus / log_sigmoid / sigmoid stay finite far out */
    bk_tensor *far = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){-800, 800});
    bk_tensor *sp = bk_unop(c, BK_OP_SOFTPLUS, far), *ls = bk_unop(c, BK_OP_LOG_SIGMOID, far);
    bk_tensor *sg = bk_unop(c, BK_OP_SIGMOID, far);
    ck_assert(bk_get(sp, 0) == 0 && bk_get(sp, 1) == 800);
    ck_assert(bk_get(ls, 0) == -800 && bk_get(ls, 1) == 0);
    ck_assert(bk_get(sg, 0) == 0 && bk_get(sg, 1) == 1);
    bk_tensor *all[] = {x, m, s, cs, sm, lse, huge, l2, far, sp, ls, sg};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

START_TEST(float32_and_devices) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *a = bk_full(c, BK_F32, 1, (int64_t[]){3}, 0.5);
    bk_tensor *e = bk_unop(c, BK_OP_EXP, a);
    ck_assert_int_eq(e->dtype, BK_F32);
    ck_assert(bk_get(e, 1) == (double)(float)exp(0.5));
    bk_tensor *s = bk_reduce(c, BK_OP_SUM, a, 0, false);
    ck_assert_int_eq(s->dtype, BK_F32);
    ck_assert(bk_item(s) == 1.5);
    /* a storage on another device cannot meet a CPU one in an op (but for
     * 0-d CPU constants, which join any device) */
    bk_device other = bk_cpu_device;
    other.name = "elsewhere";
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){1}, (double[]){1}), *y = bk_scalar(c, 2);
    y->st->dev = &other;
    ck_assert(bk_add(c, x, y) == NULL);
    ck_assert(strstr(bk_errmsg(c), "different devices") != NULL);
    y->st->dev = &bk_cpu_device;
    /* the input count is checked */
    ck_assert(bk_apply(c, BK_OP_ADD, 1, &x, NULL) == NULL);
    ck_assert(strstr(bk_errmsg(c), "takes 2 inputs") != NULL);
    ck_assert(bk_apply(c, BK_OP_COUNT, 1, &x, NULL) == NULL);
    bk_tensor *all[] = {a, e, s, x, y};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

START_TEST(backward_semantics) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    bk_tensor *w = bk_scalar(c, 2);
    bk_set_requires_grad(x, true);
    bk_set_requires_grad(w, true);
    bk_tensor *y = bk_mul(c, x, w);           /* [3] * 0-d */
    ck_assert(y->requires_grad);
    bk_tensor *z = bk_mul(c, y, x);           /* 2 x^2 */
    bk_tensor *l = bk_sum_all(c, z);
    ck_assert_int_eq(bk_tape_len(c), 3);
    ck_assert(bk_backward(c, l) == 0);
    for (int i = 0; i < 3; i++) ck_assert(bk_get(x->grad, i) == 4 * (i + 1));
    ck_assert_int_eq(w->grad->ndim, 0);       /* summed down to the leaf's shape */
    ck_assert(bk_item(w->grad) == 14);
    /* intermediates do not keep gradients */
    ck_assert(y->grad == NULL && z->grad == NULL);
    /* a second backward replaces the leaves' gradients */
    ck_assert(bk_backward(c, l) == 0);
    ck_assert(bk_item(w->grad) == 14);
    /* backward needs a scalar */
    ck_assert(bk_backward(c, z) == -1);
    ck_assert(strstr(bk_errmsg(c), "scalar") != NULL);
    /* reset drops the tape; leaves keep their gradients */
    bk_tape_reset(c);
    ck_assert_int_eq(bk_tape_len(c), 0);
    ck_assert(x->grad != NULL);
    bk_zero_grad(x);
    ck_assert(x->grad == NULL);
    /* no-grad mode records nothing */
    ck_assert(bk_set_grad_enabled(c, false) == true);
    bk_tensor *q = bk_mul(c, x, x);
    ck_assert(!q->requires_grad);
    ck_assert_int_eq(bk_tape_len(c), 0);
    ck_assert(bk_set_grad_enabled(c, true) == false);
    ck_assert(bk_grad_enabled(c));
    /* detach: a copy off the tape */
    bk_tensor *d = bk_detach(c, y);
    ck_assert(!d->requires_grad && d->st != y->st);
    ck_assert(bk_get(d, 2) == 6);
    bk_tensor *dd = bk_mul(c, d, d);
    ck_assert_int_eq(bk_tape_len(c), 0);
    /* a leaf the loss does not depend on gets no gradient */
    bk_tensor *u = bk_scalar(c, 1);
    bk_set_requires_grad(u, true);
    bk_tensor *ux = bk_mul(c, u, w);
    bk_tensor *l2 = bk_mul(c, w, w);
    ck_assert(bk_backward(c, l2) == 0);
    ck_assert(u->grad == NULL);
    ck_assert(bk_item(w->grad) == 4);
    bk_tape_reset(c);
    bk_tensor *all[] = {x, w, y, z, l, q, d, dd, u, ux, l2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

/* concat of more than BK_MAXIN inputs keeps its inputs on the heap */
START_TEST(variadic_tape_entry) {
    bk_ctx *c = bk_ctx_new(NULL);
    enum { N = 7 };
    bk_tensor *ts[N];
    for (int i = 0; i < N; i++) {
        ts[i] = bk_full(c, BK_F64, 1, (int64_t[]){2}, i);
        bk_set_requires_grad(ts[i], true);
    }
    bk_tensor *cat = bk_concat(c, N, ts, 0);
    ck_assert_msg(cat != NULL, "%s", bk_errmsg(c));
    ck_assert_int_eq(cat->numel, 2 * N);
    bk_tensor *sq = bk_mul(c, cat, cat);
    bk_tensor *l = bk_sum_all(c, sq);
    ck_assert(bk_backward(c, l) == 0);
    for (int i = 0; i < N; i++) ck_assert(bk_get(ts[i]->grad, 1) == 2 * i);
    bk_tape_reset(c);
    for (int i = 0; i < N; i++) bk_release(ts[i]);
    bk_release(cat);
    bk_release(sq);
    bk_release(l);
    bk_ctx_free(c);
}
END_TEST

/* A sequence of ops and a backward sweep; returns the number of steps that
 * reported an error (each must leave a message). */
static int op_sequence(bk_ctx *c, bk_tensor *a, bk_tensor *b, bk_tensor *s) {
    int fails = 0;
    bk_tensor *t[13] = {0};
    t[0] = bk_mul(c, a, b);                          /* broadcast [3,4] * [4] */
    t[1] = bk_unop(c, BK_OP_EXP, t[0]);
    t[2] = bk_transpose(c, t[1], 0, 1);
    t[3] = bk_unop(c, BK_OP_LOG1P, t[2]);            /* strided input */
    t[4] = bk_reduce(c, BK_OP_LOG_SOFTMAX, t[3], 0, false);
    t[5] = bk_reduce(c, BK_OP_SUM, t[4], 1, false);
    t[6] = bk_mul(c, s, s);                          /* 1-element fast path */
    t[7] = bk_unop(c, BK_OP_TANH, t[6]);
    t[8] = bk_concat(c, 5, (bk_tensor *[]){b, b, b, b, b}, 0);
    t[9] = bk_reduce(c, BK_OP_PROD, t[8], BK_ALL_AXES, false);
    t[10] = bk_add(c, t[9], t[7]);
    t[11] = bk_sum_all(c, t[5]);
    t[12] = bk_add(c, t[10], t[11]);
    for (int i = 0; i < 13; i++)
        if (!t[i]) fails++;
    if (t[12] && bk_backward(c, t[12])) fails++;
    for (int i = 0; i < 13; i++) bk_release(t[i]);
    bk_tape_reset(c);
    return fails;
}

START_TEST(every_allocation_failure_is_an_error) {
    counter k;
    /* count the allocations of one clean run */
    long nalloc;
    {
        bk_ctx *c = counted_ctx(&k);
        bk_tensor *a = bk_full(c, BK_F64, 2, (int64_t[]){3, 4}, 0.5);
        bk_tensor *b = bk_arange(c, 0, 0.4, 0.1);
        bk_tensor *s = bk_scalar(c, 0.25);
        bk_set_requires_grad(a, true);
        bk_set_requires_grad(b, true);
        bk_set_requires_grad(s, true);
        long before = k.total;
        ck_assert_int_eq(op_sequence(c, a, b, s), 0);
        nalloc = k.total - before;
        bk_release(a);
        bk_release(b);
        bk_release(s);
        bk_ctx_free(c);
        ck_assert_int_eq(k.live, 0);
    }
    ck_assert(nalloc > 10);
    for (long n = 1; n <= nalloc; n++) {
        bk_ctx *c = counted_ctx(&k);
        bk_tensor *a = bk_full(c, BK_F64, 2, (int64_t[]){3, 4}, 0.5);
        bk_tensor *b = bk_arange(c, 0, 0.4, 0.1);
        bk_tensor *s = bk_scalar(c, 0.25);
        bk_set_requires_grad(a, true);
        bk_set_requires_grad(b, true);
        bk_set_requires_grad(s, true);
        bk_clearerr(c);
        bk_fail_alloc_after(c, n);
        int fails = op_sequence(c, a, b, s);
        bk_fail_alloc_after(c, 0);
        ck_assert_msg(fails > 0, "allocation %ld failed silently", n);
        ck_assert_msg(strstr(bk_errmsg(c), "out of memory") != NULL, "allocation %ld: %s", n, bk_errmsg(c));
        bk_release(a);
        bk_release(b);
        bk_release(s);
        bk_ctx_free(c);
        ck_assert_msg(k.live == 0, "allocation %ld: %ld blocks leaked", n, k.live);
    }
}
END_TEST

/* a million small op + backward + reset cycles must not grow memory: the
 * context recycles tensors, storages and the tape */
START_TEST(memory_is_flat_over_a_million_cycles) {
    counter k;
    bk_ctx *c = counted_ctx(&k);
    bk_tensor *x = bk_scalar(c, 0.5);
    bk_set_requires_grad(x, true);
    long warm = 0;
    for (int i = 0; i < 1000000; i++) {
        bk_tensor *y = bk_mul(c, x, x);
        bk_tensor *z = bk_add(c, y, x);
        ck_assert(bk_backward(c, z) == 0);
        bk_release(y);
        bk_release(z);
        bk_tape_reset(c);
        if (i == 1000) warm = k.live;
    }
    ck_assert_int_eq(k.live, warm);
    ck_assert(fabs(bk_item(x->grad) - 2.0) < 1e-15);
    bk_release(x);
    bk_ctx_free(c);
    ck_assert_int_eq(k.live, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, creation);
    tcase_add_test(tc, views_and_strides);
    tcase_add_test(tc, broadcasting);
    tcase_add_test(tc, reductions_and_axes);
    tcase_add_test(tc, float32_and_devices);
    tcase_add_test(tc, backward_semantics);
    tcase_add_test(tc, variadic_tape_entry);
    tcase_add_test(tc, every_allocation_failure_is_an_error);
    tcase_add_test(tc, memory_is_flat_over_a_million_cycles);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
