//! What the runtime offers host layers (WASI is one, in the `mvvm-wasi`
//! crate) so that they can take part in checkpoints without the runtime
//! knowing them:
//!
//! - **state**: host data put in the store with [`Store::set_host_state`]
//!   implements [`HostState`]; a checkpoint asks it for its state as bytes
//!   ([`SavedHostState`]) and writes them into the snapshot. On restore the
//!   runtime hands the same bytes back ([`Restore::host_state`](super::Restore::host_state))
//!   before the store is built, so the host layer rebuilds itself from
//!   them with whatever capabilities its embedder grants;
//! - **interruption**: a host function that may block for long waits in
//!   slices of at most [`WAIT_SLICE`] while a checkpoint session runs on
//!   its thread ([`session_active`]), looks at [`requested`] between
//!   slices, and when a checkpoint is wanted gives its call up without
//!   doing anything and says so with [`Caller::interrupt_for_checkpoint`]:
//!   the import stub then unwinds, and the restored program makes the call
//!   again.

use super::control;
use crate::store::{Caller, Store, StoreInner};
use std::any::Any;
use std::time::Duration;

/// The longest a blocking host call should wait before looking at
/// [`requested`] again.
pub const WAIT_SLICE: Duration = control::WAIT_SLICE;

/// Host state as a snapshot carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedHostState {
    /// The encoded state (the snapshot's host-state section, opaque to the
    /// runtime).
    pub bytes: Vec<u8>,
    /// The guest's monotonic clock when the state was saved, in
    /// nanoseconds: the snapshot records it on its own so that a reader
    /// need not decode the host state to learn it.
    pub monotonic_nanos: u64,
}

/// The error a host layer gives when its state cannot be saved, kept as
/// the cause of [`CheckpointError::HostState`](super::CheckpointError::HostState).
pub type HostStateError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What follows a checkpoint, for the host layer that saves its state:
/// resources that move with the program (a TCP connection) are handled
/// differently when this process keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAfter {
    /// The program runs on in this process (a periodic checkpoint).
    Continues,
    /// The checkpoint ends the run: the process exits once the snapshot
    /// is written, and a restore takes the program's resources over.
    Ends,
}

/// Host data whose state belongs in a snapshot.
pub trait HostState: Any {
    /// The state to put in the snapshot of a guest that has just unwound
    /// (the guest is stopped: nothing changes the state meanwhile);
    /// `after` says whether the run goes on.
    fn save(&self, after: RunAfter) -> Result<SavedHostState, HostStateError>;
}

/// How the store saves its host data (the data's type erased).
pub(crate) type SaveFn = fn(&dyn Any, RunAfter) -> Result<SavedHostState, HostStateError>;

/// [`SaveFn`] of data of type `T`.
fn save_as<T: HostState>(
    data: &dyn Any,
    after: RunAfter,
) -> Result<SavedHostState, HostStateError> {
    match data.downcast_ref::<T>() {
        Some(d) => d.save(after),
        // `set_data` clears the hook whenever it replaces the data, so
        // this cannot happen; an error rather than a panic all the same.
        None => Err("the store's host data changed type since it was set".into()),
    }
}

impl Store {
    /// Attaches host data that host functions reach as with
    /// [`Store::set_data`] and that a checkpoint of this store saves
    /// ([`HostState::save`]). Replaces any previous data.
    pub fn set_host_state<T: HostState>(&mut self, data: T) {
        self.set_data(data);
        self.inner.save_data = Some(save_as::<T>);
    }
}

/// Saves the store's host data, if it has state to save (`Ok(None)`
/// otherwise: the snapshot then holds no host state).
pub(crate) fn save(
    store: &StoreInner,
    after: RunAfter,
) -> Result<Option<SavedHostState>, HostStateError> {
    match (&store.data, store.save_data) {
        (Some(data), Some(save)) => save(data.as_ref(), after).map(Some),
        _ => Ok(None),
    }
}

/// Whether a checkpoint session runs on this thread: blocking host calls
/// must then wait in slices of at most [`WAIT_SLICE`] and look at
/// [`requested`] between them.
pub fn session_active() -> bool {
    control::interruptible()
}

/// Whether a checkpoint is wanted now for the store running on this
/// thread (false when no session runs).
pub fn requested() -> bool {
    control::requested()
}

impl Caller<'_> {
    /// Says that the host function being called gave up its call, without
    /// doing anything, because a checkpoint is wanted: when it returns,
    /// the import stub unwinds the guest (its results are ignored), and
    /// the restored program makes the call again. False when no checkpoint
    /// session runs on the store: the caller must then fail the call
    /// instead.
    pub fn interrupt_for_checkpoint(&mut self) -> bool {
        match self.store.ckpt.as_deref_mut() {
            // `HostCall` sees the mark and makes the stub unwind.
            Some(c) => {
                c.host_interrupted = true;
                true
            }
            None => false,
        }
    }
}
