/* `cleval compare`: a paired verdict between two prediction files over the same test set
 * (docs/contract.md "compare"). Both files are streamed in batches, side by side, on the host:
 * agreement, flips and the flip matrix, both accuracies with a paired confidence interval for
 * their difference, McNemar's exact test, score differences, and the gates a CI job sets.
 * Results are plain structs; cleval_compare_json() and cleval_compare_report() turn them into
 * the JSON report and the human report. */
#ifndef CLEVAL_COMPARE_H
#define CLEVAL_COMPARE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "cleval/dataset.h"
#include "cleval/report.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CLEVAL_COMPARE_DEFAULT_BATCH = 1 << 16, /* rows per batch when the caller gives none */
    CLEVAL_COMPARE_TOP = 10,                /* flips and score differences kept for the report */
    CLEVAL_COMPARE_MAX_GATES = 4,
};

/* The tolerances of a CI job; a gate is checked only when its `use_` flag is set. */
typedef struct cleval_compare_limits {
    bool use_max_flip_rate;
    double max_flip_rate; /* fails when flips / n exceeds it */
    bool use_max_accuracy_drop;
    double max_accuracy_drop; /* fails when accuracy_a - accuracy_b exceeds it (needs labels) */
    bool use_alpha;
    double alpha;          /* fails when McNemar's p is below it (needs labels) */
    bool alpha_is_default; /* without labels the alpha gate is dropped rather than refused */
    bool use_max_score_diff;
    double max_score_diff; /* fails when max |score_a - score_b| exceeds it (needs scores) */
} cleval_compare_limits;

typedef void (*cleval_compare_progress_fn)(uint64_t done, uint64_t total, void *user);

typedef struct cleval_compare_config {
    const char *path_a;     /* the baseline run */
    const char *path_b;     /* the candidate run */
    /* When not NULL, read instead of opening path_a / path_b (which then only name the runs):
     * prediction sets already open, e.g. arrays in memory (cleval_dataset_from_arrays). The
     * run takes its own reference (cleval_dataset_share) and sets their class limit. */
    cleval_dataset *data_a, *data_b;
    const char *pred_key;   /* NULL: "pred" */
    const char *y_key;      /* NULL: "y" */
    const char *scores_key; /* NULL: "scores" */
    uint64_t batch;         /* rows per batch; 0: CLEVAL_COMPARE_DEFAULT_BATCH */
    /* Labels at or above it and longer class_names are refused before the dense flip matrix
     * is sized; 0: CLEVAL_DEFAULT_MAX_CLASSES. */
    uint32_t max_classes;
    const char *save_path;  /* NULL, or the HDF5 file of flipped samples to write */
    cleval_compare_limits limits;
    cleval_compare_progress_fn progress;
    void *progress_user;
    /* Accept NaN and infinite scores: pairs where either score is one are left out of the
     * score differences (and the max_abs_score_diff gate) and only counted. Otherwise a file
     * holding any fails with CLEVAL_ERR_INPUT. */
    bool allow_nonfinite;
    /* Set by a signal handler to stop at the next batch (NULL: never): the run then fails
     * with CLEVAL_ERR_INTERRUPTED and writes nothing. */
    volatile sig_atomic_t *stop;
} cleval_compare_config;

/* One sample singled out for the report: a flip, or a large score difference. */
typedef struct cleval_compare_sample {
    uint64_t index;
    int32_t pred_a, pred_b;
    int32_t y;            /* -1 without labels */
    double score_diff;    /* the sample's largest |score_a - score_b| (0 without scores) */
    uint32_t score_class; /* the column where it is */
    float score_a, score_b;
} cleval_compare_sample;

/* A gate: passed is value <= limit, or for `below` gates (McNemar) value >= limit. */
typedef struct cleval_compare_gate {
    const char *name; /* "flip_rate", "accuracy_drop", "mcnemar_p", "max_abs_score_diff" */
    double limit;
    double value;
    bool below; /* fails when the value is below the limit rather than above it */
    bool passed;
} cleval_compare_gate;

typedef struct cleval_compare_result {
    const char *path_a, *path_b; /* the config's strings, not copies */
    uint64_t n_samples;
    uint32_t n_classes;    /* max label + 1 over both files' pred (and y) */
    /* n_classes x n_classes, dense or sparse (counts.h): row = class in A, column = class in B */
    cleval_counts flip_matrix;
    uint64_t agreements, flips;
    double agreement, flip_rate;

    bool has_labels; /* both files hold the same y */
    uint64_t both_right, a_only_right /* McNemar's b */, b_only_right /* c */, both_wrong;
    double accuracy_a, accuracy_b, accuracy_diff; /* accuracy_b - accuracy_a */
    double diff_ci_low, diff_ci_high;             /* Newcombe's 95% interval, paired */
    double mcnemar_p, mcnemar_log_p;

    bool has_scores;      /* both files hold scores of the same width */
    char score_note[160]; /* why not, when has_scores is false ("" otherwise) */
    uint32_t score_width;
    double max_abs_score_diff, max_rel_score_diff, mean_abs_score_diff; /* finite pairs only */
    uint64_t nonfinite_a, nonfinite_b;     /* NaN and infinite scores in each file */
    uint64_t max_abs_index, max_rel_index; /* first sample where each maximum is reached */
    uint32_t max_abs_class, max_rel_class;

    cleval_compare_sample top_flips[CLEVAL_COMPARE_TOP]; /* largest score change first */
    uint32_t n_top_flips;
    cleval_compare_sample top_score_diffs[CLEVAL_COMPARE_TOP];
    uint32_t n_top_score_diffs;

    cleval_compare_gate gates[CLEVAL_COMPARE_MAX_GATES];
    uint32_t n_gates;
    bool passed;                    /* every gate passed (true without gates) */
    cleval_class_names class_names; /* from A's (else B's) class_names, if any */
} cleval_compare_result;

/* Streams both files and fills `out` (free it with cleval_compare_result_free). Fails with
 * CLEVAL_ERR_INPUT, naming the files, when they differ in length or in y, when one has y and
 * the other not, when a file lacks pred, holds no samples, or holds NaN or infinite scores
 * (unless config->allow_nonfinite); with
 * CLEVAL_ERR_USAGE when a limit needs labels or scores the files do not have. A failed gate
 * is not an error: out->passed is false. With save_path the flipped samples are written (the
 * file appears only when everything succeeded). */
cleval_status cleval_compare_run(const cleval_compare_config *config, cleval_compare_result *out);

/* Frees what a result holds; a zeroed struct is a no-op. */
void cleval_compare_result_free(cleval_compare_result *r);

/* Newcombe's hybrid score interval (his method 10) for the difference of two paired
 * proportions, p_b - p_a, from the 2 x 2 table of a paired run: both right, only A right, only
 * B right, both wrong. z is the normal quantile (CLEVAL_STATS_Z95 for 95%). */
void cleval_compare_paired_interval(uint64_t both_right, uint64_t a_only, uint64_t b_only,
                                    uint64_t both_wrong, double z, double *low, double *high);

/* The JSON report: docs/contract.md's keys plus this engine's additions (docs/usage.md). NULL when out of
 * memory. */
cJSON *cleval_compare_json(const cleval_compare_result *r);

/* The human report: summary, accuracies and McNemar, score differences, the flip matrix (or
 * its largest off-diagonal cells), the top flips, and each gate with its margin. */
void cleval_compare_report(FILE *out, const cleval_compare_result *r);

#ifdef __cplusplus
}
#endif

#endif
