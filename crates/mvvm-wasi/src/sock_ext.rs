//! WAMR's socket extension of `wasi_snapshot_preview1`: the functions its
//! `wasi_socket_ext.h` declares (`sock_open`, `sock_bind`, `sock_connect`,
//! `sock_listen`, `sock_addr_*`, `sock_send_to`, `sock_recv_from` and the
//! socket option getters and setters), which the original MVVM's guests
//! import. Programs built against WAMR's `lib-socket` run unmodified.
//!
//! The sockets they open are ordinary descriptors: `sock_accept`,
//! `sock_recv`, `sock_send`, `sock_shutdown`, `fd_read`, `fd_write`,
//! `poll_oneoff` and `fd_close` work on them as on `--tcplisten`
//! listeners and their connections.
//!
//! **Grants.** Opening a socket needs nothing, but it reaches the network
//! only as the command allows ([`NetGrants`](crate::NetGrants)): a
//! `sock_connect` or `sock_send_to` destination must match an
//! `--allow-connect` pattern, a `sock_bind` address an `--allow-bind`
//! pattern (and `sock_listen` on an unbound socket, which would bind the
//! wildcard address with port 0), a name looked up by `sock_addr_resolve`
//! an `--allow-resolve` entry. Otherwise the call answers `ACCES`, as
//! WAMR's address pool does, and nothing is bound or sent.
//!
//! **Records in linear memory** (wasm32, little-endian, C layout):
//!
//! ```text
//! __wasi_addr_t (24 bytes, align 4)       __wasi_addr_ip_t (20 bytes)
//!   0  u32 kind: 0 IPv4, 1 IPv6             0  u32 kind
//!   IPv4: 4..8  a.b.c.d (one byte each)     IPv4: 4..8 a.b.c.d
//!         8..10 port (u16, host order)      IPv6: 4..20 eight u16 groups
//!   IPv6: 4..20 eight u16 groups, first
//!               first (each host order)   __wasi_addr_info_t (28 bytes)
//!         20..22 port (u16, host order)     0..24 __wasi_addr_t, 24 i32 type
//!
//! __wasi_addr_info_hints_t (12 bytes): 0 i32 type (-1 any, 0 datagram,
//!   1 stream), 4 u32 family (0 INET4, 1 INET6, 2 UNSPEC), 8 u8 enabled
//! ```
//!
//! "Host order" is the guest's, little-endian: the port 8080 is stored as
//! the bytes `90 1f`, and 127.0.0.1 as `7f 00 00 01`.

use super::errno::Errno;
use super::func::WasiFunc;
use super::mem::{GuestMem, iovecs_total};
use super::rights::need;
use super::state::{ConnOrigin, FdEntry, FdKind, SockFamily, SockType};
use super::types::{RECV_PEEK, RECV_WAITALL, fdflags, rights};
use super::{Handle, WasiCtx, sys};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::BorrowedFd;

type R = Result<(), Errno>;

/// Size of `__wasi_addr_t`.
pub const ADDR_SIZE: u32 = 24;
/// Size of `__wasi_addr_ip_t`.
pub const ADDR_IP_SIZE: u32 = 20;
/// Size of `__wasi_addr_info_t`.
pub const ADDR_INFO_SIZE: u32 = 28;
/// Size of `__wasi_addr_info_hints_t`.
pub const HINTS_SIZE: u32 = 12;

/// `__wasi_addr_type_t`.
pub mod addr_kind {
    /// IPv4.
    pub const IPV4: u32 = 0;
    /// IPv6.
    pub const IPV6: u32 = 1;
}

/// `__wasi_address_family_t`.
pub mod family {
    /// IPv4.
    pub const INET4: u32 = 0;
    /// IPv6.
    pub const INET6: u32 = 1;
    /// Either (resolve hints only).
    pub const INET_UNSPEC: u32 = 2;
}

/// `__wasi_sock_type_t`.
pub mod socktype {
    /// Any type (resolve hints only): -1 as a 32-bit value.
    pub const ANY: u32 = u32::MAX;
    /// Datagram (UDP).
    pub const DGRAM: u32 = 0;
    /// Stream (TCP).
    pub const STREAM: u32 = 1;
}

/// Longest host name `sock_addr_resolve` reads (DNS allows 253).
const MAX_HOST: u32 = 255;
/// Longest service string `sock_addr_resolve` reads.
const MAX_SERVICE: u32 = 32;

/// Encodes `addr` as a `__wasi_addr_t`.
pub fn encode_addr(addr: SocketAddr) -> [u8; ADDR_SIZE as usize] {
    let mut out = [0u8; ADDR_SIZE as usize];
    match addr {
        SocketAddr::V4(a) => {
            out[0..4].copy_from_slice(&addr_kind::IPV4.to_le_bytes());
            out[4..8].copy_from_slice(&a.ip().octets());
            out[8..10].copy_from_slice(&a.port().to_le_bytes());
        }
        SocketAddr::V6(a) => {
            out[0..4].copy_from_slice(&addr_kind::IPV6.to_le_bytes());
            for (i, g) in a.ip().segments().iter().enumerate() {
                out[4 + 2 * i..6 + 2 * i].copy_from_slice(&g.to_le_bytes());
            }
            out[20..22].copy_from_slice(&a.port().to_le_bytes());
        }
    }
    out
}

/// Decodes a `__wasi_addr_t`; an unknown kind is `AFNOSUPPORT`.
pub fn decode_addr(b: &[u8; ADDR_SIZE as usize]) -> Result<SocketAddr, Errno> {
    let kind = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    match kind {
        addr_kind::IPV4 => {
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(SocketAddr::from((ip, u16::from_le_bytes([b[8], b[9]]))))
        }
        addr_kind::IPV6 => {
            let ip = ipv6_of(&b[4..20]);
            Ok(SocketAddr::from((ip, u16::from_le_bytes([b[20], b[21]]))))
        }
        _ => Err(Errno::AFNOSUPPORT),
    }
}

/// Decodes a `__wasi_addr_ip_t` (an address without a port).
pub fn decode_ip(b: &[u8; ADDR_IP_SIZE as usize]) -> Result<IpAddr, Errno> {
    match u32::from_le_bytes([b[0], b[1], b[2], b[3]]) {
        addr_kind::IPV4 => Ok(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))),
        addr_kind::IPV6 => Ok(IpAddr::V6(ipv6_of(&b[4..20]))),
        _ => Err(Errno::AFNOSUPPORT),
    }
}

/// Eight little-endian 16-bit groups, first group first.
fn ipv6_of(b: &[u8]) -> Ipv6Addr {
    let mut g = [0u16; 8];
    for (i, v) in g.iter_mut().enumerate() {
        *v = u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    }
    Ipv6Addr::from(g)
}

/// Encodes one `__wasi_addr_info_t`.
pub fn encode_addr_info(addr: SocketAddr, ty: u32) -> [u8; ADDR_INFO_SIZE as usize] {
    let mut out = [0u8; ADDR_INFO_SIZE as usize];
    out[..ADDR_SIZE as usize].copy_from_slice(&encode_addr(addr));
    out[24..28].copy_from_slice(&ty.to_le_bytes());
    out
}

fn read_addr(m: &GuestMem<'_>, ptr: u32) -> Result<SocketAddr, Errno> {
    let b = m.read_bytes(ptr, ADDR_SIZE)?;
    let b: [u8; ADDR_SIZE as usize] = b.try_into().map_err(|_| Errno::FAULT)?;
    decode_addr(&b)
}

/// A socket option moved as a C `int`, and how the guest sees its value.
#[derive(Clone, Copy)]
enum Opt {
    /// A flag: the guest reads a `bool` (one byte), passes an `i32`.
    Bool(libc::c_int, libc::c_int),
    /// A size or a count of seconds: the guest reads and passes a `u32`.
    U32(libc::c_int, libc::c_int),
    /// A TTL: the guest reads a `uint8_t`, passes an `i32` of 0 to 255.
    U8(libc::c_int, libc::c_int),
}

/// The option a getter or setter of the extension reads or sets (the
/// timeouts, linger, multicast loop and memberships are handled apart).
fn option_of(func: WasiFunc) -> Option<(Opt, bool)> {
    use WasiFunc as F;
    use libc::{IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, SOL_SOCKET};
    let (opt, set) = match func {
        F::SockGetRecvBufSize => (Opt::U32(SOL_SOCKET, libc::SO_RCVBUF), false),
        F::SockSetRecvBufSize => (Opt::U32(SOL_SOCKET, libc::SO_RCVBUF), true),
        F::SockGetSendBufSize => (Opt::U32(SOL_SOCKET, libc::SO_SNDBUF), false),
        F::SockSetSendBufSize => (Opt::U32(SOL_SOCKET, libc::SO_SNDBUF), true),
        F::SockGetReuseAddr => (Opt::Bool(SOL_SOCKET, libc::SO_REUSEADDR), false),
        F::SockSetReuseAddr => (Opt::Bool(SOL_SOCKET, libc::SO_REUSEADDR), true),
        F::SockGetReusePort => (Opt::Bool(SOL_SOCKET, libc::SO_REUSEPORT), false),
        F::SockSetReusePort => (Opt::Bool(SOL_SOCKET, libc::SO_REUSEPORT), true),
        F::SockGetKeepAlive => (Opt::Bool(SOL_SOCKET, libc::SO_KEEPALIVE), false),
        F::SockSetKeepAlive => (Opt::Bool(SOL_SOCKET, libc::SO_KEEPALIVE), true),
        F::SockGetBroadcast => (Opt::Bool(SOL_SOCKET, libc::SO_BROADCAST), false),
        F::SockSetBroadcast => (Opt::Bool(SOL_SOCKET, libc::SO_BROADCAST), true),
        F::SockGetTcpNoDelay => (Opt::Bool(IPPROTO_TCP, libc::TCP_NODELAY), false),
        F::SockSetTcpNoDelay => (Opt::Bool(IPPROTO_TCP, libc::TCP_NODELAY), true),
        F::SockGetTcpQuickAck => (Opt::Bool(IPPROTO_TCP, libc::TCP_QUICKACK), false),
        F::SockSetTcpQuickAck => (Opt::Bool(IPPROTO_TCP, libc::TCP_QUICKACK), true),
        F::SockGetTcpFastopenConnect => (Opt::Bool(IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT), false),
        F::SockSetTcpFastopenConnect => (Opt::Bool(IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT), true),
        F::SockGetIpv6Only => (Opt::Bool(IPPROTO_IPV6, libc::IPV6_V6ONLY), false),
        F::SockSetIpv6Only => (Opt::Bool(IPPROTO_IPV6, libc::IPV6_V6ONLY), true),
        F::SockGetTcpKeepIdle => (Opt::U32(IPPROTO_TCP, libc::TCP_KEEPIDLE), false),
        F::SockSetTcpKeepIdle => (Opt::U32(IPPROTO_TCP, libc::TCP_KEEPIDLE), true),
        F::SockGetTcpKeepIntvl => (Opt::U32(IPPROTO_TCP, libc::TCP_KEEPINTVL), false),
        F::SockSetTcpKeepIntvl => (Opt::U32(IPPROTO_TCP, libc::TCP_KEEPINTVL), true),
        F::SockGetIpTtl => (Opt::U8(IPPROTO_IP, libc::IP_TTL), false),
        F::SockSetIpTtl => (Opt::U8(IPPROTO_IP, libc::IP_TTL), true),
        F::SockGetIpMulticastTtl => (Opt::U8(IPPROTO_IP, libc::IP_MULTICAST_TTL), false),
        F::SockSetIpMulticastTtl => (Opt::U8(IPPROTO_IP, libc::IP_MULTICAST_TTL), true),
        _ => return None,
    };
    Some((opt, set))
}

/// The `SO_RCVTIMEO`/`SO_SNDTIMEO` value of `us` microseconds.
fn timeval_of(us: u64) -> libc::timeval {
    libc::timeval {
        tv_sec: (us / 1_000_000).min(i64::MAX as u64) as libc::time_t,
        tv_usec: (us % 1_000_000) as libc::suseconds_t,
    }
}

impl WasiCtx {
    /// Runs one function of the extension (the dispatcher sends every
    /// function it does not know here).
    pub(super) fn sock_ext(&mut self, func: WasiFunc, m: &mut GuestMem<'_>, a: &[u64]) -> R {
        use WasiFunc as F;
        let w = |i: usize| a.get(i).copied().unwrap_or(0) as u32;
        match func {
            F::SockOpen => self.sock_open(m, w(1), w(2), w(3)),
            F::SockBind => self.sock_bind(m, w(0), w(1)),
            F::SockConnect => self.sock_connect(m, w(0), w(1)),
            F::SockListen => self.sock_listen(w(0), w(1)),
            F::SockClose => self.fd_close(w(0)),
            F::SockAddrLocal => self.sock_addr(m, w(0), w(1), false),
            F::SockAddrRemote => self.sock_addr(m, w(0), w(1), true),
            F::SockAddrResolve => self.sock_addr_resolve(m, w(0), w(1), w(2), w(3), w(4), w(5)),
            F::SockSendTo => self.sock_send_to(m, w(0), w(1), w(2), w(4), w(5)),
            F::SockRecvFrom => self.sock_recv_from(m, w(0), w(1), w(2), w(3), w(4), w(5)),
            F::SockGetRecvTimeout | F::SockGetSendTimeout => {
                let name = if func == F::SockGetRecvTimeout {
                    libc::SO_RCVTIMEO
                } else {
                    libc::SO_SNDTIMEO
                };
                m.check(w(1), 8)?;
                let h = self.socket(w(0))?.1;
                let tv: libc::timeval = sys::getsockopt(h, libc::SOL_SOCKET, name)?;
                let us = (tv.tv_sec.max(0) as u64)
                    .saturating_mul(1_000_000)
                    .saturating_add(tv.tv_usec.max(0) as u64);
                m.write_u64(w(1), us)
            }
            F::SockSetRecvTimeout | F::SockSetSendTimeout => {
                let name = if func == F::SockSetRecvTimeout {
                    libc::SO_RCVTIMEO
                } else {
                    libc::SO_SNDTIMEO
                };
                let h = self.socket(w(0))?.1;
                let us = a.get(1).copied().unwrap_or(0);
                Ok(sys::setsockopt(h, libc::SOL_SOCKET, name, timeval_of(us))?)
            }
            F::SockGetLinger => {
                m.check(w(1), 1)?;
                m.check(w(2), 4)?;
                let h = self.socket(w(0))?.1;
                let l: libc::linger = sys::getsockopt(h, libc::SOL_SOCKET, libc::SO_LINGER)?;
                m.write_u8(w(1), u8::from(l.l_onoff != 0))?;
                m.write_u32(w(2), l.l_linger as u32)
            }
            F::SockSetLinger => {
                let secs = w(2) as i32;
                if secs < 0 {
                    return Err(Errno::INVAL);
                }
                let h = self.socket(w(0))?.1;
                let l = libc::linger {
                    l_onoff: libc::c_int::from(w(1) != 0),
                    l_linger: secs,
                };
                Ok(sys::setsockopt(h, libc::SOL_SOCKET, libc::SO_LINGER, l)?)
            }
            F::SockGetIpMulticastLoop | F::SockSetIpMulticastLoop => {
                let (level, name) = if w(1) != 0 {
                    (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP)
                } else {
                    (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP)
                };
                let set = func == F::SockSetIpMulticastLoop;
                self.option(m, w(0), Opt::Bool(level, name), set, w(2))
            }
            F::SockSetIpAddMembership | F::SockSetIpDropMembership => {
                let add = func == F::SockSetIpAddMembership;
                let b = m.read_bytes(w(1), ADDR_IP_SIZE)?;
                let b: [u8; ADDR_IP_SIZE as usize] = b.try_into().map_err(|_| Errno::FAULT)?;
                let group = decode_ip(&b)?;
                let h = self.socket(w(0))?.1;
                match group {
                    IpAddr::V4(g) => {
                        let name = if add {
                            libc::IP_ADD_MEMBERSHIP
                        } else {
                            libc::IP_DROP_MEMBERSHIP
                        };
                        let mreq = libc::ip_mreq {
                            imr_multiaddr: libc::in_addr {
                                s_addr: u32::from(g).to_be(),
                            },
                            // WAMR passes the interface address as the
                            // guest holds it (network order).
                            imr_interface: libc::in_addr { s_addr: w(2) },
                        };
                        Ok(sys::setsockopt(h, libc::IPPROTO_IP, name, mreq)?)
                    }
                    IpAddr::V6(g) => {
                        let name = if add {
                            libc::IPV6_ADD_MEMBERSHIP
                        } else {
                            libc::IPV6_DROP_MEMBERSHIP
                        };
                        let mreq = libc::ipv6_mreq {
                            ipv6mr_multiaddr: libc::in6_addr {
                                s6_addr: g.octets(),
                            },
                            ipv6mr_interface: w(2),
                        };
                        Ok(sys::setsockopt(h, libc::IPPROTO_IPV6, name, mreq)?)
                    }
                }
            }
            _ => match option_of(func) {
                Some((opt, set)) => self.option(m, w(0), opt, set, w(1)),
                None => Err(Errno::NOSYS),
            },
        }
    }

    /// The entry and host socket of `fd` (`NOTSOCK` for other kinds).
    fn socket(&self, fd: u32) -> Result<(&FdEntry, BorrowedFd<'_>), Errno> {
        let (entry, h) = self.get(fd)?;
        if !entry.kind.is_socket() {
            return Err(Errno::NOTSOCK);
        }
        Ok((entry, h))
    }

    /// Gets (into the guest's `arg` pointer) or sets (to `arg`) option
    /// `opt` of socket `fd`.
    fn option(&mut self, m: &mut GuestMem<'_>, fd: u32, opt: Opt, set: bool, arg: u32) -> R {
        let (level, name) = match opt {
            Opt::Bool(l, n) | Opt::U32(l, n) | Opt::U8(l, n) => (l, n),
        };
        if set {
            let v = match opt {
                Opt::Bool(..) => libc::c_int::from(arg != 0),
                Opt::U32(..) => libc::c_int::try_from(arg).map_err(|_| Errno::INVAL)?,
                Opt::U8(..) => u8::try_from(arg).map_err(|_| Errno::INVAL)?.into(),
            };
            let h = self.socket(fd)?.1;
            return Ok(sys::setsockopt(h, level, name, v)?);
        }
        let width = match opt {
            Opt::U32(..) => 4,
            Opt::Bool(..) | Opt::U8(..) => 1,
        };
        m.check(arg, width)?;
        let h = self.socket(fd)?.1;
        let v: libc::c_int = sys::getsockopt(h, level, name)?;
        match opt {
            Opt::Bool(..) => m.write_u8(arg, u8::from(v != 0)),
            Opt::U32(..) => m.write_u32(arg, v as u32),
            Opt::U8(..) => m.write_u8(arg, v as u8),
        }
    }

    fn sock_open(&mut self, m: &mut GuestMem<'_>, af: u32, ty: u32, out: u32) -> R {
        m.check(out, 4)?;
        let (fam, domain) = match af {
            family::INET4 => (SockFamily::Inet4, libc::AF_INET),
            family::INET6 => (SockFamily::Inet6, libc::AF_INET6),
            _ => return Err(Errno::AFNOSUPPORT),
        };
        let (ty, raw_ty) = match ty {
            socktype::STREAM => (SockType::Stream, libc::SOCK_STREAM),
            socktype::DGRAM => (SockType::Dgram, libc::SOCK_DGRAM),
            _ => return Err(Errno::INVAL),
        };
        let sock = sys::socket(domain, raw_ty)?;
        let new = self.next_fd();
        self.insert(
            new,
            FdEntry {
                kind: FdKind::Socket {
                    family: fam,
                    ty,
                    local: None,
                    peer: None,
                },
                preopen: None,
                path: String::new(),
                oflags: 0,
                lookup_flags: 0,
                read: true,
                write: true,
                rights_base: rights::SOCKET | rights::LISTENER,
                rights_inheriting: rights::SOCKET,
                fdflags: 0,
                position: 0,
                file_id: None,
            },
            Handle::Owned(sock),
        );
        m.write_u32(out, new)
    }

    fn sock_bind(&mut self, m: &mut GuestMem<'_>, fd: u32, addr_ptr: u32) -> R {
        let addr = read_addr(m, addr_ptr)?;
        let (entry, h) = self.socket(fd)?;
        let FdKind::Socket { local: None, .. } = entry.kind else {
            // Bound already, listening or connected: as bind(2) answers.
            return Err(Errno::INVAL);
        };
        if !self.net.may_bind(addr) {
            tracing::warn!(fd, %addr, "sock_bind refused: no --allow-bind grant covers the address");
            return Err(Errno::ACCES);
        }
        sys::bind(h, addr)?;
        let bound = sys::local_addr(h)?;
        if let Some(FdEntry {
            kind: FdKind::Socket { local, .. },
            ..
        }) = self.state.fds.get_mut(&fd)
        {
            *local = Some(bound);
        }
        Ok(())
    }

    fn sock_connect(&mut self, m: &mut GuestMem<'_>, fd: u32, addr_ptr: u32) -> R {
        let addr = read_addr(m, addr_ptr)?;
        let (entry, h) = self.socket(fd)?;
        let ty = match entry.kind {
            FdKind::Socket { ty, .. } => ty,
            FdKind::TcpStream { .. } => return Err(Errno::ISCONN),
            _ => return Err(Errno::INVAL),
        };
        if !self.net.may_connect(addr) {
            tracing::warn!(fd, %addr, "sock_connect refused: no --allow-connect grant covers the address");
            return Err(Errno::ACCES);
        }
        let outcome = sys::connect(h, addr).map_err(Errno::from);
        if !matches!(outcome, Ok(()) | Err(Errno::INPROGRESS)) {
            return outcome;
        }
        let local = sys::local_addr(h)?;
        if let Some(e) = self.state.fds.get_mut(&fd) {
            e.kind = match (ty, &e.kind) {
                (SockType::Stream, _) => FdKind::TcpStream {
                    local,
                    peer: addr,
                    origin: ConnOrigin::Connect,
                },
                (SockType::Dgram, FdKind::Socket { family, local, .. }) => FdKind::Socket {
                    family: *family,
                    ty,
                    local: *local,
                    peer: Some(addr),
                },
                (_, k) => k.clone(),
            };
        }
        outcome
    }

    fn sock_listen(&mut self, fd: u32, backlog: u32) -> R {
        let (entry, h) = self.socket(fd)?;
        let (family, local) = match entry.kind {
            FdKind::Socket {
                ty: SockType::Stream,
                family,
                local,
                ..
            } => (family, local),
            FdKind::Socket { .. } => return Err(Errno::NOTSUP),
            FdKind::TcpListener { .. } | FdKind::BoundListener { .. } => return Ok(()),
            _ => return Err(Errno::INVAL),
        };
        if local.is_none() {
            // listen(2) would bind the wildcard address, any port.
            let any = match family {
                SockFamily::Inet4 => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                SockFamily::Inet6 => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            };
            if !self.net.may_bind(any) {
                tracing::warn!(fd, %any, "sock_listen refused: the socket is not bound and no --allow-bind grant covers {any}");
                return Err(Errno::ACCES);
            }
        }
        let backlog = backlog.min(i32::MAX as u32);
        sys::listen(h, backlog as libc::c_int)?;
        let addr = sys::local_addr(h)?;
        if let Some(e) = self.state.fds.get_mut(&fd) {
            e.kind = FdKind::BoundListener { addr, backlog };
            e.rights_base &= rights::LISTENER;
            e.rights_inheriting &= rights::SOCKET;
        }
        Ok(())
    }

    fn sock_addr(&mut self, m: &mut GuestMem<'_>, fd: u32, out: u32, remote: bool) -> R {
        m.check(out, ADDR_SIZE)?;
        let (entry, h) = self.socket(fd)?;
        let addr = match (&entry.kind, remote) {
            (FdKind::TcpStream { local, .. }, false) => *local,
            (FdKind::TcpStream { peer, .. }, true) => *peer,
            (FdKind::TcpListener { addr } | FdKind::BoundListener { addr, .. }, false) => *addr,
            (FdKind::Socket { .. }, false) => sys::local_addr(h)?,
            (FdKind::Socket { peer: Some(p), .. }, true) => *p,
            _ => return Err(Errno::NOTCONN),
        };
        m.write_bytes(out, &encode_addr(addr))
    }

    #[allow(clippy::too_many_arguments)]
    fn sock_addr_resolve(
        &mut self,
        m: &mut GuestMem<'_>,
        host_ptr: u32,
        service_ptr: u32,
        hints_ptr: u32,
        out: u32,
        out_count: u32,
        max_out: u32,
    ) -> R {
        let host = m.read_cstr(host_ptr, MAX_HOST)?;
        let service = m.read_cstr(service_ptr, MAX_SERVICE)?;
        let hints = m.read_bytes(hints_ptr, HINTS_SIZE)?;
        m.check(max_out, 4)?;
        let out_bytes = out_count.checked_mul(ADDR_INFO_SIZE).ok_or(Errno::FAULT)?;
        m.check(out, out_bytes)?;
        let host = String::from_utf8(host).map_err(|_| Errno::INVAL)?;
        let service = String::from_utf8(service).map_err(|_| Errno::INVAL)?;
        // Only numeric services: there is no services database here.
        let port = match service.as_str() {
            "" => 0,
            s => s.parse::<u16>().map_err(|_| Errno::INVAL)?,
        };
        let word =
            |i: usize| u32::from_le_bytes([hints[i], hints[i + 1], hints[i + 2], hints[i + 3]]);
        let enabled = hints[8] != 0;
        let (want_ty, want_family) = if enabled {
            (word(0), word(4))
        } else {
            (socktype::ANY, family::INET_UNSPEC)
        };
        let types: &[u32] = match want_ty {
            socktype::ANY => &[socktype::STREAM, socktype::DGRAM],
            socktype::STREAM => &[socktype::STREAM],
            socktype::DGRAM => &[socktype::DGRAM],
            _ => return Err(Errno::INVAL),
        };
        let keep = |a: &SocketAddr| match want_family {
            family::INET4 => Ok(a.is_ipv4()),
            family::INET6 => Ok(a.is_ipv6()),
            family::INET_UNSPEC => Ok(true),
            _ => Err(Errno::INVAL),
        };
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            // A numeric address needs no lookup, hence no grant.
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                if !self.net.may_resolve(&host) {
                    tracing::warn!(%host, "sock_addr_resolve refused: no --allow-resolve grant covers the name");
                    return Err(Errno::ACCES);
                }
                let mut found: Vec<SocketAddr> = Vec::new();
                for a in (host.as_str(), port).to_socket_addrs().map_err(|e| {
                    tracing::debug!(%host, error = %e, "sock_addr_resolve: lookup failed");
                    Errno::NOENT
                })? {
                    if !found.contains(&a) {
                        found.push(a);
                    }
                }
                found
            }
        };
        let mut entries = Vec::new();
        for a in addrs {
            if keep(&a)? {
                entries.extend(types.iter().map(|&t| encode_addr_info(a, t)));
            }
        }
        for (i, e) in entries.iter().take(out_count as usize).enumerate() {
            m.write_bytes(out + i as u32 * ADDR_INFO_SIZE, e)?;
        }
        m.write_u32(max_out, entries.len() as u32)
    }

    fn sock_send_to(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        addr_ptr: u32,
        out: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out, 4)?;
        let addr = read_addr(m, addr_ptr)?;
        let data = m.gather(&iovs)?;
        let (entry, _) = self.socket(fd)?;
        need(entry, rights::FD_WRITE)?;
        let connected_stream = match entry.kind {
            FdKind::TcpStream { .. } => true,
            FdKind::Socket {
                ty: SockType::Dgram,
                ..
            } => false,
            _ => return Err(Errno::NOTCONN),
        };
        self.take_reset(fd)?;
        let (_, h) = self.get(fd)?;
        // A connected stream socket ignores the address, as sendto(2) does
        // on Linux: the data goes to the peer the connection was granted.
        let put = if connected_stream {
            sys::send(h, &data)?
        } else {
            if !self.net.may_connect(addr) {
                tracing::warn!(fd, %addr, "sock_send_to refused: no --allow-connect grant covers the address");
                return Err(Errno::ACCES);
            }
            sys::send_to(h, &data, addr)?
        };
        m.write_u32(out, put as u32)
    }

    #[allow(clippy::too_many_arguments)]
    fn sock_recv_from(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        ri_flags: u32,
        addr_out: u32,
        out_len: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(addr_out, ADDR_SIZE)?;
        m.check(out_len, 4)?;
        if ri_flags & !u32::from(RECV_PEEK | RECV_WAITALL) != 0 {
            return Err(Errno::INVAL);
        }
        let mut flags = 0;
        if ri_flags & u32::from(RECV_PEEK) != 0 {
            flags |= libc::MSG_PEEK;
        }
        if ri_flags & u32::from(RECV_WAITALL) != 0 {
            flags |= libc::MSG_WAITALL;
        }
        let (entry, _) = self.socket(fd)?;
        need(entry, rights::FD_READ)?;
        let peer = match entry.kind {
            FdKind::TcpStream { peer, .. } => Some(peer),
            FdKind::Socket {
                ty: SockType::Dgram,
                peer,
                ..
            } => peer,
            _ => return Err(Errno::NOTCONN),
        };
        self.take_reset(fd)?;
        self.wait_ready(fd, false)?;
        let (_, h) = self.get(fd)?;
        let mut buf = vec![0u8; iovecs_total(&iovs)];
        let (got, from) = sys::recv_from(h, &mut buf, flags)?;
        let from = from
            .or(peer)
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        m.scatter(&iovs, &buf[..got])?;
        m.write_bytes(addr_out, &encode_addr(from))?;
        m.write_u32(out_len, got as u32)
    }
}

/// Whether `entry` may block in a read (used by `interrupt.rs`): any
/// socket without `NONBLOCK`.
pub(crate) fn may_block(entry: &FdEntry) -> bool {
    entry.kind.is_socket() && entry.fdflags & fdflags::NONBLOCK == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_address_layout() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let b = encode_addr(a);
        assert_eq!(&b[0..4], &[0, 0, 0, 0], "kind IPv4");
        assert_eq!(&b[4..8], &[127, 0, 0, 1], "n0..n3");
        assert_eq!(&b[8..10], &[0x90, 0x1f], "port 8080 in host (LE) order");
        assert!(b[10..].iter().all(|&x| x == 0));
        assert_eq!(decode_addr(&b).unwrap(), a);
    }

    #[test]
    fn ipv6_address_layout() {
        let a: SocketAddr = "[fe80::3ba2:893b:4be0:e3dd]:443".parse().unwrap();
        let b = encode_addr(a);
        assert_eq!(&b[0..4], &[1, 0, 0, 0], "kind IPv6");
        assert_eq!(&b[4..6], &[0x80, 0xfe], "n0 = 0xfe80, little-endian");
        assert_eq!(&b[12..14], &[0xa2, 0x3b], "h0 = 0x3ba2");
        assert_eq!(&b[18..20], &[0xdd, 0xe3], "h3 = 0xe3dd");
        assert_eq!(&b[20..22], &443u16.to_le_bytes());
        assert_eq!(decode_addr(&b).unwrap(), a);
    }

    #[test]
    fn unknown_address_kind_is_an_errno() {
        let mut b = [0u8; ADDR_SIZE as usize];
        b[0] = 2;
        assert_eq!(decode_addr(&b), Err(Errno::AFNOSUPPORT));
        let mut ip = [0u8; ADDR_IP_SIZE as usize];
        ip[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_ip(&ip), Err(Errno::AFNOSUPPORT));
        ip[0] = 0;
        ip[1..4].fill(0);
        ip[4..8].copy_from_slice(&[224, 0, 0, 1]);
        assert_eq!(decode_ip(&ip), Ok(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1))));
    }

    #[test]
    fn addr_info_puts_the_type_after_the_address() {
        let a: SocketAddr = "10.1.2.3:53".parse().unwrap();
        let e = encode_addr_info(a, socktype::DGRAM);
        assert_eq!(&e[..24], &encode_addr(a));
        assert_eq!(&e[24..], &[0, 0, 0, 0]);
        let e = encode_addr_info(a, socktype::STREAM);
        assert_eq!(&e[24..], &[1, 0, 0, 0]);
    }
}
