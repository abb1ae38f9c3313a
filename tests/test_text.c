/* Untrusted text on its way to the user: class names and ONNX names with control characters
 * or invalid UTF-8 are printed as harmless escapes, messages stay one line, JSON stays valid. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "text/printable.h"

static void expect_printable(const char *in, bool keep_newlines, const char *expected)
{
    char out[256];
    size_t need = cleval_text_printable(in, keep_newlines, out, sizeof out);
    assert_string_equal(out, expected);
    assert_int_equal(need, strlen(expected));
}

static void test_plain_text_unchanged(void **state)
{
    (void)state;
    expect_printable("", false, "");
    expect_printable("T-shirt/top", false, "T-shirt/top");
    /* Two-, three- and four-byte characters pass as they are. */
    expect_printable("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x88", false,
                     "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x88");
}

static void test_controls_escaped(void **state)
{
    (void)state;
    /* A window-title sequence, a colour, a carriage return over the line, a newline. */
    expect_printable("\x1b]0;owned\x07", false, "\\x1b]0;owned\\x07");
    expect_printable("\x1b[31mred", false, "\\x1b[31mred");
    expect_printable("ok\rFAKE\nline", false, "ok\\x0dFAKE\\x0aline");
    expect_printable("tab\there\x7f", false, "tab\\x09here\\x7f");
    /* Logs keep their line structure, but not a carriage return. */
    expect_printable("a\n\tb\rc", true, "a\n\tb\\x0dc");
    /* C1 controls (CSI) and bidirectional overrides as code points. */
    expect_printable("\xc2\x9b"
                     "31m",
                     false, "\\u009b31m");
    expect_printable("abc\xe2\x80\xae"
                     "fdp.exe",
                     false, "abc\\u202efdp.exe");
    expect_printable("\xe2\x81\xa6x", false, "\\u2066x");
}

static void test_invalid_utf8_escaped(void **state)
{
    (void)state;
    expect_printable("\xff\xfe", false, "\\xff\\xfe");
    expect_printable("\xc0\xaf", false, "\\xc0\\xaf");                   /* overlong '/' */
    expect_printable("\xed\xa0\x80", false, "\\xed\\xa0\\x80");          /* a surrogate */
    expect_printable("\xf4\x90\x80\x80", false, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
    expect_printable("end\xe6\x97", false, "end\\xe6\\x97");             /* cut short */
    expect_printable("\x80x", false, "\\x80x");                          /* a lone continuation */
}

/* A buffer too small keeps whole characters and escapes only, and says what it needed. */
static void test_cut_at_boundaries(void **state)
{
    (void)state;
    char out[6];
    assert_int_equal(cleval_text_printable("ab\x1b"
                                           "cd",
                                           false, out, sizeof out),
                     8);
    assert_string_equal(out, "ab");
    assert_int_equal(cleval_text_printable("a\xe6\x97\xa5\xe6\x9c\xac", false, out, sizeof out), 7);
    assert_string_equal(out, "a\xe6\x97\xa5");
    assert_int_equal(cleval_text_printable("abc", false, NULL, 0), 3);
}

/* No byte of `text` is a control character other than newline, nor part of invalid UTF-8. */
static void assert_terminal_safe(const char *text)
{
    char again[1 << 16];
    assert_true(strlen(text) < sizeof again);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char copy[1 << 16];
        memcpy(copy, line, n);
        copy[n] = '\0';
        /* Printable text is its own printable form. */
        cleval_text_printable(copy, false, again, sizeof again);
        if (strcmp(copy, again) != 0) fail_msg("unsafe output line: %s", again);
        line += n + (end ? 1 : 0);
    }
}

static const char *hostile_names_file(void)
{
    const char *path = temp_path("hostile_names.h5");
    hid_t file = h5_create(path);
    const int32_t y[4] = {0, 1, 2, 1}, pred[4] = {0, 1, 1, 2};
    hsize_t n = 4;
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    h5_write_strings(file, "class_names",
                     (const char *const[]){"\x1b]0;owned\x07", "ok\rFAKE\nrow", "bad\xff\xfe"}, 3);
    H5Fclose(file);
    return path;
}

static void test_report_escapes_class_names(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s", hostile_names_file());
    char *out = NULL, *err = NULL;
    int code = run_cleval((const char *[]){"metrics", "--data", path, NULL}, &out, &err);
    assert_int_equal(code, 0);
    assert_terminal_safe(out);
    assert_non_null(strstr(out, "\\x1b]0;owned\\x07"));
    assert_non_null(strstr(out, "ok\\x0dFAKE\\x0arow"));
    assert_non_null(strstr(out, "bad\\xff\\xfe"));
    free(out);
    free(err);

    /* The JSON is valid UTF-8 and carries the same printable names. */
    cJSON *json =
        run_cleval_json((const char *[]){"metrics", "--data", path, "--json", "-", NULL}, 0);
    char *text = cJSON_PrintUnformatted(json);
    assert_terminal_safe(text);
    cJSON *per_class = cJSON_GetObjectItem(json, "per_class");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(per_class, 2), "name")->valuestring,
                        "bad\\xff\\xfe");
    free(text);
    cJSON_Delete(json);
}

/* A refusal that quotes an ONNX node name is still one line without control characters. */
static void test_message_escapes_onnx_names(void **state)
{
    (void)state;
    cleval_onnx_model *m;
    assert_ok(cleval_onnx_load(fixture_path("onnx/unsupported_op.onnx"), &m));
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
        m->nodes[i].name = strdup("x\x1b[2J\nFAKE: all good\r");
    }
    cleval_nn *nn = NULL;
    cleval_nn_options options = {0};
    assert_int_not_equal(cleval_nn_create_with(test_device(), m, &options, &nn), CLEVAL_OK);
    const char *message = cleval_last_error();
    assert_non_null(strstr(message, "x\\x1b[2J\\x0aFAKE: all good\\x0d"));
    assert_null(strchr(message, '\n'));
    assert_terminal_safe(message);
    cleval_onnx_free(m);
    test_device_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_controls_escaped),
        cmocka_unit_test(test_invalid_utf8_escaped),
        cmocka_unit_test(test_cut_at_boundaries),
        cmocka_unit_test(test_report_escapes_class_names),
        cmocka_unit_test(test_message_escapes_onnx_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
