/* The KNN searcher: against scikit-learn on iris, wine, digits and a Fashion-MNIST subset
 * (fixtures from tools/make_knn_fixtures.py), against the contract's tie rules on crafted
 * ties, and against a plain float64 C reference at odd sizes, for both kernel variants, with
 * the training set in one tile, in many small tiles, and streamed through one device slot. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cleval/dataset.h"
#include "cleval/knn.h"

typedef struct labelled_set {
    float *x;
    int32_t *y;
    uint64_t n;
    uint32_t dim;
} labelled_set;

static void free_set(labelled_set *s)
{
    free(s->x);
    free(s->y);
}

static labelled_set load_set(const char *path)
{
    cleval_dataset *ds;
    cleval_column *x, *y;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &x));
    assert_ok(cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &y));
    labelled_set s = {.n = cleval_column_rows(x), .dim = (uint32_t)cleval_column_row_size(x)};
    s.x = malloc(s.n * s.dim * sizeof *s.x);
    s.y = malloc(s.n * sizeof *s.y);
    int32_t max;
    assert_ok(cleval_column_read_f32(x, 0, s.n, s.x));
    assert_ok(cleval_column_read_i32(y, 0, s.n, s.y, &max));
    cleval_column_close(x);
    cleval_column_close(y);
    cleval_dataset_close(ds);
    return s;
}

static int32_t max_label(const labelled_set *a, const labelled_set *b)
{
    int32_t max = 0;
    for (uint64_t i = 0; i < a->n; i++)
        max = a->y[i] > max ? a->y[i] : max;
    for (uint64_t i = 0; b && i < b->n; i++)
        max = b->y[i] > max ? b->y[i] : max;
    return max;
}

/* What a search returns for every query. */
typedef struct knn_answer {
    int32_t *pred;
    float *scores;
    int32_t *neighbors;
    cleval_knn_stats stats;
} knn_answer;

static void free_answer(knn_answer *a)
{
    free(a->pred);
    free(a->scores);
    free(a->neighbors);
}

/* Runs the whole search in batches of at most `batch` queries. */
static knn_answer run_knn(const labelled_set *train, const float *queries, uint64_t nq,
                          const cleval_knn_config *config, uint32_t batch)
{
    cleval_knn *knn;
    assert_ok(cleval_knn_create(test_device(), config, train->n, train->dim, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, train->n, train->x, train->y));
    assert_ok(cleval_knn_prepare(knn));
    uint32_t max = cleval_knn_max_batch(knn);
    batch = batch && batch < max ? batch : max;
    knn_answer a = {.pred = malloc((nq + 1) * sizeof *a.pred),
                    .scores = malloc((nq + 1) * config->n_classes * sizeof *a.scores),
                    .neighbors = malloc((nq + 1) * config->k * sizeof *a.neighbors)};
    for (uint64_t q0 = 0; q0 < nq; q0 += batch) {
        uint32_t n = (uint32_t)(nq - q0 < batch ? nq - q0 : batch);
        assert_ok(cleval_knn_search(knn, queries + q0 * train->dim, n, a.pred + q0,
                                    a.scores + q0 * config->n_classes));
        assert_ok(cleval_knn_last_neighbors(knn, n, a.neighbors + q0 * config->k));
        int32_t device_pred[8192];
        assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(test_device()),
                                                      cleval_knn_pred_buffer(knn), CL_TRUE, 0,
                                                      n * sizeof(int32_t), device_pred, 0, NULL,
                                                      NULL),
                                  "clEnqueueReadBuffer"));
        assert_memory_equal(device_pred, a.pred + q0, n * sizeof(int32_t));
        /* The vote fractions the score metrics read on the device, after searching again too */
        size_t score_bytes = (size_t)n * config->n_classes * sizeof(float);
        float *device_scores = malloc(score_bytes);
        assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(test_device()),
                                                      cleval_knn_scores_buffer(knn), CL_TRUE, 0,
                                                      score_bytes, device_scores, 0, NULL, NULL),
                                  "clEnqueueReadBuffer"));
        assert_memory_equal(device_scores, a.scores + q0 * config->n_classes, score_bytes);
        free(device_scores);
    }
    a.stats = *cleval_knn_get_stats(knn);
    cleval_knn_destroy(knn);
    return a;
}

/* Reads dataset `group/name` of an expected-results file as int32, double or uint8 arrays. */
static void *read_expected(hid_t file, const char *group, const char *name, hid_t type,
                           size_t element, hsize_t *count)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", group, name);
    hid_t dset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dset < 0) fail_msg("no dataset %s in the fixture", path);
    hid_t space = H5Dget_space(dset);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    void *data = malloc((size_t)n * element + 1);
    assert_true(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Sclose(space);
    H5Dclose(dset);
    *count = (hsize_t)n;
    return data;
}

static long long group_int_attribute(hid_t file, const char *group, const char *name)
{
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    hid_t attr = H5Aopen(g, name, H5P_DEFAULT);
    long long value = 0;
    H5Aread(attr, H5T_NATIVE_LLONG, &value);
    H5Aclose(attr);
    H5Gclose(g);
    return value;
}

static void group_text_attribute(hid_t file, const char *group, const char *name, char *out,
                                 size_t size)
{
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    hid_t attr = H5Aopen(g, name, H5P_DEFAULT);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    char *value = NULL;
    H5Aread(attr, type, &value);
    snprintf(out, size, "%s", value ? value : "");
    H5free_memory(value);
    H5Tclose(type);
    H5Aclose(attr);
    H5Gclose(g);
}

static int compare_ints(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Runs one fixture configuration and compares every unambiguous query with scikit-learn. */
static uint64_t check_fixture(const char *name, const char *cfg,
                              const cleval_knn_config *overrides, uint32_t batch)
{
    char path[512];
    snprintf(path, sizeof path, "knn/%s_train.h5", name);
    labelled_set train = load_set(fixture_path(path));
    snprintf(path, sizeof path, "knn/%s_test.h5", name);
    labelled_set test = load_set(fixture_path(path));
    snprintf(path, sizeof path, "knn/%s_expected.h5", name);
    hid_t file = H5Fopen(fixture_path(path), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);

    char weights[32], metric[32];
    group_text_attribute(file, cfg, "weights", weights, sizeof weights);
    group_text_attribute(file, cfg, "metric", metric, sizeof metric);
    cleval_knn_config config = *overrides;
    config.k = (uint32_t)group_int_attribute(file, cfg, "k");
    config.weights = strcmp(weights, "distance") == 0 ? CLEVAL_KNN_DISTANCE : CLEVAL_KNN_UNIFORM;
    config.metric = strcmp(metric, "cosine") == 0 ? CLEVAL_KNN_COSINE : CLEVAL_KNN_EUCLIDEAN;
    config.n_classes = (uint32_t)max_label(&train, &test) + 1;

    knn_answer got = run_knn(&train, test.x, test.n, &config, batch);
    hsize_t n_pred, n_neighbors, n_proba, n_ambiguous;
    int32_t *pred = read_expected(file, cfg, "pred", H5T_NATIVE_INT32, 4, &n_pred);
    int32_t *neighbors = read_expected(file, cfg, "neighbors", H5T_NATIVE_INT32, 4, &n_neighbors);
    double *proba = read_expected(file, cfg, "proba", H5T_NATIVE_DOUBLE, 8, &n_proba);
    uint8_t *ambiguous = read_expected(file, cfg, "ambiguous", H5T_NATIVE_UINT8, 1, &n_ambiguous);
    assert_int_equal(n_pred, test.n);
    assert_int_equal(n_proba, test.n * config.n_classes);
    uint64_t compared = 0;
    for (uint64_t q = 0; q < test.n; q++) {
        if (ambiguous[q]) continue;
        compared++;
        if (got.pred[q] != pred[q])
            fail_msg("%s/%s query %llu: predicted %d, expected %d", name, cfg,
                     (unsigned long long)q, got.pred[q], pred[q]);
        /* The crafted ties hold small integers, exact in float32: their order is the
         * contract's. Elsewhere scikit-learn ranked float64 data that cleval reads as float32
         * (docs/contract.md), which may reorder near-equal distances inside the k: compare sets. */
        int32_t *mine = got.neighbors + q * config.k, *theirs = neighbors + q * config.k;
        if (strcmp(name, "ties") != 0) {
            qsort(mine, config.k, sizeof *mine, compare_ints);
            qsort(theirs, config.k, sizeof *theirs, compare_ints);
        }
        for (uint32_t j = 0; j < config.k; j++)
            if (mine[j] != theirs[j])
                fail_msg("%s/%s query %llu: neighbour %u is %d, expected %d", name, cfg,
                         (unsigned long long)q, j, mine[j], theirs[j]);
        for (uint32_t c = 0; c < config.n_classes; c++)
            if (fabs(got.scores[q * config.n_classes + c] - proba[q * config.n_classes + c]) >
                1e-6)
                fail_msg("%s/%s query %llu class %u: score %g, expected %g", name, cfg,
                         (unsigned long long)q, c, got.scores[q * config.n_classes + c],
                         proba[q * config.n_classes + c]);
    }
    assert_true(compared > 0);
    uint64_t searched_again = got.stats.searched_again;
    free(pred), free(neighbors), free(proba), free(ambiguous);
    free_answer(&got);
    H5Fclose(file);
    free_set(&train);
    free_set(&test);
    return searched_again;
}

static const char *const fixture_cases[][2] = {
    {"iris", "k3"},   {"iris", "k3_distance"}, {"iris", "k3_cosine"}, {"wine", "k5"},
    {"wine", "k5_distance"}, {"digits", "k1"}, {"digits", "k7"},       {"ties", "k2"},
    {"ties", "k3"},   {"ties", "k4"},          {"ties", "k3_distance"}, {"ties", "kall"},
};
enum { N_FIXTURE_CASES = sizeof fixture_cases / sizeof *fixture_cases };

/* Returns how many queries had to be searched again over all cases. */
static uint64_t run_fixtures(cleval_kernel_variant variant, const cleval_knn_config *overrides,
                             uint32_t batch)
{
    cleval_device_set_variant(test_device(), variant);
    uint64_t searched_again = 0;
    for (int i = 0; i < N_FIXTURE_CASES; i++)
        searched_again += check_fixture(fixture_cases[i][0], fixture_cases[i][1], overrides, batch);
    return searched_again;
}

static void test_fixtures_cpu_variant(void **state)
{
    (void)state;
    run_fixtures(CLEVAL_VARIANT_CPU, &(cleval_knn_config){0}, 0);
}

static void test_fixtures_gpu_variant(void **state)
{
    (void)state;
    run_fixtures(CLEVAL_VARIANT_GPU, &(cleval_knn_config){0}, 0);
}

/* Many small tiles (a prime number of rows each), batches of 7 queries, and a margin of one
 * candidate, so that searching again and merging across tiles both happen. */
static void test_fixtures_small_tiles_and_margin(void **state)
{
    (void)state;
    cleval_knn_config tiny = {.tile_rows = 13, .margin = 1};
    uint64_t again = run_fixtures(CLEVAL_VARIANT_CPU, &tiny, 7);
    print_message("cpu: %llu queries searched again\n", (unsigned long long)again);
    assert_true(again > 0);
    again = run_fixtures(CLEVAL_VARIANT_GPU, &tiny, 7);
    print_message("gpu: %llu queries searched again\n", (unsigned long long)again);
    assert_true(again > 0);
}

/* A device budget too small for the whole set: tiles take turns in one device slot. */
static void test_fixtures_streamed_tiles(void **state)
{
    (void)state;
    cleval_knn_config streamed = {.tile_rows = 64, .device_budget_bytes = 4096};
    run_fixtures(CLEVAL_VARIANT_CPU, &streamed, 0);
    run_fixtures(CLEVAL_VARIANT_GPU, &streamed, 0);
}

/* --- A plain float64 reference of the contract's semantics ------------------------------ */

typedef struct ranked {
    double dist;
    int32_t index;
} ranked;

static int by_rank(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static void reference_knn(const labelled_set *train, const float *q, const cleval_knn_config *c,
                          int32_t *pred, float *scores, int32_t *neighbors)
{
    ranked *all = malloc(train->n * sizeof *all);
    for (uint64_t r = 0; r < train->n; r++) {
        double sum = 0;
        for (uint32_t d = 0; d < train->dim; d++) {
            double diff = (double)q[d] - train->x[r * train->dim + d];
            sum += diff * diff;
        }
        all[r] = (ranked){sum, (int32_t)r};
    }
    qsort(all, train->n, sizeof *all, by_rank);
    double *votes = calloc(c->n_classes, sizeof *votes);
    for (uint32_t j = 0; j < c->k; j++) {
        neighbors[j] = all[j].index;
        votes[train->y[all[j].index]] += 1;
    }
    uint32_t best = 0;
    for (uint32_t k = 1; k < c->n_classes; k++)
        if (votes[k] > votes[best]) best = k;
    *pred = (int32_t)best;
    for (uint32_t k = 0; k < c->n_classes; k++)
        scores[k] = (float)(votes[k] / c->k);
    free(votes);
    free(all);
}

/* Pseudo-random values on a coarse grid, so exact distance ties are common. */
static void fill_grid(float *v, size_t n, uint64_t seed, int levels)
{
    uint64_t s = seed * 2862933555777941757ull + 3037000493ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 2862933555777941757ull + 3037000493ull;
        v[i] = (float)((s >> 35) % (uint64_t)levels) * 0.25f;
    }
}

static void check_against_reference(uint64_t n_train, uint32_t dim, uint64_t nq, uint32_t k,
                                    uint32_t classes, int levels)
{
    labelled_set train = {malloc(n_train * dim * sizeof(float)), malloc(n_train * 4), n_train,
                          dim};
    float *queries = malloc((nq * dim + 1) * sizeof *queries);
    fill_grid(train.x, n_train * dim, n_train + dim, levels);
    fill_grid(queries, nq * dim, nq * 7 + k, levels);
    for (uint64_t i = 0; i < n_train; i++)
        train.y[i] = (int32_t)((i * 7919) % classes);
    cleval_knn_config config = {.k = k, .n_classes = classes};
    knn_answer got = run_knn(&train, queries, nq, &config, 0);
    int32_t *neighbors = malloc(k * sizeof *neighbors);
    float *scores = malloc(classes * sizeof *scores);
    for (uint64_t q = 0; q < nq; q++) {
        int32_t pred;
        reference_knn(&train, queries + q * dim, &config, &pred, scores, neighbors);
        if (pred != got.pred[q] ||
            memcmp(neighbors, got.neighbors + q * k, k * sizeof *neighbors) != 0 ||
            memcmp(scores, got.scores + q * classes, classes * sizeof *scores) != 0)
            fail_msg("n_train=%llu dim=%u nq=%llu k=%u: query %llu differs from the reference "
                     "(pred %d vs %d, first neighbour %d vs %d)",
                     (unsigned long long)n_train, dim, (unsigned long long)nq, k,
                     (unsigned long long)q, got.pred[q], pred, got.neighbors[q * k], neighbors[0]);
    }
    free(neighbors);
    free(scores);
    free(queries);
    free_answer(&got);
    free_set(&train);
}

static void reference_sizes(cleval_kernel_variant variant)
{
    cleval_device_set_variant(test_device(), variant);
    check_against_reference(1, 1, 1, 1, 2, 4);        /* the smallest search */
    check_against_reference(97, 3, 1, 5, 3, 3);       /* prime rows, one query, many ties */
    check_against_reference(97, 17, 13, 97, 4, 5);    /* k = N_train */
    check_against_reference(1009, 33, 257, 7, 10, 9); /* 257 queries: one past a block */
    check_against_reference(130, 65, 300, 64, 5, 2);  /* two panels + 2 rows, binary data */
}

static void test_reference_cpu_variant(void **state)
{
    (void)state;
    reference_sizes(CLEVAL_VARIANT_CPU);
}

static void test_reference_gpu_variant(void **state)
{
    (void)state;
    reference_sizes(CLEVAL_VARIANT_GPU);
}

/* --- Fashion-MNIST subset against scikit-learn ----------------------------------------- */

/* Reads `count` images (x / 255 as float32) or labels from Debian's IDX files. */
static void *read_idx(const char *path, uint64_t count, bool images)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        print_message("skipping: %s is not installed (dataset-fashion-mnist)\n", path);
        return NULL;
    }
    unsigned char header[16];
    int header_size = images ? 16 : 8;
    assert_int_equal(gzread(f, header, (unsigned)header_size), header_size);
    size_t item = images ? 784 : 1;
    unsigned char *raw = malloc(count * item);
    assert_int_equal(gzread(f, raw, (unsigned)(count * item)), (int)(count * item));
    gzclose(f);
    if (!images) {
        int32_t *labels = malloc(count * sizeof *labels);
        for (uint64_t i = 0; i < count; i++)
            labels[i] = raw[i];
        free(raw);
        return labels;
    }
    float *pixels = malloc(count * item * sizeof *pixels);
    for (size_t i = 0; i < count * item; i++)
        pixels[i] = (float)raw[i] / 255.0f;
    free(raw);
    return pixels;
}

static void test_fashion_mnist_subset(void **state)
{
    (void)state;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    labelled_set train = {read_idx(path, 10000, true), NULL, 10000, 784};
    if (!train.x) skip();
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    train.y = read_idx(path, 10000, false);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    float *test = read_idx(path, 2000, true);

    hid_t file = H5Fopen(fixture_path("knn/fmnist_subset_expected.h5"), H5F_ACC_RDONLY,
                         H5P_DEFAULT);
    hsize_t n;
    int32_t *pred = read_expected(file, "k5", "pred", H5T_NATIVE_INT32, 4, &n);
    int32_t *neighbors = read_expected(file, "k5", "neighbors", H5T_NATIVE_INT32, 4, &n);
    uint8_t *ambiguous = read_expected(file, "k5", "ambiguous", H5T_NATIVE_UINT8, 1, &n);
    H5Fclose(file);

    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
        cleval_knn_config config = {.k = 5, .n_classes = 10};
        knn_answer got = run_knn(&train, test, 2000, &config, 0);
        uint64_t mismatches = 0, compared = 0;
        for (uint64_t q = 0; q < 2000; q++) {
            if (ambiguous[q]) continue;
            compared++;
            mismatches += got.pred[q] != pred[q] ||
                          memcmp(got.neighbors + q * 5, neighbors + q * 5, 5 * 4) != 0;
        }
        print_message("%s variant: %llu of %llu unambiguous queries differ; %llu searched again, "
                      "%llu vote ties, %llu distance ties\n",
                      v ? "gpu" : "cpu", (unsigned long long)mismatches,
                      (unsigned long long)compared, (unsigned long long)got.stats.searched_again,
                      (unsigned long long)got.stats.vote_ties,
                      (unsigned long long)got.stats.distance_ties);
        assert_int_equal(mismatches, 0);
        free_answer(&got);
    }
    free(pred), free(neighbors), free(ambiguous), free(test);
    free_set(&train);
}

/* Three searchers over three slices of the training set, their candidates voted together,
 * answer exactly like one searcher over all of it (what --shard-train relies on). */
static void test_candidates_of_slices_vote_like_the_whole(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), v ? CLEVAL_VARIANT_GPU : CLEVAL_VARIANT_CPU);
        labelled_set train = load_set(fixture_path("knn/digits_train.h5"));
        labelled_set test = load_set(fixture_path("knn/digits_test.h5"));
        cleval_knn_config config = {.k = 7, .n_classes = 10};
        knn_answer whole = run_knn(&train, test.x, test.n, &config, 0);
        uint32_t nq = (uint32_t)test.n, k1 = config.k + 1;
        cleval_knn_candidate *all = malloc((size_t)3 * nq * k1 * sizeof *all);
        cleval_knn *voter = NULL;
        for (int part = 0; part < 3; part++) {
            uint64_t begin = train.n * (uint64_t)part / 3, end = train.n * (uint64_t)(part + 1) / 3;
            cleval_knn *knn;
            assert_ok(cleval_knn_create(test_device(), &config, end - begin, train.dim, &knn));
            assert_ok(cleval_knn_set_train(knn, 0, end - begin, train.x + begin * train.dim,
                                           train.y + begin));
            assert_ok(cleval_knn_prepare(knn));
            int32_t *pred = malloc(nq * sizeof *pred);
            assert_ok(cleval_knn_search(knn, test.x, nq, pred, NULL));
            cleval_knn_candidate *mine = all + (size_t)part * nq * k1;
            assert_ok(cleval_knn_last_candidates(knn, nq, mine));
            for (size_t i = 0; i < (size_t)nq * k1; i++)
                if (mine[i].index >= 0) mine[i].index += (int32_t)begin;
            free(pred);
            if (part == 0) voter = knn;
            else cleval_knn_destroy(knn);
        }
        int32_t *pred = malloc(nq * sizeof *pred);
        float *scores = malloc((size_t)nq * 10 * sizeof *scores);
        int32_t *neighbors = malloc((size_t)nq * config.k * sizeof *neighbors);
        assert_ok(cleval_knn_vote_candidates(voter, nq, 3, all, pred, scores));
        assert_ok(cleval_knn_last_neighbors(voter, nq, neighbors));
        assert_memory_equal(pred, whole.pred, nq * sizeof *pred);
        assert_memory_equal(scores, whole.scores, (size_t)nq * 10 * sizeof *scores);
        assert_memory_equal(neighbors, whole.neighbors, (size_t)nq * config.k * sizeof *neighbors);
        cleval_knn_destroy(voter);
        free(pred), free(scores), free(neighbors), free(all);
        free_answer(&whole);
        free_set(&train);
        free_set(&test);
    }
}

/* A query equal to a training row is at cosine distance exactly 0, never a rounding below. */
static void test_cosine_distances_never_negative(void **state)
{
    (void)state;
    float train_x[3 * 5] = {0.1f, 0.7f, 0.3f, 0.9f, 0.2f, 3.0f, 1.0f, 0.0f, 2.0f, 5.0f,
                            1e-3f, 7.0f, 0.5f, 0.5f, 0.25f};
    int32_t train_y[3] = {0, 1, 2};
    cleval_knn_config config = {.k = 3, .n_classes = 3, .metric = CLEVAL_KNN_COSINE};
    cleval_knn *knn;
    assert_ok(cleval_knn_create(test_device(), &config, 3, 5, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, 3, train_x, train_y));
    assert_ok(cleval_knn_prepare(knn));
    int32_t pred[3];
    assert_ok(cleval_knn_search(knn, train_x, 3, pred, NULL));
    cleval_knn_candidate candidates[3 * 4];
    assert_ok(cleval_knn_last_candidates(knn, 3, candidates));
    for (int q = 0; q < 3; q++) {
        assert_int_equal(candidates[q * 4].index, q);
        assert_true(candidates[q * 4].distance == 0.0);
        for (int j = 0; j < 3; j++)
            assert_true(candidates[q * 4 + j].distance >= 0.0);
    }
    cleval_knn_destroy(knn);
}

static void test_bad_configurations(void **state)
{
    (void)state;
    cleval_knn *knn = NULL;
    cleval_knn_config config = {.k = 0, .n_classes = 2};
    assert_int_equal(cleval_knn_create(test_device(), &config, 10, 4, &knn), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "-k must be at least 1"));
    config.k = 11;
    assert_int_equal(cleval_knn_create(test_device(), &config, 10, 4, &knn), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "larger than the training set"));
    config.k = 1;
    assert_int_equal(cleval_knn_create(test_device(), &config, 0, 4, &knn), CLEVAL_ERR_INPUT);
    assert_non_null(strstr(cleval_last_error(), "empty"));
    assert_null(knn);
    cleval_knn_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configurations),
        cmocka_unit_test(test_reference_cpu_variant),
        cmocka_unit_test(test_reference_gpu_variant),
        cmocka_unit_test(test_fixtures_cpu_variant),
        cmocka_unit_test(test_fixtures_gpu_variant),
        cmocka_unit_test(test_fixtures_small_tiles_and_margin),
        cmocka_unit_test(test_fixtures_streamed_tiles),
        cmocka_unit_test(test_fashion_mnist_subset),
        cmocka_unit_test(test_candidates_of_slices_vote_like_the_whole),
        cmocka_unit_test(test_cosine_distances_never_negative),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
