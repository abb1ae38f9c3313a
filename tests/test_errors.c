/* The error analysis: the device's per-batch top-N selection (kernels/errors.cl) merged by the
 * host collector, against a plain C reference that sorts every candidate (odd sizes: empty, 1,
 * a prime, one more than the work-group size; N larger than the batch; ties of equal
 * confidences broken by the lower row); the confused pairs' first rows with batches added out
 * of order; then the CLI (`metrics`, `eval`, `knn` --errors N) against the lists numpy made
 * (tools/make_errors_fixtures.py) for several batch sizes, and refused combinations. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleval/errors.h"

static uint64_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Score rows copied from a few prototypes whose confidences (both views) are far apart, so that
 * equal confidences come only from equal rows, which the device computes alike: the reference
 * may then rank by its own double confidences. */
enum { PROTOTYPES = 7, CLASSES = 5 };

static void prototype_row(uint32_t p, bool probabilities, float *row)
{
    /* One score of weight 3 + 2p over CLASSES - 1 of weight 1; as probabilities over their sum,
     * else their log (so the softmax is the same probabilities). */
    float top = 3.0f + 2.0f * (float)p, total = top + (CLASSES - 1);
    for (uint32_t j = 0; j < CLASSES; j++) {
        float w = j == p % CLASSES ? top : 1.0f;
        row[j] = probabilities ? w / total : logf(w);
    }
}

static double prototype_confidence(uint32_t p, bool probabilities, bool softmax)
{
    double top = 3.0 + 2.0 * p, total = top + (CLASSES - 1);
    if (!probabilities && !softmax) return log(top);
    return top / total;
}

typedef struct batch_data {
    uint32_t n;
    float *scores;
    int32_t *labels, *pred;
    uint32_t *proto;
} batch_data;

static batch_data make_data(uint32_t n, bool probabilities, uint64_t seed)
{
    batch_data d = {n, malloc(((size_t)n * CLASSES + 1) * sizeof(float)),
                    malloc((n + 1) * sizeof(int32_t)), malloc((n + 1) * sizeof(int32_t)),
                    malloc((n + 1) * sizeof(uint32_t))};
    uint64_t s = seed;
    for (uint32_t i = 0; i < n; i++) {
        d.proto[i] = (uint32_t)(next_random(&s) % PROTOTYPES);
        prototype_row(d.proto[i], probabilities, d.scores + (size_t)i * CLASSES);
        d.labels[i] = (int32_t)(next_random(&s) % CLASSES);
        d.pred[i] = next_random(&s) % 3 ? d.labels[i] : (int32_t)(next_random(&s) % CLASSES);
    }
    return d;
}

static void free_data(batch_data *d)
{
    free(d->scores);
    free(d->labels);
    free(d->pred);
    free(d->proto);
}

typedef struct ref_entry {
    double confidence;
    uint64_t index;
} ref_entry;

static int ref_ascending(const void *a, const void *b)
{
    const ref_entry *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The reference list: every candidate of the kind, sorted, the first n kept. */
static uint32_t reference_list(const batch_data *d, bool probabilities, bool softmax,
                               cleval_error_kind kind, uint32_t n, ref_entry *out)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        bool wrong = d->labels[i] != d->pred[i];
        if (wrong != (kind == CLEVAL_ERROR_CONFIDENT_WRONG)) continue;
        double c = prototype_confidence(d->proto[i], probabilities, softmax);
        out[count++] = (ref_entry){kind == CLEVAL_ERROR_CONFIDENT_WRONG ? -c : c, i};
    }
    qsort(out, count, sizeof *out, ref_ascending);
    return count < n ? count : n;
}

static cl_mem upload(const void *data, size_t bytes)
{
    cl_mem mem;
    assert_ok(cleval_device_buffer(test_device(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                   bytes ? bytes : 4, (void *)data, "test data", &mem));
    return mem;
}

/* Runs the rows through the finder in batches of `batch` (the last ones first, so the collector
 * sees them out of order) and checks every list of both views against the reference. */
static void check(uint32_t rows, uint32_t batch, uint32_t n, bool probabilities, uint64_t seed)
{
    batch_data d = make_data(rows, probabilities, seed);
    cleval_error_finder *finder;
    cleval_errors_collector *collector;
    assert_ok(cleval_error_finder_create(test_device(), CLASSES, n, batch, &finder));
    assert_ok(cleval_errors_collector_create(n, true, &collector));
    uint32_t capacity = cleval_error_finder_capacity(finder);
    assert_int_equal(capacity, n < batch ? n : batch);
    cleval_error_sample *picks = malloc(CLEVAL_ERROR_LISTS * capacity * sizeof *picks);
    uint32_t n_batches = rows ? (rows + batch - 1) / batch : 1;
    for (uint32_t b = n_batches; b-- > 0;) {
        uint32_t start = b * batch, count = rows - start < batch ? rows - start : batch;
        if (rows == 0) count = 0;
        cl_mem s = upload(d.scores + (size_t)start * CLASSES, (size_t)count * CLASSES * 4);
        cl_mem y = upload(d.labels + start, count * 4), p = upload(d.pred + start, count * 4);
        uint32_t n_picks[CLEVAL_ERROR_LISTS];
        assert_ok(cleval_error_finder_run(finder, s, y, p, count, start, d.labels + start,
                                          d.pred + start, picks, n_picks));
        for (uint32_t l = 0; l < CLEVAL_ERROR_LISTS; l++) {
            assert_true(n_picks[l] <= capacity);
            assert_ok(
                cleval_errors_add_picks(collector, l, picks + (size_t)l * capacity, n_picks[l]));
        }
        assert_ok(
            cleval_errors_add_pairs(collector, start, count, d.labels + start, d.pred + start));
        clReleaseMemObject(s);
        clReleaseMemObject(y);
        clReleaseMemObject(p);
    }
    ref_entry *ref = malloc((rows + 1) * sizeof *ref);
    for (int softmax = 0; softmax < 2; softmax++) {
        if (probabilities && softmax) continue; /* probability rows use the scores as given */
        cleval_errors e;
        assert_ok(cleval_errors_finish(collector, softmax, &e));
        for (int kind = 0; kind < 2; kind++) {
            uint32_t expected = reference_list(&d, probabilities, softmax, kind, n, ref);
            assert_int_equal(e.n_lists[kind], expected);
            for (uint32_t i = 0; i < expected; i++) {
                const cleval_error_sample *got = &e.lists[kind][i];
                if (got->index != ref[i].index)
                    fail_msg("rows %u, batch %u, N %u, view %d, list %d, place %u: row %llu, "
                             "expected %llu",
                             rows, batch, n, softmax, kind, i, (unsigned long long)got->index,
                             (unsigned long long)ref[i].index);
                assert_int_equal(got->true_class, d.labels[ref[i].index]);
                assert_int_equal(got->predicted_class, d.pred[ref[i].index]);
                assert_true(fabs(got->confidence - fabs(ref[i].confidence)) < 1e-6);
            }
        }
        cleval_errors_free(&e);
    }
    free(ref);
    free(picks);
    cleval_errors_collector_destroy(collector);
    cleval_error_finder_destroy(finder);
    free_data(&d);
}

static void test_finder_matches_reference(void **state)
{
    (void)state;
    static const uint32_t rows[] = {0, 1, 2, 13, 65, 257, 1031};
    static const uint32_t ns[] = {1, 3, 64, 2000};
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            uint32_t batch = rows[r] ? rows[r] : 1;
            check(rows[r], batch, ns[i], true, 11 + r);
            check(rows[r], batch, ns[i], false, 23 + r);
        }
}

static void test_batches_merge_to_the_whole(void **state)
{
    (void)state;
    static const uint32_t batches[] = {1, 7, 64, 65, 500};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        check(1031, batches[b], 5, false, 3);
        check(1031, batches[b], 100, true, 5);
    }
}

typedef struct ref_pair {
    int32_t t, p;
    uint64_t count;
} ref_pair;

/* Largest count first, then (true, pred). */
static int ref_pair_order(const void *a, const void *b)
{
    const ref_pair *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

/* Pairs: the top ones by count with their first rows, whatever the order batches come in. */
static void test_pairs_keep_first_rows(void **state)
{
    (void)state;
    enum { ROWS = 3001, N = 4, C = 30, BATCH = 7 };
    static int32_t labels[ROWS], pred[ROWS];
    uint64_t s = 99;
    for (uint32_t i = 0; i < ROWS; i++) {
        labels[i] = (int32_t)(next_random(&s) % C);
        pred[i] = next_random(&s) % 2 ? labels[i] : (int32_t)(next_random(&s) % C);
    }
    cleval_errors_collector *c;
    assert_ok(cleval_errors_collector_create(N, false, &c));
    for (uint32_t b = (ROWS + BATCH - 1) / BATCH; b-- > 0;) {
        uint32_t start = b * BATCH, count = ROWS - start < BATCH ? ROWS - start : BATCH;
        assert_ok(cleval_errors_add_pairs(c, start, count, labels + start, pred + start));
    }
    cleval_errors e;
    assert_ok(cleval_errors_finish(c, false, &e));
    assert_false(e.has_scores);

    static ref_pair ref[C * C];
    for (int32_t t = 0; t < C; t++)
        for (int32_t q = 0; q < C; q++)
            ref[t * C + q] = (ref_pair){t, q, 0};
    for (uint32_t i = 0; i < ROWS; i++)
        if (labels[i] != pred[i]) ref[labels[i] * C + pred[i]].count++;
    qsort(ref, C * C, sizeof *ref, ref_pair_order);
    assert_int_equal(e.n_pairs, CLEVAL_ERRORS_TOP_PAIRS);
    for (uint32_t k = 0; k < e.n_pairs; k++) {
        const cleval_confused_samples *p = &e.pairs[k];
        assert_int_equal(p->true_class, ref[k].t);
        assert_int_equal(p->predicted_class, ref[k].p);
        assert_int_equal(p->count, ref[k].count);
        uint32_t n_rows = 0;
        for (uint32_t i = 0; i < ROWS && n_rows < N; i++)
            if (labels[i] == ref[k].t && pred[i] == ref[k].p)
                assert_int_equal(p->indices[n_rows++], i);
        assert_int_equal(p->n_indices, n_rows);
    }
    cleval_errors_free(&e);
    cleval_errors_collector_destroy(c);
}

static void test_collector_refuses_bad_n(void **state)
{
    (void)state;
    cleval_errors_collector *c;
    assert_int_equal(cleval_errors_collector_create(0, true, &c), CLEVAL_ERR_USAGE);
    assert_int_equal(cleval_errors_collector_create(CLEVAL_ERRORS_MAX + 1, true, &c),
                     CLEVAL_ERR_USAGE);
    assert_null(c);
}

/* --- The CLI against numpy's lists ------------------------------------------------------ */

static double number(const cJSON *o, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(o, name);
    if (!cJSON_IsNumber(item)) fail_msg("no number '%s'", name);
    return item->valuedouble;
}

static void check_samples(const cJSON *got, const cJSON *expected, const char *what)
{
    if (!cJSON_IsArray(got)) fail_msg("no list '%s' in the report", what);
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(expected));
    for (int i = 0; i < cJSON_GetArraySize(expected); i++) {
        const cJSON *g = cJSON_GetArrayItem(got, i), *e = cJSON_GetArrayItem(expected, i);
        if (number(g, "index") != number(e, "index"))
            fail_msg("%s[%d]: row %g, expected %g", what, i, number(g, "index"),
                     number(e, "index"));
        assert_true(number(g, "true") == number(e, "true"));
        assert_true(number(g, "pred") == number(e, "pred"));
        if (fabs(number(g, "confidence") - number(e, "confidence")) > 1e-5)
            fail_msg("%s[%d]: confidence %.9g, expected %.9g", what, i, number(g, "confidence"),
                     number(e, "confidence"));
    }
}

/* The report's "errors" against the fixture's; scores: the two lists are expected too. */
static void check_errors(const cJSON *report, const char *fixture, bool scores)
{
    cJSON *expected = load_json(fixture_path(fixture));
    const cJSON *got = cJSON_GetObjectItem(report, "errors");
    if (!cJSON_IsObject(got)) fail_msg("no \"errors\" in the report");
    assert_true(number(got, "n") == number(expected, "n"));
    const cJSON *pairs = cJSON_GetObjectItem(got, "confused_pairs"),
                *epairs = cJSON_GetObjectItem(expected, "confused_pairs");
    assert_int_equal(cJSON_GetArraySize(pairs), cJSON_GetArraySize(epairs));
    for (int i = 0; i < cJSON_GetArraySize(epairs); i++) {
        const cJSON *g = cJSON_GetArrayItem(pairs, i), *e = cJSON_GetArrayItem(epairs, i);
        assert_true(number(g, "true") == number(e, "true"));
        assert_true(number(g, "pred") == number(e, "pred"));
        assert_true(number(g, "count") == number(e, "count"));
        char *gi = cJSON_PrintUnformatted(cJSON_GetObjectItem(g, "indices"));
        char *ei = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "indices"));
        assert_string_equal(gi, ei);
        free(gi);
        free(ei);
    }
    if (scores) {
        assert_string_equal(cJSON_GetObjectItem(report, "probabilities")->valuestring,
                            cJSON_GetObjectItem(expected, "probabilities")->valuestring);
        check_samples(cJSON_GetObjectItem(got, "confident_wrong"),
                      cJSON_GetObjectItem(expected, "confident_wrong"), "confident_wrong");
        check_samples(cJSON_GetObjectItem(got, "unconfident_right"),
                      cJSON_GetObjectItem(expected, "unconfident_right"), "unconfident_right");
    } else {
        assert_null(cJSON_GetObjectItem(got, "confident_wrong"));
        assert_null(cJSON_GetObjectItem(got, "unconfident_right"));
    }
    cJSON_Delete(expected);
}

/* Runs cleval with `args` plus --batch B for each batch size (NULL: the default) and checks
 * the same lists come back every time. */
static void check_batches(const char **args, int batch_at, const char *fixture, bool scores)
{
    static const char *const batches[] = {NULL, "1", "7", "64", "65"};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        args[batch_at] = batches[b] ? "--batch" : NULL;
        args[batch_at + 1] = batches[b];
        cJSON *report = run_cleval_json((const char *const *)args, 0);
        check_errors(report, fixture, scores);
        cJSON_Delete(report);
    }
}

static void test_metrics_matches_numpy(void **state)
{
    (void)state;
    static const struct {
        const char *name, *n;
    } cases[] = {{"metrics_probs", "4"}, {"metrics_logits", "5"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char h5[4096], json[256];
        snprintf(h5, sizeof h5, "%s/errors/%s.h5", CLEVAL_FIXTURES_DIR, cases[i].name);
        snprintf(json, sizeof json, "errors/%s.json", cases[i].name);
        const char *args[] = {"metrics", "--data",  h5,   "--errors", cases[i].n, "--json",
                              "-",       "--quiet", NULL, NULL,       NULL};
        check_batches(args, 8, json, true);
        /* Without scores: the pairs alone. */
        const char *no_scores[] = {"metrics",  "--data", h5,  "--errors",
                                   cases[i].n, "--json", "-", "--scores-key",
                                   "absent",   NULL};
        cJSON *report = run_cleval_json(no_scores, 0);
        check_errors(report, json, false);
        cJSON_Delete(report);
    }
}

static void test_eval_matches_onnxruntime(void **state)
{
    (void)state;
    static const struct {
        const char *model, *n;
    } cases[] = {{"mlp_softmax", "5"}, {"gemm_matmul", "3"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char model[4096], h5[4096], json[256];
        snprintf(model, sizeof model, "%s/onnx/%s.onnx", CLEVAL_FIXTURES_DIR, cases[i].model);
        snprintf(h5, sizeof h5, "%s/errors/eval_%s.h5", CLEVAL_FIXTURES_DIR, cases[i].model);
        snprintf(json, sizeof json, "errors/eval_%s.json", cases[i].model);
        const char *args[] = {"eval",     "--model",  model,    "--data", h5,
                              "--errors", cases[i].n, "--json", "-",      "--quiet",
                              NULL,       NULL,       NULL};
        check_batches(args, 10, json, true);
    }
}

static void test_knn_vote_fraction_ties(void **state)
{
    (void)state;
    char train[4096], h5[4096];
    snprintf(train, sizeof train, "%s/errors/knn_train.h5", CLEVAL_FIXTURES_DIR);
    snprintf(h5, sizeof h5, "%s/errors/knn.h5", CLEVAL_FIXTURES_DIR);
    const char *args[] = {"knn", "--train", train, "--data",  h5,   "-k", "3", "--errors",
                          "6",   "--json",  "-",   "--quiet", NULL, NULL, NULL};
    check_batches(args, 12, "errors/knn.json", true);
}

/* Two devices (PoCL listing its CPU twice) take the batches in whatever order they finish:
 * the lists are those of one device. */
static void test_two_devices(void **state)
{
    (void)state;
    setenv("POCL_DEVICES", "pthread pthread", 1);
    char h5[4096];
    snprintf(h5, sizeof h5, "%s/errors/metrics_logits.h5", CLEVAL_FIXTURES_DIR);
    cJSON *report =
        run_cleval_json((const char *[]){"metrics", "--data", h5, "--errors", "5", "--batch", "3",
                                         "--device", "all", "--json", "-", NULL},
                        0);
    assert_non_null(strstr(cJSON_GetObjectItem(report, "device")->valuestring, ", "));
    check_errors(report, "errors/metrics_logits.json", true);
    cJSON_Delete(report);
    unsetenv("POCL_DEVICES");
}

/* The text report: class names, aligned columns, rows in order. */
static void test_text_report(void **state)
{
    (void)state;
    const char *path = temp_path("named.h5");
    hid_t file = h5_create(path);
    hsize_t n = 5, dims[2] = {5, 2};
    int32_t y[] = {0, 1, 1, 0, 1}, pred[] = {1, 1, 0, 1, 1};
    float scores[] = {0.3f, 0.7f, 0.4f, 0.6f, 0.9f, 0.1f, 0.2f, 0.8f, 0.45f, 0.55f};
    h5_write(file, "y", H5T_NATIVE_INT32, 1, &n, y, 0, NULL);
    h5_write(file, "pred", H5T_NATIVE_INT32, 1, &n, pred, 0, NULL);
    h5_write(file, "scores", H5T_NATIVE_FLOAT, 2, dims, scores, 0, NULL);
    h5_write_strings(file, "class_names", (const char *const[]){"cat", "sea lion"}, 2);
    H5Fclose(file);
    char *out, *err;
    int code =
        run_cleval((const char *[]){"metrics", "--data", path, "--errors", "2", NULL}, &out, &err);
    assert_int_equal(code, 0);
    const char *expected =
        "Error analysis: the most confused pairs, their first 2 rows of the test file:\n"
        "           2  true cat predicted as sea lion: 0, 3\n"
        "           1  true sea lion predicted as cat: 2\n"
        "\n"
        "Most confident wrong predictions (confidence: the largest score):\n"
        "         row  true       predicted  confidence\n"
        "           2  sea lion   cat        0.9000\n"
        "           3  cat        sea lion   0.8000\n"
        "\n"
        "Least confident right predictions (confidence: the largest score):\n"
        "         row  true       predicted  confidence\n"
        "           4  sea lion   sea lion   0.5500\n"
        "           1  sea lion   sea lion   0.6000\n";
    if (!strstr(out, expected)) fail_msg("the report lacks the section:\n%s", out);
    free(out);
    free(err);
}

static void test_refused(void **state)
{
    (void)state;
    char h5[4096], model[4096], unlabeled[4096];
    snprintf(h5, sizeof h5, "%s/errors/metrics_probs.h5", CLEVAL_FIXTURES_DIR);
    snprintf(model, sizeof model, "%s/onnx/mlp_softmax.onnx", CLEVAL_FIXTURES_DIR);
    snprintf(unlabeled, sizeof unlabeled, "%s", temp_path("unlabeled.h5"));
    hid_t file = h5_create(unlabeled);
    hsize_t dims[2] = {3, 20};
    float x[60] = {0};
    h5_write(file, "X", H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    H5Fclose(file);
    expect_cleval_error((const char *[]){"metrics", "--data", h5, "--errors", "0", NULL}, 2,
                        "--errors: must be at least 1 (got 0)");
    expect_cleval_error((const char *[]){"metrics", "--data", h5, "--errors", "10001", NULL}, 2,
                        "--errors: at most 10000 rows per list (got 10001)");
    expect_cleval_error((const char *[]){"metrics", "--data", h5, "--errors", "3", "--shard", "0/2",
                                         "--save", temp_path("part.h5"), NULL},
                        2, "--errors does not combine with --shard, mpirun or --checkpoint");
    expect_cleval_error((const char *[]){"metrics", "--data", h5, "--errors", "3", "--checkpoint",
                                         temp_path("ck"), NULL},
                        2, "--errors does not combine with --shard, mpirun or --checkpoint");
    expect_cleval_error(
        (const char *[]){"eval", "--model", model, "--data", unlabeled, "--errors", "3", NULL}, 2,
        "unlabeled.h5: --errors needs labels, and the file has none");
    expect_cleval_error((const char *[]){"knn", "--train", h5, "--data", h5, "-k", "1", "--errors",
                                         "3", "--shard-train", NULL},
                        2, "--errors does not combine with --shard-train");
    assert_int_equal(access(temp_path("part.h5"), F_OK), -1); /* refused before any file */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finder_matches_reference),
        cmocka_unit_test(test_batches_merge_to_the_whole),
        cmocka_unit_test(test_pairs_keep_first_rows),
        cmocka_unit_test(test_collector_refuses_bad_n),
        cmocka_unit_test(test_metrics_matches_numpy),
        cmocka_unit_test(test_eval_matches_onnxruntime),
        cmocka_unit_test(test_knn_vote_fraction_ties),
        cmocka_unit_test(test_text_report),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_two_devices), /* last: it changes the environment */
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
