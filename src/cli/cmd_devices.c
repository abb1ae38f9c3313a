/* `cleval devices`: one line per OpenCL device, with the index --device accepts. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

static const char usage[] =
    "Usage: cleval devices [options]\n"
    "\n"
    "Lists every OpenCL device of every platform, one per line: index, platform, device name,\n"
    "type, compute units, global memory, OpenCL C version. The index (or a substring of the\n"
    "name) is what --device and CLEVAL_DEVICE accept.\n";

int cli_devices(int argc, char **argv)
{
    static const cli_option_id allowed[] = {OPT_HELP, OPT_JSON, OPT_VERBOSE};
    cli_args args;
    bool exit_now;
    int code = cli_parse_command(argc, argv, "devices", usage, allowed,
                                 sizeof allowed / sizeof *allowed, &args, &exit_now);
    if (exit_now) return code;
    if (args.n_positional > 0) {
        cleval_fail(CLEVAL_ERR_USAGE, "devices: unexpected argument '%s'", args.positional[0]);
        cli_args_free(&args);
        return cli_fail(CLEVAL_ERR_USAGE);
    }
    cli_setup_logging(&args);
    cleval_device_info *infos;
    uint32_t n;
    cleval_status status = cleval_device_list(&infos, &n);
    if (status != CLEVAL_OK) {
        cli_args_free(&args);
        return cli_fail(status);
    }
    if (args.present[OPT_JSON]) {
        cJSON *list = cleval_report_devices_json(infos, n);
        status = list ? cli_write_json(list, args.values[OPT_JSON])
                      : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory");
        cJSON_Delete(list);
    } else {
        if (n == 0) printf("no OpenCL devices found (is an ICD such as pocl-opencl-icd installed?)\n");
        for (uint32_t i = 0; i < n; i++)
            printf("%u: %s | %s | %s | %u compute units | %.1f GiB | %s\n", i, infos[i].platform,
                   infos[i].name, cleval_device_type_name(infos[i].type), infos[i].compute_units,
                   (double)infos[i].global_mem_bytes / (1024.0 * 1024.0 * 1024.0),
                   infos[i].opencl_c_version);
    }
    free(infos);
    cli_args_free(&args);
    return status == CLEVAL_OK ? CLI_EXIT_OK : cli_fail(status);
}
