//! Where a snapshot goes to or comes from: a file, or a TCP connection for
//! live migration to another machine.
//!
//! ```text
//! machine B:  mvvm-restore    -t bc.aot --snapshot tcp-listen://0.0.0.0:7000
//! machine A:  mvvm-checkpoint -t bc.aot --snapshot tcp://B:7000 -a ...
//! ```
//!
//! The checkpointing side connects only when the snapshot is written (a
//! program may run for hours before its checkpoint; no connection is held
//! open meanwhile, and a run that ends without a checkpoint connects to
//! nobody). The restoring side accepts one connection and reads the
//! snapshot from it; memory is then copied rather than mapped from a file.

use anyhow::{Context, Result, bail};
use mvvm_rt::checkpoint::{SnapshotSink, SnapshotSource};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;

/// URL prefix of a snapshot sent to a listening `mvvm-restore`.
const TCP_CONNECT: &str = "tcp://";
/// URL prefix of a snapshot received by listening.
const TCP_LISTEN: &str = "tcp-listen://";

/// A `--snapshot` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotLocation {
    /// A file path.
    File(PathBuf),
    /// `tcp://HOST:PORT`: connect there and send the snapshot.
    Connect(String),
    /// `tcp-listen://ADDR:PORT`: accept one connection and read the
    /// snapshot from it.
    Listen(SocketAddr),
}

impl SnapshotLocation {
    /// Parses a `--snapshot` value (anything that is not a `tcp://` or
    /// `tcp-listen://` URL is a file path).
    pub fn parse(s: &str) -> Result<SnapshotLocation, String> {
        if let Some(rest) = s.strip_prefix(TCP_CONNECT) {
            if rest
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!("`{s}` is not tcp://HOST:PORT"));
            }
            Ok(SnapshotLocation::Connect(rest.to_owned()))
        } else if let Some(rest) = s.strip_prefix(TCP_LISTEN) {
            rest.parse().map(SnapshotLocation::Listen).map_err(|_| {
                format!("`{s}` is not tcp-listen://ADDR:PORT (an IP address and a port)")
            })
        } else if s.is_empty() {
            Err("the snapshot path is empty".into())
        } else {
            Ok(SnapshotLocation::File(PathBuf::from(s)))
        }
    }

    /// How it is shown in messages.
    pub fn display(&self) -> String {
        match self {
            SnapshotLocation::File(p) => p.display().to_string(),
            SnapshotLocation::Connect(a) => format!("{TCP_CONNECT}{a}"),
            SnapshotLocation::Listen(a) => format!("{TCP_LISTEN}{a}"),
        }
    }

    /// The sink for a checkpoint (files and `tcp://`; listening for a
    /// restorer to connect is not offered: the restorer listens).
    pub fn sink(&self) -> Result<SnapshotSink> {
        match self {
            SnapshotLocation::File(p) => Ok(SnapshotSink::File(p.clone())),
            SnapshotLocation::Connect(a) => Ok(SnapshotSink::Stream(Box::new(LazyTcp {
                addr: a.clone(),
                stream: None,
            }))),
            SnapshotLocation::Listen(_) => {
                bail!("a checkpoint is sent to tcp://HOST:PORT; tcp-listen:// is for mvvm-restore")
            }
        }
    }

    /// The source for a restore: a file, or the first connection accepted
    /// (waits for it, and says so on stderr).
    pub fn source(&self, tool: &str) -> Result<SnapshotSource> {
        match self {
            SnapshotLocation::File(p) => {
                if !p.is_file() {
                    bail!(
                        "no snapshot at {} (was the checkpoint written elsewhere? use --snapshot PATH)",
                        p.display()
                    );
                }
                Ok(SnapshotSource::File(p.clone()))
            }
            SnapshotLocation::Listen(addr) => {
                let l =
                    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
                let local = l.local_addr()?;
                eprintln!("{tool}: waiting for a snapshot on {local}");
                let (stream, peer) = l.accept().context("cannot accept a connection")?;
                tracing::info!(%peer, "receiving a snapshot");
                Ok(SnapshotSource::Stream(
                    Box::new(stream) as Box<dyn Read + Send>
                ))
            }
            SnapshotLocation::Connect(_) => {
                bail!(
                    "a restore reads a file or listens (tcp-listen://ADDR:PORT); tcp:// is for mvvm-checkpoint"
                )
            }
        }
    }
}

/// A TCP writer that connects on its first write.
struct LazyTcp {
    addr: String,
    stream: Option<TcpStream>,
}

impl LazyTcp {
    fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr.as_str()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot connect to {}: {e}", self.addr))
            })?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("connected just above"))
    }
}

impl Write for LazyTcp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.stream.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_locations() {
        assert_eq!(
            SnapshotLocation::parse("a/b.bin").unwrap(),
            SnapshotLocation::File("a/b.bin".into())
        );
        assert_eq!(
            SnapshotLocation::parse("tcp://host.example:7000").unwrap(),
            SnapshotLocation::Connect("host.example:7000".into())
        );
        assert_eq!(
            SnapshotLocation::parse("tcp-listen://0.0.0.0:7000").unwrap(),
            SnapshotLocation::Listen("0.0.0.0:7000".parse().unwrap())
        );
        for bad in [
            "",
            "tcp://host",
            "tcp://:80",
            "tcp://h:99999",
            "tcp-listen://host:1",
        ] {
            assert!(SnapshotLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directions() {
        assert!(
            SnapshotLocation::parse("tcp-listen://127.0.0.1:1")
                .unwrap()
                .sink()
                .is_err()
        );
        assert!(
            SnapshotLocation::parse("tcp://h:1")
                .unwrap()
                .source("t")
                .is_err()
        );
        assert!(
            SnapshotLocation::parse("/no/such/snapshot.bin")
                .unwrap()
                .source("t")
                .is_err()
        );
    }
}
