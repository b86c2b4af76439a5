/* test_index.c - forward values, views and errors of the indexing ops
 * (index, index_put, index_select, gather) and the shape ops (reshape,
 * transpose, expand, concat, stack, contiguous, cast).  Expected values
 * are computed by hand (NumPy / PyTorch semantics). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

static bk_ctx *ctx;

static void setup(void) { ctx = bk_ctx_new(NULL); }
static void teardown(void) { bk_ctx_free(ctx); }

/* 0, 1, ..., n-1 in the given shape */
static bk_tensor *iota(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    bk_tensor *t, *r;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    t = bk_arange(ctx, 0, (double)n, 1);
    r = bk_reshape(ctx, t, ndim, shape);
    bk_release(t);
    return r;
}

static bk_tensor *vec(int n, const double *v)
{
    return bk_from_f64(ctx, 1, (int64_t[]){n}, v);
}

/* t has the given shape and elements (row-major). */
static void expect(const bk_tensor *t, int ndim, const int64_t *shape, const double *v)
{
    ck_assert_msg(t != NULL, "op failed: %s", bk_errmsg(ctx));
    ck_assert_int_eq(t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_int_eq(t->shape[i], shape[i]);
    for (int64_t i = 0; i < t->numel; i++)
        ck_assert_msg(bk_get(t, i) == v[i], "element %lld: %g, want %g", (long long)i,
                      bk_get(t, i), v[i]);
}

static bk_idx ix_int(int64_t i) { return (bk_idx){BK_IDX_INT, i, 0, 0, NULL}; }
static bk_idx ix_slice(int64_t a, int64_t b, int64_t s)
{
    return (bk_idx){BK_IDX_SLICE, a, b, s, NULL};
}
static bk_idx ix_new(void) { return (bk_idx){BK_IDX_NEWAXIS, 0, 0, 0, NULL}; }
static bk_idx ix_tensor(bk_tensor *t) { return (bk_idx){BK_IDX_TENSOR, 0, 0, 0, t}; }

/* -------------------------------------------------------------- index --- */

START_TEST(index_int_slice_views)
{
    bk_tensor *x = iota(2, (int64_t[]){3, 4});
    bk_idx row[1] = {ix_int(1)};
    bk_idx col[2] = {ix_slice(0, 3, 1), ix_int(2)};
    bk_idx rev[2] = {ix_slice(2, -1, -1), ix_slice(3, -1, -2)};
    bk_idx el[2] = {ix_int(2), ix_int(3)};
    bk_tensor *r = bk_index(ctx, x, 1, row), *c = bk_index(ctx, x, 2, col);
    bk_tensor *v = bk_index(ctx, x, 2, rev), *e = bk_index(ctx, x, 2, el);
    expect(r, 1, (int64_t[]){4}, (double[]){4, 5, 6, 7});
    expect(c, 1, (int64_t[]){3}, (double[]){2, 6, 10});
    expect(v, 2, (int64_t[]){3, 2}, (double[]){11, 9, 7, 5, 3, 1});
    expect(e, 0, NULL, (double[]){11});
    /* int and slice results share the input's storage */
    ck_assert_ptr_eq(r->st, x->st);
    ck_assert_ptr_eq(v->st, x->st);
    bk_release(x);
    bk_release(r);
    bk_release(c);
    bk_release(v);
    bk_release(e);
}
END_TEST

START_TEST(index_newaxis_and_empty)
{
    bk_tensor *x = iota(1, (int64_t[]){3});
    bk_idx na[2] = {ix_slice(0, 3, 1), ix_new()};
    bk_idx em[1] = {ix_slice(2, 2, 1)};
    bk_tensor *a = bk_index(ctx, x, 2, na), *b = bk_index(ctx, x, 1, em);
    expect(a, 2, (int64_t[]){3, 1}, (double[]){0, 1, 2});
    expect(b, 1, (int64_t[]){0}, NULL);
    bk_release(x);
    bk_release(a);
    bk_release(b);
}
END_TEST

START_TEST(index_tensor)
{
    bk_tensor *x = iota(2, (int64_t[]){3, 4});
    bk_tensor *i1 = vec(3, (double[]){2, 0, -1});
    bk_tensor *i2 = bk_from_f64(ctx, 2, (int64_t[]){2, 2}, (double[]){0, 3, 1, 1});
    bk_idx a[1] = {ix_tensor(i1)};
    bk_idx b[2] = {ix_int(1), ix_tensor(i2)};
    bk_idx c[2] = {ix_slice(0, 3, 2), ix_tensor(i2)};
    bk_tensor *ra = bk_index(ctx, x, 1, a), *rb = bk_index(ctx, x, 2, b);
    bk_tensor *rc = bk_index(ctx, x, 2, c);
    expect(ra, 2, (int64_t[]){3, 4}, (double[]){8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
    expect(rb, 2, (int64_t[]){2, 2}, (double[]){4, 7, 5, 5});
    expect(rc, 3, (int64_t[]){2, 2, 2}, (double[]){0, 3, 1, 1, 8, 11, 9, 9});
    bk_release(x);
    bk_release(i1);
    bk_release(i2);
    bk_release(ra);
    bk_release(rb);
    bk_release(rc);
}
END_TEST

START_TEST(index_errors)
{
    bk_tensor *x = iota(2, (int64_t[]){3, 4});
    bk_tensor *bad = vec(2, (double[]){0, 5}), *frac = vec(1, (double[]){0.5});
    bk_idx i5[1] = {ix_int(5)};
    bk_idx t5[1] = {ix_tensor(bad)};
    bk_idx tf[1] = {ix_tensor(frac)};
    bk_idx many[3] = {ix_int(0), ix_int(0), ix_int(0)};
    bk_idx two[2] = {ix_tensor(frac), ix_tensor(frac)};
    ck_assert_ptr_null(bk_index(ctx, x, 1, i5));
    ck_assert_str_eq(bk_errmsg(ctx), "index 5 is out of bounds for axis 0 with size 3");
    ck_assert_ptr_null(bk_index(ctx, x, 1, t5));
    ck_assert_str_eq(bk_errmsg(ctx), "index 5 is out of bounds for axis 0 with size 3");
    ck_assert_ptr_null(bk_index(ctx, x, 1, tf));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "integers"));
    ck_assert_ptr_null(bk_index(ctx, x, 3, many));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "too many indices"));
    ck_assert_ptr_null(bk_index(ctx, x, 2, two));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "at most one tensor index"));
    bk_release(x);
    bk_release(bad);
    bk_release(frac);
}
END_TEST

/* ---------------------------------------------------------- index_put --- */

START_TEST(index_put_values)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3});
    bk_tensor *s = bk_scalar(ctx, -1), *row = vec(2, (double[]){7, 8});
    bk_tensor *it = vec(2, (double[]){2, 0});
    bk_idx col[2] = {ix_slice(0, 2, 1), ix_int(1)};
    bk_idx el[2] = {ix_int(1), ix_int(2)};
    bk_idx cols[2] = {ix_int(0), ix_tensor(it)};
    bk_tensor *a = bk_index_put(ctx, x, 2, col, s), *b = bk_index_put(ctx, x, 2, el, s);
    bk_tensor *c = bk_index_put(ctx, x, 2, cols, row), *d = bk_index_put(ctx, x, 2, col, row);
    expect(a, 2, (int64_t[]){2, 3}, (double[]){0, -1, 2, 3, -1, 5});
    expect(b, 2, (int64_t[]){2, 3}, (double[]){0, 1, 2, 3, 4, -1});
    expect(c, 2, (int64_t[]){2, 3}, (double[]){8, 1, 7, 3, 4, 5});
    expect(d, 2, (int64_t[]){2, 3}, (double[]){0, 7, 2, 3, 8, 5});
    expect(x, 2, (int64_t[]){2, 3}, (double[]){0, 1, 2, 3, 4, 5}); /* a is untouched */
    bk_release(x);
    bk_release(s);
    bk_release(row);
    bk_release(it);
    bk_release(a);
    bk_release(b);
    bk_release(c);
    bk_release(d);
}
END_TEST

START_TEST(index_put_errors)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3}), *v = vec(3, (double[]){1, 2, 3});
    bk_idx col[2] = {ix_slice(0, 2, 1), ix_int(1)};
    ck_assert_ptr_null(bk_index_put(ctx, x, 2, col, v));
    ck_assert_str_eq(bk_errmsg(ctx),
                     "index_put: cannot assign a value of shape [3] to a region of shape [2]");
    bk_release(x);
    bk_release(v);
}
END_TEST

/* ---------------------------------------------- index_select, gather --- */

START_TEST(index_select_values)
{
    bk_tensor *x = iota(2, (int64_t[]){3, 2}), *i = vec(4, (double[]){2, 2, 0, 1});
    bk_tensor *r0 = bk_index_select(ctx, x, 0, i), *r1, *bad = vec(1, (double[]){3});
    bk_tensor *i1 = vec(1, (double[]){1});
    r1 = bk_index_select(ctx, x, -1, i1);
    expect(r0, 2, (int64_t[]){4, 2}, (double[]){4, 5, 4, 5, 0, 1, 2, 3});
    expect(r1, 2, (int64_t[]){3, 1}, (double[]){1, 3, 5});
    ck_assert_ptr_null(bk_index_select(ctx, x, 0, bad));
    ck_assert_str_eq(bk_errmsg(ctx), "index 3 is out of bounds for axis 0 with size 3");
    bk_release(x);
    bk_release(i);
    bk_release(i1);
    bk_release(bad);
    bk_release(r0);
    bk_release(r1);
}
END_TEST

START_TEST(gather_values)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3});
    bk_tensor *i = bk_from_f64(ctx, 2, (int64_t[]){2, 2}, (double[]){2, 0, 1, 1});
    bk_tensor *i0 = bk_from_f64(ctx, 2, (int64_t[]){1, 3}, (double[]){1, 0, 1});
    bk_tensor *bad = bk_from_f64(ctx, 2, (int64_t[]){1, 1}, (double[]){4});
    bk_tensor *r = bk_gather(ctx, x, 1, i), *r0 = bk_gather(ctx, x, 0, i0);
    expect(r, 2, (int64_t[]){2, 2}, (double[]){2, 0, 4, 4});
    expect(r0, 2, (int64_t[]){1, 3}, (double[]){3, 1, 5});
    ck_assert_ptr_null(bk_gather(ctx, x, 1, bad));
    ck_assert_str_eq(bk_errmsg(ctx), "index 4 is out of bounds for axis 1 with size 3");
    bk_release(x);
    bk_release(i);
    bk_release(i0);
    bk_release(bad);
    bk_release(r);
    bk_release(r0);
}
END_TEST

/* ---------------------------------------------------------- shape ops --- */

START_TEST(reshape_transpose_expand)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3});
    bk_tensor *r = bk_reshape(ctx, x, 2, (int64_t[]){3, -1});
    bk_tensor *t = bk_transpose(ctx, x, 0, -1);
    bk_tensor *rt = bk_reshape(ctx, t, 1, (int64_t[]){6});
    bk_tensor *col = bk_reshape(ctx, x, 3, (int64_t[]){2, 1, 3});
    bk_tensor *e = bk_expand(ctx, col, 3, (int64_t[]){2, 2, -1});
    bk_tensor *e2 = bk_expand(ctx, x, 3, (int64_t[]){2, 2, 3});
    expect(r, 2, (int64_t[]){3, 2}, (double[]){0, 1, 2, 3, 4, 5});
    ck_assert_ptr_eq(r->st, x->st);
    expect(t, 2, (int64_t[]){3, 2}, (double[]){0, 3, 1, 4, 2, 5});
    ck_assert_ptr_eq(t->st, x->st);
    expect(rt, 1, (int64_t[]){6}, (double[]){0, 3, 1, 4, 2, 5});
    expect(e, 3, (int64_t[]){2, 2, 3}, (double[]){0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
    ck_assert_int_eq(e->strides[1], 0);
    expect(e2, 3, (int64_t[]){2, 2, 3}, (double[]){0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5});
    bk_release(x);
    bk_release(r);
    bk_release(t);
    bk_release(rt);
    bk_release(col);
    bk_release(e);
    bk_release(e2);
}
END_TEST

START_TEST(shape_errors)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3});
    ck_assert_ptr_null(bk_reshape(ctx, x, 1, (int64_t[]){4}));
    ck_assert_str_eq(bk_errmsg(ctx), "reshape: cannot reshape tensor of shape [2, 3] into shape [4]");
    ck_assert_ptr_null(bk_reshape(ctx, x, 2, (int64_t[]){-1, -1}));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "only one dimension can be -1"));
    ck_assert_ptr_null(bk_expand(ctx, x, 2, (int64_t[]){4, 3}));
    ck_assert_str_eq(bk_errmsg(ctx), "expand: cannot expand shape [2, 3] to [4, 3]");
    ck_assert_ptr_null(bk_transpose(ctx, x, 0, 2));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "out of range"));
    bk_release(x);
}
END_TEST

START_TEST(concat_stack_values)
{
    bk_tensor *a = iota(2, (int64_t[]){2, 2}), *b = iota(2, (int64_t[]){2, 1});
    bk_tensor *ab[2] = {a, b}, *aa[2] = {a, a};
    bk_tensor *c1 = bk_concat(ctx, 2, ab, 1), *c0 = bk_concat(ctx, 2, aa, 0);
    bk_tensor *s1 = bk_stack(ctx, 2, aa, 1), *s2 = bk_stack(ctx, 2, aa, -1);
    expect(c1, 2, (int64_t[]){2, 3}, (double[]){0, 1, 0, 2, 3, 1});
    expect(c0, 2, (int64_t[]){4, 2}, (double[]){0, 1, 2, 3, 0, 1, 2, 3});
    expect(s1, 3, (int64_t[]){2, 2, 2}, (double[]){0, 1, 0, 1, 2, 3, 2, 3});
    expect(s2, 3, (int64_t[]){2, 2, 2}, (double[]){0, 0, 1, 1, 2, 2, 3, 3});
    ck_assert_ptr_null(bk_concat(ctx, 2, ab, 0));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "concat: shapes [2, 2] and [2, 1]"));
    ck_assert_ptr_null(bk_stack(ctx, 2, ab, 0));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "same shape"));
    bk_release(a);
    bk_release(b);
    bk_release(c1);
    bk_release(c0);
    bk_release(s1);
    bk_release(s2);
}
END_TEST

START_TEST(contiguous_and_cast)
{
    bk_tensor *x = iota(2, (int64_t[]){2, 3}), *t = bk_transpose(ctx, x, 0, 1);
    bk_tensor *c = bk_contiguous(ctx, t), *f = bk_cast(ctx, t, BK_F32), *d;
    bk_tensor *h = bk_from_f64(ctx, 1, (int64_t[]){1}, (double[]){0.1});
    bk_tensor *h32 = bk_cast(ctx, h, BK_F32);
    expect(c, 2, (int64_t[]){3, 2}, (double[]){0, 3, 1, 4, 2, 5});
    ck_assert(bk_is_contiguous(c));
    ck_assert_int_eq(f->dtype, BK_F32);
    expect(f, 2, (int64_t[]){3, 2}, (double[]){0, 3, 1, 4, 2, 5});
    d = bk_cast(ctx, f, BK_F64);
    ck_assert_int_eq(d->dtype, BK_F64);
    expect(d, 2, (int64_t[]){3, 2}, (double[]){0, 3, 1, 4, 2, 5});
    ck_assert(bk_get(h32, 0) == (double)0.1f); /* rounded to float */
    bk_release(x);
    bk_release(t);
    bk_release(c);
    bk_release(f);
    bk_release(d);
    bk_release(h);
    bk_release(h32);
}
END_TEST

static Suite *index_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("forward");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, index_int_slice_views);
    tcase_add_test(tc, index_newaxis_and_empty);
    tcase_add_test(tc, index_tensor);
    tcase_add_test(tc, index_errors);
    tcase_add_test(tc, index_put_values);
    tcase_add_test(tc, index_put_errors);
    tcase_add_test(tc, index_select_values);
    tcase_add_test(tc, gather_values);
    tcase_add_test(tc, reshape_transpose_expand);
    tcase_add_test(tc, shape_errors);
    tcase_add_test(tc, concat_stack_values);
    tcase_add_test(tc, contiguous_and_cast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(index_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
