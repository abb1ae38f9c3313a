/* Host confusion matrices: allocation, widening and exact merging of partial counts. */
#include "cleval/metrics.h"

#include <stdlib.h>
#include <string.h>

cleval_status cleval_confusion_init(cleval_confusion *cm, uint32_t n_classes)
{
    cm->n_classes = 0;
    cm->counts = NULL;
    if (n_classes == 0) return cleval_fail(CLEVAL_ERR_USAGE, "a confusion matrix needs a class");
    uint64_t cells = (uint64_t)n_classes * n_classes;
    if (cells > SIZE_MAX / sizeof(uint64_t))
        return cleval_fail(CLEVAL_ERR_NOMEM, "%u classes: confusion matrix too large", n_classes);
    cm->counts = calloc((size_t)cells, sizeof *cm->counts);
    if (!cm->counts)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory for a %u-class confusion matrix",
                           n_classes);
    cm->n_classes = n_classes;
    return CLEVAL_OK;
}

void cleval_confusion_free(cleval_confusion *cm)
{
    free(cm->counts);
    cm->counts = NULL;
    cm->n_classes = 0;
}

cleval_status cleval_confusion_grow(cleval_confusion *cm, uint32_t n_classes)
{
    if (n_classes <= cm->n_classes) return CLEVAL_OK;
    cleval_confusion wider;
    cleval_status status = cleval_confusion_init(&wider, n_classes);
    if (status != CLEVAL_OK) return status;
    for (uint32_t r = 0; r < cm->n_classes; r++)
        memcpy(wider.counts + (size_t)r * n_classes, cm->counts + (size_t)r * cm->n_classes,
               cm->n_classes * sizeof *cm->counts);
    cleval_confusion_free(cm);
    *cm = wider;
    return CLEVAL_OK;
}

cleval_status cleval_confusion_add(cleval_confusion *into, const cleval_confusion *part)
{
    cleval_status status = cleval_confusion_grow(into, part->n_classes);
    if (status != CLEVAL_OK) return status;
    uint32_t c = into->n_classes;
    for (uint32_t r = 0; r < part->n_classes; r++)
        for (uint32_t p = 0; p < part->n_classes; p++)
            into->counts[(size_t)r * c + p] += part->counts[(size_t)r * part->n_classes + p];
    return CLEVAL_OK;
}

uint64_t cleval_confusion_total(const cleval_confusion *cm)
{
    uint64_t total = 0;
    for (size_t i = 0; i < (size_t)cm->n_classes * cm->n_classes; i++)
        total += cm->counts[i];
    return total;
}
