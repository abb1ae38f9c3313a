/* NVIDIA's limits emulated on PoCL (CLEVAL_EMULATE_LIMITS=nvidia, set before the device opens):
 * the device reports at most 1024 work-items per group and 48 KiB of local memory, a launch
 * past either is refused as NVIDIA's driver refuses it, and the GPU-style network (Gemm, Conv)
 * and KNN kernels still run under those limits and match plain C references at odd sizes. */
#define NN_TEST_SEED 0x6a71u
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/knn.h"
#include "nn_testutil.h"

/* --- the reported limits ---------------------------------------------------------------- */

static void test_limits_reported(void **state)
{
    (void)state;
    const cleval_device_info *info = cleval_device_get_info(test_device());
    size_t own_wg = 0;
    cl_ulong own_local = 0;
    cl_device_id id = cleval_device_id(test_device());
    assert_int_equal(
        clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof own_wg, &own_wg, NULL),
        CL_SUCCESS);
    assert_int_equal(
        clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof own_local, &own_local, NULL),
        CL_SUCCESS);
    assert_int_equal(info->max_work_group_size, own_wg < 1024 ? own_wg : 1024);
    assert_int_equal(info->local_mem_bytes, own_local < 49152 ? own_local : 49152);

    cleval_device_info *all;
    uint32_t n;
    assert_ok(cleval_device_list(&all, &n));
    assert_true(n >= 1);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(all[i].max_work_group_size <= 1024);
        assert_true(all[i].local_mem_bytes <= 49152);
    }
    free(all);

    /* Any other setting is a usage error naming it, not a silent no-op. */
    setenv("CLEVAL_EMULATE_LIMITS", "amd", 1);
    assert_int_equal(cleval_device_list(&all, &n), CLEVAL_ERR_USAGE);
    assert_string_equal(cleval_last_error(), "CLEVAL_EMULATE_LIMITS: 'amd' is not 'nvidia'");
    setenv("CLEVAL_EMULATE_LIMITS", "nvidia", 1);
}

/* --- launches the driver would refuse ---------------------------------------------------- */

static const char *probe_source =
    "__kernel void fill(__global int *out, __local int *scratch) {\n"
    "    size_t l = get_local_id(0);\n"
    "    scratch[l] = (int)get_global_id(0);\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    out[get_global_id(0)] = scratch[get_local_size(0) - 1 - l];\n"
    "}\n"
    "__kernel void touch(__global int *out) {\n"
    "    if (get_global_id(0) == 0 && get_global_id(1) == 0 && get_global_id(2) == 0) out[0] = 7;\n"
    "}\n";

/* Launches `fill` with work-groups of `local` items and `scratch_bytes` of local memory. */
static cleval_status launch_fill(cl_kernel kernel, cl_mem out, size_t global, size_t local,
                                 size_t scratch_bytes)
{
    cleval_kernel_args a = cleval_kernel_args_begin(kernel, "fill");
    cleval_kernel_arg_mem(&a, out);
    cleval_kernel_arg_local(&a, scratch_bytes);
    return cleval_kernel_launch(cleval_device_queue(test_device()), &a, 1, &global, &local, NULL);
}

static void test_oversized_launches_refused(void **state)
{
    (void)state;
    cl_int err;
    cl_context context = cleval_device_context(test_device());
    cl_device_id id = cleval_device_id(test_device());
    cl_program program = clCreateProgramWithSource(context, 1, &probe_source, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(clBuildProgram(program, 1, &id, "-cl-std=CL1.2", NULL, NULL), CL_SUCCESS);
    cl_kernel fill = clCreateKernel(program, "fill", &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_kernel touch = clCreateKernel(program, "touch", &err);
    assert_int_equal(err, CL_SUCCESS);
    size_t own_wg = 0;
    assert_int_equal(
        clGetKernelWorkGroupInfo(fill, id, CL_KERNEL_WORK_GROUP_SIZE, sizeof own_wg, &own_wg, NULL),
        CL_SUCCESS);
    enum { ITEMS = 4096 };
    cl_mem out;
    assert_ok(cleval_device_buffer(test_device(), CL_MEM_READ_WRITE, ITEMS * sizeof(int), NULL,
                                   "out", &out));

    /* 1024 items and exactly 48 KiB: allowed, and the group really ran (reversed ids). */
    assert_ok(launch_fill(fill, out, ITEMS, 1024, 48 * 1024));
    int *got = malloc(ITEMS * sizeof *got);
    assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(test_device()), out, CL_TRUE,
                                                  0, ITEMS * sizeof *got, got, 0, NULL, NULL),
                              "clEnqueueReadBuffer"));
    for (int i = 0; i < ITEMS; i++)
        assert_int_equal(got[i], i / 1024 * 1024 + 1023 - i % 1024);
    free(got);

    /* 2048 items: PoCL itself would run them (when it allows that many), NVIDIA refuses. */
    if (own_wg >= 2048) {
        assert_int_not_equal(launch_fill(fill, out, ITEMS, 2048, 4096), CLEVAL_OK);
        assert_non_null(strstr(cleval_last_error(), "clEnqueueNDRangeKernel(fill)"));
        assert_non_null(strstr(cleval_last_error(), "CL_INVALID_WORK_GROUP_SIZE"));
    } else {
        print_message("note: this device allows %zu work-items per group, under 2048\n", own_wg);
    }
    /* One byte past 48 KiB of local memory. */
    assert_int_not_equal(launch_fill(fill, out, ITEMS, 64, 48 * 1024 + 4), CLEVAL_OK);
    assert_non_null(strstr(cleval_last_error(), "CL_OUT_OF_RESOURCES"));

    /* The third axis holds at most 64 items, whatever the product. */
    size_t global3[3] = {1, 1, 128}, deep[3] = {1, 1, 128}, flat[3] = {2, 2, 32};
    cleval_kernel_args a = cleval_kernel_args_begin(touch, "touch");
    cleval_kernel_arg_mem(&a, out);
    assert_int_not_equal(
        cleval_kernel_launch(cleval_device_queue(test_device()), &a, 3, global3, deep, NULL),
        CLEVAL_OK);
    assert_non_null(strstr(cleval_last_error(), "CL_INVALID_WORK_GROUP_SIZE"));
    size_t global_flat[3] = {2, 2, 32};
    assert_ok(
        cleval_kernel_launch(cleval_device_queue(test_device()), &a, 3, global_flat, flat, NULL));
    assert_ok(cleval_device_finish(test_device()));

    clReleaseMemObject(out);
    clReleaseKernel(fill);
    clReleaseKernel(touch);
    clReleaseProgram(program);
}

/* --- the GPU-style network kernels under the limits ------------------------------------- */

/* Largest |got - want| over (atol + rtol |want|) must stay at most 1. */
static void assert_close(const float *got, const double *want, uint64_t n, const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-4 + 1e-4 * fabs(want[i]))
            fail_msg("%s: element %llu is %.7g, the reference %.7g", what, (unsigned long long)i,
                     got[i], want[i]);
}

/* Y = A B^T + c (A [m, k], B [n, k], c [n]): the fully connected layer of a classifier. */
static void check_gemm(int64_t m, int64_t n, int64_t k)
{
    int64_t adims[2] = {m, k}, bdims[2] = {n, k};
    float *a = random_array((uint64_t)(m * k), -1.0f, 1.0f);
    float *b = random_array((uint64_t)(n * k), -1.0f, 1.0f);
    float *c = random_array((uint64_t)n, -1.0f, 1.0f);
    cleval_onnx_model *model = builder_new(13);
    builder_input(model, "a", 2, adims);
    builder_init(model, "b", 2, bdims, b);
    builder_init(model, "c", 1, &n, c);
    attr_int(builder_node(model, "Gemm", "gemm", "a,b,c", "y"), "transB", 1);
    builder_output(model, "y");
    double *ref = malloc((size_t)(m * n > 0 ? m * n : 1) * sizeof *ref);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = c[j];
            for (int64_t kk = 0; kk < k; kk++)
                s += (double)a[i * k + kk] * b[j * k + kk];
            ref[i * n + j] = s;
        }
    cleval_nn_tensor in = tensor(2, adims, a), out;
    run_general(model, CLEVAL_VARIANT_GPU, CLEVAL_NN_FP32, &in, &out);
    int64_t ydims[2] = {m, n};
    assert_shape(&out, 2, ydims);
    char what[64];
    snprintf(what, sizeof what, "Gemm %lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
    assert_close(out.data, ref, (uint64_t)(m * n), what);
    free(out.data);
    free(ref);
    free(a);
    free(b);
    free(c);
    builder_free(model);
}

/* A 3x3 convolution, stride 1, one pixel of zero padding, bias: [b, c, h, w] -> [b, co, h, w]. */
static void check_conv(int64_t batch, int64_t c, int64_t h, int64_t w, int64_t co)
{
    int64_t xdims[4] = {batch, c, h, w}, wdims[4] = {co, c, 3, 3};
    uint64_t nx = count_of(4, xdims), nw = count_of(4, wdims), ny = (uint64_t)(batch * co * h * w);
    float *x = random_array(nx, -1.0f, 1.0f), *wt = random_array(nw, -0.5f, 0.5f);
    float *bias = random_array((uint64_t)co, -0.5f, 0.5f);
    cleval_onnx_model *model = builder_new(13);
    builder_input(model, "x", 4, xdims);
    builder_init(model, "W", 4, wdims, wt);
    builder_init(model, "B", 1, &co, bias);
    cleval_onnx_node *node = builder_node(model, "Conv", "conv", "x,W,B", "y");
    int64_t kernel[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
    attr_ints(node, "kernel_shape", 2, kernel);
    attr_ints(node, "pads", 4, pads);
    builder_output(model, "y");
    double *ref = malloc((ny ? ny : 1) * sizeof *ref);
    for (int64_t i = 0; i < batch; i++)
        for (int64_t o = 0; o < co; o++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t z = 0; z < w; z++) {
                    double s = bias[o];
                    for (int64_t ci = 0; ci < c; ci++)
                        for (int64_t dy = 0; dy < 3; dy++)
                            for (int64_t dz = 0; dz < 3; dz++) {
                                int64_t iy = y + dy - 1, iz = z + dz - 1;
                                if (iy < 0 || iy >= h || iz < 0 || iz >= w) continue;
                                s += (double)x[((i * c + ci) * h + iy) * w + iz] *
                                     wt[((o * c + ci) * 3 + dy) * 3 + dz];
                            }
                    ref[((i * co + o) * h + y) * w + z] = s;
                }
    cleval_nn_tensor in = tensor(4, xdims, x), out;
    run_general(model, CLEVAL_VARIANT_GPU, CLEVAL_NN_FP32, &in, &out);
    int64_t ydims[4] = {batch, co, h, w};
    assert_shape(&out, 4, ydims);
    char what[64];
    snprintf(what, sizeof what, "Conv %lldx%lldx%lldx%lld -> %lld", (long long)batch, (long long)c,
             (long long)h, (long long)w, (long long)co);
    assert_close(out.data, ref, ny, what);
    free(out.data);
    free(ref);
    free(x);
    free(wt);
    free(bias);
    builder_free(model);
}

static void test_gpu_network_kernels_under_limits(void **state)
{
    (void)state;
    check_gemm(1, 1, 1);
    check_gemm(13, 7, 31);   /* primes, below one tile */
    check_gemm(65, 33, 257); /* one past the 32-row tile and 256 */
    check_gemm(2, 10, 1025); /* a long reduction, few outputs */
    check_conv(1, 1, 1, 1, 1);
    check_conv(2, 3, 13, 11, 5);
    check_conv(1, 17, 9, 33, 33); /* one past a 32-wide tile in both products */
}

/* --- the GPU-style KNN kernels under the limits ------------------------------------------ */

typedef struct ranked {
    double dist;
    int32_t index;
} ranked;

static int by_rank(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Values on a grid of quarters: squared distances are exact in float, so ties are real ties
 * and the (distance, index) order of the contract decides them. */
static void fill_quarters(float *v, size_t n, uint64_t seed, int levels)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((s >> 33) % (uint64_t)levels) * 0.25f;
    }
}

static void check_knn(uint32_t n_train, uint32_t dim, uint32_t nq, uint32_t k, uint32_t classes)
{
    float *train = malloc((size_t)n_train * dim * sizeof *train);
    float *queries = malloc((size_t)nq * dim * sizeof *queries);
    int32_t *labels = malloc(n_train * sizeof *labels);
    fill_quarters(train, (size_t)n_train * dim, n_train + dim, 7);
    fill_quarters(queries, (size_t)nq * dim, nq * 31u + k, 7);
    for (uint32_t i = 0; i < n_train; i++)
        labels[i] = (int32_t)((i * 7919u) % classes);

    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_GPU);
    cleval_knn_config config = {.k = k, .n_classes = classes};
    cleval_knn *knn;
    assert_ok(cleval_knn_create(test_device(), &config, n_train, dim, &knn));
    assert_ok(cleval_knn_set_train(knn, 0, n_train, train, labels));
    assert_ok(cleval_knn_prepare(knn));
    assert_true(cleval_knn_max_batch(knn) >= nq);
    int32_t *pred = malloc(nq * sizeof *pred),
            *neighbors = malloc((size_t)nq * k * sizeof *neighbors);
    assert_ok(cleval_knn_search(knn, queries, nq, pred, NULL));
    assert_ok(cleval_knn_last_neighbors(knn, nq, neighbors));
    cleval_knn_destroy(knn);
    cleval_device_set_variant(test_device(), CLEVAL_VARIANT_CPU);

    ranked *all = malloc(n_train * sizeof *all);
    uint32_t *votes = malloc(classes * sizeof *votes);
    for (uint32_t q = 0; q < nq; q++) {
        for (uint32_t r = 0; r < n_train; r++) {
            double sum = 0;
            for (uint32_t d = 0; d < dim; d++) {
                double diff = (double)queries[(size_t)q * dim + d] - train[(size_t)r * dim + d];
                sum += diff * diff;
            }
            all[r] = (ranked){sum, (int32_t)r};
        }
        qsort(all, n_train, sizeof *all, by_rank);
        memset(votes, 0, classes * sizeof *votes);
        for (uint32_t j = 0; j < k; j++) {
            if (neighbors[(size_t)q * k + j] != all[j].index)
                fail_msg("KNN %u x %u, %u queries, k=%u: query %u neighbour %u is %d, the "
                         "reference %d",
                         n_train, dim, nq, k, q, j, neighbors[(size_t)q * k + j], all[j].index);
            votes[labels[all[j].index]]++;
        }
        uint32_t best = 0; /* a shared top vote goes to the lowest class */
        for (uint32_t c = 1; c < classes; c++)
            if (votes[c] > votes[best]) best = c;
        if (pred[q] != (int32_t)best)
            fail_msg("KNN %u x %u, k=%u: query %u predicts %d, the reference %u", n_train, dim, k,
                     q, pred[q], best);
    }
    free(all);
    free(votes);
    free(pred);
    free(neighbors);
    free(train);
    free(queries);
    free(labels);
}

static void test_gpu_knn_kernels_under_limits(void **state)
{
    (void)state;
    check_knn(1, 1, 1, 1, 2);
    check_knn(97, 13, 31, 5, 3);     /* primes */
    check_knn(1009, 33, 257, 7, 10); /* one past 256 queries, a prime training set */
    check_knn(130, 65, 65, 64, 4);   /* 64 neighbours, one past 64 features */
}

int main(void)
{
    /* Before the first device query: the emulation applies to every device opened after it. */
    setenv("CLEVAL_EMULATE_LIMITS", "nvidia", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_reported),
        cmocka_unit_test(test_oversized_launches_refused),
        cmocka_unit_test(test_gpu_network_kernels_under_limits),
        cmocka_unit_test(test_gpu_knn_kernels_under_limits),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
