/* The command-line side of a job's run options (see run.c). */
#ifndef CLEVAL_CLI_RUN_H
#define CLEVAL_CLI_RUN_H

#include "cleval/engine.h"
#include "cli.h"

typedef struct cli_run {
    const cleval_cluster *cluster; /* the MPI job */
    bool split_training;           /* --shard-train: ranks split the training set, not the test
                                    * set, and rank 0 alone writes the results */
    const char *final_save_path;   /* --save as given */
    char save_path[CLEVAL_PATH_TEXT_SIZE]; /* --save, or this rank's part of it under mpirun */
    char checkpoint_path[CLEVAL_PATH_TEXT_SIZE]; /* --checkpoint, or this rank's under mpirun */
    cleval_device **devices;
    uint32_t n_devices;
    char device_names[1024]; /* "name0, name1" */
    char fingerprint[8192];
    cleval_run_options options;
    cli_progress progress;
} cli_run;

/* Opens the devices and fills the run options from the arguments; `inputs` (NULL-terminated)
 * are the files whose identity enters the job fingerprint. Undo with cli_run_end(). */
cleval_status cli_run_begin(const cli_args *args, const char *command,
                            const char *const *inputs, cli_run *run);
void cli_run_end(cli_run *run);

/* Adds a fact decided after cli_run_begin (fp16's concrete arithmetic) to the job fingerprint,
 * before the run uses it; a usage error when it does not fit. */
cleval_status cli_run_add_fact(cli_run *run, const char *name, const char *value);

/* After the job: prints this process's error (if any), makes every rank agree on the exit
 * code, and under mpirun combines the ranks' results on rank 0 (exact integer reductions of
 * the counts and `counters`; the parts of --save merged in file order). Returns the exit code
 * every rank must return. */
int cli_run_settle(cli_run *run, cleval_status status, cleval_predict_outcome *outcome,
                   uint64_t *counters, uint32_t n_counters);

/* Whether this process writes the report (rank 0, or the only process). */
bool cli_run_reports(const cli_run *run);

/* Adds "ranks": R to a report under mpirun. */
void cli_run_describe(const cli_run *run, cJSON *extra);

#endif
