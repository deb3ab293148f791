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
//! The host paths recorded in the state are only informational: they are
//! never opened. Grants the state does not need are left unused.

use super::Preopen;
use super::state::{FdKind, WasiState};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The capabilities the restoring command gives the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host directories, each under the guest path it is granted for.
    pub preopens: Vec<Preopen>,
    /// Addresses the guest may listen on.
    pub tcp_listeners: Vec<SocketAddr>,
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
        }
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
    fn one_grant_serves_one_need() {
        let s = state(&[], &["127.0.0.1:8080", "127.0.0.2:8080"]);
        let g = Grants::none().listener("0.0.0.0:8080".parse().unwrap());
        assert_eq!(assign(&s, &g).unwrap_err().missing.len(), 1);
    }
}
