/* step_graph.c — see step_graph.h. */
#include "step_graph.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

int step_graph_init(StepGraph *g, Backend *be, Comm *comm, const char *mode, char *err, size_t err_len) {
    memset(g, 0, sizeof *g);
    g->be = be;
    g->comm = comm;
    if (!strcmp(mode, "off")) return 0;
    const char *why = NULL;
    if (!be->capture_begin) why = "the backend cannot capture a step (only train.backend: cuda can)";
    else if (comm && comm->size > 1 && strcmp(comm->transport, "nccl") != 0)
        why = "the gradient all-reduce runs on the host (only the NCCL transport can be captured)";
    if (why) {
        if (!strcmp(mode, "on"))
            return snprintf(err, err_len, "train.cuda_graph = on: %s; use auto or off", why), -1;
        return 0; /* auto: eager */
    }
    g->enabled = 1;
    return 0;
}

/* One replay, its collectives watched by the transport like the ones its own calls queue. */
static int replay(StepGraph *g) {
    Comm *c = g->comm;
    if (c && c->watch_begin) c->watch_begin(c);
    int rc = g->be->replay(g->be);
    if (c && c->watch_queued) c->watch_queued(c, g->be->queue); /* also after a refusal: nothing pending */
    if (rc == 0) g->replays++;
    return rc;
}

void step_graph_run(StepGraph *g, void (*queue)(void *ctx), void *ctx) {
    Backend *be = g->be;
    if (g->ready) {
        if (replay(g) == 0) return;
        g->ready = 0; /* memory the recording refers to moved: capture again */
    }
    if (g->enabled && g->eager_steps >= 1) { /* the first step tunes, grows buffers and plans buckets */
        char why[512] = "";
        if (be->capture_begin(be, why, sizeof why) == 0) {
            queue(ctx);
            if (be->capture_end(be, why, sizeof why) == 0) {
                g->captures++;
                g->ready = 1;
                CHECK(replay(g) == 0, "internal: a step captured just now cannot replay");
                return;
            }
        }
        /* nothing of the step has run: run it eagerly, and every later step too */
        fprintf(stderr, "unet2022: warning: train.cuda_graph: the step could not be captured (%s); running eagerly\n",
                why);
        g->enabled = 0;
    }
    queue(ctx);
    g->eager_steps++;
}

void step_graph_drop(StepGraph *g) {
    if (g->ready && g->be->capture_drop) g->be->capture_drop(g->be);
    g->ready = 0;
}

void step_graph_destroy(StepGraph *g) { step_graph_drop(g); }
