/* libFuzzer target: the command-line parser and its typed getters. The bytes are an argument
 * list separated by NUL bytes, parsed as a command that accepts every option. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

enum { MAX_ARGS = 64 };

static void read_every_option(const cli_args *args)
{
    static const char *const choices[] = {"a", "tty", "json", "none", NULL};
    for (int id = 0; id < OPT_COUNT; id++) {
        if (!cli_options[id].value_name) continue; /* the commands read switches as present[] */
        uint64_t count;
        double number;
        int choice;
        cli_get_positive(args, (cli_option_id)id, 7, &count);
        cli_get_number(args, (cli_option_id)id, 0.5, 0.0, 1.0, &number);
        cli_get_choice(args, (cli_option_id)id, choices, 0, &choice);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (size_t at = 0; at <= size && argc < MAX_ARGS; at += strlen(text + at) + 1)
        argv[argc++] = text + at;
    argv[argc] = NULL;
    cli_option_id allowed[OPT_COUNT];
    for (int id = 0; id < OPT_COUNT; id++)
        allowed[id] = (cli_option_id)id;
    cli_args args;
    if (cli_parse(argc, argv, 0, "fuzz", allowed, OPT_COUNT, &args) == CLEVAL_OK) {
        read_every_option(&args);
        cli_args_free(&args);
    }
    free(text);
    return 0;
}
