/* `cleval merge`: the part files of a sharded job (--shard I/N) combined into exactly what the
 * unsharded run reports and saves. Parts must come from one job (same fingerprint) and cover
 * every slice once; their counts add, their rows are copied in file order. Each part is a
 * state file (statefile.h): its checksum and consistency are checked before anything of it is
 * used, and its rows are checked against their digest as they are copied. */
#include "engine_internal.h"
#include "statefile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"
#include "cleval/predfile.h"

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
    state_reader reader;
    cleval_dataset *ds; /* reader.ds */
    char command[16];
    char job[8192];
    uint64_t index, count, row_begin, row_end, n_total, rows_digest;
    bool labels; /* counts are a confusion matrix, and the rows have y */
    cleval_counts counts; /* [rows][cols], sparse above the dense limit */
    char **class_names;
    uint32_t n_class_names;
} part;

static void close_part(part *p)
{
    state_reader_close(&p->reader);
    cleval_counts_free(&p->counts);
    cleval_dataset_free_names(p->class_names, p->n_class_names);
}

/* A file that says nothing of being a state file is not a part (rather than a damaged one). */
static bool looks_like_part(cleval_dataset *ds)
{
    char value[64];
    return (cleval_dataset_attribute(ds, "checksum", value, sizeof value) == CLEVAL_OK &&
            value[0]) ||
           (cleval_dataset_attribute(ds, "command", value, sizeof value) == CLEVAL_OK && value[0]);
}

/* What a part of any job must be (checked after its checksum): counts of a part's shape with as
 * many classes as it records, adding up to its slice's rows. */
static bool check_part_counts(part *p)
{
    uint64_t n_classes;
    if (!state_read_count(&p->reader, "n_classes", &n_classes)) return false;
    const cleval_counts *c = &p->counts;
    if (c->rows != (p->labels ? c->cols : 1) || n_classes != c->cols) {
        snprintf(p->reader.problem, sizeof p->reader.problem,
                 "its counts are %u x %u for %" PRIu64 " classes", c->rows, c->cols, n_classes);
        return false;
    }
    if (p->row_begin > p->row_end) {
        snprintf(p->reader.problem, sizeof p->reader.problem, "its slice ends before it begins");
        return false;
    }
    return state_check_total(&p->reader, p->labels ? "confusion" : "predicted_counts", c,
                             p->row_end - p->row_begin);
}

/* Reads a part's state and checks its checksum; on failure p->reader.problem says why. */
static bool read_part(part *p)
{
    state_reader *r = &p->reader;
    p->labels = cleval_dataset_has(p->ds, "confusion");
    return state_read_count_table(r, p->labels ? "confusion" : "predicted_counts", &p->counts) &&
           state_read_class_names(r, &p->class_names, &p->n_class_names) &&
           state_reader_verify(r) &&
           cleval_dataset_attribute(p->ds, "command", p->command, sizeof p->command) == CLEVAL_OK &&
           cleval_dataset_attribute(p->ds, "job", p->job, sizeof p->job) == CLEVAL_OK &&
           state_read_count(r, "shard_index", &p->index) &&
           state_read_count(r, "shard_count", &p->count) &&
           state_read_count(r, "row_begin", &p->row_begin) &&
           state_read_count(r, "row_end", &p->row_end) &&
           state_read_count(r, "n_total", &p->n_total) &&
           state_read_digest(r, "rows_checksum", &p->rows_digest) && check_part_counts(p);
}

static cleval_status damaged(const part *p, const char *problem)
{
    return cleval_fail(CLEVAL_ERR_INPUT, "merge: part %s is damaged (%s): re-run its shard",
                       p->path, problem);
}

/* Opens and checks a part; its class count (read from counts the file really stores) must be
 * within max_classes. */
static cleval_status open_part(const char *path, uint32_t max_classes, part *p)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    /* Something that is no file at all (a FIFO, a folder) is not a damaged part. */
    cleval_status status = cleval_input_check(path, "an HDF5 file");
    if (status != CLEVAL_OK) return status;
    bool opened = state_reader_open(&p->reader, path, "part");
    p->ds = p->reader.ds;
    if (p->ds && !looks_like_part(p->ds))
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: not a cleval part file (written with --shard I/N --save)", path);
    if (!opened || !read_part(p)) return damaged(p, p->reader.problem);
    return cleval_check_class_count(path, p->counts.cols, max_classes);
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

/* Adds a part's counts into the outcome, widening it (metrics parts may have seen different
 * label ranges): only their nonzero cells are visited. */
static cleval_status add_counts(const char *path, cleval_predict_outcome *out, bool labels,
                                const cleval_counts *counts)
{
    uint32_t cols = counts->cols;
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
    cleval_status status = CLEVAL_OK;
    size_t pos = 0;
    cleval_count_cell cell;
    while (status == CLEVAL_OK && cleval_counts_next(counts, &pos, &cell)) {
        out->predicted_counts[cell.col] += cell.count;
        if (labels)
            status = cleval_counts_add(&out->confusion.counts, cell.row, cell.col, cell.count);
    }
    return status;
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

/* Copies one part's rows into the whole file, in chunks, checking them on the way against
 * the part's digest and counts (a damaged part fails the merge before the whole file is
 * committed). */
static cleval_status copy_rows(const part *p, cleval_predfile *file, bool scores,
                               uint32_t n_classes, volatile sig_atomic_t *stop)
{
    state_rows rows;
    const char *problem = NULL;
    uint64_t n = p->row_end - p->row_begin;
    cleval_status status =
        state_rows_open(p->ds, n, p->labels, scores, n_classes, p->counts.cols, &rows, &problem);
    for (uint64_t row0 = 0; status == CLEVAL_OK && row0 < n; row0 += rows.chunk) {
        uint64_t count = n - row0 < rows.chunk ? n - row0 : rows.chunk;
        if (stop && *stop) {
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED, "stopped while copying %s; nothing "
                                                         "written",
                                 p->path);
            break;
        }
        if ((status = state_rows_read(&rows, row0, count, &problem)) == CLEVAL_OK)
            status = cleval_predfile_write(file, p->row_begin + row0, count, rows.pred_rows,
                                           rows.score_rows, rows.y_rows);
    }
    if (status == CLEVAL_OK && rows.digest != p->rows_digest)
        problem = "its rows do not match their checksum";
    else if (status == CLEVAL_OK && !state_rows_match_counts(&rows, &p->counts))
        problem = "its predictions disagree with its counts";
    state_rows_close(&rows);
    return problem ? damaged(p, problem) : status;
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
        status = copy_rows(parts[i], file, scores, merged->n_classes, stop);
    if (status == CLEVAL_OK && metrics)
        status = cleval_predfile_write_count_table(file, "confusion", &merged->confusion.counts);
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
    merged->has_labels = by_index[0]->labels;
    for (uint32_t i = 0; status == CLEVAL_OK && i < n_parts; i++) {
        const part *p = by_index[i];
        if (p->labels != merged->has_labels)
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s and %s disagree on labels", by_index[0]->path,
                                 p->path);
        else if (i > 0 && p->counts.cols != merged->n_classes &&
                 strcmp(out->command, "metrics") != 0)
            /* eval and knn fix C; metrics parts may have seen different label ranges */
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: %u classes where %s has %u", p->path,
                                 p->counts.cols, by_index[0]->path, merged->n_classes);
        else
            status = add_counts(p->path, merged, merged->has_labels, &p->counts);
    }
    /* The class names are the first slice's (read and checked with it). */
    merged->class_names.names = by_index[0]->class_names;
    merged->class_names.count = by_index[0]->n_class_names;
    by_index[0]->class_names = NULL;
    by_index[0]->n_class_names = 0;
    if (status == CLEVAL_OK) status = merge_attributes(by_index, n_parts, out);
    if (status == CLEVAL_OK && save_path)
        status = write_whole(save_path, by_index, n_parts, merged,
                             strcmp(out->command, "metrics") == 0, options->stop);
done:
    for (uint32_t i = 0; parts && i < n_parts; i++)
        close_part(&parts[i]);
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
