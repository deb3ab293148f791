//! Sealed files (and one-way streams such as pipes): a header with a fresh
//! random salt and a key check, then the records of [`super::stream`].
//!
//! ```text
//! "MVVMSEAL" | version (1) | kind (1 = file) | 2 zero bytes | salt (32)   = 44 bytes, the "preamble"
//! key check: HMAC-SHA256(check key, preamble)                              = 32 bytes
//! records (see the stream module), purpose "file"
//! ```
//!
//! The record key and the check key are derived per file by HKDF-SHA256
//! from the shared key, with the salt as HKDF salt and the whole preamble
//! in the info: a file never shares a record key with another, and a
//! changed version, kind or salt byte changes both keys. The key check
//! lets the reader tell "wrong key" (or an altered header) from "altered
//! data" before opening any record.

use super::error::SealError;
use super::key::SealKey;
use super::stream::{OpeningReader, Purpose, SealingWriter, read_full};
use super::{SEAL_MAGIC, SEAL_VERSION, derive, hmac_sha256, random, verify_hmac};
use std::io::{Read, Write};

/// Kind byte of a sealed file.
pub(crate) const KIND_FILE: u8 = 1;
/// Bytes of the preamble (magic, version, kind, reserved, salt).
const PREAMBLE_LEN: usize = 44;
/// Bytes of the whole header (preamble and key check).
pub const SEALED_FILE_HEADER_LEN: usize = PREAMBLE_LEN + 32;

/// HKDF info of a sealed file's record key (the preamble follows).
const INFO_RECORDS: &[u8] = b"mvvm-seal v1 file records";
/// HKDF info of a sealed file's check key (the preamble follows).
const INFO_CHECK: &[u8] = b"mvvm-seal v1 file key check";

/// What the first bytes of a snapshot file or stream say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    /// Starts with `"MVVMSEAL"`: sealed (file or handshake).
    Sealed,
    /// Starts with `"MVVMSNAP"`: an ordinary snapshot.
    Plain,
    /// Anything else (including fewer than 8 bytes).
    Unknown,
}

impl SealedKind {
    /// Classifies the first bytes of an input.
    pub fn of(prefix: &[u8]) -> SealedKind {
        if prefix.starts_with(SEAL_MAGIC) {
            SealedKind::Sealed
        } else if prefix.starts_with(&crate::SNAPSHOT_MAGIC) {
            SealedKind::Plain
        } else {
            SealedKind::Unknown
        }
    }
}

/// The two per-file keys.
fn file_keys(key: &SealKey, preamble: &[u8]) -> ([u8; 32], [u8; 32]) {
    let salt = &preamble[PREAMBLE_LEN - 32..];
    (
        derive(key, salt, &[INFO_RECORDS, preamble]),
        derive(key, salt, &[INFO_CHECK, preamble]),
    )
}

/// Writes a sealed file's header (fresh salt) to `out` and returns the
/// writer of its records. Call [`SealingWriter::finish`] at the end.
pub fn seal_writer<W: Write>(mut out: W, key: &SealKey) -> Result<SealingWriter<W>, SealError> {
    let mut preamble = [0u8; PREAMBLE_LEN];
    preamble[..8].copy_from_slice(SEAL_MAGIC);
    preamble[8] = SEAL_VERSION;
    preamble[9] = KIND_FILE;
    random(&mut preamble[12..])?;
    let (records, check) = file_keys(key, &preamble);
    let mac = hmac_sha256(&check, &[&preamble]);
    out.write_all(&preamble)
        .and_then(|()| out.write_all(&mac))
        .map_err(|e| SealError::io("writing the sealed header", e))?;
    Ok(SealingWriter::new(out, &records, Purpose::File))
}

/// Reads and checks a sealed file's header from `input` (`what` names it
/// in errors) and returns the reader of its contents. An unsealed snapshot
/// is [`SealError::NotSealed`]; a key that does not match is
/// [`SealError::WrongKey`]; every later alteration is caught record by
/// record.
pub fn open_reader<R: Read>(
    mut input: R,
    key: &SealKey,
    what: &str,
) -> Result<OpeningReader<R>, SealError> {
    let mut header = [0u8; SEALED_FILE_HEADER_LEN];
    let n = read_full(&mut input, &mut header)?;
    if n == 0 {
        // Nothing at all: a sender that ended without a checkpoint.
        return Err(SealError::Truncated { records: 0 });
    }
    match SealedKind::of(&header[..n]) {
        SealedKind::Sealed => {}
        SealedKind::Plain => {
            return Err(SealError::NotSealed {
                what: what.to_string(),
            });
        }
        SealedKind::Unknown => {
            return Err(SealError::BadMagic {
                what: what.to_string(),
            });
        }
    }
    let (version, kind) = (header[8], header[9]);
    if version != SEAL_VERSION || kind != KIND_FILE || header[10..12] != [0, 0] {
        return Err(SealError::Unsupported {
            what: what.to_string(),
            version,
            kind,
            expected: SEAL_VERSION,
        });
    }
    if n < SEALED_FILE_HEADER_LEN {
        return Err(SealError::Truncated { records: 0 });
    }
    let (preamble, mac) = header.split_at(PREAMBLE_LEN);
    let (records, check) = file_keys(key, preamble);
    if !verify_hmac(&check, &[preamble], mac) {
        return Err(SealError::WrongKey {
            what: what.to_string(),
        });
    }
    Ok(OpeningReader::new(input, &records, Purpose::File))
}
