/* Opening and checking the test set that `eval` and `knn` stream. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cleval_status engine_open_data(const char *path, cleval_dataset *given, uint32_t max_classes,
                               cleval_dataset **ds)
{
    cleval_status status = CLEVAL_OK;
    if (given)
        *ds = cleval_dataset_share(given);
    else
        status = cleval_dataset_open(path, ds);
    if (status == CLEVAL_OK) cleval_dataset_limit_classes(*ds, max_classes);
    return status;
}

cleval_status engine_open_test_set(const cleval_test_set *test, uint32_t max_classes,
                                   engine_test_stream *s)
{
    memset(s, 0, sizeof *s);
    const char *x_key = test->x_key ? test->x_key : "X";
    const char *y_key = test->y_key ? test->y_key : "y";
    cleval_status status;
    if ((status = engine_open_data(test->data_path, test->data, max_classes, &s->ds)) ||
        (status = cleval_column_open(s->ds, x_key, CLEVAL_COLUMN_FEATURES, &s->x)))
        goto fail;
    s->n = cleval_column_rows(s->x);
    if (s->n == 0) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", test->data_path, x_key);
        goto fail;
    }
    if (cleval_dataset_has(s->ds, y_key)) {
        if ((status = cleval_column_open(s->ds, y_key, CLEVAL_COLUMN_LABELS, &s->y))) goto fail;
        if (cleval_column_rows(s->y) != s->n) {
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' has %llu samples but '%s' has %llu",
                                 test->data_path, x_key, (unsigned long long)s->n, y_key,
                                 (unsigned long long)cleval_column_rows(s->y));
            goto fail;
        }
    } else if (test->y_key) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: no dataset '%s'", test->data_path, y_key);
        goto fail;
    }
    return CLEVAL_OK;
fail:
    engine_close_test_set(s);
    return status;
}

void engine_close_test_set(engine_test_stream *s)
{
    cleval_column_close(s->x);
    cleval_column_close(s->y);
    cleval_dataset_close(s->ds);
    memset(s, 0, sizeof *s);
}

void engine_format_shape(char *out, size_t size, uint32_t rank, const uint64_t *shape)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (uint32_t d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)shape[d]);
    if (used < size) snprintf(out + used, size - used, "]");
}

cleval_status engine_check_sample_shape(const engine_test_stream *s, uint32_t rank,
                                        const uint64_t *shape, const char *expected_from)
{
    uint32_t got_rank = cleval_column_row_rank(s->x);
    const uint64_t *got = cleval_column_row_shape(s->x);
    bool same = got_rank == rank;
    for (uint32_t d = 0; same && d < rank; d++)
        same = got[d] == shape[d];
    if (same) return CLEVAL_OK;
    char a[128], b[128];
    engine_format_shape(a, sizeof a, got_rank, got);
    engine_format_shape(b, sizeof b, rank, shape);
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' samples have shape %s but %s expects %s",
                       cleval_dataset_path(s->ds), cleval_column_name(s->x), a, expected_from, b);
}

cleval_status engine_scan_labels(engine_test_stream *s, int32_t *max_label)
{
    *max_label = -1;
    if (!s->y) return CLEVAL_OK;
    const uint64_t chunk = 1 << 20;
    int32_t *labels = malloc((s->n < chunk ? s->n : chunk) * sizeof *labels);
    if (!labels)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory scanning '%s'",
                           cleval_dataset_path(s->ds), cleval_column_name(s->y));
    cleval_status status = CLEVAL_OK;
    for (uint64_t row0 = 0; row0 < s->n && status == CLEVAL_OK; row0 += chunk) {
        uint64_t count = s->n - row0 < chunk ? s->n - row0 : chunk;
        int32_t max;
        status = cleval_column_read_i32(s->y, row0, count, labels, &max);
        *max_label = max > *max_label ? max : *max_label;
    }
    free(labels);
    return status;
}
