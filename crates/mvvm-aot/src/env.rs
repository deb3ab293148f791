//! The function environment: every decision about how generated code
//! reaches the instance through the `VMContext`.
//!
//! The operator translator (`translate/`) never computes a vmctx offset
//! itself; it asks this environment for the memory base, a global's cell, a
//! table, a builtin call or a call of another function. The checkpoint
//! instrumentation (`translate/checkpoint.rs`) needs the translator's locals
//! and operand stack, so it lives with the translator and uses this
//! environment only for [`FuncEnv::limits`] and builtin calls.

use cranelift_codegen::ir::{
    self, AbiParam, ArgumentPurpose, Block, BlockArg, BlockCall, ExceptionTableData,
    ExceptionTableItem, ExceptionTag, ExtFuncData, ExternalName, FuncRef, GlobalValueData,
    InstBuilder, MemFlagsData, SigRef, Signature, UserExternalName, Value, types,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::FunctionBuilder;
use mvvm_abi::builtins::{AbiType, BUILTIN_COUNT, Builtin};
use mvvm_abi::vmctx::{
    VALUE_SLOT_SIZE, VMCTX_BUILTINS, VMCTX_FUNCS, VMCTX_GLOBALS, VMCTX_LIMITS, VMCTX_MEMORY,
    VMCTX_TABLES, VMCTX_TYPE_IDS, VMFUNCREF_CODE, VMFUNCREF_SIZE, VMFUNCREF_TYPE_ID,
    VMFUNCREF_VMCTX, VMLIMITS_STACK_LIMIT, VMMEMORY_BASE, VMMEMORY_LENGTH, VMTABLE_ELEMENTS,
    VMTABLE_LENGTH,
};
use mvvm_abi::{FuncType, GlobalType, ModuleMeta, Policy, TrapCode, ValType};
use std::collections::{HashMap, HashSet};

/// The Cranelift trap code used for an MVVM trap code emitted by our own
/// `trap`/`trapz`/`trapnz` instructions.
pub(crate) fn clif_trap(code: TrapCode) -> ir::TrapCode {
    // Every MVVM trap code is in 1..=14, far below Cranelift's reserved
    // range, so `user` always succeeds; fall back to a reserved code that
    // maps back to a trap rather than panicking.
    ir::TrapCode::user(code as u8).unwrap_or(ir::TrapCode::HEAP_OUT_OF_BOUNDS)
}

/// Maps a trap code found in compiled code back to MVVM's.
pub(crate) fn abi_trap(code: ir::TrapCode) -> Option<TrapCode> {
    Some(match code {
        ir::TrapCode::HEAP_OUT_OF_BOUNDS => TrapCode::MemoryOutOfBounds,
        ir::TrapCode::INTEGER_DIVISION_BY_ZERO => TrapCode::IntegerDivisionByZero,
        ir::TrapCode::INTEGER_OVERFLOW => TrapCode::IntegerOverflow,
        ir::TrapCode::BAD_CONVERSION_TO_INTEGER => TrapCode::BadConversionToInteger,
        ir::TrapCode::STACK_OVERFLOW => TrapCode::StackOverflow,
        other => TrapCode::from_u8(other.as_raw().get())?,
    })
}

/// The Cranelift type of a wasm value (references are 64-bit words).
pub(crate) fn clif_type(ty: ValType) -> ir::Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 | ValType::FuncRef | ValType::ExternRef | ValType::ExnRef => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        // SIMD operators bitcast to the lane type they need.
        ValType::V128 => types::I8X16,
    }
}

fn abi_type(ty: AbiType) -> ir::Type {
    match ty {
        AbiType::I32 => types::I32,
        AbiType::I64 | AbiType::Ptr => types::I64,
    }
}

/// The signature of a wasm function: `(vmctx, params...) -> results`.
pub(crate) fn wasm_signature(ty: &FuncType, call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params
        .extend(ty.params.iter().map(|t| AbiParam::new(clif_type(*t))));
    sig.returns
        .extend(ty.results.iter().map(|t| AbiParam::new(clif_type(*t))));
    sig
}

/// The signature of a builtin: `(vmctx, params...) -> results`.
pub(crate) fn builtin_signature(b: Builtin, call_conv: CallConv) -> Signature {
    let s = b.sig();
    let mut sig = Signature::new(call_conv);
    sig.params.push(AbiParam::new(types::I64));
    sig.params
        .extend(s.params.iter().map(|t| AbiParam::new(abi_type(*t))));
    sig.returns
        .extend(s.results.iter().map(|t| AbiParam::new(abi_type(*t))));
    sig
}

/// Signature of the probe trampoline: `preserve_all`, `(vmctx, func,
/// offset)`, no result.
pub(crate) fn probe_trampoline_signature() -> Signature {
    let mut sig = Signature::new(CallConv::PreserveAll);
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I32));
    sig.params.push(AbiParam::new(types::I32));
    sig
}

/// Widens a value to its 64-bit slot representation (array calls, host
/// calls, checkpoint frames): `i32` and `f32` bits zero-extended, the rest
/// as they are. A `v128` stays a 16-byte vector: stored little-endian at
/// its first slot it fills that slot and the next, low half first, as
/// [`ValType::slots`] requires; store it with [`slot_flags`].
pub(crate) fn to_slot(builder: &mut FunctionBuilder<'_>, v: Value, ty: ValType) -> Value {
    match ty {
        ValType::I32 => builder.ins().uextend(types::I64, v),
        ValType::F32 => {
            let bits = builder.ins().bitcast(types::I32, MemFlagsData::new(), v);
            builder.ins().uextend(types::I64, bits)
        }
        _ => v,
    }
}

/// Byte offset of slot `k` in a `u64` value array.
pub(crate) fn slot_offset(k: usize) -> i32 {
    i32::try_from(k as u64 * u64::from(VALUE_SLOT_SIZE)).unwrap_or(i32::MAX)
}

/// The first slot of each value of `types` in a `u64` value array, and the
/// number of slots they take together: a `v128` takes two consecutive
/// slots (see [`ValType::slots`]), every other type one.
pub(crate) fn slot_layout(types: &[ValType]) -> (Vec<usize>, usize) {
    let mut next = 0;
    let firsts = types
        .iter()
        .map(|t| {
            let k = next;
            next += t.slots();
            k
        })
        .collect();
    (firsts, next)
}

/// Flags of a load or store of a value slot of type `ty`.
///
/// Slots are only 8-byte aligned, so a 16-byte `v128` access must not say
/// `aligned`: on x86-64 Cranelift would then fold the load into an SSE
/// instruction's memory operand, which faults unless 16-byte aligned.
/// Every other type keeps [`trusted`] (aligned, never trapping).
pub(crate) fn slot_flags(ty: ValType) -> MemFlagsData {
    match ty {
        ValType::V128 => MemFlagsData::new().with_notrap(),
        _ => trusted(),
    }
}

/// A `v128` constant of the given 16 little-endian bytes (an `I8X16`).
pub(crate) fn v128_const(builder: &mut FunctionBuilder<'_>, bytes: [u8; 16]) -> Value {
    let c = builder
        .func
        .dfg
        .constants
        .insert(ir::ConstantData::from(&bytes[..]));
    builder.ins().vconst(types::I8X16, c)
}

/// The zero value of a wasm type (null for references, all zero bits for
/// `v128`).
pub(crate) fn zero_value(builder: &mut FunctionBuilder<'_>, ty: ValType) -> Value {
    match ty {
        ValType::F32 => builder.ins().f32const(0.0),
        ValType::F64 => builder.ins().f64const(0.0),
        ValType::V128 => v128_const(builder, [0; 16]),
        other => builder.ins().iconst(clif_type(other), 0),
    }
}

/// Flags for loads of the instance's own structures: aligned, never
/// trapping (the runtime guarantees the pointers).
pub(crate) fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Flags for loads of fields that never change while code runs (the vmctx
/// pointers, the memory base, global cell addresses): they may be hoisted
/// and merged.
pub(crate) fn immutable() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Flags of a linear-memory access: little-endian, and trapping with
/// `HEAP_OUT_OF_BOUNDS` so Cranelift records a trap site for the fault.
pub(crate) fn heap() -> MemFlagsData {
    MemFlagsData::new()
        .with_endianness(ir::Endianness::Little)
        .with_trap_code(Some(ir::TrapCode::HEAP_OUT_OF_BOUNDS))
}

/// What every function of a module shares: read-only, used by all
/// compilation workers at once.
pub(crate) struct ModuleInfo<'m> {
    /// The module's metadata.
    pub meta: &'m ModuleMeta,
    /// Global types, imported first.
    pub global_types: Vec<GlobalType>,
    /// Calling convention of every function with the wasm ABI (defined
    /// functions, resume clones, import stubs): [`CallConv::Tail`], the
    /// only one Cranelift can make `return_call`s in, and a tail call must
    /// use the caller's own convention.
    pub call_conv: CallConv,
    /// The platform's convention: builtins (Rust `extern "C"`) and the
    /// array-call trampolines the host calls.
    pub native_call_conv: CallConv,
    /// Per function index: whether the function contains a `return_call`
    /// or `return_call_indirect`, so that its activation may have been
    /// replaced by another function's when it was unwound (see
    /// `FuncTranslator::finish_checkpoints`). Empty without a policy.
    pub tail_calls: Vec<bool>,
    /// The distinct function types a tail call may enter a defined function
    /// with (types of `return_call` targets, types of
    /// `return_call_indirect`): what a rewound function that finds another
    /// function's frame may have to forward to. Empty without a policy.
    pub tail_target_types: Vec<u32>,
    /// What the frontend needs to know about the target.
    pub frontend_config: TargetFrontendConfig,
    /// Per function index: the object module's id of its symbol
    /// (`mvvm_func_i` for defined functions, `mvvm_import_j` for imports).
    pub func_ids: Vec<u32>,
    /// Checkpoint policy of the compilation.
    pub policy: Policy,
    /// The object module's id of the probe trampoline (`mvvm_probe`),
    /// declared when the policy has probes.
    pub probe_trampoline: Option<u32>,
    /// Per function index: the object module's id of its resume clone
    /// (`mvvm_resume_i`), for the functions that have one.
    pub resume_ids: Vec<Option<u32>>,
    /// Per function index: whether the function may be part of a
    /// recursion (see `callgraph`); counter-loop probes only their entries.
    pub recursive: Vec<bool>,
    /// Per function index: whether a call of it may return unwinding for
    /// a checkpoint (see `callgraph::unwinding_functions`); a call of one
    /// that cannot gets no `unwind_state` test. Empty without a policy.
    pub unwinds: Vec<bool>,
    /// Developer options (`crate::frame_labels`); the default everywhere
    /// but in `frame_labels::compile_with`.
    pub dev: crate::frame_labels::DevOptions,
    /// The target architecture (for the developer report's registers).
    pub target: mvvm_abi::TargetArch,
}

impl ModuleInfo<'_> {
    /// Whether a call of function `index` may return with `unwind_state ==
    /// UNWINDING` (yes when unknown).
    pub fn may_unwind(&self, index: u32) -> bool {
        self.unwinds.get(index as usize).copied().unwrap_or(true)
    }

    /// The type of function `index`, if it exists.
    pub fn func_type(&self, index: u32) -> Option<&FuncType> {
        let t = *self.meta.funcs.get(index as usize)?;
        self.meta.types.get(t as usize)
    }

    /// Whether function `index` is imported.
    pub fn is_imported(&self, index: u32) -> bool {
        index < self.meta.num_imported_funcs
    }
}

/// Per-function environment state: the vmctx value and the signatures and
/// function references already imported into the function.
pub(crate) struct FuncEnv<'m> {
    /// Module-wide information.
    pub info: &'m ModuleInfo<'m>,
    vmctx: Option<Value>,
    memory_base: Option<Value>,
    /// The two entry-block loads that compute `memory_base` (the
    /// `VMMemory` pointer, then its base), for
    /// [`FuncEnv::drop_unused_memory_base`].
    memory_base_loads: Option<(ir::Inst, ir::Inst)>,
    limits: Option<Value>,
    sigs: HashMap<u32, SigRef>,
    builtin_sigs: [Option<SigRef>; BUILTIN_COUNT],
    func_refs: HashMap<u32, FuncRef>,
    probe_ref: Option<FuncRef>,
    /// The exception handlers that apply to calls emitted now, innermost
    /// first (set by `translate/exceptions.rs`). While there are any,
    /// calls that may throw are `try_call`s.
    pub handlers: Vec<(ExceptionTag, Block)>,
    /// Handler blocks some `try_call` branches to.
    pub used_handlers: HashSet<Block>,
}

/// What a call calls.
#[derive(Clone, Copy)]
enum CallTarget {
    /// A function of this object.
    Direct(FuncRef),
    /// Code at an address, of a signature.
    Indirect(SigRef, Value),
}

/// An error in the environment (bad index after validation: a bug).
pub(crate) type EnvResult<T> = Result<T, String>;

/// A function reached through a `VMFuncRef`: what calling it takes.
pub(crate) struct Callee {
    /// Its wasm type index (the signature of the call).
    pub ty: u32,
    /// The `*const VMFuncRef`.
    pub funcref: Value,
    /// `VMFuncRef::code`.
    pub code: Value,
    /// `VMFuncRef::vmctx`.
    pub vmctx: Value,
}

impl<'m> FuncEnv<'m> {
    /// A fresh environment for one function.
    pub fn new(info: &'m ModuleInfo<'m>) -> Self {
        FuncEnv {
            info,
            vmctx: None,
            memory_base: None,
            memory_base_loads: None,
            limits: None,
            sigs: HashMap::new(),
            builtin_sigs: [None; BUILTIN_COUNT],
            func_refs: HashMap::new(),
            probe_ref: None,
            handlers: Vec::new(),
            used_handlers: HashSet::new(),
        }
    }

    /// Called in the entry block, after the parameters are bound: records
    /// the vmctx, sets the stack limit check, and loads the memory base once.
    pub fn init(&mut self, builder: &mut FunctionBuilder<'_>, vmctx: Value) -> EnvResult<()> {
        self.vmctx = Some(vmctx);
        // Stack limit: vmctx -> limits -> stack_limit, checked by every
        // prologue (trap STACK_OVERFLOW).
        let flags = builder
            .func
            .dfg
            .mem_flags
            .insert(immutable())
            .map_err(|_| "too many memory flags".to_string())?;
        let base = builder.create_global_value(GlobalValueData::VMContext);
        let limits = builder.create_global_value(GlobalValueData::Load {
            base,
            offset: VMCTX_LIMITS.into(),
            global_type: types::I64,
            flags,
        });
        let plain = builder
            .func
            .dfg
            .mem_flags
            .insert(trusted())
            .map_err(|_| "too many memory flags".to_string())?;
        let limit = builder.create_global_value(GlobalValueData::Load {
            base: limits,
            offset: VMLIMITS_STACK_LIMIT.into(),
            global_type: types::I64,
            flags: plain,
        });
        builder.func.stack_limit = Some(limit);
        if !self.info.meta.memory_types().is_empty() {
            let flags = self.entry_load_flags();
            let mem = builder.ins().load(types::I64, flags, vmctx, VMCTX_MEMORY);
            let base = builder.ins().load(types::I64, flags, mem, VMMEMORY_BASE);
            self.memory_base = Some(base);
            let dfg = &builder.func.dfg;
            if let (Some(a), Some(b)) = (dfg.value_def(mem).inst(), dfg.value_def(base).inst()) {
                self.memory_base_loads = Some((a, b));
            }
        }
        Ok(())
    }

    /// The `*mut VMLimits` of the running thread, loaded from the vmctx
    /// where first asked for (the entry block, for the checkpoint
    /// instrumentation) and reused: the pointer never changes while code
    /// runs, so the load is marked read-only and movable.
    pub fn limits(&mut self, builder: &mut FunctionBuilder<'_>) -> EnvResult<Value> {
        if let Some(l) = self.limits {
            return Ok(l);
        }
        let vmctx = self.vmctx()?;
        let flags = self.entry_load_flags();
        let l = builder.ins().load(types::I64, flags, vmctx, VMCTX_LIMITS);
        self.limits = Some(l);
        Ok(l)
    }

    /// Flags of the loads that `init` (and [`FuncEnv::limits`]) put in the
    /// entry block.
    ///
    /// Without checkpoints they are [`immutable`]: Cranelift treats them as
    /// pure and places them where they are used, hoisted out of loops. With
    /// checkpoints they are read-only but not movable, so they stay in the
    /// entry block: the instrumentation's cold exits (unwind blocks that
    /// return from inside a loop) make Cranelift 0.135's elaborator forget
    /// the enclosing loop for the blocks it visits after them, and a pure
    /// memory-base load would then be recomputed in every iteration.
    fn entry_load_flags(&self) -> MemFlagsData {
        if self.info.policy.is_instrumented() {
            trusted().with_readonly()
        } else {
            immutable()
        }
    }

    /// Removes the entry block's memory-base loads from `func` (the whole,
    /// finalized function) when nothing uses the base.
    ///
    /// Why: with checkpoints the loads are not movable (see
    /// [`FuncEnv::entry_load_flags`]), so Cranelift keeps them in the
    /// entry block even in a function that never touches memory: two
    /// loads on every call of a small wrapper (binary-trees' `malloc` and
    /// `free`, called millions of times). Without a policy the loads are
    /// pure and Cranelift already drops them when unused; this is only
    /// done for instrumented compilations, so uninstrumented code is the
    /// same bytes.
    pub fn drop_unused_memory_base(&self, func: &mut ir::Function) {
        if !self.info.policy.is_instrumented() {
            return;
        }
        let (Some(base), Some((mem_load, base_load))) = (self.memory_base, self.memory_base_loads)
        else {
            return;
        };
        let dfg = &func.dfg;
        let mem = dfg.first_result(mem_load);
        for block in func.layout.blocks() {
            for inst in func.layout.block_insts(block) {
                if inst == base_load {
                    continue;
                }
                let uses = |v: Value| {
                    let v = dfg.resolve_aliases(v);
                    v == base || v == mem
                };
                if dfg.inst_values(inst).any(uses) {
                    return;
                }
            }
        }
        func.layout.remove_inst(base_load);
        func.layout.remove_inst(mem_load);
    }

    /// Records the vmctx of a glue function (trampoline or stub), which
    /// has no stack limit check and no memory base.
    pub fn set_vmctx(&mut self, vmctx: Value) {
        self.vmctx = Some(vmctx);
    }

    /// The current function's vmctx.
    pub fn vmctx(&self) -> EnvResult<Value> {
        self.vmctx
            .ok_or_else(|| "vmctx used before init".to_string())
    }

    /// Loads one of the vmctx's (immutable) pointer fields.
    fn vmctx_field(&self, builder: &mut FunctionBuilder<'_>, offset: i32) -> EnvResult<Value> {
        let vmctx = self.vmctx()?;
        Ok(builder.ins().load(types::I64, immutable(), vmctx, offset))
    }

    // ---- memory ----------------------------------------------------------

    /// Base address of linear memory 0 (loaded once, in the entry block).
    pub fn memory_base(&self) -> EnvResult<Value> {
        self.memory_base
            .ok_or_else(|| "memory access in a module without memory".to_string())
    }

    /// Current length in bytes of memory 0 (an I64; changes on grow).
    pub fn memory_length(&self, builder: &mut FunctionBuilder<'_>) -> EnvResult<Value> {
        let mem = self.vmctx_field(builder, VMCTX_MEMORY)?;
        Ok(builder
            .ins()
            .load(types::I64, trusted(), mem, VMMEMORY_LENGTH))
    }

    /// [`FuncEnv::memory_length`] read with an atomic (sequentially
    /// consistent) load: `memory.size` of a shared memory, whose length
    /// another thread may grow at any time (the runtime stores it
    /// atomically).
    pub fn memory_length_atomic(&self, builder: &mut FunctionBuilder<'_>) -> EnvResult<Value> {
        let mem = self.vmctx_field(builder, VMCTX_MEMORY)?;
        let field = builder.ins().iadd_imm_s(mem, i64::from(VMMEMORY_LENGTH));
        Ok(builder.ins().atomic_load(types::I64, trusted(), field))
    }

    // ---- globals ---------------------------------------------------------

    /// Address of global `index`'s cell, and the global's type.
    pub fn global_cell(
        &self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
    ) -> EnvResult<(Value, ValType)> {
        let ty = self
            .info
            .global_types
            .get(index as usize)
            .ok_or_else(|| format!("global {index} out of range"))?
            .ty;
        let globals = self.vmctx_field(builder, VMCTX_GLOBALS)?;
        let offset = i32::try_from(u64::from(index) * 8)
            .map_err(|_| format!("global {index} out of range"))?;
        let cell = builder.ins().load(types::I64, immutable(), globals, offset);
        Ok((cell, ty))
    }

    // ---- tables ----------------------------------------------------------

    /// Address of the `VMTable` of table `index`.
    pub fn table(&self, builder: &mut FunctionBuilder<'_>, index: u32) -> EnvResult<Value> {
        let tables = self.vmctx_field(builder, VMCTX_TABLES)?;
        let offset = i32::try_from(u64::from(index) * 8)
            .map_err(|_| format!("table {index} out of range"))?;
        Ok(builder.ins().load(types::I64, immutable(), tables, offset))
    }

    /// Address of element `idx` (an i32) of table `index`, after the bounds
    /// check (trap `TableOutOfBounds`).
    pub fn table_element_addr(
        &self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
        idx: Value,
    ) -> EnvResult<Value> {
        let table = self.table(builder, index)?;
        let length = builder
            .ins()
            .load(types::I64, trusted(), table, VMTABLE_LENGTH);
        let idx64 = builder.ins().uextend(types::I64, idx);
        let oob = builder.ins().icmp(
            ir::condcodes::IntCC::UnsignedGreaterThanOrEqual,
            idx64,
            length,
        );
        builder
            .ins()
            .trapnz(oob, clif_trap(TrapCode::TableOutOfBounds));
        let elements = builder
            .ins()
            .load(types::I64, trusted(), table, VMTABLE_ELEMENTS);
        let scaled = builder.ins().ishl_imm_u(idx64, 3);
        Ok(builder.ins().iadd(elements, scaled))
    }

    /// Current length of table `index` (an I64).
    pub fn table_length(&self, builder: &mut FunctionBuilder<'_>, index: u32) -> EnvResult<Value> {
        let table = self.table(builder, index)?;
        Ok(builder
            .ins()
            .load(types::I64, trusted(), table, VMTABLE_LENGTH))
    }

    // ---- functions -------------------------------------------------------

    /// `ref.func index`: the address of the function's `VMFuncRef`.
    pub fn func_ref(&self, builder: &mut FunctionBuilder<'_>, index: u32) -> EnvResult<Value> {
        let funcs = self.vmctx_field(builder, VMCTX_FUNCS)?;
        let offset = i64::from(index) * i64::from(VMFUNCREF_SIZE);
        Ok(builder.ins().iadd_imm_s(funcs, offset))
    }

    /// The signature of wasm type `ty`, imported into the function.
    pub fn wasm_sig(&mut self, builder: &mut FunctionBuilder<'_>, ty: u32) -> EnvResult<SigRef> {
        if let Some(s) = self.sigs.get(&ty) {
            return Ok(*s);
        }
        let fty = self
            .info
            .meta
            .types
            .get(ty as usize)
            .ok_or_else(|| format!("type {ty} out of range"))?;
        let sig = builder.import_signature(wasm_signature(fty, self.info.call_conv));
        self.sigs.insert(ty, sig);
        Ok(sig)
    }

    /// A reference to the object module's function `id` (defined in this
    /// object, so called directly).
    fn object_func(builder: &mut FunctionBuilder<'_>, id: u32, signature: SigRef) -> FuncRef {
        let name = builder
            .func
            .declare_imported_user_function(UserExternalName::new(0, id));
        builder.import_function(ExtFuncData {
            name: ExternalName::User(name),
            signature,
            colocated: true,
            patchable: false,
        })
    }

    /// The signature of function `index`.
    fn func_sig(&mut self, builder: &mut FunctionBuilder<'_>, index: u32) -> EnvResult<SigRef> {
        let ty = *self
            .info
            .meta
            .funcs
            .get(index as usize)
            .ok_or_else(|| format!("function {index} out of range"))?;
        self.wasm_sig(builder, ty)
    }

    fn direct_ref(&mut self, builder: &mut FunctionBuilder<'_>, index: u32) -> EnvResult<FuncRef> {
        if let Some(f) = self.func_refs.get(&index) {
            return Ok(*f);
        }
        let signature = self.func_sig(builder, index)?;
        let id = *self
            .info
            .func_ids
            .get(index as usize)
            .ok_or_else(|| format!("function {index} has no symbol"))?;
        let f = Self::object_func(builder, id, signature);
        self.func_refs.insert(index, f);
        Ok(f)
    }

    /// Tail-calls the resume clone of function `index` with `args` (vmctx
    /// first): the rewind entry of a function that has a clone. The clone's
    /// address comes from builtin `ResumeCode`, which returns the object's
    /// clone or one the runtime compiled for this rewind ("Resume clones
    /// compiled on demand" in CHECKPOINT.md): the hot body never names the
    /// clone's symbol, so an object may leave clones out. Only rewinds run
    /// this (once per rewound frame), so the builtin call costs nothing the
    /// program notices. A tail call, so the hot body leaves no frame on the
    /// stack of the rewound program. Ends the block.
    pub fn tail_call_resume_clone(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
        args: &[Value],
    ) -> EnvResult<()> {
        let signature = self.func_sig(builder, index)?;
        let func = builder.ins().iconst(types::I32, i64::from(index));
        let code = self
            .call_builtin_cold(builder, Builtin::ResumeCode, &[func])?
            .ok_or("builtin ResumeCode returns no address")?;
        builder.ins().return_call_indirect(signature, code, args);
        Ok(())
    }

    /// Calls the probe trampoline: `(func, offset)`, nothing clobbered, no
    /// result (see `mvvm_abi::object::PROBE_TRAMPOLINE_SYMBOL`).
    pub fn call_probe(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        func: Value,
        offset: Value,
    ) -> EnvResult<()> {
        let vmctx = self.vmctx()?;
        let f = match self.probe_ref {
            Some(f) => f,
            None => {
                let id = self
                    .info
                    .probe_trampoline
                    .ok_or("probe without a probe trampoline")?;
                let signature = builder.import_signature(probe_trampoline_signature());
                let f = Self::object_func(builder, id, signature);
                self.probe_ref = Some(f);
                f
            }
        };
        builder.ins().call(f, &[vmctx, func, offset]);
        Ok(())
    }

    /// The code and vmctx of imported function `index`, from its
    /// `VMFuncRef` in `vmctx.funcs` (fixed while code runs).
    fn import_callee(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
    ) -> EnvResult<Callee> {
        let ty = *self
            .info
            .meta
            .funcs
            .get(index as usize)
            .ok_or_else(|| format!("function {index} out of range"))?;
        let funcref = self.func_ref(builder, index)?;
        let code = builder
            .ins()
            .load(types::I64, immutable(), funcref, VMFUNCREF_CODE);
        let vmctx = builder
            .ins()
            .load(types::I64, immutable(), funcref, VMFUNCREF_VMCTX);
        Ok(Callee {
            ty,
            funcref,
            code,
            vmctx,
        })
    }

    /// `call index`: a direct call for a defined function, a call through
    /// `vmctx.funcs[index]` for an imported one. Returns the results.
    pub fn call(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
        args: &[Value],
    ) -> EnvResult<Vec<Value>> {
        if self.info.is_imported(index) {
            let callee = self.import_callee(builder, index)?;
            return self.call_callee(builder, &callee, args);
        }
        let vmctx = self.vmctx()?;
        let f = self.direct_ref(builder, index)?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(vmctx);
        full.extend_from_slice(args);
        self.emit_call(builder, CallTarget::Direct(f), &full)
    }

    /// Emits a call of `target` with `args`: a plain call, or a
    /// `try_call` to the current handlers when there are any (the normal
    /// return then continues in a new block, the current one after this).
    /// Returns the results.
    fn emit_call(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        target: CallTarget,
        args: &[Value],
    ) -> EnvResult<Vec<Value>> {
        if self.handlers.is_empty() {
            let inst = match target {
                CallTarget::Direct(f) => builder.ins().call(f, args),
                CallTarget::Indirect(sig, code) => builder.ins().call_indirect(sig, code, args),
            };
            return Ok(builder.inst_results(inst).to_vec());
        }
        let vmctx = self.vmctx()?;
        let sig = match target {
            CallTarget::Direct(f) => builder.func.dfg.ext_funcs[f].signature,
            CallTarget::Indirect(sig, _) => sig,
        };
        let returns: Vec<ir::Type> = builder.func.dfg.signatures[sig]
            .returns
            .iter()
            .map(|p| p.value_type)
            .collect();
        let normal = builder.create_block();
        for t in &returns {
            builder.append_block_param(normal, *t);
        }
        let pool = &mut builder.func.dfg.value_lists;
        let rets = (0..returns.len()).map(|i| BlockArg::TryCallRet(i as u32));
        let normal_call = BlockCall::new(normal, rets, pool);
        let mut items = Vec::with_capacity(self.handlers.len() + 1);
        items.push(ExceptionTableItem::Context(vmctx));
        for (tag, block) in &self.handlers {
            let exn = [BlockArg::TryCallExn(0), BlockArg::TryCallExn(1)];
            items.push(ExceptionTableItem::Tag(
                *tag,
                BlockCall::new(*block, exn, pool),
            ));
            self.used_handlers.insert(*block);
        }
        let table = builder
            .func
            .dfg
            .exception_tables
            .push(ExceptionTableData::new(sig, normal_call, items));
        match target {
            CallTarget::Direct(f) => builder.ins().try_call(f, args, table),
            CallTarget::Indirect(_, code) => builder.ins().try_call_indirect(code, args, table),
        };
        builder.seal_block(normal);
        builder.switch_to_block(normal);
        Ok(builder.block_params(normal).to_vec())
    }

    /// `return_call index`: a tail call, direct for a defined function,
    /// through `vmctx.funcs[index]` for an imported one. Ends the block.
    pub fn return_call(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        index: u32,
        args: &[Value],
    ) -> EnvResult<()> {
        if self.info.is_imported(index) {
            let callee = self.import_callee(builder, index)?;
            return self.return_call_callee(builder, &callee, args);
        }
        let vmctx = self.vmctx()?;
        let f = self.direct_ref(builder, index)?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(vmctx);
        full.extend_from_slice(args);
        builder.ins().return_call(f, &full);
        Ok(())
    }

    /// The callee of `call_indirect (type ty) (table table)` at element
    /// `idx`, after the checks: in bounds (`TableOutOfBounds`), not null
    /// (`IndirectCallToNull`), of the expected type (`BadSignature`).
    pub fn indirect_callee(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        ty: u32,
        table: u32,
        idx: Value,
    ) -> EnvResult<Callee> {
        let addr = self.table_element_addr(builder, table, idx)?;
        let funcref = builder.ins().load(types::I64, trusted(), addr, 0);
        builder
            .ins()
            .trapz(funcref, clif_trap(TrapCode::IndirectCallToNull));
        let actual = builder
            .ins()
            .load(types::I32, trusted(), funcref, VMFUNCREF_TYPE_ID);
        let expected = self.type_id(builder, ty)?;
        let mismatch = builder
            .ins()
            .icmp(ir::condcodes::IntCC::NotEqual, actual, expected);
        builder
            .ins()
            .trapnz(mismatch, clif_trap(TrapCode::BadSignature));
        let code = builder
            .ins()
            .load(types::I64, trusted(), funcref, VMFUNCREF_CODE);
        let vmctx = builder
            .ins()
            .load(types::I64, trusted(), funcref, VMFUNCREF_VMCTX);
        Ok(Callee {
            ty,
            funcref,
            code,
            vmctx,
        })
    }

    /// The runtime's id of wasm type `ty` (what `VMFuncRef::type_id` of a
    /// function of that type holds; equal for structurally equal types).
    pub fn type_id(&self, builder: &mut FunctionBuilder<'_>, ty: u32) -> EnvResult<Value> {
        let type_ids = self.vmctx_field(builder, VMCTX_TYPE_IDS)?;
        let offset =
            i32::try_from(u64::from(ty) * 4).map_err(|_| format!("type {ty} out of range"))?;
        Ok(builder
            .ins()
            .load(types::I32, immutable(), type_ids, offset))
    }

    /// Calls `callee` with `args` (its vmctx first); returns the results.
    pub fn call_callee(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        callee: &Callee,
        args: &[Value],
    ) -> EnvResult<Vec<Value>> {
        let sig = self.wasm_sig(builder, callee.ty)?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(callee.vmctx);
        full.extend_from_slice(args);
        self.emit_call(builder, CallTarget::Indirect(sig, callee.code), &full)
    }

    /// Tail-calls `callee` with `args` (its vmctx first). Ends the block.
    pub fn return_call_callee(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        callee: &Callee,
        args: &[Value],
    ) -> EnvResult<()> {
        let sig = self.wasm_sig(builder, callee.ty)?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(callee.vmctx);
        full.extend_from_slice(args);
        builder.ins().return_call_indirect(sig, callee.code, &full);
        Ok(())
    }

    /// `call_indirect (type ty) (table table)` with callee index `idx`.
    pub fn call_indirect(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        ty: u32,
        table: u32,
        idx: Value,
        args: &[Value],
    ) -> EnvResult<Vec<Value>> {
        let callee = self.indirect_callee(builder, ty, table, idx)?;
        self.call_callee(builder, &callee, args)
    }

    /// Whether `funcref` (a `*const VMFuncRef`) is one of this instance's
    /// imported functions: its address lies in the first
    /// `num_imported_funcs` entries of `vmctx.funcs`. An `i8` truth value.
    pub fn is_own_import(
        &self,
        builder: &mut FunctionBuilder<'_>,
        funcref: Value,
    ) -> EnvResult<Value> {
        let funcs = self.vmctx_field(builder, VMCTX_FUNCS)?;
        let delta = builder.ins().isub(funcref, funcs);
        let size = i64::from(self.info.meta.num_imported_funcs) * i64::from(VMFUNCREF_SIZE);
        Ok(builder
            .ins()
            .icmp_imm_u(ir::condcodes::IntCC::UnsignedLessThan, delta, size))
    }

    /// The `VMFuncRef` of function `func` (a dynamic `i32` index) in
    /// `vmctx.funcs`; the caller guarantees the index is in range.
    pub fn func_ref_dynamic(
        &self,
        builder: &mut FunctionBuilder<'_>,
        func: Value,
    ) -> EnvResult<Value> {
        let funcs = self.vmctx_field(builder, VMCTX_FUNCS)?;
        let wide = builder.ins().uextend(types::I64, func);
        let scaled = builder.ins().imul_imm_u(wide, i64::from(VMFUNCREF_SIZE));
        Ok(builder.ins().iadd(funcs, scaled))
    }

    // ---- builtins --------------------------------------------------------

    /// Calls builtin `b` with `args` (after vmctx); returns its result.
    pub fn call_builtin(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        b: Builtin,
        args: &[Value],
    ) -> EnvResult<Option<Value>> {
        self.call_builtin_with(builder, b, args, immutable())
    }

    /// [`FuncEnv::call_builtin`] from a cold block: the loads of the
    /// builtin's address stay in that block instead of being hoisted (with
    /// a register held) into the hot code around it.
    pub fn call_builtin_cold(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        b: Builtin,
        args: &[Value],
    ) -> EnvResult<Option<Value>> {
        self.call_builtin_with(builder, b, args, trusted().with_readonly())
    }

    /// Calls builtin `b`, which may throw a wasm exception (`Throw`,
    /// `ThrowRef`), with the current handlers (see `emit_call`).
    pub fn call_builtin_throwing(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        b: Builtin,
        args: &[Value],
    ) -> EnvResult<Option<Value>> {
        let (sig, ptr) = self.builtin_address(builder, b, trusted().with_readonly())?;
        let vmctx = self.vmctx()?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(vmctx);
        full.extend_from_slice(args);
        let results = self.emit_call(builder, CallTarget::Indirect(sig, ptr), &full)?;
        Ok(results.first().copied())
    }

    /// The signature and address of builtin `b`.
    fn builtin_address(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        b: Builtin,
        flags: MemFlagsData,
    ) -> EnvResult<(SigRef, Value)> {
        let vmctx = self.vmctx()?;
        // `Throw` and `ThrowRef` never return normally. Declaring them
        // `preserve_all` (whose integer arguments travel in the same
        // registers as the C convention's on x86-64 and aarch64) makes
        // Cranelift assume every register clobbered on a `try_call`'s
        // exceptional edge, as for a wasm callee: the runtime restores no
        // register when it enters a handler. With the C convention,
        // values would stay in callee-saved registers across the edge.
        let call_conv = match b {
            Builtin::Throw | Builtin::ThrowRef => CallConv::PreserveAll,
            _ => self.info.native_call_conv,
        };
        let sig = match self.builtin_sigs[b as usize] {
            Some(s) => s,
            None => {
                let s = builder.import_signature(builtin_signature(b, call_conv));
                self.builtin_sigs[b as usize] = Some(s);
                s
            }
        };
        let table = builder.ins().load(types::I64, flags, vmctx, VMCTX_BUILTINS);
        let ptr = builder.ins().load(types::I64, flags, table, (b as i32) * 8);
        Ok((sig, ptr))
    }

    fn call_builtin_with(
        &mut self,
        builder: &mut FunctionBuilder<'_>,
        b: Builtin,
        args: &[Value],
        flags: MemFlagsData,
    ) -> EnvResult<Option<Value>> {
        let (sig, ptr) = self.builtin_address(builder, b, flags)?;
        let vmctx = self.vmctx()?;
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(vmctx);
        full.extend_from_slice(args);
        let inst = builder.ins().call_indirect(sig, ptr, &full);
        Ok(builder.inst_results(inst).first().copied())
    }
}
