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
    "testcase per gate). --save writes every flipped sample (index, pred_a, pred_b, y,\n"
    "score_diff) to an HDF5 file.\n";

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

/* --junit: one testcase per gate of the verdict. */
static cleval_status write_junit(const cli_args *args, const cleval_compare_result *r)
{
    cleval_gate gates[CLEVAL_COMPARE_MAX_GATES];
    for (uint32_t i = 0; i < r->n_gates; i++)
        gates[i] = (cleval_gate){.name = r->gates[i].name,
                                 .limit = r->gates[i].limit,
                                 .value = r->gates[i].value,
                                 .below = r->gates[i].below,
                                 .passed = r->gates[i].passed,
                                 .class_index = CLEVAL_GATE_NO_CLASS};
    return cli_write_junit(args, "compare", gates, r->n_gates, &r->class_names);
}

int cli_compare(int argc, char **argv)
{
    static const cli_option_id allowed[] = {
        OPT_HELP,       OPT_PRED_KEY,       OPT_Y_KEY,
        OPT_SCORES_KEY, OPT_MAX_FLIP_RATE,  OPT_MAX_ACCURACY_DROP,
        OPT_ALPHA,      OPT_MAX_SCORE_DIFF, OPT_JSON,
        OPT_SAVE,       OPT_BATCH,          OPT_PROGRESS,
        OPT_QUIET,      OPT_VERBOSE,        OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_ALLOW_NONFINITE, OPT_MAX_CLASSES, OPT_JUNIT};
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
    int progress_mode; /* checked here; cli_progress_init() applies it */
    if (status == CLEVAL_OK)
        status = cli_get_choice(&args, OPT_PROGRESS, cli_progress_modes, 0, &progress_mode);

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
    if (status == CLEVAL_OK && args.present[OPT_JSON]) {
        cJSON *json = cleval_compare_json(&result);
        status = json ? cli_write_json(json, args.values[OPT_JSON])
                      : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
        cJSON_Delete(json);
    }
    if (status == CLEVAL_OK) status = write_junit(&args, &result);
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
