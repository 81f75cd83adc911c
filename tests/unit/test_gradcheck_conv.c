/* test_gradcheck_conv.c — central finite-difference checks of every gradient (input, weight,
 * bias) of conv3x3 (stride 1 and 2), dwconv7, convT (k = 2 and 4) and linear (with and
 * without bias) on small odd shapes, against the ops' own backward.
 *
 * Loss: L = Σ out · r with a fixed random r, accumulated in double.
 *
 * Tolerance, by reasoning: every op here is linear in each of its arguments separately, so L
 * is exactly linear in any single probed entry and central differences have NO truncation
 * error; what is left is fp32 rounding. Between L(x+ε) and L(x−ε) only the outputs touched
 * by the probed entry change (the rest are recomputed bit-identically and cancel); each of
 * those m ≤ ~50 outputs carries a rounding error ≈ u·sqrt(K)·O(1), u = 6e-8, K ≤ 49 terms,
 * so the numerator is off by ≈ u·sqrt(K·m) ≈ 3e-6 and the quotient by ≈ 3e-6 / (2ε) ≈ 2e-4
 * absolute at ε = 1e-2 — plus the rounding of x ± ε itself (u·|x|/ε ≈ 1e-5 relative).
 * Gradients are O(1) (sums of a few O(1) products), so with an error floor of 0.1 the
 * expected relative error is ≲ 2e-3 in the worst probe; we require ≤ 1e-2. Any indexing or
 * accumulation bug produces O(1) errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "testutil.h"

enum { OP_CONV3X3, OP_DWCONV7, OP_CONVT, OP_LINEAR };

typedef struct {
    Backend *be;
    int op;
    int B, H, W, Ci, Co, s; /* s: stride (conv3x3) or k (convT); linear uses N = B */
    float *x, *w, *b;       /* inputs (b may be NULL for linear) */
    float *out, *r;         /* forward output and the fixed random loss weights */
    size_t n_x, n_w, n_b, n_out;
} Ctx;

static void forward(Ctx *c) {
    Backend *be = c->be;
    /* the CPU backend's Acts are floats (backend.h): host arrays go in as Act arrays */
    Act *out = (Act *)c->out;         /* (B, Ho, Wo, Co) or (N, Co) */
    const Act *x = (const Act *)c->x; /* (B, H, W, Ci) or (N, Ci) */
    switch (c->op) {
    case OP_CONV3X3: be->conv3x3_forward(be, out, x, c->w, c->b, c->B, c->H, c->W, c->Ci, c->Co, c->s); break;
    case OP_DWCONV7: be->dwconv7_forward(be, out, x, c->w, c->b, c->B, c->H, c->W, c->Ci); break;
    case OP_CONVT: be->convT_forward(be, out, x, c->w, c->b, c->B, c->H, c->W, c->Ci, c->Co, c->s); break;
    case OP_LINEAR: be->linear_forward(be, out, x, c->w, c->b, (size_t)c->B, c->Ci, c->Co); break;
    }
}

static double loss(void *ctx) {
    Ctx *c = ctx;
    forward(c);
    double L = 0;
    for (size_t i = 0; i < c->n_out; i++) L += (double)c->out[i] * (double)c->r[i];
    return L;
}

static void backward(Ctx *c, float *dx_f, float *dw, float *db) {
    Backend *be = c->be;
    Act *dx = (Act *)dx_f;            /* (B, H, W, Ci) or (N, Ci), or NULL */
    const Act *r = (const Act *)c->r; /* (B, Ho, Wo, Co) or (N, Co): dL/dout */
    const Act *x = (const Act *)c->x; /* (B, H, W, Ci) or (N, Ci) */
    switch (c->op) {
    case OP_CONV3X3: be->conv3x3_backward(be, dx, dw, db, r, x, c->w, c->B, c->H, c->W, c->Ci, c->Co, c->s); break;
    case OP_DWCONV7: be->dwconv7_backward(be, dx, dw, db, r, x, c->w, c->B, c->H, c->W, c->Ci); break;
    case OP_CONVT: be->convT_backward(be, dx, dw, db, r, x, c->w, c->B, c->H, c->W, c->Ci, c->Co, c->s); break;
    case OP_LINEAR: be->linear_backward(be, dx, dw, db, r, x, c->w, (size_t)c->B, c->Ci, c->Co); break;
    }
}

#define EPS 1e-2f
#define FLOOR 0.1
#define TOL 1e-2

static void check_op(Backend *be, const char *label, int op, int B, int H, int W, int Ci, int Co,
                     int s, int with_bias, uint64_t seed) {
    Ctx c = {.be = be, .op = op, .B = B, .H = H, .W = W, .Ci = Ci, .Co = Co, .s = s};
    switch (op) {
    case OP_CONV3X3: {
        int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
        c.n_x = (size_t)B * H * W * Ci, c.n_w = (size_t)Co * Ci * 9, c.n_b = Co;
        c.n_out = (size_t)B * Ho * Wo * Co;
        break;
    }
    case OP_DWCONV7: /* C = Ci */
        c.n_x = (size_t)B * H * W * Ci, c.n_w = (size_t)Ci * 49, c.n_b = Ci, c.n_out = c.n_x;
        break;
    case OP_CONVT:
        c.n_x = (size_t)B * H * W * Ci, c.n_w = (size_t)Ci * Co * s * s, c.n_b = Co;
        c.n_out = (size_t)B * H * s * W * s * Co;
        break;
    case OP_LINEAR: /* N = B */
        c.n_x = (size_t)B * Ci, c.n_w = (size_t)Co * Ci, c.n_b = with_bias ? (size_t)Co : 0;
        c.n_out = (size_t)B * Co;
        break;
    }
    TestRng rng = {seed};
    c.x = malloc(c.n_x * sizeof(float));          /* activations, O(1) */
    c.w = malloc(c.n_w * sizeof(float));          /* weights, O(1) */
    c.b = c.n_b ? malloc(c.n_b * sizeof(float)) : NULL;
    c.out = malloc(c.n_out * sizeof(float));
    c.r = malloc(c.n_out * sizeof(float));        /* dL/dout */
    test_fill(c.x, c.n_x, &rng, -1, 1);
    test_fill(c.w, c.n_w, &rng, -1, 1);
    if (c.b) test_fill(c.b, c.n_b, &rng, -1, 1);
    test_fill(c.r, c.n_out, &rng, -1, 1);

    float *dx = calloc(c.n_x, sizeof(float)), *dw = calloc(c.n_w, sizeof(float));
    float *db = c.n_b ? calloc(c.n_b, sizeof(float)) : NULL;
    backward(&c, dx, dw, db);

    /* Probe every entry: the shapes are small. */
    double ex = test_gradcheck(c.x, dx, c.n_x, loss, &c, EPS, (int)c.n_x, FLOOR);
    double ew = test_gradcheck(c.w, dw, c.n_w, loss, &c, EPS, (int)c.n_w, FLOOR);
    TEST_CHECK(ex <= TOL, "%-30s d_in     max rel err %.2e (%zu probes, tol %.0e)", label, ex, c.n_x, TOL);
    TEST_CHECK(ew <= TOL, "%-30s d_weight max rel err %.2e (%zu probes, tol %.0e)", label, ew, c.n_w, TOL);
    if (c.b) {
        double eb = test_gradcheck(c.b, db, c.n_b, loss, &c, EPS, (int)c.n_b, FLOOR);
        TEST_CHECK(eb <= TOL, "%-30s d_bias   max rel err %.2e (%zu probes, tol %.0e)", label, eb, c.n_b, TOL);
    }
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.r), free(dx), free(dw), free(db);
}

int main(void) {
    Backend *be = backend_cpu_create(0);
    /*                  label                         op          B  H  W  Ci Co s  bias */
    check_op(be, "conv3x3 B2 5x7 3->4 s1", OP_CONV3X3, 2, 5, 7, 3, 4, 1, 1, 1);
    check_op(be, "conv3x3 B2 7x5 3->4 s2", OP_CONV3X3, 2, 7, 5, 3, 4, 2, 1, 2);
    check_op(be, "conv3x3 B1 6x6 1->3 s2", OP_CONV3X3, 1, 6, 6, 1, 3, 2, 1, 3);
    check_op(be, "dwconv7 B2 6x9 C5", OP_DWCONV7, 2, 6, 9, 5, 0, 1, 1, 4);
    check_op(be, "dwconv7 B1 9x8 C3", OP_DWCONV7, 1, 9, 8, 3, 0, 1, 1, 5);
    check_op(be, "convT B2 3x2 3->4 k2", OP_CONVT, 2, 3, 2, 3, 4, 2, 1, 6);
    check_op(be, "convT B1 2x3 4->3 k4", OP_CONVT, 1, 2, 3, 4, 3, 4, 1, 7);
    check_op(be, "linear N7 5->6 bias", OP_LINEAR, 7, 1, 1, 5, 6, 1, 1, 8);
    check_op(be, "linear N7 5->6 nobias", OP_LINEAR, 7, 1, 1, 5, 6, 1, 0, 9);
    be->destroy(be);
    return test_summary("test_gradcheck_conv");
}
