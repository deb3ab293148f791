//! Flags that grant the guest host capabilities: preopened directories
//! and TCP listeners. `mvvm-checkpoint` gives them to a fresh run;
//! `mvvm-restore` takes the same flags, because a snapshot may only say
//! what the guest needs (by guest path), never which host directory or
//! address it gets (see `mvvm_wasi::grants`).

use anyhow::{Context, Result, bail};
use clap::Args;
use mvvm_wasi::{Grants, Preopen};
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

    /// What a restore grants the guest.
    pub fn grants(&self) -> Result<Grants> {
        Ok(Grants {
            preopens: self.preopens()?,
            tcp_listeners: self.tcplisten.clone(),
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
}
