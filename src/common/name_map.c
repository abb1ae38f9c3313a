/* Open addressing with linear probing over a power-of-two table, at most half full. */
#include "name_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t find_slot(const char *const *keys, size_t size, const char *key)
{
    size_t i = (size_t)hash_name(key) & (size - 1);
    while (keys[i] && strcmp(keys[i], key) != 0)
        i = (i + 1) & (size - 1);
    return i;
}

static bool allocate(name_map *map, size_t size)
{
    map->keys = calloc(size, sizeof *map->keys);
    map->values = malloc(size * sizeof *map->values);
    map->size = size;
    map->count = 0;
    return map->keys && map->values;
}

bool name_map_init(name_map *map, size_t expected)
{
    size_t size = 16;
    while (size / 2 < expected && size < SIZE_MAX / 4)
        size *= 2;
    if (allocate(map, size)) return true;
    name_map_free(map);
    return false;
}

void name_map_free(name_map *map)
{
    free(map->keys);
    free(map->values);
    memset(map, 0, sizeof *map);
}

static bool grow(name_map *map)
{
    name_map bigger;
    if (!allocate(&bigger, map->size ? map->size * 2 : 16)) {
        free(bigger.keys);
        free(bigger.values);
        return false;
    }
    for (size_t i = 0; i < map->size; i++) {
        if (!map->keys[i]) continue;
        size_t slot = find_slot(bigger.keys, bigger.size, map->keys[i]);
        bigger.keys[slot] = map->keys[i];
        bigger.values[slot] = map->values[i];
    }
    bigger.count = map->count;
    name_map_free(map);
    *map = bigger;
    return true;
}

int32_t name_map_get(const name_map *map, const char *key)
{
    if (!map->size) return -1;
    size_t slot = find_slot(map->keys, map->size, key);
    return map->keys[slot] ? map->values[slot] : -1;
}

bool name_map_add(name_map *map, const char *key, int32_t value, int32_t *previous)
{
    if (previous) *previous = -1;
    if ((map->count + 1) * 2 > map->size && !grow(map)) return false;
    size_t slot = find_slot(map->keys, map->size, key);
    if (map->keys[slot]) {
        if (previous) *previous = map->values[slot];
        return true;
    }
    map->keys[slot] = key;
    map->values[slot] = value;
    map->count++;
    return true;
}
