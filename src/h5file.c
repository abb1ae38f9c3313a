/* See h5file.h.
 *
 * Why the clean-up at exit is taken over: when closing a file fails (its last flush hit a
 * full disk), HDF5 1.10 frees the file but keeps its id, and H5close(), which HDF5 registers
 * to run at exit, closes that id again and crashes. So cleval registers H5close() itself and
 * skips it once a close has failed; the process loses nothing by that, as every file cleval
 * opened is closed by then. This works when cleval is the first to use HDF5 in the process
 * (always so in the cleval tool); otherwise HDF5's own clean-up stays in place. */
#include "h5file.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool close_failed;

static void close_hdf5_at_exit(void)
{
    if (!close_failed) H5close();
}

static void init_hdf5(void)
{
    if (H5dont_atexit() >= 0) atexit(close_hdf5_at_exit);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void cleval_hdf5_init(void)
{
    pthread_once(&init_once, init_hdf5);
}

static int last_errno(void)
{
    return errno ? errno : EIO;
}

/* Closes the datasets, groups, types and attributes opened through `file`, a few at a time
 * from a fixed array: closing must not depend on memory that may have run out. */
static void close_objects(hid_t file)
{
    unsigned types =
        H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR | H5F_OBJ_LOCAL;
    hid_t ids[64];
    ssize_t got;
    while ((got = H5Fget_obj_ids(file, types, sizeof ids / sizeof *ids, ids)) > 0) {
        for (ssize_t i = 0; i < got; i++)
            if (H5Idec_ref(ids[i]) < 0) {
                close_failed = true;
                return; /* an id that will not close would come back forever */
            }
    }
}

int h5file_close(hid_t file)
{
    /* Flushing while every object is still open writes their cached data too, and tells
     * the OS error of a failure, which the closes below would not. */
    errno = 0;
    int err = H5Fflush(file, H5F_SCOPE_GLOBAL) < 0 ? last_errno() : 0;
    close_objects(file);
    errno = 0;
    if (H5Fclose(file) < 0) {
        close_failed = true;
        if (!err) err = last_errno();
    }
    return err;
}

const char *h5file_os_error(void)
{
    return errno ? strerror(errno) : "HDF5 error";
}
