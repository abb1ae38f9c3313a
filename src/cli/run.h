/* The command-line side of a job's run options (see run.c). */
#ifndef CLEVAL_CLI_RUN_H
#define CLEVAL_CLI_RUN_H

#include "cleval/engine.h"
#include "cli.h"

typedef struct cli_run {
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

#endif
