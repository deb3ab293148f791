//! Process control: `_exit` from a signal handler, and the forked child
//! that writes a periodic checkpoint in the background.

/// Ends the process with `code` at once, running no destructor and no
/// `atexit` handler. Async-signal-safe, unlike `std::process::exit`.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes an integer, never returns and is
    // async-signal-safe; skipping destructors is memory safe.
    unsafe { libc::_exit(code) }
}

/// A child process made by [`fork_writer`], and the read end of the pipe
/// it reports on.
#[derive(Debug)]
pub(crate) struct Child {
    pub pid: libc::pid_t,
    pub report: std::fs::File,
}

/// Forks a child that runs `work`, writes what it returns to a pipe and
/// ends with `_exit(0)` (`_exit(70)` if `work` panics); returns the child
/// to the parent.
///
/// # Safety
/// The process may have other threads. The child has only the calling
/// thread; `work` must not take a lock another thread may hold at the
/// fork (no logging, no stdout/stderr locks, no lock of the runtime or of
/// the host layers). glibc's `malloc` is usable in the child (its fork
/// handlers leave the arenas consistent), and so are plain system calls.
pub(crate) unsafe fn fork_writer(work: impl FnOnce() -> Vec<u8>) -> std::io::Result<Child> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `pipe2` just made both descriptors; each `File` owns one.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: see the function's contract: the child runs `work`, writes
    // to its pipe and `_exit`s, never returning into the caller's frames.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(read);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let code = match out {
            Ok(bytes) => {
                let mut w = write;
                if w.write_all(&bytes).is_ok() { 0 } else { 71 }
            }
            Err(_) => 70,
        };
        exit_now(code);
    }
    drop(write);
    Ok(Child { pid, report: read })
}

/// Waits for `pid` to end; its exit code (`None` when a signal ended it).
pub(crate) fn wait_child(pid: libc::pid_t) -> std::io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)))
}

/// Whether `child` has written its report (or ended: end of file also
/// makes the pipe readable), without waiting.
pub(crate) fn report_ready(child: &Child) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: child.report.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid `pollfd` on a descriptor `child` owns;
    // a zero timeout never blocks.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents != 0
}
