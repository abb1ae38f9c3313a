/* The batch pipeline (see pipeline.h): a ring of batch slots between the calling thread, which
 * reads ahead and writes results, and one worker thread per device. */
#include "pipeline.h"
#include "statefile.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/engine.h"

_Static_assert((int)PIPELINE_IN_FLIGHT <= (int)CLEVAL_SCORE_REDUCER_AREAS,
               "one score-reducer host area per batch in flight");

typedef enum slot_state { SLOT_FREE, SLOT_FILLED, SLOT_BUSY, SLOT_DONE } slot_state;

typedef struct pipeline pipeline;

/* A finished batch's score sums, waiting for its turn. */
typedef struct pending_scores {
    uint64_t row0;
    uint32_t n;
    cleval_score_sums sums;
} pending_scores;

typedef struct worker {
    pipeline *p;
    uint32_t id;
    pthread_t thread;
    bool started;
    /* The batches enqueued on the device and not yet done, oldest first: slot indices and the
     * events that complete with each batch's last command. */
    int flight[PIPELINE_IN_FLIGHT];
    cl_event flight_done[PIPELINE_IN_FLIGHT];
    uint32_t n_flight;
    /* Batches enqueued and ended so far; modulo PIPELINE_IN_FLIGHT, the score reducer's host
     * area of a batch (ended in the order enqueued). */
    uint64_t enqueued, ended;
    cleval_histogram *hist;
    /* Device buffers written from the slot's host arrays (stage()): the batch's labels, and
     * for metrics the file's predictions */
    cl_mem labels;
    cl_mem preds;
    cleval_score_reducer *score_reducer; /* config->score_metrics */
    /* The batch's scores where the device reads them, made when a batch first needs it (the
     * file's scores, or a model that leaves none on the device) */
    cl_mem score_rows;
    cleval_error_finder *error_finder; /* config->errors with score_metrics */
    cleval_status status;
    char error[1024];
} worker;

struct pipeline {
    const pipeline_config *cfg;
    pthread_mutex_t lock;
    pthread_cond_t filled; /* a slot was filled, or the pipeline is closing */
    pthread_cond_t done;   /* a slot is done, or a worker failed */
    pipeline_slot *slots;
    slot_state *state;
    uint32_t n_slots;
    bool closing;
    bool failed;
    worker *workers;
    /* Finished batches' score sums waiting for the batches before them (a faster device may
     * finish many while a slower one holds an earlier batch), and the first row not yet added
     * to the result. */
    pending_scores *score_pending;
    uint32_t n_score_pending, score_pending_capacity;
    uint64_t score_next_row;
    uint32_t error_capacity; /* each slot's picks per error list: min(N, batch) */
    uint32_t batch_rows;     /* rows of the longest batch */
    /* The pairs of the batches counted on the host (counts_on_host), sparse; touched only by
     * the calling thread. */
    pipeline_counts host_counts;
};

void pipeline_counts_free(pipeline_counts *counts)
{
    cleval_counts_free(counts);
}

/* The data file the pipeline reads, for messages. */
static const char *data_path(const pipeline_config *cfg)
{
    return cleval_column_path(cfg->x ? cfg->x : cfg->file_pred);
}

/* The exact counts so far: every worker's device histogram, the pairs counted on the host
 * and the restored ones. Called only while no worker is busy. */
static cleval_status collect_counts(pipeline *p, pipeline_counts *out)
{
    const pipeline_config *cfg = p->cfg;
    uint32_t c = cfg->n_classes ? cfg->n_classes : 1;
    /* The shape of an empty result: C x C with labels, 1 x C without; it widens to the widest
     * histogram (metrics learn C from the data). */
    cleval_status status = cleval_counts_init(out, cfg->labels ? c : 1, c);
    if (status == CLEVAL_OK && cfg->initial_counts)
        status = cleval_counts_add_counts(out, cfg->initial_counts);
    bool only_zeros = !cfg->initial_counts; /* `out` holds nothing but zeros so far */
    for (uint32_t w = 0; status == CLEVAL_OK && w < cfg->n_workers; w++) {
        cleval_histogram *hist = p->workers[w].hist;
        if (!hist) continue;
        uint32_t rows = cleval_histogram_rows(hist), cols = cleval_histogram_cols(hist);
        uint64_t *cells = malloc((size_t)rows * cols * sizeof *cells);
        /* The first histogram that covers the zeros is read into a matrix that becomes `out`
         * itself: adding it through a temporary copy held two matrices of its size at once. */
        if (cells && only_zeros && !cleval_counts_is_sparse(out) && rows >= out->rows &&
            cols >= out->cols) {
            status = cleval_histogram_read(hist, cells);
            cleval_counts_free(out);
            *out = (pipeline_counts){.rows = rows, .cols = cols, .cells = cells};
            only_zeros = false;
            continue;
        }
        only_zeros = false;
        if (!cells) {
            status = cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for the counts of %u classes",
                                 data_path(cfg), cols);
            break;
        }
        if ((status = cleval_histogram_read(hist, cells)) == CLEVAL_OK)
            status = cleval_counts_add_dense(out, rows, cols, cells);
        free(cells);
    }
    if (status == CLEVAL_OK && p->host_counts.rows)
        status = cleval_counts_add_counts(out, &p->host_counts);
    if (status != CLEVAL_OK) pipeline_counts_free(out);
    return status;
}

/* Whether C x C pairs (rows x C without labels) are counted on the host rather than in a
 * device histogram: above the dense limit a histogram would be C^2 cells, most of them zero
 * (a label of 9000 in a 4-row file), while the host counts only the pairs that occur. */
static bool counts_on_host(const pipeline_config *cfg, uint32_t c)
{
    uint32_t rows = cfg->labels ? c : 1;
    return (uint64_t)rows * c > cleval_counts_dense_limit();
}

/* Adds a finished batch's (label, prediction) pairs to the host counts (counts_on_host). */
static cleval_status count_on_host(pipeline *p, const pipeline_slot *slot)
{
    const pipeline_config *cfg = p->cfg;
    uint32_t c = cfg->n_classes ? cfg->n_classes : (uint32_t)slot->max_label + 1;
    cleval_status status = cleval_counts_grow(&p->host_counts, cfg->labels ? c : 1, c);
    /* Out-of-range pairs are skipped, as the device histogram skips them. */
    for (uint32_t i = 0; status == CLEVAL_OK && i < slot->n; i++)
        status = cleval_counts_add(&p->host_counts, cfg->labels ? (uint32_t)slot->labels[i] : 0,
                                   (uint32_t)slot->pred[i], 1);
    if (status != CLEVAL_OK)
        return cleval_fail(status, "%s: %s", data_path(cfg), cleval_last_error());
    return CLEVAL_OK;
}

/* --- Workers --------------------------------------------------------------------------- */

/* Enqueues the copy of `bytes` bytes of a slot's host array where the device reads them. Not
 * waited for: the slot's arrays stay unchanged until its batch is done, and the device's
 * queue runs in order, so the batch's kernels see the copy and earlier batches' kernels have
 * finished with the buffer before it is overwritten. */
static cleval_status stage(cleval_device *dev, cl_mem buf, const void *values, size_t bytes)
{
    return cleval_cl_check(clEnqueueWriteBuffer(cleval_device_queue(dev), buf, CL_FALSE, 0, bytes,
                                                values, 0, NULL, NULL),
                           "clEnqueueWriteBuffer(batch staging)");
}

/* The batch's score rows on the worker's device: the model's own buffer `on_device` when it
 * left them there, else the slot's host rows staged. */
static cleval_status device_score_rows(worker *w, pipeline_slot *slot, cl_mem on_device,
                                       cl_mem *rows)
{
    *rows = on_device;
    if (on_device) return CLEVAL_OK;
    const pipeline_config *cfg = w->p->cfg;
    cleval_device *dev = cfg->devices[w->id];
    if (!slot->scores)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "the model left no score rows to reduce");
    size_t bytes = (size_t)slot->n * cfg->score_width * sizeof *slot->scores;
    cleval_status status = CLEVAL_OK;
    /* Sized for the longest batch at once: batches in flight may still read it. */
    if (!w->score_rows)
        status =
            cleval_device_buffer(dev, CL_MEM_READ_ONLY,
                                 (size_t)w->p->batch_rows * cfg->score_width * sizeof *slot->scores,
                                 NULL, "score batch", &w->score_rows);
    if (status == CLEVAL_OK) status = stage(dev, w->score_rows, slot->scores, bytes);
    *rows = w->score_rows;
    return status;
}

/* Selects the batch's error-analysis picks on the worker's device from its score rows. */
static cleval_status find_errors(worker *w, pipeline_slot *slot, cl_mem score_rows, cl_mem pred)
{
    return cleval_error_finder_run(w->error_finder, score_rows, w->labels, pred, slot->n,
                                   slot->row0, slot->labels, slot->pred, slot->error_picks,
                                   slot->n_error_picks);
}

/* The worker's histogram, created or widened for the batch; its size in rows and c. */
static cleval_status batch_histogram(worker *w, const pipeline_slot *slot, uint32_t *rows,
                                     uint32_t *c)
{
    const pipeline_config *cfg = w->p->cfg;
    /* Metrics discover the class count while streaming: a histogram widens when needed. */
    *c = cfg->n_classes ? cfg->n_classes : (uint32_t)slot->max_label + 1;
    *rows = cfg->labels ? *c : 1;
    cleval_status status = CLEVAL_OK;
    if (!w->hist)
        status = cleval_histogram_create(cfg->devices[w->id], *rows, *c, &w->hist);
    else if (*c > cleval_histogram_cols(w->hist))
        status = cleval_histogram_grow(w->hist, *rows, *c);
    if (status != CLEVAL_OK)
        return cleval_fail(status, "%s: %s", data_path(cfg), cleval_last_error());
    return CLEVAL_OK;
}

/* Offers the model the batch's counting (ops.count_into); *counted when it took it. */
static cleval_status hand_off_counting(worker *w, const pipeline_slot *slot, uint32_t rows,
                                       uint32_t c, bool *counted)
{
    const pipeline_config *cfg = w->p->cfg;
    *counted = false;
    if (!cfg->ops.count_into) return CLEVAL_OK;
    bool scores_needed = slot->scores || cfg->score_metrics || cfg->auc || w->error_finder;
    cleval_status status =
        cfg->ops.count_into(cfg->models[w->id], cleval_histogram_atomic_target(w->hist),
                            cfg->labels ? w->labels : NULL, rows, c, scores_needed, counted);
    if (status == CLEVAL_OK && *counted) status = cleval_histogram_reserve(w->hist, slot->n);
    return status;
}

/* Enqueues one batch on the worker's device and its counting. The labels and the histogram
 * come first: a model that counts its own predictions reads them while it runs. Above the
 * dense limit there is no histogram: the batch's pairs are counted on the host. */
static cleval_status submit(worker *w, pipeline_slot *slot)
{
    const pipeline_config *cfg = w->p->cfg;
    cleval_device *dev = cfg->devices[w->id];
    cleval_status status = CLEVAL_OK;
    uint32_t rows = 0, c = 0;
    bool counted = false;
    if (cfg->labels)
        status = stage(dev, w->labels, slot->labels, (size_t)slot->n * sizeof *slot->labels);
    /* Too many classes for a histogram: the calling thread counts this batch's pairs once it
     * is done (the device still computes the predictions). */
    uint32_t classes = cfg->n_classes ? cfg->n_classes : (uint32_t)slot->max_label + 1;
    slot->host_counted = counts_on_host(cfg, classes);
    if (status == CLEVAL_OK && !slot->host_counted) status = batch_histogram(w, slot, &rows, &c);
    if (status == CLEVAL_OK && cfg->ops.predict && !slot->host_counted)
        status = hand_off_counting(w, slot, rows, c, &counted);
    if (status != CLEVAL_OK) return status;
    cl_mem pred, scores = NULL;
    if (cfg->ops.predict) {
        status = cfg->ops.predict(cfg->models[w->id], slot, &pred, &scores);
    } else { /* metrics: the predictions came with the file */
        status = stage(dev, w->preds, slot->pred, (size_t)slot->n * sizeof *slot->pred);
        pred = w->preds;
    }
    cl_mem score_rows = NULL;
    if (status == CLEVAL_OK && cfg->score_metrics)
        status = device_score_rows(w, slot, scores, &score_rows);
    if (status == CLEVAL_OK && cfg->score_metrics)
        status = cleval_score_reducer_enqueue(w->score_reducer, score_rows, w->labels, slot->n,
                                              (uint32_t)(w->enqueued % PIPELINE_IN_FLIGHT));
    if (status == CLEVAL_OK && cfg->auc)
        status = cleval_auc_store_put(cfg->auc, dev, score_rows, w->labels,
                                      slot->row0 - cfg->row_begin, slot->n);
    if (status == CLEVAL_OK && w->error_finder) status = find_errors(w, slot, score_rows, pred);
    if (status != CLEVAL_OK || counted || slot->host_counted) return status;
    return cleval_histogram_add(w->hist, cfg->labels ? w->labels : NULL, pred, slot->n);
}

/* The filled slot with the lowest rows, or -1. Called with the lock held. */
static int next_filled(const pipeline *p)
{
    int best = -1;
    for (uint32_t s = 0; s < p->n_slots; s++)
        if (p->state[s] == SLOT_FILLED && (best < 0 || p->slots[s].row0 < p->slots[best].row0))
            best = (int)s;
    return best;
}

/* Records a worker's failure. Called with the lock held. */
static void worker_failed(worker *w, cleval_status status)
{
    pipeline *p = w->p;
    if (w->status == CLEVAL_OK) {
        w->status = status;
        snprintf(w->error, sizeof w->error, "%s", cleval_last_error());
    }
    p->failed = true;
    pthread_cond_broadcast(&p->filled);
}

/* Enqueues slot s's batch and an event for its end, and adds it to the worker's batches in
 * flight; on failure waits for what was enqueued. Called with the lock released. */
static cleval_status start_batch(worker *w, int s)
{
    pipeline *p = w->p;
    cleval_device *dev = p->cfg->devices[w->id];
    cl_command_queue queue = cleval_device_queue(dev);
    cl_event done = NULL;
    cleval_status status = submit(w, &p->slots[s]);
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueMarkerWithWaitList(queue, 0, NULL, &done),
                                 "clEnqueueMarkerWithWaitList(batch end)");
    if (status == CLEVAL_OK) status = cleval_cl_check(clFlush(queue), "clFlush");
    if (status != CLEVAL_OK) {
        if (done) clReleaseEvent(done);
        cleval_device_finish(dev); /* nothing may still read the slot once it is handed back */
        return status;
    }
    uint32_t i = w->n_flight++;
    w->flight[i] = s;
    w->flight_done[i] = done;
    w->enqueued++;
    return CLEVAL_OK;
}

/* Waits for the oldest batch in flight to finish and removes it; returns its slot. Called with
 * the lock released. */
static cleval_status end_batch(worker *w, int *s)
{
    pipeline *p = w->p;
    *s = w->flight[0];
    cl_event done = w->flight_done[0];
    w->n_flight--;
    memmove(w->flight, w->flight + 1, w->n_flight * sizeof *w->flight);
    memmove(w->flight_done, w->flight_done + 1, w->n_flight * sizeof *w->flight_done);
    cleval_status status = cleval_cl_check(clWaitForEvents(1, &done), "clWaitForEvents(batch end)");
    clReleaseEvent(done);
    uint32_t area = (uint32_t)(w->ended++ % PIPELINE_IN_FLIGHT);
    if (status == CLEVAL_OK && p->cfg->score_metrics)
        cleval_score_reducer_sums(w->score_reducer, p->slots[*s].n, area, &p->slots[*s].score_sums);
    if (status == CLEVAL_OK && p->cfg->ops.finish)
        status = p->cfg->ops.finish(p->cfg->models[w->id], &p->slots[*s]);
    return status;
}

/* Keeps up to PIPELINE_IN_FLIGHT filled batches enqueued on the device, handing each back
 * (done) when its event completes; new batches come first, so the device's queue never runs
 * dry while one is filled. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    pipeline *p = w->p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        int s = p->failed ? -1 : next_filled(p); /* after a failure or a stop, no new batch */
        if (s >= 0 && w->n_flight < PIPELINE_IN_FLIGHT) {
            p->state[s] = SLOT_BUSY;
            pthread_mutex_unlock(&p->lock);
            cleval_status status = start_batch(w, s);
            pthread_mutex_lock(&p->lock);
            if (status != CLEVAL_OK) {
                p->state[s] = SLOT_DONE;
                worker_failed(w, status);
                pthread_cond_signal(&p->done);
            }
            continue;
        }
        if (w->n_flight > 0) {
            pthread_mutex_unlock(&p->lock);
            cleval_status status = end_batch(w, &s);
            pthread_mutex_lock(&p->lock);
            p->state[s] = SLOT_DONE;
            if (status != CLEVAL_OK) worker_failed(w, status);
            pthread_cond_signal(&p->done);
            continue;
        }
        if (p->closing || p->failed) break;
        pthread_cond_wait(&p->filled, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    /* Leave no command of this thread's queue running on buffers about to be freed. */
    cleval_device_finish(p->cfg->devices[w->id]);
    return NULL;
}

/* --- The calling thread: reading, writing, checkpoints ------------------------------------ */

static cleval_status check_label_range(const pipeline_config *cfg, const pipeline_slot *slot)
{
    for (uint32_t i = 0; i < slot->n; i++)
        if ((uint32_t)slot->labels[i] >= cfg->n_classes)
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: '%s' sample %llu has label %d, at or above the model's %u "
                               "classes",
                               cleval_column_path(cfg->labels), cleval_column_name(cfg->labels),
                               (unsigned long long)(slot->row0 + i), slot->labels[i],
                               cfg->n_classes);
    return CLEVAL_OK;
}

static int32_t max_label_of(const int32_t *labels, uint32_t n)
{
    int32_t max = -1;
    for (uint32_t i = 0; i < n; i++)
        max = labels[i] > max ? labels[i] : max;
    return max;
}

/* Reads rows [row0, row0 + n) into a slot. */
static cleval_status read_batch(const pipeline_config *cfg, pipeline_slot *slot, uint64_t row0,
                                uint32_t n)
{
    slot->row0 = row0;
    slot->n = n;
    slot->max_label = -1;
    cleval_status status;
    int32_t max;
    if (cfg->x && (status = cleval_column_read_as(cfg->x, row0, n, cfg->x_type, slot->x)))
        return status;
    if (cfg->labels) {
        if ((status = cleval_column_read_i32(cfg->labels, row0, n, slot->labels, &max)))
            return status;
        if (cfg->n_classes && (uint32_t)max >= cfg->n_classes &&
            (status = check_label_range(cfg, slot)))
            return status;
        slot->max_label = max;
    }
    if (cfg->file_pred) {
        if ((status = cleval_column_read_i32(cfg->file_pred, row0, n, slot->pred, &max)))
            return status;
        slot->max_label = max > slot->max_label ? max : slot->max_label;
    }
    if (cfg->file_scores) {
        int32_t max_true = max_label_of(slot->labels, n);
        if (max_true >= (int32_t)cfg->score_width)
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: '%s' holds label %d in rows %llu..%llu, but '%s' has only "
                               "%u columns",
                               cleval_column_path(cfg->labels), cleval_column_name(cfg->labels),
                               max_true, (unsigned long long)row0,
                               (unsigned long long)(row0 + n - 1),
                               cleval_column_name(cfg->file_scores), cfg->score_width);
        if ((status =
                 cleval_column_read_as(cfg->file_scores, row0, n, CLEVAL_ELEM_F32, slot->scores)))
            return status;
    }
    return CLEVAL_OK;
}

static cleval_status write_batch(const pipeline_config *cfg, const pipeline_slot *slot)
{
    uint64_t row0 = slot->row0 - cfg->save_row0;
    const float *scores = cfg->with_scores ? slot->scores : NULL;
    if (cfg->sink) {
        cleval_status status =
            cfg->sink->write(cfg->sink->user, row0, slot->n, slot->pred, scores, cfg->score_width);
        if (status != CLEVAL_OK) return status;
    }
    if (!cfg->save) return CLEVAL_OK;
    if (cfg->rows_digest)
        *cfg->rows_digest +=
            state_rows_digest(row0, slot->n, slot->pred, slot->labels, scores, cfg->n_classes);
    return cleval_predfile_write(cfg->save, row0, slot->n, slot->pred, scores, slot->labels);
}

static cleval_status allocate(pipeline *p)
{
    const pipeline_config *cfg = p->cfg;
    /* Each worker's batches in flight and one more filled, and one the reader fills. */
    p->n_slots = (PIPELINE_IN_FLIGHT + 1) * cfg->n_workers + 1;
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    p->state = calloc(p->n_slots, sizeof *p->state);
    p->workers = calloc(cfg->n_workers, sizeof *p->workers);
    if (!p->slots || !p->state || !p->workers)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for the batch pipeline",
                           data_path(cfg));
    size_t row = cfg->x ? (size_t)cleval_column_row_size(cfg->x) : 0;
    size_t x_bytes = row * cleval_column_elem_size(cfg->x_type);
    /* No batch is longer than the rows to go: a --batch beyond them would only cost memory. */
    uint64_t rows = cfg->row_end > cfg->row_begin ? cfg->row_end - cfg->row_begin : 1;
    size_t batch = cfg->batch < rows ? cfg->batch : (size_t)rows;
    p->batch_rows = (uint32_t)batch;
    uint32_t n_errors = cfg->errors ? cleval_errors_collector_n(cfg->errors) : 0;
    p->error_capacity = n_errors < batch ? n_errors : (uint32_t)batch; /* the finder's capacity */
    for (uint32_t s = 0; s < p->n_slots; s++) {
        pipeline_slot *slot = &p->slots[s];
        slot->pred = malloc(batch * sizeof *slot->pred);
        slot->host_pred =
            cfg->save || cfg->sink || cfg->errors || counts_on_host(cfg, cfg->n_classes);
        cleval_status status;
        if (cfg->x) {
            /* Page-locked, so a GPU copies the samples by DMA while it computes. */
            if ((status = cleval_hostbuf_create_pinned(cfg->devices[0], batch * x_bytes,
                                                       "sample batch", &slot->x_mem)))
                return status;
            slot->x = slot->x_mem.host;
        }
        if (cfg->labels) slot->labels = malloc(batch * sizeof *slot->labels);
        bool scores = cfg->with_scores || (cfg->score_metrics && !cfg->ops.scores_on_device);
        if (scores) slot->scores = malloc(batch * cfg->score_width * sizeof *slot->scores);
        bool picks = cfg->errors && cfg->score_metrics;
        if (picks)
            slot->error_picks =
                malloc(CLEVAL_ERROR_LISTS * (size_t)p->error_capacity * sizeof *slot->error_picks);
        if (!slot->pred || (cfg->labels && !slot->labels) || (scores && !slot->scores) ||
            (picks && !slot->error_picks))
            return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for a batch of %zu samples",
                               data_path(cfg), batch);
    }
    for (uint32_t w = 0; w < cfg->n_workers; w++) {
        worker *wk = &p->workers[w];
        wk->p = p;
        wk->id = w;
        cleval_status status;
        if (cfg->labels && (status = cleval_device_buffer(cfg->devices[w], CL_MEM_READ_ONLY,
                                                          batch * sizeof(int32_t), NULL,
                                                          "label batch", &wk->labels)))
            return status;
        if (!cfg->ops.predict && (status = cleval_device_buffer(cfg->devices[w], CL_MEM_READ_ONLY,
                                                                batch * sizeof(int32_t), NULL,
                                                                "prediction batch", &wk->preds)))
            return status;
        if (cfg->score_metrics &&
            (status = cleval_score_reducer_create(cfg->devices[w], cfg->score_width, cfg->top_k,
                                                  (uint32_t)batch, &wk->score_reducer)))
            return status;
        if (cfg->errors && cfg->score_metrics &&
            (status = cleval_error_finder_create(cfg->devices[w], cfg->score_width,
                                                 cleval_errors_collector_n(cfg->errors),
                                                 (uint32_t)batch, &wk->error_finder)))
            return status;
    }
    return CLEVAL_OK;
}

static void release(pipeline *p)
{
    for (uint32_t s = 0; p->slots && s < p->n_slots; s++) {
        cleval_hostbuf_release(&p->slots[s].x_mem);
        free(p->slots[s].labels);
        free(p->slots[s].pred);
        free(p->slots[s].scores);
        free(p->slots[s].error_picks);
    }
    for (uint32_t w = 0; p->workers && w < p->cfg->n_workers; w++) {
        cleval_histogram_destroy(p->workers[w].hist);
        cl_mem staged[] = {p->workers[w].labels, p->workers[w].preds, p->workers[w].score_rows};
        for (size_t b = 0; b < sizeof staged / sizeof *staged; b++)
            if (staged[b]) clReleaseMemObject(staged[b]);
        cleval_score_reducer_destroy(p->workers[w].score_reducer);
        cleval_error_finder_destroy(p->workers[w].error_finder);
    }
    pipeline_counts_free(&p->host_counts);
    free(p->score_pending);
    free(p->slots);
    free(p->state);
    free(p->workers);
}

/* Adds a finished batch's score sums to the result in row order (batches finishing early wait
 * in score_pending), so that the double sums do not depend on the order the devices finish. */
static cleval_status fold_scores(pipeline *p, const pipeline_slot *slot, pipeline_result *result)
{
    if (p->n_score_pending == p->score_pending_capacity) {
        uint32_t capacity = p->score_pending_capacity ? 2 * p->score_pending_capacity : p->n_slots;
        pending_scores *wider = realloc(p->score_pending, capacity * sizeof *wider);
        if (!wider)
            return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for the batch pipeline",
                               data_path(p->cfg));
        p->score_pending = wider;
        p->score_pending_capacity = capacity;
    }
    p->score_pending[p->n_score_pending++] =
        (pending_scores){.row0 = slot->row0, .n = slot->n, .sums = slot->score_sums};
    for (uint32_t i = 0; i < p->n_score_pending;) {
        pending_scores *next = &p->score_pending[i];
        if (next->row0 != p->score_next_row) {
            i++;
            continue;
        }
        cleval_score_sums_add(&result->scores, &next->sums);
        p->score_next_row += next->n;
        *next = p->score_pending[--p->n_score_pending];
        i = 0; /* the batch after it may already be waiting */
    }
    return CLEVAL_OK;
}

/* Adds a finished batch's confused rows and confidence picks to the error analysis. */
static cleval_status collect_errors(const pipeline *p, const pipeline_slot *slot)
{
    const pipeline_config *cfg = p->cfg;
    cleval_status status =
        cleval_errors_add_pairs(cfg->errors, slot->row0, slot->n, slot->labels, slot->pred);
    uint32_t capacity = p->error_capacity;
    for (uint32_t l = 0; status == CLEVAL_OK && slot->error_picks && l < CLEVAL_ERROR_LISTS; l++)
        status = cleval_errors_add_picks(cfg->errors, l, slot->error_picks + (size_t)l * capacity,
                                         slot->n_error_picks[l]);
    return status;
}

/* Counts slots in a state. Called with the lock held. */
static uint32_t slots_in(const pipeline *p, slot_state state)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < p->n_slots; s++)
        n += p->state[s] == state;
    return n;
}

/* Saves a checkpoint at next_row. Every batch dealt so far is done, so the counts cover
 * exactly [begin, next_row); the predictions are flushed first so the file holds those rows. */
static cleval_status save_checkpoint(pipeline *p, uint64_t next_row, const pipeline_result *result)
{
    const pipeline_config *cfg = p->cfg;
    cleval_status status = cfg->save ? cleval_predfile_flush(cfg->save) : CLEVAL_OK;
    pipeline_counts counts;
    if (status == CLEVAL_OK && (status = collect_counts(p, &counts)) == CLEVAL_OK) {
        status = cfg->checkpoint(cfg->checkpoint_user, next_row, &counts, &result->scores);
        pipeline_counts_free(&counts);
    }
    return status;
}

/* Whether the checkpoint interval has passed: rows dealt and seconds since the last one. */
static bool checkpoint_interval_passed(const pipeline_config *cfg, uint64_t rows, double seconds)
{
    if (!cfg->checkpoint || rows == 0) return false;
    return cfg->checkpoint_rows ? rows >= cfg->checkpoint_rows : seconds >= cfg->checkpoint_seconds;
}

/* The calling thread's loop: keep every free slot filled, write what is done, drain for
 * checkpoints and at a stop request. */
static cleval_status coordinate(pipeline *p, pipeline_result *result)
{
    const pipeline_config *cfg = p->cfg;
    uint64_t next_row = cfg->row_begin, last_checkpoint = cfg->row_begin;
    double last_checkpoint_time = cleval_seconds();
    uint64_t total = cfg->row_end - cfg->row_begin;
    bool stopping = false;
    cleval_status status = CLEVAL_OK;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        /* Write finished batches (any order: every row has its own place). */
        for (uint32_t s = 0; s < p->n_slots && status == CLEVAL_OK; s++) {
            if (p->state[s] != SLOT_DONE) continue;
            pthread_mutex_unlock(&p->lock);
            if (!p->failed) status = write_batch(cfg, &p->slots[s]);
            if (status == CLEVAL_OK && !p->failed && p->slots[s].host_counted)
                status = count_on_host(p, &p->slots[s]);
            if (status == CLEVAL_OK && !p->failed && cfg->score_metrics)
                status = fold_scores(p, &p->slots[s], result);
            if (status == CLEVAL_OK && !p->failed && cfg->errors)
                status = collect_errors(p, &p->slots[s]);
            result->rows_done += p->slots[s].n;
            if (cfg->progress && status == CLEVAL_OK)
                cfg->progress(result->rows_done, total, cfg->progress_user);
            pthread_mutex_lock(&p->lock);
            p->state[s] = SLOT_FREE;
        }
        if (p->failed || status != CLEVAL_OK) break;
        sig_atomic_t request = cfg->stop ? *cfg->stop : 0;
        stopping = stopping || request;
        if (request > 1) { /* at once: the last checkpoint stands */
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED, "stopped at once");
            break;
        }
        bool idle = slots_in(p, SLOT_FILLED) == 0 && slots_in(p, SLOT_BUSY) == 0 &&
                    slots_in(p, SLOT_DONE) == 0;
        bool interval_passed = checkpoint_interval_passed(cfg, next_row - last_checkpoint,
                                                          cleval_seconds() - last_checkpoint_time);
        /* A stop always checkpoints; the interval not at the very end: the run is about to
         * finish and remove its checkpoint. */
        bool checkpoint_due =
            cfg->checkpoint && (stopping || (interval_passed && next_row < cfg->row_end));
        if (idle && (checkpoint_due || stopping || next_row >= cfg->row_end)) {
            if (checkpoint_due) {
                pthread_mutex_unlock(&p->lock);
                status = save_checkpoint(p, next_row, result);
                last_checkpoint = next_row;
                last_checkpoint_time = cleval_seconds();
                pthread_mutex_lock(&p->lock);
                if (status != CLEVAL_OK) break;
                if (!stopping) continue; /* the interval starts again */
            }
            if (stopping) {
                status = cleval_fail(CLEVAL_ERR_INTERRUPTED, "stopped");
                break;
            }
            if (next_row >= cfg->row_end) break;
        }
        /* Deal the next batch unless draining for a checkpoint or a stop. */
        int free_slot = -1;
        for (uint32_t s = 0; s < p->n_slots && free_slot < 0; s++)
            if (p->state[s] == SLOT_FREE) free_slot = (int)s;
        bool draining = stopping || interval_passed;
        if (free_slot >= 0 && next_row < cfg->row_end && !draining) {
            uint64_t left = cfg->row_end - next_row;
            uint32_t n = (uint32_t)(left < cfg->batch ? left : cfg->batch);
            pthread_mutex_unlock(&p->lock);
            double t0 = cleval_seconds();
            status = read_batch(cfg, &p->slots[free_slot], next_row, n);
            result->read_s += cleval_seconds() - t0;
            pthread_mutex_lock(&p->lock);
            if (status != CLEVAL_OK) break;
            p->state[free_slot] = SLOT_FILLED;
            next_row += n;
            pthread_cond_signal(&p->filled);
            continue;
        }
        /* A batch finished while the lock was released (writing, reading): its signal was
         * missed, so look again instead of waiting for the next one. */
        if (slots_in(p, SLOT_DONE) > 0) continue;
        double t0 = cleval_seconds();
        pthread_cond_wait(&p->done, &p->lock);
        result->wait_s += cleval_seconds() - t0;
    }
    if (status != CLEVAL_OK) p->failed = true;
    p->closing = true;
    pthread_cond_broadcast(&p->filled);
    pthread_mutex_unlock(&p->lock);
    return status;
}

cleval_status pipeline_run(const pipeline_config *cfg, pipeline_result *result)
{
    memset(result, 0, sizeof *result);
    pipeline p = {.cfg = cfg, .score_next_row = cfg->row_begin};
    if (cfg->initial_scores) result->scores = *cfg->initial_scores;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.filled, NULL);
    pthread_cond_init(&p.done, NULL);
    cleval_status status = allocate(&p);
    for (uint32_t w = 0; status == CLEVAL_OK && w < cfg->n_workers; w++) {
        int err = pthread_create(&p.workers[w].thread, NULL, worker_main, &p.workers[w]);
        /* EAGAIN: no memory for the thread's stack, or the process hit its thread limit. */
        if (err == EAGAIN)
            status = cleval_fail(CLEVAL_ERR_NOMEM,
                                 "%s: out of memory starting a worker thread (or at "
                                 "the thread limit)",
                                 data_path(cfg));
        else if (err != 0)
            status =
                cleval_fail(CLEVAL_ERR_INTERNAL, "cannot start a worker thread: %s", strerror(err));
        else
            p.workers[w].started = true;
    }
    if (status == CLEVAL_OK) {
        status = coordinate(&p, result);
    } else { /* let the started workers see the end */
        pthread_mutex_lock(&p.lock);
        p.closing = true;
        pthread_cond_broadcast(&p.filled);
        pthread_mutex_unlock(&p.lock);
    }
    for (uint32_t w = 0; p.workers && w < cfg->n_workers; w++)
        if (p.workers[w].started) pthread_join(p.workers[w].thread, NULL);
    /* A worker's failure is the run's failure; its message was recorded on its thread. */
    for (uint32_t w = 0; p.workers && w < cfg->n_workers; w++)
        if (p.workers[w].status != CLEVAL_OK && status == CLEVAL_OK)
            status = cleval_fail(p.workers[w].status, "%s", p.workers[w].error);
    if (status == CLEVAL_OK) status = collect_counts(&p, &result->counts);
    release(&p);
    pthread_cond_destroy(&p.filled);
    pthread_cond_destroy(&p.done);
    pthread_mutex_destroy(&p.lock);
    return status;
}
