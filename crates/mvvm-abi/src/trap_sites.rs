//! Trap sites: where each compiled body and resume clone may trap, stored
//! in [`TRAPS_SECTION`](crate::object::TRAPS_SECTION) as fixed-width
//! records that the runtime reads in place.
//!
//! Why a section of fixed-width records: the signal handler looks a
//! faulting PC up in them, so they must be usable without decoding on
//! demand (no allocation in a handler), and decoding them all at load
//! (they were `Vec`s in the bincode metadata) was the largest part of a
//! policy object's start-up, where every function has a resume clone with
//! as many sites as its body. Read in place, a load checks the table once
//! and allocates nothing per function; a lookup is a binary search over
//! the function's own records.
//!
//! Layout (all little-endian):
//!
//! - `u32 count`: the number of defined functions;
//! - `2 * count + 1` `u32` record indices: range `r` is the records from
//!   index `r` to index `r + 1`, where range `k` holds the trap sites of
//!   defined function `k`'s body and range `count + k` those of its resume
//!   clone (empty when it has none); the first index is 0, the last the
//!   number of records, and they never decrease;
//! - the records, [`RECORD_SIZE`] bytes each: `code_offset: u32`,
//!   `wasm_offset: u32`, `code: u8` (a [`TrapCode`]), three zero bytes;
//!   sorted by strictly increasing `code_offset` within each range.
//!
//! The section is untrusted input like the rest of the object.
//! [`TrapSiteTable::from_section`] checks, in constant time, what holds
//! the table together (count, length, a whole number of records, an
//! index that starts at 0 and ends at the last record) and refuses the
//! table otherwise. A function's own part of the index and its records
//! are checked when used ([`TrapSiteTable::check_func`]): by
//! `ModuleMeta::func_tables`, which every checkpoint and rewind of the
//! function goes through, and by the runtime when it reports a trap in
//! the function; so a load reads nothing per function (format 11; the
//! whole index and the bodies' records were checked at load before, a
//! tenth of the start-up left). Until checked, a lookup is still
//! bounds-checked: a damaged index entry or record can only make it
//! miss or name a wrong site of the same function, never read elsewhere,
//! and [`TrapSiteTable::sound`] says, without allocating, whether a
//! function's part is intact (the signal handler asks it after a miss).

use crate::indexed_section::{self, HEADER, SectionBytes, SharedBytes, read_u32};
use crate::meta::TrapSite;
use crate::trap::TrapCode;
use std::ops::Range;
use std::sync::Arc;

/// Size in bytes of one record.
pub const RECORD_SIZE: usize = 12;

/// The trap-site section could not be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the trap sites section is malformed: {0}")]
pub struct TrapSitesError(pub String);

/// Every body's and resume clone's trap sites, read in place from the
/// section's bytes (see the [module documentation](self)).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct TrapSiteTable {
    /// The section; empty for an empty table (no function).
    bytes: SectionBytes,
    /// Number of defined functions.
    count: usize,
}

impl TrapSiteTable {
    /// Encodes the sites of every body (`bodies[k]` for defined function
    /// `k`) and resume clone (`clones[k]`, empty without a clone) as the
    /// section's bytes. Each list must be sorted by strictly increasing
    /// `code_offset`.
    pub fn encode(
        bodies: &[Vec<TrapSite>],
        clones: &[Vec<TrapSite>],
    ) -> Result<Vec<u8>, TrapSitesError> {
        if bodies.len() != clones.len() {
            return Err(TrapSitesError(format!(
                "{} bodies but {} clone lists",
                bodies.len(),
                clones.len()
            )));
        }
        let too_big = || TrapSitesError("more than 2^32 functions or trap sites".into());
        let count = u32::try_from(bodies.len()).map_err(|_| too_big())?;
        let total: usize = bodies.iter().chain(clones).map(Vec::len).sum();
        let mut out = Vec::with_capacity(HEADER + 4 * (2 * bodies.len() + 1) + RECORD_SIZE * total);
        out.extend_from_slice(&count.to_le_bytes());
        let mut at = 0u32;
        out.extend_from_slice(&at.to_le_bytes());
        for list in bodies.iter().chain(clones) {
            if !list.is_sorted_by(|a, b| a.code_offset < b.code_offset) {
                return Err(TrapSitesError(
                    "trap sites not sorted by code offset".into(),
                ));
            }
            at = u32::try_from(list.len())
                .ok()
                .and_then(|n| at.checked_add(n))
                .ok_or_else(too_big)?;
            out.extend_from_slice(&at.to_le_bytes());
        }
        for t in bodies.iter().chain(clones).flatten() {
            out.extend_from_slice(&t.code_offset.to_le_bytes());
            out.extend_from_slice(&t.wasm_offset.to_le_bytes());
            out.extend_from_slice(&[t.code as u8, 0, 0, 0]);
        }
        Ok(out)
    }

    /// The table of `count` defined functions held in `range` of `bytes`
    /// (the section), once what holds it together is checked: header, a
    /// whole number of records, an index of the right length that starts
    /// at 0 and ends at the last record. Constant time: each function's
    /// part is left to [`TrapSiteTable::check_func`].
    pub fn from_section(
        bytes: SharedBytes,
        range: Range<usize>,
        count: usize,
    ) -> Result<TrapSiteTable, TrapSitesError> {
        let bad = |why: String| TrapSitesError(why);
        let entries = count.checked_mul(2).and_then(|n| n.checked_add(1));
        let (data, records_start) = indexed_section::split(
            (*bytes).as_ref(),
            range.clone(),
            count,
            entries,
            "trap sites",
        )
        .map_err(bad)?;
        let records = &data[records_start..];
        if records.len() % RECORD_SIZE != 0 {
            return Err(bad(format!(
                "{} bytes of records are not a whole number of {RECORD_SIZE}-byte records",
                records.len()
            )));
        }
        let nrecords = records.len() / RECORD_SIZE;
        if read_u32(data, HEADER) != Some(0) {
            return Err(bad("the index does not start at record 0".into()));
        }
        let last = read_u32(data, records_start - 4).map(|v| v as usize);
        if last != Some(nrecords) {
            return Err(bad(format!(
                "the index covers {} of {nrecords} records",
                last.unwrap_or(0)
            )));
        }
        Ok(TrapSiteTable {
            bytes: SectionBytes::new(bytes, range),
            count,
        })
    }

    /// A table built from decoded sites (the compiler's view, and tests'),
    /// encoded as the object stores it.
    pub fn from_sites(
        bodies: &[Vec<TrapSite>],
        clones: &[Vec<TrapSite>],
    ) -> Result<TrapSiteTable, TrapSitesError> {
        let bytes = Self::encode(bodies, clones)?;
        let len = bytes.len();
        Self::from_section(Arc::new(bytes), 0..len, bodies.len())
    }

    /// The encoded section (empty for an empty table).
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

    /// The records of range `r`; empty when out of range. Allocates
    /// nothing: callable from a signal handler.
    fn range(&self, r: usize) -> Sites<'_> {
        let data = self.encoded();
        let index = |i: usize| read_u32(data, HEADER + 4 * i).map(|v| v as usize);
        let records_start = HEADER + 4 * (2 * self.count + 1);
        let records = match (r < 2 * self.count, index(r), index(r + 1)) {
            (true, Some(s), Some(e)) if s <= e => data
                .get(records_start + s * RECORD_SIZE..records_start + e * RECORD_SIZE)
                .unwrap_or(&[]),
            _ => &[],
        };
        Sites { records }
    }

    /// Trap sites of defined function `k`'s body.
    pub fn body(&self, k: usize) -> Sites<'_> {
        match k < self.count {
            true => self.range(k),
            false => Sites { records: &[] },
        }
    }

    /// Trap sites of defined function `k`'s resume clone (empty when it
    /// has none). Like a body's, checked only by
    /// [`TrapSiteTable::check_func`] (see the [module documentation](self)).
    pub fn clone_of(&self, k: usize) -> Sites<'_> {
        match k < self.count {
            true => self.range(self.count + k),
            false => Sites { records: &[] },
        }
    }

    /// The index entries of range `r`, if they are in order and inside
    /// the records.
    fn range_bounds(&self, r: usize) -> Option<(usize, usize)> {
        let data = self.encoded();
        let index = |i: usize| read_u32(data, HEADER + 4 * i).map(|v| v as usize);
        let records_start = HEADER + 4 * (2 * self.count + 1);
        let nrecords = data.len().checked_sub(records_start)? / RECORD_SIZE;
        match (r < 2 * self.count, index(r), index(r + 1)) {
            (true, Some(s), Some(e)) if s <= e && e <= nrecords => Some((s, e)),
            _ => None,
        }
    }

    /// Whether defined function `k`'s part of the table (its body's and
    /// its clone's index entries and records) is intact; allocates
    /// nothing, so the signal handler may ask.
    pub fn sound(&self, k: usize) -> bool {
        k >= self.count
            || [k, self.count + k]
                .into_iter()
                .all(|r| self.range_bounds(r).is_some() && self.range(r).sound())
    }

    /// Checks defined function `k`'s part of the table: the index entries
    /// of its body and clone (in order, inside the records) and their
    /// records (known trap codes, sorted), which
    /// [`TrapSiteTable::from_section`] left unread. Linear in that
    /// function's sites.
    pub fn check_func(&self, k: usize) -> Result<(), TrapSitesError> {
        if k >= self.count {
            return Ok(());
        }
        for r in [k, self.count + k] {
            let Some((s, e)) = self.range_bounds(r) else {
                return Err(TrapSitesError(format!(
                    "range {r}: its index entries are out of order or past the records"
                )));
            };
            debug_assert!(s <= e);
            self.range(r)
                .check()
                .map_err(|why| TrapSitesError(format!("range {r}: {why}")))?;
        }
        Ok(())
    }
}

/// The trap sites of one body or clone: a view of its records, sorted by
/// `code_offset`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sites<'a> {
    records: &'a [u8],
}

impl<'a> Sites<'a> {
    /// Number of sites.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_SIZE
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i`'s fields, unchecked: `(code_offset, wasm_offset, code)`.
    fn raw(&self, i: usize) -> (u32, u32, u8) {
        let at = i * RECORD_SIZE;
        let r = &self.records[at..at + RECORD_SIZE];
        (
            u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
            u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
            r[8],
        )
    }

    /// Site `i`, if `i` is in range (and its code known, which a checked
    /// table guarantees).
    pub fn get(&self, i: usize) -> Option<TrapSite> {
        if i >= self.len() {
            return None;
        }
        let (code_offset, wasm_offset, code) = self.raw(i);
        Some(TrapSite {
            code_offset,
            code: TrapCode::from_u8(code)?,
            wasm_offset,
        })
    }

    /// The site at exactly `code_offset`, by binary search. Allocates
    /// nothing: callable from a signal handler.
    pub fn find(&self, code_offset: u64) -> Option<TrapSite> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = u64::from(self.raw(mid).0);
            match at.cmp(&code_offset) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.get(mid),
            }
        }
        None
    }

    /// Whether every record has a known trap code and the records are
    /// sorted by strictly increasing code offset. Allocates nothing.
    fn sound(&self) -> bool {
        let mut last: Option<u32> = None;
        (0..self.len()).all(|i| {
            let (offset, _, code) = self.raw(i);
            let ok = TrapCode::from_u8(code).is_some() && last.is_none_or(|l| l < offset);
            last = Some(offset);
            ok
        })
    }

    /// As [`Sites::sound`], saying why not.
    fn check(&self) -> Result<(), String> {
        let mut last: Option<u32> = None;
        for i in 0..self.len() {
            let (offset, _, code) = self.raw(i);
            if TrapCode::from_u8(code).is_none() {
                return Err(format!("unknown trap code {code}"));
            }
            if last.is_some_and(|l| l >= offset) {
                return Err("trap sites not sorted by code offset".into());
            }
            last = Some(offset);
        }
        Ok(())
    }

    /// Every site, in order.
    pub fn iter(&self) -> impl Iterator<Item = TrapSite> + 'a {
        let s = *self;
        (0..s.len()).filter_map(move |i| s.get(i))
    }

    /// Every site, collected (for tools and tests).
    pub fn to_vec(&self) -> Vec<TrapSite> {
        self.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(code_offset: u32, code: TrapCode, wasm_offset: u32) -> TrapSite {
        TrapSite {
            code_offset,
            code,
            wasm_offset,
        }
    }

    fn sample() -> (Vec<Vec<TrapSite>>, Vec<Vec<TrapSite>>) {
        let bodies = vec![
            vec![
                site(4, TrapCode::MemoryOutOfBounds, 100),
                site(9, TrapCode::Unreachable, 104),
                site(30, TrapCode::StackOverflow, 90),
            ],
            vec![],
            vec![site(0, TrapCode::IntegerDivisionByZero, 7)],
        ];
        let clones = vec![
            vec![site(5, TrapCode::MemoryOutOfBounds, 100)],
            vec![],
            vec![],
        ];
        (bodies, clones)
    }

    fn shared(bytes: Vec<u8>) -> (SharedBytes, Range<usize>) {
        let len = bytes.len();
        (Arc::new(bytes), 0..len)
    }

    #[test]
    fn sites_round_trip_and_are_found_per_range() {
        let (bodies, clones) = sample();
        let t = TrapSiteTable::from_sites(&bodies, &clones).unwrap();
        assert_eq!(t.len(), 3);
        for k in 0..3 {
            assert_eq!(t.body(k).to_vec(), bodies[k]);
            assert_eq!(t.clone_of(k).to_vec(), clones[k]);
        }
        assert_eq!(t.body(0).find(9), Some(bodies[0][1]));
        assert_eq!(t.body(0).find(30), Some(bodies[0][2]));
        assert_eq!(t.body(0).find(5), None, "only exact offsets");
        assert_eq!(t.clone_of(0).find(5), Some(clones[0][0]));
        assert_eq!(t.clone_of(0).find(4), None, "a clone has its own sites");
        assert!(t.body(3).is_empty() && t.clone_of(3).is_empty());
        assert_eq!(t.encoded().len(), 4 + 4 * 7 + RECORD_SIZE * 5);
        assert_eq!(TrapSiteTable::default().body(0).len(), 0);
    }

    #[test]
    fn unsorted_sites_are_not_encoded() {
        let bodies = vec![vec![
            site(9, TrapCode::Unreachable, 0),
            site(4, TrapCode::Unreachable, 0),
        ]];
        assert!(TrapSiteTable::encode(&bodies, &[vec![]]).is_err());
    }

    /// A clone's records are not read at load: damaged, the table is
    /// accepted, a lookup in them misses, and `check_func` names them.
    #[test]
    fn a_damaged_clone_is_refused_when_checked() {
        let (bodies, clones) = sample();
        let mut bytes = TrapSiteTable::encode(&bodies, &clones).unwrap();
        // Records: body 0 (3), body 2 (1), then clone 0's; its code byte.
        let at = 4 + 4 * 7 + RECORD_SIZE * 4 + 8;
        bytes[at] = 0xee;
        let (b, r) = shared(bytes);
        let t = TrapSiteTable::from_section(b, r, 3).unwrap();
        assert_eq!(t.clone_of(0).find(5), None);
        let e = t.check_func(0).unwrap_err().to_string();
        assert!(e.contains("range 3: unknown trap code 238"), "{e}");
        assert!(!t.sound(0));
        assert!(t.check_func(1).is_ok() && t.check_func(2).is_ok());
        assert!(t.sound(1) && t.sound(2));
        assert!(
            t.check_func(7).is_ok() && t.sound(7),
            "no such function: nothing to check"
        );
    }

    #[test]
    fn a_damaged_section_is_refused() {
        let (bodies, clones) = sample();
        let good = TrapSiteTable::encode(&bodies, &clones).unwrap();
        let records = 4 + 4 * 7;
        let refused = |bytes: Vec<u8>, count: usize| {
            let (b, r) = shared(bytes);
            TrapSiteTable::from_section(b, r, count)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(good.clone(), 4).contains("3 functions"));
        for cut in [0, 3, 10, records, good.len() - 1] {
            let _ = refused(good[..cut].to_vec(), 3);
        }
        let (b, _) = shared(good.clone());
        assert!(TrapSiteTable::from_section(b, 0..good.len() + 1, 3).is_err());
        // The index not starting at 0, not covering every record.
        let mut bytes = good.clone();
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(refused(bytes, 3).contains("record 0"));
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[0; RECORD_SIZE]);
        assert!(refused(bytes, 3).contains("covers 5 of 6"));
        let mut bytes = good.clone();
        bytes.push(0);
        assert!(refused(bytes, 3).contains("whole number"));
        // A function's own part is checked when used: the table loads,
        // lookups stay inside the records, `check_func` names the damage
        // and `sound` sees it; the functions not in `near` (which share
        // the damaged index entry) are intact.
        let damaged = |bytes: Vec<u8>, k: usize, says: &str, near: &[usize]| {
            let (b, r) = shared(bytes);
            let t = TrapSiteTable::from_section(b, r, 3).expect("checked when used");
            let e = t.check_func(k).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
            assert!(!t.sound(k));
            for other in (0..3).filter(|&o| o != k && !near.contains(&o)) {
                assert!(t.sound(other) && t.check_func(other).is_ok(), "{other}");
            }
            for o in 0..64 {
                let _ = (t.body(k).find(o), t.clone_of(k).find(o));
            }
        };
        // An index entry (body 0's end, body 1's start) past the records,
        // or going backwards.
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        damaged(bytes, 0, "range 0", &[1]);
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&5u32.to_le_bytes());
        damaged(bytes, 1, "range 1", &[0]);
        // An unknown trap code; sites out of order (body 0's first).
        let mut bytes = good.clone();
        bytes[records + 8] = 0xee;
        damaged(bytes, 0, "unknown trap code 238", &[]);
        let mut bytes = good;
        bytes[records..records + 4].copy_from_slice(&50u32.to_le_bytes());
        damaged(bytes, 0, "not sorted", &[]);
    }
}
