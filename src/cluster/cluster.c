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

cleval_status cleval_cluster_barrier(const cleval_cluster *cluster)
{
#ifdef CLEVAL_HAVE_MPI
    if (cluster->active && MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
        return cleval_fail(CLEVAL_ERR_INTERNAL, "MPI_Barrier failed");
#endif
    (void)cluster;
    return CLEVAL_OK;
}
