/* The printing side of the matrix placeholders of json_matrix.c (report module only). */
#ifndef CLEVAL_REPORT_JSON_MATRIX_H
#define CLEVAL_REPORT_JSON_MATRIX_H

#include <stdbool.h>
#include <stddef.h>

#include "cleval/report.h"

/* Receives the next n bytes of the text; false stops the expansion as failed. */
typedef bool (*report_json_emit)(void *user, const char *bytes, size_t n);

/* Passes `text` (printed from a report tree) to emit, each matrix placeholder expanded into
 * its dense array of rows; false when emit failed, memory ran out or a placeholder is
 * malformed. */
bool report_json_expand(const char *text, report_json_emit emit, void *user);

/* Whether `text` holds a matrix placeholder. */
bool report_json_has_matrix(const char *text);

#endif
