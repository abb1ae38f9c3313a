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

#endif
