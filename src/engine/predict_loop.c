/* The batch loop of `eval` and `knn`: read a batch of the test set, run the model, count
 * (true, predicted) pairs or predicted classes on the device, and save the predictions. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/histogram.h"
#include "cleval/predfile.h"

void cleval_predict_outcome_free(cleval_predict_outcome *out)
{
    cleval_confusion_free(&out->confusion);
    free(out->predicted_counts);
    out->predicted_counts = NULL;
    cleval_dataset_free_names(out->class_names.names, out->class_names.count);
    out->class_names.names = NULL;
    out->class_names.count = 0;
}

cleval_status engine_open_test_set(const cleval_test_set *test, engine_test_stream *s)
{
    memset(s, 0, sizeof *s);
    const char *x_key = test->x_key ? test->x_key : "X";
    const char *y_key = test->y_key ? test->y_key : "y";
    cleval_status status;
    if ((status = cleval_dataset_open(test->data_path, &s->ds)) ||
        (status = cleval_column_open(s->ds, x_key, CLEVAL_COLUMN_FEATURES, &s->x)))
        goto fail;
    s->n = cleval_column_rows(s->x);
    if (s->n == 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", test->data_path, x_key);
        goto fail;
    }
    if (cleval_dataset_has(s->ds, y_key)) {
        if ((status = cleval_column_open(s->ds, y_key, CLEVAL_COLUMN_LABELS, &s->y))) goto fail;
        if (cleval_column_rows(s->y) != s->n) {
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                                 test->data_path, x_key, (unsigned long long)s->n, y_key,
                                 (unsigned long long)cleval_column_rows(s->y));
            goto fail;
        }
    } else if (test->y_key) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: no dataset '%s'", test->data_path, y_key);
        goto fail;
    }
    return CLEVAL_OK;
fail:
    engine_close_test_set(s);
    return status;
}

void engine_close_test_set(engine_test_stream *s)
{
    cleval_column_close(s->x);
    cleval_column_close(s->y);
    cleval_dataset_close(s->ds);
    memset(s, 0, sizeof *s);
}

static void format_shape(char *out, size_t size, uint32_t rank, const uint64_t *shape)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (uint32_t d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)shape[d]);
    if (used < size) snprintf(out + used, size - used, "]");
}

cleval_status engine_check_sample_shape(const engine_test_stream *s, uint32_t rank,
                                        const uint64_t *shape, const char *expected_from)
{
    uint32_t got_rank = cleval_column_row_rank(s->x);
    const uint64_t *got = cleval_column_row_shape(s->x);
    bool same = got_rank == rank;
    for (uint32_t d = 0; same && d < rank; d++)
        same = got[d] == shape[d];
    if (same) return CLEVAL_OK;
    char a[128], b[128];
    format_shape(a, sizeof a, got_rank, got);
    format_shape(b, sizeof b, rank, shape);
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' samples have shape %s but %s expects %s",
                       cleval_dataset_path(s->ds), cleval_column_name(s->x), a, expected_from, b);
}

cleval_status engine_scan_labels(engine_test_stream *s, int32_t *max_label)
{
    *max_label = -1;
    if (!s->y) return CLEVAL_OK;
    const uint64_t chunk = 1 << 20;
    int32_t *labels = malloc((s->n < chunk ? s->n : chunk) * sizeof *labels);
    if (!labels) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory scanning labels");
    cleval_status status = CLEVAL_OK;
    for (uint64_t row0 = 0; row0 < s->n && status == CLEVAL_OK; row0 += chunk) {
        uint64_t count = s->n - row0 < chunk ? s->n - row0 : chunk;
        int32_t max;
        status = cleval_column_read_i32(s->y, row0, count, labels, &max);
        *max_label = max > *max_label ? max : *max_label;
    }
    free(labels);
    return status;
}

/* Fails naming the first label of `y` at or above n_classes. */
static cleval_status check_label_range(const engine_test_stream *s, const int32_t *y, uint64_t n,
                                       uint64_t row0, uint32_t n_classes)
{
    for (uint64_t i = 0; i < n; i++)
        if ((uint32_t)y[i] >= n_classes)
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: '%s' sample %llu has label %d, at or above the model's %u "
                               "classes",
                               cleval_dataset_path(s->ds), cleval_column_name(s->y),
                               (unsigned long long)(row0 + i), y[i], n_classes);
    return CLEVAL_OK;
}

typedef struct loop_state {
    float *x;
    float *scores;
    int32_t *pred;
    int32_t *labels;  /* host copy of the batch's labels */
    cleval_hostbuf y; /* the same labels, for the device histogram */
    cleval_histogram *hist;
    cleval_predfile *save;
} loop_state;

static cleval_status open_outputs(cleval_device *dev, const cleval_test_set *test,
                                  const engine_test_stream *s, const engine_model *model,
                                  uint32_t batch, loop_state *st)
{
    size_t row = (size_t)cleval_column_row_size(s->x);
    st->x = malloc((size_t)batch * row * sizeof *st->x);
    if (!st->x) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for a batch of %u samples", batch);
    cleval_status status;
    if (s->y) {
        st->labels = malloc((size_t)batch * sizeof *st->labels);
        if (!st->labels) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for a label batch");
        if ((status = cleval_hostbuf_create(dev, (size_t)batch * sizeof(int32_t), "label batch",
                                            &st->y)))
            return status;
    }
    if ((status = cleval_histogram_create(dev, s->y ? model->n_classes : 1, model->n_classes,
                                          &st->hist)))
        return status;
    if (!test->save_path) return CLEVAL_OK;
    st->scores = malloc((size_t)batch * model->n_classes * sizeof *st->scores);
    st->pred = malloc((size_t)batch * sizeof *st->pred);
    if (!st->scores || !st->pred)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for a batch of scores");
    cleval_predfile_spec spec = {.n_samples = s->n, .n_classes = model->n_classes,
                                 .with_pred = true, .with_scores = true,
                                 .with_labels = s->y != NULL};
    return cleval_predfile_create(test->save_path, &spec, &st->save);
}

static cleval_status finish_outputs(cleval_device *dev, const cleval_test_set *test,
                                    const engine_test_stream *s, const engine_model *model,
                                    loop_state *st, cleval_predict_outcome *out)
{
    uint32_t c = model->n_classes;
    cleval_status status;
    out->predicted_counts = calloc(c, sizeof *out->predicted_counts);
    if (!out->predicted_counts) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
    if (s->y) {
        if ((status = cleval_confusion_init(&out->confusion, c)) ||
            (status = cleval_histogram_read(st->hist, out->confusion.counts)))
            return status;
        for (uint32_t t = 0; t < c; t++)
            for (uint32_t p = 0; p < c; p++)
                out->predicted_counts[p] += out->confusion.counts[(size_t)t * c + p];
    } else if ((status = cleval_histogram_read(st->hist, out->predicted_counts))) {
        return status;
    }
    if (!st->save) return CLEVAL_OK;
    if ((status = cleval_predfile_set_attribute(st->save, "model", model->description)) ||
        (status = cleval_predfile_set_attribute(st->save, "data", test->data_path)) ||
        (status = cleval_predfile_set_attribute(st->save, "device",
                                                cleval_device_get_info(dev)->name)) ||
        (status = cleval_predfile_set_attribute(st->save, "cleval_version", CLEVAL_VERSION)))
        return status;
    status = cleval_predfile_commit(st->save);
    st->save = NULL;
    return status;
}

cleval_status engine_predict_loop(cleval_device *dev, const cleval_test_set *test,
                                  engine_test_stream *s, const engine_model *model,
                                  cleval_predict_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->n_samples = s->n;
    out->n_classes = model->n_classes;
    out->has_labels = s->y != NULL;
    loop_state st = {0};
    uint64_t batch = test->batch ? test->batch : model->max_batch;
    batch = batch < model->max_batch ? batch : model->max_batch;
    batch = batch < s->n ? batch : s->n;
    cleval_status status = cleval_dataset_class_names(s->ds, &out->class_names.names,
                                                      &out->class_names.count);
    if (status == CLEVAL_OK) status = open_outputs(dev, test, s, model, (uint32_t)batch, &st);

    for (uint64_t row0 = 0; status == CLEVAL_OK && row0 < s->n; row0 += batch) {
        uint32_t n = (uint32_t)(s->n - row0 < batch ? s->n - row0 : batch);
        double t0 = cleval_seconds();
        if ((status = cleval_column_read_f32(s->x, row0, n, st.x))) break;
        if (s->y) {
            int32_t max;
            if ((status = cleval_column_read_i32(s->y, row0, n, st.labels, &max))) break;
            if ((uint32_t)max >= model->n_classes &&
                (status = check_label_range(s, st.labels, n, row0, model->n_classes)))
                break;
            /* Mapping waits until the previous batch's histogram is done with the buffer. */
            if ((status = cleval_hostbuf_map(dev, &st.y, true))) break;
            memcpy(st.y.host, st.labels, n * sizeof *st.labels);
            if ((status = cleval_hostbuf_unmap(dev, &st.y))) break;
        }
        double t1 = cleval_seconds();
        cl_mem pred;
        if ((status = model->predict(model->self, st.x, n, st.scores, &pred)) ||
            (status = cleval_histogram_add(st.hist, s->y ? st.y.mem : NULL, pred, n)))
            break;
        if (st.save) {
            if ((status = cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(dev), pred,
                                                              CL_TRUE, 0, n * sizeof(int32_t),
                                                              st.pred, 0, NULL, NULL),
                                          "clEnqueueReadBuffer(predictions)")))
                break;
            if ((status = cleval_predfile_write(st.save, row0, n, st.pred, st.scores,
                                                st.labels)))
                break;
        }
        out->read_s += t1 - t0;
        out->compute_s += cleval_seconds() - t1;
        if (test->progress) test->progress(row0 + n, s->n, test->progress_user);
    }
    if (status == CLEVAL_OK) status = finish_outputs(dev, test, s, model, &st, out);

    cleval_device_finish(dev); /* the histogram may still read the label buffer */
    cleval_predfile_abort(st.save);
    cleval_histogram_destroy(st.hist);
    cleval_hostbuf_release(&st.y);
    free(st.x);
    free(st.labels);
    free(st.scores);
    free(st.pred);
    if (status != CLEVAL_OK) cleval_predict_outcome_free(out);
    return status;
}
