/* Network throughput: runs a classifier ONNX model over a whole HDF5 test set at several batch
 * sizes, prints images/s (median of the repeats), accuracy, and the per-layer device time of a
 * profiled pass. bench/bench_nn.py runs it next to PyTorch and onnxruntime on the same data.
 *
 *   bench_nn MODEL.onnx DATA.h5 [--batch 64,256,1024] [--repeat 5] [--variant cpu|gpu]
 *            [--precision fp32,fp16,fp16-half,fp16-float,int8] [--prune S] [--no-profile]
 *
 * fp16 computes in half where the device has cl_khr_fp16; fp16-half and fp16-float pin the
 * arithmetic (cleval_nn_arithmetic), so both can be timed in the same run.
 *
 * Several precisions are timed in interleaved rounds (each repeat runs every network once),
 * so their ratios come from the same machine load; int8 calibrates on the first 512 samples.
 * Lines starting with "RESULT" are for scripts: RESULT <batch> <images/s> <accuracy>
 * <CPU seconds per pass> <precision>; "LAYER" lines give each layer's device seconds and
 * FLOPs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds this process has used (all threads): less sensitive than the wall clock to
 * other processes on a shared machine, since time slices spent elsewhere do not count. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* A network to time: its mode and the name it is reported under. */
typedef struct net_mode {
    cleval_nn_precision precision;
    cleval_nn_arithmetic arithmetic;
    char name[16];
} net_mode;

static net_mode parse_mode(const char *token)
{
    net_mode m = {CLEVAL_NN_FP32, CLEVAL_NN_ARITH_AUTO, ""};
    if (strncmp(token, "fp16", 4) == 0) m.precision = CLEVAL_NN_FP16;
    if (strcmp(token, "int8") == 0) m.precision = CLEVAL_NN_INT8;
    if (strcmp(token, "fp16-half") == 0) m.arithmetic = CLEVAL_NN_ARITH_HALF;
    if (strcmp(token, "fp16-float") == 0) m.arithmetic = CLEVAL_NN_ARITH_FLOAT;
    snprintf(m.name, sizeof m.name, "%s",
             m.arithmetic != CLEVAL_NN_ARITH_AUTO ? token : cleval_nn_precision_name(m.precision));
    return m;
}

/* The network in `mode` (int8: calibrated on the first min(512, n) samples of x). */
static int make_network(cleval_device *dev, const char *model_path, const net_mode *mode,
                        double prune, const float *x, uint64_t n, cleval_nn **out)
{
    cleval_onnx_model *model;
    if (cleval_onnx_load(model_path, &model) != CLEVAL_OK) return 1;
    cleval_nn_precision precision = mode->precision;
    cleval_nn_options options = {
        .precision = precision, .arithmetic = mode->arithmetic, .prune = prune};
    cleval_nn_calibration *calibration = NULL;
    int failed = 0;
    if (precision == CLEVAL_NN_INT8) {
        cleval_nn_options fp32 = {.prune = prune};
        cleval_nn *probe;
        failed =
            cleval_nn_create_with(dev, model, &fp32, &probe) != CLEVAL_OK ||
            cleval_nn_calibrate(probe, x, (uint32_t)(n < 512 ? n : 512), &calibration) != CLEVAL_OK;
        if (!failed) cleval_nn_destroy(probe);
        options.calibration = calibration;
    }
    if (!failed) failed = cleval_nn_create_with(dev, model, &options, out) != CLEVAL_OK;
    cleval_nn_calibration_free(calibration);
    cleval_onnx_free(model);
    return failed;
}

static int die(const char *what)
{
    fprintf(stderr, "bench_nn: %s: %s\n", what, cleval_last_error());
    return 1;
}

static void log_to_stdout(cleval_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    printf("  %s\n", message);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass over all samples in batches; returns seconds, fills pred. */
static int pass(cleval_nn *nn, cleval_device *dev, const float *x, uint64_t n, uint64_t size,
                uint32_t batch, float *scores, int32_t *pred, double *seconds)
{
    uint32_t width = cleval_nn_output_width(nn);
    double start = now();
    for (uint64_t i = 0; i < n; i += batch) {
        uint32_t b = (uint32_t)(n - i < batch ? n - i : batch);
        if (cleval_nn_run(nn, x + i * size, b, scores + i * width) != CLEVAL_OK) return 1;
        if (pred &&
            clEnqueueReadBuffer(cleval_device_queue(dev), cleval_nn_pred_buffer(nn), CL_TRUE, 0,
                                b * sizeof(int32_t), pred + i, 0, NULL, NULL) != CL_SUCCESS)
            return 1;
    }
    if (cleval_device_finish(dev) != CLEVAL_OK) return 1;
    *seconds = now() - start;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_nn MODEL.onnx DATA.h5 [--batch 64,256,1024] [--repeat 5] "
                        "[--variant cpu|gpu] [--precision fp32,fp16,fp16-half,fp16-float,int8] [--prune S] "
                        "[--no-profile]\n");
        return 2;
    }
    const char *model_path = argv[1], *data_path = argv[2], *batches = "64,256,1024";
    const char *variant = NULL, *precisions = "fp32";
    double prune = 0.0;
    int repeat = 5, profile = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batches = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc)
            variant = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precisions = argv[++i];
        else if (strcmp(argv[i], "--prune") == 0 && i + 1 < argc)
            prune = atof(argv[++i]);
        else if (strcmp(argv[i], "--no-profile") == 0)
            profile = 0;
        else {
            fprintf(stderr, "bench_nn: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;

    cleval_dataset *ds;
    cleval_column *xc, *yc = NULL;
    if (cleval_dataset_open(data_path, &ds) != CLEVAL_OK) return die("open data");
    if (cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &xc) != CLEVAL_OK) return die("X");
    if (cleval_dataset_has(ds, "y") &&
        cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &yc) != CLEVAL_OK)
        return die("y");
    uint64_t n = cleval_column_rows(xc), size = cleval_column_row_size(xc);
    float *x = malloc(n * size * sizeof *x);
    int32_t *y = yc ? malloc(n * sizeof *y) : NULL;
    if (!x || (yc && !y)) return die("memory");
    if (cleval_column_read_f32(xc, 0, n, x) != CLEVAL_OK) return die("read X");
    if (yc && cleval_column_read_i32(yc, 0, n, y, NULL) != CLEVAL_OK) return die("read y");

    uint32_t index;
    cleval_device *dev;
    if (cleval_device_resolve(NULL, &index) != CLEVAL_OK ||
        cleval_device_open(index, &dev) != CLEVAL_OK)
        return die("device");
    if (variant)
        cleval_device_set_variant(dev, strcmp(variant, "gpu") == 0 ? CLEVAL_VARIANT_GPU
                                                                   : CLEVAL_VARIANT_CPU);
    enum { MAX_NETS = 4 };
    cleval_nn *nets[MAX_NETS];
    net_mode modes[MAX_NETS];
    int n_nets = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", precisions);
    for (char *tok = strtok(list, ","); tok && n_nets < MAX_NETS; tok = strtok(NULL, ",")) {
        modes[n_nets] = parse_mode(tok);
        double t0 = now();
        if (make_network(dev, model_path, &modes[n_nets], prune, x, n, &nets[n_nets]))
            return die("create network");
        if (cleval_nn_input_size(nets[n_nets]) != size) {
            fprintf(stderr, "bench_nn: X has %llu values per sample, the model takes %llu\n",
                    (unsigned long long)size,
                    (unsigned long long)cleval_nn_input_size(nets[n_nets]));
            return 2;
        }
        cleval_nn_model_info info;
        cleval_nn_model_info_get(nets[n_nets], &info);
        printf("device: %s, %s-style kernels; model %s, %s, %s arithmetic (created in %.3f s, "
               "%llu bytes of parameters); %llu samples\n",
               cleval_device_get_info(dev)->name, cleval_variant_name(cleval_device_variant(dev)),
               model_path, modes[n_nets].name, info.half_arithmetic ? "half" : "float",
               now() - t0,
               (unsigned long long)info.size_bytes, (unsigned long long)n);
        n_nets++;
    }
    uint32_t width = cleval_nn_output_width(nets[0]);
    float *scores = malloc(n * width * sizeof *scores);
    int32_t *pred = malloc(n * sizeof *pred);
    if (!scores || !pred) return die("memory");

    double *times = malloc((size_t)repeat * MAX_NETS * sizeof *times);
    double cpu[MAX_NETS];
    uint64_t correct[MAX_NETS];
    snprintf(list, sizeof list, "%s", batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t batch = (uint32_t)atoi(tok);
        if (batch < 1) continue;
        for (int p = 0; p < n_nets; p++) {
            double warm;
            if (pass(nets[p], dev, x, n < batch * 2ull ? n : batch * 2ull, size, batch, scores,
                     NULL, &warm))
                return die("warm-up");
            cpu[p] = 0;
            correct[p] = 0;
        }
        for (int r = 0; r < repeat; r++)
            for (int p = 0; p < n_nets; p++) {
                double cpu0 = cpu_seconds();
                if (pass(nets[p], dev, x, n, size, batch, scores, r == 0 ? pred : NULL,
                         &times[p * repeat + r]))
                    return die("run");
                cpu[p] += cpu_seconds() - cpu0;
                for (uint64_t i = 0; r == 0 && y && i < n; i++)
                    correct[p] += pred[i] == y[i];
            }
        for (int p = 0; p < n_nets; p++) {
            double *t = times + p * repeat;
            qsort(t, (size_t)repeat, sizeof *t, compare_double);
            double median = t[repeat / 2];
            double accuracy = y ? (double)correct[p] / (double)n : -1.0;
            const char *name = modes[p].name;
            printf("batch %5u %s: %9.0f images/s (median of %d, best %.0f), accuracy %.4f, "
                   "%.3f CPU s per pass\n",
                   batch, name, (double)n / median, repeat, (double)n / t[0], accuracy,
                   cpu[p] / repeat);
            printf("RESULT %u %.1f %.6f %.4f %s\n", batch, (double)n / median, accuracy,
                   cpu[p] / repeat, name);
        }
        fflush(stdout);
    }

    if (profile) {
        snprintf(list, sizeof list, "%s", batches);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
            uint32_t batch = (uint32_t)atoi(tok);
            if (batch < 1) continue;
            for (int p = 0; p < n_nets; p++) {
                cleval_nn_destroy(nets[p]);
                if (make_network(dev, model_path, &modes[p], prune, x, n, &nets[p]))
                    return die("create network");
                double unused;
                if (cleval_nn_set_profiling(nets[p], true) != CLEVAL_OK) return die("profile");
                for (int r = 0; r < repeat; r++)
                    if (pass(nets[p], dev, x, n, size, batch, scores, NULL, &unused))
                        return die("profile");
                printf("per-layer device time, %s, batch %u, %llu images x %d profiled passes:\n",
                       modes[p].name, batch, (unsigned long long)n, repeat);
                cleval_log_set(log_to_stdout, CLEVAL_LOG_INFO, NULL);
                cleval_nn_log_profile(nets[p]);
                cleval_log_set(NULL, CLEVAL_LOG_ERROR, NULL);
                for (uint32_t i = 0; i < cleval_nn_layer_count(nets[p]); i++) {
                    const cleval_nn_layer *l = cleval_nn_layer_at(nets[p], i);
                    printf("LAYER %u %s|%s|%s|%.6f|%.3e\n", batch, l->name, l->op, l->kernel,
                           l->seconds, l->flops);
                }
            }
        }
    }
    for (int p = 0; p < n_nets; p++)
        cleval_nn_destroy(nets[p]);
    cleval_device_close(dev);
    cleval_column_close(xc);
    cleval_column_close(yc);
    cleval_dataset_close(ds);
    free(times);
    free(x);
    free(y);
    free(scores);
    free(pred);
    return 0;
}
