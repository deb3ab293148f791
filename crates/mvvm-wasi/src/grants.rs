//! What the restoring side grants a guest, and the matching of a saved
//! state's needs against it.
//!
//! A snapshot is untrusted input: it may say which preopened directories
//! and listeners the guest had, by the names the guest saw them under, but
//! it never decides which host directory or address the guest gets. The
//! restoring command grants those ([`Grants`], from `-d`, `--dir` and
//! `--tcplisten`), and [`assign`] matches every need of the saved state to
//! one grant before anything is opened or run:
//!
//! - a preopen is matched by its guest path (`fd_prestat_dir_name`); the
//!   host directory may differ from the one at checkpoint time (a program
//!   moves to a machine where its data lives elsewhere). When the state
//!   has several preopens under one guest path, the k-th of them takes the
//!   k-th grant of that path;
//! - a listener is matched by its address, or failing that by its port (a
//!   listener bound to a given interface on one host keeps its port on
//!   another), and is bound again at the granted address.
//!
//! - a socket the guest bound itself (`sock_bind`, WAMR's socket
//!   extension) is bound again at its own address, which a bind grant
//!   ([`NetGrants::bind`]) must cover; a UDP socket's default peer must be
//!   covered by a connect grant ([`NetGrants::connect`]).
//!
//! The host paths recorded in the state are only informational: they are
//! never opened. Grants the state does not need are left unused.
//!
//! The network grants ([`NetGrants`]) also rule the running guest: every
//! `sock_connect`, `sock_bind`, `sock_listen`, `sock_send_to` and
//! `sock_addr_resolve` is checked against them (see `sock_ext.rs`).

use super::Preopen;
use super::state::{FdKind, SockType, WasiState};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The capabilities the restoring command gives the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host directories, each under the guest path it is granted for.
    pub preopens: Vec<Preopen>,
    /// Addresses the guest may listen on.
    pub tcp_listeners: Vec<SocketAddr>,
    /// Where the guest may connect, bind and which names it may resolve.
    pub net: NetGrants,
    /// Whether the guest's TCP connections are rebuilt in repair mode
    /// when the grants above cover them (`--no-tcp-repair` turns it off).
    pub tcp_repair: crate::RepairMode,
}

impl Grants {
    /// No capability at all: a snapshot that needs one is refused.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Grants `host` under the guest path `guest` (builder form, for
    /// embedders and tests).
    pub fn preopen(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Grants {
        self.preopens.push(Preopen {
            host: host.into(),
            guest: guest.into(),
        });
        self
    }

    /// Grants a listener at `addr` (builder form).
    pub fn listener(mut self, addr: SocketAddr) -> Grants {
        self.tcp_listeners.push(addr);
        self
    }

    /// Grants the network access `net` (builder form).
    pub fn net(mut self, net: NetGrants) -> Grants {
        self.net = net;
        self
    }
}

/// The network access the launching or restoring command grants to
/// sockets the guest opens itself (`sock_open`). Empty: no outbound
/// connection, no bind and no name lookup (a numeric address needs no
/// lookup). Never saved in a snapshot: a restore grants anew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetGrants {
    /// Destinations of `sock_connect` and `sock_send_to` (`--allow-connect`).
    pub connect: Vec<AddrPattern>,
    /// Local addresses of `sock_bind`, and of `sock_listen` on a socket
    /// not bound yet, checked as the wildcard address with port 0
    /// (`--allow-bind`).
    pub bind: Vec<AddrPattern>,
    /// Host names `sock_addr_resolve` may look up (`--allow-resolve`):
    /// a name, `*.SUFFIX` for the names under a domain, or `*` for all.
    pub resolve: Vec<String>,
}

impl NetGrants {
    /// Whether the guest may connect (or send datagrams) to `addr`.
    pub fn may_connect(&self, addr: SocketAddr) -> bool {
        self.connect.iter().any(|p| p.matches(addr))
    }

    /// Whether the guest may bind to `addr`.
    pub fn may_bind(&self, addr: SocketAddr) -> bool {
        self.bind.iter().any(|p| p.matches(addr))
    }

    /// Whether the guest may look up host name `host` (case-insensitive;
    /// a trailing dot is ignored).
    pub fn may_resolve(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.resolve.iter().any(|g| {
            let g = g.trim_end_matches('.').to_ascii_lowercase();
            match g.strip_prefix("*.") {
                _ if g == "*" => true,
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => g == host,
            }
        })
    }
}

/// A set of socket addresses: a network (an address with a prefix
/// length, `/32` or `/128` when absent) and one port or any port.
///
/// Written `IP[/PREFIX]:PORT` or `IP[/PREFIX]:*`, with IPv6 addresses in
/// brackets: `127.0.0.1:8080`, `10.0.0.0/8:*`, `[::1]:443`,
/// `[::]/0:*`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is checked
/// as the IPv4 address it stands for, so that a dual-stack socket cannot
/// reach what the IPv4 patterns do not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPattern {
    /// The network address (bits past the prefix are ignored).
    pub ip: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
    /// The port, or `None` for any.
    pub port: Option<u16>,
}

/// An address pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not an address pattern (IP[/PREFIX]:PORT or IP[/PREFIX]:*, IPv6 in brackets): {why}"
)]
pub struct BadPattern {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub why: &'static str,
}

impl std::str::FromStr for AddrPattern {
    type Err = BadPattern;

    fn from_str(text: &str) -> Result<AddrPattern, BadPattern> {
        let bad = |why| BadPattern {
            text: text.to_owned(),
            why,
        };
        let (net, port) = text.rsplit_once(':').ok_or_else(|| bad("no `:PORT`"))?;
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
        };
        let (ip, prefix) = match net.split_once('/') {
            Some((ip, len)) => (ip, Some(len.parse::<u8>().map_err(|_| bad("bad prefix"))?)),
            None => (net, None),
        };
        let ip = match ip.strip_prefix('[') {
            Some(v6) => {
                let v6 = v6.strip_suffix(']').ok_or_else(|| bad("unclosed `[`"))?;
                IpAddr::V6(v6.parse().map_err(|_| bad("bad IPv6 address"))?)
            }
            None => IpAddr::V4(ip.parse().map_err(|_| bad("bad IPv4 address"))?),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad("prefix longer than the address"));
        }
        Ok(AddrPattern { ip, prefix, port })
    }
}

impl fmt::Display for AddrPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}/{}", self.prefix)?,
            IpAddr::V6(ip) => write!(f, "[{ip}]/{}", self.prefix)?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => write!(f, ":*"),
        }
    }
}

/// `ip` as an IPv4 address when it is one mapped into IPv6.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl AddrPattern {
    /// Whether `addr` is in the set.
    pub fn matches(&self, addr: SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != addr.port()) {
            return false;
        }
        match (canonical(self.ip), canonical(addr.ip())) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One capability a saved state needs and the command did not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A preopened directory, by the path the guest knows it under.
    Preopen {
        /// Its guest path.
        guest: String,
    },
    /// A TCP listener.
    Listener {
        /// The address it had at checkpoint time.
        addr: SocketAddr,
    },
    /// A socket the guest bound itself, to be bound again at its address.
    Bind {
        /// Its address.
        addr: SocketAddr,
    },
    /// A UDP socket's default peer, to be set again.
    Connect {
        /// The peer.
        addr: SocketAddr,
    },
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Preopen { guest } => write!(
                f,
                "the preopened directory `{guest}` (grant it with `-d {guest}` or `--dir HOST::{guest}`)"
            ),
            Need::Listener { addr } => write!(
                f,
                "a TCP listener on {addr} (grant it with `--tcplisten {addr}`, or another address with port {})",
                addr.port()
            ),
            Need::Bind { addr } => write!(
                f,
                "a socket bound by the guest at {addr} (grant it with `--allow-bind {}`)",
                pattern_of(*addr)
            ),
            Need::Connect { addr } => write!(
                f,
                "a UDP socket connected to {addr} (grant it with `--allow-connect {}`)",
                pattern_of(*addr)
            ),
        }
    }
}

/// `addr` written as a pattern that matches it alone.
fn pattern_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The saved state needs capabilities the restoring command did not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the snapshot needs {}", list(.missing))]
pub struct NotGranted {
    /// Every need without a grant, in the state's order.
    pub missing: Vec<Need>,
}

fn list(needs: &[Need]) -> String {
    let parts: Vec<String> = needs.iter().map(Need::to_string).collect();
    parts.join("; and ")
}

/// Which grant serves each need of a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// For each saved preopen (same index as [`WasiState::preopens`]), the
    /// host directory to open.
    pub preopen_hosts: Vec<PathBuf>,
    /// For each saved listener descriptor, the address to bind.
    pub listeners: Vec<(u32, SocketAddr)>,
}

impl Assignment {
    /// The address descriptor `fd` (a saved listener) is bound at.
    pub fn listener(&self, fd: u32) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(f, _)| *f == fd)
            .map(|(_, a)| *a)
    }
}

/// Matches every preopen and listener `state` needs to one of `grants`;
/// lists all that have none.
pub fn assign(state: &WasiState, grants: &Grants) -> Result<Assignment, NotGranted> {
    let mut missing = Vec::new();
    let mut used_dirs = vec![false; grants.preopens.len()];
    let mut preopen_hosts = Vec::with_capacity(state.preopens.len().min(grants.preopens.len()));
    for p in &state.preopens {
        let found = grants
            .preopens
            .iter()
            .enumerate()
            .find(|(i, g)| !used_dirs[*i] && g.guest == p.guest);
        match found {
            Some((i, g)) => {
                used_dirs[i] = true;
                preopen_hosts.push(g.host.clone());
            }
            None => missing.push(Need::Preopen {
                guest: p.guest.clone(),
            }),
        }
    }
    let mut used_addrs = vec![false; grants.tcp_listeners.len()];
    let mut listeners = Vec::new();
    for (&fd, e) in &state.fds {
        let FdKind::TcpListener { addr } = e.kind else {
            continue;
        };
        let free = |a: &(usize, &SocketAddr)| !used_addrs[a.0];
        let exact = grants
            .tcp_listeners
            .iter()
            .enumerate()
            .filter(free)
            .find(|(_, g)| **g == addr);
        let by_port = || {
            grants
                .tcp_listeners
                .iter()
                .enumerate()
                .filter(free)
                .find(|(_, g)| g.port() == addr.port())
        };
        match exact.or_else(by_port) {
            Some((i, g)) => {
                used_addrs[i] = true;
                listeners.push((fd, *g));
            }
            None => missing.push(Need::Listener { addr }),
        }
    }
    for e in state.fds.values() {
        let (local, peer) = match e.kind {
            FdKind::BoundListener { addr, .. } => (Some(addr), None),
            FdKind::Socket {
                local, peer, ty, ..
            } => (local, peer.filter(|_| ty == SockType::Dgram)),
            _ => continue,
        };
        if let Some(addr) = local.filter(|a| !grants.net.may_bind(*a)) {
            missing.push(Need::Bind { addr });
        }
        if let Some(addr) = peer.filter(|a| !grants.net.may_connect(*a)) {
            missing.push(Need::Connect { addr });
        }
    }
    if missing.is_empty() {
        Ok(Assignment {
            preopen_hosts,
            listeners,
        })
    } else {
        Err(NotGranted { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ClockState, FdEntry};
    use std::collections::BTreeMap;

    fn listener(addr: &str) -> FdEntry {
        FdEntry {
            kind: FdKind::TcpListener {
                addr: addr.parse().unwrap(),
            },
            preopen: None,
            path: String::new(),
            oflags: 0,
            lookup_flags: 0,
            read: true,
            write: true,
            rights_base: 0,
            rights_inheriting: 0,
            fdflags: 0,
            position: 0,
            file_id: None,
        }
    }

    fn state(preopens: &[(&str, &str)], listeners: &[&str]) -> WasiState {
        let mut fds = BTreeMap::new();
        for (i, a) in listeners.iter().enumerate() {
            fds.insert(10 + i as u32, listener(a));
        }
        WasiState {
            args: vec!["p".into()],
            env: Vec::new(),
            preopens: preopens
                .iter()
                .map(|(h, g)| Preopen {
                    host: h.into(),
                    guest: (*g).into(),
                })
                .collect(),
            fds,
            closed: Vec::new(),
            clocks: ClockState::default(),
            unlinked: Vec::new(),
            connections: Vec::new(),
        }
    }

    #[test]
    fn preopens_match_by_guest_path_and_take_the_granted_host() {
        let s = state(&[("/etc", "/data"), ("/", "/tmp")], &[]);
        let g = Grants::none()
            .preopen("/srv/b", "/tmp")
            .preopen("/srv/a", "/data");
        let a = assign(&s, &g).unwrap();
        assert_eq!(
            a.preopen_hosts,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
    }

    #[test]
    fn every_missing_need_is_named_with_its_flag() {
        let s = state(&[("/x", "/data"), ("/y", "/data")], &["127.0.0.1:8080"]);
        let g = Grants::none().preopen("/srv", "/data");
        let e = assign(&s, &g).unwrap_err();
        assert_eq!(
            e.missing,
            [
                Need::Preopen {
                    guest: "/data".into()
                },
                Need::Listener {
                    addr: "127.0.0.1:8080".parse().unwrap()
                }
            ]
        );
        let msg = e.to_string();
        assert!(msg.contains("-d /data"), "{msg}");
        assert!(msg.contains("--tcplisten 127.0.0.1:8080"), "{msg}");
    }

    #[test]
    fn nothing_granted_refuses_a_preopen() {
        let s = state(&[("/", "/")], &[]);
        assert!(assign(&s, &Grants::none()).is_err());
        assert!(assign(&state(&[], &[]), &Grants::none()).is_ok());
    }

    #[test]
    fn listeners_match_by_address_then_by_port() {
        let s = state(&[], &["10.0.0.1:8080", "127.0.0.1:9090"]);
        let g = Grants::none()
            .listener("127.0.0.1:9090".parse().unwrap())
            .listener("0.0.0.0:8080".parse().unwrap());
        let a = assign(&s, &g).unwrap();
        assert_eq!(a.listener(10), Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(a.listener(11), Some("127.0.0.1:9090".parse().unwrap()));
        let other_port = Grants::none().listener("10.0.0.1:8081".parse().unwrap());
        assert!(assign(&state(&[], &["10.0.0.1:8080"]), &other_port).is_err());
    }

    #[test]
    fn address_patterns_parse_and_match() {
        let p = |s: &str| s.parse::<AddrPattern>().unwrap();
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(p("127.0.0.1:80").matches(a("127.0.0.1:80")));
        assert!(!p("127.0.0.1:80").matches(a("127.0.0.2:80")));
        assert!(!p("127.0.0.1:80").matches(a("127.0.0.1:81")));
        assert!(p("10.0.0.0/8:*").matches(a("10.9.8.7:1")));
        assert!(!p("10.0.0.0/8:*").matches(a("11.0.0.1:1")));
        assert!(p("0.0.0.0/0:*").matches(a("8.8.8.8:53")));
        assert!(
            !p("0.0.0.0/0:*").matches(a("[::2]:53")),
            "IPv4 patterns are IPv4 only"
        );
        assert!(p("[::1]:443").matches(a("[::1]:443")));
        assert!(p("[fe80::]/10:*").matches(a("[fe80::1]:9")));
        // A v4-mapped IPv6 destination is the IPv4 address it maps.
        assert!(p("127.0.0.1:80").matches(a("[::ffff:127.0.0.1]:80")));
        assert!(!p("[::]/0:*").matches(a("[::ffff:127.0.0.1]:80")));
        assert_eq!(p("10.0.0.0/8:*").to_string(), "10.0.0.0/8:*");
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:x",
            "1.2.3.4/33:1",
            "[::1:80",
            "::1:80",
            "host:80",
        ] {
            assert!(bad.parse::<AddrPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_match_exactly_or_under_a_domain() {
        let g = NetGrants {
            resolve: vec!["Example.org".into(), "*.svc.local".into()],
            ..Default::default()
        };
        assert!(g.may_resolve("example.org."));
        assert!(!g.may_resolve("www.example.org"));
        assert!(g.may_resolve("db.svc.local"));
        assert!(!g.may_resolve("svc.local"));
        assert!(!g.may_resolve("evilsvc.local"));
        assert!(!NetGrants::default().may_resolve("localhost"));
    }

    #[test]
    fn one_grant_serves_one_need() {
        let s = state(&[], &["127.0.0.1:8080", "127.0.0.2:8080"]);
        let g = Grants::none().listener("0.0.0.0:8080".parse().unwrap());
        assert_eq!(assign(&s, &g).unwrap_err().missing.len(), 1);
    }
}
