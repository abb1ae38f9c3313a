/* The device reducer of the score-based metrics (kernels/scores.cl) against a plain C
 * reference in double: odd sizes (1, a prime, one more than the work-group size, one more than
 * the rows of a work-group), 1 to 17 classes and widths around the kernel's vector steps up to
 * 1000, scores with ties, probability rows and raw scores, k from 1 to C, and the same data in
 * several batches; then the host's metrics from the sums. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/scores.h"

static uint64_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Scores in steps of 1/4 within [-2, 2] (ties in most rows), or probability rows: small
 * integer weights over their sum. */
static void fill_scores(float *scores, int32_t *labels, uint32_t n, uint32_t c, bool probs,
                        uint64_t seed)
{
    uint64_t s = seed;
    for (uint32_t i = 0; i < n; i++) {
        float *row = scores + (size_t)i * c;
        float total = 0.0f;
        for (uint32_t j = 0; j < c; j++) {
            row[j] = probs ? (float)(next_random(&s) % 5) : (float)(next_random(&s) % 17) / 4 - 2;
            total += row[j];
        }
        if (probs && total == 0.0f) row[0] = total = 1.0f;
        for (uint32_t j = 0; probs && j < c; j++)
            row[j] /= total;
        labels[i] = (int32_t)(next_random(&s) % c);
    }
}

/* The calibration group of a confidence as torchmetrics bins it: the number of boundaries of
 * torch.linspace(0, 1, 16) (float32) at or below it, less one; 15 for exactly 1. */
static int group_of(double confidence)
{
    static const float bounds[] = {0.0f,        0.06666667f, 0.13333334f, 0.20000002f,
                                   0.26666668f, 0.33333334f, 0.40000004f, 0.4666667f,
                                   0.5333333f,  0.59999996f, 0.6666666f,  0.73333335f,
                                   0.8f,        0.8666667f,  0.93333334f, 1.0f};
    int b = -1;
    for (int i = 0; i <= CLEVAL_CALIBRATION_BINS; i++)
        b += bounds[i] <= (float)confidence;
    return b < 0 ? 0 : b;
}

static void reference_candidate(cleval_score_candidate *into, const double *p, uint32_t c,
                                uint32_t y, uint32_t arg)
{
    double sum_sq = 0.0, conf = p[arg];
    for (uint32_t j = 0; j < c; j++)
        sum_sq += (p[j] - (j == y)) * (p[j] - (j == y));
    double p_true = p[y] < 2.220446049250313e-16 ? 2.220446049250313e-16 : p[y];
    into->log_loss += -log(p_true > 1.0 ? 1.0 : p_true);
    into->brier += sum_sq;
    int b = group_of(conf);
    into->confidence[b] += conf;
    into->count[b]++;
    into->correct[b] += arg == y;
}

static void reference(const float *scores, const int32_t *labels, uint32_t n, uint32_t c,
                      uint32_t k, cleval_score_sums *out)
{
    memset(out, 0, sizeof *out);
    double *given = malloc(c * sizeof *given), *soft = malloc(c * sizeof *soft);
    for (uint32_t i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * c;
        uint32_t y = (uint32_t)labels[i], arg = 0, ahead = 0;
        double sum = 0.0, low = row[0], z = 0.0;
        for (uint32_t j = 0; j < c; j++) {
            if (row[j] > row[arg]) arg = j;
            ahead += row[j] > row[y] || (row[j] == row[y] && j > y);
            sum += row[j];
            low = row[j] < low ? row[j] : low;
            given[j] = row[j];
        }
        for (uint32_t j = 0; j < c; j++)
            z += soft[j] = exp((double)row[j] - row[arg]);
        for (uint32_t j = 0; j < c; j++)
            soft[j] /= z;
        out->rows++;
        out->top_k_hits += ahead < k;
        out->not_probabilities += !(low >= 0 && fabs(sum - 1) <= 1e-4);
        reference_candidate(&out->as_given, given, c, y, arg);
        reference_candidate(&out->softmax, soft, c, y, arg);
    }
    free(given);
    free(soft);
}

static void assert_near(double expected, double got, double rel)
{
    double tol = rel * (fabs(expected) > 1.0 ? fabs(expected) : 1.0);
    if (fabs(expected - got) > tol) fail_msg("expected %.12g, got %.12g", expected, got);
}

static void assert_candidate(const cleval_score_candidate *e, const cleval_score_candidate *g,
                             uint64_t n)
{
    assert_near(e->log_loss / (double)n, g->log_loss / (double)n, 1e-5);
    assert_near(e->brier / (double)n, g->brier / (double)n, 1e-5);
    for (int b = 0; b < CLEVAL_SCORE_GROUPS; b++) {
        assert_int_equal(e->count[b], g->count[b]);
        assert_int_equal(e->correct[b], g->correct[b]);
        assert_near(e->confidence[b] / (double)n, g->confidence[b] / (double)n, 1e-5);
    }
}

static cl_mem upload(const void *values, size_t bytes)
{
    cl_mem mem;
    assert_ok(cleval_device_buffer(test_device(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                   (void *)values, "test scores", &mem));
    return mem;
}

/* The device's sums of the rows in `batches` pieces against the reference. */
static void check(uint32_t n, uint32_t c, uint32_t k, bool probs, uint32_t batches)
{
    float *scores = malloc((size_t)n * c * sizeof *scores);
    int32_t *labels = malloc(n * sizeof *labels);
    fill_scores(scores, labels, n, c, probs, 17 + n * 31 + c * 7 + k);
    cleval_score_sums expected, got = {0}, batch;
    reference(scores, labels, n, c, k, &expected);

    uint32_t per_batch = (n + batches - 1) / batches;
    cleval_score_reducer *r;
    assert_ok(cleval_score_reducer_create(test_device(), c, k, per_batch, &r));
    for (uint32_t start = 0; start < n; start += per_batch) {
        uint32_t count = n - start < per_batch ? n - start : per_batch;
        cl_mem s = upload(scores + (size_t)start * c, (size_t)count * c * sizeof *scores);
        cl_mem y = upload(labels + start, count * sizeof *labels);
        assert_ok(cleval_score_reducer_add(r, s, y, count, &batch));
        cleval_score_sums_add(&got, &batch);
        clReleaseMemObject(s);
        clReleaseMemObject(y);
    }
    cleval_score_reducer_destroy(r);
    assert_int_equal(expected.rows, got.rows);
    assert_int_equal(expected.top_k_hits, got.top_k_hits);
    assert_int_equal(expected.not_probabilities, got.not_probabilities);
    if (probs) assert_candidate(&expected.as_given, &got.as_given, n);
    assert_candidate(&expected.softmax, &got.softmax, n);
    free(scores);
    free(labels);
}

static void test_reducer_odd_sizes(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 37, 65, 1025, 2053};
    static const uint32_t classes[] = {1, 3, 10, 17};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t j = 0; j < sizeof classes / sizeof *classes; j++) {
            uint32_t c = classes[j];
            uint32_t ks[] = {1, 2, c, c + 3};
            for (size_t q = 0; q < 4; q++) {
                check(sizes[i], c, ks[q], false, 1);
                check(sizes[i], c, ks[q], true, 1);
            }
        }
}

/* Rows as wide as one vector step of the kernel (8 or 16 classes), one class either side, a
 * few steps with a tail, and 1000 classes: ties between lanes and the tail must still rank
 * and pick the first maximum as a scan of the row does. */
static void test_reducer_vector_widths(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 37, 1025};
    static const uint32_t classes[] = {7, 8, 9, 15, 16, 17, 33, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t j = 0; j < sizeof classes / sizeof *classes; j++) {
            uint32_t c = classes[j];
            uint32_t ks[] = {1, 5, c};
            for (size_t q = 0; q < 3; q++) {
                check(sizes[i], c, ks[q], false, 1);
                check(sizes[i], c, ks[q], true, 1);
            }
        }
}

static void test_reducer_batches_add_up(void **state)
{
    (void)state;
    check(2053, 10, 5, false, 3);
    check(2053, 10, 5, true, 7);
    check(37, 3, 2, false, 37);
}

/* No hits are counted without top-k. */
static void test_reducer_k0_counts_nothing(void **state)
{
    (void)state;
    float scores[] = {0.1f, 0.9f};
    int32_t labels[] = {1};
    cleval_score_reducer *r;
    cleval_score_sums sums;
    assert_ok(cleval_score_reducer_create(test_device(), 2, 0, 1, &r));
    cl_mem s = upload(scores, sizeof scores), y = upload(labels, sizeof labels);
    assert_ok(cleval_score_reducer_add(r, s, y, 1, &sums));
    clReleaseMemObject(s);
    clReleaseMemObject(y);
    cleval_score_reducer_destroy(r);
    assert_int_equal(sums.top_k_hits, 0);
    assert_int_equal(sums.not_probabilities, 0);
    assert_int_equal(sums.as_given.count[13], 1); /* 0.9 is in [13/15, 14/15) */
}

/* Two rows: a confidence of exactly 1 (right) and 0.25 (wrong). torchmetrics keeps the
 * confidence of 1 in a group of its own: ECE = 1/2 * |1 - 1| + 1/2 * |0 - 0.25|. */
static void test_metrics_from_sums(void **state)
{
    (void)state;
    cleval_score_sums sums = {.rows = 2, .top_k_hits = 1};
    sums.as_given.log_loss = 1.5;
    sums.as_given.brier = 0.75;
    sums.as_given.confidence[15] = 1.0;
    sums.as_given.count[15] = 1;
    sums.as_given.correct[15] = 1;
    sums.as_given.confidence[3] = 0.25;
    sums.as_given.count[3] = 1;
    sums.softmax.log_loss = 99;
    cleval_score_metrics m;
    cleval_score_metrics_compute(&sums, 5, &m);
    assert_false(m.softmax);
    assert_int_equal(m.top_k, 5);
    assert_true(m.top_k_accuracy == 0.5);
    assert_true(m.log_loss == 0.75);
    assert_true(m.brier == 0.375);
    assert_true(m.ece == 0.125);
    assert_int_equal(m.bins[14].count, 1); /* the listed last bin holds the confidence of 1 */
    assert_true(m.bins[14].confidence == 1.0 && m.bins[14].accuracy == 1.0);
    assert_true(m.bins[14].upper == 1.0 && m.bins[0].lower == 0.0);
    assert_int_equal(m.bins[3].count, 1);
    assert_true(m.bins[3].confidence == 0.25 && m.bins[3].accuracy == 0.0);
    assert_int_equal(m.bins[5].count, 0);
    sums.not_probabilities = 1;
    cleval_score_metrics_compute(&sums, 0, &m);
    assert_true(m.softmax);
    assert_true(m.log_loss == 49.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reducer_odd_sizes),
        cmocka_unit_test(test_reducer_vector_widths),
        cmocka_unit_test(test_reducer_batches_add_up),
        cmocka_unit_test(test_reducer_k0_counts_nothing),
        cmocka_unit_test(test_metrics_from_sums),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
