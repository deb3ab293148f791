//! Trap codes: written into the trap table by the compiler, raised by
//! builtins, reported by the runtime.

use serde::{Deserialize, Serialize};

/// Why wasm execution stopped abnormally. The numeric values are part of the
/// `.aot` format (`TrapCode as u8` in user trap codes and builtin calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TrapCode {
    /// `unreachable` was executed.
    Unreachable = 1,
    /// A load or store outside the memory, or a bulk memory operation out of
    /// bounds.
    MemoryOutOfBounds = 2,
    /// A table access out of bounds (including `call_indirect`).
    TableOutOfBounds = 3,
    /// `call_indirect` through a null entry.
    IndirectCallToNull = 4,
    /// `call_indirect` to a function of another signature.
    BadSignature = 5,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 6,
    /// Integer overflow (`INT_MIN / -1`, or a float-to-int out of range).
    IntegerOverflow = 7,
    /// A float-to-int conversion of NaN.
    BadConversionToInteger = 8,
    /// The wasm stack limit was reached.
    StackOverflow = 9,
    /// A null reference where one is not allowed.
    NullReference = 10,
    /// A host function failed (its message is kept by the runtime).
    HostError = 11,
    /// A wasm exception (`throw`, `throw_ref`) found no handler before it
    /// left the code the host called.
    UncaughtException = 12,
    /// An atomic memory access (threads proposal) whose effective address
    /// is not a multiple of its size. Checked before the bounds: an access
    /// that is both misaligned and out of bounds reports this code, as the
    /// reference interpreter and Wasmtime do.
    UnalignedAtomic = 13,
    /// `memory.atomic.wait32`/`wait64` on a memory that is not shared (no
    /// other thread could ever notify the waiter).
    WaitOnUnsharedMemory = 14,
    /// Another thread of the program ended it (`proc_exit`, a trap, or the
    /// main thread's `_start` returning: wasi-threads): this thread's wasm
    /// was stopped wherever it was. Raised by the runtime only (never in a
    /// trap table), so it changes no `.aot` format.
    Terminated = 15,
}

impl TrapCode {
    /// Every trap code, in numeric order.
    pub const ALL: [TrapCode; 15] = [
        TrapCode::Unreachable,
        TrapCode::MemoryOutOfBounds,
        TrapCode::TableOutOfBounds,
        TrapCode::IndirectCallToNull,
        TrapCode::BadSignature,
        TrapCode::IntegerDivisionByZero,
        TrapCode::IntegerOverflow,
        TrapCode::BadConversionToInteger,
        TrapCode::StackOverflow,
        TrapCode::NullReference,
        TrapCode::HostError,
        TrapCode::UncaughtException,
        TrapCode::UnalignedAtomic,
        TrapCode::WaitOnUnsharedMemory,
        TrapCode::Terminated,
    ];

    /// Decodes a numeric trap code.
    pub fn from_u8(v: u8) -> Option<TrapCode> {
        Self::ALL.iter().copied().find(|c| *c as u8 == v)
    }

    /// The message the spec testsuite expects for this trap.
    pub fn message(self) -> &'static str {
        match self {
            TrapCode::Unreachable => "unreachable",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::TableOutOfBounds => "undefined element",
            TrapCode::IndirectCallToNull => "uninitialized element",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::IntegerDivisionByZero => "integer divide by zero",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::NullReference => "null reference",
            TrapCode::HostError => "host error",
            TrapCode::UncaughtException => "uncaught exception",
            TrapCode::UnalignedAtomic => "unaligned atomic",
            // The reference interpreter's wording (the testsuite has no
            // assertion for it; Wasmtime says "atomic wait on non-shared
            // memory").
            TrapCode::WaitOnUnsharedMemory => "expected shared memory",
            TrapCode::Terminated => "terminated: another thread ended the program",
        }
    }
}

impl std::fmt::Display for TrapCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}
