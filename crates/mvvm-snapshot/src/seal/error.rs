//! The error type of the sealing layer: keys, the handshake, sealed
//! records and sealed files.
//!
//! Every variant says what is wrong in words a user can act on (wrong key,
//! altered record, stream cut short, unsealed input), because the tools
//! print these errors as they are when they refuse a snapshot.

use std::io;
use std::path::PathBuf;

/// Why a key could not be used, a handshake failed, or sealed data could
/// not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or written.
    #[error("key file {}: {error}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The underlying error (shown in the message, hence not a
        /// `source`: the tools print the cause chain too).
        error: io::Error,
    },

    /// The key is shorter than [`MIN_KEY_BYTES`](crate::seal::MIN_KEY_BYTES)
    /// (or longer than the largest accepted).
    #[error(
        "key {what} is {len} bytes; a key must be {min} to {max} bytes (write a fresh one with --new-key FILE)"
    )]
    KeyLength {
        /// Where the key came from (a path, or "given").
        what: String,
        /// Its length in bytes (after hex decoding).
        len: usize,
        /// Fewest bytes accepted.
        min: usize,
        /// Most bytes accepted.
        max: usize,
    },

    /// The key file may be read or written by other users.
    #[error(
        "key file {} has mode {mode:03o}: group and others must have no access to a secret (chmod 600 {})",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The operating system's random number generator failed.
    #[error("cannot get random bytes from the operating system")]
    Random(#[source] getrandom::Error),

    /// Reading or writing the underlying stream failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error (shown in the message, not a `source`).
        error: io::Error,
    },

    /// The input is an ordinary (unsealed) snapshot where a sealed one was
    /// required.
    #[error(
        "{what} is an unsealed snapshot (it starts with \"MVVMSNAP\"); with --key only sealed snapshots are accepted (write it with mvvm-checkpoint --key)"
    )]
    NotSealed {
        /// What was read (a path, "the stream").
        what: String,
    },

    /// The input starts with neither the sealed magic nor a snapshot's.
    #[error("{what} is not a sealed MVVM snapshot (it does not start with \"MVVMSEAL\")")]
    BadMagic {
        /// What was read.
        what: String,
    },

    /// The sealed input is of another version or kind than this build
    /// reads.
    #[error(
        "{what}: sealed format version {version} kind {kind} is not supported (this build reads version {expected})"
    )]
    Unsupported {
        /// What was read.
        what: String,
        /// The version byte found.
        version: u8,
        /// The kind byte found.
        kind: u8,
        /// The version this build reads.
        expected: u8,
    },

    /// A sealed file's key check failed: it was sealed with another key,
    /// or its header was altered.
    #[error(
        "{what} was sealed with another key (or its header was altered): the key does not match"
    )]
    WrongKey {
        /// What was read.
        what: String,
    },

    /// A record did not authenticate: a byte was altered, records were
    /// reordered, dropped or replayed, or the data was sealed with another
    /// key or in another session.
    #[error(
        "sealed record {record} failed authentication: the data was altered, reordered or replayed, or sealed with another key"
    )]
    Tampered {
        /// Index of the record (0 for the first).
        record: u64,
    },

    /// A record header declares more data than a record may hold.
    #[error("sealed record {record} declares {len} bytes (at most {max}): the stream is damaged")]
    RecordTooLarge {
        /// Index of the record.
        record: u64,
        /// Length declared.
        len: u32,
        /// Largest record.
        max: usize,
    },

    /// The stream ended before its final record: the sender stopped or the
    /// stream was cut. Never reported as a clean end of file.
    #[error(
        "the sealed stream ended before its final record (after {records} records): the sender stopped or the stream was cut"
    )]
    Truncated {
        /// Complete records read before the end.
        records: u64,
    },

    /// An earlier error left the reader or writer unusable.
    #[error("the sealed stream failed earlier and cannot be used further")]
    Poisoned,

    /// Data was written after the final record.
    #[error("data written after the final record of a sealed stream")]
    AfterFinal,

    /// The record counter would wrap (2^64 records).
    #[error("too many records in one sealed stream")]
    CounterExhausted,

    /// A sealed snapshot (or an authenticating sender) met a reader
    /// without the key.
    #[error(
        "{what} is sealed (it starts with \"MVVMSEAL\"): give mvvm-restore the same --key as mvvm-checkpoint"
    )]
    NeedsKey {
        /// What was read.
        what: String,
    },

    /// The peer sent an unsealed snapshot instead of a handshake.
    #[error(
        "the sender sent an unsealed snapshot instead of authenticating: give mvvm-checkpoint the same --key"
    )]
    PeerNotSealed,

    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the handshake ({hint})")]
    PeerClosed {
        /// What that probably means.
        hint: &'static str,
    },

    /// The peer's proof of the key did not verify.
    #[error("authentication failed: {what}")]
    Handshake {
        /// Who failed to prove what.
        what: &'static str,
    },
}

impl SealError {
    /// Shorthand for [`SealError::Io`].
    pub fn io(context: impl Into<String>, error: io::Error) -> Self {
        SealError::Io {
            context: context.into(),
            error,
        }
    }

    /// The [`io::ErrorKind`] this error travels as through a [`std::io::Read`]
    /// or [`std::io::Write`] adapter.
    pub(crate) fn kind(&self) -> io::ErrorKind {
        match self {
            SealError::Truncated { .. } | SealError::PeerClosed { .. } => {
                io::ErrorKind::UnexpectedEof
            }
            SealError::Io { error, .. } | SealError::KeyFile { error, .. } => error.kind(),
            _ => io::ErrorKind::InvalidData,
        }
    }

    /// Wraps the error in an [`io::Error`] (for the `Read`/`Write`
    /// adapters); [`SealError::of_io`] finds it again.
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.kind(), self)
    }

    /// The sealing error carried by `e`, if it came from this layer.
    pub fn of_io(e: &io::Error) -> Option<&SealError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<SealError>())
    }
}
