//! WASI state as plain data.
//!
//! Everything a snapshot needs to rebuild the guest's view of the world
//! lives here, not inside OS handles: the snapshot issue serialises
//! [`WasiState`] and, on restore, reopens each descriptor from its preopen,
//! relative path and flags (never creating or truncating again) and puts
//! its position back.
//!
//! **Positions**: the position of a file descriptor is the `position` field
//! of its [`FdEntry`], not the OS file offset. Reads and writes of files use
//! `pread`/`pwrite` at that position and then advance it; `fd_seek` and
//! `fd_tell` only touch the field. The one exception is a file opened with
//! `APPEND`: its writes go through `write` on an `O_APPEND` handle (the
//! kernel picks the offset atomically) and the new end becomes the position.
//! Stdio and sockets have no position.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Name the guest sees it under (what `fd_prestat_dir_name` returns).
    pub guest: String,
}

/// What a descriptor is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdKind {
    /// Host standard stream 0, 1 or 2 (shared with the host process).
    Stdio(u32),
    /// A preopened directory: `preopen` indexes [`WasiState::preopens`].
    PreopenDir,
    /// A regular file (or any other non-directory) opened with `path_open`.
    File,
    /// A directory opened with `path_open`.
    Dir,
    /// A TCP listener preopened with `--tcplisten`.
    TcpListener {
        /// Address it was bound to.
        addr: SocketAddr,
    },
    /// A TCP connection: accepted from a listener, or opened by the guest
    /// with `sock_connect` (WAMR's socket extension, `sock_ext.rs`).
    TcpStream {
        /// Local address.
        local: SocketAddr,
        /// Peer address.
        peer: SocketAddr,
        /// How it was made: the grant its repair on restore needs.
        origin: ConnOrigin,
    },
    /// A socket the guest opened with `sock_open`: a TCP socket neither
    /// listening nor connected yet, or a UDP socket (bound, connected or
    /// neither). Added after the kinds above so that snapshots written
    /// before it still decode (variants are numbered in order).
    Socket {
        /// Address family.
        family: SockFamily,
        /// Stream (TCP) or datagram (UDP).
        ty: SockType,
        /// Where `sock_bind` bound it (the address the kernel reports,
        /// with the port it chose for port 0).
        local: Option<SocketAddr>,
        /// For UDP: the default peer set by `sock_connect`.
        peer: Option<SocketAddr>,
    },
    /// A TCP listener the guest made itself (`sock_bind` then
    /// `sock_listen`). Unlike [`FdKind::TcpListener`], which a
    /// `--tcplisten` grant preopens, it is re-bound on restore at its own
    /// address, if a bind grant covers it.
    BoundListener {
        /// Address it is bound to.
        addr: SocketAddr,
        /// The backlog given to `sock_listen`.
        backlog: u32,
    },
}

impl FdKind {
    /// Whether the descriptor listens for connections (`sock_accept`).
    pub fn is_listener(&self) -> bool {
        matches!(
            self,
            FdKind::TcpListener { .. } | FdKind::BoundListener { .. }
        )
    }

    /// Whether the descriptor is a socket of any kind.
    pub fn is_socket(&self) -> bool {
        matches!(
            self,
            FdKind::TcpListener { .. }
                | FdKind::TcpStream { .. }
                | FdKind::Socket { .. }
                | FdKind::BoundListener { .. }
        )
    }
}

/// How a TCP connection the guest holds was made. A restore repairs the
/// connection (`tcp_repair.rs`) only when its own grants cover this
/// origin: the snapshot names it, the receiver decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnOrigin {
    /// Accepted from a listener preopened with `--tcplisten`, bound at
    /// `addr` then.
    Listener {
        /// The listener's address.
        addr: SocketAddr,
    },
    /// Accepted from a listener the guest bound itself (`sock_bind`,
    /// `sock_listen`) at `addr`: repaired under `--allow-bind`.
    BoundListener {
        /// The listener's address.
        addr: SocketAddr,
    },
    /// Opened by the guest with `sock_connect`: repaired under
    /// `--allow-connect` for its peer.
    Connect,
}

/// Address family of a socket the guest opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SockFamily {
    /// IPv4 (`AF_INET`).
    Inet4,
    /// IPv6 (`AF_INET6`).
    Inet6,
}

/// Type of a socket the guest opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SockType {
    /// `SOCK_STREAM` (TCP).
    Stream,
    /// `SOCK_DGRAM` (UDP).
    Dgram,
}

/// One open descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdEntry {
    /// Its kind.
    pub kind: FdKind,
    /// For files and directories: the preopen it was opened beneath (index
    /// into [`WasiState::preopens`]).
    pub preopen: Option<u32>,
    /// For files and directories: its path relative to that preopen, as the
    /// guest gave it (joined with the path of the directory descriptor it
    /// was opened relative to; `.` for a preopen itself).
    pub path: String,
    /// `oflags` given to `path_open` (`CREAT`, `EXCL`, `TRUNC` must not be
    /// replayed on restore; `DIRECTORY` should).
    pub oflags: u16,
    /// `lookupflags` given to `path_open` (follow symlinks or not).
    pub lookup_flags: u32,
    /// Whether the host handle was opened for reading.
    pub read: bool,
    /// Whether the host handle was opened for writing.
    pub write: bool,
    /// Base rights.
    pub rights_base: u64,
    /// Rights inherited by descriptors opened from this one.
    pub rights_inheriting: u64,
    /// `fdflags` (`APPEND`, `NONBLOCK`, `SYNC`, ...), current value.
    pub fdflags: u16,
    /// Current position (files only; see the module documentation).
    pub position: u64,
    /// For files and directories: what the path named when it was opened.
    pub file_id: Option<FileId>,
}

/// State of the clocks the guest sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// Added to the host monotonic clock. Zero in a fresh run; a restore
    /// sets it so the guest's monotonic clock never runs backwards.
    pub monotonic_offset_ns: i64,
    /// The guest's monotonic time when the state was saved
    /// ([`WasiCtx::save_state`](super::WasiCtx::save_state)); a restore
    /// continues the clock from there.
    pub saved_monotonic_ns: u64,
}

/// Identity of an opened file on its host, to check on restore that a path
/// still names the same file (meaningful on the same host only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// The whole WASI state of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasiState {
    /// Program arguments (`argv[0]` first).
    pub args: Vec<String>,
    /// Environment, as `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// Preopened directories, in the order they were configured.
    pub preopens: Vec<Preopen>,
    /// Open descriptors by number.
    pub fds: BTreeMap<u32, FdEntry>,
    /// Descriptor numbers freed by `fd_close` or `fd_renumber`, most
    /// recent last: a new descriptor takes the most recently freed number
    /// (see [`WasiCtx::next_fd`](super::WasiCtx)), as Wasmtime numbers
    /// them, so a program writes the same files under both. Saved, so the
    /// numbering continues the same way after a restore.
    pub closed: Vec<u32>,
    /// Clocks.
    pub clocks: ClockState,
    /// Contents of the files that were deleted while open, which no path
    /// can reopen. Empty in a live context: filled by
    /// [`WasiCtx::save_state`](super::WasiCtx::save_state) and consumed by
    /// [`WasiCtx::restore`](super::WasiCtx::restore).
    pub unlinked: Vec<UnlinkedFile>,
    /// The kernel state of the established TCP connections that could be
    /// read in repair mode (`tcp_repair.rs`). Empty in a live context:
    /// filled by [`WasiCtx::save_state`](super::WasiCtx::save_state) and
    /// consumed by [`WasiCtx::restore`](super::WasiCtx::restore). A
    /// connection not listed here is restored as a reset one.
    pub connections: Vec<SavedConnection>,
}

/// What TCP repair mode reads out of an established connection, to build
/// it again in another socket (`tcp_repair.rs`, as CRIU does). Untrusted
/// on restore like the rest of the state: checked before any of it is
/// given to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConnection {
    /// The guest descriptor (of kind [`FdKind::TcpStream`]).
    pub fd: u32,
    /// Local address (must equal the descriptor's).
    pub local: SocketAddr,
    /// Peer address (must equal the descriptor's).
    pub peer: SocketAddr,
    /// Sequence number of the first byte of `send_queue` (the oldest byte
    /// not acknowledged by the peer).
    pub send_seq: u32,
    /// Data written by the guest and not acknowledged by the peer, oldest
    /// first; its last `unsent` bytes were never sent.
    pub send_queue: Vec<u8>,
    /// How many bytes at the end of `send_queue` were never sent.
    pub unsent: u32,
    /// Sequence number of the first byte of `recv_queue`.
    pub recv_seq: u32,
    /// Data received and not read by the guest yet.
    pub recv_queue: Vec<u8>,
    /// The MSS this end sends with.
    pub mss: u32,
    /// Window scaling, when negotiated: (send shift, receive shift).
    pub wscale: Option<(u8, u8)>,
    /// Selective acknowledgements negotiated.
    pub sack: bool,
    /// TCP timestamps negotiated: the socket's timestamp clock then.
    pub timestamp: Option<u32>,
    /// The windows (`struct tcp_repair_window`), when the kernel gave them.
    pub window: Option<TcpWindow>,
}

/// A connection's windows (`struct tcp_repair_window` of
/// `include/uapi/linux/tcp.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpWindow {
    /// Sequence number of the segment that last updated the send window.
    pub snd_wl1: u32,
    /// The peer's receive window.
    pub snd_wnd: u32,
    /// Largest window the peer offered.
    pub max_window: u32,
    /// This end's receive window.
    pub rcv_wnd: u32,
    /// `rcv_nxt` when `rcv_wnd` was advertised.
    pub rcv_wup: u32,
}

/// A regular file that was open but had no name left (link count 0: the
/// classic "open a temporary file, unlink it, keep using it"). Its
/// contents are saved whole, since no path can reopen it on restore; the
/// restore makes an anonymous file (`memfd_create`) with those contents
/// and opens it again for each of `fds`, with each descriptor's own
/// access mode and `fdflags`. Positions stay in each [`FdEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlinkedFile {
    /// The guest descriptors (of kind [`FdKind::File`]) that referred to
    /// it: every open of the same file (same device and inode) shares one
    /// restored file, so a write through one is seen through the others.
    pub fds: Vec<u32>,
    /// The whole file (sparse files are read in full, holes as zeros).
    pub data: Vec<u8>,
}
