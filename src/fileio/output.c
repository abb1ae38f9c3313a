/* The check that a command's outputs never land on its inputs or on each other (see output.h). */
#include "cleval/output.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What makes two paths the same file: the inode of an existing file; for one that does not
 * exist yet, the inode of its folder (whatever links and ".." lead there) and its own name,
 * as good as the real path of its folder plus its name. */
typedef struct file_identity {
    bool exists;
    bool regular;
    bool folder_known; /* when it does not exist: the folder could be stat()ed */
    dev_t dev;
    ino_t ino;
    const char *name; /* its last component, within the path */
} file_identity;

/* stat() of the folder that holds `path`; *name gets its last component. */
static bool stat_folder(const char *path, const char **name, struct stat *st)
{
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (!slash) return stat(".", st) == 0;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char folder[PATH_MAX]; /* no allocation: a comparison that cannot fail half-way */
    if (n >= sizeof folder) return false; /* no such folder can be opened either */
    memcpy(folder, path, n);
    folder[n] = '\0';
    return stat(folder, st) == 0;
}

static void identify(const char *path, file_identity *id)
{
    memset(id, 0, sizeof *id);
    struct stat st = {0};
    if (stat(path, &st) == 0) {
        id->exists = true;
        id->regular = S_ISREG(st.st_mode);
    } else {
        id->folder_known = stat_folder(path, &id->name, &st);
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
}

static bool same_file(const file_identity *a, const file_identity *b)
{
    if (a->exists != b->exists) return false;
    if (a->exists) return a->dev == b->dev && a->ino == b->ino;
    return a->folder_known && b->folder_known && a->dev == b->dev && a->ino == b->ino &&
           strcmp(a->name, b->name) == 0;
}

/* A device or FIFO is written in place: it replaces no file. */
static bool is_compared(const file_identity *id)
{
    return !id->exists || id->regular;
}

/* The identities of the given paths (NULL ones are left zeroed and skipped by the caller). */
static file_identity *identify_all(const cleval_named_path *paths, size_t n)
{
    file_identity *ids = calloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; ids && i < n; i++)
        if (paths[i].path) identify(paths[i].path, &ids[i]);
    return ids;
}

/* The first output that is an input or an earlier output, as a failure naming both. */
static cleval_status find_clash(const cleval_named_path *inputs, const file_identity *input_ids,
                                size_t n_inputs, const cleval_named_path *outputs,
                                const file_identity *output_ids, size_t n_outputs)
{
    for (size_t o = 0; o < n_outputs; o++) {
        const cleval_named_path *out = &outputs[o];
        if (!out->path || !is_compared(&output_ids[o])) continue;
        for (size_t i = 0; i < n_inputs; i++)
            if (inputs[i].path && same_file(&output_ids[o], &input_ids[i]))
                return cleval_fail(CLEVAL_ERR_USAGE,
                                   "%s %s is the same file as %s %s: refusing to overwrite an "
                                   "input",
                                   out->what, out->path, inputs[i].what, inputs[i].path);
        for (size_t e = 0; e < o; e++)
            if (outputs[e].path && is_compared(&output_ids[e]) &&
                same_file(&output_ids[o], &output_ids[e]))
                return cleval_fail(CLEVAL_ERR_USAGE,
                                   "%s %s is the same file as %s %s: refusing to write one file "
                                   "twice",
                                   out->what, out->path, outputs[e].what, outputs[e].path);
    }
    return CLEVAL_OK;
}

cleval_status cleval_output_check(const cleval_named_path *inputs, size_t n_inputs,
                                  const cleval_named_path *outputs, size_t n_outputs)
{
    file_identity *input_ids = identify_all(inputs, n_inputs);
    file_identity *output_ids = identify_all(outputs, n_outputs);
    cleval_status status =
        input_ids && output_ids
            ? find_clash(inputs, input_ids, n_inputs, outputs, output_ids, n_outputs)
            : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory comparing the output files");
    free(input_ids);
    free(output_ids);
    return status;
}
