/* `cleval metrics`: streams (y, pred) batches from an HDF5 file through the device histogram.
 * The class count is max(label) + 1 over both arrays; it is discovered while streaming and the
 * histogram widens when a batch holds a larger label, so the file is read exactly once. */
#include "cleval/engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleval/dataset.h"
#include "cleval/histogram.h"
#include "cleval/predfile.h"

double cleval_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cleval_metrics_outcome_free(cleval_metrics_outcome *out)
{
    cleval_confusion_free(&out->confusion);
    cleval_dataset_free_names(out->class_names.names, out->class_names.count);
    out->class_names.names = NULL;
    out->class_names.count = 0;
}

typedef struct metrics_state {
    cleval_dataset *ds;
    cleval_column *y, *pred;
    cleval_hostbuf y_buf, pred_buf;
    cleval_histogram *hist;
    cleval_predfile *save;
} metrics_state;

static void release(metrics_state *s, cleval_device *dev)
{
    /* Buffers may still be read by an enqueued kernel: drain the queue before freeing. */
    if (dev) cleval_device_finish(dev);
    cleval_histogram_destroy(s->hist);
    cleval_hostbuf_release(&s->y_buf);
    cleval_hostbuf_release(&s->pred_buf);
    cleval_column_close(s->y);
    cleval_column_close(s->pred);
    cleval_dataset_close(s->ds);
    cleval_predfile_abort(s->save);
}

static cleval_status open_columns(const cleval_metrics_job *job, metrics_state *s, uint64_t *n)
{
    const char *y_key = job->y_key ? job->y_key : "y";
    const char *pred_key = job->pred_key ? job->pred_key : "pred";
    cleval_status status;
    if ((status = cleval_dataset_open(job->data_path, &s->ds)) != CLEVAL_OK ||
        (status = cleval_column_open(s->ds, y_key, CLEVAL_COLUMN_LABELS, &s->y)) != CLEVAL_OK ||
        (status = cleval_column_open(s->ds, pred_key, CLEVAL_COLUMN_LABELS, &s->pred)) !=
            CLEVAL_OK)
        return status;
    uint64_t n_y = cleval_column_rows(s->y), n_pred = cleval_column_rows(s->pred);
    if (n_y != n_pred)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                           job->data_path, y_key, (unsigned long long)n_y, pred_key,
                           (unsigned long long)n_pred);
    if (n_y == 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", job->data_path, y_key);
    *n = n_y;
    return CLEVAL_OK;
}

cleval_status cleval_engine_metrics(const cleval_metrics_job *job, cleval_metrics_outcome *out)
{
    memset(out, 0, sizeof *out);
    metrics_state s = {0};
    cleval_device *dev = job->device;
    uint64_t n = 0;
    cleval_status status = open_columns(job, &s, &n);
    if (status != CLEVAL_OK) goto done;
    if ((status = cleval_dataset_class_names(s.ds, &out->class_names.names,
                                             &out->class_names.count)) != CLEVAL_OK)
        goto done;

    uint64_t batch = job->batch ? job->batch : CLEVAL_DEFAULT_METRICS_BATCH;
    batch = batch < n ? batch : n;
    if ((status = cleval_hostbuf_create(dev, batch * sizeof(int32_t), "y batch", &s.y_buf)) ||
        (status = cleval_hostbuf_create(dev, batch * sizeof(int32_t), "pred batch", &s.pred_buf)))
        goto done;
    if (job->save_path) {
        cleval_predfile_spec spec = {.n_samples = n, .with_pred = true, .with_labels = true};
        if ((status = cleval_predfile_create(job->save_path, &spec, &s.save)) != CLEVAL_OK)
            goto done;
    }

    uint32_t n_classes = 0;
    for (uint64_t row0 = 0; row0 < n; row0 += batch) {
        uint64_t count = n - row0 < batch ? n - row0 : batch;
        double t0 = cleval_seconds();
        /* Mapping waits for the previous batch's kernel, which still reads these buffers. */
        if ((status = cleval_hostbuf_map(dev, &s.y_buf, true)) != CLEVAL_OK ||
            (status = cleval_hostbuf_map(dev, &s.pred_buf, true)) != CLEVAL_OK)
            goto done;
        double t1 = cleval_seconds();
        int32_t max_y, max_pred;
        status = cleval_column_read_i32(s.y, row0, count, s.y_buf.host, &max_y);
        if (status == CLEVAL_OK)
            status = cleval_column_read_i32(s.pred, row0, count, s.pred_buf.host, &max_pred);
        if (status == CLEVAL_OK && s.save)
            status = cleval_predfile_write(s.save, row0, count, s.pred_buf.host, NULL,
                                           s.y_buf.host);
        cleval_status unmap_y = cleval_hostbuf_unmap(dev, &s.y_buf);
        cleval_status unmap_pred = cleval_hostbuf_unmap(dev, &s.pred_buf);
        if (status == CLEVAL_OK) status = unmap_y ? unmap_y : unmap_pred;
        if (status != CLEVAL_OK) goto done;
        double t2 = cleval_seconds();

        uint32_t needed = (uint32_t)(max_y > max_pred ? max_y : max_pred) + 1;
        if (!s.hist)
            status = cleval_histogram_create(dev, needed, needed, &s.hist);
        else if (needed > n_classes)
            status = cleval_histogram_grow(s.hist, needed, needed);
        n_classes = needed > n_classes ? needed : n_classes;
        if (status == CLEVAL_OK)
            status = cleval_histogram_add(s.hist, s.y_buf.mem, s.pred_buf.mem, count);
        if (status != CLEVAL_OK) goto done;
        double t3 = cleval_seconds();
        out->read_s += t2 - t1;
        out->reduce_s += (t1 - t0) + (t3 - t2);
        if (job->progress) job->progress(row0 + count, n, job->progress_user);
    }

    double t0 = cleval_seconds();
    if ((status = cleval_confusion_init(&out->confusion, n_classes)) != CLEVAL_OK ||
        (status = cleval_histogram_read(s.hist, out->confusion.counts)) != CLEVAL_OK)
        goto done;
    out->reduce_s += cleval_seconds() - t0;
    out->n_samples = n;
    if (s.save) {
        if ((status = cleval_predfile_write_confusion(s.save, &out->confusion)) != CLEVAL_OK ||
            (status = cleval_predfile_set_attribute(s.save, "data", job->data_path)) !=
                CLEVAL_OK ||
            (status = cleval_predfile_set_attribute(s.save, "device",
                                                    cleval_device_get_info(dev)->name)) !=
                CLEVAL_OK ||
            (status = cleval_predfile_set_attribute(s.save, "cleval_version", CLEVAL_VERSION)) !=
                CLEVAL_OK)
            goto done;
        status = cleval_predfile_commit(s.save);
        s.save = NULL;
    }

done:
    release(&s, dev);
    if (status != CLEVAL_OK) cleval_metrics_outcome_free(out);
    return status;
}
