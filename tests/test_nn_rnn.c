/* LSTM and GRU against a plain C reference written here from ONNX's equations, for both
 * kernel families: directions forward, reverse and bidirectional; layouts 0 and 1; with and
 * without B, initial states (runtime inputs or constants) and peepholes; clip, input_forget,
 * linear_before_reset 0 and 1, explicit activations; hidden sizes 1, a prime, more than a
 * work-group and several 16-unit panels of the CPU-style kernels; sequences of 1 and several steps;
 * an empty batch; Y, Y_h and Y_c each read alone, Y omitted; fp16 storage around the op; RB batch
 * rows per work-group forced on batches it does not divide, bit-identical to one row per group; a
 * batch-major LSTM classifier through the classifier API. Then the nodes PyTorch exports
 * (tests/fixtures/rnn, made by tools/make_rnn_fixtures.py) against onnxruntime, and the refusals.
 */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "nn_builder.h"
#define NN_TEST_SEED 11 /* the seed of this program's random inputs */
#include "nn_testutil.h"

/* ---- helpers ---- */

/* |got - want| <= atol + rtol * |want| everywhere. */
static void assert_close(const float *got, const double *want, uint64_t n, double atol, double rtol,
                         const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            fail_msg("%s: element %llu is %.9g, expected %.9g", what, (unsigned long long)i,
                     (double)got[i], want[i]);
}

/* A STRINGS attribute; nn_builder.h does not free its strings: free_strings() does. */
static void attr_strings(cleval_onnx_node *n, const char *name, uint32_t count,
                         const char *const *v)
{
    cleval_onnx_attr *a = builder_attr(n, name, CLEVAL_ONNX_ATTR_STRINGS);
    a->count = count;
    a->strings = builder_alloc(count * sizeof *a->strings);
    for (uint32_t i = 0; i < count; i++)
        a->strings[i] = builder_strdup(v[i]);
}

static void free_model(cleval_onnx_model *m)
{
    for (uint32_t i = 0; i < m->n_nodes; i++)
        for (uint32_t j = 0; j < m->nodes[i].n_attrs; j++) {
            cleval_onnx_attr *a = &m->nodes[i].attrs[j];
            for (uint32_t k = 0; a->strings && k < a->count; k++)
                free(a->strings[k]);
            free(a->strings);
            a->strings = NULL;
        }
    builder_free(m);
}

/* Creates a general graph of `m` (precision as given) and runs it once. */
static void run_graph(cleval_onnx_model *m, cleval_kernel_variant variant,
                      cleval_nn_precision precision, const cleval_nn_tensor *inputs,
                      uint32_t n_outputs, cleval_nn_tensor *outputs)
{
    cleval_device_set_variant(test_device(), variant);
    cleval_nn_options options = {.general = true, .precision = precision};
    cleval_nn *nn;
    assert_ok(cleval_nn_create_with(test_device(), m, &options, &nn));
    assert_int_equal(cleval_nn_graph_output_count(nn), n_outputs);
    assert_ok(cleval_nn_run_graph(nn, inputs, outputs));
    cleval_nn_destroy(nn);
    cleval_device_set_variant(test_device(), VARIANTS[0]);
}

/* ---- the reference ---- */

enum { OUT_Y = 1, OUT_YH = 2, OUT_YC = 4 };

typedef struct rnn_case {
    const char *what;
    bool gru;
    const char *direction; /* NULL: the attribute is absent (forward) */
    int64_t hidden, input, seq, batch;
    bool bias, h0, c0, peep;
    bool const_states; /* initial states as initializers instead of runtime inputs */
    bool lens;         /* a constant sequence_lens, every length the sequence's */
    bool no_y;         /* the node's output Y omitted ("") */
    bool layout;       /* layout=1 */
    float clip;        /* 0: no attribute */
    bool input_forget, lbr;
    const char *const *acts; /* NULL: no attribute */
    uint32_t n_acts;
    unsigned outputs; /* OUT_* bits: the graph outputs */
    bool fp16;        /* X through a Relu, the outputs through Mul by 1: stored as half */
} rnn_case;

typedef struct rnn_data {
    float *x, *w, *r, *b, *h0, *c0, *p;
} rnn_data;

static uint32_t dirs_of(const rnn_case *c)
{
    return c->direction && strcmp(c->direction, "bidirectional") == 0 ? 2 : 1;
}

static int64_t gates_of(const rnn_case *c)
{
    return c->gru ? 3 : 4;
}

static double act(const char *name, double v)
{
    if (strcmp(name, "Sigmoid") == 0) return 1.0 / (1.0 + exp(-v));
    if (strcmp(name, "Tanh") == 0) return tanh(v);
    if (strcmp(name, "Relu") == 0) return v > 0 ? v : 0;
    fail_msg("unknown activation %s", name);
    return 0;
}

/* The activation `which` (f, g, h) of direction d. */
static const char *act_name(const rnn_case *c, uint32_t d, uint32_t which)
{
    static const char *const defaults[] = {"Sigmoid", "Tanh", "Tanh"};
    uint32_t per = c->gru ? 2 : 3;
    return c->acts ? c->acts[d * per + which] : defaults[which];
}

static double clip_of(const rnn_case *c, double v)
{
    if (c->clip <= 0) return v;
    return v < -c->clip ? -c->clip : v > c->clip ? c->clip : v;
}

static int64_t x_index(const rnn_case *c, int64_t t, int64_t b, int64_t k)
{
    return c->layout ? (b * c->seq + t) * c->input + k : (t * c->batch + b) * c->input + k;
}

static int64_t y_index(const rnn_case *c, int64_t t, int64_t d, int64_t b, int64_t j)
{
    int64_t dirs = dirs_of(c);
    return c->layout ? ((b * c->seq + t) * dirs + d) * c->hidden + j
                     : ((t * dirs + d) * c->batch + b) * c->hidden + j;
}

static int64_t state_index(const rnn_case *c, int64_t d, int64_t b, int64_t j)
{
    return c->layout ? (b * dirs_of(c) + d) * c->hidden + j : (d * c->batch + b) * c->hidden + j;
}

/* sum_k v[k] * m[row][k] for a row-major matrix m with `cols` columns. */
static double dot_row(const float *m, int64_t row, int64_t cols, const double *v)
{
    double s = 0;
    for (int64_t k = 0; k < cols; k++)
        s += (double)m[row * cols + k] * v[k];
    return s;
}

/* One step of one batch row of direction d: h (and c) updated in place. xt: the step's input. */
static void ref_step(const rnn_case *c, const rnn_data *in, int64_t d, const double *xt, double *h,
                     double *cs)
{
    int64_t H = c->hidden, G = gates_of(c), I = c->input;
    const float *w = in->w + d * G * H * I, *r = in->r + d * G * H * H;
    const float *wb = c->bias ? in->b + d * 2 * G * H : NULL, *rb = wb ? wb + G * H : NULL;
    double *pre = calloc((size_t)(G * H), sizeof *pre), *next = calloc((size_t)H, sizeof *next);
    double *rh = calloc((size_t)H, sizeof *rh);
    for (int64_t i = 0; i < G * H; i++)
        pre[i] = dot_row(w, i, I, xt) + (wb ? wb[i] : 0);
    const char *f = act_name(c, (uint32_t)d, 0), *g = act_name(c, (uint32_t)d, 1);
    if (!c->gru) {
        const float *p = c->peep ? in->p + d * 3 * H : NULL;
        for (int64_t j = 0; j < H; j++) {
            double v[4];
            for (int64_t q = 0; q < 4; q++)
                v[q] = pre[q * H + j] + dot_row(r, q * H + j, H, h) + (rb ? rb[q * H + j] : 0);
            double i = act(f, clip_of(c, v[0] + (p ? p[j] * cs[j] : 0)));
            double fg =
                c->input_forget ? 1 - i : act(f, clip_of(c, v[2] + (p ? p[2 * H + j] * cs[j] : 0)));
            double cn = fg * cs[j] + i * act(g, clip_of(c, v[3]));
            double o = act(f, clip_of(c, v[1] + (p ? p[H + j] * cn : 0)));
            next[j] = o * act(act_name(c, (uint32_t)d, 2), cn);
            cs[j] = cn;
        }
    } else {
        double *z = calloc((size_t)H, sizeof *z);
        for (int64_t j = 0; j < H; j++) {
            z[j] = act(f, clip_of(c, pre[j] + dot_row(r, j, H, h) + (rb ? rb[j] : 0)));
            double reset =
                act(f, clip_of(c, pre[H + j] + dot_row(r, H + j, H, h) + (rb ? rb[H + j] : 0)));
            rh[j] = reset * h[j];
            pre[H + j] = reset; /* kept for linear_before_reset */
        }
        for (int64_t j = 0; j < H; j++) {
            double rbh = rb ? rb[2 * H + j] : 0, hh;
            if (c->lbr)
                hh = pre[2 * H + j] + pre[H + j] * (dot_row(r, 2 * H + j, H, h) + rbh);
            else
                hh = pre[2 * H + j] + dot_row(r, 2 * H + j, H, rh) + rbh;
            next[j] = (1 - z[j]) * act(g, clip_of(c, hh)) + z[j] * h[j];
        }
        free(z);
    }
    memcpy(h, next, (size_t)H * sizeof *h);
    free(pre);
    free(next);
    free(rh);
}

/* Y, Y_h, Y_c as ONNX defines them. */
static void ref_rnn(const rnn_case *c, const rnn_data *in, double *y, double *yh, double *yc)
{
    int64_t H = c->hidden, dirs = dirs_of(c);
    bool reverse = c->direction && strcmp(c->direction, "reverse") == 0;
    double *h = calloc((size_t)H, sizeof *h), *cs = calloc((size_t)H, sizeof *cs);
    double *xt = calloc((size_t)c->input, sizeof *xt);
    for (int64_t d = 0; d < dirs; d++)
        for (int64_t b = 0; b < c->batch; b++) {
            for (int64_t j = 0; j < H; j++) {
                h[j] = c->h0 ? in->h0[state_index(c, d, b, j)] : 0;
                cs[j] = c->c0 ? in->c0[state_index(c, d, b, j)] : 0;
            }
            for (int64_t s = 0; s < c->seq; s++) {
                int64_t t = d == 1 || reverse ? c->seq - 1 - s : s;
                for (int64_t k = 0; k < c->input; k++)
                    xt[k] = in->x[x_index(c, t, b, k)];
                ref_step(c, in, d, xt, h, cs);
                for (int64_t j = 0; j < H; j++)
                    y[y_index(c, t, d, b, j)] = h[j];
            }
            for (int64_t j = 0; j < H; j++) {
                yh[state_index(c, d, b, j)] = h[j];
                yc[state_index(c, d, b, j)] = cs[j];
            }
        }
    free(h);
    free(cs);
    free(xt);
}

/* ---- the op against the reference ---- */

static void state_dims(const rnn_case *c, int64_t *dims)
{
    int64_t d = dirs_of(c);
    dims[0] = c->layout ? c->batch : d;
    dims[1] = c->layout ? d : c->batch;
    dims[2] = c->hidden;
}

/* The graph of a case: X (and runtime initial states) in; the requested outputs out. */
static cleval_onnx_model *build_case(const rnn_case *c, const rnn_data *in)
{
    int64_t H = c->hidden, G = gates_of(c), dirs = dirs_of(c);
    int64_t xd[3] = {c->layout ? c->batch : c->seq, c->layout ? c->seq : c->batch, c->input};
    int64_t wd[3] = {dirs, G * H, c->input}, rd[3] = {dirs, G * H, H}, bd[2] = {dirs, 2 * G * H};
    int64_t pd[2] = {dirs, 3 * H}, sd[3], one = 1;
    state_dims(c, sd);
    cleval_onnx_model *m = builder_new(17);
    builder_input(m, "X", 3, xd);
    builder_init(m, "W", 3, wd, in->w);
    builder_init(m, "R", 3, rd, in->r);
    if (c->bias) builder_init(m, "B", 2, bd, in->b);
    if (c->peep) builder_init(m, "P", 2, pd, in->p);
    const char *states[2] = {"initial_h", "initial_c"};
    const float *values[2] = {in->h0, in->c0};
    bool present[2] = {c->h0, c->c0 && !c->gru};
    for (int i = 0; i < 2; i++) {
        if (!present[i]) continue;
        if (c->const_states)
            builder_init(m, states[i], 3, sd, values[i]);
        else
            builder_input(m, states[i], 3, sd);
    }
    char inputs[128];
    if (c->lens) {
        int64_t *lens = calloc((size_t)c->batch + 1, sizeof *lens);
        for (int64_t b = 0; b < c->batch; b++)
            lens[b] = c->seq;
        builder_init_i64(m, "lens", 1, &c->batch, lens);
        free(lens);
    }
    snprintf(inputs, sizeof inputs, "%s,W,R,%s,%s,%s%s%s%s", c->fp16 ? "Xr" : "X",
             c->bias ? "B" : "", c->lens ? "lens" : "", c->h0 ? "initial_h" : "", c->gru ? "" : ",",
             present[1] ? "initial_c" : "", c->peep ? ",P" : "");
    if (c->fp16) builder_node(m, "Relu", "relu", "X", "Xr");
    const char *names[3] = {"Y", "Y_h", "Y_c"};
    cleval_onnx_node *n = builder_node(m, c->gru ? "GRU" : "LSTM", "rnn", inputs,
                                       c->gru ? (c->no_y ? ",Y_hr" : "Yr,Y_hr")
                                              : (c->no_y ? ",Y_hr,Y_cr" : "Yr,Y_hr,Y_cr"));
    attr_int(n, "hidden_size", H);
    if (c->direction) attr_string(n, "direction", c->direction);
    if (c->layout) attr_int(n, "layout", 1);
    if (c->clip > 0) attr_float(n, "clip", c->clip);
    if (c->input_forget) attr_int(n, "input_forget", 1);
    if (c->gru) attr_int(n, "linear_before_reset", c->lbr);
    if (c->acts) attr_strings(n, "activations", c->n_acts, c->acts);
    if (c->fp16) builder_init(m, "one", 1, &one, (const float[]){1.0f});
    for (int o = 0; o < 3; o++) {
        if (!(c->outputs & (1u << o))) continue;
        char from[8], node[16];
        snprintf(from, sizeof from, "%sr", names[o]);
        snprintf(node, sizeof node, "copy%d", o);
        /* fp16: the op's outputs are activations stored as half, read back by a Mul. */
        char operands[16];
        snprintf(operands, sizeof operands, "%s,one", from);
        if (c->fp16)
            builder_node(m, "Mul", node, operands, names[o]);
        else
            builder_node(m, "Identity", node, from, names[o]);
        builder_output(m, names[o]);
    }
    return m;
}

/* Random inputs and weights for case c (free_data releases them). */
static rnn_data make_data(const rnn_case *c)
{
    int64_t H = c->hidden, G = gates_of(c), dirs = dirs_of(c);
    uint64_t nx = (uint64_t)(c->seq * c->batch * c->input), ns = (uint64_t)(dirs * c->batch * H);
    float r = 0.6f / sqrtf((float)H);
    rnn_data in = {
        random_array(nx, c->fp16 ? 0.0f : -1.0f, 1.0f),
        random_array((uint64_t)(dirs * G * H * c->input), -0.6f, 0.6f),
        random_array((uint64_t)(dirs * G * H * H), -r, r),
        random_array((uint64_t)(dirs * 2 * G * H), -0.5f, 0.5f),
        random_array(ns, -1.0f, 1.0f),
        random_array(ns, -1.0f, 1.0f),
        random_array((uint64_t)(dirs * 3 * H), -0.5f, 0.5f),
    };
    return in;
}

static void free_data(rnn_data *in)
{
    float *arrays[] = {in->x, in->w, in->r, in->b, in->h0, in->c0, in->p};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(arrays[i]);
}

/* Runs case c on both families against the reference. kept: NULL, or where each family's
 * outputs (in OUT_* order) are left instead of freed. */
static void check_case_kept(const rnn_case *c, float *kept[2][3])
{
    int64_t H = c->hidden, dirs = dirs_of(c);
    uint64_t ns = (uint64_t)(dirs * c->batch * H), ny = (uint64_t)c->seq * ns;
    rnn_data in = make_data(c);
    double *want[3] = {calloc(ny + 1, sizeof(double)), calloc(ns + 1, sizeof(double)),
                       calloc(ns + 1, sizeof(double))};
    ref_rnn(c, &in, want[0], want[1], want[2]);
    cleval_onnx_model *m = build_case(c, &in);
    int64_t xd[3] = {c->layout ? c->batch : c->seq, c->layout ? c->seq : c->batch, c->input};
    int64_t sd[3], yd[4] = {c->layout ? c->batch : c->seq, c->layout ? c->seq : dirs,
                            c->layout ? dirs : c->batch, H};
    state_dims(c, sd);
    cleval_nn_tensor inputs[3];
    uint32_t n_in = 0;
    inputs[n_in++] = tensor(3, xd, in.x);
    if (c->h0 && !c->const_states) inputs[n_in++] = tensor(3, sd, in.h0);
    if (c->c0 && !c->gru && !c->const_states) inputs[n_in++] = tensor(3, sd, in.c0);
    uint32_t n_out = 0;
    for (int o = 0; o < 3; o++)
        n_out += (c->outputs >> o) & 1u;
    /* fp16: X is rounded to half before the op, and so are the outputs: a few half ulps. */
    double tol = c->fp16 ? 4e-3 : 2e-5;
    for (size_t v = 0; v < 2; v++) {
        cleval_nn_tensor out[3];
        run_graph(m, VARIANTS[v], c->fp16 ? CLEVAL_NN_FP16 : CLEVAL_NN_FP32, inputs, n_out, out);
        for (int o = 0, k = 0; o < 3; o++) {
            if (!(c->outputs & (1u << o))) continue;
            char what[256];
            snprintf(what, sizeof what, "%s: %s (%s)", c->what,
                     o == 0   ? "Y"
                     : o == 1 ? "Y_h"
                              : "Y_c",
                     cleval_variant_name(VARIANTS[v]));
            if (o == 0)
                assert_shape(&out[k], 4, yd);
            else
                assert_shape(&out[k], 3, sd);
            assert_close(out[k].data, want[o], o == 0 ? ny : ns, tol, tol, what);
            if (kept)
                kept[v][k] = out[k].data;
            else
                free(out[k].data);
            k++;
        }
    }
    free_model(m);
    for (int o = 0; o < 3; o++)
        free(want[o]);
    free_data(&in);
}

static void check_case(const rnn_case *c)
{
    check_case_kept(c, NULL);
}

#define ALL (OUT_Y | OUT_YH | OUT_YC)

static void test_lstm(void **state)
{
    (void)state;
    static const char *const relu_acts[] = {"Sigmoid", "Relu", "Tanh", "Sigmoid", "Tanh", "Relu"};
    const rnn_case cases[] = {
        {"forward, no B, no states", .hidden = 5, .input = 3, .seq = 4, .batch = 2, .outputs = ALL},
        {"forward, B and runtime states, sequence_lens", .hidden = 7, .input = 4, .seq = 5,
         .batch = 3, .bias = true, .h0 = true, .c0 = true, .lens = true, .outputs = ALL},
        {"reverse, constant states", .direction = "reverse", .hidden = 7, .input = 2, .seq = 3,
         .batch = 2, .bias = true, .h0 = true, .c0 = true, .const_states = true, .outputs = ALL},
        {"bidirectional", .direction = "bidirectional", .hidden = 13, .input = 5, .seq = 6,
         .batch = 3, .bias = true, .h0 = true, .c0 = true, .outputs = ALL},
        {"hidden 1, one step", .direction = "forward", .hidden = 1, .input = 1, .seq = 1,
         .batch = 1, .bias = true, .outputs = ALL},
        {"hidden more than a work-group", .direction = "bidirectional", .hidden = 257, .input = 17,
         .seq = 3, .batch = 2, .bias = true, .h0 = true, .outputs = ALL},
        {"layout 1", .direction = "bidirectional", .hidden = 7, .input = 3, .seq = 4, .batch = 5,
         .bias = true, .h0 = true, .c0 = true, .layout = true, .outputs = ALL},
        {"peepholes, clip, input_forget", .hidden = 7, .input = 3, .seq = 5, .batch = 2,
         .bias = true, .c0 = true, .peep = true, .clip = 0.75f, .input_forget = true,
         .outputs = ALL},
        {"activations", .direction = "bidirectional", .hidden = 5, .input = 3, .seq = 3, .batch = 2,
         .bias = true, .acts = relu_acts, .n_acts = 6, .outputs = ALL},
        {"Y_h read alone", .hidden = 7, .input = 3, .seq = 4, .batch = 3, .bias = true,
         .outputs = OUT_YH},
        {"Y_c read alone, Y omitted", .direction = "reverse", .hidden = 3, .input = 3, .seq = 4,
         .batch = 3, .no_y = true, .outputs = OUT_YC},
        {"empty batch", .hidden = 3, .input = 2, .seq = 2, .batch = 0, .bias = true,
         .outputs = ALL},
        {"fp16 storage", .direction = "bidirectional", .hidden = 11, .input = 4, .seq = 5,
         .batch = 3, .bias = true, .h0 = true, .c0 = true, .outputs = ALL, .fp16 = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static void test_gru(void **state)
{
    (void)state;
    static const char *const relu_acts[] = {"Sigmoid", "Relu"};
    const rnn_case cases[] = {
        {"linear_before_reset 1, no B, no state", .gru = true, .lbr = true, .hidden = 5, .input = 3,
         .seq = 4, .batch = 2, .outputs = OUT_Y | OUT_YH},
        {"linear_before_reset 0, B and state", .gru = true, .hidden = 7, .input = 4, .seq = 5,
         .batch = 3, .bias = true, .h0 = true, .outputs = OUT_Y | OUT_YH},
        {"reverse, constant state", .gru = true, .lbr = true, .direction = "reverse", .hidden = 7,
         .input = 2, .seq = 3, .batch = 2, .bias = true, .h0 = true, .const_states = true,
         .outputs = OUT_Y | OUT_YH},
        {"bidirectional, linear_before_reset 1", .gru = true, .lbr = true,
         .direction = "bidirectional", .hidden = 13, .input = 5, .seq = 6, .batch = 3, .bias = true,
         .h0 = true, .outputs = OUT_Y | OUT_YH},
        {"bidirectional, linear_before_reset 0", .gru = true, .direction = "bidirectional",
         .hidden = 13, .input = 5, .seq = 6, .batch = 3, .bias = true, .h0 = true,
         .outputs = OUT_Y | OUT_YH},
        {"hidden 1, one step", .gru = true, .lbr = true, .hidden = 1, .input = 1, .seq = 1,
         .batch = 1, .bias = true, .outputs = OUT_Y | OUT_YH},
        {"hidden more than a work-group, linear_before_reset 0", .gru = true, .hidden = 257,
         .input = 17, .seq = 3, .batch = 2, .bias = true, .h0 = true, .outputs = OUT_Y | OUT_YH},
        {"hidden more than a work-group, linear_before_reset 1", .gru = true, .lbr = true,
         .direction = "reverse", .hidden = 257, .input = 9, .seq = 2, .batch = 2, .bias = true,
         .outputs = OUT_Y | OUT_YH},
        {"layout 1, clip", .gru = true, .lbr = true, .direction = "bidirectional", .hidden = 7,
         .input = 3, .seq = 4, .batch = 5, .bias = true, .h0 = true, .layout = true, .clip = 0.5f,
         .outputs = OUT_Y | OUT_YH},
        {"activations", .gru = true, .hidden = 5, .input = 3, .seq = 3, .batch = 2, .bias = true,
         .acts = relu_acts, .n_acts = 2, .outputs = OUT_Y | OUT_YH},
        {"Y_h read alone", .gru = true, .lbr = true, .hidden = 7, .input = 3, .seq = 4, .batch = 3,
         .bias = true, .outputs = OUT_YH},
        {"Y omitted", .gru = true, .hidden = 6, .input = 3, .seq = 4, .batch = 2, .bias = true,
         .no_y = true, .outputs = OUT_YH},
        {"fp16 storage", .gru = true, .lbr = true, .direction = "bidirectional", .hidden = 11,
         .input = 4, .seq = 5, .batch = 3, .bias = true, .h0 = true, .outputs = OUT_Y | OUT_YH,
         .fp16 = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* The recurrence with RB batch rows per work-group (the tunable rnn_rows, forced through
 * CLEVAL_NN_TUNING on both families) on batches that RB does not divide: 1, primes, RB + 1.
 * Each run against the reference, and every output bit-identical to the RB = 1 run's: a row's
 * sums are added in the same order whatever RB. */
static void check_row_blocks(const rnn_case *c)
{
    static const char *const tunings[] = {"rnn_rows=1", "rnn_rows=4", "rnn_rows=8"};
    uint64_t ns = (uint64_t)(dirs_of(c) * c->batch * c->hidden), ny = (uint64_t)c->seq * ns;
    float *first[2][3] = {{NULL}}, *kept[2][3] = {{NULL}};
    const uint64_t seed = rng_state; /* every run on the same inputs */
    for (size_t i = 0; i < sizeof tunings / sizeof tunings[0]; i++) {
        rng_state = seed;
        assert_int_equal(setenv("CLEVAL_NN_TUNING", tunings[i], 1), 0);
        check_case_kept(c, i == 0 ? first : kept);
        for (int v = 0; v < 2; v++)
            for (int o = 0, k = 0; o < 3; o++) {
                if (!(c->outputs & (1u << o))) continue;
                if (i > 0) {
                    if (memcmp(kept[v][k], first[v][k], (o == 0 ? ny : ns) * sizeof(float)) != 0)
                        fail_msg("%s: output %d (%s) with %s differs from rnn_rows=1", c->what, o,
                                 cleval_variant_name(VARIANTS[v]), tunings[i]);
                    free(kept[v][k]);
                }
                k++;
            }
    }
    assert_int_equal(unsetenv("CLEVAL_NN_TUNING"), 0);
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < 3; k++)
            free(first[v][k]);
}

static void test_row_blocks(void **state)
{
    (void)state;
    const rnn_case cases[] = {
        {"LSTM rows: batch 1", .direction = "bidirectional", .hidden = 7, .input = 3, .seq = 4,
         .batch = 1, .bias = true, .h0 = true, .c0 = true, .peep = true, .outputs = ALL},
        {"LSTM rows: batch 5", .hidden = 11, .input = 3, .seq = 3, .batch = 5, .bias = true,
         .h0 = true, .c0 = true, .peep = true, .clip = 0.8f, .outputs = ALL},
        {"LSTM rows: batch 13, layout 1", .direction = "bidirectional", .hidden = 7, .input = 4,
         .seq = 3, .batch = 13, .bias = true, .h0 = true, .c0 = true, .layout = true,
         .outputs = ALL},
        {"GRU rows: batch 9, linear_before_reset 1", .gru = true, .lbr = true,
         .direction = "bidirectional", .hidden = 13, .input = 5, .seq = 4, .batch = 9, .bias = true,
         .h0 = true, .outputs = OUT_Y | OUT_YH},
        {"GRU rows: batch 7, linear_before_reset 0", .gru = true, .direction = "reverse",
         .hidden = 13, .input = 5, .seq = 4, .batch = 7, .bias = true, .h0 = true,
         .outputs = OUT_Y | OUT_YH},
        {"GRU rows: batch 5, hidden more than a work-group", .gru = true, .hidden = 257, .input = 9,
         .seq = 2, .batch = 5, .bias = true, .h0 = true, .outputs = OUT_Y | OUT_YH},
        /* Several 16-unit panels of the CPU-style kernels, the last one partly padding. */
        {"LSTM rows: hidden 40, batch 9", .direction = "bidirectional", .hidden = 40, .input = 6,
         .seq = 3, .batch = 9, .bias = true, .h0 = true, .c0 = true, .peep = true, .outputs = ALL},
        {"GRU rows: hidden 33, batch 3, linear_before_reset 0", .gru = true,
         .direction = "bidirectional", .hidden = 33, .input = 5, .seq = 3, .batch = 3, .bias = true,
         .h0 = true, .outputs = OUT_Y | OUT_YH},
        {"GRU rows: hidden 32, batch 2, linear_before_reset 1", .gru = true, .lbr = true,
         .hidden = 32, .input = 16, .seq = 3, .batch = 2, .bias = true, .outputs = OUT_Y | OUT_YH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_row_blocks(&cases[i]);
}

/* A batch-major (layout=1) bidirectional LSTM classifier, Y_h -> Flatten -> Gemm, through the
 * classifier API: the batch stays on axis 0 of X, Y and Y_h, so samples stay apart. */
static void test_batch_major_classifier(void **state)
{
    (void)state;
    enum { T = 4, F = 3, H = 5, C = 3, N = 7 };
    rnn_case c = {"classifier", .direction = "bidirectional",
                  .hidden = H,  .input = F,
                  .seq = T,     .batch = N,
                  .bias = true, .layout = true};
    rnn_data in = make_data(&c);
    float *w2 = random_array(2 * H * C, -1.0f, 1.0f), *b2 = random_array(C, -1.0f, 1.0f);
    double y[N * T * 2 * H], yh[N * 2 * H], yc[N * 2 * H], want[N * C];
    ref_rnn(&c, &in, y, yh, yc);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            want[n * C + k] = b2[k];
            for (int i = 0; i < 2 * H; i++)
                want[n * C + k] += yh[n * 2 * H + i] * w2[i * C + k];
        }
    cleval_onnx_model *m = builder_new(17);
    int64_t xd[3] = {-1, T, F}, wd[3] = {2, 4 * H, F}, rd[3] = {2, 4 * H, H}, bd[2] = {2, 8 * H};
    int64_t gd[2] = {2 * H, C}, cd = C;
    builder_input(m, "X", 3, xd);
    builder_init(m, "W", 3, wd, in.w);
    builder_init(m, "R", 3, rd, in.r);
    builder_init(m, "B", 2, bd, in.b);
    builder_init(m, "W2", 2, gd, w2);
    builder_init(m, "B2", 1, &cd, b2);
    cleval_onnx_node *n = builder_node(m, "LSTM", "rnn", "X,W,R,B", "Y,Y_h,Y_c");
    attr_int(n, "hidden_size", H);
    attr_string(n, "direction", "bidirectional");
    attr_int(n, "layout", 1);
    attr_int(builder_node(m, "Flatten", "flat", "Y_h", "f"), "axis", 1);
    builder_node(m, "Gemm", "fc", "f,W2,B2", "scores");
    builder_output(m, "scores");
    for (size_t v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn *nn;
        assert_ok(cleval_nn_create(test_device(), m, &nn));
        assert_int_equal(cleval_nn_input_size(nn), T * F);
        assert_int_equal(cleval_nn_output_width(nn), C);
        float scores[N * C];
        assert_ok(cleval_nn_run(nn, in.x, 3, scores)); /* batches of 3, 3 and 1 */
        assert_ok(cleval_nn_run(nn, in.x + 3 * T * F, 3, scores + 3 * C));
        assert_ok(cleval_nn_run(nn, in.x + 6 * T * F, 1, scores + 6 * C));
        char what[64];
        snprintf(what, sizeof what, "classifier scores (%s)", cleval_variant_name(VARIANTS[v]));
        assert_close(scores, want, N * C, 2e-5, 2e-5, what);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    free_model(m);
    free(w2);
    free(b2);
    free_data(&in);
}

/* ---- refusals ---- */

/* The graph of case c with its recurrent node (node 0) handed to `edit` first. */
static void refuse_case(const rnn_case *c, void (*edit)(cleval_onnx_model *m), cleval_status status,
                        const char *needle1, const char *needle2)
{
    rnn_data in = make_data(c);
    cleval_onnx_model *m = build_case(c, &in);
    if (edit) edit(m);
    expect_refusal(m, true, status, c->gru ? "node 'rnn' (GRU)" : "node 'rnn' (LSTM)", needle1,
                   needle2, NULL);
    free_model(m);
    free_data(&in);
}

static void set_input(cleval_onnx_node *n, uint32_t i, const char *name)
{
    free(n->inputs[i]);
    n->inputs[i] = builder_strdup(name);
}

static void add_alpha(cleval_onnx_model *m)
{
    attr_float(&m->nodes[0], "activation_alpha", 0.5f);
}

static void short_sequence(cleval_onnx_model *m)
{
    const int64_t two = 2, lens[2] = {4, 3};
    builder_init_i64(m, "lens", 1, &two, lens);
    set_input(&m->nodes[0], 4, "lens");
}

static void computed_weights(cleval_onnx_model *m)
{
    set_input(&m->nodes[0], 1, "X"); /* W from a runtime input */
}

static void wrong_hidden_size(cleval_onnx_model *m)
{
    m->nodes[0].attrs[0].i = 6; /* hidden_size, the first attribute */
}

static void negative_clip(cleval_onnx_model *m)
{
    attr_float(&m->nodes[0], "clip", -1.0f);
}

static void layout_two(cleval_onnx_model *m)
{
    attr_int(&m->nodes[0], "layout", 2);
}

static void wrong_input_size(cleval_onnx_model *m)
{
    m->inputs[0].dims[2] = 4;
}

static void wrong_state_batch(cleval_onnx_model *m)
{
    m->inputs[1].dims[1] = 3; /* initial_h [dirs, batch, hidden] */
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const hard[] = {"HardSigmoid", "Tanh", "Tanh"};
    const rnn_case lstm = {"refused",  .hidden = 5,  .input = 3, .seq = 4,
                           .batch = 2, .bias = true, .h0 = true, .outputs = ALL};
    rnn_case c = lstm;
    c.acts = hard;
    c.n_acts = 3;
    refuse_case(&c, NULL, CLEVAL_ERR_UNSUPPORTED, "activations: HardSigmoid is not supported",
                NULL);
    refuse_case(&lstm, add_alpha, CLEVAL_ERR_UNSUPPORTED,
                "attribute activation_alpha is not supported", NULL);
    refuse_case(&lstm, short_sequence, CLEVAL_ERR_UNSUPPORTED, "sequence_lens",
                "only full-length sequences are supported");
    refuse_case(&lstm, computed_weights, CLEVAL_ERR_UNSUPPORTED, "(W) must be a constant", NULL);
    refuse_case(&lstm, wrong_hidden_size, CLEVAL_ERR_INPUT, "W 'W' has shape [1, 20, 3]",
                "expected float [1, 24, 3]");
    refuse_case(&lstm, negative_clip, CLEVAL_ERR_INPUT, "attribute clip=-1 is not positive", NULL);
    refuse_case(&lstm, layout_two, CLEVAL_ERR_INPUT, "attribute layout=2", NULL);
    refuse_case(&lstm, wrong_input_size, CLEVAL_ERR_INPUT, "X has shape [4, 2, 4]", "3 inputs");
    refuse_case(&lstm, wrong_state_batch, CLEVAL_ERR_INPUT, "initial_h 'initial_h' has shape",
                "expected [1, 2, 5]");
    c = lstm;
    c.direction = "sideways";
    refuse_case(&c, NULL, CLEVAL_ERR_INPUT, "attribute direction=sideways", NULL);
    c = lstm;
    c.gru = true;
    refuse_case(&c, add_alpha, CLEVAL_ERR_UNSUPPORTED, "attribute activation_alpha", NULL);
}

/* ---- the nodes PyTorch exports, against onnxruntime ---- */

/* Dataset `name` of group `group` in `file`: its shape into t and its floats (malloc'd). */
static void read_tensor(hid_t file, const char *group, const char *name, cleval_nn_tensor *t)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", group, name);
    hid_t set = H5Dopen2(file, path, H5P_DEFAULT);
    if (set < 0) fail_msg("%s: no dataset %s", fixture_path("rnn/rnn_io.h5"), path);
    hid_t space = H5Dget_space(set);
    hsize_t dims[CLEVAL_NN_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(space);
    assert_true(rank >= 1 && rank <= CLEVAL_NN_MAX_RANK);
    H5Sget_simple_extent_dims(space, dims, NULL);
    t->rank = (uint32_t)rank;
    uint64_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= (uint64_t)(t->dims[i] = (int64_t)dims[i]);
    t->data = malloc((size_t)count * sizeof *t->data);
    assert_non_null(t->data);
    assert_true(H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) >= 0);
    H5Sclose(space);
    H5Dclose(set);
}

/* Runs case `name` (its model and its group of rnn_io.h5) on both families: every output
 * within 1e-5 of onnxruntime's. */
static void check_fixture(hid_t file, const char *name)
{
    char model_path[256];
    snprintf(model_path, sizeof model_path, "rnn/%s.onnx", name);
    cleval_onnx_model *model;
    assert_ok(cleval_onnx_load(fixture_path(model_path), &model));
    for (size_t v = 0; v < 2; v++) {
        cleval_device_set_variant(test_device(), VARIANTS[v]);
        cleval_nn_options options = {.general = true};
        cleval_nn *nn;
        assert_ok(cleval_nn_create_with(test_device(), model, &options, &nn));
        uint32_t n_in = cleval_nn_graph_input_count(nn), n_out = cleval_nn_graph_output_count(nn);
        assert_true(n_in >= 1 && n_in <= 3 && n_out >= 2 && n_out <= 3);
        cleval_nn_tensor inputs[3], outputs[3];
        for (uint32_t i = 0; i < n_in; i++)
            read_tensor(file, name, cleval_nn_graph_input_name(nn, i), &inputs[i]);
        assert_ok(cleval_nn_run_graph(nn, inputs, outputs));
        for (uint32_t o = 0; o < n_out; o++) {
            cleval_nn_tensor want;
            const char *output = cleval_nn_graph_output_name(nn, o);
            read_tensor(file, name, output, &want);
            assert_shape(&outputs[o], want.rank, want.dims);
            uint64_t count = 1;
            for (uint32_t d = 0; d < want.rank; d++)
                count *= (uint64_t)want.dims[d];
            double *expected = malloc((size_t)count * sizeof *expected);
            for (uint64_t e = 0; e < count; e++)
                expected[e] = want.data[e];
            char what[256];
            snprintf(what, sizeof what, "%s: %s vs onnxruntime (%s)", name, output,
                     cleval_variant_name(VARIANTS[v]));
            assert_close(outputs[o].data, expected, count, 1e-5, 1e-5, what);
            free(expected);
            free(want.data);
            free(outputs[o].data);
        }
        for (uint32_t i = 0; i < n_in; i++)
            free(inputs[i].data);
        cleval_nn_destroy(nn);
    }
    cleval_device_set_variant(test_device(), VARIANTS[0]);
    cleval_onnx_free(model);
}

static herr_t visit_case(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    check_fixture(group, name);
    (*(int *)data)++;
    return 0;
}

static void test_pytorch_exports(void **state)
{
    (void)state;
    hid_t file = H5Fopen(fixture_path("rnn/rnn_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    int cases = 0;
    assert_true(H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_case, &cases) >= 0);
    assert_int_equal(cases, 20); /* LSTM and GRU: 4 TorchScript + 1 dynamo exports, 2 layers */
    H5Fclose(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm),
        cmocka_unit_test(test_gru),
        cmocka_unit_test(test_row_blocks),
        cmocka_unit_test(test_batch_major_classifier),
        cmocka_unit_test(test_pytorch_exports),
        cmocka_unit_test(test_refusals),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
