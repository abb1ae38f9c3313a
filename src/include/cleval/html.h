/* The HTML report of a run (--html): one self-contained page (inline CSS and SVG, no script, no
 * URL) rendered from the very JSON report tree the command writes for --json, each section
 * shown when its keys are present, so a new key needs only a new renderer. */
#ifndef CLEVAL_HTML_H
#define CLEVAL_HTML_H

#include <stddef.h>

#include <cJSON.h>

#include "cleval/output.h"
#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the page shows that the JSON report does not hold: the command and its input files. */
typedef struct cleval_html_page {
    const char *command; /* "eval", "knn", "metrics", "compare", "drift" */
    const cleval_named_path
        *inputs; /* {"--data", "test.h5"}, ...; entries with NULL path skipped */
    size_t n_inputs;
} cleval_html_page;

/* Renders the page of `report` (a JSON report of docs/contract.md; its numbers may be number
 * items or the raw items cleval_report_write_json leaves) as a heap string (free()), or NULL
 * when out of memory. Every text from the report or the page (class names, paths) is escaped,
 * and made valid UTF-8 first. */
char *cleval_html_render(const cJSON *report, const cleval_html_page *page);

/* Renders the page and writes it to `path` (flag --html) under a temporary renamed over it,
 * like every other output (cleval_output_write_text). */
cleval_status cleval_html_write(const cJSON *report, const cleval_html_page *page,
                                const char *path);

#ifdef __cplusplus
}
#endif

#endif
