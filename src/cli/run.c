/* What `eval`, `knn` and `metrics` share on the command line: the devices (--device, a list
 * or "all"), the slice (--shard I/N), checkpoints (--checkpoint, --checkpoint-every,
 * --resume), progress (--progress, --quiet), SIGINT, and the job fingerprint that ties
 * checkpoints and part files to their job. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

/* The first SIGINT asks the run to stop after its next checkpoint; a second one kills. */
static void on_interrupt(int signal_number)
{
    stop_requested = 1;
    struct sigaction fallback = {.sa_handler = SIG_DFL};
    sigaction(signal_number, &fallback, NULL);
}

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

/* Adds "name=value;" to the fingerprint. */
static void append(char *out, size_t size, const char *name, const char *value)
{
    size_t used = strlen(out);
    if (used < size) snprintf(out + used, size - used, "%s=%s;", name, value ? value : "");
}

/* Inputs are identified by path, size and modification time: a changed file is another job. */
static void append_file(char *out, size_t size, const char *path)
{
    struct stat st;
    char value[4200];
    if (stat(path, &st) == 0)
        snprintf(value, sizeof value, "%s(%lld bytes, mtime %lld)", path, (long long)st.st_size,
                 (long long)st.st_mtime);
    else
        snprintf(value, sizeof value, "%s", path);
    append(out, size, "input", value);
}

/* Options that cannot change a result do not enter the fingerprint. */
static bool affects_results(cli_option_id id)
{
    switch (id) {
    case OPT_HELP: case OPT_VERSION: case OPT_JSON: case OPT_SAVE: case OPT_BATCH:
    case OPT_DEVICE: case OPT_QUIET: case OPT_VERBOSE: case OPT_CHECKPOINT:
    case OPT_CHECKPOINT_EVERY: case OPT_RESUME: case OPT_PROGRESS: case OPT_SHARD: return false;
    default: return true;
    }
}

static void build_fingerprint(const cli_args *args, const char *command,
                              const char *const *inputs, uint32_t shard_count, char *out,
                              size_t size)
{
    out[0] = '\0';
    append(out, size, "command", command);
    for (const char *const *p = inputs; *p; p++)
        append_file(out, size, *p);
    for (int id = 0; id < OPT_COUNT; id++)
        if (args->present[id] && affects_results((cli_option_id)id))
            append(out, size, cli_options[id].long_name, args->values[id] ? args->values[id] : "on");
    char shards[32];
    snprintf(shards, sizeof shards, "%u", shard_count ? shard_count : 1);
    append(out, size, "shards", shards);
}

cleval_status cli_run_begin(const cli_args *args, const char *command,
                            const char *const *inputs, cli_run *run)
{
    memset(run, 0, sizeof *run);
    cleval_run_options *o = &run->options;
    cleval_status status = CLEVAL_OK;
    static const char *const progress_modes[] = {"tty", "json", "none", NULL};
    int progress_mode; /* checked here; cli_progress_init() applies it */
    if (args->present[OPT_SHARD])
        status = parse_shard(args->values[OPT_SHARD], &o->shard_index, &o->shard_count);
    if (status == CLEVAL_OK)
        status = cli_get_choice(args, OPT_PROGRESS, progress_modes, 0, &progress_mode);
    if (status == CLEVAL_OK)
        status = cli_get_positive(args, OPT_CHECKPOINT_EVERY, 0, &o->checkpoint_rows);
    if (status == CLEVAL_OK && o->shard_count > 1 && !args->present[OPT_SAVE])
        status = cleval_fail(CLEVAL_ERR_USAGE, "--shard needs --save PART.h5 for the part file");
    if (status == CLEVAL_OK && args->present[OPT_RESUME] && !args->present[OPT_CHECKPOINT])
        status = cleval_fail(CLEVAL_ERR_USAGE, "--resume needs --checkpoint PATH");
    if (status == CLEVAL_OK && args->present[OPT_RESUME] &&
        access(args->values[OPT_CHECKPOINT], F_OK) != 0)
        status = cleval_fail(CLEVAL_ERR_INPUT, "--resume: no checkpoint at %s",
                             args->values[OPT_CHECKPOINT]);
    if (status != CLEVAL_OK) return status;

    uint32_t *indices = NULL;
    if ((status = cleval_device_resolve_list(args->values[OPT_DEVICE], &indices,
                                             &run->n_devices)))
        return status;
    run->devices = calloc(run->n_devices, sizeof *run->devices);
    if (!run->devices) status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening devices");
    for (uint32_t d = 0; status == CLEVAL_OK && d < run->n_devices; d++) {
        status = cleval_device_open(indices[d], &run->devices[d]);
        if (status == CLEVAL_OK)
            snprintf(run->device_names + strlen(run->device_names),
                     sizeof run->device_names - strlen(run->device_names), "%s%s", d ? ", " : "",
                     cleval_device_get_info(run->devices[d])->name);
    }
    free(indices);
    if (status != CLEVAL_OK) {
        cli_run_end(run);
        return status;
    }

    build_fingerprint(args, command, inputs, o->shard_count, run->fingerprint,
                      sizeof run->fingerprint);
    o->devices = run->devices;
    o->n_devices = run->n_devices;
    o->checkpoint_path = args->values[OPT_CHECKPOINT];
    o->resume = args->present[OPT_RESUME];
    o->fingerprint = run->fingerprint;
    o->stop = &stop_requested;
    cli_progress_init(&run->progress, args, run->device_names);
    if (run->progress.mode != CLI_PROGRESS_NONE) {
        o->progress = cli_progress_update;
        o->progress_user = &run->progress;
    }
    struct sigaction action = {.sa_handler = on_interrupt};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    return CLEVAL_OK;
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
