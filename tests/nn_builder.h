/* Builds cleval_onnx_model graphs in memory for the nn tests: one op (or a few) with chosen
 * attributes, initializers and inputs, without going through ONNX files. Everything is
 * malloc'd; builder_free releases it. Failing allocations abort the test. */
#ifndef CLEVAL_NN_BUILDER_H
#define CLEVAL_NN_BUILDER_H

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/onnx.h"

static inline void *builder_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) abort();
    return p;
}

static inline char *builder_strdup(const char *s)
{
    char *c = builder_alloc(strlen(s) + 1);
    strcpy(c, s);
    return c;
}

static inline cleval_onnx_model *builder_new(int64_t opset)
{
    cleval_onnx_model *m = builder_alloc(sizeof *m);
    m->path = builder_strdup("test.onnx");
    m->producer_name = builder_strdup("test");
    m->producer_version = builder_strdup("");
    m->graph_name = builder_strdup("g");
    m->ir_version = 8;
    m->opset = opset;
    return m;
}

#define BUILDER_GROW(array, count)                                                                 \
    do {                                                                                           \
        void *grown_ = realloc((array), ((count) + 1) * sizeof *(array));                          \
        if (!grown_) abort();                                                                      \
        (array) = grown_;                                                                          \
        memset(&(array)[(count)], 0, sizeof *(array));                                             \
    } while (0)

/* A graph input or output with dims (-1 = dynamic). rank UINT32_MAX: no shape. */
static inline void builder_value(cleval_onnx_value **list, uint32_t *count, const char *name,
                                 uint32_t rank, const int64_t *dims)
{
    BUILDER_GROW(*list, *count);
    cleval_onnx_value *v = &(*list)[(*count)++];
    v->name = builder_strdup(name);
    v->elem_type = CLEVAL_ONNX_FLOAT;
    if (rank == UINT32_MAX) return;
    v->has_shape = true;
    v->rank = rank;
    v->dims = builder_alloc(rank * sizeof *v->dims);
    v->dim_params = builder_alloc(rank * sizeof *v->dim_params);
    for (uint32_t i = 0; i < rank; i++)
        v->dims[i] = dims[i];
}

static inline void builder_input(cleval_onnx_model *m, const char *name, uint32_t rank,
                                 const int64_t *dims)
{
    builder_value(&m->inputs, &m->n_inputs, name, rank, dims);
}

static inline void builder_output(cleval_onnx_model *m, const char *name)
{
    builder_value(&m->outputs, &m->n_outputs, name, UINT32_MAX, NULL);
}

static inline void builder_tensor(cleval_onnx_tensor *t, const char *name, uint32_t rank,
                                  const int64_t *dims, const float *f32, const int64_t *i64)
{
    t->name = builder_strdup(name);
    t->rank = rank;
    t->dims = rank ? builder_alloc(rank * sizeof *t->dims) : NULL;
    t->count = 1;
    for (uint32_t i = 0; i < rank; i++) {
        t->dims[i] = dims[i];
        t->count *= (uint64_t)dims[i];
    }
    if (i64) {
        t->dtype = CLEVAL_ONNX_INT64;
        t->storage = CLEVAL_ONNX_DATA_I64;
        t->i64 = builder_alloc(t->count * sizeof *t->i64);
        memcpy(t->i64, i64, t->count * sizeof *t->i64);
    } else if (f32) {
        t->dtype = CLEVAL_ONNX_FLOAT;
        t->storage = CLEVAL_ONNX_DATA_F32;
        t->f32 = builder_alloc(t->count * sizeof *t->f32);
        memcpy(t->f32, f32, t->count * sizeof *t->f32);
    }
}

static inline void builder_init(cleval_onnx_model *m, const char *name, uint32_t rank,
                                const int64_t *dims, const float *data)
{
    BUILDER_GROW(m->initializers, m->n_initializers);
    builder_tensor(&m->initializers[m->n_initializers++], name, rank, dims, data, NULL);
}

static inline void builder_init_i64(cleval_onnx_model *m, const char *name, uint32_t rank,
                                    const int64_t *dims, const int64_t *data)
{
    BUILDER_GROW(m->initializers, m->n_initializers);
    builder_tensor(&m->initializers[m->n_initializers++], name, rank, dims, NULL, data);
}

/* A node; `inputs` and `outputs` are comma-separated names ("" entries allowed: "x,,b"). */
static inline cleval_onnx_node *builder_node(cleval_onnx_model *m, const char *op_type,
                                             const char *name, const char *inputs,
                                             const char *outputs)
{
    BUILDER_GROW(m->nodes, m->n_nodes);
    cleval_onnx_node *n = &m->nodes[m->n_nodes++];
    n->name = builder_strdup(name);
    n->op_type = builder_strdup(op_type);
    n->domain = builder_strdup("");
    const char *lists[2] = {inputs, outputs};
    for (int l = 0; l < 2; l++) {
        char ***names = l ? &n->outputs : &n->inputs;
        uint32_t *count = l ? &n->n_outputs : &n->n_inputs;
        const char *s = lists[l];
        if (!*s) continue;
        for (;;) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            BUILDER_GROW(*names, *count);
            (*names)[*count] = builder_alloc(len + 1);
            memcpy((*names)[*count], s, len);
            (*count)++;
            if (!comma) break;
            s = comma + 1;
        }
    }
    return n;
}

static inline cleval_onnx_attr *builder_attr(cleval_onnx_node *n, const char *name,
                                             cleval_onnx_attr_type type)
{
    BUILDER_GROW(n->attrs, n->n_attrs);
    cleval_onnx_attr *a = &n->attrs[n->n_attrs++];
    a->name = builder_strdup(name);
    a->type = type;
    return a;
}

static inline void attr_int(cleval_onnx_node *n, const char *name, int64_t v)
{
    builder_attr(n, name, CLEVAL_ONNX_ATTR_INT)->i = v;
}

static inline void attr_float(cleval_onnx_node *n, const char *name, float v)
{
    builder_attr(n, name, CLEVAL_ONNX_ATTR_FLOAT)->f = v;
}

static inline void attr_string(cleval_onnx_node *n, const char *name, const char *v)
{
    builder_attr(n, name, CLEVAL_ONNX_ATTR_STRING)->s = builder_strdup(v);
}

static inline void attr_ints(cleval_onnx_node *n, const char *name, uint32_t count,
                             const int64_t *v)
{
    cleval_onnx_attr *a = builder_attr(n, name, CLEVAL_ONNX_ATTR_INTS);
    a->count = count;
    a->ints = builder_alloc(count * sizeof *a->ints);
    memcpy(a->ints, v, count * sizeof *v);
}

/* A Constant node holding a float tensor. */
static inline void builder_constant(cleval_onnx_model *m, const char *output, uint32_t rank,
                                    const int64_t *dims, const float *f32, const int64_t *i64)
{
    char name[128];
    snprintf(name, sizeof name, "const_%s", output);
    cleval_onnx_node *n = builder_node(m, "Constant", name, "", output);
    cleval_onnx_attr *a = builder_attr(n, "value", CLEVAL_ONNX_ATTR_TENSOR);
    a->t = builder_alloc(sizeof *a->t);
    builder_tensor(a->t, output, rank, dims, f32, i64);
}

static inline void builder_free_tensor(cleval_onnx_tensor *t)
{
    free(t->name);
    free(t->dims);
    free(t->f32);
    free(t->i64);
}

static inline void builder_free_value(cleval_onnx_value *v)
{
    free(v->name);
    free(v->dims);
    free(v->dim_params);
}

static inline void builder_free(cleval_onnx_model *m)
{
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        cleval_onnx_node *n = &m->nodes[i];
        for (uint32_t j = 0; j < n->n_inputs; j++)
            free(n->inputs[j]);
        for (uint32_t j = 0; j < n->n_outputs; j++)
            free(n->outputs[j]);
        for (uint32_t j = 0; j < n->n_attrs; j++) {
            cleval_onnx_attr *a = &n->attrs[j];
            free(a->name);
            free(a->s);
            free(a->ints);
            free(a->floats);
            if (a->t) {
                builder_free_tensor(a->t);
                free(a->t);
            }
        }
        free(n->inputs);
        free(n->outputs);
        free(n->attrs);
        free(n->name);
        free(n->op_type);
        free(n->domain);
    }
    for (uint32_t i = 0; i < m->n_initializers; i++)
        builder_free_tensor(&m->initializers[i]);
    for (uint32_t i = 0; i < m->n_inputs; i++)
        builder_free_value(&m->inputs[i]);
    for (uint32_t i = 0; i < m->n_outputs; i++)
        builder_free_value(&m->outputs[i]);
    free(m->nodes);
    free(m->initializers);
    free(m->inputs);
    free(m->outputs);
    free(m->path);
    free(m->producer_name);
    free(m->producer_version);
    free(m->graph_name);
    free(m);
}

#endif
