/* State files (see statefile.h). The checksum is a sum of FNV-1a 64 hashes, one per item (an
 * attribute, a dataset, the file's kind): the reader lists the attributes in whatever order the
 * file keeps them, so the sum must not depend on order. A damaged item changes its hash; an
 * added or lost item adds or removes one. */
#include "statefile.h"

#include "engine_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/cache.h"
#include "cleval/input.h"

static const char CHECKSUM[] = "checksum";

/* The seal: these 16 characters, then the FNV-1a 64 of every byte before them as 16 hex
 * digits. */
static const char SEAL_MAGIC[] = "\ncleval-fnv1a64:";
enum { SEAL_BYTES = 32 };

uint64_t state_fnv1a(uint64_t hash, const void *bytes, size_t n)
{
    return cleval_cache_hash(hash, bytes, n); /* the same FNV-1a 64 */
}

/* FNV-1a of an unsigned value's `size` bytes, little-endian whatever the host. */
static uint64_t fnv_le(uint64_t hash, uint64_t value, unsigned size)
{
    unsigned char bytes[8];
    for (unsigned i = 0; i < size; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    return state_fnv1a(hash, bytes, size);
}

uint64_t state_rows_digest(uint64_t row0, uint64_t n, const int32_t *pred, const int32_t *y,
                           const float *scores, uint32_t width)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h = fnv_le(STATE_FNV_BASIS, row0 + i, 8);
        h = fnv_le(h, (uint32_t)pred[i], 4);
        if (y) h = fnv_le(h, (uint32_t)y[i], 4);
        for (uint32_t c = 0; scores && c < width; c++) {
            uint32_t bits;
            memcpy(&bits, &scores[i * width + c], sizeof bits);
            h = fnv_le(h, bits, 4);
        }
        sum += h;
    }
    return sum;
}

/* The start of one item's hash: its tag ('a' attribute, 'c' counts, 's' strings, 'k' kind)
 * and name. */
static uint64_t item_start(char tag, const char *name)
{
    return state_fnv1a(state_fnv1a(STATE_FNV_BASIS, &tag, 1), name, strlen(name) + 1);
}

static uint64_t text_item(const char *name, const char *value)
{
    return state_fnv1a(item_start('a', name), value, strlen(value) + 1);
}

/* A count matrix's hash starts with its name and shape; every cell follows in row-major
 * order (fnv_le(h, cell, 8)), so a reader or writer that holds the matrix in blocks, or only
 * its nonzero cells, hashes it cell by cell to the same value. */
static uint64_t counts_hash_start(const char *name, uint32_t rows, uint32_t cols)
{
    return fnv_le(fnv_le(item_start('c', name), rows, 4), cols, 4);
}

static uint64_t counts_item(const char *name, uint32_t rows, uint32_t cols, const uint64_t *cells)
{
    uint64_t h = counts_hash_start(name, rows, cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        h = fnv_le(h, cells[i], 8);
    return h;
}

static uint64_t strings_item(const char *name, char *const *strings, uint32_t count)
{
    uint64_t h = fnv_le(item_start('s', name), count, 4);
    for (uint32_t i = 0; i < count; i++)
        h = state_fnv1a(h, strings[i], strlen(strings[i]) + 1);
    return h;
}

static void digest_text(uint64_t value, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, value);
}

/* Records the first problem (the library's last error, without the leading "<path>: ", when
 * `reason` is NULL); returns false. */
static bool problem(state_reader *r, const char *reason)
{
    if (r->problem[0]) return false;
    if (!reason) {
        reason = cleval_last_error();
        size_t n = strlen(r->path);
        if (strncmp(reason, r->path, n) == 0 && strncmp(reason + n, ": ", 2) == 0) reason += n + 2;
    }
    snprintf(r->problem, sizeof r->problem, "%s", reason);
    return false;
}

/* --- The seal ---------------------------------------------------------------------------- */

/* FNV-1a 64 of the first `n` bytes of an open file. */
static bool hash_bytes(FILE *f, uint64_t n, uint64_t *hash)
{
    static const size_t buffer_size = 1 << 20;
    unsigned char *buffer = malloc(buffer_size);
    *hash = STATE_FNV_BASIS;
    bool ok = buffer && fseeko(f, 0, SEEK_SET) == 0;
    while (ok && n > 0) {
        size_t want = n < buffer_size ? (size_t)n : buffer_size;
        ok = fread(buffer, 1, want, f) == want;
        *hash = state_fnv1a(*hash, buffer, want);
        n -= want;
    }
    free(buffer);
    return ok;
}

cleval_status state_seal_file(const char *path)
{
    FILE *f = fopen(path, "r+b");
    uint64_t hash;
    bool ok = f && fseeko(f, 0, SEEK_END) == 0;
    off_t size = ok ? ftello(f) : -1;
    ok = ok && size >= 0 && hash_bytes(f, (uint64_t)size, &hash) && fseeko(f, 0, SEEK_END) == 0 &&
         fprintf(f, "%s%016" PRIx64, SEAL_MAGIC, hash) == SEAL_BYTES;
    int err = errno;
    if (f && fclose(f) != 0) ok = false;
    if (!ok)
        return cleval_fail(CLEVAL_ERR_IO, "%s: cannot write its checksum: %s", path, strerror(err));
    return CLEVAL_OK;
}

/* Checks the seal of a file that has one; false with r->problem set when it does not match. */
static bool check_seal(state_reader *r)
{
    FILE *f;
    uint64_t file_size;
    /* Only a regular file (a FIFO would block here); opening it again names the reason. */
    if (cleval_input_fopen(r->path, "an HDF5 file", &f, &file_size) != CLEVAL_OK) return true;
    char tail[SEAL_BYTES + 1] = {0};
    off_t size = fseeko(f, 0, SEEK_END) == 0 ? ftello(f) : -1;
    bool sealed = size >= SEAL_BYTES && fseeko(f, size - SEAL_BYTES, SEEK_SET) == 0 &&
                  fread(tail, 1, SEAL_BYTES, f) == SEAL_BYTES &&
                  memcmp(tail, SEAL_MAGIC, sizeof SEAL_MAGIC - 1) == 0;
    uint64_t hash = 0;
    bool ok = !sealed || hash_bytes(f, (uint64_t)size - SEAL_BYTES, &hash);
    fclose(f);
    if (!ok) return problem(r, "cannot read it");
    char expected[17];
    digest_text(hash, expected);
    if (sealed && strcmp(tail + sizeof SEAL_MAGIC - 1, expected) != 0)
        return problem(r, "checksum mismatch");
    return true;
}

/* --- Writing ----------------------------------------------------------------------------- */

void state_writer_init(state_writer *w, cleval_predfile *file, const char *kind)
{
    w->file = file;
    w->sum = item_start('k', kind);
}

cleval_status state_set_text(state_writer *w, const char *name, const char *value)
{
    w->sum += text_item(name, value);
    return cleval_predfile_set_attribute(w->file, name, value);
}

cleval_status state_set_int(state_writer *w, const char *name, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value); /* as the reader renders integers */
    w->sum += text_item(name, text);
    return cleval_predfile_set_int_attribute(w->file, name, value);
}

cleval_status state_set_digest(state_writer *w, const char *name, uint64_t value)
{
    char text[17];
    digest_text(value, text);
    return state_set_text(w, name, text);
}

cleval_status state_write_counts(state_writer *w, const char *name, uint32_t rows, uint32_t cols,
                                 const uint64_t *cells)
{
    w->sum += counts_item(name, rows, cols, cells);
    return cleval_predfile_write_counts(w->file, name, rows, cols, cells);
}

cleval_status state_write_count_table(state_writer *w, const char *name,
                                      const cleval_counts *counts)
{
    if (!cleval_counts_is_sparse(counts))
        return state_write_counts(w, name, counts->rows, counts->cols, counts->cells);
    cleval_count_cell *cells;
    size_t n;
    cleval_status status = cleval_counts_sorted(counts, &cells, &n);
    if (status != CLEVAL_OK) return status;
    /* counts_item's hash of every cell in row-major order, the zeros made up as it goes. */
    uint64_t h = counts_hash_start(name, counts->rows, counts->cols);
    size_t next = 0;
    for (uint32_t r = 0; r < counts->rows; r++)
        for (uint32_t c = 0; c < counts->cols; c++) {
            bool here = next < n && cells[next].row == r && cells[next].col == c;
            h = fnv_le(h, here ? cells[next++].count : 0, 8);
        }
    free(cells);
    w->sum += h;
    return cleval_predfile_write_count_rows(w->file, name, counts);
}

cleval_status state_write_strings(state_writer *w, const char *name, char *const *strings,
                                  uint32_t count)
{
    w->sum += strings_item(name, strings, count);
    return cleval_predfile_write_strings(w->file, name, strings, count);
}

cleval_status state_seal(state_writer *w)
{
    char text[17];
    digest_text(w->sum, text);
    return cleval_predfile_set_attribute(w->file, CHECKSUM, text);
}

/* --- Reading ----------------------------------------------------------------------------- */

/* Sums every root attribute but the checksum, each read as text. */
static bool sum_attributes(state_reader *r)
{
    char **names = NULL, *value = malloc(1 << 16);
    uint32_t count = 0;
    bool ok = value && cleval_dataset_attribute_names(r->ds, &names, &count) == CLEVAL_OK;
    if (!ok) problem(r, value ? NULL : "out of memory");
    for (uint32_t i = 0; ok && i < count; i++) {
        if (strcmp(names[i], CHECKSUM) == 0) continue;
        ok = cleval_dataset_attribute(r->ds, names[i], value, 1 << 16) == CLEVAL_OK;
        if (ok)
            r->sum += text_item(names[i], value);
        else
            problem(r, NULL);
    }
    cleval_dataset_free_names(names, count);
    free(value);
    return ok;
}

bool state_reader_open(state_reader *r, const char *path, const char *kind)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->sum = item_start('k', kind);
    if (!check_seal(r)) return false;
    if (cleval_dataset_open(path, &r->ds) != CLEVAL_OK) return problem(r, NULL);
    return sum_attributes(r);
}

bool state_read_counts(state_reader *r, const char *name, uint32_t *rows, uint32_t *cols,
                       uint64_t **cells)
{
    if (cleval_dataset_read_counts(r->ds, name, rows, cols, cells) != CLEVAL_OK)
        return problem(r, NULL);
    r->sum += counts_item(name, *rows, *cols, *cells);
    return true;
}

/* state_read_count_table's progress: the hash so far and the counts being filled. */
typedef struct table_read {
    const char *name;
    uint64_t hash;
    cleval_counts *out;
} table_read;

static cleval_status add_block(void *user, const cleval_count_block *b)
{
    table_read *t = user;
    cleval_status status = CLEVAL_OK;
    if (b->row0 == 0 && b->col0 == 0) { /* the first block: the shape is known now */
        t->hash = counts_hash_start(t->name, b->rows, b->cols);
        if ((status = cleval_counts_init(t->out, b->rows, b->cols)) != CLEVAL_OK) return status;
    }
    size_t n = (size_t)b->n_rows * b->n_cols;
    for (size_t i = 0; i < n && status == CLEVAL_OK; i++) {
        uint64_t v = b->cells[i];
        t->hash = fnv_le(t->hash, v, 8);
        if (v)
            status = cleval_counts_add(t->out, b->row0 + (uint32_t)(i / b->n_cols),
                                       b->col0 + (uint32_t)(i % b->n_cols), v);
    }
    return status;
}

bool state_read_count_table(state_reader *r, const char *name, cleval_counts *out)
{
    memset(out, 0, sizeof *out);
    table_read t = {.name = name, .out = out};
    if (cleval_dataset_read_count_blocks(r->ds, name, add_block, &t) != CLEVAL_OK) {
        cleval_counts_free(out);
        return problem(r, NULL);
    }
    r->sum += t.hash;
    return true;
}

bool state_read_class_names(state_reader *r, char ***names, uint32_t *count)
{
    if (cleval_dataset_class_names(r->ds, names, count) != CLEVAL_OK) return problem(r, NULL);
    if (*count) r->sum += strings_item("class_names", *names, *count);
    return true;
}

bool state_reader_verify(state_reader *r)
{
    char stored[64], expected[17];
    if (cleval_dataset_attribute(r->ds, CHECKSUM, stored, sizeof stored) != CLEVAL_OK)
        return problem(r, NULL);
    if (!stored[0]) return problem(r, "no checksum: written by an older cleval");
    digest_text(r->sum, expected);
    if (strcmp(stored, expected) != 0) return problem(r, "checksum mismatch");
    return true;
}

bool state_read_count(state_reader *r, const char *name, uint64_t *value)
{
    if (engine_read_count(r->ds, name, value)) return true;
    char reason[128];
    snprintf(reason, sizeof reason, "attribute '%s' is missing or not a count", name);
    return problem(r, reason);
}

bool state_read_digest(state_reader *r, const char *name, uint64_t *value)
{
    char text[64], *end;
    if (cleval_dataset_attribute(r->ds, name, text, sizeof text) == CLEVAL_OK &&
        strlen(text) == 16) {
        *value = strtoull(text, &end, 16);
        if (*end == '\0') return true;
    }
    char reason[128];
    snprintf(reason, sizeof reason, "attribute '%s' is missing or not a digest", name);
    return problem(r, reason);
}

bool state_check_total(state_reader *r, const char *name, const cleval_counts *counts,
                       uint64_t total)
{
    uint64_t sum = 0;
    bool overflow = false;
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(counts, &pos, &cell)) {
        overflow = overflow || cell.count > INT64_MAX || sum + cell.count < sum;
        sum += cell.count;
    }
    if (!overflow && sum == total) return true;
    char reason[256];
    snprintf(reason, sizeof reason,
             "'%s' adds up to %s%" PRIu64 " where %" PRIu64 " rows were done", name,
             overflow ? "more than " : "", sum, total);
    return problem(r, reason);
}

void state_reader_close(state_reader *r)
{
    cleval_dataset_close(r->ds);
    r->ds = NULL;
}

/* --- Saved rows -------------------------------------------------------------------------- */

/* Rows read at a time: at most 65536, and at most 32 MiB of scores. */
enum { CHUNK_ROWS = 1 << 16, CHUNK_SCORE_BYTES = 32 << 20 };

cleval_status state_rows_open(cleval_dataset *ds, uint64_t n, bool labels, bool scores,
                              uint32_t width, uint32_t n_classes, state_rows *rows,
                              const char **problem)
{
    memset(rows, 0, sizeof *rows);
    rows->width = width;
    rows->n_classes = n_classes;
    if (cleval_column_open(ds, "pred", CLEVAL_COLUMN_LABELS, &rows->pred) ||
        (labels && cleval_column_open(ds, "y", CLEVAL_COLUMN_LABELS, &rows->y)) ||
        (scores && cleval_column_open(ds, "scores", CLEVAL_COLUMN_VALUES, &rows->score))) {
        *problem = "its rows cannot be read";
        return CLEVAL_ERR_INPUT;
    }
    if (cleval_column_rows(rows->pred) != n || (rows->y && cleval_column_rows(rows->y) != n) ||
        (rows->score &&
         (cleval_column_rows(rows->score) != n || cleval_column_row_size(rows->score) != width))) {
        *problem = "its datasets do not match its slice";
        return CLEVAL_ERR_INPUT;
    }
    uint32_t chunk = scores ? CHUNK_SCORE_BYTES / (width * (uint32_t)sizeof(float)) : CHUNK_ROWS;
    rows->chunk = chunk == 0 ? 1 : chunk > CHUNK_ROWS ? CHUNK_ROWS : chunk;
    rows->pred_rows = malloc(rows->chunk * sizeof *rows->pred_rows);
    rows->y_rows = labels ? malloc(rows->chunk * sizeof *rows->y_rows) : NULL;
    rows->score_rows =
        scores ? malloc((size_t)rows->chunk * width * sizeof *rows->score_rows) : NULL;
    rows->predicted = calloc(n_classes ? n_classes : 1, sizeof *rows->predicted);
    if (!rows->pred_rows || (labels && !rows->y_rows) || (scores && !rows->score_rows) ||
        !rows->predicted)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s", cleval_dataset_path(ds));
    return CLEVAL_OK;
}

cleval_status state_rows_read(state_rows *rows, uint64_t row0, uint64_t count, const char **problem)
{
    int32_t max;
    if (cleval_column_read_i32(rows->pred, row0, count, rows->pred_rows, &max) ||
        (rows->y && cleval_column_read_i32(rows->y, row0, count, rows->y_rows, &max)) ||
        (rows->score && cleval_column_read_f32(rows->score, row0, count, rows->score_rows))) {
        *problem = "its rows cannot be read";
        return CLEVAL_ERR_INPUT;
    }
    for (uint64_t i = 0; i < count; i++) {
        if ((uint32_t)rows->pred_rows[i] >= rows->n_classes) {
            *problem = "a prediction is out of range";
            return CLEVAL_ERR_INPUT;
        }
        rows->predicted[rows->pred_rows[i]]++;
    }
    rows->digest += state_rows_digest(row0, count, rows->pred_rows, rows->y_rows, rows->score_rows,
                                      rows->width);
    return CLEVAL_OK;
}

bool state_rows_match_counts(state_rows *rows, const cleval_counts *counts)
{
    /* Each nonzero cell is taken off its column's predictions: the rows agree when nothing
     * goes below zero and nothing is left (no C-sized sums beside `predicted`, no C^2 walk). */
    size_t pos = 0;
    cleval_count_cell cell;
    if (counts->cols != rows->n_classes) return false;
    while (cleval_counts_next(counts, &pos, &cell)) {
        if (rows->predicted[cell.col] < cell.count) return false;
        rows->predicted[cell.col] -= cell.count;
    }
    for (uint32_t c = 0; c < rows->n_classes; c++)
        if (rows->predicted[c]) return false;
    return true;
}

void state_rows_close(state_rows *rows)
{
    cleval_column_close(rows->pred);
    cleval_column_close(rows->score);
    cleval_column_close(rows->y);
    free(rows->pred_rows);
    free(rows->y_rows);
    free(rows->score_rows);
    free(rows->predicted);
}
