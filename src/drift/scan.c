/* One prediction file through the device for `cleval drift`: batches of pred, y and scores
 * are uploaded, drift_confidence (kernels/drift.cl) bins every row, and device histograms count
 * predicted classes and both confidence variants. The host adds up confidences and entropies
 * for the means, with compensated sums, and with labels counts each class's support and
 * correct predictions (all that recall and accuracy need: a confusion matrix would be C^2
 * cells, gigabytes for a single label of 16383). */
#include "drift_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/histogram.h"
#include "cleval/stats.h"

/* Score rows of one batch stay under this many bytes. */
static const uint64_t SCORE_BATCH_BYTES = 64ull << 20;

enum { FLAG_PROBABILITIES = 1, FLAG_UNUSABLE = 2, NONFINITE_SHIFT = 2 }; /* as in drift.cl */

enum { OUT_CONF_SOFTMAX, OUT_CONF_GIVEN, OUT_ENTROPY_SOFTMAX, OUT_ENTROPY_GIVEN, N_OUTPUTS };

struct scan_state {
    cleval_device *dev;
    cleval_dataset *ds;
    cleval_column *pred, *y, *scores;
    cleval_hostbuf scores_buf, pred_buf, y_buf, flags_buf;
    cleval_hostbuf outputs[N_OUTPUTS]; /* REAL [batch] each */
    cl_mem bins_softmax, bins_given, edges;
    cleval_histogram *classes, *conf_softmax, *conf_given;
    uint64_t *support, *correct; /* with labels: [n_labels] */
    uint32_t n_labels;
    double sums[N_OUTPUTS], carries[N_OUTPUTS];
    uint64_t usable;          /* rows with a confidence (the means' denominator) */
    uint64_t nonfinite;       /* NaN and infinite scores */
    uint64_t first_nonfinite; /* the first sample holding one */
};

static void release(scan_state *s)
{
    /* Kernels may still read these buffers: drain the queue before freeing. */
    if (s->dev) cleval_device_finish(s->dev);
    cleval_histogram_destroy(s->classes);
    free(s->support);
    free(s->correct);
    cleval_histogram_destroy(s->conf_softmax);
    cleval_histogram_destroy(s->conf_given);
    cleval_hostbuf_release(&s->scores_buf);
    cleval_hostbuf_release(&s->pred_buf);
    cleval_hostbuf_release(&s->y_buf);
    cleval_hostbuf_release(&s->flags_buf);
    for (int i = 0; i < N_OUTPUTS; i++)
        cleval_hostbuf_release(&s->outputs[i]);
    if (s->bins_softmax) clReleaseMemObject(s->bins_softmax);
    if (s->bins_given) clReleaseMemObject(s->bins_given);
    if (s->edges) clReleaseMemObject(s->edges);
    cleval_column_close(s->pred);
    cleval_column_close(s->y);
    cleval_column_close(s->scores);
    cleval_dataset_close(s->ds);
}

void drift_scan_free(drift_scan *scan)
{
    if (scan->input) {
        release(scan->input);
        free(scan->input);
        scan->input = NULL;
    }
    free(scan->side.class_counts);
    free(scan->side.support);
    free(scan->side.correct);
    scan->side.class_counts = scan->side.support = scan->side.correct = NULL;
    cleval_dataset_free_names(scan->names.names, scan->names.count);
    scan->names.names = NULL;
    scan->names.count = 0;
}

static cleval_status open_columns(scan_state *s, const cleval_drift_config *config,
                                  const char *path, cleval_dataset *data, drift_scan *out)
{
    const char *pred_key = config->pred_key ? config->pred_key : "pred";
    const char *scores_key = config->scores_key ? config->scores_key : "scores";
    const char *y_key = config->y_key ? config->y_key : "y";
    cleval_status status;
    if (data)
        s->ds = cleval_dataset_share(data);
    else if ((status = cleval_dataset_open(path, &s->ds)) != CLEVAL_OK)
        return status;
    cleval_dataset_limit_classes(s->ds, config->max_classes);
    if ((status = cleval_column_open(s->ds, pred_key, CLEVAL_COLUMN_LABELS, &s->pred)) !=
            CLEVAL_OK ||
        (status = cleval_column_open(s->ds, scores_key, CLEVAL_COLUMN_VALUES, &s->scores)) !=
            CLEVAL_OK ||
        (status = cleval_column_check_rows(s->pred, s->scores)) != CLEVAL_OK)
        return status;
    if (cleval_column_row_rank(s->scores) != 1)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must be 2-D [N, C] (it has rank %u)", path,
                           scores_key, cleval_column_row_rank(s->scores) + 1);
    if (cleval_column_row_size(s->scores) > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: '%s' rows are too wide", path, scores_key);
    if (cleval_dataset_has(s->ds, y_key) &&
        ((status = cleval_column_open(s->ds, y_key, CLEVAL_COLUMN_LABELS, &s->y)) != CLEVAL_OK ||
         (status = cleval_column_check_rows(s->pred, s->y)) != CLEVAL_OK))
        return status;
    out->side.path = path;
    out->side.n_samples = cleval_column_rows(s->pred);
    out->side.score_width = (uint32_t)cleval_column_row_size(s->scores);
    out->side.has_labels = s->y != NULL;
    if (out->side.n_samples == 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", path, pred_key);
    return cleval_dataset_class_names(s->ds, &out->names.names, &out->names.count);
}

/* Buffers for batches of `batch` rows, the bin edges, and the fixed-size histograms. */
static cleval_status allocate(scan_state *s, uint64_t batch, uint32_t width, bool fp64)
{
    cleval_device *dev = s->dev;
    size_t real = fp64 ? sizeof(double) : sizeof(float);
    cleval_status status;
    if ((status = cleval_hostbuf_create(dev, batch * width * sizeof(float), "scores batch",
                                        &s->scores_buf)) ||
        (status =
             cleval_hostbuf_create(dev, batch * sizeof(int32_t), "pred batch", &s->pred_buf)) ||
        (s->y &&
         (status = cleval_hostbuf_create(dev, batch * sizeof(int32_t), "y batch", &s->y_buf))) ||
        (status = cleval_hostbuf_create(dev, batch * sizeof(cl_int), "drift flags", &s->flags_buf)))
        return status;
    for (int i = 0; i < N_OUTPUTS; i++)
        if ((status =
                 cleval_hostbuf_create(dev, batch * real, "drift confidences", &s->outputs[i])))
            return status;
    /* numpy.linspace(0, 1, 11): i * 0.1, the last exactly 1. In float, each edge rounded up,
     * so that for a float x, x >= edge_f exactly when x >= edge (numpy's comparison). */
    double edges[CLEVAL_DRIFT_BINS + 1];
    float edges_f[CLEVAL_DRIFT_BINS + 1];
    for (int i = 0; i <= CLEVAL_DRIFT_BINS; i++) {
        edges[i] = i == CLEVAL_DRIFT_BINS ? 1.0 : i * (1.0 / CLEVAL_DRIFT_BINS);
        float f = (float)edges[i];
        edges_f[i] = (double)f < edges[i] ? nextafterf(f, INFINITY) : f;
    }
    if ((status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, batch * sizeof(cl_int), NULL,
                                       "drift bins", &s->bins_softmax)) ||
        (status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, batch * sizeof(cl_int), NULL,
                                       "drift bins", &s->bins_given)) ||
        (status = cleval_device_buffer(
             dev, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (CLEVAL_DRIFT_BINS + 1) * real,
             fp64 ? (void *)edges : (void *)edges_f, "drift bin edges", &s->edges)) ||
        (status = cleval_histogram_create(dev, 1, CLEVAL_DRIFT_BINS, &s->conf_softmax)) ||
        (status = cleval_histogram_create(dev, 1, CLEVAL_DRIFT_BINS, &s->conf_given)))
        return status;
    return CLEVAL_OK;
}

/* Widens the per-class label counts to n classes. */
static cleval_status fit_labels(scan_state *s, uint32_t n)
{
    if (n <= s->n_labels) return CLEVAL_OK;
    uint64_t **arrays[2] = {&s->support, &s->correct};
    for (int i = 0; i < 2; i++) {
        uint64_t *wider = realloc(*arrays[i], n * sizeof *wider);
        if (!wider)
            return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for %u class counts",
                               cleval_dataset_path(s->ds), n);
        memset(wider + s->n_labels, 0, (n - s->n_labels) * sizeof *wider);
        *arrays[i] = wider;
    }
    s->n_labels = n;
    return CLEVAL_OK;
}

/* Adds the batch's support and correct predictions per true class (labels in range: the
 * reader checked them). */
static void count_labels(scan_state *s, const int32_t *y, const int32_t *pred, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        s->support[y[i]]++;
        s->correct[y[i]] += y[i] == pred[i];
    }
}

/* Reads rows [row0, row0 + count) into the mapped input buffers. */
static cleval_status read_batch(scan_state *s, uint64_t row0, uint64_t count, int32_t *max_label)
{
    cleval_device *dev = s->dev;
    cleval_status status;
    if ((status = cleval_hostbuf_map(dev, &s->scores_buf, true)) ||
        (status = cleval_hostbuf_map(dev, &s->pred_buf, true)) ||
        (s->y && (status = cleval_hostbuf_map(dev, &s->y_buf, true))))
        return status;
    int32_t max_pred = -1, max_y = -1;
    status = cleval_column_read_f32(s->scores, row0, count, s->scores_buf.host);
    if (status == CLEVAL_OK)
        status = cleval_column_read_i32(s->pred, row0, count, s->pred_buf.host, &max_pred);
    if (status == CLEVAL_OK && s->y)
        status = cleval_column_read_i32(s->y, row0, count, s->y_buf.host, &max_y);
    *max_label = max_pred > max_y ? max_pred : max_y;
    if (status == CLEVAL_OK && s->y &&
        (status = fit_labels(s, (uint32_t)(*max_label + 1))) == CLEVAL_OK)
        count_labels(s, s->y_buf.host, s->pred_buf.host, count);
    cleval_status unmap = cleval_hostbuf_unmap(dev, &s->scores_buf);
    if (status == CLEVAL_OK) status = unmap;
    unmap = cleval_hostbuf_unmap(dev, &s->pred_buf);
    if (status == CLEVAL_OK) status = unmap;
    if (s->y) {
        unmap = cleval_hostbuf_unmap(dev, &s->y_buf);
        if (status == CLEVAL_OK) status = unmap;
    }
    return status;
}

/* Creates or widens the class histograms to `needed` classes. */
static cleval_status fit_classes(scan_state *s, uint32_t needed, uint32_t *n_classes)
{
    /* Sized by a label of the file: a failure names it. */
    cleval_status status = CLEVAL_OK;
    if (!s->classes) {
        status = cleval_histogram_create(s->dev, 1, needed, &s->classes);
        *n_classes = needed;
    } else if (needed > *n_classes) {
        status = cleval_histogram_grow(s->classes, 1, needed);
        *n_classes = needed;
    }
    if (status != CLEVAL_OK)
        return cleval_fail(status, "%s: %s", cleval_dataset_path(s->ds), cleval_last_error());
    return CLEVAL_OK;
}

static cleval_status run_kernel(scan_state *s, cl_kernel k, uint64_t count, uint32_t width)
{
    cleval_kernel_args a = cleval_kernel_args_begin(k, "drift_confidence");
    cleval_kernel_arg_mem(&a, s->scores_buf.mem);
    cleval_kernel_arg_uint(&a, (uint32_t)count);
    cleval_kernel_arg_uint(&a, width);
    cleval_kernel_arg_mem(&a, s->edges);
    cleval_kernel_arg_mem(&a, s->bins_softmax);
    cleval_kernel_arg_mem(&a, s->bins_given);
    cleval_kernel_arg_mem(&a, s->outputs[OUT_CONF_SOFTMAX].mem);
    cleval_kernel_arg_mem(&a, s->outputs[OUT_CONF_GIVEN].mem);
    cleval_kernel_arg_mem(&a, s->outputs[OUT_ENTROPY_SOFTMAX].mem);
    cleval_kernel_arg_mem(&a, s->outputs[OUT_ENTROPY_GIVEN].mem);
    cleval_kernel_arg_mem(&a, s->flags_buf.mem);
    size_t global = (size_t)count;
    return cleval_kernel_launch(cleval_device_queue(s->dev), &a, 1, &global, NULL, NULL);
}

/* Adds the batch's confidences and entropies to the running sums, and counts its non-finite
 * scores. A row without a confidence (NaN, +Inf, or only -Inf) holds a non-finite score and
 * adds nothing: the kernel gave it no bin and zero confidence and entropy. */
static cleval_status collect(scan_state *s, uint64_t row0, uint64_t count, bool fp64,
                             bool *all_probabilities)
{
    cleval_device *dev = s->dev;
    cleval_status status = cleval_hostbuf_map(dev, &s->flags_buf, false);
    for (int i = 0; status == CLEVAL_OK && i < N_OUTPUTS; i++)
        status = cleval_hostbuf_map(dev, &s->outputs[i], false);
    if (status != CLEVAL_OK) return status;
    const cl_int *flags = s->flags_buf.host;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t nonfinite = (uint64_t)(flags[i] >> NONFINITE_SHIFT);
        if (nonfinite && s->nonfinite == 0) s->first_nonfinite = row0 + i;
        s->nonfinite += nonfinite;
        if (flags[i] & FLAG_UNUSABLE) continue;
        s->usable++;
        if (!(flags[i] & FLAG_PROBABILITIES)) *all_probabilities = false;
    }
    for (int k = 0; status == CLEVAL_OK && k < N_OUTPUTS; k++) {
        for (uint64_t i = 0; i < count; i++) {
            double v = fp64 ? ((const double *)s->outputs[k].host)[i]
                            : (double)((const float *)s->outputs[k].host)[i];
            cleval_stats_add_compensated(&s->sums[k], &s->carries[k], v);
        }
    }
    cleval_status unmap = cleval_hostbuf_unmap(dev, &s->flags_buf);
    if (status == CLEVAL_OK) status = unmap;
    for (int i = 0; i < N_OUTPUTS; i++) {
        unmap = cleval_hostbuf_unmap(dev, &s->outputs[i]);
        if (status == CLEVAL_OK) status = unmap;
    }
    return status;
}

cleval_status drift_scan_open(const cleval_drift_config *config, const char *path,
                              cleval_dataset *data, drift_scan *out)
{
    memset(out, 0, sizeof *out);
    out->input = calloc(1, sizeof *out->input);
    if (!out->input) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s", path);
    out->input->dev = config->device;
    cleval_status status = open_columns(out->input, config, path, data, out);
    if (status != CLEVAL_OK) drift_scan_free(out);
    return status;
}

cleval_status drift_scan_run(const cleval_drift_config *config, cl_kernel kernel, bool fp64,
                             uint64_t done_before, uint64_t total, drift_scan *out)
{
    /* The open file's state moves here; release() below closes it whatever happens. */
    scan_state s = *out->input;
    free(out->input);
    out->input = NULL;
    const char *path = out->side.path;
    cleval_status status;
    uint64_t n = out->side.n_samples;
    uint32_t width = out->side.score_width;
    uint64_t batch = config->batch ? config->batch : CLEVAL_DRIFT_DEFAULT_BATCH;
    uint64_t fit = SCORE_BATCH_BYTES / ((uint64_t)width * sizeof(float));
    batch = batch < fit ? batch : (fit ? fit : 1);
    batch = batch < n ? batch : n;
    batch = batch < INT32_MAX ? batch : INT32_MAX;
    if ((status = allocate(&s, batch, width, fp64)) != CLEVAL_OK) goto done;

    bool all_probabilities = true;
    uint32_t n_classes = 0;
    for (uint64_t row0 = 0; row0 < n; row0 += batch) {
        uint64_t count = n - row0 < batch ? n - row0 : batch;
        int32_t max_label = -1;
        if (config->stop && *config->stop) {
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED, "stopped after %llu of %llu samples",
                                 (unsigned long long)(done_before + row0),
                                 (unsigned long long)total);
            goto done;
        }
        if ((status = read_batch(&s, row0, count, &max_label)) != CLEVAL_OK) goto done;
        /* The file's --max-classes bounds max_label (cleval_dataset_limit_classes). */
        if ((status = fit_classes(&s, (uint32_t)max_label + 1, &n_classes)) ||
            (status = cleval_histogram_add(s.classes, NULL, s.pred_buf.mem, count)) ||
            (status = run_kernel(&s, kernel, count, width)) ||
            (status = cleval_histogram_add(s.conf_softmax, NULL, s.bins_softmax, count)) ||
            (status = cleval_histogram_add(s.conf_given, NULL, s.bins_given, count)) ||
            (status = collect(&s, row0, count, fp64, &all_probabilities)))
            goto done;
        if (config->progress)
            config->progress(done_before + row0 + count, total, config->progress_user);
    }

    out->side.nonfinite_scores = s.nonfinite;
    if (s.nonfinite && !config->allow_nonfinite) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: '%s' holds %llu non-finite scores (first in sample %llu); pass "
                             "--allow-nonfinite to accept them",
                             path, cleval_column_name(s.scores), (unsigned long long)s.nonfinite,
                             (unsigned long long)s.first_nonfinite);
        goto done;
    }
    out->n_classes = n_classes;
    out->side.class_counts = calloc(n_classes, sizeof *out->side.class_counts);
    if (s.y && (status = fit_labels(&s, n_classes ? n_classes : 1)) != CLEVAL_OK) goto done;
    if (!out->side.class_counts) {
        status =
            cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for %u class counts", path, n_classes);
        goto done;
    }
    out->side.probabilities = all_probabilities;
    if ((status = cleval_histogram_read(s.classes, out->side.class_counts)) ||
        (status = cleval_histogram_read(all_probabilities ? s.conf_given : s.conf_softmax,
                                        out->side.confidence_counts)))
        goto done;
    if (s.y) { /* the label counts, n_classes long (fit_labels), now belong to the side */
        out->side.support = s.support;
        out->side.correct = s.correct;
        s.support = s.correct = NULL;
    }
    int conf = all_probabilities ? OUT_CONF_GIVEN : OUT_CONF_SOFTMAX;
    int entropy = all_probabilities ? OUT_ENTROPY_GIVEN : OUT_ENTROPY_SOFTMAX;
    /* NaN (reported as null) when no row has a confidence. */
    out->side.mean_confidence = (s.sums[conf] + s.carries[conf]) / (double)s.usable;
    out->side.mean_entropy = (s.sums[entropy] + s.carries[entropy]) / (double)s.usable;

done:
    release(&s);
    if (status != CLEVAL_OK) drift_scan_free(out);
    return status;
}
