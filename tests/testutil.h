/* Helpers shared by the cmocka tests: fixture paths, JSON fixtures, small HDF5 files written on
 * the fly, the default test device, and running the cleval binary to check exit codes. */
#ifndef CLEVAL_TESTUTIL_H
#define CLEVAL_TESTUTIL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <hdf5.h>

#include "cleval/device.h"

/* Fails the current test with the library's last error when `status` is not CLEVAL_OK. */
#define assert_ok(status) \
    _assert_ok((status), #status, __FILE__, __LINE__)
void _assert_ok(int status, const char *expr, const char *file, int line);

/* "<fixtures>/<relative>" in a static buffer (valid until the next call). */
const char *fixture_path(const char *relative);

/* "<build>/tests/tmp/<program>/<name>" in a static buffer (valid until the next call). The
 * folder, CLEVAL_TEST_TMPDIR, is this test program's own and starts empty (testutil.c). */
const char *temp_path(const char *name);

/* Parses a JSON file; fails the test when it cannot. Free with cJSON_Delete. */
cJSON *load_json(const char *path);

/* Removes the score-based metrics (top_k, log_loss, brier, calibration, probabilities,
 * roc_auc, average_precision) from a
 * report, for comparisons with sharded, merged or MPI runs, which do not report them; returns
 * how many were there. */
int drop_score_metrics(cJSON *report);

/* The device the tests run on (CLEVAL_DEVICE or the default), opened once per process. */
cleval_device *test_device(void);
void test_device_release(void);

/* Writes a dataset of `rank` dims and memory type `mem_type` into an HDF5 file opened or
 * created by h5_create(); a `chunk` shape makes it chunked, and gzip > 0 (which needs one)
 * compresses it with that level. */
hid_t h5_create(const char *path);
void h5_write(hid_t file, const char *name, hid_t mem_type, int rank, const hsize_t *dims,
              const void *data, int gzip, const hsize_t *chunk);
void h5_write_strings(hid_t file, const char *name, const char *const *strings, size_t n);

/* The cleval processes started from now on run under this address-space limit (RLIMIT_AS, in
 * bytes; 0: none). Sanitizers reserve terabytes of address space, so tests using it skip
 * under them (ADDRESS_LIMITS_WORK). */
void set_cleval_address_limit(uint64_t bytes);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ADDRESS_LIMITS_WORK 0
#else
#define ADDRESS_LIMITS_WORK 1
#endif

/* Runs the cleval binary with `args` (a NULL-terminated list), capturing stdout and stderr into
 * heap strings (free them) and returning its exit code (-1 when it died from a signal). */
int run_cleval(const char *const *args, char **out, char **err);
/* From now on, a cleval that run_cleval starts is killed (SIGALRM, run_cleval returns -1) after
 * `seconds`; 0, the default, sets no limit. For checks whose regression would block forever. */
void run_cleval_time_limit(unsigned seconds);
/* run_cleval, failing the test unless it exits with `code` and prints JSON on stdout: the
 * parsed report (cJSON_Delete). */
cJSON *run_cleval_json(const char *const *args, int code);

/* Runs cleval and fails the test unless it exits with `code`, prints nothing on stdout, and
 * prints exactly one line on stderr that contains `needle`. */
void expect_cleval_error(const char *const *args, int code, const char *needle);

/* The exit code of a spawned cleval (128 + N for signal N), once it ends. */
int wait_cleval(int pid);

/* Both start the cleval binary in the background, its stdout going to /dev/null and its stderr
 * to a pipe whose reading end is *err_fd, and return its pid.
 *
 * spawn_cleval_held adds "--progress json --progress-every 1" to `args` (a JSON line on stderr
 * at every batch boundary) and makes the pipe one page (F_SETPIPE_SZ): while the test leaves
 * *err_fd unread, the run blocks within its first few dozen batches, before the next one
 * starts. So a run of more batches than that cannot finish, however loaded the machine, until
 * the test reads: signal it first, then read. */
int spawn_cleval_held(const char *const *args, int *err_fd);

/* spawn_cleval_signalled sends `signal_number` before cleval starts: the child inherits it
 * blocked and pending, so it lands when cleval installs its stop handlers (which unblock it),
 * before any work, however loaded the machine. */
int spawn_cleval_signalled(const char *const *args, int signal_number, int *err_fd);

/* Removes `checkpoint`, starts a checkpointed run held (spawn_cleval_held), waits until its
 * first checkpoint exists, sends `signal_number` and returns the exit code (128 + N when the
 * signal kills it). The checkpoint interval must come within the run's first few batches. */
int interrupt_at_checkpoint(const char *const *args, const char *checkpoint, int signal_number);

/* Reads stderr lines from fd until one starts with `prefix`; false at the end of the stream. */
bool read_until_line(int fd, const char *prefix);

/* Reads the rest of a spawned cleval's stderr into *err (a heap string: free it), closes fd,
 * and returns its exit code (128 + N for signal N). */
int finish_cleval(int pid, int err_fd, char **err);

/* Whether the folder holds a temporary file (a name with ".tmp."). */
bool folder_has_temp_files(const char *dir);

/* Reads a whole file into a heap string (NULL when it cannot). */
char *read_text_file(const char *path);

#endif
