/* Temporaries of output files (see output.h): unpredictable names, exclusive creation that
 * never follows a link, an atomic rename at the end, and the clean-up of the temporaries of
 * runs that were killed. */
#include "cleval/output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_ATTEMPTS = 64, RANDOM_DIGITS = 16 };

/* 8 hex digits of the host name (FNV-1a): a temporary whose process id was taken on another
 * host sharing the folder (NFS) is never judged by this host's process table. */
static uint32_t host_tag(void)
{
    char name[256] = "";
    if (gethostname(name, sizeof name - 1) != 0) name[0] = '\0';
    uint32_t hash = 2166136261u;
    for (const char *c = name; *c; c++)
        hash = (hash ^ (uint8_t)*c) * 16777619u;
    return hash;
}

/* The folder of `path` ("." when it names none) and where its last component begins. */
static char *folder_of(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    char *folder = malloc(n + 2);
    if (!folder) return NULL;
    if (n)
        memcpy(folder, path, n);
    else
        folder[n++] = '.';
    folder[n] = '\0';
    return folder;
}

size_t cleval_output_temp_prefix(const char *final_path, long pid, char *out, size_t size)
{
    int n = snprintf(out, size, "%s.tmp.%ld.%08" PRIx32 ".", final_path, pid, host_tag());
    return n < 0 ? 0 : (size_t)n;
}

/* Whether `name` is a temporary of `base` made on this host: its prefix for some process id,
 * then RANDOM_DIGITS hex digits; *pid gets the process id. */
static bool parse_temp_name(const char *name, const char *base, long *pid)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp.", 5) != 0) return false;
    const char *digits = name + n + 5;
    char *end;
    errno = 0;
    long value = strtol(digits, &end, 10);
    if (*digits < '0' || *digits > '9' || errno || value <= 0 || value > INT_MAX) return false;
    char prefix[NAME_MAX + 1];
    size_t length = cleval_output_temp_prefix(base, value, prefix, sizeof prefix);
    if (length >= sizeof prefix || strncmp(name, prefix, length) != 0) return false;
    const char *random = name + length;
    if (strlen(random) != RANDOM_DIGITS || strspn(random, "0123456789abcdef") != RANDOM_DIGITS)
        return false;
    *pid = value;
    return true;
}

/* Removes the temporaries of `final_path` left by processes of this host that are gone:
 * regular files (never a link: lstat) that belong to this user. */
static cleval_status remove_stale_temporaries(const char *final_path)
{
    const char *base;
    char *folder = folder_of(final_path, &base);
    if (!folder)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory looking for the temporaries of %s",
                           final_path);
    DIR *dir = opendir(folder);
    struct dirent *entry;
    while (dir && (entry = readdir(dir))) {
        long pid;
        struct stat st;
        if (!parse_temp_name(entry->d_name, base, &pid)) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to ask */
        if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        if (unlinkat(dirfd(dir), entry->d_name, 0) == 0)
            cleval_log(CLEVAL_LOG_INFO, "removed %s/%s, left by process %ld, which no longer runs",
                       folder, entry->d_name, pid);
    }
    if (dir) closedir(dir);
    free(folder);
    return CLEVAL_OK;
}

/* Whether `path` names an entry of /dev itself (/dev/stdout, /dev/null; not /dev/shm/x) or of
 * /dev/fd or /proc/self/fd. */
static bool names_a_descriptor_or_device(const char *path)
{
    static const char *const folders[] = {"/dev/", "/dev/fd/", "/proc/self/fd/"};
    const char *slash = strrchr(path, '/');
    for (size_t i = 0; i < sizeof folders / sizeof *folders; i++)
        if ((size_t)(slash + 1 - path) == strlen(folders[i]) &&
            strncmp(path, folders[i], strlen(folders[i])) == 0)
            return true;
    return false;
}

bool cleval_output_in_place(const char *path)
{
    struct stat st;
    return names_a_descriptor_or_device(path) || (stat(path, &st) == 0 && !S_ISREG(st.st_mode));
}

static void set_fd(cleval_output_temp *temp, int fd)
{
    temp->fd = fd;
    snprintf(temp->by_fd, sizeof temp->by_fd, "/proc/self/fd/%d", fd);
}

static void release(cleval_output_temp *temp)
{
    if (temp->fd >= 0) close(temp->fd);
    free(temp->path);
    temp->path = NULL;
    temp->fd = -1;
    temp->by_fd[0] = '\0';
}

cleval_status cleval_output_temp_create(const char *final_path, const char *what,
                                        cleval_output_temp *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    cleval_status status = remove_stale_temporaries(final_path);
    if (status != CLEVAL_OK) return status;
    size_t size = strlen(final_path) + 64;
    if (!(out->path = malloc(size)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory naming a temporary for %s", final_path);
    size_t prefix = cleval_output_temp_prefix(final_path, (long)getpid(), out->path, size);
    int err = EEXIST;
    for (int attempt = 0; attempt < MAX_ATTEMPTS && err == EEXIST; attempt++) {
        uint64_t random;
        if (getrandom(&random, sizeof random, 0) != (ssize_t)sizeof random) {
            err = errno;
            break;
        }
        snprintf(out->path + prefix, size - prefix, "%0*" PRIx64, RANDOM_DIGITS, random);
        int fd = open(out->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) {
            set_fd(out, fd);
            return CLEVAL_OK;
        }
        err = errno;
    }
    release(out);
    return cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot create a temporary file next to it: %s", what,
                       final_path, strerror(err));
}

cleval_status cleval_output_temp_rename(cleval_output_temp *temp, const char *name,
                                        const char *what)
{
    char *copy = malloc(strlen(name) + 1);
    if (!copy) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory naming %s", name);
    strcpy(copy, name);
    /* rename() replaces the directory entry `name` itself, whatever it was, link included. */
    if (rename(temp->path, name) != 0) {
        int err = errno;
        free(copy);
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot create it: %s", what, name, strerror(err));
    }
    free(temp->path);
    temp->path = copy;
    return CLEVAL_OK;
}

cleval_status cleval_output_temp_reopen(const char *name, const char *what, cleval_output_temp *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    struct stat st;
    int fd = open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = fd < 0 ? errno : 0;
        if (fd >= 0) close(fd);
        return cleval_fail(CLEVAL_ERR_INPUT, "%s %s: cannot open it: %s", what, name,
                           err == ELOOP ? "a symbolic link"
                           : err        ? strerror(err)
                                        : "not a regular file");
    }
    if (!(out->path = malloc(strlen(name) + 1))) {
        close(fd);
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory opening %s", name);
    }
    strcpy(out->path, name);
    set_fd(out, fd);
    return CLEVAL_OK;
}

cleval_status cleval_output_temp_write(cleval_output_temp *temp, const void *bytes, size_t n,
                                       const char *what)
{
    const char *p = bytes;
    while (n > 0) {
        ssize_t done = write(temp->fd, p, n);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0)
            return cleval_fail(CLEVAL_ERR_IO, "%s: cannot write %s: %s", what, temp->path,
                               done < 0 ? strerror(errno) : "no progress (disk full?)");
        p += done;
        n -= (size_t)done;
    }
    return CLEVAL_OK;
}

cleval_status cleval_output_temp_commit(cleval_output_temp *temp, const char *final_path,
                                        const char *what)
{
    cleval_status status = CLEVAL_OK;
    if (close(temp->fd) != 0 || rename(temp->path, final_path) != 0) {
        status = cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot finish the file: %s", what, final_path,
                             strerror(errno));
        unlink(temp->path);
    }
    temp->fd = -1;
    release(temp);
    return status;
}

void cleval_output_temp_close(cleval_output_temp *temp)
{
    release(temp);
}

void cleval_output_temp_discard(cleval_output_temp *temp)
{
    if (temp->path) unlink(temp->path);
    release(temp);
}

cleval_status cleval_output_write_text(const char *path, const char *what, const char *text)
{
    /* A device or pipe (/dev/null, a FIFO) or a name in /dev (/dev/stdout, even when the shell
     * sent it to a file) is written directly: renaming a temporary file over it would replace
     * the device node or the link itself. */
    if (cleval_output_in_place(path)) {
        struct stat st;
        bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        FILE *f = folder ? NULL : fopen(path, "w");
        bool ok = f && fputs(text, f) != EOF;
        if (f) ok = (fclose(f) == 0) && ok;
        if (ok) return CLEVAL_OK;
        return cleval_fail(CLEVAL_ERR_IO, "%s %s: cannot write: %s", what, path,
                           folder ? "is a directory" : strerror(errno));
    }
    cleval_output_temp temp;
    cleval_status status = cleval_output_temp_create(path, what, &temp);
    if (status != CLEVAL_OK) return status;
    status = cleval_output_temp_write(&temp, text, strlen(text), what);
    if (status == CLEVAL_OK) return cleval_output_temp_commit(&temp, path, what);
    cleval_output_temp_discard(&temp);
    return status;
}
