//! Exception handling: how a `throw` reaches its handler.
//!
//! Calls inside a `try_table` (or a legacy `try`) body are Cranelift
//! `try_call`s. For each, the compiler records a [`CallSite`] in the
//! function's metadata: the return address of the call, the size of the
//! caller's frame at the call, where the caller's `vmctx` is spilled, and
//! the handlers in the order the wasm semantics try them (innermost
//! `try_table` first, its clauses in order).
//!
//! A throw is a call of builtin `Throw` or `ThrowRef` (itself a `try_call`
//! when inside a handler scope). The runtime walks the frame-pointer chain
//! from the builtin's caller: for a frame at `fp` whose return address `pc`
//! lies in wasm code, it looks up the call site whose return address is
//! `pc`; the frame's stack pointer at that call is `fp - frame_offset`, its
//! `vmctx` is the word at `sp + vmctx_sp_offset`, and with that instance
//! the runtime resolves each handler's tag index to the tag's identity
//! (imported tags share the exporter's) and compares it with the thrown
//! tag's. The first match wins: the runtime sets `sp`, `fp` and the two
//! payload registers of the platform convention (x86-64 `rax`, `rdx`;
//! aarch64 `x0`, `x1`) and jumps to the handler. Frames of other wasm
//! functions are skipped; the walk ends, uncaught, at the first return
//! address that is not in wasm code (the entry trampoline).
//!
//! At a handler, payload register 0 holds the exception's `exnref`
//! handle (never 0) and payload register 1 the address of its payload,
//! one `u64` slot per value (two for a `v128`, low half first), readable
//! until the handler's next call.
//!
//! Exceptions live in a per-store table the runtime owns; an `exnref` is a
//! handle into it. Who may free one is told by [`Delivery`].

use serde::{Deserialize, Serialize};

/// What the handler does with the exception, which tells the runtime
/// whether the exception can still be named after the handler is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// `catch tag l` / `catch_all l`: only the payload (or nothing) reaches
    /// wasm. Unless an `exnref` to it was handed out before, the runtime
    /// frees the exception once its payload is copied for the handler.
    Values,
    /// `catch_ref` / `catch_all_ref`: wasm receives the `exnref`, which it
    /// may copy anywhere; the exception is never freed (no GC).
    Ref,
    /// A legacy `catch` / `catch_all`: the compiler keeps the handle in a
    /// hidden local for `rethrow` and calls `ExnDrop` when the catch body
    /// ends by falling through; the runtime frees it then, unless an
    /// `exnref` to it was handed out.
    Held,
}

/// One handler of a call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handler {
    /// The tag it catches (index in the module's tag space, imports
    /// first), or `None` for a catch-all.
    pub tag: Option<u32>,
    /// What the handler does with the exception.
    pub delivery: Delivery,
    /// Offset of the handler's code from the start of the function's code.
    pub code_offset: u32,
}

/// A call inside a handler scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    /// Offset of the call's return address from the start of the
    /// function's code.
    pub return_offset: u32,
    /// The caller's frame pointer minus its stack pointer at the call: the
    /// handler runs with `sp = fp - frame_offset`.
    pub frame_offset: u32,
    /// Where the caller's `vmctx` is, from that stack pointer.
    pub vmctx_sp_offset: u32,
    /// The handlers, in match order.
    pub handlers: Vec<Handler>,
}
