//! The receiver's limits on a snapshot being restored.
//!
//! A snapshot (a file, or bytes arriving on a socket) is untrusted: what it
//! may make the restoring process allocate is bounded by the receiver's
//! settings and by the module, never by what the snapshot declares. The
//! limits are turned into [`mvvm_snapshot::ReadLimits`], which the reader
//! checks against every section's length before reading it and against
//! every count after decoding it. Limits on the host state's contents
//! (WASI's descriptor count, say) are the host layer's, checked when it
//! decodes its state.

use mvvm_abi::meta::ModuleMeta;
use mvvm_abi::vmctx::WASM_PAGE_SIZE;
use mvvm_snapshot::ReadLimits;

/// Default [`RestoreLimits::max_memory_bytes`]: 4 GiB, the whole wasm32
/// address space (so by default only the module's own maximum applies).
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 1 << 32;

/// Default [`RestoreLimits::max_host_state_bytes`]: 576 MiB, the largest
/// host state MVVM's WASI layer writes (the contents of deleted-while-open
/// files, at most `mvvm_wasi::MAX_UNLINKED_BYTES` = 512 MiB) plus 64 MiB
/// for arguments, environment and descriptor records.
pub const DEFAULT_MAX_HOST_STATE_BYTES: u64 = (512 << 20) + (64 << 20);

/// Default [`RestoreLimits::max_exceptions`]: about a million saved
/// exceptions (each costs the restore a table slot and its payload: tens
/// of MiB at this bound), far more than the `exnref`s a program keeps
/// live, while bounding what a hostile snapshot can make a restore build.
pub const DEFAULT_MAX_EXCEPTIONS: u64 = 1 << 20;

/// Default [`RestoreLimits::max_threads`]: threads besides the main one.
/// Each restored thread is an OS thread with its own stack (the wasm
/// stack limit plus headroom) and instance, so a hostile snapshot must
/// not name millions of them; real programs run a thread pool of a few
/// per core.
pub const DEFAULT_MAX_THREADS: u64 = 1024;

/// Smallest native stack frame of a suspended wasm function, in bytes. Every
/// frame of a snapshot but the innermost is suspended at a call, so it is
/// a non-leaf function on the native stack: it holds at least its return
/// address and saved frame pointer (x86-64 pushes both; aarch64 stores the
/// link register and frame pointer as a pair), 16 bytes, the stack's
/// alignment on both ISAs.
pub const MIN_NATIVE_FRAME_BYTES: u64 = 16;

/// Bytes of native stack a saved value needs: at least one 64-bit spill
/// slot (a `v128` needs 16 bytes, so counting every value as 8 keeps the
/// bound an upper one).
pub const NATIVE_SLOT_BYTES: u64 = 8;

/// Saved values that may live in callee-saved registers rather than on the
/// stack (x86-64 has 6 callee-saved registers, aarch64 18): a generous
/// margin on top of [`NATIVE_SLOT_BYTES`] per value.
pub const REGISTER_HEADROOM: u64 = 64;

/// What a restore accepts from a snapshot, set by the receiver (see
/// `mvvm-restore --max-memory`). Part of
/// [`RestoreOptions`](super::RestoreOptions).
///
/// The frame and value bounds are not set here: they come from the stack
/// the restored program gets (`max_wasm_stack`), see
/// [`RestoreLimits::read_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreLimits {
    /// Largest linear memory, in bytes (default
    /// [`DEFAULT_MAX_MEMORY_BYTES`], 4 GiB). The module's declared maximum
    /// applies as well: the smaller of the two wins.
    pub max_memory_bytes: u64,
    /// Largest encoded host state (the snapshot's WASI section), in bytes
    /// (default [`DEFAULT_MAX_HOST_STATE_BYTES`]).
    pub max_host_state_bytes: u64,
    /// Most saved exceptions (the targets of `exnref` values; default
    /// [`DEFAULT_MAX_EXCEPTIONS`]). A module that has no tag can hold no
    /// exception of its own, and gets none whatever this says.
    pub max_exceptions: u64,
    /// Most threads besides the main one (default
    /// [`DEFAULT_MAX_THREADS`]); none for a module that cannot start
    /// threads (it exports no `wasi_thread_start`).
    pub max_threads: u64,
}

impl Default for RestoreLimits {
    fn default() -> Self {
        RestoreLimits {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_host_state_bytes: DEFAULT_MAX_HOST_STATE_BYTES,
            max_exceptions: DEFAULT_MAX_EXCEPTIONS,
            max_threads: DEFAULT_MAX_THREADS,
        }
    }
}

impl RestoreLimits {
    /// The reader's limits for restoring into a module described by `meta`
    /// with `max_wasm_stack` bytes of wasm stack.
    ///
    /// Frames and values are bounded by the stack, because rewinding
    /// rebuilds every saved frame on the native stack, and the snapshot
    /// was taken from frames that were all there at once:
    /// - **frames** ≤ `max_wasm_stack / 16 + 1`: every frame but the
    ///   innermost is suspended at a call and so takes at least
    ///   [`MIN_NATIVE_FRAME_BYTES`] (return address and frame pointer);
    /// - **values** ≤ `max_wasm_stack / 8 + 64`: every local and operand
    ///   a frame saves is read again after the call it is suspended at
    ///   returns (the unwind path stores them all), so while the callee
    ///   runs each one is in a spill slot of its frame
    ///   ([`NATIVE_SLOT_BYTES`]) or in a callee-saved register, which a
    ///   callee that uses it saves in its own frame; only the registers
    ///   not yet reused hold values stored nowhere else
    ///   ([`REGISTER_HEADROOM`]). Values the compiler can recompute
    ///   (constants, copies) need no slot, so a program keeping thousands
    ///   of constant locals across deep recursion can exceed this bound: a
    ///   larger `--max-wasm-stack` raises it.
    ///
    /// Globals, tables and dropped segments are bounded by the module
    /// (tables by their declared maxima, capped at
    /// [`MAX_TABLE_ELEMENTS`](crate::table::MAX_TABLE_ELEMENTS)), memory by
    /// the smaller of [`RestoreLimits::max_memory_bytes`] and the module's
    /// maximum (no memory: 0 bytes). Exceptions are bounded by
    /// [`RestoreLimits::max_exceptions`] (0 for a module without tags: the
    /// snapshot names each exception's tag by its index in the module),
    /// their payload values by that many times the longest payload of the
    /// module's tags. Each thread's record has the bounds of the main
    /// thread's state; threads are bounded by
    /// [`RestoreLimits::max_threads`].
    pub fn read_limits(&self, meta: &ModuleMeta, max_wasm_stack: usize) -> ReadLimits {
        let stack = max_wasm_stack as u64;
        let module_memory = meta.memory_types().first().map_or(0, |m| {
            m.limits
                .max
                .unwrap_or(crate::MAX_PAGES)
                .min(crate::MAX_PAGES)
                .saturating_mul(WASM_PAGE_SIZE)
        });
        let table_elements = meta
            .tables
            .iter()
            .map(|t| {
                t.limits
                    .max
                    .unwrap_or(u64::from(u32::MAX))
                    .min(crate::table::MAX_TABLE_ELEMENTS)
            })
            .fold(0u64, u64::saturating_add);
        let tag_types = meta.tag_types();
        let max_exceptions = if tag_types.is_empty() {
            0
        } else {
            self.max_exceptions
        };
        let longest_payload = tag_types
            .iter()
            .map(|&t| meta.types.get(t as usize).map_or(0, |f| f.params.len()))
            .max()
            .unwrap_or(0) as u64;
        ReadLimits {
            max_memory_bytes: self.max_memory_bytes.min(module_memory),
            max_frames: stack / MIN_NATIVE_FRAME_BYTES + 1,
            max_values: (stack / NATIVE_SLOT_BYTES).saturating_add(REGISTER_HEADROOM),
            max_globals: meta.globals.len() as u64,
            max_tables: meta.tables.len() as u64,
            max_table_elements: table_elements,
            max_exceptions,
            max_exception_values: max_exceptions.saturating_mul(longest_payload),
            max_segments: meta.data.len().max(meta.elems.len()) as u64,
            max_wasi_bytes: self.max_host_state_bytes,
            max_threads: if meta.exports.iter().any(|e| e.name == super::THREAD_ENTRY) {
                self.max_threads
            } else {
                0
            },
        }
    }
}
