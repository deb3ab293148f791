//! The live side of checkpointing: what the `Probe`, `UnwindFrame` and
//! `RewindFrame` builtins and the `HostCall` interruption work on, the
//! signal handlers and the timer that request a checkpoint, and the
//! session guard that arms and disarms all of it around one run.
//!
//! `VMLimits.probe_flag` carries two bits:
//!
//! - [`FLAG_COUNT`]: probes must call `Probe` on every execution, because
//!   the trigger counts them (`-c N`, `-f FUNC -x N`, or counting for
//!   [`Outcome::Exited`](super::Outcome) with no trigger);
//! - [`FLAG_REQUEST`]: a checkpoint is wanted now (signal, timer). Set with
//!   an atomic `fetch_or`, which is async-signal-safe.
//!
//! Generated code only tests the flag for non-zero; `Probe` reads the bits.

use crate::Module;
use crate::store::{Store, StoreInner};
use crate::sys::signal;
use crate::vmctx::VMLimits;
use mvvm_abi::StablePointKind;
use mvvm_abi::checkpoint::{REWIND_FORWARD, REWIND_MAY_FORWARD, UNWIND_NONE, UNWINDING};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `probe_flag` bit: count every probe.
pub(crate) const FLAG_COUNT: u32 = 1;
/// `probe_flag` bit: a checkpoint is requested (signal, timer).
pub(crate) const FLAG_REQUEST: u32 = 2;
/// `probe_flag` bit: a periodic checkpoint is due ([`Trigger::Every`](super::Trigger::Every)):
/// the run continues after it. A [`FLAG_REQUEST`] set at the same time
/// wins (the run stops).
pub(crate) const FLAG_PERIODIC: u32 = 4;
/// Longest a blocking host call waits before looking at the request bit
/// again.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Limits of the store whose session armed signals (the signal handler
/// has no other way to find it).
static SIGNAL_LIMITS: AtomicPtr<VMLimits> = AtomicPtr::new(std::ptr::null_mut());
/// Whether a first SIGINT was seen during the current signal session.
static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Limits of the store whose session runs on this thread (for blocking
    /// host calls, which run on the store's thread).
    static THREAD_LIMITS: Cell<*const VMLimits> = const { Cell::new(std::ptr::null()) };
    /// What holds back a checkpoint of the store whose session runs on
    /// this thread (for blocking host calls, which must not give up their
    /// call for a checkpoint that cannot be taken).
    static THREAD_GATE: RefCell<Option<Gate>> = const { RefCell::new(None) };
    /// A live run of this thread waits for its trigger (`live.rs`): a
    /// request then starts pre-copying at the next probe instead of
    /// stopping, so blocking host calls must not give up their call for
    /// it.
    pub(crate) static LIVE_ARMED: Cell<bool> = const { Cell::new(false) };
}

/// What a session knows to decide whether a checkpoint can be taken at
/// all, without the store: why not, if it cannot.
#[derive(Debug, Clone)]
struct Gate {
    refuse: Option<&'static str>,
}

impl Gate {
    fn of(module: &Module) -> Gate {
        Gate {
            refuse: cannot_capture(module),
        }
    }
}

/// Why a snapshot of `module` cannot be taken at all, if it cannot: its
/// state would not all be in the snapshot. An imported memory is saved
/// only when it is shared (a wasi-threads program's, which its threads
/// share and the snapshot holds once).
fn cannot_capture(module: &Module) -> Option<&'static str> {
    let meta = module.meta();
    let imported_memory_unshared = meta
        .imports
        .iter()
        .any(|i| matches!(i.kind, mvvm_abi::meta::ImportKind::Memory(m) if !m.shared));
    (meta.num_imported_globals() + meta.num_imported_tables() > 0
        || imported_memory_unshared
        || meta.num_imported_memories() > 1)
        .then_some(
            "the module imports globals, tables or an unshared memory, \
             which snapshots do not hold",
        )
}

/// The trigger as the builtins check it (names resolved to indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Armed {
    /// Only asynchronous requests (signals, timer) or nothing.
    Async,
    /// At the n-th probe (1-based).
    ProbeCount(u64),
    /// At the `count`-th entry of function `func`.
    FunctionEntry { func: u32, count: u64 },
}

/// A frame as generated code hands it over (untyped slots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFrame {
    pub func: u32,
    pub offset: u32,
    /// Index of the stable point in `FuncTables::stable_points` (filled in
    /// for frames being restored).
    pub point: u32,
    pub slots: Vec<u64>,
}

/// Checkpoint state of one store, reached by the builtins through
/// `StoreInner::ckpt`.
#[derive(Debug)]
pub(crate) struct Control {
    pub module: Module,
    pub armed: Armed,
    pub log_probes: bool,
    /// Polls so far in this run: `Probe` calls, except under the
    /// counter-loop policy where only every `2^threshold_bits`-th call is
    /// one.
    pub probes: u64,
    /// Counter-loop: `Probe` calls so far, polls or not.
    pub unpolled: u64,
    /// Entries of the watched function so far.
    pub entries: u64,
    /// Frames saved while unwinding, innermost first.
    pub unwound: Vec<RawFrame>,
    /// Frames still to hand out while rewinding, outermost first.
    pub rewind: VecDeque<RawFrame>,
    /// The frames `ProbeWalk` read where they are when it started the
    /// unwind under way (developer option `frame_map`), innermost first,
    /// for the check against `unwound` (`crate::frame_walk`).
    pub walked: Option<Vec<crate::frame_walk::WalkedFrame>>,
    /// When the checkpoint was decided.
    pub triggered_at: Option<Instant>,
    /// What decided it (for logs and the snapshot note).
    pub reason: Option<String>,
    /// The host function just called gave up because of a request.
    pub host_interrupted: bool,
    /// The unwind under way is a periodic checkpoint: the run continues
    /// after the snapshot is written.
    pub continuing: bool,
    /// The snapshot the memory was last identical to, while dirty tracking
    /// runs: the base of the next (incremental) snapshot.
    pub base: Option<BaseInfo>,
    /// Called after each periodic checkpoint.
    pub on_checkpoint: Option<fn(&super::CheckpointStats)>,
    /// Snapshots after this run's next one may be incremental (the module's
    /// policy is loop-dirty, or the caller asked): dirty tracking restarts
    /// after each periodic checkpoint.
    pub incremental: bool,
    /// Bases this run kept under derived names (periodic checkpoints):
    /// removed once a full snapshot makes them useless.
    pub kept: Vec<std::path::PathBuf>,
    /// A refusal was logged (once per run).
    pub hold_logged: bool,
    /// Periodic checkpoints are written by a child process while the run
    /// goes on (`super::background`); false: before it goes on.
    pub background: bool,
    /// How durable snapshot files are made.
    pub sync: mvvm_snapshot::SyncMode,
    /// The periodic snapshot a child process is writing.
    pub pending_write: Option<super::background::PendingWrite>,
    /// The thread that writes background snapshots (started with the
    /// run when it takes periodic checkpoints, or at the first one).
    pub writer: Option<super::background::WriterThread>,
    /// Pre-copy live migration (`live.rs`): armed until the trigger, then
    /// the pre-copy thread; `None` for a run that is not live.
    pub live: Option<super::live::Live>,
}

/// Says once per run why a checkpoint was refused.
fn log_refusal(c: &mut Control, why: &str, reason: &str) {
    if !std::mem::replace(&mut c.hold_logged, true) {
        tracing::warn!("checkpoint ({reason}) refused, the program runs on: {why}");
    }
}

/// A snapshot file an incremental snapshot may be taken against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseInfo {
    /// Where it is (as given: relative to the working directory or
    /// absolute).
    pub path: std::path::PathBuf,
    /// Its snapshot id.
    pub id: [u8; 32],
    /// Its depth (0: full).
    pub depth: u32,
}

impl Control {
    fn func_name(&self, func: u32) -> String {
        match self.module.meta().func_name(func) {
            Some(n) => n.to_string(),
            None => format!("#{func}"),
        }
    }

    fn point_kind(&self, func: u32, offset: u32) -> Option<StablePointKind> {
        let meta = self.module.meta();
        let info = meta.func_tables(func).ok()?;
        let i = info.point_at(offset)?;
        Some(info.stable_points[i].kind)
    }
}

/// Rust half of builtin `Probe`: 1 when the caller must unwind now.
pub(crate) fn probe(s: &mut StoreInner, func: u32, offset: u32) -> u32 {
    let limits_ptr: *const VMLimits = s.limits.as_ptr();
    let limits: &mut VMLimits = &mut s.limits;
    let Some(c) = s.ckpt.as_deref_mut() else {
        // No session: nobody wants a checkpoint; stop calling.
        limits.probe_flag.store(0, Ordering::SeqCst);
        return 0;
    };
    if limits.unwind_state != UNWIND_NONE {
        return 0;
    }
    let flag = limits.probe_flag.load(Ordering::SeqCst);
    // Counter-loop: only every 2^bits-th probe is a poll (what `-c N`
    // counts and what count triggers act on); a request or a periodic
    // checkpoint is taken at once, at any probe.
    if let mvvm_abi::Policy::CounterLoop { threshold_bits } = c.module.meta().policy
        && threshold_bits > 0
        && flag & (FLAG_REQUEST | FLAG_PERIODIC) == 0
    {
        c.unpolled = c.unpolled.wrapping_add(1);
        let mask = (1u64 << threshold_bits.min(31)) - 1;
        if c.unpolled & mask != 0 {
            return 0;
        }
    }
    // A period that comes while the previous periodic snapshot is still
    // being written in the background is skipped: taking it would make
    // the program wait for the writer (`background.rs`).
    if flag & FLAG_PERIODIC != 0
        && flag & FLAG_REQUEST == 0
        && c.pending_write.as_ref().is_some_and(|p| !p.is_done())
    {
        limits
            .probe_flag
            .fetch_and(!FLAG_PERIODIC, Ordering::SeqCst);
        tracing::debug!("periodic checkpoint skipped: the previous one is still being written");
        if flag & FLAG_COUNT == 0 {
            return 0;
        }
    }
    let flag = limits.probe_flag.load(Ordering::SeqCst);
    c.probes += 1;
    let mut continuing = false;
    let reason = if flag & FLAG_REQUEST != 0 {
        Some("request (signal or timer)".to_string())
    } else if flag & FLAG_PERIODIC != 0 {
        continuing = true;
        Some("periodic checkpoint".to_string())
    } else {
        match c.armed {
            Armed::ProbeCount(n) if c.probes == n => Some(format!("probe count {n}")),
            Armed::FunctionEntry { func: f, count } if f == func => {
                c.entries += 1;
                (c.entries == count)
                    .then(|| format!("entry {count} of function {}", c.func_name(f)))
            }
            _ => None,
        }
    };
    if c.log_probes {
        tracing::info!(
            probe = c.probes,
            func = %c.func_name(func),
            offset = format_args!("{offset:#x}"),
            kind = ?c.point_kind(func, offset),
            unwind = reason.is_some(),
            "probe"
        );
    }
    let Some(r) = reason else {
        return 0;
    };
    if let Some(why) = cannot_capture(&c.module) {
        log_refusal(c, why, &r);
        limits
            .probe_flag
            .fetch_and(!(FLAG_REQUEST | FLAG_PERIODIC), Ordering::SeqCst);
        return 0;
    }
    // A live run's first trigger starts pre-copying instead of stopping.
    if !continuing
        && let Some(live) = c.live.as_mut()
        && matches!(live, super::live::Live::Armed { .. })
    {
        LIVE_ARMED.with(|a| a.set(false));
        let mem = s
            .instances
            .first()
            .and_then(|i| i.memories.first())
            .map(|&m| m as usize);
        let src = mem.and_then(|m| {
            let mem = s.memories.get_mut(m)?;
            match mem.start_dirty_tracking() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!("dirty tracking not started ({e})");
                    return None;
                }
            }
            // SAFETY: the memory belongs to this store, which outlives the
            // run's `LiveGuard`; the guard joins the thread first.
            unsafe { mem.precopy_source() }
        });
        // SAFETY: the store's limits outlive the run and so its guard,
        // which joins the thread.
        if unsafe { super::live::start(live, src, limits_ptr) } {
            limits.probe_flag.fetch_and(!FLAG_REQUEST, Ordering::SeqCst);
            tracing::info!("checkpoint ({r}): pre-copying while the program runs on");
            return 0;
        }
    }
    c.continuing = continuing;
    limits.probe_flag.store(0, Ordering::SeqCst);
    limits.unwind_state = UNWINDING;
    c.triggered_at = Some(Instant::now());
    c.reason = Some(r);
    s.frame_slots.fill(0);
    1
}

/// Rust half of builtin `UnwindFrame`: records one frame (innermost
/// first), the first `count` slots of the frame buffer, and zeroes them
/// for the next frame: generated code writes values at their own width
/// and skips dead locals, so the rest of the buffer must read as zero
/// (`mvvm_abi::checkpoint`). A count beyond the buffer (a compiler bug)
/// records what the buffer holds.
pub(crate) fn unwind_frame(s: &mut StoreInner, func: u32, offset: u32, count: usize) {
    let Some(c) = s.ckpt.as_deref_mut() else {
        return;
    };
    let n = count.min(s.frame_slots.len());
    let slots = &mut s.frame_slots[..n];
    if c.log_probes {
        tracing::info!(
            frame = c.unwound.len(),
            func = %c.func_name(func),
            offset = format_args!("{offset:#x}"),
            kind = ?c.point_kind(func, offset),
            values = slots.len(),
            "frame saved"
        );
    }
    let mut frame = RawFrame {
        func,
        offset,
        point: u32::MAX,
        slots: slots.to_vec(),
    };
    // A wait given up for this checkpoint resumes with the time it had
    // left, not its whole timeout again.
    super::blocking::patch_wait_frame(c, &mut frame);
    c.unwound.push(frame);
    slots.fill(0);
}

/// The `offset` of a placeholder in `Control::unwound`: a frame whose
/// unwind path wrote no record (developer option `walk_frames`); the
/// capture replaces it by the record it makes from the walk.
pub(crate) const MADE_BY_WALK: u32 = u32::MAX;

/// Rust half of builtin `UnwindWalked`: keeps the place of a frame of
/// `func` whose record the capture makes from the walk.
pub(crate) fn unwind_walked(s: &mut StoreInner, func: u32) {
    let Some(c) = s.ckpt.as_deref_mut() else {
        return;
    };
    if c.log_probes {
        tracing::info!(
            frame = c.unwound.len(),
            func = %c.func_name(func),
            "frame left to the walk"
        );
    }
    c.unwound.push(RawFrame {
        func,
        offset: MADE_BY_WALK,
        point: u32::MAX,
        slots: Vec::new(),
    });
}

/// Rust half of builtin `RewindFrame`: the next frame (outermost first)
/// written into `out`, and the index of its stable point; clears the
/// rewinding state with the last frame. An error means generated code and
/// the validated frames disagree (a runtime or compiler bug): the caller
/// raises it as a host error.
///
/// `func` may carry [`REWIND_MAY_FORWARD`]: the function contains a tail
/// call, and a frame of another function `f` is then not an error but left
/// next, with `REWIND_FORWARD | f` returned: the caller tail-calls `f`,
/// which takes it (see `mvvm_abi::checkpoint`).
pub(crate) fn rewind_frame(s: &mut StoreInner, func: u32, out: &mut [u64]) -> Result<u32, String> {
    let may_forward = func & REWIND_MAY_FORWARD != 0;
    let func = func & !REWIND_MAY_FORWARD;
    let Some(c) = s.ckpt.as_deref_mut() else {
        return Err("rewinding without a restore session".into());
    };
    let Some(next) = c.rewind.front() else {
        return Err(format!(
            "function {} asked for a frame to rewind, but none is left",
            c.func_name(func)
        ));
    };
    if next.func != func && may_forward && next.func & REWIND_FORWARD == 0 {
        if c.log_probes {
            tracing::info!(
                func = %c.func_name(func),
                to = %c.func_name(next.func),
                "frame forwarded to the tail callee"
            );
        }
        return Ok(REWIND_FORWARD | next.func);
    }
    let Some(f) = c.rewind.pop_front() else {
        return Err("the frame to rewind vanished".into());
    };
    if f.func != func {
        return Err(format!(
            "function {} asked for its frame, but the next frame is of function {}",
            c.func_name(func),
            c.func_name(f.func)
        ));
    }
    let Some(dest) = out.get_mut(..f.slots.len()) else {
        return Err(format!(
            "function {} has room for {} slots, its frame has {}",
            c.func_name(func),
            out.len(),
            f.slots.len()
        ));
    };
    dest.copy_from_slice(&f.slots);
    if c.log_probes {
        tracing::info!(
            func = %c.func_name(func),
            offset = format_args!("{:#x}", f.offset),
            kind = ?c.point_kind(func, f.offset),
            left = c.rewind.len(),
            "frame restored"
        );
    }
    if c.rewind.is_empty() {
        s.limits.unwind_state = UNWIND_NONE;
    }
    Ok(f.point)
}

/// Called by `HostCall` after a host function returned: whether it gave up
/// because a checkpoint was requested, in which case the state is now
/// `UNWINDING`.
pub(crate) fn take_host_unwind(s: &mut StoreInner) -> bool {
    let Some(c) = s.ckpt.as_deref_mut() else {
        return false;
    };
    if !std::mem::take(&mut c.host_interrupted) {
        return false;
    }
    let flag = s.limits.probe_flag.swap(0, Ordering::SeqCst);
    if flag & FLAG_REQUEST == 0 && flag & FLAG_PERIODIC != 0 {
        c.continuing = true;
        c.reason.get_or_insert_with(|| "periodic checkpoint".into());
    }
    s.limits.unwind_state = UNWINDING;
    s.frame_slots.fill(0);
    c.triggered_at.get_or_insert_with(Instant::now);
    c.reason
        .get_or_insert_with(|| "request during a blocking host call".into());
    if c.log_probes {
        tracing::info!("blocking host call interrupted for a checkpoint");
    }
    true
}

/// Whether a checkpoint session runs on this thread, so that blocking host
/// calls must wait in slices and look at [`requested`].
pub(crate) fn interruptible() -> bool {
    THREAD_LIMITS.with(|l| !l.get().is_null())
}

/// Whether a checkpoint was requested for the store running on this
/// thread and can be taken (not for a module snapshots cannot hold: a
/// blocking call that gave up for it would then have given up for
/// nothing).
pub(crate) fn requested() -> bool {
    let wanted = THREAD_LIMITS.with(|l| {
        let p = l.get();
        // SAFETY: set by the session guard to the limits of its store,
        // which outlive the session; cleared when the session ends.
        !p.is_null()
            && unsafe { (*p).probe_flag.load(Ordering::SeqCst) } & (FLAG_REQUEST | FLAG_PERIODIC)
                != 0
    });
    wanted
        && !LIVE_ARMED.with(Cell::get)
        && THREAD_GATE.with(|g| g.borrow().as_ref().is_none_or(|g| g.refuse.is_none()))
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGINT && SIGINT_SEEN.swap(true, Ordering::SeqCst) {
        // The disposition was reset below; a second SIGINT delivered
        // before that took effect ends the process here.
        crate::sys::process::exit_now(130);
    }
    if sig == libc::SIGINT {
        // A second SIGINT ends the process at once (default action).
        signal::set_default(libc::SIGINT);
    }
    let p = SIGNAL_LIMITS.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the session that stored `p` keeps the store (and its
        // boxed limits) alive until it has cleared the pointer; an atomic
        // `fetch_or` is async-signal-safe.
        unsafe { (*p).probe_flag.fetch_or(FLAG_REQUEST, Ordering::SeqCst) };
    }
}

/// Arms checkpointing for one run of a store and disarms it when dropped:
/// installs the [`Control`], sets the probe flag, the signal handlers and
/// the timer. Must be dropped before the store.
pub(crate) struct Session {
    limits: *mut VMLimits,
    signals: Option<[signal::Saved; 2]>,
    timer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// What a session arms.
pub(crate) struct SessionConfig {
    pub armed: Armed,
    pub count: bool,
    pub log_probes: bool,
    pub signals: bool,
    pub after: Option<Duration>,
    /// `after` repeats (periodic checkpoints that continue the run).
    pub every: bool,
}

impl Session {
    /// Arms `store` (running `module`) as `cfg` says.
    pub(crate) fn arm(store: &mut Store, module: &Module, cfg: SessionConfig) -> Session {
        let s = &mut *store.inner;
        s.ckpt = Some(Box::new(Control {
            module: module.clone(),
            armed: cfg.armed,
            log_probes: cfg.log_probes,
            probes: 0,
            unpolled: 0,
            entries: 0,
            unwound: Vec::new(),
            rewind: VecDeque::new(),
            walked: None,
            triggered_at: None,
            reason: None,
            host_interrupted: false,
            continuing: false,
            base: None,
            on_checkpoint: None,
            incremental: module.meta().policy == mvvm_abi::Policy::LoopDirty,
            kept: Vec::new(),
            hold_logged: false,
            background: true,
            sync: mvvm_snapshot::SyncMode::Full,
            pending_write: None,
            writer: None,
            live: None,
        }));
        let gate = Gate::of(module);
        THREAD_GATE.with(|g| *g.borrow_mut() = Some(gate));
        // The base pointer (a reference-derived pointer would die at the
        // next use of the limits by generated code; see `vm_box.rs`).
        let limits: *mut VMLimits = s.limits.as_ptr();
        s.limits
            .probe_flag
            .store(if cfg.count { FLAG_COUNT } else { 0 }, Ordering::SeqCst);
        s.limits.unwind_state = UNWIND_NONE;
        THREAD_LIMITS.with(|l| l.set(limits));
        let mut session = Session {
            limits,
            signals: None,
            timer: None,
        };
        if cfg.signals {
            SIGINT_SEEN.store(false, Ordering::SeqCst);
            SIGNAL_LIMITS.store(limits, Ordering::SeqCst);
            let prev =
                [libc::SIGINT, libc::SIGUSR1].map(|sig| signal::install_plain(sig, on_signal));
            session.signals = Some(prev);
        }
        if let Some(d) = cfg.after {
            let (tx, rx) = mpsc::channel::<()>();
            let addr = limits as usize;
            let (every, bit) = (
                cfg.every,
                if cfg.every {
                    FLAG_PERIODIC
                } else {
                    FLAG_REQUEST
                },
            );
            let handle = std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(d) {
                    if every {
                        protect_ahead();
                    }
                    let p = addr as *const VMLimits;
                    // SAFETY: the session joins this thread before it
                    // ends, and the store outlives the session.
                    unsafe { (*p).probe_flag.fetch_or(bit, Ordering::SeqCst) };
                    if !every {
                        break;
                    }
                }
            });
            session.timer = Some((tx, handle));
        }
        session
    }
}

/// Before a periodic checkpoint's trigger: protects the dirty units of
/// memories still on small pages while the program runs
/// (`memory::dirty::protect_ahead`, a restored memory not yet moved onto
/// huge pages), so that the pause protects only what is written after.
/// The program writes on meanwhile, so rounds follow until one saw at
/// most [`AHEAD_FEW`] units made writable again while it ran (each round
/// protects what the previous one saw opened: at memfill's write rate
/// about a tenth of it), or [`AHEAD_ROUNDS`] rounds: the trigger is
/// late by their time (a few ms per GiB written), never missed.
fn protect_ahead() {
    let t0 = Instant::now();
    let (mut rounds, mut units, mut left) = (0, 0, 0);
    while rounds < AHEAD_ROUNDS {
        let (protected, reopened) = crate::memory::protect_ahead();
        rounds += 1;
        units += protected;
        left = reopened;
        if protected == 0 || reopened <= AHEAD_FEW {
            break;
        }
    }
    if units > 0 {
        tracing::debug!(
            rounds,
            units,
            left,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "dirty units protected ahead of a periodic checkpoint"
        );
    }
}

/// At most this many rounds of [`protect_ahead`].
const AHEAD_ROUNDS: u32 = 8;
/// A round that saw this many units opened again or fewer is the last:
/// protecting them in the pause costs at most 4 x 512 page-table entries
/// (about 0.2 ms here).
const AHEAD_FEW: usize = 4;

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.timer.take() {
            drop(tx);
            let _ = handle.join();
        }
        if let Some(prev) = self.signals.take() {
            for (i, sig) in [libc::SIGINT, libc::SIGUSR1].into_iter().enumerate() {
                signal::restore(sig, &prev[i]);
            }
            let _ = SIGNAL_LIMITS.compare_exchange(
                self.limits,
                std::ptr::null_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        THREAD_LIMITS.with(|l| {
            if std::ptr::eq(l.get(), self.limits) {
                l.set(std::ptr::null());
                THREAD_GATE.with(|g| *g.borrow_mut() = None);
                LIVE_ARMED.with(|a| a.set(false));
            }
        });
        // SAFETY: the store outlives the session (documented contract).
        unsafe { (*self.limits).probe_flag.store(0, Ordering::SeqCst) };
    }
}
