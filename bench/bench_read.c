/* Reading alone: every row of X (in its stored type) and y of a data file, in batches, through
 * the dataset module as the pipeline's reading thread does, with no device. Prints one JSON
 * object: the median wall and CPU seconds (all threads) of the reads over the repeats, the
 * file's opening not counted, rows and decoded megabytes per wall second, and how many
 * compressed chunks cleval inflated itself (CLEVAL_INFLATE_THREADS sets its threads).
 *   bench_read FILE.h5 [--batch B] [--repeat R]          (defaults 256 and 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleval/dataset.h"

static double clock_seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/* The narrowest type X's values fit, so nothing is converted (uint8 images stay bytes). */
static cleval_elem_type stored_type(const cleval_column *x)
{
    static const cleval_elem_type integers[] = {CLEVAL_ELEM_U8,  CLEVAL_ELEM_I8,  CLEVAL_ELEM_U16,
                                                CLEVAL_ELEM_I16, CLEVAL_ELEM_I32, CLEVAL_ELEM_I64};
    for (size_t i = 0; cleval_column_is_integer(x) && i < 6; i++)
        if (cleval_column_fits(x, integers[i])) return integers[i];
    return CLEVAL_ELEM_F32;
}

typedef struct pass {
    double wall, cpu;
    uint64_t rows, bytes, chunks;
} pass;

/* One pass over the file; false (the message printed) on failure. */
static bool read_all(const char *path, uint64_t batch, pass *p)
{
    cleval_dataset *ds = NULL;
    cleval_column *x = NULL, *y = NULL;
    void *values = NULL;
    int32_t *labels = NULL;
    bool ok = cleval_dataset_open(path, &ds) == CLEVAL_OK &&
              cleval_column_open(ds, "X", CLEVAL_COLUMN_FEATURES, &x) == CLEVAL_OK &&
              cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &y) == CLEVAL_OK;
    cleval_elem_type type = ok ? stored_type(x) : CLEVAL_ELEM_F32;
    size_t row_bytes = ok ? (size_t)cleval_column_row_size(x) * cleval_column_elem_size(type) : 0;
    ok = ok && (values = malloc(batch * row_bytes)) && (labels = malloc(batch * sizeof *labels));
    p->rows = ok ? cleval_column_rows(x) : 0;
    double wall = clock_seconds(CLOCK_MONOTONIC), cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (uint64_t row0 = 0; ok && row0 < p->rows; row0 += batch) {
        uint64_t n = p->rows - row0 < batch ? p->rows - row0 : batch;
        int32_t max;
        ok = cleval_column_read_as(x, row0, n, type, values) == CLEVAL_OK &&
             cleval_column_read_i32(y, row0, n, labels, &max) == CLEVAL_OK;
    }
    p->wall = clock_seconds(CLOCK_MONOTONIC) - wall;
    p->cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    p->bytes = p->rows * row_bytes;
    p->chunks = ok ? cleval_column_chunks_inflated(x) + cleval_column_chunks_inflated(y) : 0;
    if (!ok) fprintf(stderr, "bench_read: %s\n", cleval_last_error());
    free(values);
    free(labels);
    cleval_column_close(x);
    cleval_column_close(y);
    cleval_dataset_close(ds);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_read FILE.h5 [--batch B] [--repeat R]\n");
        return 2;
    }
    uint64_t batch = 256;
    int repeat = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
    }
    if (batch == 0 || repeat < 1 || repeat > 100) {
        fprintf(stderr, "bench_read: --batch must be positive and --repeat 1 to 100\n");
        return 2;
    }
    double walls[100], cpus[100];
    pass p = {0};
    for (int r = 0; r < repeat; r++) {
        if (!read_all(argv[1], batch, &p)) return 2;
        walls[r] = p.wall;
        cpus[r] = p.cpu;
    }
    double wall = median_of(walls, repeat), cpu = median_of(cpus, repeat);
    const char *threads = getenv("CLEVAL_INFLATE_THREADS");
    printf("{\"file\": \"%s\", \"rows\": %llu, \"batch\": %llu, \"threads\": \"%s\", "
           "\"median_s\": %.4f, \"median_cpu_s\": %.4f, \"rows_per_s\": %.0f, "
           "\"decoded_mb_per_s\": %.1f, \"chunks_inflated_by_cleval\": %llu}\n",
           argv[1], (unsigned long long)p.rows, (unsigned long long)batch,
           threads ? threads : "default", wall, cpu, (double)p.rows / wall,
           (double)p.bytes / wall / 1e6, (unsigned long long)p.chunks);
    return 0;
}
