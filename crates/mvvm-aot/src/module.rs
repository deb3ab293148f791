//! Validation of the module and its translation into [`ModuleMeta`].
//!
//! One pass over the module's sections feeds wasmparser's validator and
//! collects everything the runtime needs besides code. Function bodies are
//! not validated here: each is handed, with its validator, to the worker
//! that compiles it, so validation of code runs in parallel too.

use crate::CompileError;
use mvvm_abi::names::FuncNames;
use mvvm_abi::{
    ConstExpr, ConstOp, DataSegment, ElemSegment, Export, ExportKind, FuncType, GlobalDef,
    GlobalType, Import, ImportKind, Limits, MemoryType, ModuleMeta, SegmentMode, TableType,
    TargetArch, ValType,
};
use sha2::{Digest, Sha256};
use wasmparser::{
    AbstractHeapType, ExternalKind, FuncToValidate, FunctionBody, HeapType, KnownCustom, Name,
    Operator, Parser, Payload, RefType, TypeRef, ValidPayload, Validator, ValidatorResources,
    WasmFeatures,
};

/// The WebAssembly features MVVM compiles: WebAssembly 2.0 (mutable
/// globals, sign extension, saturating conversions, multi-value, bulk
/// memory, reference types, fixed-width SIMD) plus relaxed SIMD, which is
/// compiled with deterministic semantics so that every ISA computes the
/// same values (see `docs/simd.md`), extended constant expressions
/// (integer arithmetic in initialisers and segment offsets) and tail calls
/// (`return_call`, `return_call_indirect`; `return_call_ref` needs
/// function references, which stay out), and exception handling, both the
/// `try_table`/`exnref` form and the legacy `try`/`catch`/`delegate` one
/// that older toolchains emit (see `translate/exceptions.rs`), and threads:
/// shared memories and the atomic operators (`translate/atomics.rs`,
/// `docs/threads.md`); the shared-everything extension (shared globals,
/// tables and types) stays out.
pub(crate) fn supported_features() -> WasmFeatures {
    WasmFeatures::WASM2
        .union(WasmFeatures::RELAXED_SIMD)
        .union(WasmFeatures::EXTENDED_CONST)
        .union(WasmFeatures::TAIL_CALL)
        .union(WasmFeatures::EXCEPTIONS)
        .union(WasmFeatures::LEGACY_EXCEPTIONS)
        .union(WasmFeatures::THREADS)
}

/// A defined function waiting to be validated and compiled.
pub(crate) struct PendingFunc<'a> {
    /// Its body, with module-relative offsets.
    pub body: FunctionBody<'a>,
    /// Its validator (consumed by the worker).
    pub validator: FuncToValidate<ValidatorResources>,
}

impl PendingFunc<'_> {
    /// The same function, waiting again: to compile it once more (each
    /// batch of resume clones compiled after one preparation takes its
    /// own copies).
    pub(crate) fn duplicate(&self) -> Self {
        PendingFunc {
            body: self.body.clone(),
            validator: FuncToValidate {
                resources: self.validator.resources.clone(),
                index: self.validator.index,
                ty: self.validator.ty,
                features: self.validator.features,
            },
        }
    }
}

/// The result of [`parse`].
pub(crate) struct ParsedModule<'a> {
    /// Metadata; `call_sites` and `array_trampolines` are filled later.
    pub meta: ModuleMeta,
    /// Defined functions in index order.
    pub funcs: Vec<PendingFunc<'a>>,
}

/// Options recorded in the metadata.
pub(crate) struct MetaHeader {
    pub target: TargetArch,
    pub cpu_features: Vec<String>,
    pub opt_level: u8,
    pub policy: mvvm_abi::Policy,
}

fn unsupported(feature: impl Into<String>, offset: u64) -> CompileError {
    CompileError::Unsupported {
        feature: feature.into(),
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
    }
}

/// Converts a wasmparser value type.
pub(crate) fn val_type(ty: wasmparser::ValType, offset: u64) -> Result<ValType, CompileError> {
    Ok(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => ref_type(r, offset)?,
    })
}

fn ref_type(r: RefType, offset: u64) -> Result<ValType, CompileError> {
    if r == RefType::FUNCREF {
        Ok(ValType::FuncRef)
    } else if r == RefType::EXTERNREF {
        Ok(ValType::ExternRef)
    } else if r == RefType::EXNREF {
        Ok(ValType::ExnRef)
    } else {
        Err(unsupported(format!("reference type {r}"), offset))
    }
}

fn heap_type(h: HeapType, offset: u64) -> Result<ValType, CompileError> {
    match h {
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Func,
        } => Ok(ValType::FuncRef),
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Extern,
        } => Ok(ValType::ExternRef),
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Exn,
        } => Ok(ValType::ExnRef),
        other => Err(unsupported(format!("heap type {other:?}"), offset)),
    }
}

fn limits(min: u64, max: Option<u64>) -> Limits {
    Limits { min, max }
}

fn table_type(t: wasmparser::TableType, offset: u64) -> Result<TableType, CompileError> {
    if t.table64 || t.shared {
        return Err(unsupported("64-bit or shared tables", offset));
    }
    Ok(TableType {
        elem: ref_type(t.element_type, offset)?,
        limits: limits(t.initial, t.maximum),
    })
}

/// Converts a memory type. A shared memory (threads) keeps its flag: the
/// runtime matches imports on it and lets `memory.atomic.wait*` block only
/// there; validation already required its maximum.
fn memory_type(m: wasmparser::MemoryType, offset: u64) -> Result<MemoryType, CompileError> {
    if m.memory64 || m.page_size_log2.is_some() {
        return Err(unsupported("64-bit or custom-page-size memories", offset));
    }
    Ok(MemoryType {
        limits: limits(m.initial, m.maximum),
        shared: m.shared,
    })
}

fn global_type(g: wasmparser::GlobalType, offset: u64) -> Result<GlobalType, CompileError> {
    if g.shared {
        return Err(unsupported("shared globals", offset));
    }
    Ok(GlobalType {
        ty: val_type(g.content_type, offset)?,
        mutable: g.mutable,
    })
}

/// The type index of an exception tag (the only kind of tag there is).
fn tag_type(t: wasmparser::TagType, offset: u64) -> Result<u32, CompileError> {
    match t.kind {
        wasmparser::TagKind::Exception => Ok(t.func_type_idx),
        #[allow(unreachable_patterns)]
        _ => Err(unsupported("non-exception tags", offset)),
    }
}

/// Converts a constant expression (already validated).
///
/// WebAssembly 2.0 allows exactly one constant, `ref.null`, `ref.func` or
/// `global.get`, then `end`: those keep their one-instruction variants.
/// The extended-const proposal adds `i32`/`i64` `add`, `sub` and `mul`;
/// a longer expression becomes [`ConstExpr::Extended`], its instructions
/// in order, for the runtime to evaluate at instantiation (it depends on
/// imported globals).
fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, CompileError> {
    let mut reader = expr.get_operators_reader();
    let mut ops: Vec<(Operator<'_>, u64)> = Vec::new();
    loop {
        let (op, op_offset) = reader
            .read_with_offset()
            .map_err(|e| CompileError::invalid(&e))?;
        if let Operator::End = op {
            break;
        }
        ops.push((op, op_offset));
    }
    if !reader.eof() {
        let offset = reader.original_position();
        return Err(CompileError::Invalid {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            message: "constant expression continues after its end".into(),
        });
    }
    if let [(op, op_offset)] = ops.as_slice() {
        return Ok(match *op {
            Operator::I32Const { value } => ConstExpr::I32(value),
            Operator::I64Const { value } => ConstExpr::I64(value),
            Operator::F32Const { value } => ConstExpr::F32(value.bits()),
            Operator::F64Const { value } => ConstExpr::F64(value.bits()),
            Operator::V128Const { value } => ConstExpr::V128(*value.bytes()),
            Operator::RefNull { hty } => ConstExpr::RefNull(heap_type(hty, *op_offset)?),
            Operator::RefFunc { function_index } => ConstExpr::RefFunc(function_index),
            Operator::GlobalGet { global_index } => ConstExpr::GlobalGet(global_index),
            ref other => {
                return Err(unsupported(
                    format!("constant instruction {other:?}"),
                    *op_offset,
                ));
            }
        });
    }
    let mut extended = Vec::with_capacity(ops.len());
    for (op, op_offset) in &ops {
        extended.push(match *op {
            Operator::I32Const { value } => ConstOp::I32Const(value),
            Operator::I64Const { value } => ConstOp::I64Const(value),
            Operator::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
            Operator::I32Add => ConstOp::I32Add,
            Operator::I32Sub => ConstOp::I32Sub,
            Operator::I32Mul => ConstOp::I32Mul,
            Operator::I64Add => ConstOp::I64Add,
            Operator::I64Sub => ConstOp::I64Sub,
            Operator::I64Mul => ConstOp::I64Mul,
            _ => {
                return Err(unsupported(
                    "this instruction in an extended constant expression",
                    *op_offset,
                ));
            }
        });
    }
    Ok(ConstExpr::Extended(extended))
}

/// Validates the module's sections and builds its metadata.
pub(crate) fn parse<'a>(
    wasm: &'a [u8],
    header: MetaHeader,
) -> Result<ParsedModule<'a>, CompileError> {
    let mut validator = Validator::new_with_features(supported_features());
    let mut meta = ModuleMeta {
        producer: crate::producer(),
        target: header.target,
        cpu_features: header.cpu_features,
        opt_level: header.opt_level,
        policy: header.policy,
        wasm_sha256: Sha256::digest(wasm).into(),
        types: Vec::new(),
        imports: Vec::new(),
        funcs: Vec::new(),
        num_imported_funcs: 0,
        tables: Vec::new(),
        memories: Vec::new(),
        globals: Vec::new(),
        tags: Vec::new(),
        exports: Vec::new(),
        start: None,
        elems: Vec::new(),
        data: Vec::new(),
        func_names: Default::default(),
        array_trampolines: Vec::new(),
        call_sites: Vec::new(),
        frame_slots: 0,
        checkpoint_tables: Default::default(),
        trap_sites: Default::default(),
    };
    let mut funcs = Vec::new();
    let mut names = Vec::new();

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| CompileError::invalid(&e))?;
        let valid = validator
            .payload(&payload)
            .map_err(|e| CompileError::invalid(&e))?;
        if let ValidPayload::Func(validator, body) = valid {
            funcs.push(PendingFunc { body, validator });
            continue;
        }
        if let Payload::MemorySection(reader) = &payload {
            let range = reader.range();
            let start = usize::try_from(range.start).unwrap_or(usize::MAX);
            let end = usize::try_from(range.end).unwrap_or(usize::MAX);
            let bytes = wasm.get(start..end).unwrap_or_default();
            check_memory_limits(bytes, range.start)?;
        }
        read_section(&mut meta, &mut names, payload)?;
    }
    names.sort_by_key(|(i, _)| *i);
    names.dedup_by_key(|(i, _)| *i);
    meta.func_names = FuncNames::from_names(&names).map_err(|e| CompileError::Object {
        step: "encode the function names".into(),
        source: Box::new(e),
    })?;
    Ok(ParsedModule { meta, funcs })
}

/// Records what one (already validated) section contributes to `meta`.
/// Function names go to `names`, `(index, name)` in the order read.
fn read_section(
    meta: &mut ModuleMeta,
    names: &mut Vec<(u32, String)>,
    payload: Payload<'_>,
) -> Result<(), CompileError> {
    let inv = |e: wasmparser::BinaryReaderError| CompileError::invalid(&e);
    match payload {
        Payload::TypeSection(reader) => {
            let offset = reader.range().start;
            for group in reader {
                for sub in group.map_err(inv)?.into_types() {
                    let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner else {
                        return Err(unsupported("GC types", offset));
                    };
                    let params = f
                        .params()
                        .iter()
                        .map(|t| val_type(*t, offset))
                        .collect::<Result<_, _>>()?;
                    let results = f
                        .results()
                        .iter()
                        .map(|t| val_type(*t, offset))
                        .collect::<Result<_, _>>()?;
                    meta.types.push(FuncType { params, results });
                }
            }
        }
        Payload::ImportSection(reader) => {
            let offset = reader.range().start;
            for import in reader.into_imports() {
                let import = import.map_err(inv)?;
                let kind = match import.ty {
                    TypeRef::Func(t) => {
                        meta.funcs.push(t);
                        meta.num_imported_funcs += 1;
                        ImportKind::Func(t)
                    }
                    TypeRef::Table(t) => ImportKind::Table(table_type(t, offset)?),
                    TypeRef::Memory(m) => ImportKind::Memory(memory_type(m, offset)?),
                    TypeRef::Global(g) => ImportKind::Global(global_type(g, offset)?),
                    TypeRef::Tag(t) => ImportKind::Tag(tag_type(t, offset)?),
                    other => return Err(unsupported(format!("import of {other:?}"), offset)),
                };
                meta.imports.push(Import {
                    module: import.module.to_string(),
                    name: import.name.to_string(),
                    kind,
                });
            }
        }
        Payload::FunctionSection(reader) => {
            for t in reader {
                meta.funcs.push(t.map_err(inv)?);
            }
        }
        Payload::TableSection(reader) => {
            let offset = reader.range().start;
            for table in reader {
                let table = table.map_err(inv)?;
                if let wasmparser::TableInit::Expr(_) = table.init {
                    return Err(unsupported("table initialiser expressions", offset));
                }
                meta.tables.push(table_type(table.ty, offset)?);
            }
        }
        Payload::MemorySection(reader) => {
            let offset = reader.range().start;
            for m in reader {
                meta.memories.push(memory_type(m.map_err(inv)?, offset)?);
            }
        }
        Payload::GlobalSection(reader) => {
            let offset = reader.range().start;
            for g in reader {
                let g = g.map_err(inv)?;
                meta.globals.push(GlobalDef {
                    ty: global_type(g.ty, offset)?,
                    init: const_expr(&g.init_expr)?,
                });
            }
        }
        Payload::ExportSection(reader) => {
            let offset = reader.range().start;
            for e in reader {
                let e = e.map_err(inv)?;
                let kind = match e.kind {
                    ExternalKind::Func => ExportKind::Func(e.index),
                    ExternalKind::Table => ExportKind::Table(e.index),
                    ExternalKind::Memory => ExportKind::Memory(e.index),
                    ExternalKind::Global => ExportKind::Global(e.index),
                    ExternalKind::Tag => ExportKind::Tag(e.index),
                    other => return Err(unsupported(format!("export of {other:?}"), offset)),
                };
                meta.exports.push(Export {
                    name: e.name.to_string(),
                    kind,
                });
            }
        }
        Payload::TagSection(reader) => {
            let offset = reader.range().start;
            for t in reader {
                meta.tags.push(tag_type(t.map_err(inv)?, offset)?);
            }
        }
        Payload::StartSection { func, .. } => meta.start = Some(func),
        Payload::ElementSection(reader) => {
            for elem in reader {
                let elem = elem.map_err(inv)?;
                let offset = elem.range.start;
                let mode = match elem.kind {
                    wasmparser::ElementKind::Passive => SegmentMode::Passive,
                    wasmparser::ElementKind::Declared => SegmentMode::Declared,
                    wasmparser::ElementKind::Active {
                        table_index,
                        offset_expr,
                    } => SegmentMode::Active {
                        index: table_index.unwrap_or(0),
                        offset: const_expr(&offset_expr)?,
                    },
                };
                let (ty, items) = match elem.items {
                    wasmparser::ElementItems::Functions(funcs) => {
                        let items = funcs
                            .into_iter()
                            .map(|f| f.map(ConstExpr::RefFunc).map_err(inv))
                            .collect::<Result<_, _>>()?;
                        (ValType::FuncRef, items)
                    }
                    wasmparser::ElementItems::Expressions(rt, exprs) => {
                        let mut items = Vec::new();
                        for e in exprs {
                            items.push(const_expr(&e.map_err(inv)?)?);
                        }
                        (ref_type(rt, offset)?, items)
                    }
                };
                meta.elems.push(ElemSegment { mode, ty, items });
            }
        }
        Payload::DataSection(reader) => {
            for d in reader {
                let d = d.map_err(inv)?;
                let mode = match d.kind {
                    wasmparser::DataKind::Passive => SegmentMode::Passive,
                    wasmparser::DataKind::Active {
                        memory_index,
                        offset_expr,
                    } => SegmentMode::Active {
                        index: memory_index,
                        offset: const_expr(&offset_expr)?,
                    },
                };
                meta.data.push(DataSegment {
                    mode,
                    bytes: d.data.to_vec(),
                });
            }
        }
        Payload::CustomSection(reader) => {
            // A malformed name section is not an error (custom sections
            // never make a module invalid): keep what parsed.
            if let KnownCustom::Name(section) = reader.as_known() {
                for name in section.into_iter().flatten() {
                    if let Name::Function(map) = name {
                        for naming in map.into_iter().flatten() {
                            names.push((naming.index, naming.name.to_string()));
                        }
                    }
                }
            }
        }
        // Everything else (version, data count, code section start, end)
        // carries nothing the runtime needs beyond validation.
        _ => {}
    }
    Ok(())
}

/// Re-reads the limits of a 32-bit memory as `u32` LEB128s.
///
/// wasmparser reads every memory limit as a `u64` (for memory64), so it
/// accepts a 6-byte encoding of a 32-bit limit that the 2.0 binary format
/// calls malformed ("integer representation too long").
fn check_memory_limits(section: &[u8], offset: u64) -> Result<(), CompileError> {
    let mut r = wasmparser::BinaryReader::new(section, offset);
    let inv = |e: wasmparser::BinaryReaderError| CompileError::invalid(&e);
    let count = r.read_var_u32().map_err(inv)?;
    for _ in 0..count {
        let flags = r.read_u8().map_err(inv)?;
        if flags & !0x03 != 0 {
            // memory64 or custom page sizes: refused elsewhere.
            return Ok(());
        }
        r.read_var_u32().map_err(inv)?;
        if flags & 0x01 != 0 {
            r.read_var_u32().map_err(inv)?;
        }
    }
    Ok(())
}

/// Whether `wasm` would validate with every feature wasmparser knows: used
/// to tell "uses an unsupported proposal" from "invalid".
pub(crate) fn valid_with_all_features(wasm: &[u8]) -> bool {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .is_ok()
}

/// The proposals MVVM refuses, as a user would look them up, with the
/// wasmparser features that enable each.
const REFUSED_PROPOSALS: &[(&str, WasmFeatures)] = &[
    (
        "shared-everything threads",
        WasmFeatures::SHARED_EVERYTHING_THREADS,
    ),
    ("multi-memory", WasmFeatures::MULTI_MEMORY),
    ("memory64", WasmFeatures::MEMORY64),
    (
        "typed function references",
        WasmFeatures::FUNCTION_REFERENCES,
    ),
    (
        "GC",
        WasmFeatures::GC.union(WasmFeatures::FUNCTION_REFERENCES),
    ),
    (
        "stack switching",
        WasmFeatures::STACK_SWITCHING
            .union(WasmFeatures::FUNCTION_REFERENCES)
            .union(WasmFeatures::EXCEPTIONS),
    ),
    ("wide arithmetic", WasmFeatures::WIDE_ARITHMETIC),
    ("custom page sizes", WasmFeatures::CUSTOM_PAGE_SIZES),
];

/// The one refused proposal whose features make `wasm` valid, found by
/// validating again with each added to what MVVM supports; `None` when
/// no single one does (the module needs several, or none of these).
/// Only on the error path, so the extra validations cost nothing else.
pub(crate) fn needed_proposal(wasm: &[u8]) -> Option<&'static str> {
    REFUSED_PROPOSALS.iter().find_map(|(name, features)| {
        Validator::new_with_features(supported_features().union(*features))
            .validate_all(wasm)
            .is_ok()
            .then_some(*name)
    })
}
