/* Metrics of predictions held in memory with libcleval: labels and predictions as plain C
 * arrays, the JSON report of `cleval metrics --json -` on stdout.
 *
 *     metrics_arrays */
#include <stdio.h>

#include <cleval.h>

int main(void)
{
    /* Twelve samples of three classes: true labels and a model's predictions. */
    static const int32_t labels[] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2};
    static const int32_t predictions[] = {0, 0, 1, 0, 1, 1, 2, 1, 2, 0, 2, 2};
    const uint64_t n = sizeof labels / sizeof *labels;
    const cleval_array y = {.data = labels, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {n}};
    const cleval_array pred = {
        .data = predictions, .dtype = CLEVAL_DTYPE_INT32, .rank = 1, .shape = {n}};

    cleval_options options;
    cleval_options_init(&options);
    options.min_accuracy = 0.5; /* a CI gate: the report says whether it passed */
    cleval_result *result = NULL;
    cleval_status status = cleval_run_metrics(&y, &pred, NULL, &options, &result);
    if (status != CLEVAL_OK) {
        fprintf(stderr, "metrics_arrays: %s: %s\n", cleval_status_str(status), cleval_last_error());
        return 2;
    }
    printf("%s\n", cleval_result_json(result));
    int code = cleval_result_passed(result) ? 0 : 1;
    cleval_result_destroy(result);
    return code;
}
