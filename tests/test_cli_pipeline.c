/* Large-job features end to end: several devices give the results of one, --shard + merge give
 * the unsharded results, a run killed with SIGKILL finishes with --resume into byte-identical
 * files, SIGINT stops cleanly with a checkpoint, --progress json prints JSON lines, and every
 * misuse exits 2 with one line. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts a checkpointed run, waits for its first checkpoint, then sends `signal_number`.
 * Returns the exit code, or -1 when the run finished before it could be interrupted. */
static int interrupt_run(const char *const *args, const char *checkpoint, int signal_number)
{
    remove(checkpoint);
    int pid = spawn_cleval(args);
    for (int waited = 0; !exists(checkpoint) && waited < 20000; waited++)
        sleep_ms(1);
    kill(pid, signal_number);
    return wait_cleval(pid);
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
                          "20000",   NULL,           NULL};
    remove(saved);
    int code = interrupt_run(args, checkpoint, signal_number);
    if (code == 0) skip(); /* finished before the signal: nothing to resume on this machine */
    assert_int_equal(code, expected_exit);
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

static void test_sigint_stops_with_checkpoint(void **state)
{
    (void)state;
    check_resume(SIGINT, 130);
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
    remove(checkpoint);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", pairs, "--checkpoint", checkpoint, "--resume", NULL},
        2, "no checkpoint at");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--device", "0,0", NULL}, 2,
                        "named twice");
    expect_cleval_error((const char *[]){"merge", NULL}, 2, "no part files given");
    expect_cleval_error((const char *[]){"merge", pairs, NULL}, 2, "not a cleval part file");
    expect_cleval_error((const char *[]){"metrics", "--data", pairs, "--progress", "loud", NULL}, 2,
                        "--progress: 'loud' is not one of tty, json, none");
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
    char big[4096], small[4096], checkpoint[4096];
    snprintf(big, sizeof big, "%s", write_pairs("other_big.h5", 3000000));
    snprintf(small, sizeof small, "%s", write_pairs("other_small.h5", 1000));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("other.ckpt"));
    int code =
        interrupt_run((const char *[]){"metrics", "--data", big, "--batch", "500", "--checkpoint",
                                       checkpoint, "--checkpoint-every", "20000", NULL},
                      checkpoint, SIGINT);
    if (code == 0) skip();
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
        cmocka_unit_test(test_sigint_stops_with_checkpoint),
        cmocka_unit_test(test_progress_json_lines),
        cmocka_unit_test(test_misuse_exits_2),
        cmocka_unit_test(test_checkpoint_of_another_job),
        cmocka_unit_test(test_merge_refuses_bad_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
