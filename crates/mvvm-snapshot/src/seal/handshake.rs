//! The mutual challenge-response handshake that opens an authenticated
//! transfer over a two-way connection (TCP), before any snapshot byte.
//!
//! ```text
//! sender → receiver   hello:  "MVVMSEAL" | version | kind 2 | sender nonce (32)                 42 bytes
//! receiver → sender   hello:  "MVVMSEAL" | version | kind 3 | receiver nonce (32) | proof (32)  74 bytes
//! sender → receiver   proof (32), then the sealed records (purpose "s->r")
//! ```
//!
//! Both nonces are fresh random bytes. With `T` the two hellos without the
//! proof (84 bytes) and `K` the shared key, HKDF-SHA256 with salt
//! `sender nonce | receiver nonce` derives a handshake key `Kh` and the
//! record key, both with `T` in their info. The receiver's proof is
//! HMAC-SHA256(Kh, "receiver proves" | T), the sender's HMAC-SHA256(Kh,
//! "sender proves" | T): distinct labels, so neither side's proof can be
//! reflected back as the other's.
//!
//! - The sender checks the receiver's proof before it sends anything of
//!   the snapshot: a snapshot never goes to a party without the key.
//! - The receiver checks the sender's proof before it reads any record: a
//!   party without the key cannot feed it a snapshot.
//! - The receiver's nonce is new each time, so a recorded session replayed
//!   to a fresh receiver fails at the sender's proof (it was computed over
//!   another receiver nonce), and its records would not open either (the
//!   record key depends on both nonces).

use super::error::SealError;
use super::key::SealKey;
use super::stream::{OpeningReader, Purpose, SealingWriter, read_full};
use super::{SEAL_MAGIC, SEAL_VERSION, derive, hmac_sha256, random, verify_hmac};
use std::io::{Read, Write};

/// Kind byte of the sender's hello.
const KIND_SENDER_HELLO: u8 = 2;
/// Kind byte of the receiver's hello.
const KIND_RECEIVER_HELLO: u8 = 3;
/// Bytes of a hello without a proof.
const HELLO_LEN: usize = 8 + 1 + 1 + 32;
/// Bytes of a proof (an HMAC-SHA256).
const PROOF_LEN: usize = 32;

const INFO_HANDSHAKE: &[u8] = b"mvvm-seal v1 handshake";
const INFO_RECORDS: &[u8] = b"mvvm-seal v1 sender to receiver";
const LABEL_RECEIVER: &[u8] = b"receiver proves";
const LABEL_SENDER: &[u8] = b"sender proves";

/// A hello: magic, version, kind, a fresh nonce.
fn hello(kind: u8) -> Result<[u8; HELLO_LEN], SealError> {
    let mut h = [0u8; HELLO_LEN];
    h[..8].copy_from_slice(SEAL_MAGIC);
    h[8] = SEAL_VERSION;
    h[9] = kind;
    random(&mut h[10..])?;
    Ok(h)
}

/// The handshake key and the record key of a session whose hellos are
/// `sender` and `receiver` (the latter without its proof).
fn session_keys(key: &SealKey, sender: &[u8; HELLO_LEN], receiver: &[u8]) -> ([u8; 32], [u8; 32]) {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&sender[10..]);
    salt[32..].copy_from_slice(&receiver[10..HELLO_LEN]);
    (
        derive(key, &salt, &[INFO_HANDSHAKE, sender, receiver]),
        derive(key, &salt, &[INFO_RECORDS, sender, receiver]),
    )
}

/// Checks a peer hello's version and kind.
fn check_hello(h: &[u8], kind: u8, what: &'static str) -> Result<(), SealError> {
    if h[8] != SEAL_VERSION || h[9] != kind {
        return Err(SealError::Unsupported {
            what: what.to_string(),
            version: h[8],
            kind: h[9],
            expected: SEAL_VERSION,
        });
    }
    Ok(())
}

/// The sending side (`mvvm-checkpoint`): runs the handshake on `stream`
/// and returns the writer of the sealed snapshot. Fails before anything of
/// the snapshot is sent unless the receiver proved it holds `key`. Call
/// [`SealingWriter::finish`] at the end of the snapshot.
pub fn sender_handshake<S: Read + Write>(
    mut stream: S,
    key: &SealKey,
) -> Result<SealingWriter<S>, SealError> {
    let mine = hello(KIND_SENDER_HELLO)?;
    stream
        .write_all(&mine)
        .and_then(|()| stream.flush())
        .map_err(|e| SealError::io("sending the handshake", e))?;
    let mut theirs = [0u8; HELLO_LEN + PROOF_LEN];
    // A receiver without the key refuses our hello and closes with it
    // unread: the kernel then resets the connection.
    let n = match read_full(&mut stream, &mut theirs) {
        Err(SealError::Io { error, .. })
            if matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            0
        }
        other => other?,
    };
    if n == 0 {
        return Err(SealError::PeerClosed {
            hint: "was the receiver started with --key?",
        });
    }
    if !theirs.starts_with(SEAL_MAGIC) {
        return Err(SealError::Handshake {
            what: "the receiver did not answer with an MVVM handshake",
        });
    }
    if n < theirs.len() {
        return Err(SealError::PeerClosed {
            hint: "the receiver stopped in the middle of its answer",
        });
    }
    check_hello(&theirs, KIND_RECEIVER_HELLO, "the receiver's handshake")?;
    let (receiver, proof) = theirs.split_at(HELLO_LEN);
    let (handshake, records) = session_keys(key, &mine, receiver);
    if !verify_hmac(&handshake, &[LABEL_RECEIVER, &mine, receiver], proof) {
        return Err(SealError::Handshake {
            what: "the receiver does not hold this key (wrong key on one side?); nothing was sent",
        });
    }
    let my_proof = hmac_sha256(&handshake, &[LABEL_SENDER, &mine, receiver]);
    stream
        .write_all(&my_proof)
        .map_err(|e| SealError::io("sending the handshake", e))?;
    Ok(SealingWriter::new(
        stream,
        &records,
        Purpose::SenderToReceiver,
    ))
}

/// The receiving side (`mvvm-restore` listening): runs the handshake on
/// `stream` and returns the reader of the sealed snapshot. Fails, having
/// read no snapshot byte, unless the sender proved it holds `key` in this
/// very session.
pub fn receiver_handshake<S: Read + Write>(
    mut stream: S,
    key: &SealKey,
) -> Result<OpeningReader<S>, SealError> {
    let mut theirs = [0u8; HELLO_LEN];
    let n = read_full(&mut stream, &mut theirs)?;
    if n == 0 {
        return Err(SealError::PeerClosed {
            hint: "the sender sent nothing",
        });
    }
    if n >= 8 && theirs.starts_with(&crate::SNAPSHOT_MAGIC) {
        // An ordinary snapshot: a sender without the key.
        return Err(SealError::PeerNotSealed);
    }
    if n >= 8 && !theirs.starts_with(SEAL_MAGIC) {
        return Err(SealError::Handshake {
            what: "the peer is not an MVVM sender (no MVVM handshake)",
        });
    }
    if n < HELLO_LEN {
        return Err(SealError::PeerClosed {
            hint: "the sender stopped in the middle of its handshake",
        });
    }
    check_hello(&theirs, KIND_SENDER_HELLO, "the sender's handshake")?;
    let mine = hello(KIND_RECEIVER_HELLO)?;
    let (handshake, records) = session_keys(key, &theirs, &mine);
    let my_proof = hmac_sha256(&handshake, &[LABEL_RECEIVER, &theirs, &mine]);
    // One write, so one segment: written as two, Nagle can hold the proof
    // back until the hello is acknowledged, and a close that follows a
    // refused sender proof then resets the connection with the proof
    // never sent.
    let mut answer = [0u8; HELLO_LEN + PROOF_LEN];
    answer[..HELLO_LEN].copy_from_slice(&mine);
    answer[HELLO_LEN..].copy_from_slice(&my_proof);
    stream
        .write_all(&answer)
        .and_then(|()| stream.flush())
        .map_err(|e| SealError::io("answering the handshake", e))?;
    let mut proof = [0u8; PROOF_LEN];
    if read_full(&mut stream, &mut proof)? < PROOF_LEN {
        return Err(SealError::PeerClosed {
            hint: "the sender gave up, so it does not hold this key: wrong key on one side?",
        });
    }
    if !verify_hmac(&handshake, &[LABEL_SENDER, &theirs, &mine], &proof) {
        return Err(SealError::Handshake {
            what: "the sender does not hold this key, or the session is a replay; no snapshot byte was read",
        });
    }
    Ok(OpeningReader::new(
        stream,
        &records,
        Purpose::SenderToReceiver,
    ))
}
