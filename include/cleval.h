/* cleval: batch evaluation of classification models on OpenCL devices, as a C library.
 *
 * This is the one header a program includes. It declares opaque objects with a create/destroy
 * pair each (destroy(NULL) does nothing), plain option structs with an init function, and
 * functions that return a cleval_status; on failure, cleval_last_error() gives one line naming
 * what went wrong. Reports are the JSON text the command-line tool prints with `--json -`.
 *
 * Example: evaluate an ONNX model on an HDF5 test set and print the JSON report.
 *
 *     cleval_source *test = NULL;
 *     cleval_result *result = NULL;
 *     cleval_options options;
 *     cleval_options_init(&options);
 *     options.device = "cpu";
 *     cleval_status status = cleval_source_create_file("test.h5", NULL, NULL, &test);
 *     if (status == CLEVAL_OK)
 *         status = cleval_run_eval("model.onnx", test, &options, &result);
 *     if (status == CLEVAL_OK)
 *         printf("%s\n", cleval_result_json(result));
 *     else
 *         fprintf(stderr, "%s: %s\n", cleval_status_str(status), cleval_last_error());
 *     cleval_result_destroy(result);
 *     cleval_source_destroy(test);
 *
 * Threads: call the library from one thread at a time (it reads HDF5 files, and most HDF5
 * builds are not thread-safe); the last error is recorded per thread.
 *
 * Ownership: a pointer the library returns is valid until the object it came from is
 * destroyed, unless its function says the caller frees it with cleval_free(). Caller memory
 * passed in is borrowed: it must stay valid as long as the function or object says. */
#ifndef CLEVAL_PUBLIC_H
#define CLEVAL_PUBLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CLEVAL_BUILDING_LIBRARY) && defined(__GNUC__)
#define CLEVAL_API __attribute__((visibility("default")))
#else
#define CLEVAL_API
#endif

/* ---- Version ----------------------------------------------------------------------------- */

#define CLEVAL_VERSION_MAJOR 0
#define CLEVAL_VERSION_MINOR 1
#define CLEVAL_VERSION_PATCH 0
#define CLEVAL_VERSION_STRING "0.1.0"

/* The library's version, "MAJOR.MINOR.PATCH"; may differ from CLEVAL_VERSION_STRING when the
 * program runs with another build of the shared library than it was compiled against. Static
 * string. */
CLEVAL_API const char *cleval_version(void);

/* ---- Status and errors ------------------------------------------------------------------- */

typedef enum cleval_status {
    CLEVAL_OK = 0,              /* success */
    CLEVAL_ERR_USAGE = 1,       /* bad API argument or option */
    CLEVAL_ERR_INPUT = 2,       /* an input file or array, or its contents, is invalid */
    CLEVAL_ERR_UNSUPPORTED = 3, /* valid input that this engine does not handle */
    CLEVAL_ERR_IO = 4,          /* an output file could not be written */
    CLEVAL_ERR_OPENCL = 5,      /* an OpenCL call failed; the message names call and error */
    CLEVAL_ERR_NOMEM = 6,       /* host or device memory allocation failed */
    CLEVAL_ERR_INTERRUPTED = 7, /* stopped on request */
    CLEVAL_ERR_INTERNAL = 8,    /* a broken invariant: a bug in cleval */
} cleval_status;

/* A short English name for a status ("bad input", "OpenCL error", ...). Static string, never
 * NULL. */
CLEVAL_API const char *cleval_status_str(cleval_status status);

/* The one-line message of the calling thread's most recent failure ("" when none). Valid until
 * the next failing call on the same thread. */
CLEVAL_API const char *cleval_last_error(void);

/* Frees memory the library handed over to the caller (cleval_devices_json). NULL is a
 * no-op. */
CLEVAL_API void cleval_free(void *memory);

/* ---- Devices ----------------------------------------------------------------------------- */

/* Every OpenCL device of every platform as a JSON array, the same text as `cleval devices
 * --json -`: [{"index", "platform", "name", "type" ("CPU", "GPU", "accelerator", "other"),
 * "compute_units", "global_mem_bytes", "opencl_c_version"}, ...]. No platform is not an
 * error: "[]". On success *json is a NUL-terminated string the caller frees with
 * cleval_free(); on failure it is NULL. */
CLEVAL_API cleval_status cleval_devices_json(char **json);

/* ---- Arrays in memory -------------------------------------------------------------------- */

/* Element types of caller arrays. */
typedef enum cleval_dtype {
    CLEVAL_DTYPE_INT8 = 0,
    CLEVAL_DTYPE_UINT8 = 1,
    CLEVAL_DTYPE_INT16 = 2,
    CLEVAL_DTYPE_UINT16 = 3,
    CLEVAL_DTYPE_INT32 = 4,
    CLEVAL_DTYPE_UINT32 = 5,
    CLEVAL_DTYPE_INT64 = 6,
    CLEVAL_DTYPE_UINT64 = 7,
    CLEVAL_DTYPE_FLOAT32 = 8,
    CLEVAL_DTYPE_FLOAT64 = 9,
} cleval_dtype;

#define CLEVAL_ARRAY_MAX_RANK 8

/* A C-contiguous (row-major, no gaps) array owned by the caller; shape[0] is the number of
 * samples. Labels, predictions: rank 1, an integer dtype. Scores: rank 2 [N, C], float32 or
 * float64. Features: rank 1 to CLEVAL_ARRAY_MAX_RANK, any dtype. */
typedef struct cleval_array {
    const void *data;
    cleval_dtype dtype;
    uint32_t rank;
    uint64_t shape[CLEVAL_ARRAY_MAX_RANK];
} cleval_array;

/* ---- Data sources ------------------------------------------------------------------------ */

/* A test set (or a KNN training set): samples X and optional labels y, streamed in batches. */
typedef struct cleval_source cleval_source;

/* A source reading the HDF5 file at `path`, datasets `x_key` and `y_key` (NULL: "X" and "y";
 * without y the file gives predictions only, unless y_key was named). The strings are copied;
 * the file is opened and checked by each run that uses the source. */
CLEVAL_API cleval_status cleval_source_create_file(const char *path, const char *x_key,
                                                   const char *y_key, cleval_source **out);

/* A source over caller arrays: `x` [N, ...] and `y` [N] (NULL: no labels). The array
 * descriptions are copied; their data is borrowed, read in batches by each run (never copied
 * whole), and must stay valid and unchanged until the source is destroyed. Fails with
 * CLEVAL_ERR_USAGE on a NULL data pointer, a bad rank or dtype, N == 0 or lengths that
 * differ. */
CLEVAL_API cleval_status cleval_source_create_arrays(const cleval_array *x, const cleval_array *y,
                                                     cleval_source **out);

/* NULL is a no-op. */
CLEVAL_API void cleval_source_destroy(cleval_source *source);

/* ---- Options ----------------------------------------------------------------------------- */

/* What a run does beyond its inputs; the command-line flag each field stands for is named.
 * Fill it with cleval_options_init(), then change fields. Strings are borrowed for the call. */
typedef struct cleval_options {
    const char *device;      /* --device: an index, a piece of a device name, "0,2" or "all";
                                NULL: CLEVAL_DEVICE, else the first GPU, else the first device */
    uint64_t batch;          /* --batch: samples per batch; 0: the command's default */
    uint32_t max_classes;    /* --max-classes; 0: the default (10000) */
    uint32_t top_k;          /* --top-k: the top-k accuracy's k; 0: none */
    double min_accuracy;     /* --min-accuracy gate in [0, 1]; negative: no gate */
    double min_class_recall; /* --min-class-recall gate in [0, 1]; negative: no gate */

    /* cleval_run_eval */
    const char *precision;       /* --precision: "fp32" (NULL means it too), "fp16", "int8" */
    const char *fp16_arithmetic; /* --fp16-arithmetic: "auto" (NULL), "half", "float" */
    uint32_t calibration;        /* --calibration: int8 calibration samples; 0: 512 */
    double prune;                /* --prune: weight sparsity, 0 <= prune < 1 */
    bool allow_nonfinite;        /* --allow-nonfinite: accept NaN/Inf scores */
    float input_scale;           /* --input-scale; 0: none */
    const float *input_mean;     /* --input-mean, n_input_mean values (NULL: none) */
    uint32_t n_input_mean;
    const float *input_std; /* --input-std, n_input_std values (NULL: none) */
    uint32_t n_input_std;
    bool input_nhwc; /* --input-layout nhwc: samples are channels-last */

    /* cleval_run_knn */
    uint32_t k;          /* -k: neighbours per query (required: 0 is refused) */
    const char *weights; /* --weights: "uniform" (NULL) or "distance" */
    const char *metric;  /* --metric: "euclidean" (NULL) or "cosine" */

    /* cleval_run_compare (negative: no gate) */
    double max_flip_rate;     /* --max-flip-rate */
    double max_accuracy_drop; /* --max-accuracy-drop */
    double alpha;             /* --alpha: McNemar gate; default 0.05, dropped without labels */
    double max_score_diff;    /* --max-score-diff */

    /* cleval_run_drift (cleval_options_init sets the CLI defaults) */
    double psi_warn;    /* --psi-warn: 0.1 */
    double psi_alert;   /* --psi-alert: 0.2 */
    double js_alert;    /* --js-alert: 0.1 */
    double drift_alpha; /* --alpha of drift: 0.05 */
} cleval_options;

/* Sets every field to the command-line tool's default (gates off). */
CLEVAL_API void cleval_options_init(cleval_options *options);

/* ---- Results ----------------------------------------------------------------------------- */

/* What a run produced: its JSON report, and for evaluate and knn every sample's prediction and
 * scores. */
typedef struct cleval_result cleval_result;

/* The JSON report, the text the command-line tool writes with --json for the same run (timing
 * values aside), with "gates" and "passed" when a gate was set. Valid until the result is
 * destroyed; never NULL. */
CLEVAL_API const char *cleval_result_json(const cleval_result *result);

/* The predicted class of every sample (int32 [n]), or NULL (n = 0) for metrics, compare and
 * drift. Valid until the result is destroyed. `n` may be NULL. */
CLEVAL_API const int32_t *cleval_result_predictions(const cleval_result *result, uint64_t *n);

/* The scores of every sample (float32 [n][width], row-major: the network's raw outputs, or
 * the KNN vote fractions), or NULL (n = width = 0) where there are none. Valid until the
 * result is destroyed. `n` and `width` may be NULL. */
CLEVAL_API const float *cleval_result_scores(const cleval_result *result, uint64_t *n,
                                             uint32_t *width);

/* Whether every gate passed (true when none was set): the command-line tool exits 1 when
 * not. */
CLEVAL_API bool cleval_result_passed(const cleval_result *result);

/* The verdict of compare ("pass" or "fail") and drift ("ok", "warn" or "alert"); "" for the
 * other runs. Static string. */
CLEVAL_API const char *cleval_result_verdict(const cleval_result *result);

/* NULL is a no-op. */
CLEVAL_API void cleval_result_destroy(cleval_result *result);

/* ---- Runs -------------------------------------------------------------------------------- */
/* Each returns CLEVAL_OK and a new result in *result (the caller destroys it), or a failure
 * status with *result NULL. `options` may be NULL (the defaults). Sources are only read. */

/* `cleval eval`: the network of the ONNX file `model_path` on every sample of `test`. */
CLEVAL_API cleval_status cleval_run_eval(const char *model_path, const cleval_source *test,
                                         const cleval_options *options, cleval_result **result);

/* `cleval knn`: the k-nearest-neighbours baseline, `train` (labels required) against `test`;
 * options->k is required. */
CLEVAL_API cleval_status cleval_run_knn(const cleval_source *train, const cleval_source *test,
                                        const cleval_options *options, cleval_result **result);

/* `cleval metrics`: metrics from labels `y` [N] and predictions `pred` [N] (integers), and
 * with `scores` [N, C] (NULL: none; C above every label) the score-based metrics. Arrays are
 * borrowed for the call. */
CLEVAL_API cleval_status cleval_run_metrics(const cleval_array *y, const cleval_array *pred,
                                            const cleval_array *scores,
                                            const cleval_options *options, cleval_result **result);

/* A saved run in memory: predictions, with optional labels and scores (each NULL or the
 * arrays cleval_run_metrics takes), borrowed for the call. */
typedef struct cleval_predictions {
    const cleval_array *y;      /* [N] labels, or NULL */
    const cleval_array *pred;   /* [N] predictions (required) */
    const cleval_array *scores; /* [N, C] scores, or NULL */
} cleval_predictions;

/* `cleval compare`: migration check of run `b` against baseline `a` (same test set: same
 * length, same y). The result's verdict is "pass" or "fail" (a gate failed). */
CLEVAL_API cleval_status cleval_run_compare(const cleval_predictions *a,
                                            const cleval_predictions *b,
                                            const cleval_options *options, cleval_result **result);

/* `cleval drift`: output-distribution drift of `current` against `reference`. The result's
 * verdict is "ok", "warn" or "alert". */
CLEVAL_API cleval_status cleval_run_drift(const cleval_predictions *reference,
                                          const cleval_predictions *current,
                                          const cleval_options *options, cleval_result **result);

#ifdef __cplusplus
}
#endif

#endif
