/* A first look at a data file from a child process. libhdf5 (Debian's 1.10) trusts the bytes of
 * a file: damaged metadata can make it read out of bounds, crash or loop forever while it opens
 * the file, walks its groups or decodes a chunk index. So before this process asks libhdf5
 * anything about a file, a forked child asks the same questions and more: every link and object,
 * every dataset's type, shape, layout, filters and chunk index, every attribute and every
 * fixed-length string. Only when the child comes back normally does the parent go on (its own
 * questions are a subset, on the same bytes); a child that crashed or ran out of time makes the
 * file "damaged". Raw numeric data is not read here (validate.c checks its storage before it is
 * read), nor are variable-length strings (vlen_strings.c reads those without libhdf5's heap
 * code). */
#include "dataset_internal.h"

#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A structure walk takes milliseconds, or seconds for millions of chunks; a child still busy
 * after this long is stuck in a loop. */
enum { PROBE_SECONDS = 60 };

/* Strings up to this many entries, and this many bytes in all, are read back (class names and
 * the like). The bytes are declared, not stored: a file of 2 KB may declare a million strings of
 * 4 KiB in chunks it never wrote, which read as fill values, and the child would fill 4 GB for
 * them. The parent reads more only after checking that the file stores what it declares
 * (dataset_check_storage), so the walk leaves larger strings to that check. */
enum { MAX_PROBED_STRINGS = 1 << 20, MAX_PROBED_STRING_BYTES = 64 << 20 };

/* Reads fixed-length strings as the parent will. Variable-length ones are left alone: the
 * parent never lets libhdf5 read those (vlen_strings.c reads them, checking every step), and
 * libhdf5's global-heap code is where damaged files make it loop forever. */
static void read_strings(hid_t obj, hid_t ftype, hid_t space, bool attribute)
{
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0 || n > MAX_PROBED_STRINGS || H5Tis_variable_str(ftype) != 0) return;
    size_t width = H5Tget_size(ftype);
    if (width == 0 || width > (1u << 20)) return;
    if ((uint64_t)(n ? n : 1) * (width + 1) > MAX_PROBED_STRING_BYTES) return;
    hid_t mtype = H5Tcopy(H5T_C_S1);
    void *raw = calloc((size_t)(n ? n : 1), width + 1);
    if (mtype >= 0 && raw && H5Tset_size(mtype, width + 1) >= 0) {
        if (attribute)
            H5Aread(obj, mtype, raw);
        else
            H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw);
    }
    free(raw);
    if (mtype >= 0) H5Tclose(mtype);
}

static herr_t probe_attribute(hid_t obj, const char *name, const H5A_info_t *info, void *unused)
{
    (void)info;
    (void)unused;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return 0;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    if (type >= 0 && space >= 0 && H5Tget_class(type) == H5T_STRING)
        read_strings(attr, type, space, true);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Aclose(attr);
    return 0;
}

static void probe_dataset(hid_t dset)
{
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset), dcpl = H5Dget_create_plist(dset);
    if (dcpl >= 0) {
        hsize_t chunk[H5S_MAX_RANK];
        if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
            H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
            hsize_t n_chunks;
            if (space >= 0) H5Dget_num_chunks(dset, space, &n_chunks); /* walks the index */
        }
        int n_filters = H5Pget_nfilters(dcpl);
        for (int i = 0; i < n_filters && i < 32; i++) {
            unsigned flags, values[16];
            size_t n_values = 16;
            char name[64];
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, values, sizeof name, name, NULL);
        }
        H5Pclose(dcpl);
    }
    if (type >= 0 && space >= 0 && H5Tget_class(type) == H5T_STRING)
        read_strings(dset, type, space, false);
    H5Aiterate2(dset, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, probe_attribute, NULL);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
}

static herr_t probe_object(hid_t file, const char *name, const H5L_info_t *link, void *dapl)
{
    if (link->type != H5L_TYPE_HARD) return 0; /* external links: dataset_check_linked_files */
    H5O_info_t info;
    if (H5Oget_info_by_name2(file, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
    if (info.type == H5O_TYPE_DATASET) {
        hid_t dset = H5Dopen2(file, name, *(hid_t *)dapl);
        if (dset >= 0) {
            probe_dataset(dset);
            H5Dclose(dset);
        }
    } else if (info.type == H5O_TYPE_GROUP) {
        H5Aiterate_by_name(file, name, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, probe_attribute, NULL,
                           H5P_DEFAULT);
    }
    return 0;
}

/* The child's walk: what cleval_dataset_open does, then every object. */
static void probe_file(const char *path)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return;
    hid_t dapl = dataset_access_plist();
    if (dapl >= 0 && dataset_check_linked_files(path, file, dapl) == CLEVAL_OK) {
        H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, probe_attribute, NULL);
        H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, probe_object, &dapl);
    }
    if (dapl >= 0) H5Pclose(dapl);
    H5Fclose(file);
}

cleval_status dataset_probe(const char *path)
{
    pid_t pid = fork();
    if (pid < 0)
        return cleval_fail(errno == ENOMEM || errno == EAGAIN ? CLEVAL_ERR_NOMEM
                                                              : CLEVAL_ERR_INTERNAL,
                           "%s: cannot start the check of the file: %s", path, strerror(errno));
    if (pid == 0) {
        /* The child leaves by _exit: no atexit handlers (HDF5's, the sanitizers') run twice.
         * Crash signals get their default action: a handler inherited from the host program
         * (a test runner's, a language runtime's) would resume the host's code in the child. */
        static const int deadly[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGALRM};
        for (size_t i = 0; i < sizeof deadly / sizeof *deadly; i++)
            signal(deadly[i], SIG_DFL);
        alarm(PROBE_SECONDS);
        probe_file(path);
        _exit(0);
    }
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR)
            return cleval_fail(CLEVAL_ERR_INTERNAL, "%s: lost the check of the file: %s", path,
                               strerror(errno));
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return CLEVAL_OK;
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGALRM)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s: the HDF5 file is damaged (reading its structure did not finish "
                           "within %d s)",
                           path, PROBE_SECONDS);
    char how[64];
    if (WIFSIGNALED(wstatus))
        snprintf(how, sizeof how, "%s", strsignal(WTERMSIG(wstatus)));
    else
        snprintf(how, sizeof how, "stopped with status %d", WEXITSTATUS(wstatus));
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: the HDF5 file is damaged (libhdf5 failed while reading its "
                       "structure: %s)",
                       path, how);
}
