/* What the libFuzzer targets share: the fuzzer's bytes written to a file of a private folder,
 * because cleval's readers take paths (HDF5 and ONNX files are opened by name). */
#ifndef CLEVAL_FUZZ_INPUT_H
#define CLEVAL_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* Writes `size` bytes to `<private folder>/<name>` and returns that path (static storage). The
 * folder is made once per process under /dev/shm (else $TMPDIR or /tmp) and removed at exit. */
const char *fuzz_input_file(const uint8_t *data, size_t size, const char *name);

/* Aborts (a finding, for the current input) when a child process this one has waited for, such
 * as the forked structure walk of an HDF5 file, ever held over 1 GiB more memory than this
 * process: libFuzzer's -rss_limit_mb sees only its own process, and a child that fills memory
 * declared by a tiny file is a memory bomb all the same. Call it at the end of each input. */
void fuzz_check_children_memory(void);

/* Turns off libhdf5's free lists, so that every block it frees goes back to malloc at once.
 * Call once, before any input. With the lists on, libFuzzer's leak check between inputs reported
 * object headers (H5O_t, 424 bytes, from H5Dcreate2 and H5Fcreate) parked on HDF5's free list as
 * direct leaks after some sequences of inputs: replaying the same 29 inputs for two rounds with
 * a leak check after each reported them every time with the lists on and never with them off
 * (where a header HDF5 really lost would still be reported, as nothing would free it). */
void fuzz_hdf5_without_free_lists(void);

/* Aborts, naming them, when HDF5 objects (files, datasets, attributes...) are still open after
 * an input: every reader and writer must close what it opened, on every path. An id left open
 * keeps its file's metadata cache alive, and HDF5 shares an open file's cache with any later
 * open of the same inode, so one forgotten id corrupts the inputs that follow. */
void fuzz_check_hdf5_closed(void);

#endif
