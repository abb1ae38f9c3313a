/* Helpers every command uses (see cli.h). */
#include "cli.h"
#include "stop.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleval/dataset.h"
#include "cleval/engine.h"
#include "cleval/html.h"

int cli_exit_code(cleval_status status)
{
    switch (status) {
    case CLEVAL_OK: return CLI_EXIT_OK;
    case CLEVAL_ERR_USAGE:
    case CLEVAL_ERR_INPUT:
    case CLEVAL_ERR_UNSUPPORTED:
    case CLEVAL_ERR_IO: return CLI_EXIT_BAD_INPUT;
    case CLEVAL_ERR_OPENCL: return CLI_EXIT_DEVICE;
    case CLEVAL_ERR_INTERRUPTED: return 128 + (cli_stop_signal() ? cli_stop_signal() : SIGINT);
    case CLEVAL_ERR_NOMEM: return CLI_EXIT_NO_MEMORY;
    case CLEVAL_ERR_INTERNAL: return CLI_EXIT_INTERNAL;
    }
    return CLI_EXIT_INTERNAL;
}

int cli_fail(cleval_status status)
{
    const char *message = cleval_last_error();
    if (!*message) message = cleval_status_str(status);
    if (status == CLEVAL_ERR_INTERRUPTED)
        fprintf(stderr, "cleval: %s: %s\n", cli_stop_signal_name(), message);
    else
        fprintf(stderr, "cleval: %s\n", message);
    return cli_exit_code(status);
}

int cli_parse_command(int argc, char **argv, const char *command, const char *usage,
                      const cli_option_id *allowed, size_t n_allowed, cli_args *args,
                      bool *exit_now)
{
    *exit_now = false;
    cleval_status status = cli_parse(argc, argv, 2, command, allowed, n_allowed, args);
    if (status != CLEVAL_OK) {
        *exit_now = true;
        return cli_fail(status);
    }
    if (args->present[OPT_HELP]) {
        fputs(usage, stdout);
        printf("\nOptions:\n");
        cli_print_options(allowed, n_allowed);
        cli_args_free(args);
        *exit_now = true;
        return CLI_EXIT_OK;
    }
    cleval_dataset_allow_outside_files(args->present[OPT_ALLOW_EXTERNAL_STORAGE]);
    return CLI_EXIT_OK;
}

static void log_to_stderr(cleval_log_level level, const char *message, void *user)
{
    (void)user;
    static const char *const prefixes[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "cleval: %s: %s\n", prefixes[level], message);
}

void cli_setup_logging(const cli_args *args)
{
    cleval_log_level level = args->present[OPT_VERBOSE] ? CLEVAL_LOG_INFO : CLEVAL_LOG_WARN;
    cleval_log_set(log_to_stderr, level, NULL);
}

cleval_status cli_open_device(const cli_args *args, cleval_device **dev)
{
    uint32_t index;
    cleval_status status = cleval_device_resolve(args->values[OPT_DEVICE], &index);
    if (status != CLEVAL_OK) return status;
    return cleval_device_open(index, dev);
}

const char *const cli_progress_modes[] = {"tty", "json", "none", NULL};

cleval_status cli_progress_check(const cli_args *args)
{
    int mode;
    uint64_t rows;
    double seconds;
    cleval_status status = cli_get_choice(args, OPT_PROGRESS, cli_progress_modes, 0, &mode);
    if (status == CLEVAL_OK)
        status = cli_get_count_or_duration(args, OPT_PROGRESS_EVERY, &rows, &seconds);
    return status;
}

void cli_progress_init(cli_progress *p, const cli_args *args, const char *device)
{
    int mode = 0;
    /* cli_progress_check() already refused invalid values; treat them as the defaults. */
    if (cli_get_choice(args, OPT_PROGRESS, cli_progress_modes, 0, &mode) != CLEVAL_OK) mode = 0;
    if (cli_get_count_or_duration(args, OPT_PROGRESS_EVERY, &p->every_rows, &p->every_seconds) !=
            CLEVAL_OK ||
        (p->every_rows == 0 && p->every_seconds == 0)) {
        p->every_rows = 0;
        p->every_seconds = 0.25;
    }
    p->mode = args->present[OPT_QUIET] ? CLI_PROGRESS_NONE
              : mode == 1              ? CLI_PROGRESS_JSON
              : mode == 2              ? CLI_PROGRESS_NONE
              : isatty(STDERR_FILENO)  ? CLI_PROGRESS_TTY
                                       : CLI_PROGRESS_NONE;
    p->start = cleval_seconds();
    p->last_print = 0;
    p->last_done = 0;
    snprintf(p->device, sizeof p->device, "%s", device ? device : "");
}

void cli_progress_update(uint64_t done, uint64_t total, void *user)
{
    cli_progress *p = user;
    if (p->mode == CLI_PROGRESS_NONE) return;
    double now = cleval_seconds();
    bool due = p->every_rows ? done - p->last_done >= p->every_rows
                             : now - p->last_print >= p->every_seconds;
    if (done < total && !due) return;
    p->last_print = now;
    p->last_done = done;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    if (p->mode == CLI_PROGRESS_JSON)
        fprintf(stderr,
                "{\"done\": %llu, \"total\": %llu, \"samples_per_s\": %.1f, \"eta_s\": %.1f, "
                "\"device\": \"%s\"}\n",
                (unsigned long long)done, (unsigned long long)total, rate, eta, p->device);
    else
        fprintf(stderr, "\r%llu/%llu samples (%.1f%%), %.0f samples/s, ETA %.0f s, %s\033[K",
                (unsigned long long)done, (unsigned long long)total,
                total ? 100.0 * (double)done / (double)total : 100.0, rate, eta, p->device);
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->mode == CLI_PROGRESS_TTY) fputs("\r\033[K", stderr);
}

/* The human report of a run without labels: how often each class was predicted. */
static void print_predicted_counts(const cleval_predict_outcome *outcome,
                                   const cleval_run_timing *timing)
{
    const cleval_class_names *names = &outcome->class_names;
    printf("No labels in the test set: predictions only.\n\n%12s %10s\n", "class", "predicted");
    for (uint32_t k = 0; k < outcome->n_classes; k++) {
        if (names->names && k < names->count)
            printf("%12s %10llu\n", names->names[k],
                   (unsigned long long)outcome->predicted_counts[k]);
        else
            printf("%12u %10llu\n", k, (unsigned long long)outcome->predicted_counts[k]);
    }
    fputc('\n', stdout);
    cleval_report_throughput(stdout, timing);
}

cleval_status cli_print_report(const cleval_predict_outcome *outcome,
                               const cleval_run_timing *timing)
{
    if (!outcome->has_labels) {
        print_predicted_counts(outcome, timing);
        return CLEVAL_OK;
    }
    cleval_metrics m;
    cleval_status status = cleval_metrics_compute(&outcome->confusion, &m);
    if (status != CLEVAL_OK) return status;
    cleval_report_classification(stdout, &m, &outcome->class_names);
    fputc('\n', stdout);
    cleval_report_agreement(stdout, &m);
    fputc('\n', stdout);
    if (outcome->has_scores) {
        cleval_score_metrics scores;
        cleval_score_metrics_compute(&outcome->scores, outcome->top_k, &scores);
        cleval_report_scores_text(stdout, &scores);
        if (outcome->has_auc) cleval_report_auc_text(stdout, &outcome->auc);
        fputc('\n', stdout);
    }
    cleval_report_confusion(stdout, &outcome->confusion, &outcome->class_names);
    fputc('\n', stdout);
    if (outcome->errors.n) {
        cleval_report_errors_text(stdout, &outcome->errors, &outcome->class_names);
        fputc('\n', stdout);
    }
    cleval_report_throughput(stdout, timing);
    cleval_metrics_free(&m);
    return CLEVAL_OK;
}

bool cli_json_to_stdout(const cli_args *args)
{
    return args->present[OPT_JSON] && strcmp(args->values[OPT_JSON], "-") == 0;
}

/* cJSON's allocations, watched: the reports are built with cJSON_Add* calls whose results are
 * not checked one by one (a failed one only leaves its member out), so a report built while
 * memory ran out would otherwise be written incomplete, with exit 0. */
static atomic_bool json_out_of_memory;

static void *watched_json_malloc(size_t size)
{
    void *p = malloc(size);
    if (!p) atomic_store(&json_out_of_memory, true);
    return p;
}

void cli_watch_json_memory(void)
{
    cJSON_Hooks hooks = {.malloc_fn = watched_json_malloc, .free_fn = free};
    cJSON_InitHooks(&hooks);
}

cleval_status cli_write_json(cJSON *json, const char *path)
{
    if (!json || atomic_load(&json_out_of_memory))
        return cleval_fail(CLEVAL_ERR_NOMEM, "--json %s: out of memory building the report", path);
    return cleval_report_write_json(json, path);
}

cleval_status cli_parse_metric_limits(const cli_args *args, cleval_metric_limits *limits)
{
    limits->use_min_accuracy = args->present[OPT_MIN_ACCURACY];
    limits->use_min_class_recall = args->present[OPT_MIN_CLASS_RECALL];
    cleval_status status = cli_get_number(args, OPT_MIN_ACCURACY, 0, 0, 1, &limits->min_accuracy);
    if (status == CLEVAL_OK)
        status = cli_get_number(args, OPT_MIN_CLASS_RECALL, 0, 0, 1, &limits->min_class_recall);
    return status;
}

cleval_status cli_write_junit(const cli_args *args, const char *command,
                              const cleval_gate *gates, uint32_t n,
                              const cleval_class_names *names)
{
    if (!args->present[OPT_JUNIT]) return CLEVAL_OK;
    char suite[64];
    snprintf(suite, sizeof suite, "cleval %s", command);
    return cleval_gates_write_junit(args->values[OPT_JUNIT], suite, gates, n, names);
}

/* A run whose report fails leaves no output: the prediction file, which the engine committed
 * before the report was made, and the files of the report written before the failure. */
typedef struct written_files {
    const char *paths[6];
    int n;
} written_files;

static void discard_outputs(const cli_args *args, const written_files *written)
{
    if (args->present[OPT_SAVE]) remove(args->values[OPT_SAVE]);
    for (int i = 0; i < written->n; i++)
        remove(written->paths[i]);
}

/* The gates of a run with labels: the metrics (into *m) and each gate of `limits`. */
static cleval_status check_gates(const cli_args *args, const cleval_predict_outcome *outcome,
                                 cleval_metrics *m, cleval_gate *gates, uint32_t *n_gates)
{
    cleval_metric_limits limits;
    *n_gates = 0;
    cleval_status status = cli_parse_metric_limits(args, &limits);
    if (status != CLEVAL_OK || !outcome->has_labels) {
        bool needs_labels = limits.use_min_accuracy || limits.use_min_class_recall ||
                            args->present[OPT_SUMMARY_MD];
        if (status == CLEVAL_OK && needs_labels)
            status = cleval_fail(CLEVAL_ERR_USAGE, "--min-accuracy, --min-class-recall and "
                                                   "--summary-md need labels (y) in the test "
                                                   "set");
        return status;
    }
    status = cleval_metrics_compute(&outcome->confusion, m);
    if (status == CLEVAL_OK) cleval_metric_gates(m, &limits, gates, n_gates);
    return status;
}

int cli_emit_predictions(const cli_args *args, const char *command,
                         const cleval_predict_outcome *outcome, const cleval_run_timing *timing,
                         cJSON *extra)
{
    cleval_metrics m = {0};
    cleval_gate gates[CLEVAL_METRIC_GATES];
    uint32_t n_gates;
    written_files written = {0};
    cleval_status status = check_gates(args, outcome, &m, gates, &n_gates);
    const cleval_class_names *names = &outcome->class_names;
    cJSON *report = NULL; /* one tree for --json and --html */
    if (status == CLEVAL_OK && (args->present[OPT_JSON] || args->present[OPT_HTML]))
        status = cleval_predict_report_json(outcome, timing, extra, gates, n_gates, &report);
    if (status == CLEVAL_OK && args->present[OPT_JSON]) {
        status = cli_write_json(report, args->values[OPT_JSON]);
        if (status == CLEVAL_OK && !cli_json_to_stdout(args))
            written.paths[written.n++] = args->values[OPT_JSON];
    }
    if (status == CLEVAL_OK && args->present[OPT_HTML]) {
        status = cli_write_html(args, command, NULL, report);
        if (status == CLEVAL_OK) written.paths[written.n++] = args->values[OPT_HTML];
    }
    cJSON_Delete(report);
    if (status == CLEVAL_OK && args->present[OPT_JUNIT]) {
        status = cli_write_junit(args, command, gates, n_gates, names);
        if (status == CLEVAL_OK) written.paths[written.n++] = args->values[OPT_JUNIT];
    }
    if (status == CLEVAL_OK && args->present[OPT_SUMMARY_MD]) {
        char title[64];
        snprintf(title, sizeof title, "cleval %s", command);
        status = cleval_gates_write_summary(args->values[OPT_SUMMARY_MD], title, &m, names, gates,
                                            n_gates);
        if (status == CLEVAL_OK) written.paths[written.n++] = args->values[OPT_SUMMARY_MD];
    }
    /* The human report goes to stdout unless the JSON already does. */
    if (status == CLEVAL_OK && !cli_json_to_stdout(args)) {
        status = cli_print_report(outcome, timing);
        if (status == CLEVAL_OK && n_gates > 0) {
            fputc('\n', stdout);
            cleval_gates_report(stdout, gates, n_gates, names);
        }
    }
    cleval_metrics_free(&m);
    if (status != CLEVAL_OK) {
        discard_outputs(args, &written);
        return cli_fail(status);
    }
    fflush(stdout);
    char line[512];
    for (uint32_t i = 0; i < n_gates; i++)
        if (!gates[i].passed) {
            cleval_gate_describe(&gates[i], names, line, sizeof line);
            fprintf(stderr, "cleval: gate failed: %s\n", line);
        }
    return cleval_gates_passed(gates, n_gates) ? CLI_EXIT_OK : CLI_EXIT_GATE_FAILED;
}

/* A flag of cli_check_outputs and how messages name it. */
typedef struct named_flag {
    cli_option_id id;
    const char *name;
} named_flag;

enum { N_INPUT_FLAGS = 3, N_OUTPUT_FLAGS = 6 };
static const named_flag input_flags[N_INPUT_FLAGS] = {
    {OPT_MODEL, "--model"}, {OPT_DATA, "--data"}, {OPT_TRAIN, "--train"}};

/* Appends the path of each flag present in args (not --json -, which is stdout). */
static void add_flags(const cli_args *args, const named_flag *flags, size_t n_flags,
                      cleval_named_path *paths, size_t *n)
{
    for (size_t i = 0; i < n_flags; i++)
        if (args->present[flags[i].id] && !(flags[i].id == OPT_JSON && cli_json_to_stdout(args)))
            paths[(*n)++] = (cleval_named_path){flags[i].name, args->values[flags[i].id]};
}

cleval_status cli_check_outputs(const cli_args *args, const char *const *positional_names,
                                const cleval_named_path *more, size_t n_more)
{
    static const named_flag output_flags[N_OUTPUT_FLAGS] = {
        {OPT_JSON, "--json"},         {OPT_SAVE, "--save"},
        {OPT_CHECKPOINT, "--checkpoint"}, {OPT_JUNIT, "--junit"},
        {OPT_SUMMARY_MD, "--summary-md"}, {OPT_HTML, "--html"}};
    size_t n_inputs = 0, n_outputs = 0, n_names = 0;
    while (positional_names && positional_names[n_names])
        n_names++;
    cleval_named_path *inputs = calloc(N_INPUT_FLAGS + (size_t)args->n_positional, sizeof *inputs);
    cleval_named_path *outputs = calloc(N_OUTPUT_FLAGS + n_more, sizeof *outputs);
    cleval_status status = CLEVAL_OK;
    if (!inputs || !outputs)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory comparing the output files");
    if (status == CLEVAL_OK) {
        add_flags(args, input_flags, N_INPUT_FLAGS, inputs, &n_inputs);
        for (size_t i = 0; n_names && i < (size_t)args->n_positional; i++)
            inputs[n_inputs++] = (cleval_named_path){
                positional_names[i < n_names ? i : n_names - 1], args->positional[i]};
        add_flags(args, output_flags, N_OUTPUT_FLAGS, outputs, &n_outputs);
        for (size_t i = 0; i < n_more; i++)
            outputs[n_outputs++] = more[i];
        status = cleval_output_check(inputs, n_inputs, outputs, n_outputs);
    }
    free(inputs);
    free(outputs);
    return status;
}

cleval_status cli_write_html(const cli_args *args, const char *command,
                             const char *const *positional_names, const cJSON *report)
{
    if (!args->present[OPT_HTML]) return CLEVAL_OK;
    if (!report || atomic_load(&json_out_of_memory))
        return cleval_fail(CLEVAL_ERR_NOMEM, "--html %s: out of memory building the report",
                           args->values[OPT_HTML]);
    enum { MAX_POSITIONAL = 2 };
    cleval_named_path inputs[N_INPUT_FLAGS + MAX_POSITIONAL];
    size_t n = 0;
    add_flags(args, input_flags, N_INPUT_FLAGS, inputs, &n);
    for (int i = 0; positional_names && positional_names[i] && i < MAX_POSITIONAL &&
                    i < args->n_positional;
         i++)
        inputs[n++] = (cleval_named_path){positional_names[i], args->positional[i]};
    cleval_html_page page = {.command = command, .inputs = inputs, .n_inputs = n};
    return cleval_html_write(report, &page, args->values[OPT_HTML]);
}
