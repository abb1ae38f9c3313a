/* CI gates on metrics, their report lines and JSON, and the JUnit and Markdown files (see
 * gates.h). The files are built in memory and written atomically like every other output. */
#include "cleval/gates.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/output.h"

void cleval_metric_gates(const cleval_metrics *m, const cleval_metric_limits *limits,
                         cleval_gate gates[CLEVAL_METRIC_GATES], uint32_t *n)
{
    *n = 0;
    if (limits->use_min_accuracy)
        gates[(*n)++] = (cleval_gate){.name = "min_accuracy",
                                      .limit = limits->min_accuracy,
                                      .value = m->accuracy,
                                      .below = true,
                                      .passed = m->accuracy >= limits->min_accuracy,
                                      .class_index = CLEVAL_GATE_NO_CLASS};
    if (limits->use_min_class_recall) {
        int64_t worst = CLEVAL_GATE_NO_CLASS;
        for (uint32_t k = 0; k < m->n_classes; k++)
            if (m->per_class[k].support > 0 &&
                (worst < 0 || m->per_class[k].prf.recall < m->per_class[worst].prf.recall))
                worst = k;
        /* A report has samples, so some class has support. */
        double recall = worst >= 0 ? m->per_class[worst].prf.recall : 0.0;
        gates[(*n)++] = (cleval_gate){.name = "min_class_recall",
                                      .limit = limits->min_class_recall,
                                      .value = recall,
                                      .below = true,
                                      .passed = recall >= limits->min_class_recall,
                                      .class_index = worst};
    }
}

bool cleval_gates_passed(const cleval_gate *gates, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!gates[i].passed) return false;
    return true;
}

/* "3" or "3 (cat)". */
static void class_text(const cleval_gate *g, const cleval_class_names *names, char *out,
                       size_t size)
{
    if (names && names->names && g->class_index < (int64_t)names->count)
        snprintf(out, size, "%lld (%s)", (long long)g->class_index, names->names[g->class_index]);
    else
        snprintf(out, size, "%lld", (long long)g->class_index);
}

/* "0.8 < limit 0.9 (below it by 0.1)": the comparison and, for a failed gate, the margin. */
static void verdict_text(const cleval_gate *g, char *out, size_t size)
{
    const char *op = g->below ? (g->passed ? ">=" : "<") : (g->passed ? "<=" : ">");
    int n = snprintf(out, size, "%.6g %s limit %.6g", g->value, op, g->limit);
    if (g->passed || n < 0 || (size_t)n >= size) return;
    if (g->below)
        snprintf(out + n, size - (size_t)n, " (below it by %.6g)", g->limit - g->value);
    else
        snprintf(out + n, size - (size_t)n, " (exceeded by %.6g)", g->value - g->limit);
}

void cleval_gate_describe(const cleval_gate *g, const cleval_class_names *names, char *out,
                          size_t size)
{
    char verdict[160], label[160];
    verdict_text(g, verdict, sizeof verdict);
    if (g->class_index == CLEVAL_GATE_NO_CLASS) {
        snprintf(out, size, "%s: %s", g->name, verdict);
        return;
    }
    class_text(g, names, label, sizeof label);
    snprintf(out, size, "%s: %s, class %s", g->name, verdict, label);
}

void cleval_gates_report(FILE *out, const cleval_gate *gates, uint32_t n,
                         const cleval_class_names *names)
{
    if (n == 0) return;
    fprintf(out, "Gates:\n");
    uint32_t failed = 0;
    char verdict[160], label[160];
    for (uint32_t i = 0; i < n; i++) {
        const cleval_gate *g = &gates[i];
        verdict_text(g, verdict, sizeof verdict);
        fprintf(out, "  %s  %-18s %s", g->passed ? "PASS" : "FAIL", g->name, verdict);
        if (g->class_index != CLEVAL_GATE_NO_CLASS) {
            class_text(g, names, label, sizeof label);
            fprintf(out, ", class %s", label);
        }
        fputc('\n', out);
        failed += !g->passed;
    }
    if (failed == 0) {
        fprintf(out, "Verdict: PASS (%u gate%s)\n", n, n == 1 ? "" : "s");
        return;
    }
    fprintf(out, "Verdict: FAIL (%u of %u gates:", failed, n);
    for (uint32_t i = 0; i < n; i++)
        if (!gates[i].passed) fprintf(out, " %s", gates[i].name);
    fprintf(out, ")\n");
}

cJSON *cleval_gates_json(const cleval_gate *gates, uint32_t n, const cleval_class_names *names)
{
    cJSON *list = cJSON_CreateArray();
    for (uint32_t i = 0; list && i < n; i++) {
        const cleval_gate *g = &gates[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(list);
            return NULL;
        }
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddNumberToObject(o, "limit", g->limit);
        cJSON_AddNumberToObject(o, "value", g->value);
        cJSON_AddBoolToObject(o, "passed", g->passed);
        if (g->class_index != CLEVAL_GATE_NO_CLASS) {
            char label[32];
            cJSON_AddNumberToObject(o, "class", (double)g->class_index);
            snprintf(label, sizeof label, "%lld", (long long)g->class_index);
            bool named = names && names->names && g->class_index < (int64_t)names->count;
            cJSON_AddStringToObject(o, "class_name", named ? names->names[g->class_index] : label);
        }
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

/* Text between XML tags or in an attribute: the five special characters as entities, and
 * control characters, which XML 1.0 cannot hold at all, as '?'. */
static void put_xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(c < 0x20 && c != '\t' ? '?' : c, f);
        }
    }
}

/* Closes the memory stream `f` (which sets *text) and writes its text to `path`; NOMEM when the
 * stream failed. */
static cleval_status write_stream(FILE *f, char **text, const char *path, const char *what)
{
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok && *text;
    cleval_status status = ok ? cleval_output_write_text(path, what, *text)
                              : cleval_fail(CLEVAL_ERR_NOMEM, "%s %s: out of memory", what, path);
    free(*text);
    return status;
}

cleval_status cleval_gates_write_junit(const char *path, const char *suite,
                                       const cleval_gate *gates, uint32_t n,
                                       const cleval_class_names *names)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "--junit %s: out of memory", path);
    uint32_t failures = 0;
    for (uint32_t i = 0; i < n; i++)
        failures += !gates[i].passed;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"cleval\" tests=\"%u\" failures=\"%u\" errors=\"0\">\n", n,
            failures);
    fputs("  <testsuite name=\"", f);
    put_xml(f, suite);
    fprintf(f, "\" tests=\"%u\" failures=\"%u\" errors=\"0\" skipped=\"0\">\n", n, failures);
    char line[512];
    for (uint32_t i = 0; i < n; i++) {
        const cleval_gate *g = &gates[i];
        fputs("    <testcase classname=\"", f);
        put_xml(f, suite);
        fputs("\" name=\"", f);
        put_xml(f, g->name);
        if (g->passed) {
            fputs("\"/>\n", f);
            continue;
        }
        cleval_gate_describe(g, names, line, sizeof line);
        fputs("\">\n      <failure type=\"gate\" message=\"", f);
        put_xml(f, line);
        fprintf(f, "\">value %.17g, limit %.17g</failure>\n    </testcase>\n", g->value, g->limit);
    }
    fputs("  </testsuite>\n</testsuites>\n", f);
    return write_stream(f, &text, path, "--junit");
}

/* A class name in a Markdown table cell: Markdown's punctuation escaped, HTML's as entities,
 * control characters (line breaks end a table row) as spaces. */
static void put_markdown(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20)
            fputc(' ', f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '&')
            fputs("&amp;", f);
        else if (strchr("\\`*_[]|#", c))
            fprintf(f, "\\%c", c);
        else
            fputc(c, f);
    }
}

static void summary_gates(FILE *f, const cleval_gate *gates, uint32_t n,
                          const cleval_class_names *names)
{
    fprintf(f, "\n### Gates\n\n");
    if (n == 0) {
        fprintf(f, "No gates set.\n");
        return;
    }
    fprintf(f, "| gate | value | limit | result |\n| --- | ---: | ---: | --- |\n");
    for (uint32_t i = 0; i < n; i++) {
        const cleval_gate *g = &gates[i];
        fprintf(f, "| %s", g->name);
        if (g->class_index != CLEVAL_GATE_NO_CLASS) {
            fprintf(f, " (class %lld", (long long)g->class_index);
            if (names && names->names && g->class_index < (int64_t)names->count) {
                fputs(": ", f);
                put_markdown(f, names->names[g->class_index]);
            }
            fputc(')', f);
        }
        fprintf(f, " | %.6g | %s %.6g | ", g->value, g->below ? "&ge;" : "&le;", g->limit);
        if (g->passed)
            fprintf(f, "PASS |\n");
        else
            fprintf(f, "**FAIL** (%s by %.6g) |\n", g->below ? "below" : "above",
                    g->below ? g->limit - g->value : g->value - g->limit);
    }
}

static void summary_classes(FILE *f, const cleval_metrics *m, const cleval_class_names *names)
{
    fprintf(f, "\n### Per class\n\n");
    if (m->n_classes > CLEVAL_SUMMARY_MAX_CLASSES) {
        fprintf(f, "%u classes: the per-class table is in the JSON report (--json).\n",
                m->n_classes);
        return;
    }
    fprintf(f, "| class | precision | recall | F1 | support |\n"
               "| --- | ---: | ---: | ---: | ---: |\n");
    for (uint32_t k = 0; k < m->n_classes; k++) {
        const cleval_class_metrics *c = &m->per_class[k];
        fprintf(f, "| %u", k);
        if (names && names->names && k < names->count) {
            fputs(": ", f);
            put_markdown(f, names->names[k]);
        }
        fprintf(f, " | %.4f | %.4f | %.4f | %llu |\n", c->prf.precision, c->prf.recall, c->prf.f1,
                (unsigned long long)c->support);
    }
}

/* The summary's title with the verdict (when there are gates) and the head of its table. */
static void summary_title(FILE *f, const char *title, const cleval_gate *gates, uint32_t n)
{
    fprintf(f, "## %s", title);
    if (n > 0) fprintf(f, ": %s", cleval_gates_passed(gates, n) ? "PASS" : "FAIL");
    fprintf(f, "\n\n| metric | value |\n| --- | ---: |\n");
}

void cleval_summary_row_set(cleval_summary_row *row, const char *name, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    row->name = name;
    vsnprintf(row->value, sizeof row->value, format, args);
    va_end(args);
}

cleval_status cleval_gates_write_verdict_summary(const char *path, const char *title,
                                                 const cleval_summary_row *rows, uint32_t n_rows,
                                                 const cleval_gate *gates, uint32_t n,
                                                 const cleval_class_names *names)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "--summary-md %s: out of memory", path);
    summary_title(f, title, gates, n);
    for (uint32_t i = 0; i < n_rows; i++) {
        fputs("| ", f);
        put_markdown(f, rows[i].name);
        fputs(" | ", f);
        put_markdown(f, rows[i].value);
        fputs(" |\n", f);
    }
    summary_gates(f, gates, n, names);
    return write_stream(f, &text, path, "--summary-md");
}

cleval_status cleval_gates_write_summary(const char *path, const char *title,
                                         const cleval_metrics *m, const cleval_class_names *names,
                                         const cleval_gate *gates, uint32_t n)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return cleval_fail(CLEVAL_ERR_NOMEM, "--summary-md %s: out of memory", path);
    summary_title(f, title, gates, n);
    fprintf(f, "| samples | %llu |\n| classes | %u |\n", (unsigned long long)m->n_samples,
            m->n_classes);
    fprintf(f, "| accuracy | %.4f |\n| balanced accuracy | %.4f |\n", m->accuracy,
            m->balanced_accuracy);
    fprintf(f, "| macro F1 | %.4f |\n| weighted F1 | %.4f |\n", m->macro.f1, m->weighted.f1);
    fprintf(f, "| MCC | %.4f |\n", m->mcc);
    fprintf(f, "| Cohen's kappa (none / linear / quadratic) | %.4f / %.4f / %.4f |\n",
            m->cohen_kappa[CLEVAL_KAPPA_NONE], m->cohen_kappa[CLEVAL_KAPPA_LINEAR],
            m->cohen_kappa[CLEVAL_KAPPA_QUADRATIC]);
    summary_gates(f, gates, n, names);
    summary_classes(f, m, names);
    return write_stream(f, &text, path, "--summary-md");
}
