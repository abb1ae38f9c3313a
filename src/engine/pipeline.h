/* The batch pipeline every job runs on: the calling thread reads batches from HDF5 ahead of
 * the devices and writes finished predictions, while one worker thread per device takes the
 * next filled batch (so a faster device takes more), runs the model, and counts (true,
 * predicted) pairs on its own device. Counts of all devices add up exactly, and predictions
 * are written at their rows, so the results equal a single device's. HDF5 is only ever called
 * from the calling thread.
 *
 * A worker keeps up to PIPELINE_IN_FLIGHT batches enqueued on its device and waits only for
 * the oldest one's event, so the device never idles while the host stages the next batch; the
 * samples are read into page-locked memory, and nothing comes back to the host per batch
 * except what a host consumer needs (saved rows, error analysis, score sums). */
#ifndef CLEVAL_ENGINE_PIPELINE_H
#define CLEVAL_ENGINE_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleval/auc.h"
#include "cleval/counts.h"
#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/errors.h"
#include "cleval/engine.h"
#include "cleval/histogram.h"
#include "cleval/metrics.h"
#include "cleval/predfile.h"
#include "cleval/scores.h"

/* Exact counts: (true class, predicted class) pairs when the data has labels (rows = cols =
 * C), else predicted classes only (rows = 1). Dense or sparse by size (counts.h); counts read
 * from a checkpoint are dense. */
typedef cleval_counts pipeline_counts;

void pipeline_counts_free(pipeline_counts *counts);

/* Batches one worker keeps enqueued on its device at a time. */
enum { PIPELINE_IN_FLIGHT = 3 };

/* One batch in flight. The reader fills the inputs; a worker fills the outputs. */
typedef struct pipeline_slot {
    uint64_t row0;      /* first row, in file coordinates */
    uint32_t n;
    /* [n][row_size] features of config->x_type, or NULL without a model; page-locked memory
     * of the first device (x_mem) */
    void *x;
    cleval_hostbuf x_mem;
    /* The host needs pred filled (saved, sunk, or error analysis); else predict may leave the
     * predictions on the device only. */
    bool host_pred;
    int32_t *labels;    /* [n] true classes, or NULL without labels */
    int32_t *pred;      /* [n] predictions: read from the file (metrics) or the model's */
    /* [n][score_width] when saved, or reduced from the host (see pipeline_worker_ops),
     * else NULL */
    float *scores;
    int32_t max_label;  /* largest label or prediction read with this batch (metrics) */
    bool host_counted;  /* its pairs are counted on the host, not in a device histogram */
    cleval_score_sums score_sums; /* the batch's score-metric sums (config->score_metrics) */
    /* config->errors with scores: the batch's picks, [CLEVAL_ERROR_LISTS][min(N, batch)] */
    cleval_error_sample *error_picks;
    uint32_t n_error_picks[CLEVAL_ERROR_LISTS];
} pipeline_slot;

/* What a worker runs on each batch, with its own device and model. */
typedef struct pipeline_worker_ops {
    /* Classifies slot->x: fills slot->pred (host, where slot->host_pred) and slot->scores
     * (when not NULL), and returns the device buffers holding the same predictions in *pred
     * and the score rows (float [n][score_width], contiguous from offset 0) in *scores, or NULL
     * there when the rows are only in slot->scores. The score metrics reduce *scores where it
     * is not NULL (the rows are not uploaded again), else an upload of slot->scores. It may
     * return with the work still enqueued on the device's queue (slot->x and the host arrays
     * stay untouched until that queue has finished it); the host arrays are filled once it
     * has. */
    cleval_status (*predict)(void *model, pipeline_slot *slot, cl_mem *pred, cl_mem *scores);
    /* When not NULL: called on the worker's thread once the batch's commands have finished,
     * batches of one worker in the order predict took them. */
    cleval_status (*finish)(void *model, pipeline_slot *slot);
    /* When not NULL: called before each predict. A model that can add the batch's (label,
     * prediction) pairs to the histogram itself (the network's fused head) is handed its
     * atomic target `hist` (uint32 [rows][cols]; NULL: it must not count), the batch's labels
     * (NULL without) and whether anything reads the score rows; it sets *taken when its
     * predict will count, and the worker's own histogram launch is then skipped. */
    cleval_status (*count_into)(void *model, cl_mem hist, cl_mem labels, uint32_t rows,
                                uint32_t cols, bool scores_needed, bool *taken);
    /* predict always returns *scores: slot->scores is then allocated only when the scores
     * are saved, so the rows are not read back to the host for nothing. */
    bool scores_on_device;
} pipeline_worker_ops;

typedef struct pipeline_config {
    /* Inputs: x may be NULL (metrics), labels may be NULL (no y), file_pred is set only for
     * metrics (predictions read from the file). */
    cleval_column *x;
    cleval_column *labels;
    cleval_column *file_pred;
    cleval_elem_type x_type;     /* the type x is read as (cleval_column_read_as) */
    uint64_t row_begin, row_end; /* the rows to process (a shard, or the whole file) */
    uint32_t batch;
    uint32_t n_classes;          /* 0: discovered from the data (metrics) */
    bool with_scores;            /* the scores are saved with the predictions */
    /* Score-based metrics (labels required): each batch's score rows are reduced on its
     * device and the sums added in row order, so the result does not depend on which device
     * took which batch. The rows come from ops.predict, or from file_scores (metrics). */
    bool score_metrics;
    cleval_column *file_scores;  /* metrics: the file's scores, or NULL */
    uint32_t score_width;        /* scores per row (the class count of the model or file) */
    uint32_t top_k;              /* 0: no top-k hits counted */
    /* Error analysis (labels required; NULL: none): each finished batch's confused rows are
     * added on the calling thread, and with score_metrics each worker selects the batch's
     * confidence picks on its device first. */
    cleval_errors_collector *errors;
    /* When not NULL, each batch's score rows and labels are also put in this store at their
     * rows (row - row_begin), for the ROC AUC at the end of the run. */
    cleval_auc_store *auc;

    uint32_t n_workers;
    cleval_device **devices;     /* [n_workers] */
    void **models;               /* [n_workers], passed to ops.predict */
    pipeline_worker_ops ops;

    cleval_predfile *save;       /* NULL: predictions are not kept */
    const cleval_prediction_sink *sink; /* NULL: none; rows counted from save_row0 */
    uint64_t save_row0;          /* the row of the file that is row 0 of `save` */
    /* When not NULL, state_rows_digest() of every batch written to `save` is added here. */
    uint64_t *rows_digest;

    void (*progress)(uint64_t done, uint64_t total, void *user);
    void *progress_user;

    /* Checkpoints: every `checkpoint_rows` rows (when not 0), else once `checkpoint_seconds`
     * have passed since the last one, the pipeline drains at the next batch boundary and calls
     * checkpoint() with the exact counts (and score sums) of every row before `rows_done`. NULL: none. */
    cleval_status (*checkpoint)(void *user, uint64_t rows_done, const pipeline_counts *counts,
                                const cleval_score_sums *scores);
    void *checkpoint_user;
    uint64_t checkpoint_rows;
    double checkpoint_seconds;
    /* Counts restored from a checkpoint, added to the result (NULL: none). */
    const pipeline_counts *initial_counts;
    /* Score sums restored from a checkpoint, the start of the result's (NULL: none). */
    const cleval_score_sums *initial_scores;
    /* Set (by a signal handler) to stop early, failing with CLEVAL_ERR_INTERRUPTED: 1 drains
     * the batches in flight and checkpoints; 2 stops dealing and checkpointing at once (the
     * batches running on a device still finish). */
    volatile sig_atomic_t *stop;
} pipeline_config;

typedef struct pipeline_result {
    pipeline_counts counts;
    cleval_score_sums scores; /* config->score_metrics: the sums over every row */
    uint64_t rows_done; /* rows finished (also when the run failed or was stopped) */
    double read_s; /* the calling thread in HDF5 reads and checks */
    double wait_s; /* the calling thread waiting for the devices */
} pipeline_result;

/* Runs the rows through the workers. On success free result->counts with
 * pipeline_counts_free(); on failure nothing needs freeing. */
cleval_status pipeline_run(const pipeline_config *config, pipeline_result *result);

#endif
