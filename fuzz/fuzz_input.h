/* What the libFuzzer targets share: the fuzzer's bytes written to a file of a private folder,
 * because cleval's readers take paths (HDF5 and ONNX files are opened by name). */
#ifndef CLEVAL_FUZZ_INPUT_H
#define CLEVAL_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* Writes `size` bytes to `<private folder>/<name>` and returns that path (static storage). The
 * folder is made once per process under /dev/shm (else $TMPDIR or /tmp) and removed at exit. */
const char *fuzz_input_file(const uint8_t *data, size_t size, const char *name);

#endif
