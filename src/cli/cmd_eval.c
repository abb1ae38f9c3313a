/* `cleval eval`: an ONNX network on a test set. */
#include "cli.h"
#include "against.h"
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cleval/engine.h"

static const char usage[] =
    "Usage: cleval eval --model MODEL.onnx --data TEST.h5 [options]\n"
    "\n"
    "Runs the network of MODEL.onnx (as torch.onnx.export writes it: one input whose first axis\n"
    "is the batch, one output [N, C]) on every sample of TEST.h5 (dataset X; its per-sample\n"
    "shape must be the model input's, or its channels-last form with --input-layout nhwc)\n"
    "with OpenCL kernels on the device(s). A float model takes any numeric X (8- and 16-bit\n"
    "integers move to the device as they are and become floats there, with --input-scale,\n"
    "--input-mean and --input-std applied); an integer model (uint8, int8, int32, int64:\n"
    "token ids) takes integer X whose type fits its own.\n"
    "Predictions are the argmax of the outputs (the first maximum on ties). With labels (y)\n"
    "the report gives scikit-learn's metrics; without, the predicted-class counts. --save\n"
    "writes pred, scores (the raw outputs) and y. With labels, the outputs also give log loss,\n"
    "Brier score, expected calibration error (15 bins) and with --top-k K the top-K accuracy\n"
    "(the outputs as probabilities when every row is non-negative and sums to 1 within 1e-4,\n"
    "else their softmax; not for --shard), and ROC AUC and average precision one-vs-rest\n"
    "(--auc: auto up to 100 classes, on, off; not after --resume).\n"
    "--errors N adds the error analysis: the first N rows of each most confused pair and the N\n"
    "most confident wrong and N least confident right predictions (docs/contract.md).\n";

void cli_eval_mode_line(const cleval_eval_mode *mode, char *out, size_t size)
{
    char how[160] = "";
    if (strcmp(mode->precision, "fp16") == 0)
        snprintf(how, sizeof how, " (half storage, %s arithmetic)", mode->arithmetic);
    else if (strcmp(mode->precision, "int8") == 0)
        snprintf(how, sizeof how, " (int8 Conv/Gemm, scales from %llu calibration samples)",
                 (unsigned long long)mode->calibration_samples);
    char pruned[64] = "";
    if (mode->prune > 0)
        snprintf(pruned, sizeof pruned, ", weights pruned at sparsity %g", mode->prune);
    char memory[160] = "";
    const cleval_nn_device_memory *m = mode->device_memory;
    if (m)
        snprintf(memory, sizeof memory,
                 "; device memory %llu bytes (weights %llu, activations %llu, workspace %llu)",
                 (unsigned long long)m->peak_bytes, (unsigned long long)m->weights_bytes,
                 (unsigned long long)m->activations_bytes, (unsigned long long)m->workspace_bytes);
    snprintf(out, size, "%s%s%s, %llu bytes of parameters%s", mode->precision, how, pruned,
             (unsigned long long)mode->size_bytes, memory);
}

static cJSON *layers_block(const cleval_eval_outcome *out)
{
    cJSON *layers = cJSON_CreateArray();
    for (uint32_t i = 0; i < out->n_layers; i++) {
        const cleval_eval_layer *l = &out->layers[i];
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "name", l->name);
        cJSON_AddStringToObject(row, "op", l->op);
        cJSON_AddStringToObject(row, "kernel", l->kernel);
        cJSON_AddNumberToObject(row, "seconds", l->seconds);
        cJSON_AddNumberToObject(row, "gflops_per_s",
                                l->seconds > 0 ? l->flops / l->seconds / 1e9 : 0);
        cJSON_AddItemToArray(layers, row);
    }
    return layers;
}

static void print_layers(const cleval_eval_outcome *out)
{
    double total = 0;
    for (uint32_t i = 0; i < out->n_layers; i++)
        total += out->layers[i].seconds;
    printf("\nPer-layer device time:\n%-24s %-22s %10s %7s %10s  %s\n", "layer", "op", "seconds",
           "share", "GFLOP/s", "kernel");
    for (uint32_t i = 0; i < out->n_layers; i++) {
        const cleval_eval_layer *l = &out->layers[i];
        printf("%-24.24s %-22.22s %10.4f %6.1f%% %10.1f  %s\n", l->name, l->op, l->seconds,
               total > 0 ? 100 * l->seconds / total : 0,
               l->seconds > 0 ? l->flops / l->seconds / 1e9 : 0, l->kernel);
    }
}

/* The report's additions: the model, where the time went, and the layer table. */
static cJSON *eval_extra(const cleval_eval_job *job, const cleval_eval_outcome *out)
{
    cJSON *extra = cleval_eval_report_members(job, out);
    if (extra && job->profile) cJSON_AddItemToObject(extra, "layers", layers_block(out));
    return extra;
}

/* --against: the same job on the second device(s) or in another precision, then both reports
 * and the verdict. */
static int eval_against(const cli_args *args, const cleval_eval_job *first,
                        const cleval_eval_outcome *a, const cleval_run_timing *timing_a,
                        cJSON *extra_a, const cli_against *against, const char *device_names,
                        const char *arithmetic_b)
{
    double start = cleval_seconds();
    cleval_eval_job job = *first;
    if (against->precision) {
        job.precision = against->precision;
    } else {
        job.run.devices = against->devices;
        job.run.n_devices = against->n_devices;
        job.arithmetic = arithmetic_b;
        device_names = against->device_names;
    }
    job.test.save_path = against->path_b;
    cleval_eval_outcome b = {0};
    cleval_status status = cleval_engine_eval(&job, &b);
    if (status != CLEVAL_OK) return cli_fail(status);
    char line[512];
    cleval_eval_mode mode = cleval_eval_mode_of(&b);
    cli_eval_mode_line(&mode, line, sizeof line);
    cleval_run_timing timing_b = {.device = device_names,
                                  .total_s = cleval_seconds() - start,
                                  .n_samples = b.predict.n_samples,
                                  .model = line};
    cJSON *extra_b = eval_extra(&job, &b);
    int code = cli_against_finish(args, against, &a->predict, timing_a, extra_a, &b.predict,
                                  &timing_b, extra_b);
    cJSON_Delete(extra_b);
    cleval_eval_outcome_free(&b);
    return code;
}

/* Whether every one of the n devices has cl_khr_fp16; *lacking names one that has not. */
static bool all_have_fp16(cleval_device *const *devices, uint32_t n, const char **lacking)
{
    for (uint32_t d = 0; d < n; d++)
        if (!cleval_device_get_info(devices[d])->has_fp16) {
            *lacking = cleval_device_get_info(devices[d])->name;
            return false;
        }
    return true;
}

/* fp16's arithmetic on `devices`, made concrete before any run: "auto" becomes "half" only when
 * every one of them, and under mpirun every rank's, has cl_khr_fp16 (`collective`: every rank
 * makes this call on every eval, whatever it parsed and whatever its status, so none waits for
 * one that failed; `ok` false counts as lacking it); "half" where one lacks it is a usage error
 * at once, on every rank. */
static cleval_status resolve_arithmetic(const char *wanted, cleval_device *const *devices,
                                        uint32_t n, bool ok, bool collective, const char **out)
{
    const char *lacking = NULL;
    uint32_t all = ok && all_have_fp16(devices, n, &lacking);
    cleval_status status = CLEVAL_OK;
    if (collective) status = cleval_cluster_min_u32(cli_cluster(), &all);
    *out = wanted;
    if (strcmp(wanted, "auto") == 0) *out = all ? "half" : "float";
    if (status != CLEVAL_OK || !ok || all || strcmp(wanted, "half") != 0) return status;
    if (lacking)
        return cleval_fail(CLEVAL_ERR_USAGE, "--fp16-arithmetic half: device %s has no cl_khr_fp16",
                           lacking);
    return cleval_fail(CLEVAL_ERR_USAGE, "--fp16-arithmetic half: a device of another rank has no "
                                         "cl_khr_fp16 (or that rank failed)");
}

/* --input-scale, --input-mean, --input-std and --input-layout into *input (the lists in
 * *mean and *stdv, to free). What depends on the model (a float input, the channel count) is
 * checked when the network is built. */
static cleval_status read_input_prep(const cli_args *args, cleval_nn_input_prep *input,
                                     float **mean, float **stdv)
{
    static const char *const layouts[] = {"nchw", "nhwc", NULL};
    double scale = 0.0;
    int layout = 0;
    cleval_status status = cli_get_number(args, OPT_INPUT_SCALE, 0.0, -INFINITY, INFINITY, &scale);
    if (status == CLEVAL_OK && args->present[OPT_INPUT_SCALE] &&
        (scale == 0.0 || !isfinite((float)scale)))
        status = cleval_fail(CLEVAL_ERR_USAGE, "--input-scale: must be a non-zero float (got %s)",
                             args->values[OPT_INPUT_SCALE]);
    if (status == CLEVAL_OK)
        status = cli_get_number_list(args, OPT_INPUT_MEAN, mean, &input->n_mean);
    if (status == CLEVAL_OK) status = cli_get_number_list(args, OPT_INPUT_STD, stdv, &input->n_std);
    for (uint32_t c = 0; status == CLEVAL_OK && c < input->n_std; c++)
        if ((*stdv)[c] == 0.0f)
            status = cleval_fail(CLEVAL_ERR_USAGE, "--input-std: value %u is 0 (got %s)", c + 1,
                                 args->values[OPT_INPUT_STD]);
    if (status == CLEVAL_OK) status = cli_get_choice(args, OPT_INPUT_LAYOUT, layouts, 0, &layout);
    input->scale = (float)scale;
    input->mean = *mean;
    input->std = *stdv;
    input->nhwc = layout == 1;
    return status;
}

int cli_eval(int argc, char **argv)
{
    /* clang-format off */
    static const cli_option_id allowed[] = {
        OPT_HELP,   OPT_MODEL,  OPT_DATA,       OPT_X_KEY,      OPT_Y_KEY,
        OPT_JSON,   OPT_SAVE,   OPT_BATCH,      OPT_DEVICE,     OPT_PRECISION,
        OPT_PROFILE, OPT_SHARD, OPT_CHECKPOINT, OPT_CHECKPOINT_EVERY,
        OPT_RESUME, OPT_PROGRESS, OPT_QUIET,    OPT_VERBOSE,    OPT_AGAINST,
        OPT_MAX_FLIP_RATE, OPT_MAX_ACCURACY_DROP, OPT_ALPHA, OPT_MAX_SCORE_DIFF,
        OPT_CALIBRATION, OPT_PRUNE, OPT_FP16_ARITHMETIC, OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_ALLOW_NONFINITE,
        OPT_MAX_CLASSES, OPT_INPUT_SCALE, OPT_INPUT_MEAN, OPT_INPUT_STD, OPT_INPUT_LAYOUT,
        OPT_MIN_ACCURACY, OPT_MIN_CLASS_RECALL, OPT_JUNIT, OPT_SUMMARY_MD, OPT_TOP_K, OPT_HTML,
        OPT_ERRORS, OPT_AUC,
        OPT_PROGRESS_EVERY};
    /* clang-format on */
    static const char *const precisions[] = {"fp32", "fp16", "int8", NULL};
    static const char *const arithmetics[] = {"auto", "half", "float", NULL};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "eval", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);

    double start = cleval_seconds();
    cleval_eval_job job = {0};
    cleval_eval_outcome outcome = {0};
    cli_run run = {0};
    cli_against against = {0};
    int precision = 0;
    cleval_status status = CLEVAL_OK;
    if (args.n_positional > 0)
        status =
            cleval_fail(CLEVAL_ERR_USAGE, "eval: unexpected argument '%s'", args.positional[0]);
    else if (!args.present[OPT_MODEL])
        status = cleval_fail(CLEVAL_ERR_USAGE, "eval: --model MODEL.onnx is required");
    else if (!args.present[OPT_DATA])
        status = cleval_fail(CLEVAL_ERR_USAGE, "eval: --data TEST.h5 is required");
    if (status == CLEVAL_OK)
        status = cli_get_choice(&args, OPT_PRECISION, precisions, 0, &precision);
    int arithmetic = 0;
    if (status == CLEVAL_OK)
        status = cli_get_choice(&args, OPT_FP16_ARITHMETIC, arithmetics, 0, &arithmetic);
    if (status == CLEVAL_OK) status = cli_get_positive(&args, OPT_BATCH, 0, &job.test.batch);
    if (status == CLEVAL_OK) status = cli_get_top_k(&args, &job.test.top_k);
    if (status == CLEVAL_OK) status = cli_get_errors(&args, &job.test.errors);
    if (status == CLEVAL_OK) status = cli_get_auc(&args, &job.test.auc);
    uint64_t calibration = CLEVAL_DEFAULT_CALIBRATION;
    if (status == CLEVAL_OK)
        status = cli_get_positive(&args, OPT_CALIBRATION, CLEVAL_DEFAULT_CALIBRATION, &calibration);
    if (status == CLEVAL_OK && calibration > UINT32_MAX)
        status = cleval_fail(CLEVAL_ERR_USAGE, "--calibration: %llu is too many samples",
                             (unsigned long long)calibration);
    double prune = 0.0;
    if (status == CLEVAL_OK)
        status = cli_get_number(&args, OPT_PRUNE, 0.0, -INFINITY, INFINITY, &prune);
    if (status == CLEVAL_OK && !(prune >= 0.0 && prune < 1.0))
        status = cleval_fail(CLEVAL_ERR_USAGE, "--prune: must be at least 0 and below 1 (got %s)",
                             args.values[OPT_PRUNE]);
    float *mean = NULL, *stdv = NULL;
    if (status == CLEVAL_OK) status = read_input_prep(&args, &job.input, &mean, &stdv);
    const char *inputs[] = {args.values[OPT_MODEL], args.values[OPT_DATA], NULL};
    if (status == CLEVAL_OK) status = cli_run_begin(&args, "eval", inputs, &run);
    if (status == CLEVAL_OK) status = cli_against_begin(&args, precisions, &against);
    bool fp16_run = strcmp(precisions[precision], "fp16") == 0 ||
                    (against.precision && strcmp(against.precision, "fp16") == 0);
    if (status == CLEVAL_OK && args.present[OPT_FP16_ARITHMETIC] && !fp16_run)
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "--fp16-arithmetic: applies to an fp16 run (--precision fp16 or "
                             "--against fp16)");
    /* The arithmetic of the fp16 run(s): on the run's devices (--against fp16 runs there too),
     * or on --against's devices for the second run; part of the job's identity, so a resume or
     * a merge never mixes half and float. */
    const char *arithmetic_a = "float", *arithmetic_b = "float";
    bool ok = status == CLEVAL_OK && fp16_run;
    cleval_status st = resolve_arithmetic(arithmetics[arithmetic], run.options.devices,
                                          ok ? run.options.n_devices : 0, ok, true, &arithmetic_a);
    if (status == CLEVAL_OK) status = st;
    if (status == CLEVAL_OK && fp16_run && against.devices)
        status = resolve_arithmetic(arithmetics[arithmetic], against.devices, against.n_devices,
                                    true, false, &arithmetic_b);
    if (status == CLEVAL_OK && strcmp(precisions[precision], "fp16") == 0)
        status = cli_run_add_fact(&run, "arithmetic", arithmetic_a);
    if (status == CLEVAL_OK) {
        job.model_path = args.values[OPT_MODEL];
        job.precision = precisions[precision];
        job.arithmetic = arithmetic_a;
        job.calibration = (uint32_t)calibration;
        job.prune = prune;
        job.test = (cleval_test_set){.data_path = args.values[OPT_DATA],
                                     .x_key = args.values[OPT_X_KEY],
                                     .y_key = args.values[OPT_Y_KEY],
                                     .batch = job.test.batch,
                                     .top_k = job.test.top_k,
                                     .errors = job.test.errors,
                                     .auc = job.test.auc,
                                     .save_path = against.active     ? against.path_a
                                                  : run.save_path[0] ? run.save_path
                                                                     : NULL};
        job.run = run.options;
        job.profile = args.present[OPT_PROFILE];
        job.allow_nonfinite = args.present[OPT_ALLOW_NONFINITE];
        status = cleval_engine_eval(&job, &outcome);
        cli_progress_finish(&run.progress);
    }
    code = cli_run_settle(&run, status, &outcome.predict, &outcome.nonfinite_scores, 1);
    if (code == CLI_EXIT_OK && cli_run_reports(&run)) {
        char line[512];
        cleval_eval_mode mode = cleval_eval_mode_of(&outcome);
        cli_eval_mode_line(&mode, line, sizeof line);
        cleval_run_timing timing = {.device = run.device_names,
                                    .total_s = cleval_seconds() - start,
                                    .n_samples = outcome.predict.n_samples,
                                    .model = line};
        cJSON *extra = eval_extra(&job, &outcome);
        cli_run_describe(&run, extra);
        if (against.active) {
            code = eval_against(&args, &job, &outcome, &timing, extra, &against, run.device_names,
                                arithmetic_b);
        } else {
            code = cli_emit_predictions(&args, "eval", &outcome.predict, &timing, extra);
            bool reported = code == CLI_EXIT_OK || code == CLI_EXIT_GATE_FAILED;
            if (reported && job.profile && !cli_json_to_stdout(&args)) print_layers(&outcome);
            if (reported && outcome.nonfinite_scores && !cli_json_to_stdout(&args))
                printf("\nNon-finite scores: %llu, accepted (a NaN counts as the maximum)\n",
                       (unsigned long long)outcome.nonfinite_scores);
        }
        cJSON_Delete(extra);
    }
    cleval_eval_outcome_free(&outcome);
    cli_against_end(&against);
    cli_run_end(&run);
    cli_args_free(&args);
    free(mean);
    free(stdv);
    return code;
}
