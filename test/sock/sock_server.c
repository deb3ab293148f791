/*
 * A TCP server through WAMR's socket extension: sock_open, sock_bind,
 * sock_listen, then sock_accept and wasi-libc's recv/send/shutdown (the
 * preview1 calls) on the connection. Echoes everything the client sends
 * until it shuts down, prefixed by "echo:", and exits 0.
 *
 *   sock_server PORT
 *
 * Prints what the test checks: "bind errno N" (exit 10) when the bind is
 * refused, "listening on PORT" once it listens, "peer 127.0.0.1", and
 * "served N bytes".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wasi_socket_ext.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sock_server PORT\n");
        return 2;
    }
    int32_t fd;
    int32_t err = mvvm_sock_open(0, INET4, SOCKET_STREAM, &fd);
    if (err) {
        printf("open errno %d\n", err);
        return 9;
    }
    bool reuse = false;
    if (mvvm_sock_set_reuse_addr(fd, 1) || mvvm_sock_get_reuse_addr(fd, &reuse) || !reuse) {
        printf("reuse_addr failed\n");
        return 9;
    }
    __wasi_addr_t addr = {0};
    addr.kind = IPv4;
    addr.addr.ip4.addr = (__wasi_addr_ip4_t){127, 0, 0, 1};
    addr.addr.ip4.port = (uint16_t)atoi(argv[1]);
    err = mvvm_sock_bind(fd, &addr);
    if (err) {
        printf("bind errno %d\n", err);
        return 10;
    }
    err = mvvm_sock_listen(fd, 4);
    if (err) {
        printf("listen errno %d\n", err);
        return 11;
    }
    __wasi_addr_t local;
    if (mvvm_sock_addr_local(fd, &local) || local.kind != IPv4) {
        printf("addr_local failed\n");
        return 12;
    }
    printf("listening on %u\n", local.addr.ip4.port);
    fflush(stdout);

    int32_t conn;
    err = mvvm_sock_accept(fd, 0, &conn);
    if (err) {
        printf("accept errno %d\n", err);
        return 13;
    }
    __wasi_addr_t peer;
    if (mvvm_sock_addr_remote(conn, &peer) == 0 && peer.kind == IPv4) {
        __wasi_addr_ip4_t a = peer.addr.ip4.addr;
        printf("peer %u.%u.%u.%u\n", a.n0, a.n1, a.n2, a.n3);
    }
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(conn, buf + have, sizeof buf - have, 0);
        if (n < 0) {
            perror("recv");
            return 14;
        }
        if (n == 0 || have + (size_t)n == sizeof buf) {
            have += (size_t)n;
            break;
        }
        have += (size_t)n;
    }
    const char prefix[] = "echo:";
    if (send(conn, prefix, 5, 0) != 5 || send(conn, buf, have, 0) != (ssize_t)have) {
        perror("send");
        return 15;
    }
    shutdown(conn, SHUT_WR);
    close(conn);
    mvvm_sock_close(fd);
    printf("served %zu bytes\n", have);
    return 0;
}
