/* Checkpoint files (see checkpoint.h), HDF5: attributes `job`, `row_begin`, `row_end`,
 * `rows_done`; datasets `counts` int64 [rows, cols] and `counters` int64 [1, n]. Written with
 * the prediction-file writer (atomic), read back with the dataset module. */
#include "checkpoint.h"
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/predfile.h"

cleval_status checkpoint_save(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, const checkpoint_state *state,
                              uint32_t n_counters)
{
    cleval_predfile_spec spec = {.flag = "--checkpoint"};
    cleval_predfile *file;
    cleval_status status = cleval_predfile_create(path, &spec, &file);
    if (status != CLEVAL_OK) return status;
    uint64_t counters[ENGINE_MAX_COUNTERS + 1] = {0};
    memcpy(counters, state->counters, n_counters * sizeof *counters);
    if ((status = cleval_predfile_set_attribute(file, "job", fingerprint)) ||
        (status = cleval_predfile_set_int_attribute(file, "row_begin", (int64_t)row_begin)) ||
        (status = cleval_predfile_set_int_attribute(file, "row_end", (int64_t)row_end)) ||
        (status = cleval_predfile_set_int_attribute(file, "rows_done",
                                                    (int64_t)state->rows_done)) ||
        (status = cleval_predfile_write_counts(file, "counts", state->counts.rows,
                                               state->counts.cols, state->counts.cells)) ||
        (status = cleval_predfile_write_counts(file, "counters", 1, n_counters ? n_counters : 1,
                                               counters))) {
        cleval_predfile_abort(file);
        return status;
    }
    return cleval_predfile_commit(file);
}

cleval_status checkpoint_load(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, uint32_t n_counters, checkpoint_state *out)
{
    memset(out, 0, sizeof *out);
    cleval_dataset *ds;
    if (cleval_dataset_open(path, &ds) != CLEVAL_OK)
        return cleval_fail(CLEVAL_ERR_INPUT, "--resume: cannot read the checkpoint %s: %s", path,
                           cleval_last_error());
    cleval_status status = CLEVAL_OK;
    char job[8192];
    uint64_t begin = 0, end = 0, done = 0;
    uint32_t counter_rows = 0, counter_cols = 0;
    uint64_t *counters = NULL;
    if (cleval_dataset_attribute(ds, "job", job, sizeof job) != CLEVAL_OK ||
        !engine_read_count(ds, "row_begin", &begin) || !engine_read_count(ds, "row_end", &end) ||
        !engine_read_count(ds, "rows_done", &done) ||
        cleval_dataset_read_counts(ds, "counts", &out->counts.rows, &out->counts.cols,
                                   &out->counts.cells) != CLEVAL_OK ||
        cleval_dataset_read_counts(ds, "counters", &counter_rows, &counter_cols, &counters) !=
            CLEVAL_OK) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "--resume: %s is not a cleval checkpoint", path);
    } else if (strcmp(job, fingerprint) != 0 || begin != row_begin || end != row_end) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "--resume: the checkpoint %s belongs to another job (different "
                             "inputs, options or slice)",
                             path);
    } else if (done < begin || done > end || (n_counters && counter_cols != n_counters) ||
               (out->counts.rows != 1 && out->counts.rows != out->counts.cols)) {
        /* counts: C x C with labels, 1 x C without */
        status = cleval_fail(CLEVAL_ERR_INPUT, "--resume: the checkpoint %s is inconsistent", path);
    } else {
        out->rows_done = done;
        memcpy(out->counters, counters, n_counters * sizeof *counters);
    }
    free(counters);
    cleval_dataset_close(ds);
    if (status != CLEVAL_OK) pipeline_counts_free(&out->counts);
    return status;
}
