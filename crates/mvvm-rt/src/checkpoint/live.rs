//! Pre-copy live migration (`mvvm-checkpoint --live`): when the trigger
//! fires the program does not stop; a thread sends its whole memory, then
//! rounds of the 64 KiB chunks written since the previous round, while it
//! runs on; then it asks for the usual stop, and the final part (frames,
//! globals, tables, host state, and the chunks written since the last
//! round) follows. Wire format: `mvvm_snapshot::live`.
//!
//! ```text
//!  trigger ─▶ Probe: start dirty tracking, connect and send the preamble,
//!             spawn the pre-copy thread, return 0 (run on)
//!             thread: round 0: every non-zero chunk
//!                     round k: take the dirty set and protect it, then read and send it
//!                     until a round is small (est. < target pause) or stops shrinking,
//!                     or max rounds ─▶ set FLAG_REQUEST, end
//!  next probe ─▶ unwind ─▶ capture: join the thread, write the final part over the
//!             pre-copied image with the chunks dirty since the last round
//! ```
//!
//! Correctness of a round: the chunks are protected *before* they are
//! read, so a write racing the read faults and re-dirties its chunk, which
//! a later round or the final part sends again; what the receiver ends
//! with is what the memory held at the stop.
//!
//! Ending otherwise: a request (signal) while pre-copying stops at once
//! (the thread ends after its current record, re-marking what it took and
//! did not send); a program that exits while pre-copying ends the thread
//! and closes the connection (the receiver sees a cut stream and resumes
//! nothing, as with a run that ends without a checkpoint), with a warning
//! on stderr; a receiver that cannot be reached at the trigger stops the
//! program with that error, as without `--live`.

use super::control::FLAG_REQUEST;
use crate::memory::precopy::PrecopySource;
use crate::vmctx::VMLimits;
use mvvm_snapshot::CHUNK_SIZE;
use mvvm_snapshot::live as wire;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CHUNK: usize = CHUNK_SIZE as usize;
/// Chunks per data record (the wire format's largest).
const RECORD_CHUNKS: usize = wire::MAX_RECORD_BYTES as usize / CHUNK;

/// How pre-copy rounds go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Most pre-copy rounds, the first (whole memory) included; at least 1,
    /// at most `mvvm_snapshot::live::MAX_LIVE_ROUNDS`.
    pub max_rounds: u32,
    /// Stop pre-copying once the next round would be at most this many
    /// chunks.
    pub small_round_chunks: u64,
    /// ... or would take less than this to send at the rate measured so far.
    pub target_pause: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            max_rounds: 8,
            small_round_chunks: 4,
            target_pause: Duration::from_millis(5),
        }
    }
}

/// What a live migration sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveStats {
    /// Chunk data bytes of each pre-copy round (round 0: the whole
    /// non-zero memory).
    pub round_bytes: Vec<u64>,
    /// Bytes of the final part (sent while the program was stopped).
    pub final_bytes: u64,
    /// Every byte of the stream.
    pub total_bytes: u64,
    /// From the first trigger to the last byte sent.
    pub total_time: Duration,
    /// From the final stop's trigger to the last byte sent.
    pub pause: Duration,
    /// Why pre-copying ended.
    pub stop_reason: String,
}

/// The live state of a run, in its checkpoint control.
pub(crate) enum Live {
    /// Waiting for the trigger, with the stream's writer.
    Armed {
        opts: LiveOptions,
        out: Box<dyn Write + Send>,
        back: Option<super::BackChannel>,
        shared: Arc<Shared>,
    },
    /// The pre-copy thread runs (or has ended and waits to be joined).
    Running { shared: Arc<Shared> },
    /// The trigger fired but pre-copy could not start: the final part is
    /// the whole memory.
    Direct {
        out: Box<dyn Write + Send>,
        started: Instant,
    },
    /// The trigger fired but the stream could not be started (the
    /// receiver is unreachable): why, for the stop that follows.
    Failed(String),
    /// Done (the final part is written, or it failed).
    Spent,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Live::Armed { .. } => "Live::Armed",
            Live::Running { .. } => "Live::Running",
            Live::Direct { .. } => "Live::Direct",
            Live::Failed(_) => "Live::Failed",
            Live::Spent => "Live::Spent",
        })
    }
}

/// What the pre-copy thread hands back.
pub(crate) struct Handover {
    pub out: Box<dyn Write + Send>,
    pub session: [u8; 32],
    pub sent: u64,
    pub round_bytes: Vec<u64>,
    pub started: Instant,
    pub stop_reason: String,
}

type Joined = Result<Handover, String>;

/// Shared between the run (its guard and control) and the thread.
#[derive(Default)]
pub(crate) struct Shared {
    /// The run wants the thread to end now.
    stop: AtomicBool,
    handle: Mutex<Option<JoinHandle<Joined>>>,
}

impl Shared {
    /// Stops and joins the thread, if one runs; its result.
    pub(crate) fn finish(&self) -> Option<Joined> {
        self.stop.store(true, Ordering::SeqCst);
        let h = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(
            h.join()
                .unwrap_or_else(|_| Err("the pre-copy thread panicked".into())),
        )
    }
}

/// Held by a run while it may pre-copy: joins the thread when the run
/// ends by any way (a panic included), before the store, whose memory the
/// thread reads, can be dropped.
pub(crate) struct LiveGuard(pub(crate) Arc<Shared>);

impl Drop for LiveGuard {
    /// A thread still here at the end of the run means the program ended
    /// (or failed) while pre-copying: the receiver gets a cut stream and
    /// resumes nothing, which the user is told.
    fn drop(&mut self) {
        match self.0.finish() {
            None => {}
            Some(Ok(h)) => tracing::warn!(
                rounds = h.round_bytes.len(),
                "live migration: the program ended while pre-copying; nothing was migrated \
                 (the receiver sees a cut stream)"
            ),
            Some(Err(e)) => tracing::warn!(
                "live migration: the program ended while pre-copying, which had failed: {e}"
            ),
        }
    }
}

impl Live {
    /// A run that will pre-copy to `out`; the guard to keep for the run.
    pub(crate) fn arm(
        opts: LiveOptions,
        out: Box<dyn Write + Send>,
        back: Option<super::BackChannel>,
    ) -> (Live, LiveGuard) {
        let shared = Arc::new(Shared::default());
        (
            Live::Armed {
                opts,
                out,
                back,
                shared: Arc::clone(&shared),
            },
            LiveGuard(shared),
        )
    }
}

/// The trigger fired: start pre-copying `src` (`None`: tracking could not
/// start; the final part then carries everything). `limits` is the
/// store's, for the request at the end. Whether the program runs on.
///
/// # Safety
/// `limits` must stay valid until the thread is joined (the store outlives
/// the [`LiveGuard`] its run holds).
pub(crate) unsafe fn start(
    live: &mut Live,
    src: Option<PrecopySource>,
    limits: *const VMLimits,
) -> bool {
    let Live::Armed { .. } = live else {
        return false;
    };
    let Live::Armed {
        opts,
        mut out,
        back,
        shared,
    } = std::mem::replace(live, Live::Spent)
    else {
        return false;
    };
    let started = Instant::now();
    // The preamble goes out here, on the probing thread, so that a
    // receiver nobody can reach stops the program now with that error
    // (as a run without --live does) rather than from a thread the
    // program may outrun to its exit. It costs one connect and a few
    // bytes, inside the trigger's pause.
    let opened = match src {
        Some(_) => open_stream(&mut *out),
        None => Ok(([0; 32], 0)),
    };
    let (session, sent) = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("live migration: {e}");
            *live = Live::Failed(e);
            return false;
        }
    };
    let Some(src) = src else {
        tracing::warn!(
            "pre-copy not possible (no dirty tracking): the whole memory goes with the stop"
        );
        *live = Live::Direct { out, started };
        return false;
    };
    let addr = limits as usize;
    let th = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("mvvm-precopy".into())
        .spawn(move || {
            let r = precopy(&src, opts, out, back, &th.stop, (session, sent, started));
            // Ask for the stop whatever happened: the final part (or the
            // error) is the run's business now.
            // SAFETY: the store's limits outlive this thread (contract of
            // `start`); an atomic `fetch_or`.
            unsafe {
                (*(addr as *const VMLimits))
                    .probe_flag
                    .fetch_or(FLAG_REQUEST, Ordering::SeqCst)
            };
            r
        });
    match spawned {
        Ok(h) => {
            *shared.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(h);
            *live = Live::Running { shared };
            tracing::info!("pre-copy started; the program runs on");
            true
        }
        Err(e) => {
            tracing::warn!("cannot start the pre-copy thread ({e}): stopping now");
            *live = Live::Spent;
            false
        }
    }
}

/// The pre-copy thread: preamble, round 0, then rounds until small
/// enough, not shrinking, `max_rounds`, or `stop`.
fn precopy(
    src: &PrecopySource,
    opts: LiveOptions,
    mut out: Box<dyn Write + Send>,
    back: Option<super::BackChannel>,
    stop: &AtomicBool,
    (session, mut sent, started): ([u8; 32], u64, Instant),
) -> Joined {
    // The connection exists now: its way back carries the receiver's
    // acknowledgements, read by a thread of their own.
    let acks = back.and_then(|b| b()).map(ack_reader);
    let mut round_bytes = Vec::new();
    let mut buf = vec![0u8; wire::MAX_RECORD_BYTES as usize];
    // Round 0: the whole memory; dirty tracking started at the trigger,
    // so what the program writes meanwhile is the next round.
    let t0 = Instant::now();
    let len = src.len();
    let all: Vec<u64> = {
        let mut v = vec![0u64; len.div_ceil(CHUNK).div_ceil(64)];
        for i in 0..len.div_ceil(CHUNK) {
            v[i / 64] |= 1 << (i % 64);
        }
        v
    };
    let (bytes, n) =
        send_round(src, &all, true, &mut *out, &mut buf, stop).map_err(|e| e.to_string())?;
    sent += n;
    sent += wire::write_round_end(&mut *out, 0, bytes).map_err(|e| e.to_string())?;
    if acks.is_some() {
        sent += wire::write_pad(&mut *out).map_err(|e| e.to_string())?;
    }
    round_bytes.push(bytes);
    let acks = wait_ack(acks, 0, stop);
    let mut rate = bytes as f64 / t0.elapsed().as_secs_f64().max(1e-6);
    let mut prev_chunks = u64::MAX;
    let mut acks = acks;
    let stop_reason = loop {
        if stop.load(Ordering::SeqCst) {
            break "stop requested".to_string();
        }
        let next = src.dirty_count();
        let est = Duration::from_secs_f64((next * CHUNK_SIZE) as f64 / rate.max(1.0));
        if next <= opts.small_round_chunks || est <= opts.target_pause {
            break format!(
                "small enough ({next} chunks, about {:.1} ms)",
                est.as_secs_f64() * 1e3
            );
        }
        if next >= prev_chunks {
            break format!("not shrinking ({next} chunks after {prev_chunks})");
        }
        if round_bytes.len() as u32 >= opts.max_rounds.clamp(1, wire::MAX_LIVE_ROUNDS) {
            break format!("{} rounds", round_bytes.len());
        }
        let t = Instant::now();
        let dirty = match src.take_and_protect() {
            Ok(d) => d,
            Err(e) => break format!("cannot protect memory ({e})"),
        };
        let (bytes, n) =
            send_round(src, &dirty, false, &mut *out, &mut buf, stop).map_err(|e| e.to_string())?;
        sent += n;
        let round = round_bytes.len() as u32;
        sent += wire::write_round_end(&mut *out, round, bytes).map_err(|e| e.to_string())?;
        if acks.is_some() {
            sent += wire::write_pad(&mut *out).map_err(|e| e.to_string())?;
        }
        round_bytes.push(bytes);
        acks = wait_ack(acks, round, stop);
        rate = bytes as f64 / t.elapsed().as_secs_f64().max(1e-6);
        prev_chunks = bytes / CHUNK_SIZE;
        tracing::debug!(round, bytes, "pre-copy round sent");
    };
    tracing::info!(rounds = round_bytes.len(), bytes = sent, reason = %stop_reason, "pre-copy done");
    Ok(Handover {
        out,
        session,
        sent,
        round_bytes,
        started,
        stop_reason,
    })
}

/// Longest wait for a round's acknowledgement: a receiver that does not
/// answer (or a way back that broke) only makes the sender decide on the
/// rate its writes saw.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the receiver's acknowledgements (round numbers) on a thread of
/// their own, which ends with the connection; the channel they arrive on.
fn ack_reader(mut back: Box<dyn std::io::Read + Send>) -> mpsc::Receiver<u32> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("mvvm-precopy-acks".into())
        .spawn(move || {
            let mut b = [0u8; 4];
            loop {
                match back.read_exact(&mut b) {
                    Ok(()) => {
                        if tx.send(u32::from_le_bytes(b)).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
    rx
}

/// Waits until the receiver acknowledges round `round` (everything sent
/// so far is then stored on its side, so the rate measured includes the
/// whole path and nothing is left queued before the stop), or `stop`, or
/// [`ACK_TIMEOUT`]; gives the channel back unless it failed.
fn wait_ack(
    acks: Option<mpsc::Receiver<u32>>,
    round: u32,
    stop: &AtomicBool,
) -> Option<mpsc::Receiver<u32>> {
    let rx = acks?;
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Some(rx);
        }
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(r) if r >= round => return Some(rx),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                tracing::debug!(
                    round,
                    "no acknowledgement from the receiver: going on without"
                );
                return None;
            }
        }
    }
}

/// Sends the chunks `dirty` marks (round 0: skipping all-zero ones, which
/// the receiver's fresh memory already holds) in records of up to
/// [`RECORD_CHUNKS`] contiguous chunks. On `stop`, the chunks not sent are
/// marked dirty again. Returns (chunk data bytes, stream bytes).
fn send_round(
    src: &PrecopySource,
    dirty: &[u64],
    skip_zero: bool,
    out: &mut dyn Write,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<(u64, u64)> {
    let chunks = dirty.len() * 64;
    let is_dirty = |i: usize| dirty[i / 64] & (1 << (i % 64)) != 0;
    let (mut data, mut sent) = (0u64, 0u64);
    let mut i = 0;
    while i < chunks {
        if !is_dirty(i) {
            i += 1;
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            (i..chunks)
                .filter(|&j| is_dirty(j))
                .for_each(|j| src.mark_dirty(j));
            break;
        }
        let mut n = 0;
        while n < RECORD_CHUNKS && i + n < chunks && is_dirty(i + n) {
            n += 1;
        }
        let piece = &mut buf[..n * CHUNK];
        if !src.copy(i * CHUNK, piece) {
            // Beyond what the tracker knows: cannot be (bits are set only
            // for accessible chunks); leave it to the final part.
            (i..i + n).for_each(|j| src.mark_dirty(j));
            i += n;
            continue;
        }
        let length = src.len() as u64;
        if skip_zero {
            // Send the non-zero chunks of the piece, grouped.
            let mut k = 0;
            while k < n {
                if is_zero(&piece[k * CHUNK..(k + 1) * CHUNK]) {
                    k += 1;
                    continue;
                }
                let mut m = k + 1;
                while m < n && !is_zero(&piece[m * CHUNK..(m + 1) * CHUNK]) {
                    m += 1;
                }
                let off = ((i + k) * CHUNK) as u64;
                sent += wire::write_chunks(out, length, off, &piece[k * CHUNK..m * CHUNK])?;
                data += ((m - k) * CHUNK) as u64;
                k = m;
            }
        } else {
            sent += wire::write_chunks(out, length, (i * CHUNK) as u64, piece)?;
            data += piece.len() as u64;
        }
        i += n;
    }
    Ok((data, sent))
}

/// Whether a chunk is all zero.
fn is_zero(b: &[u8]) -> bool {
    let words = b.chunks_exact(8);
    let rest = words.remainder();
    rest.iter().all(|&x| x == 0)
        && words
            .into_iter()
            .all(|w| w.iter().fold(0u8, |a, &x| a | x) == 0)
}

/// The pre-copy thread's handover at the final stop: joins it (`Running`),
/// or starts the stream now (`Armed`, `Direct`: the final part then holds
/// every chunk).
pub(crate) fn take_handover(live: Live) -> Result<Handover, String> {
    match live {
        Live::Running { shared } => match shared.finish() {
            Some(r) => r.map_err(|e| format!("pre-copy failed: {e}")),
            None => Err("the pre-copy thread is gone".into()),
        },
        Live::Armed { out, .. } => direct(out, Instant::now(), "stopped before pre-copy started"),
        Live::Direct { out, started } => direct(out, started, "pre-copy not possible"),
        Live::Failed(e) => Err(e),
        Live::Spent => Err(
            "the live stream is gone (the pre-copy thread could not start, or the stream was used)"
                .into(),
        ),
    }
}

/// Starts a live stream on `out`: a fresh session id and the preamble
/// (for a connection, the connect happens here); the id and bytes sent.
fn open_stream(out: &mut dyn Write) -> Result<([u8; 32], u64), String> {
    let session = wire::new_session_id().map_err(|e| e.to_string())?;
    let sent = wire::write_preamble(out, &session).map_err(|e| e.to_string())?;
    Ok((session, sent))
}

/// A stream with no pre-copy round: preamble only.
fn direct(mut out: Box<dyn Write + Send>, started: Instant, why: &str) -> Result<Handover, String> {
    let (session, sent) = open_stream(&mut *out)?;
    Ok(Handover {
        out,
        session,
        sent,
        round_bytes: Vec::new(),
        started,
        stop_reason: why.to_string(),
    })
}

/// Writes the final part after `h`'s rounds: `parts` with the chunks
/// `dirty` marks (`None`: every chunk). `triggered_at`: the final stop's
/// trigger.
pub(crate) fn write_final(
    mut h: Handover,
    parts: &mvvm_snapshot::SnapshotParts<'_>,
    dirty: Option<Vec<u64>>,
    triggered_at: Instant,
) -> Result<(LiveStats, mvvm_snapshot::WriteStats), mvvm_snapshot::SnapshotError> {
    let dirty = if h.round_bytes.is_empty() {
        Vec::new() // no round: everything
    } else {
        dirty.unwrap_or_default()
    };
    let w = wire::write_final(&mut *h.out, &h.session, parts, dirty)?;
    let stats = LiveStats {
        round_bytes: h.round_bytes,
        final_bytes: w.total_bytes,
        total_bytes: h.sent + w.total_bytes,
        total_time: h.started.elapsed(),
        pause: triggered_at.elapsed(),
        stop_reason: h.stop_reason,
    };
    tracing::info!(
        rounds = stats.round_bytes.len(),
        final_bytes = stats.final_bytes,
        total_bytes = stats.total_bytes,
        pause_ms = stats.pause.as_secs_f64() * 1e3,
        "live migration sent"
    );
    Ok((stats, w))
}
