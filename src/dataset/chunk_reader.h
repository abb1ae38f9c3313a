/* Rows of a deflate-compressed chunked dataset read without HDF5's filter pipeline: the
 * calling thread reads each chunk's stored bytes (H5Dread_chunk), a pool of threads inflates
 * them (inflate_pool.h, chunk_decode.h) and copies the rows asked for. libhdf5 would inflate
 * every chunk on the one thread that calls it, which can leave a fast device waiting for its
 * batches. Only the calling thread ever calls HDF5 (Debian's libhdf5 is not thread-safe). */
#ifndef CLEVAL_DATASET_CHUNK_READER_H
#define CLEVAL_DATASET_CHUNK_READER_H

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

#include "cleval/status.h"

typedef struct chunk_reader chunk_reader;

/* A reader for dataset `dset` (kept open by the caller; `path` and `name` too, for messages),
 * whose elements are read as `mem_type`, or *out NULL when this reader cannot undo its storage
 * and H5Dread must: anything but chunks filtered by deflate alone or shuffle then deflate,
 * a stored type other than `mem_type`, chunks over 64 MiB. Fails only on a bad
 * CLEVAL_INFLATE_THREADS or no memory. */
cleval_status chunk_reader_open(hid_t dset, hid_t mem_type, const char *path, const char *name,
                                chunk_reader **out);

/* Reads rows [row0, row0 + n) (inside the dataset) in the stored type into `dest`. *handled is
 * false when this batch must be read by H5Dread instead (a chunk never written, which reads as
 * the fill value; a chunk whose filters were skipped; a chunk HDF5 cannot find or read):
 * `dest` then holds nothing useful. Fails with CLEVAL_ERR_INPUT, naming file and dataset, on a
 * chunk that does not inflate to exactly its size or lies past the end of the file. */
cleval_status chunk_reader_read(chunk_reader *reader, uint64_t row0, uint64_t n, void *dest,
                                bool *handled);

/* Chunks this reader has inflated so far (reused rows of a chunk already inflated are not
 * counted again). */
uint64_t chunk_reader_inflated(const chunk_reader *reader);

/* NULL is a no-op. */
void chunk_reader_close(chunk_reader *reader);

#endif
