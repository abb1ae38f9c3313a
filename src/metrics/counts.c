/* Counts over (row, column) pairs with a dense or a sparse backing (see counts.h). The sparse
 * table uses linear probing with a power-of-two capacity kept at most half full; a cell whose
 * count is 0 is a free slot, so zeros are never stored and nothing is ever removed. */
#include "cleval/counts.h"

#include <stdlib.h>
#include <string.h>

enum { MIN_TABLE = 16 };

uint64_t cleval_counts_dense_limit(void)
{
    const char *env = getenv("CLEVAL_TEST_DENSE_CELLS");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0') return v;
    }
    return UINT64_C(1) << 22;
}

static bool fits_dense(uint32_t rows, uint32_t cols)
{
    uint64_t cells = (uint64_t)rows * cols;
    return cells <= cleval_counts_dense_limit() && cells <= SIZE_MAX / sizeof(uint64_t);
}

static size_t slot_of(uint32_t row, uint32_t col, size_t capacity)
{
    uint64_t key = ((uint64_t)row << 32 | col) * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(key >> 17) & (capacity - 1);
}

/* The slot holding (row, col), or the free slot where it belongs. */
static cleval_count_cell *table_find(cleval_count_cell *table, size_t capacity, uint32_t row,
                                     uint32_t col)
{
    size_t at = slot_of(row, col, capacity);
    while (table[at].count && (table[at].row != row || table[at].col != col))
        at = (at + 1) & (capacity - 1);
    return &table[at];
}

static cleval_status table_resize(cleval_counts *c, size_t capacity)
{
    cleval_count_cell *table = calloc(capacity, sizeof *table);
    if (!table)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %zu nonzero counts", c->used);
    for (size_t i = 0; i < c->capacity; i++)
        if (c->table[i].count)
            *table_find(table, capacity, c->table[i].row, c->table[i].col) = c->table[i];
    free(c->table);
    c->table = table;
    c->capacity = capacity;
    return CLEVAL_OK;
}

cleval_status cleval_counts_init(cleval_counts *c, uint32_t rows, uint32_t cols)
{
    memset(c, 0, sizeof *c);
    if (fits_dense(rows, cols)) {
        size_t cells = (size_t)rows * cols;
        c->cells = calloc(cells > 0 ? cells : 1, sizeof *c->cells);
        if (!c->cells)
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %u x %u counts", rows, cols);
    } else {
        c->table = calloc(MIN_TABLE, sizeof *c->table);
        if (!c->table)
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %u x %u counts", rows, cols);
        c->capacity = MIN_TABLE;
    }
    c->rows = rows;
    c->cols = cols;
    return CLEVAL_OK;
}

void cleval_counts_free(cleval_counts *c)
{
    free(c->cells);
    free(c->table);
    memset(c, 0, sizeof *c);
}

cleval_status cleval_counts_add(cleval_counts *c, uint32_t row, uint32_t col, uint64_t n)
{
    if (n == 0 || row >= c->rows || col >= c->cols) return CLEVAL_OK;
    if (c->cells) {
        c->cells[(size_t)row * c->cols + col] += n;
        return CLEVAL_OK;
    }
    cleval_count_cell *cell = table_find(c->table, c->capacity, row, col);
    if (cell->count) {
        cell->count += n;
        return CLEVAL_OK;
    }
    if ((c->used + 1) * 2 > c->capacity) {
        cleval_status status = table_resize(c, c->capacity * 2);
        if (status != CLEVAL_OK) return status;
        cell = table_find(c->table, c->capacity, row, col);
    }
    *cell = (cleval_count_cell){row, col, n};
    c->used++;
    return CLEVAL_OK;
}

uint64_t cleval_counts_get(const cleval_counts *c, uint32_t row, uint32_t col)
{
    if (row >= c->rows || col >= c->cols) return 0;
    if (c->cells) return c->cells[(size_t)row * c->cols + col];
    return table_find(c->table, c->capacity, row, col)->count;
}

bool cleval_counts_next(const cleval_counts *c, size_t *pos, cleval_count_cell *cell)
{
    if (c->cells) {
        for (size_t end = (size_t)c->rows * c->cols; *pos < end; ++*pos)
            if (c->cells[*pos]) {
                *cell = (cleval_count_cell){(uint32_t)(*pos / c->cols), (uint32_t)(*pos % c->cols),
                                            c->cells[*pos]};
                ++*pos;
                return true;
            }
        return false;
    }
    for (; *pos < c->capacity; ++*pos)
        if (c->table[*pos].count) {
            *cell = c->table[(*pos)++];
            return true;
        }
    return false;
}

cleval_status cleval_counts_grow(cleval_counts *c, uint32_t rows, uint32_t cols)
{
    rows = rows > c->rows ? rows : c->rows;
    cols = cols > c->cols ? cols : c->cols;
    if (rows == c->rows && cols == c->cols && (c->cells || c->table)) return CLEVAL_OK;
    if (c->table) { /* the cells keep their keys */
        c->rows = rows;
        c->cols = cols;
        return CLEVAL_OK;
    }
    cleval_counts wider;
    cleval_status status = cleval_counts_init(&wider, rows, cols);
    size_t pos = 0;
    cleval_count_cell cell;
    while (status == CLEVAL_OK && c->cells && cleval_counts_next(c, &pos, &cell))
        status = cleval_counts_add(&wider, cell.row, cell.col, cell.count);
    if (status != CLEVAL_OK) {
        cleval_counts_free(&wider);
        return status;
    }
    cleval_counts_free(c);
    *c = wider;
    return CLEVAL_OK;
}

cleval_status cleval_counts_add_counts(cleval_counts *into, const cleval_counts *part)
{
    cleval_status status = cleval_counts_grow(into, part->rows, part->cols);
    size_t pos = 0;
    cleval_count_cell cell;
    while (status == CLEVAL_OK && cleval_counts_next(part, &pos, &cell))
        status = cleval_counts_add(into, cell.row, cell.col, cell.count);
    return status;
}

cleval_status cleval_counts_add_dense(cleval_counts *into, uint32_t rows, uint32_t cols,
                                      const uint64_t *cells)
{
    cleval_counts view = {.rows = rows, .cols = cols, .cells = (uint64_t *)cells};
    if (!cells) return cleval_counts_grow(into, rows, cols);
    return cleval_counts_add_counts(into, &view);
}

cleval_status cleval_counts_copy(const cleval_counts *c, cleval_counts *out)
{
    *out =
        (cleval_counts){.rows = c->rows, .cols = c->cols, .used = c->used, .capacity = c->capacity};
    if (!c->cells && !c->table) return CLEVAL_OK; /* a zeroed struct */
    size_t cells = (size_t)c->rows * c->cols;
    size_t bytes =
        c->cells ? (cells > 0 ? cells : 1) * sizeof *c->cells : c->capacity * sizeof *c->table;
    void *copy = malloc(bytes > 0 ? bytes : 1);
    if (!copy) {
        *out = (cleval_counts){0};
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory copying %u x %u counts", c->rows,
                           c->cols);
    }
    if (bytes) memcpy(copy, c->cells ? (void *)c->cells : (void *)c->table, bytes);
    if (c->cells)
        out->cells = copy;
    else
        out->table = copy;
    return CLEVAL_OK;
}

static int by_position(const void *a, const void *b)
{
    const cleval_count_cell *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return x->col < y->col ? -1 : x->col > y->col;
}

cleval_status cleval_counts_sorted(const cleval_counts *c, cleval_count_cell **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t pos = 0, count = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(c, &pos, &cell))
        count++;
    if (count == 0) return CLEVAL_OK;
    cleval_count_cell *list = malloc(count * sizeof *list);
    if (!list) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %zu nonzero counts", count);
    pos = 0;
    for (size_t i = 0; cleval_counts_next(c, &pos, &cell); i++)
        list[i] = cell;
    /* Dense counts come out in row-major order already. */
    if (c->table) qsort(list, count, sizeof *list, by_position);
    *out = list;
    *n = count;
    return CLEVAL_OK;
}

uint64_t cleval_counts_total(const cleval_counts *c)
{
    uint64_t total = 0;
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(c, &pos, &cell))
        total += cell.count;
    return total;
}

cleval_status cleval_counts_to_dense(const cleval_counts *c, uint64_t **out)
{
    uint64_t cells = (uint64_t)c->rows * c->cols;
    *out =
        cells <= SIZE_MAX / sizeof **out ? calloc(cells ? (size_t)cells : 1, sizeof **out) : NULL;
    if (!*out)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %u x %u counts", c->rows, c->cols);
    size_t pos = 0;
    cleval_count_cell cell;
    while (cleval_counts_next(c, &pos, &cell))
        (*out)[(size_t)cell.row * c->cols + cell.col] = cell.count;
    return CLEVAL_OK;
}
