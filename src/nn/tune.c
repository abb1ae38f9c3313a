/* The kernel tuner (cleval/tune.h). One network is built at the default tunables (the
 * reference), then one per candidate, each candidate changing a few tunables of every layer at
 * once: the layers of one network are timed together, one device-time profile per run, so a
 * candidate costs one build and a few runs whatever the layer count. A candidate's scores must
 * match the reference's before any of its times count. Its runs alternate with the
 * reference's, and each layer's time is taken as a ratio to the reference's in the same
 * stretch: a shared machine's speed drifts over a minute of tuning, and a ratio of runs taken
 * side by side does not. Each layer keeps the candidate with the lowest ratio, by a margin, else
 * its defaults. The winners go to the tuning cache, and a last network built from the cache
 * must match the reference too and keep each winner's lead in a second measurement. */
#include "nn_internal.h"

#include "cleval/cache.h"
#include "cleval/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Which layers a candidate's changes can affect. */
enum { CONV = 1, GEMM = 2, RNN = 4 };

static unsigned kind_of(const nn_op *op)
{
    if (op->kind == &nn_kind_conv) return CONV;
    return op->kind == &nn_kind_lstm || op->kind == &nn_kind_gru ? RNN : GEMM;
}

typedef struct candidate {
    const char *changes;
    unsigned applies;
} candidate;

/* CPU-style kernels: the recurrence's batch rows per work-item (a model with LSTM or GRU
 * layers spends its time there), Winograd on and off, register tiles around the usual ones, the
 * work split and the k-block. Ordered by what tends to matter most: the budget may end the list
 * (candidates for layer kinds the model lacks are skipped). */
static const candidate CPU_CANDIDATES[] = {
    {"rnn_rows=4", RNN},
    {"rnn_rows=16", RNN},
    {"winograd=0", CONV},
    {"winograd=1", CONV},
    {"conv_mr=4,conv_nv=1", CONV},
    {"conv_mr=8,conv_nv=1", CONV},
    {"conv_mr=4,conv_nv=2", CONV},
    {"conv_mr=8,conv_nv=2", CONV},
    {"gemm_mr=4,gemm_nv=1", GEMM},
    {"gemm_mr=8,gemm_nv=1", GEMM},
    {"gemm_mr=4,gemm_nv=2", GEMM},
    {"gemm_mr=8,gemm_nv=2", GEMM},
    {"gemm_kc=128", GEMM},
    {"gemm_kc=512", GEMM},
    {"conv_items=4", CONV | GEMM},
    {"conv_items=16", CONV | GEMM},
    {"conv_mr=12,conv_nv=2", CONV},
    {"conv_mr=4,conv_nv=4", CONV},
    {"conv_mr=16,conv_nv=1", CONV},
    {"gemm_mr=16,gemm_nv=1", GEMM},
    {"gemm_qb=32", GEMM},
    {"gemm_qb=128", GEMM},
};

/* GPU-style kernels: the recurrence's batch rows per work-group, conv_gpu's and gemm_gpu's two
 * tile shapes forced (their defaults choose per layer from the output channels), and the K
 * split of gemm_gpu. */
static const candidate GPU_CANDIDATES[] = {
    {"rnn_rows=2", RNN},       {"rnn_rows=4", RNN},       {"gpu_conv_tile=1", CONV},
    {"gpu_conv_tile=2", CONV}, {"gpu_gemm_tile=1", GEMM}, {"gpu_gemm_tile=2", GEMM},
    {"gpu_groups=1", GEMM},    {"gpu_groups=16", GEMM},
};

/* Timed runs per candidate, after one untimed run (first launches generate code), and of the
 * winners' network in the confirmation. */
enum { TIMED_RUNS = 5, CONFIRM_RUNS = 10 };
/* A candidate must beat a layer's default time by this share, and by this many seconds, to
 * win: the machine's noise, and the timer's on layers of a few microseconds, must not turn
 * the cache into a record of it. */
static const double WIN_MARGIN = 0.03;
static const double WIN_SECONDS = 5e-6;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* What one network did: its scores and each layer's best time of the timed runs. */
typedef struct trial {
    float *scores;   /* [n][width] */
    double *seconds; /* [n_ops], each op's */
} trial;

static void trial_free(trial *t)
{
    free(t->scores);
    free(t->seconds);
    t->scores = NULL;
    t->seconds = NULL;
}

typedef struct tuner {
    cleval_device *dev;
    const cleval_onnx_model *model;
    const cleval_tune_options *options;
    void *x;       /* the samples, in the feed type */
    bool int_feed; /* an integer graph input: fed int32 zeros (indices valid for any table) */
    uint32_t n;
    uint32_t width;
    uint32_t n_ops;
} tuner;

static bool tuned_layer(const nn_op *op)
{
    return nn_tuning_applies(op) && !op->host && !op->alias_only;
}

static cleval_status create(const tuner *t, const char *override, cleval_nn **nn)
{
    cleval_nn_options options = {.precision = t->options->precision, .tuning_override = override};
    cleval_status status = cleval_nn_create_with(t->dev, t->model, &options, nn);
    if (status == CLEVAL_OK && t->int_feed)
        status = cleval_nn_set_feed_type(*nn, CLEVAL_ONNX_INT32);
    if (status != CLEVAL_OK) {
        cleval_nn_destroy(*nn);
        *nn = NULL;
    }
    return status;
}

/* Runs the network once untimed (first launches generate code), copying its scores to
 * out->scores, and turns profiling on. */
static cleval_status first_run(const tuner *t, cleval_nn *nn, trial *out)
{
    out->scores = malloc((size_t)t->n * t->width * sizeof *out->scores);
    out->seconds = malloc((t->n_ops + 1) * sizeof *out->seconds);
    if (!out->scores || !out->seconds) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
    if (nn->n_ops != t->n_ops)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "tune: networks of one model differ");
    cleval_status status = cleval_nn_run(nn, t->x, t->n, out->scores);
    if (status == CLEVAL_OK) status = cleval_nn_set_profiling(nn, true);
    return status;
}

/* One profiled run of `nn`: each layer's device time, kept in `best` where it is lower. */
static cleval_status timed_run(const tuner *t, cleval_nn *nn, double *before, double *best)
{
    for (uint32_t i = 0; i < t->n_ops; i++)
        before[i] = nn->ops[i].prof.seconds;
    cleval_status status = cleval_nn_run(nn, t->x, t->n, NULL);
    for (uint32_t i = 0; i < t->n_ops && status == CLEVAL_OK; i++) {
        double s = nn->ops[i].prof.seconds - before[i];
        if (s < best[i]) best[i] = s;
    }
    return status;
}

/* `runs` runs of `a` alternating with runs of `b` (NULL: `a` alone): each layer's best time
 * of each network. */
static cleval_status time_runs(const tuner *t, cleval_nn *a, trial *ta, cleval_nn *b, trial *tb,
                               int runs)
{
    double *before = malloc((t->n_ops + 1) * sizeof *before);
    if (!before) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
    for (uint32_t i = 0; i < t->n_ops; i++) {
        ta->seconds[i] = INFINITY;
        if (b) tb->seconds[i] = INFINITY;
    }
    cleval_status status = CLEVAL_OK;
    for (int r = 0; r < runs && status == CLEVAL_OK; r++) {
        status = timed_run(t, a, before, ta->seconds);
        if (status == CLEVAL_OK && b) status = timed_run(t, b, before, tb->seconds);
    }
    free(before);
    return status;
}

/* The largest difference between a candidate's scores and the reference's, where a score the
 * reference leaves NaN must be NaN too; INFINITY for any other NaN. */
static double max_difference(const float *a, const float *ref, size_t count)
{
    double worst = 0;
    for (size_t i = 0; i < count; i++) {
        if (isnan(ref[i]) || isnan(a[i])) {
            if (isnan(ref[i]) != isnan(a[i])) return INFINITY;
            continue;
        }
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* Other tunables change the order of float sums (k-blocks, Winograd's transforms), never the
 * result beyond rounding: 1e-3 of the largest score (at least of 1) is far above that and far
 * below any indexing or tiling mistake. fp16 storage rounds every activation: 1e-2. */
static double tolerance(const tuner *t, const float *ref)
{
    double largest = 1;
    for (size_t i = 0; i < (size_t)t->n * t->width; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > largest) largest = fabs(ref[i]);
    return (t->options->precision == CLEVAL_NN_FP16 ? 1e-2 : 1e-3) * largest;
}

/* The samples: a fixed pseudo-random sequence in [0, 1) (the tuner needs realistic work, not
 * realistic images), or int32 zeros for an integer input. */
static cleval_status make_samples(tuner *t, const cleval_nn *nn)
{
    uint64_t count = (uint64_t)t->n * cleval_nn_input_size(nn);
    int32_t type = cleval_nn_input_type(nn);
    t->int_feed = type != CLEVAL_ONNX_FLOAT && type != CLEVAL_ONNX_FLOAT16;
    t->x = t->int_feed ? calloc(count ? count : 1, sizeof(int32_t))
                       : malloc((count ? count : 1) * sizeof(float));
    if (!t->x) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
    if (!t->int_feed) {
        uint32_t state = 12345;
        for (uint64_t i = 0; i < count; i++) {
            state = state * 1664525u + 1013904223u;
            ((float *)t->x)[i] = (float)(state >> 8) / 16777216.0f;
        }
    }
    return CLEVAL_OK;
}

static void describe_layer(const cleval_nn *nn, const nn_op *op, cleval_tune_layer *l)
{
    snprintf(l->name, sizeof l->name, "%s", op->name ? op->name : "?");
    snprintf(l->op, sizeof l->op, "%s", op->label);
    char in[48], out[48] = "?";
    nn_shape_format(&nn->values[op->in[0]].shape, in, sizeof in);
    for (uint32_t o = 0; o < op->n_out; o++) /* the first computed (an LSTM may omit Y) */
        if (op->out[o] >= 0) {
            nn_shape_format(&nn->values[op->out[o]].shape, out, sizeof out);
            break;
        }
    snprintf(l->shape, sizeof l->shape, "%s -> %s", in, out);
    snprintf(l->winner, sizeof l->winner, "default");
}

/* Stores each tuned layer's winner (`winners[i]` the changes, NULL: the defaults) under the
 * layer's key. False when the cache took none of them. */
static bool store_winners(const cleval_nn *ref, const char *const *winners)
{
    bool stored = false;
    for (uint32_t i = 0; i < ref->n_ops; i++) {
        const nn_op *op = &ref->ops[i];
        if (!tuned_layer(op) || !op->tuning_key[0]) continue;
        nn_tuning t = op->tuning;
        if (winners[i] && nn_tuning_apply(&t, winners[i], "tuner winner") != CLEVAL_OK) continue;
        char text[512];
        nn_tuning_format(&t, text, sizeof text);
        if (cleval_cache_store("tuning", op->tuning_key, text, strlen(text))) stored = true;
    }
    return stored;
}

/* Times candidate c against the reference network: on success the layers it applies to may
 * take it as their winner (ratio[i]: the lowest time ratio to the reference so far). */
static void try_candidate(tuner *t, const candidate *c, cleval_nn *ref_nn, const trial *ref,
                          double tol, const char **winners, double *ratio,
                          cleval_tune_report *report)
{
    cleval_nn *nn = NULL;
    trial got = {NULL, NULL};
    trial ref_now = {NULL, malloc((t->n_ops + 1) * sizeof(double))};
    cleval_status status = ref_now.seconds ? create(t, c->changes, &nn)
                                           : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
    if (status == CLEVAL_OK) status = first_run(t, nn, &got);
    if (status != CLEVAL_OK) {
        cleval_log(CLEVAL_LOG_WARN, "tune: candidate %s failed and is dropped: %s", c->changes,
                   cleval_last_error());
        report->rejected++;
        goto done;
    }
    /* Test-only hook: stands in for a candidate whose kernels compute wrong values. */
    const char *broken = getenv("CLEVAL_TUNE_TEST_BREAK");
    if (broken && strcmp(broken, c->changes) == 0) got.scores[0] += (float)(1.0 + 4 * tol);
    double diff = max_difference(got.scores, ref->scores, (size_t)t->n * t->width);
    if (!(diff <= tol)) {
        cleval_log(CLEVAL_LOG_WARN,
                   "tune: candidate %s gives wrong scores (differs by %g, more than %g): dropped",
                   c->changes, diff, tol);
        report->rejected++;
        goto done;
    }
    if ((status = time_runs(t, nn, &got, ref_nn, &ref_now, TIMED_RUNS)) != CLEVAL_OK) {
        cleval_log(CLEVAL_LOG_WARN, "tune: candidate %s failed and is dropped: %s", c->changes,
                   cleval_last_error());
        report->rejected++;
        goto done;
    }
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (!tuned_layer(op) || !(ref_now.seconds[i] > 0)) continue;
        unsigned kind = kind_of(op);
        double r = got.seconds[i] / ref_now.seconds[i];
        if (!(c->applies & kind) || !(r < ratio[i])) continue;
        ratio[i] = r;
        winners[i] = c->changes;
    }
    cleval_log(CLEVAL_LOG_INFO, "tune: candidate %s checked and timed", c->changes);
done:
    trial_free(&got);
    trial_free(&ref_now);
    cleval_nn_destroy(nn);
}

/* Whether candidate c changes anything against the defaults (else it is the reference). */
static bool changes_defaults(const cleval_nn *ref, const candidate *c)
{
    nn_tuning changed = ref->base_tuning;
    return nn_tuning_apply(&changed, c->changes, "tuner candidate") == CLEVAL_OK &&
           memcmp(&changed, &ref->base_tuning, sizeof changed) != 0;
}

/* Whether a layer's time ratio to the defaults is a win worth keeping. */
static bool wins(double ratio, double default_seconds)
{
    return ratio < 1 - WIN_MARGIN && default_seconds * (1 - ratio) >= WIN_SECONDS;
}

/* Builds the network from the cache, checks its scores against the reference and times it
 * against the reference once more, in CONFIRM_RUNS alternating runs: a layer whose winner does
 * not keep its lead in this second, independent measurement goes back to its defaults (on a
 * shared machine noise alone picks winners), and ratio[i] becomes the confirmed ratio. Wrong
 * scores send every layer back. The cache is rewritten when any layer went back. */
static cleval_status confirm(tuner *t, cleval_nn *ref_nn, const trial *ref, double tol,
                             const char **winners, double *ratio, bool *stored)
{
    cleval_nn *nn = NULL;
    trial got = {NULL, NULL};
    trial ref_now = {NULL, malloc((t->n_ops + 1) * sizeof(double))};
    cleval_status status = ref_now.seconds ? create(t, NULL, &nn)
                                           : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
    if (status == CLEVAL_OK) status = first_run(t, nn, &got);
    bool changed = false;
    if (status == CLEVAL_OK &&
        !(max_difference(got.scores, ref->scores, (size_t)t->n * t->width) <= tol)) {
        cleval_log(CLEVAL_LOG_WARN, "tune: the winners together give wrong scores; the cache "
                                    "gets the defaults");
        for (uint32_t i = 0; i < t->n_ops; i++)
            winners[i] = NULL;
        changed = true;
    } else if (status == CLEVAL_OK &&
               (status = time_runs(t, nn, &got, ref_nn, &ref_now, CONFIRM_RUNS)) == CLEVAL_OK) {
        for (uint32_t i = 0; i < t->n_ops; i++) {
            if (!winners[i]) continue;
            double r = ref_now.seconds[i] > 0 ? got.seconds[i] / ref_now.seconds[i] : 1;
            if (wins(r, ref->seconds[i])) {
                ratio[i] = r;
                continue;
            }
            cleval_log(CLEVAL_LOG_INFO,
                       "tune: node '%s': %s not confirmed (time ratio %.3f on a second "
                       "measurement); the defaults stay",
                       nn->ops[i].name, winners[i], r);
            winners[i] = NULL;
            changed = true;
        }
    }
    if (changed) *stored = store_winners(ref_nn, winners);
    trial_free(&got);
    trial_free(&ref_now);
    cleval_nn_destroy(nn);
    return status;
}

cleval_status cleval_tune(cleval_device *dev, const cleval_onnx_model *model,
                          const cleval_tune_options *options, cleval_tune_report *out)
{
    memset(out, 0, sizeof *out);
    if (options->precision != CLEVAL_NN_FP32 && options->precision != CLEVAL_NN_FP16)
        return cleval_fail(CLEVAL_ERR_USAGE, "tune: only fp32 and fp16 networks are tuned");
    double start = now_seconds();
    tuner t = {.dev = dev, .model = model, .options = options};
    cleval_nn *ref_nn = NULL;
    trial ref = {NULL, NULL};
    const char **winners = NULL;
    double *ratio = NULL;
    /* The reference: the defaults for every layer, whatever the cache holds. */
    cleval_status status = create(&t, "", &ref_nn);
    if (status != CLEVAL_OK) return status;
    t.n_ops = ref_nn->n_ops;
    t.width = cleval_nn_output_width(ref_nn);
    t.n =
        options->batch < cleval_nn_max_batch(ref_nn) ? options->batch : cleval_nn_max_batch(ref_nn);
    if (t.n == 0) t.n = 1;
    if ((status = make_samples(&t, ref_nn)) != CLEVAL_OK ||
        (status = t.int_feed ? cleval_nn_set_feed_type(ref_nn, CLEVAL_ONNX_INT32) : CLEVAL_OK) !=
            CLEVAL_OK ||
        (status = first_run(&t, ref_nn, &ref)) != CLEVAL_OK ||
        (status = time_runs(&t, ref_nn, &ref, NULL, NULL, TIMED_RUNS)) != CLEVAL_OK)
        goto done;
    winners = calloc(t.n_ops + 1, sizeof *winners);
    ratio = malloc((t.n_ops + 1) * sizeof *ratio);
    out->layers = calloc(t.n_ops + 1, sizeof *out->layers);
    if (!winners || !ratio || !out->layers) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory tuning");
        goto done;
    }
    for (uint32_t i = 0; i < t.n_ops; i++)
        ratio[i] = 1;
    double tol = tolerance(&t, ref.scores);

    uint32_t tuned = 0;
    unsigned present = 0; /* the kinds of tuned layers the model has */
    for (uint32_t i = 0; i < t.n_ops; i++)
        if (tuned_layer(&ref_nn->ops[i])) {
            tuned++;
            present |= kind_of(&ref_nn->ops[i]);
        }
    bool gpu = ref_nn->variant == CLEVAL_VARIANT_GPU;
    const candidate *list = gpu ? GPU_CANDIDATES : CPU_CANDIDATES;
    size_t n_list = gpu ? sizeof GPU_CANDIDATES / sizeof *GPU_CANDIDATES
                        : sizeof CPU_CANDIDATES / sizeof *CPU_CANDIDATES;
    for (size_t c = 0; c < n_list; c++) {
        if (!(list[c].applies & present) || !changes_defaults(ref_nn, &list[c])) continue;
        out->candidates++;
        /* The budget is checked between candidates; the first always runs. */
        if (out->tried > 0 && now_seconds() - start >= options->budget_seconds) continue;
        out->tried++;
        try_candidate(&t, &list[c], ref_nn, &ref, tol, winners, ratio, out);
    }
    for (uint32_t i = 0; i < t.n_ops; i++)
        if (winners[i] && !wins(ratio[i], ref.seconds[i])) winners[i] = NULL;
    out->stored = store_winners(ref_nn, winners);
    if (!out->stored && tuned > 0)
        cleval_log(CLEVAL_LOG_WARN, "tune: the tuning cache is off or not writable; the winners "
                                    "are not kept");
    if (out->stored &&
        (status = confirm(&t, ref_nn, &ref, tol, winners, ratio, &out->stored)) != CLEVAL_OK)
        goto done;
    for (uint32_t i = 0; i < t.n_ops; i++) {
        const nn_op *op = &ref_nn->ops[i];
        if (!tuned_layer(op)) continue;
        cleval_tune_layer *l = &out->layers[out->n_layers++];
        describe_layer(ref_nn, op, l);
        l->default_ms = ref.seconds[i] * 1e3;
        l->best_ms = (winners[i] ? ratio[i] : 1) * l->default_ms;
        if (winners[i]) snprintf(l->winner, sizeof l->winner, "%s", winners[i]);
    }
    out->batch = t.n;
done:
    out->seconds = now_seconds() - start;
    free(winners);
    free(ratio);
    free(t.x);
    trial_free(&ref);
    cleval_nn_destroy(ref_nn);
    if (status != CLEVAL_OK) cleval_tune_report_free(out);
    return status;
}

void cleval_tune_report_free(cleval_tune_report *report)
{
    free(report->layers);
    report->layers = NULL;
    report->n_layers = 0;
}
