/* Tunables of the nn kernels. A network starts from base values: a profile shipped for a device
 * kind it was measured on, else values derived from the device's queried properties. Each Conv,
 * Gemm and MatMul layer then takes the tuner's winner for its shape from the tuning cache
 * (cleval tune, tune.c) when there is one. CLEVAL_NN_TUNING="conv_mr=8,conv_nv=2,..." overrides
 * named values of every layer, for experiments. The chosen values and their source are logged
 * at CLEVAL_LOG_INFO and appear in each layer's kernel description. */
#include "nn_internal.h"

#include "cleval/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tunable {
    const char *name;
    size_t offset;
    uint32_t min, max;
} tunable;

#define TUNABLE(field, lo, hi)                                                                     \
    {                                                                                              \
#field, offsetof(nn_tuning, field), lo, hi                                                 \
    }
static const tunable TUNABLES[] = {
    TUNABLE(conv_mr, 4, 16),      TUNABLE(conv_nv, 1, 4),
    TUNABLE(gemm_mr, 1, 16),      TUNABLE(gemm_nv, 1, 4),
    TUNABLE(gemm_kc, 16, 65536),  TUNABLE(gemm_qb, 1, 4096),
    TUNABLE(gpu_conv_tile, 0, 2), TUNABLE(gpu_gemm_tile, 0, 2),
    TUNABLE(local_1d, 1, 1024),   TUNABLE(conv_items, 1, 1024),
    TUNABLE(winograd, 0, 1),      TUNABLE(gpu_groups, 1, 1024),
    TUNABLE(i8_float, 0, 1),      TUNABLE(gemm_batch_kib, 64, 1048576),
    TUNABLE(rnn_rows, 1, 16),
};
enum { N_TUNABLES = sizeof TUNABLES / sizeof TUNABLES[0] };

/* Tuning cache entries are at most this long (every tunable as name=value). */
enum { ENTRY_MAX = 512 };

static uint32_t *field(nn_tuning *t, const tunable *u)
{
    return (uint32_t *)((char *)t + u->offset);
}

static uint32_t value_of(const nn_tuning *t, const tunable *u)
{
    return *(const uint32_t *)((const char *)t + u->offset);
}

const char *nn_tuning_source_name(int source)
{
    switch (source) {
    case NN_TUNING_DERIVED: return "derived";
    case NN_TUNING_SHIPPED: return "shipped";
    case NN_TUNING_CACHE: return "cache";
    case NN_TUNING_ENV: return "env";
    case NN_TUNING_FORCED: return "tuner candidate";
    default: return "?";
    }
}

/* ---- base values ---- */

/* The register tile of the CPU kernels: MR x 16 NV outputs held as MR * NV float16
 * accumulators, each of 16 / width vector registers. x86 has 32 vector registers with
 * AVX-512 (width 16) and 16 below; about three quarters of them may hold accumulators, the
 * rest the broadcast operand and the loaded panel. Among the tiles that fit, the widest in
 * channels (NV up to 2) with the most rows (MR up to 8, a multiple of 4). */
static void derive_cpu_tile(uint32_t width, uint32_t *mr, uint32_t *nv)
{
    if (width == 0 || width > 16) width = width ? 16 : 4;
    uint32_t registers = width >= 16 ? 32 : 16;
    uint32_t per_accumulator = 16 / width;
    uint32_t budget = registers * 3 / 4;
    *mr = 4;
    *nv = 1;
    for (uint32_t n = 2; n >= 1; n--) {
        uint32_t m = budget / (n * per_accumulator);
        m = m > 8 ? 8 : m - m % 4;
        if (m >= 4) {
            *mr = m;
            *nv = n;
            return;
        }
    }
}

/* Values from what OpenCL says about the device. CPU-style kernels: the register tile from
 * the preferred float vector width; a k-block whose panel slice (KC x 16 NV floats) fills
 * 32 KiB, the smallest L1 data cache of current x86 cores (OpenCL reports only the last-level
 * cache); a few work-items per compute unit so that uneven ones even out; a batched MatMul
 * launch may pack 16 MiB of workspace (a memory budget, not a cache fit). GPU-style kernels:
 * tiles 0, so that conv_gpu and gemm_gpu choose each layer's tile from its output channels and
 * check it against the device's work-group size and local memory (op_conv_gpu.c, op_gemm.c). */
static void derive(const cleval_device *dev, cleval_kernel_variant variant, nn_tuning *t)
{
    const cleval_device_info *info = cleval_device_get_info(dev);
    uint32_t width = info->preferred_float_width ? info->preferred_float_width : 4;
    derive_cpu_tile(width, &t->conv_mr, &t->conv_nv);
    derive_cpu_tile(width, &t->gemm_mr, &t->gemm_nv);
    t->gemm_kc = 32768 / (16 * t->gemm_nv * (uint32_t)sizeof(float));
    t->gemm_qb = 64;
    t->conv_items = 8;
    t->winograd = 1;
    t->i8_float = 1;
    size_t max_group = info->max_work_group_size ? info->max_work_group_size : 1;
    t->local_1d = (uint32_t)(max_group < 256 ? max_group : 256);
    t->gemm_batch_kib = 16384;
    t->gpu_conv_tile = 0;
    t->gpu_gemm_tile = 0;
    t->gpu_groups = 4;
    /* CPU-style: a recurrence work-group runs several batch rows, so each recurrent weight it
     * reads (the whole R every time step) serves them all; their float16 accumulators must stay
     * in registers: 8 with 512-bit vectors (8 of the 32), 4 with 256-bit ones (8 of the 16).
     * GPU-style: one row, many work-groups. */
    t->rnn_rows = variant == CLEVAL_VARIANT_GPU ? 1 : width >= 16 ? 8 : 4;
    if (variant == CLEVAL_VARIANT_GPU) t->local_1d = t->local_1d < 64 ? t->local_1d : 64;
}

/* Profiles for device kinds whose values were measured or checked, matched on the device name
 * (PoCL names its CPU device after the LLVM target: "pthread-skylake-avx512-...") or the
 * vendor. Fields a profile leaves 0 keep the derived value. */
typedef struct profile {
    const char *name_has, *vendor_has;
    nn_tuning values;
} profile;

static const profile PROFILES[] = {
    /* PoCL on AVX-512 (bench/bench_nn.c, docs/performance.md): 8 x 32 tiles keep 16 float16
     * accumulators and beat 4 x 64 for Conv and Gemm; a 256-deep k-block keeps a 32 KB panel
     * slice in L1. */
    {"skylake-avx512",
     NULL,
     {.conv_mr = 8,
      .conv_nv = 2,
      .gemm_mr = 8,
      .gemm_nv = 2,
      .gemm_kc = 256,
      .gemm_qb = 64,
      .conv_items = 8}},
    /* PoCL on AVX2 (16 ymm registers; not measured on this project's machines, which have
     * AVX-512): 4 x 16 tiles, 4 float16 accumulators of two registers each, half the
     * registers, as the register budget above gives; 4 x 32 would take all 16 and spill. */
    {"haswell",
     NULL,
     {.conv_mr = 4,
      .conv_nv = 1,
      .gemm_mr = 4,
      .gemm_nv = 1,
      .gemm_kc = 256,
      .gemm_qb = 64,
      .conv_items = 8}},
    /* NVIDIA's OpenCL driver: the K split and 1-D work-group of the H100 check
     * (bench/results/h100_gpu_check.log). The conv_gpu / gemm_gpu tiles stay 0, each layer's
     * chosen from its output channels: they were not timed on an NVIDIA GPU yet, and
     * cleval tune times tiles 1 and 2 per layer there. */
    {NULL, "NVIDIA", {.gpu_groups = 4, .local_1d = 64}},
};

static bool apply_profile(const cleval_device_info *info, nn_tuning *t)
{
    for (size_t p = 0; p < sizeof PROFILES / sizeof PROFILES[0]; p++) {
        const profile *pr = &PROFILES[p];
        if ((pr->name_has && !strstr(info->name, pr->name_has)) ||
            (pr->vendor_has && !strstr(info->vendor, pr->vendor_has)))
            continue;
        for (int i = 0; i < N_TUNABLES; i++) {
            uint32_t v = value_of(&pr->values, &TUNABLES[i]);
            if (v) *field(t, &TUNABLES[i]) = v;
        }
        return true;
    }
    return false;
}

static cleval_status check(nn_tuning *t, const char *what)
{
    if (t->conv_mr % 4 != 0)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: conv_mr must be a multiple of 4", what);
    if (t->gemm_qb % t->gemm_mr != 0) t->gemm_qb += t->gemm_mr - t->gemm_qb % t->gemm_mr;
    return CLEVAL_OK;
}

cleval_status nn_tuning_base(const cleval_device *dev, cleval_kernel_variant variant,
                             nn_tuning *out, nn_tuning_source *source)
{
    nn_tuning t;
    derive(dev, variant, &t);
    *source =
        apply_profile(cleval_device_get_info(dev), &t) ? NN_TUNING_SHIPPED : NN_TUNING_DERIVED;
    cleval_status status = check(&t, "base tuning");
    if (status == CLEVAL_OK) *out = t;
    return status;
}

/* ---- text form ---- */

cleval_status nn_tuning_apply(nn_tuning *t, const char *text, const char *what)
{
    char copy[ENTRY_MAX];
    if (strlen(text) >= sizeof copy)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: longer than %d characters", what, ENTRY_MAX - 1);
    snprintf(copy, sizeof copy, "%s", text);
    nn_tuning next = *t;
    for (char *save, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        const tunable *u = NULL;
        if (eq) {
            *eq = '\0';
            for (int i = 0; i < N_TUNABLES; i++)
                if (strcmp(TUNABLES[i].name, item) == 0) u = &TUNABLES[i];
        }
        char *end = NULL;
        long value = eq ? strtol(eq + 1, &end, 10) : -1;
        if (!u || !end || end == eq + 1 || *end || value < (long)u->min || value > (long)u->max)
            return cleval_fail(CLEVAL_ERR_USAGE,
                               "%s: '%s' is not a known tunable with a value in range", what, item);
        *field(&next, u) = (uint32_t)value;
    }
    cleval_status status = check(&next, what);
    if (status == CLEVAL_OK) *t = next;
    return status;
}

void nn_tuning_format(const nn_tuning *t, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < N_TUNABLES && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s=%u", i ? "," : "", TUNABLES[i].name,
                         value_of(t, &TUNABLES[i]));
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* ---- per layer ---- */

bool nn_tuning_applies(const nn_op *op)
{
    return !op->dead &&
           (op->kind == &nn_kind_conv || op->kind == &nn_kind_gemm || op->kind == &nn_kind_matmul ||
            op->kind == &nn_kind_lstm || op->kind == &nn_kind_gru);
}

/* The first output an op computes (an LSTM or GRU may omit Y): -1 when none. */
static int first_output(const nn_op *op)
{
    for (uint32_t o = 0; o < op->n_out; o++)
        if (op->out[o] >= 0) return op->out[o];
    return -1;
}

static uint64_t hash_shape(uint64_t h, const nn_shape *s)
{
    h = cleval_cache_hash(h, &s->rank, sizeof s->rank);
    for (uint32_t d = 0; d < s->rank && d < NN_MAX_RANK; d++)
        h = cleval_cache_hash(h, &s->d[d], sizeof s->d[d]);
    return h;
}

static bool shape_known(const nn_shape *s)
{
    if (s->rank == UINT32_MAX || s->rank > NN_MAX_RANK) return false;
    for (uint32_t d = 0; d < s->rank; d++)
        if (s->d[d] < 0) return false;
    return true;
}

/* The cache key of an op's tunables: what the timing depends on. The device (name, driver),
 * the kernels' source, the variant and numeric mode, the fused op group, and the shapes, at one
 * sample for a classifier (the tuner's batch does not matter: a layer's best tile depends on
 * its channels and extents far more than on how many samples a launch holds). False when a
 * shape is not known. */
static bool layer_key(const cleval_nn *nn, const nn_op *op, uint64_t device_hash, char key[17])
{
    uint64_t h = device_hash;
    h = cleval_cache_hash_string(h, op->label);
    uint32_t mode[4] = {(uint32_t)nn->variant, (uint32_t)nn->precision, nn->half_math, op->int8};
    h = cleval_cache_hash(h, mode, sizeof mode);
    for (uint32_t i = 0; i < op->n_in; i++) {
        if (op->in[i] < 0) continue;
        const nn_value *v = &nn->values[op->in[i]];
        if (!shape_known(&v->shape)) return false;
        h = hash_shape(h, &v->shape);
        uint32_t layout[2] = {(uint32_t)v->layout, v->half};
        h = cleval_cache_hash(h, layout, sizeof layout);
    }
    int out = first_output(op);
    if (out < 0 || !shape_known(&nn->values[out].shape)) return false;
    h = hash_shape(h, &nn->values[out].shape);
    if (op->kind == &nn_kind_lstm || op->kind == &nn_kind_gru) {
        const nn_rnn_params *p = &op->p.rnn;
        int64_t cell[13] = {p->gru,         p->dirs,         p->reverse,
                            p->batch_major, p->input_forget, p->linear_before_reset,
                            p->clip > 0.0f};
        for (int i = 0; i < 6; i++)
            cell[7 + i] = p->act[i / 3][i % 3];
        h = cleval_cache_hash(h, cell, sizeof cell);
    } else if (op->kind == &nn_kind_conv) {
        const nn_conv_params *p = &op->p.conv;
        int64_t geometry[3 * 5 + 2] = {p->group, p->depthwise};
        for (int a = 0; a < 3; a++) {
            geometry[2 + a] = p->kernel[a];
            geometry[5 + a] = p->stride[a];
            geometry[8 + a] = p->dilation[a];
            geometry[11 + a] = p->pad_begin[a];
            geometry[14 + a] = p->pad_end[a];
        }
        h = cleval_cache_hash(h, geometry, sizeof geometry);
    } else {
        const nn_gemm_params *p = &op->p.gemm;
        uint32_t flags[3] = {p->matmul, p->trans_a, p->trans_b};
        h = cleval_cache_hash(h, flags, sizeof flags);
    }
    snprintf(key, 17, "%016llx", (unsigned long long)h);
    return true;
}

static cleval_status device_hash(const cleval_device *dev, uint64_t *h)
{
    const cleval_device_info *info = cleval_device_get_info(dev);
    *h = cleval_cache_hash_string(CLEVAL_CACHE_HASH_SEED, "cleval tuning 1");
    *h = cleval_cache_hash_string(*h, info->platform);
    *h = cleval_cache_hash_string(*h, info->name);
    *h = cleval_cache_hash_string(*h, info->driver_version);
    return cleval_kernel_sources_hash(h);
}

/* The cached tunables of a layer: false on a miss or an entry that does not parse (logged: a
 * damaged entry is rebuilt by the next cleval tune). */
static bool load_entry(const char *key, nn_tuning *t)
{
    void *data = NULL;
    size_t size = 0;
    if (!cleval_cache_load("tuning", key, ENTRY_MAX, &data, &size)) return false;
    char text[ENTRY_MAX + 1];
    memcpy(text, data, size);
    text[size] = '\0';
    free(data);
    text[strcspn(text, "\n")] = '\0';
    nn_tuning loaded = *t;
    if (nn_tuning_apply(&loaded, text, "tuning cache entry") != CLEVAL_OK) {
        cleval_log(CLEVAL_LOG_WARN, "tuning cache entry %s is damaged (%s); using the defaults",
                   key, cleval_last_error());
        return false;
    }
    *t = loaded;
    return true;
}

static void log_choice(const nn_op *op)
{
    const nn_tuning *t = &op->tuning;
    cleval_log(
        CLEVAL_LOG_INFO,
        "node '%s' (%s): tuning from %s%s%s%s: conv %ux%u%s, gemm %ux%u kc=%u qb=%u, items %u, "
        "gpu tiles conv %u gemm %u groups %u, batch %u KiB, local %u",
        op->name, op->label, nn_tuning_source_name(op->tuning_source),
        op->tuning_key[0] ? " (key " : "", op->tuning_key, op->tuning_key[0] ? ")" : "", t->conv_mr,
        16 * t->conv_nv, t->winograd ? " winograd" : "", t->gemm_mr, 16 * t->gemm_nv, t->gemm_kc,
        t->gemm_qb, t->conv_items, t->gpu_conv_tile, t->gpu_gemm_tile, t->gpu_groups,
        t->gemm_batch_kib, t->local_1d);
}

cleval_status nn_tuning_assign(cleval_nn *nn, const char *override)
{
    const char *env = override ? NULL : getenv("CLEVAL_NN_TUNING");
    if (env && !*env) env = NULL;
    nn_tuning env_check = nn->base_tuning;
    /* A bad CLEVAL_NN_TUNING is refused even when no layer would use it. */
    cleval_status status = env ? nn_tuning_apply(&env_check, env, "CLEVAL_NN_TUNING") : CLEVAL_OK;
    const nn_tuning *b = &nn->base_tuning;
    cleval_log(
        CLEVAL_LOG_INFO,
        "nn tuning base (%s, %s): conv %ux%u%s, gemm %ux%u kc=%u qb=%u, gpu tiles conv %u gemm %u, "
        "local %u",
        cleval_variant_name(nn->variant), nn_tuning_source_name(nn->base_source), b->conv_mr,
        16 * b->conv_nv, b->winograd ? " winograd" : "", b->gemm_mr, 16 * b->gemm_nv, b->gemm_kc,
        b->gemm_qb, b->gpu_conv_tile, b->gpu_gemm_tile, b->local_1d);
    bool hashed = false;
    uint64_t dev_hash = 0;
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        nn_op *op = &nn->ops[i];
        if (!nn_tuning_applies(op)) continue;
        op->tuned = true;
        op->tuning = nn->base_tuning;
        op->tuning_source = nn->base_source;
        op->tuning_key[0] = '\0';
        if (!hashed && (status = device_hash(nn->dev, &dev_hash)) != CLEVAL_OK) break;
        hashed = true;
        if (!layer_key(nn, op, dev_hash, op->tuning_key)) op->tuning_key[0] = '\0';
        if (override) {
            status = nn_tuning_apply(&op->tuning, override, "tuner candidate");
            op->tuning_source = NN_TUNING_FORCED;
        } else if (op->tuning_key[0] && load_entry(op->tuning_key, &op->tuning)) {
            op->tuning_source = NN_TUNING_CACHE;
        }
        if (env && status == CLEVAL_OK) {
            status = nn_tuning_apply(&op->tuning, env, "CLEVAL_NN_TUNING");
            op->tuning_source = NN_TUNING_ENV;
        }
        if (status == CLEVAL_OK) log_choice(op);
    }
    /* The other kernels' values (local_1d) follow the environment too. */
    if (status == CLEVAL_OK && env) {
        nn->base_tuning = env_check;
        nn->base_source = NN_TUNING_ENV;
    }
    nn->tuning = nn->base_tuning;
    return status;
}

void nn_use_tuning(cleval_nn *nn, const nn_op *op)
{
    nn->tuning = op && op->tuned ? op->tuning : nn->base_tuning;
}
