/* The KNN integer mode (uint8, int8, uint16, int16 values, Euclidean): neighbours, their exact
 * squared distances, predictions and vote fractions against a plain C reference with int64
 * distances and the contract's tie rules (equal distances: lower training index first; equal
 * votes: smaller label), at odd sizes and with many exact ties built on purpose; identical
 * answers to the float path on Fashion-MNIST's raw pixels; which mode is chosen; and values
 * outside the declared type refused. Both kernel families, under NVIDIA's emulated limits. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cleval/knn.h"

typedef struct int_case {
    cleval_elem_type type;
    uint64_t n_train;
    uint32_t dim;
    uint32_t nq;
    uint32_t k;
    uint32_t classes;
    int levels;    /* distinct values: few levels make exact distance ties common */
    bool weighted; /* inverse-distance votes */
} int_case;

/* What a search returned. */
typedef struct answer {
    int32_t *pred;
    float *scores;
    cleval_knn_candidate *cand; /* [nq][k + 1] */
    cleval_elem_type mode;
} answer;

static void free_answer(answer *a)
{
    free(a->pred), free(a->scores), free(a->cand);
}

static answer run(const float *train, const int32_t *labels, uint64_t n_train, uint32_t dim,
                  const float *queries, uint32_t nq, const cleval_knn_config *config)
{
    cleval_knn *knn;
    assert_ok(cleval_knn_create(test_device(), config, n_train, dim, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, n_train, train, labels));
    assert_ok(cleval_knn_prepare(knn));
    uint32_t k1 = config->k + 1;
    answer a = {malloc(nq * sizeof *a.pred), malloc((size_t)nq * config->n_classes * 4),
                malloc((size_t)nq * k1 * sizeof *a.cand), cleval_knn_integer_type(knn)};
    uint32_t batch = cleval_knn_max_batch(knn);
    for (uint32_t q0 = 0; q0 < nq; q0 += batch) {
        uint32_t n = nq - q0 < batch ? nq - q0 : batch;
        assert_ok(cleval_knn_search(knn, queries + (size_t)q0 * dim, n, a.pred + q0,
                                    a.scores + (size_t)q0 * config->n_classes));
        assert_ok(cleval_knn_last_candidates(knn, n, a.cand + (size_t)q0 * k1));
    }
    cleval_knn_destroy(knn);
    return a;
}

/* A value of the type's range on a grid of `levels` values spread over all of it. */
static float grid_value(cleval_elem_type type, uint64_t *s, int levels)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    double lo, hi;
    switch (type) {
    case CLEVAL_ELEM_U8: lo = 0, hi = 255; break;
    case CLEVAL_ELEM_I8: lo = -128, hi = 127; break;
    case CLEVAL_ELEM_U16: lo = 0, hi = 65535; break;
    default: lo = -32768, hi = 32767; break;
    }
    int level = (int)((*s >> 33) % (uint64_t)levels);
    return (float)(levels == 1 ? lo : lo + floor((hi - lo) * level / (levels - 1)));
}

typedef struct ref_row {
    int64_t dist;
    int32_t index;
} ref_row;

static int by_distance_then_index(const void *a, const void *b)
{
    const ref_row *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The plain C reference for one query: exact int64 squared distances, the k + 1 nearest by
 * (distance, index), uniform or inverse-distance votes (a neighbour at distance 0 taking all
 * the weight), the smallest label winning a tie, and the vote fractions. */
static void reference(const float *train, const int32_t *labels, uint64_t n_train, uint32_t dim,
                      const float *q, const cleval_knn_config *c, ref_row *rows, int32_t *pred,
                      float *scores)
{
    for (uint64_t r = 0; r < n_train; r++) {
        int64_t sum = 0;
        for (uint32_t d = 0; d < dim; d++) {
            int64_t diff = (int64_t)q[d] - (int64_t)train[r * dim + d];
            sum += diff * diff;
        }
        rows[r] = (ref_row){sum, (int32_t)r};
    }
    qsort(rows, n_train, sizeof *rows, by_distance_then_index);
    double *votes = calloc(c->n_classes, sizeof *votes), total = 0;
    bool zero = false;
    for (uint32_t j = 0; j < c->k; j++)
        zero = zero || rows[j].dist == 0;
    for (uint32_t j = 0; j < c->k; j++) {
        double w = 1;
        if (c->weights == CLEVAL_KNN_DISTANCE)
            w = zero ? (rows[j].dist == 0 ? 1 : 0) : 1 / sqrt((double)rows[j].dist);
        votes[labels[rows[j].index]] += w;
        total += w;
    }
    uint32_t best = 0;
    for (uint32_t k = 1; k < c->n_classes; k++)
        if (votes[k] > votes[best]) best = k;
    *pred = (int32_t)best;
    for (uint32_t k = 0; k < c->n_classes; k++)
        scores[k] = total > 0 ? (float)(votes[k] / total) : 0.0f;
    free(votes);
}

static void check_case(const int_case *t)
{
    uint64_t s = t->n_train * 131 + t->dim * 7 + t->nq + t->type;
    float *train = malloc(t->n_train * t->dim * sizeof *train);
    float *queries = malloc(((size_t)t->nq * t->dim + 1) * sizeof *queries);
    int32_t *labels = malloc(t->n_train * sizeof *labels);
    for (uint64_t i = 0; i < t->n_train * t->dim; i++)
        train[i] = grid_value(t->type, &s, t->levels);
    for (uint64_t i = 0; i < (uint64_t)t->nq * t->dim; i++)
        queries[i] = grid_value(t->type, &s, t->levels);
    /* Exact duplicates of training rows among the queries and the training set itself. */
    if (t->nq > 1) memcpy(queries, train, t->dim * sizeof *queries);
    if (t->n_train > 2) memcpy(train + 2 * t->dim, train, t->dim * sizeof *train);
    for (uint64_t i = 0; i < t->n_train; i++)
        labels[i] = (int32_t)((i * 7919) % t->classes);
    cleval_knn_config config = {.k = t->k,
                                .n_classes = t->classes,
                                .values = t->type,
                                .weights = t->weighted ? CLEVAL_KNN_DISTANCE : CLEVAL_KNN_UNIFORM};
    answer got = run(train, labels, t->n_train, t->dim, queries, t->nq, &config);
    assert_int_equal(got.mode, t->type);

    ref_row *rows = malloc(t->n_train * sizeof *rows);
    float *scores = malloc(t->classes * sizeof *scores);
    uint32_t k1 = t->k + 1;
    for (uint32_t q = 0; q < t->nq; q++) {
        int32_t pred;
        reference(train, labels, t->n_train, t->dim, queries + (size_t)q * t->dim, &config, rows,
                  &pred, scores);
        const cleval_knn_candidate *c = got.cand + (size_t)q * k1;
        for (uint32_t j = 0; j < k1; j++) {
            bool present = j < t->n_train;
            if (present ? (c[j].index != rows[j].index || c[j].distance != (double)rows[j].dist ||
                           c[j].label != labels[rows[j].index])
                        : c[j].index != -1)
                fail_msg("type %d n_train=%llu dim=%u nq=%u k=%u: query %u neighbour %u is "
                         "(%d, %.0f), the reference's (%d, %lld)",
                         (int)t->type, (unsigned long long)t->n_train, t->dim, t->nq, t->k, q, j,
                         c[j].index, c[j].distance, present ? rows[j].index : -1,
                         present ? (long long)rows[j].dist : -1ll);
        }
        if (got.pred[q] != pred ||
            memcmp(got.scores + (size_t)q * t->classes, scores, t->classes * sizeof *scores))
            fail_msg("type %d n_train=%llu dim=%u nq=%u k=%u: query %u predicts %d (reference %d) "
                     "or its vote fractions differ",
                     (int)t->type, (unsigned long long)t->n_train, t->dim, t->nq, t->k, q,
                     got.pred[q], pred);
    }
    free(rows), free(scores), free(train), free(queries), free(labels);
    free_answer(&got);
}

static const int_case CASES[] = {
    {CLEVAL_ELEM_U8, 1, 1, 1, 1, 2, 256, false},        /* the smallest search */
    {CLEVAL_ELEM_U8, 97, 13, 1, 5, 3, 3, false},        /* a prime, one query, many ties */
    {CLEVAL_ELEM_U8, 97, 17, 31, 97, 4, 2, false},      /* k = N_train, binary values */
    {CLEVAL_ELEM_U8, 65, 129, 257, 7, 10, 5, true},     /* one past a panel, an exact block, a
                                                           query block; distance weights */
    {CLEVAL_ELEM_U8, 1009, 784, 33, 5, 10, 256, false}, /* Fashion-MNIST's width, full range */
    {CLEVAL_ELEM_U8, 130, 257, 300, 64, 5, 2, false},   /* two panels + 2, 0/255 only: ties */
    {CLEVAL_ELEM_I8, 97, 31, 65, 5, 3, 4, false},       /* negative values, extremes */
    {CLEVAL_ELEM_I8, 257, 129, 17, 9, 4, 256, true},
    {CLEVAL_ELEM_U16, 1, 3, 5, 1, 2, 65536, false},
    {CLEVAL_ELEM_U16, 97, 5, 33, 5, 3, 3, false},   /* 65535^2 terms: int64 sums */
    {CLEVAL_ELEM_I16, 8193, 2, 7, 11, 5, 3, false}, /* one past a GPU split, many ties */
    {CLEVAL_ELEM_I16, 61, 257, 29, 5, 3, 65536, true},
};

static void check_cases(cleval_kernel_variant variant)
{
    cleval_device_set_variant(test_device(), variant);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        check_case(&CASES[i]);
}

static void test_reference_cpu_family(void **state)
{
    (void)state;
    check_cases(CLEVAL_VARIANT_CPU);
}

static void test_reference_gpu_family(void **state)
{
    (void)state;
    check_cases(CLEVAL_VARIANT_GPU);
}

/* The mode: uint8 Euclidean takes it; float data and cosine keep the float path. */
static void test_mode_chosen(void **state)
{
    (void)state;
    float train[] = {0, 1, 2, 3, 4, 5}, query[] = {1, 1};
    int32_t labels[] = {0, 1, 0};
    struct {
        cleval_elem_type values;
        cleval_knn_metric metric;
        cleval_elem_type expected;
    } cases[] = {{CLEVAL_ELEM_U8, CLEVAL_KNN_EUCLIDEAN, CLEVAL_ELEM_U8},
                 {CLEVAL_ELEM_I16, CLEVAL_KNN_EUCLIDEAN, CLEVAL_ELEM_I16},
                 {CLEVAL_ELEM_F32, CLEVAL_KNN_EUCLIDEAN, CLEVAL_ELEM_F32},
                 {CLEVAL_ELEM_U8, CLEVAL_KNN_COSINE, CLEVAL_ELEM_F32}};
    bool fp64 = cleval_device_get_info(test_device())->has_fp64;
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            cleval_knn_config config = {
                .k = 1, .n_classes = 2, .values = cases[i].values, .metric = cases[i].metric};
            answer a = run(train, labels, 3, 2, query, 1, &config);
            assert_int_equal(a.mode, fp64 ? cases[i].expected : CLEVAL_ELEM_F32);
            assert_int_equal(a.pred[0], 0);
            free_answer(&a);
        }
    }
}

/* A value outside the declared type is refused, in the training set and in a query. */
static void test_values_outside_the_type(void **state)
{
    (void)state;
    float good[] = {0, 255, 3, 4}, bad_train[] = {0, 256, 3, 4}, half[] = {0.5f, 1};
    int32_t labels[] = {0, 1};
    cleval_knn_config config = {.k = 1, .n_classes = 2, .values = CLEVAL_ELEM_U8};
    cleval_knn *knn;
    assert_ok(cleval_knn_create(test_device(), &config, 2, 2, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, 2, bad_train, labels));
    assert_int_equal(cleval_knn_prepare(knn), CLEVAL_ERR_USAGE);
    cleval_knn_destroy(knn);
    assert_ok(cleval_knn_create(test_device(), &config, 2, 2, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, 2, good, labels));
    assert_ok(cleval_knn_prepare(knn));
    int32_t pred;
    if (cleval_knn_integer_type(knn) == CLEVAL_ELEM_U8) {
        assert_int_equal(cleval_knn_search(knn, half, 1, &pred, NULL), CLEVAL_ERR_USAGE);
        assert_non_null(strstr(cleval_last_error(), "not a uint8"));
    }
    cleval_knn_destroy(knn);
}

/* Reads `count` raw images or labels from Debian's IDX files (NULL when not installed). */
static unsigned char *read_idx(const char *name, uint64_t count, size_t item)
{
    char path[512];
    snprintf(path, sizeof path, "/usr/share/datasets/fashion-mnist/%s", name);
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    unsigned char header[16];
    int header_size = item > 1 ? 16 : 8;
    assert_int_equal(gzread(f, header, (unsigned)header_size), header_size);
    unsigned char *raw = malloc(count * item);
    assert_int_equal(gzread(f, raw, (unsigned)(count * item)), (int)(count * item));
    gzclose(f);
    return raw;
}

/* Fashion-MNIST's raw pixels (0..255): the integer mode answers exactly as the float path
 * (float32 screening, float64 re-ranking) does, candidates, distances and votes included. */
static void test_fashion_mnist_same_as_float_path(void **state)
{
    (void)state;
    enum { N_TRAIN = 6000, N_TEST = 1000, DIM = 784 };
    unsigned char *x = read_idx("train-images-idx3-ubyte.gz", N_TRAIN, DIM);
    if (!x) {
        print_message("skipping: Fashion-MNIST is not installed (dataset-fashion-mnist)\n");
        skip();
    }
    unsigned char *y = read_idx("train-labels-idx1-ubyte.gz", N_TRAIN, 1);
    unsigned char *t = read_idx("t10k-images-idx3-ubyte.gz", N_TEST, DIM);
    float *train = malloc((size_t)N_TRAIN * DIM * sizeof *train);
    float *test = malloc((size_t)N_TEST * DIM * sizeof *test);
    int32_t *labels = malloc(N_TRAIN * sizeof *labels);
    for (size_t i = 0; i < (size_t)N_TRAIN * DIM; i++)
        train[i] = x[i];
    for (size_t i = 0; i < (size_t)N_TEST * DIM; i++)
        test[i] = t[i];
    for (size_t i = 0; i < N_TRAIN; i++)
        labels[i] = y[i];
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
        for (int weighted = 0; weighted < 2; weighted++) {
            cleval_knn_config config = {.k = 5,
                                        .n_classes = 10,
                                        .weights =
                                            weighted ? CLEVAL_KNN_DISTANCE : CLEVAL_KNN_UNIFORM};
            answer flt = run(train, labels, N_TRAIN, DIM, test, N_TEST, &config);
            config.values = CLEVAL_ELEM_U8;
            answer integer = run(train, labels, N_TRAIN, DIM, test, N_TEST, &config);
            assert_int_equal(flt.mode, CLEVAL_ELEM_F32);
            if (integer.mode != CLEVAL_ELEM_U8) skip(); /* no float64 on this device */
            assert_memory_equal(flt.pred, integer.pred, N_TEST * sizeof *flt.pred);
            assert_memory_equal(flt.scores, integer.scores, (size_t)N_TEST * 10 * 4);
            for (size_t i = 0; i < (size_t)N_TEST * 6; i++) {
                assert_int_equal(flt.cand[i].index, integer.cand[i].index);
                assert_true(flt.cand[i].distance == integer.cand[i].distance);
            }
            free_answer(&flt);
            free_answer(&integer);
        }
    }
    free(x), free(y), free(t), free(train), free(test), free(labels);
}

/* Writes X (4 rows of 3 values stored as `type`) and y. */
static void write_set(const char *name, hid_t type, const void *x)
{
    hid_t file = h5_create(temp_path(name));
    hsize_t dims[2] = {4, 3}, n = 4;
    int32_t y[4] = {0, 1, 0, 1};
    h5_write(file, "X", type, 2, dims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(file);
}

/* `cleval knn` takes the narrowest integer type both X datasets fit (--verbose names it), and
 * the float path for float data or cosine distances. */
static void test_cli_picks_the_type_of_both_files(void **state)
{
    (void)state;
    uint8_t u8[12] = {0, 1, 2, 200, 201, 202, 3, 4, 5, 250, 251, 255};
    int8_t i8[12] = {0, 1, 2, -100, -101, -102, 3, 4, 5, 120, 121, 127};
    float f32[12] = {0, 1, 2, 200, 201, 202, 3, 4, 5, 250, 251, 255};
    write_set("u8.h5", H5T_NATIVE_UINT8, u8);
    write_set("i8.h5", H5T_NATIVE_INT8, i8);
    write_set("f32.h5", H5T_NATIVE_FLOAT, f32);
    struct {
        const char *train, *test, *metric, *expected; /* NULL: the float path */
    } cases[] = {{"u8.h5", "u8.h5", "euclidean", "integer mode, uint8 values"},
                 {"i8.h5", "i8.h5", "euclidean", "integer mode, int8 values"},
                 {"u8.h5", "i8.h5", "euclidean", "integer mode, int16 values"},
                 {"u8.h5", "f32.h5", "euclidean", NULL},
                 {"u8.h5", "u8.h5", "cosine", NULL}};
    bool fp64 = cleval_device_get_info(test_device())->has_fp64;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char train[512], test[512];
        snprintf(train, sizeof train, "%s", temp_path(cases[i].train));
        snprintf(test, sizeof test, "%s", temp_path(cases[i].test));
        const char *args[] = {"knn",    "--train", train, "--data", test, "-k", "1", "--metric",
                              cases[i].metric, "--verbose", "--json", "-", NULL};
        char *out, *err;
        assert_int_equal(run_cleval(args, &out, &err), 0);
        bool integer = strstr(err, "integer mode") != NULL;
        if (cases[i].expected && fp64) {
            if (!strstr(err, cases[i].expected))
                fail_msg("%s against %s: no '%s' in\n%s", cases[i].train, cases[i].test,
                         cases[i].expected, err);
        } else {
            assert_false(integer);
        }
        free(out), free(err);
    }
}

/* By default the mode runs only where the CPU family's tiled kernel serves it (8-bit values);
 * 16-bit values and the GPU family keep the float path unless CLEVAL_KNN_INTEGER=always, and
 * `never` turns it off everywhere. */
static void test_default_policy(void **state)
{
    (void)state;
    float train[] = {0, 1, 2, 3, 4, 5}, query[] = {1, 1};
    int32_t labels[] = {0, 1, 0};
    bool fp64 = cleval_device_get_info(test_device())->has_fp64;
    struct {
        const char *env;
        cleval_kernel_variant variant;
        cleval_elem_type values, expected;
    } cases[] = {{NULL, CLEVAL_VARIANT_CPU, CLEVAL_ELEM_U8, CLEVAL_ELEM_U8},
                 {NULL, CLEVAL_VARIANT_CPU, CLEVAL_ELEM_I8, CLEVAL_ELEM_I8},
                 {NULL, CLEVAL_VARIANT_CPU, CLEVAL_ELEM_I16, CLEVAL_ELEM_F32},
                 {NULL, CLEVAL_VARIANT_GPU, CLEVAL_ELEM_U8, CLEVAL_ELEM_F32},
                 {"never", CLEVAL_VARIANT_CPU, CLEVAL_ELEM_U8, CLEVAL_ELEM_F32},
                 {"always", CLEVAL_VARIANT_GPU, CLEVAL_ELEM_U8, CLEVAL_ELEM_U8},
                 {"always", CLEVAL_VARIANT_CPU, CLEVAL_ELEM_U16, CLEVAL_ELEM_U16}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].env)
            setenv("CLEVAL_KNN_INTEGER", cases[i].env, 1);
        else
            unsetenv("CLEVAL_KNN_INTEGER");
        cleval_device_set_variant(test_device(), cases[i].variant);
        cleval_knn_config config = {.k = 1, .n_classes = 2, .values = cases[i].values};
        answer a = run(train, labels, 3, 2, query, 1, &config);
        if (a.mode != (fp64 ? cases[i].expected : CLEVAL_ELEM_F32))
            fail_msg("case %zu: mode %d, expected %d", i, (int)a.mode, (int)cases[i].expected);
        assert_int_equal(a.pred[0], 0);
        free_answer(&a);
    }
    setenv("CLEVAL_KNN_INTEGER", "always", 1);
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_CPU);
}

int main(void)
{
    /* NVIDIA's limits on work-group size and local memory, checked on every launch; the
     * integer mode wherever it is exact, so that the direct kernel is checked too. */
    setenv("CLEVAL_EMULATE_LIMITS", "nvidia", 1);
    setenv("CLEVAL_KNN_INTEGER", "always", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_mode_chosen),
        cmocka_unit_test(test_values_outside_the_type),
        cmocka_unit_test(test_reference_cpu_family),
        cmocka_unit_test(test_reference_gpu_family),
        cmocka_unit_test(test_fashion_mnist_same_as_float_path),
        cmocka_unit_test(test_cli_picks_the_type_of_both_files),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
