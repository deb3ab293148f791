/* Clocks across a checkpoint: the monotonic clock must never go back and
 * short sleeps must last at least what was asked. Prints only verdicts. */
#include <stdio.h>
#include <time.h>

static long long ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void) {
    long long prev = ns(CLOCK_MONOTONIC), bad = 0;
    for (int round = 0; round < 6; round++) {
        volatile unsigned x = 0;
        (void)x;
        for (unsigned i = 0; i < 20000; i++) {
            x += i;
            long long t = ns(CLOCK_MONOTONIC);
            if (t < prev) bad++;
            prev = t;
        }
        long long a = ns(CLOCK_MONOTONIC);
        struct timespec req = {0, 2 * 1000000};
        nanosleep(&req, NULL);
        long long b = ns(CLOCK_MONOTONIC);
        if (b < a) bad++;
        printf("round %d: monotonic %s, slept %s\n", round, bad ? "FAIL" : "ok",
               b - a >= 2000000 ? "ok" : "FAIL");
        prev = b;
    }
    long long real = ns(CLOCK_REALTIME);
    printf("realtime plausible: %s\n", real > 1577836800LL * 1000000000LL ? "ok" : "FAIL");
    return 0;
}
