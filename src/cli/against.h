/* --against for `eval` and `knn`: the same job on a second device (or, for eval, in another
 * precision), both runs saved, and `cleval compare`'s verdict between them. */
#ifndef CLEVAL_CLI_AGAINST_H
#define CLEVAL_CLI_AGAINST_H

#include "cleval/compare.h"
#include "cli.h"

typedef struct cli_against {
    bool active;
    const char *spec;          /* as given */
    const char *precision;     /* eval: "fp32", "fp16" or "int8" when SPEC names one */
    cleval_device **devices;   /* the second run's devices (NULL for a precision) */
    uint32_t n_devices;
    char device_names[1024];
    char path_a[CLEVAL_PATH_TEXT_SIZE]; /* the two prediction files */
    char path_b[CLEVAL_PATH_TEXT_SIZE];
    char temp_dir[4096]; /* without --save: the private folder holding both, removed at the end */
    cleval_compare_limits limits; /* the verdict's gates, read before either run */
    bool allow_nonfinite;         /* --allow-nonfinite: the verdict accepts them too */
} cli_against;

/* Reads --against: a precision (when `precisions` is not NULL and lists it) or a device spec,
 * opened here. A: the --save path, B: "<save>.against.h5"; without --save both live in a
 * private temporary folder (mkdtemp under $TMPDIR or /tmp). */
cleval_status cli_against_begin(const cli_args *args, const char *const *precisions,
                                cli_against *against);

/* The second run's prediction file next to --save `save`: "<save>.against.h5". */
void cli_against_second_path(const char *save, char *out, size_t size);

/* Closes the devices and removes the temporary files. */
void cli_against_end(cli_against *against);

/* Reports both runs and the verdict between them: --json gets the first run's report with an
 * "against" member (the second run's device or precision, its report, and `compare`'s JSON);
 * the human report shows the first run, the second run's summary and the verdict. Takes the
 * `extra` members. Returns the exit code: 1 when a gate failed. */
int cli_against_finish(const cli_args *args, const cli_against *against,
                       const cleval_predict_outcome *a, const cleval_run_timing *timing_a,
                       cJSON *extra_a, const cleval_predict_outcome *b,
                       const cleval_run_timing *timing_b, cJSON *extra_b);

#endif
