/* libFuzzer target: model bytes through the ONNX reader and the graph builder (shapes, rewrites,
 * the memory plan and kernel preparation on the first OpenCL device), as a classifier and as a
 * general network. Any outcome but a crash, a leak or a sanitizer report is fine. */
#include <stdint.h>
#include <stdlib.h>

#include "cleval/device.h"
#include "cleval/nn.h"
#include "cleval/onnx.h"
#include "fuzz_input.h"

static cleval_device *device(void)
{
    static cleval_device *dev;
    if (!dev && cleval_device_open(0, &dev) != CLEVAL_OK) abort(); /* no device: no fuzzing */
    return dev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cleval_onnx_model *model;
    if (cleval_onnx_load(fuzz_input_file(data, size, "model.onnx"), &model) != CLEVAL_OK) return 0;
    for (int general = 0; general <= 1; general++) {
        cleval_nn_options options = {.general = general};
        cleval_nn *nn = NULL;
        if (cleval_nn_create_with(device(), model, &options, &nn) == CLEVAL_OK)
            cleval_nn_destroy(nn);
    }
    cleval_onnx_free(model);
    return 0;
}
