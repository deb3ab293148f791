//! Saving the WASI state and rebuilding a [`WasiCtx`] from it, as a
//! snapshot restore does: every descriptor is reopened from its preopen,
//! relative path and flags (never creating or truncating again), listeners
//! are bound again, and the monotonic clock continues from where it was.
//!
//! Positions need no seeking: they live in the state (see `state.rs`).
//!
//! Files deleted while open (link count 0) have no path to reopen: saving
//! the state copies their contents into it ([`UnlinkedFile`]), at most
//! [`MAX_UNLINKED_BYTES`] in all, and the restore gives them back as
//! anonymous files (`memfd_create`). The guest cannot tell the difference:
//! the file had no name before either. Two descriptors on the same deleted
//! file (same device and inode) share one restored file.

use super::errno::Errno;
use super::grants::{Grants, NotGranted, assign};
use super::path::open_flags;
use super::state::{
    FdKind, FileId, SavedConnection, SockFamily, SockType, UnlinkedFile, WasiState,
};
use super::tcp_repair::{self, RepairError, RepairMode};
use super::types::{clockid, oflags};
use super::{Handle, WasiCtx, sys};
use mvvm_rt::checkpoint::{HostStateError, RunAfter, SavedHostState};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Most bytes of deleted-while-open files one saved state may hold, all
/// files together. The contents travel inside the encoded WASI state,
/// which is held in memory while the snapshot is written and read, and
/// whose decoder accepts at most 1 GiB: 512 MiB leaves room for the rest
/// and keeps a checkpoint from doubling the host's memory use unnoticed.
/// Above it the checkpoint is refused ([`WasiSaveError::TooLarge`]).
pub const MAX_UNLINKED_BYTES: u64 = 512 << 20;

/// The WASI state could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum WasiSaveError {
    /// The files deleted while open are too large to be put in a snapshot.
    #[error(
        "descriptor {fd}: the files deleted while open hold {bytes} bytes in all, \
         more than the {limit} a snapshot may carry"
    )]
    TooLarge {
        /// The descriptor whose file went over the limit.
        fd: u32,
        /// Bytes of deleted files counted so far, this one included.
        bytes: u64,
        /// [`MAX_UNLINKED_BYTES`].
        limit: u64,
    },
    /// The state could not be encoded.
    #[error("the WASI state cannot be encoded")]
    Encode(#[source] mvvm_abi::codec::CodecError),
    /// A deleted file's contents could not be read.
    #[error("descriptor {fd} (`{path}`, deleted while open): cannot read its contents")]
    Read {
        /// Guest descriptor.
        fd: u32,
        /// The path it was opened under.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A saved WASI state could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum WasiRestoreError {
    /// The state needs capabilities the restoring command did not grant.
    #[error(transparent)]
    NotGranted(#[from] NotGranted),
    /// A granted directory is gone, unreadable or not a directory.
    #[error("cannot open the granted directory {path}")]
    Preopen {
        /// Host path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be reopened.
    #[error("cannot reopen descriptor {fd} (`{path}`): {errno}")]
    Reopen {
        /// Guest descriptor.
        fd: u32,
        /// Path relative to its preopen.
        path: String,
        /// Why.
        errno: Errno,
    },
    /// The path now names another file than the one that was open.
    #[error("descriptor {fd}: `{path}` is no longer the file that was open")]
    Changed {
        /// Guest descriptor.
        fd: u32,
        /// Path relative to its preopen.
        path: String,
    },
    /// A listener could not be bound again.
    #[error("cannot listen again on {addr}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A socket the guest opened (`sock_open`) could not be made again,
    /// bound again at its address or connected again to its UDP peer.
    #[error("descriptor {fd}: cannot make the guest's socket again")]
    Socket {
        /// Guest descriptor.
        fd: u32,
        /// Why.
        source: std::io::Error,
    },
    /// A stand-in for a connected socket could not be made (connected
    /// sockets are restored as closed connections: their peer is gone).
    #[error("descriptor {fd}: cannot make a closed stand-in for the connection to {peer}")]
    Connection {
        /// Guest descriptor.
        fd: u32,
        /// The peer it was connected to.
        peer: SocketAddr,
    },
    /// An anonymous file standing for a file deleted while open could not
    /// be made.
    #[error("descriptor {fd}: cannot recreate its file (deleted while open)")]
    Unlinked {
        /// Guest descriptor.
        fd: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The state contradicts itself (a descriptor names a missing preopen).
    #[error("descriptor {fd}: inconsistent state: {what}")]
    Inconsistent {
        /// Guest descriptor.
        fd: u32,
        /// What is wrong.
        what: String,
    },
}

/// What a checkpoint saves of the WASI context: [`WasiCtx::save_state`],
/// encoded, with the guest's monotonic time beside it.
impl mvvm_rt::checkpoint::HostState for WasiCtx {
    fn save(&self, after: RunAfter) -> Result<SavedHostState, HostStateError> {
        let state = self.save_state(after)?;
        let bytes = mvvm_abi::codec::encode(&state).map_err(WasiSaveError::Encode)?;
        Ok(SavedHostState {
            bytes,
            monotonic_nanos: state.clocks.saved_monotonic_ns,
        })
    }
}

fn file_id(fd: &OwnedFd) -> Result<FileId, Errno> {
    let st = sys::fstat(fd.as_fd())?;
    Ok(FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

impl WasiCtx {
    /// The state to put in a snapshot: a copy of the current state with the
    /// guest's monotonic time recorded and the contents of every regular
    /// file deleted while open (see [`UnlinkedFile`]). Fails when those
    /// cannot be read or exceed [`MAX_UNLINKED_BYTES`]. `after` says
    /// whether the run goes on after this checkpoint or ends with it (then
    /// the saved TCP connections are locked until the exit: see
    /// `tcp_repair::dump`).
    pub fn save_state(&self, after: RunAfter) -> Result<WasiState, WasiSaveError> {
        let mut s = self.state.clone();
        s.clocks.saved_monotonic_ns = self.now(clockid::MONOTONIC).unwrap_or(0);
        s.unlinked = self.unlinked_files()?;
        s.connections = self.saved_connections(after == RunAfter::Ends);
        Ok(s)
    }

    /// The established TCP connections read in repair mode (see
    /// `tcp_repair.rs`); each that cannot be is left out, with a warning,
    /// and will be seen reset after a restore. Remembers which were read,
    /// for [`WasiCtx::park_connections`].
    fn saved_connections(&self, lock: bool) -> Vec<SavedConnection> {
        let mut log = match self.repair_log.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        log.saved.clear();
        let mut out = Vec::new();
        for (&fd, e) in &self.state.fds {
            let FdKind::TcpStream { local, peer, .. } = e.kind else {
                continue;
            };
            // A stand-in for a connection that was not repaired before.
            let Some(Handle::Owned(h)) = self.handles.get(&fd) else {
                continue;
            };
            let r = match self.tcp_repair {
                RepairMode::Off => Err(RepairError::Disabled),
                RepairMode::Auto => tcp_repair::dump(h.as_fd(), fd, local, peer, lock),
            };
            match r {
                Ok(c) => {
                    tracing::info!(
                        fd,
                        %local,
                        %peer,
                        unread = c.recv_queue.len(),
                        unacknowledged = c.send_queue.len(),
                        unsent = c.unsent,
                        "TCP connection saved in repair mode"
                    );
                    log.saved.push(fd);
                    out.push(c);
                }
                Err(why) => log.warn(fd, local, peer, "at this checkpoint", &why),
            }
        }
        out
    }

    /// Called when a run stops at a checkpoint for good (the process is
    /// about to exit): the connections the checkpoint saved enter repair
    /// mode, so that closing them sends the peer neither FIN nor RST and
    /// the restored program finds the peer's end as it was. Connections
    /// that were not saved are left alone (their close tells the peer).
    pub fn park_connections(&self) {
        let saved = match self.repair_log.lock() {
            Ok(mut l) => std::mem::take(&mut l.saved),
            Err(p) => std::mem::take(&mut p.into_inner().saved),
        };
        for fd in saved {
            let Some(Handle::Owned(h)) = self.handles.get(&fd) else {
                continue;
            };
            match tcp_repair::park(h.as_fd()) {
                Ok(()) => tracing::debug!(fd, "TCP connection left in repair mode"),
                Err(e) => tracing::warn!(
                    fd,
                    "TCP connection cannot be left in repair mode: {e}; its close will reach the peer"
                ),
            }
        }
    }

    /// The regular files open with a link count of 0, each read once and
    /// listed with every descriptor on it (same device and inode).
    fn unlinked_files(&self) -> Result<Vec<UnlinkedFile>, WasiSaveError> {
        let mut out: Vec<UnlinkedFile> = Vec::new();
        let mut by_id: HashMap<(u64, u64), usize> = HashMap::new();
        let mut total = 0u64;
        for (&fd, e) in &self.state.fds {
            if e.kind != FdKind::File {
                continue;
            }
            let Some(Handle::Owned(h)) = self.handles.get(&fd) else {
                continue;
            };
            // A descriptor that cannot even be stat'ed is left to the
            // reopen by path, which reports it.
            let Ok(st) = sys::fstat(h.as_fd()) else {
                continue;
            };
            if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_nlink != 0 {
                continue;
            }
            let key = (st.st_dev, st.st_ino);
            if let Some(&i) = by_id.get(&key) {
                out[i].fds.push(fd);
                continue;
            }
            let size = u64::try_from(st.st_size).unwrap_or(0);
            total = total.saturating_add(size);
            if total > MAX_UNLINKED_BYTES {
                return Err(WasiSaveError::TooLarge {
                    fd,
                    bytes: total,
                    limit: MAX_UNLINKED_BYTES,
                });
            }
            let data = read_whole(h.as_fd(), size).map_err(|source| WasiSaveError::Read {
                fd,
                path: e.path.clone(),
                source,
            })?;
            // The file may have grown between fstat and the read (only
            // through another host process: the guest is stopped).
            total = total.saturating_add((data.len() as u64).saturating_sub(size));
            if total > MAX_UNLINKED_BYTES {
                return Err(WasiSaveError::TooLarge {
                    fd,
                    bytes: total,
                    limit: MAX_UNLINKED_BYTES,
                });
            }
            by_id.insert(key, out.len());
            out.push(UnlinkedFile {
                fds: vec![fd],
                data,
            });
        }
        Ok(out)
    }

    /// Rebuilds a context from a saved state, with the capabilities
    /// `grants` gives (see [`super::grants`]): a preopen or listener the
    /// state needs and `grants` lacks is refused before anything is
    /// opened, and no host path recorded in the state is ever opened. With
    /// `check_identity`, each reopened file must be the very file (device
    /// and inode) that was open (only meaningful on the same host).
    pub fn restore(
        state: WasiState,
        grants: &Grants,
        check_identity: bool,
    ) -> Result<WasiCtx, WasiRestoreError> {
        let mut assigned = assign(&state, grants)?;
        let mut state = state;
        clamp_rights(&mut state);
        let mut preopen_fds = Vec::with_capacity(state.preopens.len());
        for (p, host) in state
            .preopens
            .iter_mut()
            .zip(std::mem::take(&mut assigned.preopen_hosts))
        {
            let f = super::open_preopen_dir(&host).map_err(|source| WasiRestoreError::Preopen {
                path: host.clone(),
                source,
            })?;
            preopen_fds.push(f);
            p.host = host;
        }
        let mut handles = HashMap::new();
        let unlinked = std::mem::take(&mut state.unlinked);
        let mut connections: HashMap<u32, SavedConnection> = HashMap::new();
        for c in std::mem::take(&mut state.connections) {
            let fd = c.fd;
            if connections.insert(fd, c).is_some() {
                return Err(WasiRestoreError::Inconsistent {
                    fd,
                    what: "two saved TCP connections for one descriptor".into(),
                });
            }
        }
        let mut repair_log = tcp_repair::RepairLog::default();
        // Should the restore fail after a connection was rebuilt, closing
        // it must not tell the peer: a later restore may still rebuild it.
        let mut unwind = tcp_repair::SilentOnFailure::default();
        let mut recreated = HashMap::new();
        for u in &unlinked {
            let first = u.fds.first().copied().unwrap_or(0);
            let memfd = anonymous_file(&u.data)
                .map_err(|source| WasiRestoreError::Unlinked { fd: first, source })?;
            for &fd in &u.fds {
                let e = state
                    .fds
                    .get(&fd)
                    .filter(|e| e.kind == FdKind::File)
                    .ok_or_else(|| WasiRestoreError::Inconsistent {
                        fd,
                        what: "a deleted file's contents name a descriptor that is no open file"
                            .into(),
                    })?;
                let f = reopen_anonymous(memfd.as_fd(), e.read, e.write, e.fdflags)
                    .map_err(|source| WasiRestoreError::Unlinked { fd, source })?;
                if recreated.insert(fd, f).is_some() {
                    return Err(WasiRestoreError::Inconsistent {
                        fd,
                        what: "listed twice among the deleted files".into(),
                    });
                }
            }
        }
        let mut rebound = Vec::new();
        for (&fd, e) in &state.fds {
            let base = || -> Result<&OwnedFd, WasiRestoreError> {
                e.preopen
                    .and_then(|i| preopen_fds.get(i as usize))
                    .ok_or_else(|| WasiRestoreError::Inconsistent {
                        fd,
                        what: format!("no preopen {:?}", e.preopen),
                    })
            };
            let reopen_err = |errno: Errno| WasiRestoreError::Reopen {
                fd,
                path: e.path.clone(),
                errno,
            };
            let handle = match &e.kind {
                FdKind::Stdio(n) => Handle::Stdio(*n),
                FdKind::PreopenDir => Handle::Owned(
                    base()?
                        .try_clone()
                        .map_err(|err| reopen_err(Errno::from_io(&err)))?,
                ),
                FdKind::File if recreated.contains_key(&fd) => {
                    Handle::Owned(recreated.remove(&fd).ok_or_else(|| {
                        WasiRestoreError::Inconsistent {
                            fd,
                            what: "recreated file vanished".into(),
                        }
                    })?)
                }
                FdKind::File | FdKind::Dir => {
                    // Never create or truncate again; keep DIRECTORY.
                    let of = e.oflags & oflags::DIRECTORY;
                    let flags = open_flags(e.read, e.write, of, e.lookup_flags, e.fdflags);
                    let f = sys::openat2_beneath(base()?.as_fd(), &e.path, flags, 0)
                        .map_err(|err| reopen_err(Errno::from_io(&err)))?;
                    let st = sys::fstat(f.as_fd()).map_err(|err| reopen_err(err.into()))?;
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    if is_dir != (e.kind == FdKind::Dir) {
                        return Err(WasiRestoreError::Changed {
                            fd,
                            path: e.path.clone(),
                        });
                    }
                    if check_identity && e.file_id.is_some() && e.file_id != file_id(&f).ok() {
                        return Err(WasiRestoreError::Changed {
                            fd,
                            path: e.path.clone(),
                        });
                    }
                    Handle::Owned(f)
                }
                FdKind::TcpListener { addr } => {
                    // Bound where the command granted, never where the
                    // snapshot says (`assign` matched every listener).
                    let granted =
                        assigned
                            .listener(fd)
                            .ok_or_else(|| WasiRestoreError::Inconsistent {
                                fd,
                                what: format!("the listener on {addr} has no grant"),
                            })?;
                    let listen_err = |source| WasiRestoreError::Listen {
                        addr: granted,
                        source,
                    };
                    let l = rebind_listener(granted).map_err(listen_err)?;
                    let l = std::net::TcpListener::from(l);
                    l.set_nonblocking(e.fdflags & super::types::fdflags::NONBLOCK != 0)
                        .map_err(listen_err)?;
                    if let Ok(bound) = l.local_addr() {
                        rebound.push((fd, bound));
                    }
                    Handle::Owned(OwnedFd::from(l))
                }
                FdKind::TcpStream {
                    local,
                    peer,
                    origin,
                } => {
                    let nonblock = e.fdflags & super::types::fdflags::NONBLOCK != 0;
                    let repaired = match (connections.remove(&fd), grants.tcp_repair) {
                        (_, RepairMode::Off) => Err(RepairError::Disabled),
                        (None, _) => Err(RepairError::Unsupported(
                            "the snapshot holds no repair state for it (the checkpoint \
                             could not read it, or ran with --no-tcp-repair)"
                                .into(),
                        )),
                        (Some(c), RepairMode::Auto) => tcp_repair::validate(&c, *local, *peer)
                            .and_then(|()| tcp_repair::granted(grants, *origin, *local, *peer))
                            .and_then(|g| tcp_repair::rebuild(&c, g, nonblock)),
                    };
                    match repaired {
                        Ok(sock) => {
                            tracing::info!(fd, %local, %peer, "TCP connection repaired");
                            if let Ok(dup) = sock.try_clone() {
                                unwind.0.push(dup);
                            }
                            Handle::Owned(sock)
                        }
                        Err(why) => {
                            repair_log.warn(fd, *local, *peer, "on restore", &why);
                            reset_stand_in(fd, *peer, nonblock)?
                        }
                    }
                }
                FdKind::Socket {
                    family,
                    ty,
                    local,
                    peer,
                } => {
                    // `assign` checked that the bind and peer are granted.
                    let sock = reopen_socket(*family, *ty, *local, e.fdflags)
                        .map_err(|source| WasiRestoreError::Socket { fd, source })?;
                    if let (SockType::Dgram, Some(p)) = (ty, peer) {
                        sys::connect(sock.as_fd(), *p)
                            .map_err(|source| WasiRestoreError::Socket { fd, source })?;
                    }
                    tracing::info!(fd, ?local, ?peer, "socket opened by the guest made again");
                    Handle::Owned(sock)
                }
                FdKind::BoundListener { addr, backlog } => {
                    let family = if addr.is_ipv4() {
                        SockFamily::Inet4
                    } else {
                        SockFamily::Inet6
                    };
                    let listen_err = |source| WasiRestoreError::Listen {
                        addr: *addr,
                        source,
                    };
                    let sock = reopen_socket(family, SockType::Stream, Some(*addr), e.fdflags)
                        .map_err(listen_err)?;
                    let backlog = (*backlog).min(i32::MAX as u32) as libc::c_int;
                    sys::listen(sock.as_fd(), backlog).map_err(listen_err)?;
                    tracing::info!(fd, %addr, "listener bound by the guest bound again");
                    Handle::Owned(sock)
                }
            };
            handles.insert(fd, handle);
        }
        // Listeners record where they are bound now.
        for (fd, bound) in rebound {
            if let Some(e) = state.fds.get_mut(&fd) {
                e.kind = FdKind::TcpListener { addr: bound };
            }
        }
        // The recreated files now have identities of their own.
        for u in &unlinked {
            for fd in &u.fds {
                if let (Some(e), Some(Handle::Owned(h))) = (state.fds.get_mut(fd), handles.get(fd))
                {
                    e.file_id = file_id(h).ok();
                }
            }
        }
        if let Some(&fd) = connections.keys().next() {
            return Err(WasiRestoreError::Inconsistent {
                fd,
                what: "a saved TCP connection names a descriptor that is no connection".into(),
            });
        }
        unwind.disarm();
        let mut ctx = WasiCtx {
            state,
            handles,
            net: grants.net.clone(),
            tcp_repair: grants.tcp_repair,
            repair_log: std::sync::Mutex::new(repair_log),
        };
        let host_now = sys::clock_gettime(libc::CLOCK_MONOTONIC).unwrap_or(0) as i128;
        let offset = ctx.state.clocks.saved_monotonic_ns as i128 - host_now;
        ctx.state.clocks.monotonic_offset_ns =
            offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        Ok(ctx)
    }
}

/// A stand-in for a connection that is not repaired: the peer of a
/// connection (accepted, or opened with `sock_connect`) is gone after a
/// restore without repair, since the kernel state of the connection is
/// not in the snapshot. The guest keeps its descriptor, which now behaves
/// as a connection the peer reset: the first read or write answers
/// CONNRESET, later reads see end of file and writes fail with EPIPE. A
/// reset rather than a clean end of file, so that a program reading
/// "until the peer closes" cannot take a cut-off reply for a whole.
fn reset_stand_in(fd: u32, peer: SocketAddr, nonblock: bool) -> Result<Handle, WasiRestoreError> {
    let (end, peer_end) = std::os::unix::net::UnixStream::pair()
        .map_err(|_| WasiRestoreError::Connection { fd, peer })?;
    drop(peer_end);
    end.set_nonblocking(nonblock)
        .map_err(|_| WasiRestoreError::Connection { fd, peer })?;
    Ok(Handle::Reset(OwnedFd::from(end)))
}

/// Limits the rights a saved state claims to what a fresh run could give
/// a descriptor of that kind (the directory set for directories, the file
/// set for files): an altered snapshot cannot give the guest more than
/// its grants would have given it from the start.
fn clamp_rights(state: &mut WasiState) {
    use super::types::rights;
    for e in state.fds.values_mut() {
        match e.kind {
            // What a descriptor opened through another one gets is
            // limited by kind again at `path_open`; inheriting rights only
            // need to be valid bits.
            FdKind::PreopenDir | FdKind::Dir => {
                e.rights_base &= rights::DIR;
                e.rights_inheriting &= rights::ALL;
            }
            FdKind::File => {
                e.rights_base &= rights::FILE;
                e.rights_inheriting &= rights::ALL;
            }
            FdKind::Socket { .. } => {
                e.rights_base &= rights::SOCKET | rights::LISTENER;
                e.rights_inheriting &= rights::SOCKET;
            }
            FdKind::BoundListener { .. } => {
                e.rights_base &= rights::LISTENER;
                e.rights_inheriting &= rights::SOCKET;
            }
            _ => {}
        }
    }
}

/// A listener bound at the granted `addr`, as `TcpListener::bind` makes
/// one (`SO_REUSEADDR`, backlog 128), and with `IP_FREEBIND`: the granted
/// address may come up on this host only after the restore (the service
/// address moves with the program, and its arrival must wait until the
/// repaired connections exist, or the peer's segments meet no socket and
/// draw a reset). The receiver named that address; without
/// `IP_TRANSPARENT` nothing is sent from it before the host holds it.
fn rebind_listener(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let sock = sys::socket(domain, libc::SOCK_STREAM)?;
    sys::setsockopt(sock.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    sys::tcp_repair::set_freebind(sock.as_fd(), addr.is_ipv6())?;
    sys::bind(sock.as_fd(), addr)?;
    sys::listen(sock.as_fd(), 128)?;
    Ok(sock)
}

/// A new socket like one the guest opened: family, type, `NONBLOCK`, and
/// bound at `local` when it was bound (with `SO_REUSEADDR`, so that a
/// listener restored on the host it left is not kept off its port by the
/// old connections in `TIME_WAIT`).
fn reopen_socket(
    family: SockFamily,
    ty: SockType,
    local: Option<SocketAddr>,
    fdflags: u16,
) -> std::io::Result<OwnedFd> {
    let domain = match family {
        SockFamily::Inet4 => libc::AF_INET,
        SockFamily::Inet6 => libc::AF_INET6,
    };
    let mut raw_ty = match ty {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::Dgram => libc::SOCK_DGRAM,
    };
    if fdflags & super::types::fdflags::NONBLOCK != 0 {
        raw_ty |= libc::SOCK_NONBLOCK;
    }
    let sock = sys::socket(domain, raw_ty)?;
    if let Some(addr) = local {
        sys::setsockopt(sock.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        sys::bind(sock.as_fd(), addr)?;
    }
    Ok(sock)
}

/// Reads a whole file of about `size` bytes, from its start, without
/// moving its offset: through `fd` itself when it is readable, otherwise
/// through a read-only open of `/proc/self/fd/N` (a descriptor opened for
/// writing only; the magic link still reaches a deleted file).
fn read_whole(fd: BorrowedFd<'_>, size: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match sys::pread(fd, &mut buf, data.len() as u64) {
            Ok(0) => return Ok(data),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) && data.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let mut f = std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    f.read_to_end(&mut data)?;
    Ok(data)
}

/// A new anonymous file (`memfd_create`, close-on-exec) holding `data`,
/// opened for reading and writing at offset `data.len()` (offsets do not
/// matter: file positions live in the state).
fn anonymous_file(data: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = sys::memfd_create(c"mvvm-unlinked")?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    Ok(OwnedFd::from(f))
}

/// A descriptor of its own on the anonymous file `memfd`, with the access
/// mode and `fdflags` (`APPEND`, `NONBLOCK`, sync modes) of the descriptor
/// it stands for: a fresh open of `/proc/self/fd/N`, so that each guest
/// descriptor keeps its own flags as separate opens of one file do. Where
/// `/proc` is not mounted, a duplicate of `memfd` (read-write, sharing
/// the flags; rights still keep the guest to what it may do).
fn reopen_anonymous(
    memfd: BorrowedFd<'_>,
    read: bool,
    write: bool,
    fdflags: u16,
) -> std::io::Result<OwnedFd> {
    // Only the access mode and fdflags: no creation, and following the
    // magic link is the point.
    let flags = open_flags(read, write, 0, super::types::LOOKUP_SYMLINK_FOLLOW, fdflags);
    let extra = flags & !libc::O_ACCMODE;
    let proc_path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    let opened = std::fs::OpenOptions::new()
        .read(read || !write)
        .write(write)
        .custom_flags(extra | libc::O_CLOEXEC)
        .open(&proc_path);
    match opened {
        Ok(f) => Ok(OwnedFd::from(f)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let f = memfd.try_clone_to_owned()?;
            sys::set_fl(f.as_fd(), extra & !libc::O_CLOEXEC)?;
            Ok(f)
        }
        Err(e) => Err(e),
    }
}
