/* See huge_pages.h. */
/* madvise() is a BSD/Linux call, beyond _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE
#include "huge_pages.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((uintptr_t)2 << 20)

void cleval_prefer_huge_pages(void *p, size_t size)
{
    if (!p || size < 2 * HUGE_PAGE) return;
    uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + size) & ~(HUGE_PAGE - 1);
    if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
}
