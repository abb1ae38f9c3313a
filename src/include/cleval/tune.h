/* The kernel tuner (cleval tune): times candidate tunables on every Conv, Gemm and MatMul layer
 * of a model at its real shapes, checks each candidate's results against the network at its
 * default tunables, and stores each layer's winner in the tuning cache, where every later
 * network on the same device, driver and kernels finds it (src/nn/tuning.c). Internal. */
#ifndef CLEVAL_TUNE_H
#define CLEVAL_TUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/device.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "cleval/status.h"

#pragma GCC visibility push(hidden)

typedef struct cleval_tune_options {
    double budget_seconds; /* candidates start only while this much time has not passed */
    uint32_t batch;        /* samples per timed run (capped by the network's largest batch) */
    cleval_nn_precision precision; /* fp32 or fp16 (int8 needs a calibration: refused) */
} cleval_tune_options;

typedef struct cleval_tune_layer {
    char name[64];
    char op[64];
    char shape[112];   /* input 0 -> output, at the tuned batch */
    double default_ms; /* device time of one run at the default tunables (best of the runs) */
    double best_ms;    /* default_ms times the winner's time ratio to the defaults, both
                        * timed in alternating runs */
    char winner[64];   /* "default", or the candidate's changes ("conv_mr=4,conv_nv=1") */
} cleval_tune_layer;

typedef struct cleval_tune_report {
    cleval_tune_layer *layers;
    uint32_t n_layers;
    uint32_t batch;      /* samples per timed run */
    uint32_t candidates; /* candidates for this device's kernel variant */
    uint32_t tried;      /* of those, timed or rejected before the budget ran out */
    uint32_t rejected;   /* wrong results, or failed to build or run */
    bool stored;         /* the winners are in the tuning cache */
    double seconds;
} cleval_tune_report;

/* Tunes `model` on `dev`. Fails with CLEVAL_ERR_USAGE for int8 or a network that is not a
 * classifier; a candidate that fails is dropped and logged, not an error. Free the report
 * with cleval_tune_report_free. */
cleval_status cleval_tune(cleval_device *dev, const cleval_onnx_model *model,
                          const cleval_tune_options *options, cleval_tune_report *out);
void cleval_tune_report_free(cleval_tune_report *report);

#pragma GCC visibility pop

#endif
