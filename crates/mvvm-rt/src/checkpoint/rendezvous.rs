//! Stopping every thread of a program for one checkpoint, and starting
//! them together after a restore.
//!
//! One [`Rendezvous`] per [`ThreadGroup`](crate::ThreadGroup). The main
//! thread (the store a [`Run`](super::Run) or [`Restore`](super::Restore)
//! drives) coordinates; every other thread is a *worker* (its store runs
//! the thread's start function, `super::worker`).
//!
//! ```text
//!  main: trigger ─▶ unwinds ─▶ stop_world ──────────────┐ waits until every other
//!        (probe, wait, host call)  │ FLAG_REQUEST on     │ live thread deposited
//!                                  │ each worker's limits│
//!                                  ▼ + wake waiters      ▼
//!  worker: next stable point ─▶ unwinds ─▶ deposit(record) ─▶ parked ...
//!  main: World token ─▶ reads memory, writes the snapshot ─▶ release(Stop | Continue)
//!  worker: ... Stop: the thread ends quietly │ Continue: rewinds its frames, runs on
//! ```
//!
//! Why this holds:
//!
//! - **No thread is missed.** A thread counts as alive from the moment its
//!   spawner took its member (before the OS thread exists), and `stop_world`
//!   waits for `alive - 1` deposits. A worker registers its limits here
//!   under the lock; registering while a stop is pending sets its request
//!   at once, and a worker that has not entered wasm yet deposits a record
//!   without frames (it restarts from its start function). A thread that
//!   ends meanwhile lowers `alive` and wakes the waiter.
//! - **Memory is still while it is read.** A worker deposits only after it
//!   has left wasm (its frames are unwound), and then parks until the
//!   release. The [`World`] token exists only while every other live
//!   thread is parked here, and the memory view borrowed from it cannot
//!   outlive it (`LinearMemory::data_stopped`).
//! - **Nothing waits forever on an ending program.** Termination (`proc_exit`,
//!   a trap in any thread) wakes both waits, which then give up.
//! - **Restored threads start together.** Each restored worker rebuilds its
//!   store, then waits at the gate; the main thread opens it once all are
//!   ready, so no thread runs before every frame is back. One failure
//!   fails the restore.

use crate::vmctx::VMLimits;
use mvvm_snapshot::ThreadRecord;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::control::FLAG_REQUEST;

/// How long the main thread waits for the others before it says so (and
/// then again at that period): a thread that never reaches a stable point
/// (a loop without a probe under the function policy, a host call that
/// cannot be interrupted) holds the checkpoint back.
const PROGRESS_PERIOD: Duration = Duration::from_secs(2);

/// What the workers do after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// The program stops: each worker ends without a trace.
    Stop,
    /// A periodic checkpoint: each worker rewinds its frames and runs on.
    Continue,
}

/// The stop-the-world state of one thread group.
#[derive(Debug, Default)]
pub(crate) struct Rendezvous {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Workers whose checkpoint session is armed: member id and the
    /// address of their store's `VMLimits`. An entry is removed (under the
    /// lock) before the store it points into is dropped.
    workers: Vec<(u64, usize)>,
    /// A stop is under way (from `stop_world` to the release).
    pending: bool,
    /// Number of the stop under way or last released.
    generation: u64,
    /// Records deposited for the stop under way.
    deposited: Vec<ThreadRecord>,
    /// The last stop released, and how.
    released: (u64, Option<Release>),
    /// Restore: workers still to be rebuilt, the first failure, and
    /// whether the gate is open.
    restoring: usize,
    restore_failed: Option<String>,
    gate_open: bool,
    /// The main thread's trigger counts probes: workers count theirs too,
    /// and report them here when they end.
    counting: Option<ProbeReport>,
    /// The main thread logs its probes and frames: workers too.
    log_probes: bool,
}

/// Where a worker's probe count goes when it ends: its thread id and the
/// probes it executed in this run (see `RunOptions::on_thread_probes`).
pub(crate) type ProbeReport = fn(u32, u64);

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update is a handful of assignments and `Vec` calls that cannot
    // panic half-way in a way that matters: a poisoned lock is used as is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets the request bit of the store whose limits are at `addr`.
///
/// # Safety
/// `addr` must be the address of a live `VMLimits`: callers hold the
/// rendezvous lock and take it from `State::workers`, whose entries are
/// removed under that lock before their store is dropped.
unsafe fn request_at(addr: usize) {
    let limits = addr as *const VMLimits;
    // SAFETY: see the function's contract; `probe_flag` is atomic, and
    // generated code of the other thread only reads it.
    unsafe {
        (*limits)
            .probe_flag
            .fetch_or(FLAG_REQUEST, Ordering::SeqCst)
    };
}

/// Every other live thread of the group is parked in the rendezvous,
/// outside wasm, with its record deposited: proof for reading the shared
/// memory as a whole. Releases them with [`Release::Stop`] when dropped
/// unreleased (a checkpoint that failed).
pub(crate) struct World<'g> {
    rv: &'g Rendezvous,
    generation: u64,
    released: bool,
}

impl Rendezvous {
    /// Arms worker `member`, whose store's limits are at `limits`.
    /// Returns whether a stop is pending (its request bit is then set).
    pub(crate) fn register(&self, member: u64, limits: *const VMLimits) -> bool {
        let mut s = lock(&self.state);
        let addr = limits as usize;
        s.workers.push((member, addr));
        if s.pending {
            // SAFETY: `addr` is the caller's live store's limits, just
            // registered under the lock.
            unsafe { request_at(addr) };
        }
        s.pending
    }

    /// Disarms worker `member` (before its store is dropped).
    pub(crate) fn unregister(&self, member: u64) {
        let mut s = lock(&self.state);
        s.workers.retain(|(m, _)| *m != member);
    }

    /// The main thread counts probes: workers armed from now on count
    /// theirs and hand them to `report` when they end.
    pub(crate) fn set_counting(&self, report: ProbeReport) {
        lock(&self.state).counting = Some(report);
    }

    /// Whether workers count their probes, and where they report them.
    pub(crate) fn counting(&self) -> Option<ProbeReport> {
        lock(&self.state).counting
    }

    /// The main thread logs probes and frames (`--log-probes`): workers
    /// armed from now on do too.
    pub(crate) fn set_log_probes(&self) {
        lock(&self.state).log_probes = true;
    }

    /// Whether workers log their probes and frames.
    pub(crate) fn log_probes(&self) -> bool {
        lock(&self.state).log_probes
    }

    /// Whether a stop is under way.
    pub(crate) fn pending(&self) -> bool {
        lock(&self.state).pending
    }

    /// Wakes every wait to look again (a member ended, the program is
    /// ending).
    pub(crate) fn wake(&self) {
        let _s = lock(&self.state);
        self.cv.notify_all();
    }

    /// Main thread: asks every worker to stop at its next stable point
    /// and waits until each live one (`alive() - 1` of them) has
    /// deposited its record. `Err` when the program ends meanwhile.
    pub(crate) fn stop_world<'g>(
        &'g self,
        alive: impl Fn() -> usize,
        terminated: &AtomicBool,
    ) -> Result<(World<'g>, Vec<ThreadRecord>), String> {
        let generation = {
            let mut s = lock(&self.state);
            s.pending = true;
            s.generation += 1;
            s.deposited.clear();
            for &(_, addr) in &s.workers {
                // SAFETY: a registered worker's limits, under the lock.
                unsafe { request_at(addr) };
            }
            s.generation
        };
        // Workers parked in `memory.atomic.wait` look at their request.
        crate::atomic_wait::wake_all();
        let world = World {
            rv: self,
            generation,
            released: false,
        };
        let started = Instant::now();
        let mut next_report = started + PROGRESS_PERIOD;
        let mut s = lock(&self.state);
        loop {
            if terminated.load(Ordering::SeqCst) {
                return Err("the program ended while its threads were being stopped".into());
            }
            let others = alive().saturating_sub(1);
            if s.deposited.len() >= others {
                let records = std::mem::take(&mut s.deposited);
                tracing::debug!(
                    threads = records.len(),
                    waited_ms = started.elapsed().as_secs_f64() * 1e3,
                    "every thread stopped"
                );
                return Ok((world, records));
            }
            let now = Instant::now();
            if now >= next_report {
                tracing::warn!(
                    "checkpoint: waiting for {} of {others} other thread(s) to reach a stable point",
                    others - s.deposited.len()
                );
                next_report = now + PROGRESS_PERIOD;
            }
            // Timed: `alive` drops without this lock (a member's drop
            // wakes us, but a spurious miss must not hang the checkpoint).
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Worker: hands its record over and parks until the main thread
    /// releases the stop (or the program ends: then [`Release::Stop`]).
    pub(crate) fn deposit(&self, record: ThreadRecord, terminated: &AtomicBool) -> Release {
        let mut s = lock(&self.state);
        let generation = s.generation;
        s.deposited.push(record);
        self.cv.notify_all();
        loop {
            if s.released.0 >= generation
                && let Some(r) = s.released.1
            {
                return r;
            }
            if terminated.load(Ordering::SeqCst) {
                return Release::Stop;
            }
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Restore: `n` workers are being rebuilt.
    pub(crate) fn expect_restored(&self, n: usize) {
        let mut s = lock(&self.state);
        s.restoring = n;
        s.restore_failed = None;
        s.gate_open = n == 0;
    }

    /// Restored worker: its store is rebuilt (`Ok`) or could not be
    /// (`Err`, which fails the restore); then waits for the gate. Returns
    /// whether it may run (false: the restore failed or the program ends).
    pub(crate) fn arrive(&self, rebuilt: Result<(), String>, terminated: &AtomicBool) -> bool {
        let mut s = lock(&self.state);
        match rebuilt {
            Ok(()) => s.restoring = s.restoring.saturating_sub(1),
            Err(e) => {
                s.restore_failed.get_or_insert(e);
            }
        }
        self.cv.notify_all();
        loop {
            if s.gate_open {
                return true;
            }
            if s.restore_failed.is_some() || terminated.load(Ordering::SeqCst) {
                return false;
            }
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Main thread of a restore: waits until every worker is rebuilt, then
    /// opens the gate; the first worker's failure otherwise.
    pub(crate) fn open_gate(&self, terminated: &AtomicBool) -> Result<(), String> {
        let mut s = lock(&self.state);
        loop {
            if let Some(e) = &s.restore_failed {
                return Err(e.clone());
            }
            if s.restoring == 0 {
                s.gate_open = true;
                self.cv.notify_all();
                return Ok(());
            }
            if terminated.load(Ordering::SeqCst) {
                return Err("the program ended while its threads were being restored".into());
            }
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl World<'_> {
    /// Ends the stop: the workers go on as `how` says.
    pub(crate) fn release(mut self, how: Release) {
        self.finish(how);
    }

    fn finish(&mut self, how: Release) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut s = lock(&self.rv.state);
        s.pending = false;
        s.deposited.clear();
        s.released = (self.generation, Some(how));
        self.rv.cv.notify_all();
    }
}

impl Drop for World<'_> {
    fn drop(&mut self) {
        self.finish(Release::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_stop_waits_for_every_live_worker_and_releases_them() {
        let rv = Arc::new(Rendezvous::default());
        let alive = Arc::new(AtomicUsize::new(3));
        let end = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (1..=2u32)
            .map(|tid| {
                let (rv, end) = (Arc::clone(&rv), Arc::clone(&end));
                std::thread::spawn(move || {
                    while !rv.pending() {
                        std::thread::yield_now();
                    }
                    let record = ThreadRecord {
                        tid,
                        ..Default::default()
                    };
                    rv.deposit(record, &end)
                })
            })
            .collect();
        let (world, mut records) = rv
            .stop_world(|| alive.load(Ordering::SeqCst), &end)
            .unwrap();
        records.sort_by_key(|r| r.tid);
        assert_eq!(records.iter().map(|r| r.tid).collect::<Vec<_>>(), [1, 2]);
        world.release(Release::Continue);
        for w in workers {
            assert_eq!(w.join().unwrap(), Release::Continue);
        }
        assert!(!rv.pending());
    }

    #[test]
    fn an_ending_program_ends_the_waits() {
        let rv = Rendezvous::default();
        let end = AtomicBool::new(true);
        assert!(rv.stop_world(|| 2, &end).is_err());
        assert_eq!(rv.deposit(ThreadRecord::default(), &end), Release::Stop);
        rv.expect_restored(2);
        assert!(!rv.arrive(Ok(()), &end));
        assert!(rv.open_gate(&end).is_err());
    }

    #[test]
    fn a_failed_restore_keeps_the_gate_shut() {
        let rv = Rendezvous::default();
        let end = AtomicBool::new(false);
        rv.expect_restored(2);
        assert!(!rv.arrive(Err("no memory".into()), &end));
        assert_eq!(rv.open_gate(&end).unwrap_err(), "no memory");
    }
}
