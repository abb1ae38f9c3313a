/* The cache folder (src/cache/cache.c): where it is, that entries round-trip whole, and that a
 * folder or entry another user could have planted is never used. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleval/cache.h"
#include "testutil.h"

static void use_cache_dir(const char *name)
{
    setenv("CLEVAL_CACHE_DIR", temp_path(name), 1);
}

/* FNV-1a's published test vectors. */
static void test_hash_matches_fnv1a(void **state)
{
    (void)state;
    assert_true(cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, "foobar", 6) == 0x85944171f73967e8ULL);
    /* The string form hashes the NUL too, so "ab"+"c" and "a"+"bc" differ. */
    uint64_t ab_c = cleval_cache_hash_string(
        cleval_cache_hash_string(CLEVAL_CACHE_HASH_SEED, "ab"), "c");
    uint64_t a_bc = cleval_cache_hash_string(
        cleval_cache_hash_string(CLEVAL_CACHE_HASH_SEED, "a"), "bc");
    assert_true(ab_c != a_bc);
}

static void test_root_from_environment(void **state)
{
    (void)state;
    char path[4096];
    unsetenv("CLEVAL_CACHE_DIR");
    setenv("XDG_CACHE_HOME", temp_path("xdg"), 1);
    assert_true(cleval_cache_subdir("tuning", path, sizeof path));
    char expected[4096];
    snprintf(expected, sizeof expected, "%s/cleval/tuning", temp_path("xdg"));
    assert_string_equal(path, expected);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);

    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", temp_path("home"), 1);
    assert_true(cleval_cache_subdir("programs", path, sizeof path));
    snprintf(expected, sizeof expected, "%s/.cache/cleval/programs", temp_path("home"));
    assert_string_equal(path, expected);

    setenv("CLEVAL_CACHE_DIR", "off", 1);
    assert_false(cleval_cache_subdir("programs", path, sizeof path));
    unsetenv("CLEVAL_CACHE_DIR");
}

static void test_store_then_load(void **state)
{
    (void)state;
    use_cache_dir("roundtrip");
    const char text[] = "tuned: conv_mr=8";
    assert_true(cleval_cache_store("tuning", "abc123", text, sizeof text));
    void *data;
    size_t size;
    assert_true(cleval_cache_load("tuning", "abc123", 1024, &data, &size));
    assert_int_equal(size, sizeof text);
    assert_memory_equal(data, text, sizeof text);
    free(data);
    /* A second store replaces the entry whole. */
    assert_true(cleval_cache_store("tuning", "abc123", "x", 1));
    assert_true(cleval_cache_load("tuning", "abc123", 1024, &data, &size));
    assert_int_equal(size, 1);
    free(data);
    /* Larger than the caller accepts, or absent: a miss. */
    assert_true(cleval_cache_store("tuning", "big", text, sizeof text));
    assert_false(cleval_cache_load("tuning", "big", 4, &data, &size));
    assert_null(data);
    assert_false(cleval_cache_load("tuning", "absent", 1024, &data, &size));
    /* No temporary is left behind. */
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s/tuning' | grep tmp)\"", temp_path("roundtrip"));
    assert_int_equal(system(cmd), 0);
}

static void test_names_must_be_plain(void **state)
{
    (void)state;
    use_cache_dir("names");
    void *data;
    size_t size;
    assert_false(cleval_cache_store("tuning", "../escape", "x", 1));
    assert_false(cleval_cache_store("tuning", "a/b", "x", 1));
    assert_false(cleval_cache_store("..", "x", "x", 1));
    assert_false(cleval_cache_store("tuning", "", "x", 1));
    assert_false(cleval_cache_load("tuning", "..", 16, &data, &size));
    assert_int_equal(access(temp_path("escape"), F_OK), -1);
}

static void test_unsafe_folder_is_not_used(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", temp_path("shared"));
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(chmod(root, 0777), 0); /* writable by anyone: someone could plant code */
    use_cache_dir("shared");
    char path[4096];
    assert_false(cleval_cache_subdir("programs", path, sizeof path));
    assert_false(cleval_cache_store("programs", "entry", "x", 1));
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/programs", root);
    assert_int_equal(access(sub, F_OK), -1);

    /* A link where the cache folder should be is not followed. */
    char target[4096];
    snprintf(target, sizeof target, "%s", temp_path("target"));
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, temp_path("linked")), 0);
    use_cache_dir("linked");
    assert_false(cleval_cache_subdir("tuning", path, sizeof path));
}

static void test_linked_entry_is_a_miss(void **state)
{
    (void)state;
    use_cache_dir("entrylink");
    char dir[4096];
    assert_true(cleval_cache_subdir("programs", dir, sizeof dir));
    char secret[4096];
    snprintf(secret, sizeof secret, "%s", temp_path("secret"));
    FILE *f = fopen(secret, "w");
    assert_non_null(f);
    fputs("secret", f);
    fclose(f);
    char entry[4200];
    snprintf(entry, sizeof entry, "%s/planted", dir);
    assert_int_equal(symlink(secret, entry), 0);
    void *data;
    size_t size;
    assert_false(cleval_cache_load("programs", "planted", 1024, &data, &size));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_fnv1a),
        cmocka_unit_test(test_root_from_environment),
        cmocka_unit_test(test_store_then_load),
        cmocka_unit_test(test_names_must_be_plain),
        cmocka_unit_test(test_unsafe_folder_is_not_used),
        cmocka_unit_test(test_linked_entry_is_a_miss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
