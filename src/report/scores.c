/* The score-based metrics (ROC AUC and average precision among them) in the JSON and human
 * reports. */
#include "cleval/report.h"

void cleval_report_scores_json(cJSON *root, const cleval_score_metrics *m)
{
    if (m->top_k) {
        cJSON *top_k = cJSON_AddObjectToObject(root, "top_k");
        cJSON_AddNumberToObject(top_k, "k", m->top_k);
        cJSON_AddNumberToObject(top_k, "accuracy", m->top_k_accuracy);
    }
    cJSON_AddNumberToObject(root, "log_loss", m->log_loss);
    cJSON_AddNumberToObject(root, "brier", m->brier);
    cJSON *calibration = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddNumberToObject(calibration, "ece", m->ece);
    cJSON *bins = cJSON_AddArrayToObject(calibration, "bins");
    for (int b = 0; bins && b < CLEVAL_CALIBRATION_BINS; b++) {
        const cleval_calibration_bin *bin = &m->bins[b];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddNumberToObject(o, "lower", bin->lower);
        cJSON_AddNumberToObject(o, "upper", bin->upper);
        cJSON_AddNumberToObject(o, "count", (double)bin->count);
        cJSON_AddNumberToObject(o, "confidence", bin->confidence);
        cJSON_AddNumberToObject(o, "accuracy", bin->accuracy);
        cJSON_AddItemToArray(bins, o);
    }
    cJSON_AddStringToObject(root, "probabilities", m->softmax ? "softmax" : "as_given");
}

void cleval_report_scores_text(FILE *out, const cleval_score_metrics *m)
{
    if (m->top_k) fprintf(out, "top-%u accuracy %.4f\n", m->top_k, m->top_k_accuracy);
    fprintf(out, "log loss %.4f\nBrier %.4f\nECE (15 bins) %.4f\n", m->log_loss, m->brier, m->ece);
    fprintf(out, "(probabilities: %s)\n", m->softmax ? "softmax of the scores" : "the scores");
}

/* {"macro": x, "weighted": x}, or null when no class qualified. */
static void add_averages(cJSON *root, const char *name, uint32_t classes, double macro,
                         double weighted)
{
    if (!classes) {
        cJSON_AddNullToObject(root, name);
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(root, name);
    cJSON_AddNumberToObject(o, "macro", macro);
    cJSON_AddNumberToObject(o, "weighted", weighted);
}

void cleval_report_auc_json(cJSON *root, const cleval_auc_result *auc)
{
    add_averages(root, "roc_auc", auc->classes, auc->roc_macro, auc->roc_weighted);
    add_averages(root, "average_precision", auc->classes, auc->ap_macro, auc->ap_weighted);
}

void cleval_report_auc_text(FILE *out, const cleval_auc_result *auc)
{
    if (!auc->classes) {
        fprintf(out, "ROC AUC (ovr): none (no class has both positive and negative samples)\n");
        return;
    }
    fprintf(out, "ROC AUC (ovr): macro %.4f  weighted %.4f\n", auc->roc_macro, auc->roc_weighted);
    fprintf(out, "average precision (ovr): macro %.4f  weighted %.4f\n", auc->ap_macro,
            auc->ap_weighted);
}
