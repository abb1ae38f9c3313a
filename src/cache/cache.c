/* See cleval/cache.h. */
#include "cleval/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleval/status.h"

#define PATH_CAP 4096

uint64_t cleval_cache_hash(uint64_t hash, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        hash ^= p[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

uint64_t cleval_cache_hash_string(uint64_t hash, const char *s)
{
    return cleval_cache_hash(hash, s, strlen(s) + 1);
}

/* The cache folder as the environment names it; false when caching is off or unnamed. */
static bool root_path(char *out, size_t cap)
{
    const char *dir = getenv("CLEVAL_CACHE_DIR");
    int n;
    if (dir && *dir) {
        if (strcmp(dir, "off") == 0) return false;
        n = snprintf(out, cap, "%s", dir);
    } else if ((dir = getenv("XDG_CACHE_HOME")) && *dir) {
        n = snprintf(out, cap, "%s/cleval", dir);
    } else if ((dir = getenv("HOME")) && *dir) {
        n = snprintf(out, cap, "%s/.cache/cleval", dir);
    } else {
        return false;
    }
    return n > 0 && (size_t)n < cap;
}

/* Warns once about an unusable cache folder. */
static void warn_unusable(const char *path, const char *why)
{
    static int warned;
    if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED)) return;
    cleval_log(CLEVAL_LOG_WARN, "not caching in %s: %s", path, why);
}

/* Makes `path` (mode 0700) unless it exists, then checks it is a folder of ours that nobody
 * else can write (not followed through a link). */
static bool make_safe_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        warn_unusable(path, strerror(errno));
        return false;
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        warn_unusable(path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        warn_unusable(path, "not a folder");
        return false;
    }
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        warn_unusable(path, "another user owns it or can write to it");
        return false;
    }
    return true;
}

/* Makes the parents of the root ($HOME/.cache) as mkdir -p would, with the user's umask. */
static void make_parents(char *path)
{
    for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0777);
        *slash = '/';
    }
}

/* A plain name: no separators, not "." or "..", nothing that needs quoting. */
static bool plain_name(const char *s)
{
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

bool cleval_cache_subdir(const char *sub, char *out, size_t cap)
{
    char root[PATH_CAP];
    if (!plain_name(sub) || !root_path(root, sizeof root)) return false;
    make_parents(root);
    if (!make_safe_dir(root)) return false;
    int n = snprintf(out, cap, "%s/%s", root, sub);
    return n > 0 && (size_t)n < cap && make_safe_dir(out);
}

static bool entry_path(const char *sub, const char *name, char *out, size_t cap)
{
    char dir[PATH_CAP];
    if (!plain_name(name) || !cleval_cache_subdir(sub, dir, sizeof dir)) return false;
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

bool cleval_cache_load(const char *sub, const char *name, size_t max_size, void **data,
                       size_t *size)
{
    *data = NULL;
    *size = 0;
    char path[PATH_CAP];
    if (!entry_path(sub, name, path, sizeof path)) return false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    char *buf = NULL;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
              (uint64_t)st.st_size <= max_size && (buf = malloc((size_t)st.st_size));
    size_t got = 0;
    while (ok && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0 && !(n < 0 && errno == EINTR)) ok = false;
        if (n > 0) got += (size_t)n;
    }
    close(fd);
    if (!ok) {
        free(buf);
        return false;
    }
    *data = buf;
    *size = got;
    return true;
}

bool cleval_cache_store(const char *sub, const char *name, const void *data, size_t size)
{
    char path[PATH_CAP], temp[PATH_CAP + 32];
    uint64_t random;
    if (!entry_path(sub, name, path, sizeof path) ||
        getrandom(&random, sizeof random, 0) != (ssize_t)sizeof random)
        return false;
    snprintf(temp, sizeof temp, "%s.tmp.%016llx", path, (unsigned long long)random);
    int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const char *p = data;
    size_t done = 0;
    bool ok = true;
    while (ok && done < size) {
        ssize_t n = write(fd, p + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ok = false;
        else done += (size_t)n;
    }
    if (close(fd) != 0) ok = false;
    if (ok && rename(temp, path) == 0) return true;
    unlink(temp);
    return false;
}
