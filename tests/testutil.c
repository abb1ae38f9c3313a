/* Helpers shared by the cmocka tests (see testutil.h). */
#define _GNU_SOURCE /* nftw, F_SETPIPE_SZ */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleval/status.h"

void _assert_ok(int status, const char *expr, const char *file, int line)
{
    if (status == CLEVAL_OK) return;
    print_error("%s returned %d (%s): %s\n", expr, status, cleval_status_str((cleval_status)status),
                cleval_last_error());
    _fail(file, line);
}

const char *fixture_path(const char *relative)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", CLEVAL_FIXTURES_DIR, relative);
    return path;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *where)
{
    (void)st, (void)type;
    if (where->level > 0) remove(path); /* the folder itself stays */
    return 0;
}

/* Each test program owns CLEVAL_TEST_TMPDIR (<build>/tests/tmp/<program>): emptied, or created,
 * before main() runs, so files a killed earlier run left behind never reach this run's checks
 * (e.g. folder_has_temp_files), and no other program writes there under `ctest -j`. */
__attribute__((constructor)) static void prepare_temp_folder(void)
{
    mkdir(CLEVAL_TEST_TMPDIR, 0755);
    nftw(CLEVAL_TEST_TMPDIR, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *temp_path(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", CLEVAL_TEST_TMPDIR, name);
    return path;
}

char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    size_t got;
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                free(text);
                text = NULL;
                break;
            }
            text = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (text) text[len] = '\0';
    return text;
}

cJSON *load_json(const char *path)
{
    char *text = read_text_file(path);
    if (!text) fail_msg("cannot read %s", path);
    cJSON *json = cJSON_Parse(text);
    free(text);
    if (!json) fail_msg("cannot parse JSON in %s", path);
    return json;
}

static cleval_device *shared_device;

/* Kernel build logs and warnings reach the test output. */
static void log_to_stderr(cleval_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "cleval log (%d): %s\n", (int)level, message);
}

cleval_device *test_device(void)
{
    if (shared_device) return shared_device;
    cleval_log_set(log_to_stderr, CLEVAL_LOG_WARN, NULL);
    uint32_t index;
    assert_ok(cleval_device_resolve(NULL, &index));
    assert_ok(cleval_device_open(index, &shared_device));
    return shared_device;
}

void test_device_release(void)
{
    cleval_device_close(shared_device);
    shared_device = NULL;
}

hid_t h5_create(const char *path)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) fail_msg("cannot create %s", path);
    return file;
}

void h5_write(hid_t file, const char *name, hid_t mem_type, int rank, const hsize_t *dims,
              const void *data, int gzip, const hsize_t *chunk)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) H5Pset_chunk(dcpl, rank, chunk);
    if (gzip > 0) H5Pset_deflate(dcpl, (unsigned)gzip);
    hid_t dset = H5Dcreate2(file, name, mem_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) fail_msg("cannot create dataset %s", name);
    if (H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        fail_msg("cannot write dataset %s", name);
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

void h5_write_strings(hid_t file, const char *name, const char *const *strings, size_t n)
{
    hsize_t dims[1] = {n};
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0 || H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings) < 0)
        fail_msg("cannot write strings %s", name);
    H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
}

/* Drains a pipe into a heap string. */
static char *slurp(int fd)
{
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    ssize_t got;
    while (text && (got = read(fd, text + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len - 1 == 0) {
            char *grown = realloc(text, cap * 2);
            if (!grown) break;
            text = grown;
            cap *= 2;
        }
    }
    if (text) text[len] = '\0';
    return text;
}

/* argv for execv: the cleval binary, then args (NULL-terminated); free() it. */
static const char **cleval_argv(const char *const *args)
{
    size_t n = 0;
    while (args[n])
        n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    if (!argv) fail_msg("out of memory");
    argv[0] = CLEVAL_BINARY;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    return argv;
}

static unsigned child_time_limit;

void run_cleval_time_limit(unsigned seconds)
{
    child_time_limit = seconds;
}

static uint64_t address_limit;

void set_cleval_address_limit(uint64_t bytes)
{
    address_limit = bytes;
}

/* In the forked child, before exec. */
static void apply_address_limit(void)
{
    struct rlimit r = {.rlim_cur = address_limit, .rlim_max = address_limit};
    if (address_limit && setrlimit(RLIMIT_AS, &r) != 0) _exit(126);
}

int run_cleval(const char *const *args, char **out, char **err)
{
    /* stdout and stderr go to temporary files so neither pipe can fill up and block. */
    char out_name[] = "/tmp/cleval-test-out-XXXXXX", err_name[] = "/tmp/cleval-test-err-XXXXXX";
    int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
    if (out_fd < 0 || err_fd < 0) fail_msg("mkstemp: %s", strerror(errno));
    const char **argv = cleval_argv(args);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        if (child_time_limit) alarm(child_time_limit); /* kept across execv */
        apply_address_limit();
        execv(CLEVAL_BINARY, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    int status = 0;
    waitpid(pid, &status, 0);
    lseek(out_fd, 0, SEEK_SET);
    lseek(err_fd, 0, SEEK_SET);
    char *o = slurp(out_fd), *e = slurp(err_fd);
    close(out_fd);
    close(err_fd);
    unlink(out_name);
    unlink(err_name);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

cJSON *run_cleval_json(const char *const *args, int code)
{
    char *out, *err;
    int got = run_cleval(args, &out, &err);
    if (got != code) fail_msg("exit %d (wanted %d): %s", got, code, err);
    cJSON *json = cJSON_Parse(out);
    if (!json) fail_msg("stdout is not JSON: %.300s", out);
    free(out);
    free(err);
    return json;
}

/* Starts cleval, its stderr into a pipe of `pipe_bytes` (0: the system's default). */
static int spawn_piped(const char *const *args, int *err_fd, int pipe_bytes)
{
    int fds[2];
    if (pipe(fds) != 0) fail_msg("pipe: %s", strerror(errno));
    if (pipe_bytes && fcntl(fds[0], F_SETPIPE_SZ, pipe_bytes) < 0)
        fail_msg("F_SETPIPE_SZ: %s", strerror(errno));
    const char **argv = cleval_argv(args);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execv(CLEVAL_BINARY, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(fds[1]);
    *err_fd = fds[0];
    return (int)pid;
}

int spawn_cleval_held(const char *const *args, int *err_fd)
{
    static const char *const progress[] = {"--progress", "json", "--progress-every", "1"};
    const size_t extra = sizeof progress / sizeof *progress;
    size_t n = 0;
    while (args[n])
        n++;
    const char **held = calloc(n + extra + 1, sizeof *held);
    if (!held) fail_msg("out of memory");
    memcpy(held, args, n * sizeof *held);
    memcpy(held + n, progress, sizeof progress);
    /* One page holds a few dozen progress lines: the child blocks on its next progress write,
     * before its next batch starts, until the test reads. */
    int pid = spawn_piped(held, err_fd, 4096);
    free(held);
    return pid;
}

int spawn_cleval_signalled(const char *const *args, int signal_number, int *err_fd)
{
    sigset_t blocked, before;
    sigemptyset(&blocked);
    sigaddset(&blocked, signal_number);
    sigprocmask(SIG_BLOCK, &blocked, &before); /* the child inherits the mask through exec */
    int pid = spawn_piped(args, err_fd, 0);
    kill(pid, signal_number);
    sigprocmask(SIG_SETMASK, &before, NULL);
    return pid;
}

int interrupt_at_checkpoint(const char *const *args, const char *checkpoint, int signal_number)
{
    remove(checkpoint);
    int fd, pid = spawn_cleval_held(args, &fd), status;
    while (access(checkpoint, F_OK) != 0) {
        if (waitpid((pid_t)pid, &status, WNOHANG) == (pid_t)pid)
            fail_msg("cleval ended (status %d) before %s appeared", status, checkpoint);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    kill(pid, signal_number);
    return finish_cleval(pid, fd, NULL);
}

bool read_until_line(int fd, const char *prefix)
{
    char line[4096];
    size_t len = 0;
    char c;
    while (read(fd, &c, 1) == 1) {
        if (c != '\n') {
            if (len + 1 < sizeof line) line[len++] = c;
            continue;
        }
        line[len] = '\0';
        if (strncmp(line, prefix, strlen(prefix)) == 0) return true;
        len = 0;
    }
    return false;
}

int finish_cleval(int pid, int err_fd, char **err)
{
    char *text = slurp(err_fd);
    close(err_fd);
    if (err)
        *err = text;
    else
        free(text);
    return wait_cleval(pid);
}

bool folder_has_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) found = true;
    if (d) closedir(d);
    return found;
}

int wait_cleval(int pid)
{
    int status = 0;
    waitpid((pid_t)pid, &status, 0);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

void expect_cleval_error(const char *const *args, int code, const char *needle)
{
    char *out, *err;
    int got = run_cleval(args, &out, &err);
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    if (got != code || out[0] || lines != 1 || !strstr(err, needle))
        fail_msg("exit %d (wanted %d), %zu stderr line(s) (wanted 1 with '%s'): %s", got, code,
                 lines, needle, err);
    free(out);
    free(err);
}

int drop_score_metrics(cJSON *report)
{
    static const char *const keys[] = {"top_k",         "log_loss", "brier",
                                       "calibration",   "probabilities", "roc_auc",
                                       "average_precision"};
    int dropped = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        dropped += cJSON_GetObjectItem(report, keys[i]) != NULL;
        cJSON_DeleteItemFromObject(report, keys[i]);
    }
    return dropped;
}
