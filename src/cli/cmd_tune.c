/* `cleval tune`: times the kernels' candidate tunables on a model's Conv, Gemm and MatMul
 * layers and keeps each layer's winner in the tuning cache, where eval finds it. */
#include "cli.h"
#include "cleval/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cleval tune --model MODEL.onnx [--device D] [--budget SECONDS] [--batch N]\n"
    "\n"
    "Times candidate kernel tunables (register tiles, Winograd, k-blocks; work-group tiles on\n"
    "GPUs) on every Conv, Gemm and MatMul layer of the model at its real shapes, checks each\n"
    "candidate's scores against the default tunables' (a wrong candidate is dropped), and\n"
    "stores each layer's winner in the tuning cache ($CLEVAL_CACHE_DIR/tuning, by default\n"
    "~/.cache/cleval/tuning), keyed on the device, its driver, the kernels and the layer's\n"
    "shape. Later runs on that device use the winners. Prints one line per layer: default\n"
    "time, best time and the winning changes. CLEVAL_NN_TUNING must not be set.\n";

/* Samples per timed run when --batch is not given: enough work per launch for steady times. */
enum { DEFAULT_TUNE_BATCH = 64 };
static const double DEFAULT_BUDGET_SECONDS = 60;

static cleval_status read_options(const cli_args *args, cleval_tune_options *options)
{
    static const char *const precisions[] = {"fp32", "fp16", NULL};
    if (args->n_positional > 0)
        return cleval_fail(CLEVAL_ERR_USAGE, "tune: unexpected argument '%s'", args->positional[0]);
    if (!args->present[OPT_MODEL])
        return cleval_fail(CLEVAL_ERR_USAGE, "tune: --model MODEL.onnx is required");
    const char *env = getenv("CLEVAL_NN_TUNING");
    if (env && *env)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "tune: CLEVAL_NN_TUNING is set; unset it so that the candidates are "
                           "timed against the defaults");
    uint64_t count = 0, batch = 0;
    double seconds = 0;
    int precision = 0;
    cleval_status status = cli_get_count_or_duration(args, OPT_BUDGET, &count, &seconds);
    if (status == CLEVAL_OK) status = cli_get_positive(args, OPT_BATCH, DEFAULT_TUNE_BATCH, &batch);
    if (status == CLEVAL_OK && batch > UINT32_MAX)
        status = cleval_fail(CLEVAL_ERR_USAGE, "--batch: %llu is too many samples",
                             (unsigned long long)batch);
    if (status == CLEVAL_OK)
        status = cli_get_choice(args, OPT_PRECISION, precisions, 0, &precision);
    if (status != CLEVAL_OK) return status;
    options->budget_seconds = count ? (double)count : seconds ? seconds : DEFAULT_BUDGET_SECONDS;
    options->batch = (uint32_t)batch;
    options->precision = precision == 1 ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32;
    return CLEVAL_OK;
}

static void print_report(const cleval_tune_report *r, const char *device)
{
    printf(
        "Tuned on %s, batch %u: %u of %u candidates tried (%u dropped) in %.1f s; winners %s\n\n",
        device, r->batch, r->tried, r->candidates, r->rejected, r->seconds,
        r->stored     ? "stored in the tuning cache"
        : r->n_layers ? "NOT stored (the cache is off)"
                      : "none");
    printf("%-24s %-28s %-42s %10s %10s  %s\n", "layer", "op", "shape", "default ms", "best ms",
           "winner");
    for (uint32_t i = 0; i < r->n_layers; i++) {
        const cleval_tune_layer *l = &r->layers[i];
        printf("%-24.24s %-28.28s %-42.42s %10.4f %10.4f  %s\n", l->name, l->op, l->shape,
               l->default_ms, l->best_ms, l->winner);
    }
    if (r->n_layers == 0) printf("(the model has no Conv, Gemm or MatMul layer to tune)\n");
}

int cli_tune(int argc, char **argv)
{
    static const cli_option_id allowed[] = {OPT_HELP,  OPT_MODEL,     OPT_DEVICE, OPT_BUDGET,
                                            OPT_BATCH, OPT_PRECISION, OPT_QUIET,  OPT_VERBOSE};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "tune", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);
    cleval_tune_options options = {0};
    cleval_status status = read_options(&args, &options);
    cleval_device *dev = NULL;
    cleval_onnx_model *model = NULL;
    cleval_tune_report report = {0};
    if (status == CLEVAL_OK) status = cli_open_device(&args, &dev);
    if (status == CLEVAL_OK) status = cleval_onnx_load(args.values[OPT_MODEL], &model);
    if (status == CLEVAL_OK) status = cleval_tune(dev, model, &options, &report);
    if (status == CLEVAL_OK && !args.present[OPT_QUIET]) {
        char name[1024];
        cleval_device_names(&dev, 1, name, sizeof name);
        print_report(&report, name);
    }
    cleval_tune_report_free(&report);
    cleval_onnx_free(model);
    cleval_device_close(dev);
    cli_args_free(&args);
    return status == CLEVAL_OK ? CLI_EXIT_OK : cli_fail(status);
}
