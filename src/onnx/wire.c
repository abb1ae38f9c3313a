/* From a file on disk to an unpacked protobuf-c message: one read of the whole file, a bound on
 * message nesting (the only part of the wire format looked at by hand, since protobuf-c would
 * otherwise recurse as deep as a hostile file asks), then protobuf-c's own unpack. */
#include "onnx_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"
#include "huge_pages.h"

/* protobuf's own limits: 2 GiB per message, 100 levels of nesting (C++, Java and Python parsers
 * agree on both). A real model nests about 10 levels deep, 3 more per subgraph. */
#define ONNX_MAX_FILE_BYTES ((size_t)INT32_MAX)
#define ONNX_MAX_NESTING 100u

char *cleval_onnx_strdup(const char *text)
{
    if (!text) text = "";
    size_t n = strlen(text);
    char *copy = malloc(n + 1);
    if (copy) memcpy(copy, text, n + 1);
    return copy;
}

char *cleval_onnx_bytesdup(const ProtobufCBinaryData *bytes)
{
    size_t n = 0;
    if (bytes->data && bytes->len) {
        const uint8_t *nul = memchr(bytes->data, 0, bytes->len);
        n = nul ? (size_t)(nul - bytes->data) : bytes->len;
    }
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    if (n) memcpy(copy, bytes->data, n);
    copy[n] = '\0';
    return copy;
}

cleval_status cleval_onnx_nomem(const onnx_source *src)
{
    return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory reading the ONNX file", src->path);
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return false;
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *value = v;
            return true;
        }
    }
    return false;
}

bool cleval_onnx_nesting_exceeds(const uint8_t *data, size_t len,
                                 const ProtobufCMessageDescriptor *desc, unsigned max_depth)
{
    /* One frame per open message: where it ends and how to tell its message fields apart. */
    struct frame {
        const uint8_t *end;
        const ProtobufCMessageDescriptor *desc;
    } stack[ONNX_MAX_NESTING + 1];
    if (max_depth > ONNX_MAX_NESTING) max_depth = ONNX_MAX_NESTING;
    unsigned depth = 0;
    const uint8_t *p = data;
    stack[0].end = data + len;
    stack[0].desc = desc;
    for (;;) {
        const uint8_t *end = stack[depth].end;
        if (p == end) {
            if (depth == 0) return false;
            depth--;
            continue;
        }
        uint64_t tag, n;
        if (!read_varint(&p, end, &tag)) return false;
        switch (tag & 7) {
        case 0: /* varint */
            if (!read_varint(&p, end, &n)) return false;
            break;
        case 1: /* 64-bit */
            if (end - p < 8) return false;
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4) return false;
            p += 4;
            break;
        case 2: { /* length-delimited: bytes, string, packed list or a nested message */
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) return false;
            uint64_t number = tag >> 3;
            const ProtobufCFieldDescriptor *field =
                number <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(stack[depth].desc, (unsigned)number)
                    : NULL;
            if (field && field->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 > max_depth) return true;
                depth++;
                stack[depth].end = p + n;
                stack[depth].desc = field->descriptor;
            } else {
                p += n;
            }
            break;
        }
        default: /* groups (unused by ONNX) and invalid wire types: protobuf-c refuses them */
            return false;
        }
    }
}

/* One fread of the whole file: models are small next to the memory they are evaluated with. */
static cleval_status read_whole_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f;
    uint64_t file_size;
    cleval_status status = cleval_input_fopen(path, "an ONNX file", &f, &file_size);
    if (status != CLEVAL_OK) return status;
    if (file_size > ONNX_MAX_FILE_BYTES) {
        fclose(f);
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: %llu bytes, above protobuf's 2 GiB limit (large weights belong "
                           "in external data files)",
                           path, (unsigned long long)file_size);
    }
    size_t size = (size_t)file_size;
    uint8_t *buf = malloc(size ? size : 1);
    cleval_prefer_huge_pages(buf, size);
    if (!buf) {
        fclose(f);
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    if (got != size || read_error) {
        free(buf);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: read error (file changed while reading?)", path);
    }
    *data = buf;
    *len = size;
    return CLEVAL_OK;
}

/* The folder that holds `path` ("." when it has none), where external data is looked up. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return cleval_onnx_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir) return NULL;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return dir;
}

/* protobuf-c's allocator, noting a failed allocation: its unpack returns NULL for a malformed
 * file and for one it had no memory to unpack alike. Same malloc/free as protobuf-c's own, so
 * protobuf_c_message_free_unpacked(msg, NULL) frees what it made. */
static void *tracked_alloc(void *out_of_memory, size_t size)
{
    void *p = malloc(size);
    if (!p) *(bool *)out_of_memory = true;
    cleval_prefer_huge_pages(p, size);
    return p;
}

static void tracked_free(void *out_of_memory, void *p)
{
    (void)out_of_memory;
    free(p);
}

cleval_status cleval_onnx_unpack_file(const char *path, const ProtobufCMessageDescriptor *desc,
                                      const char *what, ProtobufCMessage **message,
                                      onnx_source *src)
{
    *message = NULL;
    src->path = path;
    src->dir = NULL;
    uint8_t *data;
    size_t len;
    cleval_status status = read_whole_file(path, &data, &len);
    if (status != CLEVAL_OK) return status;
    if (len == 0) {
        free(data);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: empty file, not %s", path, what);
    }
    if (cleval_onnx_nesting_exceeds(data, len, desc, ONNX_MAX_NESTING)) {
        free(data);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: not %s (messages nested more than %u deep)", path,
                           what, ONNX_MAX_NESTING);
    }
    bool out_of_memory = false;
    ProtobufCAllocator allocator = {tracked_alloc, tracked_free, &out_of_memory};
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &allocator, len, data);
    free(data); /* protobuf-c copied every bytes field it keeps */
    if (!msg && out_of_memory)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory reading %s", path, what);
    if (!msg)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: not %s (protobuf parse failed; truncated file?)",
                           path, what);
    src->dir = folder_of(path);
    if (!src->dir) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory", path);
    }
    *message = msg;
    return CLEVAL_OK;
}
