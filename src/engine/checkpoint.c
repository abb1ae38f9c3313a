/* Checkpoint files (see checkpoint.h), HDF5: attributes `job`, `row_begin`, `row_end`,
 * `rows_done`, `rows_checksum` (the digest of the rows saved so far) and `checksum`; datasets
 * `counts` int64 [rows, cols], `counters` int64 [1, n] and, for a job with score metrics,
 * `score_sums` int64 [1, 2m]: the bits of cleval_score_sums' m 64-bit words (its doubles'
 * included) as 32-bit halves, high first, since counts are stored signed. Written with the
 * prediction-file writer (atomic) as a state file (statefile.h): a damaged checkpoint is refused.
 */
#include "checkpoint.h"
#include "statefile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"
#include "cleval/predfile.h"

static const char KIND[] = "checkpoint";

/* cleval_score_sums as 64-bit words: every member is a uint64_t or a double. */
enum { SCORE_WORDS = sizeof(cleval_score_sums) / sizeof(uint64_t) };
_Static_assert(sizeof(cleval_score_sums) % sizeof(uint64_t) == 0, "score sums are 64-bit words");

static cleval_status write_score_sums(state_writer *w, const cleval_score_sums *scores)
{
    uint64_t words[SCORE_WORDS], halves[2 * SCORE_WORDS];
    memcpy(words, scores, sizeof words);
    for (size_t i = 0; i < SCORE_WORDS; i++) {
        halves[2 * i] = words[i] >> 32;
        halves[2 * i + 1] = words[i] & 0xffffffffu;
    }
    return state_write_counts(w, "score_sums", 1, 2 * SCORE_WORDS, halves);
}

/* Reads `score_sums` when the job keeps them; false (r->problem set) when missing or of
 * another size. */
static bool read_score_sums(state_reader *r, bool with_scores, cleval_score_sums *out)
{
    if (!with_scores) return true;
    pipeline_counts halves = {0};
    bool ok = state_read_counts(r, "score_sums", &halves.rows, &halves.cols, &halves.cells);
    if (ok && (halves.rows != 1 || halves.cols != 2 * SCORE_WORDS)) {
        snprintf(r->problem, sizeof r->problem, "'score_sums' is %u x %u, not 1 x %u", halves.rows,
                 halves.cols, (unsigned)(2 * SCORE_WORDS));
        ok = false;
    }
    uint64_t words[SCORE_WORDS];
    for (size_t i = 0; ok && i < SCORE_WORDS; i++)
        words[i] = halves.cells[2 * i] << 32 | (halves.cells[2 * i + 1] & 0xffffffffu);
    if (ok) memcpy(out, words, sizeof *out);
    pipeline_counts_free(&halves);
    return ok;
}

cleval_status checkpoint_save(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, const checkpoint_state *state, uint32_t n_counters)
{
    cleval_predfile_spec spec = {.option = "--checkpoint", .finish = state_seal_file};
    cleval_predfile *file;
    cleval_status status = cleval_predfile_create(path, &spec, &file);
    if (status != CLEVAL_OK) return status;
    uint64_t counters[ENGINE_MAX_COUNTERS + 1] = {0};
    memcpy(counters, state->counters, n_counters * sizeof *counters);
    state_writer w;
    state_writer_init(&w, file, KIND);
    if ((status = state_set_text(&w, "job", fingerprint)) ||
        (status = state_set_int(&w, "row_begin", (int64_t)row_begin)) ||
        (status = state_set_int(&w, "row_end", (int64_t)row_end)) ||
        (status = state_set_int(&w, "rows_done", (int64_t)state->rows_done)) ||
        (status = state_set_digest(&w, "rows_checksum", state->rows_digest)) ||
        (status = state_write_count_table(&w, "counts", &state->counts)) ||
        (status = state_write_counts(&w, "counters", 1, n_counters ? n_counters : 1, counters)) ||
        (state->with_scores && (status = write_score_sums(&w, &state->scores))) ||
        (status = state_seal(&w))) {
        cleval_predfile_abort(file);
        return status;
    }
    return cleval_predfile_commit(file);
}

/* Reads everything the checkpoint states and checks its checksum; on failure r->problem says
 * what is wrong. */
static bool read_checkpoint(state_reader *r, const char *path, char *job, size_t job_size,
                            uint64_t *begin, uint64_t *end, checkpoint_state *out,
                            pipeline_counts *counters)
{
    return state_reader_open(r, path, KIND) && state_read_count_table(r, "counts", &out->counts) &&
           state_read_counts(r, "counters", &counters->rows, &counters->cols, &counters->cells) &&
           read_score_sums(r, out->with_scores, &out->scores) && state_reader_verify(r) &&
           cleval_dataset_attribute(r->ds, "job", job, job_size) == CLEVAL_OK &&
           state_read_count(r, "row_begin", begin) && state_read_count(r, "row_end", end) &&
           state_read_count(r, "rows_done", &out->rows_done) &&
           state_read_digest(r, "rows_checksum", &out->rows_digest);
}

/* What a checkpoint of this job must be (checked after its checksum): rows done within the
 * slice, counts of the job's shape adding up to the rows done, its number of counters. */
static bool check_consistent(state_reader *r, uint64_t begin, uint64_t end, uint32_t n_classes,
                             bool labels, uint32_t n_counters, const checkpoint_state *state,
                             const pipeline_counts *counters)
{
    char reason[256];
    const pipeline_counts *counts = &state->counts;
    if (state->rows_done < begin || state->rows_done > end)
        snprintf(reason, sizeof reason, "%" PRIu64 " rows done, outside its slice",
                 state->rows_done);
    else if (counts->rows != (labels ? counts->cols : 1) ||
             (n_classes && counts->cols != n_classes))
        snprintf(reason, sizeof reason, "'counts' is %u x %u, not this job's counts", counts->rows,
                 counts->cols);
    else if (counters->rows != 1 || counters->cols != (n_counters ? n_counters : 1))
        snprintf(reason, sizeof reason, "'counters' is %u x %u where this job keeps %u",
                 counters->rows, counters->cols, n_counters);
    else
        return state_check_total(r, "counts", counts, state->rows_done - begin);
    snprintf(r->problem, sizeof r->problem, "%s", reason);
    return false;
}

cleval_status checkpoint_load(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, uint32_t n_classes, bool labels,
                              uint32_t n_counters, bool with_scores, checkpoint_state *out)
{
    memset(out, 0, sizeof *out);
    out->with_scores = with_scores;
    /* Something that is no file at all (a FIFO, a folder) is not a damaged checkpoint. */
    if (cleval_input_check(path, "a checkpoint") != CLEVAL_OK)
        return cleval_fail(CLEVAL_ERR_INPUT, "--resume: cannot read the checkpoint %s: %s", path,
                           cleval_last_error());
    state_reader r;
    char job[8192];
    uint64_t begin = 0, end = 0;
    pipeline_counts counters = {0};
    cleval_status status = CLEVAL_OK;
    if (!read_checkpoint(&r, path, job, sizeof job, &begin, &end, out, &counters)) {
        status = CLEVAL_ERR_INPUT;
    } else if (strcmp(job, fingerprint) != 0 || begin != row_begin || end != row_end) {
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "--resume: the checkpoint %s belongs to another job (different "
                             "inputs, options or slice)",
                             path);
    } else if (!check_consistent(&r, begin, end, n_classes, labels, n_counters, out, &counters)) {
        status = CLEVAL_ERR_INPUT;
    } else {
        memcpy(out->counters, counters.cells, n_counters * sizeof *counters.cells);
    }
    if (status != CLEVAL_OK && r.problem[0])
        cleval_fail(status,
                    "--resume: the checkpoint %s is damaged (%s): delete it, or run without "
                    "--resume",
                    path, r.problem);
    state_reader_close(&r);
    pipeline_counts_free(&counters);
    if (status != CLEVAL_OK) pipeline_counts_free(&out->counts);
    return status;
}
