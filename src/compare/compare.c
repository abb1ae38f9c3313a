/* `cleval compare`: both prediction files streamed side by side in batches; every count is an
 * exact integer, the score statistics are double sums with compensation, and the statistics
 * (accuracies, Newcombe's interval, McNemar) are computed from the counts at the end. */
#include "cleval/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/dataset.h"
#include "cleval/metrics.h"
#include "cleval/stats.h"
#include "compare_internal.h"

/* Score rows of both files held at once stay under this many bytes. */
static const uint64_t SCORE_BATCH_BYTES = 128ull << 20;

typedef struct side {
    const char *path;
    cleval_dataset *ds;
    cleval_column *pred, *y, *scores;
    uint64_t n;
    uint64_t nonfinite;       /* NaN and infinite scores */
    uint64_t first_nonfinite; /* the first sample holding one */
} side;

typedef struct compare_state {
    side a, b;
    uint64_t batch;
    int32_t *pred_a, *pred_b, *y_a, *y_b;
    float *scores_a, *scores_b;
    cleval_confusion matrix; /* the flip matrix, widened as larger labels appear */
    flipfile *save;
    int64_t *flip_index; /* one batch of flips for the save file */
    int32_t *flip_a, *flip_b, *flip_y;
    double *flip_diff;
    double *row_diff; /* per sample of the batch: its largest |a - b| */
    uint32_t *row_class;
    double abs_sum, abs_carry; /* Neumaier sum of every |a - b| of finite pairs */
    uint64_t finite_pairs;
} compare_state;

void cleval_compare_result_free(cleval_compare_result *r)
{
    cleval_counts_free(&r->flip_matrix);
    cleval_dataset_free_names(r->class_names.names, r->class_names.count);
    r->class_names.names = NULL;
    r->class_names.count = 0;
}

static void close_side(side *s)
{
    cleval_column_close(s->pred);
    cleval_column_close(s->y);
    cleval_column_close(s->scores);
    cleval_dataset_close(s->ds);
}

static void release(compare_state *s)
{
    close_side(&s->a);
    close_side(&s->b);
    free(s->pred_a), free(s->pred_b), free(s->y_a), free(s->y_b);
    free(s->scores_a), free(s->scores_b);
    free(s->flip_index), free(s->flip_a), free(s->flip_b), free(s->flip_y), free(s->flip_diff);
    free(s->row_diff), free(s->row_class);
    cleval_confusion_free(&s->matrix);
    flipfile_abort(s->save);
}

/* Opens pred (required), y and scores (when present) of one file, or of `data` when given. */
static cleval_status open_side(side *s, const char *path, cleval_dataset *data,
                               const cleval_compare_config *config)
{
    const char *pred_key = config->pred_key ? config->pred_key : "pred";
    const char *y_key = config->y_key ? config->y_key : "y";
    const char *scores_key = config->scores_key ? config->scores_key : "scores";
    s->path = path;
    cleval_status status;
    if (data)
        s->ds = cleval_dataset_share(data);
    else if ((status = cleval_dataset_open(path, &s->ds)) != CLEVAL_OK)
        return status;
    cleval_dataset_limit_classes(s->ds, config->max_classes);
    if ((status = cleval_column_open(s->ds, pred_key, CLEVAL_COLUMN_LABELS, &s->pred)) != CLEVAL_OK)
        return status;
    s->n = cleval_column_rows(s->pred);
    if (s->n == 0) return cleval_fail(CLEVAL_ERR_INPUT, "%s: zero samples in '%s'", path, pred_key);
    if (cleval_dataset_has(s->ds, y_key) &&
        ((status = cleval_column_open(s->ds, y_key, CLEVAL_COLUMN_LABELS, &s->y)) != CLEVAL_OK ||
         (status = cleval_column_check_rows(s->pred, s->y)) != CLEVAL_OK))
        return status;
    if (cleval_dataset_has(s->ds, scores_key)) {
        if ((status = cleval_column_open(s->ds, scores_key, CLEVAL_COLUMN_VALUES, &s->scores)) !=
                CLEVAL_OK ||
            (status = cleval_column_check_rows(s->pred, s->scores)) != CLEVAL_OK)
            return status;
        if (cleval_column_row_rank(s->scores) != 1)
            return cleval_fail(CLEVAL_ERR_INPUT, "%s: '%s' must be 2-D [N, C] (it has rank %u)",
                               path, scores_key, cleval_column_row_rank(s->scores) + 1);
    }
    return CLEVAL_OK;
}

/* Decides what the two files allow (labels, scores) and whether the limits fit that. */
static cleval_status check_pair(compare_state *s, const cleval_compare_config *config,
                                cleval_compare_result *out)
{
    side *a = &s->a, *b = &s->b;
    if (a->n != b->n)
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s has %llu samples but %s has %llu: compare needs two runs over the "
                           "same test set",
                           a->path, (unsigned long long)a->n, b->path, (unsigned long long)b->n);
    if (!a->y != !b->y) {
        const side *with = a->y ? a : b, *without = a->y ? b : a;
        return cleval_fail(CLEVAL_ERR_INPUT,
                           "%s has labels '%s' but %s has none: compare needs the same labels in "
                           "both files or in neither",
                           with->path, cleval_column_name(with->y), without->path);
    }
    out->n_samples = a->n;
    out->has_labels = a->y != NULL;

    if (!a->scores && !b->scores)
        snprintf(out->score_note, sizeof out->score_note, "neither file has scores");
    else if (!a->scores || !b->scores)
        snprintf(out->score_note, sizeof out->score_note, "%s has no scores",
                 a->scores ? b->path : a->path);
    else if (cleval_column_row_size(a->scores) != cleval_column_row_size(b->scores))
        snprintf(out->score_note, sizeof out->score_note,
                 "score widths differ (%llu in %s, %llu in %s)",
                 (unsigned long long)cleval_column_row_size(a->scores), a->path,
                 (unsigned long long)cleval_column_row_size(b->scores), b->path);
    else if (cleval_column_row_size(a->scores) > UINT32_MAX)
        snprintf(out->score_note, sizeof out->score_note, "score rows are too wide");
    else {
        out->has_scores = true;
        out->score_width = (uint32_t)cleval_column_row_size(a->scores);
    }

    const cleval_compare_limits *limits = &config->limits;
    if (!out->has_labels && limits->use_max_accuracy_drop)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "--max-accuracy-drop needs labels, and %s and %s have no 'y'", a->path,
                           b->path);
    if (!out->has_labels && limits->use_alpha && !limits->alpha_is_default)
        return cleval_fail(CLEVAL_ERR_USAGE, "--alpha needs labels, and %s and %s have no 'y'",
                           a->path, b->path);
    if (!out->has_scores && limits->use_max_score_diff)
        return cleval_fail(CLEVAL_ERR_USAGE, "--max-score-diff needs comparable scores: %s",
                           out->score_note);
    return CLEVAL_OK;
}

static cleval_status allocate(compare_state *s, const cleval_compare_config *config,
                              const cleval_compare_result *out)
{
    uint64_t batch = config->batch ? config->batch : CLEVAL_COMPARE_DEFAULT_BATCH;
    if (out->has_scores) {
        uint64_t fit = SCORE_BATCH_BYTES / (2ull * out->score_width * sizeof(float));
        batch = batch < fit ? batch : (fit ? fit : 1);
    }
    batch = batch < out->n_samples ? batch : out->n_samples;
    s->batch = batch;
    bool ok = (s->pred_a = malloc(batch * sizeof *s->pred_a)) &&
              (s->pred_b = malloc(batch * sizeof *s->pred_b)) &&
              (s->row_diff = malloc(batch * sizeof *s->row_diff)) &&
              (s->row_class = malloc(batch * sizeof *s->row_class));
    if (ok && out->has_labels)
        ok = (s->y_a = malloc(batch * sizeof *s->y_a)) && (s->y_b = malloc(batch * sizeof *s->y_b));
    if (ok && out->has_scores) {
        size_t values = (size_t)batch * out->score_width;
        ok = (s->scores_a = malloc(values * sizeof *s->scores_a)) &&
             (s->scores_b = malloc(values * sizeof *s->scores_b));
    }
    if (ok && config->save_path)
        ok = (s->flip_index = malloc(batch * sizeof *s->flip_index)) &&
             (s->flip_a = malloc(batch * sizeof *s->flip_a)) &&
             (s->flip_b = malloc(batch * sizeof *s->flip_b)) &&
             (s->flip_y = malloc(batch * sizeof *s->flip_y)) &&
             (s->flip_diff = malloc(batch * sizeof *s->flip_diff));
    if (!ok)
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s, %s: out of memory for batches of %llu samples",
                           config->path_a, config->path_b, (unsigned long long)batch);
    return CLEVAL_OK;
}

/* Keeps `list` (at most CLEVAL_COMPARE_TOP entries) sorted by score_diff descending; samples
 * arrive in index order, so on equal differences the earlier sample stays ahead. */
static void keep_top(cleval_compare_sample *list, uint32_t *n, const cleval_compare_sample *s)
{
    if (*n == CLEVAL_COMPARE_TOP && !(s->score_diff > list[*n - 1].score_diff)) return;
    uint32_t at = *n < CLEVAL_COMPARE_TOP ? (*n)++ : *n - 1;
    while (at > 0 && s->score_diff > list[at - 1].score_diff) {
        list[at] = list[at - 1];
        at--;
    }
    list[at] = *s;
}

/* |a - b| of two finite scores and its relative size |a - b| / max(|a|, |b|) (0 when equal). */
static void score_difference(float a, float b, double *abs_diff, double *rel_diff)
{
    double d = fabs((double)a - (double)b);
    *abs_diff = d;
    *rel_diff = d == 0.0 ? 0.0 : d / fmax(fabs((double)a), fabs((double)b));
}

/* Whether `score` is finite; counts it on its side when not. */
static bool finite_score(side *sd, float score, uint64_t index)
{
    if (isfinite(score)) return true;
    if (sd->nonfinite++ == 0) sd->first_nonfinite = index;
    return false;
}

/* Score differences of one batch: the maxima, the sum, and each row's largest difference,
 * over the pairs where both scores are finite (the others are only counted). */
static void score_batch(compare_state *s, cleval_compare_result *out, uint64_t row0, uint64_t count)
{
    uint32_t w = out->score_width;
    for (uint64_t i = 0; i < count; i++) {
        const float *ra = s->scores_a + i * w, *rb = s->scores_b + i * w;
        double row_max = 0.0;
        uint32_t row_at = 0;
        for (uint32_t j = 0; j < w; j++) {
            bool finite_a = finite_score(&s->a, ra[j], row0 + i);
            if (!finite_score(&s->b, rb[j], row0 + i) || !finite_a) continue;
            s->finite_pairs++;
            double d, rel;
            score_difference(ra[j], rb[j], &d, &rel);
            cleval_stats_add_compensated(&s->abs_sum, &s->abs_carry, d);
            if (d > row_max) {
                row_max = d;
                row_at = j;
            }
            if (rel > out->max_rel_score_diff) {
                out->max_rel_score_diff = rel;
                out->max_rel_index = row0 + i;
                out->max_rel_class = j;
            }
        }
        s->row_diff[i] = row_max;
        s->row_class[i] = row_at;
        if (row_max > out->max_abs_score_diff) {
            out->max_abs_score_diff = row_max;
            out->max_abs_index = row0 + i;
            out->max_abs_class = row_at;
        }
    }
}

/* Refuses NaN and infinite scores, naming the first file and sample holding one, unless the
 * caller accepts them. */
static cleval_status check_nonfinite(const compare_state *s, const cleval_compare_config *config,
                                     cleval_compare_result *out)
{
    out->nonfinite_a = s->a.nonfinite;
    out->nonfinite_b = s->b.nonfinite;
    const side *bad = s->a.nonfinite ? &s->a : s->b.nonfinite ? &s->b : NULL;
    if (!bad || config->allow_nonfinite) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: '%s' holds %llu non-finite scores (first in sample %llu); pass "
                       "--allow-nonfinite to accept them",
                       bad->path, cleval_column_name(bad->scores),
                       (unsigned long long)bad->nonfinite,
                       (unsigned long long)bad->first_nonfinite);
}

static cleval_status read_batch(compare_state *s, const cleval_compare_result *out, uint64_t row0,
                                uint64_t count, int32_t *max_label)
{
    int32_t max_a, max_b, max_ya = -1, max_yb = -1;
    cleval_status status;
    if ((status = cleval_column_read_i32(s->a.pred, row0, count, s->pred_a, &max_a)) ||
        (status = cleval_column_read_i32(s->b.pred, row0, count, s->pred_b, &max_b)))
        return status;
    if (out->has_labels) {
        if ((status = cleval_column_read_i32(s->a.y, row0, count, s->y_a, &max_ya)) ||
            (status = cleval_column_read_i32(s->b.y, row0, count, s->y_b, &max_yb)))
            return status;
        for (uint64_t i = 0; i < count; i++)
            if (s->y_a[i] != s->y_b[i])
                return cleval_fail(CLEVAL_ERR_INPUT,
                                   "%s and %s: '%s' differs at sample %llu (%d vs %d): not the "
                                   "same test set",
                                   s->a.path, s->b.path, cleval_column_name(s->a.y),
                                   (unsigned long long)(row0 + i), s->y_a[i], s->y_b[i]);
    }
    if (out->has_scores &&
        ((status = cleval_column_read_f32(s->a.scores, row0, count, s->scores_a)) ||
         (status = cleval_column_read_f32(s->b.scores, row0, count, s->scores_b))))
        return status;
    int32_t m = max_a > max_b ? max_a : max_b;
    m = max_ya > m ? max_ya : m;
    *max_label = m;
    return CLEVAL_OK;
}

/* Counts one batch: flip matrix, discordant pairs, flips to save and to report. */
static cleval_status count_batch(compare_state *s, cleval_compare_result *out, uint64_t row0,
                                 uint64_t count)
{
    uint64_t n_flips = 0;
    for (uint64_t i = 0; i < count; i++) {
        int32_t pa = s->pred_a[i], pb = s->pred_b[i];
        cleval_status added = cleval_counts_add(&s->matrix.counts, (uint32_t)pa, (uint32_t)pb, 1);
        if (added != CLEVAL_OK) return added;
        int32_t y = out->has_labels ? s->y_a[i] : -1;
        if (out->has_labels) {
            bool ra = pa == y, rb = pb == y;
            out->both_right += ra && rb;
            out->a_only_right += ra && !rb;
            out->b_only_right += !ra && rb;
            out->both_wrong += !ra && !rb;
        }
        if (pa == pb) continue;
        double diff = out->has_scores ? s->row_diff[i] : 0.0;
        if (s->save) {
            s->flip_index[n_flips] = (int64_t)(row0 + i);
            s->flip_a[n_flips] = pa;
            s->flip_b[n_flips] = pb;
            s->flip_y[n_flips] = y;
            s->flip_diff[n_flips] = diff;
        }
        n_flips++;
        cleval_compare_sample sample = {
            .index = row0 + i, .pred_a = pa, .pred_b = pb, .y = y, .score_diff = diff};
        if (out->has_scores) {
            sample.score_class = s->row_class[i];
            sample.score_a = s->scores_a[i * out->score_width + sample.score_class];
            sample.score_b = s->scores_b[i * out->score_width + sample.score_class];
        }
        keep_top(out->top_flips, &out->n_top_flips, &sample);
    }
    out->flips += n_flips;
    if (out->has_scores)
        for (uint64_t i = 0; i < count; i++) {
            uint32_t j = s->row_class[i];
            cleval_compare_sample sample = {.index = row0 + i,
                                            .pred_a = s->pred_a[i],
                                            .pred_b = s->pred_b[i],
                                            .y = out->has_labels ? s->y_a[i] : -1,
                                            .score_diff = s->row_diff[i],
                                            .score_class = j,
                                            .score_a = s->scores_a[i * out->score_width + j],
                                            .score_b = s->scores_b[i * out->score_width + j]};
            if (sample.score_diff > 0)
                keep_top(out->top_score_diffs, &out->n_top_score_diffs, &sample);
        }
    if (s->save)
        return flipfile_append(s->save, n_flips, s->flip_index, s->flip_a, s->flip_b, s->flip_y,
                               s->flip_diff);
    return CLEVAL_OK;
}

static void add_gate(cleval_compare_result *out, const char *name, double limit, double value,
                     bool below)
{
    cleval_compare_gate *g = &out->gates[out->n_gates++];
    g->name = name;
    g->limit = limit;
    g->value = value;
    g->below = below;
    /* NaN or an infinite difference never passes. */
    g->passed = below ? value >= limit : value <= limit;
    if (!g->passed) out->passed = false;
}

/* The statistics from the counts, then the gates. */
static void finish(cleval_compare_result *out, const cleval_compare_limits *limits, double abs_sum,
                   uint64_t finite_pairs)
{
    double n = (double)out->n_samples;
    out->agreements = out->n_samples - out->flips;
    out->agreement = (double)out->agreements / n;
    out->flip_rate = (double)out->flips / n;
    if (out->has_labels) {
        out->accuracy_a = (double)(out->both_right + out->a_only_right) / n;
        out->accuracy_b = (double)(out->both_right + out->b_only_right) / n;
        out->accuracy_diff = out->accuracy_b - out->accuracy_a;
        cleval_compare_paired_interval(out->both_right, out->a_only_right, out->b_only_right,
                                       out->both_wrong, CLEVAL_STATS_Z95, &out->diff_ci_low,
                                       &out->diff_ci_high);
        out->mcnemar_p =
            cleval_stats_mcnemar_exact(out->a_only_right, out->b_only_right, &out->mcnemar_log_p);
    }
    if (out->has_scores && finite_pairs) out->mean_abs_score_diff = abs_sum / (double)finite_pairs;

    out->passed = true;
    if (limits->use_max_flip_rate)
        add_gate(out, "flip_rate", limits->max_flip_rate, out->flip_rate, false);
    if (limits->use_max_accuracy_drop)
        add_gate(out, "accuracy_drop", limits->max_accuracy_drop, out->accuracy_a - out->accuracy_b,
                 false);
    if (limits->use_alpha && out->has_labels)
        add_gate(out, "mcnemar_p", limits->alpha, out->mcnemar_p, true);
    if (limits->use_max_score_diff)
        add_gate(out, "max_abs_score_diff", limits->max_score_diff, out->max_abs_score_diff, false);
}

void cleval_compare_paired_interval(uint64_t both_right, uint64_t a_only, uint64_t b_only,
                                    uint64_t both_wrong, double z, double *low, double *high)
{
    double n = (double)(both_right + a_only + b_only + both_wrong);
    double right_a = (double)(both_right + a_only), right_b = (double)(both_right + b_only);
    double p_a = right_a / n, p_b = right_b / n;
    /* Wilson score interval of each accuracy. */
    double z2 = z * z;
    double l[2], u[2];
    const double p[2] = {p_b, p_a};
    for (int i = 0; i < 2; i++) {
        double center = (p[i] + z2 / (2 * n)) / (1 + z2 / n);
        double half = z / (1 + z2 / n) * sqrt(p[i] * (1 - p[i]) / n + z2 / (4 * n * n));
        l[i] = fmax(0.0, center - half);
        u[i] = fmin(1.0, center + half);
    }
    /* The correlation of the paired outcomes (phi of the 2 x 2 table); 0 when a margin is 0. */
    double br = (double)both_right, bw = (double)both_wrong, ao = (double)a_only,
           bo = (double)b_only;
    double margins = right_b * (ao + bw) * right_a * (bo + bw);
    double phi = margins > 0 ? (br * bw - ao * bo) / sqrt(margins) : 0.0;
    double d = p_b - p_a;
    double dl1 = p_b - l[0], du1 = u[0] - p_b, dl2 = p_a - l[1], du2 = u[1] - p_a;
    double delta2 = dl1 * dl1 - 2 * phi * dl1 * du2 + du2 * du2;
    double eps2 = du1 * du1 - 2 * phi * du1 * dl2 + dl2 * dl2;
    *low = fmax(-1.0, d - sqrt(fmax(0.0, delta2)));
    *high = fmin(1.0, d + sqrt(fmax(0.0, eps2)));
}

cleval_status cleval_compare_run(const cleval_compare_config *config, cleval_compare_result *out)
{
    memset(out, 0, sizeof *out);
    out->path_a = config->path_a;
    out->path_b = config->path_b;
    compare_state s = {0};
    cleval_status status;
    if ((status = open_side(&s.a, config->path_a, config->data_a, config)) != CLEVAL_OK ||
        (status = open_side(&s.b, config->path_b, config->data_b, config)) != CLEVAL_OK ||
        (status = check_pair(&s, config, out)) != CLEVAL_OK ||
        (status = allocate(&s, config, out)) != CLEVAL_OK)
        goto done;
    if ((status = cleval_dataset_class_names(s.a.ds, &out->class_names.names,
                                             &out->class_names.count)) != CLEVAL_OK)
        goto done;
    if (!out->class_names.names &&
        (status = cleval_dataset_class_names(s.b.ds, &out->class_names.names,
                                             &out->class_names.count)) != CLEVAL_OK)
        goto done;
    if (config->save_path && (status = flipfile_create(config->save_path, out->has_labels,
                                                       out->has_scores, &s.save)) != CLEVAL_OK)
        goto done;

    uint64_t n = out->n_samples;
    for (uint64_t row0 = 0; row0 < n; row0 += s.batch) {
        uint64_t count = n - row0 < s.batch ? n - row0 : s.batch;
        int32_t max_label = -1;
        if (config->stop && *config->stop) {
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED,
                                 "stopped after %llu of %llu samples; nothing written",
                                 (unsigned long long)row0, (unsigned long long)n);
            goto done;
        }
        if ((status = read_batch(&s, out, row0, count, &max_label)) != CLEVAL_OK) goto done;
        /* The files' --max-classes bounds max_label (cleval_dataset_limit_classes). */
        if ((status = cleval_confusion_grow(&s.matrix, (uint32_t)max_label + 1)) != CLEVAL_OK) {
            status = cleval_fail(status, "%s, %s: %s", config->path_a, config->path_b,
                                 cleval_last_error());
            goto done;
        }
        if (out->has_scores) score_batch(&s, out, row0, count);
        if ((status = count_batch(&s, out, row0, count)) != CLEVAL_OK) goto done;
        if (config->progress) config->progress(row0 + count, n, config->progress_user);
    }
    if (out->has_scores && (status = check_nonfinite(&s, config, out)) != CLEVAL_OK) goto done;
    finish(out, &config->limits, s.abs_sum + s.abs_carry, s.finite_pairs);
    out->n_classes = s.matrix.n_classes;
    out->flip_matrix = s.matrix.counts;
    s.matrix.counts = (cleval_counts){0};
    s.matrix.n_classes = 0;
    if (s.save) {
        status = flipfile_commit(s.save, config->path_a, config->path_b, n);
        s.save = NULL;
    }

done:
    release(&s);
    if (status != CLEVAL_OK) cleval_compare_result_free(out);
    return status;
}
