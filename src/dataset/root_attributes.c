/* The attribute messages of the root group, checked before HDF5 decodes them. An object header
 * of format 1 (what HDF5 writes by default) has no checksum, and HDF5 1.10 copies an attribute's
 * name, type, shape and value by the sizes the message declares, past the end of the message
 * when they are damaged. Here the header's chunks are walked (continuation messages lead to
 * the next ones, a bounded number) and each attribute's parts must fit in its message. */
#include "dataset_internal.h"

#include <stdlib.h>
#include <string.h>

enum {
    MAX_CHUNKS = 64,           /* continuation chunks followed in one header */
    MAX_CHUNK_BYTES = 1 << 20, /* HDF5 keeps a header's chunk far smaller */
    MESSAGE_HEADER = 8,        /* type (2), size (2), flags (1), reserved (3) */
    MSG_CONTINUATION = 0x10,
    MSG_ATTRIBUTE = 0x0c,
};

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* The elements of the dataspace message `space` (`size` bytes, version 1 or 2): the product of
 * its dimensions, 1 for a scalar; false when it does not fit or overflows. */
static bool space_elements(const unsigned char *space, uint64_t size, const file_format *f,
                           uint64_t *elements)
{
    if (size < 4) return false;
    unsigned version = space[0], rank = space[1];
    uint64_t dims_at = version == 1 ? 8 : 4;
    if ((version != 1 && version != 2) || rank > 32 ||
        dims_at + (uint64_t)rank * f->sizeof_size > size)
        return false;
    bool null_space = version == 2 && space[3] == 2;
    *elements = null_space ? 0 : 1;
    for (unsigned d = 0; d < rank && !null_space; d++) {
        uint64_t dim = dataset_decode_le(space + dims_at + d * f->sizeof_size, f->sizeof_size);
        if (dim && *elements > UINT64_MAX / dim) return false;
        *elements *= dim;
    }
    return true;
}

/* Whether attribute message `m` (`size` bytes) holds its name, type, shape and value. */
static bool attribute_fits(const unsigned char *m, uint64_t size, const file_format *f)
{
    if (size < 8) return false;
    unsigned version = m[0];
    uint64_t name = dataset_decode_le(m + 2, 2), type = dataset_decode_le(m + 4, 2),
             space = dataset_decode_le(m + 6, 2), at = version == 3 ? 9 : 8;
    if (version < 1 || version > 3 || size < at) return false;
    if (version == 1) {
        name = align8(name);
        type = align8(type);
        space = align8(space);
    }
    if (name + type + space > size - at) return false;
    bool shared = version > 1 && (m[1] & 3); /* type or shape stored elsewhere: sizes unknown */
    if (shared) return true;
    if (type < 8) return false;
    const unsigned char *type_bytes = m + at + name, *space_bytes = type_bytes + type;
    uint64_t element = dataset_decode_le(type_bytes + 4, 4), elements;
    if (!space_elements(space_bytes, space, f, &elements)) return false;
    uint64_t room = size - at - name - type - space;
    return elements == 0 || (element <= room && elements <= room / (element ? element : 1));
}

/* Walks the chunk at address `addr`, `bytes` long: its attributes must fit, and its
 * continuation messages are queued in `chunks` (address and size pairs, MAX_CHUNKS in all). */
static bool walk_chunk(const file_format *f, uint64_t addr, uint64_t bytes, uint64_t *chunks,
                       int *queued)
{
    uint64_t room = f->size > f->base ? f->size - f->base : 0;
    if (bytes > MAX_CHUNK_BYTES || addr > room || bytes > room - addr) return false;
    unsigned char *chunk = malloc(bytes ? (size_t)bytes : 1);
    bool ok = chunk && dataset_read_at(f->fd, f->base + addr, chunk, (size_t)bytes);
    for (uint64_t at = 0; ok && at + MESSAGE_HEADER <= bytes;) {
        unsigned type = (unsigned)dataset_decode_le(chunk + at, 2);
        uint64_t size = dataset_decode_le(chunk + at + 2, 2);
        const unsigned char *message = chunk + at + MESSAGE_HEADER;
        ok = size <= bytes - at - MESSAGE_HEADER;
        if (ok && type == MSG_ATTRIBUTE) ok = attribute_fits(message, size, f);
        if (ok && type == MSG_CONTINUATION) {
            ok = *queued < MAX_CHUNKS && size >= (uint64_t)f->sizeof_addr + f->sizeof_size;
            if (ok) {
                chunks[2 * *queued] = dataset_decode_le(message, f->sizeof_addr);
                chunks[2 * *queued + 1] =
                    dataset_decode_le(message + f->sizeof_addr, f->sizeof_size);
                ++*queued;
            }
        }
        at += MESSAGE_HEADER + size;
    }
    free(chunk);
    return ok;
}

/* Walks the format-1 object header at address `addr` (16-byte prefix: version 1, reserved,
 * message count (2), reference count (4), first chunk's size (4), padding). */
static bool header_fits(const file_format *f, uint64_t addr)
{
    unsigned char prefix[16];
    uint64_t room = f->size > f->base ? f->size - f->base : 0;
    if (addr > room || room - addr < sizeof prefix ||
        !dataset_read_at(f->fd, f->base + addr, prefix, sizeof prefix))
        return false;
    if (memcmp(prefix, "OHDR", 4) == 0) return true; /* format 2: checksummed */
    if (prefix[0] != 1) return false;
    uint64_t chunks[2 * MAX_CHUNKS] = {addr + sizeof prefix, dataset_decode_le(prefix + 8, 4)};
    int queued = 1;
    bool ok = true;
    for (int i = 0; ok && i < queued; i++)
        ok = walk_chunk(f, chunks[2 * i], chunks[2 * i + 1], chunks, &queued);
    return ok;
}

cleval_status dataset_check_root_attributes(const cleval_dataset *ds)
{
    file_format f;
    H5O_info_t info;
    if (!dataset_file_format(ds->file, &f) || H5Oget_info(ds->file, &info) < 0)
        return CLEVAL_OK; /* HDF5 reads it through its own checks */
    if (header_fits(&f, info.addr)) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: the attributes of its root group are damaged",
                       ds->path);
}
