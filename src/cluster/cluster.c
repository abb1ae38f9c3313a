/* The MPI side of a run (see cluster.h). Built without MPI (CLEVAL_HAVE_MPI undefined), every
 * process is a cluster of one. */
#include "cleval/cluster.h"

#include <stdlib.h>
#include <string.h>

#ifdef CLEVAL_HAVE_MPI
#include <mpi.h>
#endif

/* The environment an MPI launcher sets for its processes. */
static const char *launcher_variable(const char *const *names)
{
    for (; *names; names++) {
        const char *value = getenv(*names);
        if (value && *value) return value;
    }
    return NULL;
}

cleval_status cleval_cluster_init(int *argc, char ***argv, cleval_cluster *cluster)
{
    memset(cluster, 0, sizeof *cluster);
    cluster->size = 1;
    static const char *const size_variables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                                 "MPI_LOCALNRANKS", NULL};
    if (!launcher_variable(size_variables)) return CLEVAL_OK;
#ifdef CLEVAL_HAVE_MPI
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Init_thread failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &cluster->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &cluster->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, cluster->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &cluster->local_rank);
    MPI_Comm_free(&node);
    cluster->active = true;
    return CLEVAL_OK;
#else
    (void)argc;
    (void)argv;
    return cleval_fail(CLEVAL_ERR_USAGE,
                       "started by an MPI launcher, but this cleval was built without MPI "
                       "(reconfigure with -DCLEVAL_WITH_MPI=ON)");
#endif
}

void cleval_cluster_finalize(cleval_cluster *cluster)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active) MPI_Finalize();
#endif
    cluster->active = false;
}

int cleval_cluster_agree_exit(const cleval_cluster *cluster, int exit_code)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active) {
        int worst = exit_code;
        MPI_Allreduce(&exit_code, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return worst;
    }
#endif
    (void)cluster;
    return exit_code;
}

#ifdef CLEVAL_HAVE_MPI
static cleval_status allreduce_u32(const cleval_cluster *cluster, uint32_t *value, MPI_Op op)
{
    uint32_t mine = *value;
    if (cluster->active &&
        MPI_Allreduce(&mine, value, 1, MPI_UINT32_T, op, MPI_COMM_WORLD) != MPI_SUCCESS)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Allreduce failed");
    return CLEVAL_OK;
}
#endif

cleval_status cleval_cluster_max_u32(const cleval_cluster *cluster, uint32_t *value)
{
#ifdef CLEVAL_HAVE_MPI
    return allreduce_u32(cluster, value, MPI_MAX);
#else
    (void)cluster;
    (void)value;
    return CLEVAL_OK;
#endif
}

cleval_status cleval_cluster_min_u32(const cleval_cluster *cluster, uint32_t *value)
{
#ifdef CLEVAL_HAVE_MPI
    return allreduce_u32(cluster, value, MPI_MIN);
#else
    (void)cluster;
    (void)value;
    return CLEVAL_OK;
#endif
}

cleval_status cleval_cluster_max_double(const cleval_cluster *cluster, double *value)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active) {
        double mine = *value;
        if (MPI_Allreduce(&mine, value, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
            return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Allreduce failed");
    }
#endif
    (void)cluster;
    (void)value;
    return CLEVAL_OK;
}

cleval_status cleval_cluster_sum_counts(const cleval_cluster *cluster, uint64_t *counts,
                                        uint64_t n)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active && n > 0) {
        /* Rank 0 sums in place; MPI counts are int, so reduce in pieces. */
        const uint64_t piece = 1 << 26;
        int err = MPI_SUCCESS;
        for (uint64_t at = 0; at < n && err == MPI_SUCCESS; at += piece) {
            int count = (int)(n - at < piece ? n - at : piece);
            err = MPI_Reduce(cluster->rank == 0 ? MPI_IN_PLACE : counts + at, counts + at, count,
                             MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        }
        if (err != MPI_SUCCESS) return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Reduce failed");
    }
#endif
    (void)cluster;
    (void)counts;
    (void)n;
    return CLEVAL_OK;
}

cleval_status cleval_cluster_gather(const cleval_cluster *cluster, const void *data, size_t bytes,
                                    void *gathered)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active) {
        if (bytes > INT32_MAX)
            return cleval_fail(CLEVAL_ERR_USAGE, "MPI_Gather of %zu bytes is too large", bytes);
        if (MPI_Gather(data, (int)bytes, MPI_BYTE, gathered, (int)bytes, MPI_BYTE, 0,
                       MPI_COMM_WORLD) != MPI_SUCCESS)
            return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Gather failed");
        return CLEVAL_OK;
    }
#endif
    if (gathered && gathered != data) memcpy(gathered, data, bytes);
    (void)cluster;
    return CLEVAL_OK;
}

#ifdef CLEVAL_HAVE_MPI
/* cleval_cluster_gather_bytes under MPI: each rank's byte count first, then MPI_Gatherv.
 * Every rank learns whether the sum fits an int, so all of them take the same path. */
static cleval_status gather_varying(const void *data, size_t bytes, int rank, int size,
                                    void **gathered, size_t *total)
{
    long long mine = (long long)bytes, sum = 0;
    if (MPI_Allreduce(&mine, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Allreduce failed");
    if (sum > INT32_MAX)
        return cleval_fail(CLEVAL_ERR_NOMEM,
                           "the ranks' counts, %lld bytes, are too many to gather", sum);
    int count = (int)bytes, *counts = NULL, *offsets = NULL;
    char *buffer = NULL;
    bool ok = true;
    if (rank == 0) {
        counts = calloc((size_t)size, sizeof *counts);
        offsets = calloc((size_t)size, sizeof *offsets);
        buffer = malloc(sum ? (size_t)sum : 1);
        ok = counts && offsets && buffer;
    }
    /* Every rank must reach the collectives: rank 0's lack of memory is told to all after. */
    int err = MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int r = 1; ok && rank == 0 && r < size; r++)
        offsets[r] = offsets[r - 1] + counts[r - 1];
    int failed = !ok || err != MPI_SUCCESS, any_failed = failed;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (!any_failed)
        err = MPI_Gatherv(data, count, MPI_BYTE, buffer, counts, offsets, MPI_BYTE, 0,
                          MPI_COMM_WORLD);
    free(counts);
    free(offsets);
    if (any_failed || err != MPI_SUCCESS) {
        free(buffer);
        return err != MPI_SUCCESS
                   ? cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Gatherv failed")
                   : cleval_fail(CLEVAL_ERR_NOMEM, "out of memory gathering the ranks' counts");
    }
    *gathered = buffer; /* NULL but on rank 0 */
    *total = rank == 0 ? (size_t)sum : 0;
    return CLEVAL_OK;
}
#endif

cleval_status cleval_cluster_gather_bytes(const cleval_cluster *cluster, const void *data,
                                          size_t bytes, void **gathered, size_t *total)
{
    *gathered = NULL;
    *total = 0;
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active)
        return gather_varying(data, bytes, cluster->rank, cluster->size, gathered, total);
#endif
    (void)cluster;
    /* One process: its own bytes. */
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory gathering the counts");
    if (bytes) memcpy(copy, data, bytes);
    *gathered = copy;
    *total = bytes;
    return CLEVAL_OK;
}

cleval_status cleval_cluster_barrier(const cleval_cluster *cluster)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Barrier failed");
#endif
    (void)cluster;
    return CLEVAL_OK;
}
