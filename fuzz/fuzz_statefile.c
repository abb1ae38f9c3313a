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

/* What a part's checksum adds over a checkpoint's for the same attributes: each kind enters
 * its sum as one term (statefile.h), measured once on a sibling (LLVMFuzzerInitialize). */
static uint64_t part_minus_checkpoint;

/* Adds the datasets the checkpoint loader sums (read_checkpoint) to r->sum, filling `claim`. */
static void sum_checkpoint_datasets(state_reader *r, claimed_job *claim)
{
    uint32_t rows, cols;
    uint64_t *cells = NULL;
    cleval_dataset_attribute(r->ds, "job", claim->job, sizeof claim->job);
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

/* Adds the datasets the part loader sums (read_part) to r->sum. */
static void sum_part_datasets(state_reader *r)
{
    uint32_t rows, cols, n_names = 0;
    uint64_t *cells = NULL;
    char **names = NULL;
    bool labels = cleval_dataset_has(r->ds, "confusion");
    if (state_read_counts(r, labels ? "confusion" : "predicted_counts", &rows, &cols, &cells))
        state_read_class_names(r, &names, &n_names);
    cleval_dataset_free_names(names, n_names);
    free(cells);
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

/* The input, its checksum sums as a checkpoint and as a part, and where the stored checksum's
 * digits lie in its bytes (NULL when they are not found: the input then goes as it is). */
typedef struct forged {
    unsigned char *body; /* the bytes without the seal, with room to append one */
    size_t size;
    bool sealed;
    unsigned char *checksum_at;
    uint64_t checkpoint_sum, part_sum;
    claimed_job claim; /* what it says of its job, read as a checkpoint */
} forged;

/* Opens the input once (each open costs a forked structure walk, most of this target's time)
 * and sums it both ways. */
static void forge(const uint8_t *data, size_t size, forged *f)
{
    memset(f, 0, sizeof *f);
    f->body = malloc(size + SEAL_BYTES);
    if (!f->body) abort();
    memcpy(f->body, data, size);
    f->sealed = size >= SEAL_BYTES &&
                memcmp(data + size - SEAL_BYTES, SEAL_MAGIC, sizeof SEAL_MAGIC - 1) == 0;
    f->size = f->sealed ? size - SEAL_BYTES : size;
    state_reader r;
    char stored[64] = "";
    if (state_reader_open(&r, write_state(f->body, f->size, false), "checkpoint")) {
        uint64_t attributes = r.sum;
        sum_checkpoint_datasets(&r, &f->claim);
        f->checkpoint_sum = r.sum;
        r.sum = attributes + part_minus_checkpoint;
        sum_part_datasets(&r);
        f->part_sum = r.sum;
        cleval_dataset_attribute(r.ds, "checksum", stored, sizeof stored);
    }
    state_reader_close(&r);
    if (strlen(stored) == DIGITS) f->checksum_at = memmem(f->body, f->size, stored, DIGITS);
}

/* The input with its checksum set to `sum` and resealed; its path. */
static const char *forged_file(forged *f, uint64_t sum)
{
    if (f->checksum_at) {
        char digits[DIGITS + 1];
        snprintf(digits, sizeof digits, "%016" PRIx64, sum);
        memcpy(f->checksum_at, digits, DIGITS);
    }
    return write_state(f->body, f->size, f->sealed);
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
    state_reader as_part, as_checkpoint;
    if (!state_reader_open(&as_part, siblings[0].path, "part") ||
        !state_reader_open(&as_checkpoint, siblings[0].path, "checkpoint")) {
        fprintf(stderr, "fuzz_statefile: cannot read %s\n", siblings[0].path);
        abort();
    }
    part_minus_checkpoint = as_part.sum - as_checkpoint.sum;
    state_reader_close(&as_part);
    state_reader_close(&as_checkpoint);
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
    forged f;
    forge(data, size, &f);
    const char *path = forged_file(&f, f.checkpoint_sum);
    const claimed_job *claim = &f.claim;
    checkpoint_state state;
    if (checkpoint_load(path, claim->job, claim->begin, claim->end, 0, claim->labels,
                        claim->n_counters, claim->with_scores, &state) == CLEVAL_OK)
        pipeline_counts_free(&state.counts);

    path = forged_file(&f, f.part_sum);
    /* The whole file goes beside the input, in the target's private folder. */
    char whole[4200];
    snprintf(whole, sizeof whole, "%.*swhole.h5", (int)(strrchr(path, '/') + 1 - path), path);
    const cleval_merge_options options = {.allow_nonfinite = true};
    cleval_merge_outcome out;
    const char *parts[] = {sibling_of(claim->job), path};
    if (cleval_engine_merge(parts, 2, whole, &options, &out) == CLEVAL_OK)
        cleval_predict_outcome_free(&out.predict);
    unlink(whole);
    free(f.body);
    fuzz_check_hdf5_closed();
    fuzz_check_children_memory();
    return 0;
}
