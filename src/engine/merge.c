/* `cleval merge`: the part files of a sharded job (--shard I/N) combined into exactly what the
 * unsharded run reports and saves. Parts must come from one job (same fingerprint) and cover
 * every slice once; their counts add, their rows are copied in file order. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/predfile.h"

enum { COPY_ROWS = 1 << 16 };

/* Facts a part records about its job: equal in every part (strings) or summed (counters). */
static const char *const job_facts[] = {"knn_k",
                                        "knn_weights",
                                        "knn_metric",
                                        "knn_n_train",
                                        "eval_model",
                                        "eval_precision",
                                        "eval_arithmetic",
                                        "eval_prune",
                                        "eval_calibration_samples",
                                        "eval_model_size_bytes",
                                        "eval_opset",
                                        "eval_input_shape",
                                        NULL};
static const char *const job_counters[] = {"eval_nonfinite_scores", "knn_distance_ties",
                                           "knn_vote_ties", "knn_searched_again", NULL};

typedef struct part {
    const char *path;
    cleval_dataset *ds;
    char command[16];
    char job[8192];
    uint64_t index, count, row_begin, row_end, n_total;
} part;

static cleval_status open_part(const char *path, uint32_t max_classes, part *p)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    cleval_status status = engine_open_data(path, max_classes, &p->ds);
    if (status != CLEVAL_OK) return status;
    if (cleval_dataset_attribute(p->ds, "command", p->command, sizeof p->command) != CLEVAL_OK ||
        cleval_dataset_attribute(p->ds, "job", p->job, sizeof p->job) != CLEVAL_OK ||
        !engine_read_count(p->ds, "shard_index", &p->index) ||
        !engine_read_count(p->ds, "shard_count", &p->count) ||
        !engine_read_count(p->ds, "row_begin", &p->row_begin) ||
        !engine_read_count(p->ds, "row_end", &p->row_end) || !engine_read_count(p->ds, "n_total", &p->n_total))
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: not a cleval part file (written with --shard I/N --save)", path);
    return CLEVAL_OK;
}

/* The parts must be one job's and cover slices 0..N-1 exactly once. */
static cleval_status check_set(part *parts, uint32_t n, part **by_index)
{
    const part *first = &parts[0];
    if (first->count != n)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s is slice %llu of %llu, but %u part%s given",
                           first->path, (unsigned long long)first->index,
                           (unsigned long long)first->count, n, n == 1 ? " was" : "s were");
    for (uint32_t i = 0; i < n; i++) {
        const part *p = &parts[i];
        if (strcmp(p->command, first->command) != 0 || strcmp(p->job, first->job) != 0 ||
            p->count != first->count || p->n_total != first->n_total)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s and %s are parts of different jobs",
                               first->path, p->path);
        uint64_t begin, end;
        cleval_shard_range(p->n_total, (uint32_t)p->index, (uint32_t)p->count, &begin, &end);
        if (p->index >= n || begin != p->row_begin || end != p->row_end)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: its slice does not match shard %llu/%llu",
                               p->path, (unsigned long long)p->index,
                               (unsigned long long)p->count);
        if (by_index[p->index])
            return cleval_fail(CLEVAL_ERR_INPUT, "%s and %s are both slice %llu of %u",
                               by_index[p->index]->path, p->path, (unsigned long long)p->index,
                               n);
        by_index[p->index] = (part *)p;
    }
    return CLEVAL_OK;
}

/* Adds a part's counts ([rows][cols]) into the outcome, widening it (metrics parts may have
 * seen different label ranges). */
static cleval_status add_counts(const char *path, cleval_predict_outcome *out, bool labels,
                                uint32_t rows, uint32_t cols, const uint64_t *cells)
{
    if (cols > out->n_classes) {
        uint64_t *wider = calloc(cols, sizeof *wider);
        if (!wider)
            return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory merging its counts", path);
        if (out->predicted_counts)
            memcpy(wider, out->predicted_counts, out->n_classes * sizeof *wider);
        free(out->predicted_counts);
        out->predicted_counts = wider;
        out->n_classes = cols;
        cleval_status status = labels ? cleval_confusion_grow(&out->confusion, cols) : CLEVAL_OK;
        if (status != CLEVAL_OK) return status;
    }
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < cols; c++) {
            uint64_t v = cells[(size_t)r * cols + c];
            out->predicted_counts[c] += v;
            if (labels) out->confusion.counts[(size_t)r * out->n_classes + c] += v;
        }
    return CLEVAL_OK;
}

static cleval_status merge_attributes(part *const *parts, uint32_t n, cleval_merge_outcome *out)
{
    char value[256];
    for (const char *const *name = job_facts; *name; name++) {
        if (cleval_dataset_attribute(parts[0]->ds, *name, value, sizeof value) != CLEVAL_OK ||
            !value[0] || out->n_attributes == CLEVAL_MAX_PART_ATTRIBUTES)
            continue;
        snprintf(out->attribute_names[out->n_attributes], 64, "%s", *name);
        snprintf(out->attribute_values[out->n_attributes++], 256, "%s", value);
    }
    for (const char *const *name = job_counters; *name; name++) {
        uint64_t sum = 0, v;
        bool present = false;
        for (uint32_t i = 0; i < n; i++)
            if (engine_read_count(parts[i]->ds, *name, &v)) sum += v, present = true;
        if (!present || out->n_attributes == CLEVAL_MAX_PART_ATTRIBUTES) continue;
        snprintf(out->attribute_names[out->n_attributes], 64, "%s", *name);
        snprintf(out->attribute_values[out->n_attributes++], 256, "%llu", (unsigned long long)sum);
    }
    return CLEVAL_OK;
}

/* Copies one part's rows into the whole file, in chunks. */
static cleval_status copy_rows(const part *p, cleval_predfile *file, bool scores, bool labels,
                               uint32_t n_classes, volatile sig_atomic_t *stop)
{
    cleval_column *pred = NULL, *score = NULL, *y = NULL;
    int32_t *pred_rows = malloc(COPY_ROWS * sizeof *pred_rows);
    int32_t *y_rows = labels ? malloc(COPY_ROWS * sizeof *y_rows) : NULL;
    float *score_rows = scores ? malloc((size_t)COPY_ROWS * n_classes * sizeof *score_rows) : NULL;
    cleval_status status = CLEVAL_OK;
    if (!pred_rows || (labels && !y_rows) || (scores && !score_rows))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory copying %s", p->path);
    if (status == CLEVAL_OK) status = cleval_column_open(p->ds, "pred", CLEVAL_COLUMN_LABELS, &pred);
    if (status == CLEVAL_OK && labels) status = cleval_column_open(p->ds, "y", CLEVAL_COLUMN_LABELS, &y);
    if (status == CLEVAL_OK && scores)
        status = cleval_column_open(p->ds, "scores", CLEVAL_COLUMN_VALUES, &score);
    uint64_t n = p->row_end - p->row_begin;
    if (status == CLEVAL_OK &&
        (cleval_column_rows(pred) != n || (score && (cleval_column_rows(score) != n ||
                                                     cleval_column_row_size(score) != n_classes))))
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: its datasets do not match its slice", p->path);
    for (uint64_t row0 = 0; status == CLEVAL_OK && row0 < n; row0 += COPY_ROWS) {
        uint64_t count = n - row0 < COPY_ROWS ? n - row0 : COPY_ROWS;
        int32_t max;
        if (stop && *stop) {
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED, "stopped while copying %s; nothing "
                                                         "written",
                                 p->path);
            break;
        }
        if (!(status = cleval_column_read_i32(pred, row0, count, pred_rows, &max)) &&
            !(status = y ? cleval_column_read_i32(y, row0, count, y_rows, &max) : CLEVAL_OK) &&
            !(status = score ? cleval_column_read_f32(score, row0, count, score_rows) : CLEVAL_OK))
            status = cleval_predfile_write(file, p->row_begin + row0, count, pred_rows, score_rows,
                                           y_rows);
    }
    cleval_column_close(pred);
    cleval_column_close(score);
    cleval_column_close(y);
    free(pred_rows);
    free(y_rows);
    free(score_rows);
    return status;
}

/* The whole prediction file, as the unsharded run writes it. */
static cleval_status write_whole(const char *save_path, part *const *parts, uint32_t n,
                                 const cleval_predict_outcome *merged, bool metrics,
                                 volatile sig_atomic_t *stop)
{
    bool scores = cleval_dataset_has(parts[0]->ds, "scores");
    cleval_predfile_spec spec = {.n_samples = parts[0]->n_total,
                                 .n_classes = merged->n_classes,
                                 .with_pred = true,
                                 .with_scores = scores,
                                 .with_labels = merged->has_labels};
    cleval_predfile *file;
    cleval_status status = cleval_predfile_create(save_path, &spec, &file);
    if (status != CLEVAL_OK) return status;
    static const char *const copied[] = {"model", "data", "device", "cleval_version"};
    char value[4096];
    for (size_t a = 0; a < 4 && status == CLEVAL_OK; a++)
        if (!(status = cleval_dataset_attribute(parts[0]->ds, copied[a], value, sizeof value)))
            status = cleval_predfile_set_attribute(file, copied[a], value);
    for (uint32_t i = 0; i < n && status == CLEVAL_OK; i++)
        status = copy_rows(parts[i], file, scores, merged->has_labels, merged->n_classes, stop);
    if (status == CLEVAL_OK && metrics)
        status = cleval_predfile_write_counts(file, "confusion", merged->n_classes,
                                              merged->n_classes, merged->confusion.counts);
    if (status != CLEVAL_OK) {
        cleval_predfile_abort(file);
        return status;
    }
    return cleval_predfile_commit(file);
}

/* Refuses parts that recorded NaN or infinite scores, naming the first such part. */
static cleval_status check_nonfinite(part *const *parts, uint32_t n)
{
    uint64_t total = 0, v;
    const char *first = NULL;
    for (uint32_t i = 0; i < n; i++)
        if (engine_read_count(parts[i]->ds, "eval_nonfinite_scores", &v) && v > 0) {
            total += v;
            if (!first) first = parts[i]->path;
        }
    if (total == 0) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "merge: the parts hold %llu non-finite scores (the first in %s); pass "
                       "--allow-nonfinite to accept them",
                       (unsigned long long)total, first);
}

cleval_status cleval_engine_merge(const char *const *paths, uint32_t n_parts,
                                  const char *save_path, const cleval_merge_options *options,
                                  cleval_merge_outcome *out)
{
    memset(out, 0, sizeof *out);
    const cleval_merge_options defaults = {0};
    if (!options) options = &defaults;
    if (n_parts == 0) return cleval_fail(CLEVAL_ERR_USAGE, "merge: no part files given");
    part *parts = calloc(n_parts, sizeof *parts);
    part **by_index = calloc(n_parts, sizeof *by_index);
    cleval_status status = parts && by_index ? CLEVAL_OK
                                             : cleval_fail(CLEVAL_ERR_NOMEM,
                                                           "merge: out of memory "
                                                           "for %u part files",
                                                           n_parts);
    for (uint32_t i = 0; status == CLEVAL_OK && i < n_parts; i++)
        status = open_part(paths[i], options->max_classes, &parts[i]);
    if (status == CLEVAL_OK) status = check_set(parts, n_parts, by_index);
    if (status == CLEVAL_OK && !options->allow_nonfinite)
        status = check_nonfinite(by_index, n_parts);
    if (status != CLEVAL_OK) goto done;

    snprintf(out->command, sizeof out->command, "%s", parts[0].command);
    cleval_dataset_attribute(by_index[0]->ds, "device", out->device, sizeof out->device);
    cleval_predict_outcome *merged = &out->predict;
    merged->n_total = merged->n_samples = merged->row_end = parts[0].n_total;
    merged->has_labels = cleval_dataset_has(by_index[0]->ds, "confusion");
    const char *counts_name = merged->has_labels ? "confusion" : "predicted_counts";
    for (uint32_t i = 0; status == CLEVAL_OK && i < n_parts; i++) {
        uint32_t rows, cols;
        uint64_t *cells;
        if (cleval_dataset_has(by_index[i]->ds, "confusion") != merged->has_labels) {
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s and %s disagree on labels", by_index[0]->path,
                                 by_index[i]->path);
            break;
        }
        status = cleval_dataset_read_counts(by_index[i]->ds, counts_name, &rows, &cols, &cells);
        if (status != CLEVAL_OK) break;
        if (rows != (merged->has_labels ? cols : 1))
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' is %u x %u, not a part's counts",
                                 by_index[i]->path, counts_name, rows, cols);
        else if (i > 0 && cols != merged->n_classes && strcmp(out->command, "metrics") != 0)
            /* eval and knn fix C; metrics parts may have seen different label ranges */
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: %u classes where %s has %u",
                                 by_index[i]->path, cols, by_index[0]->path, merged->n_classes);
        else
            status = add_counts(by_index[i]->path, merged, merged->has_labels, rows, cols, cells);
        free(cells);
    }
    if (status == CLEVAL_OK)
        status = cleval_dataset_class_names(by_index[0]->ds, &merged->class_names.names,
                                            &merged->class_names.count);
    if (status == CLEVAL_OK) status = merge_attributes(by_index, n_parts, out);
    if (status == CLEVAL_OK && save_path)
        status = write_whole(save_path, by_index, n_parts, merged,
                             strcmp(out->command, "metrics") == 0, options->stop);
done:
    for (uint32_t i = 0; parts && i < n_parts; i++)
        cleval_dataset_close(parts[i].ds);
    free(parts);
    free(by_index);
    if (status != CLEVAL_OK) cleval_predict_outcome_free(&out->predict);
    return status;
}

const char *cleval_merge_attribute(const cleval_merge_outcome *out, const char *name)
{
    for (uint32_t i = 0; i < out->n_attributes; i++)
        if (strcmp(out->attribute_names[i], name) == 0) return out->attribute_values[i];
    return "";
}
