/* A small pool of threads that runs the tasks of one job while the thread that owns it is
 * still producing them: the owner publishes tasks [0, n) as their inputs become ready, then
 * helps run what is left and waits for the rest. The dataset reader uses it to inflate chunks
 * while it reads the next ones from the file; the tasks never call HDF5. */
#ifndef CLEVAL_DATASET_INFLATE_POOL_H
#define CLEVAL_DATASET_INFLATE_POOL_H

#include <stddef.h>

#include "cleval/status.h"

typedef struct inflate_pool inflate_pool;

/* Runs task `task` of the current job; `worker` is 0 for the owning thread and 1..threads-1
 * for the pool's own, so each can keep scratch memory of its own. */
typedef void (*inflate_pool_task)(void *ctx, size_t task, unsigned worker);

/* The threads a pool should use, the owner included: CLEVAL_INFLATE_THREADS when set (1 to
 * INFLATE_POOL_MAX_THREADS, else CLEVAL_ERR_USAGE naming it), otherwise one fewer than the
 * online cores (one left for the device's host thread), at least 1 and at most 16. */
enum { INFLATE_POOL_MAX_THREADS = 256 };
cleval_status inflate_pool_threads_wanted(unsigned *threads);

/* A pool running jobs on `threads` threads, the owner included (1: no thread is started and
 * the owner runs every task). A thread that cannot be started only leaves the pool smaller. */
cleval_status inflate_pool_create(unsigned threads, inflate_pool **out);

/* The threads tasks may run on, the owner included: workers are numbered below this. */
unsigned inflate_pool_size(const inflate_pool *pool);

/* Starts a job of tasks `fn(ctx, i, worker)`, none published yet. */
void inflate_pool_begin(inflate_pool *pool, inflate_pool_task fn, void *ctx);

/* Lets tasks [0, ready) of the current job run (`ready` never decreases within a job). */
void inflate_pool_publish(inflate_pool *pool, size_t ready);

/* Runs the published tasks no thread has taken on the owner, then waits until every
 * published task has finished; the pool is then ready for the next job. */
void inflate_pool_finish(inflate_pool *pool);

/* Stops and joins the threads. NULL is a no-op. */
void inflate_pool_destroy(inflate_pool *pool);

#endif
