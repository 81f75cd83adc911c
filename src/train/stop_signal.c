/* stop_signal.c — see stop_signal.h. */
#include "stop_signal.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received; /* process-wide by nature: signals target the process */

static void on_signal(int sig) { received = sig; }

void stop_signal_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* blocking reads and waits resume; the loop polls the flag */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int stop_requested(void) { return (int)received; }
