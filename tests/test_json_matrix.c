/* The confusion matrix of the JSON report is held as one placeholder of its nonzero cells, not
 * one cJSON node per cell (issue 16: a 4-row file with a label of 9000 built 8.1e7 nodes, about
 * 10 GB), and printed row by row. These checks: the printed matrix reads back to exactly the
 * counts a plain C loop makes of the file, on stdout and in a file; the HTML report still reads
 * it; its text equals what number items print, up to counts beyond 2^53; 3000- and 6000-class
 * runs fit under address-space limits that their dense matrices once strained (they are now
 * counted sparsely: test_sparse_counts.c holds the tight limits). */
#include "testutil.h"
#include "json_matrix_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/report.h"

enum { CLASSES = 300, ROWS = 20011 };

/* Labels with uneven class sizes and a model right about two times in three, so rows hold many
 * different counts; the reference matrix is counted here, independently of cleval. */
static const char *write_labels(const char *name, uint64_t *reference)
{
    int32_t *y = malloc(sizeof *y * ROWS), *pred = malloc(sizeof *pred * ROWS);
    assert_non_null(y);
    assert_non_null(pred);
    uint64_t state = 12345;
    for (int i = 0; i < ROWS; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(state >> 33);
        y[i] = (int32_t)((r % CLASSES) * (r % 7 + 1) % CLASSES);
        pred[i] = r % 3 ? y[i] : (int32_t)((r >> 8) % CLASSES);
        if (i == ROWS - 1) y[i] = CLASSES - 1; /* the last class is present */
        reference[(size_t)y[i] * CLASSES + (size_t)pred[i]]++;
    }
    const char *path = write_pairs(name, y, pred, ROWS);
    free(y);
    free(pred);
    return path;
}

static void expect_matrix(const cJSON *report, const uint64_t *reference, uint32_t n)
{
    const cJSON *matrix = cJSON_GetObjectItem(report, "confusion_matrix");
    assert_true(cJSON_IsArray(matrix));
    assert_int_equal(cJSON_GetArraySize(matrix), n);
    uint32_t r = 0;
    for (const cJSON *row = matrix->child; row; row = row->next, r++) {
        assert_true(cJSON_IsArray(row));
        assert_int_equal(cJSON_GetArraySize(row), n);
        uint32_t c = 0;
        for (const cJSON *cell = row->child; cell; cell = cell->next, c++) {
            assert_true(cJSON_IsNumber(cell));
            assert_true(cell->valuedouble == (double)reference[(size_t)r * n + c]);
        }
    }
}

static void test_matrix_round_trips(void **state)
{
    (void)state;
    uint64_t *reference = calloc((size_t)CLASSES * CLASSES, sizeof *reference);
    assert_non_null(reference);
    char data[4096], json[4096];
    snprintf(data, sizeof data, "%s", write_labels("matrix300.h5", reference));
    snprintf(json, sizeof json, "%s", temp_path("matrix300.json"));

    cJSON *printed = run_cleval_json(
        (const char *[]){"metrics", "--data", data, "--json", "-", "--quiet", NULL}, 0);
    assert_int_equal(cJSON_GetObjectItem(printed, "n_classes")->valueint, CLASSES);
    expect_matrix(printed, reference, CLASSES);
    cJSON_Delete(printed);

    char *out = NULL, *err = NULL;
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", data, "--json", json, "--quiet", NULL},
                   &out, &err),
        0);
    free(out);
    free(err);
    cJSON *written = load_json(json);
    expect_matrix(written, reference, CLASSES);
    cJSON_Delete(written);
    free(reference);
}

/* The HTML report reads the matrix back from the report tree: its heatmap's tooltip of the
 * largest confusion carries that cell's count and its row's total. */
static void test_html_reads_the_rows(void **state)
{
    (void)state;
    uint64_t *reference = calloc((size_t)CLASSES * CLASSES, sizeof *reference);
    assert_non_null(reference);
    char data[4096], html[4096];
    snprintf(data, sizeof data, "%s", write_labels("matrix300_html.h5", reference));
    snprintf(html, sizeof html, "%s", temp_path("matrix300.html"));
    size_t top = 1; /* cell (0, 1): the first off-diagonal one, as ties go to the lower row */
    for (size_t cell = 0; cell < (size_t)CLASSES * CLASSES; cell++)
        if (cell / CLASSES != cell % CLASSES && reference[cell] > reference[top]) top = cell;
    uint64_t total = 0;
    for (size_t c = 0; c < CLASSES; c++)
        total += reference[top / CLASSES * CLASSES + c];

    char *out = NULL, *err = NULL;
    assert_int_equal(
        run_cleval((const char *[]){"metrics", "--data", data, "--html", html, "--quiet", NULL},
                   &out, &err),
        0);
    free(out);
    free(err);
    char *text = read_text_file(html);
    assert_non_null(text);
    char tip[128];
    snprintf(tip, sizeof tip, "true %zu, predicted %zu: %llu of %llu (", top / CLASSES,
             top % CLASSES, (unsigned long long)reference[top], (unsigned long long)total);
    assert_non_null(strstr(text, tip));
    free(text);
    free(reference);
}

/* Raw rows print as number items would, through report_exact_decimal: digits below 2^53, the
 * shortest round-tripping decimal of the double above. */
static void test_row_text_equals_number_items(void **state)
{
    (void)state;
    const uint64_t counts[9] = {0,
                                1,
                                60000,
                                9007199254740991ull,
                                9007199254740992ull,
                                9007199254740994ull,
                                123456789012345678ull,
                                UINT64_MAX,
                                42};
    cleval_counts matrix = {.rows = 3, .cols = 3, .cells = (uint64_t *)counts};
    cJSON *rows = cleval_report_counts_json(&matrix);
    assert_non_null(rows);
    cJSON *numbers = cJSON_CreateArray();
    for (int r = 0; r < 3; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < 3; c++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)counts[r * 3 + c]));
        cJSON_AddItemToArray(numbers, row);
    }
    char *got = cleval_report_json_text(rows), *want = cleval_report_json_text(numbers);
    assert_non_null(got);
    assert_non_null(want);
    assert_string_equal(got, want);
    free(got);
    free(want);
    cJSON_Delete(rows);
    cJSON_Delete(numbers);

    cleval_counts none = {.cells = (uint64_t *)counts};
    cJSON *empty = cleval_report_counts_json(&none);
    char *text = cleval_report_json_text(empty);
    assert_string_equal(text, "[]");
    free(text);
    cJSON_Delete(empty);
}

/* A 4-row file with a label of 2999: the run itself (two 3000 x 3000 count matrices) fits in
 * 1.5 GiB of address space, and now so does its JSON report; one cJSON node per cell (9e6 of
 * them) did not ("out of memory building the report", exit 4). */
/* A 4-row file whose labels are 0, 1, 2 and `last`. */
static const char *write_bomb(const char *name, int32_t last)
{
    const int32_t y[4] = {0, 1, 2, last}, pred[4] = {0, 1, last, 2};
    return write_pairs(name, y, pred, 4);
}

static void test_many_classes_fit(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    char data[4096], json[4096];
    snprintf(data, sizeof data, "%s", write_bomb("bomb3000.h5", 2999));
    snprintf(json, sizeof json, "%s", temp_path("bomb3000.json"));
    set_cleval_address_limit(1536ull << 20);
    char *out = NULL, *err = NULL;
    int code = run_cleval(
        (const char *[]){"metrics", "--data", data, "--json", json, "--quiet", NULL}, &out, &err);
    set_cleval_address_limit(0);
    if (code != 0) fprintf(stderr, "%s", err);
    assert_int_equal(code, 0);
    free(out);
    free(err);
    char *text = read_text_file(json);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"n_classes\":\t3000,"));
    /* Row 2 holds its single 1 in the last column, row 2999 in column 2. */
    assert_non_null(strstr(text, "0, 0, 1], [0, 0, 0, 0"));
    assert_non_null(strstr(text, "], [0, 0, 1, 0, 0"));
    free(text);
}

/* A label of 5999: the run (device histogram, its host totals, the collected counts and the
 * report's confusion matrix, 288 MB each as 64-bit counts) needed about 1.75 GiB of address
 * space while a temporary copy of the device counts was added into the collected ones; read
 * straight into them, it needs about 1.45 GiB. The limit sits between the two. */
static void test_collected_counts_fit(void **state)
{
    (void)state;
    if (!ADDRESS_LIMITS_WORK) skip();
    char data[4096];
    snprintf(data, sizeof data, "%s", write_bomb("bomb6000.h5", 5999));
    set_cleval_address_limit(1600ull << 20);
    char *out = NULL, *err = NULL;
    int code = run_cleval((const char *[]){"metrics", "--data", data, NULL}, &out, &err);
    set_cleval_address_limit(0);
    if (code != 0) fprintf(stderr, "%s", err);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "6000"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_round_trips),
        cmocka_unit_test(test_html_reads_the_rows),
        cmocka_unit_test(test_row_text_equals_number_items),
        cmocka_unit_test(test_many_classes_fit),
        cmocka_unit_test(test_collected_counts_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
