//! Where a snapshot goes to or comes from: a file, a stream (pipe, FIFO,
//! `/dev/stdin`, `/dev/fd/N`: see [`crate::stream_path`]), or a TCP
//! connection for live migration to another machine.
//!
//! ```text
//! machine B:  mvvm-restore    -t bc.aot -i 0.0.0.0 -e 7000     (= --snapshot tcp-listen://0.0.0.0:7000)
//! machine A:  mvvm-checkpoint -t bc.aot -o B -s 7000 -a ...    (= --snapshot tcp://B:7000)
//! ```
//!
//! The checkpointing side connects only when the snapshot is written (a
//! program may run for hours before its checkpoint; no connection is held
//! open meanwhile, and a run that ends without a checkpoint connects to
//! nobody). The restoring side accepts one connection and reads the
//! snapshot from it; memory is then copied rather than mapped from a file.

use crate::stream_path::{self, LazyStream};
use anyhow::{Context, Result, bail};
use mvvm_rt::checkpoint::{BackChannel, SnapshotSink, SnapshotSource};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

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

    /// `tcp://HOST:PORT` from the original MVVM's separate address and port
    /// flags (`-o ADDR -s PORT`); an IPv6 address gets its brackets.
    pub fn connect(host: &str, port: u16) -> SnapshotLocation {
        SnapshotLocation::Connect(host_port(host, port))
    }

    /// `tcp-listen://ADDR:PORT` from `-i ADDR -e PORT` (`ADDR` an IP
    /// address or a name resolved now, e.g. `localhost`).
    pub fn listen(addr: &str, port: u16) -> Result<SnapshotLocation> {
        let target = host_port(addr, port);
        let a = target
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve `{addr}` to listen on"))?
            .next()
            .with_context(|| format!("`{addr}` has no address to listen on"))?;
        Ok(SnapshotLocation::Listen(a))
    }

    /// Whether it is a stream path (pipe, FIFO, `/dev/fd/N`...).
    pub fn is_stream(&self) -> bool {
        matches!(self, SnapshotLocation::File(p) if stream_path::is_stream(p))
    }

    /// The sink for a checkpoint (files, streams and `tcp://`; listening
    /// for a restorer to connect is not offered: the restorer listens).
    /// `tool` names the program in messages. A stream that is the guest's
    /// own stdout or stderr is refused (see [`crate::stream_path`]).
    pub fn sink(&self, tool: &str) -> Result<SnapshotSink> {
        match self {
            SnapshotLocation::File(p) if stream_path::is_stream(p) => {
                stream_path::check_not_guest_output(tool, p)?;
                Ok(SnapshotSink::Stream(Box::new(LazyStream::new(p.clone()))))
            }
            SnapshotLocation::File(p) => Ok(SnapshotSink::File(p.clone())),
            SnapshotLocation::Connect(a) => {
                let slot = BackSlot::default();
                Ok(SnapshotSink::Connection(
                    Box::new(LazyTcp {
                        addr: a.clone(),
                        stream: None,
                        back: slot.clone(),
                    }),
                    slot.channel(),
                ))
            }
            SnapshotLocation::Listen(_) => {
                bail!("a checkpoint is sent to tcp://HOST:PORT; tcp-listen:// is for mvvm-restore")
            }
        }
    }

    /// The source for a restore: a file, or the first connection accepted
    /// (waits for it, and says so on stderr).
    pub fn source(&self, tool: &str) -> Result<SnapshotSource> {
        match self {
            SnapshotLocation::File(p) if stream_path::is_stream(p) => {
                let r = stream_path::open_read(p)
                    .with_context(|| format!("cannot open {} to read a snapshot", p.display()))?;
                tracing::info!(path = %p.display(), "reading a snapshot from a stream");
                Ok(SnapshotSource::Stream(r))
            }
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
                let stream = accept_one(tool, addr)?;
                // The way back carries a live migration's acknowledgements.
                let acks = stream.try_clone().context("cannot set up the connection")?;
                Ok(SnapshotSource::Connection(Box::new(stream), Box::new(acks)))
            }
            SnapshotLocation::Connect(_) => {
                bail!(
                    "a restore reads a file or listens (tcp-listen://ADDR:PORT); tcp:// is for mvvm-checkpoint"
                )
            }
        }
    }
}

/// Listens on `addr`, says so on stderr (`tool: waiting for a snapshot on
/// ADDR:PORT`, which scripts and tests wait for), and accepts one
/// connection.
pub(crate) fn accept_one(tool: &str, addr: &SocketAddr) -> Result<TcpStream> {
    let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = l.local_addr()?;
    eprintln!("{tool}: waiting for a snapshot on {local}");
    let (stream, peer) = l.accept().context("cannot accept a connection")?;
    crate::net_timeouts::tune(&stream, false).context("cannot set up the connection")?;
    tracing::info!(%peer, "receiving a snapshot");
    Ok(stream)
}

/// `HOST:PORT`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where a lazily made connection leaves a clone of itself for its way
/// back (a live migration reads the receiver's acknowledgements there).
#[derive(Clone, Default)]
pub(crate) struct BackSlot(Arc<Mutex<Option<TcpStream>>>);

impl BackSlot {
    /// Keeps a clone of `s` (when it can be made).
    pub(crate) fn keep(&self, s: &TcpStream) {
        if let Ok(c) = s.try_clone() {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(c);
        }
    }

    /// The sink's [`BackChannel`]: the kept clone, once connected.
    pub(crate) fn channel(self) -> BackChannel {
        Box::new(move || {
            let s = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()?;
            Some(Box::new(s) as Box<dyn Read + Send>)
        })
    }
}

/// A TCP writer that connects on its first write.
struct LazyTcp {
    addr: String,
    stream: Option<TcpStream>,
    back: BackSlot,
}

impl LazyTcp {
    fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr.as_str()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot connect to {}: {e}", self.addr))
            })?;
            crate::net_timeouts::tune(&s, true)?;
            self.back.keep(&s);
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("connected just above"))
    }
}

impl Write for LazyTcp {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream()?
            .write(buf)
            .map_err(|e| crate::net_timeouts::stalled(e, &self.addr))
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
    fn from_address_and_port_flags() {
        assert_eq!(
            SnapshotLocation::connect("10.0.0.2", 7000),
            SnapshotLocation::Connect("10.0.0.2:7000".into())
        );
        assert_eq!(
            SnapshotLocation::connect("::1", 7000),
            SnapshotLocation::Connect("[::1]:7000".into())
        );
        assert_eq!(
            SnapshotLocation::listen("127.0.0.1", 7001).unwrap(),
            SnapshotLocation::Listen("127.0.0.1:7001".parse().unwrap())
        );
        assert_eq!(
            SnapshotLocation::listen("::", 7001).unwrap(),
            SnapshotLocation::Listen("[::]:7001".parse().unwrap())
        );
        assert!(SnapshotLocation::listen("", 1).is_err());
        assert!(SnapshotLocation::parse("/dev/stdin").unwrap().is_stream());
        assert!(!SnapshotLocation::parse("x.bin").unwrap().is_stream());
    }

    #[test]
    fn directions() {
        assert!(
            SnapshotLocation::parse("tcp-listen://127.0.0.1:1")
                .unwrap()
                .sink("t")
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
