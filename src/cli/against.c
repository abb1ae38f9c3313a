/* --against (see against.h). */
#include "against.h"
#include "stop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Without --save, both runs' prediction files go into a fresh private folder, so no other
 * process can take their names. */
static cleval_status temporary_files(cli_against *against)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(against->temp_dir, sizeof against->temp_dir, "%s/cleval-against-XXXXXX", dir);
    if (!mkdtemp(against->temp_dir)) {
        against->temp_dir[0] = '\0';
        return cleval_fail(CLEVAL_ERR_IO, "--against: cannot create a temporary folder in %s",
                           dir);
    }
    snprintf(against->path_a, sizeof against->path_a, "%s/a.h5", against->temp_dir);
    snprintf(against->path_b, sizeof against->path_b, "%s/b.h5", against->temp_dir);
    return CLEVAL_OK;
}

void cli_against_second_path(const char *save, char *out, size_t size)
{
    snprintf(out, size, "%s.against.h5", save);
}

cleval_status cli_against_begin(const cli_args *args, const char *const *precisions,
                                cli_against *against)
{
    memset(against, 0, sizeof *against);
    if (!args->present[OPT_AGAINST]) return CLEVAL_OK;
    against->active = true;
    against->spec = args->values[OPT_AGAINST];
    against->allow_nonfinite = args->present[OPT_ALLOW_NONFINITE];
    /* A bad gate is a usage error before any work, not after two runs. */
    cleval_status status = cli_parse_compare_limits(args, &against->limits);
    if (status != CLEVAL_OK) return status;
    if (args->present[OPT_MIN_ACCURACY] || args->present[OPT_MIN_CLASS_RECALL] ||
        args->present[OPT_JUNIT] || args->present[OPT_SUMMARY_MD] || args->present[OPT_HTML])
        return cleval_fail(CLEVAL_ERR_USAGE, "--against does not combine with --min-accuracy, "
                                             "--min-class-recall, --junit, --summary-md or "
                                             "--html");
    if (cli_cluster()->size > 1)
        return cleval_fail(CLEVAL_ERR_USAGE, "--against does not combine with mpirun");
    if (args->present[OPT_SHARD] || args->present[OPT_CHECKPOINT])
        return cleval_fail(CLEVAL_ERR_USAGE, "--against does not combine with --shard or "
                                             "--checkpoint");
    for (const char *const *p = precisions; p && *p; p++)
        if (strcmp(*p, against->spec) == 0) against->precision = *p;
    if (!against->precision) {
        uint32_t *indices = NULL;
        if ((status = cleval_device_resolve_list(against->spec, &indices, &against->n_devices)))
            return status;
        against->devices = calloc(against->n_devices, sizeof *against->devices);
        if (!against->devices) status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
        for (uint32_t d = 0; status == CLEVAL_OK && d < against->n_devices; d++)
            status = cleval_device_open(indices[d], &against->devices[d]);
        free(indices);
        if (status != CLEVAL_OK) return status;
        cleval_device_names(against->devices, against->n_devices, against->device_names,
                            sizeof against->device_names);
    }
    const char *save = args->values[OPT_SAVE];
    if (!save) return temporary_files(against);
    snprintf(against->path_a, sizeof against->path_a, "%s", save);
    cli_against_second_path(save, against->path_b, sizeof against->path_b);
    return CLEVAL_OK;
}

/* Compares the two saved runs with the gates read at the start. */
static cleval_status compare_runs(const cli_against *against, cleval_compare_result *result)
{
    cleval_compare_config config = {.path_a = against->path_a,
                                    .path_b = against->path_b,
                                    .limits = against->limits,
                                    .allow_nonfinite = against->allow_nonfinite,
                                    .stop = cli_stop_request()};
    return cleval_compare_run(&config, result);
}

void cli_against_end(cli_against *against)
{
    for (uint32_t d = 0; against->devices && d < against->n_devices; d++)
        cleval_device_close(against->devices[d]);
    free(against->devices);
    against->devices = NULL;
    if (against->temp_dir[0]) {
        unlink(against->path_a);
        unlink(against->path_b);
        rmdir(against->temp_dir);
    }
}

int cli_against_finish(const cli_args *args, const cli_against *against,
                       const cleval_predict_outcome *a, const cleval_run_timing *timing_a,
                       cJSON *extra_a, const cleval_predict_outcome *b,
                       const cleval_run_timing *timing_b, cJSON *extra_b)
{
    cleval_compare_result verdict = {0};
    cJSON *report_a = NULL, *report_b = NULL;
    cleval_status status = compare_runs(against, &verdict);
    if (status == CLEVAL_OK) status = cleval_predict_report_json(a, timing_a, extra_a, NULL, 0, &report_a);
    if (status == CLEVAL_OK) status = cleval_predict_report_json(b, timing_b, extra_b, NULL, 0, &report_b);
    if (status == CLEVAL_OK && args->present[OPT_JSON]) {
        cJSON *member = cJSON_AddObjectToObject(report_a, "against");
        cJSON_AddStringToObject(member, "spec", against->spec);
        if (against->precision)
            cJSON_AddStringToObject(member, "precision", against->precision);
        else
            cJSON_AddStringToObject(member, "device", against->device_names);
        cJSON_AddItemToObject(member, "report", report_b);
        report_b = NULL;
        cJSON *compare = cleval_compare_json(&verdict);
        if (!compare) status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
        else cJSON_AddItemToObject(member, "compare", compare);
        if (status == CLEVAL_OK) status = cli_write_json(report_a, args->values[OPT_JSON]);
    }
    if (status == CLEVAL_OK && !cli_json_to_stdout(args)) {
        status = cli_print_report(a, timing_a);
        printf("\n== Against %s%s%s ==\n", against->spec,
               against->precision ? "" : ": ", against->precision ? "" : against->device_names);
        cleval_report_throughput(stdout, timing_b);
        fputc('\n', stdout);
        cleval_compare_report(stdout, &verdict);
    }
    int code = status != CLEVAL_OK ? cli_fail(status)
                                   : verdict.passed ? CLI_EXIT_OK : CLI_EXIT_GATE_FAILED;
    cJSON_Delete(report_a);
    cJSON_Delete(report_b);
    cleval_compare_result_free(&verdict);
    return code;
}
