/* The options' defaults: those of the command-line tool. */
#include "api_internal.h"

#include "cleval/drift.h"

void cleval_options_init(cleval_options *options)
{
    cleval_drift_thresholds drift = cleval_drift_default_thresholds();
    *options = (cleval_options){
        .min_accuracy = -1,
        .min_class_recall = -1,
        .max_flip_rate = -1,
        .max_accuracy_drop = -1,
        .alpha = 0.05,
        .max_score_diff = -1,
        .psi_warn = drift.psi_warn,
        .psi_alert = drift.psi_alert,
        .js_alert = drift.js_alert,
        .drift_alpha = drift.alpha,
    };
}

const cleval_options *api_options(const cleval_options *given, cleval_options *defaults)
{
    if (given) return given;
    cleval_options_init(defaults);
    return defaults;
}
