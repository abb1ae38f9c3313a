/* `cleval drift`: output-distribution drift between a reference and a current run. */
#include "cli.h"
#include "stop.h"

#include <stdio.h>
#include <string.h>

#include "cleval/drift.h"

static const char usage[] =
    "Usage: cleval drift REF.h5 CUR.h5 [options]\n"
    "\n"
    "Compares the output distributions of two prediction files (any lengths, labels optional):\n"
    "predicted classes and confidence (the largest softmax probability of each scores row, or\n"
    "the largest entry when every row of the file is already a probability vector) in 10 bins\n"
    "over [0, 1], and the mean entropy. Reports the Population Stability Index and the\n"
    "Jensen-Shannon distance (base 2) of both distributions, the chi-squared test of the class\n"
    "counts, and recall shifts per class when both files hold y. Histograms are counted on the\n"
    "OpenCL device. Exit 1 on any alert (after writing the reports); a warning never fails.\n"
    "--junit writes one JUnit testcase per alert check, --summary-md a Markdown summary, --html\n"
    "an HTML report.\n";

static cleval_status parse_thresholds(const cli_args *args, cleval_drift_thresholds *t)
{
    cleval_drift_thresholds d = cleval_drift_default_thresholds();
    cleval_status status;
    if ((status = cli_get_number(args, OPT_PSI_WARN, d.psi_warn, 0, 1e300, &t->psi_warn)) ||
        (status = cli_get_number(args, OPT_PSI_ALERT, d.psi_alert, 0, 1e300, &t->psi_alert)) ||
        (status = cli_get_number(args, OPT_JS_ALERT, d.js_alert, 0, 1, &t->js_alert)) ||
        (status = cli_get_number(args, OPT_ALPHA, d.alpha, 0, 1, &t->alpha)))
        return status;
    /* A default never overrules a value given: it moves to meet it. */
    bool warn_given = args->present[OPT_PSI_WARN], alert_given = args->present[OPT_PSI_ALERT];
    if (t->psi_warn > t->psi_alert && warn_given && alert_given)
        return cleval_fail(CLEVAL_ERR_USAGE, "--psi-warn %g is above --psi-alert %g", t->psi_warn,
                           t->psi_alert);
    if (t->psi_warn > t->psi_alert && alert_given) t->psi_warn = t->psi_alert;
    if (t->psi_warn > t->psi_alert && warn_given) t->psi_alert = t->psi_warn;
    return CLEVAL_OK;
}

enum { DRIFT_GATES = 5 };

/* The alert checks as gates for --junit and --summary-md (class_psi, class_js, class_chi2,
 * confidence_psi, confidence_js), failed when that alert fired; warnings never fail. */
static void alert_gates(const cleval_drift_result *r, cleval_gate gates[DRIFT_GATES])
{
    const cleval_drift_thresholds *t = &r->thresholds;
    const cleval_gate checks[DRIFT_GATES] = {
        {"class_psi", t->psi_alert, r->class_psi, false, true, CLEVAL_GATE_NO_CLASS},
        {"class_js", t->js_alert, r->class_js, false, true, CLEVAL_GATE_NO_CLASS},
        {"class_chi2", t->alpha, r->class_p_value, true, true, CLEVAL_GATE_NO_CLASS},
        {"confidence_psi", t->psi_alert, r->confidence_psi, false, true, CLEVAL_GATE_NO_CLASS},
        {"confidence_js", t->js_alert, r->confidence_js, false, true, CLEVAL_GATE_NO_CLASS},
    };
    for (uint32_t i = 0; i < DRIFT_GATES; i++) {
        gates[i] = checks[i];
        for (uint32_t a = 0; a < r->n_alerts; a++)
            if (strcmp(r->alerts[a].name, gates[i].name) == 0) gates[i].passed = false;
    }
}

/* --summary-md: the sample counts, the mean confidences and the warnings, then the checks. */
static cleval_status write_summary(const cli_args *args, const cleval_drift_result *r,
                                   const cleval_gate *gates)
{
    if (!args->present[OPT_SUMMARY_MD]) return CLEVAL_OK;
    cleval_summary_row rows[4];
    cleval_summary_row_set(&rows[0], "samples (reference / current)", "%llu / %llu",
                           (unsigned long long)r->reference.n_samples,
                           (unsigned long long)r->current.n_samples);
    cleval_summary_row_set(&rows[1], "mean confidence (reference / current)", "%.4f / %.4f",
                           r->reference.mean_confidence, r->current.mean_confidence);
    cleval_summary_row_set(&rows[2], "mean entropy (reference / current)", "%.4f / %.4f",
                           r->reference.mean_entropy, r->current.mean_entropy);
    cleval_summary_row_set(&rows[3], "warnings (never fail)", "%s", r->n_warnings ? "" : "none");
    size_t used = strlen(rows[3].value);
    for (uint32_t i = 0; i < r->n_warnings && used < sizeof rows->value; i++)
        used += (size_t)snprintf(rows[3].value + used, sizeof rows->value - used, "%s%s %.4g",
                                 i ? ", " : "", r->warnings[i].name, r->warnings[i].value);
    return cleval_gates_write_verdict_summary(args->values[OPT_SUMMARY_MD], "cleval drift", rows,
                                              4, gates, DRIFT_GATES, &r->class_names);
}

/* The reports built from the JSON tree: --json and --html. */
static cleval_status write_reports(const cli_args *args, const cleval_drift_result *r,
                                   const cleval_device *dev)
{
    if (!args->present[OPT_JSON] && !args->present[OPT_HTML]) return CLEVAL_OK;
    cJSON *json = cleval_drift_json(r);
    if (json) cJSON_AddStringToObject(json, "device", cleval_device_get_info(dev)->name);
    cleval_status status =
        json ? CLEVAL_OK : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory building the JSON report");
    if (status == CLEVAL_OK && args->present[OPT_JSON])
        status = cli_write_json(json, args->values[OPT_JSON]);
    if (status == CLEVAL_OK)
        status = cli_write_html(args, "drift",
                                (const char *const[]){"reference", "current", NULL}, json);
    cJSON_Delete(json);
    return status;
}

int cli_drift(int argc, char **argv)
{
    static const cli_option_id allowed[] = {
        OPT_HELP,      OPT_PRED_KEY, OPT_SCORES_KEY, OPT_Y_KEY,  OPT_PSI_WARN,
        OPT_PSI_ALERT, OPT_JS_ALERT, OPT_ALPHA,      OPT_JSON,   OPT_BATCH,
        OPT_DEVICE,    OPT_PROGRESS, OPT_QUIET,      OPT_VERBOSE, OPT_ALLOW_EXTERNAL_STORAGE,
        OPT_ALLOW_NONFINITE, OPT_MAX_CLASSES, OPT_JUNIT, OPT_SUMMARY_MD, OPT_HTML,
        OPT_PROGRESS_EVERY};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "drift", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    cli_setup_logging(&args);

    cleval_drift_config config = {0};
    cleval_drift_result result = {0};
    cleval_device *dev = NULL;
    cleval_status status = CLEVAL_OK;
    if (args.n_positional < 2)
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "drift: two prediction files are required (REF.h5 CUR.h5)");
    else if (args.n_positional > 2)
        status = cleval_fail(CLEVAL_ERR_USAGE,
                             "drift: unexpected argument '%s' (two files: REF.h5 CUR.h5)",
                             args.positional[2]);
    if (status == CLEVAL_OK) status = cli_get_positive(&args, OPT_BATCH, 0, &config.batch);
    if (status == CLEVAL_OK) status = cli_get_max_classes(&args, &config.max_classes);
    if (status == CLEVAL_OK) status = parse_thresholds(&args, &config.thresholds);
    if (status == CLEVAL_OK)
        status = cli_check_outputs(&args, (const char *const[]){"REF", "CUR", NULL}, NULL, 0);
    if (status == CLEVAL_OK) status = cli_progress_check(&args);
    if (status == CLEVAL_OK) status = cli_open_device(&args, &dev);

    if (status == CLEVAL_OK) {
        cli_progress progress;
        cli_progress_init(&progress, &args, cleval_device_get_info(dev)->name);
        config.path_reference = args.positional[0];
        config.path_current = args.positional[1];
        config.pred_key = args.values[OPT_PRED_KEY];
        config.scores_key = args.values[OPT_SCORES_KEY];
        config.y_key = args.values[OPT_Y_KEY];
        config.device = dev;
        config.allow_nonfinite = args.present[OPT_ALLOW_NONFINITE];
        config.progress = cli_progress_update;
        config.progress_user = &progress;
        cli_stop_install();
        config.stop = cli_stop_request();
        status = cleval_drift_run(&config, &result);
        cli_progress_finish(&progress);
    }
    cleval_gate gates[DRIFT_GATES];
    if (status == CLEVAL_OK) status = write_reports(&args, &result, dev);
    if (status == CLEVAL_OK) alert_gates(&result, gates);
    if (status == CLEVAL_OK)
        status = cli_write_junit(&args, "drift", gates, DRIFT_GATES, &result.class_names);
    if (status == CLEVAL_OK) status = write_summary(&args, &result, gates);
    if (status == CLEVAL_OK && !cli_json_to_stdout(&args)) {
        cleval_drift_report(stdout, &result);
        fflush(stdout);
    }
    uint32_t alerts = result.n_alerts;
    cleval_drift_result_free(&result);
    cleval_device_close(dev);
    cli_args_free(&args);
    if (status != CLEVAL_OK) return cli_fail(status);
    return alerts ? CLI_EXIT_GATE_FAILED : CLI_EXIT_OK;
}
