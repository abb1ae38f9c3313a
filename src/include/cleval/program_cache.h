/* Compiled kernel programs kept on disk (subfolder "programs" of the cache folder,
 * cleval/cache.h), so a later process loads a device binary instead of compiling the source.
 * Internal, not part of the public API.
 *
 * An entry's name is the hex key; the key hashes everything that decides the binary: the
 * expanded source, the build options, the platform name, the device name and version, the
 * driver version and cleval's version. Each entry opens with a header repeating the key and
 * carrying the binary's size and checksum; an entry that disagrees with any of them, or that the
 * driver rejects, is a miss: the caller compiles from source and stores over it. */
#ifndef CLEVAL_PROGRAM_CACHE_H
#define CLEVAL_PROGRAM_CACHE_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <stdint.h>

#pragma GCC visibility push(hidden)

#define CLEVAL_PROGRAM_CACHE_MAGIC "clevbin1"

/* An entry is this header (native byte order) followed by binary_size bytes of binary. */
typedef struct cleval_program_cache_header {
    char magic[8];        /* CLEVAL_PROGRAM_CACHE_MAGIC, no NUL */
    uint64_t key;         /* the entry's own key: a file copied over another's name misses */
    uint64_t binary_size; /* bytes after the header */
    uint64_t checksum;    /* cleval_cache_hash of the binary: a damaged file misses */
} cleval_program_cache_header;

/* The key of `source` (includes expanded) built with `options` for `device`; 0 (nothing is
 * cached) when the device cannot be queried. */
uint64_t cleval_program_cache_key(cl_device_id device, const char *source, const char *options);

/* The entry name of a key: 16 hex digits and ".bin" (out holds at least 21 bytes). */
void cleval_program_cache_name(uint64_t key, char *out);

/* A program built for `device` from the entry of `key`, or NULL on a miss (no cache, no entry,
 * a damaged one, a binary the driver refuses to load or build). `options` are the build
 * options the binary was made with. */
cl_program cleval_program_cache_load(cl_context context, cl_device_id device, uint64_t key,
                                     const char *options);

/* Stores the binary of `program` (built for one device alone) as the entry of `key`,
 * replacing any. Where fetching a binary costs the driver a compile of its own (PoCL with its
 * kernel cache on), the first call for a key only leaves a marker entry ("<key>.seen") and a
 * later call, in this process or another, stores the binary. Failure only leaves the cache
 * unfilled. */
void cleval_program_cache_store(cl_program program, uint64_t key);

/* What the cache did in this process, counted across all devices and threads (tests and
 * --verbose read them). */
typedef struct cleval_program_cache_counts {
    uint64_t hits;     /* programs loaded from an entry */
    uint64_t misses;   /* lookups that found no usable entry (rejected ones included) */
    uint64_t rejected; /* entries present but damaged, mismatched or refused by the driver */
    uint64_t stored;   /* entries written */
    uint64_t marked;   /* first builds that left a marker, their binary not stored yet */
} cleval_program_cache_counts;

cleval_program_cache_counts cleval_program_cache_get_counts(void);

#pragma GCC visibility pop

#endif
