/* Damaged checkpoints and part files never give a silent wrong answer: a byte flipped anywhere
 * in a real checkpoint or part file either makes --resume or merge exit 2 with one line, or
 * leaves the output identical to the undamaged run's; a valid file stating a wrong state is
 * refused by its checksum; a file declaring a huge matrix is refused before allocating it. */
#include "testutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N_ROWS = 6000, BAD_ROW = 4200, N_CLASSES = 5 };

/* A metrics input of N_ROWS (y, pred) pairs, stored contiguous (so an edit keeps its size);
 * with `bad`, pred[BAD_ROW] is -1, which stops a run there. */
static void write_pairs(const char *path, bool bad)
{
    int32_t *y = malloc(N_ROWS * sizeof *y), *pred = malloc(N_ROWS * sizeof *pred);
    uint64_t s = 777;
    for (int i = 0; i < N_ROWS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (int32_t)((s >> 33) % N_CLASSES);
        pred[i] = (s >> 20) % 10 < 6 ? y[i] : (int32_t)((s >> 40) % N_CLASSES);
    }
    if (bad) pred[BAD_ROW] = -1;
    hsize_t n = N_ROWS;
    hid_t file = h5_create(path);
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    H5Fclose(file);
    free(y);
    free(pred);
}

/* Gives pred[BAD_ROW] a valid class in place, keeping the file's size and modification time:
 * to cleval it is the same input (the job fingerprint holds both). */
static void repair_pairs(const char *path)
{
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "pred", H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t start = BAD_ROW, count = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
    hid_t mem = H5Screate_simple(1, &count, NULL);
    int32_t value = 2;
    assert_true(H5Dwrite(dset, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &value) >= 0);
    H5Sclose(mem), H5Sclose(space), H5Dclose(dset), H5Fclose(file);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

static unsigned char *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(*size ? *size : 1);
    assert_int_equal(fread(bytes, 1, *size, f), *size);
    fclose(f);
    return bytes;
}

static void write_bytes(const char *path, const unsigned char *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    size_t size;
    unsigned char *bytes = read_bytes(from, &size);
    write_bytes(to, bytes, size);
    free(bytes);
}

static bool same_files(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = read_bytes(a, &na), *y = read_bytes(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The report without what differs between runs of the same job: timing and device; without
 * the score metrics too when `unscored` (a merge of parts reports none). */
static char *results_text_of(const char *json_path, bool unscored)
{
    cJSON *report = load_json(json_path);
    if (unscored) drop_score_metrics(report);
    cJSON_DeleteItemFromObject(report, "timing");
    cJSON_DeleteItemFromObject(report, "timing_breakdown");
    cJSON_DeleteItemFromObject(report, "device");
    char *text = cJSON_PrintUnformatted(report);
    cJSON_Delete(report);
    return text;
}

static char *results_text(const char *json_path)
{
    return results_text_of(json_path, false);
}

static size_t count_lines(const char *text)
{
    size_t lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    return lines;
}

/* One damaged run: exit 2 with one line holding `refusal`, or exit 0 with the report and the
 * saved file of the undamaged run. Returns true when it was refused. */
static bool check_damaged_run(const char *const *args, size_t position, const char *refusal,
                              const char *json, const char *saved, const char *ref_json,
                              const char *ref_saved)
{
    remove(json);
    remove(saved);
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    bool refused = code == 2 && count_lines(err) == 1 && strstr(err, refusal);
    if (code == 0) {
        char *got = results_text(json), *want = results_text(ref_json);
        if (strcmp(got, want) != 0 || !same_files(saved, ref_saved))
            fail_msg("byte %zu flipped: exit 0 with a different result:\n%.400s\n%.400s", position,
                     got, want);
        free(got);
        free(want);
    } else if (!refused) {
        fail_msg("byte %zu flipped: exit %d (wanted 2 with one line '%s...'): %s", position, code,
                 refusal, err);
    }
    free(out);
    free(err);
    return refused;
}

/* Flips one byte at `positions` evenly spaced positions of `victim` (restored from `pristine`,
 * with `restore` copied back from `restore_pristine` before each run when not NULL) and checks
 * each run. */
static void flip_campaign(const char *const *args, const char *victim, const char *pristine,
                          const char *restore, const char *restore_pristine, size_t positions,
                          const char *refusal, const char *json, const char *saved,
                          const char *ref_json, const char *ref_saved)
{
    size_t size;
    unsigned char *bytes = read_bytes(pristine, &size);
    size_t step = size / positions ? size / positions : 1, refused = 0, runs = 0;
    for (size_t pos = 0; pos < size; pos += step, runs++) {
        bytes[pos] ^= 0x5a;
        write_bytes(victim, bytes, size);
        bytes[pos] ^= 0x5a;
        if (restore) copy_file(restore_pristine, restore);
        refused += check_damaged_run(args, pos, refusal, json, saved, ref_json, ref_saved);
    }
    free(bytes);
    /* Nearly every flip is caught: only the few bytes nothing reads may pass. */
    assert_true(refused * 10 >= runs * 9);
}

typedef struct resume_setup {
    char pairs[4096], checkpoint[4096], ck_pristine[4096], partial[4200], partial_pristine[4096],
        saved[4096], json[4096], ref_saved[4096], ref_json[4096];
} resume_setup;

/* A real checkpoint of a run stopped at BAD_ROW (its last checkpoint is at row 4000) and its
 * partial prediction file, kept pristine; the input is then repaired, and resuming from the
 * pristine pair gives the reference report and file. The pair is left in place to resume. */
static void make_checkpoint(resume_setup *s)
{
    snprintf(s->pairs, sizeof s->pairs, "%s", temp_path("ck_pairs.h5"));
    snprintf(s->checkpoint, sizeof s->checkpoint, "%s", temp_path("ck.h5"));
    snprintf(s->ck_pristine, sizeof s->ck_pristine, "%s", temp_path("ck_pristine.h5"));
    snprintf(s->saved, sizeof s->saved, "%s", temp_path("ck_saved.h5"));
    snprintf(s->partial, sizeof s->partial, "%s.partial", s->saved);
    snprintf(s->partial_pristine, sizeof s->partial_pristine, "%s", temp_path("ck_partial.h5"));
    snprintf(s->json, sizeof s->json, "%s", temp_path("ck_saved.json"));
    snprintf(s->ref_saved, sizeof s->ref_saved, "%s", temp_path("ck_ref.h5"));
    snprintf(s->ref_json, sizeof s->ref_json, "%s", temp_path("ck_ref.json"));
    remove(s->checkpoint);
    remove(s->partial);
    write_pairs(s->pairs, true);
    const char *args[] = {"metrics", "--data",       s->pairs,      "--batch",
                          "500",     "--save",       s->saved,      "--json",
                          s->json,   "--checkpoint", s->checkpoint, "--checkpoint-every",
                          "1000",    NULL,           NULL};
    expect_cleval_error(args, 2, "has label -1");
    copy_file(s->checkpoint, s->ck_pristine);
    copy_file(s->partial, s->partial_pristine);
    repair_pairs(s->pairs);
    args[13] = "--resume";
    assert_int_equal(run_cleval(args, NULL, NULL), 0);
    rename(s->saved, s->ref_saved);
    rename(s->json, s->ref_json);
    /* The reference is the uninterrupted run's. */
    const char *whole[] = {"metrics", "--data", s->pairs, "--save",
                           s->saved,  "--json", s->json,  NULL};
    assert_int_equal(run_cleval(whole, NULL, NULL), 0);
    char *a = results_text(s->json), *b = results_text(s->ref_json);
    assert_string_equal(a, b);
    free(a);
    free(b);
    copy_file(s->ck_pristine, s->checkpoint);
    copy_file(s->partial_pristine, s->partial);
}

static const char *const *resume_args(const resume_setup *s)
{
    static const char *args[16];
    const char *list[] = {"metrics", "--data",       s->pairs,      "--batch",
                          "500",     "--save",       s->saved,      "--json",
                          s->json,   "--checkpoint", s->checkpoint, "--checkpoint-every",
                          "1000",    "--resume",     NULL};
    memcpy(args, list, sizeof list);
    return args;
}

static void test_flipped_checkpoints(void **state)
{
    (void)state;
    resume_setup s;
    make_checkpoint(&s);
    flip_campaign(resume_args(&s), s.checkpoint, s.ck_pristine, s.partial, s.partial_pristine, 100,
                  "is damaged (", s.json, s.saved, s.ref_json, s.ref_saved);
}

typedef struct part_setup {
    char parts[3][4096], pristine[4096], merged[4096], json[4096], ref_merged[4096], ref_json[4096];
} part_setup;

/* Three metrics parts, and their merge as the reference. */
static void make_parts(part_setup *s)
{
    char pairs[4096];
    snprintf(pairs, sizeof pairs, "%s", temp_path("part_pairs.h5"));
    write_pairs(pairs, false);
    for (int i = 0; i < 3; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/3", i);
        snprintf(name, sizeof name, "part%d.h5", i);
        snprintf(s->parts[i], sizeof s->parts[i], "%s", temp_path(name));
        assert_int_equal(run_cleval((const char *[]){"metrics", "--data", pairs, "--shard", shard,
                                                     "--save", s->parts[i], NULL},
                                    NULL, NULL),
                         0);
    }
    snprintf(s->pristine, sizeof s->pristine, "%s", temp_path("part1_pristine.h5"));
    snprintf(s->merged, sizeof s->merged, "%s", temp_path("merged.h5"));
    snprintf(s->json, sizeof s->json, "%s", temp_path("merged.json"));
    snprintf(s->ref_merged, sizeof s->ref_merged, "%s", temp_path("merged_ref.h5"));
    snprintf(s->ref_json, sizeof s->ref_json, "%s", temp_path("merged_ref.json"));
    copy_file(s->parts[1], s->pristine);
    assert_int_equal(
        run_cleval((const char *[]){"merge", s->parts[0], s->parts[1], s->parts[2], "--json",
                                    s->ref_json, "--save", s->ref_merged, NULL},
                   NULL, NULL),
        0);
}

static void test_flipped_parts(void **state)
{
    (void)state;
    part_setup s;
    make_parts(&s);
    const char *args[] = {"merge", s.parts[0], s.parts[1], s.parts[2], "--json",
                          s.json,  "--save",   s.merged,   NULL};
    flip_campaign(args, s.parts[1], s.pristine, NULL, NULL, 400, "is damaged (", s.json, s.merged,
                  s.ref_json, s.ref_merged);
}

/* Drops a file's seal (its last 32 bytes, "\ncleval-fnv1a64:" and 16 hex digits), as
 * rewriting it with HDF5 may: what is left is a valid HDF5 file, checked by its checksum
 * attribute alone. */
static void drop_seal(const char *path)
{
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    if (size > 32 && memcmp(bytes + size - 32, "\ncleval-fnv1a64:", 16) == 0)
        assert_int_equal(truncate(path, (off_t)size - 32), 0);
    free(bytes);
}

/* Replaces dataset `name` of an HDF5 file by `cells` ([rows][cols] int64), or by an unwritten
 * one (no storage) when `cells` is NULL. */
static void replace_counts(const char *path, const char *name, hsize_t rows, hsize_t cols,
                           const uint64_t *cells)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_true(H5Ldelete(file, name, H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {rows, cols};
    if (cells) {
        h5_write(file, name, H5T_NATIVE_UINT64, 2, dims, cells, 0, NULL);
    } else {
        hid_t space = H5Screate_simple(2, dims, NULL);
        hid_t dset =
            H5Dcreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(dset >= 0);
        H5Dclose(dset);
        H5Sclose(space);
    }
    H5Fclose(file);
}

/* One count moved from one cell to another: the total still adds up, only the checksum can
 * tell. */
static void move_one_count(const char *path, const char *name)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    uint64_t cells[N_CLASSES * N_CLASSES];
    assert_true(H5Dread(dset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cells) >= 0);
    H5Dclose(dset);
    H5Fclose(file);
    assert_true(cells[0] > 0);
    cells[0]--;
    cells[1]++;
    replace_counts(path, name, N_CLASSES, N_CLASSES, cells);
}

static void test_rewritten_counts_are_refused(void **state)
{
    (void)state;
    resume_setup s;
    make_checkpoint(&s);
    move_one_count(s.checkpoint, "counts");
    expect_cleval_error(resume_args(&s), 2,
                        "is damaged (checksum mismatch): delete it, or run without --resume");
    /* The same with the seal dropped: the checksum attribute refuses it. */
    copy_file(s.ck_pristine, s.checkpoint);
    copy_file(s.partial_pristine, s.partial);
    drop_seal(s.checkpoint);
    move_one_count(s.checkpoint, "counts");
    expect_cleval_error(resume_args(&s), 2, "is damaged (checksum mismatch)");

    part_setup p;
    make_parts(&p);
    drop_seal(p.parts[1]);
    move_one_count(p.parts[1], "confusion");
    expect_cleval_error((const char *[]){"merge", p.parts[0], p.parts[1], p.parts[2], NULL}, 2,
                        "is damaged (checksum mismatch): re-run its shard");
}

/* A prediction changed in the partial file of an interrupted run (a valid file, but not the
 * rows the checkpoint counted) is refused on resume, not kept in the saved file. */
static void test_rewritten_partial_rows_are_refused(void **state)
{
    (void)state;
    resume_setup s;
    make_checkpoint(&s);
    hid_t file = H5Fopen(s.partial, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, "pred", H5P_DEFAULT);
    hid_t space = H5Dget_space(dset);
    hsize_t start = 10, count = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
    hid_t mem = H5Screate_simple(1, &count, NULL);
    int32_t value;
    assert_true(H5Dread(dset, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &value) >= 0);
    value = (value + 1) % N_CLASSES;
    assert_true(H5Dwrite(dset, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &value) >= 0);
    H5Sclose(mem), H5Sclose(space), H5Dclose(dset), H5Fclose(file);
    expect_cleval_error(resume_args(&s), 2,
                        "ck_saved.h5.partial is damaged (its rows do not match the checkpoint): "
                        "delete it and the checkpoint, or run without --resume");
}

/* A checkpoint or part file without its seal or checksum (an older cleval's) is refused. */
static void test_files_without_checksum_are_refused(void **state)
{
    (void)state;
    part_setup p;
    make_parts(&p);
    drop_seal(p.parts[2]);
    hid_t file = H5Fopen(p.parts[2], H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Adelete(file, "checksum") >= 0);
    H5Fclose(file);
    expect_cleval_error((const char *[]){"merge", p.parts[0], p.parts[1], p.parts[2], NULL}, 2,
                        "is damaged (no checksum: written by an older cleval): re-run its shard");
}

/* Runs cleval with its address space limited to 512 MiB (not under a sanitizer, whose shadow
 * memory needs terabytes of it). */
static void expect_error_in_512_mib(const char *const *args, const char *needle)
{
#if defined(__SANITIZE_ADDRESS__)
    expect_cleval_error(args, 2, needle);
#else
    struct rlimit old, limited;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    limited = old;
    limited.rlim_cur = 512ull << 20;
    assert_int_equal(setrlimit(RLIMIT_AS, &limited), 0);
    char *out, *err;
    int code = run_cleval(args, &out, &err); /* the child inherits the limit */
    setrlimit(RLIMIT_AS, &old);
    if (code != 2 || count_lines(err) != 1 || !strstr(err, needle))
        fail_msg("exit %d (wanted 2 with '%s'): %s", code, needle, err);
    free(out);
    free(err);
#endif
}

/* A 20,000 x 20,000 counts matrix declared in a file of a few KiB is refused before anything
 * allocates its 3 GiB. */
static void test_huge_declared_counts_are_refused(void **state)
{
    (void)state;
    resume_setup s;
    make_checkpoint(&s);
    drop_seal(s.checkpoint);
    replace_counts(s.checkpoint, "counts", 20000, 20000, NULL);
    struct stat st;
    assert_int_equal(stat(s.checkpoint, &st), 0);
    assert_true(st.st_size < 64 * 1024);
    expect_error_in_512_mib(resume_args(&s),
                            "is damaged ('counts' declares 20000 x 20000 counts the file does not "
                            "hold): delete it, or run without --resume");

    part_setup p;
    make_parts(&p);
    drop_seal(p.parts[0]);
    replace_counts(p.parts[0], "confusion", 20000, 20000, NULL);
    expect_error_in_512_mib(
        (const char *[]){"merge", p.parts[0], p.parts[1], p.parts[2], NULL},
        "is damaged ('confusion' declares 20000 x 20000 counts the file does not hold)");
}

static const char *iris(const char *which)
{
    static char path[2][4096];
    int i = strcmp(which, "train") == 0;
    snprintf(path[i], sizeof path[i], "%s/../../datasets/iris_%s.h5", CLEVAL_FIXTURES_DIR, which);
    return path[i];
}

/* Two devices finish batches, and write them, in any order: the parts' row digests still match
 * their rows (with scores), and the merge equals the whole run. */
static void test_parts_from_two_devices_merge(void **state)
{
    (void)state;
    setenv("POCL_DEVICES", "pthread pthread", 1);
    char whole_json[4096], merged_json[4096], parts[2][4096];
    snprintf(whole_json, sizeof whole_json, "%s", temp_path("knn_whole.json"));
    snprintf(merged_json, sizeof merged_json, "%s", temp_path("knn_merged.json"));
    assert_int_equal(
        run_cleval((const char *[]){"knn", "--train", iris("train"), "--data", iris("test"), "-k",
                                    "3", "--json", whole_json, NULL},
                   NULL, NULL),
        0);
    for (int i = 0; i < 2; i++) {
        char shard[8], name[32];
        snprintf(shard, sizeof shard, "%d/2", i);
        snprintf(name, sizeof name, "knn_part%d.h5", i);
        snprintf(parts[i], sizeof parts[i], "%s", temp_path(name));
        assert_int_equal(
            run_cleval((const char *[]){"knn", "--train", iris("train"), "--data", iris("test"),
                                        "-k", "3", "--batch", "2", "--device", "0,1", "--shard",
                                        shard, "--save", parts[i], NULL},
                       NULL, NULL),
            0);
    }
    unsetenv("POCL_DEVICES");
    assert_int_equal(run_cleval((const char *[]){"merge", parts[1], parts[0], "--json", merged_json,
                                                 "--save", temp_path("knn_merged.h5"), NULL},
                                NULL, NULL),
                     0);
    char *a = results_text_of(whole_json, true), *b = results_text(merged_json);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flipped_checkpoints),
        cmocka_unit_test(test_flipped_parts),
        cmocka_unit_test(test_rewritten_counts_are_refused),
        cmocka_unit_test(test_rewritten_partial_rows_are_refused),
        cmocka_unit_test(test_files_without_checksum_are_refused),
        cmocka_unit_test(test_huge_declared_counts_are_refused),
        cmocka_unit_test(test_parts_from_two_devices_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
