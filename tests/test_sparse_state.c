/* Issue 16, class 6, reading state back: part files and checkpoints store their counts as a
 * dense int64 [C, C] table, and reading one (cleval merge, --resume) held all C^2 cells (648 MB
 * for a 4-row slice with a label of 9000). They are now read a bounded block of rows at a time
 * into counts that are sparse above the dense limit. These checks: merging the two parts of
 * such a file, and resuming its checkpoint, succeed under an address-space limit far below
 * C^2 x 8 bytes and report exactly the known nonzero cells; and on small random files the dense
 * and the sparse reader (forced with CLEVAL_TEST_DENSE_CELLS) give byte-identical merged and
 * resumed reports, whose confusion matrix is the one counted here from the file's pairs. */
#include "testutil.h"
#include "json_matrix_check.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleval/dataset.h"

/* merge opens no OpenCL runtime: 192 MiB, under a third of the 648 MB a dense 9001 x 9001
 * table takes. A resumed run loads the OpenCL runtime and its worker threads, which take
 * about 400 MiB of address space before any count: 512 MiB, as the other large-label tests. */
static const uint64_t MERGE_LIMIT = 192ull << 20, RESUME_LIMIT = 512ull << 20;

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* Sets pred[row] in place, keeping the file's size and modification time: to cleval it is the
 * same input (its job fingerprint holds both), so a checkpoint of it can be resumed. */
static void repair_pred(const char *path, uint32_t row, int32_t value)
{
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "pred", H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t start = row, count = 1;
    assert_true(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0);
    hid_t memory = H5Screate_simple(1, &count, NULL);
    assert_true(H5Dwrite(dset, H5T_NATIVE_INT32, memory, space, H5P_DEFAULT, &value) >= 0);
    H5Sclose(memory), H5Sclose(space), H5Dclose(dset), H5Fclose(file);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* Runs cleval under `limit` bytes of address space (0: none) and, with `sparse`, with every
 * count table sparse; returns its exit code, printing its stderr when it is not `expected`. */
static int run_with(const char *const *args, uint64_t limit, bool sparse, int expected)
{
    char *out = NULL, *err = NULL;
    if (sparse) setenv("CLEVAL_TEST_DENSE_CELLS", "1", 1);
    set_cleval_address_limit(limit);
    int code = run_cleval(args, &out, &err);
    set_cleval_address_limit(0);
    unsetenv("CLEVAL_TEST_DENSE_CELLS");
    if (code != expected) fprintf(stderr, "%s", err ? err : "");
    free(out);
    free(err);
    return code;
}

/* --- A label of 9000 under an address-space limit ------------------------------------------ */

/* `metrics --shard s/n --save` of data for every s, under the address-space limit (0: none):
 * the part files NAME_part0.h5 ... into parts. */
static void write_parts(const char *data, const char *name, int n, char parts[][4096],
                        uint64_t limit)
{
    for (int s = 0; s < n; s++) {
        char file[64], shard[16];
        snprintf(file, sizeof file, "%s_part%d.h5", name, s);
        snprintf(parts[s], 4096, "%s", temp_path(file));
        snprintf(shard, sizeof shard, "%d/%d", s, n);
        assert_int_equal(run_with((const char *[]){"metrics", "--data", data, "--shard", shard,
                                                   "--save", parts[s], "--quiet", NULL},
                                  limit, false, 0),
                         0);
    }
}

/* Labels 0, 1, 2, 9000 in two slices of two rows: each part file holds a 9001 x 9001 table. */
static void test_merge_with_label_9000(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    const int32_t y[4] = {0, 1, 2, 9000}, pred[4] = {0, 9000, 2, 1};
    char data[4096], parts[2][4096], json[4096], merged[4096];
    snprintf(data, sizeof data, "%s", write_pairs("bomb.h5", y, pred, 4));
    write_parts(data, "bomb", 2, parts, RESUME_LIMIT);
    snprintf(json, sizeof json, "%s", temp_path("bomb_merged.json"));
    snprintf(merged, sizeof merged, "%s", temp_path("bomb_merged.h5"));
    assert_int_equal(run_with((const char *[]){"merge", parts[0], parts[1], "--save", merged,
                                               "--json", json, "--quiet", NULL},
                              MERGE_LIMIT, false, 0),
                     0);
    const known_cell cells[] = {{0, 0, 1}, {1, 9000, 1}, {2, 2, 1}, {9000, 1, 1}};
    expect_json_matrix(json, "confusion_matrix", 9001, cells, 4);
}

/* A run stopped at row 4 (a bad label) after its checkpoint at row 4, which holds the
 * 9001-class counts of rows 0-3; the label repaired, --resume reads the checkpoint back. */
static void test_resume_with_label_9000(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    const int32_t y[6] = {0, 1, 2, 9000, 1, 0}, pred[6] = {0, 9000, 2, 1, -1, 0};
    char data[4096], checkpoint[4096], json[4096];
    snprintf(data, sizeof data, "%s", write_pairs("bomb_ck.h5", y, pred, 6));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("bomb_ck_state.h5"));
    snprintf(json, sizeof json, "%s", temp_path("bomb_ck.json"));
    const char *args[] = {"metrics", "--data",  data,           "--batch",  "2",
                          "--json",  json,      "--checkpoint", checkpoint, "--checkpoint-every",
                          "2",       "--quiet", NULL,           NULL};
    assert_int_equal(run_with(args, RESUME_LIMIT, false, 2), 2);
    struct stat st;
    assert_int_equal(stat(checkpoint, &st), 0);
    /* The table really is 9001 x 9001 in the file: 648 MB of int64. */
    assert_true((uint64_t)st.st_size >= 9001ull * 9001 * 8);
    repair_pred(data, 4, 1);
    args[12] = "--resume";
    assert_int_equal(run_with(args, RESUME_LIMIT, false, 0), 0);
    const known_cell cells[] = {{0, 0, 2}, {1, 1, 1}, {1, 9000, 1}, {2, 2, 1}, {9000, 1, 1}};
    expect_json_matrix(json, "confusion_matrix", 9001, cells, 5);
}

/* --- Both readers on small random files ---------------------------------------------------- */

typedef struct random_pairs {
    uint32_t n, c;
    int32_t *y, *pred;
} random_pairs;

/* n rows of c classes, mostly right, the last class present. */
static random_pairs make_random(uint32_t n, uint32_t c, uint64_t seed)
{
    random_pairs p = {n, c, malloc(n * sizeof(int32_t)), malloc(n * sizeof(int32_t))};
    assert_non_null(p.y);
    assert_non_null(p.pred);
    for (uint32_t i = 0; i < n; i++) {
        p.y[i] = (int32_t)(next_random(&seed) % c);
        p.pred[i] = next_random(&seed) % 3 ? p.y[i] : (int32_t)(next_random(&seed) % c);
    }
    p.y[n - 1] = (int32_t)c - 1;
    return p;
}

/* The report's text without its times (runs differ only there). */
static char *report_without_timing(const char *path)
{
    cJSON *report = load_json(path);
    cJSON_DeleteItemFromObject(report, "timing");
    cJSON_DeleteItemFromObject(report, "timing_breakdown");
    char *text = cJSON_Print(report);
    cJSON_Delete(report);
    return text;
}

/* Parts written once (dense), merged by each reader: the same report and saved matrix. */
static void merge_both_ways(const random_pairs *p)
{
    char data[4096], parts[3][4096];
    snprintf(data, sizeof data, "%s", write_pairs("random.h5", p->y, p->pred, p->n));
    write_parts(data, "random", 3, parts, 0);
    char *reports[2];
    int64_t *saved[2];
    size_t cells = (size_t)p->c * p->c;
    for (int sparse = 0; sparse < 2; sparse++) {
        char json[4096], merged[4096];
        snprintf(json, sizeof json, "%s", temp_path(sparse ? "merged_s.json" : "merged_d.json"));
        snprintf(merged, sizeof merged, "%s", temp_path(sparse ? "merged_s.h5" : "merged_d.h5"));
        assert_int_equal(run_with((const char *[]){"merge", parts[2], parts[0], parts[1], "--save",
                                                   merged, "--json", json, "--quiet", NULL},
                                  0, sparse, 0),
                         0);
        expect_report_matrix(json, p->y, p->pred, p->n, p->c);
        reports[sparse] = report_without_timing(json);
        saved[sparse] = read_confusion(merged, cells);
    }
    assert_string_equal(reports[0], reports[1]);
    assert_memory_equal(saved[0], saved[1], cells * sizeof *saved[0]);
    for (int i = 0; i < 2; i++)
        free(reports[i]), free(saved[i]);
}

/* A run stopped at a bad row after a checkpoint, resumed by each reader (the same stopped
 * run made again for each: a finished run removes its checkpoint): the same report, the
 * pairs' matrix. */
static void resume_both_ways(random_pairs *p, uint32_t bad_row)
{
    char checkpoint[4096];
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("random_ck_state.h5"));
    char *reports[2];
    for (int sparse = 0; sparse < 2; sparse++) {
        int32_t kept = p->pred[bad_row];
        p->pred[bad_row] = -1;
        char data[4096], json[4096];
        snprintf(data, sizeof data, "%s", write_pairs("random_ck.h5", p->y, p->pred, p->n));
        p->pred[bad_row] = kept;
        snprintf(json, sizeof json, "%s", temp_path(sparse ? "resumed_s.json" : "resumed_d.json"));
        remove(checkpoint);
        const char *args[] = {
            "metrics", "--data",  data,           "--batch",  "4",
            "--json",  json,      "--checkpoint", checkpoint, "--checkpoint-every",
            "4",       "--quiet", NULL,           NULL};
        assert_int_equal(run_with(args, 0, false, 2), 2);
        repair_pred(data, bad_row, kept);
        args[12] = "--resume";
        assert_int_equal(run_with(args, 0, sparse, 0), 0);
        expect_report_matrix(json, p->y, p->pred, p->n, p->c);
        reports[sparse] = report_without_timing(json);
    }
    assert_string_equal(reports[0], reports[1]);
    free(reports[0]);
    free(reports[1]);
}

static void test_readers_agree(void **state)
{
    (void)state;
    /* One class, primes, a power of two, and 727 classes: 528,529 cells, just over one
     * block of the reader (2^19), so the table is read in two blocks. */
    static const struct {
        uint32_t n, c, bad_row;
    } cases[] = {{7, 1, 5}, {61, 7, 33}, {301, 31, 150}, {97, 64, 90}, {2003, 727, 1500}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        random_pairs p = make_random(cases[i].n, cases[i].c, 11 + i);
        merge_both_ways(&p);
        resume_both_ways(&p, cases[i].bad_row);
        free(p.y);
        free(p.pred);
    }
}

/* --- The block reader itself -------------------------------------------------------------- */

typedef struct block_check {
    const int64_t *matrix; /* what the file holds, [rows][cols] */
    uint64_t next;         /* the row-major index the next block must start at */
    uint32_t blocks;
} block_check;

static cleval_status check_block(void *user, const cleval_count_block *b)
{
    block_check *k = user;
    uint64_t first = (uint64_t)b->row0 * b->cols + b->col0;
    assert_int_equal(first, k->next);
    /* Whole rows, or a piece of one row; at most 4 MiB. */
    assert_true(b->n_cols == b->cols || b->n_rows == 1);
    assert_true((uint64_t)b->n_rows * b->n_cols <= (1u << 19));
    for (uint32_t r = 0; r < b->n_rows; r++)
        for (uint32_t c = 0; c < b->n_cols; c++)
            assert_int_equal(b->cells[(size_t)r * b->n_cols + c],
                             (uint64_t)k->matrix[(uint64_t)(b->row0 + r) * b->cols + b->col0 + c]);
    k->next = first + (uint64_t)(b->n_rows - 1) * b->cols + b->n_cols;
    k->blocks++;
    return CLEVAL_OK;
}

/* Shapes around the block size: a single cell, a row longer than a block (read in pieces),
 * rows that fill a block exactly, and one row more than a block holds. */
static void test_blocks_in_order(void **state)
{
    (void)state;
    static const struct {
        uint32_t rows, cols, blocks;
    } shapes[] = {{1, 1, 1},      {1, (1u << 19) + 3, 2}, {2, (1u << 19) + 1, 4},
                  {512, 1024, 1}, {513, 1024, 2},         {727, 727, 2}};
    uint64_t seed = 3;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uint64_t n = (uint64_t)shapes[i].rows * shapes[i].cols;
        int64_t *matrix = malloc(n * sizeof *matrix);
        assert_non_null(matrix);
        for (uint64_t j = 0; j < n; j++)
            matrix[j] = next_random(&seed) % 5 ? 0 : (int64_t)(next_random(&seed) % 1000) + 1;
        const char *path = temp_path("blocks.h5");
        hid_t file = h5_create(path);
        hsize_t dims[2] = {shapes[i].rows, shapes[i].cols};
        h5_write(file, "counts", H5T_NATIVE_INT64, 2, dims, matrix, 0, NULL);
        H5Fclose(file);
        cleval_dataset *ds;
        assert_ok(cleval_dataset_open(path, &ds));
        block_check k = {.matrix = matrix};
        assert_ok(cleval_dataset_read_count_blocks(ds, "counts", check_block, &k));
        assert_int_equal(k.next, n);
        assert_int_equal(k.blocks, shapes[i].blocks);
        cleval_dataset_close(ds);
        free(matrix);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_with_label_9000),
        cmocka_unit_test(test_resume_with_label_9000),
        cmocka_unit_test(test_readers_agree),
        cmocka_unit_test(test_blocks_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
