//! Moving a restored memory onto huge pages, in the background.
//!
//! A restored memory is the snapshot file mapped copy-on-write: its
//! pages, and the private copies the program's writes make of them, are
//! 4 KiB ones, never huge (`MADV_COLLAPSE` refuses a file mapping:
//! `EINVAL`, checked on Linux 6.18). Protecting it at each periodic
//! checkpoint then costs one page-table entry per 4 KiB (about 10-30 ms
//! per GiB here) where a fresh run's huge pages cost one per 2 MiB.
//! Copying the whole memory at restore fixes that but multiplies the
//! restore's start-up (0.12 s to 2.6-3 s at 1 GiB, measured). So a
//! thread does it after the program resumed, one 2 MiB unit at a time:
//!
//! ```text
//!  outside any lock: map a 2 MiB-aligned anonymous buffer, MADV_HUGEPAGE,
//!                    touch each page (a huge page is allocated here)
//!  under the tracker's lock: protect the unit read-only, mark it as
//!                    being moved (dirty.rs, TrackerView::convert_unit)
//!  without the lock: copy it into the buffer, protect the buffer
//!                    read-only, mremap(MAYMOVE|FIXED) it over the unit,
//!                    clear the mark
//!  a write to the unit meanwhile faults; the handler waits for the mark
//!  to clear, then unprotects the unit, now the huge page, as for any
//!  clean unit (a pause's image, a pre-copy round and faults on other
//!  units never wait for the copy)
//! ```
//!
//! The unit is left read-only: one more fault for a unit the program had
//! already written in the period, never a lost write or a wrong bit.
//! Only memories tracked in whole units ([`super::dirty::HUGE_FROM`] bytes
//! or more) are converted, and only units the snapshot file was mapped
//! over; the thread stops when the memory is dropped (which joins it),
//! when tracking changes granularity, or at the first error (what it
//! converted stays converted; the rest stays as it was). Until it is
//! done, the units the program writes are protected ahead of each
//! periodic checkpoint instead (`dirty::protect_ahead`), so that the
//! pauses of the first checkpoints do not protect them 4 KiB at a time;
//! the thread ends that once every unit is moved.

use super::dirty::{HUGE_UNIT, TrackerView};
use crate::sys::mman::{self, Prot};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// The converting thread of one memory; dropping it stops and joins it.
#[derive(Debug)]
pub(crate) struct Converter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The memory's base, sent to the thread.
struct Base(*mut u8);

// SAFETY: the address of the memory's reservation, which stays mapped
// until the thread is joined (`Converter` is dropped first: see
// `LinearMemory`'s drop and `Converter::start`'s contract). The thread
// reaches the memory only through `TrackerView::convert_unit`, which
// keeps the unit it moves read-only and the fault handler away from it.
unsafe impl Send for Base {}

impl Converter {
    /// Starts converting every unit that `ranges` (byte ranges of the
    /// memory at `base` that a snapshot file is mapped over) touch, in
    /// order, up to the last whole unit below the tracked length. `None`
    /// when the kernel gives no huge pages
    /// (`transparent_hugepage` is `never`) or the thread cannot start.
    ///
    /// # Safety
    /// `base` is the memory `tracker` tracks; the caller keeps the
    /// reservation mapped until the returned value is dropped (which
    /// joins the thread).
    pub(crate) unsafe fn start(
        base: *mut u8,
        ranges: &[(usize, usize)],
        tracker: TrackerView,
    ) -> Option<Converter> {
        if !thp_available() {
            tracing::debug!("no transparent huge pages: the restored memory stays on small pages");
            return None;
        }
        let units = units_of(ranges);
        if units.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let base = Base(base);
        let handle = std::thread::Builder::new()
            .name("mvvm-huge-pages".into())
            .spawn(move || {
                // Background work: waking or running it must not preempt
                // the program's threads.
                if let Err(e) = crate::sys::sched::set_batch() {
                    tracing::debug!("huge-page converter not in SCHED_BATCH: {e}");
                }
                let base = base;
                let t0 = Instant::now();
                // SAFETY: the caller keeps the memory mapped until we are
                // joined (contract of `start`).
                let done = unsafe { convert(base.0, &units, tracker, &flag) };
                tracing::debug!(
                    "restored memory: {done} of {} unit(s) of 2 MiB moved to huge pages in {:.1} ms",
                    units.len(),
                    t0.elapsed().as_secs_f64() * 1e3
                );
            })
            .map_err(|e| tracing::debug!("huge-page converter not started: {e}"))
            .ok()?;
        Some(Converter {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Whether the kernel may back a `MADV_HUGEPAGE` range with huge pages.
fn thp_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"))
}

/// The [`HUGE_UNIT`]s (indices) that `ranges` (byte ranges) touch, in
/// order.
pub(crate) fn units_of(ranges: &[(usize, usize)]) -> Vec<usize> {
    let mut units: Vec<usize> = ranges
        .iter()
        .flat_map(|&(start, end)| start / HUGE_UNIT..end.div_ceil(HUGE_UNIT))
        .collect();
    units.sort_unstable();
    units.dedup();
    units
}

/// Converts `units` (indices of [`HUGE_UNIT`]s) in order, until `stop` or
/// the first unit that cannot be; returns how many were. When it went
/// through them all (or stopped at one beyond the memory's whole units,
/// or because tracking changed), rather than on `stop` or an error, the
/// memory is no longer protected ahead of checkpoints
/// ([`super::dirty::protect_ahead`]): every unit that can be is on a huge
/// page, which a pause protects as cheaply as a fresh run's.
///
/// # Safety
/// `base` is the memory `tracker` tracks, mapped during the call.
pub(crate) unsafe fn convert(
    base: *mut u8,
    units: &[usize],
    tracker: TrackerView,
    stop: &AtomicBool,
) -> usize {
    let mut done = 0usize;
    for &u in units {
        if stop.load(Ordering::SeqCst) {
            return done;
        }
        let fresh = match huge_buffer() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("huge-page conversion stopped: {e}");
                return done;
            }
        };
        // SAFETY: `base` is the tracked memory's base, mapped during the
        // call (contract); `fresh` is the
        // `HUGE_UNIT`-long whole mapping just made, ours alone.
        match unsafe { tracker.convert_unit(base, u * HUGE_UNIT, fresh) } {
            Ok(true) => done += 1,
            Ok(false) => {
                // SAFETY: not moved: still our own mapping, unused.
                unsafe { mman::unmap(fresh, HUGE_UNIT) };
                // Beyond the length (a last partial unit), or tracking
                // changed: the next units would not do better.
                break;
            }
            Err(e) => {
                // SAFETY: not moved (the move is the last step and failed,
                // or was not reached): our own mapping, unused.
                unsafe { mman::unmap(fresh, HUGE_UNIT) };
                tracing::debug!("huge-page conversion stopped: {e}");
                return done;
            }
        }
    }
    tracker.set_protect_ahead(false);
    done
}

/// A fresh `HUGE_UNIT`-aligned, `HUGE_UNIT`-long anonymous read-write
/// mapping, asked to be a huge page and touched, so that the page is
/// allocated (and zeroed) here, not under the tracker's lock.
fn huge_buffer() -> std::io::Result<*mut u8> {
    let raw = mman::map_anon(2 * HUGE_UNIT, Prot::ReadWrite, false)?;
    let head = (HUGE_UNIT - raw as usize % HUGE_UNIT) % HUGE_UNIT;
    let tail = HUGE_UNIT - head;
    // SAFETY: `raw..raw + 2 * HUGE_UNIT` is the mapping just made, which
    // nothing else knows; the head and tail cut off are page-aligned and
    // lie in it; the part kept is untouched by the cuts.
    let p = unsafe {
        if head > 0 {
            mman::unmap(raw, head);
        }
        if tail > 0 {
            mman::unmap(raw.add(head + HUGE_UNIT), tail);
        }
        raw.add(head)
    };
    // SAFETY: `p..p + HUGE_UNIT` is our own mapping (above).
    if let Err(e) = unsafe { mman::advise_huge(p, HUGE_UNIT) } {
        // SAFETY: as above; nobody else uses it.
        unsafe { mman::unmap(p, HUGE_UNIT) };
        return Err(e);
    }
    let page = crate::sys::sysconf::page_size();
    for off in (0..HUGE_UNIT).step_by(page) {
        // SAFETY: inside our own read-write mapping; a volatile write so
        // that the touch (which allocates the page) is not elided.
        unsafe { p.add(off).write_volatile(0) };
    }
    Ok(p)
}
