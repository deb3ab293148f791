//! TCP keepalive for the connections the tools migrate snapshots over
//! (`mvvm-checkpoint -o/-s`, `mvvm-restore -i/-e`): a peer whose machine
//! vanishes (no FIN, no RST) otherwise leaves the other side blocked in a
//! read forever. With keepalive the kernel probes an idle connection and
//! fails the blocked call (`ETIMEDOUT`) when the peer stops answering. A
//! peer that is alive but silent (a live migration waiting for its
//! program's stop) still answers the probes and is left alone.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Duration;

/// Turns keepalive on for `stream`: the first probe after `idle` without
/// traffic, then one every `interval`, and the connection fails after
/// `probes` unanswered ones. Durations are rounded up to whole seconds.
pub fn enable(
    stream: &TcpStream,
    idle: Duration,
    interval: Duration,
    probes: u32,
) -> io::Result<()> {
    let secs = |d: Duration| {
        let up = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        up.clamp(1, i32::MAX as u64) as libc::c_int
    };
    let fd = stream.as_fd();
    crate::sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1 as libc::c_int)?;
    crate::sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(idle))?;
    crate::sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(interval))?;
    let probes = probes.clamp(1, 127) as libc::c_int;
    crate::sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, probes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_options_reach_the_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let get = |level, name| -> libc::c_int {
            crate::sys::getsockopt(c.as_fd(), level, name).unwrap()
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        enable(&c, Duration::from_secs(30), Duration::from_millis(1500), 3).unwrap();
        assert_ne!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 30);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 2);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
    }
}
