//! TCP repair in process, on loopback: a connection's server end is read
//! in repair mode, dropped silently, and built again in a new socket; the
//! client keeps its end and loses no byte in either direction. Needs root
//! (CAP_NET_ADMIN): skipped otherwise, with the reason.

use crate::state::SavedConnection;
use crate::tcp_repair::{RepairError, dump, park, rebuild, validate};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A connected pair on loopback: (client, server end as the guest's).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (c, s)
}

/// Dumps `s`; `None` (test skipped) without the privilege.
fn dump_or_skip(s: &TcpStream) -> Option<SavedConnection> {
    let local = s.local_addr().unwrap();
    let peer = s.peer_addr().unwrap();
    match dump(s.as_fd(), 4, local, peer) {
        Ok(c) => Some(c),
        Err(RepairError::Sys { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "TCP repair needs CAP_NET_ADMIN (CI=true: must run)"
            );
            eprintln!("skipped: TCP repair needs CAP_NET_ADMIN");
            None
        }
        Err(e) => panic!("dump: {e}"),
    }
}

#[test]
fn a_connection_is_rebuilt_with_its_queues() {
    let (mut c, mut s) = pair();
    c.write_all(b"to the guest, unread").unwrap();
    s.write_all(b"to the client, unread").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let Some(saved) = dump_or_skip(&s) else {
        return;
    };
    assert_eq!(saved.recv_queue, b"to the guest, unread");
    validate(&saved, saved.local, saved.peer).unwrap();
    park(s.as_fd()).unwrap();
    drop(s);
    // The listener is back on its port first, as a restore binds it.
    let _l = TcpListener::bind(saved.local).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let fd: OwnedFd = rebuild(&saved, false).unwrap();
    // It sends with (about) the MSS it had, not the 536-byte default.
    let mss = crate::sys::tcp_repair::info(fd.as_fd())
        .unwrap()
        .tcpi_snd_mss;
    assert!(mss > 1000, "restored MSS {mss}, saved {}", saved.mss);
    let mut s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0u8; 20];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the guest, unread");
    s.write_all(b"; and more").unwrap();
    c.write_all(b"after").unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after");
    let mut got = vec![0u8; 31];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], b"to the client, unread; and more");
}
