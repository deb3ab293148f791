//! Saving the WASI state and rebuilding a [`WasiCtx`] from it, as a
//! snapshot restore does: every descriptor is reopened from its preopen,
//! relative path and flags (never creating or truncating again), listeners
//! are bound again, and the monotonic clock continues from where it was.
//!
//! Positions need no seeking: they live in the state (see `state.rs`).

use super::errno::Errno;
use super::path::open_flags;
use super::state::{FdKind, FileId, WasiState};
use super::types::{clockid, oflags};
use super::{Handle, WasiCtx, sys};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// A saved WASI state could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum WasiRestoreError {
    /// A preopened directory is gone or unreadable.
    #[error("cannot reopen preopened directory {path}: {source}")]
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
    #[error("cannot listen again on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
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
    /// The state contradicts itself (a descriptor names a missing preopen).
    #[error("descriptor {fd}: inconsistent state: {what}")]
    Inconsistent {
        /// Guest descriptor.
        fd: u32,
        /// What is wrong.
        what: String,
    },
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
    /// guest's monotonic time recorded.
    pub fn save_state(&self) -> WasiState {
        let mut s = self.state.clone();
        s.clocks.saved_monotonic_ns = self.now(clockid::MONOTONIC).unwrap_or(0);
        s
    }

    /// Rebuilds a context from a saved state. With `check_identity`, each
    /// reopened file must be the very file (device and inode) that was open
    /// (only meaningful on the same host).
    pub fn restore(state: WasiState, check_identity: bool) -> Result<WasiCtx, WasiRestoreError> {
        let mut preopen_fds = Vec::with_capacity(state.preopens.len());
        for p in &state.preopens {
            let f = std::fs::File::open(&p.host).map_err(|source| WasiRestoreError::Preopen {
                path: p.host.clone(),
                source,
            })?;
            preopen_fds.push(OwnedFd::from(f));
        }
        let mut handles = HashMap::new();
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
                    let l = std::net::TcpListener::bind(addr).map_err(|source| {
                        WasiRestoreError::Listen {
                            addr: *addr,
                            source,
                        }
                    })?;
                    l.set_nonblocking(e.fdflags & super::types::fdflags::NONBLOCK != 0)
                        .map_err(|source| WasiRestoreError::Listen {
                            addr: *addr,
                            source,
                        })?;
                    Handle::Owned(OwnedFd::from(l))
                }
                FdKind::TcpStream { peer, .. } => {
                    // The peer of a connection is gone after a restore: the
                    // guest keeps its descriptor, which now behaves as a
                    // connection the peer closed (reads see end of file,
                    // writes fail with EPIPE), so the program notices
                    // instead of the loss being hidden.
                    let (end, peer_end) = std::os::unix::net::UnixStream::pair()
                        .map_err(|_| WasiRestoreError::Connection { fd, peer: *peer })?;
                    drop(peer_end);
                    tracing::warn!(fd, %peer, "connected socket cannot be restored: the guest sees it closed");
                    Handle::Owned(OwnedFd::from(end))
                }
            };
            handles.insert(fd, handle);
        }
        let mut ctx = WasiCtx { state, handles };
        let host_now = sys::clock_gettime(libc::CLOCK_MONOTONIC).unwrap_or(0) as i128;
        let offset = ctx.state.clocks.saved_monotonic_ns as i128 - host_now;
        ctx.state.clocks.monotonic_offset_ns =
            offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        Ok(ctx)
    }
}
