/* `cleval knn --shard-train` under mpirun: the training set split across the ranks. Each rank
 * searches every test batch in its slice; rank 0 gathers every slice's k + 1 nearest per query
 * and votes over their union on its device, which gives exactly the single-process answer
 * (the k + 1 nearest of a union are among the k + 1 nearest of its parts). */
#include "engine_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleval/histogram.h"
#include "cleval/predfile.h"

/* What rank 0 keeps while the batches go by. */
typedef struct rank0_state {
    /* The counts: a device histogram within the dense limit; above it (a label of 9000 makes
     * 81 million cells, nearly all zero) the pairs counted on the host, sparse. */
    cleval_histogram *hist;
    pipeline_counts host_counts;
    cleval_hostbuf labels_on_device;
    int32_t *labels;
    int32_t *pred;
    float *scores;
    cleval_knn_candidate *gathered; /* [size][batch][k + 1] */
    cleval_predfile *save;
} rank0_state;

static cleval_status open_rank0(const cleval_knn_job *job, const engine_test_stream *test,
                                uint32_t n_classes, uint32_t batch, int size, uint32_t k,
                                const char *description, rank0_state *st)
{
    cleval_device *dev = job->run.devices[0];
    st->labels = malloc((size_t)batch * sizeof *st->labels);
    st->pred = malloc((size_t)batch * sizeof *st->pred);
    st->scores = job->test.save_path ? malloc((size_t)batch * n_classes * sizeof *st->scores)
                                     : NULL;
    st->gathered = malloc((size_t)size * batch * (k + 1) * sizeof *st->gathered);
    if (!st->labels || !st->pred || !st->gathered || (job->test.save_path && !st->scores))
        return cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for a batch of %u samples",
                           job->test.data_path, batch);
    cleval_status status;
    uint32_t rows = test->y ? n_classes : 1;
    if ((uint64_t)rows * n_classes > cleval_counts_dense_limit()) {
        if ((status = cleval_counts_init(&st->host_counts, rows, n_classes))) return status;
    } else if ((status = cleval_histogram_create(dev, rows, n_classes, &st->hist)) ||
               (test->y &&
                (status = cleval_hostbuf_create(dev, (size_t)batch * sizeof(int32_t), "label batch",
                                                &st->labels_on_device)))) {
        return status;
    }
    if (!job->test.save_path) return CLEVAL_OK;
    cleval_predfile_spec spec = {.n_samples = test->n, .n_classes = n_classes, .with_pred = true,
                                 .with_scores = true, .with_labels = test->y != NULL};
    if ((status = cleval_predfile_create(job->test.save_path, &spec, &st->save)) ||
        (status = cleval_predfile_set_attribute(st->save, "model", description)) ||
        (status = cleval_predfile_set_attribute(st->save, "data", job->test.data_path)) ||
        (status = cleval_predfile_set_attribute(st->save, "device",
                                                cleval_device_get_info(dev)->name)) ||
        (status = cleval_predfile_set_attribute(st->save, "cleval_version", CLEVAL_VERSION)))
        return status;
    return CLEVAL_OK;
}

static void close_rank0(cleval_device *dev, rank0_state *st)
{
    cleval_device_finish(dev);
    cleval_histogram_destroy(st->hist);
    pipeline_counts_free(&st->host_counts);
    cleval_hostbuf_release(&st->labels_on_device);
    cleval_predfile_abort(st->save);
    free(st->labels);
    free(st->pred);
    free(st->scores);
    free(st->gathered);
}

/* Adds a voted batch's (label, prediction) pairs to rank 0's counts: the device histogram
 * from the predictions the vote left on the device, or the host counts. */
static cleval_status count_batch(cleval_knn *knn, cleval_device *dev,
                                 const engine_test_stream *test, uint32_t n, rank0_state *st)
{
    cleval_status status = CLEVAL_OK;
    if (!st->hist) {
        /* Out-of-range pairs are skipped, as the device histogram skips them. */
        for (uint32_t i = 0; status == CLEVAL_OK && i < n; i++)
            status = cleval_counts_add(&st->host_counts, test->y ? (uint32_t)st->labels[i] : 0,
                                       (uint32_t)st->pred[i], 1);
        return status;
    }
    if (test->y) {
        if ((status = cleval_hostbuf_map(dev, &st->labels_on_device, true))) return status;
        memcpy(st->labels_on_device.host, st->labels, n * sizeof *st->labels);
        if ((status = cleval_hostbuf_unmap(dev, &st->labels_on_device))) return status;
    }
    return cleval_histogram_add(st->hist, test->y ? st->labels_on_device.mem : NULL,
                                cleval_knn_pred_buffer(knn), n);
}

/* Rank 0's part of one batch: the vote over every slice's candidates, the counts, the file. */
static cleval_status vote_batch(cleval_knn *knn, cleval_device *dev, const engine_test_stream *test,
                                uint64_t row0, uint32_t n, int size, rank0_state *st)
{
    cleval_status status = cleval_knn_vote_candidates(knn, n, (uint32_t)size, st->gathered,
                                                      st->pred, st->scores);
    if (status == CLEVAL_OK) status = count_batch(knn, dev, test, n, st);
    if (status != CLEVAL_OK) return status;
    return st->save ? cleval_predfile_write(st->save, row0, n, st->pred, st->scores,
                                            test->y ? st->labels : NULL)
                    : CLEVAL_OK;
}

/* This rank's searcher over its slice [*begin, *end) of the training set, loaded. */
static cleval_status open_slice(const cleval_knn_job *job, const cleval_cluster *cluster,
                                const engine_knn_inputs *in, cleval_knn_config *config,
                                uint64_t *begin, uint64_t *end, cleval_knn **knn)
{
    uint64_t n_train = cleval_column_rows(in->train_x);
    uint32_t k = config->k;
    cleval_shard_range(n_train, (uint32_t)cluster->rank, (uint32_t)cluster->size, begin, end);
    config->n_classes = in->n_classes;
    if (k > n_train)
        return cleval_fail(CLEVAL_ERR_USAGE, "-k %u is larger than the training set (%llu rows)", k,
                           (unsigned long long)n_train);
    if (*end - *begin < k)
        return cleval_fail(CLEVAL_ERR_USAGE,
                           "--shard-train: rank %d holds %llu training rows, fewer than k = %u "
                           "(use fewer ranks)",
                           cluster->rank, (unsigned long long)(*end - *begin), k);
    cleval_status status = cleval_knn_create(job->run.devices[0], config, *end - *begin,
                                             (uint32_t)cleval_column_row_size(in->train_x), knn);
    if (status != CLEVAL_OK) return status;
    return engine_load_train(knn, 1, in->train_x, in->train_y, *begin, *end);
}

/* The outcome's counts: rank 0's histogram or host counts (the confusion matrix with labels,
 * the predicted classes without) and the class names; the other ranks count nothing (rank 0
 * holds every vote) and report zeros, sparse above the dense limit. */
static cleval_status fill_counts(const cleval_knn_job *job, const engine_knn_inputs *in,
                                 const rank0_state *st, uint32_t n_classes, bool rank0,
                                 cleval_predict_outcome *out)
{
    const engine_test_stream *test = &in->test;
    if (rank0 && !st->hist) {
        cleval_status status =
            engine_fill_outcome(job->test.data_path, &st->host_counts, test->y != NULL, out);
        return status == CLEVAL_OK ? engine_class_names(test->ds, in->train, &out->class_names)
                                   : status;
    }
    pipeline_counts counts;
    cleval_status status = cleval_counts_init(&counts, test->y ? n_classes : 1, n_classes);
    if (status != CLEVAL_OK)
        return cleval_fail(status, "%s: out of memory for the counts of %u classes",
                           job->test.data_path, n_classes);
    if (rank0) status = cleval_histogram_read(st->hist, counts.cells);
    if (status == CLEVAL_OK)
        status = engine_fill_outcome(job->test.data_path, &counts, test->y != NULL, out);
    pipeline_counts_free(&counts);
    if (status == CLEVAL_OK && rank0)
        status = engine_class_names(test->ds, in->train, &out->class_names);
    return status;
}

/* A rank's buffers for one test batch. */
typedef struct batch_buffers {
    uint64_t batch;             /* rows per batch, the same on every rank */
    float *x;                   /* [batch][dim] */
    cleval_knn_candidate *mine; /* [batch][k + 1] this rank's nearest */
    int32_t *pred;              /* [batch] this rank's own votes, unused: rank 0 votes */
} batch_buffers;

/* Every test batch: each rank searches its slice [begin, ...), rank 0 gathers the candidates
 * and votes, counting its ties in out->stats. `status` is this rank's so far: the loop still
 * runs with a failure, so that every rank meets the same collective and stops there
 * (*stopped); returns the first failure. */
static cleval_status search_batches(const cleval_knn_job *job, const cleval_cluster *cluster,
                                    cleval_knn *knn, const engine_test_stream *test, uint64_t begin,
                                    const batch_buffers *b, rank0_state *st, cleval_status status,
                                    bool *stopped, cleval_knn_outcome *out)
{
    const cleval_run_options *run = &job->run;
    bool rank0 = cluster->rank == 0;
    uint32_t k = job->config.k;
    for (uint64_t row0 = 0; row0 < test->n; row0 += b->batch) {
        uint32_t n = (uint32_t)(test->n - row0 < b->batch ? test->n - row0 : b->batch);
        if (status == CLEVAL_OK && run->stop && *run->stop)
            status = cleval_fail(CLEVAL_ERR_INTERRUPTED,
                                 "stopped after %llu of %llu samples (--shard-train keeps no "
                                 "checkpoint)",
                                 (unsigned long long)row0, (unsigned long long)test->n);
        double t0 = cleval_seconds();
        int32_t max;
        if (status == CLEVAL_OK) status = cleval_column_read_f32(test->x, row0, n, b->x);
        if (status == CLEVAL_OK && rank0 && test->y)
            status = cleval_column_read_i32(test->y, row0, n, st->labels, &max);
        out->predict.read_s += cleval_seconds() - t0;
        if (status == CLEVAL_OK) status = cleval_knn_search(knn, b->x, n, b->pred, NULL);
        if (status == CLEVAL_OK) status = cleval_knn_last_candidates(knn, n, b->mine);
        /* A failure anywhere (a bad row, a device error, rank 0's last vote, a stop request)
         * stops every rank here, before the next collective. */
        if ((*stopped = cleval_cluster_agree_exit(cluster, status != CLEVAL_OK) != 0)) break;
        assert(n <= b->batch);
        for (size_t i = 0; i < (size_t)n * (k + 1); i++)
            if (b->mine[i].index >= 0) b->mine[i].index += (int32_t)begin;
        if ((status = cleval_cluster_gather(cluster, b->mine, (size_t)n * (k + 1) * sizeof *b->mine,
                                            rank0 ? st->gathered : NULL)))
            break;
        if (rank0) {
            cleval_knn_stats before = *cleval_knn_get_stats(knn);
            status = vote_batch(knn, job->run.devices[0], test, row0, n, cluster->size, st);
            out->stats.distance_ties +=
                cleval_knn_get_stats(knn)->distance_ties - before.distance_ties;
            out->stats.vote_ties += cleval_knn_get_stats(knn)->vote_ties - before.vote_ties;
            if (status == CLEVAL_OK && run->progress)
                run->progress(row0 + n, test->n, run->progress_user);
        }
    }
    return status;
}

cleval_status cleval_engine_knn_shard_train(const cleval_knn_job *job,
                                            const cleval_cluster *cluster,
                                            cleval_knn_outcome *out)
{
    memset(out, 0, sizeof *out);
    const cleval_run_options *run = &job->run;
    cleval_device *dev = run->devices[0];
    bool rank0 = cluster->rank == 0;
    engine_knn_inputs in = {0};
    cleval_knn *knn = NULL;
    rank0_state st = {0};
    batch_buffers b = {0};
    double start = cleval_seconds();
    bool stopped = false; /* a rank failed: every rank stops, nothing is reported here */
    engine_test_stream *test = &in.test;
    uint64_t begin = 0, end = 0;
    uint32_t k = job->config.k;
    cleval_knn_config config = job->config;
    cleval_status status = engine_open_knn_inputs(job, &in);
    if (status == CLEVAL_OK) {
        out->n_train = cleval_column_rows(in.train_x);
        status = open_slice(job, cluster, &in, &config, &begin, &end, &knn);
    }
    out->load_s = cleval_seconds() - start;

    /* From here on every rank takes part in the same collectives. A rank that failed keeps
     * its error; the others stop too and return no results (the caller's exit-code agreement
     * then reports the failure once). */
    stopped = cleval_cluster_agree_exit(cluster, status != CLEVAL_OK) != 0;
    if (stopped) goto done;

    b.batch = job->test.batch ? job->test.batch : CLEVAL_DEFAULT_KNN_BATCH;
    uint32_t max_batch = cleval_knn_max_batch(knn);
    /* Every rank the same batches, within every rank's limit. */
    status = cleval_cluster_min_u32(cluster, &max_batch);
    b.batch = b.batch < max_batch ? b.batch : max_batch;
    char description[160];
    engine_knn_description(&config, out->n_train, description, sizeof description);
    uint32_t dim = (uint32_t)cleval_column_row_size(in.train_x);
    b.x = malloc((size_t)b.batch * dim * sizeof *b.x);
    b.mine = malloc((size_t)b.batch * (k + 1) * sizeof *b.mine);
    b.pred = malloc((size_t)b.batch * sizeof *b.pred);
    if (!b.x || !b.mine || !b.pred)
        status = cleval_fail(CLEVAL_ERR_NOMEM, "%s: out of memory for a batch of %llu samples",
                             job->test.data_path, (unsigned long long)b.batch);
    if (status == CLEVAL_OK && rank0)
        status = open_rank0(job, test, config.n_classes, (uint32_t)b.batch, cluster->size, k,
                            description, &st);
    status = search_batches(job, cluster, knn, test, begin, &b, &st, status, &stopped, out);
    if (stopped) goto done;

    /* Counters: ties come from rank 0's votes, searches again from every rank. */
    out->stats.searched_again = cleval_knn_get_stats(knn)->searched_again;
    out->stats.screen_s = cleval_knn_get_stats(knn)->screen_s;
    out->stats.exact_s = cleval_knn_get_stats(knn)->exact_s;
    out->predict.n_total = out->predict.n_samples = out->predict.row_end = test->n;
    out->predict.has_labels = test->y != NULL;
    out->predict.n_classes = config.n_classes;
    if (status == CLEVAL_OK)
        status = fill_counts(job, &in, &st, config.n_classes, rank0, &out->predict);
    if (status == CLEVAL_OK && st.save) {
        status = cleval_predfile_commit(st.save);
        st.save = NULL;
    }

done:
    if (rank0) close_rank0(dev, &st);
    free(b.x);
    free(b.mine);
    free(b.pred);
    cleval_knn_destroy(knn);
    engine_close_knn_inputs(&in);
    if (status != CLEVAL_OK || stopped) cleval_predict_outcome_free(&out->predict);
    return status;
}
