/* Status codes, the last-error message, and the log hook shared by every cleval module.
 * Library code never prints and never exits: it returns a status and leaves one line that
 * names what went wrong, which the caller may fetch with cleval_last_error(). */
#ifndef CLEVAL_STATUS_H
#define CLEVAL_STATUS_H

#include <stdarg.h>

#include "cleval.h" /* cleval_status, cleval_status_str, cleval_last_error */

#ifdef __cplusplus
extern "C" {
#endif

/* Records a one-line message for the calling thread and returns `status`, so error paths read
 * `return cleval_fail(CLEVAL_ERR_INPUT, "%s: X missing", path);`. */
cleval_status cleval_fail(cleval_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the calling thread's message. */
void cleval_clear_error(void);

typedef enum cleval_log_level {
    CLEVAL_LOG_ERROR = 0,
    CLEVAL_LOG_WARN = 1,
    CLEVAL_LOG_INFO = 2,  /* what a user sees with --verbose: chosen kernels, tunables */
    CLEVAL_LOG_DEBUG = 3, /* detail for developers */
} cleval_log_level;

typedef void (*cleval_log_fn)(cleval_log_level level, const char *message, void *user);

/* Installs the process-wide log hook (NULL silences the library, the default) and the most
 * verbose level passed to it. */
void cleval_log_set(cleval_log_fn fn, cleval_log_level max_level, void *user);

/* Sends a formatted message to the log hook when its level is enabled. */
void cleval_log(cleval_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
