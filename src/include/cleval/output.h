/* Output files: the check that no output of a command is one of its inputs (or another of its
 * outputs), and the temporaries every output is written under before an atomic rename. */
#ifndef CLEVAL_OUTPUT_H
#define CLEVAL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A file of a command line and how the user named it ("--save", "--data", "input A"). */
typedef struct cleval_named_path {
    const char *what;
    const char *path; /* NULL: not given, skipped */
} cleval_named_path;

/* Refuses (CLEVAL_ERR_USAGE, one line naming both) an output that is the same file as an
 * input, or as another output: the same device and inode after stat() (through symlinks and
 * hard links) or, where neither exists yet, the same name in the same folder (the folders
 * compared by inode, so links and ".." in them do not matter). Existing outputs that are not
 * regular files (devices, FIFOs: written in place) are not compared. */
cleval_status cleval_output_check(const cleval_named_path *inputs, size_t n_inputs,
                                  const cleval_named_path *outputs, size_t n_outputs);

/* Whether `path` must be written in place rather than through a temporary renamed over it: an
 * existing file that is not a regular file (a device, a FIFO, a folder), or an entry of /dev,
 * /dev/fd or /proc/self/fd (/dev/stdout, /dev/fd/3: names of descriptors, which a rename must
 * never replace, even when the descriptor is a regular file). */
bool cleval_output_in_place(const char *path);

/* A temporary file in its output's folder, named "<final>.tmp.<pid>.<host>.<random>" (<host>:
 * 8 hex digits from the host name; <random>: 16 hex digits from getrandom()), created with
 * O_CREAT | O_EXCL | O_NOFOLLOW, so no file or link planted in the folder is ever followed or
 * reused, and mode 0666 less the umask, as the final file should have. */
typedef struct cleval_output_temp {
    char *path; /* its name in the folder */
    int fd;     /* open read-write on it, -1 once released */
    /* "/proc/self/fd/<fd>": the name under which HDF5 (which opens files by name) reaches the
     * very file behind fd. The kernel resolves it through the descriptor, never through the
     * folder, so nobody can swap another file in between, and it still works once the file is
     * renamed. HDF5's default (sec2) driver, 1.10 included, simply open()s that name with
     * O_RDWR | O_CREAT | O_TRUNC for H5Fcreate and O_RDWR for H5Fopen. */
    char by_fd[32];
} cleval_output_temp;

/* Writes "<final_path>.tmp.<pid>.<host>." (the name of a temporary of final_path made by
 * process `pid` on this host, up to its random part) to out; returns its length. */
size_t cleval_output_temp_prefix(const char *final_path, long pid, char *out, size_t size);

/* Creates the temporary of `final_path` (`what`: the flag, for messages). First removes the
 * temporaries of the same final path that runs killed on this host left: regular files of
 * this user whose process no longer exists, each logged at INFO level. */
cleval_status cleval_output_temp_create(const char *final_path, const char *what,
                                        cleval_output_temp *out);

/* Gives the temporary a fixed `name` (a partial file that a later run resumes), replacing what
 * had that name without following it when it is a link. */
cleval_status cleval_output_temp_rename(cleval_output_temp *temp, const char *name,
                                        const char *what);

/* Opens an existing temporary (a partial file a run left for --resume) for reading and writing,
 * refusing a symbolic link or anything but a regular file. */
cleval_status cleval_output_temp_reopen(const char *name, const char *what,
                                        cleval_output_temp *out);

/* Writes all n bytes at the temporary's current offset. */
cleval_status cleval_output_temp_write(cleval_output_temp *temp, const void *bytes, size_t n,
                                       const char *what);

/* Renames the temporary to `final_path` (atomic in its folder) and releases it; on failure
 * removes it. */
cleval_status cleval_output_temp_commit(cleval_output_temp *temp, const char *final_path,
                                        const char *what);

/* Releases the temporary and keeps the file (for a later --resume). */
void cleval_output_temp_close(cleval_output_temp *temp);

/* Releases the temporary and removes the file. */
void cleval_output_temp_discard(cleval_output_temp *temp);

/* Writes `text` to `path` (`what`: the flag, for messages) under a temporary renamed over it
 * at the end, so the final name never holds a partial file; devices, pipes and names in /dev
 * (cleval_output_in_place) are written directly. */
cleval_status cleval_output_write_text(const char *path, const char *what, const char *text);

#ifdef __cplusplus
}
#endif

#endif
