/*
 * Helpers shared by the threaded test programs.
 *
 * Every program is built twice from one source: natively (gcc -O2 -pthread)
 * and for wasm32-wasip1-threads (clang-19 with the sysroot of
 * scripts/threads-sysroot.sh). Both builds must print the same bytes, for
 * any thread count: results never depend on scheduling, only on the
 * arguments.
 */
#ifndef MVVM_THREADS_COMMON_H
#define MVVM_THREADS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Thread count: OMP_NUM_THREADS as the original MVVM benchmarks, 4 when
 * unset. A malformed value is an error, never silently another count. */
static inline int thread_count(void) {
    const char *s = getenv("OMP_NUM_THREADS");
    if (s == NULL || *s == '\0')
        return 4;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (*end != '\0' || n < 1 || n > 64) {
        fprintf(stderr, "OMP_NUM_THREADS must be 1..64, not '%s'\n", s);
        exit(2);
    }
    return (int)n;
}

/* A failed pthread call is a bug in the program or in the runtime: report
 * which one and stop. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        int check_rc_ = (call);                                                                    \
        if (check_rc_ != 0) {                                                                      \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #call, check_rc_);      \
            exit(3);                                                                               \
        }                                                                                          \
    } while (0)

#endif
