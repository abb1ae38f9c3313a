/* Error analysis (see errors.h): the host's running lists (a hash map of confused pairs, four
 * bounded confidence lists) and the device's per-batch selection over kernels/errors.cl. */
#include "cleval/errors.h"

#include <stdlib.h>
#include <string.h>

/* --- Confused pairs ----------------------------------------------------------------------- */

/* One (true, predicted) pair seen: its count and its lowest rows. The rows are appended and,
 * once 2N are held, sorted and cut to N: batches reach the collector in any order. */
typedef struct pair_entry {
    uint64_t key; /* true << 32 | predicted; 0 marks an empty slot (true == pred never enters) */
    uint64_t count;
    uint32_t n_rows, capacity;
    uint64_t *rows;
    uint64_t limit; /* the N-th lowest row so far (UINT64_MAX before N): later rows are out */
} pair_entry;

struct cleval_errors_collector {
    uint32_t n;
    bool with_scores;
    pair_entry *pairs; /* open addressing, a power of two slots, at most half full */
    uint32_t n_pair_slots, n_pairs;
    cleval_error_sample *lists[CLEVAL_ERROR_LISTS]; /* [2N] each, the best n_list[l] first */
    uint32_t n_list[CLEVAL_ERROR_LISTS];
};

static uint64_t pair_key(int32_t true_class, int32_t predicted)
{
    return (uint64_t)(uint32_t)true_class << 32 | (uint32_t)predicted;
}

static uint32_t pair_slot(uint64_t key, uint32_t n_slots)
{
    key *= 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: spreads neighbouring pairs */
    return (uint32_t)(key >> 32) & (n_slots - 1);
}

static cleval_status grow_pairs(cleval_errors_collector *c)
{
    uint32_t n_slots = c->n_pair_slots ? 2 * c->n_pair_slots : 64;
    pair_entry *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the confused pairs");
    for (uint32_t i = 0; i < c->n_pair_slots; i++) {
        if (!c->pairs[i].key) continue;
        uint32_t s = pair_slot(c->pairs[i].key, n_slots);
        while (slots[s].key)
            s = (s + 1) & (n_slots - 1);
        slots[s] = c->pairs[i];
    }
    free(c->pairs);
    c->pairs = slots;
    c->n_pair_slots = n_slots;
    return CLEVAL_OK;
}

static cleval_status find_pair(cleval_errors_collector *c, uint64_t key, pair_entry **out)
{
    cleval_status status;
    if (2 * (c->n_pairs + 1) > c->n_pair_slots && (status = grow_pairs(c)) != CLEVAL_OK)
        return status;
    uint32_t s = pair_slot(key, c->n_pair_slots);
    while (c->pairs[s].key && c->pairs[s].key != key)
        s = (s + 1) & (c->n_pair_slots - 1);
    if (!c->pairs[s].key) {
        c->pairs[s].key = key;
        c->pairs[s].limit = UINT64_MAX;
        c->n_pairs++;
    }
    *out = &c->pairs[s];
    return CLEVAL_OK;
}

static int by_row(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts a pair's rows and keeps the first N. */
static void settle_rows(pair_entry *e, uint32_t n)
{
    qsort(e->rows, e->n_rows, sizeof *e->rows, by_row);
    if (e->n_rows > n) e->n_rows = n;
    if (e->n_rows == n) e->limit = e->rows[n - 1];
}

static cleval_status add_pair_row(cleval_errors_collector *c, pair_entry *e, uint64_t row)
{
    e->count++;
    if (row > e->limit) return CLEVAL_OK;
    if (e->n_rows == 2 * c->n) settle_rows(e, c->n);
    if (e->n_rows == e->capacity) {
        uint32_t capacity = e->capacity ? 2 * e->capacity : 8;
        if (capacity > 2 * c->n) capacity = 2 * c->n;
        uint64_t *rows = realloc(e->rows, capacity * sizeof *rows);
        if (!rows) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the confused pairs");
        e->rows = rows;
        e->capacity = capacity;
    }
    e->rows[e->n_rows++] = row;
    return CLEVAL_OK;
}

cleval_status cleval_errors_add_pairs(cleval_errors_collector *c, uint64_t row0, uint32_t n,
                                      const int32_t *labels, const int32_t *pred)
{
    for (uint32_t i = 0; i < n; i++) {
        if (labels[i] == pred[i]) continue;
        pair_entry *e;
        cleval_status status = find_pair(c, pair_key(labels[i], pred[i]), &e);
        if (status == CLEVAL_OK) status = add_pair_row(c, e, row0 + i);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

/* --- Confidence lists --------------------------------------------------------------------- */

static int by_index(const cleval_error_sample *x, const cleval_error_sample *y)
{
    return (x->index > y->index) - (x->index < y->index);
}

/* Most confident first; equal confidences by row. */
static int by_confidence_descending(const void *a, const void *b)
{
    const cleval_error_sample *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? 1 : -1;
    return by_index(x, y);
}

/* Least confident first; equal confidences by row. */
static int by_confidence_ascending(const void *a, const void *b)
{
    const cleval_error_sample *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? -1 : 1;
    return by_index(x, y);
}

static int (*list_order(uint32_t list))(const void *, const void *)
{
    return list / CLEVAL_ERROR_VIEWS == CLEVAL_ERROR_CONFIDENT_WRONG ? by_confidence_descending
                                                                     : by_confidence_ascending;
}

cleval_status cleval_errors_add_picks(cleval_errors_collector *c, uint32_t list,
                                      const cleval_error_sample *picks, uint32_t n_picks)
{
    if (list >= CLEVAL_ERROR_LISTS || !c->lists[list] || n_picks > c->n)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "error list %u: %u picks for a list of %u", list,
                           n_picks, c->n);
    cleval_error_sample *kept = c->lists[list];
    memcpy(kept + c->n_list[list], picks, n_picks * sizeof *picks);
    uint32_t total = c->n_list[list] + n_picks;
    qsort(kept, total, sizeof *kept, list_order(list));
    c->n_list[list] = total < c->n ? total : c->n;
    return CLEVAL_OK;
}

/* --- The collector ------------------------------------------------------------------------ */

cleval_status cleval_errors_collector_create(uint32_t n, bool with_scores,
                                             cleval_errors_collector **out)
{
    *out = NULL;
    if (n < 1 || n > CLEVAL_ERRORS_MAX)
        return cleval_fail(CLEVAL_ERR_USAGE, "--errors: N must be in 1..%d (got %u)",
                           CLEVAL_ERRORS_MAX, n);
    cleval_errors_collector *c = calloc(1, sizeof *c);
    if (!c) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the error analysis");
    c->n = n;
    c->with_scores = with_scores;
    for (uint32_t l = 0; with_scores && l < CLEVAL_ERROR_LISTS; l++)
        if (!(c->lists[l] = malloc(2 * (size_t)n * sizeof *c->lists[l]))) {
            cleval_errors_collector_destroy(c);
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the error analysis");
        }
    *out = c;
    return CLEVAL_OK;
}

void cleval_errors_collector_destroy(cleval_errors_collector *c)
{
    if (!c) return;
    for (uint32_t i = 0; i < c->n_pair_slots; i++)
        free(c->pairs[i].rows);
    free(c->pairs);
    for (uint32_t l = 0; l < CLEVAL_ERROR_LISTS; l++)
        free(c->lists[l]);
    free(c);
}

uint32_t cleval_errors_collector_n(const cleval_errors_collector *c)
{
    return c->n;
}

void cleval_errors_free(cleval_errors *e)
{
    for (uint32_t i = 0; e->pairs && i < e->n_pairs; i++)
        free(e->pairs[i].indices);
    free(e->pairs);
    free(e->lists[0]);
    free(e->lists[1]);
    memset(e, 0, sizeof *e);
}

/* Largest count first; equal counts by (true, predicted), as the text report orders them. */
static int by_count_descending(const void *a, const void *b)
{
    const pair_entry *x = *(pair_entry *const *)a, *y = *(pair_entry *const *)b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return (x->key > y->key) - (x->key < y->key);
}

static cleval_status finish_pairs(cleval_errors_collector *c, cleval_errors *out)
{
    pair_entry **seen = malloc((c->n_pairs ? c->n_pairs : 1) * sizeof *seen);
    if (!seen) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the confused pairs");
    uint32_t n_seen = 0;
    for (uint32_t i = 0; i < c->n_pair_slots; i++)
        if (c->pairs[i].key) seen[n_seen++] = &c->pairs[i];
    qsort(seen, n_seen, sizeof *seen, by_count_descending);
    uint32_t n_top = n_seen < CLEVAL_ERRORS_TOP_PAIRS ? n_seen : CLEVAL_ERRORS_TOP_PAIRS;
    out->pairs = calloc(n_top ? n_top : 1, sizeof *out->pairs);
    cleval_status status = out->pairs ? CLEVAL_OK : CLEVAL_ERR_NOMEM;
    for (uint32_t i = 0; status == CLEVAL_OK && i < n_top; i++) {
        pair_entry *e = seen[i];
        settle_rows(e, c->n);
        cleval_confused_samples *p = &out->pairs[i];
        p->true_class = (uint32_t)(e->key >> 32);
        p->predicted_class = (uint32_t)e->key;
        p->count = e->count;
        p->indices = malloc(e->n_rows * sizeof *p->indices);
        if (!p->indices) {
            status = CLEVAL_ERR_NOMEM;
            break;
        }
        memcpy(p->indices, e->rows, e->n_rows * sizeof *p->indices);
        p->n_indices = e->n_rows;
        out->n_pairs = i + 1;
    }
    free(seen);
    if (status != CLEVAL_OK) return cleval_fail(status, "out of memory for the confused pairs");
    return CLEVAL_OK;
}

cleval_status cleval_errors_finish(cleval_errors_collector *c, bool softmax, cleval_errors *out)
{
    memset(out, 0, sizeof *out);
    out->n = c->n;
    out->has_scores = c->with_scores;
    out->softmax = softmax;
    cleval_status status = finish_pairs(c, out);
    for (uint32_t kind = 0; status == CLEVAL_OK && c->with_scores && kind < 2; kind++) {
        uint32_t list = kind * CLEVAL_ERROR_VIEWS + (softmax ? 1 : 0);
        uint32_t n = c->n_list[list];
        out->lists[kind] = malloc((n ? n : 1) * sizeof *out->lists[kind]);
        if (!out->lists[kind]) {
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the error analysis");
            break;
        }
        memcpy(out->lists[kind], c->lists[list], n * sizeof *out->lists[kind]);
        out->n_lists[kind] = n;
    }
    if (status != CLEVAL_OK) cleval_errors_free(out);
    return status;
}

/* --- The device's per-batch selection ----------------------------------------------------- */

enum { GROUP_SIZE = 64, DIGIT_BITS = 8, DIGITS = 1 << DIGIT_BITS, MAX_DIGIT_GROUPS = 64 };

struct cleval_error_finder {
    cleval_device *dev;
    cl_kernel keys_kernel, digits_kernel, gather_kernel;
    /* list_keys: per list, a radix pass's prefix, then the gather's threshold */
    cl_mem keys, list_keys, hist, count, picked;
    uint32_t n_classes, n, capacity, max_rows;
    uint32_t hist_host[CLEVAL_ERROR_LISTS * DIGITS];
    uint64_t *picked_host; /* [CLEVAL_ERROR_LISTS][capacity] */
};

uint32_t cleval_error_finder_capacity(const cleval_error_finder *f)
{
    return f->capacity;
}

cleval_status cleval_error_finder_create(cleval_device *dev, uint32_t n_classes, uint32_t n,
                                         uint32_t max_rows, cleval_error_finder **out)
{
    *out = NULL;
    cleval_error_finder *f = calloc(1, sizeof *f);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the error analysis");
    f->dev = dev;
    f->n_classes = n_classes;
    f->n = n;
    f->max_rows = max_rows ? max_rows : 1;
    f->capacity = n < f->max_rows ? n : f->max_rows;
    size_t lists = CLEVAL_ERROR_LISTS;
    f->picked_host = malloc(lists * f->capacity * sizeof *f->picked_host);
    cleval_status status =
        f->picked_host ? CLEVAL_OK
                       : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the error analysis");
    if (status == CLEVAL_OK)
        status = cleval_device_kernel(dev, "errors", NULL, "error_keys", &f->keys_kernel);
    if (status == CLEVAL_OK)
        status = cleval_device_kernel(dev, "errors", NULL, "error_digits", &f->digits_kernel);
    if (status == CLEVAL_OK)
        status = cleval_device_kernel(dev, "errors", NULL, "error_gather", &f->gather_kernel);
    if (status == CLEVAL_OK)
        status =
            cleval_device_buffer(dev, CL_MEM_READ_WRITE, lists * f->max_rows * sizeof(cl_ulong),
                                 NULL, "error-analysis keys", &f->keys);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_READ_ONLY, lists * sizeof(cl_ulong), NULL,
                                      "error-analysis list keys", &f->list_keys);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, sizeof f->hist_host, NULL,
                                      "error-analysis histogram", &f->hist);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_READ_WRITE, lists * sizeof(cl_uint), NULL,
                                      "error-analysis counts", &f->count);
    if (status == CLEVAL_OK)
        status =
            cleval_device_buffer(dev, CL_MEM_WRITE_ONLY, lists * f->capacity * sizeof(cl_ulong),
                                 NULL, "error-analysis picks", &f->picked);
    if (status != CLEVAL_OK) {
        cleval_error_finder_destroy(f);
        return status;
    }
    *out = f;
    return CLEVAL_OK;
}

void cleval_error_finder_destroy(cleval_error_finder *f)
{
    if (!f) return;
    cl_kernel kernels[] = {f->keys_kernel, f->digits_kernel, f->gather_kernel};
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (kernels[i]) clReleaseKernel(kernels[i]);
    cl_mem buffers[] = {f->keys, f->list_keys, f->hist, f->count, f->picked};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++)
        if (buffers[i]) clReleaseMemObject(buffers[i]);
    free(f->picked_host);
    free(f);
}

/* One radix-select pass: the histogram of the byte at `shift` of the keys matching `prefix`
 * above it, read back into f->hist_host. */
static cleval_status count_digits(cleval_error_finder *f, uint32_t rows, const uint64_t *prefix,
                                  uint32_t shift)
{
    cl_command_queue queue = cleval_device_queue(f->dev);
    cl_uint zero = 0;
    cl_ulong high_mask = shift == 64 - DIGIT_BITS ? 0 : ~(cl_ulong)0 << (shift + DIGIT_BITS);
    cleval_kernel_args a = cleval_kernel_args_begin(f->digits_kernel, "error_digits");
    cleval_kernel_arg_mem(&a, f->keys);
    cleval_kernel_arg_uint(&a, rows);
    cleval_kernel_arg_mem(&a, f->list_keys);
    cleval_kernel_arg(&a, sizeof high_mask, &high_mask);
    cleval_kernel_arg_uint(&a, shift);
    cleval_kernel_arg_mem(&a, f->hist);
    cleval_status status = CLEVAL_OK;
    size_t groups = (rows + GROUP_SIZE - 1) / GROUP_SIZE;
    if (groups > MAX_DIGIT_GROUPS) groups = MAX_DIGIT_GROUPS; /* fewer global atomics */
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueWriteBuffer(queue, f->list_keys, CL_FALSE, 0,
                                                      CLEVAL_ERROR_LISTS * sizeof(cl_ulong), prefix,
                                                      0, NULL, NULL),
                                 "clEnqueueWriteBuffer(error-analysis list keys)");
    if (status == CLEVAL_OK)
        status = cleval_cl_check(clEnqueueFillBuffer(queue, f->hist, &zero, sizeof zero, 0,
                                                     sizeof f->hist_host, 0, NULL, NULL),
                                 "clEnqueueFillBuffer(error-analysis histogram)");
    if (status == CLEVAL_OK)
        status = cleval_kernel_launch(queue, &a, 1, (size_t[]){groups * GROUP_SIZE},
                                      (size_t[]){GROUP_SIZE}, NULL);
    if (status == CLEVAL_OK)
        status =
            cleval_cl_check(clEnqueueReadBuffer(queue, f->hist, CL_TRUE, 0, sizeof f->hist_host,
                                                f->hist_host, 0, NULL, NULL),
                            "clEnqueueReadBuffer(error-analysis histogram)");
    return status;
}

/* The thresholds: per list, the key of its N-th best row, or every candidate when it has no
 * more than N (the largest key a row can have; none when it has no candidate). */
static cleval_status find_thresholds(cleval_error_finder *f, uint32_t rows, uint64_t *threshold)
{
    uint64_t prefix[CLEVAL_ERROR_LISTS] = {0};
    uint32_t rank[CLEVAL_ERROR_LISTS]; /* the wanted key's rank among those matching prefix */
    bool selecting[CLEVAL_ERROR_LISTS] = {false};
    for (uint32_t l = 0; l < CLEVAL_ERROR_LISTS; l++)
        rank[l] = f->n;
    for (uint32_t shift = 64 - DIGIT_BITS;; shift -= DIGIT_BITS) {
        cleval_status status = count_digits(f, rows, prefix, shift);
        if (status != CLEVAL_OK) return status;
        bool any = false;
        for (uint32_t l = 0; l < CLEVAL_ERROR_LISTS; l++) {
            const uint32_t *hist = f->hist_host + l * DIGITS;
            if (shift == 64 - DIGIT_BITS) { /* the first pass counts every candidate */
                uint64_t candidates = 0;
                for (uint32_t b = 0; b < DIGITS; b++)
                    candidates += hist[b];
                selecting[l] = candidates > f->n;
                threshold[l] = candidates ? UINT64_MAX - 1 : 0;
            }
            if (!selecting[l]) continue;
            uint32_t below = 0, b = 0;
            while (below + hist[b] < rank[l])
                below += hist[b++];
            rank[l] -= below;
            prefix[l] |= (uint64_t)b << shift;
            threshold[l] = prefix[l];
            if (hist[b] == rank[l]) { /* the whole bin is wanted: no need to look deeper */
                threshold[l] |= shift ? ~(uint64_t)0 >> (64 - shift) : 0;
                selecting[l] = false;
            }
            any = any || selecting[l];
        }
        if (!any || shift == 0) return CLEVAL_OK;
    }
}

/* The confidence a key holds (the inverse of the kernel's ordered()). */
static float key_confidence(uint64_t key, bool inverted)
{
    uint32_t o = (uint32_t)(key >> 32);
    if (inverted) o = ~o;
    uint32_t bits = (o & 0x80000000u) ? o & 0x7FFFFFFFu : ~o;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

cleval_status cleval_error_finder_run(cleval_error_finder *f, cl_mem scores, cl_mem labels,
                                      cl_mem pred, uint32_t rows, uint64_t row0,
                                      const int32_t *labels_host, const int32_t *pred_host,
                                      cleval_error_sample *picks, uint32_t *n_picks)
{
    memset(n_picks, 0, CLEVAL_ERROR_LISTS * sizeof *n_picks);
    if (rows == 0) return CLEVAL_OK;
    if (rows > f->max_rows)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "error batch of %u rows exceeds the finder's %u",
                           rows, f->max_rows);
    cl_command_queue queue = cleval_device_queue(f->dev);
    cleval_kernel_args a = cleval_kernel_args_begin(f->keys_kernel, "error_keys");
    cleval_kernel_arg_mem(&a, scores);
    cleval_kernel_arg_mem(&a, labels);
    cleval_kernel_arg_mem(&a, pred);
    cleval_kernel_arg_uint(&a, rows);
    cleval_kernel_arg_uint(&a, f->n_classes);
    cleval_kernel_arg_mem(&a, f->keys);
    cleval_status status = cleval_kernel_launch(queue, &a, 1, (size_t[]){rows}, NULL, NULL);
    uint64_t threshold[CLEVAL_ERROR_LISTS];
    if (status == CLEVAL_OK) status = find_thresholds(f, rows, threshold);
    if (status != CLEVAL_OK) return status;

    cl_uint zero = 0, count[CLEVAL_ERROR_LISTS];
    size_t picked_bytes = CLEVAL_ERROR_LISTS * (size_t)f->capacity * sizeof(cl_ulong);
    a = cleval_kernel_args_begin(f->gather_kernel, "error_gather");
    cleval_kernel_arg_mem(&a, f->keys);
    cleval_kernel_arg_uint(&a, rows);
    cleval_kernel_arg_mem(&a, f->list_keys);
    cleval_kernel_arg_uint(&a, f->capacity);
    cleval_kernel_arg_mem(&a, f->count);
    cleval_kernel_arg_mem(&a, f->picked);
    if ((status = cleval_cl_check(clEnqueueWriteBuffer(queue, f->list_keys, CL_FALSE, 0,
                                                       sizeof threshold, threshold, 0, NULL, NULL),
                                  "clEnqueueWriteBuffer(error-analysis thresholds)")) ||
        (status = cleval_cl_check(clEnqueueFillBuffer(queue, f->count, &zero, sizeof zero, 0,
                                                      sizeof count, 0, NULL, NULL),
                                  "clEnqueueFillBuffer(error-analysis counts)")) ||
        (status = cleval_kernel_launch(queue, &a, 1, (size_t[]){rows}, NULL, NULL)) ||
        (status = cleval_cl_check(
             clEnqueueReadBuffer(queue, f->count, CL_FALSE, 0, sizeof count, count, 0, NULL, NULL),
             "clEnqueueReadBuffer(error-analysis counts)")) ||
        (status = cleval_cl_check(clEnqueueReadBuffer(queue, f->picked, CL_TRUE, 0, picked_bytes,
                                                      f->picked_host, 0, NULL, NULL),
                                  "clEnqueueReadBuffer(error-analysis picks)")))
        return status;
    for (uint32_t l = 0; l < CLEVAL_ERROR_LISTS; l++) {
        if (count[l] > f->capacity)
            return cleval_fail(CLEVAL_ERR_INTERNAL, "error list %u: %u picks for %u places", l,
                               count[l], f->capacity);
        bool inverted = l / CLEVAL_ERROR_VIEWS == CLEVAL_ERROR_CONFIDENT_WRONG;
        for (uint32_t i = 0; i < count[l]; i++) {
            uint64_t key = f->picked_host[(size_t)l * f->capacity + i];
            uint32_t r = (uint32_t)key;
            picks[(size_t)l * f->capacity + i] = (cleval_error_sample){
                .index = row0 + r,
                .true_class = labels_host[r],
                .predicted_class = pred_host[r],
                .confidence = key_confidence(key, inverted),
            };
        }
        n_picks[l] = count[l];
    }
    return CLEVAL_OK;
}
