/* Writes ONNX model files byte by byte for the tests: a growing protobuf buffer with the few
 * wire types ONNX uses, and helpers for the messages the tests build (ModelProto, GraphProto,
 * NodeProto, AttributeProto, TensorProto, ValueInfoProto). Field numbers are onnx.proto's.
 * Nothing is checked: the point is to write the odd files a real exporter never would.
 * Failing allocations abort the test. */
#ifndef CLEVAL_ONNX_WRITER_H
#define CLEVAL_ONNX_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pb_buf {
    uint8_t *data;
    size_t len, cap;
} pb_buf;

static inline void pb_put(pb_buf *b, const void *bytes, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) abort();
        b->data = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static inline void pb_free(pb_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static inline void pb_varint(pb_buf *b, uint64_t v)
{
    uint8_t bytes[10];
    size_t n = 0;
    do {
        bytes[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, bytes, n);
}

enum { PB_VARINT = 0, PB_LEN = 2, PB_FIXED32 = 5 };

static inline void pb_tag(pb_buf *b, uint32_t field, uint32_t wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static inline void pb_int(pb_buf *b, uint32_t field, int64_t v)
{
    pb_tag(b, field, PB_VARINT);
    pb_varint(b, (uint64_t)v);
}

static inline void pb_float(pb_buf *b, uint32_t field, float v)
{
    pb_tag(b, field, PB_FIXED32);
    pb_put(b, &v, sizeof v); /* little-endian hosts only, as the engine itself */
}

static inline void pb_bytes(pb_buf *b, uint32_t field, const void *data, size_t n)
{
    pb_tag(b, field, PB_LEN);
    pb_varint(b, n);
    pb_put(b, data, n);
}

static inline void pb_string(pb_buf *b, uint32_t field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

/* Appends `inner` as a nested message and frees it. */
static inline void pb_message(pb_buf *b, uint32_t field, pb_buf *inner)
{
    pb_bytes(b, field, inner->data, inner->len);
    pb_free(inner);
}

/* ---- ONNX messages ---- */

/* AttributeProto of type INT (name 1, i 3, type 20). */
static inline void onnx_attr_int(pb_buf *node, const char *name, int64_t v)
{
    pb_buf a = {0};
    pb_string(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, 2);
    pb_message(node, 5, &a);
}

/* AttributeProto of type FLOAT (f 2). */
static inline void onnx_attr_float(pb_buf *node, const char *name, float v)
{
    pb_buf a = {0};
    pb_string(&a, 1, name);
    pb_float(&a, 2, v);
    pb_int(&a, 20, 1);
    pb_message(node, 5, &a);
}

/* A NodeProto (input 1, output 2, name 3, op_type 4) without attributes; inputs and outputs
 * are comma-separated ("" for none). Add attributes with onnx_attr_*(node, ...), then append it
 * with onnx_node_end(). */
static inline pb_buf onnx_node(const char *op_type, const char *name, const char *inputs,
                               const char *outputs)
{
    pb_buf n = {0};
    const char *lists[2] = {inputs, outputs};
    for (uint32_t l = 0; l < 2; l++) {
        const char *s = lists[l];
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            pb_bytes(&n, 1 + l, s, len);
            if (!comma) break;
            s = comma + 1;
        }
    }
    if (name) pb_string(&n, 3, name);
    pb_string(&n, 4, op_type);
    return n;
}

static inline void onnx_node_end(pb_buf *graph, pb_buf *node)
{
    pb_message(graph, 1, node); /* GraphProto.node */
}

/* A float initializer (GraphProto.initializer 5: TensorProto dims 1, data_type 2, float_data 4
 * packed, name 8). */
static inline void onnx_initializer(pb_buf *graph, const char *name, uint32_t rank,
                                    const int64_t *dims, const float *values)
{
    pb_buf t = {0};
    uint64_t count = 1;
    for (uint32_t i = 0; i < rank; i++) {
        pb_int(&t, 1, dims[i]);
        count *= (uint64_t)dims[i];
    }
    pb_int(&t, 2, 1); /* FLOAT */
    pb_bytes(&t, 4, values, count * sizeof *values);
    pb_string(&t, 8, name);
    pb_message(graph, 5, &t);
}

/* A float tensor ValueInfoProto (name 1, type 2 > tensor_type 1 > elem_type 1, shape 2 > dim 1
 * > dim_value 1 or dim_param 2; a dim < 0 is written as dim_param "N") under `field` (input 11,
 * output 12). */
static inline void onnx_value(pb_buf *graph, uint32_t field, const char *name, uint32_t rank,
                              const int64_t *dims)
{
    pb_buf shape = {0};
    for (uint32_t i = 0; i < rank; i++) {
        pb_buf d = {0};
        if (dims[i] < 0)
            pb_string(&d, 2, "N");
        else
            pb_int(&d, 1, dims[i]);
        pb_message(&shape, 1, &d);
    }
    pb_buf tensor = {0};
    pb_int(&tensor, 1, 1); /* FLOAT */
    pb_message(&tensor, 2, &shape);
    pb_buf type = {0};
    pb_message(&type, 1, &tensor);
    pb_buf v = {0};
    pb_string(&v, 1, name);
    pb_message(&v, 2, &type);
    pb_message(graph, field, &v);
}

static inline void onnx_input(pb_buf *graph, const char *name, uint32_t rank, const int64_t *dims)
{
    onnx_value(graph, 11, name, rank, dims);
}

static inline void onnx_output(pb_buf *graph, const char *name, uint32_t rank, const int64_t *dims)
{
    onnx_value(graph, 12, name, rank, dims);
}

/* Writes a ModelProto (ir_version 1, opset_import 8 > version 2, producer_name 2, graph 7) to
 * `path` and frees `graph`. A negative ir_version leaves the field out. */
static inline void onnx_write_model(const char *path, int64_t ir_version, int64_t opset,
                                    pb_buf *graph)
{
    pb_buf m = {0};
    if (ir_version >= 0) pb_int(&m, 1, ir_version);
    pb_string(&m, 2, "cleval-tests");
    pb_message(&m, 7, graph);
    pb_buf o = {0};
    pb_int(&o, 2, opset);
    pb_message(&m, 8, &o);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(m.data, 1, m.len, f) != m.len) abort();
    fclose(f);
    pb_free(&m);
}

#endif
