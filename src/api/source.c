/* Data sources: an HDF5 file named by path and keys, or caller arrays seen as a dataset in
 * memory, which the engine streams in batches like a file. */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

/* A heap copy of `text` (NULL stays NULL); false when out of memory. */
static bool copy_string(const char *text, char **out)
{
    *out = NULL;
    if (!text) return true;
    if (!(*out = malloc(strlen(text) + 1))) return false;
    strcpy(*out, text);
    return true;
}

cleval_status cleval_source_create_file(const char *path, const char *x_key, const char *y_key,
                                        cleval_source **out)
{
    if (!out) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_source_create_file: out is NULL");
    *out = NULL;
    if (!path || !*path) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_source_create_file: no path");
    cleval_source *s = calloc(1, sizeof *s);
    if (!s || !copy_string(path, &s->path) || !copy_string(x_key, &s->x_key) ||
        !copy_string(y_key, &s->y_key)) {
        cleval_source_destroy(s);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory describing %s", path);
    }
    *out = s;
    return CLEVAL_OK;
}

cleval_status cleval_source_create_arrays(const cleval_array *x, const cleval_array *y,
                                          cleval_source **out)
{
    static const char label[] = "arrays";
    if (!out) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_source_create_arrays: out is NULL");
    *out = NULL;
    if (!x) return cleval_fail(CLEVAL_ERR_USAGE, "cleval_source_create_arrays: x is NULL");
    if (x->rank >= 1 && x->shape[0] == 0)
        return cleval_fail(CLEVAL_ERR_USAGE, "%s: 'X' has zero samples", label);
    if (y && (y->rank != 1 || y->shape[0] != x->shape[0]))
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "%s: 'y' must be [N] with N = %llu, the samples of 'X'", label,
                           (unsigned long long)x->shape[0]);
    const char *names[] = {"X", "y"};
    const cleval_array arrays[] = {*x, y ? *y : *x};
    cleval_source *s = calloc(1, sizeof *s);
    if (!s || !copy_string(label, &s->path)) {
        cleval_source_destroy(s);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory describing %s", label);
    }
    cleval_status status = cleval_dataset_from_arrays(label, names, arrays, y ? 2 : 1, &s->arrays);
    if (status != CLEVAL_OK) {
        cleval_source_destroy(s);
        return status;
    }
    *out = s;
    return CLEVAL_OK;
}

void cleval_source_destroy(cleval_source *source)
{
    if (!source) return;
    cleval_dataset_close(source->arrays);
    free(source->path);
    free(source->x_key);
    free(source->y_key);
    free(source);
}

cleval_test_set api_test_set(const cleval_source *source)
{
    return (cleval_test_set){.data_path = source->path,
                             .data = source->arrays,
                             .x_key = source->x_key,
                             .y_key = source->y_key};
}
