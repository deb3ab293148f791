/*
 * libc_threads: the thread parts of the C library, one check per line:
 * detached threads, threads that create threads, C11 <threads.h>,
 * semaphores, timed waits on a CLOCK_MONOTONIC condition variable and on a
 * semaphore, errno and _Thread_local per thread, malloc/free from many
 * threads at once, stdio used from several threads, recursive and
 * error-checking mutexes, pthread_barrier, pthread_spin_*, pthread_attr
 * stack sizes. Prints "name: ok" lines only, so the output does not depend
 * on scheduling; a failed check prints what went wrong and exits non-zero.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <threads.h>
#include <time.h>

#include "threads_common.h"

static int failures;

static void report(const char *name, int ok) {
    printf("%s: %s\n", name, ok ? "ok" : "FAILED");
    if (!ok)
        failures++;
}

/* ---- detached threads --------------------------------------------------- */

static atomic_int detached_done;

static void *detached_main(void *arg) {
    (void)arg;
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

static void check_detached(void) {
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr));
    CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
    for (int i = 0; i < 8; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, &attr, detached_main, NULL));
    }
    /* and one detached after creation */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, detached_main, NULL));
    CHECK(pthread_detach(t));
    pthread_attr_destroy(&attr);
    struct timespec pause = {0, 1000000};
    for (int i = 0; i < 10000 && atomic_load(&detached_done) < 9; i++)
        nanosleep(&pause, NULL);
    report("detached threads", atomic_load(&detached_done) == 9);
}

/* ---- threads creating threads ------------------------------------------- */

static void *leaf(void *arg) { return (void *)((uintptr_t)arg * 2); }

static void *middle(void *arg) {
    uintptr_t base = (uintptr_t)arg, sum = 0;
    pthread_t t[3];
    for (uintptr_t i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, leaf, (void *)(base + i)));
    for (int i = 0; i < 3; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r));
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

static void check_nested(void) {
    pthread_t t[3];
    uintptr_t total = 0;
    for (uintptr_t i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, middle, (void *)(i * 10)));
    for (int i = 0; i < 3; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r));
        total += (uintptr_t)r;
    }
    /* sum over i of 2 * (3 * 10i + 0 + 1 + 2) = 2 * (90 + 9) */
    report("threads creating threads", total == 198);
}

/* ---- C11 threads ---------------------------------------------------------- */

static mtx_t c11_mtx;
static cnd_t c11_cnd;
static int c11_ready;
static tss_t c11_key;
static once_flag c11_once = ONCE_FLAG_INIT;
static int c11_once_runs;

static void c11_init(void) { c11_once_runs++; }

static int c11_main(void *arg) {
    call_once(&c11_once, c11_init);
    tss_set(c11_key, arg);
    mtx_lock(&c11_mtx);
    c11_ready++;
    cnd_signal(&c11_cnd);
    mtx_unlock(&c11_mtx);
    return (int)(intptr_t)tss_get(c11_key) + 1;
}

static void check_c11(void) {
    thrd_t t[4];
    int ok = mtx_init(&c11_mtx, mtx_plain) == thrd_success && cnd_init(&c11_cnd) == thrd_success &&
             tss_create(&c11_key, NULL) == thrd_success;
    for (intptr_t i = 0; i < 4; i++)
        ok &= thrd_create(&t[i], c11_main, (void *)(i * 100)) == thrd_success;
    mtx_lock(&c11_mtx);
    while (c11_ready < 4)
        cnd_wait(&c11_cnd, &c11_mtx);
    mtx_unlock(&c11_mtx);
    int sum = 0;
    for (int i = 0; i < 4; i++) {
        int r = 0;
        ok &= thrd_join(t[i], &r) == thrd_success;
        sum += r;
    }
    report("C11 threads", ok && sum == 604 && c11_once_runs == 1);
}

/* ---- semaphores and timed waits ----------------------------------------- */

static sem_t sem;

static void *sem_poster(void *arg) {
    for (int i = 0; i < (int)(intptr_t)arg; i++)
        sem_post(&sem);
    return NULL;
}

static void check_semaphores(void) {
    CHECK(sem_init(&sem, 0, 0));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, sem_poster, (void *)(intptr_t)1000));
    int got = 0;
    for (int i = 0; i < 3000; i++)
        got += sem_wait(&sem) == 0;
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL));
    int value = -1;
    sem_getvalue(&sem, &value);
    report("semaphore", got == 3000 && value == 0 && sem_trywait(&sem) == -1 && errno == EAGAIN);

    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_nsec += 20 * 1000000;
    if (at.tv_nsec >= 1000000000) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000;
    }
    int r = sem_timedwait(&sem, &at);
    report("sem_timedwait times out", r == -1 && errno == ETIMEDOUT);
    sem_destroy(&sem);
}

static void check_cond_monotonic(void) {
    pthread_condattr_t ca;
    pthread_cond_t c;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    clockid_t clk = CLOCK_REALTIME;
    CHECK(pthread_condattr_init(&ca));
    CHECK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC));
    CHECK(pthread_condattr_getclock(&ca, &clk));
    CHECK(pthread_cond_init(&c, &ca));
    struct timespec start, at, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    at = start;
    at.tv_nsec += 30 * 1000000;
    if (at.tv_nsec >= 1000000000) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m);
    int r = pthread_cond_timedwait(&c, &m, &at);
    pthread_mutex_unlock(&m);
    clock_gettime(CLOCK_MONOTONIC, &end);
    int64_t waited = (int64_t)(end.tv_sec - start.tv_sec) * 1000000000 + (end.tv_nsec - start.tv_nsec);
    report("cond_timedwait on CLOCK_MONOTONIC times out",
           clk == CLOCK_MONOTONIC && r == ETIMEDOUT && waited >= 30 * 1000000);
    pthread_cond_destroy(&c);
    pthread_condattr_destroy(&ca);
}

/* ---- per-thread state ------------------------------------------------------ */

static _Thread_local int tls_value = 42;
static pthread_barrier_t tls_barrier;

static void *tls_main(void *arg) {
    int id = (int)(intptr_t)arg;
    int ok = tls_value == 42;
    tls_value = id;
    errno = 1000 + id;
    /* everybody has written before anybody checks */
    pthread_barrier_wait(&tls_barrier);
    ok &= tls_value == id && errno == 1000 + id;
    return (void *)(intptr_t)ok;
}

static void check_tls(void) {
    enum { N = 6 };
    pthread_t t[N];
    CHECK(pthread_barrier_init(&tls_barrier, NULL, N));
    for (intptr_t i = 0; i < N; i++)
        CHECK(pthread_create(&t[i], NULL, tls_main, (void *)i));
    int ok = 1;
    for (int i = 0; i < N; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r));
        ok &= (intptr_t)r == 1;
    }
    pthread_barrier_destroy(&tls_barrier);
    report("errno and _Thread_local per thread", ok && tls_value == 42);
}

/* ---- malloc from many threads ---------------------------------------------- */

static void *malloc_main(void *arg) {
    uint64_t x = (uintptr_t)arg + 1, bad = 0;
    void *keep[64] = {0};
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int slot = (int)(x >> 58);
        if (keep[slot]) {
            unsigned char *p = keep[slot];
            size_t n = p[0] + 1u;
            for (size_t k = 1; k < n; k++)
                bad += p[k] != (unsigned char)(p[0] ^ k);
            free(p);
        }
        size_t n = 2 + (x >> 40) % 300;
        unsigned char *p = malloc(n);
        if (p == NULL)
            return (void *)1;
        p[0] = (unsigned char)(n - 1);
        for (size_t k = 1; k < n; k++)
            p[k] = (unsigned char)(p[0] ^ k);
        keep[slot] = p;
    }
    for (int s = 0; s < 64; s++)
        free(keep[s]);
    return (void *)(uintptr_t)(bad != 0);
}

static void check_malloc(void) {
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, malloc_main, (void *)i));
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r));
        ok &= r == NULL;
    }
    report("malloc and free from 4 threads", ok);
}

/* ---- stdio from several threads -------------------------------------------- */

static FILE *shared_file;

static void *stdio_main(void *arg) {
    char line[32];
    snprintf(line, sizeof line, "line from %d\n", (int)(intptr_t)arg);
    for (int i = 0; i < 200; i++)
        fputs(line, shared_file);
    return NULL;
}

static void check_stdio(void) {
    char *buf = NULL;
    size_t len = 0;
    shared_file = open_memstream(&buf, &len);
    pthread_t t[4];
    for (intptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, stdio_main, (void *)i));
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(t[i], NULL));
    fclose(shared_file);
    /* whole lines only: the FILE lock kept each fputs together */
    int lines[4] = {0}, ok = 1;
    for (char *p = buf; p && *p;) {
        int who = -1;
        if (sscanf(p, "line from %d\n", &who) != 1 || who < 0 || who > 3) {
            ok = 0;
            break;
        }
        lines[who]++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    free(buf);
    report("one FILE from 4 threads", ok && lines[0] == 200 && lines[1] == 200 && lines[2] == 200 &&
                                          lines[3] == 200);
}

/* ---- mutex types, spin locks, stack sizes ------------------------------------ */

static pthread_spinlock_t spin;
static long spin_counter;

static void *spin_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_spin_lock(&spin);
        spin_counter++;
        pthread_spin_unlock(&spin);
    }
    return NULL;
}

static void *big_stack_main(void *arg) {
    volatile char big[400 * 1024];
    for (size_t i = 0; i < sizeof big; i += 4096)
        big[i] = (char)i;
    return (void *)(uintptr_t)(big[4096] == (char)4096 && arg == NULL);
}

static void check_mutex_kinds(void) {
    pthread_mutexattr_t ma;
    pthread_mutex_t rec, chk;
    CHECK(pthread_mutexattr_init(&ma));
    CHECK(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE));
    CHECK(pthread_mutex_init(&rec, &ma));
    CHECK(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK));
    CHECK(pthread_mutex_init(&chk, &ma));
    int ok = pthread_mutex_lock(&rec) == 0 && pthread_mutex_lock(&rec) == 0 &&
             pthread_mutex_unlock(&rec) == 0 && pthread_mutex_unlock(&rec) == 0;
    ok &= pthread_mutex_lock(&chk) == 0 && pthread_mutex_lock(&chk) == EDEADLK &&
          pthread_mutex_unlock(&chk) == 0 && pthread_mutex_unlock(&chk) == EPERM;
    report("recursive and error-checking mutexes", ok);

    CHECK(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, spin_main, NULL));
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL));
    report("spin lock", spin_counter == 60000);

    pthread_attr_t attr;
    size_t size = 0;
    CHECK(pthread_attr_init(&attr));
    CHECK(pthread_attr_setstacksize(&attr, 1024 * 1024));
    CHECK(pthread_attr_getstacksize(&attr, &size));
    pthread_t bt;
    void *r = NULL;
    CHECK(pthread_create(&bt, &attr, big_stack_main, NULL));
    CHECK(pthread_join(bt, &r));
    report("1 MiB thread stack", size == 1024 * 1024 && r == (void *)1);
    pthread_attr_destroy(&attr);
}

int main(void) {
    check_detached();
    check_nested();
    check_c11();
    check_semaphores();
    check_cond_monotonic();
    check_tls();
    check_malloc();
    check_stdio();
    check_mutex_kinds();
    /* a second round of detached threads reuses the first round's memory */
    atomic_store(&detached_done, 0);
    check_detached();
    return failures != 0;
}
