/* A TCP echo server. Under WASI it accepts on the listener preopened with
 * --tcplisten (found by scanning descriptors); natively it binds
 * 127.0.0.1:PORT itself (PORT is argv[1]). It serves `argv[2]` connections
 * (default 1), echoing every byte back until the client shuts down. */
#include "common.h"
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifndef __wasi__
#include <arpa/inet.h>
#endif

static int listener(const char *port) {
#ifdef __wasi__
    (void)port;
    for (int fd = 3; fd < 64; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) return fd;
    }
    return -1;
#else
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) return -1;
    return s;
#endif
}

int main(int argc, char **argv) {
    int ls = listener(argc > 1 ? argv[1] : "0");
    if (ls < 0) { fprintf(stderr, "no listener\n"); return 3; }
    int conns = argc > 2 ? atoi(argv[2]) : 1;
    /* Tell the test we are ready (it may connect before anyway). */
    printf("listening\n");
    fflush(stdout);
    for (int c = 0; c < conns; c++) {
        struct pollfd p = {ls, POLLIN, 0};
        if (poll(&p, 1, 20000) != 1) { fprintf(stderr, "poll timed out\n"); return 4; }
        int s = accept(ls, NULL, NULL);
        if (s < 0) { perror("accept"); return 5; }
        long total = 0, chunks = 0;
        char buf[1000];
        for (;;) {
            ssize_t n = c % 2 ? read(s, buf, sizeof buf) : recv(s, buf, sizeof buf, 0);
            if (n < 0) { perror("recv"); return 6; }
            if (n == 0) break;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = c % 2 ? write(s, buf + off, n - off) : send(s, buf + off, n - off, 0);
                if (w <= 0) { perror("send"); return 7; }
                off += w;
            }
            total += n;
            chunks++;
        }
        printf("connection %d: echoed %ld bytes\n", c, total);
        REPORT("shutdown", shutdown(s, SHUT_WR));
        close(s);
    }
    printf("served %d connections\n", conns);
    return 0;
}
