/* TensorProto to cleval_onnx_tensor: dims checked for sign and overflow, values taken from
 * raw_data (little-endian), the typed fields or an external file, checked against the dims, and
 * widened to float32 or int64. Also the loader for standalone .pb tensor files. */
#include "onnx_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"

const char *cleval_onnx_dtype_name(int32_t dtype)
{
    switch (dtype) {
    case CLEVAL_ONNX_UNDEFINED: return "undefined";
    case CLEVAL_ONNX_FLOAT: return "float";
    case CLEVAL_ONNX_UINT8: return "uint8";
    case CLEVAL_ONNX_INT8: return "int8";
    case CLEVAL_ONNX_UINT16: return "uint16";
    case CLEVAL_ONNX_INT16: return "int16";
    case CLEVAL_ONNX_INT32: return "int32";
    case CLEVAL_ONNX_INT64: return "int64";
    case CLEVAL_ONNX_STRING: return "string";
    case CLEVAL_ONNX_BOOL: return "bool";
    case CLEVAL_ONNX_FLOAT16: return "float16";
    case CLEVAL_ONNX_DOUBLE: return "double";
    case CLEVAL_ONNX_UINT32: return "uint32";
    case CLEVAL_ONNX_UINT64: return "uint64";
    case CLEVAL_ONNX_COMPLEX64: return "complex64";
    case CLEVAL_ONNX_COMPLEX128: return "complex128";
    case CLEVAL_ONNX_BFLOAT16: return "bfloat16";
    }
    return "unknown";
}

/* Bytes per element in raw_data for the types the reader converts; 0 for the others. */
static size_t element_bytes(int32_t dtype)
{
    switch (dtype) {
    case CLEVAL_ONNX_UINT8:
    case CLEVAL_ONNX_INT8:
    case CLEVAL_ONNX_BOOL: return 1;
    case CLEVAL_ONNX_UINT16:
    case CLEVAL_ONNX_INT16:
    case CLEVAL_ONNX_FLOAT16:
    case CLEVAL_ONNX_BFLOAT16: return 2;
    case CLEVAL_ONNX_FLOAT:
    case CLEVAL_ONNX_INT32:
    case CLEVAL_ONNX_UINT32: return 4;
    case CLEVAL_ONNX_INT64:
    case CLEVAL_ONNX_DOUBLE:
    case CLEVAL_ONNX_UINT64: return 8;
    }
    return 0;
}

static bool is_float_type(int32_t dtype)
{
    return dtype == CLEVAL_ONNX_FLOAT || dtype == CLEVAL_ONNX_DOUBLE ||
           dtype == CLEVAL_ONNX_FLOAT16 || dtype == CLEVAL_ONNX_BFLOAT16;
}

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE half to float, exact for every input (subnormals, infinities, NaN payloads). */
static float f32_from_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0) {
        float magnitude = (float)mantissa * 0x1p-24f; /* zero or subnormal */
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
    return f32_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

/* Little-endian loads, whatever the host's byte order and the data's alignment. */
static uint64_t load_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t k = bytes; k-- > 0;)
        v = v << 8 | p[k];
    return v;
}

/* Fills t->f32 or t->i64 (allocated) from `count` little-endian elements at `raw`. */
static cleval_status convert_raw(const onnx_source *src, const char *label, const uint8_t *raw,
                                 cleval_onnx_tensor *t)
{
    size_t n = (size_t)t->count, width = element_bytes(t->dtype);
    if (t->storage == CLEVAL_ONNX_DATA_F32) {
        for (size_t k = 0; k < n; k++) {
            uint64_t bits = load_le(raw + k * width, width);
            switch (t->dtype) {
            case CLEVAL_ONNX_FLOAT: t->f32[k] = f32_from_bits((uint32_t)bits); break;
            case CLEVAL_ONNX_FLOAT16: t->f32[k] = f32_from_f16((uint16_t)bits); break;
            case CLEVAL_ONNX_BFLOAT16: t->f32[k] = f32_from_bits((uint32_t)bits << 16); break;
            default: {
                double d;
                memcpy(&d, &bits, sizeof d);
                t->f32[k] = (float)d;
            }
            }
        }
        return CLEVAL_OK;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t bits = load_le(raw + k * width, width);
        switch (t->dtype) {
        case CLEVAL_ONNX_INT8: t->i64[k] = (int8_t)(uint8_t)bits; break;
        case CLEVAL_ONNX_INT16: t->i64[k] = (int16_t)(uint16_t)bits; break;
        case CLEVAL_ONNX_INT32: t->i64[k] = (int32_t)(uint32_t)bits; break;
        case CLEVAL_ONNX_BOOL: t->i64[k] = bits != 0; break;
        case CLEVAL_ONNX_UINT64:
            if (bits > INT64_MAX)
                return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                                   "%s: %s: uint64 value %" PRIu64 " above INT64_MAX", src->path,
                                   label, bits);
            t->i64[k] = (int64_t)bits;
            break;
        case CLEVAL_ONNX_INT64: memcpy(&t->i64[k], &bits, sizeof bits); break;
        default: t->i64[k] = (int64_t)bits; /* UINT8, UINT16, UINT32 */
        }
    }
    return CLEVAL_OK;
}

/* How many values the typed field that ONNX assigns to the tensor's type holds, and its name. */
static size_t typed_count(const Onnx__TensorProto *p, int32_t dtype, const char **field)
{
    switch (dtype) {
    case CLEVAL_ONNX_FLOAT: *field = "float_data"; return p->n_float_data;
    case CLEVAL_ONNX_DOUBLE: *field = "double_data"; return p->n_double_data;
    case CLEVAL_ONNX_INT64: *field = "int64_data"; return p->n_int64_data;
    case CLEVAL_ONNX_UINT32:
    case CLEVAL_ONNX_UINT64: *field = "uint64_data"; return p->n_uint64_data;
    }
    *field = "int32_data"; /* the narrow integers, bool and the 16-bit floats */
    return p->n_int32_data;
}

/* Fills t->f32 or t->i64 from the typed field, which holds t->count values. */
static cleval_status convert_typed(const onnx_source *src, const char *label,
                                   const Onnx__TensorProto *p, cleval_onnx_tensor *t)
{
    size_t n = (size_t)t->count;
    for (size_t k = 0; k < n; k++) {
        switch (t->dtype) {
        case CLEVAL_ONNX_FLOAT: t->f32[k] = p->float_data[k]; break;
        case CLEVAL_ONNX_DOUBLE: t->f32[k] = (float)p->double_data[k]; break;
        case CLEVAL_ONNX_FLOAT16: t->f32[k] = f32_from_f16((uint16_t)p->int32_data[k]); break;
        case CLEVAL_ONNX_BFLOAT16:
            t->f32[k] = f32_from_bits((uint32_t)(uint16_t)p->int32_data[k] << 16);
            break;
        case CLEVAL_ONNX_INT64: t->i64[k] = p->int64_data[k]; break;
        case CLEVAL_ONNX_UINT32: t->i64[k] = (int64_t)(uint32_t)p->uint64_data[k]; break;
        case CLEVAL_ONNX_UINT64:
            if (p->uint64_data[k] > INT64_MAX)
                return cleval_fail(CLEVAL_ERR_UNSUPPORTED,
                                   "%s: %s: uint64 value %" PRIu64 " above INT64_MAX", src->path,
                                   label, p->uint64_data[k]);
            t->i64[k] = (int64_t)p->uint64_data[k];
            break;
        case CLEVAL_ONNX_BOOL: t->i64[k] = p->int32_data[k] != 0; break;
        case CLEVAL_ONNX_INT8: t->i64[k] = (int8_t)p->int32_data[k]; break;
        case CLEVAL_ONNX_UINT8: t->i64[k] = (uint8_t)p->int32_data[k]; break;
        case CLEVAL_ONNX_INT16: t->i64[k] = (int16_t)p->int32_data[k]; break;
        case CLEVAL_ONNX_UINT16: t->i64[k] = (uint16_t)p->int32_data[k]; break;
        default: t->i64[k] = p->int32_data[k]; /* INT32 */
        }
    }
    return CLEVAL_OK;
}

/* A non-negative decimal integer, as external_data's offset and length are written. */
static bool parse_u64(const char *text, uint64_t *value)
{
    if (!text || !*text) return false;
    uint64_t v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9') return false;
        unsigned digit = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    *value = v;
    return true;
}

/* A location stays inside the model's folder: relative, and no ".." component. ONNX's own
 * loader refuses the same (CVE-2022-25882). */
static bool location_is_contained(const char *location)
{
    if (!*location || location[0] == '/') return false;
    for (const char *c = location; *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') return false;
        c += n + (slash != NULL);
    }
    return true;
}

/* The real path of external data `location` into *out (free()), refused unless it lies inside
 * the real folder of the model: the location's name is checked before (no absolute path, no
 * ".."), and this catches links, of the file or of a folder on the way, that lead out. */
static cleval_status resolve_external(const onnx_source *src, const char *label,
                                      const char *location, char **out)
{
    *out = NULL;
    char *folder = cleval_input_real_path(".", src->dir);
    if (!folder)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: cannot resolve the model's folder %s: %s",
                           src->path, label, src->dir, strerror(errno));
    char *real = cleval_input_real_path(folder, location);
    cleval_status status = CLEVAL_OK;
    if (!real)
        status = cleval_fail(errno == ENOMEM ? CLEVAL_ERR_NOMEM : CLEVAL_ERR_INPUT,
                             "%s: %s: cannot open external data %s/%s: %s", src->path, label,
                             src->dir, location, strerror(errno));
    else if (!cleval_input_is_inside(real, folder))
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: %s: external data location '%s' leads outside the model's "
                             "folder (through a link)",
                             src->path, label, location);
    free(folder);
    if (status != CLEVAL_OK) {
        free(real);
        return status;
    }
    *out = real;
    return CLEVAL_OK;
}

/* Reads `bytes` bytes of external data for the tensor into a new buffer *out. */
static cleval_status read_external(const onnx_source *src, const char *label,
                                   const Onnx__TensorProto *p, uint64_t bytes, uint8_t **out)
{
    *out = NULL;
    const char *location = NULL;
    uint64_t offset = 0, length = 0;
    bool has_length = false;
    for (size_t k = 0; k < p->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = p->external_data[k];
        const char *key = e->key ? e->key : "", *value = e->value ? e->value : "";
        if (strcmp(key, "location") == 0) {
            location = value;
        } else if (strcmp(key, "offset") == 0) {
            if (!parse_u64(value, &offset))
                return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: bad external data offset '%s'",
                                   src->path, label, value);
        } else if (strcmp(key, "length") == 0) {
            if (!parse_u64(value, &length))
                return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: bad external data length '%s'",
                                   src->path, label, value);
            has_length = true;
        }
    }
    if (!location)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: external data without a location", src->path,
                           label);
    if (!location_is_contained(location))
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: %s: external data location '%s' is not a relative path inside "
                           "the model's folder",
                           src->path, label, location);
    if (has_length && length != bytes)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: %s: external data length %" PRIu64 " does not match its dims "
                           "(%" PRIu64 " bytes)",
                           src->path, label, length, bytes);

    char *file_path;
    cleval_status status = resolve_external(src, label, location, &file_path);
    if (status != CLEVAL_OK) return status;
    uint8_t *buf = NULL;
    FILE *f;
    uint64_t size;
    if (cleval_input_fopen(file_path, "a data file", &f, &size) != CLEVAL_OK) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: external data '%s': %s", src->path, label,
                             location, cleval_last_error());
    } else if (offset > size || size - offset < bytes || (!has_length && size - offset != bytes)) {
        /* Without a length the data runs to the end of the file, as ONNX's loader reads it. */
        status = cleval_fail(CLEVAL_ERR_INPUT,
                             "%s: %s: external data %s holds %" PRIu64 " bytes; offset %" PRIu64
                             " and dims need %" PRIu64 "%s",
                             src->path, label, location, size, offset, bytes,
                             has_length ? "" : " up to its end");
    } else if (bytes > SIZE_MAX || !(buf = malloc(bytes ? (size_t)bytes : 1))) {
        status = cleval_onnx_nomem(src);
    } else if (fseeko(f, (off_t)offset, SEEK_SET) != 0 ||
               fread(buf, 1, (size_t)bytes, f) != (size_t)bytes) {
        status = cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: cannot read external data %s", src->path,
                             label, location);
    }
    if (f) fclose(f);
    free(file_path);
    if (status != CLEVAL_OK) {
        free(buf);
        return status;
    }
    *out = buf;
    return CLEVAL_OK;
}

/* Whether float32 bytes as ONNX stores them (little-endian) are this host's floats. */
static bool floats_are_little_endian(void)
{
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}

/* float32 data already in the host's layout becomes the tensor's values without a copy: the
 * buffer read for external data, or raw_data when the caller gives it up (`owned`, whose
 * raw_data is then emptied, which protobuf-c's free skips). Both come from malloc, as t->f32
 * does. A 100 MB model so skips a pass over all its weights and a new buffer for them. */
static bool take_floats(cleval_onnx_tensor *t, uint8_t **external_bytes, Onnx__TensorProto *owned)
{
    if (t->dtype != CLEVAL_ONNX_FLOAT || t->count == 0 || !floats_are_little_endian()) return false;
    if (*external_bytes) {
        t->f32 = (float *)(void *)*external_bytes;
        *external_bytes = NULL;
    } else if (owned && owned->has_raw_data && owned->raw_data.data) {
        t->f32 = (float *)(void *)owned->raw_data.data;
        owned->raw_data.data = NULL;
        owned->raw_data.len = 0;
    } else {
        return false;
    }
    t->storage = CLEVAL_ONNX_DATA_F32;
    return true;
}

static cleval_status convert_tensor(const onnx_source *src, const char *label,
                                    const Onnx__TensorProto *p, Onnx__TensorProto *owned,
                                    cleval_onnx_tensor *t)
{
    t->name = cleval_onnx_strdup(p->name);
    if (!t->name) return cleval_onnx_nomem(src);
    t->dtype = p->has_data_type ? p->data_type : CLEVAL_ONNX_UNDEFINED;
    if (t->dtype == CLEVAL_ONNX_UNDEFINED)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s has no data type", src->path, label);
    if (p->segment)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s is stored in segments", src->path,
                           label);
    if (p->n_dims > CLEVAL_ONNX_MAX_RANK)
        return cleval_fail(CLEVAL_ERR_UNSUPPORTED, "%s: %s has rank %zu, above %d", src->path,
                           label, p->n_dims, CLEVAL_ONNX_MAX_RANK);
    t->rank = (uint32_t)p->n_dims;
    t->count = 1;
    if (t->rank) {
        t->dims = malloc(t->rank * sizeof *t->dims);
        if (!t->dims) return cleval_onnx_nomem(src);
    }
    for (uint32_t k = 0; k < t->rank; k++) {
        int64_t d = p->dims[k];
        if (d < 0)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: dim %u is negative (%" PRId64 ")",
                               src->path, label, k, d);
        t->dims[k] = d;
        if (__builtin_mul_overflow(t->count, (uint64_t)d, &t->count))
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: element count overflows", src->path,
                               label);
    }

    size_t width = element_bytes(t->dtype);
    if (width == 0) return CLEVAL_OK; /* kept, without values, for the caller to refuse */
    uint64_t bytes;
    if (__builtin_mul_overflow(t->count, (uint64_t)width, &bytes) || bytes > SIZE_MAX)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s: element count overflows", src->path, label);

    bool external =
        p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    uint8_t *external_bytes = NULL;
    const uint8_t *raw = NULL;
    cleval_status status;
    if (external) {
        status = read_external(src, label, p, bytes, &external_bytes);
        if (status != CLEVAL_OK) return status;
        raw = external_bytes;
    } else if (p->has_raw_data) {
        if ((uint64_t)p->raw_data.len != bytes) {
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: %s: raw_data holds %zu bytes, its dims need %" PRIu64,
                               src->path, label, p->raw_data.len, bytes);
        }
        raw = p->raw_data.data;
    } else {
        /* Checked before allocating, so that a file cannot ask for memory it does not back
         * with data. */
        const char *field;
        size_t have = typed_count(p, t->dtype, &field);
        if ((uint64_t)have != t->count) {
            if (have == 0)
                return cleval_fail(CLEVAL_ERR_INPUT,
                                   "%s: %s holds no data, its dims need %" PRIu64 " values",
                                   src->path, label, t->count);
            return cleval_fail(CLEVAL_ERR_INPUT,
                               "%s: %s: %s holds %zu values, its dims need %" PRIu64, src->path,
                               label, field, have, t->count);
        }
    }

    if (take_floats(t, &external_bytes, owned)) return CLEVAL_OK;
    size_t n = (size_t)t->count;
    if (is_float_type(t->dtype)) {
        t->storage = CLEVAL_ONNX_DATA_F32;
        t->f32 = malloc(n ? n * sizeof *t->f32 : 1);
    } else {
        t->storage = CLEVAL_ONNX_DATA_I64;
        t->i64 = malloc(n ? n * sizeof *t->i64 : 1);
    }
    if (!t->f32 && !t->i64) {
        free(external_bytes);
        return cleval_onnx_nomem(src);
    }
    status = raw ? convert_raw(src, label, raw, t) : convert_typed(src, label, p, t);
    free(external_bytes);
    return status;
}

cleval_status cleval_onnx_convert_tensor(const onnx_source *src, const char *label,
                                         const Onnx__TensorProto *p, cleval_onnx_tensor *t)
{
    return convert_tensor(src, label, p, NULL, t);
}

cleval_status cleval_onnx_take_tensor(const onnx_source *src, const char *label,
                                      Onnx__TensorProto *p, cleval_onnx_tensor *t)
{
    return convert_tensor(src, label, p, p, t);
}

void cleval_onnx_tensor_clear(cleval_onnx_tensor *t)
{
    if (!t) return;
    free(t->name);
    free(t->dims);
    free(t->f32);
    free(t->i64);
    memset(t, 0, sizeof *t);
}

void cleval_onnx_tensor_free(cleval_onnx_tensor *tensor)
{
    cleval_onnx_tensor_clear(tensor);
    free(tensor);
}

cleval_status cleval_onnx_load_tensor(const char *path, cleval_onnx_tensor **out)
{
    if (!out) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_onnx_load_tensor: out is NULL");
    *out = NULL;
    if (!path) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_onnx_load_tensor: path is NULL");
    ProtobufCMessage *msg;
    onnx_source src;
    cleval_status status = cleval_onnx_unpack_file(path, &onnx__tensor_proto__descriptor,
                                                   "an ONNX tensor", &msg, &src);
    if (status != CLEVAL_OK) return status;
    Onnx__TensorProto *proto = (Onnx__TensorProto *)msg;
    cleval_onnx_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        status = cleval_onnx_nomem(&src);
    } else {
        char label[320];
        snprintf(label, sizeof label, "tensor '%.256s'", proto->name ? proto->name : "");
        status = cleval_onnx_take_tensor(&src, label, proto, t);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    free(src.dir);
    if (status != CLEVAL_OK) {
        cleval_onnx_tensor_free(t);
        return status;
    }
    *out = t;
    return CLEVAL_OK;
}
