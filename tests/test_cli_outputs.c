/* Outputs never destroy inputs: every command refuses, before any work, an output (--json,
 * --save, --checkpoint and the files derived from them) that is one of its inputs or another of
 * its outputs, named by the same path, a symbolic link or a hard link. Temporaries are never
 * reached through a link planted next to the output, and the temporaries of killed runs are
 * removed while those of live ones are kept. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleval/output.h"

typedef char path_buf[4096];

/* The whole content of a file (NULL when it cannot be read); *len gets its size. */
static char *read_bytes(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *bytes = malloc(cap);
    while (bytes && (got = fread(bytes + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) bytes = realloc(bytes, cap *= 2);
    }
    fclose(f);
    *len = n;
    return bytes;
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *bytes = read_bytes(from, &len);
    FILE *f = fopen(to, "wb");
    if (!bytes || !f || fwrite(bytes, 1, len, f) != len) fail_msg("cannot copy %s to %s", from, to);
    fclose(f);
    free(bytes);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF) fail_msg("cannot write %s", path);
    fclose(f);
}

static void expect_file_equals(const char *path, const char *bytes, size_t len)
{
    size_t got_len;
    char *got = read_bytes(path, &got_len);
    if (!got || got_len != len || memcmp(got, bytes, len) != 0)
        fail_msg("%s changed (%zu bytes, %zu before)", path, got ? got_len : 0, len);
    free(got);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in `dir`, sorted, one per line (a heap string). */
static char *listing(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot list %s", dir);
    char **names = NULL;
    size_t n = 0, total = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
        total += strlen(e->d_name) + 1;
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    char *text = calloc(total, 1);
    for (size_t i = 0; i < n; i++) {
        strcat(strcat(text, names[i]), "\n");
        free(names[i]);
    }
    free(names);
    return text;
}

/* A folder of this program's temporary folder, emptied (it holds no subfolders). */
static const char *fresh_folder(const char *name, path_buf out)
{
    snprintf(out, sizeof(path_buf), "%s", temp_path(name));
    mkdir(out, 0777);
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        path_buf entry;
        snprintf(entry, sizeof entry, "%s/%s", out, e->d_name);
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")))
            unlink(entry);
    }
    if (d) closedir(d);
    return out;
}

static void path_in(path_buf out, const char *folder, const char *name)
{
    int n = snprintf(out, sizeof(path_buf), "%s/%s", folder, name);
    if (n < 0 || (size_t)n >= sizeof(path_buf)) fail_msg("path too long: %s/%s", folder, name);
}

/* ---- Outputs that are inputs ---- */

/* How an output names an input: by its own path, through a symbolic link or a hard link. */
typedef enum { SAME_PATH, SYMLINK, HARD_LINK, N_WAYS } naming;

/* Runs cleval with `args` and expects the refusal of output `what path` as input `role input`,
 * with the input unchanged byte for byte and nothing written to the folder. */
static void expect_refused(const char *folder, const char *const *args, const char *what,
                           const char *output, const char *role, const char *input)
{
    size_t len;
    char *before = read_bytes(input, &len);
    char *names = listing(folder);
    char needle[10000];
    snprintf(needle, sizeof needle,
             "%s %s is the same file as %s %s: refusing to overwrite an input", what, output, role,
             input);
    expect_cleval_error(args, 2, needle);
    expect_file_equals(input, before, len);
    char *names_after = listing(folder);
    if (strcmp(names, names_after) != 0)
        fail_msg("%s %s: the folder changed:\n%s\nbecame\n%s", what, output, names, names_after);
    free(names_after);
    free(names);
    free(before);
}

/* `base` (NULL-terminated) followed by `flag value`, in `args` (32 entries at most). */
static void with_option(const char **args, const char *const *base, const char *flag,
                        const char *value)
{
    size_t n = 0;
    for (; base[n]; n++)
        args[n] = base[n];
    args[n++] = flag;
    args[n++] = value;
    args[n] = NULL;
}

/* Every output flag of a command given every input, in every way of naming it. */
static void expect_every_clash_refused(const char *folder, const char *const *base,
                                       const char *const *roles, const char *const *inputs,
                                       size_t n_inputs, const char *const *flags, size_t n_flags)
{
    path_buf link_path;
    path_in(link_path, folder, "other_name");
    for (size_t i = 0; i < n_inputs; i++)
        for (size_t f = 0; f < n_flags; f++)
            for (int way = 0; way < N_WAYS; way++) {
                const char *output = inputs[i];
                if (way == SYMLINK && symlink(inputs[i], link_path) == 0) output = link_path;
                if (way == HARD_LINK && link(inputs[i], link_path) == 0) output = link_path;
                if (way != SAME_PATH && output != link_path) fail_msg("cannot link %s", inputs[i]);
                const char *args[32];
                with_option(args, base, flags[f], output);
                expect_refused(folder, args, flags[f], output, roles[i], inputs[i]);
                unlink(link_path);
            }
}

static void test_eval_outputs_over_inputs_refused(void **state)
{
    (void)state;
    path_buf folder, model, data;
    fresh_folder("eval_clash", folder);
    path_in(model, folder, "model.onnx");
    path_in(data, folder, "data.h5");
    copy_file(fixture_path("onnx/mlp_softmax.onnx"), model);
    copy_file(fixture_path("onnx/mlp_softmax_io.h5"), data);
    const char *base[] = {"eval", "--model", model, "--data", data, "--quiet", NULL};
    const char *roles[] = {"--model", "--data"}, *inputs[] = {model, data};
    const char *flags[] = {"--json", "--save", "--checkpoint"};
    expect_every_clash_refused(folder, base, roles, inputs, 2, flags, 3);
}

static void test_knn_outputs_over_inputs_refused(void **state)
{
    (void)state;
    path_buf folder, train, data;
    fresh_folder("knn_clash", folder);
    path_in(train, folder, "train.h5");
    path_in(data, folder, "test.h5");
    copy_file(fixture_path("knn/iris_train.h5"), train);
    copy_file(fixture_path("knn/iris_test.h5"), data);
    const char *base[] = {"knn", "--train", train, "--data", data, "-k", "3", "--quiet", NULL};
    const char *roles[] = {"--train", "--data"}, *inputs[] = {train, data};
    const char *flags[] = {"--json", "--save", "--checkpoint"};
    expect_every_clash_refused(folder, base, roles, inputs, 2, flags, 3);
}

static void test_metrics_outputs_over_inputs_refused(void **state)
{
    (void)state;
    path_buf folder, data;
    fresh_folder("metrics_clash", folder);
    path_in(data, folder, "pairs.h5");
    copy_file(fixture_path("metrics/perfect.h5"), data);
    const char *base[] = {"metrics", "--data", data, "--quiet", NULL};
    const char *roles[] = {"--data"}, *inputs[] = {data};
    const char *flags[] = {"--json", "--save", "--checkpoint"};
    expect_every_clash_refused(folder, base, roles, inputs, 1, flags, 3);
}

static void test_compare_drift_merge_outputs_over_inputs_refused(void **state)
{
    (void)state;
    path_buf folder, a, b, ref, cur;
    fresh_folder("compare_clash", folder);
    path_in(a, folder, "a.h5");
    path_in(b, folder, "b.h5");
    path_in(ref, folder, "ref.h5");
    path_in(cur, folder, "cur.h5");
    copy_file(fixture_path("compare/base_a.h5"), a);
    copy_file(fixture_path("compare/base_b.h5"), b);
    copy_file(fixture_path("drift/ref.h5"), ref);
    copy_file(fixture_path("drift/cur.h5"), cur);
    const char *flags[] = {"--json", "--save"};

    const char *compare[] = {"compare", a, b, "--quiet", NULL};
    const char *compare_roles[] = {"input A", "input B"}, *parts[] = {a, b};
    expect_every_clash_refused(folder, compare, compare_roles, parts, 2, flags, 2);

    const char *drift[] = {"drift", ref, cur, "--quiet", NULL};
    const char *drift_roles[] = {"REF", "CUR"}, *drift_inputs[] = {ref, cur};
    expect_every_clash_refused(folder, drift, drift_roles, drift_inputs, 2, flags, 1);

    const char *merge[] = {"merge", a, b, "--quiet", NULL};
    const char *merge_roles[] = {"part", "part"};
    expect_every_clash_refused(folder, merge, merge_roles, parts, 2, flags, 2);
}

/* The files a run derives from its outputs: the partial prediction file kept with checkpoints
 * and --against's second prediction file. */
static void test_derived_outputs_over_inputs_refused(void **state)
{
    (void)state;
    path_buf folder, model, partial, against, save, checkpoint;
    fresh_folder("derived_clash", folder);
    path_in(save, folder, "s.h5");
    path_in(checkpoint, folder, "c.h5");
    path_in(partial, folder, "s.h5.partial");
    copy_file(fixture_path("metrics/perfect.h5"), partial);
    const char *metrics[] = {"metrics", "--data",  partial, "--checkpoint", checkpoint, "--save",
                             save,      "--quiet", NULL};
    expect_refused(folder, metrics, "--save's partial file", partial, "--data", partial);

    path_in(model, folder, "model.onnx");
    path_in(against, folder, "s.h5.against.h5");
    copy_file(fixture_path("onnx/mlp_softmax.onnx"), model);
    copy_file(fixture_path("onnx/mlp_softmax_io.h5"), against);
    const char *eval[] = {"eval", "--model", model, "--data",  against, "--against",
                          "fp16", "--save",  save,  "--quiet", NULL};
    expect_refused(folder, eval, "--against's file", against, "--data", against);
}

/* Under mpirun every rank writes "<save>.rank<r>": a rank's part that is an input stops every
 * rank before any of them writes. */
static void test_mpi_part_over_input_refused(void **state)
{
    (void)state;
    if (system("command -v mpirun >/dev/null 2>&1") != 0) skip();
    path_buf folder, save, data, err_path;
    fresh_folder("mpi_clash", folder);
    path_in(save, folder, "s.h5");
    path_in(data, folder, "s.h5.rank1");
    path_in(err_path, folder, "..");
    strcat(err_path, "/mpi_clash.err");
    copy_file(fixture_path("metrics/perfect.h5"), data);
    size_t len;
    char *before = read_bytes(data, &len);
    char *names = listing(folder);
    char cmd[20000];
    /* Leak checking is off for the ranks, as in the MPI tests: Open MPI's components keep
     * allocations past MPI_Finalize. */
    snprintf(cmd, sizeof cmd,
             "mpirun --oversubscribe --allow-run-as-root -np 2 env ASAN_OPTIONS=detect_leaks=0 "
             "%s metrics --data %s --save %s --quiet >/dev/null 2>%s",
             CLEVAL_BINARY, data, save, err_path);
    int code = system(cmd);
    char *err = read_text_file(err_path);
    char needle[10000];
    snprintf(needle, sizeof needle,
             "--save's part %s is the same file as --data %s: refusing to overwrite an input", data,
             data);
    if (!WIFEXITED(code) || WEXITSTATUS(code) != 2 || !err || !strstr(err, needle))
        fail_msg("mpirun exit %d, wanted 2 and '%s': %s", code, needle, err ? err : "");
    expect_file_equals(data, before, len);
    char *names_after = listing(folder);
    assert_string_equal(names, names_after);
    free(names_after);
    free(names);
    free(err);
    free(before);
}

/* ---- Two outputs naming one file ---- */

static void test_two_outputs_one_file_refused(void **state)
{
    (void)state;
    path_buf folder, data, out, link_path, a, b;
    fresh_folder("twice", folder);
    path_in(data, folder, "pairs.h5");
    path_in(out, folder, "out");
    path_in(link_path, folder, "link");
    copy_file(fixture_path("metrics/perfect.h5"), data);
    char *names = listing(folder);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data, "--json", out, "--save", out, NULL}, 2,
        "refusing to write one file twice");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data, "--checkpoint", out, "--save", out, NULL}, 2,
        "refusing to write one file twice");
    path_buf dotted;
    path_in(dotted, folder, "../twice/out");
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data, "--json", out, "--checkpoint", dotted, NULL}, 2,
        "refusing to write one file twice");
    char *names_after = listing(folder);
    assert_string_equal(names, names_after); /* nothing written */
    free(names_after);
    free(names);

    /* An existing output and a link to it. */
    write_text(out, "previous report\n");
    assert_int_equal(symlink(out, link_path), 0);
    char needle[10000];
    snprintf(needle, sizeof needle,
             "--save %s is the same file as --json %s: refusing to write one file twice", link_path,
             out);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data, "--json", out, "--save", link_path, NULL}, 2,
        needle);
    expect_file_equals(out, "previous report\n", 16);

    path_in(a, folder, "a.h5");
    path_in(b, folder, "b.h5");
    copy_file(fixture_path("compare/base_a.h5"), a);
    copy_file(fixture_path("compare/base_b.h5"), b);
    expect_cleval_error((const char *[]){"compare", a, b, "--json", out, "--save", out, NULL}, 2,
                        "refusing to write one file twice");
    expect_cleval_error((const char *[]){"merge", a, b, "--json", link_path, "--save", out, NULL},
                        2, "refusing to write one file twice");
    expect_file_equals(out, "previous report\n", 16);
}

/* Devices are written in place and are nobody's input: /dev/null as both --data and --json is
 * not a clash (the data is refused for what it holds). */
static void test_devices_are_not_compared(void **state)
{
    (void)state;
    expect_cleval_error(
        (const char *[]){"metrics", "--data", "/dev/null", "--json", "/dev/null", NULL}, 2,
        "/dev/null");
    char *out, *err;
    run_cleval((const char *[]){"metrics", "--data", "/dev/null", "--json", "/dev/null", NULL},
               &out, &err);
    assert_null(strstr(err, "same file"));
    free(out);
    free(err);
}

/* /dev/stdout sent to a regular file is still written in place: a temporary renamed over it
 * would replace the link /dev/stdout itself. HDF5 refuses it. */
static void test_dev_stdout_to_a_file_written_in_place(void **state)
{
    (void)state;
    path_buf folder, data;
    fresh_folder("dev_stdout", folder);
    path_in(data, folder, "pairs.h5");
    copy_file(fixture_path("metrics/perfect.h5"), data);
    struct stat before, after;
    assert_int_equal(lstat("/dev/stdout", &before), 0);
    char *out, *err;
    /* run_cleval sends stdout to a regular file. */
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", data, "--json", "/dev/stdout",
                                                 "--quiet", NULL},
                                &out, &err),
                     0);
    assert_non_null(strstr(out, "weighted avg"));
    free(out);
    free(err);
    expect_cleval_error(
        (const char *[]){"metrics", "--data", data, "--save", "/dev/stdout", "--quiet", NULL}, 2,
        "--save /dev/stdout: not a regular file");
    assert_int_equal(lstat("/dev/stdout", &after), 0);
    assert_true(S_ISLNK(after.st_mode));
    assert_int_equal(before.st_ino, after.st_ino);
}

/* ---- Temporaries ---- */

/* A process id that no process has: a child's, once it exited and was reaped. */
static long dead_pid(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status;
    waitpid(pid, &status, 0);
    return (long)pid;
}

/* The name of a temporary of `final_path` that process `pid` of this host would make, with
 * `random` (16 hex digits) as its random part. */
static void temp_name(path_buf out, const char *final_path, long pid, const char *random)
{
    size_t n = cleval_output_temp_prefix(final_path, pid, out, sizeof(path_buf));
    snprintf(out + n, sizeof(path_buf) - n, "%s", random);
}

static bool is_link_to(const char *path, const char *target)
{
    struct stat st;
    char got[4096];
    ssize_t n = readlink(path, got, sizeof got - 1);
    if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode) || n < 0) return false;
    got[n] = '\0';
    return strcmp(got, target) == 0;
}

/* Runs cleval with `args` (stdout and stderr to /dev/null) from a child that first plants, at
 * the predictable temporary name of each of `outputs` ("<output>.tmp.<pid>", the pid cleval
 * runs with after exec), a symbolic link to `victim`. Returns the exit code. */
static int run_with_planted_links(const char *const *args, const char *const *outputs,
                                  size_t n_outputs, const char *victim)
{
    const char *argv[40] = {CLEVAL_BINARY};
    for (size_t i = 0; args[i]; i++)
        argv[i + 1] = args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < n_outputs; i++) {
            char name[4200];
            snprintf(name, sizeof name, "%s.tmp.%ld", outputs[i], (long)getpid());
            if (symlink(victim, name) != 0) _exit(126);
        }
        FILE *null = fopen("/dev/null", "w");
        dup2(fileno(null), 1);
        dup2(fileno(null), 2);
        execv(CLEVAL_BINARY, (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Removes every entry of `folder` whose name starts with `prefix`, after checking each one is
 * a link to `victim` that nobody followed. */
static size_t remove_planted_links(const char *folder, const char *prefix, const char *victim)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    size_t n = 0;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        path_buf entry;
        path_in(entry, folder, e->d_name);
        if (!is_link_to(entry, victim)) fail_msg("%s is not the planted link", entry);
        unlink(entry);
        n++;
    }
    if (d) closedir(d);
    return n;
}

static const char victim_text[] = "precious: no output may ever land here\n";

/* A link planted where the temporary used to be (<final>.tmp.<pid>), or where the partial file
 * of a run with checkpoints goes, or where a dead process's temporary would be, is never
 * followed: the file it points to stays as it was and the outputs are written correctly. */
static void test_planted_links_never_followed(void **state)
{
    (void)state;
    path_buf folder, victim, data, save, json, checkpoint, partial, a, b, flips, stale;
    fresh_folder("planted", folder);
    path_in(victim, folder, "victim.txt");
    path_in(data, folder, "pairs.h5");
    path_in(save, folder, "out.h5");
    path_in(json, folder, "out.json");
    path_in(checkpoint, folder, "c.h5");
    path_in(a, folder, "a.h5");
    path_in(b, folder, "b.h5");
    path_in(flips, folder, "flips.h5");
    write_text(victim, victim_text);
    copy_file(fixture_path("metrics/perfect.h5"), data);
    copy_file(fixture_path("compare/base_a.h5"), a);
    copy_file(fixture_path("compare/base_b.h5"), b);
    /* Links at the names a gone process of this host would have used: not its temporaries
     * (they are links), so the clean-up must leave them, and never follow them. */
    long dead = dead_pid();
    const char *const finals[] = {save, json, checkpoint, flips};
    for (size_t i = 0; i < 4; i++) {
        temp_name(stale, finals[i], dead, "0123456789abcdef");
        assert_int_equal(symlink(victim, stale), 0);
    }
    path_in(partial, folder, "out.h5.partial");
    assert_int_equal(symlink(victim, partial), 0);

    const char *metrics[] = {"metrics", "--data",  data,           "--save",   save,
                             "--json",  json,      "--checkpoint", checkpoint, "--checkpoint-every",
                             "10",      "--batch", "10",           "--quiet",  NULL};
    assert_int_equal(run_with_planted_links(metrics, finals, 3, victim), 0);
    const char *compare[] = {"compare", a, b, "--save", flips, "--quiet", NULL};
    assert_int_equal(run_with_planted_links(compare, finals + 3, 1, victim),
                     1); /* the flip gate fails */

    expect_file_equals(victim, victim_text, strlen(victim_text));
    cJSON *report = load_json(json);
    assert_true(cJSON_GetObjectItem(report, "accuracy")->valuedouble == 1.0);
    cJSON_Delete(report);
    struct stat st;
    for (size_t i = 0; i < 4; i++) {
        if (i == 2) continue; /* the checkpoint is removed once the run is done */
        assert_int_equal(lstat(finals[i], &st), 0);
        assert_true(S_ISREG(st.st_mode));
    }
    hid_t file = H5Fopen(save, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    int32_t pred[100], y[100];
    hid_t d = H5Dopen2(file, "pred", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) >= 0);
    H5Dclose(d);
    d = H5Dopen2(file, "y", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(d);
    H5Fclose(file);
    assert_memory_equal(pred, y, sizeof y); /* perfect.h5: every prediction right */
    file = H5Fopen(flips, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_true(H5Aexists(file, "n_flips") > 0);
    H5Fclose(file);

    /* The partial file replaced the link planted under its name, which became out.h5. Every
     * other planted link is still there, a link to the victim, and no temporary is left. */
    assert_int_equal(lstat(partial, &st), -1);
    size_t links = 0;
    for (size_t i = 0; i < 4; i++) {
        const char *slash = strrchr(finals[i], '/');
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
        links += remove_planted_links(folder, prefix, victim);
    }
    assert_int_equal(links, 4 + 4);
}

/* A run killed by SIGKILL leaves its temporary; the next run writing the same file removes the
 * temporaries of gone processes of this host (and says so with --verbose), and keeps those of
 * live processes, of other hosts, and anything that is not a regular file. */
static void test_stale_temporaries_removed(void **state)
{
    (void)state;
    path_buf folder, data, save, victim, gone, live, other_host, link_path;
    fresh_folder("stale", folder);
    path_in(data, folder, "pairs.h5");
    path_in(save, folder, "out.h5");
    path_in(victim, folder, "victim.txt");
    copy_file(fixture_path("metrics/perfect.h5"), data);
    write_text(victim, victim_text);
    long dead = dead_pid();
    temp_name(gone, save, dead, "00000000000000aa");
    temp_name(live, save, (long)getpid(), "00000000000000bb");
    temp_name(link_path, save, dead, "00000000000000cc");
    /* The same name with another host's tag. */
    temp_name(other_host, save, dead, "00000000000000dd");
    char *tag = other_host + strlen(save) + strlen(".tmp.") + 1;
    tag = strchr(tag, '.') + 1;
    memcpy(tag, tag[0] == 'f' ? "00000000" : "ffffffff", 8);
    write_text(gone, "left by a killed run\n");
    write_text(live, "a live run's\n");
    write_text(other_host, "another host's\n");
    assert_int_equal(symlink(victim, link_path), 0);

    char *out, *err;
    assert_int_equal(run_cleval((const char *[]){"metrics", "--data", data, "--save", save,
                                                 "--verbose", "--quiet", NULL},
                                &out, &err),
                     0);
    const char *gone_name = strrchr(gone, '/') + 1;
    if (!strstr(err, "removed") || !strstr(err, gone_name))
        fail_msg("no INFO line on removing %s: %s", gone_name, err);
    free(out);
    free(err);
    assert_int_equal(access(gone, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    expect_file_equals(live, "a live run's\n", 13);
    expect_file_equals(other_host, "another host's\n", 15);
    assert_true(is_link_to(link_path, victim));
    expect_file_equals(victim, victim_text, strlen(victim_text));
    unlink(live);
    unlink(other_host);
    unlink(link_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_outputs_over_inputs_refused),
        cmocka_unit_test(test_knn_outputs_over_inputs_refused),
        cmocka_unit_test(test_metrics_outputs_over_inputs_refused),
        cmocka_unit_test(test_compare_drift_merge_outputs_over_inputs_refused),
        cmocka_unit_test(test_derived_outputs_over_inputs_refused),
        cmocka_unit_test(test_mpi_part_over_input_refused),
        cmocka_unit_test(test_two_outputs_one_file_refused),
        cmocka_unit_test(test_devices_are_not_compared),
        cmocka_unit_test(test_dev_stdout_to_a_file_written_in_place),
        cmocka_unit_test(test_planted_links_never_followed),
        cmocka_unit_test(test_stale_temporaries_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
