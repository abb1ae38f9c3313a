/* Writes that fail: a full disk, simulated by running cleval under a small RLIMIT_FSIZE with
 * SIGXFSZ ignored (writes past the limit then fail with EFBIG, as ENOSPC does on a full disk),
 * and a stdout that cannot take the report (/dev/full, or closed). Every such run exits 2 with
 * one line naming the file and the OS error, leaves neither the output nor a temporary, and
 * does not crash. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { STDOUT_FILE, STDOUT_FULL, STDOUT_CLOSED };

/* Runs cleval with files limited to `max_file_size` bytes (0: no limit) and stdout as `mode`
 * says; returns its exit code, or 128 + N when signal N killed it. *err: its stderr (free). */
static int run_constrained(const char *const *args, rlim_t max_file_size, int mode, char **err)
{
    char err_name[] = "/tmp/cleval-test-err-XXXXXX";
    int err_fd = mkstemp(err_name);
    if (err_fd < 0) fail_msg("mkstemp failed");
    size_t n = 0;
    while (args[n])
        n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    argv[0] = CLEVAL_BINARY;
    memcpy(argv + 1, args, n * sizeof *args);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (mode == STDOUT_CLOSED)
            close(1);
        else
            dup2(open(mode == STDOUT_FULL ? "/dev/full" : "/dev/null", O_WRONLY), 1);
        dup2(err_fd, 2);
        if (max_file_size) {
            struct rlimit limit = {max_file_size, max_file_size};
            setrlimit(RLIMIT_FSIZE, &limit);
            signal(SIGXFSZ, SIG_IGN);
        }
        execv(CLEVAL_BINARY, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    int status = 0;
    waitpid(pid, &status, 0);
    *err = read_text_file(err_name);
    close(err_fd);
    unlink(err_name);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Fails unless the run exited 2 with exactly one stderr line holding every needle. */
static void expect_one_line_exit_2(int code, char *err, const char *const *needles)
{
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    bool all = true;
    for (; *needles; needles++)
        all = all && strstr(err, *needles);
    if (code != 2 || lines != 1 || !all)
        fail_msg("exit %d (wanted 2), %zu stderr line(s) (wanted 1): %s", code, lines, err);
    free(err);
}

/* How many files of the test folder start with `name` (the output, its temporaries). */
static int files_named_like(const char *name)
{
    DIR *d = opendir(CLEVAL_TEST_TMPDIR);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        count += strncmp(e->d_name, name, strlen(name)) == 0;
    if (d) closedir(d);
    return count;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Runs `args` (whose --save is temp_path(name)) once without a limit, which also warms the
 * OpenCL compiler's cache, then with files limited to half the output's size. */
static void expect_full_disk_failure(const char *const *args, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", temp_path(name));
    char *err;
    int code = run_constrained(args, 0, STDOUT_FILE, &err);
    if (code != 0) fail_msg("exit %d without a limit: %s", code, err);
    free(err);
    off_t size = file_size(path);
    assert_true(size > 2 << 20); /* far more than the OpenCL compiler writes in its cache */
    unlink(path);
    code = run_constrained(args, (rlim_t)size / 2, STDOUT_FILE, &err);
    expect_one_line_exit_2(code, err, (const char *[]){path, "File too large", NULL});
    assert_int_equal(files_named_like(name), 0);
}

/* 200,000 samples of 20 features for the 20-5 MLP fixture: about 5.6 MB of predictions. */
static const char *mlp_test_set(void)
{
    static char path[4096];
    if (path[0]) return path;
    enum { N = 200000, D = 20 };
    float *x = malloc(sizeof(float) * N * D);
    int32_t *y = malloc(sizeof(int32_t) * N);
    for (size_t i = 0; i < (size_t)N * D; i++)
        x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < N; i++)
        y[i] = i % 5;
    snprintf(path, sizeof path, "%s", temp_path("mlp_test.h5"));
    hid_t file = h5_create(path);
    hsize_t dims[2] = {N, D};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
    H5Fclose(file);
    free(x);
    free(y);
    return path;
}

static void test_eval_save_on_full_disk(void **state)
{
    (void)state;
    const char *model = fixture_path("onnx/mlp_softmax.onnx");
    char data[4096], save[4096];
    snprintf(data, sizeof data, "%s", mlp_test_set());
    snprintf(save, sizeof save, "%s", temp_path("eval_out.h5"));
    expect_full_disk_failure(
        (const char *[]){"eval", "--model", model, "--data", data, "--save", save, NULL},
        "eval_out.h5");
}

static void test_eval_checkpointed_save_on_full_disk(void **state)
{
    (void)state;
    const char *model = fixture_path("onnx/mlp_softmax.onnx");
    char data[4096], save[4096], checkpoint[4096];
    snprintf(data, sizeof data, "%s", mlp_test_set());
    snprintf(save, sizeof save, "%s", temp_path("eval_ckpt_out.h5"));
    snprintf(checkpoint, sizeof checkpoint, "%s", temp_path("eval.ckpt"));
    expect_full_disk_failure((const char *[]){"eval", "--model", model, "--data", data, "--save",
                                              save, "--checkpoint", checkpoint,
                                              "--checkpoint-every", "10000", NULL},
                             "eval_ckpt_out.h5");
    unlink(checkpoint);
}

static void test_metrics_save_on_full_disk(void **state)
{
    (void)state;
    char data[4096], save[4096];
    snprintf(data, sizeof data, "%s", fixture_path("metrics/c1000_n20000.h5"));
    snprintf(save, sizeof save, "%s", temp_path("metrics_out.h5"));
    expect_full_disk_failure((const char *[]){"metrics", "--data", data, "--save", save, NULL},
                             "metrics_out.h5");
}

/* Two prediction files of 300,000 samples that disagree on most of them. */
static void test_compare_save_on_full_disk(void **state)
{
    (void)state;
    enum { N = 300000 };
    int32_t *pred = malloc(sizeof(int32_t) * N), *y = malloc(sizeof(int32_t) * N);
    char paths[2][4096];
    for (int side = 0; side < 2; side++) {
        for (int i = 0; i < N; i++) {
            pred[i] = (i * (side ? 7 : 3)) % 5;
            y[i] = i % 5;
        }
        snprintf(paths[side], sizeof paths[side], "%s", temp_path(side ? "cmp_b.h5" : "cmp_a.h5"));
        hid_t file = h5_create(paths[side]);
        hsize_t dims[1] = {N};
        h5_write(file, "pred", H5T_NATIVE_INT32, 1, dims, pred, 0, NULL);
        h5_write(file, "y", H5T_NATIVE_INT32, 1, dims, y, 0, NULL);
        H5Fclose(file);
    }
    free(pred);
    free(y);
    char save[4096];
    snprintf(save, sizeof save, "%s", temp_path("flips_out.h5"));
    expect_full_disk_failure((const char *[]){"compare", paths[0], paths[1], "--save", save, NULL},
                             "flips_out.h5");
}

/* The report to a stdout that cannot take it: exit 2 and one line, whatever the command. */
static void test_report_to_full_or_closed_stdout(void **state)
{
    (void)state;
    char data[4096], pred[4096];
    snprintf(data, sizeof data, "%s", fixture_path("metrics/c10_n997.h5"));
    snprintf(pred, sizeof pred, "%s", fixture_path("compare/base_a.h5"));
    const char *const *runs[] = {
        (const char *[]){"metrics", "--data", data, NULL},
        (const char *[]){"metrics", "--data", data, "--json", "-", NULL},
        (const char *[]){"compare", pred, pred, NULL},
        (const char *[]){"compare", pred, pred, "--json", "-", NULL},
        (const char *[]){"--help", NULL},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char *err;
        int code = run_constrained(runs[i], 0, STDOUT_FULL, &err);
        expect_one_line_exit_2(code, err, (const char *[]){"stdout", "No space left", NULL});
        code = run_constrained(runs[i], 0, STDOUT_CLOSED, &err);
        expect_one_line_exit_2(code, err, (const char *[]){"stdout", "Bad file descriptor", NULL});
        assert_int_equal(run_constrained(runs[i], 0, STDOUT_FILE, &err), 0);
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_save_on_full_disk),
        cmocka_unit_test(test_eval_checkpointed_save_on_full_disk),
        cmocka_unit_test(test_metrics_save_on_full_disk),
        cmocka_unit_test(test_compare_save_on_full_disk),
        cmocka_unit_test(test_report_to_full_or_closed_stdout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
