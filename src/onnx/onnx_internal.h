/* Shared by the files of the ONNX reader only: reading and unpacking a protobuf file, and turning
 * a generated TensorProto into a cleval_onnx_tensor. Nothing here is part of the public API. */
#ifndef CLEVAL_ONNX_INTERNAL_H
#define CLEVAL_ONNX_INTERNAL_H

#include "cleval/onnx.h"

#include <stddef.h>

#include "onnx.pb-c.h"

/* Internal to libcleval: none of these symbols is exported. */
#pragma GCC visibility push(hidden)

/* What every conversion needs to word its errors and to find external data: the file being read
 * (every message starts with it) and the folder that external-data locations are relative to. */
typedef struct onnx_source {
    const char *path;
    char *dir;
} onnx_source;

/* Reads the whole file at `path` and unpacks it as a message of type `desc`, after checking
 * that its nesting depth is bounded (protobuf-c recurses once per nested message and has no
 * limit of its own). `what` words the parse failure ("an ONNX model"). On success *message is to
 * be freed with protobuf_c_message_free_unpacked(*message, NULL) and src->dir with free(). */
cleval_status cleval_onnx_unpack_file(const char *path, const ProtobufCMessageDescriptor *desc,
                                      const char *what, ProtobufCMessage **message,
                                      onnx_source *src);

/* Walks the protobuf wire format of `data` with the generated descriptors and tells whether
 * messages nest deeper than `max_depth`. It decodes no field: malformed data is left for
 * protobuf-c to reject, and the answer is then false. */
bool cleval_onnx_nesting_exceeds(const uint8_t *data, size_t len,
                                 const ProtobufCMessageDescriptor *desc, unsigned max_depth);

/* Converts `proto` into `out` (zeroed by the caller), reading external data relative to
 * src->dir. `label` names the tensor in messages ("initializer 'fc.weight'"). On failure `out`
 * may hold partial allocations: release them with cleval_onnx_tensor_clear(). */
cleval_status cleval_onnx_convert_tensor(const onnx_source *src, const char *label,
                                         const Onnx__TensorProto *proto, cleval_onnx_tensor *out);

/* The same, for a `proto` the caller frees next: its float32 raw_data may move into `out`
 * instead of being copied (proto's raw_data is then empty). */
cleval_status cleval_onnx_take_tensor(const onnx_source *src, const char *label,
                                      Onnx__TensorProto *proto, cleval_onnx_tensor *out);

/* Frees what a tensor owns, not the struct itself, and zeroes it. */
void cleval_onnx_tensor_clear(cleval_onnx_tensor *tensor);

/* Converts a node's attributes into node->attrs (node->name and op_type already set). */
cleval_status cleval_onnx_convert_attrs(const onnx_source *src, const Onnx__NodeProto *proto,
                                        cleval_onnx_node *node);

/* Frees what an attribute owns, not the struct itself. */
void cleval_onnx_attr_clear(cleval_onnx_attr *attr);

/* A heap copy of `text` (NULL reads as ""), or NULL when memory runs out. */
char *cleval_onnx_strdup(const char *text);

/* A heap copy of the bytes of a protobuf `bytes` field up to its first NUL. */
char *cleval_onnx_bytesdup(const ProtobufCBinaryData *bytes);

/* Fails with CLEVAL_ERR_NOMEM, naming the file. */
cleval_status cleval_onnx_nomem(const onnx_source *src);

#pragma GCC visibility pop

#endif
