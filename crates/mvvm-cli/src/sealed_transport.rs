//! Snapshot sinks and sources with `--key` (authenticated and sealed, see
//! `mvvm_snapshot::seal` and docs/security.md), and the checks
//! that apply without it:
//!
//! | location | with `--key` | without |
//! |---|---|---|
//! | file | sealed file, written atomically; read as a stream | plain file; a sealed one is refused (needs `--key`) |
//! | stream (pipe, FIFO, `/dev/fd/N`) | sealed-file format, one way | plain; a sealed one is refused |
//! | TCP | handshake, then sealed records | plain; a non-loopback listening address needs `--insecure` |
//!
//! Sinks open lazily, as the unkeyed ones do: the connection, the
//! handshake and the sealed header happen at the snapshot's first write,
//! not when the program starts. The runtime flushes a stream sink exactly
//! once, at the end of the snapshot (`mvvm_snapshot::write`), so that
//! flush writes the final record.

use crate::snapshot_location::{BackSlot, SnapshotLocation, accept_one};
use crate::stream_path::{self, LazyStream};
use anyhow::{Context, Result, bail};
use mvvm_rt::checkpoint::{CheckpointError, SnapshotSink, SnapshotSource};
use mvvm_snapshot::SnapshotError;
use mvvm_snapshot::seal::{self, SealError, SealKey};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest wait for the peer's part of the handshake: a peer that
/// connects and says nothing must not hold a receiver (or a stopped
/// sender) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses `--key` with periodic or incremental checkpoints: a sealed
/// snapshot is read as a stream, which cannot follow an incremental
/// snapshot's base, and periodic snapshots exist to become such bases.
pub fn check_combination(keyed: bool, every: bool, incremental: bool) -> Result<()> {
    if keyed && (every || incremental) {
        bail!(
            "--key does not combine with {}: sealed snapshots are single, full snapshots \
             (an incremental one names a base file that a sealed reader cannot map); \
             drop --key for periodic or incremental snapshots on a disk you trust",
            if every { "--every" } else { "--incremental" }
        );
    }
    Ok(())
}

/// The sink of a checkpoint to `loc`, sealed when `key` is given.
pub fn sink(loc: &SnapshotLocation, tool: &str, key: Option<&SealKey>) -> Result<SnapshotSink> {
    let Some(key) = key else {
        return loc.sink(tool);
    };
    match loc {
        SnapshotLocation::File(p) if stream_path::is_stream(p) => {
            stream_path::check_not_guest_output(tool, p)?;
            let (p, key) = (p.clone(), key.clone());
            Ok(deferred(move || {
                Ok(Box::new(
                    seal::seal_writer(LazyStream::new(p), &key)?.finish_on_flush(),
                ))
            }))
        }
        SnapshotLocation::File(p) => Ok(SnapshotSink::SealedFile(p.clone(), key.clone())),
        SnapshotLocation::Connect(addr) => {
            let (addr, key) = (addr.clone(), key.clone());
            let slot = BackSlot::default();
            let back = slot.clone();
            let w = deferred_writer(move || {
                let stream = TcpStream::connect(addr.as_str())
                    .map_err(|e| SealError::io(format!("cannot connect to {addr}"), e))?;
                stream
                    .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
                    .map_err(|e| SealError::io("setting the handshake timeout", e))?;
                crate::net_timeouts::tune(&stream, true)
                    .map_err(|e| SealError::io("setting up the connection", e))?;
                let sealed = seal::sender_handshake(
                    crate::net_timeouts::StallAware {
                        inner: stream
                            .try_clone()
                            .map_err(|e| SealError::io("cloning the connection", e))?,
                        peer: addr.clone(),
                    },
                    &key,
                )?;
                // After the handshake the receiver only ever sends a live
                // migration's acknowledgements (which change when the
                // sender stops, never what it sends): no timeout on them.
                let _ = stream.set_read_timeout(None);
                back.keep(&stream);
                Ok(Box::new(sealed.finish_on_flush()))
            });
            Ok(SnapshotSink::Connection(w, slot.channel()))
        }
        SnapshotLocation::Listen(_) => loc.sink(tool),
    }
}

/// The source of a restore from `loc`: opened and authenticated with
/// `key`, or, without it, refused when it is sealed or when it would
/// listen beyond loopback without `insecure`.
pub fn source(
    loc: &SnapshotLocation,
    tool: &str,
    key: Option<&SealKey>,
    insecure: bool,
) -> Result<SnapshotSource> {
    let shown = loc.display();
    let refusal = || format!("refusing to restore {shown}; nothing was resumed");
    match (loc, key) {
        (SnapshotLocation::Listen(addr), None) => {
            if !addr.ip().is_loopback() {
                if !insecure {
                    bail!(
                        "refusing to listen on {addr} without --key: anyone who reaches it could \
                         feed this process a snapshot. Give both sides --key FILE (mvvm-restore \
                         --new-key FILE writes one), listen on 127.0.0.1, or accept the risk \
                         with --insecure"
                    );
                }
                eprintln!(
                    "{tool}: warning: listening on {addr} with --insecure: the transfer is \
                     unauthenticated and unencrypted; anyone who reaches this port can feed \
                     this process a snapshot"
                );
            }
            // A sealed snapshot or an authenticating sender is refused by
            // the snapshot reader (`SealError::NeedsKey`).
            loc.source(tool)
        }
        (_, None) => loc.source(tool),
        (SnapshotLocation::Listen(addr), Some(key)) => {
            let stream = accept_one(tool, addr)?;
            let timeouts = stream.try_clone().context("cannot set up the connection")?;
            timeouts
                .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
                .context("cannot set the handshake timeout")?;
            let reader = seal::receiver_handshake(stream, key)
                .map_err(anyhow::Error::new)
                .with_context(refusal)?;
            // From here on the sender streams a snapshot that may take a
            // while to produce (its memory is being written).
            timeouts
                .set_read_timeout(None)
                .context("cannot clear the handshake timeout")?;
            tracing::info!("sender authenticated");
            Ok(SnapshotSource::Connection(
                Box::new(reader),
                Box::new(timeouts),
            ))
        }
        (SnapshotLocation::File(p), Some(key)) => {
            let input: Box<dyn Read + Send> = if stream_path::is_stream(p) {
                stream_path::open_read(p)
                    .with_context(|| format!("cannot open {} to read a snapshot", p.display()))?
            } else {
                Box::new(std::fs::File::open(p).with_context(|| {
                    format!(
                        "no snapshot at {} (was the checkpoint written elsewhere? use --snapshot PATH)",
                        p.display()
                    )
                })?)
            };
            let reader = seal::open_reader(input, key, &p.display().to_string())
                .map_err(anyhow::Error::new)
                .with_context(refusal)?;
            Ok(SnapshotSource::Stream(Box::new(reader)))
        }
        (SnapshotLocation::Connect(_), Some(_)) => loc.source(tool),
    }
}

/// The sealing error behind a restore's failure, if any: it then says
/// better than anything else what went wrong (altered, truncated, wrong
/// key, needs a key).
pub fn seal_failure(e: &mvvm_wasi::Error) -> Option<&SealError> {
    let mvvm_wasi::Error::Checkpoint(e) = e else {
        return None;
    };
    match e {
        CheckpointError::Snapshot(SnapshotError::Seal(s)) => Some(s),
        CheckpointError::Snapshot(SnapshotError::Io { source, .. }) => SealError::of_io(source),
        _ => None,
    }
}

/// A sink whose writer is made at the first write.
fn deferred<F>(make: F) -> SnapshotSink
where
    F: FnOnce() -> Result<Box<dyn Write + Send>, SealError> + Send + 'static,
{
    SnapshotSink::Stream(deferred_writer(make))
}

/// The writer of [`deferred`].
fn deferred_writer<F>(make: F) -> Box<dyn Write + Send>
where
    F: FnOnce() -> Result<Box<dyn Write + Send>, SealError> + Send + 'static,
{
    Box::new(Deferred {
        make: Some(Box::new(make)),
        out: None,
    })
}

/// The maker of a [`Deferred`] writer.
type MakeWriter = Box<dyn FnOnce() -> Result<Box<dyn Write + Send>, SealError> + Send>;

/// A writer made on the first write (connect, handshake, sealed header);
/// a failure to make it is reported once and then on every write.
struct Deferred {
    make: Option<MakeWriter>,
    out: Option<Box<dyn Write + Send>>,
}

impl Write for Deferred {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.is_none() {
            let make = self
                .make
                .take()
                .ok_or_else(|| SealError::Poisoned.into_io())?;
            self.out = Some(make().map_err(SealError::into_io)?);
        }
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Err(SealError::Poisoned.into_io()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_periodic_and_incremental() {
        assert!(check_combination(true, true, false).is_err());
        assert!(check_combination(true, false, true).is_err());
        assert!(check_combination(true, false, false).is_ok());
        assert!(check_combination(false, true, true).is_ok());
    }

    #[test]
    fn listening_beyond_loopback_needs_a_key_or_insecure() {
        let loc = SnapshotLocation::Listen("0.0.0.0:1".parse().unwrap());
        let e = source(&loc, "t", None, false).unwrap_err();
        assert!(format!("{e:#}").contains("--insecure"), "{e:#}");
    }
}
