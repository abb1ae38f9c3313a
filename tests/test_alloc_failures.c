/* Out of memory at every turn: each host allocation cleval makes and each device buffer it creates
 * fails once, in turn, during an `eval`, a `knn` (with --errors) and a `metrics` run that write
 * their JSON report and prediction file. Every such run must end with exit 4 (out of host or
 * device memory: the refused buffer comes back as CL_MEM_OBJECT_ALLOCATION_FAILURE), exactly one
 * line on stderr, nothing on stdout, no file left behind, and (in the sanitizer build, where
 * LeakSanitizer checks each run at exit) no leak and no crash.
 *
 * The failures come from faultinject.c, preloaded into the cleval child: a first run lists
 * cleval's call sites (the allocating call and the two calls above it in cleval's code), then
 * one run per site fails that site's first call. Allocations inside the libraries cleval uses
 * (HDF5, cJSON, PoCL, libc's own) are not failed. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ARGS = 24, MAX_SITES = 2048, MAX_REPORT = 1 << 16 };

typedef struct scenario {
    const char *name;
    const char *args[MAX_ARGS]; /* cleval's arguments, before --json and --save */
} scenario;

typedef struct site_list {
    char *names[MAX_SITES];
    int n;
} site_list;

/* The run's environment: the injector preloaded and logging to `log`, failing `site` (or
 * nothing). The sanitizer runtime must then accept not being the first library loaded. */
static void set_injection(const char *log, const char *site)
{
    setenv("LD_PRELOAD", CLEVAL_FAULTINJECT, 1);
    setenv("CLEVAL_FAULT_LOG", log, 1);
    if (site)
        setenv("CLEVAL_FAULT_SITE", site, 1);
    else
        unsetenv("CLEVAL_FAULT_SITE");
    static char asan[1024];
    if (!asan[0]) {
        const char *old = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", old ? old : "",
                 old && *old ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
    }
}

static void clear_injection(void)
{
    unsetenv("LD_PRELOAD");
    unsetenv("CLEVAL_FAULT_LOG");
    unsetenv("CLEVAL_FAULT_SITE");
}

/* Empties (or creates) the injector's log. */
static void reset_log(const char *log)
{
    FILE *f = fopen(log, "w");
    assert_non_null(f);
    fclose(f);
}

/* The names in the test's temporary folder, sorted, each followed by a space (free it). */
static char *folder_listing(void)
{
    struct dirent **entries;
    int n = scandir(CLEVAL_TEST_TMPDIR, &entries, NULL, alphasort);
    assert_true(n >= 0);
    size_t cap = 1, len = 0;
    for (int i = 0; i < n; i++)
        cap += strlen(entries[i]->d_name) + 1;
    char *listing = calloc(cap, 1);
    assert_non_null(listing);
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(listing + len, "%s ", entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    return listing;
}

/* argv for the scenario: its arguments, then --json JSON --save SAVED. */
static void build_args(const scenario *s, const char *json, const char *saved, const char **args)
{
    int n = 0;
    while (s->args[n])
        args[n] = s->args[n], n++;
    const char *tail[] = {"--json", json, "--save", saved, NULL};
    for (int i = 0; i < 5; i++)
        args[n++] = tail[i];
}

/* The sites the run logged, one per line ("fired" lines excepted). */
static void read_sites(const char *log, site_list *sites)
{
    char *text = read_text_file(log);
    assert_non_null(text);
    sites->n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "fired ", 6) == 0) continue;
        if (sites->n == MAX_SITES) fail_msg("more than %d call sites", MAX_SITES);
        sites->names[sites->n++] = strdup(line);
    }
    free(text);
}

static void free_sites(site_list *sites)
{
    for (int i = 0; i < sites->n; i++)
        free(sites->names[i]);
    sites->n = 0;
}

/* The exit code the run must end with: 4 (out of memory) whether a device buffer or host
 * memory was refused; -1 when the fault did not fire. */
static int expected_exit(const char *log)
{
    char *text = read_text_file(log);
    assert_non_null(text);
    int code = strstr(text, "fired ") ? 4 : -1;
    free(text);
    return code;
}

/* What is wrong with a run whose fault fired ("" when nothing is). */
static void judge_failed_run(int code, int wanted, const char *out, const char *err,
                             const char *before, char *why, size_t size)
{
    size_t lines = 0;
    for (const char *c = err; *c; c++)
        lines += *c == '\n';
    char *after = folder_listing();
    if (code != wanted)
        snprintf(why, size, "exit %d (wanted %d)", code, wanted);
    else if (lines != 1 || strncmp(err, "cleval: ", 8) != 0)
        snprintf(why, size, "%zu stderr lines (wanted one starting 'cleval: ')", lines);
    else if (out[0])
        snprintf(why, size, "output on stdout");
    else if (strcmp(before, after) != 0)
        snprintf(why, size, "left files behind (the folder now holds: %s)", after);
    else
        why[0] = '\0';
    free(after);
}

/* Runs the scenario once per call site of cleval, failing that site; fails the test listing
 * every site whose run went wrong. */
static void run_scenario(const scenario *s)
{
    char log[4096], json[4096], saved[4096];
    snprintf(log, sizeof log, "%s", temp_path("faults.log"));
    snprintf(json, sizeof json, "%s", temp_path("report.json"));
    snprintf(saved, sizeof saved, "%s", temp_path("saved.h5"));
    const char *args[MAX_ARGS + 5];
    build_args(s, json, saved, args);

    reset_log(log);
    set_injection(log, NULL);
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    clear_injection();
    if (code != 0) fail_msg("%s without faults: exit %d: %s", s->name, code, err);
    free(out), free(err);
    remove(json), remove(saved);
    site_list sites;
    read_sites(log, &sites);
    /* Far fewer would mean the injector no longer sees cleval's allocations. */
    if (sites.n < 20) fail_msg("%s: only %d call sites seen", s->name, sites.n);

    char *before = folder_listing();
    char *report = calloc(MAX_REPORT, 1);
    size_t report_len = 0;
    int bad = 0;
    for (int i = 0; i < sites.n; i++) {
        reset_log(log);
        set_injection(log, sites.names[i]);
        code = run_cleval(args, &out, &err);
        clear_injection();
        char why[8192];
        int wanted = expected_exit(log);
        if (wanted >= 0)
            judge_failed_run(code, wanted, out, err, before, why, sizeof why);
        else /* every site was reached by the run without faults, which this one repeats */
            snprintf(why, sizeof why, "the site was not reached (exit %d)", code);
        if (why[0]) {
            bad++;
            report_len += (size_t)snprintf(report + report_len, MAX_REPORT - report_len,
                                           "%s at %s: %s; stderr: %.600s\n", s->name,
                                           sites.names[i], why, err);
            if (report_len >= MAX_REPORT) report_len = MAX_REPORT - 1;
        }
        remove(json), remove(saved);
        free(out), free(err);
    }
    int n_sites = sites.n;
    free_sites(&sites);
    free(before);
    if (bad) {
        print_error("%s", report);
        free(report);
        fail_msg("%s: %d of %d call sites mishandled an allocation failure", s->name, bad, n_sites);
    }
    free(report);
}

/* An eval set for fixtures/onnx/lenet_bn.onnx (3 x 20 x 20 inputs, 4 classes), with labels. */
static const char *write_eval_set(void)
{
    enum { N = 7, C = 3, H = 20, W = 20, D = C * H * W };
    static float x[N * D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 4;
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)((i * 7 + j * 3) % 11) / 11.0f;
    }
    const char *path = temp_path("eval_set.h5");
    hid_t file = h5_create(path);
    hsize_t xdims[4] = {N, C, H, W}, n = N;
    h5_write(file, "X", H5T_NATIVE_FLOAT, 4, xdims, x, 0, NULL);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    H5Fclose(file);
    return path;
}

static void test_eval(void **state)
{
    (void)state;
    char model[4096], data[4096];
    snprintf(model, sizeof model, "%s", fixture_path("onnx/lenet_bn.onnx"));
    snprintf(data, sizeof data, "%s", write_eval_set());
    /* Conv, BatchNormalization, pooling and Gemm, in int8: its calibration pass and quantised
     * kernels allocate on top of everything an fp32 run does. Batches of 3 over 7 samples: the
     * per-batch allocations run, the last on a short batch. */
    run_scenario(&(scenario){"eval",
                             {"eval", "--model", model, "--data", data, "--batch", "3",
                              "--precision", "int8", "--calibration", "4", "--quiet", NULL}});
}

static void test_knn(void **state)
{
    (void)state;
    char train[4096], test[4096];
    snprintf(train, sizeof train, "%s", fixture_path("knn/iris_train.h5"));
    snprintf(test, sizeof test, "%s", fixture_path("knn/iris_test.h5"));
    run_scenario(&(scenario){
        "knn",
        {"knn", "--train", train, "--data", test, "-k", "3", "--batch", "7", "--errors", "2",
         "--quiet", NULL}});
}

static void test_metrics(void **state)
{
    (void)state;
    char data[4096];
    snprintf(data, sizeof data, "%s", fixture_path("metrics/c10_n997.h5"));
    run_scenario(
        &(scenario){"metrics", {"metrics", "--data", data, "--batch", "300", "--quiet", NULL}});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_knn),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
