/* Private to the drift module: one file's pass through the device. */
#ifndef CLEVAL_DRIFT_INTERNAL_H
#define CLEVAL_DRIFT_INTERNAL_H

#include "cleval/drift.h"

typedef struct scan_state scan_state;

/* What a pass over one file gathers; class arrays are n_classes long (this file's own
 * max label + 1) until the caller widens them to the common class count. */
typedef struct drift_scan {
    cleval_drift_side side;
    uint32_t n_classes;
    cleval_class_names names;
    scan_state *input; /* the open file, from drift_scan_open until drift_scan_run ends */
} drift_scan;

/* Opens `path` (or reads `data`, when not NULL, under that name) and checks its columns (pred,
 * scores, y when present) and class names, filling
 * out->side's path, n_samples, score_width and has_labels and out->names. Both files are opened
 * this way before any device work, so that a bad file fails early and the progress total is
 * known, without opening either file twice. */
cleval_status drift_scan_open(const cleval_drift_config *config, const char *path,
                              cleval_dataset *data, drift_scan *out);

/* Streams the file opened in `scan` through the confidence kernel and the device histograms,
 * then closes it. `kernel` is drift_confidence built with the precision `fp64`; `done_before`
 * offsets progress reports. */
cleval_status drift_scan_run(const cleval_drift_config *config, cl_kernel kernel, bool fp64,
                             uint64_t done_before, uint64_t total, drift_scan *scan);

/* Frees the results and closes a file still open. A zeroed struct is a no-op. */
void drift_scan_free(drift_scan *scan);

#endif
