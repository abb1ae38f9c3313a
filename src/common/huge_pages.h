/* A hint for large buffers that are filled front to back right after they are allocated (a
 * model file as read, weights as unpacked or packed): with transparent huge pages left to
 * madvise, a common default, each 4 KiB page of such a buffer faults on its own. */
#ifndef CLEVAL_HUGE_PAGES_H
#define CLEVAL_HUGE_PAGES_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

/* Asks for huge pages over the whole 2 MiB pages inside [p, p + size) when size is at least
 * 4 MiB; nothing for NULL or smaller buffers. A hint only: where the kernel declines it (huge
 * pages off, another system), nothing changes and nothing fails. */
void cleval_prefer_huge_pages(void *p, size_t size);

#pragma GCC visibility pop

#endif
