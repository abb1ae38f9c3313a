/* libFuzzer target: HDF5 file bytes as a checkpoint (checkpoint_load, as --resume loads it) and
 * as slice 1 of a two-slice job (cleval_engine_merge with the job's slice 0 from
 * fuzz/statefile_siblings/, writing the whole file as merge --save does).
 *
 * A state file's two checksums (statefile.h) would refuse nearly every changed input before
 * the loaders look at what it states, so before each load this target repairs them the way a
 * forger would: it reads the file as the loader sums it, writes the right sum over the stored
 * `checksum` attribute's 16 hex digits in the bytes, and seals the bytes again when they were
 * sealed. The loaders' checks after the checksum (slices, shapes, totals, rows against their
 * digest) then see the fuzzer's changes. Inputs whose checksum cannot be found go as they are. */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cleval/engine.h"
#include "fuzz_input.h"
#include "statefile.h"

/* The seal statefile.c appends: this text, then 16 hex digits of FNV-1a 64. */
static const char SEAL_MAGIC[] = "\ncleval-fnv1a64:";
enum { SEAL_BYTES = 32, DIGITS = 16 };

/* What a state file says of its job, so that a checkpoint is loaded as that job's, and a part
 * merged with that job's other slice, rather than refused as another's before its contents are
 * checked. */
typedef struct claimed_job {
    char job[8192];
    uint64_t begin, end;
    uint32_t n_counters;
    bool labels, with_scores;
} claimed_job;

/* Reads and sums the datasets the loader of `kind` sums (read_checkpoint, read_part), filling
 * `claim` for a checkpoint. */
static void sum_datasets(state_reader *r, const char *kind, claimed_job *claim)
{
    uint32_t rows, cols;
    uint64_t *cells = NULL;
    cleval_dataset_attribute(r->ds, "job", claim->job, sizeof claim->job);
    if (strcmp(kind, "part") == 0) {
        char **names = NULL;
        uint32_t n_names = 0;
        bool labels = cleval_dataset_has(r->ds, "confusion");
        if (state_read_counts(r, labels ? "confusion" : "predicted_counts", &rows, &cols, &cells))
            state_read_class_names(r, &names, &n_names);
        cleval_dataset_free_names(names, n_names);
        free(cells);
        return;
    }
    if (state_read_counts(r, "counts", &rows, &cols, &cells)) claim->labels = rows > 1;
    free(cells);
    cells = NULL;
    if (state_read_counts(r, "counters", &rows, &cols, &cells))
        claim->n_counters = cols < ENGINE_MAX_COUNTERS ? cols : ENGINE_MAX_COUNTERS;
    free(cells);
    cells = NULL;
    claim->with_scores = cleval_dataset_has(r->ds, "score_sums");
    if (claim->with_scores) state_read_counts(r, "score_sums", &rows, &cols, &cells);
    free(cells);
    engine_read_count(r->ds, "row_begin", &claim->begin);
    engine_read_count(r->ds, "row_end", &claim->end);
}

/* Writes `body` (resealed when `sealed`) to the input file and returns its path. */
static const char *write_state(unsigned char *body, size_t size, bool sealed)
{
    if (!sealed) return fuzz_input_file(body, size, "state.h5");
    char seal[SEAL_BYTES + 1];
    snprintf(seal, sizeof seal, "%s%016" PRIx64, SEAL_MAGIC, state_fnv1a(STATE_FNV_BASIS, body, size));
    memcpy(body + size, seal, SEAL_BYTES);
    return fuzz_input_file(body, size + SEAL_BYTES, "state.h5");
}

/* The input as a state file of `kind` with both checksums repaired (where the stored checksum
 * is found in its bytes); returns its path. */
static const char *forge_state(const uint8_t *data, size_t size, const char *kind,
                               claimed_job *claim)
{
    memset(claim, 0, sizeof *claim);
    unsigned char *body = malloc(size + SEAL_BYTES);
    if (!body) abort();
    memcpy(body, data, size);
    bool sealed = size >= SEAL_BYTES &&
                  memcmp(data + size - SEAL_BYTES, SEAL_MAGIC, sizeof SEAL_MAGIC - 1) == 0;
    if (sealed) size -= SEAL_BYTES;
    const char *path = write_state(body, size, false);

    state_reader r;
    char stored[64] = "", expected[DIGITS + 1];
    if (state_reader_open(&r, path, kind)) {
        sum_datasets(&r, kind, claim);
        cleval_dataset_attribute(r.ds, "checksum", stored, sizeof stored);
    }
    snprintf(expected, sizeof expected, "%016" PRIx64, r.sum);
    state_reader_close(&r);
    unsigned char *at = strlen(stored) == DIGITS ? memmem(body, size, stored, DIGITS) : NULL;
    if (at) memcpy(at, expected, DIGITS);
    path = write_state(body, size, sealed);
    free(body);
    return path;
}

/* Slice 0 of each seed job (tools/make_statefile_seeds.sh), with its job's fingerprint. */
enum { MAX_SIBLINGS = 16 };
static struct {
    char path[4096];
    char job[8192];
} siblings[MAX_SIBLINGS];
static unsigned n_siblings;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_hdf5_without_free_lists();
    DIR *dir = opendir(FUZZ_SIBLINGS);
    for (struct dirent *e; dir && (e = readdir(dir)) && n_siblings < MAX_SIBLINGS;) {
        if (e->d_name[0] == '.') continue;
        snprintf(siblings[n_siblings].path, sizeof siblings->path, "%s/%s", FUZZ_SIBLINGS,
                 e->d_name);
        cleval_dataset *ds;
        if (cleval_dataset_open(siblings[n_siblings].path, &ds) != CLEVAL_OK) continue;
        cleval_dataset_attribute(ds, "job", siblings[n_siblings].job, sizeof siblings->job);
        cleval_dataset_close(ds);
        n_siblings++;
    }
    if (dir) closedir(dir);
    if (n_siblings == 0) {
        fprintf(stderr, "fuzz_statefile: no part files in %s\n", FUZZ_SIBLINGS);
        abort();
    }
    return 0;
}

/* The sibling of the part's job (the first sibling when the job is none of theirs). */
static const char *sibling_of(const char *job)
{
    for (unsigned i = 0; i < n_siblings; i++)
        if (strcmp(siblings[i].job, job) == 0) return siblings[i].path;
    return siblings[0].path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    claimed_job claim;
    const char *path = forge_state(data, size, "checkpoint", &claim);
    checkpoint_state state;
    if (checkpoint_load(path, claim.job, claim.begin, claim.end, 0, claim.labels, claim.n_counters,
                        claim.with_scores, &state) == CLEVAL_OK)
        pipeline_counts_free(&state.counts);

    path = forge_state(data, size, "part", &claim);
    /* The whole file goes beside the input, in the target's private folder. */
    char whole[4200];
    snprintf(whole, sizeof whole, "%.*swhole.h5", (int)(strrchr(path, '/') + 1 - path), path);
    const cleval_merge_options options = {.allow_nonfinite = true};
    cleval_merge_outcome out;
    const char *parts[] = {sibling_of(claim.job), path};
    if (cleval_engine_merge(parts, 2, whole, &options, &out) == CLEVAL_OK)
        cleval_predict_outcome_free(&out.predict);
    unlink(whole);
    fuzz_check_hdf5_closed();
    return 0;
}
