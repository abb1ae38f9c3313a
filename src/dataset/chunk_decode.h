/* Undoing HDF5's deflate and shuffle filters on one chunk's stored bytes, as HDF5 applies
 * them: deflate is a zlib stream of the whole chunk; shuffle stores the first byte of every
 * element, then every second byte, and so on. Plain functions of their buffers, safe on any
 * thread and on hostile bytes. */
#ifndef CLEVAL_DATASET_CHUNK_DECODE_H
#define CLEVAL_DATASET_CHUNK_DECODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum chunk_decode_result {
    CHUNK_DECODE_OK,
    CHUNK_DECODE_CORRUPT, /* not a zlib stream, or one cut short */
    CHUNK_DECODE_SIZE,    /* a complete stream of another size than the chunk's */
    CHUNK_DECODE_NOMEM,   /* zlib could not allocate its state */
} chunk_decode_result;

/* Inflates the zlib stream `src` (`src_bytes`) into `dest`, which must hold `expected` + 1
 * bytes (the extra byte tells a stream longer than the chunk). OK only when the stream ends
 * after exactly `expected` bytes; *produced is the bytes written (expected + 1: at least
 * that many). */
chunk_decode_result chunk_inflate(const void *src, size_t src_bytes, void *dest, size_t expected,
                                  size_t *produced);

/* Undoes HDF5's shuffle of `bytes` bytes of elements `element_size` bytes wide from `src` into
 * `dest` (distinct buffers); trailing bytes that make no whole element are copied as they are,
 * as HDF5 leaves them. */
void chunk_unshuffle(const unsigned char *src, size_t bytes, size_t element_size,
                     unsigned char *dest);

/* A short name for a result ("the stream is damaged"). */
const char *chunk_decode_message(chunk_decode_result result);

#endif
