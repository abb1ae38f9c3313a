/* Checkpoint files: the exact counts and job counters of every row before `rows_done`, with
 * the job's fingerprint and slice, written atomically (temporary name, then rename). */
#ifndef CLEVAL_ENGINE_CHECKPOINT_H
#define CLEVAL_ENGINE_CHECKPOINT_H

#include "engine_internal.h"

typedef struct checkpoint_state {
    uint64_t rows_done;
    uint64_t rows_digest; /* state_rows_digest() of the rows saved so far (0: none) */
    pipeline_counts counts;
    uint64_t counters[ENGINE_MAX_COUNTERS];
    bool with_scores;         /* the job reduces score metrics: `scores` is kept */
    cleval_score_sums scores; /* their sums over the rows done */
} checkpoint_state;

cleval_status checkpoint_save(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, const checkpoint_state *state,
                              uint32_t n_counters);

/* Loads a checkpoint and checks its checksum, that it belongs to this job and slice, and that
 * its counts are this job's: n_classes columns (0: any, metrics), C x C with labels, 1 x C
 * without, adding up to the rows done; with_scores: the score sums too. Fails with CLEVAL_ERR_INPUT and one line saying what to
 * do. */
cleval_status checkpoint_load(const char *path, const char *fingerprint, uint64_t row_begin,
                              uint64_t row_end, uint32_t n_classes, bool labels,
                              uint32_t n_counters, bool with_scores, checkpoint_state *out);

#endif
