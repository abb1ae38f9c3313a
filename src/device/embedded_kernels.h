/* The kernels/<name>.cl programs and kernels/<name>.clh shared headers, embedded into the
 * library at build time by cmake/embed_kernels.cmake. */
#ifndef CLEVAL_EMBEDDED_KERNELS_H
#define CLEVAL_EMBEDDED_KERNELS_H

#include <stddef.h>

typedef struct cleval_embedded_kernel {
    const char *name;   /* a program: file name without .cl; a header: "<name>.clh" */
    const char *source; /* NUL-terminated OpenCL C */
} cleval_embedded_kernel;

extern const cleval_embedded_kernel cleval_embedded_kernels[];
extern const size_t cleval_embedded_kernel_count;

#endif
