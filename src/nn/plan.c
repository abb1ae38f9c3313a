/* The memory plan: activations, runtime inputs and op workspaces placed in a pool of device
 * buffers by liveness (a buffer is reused once the last reader of its value has run; views
 * such as Flatten share their input's buffer). Planned for the shapes of the latest
 * inference; buffers only grow, so smaller batches reuse them without reallocating. */
#include "nn_internal.h"

#include <stdlib.h>
#include <string.h>

/* The value whose memory v uses (itself unless it is a view). */
static int root_of(const cleval_nn *nn, int v)
{
    while (nn->values[v].alias >= 0)
        v = nn->values[v].alias;
    return v;
}

typedef struct planner {
    int *last;       /* per value: index of the last op that reads it (n_ops: graph output) */
    int *slot_owner; /* per slot: value (or -2 - op for a workspace) holding it, -1 free */
    int *slot_until; /* per slot: last op index that needs it */
} planner;

static cleval_status grow_slots(cleval_nn *nn, planner *pl)
{
    uint32_t n = nn->n_slots + 1;
    nn_slot *slots = realloc(nn->slots, n * sizeof *slots);
    if (!slots) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
    nn->slots = slots;
    memset(&nn->slots[nn->n_slots], 0, sizeof *nn->slots);
    int *owner = realloc(pl->slot_owner, n * sizeof *owner);
    if (!owner) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
    pl->slot_owner = owner;
    int *until = realloc(pl->slot_until, n * sizeof *until);
    if (!until) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
    pl->slot_until = until;
    pl->slot_owner[nn->n_slots] = -1;
    nn->n_slots = n;
    return CLEVAL_OK;
}

/* Takes a free slot for `bytes` until op `until`: the smallest that fits, else the largest
 * free one (grown), else a new one. */
static cleval_status take_slot(cleval_nn *nn, planner *pl, size_t bytes, int owner, int until,
                               int *out)
{
    int best = -1, largest = -1;
    for (uint32_t s = 0; s < nn->n_slots; s++) {
        if (pl->slot_owner[s] != -1) continue;
        size_t have =
            nn->slots[s].need > nn->slots[s].capacity ? nn->slots[s].need : nn->slots[s].capacity;
        if (have >= bytes && (best < 0 || have < (nn->slots[best].need > nn->slots[best].capacity
                                                      ? nn->slots[best].need
                                                      : nn->slots[best].capacity)))
            best = (int)s;
        if (largest < 0 || have > (nn->slots[largest].need > nn->slots[largest].capacity
                                       ? nn->slots[largest].need
                                       : nn->slots[largest].capacity))
            largest = (int)s;
    }
    int s = best >= 0 ? best : largest;
    if (s < 0) {
        cleval_status status = grow_slots(nn, pl);
        if (status != CLEVAL_OK) return status;
        s = (int)nn->n_slots - 1;
    }
    if (nn->slots[s].need < bytes) nn->slots[s].need = bytes;
    pl->slot_owner[s] = owner;
    pl->slot_until[s] = until;
    *out = s;
    return CLEVAL_OK;
}

static void release_before(const cleval_nn *nn, planner *pl, int op_index)
{
    for (uint32_t s = 0; s < nn->n_slots; s++)
        if (pl->slot_owner[s] != -1 && pl->slot_until[s] < op_index) pl->slot_owner[s] = -1;
}

cleval_status nn_plan(cleval_nn *nn)
{
    planner pl = {NULL, NULL, NULL};
    cleval_status status = CLEVAL_OK;
    pl.last = malloc((nn->n_values + 1) * sizeof *pl.last);
    pl.slot_owner = malloc((nn->n_slots + 1) * sizeof *pl.slot_owner);
    pl.slot_until = malloc((nn->n_slots + 1) * sizeof *pl.slot_until);
    if (!pl.last || !pl.slot_owner || !pl.slot_until) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory planning buffers");
        goto done;
    }
    for (uint32_t s = 0; s < nn->n_slots; s++) {
        nn->slots[s].need = 0;
        pl.slot_owner[s] = -1;
    }
    for (uint32_t v = 0; v < nn->n_values; v++) {
        pl.last[v] = -1;
        nn->values[v].slot = -1;
        nn->values[v].alias = -1;
    }
    /* Views and liveness. */
    for (uint32_t i = 0; i < nn->n_ops; i++) {
        nn_op *op = &nn->ops[i];
        if (op->dead) continue;
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
        if (op->dead || op->alias_only) continue;
        release_before(nn, &pl, (int)i);
        nn_value *y = &nn->values[op->out[0]];
        size_t bytes = (size_t)y->count * nn_value_elem_bytes(nn, op->out[0]);
        int until = pl.last[op->out[0]] < (int)i ? (int)i : pl.last[op->out[0]];
        status = take_slot(nn, &pl, bytes ? bytes : sizeof(float), op->out[0], until, &y->slot);
        op->workspace_slot = -1;
        if (status == CLEVAL_OK && op->workspace)
            status = take_slot(nn, &pl, op->workspace, -2 - (int)i, (int)i, &op->workspace_slot);
    }
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
    int r = root_of(nn, v);
    const nn_value *value = &nn->values[r];
    if (value->kind == NN_VALUE_CONST) return value->mem;
    return value->slot >= 0 ? nn->slots[value->slot].mem : NULL;
}

cl_mem nn_workspace_mem(cleval_nn *nn, const nn_op *op)
{
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
