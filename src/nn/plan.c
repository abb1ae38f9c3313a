/* The memory plan: activations, runtime inputs and op workspaces placed in a pool of device
 * buffers by liveness (a buffer is reused once the last reader of its value has run; views
 * such as Flatten share their input's buffer). Planned for the shapes of the latest
 * inference; buffers only grow, so smaller batches reuse them without reallocating. */
#include "nn_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The value whose memory v uses (itself unless it is a view). */
static int root_of(const cleval_nn *nn, int v)
{
    while (nn->values[v].alias >= 0)
        v = nn->values[v].alias;
    return v;
}

/* Slots are taken and released once per op, so both steps are logarithmic in the number of
 * slots (a graph may keep 10^5 values alive at once): the free slots sit in a treap ordered
 * by the bytes they offer, then by index, and the taken ones in a min-heap on the last op
 * that needs them. */
typedef struct planner {
    int *last;         /* per value: index of the last op that reads it (n_ops: graph output) */
    int *slot_owner;   /* per slot: value (or -2 - op for a workspace) holding it, -1 free */
    int *slot_until;   /* per slot: last op index that needs it */
    int *left, *right; /* per slot: the free-slot treap's children, -1 for none */
    int root;          /* the treap's root, -1 when no slot is free */
    int *heap;         /* taken slots, the smallest slot_until first */
    uint32_t n_heap;
    uint32_t cap; /* entries of each per-slot array */
} planner;

/* ---- free slots: a treap keyed by (bytes offered, index) ---- */

static size_t offered(const cleval_nn *nn, int s)
{
    return nn->slots[s].need > nn->slots[s].capacity ? nn->slots[s].need : nn->slots[s].capacity;
}

static bool key_less(const cleval_nn *nn, int a, int b)
{
    size_t x = offered(nn, a), y = offered(nn, b);
    return x < y || (x == y && a < b);
}

/* The heap order of the treap: a hash of the index, so that shapes stay balanced whatever the
 * order of the keys, and plans are reproducible. */
static uint32_t priority(int s)
{
    uint32_t x = (uint32_t)s * 2654435761u;
    x ^= x >> 16;
    x *= 0x7feb352du;
    return x ^ (x >> 15);
}

/* Splits tree t into the slots ordered before s (*lo) and the others (*hi). */
static void split(const cleval_nn *nn, planner *pl, int t, int s, int *lo, int *hi)
{
    if (t < 0) {
        *lo = *hi = -1;
    } else if (key_less(nn, t, s)) {
        split(nn, pl, pl->right[t], s, &pl->right[t], hi);
        *lo = t;
    } else {
        split(nn, pl, pl->left[t], s, lo, &pl->left[t]);
        *hi = t;
    }
}

/* Joins two trees, every slot of a ordered before every slot of b. */
static int merge(planner *pl, int a, int b)
{
    if (a < 0) return b;
    if (b < 0) return a;
    if (priority(a) > priority(b)) {
        pl->right[a] = merge(pl, pl->right[a], b);
        return a;
    }
    pl->left[b] = merge(pl, a, pl->left[b]);
    return b;
}

static int insert(const cleval_nn *nn, planner *pl, int t, int s)
{
    if (t < 0 || priority(s) > priority(t)) {
        split(nn, pl, t, s, &pl->left[s], &pl->right[s]);
        return s;
    }
    if (key_less(nn, s, t))
        pl->left[t] = insert(nn, pl, pl->left[t], s);
    else
        pl->right[t] = insert(nn, pl, pl->right[t], s);
    return t;
}

static int erase(const cleval_nn *nn, planner *pl, int t, int s)
{
    if (t == s) return merge(pl, pl->left[t], pl->right[t]);
    if (key_less(nn, s, t))
        pl->left[t] = erase(nn, pl, pl->left[t], s);
    else
        pl->right[t] = erase(nn, pl, pl->right[t], s);
    return t;
}

/* The first free slot (by bytes offered, then index) offering at least `bytes`, or -1. */
static int first_fitting(const cleval_nn *nn, const planner *pl, size_t bytes)
{
    int found = -1;
    for (int t = pl->root; t >= 0;) {
        if (offered(nn, t) >= bytes) {
            found = t;
            t = pl->left[t];
        } else {
            t = pl->right[t];
        }
    }
    return found;
}

/* The free slot offering the most bytes (the lowest index among equals), or -1. */
static int largest_free(const cleval_nn *nn, const planner *pl)
{
    int t = pl->root;
    if (t < 0) return -1;
    while (pl->right[t] >= 0)
        t = pl->right[t];
    return first_fitting(nn, pl, offered(nn, t));
}

/* ---- taken slots: a min-heap on slot_until ---- */

static bool until_less(const planner *pl, uint32_t i, uint32_t j)
{
    return pl->slot_until[pl->heap[i]] < pl->slot_until[pl->heap[j]];
}

static void heap_swap(planner *pl, uint32_t i, uint32_t j)
{
    int t = pl->heap[i];
    pl->heap[i] = pl->heap[j];
    pl->heap[j] = t;
}

static void heap_push(planner *pl, int s)
{
    uint32_t i = pl->n_heap++;
    pl->heap[i] = s;
    for (; i > 0 && until_less(pl, i, (i - 1) / 2); i = (i - 1) / 2)
        heap_swap(pl, i, (i - 1) / 2);
}

static int heap_pop(planner *pl)
{
    int top = pl->heap[0];
    pl->heap[0] = pl->heap[--pl->n_heap];
    for (uint32_t i = 0;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < pl->n_heap && until_less(pl, l, m)) m = l;
        if (r < pl->n_heap && until_less(pl, r, m)) m = r;
        if (m == i) break;
        heap_swap(pl, i, m);
        i = m;
    }
    return top;
}

/* ---- the planner ---- */

/* Makes room for `n` slots in every per-slot array. */
static cleval_status reserve(planner *pl, uint32_t n)
{
    if (n <= pl->cap) return CLEVAL_OK;
    uint32_t cap = pl->cap ? 2 * pl->cap : 16;
    while (cap < n)
        cap *= 2;
    int **arrays[] = {&pl->slot_owner, &pl->slot_until, &pl->left, &pl->right, &pl->heap};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        int *grown = realloc(*arrays[i], cap * sizeof **arrays[i]);
        if (!grown) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
        *arrays[i] = grown;
    }
    pl->cap = cap;
    return CLEVAL_OK;
}

static cleval_status grow_slots(cleval_nn *nn, planner *pl)
{
    uint32_t n = nn->n_slots + 1;
    cleval_status status = reserve(pl, n);
    if (status != CLEVAL_OK) return status;
    nn_slot *slots = realloc(nn->slots, n * sizeof *slots);
    if (!slots) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
    nn->slots = slots;
    memset(&nn->slots[nn->n_slots], 0, sizeof *nn->slots);
    pl->slot_owner[nn->n_slots] = -1;
    nn->n_slots = n;
    return CLEVAL_OK;
}

/* Takes a free slot for `bytes` until op `until`: the smallest that fits, else the largest
 * free one (grown), else a new one. */
static cleval_status take_slot(cleval_nn *nn, planner *pl, size_t bytes, int owner, int until,
                               int *out)
{
    int s = first_fitting(nn, pl, bytes);
    if (s < 0) s = largest_free(nn, pl);
    if (s >= 0) {
        pl->root = erase(nn, pl, pl->root, s);
    } else {
        cleval_status status = grow_slots(nn, pl);
        if (status != CLEVAL_OK) return status;
        s = (int)nn->n_slots - 1;
    }
    if (nn->slots[s].need < bytes) nn->slots[s].need = bytes;
    if (owner >= 0) nn->slots[s].holds_value = true;
    pl->slot_owner[s] = owner;
    pl->slot_until[s] = until;
    heap_push(pl, s);
    *out = s;
    return CLEVAL_OK;
}

static void release_before(const cleval_nn *nn, planner *pl, int op_index)
{
    while (pl->n_heap && pl->slot_until[pl->heap[0]] < op_index) {
        int s = heap_pop(pl);
        pl->slot_owner[s] = -1;
        pl->root = insert(nn, pl, pl->root, s);
    }
}

cleval_status nn_plan(cleval_nn *nn)
{
    planner pl = {.root = -1};
    cleval_status status = CLEVAL_OK;
    pl.last = malloc((nn->n_values + 1) * sizeof *pl.last);
    if (!pl.last) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
        goto done;
    }
    if ((status = reserve(&pl, nn->n_slots + 1)) != CLEVAL_OK) goto done;
    for (uint32_t s = 0; s < nn->n_slots; s++) {
        nn->slots[s].need = 0;
        nn->slots[s].holds_value = false;
        pl.slot_owner[s] = -1;
        pl.root = insert(nn, &pl, pl.root, (int)s);
    }
    for (uint32_t v = 0; v < nn->n_values; v++) {
        pl.last[v] = -1;
        nn->values[v].slot = -1;
        nn->values[v].alias = -1;
    }
    /* Views and liveness (host ops hold no device memory and read none). */
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->host) continue;
        if (op->alias_only) nn->values[op->out[0]].alias = root_of(nn, op->in[0]);
        for (uint32_t j = 0; j < op->n_in; j++)
            if (op->in[j] >= 0) pl.last[root_of(nn, op->in[j])] = (int)i;
    }
    for (uint32_t o = 0; o < nn->n_outputs; o++)
        pl.last[root_of(nn, nn->outputs[o])] = (int)nn->n_ops;
    for (uint32_t i = 0; i < nn->n_inputs && status == CLEVAL_OK; i++) {
        nn_value *v = &nn->values[nn->inputs[i]];
        size_t bytes = (size_t)v->count * nn_value_elem_bytes(nn, nn->inputs[i]);
        status = take_slot(nn, &pl, bytes ? bytes : sizeof(float), nn->inputs[i],
                           pl.last[nn->inputs[i]] < 0 ? -1 : pl.last[nn->inputs[i]], &v->slot);
    }
    for (uint32_t i = 0; i < nn->n_ops && status == CLEVAL_OK; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead || op->alias_only || op->host) continue;
        release_before(nn, &pl, (int)i);
        /* Output 0 always gets memory; the others when something reads them, or when the kind
         * computes them all (Split). */
        for (uint32_t o = 0; o < op->n_out && status == CLEVAL_OK; o++) {
            int v = op->out[o];
            nn_value *y = v >= 0 ? &nn->values[v] : NULL;
            if (!y || (o > 0 && !nn_kind_variadic(op->kind) && !y->uses && !y->is_output))
                continue;
            size_t bytes = (size_t)y->count * nn_value_elem_bytes(nn, v);
            int until = pl.last[v] < (int)i ? (int)i : pl.last[v];
            status = take_slot(nn, &pl, bytes ? bytes : sizeof(float), v, until, &y->slot);
        }
        op->workspace_slot = -1;
        if (status == CLEVAL_OK && op->workspace)
            status = take_slot(nn, &pl, op->workspace, -2 - (int)i, (int)i, &op->workspace_slot);
    }
    if (status == CLEVAL_OK) status = nn_upload_host_operands(nn);
    /* Grow the buffers the plan outgrew. */
    const cleval_device_info *info = cleval_device_get_info(nn->dev);
    for (uint32_t s = 0; s < nn->n_slots && status == CLEVAL_OK; s++) {
        nn_slot *slot = &nn->slots[s];
        if (slot->need <= slot->capacity) continue;
        if (slot->need > info->max_alloc_bytes) {
            status = cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                                 "%s: an intermediate tensor needs %zu bytes, more than the "
                                 "device's largest buffer (%llu bytes); use a smaller batch",
                                 nn->path, slot->need, (unsigned long long)info->max_alloc_bytes);
            break;
        }
        if (slot->mem) clReleaseMemObject(slot->mem);
        slot->mem = NULL;
        slot->capacity = 0;
        status = nn_device_buffer_rw(nn, slot->need, "activations", &slot->mem);
        if (status == CLEVAL_OK) slot->capacity = slot->need;
    }
done:
    free(pl.last);
    free(pl.slot_owner);
    free(pl.slot_until);
    free(pl.left);
    free(pl.right);
    free(pl.heap);
    return status;
}

void nn_release_plan(cleval_nn *nn)
{
    for (uint32_t s = 0; s < nn->n_slots; s++)
        if (nn->slots[s].mem) clReleaseMemObject(nn->slots[s].mem);
    free(nn->slots);
    nn->slots = NULL;
    nn->n_slots = 0;
}

cl_mem nn_value_mem(cleval_nn *nn, int v)
{
    assert(v >= 0 && (uint32_t)v < nn->n_values);
    int r = root_of(nn, v);
    const nn_value *value = &nn->values[r];
    if (value->kind == NN_VALUE_CONST || value->kind == NN_VALUE_HOST) return value->mem;
    return value->slot >= 0 ? nn->slots[value->slot].mem : NULL;
}

cl_mem nn_workspace_mem(cleval_nn *nn, const nn_op *op)
{
    assert(op->workspace_slot < (int)nn->n_slots);
    return op->workspace_slot >= 0 ? nn->slots[op->workspace_slot].mem : NULL;
}

cleval_status nn_device_buffer_rw(cleval_nn *nn, size_t bytes, const char *what, cl_mem *out)
{
    return cleval_device_buffer(nn->dev, CL_MEM_READ_WRITE, bytes, NULL, what, out);
}

cleval_status nn_upload(cleval_nn *nn, const void *data, size_t bytes, const char *what,
                        cl_mem *out)
{
    if (bytes == 0) return cleval_device_buffer(nn->dev, CL_MEM_READ_ONLY, 4, NULL, what, out);
    return cleval_device_buffer(nn->dev, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                (void *)data, what, out);
}

cleval_status nn_const_mem(cleval_nn *nn, int v, cl_mem *out)
{
    nn_value *value = &nn->values[root_of(nn, v)];
    if (!value->mem) {
        if (!value->f32)
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: constant '%s' is not a float tensor",
                               nn->path, value->name);
        cleval_status status = nn_upload(nn, value->f32, (size_t)value->count * sizeof(float),
                                         value->name, &value->mem);
        if (status != CLEVAL_OK) return status;
    }
    *out = value->mem;
    return CLEVAL_OK;
}

/* Uploads host value v's current contents as floats (integers converted). */
static cleval_status upload_host_value(cleval_nn *nn, nn_value *v)
{
    size_t n = (size_t)v->count;
    float *data = v->f32;
    if (!data) {
        if (!v->i64)
            return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                               "%s: '%s' has an element type the device cannot read", nn->path,
                               v->name);
        if (!(data = malloc((n ? n : 1) * sizeof *data)))
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory uploading '%s'", v->name);
        for (size_t i = 0; i < n; i++)
            data[i] = (float)v->i64[i];
    }
    cleval_status status = nn_upload(nn, data, n * sizeof *data, v->name, &v->mem);
    if (data != v->f32) free(data);
    return status;
}

cleval_status nn_upload_host_operands(cleval_nn *nn)
{
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        const nn_op *op = &nn->ops[i];
        if (op->dead || op->host) continue;
        for (uint32_t j = 0; j < op->n_in; j++) {
            if (op->in[j] < 0 || nn_reads_host_input(op->kind, j)) continue;
            nn_value *v = &nn->values[op->in[j]];
            if (v->kind != NN_VALUE_HOST || v->mem) continue;
            cleval_status status = upload_host_value(nn, v);
            if (status != CLEVAL_OK) return status;
        }
    }
    return CLEVAL_OK;
}

/* Bytes of a device buffer (0 for NULL). */
static uint64_t mem_bytes(cl_mem mem)
{
    size_t bytes = 0;
    if (mem && clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS)
        bytes = 0;
    return bytes;
}

/* Bytes of the constants' device buffers and of the ops' own buffers (each is held, and
 * released, by one value or one op). */
static uint64_t weights_bytes(const cleval_nn *nn)
{
    uint64_t total = 0;
    for (uint32_t v = 0; v < nn->n_values; v++)
        total += mem_bytes(nn->values[v].mem);
    for (uint32_t i = 0; i < nn->n_ops; i++)
        for (int b = 0; b < NN_MAX_BUFFERS; b++)
            total += mem_bytes(nn->ops[i].mem[b]);
    return total;
}

void cleval_nn_device_memory_get(const cleval_nn *nn, cleval_nn_device_memory *out)
{
    memset(out, 0, sizeof *out);
    if (!nn) return;
    out->weights_bytes = weights_bytes(nn);
    for (uint32_t s = 0; s < nn->n_slots; s++) {
        uint64_t bytes = mem_bytes(nn->slots[s].mem);
        if (nn->slots[s].holds_value)
            out->activations_bytes += bytes;
        else
            out->workspace_bytes += bytes;
    }
    out->activations_bytes +=
        nn_feed_device_bytes(nn) + mem_bytes(nn->pred) + mem_bytes(nn->nonfinite);
    out->peak_bytes = out->weights_bytes + out->activations_bytes + out->workspace_bytes;
}
