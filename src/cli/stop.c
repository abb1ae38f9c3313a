/* SIGINT, SIGTERM and SIGHUP as stop requests (see stop.h). */
#include "stop.h"

#include <pthread.h>
#include <stddef.h>

static volatile sig_atomic_t request;
static volatile sig_atomic_t first_signal;

/* Only sig_atomic_t stores: a second signal raises the request to "at once"; the process is
 * never killed from here, so no file is left half-written. */
static void on_stop_signal(int signal_number)
{
    if (!first_signal) first_signal = signal_number;
    request = request ? 2 : 1;
}

void cli_stop_install(void)
{
    /* SA_RESTART: reads and writes under way go on instead of failing with EINTR. The three
     * signals wait while the handler runs on this thread. */
    struct sigaction action = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};
    static const int handled[] = {SIGINT, SIGTERM, SIGHUP};
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
        sigaddset(&action.sa_mask, handled[i]);
    for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
        sigaction(handled[i], &action, NULL);
    /* A launcher may start cleval with these signals blocked (the mask survives exec): a stop
     * sent then is pending, and is handled now, before any work, instead of never. */
    pthread_sigmask(SIG_UNBLOCK, &action.sa_mask, NULL);
}

volatile sig_atomic_t *cli_stop_request(void)
{
    return &request;
}

int cli_stop_signal(void)
{
    return first_signal;
}

const char *cli_stop_signal_name(void)
{
    switch (first_signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    }
    return "a signal";
}
