/* LSTM and GRU as ONNX defines them (and PyTorch exports them): directions forward, reverse
 * and bidirectional; layout 0 (sequence-major) and 1 (batch-major); optional bias, initial
 * states (constant or computed) and LSTM peepholes; clip; LSTM input_forget; GRU
 * linear_before_reset 0 and 1; activations Sigmoid, Tanh and Relu in any position. All three
 * outputs (Y, Y_h, Y_c) are computed. sequence_lens is accepted only when every length is the
 * sequence length (a constant). kernels/rnn.cl: one GEMM projects the inputs of every time step
 * (weights transposed and biases folded once at prepare), then one launch runs the recurrence
 * with a work-group per direction and block of batch rows (the tunable rnn_rows). On CPU-style
 * devices both run 16 units per vector in one work-item per group (*_cpu kernels), with the
 * units of each gate padded to a multiple of 16 in the packed weights and the workspace. The
 * state and gate arithmetic stay float in fp16 mode; only the tensors read and written are
 * stored as half. */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { IN_X, IN_W, IN_R, IN_B, IN_LENS, IN_H0, IN_C0, IN_P };
enum { OUT_Y, OUT_YH, OUT_YC };
enum { ACT_SIGMOID, ACT_TANH, ACT_RELU };
enum { MEM_WT, MEM_BIAS, MEM_RT, MEM_AUX }; /* op->mem: packed weights and per-unit vectors */

#define PROJECT_TILE 16 /* rnn.cl's TS */
#define PROJECT_ROWS 8  /* rnn.cl's PR: rows per work-item of rnn_project_cpu */
#define LANES 16        /* units per float16 vector of the *_cpu kernels */

/* Gates per direction: LSTM i, o, f, c; GRU z, r, h. */
static int64_t gates_of(const nn_rnn_params *p)
{
    return p->gru ? 3 : 4;
}

/* Activations per direction: LSTM f, g, h; GRU f, g. */
static uint32_t activations_of(const nn_rnn_params *p)
{
    return p->gru ? 2 : 3;
}

/* ---- parse ---- */

static cleval_status parse_direction(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    nn_rnn_params *p = &op->p.rnn;
    const char *direction;
    cleval_status status = nn_attr_string(nn, node, "direction", "forward", &direction);
    if (status != CLEVAL_OK) return status;
    p->dirs = 1;
    if (strcmp(direction, "bidirectional") == 0)
        p->dirs = 2;
    else if (strcmp(direction, "reverse") == 0)
        p->reverse = true;
    else if (strcmp(direction, "forward") != 0)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "attribute direction=%s is not forward, reverse or bidirectional",
                          direction);
    return CLEVAL_OK;
}

/* activations: a list of activations_of() names per direction (ONNX's defaults: Sigmoid, Tanh,
 * Tanh). Functions that take activation_alpha / activation_beta are refused. */
static cleval_status parse_activations(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    static const char *const names[] = {"Sigmoid", "Tanh", "Relu"};
    nn_rnn_params *p = &op->p.rnn;
    uint32_t per = activations_of(p);
    for (uint32_t d = 0; d < 2; d++) {
        p->act[d][0] = ACT_SIGMOID;
        p->act[d][1] = p->act[d][2] = ACT_TANH;
    }
    const cleval_onnx_attr *a = cleval_onnx_node_attr(node, "activations");
    if (!a) return CLEVAL_OK;
    if (a->type != CLEVAL_ONNX_ATTR_STRINGS)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "attribute activations has type %s, not STRINGS",
                          cleval_onnx_attr_type_name(a->type));
    if (a->count != per * p->dirs)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "attribute activations lists %u functions; %u directions need %u",
                          a->count, p->dirs, per * p->dirs);
    for (uint32_t i = 0; i < a->count; i++) {
        uint32_t code = 0;
        while (code < 3 && strcasecmp(a->strings[i], names[code]) != 0)
            code++;
        if (code == 3)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "attribute activations: %s is not supported (Sigmoid, Tanh and Relu "
                              "are)",
                              a->strings[i]);
        p->act[i / per][i % per] = (uint8_t)code;
    }
    return CLEVAL_OK;
}

/* A constant float input of the expected shape ([dirs, rows, cols], or [dirs, rows] when cols
 * is 0); `what` names it. */
static cleval_status check_weight(cleval_nn *nn, nn_op *op, uint32_t i, const char *what,
                                  int64_t rows, int64_t cols)
{
    cleval_status status = nn_require_const(nn, op, i, what);
    if (status != CLEVAL_OK) return status;
    const nn_value *v = nn_in(nn, op, i);
    const nn_rnn_params *p = &op->p.rnn;
    nn_shape want = {cols ? 3u : 2u, {(int64_t)p->dirs, rows, cols}};
    bool ok = v->f32 && v->shape.rank == want.rank;
    for (uint32_t d = 0; ok && d < want.rank; d++)
        ok = v->shape.d[d] == want.d[d];
    if (!ok) {
        char got[160], expected[160];
        nn_shape_format(&v->shape, got, sizeof got);
        nn_shape_format(&want, expected, sizeof expected);
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%s '%s' has shape %s%s; expected float %s",
                          what, v->name, got, v->f32 ? "" : " (not float)", expected);
    }
    return CLEVAL_OK;
}

/* hidden_size (or R's last axis), then the weights' shapes. */
static cleval_status parse_weights(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    nn_rnn_params *p = &op->p.rnn;
    cleval_status status;
    if (!nn_has_in(op, IN_X) || !nn_has_in(op, IN_W) || !nn_has_in(op, IN_R))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "inputs X, W and R are required");
    if ((status = nn_require_const(nn, op, IN_W, "W")) != CLEVAL_OK ||
        (status = nn_require_const(nn, op, IN_R, "R")) != CLEVAL_OK ||
        (status = nn_attr_int(nn, node, "hidden_size", 0, &p->hidden)) != CLEVAL_OK)
        return status;
    const nn_value *w = nn_in(nn, op, IN_W), *r = nn_in(nn, op, IN_R);
    if (!cleval_onnx_node_attr(node, "hidden_size") && r->shape.rank == 3)
        p->hidden = r->shape.d[2];
    if (p->hidden < 1 || p->hidden > 65536)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "attribute hidden_size=%lld is outside 1..65536", (long long)p->hidden);
    p->input = w->shape.rank == 3 ? w->shape.d[2] : 0;
    int64_t rows = gates_of(p) * p->hidden;
    if ((status = check_weight(nn, op, IN_W, "W", rows, p->input)) != CLEVAL_OK ||
        (status = check_weight(nn, op, IN_R, "R", rows, p->hidden)) != CLEVAL_OK)
        return status;
    if (p->input < 1)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED, "an input size of 0 is not supported");
    if (nn_has_in(op, IN_B) && (status = check_weight(nn, op, IN_B, "B", 2 * rows, 0)) != CLEVAL_OK)
        return status;
    if (!p->gru && nn_has_in(op, IN_P) &&
        (status = check_weight(nn, op, IN_P, "P", 3 * p->hidden, 0)) != CLEVAL_OK)
        return status;
    if (nn_has_in(op, IN_LENS)) return nn_require_const(nn, op, IN_LENS, "sequence_lens");
    return CLEVAL_OK;
}

static cleval_status rnn_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node, bool gru)
{
    static const char *const lstm_known[] = {"activations",  "clip",   "direction", "hidden_size",
                                             "input_forget", "layout", NULL};
    static const char *const gru_known[] = {
        "activations", "clip", "direction", "hidden_size", "layout", "linear_before_reset", NULL};
    nn_rnn_params *p = &op->p.rnn;
    p->gru = gru;
    uint32_t max_in = gru ? 6 : 8, max_out = gru ? 2 : 3;
    cleval_status status;
    if ((status = nn_check_attrs(nn, op, node, gru ? gru_known : lstm_known)) != CLEVAL_OK ||
        (status = parse_direction(nn, op, node)) != CLEVAL_OK ||
        (status = parse_activations(nn, op, node)) != CLEVAL_OK ||
        (status = nn_attr_float(nn, node, "clip", 0.0f, &p->clip)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "layout", false, &p->batch_major)) != CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "input_forget", false, &p->input_forget)) !=
            CLEVAL_OK ||
        (status = nn_attr_bool(nn, op, node, "linear_before_reset", false,
                               &p->linear_before_reset)) != CLEVAL_OK)
        return status;
    if (cleval_onnx_node_attr(node, "clip") && !(p->clip > 0.0f))
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "attribute clip=%g is not positive",
                          (double)p->clip);
    if (op->n_in > max_in || op->n_out > max_out)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "has %u inputs and %u outputs; at most %u and %u", op->n_in, op->n_out,
                          max_in, max_out);
    op->all_outputs = true;
    return parse_weights(nn, op, node);
}

static cleval_status lstm_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return rnn_parse(nn, op, node, false);
}

static cleval_status gru_parse(cleval_nn *nn, nn_op *op, const cleval_onnx_node *node)
{
    return rnn_parse(nn, op, node, true);
}

/* ---- infer ---- */

/* The shape of the states (initial_h, initial_c, Y_h, Y_c) for the current batch. */
static nn_shape state_shape(const nn_rnn_params *p)
{
    if (p->batch_major) return (nn_shape){3, {p->batch, p->dirs, p->hidden}};
    return (nn_shape){3, {p->dirs, p->batch, p->hidden}};
}

static bool same_shape(const nn_shape *a, const nn_shape *b)
{
    if (a->rank != b->rank) return false;
    for (uint32_t i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

static cleval_status check_initial_state(cleval_nn *nn, nn_op *op, uint32_t i, const char *what)
{
    if (!nn_has_in(op, i)) return CLEVAL_OK;
    const nn_value *v = nn_in(nn, op, i);
    nn_shape want = state_shape(&op->p.rnn);
    if (same_shape(&v->shape, &want)) return CLEVAL_OK;
    char got[160], expected[160];
    nn_shape_format(&v->shape, got, sizeof got);
    nn_shape_format(&want, expected, sizeof expected);
    return nn_fail_op(nn, op, CLEVAL_ERR_INPUT, "%s '%s' has shape %s; expected %s", what, v->name,
                      got, expected);
}

/* sequence_lens: supported only when it changes nothing (every length is the sequence's). */
static cleval_status check_lengths(cleval_nn *nn, nn_op *op)
{
    if (!nn_has_in(op, IN_LENS)) return CLEVAL_OK;
    const nn_rnn_params *p = &op->p.rnn;
    const nn_value *v = nn_in(nn, op, IN_LENS);
    if (v->count != (uint64_t)p->batch)
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "sequence_lens '%s' has %llu values for a batch of %lld", v->name,
                          (unsigned long long)v->count, (long long)p->batch);
    for (uint64_t i = 0; i < v->count; i++) {
        double len = v->i64 ? (double)v->i64[i] : (double)v->f32[i];
        if (len != (double)p->seq)
            return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                              "input sequence_lens: length %g of batch row %llu differs from the "
                              "sequence length %lld; only full-length sequences are supported",
                              len, (unsigned long long)i, (long long)p->seq);
    }
    return CLEVAL_OK;
}

/* The CPU-style recurrence's panel: the units whose products a step accumulates together, one
 * float16 per row and vector (rnn.cl's PW). Two vectors where the device has 512-bit ones (its
 * 8 rows x 2 accumulators fit 32 registers), one below. A property of the device, so that the
 * workspace (infer), the packed weights and the kernels (prepare) agree. */
static int64_t panel_units(const cleval_nn *nn)
{
    return cleval_device_get_info(nn->dev)->preferred_float_width >= 16 ? 2 * LANES : LANES;
}

/* Units per gate in the device layout: the CPU-style kernels pad them to whole panels. */
static int64_t units_of(const cleval_nn *nn, const nn_rnn_params *p)
{
    int64_t panel = panel_units(nn);
    return nn->variant == CLEVAL_VARIANT_CPU ? (p->hidden + panel - 1) / panel * panel : p->hidden;
}

/* rnn_project_cpu's float16 column vectors per work-item (PV): two where the columns come in
 * pairs of vectors, as gemm_cpu's tile of 8 x 32. */
static int project_vectors(const cleval_nn *nn, const nn_rnn_params *p)
{
    return p->dirs * gates_of(p) * units_of(nn, p) % (2 * LANES) == 0 ? 2 : 1;
}

/* Floats of the workspace: the projection G, then the per-(direction, row) state. */
static void workspace_floats(const cleval_nn *nn, const nn_rnn_params *p, int64_t *g,
                             int64_t *state)
{
    *g = p->seq * p->batch * p->dirs * gates_of(p) * units_of(nn, p);
    *state = p->dirs * p->batch * 4 * units_of(nn, p);
}

static cleval_status rnn_infer(cleval_nn *nn, nn_op *op)
{
    nn_rnn_params *p = &op->p.rnn;
    const nn_value *x = nn_in(nn, op, IN_X);
    if (x->shape.rank != 3 || x->shape.d[2] != p->input) {
        char got[160];
        nn_shape_format(&x->shape, got, sizeof got);
        return nn_fail_op(nn, op, CLEVAL_ERR_INPUT,
                          "X has shape %s; expected rank 3 with %lld inputs (W's last axis)", got,
                          (long long)p->input);
    }
    p->seq = x->shape.d[p->batch_major ? 1 : 0];
    p->batch = x->shape.d[p->batch_major ? 0 : 1];
    cleval_status status;
    if ((status = check_initial_state(nn, op, IN_H0, "initial_h")) != CLEVAL_OK ||
        (!p->gru && (status = check_initial_state(nn, op, IN_C0, "initial_c")) != CLEVAL_OK) ||
        (status = check_lengths(nn, op)) != CLEVAL_OK)
        return status;
    int64_t g, state;
    workspace_floats(nn, p, &g, &state);
    if (g + state > NN_MAX_ELEMENTS)
        return nn_fail_op(nn, op, CLEVAL_ERR_UNSUPPORTED,
                          "needs a work buffer of more than %lld elements",
                          (long long)NN_MAX_ELEMENTS);
    op->workspace = (size_t)(g + state) * sizeof(float);
    /* Any output may be omitted (""), Y included. */
    nn_shape y = p->batch_major ? (nn_shape){4, {p->batch, p->seq, p->dirs, p->hidden}}
                                : (nn_shape){4, {p->seq, p->dirs, p->batch, p->hidden}};
    for (uint32_t o = OUT_Y; o < op->n_out; o++)
        if (op->out[o] >= 0) nn_out(nn, op, o)->shape = o == OUT_Y ? y : state_shape(p);
    /* Samples stay apart when the batch is the layout's batch axis of X and of the initial
     * states (axis 1 sequence-major, axis 0 batch-major): the recurrence runs along time. */
    int batch_axis = p->batch_major ? 0 : 1;
    const uint32_t batched[] = {IN_X, IN_H0, IN_C0};
    for (uint32_t i = 0; i < sizeof batched / sizeof batched[0]; i++) {
        int axis = nn_has_in(op, batched[i]) ? nn_batch_axis(nn_in(nn, op, batched[i])) : -1;
        if (axis >= 0 && axis != batch_axis) op->mixes_batch = true;
    }
    op->flops = 2.0 * (double)(p->seq * p->batch * p->dirs * gates_of(p) * p->hidden) *
                (double)(p->input + p->hidden);
    return CLEVAL_OK;
}

/* ---- prepare: packed weights and kernels ---- */

/* Wt [input][dirs * gates * hidden] = W transposed; Rt [dirs][hidden][gates * hidden]. */
static float *transpose_rows(const float *w, int64_t blocks, int64_t rows, int64_t cols)
{
    float *t = malloc((size_t)(blocks * rows * cols + 1) * sizeof *t);
    if (!t) return NULL;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                t[(b * cols + c) * rows + r] = w[(b * rows + r) * cols + c];
    return t;
}

/* The projection's bias (Wb + Rb, except the GRU h gate's Rb when linear_before_reset puts it
 * inside the reset) and the per-unit vector of the recurrence: LSTM peepholes [dirs][3 hidden]
 * (zeros without P), GRU Rb_h [dirs][hidden] (zeros unless linear_before_reset). */
static cleval_status fold_biases(cleval_nn *nn, const nn_op *op, float **bias, float **aux,
                                 int64_t *aux_count)
{
    const nn_rnn_params *p = &op->p.rnn;
    int64_t h = p->hidden, rows = gates_of(p) * h;
    const float *b = nn_has_in(op, IN_B) ? nn_in(nn, op, IN_B)->f32 : NULL;
    const float *peep = !p->gru && nn_has_in(op, IN_P) ? nn_in(nn, op, IN_P)->f32 : NULL;
    *aux_count = p->dirs * (p->gru ? h : 3 * h);
    *bias = calloc((size_t)(p->dirs * rows), sizeof **bias);
    *aux = calloc((size_t)*aux_count, sizeof **aux);
    if (!*bias || !*aux) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing weights");
    for (int64_t d = 0; d < p->dirs && b; d++)
        for (int64_t i = 0; i < rows; i++) {
            const float wb = b[d * 2 * rows + i], rb = b[d * 2 * rows + rows + i];
            bool inside_reset = p->gru && p->linear_before_reset && i >= 2 * h;
            (*bias)[d * rows + i] = inside_reset ? wb : wb + rb;
            if (inside_reset) (*aux)[d * h + i - 2 * h] = rb;
        }
    if (peep) memcpy(*aux, peep, (size_t)*aux_count * sizeof **aux);
    return CLEVAL_OK;
}

/* Copies `outer` runs of `hidden` floats into runs of `units` floats, the rest zeros (the
 * CPU-style layout), and frees v. NULL when out of memory (or v is NULL). */
static float *pad_units(float *v, int64_t outer, int64_t hidden, int64_t units)
{
    if (!v || units == hidden) return v;
    float *out = calloc((size_t)(outer * units + 1), sizeof *out);
    for (int64_t o = 0; out && o < outer; o++)
        memcpy(out + o * units, v + o * hidden, (size_t)hidden * sizeof *out);
    free(v);
    return out;
}

/* Rp for the CPU-style kernels: the recurrent weights of each (direction, gate) block in panels
 * of `panel` units, each panel [hidden][panel] (unit j's weights on h_k at k * panel + j %
 * panel), units past hidden zero. r: ONNX's R, [blocks][hidden][hidden] with blocks = dirs *
 * gates. */
static float *panel_rows(const float *r, int64_t blocks, int64_t hidden, int64_t units,
                         int64_t panel)
{
    float *out = calloc((size_t)(blocks * units * hidden + 1), sizeof *out);
    for (int64_t b = 0; out && b < blocks; b++)
        for (int64_t j = 0; j < hidden; j++)
            for (int64_t k = 0; k < hidden; k++)
                out[((b * units + j - j % panel) * hidden + k * panel) + j % panel] =
                    r[(b * hidden + j) * hidden + k];
    return out;
}

static cleval_status upload_weights(cleval_nn *nn, nn_op *op)
{
    const nn_rnn_params *p = &op->p.rnn;
    int64_t h = p->hidden, units = units_of(nn, p), blocks = p->dirs * gates_of(p);
    int64_t aux_count = 0;
    const float *r = nn_in(nn, op, IN_R)->f32;
    float *wt = transpose_rows(nn_in(nn, op, IN_W)->f32, 1, blocks * h, p->input);
    float *rt = nn->variant == CLEVAL_VARIANT_CPU
                    ? panel_rows(r, blocks, h, units, panel_units(nn))
                    : transpose_rows(r, p->dirs, blocks / p->dirs * h, h);
    float *bias = NULL, *aux = NULL;
    cleval_status status = !wt || !rt
                               ? cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing weights")
                               : fold_biases(nn, op, &bias, &aux, &aux_count);
    if (status == CLEVAL_OK) {
        wt = pad_units(wt, p->input * blocks, h, units);
        bias = pad_units(bias, blocks, h, units);
        aux = pad_units(aux, aux_count / h, h, units);
        aux_count = aux_count / h * units;
        if (!wt || !bias || !aux)
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory packing weights");
    }
    if (status == CLEVAL_OK)
        status = nn_upload(nn, wt, (size_t)(blocks * units * p->input) * sizeof *wt, "W",
                           &op->mem[MEM_WT]);
    if (status == CLEVAL_OK)
        status =
            nn_upload(nn, rt, (size_t)(blocks * units * h) * sizeof *rt, "R", &op->mem[MEM_RT]);
    if (status == CLEVAL_OK)
        status =
            nn_upload(nn, bias, (size_t)(blocks * units) * sizeof *bias, "B", &op->mem[MEM_BIAS]);
    if (status == CLEVAL_OK)
        status = nn_upload(nn, aux, (size_t)aux_count * sizeof *aux, p->gru ? "B" : "P",
                           &op->mem[MEM_AUX]);
    free(wt);
    free(rt);
    free(bias);
    free(aux);
    return status;
}

/* Storage flag of optional value i of `list` (inputs or outputs): 0 when absent. */
static int half_of(const cleval_nn *nn, const int *list, uint32_t n, uint32_t i)
{
    return i < n ? nn_half(nn, list[i]) : 0;
}

/* The recurrence's work-group: enough items for the hidden units (a multiple of 8), at most
 * 256 and what the device allows for this kernel. */
static cleval_status choose_local(cleval_nn *nn, nn_op *op)
{
    nn_rnn_params *p = &op->p.rnn;
    size_t most = 0;
    cl_int err = clGetKernelWorkGroupInfo(op->k[1], cleval_device_id(nn->dev),
                                          CL_KERNEL_WORK_GROUP_SIZE, sizeof most, &most, NULL);
    if (err != CL_SUCCESS)
        return nn_fail_op(nn, op, cleval_cl_status(err, false),
                          "clGetKernelWorkGroupInfo failed: %s (%d)", cleval_cl_error_name(err),
                          (int)err);
    size_t want = (size_t)(p->hidden + 7) / 8 * 8;
    if (want > 256) want = 256;
    if (want > most) want = most;
    p->local = (uint32_t)(want ? want : 1);
    return CLEVAL_OK;
}

static cleval_status rnn_prepare(cleval_nn *nn, nn_op *op)
{
    nn_rnn_params *p = &op->p.rnn;
    cl_mem unused;
    cleval_status status = upload_weights(nn, op);
    for (uint32_t i = IN_H0; i <= IN_C0 && status == CLEVAL_OK; i++)
        if (nn_has_in(op, i) && nn_in(nn, op, i)->kind == NN_VALUE_CONST)
            status = nn_const_mem(nn, op->in[i], &unused);
    if (status != CLEVAL_OK) return status;
    /* Rows per recurrence work-group: the tunable. The kernel is built once, before the batch
     * size is known (a classifier prepares at one sample), and takes any batch: the rows of a
     * block past the batch are computed on copies of a real row and never stored. */
    p->rows = nn->tuning.rnn_rows;
    bool cpu = nn->variant == CLEVAL_VARIANT_CPU;
    char options[400];
    snprintf(options, sizeof options, "-DX_HALF=%d -DPR=%d -DPV=%d", nn_half(nn, op->in[IN_X]),
             PROJECT_ROWS, project_vectors(nn, p));
    if ((status = nn_kernel(nn, op, "rnn", options, cpu ? "rnn_project_cpu" : "rnn_project",
                            &op->k[0])) != CLEVAL_OK)
        return status;
    snprintf(options, sizeof options,
             "-DY_HALF=%d -DH0_HALF=%d -DC0_HALF=%d -DYH_HALF=%d -DYC_HALF=%d -DCLIP=%d "
             "-DINPUT_FORGET=%d -DLBR=%d -DACT_F0=%d -DACT_G0=%d -DACT_H0=%d -DACT_F1=%d "
             "-DACT_G1=%d -DACT_H1=%d -DRB=%u -DPW=%d",
             nn_half(nn, op->out[OUT_Y]), half_of(nn, op->in, op->n_in, IN_H0),
             half_of(nn, op->in, op->n_in, IN_C0), half_of(nn, op->out, op->n_out, OUT_YH),
             half_of(nn, op->out, op->n_out, OUT_YC), p->clip > 0.0f, p->input_forget,
             p->linear_before_reset, p->act[0][0], p->act[0][1], p->act[0][2], p->act[1][0],
             p->act[1][1], p->act[1][2], p->rows, (int)(panel_units(nn) / LANES));
    const char *steps =
        cpu ? (p->gru ? "gru_steps_cpu" : "lstm_steps_cpu") : (p->gru ? "gru_steps" : "lstm_steps");
    if ((status = nn_kernel(nn, op, "rnn", options, steps, &op->k[1])) != CLEVAL_OK) return status;
    if (cpu)
        p->local = 1;
    else if ((status = choose_local(nn, op)) != CLEVAL_OK)
        return status;
    snprintf(op->kernel_desc, sizeof op->kernel_desc, "%s + %s L=%u RB=%u%s",
             cpu ? "rnn_project_cpu" : "rnn_project", steps, p->local, p->rows,
             nn->precision == CLEVAL_NN_FP16 ? " fp16 storage" : "");
    return CLEVAL_OK;
}

/* ---- launch ---- */

static cleval_status launch_projection(cleval_nn *nn, nn_op *op, cl_mem ws)
{
    const nn_rnn_params *p = &op->p.rnn;
    int64_t m = p->seq * p->batch, n = p->dirs * gates_of(p) * units_of(nn, p);
    int64_t xs_t = p->batch_major ? p->input : p->batch * p->input;
    int64_t xs_b = p->batch_major ? p->seq * p->input : p->input;
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[0], NULL);
    cleval_kernel_arg_mem(&a, nn_value_mem(nn, op->in[IN_X]));
    cleval_kernel_arg_int(&a, (int32_t)xs_t);
    cleval_kernel_arg_int(&a, (int32_t)xs_b);
    cleval_kernel_arg_int(&a, (int32_t)p->batch);
    cleval_kernel_arg_mem(&a, op->mem[MEM_WT]);
    cleval_kernel_arg_mem(&a, op->mem[MEM_BIAS]);
    cleval_kernel_arg_mem(&a, ws);
    cleval_kernel_arg_int(&a, (int32_t)m);
    cleval_kernel_arg_int(&a, (int32_t)n);
    cleval_kernel_arg_int(&a, (int32_t)p->input);
    if (nn->variant == CLEVAL_VARIANT_CPU) {
        size_t global[2] = {(size_t)(n / (LANES * project_vectors(nn, p))),
                            (size_t)((m + PROJECT_ROWS - 1) / PROJECT_ROWS)};
        return nn_enqueue(nn, op, &a, 2, global, NULL);
    }
    size_t global[2] = {(size_t)n, (size_t)m}, local[2] = {PROJECT_TILE, PROJECT_TILE};
    return nn_enqueue(nn, op, &a, 2, global, local);
}

/* Optional tensor i of `list`: its buffer (and `present`), or the workspace as a placeholder
 * that the kernel does not touch. */
static cl_mem optional_mem(cleval_nn *nn, const int *list, uint32_t n, uint32_t i, cl_mem ws,
                           int *present)
{
    cl_mem m = i < n && list[i] >= 0 ? nn_value_mem(nn, list[i]) : NULL;
    *present = m != NULL;
    return m ? m : ws;
}

static cleval_status launch_steps(cleval_nn *nn, nn_op *op, cl_mem ws)
{
    const nn_rnn_params *p = &op->p.rnn;
    int64_t g, state;
    workspace_floats(nn, p, &g, &state);
    int64_t h = p->hidden, d = p->dirs;
    int64_t y_t = p->batch_major ? d * h : d * p->batch * h,
            y_d = p->batch_major ? h : p->batch * h;
    int64_t y_b = p->batch_major ? p->seq * d * h : h;
    int64_t s_d = p->batch_major ? h : p->batch * h, s_b = p->batch_major ? d * h : h;
    int has_h0, has_c0, has_y, has_yh, has_yc;
    cl_mem h0 = optional_mem(nn, op->in, op->n_in, IN_H0, ws, &has_h0);
    cl_mem c0 = optional_mem(nn, op->in, p->gru ? 0 : op->n_in, IN_C0, ws, &has_c0);
    cl_mem y = optional_mem(nn, op->out, op->n_out, OUT_Y, ws, &has_y);
    cl_mem yh = optional_mem(nn, op->out, op->n_out, OUT_YH, ws, &has_yh);
    cl_mem yc = optional_mem(nn, op->out, p->gru ? 0 : op->n_out, OUT_YC, ws, &has_yc);
    cleval_kernel_args a = cleval_kernel_args_begin(op->k[1], NULL);
    cleval_kernel_arg_mem(&a, op->mem[MEM_RT]);
    cleval_kernel_arg_mem(&a, op->mem[MEM_AUX]);
    cleval_kernel_arg_mem(&a, h0);
    cleval_kernel_arg_int(&a, has_h0);
    cleval_kernel_arg_mem(&a, c0);
    cleval_kernel_arg_int(&a, has_c0);
    cleval_kernel_arg_mem(&a, ws);
    cleval_kernel_arg_int(&a, (int32_t)g);
    cleval_kernel_arg_mem(&a, y);
    cleval_kernel_arg_int(&a, has_y);
    cleval_kernel_arg_mem(&a, yh);
    cleval_kernel_arg_int(&a, has_yh);
    cleval_kernel_arg_mem(&a, yc);
    cleval_kernel_arg_int(&a, has_yc);
    cleval_kernel_arg_int(&a, (int32_t)p->seq);
    cleval_kernel_arg_int(&a, (int32_t)p->batch);
    cleval_kernel_arg_int(&a, (int32_t)h);
    cleval_kernel_arg_int(&a, p->reverse);
    cleval_kernel_arg_int(&a, (int32_t)y_t);
    cleval_kernel_arg_int(&a, (int32_t)y_d);
    cleval_kernel_arg_int(&a, (int32_t)y_b);
    cleval_kernel_arg_int(&a, (int32_t)s_d);
    cleval_kernel_arg_int(&a, (int32_t)s_b);
    cleval_kernel_arg_float(&a, p->clip);
    int64_t blocks = (p->batch + p->rows - 1) / p->rows;
    size_t local = p->local, global = (size_t)(d * blocks) * local;
    return nn_enqueue(nn, op, &a, 1, &global, &local);
}

static cleval_status rnn_launch(cleval_nn *nn, nn_op *op)
{
    cl_mem ws = nn_workspace_mem(nn, op);
    if (!ws) return CLEVAL_OK; /* an empty batch */
    cleval_status status = launch_projection(nn, op, ws);
    return status == CLEVAL_OK ? launch_steps(nn, op, ws) : status;
}

const nn_op_kind nn_kind_lstm = {"LSTM", lstm_parse, rnn_infer, rnn_prepare, rnn_launch};
const nn_op_kind nn_kind_gru = {"GRU", gru_parse, rnn_infer, rnn_prepare, rnn_launch};

bool nn_kind_may_omit_output0(const nn_op_kind *kind)
{
    return kind == &nn_kind_lstm || kind == &nn_kind_gru;
}
