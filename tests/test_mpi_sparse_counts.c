/* Issue 16, class 6, under mpirun: the ranks' confusion matrices were summed through a dense
 * copy of C^2 cells on every rank (a 4-row file with a label of 9000: 648 MB each), and knn
 * --shard-train counted in a dense device histogram on rank 0 and dense zeros elsewhere. Above
 * the dense limit each rank now sends rank 0 its nonzero (row, column, count) cells, and
 * --shard-train counts on the host. These checks: 2 ranks on such files (metrics, knn
 * --shard-train) within an address-space limit below one dense copy, every cell of the report
 * checked; and on random files of odd sizes, 2 and 3 ranks with the counts dense and forced
 * sparse (CLEVAL_TEST_DENSE_CELLS=1) give the single process's report, whose matrix (metrics)
 * is the one counted here from the pairs. Skipped when mpirun is not usable. */
#include "testutil.h"
#include "json_matrix_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool have_mpirun(void)
{
    return system("command -v mpirun >/dev/null 2>&1") == 0;
}

/* Runs `cleval ARGS --json JSON --quiet` on `ranks` ranks (0: directly), each process under
 * `limit_kib` of address space (0: none) and with `env` (may be "") set; returns the exit
 * status, printing the ranks' stderr when it is not 0. Leak checking is off for the ranks, as
 * in cli_mpi: Open MPI's components keep allocations past MPI_Finalize. */
static int run_ranks(int ranks, const char *args, const char *json, unsigned long limit_kib,
                     const char *env)
{
    char err[4200], cmd[16384], limit[64] = "";
    snprintf(err, sizeof err, "%s.err", json);
    if (limit_kib) snprintf(limit, sizeof limit, "ulimit -v %lu; ", limit_kib);
    char launcher[256] = "";
    if (ranks)
        snprintf(launcher, sizeof launcher, "mpirun --oversubscribe --allow-run-as-root -np %d ",
                 ranks);
    snprintf(cmd, sizeof cmd,
             "%senv ASAN_OPTIONS=detect_leaks=0 %s sh -c '%sexec %s %s --json %s --quiet' "
             ">/dev/null 2>%s",
             launcher, env, limit, CLEVAL_BINARY, args, json, err);
    remove(json);
    int code = system(cmd);
    if (code != 0) {
        char *text = read_text_file(err);
        fprintf(stderr, "'%s' failed (%d): %s\n", cmd, code, text ? text : "");
        free(text);
    }
    return code;
}

static int run_metrics(int ranks, const char *data, const char *json, unsigned long limit_kib,
                       const char *env)
{
    char args[4200];
    snprintf(args, sizeof args, "metrics --data %s", data);
    return run_ranks(ranks, args, json, limit_kib, env);
}

/* Labels 0, 1, 2, 9000 on 2 ranks of 2 rows each, each rank under 512 MiB (its OpenCL runtime
 * and threads take about 400 MiB; a dense 9001 x 9001 copy alone is 648 MB). */
static void test_label_9000_on_two_ranks(void **state)
{
    (void)state;
    if (!have_mpirun() || !ADDRESS_LIMITS_WORK) skip();
    const int32_t y[4] = {0, 1, 2, 9000}, pred[4] = {0, 9000, 2, 1};
    char data[4096], json[4096];
    snprintf(data, sizeof data, "%s", write_pairs("bomb.h5", y, pred, 4));
    snprintf(json, sizeof json, "%s", temp_path("bomb.json"));
    assert_int_equal(run_metrics(2, data, json, 512ul << 10, ""), 0);
    const known_cell cells[] = {{0, 0, 1}, {1, 9000, 1}, {2, 2, 1}, {9000, 1, 1}};
    expect_json_matrix(json, "confusion_matrix", 9001, cells, 4);
}

/* knn --shard-train: every rank searches half of a training set whose labels are 0, 1, 2 and
 * 9000, and rank 0 votes and counts; the nearest neighbours of the four 1-D test points are
 * plain (train points 0, 10, 20, 30). */
static void test_shard_train_label_9000(void **state)
{
    (void)state;
    if (!have_mpirun() || !ADDRESS_LIMITS_WORK) skip();
    const float train_x[4] = {0, 10, 20, 30}, test_x[4] = {0.1f, 10.2f, 29.9f, 20.1f};
    const int32_t train_y[4] = {0, 1, 2, 9000}, test_y[4] = {0, 9000, 9000, 2};
    char train[4096], test[4096], json[4096], args[8400];
    hsize_t dims[2] = {4, 1}, n = 4;
    snprintf(train, sizeof train, "%s", temp_path("knn_train.h5"));
    hid_t f = h5_create(train);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, train_x, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, train_y, 0, NULL);
    H5Fclose(f);
    snprintf(test, sizeof test, "%s", temp_path("knn_test.h5"));
    f = h5_create(test);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, test_x, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, test_y, 0, NULL);
    H5Fclose(f);
    snprintf(json, sizeof json, "%s", temp_path("knn.json"));
    snprintf(args, sizeof args, "knn --train %s --data %s -k 1 --shard-train", train, test);
    assert_int_equal(run_ranks(2, args, json, 512ul << 10, ""), 0);
    const known_cell cells[] = {{0, 0, 1}, {2, 2, 1}, {9000, 1, 1}, {9000, 9000, 1}};
    expect_json_matrix(json, "confusion_matrix", 9001, cells, 4);
}

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* The report without what differs between a single process and ranks (as cli_mpi drops),
 * after checking that `ranks` ran it (0: a single process, which reports none). */
static cJSON *comparable(const char *json, int ranks)
{
    cJSON *report = load_json(json);
    const cJSON *r = cJSON_GetObjectItem(report, "ranks");
    if (ranks && (!r || r->valueint != ranks)) fail_msg("\"ranks\" is not %d", ranks);
    const char *volatile_keys[] = {"timing", "timing_breakdown", "ranks", "device"};
    for (int i = 0; i < 4; i++)
        cJSON_DeleteItemFromObject(report, volatile_keys[i]);
    drop_score_metrics(report);
    return report;
}

static void test_ranks_agree_both_ways(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    static const struct {
        uint32_t n, c;
    } cases[] = {{7, 1}, {101, 7}, {211, 31}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t n = cases[i].n, c = cases[i].c;
        int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
        assert_non_null(y);
        assert_non_null(pred);
        uint64_t seed = 7 + i;
        for (uint32_t k = 0; k < n; k++) {
            y[k] = (int32_t)(next_random(&seed) % c);
            pred[k] = next_random(&seed) % 3 ? y[k] : (int32_t)(next_random(&seed) % c);
        }
        y[n - 1] = (int32_t)c - 1;
        char data[4096], json[4096];
        snprintf(data, sizeof data, "%s", write_pairs("random.h5", y, pred, n));
        snprintf(json, sizeof json, "%s", temp_path("single.json"));
        assert_int_equal(run_metrics(0, data, json, 0, ""), 0);
        expect_report_matrix(json, y, pred, n, c);
        cJSON *single = comparable(json, 0);
        for (int ranks = 2; ranks <= 3; ranks++)
            for (int sparse = 0; sparse < 2; sparse++) {
                snprintf(json, sizeof json, "%s", temp_path("ranks.json"));
                assert_int_equal(
                    run_metrics(ranks, data, json, 0, sparse ? "CLEVAL_TEST_DENSE_CELLS=1" : ""),
                    0);
                cJSON *parallel = comparable(json, ranks);
                if (!cJSON_Compare(single, parallel, 1))
                    fail_msg("%u rows, %u classes, %d ranks, %s: the reports differ", n, c, ranks,
                             sparse ? "sparse" : "dense");
                cJSON_Delete(parallel);
            }
        cJSON_Delete(single);
        free(y);
        free(pred);
    }
}

/* knn --shard-train on random sets (37 training rows, 23 test rows, 7 classes), with rank 0's
 * counts on the device and forced onto the host, against the single process's report. */
static void test_shard_train_both_ways(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    enum { N_TRAIN = 37, N_TEST = 23, DIM = 3, C = 7 };
    float x[N_TRAIN * DIM];
    int32_t y[N_TRAIN];
    uint64_t seed = 41;
    for (int i = 0; i < N_TRAIN * DIM; i++)
        x[i] = (float)(next_random(&seed) % 9);
    for (int i = 0; i < N_TRAIN; i++)
        y[i] = (int32_t)(next_random(&seed) % C);
    char train[4096], test[4096], json[4096], args[8400];
    hsize_t dims[2] = {N_TRAIN, DIM}, n = N_TRAIN;
    snprintf(train, sizeof train, "%s", temp_path("random_train.h5"));
    hid_t f = h5_create(train);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(f);
    dims[0] = n = N_TEST; /* the test rows: training rows 5.. with other labels */
    snprintf(test, sizeof test, "%s", temp_path("random_test.h5"));
    f = h5_create(test);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x + 5 * DIM, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y + 9, 0, NULL);
    H5Fclose(f);
    snprintf(json, sizeof json, "%s", temp_path("knn_single.json"));
    snprintf(args, sizeof args, "knn --train %s --data %s -k 3", train, test);
    assert_int_equal(run_ranks(0, args, json, 0, ""), 0);
    cJSON *single = comparable(json, 0);
    snprintf(args, sizeof args, "knn --train %s --data %s -k 3 --shard-train", train, test);
    for (int sparse = 0; sparse < 2; sparse++) {
        snprintf(json, sizeof json, "%s", temp_path("knn_ranks.json"));
        assert_int_equal(run_ranks(2, args, json, 0, sparse ? "CLEVAL_TEST_DENSE_CELLS=1" : ""), 0);
        cJSON *parallel = comparable(json, 2);
        if (!cJSON_Compare(single, parallel, 1))
            fail_msg("knn --shard-train, %s counts: the reports differ",
                     sparse ? "host" : "device");
        cJSON_Delete(parallel);
    }
    cJSON_Delete(single);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_9000_on_two_ranks),
        cmocka_unit_test(test_ranks_agree_both_ways),
        cmocka_unit_test(test_shard_train_label_9000),
        cmocka_unit_test(test_shard_train_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
