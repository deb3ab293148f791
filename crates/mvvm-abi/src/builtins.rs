//! Runtime functions that generated code calls.
//!
//! Generated code never links against the runtime: it loads the address of
//! builtin `b` from `vmctx.builtins[b as usize]` and calls it with the
//! target's C calling convention. The runtime fills that table in exactly the
//! order of [`Builtin::ALL`]. Every builtin takes the caller's `*mut
//! VMContext` first. Builtins that detect a trap (out of bounds, say) do not
//! return: the runtime unwinds to the host entry point.

/// A parameter or result type of a builtin, as generated code passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer (also references: a `funcref` is a `*const VMFuncRef`,
    /// an `externref` an opaque `u64`).
    I64,
    /// A pointer (64 bits on every supported host).
    Ptr,
}

/// The signature of a builtin, after the leading `vmctx` pointer.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinSig {
    /// Name, for symbols in logs.
    pub name: &'static str,
    /// Parameters after `vmctx`.
    pub params: &'static [AbiType],
    /// Results (zero or one).
    pub results: &'static [AbiType],
}

use AbiType::*;

macro_rules! builtins {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ( $($p:ident),* ) -> ( $($r:ident),* ); )*) => {
        /// The builtins, in table order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Builtin {
            $( $(#[$doc])* $variant, )*
        }

        impl Builtin {
            /// Every builtin in table order.
            pub const ALL: &'static [Builtin] = &[ $(Builtin::$variant,)* ];

            /// The builtin's signature after `vmctx`.
            pub fn sig(self) -> BuiltinSig {
                match self {
                    $(Builtin::$variant => BuiltinSig {
                        name: $name,
                        params: &[$($p),*],
                        results: &[$($r),*],
                    },)*
                }
            }
        }
    };
}

builtins! {
    /// `memory.grow`: `(delta_pages) -> old_pages or -1`.
    MemoryGrow = "memory_grow"(I32) -> (I32);
    /// `memory.fill`: `(dst, byte, len)`; traps when out of bounds.
    MemoryFill = "memory_fill"(I32, I32, I32) -> ();
    /// `memory.copy`: `(dst, src, len)`; traps when out of bounds.
    MemoryCopy = "memory_copy"(I32, I32, I32) -> ();
    /// `memory.init`: `(segment, dst, src, len)`.
    MemoryInit = "memory_init"(I32, I32, I32, I32) -> ();
    /// `data.drop`: `(segment)`.
    DataDrop = "data_drop"(I32) -> ();
    /// `table.grow`: `(table, init, delta) -> old_len or -1`.
    TableGrow = "table_grow"(I32, I64, I32) -> (I32);
    /// `table.fill`: `(table, dst, value, len)`.
    TableFill = "table_fill"(I32, I32, I64, I32) -> ();
    /// `table.copy`: `(dst_table, src_table, dst, src, len)`.
    TableCopy = "table_copy"(I32, I32, I32, I32, I32) -> ();
    /// `table.init`: `(table, segment, dst, src, len)`.
    TableInit = "table_init"(I32, I32, I32, I32, I32) -> ();
    /// `elem.drop`: `(segment)`.
    ElemDrop = "elem_drop"(I32) -> ();
    /// Call of imported function `import` (a function index below the
    /// number of imported functions) with its parameters in `values` (one
    /// `u64` slot each); results are written back into `values`. Returns 0,
    /// or a [`TrapCode`](crate::TrapCode) the caller must pass to `Raise`,
    /// or [`HOST_CALL_UNWIND`](crate::checkpoint::HOST_CALL_UNWIND) when a
    /// checkpoint interrupted the call (return zero results, do not raise).
    HostCall = "host_call"(I32, Ptr) -> (I32);
    /// Stops execution with the given trap code; never returns.
    Raise = "raise"(I32) -> ();
    /// A probe found `probe_flag` set: `(func, offset) -> 1 to unwind now,
    /// else 0`; when it returns 1 it has also set `unwind_state` to
    /// `UNWINDING`, which is what generated code tests (it calls this
    /// through the module's probe trampoline, see
    /// [`PROBE_TRAMPOLINE_SYMBOL`](crate::object::PROBE_TRAMPOLINE_SYMBOL)).
    /// See [`crate::checkpoint`].
    Probe = "probe"(I32, I32) -> (I32);
    /// Records the frame of `func` at stable point `offset` while
    /// unwinding: `(func, offset, values, count)`, values = locals then the
    /// operand stack (bottom first), one `u64` slot each.
    UnwindFrame = "unwind_frame"(I32, I32, Ptr, I32) -> ();
    /// Hands out the next frame while rewinding: `(func, values, capacity)
    /// -> index of the stable point in FuncTables::stable_points`, with the
    /// locals then the operand stack written into `values`.
    RewindFrame = "rewind_frame"(I32, Ptr, I32) -> (I32);
    /// `throw tag`: `(tag, values)`, the tag's index in the module (imports
    /// first) and its payload in `values` (one `u64` slot each, two for a
    /// `v128`). Never returns: control goes to a handler (see
    /// [`crate::exception`]) or, when none catches it, the runtime unwinds
    /// to the host entry with [`TrapCode::UncaughtException`](crate::TrapCode).
    /// Generated code calls it with the enclosing handlers, like any call.
    Throw = "throw"(I32, Ptr) -> ();
    /// `throw_ref`: `(exn)`, an `exnref` handle; null traps with
    /// [`TrapCode::NullReference`](crate::TrapCode). Never returns.
    ThrowRef = "throw_ref"(I64) -> ();
    /// The end of a legacy `catch`/`catch_all` body that was reached by
    /// falling through: `(exn)`, the caught exception, which nothing can
    /// name any more. The runtime may free it.
    ExnDrop = "exn_drop"(I64) -> ();
    /// `memory.atomic.wait32` (threads): `(address, expected, timeout) ->
    /// 0 woken, 1 not equal, 2 timed out`. `address` is the effective
    /// address (the `i32` operand zero-extended plus the static offset, so
    /// it may exceed 32 bits); `timeout` is in nanoseconds, negative for
    /// none. Traps [`UnalignedAtomic`](crate::TrapCode::UnalignedAtomic)
    /// (address not a multiple of 4), then
    /// [`WaitOnUnsharedMemory`](crate::TrapCode::WaitOnUnsharedMemory),
    /// then [`MemoryOutOfBounds`](crate::TrapCode::MemoryOutOfBounds).
    MemoryAtomicWait32 = "memory_atomic_wait32"(I64, I32, I64) -> (I32);
    /// `memory.atomic.wait64`: as `MemoryAtomicWait32` with a 64-bit
    /// `expected` and an 8-byte alignment.
    MemoryAtomicWait64 = "memory_atomic_wait64"(I64, I64, I64) -> (I32);
    /// `memory.atomic.notify`: `(address, count) -> number of waiters
    /// woken` (at most `count`, an unsigned `u32`). Traps like the waits on
    /// a misaligned (not a multiple of 4) or out-of-bounds address; on an
    /// unshared memory it wakes nobody and returns 0.
    MemoryAtomicNotify = "memory_atomic_notify"(I64, I32) -> (I32);
    /// `Probe` with the frame pointer of the probe trampoline's own frame:
    /// `(func, offset, trampoline_fp) -> 1 to unwind now, else 0`. Called
    /// instead of `Probe` only by objects compiled with the developer
    /// option `frame_map` (see [`crate::frame_map`]): when it starts an
    /// unwind, the runtime first walks the wasm frames from there.
    ProbeWalk = "probe_walk"(I32, I32, Ptr) -> (I32);
    /// `HostCall` for objects compiled with the developer option
    /// `frame_map`: the same arguments and result; when the call returns
    /// [`HOST_CALL_UNWIND`](crate::checkpoint::HOST_CALL_UNWIND), the
    /// runtime has first walked the wasm frames from the import stub's.
    HostCallWalk = "host_call_walk"(I32, Ptr) -> (I32);
    /// `MemoryAtomicWait32` for objects compiled with the developer
    /// option `frame_map`: when a checkpoint gives the wait up, the
    /// runtime first walks the wasm frames from the waiting body's.
    MemoryAtomicWait32Walk = "memory_atomic_wait32_walk"(I64, I32, I64) -> (I32);
    /// `MemoryAtomicWait64` as [`Builtin::MemoryAtomicWait32Walk`].
    MemoryAtomicWait64Walk = "memory_atomic_wait64_walk"(I64, I64, I64) -> (I32);
    /// A frame unwinding from a site whose record the runtime makes from
    /// its walk (developer option `walk_frames`): `(func)`, in place of
    /// `UnwindFrame` at that frame's position in the unwind.
    UnwindWalked = "unwind_walked"(I32) -> ();
    /// The entry of function `func`'s resume clone (imports included in
    /// the numbering), with the tail calling convention: the object's
    /// clone, or one the runtime compiles for the rewind when the object
    /// left its clones out. Called by a hot body's rewind block only;
    /// raises a host error when no clone can be had.
    ResumeCode = "resume_code"(I32) -> (Ptr);
}

/// Number of builtins (length of the table).
pub const BUILTIN_COUNT: usize = Builtin::ALL.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_matches_discriminants() {
        for (i, b) in Builtin::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i, "{}", b.sig().name);
        }
    }
}
