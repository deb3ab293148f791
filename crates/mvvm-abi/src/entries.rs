//! Entry points: where each compiled body, resume clone, import stub and
//! array trampoline is in `.text`, stored in
//! [`ENTRIES_SECTION`](crate::object::ENTRIES_SECTION) as a flat array of
//! little-endian `u32` offsets and sizes that the runtime reads in place.
//!
//! Why a section of our own rather than the ELF symbol table: finding the
//! entries by symbol means walking every symbol and parsing its name, and
//! a policy object has a resume clone per function with a loop, so the
//! walk (about an eighth of such an object's start-up, docs/startup.md)
//! doubled with the clones. Here the loader reads one offset per entry it
//! needs, by index, with no name built or parsed. The object has no
//! per-function symbols unless `mvvm-aot --symbols` asks for them (for
//! ELF tools); the runtime never reads them.
//!
//! Layout (all little-endian `u32`), for a module with `n` defined
//! functions, `m` imported functions and `t` array trampolines
//! (`ModuleMeta::array_trampolines`, in that order):
//!
//! - `n`, `m`, `t`;
//! - `n` pairs `(offset, size)` of the bodies (defined function `k` at `k`);
//! - `n` pairs `(offset, size)` of the resume clones, size 0 for a
//!   function without one;
//! - `m` pairs `(offset, size)` of the import stubs;
//! - `t` trampoline offsets.
//!
//! Offsets are from the start of the `.text` section. Within each of the
//! three lists of pairs the offsets never decrease and the ranges do not
//! overlap (`mvvm-aot` lays out the bodies, then the stubs, then the
//! clones, each in index order; a function without a clone gets the offset
//! where the previous clone ends, so the clone list stays sorted too):
//! the runtime's trap handler finds the code holding a PC by a binary
//! search in each list, in place, and nothing is built per function at
//! load (format 11; format 10 had offsets only and the sizes in the
//! bincode metadata, decoded for every function at every load).
//!
//! The section is untrusted input like the rest of the object. Its
//! counts and length are checked at load (constant time); an entry is
//! checked to lie inside `.text` when it is used (a body's address taken,
//! a trap described), and a search over a list that is not sorted only
//! misses, it never reads outside the section.

use crate::indexed_section::{SectionBytes, SharedBytes, read_u32};
use std::ops::Range;

/// Bytes before the pairs: the three counts.
const HEADER: usize = 12;

/// The entries section could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the entry points section is malformed: {0}")]
pub struct EntriesError(pub String);

/// The entries of a module, to encode (the compiler's view).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryOffsets {
    /// Offset and size of each defined function's body.
    pub bodies: Vec<(u32, u32)>,
    /// Offset and size of each defined function's resume clone, if any.
    pub clones: Vec<Option<(u32, u32)>>,
    /// Offset and size of each import stub.
    pub stubs: Vec<(u32, u32)>,
    /// Offset of each array trampoline.
    pub trampolines: Vec<u32>,
}

impl EntryOffsets {
    /// The section's bytes. `clones` must be as long as `bodies`, and the
    /// clones in ascending order (as `mvvm-aot` lays them out).
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
            HEADER + 4 * (4 * self.bodies.len() + 2 * self.stubs.len() + self.trampolines.len()),
        );
        for n in [
            count(self.bodies.len(), "functions")?,
            count(self.stubs.len(), "imports")?,
            count(self.trampolines.len(), "trampolines")?,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        // A function without a clone takes the offset where the previous
        // clone ends (before the first clone: the first clone's offset),
        // with size 0, so that the list stays sorted.
        let mut clone_at = self
            .clones
            .iter()
            .flatten()
            .map(|c| c.0)
            .next()
            .unwrap_or(0);
        let mut clones = Vec::with_capacity(self.clones.len());
        for c in &self.clones {
            match *c {
                Some((o, s)) => {
                    if o < clone_at || s == 0 {
                        return Err(EntriesError("resume clones out of order or empty".into()));
                    }
                    clones.push((o, s));
                    clone_at = o.saturating_add(s);
                }
                None => clones.push((clone_at, 0)),
            }
        }
        let words = self
            .bodies
            .iter()
            .chain(&clones)
            .chain(&self.stubs)
            .flat_map(|&(o, s)| [o, s])
            .chain(self.trampolines.iter().copied());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        Ok(out)
    }
}

/// Which list of the section an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A defined function's body.
    Body,
    /// A defined function's resume clone.
    Clone,
    /// An import stub.
    Stub,
}

/// One body, clone or stub: where it is in `.text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Which list.
    pub kind: EntryKind,
    /// Its number in that list: the defined function `k` for a body or a
    /// clone, the imported function `j` for a stub.
    pub number: usize,
    /// Offset from the start of `.text`.
    pub offset: u32,
    /// Size in bytes (0: a function without a clone).
    pub size: u32,
}

impl Entry {
    /// The offset one past its last byte (wide: no overflow).
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.size)
    }
}

/// The entries section kept with the bytes that hold it (a copy, or the
/// mapped file), for whoever outlives the load: the trap handler's code
/// info. Its counts and length are checked once ([`EntryTable::parse`]).
#[derive(Clone, Default)]
pub struct EntrySection {
    bytes: SectionBytes,
    funcs: usize,
    imports: usize,
    trampolines: usize,
}

impl std::fmt::Debug for EntrySection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntrySection")
            .field("funcs", &self.funcs)
            .field("imports", &self.imports)
            .field("trampolines", &self.trampolines)
            .finish()
    }
}

impl EntrySection {
    /// The section at `range` of `bytes`, checked as
    /// [`EntryTable::parse`] does. Constant time.
    pub fn from_section(
        bytes: SharedBytes,
        range: Range<usize>,
        funcs: usize,
        imports: usize,
        trampolines: usize,
    ) -> Result<EntrySection, EntriesError> {
        let data = (*bytes)
            .as_ref()
            .get(range.clone())
            .ok_or_else(|| EntriesError("outside the object".into()))?;
        EntryTable::parse(data, funcs, imports, trampolines)?;
        Ok(EntrySection {
            bytes: SectionBytes::new(bytes, range),
            funcs,
            imports,
            trampolines,
        })
    }

    /// The section read in place.
    pub fn table(&self) -> EntryTable<'_> {
        let data = self.bytes.get();
        // Checked by `from_section` (a default section has no entries).
        EntryTable {
            data,
            funcs: self.funcs,
            imports: self.imports,
            trampolines: self.trampolines,
        }
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
            .checked_mul(4)
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

    /// Number of defined functions.
    pub fn funcs(&self) -> usize {
        self.funcs
    }

    /// Number of imported functions.
    pub fn imports(&self) -> usize {
        self.imports
    }

    fn word(&self, i: usize) -> u32 {
        // In bounds: `parse` checked the length against the counts, and
        // every caller's index is below its count (a bad index reads 0).
        read_u32(self.data, HEADER + 4 * i).unwrap_or(0)
    }

    /// The length of list `kind` and the word its first pair is at.
    fn list(&self, kind: EntryKind) -> (usize, usize) {
        match kind {
            EntryKind::Body => (self.funcs, 0),
            EntryKind::Clone => (self.funcs, 2 * self.funcs),
            EntryKind::Stub => (self.imports, 4 * self.funcs),
        }
    }

    /// Entry `number` of list `kind`, if in range.
    pub fn get(&self, kind: EntryKind, number: usize) -> Option<Entry> {
        let (len, first) = self.list(kind);
        (number < len).then(|| Entry {
            kind,
            number,
            offset: self.word(first + 2 * number),
            size: self.word(first + 2 * number + 1),
        })
    }

    /// Defined function `k`'s body, if `k` is in range.
    pub fn body(&self, k: usize) -> Option<Entry> {
        self.get(EntryKind::Body, k)
    }

    /// Defined function `k`'s resume clone, if it has one.
    pub fn clone_of(&self, k: usize) -> Option<Entry> {
        self.get(EntryKind::Clone, k).filter(|e| e.size > 0)
    }

    /// Import stub `j`, if in range.
    pub fn stub(&self, j: usize) -> Option<Entry> {
        self.get(EntryKind::Stub, j)
    }

    /// Offset of array trampoline `i` (in the order of
    /// `ModuleMeta::array_trampolines`), if in range.
    pub fn trampoline(&self, i: usize) -> Option<u32> {
        (i < self.trampolines).then(|| self.word(4 * self.funcs + 2 * self.imports + i))
    }

    /// The body, clone or stub holding `offset` (from the start of
    /// `.text`): a binary search in each list, in place. Allocates
    /// nothing: callable from a signal handler. In a list that is not
    /// sorted (a damaged section) it may miss, never read elsewhere.
    pub fn find(&self, offset: u64) -> Option<Entry> {
        [EntryKind::Body, EntryKind::Stub, EntryKind::Clone]
            .into_iter()
            .find_map(|kind| self.find_in(kind, offset))
    }

    fn find_in(&self, kind: EntryKind, offset: u64) -> Option<Entry> {
        let (len, first) = self.list(kind);
        // The number of entries starting at or before `offset`.
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.word(first + 2 * mid)) <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let e = self.get(kind, lo.checked_sub(1)?)?;
        (offset < e.end()).then_some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryOffsets {
        EntryOffsets {
            bodies: vec![(0, 64), (64, 32)],
            clones: vec![None, Some((4096, 100))],
            stubs: vec![(128, 16)],
            trampolines: vec![160, 192, 224],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().encode().unwrap();
        let t = EntryTable::parse(&bytes, 2, 1, 3).unwrap();
        let at = |e: Option<Entry>| e.map(|e| (e.offset, e.size));
        assert_eq!(
            (at(t.body(0)), at(t.body(1))),
            (Some((0, 64)), Some((64, 32)))
        );
        assert_eq!(
            (at(t.clone_of(0)), at(t.clone_of(1))),
            (None, Some((4096, 100)))
        );
        assert_eq!(at(t.stub(0)), Some((128, 16)));
        assert_eq!(
            (
                t.trampoline(0),
                t.trampoline(1),
                t.trampoline(2),
                t.trampoline(3)
            ),
            (Some(160), Some(192), Some(224), None)
        );
        assert_eq!((t.body(2), t.stub(1)), (None, None));
    }

    #[test]
    fn find_searches_every_list_in_place() {
        let bytes = sample().encode().unwrap();
        let t = EntryTable::parse(&bytes, 2, 1, 3).unwrap();
        let found = |o: u64| t.find(o).map(|e| (e.kind, e.number));
        assert_eq!(found(0), Some((EntryKind::Body, 0)));
        assert_eq!(found(63), Some((EntryKind::Body, 0)));
        assert_eq!(found(64), Some((EntryKind::Body, 1)));
        assert_eq!(found(96), None, "between the bodies and the stub");
        assert_eq!(found(130), Some((EntryKind::Stub, 0)));
        assert_eq!(found(4095), None);
        assert_eq!(found(4096), Some((EntryKind::Clone, 1)));
        assert_eq!(found(4195), Some((EntryKind::Clone, 1)));
        assert_eq!(found(4196), None);
        assert_eq!(found(u64::MAX), None);
        // Functions without a clone keep the clone list sorted, whatever
        // the pattern: every offset of every clone is found, and only those.
        let many = EntryOffsets {
            bodies: vec![(0, 8); 7],
            clones: vec![
                None,
                Some((100, 10)),
                None,
                None,
                Some((110, 5)),
                Some((120, 1)),
                None,
            ],
            stubs: vec![],
            trampolines: vec![],
        };
        let bytes = many.encode().unwrap();
        let t = EntryTable::parse(&bytes, 7, 0, 0).unwrap();
        for o in 8..200u64 {
            let expected = match o {
                100..110 => Some(1),
                110..115 => Some(4),
                120 => Some(5),
                _ => None,
            };
            assert_eq!(t.find(o).map(|e| e.number), expected, "offset {o}");
        }
        let unsorted = EntryOffsets {
            clones: vec![None, Some((100, 10)), Some((50, 5)), None, None, None, None],
            ..many
        };
        assert!(unsorted.encode().is_err());
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
