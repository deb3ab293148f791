//! Checkpoint tables: each defined function's locals and stable points,
//! stored apart from the rest of the metadata in
//! [`CKPT_SECTION`](crate::object::CKPT_SECTION) and decoded per function
//! on first use.
//!
//! Why apart: a run needs them only when a checkpoint is taken or
//! restored, never to start, yet under a policy they are most of the
//! metadata (on a 40 000-function module, 9 of 15 MiB), and decoding them
//! with the rest was a third of start-up. The section is an index of
//! offsets followed by one [`codec`](crate::codec) encoding per function,
//! so looking up one function reads and decodes only its own bytes: a
//! restore of a few frames in a huge module decodes a few tables.
//!
//! Layout (little-endian): `u32 count`, then `count + 1` `u32` offsets
//! into the payload (the first 0, non-decreasing, the last the payload's
//! length), then the payload, where function `k`'s (defined index) tables
//! are the bytes between offsets `k` and `k + 1`.
//!
//! The section is untrusted input like the rest of the object: the loader
//! checks its header (count and total length) at load, and each function's
//! bytes are checked when they are first decoded, into a [`TablesError`]
//! that the checkpoint or restore that needed them reports.

use crate::checkpoint::StablePoint;
use crate::codec::CodecError;
pub use crate::indexed_section::SharedBytes;
use crate::indexed_section::{self, HEADER, SectionBytes, read_u32};
use crate::meta::ValType;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// The checkpoint tables of one defined function.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FuncTables {
    /// Types of the function's locals: parameters, then declared locals.
    pub locals: Vec<ValType>,
    /// Resume points, sorted by offset (empty when the policy is `None`);
    /// `RewindFrame` returns an index into this list.
    pub stable_points: Vec<StablePoint>,
}

impl FuncTables {
    /// Slots a frame of this function may need: its locals plus the
    /// deepest operand stack at a stable point (at least one), counted in
    /// slots ([`ValType::slots`]: two per `v128`). The compiler passes
    /// this capacity to `RewindFrame`; the runtime sizes the frame buffer
    /// (see [`VMLIMITS_FRAME_SLOTS`](crate::vmctx::VMLIMITS_FRAME_SLOTS))
    /// to [`ModuleMeta::frame_slots`](crate::meta::ModuleMeta::frame_slots),
    /// the largest over a module.
    pub fn frame_capacity(&self) -> usize {
        let slots = |tys: &[ValType]| tys.iter().map(|t| t.slots()).sum::<usize>();
        let stack = self
            .stable_points
            .iter()
            .map(|p| slots(&p.stack))
            .max()
            .unwrap_or(0);
        (slots(&self.locals) + stack).max(1)
    }

    /// The index of the stable point at bytecode `offset`, if there is one.
    pub fn point_at(&self, offset: u32) -> Option<usize> {
        self.stable_points
            .binary_search_by_key(&offset, |p| p.offset)
            .ok()
    }
}

/// The checkpoint tables of a function could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    /// The index is not that of a defined function.
    #[error("function #{0} is not a defined function of the module")]
    NotDefined(u32),
    /// The module's checkpoint-table section is missing or malformed.
    #[error("the checkpoint tables section is malformed: {0}")]
    Section(String),
    /// One function's tables are malformed.
    #[error("the checkpoint tables of function #{func} are malformed: {why}")]
    Func {
        /// Function index (imports included).
        func: u32,
        /// What is wrong.
        why: String,
    },
}

/// Every defined function's [`FuncTables`], kept encoded and decoded on
/// first use per function (see the [module documentation](self)).
#[derive(Clone, Default)]
pub struct CheckpointTables {
    /// The encoded section; empty for a module without one (then every
    /// lookup fails).
    bytes: SectionBytes,
    /// Number of defined functions the section claims.
    count: usize,
    /// Why the section cannot be used, when it cannot: every lookup then
    /// fails with this (a program still runs; its checkpoints fail).
    broken: Option<TablesError>,
    /// Largest frame a function's tables may describe (the module's frame
    /// buffer); a table that needs more is refused.
    frame_slots: usize,
    /// One cell per defined function, allocated on the first lookup so
    /// that a run that never checkpoints pays nothing for them.
    cells: Arc<OnceLock<Box<[Cell]>>>,
}

/// One function's decoded tables, or why they could not be decoded (kept,
/// so that a bad function is decoded once).
type Cell = OnceLock<Result<FuncTables, TablesError>>;

impl std::fmt::Debug for CheckpointTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointTables")
            .field("count", &self.count)
            .field("bytes", &self.encoded().len())
            .field("frame_slots", &self.frame_slots)
            .field("broken", &self.broken)
            .finish()
    }
}

impl PartialEq for CheckpointTables {
    /// Equal when the encodings are: what the object holds.
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.encoded() == other.encoded()
    }
}

impl CheckpointTables {
    /// Encodes `tables` (one per defined function, in order) as the
    /// section's bytes.
    pub fn encode(tables: &[FuncTables]) -> Result<Vec<u8>, CodecError> {
        let too_big = || CodecError::new("checkpoint tables exceed 4 GiB");
        let mut payload = Vec::new();
        let mut offsets = Vec::with_capacity(tables.len() + 1);
        offsets.push(0u32);
        for t in tables {
            payload.extend_from_slice(&crate::codec::encode(t)?);
            offsets.push(u32::try_from(payload.len()).map_err(|_| too_big())?);
        }
        let count = u32::try_from(tables.len()).map_err(|_| too_big())?;
        let mut out = Vec::with_capacity(HEADER + 4 * offsets.len() + payload.len());
        out.extend_from_slice(&count.to_le_bytes());
        for o in offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Tables read from `range` of `bytes` (the section), for a module of
    /// `count` defined functions whose frame buffer holds `frame_slots`
    /// slots. Checks the header only (constant time); each function's
    /// bytes are checked when first decoded.
    pub fn from_section(
        bytes: SharedBytes,
        range: Range<usize>,
        count: usize,
        frame_slots: usize,
    ) -> Result<CheckpointTables, TablesError> {
        let bad = |why: String| TablesError::Section(why);
        let (data, payload_start) = indexed_section::split(
            (*bytes).as_ref(),
            range.clone(),
            count,
            count.checked_add(1),
            "tables",
        )
        .map_err(bad)?;
        let first = read_u32(data, HEADER);
        let last = read_u32(data, payload_start - 4);
        if first != Some(0) || last.map(|l| l as usize) != Some(data.len() - payload_start) {
            return Err(bad(format!(
                "the offsets do not span the {} bytes of tables",
                data.len() - payload_start
            )));
        }
        Ok(CheckpointTables {
            bytes: SectionBytes::new(bytes, range),
            count,
            broken: None,
            frame_slots,
            cells: Arc::default(),
        })
    }

    /// Tables that cannot be used, for `why`: every lookup fails with it.
    /// The loader uses this for a missing or malformed section, so that a
    /// run that never checkpoints is not refused for it.
    pub fn unusable(why: TablesError) -> CheckpointTables {
        CheckpointTables {
            broken: Some(why),
            ..CheckpointTables::default()
        }
    }

    /// Tables built from decoded ones (the compiler's view, and tests'),
    /// encoded as the object stores them.
    pub fn from_tables(
        tables: &[FuncTables],
        frame_slots: usize,
    ) -> Result<CheckpointTables, CodecError> {
        let bytes = Self::encode(tables)?;
        let len = bytes.len();
        let shared: SharedBytes = Arc::new(bytes);
        Self::from_section(shared, 0..len, tables.len(), frame_slots)
            .map_err(|e| CodecError::new(e.to_string()))
    }

    /// The encoded section (empty for a module without one).
    pub fn encoded(&self) -> &[u8] {
        self.bytes.get()
    }

    /// Number of defined functions covered.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no function is covered.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The tables of defined function `k` (0-based among defined
    /// functions; `func` is its module-wide index, for errors), decoded on
    /// the first call and kept.
    pub fn get(&self, k: usize, func: u32) -> Result<&FuncTables, TablesError> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        if k >= self.count {
            return Err(TablesError::NotDefined(func));
        }
        let cells = self.cells.get_or_init(|| {
            std::iter::repeat_with(OnceLock::new)
                .take(self.count)
                .collect()
        });
        cells[k]
            .get_or_init(|| self.decode(k, func))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn decode(&self, k: usize, func: u32) -> Result<FuncTables, TablesError> {
        let bad = |why: String| TablesError::Func { func, why };
        let data = self.encoded();
        let payload_start = HEADER + 4 * (self.count + 1);
        let start = read_u32(data, HEADER + 4 * k);
        let end = read_u32(data, HEADER + 4 * (k + 1));
        let bytes = match (start, end) {
            (Some(s), Some(e)) if s <= e => data
                .get(payload_start + s as usize..payload_start + e as usize)
                .ok_or_else(|| bad(format!("bytes {s}..{e} lie outside the section")))?,
            _ => return Err(bad(format!("bad offsets {start:?}..{end:?}"))),
        };
        let t: FuncTables = crate::codec::decode(bytes).map_err(|e| bad(e.to_string()))?;
        if !t.stable_points.is_sorted_by(|a, b| a.offset < b.offset) {
            return Err(bad("stable points are not sorted by offset".into()));
        }
        if !t.stable_points.is_empty() && t.frame_capacity() > self.frame_slots {
            return Err(bad(format!(
                "a frame of {} slots exceeds the module's frame buffer of {}",
                t.frame_capacity(),
                self.frame_slots
            )));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::StablePointKind;

    fn sample() -> Vec<FuncTables> {
        vec![
            FuncTables {
                locals: vec![ValType::I32, ValType::V128],
                stable_points: vec![
                    StablePoint {
                        offset: 10,
                        kind: StablePointKind::Entry,
                        stack: vec![],
                    },
                    StablePoint {
                        offset: 20,
                        kind: StablePointKind::Call,
                        stack: vec![ValType::I64, ValType::F32],
                    },
                ],
            },
            FuncTables::default(),
            FuncTables {
                locals: vec![ValType::F64],
                stable_points: vec![],
            },
        ]
    }

    fn shared(bytes: Vec<u8>) -> (SharedBytes, Range<usize>) {
        let len = bytes.len();
        (Arc::new(bytes), 0..len)
    }

    #[test]
    fn tables_round_trip_per_function() {
        let t = sample();
        let lazy = CheckpointTables::from_tables(&t, 5).unwrap();
        assert_eq!(lazy.len(), 3);
        for (k, want) in t.iter().enumerate() {
            assert_eq!(lazy.get(k, 7 + k as u32).unwrap(), want);
        }
        assert_eq!(lazy.get(3, 10), Err(TablesError::NotDefined(10)));
        assert_eq!(t[0].frame_capacity(), 5);
        assert_eq!(t[0].point_at(20), Some(1));
        assert_eq!(t[0].point_at(15), None);
        // The same bytes, equal; a clone shares the decoded cells.
        assert_eq!(lazy.clone(), lazy);
    }

    #[test]
    fn a_bad_header_is_refused_at_once() {
        let bytes = CheckpointTables::encode(&sample()).unwrap();
        let (b, r) = shared(bytes.clone());
        assert!(matches!(
            CheckpointTables::from_section(b, r, 4, 5),
            Err(TablesError::Section(m)) if m.contains("3 functions")
        ));
        for cut in [0, 3, 10, bytes.len() - 1] {
            let (b, r) = shared(bytes[..cut].to_vec());
            assert!(
                CheckpointTables::from_section(b, r, 3, 5).is_err(),
                "cut at {cut}"
            );
        }
        let (b, _) = shared(bytes.clone());
        assert!(CheckpointTables::from_section(b, 0..bytes.len() + 1, 3, 5).is_err());
        let broken = CheckpointTables::unusable(TablesError::Section("gone".into()));
        assert_eq!(broken.get(0, 0), Err(TablesError::Section("gone".into())));
    }

    #[test]
    fn a_bad_function_fails_only_its_own_lookup() {
        let good = CheckpointTables::encode(&sample()).unwrap();
        let payload = HEADER + 4 * 4;
        // Function 0's bytes garbled: 0xff everywhere is a huge length.
        let end0 = read_u32(&good, HEADER + 4).unwrap() as usize;
        let mut bytes = good.clone();
        bytes[payload..payload + end0].fill(0xff);
        let (b, r) = shared(bytes);
        let t = CheckpointTables::from_section(b, r, 3, 5).unwrap();
        let e = t.get(0, 4).unwrap_err();
        assert!(matches!(e, TablesError::Func { func: 4, .. }), "{e}");
        assert!(e.to_string().contains("function #4"), "{e}");
        assert_eq!(t.get(0, 4).unwrap_err(), e, "the failure is kept");
        assert_eq!(t.get(2, 6).unwrap(), &sample()[2]);
        // Offsets that go backwards, or past the end.
        let mut bytes = good.clone();
        bytes[HEADER + 4..HEADER + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let (b, r) = shared(bytes);
        let t = CheckpointTables::from_section(b, r, 3, 5).unwrap();
        assert!(matches!(t.get(0, 0), Err(TablesError::Func { .. })));
        assert!(matches!(t.get(1, 1), Err(TablesError::Func { .. })));
        assert_eq!(t.get(2, 2).unwrap(), &sample()[2]);
        // A frame larger than the module's buffer.
        let (b, r) = shared(good);
        let t = CheckpointTables::from_section(b, r, 3, 4).unwrap();
        let e = t.get(0, 0).unwrap_err();
        assert!(e.to_string().contains("frame buffer"), "{e}");
    }
}
