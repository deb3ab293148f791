//! `memory.atomic.wait32`, `memory.atomic.wait64` and
//! `memory.atomic.notify` (threads proposal): the builtins' Rust halves
//! and the parking lot they share.
//!
//! The parking lot is keyed by host address (the memory's base plus the
//! effective address): one key per location of one memory, whichever
//! instance or thread names it. Each waiter has its own flag and condition
//! variable; the queues of waiters live in a fixed set of buckets, each a
//! `Mutex<HashMap<address, queue>>`. A wait compares the memory with what
//! it expects while holding its bucket's lock, and a notify takes that lock
//! to wake: a notify that follows the store a waiter waits for can
//! therefore never slip between the waiter's comparison and its enqueueing.
//!
//! A waiter of a thread of a program ([`crate::threads::ThreadGroup`])
//! also leaves when the program ends: [`ParkingLot::wake_all`] wakes every
//! waiter, each looks at its stop flag (the group's), and a stopped one
//! leaves its queue with [`WaitResult::Stopped`] (the builtin then traps
//! with [`TrapCode::Terminated`]). A lone thread's wait that finds the
//! expected value with an infinite timeout blocks for good, as in other
//! runtimes (`docs/threads.md`).
//!
//! Checkpoints: under a policy a wait is a stable point. While a
//! checkpoint session runs on the thread (and the code was compiled with
//! a policy), a parked waiter also leaves when a checkpoint is requested
//! ([`WaitResult::Interrupted`]): it waits in slices of at most
//! `control::WAIT_SLICE` and looks at the request after each, and after
//! each [`wake_all`], which requesters call to make it look at once. A
//! notify still wakes it at once. The builtin then marks the store as
//! unwinding (`checkpoint::blocking`), the code after the wait unwinds,
//! and the wait's frame keeps the time a finite timeout had left; the
//! restored program waits again, for that time.
//!
//! The order of the checks follows the reference interpreter: alignment
//! ([`TrapCode::UnalignedAtomic`]), then for a wait the memory's
//! sharedness ([`TrapCode::WaitOnUnsharedMemory`]), then bounds
//! ([`TrapCode::MemoryOutOfBounds`]).

use crate::builtins::store_of;
use crate::checkpoint::{blocking, control};
use crate::vmctx::VMContext;
use mvvm_abi::TrapCode;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How a wait ended: the value `memory.atomic.wait*` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum WaitResult {
    /// A notify woke it ("ok").
    Woken = 0,
    /// The memory did not hold the expected value ("not-equal").
    NotEqual = 1,
    /// The timeout expired first ("timed-out").
    TimedOut = 2,
    /// The waiter's program ended (its stop flag was set): never returned
    /// to wasm, the builtin traps instead.
    Stopped = -1,
    /// A checkpoint was requested: the wait was given up (never returned
    /// to wasm, the code after the wait unwinds instead).
    Interrupted = -2,
}

/// One waiting thread: `woken` is set (under its lock) by the notify that
/// dequeues it.
#[derive(Default)]
struct Waiter {
    woken: Mutex<bool>,
    cv: Condvar,
}

/// Queues of waiters by address.
type Queues = HashMap<usize, VecDeque<Arc<Waiter>>>;

/// Number of buckets: waits on unrelated addresses rarely share a lock.
const BUCKETS: usize = 64;

/// Waiters of every memory of the process, by host address.
pub(crate) struct ParkingLot {
    buckets: [Mutex<Queues>; BUCKETS],
}

/// The process's parking lot (shared memories are shared between threads,
/// so their waiters cannot belong to any one store).
static LOT: LazyLock<ParkingLot> = LazyLock::new(ParkingLot::new);

/// Wakes every waiter of the process to look at its stop flag and at
/// whether a checkpoint is requested for its store (those that have
/// nothing to do wait on).
pub(crate) fn wake_all() {
    LOT.wake_all();
}

/// Locks `m`; a panic while it was held cannot have left a queue
/// half-updated (every update is one `VecDeque`/`HashMap` call), so a
/// poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ParkingLot {
    /// An empty parking lot.
    pub(crate) fn new() -> ParkingLot {
        ParkingLot {
            buckets: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn bucket(&self, key: usize) -> &Mutex<Queues> {
        // Keys are at least 4-byte aligned: drop the bits that never vary.
        &self.buckets[(key >> 2) % BUCKETS]
    }

    /// Waits at `key` if `expected()` (run under the bucket's lock) holds,
    /// until a [`ParkingLot::notify`] of `key` wakes it, `deadline`
    /// (`None`: none) passes, `stop` is set (and [`ParkingLot::wake_all`]
    /// called after it), or `interrupt` returns true.
    ///
    /// `interrupt` (a checkpoint request) is asked before the waiter
    /// parks, after every [`ParkingLot::wake_all`] and at least every
    /// `slice`; it runs under the waiter's lock, so it must take no lock a
    /// caller of `wake_all` may hold.
    pub(crate) fn wait(
        &self,
        key: usize,
        expected: impl FnOnce() -> bool,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
        interrupt: Option<(&dyn Fn() -> bool, Duration)>,
    ) -> WaitResult {
        let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
        let bucket = self.bucket(key);
        let waiter = {
            let mut queues = lock(bucket);
            if stopped() {
                return WaitResult::Stopped;
            }
            if !expected() {
                return WaitResult::NotEqual;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return WaitResult::TimedOut;
            }
            let w = Arc::new(Waiter::default());
            queues.entry(key).or_default().push_back(Arc::clone(&w));
            w
        };
        let mut woken = lock(&waiter.woken);
        // The stop flag and the request are read under the waiter's lock,
        // which `wake_all` takes (after the flag was set) before it
        // notifies: neither can slip between this test and the wait.
        let mut ended = WaitResult::TimedOut;
        while !*woken {
            if stopped() {
                ended = WaitResult::Stopped;
                break;
            }
            if interrupt.is_some_and(|(wanted, _)| wanted()) {
                ended = WaitResult::Interrupted;
                break;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            // The longest this sleep may be: to the deadline, and no more
            // than a slice while a request may come.
            let span = match (deadline.map(|d| d - now), interrupt.map(|(_, s)| s)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            woken = match span {
                None => waiter
                    .cv
                    .wait(woken)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(t) => {
                    waiter
                        .cv
                        .wait_timeout(woken, t)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        if *woken {
            return WaitResult::Woken;
        }
        drop(woken);
        // Timed out (or stopped, or interrupted): leave the queue, unless
        // a notify dequeued (and so counted) this waiter meanwhile; then
        // it was woken. The waiter's lock is not held here: `notify` takes
        // the bucket's lock, then a waiter's.
        let mut queues = lock(bucket);
        if let Some(queue) = queues.get_mut(&key)
            && let Some(at) = queue.iter().position(|w| Arc::ptr_eq(w, &waiter))
        {
            queue.remove(at);
            if queue.is_empty() {
                queues.remove(&key);
            }
            return ended;
        }
        if ended == WaitResult::Stopped {
            // Counted by a notify, but the program is ending all the same.
            return WaitResult::Stopped;
        }
        // Counted by a notify: woken (an interrupted wait returns it, the
        // notify is not lost to a checkpoint).
        WaitResult::Woken
    }

    /// Wakes every waiter without dequeuing it: each looks at its stop
    /// flag and at its checkpoint request, and goes back to waiting unless
    /// one is set. Called after a program's stop flag was set
    /// ([`crate::threads::ThreadGroup::terminate`]) and after checkpoint
    /// requests were made.
    pub(crate) fn wake_all(&self) {
        for bucket in &self.buckets {
            let queues = lock(bucket);
            for w in queues.values().flatten() {
                // Taking the waiter's lock orders this notification after
                // its test of the stop flag (or before it starts waiting).
                let _held = lock(&w.woken);
                w.cv.notify_all();
            }
        }
    }

    /// Wakes up to `count` waiters of `key`, oldest first; returns how
    /// many.
    pub(crate) fn notify(&self, key: usize, count: u32) -> u32 {
        let mut queues = lock(self.bucket(key));
        let Some(queue) = queues.get_mut(&key) else {
            return 0;
        };
        let mut woken = 0;
        while woken < count {
            let Some(w) = queue.pop_front() else {
                break;
            };
            *lock(&w.woken) = true;
            w.cv.notify_one();
            woken += 1;
        }
        if queue.is_empty() {
            queues.remove(&key);
        }
        woken
    }

    /// Number of threads waiting at `key`.
    #[cfg(test)]
    fn waiters(&self, key: usize) -> usize {
        lock(self.bucket(key)).get(&key).map_or(0, VecDeque::len)
    }
}

/// The timeout operand of a wait: nanoseconds, negative for none.
fn timeout_of(ns: i64) -> Option<Duration> {
    u64::try_from(ns).ok().map(Duration::from_nanos)
}

/// The deadline of a wait of `timeout` starting now; a deadline beyond
/// what `Instant` can represent is no deadline.
fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Memory 0 of the instance running with `vmctx`, at effective address
/// `addr`, for an access of `size` bytes: its host address, after the
/// checks in order (alignment; sharedness when `need_shared`; bounds),
/// whether the memory is shared, and the stop flag of the store's thread
/// group, if it is a thread of one.
///
/// # Safety
/// `vmctx` must be the context generated code passes to a builtin.
unsafe fn locate(
    vmctx: *mut VMContext,
    addr: u64,
    size: u64,
    need_shared: bool,
) -> Result<(*mut u8, bool, Option<crate::threads::StopFlag>), TrapCode> {
    if !addr.is_multiple_of(size) {
        return Err(TrapCode::UnalignedAtomic);
    }
    let (shared, stop) = {
        // SAFETY: per the contract, `vmctx` is a live instance's context
        // passed by generated code; this reference ends with the block,
        // before anything waits or enters wasm.
        let (s, i) = unsafe { store_of(vmctx) };
        let shared = s.instances[i as usize]
            .memories
            .first()
            .is_some_and(|&m| s.memories[m as usize].ty().shared);
        (shared, s.thread.as_ref().map(|t| t.stop_flag()))
    };
    if need_shared && !shared {
        return Err(TrapCode::WaitOnUnsharedMemory);
    }
    // SAFETY: `vmctx` is live (contract); its `memory` is null (no memory:
    // validation makes that impossible, checked anyway) or points at the
    // `VMMemory` of memory 0, owned by the store and alive while its code
    // runs. `length` is 8-byte aligned (a `u64` field of a `repr(C)`
    // struct) and only ever written atomically (`LinearMemory::grow`).
    let (base, length) = unsafe {
        let m = (*vmctx).memory;
        if m.is_null() {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        let length = AtomicU64::from_ptr(&raw mut (*m).length).load(Ordering::SeqCst);
        ((*m).base, length)
    };
    match addr.checked_add(size) {
        Some(end) if end <= length => {}
        _ => return Err(TrapCode::MemoryOutOfBounds),
    }
    // SAFETY: `addr + size <= length`, the accessible part of the
    // reservation that starts at `base`.
    Ok((unsafe { base.add(addr as usize) }, shared, stop))
}

/// Writes a builtin's result for its C shim.
///
/// # Safety
/// `result` must be the shim's own `int32_t` (valid, aligned, unaliased).
unsafe fn put(result: *mut i32, v: i32) -> i32 {
    // SAFETY: per the contract.
    unsafe { *result = v };
    0
}

/// A wait's result for its C shim: the value wasm sees, or the
/// `Terminated` trap when the program ended meanwhile.
///
/// # Safety
/// As [`put`].
unsafe fn put_wait(result: *mut i32, r: WaitResult) -> i32 {
    if r == WaitResult::Stopped {
        return TrapCode::Terminated as i32;
    }
    // SAFETY: per the contract.
    unsafe { put(result, r as i32) }
}

/// What both waits share: the checks of [`locate`] for a `size`-byte
/// cell, then parking while `holds(cell)` (the value still equals the
/// expected one, read atomically), and the result for the shim.
///
/// # Safety
/// As [`locate`] and [`put`]; `holds` gets the located cell: `size`-byte
/// aligned, in bounds, in memory that stays mapped while the instance
/// lives, which other threads only access atomically or as plain wasm
/// accesses, never through Rust references. `walk_from`, if given, is
/// the frame pointer and save area of the live wait entry
/// (`frame_walk::wait32_walk_entry`) a wasm body called, as
/// [`crate::frame_walk::walk_wait`] needs them.
unsafe fn wait(
    vmctx: *mut VMContext,
    addr: u64,
    size: u64,
    timeout: i64,
    result: *mut i32,
    holds: impl Fn(*mut u8) -> bool,
    walk_from: Option<(usize, usize)>,
) -> i32 {
    // SAFETY: per the contract.
    let (p, stop) = match unsafe { locate(vmctx, addr, size, true) } {
        Ok((p, _, stop)) => (p, stop),
        Err(code) => return code as i32,
    };
    let mut interruptible = {
        // SAFETY: per the contract; the reference ends with the block,
        // before the wait.
        let (s, i) = unsafe { store_of(vmctx) };
        blocking::may_interrupt(s, i)
    };
    if interruptible {
        blocking::forget_wait_left();
    }
    let deadline = deadline_of(timeout_of(timeout));
    let wanted: &dyn Fn() -> bool = &blocking::requested;
    loop {
        let r = LOT.wait(
            p as usize,
            || holds(p),
            deadline,
            stop.as_deref(),
            interruptible.then_some((wanted, control::WAIT_SLICE)),
        );
        if r != WaitResult::Interrupted {
            // SAFETY: per the contract.
            return unsafe { put_wait(result, r) };
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let unwinding = {
            // SAFETY: per the contract; nothing runs wasm while this
            // reference lives (it ends with the block).
            let (s, _) = unsafe { store_of(vmctx) };
            blocking::leave_for_checkpoint(s, left)
        };
        if unwinding {
            if let Some((entry_fp, regs)) = walk_from {
                let nanos = |d: Duration| {
                    u64::try_from(d.as_nanos()).map_or(i64::MAX as u64, |n| n.min(i64::MAX as u64))
                };
                // SAFETY: per the contract (`walk_from` is the live wait
                // entry's frame and save area); no reference into the
                // store is alive.
                unsafe { crate::frame_walk::walk_wait(vmctx, entry_fp, regs, left.map(nanos)) };
            }
            // Any result: the code after the wait unwinds without reading
            // it.
            // SAFETY: per the contract.
            return unsafe { put(result, WaitResult::TimedOut as i32) };
        }
        // The session is gone (cannot happen while this thread runs its
        // store's wasm): wait on, uninterrupted, to the same deadline (the
        // cell is compared again, as by a wait that was spuriously woken
        // and made again).
        interruptible = false;
    }
}

/// `wait` on a 4-byte cell that must hold `expected`; `walk` as in `wait`.
///
/// # Safety
/// As [`wait`]: `vmctx` is generated code's own and `result` its slot.
unsafe fn wait32(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u32,
    timeout: i64,
    result: *mut i32,
    walk: Option<(usize, usize)>,
) -> i32 {
    // SAFETY: the caller's contract is `wait`'s.
    unsafe {
        wait(
            vmctx,
            addr,
            4,
            timeout,
            result,
            |p| {
                // SAFETY: `p` is the located 4-byte cell (see `wait`).
                let cell = AtomicU32::from_ptr(p.cast::<u32>());
                cell.load(Ordering::SeqCst) == expected
            },
            walk,
        )
    }
}

/// As [`wait32`], for an 8-byte cell.
///
/// # Safety
/// As [`wait`].
unsafe fn wait64(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u64,
    timeout: i64,
    result: *mut i32,
    walk: Option<(usize, usize)>,
) -> i32 {
    // SAFETY: the caller's contract is `wait`'s.
    unsafe {
        wait(
            vmctx,
            addr,
            8,
            timeout,
            result,
            |p| {
                // SAFETY: `p` is the located 8-byte cell (see `wait`).
                let cell = AtomicU64::from_ptr(p.cast::<u64>());
                cell.load(Ordering::SeqCst) == expected
            },
            walk,
        )
    }
}

/// Rust half of `memory.atomic.wait32`: 0 with the wait's result in
/// `*result`, or a trap code for the shim to raise.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_atomic_wait32(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u32,
    timeout: i64,
    result: *mut i32,
) -> i32 {
    // SAFETY: called by the shim with generated code's own vmctx and its
    // own result slot.
    unsafe { wait32(vmctx, addr, expected, timeout, result, None) }
}

/// Rust half of `memory.atomic.wait64`: as
/// [`mvvm_rt_memory_atomic_wait32`], for 8 bytes.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_atomic_wait64(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u64,
    timeout: i64,
    result: *mut i32,
) -> i32 {
    // SAFETY: as in `mvvm_rt_memory_atomic_wait32`.
    unsafe { wait64(vmctx, addr, expected, timeout, result, None) }
}

/// Rust half of builtin `MemoryAtomicWait32Walk` (developer option
/// `frame_map`), called by `frame_walk::wait32_walk_entry` with its save
/// area `regs` and frame pointer `entry_fp`: as
/// [`mvvm_rt_memory_atomic_wait32`], with the result at the area's end,
/// and the wasm frames walked when a checkpoint gives the wait up.
pub(crate) extern "C" fn wait32_walk_inner(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u32,
    timeout: i64,
    regs: usize,
    entry_fp: usize,
) -> i32 {
    let result = crate::frame_walk::wait_result_slot(regs);
    // SAFETY: called by the wait entry with generated code's own vmctx,
    // its own result slot, frame and save area, live until this returns.
    unsafe {
        wait32(
            vmctx,
            addr,
            expected,
            timeout,
            result,
            Some((entry_fp, regs)),
        )
    }
}

/// As [`wait32_walk_inner`], for `MemoryAtomicWait64Walk`.
pub(crate) extern "C" fn wait64_walk_inner(
    vmctx: *mut VMContext,
    addr: u64,
    expected: u64,
    timeout: i64,
    regs: usize,
    entry_fp: usize,
) -> i32 {
    let result = crate::frame_walk::wait_result_slot(regs);
    // SAFETY: as in `wait32_walk_inner`.
    unsafe {
        wait64(
            vmctx,
            addr,
            expected,
            timeout,
            result,
            Some((entry_fp, regs)),
        )
    }
}

/// Rust half of `memory.atomic.notify`: 0 with the number of waiters woken
/// in `*result`, or a trap code. An unshared memory has no waiters.
#[unsafe(no_mangle)]
pub extern "C" fn mvvm_rt_memory_atomic_notify(
    vmctx: *mut VMContext,
    addr: u64,
    count: u32,
    result: *mut i32,
) -> i32 {
    // SAFETY: called by the shim with generated code's own vmctx.
    let woken = match unsafe { locate(vmctx, addr, 4, false) } {
        Ok((p, true, _)) => LOT.notify(p as usize, count),
        Ok((_, false, _)) => 0,
        Err(code) => return code as i32,
    };
    // SAFETY: the shim passes its own result slot. The count is returned
    // as the `i32` wasm sees (bit pattern of the `u32`).
    unsafe { put(result, woken as i32) }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ParkingLot {
        /// [`ParkingLot::wait`] with a timeout from now and no
        /// interruption.
        fn wait_for(
            &self,
            key: usize,
            expected: impl FnOnce() -> bool,
            timeout: Option<Duration>,
            stop: Option<&AtomicBool>,
        ) -> WaitResult {
            self.wait(key, expected, deadline_of(timeout), stop, None)
        }
    }

    /// A waiter at `key` with no timeout, interruptible by `flag` with
    /// slices of `slice`: its result and how long it waited.
    fn interruptible_waiter(
        lot: &Arc<ParkingLot>,
        flag: &Arc<AtomicBool>,
        key: usize,
        slice: Duration,
    ) -> std::thread::JoinHandle<(WaitResult, Duration)> {
        let (lot, flag) = (Arc::clone(lot), Arc::clone(flag));
        std::thread::spawn(move || {
            let start = Instant::now();
            let wanted = || flag.load(Ordering::SeqCst);
            let r = lot.wait(key, || true, None, None, Some((&wanted, slice)));
            (r, start.elapsed())
        })
    }

    #[test]
    fn a_request_ends_a_wait_within_a_slice() {
        let lot = Arc::new(ParkingLot::new());
        let flag = Arc::new(AtomicBool::new(false));
        let w = interruptible_waiter(&lot, &flag, 512, Duration::from_millis(10));
        while lot.waiters(512) < 1 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(30));
        // Still parked: nothing was requested.
        assert_eq!(lot.waiters(512), 1);
        flag.store(true, Ordering::SeqCst);
        let (r, waited) = w.join().unwrap();
        assert_eq!(r, WaitResult::Interrupted);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        // It left its queue: a notify finds nobody.
        assert_eq!(lot.waiters(512), 0);
        assert_eq!(lot.notify(512, 1), 0);
    }

    #[test]
    fn wake_all_makes_waiters_look_at_their_request_at_once() {
        let lot = Arc::new(ParkingLot::new());
        let flag = Arc::new(AtomicBool::new(false));
        // Slices far longer than the test: only `wake_all` can end it.
        let w = interruptible_waiter(&lot, &flag, 516, Duration::from_secs(60));
        while lot.waiters(516) < 1 {
            std::thread::yield_now();
        }
        let start = Instant::now();
        flag.store(true, Ordering::SeqCst);
        lot.wake_all();
        let (r, _) = w.join().unwrap();
        assert_eq!(r, WaitResult::Interrupted);
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(lot.waiters(516), 0);
    }

    #[test]
    fn an_interruptible_wait_is_still_woken_by_a_notify() {
        let lot = Arc::new(ParkingLot::new());
        let flag = Arc::new(AtomicBool::new(false));
        let w = interruptible_waiter(&lot, &flag, 520, Duration::from_secs(60));
        while lot.waiters(520) < 1 {
            std::thread::yield_now();
        }
        assert_eq!(lot.notify(520, 1), 1);
        let (r, waited) = w.join().unwrap();
        assert_eq!(r, WaitResult::Woken);
        assert!(waited < Duration::from_secs(30), "{waited:?}");
    }

    #[test]
    fn a_pending_request_does_not_change_not_equal_or_a_zero_timeout() {
        let lot = ParkingLot::new();
        let wanted = || true;
        let slice = Duration::from_millis(10);
        assert_eq!(
            lot.wait(524, || false, None, None, Some((&wanted, slice))),
            WaitResult::NotEqual
        );
        assert_eq!(
            lot.wait(
                524,
                || true,
                deadline_of(Some(Duration::ZERO)),
                None,
                Some((&wanted, slice))
            ),
            WaitResult::TimedOut
        );
        // A wait that would park leaves at once.
        assert_eq!(
            lot.wait(524, || true, None, None, Some((&wanted, slice))),
            WaitResult::Interrupted
        );
        assert_eq!(lot.waiters(524), 0);
    }

    #[test]
    fn not_equal_returns_at_once() {
        let lot = ParkingLot::new();
        assert_eq!(lot.wait_for(64, || false, None, None), WaitResult::NotEqual);
        assert_eq!(lot.waiters(64), 0);
    }

    #[test]
    fn zero_and_finite_timeouts_time_out() {
        let lot = ParkingLot::new();
        assert_eq!(
            lot.wait_for(64, || true, Some(Duration::ZERO), None),
            WaitResult::TimedOut
        );
        let start = Instant::now();
        assert_eq!(
            lot.wait_for(64, || true, Some(Duration::from_millis(20)), None),
            WaitResult::TimedOut
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        // The timed-out waiter left its queue.
        assert_eq!(lot.waiters(64), 0);
        assert_eq!(lot.notify(64, 1), 0);
    }

    #[test]
    fn negative_timeout_is_none() {
        assert_eq!(timeout_of(-1), None);
        assert_eq!(timeout_of(i64::MIN), None);
        assert_eq!(timeout_of(0), Some(Duration::ZERO));
        assert_eq!(timeout_of(1500), Some(Duration::from_nanos(1500)));
    }

    #[test]
    fn notify_wakes_waiters_of_its_address_only() {
        let lot = Arc::new(ParkingLot::new());
        let done = Arc::new(AtomicBool::new(false));
        let spawn = |key: usize| {
            let lot = Arc::clone(&lot);
            std::thread::spawn(move || lot.wait_for(key, || true, None, None))
        };
        let a = [spawn(128), spawn(128), spawn(128)];
        let other = {
            let lot = Arc::clone(&lot);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let r = lot.wait_for(132, || true, Some(Duration::from_secs(30)), None);
                done.store(true, Ordering::SeqCst);
                r
            })
        };
        while lot.waiters(128) < 3 || lot.waiters(132) < 1 {
            std::thread::yield_now();
        }
        assert_eq!(lot.notify(128, 2), 2);
        assert_eq!(lot.waiters(128), 1);
        assert_eq!(lot.notify(128, u32::MAX), 1);
        assert_eq!(lot.notify(128, 1), 0);
        for h in a {
            assert_eq!(h.join().unwrap(), WaitResult::Woken);
        }
        assert!(!done.load(Ordering::SeqCst), "another address was woken");
        assert_eq!(lot.notify(132, 0), 0);
        assert_eq!(lot.notify(132, 1), 1);
        assert_eq!(other.join().unwrap(), WaitResult::Woken);
    }

    #[test]
    fn a_notify_after_the_store_is_never_lost() {
        // The waiter compares under the bucket lock; the notifier stores,
        // then notifies: whichever order they run in, the waiter ends.
        for _ in 0..200 {
            let lot = Arc::new(ParkingLot::new());
            let cell = Arc::new(AtomicU32::new(0));
            let waiter = {
                let (lot, cell) = (Arc::clone(&lot), Arc::clone(&cell));
                std::thread::spawn(move || {
                    lot.wait_for(8, || cell.load(Ordering::SeqCst) == 0, None, None)
                })
            };
            cell.store(1, Ordering::SeqCst);
            lot.notify(8, 1);
            let r = waiter.join().unwrap();
            assert!(
                matches!(r, WaitResult::Woken | WaitResult::NotEqual),
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_stop_wakes_waiters_and_they_leave_their_queue() {
        let lot = Arc::new(ParkingLot::new());
        let stop = Arc::new(AtomicBool::new(false));
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let (lot, stop) = (Arc::clone(&lot), Arc::clone(&stop));
                let timeout = (i == 0).then(|| Duration::from_secs(60));
                std::thread::spawn(move || lot.wait_for(256, || true, timeout, Some(&stop)))
            })
            .collect();
        // A waiter without a stop flag stays.
        let other = {
            let lot = Arc::clone(&lot);
            std::thread::spawn(move || lot.wait_for(256, || true, None, None))
        };
        while lot.waiters(256) < 4 {
            std::thread::yield_now();
        }
        // Spurious wakes do not end the waits.
        lot.wake_all();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(lot.waiters(256), 4);
        stop.store(true, Ordering::SeqCst);
        lot.wake_all();
        for w in waiters {
            assert_eq!(w.join().unwrap(), WaitResult::Stopped);
        }
        assert_eq!(lot.waiters(256), 1);
        // A stopped program's new wait returns at once.
        assert_eq!(
            lot.wait_for(260, || true, None, Some(&stop)),
            WaitResult::Stopped
        );
        assert_eq!(lot.notify(256, 1), 1);
        assert_eq!(other.join().unwrap(), WaitResult::Woken);
    }
}
