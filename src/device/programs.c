/* Kernel programs: sources embedded at build time (or read from CLEVAL_KERNEL_DIR during
 * development), compiled once per device and option set, cached on the device object. A later
 * process loads the device binary from cleval's program cache (program_cache.c) instead of
 * compiling. */
#include "device_internal.h"
#include "embedded_kernels.h"

#include "cleval/cache.h"
#include "cleval/program_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *duplicate(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

static cleval_status read_kernel_file(const char *dir, const char *program, char **source)
{
    char path[4096];
    bool header = strstr(program, ".clh") != NULL;
    snprintf(path, sizeof path, "%s/%s%s", dir, program, header ? "" : ".cl");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cleval_fail(CLEVAL_ERR_INPUT, "CLEVAL_KERNEL_DIR: cannot open %s: %s", path,
                           strerror(errno));
    char *text = NULL;
    size_t size = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            size = (size_t)end;
            text = malloc(size + 1);
            if (text && fread(text, 1, size, f) != size) {
                free(text);
                text = NULL;
            }
        }
    }
    fclose(f);
    if (!text) return cleval_fail(CLEVAL_ERR_INPUT, "CLEVAL_KERNEL_DIR: cannot read %s", path);
    text[size] = '\0';
    *source = text;
    return CLEVAL_OK;
}

cleval_status cleval_kernel_source(const char *program, char **source)
{
    *source = NULL;
    const char *dir = getenv("CLEVAL_KERNEL_DIR");
    if (dir && *dir) return read_kernel_file(dir, program, source);
    for (size_t i = 0; i < cleval_embedded_kernel_count; i++) {
        if (strcmp(cleval_embedded_kernels[i].name, program) == 0) {
            *source = duplicate(cleval_embedded_kernels[i].source);
            return *source ? CLEVAL_OK
                           : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory loading %s.cl", program);
        }
    }
    return cleval_fail(CLEVAL_ERR_INTERNAL, "no embedded kernel program named '%s'", program);
}

/* A growing NUL-terminated string. */
typedef struct text_builder {
    char *text;
    size_t length, capacity;
} text_builder;

static bool append(text_builder *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = 2 * (b->length + n + 1);
        char *grown = realloc(b->text, capacity);
        if (!grown) return false;
        b->text = grown;
        b->capacity = capacity;
    }
    memcpy(b->text + b->length, s, n);
    b->length += n;
    b->text[b->length] = '\0';
    return true;
}

/* The device compiler sees no files, so programs share code through lines
 * `#include "NAME.clh"`, expanded here from the embedded (or CLEVAL_KERNEL_DIR) headers; a
 * `#line` after each header keeps the build log's line numbers those of the .cl file. Headers
 * include nothing themselves. */
static cleval_status expand_includes(const char *program, const char *source, char **expanded)
{
    static const char directive[] = "#include \"";
    text_builder out = {0};
    cleval_status status = CLEVAL_OK;
    unsigned line_number = 1;
    for (const char *line = source; *line && status == CLEVAL_OK; line_number++) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) + 1 : strlen(line);
        if (strncmp(line, directive, sizeof directive - 1) != 0) {
            if (!append(&out, line, length)) status = CLEVAL_ERR_NOMEM;
        } else {
            const char *name = line + sizeof directive - 1;
            const char *close = memchr(name, '"', length - (sizeof directive - 1));
            char header_name[256] = "";
            if (close && (size_t)(close - name) < sizeof header_name)
                memcpy(header_name, name, (size_t)(close - name));
            char *header = NULL;
            status = header_name[0] ? cleval_kernel_source(header_name, &header)
                                    : cleval_fail(CLEVAL_ERR_INTERNAL,
                                                  "kernels/%s.cl:%u: malformed #include", program,
                                                  line_number);
            char resume[32];
            int resume_length = snprintf(resume, sizeof resume, "\n#line %u\n", line_number + 1);
            if (status == CLEVAL_OK && (!append(&out, header, strlen(header)) ||
                                        !append(&out, resume, (size_t)resume_length)))
                status = CLEVAL_ERR_NOMEM;
            free(header);
        }
        line += length;
    }
    if (status == CLEVAL_OK && !out.text && !append(&out, "", 0)) status = CLEVAL_ERR_NOMEM;
    if (status == CLEVAL_ERR_NOMEM)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory expanding kernels/%s.cl", program);
    if (status != CLEVAL_OK) {
        free(out.text);
        return status;
    }
    *expanded = out.text;
    return CLEVAL_OK;
}

/* Whether a failed build ran out of memory rather than met an error in the kernel: the
 * compiler quotes strerror(ENOMEM), or, under a memory limit, gives no diagnostic at all (PoCL's
 * bare "failed to build the program"). */
static bool build_ran_out_of_memory(const char *log)
{
    char limit[64];
    return strstr(log, strerror(ENOMEM)) ||
           (cleval_memory_limit(limit, sizeof limit) && !strstr(log, "error"));
}

/* Sets *text to the program's build log (free it), or NULL when the driver cannot give it;
 * returns false when there was no memory to hold it. */
static bool read_build_log(cleval_device *dev, cl_program program, char **text)
{
    *text = NULL;
    size_t size = 0;
    if (clGetProgramBuildInfo(program, dev->device_id, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) !=
        CL_SUCCESS)
        return true;
    char *log = malloc(size + 1);
    if (!log) return false;
    if (clGetProgramBuildInfo(program, dev->device_id, CL_PROGRAM_BUILD_LOG, size, log, NULL) !=
        CL_SUCCESS) {
        free(log);
        return true;
    }
    log[size] = '\0';
    *text = log;
    return true;
}

/* Logs the build log of a failed build, unless the compiler only ran out of memory: returns
 * true for that, which is no fault of the kernel. */
static bool log_build_failure(cleval_device *dev, cl_program program, const char *name)
{
    char *text;
    if (!read_build_log(dev, program, &text)) return true;
    bool out_of_memory = text && build_ran_out_of_memory(text);
    if (text && !out_of_memory)
        cleval_log(CLEVAL_LOG_ERROR, "build log of kernels/%s.cl:\n%s", name, text);
    free(text);
    return out_of_memory;
}

/* A successful build's warnings are for developers: logged at the --verbose level only, so a
 * driver that warns never writes them into the user's stderr through cleval. */
static cleval_status log_build_warnings(cleval_device *dev, cl_program program, const char *name,
                                        const char *options)
{
    char *text;
    if (!read_build_log(dev, program, &text))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading the build log of kernels/%s.cl",
                           name);
    if (text && text[strspn(text, " \t\r\n")] != '\0')
        cleval_log(CLEVAL_LOG_INFO, "build log of kernels/%s.cl [%s]:\n%s", name, options, text);
    free(text);
    return CLEVAL_OK;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static cleval_status build_program(cleval_device *dev, const char *name, const char *options,
                                   cl_program *out)
{
    char *stored, *source;
    cleval_status status = cleval_kernel_source(name, &stored);
    if (status != CLEVAL_OK) return status;
    status = expand_includes(name, stored, &source);
    free(stored);
    if (status != CLEVAL_OK) return status;

    double start = seconds_now();
    char full_options[2048];
    snprintf(full_options, sizeof full_options, "-cl-std=CL1.2 %s", options);
    uint64_t key = cleval_program_cache_key(dev->device_id, source, full_options);
    cl_program program = cleval_program_cache_load(dev->context, dev->device_id, key, full_options);
    if (program) {
        free(source);
        cleval_log(CLEVAL_LOG_INFO, "loaded kernels/%s.cl [%s] from the program cache in %.3f s",
                   name, options, seconds_now() - start);
        *out = program;
        return CLEVAL_OK;
    }

    cl_int err;
    const char *sources[] = {source};
    program = clCreateProgramWithSource(dev->context, 1, sources, NULL, &err);
    free(source);
    if (err != CL_SUCCESS) return cleval_cl_check(err, "clCreateProgramWithSource");

    err = clBuildProgram(program, 1, &dev->device_id, full_options, NULL, NULL);
    if (err != CL_SUCCESS) {
        bool out_of_memory =
            err == CL_BUILD_PROGRAM_FAILURE && log_build_failure(dev, program, name);
        clReleaseProgram(program);
        char limit[64] = "the compiler's own allocation failed";
        if (out_of_memory) {
            cleval_memory_limit(limit, sizeof limit);
            return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory compiling kernels/%s.cl (%s)", name,
                               limit);
        }
        return cleval_fail(cleval_cl_status(err, false),
                           "clBuildProgram(kernels/%s.cl, \"%s\") failed: %s (%d)%s", name, options,
                           cleval_cl_error_name(err), (int)err,
                           err == CL_BUILD_PROGRAM_FAILURE ? "; see the build log above" : "");
    }
    cleval_log(CLEVAL_LOG_INFO, "built kernels/%s.cl [%s] in %.3f s", name, options,
               seconds_now() - start);
    if ((status = log_build_warnings(dev, program, name, options)) != CLEVAL_OK) {
        clReleaseProgram(program);
        return status;
    }
    cleval_program_cache_store(program, key);
    *out = program;
    return CLEVAL_OK;
}

/* Finds or builds the program; the lock keeps two threads from building the same one. */
static cleval_status cached_program(cleval_device *dev, const char *name, const char *options,
                                    cl_program *out)
{
    pthread_mutex_lock(&dev->programs_lock);
    cleval_status status = CLEVAL_OK;
    cleval_program_entry *entry = dev->programs;
    while (entry && (strcmp(entry->program, name) != 0 || strcmp(entry->options, options) != 0))
        entry = entry->next;
    if (!entry) {
        entry = calloc(1, sizeof *entry);
        if (!entry || !(entry->program = duplicate(name)) ||
            !(entry->options = duplicate(options))) {
            if (entry) {
                free(entry->program);
                free(entry);
            }
            entry = NULL;
            status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory caching a program");
        } else if ((status = build_program(dev, name, options, &entry->handle)) != CLEVAL_OK) {
            free(entry->program);
            free(entry->options);
            free(entry);
            entry = NULL;
        } else {
            entry->next = dev->programs;
            dev->programs = entry;
        }
    }
    if (entry) *out = entry->handle;
    pthread_mutex_unlock(&dev->programs_lock);
    return status;
}

cleval_status cleval_device_kernel(cleval_device *dev, const char *program, const char *options,
                                   const char *kernel, cl_kernel *out)
{
    *out = NULL;
    cl_program handle = NULL;
    cleval_status status = cached_program(dev, program, options ? options : "", &handle);
    if (status != CLEVAL_OK) return status;
    cl_int err;
    cl_kernel k = clCreateKernel(handle, kernel, &err);
    if (err != CL_SUCCESS)
        return cleval_fail(cleval_cl_status(err, false),
                           "clCreateKernel(%s in kernels/%s.cl) failed: %s (%d)", kernel, program,
                           cleval_cl_error_name(err), (int)err);
    *out = k;
    return CLEVAL_OK;
}

void cleval_device_release_programs(cleval_device *dev)
{
    cleval_program_entry *entry = dev->programs;
    while (entry) {
        cleval_program_entry *next = entry->next;
        clReleaseProgram(entry->handle);
        free(entry->program);
        free(entry->options);
        free(entry);
        entry = next;
    }
    dev->programs = NULL;
}

cleval_status cleval_kernel_sources_hash(uint64_t *h)
{
    for (size_t i = 0; i < cleval_embedded_kernel_count; i++) {
        const char *name = cleval_embedded_kernels[i].name;
        char *source = NULL;
        cleval_status status = cleval_kernel_source(name, &source);
        if (status != CLEVAL_OK) return status;
        *h = cleval_cache_hash_string(cleval_cache_hash_string(*h, name), source);
        free(source);
    }
    return CLEVAL_OK;
}
