//! Atomic memory operators (the threads proposal): atomic loads and
//! stores of every width, the read-modify-write operators and `cmpxchg`,
//! `atomic.fence`, and `memory.atomic.wait32/wait64/notify`.
//!
//! Loads, stores, read-modify-writes and `cmpxchg` are Cranelift's
//! `atomic_load`, `atomic_store`, `atomic_rmw` and `atomic_cas`, which are
//! sequentially consistent on every ISA (`docs/threads.md` says what each
//! ISA emits); the narrow forms (`8`, `16`, `32` bits) access an `I8`,
//! `I16` or `I32` and zero-extend what they return. `atomic.fence` is a
//! `fence`. Wait and notify are builtins (the runtime's parking lot); with
//! a checkpoint policy each wait is a stable point
//! (`StablePointKind::AtomicWait`), unwound from like a call when the
//! runtime gives the wait up for a checkpoint.
//!
//! Addresses: the effective address `addr + offset` (computed without
//! wrapping) must be a multiple of the access size, else the operator traps
//! with [`TrapCode::UnalignedAtomic`]; that check comes first, so an access
//! both misaligned and out of bounds reports the misalignment, as the
//! reference interpreter and Wasmtime do. The bounds then behave as for
//! plain accesses ([`FuncTranslator::heap_addr`]): an aligned access never
//! straddles a page, so it faults as a whole in the guard region.

use super::{FuncTranslator, OpResult};
use crate::CompileError;
use crate::env::{clif_trap, heap};
use cranelift_codegen::ir::{self, AtomicRmwOp, InstBuilder, condcodes::IntCC, types};
use mvvm_abi::TrapCode;
use mvvm_abi::builtins::Builtin;
use wasmparser::{MemArg, Operator};

/// What an atomic memory operator does.
#[derive(Clone, Copy)]
enum Access {
    /// `atomic.load*`.
    Load,
    /// `atomic.store*`.
    Store,
    /// `atomic.rmw*.{add,sub,and,or,xor,xchg}`.
    Rmw(AtomicRmwOp),
    /// `atomic.rmw*.cmpxchg`.
    Cmpxchg,
}

/// An atomic memory operator: what it does, its wasm value type, the type
/// of the memory access (narrower for the `_u` and narrow store forms) and
/// its immediate.
struct AtomicOp {
    access: Access,
    ty: ir::Type,
    mem: ir::Type,
    memarg: MemArg,
}

/// Classifies the atomic memory operators (not the fence, wait or notify).
fn atomic_op(op: &Operator<'_>) -> Option<AtomicOp> {
    use Access::{Cmpxchg, Load, Rmw, Store};
    use AtomicRmwOp::{Add, And, Or, Sub, Xchg, Xor};
    use Operator as O;
    use types::{I8, I16, I32, I64};
    let (access, ty, mem, memarg) = match *op {
        O::I32AtomicLoad { memarg } => (Load, I32, I32, memarg),
        O::I64AtomicLoad { memarg } => (Load, I64, I64, memarg),
        O::I32AtomicLoad8U { memarg } => (Load, I32, I8, memarg),
        O::I32AtomicLoad16U { memarg } => (Load, I32, I16, memarg),
        O::I64AtomicLoad8U { memarg } => (Load, I64, I8, memarg),
        O::I64AtomicLoad16U { memarg } => (Load, I64, I16, memarg),
        O::I64AtomicLoad32U { memarg } => (Load, I64, I32, memarg),

        O::I32AtomicStore { memarg } => (Store, I32, I32, memarg),
        O::I64AtomicStore { memarg } => (Store, I64, I64, memarg),
        O::I32AtomicStore8 { memarg } => (Store, I32, I8, memarg),
        O::I32AtomicStore16 { memarg } => (Store, I32, I16, memarg),
        O::I64AtomicStore8 { memarg } => (Store, I64, I8, memarg),
        O::I64AtomicStore16 { memarg } => (Store, I64, I16, memarg),
        O::I64AtomicStore32 { memarg } => (Store, I64, I32, memarg),

        O::I32AtomicRmwAdd { memarg } => (Rmw(Add), I32, I32, memarg),
        O::I64AtomicRmwAdd { memarg } => (Rmw(Add), I64, I64, memarg),
        O::I32AtomicRmw8AddU { memarg } => (Rmw(Add), I32, I8, memarg),
        O::I32AtomicRmw16AddU { memarg } => (Rmw(Add), I32, I16, memarg),
        O::I64AtomicRmw8AddU { memarg } => (Rmw(Add), I64, I8, memarg),
        O::I64AtomicRmw16AddU { memarg } => (Rmw(Add), I64, I16, memarg),
        O::I64AtomicRmw32AddU { memarg } => (Rmw(Add), I64, I32, memarg),

        O::I32AtomicRmwSub { memarg } => (Rmw(Sub), I32, I32, memarg),
        O::I64AtomicRmwSub { memarg } => (Rmw(Sub), I64, I64, memarg),
        O::I32AtomicRmw8SubU { memarg } => (Rmw(Sub), I32, I8, memarg),
        O::I32AtomicRmw16SubU { memarg } => (Rmw(Sub), I32, I16, memarg),
        O::I64AtomicRmw8SubU { memarg } => (Rmw(Sub), I64, I8, memarg),
        O::I64AtomicRmw16SubU { memarg } => (Rmw(Sub), I64, I16, memarg),
        O::I64AtomicRmw32SubU { memarg } => (Rmw(Sub), I64, I32, memarg),

        O::I32AtomicRmwAnd { memarg } => (Rmw(And), I32, I32, memarg),
        O::I64AtomicRmwAnd { memarg } => (Rmw(And), I64, I64, memarg),
        O::I32AtomicRmw8AndU { memarg } => (Rmw(And), I32, I8, memarg),
        O::I32AtomicRmw16AndU { memarg } => (Rmw(And), I32, I16, memarg),
        O::I64AtomicRmw8AndU { memarg } => (Rmw(And), I64, I8, memarg),
        O::I64AtomicRmw16AndU { memarg } => (Rmw(And), I64, I16, memarg),
        O::I64AtomicRmw32AndU { memarg } => (Rmw(And), I64, I32, memarg),

        O::I32AtomicRmwOr { memarg } => (Rmw(Or), I32, I32, memarg),
        O::I64AtomicRmwOr { memarg } => (Rmw(Or), I64, I64, memarg),
        O::I32AtomicRmw8OrU { memarg } => (Rmw(Or), I32, I8, memarg),
        O::I32AtomicRmw16OrU { memarg } => (Rmw(Or), I32, I16, memarg),
        O::I64AtomicRmw8OrU { memarg } => (Rmw(Or), I64, I8, memarg),
        O::I64AtomicRmw16OrU { memarg } => (Rmw(Or), I64, I16, memarg),
        O::I64AtomicRmw32OrU { memarg } => (Rmw(Or), I64, I32, memarg),

        O::I32AtomicRmwXor { memarg } => (Rmw(Xor), I32, I32, memarg),
        O::I64AtomicRmwXor { memarg } => (Rmw(Xor), I64, I64, memarg),
        O::I32AtomicRmw8XorU { memarg } => (Rmw(Xor), I32, I8, memarg),
        O::I32AtomicRmw16XorU { memarg } => (Rmw(Xor), I32, I16, memarg),
        O::I64AtomicRmw8XorU { memarg } => (Rmw(Xor), I64, I8, memarg),
        O::I64AtomicRmw16XorU { memarg } => (Rmw(Xor), I64, I16, memarg),
        O::I64AtomicRmw32XorU { memarg } => (Rmw(Xor), I64, I32, memarg),

        O::I32AtomicRmwXchg { memarg } => (Rmw(Xchg), I32, I32, memarg),
        O::I64AtomicRmwXchg { memarg } => (Rmw(Xchg), I64, I64, memarg),
        O::I32AtomicRmw8XchgU { memarg } => (Rmw(Xchg), I32, I8, memarg),
        O::I32AtomicRmw16XchgU { memarg } => (Rmw(Xchg), I32, I16, memarg),
        O::I64AtomicRmw8XchgU { memarg } => (Rmw(Xchg), I64, I8, memarg),
        O::I64AtomicRmw16XchgU { memarg } => (Rmw(Xchg), I64, I16, memarg),
        O::I64AtomicRmw32XchgU { memarg } => (Rmw(Xchg), I64, I32, memarg),

        O::I32AtomicRmwCmpxchg { memarg } => (Cmpxchg, I32, I32, memarg),
        O::I64AtomicRmwCmpxchg { memarg } => (Cmpxchg, I64, I64, memarg),
        O::I32AtomicRmw8CmpxchgU { memarg } => (Cmpxchg, I32, I8, memarg),
        O::I32AtomicRmw16CmpxchgU { memarg } => (Cmpxchg, I32, I16, memarg),
        O::I64AtomicRmw8CmpxchgU { memarg } => (Cmpxchg, I64, I8, memarg),
        O::I64AtomicRmw16CmpxchgU { memarg } => (Cmpxchg, I64, I16, memarg),
        O::I64AtomicRmw32CmpxchgU { memarg } => (Cmpxchg, I64, I32, memarg),
        _ => return None,
    };
    Some(AtomicOp {
        access,
        ty,
        mem,
        memarg,
    })
}

impl FuncTranslator<'_, '_, '_> {
    /// Translates an atomic operator; `Ok(false)` if `op` is not one.
    pub(super) fn translate_atomic(&mut self, op: &Operator<'_>, offset: usize) -> OpResult {
        if let Some(a) = atomic_op(op) {
            self.atomic_access(&a)?;
            return Ok(true);
        }
        match *op {
            // Every fence is sequentially consistent (the only ordering
            // the threads proposal has).
            Operator::AtomicFence { .. } => {
                self.builder.ins().fence();
            }
            Operator::MemoryAtomicNotify { memarg } => {
                let count = self.pop()?;
                let addr = self.pop()?;
                let ea = self.effective_address(&memarg, addr, offset)?;
                self.builtin_value(Builtin::MemoryAtomicNotify, &[ea, count])?;
            }
            Operator::MemoryAtomicWait32 { memarg } | Operator::MemoryAtomicWait64 { memarg } => {
                // Developer option `frame_map`: the same wait, through
                // which the runtime walks the wasm frames from this one's
                // when a checkpoint gives the wait up.
                let walk = self.env.info.dev.frame_map;
                let wait32 = matches!(op, Operator::MemoryAtomicWait32 { .. });
                let builtin = match (wait32, walk) {
                    (true, false) => Builtin::MemoryAtomicWait32,
                    (true, true) => Builtin::MemoryAtomicWait32Walk,
                    (false, false) => Builtin::MemoryAtomicWait64,
                    (false, true) => Builtin::MemoryAtomicWait64Walk,
                };
                let timeout = self.pop()?;
                let expected = self.pop()?;
                let addr = self.pop()?;
                let ea = self.effective_address(&memarg, addr, offset)?;
                self.builtin_value(builtin, &[ea, expected, timeout])?;
                // With a policy, a wait is a stable point (recorded before
                // this operator by `checkpoint_begin_stable_point`): the
                // runtime gives up a wait for a checkpoint request and
                // sets `UNWINDING`, and this frame unwinds as after a call.
                // Without one this does nothing.
                self.checkpoint_after_call(u32::try_from(offset).unwrap_or(u32::MAX))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether memory 0 is shared (its `memory.size` then reads the length
    /// atomically).
    pub(super) fn memory_is_shared(&self) -> bool {
        let meta = self.env.info.meta;
        meta.imports
            .iter()
            .find_map(|i| match i.kind {
                mvvm_abi::ImportKind::Memory(m) => Some(m),
                _ => None,
            })
            .or_else(|| meta.memories.first().copied())
            .is_some_and(|m| m.shared)
    }

    /// One atomic load, store, read-modify-write or `cmpxchg`.
    fn atomic_access(&mut self, a: &AtomicOp) -> Result<(), CompileError> {
        let flags = heap();
        let narrow = a.mem != a.ty;
        match a.access {
            Access::Load => {
                let addr = self.pop()?;
                let p = self.atomic_addr(&a.memarg, addr, a.mem.bytes())?;
                let v = self.builder.ins().atomic_load(a.mem, flags, p);
                let v = self.atomic_widen(v, a.ty, narrow);
                self.stack.push(v);
            }
            Access::Store => {
                let value = self.pop()?;
                let addr = self.pop()?;
                let p = self.atomic_addr(&a.memarg, addr, a.mem.bytes())?;
                let v = self.atomic_narrow(value, a.mem, narrow);
                self.builder.ins().atomic_store(flags, v, p);
            }
            Access::Rmw(op) => {
                let value = self.pop()?;
                let addr = self.pop()?;
                let p = self.atomic_addr(&a.memarg, addr, a.mem.bytes())?;
                let v = self.atomic_narrow(value, a.mem, narrow);
                let old = self.builder.ins().atomic_rmw(a.mem, flags, op, p, v);
                let old = self.atomic_widen(old, a.ty, narrow);
                self.stack.push(old);
            }
            Access::Cmpxchg => {
                let replacement = self.pop()?;
                let expected = self.pop()?;
                let addr = self.pop()?;
                let p = self.atomic_addr(&a.memarg, addr, a.mem.bytes())?;
                let (e, r) = if narrow {
                    // The spec compares the zero-extended value loaded
                    // with the whole `expected`: one with bits above the
                    // access width never matches. Comparing only the low
                    // bits would store when it must not; instead, such a
                    // `cmpxchg` swaps in what it expects to find, which
                    // leaves memory as it was whether or not the low bits
                    // match, and still returns the value loaded.
                    let e = self.builder.ins().ireduce(a.mem, expected);
                    let r = self.builder.ins().ireduce(a.mem, replacement);
                    let back = self.builder.ins().uextend(a.ty, e);
                    let fits = self.builder.ins().icmp(IntCC::Equal, back, expected);
                    let r = self.builder.ins().select(fits, r, e);
                    (e, r)
                } else {
                    (expected, replacement)
                };
                let old = self.builder.ins().atomic_cas(flags, p, e, r);
                let old = self.atomic_widen(old, a.ty, narrow);
                self.stack.push(old);
            }
        }
        Ok(())
    }

    /// Zero-extends a narrow access's result to the wasm type.
    fn atomic_widen(&mut self, v: ir::Value, ty: ir::Type, narrow: bool) -> ir::Value {
        if narrow {
            self.builder.ins().uextend(ty, v)
        } else {
            v
        }
    }

    /// Truncates a wasm operand to a narrow access's width.
    fn atomic_narrow(&mut self, v: ir::Value, mem: ir::Type, narrow: bool) -> ir::Value {
        if narrow {
            self.builder.ins().ireduce(mem, v)
        } else {
            v
        }
    }

    /// The native address of an atomic access of `size` bytes at wasm
    /// address `addr` (an i32) plus `memarg.offset`: first the alignment
    /// check (trap `UnalignedAtomic`), then the bounds as for a plain
    /// access.
    fn atomic_addr(
        &mut self,
        memarg: &MemArg,
        addr: ir::Value,
        size: u32,
    ) -> Result<ir::Value, CompileError> {
        if size > 1 {
            // `addr + offset` is a multiple of `size` exactly when
            // `addr + offset % size` is, also modulo 2^32 (a multiple of
            // every size): the check needs neither the 64-bit sum nor the
            // whole offset.
            let low = memarg.offset % u64::from(size);
            let a = if low == 0 {
                addr
            } else {
                self.builder.ins().iadd_imm_u(addr, low as i64)
            };
            let misaligned = self.builder.ins().band_imm_u(a, i64::from(size - 1));
            self.builder
                .ins()
                .trapnz(misaligned, clif_trap(TrapCode::UnalignedAtomic));
        }
        let (ptr, imm) = self.heap_addr(memarg, addr, u64::from(size))?;
        Ok(if imm == 0 {
            ptr
        } else {
            self.builder.ins().iadd_imm_s(ptr, i64::from(imm))
        })
    }

    /// The effective address `addr + offset` as an `I64` (it may exceed 32
    /// bits), for the wait and notify builtins, which check it themselves.
    fn effective_address(
        &mut self,
        memarg: &MemArg,
        addr: ir::Value,
        offset: usize,
    ) -> Result<ir::Value, CompileError> {
        if memarg.target != wasmparser::MemArgTarget::Memory(0) {
            return Err(CompileError::Unsupported {
                feature:
                    "multiple memories (the multi-memory proposal, which MVVM does not support)"
                        .into(),
                offset,
            });
        }
        let wide = self.builder.ins().uextend(types::I64, addr);
        if memarg.offset == 0 {
            return Ok(wide);
        }
        let imm = i64::try_from(memarg.offset)
            .map_err(|_| self.error(format!("static offset {:#x} too large", memarg.offset)))?;
        Ok(self.builder.ins().iadd_imm_s(wide, imm))
    }
}
