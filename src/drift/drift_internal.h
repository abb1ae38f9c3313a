/* Private to the drift module: one file's pass through the device. */
#ifndef CLEVAL_DRIFT_INTERNAL_H
#define CLEVAL_DRIFT_INTERNAL_H

#include "cleval/drift.h"

/* What a pass over one file gathers; class arrays are n_classes long (this file's own
 * max label + 1) until the caller widens them to the common class count. */
typedef struct drift_scan {
    cleval_drift_side side;
    uint32_t n_classes;
    cleval_class_names names;
} drift_scan;

/* Streams `path` through the confidence kernel and the device histograms. `kernel` is
 * drift_confidence built with the precision `fp64`; `done_before` offsets progress reports. */
cleval_status drift_scan_file(const cleval_drift_config *config, const char *path, cl_kernel kernel,
                              bool fp64, uint64_t done_before, uint64_t total, drift_scan *out);

void drift_scan_free(drift_scan *scan);

#endif
