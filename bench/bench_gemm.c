/* Matrix-multiply throughput of one general graph (a single Gemm or MatMul, written by
 * bench/bench_gemm.py): runs it on random inputs with profiling on and prints the device
 * seconds of its kernels per run (the median over the repeats) and the GFLOP/s they reach,
 * and the wall and CPU seconds of a whole cleval_nn_run_graph() call (inputs copied in, every
 * kernel enqueued and run, the output copied back). CPU seconds (all of the process's threads)
 * do not count time slices spent on other processes, so on a shared machine they are the
 * steadier measure of the work a run costs.
 *
 *   bench_gemm MODEL.onnx [--repeat 7] [--variant cpu|gpu]
 *
 * Output for scripts: "RESULT <flops per run> <median device seconds> <GFLOP/s> <median wall
 * seconds> <median CPU seconds> <kernel>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cleval/device.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The device seconds and FLOPs of every layer so far. */
static void totals(const cleval_nn *nn, double *seconds, double *flops)
{
    *seconds = *flops = 0;
    for (uint32_t i = 0; i < cleval_nn_layer_count(nn); i++) {
        *seconds += cleval_nn_layer_at(nn, i)->seconds;
        *flops += cleval_nn_layer_at(nn, i)->flops;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gemm MODEL.onnx [--repeat N] [--variant cpu|gpu]\n");
        return 2;
    }
    int repeat = 7;
    const char *variant = "cpu";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--repeat") == 0) repeat = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--variant") == 0) variant = argv[i + 1];
    }
    if (repeat < 1 || repeat > 1000) repeat = 7;
    cleval_onnx_model *model = NULL;
    cleval_device *dev = NULL;
    cleval_nn *nn = NULL;
    cleval_nn_tensor inputs[4], outputs[4];
    uint32_t n_in = 0;
    double *runs = calloc((size_t)repeat, sizeof *runs);
    double *walls = calloc((size_t)repeat, sizeof *walls);
    double *cpus = calloc((size_t)repeat, sizeof *cpus);
    int rc = 1;
    if (!runs || !walls || !cpus || cleval_onnx_load(argv[1], &model) != CLEVAL_OK ||
        cleval_device_open(0, &dev) != CLEVAL_OK)
        goto done;
    cleval_device_set_variant(dev, strcmp(variant, "gpu") == 0 ? CLEVAL_VARIANT_GPU
                                                               : CLEVAL_VARIANT_CPU);
    cleval_nn_options options = {.general = true};
    if (cleval_nn_create_with(dev, model, &options, &nn) != CLEVAL_OK) goto done;
    n_in = cleval_nn_graph_input_count(nn);
    if (n_in > 4 || cleval_nn_graph_output_count(nn) != 1) goto done;
    /* Random inputs of the shapes the file declares (the graph has fixed shapes). */
    srand(1);
    for (uint32_t i = 0; i < n_in; i++) {
        const cleval_onnx_value *v = NULL;
        for (uint32_t j = 0; j < model->n_inputs; j++)
            if (strcmp(model->inputs[j].name, cleval_nn_graph_input_name(nn, i)) == 0)
                v = &model->inputs[j];
        if (!v) goto done;
        inputs[i] = (cleval_nn_tensor){.rank = v->rank};
        size_t count = 1;
        for (uint32_t d = 0; d < v->rank; d++)
            count *= (size_t)(inputs[i].dims[d] = v->dims[d]);
        inputs[i].data = malloc(count * sizeof(float));
        if (!inputs[i].data) goto done;
        for (size_t e = 0; e < count; e++)
            inputs[i].data[e] = (float)rand() / (float)RAND_MAX - 0.5f;
    }
    /* One run to compile every kernel, then the timed runs. */
    if (cleval_nn_run_graph(nn, inputs, outputs) != CLEVAL_OK) goto done;
    free(outputs[0].data);
    if (cleval_nn_set_profiling(nn, true) != CLEVAL_OK) goto done;
    double flops = 0, before, after, f_before, f_after;
    for (int r = 0; r < repeat; r++) {
        totals(nn, &before, &f_before);
        double t0 = now(), c0 = cpu_seconds();
        if (cleval_nn_run_graph(nn, inputs, outputs) != CLEVAL_OK) goto done;
        walls[r] = now() - t0;
        cpus[r] = cpu_seconds() - c0;
        free(outputs[0].data);
        totals(nn, &after, &f_after);
        runs[r] = after - before;
        flops = f_after - f_before; /* the totals also count the untimed first run */
    }
    qsort(runs, (size_t)repeat, sizeof *runs, compare_double);
    qsort(walls, (size_t)repeat, sizeof *walls, compare_double);
    qsort(cpus, (size_t)repeat, sizeof *cpus, compare_double);
    double median = runs[repeat / 2];
    const cleval_nn_layer *first = cleval_nn_layer_count(nn) ? cleval_nn_layer_at(nn, 0) : NULL;
    printf("RESULT %.0f %.6f %.2f %.6f %.6f %s\n", flops, median, flops / median * 1e-9,
           walls[repeat / 2], cpus[repeat / 2], first ? first->kernel : "-");
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench_gemm: %s\n", cleval_last_error());
    for (uint32_t i = 0; i < n_in; i++)
        free(inputs[i].data);
    cleval_nn_destroy(nn);
    cleval_device_close(dev);
    cleval_onnx_free(model);
    free(runs);
    free(walls);
    free(cpus);
    return rc;
}
