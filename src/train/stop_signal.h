/* stop_signal.h — preemption: SIGUSR1 (Slurm's --signal ahead of the time limit) and SIGTERM
 * (scancel, preemption) ask the run to stop at the next step boundary. The training loop polls
 * stop_requested() after each step, all ranks agree (a max all-reduce), a checkpoint is written
 * and the process exits with UNET_EXIT_REQUEUE, which the job scripts turn into `scontrol requeue`.
 * The flag is the one piece of process-wide state: signals are delivered to a process. */
#ifndef UNET_STOP_SIGNAL_H
#define UNET_STOP_SIGNAL_H

/* Exit status of a run that stopped on a signal after writing its checkpoint (EX_TEMPFAIL). */
#define UNET_EXIT_REQUEUE 75

void stop_signal_install(void);
int stop_requested(void);        /* the signal number received, or 0 */

#endif
