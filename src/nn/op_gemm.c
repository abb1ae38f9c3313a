/* Gemm (transA/transB, alpha, beta, C broadcast to [M, N]) and MatMul (numpy semantics: 1-D
 * operands, broadcast batch axes; either operand a constant or an activation) on the matrix
 * multiply core of kernels/gemm.cl. A constant B is packed once at prepare (gemm_cpu, pack.c) or
 * read in place (gemm_gpu); a computed B is packed per run by gemm_pack on CPUs. */
#include "nn_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- geometry ---- */

/* A matrix operand as the kernels see it: element (r, k) of batch b at
 * off + b_stride(b) + r * rs + k * ks. */
typedef struct operand {
    int64_t rs, ks;
} operand;

static cleval_status gemm_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    nn_gemm_params *p = &op->p.gemm;
    bool broadcast; /* opset < 7: C is broadcast either way; the value must still be valid */
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, known)) != CLEVAL_OK ||
        (status = nn_attr_float(nn, node, "alpha", 1.0f, &p->alpha)) != CLEVAL_OK ||
        (status = nn_attr_float(nn, node, "beta", 1.0f, &p->beta)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "transA", false, &p->trans_a)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "transB", false, &p->trans_b)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "broadcast", false, &broadcast)) != CLEVAL_OK)
        return status;
    p->ep.lo = -INFINITY;
    p->ep.hi = INFINITY;
    if (!nn_has_in(op, 0) || !nn_has_in(op, 1))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "inputs A and B are required");
    return CLEVAL_OK;
}

static cleval_status gemm_infer(cleval_nn *nn, nn_op *op)
{
    nn_gemm_params *p = &op->p.gemm;
    const nn_value *a = nn_in(nn, op, 0), *b = nn_in(nn, op, 1);
    if (a->shape.rank != 2 || b->shape.rank != 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "A and B must be 2-D (they have rank %u "
                          "and %u)",
                          a->shape.rank, b->shape.rank);
    p->m = p->trans_a ? a->shape.d[1] : a->shape.d[0];
    p->k = p->trans_a ? a->shape.d[0] : a->shape.d[1];
    int64_t kb = p->trans_b ? b->shape.d[1] : b->shape.d[0];
    p->n = p->trans_b ? b->shape.d[0] : b->shape.d[1];
    p->batch = 1;
    if (kb != p->k)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "A has K = %lld, B has K = %lld",
                          (long long)p->k, (long long)kb);
    /* The batch must be on A's rows (M), not in K, nor in B. */
    int batch_a = nn_batch_axis(a);
    if (batch_a >= 0 && batch_a != (p->trans_a ? 1 : 0)) op->mixes_batch = true;
    if (nn_batch_axis(b) >= 0) op->mixes_batch = true;
    if (nn_has_in(op, 2)) {
        const nn_value *c = nn_in(nn, op, 2);
        nn_shape mn = {2, {p->m, p->n}}, out;
        if (c->shape.rank > 2 || !nn_broadcast(&mn, &c->shape, &out) || out.d[0] != p->m ||
            out.d[1] != p->n)
            return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "C does not broadcast to [%lld, %lld]",
                              (long long)p->m, (long long)p->n);
        /* C must carry the batch on the rows of the product as A does, or not vary along
         * them: A seen as [M, K], its batch on axis 0. */
        nn_value rows = *a;
        rows.batch_axis = batch_a >= 0 ? 0 : -1;
        nn_shape mk = {2, {p->m, p->k}};
        const nn_value *vals[2] = {&rows, c};
        const nn_shape *shapes[2] = {&mk, &c->shape};
        if (!nn_broadcast_keeps_batch(vals, shapes, 2, &mn)) op->mixes_batch = true;
    }
    nn_out(nn, op, 0)->shape = (nn_shape){2, {p->m, p->n}};
    op->flops = 2.0 * (double)p->m * (double)p->n * (double)p->k;
    return CLEVAL_OK;
}

static cleval_status matmul_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    nn_gemm_params *p = &op->p.gemm;
    cleval_status status = nn_check_attrs(nn, op, node, NULL);
    if (status != CLEVAL_OK) return status;
    if (!nn_has_in(op, 0) || !nn_has_in(op, 1) || op->n_in != 2)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "needs exactly two inputs");
    p->matmul = true;
    p->alpha = 1.0f;
    p->beta = 0.0f;
    p->ep.lo = -INFINITY;
    p->ep.hi = INFINITY;
    return CLEVAL_OK;
}

/* The batch axes of a MatMul operand (all but the last two of its 2-D-promoted shape). */
static nn_shape batch_of(const nn_shape *s)
{
    nn_shape r = {0, {0}};
    if (s->rank > 2) {
        r.rank = s->rank - 2;
        memcpy(r.d, s->d, r.rank * sizeof *r.d);
    }
    return r;
}

/* Samples mix when an operand carries the batch in K, or in a batch axis along which the
 * other, constant operand varies (the batch on A's M or B's N axis is a row or column). */
static bool matmul_mixes_batch(const nn_value *a, const nn_value *b)
{
    const nn_value *ops[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        int axis = nn_batch_axis(ops[i]);
        int rank = (int)ops[i]->shape.rank;
        if (axis < 0) continue;
        int k_axis = rank == 1 ? 0 : i == 0 ? rank - 1 : rank - 2;
        if (axis == k_axis) return true;
        const nn_value *other = ops[1 - i];
        int other_axis = axis - (rank - 2) + ((int)other->shape.rank - 2); /* right-aligned */
        if (axis < rank - 2 && nn_batch_axis(other) < 0 && other_axis >= 0 &&
            other->shape.d[other_axis] != 1)
            return true;
    }
    return false;
}

static cleval_status matmul_infer(cleval_nn *nn, nn_op *op)
{
    nn_gemm_params *p = &op->p.gemm;
    const nn_value *a = nn_in(nn, op, 0), *b = nn_in(nn, op, 1);
    if (a->shape.rank == 0 || b->shape.rank == 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "scalar operands are not allowed");
    p->a_vector = a->shape.rank == 1;
    p->b_vector = b->shape.rank == 1;
    p->m = p->a_vector ? 1 : a->shape.d[a->shape.rank - 2];
    p->k = a->shape.d[a->shape.rank - 1];
    int64_t kb = p->b_vector ? b->shape.d[0] : b->shape.d[b->shape.rank - 2];
    p->n = p->b_vector ? 1 : b->shape.d[b->shape.rank - 1];
    if (kb != p->k)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "A has K = %lld, B has K = %lld",
                          (long long)p->k, (long long)kb);
    nn_shape ba = batch_of(&a->shape), bb = batch_of(&b->shape);
    if (!nn_broadcast(&ba, &bb, &p->batch_shape))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "the batch axes do not broadcast");
    p->batch = (int64_t)nn_shape_count(&p->batch_shape);
    /* Batch axes that cannot be folded into M run one launch per matrix: bound them. */
    if (b->shape.rank > 2 && p->batch > 65536)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "%lld batched matrix products are more than supported (65536)",
                          (long long)p->batch);
    nn_shape out = p->batch_shape;
    if (out.rank + 2 > NN_MAX_RANK)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "the output rank is too large");
    if (!p->a_vector) out.d[out.rank++] = p->m;
    if (!p->b_vector) out.d[out.rank++] = p->n;
    if (matmul_mixes_batch(a, b)) op->mixes_batch = true;
    nn_out(nn, op, 0)->shape = out;
    op->flops = 2.0 * (double)p->batch * (double)p->m * (double)p->n * (double)p->k;
    return CLEVAL_OK;
}

/* Element offset of batch `index` of an operand with batch axes `own`, broadcast to `all`,
 * whose matrices hold `matrix` elements. */
static int64_t batch_offset(const nn_shape *own, const nn_shape *all, int64_t index, int64_t matrix)
{
    int64_t offset = 0, stride = matrix;
    for (int i = (int)all->rank - 1; i >= 0; i--) {
        int64_t coord = index % all->d[i];
        index /= all->d[i];
        int j = i - (int)(all->rank - own->rank);
        if (j < 0) continue;
        if (own->d[j] != 1) offset += coord * stride;
        stride *= own->d[j];
    }
    return offset;
}

/* A and B strides for both ops. */
static void operands(cleval_nn *nn, const nn_op *op, operand *a, operand *b)
{
    const nn_gemm_params *p = &op->p.gemm;
    if (p->matmul) {
        a->rs = p->k;
        a->ks = 1;
        b->rs = p->b_vector ? 1 : p->n; /* B(k, j): rs is the k stride */
        b->ks = 1;
        return;
    }
    a->rs = p->trans_a ? 1 : p->k;
    a->ks = p->trans_a ? p->m : 1;
    b->rs = p->trans_b ? 1 : p->n;
    b->ks = p->trans_b ? p->k : 1;
    (void)nn;
}

/* MatMul folds A's batch axes into M when B has none and A's matrices are contiguous. */
static bool folds_batch(cleval_nn *nn, const nn_op *op)
{
    const nn_gemm_params *p = &op->p.gemm;
    const nn_value *b = nn_in(nn, op, 1);
    return p->matmul && b->shape.rank <= 2;
}

/* B's (k, j) strides and K for a constant B (Gemm with transB, or a 2-D MatMul B). */
static void b_layout(const nn_op *op, const nn_value *b, int64_t n, int64_t *k, int64_t *ks,
                     int64_t *ns)
{
    const nn_gemm_params *p = &op->p.gemm;
    if (p->matmul) {
        *k = b->shape.rank == 1 ? b->shape.d[0] : b->shape.d[b->shape.rank - 2];
        *ks = b->shape.rank == 1 ? 1 : n;
        *ns = 1;
    } else {
        *k = p->trans_b ? b->shape.d[1] : b->shape.d[0];
        *ks = p->trans_b ? 1 : n;
        *ns = p->trans_b ? *k : 1;
    }
}

/* Storage and int8 options of every Gemm kernel build. */
static void precision_options(const cleval_nn *nn, const nn_op *op, bool b_half, char *out,
                              size_t size)
{
    bool has_c = nn_has_in(op, 2) && op->p.gemm.beta != 0.0f;
    snprintf(out, size, "-DA_HALF=%d -DB_HALF=%d -DC_HALF=%d -DY_HALF=%d -DINT8=%d -DI8_FLOAT=%u",
             nn_half(nn, op->in[0]), b_half, has_c ? nn_half(nn, op->in[2]) : 0,
             nn_half(nn, op->out[0]), op->int8, nn->tuning.i8_float);
}

/* B's int8 codes (in B's own layout, as exact floats) and a scale per column; both NULL
 * without int8. */
typedef struct gemm_weights {
    const float *values; /* B's floats or codes */
    float *codes, *scales;
    int64_t n_cols;
} gemm_weights;

static cleval_status gemm_weights_load(const nn_op *op, const nn_value *b, gemm_weights *w)
{
    const nn_gemm_params *p = &op->p.gemm;
    w->n_cols = p->matmul ? (b->shape.rank == 1 ? 1 : b->shape.d[b->shape.rank - 1])
                          : (p->trans_b ? b->shape.d[0] : b->shape.d[1]);
    w->values = b->f32;
    w->codes = w->scales = NULL;
    if (!op->int8) return CLEVAL_OK;
    int64_t k, ks, ns;
    b_layout(op, b, w->n_cols, &k, &ks, &ns);
    cleval_status status =
        nn_quantise_weights(b->f32, w->n_cols, k, ns, ks, "weights", &w->codes, &w->scales);
    if (status == CLEVAL_OK) w->values = w->codes;
    return status;
}

static const char *mode_tag(const cleval_nn *nn, const nn_op *op)
{
    return op->int8 ? " int8" : nn->precision == CLEVAL_NN_FP16 ? nn_fp16_tag(nn) : "";
}

/* gemm_gpu's tunables (kernels/gemm_gpu.cl): an MWG x NWG tile per work-group of MDIMC x
 * NDIMC work-items, KWG-deep k-slices, local-memory vectors of VWM rows and VWN columns. */
typedef struct gemm_gpu_tile {
    uint32_t mwg, nwg, kwg, mdimc, ndimc, vwm, vwn;
} gemm_gpu_tile;

/* SMALL: 4 x 4 outputs per work-item, 64 items, 8 KiB of local memory. LARGE: 8 x 8 per item
 * (twice the FMAs per local load), 64 items, 16 KiB; for outputs at least 64 columns wide,
 * where its 64-column tiles are not mostly padding. */
static const gemm_gpu_tile GEMM_GPU_SMALL = {32, 32, 16, 8, 8, 2, 2};
static const gemm_gpu_tile GEMM_GPU_LARGE = {64, 64, 16, 8, 8, 4, 4};

static size_t gemm_gpu_local_bytes(const cleval_nn *nn, const nn_op *op, const gemm_gpu_tile *t)
{
    size_t elem = op->int8 ? 1 : nn->half_math ? 2 : 4;
    return 2 * (size_t)t->kwg * (t->mwg + t->nwg) * elem; /* two buffers of A and B slices */
}

static bool gemm_gpu_fits(const cleval_nn *nn, const nn_op *op, const gemm_gpu_tile *t)
{
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    return info->max_work_group_size >= (size_t)t->mdimc * t->ndimc &&
           info->local_mem_bytes >= gemm_gpu_local_bytes(nn, op, t);
}

/* The tile for op: the tuned choice (gpu_gemm_tile 1 small, 2 large), else large for N >= 64;
 * small when the device cannot hold the large one. Chosen from N, fixed at prepare. */
static gemm_gpu_tile gemm_gpu_tile_for(const cleval_nn *nn, const nn_op *op)
{
    uint32_t forced = nn->tuning.gpu_gemm_tile;
    bool large = forced ? forced == 2 : op->p.gemm.n >= 64;
    return large && gemm_gpu_fits(nn, op, &GEMM_GPU_LARGE) ? GEMM_GPU_LARGE : GEMM_GPU_SMALL;
}

/* GPU: a constant B is read in place (the float constant, or a half / int8 copy); gemm_gpu,
 * its split-K reduction and (int8) quantize_2d. */
static cleval_status prepare_gpu(cleval_nn *nn, nn_op *op, const gemm_weights *w, bool has_c)
{
    nn_gemm_params *p = &op->p.gemm;
    const nn_value *b = nn_in(nn, op, 1);
    bool half = nn->precision == CLEVAL_NN_FP16;
    bool b_half = half ? b->kind == NN_VALUE_CONST || nn_half(nn, op->in[1]) : false;
    cl_mem unused;
    cleval_status status = CLEVAL_OK;
    if (b->kind == NN_VALUE_CONST && (half || op->int8))
        status =
            nn_upload_as(nn, w->values, (size_t)b->count, half, op->int8, "weights", &op->mem[0]);
    else if (b->kind == NN_VALUE_CONST)
        status = nn_const_mem(nn, op->in[1], &unused);
    if (status == CLEVAL_OK && op->int8)
        status = nn_upload(nn, w->scales, (size_t)w->n_cols * sizeof *w->scales, "weight scales",
                           &op->mem[4]);
    if (status != CLEVAL_OK) return status;
    gemm_gpu_tile t = gemm_gpu_tile_for(nn, op);
    if (!gemm_gpu_fits(nn, op, &t))
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "the device's work-groups are smaller than gemm_gpu's %ux%u tile "
                          "needs (%u items, %zu bytes of local memory)",
                          t.mwg, t.nwg, t.mdimc * t.ndimc, gemm_gpu_local_bytes(nn, op, &t));
    char options[480], precision[200];
    precision_options(nn, op, b_half, precision, sizeof precision);
    snprintf(options, sizeof options,
             "-DHAS_C=%d -DCLAMP=%d -DMWG=%u -DNWG=%u -DKWG=%u -DMDIMC=%u -DNDIMC=%u -DVWM=%u "
             "-DVWN=%u %s",
             has_c, nn_epilogue_clamps(&p->ep), t.mwg, t.nwg, t.kwg, t.mdimc, t.ndimc, t.vwm, t.vwn,
             precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "gemm_gpu %ux%u/%u %ux%u%s", t.mwg, t.nwg,
             t.kwg, t.mwg / t.mdimc, t.nwg / t.ndimc, mode_tag(nn, op));
    status = nn_kernel(nn, op, "gemm_gpu", options, "gemm_gpu", &op->k[0]);
    if (status == CLEVAL_OK)
        status = nn_kernel(nn, op, "gemm_gpu", options, "gemm_gpu_reduce", &op->k[2]);
    if (status == CLEVAL_OK && op->int8)
        status = nn_kernel(nn, op, "quantize", NULL, "quantize_2d", &op->k[3]);
    return status;
}

/* B with its K rows in the order of a channels-last A (see passes.c): row (ch, sp) moves to
 * (sp, ch). Returns malloc'd memory or NULL. */
static float *permute_k_rows(const nn_gemm_params *p, const float *b, int64_t k, int64_t n,
                             int64_t ks, int64_t ns)
{
    float *permuted = malloc((size_t)(k * n) * sizeof *permuted);
    if (!permuted) return NULL;
    for (int64_t ch = 0; ch < p->perm_c; ch++)
        for (int64_t sp = 0; sp < p->perm_s; sp++)
            for (int64_t j = 0; j < n; j++)
                permuted[(sp * p->perm_c + ch) * ks + j * ns] =
                    b[(ch * p->perm_s + sp) * ks + j * ns];
    return permuted;
}

/* gemm_cpu's constant B: every matrix of B packed into panels (nn_pack_panels), and the int8
 * scales padded to whole panels. */
static cleval_status upload_packed_b(cleval_nn *nn, nn_op *op, const gemm_weights *w)
{
    nn_gemm_params *p = &op->p.gemm;
    const nn_value *b = nn_in(nn, op, 1);
    if (!b->f32) return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "B must be a float tensor");
    int64_t n = w->n_cols, k, ks, ns, count = 1;
    b_layout(op, b, n, &k, &ks, &ns);
    if (p->matmul)
        for (uint32_t i = 0; i + 2 < b->shape.rank; i++)
            count *= b->shape.d[i];
    int64_t nr = 16 * (int64_t)p->nv, panels = nn_panel_count(n, p->nv);
    size_t per = (size_t)(panels * k * nr);
    if (k * n > NN_MAX_ELEMENTS || (int64_t)per * count > NN_MAX_ELEMENTS)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "B is too large");
    if (p->perm_c > 0 && (p->perm_c * p->perm_s != k || count != 1))
        return nn_fail_op(nn, op, CLEVAL_ERR_INTERNAL, "weight permutation mismatch");
    float *permuted = p->perm_c > 0 ? permute_k_rows(p, w->values, k, n, ks, ns) : NULL;
    if (p->perm_c > 0 && !permuted)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing weights");
    float *packed =
        nn_pack_panels(permuted ? permuted : w->values, count, k * n, k, n, ks, ns, p->nv);
    float *scales = op->int8 ? nn_pad_panel_columns(w->scales, 1, n, p->nv) : NULL;
    cleval_status status = CLEVAL_OK;
    if (!packed || (op->int8 && !scales))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing weights");
    p->panels = (uint32_t)panels;
    if (status == CLEVAL_OK)
        status = nn_upload_as(nn, packed, per * (size_t)count, nn->precision == CLEVAL_NN_FP16,
                              op->int8, "packed weights", &op->mem[0]);
    if (status == CLEVAL_OK && op->int8)
        status = nn_upload(nn, scales, (size_t)(panels * nr) * sizeof *scales, "weight scales",
                           &op->mem[4]);
    free(permuted);
    free(packed);
    free(scales);
    return status;
}

/* CPU: B packed once at prepare when constant, else per run by gemm_pack; gemm_cpu and
 * (int8) quantize_2d. */
static cleval_status prepare_cpu(cleval_nn *nn, nn_op *op, const gemm_weights *w, bool has_c)
{
    nn_gemm_params *p = &op->p.gemm;
    /* The tile follows N, which is fixed by B for Gemm and MatMul alike. */
    int64_t n = w->n_cols;
    nn_choose_tile((uint32_t)(n > UINT32_MAX ? UINT32_MAX : n), nn->tuning.gemm_mr,
                   nn->tuning.gemm_nv, &p->mr, &p->nv);
    p->b_packed = nn_in(nn, op, 1)->kind == NN_VALUE_CONST;
    cleval_status status;
    if (p->b_packed) {
        status = upload_packed_b(nn, op, w);
    } else {
        char pack_options[64];
        snprintf(pack_options, sizeof pack_options, "-DNV=%u -DB_HALF=%d", p->nv,
                 nn_half(nn, op->in[1]));
        status = nn_kernel(nn, op, "gemm", pack_options, "gemm_pack", &op->k[1]);
    }
    if (status != CLEVAL_OK) return status;
    bool a_ks1 = p->matmul || !p->trans_a || op->int8;
    char options[400], precision[200];
    precision_options(nn, op, p->b_packed && nn->precision == CLEVAL_NN_FP16, precision,
                      sizeof precision);
    snprintf(options, sizeof options, "-DMR=%u -DNV=%u -DKC=%u -DHAS_C=%d -DCLAMP=%d -DA_KS1=%d %s",
             p->mr, p->nv, nn->tuning.gemm_kc, has_c, nn_epilogue_clamps(&p->ep), a_ks1, precision);
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "gemm_cpu MR=%u NV=%u KC=%u%s%s%s", p->mr,
             p->nv, nn->tuning.gemm_kc, p->b_packed ? "" : " +pack", mode_tag(nn, op),
             op->int8 && nn->tuning.i8_float ? " (float blocks)" : "");
    status = nn_kernel(nn, op, "gemm", options, "gemm_cpu", &op->k[0]);
    if (status == CLEVAL_OK && op->int8)
        status = nn_kernel(nn, op, "quantize", NULL, "quantize_2d", &op->k[3]);
    return status;
}

/* One prepare per kernel family (gemm_gpu, gemm_cpu), after the constant A and C are on the
 * device and B's int8 codes are made. */
static cleval_status gemm_prepare(cleval_nn *nn, nn_op *op)
{
    nn_gemm_params *p = &op->p.gemm;
    bool has_c = nn_has_in(op, 2) && p->beta != 0.0f;
    cl_mem unused;
    cleval_status status;
    if (p->head) return nn_head_prepare(nn, op);
    if (has_c && nn_in(nn, op, 2)->kind == NN_VALUE_CONST &&
        (status = nn_const_mem(nn, op->in[2], &unused)) != CLEVAL_OK)
        return status;
    if (nn_in(nn, op, 0)->kind == NN_VALUE_CONST &&
        (status = nn_const_mem(nn, op->in[0], &unused)) != CLEVAL_OK)
        return status;
    gemm_weights w;
    if ((status = gemm_weights_load(op, nn_in(nn, op, 1), &w)) != CLEVAL_OK) return status;
    status = nn->variant == CLEVAL_VARIANT_GPU ? prepare_gpu(nn, op, &w, has_c)
                                               : prepare_cpu(nn, op, &w, has_c);
    free(w.codes);
    free(w.scales);
    return status;
}

/* Rows of A per gemm_cpu work-item: enough work-items to keep every core busy (a few per
 * core), at most the tuned gemm_qb, a multiple of the register tile's rows. `count` matrices
 * share the launch, each with its own work-items. */
static int64_t rows_per_item(const cleval_nn *nn, const nn_op *op, int64_t m, int64_t count)
{
    const nn_gemm_params *p = &op->p.gemm;
    int64_t nr = 16 * (int64_t)p->nv, panels = (p->n + nr - 1) / nr;
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.conv_items * (info->compute_units ? info->compute_units : 1);
    int64_t per_row_block = panels * (count > 0 ? count : 1);
    int64_t blocks = (want + per_row_block - 1) / (per_row_block ? per_row_block : 1);
    int64_t qb = (m + blocks - 1) / (blocks ? blocks : 1);
    qb = (qb + p->mr - 1) / p->mr * p->mr;
    if (qb > (int64_t)nn->tuning.gemm_qb) qb = nn->tuning.gemm_qb;
    return qb < p->mr ? p->mr : qb;
}

/* K splits of gemm_gpu: when the M x N tiles are too few to fill the device, K is cut into
 * pieces of at least 128 so that about gpu_groups work-groups run per compute unit. */
static int64_t gpu_splits(const cleval_nn *nn, const nn_op *op, int64_t m)
{
    const nn_gemm_params *p = &op->p.gemm;
    gemm_gpu_tile t = gemm_gpu_tile_for(nn, op);
    int64_t tiles = ((m + t.mwg - 1) / t.mwg) * ((p->n + t.nwg - 1) / t.nwg);
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    int64_t want = (int64_t)nn->tuning.gpu_groups * (info->compute_units ? info->compute_units : 1);
    if (tiles == 0 || tiles >= want) return 1;
    int64_t splits = (want + tiles - 1) / tiles, most = p->k / 128;
    if (splits > most) splits = most;
    if (splits > 256) splits = 256;
    return splits < 1 ? 1 : splits;
}

/* The workspace of one launch of `count` products of m rows. int8: A's codes (m x k bytes)
 * at byte 0; then, from float element `at` (a 64-byte boundary after the codes), the floats
 * (int32 sums for int8): gemm_cpu's packed Bs (when computed at run time) then its k-block
 * scratch, or gemm_gpu's split-K parts. The kernels take these positions as int element
 * offsets of their own type, never as byte offsets, so `at` plus the floats must stay within
 * int range. */
typedef struct workspace_layout {
    int64_t codes;         /* bytes of A's codes (0 without int8) */
    int64_t at;            /* float element where the floats begin */
    int64_t pack, scratch; /* gemm_cpu: floats of the packed B (first) and of the scratch */
    int64_t parts;         /* gemm_gpu: floats of the split-K parts */
} workspace_layout;

static workspace_layout layout_of(const cleval_nn *nn, const nn_op *op, int64_t m, int64_t count)
{
    const nn_gemm_params *p = &op->p.gemm;
    workspace_layout w = {0, 0, 0, 0, 0};
    w.codes = op->int8 ? m * p->k : 0;
    w.at = (w.codes + 63) / 64 * 16;
    if (nn->variant == CLEVAL_VARIANT_GPU) {
        int64_t splits = gpu_splits(nn, op, m);
        w.parts = splits > 1 ? splits * m * p->n : 0;
    } else if (p->nv) {
        int64_t nr = 16 * (int64_t)p->nv, panels = (p->n + nr - 1) / nr;
        int64_t qb = rows_per_item(nn, op, m, count), blocks = (m + qb - 1) / qb;
        w.pack = p->b_packed ? 0 : count * panels * p->k * nr;
        w.scratch = p->k > (int64_t)nn->tuning.gemm_kc ? count * blocks * panels * qb * nr : 0;
    }
    return w;
}

static int64_t rows_per_launch(cleval_nn *nn, const nn_op *op)
{
    const nn_gemm_params *p = &op->p.gemm;
    return folds_batch(nn, op) ? p->batch * p->m : p->m;
}

/* A batched MatMul whose matrices sit at a fixed distance from each other in each operand
 * (every batch axis either present in the operand or broadcast, as attention's [N, heads, L,
 * d] products): sets the distances (0 for a broadcast operand; B's in its own, unpacked
 * layout) and returns true. Those run as batched gemm_cpu launches; other broadcasts (an
 * operand present on some batch axes only), the GPU family and int8 (A's codes are quantised
 * per matrix) run one launch per matrix. */
static bool uniform_batch(cleval_nn *nn, const nn_op *op, int64_t *a_bs, int64_t *b_bs)
{
    const nn_gemm_params *p = &op->p.gemm;
    if (!p->matmul || folds_batch(nn, op) || nn->variant == CLEVAL_VARIANT_GPU || op->int8)
        return false;
    const nn_shape own[2] = {batch_of(&nn_in(nn, op, 0)->shape),
                             batch_of(&nn_in(nn, op, 1)->shape)};
    const nn_shape *all = &p->batch_shape;
    int64_t matrix[2] = {p->m * p->k, p->k * p->n}, stride[2];
    for (int o = 0; o < 2; o++) {
        int present = 0, absent = 0;
        for (uint32_t i = 0; i < all->rank; i++) {
            if (all->d[i] == 1) continue;
            int j = (int)i - (int)(all->rank - own[o].rank);
            if (j >= 0 && own[o].d[j] != 1)
                present++;
            else
                absent++;
        }
        if (present && absent) return false;
        stride[o] = present ? matrix[o] : 0;
    }
    *a_bs = stride[0];
    *b_bs = stride[1];
    return true;
}

/* Products per gemm_cpu launch: a run of a uniform batch (uniform_batch) whose packed Bs and
 * scratch fit the tuned gemm_batch_kib, else 1. The batch is cut into launches of as many
 * products as fit, so attention over a large batch does not need its whole run-time packed B
 * at once. */
static int64_t products_per_launch(cleval_nn *nn, const nn_op *op)
{
    const nn_gemm_params *p = &op->p.gemm;
    int64_t a_bs, b_bs;
    if (!uniform_batch(nn, op, &a_bs, &b_bs) || p->batch <= 1) return 1;
    workspace_layout one = layout_of(nn, op, p->m, 1);
    int64_t budget = (int64_t)nn->tuning.gemm_batch_kib * 1024 / (int64_t)sizeof(float);
    int64_t per = one.pack + one.scratch, count = per ? budget / per : p->batch;
    if (count > p->batch) count = p->batch;
    return count < 1 ? 1 : count;
}

static cleval_status gemm_infer_all(cleval_nn *nn, nn_op *op)
{
    nn_gemm_params *p = &op->p.gemm;
    cleval_status status = p->matmul ? matmul_infer(nn, op) : gemm_infer(nn, op);
    if (status != CLEVAL_OK) return status;
    if (p->head) { /* the fused head (op_head.c) needs no work buffer */
        op->workspace = 0;
        return CLEVAL_OK;
    }
    /* (CPU before prepare, the tile and so the scratch are not known yet: none is counted.) */
    workspace_layout w = layout_of(nn, op, rows_per_launch(nn, op), products_per_launch(nn, op));
    int64_t floats = w.at + w.pack + w.scratch + w.parts;
    if (w.codes > NN_MAX_ELEMENTS || floats > NN_MAX_ELEMENTS)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "needs a work buffer of more than %lld elements",
                          (long long)NN_MAX_ELEMENTS);
    op->workspace = (size_t)floats * sizeof(float);
    return CLEVAL_OK;
}

/* One matrix product as a launch sees it: m rows of A and B at their element offsets with
 * their strides, C (at offset 0, with its row and column strides; a stride of 0 broadcasts)
 * and Y at y_off; on CPUs `count` such products (1 at least), the next ones a_bs, b_bs and
 * y_bs elements further (b_bs in B's unpacked layout for a B packed at run time, in its
 * packed layout for a constant B). */
typedef struct gemm_call {
    int64_t m, count, a_bs, b_bs, y_bs;
    cl_mem a;
    int64_t a_off;
    operand ao;
    cl_mem b;
    int64_t b_off;
    operand bo;
    cl_mem c;
    int64_t c_rs, c_cs;
    cl_mem y;
    int64_t y_off;
} gemm_call;

/* The arguments every Gemm kernel takes after A and B: C and Y (see gemm_call), before Y's
 * row stride and the shape. */
static void arg_c_and_y(cleval_kernel_args *a, const gemm_call *call)
{
    cleval_kernel_arg_mem(a, call->c);
    cleval_kernel_arg_int(a, 0);
    cleval_kernel_arg_int(a, (int32_t)call->c_rs);
    cleval_kernel_arg_int(a, (int32_t)call->c_cs);
    cleval_kernel_arg_mem(a, call->y);
    cleval_kernel_arg_int(a, (int32_t)call->y_off);
}

/* alpha, beta and the fused clamp's bounds, after the shape. */
static void arg_epilogue(cleval_kernel_args *a, const nn_gemm_params *p)
{
    cleval_kernel_arg_float(a, p->alpha);
    cleval_kernel_arg_float(a, p->beta);
    cleval_kernel_arg_float(a, p->ep.lo);
    cleval_kernel_arg_float(a, p->ep.hi);
}

/* The int8 weight scales (any buffer without int8) and the input scale, the last arguments. */
static void arg_scales(cleval_kernel_args *a, const nn_op *op, const gemm_call *call)
{
    cleval_kernel_arg_mem(a, op->int8 ? op->mem[4] : call->y);
    cleval_kernel_arg_float(a, op->int8 ? op->x_scale : 1.0f);
}

/* gemm_gpu over (N, M) tiles and K splits, then gemm_gpu_reduce adding the splits' parts. */
static cleval_status launch_gpu(cleval_nn *nn, nn_op *op, const gemm_call *call)
{
    const nn_gemm_params *p = &op->p.gemm;
    int64_t m = call->m;
    workspace_layout w = layout_of(nn, op, m, 1);
    /* Each split a whole number of KWG-deep slices, so the slices, and with half arithmetic
     * the blocks summed in half, start at multiples of KWG whatever the split (a last split
     * may get no k: its partial sums are 0). */
    gemm_gpu_tile t = gemm_gpu_tile_for(nn, op);
    int64_t splits = gpu_splits(nn, op, m);
    int64_t per = ((p->k + splits - 1) / splits + t.kwg - 1) / t.kwg * t.kwg;
    cl_mem part = splits > 1 ? nn_workspace_mem(nn, op) : call->y;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, call->a);
    cleval_kernel_arg_int(&a, (int32_t)call->a_off);
    cleval_kernel_arg_int(&a, (int32_t)call->ao.rs);
    cleval_kernel_arg_int(&a, (int32_t)call->ao.ks);
    cleval_kernel_arg_mem(&a, call->b);
    cleval_kernel_arg_int(&a, (int32_t)call->b_off);
    cleval_kernel_arg_int(&a, (int32_t)call->bo.rs);
    cleval_kernel_arg_int(&a, (int32_t)call->bo.ks);
    arg_c_and_y(&a, call);
    cleval_kernel_arg_int(&a, (int32_t)p->n);
    cleval_kernel_arg_int(&a, (int32_t)m);
    cleval_kernel_arg_int(&a, (int32_t)p->n);
    cleval_kernel_arg_int(&a, (int32_t)p->k);
    arg_epilogue(&a, p);
    cleval_kernel_arg_int(&a, (int32_t)splits);
    cleval_kernel_arg_int(&a, (int32_t)per);
    cleval_kernel_arg_mem(&a, part);
    cleval_kernel_arg_int(&a, (int32_t)w.at);
    arg_scales(&a, op, call);
    size_t local[3] = {t.ndimc, t.mdimc, 1};
    size_t global[3] = {(size_t)((p->n + t.nwg - 1) / t.nwg) * t.ndimc,
                        (size_t)((m + t.mwg - 1) / t.mwg) * t.mdimc, (size_t)splits};
    cleval_status status = nn_enqueue(nn, op, &a, 3, global, local);
    if (status != CLEVAL_OK || splits == 1) return status;
    cleval_kernel_args r = cleval_kernel_args_begin(op->k[2], NULL);
    cleval_kernel_arg_mem(&r, part);
    cleval_kernel_arg_int(&r, (int32_t)w.at);
    cleval_kernel_arg_int(&r, (int32_t)splits);
    arg_c_and_y(&r, call);
    cleval_kernel_arg_int(&r, (int32_t)p->n);
    cleval_kernel_arg_int(&r, (int32_t)m);
    cleval_kernel_arg_int(&r, (int32_t)p->n);
    arg_epilogue(&r, p);
    arg_scales(&r, op, call);
    size_t rl = nn_local_1d(nn), rg = (size_t)(m * p->n);
    return nn_enqueue(nn, op, &r, 1, &rg, &rl);
}

/* gemm_cpu over (row blocks, panels, products), after gemm_pack when B is computed at run
 * time. The row blocks and the workspace are those of a full launch (products_per_launch),
 * which the allocated workspace fits, also for a shorter last run of a batch. */
static cleval_status launch_cpu(cleval_nn *nn, nn_op *op, const gemm_call *call)
{
    const nn_gemm_params *p = &op->p.gemm;
    assert(p->nv >= 1); /* prepare chose the tile */
    int64_t m = call->m, count = call->count, panels = nn_panel_count(p->n, p->nv);
    int64_t full = products_per_launch(nn, op);
    assert(count <= full);
    workspace_layout w = layout_of(nn, op, m, full);
    cl_mem ws = op->workspace ? nn_workspace_mem(nn, op) : call->y;
    cl_mem packed = op->mem[0];
    int64_t packed_off = call->b_off, packed_bs = call->b_bs;
    cleval_status status;
    if (!p->b_packed) {
        cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
        cleval_kernel_arg_mem(&a, call->b);
        cleval_kernel_arg_int(&a, (int32_t)call->b_off);
        cleval_kernel_arg_int(&a, (int32_t)call->bo.rs);
        cleval_kernel_arg_int(&a, (int32_t)call->bo.ks);
        cleval_kernel_arg_int(&a, (int32_t)p->k);
        cleval_kernel_arg_int(&a, (int32_t)p->n);
        cleval_kernel_arg_mem(&a, ws);
        cleval_kernel_arg_int(&a, (int32_t)w.at);
        cleval_kernel_arg_int(&a, (int32_t)call->b_bs);
        size_t global[3] = {(size_t)p->k, (size_t)panels, (size_t)count}, local[3] = {1, 1, 1};
        if ((status = nn_enqueue(nn, op, &a, 3, global, local)) != CLEVAL_OK) return status;
        packed = ws;
        packed_off = w.at;
        packed_bs = panels * p->k * 16 * (int64_t)p->nv;
    }
    int64_t qb = rows_per_item(nn, op, m, full);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, call->a);
    cleval_kernel_arg_int(&a, (int32_t)call->a_off);
    cleval_kernel_arg_int(&a, (int32_t)call->ao.rs);
    cleval_kernel_arg_int(&a, (int32_t)call->ao.ks);
    cleval_kernel_arg_mem(&a, packed);
    cleval_kernel_arg_int(&a, (int32_t)packed_off);
    arg_c_and_y(&a, call);
    cleval_kernel_arg_int(&a, (int32_t)p->n);
    cleval_kernel_arg_int(&a, (int32_t)m);
    cleval_kernel_arg_int(&a, (int32_t)p->n);
    cleval_kernel_arg_int(&a, (int32_t)p->k);
    arg_epilogue(&a, p);
    cleval_kernel_arg_mem(&a, ws);
    cleval_kernel_arg_int(&a, (int32_t)(w.at + w.pack));
    cleval_kernel_arg_int(&a, (int32_t)qb);
    arg_scales(&a, op, call);
    cleval_kernel_arg_int(&a, (int32_t)call->a_bs);
    cleval_kernel_arg_int(&a, (int32_t)packed_bs);
    cleval_kernel_arg_int(&a, (int32_t)call->y_bs);
    size_t global[3] = {(size_t)((m + qb - 1) / qb), (size_t)panels, (size_t)count};
    size_t local[3] = {1, 1, 1};
    return nn_enqueue(nn, op, &a, 3, global, local);
}

/* One product: A's int8 codes first when quantised, then the device's kernel family. */
static cleval_status launch_one(cleval_nn *nn, nn_op *op, const gemm_call *call)
{
    const nn_gemm_params *p = &op->p.gemm;
    if (call->m == 0 || p->n == 0 || call->count == 0) return CLEVAL_OK;
    if (p->k == 0) {
        /* An empty sum: Y = beta * C (or 0), clamped. Rare; done on the host. */
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "K = 0 is not supported");
    }
    gemm_call quantised = *call;
    if (op->int8) {
        /* A's int8 codes, row-major, at the start of the workspace. */
        cl_mem ws = nn_workspace_mem(nn, op);
        cleval_status status = nn_launch_quantize_2d(
            nn, op, op->k[3], call->a, call->a_off, call->ao.rs, call->ao.ks, call->m, p->k, ws, 0);
        if (status != CLEVAL_OK) return status;
        quantised.a = ws;
        quantised.a_off = 0;
        quantised.ao = (operand){p->k, 1};
    }
    return nn->variant == CLEVAL_VARIANT_GPU ? launch_gpu(nn, op, &quantised)
                                             : launch_cpu(nn, op, &quantised);
}

static cleval_status gemm_launch(cleval_nn *nn, nn_op *op)
{
    nn_gemm_params *p = &op->p.gemm;
    gemm_call call = {.m = p->m, .count = 1};
    if (p->head) return nn_head_launch(nn, op);
    operands(nn, op, &call.ao, &call.bo);
    call.a = nn_value_mem(nn, op->in[0]);
    call.b = p->b_packed ? NULL : nn_value_mem(nn, op->in[1]);
    if (nn->variant == CLEVAL_VARIANT_GPU && op->mem[0]) call.b = op->mem[0]; /* half / int8 copy */
    call.y = call.c = nn_value_mem(nn, op->out[0]);
    /* C: Gemm's, or the bias a pass fused into a MatMul by a constant 2-D B (passes.c), whose
     * batch always folds into M. */
    if (nn_has_in(op, 2) && p->beta != 0.0f) {
        const nn_shape *c = &nn_in(nn, op, 2)->shape;
        call.c = nn_value_mem(nn, op->in[2]);
        /* Broadcast strides of C over [M, N]. */
        if (c->rank == 2) {
            call.c_rs = c->d[0] == 1 ? 0 : c->d[1];
            call.c_cs = c->d[1] == 1 ? 0 : 1;
        } else if (c->rank == 1) {
            call.c_cs = c->d[0] == 1 ? 0 : 1;
        }
    }
    if (!p->matmul) return launch_one(nn, op, &call);
    if (folds_batch(nn, op)) {
        call.m = p->batch * p->m;
        return launch_one(nn, op, &call);
    }
    int64_t nr = 16 * (int64_t)p->nv, panels = p->nv ? nn_panel_count(p->n, p->nv) : 0;
    int64_t packed_matrix = panels * p->k * nr;
    if (uniform_batch(nn, op, &call.a_bs, &call.b_bs)) {
        /* Runs of products in one launch each, at fixed distances. */
        int64_t per = products_per_launch(nn, op);
        if (p->b_packed && call.b_bs) call.b_bs = packed_matrix; /* B's packed matrices */
        call.y_bs = p->m * p->n;
        for (int64_t i = 0; i < p->batch; i += per) {
            call.count = p->batch - i < per ? p->batch - i : per;
            call.a_off = i * call.a_bs;
            call.b_off = i * call.b_bs;
            call.y_off = i * call.y_bs;
            cleval_status status = launch_one(nn, op, &call);
            if (status != CLEVAL_OK) return status;
        }
        return CLEVAL_OK;
    }
    /* Other batched MatMuls: one launch per output matrix, operands at their broadcast
     * offsets. */
    const nn_shape *as = &nn_in(nn, op, 0)->shape, *bs = &nn_in(nn, op, 1)->shape;
    nn_shape ba = batch_of(as), bb = batch_of(bs);
    for (int64_t i = 0; i < p->batch; i++) {
        int64_t b_index = batch_offset(&bb, &p->batch_shape, i, 1);
        call.a_off = batch_offset(&ba, &p->batch_shape, i, p->m * p->k);
        call.b_off = b_index * (p->b_packed ? packed_matrix : p->k * p->n);
        call.y_off = i * p->m * p->n;
        cleval_status status = launch_one(nn, op, &call);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

const nn_op_kind nn_kind_gemm = {"Gemm", gemm_parse, gemm_infer_all, gemm_prepare, gemm_launch};
const nn_op_kind nn_kind_matmul = {"MatMul", matmul_parse, gemm_infer_all, gemm_prepare,
                                   gemm_launch};
