/* What the command implementations share: the command table entry, device opening from
 * --device, logging, progress, report output and the mapping from status to exit code. */
#ifndef CLEVAL_CLI_H
#define CLEVAL_CLI_H

#include "cleval/cluster.h"
#include "cleval/compare.h"
#include "cleval/device.h"
#include "cleval/engine.h"
#include "cleval/gates.h"
#include "cleval/metrics.h"
#include "cleval/output.h"
#include "cleval/report.h"
#include "options.h"

/* Exit codes: 4 is out of host or device memory (the run may succeed with a smaller --batch or
 * on another machine), 5 a bug in cleval; a run stopped by a signal exits 128 + its number
 * (cli_exit_code). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_GATE_FAILED = 1,
    CLI_EXIT_BAD_INPUT = 2,
    CLI_EXIT_DEVICE = 3,
    CLI_EXIT_NO_MEMORY = 4,
    CLI_EXIT_INTERNAL = 5,
};

typedef struct cli_command {
    const char *name;
    const char *summary; /* one line for `cleval --help` */
    int (*run)(int argc, char **argv);
} cli_command;

int cli_devices(int argc, char **argv);
int cli_metrics(int argc, char **argv);
int cli_knn(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_merge(int argc, char **argv);

/* The human report's "Model:" line of an eval run's precision mode. */
void cli_eval_mode_line(const cleval_eval_mode *mode, char *out, size_t size);

int cli_compare(int argc, char **argv);
int cli_drift(int argc, char **argv);
int cli_tune(int argc, char **argv);

/* The MPI job this process belongs to (a single process outside mpirun). */
const cleval_cluster *cli_cluster(void);

/* Parses a command's arguments; on --help prints `usage` + options and sets *exit_now. */
int cli_parse_command(int argc, char **argv, const char *command, const char *usage,
                      const cli_option_id *allowed, size_t n_allowed, cli_args *args,
                      bool *exit_now);

/* Installs the stderr log hook (errors always; info with --verbose). */
void cli_setup_logging(const cli_args *args);

/* Resolves --device (or CLEVAL_DEVICE) and opens it. */
cleval_status cli_open_device(const cli_args *args, cleval_device **dev);

/* Watches cJSON's allocations from now on (call once, first thing); cli_write_json() then
 * refuses a report built while one failed (exit 4) instead of writing it incomplete. */
void cli_watch_json_memory(void);
cleval_status cli_write_json(cJSON *json, const char *path);

/* Prints "cleval: <message>" for `status` (a stop: "cleval: SIGTERM: <message>") and returns
 * the exit code for it. */
int cli_fail(cleval_status status);
int cli_exit_code(cleval_status status);

/* Progress on stderr (--progress tty|json|none): a rewritten line when stderr is a terminal
 * (the default), one JSON object per line, or nothing (also with --quiet). */
typedef enum cli_progress_mode {
    CLI_PROGRESS_NONE,
    CLI_PROGRESS_TTY,
    CLI_PROGRESS_JSON,
} cli_progress_mode;

typedef struct cli_progress {
    cli_progress_mode mode;
    uint64_t every_rows;  /* --progress-every N: a line after N more samples (0: by time) */
    double every_seconds; /* --progress-every TIME, or the default */
    double start;
    double last_print;
    uint64_t last_done; /* samples done at the last line */
    char device[1024];
} cli_progress;

/* --progress's accepted values, "tty", "json", "none", NULL-terminated. */
extern const char *const cli_progress_modes[];
/* Checks --progress and --progress-every (a command calls it before cli_progress_init()). */
cleval_status cli_progress_check(const cli_args *args);
void cli_progress_init(cli_progress *p, const cli_args *args, const char *device);
void cli_progress_update(uint64_t done, uint64_t total, void *user);
void cli_progress_finish(cli_progress *p);

/* --min-accuracy and --min-class-recall, each a number in [0, 1]. */
cleval_status cli_parse_metric_limits(const cli_args *args, cleval_metric_limits *limits);

/* Prints the report of a model run: metrics when the test set had labels, else the predicted
 * class counts. `extra` (may be NULL) holds JSON members added to the report; `command` names
 * the JUnit suite and the summary's title ("cleval metrics"). Checks the gates
 * (--min-accuracy, --min-class-recall: the JSON's "gates", the human report's lines, one line
 * on stderr for each that failed) and writes --junit and --summary-md. Returns the exit code:
 * 1 when a gate failed. */
int cli_emit_predictions(const cli_args *args, const char *command,
                         const cleval_predict_outcome *outcome, const cleval_run_timing *timing,
                         cJSON *extra);

/* --junit: writes the JUnit file of `gates` when the flag is given. */
cleval_status cli_write_junit(const cli_args *args, const char *command,
                              const cleval_gate *gates, uint32_t n,
                              const cleval_class_names *names);

/* --html: writes the HTML page of `report` when the flag is given; the inputs it lists are
 * --model, --data, --train and the positional files, named positional_names[i] (up to two;
 * NULL-terminated, or NULL). */
cleval_status cli_write_html(const cli_args *args, const char *command,
                             const char *const *positional_names, const cJSON *report);

/* The human report of a model run on stdout. */
cleval_status cli_print_report(const cleval_predict_outcome *outcome,
                               const cleval_run_timing *timing);

/* The gates of --max-flip-rate, --max-accuracy-drop, --alpha and --max-score-diff (compare,
 * --against). */
cleval_status cli_parse_compare_limits(const cli_args *args, cleval_compare_limits *limits);

/* Refuses, before any work, an output that is one of the command's inputs or another output
 * (see cleval_output_check). Inputs: --model, --data, --train and the positional files, the
 * i-th named positional_names[i] (the last name for any further one; NULL-terminated, or
 * NULL when the command takes none).
 * Outputs: --json (unless -), --save, --checkpoint and the `more` files the command derives
 * from them. */
cleval_status cli_check_outputs(const cli_args *args, const char *const *positional_names,
                                const cleval_named_path *more, size_t n_more);

/* --json - : the JSON takes stdout, so the human report stays quiet. */
bool cli_json_to_stdout(const cli_args *args);

#endif
