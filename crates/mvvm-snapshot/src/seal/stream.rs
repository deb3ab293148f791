//! The record layer: a [`SealingWriter`] cuts what is written into
//! records of at most [`RECORD_MAX`] bytes and seals each with
//! AES-256-GCM; an [`OpeningReader`] checks and opens them in order.
//!
//! Record on the wire:
//!
//! ```text
//! header: u32 big-endian = FINAL_FLAG (bit 31) | plaintext length (≤ RECORD_MAX)
//! ciphertext (plaintext length bytes) | GCM tag (16 bytes)
//! ```
//!
//! The header is the associated data, so its length and flag are
//! authenticated; the nonce is a 4-byte purpose tag followed by the
//! record's index (big-endian u64), so a record moved, dropped or repeated
//! is opened with the wrong nonce and fails. The last record carries the
//! final flag: a reader that reaches the end of the input without it
//! reports [`SealError::Truncated`], never a clean end of file.
//!
//! The writer holds back the current record until more data arrives or
//! [`SealingWriter::finish`] is called, so the final record always holds
//! the last bytes written (unless nothing was written at all). A consumer
//! that reads exactly as many bytes as it expects (the snapshot reader
//! stops at the snapshot's last byte) therefore cannot get all its data
//! without opening the final record too: cutting the final flag off is
//! detected even by a reader that never asks for end of file.

use super::error::SealError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::io::{self, Read, Write};

/// Largest plaintext in one record: 64 KiB, the snapshot's chunk size.
/// Small enough that a record is checked before much is buffered, large
/// enough that the 20 bytes of header and tag per record cost 0.03 %.
pub const RECORD_MAX: usize = 64 * 1024;
/// Bytes of a record's header.
pub const RECORD_HEADER: usize = 4;
/// Bytes of a record's authentication tag.
pub const TAG_LEN: usize = 16;
/// Bit of the header that marks the final record.
const FINAL_FLAG: u32 = 1 << 31;

/// What a record key protects; it goes into every nonce, so the same key
/// can never open a record sealed for another purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A sealed file (or one-way stream) with its own salt.
    File,
    /// Sender to receiver after a handshake.
    SenderToReceiver,
}

impl Purpose {
    fn tag(self) -> [u8; 4] {
        match self {
            Purpose::File => *b"file",
            Purpose::SenderToReceiver => *b"s->r",
        }
    }
}

/// The nonce of record `index` for `purpose`: unique under a record key,
/// which is what GCM requires (record keys are derived per session or per
/// file, and the index never repeats within one).
fn nonce(purpose: Purpose, index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&purpose.tag());
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The AEAD for a 32-byte record key.
fn record_cipher(key: &[u8; 32]) -> LessSafeKey {
    // AES-256 takes exactly 32 bytes: `new` cannot fail for this length.
    let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(unbound)
}

/// A [`Write`] adapter that seals everything written into records (see
/// the module documentation) and writes them to `W`.
///
/// Data reaches `W` only in whole records: [`Write::flush`] flushes the
/// records already sealed but keeps the current one back (unless
/// [`SealingWriter::finish_on_flush`] was asked for). [`SealingWriter::finish`]
/// seals the rest as the final record; a writer dropped without it leaves a
/// stream that every reader refuses as truncated, which is the point.
pub struct SealingWriter<W: Write> {
    inner: W,
    cipher: LessSafeKey,
    purpose: Purpose,
    next: u64,
    /// Header space, then the plaintext of the current record, then room
    /// for the tag: sealed in place and written with one call.
    frame: Vec<u8>,
    finished: bool,
    poisoned: bool,
    finish_on_flush: bool,
}

impl<W: Write> SealingWriter<W> {
    /// A writer sealing with the 32-byte record key `key`.
    pub(crate) fn new(inner: W, key: &[u8; 32], purpose: Purpose) -> SealingWriter<W> {
        let mut frame = Vec::with_capacity(RECORD_HEADER + RECORD_MAX + TAG_LEN);
        frame.resize(RECORD_HEADER, 0);
        SealingWriter {
            inner,
            cipher: record_cipher(key),
            purpose,
            next: 0,
            frame,
            finished: false,
            poisoned: false,
            finish_on_flush: false,
        }
    }

    /// Makes [`Write::flush`] call [`SealingWriter::finish`]: for a
    /// producer that writes one message and flushes once at its end (as
    /// [`crate::write`] does) through a `dyn Write` that has no `finish`.
    pub fn finish_on_flush(mut self) -> SealingWriter<W> {
        self.finish_on_flush = true;
        self
    }

    /// Seals what is buffered as the final record, writes it and flushes
    /// `W`. Calling it again does nothing; writing after it fails.
    pub fn finish(&mut self) -> Result<(), SealError> {
        if self.finished {
            return Ok(());
        }
        if self.poisoned {
            return Err(SealError::Poisoned);
        }
        self.emit(true)?;
        self.finished = true;
        self.inner
            .flush()
            .map_err(|e| SealError::io("flushing the sealed stream", e))
    }

    /// The underlying writer (after [`SealingWriter::finish`], all of the
    /// sealed stream has been written to it).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Bytes of plaintext buffered in the current record.
    fn buffered(&self) -> usize {
        self.frame.len() - RECORD_HEADER
    }

    /// Seals and writes the current record.
    fn emit(&mut self, last: bool) -> Result<(), SealError> {
        let index = self.next;
        self.next = index.checked_add(1).ok_or(SealError::CounterExhausted)?;
        let len = self.buffered();
        // RECORD_MAX < 2^31: the length never reaches the flag bit.
        let header = (len as u32) | if last { FINAL_FLAG } else { 0 };
        let header = header.to_be_bytes();
        self.frame[..RECORD_HEADER].copy_from_slice(&header);
        let (head, body) = self.frame.split_at_mut(RECORD_HEADER);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce(self.purpose, index), Aad::from(&*head), body)
            .map_err(|_| SealError::CounterExhausted)?;
        self.frame.extend_from_slice(tag.as_ref());
        let result = self.inner.write_all(&self.frame);
        self.frame.truncate(RECORD_HEADER);
        if let Err(e) = result {
            self.poisoned = true;
            return Err(SealError::io("writing a sealed record", e));
        }
        Ok(())
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(SealError::Poisoned.into_io());
        }
        if self.finished {
            return Err(SealError::AfterFinal.into_io());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // Emit a full record only once more data is at hand, so the final
        // record is never empty after data was written.
        if self.buffered() == RECORD_MAX {
            self.emit(false).map_err(SealError::into_io)?;
        }
        let n = buf.len().min(RECORD_MAX - self.buffered());
        self.frame.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.finish_on_flush {
            return self.finish().map_err(SealError::into_io);
        }
        self.inner.flush()
    }
}

/// A [`Read`] adapter that opens the records a [`SealingWriter`] wrote:
/// each record is authenticated whole before any of its bytes is
/// returned; after the final record it reports end of file; an input that
/// ends before the final record is [`SealError::Truncated`]. Errors reach
/// the caller as [`io::Error`]s carrying a [`SealError`] (see
/// [`SealError::of_io`]); after one, every further read fails.
pub struct OpeningReader<R: Read> {
    inner: R,
    cipher: LessSafeKey,
    purpose: Purpose,
    next: u64,
    /// The current record, opened: `plain[pos..]` is still to be read.
    plain: Vec<u8>,
    pos: usize,
    done: bool,
    poisoned: bool,
}

impl<R: Read> OpeningReader<R> {
    /// A reader opening with the 32-byte record key `key`.
    pub(crate) fn new(inner: R, key: &[u8; 32], purpose: Purpose) -> OpeningReader<R> {
        OpeningReader {
            inner,
            cipher: record_cipher(key),
            purpose,
            next: 0,
            plain: Vec::with_capacity(RECORD_MAX + TAG_LEN),
            pos: 0,
            done: false,
            poisoned: false,
        }
    }

    /// Whether the final record has been opened.
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads, checks and opens the next record into `plain`.
    fn next_record(&mut self) -> Result<(), SealError> {
        let index = self.next;
        let mut header = [0u8; RECORD_HEADER];
        if read_full(&mut self.inner, &mut header)? < RECORD_HEADER {
            return Err(SealError::Truncated { records: index });
        }
        let word = u32::from_be_bytes(header);
        let last = word & FINAL_FLAG != 0;
        let len = word & !FINAL_FLAG;
        if len as usize > RECORD_MAX {
            return Err(SealError::RecordTooLarge {
                record: index,
                len,
                max: RECORD_MAX,
            });
        }
        let len = len as usize;
        self.plain.clear();
        self.plain.resize(len + TAG_LEN, 0);
        if read_full(&mut self.inner, &mut self.plain)? < len + TAG_LEN {
            return Err(SealError::Truncated { records: index });
        }
        // Ciphertext and tag are opened in place; the plaintext is the
        // first `len` bytes afterwards.
        self.cipher
            .open_in_place(
                nonce(self.purpose, index),
                Aad::from(header),
                &mut self.plain,
            )
            .map_err(|_| SealError::Tampered { record: index })?;
        self.plain.truncate(len);
        self.next = index.checked_add(1).ok_or(SealError::CounterExhausted)?;
        self.pos = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(SealError::Poisoned.into_io());
        }
        while self.pos == self.plain.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_record() {
                self.poisoned = true;
                self.plain.clear();
                self.pos = 0;
                return Err(e.into_io());
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, SealError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SealError::io("reading the sealed stream", e)),
        }
    }
    Ok(done)
}
