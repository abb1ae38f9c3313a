/* The device ROC AUC and average precision (kernels/auc.cl, src/metrics/auc.c) against a plain
 * C reference of scikit-learn's algorithm (sort by score, one threshold per distinct score, the
 * trapezoid rule and the step sum, in double): sizes 0, 1, 2, primes, one more than the scan's
 * work-group and than a tile of the radix sort and tie collapse, several tiles; scores with many
 * ties, all equal, -0 beside +0, a class without positives, rows put out of order and from
 * another device, softmax rows; and the refusal of a store the device cannot hold. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/auc.h"

static uint64_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

typedef struct scored {
    double score;
    bool positive;
} scored;

static int by_score_descending(const void *a, const void *b)
{
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x < y) - (x > y);
}

/* One class: _binary_clf_curve's groups, then roc_auc_score's trapezoids over (fpr, tpr) and
 * average_precision_score's sum of (R_k - R_k-1) * P_k. False when it has no positive or no
 * negative sample. */
static bool reference_class(scored *v, uint32_t n, double *roc, double *ap)
{
    qsort(v, n, sizeof *v, by_score_descending);
    double positives = 0;
    for (uint32_t i = 0; i < n; i++)
        positives += v[i].positive;
    double negatives = n - positives;
    if (positives == 0 || negatives == 0) return false;
    double tp = 0, tp_prev = 0, fp_prev = 0;
    *roc = *ap = 0;
    for (uint32_t i = 0; i < n; i++) {
        tp += v[i].positive;
        if (i + 1 < n && v[i + 1].score == v[i].score) continue;
        double fp = i + 1 - tp;
        *roc += (fp / negatives - fp_prev / negatives) * (tp / positives + tp_prev / positives) / 2;
        *ap += (tp / positives - tp_prev / positives) * (tp / (tp + fp));
        tp_prev = tp;
        fp_prev = fp;
    }
    return true;
}

static void reference(const double *p, const int32_t *labels, uint32_t n, uint32_t c,
                      cleval_auc_result *out)
{
    memset(out, 0, sizeof *out);
    scored *v = malloc((n ? n : 1) * sizeof *v);
    double support = 0;
    for (uint32_t k = 0; k < c; k++) {
        for (uint32_t i = 0; i < n; i++)
            v[i] = (scored){p[(size_t)i * c + k], labels[i] == (int32_t)k};
        double roc, ap, positives = 0;
        if (!reference_class(v, n, &roc, &ap)) continue;
        for (uint32_t i = 0; i < n; i++)
            positives += labels[i] == (int32_t)k;
        out->classes++;
        support += positives;
        out->roc_macro += roc;
        out->ap_macro += ap;
        out->roc_weighted += roc * positives;
        out->ap_weighted += ap * positives;
    }
    free(v);
    if (!out->classes) return;
    out->roc_macro /= out->classes;
    out->ap_macro /= out->classes;
    out->roc_weighted /= support;
    out->ap_weighted /= support;
}

/* Relative 1e-12: the device sums the ROC area exactly in integers and the average precision
 * in the same order as the reference, so only the last bits of the doubles may differ. */
static void assert_result(const cleval_auc_result *e, const cleval_auc_result *g)
{
    assert_int_equal(e->classes, g->classes);
    const double want[] = {e->roc_macro, e->roc_weighted, e->ap_macro, e->ap_weighted};
    const double got[] = {g->roc_macro, g->roc_weighted, g->ap_macro, g->ap_weighted};
    for (int i = 0; i < 4; i++)
        if (fabs(want[i] - got[i]) > 1e-12 * fabs(want[i]))
            fail_msg("value %d: expected %.17g, got %.17g", i, want[i], got[i]);
}

static cl_mem upload(cleval_device *dev, const void *values, size_t bytes)
{
    cl_mem mem;
    assert_ok(cleval_device_buffer(dev, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes ? bytes : 1,
                                   (void *)values, "test rows", &mem));
    return mem;
}

/* Puts the rows in `pieces` batches, last batch first (rows land at their places whatever the
 * order), from device `from`, and computes. */
static void device_result(const float *scores, const int32_t *labels, uint32_t n, uint32_t c,
                          bool softmax, uint32_t pieces, cleval_device *from,
                          cleval_auc_result *out)
{
    cleval_auc_store *s;
    assert_ok(cleval_auc_store_create(test_device(), c, n, &s));
    uint32_t per = n / pieces + 1;
    for (int64_t start = (int64_t)(pieces - 1) * per; start >= 0; start -= per) {
        if ((uint32_t)start >= n) continue;
        uint32_t count = n - (uint32_t)start < per ? n - (uint32_t)start : per;
        cl_mem sm = upload(from, scores + (size_t)start * c, (size_t)count * c * sizeof *scores);
        cl_mem ym = upload(from, labels + start, count * sizeof *labels);
        assert_ok(cleval_auc_store_put(s, from, sm, ym, (uint64_t)start, count));
        assert_ok(cleval_device_finish(from));
        clReleaseMemObject(sm);
        clReleaseMemObject(ym);
    }
    assert_ok(cleval_auc_store_compute(s, n, softmax, out));
    cleval_auc_store_destroy(s);
}

/* Half the scores in 9 steps (ties in every class), half any float in [-1, 1) (every bit of
 * the sort key in play); labels below `label_classes`. */
static void fill(float *scores, int32_t *labels, uint32_t n, uint32_t c, uint32_t label_classes,
                 uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)n * c; i++)
        scores[i] = next_random(&s) % 2 ? (float)(next_random(&s) % 9) / 8.0f
                                        : (float)((double)next_random(&s) / (1u << 30) - 1.0);
    for (uint32_t i = 0; i < n; i++)
        labels[i] = (int32_t)(next_random(&s) % label_classes);
}

static void check_as_given(const float *scores, const int32_t *labels, uint32_t n, uint32_t c,
                           uint32_t pieces, cleval_device *from)
{
    double *p = malloc(((size_t)n * c + 1) * sizeof *p);
    for (size_t i = 0; i < (size_t)n * c; i++)
        p[i] = scores[i];
    cleval_auc_result expected, got;
    reference(p, labels, n, c, &expected);
    device_result(scores, labels, n, c, false, pieces, from, &got);
    assert_result(&expected, &got);
    free(p);
}

static void check_random(uint32_t n, uint32_t c, uint32_t label_classes, uint32_t pieces)
{
    float *scores = malloc(((size_t)n * c + 1) * sizeof *scores);
    int32_t *labels = malloc((n + 1) * sizeof *labels);
    fill(scores, labels, n, c, label_classes, 7 + n * 13 + c);
    check_as_given(scores, labels, n, c, pieces, test_device());
    free(scores);
    free(labels);
}

static void test_odd_sizes_against_reference(void **state)
{
    (void)state;
    /* 257: one more than the scan's work-group; 4097: than a tile; 8209: a prime over three
     * tiles. */
    static const uint32_t sizes[] = {1, 2, 3, 37, 257, 1009, 4097, 8209};
    static const uint32_t classes[] = {1, 2, 3, 10};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t j = 0; j < sizeof classes / sizeof *classes; j++)
            check_random(sizes[i], classes[j], classes[j], 1);
}

static void test_batches_out_of_order(void **state)
{
    (void)state;
    check_random(1009, 4, 4, 7);
    check_random(8209, 3, 3, 2);
}

/* No rows, one class absent from the labels, no class with both kinds of samples. */
static void test_classes_left_out(void **state)
{
    (void)state;
    cleval_auc_result got;
    device_result(NULL, NULL, 0, 3, false, 1, test_device(), &got);
    assert_int_equal(got.classes, 0);
    check_random(101, 5, 4, 1); /* class 4 has no positive: averaged over 4 */
    float scores[] = {0.2f, 0.8f, 0.6f, 0.4f};
    int32_t labels[] = {1, 1};
    device_result(scores, labels, 2, 2, false, 1, test_device(), &got);
    assert_int_equal(got.classes, 0);
}

/* Every score equal: one threshold, the area 0.5 and the precision the positive rate; -0 and
 * +0 are one score. */
static void test_all_ties(void **state)
{
    (void)state;
    enum { N = 300 };
    float scores[N * 2];
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        scores[2 * i] = i % 2 ? -0.0f : 0.0f;
        scores[2 * i + 1] = 0.5f;
        labels[i] = i % 3 == 0;
    }
    check_as_given(scores, labels, N, 2, 1, test_device());
    cleval_auc_result got;
    device_result(scores, labels, N, 2, false, 3, test_device(), &got);
    assert_int_equal(got.classes, 2);
    assert_true(got.roc_macro == 0.5 && got.roc_weighted == 0.5);
    assert_true(fabs(got.ap_weighted - (100.0 / 300 * 100 + 200.0 / 300 * 200) / 300) < 1e-15);
}

/* Rows from another device (its own context): copied through host memory. */
static void test_rows_from_another_device(void **state)
{
    (void)state;
    uint32_t index;
    cleval_device *other;
    assert_ok(cleval_device_resolve(NULL, &index));
    assert_ok(cleval_device_open(index, &other));
    enum { N = 333, C = 4 };
    float *scores = malloc(N * C * sizeof *scores);
    int32_t labels[N];
    fill(scores, labels, N, C, C, 99);
    check_as_given(scores, labels, N, C, 4, other);
    free(scores);
    cleval_device_close(other);
}

/* Softmax rows: each sample takes one of a few logit rows, so equal probabilities come from
 * equal rows (bit-identical on the device) and different ones are far apart, whatever the
 * float rounding of exp. */
static void test_softmax_rows(void **state)
{
    (void)state;
    enum { N = 700, C = 5, TEMPLATES = 6 };
    float templates[TEMPLATES][C];
    double p_templates[TEMPLATES][C];
    uint64_t s = 5;
    for (int t = 0; t < TEMPLATES; t++) {
        double z = 0, top = -INFINITY;
        for (int j = 0; j < C; j++) {
            templates[t][j] = (float)(next_random(&s) % 41) / 4.0f - 5.0f;
            top = fmax(top, templates[t][j]);
        }
        for (int j = 0; j < C; j++)
            z += exp(templates[t][j] - top);
        for (int j = 0; j < C; j++)
            p_templates[t][j] = exp(templates[t][j] - top) / z;
    }
    /* Distinct probabilities of a class must be far apart for the test to be exact. */
    for (int j = 0; j < C; j++)
        for (int a = 0; a < TEMPLATES; a++)
            for (int b = 0; b < a; b++)
                if (fabs(p_templates[a][j] - p_templates[b][j]) < 1e-5)
                    fail_msg("templates %d and %d are too close in class %d", a, b, j);
    float *scores = malloc(N * C * sizeof *scores);
    double *p = malloc(N * C * sizeof *p);
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        int t = (int)(next_random(&s) % TEMPLATES);
        for (int j = 0; j < C; j++) {
            scores[i * C + j] = templates[t][j];
            p[i * C + j] = p_templates[t][j];
        }
        labels[i] = (int32_t)(next_random(&s) % C);
    }
    cleval_auc_result expected, got;
    reference(p, labels, N, C, &expected);
    device_result(scores, labels, N, C, true, 3, test_device(), &got);
    assert_result(&expected, &got);
    free(scores);
    free(p);
}

/* A store larger than the device holds is refused up front, naming --auc. */
static void test_refuses_what_does_not_fit(void **state)
{
    (void)state;
    const cleval_device_info *info = cleval_device_get_info(test_device());
    uint64_t rows = info->global_mem_bytes / 4 / 1000 + 1; /* scores alone above the memory */
    cleval_auc_store *s = (cleval_auc_store *)1;
    assert_int_equal(cleval_auc_store_create(test_device(), 1000, rows, &s), CLEVAL_ERR_INPUT);
    assert_null(s);
    assert_non_null(strstr(cleval_last_error(), "--auc off"));
    assert_non_null(strstr(cleval_last_error(), "MiB"));
}

static void test_wanted(void **state)
{
    (void)state;
    assert_true(cleval_auc_wanted(CLEVAL_AUC_AUTO, 100));
    assert_false(cleval_auc_wanted(CLEVAL_AUC_AUTO, 101));
    assert_true(cleval_auc_wanted(CLEVAL_AUC_ON, 5000));
    assert_false(cleval_auc_wanted(CLEVAL_AUC_OFF, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_sizes_against_reference),
        cmocka_unit_test(test_batches_out_of_order),
        cmocka_unit_test(test_classes_left_out),
        cmocka_unit_test(test_all_ties),
        cmocka_unit_test(test_rows_from_another_device),
        cmocka_unit_test(test_softmax_rows),
        cmocka_unit_test(test_refuses_what_does_not_fit),
        cmocka_unit_test(test_wanted),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
