/* Large-job features end to end: several devices give the results of one, --shard + merge give
 * the unsharded results, a run killed with SIGKILL finishes with --resume into byte-identical
 * files, SIGINT, SIGTERM and SIGHUP stop every command cleanly (with a checkpoint where there
 * is one), checkpoints come by sample count or by time, --resume before any checkpoint starts
 * from the beginning, --progress json prints JSON lines, and every misuse exits 2 with one
 * line. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A metrics input: y and pred of n rows over 7 classes, in gzip chunks. */
static const char *write_pairs(const char *name, hsize_t n)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    uint64_t s = 12345;
    for (hsize_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (int32_t)((s >> 33) % 7);
        pred[i] = (s >> 20) % 10 < 7 ? y[i] : (int32_t)((s >> 40) % 7);
    }
    hsize_t chunk[1] = {n < 4096 ? n : 4096};
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 1, chunk);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 1, chunk);
    free(y);
    free(pred);
    H5Fclose(file);
    return path;
}

/* The report without what legitimately differs between runs: timing and the device names. */
static cJSON *results_only(cJSON *report)
{
    cJSON_DeleteItemFromObject(report, "timing");
    cJSON_DeleteItemFromObject(report, "timing_breakdown");
    cJSON_DeleteItemFromObject(report, "device");
    return report;
}

static void expect_same_reports(cJSON *a, cJSON *b, const char *what)
{
    results_only(a);
    results_only(b);
    if (!cJSON_Compare(a, b, 1)) {
        char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
        fail_msg("%s: reports differ:\n%.600s\n%.600s", what, x, y);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static bool same_bytes(const char *a, const char *b)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* Datasets `name` of two HDF5 files hold the same values (read as raw bytes). */
static bool same_dataset(const char *a, const char *b, const char *name)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "h5diff -q '%s' '%s' '%s' '%s' >/dev/null 2>&1", a, b, name, name);
    return system(cmd) == 0;
}

static const char *iris(const char *which)
{
    static char path[2][4096];
    int i = strcmp(which, "train") == 0;
    snprintf(path[i], sizeof path[i], "%s/../../datasets/iris_%s.h5", CLEVAL_FIXTURES_DIR, which);
    return path[i];
}

/* POCL_DEVICES makes PoCL list two CPU devices: two of the same driver, or two different. */
static void check_two_devices(const char *pocl_devices)
{
    setenv("POCL_DEVICES", pocl_devices, 1);
    char pairs[4096], one_h5[4096], all_h5[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("pipe_devices.h5", 100003));
    snprintf(one_h5, sizeof one_h5, "%s", temp_path("pipe_one.h5"));
    snprintf(all_h5, sizeof all_h5, "%s", temp_path("pipe_all.h5"));
    cJSON *one = run_cleval_json((const char *[]){"metrics", "--data", pairs, "--batch", "999",
                                                  "--device", "0", "--json", "-", NULL},
                                 0);
    cJSON *all = run_cleval_json((const char *[]){"metrics", "--data", pairs, "--batch", "999",
                                                  "--device", "all", "--json", "-", NULL},
                                 0);
    assert_non_null(strstr(cJSON_GetObjectItem(all, "device")->valuestring, ", "));
    expect_same_reports(one, all, pocl_devices);

    one = run_cleval_json((const char *[]){"knn", "--train", iris("train"), "--data", iris("test"),
                                           "-k", "5", "--batch", "4", "--device", "1", "--json",
                                           "-", "--save", one_h5, NULL},
                          0);
    all = run_cleval_json((const char *[]){"knn", "--train", iris("train"), "--data", iris("test"),
                                           "-k", "5", "--batch", "4", "--device", "0,1", "--json",
                                           "-", "--save", all_h5, NULL},
                          0);
    expect_same_reports(one, all, pocl_devices);
    assert_true(same_dataset(one_h5, all_h5, "pred"));
    assert_true(same_dataset(one_h5, all_h5, "scores"));
    unsetenv("POCL_DEVICES");
}

static void test_two_devices_equal_one(void **state)
{
    (void)state;
    check_two_devices("pthread pthread");
    check_two_devices("basic pthread");
}

/* Four slices of 30 rows (8, 8, 7, 7) merged in a scrambled order equal the whole run. */
static void test_shards_merge_to_the_whole(void **state)
{
    (void)state;
    char whole[4096], merged[4096], parts[4][4096];
    snprintf(whole, sizeof whole, "%s", temp_path("shard_whole.h5"));
    snprintf(merged, sizeof merged, "%s", temp_path("shard_merged.h5"));
    cJSON *expected =
        run_cleval_json((const char *[]){"knn", "--train", iris("train"), "--data", iris("test"),
                                         "-k", "3", "--json", "-", "--save", whole, NULL},
                        0);
    for (int i = 0; i < 4; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/4", i);
        snprintf(name, sizeof name, "part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        char *out, *err;
        int code = run_cleval((const char *[]){"knn", "--train", iris("train"), "--data",
                                               iris("test"), "-k", "3", "--shard", shard, "--save",
                                               parts[i], "--quiet", NULL},
                              &out, &err);
        if (code != 0) fail_msg("shard %s: exit %d: %s", shard, code, err);
        free(out), free(err);
    }
    cJSON *got = run_cleval_json((const char *[]){"merge", parts[2], parts[0], parts[3], parts[1],
                                                  "--json", "-", "--save", merged, NULL},
                                 0);
    drop_score_metrics(expected); /* parts carry no score sums */
    expect_same_reports(expected, got, "merge");
    assert_true(same_bytes(whole, merged));

    /* metrics: the same with its own parts. */
    char pairs[4096], m_whole[4096], m_merged[4096], m_parts[3][4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("shard_pairs.h5", 10007));
    snprintf(m_whole, sizeof m_whole, "%s", temp_path("shard_m_whole.h5"));
    snprintf(m_merged, sizeof m_merged, "%s", temp_path("shard_m_merged.h5"));
    expected = run_cleval_json(
        (const char *[]){"metrics", "--data", pairs, "--json", "-", "--save", m_whole, NULL}, 0);
    for (int i = 0; i < 3; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/3", i);
        snprintf(name, sizeof name, "m_part%d.h5", i);
        snprintf(m_parts[i], sizeof m_parts[i], "%s", temp_path(name));
        assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--shard", shard,
                                                     "--save", m_parts[i], NULL},
                                    NULL, NULL),
                         0);
    }
    got = run_cleval_json((const char *[]){"merge", m_parts[1], m_parts[2], m_parts[0], "--json",
                                           "-", "--save", m_merged, NULL},
                          0);
    expect_same_reports(expected, got, "metrics merge");
    assert_true(same_bytes(m_whole, m_merged));
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void check_resume(int signal_number, int expected_exit)
{
    char pairs[4096], reference[4096], saved[4096], checkpoint[4096], ref_json[4096],
        got_json[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("resume_pairs.h5", 3000000));
    snprintf(reference, sizeof reference, "%s", temp_path("resume_reference.h5"));
    snprintf(saved, sizeof saved, "%s", temp_path("resume_saved.h5"));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("resume.ckpt"));
    snprintf(ref_json, sizeof ref_json, "%s", temp_path("resume_reference.json"));
    snprintf(got_json, sizeof got_json, "%s", temp_path("resume_saved.json"));
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--batch", "500",
                                                 "--save", reference, "--json", ref_json, NULL},
                                NULL, NULL),
                     0);
    const char *args[] = {"metrics", "--data",       pairs,      "--batch",
                          "500",     "--save",       saved,      "--json",
                          got_json,  "--checkpoint", checkpoint, "--checkpoint-every",
                          "5000",    NULL,           NULL};
    remove(saved);
    remove(got_json);
    /* Every 10 batches: the first checkpoint comes before the held run blocks. */
    assert_int_equal(interrupt_at_checkpoint(args, checkpoint, signal_number), expected_exit);
    assert_true(exists(checkpoint));
    assert_false(exists(saved));
    args[13] = "--resume";
    assert_int_equal(run_cleval(args, NULL, NULL), 0);
    assert_false(exists(checkpoint)); /* a finished run removes its checkpoint */
    assert_true(same_bytes(reference, saved));
    expect_same_reports(load_json(ref_json), load_json(got_json), "resume");
}

static void test_resume_after_sigkill(void **state)
{
    (void)state;
    check_resume(SIGKILL, 128 + SIGKILL);
}

/* The input of the stop tests (3,000,000 rows: at 100 rows a batch, far more work than the
 * few batches a stop lets finish), and its uninterrupted results, made once. */
static const char *stop_pairs, *stop_reference, *stop_reference_json;

static void make_stop_reference(void)
{
    static char pairs[4096], reference[4096], json[4096];
    if (stop_pairs) return;
    snprintf(pairs, sizeof pairs, "%s", write_pairs("stop_pairs.h5", 3000000));
    snprintf(reference, sizeof reference, "%s", temp_path("stop_reference.h5"));
    snprintf(json, sizeof json, "%s", temp_path("stop_reference.json"));
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--batch", "100",
                                                 "--save", reference, "--json", json, NULL},
                                NULL, NULL),
                     0);
    stop_pairs = pairs;
    stop_reference = reference;
    stop_reference_json = json;
}

/* Starts cleval held by its progress pipe, waits for its first progress line (its handlers are
 * in place and the run is under way; it cannot finish before the test reads on), sends the
 * signals one after the other, and returns its exit code; *err gets its stderr without the
 * progress lines. */
static int stop_run(const char *const *args, const int *signals, int n_signals, char **err)
{
    int fd, pid = spawn_cleval_held(args, &fd);
    if (!read_until_line(fd, "{\"done\"")) fail_msg("%s printed no progress line", args[0]);
    for (int i = 0; i < n_signals; i++)
        kill(pid, signals[i]);
    char *text;
    int code = finish_cleval(pid, fd, &text);
    size_t kept = 0;
    for (char *line = text; *line;) {
        size_t len = strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n');
        if (line[0] != '{') memmove(text + kept, line, len), kept += len;
        line += len;
    }
    text[kept] = '\0';
    *err = text;
    return code;
}

static const char *signal_name(int signal_number)
{
    switch (signal_number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    }
    return "?";
}

/* A checkpointed metrics run (--save, --json) stopped by `signals` exits 128 + one of them (two
 * different signals can be handled at once on two threads) with one line that names it and
 * tells how to resume, leaves no temporary, and --resume gives the uninterrupted run's files.
 * A checkpoint is certain after one signal; after two, the run may stop before it writes one. */
static void check_stop(const int *signals, int n_signals)
{
    make_stop_reference();
    char saved[4096], json[4096], checkpoint[4096], partial[4200];
    snprintf(saved, sizeof saved, "%s", temp_path("stop_saved.h5"));
    snprintf(json, sizeof json, "%s", temp_path("stop_saved.json"));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("stop.ckpt"));
    snprintf(partial, sizeof partial, "%s.partial", saved);
    remove(saved);
    remove(json);
    remove(checkpoint);
    remove(partial);
    const char *args[] = {"metrics", "--data", stop_pairs, "--batch",      "100",      "--save",
                          saved,     "--json", json,       "--checkpoint", checkpoint, NULL,
                          NULL};
    char *err, says[64];
    int got = stop_run(args, signals, n_signals, &err);
    bool sent = false;
    for (int i = 0; i < n_signals; i++)
        sent = sent || got == 128 + signals[i];
    snprintf(says, sizeof says, "cleval: %s: stopped after ", signal_name(got - 128));
    const char *hint = exists(checkpoint) ? "run the same command with --resume to continue"
                                          : "(--resume starts from the beginning)";
    if (!sent || strncmp(err, says, strlen(says)) != 0 || !strstr(err, hint) ||
        strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("exit %d (wanted 128 + %d), stderr (wanted one line '%s...%s'): %s", got,
                 signals[0], says, hint, err);
    free(err);
    if (n_signals == 1) assert_true(exists(checkpoint));
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
    assert_false(exists(saved));
    assert_false(exists(json));
    /* The partial file is kept exactly when a checkpoint continues it. */
    assert_int_equal(exists(partial), exists(checkpoint));
    args[11] = "--resume";
    assert_int_equal(run_cleval(args, NULL, NULL), 0);
    assert_false(exists(checkpoint));
    assert_true(same_bytes(stop_reference, saved));
    expect_same_reports(load_json(stop_reference_json), load_json(json), "resume after a stop");
}

static void test_sigterm_stops_with_checkpoint(void **state)
{
    (void)state;
    check_stop((const int[]){SIGTERM}, 1);
}

static void test_sighup_and_sigint_stop_with_checkpoint(void **state)
{
    (void)state;
    check_stop((const int[]){SIGHUP}, 1);
    check_stop((const int[]){SIGINT}, 1);
}

/* A second signal stops at once: still no temporary, and a valid checkpoint or none. */
static void test_second_signal_stops_at_once(void **state)
{
    (void)state;
    check_stop((const int[]){SIGTERM, SIGTERM}, 2);
    check_stop((const int[]){SIGINT, SIGTERM}, 2);
}

/* A KNN problem with a long test set: 64 training rows, 20,000 queries, 4 features. */
static void write_long_knn(const char *train, const char *test)
{
    const hsize_t n_train = 64, n_test = 20000, d = 4;
    float *x = malloc(n_test * d * sizeof *x);
    int32_t *y = malloc(n_test * sizeof *y);
    uint64_t s = 7;
    for (hsize_t i = 0; i < n_test * d; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) % 1000) / 100.0f;
    }
    for (hsize_t i = 0; i < n_test; i++)
        y[i] = (int32_t)(i % 3);
    const char *paths[] = {train, test};
    const hsize_t rows[] = {n_train, n_test};
    for (int f = 0; f < 2; f++) {
        hid_t file = h5_create(paths[f]);
        hsize_t dims[2] = {rows[f], d};
        h5_write(file, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
        h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
        H5Fclose(file);
    }
    free(x);
    free(y);
}

/* eval and knn stop the same way: exit 143, a checkpoint, no temporary, and --resume gives
 * the uninterrupted run's report and prediction file. */
static void check_model_stop(const char *const *job, const char *name)
{
    char saved[4096], reference[4096], checkpoint[4096];
    snprintf(saved, sizeof saved, "%s", temp_path("model_stop_saved.h5"));
    snprintf(reference, sizeof reference, "%s", temp_path("model_stop_reference.h5"));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("model_stop.ckpt"));
    remove(saved);
    remove(checkpoint);
    const char *args[32];
    int n = 0;
    for (; job[n]; n++)
        args[n] = job[n];
    const char *tail[] = {"--batch", "10", "--json", "-", "--save", reference, NULL};
    for (int i = 0; i < 7; i++)
        args[n + i] = tail[i];
    cJSON *expected = run_cleval_json(args, 0);
    const char *stop_tail[] = {"--checkpoint", checkpoint, NULL};
    args[n + 5] = saved;
    for (int i = 0; i < 3; i++)
        args[n + 6 + i] = stop_tail[i];
    char *err;
    int code = stop_run(args, (const int[]){SIGTERM}, 1, &err);
    if (code != 143 || !strstr(err, "run the same command with --resume to continue"))
        fail_msg("%s: exit %d: %s", name, code, err);
    free(err);
    assert_true(exists(checkpoint));
    assert_false(exists(saved));
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
    args[n + 8] = "--resume";
    args[n + 9] = NULL;
    expect_same_reports(expected, run_cleval_json(args, 0), name);
    assert_true(same_bytes(reference, saved));
    assert_false(exists(checkpoint));
}

static void test_sigterm_stops_eval_and_knn(void **state)
{
    (void)state;
    char model[4096], data[4096], train[4096], test[4096];
    snprintf(model, sizeof model, "%s/../../datasets/fmnist_cnn.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(data, sizeof data, "%s/../../datasets/fmnist_test.h5", CLEVAL_FIXTURES_DIR);
    /* --auc off: a run resumed from a checkpoint has no ROC AUC to compare. */
    check_model_stop(
        (const char *[]){"eval", "--model", model, "--data", data, "--auc", "off", NULL}, "eval");
    snprintf(train, sizeof train, "%s", temp_path("long_train.h5"));
    snprintf(test, sizeof test, "%s", temp_path("long_test.h5"));
    write_long_knn(train, test);
    check_model_stop((const char *[]){"knn", "--train", train, "--data", test, "-k", "3", "--auc",
                                      "off", NULL},
                     "knn");
}

/* Without --checkpoint a stop leaves nothing: no prediction file, no JSON, no temporary. */
static void test_stop_without_checkpoint_leaves_nothing(void **state)
{
    (void)state;
    make_stop_reference();
    char saved[4096], json[4096];
    snprintf(saved, sizeof saved, "%s", temp_path("stop_plain.h5"));
    snprintf(json, sizeof json, "%s", temp_path("stop_plain.json"));
    remove(saved);
    remove(json);
    char *err;
    int code = stop_run((const char *[]){"metrics", "--data", stop_pairs, "--batch", "100",
                                         "--save", saved, "--json", json, NULL},
                        (const int[]){SIGTERM}, 1, &err);
    assert_int_equal(code, 143);
    assert_non_null(strstr(err, "without --checkpoint there is nothing to resume"));
    free(err);
    char partial[4200];
    snprintf(partial, sizeof partial, "%s.partial", saved);
    assert_false(exists(saved));
    assert_false(exists(partial));
    assert_false(exists(json));
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

/* A prediction file for drift: n rows of pred and scores over 3 classes. */
static const char *write_scored(const char *name, hsize_t n)
{
    const char *path = temp_path(name);
    hid_t file = h5_create(path);
    int32_t *pred = malloc(n * sizeof *pred);
    float *scores = malloc(n * 3 * sizeof *scores);
    for (hsize_t i = 0; i < n; i++) {
        pred[i] = (int32_t)(i % 3);
        for (int k = 0; k < 3; k++)
            scores[i * 3 + k] = k == pred[i] ? 0.8f : 0.1f;
    }
    hsize_t dims[2] = {n, 3};
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
    h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    free(pred);
    free(scores);
    H5Fclose(file);
    return path;
}

/* compare, drift and merge stop at their next batch too, writing nothing. */
static void test_signals_stop_compare_drift_merge(void **state)
{
    (void)state;
    make_stop_reference();
    char flips[4096], json[4096];
    snprintf(flips, sizeof flips, "%s", temp_path("stop_flips.h5"));
    snprintf(json, sizeof json, "%s", temp_path("stop_drift.json"));
    remove(flips);
    remove(json);
    char *err;
    int code = stop_run((const char *[]){"compare", stop_pairs, stop_reference, "--batch", "100",
                                         "--save", flips, "--json", json, NULL},
                        (const int[]){SIGTERM}, 1, &err);
    assert_int_equal(code, 143);
    assert_non_null(strstr(err, "cleval: SIGTERM: stopped after "));
    free(err);
    assert_false(exists(flips));
    assert_false(exists(json));
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));

    char scored[4096];
    snprintf(scored, sizeof scored, "%s", write_scored("stop_scored.h5", 300000));
    code = stop_run((const char *[]){"drift", scored, scored, "--batch", "100", "--json", json,
                                     NULL},
                    (const int[]){SIGHUP}, 1, &err);
    assert_int_equal(code, 129);
    assert_non_null(strstr(err, "cleval: SIGHUP: stopped after "));
    free(err);
    assert_false(exists(json));

    /* merge: its parts are the shards of the reference run; the signal is pending when it
     * starts, so it stops at its first chunk, its output's temporary already made. */
    char parts[2][4096], whole[4096];
    for (int i = 0; i < 2; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(name, sizeof name, "stop_part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        assert_int_equal(run_cleval((const char *[]){"metrics", "--data", stop_pairs, "--shard",
                                                     shard, "--save", parts[i], "--quiet", NULL},
                                    NULL, NULL),
                         0);
    }
    snprintf(whole, sizeof whole, "%s", temp_path("stop_whole.h5"));
    remove(whole);
    int fd, pid = spawn_cleval_signalled(
                (const char *[]){"merge", parts[0], parts[1], "--save", whole, "--json", json,
                                 NULL},
                SIGTERM, &fd);
    assert_int_equal(finish_cleval(pid, fd, &err), 143);
    assert_non_null(strstr(err, "cleval: SIGTERM: stopped while copying"));
    free(err);
    assert_false(exists(whole));
    assert_false(exists(json));
    assert_false(folder_has_temp_files(CLEVAL_TEST_TMPDIR));
}

/* A metrics input of n rows whose last label is negative: the run fails at its last batch. */
static const char *write_pairs_failing_last(const char *name, hsize_t n)
{
    const char *path = write_pairs(name, n);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t y = H5Dopen2(file, "y", H5P_DEFAULT), space = H5Dget_space(y);
    hsize_t last = n - 1, one = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &last, NULL, &one, NULL);
    hid_t mem = H5Screate_simple(1, &one, NULL);
    int32_t bad = -1;
    assert_true(H5Dwrite(y, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &bad) >= 0);
    H5Sclose(mem), H5Sclose(space), H5Dclose(y), H5Fclose(file);
    return path;
}

/* --checkpoint-every takes a sample count or a duration: a run failing at its last batch
 * keeps the checkpoint the interval made on the way (1ms has passed long before 30,000 rows
 * at 10 a batch are done). */
static void test_checkpoint_every_count_or_duration(void **state)
{
    (void)state;
    char failing[4096], checkpoint[4096];
    snprintf(failing, sizeof failing, "%s", write_pairs_failing_last("every_bad.h5", 30000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("every.ckpt"));
    const char *intervals[] = {"1ms", "1000"};
    for (int i = 0; i < 2; i++) {
        remove(checkpoint);
        char *err;
        int code = run_cleval((const char *[]){"metrics", "--data", failing, "--batch", "10",
                                               "--checkpoint", checkpoint, "--checkpoint-every",
                                               intervals[i], NULL},
                              NULL, &err);
        if (code != 2 || !strstr(err, "sample 29999"))
            fail_msg("--checkpoint-every %s: exit %d: %s", intervals[i], code, err);
        free(err);
        if (!exists(checkpoint)) fail_msg("--checkpoint-every %s wrote no checkpoint", intervals[i]);
    }
    remove(checkpoint);

    char pairs[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("every_pairs.h5", 1000));
    cJSON *plain =
        run_cleval_json((const char *[]){"metrics", "--data", pairs, "--json", "-", NULL}, 0);
    const char *good[] = {"30s", "10m", "1h", "500ms", "100"};
    for (int i = 0; i < 5; i++) {
        cJSON *got = run_cleval_json((const char *[]){"metrics", "--data", pairs, "--checkpoint",
                                                      checkpoint, "--checkpoint-every", good[i],
                                                      "--json", "-", NULL},
                                     0);
        expect_same_reports(cJSON_Duplicate(plain, 1), got, good[i]);
        assert_false(exists(checkpoint));
    }
    cJSON_Delete(plain);
    const char *bad[] = {"10x", "0s", "-1", "0", "s", "", "1.5h", "10 s"};
    for (int i = 0; i < 8; i++)
        expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--checkpoint",
                                             checkpoint, "--checkpoint-every", bad[i], NULL},
                            2, "--checkpoint-every");
}

/* --resume before the first checkpoint runs from the beginning (a requeued job runs the same
 * command); a checkpoint that exists but cannot be read stays an error; a run without --resume
 * removes it. */
static void test_resume_without_checkpoint_starts_over(void **state)
{
    (void)state;
    char pairs[4096], checkpoint[4096], saved[4096], reference[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("fresh_pairs.h5", 5000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("fresh.ckpt"));
    snprintf(saved, sizeof saved, "%s", temp_path("fresh_saved.h5"));
    snprintf(reference, sizeof reference, "%s", temp_path("fresh_reference.h5"));
    cJSON *plain = run_cleval_json(
        (const char *[]){"metrics", "--data", pairs, "--save", reference, "--json", "-", NULL}, 0);
    remove(checkpoint);
    char *out, *err;
    int code = run_cleval((const char *[]){"metrics", "--data", pairs, "--save", saved,
                                           "--checkpoint", checkpoint, "--resume", "--json", "-",
                                           NULL},
                          &out, &err);
    char expected[4400];
    snprintf(expected, sizeof expected,
             "cleval: --resume: no checkpoint at %s yet; starting from the beginning\n",
             checkpoint);
    assert_int_equal(code, 0);
    assert_string_equal(err, expected);
    cJSON *resumed = cJSON_Parse(out);
    assert_non_null(resumed);
    expect_same_reports(plain, resumed, "--resume without a checkpoint");
    assert_true(same_bytes(reference, saved));
    assert_false(exists(checkpoint));
    free(out), free(err);

    FILE *f = fopen(checkpoint, "w");
    fputs("not HDF5\n", f);
    fclose(f);
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--checkpoint", checkpoint,
                                         "--resume", NULL},
                        2, "is damaged (not an HDF5 file)");
    /* A run without --resume starts afresh: what was at the path goes, even when the run then
     * fails before its first checkpoint (a later --resume must not mix the two runs). */
    char failing[4096];
    snprintf(failing, sizeof failing, "%s", write_pairs_failing_last("fresh_bad.h5", 10));
    expect_cleval_error(
        (const char *[]){"metrics", "--data", failing, "--checkpoint", checkpoint, NULL}, 2,
        "sample 9");
    assert_false(exists(checkpoint));
}

static void test_progress_json_lines(void **state)
{
    (void)state;
    char pairs[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("progress_pairs.h5", 5000));
    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--batch", "1000",
                                                 "--progress", "json", "--json", "-", NULL},
                                &out, &err),
                     0);
    /* The last line reports everything done. */
    char *last = strstr(err, "{\"done\": 5000, \"total\": 5000");
    assert_non_null(last);
    cJSON *line = cJSON_Parse(last);
    assert_non_null(line);
    assert_non_null(cJSON_GetObjectItem(line, "samples_per_s"));
    cJSON_Delete(line);
    free(out), free(err);
    /* --progress-every 2000: a line at the first batch boundary after 2000 more samples, and
     * the last batch's. */
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--batch", "1000",
                                                 "--progress", "json", "--progress-every", "2000",
                                                 "--json", "-", NULL},
                                &out, &err),
                     0);
    const uint64_t expected_done[] = {2000, 4000, 5000};
    size_t lines = 0;
    for (char *at = err; (at = strstr(at, "{\"done\": ")); at++, lines++)
        if (lines < 3) assert_int_equal(strtoull(at + 9, NULL, 10), expected_done[lines]);
    assert_int_equal(lines, 3);
    free(out), free(err);
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--progress", "json",
                                                 "--quiet", "--json", "-", NULL},
                                &out, &err),
                     0);
    assert_string_equal(err, "");
    free(out), free(err);
}

static void test_misuse_exits_2(void **state)
{
    (void)state;
    char pairs[4096], checkpoint[4096], saved[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("misuse_pairs.h5", 1000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("misuse.ckpt"));
    snprintf(saved, sizeof saved, "%s", temp_path("misuse_part.h5"));
    expect_cleval_error(
        (const char *[]){"metrics", "--data", pairs, "--shard", "3/3", "--save", saved, NULL}, 2,
        "--shard: '3/3' is not I/N");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--shard", "0/2", NULL}, 2,
                        "--shard needs --save");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--resume", NULL}, 2,
                        "--resume needs --checkpoint");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--device", "0,0", NULL}, 2,
                        "named twice");
    expect_cleval_error((const char *[]){"merge", NULL}, 2, "no part files given");
    expect_cleval_error((const char *[]){"merge", pairs, NULL}, 2, "not a cleval part file");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--progress", "loud", NULL}, 2,
                        "--progress: 'loud' is not one of tty, json, none");
    expect_cleval_error(
        (const char *[]){"compare", pairs, pairs, "--progress-every", "0", NULL}, 2,
        "--progress-every: must be at least 1");
}

/* A checkpoint that cannot be written is named by its own flag, never as --save. */
static void test_checkpoint_write_failure_names_checkpoint(void **state)
{
    (void)state;
    char pairs[4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("unwritable_pairs.h5", 100));
    char *out, *err;
    int code = run_cleval((const char *[]){"metrics", "--data", pairs, "--checkpoint",
                                           "/nonexistent/dir/run.ckpt", "--checkpoint-every", "10",
                                           "--batch", "10", NULL},
                          &out, &err);
    assert_int_equal(code, 2);
    assert_string_equal(out, "");
    if (!strstr(err, "cleval: --checkpoint /nonexistent/dir/run.ckpt: cannot create") ||
        strstr(err, "--save") || strchr(err, '\n') != err + strlen(err) - 1)
        fail_msg("stderr: %s", err);
    free(out), free(err);
}

/* A part file whose counts were rewritten (a valid HDF5 file stating a wrong state) is refused
 * by its checksum, never read out of bounds. */
static void test_merge_refuses_bad_parts(void **state)
{
    (void)state;
    char pairs[4096], parts[2][4096];
    snprintf(pairs, sizeof pairs, "%s", write_pairs("bad_part_pairs.h5", 1000));
    for (int i = 0; i < 2; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(name, sizeof name, "bad_part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--shard", shard,
                                                     "--save", parts[i], NULL},
                                    NULL, NULL),
                         0);
    }
    /* Part 1's confusion matrix replaced by 40 rows of 7 columns. */
    hid_t file = H5Fopen(parts[1], H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_true(H5Ldelete(file, "confusion", H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {40, 7};
    uint64_t cells[40 * 7] = {0};
    h5_write(file, "confusion", H5T_NATIVE_UINT64, 2, dims, cells, 0, NULL);
    H5Fclose(file);
    expect_cleval_error((const char *[]){"merge", parts[0], parts[1], NULL}, 2,
                        "is damaged (checksum mismatch): re-run its shard");
}

/* A checkpoint written for one input is refused for another. */
static void test_checkpoint_of_another_job(void **state)
{
    (void)state;
    make_stop_reference();
    char small[4096], checkpoint[4096], *err;
    snprintf(small, sizeof small, "%s", write_pairs("other_small.h5", 1000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("other.ckpt"));
    remove(checkpoint);
    assert_int_equal(stop_run((const char *[]){"metrics", "--data", stop_pairs, "--batch", "100",
                                               "--checkpoint", checkpoint, NULL},
                              (const int[]){SIGINT}, 1, &err),
                     130);
    free(err);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", small, "--checkpoint", checkpoint, "--resume", NULL},
        2, "belongs to another job");
    remove(checkpoint);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_devices_equal_one),
        cmocka_unit_test(test_shards_merge_to_the_whole),
        cmocka_unit_test(test_resume_after_sigkill),
        cmocka_unit_test(test_sigterm_stops_with_checkpoint),
        cmocka_unit_test(test_sighup_and_sigint_stop_with_checkpoint),
        cmocka_unit_test(test_second_signal_stops_at_once),
        cmocka_unit_test(test_stop_without_checkpoint_leaves_nothing),
        cmocka_unit_test(test_sigterm_stops_eval_and_knn),
        cmocka_unit_test(test_signals_stop_compare_drift_merge),
        cmocka_unit_test(test_checkpoint_every_count_or_duration),
        cmocka_unit_test(test_resume_without_checkpoint_starts_over),
        cmocka_unit_test(test_progress_json_lines),
        cmocka_unit_test(test_misuse_exits_2),
        cmocka_unit_test(test_checkpoint_write_failure_names_checkpoint),
        cmocka_unit_test(test_checkpoint_of_another_job),
        cmocka_unit_test(test_merge_refuses_bad_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
