/* Pieces the engine's jobs share: the opened test set and the predict loop that streams it
 * through a model, counting on the device and saving predictions. */
#ifndef CLEVAL_ENGINE_INTERNAL_H
#define CLEVAL_ENGINE_INTERNAL_H

#include "cleval/dataset.h"
#include "cleval/engine.h"

/* A model as the predict loop sees it. */
typedef struct engine_model {
    void *self;
    const char *description; /* the prediction file's "model" attribute */
    uint32_t n_classes;
    uint32_t max_batch; /* the largest batch predict() takes */
    /* Classifies n samples (row-major floats): the predictions in an int32 device buffer
     * (*pred), and the scores into `scores` ([n][n_classes], host) unless it is NULL. */
    cleval_status (*predict)(void *self, const float *x, uint32_t n, float *scores, cl_mem *pred);
} engine_model;

/* A test set opened for streaming. */
typedef struct engine_test_stream {
    cleval_dataset *ds;
    cleval_column *x;
    cleval_column *y; /* NULL when the file has no labels */
    uint64_t n;
} engine_test_stream;

/* Opens X (required) and y (when present) and checks they have the same, non-zero length. */
cleval_status engine_open_test_set(const cleval_test_set *test, engine_test_stream *s);
void engine_close_test_set(engine_test_stream *s);

/* Fails naming both shapes when the test samples' shape differs from `shape`. */
cleval_status engine_check_sample_shape(const engine_test_stream *s, uint32_t rank,
                                        const uint64_t *shape, const char *expected_from);

/* The largest label of the test set (-1 without labels): one pass over y only. */
cleval_status engine_scan_labels(engine_test_stream *s, int32_t *max_label);

/* Streams the test set through `model` and fills `out`. */
cleval_status engine_predict_loop(cleval_device *dev, const cleval_test_set *test,
                                  engine_test_stream *s, const engine_model *model,
                                  cleval_predict_outcome *out);

#endif
