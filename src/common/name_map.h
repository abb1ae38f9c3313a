/* A map from names to small non-negative integers (an index into the caller's array), for the
 * passes over ONNX graphs that must stay linear in the number of nodes, values and
 * initializers: open addressing with linear probing, FNV-1a hashes, grown to keep it at most
 * half full. Keys are borrowed: the caller keeps every key alive and unchanged while the map
 * is in use. Shared by the ONNX reader and the nn module; not part of the public API. */
#ifndef CLEVAL_NAME_MAP_H
#define CLEVAL_NAME_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

typedef struct name_map {
    const char **keys; /* NULL: empty slot */
    int32_t *values;
    size_t size; /* slots, a power of two */
    size_t count;
} name_map;

/* An empty map sized for `expected` names (it grows past that). False when memory runs out. */
bool name_map_init(name_map *map, size_t expected);

/* Frees the map's slots (not the keys) and zeroes it. */
void name_map_free(name_map *map);

/* The value stored for `key`, or -1 when the map has no such key. */
int32_t name_map_get(const name_map *map, const char *key);

/* Stores key -> value (value >= 0) unless the key is already there. *previous (when not NULL)
 * is the value already stored, or -1 when the key was added. False when memory runs out. */
bool name_map_add(name_map *map, const char *key, int32_t value, int32_t *previous);

#pragma GCC visibility pop

#endif
