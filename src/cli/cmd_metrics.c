/* `cleval metrics`: metrics from saved labels and predictions, no model. */
#include "cli.h"
#include "run.h"

#include <stdio.h>

#include "cleval/engine.h"

static const char usage[] =
    "Usage: cleval metrics --data PRED.h5 [options]\n"
    "\n"
    "Computes accuracy, per-class precision/recall/F1/support, their macro, weighted and micro\n"
    "averages, balanced accuracy, MCC, Cohen's kappa (unweighted, linear, quadratic) and the\n"
    "confusion matrix from the integer datasets y and pred of PRED.h5 (any\n"
    "integer type, labels 0..C-1 with C = max(label) + 1 over both). The confusion matrix is\n"
    "reduced on the OpenCL device(s), streaming the file in batches. Prints scikit-learn's\n"
    "classification_report layout, or the JSON report with --json. --save writes y, pred and\n"
    "the confusion counts; with --shard I/N it writes the part file `cleval merge` combines.\n"
    "Gates --min-accuracy and --min-class-recall exit 1 when one fails, after writing the\n"
    "reports; --junit and --summary-md write files for a CI job.\n"
    "When PRED.h5 also holds float scores [N, C] (dataset scores, or --scores-key), it adds\n"
    "log loss, Brier score, expected calibration error (15 bins) and with --top-k K the top-K\n"
    "accuracy, reduced on the device (the scores as probabilities when every row is\n"
    "non-negative and sums to 1 within 1e-4, else their softmax; not for --shard), and ROC\n"
    "AUC and average precision one-vs-rest (--auc: auto up to 100 classes, on, off).\n"
    "--errors N adds the error analysis: the first N rows of each most confused pair and, with\n"
    "scores, the N most confident wrong and N least confident right predictions.\n";

int cli_metrics(int argc, char **argv)
{
    static const cli_option_id allowed[] = {
        OPT_HELP,  OPT_DATA,   OPT_Y_KEY,      OPT_PRED_KEY,         OPT_JSON,
        OPT_SAVE,  OPT_BATCH,  OPT_DEVICE,     OPT_SHARD,            OPT_CHECKPOINT,
        OPT_CHECKPOINT_EVERY,  OPT_RESUME,     OPT_PROGRESS,         OPT_QUIET,
        OPT_VERBOSE,           OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_MAX_CLASSES,       OPT_MIN_ACCURACY, OPT_MIN_CLASS_RECALL, OPT_JUNIT,
        OPT_SUMMARY_MD, OPT_SCORES_KEY, OPT_TOP_K, OPT_HTML,
        OPT_ERRORS, OPT_AUC,
        OPT_PROGRESS_EVERY};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "metrics", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);

    double start = cleval_seconds();
    cleval_status status = CLEVAL_OK;
    cli_run run = {0};
    cleval_predict_outcome outcome = {0};
    uint64_t batch = 0;
    if (args.n_positional > 0)
        status = cleval_fail(CLEVAL_ERR_USAGE, "metrics: unexpected argument '%s'",
                             args.positional[0]);
    else if (!args.present[OPT_DATA])
        status = cleval_fail(CLEVAL_ERR_USAGE, "metrics: --data PRED.h5 is required");
    else
        status = cli_get_positive(&args, OPT_BATCH, 0, &batch);
    uint32_t top_k = 0;
    if (status == CLEVAL_OK) status = cli_get_top_k(&args, &top_k);
    uint32_t errors = 0;
    if (status == CLEVAL_OK) status = cli_get_errors(&args, &errors);
    cleval_auc_mode auc = CLEVAL_AUC_AUTO;
    if (status == CLEVAL_OK) status = cli_get_auc(&args, &auc);
    const char *inputs[] = {args.values[OPT_DATA], NULL};
    if (status == CLEVAL_OK) status = cli_run_begin(&args, "metrics", inputs, &run);

    if (status == CLEVAL_OK) {
        cleval_metrics_job job = {
            .data_path = args.values[OPT_DATA],
            .y_key = args.values[OPT_Y_KEY],
            .pred_key = args.values[OPT_PRED_KEY],
            .batch = batch,
            .save_path = run.save_path[0] ? run.save_path : NULL,
            .scores_key = args.values[OPT_SCORES_KEY],
            .top_k = top_k,
            .errors = errors,
            .auc = auc,
            .run = run.options,
        };
        status = cleval_engine_metrics(&job, &outcome);
        cli_progress_finish(&run.progress);
    }
    code = cli_run_settle(&run, status, &outcome, NULL, 0);
    if (code == CLI_EXIT_OK && cli_run_reports(&run)) {
        cleval_run_timing timing = {.device = run.device_names,
                                    .total_s = cleval_seconds() - start,
                                    .n_samples = outcome.n_samples};
        cJSON *extra = cJSON_CreateObject();
        cli_run_describe(&run, extra);
        cJSON *breakdown = cJSON_AddObjectToObject(extra, "timing_breakdown");
        cJSON_AddNumberToObject(breakdown, "read_s", outcome.read_s);
        cJSON_AddNumberToObject(breakdown, "wait_s", outcome.wait_s);
        code = cli_emit_predictions(&args, "metrics", &outcome, &timing, extra);
        cJSON_Delete(extra);
    }
    cleval_predict_outcome_free(&outcome);
    cli_run_end(&run);
    cli_args_free(&args);
    return code;
}
