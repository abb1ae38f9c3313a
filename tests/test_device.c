/* The device layer: discovery, selection by index and name, error names, kernel builds (and
 * their failure path), zero-copy host buffers. */
#include "testutil.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleval/device.h"

static void test_lists_at_least_one_device(void **state)
{
    (void)state;
    cleval_device_info *infos;
    uint32_t n;
    assert_ok(cleval_device_list(&infos, &n));
    assert_true(n >= 1);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(infos[i].index, i);
        assert_true(strlen(infos[i].name) > 0);
        assert_true(infos[i].compute_units >= 1);
        assert_true(infos[i].global_mem_bytes > 0);
        assert_non_null(strstr(infos[i].opencl_c_version, "OpenCL C"));
    }
    free(infos);
}

static void test_resolves_index_and_name(void **state)
{
    (void)state;
    cleval_device_info *infos;
    uint32_t n, index = 99;
    assert_ok(cleval_device_list(&infos, &n));
    assert_ok(cleval_device_resolve("0", &index));
    assert_int_equal(index, 0);

    /* An upper-cased prefix of the last device's name selects a device whose name contains
     * that prefix, ignoring case. */
    char spec[5] = {0};
    const char *name = infos[n - 1].name;
    for (int i = 0; i < 4 && name[i]; i++)
        spec[i] = (char)toupper((unsigned char)name[i]);
    assert_ok(cleval_device_resolve(spec, &index));
    assert_true(index < n);
    bool found = false;
    for (const char *h = infos[index].name; *h && !found; h++)
        found = strncasecmp(h, spec, strlen(spec)) == 0;
    assert_true(found);
    free(infos);
}

static void test_rejects_bad_specs(void **state)
{
    (void)state;
    uint32_t index;
    assert_int_equal(cleval_device_resolve("4096", &index), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "out of range"));
    assert_int_equal(cleval_device_resolve("no-such-device-xyz", &index), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "no-such-device-xyz"));
}

static void test_environment_selects_device(void **state)
{
    (void)state;
    uint32_t index;
    setenv("CLEVAL_DEVICE", "no-such-device-abc", 1);
    assert_int_equal(cleval_device_resolve(NULL, &index), CLEVAL_ERR_USAGE);
    assert_non_null(strstr(cleval_last_error(), "CLEVAL_DEVICE"));
    setenv("CLEVAL_DEVICE", "0", 1);
    assert_ok(cleval_device_resolve("", &index));
    assert_int_equal(index, 0);
    unsetenv("CLEVAL_DEVICE");
}

/* Running out of host or device memory is a memory failure, whatever call met it; only a
 * kernel launch's CL_OUT_OF_RESOURCES may mean something else (a work-group too large). */
static void test_memory_errors_are_nomem(void **state)
{
    (void)state;
    assert_int_equal(cleval_cl_status(CL_MEM_OBJECT_ALLOCATION_FAILURE, false), CLEVAL_ERR_NOMEM);
    assert_int_equal(cleval_cl_status(CL_OUT_OF_HOST_MEMORY, true), CLEVAL_ERR_NOMEM);
    assert_int_equal(cleval_cl_status(CL_OUT_OF_RESOURCES, false), CLEVAL_ERR_NOMEM);
    assert_int_equal(cleval_cl_status(CL_OUT_OF_RESOURCES, true), CLEVAL_ERR_OPENCL);
    assert_int_equal(cleval_cl_status(CL_INVALID_KERNEL_ARGS, false), CLEVAL_ERR_OPENCL);
    assert_int_equal(cleval_cl_check(CL_OUT_OF_HOST_MEMORY, "clEnqueueReadBuffer"),
                     CLEVAL_ERR_NOMEM);
    assert_int_equal(cleval_cl_check(CL_OUT_OF_RESOURCES, "clEnqueueNDRangeKernel(histogram)"),
                     CLEVAL_ERR_OPENCL);
    assert_int_equal(cleval_cl_check(CL_OUT_OF_RESOURCES, "clFinish"), CLEVAL_ERR_NOMEM);
    /* A buffer beyond the device's largest allocation is out of device memory too. */
    const cleval_device_info *info = cleval_device_get_info(test_device());
    cl_mem mem;
    size_t too_big = (size_t)info->max_alloc_bytes + 4096;
    assert_int_equal(
        cleval_device_buffer(test_device(), CL_MEM_READ_WRITE, too_big, NULL, "test buffer", &mem),
        CLEVAL_ERR_NOMEM);
    assert_non_null(strstr(cleval_last_error(), "clCreateBuffer(test buffer"));
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(cleval_cl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    assert_string_equal(cleval_cl_error_name(CL_INVALID_WORK_GROUP_SIZE),
                        "CL_INVALID_WORK_GROUP_SIZE");
    assert_string_equal(cleval_cl_error_name(-12345), "CL_UNKNOWN_ERROR");
    assert_int_equal(cleval_cl_check(CL_SUCCESS, "clFinish"), CLEVAL_OK);
    assert_int_equal(cleval_cl_check(CL_MEM_OBJECT_ALLOCATION_FAILURE, "clCreateBuffer"),
                     CLEVAL_ERR_NOMEM);
    assert_string_equal(cleval_last_error(),
                        "clCreateBuffer failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)");
    /* A message may wrap the previous one, read from the buffer it is written to. */
    assert_int_equal(cleval_fail(CLEVAL_ERR_INPUT, "outer %s: %s", "file.h5", cleval_last_error()),
                     CLEVAL_ERR_INPUT);
    assert_string_equal(
        cleval_last_error(),
        "outer file.h5: clCreateBuffer failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)");
}

static void test_unknown_kernel_is_an_error(void **state)
{
    (void)state;
    cl_kernel k;
    assert_int_equal(cleval_device_kernel(test_device(), "histogram", NULL, "no_such_kernel", &k),
                     CLEVAL_ERR_OPENCL);
    assert_non_null(strstr(cleval_last_error(), "CL_INVALID_KERNEL_NAME"));
    assert_int_equal(cleval_device_kernel(test_device(), "no_such_program", NULL, "x", &k),
                     CLEVAL_ERR_INTERNAL);
}

static char captured_log[8192];

static void capture_log(cleval_log_level level, const char *message, void *user)
{
    (void)user;
    if (level == CLEVAL_LOG_ERROR)
        strncat(captured_log, message, sizeof captured_log - strlen(captured_log) - 1);
}

/* Runs the 1-D kernel k over `global` items, then reads `size` bytes of mem into out. */
static void run_and_read(cleval_device *dev, cl_kernel k, size_t global, cl_mem mem, void *out,
                         size_t size)
{
    assert_int_equal(
        clEnqueueNDRangeKernel(cleval_device_queue(dev), k, 1, NULL, &global, NULL, 0, NULL, NULL),
        CL_SUCCESS);
    assert_int_equal(
        clEnqueueReadBuffer(cleval_device_queue(dev), mem, CL_TRUE, 0, size, out, 0, NULL, NULL),
        CL_SUCCESS);
}

/* A fresh folder under the tests' temporary directory, for kernel sources written by a test. */
static const char *kernel_dir(const char *name)
{
    const char *dir = temp_path(name);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    assert_int_equal(system(cmd), 0);
    return dir;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/%s", dir, name);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A kernel that does not compile: the error names clBuildProgram and the build log reaches
 * the log hook. CLEVAL_KERNEL_DIR points the loader at a folder holding the broken source. */
static void test_build_failure_reports_log(void **state)
{
    (void)state;
    const char *dir = kernel_dir("broken_kernels");
    write_text(dir, "broken.cl",
               "__kernel void broken(__global int *x) { x[0] = undeclared_name; }\n");

    captured_log[0] = '\0';
    cleval_log_set(capture_log, CLEVAL_LOG_ERROR, NULL);
    setenv("CLEVAL_KERNEL_DIR", dir, 1);
    cl_kernel k;
    cleval_status status = cleval_device_kernel(test_device(), "broken", NULL, "broken", &k);
    unsetenv("CLEVAL_KERNEL_DIR");
    cleval_log_set(NULL, CLEVAL_LOG_ERROR, NULL);
    assert_int_equal(status, CLEVAL_ERR_OPENCL);
    assert_non_null(strstr(cleval_last_error(), "clBuildProgram"));
    assert_non_null(strstr(cleval_last_error(), "CL_BUILD_PROGRAM_FAILURE"));
    assert_non_null(strstr(captured_log, "undeclared_name"));
}

/* `#include "NAME.clh"` is expanded from the kernel folder: the included macro works, a build
 * error after the include is reported at its line in the .cl file, and a missing header is an
 * error naming it. */
static void test_program_includes_shared_header(void **state)
{
    (void)state;
    const char *dir = kernel_dir("include_kernels");
    write_text(dir, "twice.clh", "/* a shared header */\n#define TWICE(v) (2 * (v))\n");
    write_text(dir, "doubles.cl",
               "#include \"twice.clh\"\n"
               "__kernel void doubles(__global int *x) { x[get_global_id(0)] = "
               "TWICE(x[get_global_id(0)]); }\n");
    write_text(dir, "late_error.cl",
               "#include \"twice.clh\"\n\n__kernel void late_error(__global int *x) { x[0] = "
               "late_name; }\n");
    write_text(dir, "missing.cl", "#include \"absent.clh\"\n__kernel void missing(void) {}\n");

    setenv("CLEVAL_KERNEL_DIR", dir, 1);
    cleval_device *dev = test_device();
    cl_kernel k;
    assert_ok(cleval_device_kernel(dev, "doubles", NULL, "doubles", &k));
    int32_t values[5] = {1, -2, 3, 40, 7};
    cl_int err;
    cl_mem mem =
        clCreateBuffer(cleval_device_context(dev), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                       sizeof values, values, &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(clSetKernelArg(k, 0, sizeof mem, &mem), CL_SUCCESS);
    run_and_read(dev, k, 5, mem, values, sizeof values);
    clReleaseMemObject(mem);
    clReleaseKernel(k);
    const int32_t expected[5] = {2, -4, 6, 80, 14};
    assert_memory_equal(values, expected, sizeof expected);

    captured_log[0] = '\0';
    cleval_log_set(capture_log, CLEVAL_LOG_ERROR, NULL);
    cleval_status status = cleval_device_kernel(dev, "late_error", NULL, "late_error", &k);
    cleval_log_set(NULL, CLEVAL_LOG_ERROR, NULL);
    assert_int_equal(status, CLEVAL_ERR_OPENCL);
    assert_non_null(strstr(captured_log, ":3:"));
    assert_non_null(strstr(captured_log, "late_name"));

    status = cleval_device_kernel(dev, "missing", NULL, "missing", &k);
    unsetenv("CLEVAL_KERNEL_DIR");
    assert_int_not_equal(status, CLEVAL_OK);
    assert_non_null(strstr(cleval_last_error(), "absent.clh"));
}

/* The argument builder sets arguments in order (the kernel then sees them) and, on failure,
 * reports the first error with its argument index: a wrong size for a uint is
 * CL_INVALID_ARG_SIZE (-51) per the OpenCL spec, and the out-of-range index after it (-49)
 * must neither replace it nor mix with it (-51 | -49 is -49). */
static void test_kernel_args_keep_first_error(void **state)
{
    (void)state;
    const char *dir = kernel_dir("kernel_args_kernels");
    write_text(dir, "fill.cl",
               "__kernel void fill(__global int *x, int v, uint n, float f) {\n"
               "    uint i = get_global_id(0); if (i < n) x[i] = v + (int)f; }\n");
    setenv("CLEVAL_KERNEL_DIR", dir, 1);
    cleval_device *dev = test_device();
    cl_kernel k;
    cleval_status status = cleval_device_kernel(dev, "fill", NULL, "fill", &k);
    unsetenv("CLEVAL_KERNEL_DIR");
    assert_ok(status);
    cl_int err;
    cl_mem mem = clCreateBuffer(cleval_device_context(dev), CL_MEM_READ_WRITE, 4 * sizeof(int32_t),
                                NULL, &err);
    assert_int_equal(err, CL_SUCCESS);

    cleval_kernel_args a = cleval_kernel_args_begin(k, "fill");
    cleval_kernel_arg_mem(&a, mem);
    cleval_kernel_arg_int(&a, -7);
    cleval_kernel_arg_uint(&a, 3);
    cleval_kernel_arg_float(&a, 2.0f);
    assert_ok(cleval_kernel_args_end(&a));
    int32_t values[4] = {0, 0, 0, 99};
    assert_int_equal(clEnqueueWriteBuffer(cleval_device_queue(dev), mem, CL_TRUE, 0, sizeof values,
                                          values, 0, NULL, NULL),
                     CL_SUCCESS);
    run_and_read(dev, k, 4, mem, values, sizeof values);
    const int32_t expected[4] = {-5, -5, -5, 99};
    assert_memory_equal(values, expected, sizeof expected);

    a = cleval_kernel_args_begin(k, "fill");
    cleval_kernel_arg_mem(&a, mem);
    uint64_t wide = 3;
    cleval_kernel_arg(&a, sizeof wide, &wide); /* argument 1 is an int: 8 bytes is wrong */
    cleval_kernel_arg_uint(&a, 3);
    cleval_kernel_arg_float(&a, 2.0f);
    cleval_kernel_arg_uint(&a, 5); /* argument 4 does not exist */
    assert_int_equal(cleval_kernel_args_end(&a), CLEVAL_ERR_OPENCL);
    assert_string_equal(cleval_last_error(),
                        "clSetKernelArg(fill, argument 1) failed: CL_INVALID_ARG_SIZE (-51)");
    clReleaseMemObject(mem);
    clReleaseKernel(k);
}

/* The one launch helper: vector arguments reach the kernel, the global size is rounded up to
 * the local one (or left as it is without one), a global size of 0 enqueues nothing, and a
 * failure, of an argument or of the launch, names the kernel (looked up when the builder was
 * given no name). Expected values from a plain C reference of the kernel. */
static void test_kernel_launch(void **state)
{
    (void)state;
    const char *dir = kernel_dir("kernel_launch_kernels");
    write_text(dir, "mark.cl",
               "__kernel void mark(__global int *x, int4 v, int8 w) {\n"
               "    int i = get_global_id(0);\n"
               "    x[i] = v.x + v.w * i + w.s7 + 1000 * (int)get_global_size(0); }\n");
    setenv("CLEVAL_KERNEL_DIR", dir, 1);
    cleval_device *dev = test_device();
    cl_kernel k;
    cleval_status status = cleval_device_kernel(dev, "mark", NULL, "mark", &k);
    unsetenv("CLEVAL_KERNEL_DIR");
    assert_ok(status);
    cl_int err;
    cl_mem mem = clCreateBuffer(cleval_device_context(dev), CL_MEM_READ_WRITE, 8 * sizeof(int32_t),
                                NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue queue = cleval_device_queue(dev);
    const int32_t w[8] = {0, 0, 0, 0, 0, 0, 0, 30};
    struct {
        size_t global, local; /* local 0: none */
        size_t ran;           /* work-items that ran, 0 for none */
    } cases[] = {{5, 4, 8}, {3, 0, 3}, {1, 1, 1}, {7, 7, 7}, {0, 4, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int32_t values[8];
        for (int i = 0; i < 8; i++)
            values[i] = -1;
        assert_int_equal(
            clEnqueueWriteBuffer(queue, mem, CL_TRUE, 0, sizeof values, values, 0, NULL, NULL),
            CL_SUCCESS);
        cleval_kernel_args a = cleval_kernel_args_begin(k, c % 2 ? NULL : "mark");
        cleval_kernel_arg_mem(&a, mem);
        cleval_kernel_arg_int4(&a, 7, 0, 0, 2);
        cleval_kernel_arg_int8(&a, w);
        assert_ok(cleval_kernel_launch(queue, &a, 1, &cases[c].global,
                                       cases[c].local ? &cases[c].local : NULL, NULL));
        assert_int_equal(
            clEnqueueReadBuffer(queue, mem, CL_TRUE, 0, sizeof values, values, 0, NULL, NULL),
            CL_SUCCESS);
        for (int i = 0; i < 8; i++) {
            int32_t expected =
                (size_t)i < cases[c].ran ? 7 + 2 * i + 30 + 1000 * (int32_t)cases[c].ran : -1;
            assert_int_equal(values[i], expected);
        }
    }

    /* A wrong argument: the launch reports it, naming the kernel found from the kernel. */
    cleval_kernel_args a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, mem);
    cleval_kernel_arg_int(&a, 3); /* argument 1 is an int4 */
    cleval_kernel_arg_int8(&a, w);
    size_t global = 4, local = 4;
    assert_int_equal(cleval_kernel_launch(queue, &a, 1, &global, &local, NULL), CLEVAL_ERR_OPENCL);
    assert_string_equal(cleval_last_error(),
                        "clSetKernelArg(mark, argument 1) failed: CL_INVALID_ARG_SIZE (-51)");
    /* A work-group larger than any device allows: the enqueue fails, naming the kernel. */
    a = cleval_kernel_args_begin(k, NULL);
    cleval_kernel_arg_mem(&a, mem);
    cleval_kernel_arg_int4(&a, 7, 0, 0, 2);
    cleval_kernel_arg_int8(&a, w);
    local = (size_t)1 << 30;
    assert_int_not_equal(cleval_kernel_launch(queue, &a, 1, &global, &local, NULL), CLEVAL_OK);
    assert_non_null(
        strstr(cleval_last_error(), "clEnqueueNDRangeKernel(mark) failed: CL_INVALID_"));
    clReleaseMemObject(mem);
    clReleaseKernel(k);
}

static void test_hostbuf_round_trip(void **state)
{
    (void)state;
    cleval_device *dev = test_device();
    cleval_hostbuf buf;
    const size_t n = 1000;
    assert_ok(cleval_hostbuf_create(dev, n * sizeof(int32_t), "test", &buf));
    assert_ok(cleval_hostbuf_map(dev, &buf, true));
    int32_t *values = buf.host;
    for (size_t i = 0; i < n; i++)
        values[i] = (int32_t)(i * 7);
    assert_ok(cleval_hostbuf_unmap(dev, &buf));
    int32_t copy[1000];
    assert_ok(cleval_cl_check(clEnqueueReadBuffer(cleval_device_queue(dev), buf.mem, CL_TRUE, 0,
                                                  sizeof copy, copy, 0, NULL, NULL),
                              "clEnqueueReadBuffer"));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(copy[i], (int32_t)(i * 7));
    cleval_hostbuf_release(&buf);
    cleval_hostbuf_release(&buf); /* a released buffer is a no-op */
}

static void test_close_null_is_noop(void **state)
{
    (void)state;
    cleval_device_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_at_least_one_device),
        cmocka_unit_test(test_resolves_index_and_name),
        cmocka_unit_test(test_rejects_bad_specs),
        cmocka_unit_test(test_environment_selects_device),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_memory_errors_are_nomem),
        cmocka_unit_test(test_unknown_kernel_is_an_error),
        cmocka_unit_test(test_build_failure_reports_log),
        cmocka_unit_test(test_program_includes_shared_header),
        cmocka_unit_test(test_kernel_args_keep_first_error),
        cmocka_unit_test(test_kernel_launch),
        cmocka_unit_test(test_hostbuf_round_trip),
        cmocka_unit_test(test_close_null_is_noop),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
