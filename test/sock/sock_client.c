/*
 * A TCP client through WAMR's socket extension: sock_addr_resolve (of a
 * numeric address: no lookup), sock_open, sock_connect, sock_addr_local,
 * sock_addr_remote, options, then wasi-libc's send/shutdown/recv (the
 * preview1 calls). With a fourth argument "udp", also a datagram round
 * trip between two UDP sockets bound on 127.0.0.1 (sock_send_to,
 * sock_recv_from).
 *
 *   sock_client IP PORT MESSAGE [udp]
 *
 * Prints "connect errno N" (exit 20) when the connection is refused, and
 * otherwise "reply: ..." with what the server sent back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wasi/api.h>

#include "wasi_socket_ext.h"

static int udp_round_trip(void) {
    int32_t a, b;
    if (mvvm_sock_open(0, INET4, SOCKET_DGRAM, &a) || mvvm_sock_open(0, INET4, SOCKET_DGRAM, &b)) {
        printf("udp open failed\n");
        return 30;
    }
    __wasi_addr_t any = {0};
    any.kind = IPv4;
    any.addr.ip4.addr = (__wasi_addr_ip4_t){127, 0, 0, 1};
    int32_t err = mvvm_sock_bind(a, &any);
    if (!err)
        err = mvvm_sock_bind(b, &any);
    if (err) {
        printf("udp bind errno %d\n", err);
        return 31;
    }
    __wasi_addr_t at_a, at_b;
    mvvm_sock_addr_local(a, &at_a);
    mvvm_sock_addr_local(b, &at_b);
    char msg[] = "dgram";
    __wasi_ciovec_t out = {(const uint8_t *)msg, 5};
    uint32_t sent = 0;
    err = mvvm_sock_send_to(b, &out, 1, 0, &at_a, &sent);
    if (err || sent != 5) {
        printf("udp send_to errno %d\n", err);
        return 32;
    }
    char got[16] = {0};
    __wasi_iovec_t in = {(uint8_t *)got, sizeof got - 1};
    __wasi_addr_t from;
    uint32_t received = 0;
    err = mvvm_sock_recv_from(a, &in, 1, 0, &from, &received);
    if (err) {
        printf("udp recv_from errno %d\n", err);
        return 33;
    }
    printf("udp: %s from %s port\n", got,
           from.kind == IPv4 && from.addr.ip4.port == at_b.addr.ip4.port ? "the sender's" : "ANOTHER");
    mvvm_sock_close(a);
    mvvm_sock_close(b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sock_client IP PORT MESSAGE [udp]\n");
        return 2;
    }
    __wasi_addr_info_hints_t hints = {SOCKET_STREAM, INET4, 1};
    __wasi_addr_info_t info[4];
    uint32_t found = 0;
    int32_t err = mvvm_sock_addr_resolve(argv[1], argv[2], &hints, info, 4, &found);
    if (err || found == 0) {
        printf("resolve errno %d (%u found)\n", err, found);
        return 19;
    }
    printf("resolved %u, type %s\n", found, info[0].type == SOCKET_STREAM ? "stream" : "other");

    int32_t fd;
    if ((err = mvvm_sock_open(0, INET4, SOCKET_STREAM, &fd))) {
        printf("open errno %d\n", err);
        return 9;
    }
    err = mvvm_sock_connect(fd, &info[0].addr);
    if (err) {
        printf("connect errno %d\n", err);
        return 20;
    }
    __wasi_addr_t local, remote;
    if (mvvm_sock_addr_local(fd, &local) || mvvm_sock_addr_remote(fd, &remote)) {
        printf("addr failed\n");
        return 21;
    }
    printf("local %u.%u.%u.%u, port %s\n", local.addr.ip4.addr.n0, local.addr.ip4.addr.n1,
           local.addr.ip4.addr.n2, local.addr.ip4.addr.n3, local.addr.ip4.port ? "set" : "zero");
    printf("remote port %s\n", remote.addr.ip4.port == (uint16_t)atoi(argv[2]) ? "matches" : "DIFFERS");
    bool on = false;
    if (mvvm_sock_set_tcp_no_delay(fd, 1) == 0 && mvvm_sock_get_tcp_no_delay(fd, &on) == 0)
        printf("nodelay %d\n", on);
    uint64_t us = 0;
    if (mvvm_sock_set_recv_timeout(fd, 2500000) == 0 && mvvm_sock_get_recv_timeout(fd, &us) == 0)
        printf("recv timeout %llu us\n", (unsigned long long)us);

    fflush(stdout);
    size_t len = strlen(argv[3]);
    if (send(fd, argv[3], len, 0) != (ssize_t)len) {
        perror("send");
        return 22;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n < 0) {
            perror("recv");
            printf("recv failed\n");
            return 23;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    buf[have] = 0;
    printf("reply: %s\n", buf);
    close(fd);
    if (argc > 4 && strcmp(argv[4], "udp") == 0)
        return udp_round_trip();
    return 0;
}
