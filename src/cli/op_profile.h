/* op_profile.h — where a training step's time goes, op by op: `unet2022 bench --profile`.
 *
 * A backend that wraps another (a copy of its op table) and times every op,
 * waiting for the queue before and after each so that an asynchronous backend's op is charged
 * its own device time. The waits serialise the step, so the sum is above an unprofiled step's
 * time (by the launch gaps it no longer hides): read it for shares, not for throughput. */
#ifndef UNET_OP_PROFILE_H
#define UNET_OP_PROFILE_H

#include <stdio.h>

#include "backend.h"

typedef struct OpProfile OpProfile;

OpProfile *op_profile_create(Backend *inner);
/* A plan, not a profile: the ops are counted and costed (op_cost.h) as if Acts were act_bytes
 * wide (2: bf16, 4: fp32), never run, so any backend (the CPU one) tells what one step of any
 * batch asks of a GPU without one; the time columns then read 0. Memory functions are skipped
 * too, so values read back (the loss) are meaningless. */
OpProfile *op_profile_create_plan(Backend *inner, int act_bytes);
/* The backend to run the step on. */
Backend *op_profile_backend(OpProfile *p);
void op_profile_reset(OpProfile *p);
double op_profile_total(const OpProfile *p); /* seconds, all ops */
/* One line per op kind that ran: calls, total ms, share of the sum, mean µs; longest first; and
 * the roofline next to it (op_cost.h): estimated GFLOP and minimum MB for its shapes, which limit
 * binds, the roofline time of one H100 and the share of it the measured time reaches. */
void op_profile_print(const OpProfile *p, FILE *out);
void op_profile_destroy(OpProfile *p);

#endif
