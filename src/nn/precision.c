/* The precision modes of a network (cleval_nn_options.precision, .prune): magnitude pruning
 * of the constant weights, the fp16 storage choice and the float -> half conversion of
 * weights, symmetric per-channel int8 weight codes, the activation ranges measured by
 * cleval_nn_calibrate() on an fp32 network, and the size accounting of cleval_nn_model_info. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cleval_nn_precision_name(cleval_nn_precision precision)
{
    switch (precision) {
    case CLEVAL_NN_FP32: return "fp32";
    case CLEVAL_NN_FP16: return "fp16";
    case CLEVAL_NN_INT8: return "int8";
    }
    return "?";
}

/* ---- pruning ---- */

typedef struct ranked {
    float magnitude;
    uint64_t index;
} ranked;

/* Ascending |w|, then ascending index; NaN sorts last (never pruned before a number). */
static int compare_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    bool na = isnan(a->magnitude), nb = isnan(b->magnitude);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->magnitude != b->magnitude) return a->magnitude < b->magnitude ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static cleval_status prune_values(float *w, uint64_t count, double sparsity)
{
    uint64_t k = (uint64_t)floor(sparsity * (double)count);
    if (k == 0) return CLEVAL_OK;
    ranked *r = malloc(count * sizeof *r);
    if (!r) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory pruning weights");
    for (uint64_t i = 0; i < count; i++) {
        r[i].magnitude = fabsf(w[i]);
        r[i].index = i;
    }
    qsort(r, (size_t)count, sizeof *r, compare_ranked);
    for (uint64_t i = 0; i < k; i++)
        w[r[i].index] = 0.0f;
    free(r);
    return CLEVAL_OK;
}

/* The constant weight input of op (Conv W, Gemm/MatMul B), or -1. */
static int weight_of(const cleval_nn *nn, const nn_op *op)
{
    if (op->dead || !nn_has_in(op, 1)) return -1;
    if (op->kind != &nn_kind_conv && op->kind != &nn_kind_gemm && op->kind != &nn_kind_matmul)
        return -1;
    const nn_value *w = &nn->values[op->in[1]];
    return w->kind == NN_VALUE_CONST && w->f32 ? op->in[1] : -1;
}

cleval_status nn_prune(cleval_nn *nn, double sparsity)
{
    if (sparsity <= 0.0) return CLEVAL_OK;
    bool *done = calloc(nn->n_values + 1, sizeof *done);
    if (!done) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory pruning weights");
    cleval_status status = CLEVAL_OK;
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        int w = weight_of(nn, &nn->ops[i]);
        if (w < 0 || done[w]) continue; /* a tensor shared by several layers is pruned once */
        done[w] = true;
        status = nn_own_f32(nn, &nn->values[w]);
        if (status == CLEVAL_OK)
            status = prune_values(nn->values[w].f32, nn->values[w].count, sparsity);
    }
    free(done);
    return status;
}

/* ---- int8 ---- */

static bool quantisable(const cleval_nn *nn, const nn_op *op)
{
    if (op->dead || !nn_has_in(op, 0) || !nn_has_in(op, 1)) return false;
    /* The weights' float values are quantised at prepare: a constant without them (integers,
     * or a type the reader does not convert) stays float and is refused there. */
    const nn_value *w = &nn->values[op->in[1]];
    if (w->kind != NN_VALUE_CONST || !w->f32) return false;
    if (op->kind == &nn_kind_conv) {
        if (op->p.conv.depthwise) return false;
        uint64_t k = w->count / (uint64_t)(w->shape.d[0] ? w->shape.d[0] : 1);
        return k >= 1 && k <= NN_INT8_MAX_K;
    }
    if (op->kind != &nn_kind_gemm && op->kind != &nn_kind_matmul) return false;
    if (nn->values[op->in[0]].kind == NN_VALUE_CONST || w->shape.rank != 2) return false;
    int64_t k = op->kind == &nn_kind_gemm && op->p.gemm.trans_b ? w->shape.d[1] : w->shape.d[0];
    return k >= 1 && k <= NN_INT8_MAX_K;
}

void nn_mark_quantisable(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++)
        nn->ops[i].quantisable = quantisable(nn, &nn->ops[i]);
}

float nn_activation_scale(double maxabs)
{
    float s = (float)maxabs / 127.0f;
    return s > 0.0f && isfinite(s) ? s : 1.0f;
}

void nn_quantise_channels(const float *w, int64_t channels, int64_t per, int64_t cs, int64_t es,
                          float *q, float *scales)
{
    for (int64_t c = 0; c < channels; c++) {
        float m = 0.0f;
        for (int64_t e = 0; e < per; e++)
            m = fmaxf(m, fabsf(w[c * cs + e * es]));
        float s = m / 127.0f;
        if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
        scales[c] = s;
        for (int64_t e = 0; e < per; e++)
            q[c * cs + e * es] = fminf(fmaxf(nearbyintf(w[c * cs + e * es] / s), -127.0f), 127.0f);
    }
}

cleval_status nn_capture_input(cleval_nn *nn, const nn_op *op)
{
    const nn_value *x = &nn->values[op->in[0]];
    if (x->count == 0) return CLEVAL_OK;
    float *host = malloc((size_t)x->count * sizeof *host);
    if (!host) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory calibrating");
    cleval_status status =
        cleval_cl_check(clEnqueueReadBuffer(nn->queue, nn_value_mem(nn, op->in[0]), CL_TRUE, 0,
                                            (size_t)x->count * sizeof *host, host, 0, NULL, NULL),
                        "clEnqueueReadBuffer(calibration)");
    double m = nn->capture[op - nn->ops];
    for (uint64_t i = 0; status == CLEVAL_OK && i < x->count; i++) {
        double a = fabs((double)host[i]);
        if (a > m) m = a;
    }
    nn->capture[op - nn->ops] = m;
    free(host);
    return status;
}

cleval_status cleval_nn_calibrate(cleval_nn *nn, const void *x, uint32_t n,
                                  cleval_nn_calibration **calibration)
{
    if (nn->general || nn->precision != CLEVAL_NN_FP32)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: calibration runs on an fp32 classifier network",
                           nn->path);
    if (n == 0) return cleval_fail(CLEVAL_ERR_USAGE, "%s: calibration needs samples", nn->path);
    uint32_t layers = 0;
    for (uint32_t i = 0; i < nn->n_ops; i++)
        layers += nn->ops[i].quantisable;
    cleval_nn_calibration *c = *calibration;
    if (c && c->n_layers != layers)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: the calibration is for another network",
                           nn->path);
    double *maxabs = calloc(nn->n_ops + 1, sizeof *maxabs);
    cleval_nn_calibration *fresh = c ? NULL : calloc(1, sizeof *fresh);
    if (fresh) fresh->max_abs = calloc(layers + 1, sizeof *fresh->max_abs);
    if (!maxabs || (!c && (!fresh || !fresh->max_abs))) {
        free(maxabs);
        cleval_nn_calibration_free(fresh);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory calibrating");
    }
    cleval_status status = CLEVAL_OK;
    nn->capture = maxabs;
    uint32_t batch = nn->max_batch < 256 ? nn->max_batch : 256;
    for (uint32_t i = 0; i < n && status == CLEVAL_OK; i += batch) {
        uint32_t b = n - i < batch ? n - i : batch;
        status = cleval_nn_run(nn, (const char *)x + (size_t)i * nn_feed_sample_bytes(nn), b, NULL);
    }
    nn->capture = NULL;
    if (status != CLEVAL_OK) {
        free(maxabs);
        cleval_nn_calibration_free(fresh);
        return status;
    }
    if (fresh) {
        fresh->n_layers = layers;
        c = *calibration = fresh;
    }
    for (uint32_t i = 0, l = 0; i < nn->n_ops; i++)
        if (nn->ops[i].quantisable) {
            if (maxabs[i] > c->max_abs[l] || isnan(maxabs[i])) c->max_abs[l] = maxabs[i];
            l++;
        }
    c->samples += n;
    free(maxabs);
    return CLEVAL_OK;
}

void cleval_nn_calibration_free(cleval_nn_calibration *calibration)
{
    if (!calibration) return;
    free(calibration->max_abs);
    free(calibration);
}

/* The quantize kernels of kernels/quantize.cl, one element per work-item. */
cleval_status nn_launch_quantize(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, int64_t x_off,
                                 cl_mem y, int64_t y_off, uint64_t n)
{
    if (n == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_int(&a, (int32_t)x_off);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, (int32_t)y_off);
    cleval_kernel_arg_uint(&a, (uint32_t)n);
    cleval_kernel_arg_float(&a, 1.0f / op->x_scale);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

cleval_status nn_launch_quantize_2d(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, int64_t x_off,
                                    int64_t rs, int64_t ks, int64_t rows, int64_t cols, cl_mem y,
                                    int64_t y_off)
{
    uint64_t n = (uint64_t)(rows * cols);
    if (n == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_int(&a, (int32_t)x_off);
    cleval_kernel_arg_int(&a, (int32_t)rs);
    cleval_kernel_arg_int(&a, (int32_t)ks);
    cleval_kernel_arg_uint(&a, (uint32_t)rows);
    cleval_kernel_arg_uint(&a, (uint32_t)cols);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, (int32_t)y_off);
    cleval_kernel_arg_float(&a, 1.0f / op->x_scale);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

cleval_status nn_launch_quantize_pad(cleval_nn *nn, nn_op *op, cl_kernel k, cl_mem x, cl_mem y,
                                     const nn_shape *in, const nn_shape *out, const int64_t *begin)
{
    uint64_t n = nn_shape_count(out);
    if (n == 0) return CLEVAL_OK;
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, x);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, 0);
    cleval_kernel_arg_uint(&a, (uint32_t)n);
    nn_arg_pad_dims(&a, in, out, begin);
    cleval_kernel_arg_float(&a, 1.0f / op->x_scale);
    size_t local = nn_local_1d(nn), global = (size_t)n;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

/* ---- fp16 ---- */

uint16_t nn_half_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t mag = x & 0x7fffffffu;
    if (mag > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (mag >= 0x477ff000u) return sign | 0x7c00u; /* 65520 and up (and inf): inf */
    if (mag < 0x38800000u) {                       /* below 2^-14: a subnormal half */
        float a = fabsf(f) * 16777216.0f;          /* units of 2^-24, exact */
        return sign | (uint16_t)nearbyintf(a);     /* ties to even; 1024 is 2^-14 */
    }
    uint32_t h = ((mag >> 23) - 112u) << 10 | (mag & 0x7fffffu) >> 13;
    uint32_t rest = mag & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into the exponent */
    return sign | (uint16_t)h;
}

uint16_t *nn_to_half(const float *src, size_t n)
{
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return NULL;
    for (size_t i = 0; i < n; i++)
        h[i] = nn_half_bits(src[i]);
    return h;
}

cleval_status nn_upload_as(cleval_nn *nn, const float *data, size_t count, bool half, bool int8,
                           const char *what, cl_mem *out)
{
    if (!half && !int8) return nn_upload(nn, data, count * sizeof *data, what, out);
    void *copy = half ? (void *)nn_to_half(data, count) : malloc(count ? count : 1);
    if (!copy) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory converting %s", what);
    if (int8)
        for (size_t i = 0; i < count; i++)
            ((int8_t *)copy)[i] = (int8_t)data[i];
    cleval_status status = nn_upload(nn, copy, count * (half ? 2 : 1), what, out);
    free(copy);
    return status;
}

void nn_choose_storage(cleval_nn *nn)
{
    for (uint32_t v = 0; v < nn->n_values; v++)
        nn->values[v].half = false;
    if (nn->precision != CLEVAL_NN_FP16) return;
    int *root = malloc((nn->n_values + 1) * sizeof *root);
    bool *keep = calloc(nn->n_values + 1, sizeof *keep);
    if (!root || !keep) { /* float everywhere is always correct */
        free(root);
        free(keep);
        return;
    }
    for (uint32_t v = 0; v < nn->n_values; v++)
        root[v] = (int)v;
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (!op->dead && op->alias_only && op->in[0] >= 0) root[op->out[0]] = root[op->in[0]];
    }
    /* Runtime inputs and graph outputs stay float, and so does every view sharing them. */
    for (uint32_t v = 0; v < nn->n_values; v++)
        if (nn->values[v].kind != NN_VALUE_ACT || nn->values[v].is_output) keep[root[v]] = true;
    for (uint32_t o = 0; o < nn->n_outputs; o++)
        keep[root[nn->outputs[o]]] = true;
    for (uint32_t v = 0; v < nn->n_values; v++)
        nn->values[v].half = !keep[root[v]] && nn->values[root[v]].kind == NN_VALUE_ACT &&
                             nn->values[root[v]].dtype == NN_FLOAT;
    free(root);
    free(keep);
}

size_t nn_value_elem_bytes(const cleval_nn *nn, int v)
{
    return nn->values[v].half ? 2 : nn_dtype_bytes(nn->values[v].dtype);
}

/* ---- cleval_nn_model_info ---- */

/* Output channels of op's weight w (Conv: W's first axis; Gemm/MatMul: B's columns). */
static uint64_t channels_of(const nn_op *op, const nn_value *w)
{
    if (op->kind == &nn_kind_conv) return (uint64_t)w->shape.d[0];
    if (w->shape.rank < 2) return 1;
    if (op->kind == &nn_kind_gemm && op->p.gemm.trans_b) return (uint64_t)w->shape.d[0];
    return (uint64_t)w->shape.d[w->shape.rank - 1];
}

cleval_status nn_compute_info(cleval_nn *nn, uint32_t calibration_samples, double prune)
{
    cleval_nn_model_info *info = &nn->info;
    memset(info, 0, sizeof *info);
    info->precision = nn->precision;
    info->half_arithmetic = nn->half_math;
    info->prune = prune;
    info->calibration_samples = nn->precision == CLEVAL_NN_INT8 ? calibration_samples : 0;
    bool *seen = calloc(nn->n_values + 1, sizeof *seen);
    if (!seen) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory measuring the model");
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead) continue;
        info->quantised_layers += op->int8;
        int weight = weight_of(nn, op);
        for (uint32_t j = 0; j < op->n_in; j++) {
            int v = op->in[j];
            if (v < 0 || seen[v]) continue;
            const nn_value *value = &nn->values[v];
            if (value->kind != NN_VALUE_CONST || !value->f32) continue;
            seen[v] = true;
            if (v != weight) {
                info->size_bytes += value->count * 4;
                continue;
            }
            info->weights += value->count;
            for (uint64_t e = 0; e < value->count; e++)
                info->zero_weights += value->f32[e] == 0.0f;
            if (op->int8)
                info->size_bytes += value->count + 4 * channels_of(op, value) + 4;
            else
                info->size_bytes += value->count * (nn->precision == CLEVAL_NN_FP16 ? 2 : 4);
        }
    }
    free(seen);
    return CLEVAL_OK;
}

void cleval_nn_model_info_get(const cleval_nn *nn, cleval_nn_model_info *out)
{
    *out = nn->info;
}
