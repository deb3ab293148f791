//! Thin, safe wrappers over the Linux system calls WASI needs.
//!
//! This is the only module of the WASI implementation with `unsafe` code
//! (the crate root denies it elsewhere). Each wrapper takes borrowed
//! descriptors and Rust slices, checks the return value, and turns
//! failures into [`io::Error`] (mapped to WASI errnos by
//! [`Errno::from_io`](super::errno::Errno::from_io)). Path sandboxing rests
//! on [`openat2_beneath`]: the kernel resolves the path under the given
//! directory and refuses `..` escapes, absolute paths and symlinks leading
//! outside (`EXDEV`).
//!
//! The `SAFETY` comments argue four things for each block: *validity* (every
//! pointer passed points to an initialised object of the type the call
//! expects, of the length passed), *alignment* (of what the kernel reads or
//! writes through it), *lifetime* (the object outlives the call, and the
//! kernel keeps no pointer after it returns) and *aliasing* (nothing else
//! reads or writes the object during the call). Descriptors are passed as
//! numbers taken from a `BorrowedFd`, which keeps them open for the call;
//! a bad number is an `EBADF` from the kernel, never undefined behaviour.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A path component or relative path as a C string (`EILSEQ` on a NUL
/// byte, which no file name may hold).
pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EILSEQ))
}

/// The host's standard stream `n` (0, 1 or 2).
pub fn stdio_fd(n: u32) -> BorrowedFd<'static> {
    let n = n.min(2) as libc::c_int;
    // SAFETY: validity and lifetime: descriptors 0, 1 and 2 belong to the
    // process for its whole life and the runtime never closes them
    // (`fd_close` on a stdio entry only forgets the entry), so a `'static`
    // borrow never outlives them; aliasing: a borrow does not own, so
    // sharing them with the host's own stdio is fine. No pointer involved.
    unsafe { BorrowedFd::borrow_raw(n) }
}

/// `openat2(dir, path, {flags, mode, resolve})`, with `O_CLOEXEC` added.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: validity: `open_how` is plain old data (three integers), for
    // which all-zero bytes are a valid value and the kernel's documented
    // default; alignment and lifetime: `zeroed` returns an owned, aligned
    // value; no aliasing (a fresh local).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    // O_TMPFILE includes O_DIRECTORY's bit: test all of its bits.
    let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
    how.mode = if creates { mode as u64 } else { 0 };
    how.resolve = resolve;
    loop {
        // SAFETY: validity: `path` is a `CString` (NUL-terminated) and `how`
        // an initialised `open_how` whose own size is passed; alignment: a
        // Rust local of type `open_how` is aligned for it, strings need
        // none; lifetime: both locals outlive the call and the kernel copies
        // them in; aliasing: the kernel only reads them and nothing else
        // can reach them meanwhile.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: validity: `r` is the non-negative descriptor the kernel
            // just returned; aliasing and lifetime: it is new, so nothing
            // else in the process owns it, and the `OwnedFd` becomes its
            // only owner and closes it once.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        // RESOLVE_CACHED is not used, so EAGAIN only comes from a racing
        // rename under RESOLVE_BENEATH: the kernel asks us to retry.
        if e.raw_os_error() != Some(libc::EAGAIN) && e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// [`openat2`] confined beneath `dir` (no magic links either).
pub fn openat2_beneath(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    openat2(
        dir,
        path,
        flags,
        mode,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// `read(2)`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: validity and alignment: `buf` is a live `&mut [u8]`, so its
    // pointer is valid for writes of `buf.len()` bytes (bytes need no
    // alignment); lifetime: borrowed for the whole call, no pointer kept
    // after it; aliasing: the exclusive borrow keeps everything else away.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `write(2)`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: validity and alignment: `buf` is a live `&[u8]`, valid for
    // reads of `buf.len()` bytes; lifetime: borrowed for the whole call;
    // aliasing: the kernel only reads, as the shared borrow allows.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// `pread(2)`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: as in `read`: `buf` is an exclusively borrowed slice, valid
    // and unaliased for writes of its length for the whole call.
    cvt_size(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) })
}

/// `pwrite(2)`.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: as in `write`: `buf` is a shared slice, valid for reads of
    // its length for the whole call; the kernel only reads it.
    cvt_size(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) })
}

/// `lseek(2)`.
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: libc::c_int) -> io::Result<u64> {
    // SAFETY: only integers are passed (no pointer: nothing to be valid,
    // aligned, alive or unaliased); a bad descriptor is `EBADF`.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u64)
    }
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: validity and alignment: `st` is a local
    // `MaybeUninit<stat>`, so its pointer is aligned and valid for writes
    // of one `stat`; lifetime: it outlives the call; aliasing: only the
    // kernel writes it during the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: `fstat` succeeded, so the kernel wrote a whole `stat` into
    // `st`: it is initialised.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(2)` of one name in `dir`, without following a final symlink.
pub fn fstatat_nofollow(dir: BorrowedFd<'_>, name: &str) -> io::Result<libc::stat> {
    let name = cstr(name)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: validity: `name` is a `CString` (NUL-terminated) and `st` a
    // local `MaybeUninit<stat>`, aligned and valid for writes of one
    // `stat`; lifetime: both outlive the call; aliasing: the kernel reads
    // `name` and writes `st`, which nothing else reaches meanwhile.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: `fstatat` succeeded, so it wrote a whole `stat` into `st`.
    Ok(unsafe { st.assume_init() })
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: validity: `name` is a `CString`, NUL-terminated; alignment:
    // none needed for bytes; lifetime: it outlives the call, the kernel
    // copies it; aliasing: the kernel only reads it.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `unlinkat(2)`; `dir_flag` removes a directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &str, remove_dir: bool) -> io::Result<()> {
    let name = cstr(name)?;
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: as in `mkdirat`: `name` is a NUL-terminated `CString` that
    // outlives the call and that the kernel only reads.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `renameat(2)`.
pub fn renameat(
    old_dir: BorrowedFd<'_>,
    old: &str,
    new_dir: BorrowedFd<'_>,
    new: &str,
) -> io::Result<()> {
    let old = cstr(old)?;
    let new = cstr(new)?;
    // SAFETY: validity: both names are `CString`s, NUL-terminated;
    // lifetime: they outlive the call, the kernel copies them; alignment
    // and aliasing: bytes, only read by the kernel.
    cvt(unsafe {
        libc::renameat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
        )
    })
    .map(drop)
}

/// `symlinkat(2)`: creates `name` in `dir` pointing at `target`.
pub fn symlinkat(target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let target = cstr(target)?;
    let name = cstr(name)?;
    // SAFETY: as in `renameat`: two NUL-terminated `CString`s that outlive
    // the call and that the kernel only reads.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `readlinkat(2)`: the whole target of a symlink.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &str) -> io::Result<Vec<u8>> {
    let name = cstr(name)?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: validity: `name` is a NUL-terminated `CString`; `buf` is
        // a live `Vec<u8>` whose pointer is valid for writes of `buf.len()`
        // initialised bytes (bytes need no alignment); lifetime: both
        // outlive the call and the kernel keeps no pointer; aliasing: the
        // kernel reads `name` and writes `buf`, both owned by this frame.
        let n = cvt_size(unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `linkat(2)` without following a symlink in `old`.
pub fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &str,
    new_dir: BorrowedFd<'_>,
    new: &str,
) -> io::Result<()> {
    let old = cstr(old)?;
    let new = cstr(new)?;
    // SAFETY: as in `renameat`: two NUL-terminated `CString`s that outlive
    // the call and that the kernel only reads.
    cvt(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `linkat(2)` of an already opened (`O_PATH`) file, through its
/// `/proc/self/fd` entry, which is how an unprivileged process links a
/// descriptor.
pub fn link_fd(file: BorrowedFd<'_>, new_dir: BorrowedFd<'_>, new: &str) -> io::Result<()> {
    let proc_path = cstr(&format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let new = cstr(new)?;
    // SAFETY: as in `renameat`: two NUL-terminated `CString`s that outlive
    // the call and that the kernel only reads.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// A `timespec` for `utimensat`: `None` leaves the time unchanged, `Some(None)`
/// sets it to now, `Some(Some(ns))` to the given time.
pub type TimeSpec = Option<Option<u64>>;

fn timespec(t: TimeSpec) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(None) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(Some(ns)) => libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    }
}

/// `utimensat(2)` of `name` in `dir` (no symlink following), or of `dir`
/// itself through `/proc/self/fd` when `name` is `None` (works for `O_PATH`
/// descriptors too).
pub fn utimensat(
    dir: BorrowedFd<'_>,
    name: Option<&str>,
    atim: TimeSpec,
    mtim: TimeSpec,
) -> io::Result<()> {
    let times = [timespec(atim), timespec(mtim)];
    let (dirfd, path, flags) = match name {
        Some(n) => (dir.as_raw_fd(), cstr(n)?, libc::AT_SYMLINK_NOFOLLOW),
        None => (
            libc::AT_FDCWD,
            cstr(&format!("/proc/self/fd/{}", dir.as_raw_fd()))?,
            0,
        ),
    };
    // SAFETY: validity: `path` is a NUL-terminated `CString` and `times` a
    // local array of exactly the two initialised `timespec`s the call
    // reads; alignment: a Rust array of `timespec` is aligned for it;
    // lifetime: both outlive the call; aliasing: the kernel only reads.
    cvt(unsafe { libc::utimensat(dirfd, path.as_ptr(), times.as_ptr(), flags) }).map(drop)
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    let size = i64::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: only integers are passed; a bad descriptor is `EBADF`.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) }).map(drop)
}

/// `fsync(2)`, or `fdatasync(2)` when `data_only`.
pub fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    // SAFETY: only integers are passed; a bad descriptor is `EBADF`.
    cvt(unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
    .map(drop)
}

/// `posix_fadvise(2)`.
pub fn fadvise(fd: BorrowedFd<'_>, offset: i64, len: i64, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: only integers are passed; errors come back as the result.
    let r = unsafe { libc::posix_fadvise(fd.as_raw_fd(), offset, len, advice) };
    if r != 0 {
        Err(io::Error::from_raw_os_error(r))
    } else {
        Ok(())
    }
}

/// `posix_fallocate(3)`.
pub fn fallocate(fd: BorrowedFd<'_>, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: only integers are passed; errors come back as the result.
    let r = unsafe { libc::posix_fallocate(fd.as_raw_fd(), offset, len) };
    if r != 0 {
        Err(io::Error::from_raw_os_error(r))
    } else {
        Ok(())
    }
}

/// `fcntl(F_GETFL)`.
pub fn get_fl(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: `F_GETFL` takes no third argument; only integers are passed.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// `fcntl(F_SETFL)`.
pub fn set_fl(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `F_SETFL` takes an `int`, which is what is passed; no
    // pointer.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
}

/// `isatty(3)`.
pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: only an integer is passed.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// One directory entry as the kernel lists it.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The position just after this entry (the kernel's `d_off`): where a
    /// listing resumes, so it is the entry's WASI cookie.
    pub next: u64,
    /// Inode number.
    pub ino: u64,
    /// `d_type` (`DT_*`).
    pub d_type: u8,
    /// Name.
    pub name: Vec<u8>,
}

/// Entries of directory `dir` (including `.` and `..`) from position
/// `cookie` (0: the start) in the kernel's order, until their WASI
/// encoding (a 24-byte header plus the name each) reaches `budget` bytes.
///
/// Positions are the kernel's own directory offsets, which stay valid when
/// other entries are removed meanwhile (a program deleting what it lists
/// sees every entry once), unlike entry counts.
pub fn read_dir(dir: BorrowedFd<'_>, cookie: u64, budget: usize) -> io::Result<Vec<DirEntry>> {
    // A fresh descriptor: fdopendir takes ownership and closedir closes it,
    // and its offset is independent from the guest's descriptor.
    let fresh = openat2(
        dir,
        ".",
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_BENEATH,
    )?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fresh);
    // SAFETY: validity: `raw` is an open directory descriptor this function
    // owns (just taken out of its `OwnedFd`); aliasing and lifetime: on
    // success the `DIR*` owns it (closed by `closedir` below, once), on
    // failure we still own it and close it below.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: `fdopendir` failed, so `raw` is still open and owned by
        // nothing but this function: the `OwnedFd` becomes its only owner.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(e);
    }
    if cookie != 0 {
        // SAFETY: validity: `dirp` is the non-null `DIR*` from `fdopendir`,
        // not yet closed; lifetime: it stays open until `closedir` below;
        // aliasing: only this function uses it. Any position is accepted
        // (an invalid one just ends the listing or fails the next readdir).
        unsafe { libc::seekdir(dirp, cookie as libc::c_long) };
    }
    let mut out = Vec::new();
    let mut used = 0usize;
    let result = loop {
        if used >= budget {
            break Ok(());
        }
        // SAFETY: validity and alignment: `__errno_location` returns the
        // address of this thread's `errno`, an aligned, live `int`;
        // lifetime: it lives as long as the thread; aliasing: it is
        // thread-local, so no other thread writes it. Resetting it tells
        // end-of-stream from an error after `readdir` returns null.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is the open `DIR*` (see `seekdir` above), used by
        // this thread only.
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            // SAFETY: as above: this thread's live, aligned `errno`, which
            // no other thread writes.
            let err = unsafe { *libc::__errno_location() };
            break if err == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(err))
            };
        }
        // SAFETY: validity and alignment: `ent` is the non-null, aligned
        // `dirent64` pointer `readdir64` returned, and its `d_name` is
        // NUL-terminated; lifetime: the entry stays valid until the next
        // `readdir64` or `closedir` on `dirp`, and everything is copied out
        // (into `DirEntry`) before either; aliasing: it is only read.
        let entry = unsafe {
            let e = &*ent;
            DirEntry {
                next: e.d_off as u64,
                ino: e.d_ino,
                d_type: e.d_type,
                name: CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
            }
        };
        used += 24 + entry.name.len();
        out.push(entry);
    };
    // SAFETY: `dirp` is the open `DIR*`, closed here once and never used
    // again (this also closes `raw`).
    unsafe { libc::closedir(dirp) };
    result.map(|()| out)
}

/// `clock_gettime(2)`.
pub fn clock_gettime(id: libc::clockid_t) -> io::Result<u64> {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: validity and alignment: `ts` is a local
    // `MaybeUninit<timespec>`, aligned and valid for writes of one
    // `timespec`; lifetime: it outlives the call; aliasing: only the kernel
    // writes it during the call.
    cvt(unsafe { libc::clock_gettime(id, ts.as_mut_ptr()) })?;
    // SAFETY: the call succeeded, so the kernel wrote a whole `timespec`.
    let ts = unsafe { ts.assume_init() };
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `clock_getres(2)`.
pub fn clock_getres(id: libc::clockid_t) -> io::Result<u64> {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: validity and alignment: `ts` is a local
    // `MaybeUninit<timespec>`, aligned and valid for writes of one
    // `timespec`; lifetime: it outlives the call; aliasing: only the kernel
    // writes it during the call.
    cvt(unsafe { libc::clock_getres(id, ts.as_mut_ptr()) })?;
    // SAFETY: the call succeeded, so the kernel wrote a whole `timespec`.
    let ts = unsafe { ts.assume_init() };
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Fills `buf` from the kernel's random source.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: validity and alignment: `rest` is an exclusively borrowed
        // byte slice, valid for writes of `rest.len()` bytes; lifetime: it
        // outlives the call; aliasing: the exclusive borrow keeps others
        // away while the kernel writes it.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(())
}

/// `poll(2)` with a timeout in milliseconds (-1: forever).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: validity and alignment: `fds` is an exclusively borrowed slice
    // of initialised `pollfd`s, aligned for the type, whose length is
    // passed; lifetime: it outlives the call; aliasing: the kernel writes
    // only `revents`, and nothing else reaches the slice meanwhile.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    cvt(r).map(|n| n as usize)
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: validity: the family says the kernel stored a
            // `sockaddr_in` there; alignment: `sockaddr_storage` is larger
            // than and aligned for every socket address type; lifetime:
            // the reference borrows `storage` and does not outlive it;
            // aliasing: shared, read only.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for a `sockaddr_in6` (the family says so).
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

/// `accept4(2)`: the new connection and its peer address.
pub fn accept(fd: BorrowedFd<'_>, nonblock: bool) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: `sockaddr_storage` is plain old data: all-zero bytes are a
    // valid value; a fresh, aligned local.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: validity and alignment: `storage` and `len` are aligned
    // locals valid for writes, and `len` holds the size of `storage`, so
    // the kernel writes no more than it holds; lifetime: both outlive the
    // call; aliasing: only the kernel writes them during the call.
    let r = unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            &mut storage as *mut _ as *mut libc::sockaddr,
            &mut len,
            flags,
        )
    };
    let raw = cvt(r)?;
    // SAFETY: validity: `raw` is the non-negative descriptor `accept4` just
    // returned; aliasing and lifetime: it is new, nothing else owns it, and
    // the `OwnedFd` closes it once.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok((owned, sockaddr_to_std(&storage)?))
}

/// `getsockname(2)`.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: `sockaddr_storage` is plain old data: all-zero bytes are a
    // valid value; a fresh, aligned local.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as in `accept`: aligned locals valid for writes, `len` their
    // size, alive for the call and written only by the kernel.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut storage as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    })?;
    sockaddr_to_std(&storage)
}

/// `recv(2)`.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: as in `read`: `buf` is an exclusively borrowed slice, valid
    // and unaliased for writes of its length for the whole call.
    cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// `send(2)` (never raising `SIGPIPE`).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: as in `write`: `buf` is a shared slice, valid for reads of its
    // length for the whole call; the kernel only reads it.
    cvt_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    })
}

/// `shutdown(2)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) -> io::Result<()> {
    // SAFETY: only integers are passed.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(drop)
}

/// `memfd_create(2)` with `MFD_CLOEXEC`: a new anonymous file named `name`
/// (the name only shows in `/proc/self/fd`).
pub fn memfd_create(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: validity: `name` is a `&CStr`, so a valid pointer to a
    // NUL-terminated string; lifetime: it is borrowed for the whole call
    // and the kernel copies it, keeping no pointer afterwards; alignment
    // and aliasing: bytes have no alignment, and the kernel only reads.
    let r = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: validity: `r` is the descriptor the kernel just returned
    // (non-negative, checked by `cvt`); aliasing and lifetime: it is new,
    // so nothing else in the process owns it, and the `OwnedFd` becomes
    // its only owner, closing it once.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// A socket address in the layout the kernel takes, built from a
/// [`SocketAddr`] (an `AF_INET` or `AF_INET6` record, nothing else).
enum RawSockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawSockAddr {
    fn new(addr: SocketAddr) -> RawSockAddr {
        match addr {
            SocketAddr::V4(a) => RawSockAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawSockAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    /// Pointer and length for a system call; the pointer borrows `self`.
    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawSockAddr::V4(a) => (
                a as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            RawSockAddr::V6(a) => (
                a as *const libc::sockaddr_in6 as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

/// `socket(2)` with `SOCK_CLOEXEC`.
pub fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: only integers are passed.
    let raw = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: validity: `raw` is the non-negative descriptor the kernel just
    // returned; aliasing and lifetime: it is new, nothing else owns it, and
    // the `OwnedFd` closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `bind(2)`.
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    let (p, len) = raw.as_ptr();
    // SAFETY: validity and alignment: `p` points to the initialised
    // `sockaddr_in`/`sockaddr_in6` inside `raw`, of exactly `len` bytes,
    // aligned for its type; lifetime: `raw` outlives the call and the kernel
    // copies the address; aliasing: the kernel only reads it.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), p, len) }).map(drop)
}

/// `connect(2)`.
pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    let (p, len) = raw.as_ptr();
    // SAFETY: as in `bind`: `p` and `len` describe the address inside
    // `raw`, alive for the call and only read by the kernel.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), p, len) }).map(drop)
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: only integers are passed.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// `sendto(2)` to `addr` (never raising `SIGPIPE`).
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
    let raw = RawSockAddr::new(addr);
    let (p, len) = raw.as_ptr();
    // SAFETY: validity: `buf` is a shared slice valid for reads of its
    // length, `p`/`len` the address inside `raw` (as in `bind`); lifetime:
    // both outlive the call; aliasing: the kernel only reads them.
    cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            p,
            len,
        )
    })
}

/// `recvfrom(2)`: the length received and the sender, when the socket
/// type reports one (a connected stream socket does not).
pub fn recv_from(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<SocketAddr>)> {
    // SAFETY: `sockaddr_storage` is plain old data: all-zero bytes are a
    // valid value; a fresh, aligned local.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: validity and alignment: `buf` is an exclusively borrowed
    // slice valid for writes of its length; `storage` and `len` are aligned
    // locals, `len` the size of `storage`, so the kernel writes no more
    // than it holds; lifetime: all outlive the call; aliasing: only the
    // kernel writes them during the call.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            &mut storage as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    })?;
    let from = if len == 0 {
        None
    } else {
        sockaddr_to_std(&storage).ok()
    };
    Ok((n, from))
}

/// Option values `getsockopt`/`setsockopt` move as raw bytes: plain old
/// data, for which every byte pattern the kernel writes is a valid value.
pub trait SockOptValue: Copy + sealed::Sealed {
    /// The all-zero value.
    fn zeroed() -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for libc::c_int {}
    impl Sealed for libc::timeval {}
    impl Sealed for libc::linger {}
    impl Sealed for libc::ip_mreq {}
    impl Sealed for libc::ipv6_mreq {}
}

macro_rules! sockopt_values {
    ($($t:ty),*) => {$(
        impl $crate::sys::SockOptValue for $t {
            fn zeroed() -> Self {
                // SAFETY: the type is a C struct or integer of integers
                // only (plain old data): all-zero bytes are a valid value.
                unsafe { std::mem::zeroed() }
            }
        }
    )*};
}
sockopt_values!(
    libc::c_int,
    libc::timeval,
    libc::linger,
    libc::ip_mreq,
    libc::ipv6_mreq
);

/// `getsockopt(2)` of a value of type `T`.
pub fn getsockopt<T: SockOptValue>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut v = T::zeroed();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: validity and alignment: `v` is an aligned local of type `T`
    // valid for writes of `len` = its size, and every byte pattern is a
    // valid `T` (`SockOptValue`); lifetime: it outlives the call; aliasing:
    // only the kernel writes it meanwhile.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &mut v as *mut T as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(v)
}

/// `setsockopt(2)` of a value of type `T`.
pub fn setsockopt<T: SockOptValue>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: validity and alignment: `value` is an initialised, aligned
    // local of `size_of::<T>()` bytes; lifetime: it outlives the call and
    // the kernel copies it; aliasing: the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

// After `sockopt_values!`, which it uses.
pub mod tcp_repair;
