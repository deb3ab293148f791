//! Frame maps: where the native frames of a module hold each wasm frame
//! value at its stable points, so that the runtime can read frames where
//! they are instead of having each unwind block store them (issues 12,
//! 15, 16; "Reading frames where they are" in `crates/mvvm-aot/CHECKPOINT.md`).
//!
//! Today only a developer option of the compiler writes them
//! (`mvvm_aot::frame_labels::DevOptions::frame_map`), next to the unwind
//! blocks, and the runtime only uses them to *check* that a frame read
//! this way equals the record the unwind block wrote (plan step 7): the
//! validation that must hold before any store is dropped.
//!
//! Stored in [`FRAMES_SECTION`](crate::object::FRAMES_SECTION), present
//! only in such objects, as the [`codec`](crate::codec) encoding of
//! [`FrameMaps`]. Untrusted like every section: [`FrameMaps::decode`]
//! checks what a reader relies on (sorted sites, slot ranges).

use serde::{Deserialize, Serialize};

/// Which compiled body of a function a map describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FrameBody {
    /// The only body of a loop-free function.
    Whole,
    /// The body under the function's own symbol, of a function with a
    /// resume clone.
    Hot,
    /// The resume clone.
    Resume,
}

/// Where one wasm value of a frame is while the site's call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueLocation {
    /// A local that is dead at the site: its record slots are zero.
    Dead,
    /// In the frame, at this byte offset from the canonical frame address
    /// (the caller's stack pointer at the call into this function: frame
    /// pointer + 16 on x86-64 and aarch64), little-endian, its low bytes
    /// first.
    Stack {
        /// Offset from the CFA (negative: inside the frame).
        cfa_offset: i32,
    },
    /// In a register (`class` 0 integer, 1 float, 2 vector; `hw` its
    /// hardware number). At a call site the calling convention preserves
    /// it across the callee: its value is where the callees' prologues
    /// saved it, or still in the register.
    Reg {
        /// Register class.
        class: u8,
        /// Hardware encoding.
        hw: u8,
    },
    /// Not located: Cranelift kept no location for it at the site (a
    /// value recomputed after the call, a call argument that is dead once
    /// passed). The unwind block is the only source.
    Unknown,
}

/// One wasm value of a frame record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameValue {
    /// Its first `u64` slot in the frame record (locals then the operand
    /// stack; a `v128` fills two).
    pub slot: u32,
    /// Its width in bytes: 4 (`i32`, `f32`: zero-extended into the slot),
    /// 8, or 16 (`v128`, two slots, low half first).
    pub width: u8,
    /// Where it is.
    pub loc: ValueLocation,
}

/// A covered stable point of one body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSite {
    /// Return address of the site's call, as an offset from the start of
    /// the body: for a call stable point, the call of the callee; for a
    /// probe, its call of the probe trampoline.
    pub ret_offset: u32,
    /// The stable point (bytecode offset of its instruction).
    pub offset: u32,
    /// Whether the site is a probe (the innermost frame of an unwind
    /// started there; its registers are in the probe trampoline's
    /// care).
    pub probe: bool,
    /// Number of `u64` slots of the frame record.
    pub slots: u32,
    /// Index in `values` of the call's first argument (the length of
    /// `values` for a probe): the arguments are in the record because the
    /// rewind re-issues the call, but the callee's own frame is what
    /// matters; once passed they need not be anywhere.
    pub args_from: u32,
    /// Every value of the record, locals first, then the operand stack
    /// from the bottom (call arguments included).
    pub values: Vec<FrameValue>,
    /// Whether the site's unwind path writes no record (developer option
    /// `walk_frames`): the runtime makes the frame's record from the walk,
    /// with zeros for the call's arguments.
    pub walked: bool,
}

/// Where a prologue saved a register it clobbers: the caller's value of
/// the register is there while the function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegSave {
    /// Register class (as [`ValueLocation::Reg`]).
    pub class: u8,
    /// Hardware encoding.
    pub hw: u8,
    /// Byte offset from the function's frame pointer (negative), little
    /// endian; 8 bytes for an integer register, 16 for a float register
    /// saved whole (x86-64), 8 for aarch64's `d8`-`d15`.
    pub fp_offset: i32,
}

/// The sites of one body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyFrameMap {
    /// Function index (imports included).
    pub func: u32,
    /// Which body.
    pub body: FrameBody,
    /// Its sites, sorted by strictly increasing `ret_offset`.
    pub sites: Vec<FrameSite>,
    /// The registers its prologue saves, and where.
    pub saves: Vec<RegSave>,
}

/// The frame maps of a module, sorted by `(func, body)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameMaps {
    /// One per compiled body.
    pub bodies: Vec<BodyFrameMap>,
    /// The registers the probe trampoline's prologue saves (it is
    /// `preserve_all`: every register it or its callee clobbers), and
    /// where: the probing body's values of those registers.
    pub probe_saves: Vec<RegSave>,
    /// Per imported function (by index), the registers its import stub's
    /// prologue saves, and where: the calling body's values of those
    /// registers when a host call starts an unwind.
    pub stub_saves: Vec<Vec<RegSave>>,
}

/// A frame-map section that does not hold what a reader relies on.
#[derive(Debug, thiserror::Error)]
pub enum FrameMapError {
    /// The bytes do not decode.
    #[error("frame maps: {0}")]
    Codec(#[from] crate::codec::CodecError),
    /// Decoded, but inconsistent.
    #[error("frame maps: {0}")]
    Invalid(String),
}

impl FrameMaps {
    /// Encodes the maps for [`FRAMES_SECTION`](crate::object::FRAMES_SECTION).
    pub fn encode(&self) -> Result<Vec<u8>, crate::codec::CodecError> {
        crate::codec::encode(self)
    }

    /// Decodes and checks a section: bodies sorted and distinct, sites
    /// sorted by return offset, every value inside its record.
    pub fn decode(bytes: &[u8]) -> Result<FrameMaps, FrameMapError> {
        let maps: FrameMaps = crate::codec::decode(bytes)?;
        let bad = |m: String| Err(FrameMapError::Invalid(m));
        for w in maps.bodies.windows(2) {
            if (w[0].func, w[0].body as u8) >= (w[1].func, w[1].body as u8) {
                return bad(format!("bodies out of order at function {}", w[1].func));
            }
        }
        for b in &maps.bodies {
            for w in b.sites.windows(2) {
                if w[0].ret_offset >= w[1].ret_offset {
                    return bad(format!("function {}: sites out of order", b.func));
                }
            }
            for s in &b.sites {
                for v in &s.values {
                    let n = if v.width == 16 { 2 } else { 1 };
                    let fits = v.slot.checked_add(n).is_some_and(|end| end <= s.slots);
                    if !matches!(v.width, 4 | 8 | 16) || !fits {
                        return bad(format!(
                            "function {} at {:#x}: value at slot {} of width {} outside its {} slots",
                            b.func, s.offset, v.slot, v.width, s.slots
                        ));
                    }
                }
            }
        }
        Ok(maps)
    }

    /// The map of `func`'s body `body`, if it has sites.
    pub fn body(&self, func: u32, body: FrameBody) -> Option<&BodyFrameMap> {
        self.bodies
            .binary_search_by_key(&(func, body as u8), |b| (b.func, b.body as u8))
            .ok()
            .map(|i| &self.bodies[i])
    }
}

impl BodyFrameMap {
    /// The site whose call returns at `ret_offset`.
    pub fn site(&self, ret_offset: u32) -> Option<&FrameSite> {
        self.sites
            .binary_search_by_key(&ret_offset, |s| s.ret_offset)
            .ok()
            .map(|i| &self.sites[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(ret: u32) -> FrameSite {
        FrameSite {
            ret_offset: ret,
            offset: 7,
            probe: false,
            slots: 3,
            args_from: 1,
            walked: false,
            values: vec![FrameValue {
                slot: 1,
                width: 16,
                loc: ValueLocation::Stack { cfa_offset: -24 },
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_a_reader_relies_on() {
        let mut maps = FrameMaps {
            bodies: vec![BodyFrameMap {
                func: 2,
                body: FrameBody::Hot,
                sites: vec![site(10), site(20)],
                saves: vec![RegSave {
                    class: 0,
                    hw: 3,
                    fp_offset: -8,
                }],
            }],
            probe_saves: Vec::new(),
            stub_saves: vec![Vec::new()],
        };
        let back = FrameMaps::decode(&maps.encode().unwrap()).unwrap();
        assert_eq!(back, maps);
        assert_eq!(
            back.body(2, FrameBody::Hot)
                .unwrap()
                .site(20)
                .unwrap()
                .offset,
            7
        );
        assert!(back.body(2, FrameBody::Resume).is_none());
        maps.bodies[0].sites[1].ret_offset = 10;
        assert!(FrameMaps::decode(&maps.encode().unwrap()).is_err());
        maps.bodies[0].sites[1].ret_offset = 30;
        maps.bodies[0].sites[1].values[0].slot = 2;
        assert!(FrameMaps::decode(&maps.encode().unwrap()).is_err());
    }
}
