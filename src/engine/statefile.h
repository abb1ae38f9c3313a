/* State files: checkpoints and part files. Each carries a checksum attribute over everything it
 * states (every root attribute, its count matrices and class names, and the digest of its saved
 * rows), so that a damaged file is refused instead of being resumed or merged into a wrong
 * answer. Written with a state_writer, read back with a state_reader that checks the checksum
 * and every declared size before anything is used.
 *
 * The file also ends with a seal, a checksum of all its bytes that HDF5 ignores: HDF5 itself
 * may crash on damaged metadata (a damaged heap or object header), so a sealed file is checked
 * byte for byte before HDF5 parses it. A file without a seal (changed with HDF5 since, which
 * drops it) is still parsed, and refused by its checksum attribute. */
#ifndef CLEVAL_ENGINE_STATEFILE_H
#define CLEVAL_ENGINE_STATEFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/dataset.h"
#include "cleval/predfile.h"

/* FNV-1a 64 of `n` bytes, continuing from `hash` (start with STATE_FNV_BASIS). */
#define STATE_FNV_BASIS 0xcbf29ce484222325ull
uint64_t state_fnv1a(uint64_t hash, const void *bytes, size_t n);

/* The digest of saved rows [row0, row0 + n) of a file (rows counted from the file's first):
 * the sum of each row's FNV-1a over its index, prediction, label (y, may be NULL) and `width`
 * scores (may be NULL), all little-endian. A sum does not depend on the order rows are added
 * in: batches finish, and are written, in any order when several devices share a job, and a
 * resumed run adds its rows to those of the run before. */
uint64_t state_rows_digest(uint64_t row0, uint64_t n, const int32_t *pred, const int32_t *y,
                           const float *scores, uint32_t width);

/* The `finish` of a state file's cleval_predfile_spec: appends the seal. */
cleval_status state_seal_file(const char *path);

/* Writes a state file's attributes and datasets through an open prediction file and sums what
 * it writes; state_seal() stores the checksum. */
typedef struct state_writer {
    cleval_predfile *file;
    uint64_t sum;
} state_writer;

/* `kind` ("checkpoint", "part") enters the checksum: one kind never passes for the other. */
void state_writer_init(state_writer *w, cleval_predfile *file, const char *kind);
cleval_status state_set_text(state_writer *w, const char *name, const char *value);
cleval_status state_set_int(state_writer *w, const char *name, int64_t value);
/* A 64-bit digest, stored as 16 hex digits. */
cleval_status state_set_digest(state_writer *w, const char *name, uint64_t value);
cleval_status state_write_counts(state_writer *w, const char *name, uint32_t rows, uint32_t cols,
                                 const uint64_t *cells);
/* state_write_counts of counts of either backing: sparse counts are checksummed and written as
 * the same dense table, one block of rows at a time, never held densely in memory. */
cleval_status state_write_count_table(state_writer *w, const char *name,
                                      const cleval_counts *counts);
cleval_status state_write_strings(state_writer *w, const char *name, char *const *strings,
                                  uint32_t count);
/* Stores the checksum of everything written; the last call before cleval_predfile_commit(). */
cleval_status state_seal(state_writer *w);

/* Reads a state file back. Each call returns false on the first problem, with a short reason
 * (no path) in `problem` for the caller's one-line message. */
typedef struct state_reader {
    const char *path;
    cleval_dataset *ds;
    uint64_t sum;
    char problem[512];
} state_reader;

/* Checks the seal when there is one, opens `path` and sums every root attribute but the
 * checksum. */
bool state_reader_open(state_reader *r, const char *path, const char *kind);
/* Reads and sums a count matrix (its size checked against the file first). */
bool state_read_counts(state_reader *r, const char *name, uint32_t *rows, uint32_t *cols,
                       uint64_t **cells);
/* Reads and sums a count matrix into `out` (zeroed first; freed on failure), dense or sparse
 * by cleval_counts_dense_limit(), a bounded block of rows at a time: a 9001-class table of a
 * few nonzero cells is never held densely. The same checks and checksum as
 * state_read_counts, which stays for the tables that are always small (counters, score
 * sums). */
bool state_read_count_table(state_reader *r, const char *name, cleval_counts *out);
/* Reads and sums the optional string dataset `class_names` (*count 0 when absent). */
bool state_read_class_names(state_reader *r, char ***names, uint32_t *count);
/* Compares the sum of everything read with the stored checksum: call it after reading every
 * dataset the writer wrote, before using any of them. */
bool state_reader_verify(state_reader *r);
/* Reads a non-negative decimal attribute, or a digest (state_set_digest). */
bool state_read_count(state_reader *r, const char *name, uint64_t *value);
bool state_read_digest(state_reader *r, const char *name, uint64_t *value);
/* Fails when the cells of a count matrix do not add up to `total` (or one exceeds INT64_MAX). */
bool state_check_total(state_reader *r, const char *name, const cleval_counts *counts,
                       uint64_t total);
void state_reader_close(state_reader *r);

/* A state's saved rows read back a chunk at a time (merge, resume): pred, y with labels, scores
 * when saved, with the digest of the rows read and how often each class was predicted. */
typedef struct state_rows {
    cleval_column *pred, *y, *score;
    int32_t *pred_rows, *y_rows;
    float *score_rows;
    uint32_t chunk;      /* rows per read */
    uint32_t width;      /* scores per row */
    uint32_t n_classes;  /* predictions must lie below */
    uint64_t digest;     /* state_rows_digest() of the rows read */
    uint64_t *predicted; /* [n_classes] */
} state_rows;

/* Opens the rows of `ds` and checks their extents (`n` rows, `width` scores) before allocating.
 * CLEVAL_ERR_INPUT with a reason in *problem (nothing recorded) when they do not fit; other
 * failures are recorded. Close with state_rows_close() either way. */
cleval_status state_rows_open(cleval_dataset *ds, uint64_t n, bool labels, bool scores,
                              uint32_t width, uint32_t n_classes, state_rows *rows,
                              const char **problem);
/* Reads rows [row0, row0 + count) (count <= rows->chunk) into the buffers, checks and adds
 * them; CLEVAL_ERR_INPUT with *problem as above. */
cleval_status state_rows_read(state_rows *rows, uint64_t row0, uint64_t count,
                              const char **problem);
/* True when the rows read predicted each class as often as the counts' columns say (which must
 * be rows->n_classes). Uses up rows->predicted: call it once, after the last read. */
bool state_rows_match_counts(state_rows *rows, const cleval_counts *counts);
void state_rows_close(state_rows *rows);

#endif
