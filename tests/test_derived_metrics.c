/* Balanced accuracy, MCC and Cohen's kappa against scikit-learn, bit for bit: the cases in
 * fixtures/derived/derived_cases.h (tools/make_derived_fixtures.py) hold confusion matrices and
 * what balanced_accuracy_score, matthews_corrcoef and cohen_kappa_score (weights None, 'linear',
 * 'quadratic') return for the labels behind them. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "cleval/metrics.h"
#include "fixtures/derived/derived_cases.h"

/* The same double, or both NaN (scikit-learn's value for an undefined kappa). */
static void expect_bits(double got, double expected, const char *what, const char *name)
{
    bool same = isnan(expected) ? isnan(got) : memcmp(&got, &expected, sizeof got) == 0;
    if (!same) fail_msg("%s: %s is %.17g, scikit-learn says %.17g", name, what, got, expected);
}

static void test_against_scikit_learn(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof derived_cases / sizeof *derived_cases; i++) {
        const derived_case *c = &derived_cases[i];
        cleval_confusion cm;
        assert_ok(cleval_confusion_init(&cm, c->n_classes));
        assert_ok(cleval_counts_add_dense(&cm.counts, c->n_classes, c->n_classes, c->counts));
        cleval_metrics m;
        assert_ok(cleval_metrics_compute(&cm, &m));
        expect_bits(m.balanced_accuracy, c->balanced_accuracy, "balanced accuracy", c->name);
        expect_bits(m.mcc, c->mcc, "MCC", c->name);
        expect_bits(m.cohen_kappa[CLEVAL_KAPPA_NONE], c->kappa_none, "kappa", c->name);
        expect_bits(m.cohen_kappa[CLEVAL_KAPPA_LINEAR], c->kappa_linear, "linear kappa", c->name);
        expect_bits(m.cohen_kappa[CLEVAL_KAPPA_QUADRATIC], c->kappa_quadratic, "quadratic kappa",
                    c->name);
        cleval_metrics_free(&m);
        cleval_confusion_free(&cm);
    }
}

/* Classes beyond the labels seen (a wider matrix, as when class_names lists more classes)
 * change nothing: scikit-learn never sees them. */
static void test_unseen_classes_change_nothing(void **state)
{
    (void)state;
    const derived_case *c = &derived_cases[0];
    cleval_confusion cm;
    assert_ok(cleval_confusion_init(&cm, c->n_classes));
    assert_ok(cleval_counts_add_dense(&cm.counts, c->n_classes, c->n_classes, c->counts));
    assert_ok(cleval_confusion_grow(&cm, c->n_classes + 5));
    cleval_metrics m;
    assert_ok(cleval_metrics_compute(&cm, &m));
    expect_bits(m.balanced_accuracy, c->balanced_accuracy, "balanced accuracy", c->name);
    expect_bits(m.mcc, c->mcc, "MCC", c->name);
    expect_bits(m.cohen_kappa[CLEVAL_KAPPA_QUADRATIC], c->kappa_quadratic, "quadratic kappa",
                c->name);
    cleval_metrics_free(&m);
    cleval_confusion_free(&cm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_scikit_learn),
        cmocka_unit_test(test_unseen_classes_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
