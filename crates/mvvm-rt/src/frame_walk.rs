//! Reading wasm frames where the native frames hold them, and checking
//! what is read against the records the unwind blocks write (plan step 7
//! of "Reading frames where they are" in `crates/mvvm-aot/CHECKPOINT.md`).
//!
//! Only objects compiled with the developer option `frame_map` carry
//! frame maps ([`mvvm_abi::frame_map`]); their probe trampoline calls
//! `ProbeWalk` with its own frame pointer. When that probe starts an
//! unwind, [`walk`] follows the frame-pointer chain from there, innermost
//! first, as the exception walk does (`throw.rs`): each frame's return
//! address names a body and, if the map has it, a site, whose values are
//! read from the frame (stack slots at a CFA offset; CFA = frame pointer +
//! 16 on x86-64 and aarch64). Then the normal unwind runs, every frame's
//! unwind block writes its record, and [`compare`] checks the two, frame
//! by frame: function, stable point, every value read. A disagreement is
//! an error of the checkpoint (`capture.rs` refuses the snapshot), never
//! ignored.
//!
//! Not read, and counted as such ([`FrameWalkStats`]): values the map puts
//! in a register (their callee-saved copies would need each prologue's
//! save area and the probe trampoline's, which the map does not describe
//! yet) and values it could not locate (a call's arguments, values the
//! optimiser recomputes after the call).
//!
//! ```text
//!   higher addresses
//!   ┌────────────────────────┐  CFA of frame 1 = fp1 + 16
//!   │ return address, old fp │  ◀── fp1 (caller, at a call site)
//!   │ spill slots (CFA - k)  │
//!   ├────────────────────────┤  CFA of frame 0 = fp0 + 16
//!   │ return address, old fp │  ◀── fp0 (the probing body)
//!   │ spill slots            │
//!   ├────────────────────────┤
//!   │ return address, old fp │  ◀── trampoline fp (given to ProbeWalk)
//!   │ probe trampoline       │
//!   └────────────────────────┘
//! ```

use crate::checkpoint::control::RawFrame;
use mvvm_abi::frame_map::ValueLocation;

/// At most this many frames are walked (as the exception walk).
const MAX_FRAMES: usize = 1 << 20;

/// One value of a walked frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walked {
    /// Read from the frame: its slot(s), zero-extended from its width.
    Read { slot: u32, bits: [u64; 2], wide: bool },
    /// A dead local: its slot must be zero.
    Dead { slot: u32, wide: bool },
    /// In a register: not read.
    Register,
    /// Not located: not read.
    Unknown,
    /// The map put it outside the frame: an error of the map.
    Outside { slot: u32 },
}

/// A wasm frame found by [`walk`].
#[derive(Debug, Clone)]
pub(crate) struct WalkedFrame {
    /// Function index.
    pub func: u32,
    /// The return address's offset in the body (for messages).
    pub ret_offset: u32,
    /// The covered site, if the map has one for this return address:
    /// stable point, record size in slots, values.
    pub site: Option<(u32, u32, Vec<Walked>)>,
}

/// What one checkpoint's check found (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameWalkStats {
    /// Wasm frames walked.
    pub frames_walked: u64,
    /// Of those, frames at a site of the frame map, compared with the
    /// record their unwind block wrote.
    pub frames_compared: u64,
    /// Frames compared whose every value was read (none in a register,
    /// none unlocated; call arguments count as unlocated).
    pub frames_fully_read: u64,
    /// Values read from stack slots and found equal to the record.
    pub values_compared: u64,
    /// Dead locals found zero in the record.
    pub dead_compared: u64,
    /// Values in registers: not checked.
    pub values_in_registers: u64,
    /// Values the map could not locate: not checked.
    pub values_unlocated: u64,
    /// Frames the unwind wrote beyond the walk (frames after a host
    /// frame, which the walk stops at).
    pub frames_not_walked: u64,
}

impl FrameWalkStats {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &FrameWalkStats) {
        self.frames_walked += o.frames_walked;
        self.frames_compared += o.frames_compared;
        self.frames_fully_read += o.frames_fully_read;
        self.values_compared += o.values_compared;
        self.dead_compared += o.dead_compared;
        self.values_in_registers += o.values_in_registers;
        self.values_unlocated += o.values_unlocated;
        self.frames_not_walked += o.frames_not_walked;
    }
}

/// Walks the wasm frames above the probe trampoline's frame `tramp_fp`,
/// innermost first, and reads the values of every frame at a covered
/// site.
///
/// # Safety
/// `tramp_fp` is the frame pointer of the module's probe trampoline,
/// live (its `ProbeWalk` call has not returned), called from a wasm body:
/// its frame record holds the body's frame pointer and the return address
/// into it, and every wasm frame above keeps a frame record (Cranelift's
/// `preserve_frame_pointers`).
pub(crate) unsafe fn walk(tramp_fp: usize) -> Vec<WalkedFrame> {
    let mut frames = Vec::new();
    // SAFETY: the trampoline's frame record (caller): its frame pointer
    // points at the saved frame pointer, the return address above it,
    // both aligned words of a live frame.
    let (mut fp, mut pc) = unsafe { (*(tramp_fp as *const usize), *((tramp_fp + 8) as *const usize)) };
    // The lowest address of the frame being read: the CFA of the frame
    // below it (the callee's), where the callee's arguments and frame
    // record begin.
    let mut floor = tramp_fp + 16;
    for _ in 0..MAX_FRAMES {
        let cfa = fp + 16;
        let frame = crate::code::with_frame_site(pc, |found| {
            let found = found?;
            let site = found.site.map(|s| {
                let values = s.values.iter().map(|v| read_value(v, floor, cfa)).collect();
                (s.offset, s.slots, values)
            });
            Some(WalkedFrame {
                func: found.func,
                ret_offset: found.ret_offset,
                site,
            })
        });
        let Some(frame) = frame else {
            break;
        };
        frames.push(frame);
        // SAFETY: `fp` is the frame pointer of a live wasm frame (the
        // walk's invariant, from the trampoline's record on): its record
        // holds the caller's frame pointer and return address.
        let (next_fp, next_pc) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        // Frames lie at increasing addresses; anything else ends the walk.
        if next_fp <= fp {
            break;
        }
        floor = cfa;
        (pc, fp) = (next_pc, next_fp);
    }
    frames
}

/// Reads value `v` of the frame whose CFA is `cfa` and whose callee's CFA
/// (the lowest address of the frame) is `floor`.
fn read_value(v: &mvvm_abi::frame_map::FrameValue, floor: usize, cfa: usize) -> Walked {
    let wide = v.width == 16;
    match v.loc {
        ValueLocation::Dead => Walked::Dead { slot: v.slot, wide },
        ValueLocation::Reg { .. } => Walked::Register,
        ValueLocation::Unknown => Walked::Unknown,
        ValueLocation::Stack { cfa_offset } => {
            let addr = cfa.wrapping_add_signed(cfa_offset as isize);
            let end = addr.wrapping_add(usize::from(v.width));
            if addr < floor || end > cfa || end < addr {
                return Walked::Outside { slot: v.slot };
            }
            // SAFETY: `addr..end` lies inside a live wasm frame of this
            // thread (checked just above: between its callee's CFA and its
            // own, as `walk` passes them), which nothing writes while the
            // runtime runs; unaligned reads of plain integers.
            let bits = unsafe {
                match v.width {
                    4 => [u64::from((addr as *const u32).read_unaligned()), 0],
                    8 => [(addr as *const u64).read_unaligned(), 0],
                    _ => [
                        (addr as *const u64).read_unaligned(),
                        ((addr + 8) as *const u64).read_unaligned(),
                    ],
                }
            };
            Walked::Read {
                slot: v.slot,
                bits,
                wide,
            }
        }
    }
}

/// A frame the walk found, as [`crate::code::with_frame_site`] reports it.
pub(crate) struct FrameSiteLookup<'a> {
    /// Function index.
    pub func: u32,
    /// Offset of the return address in the body.
    pub ret_offset: u32,
    /// The map's site for it.
    pub site: Option<&'a mvvm_abi::frame_map::FrameSite>,
}

/// Compares the walked frames with the frames the unwind saved (both
/// innermost first): the counts, or every disagreement.
pub(crate) fn compare(
    walked: &[WalkedFrame],
    unwound: &[RawFrame],
) -> (FrameWalkStats, Vec<String>) {
    let mut st = FrameWalkStats {
        frames_walked: walked.len() as u64,
        frames_not_walked: unwound.len().saturating_sub(walked.len()) as u64,
        ..Default::default()
    };
    let mut errors = Vec::new();
    if walked.len() > unwound.len() {
        errors.push(format!(
            "the walk found {} wasm frames, the unwind saved {}",
            walked.len(),
            unwound.len()
        ));
    }
    for (i, (w, u)) in walked.iter().zip(unwound).enumerate() {
        let at = format!(
            "frame {i} (function {}, return offset {:#x})",
            w.func, w.ret_offset
        );
        if w.func != u.func {
            errors.push(format!("{at}: the unwind saved function {}", u.func));
            continue;
        }
        let Some((offset, slots, values)) = &w.site else {
            continue;
        };
        st.frames_compared += 1;
        if *offset != u.offset {
            errors.push(format!(
                "{at}: map says stable point {offset:#x}, the unwind {:#x}",
                u.offset
            ));
            continue;
        }
        if *slots as usize != u.slots.len() {
            errors.push(format!(
                "{at}: map says {slots} slots, the unwind wrote {}",
                u.slots.len()
            ));
            continue;
        }
        let slot = |k: u32| u.slots.get(k as usize).copied();
        let mut full = true;
        for v in values {
            match *v {
                Walked::Read { slot: k, bits, wide } => {
                    let want = [slot(k), if wide { slot(k + 1) } else { Some(0) }];
                    if want != [Some(bits[0]), Some(bits[1])] {
                        errors.push(format!(
                            "{at}, stable point {offset:#x}, slot {k}: read {:#x?}, the unwind wrote {:#x?}",
                            &bits[..1 + usize::from(wide)],
                            &want[..1 + usize::from(wide)]
                        ));
                    } else {
                        st.values_compared += 1;
                    }
                }
                Walked::Dead { slot: k, wide } => {
                    let zero = slot(k) == Some(0) && (!wide || slot(k + 1) == Some(0));
                    if zero {
                        st.dead_compared += 1;
                    } else {
                        errors.push(format!(
                            "{at}, stable point {offset:#x}, slot {k}: a dead local, but the unwind wrote {:#x?}",
                            slot(k)
                        ));
                    }
                }
                Walked::Register => {
                    full = false;
                    st.values_in_registers += 1;
                }
                Walked::Unknown => {
                    full = false;
                    st.values_unlocated += 1;
                }
                Walked::Outside { slot: k } => {
                    errors.push(format!(
                        "{at}, stable point {offset:#x}, slot {k}: the map puts it outside the frame"
                    ));
                }
            }
        }
        if full {
            st.frames_fully_read += 1;
        }
    }
    (st, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(func: u32, offset: u32, slots: Vec<u64>) -> RawFrame {
        RawFrame {
            func,
            offset,
            point: u32::MAX,
            slots,
        }
    }

    #[test]
    fn equal_frames_count_and_any_difference_is_an_error() {
        let walked = vec![WalkedFrame {
            func: 3,
            ret_offset: 0x40,
            site: Some((
                0x12,
                4,
                vec![
                    Walked::Read {
                        slot: 0,
                        bits: [7, 0],
                        wide: false,
                    },
                    Walked::Dead {
                        slot: 1,
                        wide: false,
                    },
                    Walked::Read {
                        slot: 2,
                        bits: [1, 2],
                        wide: true,
                    },
                ],
            )),
        }];
        let good = [raw(3, 0x12, vec![7, 0, 1, 2]), raw(1, 0x5, vec![])];
        let (st, errors) = compare(&walked, &good);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (st.frames_compared, st.values_compared, st.dead_compared, st.frames_not_walked),
            (1, 2, 1, 1)
        );
        for bad in [
            raw(3, 0x12, vec![8, 0, 1, 2]),
            raw(3, 0x12, vec![7, 1, 1, 2]),
            raw(3, 0x12, vec![7, 0, 1, 3]),
            raw(3, 0x13, vec![7, 0, 1, 2]),
            raw(4, 0x12, vec![7, 0, 1, 2]),
            raw(3, 0x12, vec![7, 0, 1]),
        ] {
            let (_, errors) = compare(&walked, &[bad.clone()]);
            assert_eq!(errors.len(), 1, "{bad:?}: {errors:?}");
        }
        let (_, errors) = compare(&walked, &[]);
        assert_eq!(errors.len(), 1);
    }
}
