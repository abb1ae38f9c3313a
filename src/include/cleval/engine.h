/* The batch loops that turn a data file into results: read a batch, run it on the device,
 * accumulate counts, optionally save predictions. One function per kind of job. */
#ifndef CLEVAL_ENGINE_H
#define CLEVAL_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/auc.h"
#include "cleval/cluster.h"
#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/errors.h"
#include "cleval/gates.h"
#include "cleval/knn.h"
#include "cleval/nn.h"
#include "cleval/metrics.h"
#include "cleval/report.h"
#include "cleval/scores.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called after each batch with the samples done so far (of this process's slice). */
typedef void (*cleval_progress_fn)(uint64_t done, uint64_t total, void *user);

/* Where a run hands every finished batch's predictions (rows counted from the slice's first),
 * besides or instead of a prediction file: `scores` is NULL unless the job has scores
 * (width per row). Called from the calling thread, in no particular row order. */
typedef struct cleval_prediction_sink {
    cleval_status (*write)(void *user, uint64_t row0, uint32_t n, const int32_t *pred,
                           const float *scores, uint32_t width);
    void *user;
} cleval_prediction_sink;

/* How a job runs: on which devices, over which slice of the test set, with checkpoints. */
typedef struct cleval_run_options {
    cleval_device **devices; /* [n_devices]: batches are dealt to whichever device is free */
    uint32_t n_devices;
    uint32_t shard_index;    /* process the shard_index-th of shard_count contiguous slices */
    uint32_t shard_count;    /* 0 or 1: the whole test set */
    const char *checkpoint_path; /* NULL: no checkpoints */
    bool resume;                 /* continue from checkpoint_path */
    /* A checkpoint at the first batch boundary after checkpoint_rows rows (when not 0), else
     * after checkpoint_seconds (0: CLEVAL_DEFAULT_CHECKPOINT_SECONDS) since the last one. */
    uint64_t checkpoint_rows;
    double checkpoint_seconds;
    /* Labels at or above it, longer class_names and (eval) a model with more outputs are
     * refused before anything is sized by the class count; 0: CLEVAL_DEFAULT_MAX_CLASSES. */
    uint32_t max_classes;
    /* Identifies the job (inputs and options, not the slice): stored in checkpoints and part
     * files, so a resume or a merge refuses the state of another job. */
    const char *fingerprint;
    /* Set by a signal handler (NULL: never): 1 stops at the next batch boundary after a
     * checkpoint, 2 stops at once (the last checkpoint stands); the run then fails with
     * CLEVAL_ERR_INTERRUPTED, its message saying how far it got and how to resume. */
    volatile sig_atomic_t *stop;
    cleval_progress_fn progress;
    void *progress_user;
    const cleval_prediction_sink *sink; /* NULL: predictions go to the file only */
} cleval_run_options;

/* Bytes for a file path (PATH_MAX, 4096 on Linux) with a few words around it: the buffers
 * holding a derived file name or a message that names a path. */
enum { CLEVAL_PATH_TEXT_SIZE = 4200 };

/* The name of the prediction file that a run with checkpoints writes in place of save_path
 * until it finishes, kept for --resume: "<save_path>.partial". */
void cleval_engine_partial_path(const char *save_path, char *out, size_t size);
enum { CLEVAL_DEFAULT_CHECKPOINT_SECONDS = 60 };

/* The contiguous slice [begin, end) of n rows that shard `index` of `count` processes. */
void cleval_shard_range(uint64_t n, uint32_t index, uint32_t count, uint64_t *begin,
                        uint64_t *end);

/* What a run over a test set (or a slice of it) produced. */
typedef struct cleval_predict_outcome {
    uint64_t n_samples;            /* rows processed: the slice's */
    uint64_t n_total;              /* rows of the file */
    uint64_t row_begin, row_end;   /* the slice */
    uint32_t n_classes;
    bool has_labels;               /* the test set had labels: `confusion` is filled */
    cleval_confusion confusion;    /* true class x predicted class */
    uint64_t *predicted_counts;    /* [n_classes]: samples predicted as each class */
    cleval_class_names class_names;
    /* Score-based metrics' sums: filled when the run had scores and labels and was not a
     * shard (parts do not carry them). */
    bool has_scores;
    cleval_score_sums scores;
    uint32_t top_k; /* the top-k accuracy's k; 0: none */
    cleval_errors errors; /* --errors N: filled when errors.n > 0 */
    /* ROC AUC and average precision: filled with the score metrics when the job's auc mode
     * asks for them and the run did not resume from a checkpoint (the rows before it are not
     * on the device). */
    bool has_auc;
    cleval_auc_result auc;
    double read_s;    /* HDF5 reads and checks of the test set */
    double wait_s;    /* waiting for the devices */
} cleval_predict_outcome;

void cleval_predict_outcome_free(cleval_predict_outcome *out);

enum { CLEVAL_DEFAULT_METRICS_BATCH = 1 << 20 };
/* With a scores dataset the default batch holds at most this many scores (64 MB of float32 per
 * batch slot): 1000 classes get 16777 rows, so wide files stream in many batches that overlap
 * reading with the device instead of one multi-gigabyte slot per batch. */
enum { CLEVAL_DEFAULT_METRICS_BATCH_SCORES = 1 << 24 };

/* `cleval metrics`: confusion counts from saved labels and predictions. */
typedef struct cleval_metrics_job {
    const char *data_path;
    cleval_dataset *data;  /* when not NULL, read instead of data_path (which names it) */
    const char *y_key;     /* NULL: "y" */
    const char *pred_key;  /* NULL: "pred" */
    /* rows per batch; 0: CLEVAL_DEFAULT_METRICS_BATCH, fewer for wide score rows
     * (CLEVAL_DEFAULT_METRICS_BATCH_SCORES) */
    uint64_t batch;
    const char *save_path; /* NULL: no prediction file */
    const char *scores_key; /* NULL: "scores"; when the file has it, score metrics too */
    uint32_t top_k;         /* 0: no top-k accuracy */
    uint32_t errors;        /* error analysis with N rows per list (cleval_errors); 0: none */
    cleval_auc_mode auc;    /* ROC AUC and average precision with the score metrics */
    cleval_run_options run;
} cleval_metrics_job;

/* Streams y and pred in batches through the device histogram. C = max(label) + 1 over y and
 * pred, discovered while streaming. A float dataset `scores` [N, W] (W above every label)
 * adds the score-based metrics. */
cleval_status cleval_engine_metrics(const cleval_metrics_job *job, cleval_predict_outcome *out);

/* The test-set side shared by `eval` and `knn`. */
typedef struct cleval_test_set {
    const char *data_path;
    cleval_dataset *data;  /* when not NULL, read instead of data_path (which names it) */
    const char *x_key;     /* NULL: "X" */
    const char *y_key;     /* NULL: "y" */
    uint64_t batch;        /* samples per batch; 0: the model's preferred size */
    const char *save_path; /* NULL: no prediction file */
    uint32_t top_k;        /* score metrics' top-k accuracy; 0: none */
    /* Error analysis with N rows per list (cleval_errors, N <= CLEVAL_ERRORS_MAX); 0: none.
     * It needs labels, and is refused (CLEVAL_ERR_USAGE) for a shard or with a checkpoint:
     * neither part files nor checkpoints carry its lists. */
    uint32_t errors;
    cleval_auc_mode auc;   /* ROC AUC and average precision with the score metrics */
} cleval_test_set;

enum { CLEVAL_DEFAULT_KNN_BATCH = 4096 };

/* `cleval knn`: the KNN baseline over a test set. */
typedef struct cleval_knn_job {
    const char *train_path;
    cleval_dataset *train_data; /* when not NULL, read instead of train_path (which names it) */
    const char *train_x_key, *train_y_key; /* NULL: the test set's keys */
    cleval_knn_config config; /* k, weights, metric; n_classes is computed from the labels */
    cleval_test_set test;
    cleval_run_options run;
} cleval_knn_job;

typedef struct cleval_knn_outcome {
    cleval_predict_outcome predict;
    uint64_t n_train;
    cleval_knn_stats stats; /* summed over devices (and restored from a checkpoint) */
    double load_s; /* reading the training set and laying it out on the devices */
} cleval_knn_outcome;

/* Loads the training set (labels required), then classifies the test set in batches. C is
 * max(label) + 1 over the training and test labels. */
cleval_status cleval_engine_knn(const cleval_knn_job *job, cleval_knn_outcome *out);

/* `cleval knn --shard-train` under mpirun: every rank holds one contiguous slice of the
 * training set (on run.devices[0]) and searches every test query in it; rank 0 gathers each
 * query's k + 1 nearest of every slice, votes on its device and writes the results, which are
 * exactly those of one process over the whole training set. Other ranks' outcomes hold only
 * their counters. Shards, checkpoints and several devices per rank do not apply. */
cleval_status cleval_engine_knn_shard_train(const cleval_knn_job *job,
                                            const cleval_cluster *cluster,
                                            cleval_knn_outcome *out);

enum { CLEVAL_DEFAULT_EVAL_BATCH = 256, CLEVAL_DEFAULT_CALIBRATION = 512 };

/* `cleval eval`: the network of an ONNX file over a test set. */
typedef struct cleval_eval_job {
    const char *model_path;
    const char *precision; /* "fp32" (NULL means it too), "fp16" or "int8" */
    /* fp16's arithmetic: "auto" (NULL means it too: half where every device of the run has
     * cl_khr_fp16; this process's devices only, so callers running several processes settle
     * it themselves), "half" (refused on a device without it) or "float"; other precisions
     * ignore it. */
    const char *arithmetic;
    /* int8: the activation scales come from the fp32 network (on the first device) run on
     * the first `calibration` samples of the test file (all when it has fewer; the whole
     * file's first rows whatever the shard); 0 means CLEVAL_DEFAULT_CALIBRATION. */
    uint32_t calibration;
    double prune; /* magnitude pruning of the weights, 0 <= prune < 1 (cleval_nn_options) */
    cleval_test_set test;
    cleval_run_options run;
    bool profile; /* record per-layer device time (slower: waits after each kernel) */
    /* Accept NaN and infinite scores from the network. Otherwise a run that produced any fails
     * with CLEVAL_ERR_INPUT (naming the model, their count and the first sample) and writes no
     * prediction file. Accepted, they are saved as they are, and the prediction of a row is
     * still its argmax with a NaN counting as the maximum (torch.argmax). */
    bool allow_nonfinite;
    /* Preprocessing on the device for a float (or float16) model input (cleval_nn_input_prep:
     * scale, per-channel mean and std, channels-last samples); zeroed: none. The samples are
     * read in the model input's type when it is an integer type (the file must hold integers
     * that fit it); for a float model, uint8, int8, uint16 and int16 files move to the device
     * as they are and become floats there, other types are read as float32. A file whose
     * element type or sample shape (channels-last when input.nhwc) cannot feed the model is
     * refused with CLEVAL_ERR_INPUT naming both. */
    cleval_nn_input_prep input;
} cleval_eval_job;

/* One layer's share of the run (device 0's, or summed over the devices). */
typedef struct cleval_eval_layer {
    char name[64];
    char op[64];
    char kernel[128];
    double seconds;
    double flops;
} cleval_eval_layer;

typedef struct cleval_eval_outcome {
    cleval_predict_outcome predict;
    uint32_t input_rank;
    uint64_t input_shape[8];
    int64_t opset;
    double load_s;            /* reading the model, building kernels, uploading weights */
    cleval_nn_model_info model_info; /* precision mode, pruning and size of the network */
    /* Device memory of the network after the run (the device holding the most, with several) */
    cleval_nn_device_memory device_memory;
    uint32_t n_layers;        /* filled when job->profile */
    cleval_eval_layer *layers;
    uint64_t nonfinite_scores; /* NaN and infinite scores the network produced */
} cleval_eval_outcome;

/* Loads the model on every device, checks the test samples' shape against its input, and
 * classifies the test set (labels, when present, must be below the output width). */
cleval_status cleval_engine_eval(const cleval_eval_job *job, cleval_eval_outcome *out);
void cleval_eval_outcome_free(cleval_eval_outcome *out);

/* `cleval merge`: part files of one sharded job combined into the whole run's results. */
enum { CLEVAL_MAX_PART_ATTRIBUTES = 16 };
typedef struct cleval_merge_outcome {
    char command[16];        /* "metrics", "knn" or "eval" */
    char device[1024];       /* as the parts record it */
    cleval_predict_outcome predict;
    /* The job's own facts and counters, from the parts' attributes (counters summed). */
    uint32_t n_attributes;
    char attribute_names[CLEVAL_MAX_PART_ATTRIBUTES][64];
    char attribute_values[CLEVAL_MAX_PART_ATTRIBUTES][256];
} cleval_merge_outcome;

/* How cleval_engine_merge treats its parts. */
typedef struct cleval_merge_options {
    /* Parts whose scores hold NaN or infinities (eval parts record how many:
     * eval_nonfinite_scores) are refused with CLEVAL_ERR_INPUT unless this is set; accepted,
     * they are copied as they are. */
    bool allow_nonfinite;
    /* Parts of more classes are refused before their counts are read; 0:
     * CLEVAL_DEFAULT_MAX_CLASSES. */
    uint32_t max_classes;
    /* Set by a signal handler (NULL: never) to stop the copy of the rows at its next chunk:
     * CLEVAL_ERR_INTERRUPTED, and no file. */
    volatile sig_atomic_t *stop;
} cleval_merge_options;

/* Checks the parts belong to one job and cover every slice exactly once, adds their counts,
 * and writes the whole prediction file to save_path (NULL: none); `options` may be NULL (the
 * defaults). */
cleval_status cleval_engine_merge(const char *const *parts, uint32_t n_parts,
                                  const char *save_path, const cleval_merge_options *options,
                                  cleval_merge_outcome *out);

/* The value of a merged attribute ("" when absent). */
const char *cleval_merge_attribute(const cleval_merge_outcome *out, const char *name);

/* The members an eval or knn report adds to the metrics (report_members.c): the CLI, `cleval
 * merge` and the library's results build them here so that each prints the same JSON. */

/* The "model" member: path, opset, input_shape, output_width, precision. */
cJSON *cleval_eval_model_json(const char *path, int64_t opset, uint32_t rank,
                              const uint64_t *shape, uint32_t output_width, const char *precision);

/* An eval run's precision mode (cleval_nn_model_info, or a part file's attributes). */
typedef struct cleval_eval_mode {
    const char *precision;  /* "fp32", "fp16", "int8" */
    const char *arithmetic; /* "float" or "half" */
    double prune;
    uint64_t calibration_samples;
    uint64_t size_bytes;
    const cleval_nn_device_memory *device_memory; /* NULL when not known (merge) */
} cleval_eval_mode;
cleval_eval_mode cleval_eval_mode_of(const cleval_eval_outcome *out);

/* Adds the mode's fields to the "model" member. */
void cleval_eval_mode_json(cJSON *model, const cleval_eval_mode *mode);

/* The JSON report of a run as `--json` writes it (docs/contract.md): with labels the metrics,
 * then the score metrics, error analysis and AUC the run has; without labels the
 * predicted-class counts; then the members of `extra` (may be NULL; they are moved, `extra`
 * stays the caller's), then "gates" and "passed" when n_gates > 0. Shared by the command-line
 * tool and the library so that both print the same report. */
cleval_status cleval_predict_report_json(const cleval_predict_outcome *outcome,
                                         const cleval_run_timing *timing, cJSON *extra,
                                         const cleval_gate *gates, uint32_t n_gates, cJSON **out);

/* "model" (with its mode), "nonfinite_scores" and "timing_breakdown" of an eval run. */
cJSON *cleval_eval_report_members(const cleval_eval_job *job, const cleval_eval_outcome *out);

/* The "knn" member. */
cJSON *cleval_knn_json(uint32_t k, const char *weights, const char *metric, uint64_t n_train,
                       uint64_t distance_ties, uint64_t vote_ties, uint64_t searched_again);

/* "knn" and "timing_breakdown" of a knn run. */
cJSON *cleval_knn_report_members(const cleval_knn_job *job, const cleval_knn_outcome *out);

/* Seconds on a monotonic clock. */
double cleval_seconds(void);

#ifdef __cplusplus
}
#endif

#endif
