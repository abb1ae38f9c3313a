/* Runs across processes and nodes under mpirun (Open MPI or any MPI): which rank this process
 * is, which device its node-local rank gets, and the exact integer reductions that combine
 * the ranks' counts. Without MPI support, or outside mpirun, there is no cluster and every
 * function here reports a single process. */
#ifndef CLEVAL_CLUSTER_H
#define CLEVAL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleval/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cleval_cluster {
    bool active;     /* launched by mpirun (and built with MPI) */
    int rank;        /* 0 .. size-1 */
    int size;
    int local_rank;  /* rank among the processes of this node: picks the device */
} cleval_cluster;

/* Joins the MPI job when the environment says mpirun started this process; otherwise fills a
 * single-process cluster (active false). Call once, before any other thread starts. */
cleval_status cleval_cluster_init(int *argc, char ***argv, cleval_cluster *cluster);

/* Leaves the MPI job (a no-op outside one). */
void cleval_cluster_finalize(cleval_cluster *cluster);

/* Every rank learns the worst exit code of all ranks (so none waits for a failed one). */
int cleval_cluster_agree_exit(const cleval_cluster *cluster, int exit_code);

/* The largest / the smallest value over all ranks, on every rank. */
cleval_status cleval_cluster_max_u32(const cleval_cluster *cluster, uint32_t *value);
cleval_status cleval_cluster_min_u32(const cleval_cluster *cluster, uint32_t *value);

/* Sums n counts over all ranks into rank 0's array (exact 64-bit integers); other ranks'
 * arrays are unchanged. */
cleval_status cleval_cluster_sum_counts(const cleval_cluster *cluster, uint64_t *counts,
                                        uint64_t n);

/* The largest double over all ranks (times). */
cleval_status cleval_cluster_max_double(const cleval_cluster *cluster, double *value);

/* Gathers `bytes` from every rank into rank 0's `gathered` (size * bytes, rank order); other
 * ranks may pass NULL. */
cleval_status cleval_cluster_gather(const cleval_cluster *cluster, const void *data, size_t bytes,
                                    void *gathered);

/* Gathers a different number of bytes from each rank into rank 0: *gathered is malloc'd there
 * (free()) and holds every rank's bytes in rank order, *total of them; elsewhere NULL and 0.
 * The MPI counts are int: more than 2 GiB in all fails with CLEVAL_ERR_NOMEM on every rank. */
cleval_status cleval_cluster_gather_bytes(const cleval_cluster *cluster, const void *data,
                                          size_t bytes, void **gathered, size_t *total);

/* Waits until every rank gets here. */
cleval_status cleval_cluster_barrier(const cleval_cluster *cluster);

#ifdef __cplusplus
}
#endif

#endif
