/* Node attributes: conversion from AttributeProto (subgraphs refused, exotic types kept by name
 * only), lookup by name, and typed getters that word a type mismatch for the op that asked. */
#include "onnx_internal.h"

#include "name_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cleval_onnx_attr_type_name(cleval_onnx_attr_type type)
{
    switch (type) {
    case CLEVAL_ONNX_ATTR_UNSUPPORTED: return "unsupported";
    case CLEVAL_ONNX_ATTR_FLOAT: return "FLOAT";
    case CLEVAL_ONNX_ATTR_INT: return "INT";
    case CLEVAL_ONNX_ATTR_STRING: return "STRING";
    case CLEVAL_ONNX_ATTR_TENSOR: return "TENSOR";
    case CLEVAL_ONNX_ATTR_FLOATS: return "FLOATS";
    case CLEVAL_ONNX_ATTR_INTS: return "INTS";
    case CLEVAL_ONNX_ATTR_STRINGS: return "STRINGS";
    }
    return "unsupported";
}

void cleval_onnx_attr_clear(cleval_onnx_attr *a)
{
    free(a->name);
    free(a->s);
    if (a->t) cleval_onnx_tensor_free(a->t);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (uint32_t k = 0; k < a->count; k++)
            free(a->strings[k]);
    free(a->strings);
    memset(a, 0, sizeof *a);
}

/* Lists are copied with at least one element allocated, so their pointer is never NULL. */
static void *copy_array(const void *from, size_t n, size_t size)
{
    void *to = malloc(n ? n * size : 1);
    if (to && n) memcpy(to, from, n * size);
    return to;
}

static cleval_status convert_attr(const onnx_source *src, const cleval_onnx_node *node,
                                  const Onnx__AttributeProto *p, cleval_onnx_attr *a)
{
    a->name = cleval_onnx_strdup(p->name);
    if (!a->name) return cleval_onnx_nomem(src);
    if (!a->name[0])
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: node '%s' (%s) has an attribute without a name",
                           src->path, node->name, node->op_type);
    /* Subgraphs are looked for by content as well as by type: a file may set one without
     * declaring it, and nothing below would look inside. */
    int type = p->has_type ? (int)p->type : 0;
    if (type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH ||
        type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS || p->g || p->n_graphs)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: node '%s' (%s): subgraph attribute '%s' is not supported",
                           src->path, node->name, node->op_type, a->name);
    /* A reference to a function's attribute is only meaningful inside a function body. */
    if (p->ref_attr_name && p->ref_attr_name[0]) type = 0;
    if (p->n_floats > UINT32_MAX || p->n_ints > UINT32_MAX || p->n_strings > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: node '%s': attribute '%s' is too long",
                           src->path, node->name, a->name);

    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = CLEVAL_ONNX_ATTR_FLOAT;
        a->f = p->f;
        return CLEVAL_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = CLEVAL_ONNX_ATTR_INT;
        a->i = p->i;
        return CLEVAL_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = CLEVAL_ONNX_ATTR_STRING;
        a->s = cleval_onnx_bytesdup(&p->s);
        return a->s ? CLEVAL_OK : cleval_onnx_nomem(src);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        a->type = CLEVAL_ONNX_ATTR_TENSOR;
        if (!p->t)
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: node '%s' (%s): TENSOR attribute '%s' holds no tensor",
                               src->path, node->name, node->op_type, a->name);
        a->t = calloc(1, sizeof *a->t);
        if (!a->t) return cleval_onnx_nomem(src);
        char label[600];
        snprintf(label, sizeof label, "node '%.256s' attribute '%.256s'", node->name, a->name);
        return cleval_onnx_convert_tensor(src, label, p->t, a->t);
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = CLEVAL_ONNX_ATTR_FLOATS;
        a->count = (uint32_t)p->n_floats;
        a->floats = copy_array(p->floats, p->n_floats, sizeof *a->floats);
        return a->floats ? CLEVAL_OK : cleval_onnx_nomem(src);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = CLEVAL_ONNX_ATTR_INTS;
        a->count = (uint32_t)p->n_ints;
        a->ints = copy_array(p->ints, p->n_ints, sizeof *a->ints);
        return a->ints ? CLEVAL_OK : cleval_onnx_nomem(src);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->type = CLEVAL_ONNX_ATTR_STRINGS;
        a->strings = calloc(p->n_strings ? p->n_strings : 1, sizeof *a->strings);
        if (!a->strings) return cleval_onnx_nomem(src);
        a->count = (uint32_t)p->n_strings; /* set first: clear() frees what was copied */
        for (size_t k = 0; k < p->n_strings; k++)
            if (!(a->strings[k] = cleval_onnx_bytesdup(&p->strings[k])))
                return cleval_onnx_nomem(src);
        return CLEVAL_OK;
    default: a->type = CLEVAL_ONNX_ATTR_UNSUPPORTED; return CLEVAL_OK;
    }
}

/* Records attribute k's name, refusing one the node already has: which of the two an op would
 * read is up to the reader, so such a file means different things to different engines. */
static cleval_status add_attr_name(const onnx_source *src, const cleval_onnx_node *node, uint32_t k,
                                   name_map *names)
{
    int32_t previous;
    if (!name_map_add(names, node->attrs[k].name, (int32_t)k, &previous))
        return cleval_onnx_nomem(src);
    if (previous >= 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: node '%s' (%s): attribute '%s' is given twice",
                           src->path, node->name, node->op_type, node->attrs[k].name);
    return CLEVAL_OK;
}

cleval_status cleval_onnx_convert_attrs(const onnx_source *src, const Onnx__NodeProto *p,
                                        cleval_onnx_node *node)
{
    if (p->n_attribute > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: node '%s' has too many attributes",
                           src->path, node->name);
    node->attrs = calloc(p->n_attribute ? p->n_attribute : 1, sizeof *node->attrs);
    name_map names;
    if (!node->attrs || !name_map_init(&names, p->n_attribute)) return cleval_onnx_nomem(src);
    cleval_status status = CLEVAL_OK;
    for (size_t k = 0; k < p->n_attribute && status == CLEVAL_OK; k++) {
        node->n_attrs = (uint32_t)k + 1; /* the model's free() clears what was started */
        status = convert_attr(src, node, p->attribute[k], &node->attrs[k]);
        if (status == CLEVAL_OK) status = add_attr_name(src, node, (uint32_t)k, &names);
    }
    name_map_free(&names);
    return status;
}

const cleval_onnx_attr *cleval_onnx_node_attr(const cleval_onnx_node *node, const char *name)
{
    if (!node || !name) return NULL;
    for (uint32_t k = 0; k < node->n_attrs; k++)
        if (strcmp(node->attrs[k].name, name) == 0) return &node->attrs[k];
    return NULL;
}

/* The attribute, or NULL when absent; fails when present with another type. */
static cleval_status typed_attr(const cleval_onnx_node *node, const char *name,
                                cleval_onnx_attr_type want, const cleval_onnx_attr **out)
{
    *out = cleval_onnx_node_attr(node, name);
    if (*out && (*out)->type != want) {
        cleval_onnx_attr_type have = (*out)->type;
        *out = NULL;
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "node '%s' (%s): attribute '%s' is %s, expected %s", node->name,
                           node->op_type, name, cleval_onnx_attr_type_name(have),
                           cleval_onnx_attr_type_name(want));
    }
    return CLEVAL_OK;
}

cleval_status cleval_onnx_attr_int(const cleval_onnx_node *node, const char *name, int64_t fallback,
                                   int64_t *value)
{
    const cleval_onnx_attr *a;
    cleval_status status = typed_attr(node, name, CLEVAL_ONNX_ATTR_INT, &a);
    *value = a ? a->i : fallback;
    return status;
}

cleval_status cleval_onnx_attr_float(const cleval_onnx_node *node, const char *name, float fallback,
                                     float *value)
{
    const cleval_onnx_attr *a;
    cleval_status status = typed_attr(node, name, CLEVAL_ONNX_ATTR_FLOAT, &a);
    *value = a ? a->f : fallback;
    return status;
}

cleval_status cleval_onnx_attr_string(const cleval_onnx_node *node, const char *name,
                                      const char *fallback, const char **value)
{
    const cleval_onnx_attr *a;
    cleval_status status = typed_attr(node, name, CLEVAL_ONNX_ATTR_STRING, &a);
    *value = a ? a->s : fallback;
    return status;
}

cleval_status cleval_onnx_attr_ints(const cleval_onnx_node *node, const char *name,
                                    const int64_t **values, uint32_t *count)
{
    const cleval_onnx_attr *a;
    cleval_status status = typed_attr(node, name, CLEVAL_ONNX_ATTR_INTS, &a);
    *values = a ? a->ints : NULL;
    *count = a ? a->count : 0;
    return status;
}

cleval_status cleval_onnx_attr_floats(const cleval_onnx_node *node, const char *name,
                                      const float **values, uint32_t *count)
{
    const cleval_onnx_attr *a;
    cleval_status status = typed_attr(node, name, CLEVAL_ONNX_ATTR_FLOATS, &a);
    *values = a ? a->floats : NULL;
    *count = a ? a->count : 0;
    return status;
}
