//! WASI preview1 (`wasi_snapshot_preview1`) for MVVM's runtime, as a layer
//! on top of it (the runtime knows nothing of WASI): [`Command`] runs a
//! WASI program, checkpointed or not, or restores one from a snapshot.
//!
//! ```text
//!  mvvm-cli ──▶ mvvm_wasi::Command ──▶ mvvm_rt::{Store, Linker, checkpoint::{Run, Restore}}
//!                    │ builds the store once (build): WasiCtx as host state,
//!                    │ WASI host functions in a Linker, imports resolved
//!                    ▼
//!  WasiCtx ── implements mvvm_rt::checkpoint::HostState (save as bytes);
//!             blocking calls use mvvm_rt::checkpoint::host (interrupt)
//! ```
//!
//! The implementation works on plain data so that it can be tested without
//! the rest of the runtime: [`WasiCtx::call`] takes the function, the
//! guest's whole linear memory as a byte slice, the arguments as `u64`
//! slots and a slice for the results. The glue in [`link`] connects it to
//! instances, [`command`] runs them.
//!
//! ```text
//!  WasiCtx
//!  ├── state: WasiState      plain data (state.rs): args, env, preopens,
//!  │                         descriptors with kind, preopen, relative path,
//!  │                         flags, rights, position; clock offsets.
//!  └── handles: fd → OS fd   the open host descriptors, rebuilt from the
//!                            state on restore.
//! ```
//!
//! Files:
//! - `func.rs`: the list of functions with their signatures;
//! - `errno.rs`, `types.rs`: WASI numbers and record layouts;
//! - `mem.rs`: bounds-checked guest memory access (bad pointers give
//!   `EFAULT`, never a host fault);
//! - `sys/`: the only unsafe code, thin system call wrappers (the crate
//!   denies `unsafe` everywhere else);
//! - `fd.rs`, `path.rs`, `sock.rs`, `misc.rs`: the functions, by family;
//! - `sock_ext.rs`: WAMR's socket extension (`sock_open`, `sock_connect`,
//!   `sock_bind`, ..., as `wasi_socket_ext.h` declares them), which the
//!   original MVVM's guests import, under the network grants;
//! - `rights.rs`: how rights are enforced (`NOTCAPABLE`), inherited and
//!   dropped;
//! - `state.rs`: the serialisable state; `restore.rs`: saving it and
//!   rebuilding a context from it;
//! - `tcp_repair.rs`: established TCP connections saved and rebuilt in
//!   Linux's TCP repair mode (their system calls in `sys/tcp_repair.rs`);
//! - `interrupt.rs`: blocking calls a checkpoint request interrupts;
//! - `link.rs`: the host functions; `command.rs`: [`Command`], the one
//!   place a store is built for a fresh run or a restore;
//! - `threads.rs`: wasi-threads (`thread-spawn`, `wasi_thread_start`, how
//!   the threads of a program share WASI and end together).
//!
//! Sandboxing: every path is resolved by the kernel with `openat2` and
//! `RESOLVE_BENEATH` relative to a directory descriptor the guest holds.
//! Operations on a last component (`unlinkat`, `mkdirat`, ...) first open
//! its parent that way (`O_PATH`), then act on a single name that is never
//! `..` and never contains `/`. Escapes answer `PERM`, as wasmtime does.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod command;
pub mod errno;
mod fd;
pub mod func;
pub mod grants;
mod interrupt;
pub mod keepalive;
pub mod link;
pub mod mem;
mod misc;
mod path;
pub mod restore;
mod rights;
mod sock;
pub mod sock_ext;
pub mod state;
mod stderr_line;
#[allow(unsafe_code)]
mod sys;
pub mod tcp_repair;
pub mod threads;
pub mod types;

#[cfg(test)]
mod tests;

pub use command::{Command, DEFAULT_MAX_DESCRIPTORS, Error};
pub use errno::Errno;
pub use func::{WASI_MODULE, WasiFunc};
pub use grants::{AddrPattern, BadPattern, Grants, Need, NetGrants, NotGranted};
pub use link::{WasiRunError, add_to_linker, check_imports};
pub use restore::{MAX_UNLINKED_BYTES, WasiRestoreError, WasiSaveError};
pub use state::{
    ClockState, ConnOrigin, FdEntry, FdKind, FileId, Preopen, SavedConnection, SockFamily,
    SockType, TcpWindow, UnlinkedFile, WasiState,
};
pub use stderr_line::take_stderr_mid_line;
pub use tcp_repair::RepairMode;
pub use threads::WasiHost;

use mem::GuestMem;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// How a WASI instance sees the world.
#[derive(Debug, Clone, Default)]
pub struct WasiConfig {
    /// Arguments, `argv[0]` (the program name) first.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Host directories visible to the guest; nothing else of the host file
    /// system is.
    pub preopens: Vec<Preopen>,
    /// TCP addresses to bind and listen on; each becomes a descriptor after
    /// the preopened directories.
    pub tcp_listeners: Vec<SocketAddr>,
    /// Where sockets the guest opens may connect and bind, and which
    /// names it may resolve (nothing by default).
    pub net: NetGrants,
    /// Whether a checkpoint saves the guest's TCP connections in repair
    /// mode (`tcp_repair.rs`; on by default, `--no-tcp-repair`).
    pub tcp_repair: RepairMode,
}

/// Opens a host directory to preopen (read-only, `O_DIRECTORY`: anything
/// else than a directory is `ENOTDIR`, and a FIFO is never opened, so it
/// cannot block).
pub(crate) fn open_preopen_dir(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
}

/// WASI could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WasiSetupError {
    /// A preopened directory could not be opened.
    #[error("cannot preopen directory {path}")]
    Preopen {
        /// The host path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TCP listener could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a WASI call did not return normally to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasiStop {
    /// `proc_exit(code)`: the program ends with this exit code.
    Exit(i32),
    /// The call cannot go on (wrong argument count, say): a trap.
    Trap(String),
    /// A blocking call gave up because a checkpoint was requested: nothing
    /// was done, the guest unwinds and makes the call again on restore
    /// (see `interrupt.rs`).
    Interrupted,
}

/// The host side of a descriptor.
#[derive(Debug)]
pub(crate) enum Handle {
    /// One of the host's standard streams (never closed by us).
    Stdio(u32),
    /// A descriptor we own.
    Owned(OwnedFd),
    /// A restored connection's stand-in whose reset the guest has not
    /// seen yet: the first read or write on it answers `CONNRESET`, as a
    /// socket whose peer reset the connection does, then it becomes
    /// [`Handle::Owned`] (reads see end of file, writes `PIPE`).
    Reset(OwnedFd),
}

impl Handle {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Handle::Stdio(n) => sys::stdio_fd(*n),
            Handle::Owned(fd) | Handle::Reset(fd) => fd.as_fd(),
        }
    }
}

/// The WASI state of one instance, with its host descriptors.
#[derive(Debug)]
pub struct WasiCtx {
    pub(crate) state: WasiState,
    pub(crate) handles: HashMap<u32, Handle>,
    /// What the command grants sockets the guest opens: from the
    /// configuration of a fresh run or the grants of a restore, never from
    /// a snapshot (not part of [`WasiState`]).
    pub(crate) net: NetGrants,
    /// Whether connections are saved and rebuilt in TCP repair mode.
    pub(crate) tcp_repair: RepairMode,
    /// Which connections the last save read in repair mode (parked when
    /// the run stops) and which were already warned about.
    pub(crate) repair_log: std::sync::Mutex<tcp_repair::RepairLog>,
}

impl WasiCtx {
    /// Sets up stdio (descriptors 0-2, shared with the host), opens the
    /// preopened directories (3, 4, ...) and binds the TCP listeners (after
    /// the directories: wasi-libc scans descriptors from 3 and stops at the
    /// first one that is not a preopened directory).
    pub fn new(config: WasiConfig) -> Result<WasiCtx, WasiSetupError> {
        let mut ctx = WasiCtx {
            state: WasiState {
                args: config.args,
                env: config
                    .env
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                preopens: Vec::new(),
                fds: BTreeMap::new(),
                closed: Vec::new(),
                clocks: ClockState::default(),
                unlinked: Vec::new(),
                connections: Vec::new(),
            },
            handles: HashMap::new(),
            net: config.net,
            tcp_repair: config.tcp_repair,
            repair_log: Default::default(),
        };
        for n in 0..3u32 {
            let tty = sys::isatty(sys::stdio_fd(n));
            let mut rights = types::rights::FD_READ
                | types::rights::FD_WRITE
                | types::rights::FD_FDSTAT_SET_FLAGS
                | types::rights::FD_FILESTAT_GET
                | types::rights::POLL_FD_READWRITE;
            if !tty {
                // wasi-libc's isatty() looks for a character device without
                // seek/tell rights; give them only to non-terminals.
                rights |= types::rights::FD_SEEK | types::rights::FD_TELL;
            }
            ctx.insert(
                n,
                FdEntry {
                    kind: FdKind::Stdio(n),
                    preopen: None,
                    path: String::new(),
                    oflags: 0,
                    lookup_flags: 0,
                    read: n == 0,
                    write: n != 0,
                    rights_base: rights,
                    rights_inheriting: 0,
                    fdflags: 0,
                    position: 0,
                    file_id: None,
                },
                Handle::Stdio(n),
            );
        }
        for p in config.preopens {
            let dir = open_preopen_dir(&p.host).map_err(|source| WasiSetupError::Preopen {
                path: p.host.clone(),
                source,
            })?;
            let index = ctx.state.preopens.len() as u32;
            ctx.state.preopens.push(p);
            let fd = ctx.next_fd();
            ctx.insert(
                fd,
                FdEntry {
                    kind: FdKind::PreopenDir,
                    preopen: Some(index),
                    path: ".".into(),
                    oflags: types::oflags::DIRECTORY,
                    lookup_flags: types::LOOKUP_SYMLINK_FOLLOW,
                    read: true,
                    write: false,
                    rights_base: types::rights::DIR,
                    rights_inheriting: types::rights::ALL,
                    fdflags: 0,
                    position: 0,
                    file_id: None,
                },
                Handle::Owned(dir),
            );
        }
        for addr in config.tcp_listeners {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|source| WasiSetupError::Listen { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            let fd = ctx.next_fd();
            ctx.insert(
                fd,
                FdEntry {
                    kind: FdKind::TcpListener { addr: bound },
                    preopen: None,
                    path: String::new(),
                    oflags: 0,
                    lookup_flags: 0,
                    read: true,
                    write: true,
                    rights_base: types::rights::LISTENER,
                    rights_inheriting: types::rights::SOCKET,
                    fdflags: 0,
                    position: 0,
                    file_id: None,
                },
                Handle::Owned(OwnedFd::from(listener)),
            );
        }
        Ok(ctx)
    }

    /// The state as plain data (for snapshots and tests).
    pub fn state(&self) -> &WasiState {
        &self.state
    }

    pub(crate) fn insert(&mut self, fd: u32, entry: FdEntry, handle: Handle) {
        // A number in use is no longer free (`next_fd` only peeks, so a
        // call that fails between choosing and inserting loses nothing).
        self.state.closed.retain(|&c| c != fd);
        self.state.fds.insert(fd, entry);
        self.handles.insert(fd, handle);
    }

    /// Forgets descriptor `fd` (already removed from the table) and makes
    /// its number the first one a new descriptor takes.
    pub(crate) fn release(&mut self, fd: u32) {
        self.state.closed.retain(|&c| c != fd);
        self.state.closed.push(fd);
    }

    /// The number the next new descriptor gets, as Wasmtime gives it (its
    /// preview1 descriptor table keeps freed slots on a stack): the most
    /// recently freed number still free, or else one past the highest in
    /// use. POSIX `open` would take the lowest free number instead; the
    /// difference shows when a program closes stdout or stderr and opens a
    /// file (Wasmtime and MVVM then give it the number closed last).
    pub(crate) fn next_fd(&self) -> u32 {
        let freed = self.state.closed.iter().rev();
        if let Some(&fd) = freed
            .into_iter()
            .find(|fd| !self.state.fds.contains_key(fd))
        {
            return fd;
        }
        self.state
            .fds
            .keys()
            .next_back()
            .map_or(0, |&k| k.saturating_add(1))
    }

    /// The entry and host descriptor of guest descriptor `fd`.
    pub(crate) fn get(&self, fd: u32) -> Result<(&FdEntry, BorrowedFd<'_>), Errno> {
        let entry = self.state.fds.get(&fd).ok_or(Errno::BADF)?;
        let handle = self.handles.get(&fd).ok_or(Errno::BADF)?;
        Ok((entry, handle.fd()))
    }

    /// Answers `CONNRESET` once for a restored connection whose reset the
    /// guest has not seen yet (see [`Handle::Reset`]); other descriptors
    /// pass.
    pub(crate) fn take_reset(&mut self, fd: u32) -> Result<(), Errno> {
        if !matches!(self.handles.get(&fd), Some(Handle::Reset(_))) {
            return Ok(());
        }
        if let Some(Handle::Reset(h)) = self.handles.remove(&fd) {
            self.handles.insert(fd, Handle::Owned(h));
        }
        Err(Errno::CONNRESET)
    }

    /// Runs WASI function `func` with `args` (one `u64` slot per parameter,
    /// `i32`s in the low half) against linear memory `mem`; writes the
    /// results (the errno, for all but `proc_exit`) into `results`.
    pub fn call(
        &mut self,
        func: WasiFunc,
        mem: &mut [u8],
        args: &[u64],
        results: &mut [u64],
    ) -> Result<(), WasiStop> {
        self.call_guest(func, &mut GuestMem::new(mem), args, results)
    }

    /// [`WasiCtx::call`] against guest memory `m`, which may be a shared
    /// memory other threads use ([`GuestMem::shared`]).
    pub fn call_guest(
        &mut self,
        func: WasiFunc,
        m: &mut GuestMem<'_>,
        args: &[u64],
        results: &mut [u64],
    ) -> Result<(), WasiStop> {
        let sig = func.signature();
        if args.len() != sig.params.len() || results.len() < sig.results.len() {
            return Err(WasiStop::Trap(format!(
                "{}: called with {} arguments and room for {} results",
                func.name(),
                args.len(),
                results.len()
            )));
        }
        interrupt::clear_mark();
        let r = self.dispatch(func, m, args)?;
        if interrupt::take_mark() {
            return Err(WasiStop::Interrupted);
        }
        tracing::trace!(func = func.name(), ?args, result = %r.err().unwrap_or(Errno::SUCCESS));
        if !sig.results.is_empty() {
            results[0] = r.err().unwrap_or(Errno::SUCCESS).0 as u64;
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        func: WasiFunc,
        m: &mut GuestMem<'_>,
        a: &[u64],
    ) -> Result<Result<(), Errno>, WasiStop> {
        let w = |i: usize| a[i] as u32;
        use WasiFunc as F;
        Ok(match func {
            F::ArgsGet => self.args_get(m, w(0), w(1)),
            F::ArgsSizesGet => self.args_sizes_get(m, w(0), w(1)),
            F::EnvironGet => self.environ_get(m, w(0), w(1)),
            F::EnvironSizesGet => self.environ_sizes_get(m, w(0), w(1)),
            F::ClockResGet => self.clock_res_get(m, w(0), w(1)),
            F::ClockTimeGet => self.clock_time_get(m, w(0), a[1], w(2)),
            F::FdAdvise => self.fd_advise(w(0), a[1], a[2], w(3)),
            F::FdAllocate => self.fd_allocate(w(0), a[1], a[2]),
            F::FdClose => self.fd_close(w(0)),
            F::FdDatasync => self.fd_sync(w(0), true),
            F::FdFdstatGet => self.fd_fdstat_get(m, w(0), w(1)),
            F::FdFdstatSetFlags => self.fd_fdstat_set_flags(w(0), w(1)),
            F::FdFdstatSetRights => self.fd_fdstat_set_rights(w(0), a[1], a[2]),
            F::FdFilestatGet => self.fd_filestat_get(m, w(0), w(1)),
            F::FdFilestatSetSize => self.fd_filestat_set_size(w(0), a[1]),
            F::FdFilestatSetTimes => self.fd_filestat_set_times(w(0), a[1], a[2], w(3)),
            F::FdPread => self.fd_pread(m, w(0), w(1), w(2), a[3], w(4)),
            F::FdPrestatGet => self.fd_prestat_get(m, w(0), w(1)),
            F::FdPrestatDirName => self.fd_prestat_dir_name(m, w(0), w(1), w(2)),
            F::FdPwrite => self.fd_pwrite(m, w(0), w(1), w(2), a[3], w(4)),
            F::FdRead => self.fd_read(m, w(0), w(1), w(2), w(3)),
            F::FdReaddir => self.fd_readdir(m, w(0), w(1), w(2), a[3], w(4)),
            F::FdRenumber => self.fd_renumber(w(0), w(1)),
            F::FdSeek => self.fd_seek(m, w(0), a[1] as i64, w(2), w(3)),
            F::FdSync => self.fd_sync(w(0), false),
            F::FdTell => self.fd_tell(m, w(0), w(1)),
            F::FdWrite => self.fd_write(m, w(0), w(1), w(2), w(3)),
            F::PathCreateDirectory => self.path_create_directory(m, w(0), w(1), w(2)),
            F::PathFilestatGet => self.path_filestat_get(m, w(0), w(1), w(2), w(3), w(4)),
            F::PathFilestatSetTimes => {
                self.path_filestat_set_times(m, w(0), w(1), w(2), w(3), a[4], a[5], w(6))
            }
            F::PathLink => self.path_link(m, w(0), w(1), w(2), w(3), w(4), w(5), w(6)),
            F::PathOpen => self.path_open(
                m,
                path::OpenArgs {
                    dirfd: w(0),
                    lookup_flags: w(1),
                    path_ptr: w(2),
                    path_len: w(3),
                    oflags: w(4) as u16,
                    rights_base: a[5],
                    rights_inheriting: a[6],
                    fdflags: w(7) as u16,
                    fd_out: w(8),
                },
            ),
            F::PathReadlink => self.path_readlink(m, w(0), w(1), w(2), w(3), w(4), w(5)),
            F::PathRemoveDirectory => self.path_remove_directory(m, w(0), w(1), w(2)),
            F::PathRename => self.path_rename(m, w(0), w(1), w(2), w(3), w(4), w(5)),
            F::PathSymlink => self.path_symlink(m, w(0), w(1), w(2), w(3), w(4)),
            F::PathUnlinkFile => self.path_unlink_file(m, w(0), w(1), w(2)),
            F::PollOneoff => self.poll_oneoff(m, w(0), w(1), w(2), w(3)),
            F::ProcExit => return Err(WasiStop::Exit(w(0) as i32)),
            F::ProcRaise => Err(Errno::NOSYS),
            F::SchedYield => {
                std::thread::yield_now();
                Ok(())
            }
            F::RandomGet => self.random_get(m, w(0), w(1)),
            F::SockAccept => self.sock_accept(m, w(0), w(1), w(2)),
            F::SockRecv => self.sock_recv(m, w(0), w(1), w(2), w(3), w(4), w(5)),
            F::SockSend => self.sock_send(m, w(0), w(1), w(2), w(3), w(4)),
            F::SockShutdown => self.sock_shutdown(w(0), w(1)),
            _ => self.sock_ext(func, m, a),
        })
    }
}
