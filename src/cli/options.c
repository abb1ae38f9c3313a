/* The option table and its parser (see options.h). */
#include "options.h"

#include "cleval/dataset.h"
#include "cleval/errors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cli_option cli_options[OPT_COUNT] = {
    [OPT_HELP] = {"help", 'h', NULL, "show this help and exit"},
    [OPT_VERSION] = {"version", 0, NULL, "print the version and exit"},
    [OPT_JSON] = {"json", 0, "PATH",
                  "write the JSON report to PATH ('-' for stdout); a value that is undefined "
                  "(NaN, such as Cohen's kappa when one class is all there is) is null"},
    [OPT_SAVE] = {"save", 0, "PATH", "write a prediction file (HDF5) to PATH"},
    [OPT_DATA] = {"data", 0, "FILE.h5", "the input HDF5 file"},
    [OPT_X_KEY] = {"x-key", 0, "NAME", "dataset holding the samples (default X)"},
    [OPT_Y_KEY] = {"y-key", 0, "NAME", "dataset holding the labels (default y)"},
    [OPT_PRED_KEY] = {"pred-key", 0, "NAME", "dataset holding the predictions (default pred)"},
    [OPT_BATCH] = {"batch", 0, "N", "samples per device batch"},
    [OPT_DEVICE] = {"device", 0, "SPEC",
                    "device index or name substring, a comma-separated list, or all (default: "
                    "$CLEVAL_DEVICE, else the first GPU, else the first device)"},
    [OPT_QUIET] = {"quiet", 'q', NULL, "no progress output"},
    [OPT_VERBOSE] = {"verbose", 'v', NULL, "log device, kernel and tuning choices to stderr"},
    [OPT_MODEL] = {"model", 0, "MODEL.onnx", "the network, as exported by torch.onnx.export"},
    [OPT_PRECISION] = {"precision", 0, "fp32|fp16|int8",
                       "the network's numeric mode (default fp32; tune: fp32 or fp16, as int8 "
                       "needs calibration data)"},
    [OPT_CALIBRATION] = {"calibration", 0, "N",
                         "int8: activation scales from the first N samples of the data "
                         "(default 512)"},
    [OPT_PRUNE] = {"prune", 0, "S",
                   "zero the fraction S (0 <= S < 1) of smallest-magnitude weights of every "
                   "Conv/Gemm/MatMul (what-if runs)"},
    [OPT_FP16_ARITHMETIC] = {"fp16-arithmetic", 0, "auto|half|float",
                             "fp16: compute in half where every device has cl_khr_fp16 (auto, "
                             "the default), insist on half, or keep float arithmetic"},
    [OPT_INPUT_SCALE] = {"input-scale", 0, "S",
                         "float model input: multiply every sample value by S on the "
                         "device (1/255 for 8-bit images), before --input-mean/--input-std"},
    [OPT_INPUT_MEAN] = {"input-mean", 0, "M1,M2,..",
                        "float model input: subtract M[c] from channel c (the input's "
                        "axis 1) after --input-scale; one value, or one per channel"},
    [OPT_INPUT_STD] = {"input-std", 0, "S1,S2,..",
                       "float model input: then divide channel c by S[c] (non-zero); one "
                       "value, or one per channel"},
    [OPT_INPUT_LAYOUT] = {"input-layout", 0, "nchw|nhwc",
                          "the layout of the data's samples; nhwc (channels last, [H, W, "
                          "C] for a model input [N, C, H, W]) is transposed on the device "
                          "(default nchw: as the model input)"},
    [OPT_ALLOW_EXTERNAL_STORAGE] = {"allow-external-storage", 0, NULL,
                                    "let HDF5 inputs read external storage, virtual dataset "
                                    "sources and external links outside their own folder "
                                    "(still only existing regular files)"},
    [OPT_ALLOW_NONFINITE] = {"allow-nonfinite", 0, NULL,
                             "accept NaN and infinite scores (refused otherwise, exit 2): eval "
                             "saves them and its argmax counts a NaN as the maximum; compare "
                             "leaves pairs with one out of the score differences; drift leaves "
                             "samples with one out of the confidence and entropy; merge copies "
                             "them; the JSON counts them in nonfinite_scores"},
    [OPT_PROFILE] = {"profile", 0, NULL,
                     "time every layer on the device and report the table (slower)"},
    [OPT_AGAINST] = {"against", 0, "SPEC",
                     "run the job a second time on device SPEC (eval: or in precision fp32, "
                     "fp16 or int8) and give the verdict between the two runs, as `cleval "
                     "compare` (its gates apply)"},
    [OPT_SHARD] = {"shard", 0, "I/N",
                   "process only the I-th of N contiguous slices (0 <= I < N); needs --save "
                   "PART.h5, combined by `cleval merge`"},
    [OPT_SHARD_TRAIN] = {"shard-train", 0, NULL,
                         "under mpirun: split the training set across the ranks instead of the "
                         "test set (for training sets too big for one node)"},
    [OPT_CHECKPOINT] = {"checkpoint", 0, "PATH",
                        "save the accumulated state to PATH (atomically) as --checkpoint-every "
                        "says, and when SIGINT, SIGTERM or SIGHUP stops the run; with --save, "
                        "the partial file is PATH_OF_SAVE.partial"},
    [OPT_CHECKPOINT_EVERY] = {"checkpoint-every", 0, "N|TIME",
                              "a checkpoint at the first batch boundary after N samples, or "
                              "after TIME (500ms, 30s, 10m, 1h) since the last one (default "
                              "60s)"},
    [OPT_RESUME] = {"resume", 0, NULL,
                    "continue the run saved in --checkpoint PATH (from the beginning while "
                    "there is none yet, so a requeued job can run the same command; a "
                    "checkpoint that is damaged, fails its checksum or is another job's is "
                    "refused)"},
    [OPT_PROGRESS] = {"progress", 0, "tty|json|none",
                      "progress on stderr: a line when stderr is a terminal (default), JSON "
                      "lines, or nothing"},
    [OPT_PROGRESS_EVERY] = {"progress-every", 0, "N|TIME",
                            "a progress line at the first batch boundary after N samples, or "
                            "after TIME (500ms, 30s, 10m, 1h) since the last one (default "
                            "250ms); the last batch always has one"},
    [OPT_BUDGET] = {"budget", 0, "SECONDS",
                    "tune: time for the candidates, in seconds or with a unit (90s, 2m; "
                    "default 60)"},
    [OPT_TRAIN] = {"train", 0, "TRAIN.h5", "the KNN training set (X and y)"},
    [OPT_K] = {"k", 'k', "K", "neighbours per query, 1 <= K <= training rows"},
    [OPT_WEIGHTS] = {"weights", 0, "uniform|distance",
                     "vote weights: one vote each, or 1/distance (default uniform)"},
    [OPT_METRIC] = {"metric", 0, "euclidean|cosine", "distance (default euclidean)"},
    [OPT_SCORES_KEY] = {"scores-key", 0, "NAME", "dataset holding the scores (default scores)"},
    [OPT_MAX_FLIP_RATE] = {"max-flip-rate", 0, "R", "fail when more than this fraction flips"},
    [OPT_MAX_ACCURACY_DROP] = {"max-accuracy-drop", 0, "D",
                               "fail when accuracy falls by more than D (0.01 = 1 point)"},
    [OPT_ALPHA] = {"alpha", 0, "P", "fail when the test's p-value is below P (default 0.05)"},
    [OPT_MAX_SCORE_DIFF] = {"max-score-diff", 0, "D", "fail when any |score_a - score_b| > D"},
    [OPT_PSI_WARN] = {"psi-warn", 0, "X", "warn when a PSI exceeds X (default 0.1)"},
    [OPT_PSI_ALERT] = {"psi-alert", 0, "X", "alert when a PSI exceeds X (default 0.2)"},
    [OPT_JS_ALERT] = {"js-alert", 0, "X",
                      "alert when a Jensen-Shannon distance exceeds X (default 0.1)"},
    [OPT_MAX_CLASSES] = {"max-classes", 0, "N",
                         "refuse a label of N or more, longer class_names, or a model with more "
                         "outputs, before sizing anything by the class count (default 10000)"},
    [OPT_MIN_ACCURACY] = {"min-accuracy", 0, "X",
                          "gate: exit 1 (after writing the reports) when the accuracy is below X "
                          "(0 <= X <= 1; needs labels)"},
    [OPT_MIN_CLASS_RECALL] = {"min-class-recall", 0, "X",
                              "gate: exit 1 (after writing the reports) when the recall of a "
                              "class with support is below X (0 <= X <= 1; needs labels)"},
    [OPT_JUNIT] = {"junit", 0, "PATH",
                   "write a JUnit XML file to PATH: one testcase per gate, a failed one with "
                   "<failure> giving its value and limit"},
    [OPT_SUMMARY_MD] = {"summary-md", 0, "PATH",
                        "write a Markdown summary to PATH (headline metrics, the gates with "
                        "PASS/FAIL, the per-class table up to 50 classes) for a CI job summary; "
                        "needs labels (compare, drift: the verdict and its gates)"},
    [OPT_TOP_K] = {"top-k", 0, "K",
                   "also report the top-K accuracy from the scores (K >= 1; K >= C gives 1, "
                   "as scikit-learn)"},
    [OPT_HTML] = {"html", 0, "PATH",
                  "write a self-contained HTML report to PATH (summary, gates, charts; no "
                  "script, no network)"},
    [OPT_ERRORS] = {"errors", 0, "N",
                    "error analysis: the first N rows of each most confused pair and, with "
                    "scores, the N most confident wrong and N least confident right predictions "
                    "(1 <= N <= 10000; needs labels; not with --shard or --checkpoint)"},
    [OPT_AUC] = {"auc", 0, "WHEN",
                 "ROC AUC and average precision from the scores (one-vs-rest, macro and "
                 "weighted): auto (up to 100 classes, the default), on or off"},
};

static int find_long(const char *name, size_t len, const cli_option_id *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *candidate = cli_options[allowed[i]].long_name;
        if (strlen(candidate) == len && strncmp(candidate, name, len) == 0) return (int)allowed[i];
    }
    return -1;
}

static int find_short(char c, const cli_option_id *allowed, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cli_options[allowed[i]].short_name == c) return (int)allowed[i];
    return -1;
}

cleval_status cli_parse(int argc, char **argv, int first, const char *command,
                        const cli_option_id *allowed, size_t n_allowed, cli_args *out)
{
    memset(out, 0, sizeof *out);
    out->positional = calloc((size_t)argc + 1, sizeof *out->positional);
    if (!out->positional) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory parsing arguments");
    bool options_done = false;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            out->positional[out->n_positional++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        int id;
        const char *inline_value = NULL;
        if (arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            id = find_long(name, len, allowed, n_allowed);
            if (eq) inline_value = eq + 1;
        } else {
            id = arg[2] == '\0' ? find_short(arg[1], allowed, n_allowed) : -1;
        }
        if (id < 0) {
            cli_args_free(out);
            return cleval_fail(CLEVAL_ERR_USAGE, "%s: unknown flag '%s' (see cleval %s --help)",
                               command, arg, command);
        }
        const cli_option *opt = &cli_options[id];
        const char *value = NULL;
        if (opt->value_name) {
            if (inline_value)
                value = inline_value;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                cli_args_free(out);
                return cleval_fail(CLEVAL_ERR_USAGE, "%s: --%s needs a value (%s)", command,
                                   opt->long_name, opt->value_name);
            }
        } else if (inline_value) {
            cli_args_free(out);
            return cleval_fail(CLEVAL_ERR_USAGE, "%s: --%s takes no value", command,
                               opt->long_name);
        }
        out->present[id] = true;
        out->values[id] = value;
    }
    return CLEVAL_OK;
}

void cli_args_free(cli_args *args)
{
    free(args->positional);
    args->positional = NULL;
    args->n_positional = 0;
}

cleval_status cli_get_positive(const cli_args *args, cli_option_id id, uint64_t fallback,
                               uint64_t *out)
{
    *out = fallback;
    if (!args->present[id]) return CLEVAL_OK;
    const char *text = args->values[id];
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0')
        return cleval_fail(CLEVAL_ERR_USAGE, "--%s: '%s' is not an integer",
                           cli_options[id].long_name, text);
    if (value < 1)
        return cleval_fail(CLEVAL_ERR_USAGE, "--%s: must be at least 1 (got %s)",
                           cli_options[id].long_name, text);
    *out = (uint64_t)value;
    return CLEVAL_OK;
}

cleval_status cli_get_count_or_duration(const cli_args *args, cli_option_id id, uint64_t *count,
                                        double *seconds)
{
    static const struct {
        const char *suffix;
        double seconds; /* 0: a count */
    } units[] = {{"", 0}, {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}};
    *count = 0;
    *seconds = 0;
    if (!args->present[id]) return CLEVAL_OK;
    const char *text = args->values[id], *name = cli_options[id].long_name;
    char *end = (char *)text;
    errno = 0;
    unsigned long long value = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    for (size_t u = 0; end != text && !errno && u < sizeof units / sizeof *units; u++) {
        if (strcmp(end, units[u].suffix) != 0) continue;
        if (value < 1)
            return cleval_fail(CLEVAL_ERR_USAGE, "--%s: must be at least 1 (got %s)", name, text);
        if (units[u].seconds > 0)
            *seconds = (double)value * units[u].seconds;
        else
            *count = value;
        return CLEVAL_OK;
    }
    return cleval_fail(CLEVAL_ERR_USAGE,
                       "--%s: '%s' is neither a sample count nor a duration (500ms, 30s, 10m, "
                       "1h)",
                       name, text);
}

cleval_status cli_get_choice(const cli_args *args, cli_option_id id, const char *const *choices,
                             int fallback, int *out)
{
    *out = fallback;
    if (!args->present[id]) return CLEVAL_OK;
    for (int i = 0; choices[i]; i++)
        if (strcmp(args->values[id], choices[i]) == 0) {
            *out = i;
            return CLEVAL_OK;
        }
    char list[256] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    return cleval_fail(CLEVAL_ERR_USAGE, "--%s: '%s' is not one of %s", cli_options[id].long_name,
                       args->values[id], list);
}

cleval_status cli_get_number(const cli_args *args, cli_option_id id, double fallback, double low,
                             double high, double *out)
{
    *out = fallback;
    if (!args->present[id]) return CLEVAL_OK;
    const char *text = args->values[id];
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno == ERANGE || end == text || *end != '\0' || !isfinite(value))
        return cleval_fail(CLEVAL_ERR_USAGE, "--%s: '%s' is not a number",
                           cli_options[id].long_name, text);
    if (value < low || value > high)
        return cleval_fail(CLEVAL_ERR_USAGE, "--%s: must be between %g and %g (got %s)",
                           cli_options[id].long_name, low, high, text);
    *out = value;
    return CLEVAL_OK;
}

cleval_status cli_get_number_list(const cli_args *args, cli_option_id id, float **values,
                                  uint32_t *count)
{
    *values = NULL;
    *count = 0;
    if (!args->present[id]) return CLEVAL_OK;
    const char *text = args->values[id];
    uint32_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    float *list = malloc(n * sizeof *list);
    if (!list)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading --%s",
                           cli_options[id].long_name);
    const char *p = text;
    for (uint32_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double value = strtod(p, &end);
        bool ok = errno != ERANGE && end != p && (*end == ',' || *end == '\0') && isfinite(value) &&
                  isfinite((float)value);
        if (!ok) {
            free(list);
            return cleval_fail(CLEVAL_ERR_USAGE,
                               "--%s: '%s' is not a comma-separated list of numbers",
                               cli_options[id].long_name, text);
        }
        list[i] = (float)value;
        p = end + 1;
    }
    *values = list;
    *count = n;
    return CLEVAL_OK;
}

cleval_status cli_get_max_classes(const cli_args *args, uint32_t *out)
{
    uint64_t value;
    cleval_status status =
        cli_get_positive(args, OPT_MAX_CLASSES, CLEVAL_DEFAULT_MAX_CLASSES, &value);
    if (status == CLEVAL_OK && value > (uint64_t)INT32_MAX + 1)
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "--max-classes: labels are 32-bit, so at most %llu "
                             "classes (got %s)",
                             (unsigned long long)INT32_MAX + 1, args->values[OPT_MAX_CLASSES]);
    *out = (uint32_t)value;
    return status;
}

cleval_status cli_get_top_k(const cli_args *args, uint32_t *out)
{
    uint64_t value;
    cleval_status status = cli_get_positive(args, OPT_TOP_K, 0, &value);
    *out = value > UINT32_MAX ? UINT32_MAX : (uint32_t)value; /* beyond C: the same result */
    return status;
}

cleval_status cli_get_errors(const cli_args *args, uint32_t *out)
{
    uint64_t value;
    *out = 0;
    cleval_status status = cli_get_positive(args, OPT_ERRORS, 0, &value);
    if (status != CLEVAL_OK) return status;
    if (value > CLEVAL_ERRORS_MAX)
        return cleval_fail(CLEVAL_ERR_USAGE, "--errors: at most %d rows per list (got %s)",
                           CLEVAL_ERRORS_MAX, args->values[OPT_ERRORS]);
    if (value && args->present[OPT_SHARD_TRAIN])
        return cleval_fail(CLEVAL_ERR_USAGE, "--errors does not combine with --shard-train");
    *out = (uint32_t)value;
    return CLEVAL_OK;
}

cleval_status cli_get_auc(const cli_args *args, cleval_auc_mode *out)
{
    static const char *const choices[] = {"auto", "on", "off", NULL};
    static const cleval_auc_mode modes[] = {CLEVAL_AUC_AUTO, CLEVAL_AUC_ON, CLEVAL_AUC_OFF};
    int choice;
    cleval_status status = cli_get_choice(args, OPT_AUC, choices, 0, &choice);
    *out = status == CLEVAL_OK ? modes[choice] : CLEVAL_AUC_AUTO;
    return status;
}

void cli_print_options(const cli_option_id *allowed, size_t n_allowed)
{
    for (size_t i = 0; i < n_allowed; i++) {
        const cli_option *opt = &cli_options[allowed[i]];
        char left[64];
        if (opt->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", opt->short_name, opt->long_name,
                     opt->value_name ? " " : "", opt->value_name ? opt->value_name : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", opt->long_name, opt->value_name ? " " : "",
                     opt->value_name ? opt->value_name : "");
        printf("  %-26s %s\n", left, opt->help);
    }
}
