/* Stopping on the signals a user or a scheduler sends (SIGINT, SIGTERM, SIGHUP): the handler
 * only records the request; the job stops at its next batch boundary, writes its checkpoint,
 * removes its temporaries and exits 128 + the signal's number. */
#ifndef CLEVAL_CLI_STOP_H
#define CLEVAL_CLI_STOP_H

#include <signal.h>

/* Installs the handler for SIGINT, SIGTERM and SIGHUP and unblocks them, so one that was sent
 * while they were blocked is handled here (a command that checks the request at its batch
 * boundaries calls this before any output file exists). */
void cli_stop_install(void);

/* The request the library polls (cleval_run_options.stop and the like): 0 none, 1 stop at the
 * next batch boundary, 2 (a second signal) stop at once, without waiting for a checkpoint. */
volatile sig_atomic_t *cli_stop_request(void);

/* The first signal handled (0: none; of two arriving at once on two threads, either). */
int cli_stop_signal(void);

/* "SIGTERM" and so on, for cli_stop_signal() ("a signal" when none was handled). */
const char *cli_stop_signal_name(void);

#endif
