//! The `fd_*` functions.
//!
//! Files are read and written at the position kept in their
//! [`FdEntry`](super::state::FdEntry) with `pread`/`pwrite` (see
//! `state.rs` for why); streams (stdio, sockets) use `read`/`write`.

use super::errno::Errno;
use super::mem::{GuestMem, iovecs_total};
use super::rights::need;
use super::state::{FdEntry, FdKind};
use super::types::rights;
use super::types::{
    FDSTAT_SIZE, Filestat, PREOPENTYPE_DIR, PRESTAT_SIZE, fdflags, filetype, fstflags, whence,
};
use super::{WasiCtx, sys};
use std::os::fd::BorrowedFd;

type R = Result<(), Errno>;

/// The WASI file type of a host `stat` mode.
pub(super) fn filetype_of_mode(mode: libc::mode_t) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFREG => filetype::REGULAR_FILE,
        libc::S_IFDIR => filetype::DIRECTORY,
        libc::S_IFCHR => filetype::CHARACTER_DEVICE,
        libc::S_IFBLK => filetype::BLOCK_DEVICE,
        libc::S_IFLNK => filetype::SYMBOLIC_LINK,
        libc::S_IFSOCK => filetype::SOCKET_STREAM,
        _ => filetype::UNKNOWN,
    }
}

fn ns(sec: i64, nsec: i64) -> u64 {
    (sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(nsec as u64)
}

/// A host `stat` as a WASI `filestat`.
pub(super) fn filestat_of(st: &libc::stat) -> Filestat {
    Filestat {
        dev: st.st_dev,
        ino: st.st_ino,
        filetype: filetype_of_mode(st.st_mode),
        // `nlink_t` is u64 on x86-64 but u32 on aarch64.
        #[allow(clippy::useless_conversion)]
        nlink: u64::from(st.st_nlink),
        size: st.st_size as u64,
        atim: ns(st.st_atime, st.st_atime_nsec),
        mtim: ns(st.st_mtime, st.st_mtime_nsec),
        ctim: ns(st.st_ctime, st.st_ctime_nsec),
    }
}

/// Decodes the `fstflags` of a set-times call into what `utimensat` takes.
pub(super) fn times_of(
    atim: u64,
    mtim: u64,
    flags: u32,
) -> Result<(sys::TimeSpec, sys::TimeSpec), Errno> {
    let f = flags as u16;
    if flags > 0xf
        || (f & fstflags::ATIM != 0 && f & fstflags::ATIM_NOW != 0)
        || (f & fstflags::MTIM != 0 && f & fstflags::MTIM_NOW != 0)
    {
        return Err(Errno::INVAL);
    }
    let a = if f & fstflags::ATIM_NOW != 0 {
        Some(None)
    } else if f & fstflags::ATIM != 0 {
        Some(Some(atim))
    } else {
        None
    };
    let m = if f & fstflags::MTIM_NOW != 0 {
        Some(None)
    } else if f & fstflags::MTIM != 0 {
        Some(Some(mtim))
    } else {
        None
    };
    Ok((a, m))
}

fn dt_to_filetype(dt: u8) -> Option<u8> {
    Some(match dt {
        libc::DT_REG => filetype::REGULAR_FILE,
        libc::DT_DIR => filetype::DIRECTORY,
        libc::DT_CHR => filetype::CHARACTER_DEVICE,
        libc::DT_BLK => filetype::BLOCK_DEVICE,
        libc::DT_LNK => filetype::SYMBOLIC_LINK,
        libc::DT_SOCK => filetype::SOCKET_STREAM,
        libc::DT_FIFO => filetype::UNKNOWN,
        _ => return None,
    })
}

/// Encodes directory entries `(cookie of the next entry, inode, file
/// type, name)` for `fd_readdir`, cut at `cap` bytes (the last record may
/// be cut short: wasi-libc then retries from the last whole entry's cookie
/// with a larger buffer).
pub(super) fn encode_dirents(entries: &[(u64, u64, u8, Vec<u8>)], cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (next, ino, ft, name) in entries {
        if out.len() >= cap {
            break;
        }
        out.extend_from_slice(&next.to_le_bytes());
        out.extend_from_slice(&ino.to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.push(*ft);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(name);
    }
    out.truncate(cap);
    out
}

impl WasiCtx {
    /// The errors a read of `fd` gives before any I/O: its kind, the
    /// access mode of a file, then the `FD_READ` right.
    fn may_read(&self, fd: u32) -> Result<(&FdEntry, BorrowedFd<'_>), Errno> {
        let (entry, h) = self.get(fd)?;
        match entry.kind {
            FdKind::File if !entry.read => return Err(Errno::BADF),
            FdKind::Dir | FdKind::PreopenDir => return Err(Errno::ISDIR),
            FdKind::TcpListener { .. } | FdKind::BoundListener { .. } => {
                return Err(Errno::NOTCONN);
            }
            _ => {}
        }
        need(entry, rights::FD_READ)?;
        Ok((entry, h))
    }

    /// The errors a write to `fd` gives before any I/O (see
    /// [`may_read`](Self::may_read)).
    fn may_write(&self, fd: u32) -> Result<(&FdEntry, BorrowedFd<'_>), Errno> {
        let (entry, h) = self.get(fd)?;
        match entry.kind {
            // As write(2) answers for a read-only file or a directory.
            FdKind::File if !entry.write => return Err(Errno::BADF),
            FdKind::Dir | FdKind::PreopenDir => return Err(Errno::BADF),
            FdKind::TcpListener { .. } | FdKind::BoundListener { .. } => {
                return Err(Errno::NOTCONN);
            }
            _ => {}
        }
        need(entry, rights::FD_WRITE)?;
        Ok((entry, h))
    }

    /// Reads from a stream or from a file at its position.
    fn read_into(&mut self, fd: u32, buf: &mut [u8]) -> Result<usize, Errno> {
        self.may_read(fd)?;
        self.take_reset(fd)?;
        let (entry, h) = self.may_read(fd)?;
        let n = match entry.kind {
            FdKind::File => sys::pread(h, buf, entry.position)?,
            FdKind::Stdio(_) | FdKind::TcpStream { .. } | FdKind::Socket { .. } => {
                sys::read(h, buf)?
            }
            FdKind::Dir
            | FdKind::PreopenDir
            | FdKind::TcpListener { .. }
            | FdKind::BoundListener { .. } => {
                return Err(Errno::BADF);
            }
        };
        if let Some(e) = self.state.fds.get_mut(&fd)
            && e.kind == FdKind::File
        {
            e.position += n as u64;
        }
        Ok(n)
    }

    /// Writes to a stream, or to a file at its position (at its end with
    /// `APPEND`).
    fn write_from(&mut self, fd: u32, data: &[u8]) -> Result<usize, Errno> {
        self.may_write(fd)?;
        self.take_reset(fd)?;
        let (entry, h) = self.may_write(fd)?;
        let (n, new_pos) = match entry.kind {
            FdKind::File => {
                if entry.fdflags & fdflags::APPEND != 0 {
                    let n = sys::write(h, data)?;
                    (n, Some(sys::lseek(h, 0, libc::SEEK_CUR)?))
                } else {
                    let n = sys::pwrite(h, data, entry.position)?;
                    (n, Some(entry.position + n as u64))
                }
            }
            FdKind::TcpStream { .. } | FdKind::Socket { .. } => (sys::send(h, data)?, None),
            FdKind::Stdio(n) => {
                let written = sys::write(h, data)?;
                if n == 2 {
                    // What the tools need to start their messages on a
                    // fresh line (see `stderr_line`).
                    super::stderr_line::note_stderr_write(&data[..written.min(data.len())]);
                }
                (written, None)
            }
            FdKind::Dir
            | FdKind::PreopenDir
            | FdKind::TcpListener { .. }
            | FdKind::BoundListener { .. } => {
                return Err(Errno::BADF);
            }
        };
        if let (Some(p), Some(e)) = (new_pos, self.state.fds.get_mut(&fd)) {
            e.position = p;
        }
        Ok(n)
    }

    pub(super) fn fd_read(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        out: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out, 4)?;
        self.may_read(fd)?;
        self.wait_ready(fd, false)?;
        let mut buf = vec![0u8; iovecs_total(&iovs)];
        let got = self.read_into(fd, &mut buf)?;
        m.scatter(&iovs, &buf[..got])?;
        m.write_u32(out, got as u32)
    }

    pub(super) fn fd_write(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        out: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out, 4)?;
        let data = m.gather(&iovs)?;
        let put = self.write_from(fd, &data)?;
        m.write_u32(out, put as u32)
    }

    /// The host descriptor of a file for a call that needs `needed`
    /// rights: `ISDIR`/`SPIPE` for other kinds, then `NOTCAPABLE` when a
    /// right is missing. A call the handle's access mode cannot make (a
    /// write-like call on a file opened read-only) is left to the kernel,
    /// which refuses it as POSIX says, whatever the rights.
    fn positional(&self, fd: u32, needed: u64) -> Result<BorrowedFd<'_>, Errno> {
        let (entry, h) = self.get(fd)?;
        match entry.kind {
            FdKind::File => {}
            FdKind::Dir | FdKind::PreopenDir => return Err(Errno::ISDIR),
            _ => return Err(Errno::SPIPE),
        }
        let writes = rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE;
        let mode_allows =
            (needed & rights::FD_READ == 0 || entry.read) && (needed & writes == 0 || entry.write);
        if mode_allows {
            need(entry, needed)?;
        }
        Ok(h)
    }

    pub(super) fn fd_pread(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        offset: u64,
        out: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out, 4)?;
        let h = self.positional(fd, rights::FD_READ | rights::FD_SEEK)?;
        let mut buf = vec![0u8; iovecs_total(&iovs)];
        let got = sys::pread(h, &mut buf, offset)?;
        m.scatter(&iovs, &buf[..got])?;
        m.write_u32(out, got as u32)
    }

    pub(super) fn fd_pwrite(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        offset: u64,
        out: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out, 4)?;
        let h = self.positional(fd, rights::FD_WRITE | rights::FD_SEEK)?;
        let data = m.gather(&iovs)?;
        let put = sys::pwrite(h, &data, offset)?;
        m.write_u32(out, put as u32)
    }

    pub(super) fn fd_seek(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        offset: i64,
        wh: u32,
        out: u32,
    ) -> R {
        m.check(out, 8)?;
        let (entry, h) = self.get(fd)?;
        if matches!(entry.kind, FdKind::File | FdKind::Stdio(_)) {
            // Reading the position back is `fd_tell`'s right.
            let tell_only = offset == 0 && wh == whence::CUR;
            if !(tell_only && need(entry, rights::FD_TELL).is_ok()) {
                need(entry, rights::FD_SEEK)?;
            }
        }
        let new = match entry.kind {
            FdKind::File => {
                let base = match wh {
                    whence::SET => 0,
                    whence::CUR => entry.position,
                    whence::END => sys::fstat(h)?.st_size as u64,
                    _ => return Err(Errno::INVAL),
                };
                let new = (base as i64).checked_add(offset).ok_or(Errno::OVERFLOW)?;
                if new < 0 {
                    return Err(Errno::INVAL);
                }
                new as u64
            }
            FdKind::Stdio(_) => {
                let w = match wh {
                    whence::SET => libc::SEEK_SET,
                    whence::CUR => libc::SEEK_CUR,
                    whence::END => libc::SEEK_END,
                    _ => return Err(Errno::INVAL),
                };
                sys::lseek(h, offset, w)?
            }
            FdKind::Dir | FdKind::PreopenDir => return Err(Errno::BADF),
            _ => return Err(Errno::SPIPE),
        };
        if let Some(e) = self.state.fds.get_mut(&fd)
            && e.kind == FdKind::File
        {
            e.position = new;
        }
        m.write_u64(out, new)
    }

    pub(super) fn fd_tell(&mut self, m: &mut GuestMem<'_>, fd: u32, out: u32) -> R {
        let (entry, h) = self.get(fd)?;
        if matches!(entry.kind, FdKind::File | FdKind::Stdio(_)) {
            need(entry, rights::FD_TELL)?;
        }
        let pos = match entry.kind {
            FdKind::File => entry.position,
            FdKind::Stdio(_) => sys::lseek(h, 0, libc::SEEK_CUR)?,
            FdKind::Dir | FdKind::PreopenDir => return Err(Errno::BADF),
            _ => return Err(Errno::SPIPE),
        };
        m.write_u64(out, pos)
    }

    pub(super) fn fd_close(&mut self, fd: u32) -> R {
        self.get(fd)?;
        self.state.fds.remove(&fd);
        // Dropping an owned handle closes it; stdio handles are only
        // forgotten.
        self.handles.remove(&fd);
        self.release(fd);
        Ok(())
    }

    pub(super) fn fd_sync(&mut self, fd: u32, data_only: bool) -> R {
        let (entry, h) = self.get(fd)?;
        need(
            entry,
            if data_only {
                rights::FD_DATASYNC
            } else {
                rights::FD_SYNC
            },
        )?;
        sys::fsync(h, data_only)?;
        Ok(())
    }

    pub(super) fn fd_advise(&mut self, fd: u32, offset: u64, len: u64, advice: u32) -> R {
        let advice = match advice {
            0 => libc::POSIX_FADV_NORMAL,
            1 => libc::POSIX_FADV_SEQUENTIAL,
            2 => libc::POSIX_FADV_RANDOM,
            3 => libc::POSIX_FADV_WILLNEED,
            4 => libc::POSIX_FADV_DONTNEED,
            5 => libc::POSIX_FADV_NOREUSE,
            _ => return Err(Errno::INVAL),
        };
        let h = self.positional(fd, rights::FD_ADVISE)?;
        let off = i64::try_from(offset).map_err(|_| Errno::INVAL)?;
        let len = i64::try_from(len).map_err(|_| Errno::INVAL)?;
        sys::fadvise(h, off, len, advice)?;
        Ok(())
    }

    pub(super) fn fd_allocate(&mut self, fd: u32, offset: u64, len: u64) -> R {
        let h = self.positional(fd, rights::FD_ALLOCATE)?;
        let off = i64::try_from(offset).map_err(|_| Errno::INVAL)?;
        let len = i64::try_from(len).map_err(|_| Errno::INVAL)?;
        sys::fallocate(h, off, len)?;
        Ok(())
    }

    pub(super) fn fd_fdstat_get(&mut self, m: &mut GuestMem<'_>, fd: u32, out: u32) -> R {
        m.check(out, FDSTAT_SIZE)?;
        let (entry, h) = self.get(fd)?;
        let ft = match entry.kind {
            FdKind::Dir | FdKind::PreopenDir => filetype::DIRECTORY,
            FdKind::Socket {
                ty: crate::state::SockType::Dgram,
                ..
            } => filetype::SOCKET_DGRAM,
            FdKind::TcpListener { .. }
            | FdKind::TcpStream { .. }
            | FdKind::Socket { .. }
            | FdKind::BoundListener { .. } => filetype::SOCKET_STREAM,
            FdKind::File | FdKind::Stdio(_) => filetype_of_mode(sys::fstat(h)?.st_mode),
        };
        let mut rec = [0u8; FDSTAT_SIZE as usize];
        rec[0] = ft;
        rec[2..4].copy_from_slice(&entry.fdflags.to_le_bytes());
        rec[8..16].copy_from_slice(&entry.rights_base.to_le_bytes());
        rec[16..24].copy_from_slice(&entry.rights_inheriting.to_le_bytes());
        m.write_bytes(out, &rec)
    }

    pub(super) fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> R {
        let flags = u16::try_from(flags).map_err(|_| Errno::INVAL)?;
        if flags & !fdflags::ALL != 0 {
            return Err(Errno::INVAL);
        }
        let (entry, h) = self.get(fd)?;
        need(entry, rights::FD_FDSTAT_SET_FLAGS)?;
        // Only APPEND and NONBLOCK can change after opening (as with
        // fcntl(F_SETFL) on Linux); the sync flags must stay as opened.
        let fixed = fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC;
        if flags & fixed != entry.fdflags & fixed {
            return Err(Errno::NOTSUP);
        }
        let mut fl = sys::get_fl(h)?;
        fl &= !(libc::O_APPEND | libc::O_NONBLOCK);
        if flags & fdflags::APPEND != 0 {
            fl |= libc::O_APPEND;
        }
        if flags & fdflags::NONBLOCK != 0 {
            fl |= libc::O_NONBLOCK;
        }
        sys::set_fl(h, fl)?;
        if let Some(e) = self.state.fds.get_mut(&fd) {
            e.fdflags = flags;
        }
        Ok(())
    }

    pub(super) fn fd_fdstat_set_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> R {
        self.get(fd)?;
        let e = self.state.fds.get_mut(&fd).ok_or(Errno::BADF)?;
        // Rights can only be dropped, never gained.
        if base & !e.rights_base != 0 || inheriting & !e.rights_inheriting != 0 {
            return Err(Errno::NOTCAPABLE);
        }
        e.rights_base = base;
        e.rights_inheriting = inheriting;
        Ok(())
    }

    pub(super) fn fd_filestat_get(&mut self, m: &mut GuestMem<'_>, fd: u32, out: u32) -> R {
        m.check(out, Filestat::default().encode().len() as u32)?;
        let (entry, h) = self.get(fd)?;
        need(entry, rights::FD_FILESTAT_GET)?;
        let st = sys::fstat(h)?;
        let mut fs = filestat_of(&st);
        if let FdKind::Socket {
            ty: crate::state::SockType::Dgram,
            ..
        } = entry.kind
        {
            fs.filetype = filetype::SOCKET_DGRAM;
        } else if entry.kind.is_socket() {
            // Also for a restored connection's stand-in (a Unix socket).
            fs.filetype = filetype::SOCKET_STREAM;
        }
        m.write_bytes(out, &fs.encode())
    }

    pub(super) fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> R {
        let h = self.positional(fd, rights::FD_FILESTAT_SET_SIZE)?;
        sys::ftruncate(h, size)?;
        Ok(())
    }

    pub(super) fn fd_filestat_set_times(&mut self, fd: u32, atim: u64, mtim: u64, flags: u32) -> R {
        let (a, mt) = times_of(atim, mtim, flags)?;
        let (entry, h) = self.get(fd)?;
        need(entry, rights::FD_FILESTAT_SET_TIMES)?;
        sys::utimensat(h, None, a, mt)?;
        Ok(())
    }

    pub(super) fn fd_readdir(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        out: u32,
    ) -> R {
        m.check(buf, buf_len)?;
        m.check(out, 4)?;
        let (entry, h) = self.get(fd)?;
        if !matches!(entry.kind, FdKind::Dir | FdKind::PreopenDir) {
            return Err(Errno::NOTDIR);
        }
        need(entry, rights::FD_READDIR)?;
        let mut list = Vec::new();
        for e in sys::read_dir(h, cookie, buf_len as usize)? {
            let ft = match dt_to_filetype(e.d_type) {
                Some(ft) => ft,
                None => std::str::from_utf8(&e.name)
                    .ok()
                    .filter(|n| *n != "..")
                    .and_then(|n| sys::fstatat_nofollow(h, n).ok())
                    .map(|s| filetype_of_mode(s.st_mode))
                    .unwrap_or(filetype::UNKNOWN),
            };
            list.push((e.next, e.ino, ft, e.name));
        }
        let bytes = encode_dirents(&list, buf_len as usize);
        m.write_bytes(buf, &bytes)?;
        m.write_u32(out, bytes.len() as u32)
    }

    pub(super) fn fd_renumber(&mut self, from: u32, to: u32) -> R {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        let entry = self.state.fds.remove(&from).ok_or(Errno::BADF)?;
        let handle = self.handles.remove(&from).ok_or(Errno::BADF)?;
        // Replacing `to` drops (closes) its old handle; `from` is free now.
        self.insert(to, entry, handle);
        self.release(from);
        Ok(())
    }

    pub(super) fn fd_prestat_get(&mut self, m: &mut GuestMem<'_>, fd: u32, out: u32) -> R {
        let name_len = self.preopen_name(fd)?.len() as u32;
        let mut rec = [0u8; PRESTAT_SIZE as usize];
        rec[0] = PREOPENTYPE_DIR;
        rec[4..8].copy_from_slice(&name_len.to_le_bytes());
        m.write_bytes(out, &rec)
    }

    pub(super) fn fd_prestat_dir_name(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        buf: u32,
        len: u32,
    ) -> R {
        let name = self.preopen_name(fd)?.as_bytes().to_vec();
        if (len as usize) < name.len() {
            return Err(Errno::NAMETOOLONG);
        }
        m.write_bytes(buf, &name)
    }

    fn preopen_name(&self, fd: u32) -> Result<&str, Errno> {
        let (entry, _) = self.get(fd)?;
        match (&entry.kind, entry.preopen) {
            (FdKind::PreopenDir, Some(i)) => self
                .state
                .preopens
                .get(i as usize)
                .map(|p| p.guest.as_str())
                .ok_or(Errno::BADF),
            _ => Err(Errno::BADF),
        }
    }
}
