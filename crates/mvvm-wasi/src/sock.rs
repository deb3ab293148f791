//! The `sock_*` functions of preview1, on TCP listeners preopened with
//! `--tcplisten` and the connections accepted from them, and on the
//! sockets the guest opens through WAMR's extension (`sock_ext.rs`).

use super::errno::Errno;
use super::mem::{GuestMem, iovecs_total};
use super::rights::need;
use super::state::{ConnOrigin, FdEntry, FdKind};
use super::types::{RECV_PEEK, RECV_WAITALL, SHUT_RD, SHUT_WR, fdflags, rights};
use super::{Handle, WasiCtx, sys};
use std::os::fd::AsFd;

type R = Result<(), Errno>;

impl WasiCtx {
    /// The host socket of connection `fd`, for a call that needs `needed`.
    fn stream(&self, fd: u32, needed: u64) -> Result<std::os::fd::BorrowedFd<'_>, Errno> {
        let (entry, h) = self.get(fd)?;
        match entry.kind {
            // A socket of `sock_open` not connected yet: the kernel
            // answers (`NOTCONN` for TCP; UDP sends need a default peer).
            FdKind::TcpStream { .. } | FdKind::Socket { .. } => {
                need(entry, needed)?;
                Ok(h)
            }
            FdKind::TcpListener { .. } | FdKind::BoundListener { .. } => Err(Errno::NOTCONN),
            _ => Err(Errno::NOTSOCK),
        }
    }

    pub(super) fn sock_accept(&mut self, m: &mut GuestMem<'_>, fd: u32, flags: u32, out: u32) -> R {
        if flags & !(fdflags::NONBLOCK as u32) != 0 {
            return Err(Errno::INVAL);
        }
        m.check(out, 4)?;
        let (entry, _) = self.get(fd)?;
        if !entry.kind.is_listener() {
            return Err(if entry.kind.is_socket() {
                Errno::INVAL
            } else {
                Errno::NOTSOCK
            });
        }
        need(entry, rights::SOCK_ACCEPT)?;
        let inheriting = entry.rights_inheriting;
        let origin = match entry.kind {
            FdKind::TcpListener { addr } => ConnOrigin::Listener { addr },
            FdKind::BoundListener { addr, .. } => ConnOrigin::BoundListener { addr },
            _ => return Err(Errno::INVAL),
        };
        let nonblock = flags & fdflags::NONBLOCK as u32 != 0;
        self.wait_ready(fd, false)?;
        let (_, h) = self.get(fd)?;
        let (conn, peer) = sys::accept(h, nonblock)?;
        let local = sys::local_addr(conn.as_fd())?;
        let new = self.next_fd();
        self.insert(
            new,
            FdEntry {
                kind: FdKind::TcpStream {
                    local,
                    peer,
                    origin,
                },
                preopen: None,
                path: String::new(),
                oflags: 0,
                lookup_flags: 0,
                read: true,
                write: true,
                rights_base: rights::SOCKET & inheriting,
                rights_inheriting: 0,
                fdflags: if nonblock { fdflags::NONBLOCK } else { 0 },
                position: 0,
                file_id: None,
            },
            Handle::Owned(conn),
        );
        m.write_u32(out, new)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sock_recv(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        ri_flags: u32,
        out_len: u32,
        out_flags: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out_len, 4)?;
        m.check(out_flags, 2)?;
        if ri_flags & !u32::from(RECV_PEEK | RECV_WAITALL) != 0 {
            return Err(Errno::INVAL);
        }
        let mut flags = 0;
        if ri_flags & u32::from(RECV_PEEK) != 0 {
            flags |= libc::MSG_PEEK;
        }
        if ri_flags & u32::from(RECV_WAITALL) != 0 {
            flags |= libc::MSG_WAITALL;
        }
        self.stream(fd, rights::FD_READ)?;
        self.take_reset(fd)?;
        self.wait_ready(fd, false)?;
        let h = self.stream(fd, rights::FD_READ)?;
        let mut buf = vec![0u8; iovecs_total(&iovs)];
        let got = sys::recv(h, &mut buf, flags)?;
        m.scatter(&iovs, &buf[..got])?;
        m.write_u32(out_len, got as u32)?;
        m.write_u16(out_flags, 0)
    }

    pub(super) fn sock_send(
        &mut self,
        m: &mut GuestMem<'_>,
        fd: u32,
        iovs: u32,
        n: u32,
        _si_flags: u32,
        out_len: u32,
    ) -> R {
        let iovs = m.iovecs(iovs, n)?;
        m.check(out_len, 4)?;
        let data = m.gather(&iovs)?;
        self.stream(fd, rights::FD_WRITE)?;
        self.take_reset(fd)?;
        let h = self.stream(fd, rights::FD_WRITE)?;
        let put = sys::send(h, &data)?;
        m.write_u32(out_len, put as u32)
    }

    pub(super) fn sock_shutdown(&mut self, fd: u32, how: u32) -> R {
        let how = match how as u8 {
            _ if how > 3 => return Err(Errno::INVAL),
            x if x == SHUT_RD => libc::SHUT_RD,
            x if x == SHUT_WR => libc::SHUT_WR,
            x if x == SHUT_RD | SHUT_WR => libc::SHUT_RDWR,
            _ => return Err(Errno::INVAL),
        };
        let h = self.stream(fd, rights::SOCK_SHUTDOWN)?;
        sys::shutdown(h, how)?;
        Ok(())
    }
}
