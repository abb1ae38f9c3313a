/* Runs under mpirun on this machine (2 and 3 ranks, test sets whose length the rank count does
 * not divide): eval, knn (also with --shard-train) and metrics give the single process's JSON
 * (apart from timing and "ranks") and its prediction file byte for byte; a rank stopped by
 * SIGTERM ends every rank and resumes. */
#include "testutil.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleval/dataset.h"

static bool have_mpirun(void)
{
    return system("command -v mpirun >/dev/null 2>&1") == 0;
}

/* Runs `cleval ARGS` through `mpirun -np RANKS` (or directly when ranks is 0) and returns its
 * JSON report (written to a file: under mpirun only rank 0 writes it). */
static cJSON *run(int ranks, const char *args, const char *json_name)
{
    char json[4096], cmd[16384];
    snprintf(json, sizeof json, "%s", temp_path(json_name));
    remove(json);
    /* Open MPI's dlopen'ed components keep allocations past MPI_Finalize and are unloaded by
     * then, so no suppression can name their frames: leak checking is off for the ranks (the
     * same engine code is leak-checked by every other test, which runs without MPI). */
    if (ranks)
        snprintf(cmd, sizeof cmd,
                 "mpirun --oversubscribe --allow-run-as-root -np %d env ASAN_OPTIONS=detect_leaks=0 "
                 "%s %s --json %s --quiet >/dev/null 2>%s.err",
                 ranks, CLEVAL_BINARY, args, json, json);
    else
        snprintf(cmd, sizeof cmd, "%s %s --json %s --quiet >/dev/null 2>%s.err", CLEVAL_BINARY,
                 args, json, json);
    int code = system(cmd);
    if (code != 0) {
        char err[4200];
        snprintf(err, sizeof err, "%s.err", json);
        char *text = read_text_file(err);
        fail_msg("'%s' failed (%d): %s", cmd, code, text ? text : "");
    }
    return load_json(json);
}

static void expect_same(cJSON *single, cJSON *parallel, int ranks, const char *what)
{
    const cJSON *r = cJSON_GetObjectItem(parallel, "ranks");
    if (!r || r->valueint != ranks) fail_msg("%s: \"ranks\" is not %d", what, ranks);
    const char *volatile_keys[] = {"timing", "timing_breakdown", "ranks", "device"};
    for (int i = 0; i < 4; i++) {
        cJSON_DeleteItemFromObject(single, volatile_keys[i]);
        cJSON_DeleteItemFromObject(parallel, volatile_keys[i]);
    }
    /* eval: the device memory is rank 0's, whose slice may need smaller batches */
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(single, "model"), "device_memory");
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(parallel, "model"), "device_memory");
    /* Ranks run slices like --shard, which carry no score sums: the score metrics are the
     * single process's alone. */
    if (drop_score_metrics(parallel)) fail_msg("%s: a rank reported score metrics", what);
    drop_score_metrics(single);
    if (!cJSON_Compare(single, parallel, 1)) fail_msg("%s: the reports differ", what);
    cJSON_Delete(single);
    cJSON_Delete(parallel);
}

static void expect_same_file(const char *a, const char *b)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    if (system(cmd) != 0) fail_msg("%s and %s differ", a, b);
}

/* A KNN problem of 257 training and 101 test rows (primes: no rank count divides them). */
static void write_knn_sets(const char *train, const char *test)
{
    const hsize_t n_train = 257, n_test = 101, d = 6;
    float *x = malloc(n_train * d * sizeof *x);
    int32_t *y = malloc(n_train * sizeof *y);
    uint64_t s = 99;
    for (hsize_t i = 0; i < n_train * d; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) % 7);
    }
    for (hsize_t i = 0; i < n_train; i++)
        y[i] = (int32_t)(i % 4);
    hsize_t dims[2] = {n_train, d}, n[1] = {n_train};
    hid_t f = h5_create(train);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, n, y, 0, NULL);
    H5Fclose(f);
    dims[0] = n[0] = n_test;
    f = h5_create(test);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 2, dims, x + 3 * d, 0, NULL); /* rows 3.. of train */
    h5_write(f, "y", H5T_NATIVE_INT32, 1, n, y + 1, 0, NULL);
    H5Fclose(f);
    free(x);
    free(y);
}

static void test_knn_under_mpi(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    char train[4096], test[4096], one[4096], many[4096], args[16384];
    snprintf(train, sizeof train, "%s", temp_path("mpi_train.h5"));
    snprintf(test, sizeof test, "%s", temp_path("mpi_test.h5"));
    snprintf(one, sizeof one, "%s", temp_path("mpi_knn_one.h5"));
    snprintf(many, sizeof many, "%s", temp_path("mpi_knn_many.h5"));
    write_knn_sets(train, test);
    snprintf(args, sizeof args, "knn --train %s --data %s -k 7 --save %s", train, test, one);
    cJSON *single = run(0, args, "mpi_knn_one.json");
    for (int ranks = 2; ranks <= 3; ranks++) {
        snprintf(args, sizeof args, "knn --train %s --data %s -k 7 --save %s", train, test, many);
        expect_same(cJSON_Duplicate(single, 1), run(ranks, args, "mpi_knn.json"), ranks, "knn");
        expect_same_file(one, many);
        /* The training set split across the ranks instead: the same answers. */
        snprintf(args, sizeof args, "knn --train %s --data %s -k 7 --shard-train --save %s",
                 train, test, many);
        expect_same(cJSON_Duplicate(single, 1), run(ranks, args, "mpi_knn_st.json"), ranks,
                    "knn --shard-train");
        expect_same_file(one, many);
    }
    cJSON_Delete(single);
}

static void test_metrics_under_mpi(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    char pairs[4096], one[4096], many[4096], args[16384];
    snprintf(pairs, sizeof pairs, "%s", temp_path("mpi_pairs.h5"));
    snprintf(one, sizeof one, "%s", temp_path("mpi_metrics_one.h5"));
    snprintf(many, sizeof many, "%s", temp_path("mpi_metrics_many.h5"));
    const hsize_t n = 10007;
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    for (hsize_t i = 0; i < n; i++) {
        y[i] = (int32_t)((i * 7) % 13);
        pred[i] = i % 5 ? y[i] : (int32_t)((i * 3) % 13);
    }
    pred[n - 1] = 15; /* only the last rank sees the largest label: C must still be 16 */
    hid_t f = h5_create(pairs);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(f, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    H5Fclose(f);
    free(y);
    free(pred);
    snprintf(args, sizeof args, "metrics --data %s --save %s", pairs, one);
    cJSON *single = run(0, args, "mpi_metrics_one.json");
    assert_int_equal(cJSON_GetObjectItem(single, "n_classes")->valueint, 16);
    for (int ranks = 2; ranks <= 3; ranks++) {
        snprintf(args, sizeof args, "metrics --data %s --save %s", pairs, many);
        expect_same(cJSON_Duplicate(single, 1), run(ranks, args, "mpi_metrics.json"), ranks,
                    "metrics");
        expect_same_file(one, many);
        /* Without --save there are no parts: the counts travel by MPI alone. */
        snprintf(args, sizeof args, "metrics --data %s", pairs);
        expect_same(cJSON_Duplicate(single, 1), run(ranks, args, "mpi_metrics_nosave.json"),
                    ranks, "metrics without --save");
    }
    cJSON_Delete(single);
}

/* The shipped network on the first 1001 test images. */
static void test_eval_under_mpi(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    char source[4096], data[4096], model[4096], one[4096], many[4096], args[16384];
    snprintf(source, sizeof source, "%s/../../datasets/fmnist_test.h5", CLEVAL_FIXTURES_DIR);
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(data, sizeof data, "%s", temp_path("mpi_images.h5"));
    snprintf(one, sizeof one, "%s", temp_path("mpi_eval_one.h5"));
    snprintf(many, sizeof many, "%s", temp_path("mpi_eval_many.h5"));
    const hsize_t n = 1001;
    cleval_dataset *ds;
    cleval_column *x, *y;
    assert_ok(cleval_dataset_open(source, &ds));
    assert_ok(cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &x));
    assert_ok(cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &y));
    float *pixels = malloc(n * 784 * sizeof *pixels);
    int32_t labels[1001], max;
    assert_ok(cleval_column_read_f32(x, 0, n, pixels));
    assert_ok(cleval_column_read_i32(y, 0, n, labels, &max));
    cleval_column_close(x);
    cleval_column_close(y);
    cleval_dataset_close(ds);
    hsize_t dims[4] = {n, 1, 28, 28};
    hid_t f = h5_create(data);
    h5_write(f, "X", H5T_NATIVE_FLOAT, 4, dims, pixels, 0, NULL);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, dims, labels, 0, NULL);
    H5Fclose(f);
    free(pixels);
    snprintf(args, sizeof args, "eval --model %s --data %s --save %s", model, data, one);
    cJSON *single = run(0, args, "mpi_eval_one.json");
    for (int ranks = 2; ranks <= 3; ranks++) {
        snprintf(args, sizeof args, "eval --model %s --data %s --save %s", model, data, many);
        expect_same(cJSON_Duplicate(single, 1), run(ranks, args, "mpi_eval.json"), ranks, "eval");
        expect_same_file(one, many);
    }
    cJSON_Delete(single);
}

/* A failing rank stops every rank with its exit code and one message; nothing hangs. */
static void test_failure_is_shared(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    char train[4096], test[4096], cmd[24576];
    snprintf(train, sizeof train, "%s", temp_path("mpi_train.h5"));
    snprintf(test, sizeof test, "%s", temp_path("mpi_test.h5"));
    write_knn_sets(train, test);
    /* 257 rows over 3 ranks: 86, 86, 85 rows each; k = 86 is too many for the last slice. */
    snprintf(cmd, sizeof cmd,
             "timeout 120 mpirun --oversubscribe --allow-run-as-root -np 3 env "
             "ASAN_OPTIONS=detect_leaks=0 %s knn --train %s --data %s -k 86 --shard-train --quiet "
             ">/dev/null 2>%s",
             CLEVAL_BINARY, train, test, temp_path("mpi_fail.err"));
    int code = system(cmd);
    assert_true(WIFEXITED(code));
    assert_int_equal(WEXITSTATUS(code), 2);
    char *err = read_text_file(temp_path("mpi_fail.err"));
    assert_non_null(strstr(err, "rank 2 holds 85 training rows, fewer than k = 86"));
    free(err);

    /* A rank that fails before the engine (its device cannot open) while the others start
     * it: knn --shard-train, whose collectives start at once, and eval in fp16, which settles
     * its arithmetic across ranks. Each must end with exit 2 (timeout's 124 is a hang). */
    const char *jobs[2][2] = {{"knn", "--train %s --data %s -k 3 --shard-train"},
                              {"eval", "--model %s --data %s --precision fp16"}};
    char model[4096], images[4096];
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(images, sizeof images, "%s", fixture_path("onnx/fmnist_cnn_io.h5"));
    for (int j = 0; j < 2; j++) {
        char args[9000];
        snprintf(args, sizeof args, jobs[j][1], j == 0 ? train : model, j == 0 ? test : images);
        snprintf(cmd, sizeof cmd,
                 "timeout 120 mpirun --oversubscribe --allow-run-as-root -np 1 env "
                 "ASAN_OPTIONS=detect_leaks=0 %s %s %s --quiet : -np 1 env "
                 "ASAN_OPTIONS=detect_leaks=0 CLEVAL_DEVICE=99 %s %s %s --quiet >/dev/null 2>%s",
                 CLEVAL_BINARY, jobs[j][0], args, CLEVAL_BINARY, jobs[j][0], args,
                 temp_path("mpi_fail.err"));
        code = system(cmd);
        assert_true(WIFEXITED(code));
        if (WEXITSTATUS(code) != 2)
            fail_msg("%s with one rank failing early: exit %d (124: hung)", jobs[j][0],
                     WEXITSTATUS(code));
        err = read_text_file(temp_path("mpi_fail.err"));
        assert_non_null(strstr(err, "out of range"));
        free(err);
    }
}

/* The pid of rank `rank` among mpirun's children (the processes whose parent is `mpirun`
 * and whose environment says OMPI_COMM_WORLD_RANK=rank); 0 when there is none. */
static int rank_pid(int mpirun, int rank)
{
    char wanted[64];
    snprintf(wanted, sizeof wanted, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *proc = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (proc && !found && (e = readdir(proc))) {
        int pid = atoi(e->d_name), parent = 0;
        char path[300];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (!f) continue;
        if (fscanf(f, "%*d (%*[^)]) %*c %d", &parent) != 1) parent = 0;
        fclose(f);
        if (parent != mpirun) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        char env[65536];
        f = fopen(path, "r");
        size_t n = f ? fread(env, 1, sizeof env - 1, f) : 0;
        if (f) fclose(f);
        env[n] = '\0';
        for (size_t at = 0; at < n; at += strlen(env + at) + 1)
            if (strcmp(env + at, wanted) == 0) found = pid;
    }
    if (proc) closedir(proc);
    return found;
}

/* SIGTERM to rank 0 under mpirun: it stops at a batch boundary with its checkpoint while rank 1
 * finishes its slice; every rank ends (no hang) and mpirun exits 143; the same command with
 * --resume (rank 0 from its checkpoint, rank 1 from the beginning) gives the single process's
 * report. */
static void test_sigterm_under_mpi(void **state)
{
    (void)state;
    if (!have_mpirun()) skip();
    char pairs[4096], checkpoint[4096], args[16384];
    snprintf(pairs, sizeof pairs, "%s", temp_path("mpi_stop_pairs.h5"));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("mpi_stop.ckpt"));
    const hsize_t n = 2000000;
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    for (hsize_t i = 0; i < n; i++) {
        y[i] = (int32_t)((i * 7) % 13);
        pred[i] = i % 5 ? y[i] : (int32_t)((i * 3) % 13);
    }
    hid_t f = h5_create(pairs);
    h5_write(f, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(f, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    H5Fclose(f);
    free(y);
    free(pred);
    snprintf(args, sizeof args, "metrics --data %s --batch 100", pairs);
    cJSON *single = run(0, args, "mpi_stop_one.json");

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t mpirun = fork();
    if (mpirun == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        execlp("mpirun", "mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "2", "env",
               "ASAN_OPTIONS=detect_leaks=0", CLEVAL_BINARY, "metrics", "--data", pairs,
               "--batch", "100", "--checkpoint", checkpoint, "--progress", "json", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* Rank 0 prints the progress: its handlers are in place once a line comes. */
    assert_true(read_until_line(fds[0], "{\"done\""));
    int rank0 = rank_pid((int)mpirun, 0);
    assert_true(rank0 > 0);
    kill(rank0, SIGTERM);
    char *err;
    int code = finish_cleval((int)mpirun, fds[0], &err);
    if (code != 143 || !strstr(err, "cleval: SIGTERM: stopped after "))
        fail_msg("mpirun exit %d (wanted 143): %s", code, err);
    free(err);
    char rank_checkpoint[4200];
    snprintf(rank_checkpoint, sizeof rank_checkpoint, "%s.rank0", checkpoint);
    assert_int_equal(access(rank_checkpoint, F_OK), 0);
    snprintf(args, sizeof args, "metrics --data %s --batch 100 --checkpoint %s --resume", pairs,
             checkpoint);
    expect_same(single, run(2, args, "mpi_stop.json"), 2, "metrics resumed after SIGTERM");
    assert_int_equal(access(rank_checkpoint, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knn_under_mpi),
        cmocka_unit_test(test_metrics_under_mpi),
        cmocka_unit_test(test_eval_under_mpi),
        cmocka_unit_test(test_failure_is_shared),
        cmocka_unit_test(test_sigterm_under_mpi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
