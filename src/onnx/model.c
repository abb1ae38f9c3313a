/* ModelProto to cleval_onnx_model: header facts and opset, nodes (default domain only, no
 * subgraphs), initializers, graph inputs / outputs / value_info with their shapes. The protobuf
 * message is freed before returning; the model owns copies of everything it shows. */
#include "onnx_internal.h"

#include "name_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Repeated fields are bounded by the file size (2 GiB), so this only guards the uint32 counts
 * of the public structs. */
static cleval_status check_count(const onnx_source *src, size_t n, const char *what)
{
    if (n > UINT32_MAX)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: too many %s (%zu)", src->path, what, n);
    return CLEVAL_OK;
}

static bool is_default_domain(const char *domain)
{
    return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

static cleval_status copy_strings(const onnx_source *src, char *const *from, size_t n, char ***to,
                                  uint32_t *count)
{
    *to = calloc(n ? n : 1, sizeof **to);
    if (!*to) return cleval_onnx_nomem(src);
    *count = (uint32_t)n; /* set first: clear frees the copies made so far */
    for (size_t k = 0; k < n; k++)
        if (!((*to)[k] = cleval_onnx_strdup(from[k]))) return cleval_onnx_nomem(src);
    return CLEVAL_OK;
}

static void free_strings(char **list, uint32_t n)
{
    if (!list) return;
    for (uint32_t k = 0; k < n; k++)
        free(list[k]);
    free(list);
}

static void node_clear(cleval_onnx_node *node)
{
    free(node->name);
    free(node->op_type);
    free(node->domain);
    free_strings(node->inputs, node->n_inputs);
    free_strings(node->outputs, node->n_outputs);
    if (node->attrs)
        for (uint32_t k = 0; k < node->n_attrs; k++)
            cleval_onnx_attr_clear(&node->attrs[k]);
    free(node->attrs);
}

static void value_clear(cleval_onnx_value *v)
{
    free(v->name);
    free(v->dims);
    free_strings(v->dim_params, v->dim_params ? v->rank : 0);
}

static cleval_status convert_node(const onnx_source *src, uint32_t index, const Onnx__NodeProto *p,
                                  cleval_onnx_node *node)
{
    const char *op_type = p->op_type ? p->op_type : "";
    if (!*op_type)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: node %u ('%s') has no op_type", src->path, index,
                           p->name ? p->name : "");
    node->op_type = cleval_onnx_strdup(op_type);
    if (p->name && *p->name) {
        node->name = cleval_onnx_strdup(p->name);
    } else {
        size_t n = strlen(op_type) + 12;
        if ((node->name = malloc(n))) snprintf(node->name, n, "%s_%u", op_type, index);
    }
    node->domain = cleval_onnx_strdup(is_default_domain(p->domain) ? "" : p->domain);
    if (!node->op_type || !node->name || !node->domain) return cleval_onnx_nomem(src);
    if (*node->domain)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                           "%s: node '%s': operator '%s' of domain '%s' is not supported (only "
                           "the default ONNX domain is)",
                           src->path, node->name, op_type, node->domain);
    cleval_status status;
    if ((status = check_count(src, p->n_input, "node inputs")) != CLEVAL_OK ||
        (status = check_count(src, p->n_output, "node outputs")) != CLEVAL_OK ||
        (status = copy_strings(src, p->input, p->n_input, &node->inputs, &node->n_inputs)) !=
            CLEVAL_OK ||
        (status = copy_strings(src, p->output, p->n_output, &node->outputs, &node->n_outputs)) !=
            CLEVAL_OK)
        return status;
    return cleval_onnx_convert_attrs(src, p, node);
}

/* A printable name for a TypeProto that is not a tensor. */
static const char *type_kind(const Onnx__TypeProto *type)
{
    switch (type->value_case) {
    case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: return "a sequence";
    case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: return "a map";
    case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE: return "an optional";
    case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE: return "a sparse tensor";
    default: return "of an unknown kind";
    }
}

/* Whether a ValueInfoProto describes a tensor, or says nothing of its type. */
static bool is_tensor_value(const Onnx__ValueInfoProto *p)
{
    return !p->type || p->type->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET ||
           p->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
}

static cleval_status convert_value(const onnx_source *src, const char *role,
                                   const Onnx__ValueInfoProto *p, cleval_onnx_value *v)
{
    v->name = cleval_onnx_strdup(p->name);
    if (!v->name) return cleval_onnx_nomem(src);
    if (!is_tensor_value(p))
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s '%s' is %s, not a tensor", src->path,
                           role, v->name, type_kind(p->type));
    if (!p->type || p->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) return CLEVAL_OK;
    const Onnx__TypeProto__Tensor *tt = p->type->tensor_type;
    v->elem_type = tt->has_elem_type ? tt->elem_type : 0;
    if (!tt->shape) return CLEVAL_OK;
    const Onnx__TensorShapeProto *shape = tt->shape;
    if (shape->n_dim > CLEVAL_ONNX_MAX_RANK)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s '%s' has rank %zu, above %d", src->path,
                           role, v->name, shape->n_dim, CLEVAL_ONNX_MAX_RANK);
    v->has_shape = true;
    v->rank = (uint32_t)shape->n_dim;
    if (v->rank == 0) return CLEVAL_OK;
    v->dims = calloc(v->rank, sizeof *v->dims);
    v->dim_params = calloc(v->rank, sizeof *v->dim_params);
    if (!v->dims || !v->dim_params) return cleval_onnx_nomem(src);
    for (uint32_t k = 0; k < v->rank; k++) {
        const Onnx__TensorShapeProto__Dimension *d = shape->dim[k];
        v->dims[k] = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value >= 0) v->dims[k] = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && *d->dim_param) {
            if (!(v->dim_params[k] = cleval_onnx_strdup(d->dim_param)))
                return cleval_onnx_nomem(src);
        }
    }
    return CLEVAL_OK;
}

/* Converts the initializers, refusing a name given twice; `names` maps each name to its
 * index in m->initializers. */
static cleval_status convert_initializers(const onnx_source *src, Onnx__GraphProto *g,
                                          cleval_onnx_model *m, name_map *names)
{
    m->initializers = calloc(g->n_initializer ? g->n_initializer : 1, sizeof *m->initializers);
    if (!m->initializers || !name_map_init(names, g->n_initializer)) return cleval_onnx_nomem(src);
    for (size_t k = 0; k < g->n_initializer; k++) {
        m->n_initializers = (uint32_t)k + 1;
        Onnx__TensorProto *t = g->initializer[k];
        char label[320];
        snprintf(label, sizeof label, "initializer '%.256s'", t->name ? t->name : "");
        cleval_status status = cleval_onnx_take_tensor(src, label, t, &m->initializers[k]);
        if (status != CLEVAL_OK) return status;
        int32_t previous;
        if (!name_map_add(names, m->initializers[k].name, (int32_t)k, &previous))
            return cleval_onnx_nomem(src);
        if (previous >= 0)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: initializer '%s' is given twice", src->path,
                               m->initializers[k].name);
    }
    return CLEVAL_OK;
}

/* Converts graph inputs or outputs into *values, refusing a name listed twice. Names found in
 * `initializers` (when not NULL) are left out: older exporters list weights as inputs too.
 * `kept` (when not NULL) maps the names of the values converted to their index. */
static cleval_status convert_values(const onnx_source *src, const char *role,
                                    Onnx__ValueInfoProto *const *list, size_t n,
                                    const name_map *initializers, cleval_onnx_value **values,
                                    uint32_t *count, name_map *kept)
{
    name_map listed;
    *values = calloc(n ? n : 1, sizeof **values);
    if (!*values || (kept && !name_map_init(kept, n)) || !name_map_init(&listed, n))
        return cleval_onnx_nomem(src);
    cleval_status status = CLEVAL_OK;
    for (size_t k = 0; k < n && status == CLEVAL_OK; k++) {
        const char *name = list[k]->name ? list[k]->name : "";
        int32_t previous;
        if (!name_map_add(&listed, name, (int32_t)k, &previous)) {
            status = cleval_onnx_nomem(src);
        } else if (previous >= 0) {
            status =
                cleval_fail(CLEVAL_ERR_INPUT, "%s: %s '%s' is listed twice", src->path, role, name);
        } else if (!initializers || name_map_get(initializers, name) < 0) {
            uint32_t index = (*count)++;
            status = convert_value(src, role, list[k], &(*values)[index]);
            if (status == CLEVAL_OK && kept &&
                !name_map_add(kept, (*values)[index].name, (int32_t)index, NULL))
                status = cleval_onnx_nomem(src);
        }
    }
    name_map_free(&listed);
    return status;
}

/* One producer per value: a node output may not also be an initializer, a graph input or
 * another node's output (nor appear twice among a node's outputs). */
static cleval_status check_single_producers(const onnx_source *src, const cleval_onnx_model *m,
                                            const name_map *initializers, const name_map *inputs)
{
    name_map produced;
    if (!name_map_init(&produced, m->n_nodes)) return cleval_onnx_nomem(src);
    cleval_status status = CLEVAL_OK;
    for (uint32_t k = 0; k < m->n_nodes && status == CLEVAL_OK; k++) {
        const cleval_onnx_node *node = &m->nodes[k];
        for (uint32_t o = 0; o < node->n_outputs && status == CLEVAL_OK; o++) {
            const char *name = node->outputs[o];
            if (!*name) continue; /* an omitted optional output */
            int32_t previous;
            const char *other = NULL;
            if (name_map_get(initializers, name) >= 0)
                other = "an initializer";
            else if (name_map_get(inputs, name) >= 0)
                other = "a graph input";
            else if (!name_map_add(&produced, name, (int32_t)k, &previous))
                status = cleval_onnx_nomem(src);
            else if (previous >= 0)
                status = cleval_fail(CLEVAL_ERR_INPUT,
                                     "%s: node '%s' (%s): output '%s' is also an output of node "
                                     "'%s'",
                                     src->path, node->name, node->op_type, name,
                                     m->nodes[previous].name);
            if (other)
                status = cleval_fail(CLEVAL_ERR_INPUT, "%s: node '%s' (%s): output '%s' is also %s",
                                     src->path, node->name, node->op_type, name, other);
        }
    }
    name_map_free(&produced);
    return status;
}

static cleval_status convert_nodes(const onnx_source *src, const Onnx__GraphProto *g,
                                   cleval_onnx_model *m)
{
    m->nodes = calloc(g->n_node ? g->n_node : 1, sizeof *m->nodes);
    if (!m->nodes) return cleval_onnx_nomem(src);
    for (size_t k = 0; k < g->n_node; k++) {
        m->n_nodes = (uint32_t)k + 1; /* free() clears the node being converted */
        cleval_status status = convert_node(src, (uint32_t)k, g->node[k], &m->nodes[k]);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

static cleval_status convert_value_infos(const onnx_source *src, const Onnx__GraphProto *g,
                                         cleval_onnx_model *m)
{
    m->value_infos = calloc(g->n_value_info ? g->n_value_info : 1, sizeof *m->value_infos);
    if (!m->value_infos) return cleval_onnx_nomem(src);
    for (size_t k = 0; k < g->n_value_info; k++) {
        if (!is_tensor_value(g->value_info[k])) continue; /* only a shape hint: skip it */
        cleval_status status =
            convert_value(src, "value_info", g->value_info[k], &m->value_infos[m->n_value_infos++]);
        if (status != CLEVAL_OK) return status;
    }
    return CLEVAL_OK;
}

static cleval_status convert_graph(const onnx_source *src, Onnx__GraphProto *g,
                                   cleval_onnx_model *m)
{
    cleval_status status;
    if (g->n_sparse_initializer) {
        const Onnx__SparseTensorProto *sp = g->sparse_initializer[0];
        const char *name = sp->values && sp->values->name ? sp->values->name : "";
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: sparse initializer '%s' is not supported",
                           src->path, name);
    }
    if ((status = check_count(src, g->n_node, "nodes")) != CLEVAL_OK ||
        (status = check_count(src, g->n_initializer, "initializers")) != CLEVAL_OK ||
        (status = check_count(src, g->n_input, "graph inputs")) != CLEVAL_OK ||
        (status = check_count(src, g->n_output, "graph outputs")) != CLEVAL_OK ||
        (status = check_count(src, g->n_value_info, "value_info entries")) != CLEVAL_OK)
        return status;

    /* Nodes first: an unsupported operator is the most useful thing to report. Name lookups
     * go through maps, so that every step stays linear in the size of the graph. */
    name_map initializers = {0}, inputs = {0};
    if ((status = convert_nodes(src, g, m)) == CLEVAL_OK &&
        (status = convert_initializers(src, g, m, &initializers)) == CLEVAL_OK &&
        (status = convert_values(src, "graph input", g->input, g->n_input, &initializers,
                                 &m->inputs, &m->n_inputs, &inputs)) == CLEVAL_OK &&
        (status = convert_values(src, "graph output", g->output, g->n_output, NULL, &m->outputs,
                                 &m->n_outputs, NULL)) == CLEVAL_OK &&
        (status = check_single_producers(src, m, &initializers, &inputs)) == CLEVAL_OK)
        status = convert_value_infos(src, g, m);
    name_map_free(&initializers);
    name_map_free(&inputs);
    return status;
}

static cleval_status convert_model(const onnx_source *src, Onnx__ModelProto *p,
                                   cleval_onnx_model *m)
{
    if (!p->graph)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: not an ONNX model (no graph)", src->path);
    m->ir_version = p->has_ir_version ? p->ir_version : 0;
    /* Every writer sets it (IR version 1 was the first); without it nothing says how to read
     * the rest of the file. */
    if (m->ir_version <= 0)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: not an ONNX model (ir_version is missing or not positive)",
                           src->path);
    m->opset = 0;
    for (size_t k = 0; k < p->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = p->opset_import[k];
        if (is_default_domain(o->domain) && o->has_version && o->version > m->opset)
            m->opset = o->version;
    }
    if (m->opset <= 0) {
        /* IR versions 1 and 2 had no opset_import and meant opset 1. */
        if (m->ir_version >= 1 && m->ir_version < 3)
            m->opset = 1;
        else
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: not an ONNX model (no opset for the default domain; "
                               "truncated file?)",
                               src->path);
    }
    m->path = cleval_onnx_strdup(src->path);
    m->producer_name = cleval_onnx_strdup(p->producer_name);
    m->producer_version = cleval_onnx_strdup(p->producer_version);
    m->graph_name = cleval_onnx_strdup(p->graph->name);
    if (!m->path || !m->producer_name || !m->producer_version || !m->graph_name)
        return cleval_onnx_nomem(src);
    return convert_graph(src, p->graph, m);
}

cleval_status cleval_onnx_load(const char *path, cleval_onnx_model **out)
{
    if (!out) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_onnx_load: out is NULL");
    *out = NULL;
    if (!path) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_onnx_load: path is NULL");
    ProtobufCMessage *msg;
    onnx_source src;
    cleval_status status =
        cleval_onnx_unpack_file(path, &onnx__model_proto__descriptor, "an ONNX model", &msg, &src);
    if (status != CLEVAL_OK) return status;
    cleval_onnx_model *m = calloc(1, sizeof *m);
    status = m ? convert_model(&src, (Onnx__ModelProto *)msg, m) : cleval_onnx_nomem(&src);
    protobuf_c_message_free_unpacked(msg, NULL);
    free(src.dir);
    if (status != CLEVAL_OK) {
        cleval_onnx_free(m);
        return status;
    }
    *out = m;
    return CLEVAL_OK;
}

void cleval_onnx_free(cleval_onnx_model *m)
{
    if (!m) return;
    if (m->nodes)
        for (uint32_t k = 0; k < m->n_nodes; k++)
            node_clear(&m->nodes[k]);
    if (m->initializers)
        for (uint32_t k = 0; k < m->n_initializers; k++)
            cleval_onnx_tensor_clear(&m->initializers[k]);
    if (m->inputs)
        for (uint32_t k = 0; k < m->n_inputs; k++)
            value_clear(&m->inputs[k]);
    if (m->outputs)
        for (uint32_t k = 0; k < m->n_outputs; k++)
            value_clear(&m->outputs[k]);
    if (m->value_infos)
        for (uint32_t k = 0; k < m->n_value_infos; k++)
            value_clear(&m->value_infos[k]);
    free(m->nodes);
    free(m->initializers);
    free(m->inputs);
    free(m->outputs);
    free(m->value_infos);
    free(m->path);
    free(m->producer_name);
    free(m->producer_version);
    free(m->graph_name);
    free(m);
}

const cleval_onnx_tensor *cleval_onnx_find_initializer(const cleval_onnx_model *model,
                                                       const char *name)
{
    if (!model || !name || !*name) return NULL;
    for (uint32_t k = 0; k < model->n_initializers; k++)
        if (strcmp(model->initializers[k].name, name) == 0) return &model->initializers[k];
    return NULL;
}
