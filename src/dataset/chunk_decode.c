/* See chunk_decode.h. zlib counts its buffers in 32 bits, so both sides are fed in pieces of
 * at most 1 GiB (a chunk may hold up to 4 GB). */
#include "chunk_decode.h"

#include <stdbool.h>
#include <string.h>

#include <zlib.h>

#define PIECE ((size_t)1 << 30)

chunk_decode_result chunk_inflate(const void *src, size_t src_bytes, void *dest, size_t expected,
                                  size_t *produced)
{
    *produced = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return CHUNK_DECODE_NOMEM;
    const unsigned char *in = src;
    unsigned char *out = dest;
    size_t in_left = src_bytes, out_left = expected + 1;
    int rc;
    do {
        if (z.avail_in == 0 && in_left) {
            size_t piece = in_left < PIECE ? in_left : PIECE;
            z.next_in = (unsigned char *)in; /* zlib does not write through it */
            z.avail_in = (uInt)piece;
            in += piece;
            in_left -= piece;
        }
        if (z.avail_out == 0 && out_left) {
            size_t piece = out_left < PIECE ? out_left : PIECE;
            z.next_out = out;
            z.avail_out = (uInt)piece;
            out += piece;
            out_left -= piece;
        }
        rc = inflate(&z, Z_NO_FLUSH);
    } while (rc == Z_OK);
    /* Written: everything handed to zlib but what it left unused. */
    *produced = (size_t)(out - (unsigned char *)dest) - z.avail_out;
    bool full = out_left == 0 && z.avail_out == 0;
    inflateEnd(&z);
    if (rc == Z_STREAM_END) return *produced == expected ? CHUNK_DECODE_OK : CHUNK_DECODE_SIZE;
    if (rc == Z_BUF_ERROR && full) return CHUNK_DECODE_SIZE; /* more than `expected` */
    if (rc == Z_MEM_ERROR) return CHUNK_DECODE_NOMEM;
    return CHUNK_DECODE_CORRUPT;
}

void chunk_unshuffle(const unsigned char *src, size_t bytes, size_t element_size,
                     unsigned char *dest)
{
    size_t n = element_size > 1 ? bytes / element_size : 0;
    if (n == 0) {
        memcpy(dest, src, bytes);
        return;
    }
    for (size_t b = 0; b < element_size; b++) {
        const unsigned char *plane = src + b * n;
        for (size_t i = 0; i < n; i++)
            dest[i * element_size + b] = plane[i];
    }
    size_t whole = n * element_size;
    memcpy(dest + whole, src + whole, bytes - whole);
}

const char *chunk_decode_message(chunk_decode_result result)
{
    switch (result) {
    case CHUNK_DECODE_OK: return "inflated";
    case CHUNK_DECODE_CORRUPT: return "its compressed bytes do not inflate";
    case CHUNK_DECODE_SIZE: return "it inflates to the wrong size";
    case CHUNK_DECODE_NOMEM: return "out of memory inflating it";
    }
    return "unknown";
}
