//! Blocking calls that a checkpoint request can interrupt.
//!
//! While a checkpoint session runs on this thread (the runtime's
//! [`mvvm_rt::checkpoint::host`] interface), calls that may block for long
//! (`poll_oneoff`, `fd_read` on stdin or a socket, `sock_recv`,
//! `sock_accept`) first wait for their descriptor in slices of at most
//! [`WAIT_SLICE`], looking at the request between slices. When a
//! checkpoint is requested they give up before doing anything: the WASI
//! call reports `WasiStop::Interrupted`, the host function tells the
//! runtime ([`Caller::interrupt_for_checkpoint`](mvvm_rt::Caller::interrupt_for_checkpoint)),
//! the import stub unwinds, and the restored program makes the call again.
//!
//! The same slices serve the threads of a wasi-threads program
//! ([`mvvm_rt::current_in_group`]): when another thread ends the program,
//! a blocking call gives up between two slices
//! ([`mvvm_rt::current_terminated`]) and the runtime stops the thread
//! when the host function returns.

use super::errno::Errno;
use super::state::FdKind;
use super::types::fdflags;
use super::{WasiCtx, sys};
use mvvm_rt::checkpoint::host::{WAIT_SLICE, requested, session_active};
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::Duration;

thread_local! {
    /// Set by a blocking call that gave up because a checkpoint was
    /// requested; cleared and read around each call by [`WasiCtx::call`]
    /// (calls run on the store's thread).
    static INTERRUPTED: Cell<bool> = const { Cell::new(false) };
}

/// Forgets a mark left by an earlier call (before a call starts).
pub(super) fn clear_mark() {
    INTERRUPTED.with(|h| h.set(false));
}

/// Whether the call that just ended gave up for a checkpoint; clears the
/// mark.
pub(super) fn take_mark() -> bool {
    INTERRUPTED.with(|h| h.replace(false))
}

/// Gives up the current call if a checkpoint is requested, or if another
/// thread ended the program (the runtime then stops this thread: the
/// errno never reaches the guest).
pub(super) fn check_request() -> Result<(), Errno> {
    if session_active() && requested() {
        INTERRUPTED.with(|h| h.set(true));
        return Err(Errno::INTR);
    }
    if mvvm_rt::current_terminated() {
        return Err(Errno::INTR);
    }
    Ok(())
}

/// Whether blocking waits must be sliced on this thread: a checkpoint
/// session runs, or the thread is one of a program's threads.
fn sliced() -> bool {
    session_active() || mvvm_rt::current_in_group()
}

/// The longest a blocking wait may last before looking at the request
/// again: `want` itself when waits need not be sliced on this thread.
pub(super) fn slice(want: Option<Duration>) -> Option<Duration> {
    if !sliced() {
        return want;
    }
    Some(want.map_or(WAIT_SLICE, |d| d.min(WAIT_SLICE)))
}

impl WasiCtx {
    /// Waits until guest descriptor `fd` is ready for reading (or writing)
    /// when the call on it could block and a checkpoint session runs; gives
    /// up with the call interrupted when a checkpoint is requested. Other
    /// descriptors (files, non-blocking ones) return at once.
    pub(super) fn wait_ready(&self, fd: u32, write: bool) -> Result<(), Errno> {
        if !sliced() {
            return Ok(());
        }
        let Ok((entry, h)) = self.get(fd) else {
            return Ok(());
        };
        let may_block = (matches!(entry.kind, FdKind::Stdio(_))
            && entry.fdflags & fdflags::NONBLOCK == 0)
            || crate::sock_ext::may_block(entry);
        if !may_block {
            return Ok(());
        }
        let raw = h.as_raw_fd();
        loop {
            check_request()?;
            let mut p = [libc::pollfd {
                fd: raw,
                events: if write { libc::POLLOUT } else { libc::POLLIN },
                revents: 0,
            }];
            match sys::poll(&mut p, WAIT_SLICE.as_millis() as libc::c_int) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // Let the real call report the error.
                Err(_) => return Ok(()),
            }
        }
    }
}
