/* CI gates on a run's metrics (--min-accuracy, --min-class-recall) and the files a CI job
 * reads: a JUnit XML file with one testcase per gate, of any command that has gates, and a
 * Markdown summary of a run's metrics. */
#ifndef CLEVAL_GATES_H
#define CLEVAL_GATES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "cleval/metrics.h"
#include "cleval/report.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CLEVAL_GATE_NO_CLASS = -1, CLEVAL_METRIC_GATES = 2 };

/* One gate: a maximum (passed when value <= limit) or, with `below`, a minimum (passed when
 * value >= limit). */
typedef struct cleval_gate {
    const char *name; /* "min_accuracy", "min_class_recall"; compare's and drift's names */
    double limit;
    double value;
    bool below;
    bool passed;
    int64_t class_index; /* the class the value is of (min_class_recall), or NO_CLASS */
} cleval_gate;

/* The gates of eval, knn and metrics; each is checked only when its `use_` flag is set. */
typedef struct cleval_metric_limits {
    bool use_min_accuracy;
    double min_accuracy;
    bool use_min_class_recall;
    double min_class_recall; /* for every class with support */
} cleval_metric_limits;

/* Checks `limits` against `m`: min_accuracy's value is the accuracy, min_class_recall's the
 * smallest recall of a class with support (the first such class). Fills gates[0..*n). */
void cleval_metric_gates(const cleval_metrics *m, const cleval_metric_limits *limits,
                         cleval_gate gates[CLEVAL_METRIC_GATES], uint32_t *n);

/* Whether every gate passed (true for none). */
bool cleval_gates_passed(const cleval_gate *gates, uint32_t n);

/* One line on a gate, without newline: "min_accuracy: 0.8 < limit 0.9 (below it by 0.1)",
 * naming the class when there is one. */
void cleval_gate_describe(const cleval_gate *g, const cleval_class_names *names, char *out,
                          size_t size);

/* The human report's gate lines, as `cleval compare` prints its own: "Gates:", PASS or FAIL
 * with the margin for each, and the verdict. */
void cleval_gates_report(FILE *out, const cleval_gate *gates, uint32_t n,
                         const cleval_class_names *names);

/* The JSON "gates" array: name, limit, value, passed, and for a class gate its "class" (label)
 * and "class_name". NULL when out of memory. */
cJSON *cleval_gates_json(const cleval_gate *gates, uint32_t n, const cleval_class_names *names);

/* Writes the JUnit XML file `path` (atomically): one testsuite `suite` ("cleval compare") with
 * one testcase per gate, a failed one holding <failure message="..."> with its values. */
cleval_status cleval_gates_write_junit(const char *path, const char *suite,
                                       const cleval_gate *gates, uint32_t n,
                                       const cleval_class_names *names);

/* Writes the Markdown summary `path` (atomically): a title with the verdict, the headline
 * metrics, the gates as a table, and the per-class table (up to
 * CLEVAL_SUMMARY_MAX_CLASSES classes). */
enum { CLEVAL_SUMMARY_MAX_CLASSES = 50 };
cleval_status cleval_gates_write_summary(const char *path, const char *title,
                                         const cleval_metrics *m, const cleval_class_names *names,
                                         const cleval_gate *gates, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
