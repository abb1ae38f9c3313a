/* Every embedded kernel program compiles without a single warning on the test device: each is
 * built with -Werror and the -D option sets the product passes (every value of every switch at
 * least once, not their full product), and a program in kernels/ missing from the table fails
 * the test; no source defines a plain (C99, non-static) inline function. A build warning never
 * reaches a user's stderr, only the --verbose log. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleval/device.h"
#include "cleval/status.h"

/* One program, a kernel to ask for (which builds the whole program) and its option sets. */
typedef struct program_variants {
    const char *program;
    const char *kernel;
    const char *options[24];
} program_variants;

/* The options as the launchers in src/ format them (storage.clh: X_HALF/Y_HALF for float
 * tensors, RAW_T for the integer ones the data-movement ops copy). HALF_MATH needs
 * cl_khr_fp16 and is added below only where the device has it. */
static const program_variants programs[] = {
    {"auc", "auc_keys", {""}},
    {"cast", "cast",
     {"-DSRC_T=float -DSRC_FLOAT=1 -DDST_T=long -DDST_FLOAT=0 -DCONV=1 -DROUND_HALF=0 -DX_HALF=0 -DY_HALF=0",
      "-DSRC_T=float -DSRC_FLOAT=1 -DDST_T=uchar -DDST_FLOAT=0 -DCONV=2 -DROUND_HALF=0 -DX_HALF=1 -DY_HALF=0",
      "-DSRC_T=float -DSRC_FLOAT=1 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=1 -DX_HALF=0 -DY_HALF=1",
      "-DSRC_T=long -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=0 -DX_HALF=0 -DY_HALF=0",
      "-DSRC_T=int -DSRC_FLOAT=0 -DDST_T=char -DDST_FLOAT=0 -DCONV=0 -DROUND_HALF=0 -DX_HALF=0 -DY_HALF=0",
      "-DSRC_T=char -DSRC_FLOAT=0 -DDST_T=uchar -DDST_FLOAT=0 -DCONV=2 -DROUND_HALF=0 -DX_HALF=0 -DY_HALF=0",
      "-DSRC_T=uchar -DSRC_FLOAT=0 -DDST_T=int -DDST_FLOAT=0 -DCONV=0 -DROUND_HALF=0 -DX_HALF=0 -DY_HALF=0",
      /* feed.c: convert_input from every host type */
      "-DSRC_T=uchar -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=0 -DPREP=1 -DNHWC=1",
      "-DSRC_T=char -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=1 -DPREP=1 -DNHWC=0",
      "-DSRC_T=ushort -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=0 -DPREP=0 -DNHWC=0",
      "-DSRC_T=short -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=1 -DPREP=0 -DNHWC=0",
      "-DSRC_T=half -DSRC_FLOAT=0 -DSRC_HALF=1 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=1 -DPREP=1 -DNHWC=1",
      "-DSRC_T=float -DSRC_FLOAT=0 -DDST_T=long -DDST_FLOAT=0 -DCONV=1 -DROUND_HALF=0 -DPREP=0 -DNHWC=0",
      "-DSRC_T=int -DSRC_FLOAT=0 -DDST_T=long -DDST_FLOAT=0 -DCONV=0 -DROUND_HALF=0 -DPREP=0 -DNHWC=0",
      "-DSRC_T=long -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=0 -DPREP=0 -DNHWC=0"}},
    {"conv", "conv_cpu",
     {"-DMR=8 -DNV=2 -DPOOL=0 -DCLAMP=0 -DVEC_STORE=0 -DRUN16=0 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DMR=4 -DNV=1 -DPOOL=1 -DCLAMP=1 -DVEC_STORE=1 -DRUN16=1 -DX_HALF=1 -DY_HALF=1 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DMR=8 -DNV=2 -DPOOL=0 -DCLAMP=2 -DVEC_STORE=1 -DRUN16=1 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=1 -DI8_FLOAT=1",
      "-DMR=8 -DNV=1 -DPOOL=1 -DCLAMP=1 -DVEC_STORE=0 -DRUN16=0 -DX_HALF=0 -DY_HALF=1 -DW_HALF=0 -DINT8=1 -DI8_FLOAT=0",
      "-DMR=8 -DNV=2 -DPOOL=1 -DCLAMP=4 -DVEC_STORE=1 -DRUN16=0 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=1 -DX_HALF=1 -DY_HALF=0 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0"}},
    {"conv_depthwise", "conv_dw_channels",
     {"-DCLAMP=0 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=1 -DX_HALF=1 -DY_HALF=1 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=2 -DX_HALF=0 -DY_HALF=1 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=3 -DX_HALF=1 -DY_HALF=0 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=4 -DFLAT_VECTORS=2 -DX_HALF=1 -DY_HALF=1 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=1 -DPIX=8 -DIN_MAX=24 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DCLAMP=0 -DPIX=4 -DIN_MAX=16 -DX_HALF=1 -DY_HALF=0 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0"}},
    {"conv_pad", "conv_pad_rows", {"-DX_HALF=0 -DY_HALF=0", "-DX_HALF=1 -DY_HALF=1"}},
    {"conv_gpu", "conv_gpu",
     {"-DTM=64 -DTN=64 -DTK=16 -DCLAMP=0 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DTM=64 -DTN=32 -DTK=16 -DCLAMP=1 -DX_HALF=1 -DY_HALF=1 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DTM=64 -DTN=64 -DTK=16 -DCLAMP=2 -DX_HALF=0 -DY_HALF=1 -DW_HALF=0 -DINT8=1 -DI8_FLOAT=0",
      "-DTM=64 -DTN=32 -DTK=16 -DCLAMP=3 -DX_HALF=1 -DY_HALF=0 -DW_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DTM=64 -DTN=64 -DTK=16 -DCLAMP=4 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0"}},
    {"drift", "drift_confidence", {"-DDRIFT_FP64=1", "-DDRIFT_FP64=0"}},
    {"elementwise", "binary",
     {"-DA_HALF=0 -DB_HALF=0 -DY_HALF=0", "-DA_HALF=1 -DB_HALF=0 -DY_HALF=1",
      "-DA_HALF=1 -DB_HALF=1 -DY_HALF=1", "-DX_HALF=1 -DY_HALF=0", "-DRAW_T=long",
      "-DRAW_T=uchar"}},
    {"errors", "error_keys", {""}},
    {"expand", "expand", {"-DX_HALF=0 -DY_HALF=0", "-DX_HALF=1 -DY_HALF=1", "-DY_HALF=1"}},
    {"gather_rows", "gather_rows",
     {"-DINDEX_T=long -DY_HALF=0", "-DINDEX_T=int -DY_HALF=1", "-DINDEX_T=char -DY_HALF=0",
      "-DINDEX_T=uchar -DY_HALF=0"}},
    {"gemm", "gemm_cpu",
     {"-DMR=8 -DNV=2 -DKC=256 -DHAS_C=0 -DCLAMP=0 -DA_KS1=0 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DMR=4 -DNV=1 -DKC=128 -DHAS_C=1 -DCLAMP=1 -DA_KS1=1 -DA_HALF=1 -DB_HALF=1 -DC_HALF=1 -DY_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DMR=8 -DNV=2 -DKC=256 -DHAS_C=1 -DCLAMP=2 -DA_KS1=1 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=1 -DI8_FLOAT=1",
      "-DMR=8 -DNV=2 -DKC=256 -DHAS_C=1 -DCLAMP=4 -DA_KS1=1 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=0 -DI8_FLOAT=0",
      "-DNV=2 -DB_HALF=1", "-DNV=1 -DB_HALF=0"}},
    {"gemm_gpu", "gemm_gpu",
     {"-DHAS_C=1 -DCLAMP=1 -DMWG=64 -DNWG=64 -DKWG=16 -DMDIMC=8 -DNDIMC=8 -DVWM=4 -DVWN=4 -DA_HALF=1 -DB_HALF=1 -DC_HALF=0 -DY_HALF=1 -DINT8=0 -DI8_FLOAT=0",
      "-DHAS_C=0 -DCLAMP=0 -DMWG=32 -DNWG=32 -DKWG=16 -DMDIMC=8 -DNDIMC=8 -DVWM=2 -DVWN=2 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=1 -DI8_FLOAT=0",
      "-DHAS_C=1 -DCLAMP=2 -DMWG=64 -DNWG=64 -DKWG=16 -DMDIMC=8 -DNDIMC=8 -DVWM=4 -DVWN=4 -DA_HALF=0 -DB_HALF=0 -DC_HALF=1 -DY_HALF=0 -DINT8=1 -DI8_FLOAT=0",
      "-DHAS_C=0 -DCLAMP=3 -DMWG=32 -DNWG=32 -DKWG=16 -DMDIMC=8 -DNDIMC=8 -DVWM=2 -DVWN=2 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=0 -DI8_FLOAT=0"}},
    {"head", "head",
     {"-DROWS=4 -DWG=32 -DKT=64 -DCMAX=32 -DHAS_C=1 -DSOFTMAX=0",
      "-DROWS=4 -DWG=256 -DKT=64 -DCMAX=1024 -DHAS_C=0 -DSOFTMAX=1",
      "-DROWS=4 -DWG=64 -DKT=64 -DCMAX=64 -DHAS_C=1 -DSOFTMAX=2"}},
    {"histogram", "histogram_global",
     {"-DPAIRED=1 -DPRIVATE_BINS=128", "-DPAIRED=0 -DPRIVATE_BINS=16", "-DPAIRED=1",
      "-DPAIRED=0"}},
    {"knn_exact", "knn_exact", {"-DMETRIC_COSINE=0", "-DMETRIC_COSINE=1"}},
    {"knn_int", "knn_int_direct",
     {"-DSTORE_T=uchar -DACC_T=int -DMR=4 -DNV=4 -DVW=16 -DIB=128 -DQB=256",
      "-DSTORE_T=char -DACC_T=int -DMR=4 -DNV=2 -DVW=8 -DIB=128 -DQB=256",
      "-DSTORE_T=ushort -DACC_T=long -DMR=4 -DNV=4 -DVW=4 -DIB=128 -DQB=256",
      "-DSTORE_T=short -DACC_T=long -DMR=4 -DNV=4 -DVW=16 -DIB=128 -DQB=256"}},
    {"knn_scores", "knn_scores_cpu",
     {"", "-DMR=4 -DNV=2 -DVW=8 -DQB=256", "-DMR=4 -DNV=4 -DVW=4 -DQB=256"}},
    {"knn_topk_gpu", "knn_topk_gpu",
     {"-DQT=32 -DRT=64 -DWPT=4 -DTK=16 -DHEAP_LOCAL=1",
      "-DQT=32 -DRT=64 -DWPT=4 -DTK=16 -DHEAP_LOCAL=0", "-DQT=8 -DRT=16 -DWPT=4 -DTK=4 -DHEAP_LOCAL=1",
      "-DQT=4 -DRT=16 -DWPT=4 -DTK=1 -DHEAP_LOCAL=0"}},
    {"layout", "strided_copy",
     {"-DX_HALF=0 -DY_HALF=0", "-DX_HALF=1 -DY_HALF=1", "-DX_HALF=0 -DY_HALF=1",
      "-DRAW_T=long", "-DRAW_T=int", "-DRAW_T=char", "-DRAW_T=uchar"}},
    {"pool", "pool",
     {"-DX_HALF=0 -DY_HALF=0", "-DX_HALF=1 -DY_HALF=1", "-DX_HALF=1 -DY_HALF=0",
      "-DX_HALF=0 -DY_HALF=1 -DFLAT_VECTORS=2"}},
    {"quantize", "quantize", {""}},
    {"reduce", "reduce",
     {"-DX_HALF=0 -DY_HALF=0 -DREDUCE_OP=0", "-DX_HALF=1 -DY_HALF=1 -DREDUCE_OP=1",
      "-DX_HALF=0 -DY_HALF=0 -DREDUCE_OP=2", "-DX_HALF=0 -DY_HALF=1 -DREDUCE_OP=3",
      "-DX_HALF=1 -DY_HALF=0 -DREDUCE_OP=4"}},
    {"rnn", "rnn_project",
     {"-DX_HALF=0", "-DX_HALF=1", "-DX_HALF=1 -DPR=8 -DPV=2", "-DX_HALF=0 -DPR=3 -DPV=1",
      "-DY_HALF=0 -DH0_HALF=0 -DC0_HALF=0 -DYH_HALF=0 -DYC_HALF=0 -DCLIP=0 -DINPUT_FORGET=0 "
      "-DLBR=1 -DACT_F0=0 -DACT_G0=1 -DACT_H0=1 -DACT_F1=0 -DACT_G1=1 -DACT_H1=1",
      "-DY_HALF=1 -DH0_HALF=1 -DC0_HALF=1 -DYH_HALF=1 -DYC_HALF=1 -DCLIP=1 -DINPUT_FORGET=1 "
      "-DLBR=0 -DACT_F0=1 -DACT_G0=2 -DACT_H0=0 -DACT_F1=2 -DACT_G1=0 -DACT_H1=1",
      "-DY_HALF=0 -DH0_HALF=0 -DC0_HALF=0 -DYH_HALF=0 -DYC_HALF=0 -DCLIP=0 -DINPUT_FORGET=0 "
      "-DLBR=1 -DACT_F0=0 -DACT_G0=1 -DACT_H0=1 -DACT_F1=0 -DACT_G1=1 -DACT_H1=1 -DRB=8",
      "-DY_HALF=1 -DH0_HALF=1 -DC0_HALF=1 -DYH_HALF=1 -DYC_HALF=1 -DCLIP=1 -DINPUT_FORGET=1 "
      "-DLBR=0 -DACT_F0=1 -DACT_G0=2 -DACT_H0=0 -DACT_F1=2 -DACT_G1=0 -DACT_H1=1 -DRB=3",
      "-DY_HALF=0 -DH0_HALF=1 -DC0_HALF=0 -DYH_HALF=0 -DYC_HALF=1 -DCLIP=1 -DINPUT_FORGET=0 "
      "-DLBR=0 -DACT_F0=0 -DACT_G0=1 -DACT_H0=1 -DACT_F1=0 -DACT_G1=1 -DACT_H1=1 -DRB=8 -DPW=2"}},
    {"scores", "score_partials", {""}},
    {"softmax", "softmax", {"-DX_HALF=0 -DY_HALF=0", "-DX_HALF=1 -DY_HALF=1"}},
};

static char captured_log[1 << 16];

static void capture_log(cleval_log_level level, const char *message, void *user)
{
    (void)level, (void)user;
    size_t used = strlen(captured_log);
    snprintf(captured_log + used, sizeof captured_log - used, "%s\n", message);
}

/* Builds `program` with -Werror and `options` (plus HALF_MATH=1 when asked); fails the test
 * with the build log when the compiler warned. */
static void build_without_warnings(const program_variants *p, const char *options, bool half_math)
{
    char all[1024];
    snprintf(all, sizeof all, "-Werror %s%s", options, half_math ? " -DHALF_MATH=1" : "");
    captured_log[0] = '\0';
    cleval_log_set(capture_log, CLEVAL_LOG_INFO, NULL);
    cl_kernel kernel = NULL;
    cleval_status status = cleval_device_kernel(test_device(), p->program, all, p->kernel, &kernel);
    cleval_log_set(NULL, CLEVAL_LOG_ERROR, NULL);
    if (status != CLEVAL_OK)
        fail_msg("kernels/%s.cl [%s]: %s\n%s", p->program, all, cleval_last_error(), captured_log);
    clReleaseKernel(kernel);
}

static void test_every_variant_builds_without_warnings(void **state)
{
    (void)state;
    const cleval_device_info *info = cleval_device_get_info(test_device());
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++)
        for (size_t j = 0; j < 24 && programs[i].options[j]; j++) {
            const char *options = programs[i].options[j];
            /* drift.c asks for double only where the device has it. */
            if (strstr(options, "-DDRIFT_FP64=1") && !info->has_fp64) continue;
            build_without_warnings(&programs[i], options, false);
            if (info->has_fp16) build_without_warnings(&programs[i], options, true);
        }
}

/* Each kernels/NAME.cl in the source tree has its line in the table above. */
static void test_table_covers_every_program(void **state)
{
    (void)state;
    DIR *dir = opendir(CLEVAL_KERNEL_SOURCE_DIR);
    assert_non_null(dir);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".cl") != 0) continue;
        bool listed = false;
        for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++)
            if (strlen(programs[i].program) == n - 3 &&
                strncmp(programs[i].program, e->d_name, n - 3) == 0)
                listed = true;
        if (!listed) fail_msg("kernels/%s is not in test_kernels_werror.c's table", e->d_name);
        seen++;
    }
    closedir(dir);
    assert_int_equal(seen, (int)(sizeof programs / sizeof programs[0]));
}

/* No kernel source defines a plain C99 `inline` function: OpenCL C follows C99, where such a
 * definition is only an inline version, so a compiler that chooses not to inline a call (clang's
 * nvptx target did for a helper called in three places) leaves an external reference that
 * nothing defines and the program fails to link on that driver; `static inline` is always
 * defined. */
static void test_no_plain_inline_functions(void **state)
{
    (void)state;
    DIR *dir = opendir(CLEVAL_KERNEL_SOURCE_DIR);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        bool source = (n > 3 && strcmp(e->d_name + n - 3, ".cl") == 0) ||
                      (n > 4 && strcmp(e->d_name + n - 4, ".clh") == 0);
        if (!source) continue;
        char path[4096], line[1024];
        snprintf(path, sizeof path, "%s/%s", CLEVAL_KERNEL_SOURCE_DIR, e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        for (int number = 1; fgets(line, sizeof line, f); number++)
            if (strncmp(line + strspn(line, " \t"), "inline ", 7) == 0) /* macros indent */
                fail_msg("kernels/%s:%d defines a plain inline function (make it static "
                         "inline): %s",
                         e->d_name, number, line);
        fclose(f);
    }
    closedir(dir);
}

/* Fails the test, showing the captured log, unless the log contains `needle`. */
static void expect_in_log(const char *needle)
{
    if (!strstr(captured_log, needle)) fail_msg("no '%s' in the log:\n%s", needle, captured_log);
}

/* A kernel that warns (an unused comparison): -Werror makes its build fail on this device, so
 * the test above can catch warnings at all; without -Werror it builds, and the warning goes to
 * the log at the --verbose level only. */
static void test_warnings_fail_werror_and_stay_verbose(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/warns.cl", CLEVAL_TEST_TMPDIR);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* A source new to the driver's binary cache, which may keep no build log. */
    fprintf(f, "/* run %ld at %ld */\n__kernel void warns(__global int *x) { x[0] == 1; }\n",
            (long)getpid(), (long)time(NULL));
    fclose(f);
    setenv("CLEVAL_KERNEL_DIR", CLEVAL_TEST_TMPDIR, 1);
    cleval_device *dev = test_device();
    cl_kernel kernel = NULL;

    captured_log[0] = '\0';
    cleval_log_set(capture_log, CLEVAL_LOG_ERROR, NULL);
    assert_int_equal(cleval_device_kernel(dev, "warns", "-Werror", "warns", &kernel),
                     CLEVAL_ERR_OPENCL);
    expect_in_log("comparison result unused");

    captured_log[0] = '\0';
    assert_ok(cleval_device_kernel(dev, "warns", "-DQUIET=1", "warns", &kernel));
    clReleaseKernel(kernel);
    assert_string_equal(captured_log, "");

    cleval_log_set(capture_log, CLEVAL_LOG_INFO, NULL);
    assert_ok(cleval_device_kernel(dev, "warns", "-DVERBOSE=1", "warns", &kernel));
    clReleaseKernel(kernel);
    expect_in_log("build log of kernels/warns.cl [-DVERBOSE=1]");
    expect_in_log("comparison result unused");
}

/* Whatever failed, the next test loads the embedded kernels and logs nothing. */
static int restore_kernels_and_log(void **state)
{
    (void)state;
    unsetenv("CLEVAL_KERNEL_DIR");
    cleval_log_set(NULL, CLEVAL_LOG_ERROR, NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_covers_every_program),
        cmocka_unit_test(test_no_plain_inline_functions),
        cmocka_unit_test_teardown(test_warnings_fail_werror_and_stay_verbose,
                                  restore_kernels_and_log),
        cmocka_unit_test(test_every_variant_builds_without_warnings),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    test_device_release();
    return failed;
}
