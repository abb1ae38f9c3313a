/* The ONNX reader: loads an ONNX model file (or a serialized TensorProto) into a plain, fully
 * owned description of its graph: nodes in file order with their attributes, weights converted
 * to float32 or int64, graph inputs and outputs with their shapes, and the opset. It knows
 * nothing of OpenCL or of what an operator computes; the nn module decides what it supports. */
#ifndef CLEVAL_ONNX_H
#define CLEVAL_ONNX_H

#include <stdbool.h>
#include <stdint.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as ONNX's TensorProto.DataType so a file's value is stored as is.
 * A tensor may carry a number not listed here (a newer type); it then holds no data. */
typedef enum cleval_onnx_dtype {
    CLEVAL_ONNX_UNDEFINED = 0,
    CLEVAL_ONNX_FLOAT = 1,
    CLEVAL_ONNX_UINT8 = 2,
    CLEVAL_ONNX_INT8 = 3,
    CLEVAL_ONNX_UINT16 = 4,
    CLEVAL_ONNX_INT16 = 5,
    CLEVAL_ONNX_INT32 = 6,
    CLEVAL_ONNX_INT64 = 7,
    CLEVAL_ONNX_STRING = 8,
    CLEVAL_ONNX_BOOL = 9,
    CLEVAL_ONNX_FLOAT16 = 10,
    CLEVAL_ONNX_DOUBLE = 11,
    CLEVAL_ONNX_UINT32 = 12,
    CLEVAL_ONNX_UINT64 = 13,
    CLEVAL_ONNX_COMPLEX64 = 14,
    CLEVAL_ONNX_COMPLEX128 = 15,
    CLEVAL_ONNX_BFLOAT16 = 16,
} cleval_onnx_dtype;

/* ONNX's name of an element type ("float", "int64", "float16"); "unknown" for other numbers. */
const char *cleval_onnx_dtype_name(int32_t dtype);

/* Where a tensor's values are, after conversion from the file's storage. */
typedef enum cleval_onnx_storage {
    CLEVAL_ONNX_DATA_NONE = 0, /* no values: a type the reader does not convert (string,
                                * complex, 8-bit and 4-bit floats...) */
    CLEVAL_ONNX_DATA_F32 = 1,  /* `f32`: FLOAT, DOUBLE (rounded), FLOAT16, BFLOAT16 */
    CLEVAL_ONNX_DATA_I64 = 2,  /* `i64`: INT64, INT32, INT16, INT8, UINT32, UINT16, UINT8, BOOL
                                * (0/1), and UINT64 values up to INT64_MAX */
} cleval_onnx_storage;

/* A limit far above any real tensor, so that a hostile file cannot ask for absurd shapes. */
enum { CLEVAL_ONNX_MAX_RANK = 32 };

/* A tensor with its values in host memory, in row-major (C) order. `dims` has `rank` entries,
 * each >= 0 (NULL when rank is 0, a scalar); `count` is their product (1 for a scalar) and has
 * been checked against overflow and against the number of values the file holds, which must be
 * exactly `count`. Exactly one of `f32` and `i64` is non-NULL when `storage` says so (even
 * when count is 0), the other is NULL. `name` is never NULL ("" when the file gives none). */
typedef struct cleval_onnx_tensor {
    char *name;
    int32_t dtype; /* a cleval_onnx_dtype, as stored in the file */
    uint32_t rank;
    int64_t *dims;
    uint64_t count;
    cleval_onnx_storage storage;
    float *f32;
    int64_t *i64;
} cleval_onnx_tensor;

/* Attribute types, numbered as ONNX's AttributeProto.AttributeType. Attributes of any other
 * type (TENSORS, SPARSE_TENSOR, TYPE_PROTO and their lists) are kept, by name, as
 * CLEVAL_ONNX_ATTR_UNSUPPORTED so that an op which needs one can refuse naming it. GRAPH and
 * GRAPHS (subgraphs of If, Loop, Scan) never appear: the loader refuses such models. */
typedef enum cleval_onnx_attr_type {
    CLEVAL_ONNX_ATTR_UNSUPPORTED = 0,
    CLEVAL_ONNX_ATTR_FLOAT = 1,
    CLEVAL_ONNX_ATTR_INT = 2,
    CLEVAL_ONNX_ATTR_STRING = 3,
    CLEVAL_ONNX_ATTR_TENSOR = 4,
    CLEVAL_ONNX_ATTR_FLOATS = 6,
    CLEVAL_ONNX_ATTR_INTS = 7,
    CLEVAL_ONNX_ATTR_STRINGS = 8,
} cleval_onnx_attr_type;

/* ONNX's name of an attribute type ("INT", "FLOATS"...; "unsupported" for the others). */
const char *cleval_onnx_attr_type_name(cleval_onnx_attr_type type);

/* One node attribute. Only the member(s) of its `type` are meaningful; the others are zero or
 * NULL. `s` and every `strings[k]` are NUL-terminated copies (bytes after an embedded NUL, legal
 * in ONNX but never used by standard ops, are dropped). List members hold `count` entries and
 * are never NULL for a list type, even when count is 0. */
typedef struct cleval_onnx_attr {
    char *name;
    cleval_onnx_attr_type type;
    float f;               /* FLOAT */
    int64_t i;             /* INT */
    char *s;               /* STRING */
    cleval_onnx_tensor *t; /* TENSOR (Constant's `value`) */
    uint32_t count;        /* FLOATS, INTS, STRINGS */
    float *floats;         /* FLOATS */
    int64_t *ints;         /* INTS */
    char **strings;        /* STRINGS */
} cleval_onnx_attr;

/* One node, as in the file. `name` is never NULL nor empty: a node without a name gets
 * "<op_type>_<index>" (index in file order, from 0). `domain` is "" for the default ONNX domain
 * ("ai.onnx" is normalised to ""), the only one the loader accepts. An omitted optional input or
 * output is "" at its position, as ONNX writes it. Every array holds its count of entries. */
typedef struct cleval_onnx_node {
    char *name;
    char *op_type;
    char *domain;
    uint32_t n_inputs;
    char **inputs;
    uint32_t n_outputs;
    char **outputs;
    uint32_t n_attrs;
    cleval_onnx_attr *attrs;
} cleval_onnx_node;

/* A graph input, output or value_info entry: a tensor's name, element type and shape. A dim of
 * -1 is dynamic (a dim_param such as "batch", an unnamed dim, or a negative value in the file);
 * `dim_params[k]` is then the symbolic name or NULL when unnamed, and NULL for a fixed dim.
 * `has_shape` is false when the file gives no shape (rank unknown; rank is 0 and the arrays are
 * NULL); a declared scalar has has_shape true and rank 0. `elem_type` is 0 when not given. */
typedef struct cleval_onnx_value {
    char *name;
    int32_t elem_type; /* a cleval_onnx_dtype */
    bool has_shape;
    uint32_t rank;
    int64_t *dims;
    char **dim_params;
} cleval_onnx_value;

/* A loaded model. Every pointer is owned by the model and lives until cleval_onnx_free();
 * strings are never NULL ("" when the file has none). Guarantees that hold after a successful
 * load: ir_version >= 1; every node is in the default domain and has no subgraph; no node has
 * two attributes of one name; every initializer's data has been read and checked against its
 * dims; initializer names are unique, and so are the names of the graph inputs and of the
 * graph outputs; every value has at most one producer (a node output is neither an
 * initializer, a graph input nor another node output); `inputs` lists the graph inputs that
 * are not initializers (older exporters list weights as inputs too), each a tensor; `outputs`
 * are all tensors. Nothing is checked about op semantics, attribute values or the order of the
 * nodes. Loading takes time linear in the size of the file. */
typedef struct cleval_onnx_model {
    char *path; /* the path given to cleval_onnx_load() */
    int64_t ir_version;
    /* The default domain's opset version (1 for IR versions 1 and 2, before opset_import). */
    int64_t opset;
    char *producer_name;
    char *producer_version;
    char *graph_name;
    /* Nodes in file order, which ONNX requires to be a topological order (not checked). */
    uint32_t n_nodes;
    cleval_onnx_node *nodes;
    uint32_t n_initializers;
    cleval_onnx_tensor *initializers;
    uint32_t n_inputs;
    cleval_onnx_value *inputs;
    uint32_t n_outputs;
    cleval_onnx_value *outputs;
    /* Shapes of intermediate values, when the file records them (tensor-typed entries only). */
    uint32_t n_value_infos;
    cleval_onnx_value *value_infos;
} cleval_onnx_model;

/* Reads the ONNX model at `path`. On success *out is a model to release with cleval_onnx_free();
 * on failure *out is NULL, nothing is leaked, and cleval_last_error() holds one line that starts
 * with `path`. Fails with
 *   CLEVAL_ERR_INPUT       when the file is missing or unreadable, is not an ONNX model (not a
 *                          protobuf ModelProto, truncated, no graph, no ir_version or one
 *                          below 1, no opset for the default domain, nesting deeper than 100
 *                          messages), or holds invalid data (a node without op_type, an
 *                          attribute given twice on one node, an initializer given twice, a
 *                          graph input or output listed twice, a value with two producers,
 *                          negative dims, a tensor whose data does not match its dims, an
 *                          external-data file that is missing, too short, or outside the
 *                          model's folder);
 *   CLEVAL_ERR_UNSUPPORTED when it is valid ONNX this engine does not handle: a node outside the
 *                          default domain, a subgraph (If, Loop, Scan), a sparse initializer, a
 *                          graph input or output that is not a tensor, a rank above
 *                          CLEVAL_ONNX_MAX_RANK; the message names the node, op or tensor;
 *   CLEVAL_ERR_NOMEM       when memory runs out.
 * Initializers stored as external data (data_location EXTERNAL, keys location / offset /
 * length) are read from `location`, relative to the folder that holds `path`. */
cleval_status cleval_onnx_load(const char *path, cleval_onnx_model **out);

/* Releases a model and everything it owns. NULL is a no-op. */
void cleval_onnx_free(cleval_onnx_model *model);

/* The initializer called `name`, or NULL when there is none (also for NULL or ""). Linear in
 * the number of initializers. */
const cleval_onnx_tensor *cleval_onnx_find_initializer(const cleval_onnx_model *model,
                                                       const char *name);

/* The attribute called `name` of `node`, or NULL when the node has none. */
const cleval_onnx_attr *cleval_onnx_node_attr(const cleval_onnx_node *node, const char *name);

/* Typed attribute getters for op implementations. Each stores the attribute's value, or
 * `fallback` when the node has no such attribute, and returns CLEVAL_OK; when the attribute
 * exists with another type it fails with CLEVAL_ERR_UNSUPPORTED and a message naming the node,
 * its op, the attribute and both types. For the list getters *values points into the model
 * (NULL with *count 0 when absent). Types are matched strictly, as ONNX requires: an INT
 * attribute does not answer the float getter. */
cleval_status cleval_onnx_attr_int(const cleval_onnx_node *node, const char *name, int64_t fallback,
                                   int64_t *value);
cleval_status cleval_onnx_attr_float(const cleval_onnx_node *node, const char *name, float fallback,
                                     float *value);
cleval_status cleval_onnx_attr_string(const cleval_onnx_node *node, const char *name,
                                      const char *fallback, const char **value);
cleval_status cleval_onnx_attr_ints(const cleval_onnx_node *node, const char *name,
                                    const int64_t **values, uint32_t *count);
cleval_status cleval_onnx_attr_floats(const cleval_onnx_node *node, const char *name,
                                      const float **values, uint32_t *count);

/* Reads one serialized TensorProto, as ONNX's conformance suite stores test inputs and outputs
 * (test_data_set_0/input_0.pb). Same data rules, errors and external-data handling as the
 * initializers of cleval_onnx_load(); the message starts with `path`. Release the tensor with
 * cleval_onnx_tensor_free(). */
cleval_status cleval_onnx_load_tensor(const char *path, cleval_onnx_tensor **out);

/* Releases a tensor from cleval_onnx_load_tensor(). NULL is a no-op. Never call it on a tensor
 * that belongs to a model. */
void cleval_onnx_tensor_free(cleval_onnx_tensor *tensor);

#ifdef __cplusplus
}
#endif

#endif
