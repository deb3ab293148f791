//! How long a migration connection may stall. A sender whose receiver
//! accepted and then stopped reading (or whose machine vanished) must not
//! hold the stopped program forever, and a receiver must learn that its
//! sender's machine is gone:
//!
//! - every connection gets TCP keepalive (first probe after 30 s idle,
//!   then every 10 s, failed after 3 unanswered: about a minute), which
//!   fails a blocked read or write when the peer's machine is gone but
//!   leaves a peer that is merely silent alone;
//! - a sender's writes also fail when the receiver takes no data for the
//!   stall timeout: 120 s, or `MVVM_NET_TIMEOUT` seconds (an operator's
//!   knob, also what the tests use), with an error that says so.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The stall timeout when `MVVM_NET_TIMEOUT` does not set one.
const DEFAULT_STALL: Duration = Duration::from_secs(120);

/// How long a receiver may take no data before a sender gives up.
pub(crate) fn stall_timeout() -> Duration {
    let Ok(v) = std::env::var("MVVM_NET_TIMEOUT") else {
        return DEFAULT_STALL;
    };
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
        _ => {
            tracing::warn!(
                value = %v,
                "MVVM_NET_TIMEOUT is not a number of seconds in (0, 86400]: using {} s",
                DEFAULT_STALL.as_secs()
            );
            DEFAULT_STALL
        }
    }
}

/// Sets keepalive on a migration connection and, for the sending side,
/// the stall timeout on its writes.
pub(crate) fn tune(stream: &TcpStream, sending: bool) -> io::Result<()> {
    mvvm_wasi::keepalive::enable(stream, Duration::from_secs(30), Duration::from_secs(10), 3)?;
    if sending {
        stream.set_write_timeout(Some(stall_timeout()))?;
    }
    Ok(())
}

/// The error a write that hit the stall timeout becomes (any other error
/// is returned as it is).
pub(crate) fn stalled(e: io::Error, peer: &str) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the receiver at {peer} took no data for {:.0} s (or its machine stopped answering)",
                stall_timeout().as_secs_f64()
            ),
        ),
        _ => e,
    }
}

/// A connection whose write errors say that the receiver stalled
/// ([`stalled`]); reads pass through.
pub(crate) struct StallAware<S> {
    pub inner: S,
    pub peer: String,
}

impl<S: Write> Write for StallAware<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| stalled(e, &self.peer))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| stalled(e, &self.peer))
    }
}

impl<S: Read> Read for StallAware<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_out_write_names_the_receiver() {
        let e = stalled(io::Error::from(io::ErrorKind::WouldBlock), "h:1");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            e.to_string().contains("receiver at h:1 took no data"),
            "{e}"
        );
        let other = stalled(io::Error::from(io::ErrorKind::BrokenPipe), "h:1");
        assert_eq!(other.kind(), io::ErrorKind::BrokenPipe);
    }
}
