/* cleval's entry point: finds the command and maps its outcome to an exit code. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const cli_command commands[] = {
    {"compare", "migration check between two saved runs (paired verdict, CI gates)",
     cli_compare},
    {"devices", "list OpenCL platforms and devices, one per line, with index", cli_devices},
    {"drift", "output-distribution drift between two runs (PSI, JS, chi-squared)", cli_drift},
    {"eval", "run an ONNX network on a test set, report metrics", cli_eval},
    {"knn", "run the KNN baseline on a test set, report metrics", cli_knn},
    {"metrics", "metrics from saved y / pred, no model", cli_metrics},
    {"merge", "combine the part files of a sharded run (--shard I/N)", cli_merge},
    {"tune", "time kernel tunables on a model's layers, keep the winners for this device",
     cli_tune},
};
enum { N_COMMANDS = sizeof commands / sizeof *commands };

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: cleval COMMAND [options]\n\n"
                 "Batch evaluation of classification models on OpenCL devices.\n\n"
                 "Commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `cleval COMMAND --help` for a command's options.\n"
                 "Exit codes: 0 success, 1 a gate failed, 2 bad input or usage, 3 OpenCL or "
                 "device failure, 4 out of host or device memory, 5 internal error, 128 + N "
                 "stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP).\n");
}

static cleval_cluster cluster;

const cleval_cluster *cli_cluster(void)
{
    return &cluster;
}

/* A closed stdout or stderr would hand its number to the next file cleval opens (an HDF5
 * file, say), and the report would be written into that file. The slot is held by /dev/null
 * opened read-only instead, so that writing the report fails (EBADF) as it should. */
static void hold_closed_output_fds(void)
{
    for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int held = open("/dev/null", O_RDONLY);
        if (held >= 0 && held != fd) {
            dup2(held, fd);
            close(held);
        }
    }
}

/* The report is only delivered once stdout takes it: a full (/dev/full) or closed stdout turns
 * a success or a failed gate into exit 2, with one line. A command that already failed has
 * said why; its code stands. */
static int finish_stdout(int code)
{
    bool failed = fflush(stdout) != 0 || ferror(stdout);
    /* stdio may have failed long before, errno long gone: a write of no bytes asks again. */
    errno = 0;
    int err = failed && write(STDOUT_FILENO, "", 0) < 0 ? errno : 0;
    if (fclose(stdout) != 0 && !failed) {
        failed = true;
        err = errno;
    }
    if (!failed || (code != CLI_EXIT_OK && code != CLI_EXIT_GATE_FAILED)) return code;
    fprintf(stderr, "cleval: writing the report to stdout failed: %s\n",
            err ? strerror(err) : "write error");
    return CLI_EXIT_BAD_INPUT;
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_BAD_INPUT;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("cleval %s\n", CLEVAL_VERSION);
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, commands[i].name) != 0) continue;
        /* Under mpirun every rank runs the command on its own slice (see run.c). */
        cleval_status status = cleval_cluster_init(&argc, &argv, &cluster);
        if (status != CLEVAL_OK) return cli_fail(status);
        int code = commands[i].run(argc, argv);
        cleval_cluster_finalize(&cluster);
        return code;
    }
    fprintf(stderr, "cleval: unknown command '%s' (see cleval --help)\n", name);
    return CLI_EXIT_BAD_INPUT;
}

int main(int argc, char **argv)
{
    hold_closed_output_fds();
    cli_watch_json_memory();
    return finish_stdout(run_command(argc, argv));
}
