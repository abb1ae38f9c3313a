/* `cleval merge`: the part files of a sharded run combined into the run's report and file. */
#include "cli.h"
#include "stop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/engine.h"

static const char usage[] =
    "Usage: cleval merge PART.h5... [--json PATH] [--save PATH]\n"
    "\n"
    "Combines the part files that `cleval eval|knn|metrics --shard I/N --save PART.h5` wrote\n"
    "(in any order) into exactly the report and prediction file the unsharded run gives.\n"
    "Refuses parts of different jobs, sets that do not cover every slice exactly once, and\n"
    "damaged parts (each is checked against its checksum before use).\n";

static uint64_t number(const cleval_merge_outcome *out, const char *name)
{
    return strtoull(cleval_merge_attribute(out, name), NULL, 10);
}

int cli_merge(int argc, char **argv)
{
    static const cli_option_id allowed[] = {OPT_HELP,  OPT_JSON,    OPT_SAVE,
                                            OPT_QUIET, OPT_VERBOSE, OPT_ALLOW_EXTERNAL_STORAGE,
                                            OPT_ALLOW_NONFINITE,
                                            OPT_MAX_CLASSES};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "merge", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);
    double start = cleval_seconds();
    cleval_merge_outcome *outcome = calloc(1, sizeof *outcome);
    cleval_status status = outcome ? CLEVAL_OK : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
    if (status == CLEVAL_OK && args.n_positional == 0)
        status = cleval_fail(CLEVAL_ERR_USAGE, "merge: no part files given (see cleval merge --help)");
    cleval_merge_options options = {.allow_nonfinite = args.present[OPT_ALLOW_NONFINITE]};
    if (status == CLEVAL_OK) status = cli_get_max_classes(&args, &options.max_classes);
    if (status == CLEVAL_OK)
        status = cli_check_outputs(&args, (const char *const[]){"part", NULL}, NULL, 0);
    cli_stop_install();
    options.stop = cli_stop_request();
    if (status == CLEVAL_OK)
        status = cleval_engine_merge(args.positional, (uint32_t)args.n_positional,
                                     args.values[OPT_SAVE], &options, outcome);
    if (status == CLEVAL_OK) {
        cleval_run_timing timing = {.device = outcome->device,
                                    .total_s = cleval_seconds() - start,
                                    .n_samples = outcome->predict.n_samples};
        cJSON *extra = cJSON_CreateObject();
        cleval_eval_mode mode;
        char line[256];
        if (strcmp(outcome->command, "knn") == 0)
            cJSON_AddItemToObject(
                extra, "knn",
                cleval_knn_json((uint32_t)number(outcome, "knn_k"),
                              cleval_merge_attribute(outcome, "knn_weights"),
                              cleval_merge_attribute(outcome, "knn_metric"),
                              number(outcome, "knn_n_train"),
                              number(outcome, "knn_distance_ties"),
                              number(outcome, "knn_vote_ties"),
                              number(outcome, "knn_searched_again")));
        if (strcmp(outcome->command, "eval") == 0) {
            uint64_t shape[8];
            uint32_t rank = 0;
            for (const char *p = cleval_merge_attribute(outcome, "eval_input_shape"); *p && rank < 8;
                 p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
                shape[rank++] = strtoull(p, NULL, 10);
            cJSON *model = cleval_eval_model_json(cleval_merge_attribute(outcome, "eval_model"),
                                                (int64_t)number(outcome, "eval_opset"), rank, shape,
                                                outcome->predict.n_classes,
                                                cleval_merge_attribute(outcome, "eval_precision"));
            /* Parts written before precision modes existed lack these: fp32, float, unpruned. */
            const char *arithmetic = cleval_merge_attribute(outcome, "eval_arithmetic");
            mode = (cleval_eval_mode){
                .precision = cleval_merge_attribute(outcome, "eval_precision"),
                .arithmetic = arithmetic[0] ? arithmetic : "float",
                .prune = strtod(cleval_merge_attribute(outcome, "eval_prune"), NULL),
                .calibration_samples = number(outcome, "eval_calibration_samples"),
                .size_bytes = number(outcome, "eval_model_size_bytes")};
            cleval_eval_mode_json(model, &mode);
            cli_eval_mode_line(&mode, line, sizeof line);
            timing.model = line;
            cJSON_AddItemToObject(extra, "model", model);
            cJSON_AddNumberToObject(extra, "nonfinite_scores",
                                    (double)number(outcome, "eval_nonfinite_scores"));
        }
        code = cli_emit_predictions(&args, outcome->command, &outcome->predict, &timing, extra);
        cJSON_Delete(extra);
    }
    if (outcome) cleval_predict_outcome_free(&outcome->predict);
    free(outcome);
    cli_args_free(&args);
    return status == CLEVAL_OK ? code : cli_fail(status);
}
