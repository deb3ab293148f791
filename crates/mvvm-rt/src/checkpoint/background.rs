//! Periodic checkpoints that do not stop the program for the write.
//!
//! A periodic checkpoint (`Trigger::Every`) stops the program only to
//! capture its frames, globals, tables and host state (all small) and to
//! take its memory's copy-on-write image (`memory/cow.rs`): the dirty
//! tracking period ends, the chunks it saw written are protected again
//! (the rest is still protected from the period), and the chunks the
//! snapshot reads are marked pending. A writer thread then writes the
//! snapshot from that image exactly as a stop-the-world checkpoint would
//! (temporary name, sync, rename: the same bytes, since it writes the
//! same parts from the same memory) while the program runs on; a write
//! of the program to a pending chunk faults, and the handler copies the
//! chunk aside before letting the write through.
//!
//! ```text
//!  trigger ─▶ unwind ─▶ capture parts ─▶ base chosen ─▶ image taken ─┬─ writer thread: write, sync, rename, end image
//!                                                                      └─ program: threads released, rewind, run on
//!                                                                         ... next period / the end: join the writer
//! ```
//!
//! Why not the kernel's copy-on-write (a forked child, as before): the
//! fork copies one page-table entry per 4 KiB of mapped memory in the
//! pause (16-35 ms per GiB measured), and the program then takes one
//! fault and one 4 KiB copy per page it writes. The image's pause costs
//! what the last period wrote (one `mprotect` per run of dirty units),
//! and on huge pages one entry per 2 MiB (docs/migration.md has the
//! figures). The fork remains as the fallback when the image cannot be
//! taken (no dirty-tracker slot free, `mprotect` refused): logged at info
//! level.
//!
//! Everything that updates the run's own state (the kept bases, the base
//! of the next incremental snapshot, the `on_checkpoint` report) happens
//! on the program's thread, before the writer starts or when its report
//! is taken. At most one writer runs at a time: a period that comes while
//! the previous snapshot is still being written is skipped (the program
//! would otherwise wait for the writer, which is what this design avoids;
//! the next period tries again); a checkpoint that stops the program, and
//! the end of the run, wait for it. The writer reads the program's
//! memory, so its job is waited for before the memory can go
//! (`PendingWrite`'s drop; the store drops its checkpoint control before
//! its memories). One writer thread serves the whole run
//! ([`WriterThread`], under `SCHED_BATCH` so that waking it does not
//! preempt the program in its pause).

use super::control::BaseInfo;
use super::{CheckpointError, CheckpointStats};
use crate::sys::process::{Child, fork_writer, report_ready, wait_child};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::time::Instant;

/// A job for the writer thread.
type Job = Box<dyn FnOnce() + Send>;

/// The thread that writes a run's background snapshots, one after the
/// other. Started once per run (at its start when it takes periodic
/// checkpoints), not per checkpoint: starting a thread (and joining it)
/// inside the pause cost up to several ms on a loaded machine, handing
/// it a job costs a channel send. Dropping it lets it finish its job
/// and joins it.
#[derive(Debug)]
pub(crate) struct WriterThread {
    jobs: Option<Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl WriterThread {
    /// Starts the thread.
    pub(crate) fn start() -> Result<WriterThread, CheckpointError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("mvvm-snapshot-writer".into())
            .spawn(move || {
                // Waking it for a job must not preempt the program's
                // thread in its pause (measured: 3-4 ms, a scheduler tick,
                // added to every pause otherwise).
                if let Err(e) = crate::sys::sched::set_batch() {
                    tracing::debug!("snapshot writer not in SCHED_BATCH: {e}");
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| {
                CheckpointError::Host(format!("cannot start the background snapshot writer: {e}"))
            })?;
        Ok(WriterThread {
            jobs: Some(tx),
            handle: Some(handle),
        })
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the writer thread returns: the snapshot's size and id, and the
/// time from the trigger to it being durable; or why it failed.
type ThreadReport = Result<(u64, [u8; 32], std::time::Duration), String>;

/// Who writes a background snapshot.
#[derive(Debug)]
enum Writer {
    /// The run's writer thread ([`WriterThread`]), reading the memory's
    /// copy-on-write image (`memory/cow.rs`): the usual way. Its report
    /// comes on the channel; the flag says it is there.
    Thread(Receiver<ThreadReport>, Arc<AtomicBool>),
    /// A forked child (the fallback when the image cannot be taken: no
    /// tracker slot free, or `mprotect` refused).
    Process(Child),
}

/// A snapshot being written in the background. Dropping it waits for the
/// writer thread's job (which reads the program's memory: it must be done
/// before the memory can go).
#[derive(Debug)]
pub(crate) struct PendingWrite {
    writer: Option<Writer>,
    /// Where it goes.
    pub path: PathBuf,
    /// Its stats but for the size, known once written.
    pub stats: CheckpointStats,
    /// Its depth in the incremental chain (0: full).
    pub depth: u32,
}

/// What the child reports: success, then the snapshot's size (u64), id
/// (32 bytes) and the time from the trigger to it being durable (u64
/// nanoseconds), little-endian.
const OK: u8 = 0;

/// Forks the writer of one snapshot: `write` runs in the child and returns
/// the snapshot's total size and id, or an error message.
pub(crate) fn spawn(
    write: impl FnOnce() -> Result<(u64, [u8; 32]), String>,
    path: PathBuf,
    stats: CheckpointStats,
    triggered_at: Instant,
    depth: u32,
) -> Result<PendingWrite, CheckpointError> {
    let work = move || match write() {
        Ok((bytes, id)) => {
            // The monotonic clock is the system's: the child's reading of
            // the time since the trigger is the parent's too.
            let durable = u64::try_from(triggered_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let mut out = vec![OK];
            out.extend_from_slice(&bytes.to_le_bytes());
            out.extend_from_slice(&id);
            out.extend_from_slice(&durable.to_le_bytes());
            out
        }
        Err(e) => {
            let mut out = vec![1];
            out.extend_from_slice(e.as_bytes());
            out
        }
    };
    // SAFETY: `work` only runs the snapshot writer on data the parent
    // captured before the fork (owned by the closure or borrowed from
    // memory the child's copy-on-write image holds): file I/O, checksums,
    // allocations. It logs nothing and takes no lock of the runtime or of
    // the host layers; the other threads of the program are parked (in
    // the rendezvous, or the runtime's timer in its channel wait), and
    // none of them exists in the child anyway.
    let child = unsafe { fork_writer(work) }.map_err(|e| {
        CheckpointError::Host(format!("cannot start the background snapshot writer: {e}"))
    })?;
    tracing::info!(pid = child.pid, path = %path.display(), "background snapshot written by a forked child (no copy-on-write image)");
    Ok(PendingWrite {
        writer: Some(Writer::Process(child)),
        path,
        stats,
        depth,
    })
}

/// Hands `write` (the snapshot writer reading the memory's copy-on-write
/// image, which it owns and drops when done) to the run's writer thread.
pub(crate) fn spawn_thread(
    thread: &WriterThread,
    write: impl FnOnce() -> Result<(u64, [u8; 32]), String> + Send + 'static,
    path: PathBuf,
    stats: CheckpointStats,
    triggered_at: Instant,
    depth: u32,
) -> Result<PendingWrite, CheckpointError> {
    let (tx, rx): (SyncSender<ThreadReport>, _) = std::sync::mpsc::sync_channel(1);
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(write))
            .unwrap_or_else(|_| Err("the snapshot writer panicked".into()))
            .map(|(bytes, id)| (bytes, id, triggered_at.elapsed()));
        let _ = tx.send(out);
        flag.store(true, Ordering::SeqCst);
    });
    let lost = || CheckpointError::Host("the background snapshot writer is gone".into());
    thread
        .jobs
        .as_ref()
        .ok_or_else(lost)?
        .send(job)
        .map_err(|_| lost())?;
    tracing::debug!(path = %path.display(), "background snapshot write started");
    Ok(PendingWrite {
        writer: Some(Writer::Thread(rx, done)),
        path,
        stats,
        depth,
    })
}

impl PendingWrite {
    /// Whether the writer is done (its report can be taken without
    /// waiting).
    pub(crate) fn is_done(&self) -> bool {
        match &self.writer {
            Some(Writer::Thread(_, done)) => done.load(Ordering::SeqCst),
            Some(Writer::Process(c)) => report_ready(c),
            None => true,
        }
    }

    /// Waits for the child; the checkpoint's stats (its size and the time
    /// from the trigger to the snapshot being durable filled in) and the
    /// snapshot as the base of the next incremental one.
    pub(crate) fn finish(mut self) -> Result<(CheckpointStats, BaseInfo), CheckpointError> {
        let child = match self.writer.take() {
            Some(Writer::Process(c)) => c,
            Some(Writer::Thread(rx, _)) => {
                let report = rx
                    .recv()
                    .unwrap_or_else(|_| Err("the writer thread is gone".into()));
                let (bytes, id, durable) = report.map_err(|why| {
                    CheckpointError::Host(format!(
                        "background snapshot write to {} failed: {why}",
                        self.path.display()
                    ))
                })?;
                self.stats.snapshot_bytes = bytes;
                self.stats.trigger_to_durable = durable;
                return Ok((self.stats.clone(), self.base(id)));
            }
            None => {
                return Err(CheckpointError::Host(
                    "background snapshot writer already taken".into(),
                ));
            }
        };
        let mut child = child;
        let mut report = Vec::new();
        let read = child.report.read_to_end(&mut report);
        let code = wait_child(child.pid)
            .map_err(|e| CheckpointError::Host(format!("lost the snapshot writer: {e}")))?;
        if read.is_err() || code != Some(0) || report.first() != Some(&OK) || report.len() != 49 {
            let why = match report.split_first() {
                Some((1, msg)) => String::from_utf8_lossy(msg).into_owned(),
                _ => format!("the writer process ended with {code:?}"),
            };
            return Err(CheckpointError::Host(format!(
                "background snapshot write to {} failed: {why}",
                self.path.display()
            )));
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&report[1..9]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&report[9..41]);
        let mut durable = [0u8; 8];
        durable.copy_from_slice(&report[41..49]);
        self.stats.snapshot_bytes = u64::from_le_bytes(bytes);
        self.stats.trigger_to_durable =
            std::time::Duration::from_nanos(u64::from_le_bytes(durable));
        Ok((self.stats.clone(), self.base(id)))
    }

    /// The written snapshot as a base.
    fn base(&self, id: [u8; 32]) -> BaseInfo {
        BaseInfo {
            path: self.path.clone(),
            id,
            depth: self.depth,
        }
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        // A writer thread reads the program's memory: wait for it (a run
        // that fails before taking its report still must not unmap the
        // memory under it). A child process has its own copy; it is left
        // to finish (its temporary file is renamed or removed by it).
        if let Some(Writer::Thread(rx, _)) = self.writer.take() {
            let _ = rx.recv();
        }
    }
}
