//! Tests of the sealing layer: records, sealed files, the handshake.
//! Every refusal test also checks that no wrong data came out first.

use super::*;
use std::io::{Cursor, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

fn key(b: u8) -> SealKey {
    SealKey::from_bytes(&[b; 32]).unwrap()
}

/// Deterministic, non-repeating test data.
fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// A sealed file of `plain` under `k`.
fn sealed(plain: &[u8], k: &SealKey) -> Vec<u8> {
    let mut w = seal_writer(Vec::new(), k).unwrap();
    // Odd-sized writes: record boundaries must not depend on them.
    for piece in plain.chunks(7919) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap();
    w.into_inner()
}

fn open_all(bytes: &[u8], k: &SealKey) -> Result<Vec<u8>, SealError> {
    let mut r = open_reader(bytes, k, "test")?;
    let mut out = Vec::new();
    match r.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => match SealError::of_io(&e) {
            Some(_) => Err(e
                .into_inner()
                .and_then(|b| b.downcast::<SealError>().ok())
                .map(|b| *b)
                .unwrap_or(SealError::Poisoned)),
            None => panic!("an error not from the seal layer: {e}"),
        },
    }
}

/// Offsets of the records of a sealed file: (start, total length).
fn records(file: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = SEALED_FILE_HEADER_LEN;
    while at < file.len() {
        let word = u32::from_be_bytes(file[at..at + 4].try_into().unwrap());
        let len = (word & 0x7fff_ffff) as usize + RECORD_HEADER + TAG_LEN;
        out.push((at, len));
        at += len;
    }
    out
}

#[test]
fn right_key_round_trips_every_size() {
    let k = key(1);
    for len in [
        0,
        1,
        RECORD_MAX - 1,
        RECORD_MAX,
        RECORD_MAX + 1,
        2 * RECORD_MAX,
        3 * RECORD_MAX + 5,
    ] {
        let plain = data(len);
        let file = sealed(&plain, &k);
        let n_records = len.div_ceil(RECORD_MAX).max(1);
        assert_eq!(
            file.len(),
            SEALED_FILE_HEADER_LEN + len + n_records * (RECORD_HEADER + TAG_LEN),
            "{len}"
        );
        assert_eq!(open_all(&file, &k).unwrap(), plain, "{len}");
        // Confidentiality: the plaintext does not appear in the file.
        if len >= 64 {
            assert!(!file.windows(32).any(|w| w == &plain[..32]));
        }
    }
}

#[test]
fn two_files_of_the_same_data_differ() {
    let k = key(1);
    let plain = data(1000);
    assert_ne!(
        sealed(&plain, &k),
        sealed(&plain, &k),
        "fresh salt per file"
    );
}

#[test]
fn wrong_key_is_refused_before_any_record() {
    let file = sealed(&data(5000), &key(1));
    assert!(matches!(
        open_all(&file, &key(2)),
        Err(SealError::WrongKey { .. })
    ));
}

#[test]
fn unsealed_and_foreign_inputs_are_refused() {
    let mut snapshot = Vec::new();
    crate::write(&mut snapshot, &crate::SnapshotParts::default()).unwrap();
    assert!(matches!(
        open_all(&snapshot, &key(1)),
        Err(SealError::NotSealed { .. })
    ));
    assert!(matches!(
        open_all(b"hello world, this is not it", &key(1)),
        Err(SealError::BadMagic { .. })
    ));
    // Nothing at all: a sender that ended without a checkpoint.
    assert!(matches!(
        open_all(b"", &key(1)),
        Err(SealError::Truncated { records: 0 })
    ));
    let mut other_version = sealed(b"x", &key(1));
    other_version[8] = 2;
    assert!(matches!(
        open_all(&other_version, &key(1)),
        Err(SealError::Unsupported { version: 2, .. })
    ));
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let k = key(3);
    let plain = data(2 * RECORD_MAX + 100);
    let file = sealed(&plain, &k);
    let mut offsets: Vec<usize> = (0..SEALED_FILE_HEADER_LEN).collect();
    for (start, len) in records(&file) {
        // Header bytes, first and last ciphertext bytes, tag bytes.
        offsets.extend(start..start + RECORD_HEADER + 2);
        offsets.extend(start + len - TAG_LEN - 2..start + len);
    }
    offsets.extend((0..file.len()).step_by(4099));
    for at in offsets {
        for bit in [0x01, 0x80] {
            let mut bad = file.clone();
            bad[at] ^= bit;
            let r = open_all(&bad, &k);
            assert!(r.is_err(), "flip of bit {bit:#x} at {at} went unnoticed");
        }
    }
}

#[test]
fn the_error_names_the_record() {
    let k = key(3);
    let file = sealed(&data(3 * RECORD_MAX), &k);
    let (start, _) = records(&file)[1];
    let mut bad = file.clone();
    bad[start + 10] ^= 1;
    assert!(matches!(
        open_all(&bad, &k),
        Err(SealError::Tampered { record: 1 })
    ));
}

#[test]
fn truncation_anywhere_is_refused_never_a_clean_end() {
    let k = key(4);
    let plain = data(2 * RECORD_MAX + 3);
    let file = sealed(&plain, &k);
    let mut cuts: Vec<usize> = (0..file.len()).step_by(997).collect();
    for (start, len) in records(&file) {
        cuts.extend([start, start + 1, start + len - 1]);
    }
    for cut in cuts {
        let r = open_all(&file[..cut], &k);
        assert!(r.is_err(), "cut at {cut} of {} read cleanly", file.len());
    }
    // Exactly at a record boundary: the final record never came.
    let last = records(&file).last().unwrap().0;
    assert!(matches!(
        open_all(&file[..last], &k),
        Err(SealError::Truncated { records: 2 })
    ));
}

#[test]
fn a_reader_of_exact_length_still_needs_the_final_record() {
    // The writer holds the last full record back, so the final record
    // holds the last bytes: a consumer that reads exactly the length it
    // expects (as the snapshot reader does) cannot miss a cut final flag.
    let k = key(5);
    let plain = data(2 * RECORD_MAX);
    let file = sealed(&plain, &k);
    assert_eq!(records(&file).len(), 2);
    let last = records(&file)[1].0;
    let mut r = open_reader(&file[..last], &k, "t").unwrap();
    let mut buf = vec![0u8; plain.len()];
    let e = r.read_exact(&mut buf).unwrap_err();
    assert!(matches!(
        SealError::of_io(&e),
        Some(SealError::Truncated { .. })
    ));
}

#[test]
fn reordered_dropped_and_replayed_records_are_refused() {
    let k = key(6);
    let plain = data(3 * RECORD_MAX + 10);
    let file = sealed(&plain, &k);
    let recs = records(&file);
    assert_eq!(recs.len(), 4);
    let piece = |i: usize| &file[recs[i].0..recs[i].0 + recs[i].1];
    let head = &file[..SEALED_FILE_HEADER_LEN];
    let build = |order: &[usize]| {
        let mut v = head.to_vec();
        for &i in order {
            v.extend_from_slice(piece(i));
        }
        v
    };
    for order in [
        &[1, 0, 2, 3][..], // swapped
        &[0, 2, 3],        // dropped
        &[0, 0, 1, 2, 3],  // repeated
        &[0, 1, 2, 2, 3],  // repeated
        &[0, 1, 3],        // final moved up
    ] {
        assert!(
            matches!(open_all(&build(order), &k), Err(SealError::Tampered { .. })),
            "{order:?}"
        );
    }
    // A record from another file sealed with the same key does not open:
    // every file has its own record key.
    let other = sealed(&plain, &k);
    let mut spliced = head.to_vec();
    spliced.extend_from_slice(piece(0));
    let o = records(&other);
    spliced.extend_from_slice(&other[o[1].0..o[1].0 + o[1].1]);
    assert!(matches!(
        open_all(&spliced, &k),
        Err(SealError::Tampered { record: 1 })
    ));
    assert_eq!(open_all(&build(&[0, 1, 2, 3]), &k).unwrap(), plain);
}

#[test]
fn a_writer_dropped_without_finish_leaves_a_truncated_stream() {
    let k = key(7);
    let mut out = Vec::new();
    {
        let mut w = seal_writer(&mut out, &k).unwrap();
        w.write_all(&data(3 * RECORD_MAX)).unwrap();
        w.flush().unwrap();
    }
    assert!(matches!(
        open_all(&out, &k),
        Err(SealError::Truncated { .. })
    ));
}

#[test]
fn finish_on_flush_ends_the_stream_and_later_writes_fail() {
    let k = key(7);
    let mut w = seal_writer(Vec::new(), &k).unwrap().finish_on_flush();
    w.write_all(b"abc").unwrap();
    w.flush().unwrap();
    assert!(w.write(b"d").is_err());
    assert_eq!(open_all(&w.into_inner(), &k).unwrap(), b"abc");
}

#[test]
fn a_snapshot_through_a_sealed_file_and_the_atomic_writer() {
    let k = key(8);
    let mut memory = vec![0u8; 8 * 65536];
    memory[100_000] = 9;
    memory[300_000..300_100].fill(3);
    let parts = crate::SnapshotParts {
        info: crate::SnapshotInfo {
            wasm_sha256: [5; 32],
            ..Default::default()
        },
        memory: &memory,
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("mvvm-seal-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.bin");
    crate::write_sealed_file_atomic(&path, &parts, &k).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(SealedKind::of(&bytes), SealedKind::Sealed);
    // Nothing but the sealed file is left in the directory.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let snap = crate::read(open_reader(&bytes[..], &k, "s.bin").unwrap()).unwrap();
    snap.check_module(&[5; 32]).unwrap();
    let mut restored = vec![0u8; memory.len()];
    snap.memory.copy_into(&mut restored).unwrap();
    assert_eq!(restored, memory);
    // The snapshot reader refuses the sealed file as it is, from a stream
    // and from the file, saying it needs the key.
    let needs_key = |r: Result<crate::Snapshot, crate::SnapshotError>| {
        matches!(
            r,
            Err(crate::SnapshotError::Seal(SealError::NeedsKey { .. }))
        )
    };
    assert!(needs_key(crate::read(&bytes[..])));
    assert!(needs_key(crate::open_file(&path)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stream that records everything read through it.
struct Tee<S> {
    inner: S,
    log: Arc<Mutex<Vec<u8>>>,
}

impl<S: Read> Read for Tee<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.log.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<S: Write> Write for Tee<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A peer that plays back recorded bytes and swallows what it is sent.
struct Scripted {
    input: Cursor<Vec<u8>>,
    sent: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sender's result, the receiver's, and what crossed to the receiver.
type SessionResult = (Result<(), SealError>, Result<Vec<u8>, SealError>, Vec<u8>);

/// Sends `plain` from a sender with `send_key` to a receiver with
/// `recv_key` over a socket pair; returns both sides' results and what the
/// receiver read off the wire.
fn session(plain: &[u8], send_key: SealKey, recv_key: SealKey) -> SessionResult {
    let (a, b) = UnixStream::pair().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let tee = Tee {
        inner: b,
        log: log.clone(),
    };
    let plain = plain.to_vec();
    let sender = std::thread::spawn(move || -> Result<(), SealError> {
        let mut w = sender_handshake(a, &send_key)?;
        w.write_all(&plain).map_err(|e| SealError::io("w", e))?;
        w.finish()
    });
    let received = (|| {
        let mut r = receiver_handshake(tee, &recv_key)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<SealError>() {
                Ok(s) => *s,
                Err(other) => SealError::io("r", std::io::Error::other(other)),
            },
            None => SealError::Poisoned,
        })?;
        Ok(out)
    })();
    let sent = sender.join().unwrap();
    let wire = log.lock().unwrap().clone();
    (sent, received, wire)
}

#[test]
fn handshake_with_the_right_key_round_trips() {
    let plain = data(2 * RECORD_MAX + 77);
    let (sent, received, wire) = session(&plain, key(1), key(1));
    sent.unwrap();
    assert_eq!(received.unwrap(), plain);
    assert!(!wire.windows(32).any(|w| w == &plain[1000..1032]));
}

#[test]
fn handshake_with_a_wrong_key_fails_on_both_sides_before_any_record() {
    let (sent, received, wire) = session(&data(1000), key(1), key(2));
    assert!(matches!(sent, Err(SealError::Handshake { .. })), "{sent:?}");
    assert!(
        matches!(received, Err(SealError::PeerClosed { .. })),
        "{received:?}"
    );
    // Only the sender's hello crossed: no proof, no record.
    assert_eq!(wire.len(), 42);
}

#[test]
fn an_unsealed_sender_is_refused() {
    let mut snapshot = Vec::new();
    crate::write(&mut snapshot, &crate::SnapshotParts::default()).unwrap();
    let peer = Scripted {
        input: Cursor::new(snapshot),
        sent: Vec::new(),
    };
    assert!(matches!(
        receiver_handshake(peer, &key(1)),
        Err(SealError::PeerNotSealed)
    ));
}

#[test]
fn a_recorded_session_replayed_to_a_fresh_receiver_is_refused() {
    let plain = data(RECORD_MAX + 5);
    let (sent, received, wire) = session(&plain, key(1), key(1));
    sent.unwrap();
    assert_eq!(received.unwrap(), plain);
    let replay = Scripted {
        input: Cursor::new(wire),
        sent: Vec::new(),
    };
    let r = receiver_handshake(replay, &key(1));
    assert!(
        matches!(r, Err(SealError::Handshake { .. })),
        "{:?}",
        r.err()
    );
}

#[test]
fn a_recorded_receiver_replayed_to_a_fresh_sender_is_refused() {
    // Record what a receiver answers, then play it to a new sender: the
    // answer's proof covers the old sender nonce.
    let (a, b) = UnixStream::pair().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let tee = Tee {
        inner: a,
        log: log.clone(),
    };
    let recv = std::thread::spawn(move || {
        let mut r = receiver_handshake(b, &key(1)).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    });
    let mut w = sender_handshake(tee, &key(1)).unwrap();
    w.write_all(b"hello").unwrap();
    w.finish().unwrap();
    drop(w);
    assert_eq!(recv.join().unwrap(), b"hello");
    let answer = log.lock().unwrap().clone();
    let replay = Scripted {
        input: Cursor::new(answer),
        sent: Vec::new(),
    };
    assert!(matches!(
        sender_handshake(replay, &key(1)),
        Err(SealError::Handshake { .. })
    ));
}

#[test]
fn a_flipped_or_cut_session_is_refused() {
    // A man in the middle relays a live session and flips one byte of the
    // first record, or cuts the stream inside the second record.
    let plain = data(2 * RECORD_MAX + 9);
    for (flip_at, cut_at) in [(Some(42 + 32 + 100), None), (None, Some(42 + 32 + 70_000))] {
        let (a, b) = UnixStream::pair().unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        // Relay sender (a) ↔ receiver (d) through b and c, altering.
        let relay_up = {
            let (mut from, mut to) = (b.try_clone().unwrap(), c.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = 0usize;
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let piece = &mut buf[..n];
                    if let Some(at) = flip_at
                        && (seen..seen + n).contains(&at)
                    {
                        piece[at - seen] ^= 0x20;
                    }
                    let keep = match cut_at {
                        Some(cut) if seen + n > cut => cut.saturating_sub(seen),
                        _ => n,
                    };
                    if to.write_all(&piece[..keep]).is_err() {
                        break;
                    }
                    seen += n;
                    if keep < n {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        let relay_down = {
            let (mut from, mut to) = (c, b);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
            })
        };
        let plain2 = plain.clone();
        let sender = std::thread::spawn(move || {
            let mut w = sender_handshake(a, &key(1))?;
            let _ = w.write_all(&plain2);
            w.finish()
        });
        let mut r = receiver_handshake(d, &key(1)).unwrap();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        let seal = SealError::of_io(&e).unwrap();
        match (flip_at, seal) {
            (Some(_), SealError::Tampered { record: 0 }) => {}
            (None, SealError::Truncated { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(out.len() < plain.len());
        drop(r);
        let _ = sender.join();
        let _ = relay_up.join();
        let _ = relay_down.join();
    }
}
