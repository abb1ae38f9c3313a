/* Count matrices in JSON reports without C^2 items in memory. The report tree holds a matrix
 * as one raw placeholder item listing only its nonzero cells; the printers expand it into the
 * dense array of arrays the contract specifies ("[[3, 0], [1, 2]]", as cJSON_Print() prints
 * an array of arrays of numbers) row by row while the text is written, so a 9001-class
 * matrix of 4 samples costs 4 cells in memory however long its printed rows are.
 *
 * The placeholder's text: MARK "M" rows " " cols, then " row:col:count" for each nonzero
 * cell in row-major order, then MARK. MARK is a control character, which cJSON always escapes
 * inside strings, so a placeholder can never be confused with report text. */
#include "json_matrix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

enum { MARK = '\x01' };

/* The decimal text of a count, as report_exact_decimal writes it for (double)value: the digits
 * themselves below 2^53 (every count of a real run), without a printf call per cell. */
static size_t count_text(uint64_t value, char *out)
{
    if (value >= UINT64_C(9007199254740992)) {
        report_exact_decimal((double)value, out, 40);
        return strlen(out);
    }
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

cJSON *cleval_report_counts_json(const cleval_counts *counts)
{
    cleval_count_cell *cells;
    size_t n;
    if (cleval_counts_sorted(counts, &cells, &n) != CLEVAL_OK) return NULL;
    /* The header: MARK, 'M', two uint32 and a space; a cell: a space, two uint32, a uint64 and
     * two colons (at most 43 characters); then MARK and the terminator. */
    size_t size = 24 + n * 43 + 2, at = 0;
    char *text = cJSON_malloc(size);
    if (text) {
        at += (size_t)snprintf(text, size, "%cM%u %u", MARK, counts->rows, counts->cols);
        for (size_t i = 0; i < n; i++)
            at += (size_t)snprintf(text + at, size - at, " %u:%u:%llu", cells[i].row, cells[i].col,
                                   (unsigned long long)cells[i].count);
        text[at++] = MARK;
        text[at] = '\0';
    }
    free(cells);
    if (!text) return NULL;
    /* cJSON_CreateRaw copies the text: the copy is its exact length, not the worst case. */
    cJSON *item = cJSON_CreateRaw(text);
    cJSON_free(text);
    return item;
}

/* The decimal number at `at` (digits only, at most `max`) into *value; returns what follows
 * it, or NULL when there is none. */
static const char *parse_number(const char *at, unsigned long long max, unsigned long long *value)
{
    if (*at < '0' || *at > '9') return NULL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(at, &end, 10);
    if (errno || v > max) return NULL;
    *value = v;
    return end;
}

/* Reads "rows cols" after MARK "M"; returns where the cells begin, or NULL. */
static const char *parse_header(const char *text, uint32_t *rows, uint32_t *cols)
{
    if (text[0] != MARK || text[1] != 'M') return NULL;
    unsigned long long r, c;
    const char *at = parse_number(text + 2, UINT32_MAX, &r);
    at = at && *at == ' ' ? parse_number(at + 1, UINT32_MAX, &c) : NULL;
    if (!at) return NULL;
    *rows = (uint32_t)r;
    *cols = (uint32_t)c;
    return at;
}

/* Reads the next " row:col:count" into *cell; returns what follows it, or NULL at the end
 * (MARK) or on a malformed cell (*bad set). */
static const char *parse_cell(const char *at, cleval_count_cell *cell, bool *bad)
{
    *bad = false;
    if (*at == MARK) return NULL;
    unsigned long long r, c, v;
    const char *p = *at == ' ' ? parse_number(at + 1, UINT32_MAX, &r) : NULL;
    p = p && *p == ':' ? parse_number(p + 1, UINT32_MAX, &c) : NULL;
    p = p && *p == ':' ? parse_number(p + 1, UINT64_MAX, &v) : NULL;
    if (!p) {
        *bad = true;
        return NULL;
    }
    *cell = (cleval_count_cell){(uint32_t)r, (uint32_t)c, v};
    return p;
}

cleval_status cleval_report_matrix_cells(const cJSON *item, uint32_t *rows, uint32_t *cols,
                                         cleval_count_cell **cells, size_t *n)
{
    *cells = NULL;
    *n = 0;
    const char *at =
        cJSON_IsRaw(item) && item->valuestring ? parse_header(item->valuestring, rows, cols) : NULL;
    if (!at) return CLEVAL_ERR_INPUT;
    size_t count = 0;
    for (const char *p = at; *p && *p != MARK; p++)
        count += *p == ' ';
    cleval_count_cell *list = malloc((count ? count : 1) * sizeof *list);
    if (!list)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %zu matrix cells", count);
    bool bad = false;
    size_t k = 0;
    while (k < count && (at = parse_cell(at, &list[k], &bad)) != NULL)
        k++;
    if (bad || k != count) {
        free(list);
        return CLEVAL_ERR_INPUT;
    }
    *cells = list;
    *n = count;
    return CLEVAL_OK;
}

/* Buffered output through report_json_emit. */
typedef struct emitter {
    report_json_emit emit;
    void *user;
    char buffer[1 << 16];
    size_t used;
    bool failed;
} emitter;

static void flush(emitter *e)
{
    if (e->used && !e->failed) e->failed = !e->emit(e->user, e->buffer, e->used);
    e->used = 0;
}

static void put(emitter *e, const char *bytes, size_t n)
{
    if (n > sizeof e->buffer - e->used) flush(e);
    if (n > sizeof e->buffer) {
        if (!e->failed) e->failed = !e->emit(e->user, bytes, n);
        return;
    }
    memcpy(e->buffer + e->used, bytes, n);
    e->used += n;
}

/* Expands one placeholder (text after MARK "M"); returns the text after its closing MARK, or
 * NULL when it is malformed. */
static const char *expand_matrix(emitter *e, const char *text)
{
    uint32_t rows, cols;
    const char *at = parse_header(text, &rows, &cols);
    if (!at) return NULL;
    cleval_count_cell next;
    bool bad, have = (at = parse_cell(at, &next, &bad)) != NULL;
    const char *rest = at;
    if (bad) return NULL;
    char digits[48];
    put(e, "[", 1);
    for (uint32_t r = 0; r < rows; r++) {
        put(e, r ? ", [" : "[", r ? 3 : 1);
        for (uint32_t c = 0; c < cols; c++) {
            if (c) put(e, ", ", 2);
            uint64_t v = 0;
            if (have && next.row == r && next.col == c) {
                v = next.count;
                have = (at = parse_cell(rest, &next, &bad)) != NULL;
                if (bad) return NULL;
                if (have) rest = at;
            }
            put(e, digits, count_text(v, digits));
        }
        put(e, "]", 1);
    }
    put(e, "]", 1);
    if (have) return NULL; /* a cell outside the shape, or out of order */
    const char *end = strchr(text + 1, MARK);
    return end ? end + 1 : NULL;
}

bool report_json_expand(const char *text, report_json_emit emit, void *user)
{
    emitter *e = malloc(sizeof *e);
    if (!e) return false;
    e->emit = emit;
    e->user = user;
    e->used = 0;
    e->failed = false;
    bool ok = true;
    while (ok && *text) {
        const char *mark = strchr(text, MARK);
        size_t plain = mark ? (size_t)(mark - text) : strlen(text);
        put(e, text, plain);
        if (!mark) break;
        text = expand_matrix(e, mark);
        ok = text != NULL;
    }
    flush(e);
    ok = ok && !e->failed;
    free(e);
    return ok;
}

bool report_json_has_matrix(const char *text)
{
    return strchr(text, MARK) != NULL;
}
