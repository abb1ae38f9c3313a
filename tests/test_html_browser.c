/* The --html page of each command rendered by a real browser (headless Chromium): the DOM it
 * builds holds the numbers of the JSON report written in the same run and of the scikit-learn
 * fixtures, no URL, and its screenshot is not blank (decoded here: distinct pixel colours).
 * Exits 77 (skipped) when no Chromium is installed; scripts/install-deps.sh installs it. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum { SKIPPED = 77, BROWSER_GUARD_S = 300 };

static char chromium[4096];

/* CLEVAL_CHROMIUM, else the first of the usual names on PATH. */
static bool find_chromium(void)
{
    const char *given = getenv("CLEVAL_CHROMIUM");
    if (given && *given) {
        snprintf(chromium, sizeof chromium, "%s", given);
        return access(chromium, X_OK) == 0;
    }
    static const char *const names[] = {"chromium", "chromium-browser", "chromium-headless-shell",
                                        "google-chrome"};
    const char *path = getenv("PATH");
    for (size_t i = 0; path && i < sizeof names / sizeof *names; i++) {
        for (const char *dir = path; *dir;) {
            size_t n = strcspn(dir, ":");
            snprintf(chromium, sizeof chromium, "%.*s/%s", (int)n, dir, names[i]);
            if (n > 0 && access(chromium, X_OK) == 0) return true;
            dir += n + (dir[n] == ':');
        }
    }
    return false;
}

/* "file://" and the path, every byte but unreserved ones and '/' percent-encoded. */
static void file_url(const char *path, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "file://");
    for (const unsigned char *c = (const unsigned char *)path; *c && n + 4 < size; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/-._~", *c))
            out[n++] = (char)*c;
        else
            n += (size_t)snprintf(out + n, size - n, "%%%02X", *c);
    }
    out[n] = '\0';
}

/* Runs headless Chromium on `page` with `mode` ("--dump-dom" or "--screenshot=PNG"), its stdout
 * into `stdout_path`; fails the test unless it exits 0. A browser that never ends is killed
 * after BROWSER_GUARD_S seconds, so a broken install fails instead of blocking. */
static void run_chromium(const char *mode, const char *page, const char *stdout_path)
{
    char url[8192], profile[4200];
    file_url(page, url, sizeof url);
    snprintf(profile, sizeof profile, "--user-data-dir=%s", temp_path("chromium-profile"));
    const char *argv[] = {chromium,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--hide-scrollbars",
                          "--window-size=1200,2400",
                          profile,
                          mode,
                          url,
                          NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_WRONLY);
        if (out < 0 || null < 0) _exit(126);
        dup2(out, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execv(chromium, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited++) {
        if (waited == BROWSER_GUARD_S * 10) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s did not finish on %s", chromium, page);
        }
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s %s %s failed (status %d)", chromium, mode, page, status);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Undoes the PNG filter of each row in place (rows of 1 + stride bytes, bpp bytes a pixel). */
static bool unfilter(unsigned char *raw, uint32_t height, size_t stride, int bpp)
{
    for (uint32_t y = 0; y < height; y++) {
        unsigned char *row = raw + y * (stride + 1), *line = row + 1;
        const unsigned char *up = y ? raw + (y - 1) * (stride + 1) + 1 : NULL;
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)bpp ? line[i - bpp] : 0, b = up ? up[i] : 0;
            int c = up && i >= (size_t)bpp ? up[i - bpp] : 0;
            switch (row[0]) {
            case 0: break;
            case 1: line[i] = (unsigned char)(line[i] + a); break;
            case 2: line[i] = (unsigned char)(line[i] + b); break;
            case 3: line[i] = (unsigned char)(line[i] + (a + b) / 2); break;
            case 4: line[i] = (unsigned char)(line[i] + paeth(a, b, c)); break;
            default: return false;
            }
        }
    }
    return true;
}

/* How many distinct colours an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)
 * holds, counting up to `cap`; fails the test on any other file. */
static int png_distinct_colours(const char *path, int cap)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) fail_msg("cannot read %s", path);
    size_t size = (size_t)st.st_size;
    unsigned char *png = malloc(size), *idat = malloc(size);
    assert_true(png && idat && fread(png, 1, size, f) == size);
    fclose(f);
    if (size < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8) != 0) fail_msg("%s is not a PNG", path);
    uint32_t width = 0, height = 0;
    int bpp = 0;
    size_t idat_size = 0;
    for (size_t at = 8; at + 12 <= size;) {
        uint32_t length = be32(png + at);
        const unsigned char *type = png + at + 4, *data = png + at + 8;
        if (length > size - at - 12) fail_msg("%s: truncated chunk", path);
        if (memcmp(type, "IHDR", 4) == 0) {
            width = be32(data);
            height = be32(data + 4);
            if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[12] != 0)
                fail_msg("%s: not 8-bit RGB(A), non-interlaced", path);
            bpp = data[9] == 6 ? 4 : 3;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + idat_size, data, length);
            idat_size += length;
        }
        at += 12 + (size_t)length;
    }
    size_t stride = (size_t)width * (size_t)bpp;
    uLongf raw_size = (uLongf)((stride + 1) * height);
    unsigned char *raw = malloc(raw_size ? raw_size : 1);
    assert_non_null(raw);
    if (width == 0 || uncompress(raw, &raw_size, idat, idat_size) != Z_OK ||
        raw_size != (stride + 1) * height || !unfilter(raw, height, stride, bpp))
        fail_msg("%s: cannot decode its pixels", path);
    enum { SLOTS = 1 << 16 };
    uint32_t *seen = calloc(SLOTS, sizeof *seen); /* colour + 1; 0 is an empty slot */
    assert_non_null(seen);
    int distinct = 0;
    for (uint32_t y = 0; y < height && distinct < cap; y++)
        for (uint32_t x = 0; x < width && distinct < cap; x++) {
            const unsigned char *p = raw + y * (stride + 1) + 1 + (size_t)x * (size_t)bpp;
            uint32_t colour = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
            uint32_t slot = (colour * 2654435761u) >> 16;
            while (seen[slot] && seen[slot] != colour + 1)
                slot = (slot + 1) % SLOTS;
            if (!seen[slot]) {
                seen[slot] = colour + 1;
                distinct++;
            }
        }
    free(seen);
    free(raw);
    free(png);
    free(idat);
    return distinct;
}

static void expect_contains(const char *text, const char *needle, const char *what)
{
    if (!strstr(text, needle)) fail_msg("the rendered %s page lacks '%s'", what, needle);
}

/* One command's run: its arguments (the --json and --html paths are added), its exit code, the
 * report key whose value the page must show, and a value of a scikit-learn/numpy fixture. */
typedef struct page_case {
    const char *command;
    const char *args[12];
    int exit_code;
    const char *headline;     /* dotted path in the JSON report */
    const char *fixture;      /* fixture JSON, or NULL */
    const char *fixture_key;  /* its dotted path to the same value */
    const char *visible_text; /* a text of a chart that only the browser's DOM proves parsed */
} page_case;

static const cJSON *at_path(const cJSON *json, const char *path)
{
    char key[64];
    while (json && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        json = cJSON_GetObjectItem(json, key);
        path += n + (path[n] == '.');
    }
    return json;
}

static void check_page(const page_case *c)
{
    char json_path[4096], html_path[4096], dom_path[4096], png_path[4096], cell[128];
    snprintf(json_path, sizeof json_path, "%s/%s.json", CLEVAL_TEST_TMPDIR, c->command);
    snprintf(html_path, sizeof html_path, "%s/%s.html", CLEVAL_TEST_TMPDIR, c->command);
    snprintf(dom_path, sizeof dom_path, "%s/%s.dom.html", CLEVAL_TEST_TMPDIR, c->command);
    snprintf(png_path, sizeof png_path, "%s/%s.png", CLEVAL_TEST_TMPDIR, c->command);
    const char *args[20];
    size_t n = 0;
    args[n++] = c->command;
    for (size_t i = 0; c->args[i]; i++)
        args[n++] = c->args[i];
    const char *tail[] = {"--json", json_path, "--html", html_path, "--quiet", NULL};
    memcpy(args + n, tail, sizeof tail);
    char *out, *err;
    int code = run_cleval(args, &out, &err);
    if (code != c->exit_code) fail_msg("%s: exit %d; stderr: %s", c->command, code, err);
    free(out);
    free(err);

    run_chromium("--dump-dom", html_path, dom_path);
    char *dom = read_text_file(dom_path);
    assert_non_null(dom);
    snprintf(cell, sizeof cell, "<h1>cleval %s report</h1>", c->command);
    expect_contains(dom, cell, c->command);
    cJSON *report = load_json(json_path);
    const cJSON *value = at_path(report, c->headline);
    if (!cJSON_IsNumber(value)) fail_msg("%s: the JSON lacks %s", c->command, c->headline);
    snprintf(cell, sizeof cell, ">%.4f</td>", value->valuedouble);
    expect_contains(dom, cell, c->command);
    if (c->fixture) {
        cJSON *expected = load_json(fixture_path(c->fixture));
        const cJSON *fixture_value = at_path(expected, c->fixture_key);
        if (!cJSON_IsNumber(fixture_value)) fail_msg("%s lacks %s", c->fixture, c->fixture_key);
        snprintf(cell, sizeof cell, ">%.4f</td>", fixture_value->valuedouble);
        expect_contains(dom, cell, c->command);
        cJSON_Delete(expected);
    }
    expect_contains(dom, c->visible_text, c->command);
    assert_null(strstr(dom, "http://"));
    assert_null(strstr(dom, "https://"));
    assert_null(strstr(dom, "<script"));
    cJSON_Delete(report);
    free(dom);

    char shot[4200];
    snprintf(shot, sizeof shot, "--screenshot=%s", png_path);
    run_chromium(shot, html_path, temp_path("screenshot.log"));
    int colours = png_distinct_colours(png_path, 64);
    if (colours < 16) fail_msg("%s: the screenshot has only %d colours", c->command, colours);
}

static char model[4096], eval_data[4096], knn_train[4096], knn_test[4096], named[4096],
    compare_a[4096], compare_b[4096], drift_ref[4096], drift_cur[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s", fixture_path("onnx/mlp_softmax.onnx"));
    snprintf(eval_data, sizeof eval_data, "%s", fixture_path("scores/eval_mlp_softmax.h5"));
    snprintf(knn_train, sizeof knn_train, "%s", fixture_path("knn/iris_train.h5"));
    snprintf(knn_test, sizeof knn_test, "%s", fixture_path("knn/iris_test.h5"));
    snprintf(named, sizeof named, "%s", fixture_path("metrics/named.h5"));
    snprintf(compare_a, sizeof compare_a, "%s", fixture_path("compare/base_a.h5"));
    snprintf(compare_b, sizeof compare_b, "%s", fixture_path("compare/base_b.h5"));
    snprintf(drift_ref, sizeof drift_ref, "%s", fixture_path("drift/ref.h5"));
    snprintf(drift_cur, sizeof drift_cur, "%s", fixture_path("drift/cur.h5"));
    return 0;
}

/* The check itself: a blank page's screenshot has one colour. */
static void test_blank_page_has_one_colour(void **state)
{
    (void)state;
    char page[4096], png[4096], shot[4200];
    snprintf(page, sizeof page, "%s", temp_path("blank.html"));
    snprintf(png, sizeof png, "%s", temp_path("blank.png"));
    FILE *f = fopen(page, "w");
    assert_non_null(f);
    fputs("<!DOCTYPE html><html><body></body></html>\n", f);
    fclose(f);
    snprintf(shot, sizeof shot, "--screenshot=%s", png);
    run_chromium(shot, page, temp_path("screenshot.log"));
    assert_int_equal(png_distinct_colours(png, 64), 1);
}

static void test_eval_page(void **state)
{
    (void)state;
    page_case c = {"eval",
                   {"--model", model, "--data", eval_data, "--top-k", "2", NULL},
                   0,
                   "accuracy",
                   NULL,
                   NULL,
                   "Reliability diagram"};
    check_page(&c);
}

static void test_knn_page(void **state)
{
    (void)state;
    page_case c = {"knn",
                   {"--train", knn_train, "--data", knn_test, "-k", "3", NULL},
                   0,
                   "accuracy",
                   NULL,
                   NULL,
                   "Confusion matrix (row-normalised)"};
    check_page(&c);
}

static void test_metrics_page(void **state)
{
    (void)state;
    page_case c = {"metrics",
                   {"--data", named, "--min-accuracy", "0.9", NULL},
                   1,
                   "accuracy",
                   "metrics/named.json",
                   "accuracy",
                   "<title>true cat, predicted cat: "};
    check_page(&c);
}

static void test_compare_page(void **state)
{
    (void)state;
    page_case c = {
        "compare",   {compare_a, compare_b, NULL},         1, "agreement", "compare/base.json",
        "agreement", "<title>class in A 0, class in B 0: "};
    check_page(&c);
}

static void test_drift_page(void **state)
{
    (void)state;
    page_case c = {"drift",     {drift_ref, drift_cur, NULL},  1, "class.js", "drift/ref_cur.json",
                   "class.psi", "<title>reference 0.90-1.00: "};
    check_page(&c);
}

int main(void)
{
    if (!find_chromium()) {
        printf("no chromium on PATH (nor CLEVAL_CHROMIUM): skipped\n");
        return SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank_page_has_one_colour),
        cmocka_unit_test(test_eval_page),
        cmocka_unit_test(test_knn_page),
        cmocka_unit_test(test_metrics_page),
        cmocka_unit_test(test_compare_page),
        cmocka_unit_test(test_drift_page),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
