/* Issue 16, class 6: one large label made every command hold a dense C x C count matrix several
 * times over (a 4-row file with a label of 9000: 2.6 GB). Counts above the dense limit are now
 * held sparsely (cleval_counts), and the reports write their matrices row by row. These checks:
 * the two backings agree with a plain C matrix on random cells; metrics, compare and drift
 * with labels of 9000 and 16383 run within a 512 MiB address-space limit (a dense matrix alone
 * is 648 MB or 2.1 GB) and write the exact matrices (every row, every zero) the known pairs
 * make; and the dense and sparse backings give byte-identical reports and saved matrices for
 * metrics, knn and eval (CLEVAL_TEST_DENSE_CELLS forces the sparse one on small cases). */
#include "testutil.h"
#include "json_matrix_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleval/counts.h"
#include "cleval/dataset.h"
#include "cleval/report.h"

static const uint64_t ADDRESS_LIMIT = 512ull << 20;

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* Each step's counts against a dense matrix kept here. */
static void expect_counts(const cleval_counts *c, const uint64_t *reference, uint32_t rows,
                          uint32_t cols)
{
    assert_int_equal(c->rows, rows);
    assert_int_equal(c->cols, cols);
    uint64_t total = 0;
    size_t nonzero = 0;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t k = 0; k < cols; k++) {
            uint64_t v = reference[(size_t)r * cols + k];
            assert_int_equal(cleval_counts_get(c, r, k), v);
            total += v;
            nonzero += v != 0;
        }
    assert_int_equal(cleval_counts_total(c), total);
    cleval_count_cell *cells;
    size_t n;
    assert_ok(cleval_counts_sorted(c, &cells, &n));
    assert_int_equal(n, nonzero);
    size_t i = 0;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t k = 0; k < cols; k++) {
            if (!reference[(size_t)r * cols + k]) continue;
            assert_int_equal(cells[i].row, r);
            assert_int_equal(cells[i].col, k);
            assert_int_equal(cells[i].count, reference[(size_t)r * cols + k]);
            i++;
        }
    free(cells);
    uint64_t *dense;
    assert_ok(cleval_counts_to_dense(c, &dense));
    assert_memory_equal(dense, reference, (size_t)rows * cols * sizeof *dense);
    free(dense);
}

/* Random adds into both backings, then a copy, a merge across backings and a widening. */
static void test_backings_agree(void **state)
{
    (void)state;
    static const uint32_t shapes[][2] = {{1, 1}, {1, 13}, {7, 7}, {13, 13}, {33, 33}, {65, 3}};
    uint64_t seed = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        uint32_t rows = shapes[s][0], cols = shapes[s][1];
        uint64_t *reference = calloc((size_t)rows * cols, sizeof *reference);
        assert_non_null(reference);
        cleval_counts dense, sparse;
        setenv("CLEVAL_TEST_DENSE_CELLS", "1000000", 1);
        assert_ok(cleval_counts_init(&dense, rows, cols));
        setenv("CLEVAL_TEST_DENSE_CELLS", "0", 1);
        assert_ok(cleval_counts_init(&sparse, rows, cols));
        assert_false(cleval_counts_is_sparse(&dense));
        assert_true(cleval_counts_is_sparse(&sparse));
        for (int i = 0; i < 500; i++) {
            uint32_t r = (uint32_t)(next_random(&seed) % rows);
            uint32_t k = (uint32_t)(next_random(&seed) % cols);
            uint64_t v = next_random(&seed) % 4; /* zeros too: they must store nothing */
            reference[(size_t)r * cols + k] += v;
            assert_ok(cleval_counts_add(&dense, r, k, v));
            assert_ok(cleval_counts_add(&sparse, r, k, v));
        }
        /* Outside the shape: skipped, as the device histogram skips such pairs. */
        assert_ok(cleval_counts_add(&sparse, rows, 0, 1));
        assert_ok(cleval_counts_add(&dense, 0, cols, 1));
        expect_counts(&dense, reference, rows, cols);
        expect_counts(&sparse, reference, rows, cols);

        cleval_counts copy;
        assert_ok(cleval_counts_copy(&sparse, &copy));
        assert_ok(cleval_counts_add_counts(&copy, &dense)); /* twice the counts */
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            reference[i] *= 2;
        expect_counts(&copy, reference, rows, cols);

        /* Dense counts widened beyond a limit of 10 cells turn sparse and keep every count. */
        setenv("CLEVAL_TEST_DENSE_CELLS", "10", 1);
        uint32_t wide = cols + 11;
        assert_ok(cleval_counts_add_counts(&dense, &dense)); /* dense += itself: doubled */
        assert_ok(cleval_counts_grow(&dense, rows + 2, wide));
        assert_true(cleval_counts_is_sparse(&dense));
        uint64_t *wider = calloc((size_t)(rows + 2) * wide, sizeof *wider);
        assert_non_null(wider);
        for (uint32_t r = 0; r < rows; r++)
            memcpy(wider + (size_t)r * wide, reference + (size_t)r * cols, cols * sizeof *wider);
        expect_counts(&dense, wider, rows + 2, wide);
        unsetenv("CLEVAL_TEST_DENSE_CELLS");
        cleval_counts_free(&dense);
        cleval_counts_free(&sparse);
        cleval_counts_free(&copy);
        cleval_counts_free(&copy); /* freed counts are a zeroed struct: a no-op */
        free(wider);
        free(reference);
    }
}

/* A report placeholder holds the widest cells (ten-digit indices, twenty-digit counts) and
 * reads back exactly: 20 of them, so a text buffer sized for narrower cells would overflow. */
static void test_placeholder_round_trips(void **state)
{
    (void)state;
    enum { CELLS = 20 };
    const uint32_t n = 4000000000u;
    cleval_counts counts;
    assert_ok(cleval_counts_init(&counts, n, n));
    for (uint32_t i = 0; i < CELLS; i++)
        assert_ok(cleval_counts_add(&counts, 3999999999u - i, 3999999999u - 2 * i, UINT64_MAX - i));
    cJSON *item = cleval_report_counts_json(&counts);
    assert_non_null(item);
    uint32_t rows, cols;
    cleval_count_cell *cells;
    size_t got;
    assert_ok(cleval_report_matrix_cells(item, &rows, &cols, &cells, &got));
    assert_int_equal(rows, n);
    assert_int_equal(cols, n);
    assert_int_equal(got, CELLS);
    for (uint32_t i = 0; i < CELLS; i++) { /* row-major: the last added comes first */
        uint32_t k = CELLS - 1 - i;
        assert_int_equal(cells[i].row, 3999999999u - k);
        assert_int_equal(cells[i].col, 3999999999u - 2 * k);
        assert_true(cells[i].count == UINT64_MAX - k);
    }
    free(cells);
    cJSON_Delete(item);
    cleval_counts_free(&counts);
}

/* --- Large labels under an address-space limit --------------------------------------------- */

/* A 4-row prediction file; scores [4][2] when `scores`. */
static const char *write_rows(const char *name, const int32_t *y, const int32_t *pred, bool scores)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    hsize_t n = 4, dims[2] = {4, 2};
    const float values[8] = {0.9f, 0.1f, 0.2f, 0.8f, 0.6f, 0.4f, 0.3f, 0.7f};
    if (y) h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    if (scores) h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, values, 0, NULL);
    H5Fclose(file);
    return path;
}

static int run_limited(const char *const *args, char **out)
{
    char *err = NULL;
    set_cleval_address_limit(ADDRESS_LIMIT);
    int code = run_cleval(args, out, &err);
    set_cleval_address_limit(0);
    if (code != 0 && code != 1) fprintf(stderr, "%s", err);
    free(err);
    return code;
}

static bool file_has(const char *path, const char *text)
{
    char *content = read_text_file(path);
    assert_non_null(content);
    bool found = strstr(content, text) != NULL;
    free(content);
    return found;
}

/* The saved "confusion" dataset: int64 [n, n], holding exactly `cells`, read in row blocks. */
static void expect_saved_matrix(const char *path, uint32_t n, const known_cell *cells,
                                size_t n_cells)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t dset = H5Dopen2(file, "confusion", H5P_DEFAULT);
    assert_true(dset >= 0);
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    assert_true(H5Tequal(type, H5T_STD_I64LE) > 0);
    hsize_t dims[2];
    assert_int_equal(H5Sget_simple_extent_dims(space, dims, NULL), 2);
    assert_int_equal(dims[0], n);
    assert_int_equal(dims[1], n);
    enum { BLOCK = 64 };
    int64_t *rows = malloc((size_t)BLOCK * n * sizeof *rows);
    assert_non_null(rows);
    size_t next = 0;
    for (uint32_t r0 = 0; r0 < n; r0 += BLOCK) {
        hsize_t start[2] = {r0, 0}, count[2] = {n - r0 < BLOCK ? n - r0 : BLOCK, n};
        hid_t memory = H5Screate_simple(2, count, NULL);
        assert_true(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0);
        assert_true(H5Dread(dset, H5T_NATIVE_INT64, memory, space, H5P_DEFAULT, rows) >= 0);
        H5Sclose(memory);
        for (size_t i = 0; i < count[0] * n; i++) {
            if (!rows[i]) continue;
            assert_true(next < n_cells);
            assert_int_equal(cells[next].row, r0 + i / n);
            assert_int_equal(cells[next].col, i % n);
            assert_int_equal(cells[next].count, (uint64_t)rows[i]);
            next++;
        }
    }
    assert_int_equal(next, n_cells);
    free(rows);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
}

/* Labels 0, 1, 2, 9000 (under the default --max-classes): the confusion matrix is 9001 x 9001,
 * 648 MB dense, with 4 nonzero cells. */
static void test_metrics_with_label_9000(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    const int32_t y[4] = {0, 1, 2, 9000}, pred[4] = {0, 9000, 2, 1};
    char data[4096], json[4096], html[4096], save[4096];
    snprintf(data, sizeof data, "%s", write_rows("bomb9000.h5", y, pred, false));
    snprintf(json, sizeof json, "%s", temp_path("bomb9000.json"));
    snprintf(html, sizeof html, "%s", temp_path("bomb9000.html"));
    snprintf(save, sizeof save, "%s", temp_path("bomb9000_saved.h5"));
    char *out = NULL;
    int code = run_limited((const char *[]){"metrics", "--data", data, "--json", json, "--html",
                                            html, "--save", save, NULL},
                           &out);
    assert_int_equal(code, 0);
    /* The human report lists the confused pairs instead of the matrix. */
    assert_non_null(strstr(out, "Most confused pairs (of 9001 classes"));
    assert_non_null(strstr(out, "1  true 1 predicted as 9000\n"));
    assert_non_null(strstr(out, "1  true 9000 predicted as 1\n"));
    free(out);

    const known_cell cells[] = {{0, 0, 1}, {1, 9000, 1}, {2, 2, 1}, {9000, 1, 1}};
    expect_json_matrix(json, "confusion_matrix", 9001, cells, 4);
    assert_true(file_has(json, "\"n_classes\":\t9001,"));
    assert_true(file_has(json, "\"accuracy\":\t0.5,"));
    assert_true(file_has(html, "the 2 classes of the 2 largest off-diagonal cells of 9001 "
                               "classes"));
    expect_saved_matrix(save, 9001, cells, 4);
    /* Unwritten blocks of the saved matrix take no room: not 648 MB, a few kilobytes. */
    struct stat st;
    assert_int_equal(stat(save, &st), 0);
    assert_true(st.st_size < (1 << 20));
}

/* compare with labels up to 16383: a 16384-class flip matrix (2.1 GB dense). */
static void test_compare_with_label_16383(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    const int32_t y[4] = {0, 1, 2, 16383}, a[4] = {0, 1, 2, 16383}, b[4] = {0, 16383, 2, 1};
    char path_a[4096], path_b[4096], json[4096], html[4096];
    snprintf(path_a, sizeof path_a, "%s", write_rows("flip_a.h5", y, a, false));
    snprintf(path_b, sizeof path_b, "%s", write_rows("flip_b.h5", y, b, false));
    snprintf(json, sizeof json, "%s", temp_path("flip.json"));
    snprintf(html, sizeof html, "%s", temp_path("flip.html"));
    char *out = NULL;
    int code = run_limited((const char *[]){"compare", path_a, path_b, "--max-classes", "20000",
                                            "--json", json, "--html", html, NULL},
                           &out);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "Most frequent flips (class in A -> class in B), of 16384 "
                                "classes\n  1 -> 16383: 1\n  16383 -> 1: 1\n"));
    free(out);
    const known_cell cells[] = {{0, 0, 1}, {1, 16383, 1}, {2, 2, 1}, {16383, 1, 1}};
    expect_json_matrix(json, "flip_matrix", 16384, cells, 4);
    assert_true(file_has(html, "of 16384 classes"));
    remove(json); /* 805 MB of text */
}

/* drift with labels up to 16383: recall per class without a class-by-class matrix. */
static void test_drift_with_label_16383(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    const int32_t y[4] = {0, 1, 2, 16383}, ref[4] = {0, 1, 2, 16383}, cur[4] = {0, 16383, 2, 1};
    char path_ref[4096], path_cur[4096], json[4096];
    snprintf(path_ref, sizeof path_ref, "%s", write_rows("drift_ref.h5", y, ref, true));
    snprintf(path_cur, sizeof path_cur, "%s", write_rows("drift_cur.h5", y, cur, true));
    snprintf(json, sizeof json, "%s", temp_path("drift.json"));
    char *out = NULL;
    int code = run_limited((const char *[]){"drift", path_ref, path_cur, "--max-classes", "20000",
                                            "--json", json, "--quiet", NULL},
                           &out);
    free(out);
    assert_int_equal(code, 0); /* the same class mix: no alert */
    cJSON *report = load_json(json);
    assert_int_equal(cJSON_GetObjectItem(report, "n_classes")->valueint, 16384);
    const cJSON *labels = cJSON_GetObjectItem(report, "labels");
    assert_true(cJSON_GetObjectItem(labels, "accuracy_reference")->valuedouble == 1.0);
    assert_true(cJSON_GetObjectItem(labels, "accuracy_current")->valuedouble == 0.5);
    const cJSON *per_class = cJSON_GetObjectItem(labels, "per_class");
    assert_int_equal(cJSON_GetArraySize(per_class), 16384);
    const cJSON *last = cJSON_GetArrayItem(per_class, 16383);
    assert_int_equal(cJSON_GetObjectItem(last, "support_current")->valueint, 1);
    assert_true(cJSON_GetObjectItem(last, "recall_reference")->valuedouble == 1.0);
    assert_true(cJSON_GetObjectItem(last, "recall_current")->valuedouble == 0.0);
    assert_true(
        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, 5), "recall_current")));
    cJSON_Delete(report);
}

/* --- Dense and sparse give the same bytes -------------------------------------------------- */

/* Removes what differs from run to run: the lines of the run's timing (JSON members in
 * seconds, the text's throughput line, the HTML's timing rows). */
static void drop_timing(char *text)
{
    static const char *const marks[] = {"_s\":", " samples in ", "total time (s)",
                                        "samples per second", "_s</th>"};
    char *line = text;
    while (*line) {
        char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line + 1) : strlen(line);
        bool timing = false;
        for (size_t m = 0; m < sizeof marks / sizeof *marks; m++) {
            char *at = strstr(line, marks[m]);
            timing = timing || (at && at < line + length);
        }
        if (timing)
            memmove(line, line + length, strlen(line + length) + 1);
        else
            line += length;
    }
}

typedef struct run_outputs {
    char *out, *json, *html;
} run_outputs;

/* Runs cleval with `args` plus --json, --html (and --save when `save`), dense or forced sparse. */
static run_outputs run_both_ways(const char *const *args, const char *tag, bool sparse,
                                 const char *save)
{
    char json[4096], html[4096];
    snprintf(json, sizeof json, "%s", temp_path(sparse ? "sparse.json" : "dense.json"));
    snprintf(html, sizeof html, "%s", temp_path(sparse ? "sparse.html" : "dense.html"));
    const char *full[32];
    size_t n = 0;
    while (args[n]) {
        full[n] = args[n];
        n++;
    }
    full[n++] = "--json", full[n++] = json, full[n++] = "--html", full[n++] = html;
    if (save) full[n++] = "--save", full[n++] = save;
    full[n] = NULL;
    if (sparse) setenv("CLEVAL_TEST_DENSE_CELLS", "1", 1);
    run_outputs o = {0};
    char *err = NULL;
    int code = run_cleval(full, &o.out, &err);
    unsetenv("CLEVAL_TEST_DENSE_CELLS");
    if (code != 0) fail_msg("%s (%s): exit %d: %s", tag, sparse ? "sparse" : "dense", code, err);
    free(err);
    o.json = read_text_file(json);
    o.html = read_text_file(html);
    assert_non_null(o.json);
    assert_non_null(o.html);
    drop_timing(o.out);
    drop_timing(o.json);
    drop_timing(o.html);
    return o;
}

/* The reports of both backings are the same bytes; returns the dense JSON text (free it). */
static char *expect_same_reports(const char *const *args, const char *tag, bool save,
                                 uint32_t n_classes)
{
    char dense_save[4096], sparse_save[4096];
    snprintf(dense_save, sizeof dense_save, "%s", temp_path("dense_saved.h5"));
    snprintf(sparse_save, sizeof sparse_save, "%s", temp_path("sparse_saved.h5"));
    run_outputs dense = run_both_ways(args, tag, false, save ? dense_save : NULL);
    run_outputs sparse = run_both_ways(args, tag, true, save ? sparse_save : NULL);
    assert_string_equal(dense.out, sparse.out);
    assert_string_equal(dense.json, sparse.json);
    assert_string_equal(dense.html, sparse.html);
    if (save) {
        size_t cells = (size_t)n_classes * n_classes;
        int64_t *a = read_confusion(dense_save, cells), *b = read_confusion(sparse_save, cells);
        assert_memory_equal(a, b, cells * sizeof *a);
        free(a);
        free(b);
    }
    free(dense.out), free(dense.html);
    free(sparse.out), free(sparse.json), free(sparse.html);
    return dense.json;
}

/* The JSON's confusion matrix against one counted here from the file's pairs. */
static void expect_counted_matrix(const char *json_text, const int32_t *y, const int32_t *pred,
                                  uint32_t n, uint32_t c)
{
    /* The array alone: the text lost its timing lines. */
    const char *at = strstr(json_text, "\"confusion_matrix\":");
    assert_non_null(at);
    cJSON *report = cJSON_ParseWithOpts(at + strlen("\"confusion_matrix\":"), NULL, false);
    assert_non_null(report);
    uint64_t *reference = calloc((size_t)c * c, sizeof *reference);
    assert_non_null(reference);
    for (uint32_t i = 0; i < n; i++)
        reference[(size_t)y[i] * c + (size_t)pred[i]]++;
    const cJSON *matrix = report;
    assert_int_equal(cJSON_GetArraySize(matrix), c);
    for (uint32_t r = 0; r < c; r++) {
        const cJSON *row = cJSON_GetArrayItem(matrix, (int)r);
        assert_int_equal(cJSON_GetArraySize(row), c);
        for (uint32_t k = 0; k < c; k++)
            assert_true(cJSON_GetArrayItem(row, (int)k)->valuedouble ==
                        (double)reference[(size_t)r * c + k]);
    }
    free(reference);
    cJSON_Delete(report);
}

/* metrics on random files of 1, 7 and 31 classes (a full matrix, then the most-confused block
 * of the text and HTML reports), both backings. */
static void test_metrics_same_both_ways(void **state)
{
    (void)state;
    static const uint32_t class_counts[] = {1, 7, 31};
    enum { N = 257 };
    uint64_t seed = 99;
    for (size_t t = 0; t < sizeof class_counts / sizeof *class_counts; t++) {
        uint32_t c = class_counts[t];
        int32_t y[N], pred[N];
        for (int i = 0; i < N; i++) {
            y[i] = (int32_t)(next_random(&seed) % c);
            pred[i] = next_random(&seed) % 3 ? y[i] : (int32_t)(next_random(&seed) % c);
        }
        y[N - 1] = (int32_t)c - 1; /* the last class occurs */
        char data[4096], name[64];
        snprintf(name, sizeof name, "random_%u.h5", c);
        snprintf(data, sizeof data, "%s", write_pairs(name, y, pred, N));
        /* Batches of 50: several batches, counted on the host one by one. */
        char *json = expect_same_reports(
            (const char *[]){"metrics", "--data", data, "--batch", "50", NULL}, name, true, c);
        expect_counted_matrix(json, y, pred, N, c);
        free(json);
    }
}

/* Writes a random (y, pred) file of n rows and c classes, the last class present. */
static const char *write_random(const char *name, uint32_t n, uint32_t c, uint64_t seed)
{
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    assert_non_null(y);
    assert_non_null(pred);
    for (uint32_t i = 0; i < n; i++) {
        y[i] = (int32_t)(next_random(&seed) % c);
        pred[i] = next_random(&seed) % 3 ? y[i] : (int32_t)(next_random(&seed) % c);
    }
    y[n - 1] = (int32_t)c - 1;
    const char *path = write_pairs(name, y, pred, n);
    free(y);
    free(pred);
    return path;
}

/* A part file's checksum attribute and confusion table. */
static void read_part(const char *path, char *checksum, size_t size, int64_t **confusion,
                      size_t cells)
{
    cleval_dataset *ds;
    assert_ok(cleval_dataset_open(path, &ds));
    assert_ok(cleval_dataset_attribute(ds, "checksum", checksum, size));
    cleval_dataset_close(ds);
    *confusion = read_confusion(path, cells);
}

/* Part files (--shard) written from sparse counts: the same checksummed table, block by block,
 * as from dense ones; `cleval merge` verifies and adds them. */
static void test_part_files_same_both_ways(void **state)
{
    (void)state;
    enum { C = 31 };
    char data[4096], parts[2][2][4096];
    snprintf(data, sizeof data, "%s", write_random("shards.h5", 301, C, 17));
    for (int sparse = 0; sparse < 2; sparse++)
        for (int s = 0; s < 2; s++) {
            char name[64], shard[8];
            snprintf(name, sizeof name, "part_%s_%d.h5", sparse ? "sparse" : "dense", s);
            snprintf(parts[sparse][s], sizeof parts[sparse][s], "%s", temp_path(name));
            snprintf(shard, sizeof shard, "%d/2", s);
            if (sparse) setenv("CLEVAL_TEST_DENSE_CELLS", "1", 1);
            int code = run_cleval((const char *[]){"metrics", "--data", data, "--shard", shard,
                                                   "--save", parts[sparse][s], "--quiet", NULL},
                                  NULL, NULL);
            unsetenv("CLEVAL_TEST_DENSE_CELLS");
            assert_int_equal(code, 0);
        }
    for (int s = 0; s < 2; s++) {
        char sum_dense[64], sum_sparse[64];
        int64_t *dense, *sparse;
        read_part(parts[0][s], sum_dense, sizeof sum_dense, &dense, C * C);
        read_part(parts[1][s], sum_sparse, sizeof sum_sparse, &sparse, C * C);
        assert_string_equal(sum_dense, sum_sparse);
        assert_memory_equal(dense, sparse, C * C * sizeof *dense);
        free(dense);
        free(sparse);
    }
    char *reports[2];
    for (int sparse = 0; sparse < 2; sparse++) {
        char merged[4096];
        snprintf(merged, sizeof merged, "%s", temp_path(sparse ? "merged_s.h5" : "merged_d.h5"));
        if (sparse) setenv("CLEVAL_TEST_DENSE_CELLS", "1", 1);
        cJSON *json = run_cleval_json((const char *[]){"merge", parts[sparse][0], parts[sparse][1],
                                                       "--save", merged, "--json", "-", NULL},
                                      0);
        unsetenv("CLEVAL_TEST_DENSE_CELLS");
        cJSON_DeleteItemFromObject(json, "timing");
        reports[sparse] = cJSON_PrintUnformatted(json);
        cJSON_Delete(json);
    }
    assert_string_equal(reports[0], reports[1]);
    free(reports[0]);
    free(reports[1]);
}

/* knn (the class count known before the run, predictions made on the device) and eval. */
static void test_knn_and_eval_same_both_ways(void **state)
{
    (void)state;
    char train[4096], test[4096];
    snprintf(train, sizeof train, "%s", fixture_path("knn/digits_train.h5"));
    snprintf(test, sizeof test, "%s", fixture_path("knn/digits_test.h5"));
    free(expect_same_reports(
        (const char *[]){"knn", "--train", train, "--data", test, "-k", "3", NULL}, "knn", false,
        0));

    /* The Fashion-MNIST images of the model's fixture, with labels made up here: a model
     * right or wrong, the counts must be the same either way. */
    float *x = malloc(256 * 28 * 28 * sizeof *x);
    assert_non_null(x);
    hid_t f = H5Fopen(fixture_path("onnx/fmnist_cnn_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "X", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d), H5Fclose(f);
    int32_t y[256];
    uint64_t seed = 5;
    for (int i = 0; i < 256; i++)
        y[i] = (int32_t)(next_random(&seed) % 10);
    char data[4096], model[4096];
    snprintf(data, sizeof data, "%s", temp_path("fmnist_labelled.h5"));
    hid_t file = h5_create(data);
    hsize_t dims[4] = {256, 1, 28, 28}, n = 256;
    h5_write(file, "X", H5T_NATIVE_FLOAT, 4, dims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(file);
    free(x);
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    free(expect_same_reports(
        (const char *[]){"eval", "--model", model, "--data", data, "--batch", "60", NULL}, "eval",
        false, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backings_agree),
        cmocka_unit_test(test_placeholder_round_trips),
        cmocka_unit_test(test_metrics_with_label_9000),
        cmocka_unit_test(test_compare_with_label_16383),
        cmocka_unit_test(test_drift_with_label_16383),
        cmocka_unit_test(test_metrics_same_both_ways),
        cmocka_unit_test(test_knn_and_eval_same_both_ways),
        cmocka_unit_test(test_part_files_same_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
