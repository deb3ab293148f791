//! Linux TCP repair mode (`TCP_REPAIR`, kernel 3.5 and later): the system
//! calls that read a connection's kernel state out of a socket and put it
//! into a new one, as CRIU does. What they mean and in which order they
//! are used is in `crate::tcp_repair`; this module only wraps them.
//!
//! The `libc` crate has the socket option numbers (`TCP_REPAIR`,
//! `TCP_REPAIR_QUEUE`, `TCP_QUEUE_SEQ`, `TCP_REPAIR_OPTIONS`,
//! `TCP_TIMESTAMP`, `TCP_REPAIR_WINDOW`) but not the values they take nor
//! the two structures: those are defined below, each with the uapi header
//! it comes from.

use super::{cvt, cvt_size};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `TCP_REPAIR` value: enter repair mode (`TCP_REPAIR_ON`,
/// `include/uapi/linux/tcp.h`).
pub const REPAIR_ON: libc::c_int = 1;
/// `TCP_REPAIR` value: leave repair mode and send a window probe, so the
/// peer answers with its current window (`TCP_REPAIR_OFF`,
/// `include/uapi/linux/tcp.h`).
pub const REPAIR_OFF: libc::c_int = 0;
/// `TCP_REPAIR` value: leave repair mode without a window probe
/// (`TCP_REPAIR_OFF_NO_WP`, `include/uapi/linux/tcp.h`, kernel 4.14+).
pub const REPAIR_OFF_NO_WP: libc::c_int = -1;

/// `TCP_REPAIR_QUEUE` values (`include/uapi/linux/tcp.h`, the anonymous
/// enum with `TCP_NO_QUEUE`, `TCP_RECV_QUEUE`, `TCP_SEND_QUEUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Queue {
    /// `TCP_NO_QUEUE`: no queue selected (reads and writes act normally).
    None = 0,
    /// `TCP_RECV_QUEUE`: data received and not read by the application.
    Recv = 1,
    /// `TCP_SEND_QUEUE`: data written and not acknowledged by the peer.
    Send = 2,
}

/// Option codes of `TCP_REPAIR_OPTIONS` (`TCPOPT_*` of
/// `include/net/tcp.h`: the TCP header option kinds of RFC 9293).
pub mod opt {
    /// `TCPOPT_MAXSEG`: value = the peer's MSS.
    pub const MAXSEG: u32 = 2;
    /// `TCPOPT_WINDOW`: value = send scale | receive scale << 16.
    pub const WINDOW: u32 = 3;
    /// `TCPOPT_SACK_PERM`: selective acknowledgements in use.
    pub const SACK_PERM: u32 = 4;
    /// `TCPOPT_TIMESTAMP`: timestamps in use.
    pub const TIMESTAMP: u32 = 8;
}

/// Bits of `tcp_info.tcpi_options` (`TCPI_OPT_*`,
/// `include/uapi/linux/tcp.h`).
pub mod info_opt {
    /// `TCPI_OPT_TIMESTAMPS`.
    pub const TIMESTAMPS: u8 = 1;
    /// `TCPI_OPT_SACK`.
    pub const SACK: u8 = 2;
    /// `TCPI_OPT_WSCALE`.
    pub const WSCALE: u8 = 4;
}

/// `SIOCOUTQNSD`: bytes of the send queue not sent yet
/// (`include/uapi/linux/sockios.h`).
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

/// `TCP_ESTABLISHED`, the value of `tcp_info.tcpi_state` of an
/// established connection (`include/net/tcp_states.h`).
pub const STATE_ESTABLISHED: u8 = 1;

/// `struct tcp_repair_opt` (`include/uapi/linux/tcp.h`).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct RepairOpt {
    /// One of [`opt`].
    pub opt_code: u32,
    /// Its value.
    pub opt_val: u32,
}

/// `struct tcp_repair_window` (`include/uapi/linux/tcp.h`, kernel 4.8+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RepairWindow {
    /// Sequence number of the segment that last updated the send window.
    pub snd_wl1: u32,
    /// The peer's receive window (our send window).
    pub snd_wnd: u32,
    /// Largest window the peer ever offered.
    pub max_window: u32,
    /// Our receive window as last advertised.
    pub rcv_wnd: u32,
    /// `rcv_nxt` when that window was advertised.
    pub rcv_wup: u32,
}

impl super::sealed::Sealed for RepairWindow {}
impl super::sealed::Sealed for libc::tcp_info {}
sockopt_values!(RepairWindow, libc::tcp_info);

/// Enters (`REPAIR_ON`) or leaves (`REPAIR_OFF`, `REPAIR_OFF_NO_WP`)
/// repair mode. Entering needs `CAP_NET_ADMIN` (`EPERM` otherwise).
pub fn set_repair(fd: BorrowedFd<'_>, mode: libc::c_int) -> io::Result<()> {
    super::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, mode)
}

/// Selects the queue that `recv`/`send` and `TCP_QUEUE_SEQ` act on.
pub fn select_queue(fd: BorrowedFd<'_>, q: Queue) -> io::Result<()> {
    super::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_QUEUE, q as i32)
}

/// The sequence number of the selected queue: the next to receive
/// (`rcv_nxt`) for the receive queue, the next to write (`write_seq`)
/// for the send queue.
pub fn queue_seq(fd: BorrowedFd<'_>) -> io::Result<u32> {
    super::getsockopt::<libc::c_int>(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ).map(|v| v as u32)
}

/// Sets the selected queue's first sequence number (a closed socket only).
pub fn set_queue_seq(fd: BorrowedFd<'_>, seq: u32) -> io::Result<()> {
    super::setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_QUEUE_SEQ,
        seq as libc::c_int,
    )
}

/// Copies the selected queue (in repair mode, `recv` with `MSG_PEEK`
/// reads the send queue as well as the receive queue) into `buf`.
pub fn peek_queue(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    super::recv(fd, buf, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Appends `data` to the selected queue (repair mode) or sends it
/// (normal mode), without blocking: the bytes the kernel took.
pub fn send_nowait(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: validity: `data` is a shared slice, valid for reads of its
    // length; alignment: bytes; lifetime: it outlives the call; aliasing:
    // the kernel only reads it.
    cvt_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
}

/// An `int` a socket `ioctl` reports (`SIOCINQ`, `SIOCOUTQ`, `SIOCOUTQNSD`).
fn ioctl_int(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    // SAFETY: validity and alignment: these requests write one `int`
    // through the pointer, which points to an aligned local `int`;
    // lifetime: it outlives the call; aliasing: only the kernel writes it.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut v as *mut libc::c_int) })?;
    usize::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Bytes received and not read (`SIOCINQ`, the same number as `FIONREAD`).
pub fn inq(fd: BorrowedFd<'_>) -> io::Result<usize> {
    ioctl_int(fd, libc::FIONREAD as libc::c_ulong)
}

/// Bytes written and not acknowledged, sent or not (`SIOCOUTQ`, the same
/// number as `TIOCOUTQ`).
pub fn outq(fd: BorrowedFd<'_>) -> io::Result<usize> {
    ioctl_int(fd, libc::TIOCOUTQ as libc::c_ulong)
}

/// Bytes written and not sent yet (`SIOCOUTQNSD`).
pub fn outq_unsent(fd: BorrowedFd<'_>) -> io::Result<usize> {
    ioctl_int(fd, SIOCOUTQNSD)
}

/// `TCP_INFO` (only the fields a kernel fills; the rest stay zero).
pub fn info(fd: BorrowedFd<'_>) -> io::Result<libc::tcp_info> {
    super::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO)
}

/// `TCP_REPAIR_OPTIONS`: the options negotiated at connection time, set
/// on an established socket in repair mode.
pub fn set_options(fd: BorrowedFd<'_>, opts: &[RepairOpt]) -> io::Result<()> {
    if opts.is_empty() {
        return Ok(());
    }
    // SAFETY: validity: `opts` is a slice of `repr(C)` structs laid out
    // as the kernel's `struct tcp_repair_opt` array, and the length passed
    // is its size in bytes; alignment: a Rust slice is aligned for its
    // type; lifetime: it outlives the call (the kernel copies it);
    // aliasing: the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR_OPTIONS,
            opts.as_ptr().cast(),
            std::mem::size_of_val(opts) as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `TCP_REPAIR_WINDOW` (read in repair mode).
pub fn window(fd: BorrowedFd<'_>) -> io::Result<RepairWindow> {
    super::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW)
}

/// Sets `TCP_REPAIR_WINDOW` (repair mode, established socket).
pub fn set_window(fd: BorrowedFd<'_>, w: RepairWindow) -> io::Result<()> {
    super::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW, w)
}

/// `TCP_TIMESTAMP`: the socket's current TCP timestamp clock.
pub fn timestamp(fd: BorrowedFd<'_>) -> io::Result<u32> {
    super::getsockopt::<libc::c_int>(fd, libc::IPPROTO_TCP, libc::TCP_TIMESTAMP).map(|v| v as u32)
}

/// Sets `TCP_TIMESTAMP` (repair mode): the socket's timestamp clock
/// continues from `ts`, so the peer's PAWS check accepts its segments.
pub fn set_timestamp(fd: BorrowedFd<'_>, ts: u32) -> io::Result<()> {
    super::setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_TIMESTAMP,
        ts as libc::c_int,
    )
}

/// `TCP_MAXSEG`: the MSS the socket sends with.
pub fn mss(fd: BorrowedFd<'_>) -> io::Result<u32> {
    super::getsockopt::<libc::c_int>(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG).map(|v| v as u32)
}

/// Lets the socket bind an address this host does not hold (yet)
/// (`IP_FREEBIND` / `IPV6_FREEBIND`). Without `IP_TRANSPARENT` the kernel
/// still sends nothing from such an address: the socket only works once
/// the address is up.
pub fn set_freebind(fd: BorrowedFd<'_>, v6: bool) -> io::Result<()> {
    if v6 {
        super::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)
    } else {
        super::setsockopt(fd, libc::IPPROTO_IP, libc::IP_FREEBIND, 1)
    }
}

/// Lets the socket send from an address this host does not hold yet
/// (`IP_TRANSPARENT` / `IPV6_TRANSPARENT`, needs `CAP_NET_ADMIN`): a
/// connection can be rebuilt before the service address arrives here.
pub fn set_transparent(fd: BorrowedFd<'_>, v6: bool) -> io::Result<()> {
    if v6 {
        super::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_TRANSPARENT, 1)
    } else {
        super::setsockopt(fd, libc::IPPROTO_IP, libc::IP_TRANSPARENT, 1)
    }
}

/// Attaches a classic BPF socket filter that drops every incoming packet
/// (`SO_ATTACH_FILTER` with the one instruction `ret #0`). TCP runs a
/// socket's filter before its state machine, so a dropped segment is
/// neither queued nor acknowledged: the peer keeps it and retransmits it,
/// to whichever socket holds the connection by then. This is the
/// connection's network lock during a checkpoint that ends the run (what
/// CRIU does with a netfilter rule), and needs no privilege.
pub fn attach_drop_filter(fd: BorrowedFd<'_>) -> io::Result<()> {
    // `BPF_RET | BPF_K` (0x06): return the constant `k`, here 0 bytes of
    // the packet to keep, that is drop it.
    let mut code = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: code.len() as libc::c_ushort,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: validity and alignment: `prog` is an initialised, aligned
    // local `sock_fprog` whose `filter` points to `code`, an aligned array
    // of `len` initialised `sock_filter`s; lifetime: both outlive the call
    // and the kernel copies the program; aliasing: the kernel only reads
    // them.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Removes the socket's filter ([`attach_drop_filter`]).
pub fn detach_filter(fd: BorrowedFd<'_>) -> io::Result<()> {
    super::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_DETACH_FILTER,
        0 as libc::c_int,
    )
}
