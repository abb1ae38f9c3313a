/* The per-thread last-error message and the process-wide log hook. */
#include "cleval/status.h"

#include <stdio.h>
#include <string.h>

#include "text/printable.h"

static _Thread_local char last_error[1024];

static cleval_log_fn log_fn;
static cleval_log_level log_max_level;
static void *log_user;

const char *cleval_status_str(cleval_status status)
{
    switch (status) {
    case CLEVAL_OK: return "success";
    case CLEVAL_ERR_USAGE: return "usage error";
    case CLEVAL_ERR_INPUT: return "bad input";
    case CLEVAL_ERR_UNSUPPORTED: return "unsupported input";
    case CLEVAL_ERR_IO: return "output error";
    case CLEVAL_ERR_OPENCL: return "OpenCL error";
    case CLEVAL_ERR_NOMEM: return "out of memory";
    case CLEVAL_ERR_INTERRUPTED: return "interrupted";
    case CLEVAL_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

cleval_status cleval_fail(cleval_status status, const char *fmt, ...)
{
    /* Formatted aside first: the arguments may include cleval_last_error() itself (a message
     * that wraps the cause), which vsnprintf must not read while writing over it. */
    char message[sizeof last_error];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    /* Messages quote names from files (ONNX nodes, datasets, class names): control characters
     * and invalid UTF-8 are escaped so that a message stays one harmless line. */
    cleval_text_printable(message, false, last_error, sizeof last_error);
    return status;
}

const char *cleval_last_error(void)
{
    return last_error;
}

void cleval_clear_error(void)
{
    last_error[0] = '\0';
}

void cleval_log_set(cleval_log_fn fn, cleval_log_level max_level, void *user)
{
    log_fn = fn;
    log_max_level = max_level;
    log_user = user;
}

void cleval_log(cleval_log_level level, const char *fmt, ...)
{
    if (!log_fn || level > log_max_level) return;
    char message[1024], printable[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    cleval_text_printable(message, true, printable, sizeof printable);
    log_fn(level, printable, log_user);
}
