/* Clocks and sleeping: properties only, never the times themselves. */
#include "common.h"
#include <poll.h>
#include <sched.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t c) {
    struct timespec ts;
    if (clock_gettime(c, &ts) < 0) return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void) {
    long long prev = ns(CLOCK_MONOTONIC), bad = 0;
    for (int i = 0; i < 100000; i++) {
        long long t = ns(CLOCK_MONOTONIC);
        if (t < prev) bad++;
        prev = t;
    }
    printf("monotonic never goes back: %s\n", bad == 0 ? "ok" : "FAIL");
    struct timespec res;
    printf("monotonic res: %s\n",
           clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0 ? "ok" : "FAIL");
    printf("realtime res: %s\n", clock_getres(CLOCK_REALTIME, &res) == 0 ? "ok" : "FAIL");
    long long real = ns(CLOCK_REALTIME);
    /* After 2020-01-01 and before 2200. */
    printf("realtime plausible: %s\n",
           real > 1577836800LL * 1000000000LL && real < 7258118400LL * 1000000000LL ? "ok" : "FAIL");
    time_t t = time(NULL);
    printf("time() agrees: %s\n", llabs((long long)t - real / 1000000000LL) <= 2 ? "ok" : "FAIL");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    printf("gettimeofday agrees: %s\n", llabs((long long)tv.tv_sec - real / 1000000000LL) <= 2 ? "ok" : "FAIL");
    long long cpu0 = ns(CLOCK_PROCESS_CPUTIME_ID);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 20000000UL; i++) x += i;
    (void)x;
    long long cpu1 = ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("process cputime advances: %s\n", cpu0 >= 0 && cpu1 > cpu0 ? "ok" : "FAIL");

    long long a = ns(CLOCK_MONOTONIC);
    struct timespec req = {0, 30 * 1000000};
    int r = nanosleep(&req, NULL);
    long long b = ns(CLOCK_MONOTONIC);
    printf("nanosleep 30ms: %s\n", r == 0 && b - a >= 30000000LL ? "ok" : "FAIL");
    a = ns(CLOCK_MONOTONIC);
    usleep(20000);
    b = ns(CLOCK_MONOTONIC);
    printf("usleep 20ms: %s\n", b - a >= 20000000LL ? "ok" : "FAIL");
    a = ns(CLOCK_MONOTONIC);
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 25000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
    b = ns(CLOCK_MONOTONIC);
    printf("clock_nanosleep absolute: %s\n", r == 0 && b - a >= 20000000LL ? "ok" : "FAIL");
    a = ns(CLOCK_MONOTONIC);
    r = poll(NULL, 0, 15);
    b = ns(CLOCK_MONOTONIC);
    printf("poll timeout 15ms: %s\n", r == 0 && b - a >= 15000000LL ? "ok" : "FAIL");
    printf("sched_yield: %s\n", sched_yield() == 0 ? "ok" : "FAIL");
    return 0;
}
