/* Opening input files: regular files only (see cleval/input.h). */
/* realpath() is an X/Open call, beyond _POSIX_C_SOURCE; this file wraps it for the others. */
#define _XOPEN_SOURCE 700
#include "cleval/input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_type_name(mode_t mode)
{
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "an unknown kind of file";
}

static cleval_status refuse_type(const char *path, const char *kind, mode_t mode)
{
    if (S_ISDIR(mode))
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: is a directory, not %s", path, kind);
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: not a regular file (%s)", path, file_type_name(mode));
}

/* A descriptor of `path` when it is a regular file. stat() first, so that a device is refused
 * without ever being opened (opening some devices acts on the hardware); then open without
 * blocking (a FIFO swapped in meanwhile must not wait for a writer) and check what was really
 * opened. */
static cleval_status open_regular(const char *path, const char *kind, int *fd, uint64_t *size)
{
    *fd = -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return refuse_type(path, kind, st.st_mode);
    int opened = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (opened < 0)
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(opened, &st) != 0) {
        int err = errno;
        close(opened);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot open: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(opened);
        return refuse_type(path, kind, st.st_mode);
    }
    *fd = opened;
    if (size) *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
    return CLEVAL_OK;
}

cleval_status cleval_input_fopen(const char *path, const char *kind, FILE **out, uint64_t *size)
{
    *out = NULL;
    int fd;
    cleval_status status = open_regular(path, kind, &fd, size);
    if (status != CLEVAL_OK) return status;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int err = errno;
        close(fd);
        return cleval_fail(err == ENOMEM ? CLEVAL_ERR_NOMEM : CLEVAL_ERR_INPUT,
                           "%s: cannot open: %s", path, strerror(err));
    }
    *out = f;
    return CLEVAL_OK;
}

cleval_status cleval_input_check(const char *path, const char *kind)
{
    int fd;
    cleval_status status = open_regular(path, kind, &fd, NULL);
    if (status == CLEVAL_OK) close(fd);
    return status;
}

char *cleval_input_real_path(const char *base, const char *name)
{
    if (name[0] == '/') return realpath(name, NULL);
    size_t n = strlen(base) + 1 + strlen(name) + 1;
    char *joined = malloc(n);
    if (!joined) return NULL;
    snprintf(joined, n, "%s/%s", base, name);
    char *real = realpath(joined, NULL);
    int err = errno;
    free(joined);
    errno = err;
    return real;
}

bool cleval_input_is_inside(const char *path, const char *folder)
{
    size_t n = strlen(folder);
    if (n == 1 && folder[0] == '/') return path[0] == '/' && path[1] != '\0';
    return strncmp(path, folder, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}
