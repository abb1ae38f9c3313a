/* Score-based metrics (see scores.h): the device reducer over kernels/scores.cl and the host
 * side that turns the sums into metrics. */
#include "cleval/scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    GROUP_SIZE = 64,       /* SCORE_GROUP of the kernel */
    ROWS_PER_GROUP = 1024, /* fixed, so partials do not depend on the device */
    CANDIDATE_FLOATS = 2 + CLEVAL_SCORE_GROUPS,
    CANDIDATE_UINTS = 2 * CLEVAL_SCORE_GROUPS,
    SCORE_FLOATS = 2 * CANDIDATE_FLOATS,
    SCORE_UINTS = 2 + 2 * CANDIDATE_UINTS,
};

struct cleval_score_reducer {
    cleval_device *dev;
    cl_kernel kernel;
    cl_mem bounds, fsum, usum;
    uint32_t n_classes, top_k, max_groups;
    /* CLEVAL_SCORE_REDUCER_AREAS host areas of max_groups partials each, one per batch whose
     * partials may be on their way back at once. */
    float *fhost;
    uint32_t *uhost;
};

static void candidate_add(cleval_score_candidate *into, const cleval_score_candidate *from)
{
    into->log_loss += from->log_loss;
    into->brier += from->brier;
    for (int b = 0; b < CLEVAL_SCORE_GROUPS; b++) {
        into->confidence[b] += from->confidence[b];
        into->count[b] += from->count[b];
        into->correct[b] += from->correct[b];
    }
}

void cleval_score_sums_add(cleval_score_sums *into, const cleval_score_sums *from)
{
    into->rows += from->rows;
    into->top_k_hits += from->top_k_hits;
    into->not_probabilities += from->not_probabilities;
    candidate_add(&into->as_given, &from->as_given);
    candidate_add(&into->softmax, &from->softmax);
}

/* The calibration boundaries i/15 as torch.linspace(0, 1, 16) computes them in float32 (the
 * first half step * i, the second 1 - step * (15 - i), each with one rounding as its fused
 * multiply-add gives), so confidences on a boundary fall in the same bin as in torchmetrics. */
static void calibration_bounds(float *bounds)
{
    const float step = 1.0f / CLEVAL_CALIBRATION_BINS;
    for (int i = 0; i <= CLEVAL_CALIBRATION_BINS; i++)
        bounds[i] = i < 8 ? fmaf(step, (float)i, 0.0f)
                          : fmaf(-step, (float)(CLEVAL_CALIBRATION_BINS - i), 1.0f);
}

void cleval_score_metrics_compute(const cleval_score_sums *sums, uint32_t top_k,
                                  cleval_score_metrics *out)
{
    memset(out, 0, sizeof *out);
    double n = (double)sums->rows;
    out->softmax = sums->not_probabilities > 0;
    const cleval_score_candidate *p = out->softmax ? &sums->softmax : &sums->as_given;
    out->top_k = top_k;
    out->top_k_accuracy = (double)sums->top_k_hits / n;
    out->log_loss = p->log_loss / n;
    out->brier = p->brier / n;
    for (int b = 0; b < CLEVAL_SCORE_GROUPS; b++) {
        if (!p->count[b]) continue;
        double count = (double)p->count[b];
        out->ece += count / n * fabs((double)p->correct[b] / count - p->confidence[b] / count);
    }
    /* The listed bins: the last holds the confidences of exactly 1 too. */
    for (int b = 0; b < CLEVAL_CALIBRATION_BINS; b++) {
        cleval_calibration_bin *bin = &out->bins[b];
        bin->lower = (double)b / CLEVAL_CALIBRATION_BINS;
        bin->upper = (double)(b + 1) / CLEVAL_CALIBRATION_BINS;
        uint64_t count = p->count[b], correct = p->correct[b];
        double confidence = p->confidence[b];
        if (b == CLEVAL_CALIBRATION_BINS - 1) {
            count += p->count[b + 1];
            correct += p->correct[b + 1];
            confidence += p->confidence[b + 1];
        }
        bin->count = count;
        if (count) {
            bin->confidence = confidence / (double)count;
            bin->accuracy = (double)correct / (double)count;
        }
    }
}

cleval_status cleval_score_reducer_create(cleval_device *dev, uint32_t n_classes, uint32_t top_k,
                                          uint32_t max_rows, cleval_score_reducer **out)
{
    *out = NULL;
    cleval_score_reducer *r = calloc(1, sizeof *r);
    if (!r) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the score reducer");
    r->dev = dev;
    r->n_classes = n_classes;
    r->top_k = top_k;
    r->max_groups = (max_rows + ROWS_PER_GROUP - 1) / ROWS_PER_GROUP;
    if (r->max_groups == 0) r->max_groups = 1;
    float bounds[CLEVAL_CALIBRATION_BINS + 1];
    calibration_bounds(bounds);
    size_t areas = CLEVAL_SCORE_REDUCER_AREAS;
    r->fhost = malloc(areas * r->max_groups * SCORE_FLOATS * sizeof *r->fhost);
    r->uhost = malloc(areas * r->max_groups * SCORE_UINTS * sizeof *r->uhost);
    cleval_status status = CLEVAL_OK;
    if (!r->fhost || !r->uhost)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for the score partial sums");
    if (status == CLEVAL_OK)
        status = cleval_device_kernel(dev, "scores", NULL, "score_partials", &r->kernel);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof bounds,
                                      bounds, "calibration bounds", &r->bounds);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_WRITE_ONLY,
                                      (size_t)r->max_groups * SCORE_FLOATS * sizeof(float), NULL,
                                      "score partial sums", &r->fsum);
    if (status == CLEVAL_OK)
        status = cleval_device_buffer(dev, CL_MEM_WRITE_ONLY,
                                      (size_t)r->max_groups * SCORE_UINTS * sizeof(uint32_t), NULL,
                                      "score partial counts", &r->usum);
    if (status != CLEVAL_OK) {
        cleval_score_reducer_destroy(r);
        return status;
    }
    *out = r;
    return CLEVAL_OK;
}

void cleval_score_reducer_destroy(cleval_score_reducer *r)
{
    if (!r) return;
    if (r->kernel) clReleaseKernel(r->kernel);
    if (r->bounds) clReleaseMemObject(r->bounds);
    if (r->fsum) clReleaseMemObject(r->fsum);
    if (r->usum) clReleaseMemObject(r->usum);
    free(r->fhost);
    free(r->uhost);
    free(r);
}

/* One candidate's share of a work-group's partials, added in double. */
static void add_candidate_partials(cleval_score_candidate *into, const float *f, const uint32_t *u)
{
    into->log_loss += f[0];
    into->brier += f[1];
    for (int b = 0; b < CLEVAL_SCORE_GROUPS; b++) {
        into->confidence[b] += f[2 + b];
        into->count[b] += u[b];
        into->correct[b] += u[CLEVAL_SCORE_GROUPS + b];
    }
}

cleval_status cleval_score_reducer_enqueue(cleval_score_reducer *r, cl_mem scores, cl_mem labels,
                                           uint32_t n, uint32_t area)
{
    if (n == 0) return CLEVAL_OK;
    uint32_t groups = (n + ROWS_PER_GROUP - 1) / ROWS_PER_GROUP;
    if (groups > r->max_groups || area >= CLEVAL_SCORE_REDUCER_AREAS)
        return cleval_fail(CLEVAL_ERR_INTERNAL,
                           "score batch of %u rows (area %u) exceeds the reducer's %u (%d)", n,
                           area, r->max_groups * ROWS_PER_GROUP, CLEVAL_SCORE_REDUCER_AREAS);
    cleval_kernel_args a = cleval_kernel_args_begin(r->kernel, "score_partials");
    cleval_kernel_arg_mem(&a, scores);
    cleval_kernel_arg_mem(&a, labels);
    cleval_kernel_arg_uint(&a, n);
    cleval_kernel_arg_uint(&a, r->n_classes);
    cleval_kernel_arg_uint(&a, r->top_k);
    cleval_kernel_arg_uint(&a, ROWS_PER_GROUP);
    cleval_kernel_arg_mem(&a, r->bounds);
    cleval_kernel_arg_mem(&a, r->fsum);
    cleval_kernel_arg_mem(&a, r->usum);
    cl_command_queue queue = cleval_device_queue(r->dev);
    size_t local = GROUP_SIZE, global = (size_t)groups * GROUP_SIZE;
    float *fhost = r->fhost + (size_t)area * r->max_groups * SCORE_FLOATS;
    uint32_t *uhost = r->uhost + (size_t)area * r->max_groups * SCORE_UINTS;
    cleval_status status;
    /* Neither read is waited for: the next batch's kernel, later on the same in-order queue,
     * overwrites fsum and usum only after both have been read. */
    if ((status = cleval_kernel_launch(queue, &a, 1, &global, &local, NULL)) ||
        (status = cleval_cl_check(clEnqueueReadBuffer(queue, r->fsum, CL_FALSE, 0,
                                                      (size_t)groups * SCORE_FLOATS * sizeof(float),
                                                      fhost, 0, NULL, NULL),
                                  "clEnqueueReadBuffer(score partial sums)")) ||
        (status =
             cleval_cl_check(clEnqueueReadBuffer(queue, r->usum, CL_FALSE, 0,
                                                 (size_t)groups * SCORE_UINTS * sizeof(uint32_t),
                                                 uhost, 0, NULL, NULL),
                             "clEnqueueReadBuffer(score partial counts)")))
        return status;
    return CLEVAL_OK;
}

void cleval_score_reducer_sums(const cleval_score_reducer *r, uint32_t n, uint32_t area,
                               cleval_score_sums *batch)
{
    memset(batch, 0, sizeof *batch);
    if (n == 0) return;
    batch->rows = n;
    uint32_t groups = (n + ROWS_PER_GROUP - 1) / ROWS_PER_GROUP;
    const float *fhost = r->fhost + (size_t)area * r->max_groups * SCORE_FLOATS;
    const uint32_t *uhost = r->uhost + (size_t)area * r->max_groups * SCORE_UINTS;
    for (uint32_t g = 0; g < groups; g++) {
        const float *f = fhost + (size_t)g * SCORE_FLOATS;
        const uint32_t *u = uhost + (size_t)g * SCORE_UINTS;
        batch->top_k_hits += u[0];
        batch->not_probabilities += u[1];
        add_candidate_partials(&batch->as_given, f, u + 2);
        add_candidate_partials(&batch->softmax, f + CANDIDATE_FLOATS, u + 2 + CANDIDATE_UINTS);
    }
}

cleval_status cleval_score_reducer_add(cleval_score_reducer *r, cl_mem scores, cl_mem labels,
                                       uint32_t n, cleval_score_sums *batch)
{
    memset(batch, 0, sizeof *batch);
    cleval_status status = cleval_score_reducer_enqueue(r, scores, labels, n, 0);
    if (status == CLEVAL_OK) status = cleval_device_finish(r->dev);
    if (status == CLEVAL_OK) cleval_score_reducer_sums(r, n, 0, batch);
    return status;
}
