//! Entry points: where each compiled body, resume clone, import stub and
//! array trampoline starts in `.text`, stored in
//! [`ENTRIES_SECTION`](crate::object::ENTRIES_SECTION) as a flat array of
//! little-endian `u32` offsets that the runtime reads in place.
//!
//! Why a section of our own rather than the ELF symbol table: finding the
//! entries by symbol means walking every symbol and parsing its name, and
//! a policy object has a resume clone per function with a loop, so the
//! walk (about an eighth of such an object's start-up, docs/startup.md)
//! doubled with the clones. Here the loader reads one offset per entry it
//! needs, by index, with no name built or parsed. The symbols stay in the
//! object for ELF tools and profilers; the runtime no longer reads them.
//!
//! Layout (all little-endian `u32`), for a module with `n` defined
//! functions, `m` imported functions and `t` array trampolines
//! (`ModuleMeta::array_trampolines`, in that order):
//!
//! - `n`, `m`, `t`;
//! - `n` body offsets (defined function `k` at `k`);
//! - `n` resume clone offsets, [`NO_CLONE`] for a function without one;
//! - `m` pairs `(offset, size)` of the import stubs;
//! - `t` trampoline offsets.
//!
//! Offsets are from the start of the `.text` section. The sizes of bodies
//! and clones are in the metadata (`FuncInfo::code_size`,
//! `ResumeCode::code_size`); the loader checks that every entry lies in
//! `.text` before using it.

use crate::indexed_section::read_u32;

/// The clone offset of a function without a resume clone.
pub const NO_CLONE: u32 = u32::MAX;

/// Bytes before the offsets: the three counts.
const HEADER: usize = 12;

/// The entries section could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the entry points section is malformed: {0}")]
pub struct EntriesError(pub String);

/// The entries of a module, to encode (the compiler's view).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryOffsets {
    /// Offset of each defined function's body.
    pub bodies: Vec<u32>,
    /// Offset of each defined function's resume clone, if any.
    pub clones: Vec<Option<u32>>,
    /// Offset and size of each import stub.
    pub stubs: Vec<(u32, u32)>,
    /// Offset of each array trampoline.
    pub trampolines: Vec<u32>,
}

impl EntryOffsets {
    /// The section's bytes. `clones` must be as long as `bodies`.
    pub fn encode(&self) -> Result<Vec<u8>, EntriesError> {
        if self.clones.len() != self.bodies.len() {
            return Err(EntriesError(format!(
                "{} clone entries for {} bodies",
                self.clones.len(),
                self.bodies.len()
            )));
        }
        let count = |n: usize, what: &str| {
            u32::try_from(n).map_err(|_| EntriesError(format!("{n} {what}")))
        };
        let mut out = Vec::with_capacity(
            HEADER + 4 * (2 * self.bodies.len() + 2 * self.stubs.len() + self.trampolines.len()),
        );
        for n in [
            count(self.bodies.len(), "functions")?,
            count(self.stubs.len(), "imports")?,
            count(self.trampolines.len(), "trampolines")?,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let words = self
            .bodies
            .iter()
            .copied()
            .chain(self.clones.iter().map(|c| c.unwrap_or(NO_CLONE)))
            .chain(self.stubs.iter().flat_map(|&(o, s)| [o, s]))
            .chain(self.trampolines.iter().copied());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        Ok(out)
    }
}

/// The entries section read in place: accessors by index, each a bounds
/// checked read (the section's length was checked against its counts).
#[derive(Debug, Clone, Copy)]
pub struct EntryTable<'a> {
    data: &'a [u8],
    funcs: usize,
    imports: usize,
    trampolines: usize,
}

impl<'a> EntryTable<'a> {
    /// The section `data`, once its counts agree with the module's
    /// (`funcs` defined functions, `imports` imported ones, `trampolines`
    /// array trampolines) and its length with its counts. Constant time.
    pub fn parse(
        data: &'a [u8],
        funcs: usize,
        imports: usize,
        trampolines: usize,
    ) -> Result<EntryTable<'a>, EntriesError> {
        let bad = |why: String| EntriesError(why);
        let header = |i: usize| {
            read_u32(data, 4 * i)
                .map(|v| v as usize)
                .ok_or_else(|| bad("truncated header".into()))
        };
        for (i, (expected, what)) in [
            (funcs, "defined functions"),
            (imports, "imported functions"),
            (trampolines, "array trampolines"),
        ]
        .into_iter()
        .enumerate()
        {
            let claimed = header(i)?;
            if claimed != expected {
                return Err(bad(format!(
                    "entries for {claimed} {what}, the module has {expected}"
                )));
            }
        }
        // The counts are bounded by decoded vectors (the caller's), so
        // this cannot overflow; checked anyway.
        let size = funcs
            .checked_mul(2)
            .and_then(|n| n.checked_add(imports.checked_mul(2)?))
            .and_then(|n| n.checked_add(trampolines))
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(HEADER));
        if size != Some(data.len()) {
            return Err(bad(format!(
                "{} bytes for {funcs} functions, {imports} imports and {trampolines} trampolines",
                data.len()
            )));
        }
        Ok(EntryTable {
            data,
            funcs,
            imports,
            trampolines,
        })
    }

    fn word(&self, i: usize) -> u32 {
        // In bounds: `parse` checked the length against the counts, and
        // every caller's index is below its count.
        read_u32(self.data, HEADER + 4 * i).unwrap_or(NO_CLONE)
    }

    /// Offset of defined function `k`'s body (`k` below the count).
    pub fn body(&self, k: usize) -> u32 {
        debug_assert!(k < self.funcs);
        self.word(k)
    }

    /// Offset of defined function `k`'s resume clone, if it has one.
    pub fn clone_of(&self, k: usize) -> Option<u32> {
        debug_assert!(k < self.funcs);
        Some(self.word(self.funcs + k)).filter(|&o| o != NO_CLONE)
    }

    /// Offset and size of import stub `j`.
    pub fn stub(&self, j: usize) -> (u32, u32) {
        debug_assert!(j < self.imports);
        let at = 2 * self.funcs + 2 * j;
        (self.word(at), self.word(at + 1))
    }

    /// Offset of array trampoline `i` (in the order of
    /// `ModuleMeta::array_trampolines`).
    pub fn trampoline(&self, i: usize) -> u32 {
        debug_assert!(i < self.trampolines);
        self.word(2 * self.funcs + 2 * self.imports + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryOffsets {
        EntryOffsets {
            bodies: vec![0, 64],
            clones: vec![None, Some(4096)],
            stubs: vec![(128, 16)],
            trampolines: vec![160, 192, 224],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().encode().unwrap();
        let t = EntryTable::parse(&bytes, 2, 1, 3).unwrap();
        assert_eq!((t.body(0), t.body(1)), (0, 64));
        assert_eq!((t.clone_of(0), t.clone_of(1)), (None, Some(4096)));
        assert_eq!(t.stub(0), (128, 16));
        assert_eq!(
            (t.trampoline(0), t.trampoline(1), t.trampoline(2)),
            (160, 192, 224)
        );
    }

    #[test]
    fn counts_and_lengths_are_checked() {
        let bytes = sample().encode().unwrap();
        let e = EntryTable::parse(&bytes, 3, 1, 3).unwrap_err();
        assert!(e.to_string().contains("2 defined functions"), "{e}");
        let e = EntryTable::parse(&bytes, 2, 0, 3).unwrap_err();
        assert!(e.to_string().contains("imported"), "{e}");
        let e = EntryTable::parse(&bytes, 2, 1, 2).unwrap_err();
        assert!(e.to_string().contains("trampolines"), "{e}");
        let e = EntryTable::parse(&bytes[..bytes.len() - 1], 2, 1, 3).unwrap_err();
        assert!(e.to_string().contains("bytes for"), "{e}");
        assert!(EntryTable::parse(&bytes[..8], 2, 1, 3).is_err());
        let mut bad = sample();
        bad.clones.pop();
        assert!(bad.encode().is_err());
    }
}
