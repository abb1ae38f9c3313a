/* Command-line options: one table of every flag, a parser that accepts only the flags a
 * command lists, and typed getters that name the flag in their error messages. */
#ifndef CLEVAL_CLI_OPTIONS_H
#define CLEVAL_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/auc.h"
#include "cleval/status.h"

typedef enum cli_option_id {
    OPT_HELP,
    OPT_VERSION,
    OPT_JSON,
    OPT_SAVE,
    OPT_DATA,
    OPT_X_KEY,
    OPT_Y_KEY,
    OPT_PRED_KEY,
    OPT_BATCH,
    OPT_DEVICE,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_TRAIN,
    OPT_K,
    OPT_WEIGHTS,
    OPT_METRIC,
    OPT_SCORES_KEY,
    OPT_MAX_FLIP_RATE,
    OPT_MAX_ACCURACY_DROP,
    OPT_ALPHA,
    OPT_MAX_SCORE_DIFF,
    OPT_PSI_WARN,
    OPT_PSI_ALERT,
    OPT_JS_ALERT,
    OPT_MODEL,
    OPT_PRECISION,
    OPT_PROFILE,
    OPT_AGAINST,
    OPT_SHARD,
    OPT_SHARD_TRAIN,
    OPT_CHECKPOINT,
    OPT_CHECKPOINT_EVERY,
    OPT_RESUME,
    OPT_PROGRESS,
    OPT_CALIBRATION,
    OPT_PRUNE,
    OPT_FP16_ARITHMETIC,
    OPT_ALLOW_EXTERNAL_STORAGE,
    OPT_ALLOW_NONFINITE,
    OPT_MAX_CLASSES,
    OPT_INPUT_SCALE,
    OPT_INPUT_MEAN,
    OPT_INPUT_STD,
    OPT_INPUT_LAYOUT,
    OPT_MIN_ACCURACY,
    OPT_MIN_CLASS_RECALL,
    OPT_JUNIT,
    OPT_SUMMARY_MD,
    OPT_TOP_K,
    OPT_HTML,
    OPT_ERRORS,
    OPT_AUC,
    OPT_PROGRESS_EVERY,
    OPT_BUDGET,
    OPT_COUNT
} cli_option_id;

typedef struct cli_option {
    const char *long_name; /* without the leading "--" */
    char short_name;       /* 0 when none */
    const char *value_name; /* NULL for a switch */
    const char *help;
} cli_option;

/* The description of every option, indexed by cli_option_id. */
extern const cli_option cli_options[OPT_COUNT];

typedef struct cli_args {
    const char *values[OPT_COUNT]; /* the last value given, or NULL */
    bool present[OPT_COUNT];
    const char **positional;
    int n_positional;
} cli_args;

/* Parses argv[first..argc) accepting only `allowed` options; "--name=value", "--name value",
 * "-k value" and "--" are understood. Fails with CLEVAL_ERR_USAGE naming the flag. Free with
 * cli_args_free. */
cleval_status cli_parse(int argc, char **argv, int first, const char *command,
                        const cli_option_id *allowed, size_t n_allowed, cli_args *out);
void cli_args_free(cli_args *args);

/* The value of an option as a positive integer (fallback when absent). */
cleval_status cli_get_positive(const cli_args *args, cli_option_id id, uint64_t fallback,
                               uint64_t *out);

/* The value of an option that is a count (a plain integer: *count, *seconds 0) or a duration
 * (an integer with ms, s, m or h: *seconds, *count 0), at least 1 either way; both 0 when
 * absent. */
cleval_status cli_get_count_or_duration(const cli_args *args, cli_option_id id, uint64_t *count,
                                        double *seconds);

/* The value of an option that must be one of `choices` (NULL-terminated): its index, or
 * `fallback` when absent. */
cleval_status cli_get_choice(const cli_args *args, cli_option_id id, const char *const *choices,
                             int fallback, int *out);

/* The value of an option as a finite number in [low, high] (fallback when absent). */
cleval_status cli_get_number(const cli_args *args, cli_option_id id, double fallback, double low,
                             double high, double *out);

/* The value of an option that is a comma-separated list of finite numbers ("0.485,0.456"):
 * *values is heap memory of *count entries (free()), NULL and 0 when absent. */
cleval_status cli_get_number_list(const cli_args *args, cli_option_id id, float **values,
                                  uint32_t *count);

/* --max-classes as a class count in [1, 2^31] (CLEVAL_DEFAULT_MAX_CLASSES when absent). */
cleval_status cli_get_max_classes(const cli_args *args, uint32_t *out);

/* --top-k K (K >= 1; 0 when absent). A K at or above the class count is kept: every sample
 * then counts, as in scikit-learn. */
cleval_status cli_get_top_k(const cli_args *args, uint32_t *out);

/* --errors N (1 <= N <= CLEVAL_ERRORS_MAX; 0 when absent). Refused with --shard-train, whose
 * ranks never hold a whole run's lists. */
cleval_status cli_get_errors(const cli_args *args, uint32_t *out);
/* --auc auto|on|off (CLEVAL_AUC_AUTO when absent). */
cleval_status cli_get_auc(const cli_args *args, cleval_auc_mode *out);

/* Prints the option lines of `allowed` for --help. */
void cli_print_options(const cli_option_id *allowed, size_t n_allowed);

#endif
