/* Helpers shared by the corpus programs. Each program is built twice from
 * the same source: natively with gcc (the oracle) and to wasm32-wasi with
 * clang; both builds must print the same thing. So nothing printed may
 * depend on the platform: no strerror() text (glibc and wasi-libc word it
 * differently), no times, no random values, no directory paths. */
#ifndef MVVM_TEST_COMMON_H
#define MVVM_TEST_COMMON_H

#define _GNU_SOURCE 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The symbolic name of an errno value. */
__attribute__((unused)) static const char *errname(int e) {
    switch (e) {
    case 0: return "OK";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ELOOP: return "ELOOP";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ESPIPE: return "ESPIPE";
    case EXDEV: return "EXDEV";
    case ENAMETOOLONG: return "ENAMETOOLONG";
#ifdef ENOTCAPABLE
    case ENOTCAPABLE: return "ENOTCAPABLE";
#endif
    default: return "E?";
    }
}

/* Prints "what: OK" or "what: ENAME" for a call that returns -1 on error. */
#define REPORT(what, expr)                                                   \
    do {                                                                     \
        errno = 0;                                                           \
        long r_ = (long)(expr);                                              \
        printf("%s: %s\n", (what), r_ < 0 ? errname(errno) : "OK");          \
    } while (0)

/* Dies with a message (on stderr) when a call that must work fails. */
#define MUST(expr)                                                           \
    do {                                                                     \
        if ((long)(expr) < 0) {                                              \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,    \
                    #expr, strerror(errno));                                 \
            exit(99);                                                        \
        }                                                                    \
    } while (0)

/* dir + "/" + name, in a static ring of buffers. */
__attribute__((unused)) static const char *P(const char *dir, const char *name) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* The working directory given as argv[1]. */
__attribute__((unused)) static const char *workdir(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        exit(2);
    }
    return argv[1];
}

#endif
