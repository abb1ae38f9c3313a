/* HDF5 as the library uses it: process-wide set-up, and closing the files cleval writes
 * (prediction, checkpoint and flipped-sample files) so that a failed write, on a full disk for
 * instance, never crashes the process later. Private to the library. */
#ifndef CLEVAL_H5FILE_H
#define CLEVAL_H5FILE_H

#include <hdf5.h>

/* Silences HDF5's own error printing (cleval reports one line of its own) and takes over
 * HDF5's clean-up at exit. Call before any other HDF5 call; cheap to call again. */
void cleval_hdf5_init(void);

/* Flushes `file`, an HDF5 file open for writing, then closes every object still open in it
 * and the file itself. Returns 0 when everything reached the disk, else the errno of the
 * first failure (EIO when the OS reported none). The ids are closed either way. */
int h5file_close(hid_t file);

/* The OS error behind the HDF5 call that just failed, as text ("HDF5 error" when there was
 * none). Set errno to 0 before the call. */
const char *h5file_os_error(void);

#endif
