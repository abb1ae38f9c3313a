/* `cleval knn`: the k-nearest-neighbours baseline on a test set. */
#include "cli.h"
#include "against.h"
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cleval/engine.h"

static const char usage[] =
    "Usage: cleval knn --train TRAIN.h5 --data TEST.h5 -k K [options]\n"
    "\n"
    "Classifies every sample of TEST.h5 by its K nearest neighbours in TRAIN.h5 (datasets X and\n"
    "y; the test set's y is optional) on the OpenCL device, exactly as scikit-learn's\n"
    "KNeighborsClassifier(algorithm='brute'): Euclidean (or cosine) distances as a float64\n"
    "computation gives them, equal distances ordered by the lower training index, equal votes\n"
    "won by the smallest label. Scores are the vote fractions. Reports metrics when the test\n"
    "set has labels, with the score metrics of the vote fractions (ROC AUC and average\n"
    "precision too, --auc auto|on|off); the JSON adds how many queries the tie rules decided.\n"
    "--errors N adds the error analysis: the first N rows of each most confused pair and the N\n"
    "most confident wrong and N least confident right predictions (docs/contract.md).\n";

static cleval_status parse_k(const cli_args *args, uint32_t *k)
{
    if (!args->present[OPT_K]) return cleval_fail(CLEVAL_ERR_USAGE, "knn: -k K is required");
    const char *text = args->values[OPT_K];
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end == text || *end)
        return cleval_fail(CLEVAL_ERR_USAGE, "-k: '%s' is not an integer", text);
    if (value < 1) return cleval_fail(CLEVAL_ERR_USAGE, "-k must be at least 1 (got %s)", text);
    if (value > UINT32_MAX) return cleval_fail(CLEVAL_ERR_USAGE, "-k %s is too large", text);
    *k = (uint32_t)value;
    return CLEVAL_OK;
}

/* --against: the same job on the second device(s), then both reports and the verdict. */
static int knn_against(const cli_args *args, const cleval_knn_job *first,
                       const cleval_knn_outcome *a, const cleval_run_timing *timing_a,
                       cJSON *extra_a, const cli_against *against)
{
    double start = cleval_seconds();
    cleval_knn_job job = *first;
    job.run.devices = against->devices;
    job.run.n_devices = against->n_devices;
    job.test.save_path = against->path_b;
    cleval_knn_outcome b = {0};
    cleval_status status = cleval_engine_knn(&job, &b);
    if (status != CLEVAL_OK) return cli_fail(status);
    cleval_run_timing timing_b = {.device = against->device_names,
                                  .total_s = cleval_seconds() - start,
                                  .n_samples = b.predict.n_samples};
    cJSON *extra_b = cleval_knn_report_members(&job, &b);
    int code = cli_against_finish(args, against, &a->predict, timing_a, extra_a, &b.predict,
                                  &timing_b, extra_b);
    cJSON_Delete(extra_b);
    cleval_predict_outcome_free(&b.predict);
    return code;
}

int cli_knn(int argc, char **argv)
{
    static const cli_option_id allowed[] = {
        OPT_HELP,   OPT_TRAIN,  OPT_DATA,       OPT_K,          OPT_WEIGHTS,
        OPT_METRIC, OPT_X_KEY,  OPT_Y_KEY,      OPT_JSON,       OPT_SAVE,
        OPT_BATCH,  OPT_DEVICE, OPT_SHARD,      OPT_SHARD_TRAIN, OPT_CHECKPOINT,
        OPT_CHECKPOINT_EVERY,   OPT_RESUME,     OPT_PROGRESS,   OPT_QUIET,
        OPT_VERBOSE, OPT_AGAINST, OPT_MAX_FLIP_RATE, OPT_MAX_ACCURACY_DROP, OPT_ALPHA,
        OPT_MAX_SCORE_DIFF, OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_MAX_CLASSES, OPT_MIN_ACCURACY, OPT_MIN_CLASS_RECALL, OPT_JUNIT, OPT_SUMMARY_MD, OPT_TOP_K, OPT_HTML,
        OPT_ERRORS, OPT_AUC,
        OPT_PROGRESS_EVERY};
    static const char *const weights[] = {"uniform", "distance", NULL};
    static const char *const metrics[] = {"euclidean", "cosine", NULL};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "knn", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);

    double start = cleval_seconds();
    cleval_knn_job job = {0};
    cleval_knn_outcome outcome = {0};
    cli_run run = {0};
    cli_against against = {0};
    int weight_choice = 0, metric_choice = 0;
    cleval_status status = CLEVAL_OK;
    if (args.n_positional > 0)
        status = cleval_fail(CLEVAL_ERR_USAGE, "knn: unexpected argument '%s'", args.positional[0]);
    else if (!args.present[OPT_TRAIN])
        status = cleval_fail(CLEVAL_ERR_USAGE, "knn: --train TRAIN.h5 is required");
    else if (!args.present[OPT_DATA])
        status = cleval_fail(CLEVAL_ERR_USAGE, "knn: --data TEST.h5 is required");
    if (status == CLEVAL_OK) status = parse_k(&args, &job.config.k);
    if (status == CLEVAL_OK) status = cli_get_choice(&args, OPT_WEIGHTS, weights, 0, &weight_choice);
    if (status == CLEVAL_OK) status = cli_get_choice(&args, OPT_METRIC, metrics, 0, &metric_choice);
    if (status == CLEVAL_OK) status = cli_get_positive(&args, OPT_BATCH, 0, &job.test.batch);
    if (status == CLEVAL_OK) status = cli_get_top_k(&args, &job.test.top_k);
    if (status == CLEVAL_OK) status = cli_get_errors(&args, &job.test.errors);
    if (status == CLEVAL_OK) status = cli_get_auc(&args, &job.test.auc);
    const char *inputs[] = {args.values[OPT_TRAIN], args.values[OPT_DATA], NULL};
    if (status == CLEVAL_OK) status = cli_run_begin(&args, "knn", inputs, &run);
    if (status == CLEVAL_OK) status = cli_against_begin(&args, NULL, &against);
    /* Under mpirun all ranks enter the engine or none: with --shard-train its collectives
     * begin at once, so a rank that failed before it must stop the others here. */
    bool all_ready = cleval_cluster_agree_exit(cli_cluster(), status == CLEVAL_OK ? 0 : 1) == 0;

    if (status == CLEVAL_OK && all_ready) {
        job.train_path = args.values[OPT_TRAIN];
        job.config.weights = weight_choice ? CLEVAL_KNN_DISTANCE : CLEVAL_KNN_UNIFORM;
        job.config.metric = metric_choice ? CLEVAL_KNN_COSINE : CLEVAL_KNN_EUCLIDEAN;
        job.test = (cleval_test_set){.data_path = args.values[OPT_DATA],
                                     .x_key = args.values[OPT_X_KEY],
                                     .y_key = args.values[OPT_Y_KEY],
                                     .batch = job.test.batch,
                                     .top_k = job.test.top_k,
                                     .errors = job.test.errors,
                                     .auc = job.test.auc,
                                     .save_path = against.active ? against.path_a
                                                  : run.save_path[0] ? run.save_path : NULL};
        job.run = run.options;
        status = run.split_training ? cleval_engine_knn_shard_train(&job, run.cluster, &outcome)
                                    : cleval_engine_knn(&job, &outcome);
        cli_progress_finish(&run.progress);
    }
    uint64_t counters[3] = {outcome.stats.distance_ties, outcome.stats.vote_ties,
                            outcome.stats.searched_again};
    code = cli_run_settle(&run, status, &outcome.predict, counters, 3);
    outcome.stats.distance_ties = counters[0];
    outcome.stats.vote_ties = counters[1];
    outcome.stats.searched_again = counters[2];
    if (code == CLI_EXIT_OK && cli_run_reports(&run)) {
        cleval_run_timing timing = {.device = run.device_names,
                                    .total_s = cleval_seconds() - start,
                                    .n_samples = outcome.predict.n_samples};
        cJSON *extra = cleval_knn_report_members(&job, &outcome);
        cli_run_describe(&run, extra);
        if (against.active) {
            code = knn_against(&args, &job, &outcome, &timing, extra, &against);
        } else {
            code = cli_emit_predictions(&args, "knn", &outcome.predict, &timing, extra);
            bool reported = code == CLI_EXIT_OK || code == CLI_EXIT_GATE_FAILED;
            if (reported && !args.present[OPT_JSON])
                printf("KNN k=%u: %llu queries decided by the distance tie rule, %llu by the "
                       "vote tie rule\n",
                       job.config.k, (unsigned long long)outcome.stats.distance_ties,
                       (unsigned long long)outcome.stats.vote_ties);
        }
        cJSON_Delete(extra);
    }
    cleval_predict_outcome_free(&outcome.predict);
    cli_against_end(&against);
    cli_run_end(&run);
    cli_args_free(&args);
    return code;
}
