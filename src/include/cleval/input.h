/* Opening input files (models, data sets, checkpoints, external weights) safely: only a regular
 * file, after following links, is ever opened for reading. A FIFO, a device or a socket given
 * as an input is refused at once instead of blocking the run or reading from a device. */
#ifndef CLEVAL_INPUT_H
#define CLEVAL_INPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens `path` for reading ("rb") when it is a regular file; *size receives its size in bytes
 * (NULL when not wanted). `kind` names what the file should be ("an HDF5 file") for the
 * directory message. On failure *out is NULL and the status is CLEVAL_ERR_INPUT with one of
 *   "<path>: cannot open: <reason>"
 *   "<path>: is a directory, not <kind>"
 *   "<path>: not a regular file (a FIFO)" (or a character device, a block device, a socket). */
cleval_status cleval_input_fopen(const char *path, const char *kind, FILE **out, uint64_t *size);

/* The same checks for a file another library opens by name (HDF5): call it right before
 * handing `path` over. Opens and closes the file; reads nothing. */
cleval_status cleval_input_check(const char *path, const char *kind);

/* The real path (every link followed, no "." or "..") of `name`, a relative name being taken
 * from folder `base`; heap memory (free()), or NULL with errno set (ENOENT when missing). */
char *cleval_input_real_path(const char *base, const char *name);

/* True when real path `path` lies inside real folder `folder` (both from realpath()). */
bool cleval_input_is_inside(const char *path, const char *folder);

#ifdef __cplusplus
}
#endif

#endif
