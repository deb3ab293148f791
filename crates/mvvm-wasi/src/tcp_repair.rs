//! Guest TCP connections that survive a checkpoint and restore, through
//! Linux's TCP repair mode, as CRIU does (docs/migration.md, "Connections
//! survive").
//!
//! ```text
//!  checkpoint (save_state)                 restore (WasiCtx::restore)
//!  TCP_REPAIR on                           socket, TCP_REPAIR on
//!  SIOCINQ / SIOCOUTQ / SIOCOUTQNSD        TCP_QUEUE_SEQ of both queues
//!  per queue: TCP_QUEUE_SEQ, recv(PEEK)    bind local (FREEBIND), connect
//!  TCP_INFO, TCP_MAXSEG, TCP_TIMESTAMP,    (no SYN in repair mode)
//!  TCP_REPAIR_WINDOW                       TCP_REPAIR_OPTIONS, TCP_TIMESTAMP
//!  TCP_REPAIR off (no window probe)        queues: send() per queue
//!  ... snapshot written ...                TCP_REPAIR_WINDOW
//!  park: TCP_REPAIR on, process exits:     TCP_REPAIR off (window probe)
//!  the close sends neither FIN nor RST     unsent bytes sent normally
//! ```
//!
//! The state is read with the socket in repair mode and the socket then
//! leaves it again at once (a periodic checkpoint goes on running); only
//! when the run stops for good ([`WasiCtx::park_connections`]) do the
//! saved connections enter it for the last time, so that the exit closes
//! them silently and the peer keeps its end for the restored program.
//!
//! Whatever cannot be repaired (no `CAP_NET_ADMIN`, a state other than
//! established, a grant the receiver lacks, an address this host cannot
//! bind, a failing call) falls back to the behaviour without repair: the
//! guest sees the connection reset. The reason is logged at warn level,
//! once per connection. Never an error of the checkpoint or the restore.

use super::state::{ConnOrigin, SavedConnection, TcpWindow};
use super::sys;
use super::sys::tcp_repair::{self as tr, Queue, RepairOpt, RepairWindow};
use crate::grants::Grants;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Most bytes one queue (send or receive) of a saved connection may hold:
/// far above what the kernel's default buffers keep (`tcp_rmem` and
/// `tcp_wmem` maxima are a few MiB). A checkpoint with more saves no
/// repair state for the connection; a restore refuses a saved queue
/// above it before the kernel is asked to hold it (the state's decoder
/// already bounds the whole state to 1 GiB).
pub const MAX_QUEUE_BYTES: usize = 64 << 20;

/// Largest window scale shift TCP allows (`TCP_MAX_WSCALE`, RFC 7323).
const MAX_WSCALE: u8 = 14;

/// Whether connections are repaired (`--no-tcp-repair` turns it off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepairMode {
    /// Repair when possible, fall back to a reset connection otherwise.
    #[default]
    Auto,
    /// Never: connections are seen reset after a restore, and a
    /// checkpoint leaves them as they are (its exit closes them).
    Off,
}

/// Why a connection is not repaired (logged, never returned to the user
/// as a failure: the connection then falls back to a reset one).
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// `--no-tcp-repair` was given.
    #[error("TCP repair is turned off (--no-tcp-repair)")]
    Disabled,
    /// A system call failed.
    #[error("{step} failed: {source}")]
    Sys {
        /// Which step.
        step: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The connection or the saved state is not one repair can handle.
    #[error("{0}")]
    Unsupported(String),
    /// The restoring command does not grant what the connection needs.
    #[error("not granted: {0}")]
    NotGranted(String),
}

/// A step's error, tagged with the step.
fn step<T>(what: &'static str, r: io::Result<T>) -> Result<T, RepairError> {
    r.map_err(|source| {
        let hint = if source.raw_os_error() == Some(libc::EPERM) {
            " (TCP repair needs CAP_NET_ADMIN)"
        } else {
            ""
        };
        RepairError::Sys {
            step: if hint.is_empty() { what } else { "TCP_REPAIR" },
            source: io::Error::new(source.kind(), format!("{source}{hint}")),
        }
    })
}

/// Reads the state of the established connection `h` (guest descriptor
/// `fd`, from `local` to `peer`) in repair mode, and leaves repair mode
/// again (without a window probe: nothing changed for the peer).
///
/// With `lock` (the checkpoint ends the run: the connection moves to the
/// restored program), the socket first gets a filter that drops every
/// incoming segment unacknowledged, and keeps it until the process exits:
/// otherwise the kernel would go on acknowledging data to this socket
/// between the queue read and the exit, and those bytes would be in no
/// snapshot and never sent again. The peer retransmits what was dropped
/// to the rebuilt connection. Without `lock` (a periodic checkpoint: this
/// socket goes on serving the connection) nothing is dropped.
pub(crate) fn dump(
    h: BorrowedFd<'_>,
    fd: u32,
    local: SocketAddr,
    peer: SocketAddr,
    lock: bool,
) -> Result<SavedConnection, RepairError> {
    if lock {
        step("SO_ATTACH_FILTER", tr::attach_drop_filter(h))?;
    }
    let r = dump_unlocked(h, fd, local, peer);
    if lock && r.is_err() {
        // Not saved: the connection stays this process's, and its close
        // at the exit tells the peer; nothing must be dropped meanwhile.
        if let Err(e) = tr::detach_filter(h) {
            tracing::warn!(
                fd,
                "cannot remove the network lock of a connection that was not saved: {e}"
            );
        }
    }
    r
}

/// [`dump`] without the network lock.
fn dump_unlocked(
    h: BorrowedFd<'_>,
    fd: u32,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<SavedConnection, RepairError> {
    // Entering repair mode forces the port's reuse and leaving it clears
    // `SO_REUSEADDR` (the kernel sets `SK_NO_REUSE`): without putting the
    // flag back, a connection that later closes normally leaves a
    // TIME_WAIT that keeps a restore on this host from binding its
    // listener again (found under qemu, where reading the state fails and
    // the connection closes normally).
    let reuse: libc::c_int = step(
        "SO_REUSEADDR",
        sys::getsockopt(h, libc::SOL_SOCKET, libc::SO_REUSEADDR),
    )?;
    step("TCP_REPAIR on", tr::set_repair(h, tr::REPAIR_ON))?;
    let r = dump_in_repair(h, fd, local, peer);
    // Kernels before 4.14 know no "off without window probe": plain off
    // then (the probe is harmless). Never left in repair mode: the run
    // may go on (a periodic checkpoint).
    let off = tr::set_repair(h, tr::REPAIR_OFF_NO_WP).or_else(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            tr::set_repair(h, tr::REPAIR_OFF)
        } else {
            Err(e)
        }
    });
    let off = step("TCP_REPAIR off", off).and_then(|()| {
        step(
            "SO_REUSEADDR",
            sys::setsockopt(h, libc::SOL_SOCKET, libc::SO_REUSEADDR, reuse),
        )
    });
    let saved = r?;
    off?;
    Ok(saved)
}

fn dump_in_repair(
    h: BorrowedFd<'_>,
    fd: u32,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<SavedConnection, RepairError> {
    let info = step("TCP_INFO", tr::info(h))?;
    if info.tcpi_state != tr::STATE_ESTABLISHED {
        return Err(RepairError::Unsupported(format!(
            "the connection is not established (TCP state {}; a connection being \
             closed is not repaired)",
            info.tcpi_state
        )));
    }
    let inq = step("SIOCINQ", tr::inq(h))?;
    let outq = step("SIOCOUTQ", tr::outq(h))?;
    let unsent = step("SIOCOUTQNSD", tr::outq_unsent(h))?;
    if inq > MAX_QUEUE_BYTES || outq > MAX_QUEUE_BYTES {
        return Err(RepairError::Unsupported(format!(
            "its queues hold {inq} and {outq} bytes, more than the {MAX_QUEUE_BYTES} \
             a snapshot may carry per queue"
        )));
    }
    if unsent > outq {
        return Err(RepairError::Unsupported(format!(
            "the kernel reports {unsent} unsent bytes of a {outq}-byte send queue"
        )));
    }
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Recv))?;
    let recv_end = step("TCP_QUEUE_SEQ (receive)", tr::queue_seq(h))?;
    let recv_queue = peek_all(h, inq, "receive")?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Send))?;
    let send_end = step("TCP_QUEUE_SEQ (send)", tr::queue_seq(h))?;
    let send_queue = peek_all(h, outq, "send")?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::None))?;
    let opts = info.tcpi_options;
    let wscale = (opts & tr::info_opt::WSCALE != 0).then(|| {
        // `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4` in the C struct:
        // the first bit-field takes the low bits.
        let b = info.tcpi_snd_rcv_wscale;
        (b & 0x0f, b >> 4)
    });
    let timestamp = if opts & tr::info_opt::TIMESTAMPS != 0 {
        Some(step("TCP_TIMESTAMP", tr::timestamp(h))?)
    } else {
        None
    };
    // Kernels before 4.8 have no TCP_REPAIR_WINDOW: the window probe sent
    // when the restored socket leaves repair mode then resynchronises.
    let window = tr::window(h).ok().map(|w| TcpWindow {
        snd_wl1: w.snd_wl1,
        snd_wnd: w.snd_wnd,
        max_window: w.max_window,
        rcv_wnd: w.rcv_wnd,
        rcv_wup: w.rcv_wup,
    });
    Ok(SavedConnection {
        fd,
        local,
        peer,
        send_seq: send_end.wrapping_sub(send_queue.len() as u32),
        unsent: unsent as u32,
        send_queue,
        recv_seq: recv_end.wrapping_sub(recv_queue.len() as u32),
        recv_queue,
        mss: step("TCP_MAXSEG", tr::mss(h))?,
        wscale,
        sack: opts & tr::info_opt::SACK != 0,
        timestamp,
        window,
    })
}

/// The whole selected queue of `len` bytes (one peek returns it all in
/// repair mode; anything else means the queue changed under us).
fn peek_all(h: BorrowedFd<'_>, len: usize, which: &str) -> Result<Vec<u8>, RepairError> {
    let mut buf = vec![0u8; len];
    let got = step("recv(MSG_PEEK) of a queue", tr::peek_queue(h, &mut buf))?;
    if got != len {
        return Err(RepairError::Unsupported(format!(
            "the {which} queue gave {got} of its {len} bytes"
        )));
    }
    Ok(buf)
}

/// Puts `h` in repair mode for good: its close (the process exits after
/// the checkpoint) then sends neither FIN nor RST.
pub(crate) fn park(h: BorrowedFd<'_>) -> Result<(), RepairError> {
    step("TCP_REPAIR on", tr::set_repair(h, tr::REPAIR_ON))
}

/// How the restoring side's grants cover a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granted {
    /// A `--tcplisten` grant names the connection's local address itself:
    /// it may be rebuilt before that address is up here.
    Named,
    /// Covered by a wildcard listener grant or a pattern: the local
    /// address must be this host's already.
    Covered,
}

/// Whether the restoring side's grants cover the connection, by its
/// origin: a `--tcplisten` grant on the listener's port (at the
/// connection's own address, [`Granted::Named`], or the wildcard
/// address), an `--allow-bind` grant on the guest's listener, or an
/// `--allow-connect` grant on the peer.
pub(crate) fn granted(
    grants: &Grants,
    origin: ConnOrigin,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<Granted, RepairError> {
    match origin {
        ConnOrigin::Listener { addr } => {
            let on_port = |g: &&SocketAddr| g.port() == local.port() && g.port() == addr.port();
            let mut ports = grants.tcp_listeners.iter().filter(on_port);
            if ports.clone().any(|g| g.ip() == local.ip()) {
                Ok(Granted::Named)
            } else if ports.any(|g| g.ip().is_unspecified()) {
                Ok(Granted::Covered)
            } else {
                Err(RepairError::NotGranted(format!(
                    "no --tcplisten grant covers {local} (the listener was on {addr})"
                )))
            }
        }
        ConnOrigin::BoundListener { addr } => {
            if grants.net.may_bind(addr) {
                Ok(Granted::Covered)
            } else {
                Err(RepairError::NotGranted(format!(
                    "no --allow-bind grant covers the guest's listener on {addr}"
                )))
            }
        }
        ConnOrigin::Connect => {
            if grants.net.may_connect(peer) {
                Ok(Granted::Covered)
            } else {
                Err(RepairError::NotGranted(format!(
                    "no --allow-connect grant covers the peer {peer}"
                )))
            }
        }
    }
}

/// Whether `ip` may be one end of a unicast TCP connection.
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Checks a saved connection (untrusted) against the descriptor it claims
/// to be and against what TCP allows.
pub(crate) fn validate(
    c: &SavedConnection,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<(), RepairError> {
    let bad = |what: String| {
        Err(RepairError::Unsupported(format!(
            "saved state refused: {what}"
        )))
    };
    if c.local != local || c.peer != peer {
        return bad(format!(
            "it names {} -> {}, the descriptor {local} -> {peer}",
            c.local, c.peer
        ));
    }
    if local.is_ipv4() != peer.is_ipv4() {
        return bad("the two ends are of different address families".into());
    }
    if !unicast(local.ip()) || !unicast(peer.ip()) || local.port() == 0 || peer.port() == 0 {
        return bad(format!("{local} -> {peer} is no unicast TCP connection"));
    }
    if c.send_queue.len() > MAX_QUEUE_BYTES || c.recv_queue.len() > MAX_QUEUE_BYTES {
        return bad(format!(
            "queues of {} and {} bytes (at most {MAX_QUEUE_BYTES} each)",
            c.send_queue.len(),
            c.recv_queue.len()
        ));
    }
    if c.unsent as usize > c.send_queue.len() {
        return bad(format!(
            "{} unsent bytes of a {}-byte send queue",
            c.unsent,
            c.send_queue.len()
        ));
    }
    if !(64..=65535).contains(&c.mss) {
        return bad(format!("MSS {}", c.mss));
    }
    if let Some((s, r)) = c.wscale
        && (s > MAX_WSCALE || r > MAX_WSCALE)
    {
        return bad(format!("window scale {s}/{r} (at most {MAX_WSCALE})"));
    }
    Ok(())
}

/// Builds the saved connection `c` again in a new socket (see the module
/// documentation for the order, which the kernel imposes), non-blocking
/// when `nonblock`, under the grant `granted` says. The socket is left out of repair mode and live.
pub(crate) fn rebuild(
    c: &SavedConnection,
    granted: Granted,
    nonblock: bool,
) -> Result<OwnedFd, RepairError> {
    let v6 = c.local.is_ipv6();
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let sock = step("socket", sys::socket(domain, libc::SOCK_STREAM))?;
    let h = sock.as_fd();
    step("TCP_REPAIR on", tr::set_repair(h, tr::REPAIR_ON))?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Send))?;
    step("TCP_QUEUE_SEQ (send)", tr::set_queue_seq(h, c.send_seq))?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Recv))?;
    step("TCP_QUEUE_SEQ (receive)", tr::set_queue_seq(h, c.recv_seq))?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::None))?;
    // The service address may come up on this host only after the
    // restore (it should: until the connection exists here, the peer's
    // segments would draw a reset). IP_FREEBIND lets the bind succeed
    // before, and IP_TRANSPARENT the connect (its route needs a source
    // address the host holds otherwise): only for an address the
    // receiver named in its grant (`Granted::Named`), so that a snapshot
    // cannot make this host send from an address of its choosing.
    step("IP_FREEBIND", tr::set_freebind(h, v6))?;
    if granted == Granted::Named {
        step("IP_TRANSPARENT", tr::set_transparent(h, v6))?;
    }
    // No SO_REUSEADDR: repair mode already forces the reuse of the port
    // (the restored listener holds it), and setting it would undo that.
    step("bind to the saved local address", sys::bind(h, c.local))?;
    // The segment size the socket sends with is computed at connect time
    // from the MSS known then (536 by default, far below the saved one):
    // a user MSS makes it start from the saved value instead. The kernel
    // takes at most 32767 here; best effort (only throughput depends on it).
    let _ = sys::setsockopt(
        h,
        libc::IPPROTO_TCP,
        libc::TCP_MAXSEG,
        c.mss.min(32767) as libc::c_int,
    );
    // In repair mode connect sends no SYN: the socket is established.
    step("connect (repair)", sys::connect(h, c.peer))?;
    let mut opts = vec![RepairOpt {
        opt_code: tr::opt::MAXSEG,
        opt_val: c.mss,
    }];
    if let Some((snd, rcv)) = c.wscale {
        opts.push(RepairOpt {
            opt_code: tr::opt::WINDOW,
            opt_val: u32::from(snd) | (u32::from(rcv) << 16),
        });
    }
    if c.sack {
        opts.push(RepairOpt {
            opt_code: tr::opt::SACK_PERM,
            opt_val: 0,
        });
    }
    if c.timestamp.is_some() {
        opts.push(RepairOpt {
            opt_code: tr::opt::TIMESTAMP,
            opt_val: 0,
        });
    }
    step("TCP_REPAIR_OPTIONS", tr::set_options(h, &opts))?;
    if let Some(ts) = c.timestamp {
        step("TCP_TIMESTAMP", tr::set_timestamp(h, ts))?;
    }
    let sent = c.send_queue.len() - c.unsent as usize;
    // Room for the queues the socket is given back (the defaults may be
    // smaller than what the other host's autotuning had reached).
    grow_buffer(h, libc::SO_RCVBUFFORCE, c.recv_queue.len());
    grow_buffer(h, libc::SO_SNDBUFFORCE, c.send_queue.len());
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Recv))?;
    fill(h, &c.recv_queue, "receive")?;
    // Bytes sent once go back as sent and not acknowledged: an ACK may
    // still come for them, and the retransmission timer resends them.
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::Send))?;
    fill(h, &c.send_queue[..sent], "send")?;
    step("TCP_REPAIR_QUEUE", tr::select_queue(h, Queue::None))?;
    if let Some(w) = c.window {
        step(
            "TCP_REPAIR_WINDOW",
            tr::set_window(
                h,
                RepairWindow {
                    snd_wl1: w.snd_wl1,
                    snd_wnd: w.snd_wnd,
                    max_window: w.max_window,
                    rcv_wnd: w.rcv_wnd,
                    rcv_wup: w.rcv_wup,
                },
            ),
        )?;
    }
    // Leaving with a window probe: the peer answers with its window.
    step("TCP_REPAIR off", tr::set_repair(h, tr::REPAIR_OFF))?;
    // Leaving repair mode cleared `SO_REUSEADDR`; the connection had it
    // as every socket accepted from a listener of ours does, so that its
    // TIME_WAIT never blocks a later restore's listener (see `dump`). The
    // connection is live now: a failure here must not drop it, and costs
    // at most that later bind.
    let _ = sys::setsockopt(h, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int);
    // Bytes never sent are sent as any new data.
    if let Err(e) = fill(h, &c.send_queue[sent..], "unsent") {
        // Live already: back into repair mode, so that dropping the
        // socket does not tell the peer anything.
        let _ = tr::set_repair(h, tr::REPAIR_ON);
        return Err(e);
    }
    if nonblock {
        let fl = step("F_GETFL", sys::get_fl(h))?;
        step("F_SETFL", sys::set_fl(h, fl | libc::O_NONBLOCK))?;
    }
    Ok(sock)
}

/// Raises a socket buffer (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, root only)
/// to hold `len` bytes with room for the kernel's accounting, when
/// `len` is large; best effort (the queue refill reports a shortage).
fn grow_buffer(h: BorrowedFd<'_>, opt: libc::c_int, len: usize) {
    if len < 64 << 10 {
        return;
    }
    let want = (len.saturating_mul(2)).min(i32::MAX as usize) as libc::c_int;
    let _ = sys::setsockopt(h, libc::SOL_SOCKET, opt, want);
}

/// Gives the whole of `data` to the selected queue (or sends it, out of
/// repair mode) in as many calls as the kernel wants, never blocking.
fn fill(h: BorrowedFd<'_>, data: &[u8], which: &str) -> Result<(), RepairError> {
    let mut done = 0;
    while done < data.len() {
        match tr::send_nowait(h, &data[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(RepairError::Unsupported(format!(
                    "the {which} queue took {done} of its {} bytes: {e}",
                    data.len()
                )));
            }
        }
    }
    if done < data.len() {
        return Err(RepairError::Unsupported(format!(
            "the {which} queue took {done} of its {} bytes",
            data.len()
        )));
    }
    Ok(())
}

/// What the context remembers of repair between calls.
#[derive(Debug, Default)]
pub(crate) struct RepairLog {
    /// Descriptors whose connection the last save read (to park when the
    /// run stops).
    pub(crate) saved: Vec<u32>,
    /// Connections already warned about: one warning per connection.
    pub(crate) warned: std::collections::HashSet<(u32, SocketAddr, SocketAddr)>,
}

impl RepairLog {
    /// Logs why connection `fd` (`local` -> `peer`) is not repaired, at
    /// warn level, the first time only.
    pub(crate) fn warn(
        &mut self,
        fd: u32,
        local: SocketAddr,
        peer: SocketAddr,
        when: &str,
        why: &RepairError,
    ) {
        if self.warned.insert((fd, local, peer)) {
            tracing::warn!(
                fd,
                %local,
                %peer,
                "TCP connection not repaired {when}: {why}; the guest will see it reset"
            );
        }
    }
}

/// Duplicates of the sockets a restore rebuilt: unless disarmed (the
/// restore succeeded), dropping it puts them back in repair mode, so that
/// when the failed restore drops them the peer is told nothing.
#[derive(Debug, Default)]
pub(crate) struct SilentOnFailure(pub(crate) Vec<OwnedFd>);

impl SilentOnFailure {
    /// The restore succeeded: the sockets stay live.
    pub(crate) fn disarm(&mut self) {
        self.0.clear();
    }
}

impl Drop for SilentOnFailure {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = park(s.as_fd());
        }
    }
}
