//! WAMR's socket extension (`sock_ext.rs`) at the level of [`WasiCtx`]:
//! every bad pointer, length, family or type is an errno; nothing reaches
//! the network without a grant; the saved state of the new kinds is
//! restored (or refused) by the grants of the restore.

use super::*;
use crate::sock_ext::{ADDR_SIZE, encode_addr, family, socktype};
use std::net::{SocketAddr, TcpListener};

/// `t` with network grants `net`.
fn with_net(net: NetGrants) -> T {
    let mut t = setup();
    t.ctx.net = net;
    t
}

fn pattern(s: &str) -> AddrPattern {
    s.parse().unwrap()
}

/// Opens a socket, `fd` at `OUT`.
fn open(t: &mut T, af: u32, ty: u32) -> Result<u32, Errno> {
    match t.call(WasiFunc::SockOpen, &[0, af as u64, ty as u64, OUT as u64]) {
        Errno::SUCCESS => Ok(t.u32_at(OUT)),
        e => Err(e),
    }
}

/// Writes `addr` as a `__wasi_addr_t` at `BUF`.
fn put_addr(t: &mut T, addr: SocketAddr) -> u64 {
    t.put(BUF, &encode_addr(addr));
    BUF as u64
}

#[test]
fn sock_open_checks_family_type_and_pointer() {
    let mut t = setup();
    assert_eq!(
        open(&mut t, family::INET_UNSPEC, socktype::STREAM),
        Err(Errno::AFNOSUPPORT)
    );
    assert_eq!(open(&mut t, 7, socktype::STREAM), Err(Errno::AFNOSUPPORT));
    assert_eq!(open(&mut t, family::INET4, 5), Err(Errno::INVAL));
    assert_eq!(
        open(&mut t, family::INET4, socktype::ANY),
        Err(Errno::INVAL)
    );
    let args = [
        0,
        family::INET4 as u64,
        socktype::STREAM as u64,
        MEM as u64 - 2,
    ];
    assert_eq!(t.call(WasiFunc::SockOpen, &args), Errno::FAULT);
    // None of these opened anything.
    assert_eq!(t.ctx.state().fds.len(), 4);
    let fd = open(&mut t, family::INET6, socktype::DGRAM).unwrap();
    assert!(matches!(
        t.ctx.state().fds[&fd].kind,
        FdKind::Socket {
            family: SockFamily::Inet6,
            ty: SockType::Dgram,
            local: None,
            peer: None
        }
    ));
    assert_eq!(t.call(WasiFunc::SockClose, &[fd as u64]), Errno::SUCCESS);
    assert_eq!(t.call(WasiFunc::SockClose, &[fd as u64]), Errno::BADF);
}

#[test]
fn bad_addresses_are_errnos() {
    let mut t = with_net(NetGrants {
        connect: vec![pattern("0.0.0.0/0:*")],
        bind: vec![pattern("0.0.0.0/0:*")],
        resolve: vec![],
    });
    let fd = open(&mut t, family::INET4, socktype::STREAM).unwrap() as u64;
    for f in [WasiFunc::SockBind, WasiFunc::SockConnect] {
        assert_eq!(
            t.call(f, &[fd, MEM as u64 - ADDR_SIZE as u64 + 1]),
            Errno::FAULT
        );
        assert_eq!(t.call(f, &[fd, u32::MAX as u64]), Errno::FAULT);
        let mut bad = [0u8; ADDR_SIZE as usize];
        bad[0] = 9;
        t.put(BUF, &bad);
        assert_eq!(t.call(f, &[fd, BUF as u64]), Errno::AFNOSUPPORT);
    }
    // Not a socket.
    let a = put_addr(&mut t, "127.0.0.1:1".parse().unwrap());
    assert_eq!(
        t.call(WasiFunc::SockConnect, &[ROOT_FD as u64, a]),
        Errno::NOTSOCK
    );
    assert_eq!(t.call(WasiFunc::SockListen, &[1, 5]), Errno::NOTSOCK);
    assert_eq!(
        t.call(WasiFunc::SockSetReuseAddr, &[ROOT_FD as u64, 1]),
        Errno::NOTSOCK
    );
    // Output pointers out of memory.
    assert_eq!(
        t.call(WasiFunc::SockAddrLocal, &[fd, MEM as u64 - 4]),
        Errno::FAULT
    );
    assert_eq!(
        t.call(WasiFunc::SockGetRecvBufSize, &[fd, MEM as u64 - 2]),
        Errno::FAULT
    );
    assert_eq!(
        t.call(WasiFunc::SockGetRecvTimeout, &[fd, MEM as u64 - 4]),
        Errno::FAULT
    );
    // A TTL does not fit in a byte.
    assert_eq!(t.call(WasiFunc::SockSetIpTtl, &[fd, 256]), Errno::INVAL);
    assert_eq!(
        t.call(WasiFunc::SockSetLinger, &[fd, 1, u32::MAX as u64]),
        Errno::INVAL
    );
}

#[test]
fn connect_and_bind_without_a_grant_are_eacces_and_do_nothing() {
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let target = host.local_addr().unwrap();
    // Grants for other addresses do not help.
    let mut t = with_net(NetGrants {
        connect: vec![pattern(&format!(
            "127.0.0.1:{}",
            target.port().wrapping_add(1)
        ))],
        bind: vec![pattern("10.0.0.0/8:*")],
        resolve: vec!["example.org".into()],
    });
    let fd = open(&mut t, family::INET4, socktype::STREAM).unwrap();
    let a = put_addr(&mut t, target);
    assert_eq!(t.call(WasiFunc::SockConnect, &[fd as u64, a]), Errno::ACCES);
    assert!(matches!(host.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    assert!(matches!(
        t.ctx.state().fds[&fd].kind,
        FdKind::Socket {
            local: None,
            peer: None,
            ..
        }
    ));
    let a = put_addr(&mut t, "127.0.0.1:0".parse().unwrap());
    assert_eq!(t.call(WasiFunc::SockBind, &[fd as u64, a]), Errno::ACCES);
    // Listening on an unbound socket would bind the wildcard address.
    assert_eq!(t.call(WasiFunc::SockListen, &[fd as u64, 1]), Errno::ACCES);
    assert!(matches!(
        t.ctx.state().fds[&fd].kind,
        FdKind::Socket { local: None, .. }
    ));
    // A datagram to an address not granted.
    let u = open(&mut t, family::INET4, socktype::DGRAM).unwrap() as u64;
    t.put(IOVS, &[0, 0x30, 0, 0, 4, 0, 0, 0]);
    let args = [u, IOVS as u64, 1, 0, a, OUT as u64];
    assert_eq!(t.call(WasiFunc::SockSendTo, &args), Errno::ACCES);
    // A name not granted; a numeric address needs no grant.
    t.put(PATH, b"localhost\0");
    t.put(PATH + 64, b"80\0");
    t.put(PATH + 128, &[0; 12]);
    let resolve = [
        PATH as u64,
        PATH as u64 + 64,
        PATH as u64 + 128,
        BUF as u64,
        4,
        OUT as u64,
    ];
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &resolve), Errno::ACCES);
    t.put(PATH, b"127.0.0.1\0");
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &resolve), Errno::SUCCESS);
    assert_eq!(t.u32_at(OUT), 2, "stream and datagram entries, no hints");
    assert_eq!(
        &t.mem[BUF as usize..BUF as usize + 24],
        &encode_addr("127.0.0.1:80".parse().unwrap())
    );
}

#[test]
fn resolve_rejects_unterminated_and_bad_strings() {
    let mut t = with_net(NetGrants {
        resolve: vec!["*".into()],
        ..Default::default()
    });
    t.put(PATH + 64, b"\0");
    t.put(PATH + 128, &[0; 12]);
    // The host runs into the end of memory without a NUL.
    let end = MEM as u32 - 3;
    t.put(end, b"abc");
    let args = |host: u32| {
        [
            host as u64,
            PATH as u64 + 64,
            PATH as u64 + 128,
            BUF as u64,
            1,
            OUT as u64,
        ]
    };
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &args(end)), Errno::FAULT);
    t.put(BUF + 512, &[b'a'; 400]);
    assert_eq!(
        t.call(WasiFunc::SockAddrResolve, &args(BUF + 512)),
        Errno::NAMETOOLONG
    );
    t.put(PATH, b"127.0.0.1\0");
    t.put(PATH + 64, b"http\0");
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &args(PATH)), Errno::INVAL);
    t.put(PATH + 64, b"\0");
    // Hints: an unknown family.
    t.put(PATH + 128, &[1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &args(PATH)), Errno::INVAL);
    // A count whose bytes overflow.
    t.put(PATH + 128, &[0; 12]);
    let mut a = args(PATH);
    a[4] = u32::MAX as u64;
    assert_eq!(t.call(WasiFunc::SockAddrResolve, &a), Errno::FAULT);
    // Room for one entry of two: the count says two.
    assert_eq!(
        t.call(WasiFunc::SockAddrResolve, &args(PATH)),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), 2);
}

#[test]
fn granted_bind_listen_accept_and_the_saved_state() {
    let mut t = with_net(NetGrants {
        bind: vec![pattern("127.0.0.1:*")],
        ..Default::default()
    });
    let fd = open(&mut t, family::INET4, socktype::STREAM).unwrap();
    let a = put_addr(&mut t, "127.0.0.1:0".parse().unwrap());
    assert_eq!(t.call(WasiFunc::SockBind, &[fd as u64, a]), Errno::SUCCESS);
    assert_eq!(
        t.call(WasiFunc::SockBind, &[fd as u64, a]),
        Errno::INVAL,
        "bound already"
    );
    assert_eq!(
        t.call(WasiFunc::SockListen, &[fd as u64, 8]),
        Errno::SUCCESS
    );
    let FdKind::BoundListener { addr, backlog: 8 } = t.ctx.state().fds[&fd].kind else {
        panic!("not a bound listener: {:?}", t.ctx.state().fds[&fd].kind);
    };
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
    assert_eq!(
        t.call(WasiFunc::SockAddrLocal, &[fd as u64, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(&t.mem[OUT as usize..OUT as usize + 24], &encode_addr(addr));
    assert_eq!(
        t.call(WasiFunc::SockAddrRemote, &[fd as u64, OUT as u64]),
        Errno::NOTCONN
    );

    let c = std::net::TcpStream::connect(addr).unwrap();
    assert_eq!(
        t.call(WasiFunc::SockAccept, &[fd as u64, 0, OUT as u64]),
        Errno::SUCCESS
    );
    let conn = t.u32_at(OUT);
    assert!(matches!(
        t.ctx.state().fds[&conn].kind,
        FdKind::TcpStream { .. }
    ));

    // Restore: the listener needs a bind grant; the connection needs none
    // and, not repaired (its peer is gone here; `tests/tcp_repair.rs`
    // repairs one), is seen reset once, then at end of file.
    let saved = t.ctx.save_state(RunAfter::Continues).unwrap();
    let preopens = saved.preopens.clone();
    let grants = |net: NetGrants| Grants {
        preopens: preopens.clone(),
        tcp_listeners: Vec::new(),
        net,
        tcp_repair: crate::RepairMode::Off,
    };
    // The checkpointed process ends: its sockets close, the port is free
    // (the client closes first, so no socket on the listener's port is
    // left in FIN_WAIT; one would keep the port, see docs/sockets.md).
    drop(c);
    for f in [fd, conn] {
        assert_eq!(t.call(WasiFunc::FdClose, &[f as u64]), Errno::SUCCESS);
    }
    let e = WasiCtx::restore(saved.clone(), &grants(NetGrants::default()), false).unwrap_err();
    let WasiRestoreError::NotGranted(ng) = e else {
        panic!("{e}");
    };
    assert_eq!(ng.missing, [Need::Bind { addr }]);
    assert!(
        ng.to_string().contains(&format!("--allow-bind {addr}")),
        "{ng}"
    );
    let net = NetGrants {
        bind: vec![pattern(&addr.to_string())],
        ..Default::default()
    };
    let mut ctx = WasiCtx::restore(saved, &grants(net), false).unwrap();
    let mut mem = vec![0u8; MEM];
    let mut r = [0u64; 1];
    mem[IOVS as usize..IOVS as usize + 8].copy_from_slice(&[0, 0x30, 0, 0, 16, 0, 0, 0]);
    let recv = [conn as u64, IOVS as u64, 1, 0, OUT as u64, OUT as u64 + 8];
    ctx.call(WasiFunc::SockRecv, &mut mem, &recv, &mut r)
        .unwrap();
    assert_eq!(Errno(r[0] as u16), Errno::CONNRESET);
    ctx.call(WasiFunc::SockRecv, &mut mem, &recv, &mut r)
        .unwrap();
    assert_eq!(Errno(r[0] as u16), Errno::SUCCESS);
    assert_eq!(
        u32::from_le_bytes(mem[OUT as usize..OUT as usize + 4].try_into().unwrap()),
        0
    );
    // The listener is listening again at its address.
    let _again = std::net::TcpStream::connect(addr).unwrap();
    ctx.call(
        WasiFunc::SockAccept,
        &mut mem,
        &[fd as u64, 0, OUT as u64],
        &mut r,
    )
    .unwrap();
    assert_eq!(Errno(r[0] as u16), Errno::SUCCESS);
}
