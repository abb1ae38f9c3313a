/* The thread pool behind inflate_pool.h: one mutex guards the job's counters; tasks are taken
 * in order, one at a time (a task is a whole chunk, far longer than the lock is held). */
#include "inflate_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct inflate_pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a task was published, or stop */
    pthread_cond_t done; /* a task finished */
    pthread_t *threads;
    unsigned started; /* threads running, the owner not counted */
    bool stop;
    inflate_pool_task fn;
    void *ctx;
    size_t published, taken, finished; /* tasks of the current job */
};

typedef struct worker_start {
    inflate_pool *pool;
    unsigned id;
} worker_start;

cleval_status inflate_pool_threads_wanted(unsigned *threads)
{
    const char *env = getenv("CLEVAL_INFLATE_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long value = strtol(env, &end, 10);
        if (errno || *end || value < 1 || value > INFLATE_POOL_MAX_THREADS)
            return cleval_fail(CLEVAL_ERR_USAGE,
                               "CLEVAL_INFLATE_THREADS must be a whole number from 1 to %d (it "
                               "is '%s')",
                               INFLATE_POOL_MAX_THREADS, env);
        *threads = (unsigned)value;
        return CLEVAL_OK;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *threads = cores <= 2 ? 1 : cores > 17 ? 16 : (unsigned)cores - 1;
    return CLEVAL_OK;
}

/* Takes the next published task under the lock, runs it without, and counts it finished. */
static bool run_one(inflate_pool *pool, unsigned worker)
{
    if (pool->taken >= pool->published) return false;
    size_t task = pool->taken++;
    inflate_pool_task fn = pool->fn;
    void *ctx = pool->ctx;
    pthread_mutex_unlock(&pool->lock);
    fn(ctx, task, worker);
    pthread_mutex_lock(&pool->lock);
    if (++pool->finished == pool->published) pthread_cond_signal(&pool->done);
    return true;
}

static void *worker_main(void *arg)
{
    worker_start start = *(worker_start *)arg;
    free(arg);
    inflate_pool *pool = start.pool;
    pthread_mutex_lock(&pool->lock);
    while (!pool->stop)
        if (!run_one(pool, start.id)) pthread_cond_wait(&pool->work, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

cleval_status inflate_pool_create(unsigned threads, inflate_pool **out)
{
    *out = NULL;
    inflate_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory starting the inflate threads");
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool);
        return cleval_fail(CLEVAL_ERR_NOMEM, "cannot create the inflate threads' lock");
    }
    if (pthread_cond_init(&pool->work, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        free(pool);
        return cleval_fail(CLEVAL_ERR_NOMEM, "cannot create the inflate threads' signal");
    }
    if (pthread_cond_init(&pool->done, NULL) != 0) {
        pthread_cond_destroy(&pool->work);
        pthread_mutex_destroy(&pool->lock);
        free(pool);
        return cleval_fail(CLEVAL_ERR_NOMEM, "cannot create the inflate threads' signal");
    }
    unsigned extra = threads > 1 ? threads - 1 : 0;
    pool->threads = extra ? calloc(extra, sizeof *pool->threads) : NULL;
    for (unsigned i = 0; pool->threads && i < extra; i++) {
        worker_start *start = malloc(sizeof *start);
        if (!start) break;
        *start = (worker_start){pool, pool->started + 1};
        if (pthread_create(&pool->threads[pool->started], NULL, worker_main, start) != 0) {
            free(start);
            break;
        }
        pool->started++;
    }
    *out = pool;
    return CLEVAL_OK;
}

unsigned inflate_pool_size(const inflate_pool *pool)
{
    return pool->started + 1;
}

void inflate_pool_begin(inflate_pool *pool, inflate_pool_task fn, void *ctx)
{
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->published = pool->taken = pool->finished = 0;
    pthread_mutex_unlock(&pool->lock);
}

void inflate_pool_publish(inflate_pool *pool, size_t ready)
{
    pthread_mutex_lock(&pool->lock);
    pool->published = ready;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
}

void inflate_pool_finish(inflate_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (run_one(pool, 0)) {
    }
    while (pool->finished < pool->published)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

void inflate_pool_destroy(inflate_pool *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
