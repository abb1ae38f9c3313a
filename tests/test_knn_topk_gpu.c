/* kernels/knn_topk_gpu.cl against a plain C reference: for every split and query, the heap the
 * kernel leaves must hold the m smallest screening scores |r|^2 - 2 q.r of that split's
 * references, each with its own index, as a max-heap, for every parameter set the build
 * exposes (QT, RT, TK, HEAP_LOCAL) at odd sizes: 1, primes, one past a tile, a split width
 * that is not a multiple of RT, m past the split's width, and no queries at all. Inputs are
 * small integers, so every score is exact in float and the m smallest are one multiset
 * whatever the summation order. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/status.h"

typedef struct params {
    int qt, rt, tk, heap_local;
} params;

typedef struct sizes {
    uint32_t nq, n_refs, dim, window, m;
} sizes;

static uint32_t lcg = 12345;

static float small_int(void)
{
    lcg = lcg * 1103515245u + 12345u;
    return (float)((int)((lcg >> 16) % 7) - 3);
}

static cl_mem buffer(size_t bytes, const void *data)
{
    cl_mem mem;
    assert_ok(cleval_device_buffer(test_device(), CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL,
                                   "test buffer", &mem));
    if (bytes)
        assert_int_equal(clEnqueueWriteBuffer(cleval_device_queue(test_device()), mem, CL_TRUE, 0,
                                              bytes, data, 0, NULL, NULL),
                         CL_SUCCESS);
    return mem;
}

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void check(const params *p, const sizes *z)
{
    const uint32_t nq = z->nq, n_refs = z->n_refs, dim = z->dim, m = z->m;
    const uint32_t nq_pad = nq + 3, splits = (n_refs + z->window - 1) / z->window;
    const int index_base = 1000;
    float *q = malloc(((size_t)nq * dim + 1) * sizeof *q);
    float *r = malloc(((size_t)n_refs * dim + 1) * sizeof *r);
    float *norms = malloc(((size_t)n_refs + 1) * sizeof *norms);
    size_t cells = (size_t)splits * nq_pad * m;
    float *hs = malloc((cells + 1) * sizeof *hs);
    int *hi = malloc((cells + 1) * sizeof *hi);
    float *want = malloc(((size_t)z->window + m) * sizeof *want);
    float *got = malloc(((size_t)m + 1) * sizeof *got);
    for (size_t i = 0; i < (size_t)nq * dim; i++)
        q[i] = small_int();
    for (uint32_t j = 0; j < n_refs; j++) {
        norms[j] = 0;
        for (uint32_t d = 0; d < dim; d++) {
            r[(size_t)j * dim + d] = small_int();
            norms[j] += r[(size_t)j * dim + d] * r[(size_t)j * dim + d];
        }
    }
    for (size_t i = 0; i < cells; i++) {
        hs[i] = INFINITY;
        hi[i] = -1;
    }

    char options[160];
    snprintf(options, sizeof options, "-DQT=%d -DRT=%d -DWPT=4 -DTK=%d -DHEAP_LOCAL=%d", p->qt,
             p->rt, p->tk, p->heap_local);
    cl_kernel k;
    assert_ok(cleval_device_kernel(test_device(), "knn_topk_gpu", options, "knn_topk_gpu", &k));
    cl_mem qm = buffer((size_t)nq * dim * 4, q), rm = buffer((size_t)n_refs * dim * 4, r);
    cl_mem nm = buffer((size_t)n_refs * 4, norms);
    cl_mem sm = buffer(cells * 4, hs), im = buffer(cells * 4, hi);
    cleval_kernel_args a = cleval_kernel_args_begin(k, "knn_topk_gpu");
    cleval_kernel_arg_mem(&a, qm);
    cleval_kernel_arg_mem(&a, rm);
    cleval_kernel_arg_mem(&a, nm);
    cleval_kernel_arg_uint(&a, dim);
    cleval_kernel_arg_uint(&a, nq);
    cleval_kernel_arg_uint(&a, nq_pad);
    cleval_kernel_arg_uint(&a, n_refs);
    cleval_kernel_arg_uint(&a, z->window);
    cleval_kernel_arg_uint(&a, m);
    cleval_kernel_arg_mem(&a, sm);
    cleval_kernel_arg_mem(&a, im);
    cleval_kernel_arg_int(&a, index_base);
    if (p->heap_local) {
        cleval_kernel_arg_local(&a, (size_t)p->qt * m * 4);
        cleval_kernel_arg_local(&a, (size_t)p->qt * m * 4);
    }
    size_t local[2] = {(size_t)p->rt / 4, (size_t)p->qt / 4};
    size_t global[2] = {splits * local[0], (nq + p->qt - 1) / p->qt * local[1]};
    if (splits && nq)
        assert_ok(
            cleval_kernel_launch(cleval_device_queue(test_device()), &a, 2, global, local, NULL));
    assert_ok(cleval_device_finish(test_device()));
    if (cells) {
        assert_int_equal(clEnqueueReadBuffer(cleval_device_queue(test_device()), sm, CL_TRUE, 0,
                                             cells * 4, hs, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(cleval_device_queue(test_device()), im, CL_TRUE, 0,
                                             cells * 4, hi, 0, NULL, NULL),
                         CL_SUCCESS);
    }

    for (uint32_t s = 0; s < splits; s++) {
        uint32_t begin = s * z->window, end = begin + z->window;
        end = end < n_refs ? end : n_refs;
        for (uint32_t qi = 0; qi < nq_pad; qi++) {
            const float *heap = hs + ((size_t)s * nq_pad + qi) * m;
            const int *index = hi + ((size_t)s * nq_pad + qi) * m;
            if (qi >= nq) { /* padding rows are never written */
                for (uint32_t j = 0; j < m; j++)
                    if (!isinf(heap[j]) || index[j] != -1)
                        fail_msg("%s: padding query %u of split %u was written", options, qi, s);
                continue;
            }
            uint32_t width = end - begin;
            for (uint32_t j = 0; j < width; j++) {
                float dot = 0;
                for (uint32_t d = 0; d < dim; d++)
                    dot += q[(size_t)qi * dim + d] * r[(size_t)(begin + j) * dim + d];
                want[j] = norms[begin + j] - 2 * dot;
            }
            for (uint32_t j = width; j < m; j++)
                want[j] = INFINITY;
            qsort(want, width > m ? width : m, sizeof *want, by_value);
            for (uint32_t j = 0; j < m; j++) {
                if (j > 0 && heap[(j - 1) / 2] < heap[j])
                    fail_msg("%s: query %u split %u is not a max-heap", options, qi, s);
                got[j] = heap[j];
                if (index[j] < 0) {
                    if (!isinf(heap[j])) fail_msg("%s: a score without an index", options);
                    continue;
                }
                uint32_t ref = (uint32_t)(index[j] - index_base);
                if (ref < begin || ref >= end)
                    fail_msg("%s: query %u split %u holds reference %u from outside [%u, %u)",
                             options, qi, s, ref, begin, end);
                for (uint32_t other = 0; other < j; other++)
                    if (index[other] == index[j]) fail_msg("%s: reference %u twice", options, ref);
                float dot = 0;
                for (uint32_t d = 0; d < dim; d++)
                    dot += q[(size_t)qi * dim + d] * r[(size_t)ref * dim + d];
                assert_float_equal(heap[j], norms[ref] - 2 * dot, 0);
            }
            qsort(got, m, sizeof *got, by_value);
            for (uint32_t j = 0; j < m; j++)
                if (!(got[j] == want[j] || (isinf(got[j]) && isinf(want[j]))))
                    fail_msg("%s nq=%u refs=%u dim=%u window=%u m=%u: query %u split %u, "
                             "%u-th smallest score %g, want %g",
                             options, nq, n_refs, dim, z->window, m, qi, s, j, got[j], want[j]);
        }
    }
    clReleaseMemObject(qm);
    clReleaseMemObject(rm);
    clReleaseMemObject(nm);
    clReleaseMemObject(sm);
    clReleaseMemObject(im);
    clReleaseKernel(k);
    free(q), free(r), free(norms), free(hs), free(hi), free(want), free(got);
}

/* Every parameter set the build takes; the product's is the first (knn_internal.h). */
static const params parameter_sets[] = {
    {32, 64, 16, 1}, {32, 64, 16, 0}, {8, 16, 4, 1}, {4, 16, 1, 0}, {16, 32, 8, 0},
};

static const sizes size_cases[] = {
    {1, 1, 1, 64, 1},      /* the smallest search */
    {0, 97, 3, 64, 5},     /* no queries: nothing written */
    {33, 97, 17, 64, 5},   /* one query past QT, prime references, one k past TK */
    {5, 65, 2, 65, 3},     /* one reference past RT in one split */
    {7, 131, 5, 50, 9},    /* splits that end inside an RT step */
    {3, 10, 4, 8, 12},     /* m larger than a split: empty slots stay +INF / -1 */
    {40, 300, 31, 128, 4}, /* several splits and query blocks */
};

static void test_every_parameter_set_at_odd_sizes(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof parameter_sets / sizeof *parameter_sets; p++)
        for (size_t z = 0; z < sizeof size_cases / sizeof *size_cases; z++)
            check(&parameter_sets[p], &size_cases[z]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_parameter_set_at_odd_sizes),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
