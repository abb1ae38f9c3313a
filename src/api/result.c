/* Results: the JSON report's text, the predictions and scores, the gates' verdict. */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

cleval_status api_result_create(cJSON *report, bool passed, const char *verdict,
                                cleval_result **out)
{
    *out = NULL;
    cleval_result *r = calloc(1, sizeof *r);
    char *text = r && report ? cleval_report_json_text(report) : NULL;
    cJSON_Delete(report);
    if (!text) {
        free(r);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
    }
    r->json = text;
    r->passed = passed;
    r->verdict = verdict ? verdict : "";
    *out = r;
    return CLEVAL_OK;
}

const char *cleval_result_json(const cleval_result *result)
{
    return result ? result->json : "";
}

const int32_t *cleval_result_predictions(const cleval_result *result, uint64_t *n)
{
    if (n) *n = result && result->pred ? result->n : 0;
    return result ? result->pred : NULL;
}

const float *cleval_result_scores(const cleval_result *result, uint64_t *n, uint32_t *width)
{
    bool has = result && result->scores;
    if (n) *n = has ? result->n : 0;
    if (width) *width = has ? result->width : 0;
    return has ? result->scores : NULL;
}

bool cleval_result_passed(const cleval_result *result)
{
    return result && result->passed;
}

const char *cleval_result_verdict(const cleval_result *result)
{
    return result ? result->verdict : "";
}

void cleval_result_destroy(cleval_result *result)
{
    if (!result) return;
    free(result->json);
    free(result->pred);
    free(result->scores);
    free(result);
}

/* Grows the arrays to hold `rows` rows (doubling, so the copies stay linear). */
static cleval_status reserve(api_collector *c, uint64_t rows, uint32_t width)
{
    if (rows <= c->capacity && (width == 0 || c->scores)) return CLEVAL_OK;
    uint64_t capacity = c->capacity;
    while (capacity < rows)
        capacity = capacity ? 2 * capacity : 4096;
    if (capacity > SIZE_MAX / sizeof(float) / (width ? width : 1))
        return cleval_fail(CLEVAL_ERR_NOMEM, "%llu predictions do not fit in memory",
                           (unsigned long long)rows);
    int32_t *pred = realloc(c->pred, (size_t)capacity * sizeof *pred);
    if (pred) c->pred = pred;
    float *scores = width ? realloc(c->scores, (size_t)capacity * width * sizeof *scores) : NULL;
    if (scores) c->scores = scores;
    if (!pred || (width && !scores))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for %llu predictions",
                           (unsigned long long)rows);
    c->capacity = capacity;
    if (width) c->width = width;
    return CLEVAL_OK;
}

/* The sink's write: batches arrive in any order, each once. */
static cleval_status collect(void *user, uint64_t row0, uint32_t n, const int32_t *pred,
                             const float *scores, uint32_t width)
{
    api_collector *c = user;
    if (!scores) width = 0;
    if (c->width && width != c->width)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "score rows of %u then %u values", c->width, width);
    cleval_status status = reserve(c, row0 + n, width);
    if (status != CLEVAL_OK) return status;
    memcpy(c->pred + row0, pred, n * sizeof *pred);
    if (width) memcpy(c->scores + row0 * width, scores, (size_t)n * width * sizeof *scores);
    c->n = row0 + n > c->n ? row0 + n : c->n;
    return CLEVAL_OK;
}

void api_collector_init(api_collector *c)
{
    *c = (api_collector){.sink = {.write = collect, .user = c}};
}

void api_collector_give(api_collector *c, cleval_result *result)
{
    result->pred = c->pred;
    result->scores = c->scores;
    result->n = c->n;
    result->width = c->scores ? c->width : 0;
    c->pred = NULL;
    c->scores = NULL;
}

void api_collector_free(api_collector *c)
{
    free(c->pred);
    free(c->scores);
    c->pred = NULL;
    c->scores = NULL;
}
