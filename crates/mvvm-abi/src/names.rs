//! Function names from the wasm name section, stored in
//! [`NAMES_SECTION`](crate::object::NAMES_SECTION) and read in place.
//!
//! Why a section of its own: the names were a `Vec<(u32, String)>` in the
//! bincode metadata, so every load allocated one string per named
//! function (40 000 on the big module of docs/startup.md), although only
//! a trap message, a log line, a checkpoint trigger by name or the perf
//! map ever reads one. They are also what names the code now that the
//! object carries no per-function ELF symbols (`mvvm-aot --symbols`
//! writes them back for ELF tools).
//!
//! Layout (integers little-endian `u32`):
//!
//! - `count`;
//! - `count` records `(function index, end)`, by strictly increasing
//!   function index;
//! - the names' UTF-8 bytes, one after the other: name `i` runs from the
//!   end of name `i - 1` (0 for the first) to its own `end`, counted from
//!   the start of these bytes.
//!
//! Untrusted input like the rest of the object: the header is checked
//! when the section is attached (constant time); a name is checked (in
//! the section, valid UTF-8) when it is read, and a damaged one reads as
//! no name (names only ever label things: a function without one is
//! shown by its index). A search in records that are not sorted may miss,
//! never read outside the section.

use crate::indexed_section::{HEADER, SectionBytes, SharedBytes, read_u32};
use std::ops::Range;
use std::sync::Arc;

/// Size in bytes of one record.
const RECORD_SIZE: usize = 8;

/// The names section could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the function names section is malformed: {0}")]
pub struct NamesError(pub String);

/// The function names of a module, read in place (see the
/// [module documentation](self)).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct FuncNames {
    /// The section; empty when the module has no names.
    bytes: SectionBytes,
    /// Number of records.
    count: usize,
}

impl FuncNames {
    /// Encodes `names` (`(function index, name)`, sorted by strictly
    /// increasing index) as the section's bytes.
    pub fn encode(names: &[(u32, String)]) -> Result<Vec<u8>, NamesError> {
        if !names.is_sorted_by(|a, b| a.0 < b.0) {
            return Err(NamesError("names not sorted by function index".into()));
        }
        let too_big = || NamesError("more than 4 GiB of names".into());
        let count = u32::try_from(names.len()).map_err(|_| too_big())?;
        let text: usize = names.iter().map(|(_, n)| n.len()).sum();
        let mut out = Vec::with_capacity(HEADER + RECORD_SIZE * names.len() + text);
        out.extend_from_slice(&count.to_le_bytes());
        let mut end = 0u32;
        for (index, name) in names {
            let len = u32::try_from(name.len()).map_err(|_| too_big())?;
            end = end.checked_add(len).ok_or_else(too_big)?;
            for w in [*index, end] {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        for (_, name) in names {
            out.extend_from_slice(name.as_bytes());
        }
        Ok(out)
    }

    /// Names built from decoded ones (the compiler's view, and tests').
    pub fn from_names(names: &[(u32, String)]) -> Result<FuncNames, NamesError> {
        let bytes = Self::encode(names)?;
        let len = bytes.len();
        Self::from_section(Arc::new(bytes), 0..len)
    }

    /// The names held in `range` of `bytes` (the section), once its header
    /// is checked: the records fit in the section. Constant time.
    pub fn from_section(bytes: SharedBytes, range: Range<usize>) -> Result<FuncNames, NamesError> {
        let data = (*bytes)
            .as_ref()
            .get(range.clone())
            .ok_or_else(|| NamesError("outside the object".into()))?;
        let count =
            read_u32(data, 0).ok_or_else(|| NamesError("truncated header".into()))? as usize;
        if count
            .checked_mul(RECORD_SIZE)
            .and_then(|n| n.checked_add(HEADER))
            .is_none_or(|n| n > data.len())
        {
            return Err(NamesError(format!(
                "{} bytes cannot hold {count} names",
                data.len()
            )));
        }
        Ok(FuncNames {
            bytes: SectionBytes::new(bytes, range),
            count,
        })
    }

    /// The encoded section (empty for a module without names).
    pub fn encoded(&self) -> &[u8] {
        self.bytes.get()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Record `i`: `(function index, name)`, the name `None` when its
    /// record is damaged (outside the section, not UTF-8).
    fn record(&self, i: usize) -> Option<(u32, Option<&str>)> {
        if i >= self.count {
            return None;
        }
        let data = self.encoded();
        let at = HEADER + RECORD_SIZE * i;
        let index = read_u32(data, at)?;
        let text_start = HEADER + RECORD_SIZE * self.count;
        let end_of = |i: usize| read_u32(data, HEADER + RECORD_SIZE * i + 4).map(|e| e as usize);
        let name = (|| {
            let start = match i {
                0 => 0,
                _ => end_of(i - 1)?,
            };
            let end = end_of(i)?;
            let bytes = data.get(text_start.checked_add(start)?..text_start.checked_add(end)?)?;
            std::str::from_utf8(bytes).ok()
        })();
        Some((index, name))
    }

    /// The name of function `index` (module-wide: imports first), if it
    /// has one: a binary search over the records, in place.
    pub fn get(&self, index: u32) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (at, name) = self.record(mid)?;
            match at.cmp(&index) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return name,
            }
        }
        None
    }

    /// Every `(function index, name)` in the section's order (a damaged
    /// name is left out): for the searches by name, which read them all.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        (0..self.count).filter_map(|i| match self.record(i)? {
            (index, Some(name)) => Some((index, name)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(u32, String)> {
        vec![
            (0, "main".into()),
            (3, "fib".into()),
            (7, "".into()),
            (9, "é".into()),
        ]
    }

    #[test]
    fn round_trip_and_lookup() {
        let n = FuncNames::from_names(&sample()).unwrap();
        assert_eq!(n.len(), 4);
        assert_eq!(
            (n.get(0), n.get(3), n.get(7), n.get(9)),
            (Some("main"), Some("fib"), Some(""), Some("é"))
        );
        assert_eq!((n.get(1), n.get(10), n.get(u32::MAX)), (None, None, None));
        let all: Vec<_> = n.iter().collect();
        assert_eq!(all, vec![(0, "main"), (3, "fib"), (7, ""), (9, "é")]);
        assert!(FuncNames::default().get(0).is_none());
        assert!(FuncNames::encode(&[(2, "a".into()), (1, "b".into())]).is_err());
    }

    #[test]
    fn damaged_names_read_as_none_never_elsewhere() {
        let bytes = FuncNames::encode(&sample()).unwrap();
        let load = |b: Vec<u8>| {
            let len = b.len();
            FuncNames::from_section(Arc::new(b), 0..len)
        };
        // A count the section cannot hold is refused when attached.
        let mut b = bytes.clone();
        b[..4].copy_from_slice(&1000u32.to_le_bytes());
        let e = load(b).unwrap_err();
        assert!(e.to_string().contains("cannot hold 1000 names"), "{e}");
        assert!(load(vec![1, 0]).is_err());
        // A name outside the section, or not UTF-8, reads as none; the
        // others still read. (Record 1's end past the section: name 1,
        // and name 2 which starts there, read as none.)
        let mut b = bytes.clone();
        b[HEADER + RECORD_SIZE + 4..HEADER + RECORD_SIZE + 8]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        let n = load(b).unwrap();
        assert_eq!(
            (n.get(0), n.get(3), n.get(7), n.get(9)),
            (Some("main"), None, None, Some("é"))
        );
        let mut b = bytes.clone();
        let last = b.len() - 1;
        b[last] = 0xff;
        let n = load(b).unwrap();
        assert_eq!((n.get(9), n.get(0)), (None, Some("main")));
        assert_eq!(n.iter().count(), 3);
    }
}
