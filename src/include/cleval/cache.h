/* cleval's cache folder: what cleval can always rebuild but should not have to on every run
 * (tuned kernel parameters, compiled program binaries). Internal, not part of the public API.
 *
 * The folder is $CLEVAL_CACHE_DIR, else $XDG_CACHE_HOME/cleval, else $HOME/.cache/cleval;
 * CLEVAL_CACHE_DIR=off turns caching off. Because a cached program binary is code that cleval
 * runs, the folder must belong to the effective user and be writable by nobody else: a folder
 * that fails that check is not used (logged once at WARN level), never "repaired". Entries are
 * written under a temporary name and renamed, so a reader sees a whole entry or none, and two
 * processes filling the same entry at once both succeed. A missing, short or unreadable entry is
 * a cache miss, never an error: every caller must be able to rebuild what it asked for. */
#ifndef CLEVAL_CACHE_H
#define CLEVAL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* Writes the path of cache subfolder `sub` ("programs", "tuning") to out, creating the cache
 * folder and the subfolder (mode 0700) when missing. False when caching is off, the name does
 * not fit, or the folder cannot be made or is not safe to use. */
bool cleval_cache_subdir(const char *sub, char *out, size_t cap);

/* 64-bit FNV-1a of `size` bytes, continuing from `hash` (start with CLEVAL_CACHE_HASH_SEED):
 * the keys of cache entries are hex strings of such hashes over everything that must match. */
#define CLEVAL_CACHE_HASH_SEED 0xcbf29ce484222325ULL
uint64_t cleval_cache_hash(uint64_t hash, const void *data, size_t size);
uint64_t cleval_cache_hash_string(uint64_t hash, const char *s); /* includes the final NUL */

/* Reads entry `name` of subfolder `sub` (a regular file, not followed through a link, at most
 * max_size bytes) into a malloc'd buffer the caller frees. False on a miss. */
bool cleval_cache_load(const char *sub, const char *name, size_t max_size, void **data,
                       size_t *size);

/* Stores `size` bytes as entry `name` of subfolder `sub`, atomically. False when the entry
 * could not be written (the cache is then simply not filled; nothing else changes). */
bool cleval_cache_store(const char *sub, const char *name, const void *data, size_t size);

#pragma GCC visibility pop

#endif
