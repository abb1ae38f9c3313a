/* Times the device confusion-matrix reduction on (y, pred) pairs already in device-visible
 * memory, next to a single-threaded C loop and the machine's streaming-read bandwidth over the
 * same arrays (two threads summing them). Prints one JSON object; bench/bench_metrics.py runs
 * it beside scikit-learn and numpy on the same file.
 *   bench_histogram FILE.h5 [--repeat R] [--threads T]
 *   bench_histogram --random N C [--repeat R] [--threads T]   (pairs made here: y uniform,
 *                                                              pred = y 70% of the time) */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/device.h"
#include "cleval/engine.h"
#include "cleval/histogram.h"

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

typedef struct sum_task {
    const int32_t *a, *b;
    size_t begin, end;
    int64_t sum;
} sum_task;

static void *sum_range(void *arg)
{
    sum_task *t = arg;
    int64_t sum = 0;
    for (size_t i = t->begin; i < t->end; i++)
        sum += t->a[i] + t->b[i];
    t->sum = sum;
    return NULL;
}

/* Seconds for `threads` threads to read both arrays once. */
static double time_stream_read(const int32_t *a, const int32_t *b, size_t n, int threads,
                               int64_t *checksum)
{
    pthread_t ids[64];
    sum_task tasks[64];
    double start = cleval_seconds();
    for (int t = 0; t < threads; t++) {
        tasks[t] = (sum_task){a, b, n * (size_t)t / (size_t)threads,
                              n * (size_t)(t + 1) / (size_t)threads, 0};
        pthread_create(&ids[t], NULL, sum_range, &tasks[t]);
    }
    *checksum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        *checksum += tasks[t].sum;
    }
    return cleval_seconds() - start;
}

static void c_loop(const int32_t *y, const int32_t *pred, size_t n, uint32_t c, uint64_t *counts)
{
    memset(counts, 0, (size_t)c * c * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        counts[(size_t)y[i] * c + (size_t)pred[i]]++;
}

/* y uniform over the classes, pred equal to y 70% of the time (a fixed-seed generator). */
static void fill_random(int32_t *y, int32_t *pred, size_t n, uint32_t classes)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (int32_t)((s >> 33) % classes);
        pred[i] = (s >> 20) % 10 < 7 ? y[i] : (int32_t)((s >> 45) % classes);
    }
}

static int fail(cleval_status status)
{
    fprintf(stderr, "bench_histogram: %s\n", cleval_last_error());
    return (int)status;
}

int main(int argc, char **argv)
{
    bool random = argc >= 4 && strcmp(argv[1], "--random") == 0;
    if (argc < 2 || (strcmp(argv[1], "--random") == 0 && !random)) {
        fprintf(stderr, "usage: bench_histogram FILE.h5|--random N C [--repeat R] [--threads T]\n");
        return 2;
    }
    int repeat = 5, threads = 2;
    for (int i = random ? 4 : 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--repeat") == 0) repeat = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    }
    repeat = repeat < 1 ? 1 : repeat > 64 ? 64 : repeat;
    threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;

    cleval_status status;
    uint32_t index;
    cleval_device *dev;
    if ((status = cleval_device_resolve(NULL, &index)) || (status = cleval_device_open(index, &dev)))
        return fail(status);
    cleval_dataset *ds = NULL;
    cleval_column *yc = NULL, *pc = NULL;
    size_t n = random ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    if (!random) {
        if ((status = cleval_dataset_open(argv[1], &ds)) ||
            (status = cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &yc)) ||
            (status = cleval_column_open(ds, "pred", CLEVAL_COLUMN_LABELS, &pc)))
            return fail(status);
        n = (size_t)cleval_column_rows(yc);
    }
    cleval_hostbuf ybuf, pbuf;
    int32_t max_y, max_p;
    if ((status = cleval_hostbuf_create(dev, n * 4, "y", &ybuf)) ||
        (status = cleval_hostbuf_create(dev, n * 4, "pred", &pbuf)) ||
        (status = cleval_hostbuf_map(dev, &ybuf, true)) ||
        (status = cleval_hostbuf_map(dev, &pbuf, true)))
        return fail(status);
    if (random) {
        uint32_t classes = (uint32_t)strtoul(argv[3], NULL, 10);
        fill_random(ybuf.host, pbuf.host, n, classes ? classes : 10);
        max_y = max_p = (int32_t)(classes ? classes : 10) - 1;
    } else if ((status = cleval_column_read_i32(yc, 0, n, ybuf.host, &max_y)) ||
               (status = cleval_column_read_i32(pc, 0, n, pbuf.host, &max_p))) {
        return fail(status);
    }
    uint32_t c = (uint32_t)(max_y > max_p ? max_y : max_p) + 1;
    const int32_t *y = ybuf.host, *pred = pbuf.host;

    uint64_t *reference = malloc((size_t)c * c * sizeof *reference);
    uint64_t *counts = malloc((size_t)c * c * sizeof *counts);
    double t_loop[64], t_read[64], t_device[64];
    int64_t checksum = 0;
    for (int r = 0; r < repeat; r++) {
        double start = cleval_seconds();
        c_loop(y, pred, n, c, reference);
        t_loop[r] = cleval_seconds() - start;
        t_read[r] = time_stream_read(y, pred, n, threads, &checksum);
    }
    if ((status = cleval_hostbuf_unmap(dev, &ybuf)) || (status = cleval_hostbuf_unmap(dev, &pbuf)))
        return fail(status);

    /* One warm-up builds the kernel; each timed run creates, fills and reads a histogram. */
    const char *path_name = "";
    for (int r = -1; r < repeat; r++) {
        cleval_histogram *hist;
        double start = cleval_seconds();
        if ((status = cleval_histogram_create(dev, c, c, &hist)) ||
            (status = cleval_histogram_add(hist, ybuf.mem, pbuf.mem, n)) ||
            (status = cleval_histogram_read(hist, counts)))
            return fail(status);
        if (r >= 0) t_device[r] = cleval_seconds() - start;
        path_name = cleval_histogram_path_name(cleval_histogram_get_path(hist));
        cleval_histogram_destroy(hist);
    }
    int identical = memcmp(counts, reference, (size_t)c * c * sizeof *counts) == 0;
    double bytes = (double)n * 2 * sizeof(int32_t);
    double device_s = median(t_device, repeat), loop_s = median(t_loop, repeat);
    double read_s = median(t_read, repeat);
    printf("{\"n\": %zu, \"classes\": %u, \"path\": \"%s\", \"device\": \"%s\", "
           "\"device_s\": %.6f, \"c_loop_s\": %.6f, \"stream_read_s\": %.6f, "
           "\"stream_read_gbs\": %.3f, \"device_gbs\": %.3f, \"identical_to_c_loop\": %s, "
           "\"checksum\": %lld}\n",
           n, c, path_name, cleval_device_get_info(dev)->name, device_s, loop_s, read_s,
           bytes / read_s / 1e9, bytes / device_s / 1e9, identical ? "true" : "false",
           (long long)checksum);
    free(reference);
    free(counts);
    cleval_hostbuf_release(&ybuf);
    cleval_hostbuf_release(&pbuf);
    cleval_column_close(yc);
    cleval_column_close(pc);
    cleval_dataset_close(ds);
    cleval_device_close(dev);
    return identical ? 0 : 1;
}
