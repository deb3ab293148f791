//! The layout the sections read in place share (`.mvvm.ckpt`'s checkpoint
//! tables, `.mvvm.traps`' trap sites): a little-endian `u32` count of
//! defined functions, an index of little-endian `u32` entries, then the
//! payload the index points into. Reading it needs no decoding and no
//! allocation; these are the checks both make before trusting the index.
//!
//! [`SectionBytes`] is how every section read in place (these two, the
//! entries and the names) holds its bytes.

use std::ops::Range;
use std::sync::Arc;

/// Bytes a section is read from: the object's section, kept alive by
/// whoever owns it (a copy, or the mapped file).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One section of an object, read in place: the bytes that hold it and
/// its range in them, or nothing (a module without the section, or a
/// table built empty). Two are equal when their bytes are, which is what
/// the object holds; `Debug` shows the length, not the bytes.
#[derive(Clone, Default)]
pub(crate) struct SectionBytes(Option<(SharedBytes, Range<usize>)>);

impl SectionBytes {
    /// `range` of `bytes`, which the caller has checked to hold a valid
    /// section.
    pub(crate) fn new(bytes: SharedBytes, range: Range<usize>) -> SectionBytes {
        SectionBytes(Some((bytes, range)))
    }

    /// The section's bytes; empty without a section (or, never after the
    /// caller's check, for a range outside the bytes).
    pub(crate) fn get(&self) -> &[u8] {
        match &self.0 {
            Some((b, r)) => (**b).as_ref().get(r.clone()).unwrap_or(&[]),
            None => &[],
        }
    }
}

impl std::fmt::Debug for SectionBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.get().len())
    }
}

impl PartialEq for SectionBytes {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for SectionBytes {}

/// Bytes before the index: the function count.
pub(crate) const HEADER: usize = 4;

/// The little-endian `u32` at `at`, or `None` past the end.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The section at `range` of `bytes`, checked to be inside them, to name
/// `count` functions (as `what`, for the message) and to hold `entries`
/// index entries: the section's bytes and where its payload starts, or
/// why not.
pub(crate) fn split<'a>(
    bytes: &'a [u8],
    range: Range<usize>,
    count: usize,
    entries: Option<usize>,
    what: &str,
) -> Result<(&'a [u8], usize), String> {
    let data = bytes
        .get(range)
        .ok_or_else(|| "outside the object".to_string())?;
    let claimed = read_u32(data, 0).ok_or_else(|| "truncated header".to_string())?;
    if claimed as usize != count {
        return Err(format!(
            "{what} for {claimed} functions, the module defines {count}"
        ));
    }
    let payload_start = entries
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(HEADER))
        .filter(|&n| n <= data.len())
        .ok_or_else(|| format!("{} bytes cannot index {count} functions", data.len()))?;
    Ok((data, payload_start))
}
