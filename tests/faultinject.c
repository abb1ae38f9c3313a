/* Allocation-failure injector for test_alloc_failures, preloaded (LD_PRELOAD) into the cleval
 * binary only. It wraps the C allocators cleval calls and clCreateBuffer. A call is cleval's
 * when its return address lies in the code of libcleval or of the cleval executable; its call
 * site (see site_of) is then named by return addresses "<object>+0x<offset>", offsets from the
 * object's load address, which ASLR does not change from run to run.
 *   CLEVAL_FAULT_LOG=FILE   appends to FILE each of cleval's call sites on its first use, or,
 *                           with CLEVAL_FAULT_SITE, "fired FUNCTION SITE" when the fault fires;
 *   CLEVAL_FAULT_SITE=SITE  fails the first call from SITE: NULL for an allocator, NULL with
 *                           CL_MEM_OBJECT_ALLOCATION_FAILURE for clCreateBuffer.
 * Allocations by the libraries cleval uses (libc's own, HDF5, cJSON, PoCL, LLVM, the ICD loader)
 * are never failed: their return addresses lie elsewhere. */
#define _GNU_SOURCE /* RTLD_NEXT, dl_iterate_phdr: finding the next allocator, cleval's code */

#include <CL/cl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

/* ---- The code that counts as cleval's ---------------------------------------------------- */

enum { MAX_RANGES = 16, NAME_MAX_LEN = 128 };

typedef struct code_range {
    uintptr_t start, end, base;
    char object[NAME_MAX_LEN];
} code_range;

static code_range ranges[MAX_RANGES];
static int n_ranges;
static bool ready; /* set once the constructor has found cleval's code and the real functions */
static pid_t cleval_pid; /* the process the constructor ran in */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The main program (the cleval executable) and libcleval. */
static bool is_cleval_object(const char *name)
{
    return name[0] == '\0' || strncmp(base_name(name), "libcleval.so", 12) == 0;
}

static int add_code_ranges(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size, (void)data;
    if (!is_cleval_object(info->dlpi_name)) return 0;
    for (int i = 0; i < info->dlpi_phnum && n_ranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        code_range *r = &ranges[n_ranges++];
        r->base = info->dlpi_addr;
        r->start = info->dlpi_addr + ph->p_vaddr;
        r->end = r->start + ph->p_memsz;
        snprintf(r->object, sizeof r->object, "%s",
                 info->dlpi_name[0] ? base_name(info->dlpi_name) : "cleval");
    }
    return 0;
}

static const code_range *cleval_range(uintptr_t address)
{
    for (int i = 0; i < n_ranges; i++)
        if (address >= ranges[i].start && address < ranges[i].end) return &ranges[i];
    return NULL;
}

/* ---- Recording sites and firing the fault ------------------------------------------------ */

/* A call site is the allocating call plus the calls into its function and the one above it,
 * as long as they lie in cleval's code: allocations made by a shared helper (one
 * clCreateBuffer and one aligned_alloc serve every device buffer) are then told apart by who
 * asked for them. */
enum { SITE_DEPTH = 3, MAX_FRAMES = 32, MAX_SITES = 8192 };

typedef struct site {
    uintptr_t pc[SITE_DEPTH];
    int depth;
} site;

static int log_fd = -1;
static site fault; /* the site to fail; depth 0 when none */
static atomic_bool fired;
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static site seen[MAX_SITES];
static int n_seen;

typedef struct frame_list {
    uintptr_t pc[MAX_FRAMES];
    int n;
} frame_list;

static _Unwind_Reason_Code collect_frame(struct _Unwind_Context *context, void *data)
{
    frame_list *frames = data;
    if (frames->n == MAX_FRAMES) return _URC_END_OF_STACK;
    frames->pc[frames->n++] = (uintptr_t)_Unwind_GetIP(context);
    return _URC_NO_REASON;
}

/* The site of the running call, whose return address is `return_address`. The unwinder is
 * libgcc's, linked in: glibc's backtrace() would load it with dlopen, whose bookkeeping
 * LeakSanitizer then reports. */
static site site_of(void *return_address)
{
    frame_list frames = {.n = 0};
    _Unwind_Backtrace(collect_frame, &frames);
    int i = 0;
    while (i < frames.n && frames.pc[i] != (uintptr_t)return_address)
        i++;
    site here = {.pc = {(uintptr_t)return_address}, .depth = 1};
    for (i++; i < frames.n && here.depth < SITE_DEPTH && cleval_range(frames.pc[i]); i++)
        here.pc[here.depth++] = frames.pc[i];
    return here;
}

/* Whether the cleval function making the call at `return_address` was itself called by cJSON:
 * cleval's allocation hook for cJSON (cli_watch_json_memory). Those allocations are cJSON's;
 * the CLI refuses a report built while one failed, and cJSON cannot free an item it failed to
 * attach, so failing them here would only measure cJSON. */
static bool called_back_from_cjson(void *return_address)
{
    frame_list frames = {.n = 0};
    _Unwind_Backtrace(collect_frame, &frames);
    for (int i = 0; i + 1 < frames.n; i++) {
        if (frames.pc[i] != (uintptr_t)return_address) continue;
        Dl_info info;
        return dladdr((void *)frames.pc[i + 1], &info) && info.dli_fname &&
               strstr(info.dli_fname, "libcjson");
    }
    return false;
}

static bool same_site(const site *a, const site *b)
{
    return a->depth == b->depth && memcmp(a->pc, b->pc, (size_t)a->depth * sizeof *a->pc) == 0;
}

/* Logs "<prefix>object+0xOFFSET object+0xOFFSET ...". */
static void log_site(const char *prefix, const site *s)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s", prefix);
    for (int i = 0; i < s->depth; i++) {
        const code_range *r = cleval_range(s->pc[i]);
        n += snprintf(line + n, sizeof line - (size_t)n, "%s%s+0x%lx", i ? " " : "", r->object,
                      (unsigned long)(s->pc[i] - r->base));
    }
    line[n++] = '\n';
    if (log_fd >= 0 && write(log_fd, line, (size_t)n) != n) abort();
}

static void record_site(const site *s)
{
    pthread_mutex_lock(&sites_lock);
    bool known = false;
    for (int i = 0; i < n_seen && !known; i++)
        known = same_site(&seen[i], s);
    if (!known && n_seen < MAX_SITES) {
        seen[n_seen++] = *s;
        log_site("", s);
    }
    pthread_mutex_unlock(&sites_lock);
}

/* Whether the call of `function` returning to `return_address` must fail; records cleval's
 * sites on the way. */
static bool must_fail(const char *function, void *return_address)
{
    /* Only the process cleval started in: a child it forks (the probe of an HDF5 file) is a
     * check whose own failures the parent's outcome does not depend on. */
    if (!ready || getpid() != cleval_pid || !cleval_range((uintptr_t)return_address) ||
        called_back_from_cjson(return_address))
        return false;
    if (!fault.depth) {
        site here = site_of(return_address);
        record_site(&here);
        return false;
    }
    if ((uintptr_t)return_address != fault.pc[0] || atomic_load(&fired)) return false;
    site here = site_of(return_address);
    if (!same_site(&here, &fault) || atomic_exchange(&fired, true)) return false;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "fired %s ", function);
    log_site(prefix, &here);
    return true;
}

/* "object+0xOFFSET" -> the address in this process (0 when the object is not cleval's). */
static uintptr_t frame_address(const char *frame)
{
    const char *plus = strrchr(frame, '+');
    if (!plus) return 0;
    size_t name_len = (size_t)(plus - frame);
    for (int i = 0; i < n_ranges; i++)
        if (strncmp(ranges[i].object, frame, name_len) == 0 && ranges[i].object[name_len] == '\0')
            return ranges[i].base + (uintptr_t)strtoull(plus + 1, NULL, 16);
    return 0;
}

/* A site as log_site writes it -> `out`; false when it names code that is not here. */
static bool parse_site(const char *text, site *out)
{
    char copy[512], *rest;
    snprintf(copy, sizeof copy, "%s", text);
    out->depth = 0;
    for (char *frame = strtok_r(copy, " ", &rest); frame && out->depth < SITE_DEPTH;
         frame = strtok_r(NULL, " ", &rest)) {
        out->pc[out->depth] = frame_address(frame);
        if (!out->pc[out->depth++]) return false;
    }
    return out->depth > 0;
}

/* ---- The real functions ------------------------------------------------------------------ */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static cl_mem (*real_clCreateBuffer)(cl_context, cl_mem_flags, size_t, void *, cl_int *);

/* dlsym may allocate (calloc) while the real allocators are still unknown: those few bytes come
 * from here and are never freed. */
static _Alignas(max_align_t) char bootstrap[4096];
static size_t bootstrap_used;

static bool from_bootstrap(const void *p)
{
    return (const char *)p >= bootstrap && (const char *)p < bootstrap + sizeof bootstrap;
}

static void *bootstrap_alloc(size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (size > sizeof bootstrap - bootstrap_used) return NULL;
    void *p = bootstrap + bootstrap_used;
    bootstrap_used += size;
    return memset(p, 0, size);
}

/* dlsym itself may allocate (its error messages do), which lands here again: the nested calls
 * see `resolving` and take the bootstrap bytes. Atomic, so that the compiler cannot move the
 * flag's store past the dlsym calls. */
static void resolve_real_functions(void)
{
    static atomic_bool resolving;
    if (real_malloc || atomic_exchange(&resolving, true)) return;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    atomic_store(&resolving, false);
}

__attribute__((constructor)) static void faultinject_init(void)
{
    resolve_real_functions();
    /* Only cleval itself: the programs PoCL starts (its linker) run without the injector. */
    unsetenv("LD_PRELOAD");
    dl_iterate_phdr(add_code_ranges, NULL);
    const char *log_path = getenv("CLEVAL_FAULT_LOG");
    if (log_path) log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const char *site = getenv("CLEVAL_FAULT_SITE");
    if (site && !parse_site(site, &fault)) abort(); /* a site of another build */
    cleval_pid = getpid();
    ready = true;
}

/* ---- The wrappers ------------------------------------------------------------------------ */

void *malloc(size_t size)
{
    resolve_real_functions();
    if (!real_malloc) return bootstrap_alloc(size);
    return must_fail("malloc", __builtin_return_address(0)) ? NULL : real_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    resolve_real_functions();
    if (!real_calloc) return size && n > SIZE_MAX / size ? NULL : bootstrap_alloc(n * size);
    return must_fail("calloc", __builtin_return_address(0)) ? NULL : real_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    resolve_real_functions();
    if (from_bootstrap(p)) abort(); /* never happens: only dlsym's own bytes come from there */
    return must_fail("realloc", __builtin_return_address(0)) ? NULL : real_realloc(p, size);
}

void free(void *p)
{
    if (from_bootstrap(p)) return;
    resolve_real_functions();
    if (real_free) real_free(p);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    resolve_real_functions();
    return must_fail("aligned_alloc", __builtin_return_address(0))
               ? NULL
               : real_aligned_alloc(alignment, size);
}

int posix_memalign(void **p, size_t alignment, size_t size)
{
    resolve_real_functions();
    return must_fail("posix_memalign", __builtin_return_address(0))
               ? ENOMEM
               : real_posix_memalign(p, alignment, size);
}

cl_mem clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size, void *host, cl_int *err)
{
    if (must_fail("clCreateBuffer", __builtin_return_address(0))) {
        if (err) *err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return NULL;
    }
    /* Looked up here, not with the allocators: a program without OpenCL never gets this far. */
    if (!real_clCreateBuffer)
        real_clCreateBuffer = (cl_mem(*)(cl_context, cl_mem_flags, size_t, void *, cl_int *))dlsym(
            RTLD_NEXT, "clCreateBuffer");
    return real_clCreateBuffer(context, flags, size, host, err);
}
