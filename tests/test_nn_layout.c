/* The data-movement operators (Concat, Split, Slice, Transpose, Gather with constant indices,
 * Squeeze, Unsqueeze) against plain C references at odd shapes, for both kernel families and in
 * fp32 and fp16 (the op sits between two Relus, so its tensors are stored as half; the values
 * are multiples of 1/8 that half holds exactly, so every copy must be exact); their refusals;
 * and the batch axis leaving axis 0 and coming back (transformer-style graphs). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 7 /* the seed of this program's random inputs */
#include "nn_testutil.h"

static const cleval_nn_precision PRECISIONS[] = {CLEVAL_NN_FP32, CLEVAL_NN_FP16};

/* ---- helpers ---- */

/* Positive multiples of 1/8 up to 25: exact in half, unchanged by Relu. */
static float *exact_array(uint64_t n)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    for (uint64_t i = 0; i < n; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = (float)(1 + (rng_state >> 33) % 200) / 8.0f;
    }
    return a;
}

static void strides_of(uint32_t rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (uint32_t i = rank; i-- > 0;) {
        strides[i] = s;
        s *= dims[i];
    }
}

/* The multi-index of flat index i over dims. */
static void unflatten(uint64_t i, uint32_t rank, const int64_t *dims, int64_t *index)
{
    for (uint32_t d = rank; d-- > 0;) {
        index[d] = (int64_t)(i % (uint64_t)dims[d]);
        i /= (uint64_t)dims[d];
    }
}

/* Creates the general graph m for the variant and precision and runs it on `inputs`. */
static void run_graph(cleval_onnx_model *m, size_t variant, size_t precision,
                      const cleval_nn_tensor *inputs, cleval_nn_tensor *outputs)
{
    cleval_device_set_variant(test_device(), VARIANTS[variant]);
    cleval_nn_options options = {.general = true, .precision = PRECISIONS[precision]};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    assert_ok(cleval_nn_run_graph(nn, inputs, outputs));
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* The output has shape `dims` and equals `want` exactly. */
static void assert_output(const cleval_nn_tensor *got, uint32_t rank, const int64_t *dims,
                          const float *want, const char *what, size_t variant, size_t precision)
{
    if (got->rank != rank) fail_msg("%s: rank %u, expected %u", what, got->rank, rank);
    for (uint32_t i = 0; i < rank; i++)
        if (got->dims[i] != dims[i])
            fail_msg("%s: axis %u is %lld, expected %lld", what, i, (long long)got->dims[i],
                     (long long)dims[i]);
    uint64_t n = count_of(rank, dims);
    for (uint64_t i = 0; i < n; i++)
        if (got->data[i] != want[i])
            fail_msg("%s (variant %zu, precision %zu): element %llu is %g, expected %g", what,
                     variant, precision, (unsigned long long)i, got->data[i], want[i]);
}

/* x -> Relu -> <op_type> -> Relu -> y, in opset `opset`; returns the op's node for its
 * attributes. `extra` names constant inputs after the data ("" for none). */
static cleval_onnx_node *one_op(cleval_onnx_model **out, int64_t opset, const char *op_type,
                                uint32_t rank, const int64_t *dims, const char *extra)
{
    cleval_onnx_model *m = builder_new(opset);
    builder_input(m, "x", rank, dims);
    builder_output(m, "y");
    builder_node(m, "Relu", "r0", "x", "a");
    char inputs[256];
    snprintf(inputs, sizeof inputs, "a%s%s", *extra ? "," : "", extra);
    builder_node(m, op_type, "op", inputs, "b");
    builder_node(m, "Relu", "r1", "b", "y");
    *out = m;
    return &m->nodes[1]; /* valid until the next node is added */
}

/* Runs m on x (rank, dims) for every variant and precision; the output must be `want`. */
static void check_one_op(cleval_onnx_model *m, uint32_t rank, const int64_t *dims, float *x,
                         uint32_t out_rank, const int64_t *out_dims, const float *want,
                         const char *what)
{
    for (size_t v = 0; v < 2; v++)
        for (size_t p = 0; p < 2; p++) {
            cleval_nn_tensor in = tensor(rank, dims, x), out = {0};
            run_graph(m, v, p, &in, &out);
            assert_output(&out, out_rank, out_dims, want, what, v, p);
            free(out.data);
        }
}

/* check_one_op for case number `c` of the `op` table (named "<op> case <c>"), then frees m, x
 * and want. */
static void check_case_and_free(cleval_onnx_model *m, const char *op, size_t c, float *x,
                                uint32_t rank, const int64_t *dims, uint32_t out_rank,
                                const int64_t *out_dims, float *want)
{
    char what[64];
    snprintf(what, sizeof what, "%s case %zu", op, c);
    check_one_op(m, rank, dims, x, out_rank, out_dims, want, what);
    builder_free(m);
    free(x);
    free(want);
}

/* ---- Transpose ---- */

typedef struct transpose_case {
    uint32_t rank;
    int64_t dims[8];
    uint32_t n_perm; /* 0: default (reversed) */
    int64_t perm[8];
} transpose_case;

static void test_transpose(void **state)
{
    (void)state;
    static const transpose_case cases[] = {
        {3, {3, 5, 7}, 3, {1, 0, 2}},
        {4, {2, 3, 5, 7}, 4, {0, 2, 3, 1}}, /* NCHW -> NHWC */
        {4, {2, 5, 7, 3}, 4, {0, 3, 1, 2}}, /* NHWC -> NCHW */
        {2, {5, 67}, 0, {0}},               /* reversed: a 2-D transpose */
        {5, {2, 3, 2, 5, 3}, 5, {4, 2, 0, 3, 1}},
        {8, {2, 1, 3, 1, 2, 3, 1, 2}, 8, {7, 6, 5, 4, 3, 2, 1, 0}},
        {1, {257}, 1, {0}},
        {3, {1, 1, 1}, 3, {2, 0, 1}},
        {3, {4, 0, 3}, 3, {2, 1, 0}}, /* empty */
        /* Past the CPU family's 4096 elements per work-item, items end inside rows; rank 1-6,
         * axes one past its tiles (copy_tiles when the innermost axis moves). */
        {1, {4099}, 1, {0}},
        {2, {17, 33}, 0, {0}},
        {2, {17, 65}, 0, {0}}, /* one past copy_tiles' 64 x 16 */
        {3, {3, 37, 131}, 3, {0, 2, 1}},
        {4, {2, 17, 5, 67}, 4, {0, 2, 1, 3}},
        {4, {2, 33, 7, 19}, 4, {0, 2, 3, 1}},
        {5, {3, 2, 7, 5, 41}, 5, {4, 1, 3, 0, 2}},
        {6, {2, 3, 5, 7, 2, 11}, 6, {5, 3, 1, 0, 4, 2}},
        {6, {3, 2, 5, 7, 2, 17}, 6, {1, 3, 0, 4, 2, 5}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const transpose_case *tc = &cases[c];
        int64_t perm[8], out_dims[8], in_strides[8], index[8];
        for (uint32_t i = 0; i < tc->rank; i++)
            perm[i] = tc->n_perm ? tc->perm[i] : (int64_t)(tc->rank - 1 - i);
        for (uint32_t i = 0; i < tc->rank; i++)
            out_dims[i] = tc->dims[perm[i]];
        uint64_t n = count_of(tc->rank, tc->dims);
        float *x = exact_array(n), *want = malloc((n ? n : 1) * sizeof *want);
        strides_of(tc->rank, tc->dims, in_strides);
        for (uint64_t i = 0; i < n; i++) {
            unflatten(i, tc->rank, out_dims, index);
            int64_t src = 0;
            for (uint32_t d = 0; d < tc->rank; d++)
                src += index[d] * in_strides[perm[d]];
            want[i] = x[src];
        }
        cleval_onnx_model *m;
        cleval_onnx_node *node = one_op(&m, 13, "Transpose", tc->rank, tc->dims, "");
        if (tc->n_perm) attr_ints(node, "perm", tc->n_perm, tc->perm);
        check_case_and_free(m, "transpose", c, x, tc->rank, tc->dims, tc->rank, out_dims, want);
    }
}

/* ---- Slice ---- */

typedef struct slice_case {
    int64_t opset;
    uint32_t rank;
    int64_t dims[4];
    uint32_t n;
    int64_t starts[4], ends[4], axes[4], steps[4];
    bool axes_given, steps_given;
} slice_case;

/* The reference of one axis, as the operator's definition words it. */
static void ref_slice_axis(int64_t start, int64_t end, int64_t step, int64_t extent, int64_t *first,
                           int64_t *count)
{
    if (start < 0) start += extent;
    if (end < 0) end += extent;
    if (step > 0) {
        start = start < 0 ? 0 : start > extent ? extent : start;
        end = end < 0 ? 0 : end > extent ? extent : end;
        *count = end > start ? (end - start + step - 1) / step : 0;
    } else {
        start = start < 0 ? 0 : start > extent - 1 ? extent - 1 : start;
        end = end < -1 ? -1 : end > extent - 1 ? extent - 1 : end;
        *count = start > end ? (start - end - step - 1) / -step : 0;
    }
    *first = start;
}

static void test_slice(void **state)
{
    (void)state;
    const int64_t big = INT64_MAX, small = INT64_MIN;
    const slice_case cases[] = {
        {13, 2, {7, 9}, 1, {1}, {-1}, {1}, {1}, true, false},
        {13, 2, {7, 9}, 2, {-1, 8}, {-100, 0}, {0, 1}, {-2, -3}, true, true}, /* negative steps */
        {13, 3, {5, 6, 7}, 1, {0}, {big}, {-1}, {2}, true, true},
        {13, 3, {5, 6, 7}, 1, {10}, {20}, {1}, {1}, true, false},     /* empty */
        {13, 3, {5, 6, 7}, 1, {big}, {small}, {2}, {-1}, true, true}, /* reversed, clamped */
        {13, 3, {3, 130, 3}, 2, {0, 1}, {2, 129}, {0, 1}, {1, 1}, false, false},
        {9, 2, {7, 9}, 2, {2, 1}, {5, 100}, {0}, {0}, false, false}, /* attribute form */
        {9, 3, {2, 7, 9}, 1, {-3}, {-1}, {-1}, {0}, true, false},
        /* Several CPU work-items: contiguous runs cut short, negative and long steps on the
         * innermost axis, rank 4. */
        {13, 3, {7, 41, 53}, 2, {1, 2}, {6, 50}, {1, 2}, {1, 1}, true, true},
        {13, 3, {5, 37, 67}, 1, {-1}, {small}, {2}, {-1}, true, true},
        {13, 4, {3, 5, 11, 97}, 2, {10, 1}, {small, 97}, {2, 3}, {-2, 3}, true, true},
        {13, 1, {8209}, 1, {8208}, {small}, {0}, {-1}, true, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const slice_case *sc = &cases[c];
        int64_t first[4] = {0}, step[4] = {1, 1, 1, 1}, out_dims[4], in_strides[4], index[4];
        memcpy(out_dims, sc->dims, sizeof out_dims);
        for (uint32_t i = 0; i < sc->n; i++) {
            int64_t a = sc->axes_given ? sc->axes[i] : (int64_t)i;
            if (a < 0) a += sc->rank;
            step[a] = sc->steps_given ? sc->steps[i] : 1;
            ref_slice_axis(sc->starts[i], sc->ends[i], step[a], sc->dims[a], &first[a],
                           &out_dims[a]);
        }
        uint64_t n = count_of(sc->rank, sc->dims), n_out = count_of(sc->rank, out_dims);
        float *x = exact_array(n), *want = malloc((n_out ? n_out : 1) * sizeof *want);
        strides_of(sc->rank, sc->dims, in_strides);
        for (uint64_t i = 0; i < n_out; i++) {
            unflatten(i, sc->rank, out_dims, index);
            int64_t src = 0;
            for (uint32_t d = 0; d < sc->rank; d++)
                src += (first[d] + index[d] * step[d]) * in_strides[d];
            want[i] = x[src];
        }
        cleval_onnx_model *m;
        cleval_onnx_node *node;
        int64_t len = sc->n;
        if (sc->opset < 10) {
            node = one_op(&m, sc->opset, "Slice", sc->rank, sc->dims, "");
            attr_ints(node, "starts", sc->n, sc->starts);
            attr_ints(node, "ends", sc->n, sc->ends);
            if (sc->axes_given) attr_ints(node, "axes", sc->n, sc->axes);
        } else {
            const char *extra = sc->steps_given  ? "starts,ends,axes,steps"
                                : sc->axes_given ? "starts,ends,axes"
                                                 : "starts,ends";
            node = one_op(&m, sc->opset, "Slice", sc->rank, sc->dims, extra);
            builder_init_i64(m, "starts", 1, &len, sc->starts);
            builder_init_i64(m, "ends", 1, &len, sc->ends);
            if (sc->axes_given) builder_init_i64(m, "axes", 1, &len, sc->axes);
            if (sc->steps_given) builder_init_i64(m, "steps", 1, &len, sc->steps);
        }
        check_case_and_free(m, "slice", c, x, sc->rank, sc->dims, sc->rank, out_dims, want);
    }
}

/* ---- Gather ---- */

typedef struct gather_case {
    uint32_t rank;
    int64_t dims[4];
    int64_t axis;
    uint32_t idx_rank;
    int64_t idx_dims[2];
    int64_t idx[4];
} gather_case;

static void test_gather(void **state)
{
    (void)state;
    static const gather_case cases[] = {
        {3, {5, 7, 3}, 1, 1, {4}, {2, -1, 0, 6}},
        {2, {5, 7}, 0, 0, {0}, {-2}},             /* a scalar index removes the axis */
        {3, {3, 17, 4}, 1, 0, {0}, {0}},          /* the class token of a ViT */
        {2, {4, 9}, -1, 2, {2, 2}, {0, 8, 3, 3}}, /* 2-D indices */
        {3, {2, 3, 131}, 2, 1, {3}, {130, 0, 65}},
        {2, {4, 9}, 1, 1, {0}, {0}}, /* no indices: empty */
        /* Several CPU work-items: rows of 1031, and 4099 rows of one element. */
        {3, {3, 7, 1031}, 1, 1, {3}, {6, -7, 3}},
        {2, {4099, 2}, 1, 1, {1}, {-1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const gather_case *gc = &cases[c];
        uint32_t axis = (uint32_t)(gc->axis < 0 ? gc->axis + gc->rank : gc->axis);
        uint64_t count = count_of(gc->idx_rank, gc->idx_dims);
        int64_t out_dims[8];
        uint32_t out_rank = 0;
        uint64_t outer = 1, inner = 1;
        for (uint32_t i = 0; i < axis; i++) {
            out_dims[out_rank++] = gc->dims[i];
            outer *= (uint64_t)gc->dims[i];
        }
        for (uint32_t i = 0; i < gc->idx_rank; i++)
            out_dims[out_rank++] = gc->idx_dims[i];
        for (uint32_t i = axis + 1; i < gc->rank; i++) {
            out_dims[out_rank++] = gc->dims[i];
            inner *= (uint64_t)gc->dims[i];
        }
        uint64_t n = count_of(gc->rank, gc->dims), n_out = outer * count * inner;
        float *x = exact_array(n), *want = malloc((n_out ? n_out : 1) * sizeof *want);
        int64_t extent = gc->dims[axis];
        for (uint64_t o = 0; o < outer; o++)
            for (uint64_t j = 0; j < count; j++) {
                int64_t k = gc->idx[j] < 0 ? gc->idx[j] + extent : gc->idx[j];
                for (uint64_t r = 0; r < inner; r++)
                    want[(o * count + j) * inner + r] = x[(o * extent + k) * inner + r];
            }
        cleval_onnx_model *m;
        cleval_onnx_node *node = one_op(&m, 13, "Gather", gc->rank, gc->dims, "idx");
        attr_int(node, "axis", gc->axis);
        builder_init_i64(m, "idx", gc->idx_rank, gc->idx_dims, gc->idx);
        check_case_and_free(m, "gather", c, x, gc->rank, gc->dims, out_rank, out_dims, want);
    }
}

/* ---- integer tensors (RAW_T) ---- */

/* An integer graph input (int64 token ids, uint8 pixels; fed floats that hold integers) moved by
 * one op and Cast to float: the copy kernels move the integers as they are (RAW_T), in runs,
 * tiles and gathered rows. The reference reads x through `src`, the input element of each
 * output element. */
static void check_integer_op(int32_t type, const char *op_type, uint32_t rank, const int64_t *dims,
                             uint32_t out_rank, const int64_t *out_dims, const int64_t *src,
                             void (*attrs)(cleval_onnx_model *m, cleval_onnx_node *node),
                             const char *what)
{
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", rank, dims);
    m->inputs[0].elem_type = type;
    builder_output(m, "y");
    bool gather = strcmp(op_type, "Gather") == 0, slice = strcmp(op_type, "Slice") == 0;
    cleval_onnx_node *node = builder_node(m, op_type, "op",
                                          gather  ? "x,idx"
                                          : slice ? "x,starts,ends,axes,steps"
                                                  : "x",
                                          "b");
    attrs(m, node);
    attr_int(builder_node(m, "Cast", "to_float", "b", "y"), "to", CLEVAL_ONNX_FLOAT);
    uint64_t n = count_of(rank, dims), n_out = count_of(out_rank, out_dims);
    float *x = malloc(n * sizeof *x), *want = malloc((n_out ? n_out : 1) * sizeof *want);
    assert_non_null(x);
    assert_non_null(want);
    for (uint64_t i = 0; i < n; i++)
        x[i] = type == CLEVAL_ONNX_UINT8 ? (float)floor(256 * urand())
                                         : (float)floor(2e5 * urand() - 1e5);
    for (uint64_t i = 0; i < n_out; i++)
        want[i] = x[src[i]];
    for (size_t v = 0; v < 2; v++) {
        cleval_nn_tensor in = tensor(rank, dims, x), out = {0};
        run_graph(m, v, 0, &in, &out);
        assert_output(&out, out_rank, out_dims, want, what, v, 0);
        free(out.data);
    }
    free(x);
    free(want);
    builder_free(m);
}

static void transpose_0231(cleval_onnx_model *m, cleval_onnx_node *node)
{
    (void)m;
    static const int64_t perm[4] = {0, 2, 3, 1};
    attr_ints(node, "perm", 4, perm);
}

static void transpose_102(cleval_onnx_model *m, cleval_onnx_node *node)
{
    (void)m;
    static const int64_t perm[3] = {1, 0, 2};
    attr_ints(node, "perm", 3, perm);
}

/* x[:, 1:, ::-1] */
static void slice_reversed(cleval_onnx_model *m, cleval_onnx_node *node)
{
    (void)node;
    int64_t two = 2, starts[2] = {1, -1}, ends[2] = {INT64_MAX, INT64_MIN}, axes[2] = {1, 2},
            steps[2] = {1, -1};
    builder_init_i64(m, "starts", 1, &two, starts);
    builder_init_i64(m, "ends", 1, &two, ends);
    builder_init_i64(m, "axes", 1, &two, axes);
    builder_init_i64(m, "steps", 1, &two, steps);
}

static void gather_axis1(cleval_onnx_model *m, cleval_onnx_node *node)
{
    attr_int(node, "axis", 1);
    int64_t three = 3, idx[3] = {6, -7, 3};
    builder_init_i64(m, "idx", 1, &three, idx);
}

static void test_integer_copies(void **state)
{
    (void)state;
    static const int32_t types[] = {CLEVAL_ONNX_INT64, CLEVAL_ONNX_UINT8};
    /* Transpose (0, 2, 3, 1) of [2, 33, 7, 19]: the innermost axis moves (tiles). */
    static const int64_t t4[4] = {2, 33, 7, 19}, t4_out[4] = {2, 7, 19, 33};
    /* Transpose (1, 0, 2) of [3, 37, 131]: runs of 131. */
    static const int64_t t3[3] = {3, 37, 131}, t3_out[3] = {37, 3, 131};
    /* Slice x[:, 1:, ::-1] of [5, 37, 67] and Gather of rows 6, -7, 3 along axis 1 of
     * [3, 7, 1031]. */
    static const int64_t s3[3] = {5, 37, 67}, s3_out[3] = {5, 36, 67};
    static const int64_t g3[3] = {3, 7, 1031}, g3_out[3] = {3, 3, 1031};
    int64_t *src = malloc(3 * 37 * 131 * sizeof *src), index[4];
    assert_non_null(src);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (uint64_t i = 0; i < count_of(4, t4_out); i++) {
            unflatten(i, 4, t4_out, index);
            src[i] = ((index[0] * 33 + index[3]) * 7 + index[1]) * 19 + index[2];
        }
        check_integer_op(types[t], "Transpose", 4, t4, 4, t4_out, src, transpose_0231,
                         "integer transpose (0, 2, 3, 1)");
        for (uint64_t i = 0; i < count_of(3, t3_out); i++) {
            unflatten(i, 3, t3_out, index);
            src[i] = (index[1] * 37 + index[0]) * 131 + index[2];
        }
        check_integer_op(types[t], "Transpose", 3, t3, 3, t3_out, src, transpose_102,
                         "integer transpose (1, 0, 2)");
        for (uint64_t i = 0; i < count_of(3, s3_out); i++) {
            unflatten(i, 3, s3_out, index);
            src[i] = (index[0] * 37 + 1 + index[1]) * 67 + 66 - index[2];
        }
        check_integer_op(types[t], "Slice", 3, s3, 3, s3_out, src, slice_reversed, "integer slice");
        static const int64_t rows[3] = {6, 0, 3}; /* -7 is row 0 */
        for (uint64_t i = 0; i < count_of(3, g3_out); i++) {
            unflatten(i, 3, g3_out, index);
            src[i] = (index[0] * 7 + rows[index[1]]) * 1031 + index[2];
        }
        check_integer_op(types[t], "Gather", 3, g3, 3, g3_out, src, gather_axis1, "integer gather");
    }
    free(src);
}

/* ---- Concat ---- */

/* Concat of inputs x0.. (the first read as the graph gives it, the others through a Relu, so
 * fp16 mixes float and half inputs) along `axis`, against the reference. */
static void check_concat(uint32_t n_in, uint32_t rank, const int64_t (*dims)[4], int64_t axis,
                         const char *what)
{
    cleval_onnx_model *m = builder_new(13);
    char inputs[4096] = "", name[32];
    size_t used = 0;
    for (uint32_t i = 0; i < n_in; i++) {
        snprintf(name, sizeof name, "x%u", i);
        builder_input(m, name, rank, dims[i]);
        char relu[32], act[32];
        snprintf(relu, sizeof relu, "r%u", i);
        snprintf(act, sizeof act, "a%u", i);
        if (i > 0) builder_node(m, "Relu", relu, name, act);
        used += (size_t)snprintf(inputs + used, sizeof inputs - used, "%s%s", i ? "," : "",
                                 i ? act : name);
    }
    attr_int(builder_node(m, "Concat", "cat", inputs, "c"), "axis", axis);
    builder_node(m, "Relu", "out", "c", "y");
    builder_output(m, "y");
    uint32_t a = (uint32_t)(axis < 0 ? axis + rank : axis);
    int64_t out_dims[4];
    memcpy(out_dims, dims[0], sizeof out_dims);
    out_dims[a] = 0;
    for (uint32_t i = 0; i < n_in; i++)
        out_dims[a] += dims[i][a];
    uint64_t outer = count_of(a, dims[0]), inner = count_of(rank - a - 1, dims[0] + a + 1);
    uint64_t n_out = count_of(rank, out_dims);
    float *want = malloc((n_out ? n_out : 1) * sizeof *want);
    cleval_nn_tensor *in = calloc(n_in, sizeof *in);
    int64_t offset = 0;
    for (uint32_t i = 0; i < n_in; i++) {
        in[i] = tensor(rank, dims[i], exact_array(count_of(rank, dims[i])));
        uint64_t block = (uint64_t)dims[i][a] * inner;
        for (uint64_t o = 0; o < outer; o++)
            memcpy(want + o * (uint64_t)out_dims[a] * inner + (uint64_t)offset * inner,
                   in[i].data + o * block, block * sizeof *want);
        offset += dims[i][a];
    }
    for (size_t v = 0; v < 2; v++)
        for (size_t p = 0; p < 2; p++) {
            cleval_nn_tensor out = {0};
            run_graph(m, v, p, in, &out);
            assert_output(&out, rank, out_dims, want, what, v, p);
            free(out.data);
        }
    for (uint32_t i = 0; i < n_in; i++)
        free(in[i].data);
    free(in);
    free(want);
    builder_free(m);
}

static void test_concat(void **state)
{
    (void)state;
    static const int64_t three[3][4] = {{2, 3, 5}, {2, 1, 5}, {2, 4, 5}};
    check_concat(3, 3, three, 1, "concat axis 1");
    static const int64_t last[2][4] = {{3, 2}, {3, 131}};
    check_concat(2, 2, last, -1, "concat axis -1");
    static const int64_t first[3][4] = {{1, 3, 2}, {7, 3, 2}, {0, 3, 2}};
    check_concat(3, 3, first, 0, "concat axis 0 with an empty input");
    static const int64_t single[1][4] = {{3, 5}};
    check_concat(1, 2, single, 1, "concat of one input");
    /* DenseNet joins up to ~50 feature maps at once. */
    int64_t many[61][4];
    for (int i = 0; i < 61; i++) {
        many[i][0] = 2;
        many[i][1] = 1 + i % 3;
        many[i][2] = 3;
        many[i][3] = 3;
    }
    check_concat(61, 4, (const int64_t(*)[4])many, 1, "concat of 61 inputs");
    /* Blocks past the CPU family's 4096 elements per work-item, cut inside rows. */
    static const int64_t long_rows[3][4] = {{3, 5, 601}, {3, 2, 601}, {3, 1, 601}};
    check_concat(3, 3, long_rows, 1, "concat of long rows");
    static const int64_t long_last[2][4] = {{4099, 1}, {4099, 2}};
    check_concat(2, 2, long_last, 1, "concat along a short last axis");
}

/* ---- Split ---- */

typedef struct split_case {
    int64_t opset;
    int64_t axis;
    uint32_t n_out;
    int64_t sizes[4]; /* expected extents */
    bool sizes_given; /* as input (opset >= 13) or attribute */
    bool num_outputs; /* opset 18 */
} split_case;

static void test_split(void **state)
{
    (void)state;
    static const int64_t dims[3] = {3, 10, 5};
    static const split_case cases[] = {
        {13, 1, 3, {2, 5, 3}, true, false}, {11, 1, 3, {2, 5, 3}, true, false},
        {18, 1, 3, {4, 4, 2}, false, true}, {13, -2, 2, {5, 5}, false, false},
        {13, 2, 2, {0, 5}, true, false},    {11, 0, 3, {1, 1, 1}, false, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const split_case *sc = &cases[c];
        cleval_onnx_model *m = builder_new(sc->opset);
        builder_input(m, "x", 3, dims);
        builder_node(m, "Relu", "r", "x", "a");
        char outs[128] = "";
        size_t used = 0;
        for (uint32_t o = 0; o < sc->n_out; o++)
            used += (size_t)snprintf(outs + used, sizeof outs - used, "%sb%u", o ? "," : "", o);
        bool input_form = sc->sizes_given && sc->opset >= 13;
        cleval_onnx_node *node = builder_node(m, "Split", "split", input_form ? "a,s" : "a", outs);
        attr_int(node, "axis", sc->axis);
        int64_t n_sizes = sc->n_out;
        if (input_form) builder_init_i64(m, "s", 1, &n_sizes, sc->sizes);
        if (sc->sizes_given && !input_form) attr_ints(node, "split", sc->n_out, sc->sizes);
        if (sc->num_outputs) attr_int(node, "num_outputs", sc->n_out);
        for (uint32_t o = 0; o < sc->n_out; o++) {
            char relu[16], b[16], y[16];
            snprintf(relu, sizeof relu, "r%u", o);
            snprintf(b, sizeof b, "b%u", o);
            snprintf(y, sizeof y, "y%u", o);
            builder_node(m, "Relu", relu, b, y);
            builder_output(m, y);
        }
        uint32_t a = (uint32_t)(sc->axis < 0 ? sc->axis + 3 : sc->axis);
        float *x = exact_array(count_of(3, dims));
        for (size_t v = 0; v < 2; v++)
            for (size_t p = 0; p < 2; p++) {
                cleval_nn_tensor in = tensor(3, dims, x), out[4] = {{0}};
                run_graph(m, v, p, &in, out);
                int64_t offset = 0;
                uint64_t outer = count_of(a, dims), inner = count_of(2 - a, dims + a + 1);
                for (uint32_t o = 0; o < sc->n_out; o++) {
                    int64_t od[3] = {dims[0], dims[1], dims[2]};
                    od[a] = sc->sizes[o];
                    float *want = malloc((count_of(3, od) + 1) * sizeof *want);
                    uint64_t block = (uint64_t)sc->sizes[o] * inner;
                    for (uint64_t i = 0; i < outer; i++)
                        memcpy(want + i * block,
                               x + (i * (uint64_t)dims[a] + (uint64_t)offset) * inner,
                               block * sizeof *want);
                    char what[64];
                    snprintf(what, sizeof what, "split case %zu output %u", c, o);
                    assert_output(&out[o], 3, od, want, what, v, p);
                    free(want);
                    free(out[o].data);
                    offset += sc->sizes[o];
                }
            }
        free(x);
        builder_free(m);
    }
}

/* An output left unnamed still takes its share of the axis. */
static void test_split_unnamed_output(void **state)
{
    (void)state;
    static const int64_t dims[2] = {3, 10}, sizes[3] = {2, 5, 3}, three = 3;
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 2, dims);
    builder_init_i64(m, "s", 1, &three, sizes);
    attr_int(builder_node(m, "Split", "split", "x,s", "a,,b"), "axis", 1);
    builder_node(m, "Relu", "r", "b", "y");
    builder_output(m, "y");
    float *x = exact_array(30), want[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            want[i * 3 + j] = x[i * 10 + 7 + j];
    static const int64_t out_dims[2] = {3, 3};
    check_one_op(m, 2, dims, x, 2, out_dims, want, "split with an unnamed output");
    free(x);
    builder_free(m);
}

/* A block past the CPU family's 4096 elements per work-item, rows cut inside: the second
 * output of [37, 10, 131] split 3 + 7 along axis 1. */
static void test_split_long(void **state)
{
    (void)state;
    static const int64_t dims[3] = {37, 10, 131}, sizes[2] = {3, 7}, two = 2;
    static const int64_t out_dims[3] = {37, 7, 131};
    cleval_onnx_model *m = builder_new(13);
    builder_input(m, "x", 3, dims);
    builder_node(m, "Relu", "r0", "x", "a");
    builder_init_i64(m, "s", 1, &two, sizes);
    attr_int(builder_node(m, "Split", "split", "a,s", "c,b"), "axis", 1);
    builder_node(m, "Relu", "r1", "b", "y");
    builder_output(m, "y");
    float *x = exact_array(count_of(3, dims)), *want = malloc(37 * 7 * 131 * sizeof *want);
    assert_non_null(want);
    for (int i = 0; i < 37; i++)
        memcpy(want + i * 7 * 131, x + (i * 10 + 3) * 131, 7 * 131 * sizeof *want);
    check_one_op(m, 3, dims, x, 3, out_dims, want, "split of long rows");
    free(x);
    free(want);
    builder_free(m);
}

/* ---- Squeeze, Unsqueeze ---- */

static void test_squeeze_unsqueeze(void **state)
{
    (void)state;
    static const int64_t dims[4] = {3, 1, 5, 1}, axes[2] = {1, -1}, two = 2;
    float *x = exact_array(15);
    static const int64_t squeezed[2] = {3, 5};
    for (int64_t opset = 11; opset <= 13; opset += 2) {
        cleval_onnx_model *m;
        cleval_onnx_node *node = one_op(&m, opset, "Squeeze", 4, dims, opset < 13 ? "" : "axes");
        if (opset < 13)
            attr_ints(node, "axes", 2, axes);
        else
            builder_init_i64(m, "axes", 1, &two, axes);
        check_one_op(m, 4, dims, x, 2, squeezed, x, "squeeze with axes");
        builder_free(m);

        node = one_op(&m, opset, "Unsqueeze", 2, squeezed, opset < 13 ? "" : "axes");
        static const int64_t where[2] = {0, 3}, unsqueezed[4] = {1, 3, 5, 1};
        if (opset < 13)
            attr_ints(node, "axes", 2, where);
        else
            builder_init_i64(m, "axes", 1, &two, where);
        check_one_op(m, 2, squeezed, x, 4, unsqueezed, x, "unsqueeze");
        builder_free(m);
    }
    cleval_onnx_model *m;
    one_op(&m, 13, "Squeeze", 4, dims, ""); /* every axis of extent 1 */
    check_one_op(m, 4, dims, x, 2, squeezed, x, "squeeze without axes");
    builder_free(m);
    free(x);
}

/* ---- refusals ---- */

static void test_refusals(void **state)
{
    (void)state;
    static const int64_t d2[2] = {3, 7}, one = 1, nine = 9;
    cleval_onnx_model *m;

    static const int64_t bad_perm[2] = {0, 0};
    attr_ints(one_op(&m, 13, "Transpose", 2, d2, ""), "perm", 2, bad_perm);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Transpose)", "not a permutation",
                           NULL);

    attr_int(one_op(&m, 13, "Concat", 2, d2, ""), "axis", 2);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Concat)",
                           "axis 2 is out of range", NULL);

    one_op(&m, 13, "Concat", 2, d2, "");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Concat)",
                           "attribute axis is missing", NULL);

    static const int64_t seven = 7;
    one_op(&m, 13, "Gather", 2, d2, "idx");
    builder_init_i64(m, "idx", 1, &one, &seven);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Gather)",
                           "index 7 is out of range", NULL);

    one_op(&m, 13, "Gather", 2, d2, "x"); /* indices computed at run time */
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'op' (Gather)",
                           "must be a constant", NULL);

    static const int64_t zero = 0, big[9] = {0};
    one_op(&m, 13, "Slice", 2, d2, "s,e,ax,st");
    builder_init_i64(m, "s", 1, &one, &zero);
    builder_init_i64(m, "e", 1, &one, &one);
    builder_init_i64(m, "ax", 1, &one, &zero);
    builder_init_i64(m, "st", 1, &one, &zero);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Slice)", "a step is 0", NULL);

    one_op(&m, 13, "Slice", 2, d2, "s,e");
    builder_init_i64(m, "s", 1, &nine, big);
    builder_init_i64(m, "e", 1, &nine, big);
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'op' (Slice)", "9 starts", NULL);

    attr_ints(one_op(&m, 13, "Slice", 2, d2, ""), "starts", 1, &zero);
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'op' (Slice)", "attribute starts",
                           NULL);

    attr_string(one_op(&m, 13, "Split", 2, d2, ""), "mode", "x");
    expect_refusal_freeing(m, true, CLEVAL_ERR_UNSUPPORTED, "node 'op' (Split)", "attribute mode",
                           NULL);

    m = builder_new(13); /* 7 does not split in 2 equal parts */
    builder_input(m, "x", 2, d2);
    attr_int(builder_node(m, "Split", "sp", "x", "a,b"), "axis", 1);
    builder_output(m, "a");
    builder_output(m, "b");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'sp' (Split)", "2 equal parts", NULL);

    one_op(&m, 13, "Unsqueeze", 2, d2, "");
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Unsqueeze)", "axes are missing",
                           NULL);

    one_op(&m, 13, "Squeeze", 2, d2, "ax");
    builder_init_i64(m, "ax", 1, &one, &zero);
    expect_refusal_freeing(m, true, CLEVAL_ERR_INPUT, "node 'op' (Squeeze)", "extent 3, not 1",
                           NULL);
}

/* ---- the batch axis ---- */

static cleval_onnx_model *classifier(uint32_t rank, const int64_t *sample)
{
    cleval_onnx_model *m = builder_new(13);
    int64_t dims[8] = {-1};
    memcpy(dims + 1, sample, (rank - 1) * sizeof *sample);
    builder_input(m, "x", rank, dims);
    builder_output(m, "y");
    return m;
}

static void transpose_node(cleval_onnx_model *m, const char *name, const char *in, const char *out,
                           uint32_t rank, const int64_t *perm)
{
    attr_ints(builder_node(m, "Transpose", name, in, out), "perm", rank, perm);
}

static void reshape_node(cleval_onnx_model *m, const char *name, const char *in, const char *out,
                         uint32_t rank, const int64_t *target)
{
    char shape[64];
    snprintf(shape, sizeof shape, "%s_shape", name);
    int64_t len = rank;
    builder_init_i64(m, shape, 1, &len, target);
    char inputs[128];
    snprintf(inputs, sizeof inputs, "%s,%s", in, shape);
    builder_node(m, "Reshape", name, inputs, out);
}

/* Runs classifier m on n samples for every variant and precision; scores within tolerance of
 * want. */
static void check_classifier(cleval_onnx_model *m, const float *x, uint32_t n, uint32_t width,
                             const double *want, const char *what)
{
    for (size_t v = 0; v < 2; v++)
        for (size_t p = 0; p < 2; p++) {
            cleval_device_set_variant(test_device(), VARIANTS[v]);
            cleval_nn_options options = {.precision = PRECISIONS[p]};
            cleval_nn *nn;
            assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
            assert_int_equal(cleval_nn_output_width(nn), width);
            float *scores = malloc((size_t)n * width * sizeof *scores);
            assert_ok(cleval_nn_run(nn, x, n, scores));
            double tol = p ? 2e-2 : 1e-5;
            for (uint64_t i = 0; i < (uint64_t)n * width; i++)
                if (!(fabs(scores[i] - want[i]) <= tol * (1.0 + fabs(want[i]))))
                    fail_msg("%s (variant %zu, precision %zu, batch %u): score %llu is %.7g, "
                             "expected %.7g",
                             what, v, p, n, (unsigned long long)i, scores[i], want[i]);
            free(scores);
            cleval_nn_destroy(nn);
            cleval_device_set_variant(test_device(), VARIANTS[0]);
        }
}

/* [N, L, E] -> Transpose [L, N, E] -> MatMul with a constant [L, E, F] (batched over L, the
 * samples as rows) -> Transpose back [N, L, F] -> Flatten [N, L * F]. */
static void test_batch_moved_matmul(void **state)
{
    (void)state;
    enum { L = 3, E = 5, F = 4 };
    static const int64_t sample[2] = {L, E}, wd[3] = {L, E, F}, swap[3] = {1, 0, 2};
    float *w = exact_array(L * E * F);
    for (int i = 0; i < L * E * F; i++)
        w[i] -= 12.0f;
    cleval_onnx_model *m = classifier(3, sample);
    builder_init(m, "w", 3, wd, w);
    transpose_node(m, "t0", "x", "t", 3, swap);
    builder_node(m, "MatMul", "mm", "t,w", "p");
    transpose_node(m, "t1", "p", "q", 3, swap);
    builder_node(m, "Flatten", "flat", "q", "y");
    for (uint32_t n = 1; n <= 7; n += 3) {
        float *x = exact_array((uint64_t)n * L * E);
        double *want = calloc((size_t)n * L * F, sizeof *want);
        for (uint32_t s = 0; s < n; s++)
            for (int l = 0; l < L; l++)
                for (int f = 0; f < F; f++)
                    for (int e = 0; e < E; e++)
                        want[(s * L + l) * F + f] +=
                            (double)x[(s * L + l) * E + e] * w[(l * E + e) * F + f];
        check_classifier(m, x, n, L * F, want, "transpose, batched matmul, transpose back");
        free(x);
        free(want);
    }
    builder_free(m);
    free(w);
}

/* [N, E] -> Transpose [E, N] -> Gemm(transA=1) with a constant [E, F] and bias [F]: the samples
 * are A's columns, the product's rows. */
static void test_batch_gemm_trans_a(void **state)
{
    (void)state;
    enum { E = 7, F = 3 };
    static const int64_t sample[1] = {E}, wd[2] = {E, F}, bd[1] = {F}, rev[2] = {1, 0};
    float *w = exact_array(E * F), *bias = exact_array(F);
    cleval_onnx_model *m = classifier(2, sample);
    builder_init(m, "w", 2, wd, w);
    builder_init(m, "b", 1, bd, bias);
    transpose_node(m, "t0", "x", "t", 2, rev);
    attr_int(builder_node(m, "Gemm", "gemm", "t,w,b", "y"), "transA", 1);
    uint32_t n = 5;
    float *x = exact_array((uint64_t)n * E);
    double want[5 * F];
    for (uint32_t s = 0; s < n; s++)
        for (int f = 0; f < F; f++) {
            want[s * F + f] = bias[f];
            for (int e = 0; e < E; e++)
                want[s * F + f] += (double)x[s * E + e] * w[e * F + f];
        }
    check_classifier(m, x, n, F, want, "transpose then Gemm(transA=1)");
    free(x);
    free(w);
    free(bias);
    builder_free(m);
}

/* Self-attention as torch's MultiheadAttention lays it out: [N, L, E] -> [L, N, E] ->
 * [L, N * H, D] (the batch merged with the heads) -> [N * H, L, D]; scores Q K^T over the
 * varying operands, Softmax over the keys, times V, and back to [N, L * E]. */
static void test_batch_merged_heads(void **state)
{
    (void)state;
    enum { L = 3, E = 4, H = 2, D = 2 };
    static const int64_t sample[2] = {L, E}, swap[3] = {1, 0, 2}, to_keys[3] = {1, 2, 0};
    static const int64_t heads[3] = {L, -1, D}, merged[3] = {L, -1, E};
    cleval_onnx_model *m = classifier(3, sample);
    transpose_node(m, "t0", "x", "t", 3, swap);
    reshape_node(m, "split_heads", "t", "r", 3, heads);
    transpose_node(m, "q", "r", "q", 3, swap);
    transpose_node(m, "k", "r", "k", 3, to_keys);
    builder_node(m, "MatMul", "scores", "q,k", "s");
    attr_int(builder_node(m, "Softmax", "sm", "s", "p"), "axis", -1);
    builder_node(m, "MatMul", "mix", "p,q", "o");
    transpose_node(m, "t1", "o", "o1", 3, swap);
    reshape_node(m, "join_heads", "o1", "o2", 3, merged);
    transpose_node(m, "t2", "o2", "o3", 3, swap);
    builder_node(m, "Flatten", "flat", "o3", "y");
    for (uint32_t n = 1; n <= 5; n += 4) {
        float *x = exact_array((uint64_t)n * L * E);
        for (uint64_t i = 0; i < (uint64_t)n * L * E; i++)
            x[i] = x[i] / 16.0f - 0.5f;
        double *want = calloc((size_t)n * L * E, sizeof *want);
        /* Head h of sample s: q[l][d] = x[s][l][h * D + d]; keys and values are the same. */
        for (uint32_t s = 0; s < n; s++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < L; i++) {
                    double score[L], total = 0, top = -INFINITY;
                    for (int j = 0; j < L; j++) {
                        score[j] = 0;
                        for (int d = 0; d < D; d++)
                            score[j] += (double)x[(s * L + i) * E + h * D + d] *
                                        x[(s * L + j) * E + h * D + d];
                        top = fmax(top, score[j]);
                    }
                    for (int j = 0; j < L; j++)
                        total += score[j] = exp(score[j] - top);
                    for (int d = 0; d < D; d++)
                        for (int j = 0; j < L; j++)
                            want[(s * L + i) * E + h * D + d] +=
                                score[j] / total * x[(s * L + j) * E + h * D + d];
                }
        check_classifier(m, x, n, L * E, want, "attention with the batch merged into the heads");
        free(x);
        free(want);
    }
    builder_free(m);
}

/* ViT's class token: Gather(axis=1, index 0) of [N, T, E] is [N, E]. */
static void test_batch_class_token(void **state)
{
    (void)state;
    static const int64_t sample[2] = {5, 3}, zero = 0;
    cleval_onnx_model *m = classifier(3, sample);
    builder_init_i64(m, "idx", 0, NULL, &zero);
    attr_int(builder_node(m, "Gather", "token", "x,idx", "y"), "axis", 1);
    float *x = exact_array(3 * 15);
    double want[9];
    for (int s = 0; s < 3; s++)
        for (int e = 0; e < 3; e++)
            want[s * 3 + e] = x[s * 15 + e];
    check_classifier(m, x, 3, 3, want, "class token");
    free(x);
    builder_free(m);
}

static void test_batch_refusals(void **state)
{
    (void)state;
    static const int64_t sample[2] = {3, 4}, swap[3] = {1, 0, 2}, six = 6, rev[2] = {1, 0};
    cleval_onnx_model *m;

    /* Softmax along the moved batch axis (axis 1 of [L, N, E]). */
    m = classifier(3, sample);
    transpose_node(m, "t0", "x", "t", 3, swap);
    attr_int(builder_node(m, "Softmax", "sm", "t", "p"), "axis", 1);
    transpose_node(m, "t1", "p", "q", 3, swap);
    builder_node(m, "Flatten", "flat", "q", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'sm' (Softmax)",
                           "combines samples across the batch axis (axis 1)", NULL);

    /* A reshape that cuts the samples of [6, N] into rows of 3. */
    m = classifier(2, &six);
    static const int64_t rows[2] = {-1, 3}, back[2] = {-1, 6};
    transpose_node(m, "t0", "x", "t", 2, rev);
    reshape_node(m, "mix", "t", "r", 2, rows);
    reshape_node(m, "back", "r", "y", 2, back);
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'mix' (Reshape)",
                           "combines samples", NULL);

    /* A MatMul that contracts over the samples: [E, N] x [N, E]. */
    m = classifier(2, &six);
    transpose_node(m, "t0", "x", "t", 2, rev);
    builder_node(m, "MatMul", "gram", "t,x", "g");
    builder_node(m, "MatMul", "back", "x,g", "y");
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 'gram' (MatMul)",
                           "combines samples across the batch axis (axis 1)", NULL);

    /* Joined, sliced or picked along the batch axis. */
    static const int64_t d[1] = {6};
    const char *const kinds[] = {"Concat", "Gather", "Slice"};
    for (size_t k = 0; k < 3; k++) {
        m = classifier(2, d);
        cleval_onnx_node *n = NULL;
        static const int64_t zero = 0, one = 1;
        if (k == 0) n = builder_node(m, "Concat", "op", "x,x", "c");
        if (k == 1) {
            builder_init_i64(m, "i", 1, &one, &zero);
            n = builder_node(m, "Gather", "op", "x,i", "c");
        }
        if (k == 2) {
            builder_init_i64(m, "s", 1, &one, &one);
            builder_init_i64(m, "e", 1, &one, &six);
            builder_node(m, "Slice", "op", "x,s,e", "c");
        }
        if (n) attr_int(n, "axis", 0);
        builder_node(m, "Relu", "r", "c", "y");
        char needle[64];
        snprintf(needle, sizeof needle, "node 'op' (%s)", kinds[k]);
        expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, needle, "batch axis (axis 0)",
                               NULL);
    }

    /* The output must have the samples as rows: [E, N] is not [N, C]. */
    m = classifier(2, d);
    transpose_node(m, "t0", "x", "y", 2, rev);
    expect_refusal_freeing(m, false, CLEVAL_ERR_UNSUPPORTED, "node 't0' (Transpose)", "[N, C]",
                           NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_integer_copies),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_unnamed_output),
        cmocka_unit_test(test_split_long),
        cmocka_unit_test(test_squeeze_unsqueeze),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_batch_moved_matmul),
        cmocka_unit_test(test_batch_gemm_trans_a),
        cmocka_unit_test(test_batch_merged_heads),
        cmocka_unit_test(test_batch_class_token),
        cmocka_unit_test(test_batch_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
