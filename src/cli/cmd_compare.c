/* `cleval compare`: the migration verdict between two saved runs, with CI gates. */
#include "cli.h"
#include "stop.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cleval/compare.h"

static const char usage[] =
    "Usage: cleval compare A.h5 B.h5 [options]\n"
    "\n"
    "Compares two prediction files over the same test set (A: the baseline, B: the candidate):\n"
    "agreement, flips and the flip matrix, both accuracies and their difference with Newcombe's\n"
    "95% interval for paired data, McNemar's exact test, and score differences. Files of\n"
    "different length or with different y are refused; without y in both, predictions only.\n"
    "Gates: --max-flip-rate, --max-accuracy-drop, --alpha (default 0.05, with labels),\n"
    "--max-score-diff; exit 1 when one fails, after writing the reports (--junit: one JUnit\n"
    "testcase per gate; --summary-md: a Markdown summary; --html: an HTML report). --save\n"
    "writes every flipped sample (index, pred_a, pred_b, y, score_diff) to an HDF5 file.\n";

cleval_status cli_parse_compare_limits(const cli_args *args, cleval_compare_limits *limits)
{
    cleval_status status;
    memset(limits, 0, sizeof *limits);
    limits->use_max_flip_rate = args->present[OPT_MAX_FLIP_RATE];
    limits->use_max_accuracy_drop = args->present[OPT_MAX_ACCURACY_DROP];
    limits->use_max_score_diff = args->present[OPT_MAX_SCORE_DIFF];
    limits->use_alpha = true;
    limits->alpha_is_default = !args->present[OPT_ALPHA];
    if ((status = cli_get_number(args, OPT_MAX_FLIP_RATE, 0, 0, 1, &limits->max_flip_rate)) ||
        (status =
             cli_get_number(args, OPT_MAX_ACCURACY_DROP, 0, -1, 1, &limits->max_accuracy_drop)) ||
        (status = cli_get_number(args, OPT_ALPHA, 0.05, 0, 1, &limits->alpha)) ||
        (status =
             cli_get_number(args, OPT_MAX_SCORE_DIFF, 0, 0, HUGE_VAL, &limits->max_score_diff)))
        return status;
    return CLEVAL_OK;
}

/* The gates of the verdict as --junit and --summary-md take them. */
static void verdict_gates(const cleval_compare_result *r, cleval_gate *gates)
{
    for (uint32_t i = 0; i < r->n_gates; i++)
        gates[i] = (cleval_gate){.name = r->gates[i].name,
                                 .limit = r->gates[i].limit,
                                 .value = r->gates[i].value,
                                 .below = r->gates[i].below,
                                 .passed = r->gates[i].passed,
                                 .class_index = CLEVAL_GATE_NO_CLASS};
}

/* --summary-md: the headline numbers of the verdict and its gates. */
static cleval_status write_summary(const cli_args *args, const cleval_compare_result *r,
                                   const cleval_gate *gates)
{
    if (!args->present[OPT_SUMMARY_MD]) return CLEVAL_OK;
    cleval_summary_row rows[7];
    uint32_t n = 0;
    cleval_summary_row_set(&rows[n++], "samples", "%llu", (unsigned long long)r->n_samples);
    cleval_summary_row_set(&rows[n++], "agreement", "%.4f", r->agreement);
    cleval_summary_row_set(&rows[n++], "flips (rate)", "%llu (%.4f)",
                           (unsigned long long)r->flips, r->flip_rate);
    if (r->has_labels) {
        cleval_summary_row_set(&rows[n++], "accuracy A / B", "%.4f / %.4f", r->accuracy_a,
                               r->accuracy_b);
        cleval_summary_row_set(&rows[n++], "accuracy B - A (95% interval)",
                               "%+.4f (%+.4f, %+.4f)", r->accuracy_diff, r->diff_ci_low,
                               r->diff_ci_high);
        cleval_summary_row_set(&rows[n++], "McNemar p", "%.4g", r->mcnemar_p);
    }
    if (r->has_scores)
        cleval_summary_row_set(&rows[n++], "largest score difference", "%.4g",
                               r->max_abs_score_diff);
    return cleval_gates_write_verdict_summary(args->values[OPT_SUMMARY_MD], "cleval compare",
                                              rows, n, gates, r->n_gates, &r->class_names);
}

/* The reports built from the JSON tree: --json and --html. */
static cleval_status write_reports(const cli_args *args, const cleval_compare_result *r)
{
    if (!args->present[OPT_JSON] && !args->present[OPT_HTML]) return CLEVAL_OK;
    cJSON *json = cleval_compare_json(r);
    cleval_status status =
        json ? CLEVAL_OK : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
    if (status == CLEVAL_OK && args->present[OPT_JSON])
        status = cli_write_json(json, args->values[OPT_JSON]);
    if (status == CLEVAL_OK)
        status = cli_write_html(args, "compare", (const char *const[]){"A", "B", NULL}, json);
    cJSON_Delete(json);
    return status;
}

int cli_compare(int argc, char **argv)
{
    static const cli_option_id allowed[] = {
        OPT_HELP,       OPT_PRED_KEY,       OPT_Y_KEY,
        OPT_SCORES_KEY, OPT_MAX_FLIP_RATE,  OPT_MAX_ACCURACY_DROP,
        OPT_ALPHA,      OPT_MAX_SCORE_DIFF, OPT_JSON,
        OPT_SAVE,       OPT_BATCH,          OPT_PROGRESS,
        OPT_QUIET,      OPT_VERBOSE,        OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_ALLOW_NONFINITE, OPT_MAX_CLASSES, OPT_JUNIT, OPT_SUMMARY_MD, OPT_HTML,
        OPT_PROGRESS_EVERY};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "compare", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);

    cleval_compare_config config = {0};
    cleval_compare_result result = {0};
    cleval_status status = CLEVAL_OK;
    if (args.n_positional < 2)
        status =
            cleval_fail(CLEVAL_ERR_USAGE, "compare: two prediction files are required (A.h5 B.h5)");
    else if (args.n_positional > 2)
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "compare: unexpected argument '%s' (two files: A.h5 B.h5)",
                             args.positional[2]);
    if (status == CLEVAL_OK) status = cli_get_positive(&args, OPT_BATCH, 0, &config.batch);
    if (status == CLEVAL_OK) status = cli_get_max_classes(&args, &config.max_classes);
    if (status == CLEVAL_OK) status = cli_parse_compare_limits(&args, &config.limits);
    if (status == CLEVAL_OK)
        status =
            cli_check_outputs(&args, (const char *const[]){"input A", "input B", NULL}, NULL, 0);
    if (status == CLEVAL_OK) status = cli_progress_check(&args);

    if (status == CLEVAL_OK) {
        cli_progress progress;
        cli_progress_init(&progress, &args, "compare");
        config.path_a = args.positional[0];
        config.path_b = args.positional[1];
        config.pred_key = args.values[OPT_PRED_KEY];
        config.y_key = args.values[OPT_Y_KEY];
        config.scores_key = args.values[OPT_SCORES_KEY];
        config.save_path = args.values[OPT_SAVE];
        config.allow_nonfinite = args.present[OPT_ALLOW_NONFINITE];
        config.progress = cli_progress_update;
        config.progress_user = &progress;
        cli_stop_install();
        config.stop = cli_stop_request();
        status = cleval_compare_run(&config, &result);
        cli_progress_finish(&progress);
    }
    cleval_gate gates[CLEVAL_COMPARE_MAX_GATES];
    if (status == CLEVAL_OK) status = write_reports(&args, &result);
    if (status == CLEVAL_OK) verdict_gates(&result, gates);
    if (status == CLEVAL_OK)
        status = cli_write_junit(&args, "compare", gates, result.n_gates, &result.class_names);
    if (status == CLEVAL_OK) status = write_summary(&args, &result, gates);
    if (status == CLEVAL_OK && !cli_json_to_stdout(&args)) {
        cleval_compare_report(stdout, &result);
        fflush(stdout);
    }
    bool passed = result.passed;
    cleval_compare_result_free(&result);
    cli_args_free(&args);
    if (status != CLEVAL_OK) return cli_fail(status);
    return passed ? CLI_EXIT_OK : CLI_EXIT_GATE_FAILED;
}
