/* The fuzz targets' private input folder (see fuzz_input.h). */
#include "fuzz_input.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char folder[4096];
static char last_file[4096 + 256];

static void remove_folder(void)
{
    if (last_file[0]) unlink(last_file);
    rmdir(folder);
}

static const char *private_folder(void)
{
    if (folder[0]) return folder;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(folder, sizeof folder, "%s/cleval-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(folder)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_folder);
    return folder;
}

const char *fuzz_input_file(const uint8_t *data, size_t size, const char *name)
{
    snprintf(last_file, sizeof last_file, "%s/%s", private_folder(), name);
    FILE *f = fopen(last_file, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: writing the input");
        abort();
    }
    return last_file;
}

void fuzz_check_hdf5_closed(void)
{
    ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open <= 0) return;
    hid_t ids[16];
    ssize_t got = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, 16, ids);
    fprintf(stderr, "fuzz: %zd HDF5 objects left open after the input:\n", open);
    for (ssize_t i = 0; i < got; i++) {
        char name[512] = "?", file[512] = "?";
        H5Iget_name(ids[i], name, sizeof name);
        H5Fget_name(ids[i], file, sizeof file);
        fprintf(stderr, "  id %lld type %d: %s in %s\n", (long long)ids[i], (int)H5Iget_type(ids[i]),
                name, file);
    }
    abort();
}

void fuzz_hdf5_without_free_lists(void)
{
    if (H5set_free_list_limits(0, 0, 0, 0, 0, 0) < 0) {
        fprintf(stderr, "fuzz: cannot turn off HDF5's free lists\n");
        abort();
    }
}

void fuzz_check_children_memory(void)
{
    /* ru_maxrss (KiB) of the children is the largest any of them ever reached, so the first
     * input to pass the bound is the one that made it. A forked child starts with this
     * process's resident pages, hence the bound above this process's own peak. */
    struct rusage self, children;
    if (getrusage(RUSAGE_SELF, &self) != 0 || getrusage(RUSAGE_CHILDREN, &children) != 0) return;
    if (children.ru_maxrss > self.ru_maxrss + (1L << 20)) {
        fprintf(stderr, "fuzz: a child process held %ld MiB (this process at most %ld MiB)\n",
                children.ru_maxrss >> 10, self.ru_maxrss >> 10);
        abort();
    }
}
