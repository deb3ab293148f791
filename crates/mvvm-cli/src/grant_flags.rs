//! Flags that grant the guest host capabilities: preopened directories,
//! TCP listeners, and the network reach of the sockets it opens itself
//! (WAMR's socket extension: `--allow-connect`, `--allow-bind`,
//! `--allow-resolve`). `mvvm-checkpoint` gives them to a fresh run;
//! `mvvm-restore` takes the same flags, because a snapshot may only say
//! what the guest needs (by guest path), never which host directory or
//! address it gets (see `mvvm_wasi::grants`).

use anyhow::{Context, Result, bail};
use clap::Args;
use mvvm_wasi::{AddrPattern, Grants, NetGrants, Preopen, RepairMode};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `-d`, `--dir` and `--tcplisten`.
#[derive(Debug, Clone, Default, Args)]
pub struct GrantFlags {
    /// Preopens a host directory under the same path in the guest
    /// (repeatable). Without `-d` or `--dir`, no host file is visible. On
    /// restore: grants the snapshot's preopen of that guest path.
    #[arg(short = 'd', long = "preopen", value_name = "DIR")]
    pub preopen: Vec<PathBuf>,

    /// Preopens host directory HOST under the guest path GUEST. On
    /// restore: grants the snapshot's preopen of guest path GUEST from
    /// HOST, which may differ from the directory at checkpoint time.
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    pub dir: Vec<String>,

    /// Preopens a TCP listener bound to ADDR:PORT, for `sock_accept`. On
    /// restore: grants the snapshot's listener of that address (or, failing
    /// that, of that port), bound at ADDR:PORT.
    #[arg(long = "tcplisten", value_name = "ADDR:PORT")]
    pub tcplisten: Vec<SocketAddr>,

    /// Lets sockets the guest opens (`sock_open`) connect, or send
    /// datagrams, to the addresses matching PATTERN: `IP[/PREFIX]:PORT`
    /// or `IP[/PREFIX]:*`, IPv6 in brackets (`127.0.0.1:8080`,
    /// `10.0.0.0/8:*`, `[::1]:443`). Repeatable; without it every
    /// `sock_connect` answers EACCES. On restore: granted anew (a snapshot
    /// never grants), and a UDP socket's peer must match.
    #[arg(long = "allow-connect", value_name = "PATTERN")]
    pub allow_connect: Vec<AddrPattern>,

    /// Lets sockets the guest opens bind (and listen) at the addresses
    /// matching PATTERN (as `--allow-connect`; `0.0.0.0:*` for any port
    /// on every IPv4 interface). Without it every `sock_bind` answers
    /// EACCES. On restore: a socket the guest had bound is bound again at
    /// its address only if a pattern matches it.
    #[arg(long = "allow-bind", value_name = "PATTERN")]
    pub allow_bind: Vec<AddrPattern>,

    /// Lets the guest look up host name NAME with `sock_addr_resolve`
    /// (`*.DOMAIN` for the names under a domain, `*` for all). Numeric
    /// addresses need no grant.
    #[arg(long = "allow-resolve", value_name = "NAME")]
    pub allow_resolve: Vec<String>,

    /// Do not carry the guest's TCP connections across the checkpoint.
    /// By default (when running as root, with CAP_NET_ADMIN), a checkpoint
    /// saves each established connection the guest holds (accepted from a
    /// `--tcplisten` or guest listener, or opened with `sock_connect`) in
    /// Linux's TCP repair mode: sequence numbers, unread and
    /// unacknowledged data, options, windows; the process then exits
    /// without closing them for the peer. A restore rebuilds each one
    /// whose listener (`--tcplisten`, `--allow-bind`) or peer
    /// (`--allow-connect`) is granted there, at its own local address (the
    /// service address must move with the program), so the peer keeps its
    /// connection. Between the two, nothing may answer the peer for that
    /// address: remove it from this host at the checkpoint, add it on the
    /// other once the restore logged `TCP connection repaired` (the old
    /// socket itself drops, unacknowledged, what arrives after its state
    /// was read: the peer sends it again to the new one). With
    /// this flag, or when repair is not possible (the
    /// reason is logged), the guest sees those connections reset after
    /// the restore.
    #[arg(long = "no-tcp-repair")]
    pub no_tcp_repair: bool,
}

impl GrantFlags {
    /// The preopened directories, in the order given (`-d` first, then
    /// `--dir`); each host path must be a directory.
    pub fn preopens(&self) -> Result<Vec<Preopen>> {
        let mut out = Vec::new();
        for dir in &self.preopen {
            let guest = dir
                .to_str()
                .with_context(|| format!("directory {} is not valid UTF-8", dir.display()))?
                .to_owned();
            out.push(Preopen {
                host: dir.clone(),
                guest,
            });
        }
        for spec in &self.dir {
            let (host, guest) = spec
                .split_once("::")
                .with_context(|| format!("--dir `{spec}` is not HOST::GUEST"))?;
            if host.is_empty() || guest.is_empty() {
                bail!("--dir `{spec}` needs both a host and a guest path");
            }
            out.push(Preopen {
                host: PathBuf::from(host),
                guest: guest.to_owned(),
            });
        }
        for p in &out {
            if !p.host.is_dir() {
                bail!("cannot preopen {}: not a directory", p.host.display());
            }
        }
        Ok(out)
    }

    /// The network reach of the sockets the guest opens.
    pub fn net(&self) -> NetGrants {
        NetGrants {
            connect: self.allow_connect.clone(),
            bind: self.allow_bind.clone(),
            resolve: self.allow_resolve.clone(),
        }
    }

    /// Whether TCP connections are saved and rebuilt in repair mode.
    pub fn tcp_repair(&self) -> RepairMode {
        if self.no_tcp_repair {
            RepairMode::Off
        } else {
            RepairMode::Auto
        }
    }

    /// What a restore grants the guest.
    pub fn grants(&self) -> Result<Grants> {
        Ok(Grants {
            preopens: self.preopens()?,
            tcp_listeners: self.tcplisten.clone(),
            net: self.net(),
            tcp_repair: self.tcp_repair(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: GrantFlags,
    }

    #[test]
    fn dir_mapping_needs_both_sides() {
        let t = T::try_parse_from(["x", "--dir", "/tmp::/sandbox"]).unwrap();
        assert_eq!(
            t.g.preopens().unwrap(),
            [Preopen {
                host: PathBuf::from("/tmp"),
                guest: "/sandbox".to_owned()
            }]
        );
        let bad = T::try_parse_from(["x", "--dir", "/tmp"]).unwrap();
        assert!(bad.g.preopens().is_err());
    }

    #[test]
    fn grants_hold_directories_and_listeners() {
        let t = T::try_parse_from(["x", "-d", "/tmp", "--tcplisten", "127.0.0.1:7"]).unwrap();
        let g = t.g.grants().unwrap();
        assert_eq!(g.preopens.len(), 1);
        assert_eq!(g.preopens[0].guest, "/tmp");
        assert_eq!(g.tcp_listeners, ["127.0.0.1:7".parse().unwrap()]);
        let missing = T::try_parse_from(["x", "-d", "/no/such/dir"]).unwrap();
        assert!(missing.g.grants().is_err());
    }

    #[test]
    fn network_grants_parse_and_match() {
        let t = T::try_parse_from([
            "x",
            "--allow-connect",
            "127.0.0.1:8080",
            "--allow-connect",
            "[::1]/128:*",
            "--allow-bind",
            "10.0.0.0/8:*",
            "--allow-resolve",
            "*.example.org",
        ])
        .unwrap();
        let net = t.g.grants().unwrap().net;
        assert!(net.may_connect("127.0.0.1:8080".parse().unwrap()));
        assert!(!net.may_connect("127.0.0.1:8081".parse().unwrap()));
        assert!(net.may_connect("[::1]:9".parse().unwrap()));
        assert!(net.may_bind("10.200.0.1:80".parse().unwrap()));
        assert!(!net.may_bind("11.0.0.1:80".parse().unwrap()));
        assert!(net.may_resolve("www.example.org"));
        assert!(!net.may_resolve("example.org.evil"));
        assert!(T::try_parse_from(["x", "--allow-connect", "127.0.0.1"]).is_err());
        assert!(T::try_parse_from(["x", "--allow-bind", "1.2.3.4/33:1"]).is_err());
    }
}
