//! Glue functions between the host and wasm code.
//!
//! - Import stubs (`mvvm_import_{j}`): the wasm-ABI body of an imported
//!   function implemented by the host. They spill the arguments into `u64`
//!   slots, call the `HostCall` builtin, raise its trap if it failed, and
//!   return the results read back from the slots. With a checkpoint policy,
//!   a status of `HOST_CALL_UNWIND` returns zero results instead (the
//!   caller then unwinds); without one the stub is unchanged, and the
//!   runtime never returns that status to it.
//! - Array-call trampolines (`mvvm_array_{i}`): what the host calls to enter
//!   wasm, `extern "C" fn(vmctx, values)`: parameters are read from
//!   `values`, the function is called, results are written back from slot 0.
//! - The probe trampoline (`mvvm_probe`, with a checkpoint policy only):
//!   `preserve_all` glue that calls builtin `Probe`, so a probe's call
//!   clobbers no register of the function that probes.
//!
//! Slot encoding (one `u64` each, see `mvvm_abi::vmctx::VALUE_SLOT_SIZE`):
//! `i32` and `f32` bits zero-extended, `i64`, `f64` bits and references as
//! they are, little-endian. A `v128` takes two consecutive slots, low
//! half first ([`mvvm_abi::ValType::slots`]), so a value's slot index is
//! the sum of the slot counts before it, not its position.

use crate::env::{
    FuncEnv, ModuleInfo, clif_trap, clif_type, slot_flags, slot_layout, slot_offset, to_slot,
    wasm_signature, zero_value,
};
use cranelift_codegen::ir::{
    self, AbiParam, InstBuilder, StackSlotData, StackSlotKind, UserFuncName, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use mvvm_abi::builtins::Builtin;
use mvvm_abi::checkpoint::HOST_CALL_UNWIND;
use mvvm_abi::vmctx::VALUE_SLOT_SIZE;
use mvvm_abi::{FuncType, TrapCode, ValType};

/// Builds the import stub of imported function `index` into `func`.
pub(crate) fn import_stub(
    info: &ModuleInfo<'_>,
    index: u32,
    ty: &FuncType,
    func_id: u32,
    func: &mut ir::Function,
    fb_ctx: &mut FunctionBuilderContext,
) -> Result<(), String> {
    func.signature = wasm_signature(ty, info.call_conv);
    func.name = UserFuncName::user(0, func_id);
    let mut builder = FunctionBuilder::new(func, fb_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    let vmctx = params[0];

    let (param_slots, nparams) = slot_layout(&ty.params);
    let (result_slots, nresults) = slot_layout(&ty.results);
    let slots = nparams.max(nresults).max(1);
    let size = u32::try_from(slots as u64 * u64::from(VALUE_SLOT_SIZE))
        .map_err(|_| "too many parameters".to_string())?;
    // Scalars use `stack_store`/`stack_load` (the code of modules without
    // `v128` stays byte-identical to what it always was). A `v128` slot may
    // sit at an odd multiple of 8, while Cranelift assumes a `stack_load`
    // is aligned for its type and may fold it into an SSE operand that
    // faults when it is not: a `v128` goes through the slot's address with
    // `slot_flags` instead.
    let has_v128 = ty
        .params
        .iter()
        .chain(&ty.results)
        .any(|t| *t == ValType::V128);
    let align_shift = if has_v128 { 4 } else { 3 };
    let slot = builder.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        size,
        align_shift,
    ));
    for ((v, t), k) in params[1..].iter().zip(&ty.params).zip(&param_slots) {
        let wide = to_slot(&mut builder, *v, *t);
        if *t == ValType::V128 {
            let at = builder.ins().stack_addr(types::I64, slot, 0);
            builder
                .ins()
                .store(slot_flags(*t), wide, at, slot_offset(*k));
        } else {
            builder
                .ins()
                .stack_store(types::I64, wide, slot, slot_offset(*k));
        }
    }
    let ptr = builder.ins().stack_addr(types::I64, slot, 0);
    let mut env = FuncEnv::new(info);
    env.set_vmctx(vmctx);
    let idx = builder.ins().iconst(types::I32, i64::from(index as i32));
    // Developer option `frame_map`: the same call, through which the
    // runtime walks the wasm frames from this stub's frame when the host
    // call starts an unwind.
    let host_call = if info.dev.frame_map {
        Builtin::HostCallWalk
    } else {
        Builtin::HostCall
    };
    let status = env
        .call_builtin(&mut builder, host_call, &[idx, ptr])?
        .ok_or_else(|| "host_call has no result".to_string())?;
    let failed = builder.create_block();
    let ok = builder.create_block();
    builder.ins().brif(status, failed, &[], ok, &[]);
    builder.seal_block(failed);
    builder.seal_block(ok);
    builder.set_cold_block(failed);

    builder.switch_to_block(failed);
    if info.policy.is_instrumented() {
        // A checkpoint interrupted the host call: return zero results
        // without raising; the caller's after-call check sees UNWINDING and
        // saves its frame with this call as resume point.
        let unwind = builder.create_block();
        let raise = builder.create_block();
        let is_unwind = builder.ins().icmp_imm_u(
            ir::condcodes::IntCC::Equal,
            status,
            i64::from(HOST_CALL_UNWIND),
        );
        builder.ins().brif(is_unwind, unwind, &[], raise, &[]);
        builder.seal_block(unwind);
        builder.seal_block(raise);
        builder.set_cold_block(unwind);
        builder.set_cold_block(raise);
        builder.switch_to_block(unwind);
        let zeros: Vec<ir::Value> = ty
            .results
            .iter()
            .map(|t| zero_value(&mut builder, *t))
            .collect();
        builder.ins().return_(&zeros);
        builder.switch_to_block(raise);
    }
    env.call_builtin(&mut builder, Builtin::Raise, &[status])?;
    builder.ins().trap(clif_trap(TrapCode::HostError));

    builder.switch_to_block(ok);
    let mut results = Vec::with_capacity(ty.results.len());
    for (t, k) in ty.results.iter().zip(&result_slots) {
        let v = if *t == ValType::V128 {
            builder
                .ins()
                .load(clif_type(*t), slot_flags(*t), ptr, slot_offset(*k))
        } else {
            builder
                .ins()
                .stack_load(types::I64, clif_type(*t), slot, slot_offset(*k))
        };
        results.push(v);
    }
    builder.ins().return_(&results);
    builder.finalize(info.frontend_config);
    Ok(())
}

/// Builds the array-call trampoline of function `index` into `func`.
pub(crate) fn array_trampoline(
    info: &ModuleInfo<'_>,
    index: u32,
    ty: &FuncType,
    func_id: u32,
    func: &mut ir::Function,
    fb_ctx: &mut FunctionBuilderContext,
) -> Result<(), String> {
    // The host calls it with the platform convention; it calls the wasm
    // function with the tail one (`env.call`).
    let mut sig = ir::Signature::new(info.native_call_conv);
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    func.signature = sig;
    func.name = UserFuncName::user(0, func_id);
    let mut builder = FunctionBuilder::new(func, fb_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    let (vmctx, values) = (params[0], params[1]);

    let (param_slots, _) = slot_layout(&ty.params);
    let (result_slots, _) = slot_layout(&ty.results);
    let mut args = Vec::with_capacity(ty.params.len());
    for (t, k) in ty.params.iter().zip(&param_slots) {
        let v = builder
            .ins()
            .load(clif_type(*t), slot_flags(*t), values, slot_offset(*k));
        args.push(v);
    }
    let mut env = FuncEnv::new(info);
    env.set_vmctx(vmctx);
    let results = env.call(&mut builder, index, &args)?;
    for ((v, t), k) in results.iter().zip(&ty.results).zip(&result_slots) {
        let wide = to_slot(&mut builder, *v, *t);
        builder
            .ins()
            .store(slot_flags(*t), wide, values, slot_offset(*k));
    }
    builder.ins().return_(&[]);
    builder.finalize(info.frontend_config);
    Ok(())
}

/// Builds the probe trampoline into `func`: calls builtin `Probe` with the
/// C convention and drops its result; Cranelift's `preserve_all` prologue
/// and epilogue save and restore every register the call may clobber.
pub(crate) fn probe_trampoline(
    info: &ModuleInfo<'_>,
    id: u32,
    func: &mut ir::Function,
    fb_ctx: &mut FunctionBuilderContext,
) -> Result<(), String> {
    func.signature = crate::env::probe_trampoline_signature();
    func.name = UserFuncName::user(0, id);
    let mut builder = FunctionBuilder::new(func, fb_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    let mut env = FuncEnv::new(info);
    env.set_vmctx(params[0]);
    if info.dev.frame_map {
        // Developer option `frame_map`: the runtime walks the wasm frames
        // from this frame's record (caller's frame pointer, return
        // address into the probing body) when it starts an unwind.
        let fp = builder.ins().get_frame_pointer(ir::types::I64);
        env.call_builtin_cold(
            &mut builder,
            Builtin::ProbeWalk,
            &[params[1], params[2], fp],
        )?;
    } else {
        env.call_builtin_cold(&mut builder, Builtin::Probe, &params[1..])?;
    }
    builder.ins().return_(&[]);
    builder.finalize(info.frontend_config);
    Ok(())
}
