//! The checkpoint side of the runtime's own blocking builtins
//! (`memory.atomic.wait32/wait64`, in `crate::atomic_wait`): when a
//! parked thread may give its wait up for a checkpoint, how it does, and
//! the time a finite wait had left, which the frame of the wait site
//! carries instead of the original timeout.
//!
//! A wait is a stable point (`StablePointKind::AtomicWait`) of code
//! compiled with a policy: the wait builtin that sees a request
//! ([`requested`]) leaves the parking lot, marks the store
//! (`Control::host_interrupted`, then `control::take_host_unwind`, which
//! sets `UNWINDING` as for an interrupted host call) and returns; the code
//! after the builtin call unwinds, and its frame (innermost, written at
//! once by `UnwindFrame`) holds the wait's operands. The restored program
//! makes the wait again from them.
//!
//! The time left: a wait of 10 s interrupted after 4 s must wait 6 s after
//! the restore, not 10 s again. The builtin knows the time left when it
//! leaves; the frame is written by generated code right after, from the
//! operand it had. So the builtin records the time left here
//! ([`leave_for_checkpoint`]) and `UnwindFrame` puts it in place of the
//! timeout operand ([`patch_wait_frame`]) before it keeps the frame.
//!
//! The time left is kept in a thread-local, tagged with the `Control` of
//! the store that left the wait: the wait and the `UnwindFrame` of its
//! frame run on the same thread, one right after the other (the unwind
//! test follows the builtin call; nothing runs in between), and the tag
//! keeps it from ever reaching another store's frame.

use super::control::{self, Control, RawFrame};
use crate::store::StoreInner;
use mvvm_abi::{StablePointKind, ValType};
use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// The time a wait had left when it was given up for a checkpoint, in
    /// nanoseconds, and the `Control` of its store: taken by the first
    /// frame unwound after it ([`patch_wait_frame`]).
    static WAIT_LEFT: Cell<Option<(*const Control, u64)>> = const { Cell::new(None) };
}

/// Whether a wait of the instance `instance` of `s` may be given up for a
/// checkpoint: a session runs on this thread and on the store, and the
/// instance's code was compiled with a policy (without one, the code after
/// the wait does not test for unwinding: the runtime must never unwind it).
pub(crate) fn may_interrupt(s: &StoreInner, instance: u32) -> bool {
    control::interruptible()
        && s.ckpt.is_some()
        && s.instances
            .get(instance as usize)
            .is_some_and(|i| i.module.meta().policy.is_instrumented())
}

/// Whether a checkpoint is wanted now for the store running on this
/// thread and can be taken: a parked wait that [`may_interrupt`] leaves
/// when this becomes true. Reads atomics and thread-locals only, takes no
/// lock: the parking lot calls it while holding a waiter's lock.
pub(crate) fn requested() -> bool {
    control::requested()
}

/// Gives the wait that just left the parking lot up for a checkpoint:
/// `s` is now `UNWINDING` (the generated code after the wait unwinds), and
/// `left`, the time a finite wait had left (`None`: no timeout), is kept
/// for the wait's frame. False when `s` has no session (then nothing
/// changed and the wait must go on).
pub(crate) fn leave_for_checkpoint(s: &mut StoreInner, left: Option<Duration>) -> bool {
    let Some(c) = s.ckpt.as_deref_mut() else {
        return false;
    };
    c.host_interrupted = true;
    let tag: *const Control = c;
    if !control::take_host_unwind(s) {
        return false;
    }
    // A timeout operand is an `i64` of nanoseconds: what is left of it
    // fits.
    let nanos = |d: Duration| {
        u64::try_from(d.as_nanos()).map_or(i64::MAX as u64, |n| n.min(i64::MAX as u64))
    };
    WAIT_LEFT.with(|w| w.set(left.map(|d| (tag, nanos(d)))));
    true
}

/// Forgets a time left that no frame took (called when a wait starts, so
/// a value can never outlive the wait that recorded it).
pub(crate) fn forget_wait_left() {
    WAIT_LEFT.with(|w| w.set(None));
}

/// For `UnwindFrame`, before it keeps `frame`: if `frame` is the
/// innermost frame of `c`'s unwind (none kept yet), at an `AtomicWait`
/// point, and its wait was given up with a finite timeout, puts the time
/// that was left in place of the timeout operand (the last slot: the top
/// of the stack, an `i64`). Any other frame is left alone; the time left
/// is used once.
pub(crate) fn patch_wait_frame(c: &Control, frame: &mut RawFrame) {
    let Some((tag, left)) = WAIT_LEFT.with(Cell::take) else {
        return;
    };
    if !std::ptr::eq(tag, c) || !c.unwound.is_empty() {
        return;
    }
    let meta = c.module.meta();
    // Tables that cannot be read: the capture reports them.
    let Ok(info) = meta.func_tables(frame.func) else {
        return;
    };
    let Some(i) = info.point_at(frame.offset) else {
        return;
    };
    let point = &info.stable_points[i];
    if point.kind != StablePointKind::AtomicWait || point.stack.last() != Some(&ValType::I64) {
        return;
    }
    let slots: usize = info
        .locals
        .iter()
        .chain(&point.stack)
        .map(|t| t.slots())
        .sum();
    if frame.slots.len() != slots {
        // Not the layout of this point: the capture rejects the frame.
        return;
    }
    if let Some(timeout) = frame.slots.last_mut() {
        // Negative (no timeout) stays; a finite one becomes what was left,
        // never more than it was.
        if let Ok(t) = u64::try_from(*timeout as i64) {
            *timeout = left.min(t);
        }
    }
}
