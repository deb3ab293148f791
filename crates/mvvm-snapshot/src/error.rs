//! The one error type of the crate.
//!
//! Every variant says what is wrong and where, so that a tool can print it
//! as is: a snapshot is untrusted input (it may come from a socket or a
//! half-written disk), and the runtime must be able to refuse it with a
//! message a user can act on.

use std::io;

/// The error a [`SnapshotError`] was caused by, when it comes from another
/// layer (the file system, the codec, the base snapshot's own error).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a snapshot could not be written, read or used.
///
/// A variant with a source does not repeat it in its message: print the
/// error with its cause chain (the MVVM tools do) to see everything once.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The input does not start with [`SNAPSHOT_MAGIC`](crate::SNAPSHOT_MAGIC).
    #[error("not an MVVM snapshot (the file does not start with \"MVVMSNAP\")")]
    NotASnapshot,

    /// The snapshot was written in another format version.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {expected})"
    )]
    FormatVersion {
        /// Version found in the input.
        found: u32,
        /// Version this build reads and writes.
        expected: u32,
    },

    /// The input ended before a part of the snapshot was complete.
    #[error("snapshot truncated in {section}: expected {expected} bytes, found {found}")]
    Truncated {
        /// The part being read (`"header"`, `"frames section"`, `"memory run 2"`...).
        section: String,
        /// Bytes that part needs.
        expected: u64,
        /// Bytes actually available.
        found: u64,
    },

    /// A part of the snapshot does not match its checksum: it was altered.
    #[error("checksum mismatch in {section}: the snapshot is damaged")]
    Checksum {
        /// The part whose checksum failed.
        section: String,
    },

    /// The snapshot is well formed byte-wise but says something impossible.
    #[error("corrupt snapshot: {what}")]
    Corrupt {
        /// What is inconsistent.
        what: String,
    },

    /// An incremental snapshot was read from a stream: its base is named
    /// by a path relative to the snapshot's directory, so it can only be
    /// opened as a file.
    #[error(
        "incremental snapshot read from a stream: its base {base} can only be found when the snapshot is opened as a file"
    )]
    IncrementalUnsupported {
        /// The base's path and id.
        base: String,
    },

    /// The base of an incremental snapshot cannot be read (missing,
    /// unreadable, damaged).
    #[error("base snapshot {path} (needed by {needed_by}) cannot be used: {reason}")]
    BaseUnreadable {
        /// The base's path as resolved.
        path: String,
        /// The snapshot that names it.
        needed_by: String,
        /// Why, in a few words (the detail, if any, is the source).
        reason: String,
        /// The error of opening or reading it, when there is one.
        #[source]
        source: Option<Cause>,
    },

    /// The base of an incremental snapshot is not the snapshot it was
    /// taken against: it was replaced or altered since.
    #[error(
        "base snapshot {path} (needed by {needed_by}) was altered or replaced: its id is {found}, expected {expected}"
    )]
    BaseMismatch {
        /// The base's path as resolved.
        path: String,
        /// The snapshot that names it.
        needed_by: String,
        /// Id recorded in the incremental snapshot, in hex.
        expected: String,
        /// Id of the file found, in hex.
        found: String,
    },

    /// The snapshot is well formed but asks for more than the receiver
    /// allows (see [`ReadLimits`](crate::ReadLimits)): refused before the
    /// part concerned is read or allocated.
    #[error("snapshot refused: {what} is {found}, above this receiver's limit of {limit}")]
    LimitExceeded {
        /// What is too large (`"memory length in bytes"`, `"frames section in bytes"`...).
        what: String,
        /// What the snapshot declares.
        found: u64,
        /// The receiver's limit.
        limit: u64,
    },

    /// An incremental snapshot names its base by a path that a reader
    /// never opens: anything but a plain file name in the snapshot's own
    /// directory, or a name that is a symbolic link or not a regular file.
    #[error("base snapshot path {path:?} (named by {needed_by}) refused: {reason}")]
    BasePathRefused {
        /// The path as recorded in the snapshot.
        path: String,
        /// The snapshot that names it.
        needed_by: String,
        /// Why it is refused.
        reason: String,
    },

    /// The snapshot was taken from another wasm module than the one given.
    #[error(
        "snapshot was taken from wasm module sha256 {snapshot}, but the module given has sha256 {module}"
    )]
    ModuleMismatch {
        /// SHA-256 recorded in the snapshot, in hex.
        snapshot: String,
        /// SHA-256 of the module given, in hex.
        module: String,
    },

    /// The caller passed something that cannot be written or used (memory
    /// length not a multiple of the wasm page size, destination too small...).
    #[error("invalid snapshot input: {what}")]
    InvalidInput {
        /// What is wrong.
        what: String,
    },

    /// A structured part could not be encoded.
    #[error("cannot encode the {section}")]
    Encode {
        /// The part being encoded.
        section: String,
        /// The codec's error.
        #[source]
        source: mvvm_abi::codec::CodecError,
    },

    /// A structured part passed its checksum but does not decode: the
    /// writer was broken (or from another build).
    #[error("corrupt snapshot: the {section} does not decode")]
    Decode {
        /// The part being decoded.
        section: String,
        /// The codec's error.
        #[source]
        source: mvvm_abi::codec::CodecError,
    },

    /// Sealing or opening a sealed snapshot failed (see [`crate::seal`]).
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),

    /// An I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done (`"writing the snapshot"`, `"renaming /a/b.tmp to /a/b"`...).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl SnapshotError {
    /// Shorthand for [`SnapshotError::Corrupt`].
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        SnapshotError::Corrupt { what: what.into() }
    }

    /// Shorthand for [`SnapshotError::Io`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SnapshotError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Lower-case hex of `bytes`, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}
