/* Evaluates an ONNX classifier on an HDF5 test set with libcleval and prints its accuracy.
 *
 *     evaluate_file MODEL.onnx TEST.h5
 *
 * The report is the JSON `cleval eval --json -` prints; this program takes the accuracy from
 * it as text (a real program would use a JSON parser) and counts the predictions per class. */
#include <stdio.h>
#include <string.h>

#include <cleval.h>

/* Prints the value of "accuracy" as the report writes it. */
static void print_accuracy(const char *json)
{
    const char *key = strstr(json, "\"accuracy\":");
    if (!key) {
        printf("accuracy: none (the test set has no labels)\n");
        return;
    }
    key += strlen("\"accuracy\":");
    key += strspn(key, " \t");
    printf("accuracy: %.*s\n", (int)strcspn(key, ",\n}"), key);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.onnx TEST.h5\n", argv[0]);
        return 2;
    }
    cleval_source *test = NULL;
    cleval_result *result = NULL;
    cleval_status status = cleval_source_create_file(argv[2], NULL, NULL, &test);
    if (status == CLEVAL_OK) status = cleval_run_eval(argv[1], test, NULL, &result);
    if (status != CLEVAL_OK) {
        fprintf(stderr, "evaluate_file: %s: %s\n", cleval_status_str(status), cleval_last_error());
        cleval_source_destroy(test);
        return 2;
    }
    uint64_t n;
    const int32_t *pred = cleval_result_predictions(result, &n);
    uint64_t first_class = 0;
    for (uint64_t i = 0; i < n; i++)
        first_class += pred[i] == 0;
    printf("cleval %s: %llu samples, %llu predicted as class 0\n", cleval_version(),
           (unsigned long long)n, (unsigned long long)first_class);
    print_accuracy(cleval_result_json(result));
    cleval_result_destroy(result);
    cleval_source_destroy(test);
    return 0;
}
