/* The fused classifier head (kernels/head.cl): a classifier whose output is a Gemm or MatMul
 * with constant weights (optionally followed by a Softmax or LogSoftmax over the classes) runs
 * that product, the normalisation, the row argmax and the counting of (label, prediction)
 * pairs in one launch, instead of gemm_gpu, softmax, argmax and the histogram's kernel with
 * the scores and predictions going through global memory in between. passes.c decides where
 * it applies (nn_head_eligible); the op stays a Gemm / MatMul (so int8 calibration, tuning and
 * reports see the same layers) with p.gemm.head set, and op_gemm.c hands its prepare and
 * launch to the functions here. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>

enum {
    HEAD_ROWS = 4,    /* rows per work-group: B is read once per ROWS rows */
    HEAD_KT = 64,     /* k-slice of A in local memory */
    HEAD_MIN_WG = 32, /* work-items per group: C rounded up to a power of two in [32, 256] */
    HEAD_MAX_WG = 256,
};

/* Work-items per group for C columns on this device, 0 when the device cannot run any. */
static uint32_t head_wg(const cleval_nn *nn, int64_t n)
{
    size_t most = cleval_device_get_info(nn->dev)->max_work_group_size;
    uint32_t wg = HEAD_MIN_WG;
    while (wg < n && wg < HEAD_MAX_WG)
        wg *= 2;
    while (wg > most && wg > HEAD_ROWS)
        wg /= 2;
    return wg <= most && wg >= HEAD_ROWS ? wg : 0;
}

/* Columns of the local score tile: C rounded up to a multiple of the work-group size. */
static int64_t head_cmax(int64_t n, uint32_t wg)
{
    return (n + wg - 1) / wg * wg;
}

static size_t head_local_bytes(int64_t n, uint32_t wg)
{
    return (size_t)HEAD_ROWS * (HEAD_KT + (size_t)head_cmax(n, wg)) * sizeof(float);
}

bool nn_head_fits(const cleval_nn *nn, int64_t n, int64_t k)
{
    if (n < 1 || n > NN_HEAD_MAX_WIDTH || k < 1 || n * k > NN_HEAD_MAX_WEIGHTS) return false;
    uint32_t wg = head_wg(nn, n);
    /* Half the local memory, as the other kernels leave room for the driver's own use. */
    return wg && head_local_bytes(n, wg) <= cleval_device_get_info(nn->dev)->local_mem_bytes / 2;
}

cleval_status nn_head_prepare(cleval_nn *nn, nn_op *op)
{
    const nn_gemm_params *p = &op->p.gemm;
    bool has_c = nn_has_in(op, 2) && p->beta != 0.0f;
    cl_mem unused;
    cleval_status status = nn_const_mem(nn, op->in[1], &unused);
    if (status == CLEVAL_OK && has_c) status = nn_const_mem(nn, op->in[2], &unused);
    if (status != CLEVAL_OK) return status;
    uint32_t wg = head_wg(nn, p->n);
    if (!nn_head_fits(nn, p->n, p->k))
        return nn_fail_op(nn, op, CLEVAL_ERR_INTERNAL, "the fused head does not fit the device");
    char options[200];
    snprintf(options, sizeof options,
             "-DROWS=%d -DWG=%u -DKT=%d -DCMAX=%lld -DHAS_C=%d -DSOFTMAX=%d", HEAD_ROWS, wg,
             HEAD_KT, (long long)head_cmax(p->n, wg), has_c, p->head_softmax);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "head %u/%d rows%s", wg, HEAD_ROWS,
             p->head_softmax == 2   ? " log-softmax"
             : p->head_softmax == 1 ? " softmax"
                                    : "");
    return nn_kernel(nn, op, "head", options, "head", &op->k[0]);
}

cleval_status nn_head_launch(cleval_nn *nn, nn_op *op)
{
    const nn_gemm_params *p = &op->p.gemm;
    int64_t m = p->m, n = p->n, k = p->k;
    if (m == 0) return CLEVAL_OK;
    /* A row-major [m][k] (passes.c refuses transA); B(k, j) in its own layout. */
    bool b_t = !p->matmul && p->trans_b;
    int64_t b_ks = b_t ? 1 : n, b_ns = b_t ? k : 1;
    bool has_c = nn_has_in(op, 2) && p->beta != 0.0f;
    int64_t c_rs = 0, c_cs = 0;
    if (has_c) {
        const nn_shape *c = &nn_in(nn, op, 2)->shape; /* broadcast to [m, n] */
        if (c->rank == 2) {
            c_rs = c->d[0] == 1 ? 0 : c->d[1];
            c_cs = c->d[1] == 1 ? 0 : 1;
        } else if (c->rank == 1) {
            c_cs = c->d[0] == 1 ? 0 : 1;
        }
    }
    cl_mem y = nn_value_mem(nn, op->out[0]);
    bool count = nn->head_hist != NULL;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[0]));
    cleval_kernel_arg_int(&a, (int32_t)k);
    cleval_kernel_arg_int(&a, 1);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[1]));
    cleval_kernel_arg_int(&a, (int32_t)b_ks);
    cleval_kernel_arg_int(&a, (int32_t)b_ns);
    cleval_kernel_arg_mem(&a, has_c ? nn_value_mem(nn, op->in[2]) : y);
    cleval_kernel_arg_int(&a, (int32_t)c_rs);
    cleval_kernel_arg_int(&a, (int32_t)c_cs);
    cleval_kernel_arg_float(&a, p->alpha);
    cleval_kernel_arg_float(&a, p->beta);
    cleval_kernel_arg_int(&a, (int32_t)m);
    cleval_kernel_arg_int(&a, (int32_t)n);
    cleval_kernel_arg_int(&a, (int32_t)k);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, !nn->head_scores_unread);
    cleval_kernel_arg_mem(&a, nn->pred);
    cleval_kernel_arg_mem(&a, nn->nonfinite);
    cleval_kernel_arg_int(&a, count);
    cleval_kernel_arg_int(&a, count && nn->head_labels != NULL);
    /* Unused buffers are bound to one the kernel may touch (pred) and never read. */
    cleval_kernel_arg_mem(&a, count && nn->head_labels ? nn->head_labels : nn->pred);
    cleval_kernel_arg_mem(&a, count ? nn->head_hist : nn->nonfinite);
    cleval_kernel_arg_uint(&a, count ? nn->head_rows : 0);
    cleval_kernel_arg_uint(&a, count ? nn->head_cols : 0);
    size_t local = head_wg(nn, n);
    size_t global = (size_t)((m + HEAD_ROWS - 1) / HEAD_ROWS) * local;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

/* ---- the classifier's side (cleval/nn.h) ---- */

bool cleval_nn_has_fused_head(const cleval_nn *nn)
{
    return nn->has_head;
}

void cleval_nn_set_scores_needed(cleval_nn *nn, bool needed)
{
    nn->head_scores_unread = !needed;
}

cleval_status cleval_nn_count_predictions(cleval_nn *nn, cl_mem hist, cl_mem labels, uint32_t rows,
                                          uint32_t cols)
{
    if (hist && (!nn->has_head || rows == 0 || cols == 0))
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: only a fused classifier head counts predictions (%u x %u)",
                           nn->path, rows, cols);
    nn->head_hist = hist;
    nn->head_labels = hist ? labels : NULL;
    nn->head_rows = hist ? rows : 0;
    nn->head_cols = hist ? cols : 0;
    return CLEVAL_OK;
}
