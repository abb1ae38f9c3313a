/* The files an HDF5 file makes the library read besides itself: raw data of datasets with
 * external storage, the source files of virtual datasets, and the targets of external links.
 * A hostile data file could name any host file there (/etc/passwd, ../.., /dev/zero, a FIFO),
 * so every one is checked when the file is opened, before any dataset is read: it must exist,
 * be a regular file, and lie inside the data file's folder (real paths) unless
 * cleval_dataset_allow_outside_files(true). Source files and link targets are HDF5 files
 * themselves, checked the same way, as deep as MAX_NESTING files. */
#include "dataset_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/input.h"

enum { MAX_NESTING = 8, MAX_NAME = 4096 };

/* H5Lvisit skips an object it has met only when its header counts more than one link to it,
 * so a damaged header can make a group contain itself and the walk never end: it is cut off at
 * MAX_GROUP_DEPTH nested groups or MAX_LINKS links. */
enum { MAX_GROUP_DEPTH = 64, MAX_LINKS = 1000000 };

static atomic_bool allow_outside;

void cleval_dataset_allow_outside_files(bool allow)
{
    atomic_store(&allow_outside, allow);
}

/* One file being checked; `chain` holds the real paths of it and the files that led to it, so
 * that a virtual dataset naming its own file (or a cycle of files) is checked once. */
typedef struct check {
    const char *path; /* as HDF5 names it, for messages */
    char *folder;     /* its folder as named: where HDF5 looks up its relative names */
    char *storage;    /* where HDF5 looks up relative external storage names (top file) */
    const char *root; /* real path of the top data file's folder */
    hid_t dapl;       /* dataset access as cleval reads (HDF5 refuses to open an open
                       * dataset again with another external storage prefix) */
    const char *chain[MAX_NESTING + 1];
    int depth;
    unsigned long links; /* visited in this file, see MAX_LINKS */
    cleval_status status;
} check;

static cleval_status check_file(check *c, hid_t file);

static herr_t refuse(check *c, const char *dataset, const char *what, const char *name,
                     const char *reason)
{
    c->status = cleval_fail(CLEVAL_ERR_INPUT, "%s: dataset '%s': %s '%s' %s", c->path, dataset,
                            what, name, reason);
    return -1;
}

/* The folder part of `path` ("." when none), heap memory. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *folder = malloc(n + 1);
    if (!folder) return NULL;
    memcpy(folder, slash ? path : ".", n);
    folder[n] = '\0';
    return folder;
}

/* Where HDF5 looks up the relative external storage names of a file in `folder`: under
 * HDF5_EXTFILE_PREFIX when set (it overrides the access list), else under the "${ORIGIN}" that
 * dataset_access_plist() gives, the folder itself. Heap memory. */
static char *storage_folder(const char *folder)
{
    static const char origin[] = "${ORIGIN}";
    const char *prefix = getenv("HDF5_EXTFILE_PREFIX");
    if (!prefix || !*prefix) prefix = origin;
    bool from_origin = strncmp(prefix, origin, sizeof origin - 1) == 0;
    const char *rest = from_origin ? prefix + sizeof origin - 1 : prefix;
    size_t n = (from_origin ? strlen(folder) : 0) + strlen(rest) + 1;
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s%s", from_origin ? folder : "", rest);
    return path;
}

/* Resolves file `name` (relative to folder `base`) that `dataset` uses as `what` and checks
 * it; *real receives its real path (free()). */
static herr_t check_named_file(check *c, const char *dataset, const char *what, const char *base,
                               const char *name, char **real)
{
    *real = cleval_input_real_path(base, name);
    if (!*real)
        return refuse(c, dataset, what, name,
                      errno == ENOENT || errno == ENOTDIR ? "does not exist" : strerror(errno));
    if (!atomic_load(&allow_outside) && !cleval_input_is_inside(*real, c->root))
        return refuse(c, dataset, what, name,
                      "lies outside the data file's folder (--allow-external-storage allows "
                      "it)");
    if (cleval_input_check(*real, "a data file") != CLEVAL_OK) {
        c->status = cleval_fail(CLEVAL_ERR_INPUT, "%s: dataset '%s': %s '%s': %s", c->path, dataset,
                                what, name, cleval_last_error());
        return -1;
    }
    return 0;
}

/* The name HDF5 opens file `name` by, when c's file names it: relative to c's folder. */
static char *named_path(const check *c, const char *name)
{
    bool relative = name[0] != '/';
    size_t n = (relative ? strlen(c->folder) + 1 : 0) + strlen(name) + 1;
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s%s%s", relative ? c->folder : "", relative ? "/" : "", name);
    return path;
}

/* Opens HDF5 file `name` (real path `real`) and checks it, one level deeper than c's file. */
static herr_t check_deeper(check *c, const char *dataset, const char *what, const char *name,
                           const char *real)
{
    check inner = {.root = c->root, .dapl = c->dapl, .depth = c->depth + 1};
    memcpy(inner.chain, c->chain, sizeof c->chain);
    inner.chain[inner.depth] = real;
    char *path = named_path(c, name);
    inner.path = path;
    inner.folder = path ? folder_of(path) : NULL;
    herr_t result = 0;
    hid_t file = inner.folder ? H5Fopen(real, H5F_ACC_RDONLY, H5P_DEFAULT) : H5I_INVALID_HID;
    if (!inner.folder) {
        c->status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory checking %s", c->path);
        result = -1;
    } else if (file < 0) {
        result = refuse(c, dataset, what, name, "is not a readable HDF5 file");
    } else if (check_file(&inner, file) != CLEVAL_OK) {
        /* the message starts from the dataset of c's file, the one the user knows of */
        c->status = cleval_fail(inner.status, "%s: dataset '%s': %s '%s': %s", c->path, dataset,
                                what, name, cleval_last_error());
        result = -1;
    }
    if (file >= 0) H5Fclose(file);
    free(inner.folder);
    free(path);
    return result;
}

/* Checks HDF5 file `name` (a virtual dataset's source, an external link's target) and what it
 * links to in turn, unless it is already being checked. */
static herr_t check_nested_file(check *c, const char *dataset, const char *what, const char *name)
{
    char *real;
    herr_t result = check_named_file(c, dataset, what, c->folder, name, &real);
    bool seen = false;
    for (int i = 0; result == 0 && i <= c->depth; i++)
        seen = seen || strcmp(c->chain[i], real) == 0;
    if (result == 0 && !seen)
        result = c->depth == MAX_NESTING ? refuse(c, dataset, what, name, "is nested too deeply")
                                         : check_deeper(c, dataset, what, name, real);
    free(real);
    return result;
}

/* External raw storage: files of raw bytes read at their offsets. In a nested file they are
 * refused: HDF5 would look their names up from the working folder there, not from the file. */
static herr_t check_external_storage(check *c, const char *dataset, hid_t dcpl)
{
    int count = H5Pget_external_count(dcpl);
    for (int i = 0; i < count; i++) {
        char name[MAX_NAME] = "";
        off_t offset;
        hsize_t size;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) < 0 ||
            strnlen(name, sizeof name) >= sizeof name - 1)
            return refuse(c, dataset, "external storage file", name, "cannot be read");
        if (c->depth > 0)
            return refuse(c, dataset, "external storage file", name,
                          "is not supported in a virtual dataset's source or a linked file");
        char *real;
        herr_t result =
            check_named_file(c, dataset, "external storage file", c->storage, name, &real);
        free(real);
        if (result < 0) return result;
    }
    return 0;
}

/* Virtual datasets: each mapping reads a source dataset, in this file (".") or another. */
static herr_t check_virtual_sources(check *c, const char *dataset, hid_t dcpl)
{
    size_t count = 0;
    if (H5Pget_layout(dcpl) != H5D_VIRTUAL) return 0;
    if (H5Pget_virtual_count(dcpl, &count) < 0)
        return refuse(c, dataset, "virtual dataset", dataset, "has unreadable mappings");
    for (size_t i = 0; i < count; i++) {
        char name[MAX_NAME] = "";
        ssize_t n = H5Pget_virtual_filename(dcpl, i, name, sizeof name);
        if (n < 0 || (size_t)n >= sizeof name)
            return refuse(c, dataset, "virtual dataset source file", name, "cannot be read");
        if (strcmp(name, ".") == 0) continue;
        if (check_nested_file(c, dataset, "virtual dataset source file", name) < 0) return -1;
    }
    return 0;
}

static herr_t check_dataset(check *c, hid_t group, const char *name)
{
    hid_t dset = H5Dopen2(group, name, c->dapl);
    hid_t dcpl = dset >= 0 ? H5Dget_create_plist(dset) : H5I_INVALID_HID;
    herr_t result;
    if (dcpl < 0)
        result = refuse(c, name, "dataset", name, "cannot be opened");
    else if ((result = check_external_storage(c, name, dcpl)) == 0)
        result = check_virtual_sources(c, name, dcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (dset >= 0) H5Dclose(dset);
    return result;
}

static herr_t check_external_link(check *c, hid_t group, const char *name, size_t size)
{
    char *value = malloc(size ? size : 1);
    const char *target = NULL, *object = NULL;
    unsigned flags;
    herr_t result;
    if (!value || H5Lget_val(group, name, value, size, H5P_DEFAULT) < 0 ||
        H5Lunpack_elink_val(value, size, &flags, &target, &object) < 0)
        result = refuse(c, name, "external link", name, "cannot be read");
    else
        result = check_nested_file(c, name, "external link target", target);
    free(value);
    return result;
}

/* The number of groups path `name` (relative to the file's root) passes through. */
static size_t group_depth(const char *name)
{
    size_t depth = 0;
    for (; *name; name++)
        depth += *name == '/';
    return depth;
}

/* H5Lvisit callback: every link of the file, hard links to datasets and external links. */
static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    check *c = data;
    if (++c->links > MAX_LINKS || group_depth(name) > MAX_GROUP_DEPTH) {
        c->status = c->links > MAX_LINKS
                        ? cleval_fail(CLEVAL_ERR_INPUT,
                                      "%s: HDF5 file is damaged (it holds over %d links)",
                                      c->path, MAX_LINKS)
                        : cleval_fail(CLEVAL_ERR_INPUT,
                                      "%s: HDF5 file is damaged (its groups nest over %d deep)",
                                      c->path, MAX_GROUP_DEPTH);
        return -1;
    }
    if (info->type == H5L_TYPE_EXTERNAL)
        return check_external_link(c, group, name, info->u.val_size);
    if (info->type != H5L_TYPE_HARD) return 0;
    H5O_info_t object;
    if (H5Oget_info_by_name2(group, name, &object, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return refuse(c, name, "object", name, "cannot be read");
    return object.type == H5O_TYPE_DATASET ? check_dataset(c, group, name) : 0;
}

static cleval_status check_file(check *c, hid_t file)
{
    c->status = CLEVAL_OK;
    if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, visit_link, c) < 0 && c->status == CLEVAL_OK)
        c->status =
            cleval_fail(CLEVAL_ERR_INPUT, "%s: HDF5 file is damaged (cannot list it)", c->path);
    return c->status;
}

cleval_status dataset_check_linked_files(const char *path, hid_t file, hid_t dapl)
{
    check c = {.path = path, .dapl = dapl};
    char *root = NULL, *self = NULL;
    cleval_status status = CLEVAL_OK;
    if (!(c.folder = folder_of(path)) || !(c.storage = storage_folder(c.folder)))
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s", path);
    else if (!(root = cleval_input_real_path(".", c.folder)) ||
             !(self = cleval_input_real_path(".", path)))
        status = cleval_fail(errno == ENOMEM ? CLEVAL_ERR_NOMEM : CLEVAL_ERR_INPUT,
                             "%s: cannot resolve its real path: %s", path, strerror(errno));
    if (status == CLEVAL_OK) {
        c.root = root;
        c.chain[0] = self;
        status = check_file(&c, file);
    }
    free(self);
    free(root);
    free(c.storage);
    free(c.folder);
    return status;
}

hid_t dataset_access_plist(void)
{
    /* HDF5 looks a relative external storage name up from the working folder by default; from
     * the data file's folder, where dataset_check_linked_files() checked it, instead. */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0 && H5Pset_efile_prefix(dapl, "${ORIGIN}") < 0) {
        H5Pclose(dapl);
        return H5I_INVALID_HID;
    }
    return dapl;
}
