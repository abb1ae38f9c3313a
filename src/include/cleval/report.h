/* Reports of a run: the human report (scikit-learn's classification_report layout, then the
 * confusion matrix or its most confused pairs), the JSON report of docs/contract.md, and writing
 * either to a file atomically. */
#ifndef CLEVAL_REPORT_H
#define CLEVAL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "cleval/auc.h"
#include "cleval/errors.h"
#include "cleval/device.h"
#include "cleval/metrics.h"
#include "cleval/scores.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Optional class names for the report; entries past `count` (or all, when names is NULL) are
 * shown as their label number. */
typedef struct cleval_class_names {
    char **names;
    uint32_t count;
} cleval_class_names;

/* Where and how fast a run went, for the report's last lines and the JSON "timing". */
typedef struct cleval_run_timing {
    const char *device; /* device name, or NULL */
    double total_s;     /* wall time of the whole run */
    uint64_t n_samples; /* samples processed, for samples_per_s */
    const char *model;  /* a line on the model (eval: its precision mode and size), or NULL */
} cleval_run_timing;

/* Matrices with more classes than this are summarised as their top confused pairs. */
enum { CLEVAL_REPORT_MAX_MATRIX_CLASSES = 20, CLEVAL_REPORT_TOP_PAIRS = 10 };

/* Writes scikit-learn's classification_report (digits=2) for `m`, byte for byte. */
void cleval_report_classification(FILE *out, const cleval_metrics *m,
                                  const cleval_class_names *names);

/* Writes the lines that follow the classification report: balanced accuracy, MCC and Cohen's
 * kappa (none, linear, quadratic weights; "nan" where undefined), 4 decimals each. */
void cleval_report_agreement(FILE *out, const cleval_metrics *m);

/* Writes the confusion matrix with row and column headers, or for more than
 * CLEVAL_REPORT_MAX_MATRIX_CLASSES classes the most frequent off-diagonal pairs. */
void cleval_report_confusion(FILE *out, const cleval_confusion *cm,
                             const cleval_class_names *names);

/* Writes "N samples in T s (R samples/s) on DEVICE", then "Model: ..." when timing->model. */
void cleval_report_throughput(FILE *out, const cleval_run_timing *timing);

/* Builds the JSON report of docs/contract.md: n_samples, n_classes, accuracy, macro, weighted,
 * micro, balanced_accuracy, mcc, cohen_kappa {none, linear, quadratic; null when undefined},
 * per_class, confusion_matrix, device and timing. `m` may be NULL for a run without
 * labels (then only n_samples, n_classes, device and timing). Returns NULL when out of
 * memory. */
cJSON *cleval_report_json(const cleval_metrics *m, const cleval_confusion *cm,
                          const cleval_class_names *names, uint64_t n_samples, uint32_t n_classes,
                          const cleval_run_timing *timing);

/* Adds the score-based metrics to a JSON report: "top_k" (when m->top_k), "log_loss",
 * "brier", "calibration" {ece, bins} and "probabilities" ("softmax" or "as_given"). */
void cleval_report_scores_json(cJSON *root, const cleval_score_metrics *m);

/* Writes the score-based metrics' lines: top-k accuracy, log loss, Brier score, ECE. */
void cleval_report_scores_text(FILE *out, const cleval_score_metrics *m);

/* Adds the error analysis as "errors" {n, confused_pairs, and with scores confident_wrong and
 * unconfident_right} (docs/contract.md). */
void cleval_report_errors_json(cJSON *root, const cleval_errors *e);

/* Writes the error analysis: the confused pairs with their first rows, then with scores the
 * most confident wrong and least confident right predictions, one aligned line each. */
void cleval_report_errors_text(FILE *out, const cleval_errors *e,
                               const cleval_class_names *names);
/* "CPU", "GPU", "accelerator" or "other". */
const char *cleval_device_type_name(cleval_device_type type);

/* The JSON array of `cleval devices --json`: index, platform, name, type, compute_units,
 * global_mem_bytes, opencl_c_version of each device. NULL when out of memory. */
cJSON *cleval_report_devices_json(const cleval_device_info *infos, uint32_t n);

/* A matrix of counts for a report tree: one raw placeholder item that lists the nonzero cells
 * only (json_matrix.c). cleval_report_json_text() and cleval_report_write_json() print it as
 * the JSON array of rows of numbers, every zero included, row by row as they write: the
 * printed report is what an array of number items would print, but neither the tree nor the
 * writer ever holds C^2 numbers (a cJSON number costs about 64 bytes, so 10^4 classes would
 * cost gigabytes). Readers of the tree use cleval_report_matrix_cells(). NULL when out of
 * memory. */
cJSON *cleval_report_counts_json(const cleval_counts *counts);

/* The shape and the nonzero cells (row-major, malloc'd: free()) of a placeholder made by
 * cleval_report_counts_json(): CLEVAL_ERR_INPUT when `item` is no placeholder, CLEVAL_ERR_NOMEM
 * when memory ran out. */
cleval_status cleval_report_matrix_cells(const cJSON *item, uint32_t *rows, uint32_t *cols,
                                         cleval_count_cell **cells, size_t *n);

/* The text of `json` as cleval_report_write_json() writes it, without the final newline
 * (numbers become raw items in `json`): heap memory to free(), or NULL when out of memory. */
char *cleval_report_json_text(cJSON *json);

/* Adds "roc_auc" and "average_precision", each {"macro": x, "weighted": x}, or null when no
 * class has both a positive and a negative sample. */
void cleval_report_auc_json(cJSON *root, const cleval_auc_result *auc);

/* Writes the lines "ROC AUC (ovr): macro x  weighted x" and "average precision (ovr): ...". */
void cleval_report_auc_text(FILE *out, const cleval_auc_result *auc);

/* Prints `json` to `path`, "-" meaning stdout, every number as the shortest decimal that reads
 * back to the same double (numbers become raw items in `json`). A file is written under a
 * temporary name in the same folder and renamed, so the final name never holds a partial
 * report; devices and pipes are written in place. */
cleval_status cleval_report_write_json(cJSON *json, const char *path);

#ifdef __cplusplus
}
#endif

#endif
