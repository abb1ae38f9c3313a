/* The program cache (src/device/program_cache.c): a second process is served the binary, a
 * changed option or source is not, a damaged entry falls back to the source (and the kernel
 * still computes the right thing), a read-only cache folder only goes unfilled, and
 * CLEVAL_CACHE_DIR=off writes nothing. In-process checks build a small kernel of the test's own
 * (CLEVAL_KERNEL_DIR) on a freshly opened device each time, as a new process would. */
#include "testutil.h"

#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleval/cache.h"
#include "cleval/device.h"
#include "cleval/program_cache.h"

#define N 37 /* a prime: the launch is not a multiple of any work-group size */

/* y = x * a + OFFSET; OFFSET from the source, or from a -D option. */
static void write_kernel(const char *offset)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/pctest.cl", temp_path("kernels"));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "#ifndef OFFSET\n#define OFFSET %s\n#endif\n"
            "kernel void affine(global float *x, float a, uint n)\n{\n"
            "    uint i = get_global_id(0);\n"
            "    if (i < n) x[i] = x[i] * a + OFFSET;\n}\n",
            offset);
    assert_int_equal(fclose(f), 0);
}

static void use_cache(const char *name)
{
    mkdir(temp_path("kernels"), 0700);
    setenv("CLEVAL_KERNEL_DIR", temp_path("kernels"), 1);
    write_kernel("1.0f");
    setenv("CLEVAL_CACHE_DIR", temp_path(name), 1);
}

/* Opens a fresh device (nothing built in memory yet), runs affine over N values and checks
 * every result against the C reference with `offset`. */
static void run_affine(const char *options, float offset)
{
    uint32_t index;
    cleval_device *dev;
    assert_ok(cleval_device_resolve(NULL, &index));
    assert_ok(cleval_device_open(index, &dev));
    cl_kernel kernel;
    assert_ok(cleval_device_kernel(dev, "pctest", options, "affine", &kernel));
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = 0.5f * (float)(i - 11); /* halves times 2 plus a small integer: exact in float */
    cl_mem mem;
    assert_ok(cleval_device_buffer(dev, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, "x",
                                   &mem));
    cleval_kernel_args a = cleval_kernel_args_begin(kernel, "affine");
    cleval_kernel_arg_mem(&a, mem);
    cleval_kernel_arg_float(&a, 2.0f);
    cleval_kernel_arg_uint(&a, N);
    size_t global = N;
    assert_ok(cleval_kernel_launch(cleval_device_queue(dev), &a, 1, &global, NULL, NULL));
    float y[N];
    assert_int_equal(
        clEnqueueReadBuffer(cleval_device_queue(dev), mem, CL_TRUE, 0, sizeof y, y, 0, NULL, NULL),
        CL_SUCCESS);
    for (int i = 0; i < N; i++)
        assert_true(y[i] == x[i] * 2.0f + offset);
    clReleaseMemObject(mem);
    clReleaseKernel(kernel);
    cleval_device_close(dev);
}

/* The counters' change since `before`. */
static cleval_program_cache_counts since(cleval_program_cache_counts before)
{
    cleval_program_cache_counts now = cleval_program_cache_get_counts();
    return (cleval_program_cache_counts){now.hits - before.hits, now.misses - before.misses,
                                         now.rejected - before.rejected, now.stored - before.stored,
                                         now.marked - before.marked};
}

static void expect_counts(cleval_program_cache_counts got, uint64_t hits, uint64_t misses,
                          uint64_t rejected, uint64_t stored, uint64_t marked)
{
    assert_int_equal(got.hits, hits);
    assert_int_equal(got.misses, misses);
    assert_int_equal(got.rejected, rejected);
    assert_int_equal(got.stored, stored);
    assert_int_equal(got.marked, marked);
}

/* Files in `dir` (0 when it does not exist); the path of the last one in `entry`. */
static int count_files(const char *dir, char *entry, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        n++;
        if (entry) snprintf(entry, cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return n;
}

static void programs_dir(const char *cache, char *out, size_t cap)
{
    snprintf(out, cap, "%s/programs", temp_path(cache));
}

static void test_second_build_is_served_from_cache(void **state)
{
    (void)state;
    use_cache("second");
    cleval_program_cache_counts before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 1, 0, 1, 0);
    char dir[4200], entry[4500];
    programs_dir("second", dir, sizeof dir);
    assert_int_equal(count_files(dir, entry, sizeof entry), 1);

    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 1, 0, 0, 0, 0);
    assert_int_equal(count_files(dir, NULL, 0), 1);
}

static void test_changed_option_or_source_misses(void **state)
{
    (void)state;
    use_cache("changed");
    run_affine(NULL, 1.0f);

    cleval_program_cache_counts before = cleval_program_cache_get_counts();
    run_affine("-DOFFSET=3.0f", 3.0f);
    expect_counts(since(before), 0, 1, 0, 1, 0);

    /* The same name and options over a new source: a stale binary would still add 1. */
    write_kernel("5.0f");
    before = cleval_program_cache_get_counts();
    run_affine(NULL, 5.0f);
    expect_counts(since(before), 0, 1, 0, 1, 0);
    before = cleval_program_cache_get_counts();
    run_affine(NULL, 5.0f);
    expect_counts(since(before), 1, 0, 0, 0, 0);
    /* The option's entry was made from the old source too. */
    before = cleval_program_cache_get_counts();
    run_affine("-DOFFSET=3.0f", 3.0f);
    expect_counts(since(before), 0, 1, 0, 1, 0);
    char dir[4200];
    programs_dir("changed", dir, sizeof dir);
    assert_int_equal(count_files(dir, NULL, 0), 4);
}

static unsigned char *read_entry(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(*size);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, *size, f), *size);
    fclose(f);
    return data;
}

static void write_entry(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* Sets the header's checksum to that of the bytes after it, as a valid entry has. */
static void reseal(unsigned char *data, size_t size)
{
    cleval_program_cache_header header;
    memcpy(&header, data, sizeof header);
    header.checksum =
        cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, data + sizeof header, size - sizeof header);
    memcpy(data, &header, sizeof header);
}

typedef enum damage {
    DAMAGE_TRUNCATED,      /* half the file */
    DAMAGE_HEADER_ONLY,    /* shorter than the header */
    DAMAGE_FLIPPED_BYTE,   /* one byte of the binary changed */
    DAMAGE_OTHER_KEY,      /* a whole, sealed entry of another key */
    DAMAGE_GARBAGE_BINARY, /* header and checksum right, the binary not one the driver takes */
    DAMAGE_COUNT
} damage;

static void apply_damage(const char *path, damage kind)
{
    size_t size;
    unsigned char *data = read_entry(path, &size);
    size_t header = sizeof(cleval_program_cache_header);
    assert_true(size > header + 64);
    switch (kind) {
    case DAMAGE_TRUNCATED: size /= 2; break;
    case DAMAGE_HEADER_ONLY: size = header - 3; break;
    case DAMAGE_FLIPPED_BYTE: data[header + (size - header) / 2] ^= 0x10; break;
    case DAMAGE_OTHER_KEY: {
        cleval_program_cache_header h;
        memcpy(&h, data, sizeof h);
        h.key ^= 1;
        memcpy(data, &h, sizeof h);
        break;
    }
    case DAMAGE_GARBAGE_BINARY:
        for (size_t i = header; i < size; i++)
            data[i] = (unsigned char)(i * 131u + 7u);
        reseal(data, size);
        break;
    default: fail();
    }
    write_entry(path, data, size);
    free(data);
}

static void test_damaged_entry_falls_back_to_source(void **state)
{
    (void)state;
    use_cache("damaged");
    run_affine(NULL, 1.0f);
    char dir[4200], entry[4500];
    programs_dir("damaged", dir, sizeof dir);
    assert_int_equal(count_files(dir, entry, sizeof entry), 1);
    /* Each damage is applied to the good entry the previous rebuild stored in its place. */
    for (int kind = 0; kind < DAMAGE_COUNT; kind++) {
        apply_damage(entry, (damage)kind);
        cleval_program_cache_counts before = cleval_program_cache_get_counts();
        run_affine(NULL, 1.0f);
        expect_counts(since(before), 0, 1, 1, 1, 0);
        assert_int_equal(count_files(dir, NULL, 0), 1);
    }
    cleval_program_cache_counts before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 1, 0, 0, 0, 0);
}

/* Writes y and pred of `n` samples over 3 classes; returns the correct ones. */
static int write_predictions(const char *path, int n)
{
    int32_t y[101], pred[101];
    int correct = 0;
    assert_true(n <= 101);
    for (int i = 0; i < n; i++) {
        y[i] = i % 3;
        pred[i] = (i % 7 == 0) ? (i + 1) % 3 : i % 3;
        correct += y[i] == pred[i];
    }
    hid_t file = h5_create(path);
    hsize_t dims = (hsize_t)n;
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &dims, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &dims, pred, 0, NULL);
    H5Fclose(file);
    return correct;
}

#define SKIPPED 77 /* the child's exit code when user nobody cannot run the test's cleval */

/* Runs `cleval metrics --verbose` on `data` with the cache in `cache`; as root, as user nobody
 * (to whom `cache` is then given), since root writes into a read-only folder all the same.
 * Returns the exit code; stdout (the JSON report) and stderr go to the files named. */
static int run_metrics_as_owner(const char *data, const char *cache, const char *out_path,
                                const char *err_path)
{
    const uid_t nobody = 65534;
    char pocl_cache[4200];
    snprintf(pocl_cache, sizeof pocl_cache, "%s", temp_path("pocl_nobody"));
    if (geteuid() == 0) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "chown -R %u:%u '%s' && mkdir -p '%s' && chown %u '%s'",
                 (unsigned)nobody, (unsigned)nobody, cache, pocl_cache, (unsigned)nobody,
                 pocl_cache);
        assert_int_equal(system(cmd), 0);
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0) _exit(120);
        dup2(out, 1);
        dup2(err, 2);
        if (geteuid() == 0) {
            /* PoCL keeps its own cache under $HOME unless told: give nobody a writable one. */
            setenv("POCL_CACHE_DIR", pocl_cache, 1);
            if (setgid(nobody) != 0 || setuid(nobody) != 0) _exit(121);
            /* A build under a folder only root may enter (/root): nobody cannot run it. */
            if (access(CLEVAL_BINARY, X_OK) != 0 || access(data, R_OK) != 0) _exit(SKIPPED);
        }
        setenv("CLEVAL_CACHE_DIR", cache, 1);
        unsetenv("CLEVAL_KERNEL_DIR");
        execl(CLEVAL_BINARY, CLEVAL_BINARY, "metrics", "--data", data, "--json", "-", "--verbose",
              (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIPPED) skip();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_accuracy(const char *out_path, int correct, int n)
{
    cJSON *report = load_json(out_path);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == (double)correct / n);
    cJSON_Delete(report);
}

static void test_read_only_folder_still_works(void **state)
{
    (void)state;
    unsetenv("CLEVAL_KERNEL_DIR");
    char data[4200], out[4200], err[4200];
    snprintf(data, sizeof data, "%s", temp_path("pred.h5"));
    snprintf(out, sizeof out, "%s", temp_path("out.json"));
    snprintf(err, sizeof err, "%s", temp_path("err.txt"));
    int correct = write_predictions(data, 101);

    /* An empty cache that cannot be written: programs come from source, nothing is stored. */
    char cache[4200], programs[4300];
    snprintf(cache, sizeof cache, "%s", temp_path("readonly_empty"));
    snprintf(programs, sizeof programs, "%s/programs", cache);
    assert_int_equal(mkdir(cache, 0700), 0);
    assert_int_equal(mkdir(programs, 0500), 0);
    assert_int_equal(chmod(cache, 0500), 0);
    assert_int_equal(run_metrics_as_owner(data, cache, out, err), 0);
    expect_accuracy(out, correct, 101);
    assert_int_equal(count_files(programs, NULL, 0), 0);
    char *log = read_text_file(err);
    assert_non_null(strstr(log, "built kernels/histogram.cl"));
    free(log);

    /* Filled, then made read-only: the entries still serve, and stay as they were. */
    snprintf(cache, sizeof cache, "%s", temp_path("readonly_filled"));
    snprintf(programs, sizeof programs, "%s/programs", cache);
    setenv("CLEVAL_CACHE_DIR", cache, 1);
    char *args[] = {"metrics", "--data", data, "--json", "-", NULL};
    cJSON_Delete(run_cleval_json((const char *const *)args, 0));
    int entries = count_files(programs, NULL, 0);
    assert_true(entries >= 1);
    assert_int_equal(chmod(programs, 0500), 0);
    assert_int_equal(chmod(cache, 0500), 0);
    assert_int_equal(run_metrics_as_owner(data, cache, out, err), 0);
    expect_accuracy(out, correct, 101);
    assert_int_equal(count_files(programs, NULL, 0), entries);
    log = read_text_file(err);
    assert_non_null(strstr(log, "from the program cache"));
    assert_null(strstr(log, "built kernels/"));
    free(log);
    /* Writable again, so that the next run can empty the test's folder. */
    if (geteuid() != 0) {
        chmod(cache, 0700);
        chmod(programs, 0700);
        chmod(temp_path("readonly_empty"), 0700);
        chmod(temp_path("readonly_empty/programs"), 0700);
    }
}

static void test_off_writes_nothing(void **state)
{
    (void)state;
    use_cache("unused");
    setenv("CLEVAL_CACHE_DIR", "off", 1);
    assert_int_equal(mkdir(temp_path("home"), 0700), 0);
    assert_int_equal(mkdir(temp_path("xdg"), 0700), 0);
    setenv("HOME", temp_path("home"), 1);
    setenv("XDG_CACHE_HOME", temp_path("xdg"), 1);
    cleval_program_cache_counts before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 2, 0, 0, 0);
    /* PoCL may keep its own cache under these; cleval's folder must not appear. */
    assert_int_equal(access(temp_path("home/.cache/cleval"), F_OK), -1);
    assert_int_equal(access(temp_path("xdg/cleval"), F_OK), -1);
    assert_int_equal(access(temp_path("unused"), F_OK), -1);
}

static bool device_is_pocl(void)
{
    uint32_t index, n;
    cleval_device_info *infos;
    assert_ok(cleval_device_resolve(NULL, &index));
    assert_ok(cleval_device_list(&infos, &n));
    bool pocl = strstr(infos[index].platform, "Portable Computing Language") != NULL;
    free(infos);
    return pocl;
}

/* PoCL with its own kernel cache on: fetching a binary compiles every kernel of the program
 * again, so the first build from source of a key leaves only a marker entry, the second stores
 * the binary, and the third process loads it; a new option set starts over, and a damaged
 * entry of a key built before is replaced at once. Every run checks the kernel's results. */
static void test_pocl_cache_stores_on_second_build(void **state)
{
    (void)state;
    if (!device_is_pocl()) skip();
    use_cache("pocl");
    setenv("POCL_KERNEL_CACHE", "1", 1);
    char dir[4200], entry[4500];
    programs_dir("pocl", dir, sizeof dir);
    cleval_program_cache_counts before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 1, 0, 0, 1);
    assert_int_equal(count_files(dir, entry, sizeof entry), 1);
    assert_non_null(strstr(entry, ".seen"));

    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 1, 0, 1, 0);
    assert_int_equal(count_files(dir, NULL, 0), 2);

    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 1, 0, 0, 0, 0);

    before = cleval_program_cache_get_counts();
    run_affine("-DOFFSET=2.0f", 2.0f);
    expect_counts(since(before), 0, 1, 0, 0, 1);
    assert_int_equal(count_files(dir, NULL, 0), 3);

    /* A marker of another key under this key's name is no marker. */
    char bin[4500], seen[4500];
    unsigned long long key = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".bin")) assert_int_equal(sscanf(e->d_name, "%llx", &key), 1);
    closedir(d);
    snprintf(bin, sizeof bin, "%s/%016llx.bin", dir, key);
    snprintf(seen, sizeof seen, "%s/%016llx.seen", dir, key);
    size_t size;
    unsigned char *marker = read_entry(seen, &size);
    assert_int_equal(size, 16);
    marker[8] ^= 1;
    write_entry(seen, marker, size);
    free(marker);
    apply_damage(bin, DAMAGE_FLIPPED_BYTE);
    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 1, 1, 0, 1);

    /* The marker rewritten: the damaged entry is replaced by the next build. */
    apply_damage(bin, DAMAGE_TRUNCATED);
    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 0, 1, 1, 1, 0);
    before = cleval_program_cache_get_counts();
    run_affine(NULL, 1.0f);
    expect_counts(since(before), 1, 0, 0, 0, 0);
    setenv("POCL_KERNEL_CACHE", "0", 1);
}

int main(void)
{
    /* Under PoCL's own cache cleval stores a binary only at a key's second build (see the last
     * test), unless POCL_KERNEL_CACHE=0. PoCL reads that variable once, when the platform is
     * first listed, and cleval at every build: set after the listing, it keeps PoCL's cache on
     * (its compiles are then cached across this program's runs, so the test stays short) while
     * cleval stores at the first build. */
    uint32_t index;
    if (cleval_device_resolve(NULL, &index) != CLEVAL_OK) return 1;
    setenv("POCL_KERNEL_CACHE", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_build_is_served_from_cache),
        cmocka_unit_test(test_changed_option_or_source_misses),
        cmocka_unit_test(test_damaged_entry_falls_back_to_source),
        cmocka_unit_test(test_read_only_folder_still_works),
        cmocka_unit_test(test_off_writes_nothing),
        cmocka_unit_test(test_pocl_cache_stores_on_second_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
