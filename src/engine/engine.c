/* engine_run(): a job's slice of the test set through the pipeline, with checkpoints, resume,
 * and the prediction file (or, for a shard, the part file that `cleval merge` reads). */
#include "checkpoint.h"
#include "engine_internal.h"
#include "statefile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleval/predfile.h"

double cleval_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cleval_shard_range(uint64_t n, uint32_t index, uint32_t count, uint64_t *begin,
                        uint64_t *end)
{
    if (count <= 1) {
        *begin = 0;
        *end = n;
        return;
    }
    /* Near-equal: the first n % count slices hold one row more. */
    uint64_t base = n / count, extra = n % count;
    *begin = index * base + (index < extra ? index : extra);
    *end = *begin + base + (index < extra ? 1 : 0);
}

void cleval_predict_outcome_free(cleval_predict_outcome *out)
{
    cleval_confusion_free(&out->confusion);
    free(out->predicted_counts);
    out->predicted_counts = NULL;
    cleval_dataset_free_names(out->class_names.names, out->class_names.count);
    out->class_names.names = NULL;
    out->class_names.count = 0;
    cleval_errors_free(&out->errors);
}

/* The error analysis's collector for a run, or NULL without --errors. Its lists live only in
 * this process's memory, so runs whose results are carried elsewhere are refused. */
static cleval_status create_errors(const engine_run_spec *spec, const cleval_run_options *run,
                                   bool score_metrics, cleval_errors_collector **out)
{
    *out = NULL;
    if (!spec->errors) return CLEVAL_OK;
    if (run->shard_count > 1 || run->checkpoint_path)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "--errors does not combine with --shard, mpirun or --checkpoint: part "
                           "files and checkpoints do not carry its lists");
    if (!spec->labels)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: --errors needs labels, and the file has none",
                           cleval_dataset_path(spec->data));
    return cleval_errors_collector_create(spec->errors, score_metrics, out);
}

typedef struct run_context {
    const engine_run_spec *spec;
    const cleval_run_options *run;
    uint64_t begin, end;
    bool checkpointed;      /* a checkpoint of this job is on disk (written or resumed from) */
    uint64_t checkpoint_at; /* the row it continues at */
    /* The rows saved so far (state_rows_digest) of a part file or a checkpointed run: kept in
     * checkpoints, checked on resume, stored in the part. */
    uint64_t rows_digest;
    bool score_metrics; /* the run reduces score metrics */
} run_context;

/* The counters now: restored from the checkpoint plus what the devices counted since. */
static void current_counters(const engine_run_spec *spec, uint64_t *values)
{
    memset(values, 0, ENGINE_MAX_COUNTERS * sizeof *values);
    if (!spec->counters) return;
    spec->counters->read(spec->counters->user, values);
    for (uint32_t i = 0; i < spec->counters->count; i++)
        values[i] += spec->counters->restored[i];
}

static cleval_status save_checkpoint(void *user, uint64_t rows_done, const pipeline_counts *counts,
                                     const cleval_score_sums *scores)
{
    run_context *ctx = user;
    checkpoint_state state = {.rows_done = rows_done,
                              .rows_digest = ctx->rows_digest,
                              .counts = *counts,
                              .with_scores = ctx->score_metrics,
                              .scores = *scores};
    current_counters(ctx->spec, state.counters);
    cleval_status status =
        checkpoint_save(ctx->run->checkpoint_path, ctx->run->fingerprint, ctx->begin, ctx->end,
                        &state, ctx->spec->counters ? ctx->spec->counters->count : 0);
    if (status == CLEVAL_OK) {
        ctx->checkpointed = true;
        ctx->checkpoint_at = rows_done;
    }
    return status;
}

/* The line a stopped run leaves: how far it got, and how to go on. */
static cleval_status stopped(const run_context *ctx, uint64_t done)
{
    unsigned long long total = ctx->end - ctx->begin;
    const char *path = ctx->run->checkpoint_path;
    if (!path)
        return cleval_fail(CLEVAL_ERR_INTERRUPTED,
                           "stopped after %llu of %llu samples (without --checkpoint there is "
                           "nothing to resume)",
                           (unsigned long long)done, total);
    if (!ctx->checkpointed)
        return cleval_fail(CLEVAL_ERR_INTERRUPTED,
                           "stopped after %llu of %llu samples, before the first checkpoint "
                           "(--resume starts from the beginning)",
                           (unsigned long long)done, total);
    return cleval_fail(CLEVAL_ERR_INTERRUPTED,
                       "stopped after %llu of %llu samples; the checkpoint %s holds the first "
                       "%llu: run the same command with --resume to continue",
                       (unsigned long long)done, total, path,
                       (unsigned long long)(ctx->checkpoint_at - ctx->begin));
}

/* The attributes a prediction file carries, and a part file's facts about its job. */
static cleval_status describe_file(state_writer *w, const engine_run_spec *spec,
                                   const run_context *ctx, uint64_t n_total)
{
    const cleval_run_options *run = ctx->run;
    char devices[1024];
    cleval_device_names(run->devices, run->n_devices, devices, sizeof devices);
    cleval_status status;
    if ((status = state_set_text(w, "model", spec->model_description)) ||
        (status = state_set_text(w, "data", cleval_dataset_path(spec->data))) ||
        (status = state_set_text(w, "device", devices)) ||
        (status = state_set_text(w, "cleval_version", CLEVAL_VERSION)))
        return status;
    if (run->shard_count <= 1) return CLEVAL_OK;
    if ((status = state_set_text(w, "command", spec->command)) ||
        (status = state_set_text(w, "job", run->fingerprint ? run->fingerprint : "")) ||
        (status = state_set_int(w, "shard_index", run->shard_index)) ||
        (status = state_set_int(w, "shard_count", run->shard_count)) ||
        (status = state_set_int(w, "row_begin", (int64_t)ctx->begin)) ||
        (status = state_set_int(w, "row_end", (int64_t)ctx->end)) ||
        (status = state_set_int(w, "n_total", (int64_t)n_total)))
        return status;
    for (const char *const *a = spec->part_attributes; a && a[0]; a += 2)
        if ((status = state_set_text(w, a[0], a[1]))) return status;
    return CLEVAL_OK;
}

/* A finished part file's state, all written by the process that finishes it (a resumed part
 * was begun by another) so that its checksum covers every attribute: the description, its
 * counts, class names and counters, the digest of its rows, and the checksum. */
static cleval_status finish_part(cleval_predfile *file, const engine_run_spec *spec,
                                 const run_context *ctx, uint64_t n_total,
                                 const pipeline_counts *counts, const cleval_class_names *names)
{
    state_writer w;
    state_writer_init(&w, file, "part");
    cleval_status status;
    if ((status = describe_file(&w, spec, ctx, n_total)) ||
        (status = state_write_count_table(&w, spec->labels ? "confusion" : "predicted_counts",
                                          counts)) ||
        (status = state_set_int(&w, "n_classes", counts->cols)) ||
        (status = state_set_digest(&w, "rows_checksum", ctx->rows_digest)))
        return status;
    if (names->count &&
        (status = state_write_strings(&w, "class_names", names->names, names->count)))
        return status;
    uint64_t values[ENGINE_MAX_COUNTERS];
    current_counters(spec, values);
    for (uint32_t i = 0; spec->counters && i < spec->counters->count; i++)
        if ((status = state_set_int(&w, spec->counters->names[i], (int64_t)values[i])))
            return status;
    return state_seal(&w);
}

/* Checks the rows an interrupted run saved in its partial file (those before the checkpoint's
 * rows_done) against the checkpoint's digest and counts, before a resumed run keeps them. */
static cleval_status check_partial(const char *partial, const engine_run_spec *spec,
                                   const run_context *ctx, const checkpoint_state *restored)
{
    cleval_dataset *ds;
    if (cleval_dataset_open(partial, &ds) != CLEVAL_OK)
        return CLEVAL_OK; /* cleval_predfile_resume() names what is missing */
    state_rows rows;
    const char *problem = NULL;
    uint64_t n = restored->rows_done - ctx->begin;
    cleval_status status = state_rows_open(ds, ctx->end - ctx->begin, spec->labels != NULL,
                                           spec->with_scores, spec->n_classes,
                                           restored->counts.cols, &rows, &problem);
    for (uint64_t row0 = 0; status == CLEVAL_OK && row0 < n; row0 += rows.chunk)
        status = state_rows_read(&rows, row0, n - row0 < rows.chunk ? n - row0 : rows.chunk,
                                 &problem);
    if (status == CLEVAL_OK && rows.digest != restored->rows_digest)
        problem = "its rows do not match the checkpoint";
    else if (status == CLEVAL_OK && !state_rows_match_counts(&rows, &restored->counts))
        problem = "its predictions disagree with the checkpoint's counts";
    state_rows_close(&rows);
    cleval_dataset_close(ds);
    if (!problem) return status;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "--resume: the partial prediction file %s is damaged (%s): delete it and "
                       "the checkpoint, or run without --resume",
                       partial, problem);
}

cleval_status engine_fill_outcome(const char *path, const pipeline_counts *counts, bool labels,
                                  cleval_predict_outcome *out)
{
    uint32_t c = counts->cols;
    out->n_classes = c;
    out->has_labels = labels;
    out->predicted_counts = calloc(c, sizeof *out->predicted_counts);
    if (!out->predicted_counts)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for the counts of %u classes", path,
                           c);
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(counts, &pos, &cell))
        out->predicted_counts[cell.col] += cell.count;
    if (!labels) return CLEVAL_OK;
    cleval_status status = cleval_counts_copy(counts, &out->confusion.counts);
    if (status == CLEVAL_OK) out->confusion.n_classes = c;
    return status;
}

/* --resume: the checkpoint's state (its counters into spec's); without it, a checkpoint left
 * at the path by an earlier run is removed, as a fresh run starts a fresh partial file. */
static cleval_status restore_checkpoint(const engine_run_spec *spec, run_context *ctx,
                                        checkpoint_state *restored)
{
    const cleval_run_options *run = ctx->run;
    if (!run->resume) {
        if (run->checkpoint_path) unlink(run->checkpoint_path);
        return CLEVAL_OK;
    }
    uint32_t n_counters = spec->counters ? spec->counters->count : 0;
    cleval_status status = checkpoint_load(
        run->checkpoint_path, run->fingerprint ? run->fingerprint : "", ctx->begin, ctx->end,
        spec->n_classes, spec->labels != NULL, n_counters, ctx->score_metrics, restored);
    ctx->rows_digest = restored->rows_digest;
    if (status == CLEVAL_OK && spec->counters)
        memcpy(spec->counters->restored, restored->counters, sizeof restored->counters);
    ctx->checkpointed = status == CLEVAL_OK;
    ctx->checkpoint_at = restored->rows_done;
    return status;
}

/* The prediction (or part) file of --save: created, or on --resume the checked partial file
 * reopened; written under "<save>.partial" when checkpointing. */
static cleval_status open_save_file(const engine_run_spec *spec, const run_context *ctx,
                                    const checkpoint_state *restored, uint64_t n_total,
                                    cleval_predfile **file)
{
    const cleval_run_options *run = ctx->run;
    bool part = run->shard_count > 1;
    char partial[CLEVAL_PATH_TEXT_SIZE];
    cleval_engine_partial_path(spec->save_path, partial, sizeof partial);
    cleval_status status;
    if (run->resume && (status = check_partial(partial, spec, ctx, restored)) != CLEVAL_OK)
        return status;
    cleval_predfile_spec file_spec = {.n_samples = ctx->end - ctx->begin,
                                      .n_classes = spec->n_classes,
                                      .with_pred = true,
                                      .with_scores = spec->with_scores,
                                      .with_labels = spec->labels != NULL,
                                      .temp_path = run->checkpoint_path ? partial : NULL,
                                      .finish = part ? state_seal_file : NULL};
    if (run->resume) return cleval_predfile_resume(spec->save_path, &file_spec, file);
    if ((status = cleval_predfile_create(spec->save_path, &file_spec, file)) != CLEVAL_OK || part)
        return status;
    state_writer w; /* a plain prediction file: its attributes, no checksum */
    state_writer_init(&w, *file, "prediction");
    return describe_file(&w, spec, ctx, n_total);
}

cleval_status engine_run(const engine_run_spec *spec, const cleval_run_options *run,
                         cleval_predict_outcome *out)
{
    memset(out, 0, sizeof *out);
    cleval_column *rows_from = spec->x ? spec->x : spec->file_pred;
    uint64_t n_total = cleval_column_rows(rows_from);
    bool part = run->shard_count > 1; /* --save then writes a part file for `cleval merge` */
    run_context ctx = {
        .spec = spec, .run = run, .score_metrics = spec->score_metrics && spec->labels && !part};
    cleval_shard_range(n_total, run->shard_index, run->shard_count, &ctx.begin, &ctx.end);
    out->n_total = n_total;
    out->row_begin = ctx.begin;
    out->row_end = ctx.end;
    out->n_samples = ctx.end - ctx.begin;
    if (run->resume && !run->checkpoint_path)
        return cleval_fail(CLEVAL_ERR_USAGE, "--resume needs --checkpoint PATH");

    cleval_status status = engine_class_names(spec->data, spec->names_fallback, &out->class_names);
    if (status == CLEVAL_OK && spec->classes_from && out->class_names.count > spec->n_classes)
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: 'class_names' has %u entries, more than the %u classes of %s",
                             cleval_dataset_path(spec->data), out->class_names.count,
                             spec->n_classes, spec->classes_from);
    cleval_errors_collector *errors = NULL;
    if (status == CLEVAL_OK) status = create_errors(spec, run, ctx.score_metrics, &errors);
    checkpoint_state restored = {.rows_done = ctx.begin};
    if (status == CLEVAL_OK) status = restore_checkpoint(spec, &ctx, &restored);
    cleval_predfile *file = NULL;
    if (status == CLEVAL_OK && spec->save_path)
        status = open_save_file(spec, &ctx, &restored, n_total, &file);

    /* The ROC AUC sorts every row's scores at the end, so the rows stay on the first device;
     * a run resumed from a checkpoint no longer has those before it. */
    uint32_t score_width = spec->score_width ? spec->score_width : spec->n_classes;
    cleval_auc_store *auc = NULL;
    if (status == CLEVAL_OK && ctx.score_metrics && restored.rows_done == ctx.begin &&
        cleval_auc_wanted(spec->auc, score_width))
        status = cleval_auc_store_create(run->devices[0], score_width, ctx.end - ctx.begin, &auc);

    pipeline_result result = {0};
    if (status == CLEVAL_OK) {
        pipeline_config cfg = {
            .x = spec->x,
            .x_type = spec->x_type,
            .labels = spec->labels,
            .file_pred = spec->file_pred,
            .row_begin = restored.rows_done,
            .row_end = ctx.end,
            .batch = spec->batch,
            .n_classes = spec->n_classes,
            .with_scores = spec->with_scores && (file != NULL || run->sink),
            .score_metrics = ctx.score_metrics,
            .file_scores = ctx.score_metrics ? spec->file_scores : NULL,
            .score_width = score_width,
            .top_k = spec->top_k,
            .errors = errors,
            .auc = auc,
            .n_workers = run->n_devices,
            .devices = run->devices,
            .models = spec->models,
            .ops = spec->ops,
            .save = file,
            .sink = run->sink,
            .save_row0 = ctx.begin,
            .rows_digest = file && (part || run->checkpoint_path) ? &ctx.rows_digest : NULL,
            .progress = run->progress,
            .progress_user = run->progress_user,
            .checkpoint = run->checkpoint_path ? save_checkpoint : NULL,
            .checkpoint_user = &ctx,
            .checkpoint_rows = run->checkpoint_rows,
            .checkpoint_seconds = run->checkpoint_seconds > 0 ? run->checkpoint_seconds
                                                              : CLEVAL_DEFAULT_CHECKPOINT_SECONDS,
            .initial_counts = run->resume ? &restored.counts : NULL,
            .initial_scores = run->resume && ctx.score_metrics ? &restored.scores : NULL,
            .stop = run->stop,
        };
        status = pipeline_run(&cfg, &result);
        out->read_s = result.read_s;
        out->wait_s = result.wait_s;
        if (status == CLEVAL_ERR_INTERRUPTED)
            status = stopped(&ctx, restored.rows_done - ctx.begin + result.rows_done);
    }
    if (status == CLEVAL_OK && spec->accept) status = spec->accept(spec->accept_user);
    if (status == CLEVAL_OK)
        status = engine_fill_outcome(cleval_dataset_path(spec->data), &result.counts,
                                     spec->labels != NULL, out);
    out->has_scores = ctx.score_metrics && out->n_samples > 0;
    out->scores = result.scores;
    out->top_k = spec->top_k;
    /* The confidence lists of the view the score metrics use (cleval_score_metrics_compute). */
    if (status == CLEVAL_OK && errors)
        status = cleval_errors_finish(errors, result.scores.not_probabilities > 0, &out->errors);
    cleval_errors_collector_destroy(errors);
    if (status == CLEVAL_OK && auc && out->has_scores) {
        status = cleval_auc_store_compute(auc, out->n_samples, result.scores.not_probabilities > 0,
                                          &out->auc);
        out->has_auc = status == CLEVAL_OK;
    }
    cleval_auc_store_destroy(auc);
    if (status == CLEVAL_OK && file) {
        if (part)
            status = finish_part(file, spec, &ctx, n_total, &result.counts, &out->class_names);
        else if (spec->save_counts)
            status = cleval_predfile_write_count_table(file, "confusion", &result.counts);
        if (status == CLEVAL_OK) {
            status = cleval_predfile_commit(file);
            file = NULL;
        }
    }
    /* A failed run with a checkpoint keeps its partial file for --resume; otherwise nothing
     * of it remains. A finished run no longer needs its checkpoint. */
    if (ctx.checkpointed)
        cleval_predfile_suspend(file);
    else
        cleval_predfile_abort(file);
    if (status == CLEVAL_OK && run->checkpoint_path) unlink(run->checkpoint_path);
    pipeline_counts_free(&result.counts);
    pipeline_counts_free(&restored.counts);
    if (status != CLEVAL_OK) cleval_predict_outcome_free(out);
    return status;
}

void cleval_engine_partial_path(const char *save_path, char *out, size_t size)
{
    snprintf(out, size, "%s.partial", save_path);
}

cleval_status engine_class_names(cleval_dataset *data, cleval_dataset *fallback,
                                 cleval_class_names *names)
{
    cleval_status status = cleval_dataset_class_names(data, &names->names, &names->count);
    if (status == CLEVAL_OK && names->count == 0 && fallback)
        status = cleval_dataset_class_names(fallback, &names->names, &names->count);
    return status;
}

bool engine_read_count(cleval_dataset *ds, const char *name, uint64_t *value)
{
    char text[64], *end;
    if (cleval_dataset_attribute(ds, name, text, sizeof text) != CLEVAL_OK || !text[0] ||
        text[0] == '-')
        return false;
    *value = strtoull(text, &end, 10);
    return *end == '\0';
}
