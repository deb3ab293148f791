//! Exceptions (the wasm exception-handling proposal), the runtime side of
//! [`mvvm_abi::exception`]: tag identities, the per-store exception table
//! that `exnref` handles index, and the API checkpoint capture and restore
//! use to save and rebuild both.
//!
//! # Tags
//!
//! Every tag an instance defines gets a fresh [`TagId`] when the instance
//! is built: an index into the store's tag list ([`Tags`]), so unique in
//! the store and never reused (the store only grows). An imported tag
//! takes the exporter's identity, so two imports of the same export are the
//! same tag, and a `catch` of it in one module catches a `throw` of it in
//! another. Each instance keeps its tag identities in tag index order
//! (imports first, then `meta.tags`): [`instance_tag`] maps an index of an
//! instance's tag space to its identity, [`instance_tag_index`] back.
//!
//! A tag's identity is only meaningful inside its store. A snapshot names
//! one by its index in the checkpointed instance's tag space
//! ([`instance_tag_index`]); restore maps it back with [`instance_tag`].
//!
//! # Exceptions and `exnref`
//!
//! A thrown exception is an [`Exception`] in the store's
//! [`ExceptionTable`]; an `exnref` value (in a local, global, table, the
//! operand stack or a host [`Val`](crate::Val)) is its [`Handle`], a
//! `u64` that is never 0 (0 is `ref.null exn`). A handle is
//! `generation << 32 | (slot + 1)`: a freed slot is reused with the next
//! generation, so a stale handle never names the exception that took its
//! slot ([`ExceptionTable::get`] returns `None` for it, which `throw_ref`
//! turns into a `NullReference` trap rather than undefined behaviour). A
//! slot whose generation would wrap is retired, never reused.
//!
//! The payload is one `u64` slot per value, two for a `v128` (low half
//! first), the layout the `Throw` builtin reads and a handler reads from
//! payload register 1.
//!
//! Who frees an exception is decided by how it was delivered
//! ([`mvvm_abi::exception::Delivery`]): once an `exnref` to it has been
//! handed to wasm (`catch_ref`, `catch_all_ref`), it is *escaped* and lives
//! as long as the store (there is no GC). A legacy `catch` *holds* it: the
//! handler's frame keeps the handle (for `rethrow`) until the catch body
//! ends (`ExnDrop`) or the frame is abandoned by a throw caught further
//! up. An exception neither escaped nor held is freed when a handler has
//! its payload (`catch`), when its last hold ends, or when it leaves wasm
//! uncaught; and when the host's outermost call returns, every exception
//! that did not escape is freed (no frame is left to hold one).
//!
//! Holds are recorded with the frame pointer of the holding frame: a throw
//! delivered to a frame at `fp` abandons every frame below it (lower
//! addresses: the stack grows down), and with them their holds. A catch
//! body left by a branch (not by falling through) calls no `ExnDrop`: its
//! hold lasts until its frame is abandoned or the outermost call returns.
//!
//! # For checkpoint and restore
//!
//! Capture: [`ExceptionTable::get`] reads the exception behind each
//! `exnref` a saved value holds ([`ExceptionTable::iter`] lists them all),
//! [`instance_tag_index`] names its tag. Restore makes each again with
//! [`ExceptionTable::insert`] (a fresh handle, which the restored values
//! then hold) and [`instance_tag`] for its tag.

use crate::store::StoreInner;
use mvvm_abi::meta::FuncType;

/// An `exnref` value: 0 is null, anything else names (or once named) an
/// exception of the store's [`ExceptionTable`].
pub(crate) type Handle = u64;

/// The identity of a tag in one store: index into [`Tags`]. Two tags
/// catch each other's exceptions exactly when their identities are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TagId(pub(crate) u32);

/// Where a tag was defined: instance `instance` (index in the store),
/// tag `index` of that instance's tag space (imports first, so at least
/// its number of imported tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TagHome {
    /// The defining instance's index in the store.
    pub instance: u32,
    /// The tag's index in that instance's tag space.
    pub index: u32,
}

/// One tag of the store.
#[derive(Debug, Clone)]
pub(crate) struct TagData {
    /// The tag's function type (its parameters are the payload).
    pub ty: FuncType,
    /// The instance that defined it.
    pub home: TagHome,
}

/// Every tag of a store, by [`TagId`]. Only grows.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    tags: Vec<TagData>,
}

impl Tags {
    /// A fresh identity for a tag of type `ty` defined at `home`.
    pub(crate) fn define(&mut self, ty: FuncType, home: TagHome) -> TagId {
        // Each definition of each instance makes one tag, once.
        debug_assert!(
            self.tags.iter().all(|t| t.home != home),
            "tag {home:?} defined twice"
        );
        self.tags.push(TagData { ty, home });
        TagId(self.tags.len() as u32 - 1)
    }

    /// The tag `id`, if it exists in this store.
    pub(crate) fn get(&self, id: TagId) -> Option<&TagData> {
        self.tags.get(id.0 as usize)
    }

    /// The type of tag `id`.
    pub(crate) fn ty(&self, id: TagId) -> Option<&FuncType> {
        self.get(id).map(|t| &t.ty)
    }
}

/// The identity of tag `index` (imports first) of instance `instance`.
pub(crate) fn instance_tag(s: &StoreInner, instance: u32, index: u32) -> Option<TagId> {
    s.instances
        .get(instance as usize)?
        .tags
        .get(index as usize)
        .copied()
}

/// The index of identity `id` in the tag space of instance `instance`: the
/// first index whose identity it is (an instance that imports the same tag
/// twice, or re-imports its own, has several).
pub(crate) fn instance_tag_index(s: &StoreInner, instance: u32, id: TagId) -> Option<u32> {
    s.instances
        .get(instance as usize)?
        .tags
        .iter()
        .position(|t| *t == id)
        .map(|i| i as u32)
}

/// A thrown exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exception {
    /// The tag it was thrown with.
    pub tag: TagId,
    /// Its values, one `u64` slot each, two for a `v128` (low half first).
    pub payload: Box<[u64]>,
    /// Whether an `exnref` to it was handed to wasm: then it is never
    /// freed (it may be stored anywhere).
    pub escaped: bool,
}

/// One slot of the table.
#[derive(Debug, Default)]
struct Slot {
    /// Generation of the handle that names the current (or next) occupant.
    generation: u32,
    exn: Option<Exception>,
}

/// The exceptions of a store; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ExceptionTable {
    slots: Vec<Slot>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    /// Number of occupied slots.
    live: usize,
    /// The payload of the last exception delivered by value (`catch`) that
    /// was freed on delivery: the handler reads it through payload
    /// register 1 until its next call, so it must outlive the exception.
    /// Replaced at the next such delivery.
    delivered: Box<[u64]>,
    /// Holds of legacy catches, oldest first: the exception and the frame
    /// pointer of the frame whose catch body holds it.
    holds: Vec<(Handle, usize)>,
}

/// Slots beyond this are not handed out: the slot number plus one must fit
/// in the low 32 bits of a handle.
const MAX_SLOTS: usize = u32::MAX as usize - 1;

fn handle_of(slot: u32, generation: u32) -> Handle {
    (u64::from(generation) << 32) | (u64::from(slot) + 1)
}

/// The slot and generation a handle names, `None` for null.
fn split(h: Handle) -> Option<(usize, u32)> {
    let low = h as u32;
    if low == 0 {
        return None;
    }
    Some(((low - 1) as usize, (h >> 32) as u32))
}

impl ExceptionTable {
    /// Adds `exn` under a fresh handle. `None` when the table is full
    /// (4 billion live exceptions: the caller traps).
    pub(crate) fn insert(&mut self, exn: Exception) -> Option<Handle> {
        let slot = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return None;
                }
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let s = &mut self.slots[slot];
        s.exn = Some(exn);
        self.live += 1;
        Some(handle_of(slot as u32, s.generation))
    }

    /// A new exception of tag `tag` with `payload` (not escaped); see
    /// [`ExceptionTable::insert`].
    pub(crate) fn create(&mut self, tag: TagId, payload: Box<[u64]>) -> Option<Handle> {
        self.insert(Exception {
            tag,
            payload,
            escaped: false,
        })
    }

    /// The exception `h` names; `None` for null, a stale or a forged handle.
    pub(crate) fn get(&self, h: Handle) -> Option<&Exception> {
        let (slot, generation) = split(h)?;
        let s = self.slots.get(slot)?;
        if s.generation != generation {
            return None;
        }
        s.exn.as_ref()
    }

    /// [`ExceptionTable::get`], writable.
    pub(crate) fn get_mut(&mut self, h: Handle) -> Option<&mut Exception> {
        let (slot, generation) = split(h)?;
        let s = self.slots.get_mut(slot)?;
        if s.generation != generation {
            return None;
        }
        s.exn.as_mut()
    }

    /// Removes the exception `h` names (whether escaped or not) and
    /// returns it; its handle is stale from now on.
    pub(crate) fn remove(&mut self, h: Handle) -> Option<Exception> {
        let (slot, generation) = split(h)?;
        let s = self.slots.get_mut(slot)?;
        if s.generation != generation {
            return None;
        }
        let exn = s.exn.take()?;
        self.live -= 1;
        self.holds.retain(|(held, _)| *held != h);
        // A slot whose generation would wrap is retired: reusing it would
        // let an old handle of the slot name a new exception.
        if let Some(g) = s.generation.checked_add(1) {
            s.generation = g;
            self.free.push(slot as u32);
        }
        Some(exn)
    }

    /// Frees `h` unless it escaped or a legacy catch holds it. Returns
    /// whether it was freed.
    pub(crate) fn release(&mut self, h: Handle) -> bool {
        match self.get(h) {
            Some(e) if !e.escaped && !self.is_held(h) => self.remove(h).is_some(),
            _ => false,
        }
    }

    /// Whether a legacy catch holds `h`.
    pub(crate) fn is_held(&self, h: Handle) -> bool {
        self.holds.iter().any(|(held, _)| *held == h)
    }

    /// A legacy catch in the frame at `fp` holds `h` (delivery
    /// [`Held`](mvvm_abi::exception::Delivery::Held)).
    pub(crate) fn hold(&mut self, h: Handle, fp: usize) {
        self.holds.push((h, fp));
    }

    /// `ExnDrop`: the innermost (latest) hold of `h` ends; frees `h` when
    /// nothing else keeps it. A handle without a hold (stale, forged, or
    /// released with its abandoned frame) only gets the release.
    pub(crate) fn unhold(&mut self, h: Handle) {
        if let Some(i) = self.holds.iter().rposition(|(held, _)| *held == h) {
            self.holds.remove(i);
        }
        self.release(h);
    }

    /// A throw is delivered to the frame at `fp` (or, uncaught, leaves
    /// the frames up to `fp` included when `inclusive`): every frame below
    /// is abandoned, and the holds of their catch bodies end. The
    /// exception being thrown, `thrown`, is not released here: its
    /// delivery decides its fate.
    pub(crate) fn abandon_frames_below(&mut self, fp: usize, inclusive: bool, thrown: Handle) {
        let abandoned = |f: usize| f < fp || (inclusive && f == fp);
        let mut ended = Vec::new();
        self.holds.retain(|&(h, f)| {
            if abandoned(f) {
                ended.push(h);
            }
            !abandoned(f)
        });
        for h in ended.into_iter().filter(|h| *h != thrown) {
            self.release(h);
        }
    }

    /// Every live exception with its handle, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Handle, &Exception)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.exn
                .as_ref()
                .map(|e| (handle_of(i as u32, s.generation), e))
        })
    }

    /// Number of live exceptions.
    pub(crate) fn live_count(&self) -> usize {
        self.live
    }

    /// Frees every exception that did not escape. Called when the host's
    /// outermost call into wasm ends normally or by a trap: then no frame
    /// can hold the handle of one (those live only in handler frames), so
    /// nothing can name them again.
    pub(crate) fn release_unescaped(&mut self) {
        self.holds.clear();
        let dead: Vec<Handle> = self
            .iter()
            .filter(|(_, e)| !e.escaped)
            .map(|(h, _)| h)
            .collect();
        for h in dead {
            self.remove(h);
        }
    }

    /// Keeps `payload` as the delivered payload (see the field) and
    /// returns its address, valid until the next call of this.
    pub(crate) fn keep_delivered(&mut self, payload: Box<[u64]>) -> *const u64 {
        self.delivered = payload;
        self.delivered.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exn(tag: u32, v: u64) -> Exception {
        Exception {
            tag: TagId(tag),
            payload: vec![v].into_boxed_slice(),
            escaped: false,
        }
    }

    #[test]
    fn handles_are_never_null_and_stale_ones_are_detected() {
        let mut t = ExceptionTable::default();
        let a = t.insert(exn(0, 1)).unwrap();
        assert_ne!(a, 0);
        assert_eq!(t.get(a).unwrap().payload[..], [1]);
        assert!(t.remove(a).is_some());
        let b = t.insert(exn(0, 2)).unwrap();
        // Same slot, new generation: the old handle names nothing.
        assert_eq!(a as u32, b as u32);
        assert_ne!(a, b);
        assert!(t.get(a).is_none());
        assert!(t.remove(a).is_none());
        assert_eq!(t.get(b).unwrap().payload[..], [2]);
        assert!(t.get(0).is_none());
        assert!(t.get(0xdead_0000_0000).is_none());
        assert_eq!(t.live_count(), 1);
    }

    #[test]
    fn release_keeps_escaped_exceptions() {
        let mut t = ExceptionTable::default();
        let a = t.insert(exn(0, 1)).unwrap();
        let b = t.insert(exn(0, 2)).unwrap();
        t.get_mut(b).unwrap().escaped = true;
        assert!(!t.release(b));
        assert!(t.release(a));
        assert_eq!(t.live_count(), 1);
        let c = t.insert(exn(1, 3)).unwrap();
        t.release_unescaped();
        assert!(t.get(c).is_none());
        assert!(t.get(b).is_some());
        assert_eq!(t.iter().map(|(h, _)| h).collect::<Vec<_>>(), vec![b]);
    }

    #[test]
    fn held_exceptions_live_until_their_last_hold_ends() {
        let mut t = ExceptionTable::default();
        let a = t.insert(exn(0, 1)).unwrap();
        t.hold(a, 0x1000);
        t.hold(a, 0x2000);
        assert!(!t.release(a), "held");
        t.unhold(a);
        assert!(t.get(a).is_some(), "still held by the frame at 0x1000");
        t.unhold(a);
        assert!(t.get(a).is_none());
        // Abandoned frames end their holds; frames above keep theirs.
        let b = t.insert(exn(0, 2)).unwrap();
        let c = t.insert(exn(0, 3)).unwrap();
        t.hold(b, 0x1000);
        t.hold(c, 0x3000);
        t.abandon_frames_below(0x3000, false, 0);
        assert!(t.get(b).is_none());
        assert!(t.get(c).is_some());
        t.abandon_frames_below(0x3000, true, 0);
        assert!(t.get(c).is_none());
        assert_eq!(t.live_count(), 0);
        // The exception being thrown loses its hold, not its life: its
        // delivery decides.
        let d = t.insert(exn(0, 4)).unwrap();
        t.hold(d, 0x1000);
        t.abandon_frames_below(0x2000, false, d);
        assert!(t.get(d).is_some());
        assert!(!t.is_held(d));
    }

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let mut t = ExceptionTable::default();
        let a = t.insert(exn(0, 1)).unwrap();
        t.slots[0].generation = u32::MAX;
        let old = handle_of(0, u32::MAX);
        assert!(t.get(a).is_none());
        assert!(t.remove(old).is_some());
        // Not reused: a new exception gets another slot.
        let b = t.insert(exn(0, 2)).unwrap();
        assert_ne!(b as u32, old as u32);
        assert!(t.get(old).is_none());
    }
}
