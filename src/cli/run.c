/* What `eval`, `knn` and `metrics` share on the command line: the devices (--device, a list
 * or "all"), the slice (--shard I/N), checkpoints (--checkpoint, --checkpoint-every,
 * --resume), progress (--progress, --quiet), stop signals, and the job fingerprint that ties
 * checkpoints and part files to their job. */
#include "run.h"
#include "against.h"
#include "stop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleval/cluster.h"

static cleval_status parse_shard(const char *text, uint32_t *index, uint32_t *count)
{
    unsigned long i, n;
    char extra;
    if (sscanf(text, "%lu/%lu%c", &i, &n, &extra) != 2 || n == 0 || i >= n || n > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_USAGE, "--shard: '%s' is not I/N with 0 <= I < N", text);
    *index = (uint32_t)i;
    *count = (uint32_t)n;
    return CLEVAL_OK;
}

/* Adds "name=value;" to the fingerprint; false when it does not fit (the fingerprint must
 * never be cut short: two jobs differing only past the cut would pass for one). */
static bool append(char *out, size_t size, const char *name, const char *value)
{
    size_t used = strlen(out);
    int n = snprintf(out + used, size - used, "%s=%s;", name, value ? value : "");
    return n >= 0 && (size_t)n < size - used;
}

/* Inputs are identified by path, size and modification time: a changed file is another job. */
static bool append_file(char *out, size_t size, const char *path)
{
    struct stat st;
    char value[CLEVAL_PATH_TEXT_SIZE];
    if (stat(path, &st) == 0)
        snprintf(value, sizeof value, "%s(%lld bytes, mtime %lld)", path, (long long)st.st_size,
                 (long long)st.st_mtime);
    else
        snprintf(value, sizeof value, "%s", path);
    return append(out, size, "input", value);
}

/* Options that cannot change a result do not enter the fingerprint; nor does
 * --fp16-arithmetic as typed, whose concrete value cmd_eval adds (cli_run_add_fact). */
static bool affects_results(cli_option_id id)
{
    switch (id) {
    case OPT_HELP: case OPT_VERSION: case OPT_JSON: case OPT_SAVE: case OPT_BATCH:
    case OPT_DEVICE: case OPT_QUIET: case OPT_VERBOSE: case OPT_CHECKPOINT:
    case OPT_CHECKPOINT_EVERY: case OPT_RESUME: case OPT_PROGRESS: case OPT_SHARD:
    case OPT_FP16_ARITHMETIC: case OPT_ALLOW_EXTERNAL_STORAGE: case OPT_ALLOW_NONFINITE:
    case OPT_MAX_CLASSES: case OPT_MIN_ACCURACY: case OPT_MIN_CLASS_RECALL: case OPT_JUNIT:
    case OPT_SUMMARY_MD: case OPT_HTML: case OPT_PROGRESS_EVERY: return false;
    default: return true;
    }
}

static cleval_status build_fingerprint(const cli_args *args, const char *command,
                                       const char *const *inputs, uint32_t shard_count,
                                       char *out, size_t size)
{
    out[0] = '\0';
    bool fits = append(out, size, "command", command);
    for (const char *const *p = inputs; *p; p++)
        fits = fits && append_file(out, size, *p);
    for (int id = 0; id < OPT_COUNT; id++)
        if (args->present[id] && affects_results((cli_option_id)id))
            fits = fits && append(out, size, cli_options[id].long_name,
                                  args->values[id] ? args->values[id] : "on");
    char shards[32];
    snprintf(shards, sizeof shards, "%u", shard_count ? shard_count : 1);
    fits = fits && append(out, size, "shards", shards);
    return fits ? CLEVAL_OK
                : cleval_fail(CLEVAL_ERR_USAGE, "%s: the paths and options are too long to "
                                                "identify the job (%zu characters at most)",
                              command, size - 1);
}

/* "<path>.rank<r>": rank r's own file for `path` under mpirun; false when it does not fit. */
static bool rank_file(const char *path, int rank, char *out, size_t size)
{
    int n = snprintf(out, size, "%s.rank%d", path, rank);
    return n >= 0 && (size_t)n < size;
}

/* The outputs beyond those cli_check_outputs reads from the flags. */
typedef struct output_list {
    cleval_named_path *paths; /* each path a heap copy */
    size_t n, cap;
} output_list;

static bool add_output(output_list *list, const char *what, const char *path)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 8;
        cleval_named_path *grown = realloc(list->paths, cap * sizeof *grown);
        if (!grown) return false;
        list->paths = grown;
        list->cap = cap;
    }
    char *copy = malloc(strlen(path) + 1);
    if (!copy) return false;
    strcpy(copy, path);
    list->paths[list->n++] = (cleval_named_path){what, copy};
    return true;
}

/* The files of one rank (`rank` < 0: the only process) under --save and --checkpoint. */
static bool add_rank_outputs(output_list *list, const char *save, const char *checkpoint, int rank)
{
    char save_part[CLEVAL_PATH_TEXT_SIZE], partial[CLEVAL_PATH_TEXT_SIZE + 100],
        checkpoint_part[CLEVAL_PATH_TEXT_SIZE];
    bool ok = true;
    if (save && rank >= 0) {
        ok = rank_file(save, rank, save_part, sizeof save_part) &&
             add_output(list, "--save's part", save_part);
        save = save_part;
    }
    if (ok && checkpoint && rank >= 0)
        ok = rank_file(checkpoint, rank, checkpoint_part, sizeof checkpoint_part) &&
             add_output(list, "--checkpoint's part", checkpoint_part);
    if (ok && save && checkpoint) {
        cleval_engine_partial_path(save, partial, sizeof partial);
        ok = add_output(list, "--save's partial file", partial);
    }
    return ok;
}

/* Refuses outputs that are inputs or each other: --json, --save and --checkpoint as given and
 * the files derived from them: the partial prediction file kept with checkpoints, --against's
 * second file and, under mpirun, every rank's part of --save and own checkpoint (every rank
 * checks them all, so all refuse together before any writes). */
static cleval_status check_outputs(const cli_args *args, const cli_run *run)
{
    const char *save = args->values[OPT_SAVE], *checkpoint = args->values[OPT_CHECKPOINT];
    int ranks = run->cluster->size;
    bool rank_parts = ranks > 1 && !run->split_training;
    output_list list = {0};
    bool ok = true;
    if (ranks <= 1) ok = add_rank_outputs(&list, save, checkpoint, -1);
    for (int r = 0; ok && ranks > 1 && r < ranks; r++)
        ok = add_rank_outputs(&list, rank_parts ? save : NULL, checkpoint, r);
    char against[CLEVAL_PATH_TEXT_SIZE + 100];
    if (ok && save && args->present[OPT_AGAINST]) {
        cli_against_second_path(save, against, sizeof against);
        ok = add_output(&list, "--against's file", against);
    }
    cleval_status status = ok ? cli_check_outputs(args, NULL, list.paths, list.n)
                              : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory naming the outputs");
    for (size_t i = 0; i < list.n; i++)
        free((char *)list.paths[i].path);
    free(list.paths);
    return status;
}

/* The devices of this process: --device (or CLEVAL_DEVICE) when given; under mpirun without
 * one, the device of this rank's node-local rank among the GPUs (or all devices). */
static cleval_status pick_devices(const cli_args *args, const cleval_cluster *cluster,
                                  uint32_t **indices, uint32_t *count)
{
    const char *spec = args->values[OPT_DEVICE];
    const char *env = getenv("CLEVAL_DEVICE");
    if (!cluster->active || (spec && *spec) || (env && *env))
        return cleval_device_resolve_list(spec, indices, count);
    cleval_device_info *infos;
    uint32_t n, gpus = 0;
    cleval_status status = cleval_device_list(&infos, &n);
    if (status != CLEVAL_OK) return status;
    if (n == 0) {
        free(infos);
        return cleval_fail(CLEVAL_ERR_OPENCL, "no OpenCL device found");
    }
    for (uint32_t i = 0; i < n; i++)
        gpus += infos[i].type == CLEVAL_DEVICE_GPU;
    uint32_t pool = gpus ? gpus : n, choice = (uint32_t)cluster->local_rank % pool;
    *indices = malloc(sizeof **indices);
    *count = 1;
    for (uint32_t i = 0, seen = 0; *indices && i < n; i++)
        if (!gpus || infos[i].type == CLEVAL_DEVICE_GPU) {
            if (seen++ == choice) **indices = i;
        }
    free(infos);
    return *indices ? CLEVAL_OK : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
}

cleval_status cli_run_begin(const cli_args *args, const char *command,
                            const char *const *inputs, cli_run *run)
{
    memset(run, 0, sizeof *run);
    cleval_run_options *o = &run->options;
    cleval_status status = CLEVAL_OK;
    if (args->present[OPT_SHARD])
        status = parse_shard(args->values[OPT_SHARD], &o->shard_index, &o->shard_count);
    if (status == CLEVAL_OK) status = cli_progress_check(args);
    if (status == CLEVAL_OK)
        status = cli_get_count_or_duration(args, OPT_CHECKPOINT_EVERY, &o->checkpoint_rows,
                                           &o->checkpoint_seconds);
    if (status == CLEVAL_OK) status = cli_get_max_classes(args, &o->max_classes);
    cleval_metric_limits limits; /* checked here; cli_emit_predictions() applies them */
    if (status == CLEVAL_OK) status = cli_parse_metric_limits(args, &limits);
    const cleval_cluster *cluster = cli_cluster();
    run->cluster = cluster;
    run->split_training = args->present[OPT_SHARD_TRAIN] && cluster->size > 1;
    if (status == CLEVAL_OK && run->split_training &&
        (o->shard_count > 1 || args->present[OPT_CHECKPOINT]))
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "--shard-train does not combine with --shard or --checkpoint");
    if (status == CLEVAL_OK && cluster->size > 1 && !run->split_training) {
        /* Under mpirun the ranks are the shards of the test set. */
        if (o->shard_count > 1)
            status = cleval_fail(CLEVAL_ERR_USAGE, "--shard does not combine with mpirun: the "
                                                   "ranks already split the test set");
        o->shard_index = (uint32_t)cluster->rank;
        o->shard_count = (uint32_t)cluster->size;
    }
    run->final_save_path = args->values[OPT_SAVE];
    bool rank_parts = cluster->size > 1 && !run->split_training;
    const char *save = args->values[OPT_SAVE], *checkpoint = args->values[OPT_CHECKPOINT];
    if (save && rank_parts)
        rank_file(save, cluster->rank, run->save_path, sizeof run->save_path);
    else if (save)
        snprintf(run->save_path, sizeof run->save_path, "%s", save);
    if (checkpoint && cluster->size > 1)
        rank_file(checkpoint, cluster->rank, run->checkpoint_path, sizeof run->checkpoint_path);
    else if (checkpoint)
        snprintf(run->checkpoint_path, sizeof run->checkpoint_path, "%s", checkpoint);
    if (status == CLEVAL_OK && o->shard_count > 1 && cluster->size <= 1 &&
        !args->present[OPT_SAVE])
        status = cleval_fail(CLEVAL_ERR_USAGE, "--shard needs --save PART.h5 for the part file");
    if (status == CLEVAL_OK && args->present[OPT_RESUME] && !args->present[OPT_CHECKPOINT])
        status = cleval_fail(CLEVAL_ERR_USAGE, "--resume needs --checkpoint PATH");
    if (status == CLEVAL_OK) status = check_outputs(args, run);
    if (status != CLEVAL_OK) return status;
    o->resume = args->present[OPT_RESUME];
    if (o->resume && access(run->checkpoint_path, F_OK) != 0) {
        /* A job requeued before its first checkpoint runs the same command. */
        fprintf(stderr, "cleval: --resume: no checkpoint at %s yet; starting from the beginning\n",
                run->checkpoint_path);
        o->resume = false;
    }

    uint32_t *indices = NULL;
    if ((status = pick_devices(args, cluster, &indices, &run->n_devices))) return status;
    run->devices = calloc(run->n_devices, sizeof *run->devices);
    if (!run->devices) status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening devices");
    for (uint32_t d = 0; status == CLEVAL_OK && d < run->n_devices; d++)
        status = cleval_device_open(indices[d], &run->devices[d]);
    free(indices);
    if (status != CLEVAL_OK) {
        cli_run_end(run);
        return status;
    }
    cleval_device_names(run->devices, run->n_devices, run->device_names, sizeof run->device_names);

    if ((status = build_fingerprint(args, command, inputs, o->shard_count, run->fingerprint,
                                    sizeof run->fingerprint))) {
        cli_run_end(run);
        return status;
    }
    o->devices = run->devices;
    o->n_devices = run->n_devices;
    o->checkpoint_path = args->present[OPT_CHECKPOINT] ? run->checkpoint_path : NULL;
    o->fingerprint = run->fingerprint;
    cli_stop_install();
    o->stop = cli_stop_request();
    cli_progress_init(&run->progress, args, run->device_names);
    if (cluster->rank != 0) run->progress.mode = CLI_PROGRESS_NONE; /* rank 0 speaks */
    if (run->progress.mode != CLI_PROGRESS_NONE) {
        o->progress = cli_progress_update;
        o->progress_user = &run->progress;
    }
    return CLEVAL_OK;
}

cleval_status cli_run_add_fact(cli_run *run, const char *name, const char *value)
{
    if (append(run->fingerprint, sizeof run->fingerprint, name, value)) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_USAGE,
                       "the paths and options are too long to identify the job (%zu characters "
                       "at most)",
                       sizeof run->fingerprint - 1);
}

void cli_run_end(cli_run *run)
{
    cli_progress_finish(&run->progress);
    for (uint32_t d = 0; run->devices && d < run->n_devices; d++)
        cleval_device_close(run->devices[d]);
    free(run->devices);
    run->devices = NULL;
    run->n_devices = 0;
}

bool cli_run_reports(const cli_run *run)
{
    return !run->cluster || run->cluster->rank == 0;
}

void cli_run_describe(const cli_run *run, cJSON *extra)
{
    if (run->cluster && run->cluster->active)
        cJSON_AddNumberToObject(extra, "ranks", run->cluster->size);
}

/* Widens an outcome's counts to n_classes (ranks may have seen different label ranges). */
static cleval_status widen(cleval_predict_outcome *out, uint32_t n_classes)
{
    if (n_classes <= out->n_classes) return CLEVAL_OK;
    uint64_t *wider = calloc(n_classes, sizeof *wider);
    if (!wider) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory widening counts");
    if (out->predicted_counts) memcpy(wider, out->predicted_counts, out->n_classes * sizeof *wider);
    free(out->predicted_counts);
    out->predicted_counts = wider;
    out->n_classes = n_classes;
    return out->has_labels ? cleval_confusion_grow(&out->confusion, n_classes) : CLEVAL_OK;
}

/* Sums the ranks' confusion matrices above the dense limit: each rank sends rank 0 only its
 * nonzero (row, column, count) cells, which rank 0 adds into its own counts. Memory follows
 * the cells that occur, never C^2 (a 4-row file with a label of 9000 on 2 ranks). */
static cleval_status sum_sparse_confusion(const cleval_cluster *cluster, cleval_confusion *cm)
{
    cleval_count_cell *cells;
    size_t n, bytes;
    void *gathered;
    cleval_status status = cleval_counts_sorted(&cm->counts, &cells, &n);
    /* A rank that failed still joins the gather, with no cells: the ranks agree on the exit
     * code afterwards, so the run fails everywhere instead of waiting here. */
    if (status != CLEVAL_OK) n = 0;
    cleval_status gather =
        cleval_cluster_gather_bytes(cluster, cells, n * sizeof *cells, &gathered, &bytes);
    free(cells);
    if (status == CLEVAL_OK) status = gather;
    if (status != CLEVAL_OK || cluster->rank != 0) {
        free(gathered);
        return status;
    }
    /* Rank 0's own cells come first in the gathered ones: add them all to fresh counts. */
    cleval_confusion summed;
    const cleval_count_cell *all = gathered;
    if ((status = cleval_confusion_init(&summed, cm->n_classes)) == CLEVAL_OK) {
        for (size_t i = 0; i < bytes / sizeof *all && status == CLEVAL_OK; i++)
            status = cleval_counts_add(&summed.counts, all[i].row, all[i].col, all[i].count);
        if (status == CLEVAL_OK) {
            cleval_confusion_free(cm);
            *cm = summed;
        } else {
            cleval_confusion_free(&summed);
        }
    }
    free(gathered);
    return status;
}

/* Sums the ranks' confusion matrices. Within the dense limit the reduction works on dense
 * arrays; above it, on the nonzero cells (sum_sparse_confusion). Every rank has the same
 * class count by now, so all take the same path. */
static cleval_status sum_confusion(const cleval_cluster *cluster, cleval_confusion *cm)
{
    uint64_t *dense;
    uint32_t c = cm->n_classes;
    if ((uint64_t)c * c > cleval_counts_dense_limit()) return sum_sparse_confusion(cluster, cm);
    cleval_status status = cleval_counts_to_dense(&cm->counts, &dense);
    if (status != CLEVAL_OK) return status;
    status = cleval_cluster_sum_counts(cluster, dense, (uint64_t)c * c);
    cleval_confusion summed;
    if (status == CLEVAL_OK && (status = cleval_confusion_init(&summed, c)) == CLEVAL_OK) {
        if ((status = cleval_counts_add_dense(&summed.counts, c, c, dense)) == CLEVAL_OK) {
            cleval_confusion_free(cm);
            *cm = summed;
        } else {
            cleval_confusion_free(&summed);
        }
    }
    free(dense);
    return status;
}

/* Rank 0 merges the ranks' part files into --save and removes them. */
static cleval_status merge_parts(const cli_run *run, const char *save_path)
{
    int size = run->cluster->size;
    char **paths = calloc((size_t)size, sizeof *paths);
    cleval_merge_outcome *merged = calloc(1, sizeof *merged);
    cleval_status status = paths && merged ? CLEVAL_OK
                                           : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
    for (int r = 0; status == CLEVAL_OK && r < size; r++) {
        size_t size = strlen(save_path) + 32;
        paths[r] = malloc(size);
        if (!paths[r]) status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
        else rank_file(save_path, r, paths[r], size);
    }
    /* The ranks decided on non-finite scores already, each on its own slice. */
    cleval_merge_options merge_options = {.allow_nonfinite = true,
                                          .max_classes = run->options.max_classes,
                                          .stop = cli_stop_request()};
    if (status == CLEVAL_OK)
        status = cleval_engine_merge((const char *const *)paths, (uint32_t)size, save_path,
                                     &merge_options, merged);
    for (int r = 0; paths && r < size; r++) {
        if (paths[r] && status == CLEVAL_OK) unlink(paths[r]);
        free(paths[r]);
    }
    if (merged) cleval_predict_outcome_free(&merged->predict);
    free(merged);
    free(paths);
    return status;
}

int cli_run_settle(cli_run *run, cleval_status status, cleval_predict_outcome *outcome,
                   uint64_t *counters, uint32_t n_counters)
{
    const cleval_cluster *cluster = run->cluster ? run->cluster : cli_cluster();
    int code = status == CLEVAL_OK ? CLI_EXIT_OK : cli_fail(status);
    code = cleval_cluster_agree_exit(cluster, code);
    if (code != CLI_EXIT_OK || cluster->size <= 1) return code;

    /* Every rank reaches each collective below, whatever happened before it. */
    uint32_t n_classes = outcome->n_classes;
    status = cleval_cluster_max_u32(cluster, &n_classes);
    if (status == CLEVAL_OK) status = widen(outcome, n_classes);
    if (status == CLEVAL_OK && outcome->has_labels)
        status = sum_confusion(cluster, &outcome->confusion);
    if (status == CLEVAL_OK)
        status = cleval_cluster_sum_counts(cluster, outcome->predicted_counts, n_classes);
    if (status == CLEVAL_OK && n_counters)
        status = cleval_cluster_sum_counts(cluster, counters, n_counters);
    if (status == CLEVAL_OK) status = cleval_cluster_max_double(cluster, &outcome->read_s);
    outcome->n_samples = outcome->n_total;
    outcome->row_begin = 0;
    outcome->row_end = outcome->n_total;
    code = cleval_cluster_agree_exit(cluster, status == CLEVAL_OK ? CLI_EXIT_OK : cli_fail(status));
    if (code != CLI_EXIT_OK) return code;

    /* The parts of --save are complete on every rank once all are here. */
    if (run->final_save_path && !run->split_training) {
        status = cleval_cluster_barrier(cluster);
        if (status == CLEVAL_OK && cluster->rank == 0)
            status = merge_parts(run, run->final_save_path);
        code = cleval_cluster_agree_exit(cluster,
                                         status == CLEVAL_OK ? CLI_EXIT_OK : cli_fail(status));
    }
    return code;
}
