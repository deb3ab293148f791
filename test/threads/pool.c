/*
 * pool: a pthread worker pool. The main thread feeds a bounded job queue
 * (mutex + "not full" / "not empty" condition variables); OMP_NUM_THREADS
 * workers take jobs, compute them and count completions under the lock;
 * the main thread waits on a "done" condition variable, then shuts the pool
 * down with a broadcast. Also exercises pthread_once, thread-specific data
 * with a destructor, and a read-write lock.
 *
 * Usage: pool [-j JOBS] [-w WORK]. Output depends on the arguments only.
 */
#include <pthread.h>
#include <stdint.h>
#include <inttypes.h>

#include "threads_common.h"

#define QUEUE_CAP 32

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full, done;
    int32_t jobs[QUEUE_CAP];
    int head, count;
    int completed, shutdown;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER,
       .not_full = PTHREAD_COND_INITIALIZER,
       .done = PTHREAD_COND_INITIALIZER};

static uint64_t *results;
static int work_per_job;

/* Read mostly: the salt of every job, set once by the main thread under
 * the write lock, read by every job under the read lock. */
static pthread_rwlock_t salt_lock = PTHREAD_RWLOCK_INITIALIZER;
static uint64_t salt;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;
static pthread_key_t key;
static int dtor_runs;
static pthread_mutex_t dtor_lock = PTHREAD_MUTEX_INITIALIZER;

static void init_once(void) {
    once_runs++;
    CHECK(pthread_key_create(&key, NULL));
}

static void count_dtor(void *p) {
    pthread_mutex_lock(&dtor_lock);
    dtor_runs++;
    pthread_mutex_unlock(&dtor_lock);
    free(p);
}

/* The job: a hash chain whose length varies with the job id, so workers
 * finish out of order. */
static uint64_t run_job(int32_t id) {
    pthread_rwlock_rdlock(&salt_lock);
    uint64_t x = salt ^ (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    pthread_rwlock_unlock(&salt_lock);
    int steps = work_per_job + (int)((uint32_t)id * 2654435761u % (uint32_t)work_per_job);
    for (int i = 0; i < steps; i++) {
        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 29;
    }
    return x;
}

static void *worker(void *arg) {
    (void)arg;
    CHECK(pthread_once(&once, init_once));
    /* Per-thread job counter in thread-specific data; its destructor runs
     * when the worker returns. */
    int *mine = calloc(1, sizeof *mine);
    CHECK(pthread_setspecific(key, mine));
    for (;;) {
        pthread_mutex_lock(&q.lock);
        while (q.count == 0 && !q.shutdown)
            pthread_cond_wait(&q.not_empty, &q.lock);
        if (q.count == 0 && q.shutdown) {
            pthread_mutex_unlock(&q.lock);
            break;
        }
        int32_t id = q.jobs[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.lock);

        results[id] = run_job(id);
        ((int *)pthread_getspecific(key))[0]++;

        pthread_mutex_lock(&q.lock);
        q.completed++;
        pthread_cond_signal(&q.done);
        pthread_mutex_unlock(&q.lock);
    }
    return pthread_getspecific(key) == mine ? mine : NULL;
}

static long arg_long(int argc, char **argv, const char *flag, long def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    int njobs = (int)arg_long(argc, argv, "-j", 20000);
    work_per_job = (int)arg_long(argc, argv, "-w", 3000);
    int nthreads = thread_count();
    if (njobs < 1 || work_per_job < 1) {
        fprintf(stderr, "usage: pool [-j JOBS] [-w WORK]\n");
        return 2;
    }
    results = calloc((size_t)njobs, sizeof *results);
    pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
    if (results == NULL || tids == NULL)
        return 3;

    pthread_rwlock_wrlock(&salt_lock);
    salt = 0x243f6a8885a308d3ULL;
    pthread_rwlock_unlock(&salt_lock);

    /* pthread_once creates a key without destructor (workers call it
     * again: it must not run twice); replace it by one with a destructor,
     * which also exercises pthread_key_delete. */
    CHECK(pthread_once(&once, init_once));
    CHECK(pthread_key_delete(key));
    CHECK(pthread_key_create(&key, count_dtor));

    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&tids[i], NULL, worker, NULL));

    for (int32_t id = 0; id < njobs; id++) {
        pthread_mutex_lock(&q.lock);
        while (q.count == QUEUE_CAP)
            pthread_cond_wait(&q.not_full, &q.lock);
        q.jobs[(q.head + q.count) % QUEUE_CAP] = id;
        q.count++;
        pthread_cond_signal(&q.not_empty);
        pthread_mutex_unlock(&q.lock);
    }

    pthread_mutex_lock(&q.lock);
    while (q.completed < njobs)
        pthread_cond_wait(&q.done, &q.lock);
    q.shutdown = 1;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);

    int bad_returns = 0;
    for (int i = 0; i < nthreads; i++) {
        void *ret = NULL;
        CHECK(pthread_join(tids[i], &ret));
        if (ret == NULL)
            bad_returns++;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int32_t id = 0; id < njobs; id++) {
        h ^= results[id];
        h *= 0x100000001b3ULL;
    }
    printf("pool: %d jobs, work %d\n", njobs, work_per_job);
    printf("first %016" PRIx64 " last %016" PRIx64 "\n", results[0], results[njobs - 1]);
    printf("completed: %d\n", q.completed);
    printf("pthread_once ran: %d\n", once_runs);
    printf("tsd destructors: %s\n", dtor_runs == nthreads ? "one per worker" : "WRONG");
    printf("worker returns: %s\n", bad_returns == 0 ? "ok" : "WRONG");
    printf("checksum: %016" PRIx64 "\n", h);
    free(results);
    free(tids);
    return dtor_runs == nthreads && bad_returns == 0 ? 0 : 1;
}
