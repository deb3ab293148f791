/*
 * MVVM's declaration of WAMR's socket extension of wasi_snapshot_preview1
 * (the ABI of WAMR's wasi_socket_ext.h, written here from its documented
 * layouts; see crates/mvvm-wasi/src/sock_ext.rs and docs/sockets.md).
 *
 * Every function returns a WASI errno (0 on success). Records are in the
 * guest's byte order (little-endian); a port is a plain uint16_t, not in
 * network order.
 */
#ifndef MVVM_WASI_SOCKET_EXT_H
#define MVVM_WASI_SOCKET_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SOCKET_ANY = -1, SOCKET_DGRAM = 0, SOCKET_STREAM } __wasi_sock_type_t;
typedef enum { IPv4 = 0, IPv6 } __wasi_addr_type_t;
typedef enum { INET4 = 0, INET6, INET_UNSPEC } __wasi_address_family_t;
typedef uint16_t __wasi_ip_port_t;

/* 127.0.0.1 is {127, 0, 0, 1}. */
typedef struct { uint8_t n0, n1, n2, n3; } __wasi_addr_ip4_t;
typedef struct { __wasi_addr_ip4_t addr; __wasi_ip_port_t port; } __wasi_addr_ip4_port_t;
/* Eight 16-bit groups, first group first, each a plain uint16_t. */
typedef struct { uint16_t n0, n1, n2, n3, h0, h1, h2, h3; } __wasi_addr_ip6_t;
typedef struct { __wasi_addr_ip6_t addr; __wasi_ip_port_t port; } __wasi_addr_ip6_port_t;

typedef struct {
    __wasi_addr_type_t kind;
    union { __wasi_addr_ip4_t ip4; __wasi_addr_ip6_t ip6; } addr;
} __wasi_addr_ip_t;

typedef struct {
    __wasi_addr_type_t kind;
    union { __wasi_addr_ip4_port_t ip4; __wasi_addr_ip6_port_t ip6; } addr;
} __wasi_addr_t;

typedef struct { __wasi_addr_t addr; __wasi_sock_type_t type; } __wasi_addr_info_t;

typedef struct {
    __wasi_sock_type_t type;
    __wasi_address_family_t family;
    uint8_t hints_enabled;
} __wasi_addr_info_hints_t;

/* The layout the runtime decodes (sock_ext.rs); a mismatch fails here. */
_Static_assert(sizeof(__wasi_addr_t) == 24, "__wasi_addr_t");
_Static_assert(offsetof(__wasi_addr_t, addr.ip4.port) == 8, "ip4 port");
_Static_assert(offsetof(__wasi_addr_t, addr.ip6.port) == 20, "ip6 port");
_Static_assert(sizeof(__wasi_addr_ip_t) == 20, "__wasi_addr_ip_t");
_Static_assert(sizeof(__wasi_addr_info_t) == 28, "__wasi_addr_info_t");
_Static_assert(sizeof(__wasi_addr_info_hints_t) == 12, "hints");

#define MVVM_SOCK_IMPORT(name) \
    __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

/* The calls, named as WAMR's header names its wrappers. */
int32_t mvvm_sock_open(int32_t poolfd, int32_t af, int32_t socktype, int32_t *fd) MVVM_SOCK_IMPORT(sock_open);
int32_t mvvm_sock_bind(int32_t fd, const __wasi_addr_t *addr) MVVM_SOCK_IMPORT(sock_bind);
int32_t mvvm_sock_connect(int32_t fd, const __wasi_addr_t *addr) MVVM_SOCK_IMPORT(sock_connect);
int32_t mvvm_sock_listen(int32_t fd, int32_t backlog) MVVM_SOCK_IMPORT(sock_listen);
int32_t mvvm_sock_accept(int32_t fd, int32_t flags, int32_t *fd_new) MVVM_SOCK_IMPORT(sock_accept);
int32_t mvvm_sock_close(int32_t fd) MVVM_SOCK_IMPORT(sock_close);
int32_t mvvm_sock_addr_local(int32_t fd, __wasi_addr_t *addr) MVVM_SOCK_IMPORT(sock_addr_local);
int32_t mvvm_sock_addr_remote(int32_t fd, __wasi_addr_t *addr) MVVM_SOCK_IMPORT(sock_addr_remote);
int32_t mvvm_sock_addr_resolve(const char *host, const char *service,
                               const __wasi_addr_info_hints_t *hints,
                               __wasi_addr_info_t *info, uint32_t info_count,
                               uint32_t *max_info) MVVM_SOCK_IMPORT(sock_addr_resolve);
/* iovs are __wasi_ciovec_t / __wasi_iovec_t arrays of wasi/api.h. */
int32_t mvvm_sock_send_to(int32_t fd, const void *iovs, uint32_t iovs_len, int32_t si_flags,
                          const __wasi_addr_t *dest, uint32_t *sent) MVVM_SOCK_IMPORT(sock_send_to);
int32_t mvvm_sock_recv_from(int32_t fd, void *iovs, uint32_t iovs_len, int32_t ri_flags,
                            __wasi_addr_t *src, uint32_t *received) MVVM_SOCK_IMPORT(sock_recv_from);

int32_t mvvm_sock_set_reuse_addr(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_reuse_addr);
int32_t mvvm_sock_get_reuse_addr(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_reuse_addr);
int32_t mvvm_sock_set_reuse_port(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_reuse_port);
int32_t mvvm_sock_get_reuse_port(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_reuse_port);
int32_t mvvm_sock_set_keep_alive(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_keep_alive);
int32_t mvvm_sock_get_keep_alive(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_keep_alive);
int32_t mvvm_sock_set_broadcast(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_broadcast);
int32_t mvvm_sock_get_broadcast(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_broadcast);
int32_t mvvm_sock_set_tcp_no_delay(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_tcp_no_delay);
int32_t mvvm_sock_get_tcp_no_delay(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_tcp_no_delay);
int32_t mvvm_sock_set_tcp_quick_ack(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_tcp_quick_ack);
int32_t mvvm_sock_get_tcp_quick_ack(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_tcp_quick_ack);
int32_t mvvm_sock_set_tcp_fastopen_connect(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_tcp_fastopen_connect);
int32_t mvvm_sock_get_tcp_fastopen_connect(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_tcp_fastopen_connect);
int32_t mvvm_sock_set_ipv6_only(int32_t fd, int32_t on) MVVM_SOCK_IMPORT(sock_set_ipv6_only);
int32_t mvvm_sock_get_ipv6_only(int32_t fd, bool *on) MVVM_SOCK_IMPORT(sock_get_ipv6_only);
int32_t mvvm_sock_set_recv_buf_size(int32_t fd, uint32_t size) MVVM_SOCK_IMPORT(sock_set_recv_buf_size);
int32_t mvvm_sock_get_recv_buf_size(int32_t fd, uint32_t *size) MVVM_SOCK_IMPORT(sock_get_recv_buf_size);
int32_t mvvm_sock_set_send_buf_size(int32_t fd, uint32_t size) MVVM_SOCK_IMPORT(sock_set_send_buf_size);
int32_t mvvm_sock_get_send_buf_size(int32_t fd, uint32_t *size) MVVM_SOCK_IMPORT(sock_get_send_buf_size);
int32_t mvvm_sock_set_tcp_keep_idle(int32_t fd, uint32_t secs) MVVM_SOCK_IMPORT(sock_set_tcp_keep_idle);
int32_t mvvm_sock_get_tcp_keep_idle(int32_t fd, uint32_t *secs) MVVM_SOCK_IMPORT(sock_get_tcp_keep_idle);
int32_t mvvm_sock_set_tcp_keep_intvl(int32_t fd, uint32_t secs) MVVM_SOCK_IMPORT(sock_set_tcp_keep_intvl);
int32_t mvvm_sock_get_tcp_keep_intvl(int32_t fd, uint32_t *secs) MVVM_SOCK_IMPORT(sock_get_tcp_keep_intvl);
int32_t mvvm_sock_set_ip_ttl(int32_t fd, int32_t ttl) MVVM_SOCK_IMPORT(sock_set_ip_ttl);
int32_t mvvm_sock_get_ip_ttl(int32_t fd, uint8_t *ttl) MVVM_SOCK_IMPORT(sock_get_ip_ttl);
int32_t mvvm_sock_set_ip_multicast_ttl(int32_t fd, int32_t ttl) MVVM_SOCK_IMPORT(sock_set_ip_multicast_ttl);
int32_t mvvm_sock_get_ip_multicast_ttl(int32_t fd, uint8_t *ttl) MVVM_SOCK_IMPORT(sock_get_ip_multicast_ttl);
int32_t mvvm_sock_set_ip_multicast_loop(int32_t fd, int32_t ipv6, int32_t on) MVVM_SOCK_IMPORT(sock_set_ip_multicast_loop);
int32_t mvvm_sock_get_ip_multicast_loop(int32_t fd, int32_t ipv6, bool *on) MVVM_SOCK_IMPORT(sock_get_ip_multicast_loop);
int32_t mvvm_sock_set_ip_add_membership(int32_t fd, const __wasi_addr_ip_t *group, uint32_t iface) MVVM_SOCK_IMPORT(sock_set_ip_add_membership);
int32_t mvvm_sock_set_ip_drop_membership(int32_t fd, const __wasi_addr_ip_t *group, uint32_t iface) MVVM_SOCK_IMPORT(sock_set_ip_drop_membership);
int32_t mvvm_sock_set_recv_timeout(int32_t fd, uint64_t us) MVVM_SOCK_IMPORT(sock_set_recv_timeout);
int32_t mvvm_sock_get_recv_timeout(int32_t fd, uint64_t *us) MVVM_SOCK_IMPORT(sock_get_recv_timeout);
int32_t mvvm_sock_set_send_timeout(int32_t fd, uint64_t us) MVVM_SOCK_IMPORT(sock_set_send_timeout);
int32_t mvvm_sock_get_send_timeout(int32_t fd, uint64_t *us) MVVM_SOCK_IMPORT(sock_get_send_timeout);
int32_t mvvm_sock_set_linger(int32_t fd, int32_t on, int32_t secs) MVVM_SOCK_IMPORT(sock_set_linger);
int32_t mvvm_sock_get_linger(int32_t fd, bool *on, int32_t *secs) MVVM_SOCK_IMPORT(sock_get_linger);

#endif
