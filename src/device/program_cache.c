/* Device binaries of built programs, kept in the cache folder (see cleval/program_cache.h): a
 * driver without a disk cache of its own then compiles each program once per machine rather
 * than once per run. An entry is trusted only when its header names the key asked for and the
 * binary matches its checksum, and the driver still gets the last word: a binary it refuses is
 * a miss like any other. */
#include "cleval/program_cache.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/cache.h"
#include "cleval/status.h"

#define SUBFOLDER "programs"
/* Binaries above this are not cached: far larger than any of cleval's programs. */
#define MAX_ENTRY_BYTES ((size_t)256 << 20)

static cleval_program_cache_counts counts;

static void count(uint64_t *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

cleval_program_cache_counts cleval_program_cache_get_counts(void)
{
    cleval_program_cache_counts now;
    now.hits = __atomic_load_n(&counts.hits, __ATOMIC_RELAXED);
    now.misses = __atomic_load_n(&counts.misses, __ATOMIC_RELAXED);
    now.rejected = __atomic_load_n(&counts.rejected, __ATOMIC_RELAXED);
    now.stored = __atomic_load_n(&counts.stored, __ATOMIC_RELAXED);
    now.marked = __atomic_load_n(&counts.marked, __ATOMIC_RELAXED);
    return now;
}

/* Hashes a string property of the device into the key; false when the driver cannot give it. */
static bool hash_device_string(uint64_t *hash, cl_device_id device, cl_device_info what)
{
    char text[1024];
    if (clGetDeviceInfo(device, what, sizeof text, text, NULL) != CL_SUCCESS) return false;
    text[sizeof text - 1] = '\0';
    *hash = cleval_cache_hash_string(*hash, text);
    return true;
}

/* The name of the device's platform ("Portable Computing Language", "NVIDIA CUDA"). */
static bool platform_name(cl_device_id device, char *text, size_t size)
{
    cl_platform_id platform;
    if (clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL) !=
            CL_SUCCESS ||
        clGetPlatformInfo(platform, CL_PLATFORM_NAME, size, text, NULL) != CL_SUCCESS)
        return false;
    text[size - 1] = '\0';
    return true;
}

/* PoCL keeps compiled programs in a disk cache of its own (while POCL_KERNEL_CACHE is unset, or
 * set to what PoCL reads as true: a value starting with "1"), and it makes asking for a binary
 * expensive: clGetProgramInfo(CL_PROGRAM_BINARIES) first compiles every kernel of the program
 * for any work-group size (mobilenet_v3_large's first run: 6.7 s, 19.2 s with its binaries
 * fetched). Its own cache does not make a warm start cheap either: a build from source finds
 * its entry by a hash of the source as clang preprocesses it, opencl-c.h included, which costs
 * about 20 ms a program (0.35 of mobilenet_v3_large's 0.41 s of loading), against about 2 ms
 * to load a binary. So under PoCL's cache, cleval stores a binary only on evidence that the
 * program is built again: the first build from source leaves a marker entry, the second one
 * stores the binary. A one-off build (a single run, a tuner's candidate) never pays for it. */
static bool driver_caches_itself(cl_device_id device)
{
    char platform[1024];
    if (!platform_name(device, platform, sizeof platform)) return false;
    const char *pocl_cache = getenv("POCL_KERNEL_CACHE");
    return strstr(platform, "Portable Computing Language") && (!pocl_cache || pocl_cache[0] == '1');
}

uint64_t cleval_program_cache_key(cl_device_id device, const char *source, const char *options)
{
    /* The format's name first: a change to the entry layout changes every key. */
    char platform[1024];
    if (!platform_name(device, platform, sizeof platform)) return 0;
    uint64_t hash = cleval_cache_hash_string(CLEVAL_CACHE_HASH_SEED, CLEVAL_PROGRAM_CACHE_MAGIC);
    hash = cleval_cache_hash_string(hash, CLEVAL_VERSION);
    hash = cleval_cache_hash_string(hash, platform);
    if (!hash_device_string(&hash, device, CL_DEVICE_NAME) ||
        !hash_device_string(&hash, device, CL_DEVICE_VERSION) ||
        !hash_device_string(&hash, device, CL_DRIVER_VERSION))
        return 0;
    hash = cleval_cache_hash_string(hash, options);
    hash = cleval_cache_hash_string(hash, source);
    return hash ? hash : 1; /* 0 means "do not cache" */
}

void cleval_program_cache_name(uint64_t key, char *out)
{
    snprintf(out, 21, "%016llx.bin", (unsigned long long)key);
}

/* The marker entry of a key built once from source, with its binary not stored: the magic and
 * the key, so that a file of another name copied over it reads as no marker. */
#define MARKER_MAGIC "clevseen"
typedef struct marker {
    char magic[8];
    uint64_t key;
} marker;

static void marker_name(uint64_t key, char out[22])
{
    snprintf(out, 22, "%016llx.seen", (unsigned long long)key);
}

static bool built_before(uint64_t key)
{
    char name[22];
    void *data = NULL;
    size_t size = 0;
    marker_name(key, name);
    bool seen = false;
    if (cleval_cache_load(SUBFOLDER, name, sizeof(marker), &data, &size) &&
        size == sizeof(marker)) {
        marker m;
        memcpy(&m, data, sizeof m);
        seen = memcmp(m.magic, MARKER_MAGIC, sizeof m.magic) == 0 && m.key == key;
    }
    free(data);
    return seen;
}

static void mark_built(uint64_t key)
{
    char name[22];
    marker m = {.key = key};
    memcpy(m.magic, MARKER_MAGIC, sizeof m.magic);
    marker_name(key, name);
    if (cleval_cache_store(SUBFOLDER, name, &m, sizeof m)) count(&counts.marked);
}

/* Whether `data` (size bytes, as read) is a whole entry of `key`; says why not in *why. */
static bool entry_valid(const unsigned char *data, size_t size, uint64_t key, const char **why)
{
    cleval_program_cache_header header;
    if (size < sizeof header) {
        *why = "shorter than its header";
        return false;
    }
    memcpy(&header, data, sizeof header);
    if (memcmp(header.magic, CLEVAL_PROGRAM_CACHE_MAGIC, sizeof header.magic) != 0)
        *why = "not a program entry";
    else if (header.key != key)
        *why = "made for another key";
    else if (header.binary_size == 0 || header.binary_size != size - sizeof header)
        *why = "truncated or padded";
    else if (cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, data + sizeof header,
                               size - sizeof header) != header.checksum)
        *why = "checksum mismatch";
    else
        return true;
    return false;
}

/* A program from a verified binary, or NULL when the driver refuses it. */
static cl_program program_from_binary(cl_context context, cl_device_id device,
                                      const unsigned char *binary, size_t size, const char *options,
                                      const char **why)
{
    cl_int binary_status = CL_SUCCESS, err;
    cl_program program =
        clCreateProgramWithBinary(context, 1, &device, &size, &binary, &binary_status, &err);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS) {
        if (err == CL_SUCCESS) clReleaseProgram(program);
        *why = "the driver refused the binary";
        return NULL;
    }
    /* Building a binary program links it for the device; the options must be those it was
     * compiled with. */
    if (clBuildProgram(program, 1, &device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(program);
        *why = "the driver could not build the binary";
        return NULL;
    }
    return program;
}

cl_program cleval_program_cache_load(cl_context context, cl_device_id device, uint64_t key,
                                     const char *options)
{
    char name[21];
    void *data = NULL;
    size_t size = 0;
    cl_program program = NULL;
    cleval_program_cache_name(key, name);
    if (key && cleval_cache_load(SUBFOLDER, name, MAX_ENTRY_BYTES, &data, &size)) {
        const char *why = NULL;
        const unsigned char *bytes = data;
        if (entry_valid(bytes, size, key, &why))
            program =
                program_from_binary(context, device, bytes + sizeof(cleval_program_cache_header),
                                    size - sizeof(cleval_program_cache_header), options, &why);
        if (!program) {
            count(&counts.rejected);
            cleval_log(CLEVAL_LOG_INFO, "program cache entry %s not used: %s", name, why);
        }
        free(data);
    }
    count(program ? &counts.hits : &counts.misses);
    return program;
}

void cleval_program_cache_store(cl_program program, uint64_t key)
{
    cl_uint devices = 0;
    cl_device_id device;
    size_t size = 0;
    char folder[4096];
    if (!key || !cleval_cache_subdir(SUBFOLDER, folder, sizeof folder) ||
        clGetProgramInfo(program, CL_PROGRAM_NUM_DEVICES, sizeof devices, &devices, NULL) !=
            CL_SUCCESS ||
        devices != 1 ||
        clGetProgramInfo(program, CL_PROGRAM_DEVICES, sizeof device, &device, NULL) != CL_SUCCESS)
        return;
    /* Asking for the binary can cost the driver work: only when there is a cache to fill, and
     * under PoCL's cache only for a program built before (see driver_caches_itself). */
    if (driver_caches_itself(device) && !built_before(key)) {
        mark_built(key);
        return;
    }
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) !=
            CL_SUCCESS ||
        size == 0 || size > MAX_ENTRY_BYTES - sizeof(cleval_program_cache_header))
        return;
    unsigned char *entry = malloc(sizeof(cleval_program_cache_header) + size);
    if (!entry) return;
    unsigned char *binary = entry + sizeof(cleval_program_cache_header);
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof binary, &binary, NULL) ==
        CL_SUCCESS) {
        cleval_program_cache_header header = {.key = key, .binary_size = size};
        memcpy(header.magic, CLEVAL_PROGRAM_CACHE_MAGIC, sizeof header.magic);
        header.checksum = cleval_cache_hash(CLEVAL_CACHE_HASH_SEED, binary, size);
        memcpy(entry, &header, sizeof header);
        char name[21];
        cleval_program_cache_name(key, name);
        if (cleval_cache_store(SUBFOLDER, name, entry, sizeof header + size)) count(&counts.stored);
    }
    free(entry);
}
