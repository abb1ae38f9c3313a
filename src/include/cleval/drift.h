/* `cleval drift`: output-distribution drift between a reference run and a current run
 * (docs/contract.md "drift"). Each prediction file is streamed once through the device: a kernel
 * turns every scores row into its confidence, entropy and confidence bin, and the device
 * histograms count predicted classes, confidence bins and (with labels) the confusion matrix.
 * PSI, Jensen-Shannon distance and the chi-squared test are computed from those exact counts
 * on the host. Results are plain structs; cleval_drift_json() and cleval_drift_report() turn
 * them into the JSON and the human report. */
#ifndef CLEVAL_DRIFT_H
#define CLEVAL_DRIFT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/report.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CLEVAL_DRIFT_BINS = 10,               /* confidence bins over [0, 1], the last closed */
    CLEVAL_DRIFT_DEFAULT_BATCH = 1 << 16, /* rows per batch when the caller gives none */
    CLEVAL_DRIFT_MAX_ALERTS = 5,          /* class psi/js/chi2, confidence psi/js */
};

/* A zero proportion counts as this much in PSI and chi-squared (not renormalised). */
#define CLEVAL_DRIFT_FLOOR 1e-4
/* A scores row is a probability vector when its entries lie in [0, 1] and sum to 1 within
 * this. */
#define CLEVAL_DRIFT_PROB_TOLERANCE 1e-4

/* Alert limits; PSI and JS limits apply to the class and the confidence distributions alike.
 * A value above psi_warn but not above psi_alert is a warning, which never fails a run. */
typedef struct cleval_drift_thresholds {
    double psi_warn;  /* 0.1 */
    double psi_alert; /* 0.2: alert when PSI > this */
    double js_alert;  /* 0.1: alert when the JS distance > this */
    double alpha;     /* 0.05: alert when the chi-squared p-value < this */
} cleval_drift_thresholds;

/* The defaults above (docs/contract.md). */
cleval_drift_thresholds cleval_drift_default_thresholds(void);

typedef void (*cleval_drift_progress_fn)(uint64_t done, uint64_t total, void *user);

typedef struct cleval_drift_config {
    const char *path_reference;
    const char *path_current;
    /* When not NULL, read instead of opening the paths (which then only name the runs):
     * prediction sets already open, e.g. arrays in memory (cleval_dataset_from_arrays). The
     * run takes its own reference (cleval_dataset_share) and sets their class limit. */
    cleval_dataset *data_reference, *data_current;
    const char *pred_key;   /* NULL: "pred" */
    const char *scores_key; /* NULL: "scores" */
    const char *y_key;      /* NULL: "y" (optional in each file) */
    uint64_t batch;         /* rows per batch; 0: CLEVAL_DRIFT_DEFAULT_BATCH */
    /* Labels at or above it and longer class_names are refused before the class histograms
     * and the dense confusion matrix are sized; 0: CLEVAL_DEFAULT_MAX_CLASSES. */
    uint32_t max_classes;
    cleval_drift_thresholds thresholds;
    cleval_device *device;
    bool force_fp32; /* the confidence kernel in float even where the device has fp64 */
    cleval_drift_progress_fn progress;
    void *progress_user;
    /* Accept NaN and infinite scores: a sample without a confidence (a NaN or +Inf score, or
     * only -Inf ones) is left out of the confidence histogram and the means; -Inf scores
     * beside finite ones count as probability 0. Otherwise a file holding any fails with
     * CLEVAL_ERR_INPUT. */
    bool allow_nonfinite;
    /* Set by a signal handler to stop at the next batch (NULL: never): the run then fails
     * with CLEVAL_ERR_INTERRUPTED. */
    volatile sig_atomic_t *stop;
} cleval_drift_config;

/* What one file holds, after both were read (class arrays are n_classes long). */
typedef struct cleval_drift_side {
    const char *path;
    uint64_t n_samples;
    uint32_t score_width;
    bool probabilities; /* every row was a probability vector: confidence = its largest entry */
    bool has_labels;
    uint64_t *class_counts;                        /* [n_classes]: samples predicted as k */
    /* With labels, [n_classes] each: samples of true class k, and those of them predicted as
     * k. Recall and accuracy need nothing more; a C x C matrix would cost C^2 for a single
     * large label. */
    uint64_t *support, *correct;
    uint64_t confidence_counts[CLEVAL_DRIFT_BINS]; /* bin b: [b/10, (b+1)/10) */
    double mean_confidence;
    double mean_entropy; /* natural log (nats), of the softmax or of the row as given */
    uint64_t nonfinite_scores; /* NaN and infinite scores */
} cleval_drift_side;

typedef struct cleval_drift_alert {
    const char *name; /* "class_psi", "class_js", "class_chi2", "confidence_psi", ... */
    double limit;
    double value;
} cleval_drift_alert;

typedef struct cleval_drift_result {
    uint32_t n_classes; /* max label + 1 over pred (and y) of both files */
    cleval_drift_side reference, current;
    double class_psi, class_js, class_chi2, class_p_value;
    uint32_t class_dof; /* n_classes - 1; the p-value is 1 when it is 0 */
    double confidence_psi, confidence_js;
    bool has_recall;          /* both files have labels */
    double *recall_reference; /* [n_classes], NaN where the class has no support */
    double *recall_current;
    cleval_drift_thresholds thresholds;
    cleval_drift_alert alerts[CLEVAL_DRIFT_MAX_ALERTS];
    uint32_t n_alerts;
    cleval_drift_alert warnings[2]; /* PSI between psi_warn and psi_alert */
    uint32_t n_warnings;
    bool fp64;                      /* the confidence kernel ran in double precision */
    cleval_class_names class_names; /* from the reference's (else current's) class_names */
} cleval_drift_result;

/* Streams both files through the device and fills `out` (free it with
 * cleval_drift_result_free). Fails with CLEVAL_ERR_INPUT naming the file when it lacks pred or
 * scores, has zero samples, rows of different counts, or a scores row with NaN or +Inf (or no
 * entry above -Inf); CLEVAL_ERR_OPENCL when the device fails. Alerts are not errors. */
cleval_status cleval_drift_run(const cleval_drift_config *config, cleval_drift_result *out);

/* Frees what a result holds; a zeroed struct is a no-op. */
void cleval_drift_result_free(cleval_drift_result *r);

/* PSI (zero proportions floored at CLEVAL_DRIFT_FLOOR) and the base-2 Jensen-Shannon distance
 * (unfloored, as scipy.spatial.distance.jensenshannon(p, q, base=2)) between the
 * distributions of two count vectors of length n, each with a non-zero total. */
void cleval_drift_distances(const uint64_t *reference, const uint64_t *current, uint32_t n,
                            double *psi, double *js);

/* Chi-squared statistic of the current counts against the floored reference proportions times
 * the current total, over all n classes, and its p-value with n - 1 degrees of freedom (1 when
 * n is 1). */
void cleval_drift_chi2(const uint64_t *reference, const uint64_t *current, uint32_t n,
                       double *statistic, double *p_value);

/* Applies `t` to the statistics of `r`, filling its alerts and warnings. */
void cleval_drift_check(cleval_drift_result *r, const cleval_drift_thresholds *t);

/* The JSON report: docs/contract.md's keys plus this engine's additions (docs/usage.md). NULL when out of
 * memory. */
cJSON *cleval_drift_json(const cleval_drift_result *r);

/* The human report: both distributions side by side, the statistics, recall shifts, and
 * findings in words (what moved most, which alert fired, what to look at first). */
void cleval_drift_report(FILE *out, const cleval_drift_result *r);

#ifdef __cplusplus
}
#endif

#endif
