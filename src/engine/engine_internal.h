/* Pieces the engine's jobs share: the opened test set, and engine_run(), which turns a job
 * into a pipeline run with its slice, checkpoints and prediction or part file. */
#ifndef CLEVAL_ENGINE_INTERNAL_H
#define CLEVAL_ENGINE_INTERNAL_H

#include "cleval/dataset.h"
#include "cleval/engine.h"
#include "pipeline.h"

/* A test set opened for streaming. */
typedef struct engine_test_stream {
    cleval_dataset *ds;
    cleval_column *x;
    cleval_column *y; /* NULL when the file has no labels */
    uint64_t n;
} engine_test_stream;

/* Opens a data file (or shares `given`, a dataset already open, when not NULL) whose labels
 * and class names are held to `max_classes` (cleval_dataset_limit_classes). */
cleval_status engine_open_data(const char *path, cleval_dataset *given, uint32_t max_classes,
                               cleval_dataset **ds);

/* Opens X (required) and y (when present) and checks they have the same, non-zero length. */
cleval_status engine_open_test_set(const cleval_test_set *test, uint32_t max_classes,
                                   engine_test_stream *s);
void engine_close_test_set(engine_test_stream *s);

/* "[3, 32, 32]": a sample shape for messages. */
void engine_format_shape(char *out, size_t size, uint32_t rank, const uint64_t *shape);

/* Fails naming both shapes when the test samples' shape differs from `shape`. */
cleval_status engine_check_sample_shape(const engine_test_stream *s, uint32_t rank,
                                        const uint64_t *shape, const char *expected_from);

/* The inputs of a KNN job, opened and checked: the training set (X and y, labels required,
 * same length, at least one row), the test set, samples of the same shape in both, and the
 * class count max(label) + 1 over both sets' labels. */
typedef struct engine_knn_inputs {
    cleval_dataset *train;
    cleval_column *train_x, *train_y;
    engine_test_stream test;
    uint32_t n_classes;
} engine_knn_inputs;

cleval_status engine_open_knn_inputs(const cleval_knn_job *job, engine_knn_inputs *in);
void engine_close_knn_inputs(engine_knn_inputs *in);

/* Loads training rows [begin, end) into each of `count` searchers (their rows counted from
 * `begin`), chunk by chunk, then prepares them. */
cleval_status engine_load_train(cleval_knn *const *knns, uint32_t count, cleval_column *x,
                                cleval_column *y, uint64_t begin, uint64_t end);

/* The prediction file's "model" attribute of a KNN run. */
void engine_knn_description(const cleval_knn_config *config, uint64_t n_train, char *out,
                            size_t size);

/* The largest label of the test set (-1 without labels): one pass over y only. */
cleval_status engine_scan_labels(engine_test_stream *s, int32_t *max_label);

/* Counters a job keeps beside the counts (KNN tie counts): summed across devices, kept in
 * checkpoints and part files, restored on resume. */
enum { ENGINE_MAX_COUNTERS = 4 };
typedef struct engine_counters {
    uint32_t count;
    const char *names[ENGINE_MAX_COUNTERS];
    /* Reads the current values (all devices idle). */
    void (*read)(void *user, uint64_t *values);
    void *user;
    uint64_t restored[ENGINE_MAX_COUNTERS]; /* filled by engine_run from a checkpoint */
} engine_counters;

/* One job's run over its test set. */
typedef struct engine_run_spec {
    const char *command;     /* "metrics", "knn" or "eval": stored in part files */
    cleval_dataset *data;    /* the test set's file (class names, its path) */
    cleval_dataset *names_fallback; /* class names when `data` has none (KNN: the training set) */
    cleval_column *x;        /* NULL for metrics */
    cleval_elem_type x_type; /* what x is read as (float32 unless eval says otherwise) */
    cleval_column *labels;   /* NULL without labels */
    cleval_column *file_pred; /* metrics only */
    uint32_t n_classes;      /* 0: discovered from the data (metrics) */
    /* What fixes n_classes when the labels do not ("the model m.onnx"): class_names longer
     * than it are refused. NULL: n_classes comes from the labels (knn, metrics). */
    const char *classes_from;
    uint32_t batch;
    bool with_scores;        /* the prediction file keeps the scores */
    /* Score-based metrics from the score rows (needs labels; not for shards): ops.predict's,
     * or file_scores' (metrics) of score_width columns (0: n_classes). */
    bool score_metrics;
    cleval_column *file_scores;
    uint32_t score_width;
    uint32_t top_k;
    uint32_t errors;         /* --errors N (cleval_test_set.errors); 0: none */
    cleval_auc_mode auc;     /* ROC AUC and average precision with the score metrics */
    void **models;           /* [run->n_devices] */
    pipeline_worker_ops ops;
    const char *model_description;
    const char *save_path;   /* NULL: no file */
    bool save_counts;        /* store the counts in --save even for a whole run (metrics) */
    engine_counters *counters; /* may be NULL */
    /* Called once every row is done (all devices idle), before the prediction file is
     * committed: a failure discards the file. NULL: none. */
    cleval_status (*accept)(void *user);
    void *accept_user;
    /* Name/value string pairs a part file records so that `cleval merge` can report what the
     * job was (KNN: k, weights, metric, training rows); NULL-terminated, may be NULL. */
    const char *const *part_attributes;
} engine_run_spec;

/* Runs the job's slice (run->shard_*) through the pipeline with checkpoints, and writes the
 * prediction or part file. A run without --resume first removes a checkpoint left at the path.
 * On failure (CLEVAL_ERR_INTERRUPTED included) the checkpoint and the partial file stay for
 * --resume; without a checkpoint, the partial file goes too. */
cleval_status engine_run(const engine_run_spec *spec, const cleval_run_options *run,
                         cleval_predict_outcome *out);

/* A non-negative integer attribute written as decimal text (part files, checkpoints); false
 * when absent or not a number. */
bool engine_read_count(cleval_dataset *ds, const char *name, uint64_t *value);

/* The class names of `data`, or of `fallback` (may be NULL) when `data` has none. */
cleval_status engine_class_names(cleval_dataset *data, cleval_dataset *fallback,
                                 cleval_class_names *names);

/* An outcome's counts from a [rows][cols] count table (rows: true classes with labels, else
 * one): the confusion matrix with labels, the predicted classes either way; sets n_classes and
 * has_labels. */
cleval_status engine_fill_outcome(const char *path, const pipeline_counts *counts, bool labels,
                                  cleval_predict_outcome *out);

#endif
