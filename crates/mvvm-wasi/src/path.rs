//! The `path_*` functions.
//!
//! Every path is resolved by the kernel beneath the directory descriptor it
//! is relative to (`openat2` with `RESOLVE_BENEATH`): `..` that would leave
//! it, absolute paths and symlinks pointing outside are refused with
//! `EXDEV`, which becomes WASI `PERM` (what wasmtime answers). Calls that act
//! on a last component open its parent that way first and then use a
//! single name, never `..` (replaced by opening the whole path as the
//! parent) and never containing `/`.

use super::errno::Errno;
use super::fd::{filestat_of, times_of};
use super::mem::GuestMem;
use super::rights::{self as r, need};
use super::state::{FdEntry, FdKind, FileId};
use super::types::{FILESTAT_SIZE, LOOKUP_SYMLINK_FOLLOW, fdflags, oflags, rights};
use super::{Handle, WasiCtx, sys};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

type R = Result<(), Errno>;

/// Decoded arguments of `path_open`.
pub(super) struct OpenArgs {
    pub dirfd: u32,
    pub lookup_flags: u32,
    pub path_ptr: u32,
    pub path_len: u32,
    pub oflags: u16,
    pub rights_base: u64,
    pub rights_inheriting: u64,
    pub fdflags: u16,
    pub fd_out: u32,
}

/// A path split into the parent directory to open and a last component.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split<'a> {
    /// Relative (or absolute, to be refused by the kernel) parent path.
    pub parent: &'a str,
    /// A single component: not empty, no `/`, never `..`.
    pub name: &'a str,
    /// The path ended with `/`: the target must be a directory.
    pub trailing_slash: bool,
}

/// Splits `path` into parent and last component (see [`Split`]).
pub(super) fn split(path: &str) -> Result<Split<'_>, Errno> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    let trimmed = path.trim_end_matches('/');
    let trailing_slash = trimmed.len() != path.len();
    if trimmed.is_empty() {
        // "/" or "///": the root, to be refused when opened.
        return Ok(Split {
            parent: "/",
            name: ".",
            trailing_slash,
        });
    }
    let (parent, name) = match trimmed.rsplit_once('/') {
        None => (".", trimmed),
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
    };
    if name == ".." {
        // The parent of `a/..` is `a/..` itself, opened (and checked) whole.
        return Ok(Split {
            parent: trimmed,
            name: ".",
            trailing_slash,
        });
    }
    Ok(Split {
        parent,
        name,
        trailing_slash,
    })
}

/// The directory descriptor of a `path_*` call that needs `needed`
/// rights on it, and its entry: `NOTDIR` when it is no directory, then
/// `NOTCAPABLE` when it lacks a right.
fn dir_of(ctx: &WasiCtx, fd: u32, needed: u64) -> Result<(&FdEntry, BorrowedFd<'_>), Errno> {
    let (entry, h) = ctx.get(fd)?;
    match entry.kind {
        FdKind::Dir | FdKind::PreopenDir => {
            need(entry, needed)?;
            Ok((entry, h))
        }
        _ => Err(Errno::NOTDIR),
    }
}

/// The error for creating an entry (link, symlink) at a path that ended
/// with `/`, whose last component is `name` in `parent`: such a path names
/// a directory, which these calls never create. `EXIST` when the name is
/// taken by a directory or a symlink (as Linux answers), `NOTDIR` when it
/// is another file (a path `file/`), `NOENT` when it is free.
fn trailing_slash_create_error(parent: BorrowedFd<'_>, name: &str) -> Errno {
    match sys::fstatat_nofollow(parent, name) {
        Ok(st) => match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR | libc::S_IFLNK => Errno::EXIST,
            _ => Errno::NOTDIR,
        },
        Err(e) => e.into(),
    }
}

/// Opens the parent of `path` beneath `dir` (`O_PATH`).
fn open_parent<'p>(dir: BorrowedFd<'_>, path: &'p str) -> Result<(OwnedFd, Split<'p>), Errno> {
    let s = split(path)?;
    let parent = sys::openat2_beneath(dir, s.parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok((parent, s))
}

/// Opens `path` itself beneath `dir` as `O_PATH`, following a final symlink
/// (still beneath `dir`).
fn open_follow(dir: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, Errno> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    Ok(sys::openat2_beneath(dir, path, libc::O_PATH, 0)?)
}

/// The host `open` flags of a WASI open: access mode from `read`/`write`,
/// then `oflags`, lookup flags and `fdflags` translated one by one.
pub(super) fn open_flags(read: bool, write: bool, of: u16, lookup: u32, fdf: u16) -> libc::c_int {
    let mut flags = match (read, write) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    for (bit, f) in [
        (oflags::CREAT, libc::O_CREAT),
        (oflags::EXCL, libc::O_EXCL),
        (oflags::TRUNC, libc::O_TRUNC),
        (oflags::DIRECTORY, libc::O_DIRECTORY),
    ] {
        if of & bit != 0 {
            flags |= f;
        }
    }
    if lookup & LOOKUP_SYMLINK_FOLLOW == 0 {
        flags |= libc::O_NOFOLLOW;
    }
    for (bit, f) in [
        (fdflags::APPEND, libc::O_APPEND),
        (fdflags::NONBLOCK, libc::O_NONBLOCK),
        (fdflags::DSYNC, libc::O_DSYNC),
        (fdflags::SYNC, libc::O_SYNC),
        (fdflags::RSYNC, libc::O_RSYNC),
    ] {
        if fdf & bit != 0 {
            flags |= f;
        }
    }
    flags
}

/// Joins the path of a directory descriptor and a path relative to it, for
/// the record kept in the state.
///
/// Only `.` and empty components are dropped: `..` stays, since undoing it
/// lexically would be wrong across symlinks (the kernel resolves it on
/// reopen, still beneath the preopen).
pub(super) fn join(base: &str, path: &str) -> String {
    let parts: Vec<&str> = base
        .split('/')
        .chain(path.split('/'))
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

impl WasiCtx {
    pub(super) fn path_open(&mut self, m: &mut GuestMem<'_>, a: OpenArgs) -> R {
        let path = m.read_str(a.path_ptr, a.path_len)?;
        m.check(a.fd_out, 4)?;
        if path.is_empty() {
            return Err(Errno::NOENT);
        }
        let (parent, dir) = dir_of(self, a.dirfd, r::for_open(a.oflags))?;
        // Write-like rights open the host file for writing; a directory
        // (with or without `O_DIRECTORY`) then fails with `ISDIR`, as the
        // kernel answers and wasmtime does.
        let write_rights = rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE;
        let read_rights = rights::FD_READ | rights::FD_READDIR;
        // The host handle is opened for what the descriptor may do: the
        // rights asked for that the directory passes on.
        let granted = a.rights_base & parent.rights_inheriting;
        let want_write = granted & write_rights != 0;
        let want_read = granted & read_rights != 0 || !want_write;
        let flags = open_flags(want_read, want_write, a.oflags, a.lookup_flags, a.fdflags);
        let file = sys::openat2_beneath(dir, &path, flags, 0o666)?;
        let st = sys::fstat(file.as_fd())?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let entry = FdEntry {
            kind: if is_dir { FdKind::Dir } else { FdKind::File },
            preopen: parent.preopen,
            path: join(&parent.path, &path),
            oflags: a.oflags,
            lookup_flags: a.lookup_flags,
            read: want_read,
            write: want_write,
            rights_base: r::opened_base(a.rights_base, parent.rights_inheriting, is_dir),
            rights_inheriting: a.rights_inheriting & parent.rights_inheriting,
            fdflags: a.fdflags,
            position: 0,
            file_id: Some(FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            }),
        };
        let fd = self.next_fd();
        m.write_u32(a.fd_out, fd)?;
        self.insert(fd, entry, Handle::Owned(file));
        Ok(())
    }

    pub(super) fn path_create_directory(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        p: u32,
        l: u32,
    ) -> R {
        let path = m.read_str(p, l)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_CREATE_DIRECTORY)?;
        let (parent, s) = open_parent(dir, &path)?;
        sys::mkdirat(parent.as_fd(), s.name, 0o777)?;
        Ok(())
    }

    pub(super) fn path_remove_directory(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        p: u32,
        l: u32,
    ) -> R {
        let path = m.read_str(p, l)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_REMOVE_DIRECTORY)?;
        let (parent, s) = open_parent(dir, &path)?;
        sys::unlinkat(parent.as_fd(), s.name, true)?;
        Ok(())
    }

    pub(super) fn path_unlink_file(&mut self, m: &mut GuestMem<'_>, fd: u32, p: u32, l: u32) -> R {
        let path = m.read_str(p, l)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_UNLINK_FILE)?;
        let (parent, s) = open_parent(dir, &path)?;
        if s.trailing_slash {
            // "name/" names a directory: never a file to unlink.
            let st = sys::fstatat_nofollow(parent.as_fd(), s.name)?;
            return Err(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                Errno::ISDIR
            } else {
                Errno::NOTDIR
            });
        }
        sys::unlinkat(parent.as_fd(), s.name, false)?;
        Ok(())
    }

    pub(super) fn path_filestat_get(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        lookup: u32,
        p: u32,
        l: u32,
        out: u32,
    ) -> R {
        let path = m.read_str(p, l)?;
        m.check(out, FILESTAT_SIZE)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_FILESTAT_GET)?;
        let st = if lookup & LOOKUP_SYMLINK_FOLLOW != 0 {
            sys::fstat(open_follow(dir, &path)?.as_fd())?
        } else {
            let (parent, s) = open_parent(dir, &path)?;
            if s.trailing_slash {
                sys::fstat(open_follow(dir, &path)?.as_fd())?
            } else {
                sys::fstatat_nofollow(parent.as_fd(), s.name)?
            }
        };
        m.write_bytes(out, &filestat_of(&st).encode())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_filestat_set_times(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        lookup: u32,
        p: u32,
        l: u32,
        atim: u64,
        mtim: u64,
        flags: u32,
    ) -> R {
        let path = m.read_str(p, l)?;
        let (a, mt) = times_of(atim, mtim, flags)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_FILESTAT_SET_TIMES)?;
        if lookup & LOOKUP_SYMLINK_FOLLOW != 0 {
            let f = open_follow(dir, &path)?;
            sys::utimensat(f.as_fd(), None, a, mt)?;
        } else {
            let (parent, s) = open_parent(dir, &path)?;
            sys::utimensat(parent.as_fd(), Some(s.name), a, mt)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_link(
        &mut self,
        m: &mut GuestMem<'_>,
        old_fd: u32,
        old_lookup: u32,
        old_p: u32,
        old_l: u32,
        new_fd: u32,
        new_p: u32,
        new_l: u32,
    ) -> R {
        let old = m.read_str(old_p, old_l)?;
        let new = m.read_str(new_p, new_l)?;
        let (_, old_dir) = dir_of(self, old_fd, rights::PATH_LINK_SOURCE)?;
        let (_, new_dir) = dir_of(self, new_fd, rights::PATH_LINK_TARGET)?;
        let (new_parent, ns) = open_parent(new_dir, &new)?;
        if old_lookup & LOOKUP_SYMLINK_FOLLOW != 0 {
            let src = open_follow(old_dir, &old)?;
            if ns.trailing_slash {
                return Err(trailing_slash_create_error(new_parent.as_fd(), ns.name));
            }
            sys::link_fd(src.as_fd(), new_parent.as_fd(), ns.name)?;
        } else {
            let (old_parent, os) = open_parent(old_dir, &old)?;
            if os.trailing_slash {
                // "name/" must be a directory, and directories cannot be
                // hard-linked: `NOTDIR` or `PERM`, as linkat(2) answers.
                let st = sys::fstatat_nofollow(old_parent.as_fd(), os.name)?;
                return Err(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    Errno::PERM
                } else {
                    Errno::NOTDIR
                });
            }
            if ns.trailing_slash {
                sys::fstatat_nofollow(old_parent.as_fd(), os.name)?;
                return Err(trailing_slash_create_error(new_parent.as_fd(), ns.name));
            }
            sys::linkat(old_parent.as_fd(), os.name, new_parent.as_fd(), ns.name)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_readlink(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        p: u32,
        l: u32,
        buf: u32,
        buf_len: u32,
        out: u32,
    ) -> R {
        let path = m.read_str(p, l)?;
        m.check(buf, buf_len)?;
        m.check(out, 4)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_READLINK)?;
        let (parent, s) = open_parent(dir, &path)?;
        let target = sys::readlinkat(parent.as_fd(), s.name)?;
        let n = target.len().min(buf_len as usize);
        m.write_bytes(buf, &target[..n])?;
        m.write_u32(out, n as u32)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn path_rename(
        &mut self,
        m: &mut GuestMem<'_>,
        old_fd: u32,
        old_p: u32,
        old_l: u32,
        new_fd: u32,
        new_p: u32,
        new_l: u32,
    ) -> R {
        let old = m.read_str(old_p, old_l)?;
        let new = m.read_str(new_p, new_l)?;
        let (_, old_dir) = dir_of(self, old_fd, rights::PATH_RENAME_SOURCE)?;
        let (_, new_dir) = dir_of(self, new_fd, rights::PATH_RENAME_TARGET)?;
        let (op, os) = open_parent(old_dir, &old)?;
        let (np, ns) = open_parent(new_dir, &new)?;
        if os.trailing_slash || ns.trailing_slash {
            let st = sys::fstatat_nofollow(op.as_fd(), os.name)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(Errno::NOTDIR);
            }
        }
        sys::renameat(op.as_fd(), os.name, np.as_fd(), ns.name).map_err(|e| {
            // Across two mounts inside one preopen, EXDEV means just that.
            if e.raw_os_error() == Some(libc::EXDEV) {
                Errno::XDEV
            } else {
                Errno::from_io(&e)
            }
        })?;
        self.track_rename(old_fd, &old, new_fd, &new);
        Ok(())
    }

    /// Keeps the recorded paths of open descriptors right after a rename
    /// (of the file itself or of a directory above it), so that a restore
    /// reopens what is open now. Paths are compared after [`join`]'s
    /// cleanup; a descriptor reached through another spelling (`..`, a
    /// symlink) keeps its old path, and a restore then reports it.
    fn track_rename(&mut self, old_fd: u32, old: &str, new_fd: u32, new: &str) {
        let (Some(od), Some(nd)) = (self.state.fds.get(&old_fd), self.state.fds.get(&new_fd))
        else {
            return;
        };
        if od.preopen.is_none() || od.preopen != nd.preopen {
            return;
        }
        let preopen = od.preopen;
        let from = join(&od.path, old);
        let to = join(&nd.path, new);
        for e in self.state.fds.values_mut() {
            if e.preopen != preopen || !matches!(e.kind, FdKind::File | FdKind::Dir) {
                continue;
            }
            if e.path == from {
                e.path = to.clone();
            } else if let Some(rest) = e.path.strip_prefix(&format!("{from}/")) {
                e.path = format!("{to}/{rest}");
            }
        }
    }

    pub(super) fn path_symlink(
        &mut self,
        m: &mut GuestMem<'_>,
        target_p: u32,
        target_l: u32,
        fd: u32,
        new_p: u32,
        new_l: u32,
    ) -> R {
        let target = m.read_str(target_p, target_l)?;
        let new = m.read_str(new_p, new_l)?;
        let (_, dir) = dir_of(self, fd, rights::PATH_SYMLINK)?;
        // An absolute target is refused (`PERM`, what wasmtime answers): it
        // could never be followed beneath a preopen, and a link to a host
        // path left in a shared directory would mislead host programs.
        // A relative target is only text, even one with `..` leading out:
        // it is checked each time the link is followed, which always
        // happens beneath a preopen (wasmtime creates those too).
        if target.starts_with('/') {
            return Err(Errno::PERM);
        }
        let (parent, s) = open_parent(dir, &new)?;
        if s.trailing_slash {
            return Err(trailing_slash_create_error(parent.as_fd(), s.name));
        }
        sys::symlinkat(&target, parent.as_fd(), s.name)?;
        Ok(())
    }
}
