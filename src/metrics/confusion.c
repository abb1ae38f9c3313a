/* Host confusion matrices: allocation, widening and exact merging of partial counts, over the
 * dense or sparse counts of counts.c. */
#include "cleval/metrics.h"

cleval_status cleval_confusion_init(cleval_confusion *cm, uint32_t n_classes)
{
    cm->n_classes = 0;
    cm->counts = (cleval_counts){0};
    if (n_classes == 0) return cleval_fail(CLEVAL_ERR_USAGE, "a confusion matrix needs a class");
    cleval_status status = cleval_counts_init(&cm->counts, n_classes, n_classes);
    if (status != CLEVAL_OK)
        return cleval_fail(status, "out of memory for a %u-class confusion matrix", n_classes);
    cm->n_classes = n_classes;
    return CLEVAL_OK;
}

void cleval_confusion_free(cleval_confusion *cm)
{
    cleval_counts_free(&cm->counts);
    cm->n_classes = 0;
}

cleval_status cleval_confusion_grow(cleval_confusion *cm, uint32_t n_classes)
{
    if (n_classes <= cm->n_classes) return CLEVAL_OK;
    cleval_status status = cleval_counts_grow(&cm->counts, n_classes, n_classes);
    if (status != CLEVAL_OK) return status;
    cm->n_classes = n_classes;
    return CLEVAL_OK;
}

cleval_status cleval_confusion_add(cleval_confusion *into, const cleval_confusion *part)
{
    cleval_status status = cleval_confusion_grow(into, part->n_classes);
    if (status == CLEVAL_OK) status = cleval_counts_add_counts(&into->counts, &part->counts);
    return status;
}

uint64_t cleval_confusion_total(const cleval_confusion *cm)
{
    return cleval_counts_total(&cm->counts);
}
