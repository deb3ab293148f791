//! The compilation pipeline: parse, declare symbols, compile functions in
//! parallel, emit in index order.

use crate::env::{ModuleInfo, abi_trap, wasm_signature};
use crate::frame_labels::{Body, DevOptions, FrameReport, PendingSite, RoleTimes, SiteReport};
use crate::module::{self, MetaHeader, PendingFunc};
use crate::object::{CompiledFunc, Emitter, EntryIds, ObjectOptions};
use crate::resume_clone::{CallTarget, CloneCode, CloneTimes};
use crate::translate::{BodyRole, FuncInput, translate_function};
use crate::{CompileError, CompileOptions, isa, trampolines};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, AbiParam, types};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_module::{FuncId, ModuleReloc};
use mvvm_abi::object::{
    PROBE_TRAMPOLINE_SYMBOL, array_trampoline_symbol, func_symbol, import_stub_symbol,
    resume_symbol,
};
use mvvm_abi::{CheckpointTables, ExportKind, FuncCallSites, FuncTables, TrapSite, TrapSiteTable};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Compiles validated-on-the-fly wasm bytes.
pub(crate) fn compile_wasm(
    wasm: &[u8],
    opts: &CompileOptions,
    object: ObjectOptions,
) -> Result<Vec<u8>, CompileError> {
    compile_wasm_dev(wasm, opts, object, &DevOptions::default()).map(|(object, _)| object)
}

/// [`compile_wasm`] with the developer options of `crate::frame_labels`
/// (off in [`compile_wasm`]: the same bytes).
pub(crate) fn compile_wasm_dev(
    wasm: &[u8],
    opts: &CompileOptions,
    object: ObjectOptions,
    dev: &DevOptions,
) -> Result<(Vec<u8>, FrameReport), CompileError> {
    match compile_module(wasm, opts, object, dev, None)? {
        Output::Object(object, report) => Ok((object, report)),
        Output::Clones(_) => Err(CompileError::Codegen {
            func: u32::MAX,
            message: "a clone where an object was asked for".into(),
        }),
    }
}

/// The resume clones of functions `funcs` (sorted, no duplicate)
/// compiled alone (see [`crate::resume_clone`]), in the order of `funcs`.
pub(crate) fn compile_clones(
    wasm: &[u8],
    opts: &CompileOptions,
    funcs: &[u32],
    max_threads: usize,
) -> Result<Vec<CloneCode>, CompileError> {
    let mut all = Vec::with_capacity(funcs.len());
    compile_clones_in_batches(wasm, opts, funcs, max_threads, usize::MAX, &mut |batch| {
        all.extend(batch);
        true
    })?;
    Ok(all)
}

/// [`compile_clones`] `batch` functions at a time after one module-wide
/// preparation, handing each batch to `sink` as it is compiled (in the
/// order of `funcs`); `sink` returning `false` stops. The number of
/// clones handed over.
pub(crate) fn compile_clones_in_batches(
    wasm: &[u8],
    opts: &CompileOptions,
    funcs: &[u32],
    max_threads: usize,
    batch: usize,
    sink: &mut dyn FnMut(Vec<CloneCode>) -> bool,
) -> Result<usize, CompileError> {
    let job = CloneJob {
        funcs,
        max_threads,
        batch: batch.max(1),
        sink,
    };
    match compile_module(
        wasm,
        opts,
        ObjectOptions::default(),
        &DevOptions::default(),
        Some(job),
    )? {
        Output::Clones(n) => Ok(n),
        Output::Object(..) => Err(CompileError::Codegen {
            func: funcs.first().copied().unwrap_or(u32::MAX),
            message: "an object where a clone was asked for".into(),
        }),
    }
}

/// The clones [`compile_module`] compiles alone: which, on how many
/// threads at most, how many per batch, and where each batch goes.
struct CloneJob<'a> {
    /// Sorted, distinct function indices.
    funcs: &'a [u32],
    max_threads: usize,
    batch: usize,
    sink: &'a mut dyn FnMut(Vec<CloneCode>) -> bool,
}

/// The clones [`compile_functions`] compiles (one batch of a
/// [`CloneJob`]), and on how many threads at most.
#[derive(Clone, Copy)]
struct OnlyClones<'a> {
    /// Sorted, distinct function indices.
    funcs: &'a [u32],
    max_threads: usize,
}

/// The clone "symbol" of a hot body whose clone the object leaves out
/// (clones on demand, or the developer option `resume_clones: false`): no
/// symbol has it; the body is compiled as a hot body, no clone is.
const CLONE_LEFT_OUT: u32 = u32::MAX;

/// What [`compile_module`] made.
enum Output {
    /// The whole module's object.
    Object(Vec<u8>, FrameReport),
    /// Resume clones alone, handed to the job's sink: how many.
    Clones(usize),
}

/// The whole pipeline; with `only_clones`, everything up to the function
/// bodies is done once as for the object (so the clones' translation sees
/// the same module-wide information), then only those functions' resume
/// clones are compiled, batch by batch, into the job's sink.
fn compile_module(
    wasm: &[u8],
    opts: &CompileOptions,
    object: ObjectOptions,
    dev: &DevOptions,
    only_clones: Option<CloneJob<'_>>,
) -> Result<Output, CompileError> {
    let started = std::time::Instant::now();
    let dev = &dev.normalised();
    let opt_level = opts.opt_level.min(3);
    // Only an x86-64 baseline build needs to know: a native build takes
    // the host's features, aarch64 always has fused multiply-add. The scan
    // reads every function body, so it is not done for nothing.
    let baseline_x86 = opts.target == mvvm_abi::TargetArch::X86_64
        && (opts.portable || mvvm_abi::TargetArch::host() != Some(opts.target));
    let fused = baseline_x86 && uses_fused_madd(wasm);
    let target = isa::build(opts.target, opt_level, opts.portable, fused, dev.frame_map)?;
    let parsed = module::parse(
        wasm,
        MetaHeader {
            target: opts.target,
            cpu_features: target.cpu_features.clone(),
            opt_level,
            policy: opts.policy,
        },
    )?;
    let mut meta = parsed.meta;
    let isa = target.isa;
    // Every wasm-ABI function uses the tail convention, so any of them can
    // make or be the target of a `return_call` (Cranelift requires caller
    // and callee to share it); only what the host calls (array
    // trampolines) and what wasm calls in the host (builtins) keep the
    // platform's.
    let call_conv = CallConv::Tail;
    let native_call_conv = isa.default_call_conv();
    let mut emitter = Emitter::new(isa.clone(), object)?;

    // Declare every symbol first so calls can name their targets by id.
    let nimports = meta.num_imported_funcs;
    let mut func_ids = Vec::with_capacity(meta.funcs.len());
    for (i, ty) in meta.funcs.iter().enumerate() {
        let index = i as u32;
        let fty = meta
            .types
            .get(*ty as usize)
            .ok_or_else(|| CompileError::Codegen {
                func: index,
                message: format!("type {ty} out of range"),
            })?;
        let name = if index < nimports {
            import_stub_symbol(index)
        } else {
            func_symbol(index)
        };
        let id = emitter.declare_function(&name, &wasm_signature(fty, call_conv))?;
        func_ids.push(id);
    }
    let mut tramp_indices: Vec<u32> = meta
        .exports
        .iter()
        .filter_map(|e| match e.kind {
            ExportKind::Func(f) => Some(f),
            _ => None,
        })
        .chain(meta.start)
        .collect();
    tramp_indices.sort_unstable();
    tramp_indices.dedup();
    let mut array_sig = ir::Signature::new(native_call_conv);
    array_sig.params.push(AbiParam::new(types::I64));
    array_sig.params.push(AbiParam::new(types::I64));
    let mut tramp_ids = Vec::with_capacity(tramp_indices.len());
    for &i in &tramp_indices {
        tramp_ids.push(emitter.declare_function(&array_trampoline_symbol(i), &array_sig)?);
    }

    // Probes call the runtime through a `preserve_all` trampoline.
    let probe_id = if opts.policy != mvvm_abi::Policy::None {
        Some(emitter.declare_function(
            PROBE_TRAMPOLINE_SYMBOL,
            &crate::env::probe_trampoline_signature(),
        )?)
    } else {
        None
    };
    // With a policy, a function with a loop gets a resume clone (see
    // `mvvm_abi::object::resume_symbol`).
    let mut resume_ids = vec![None; func_ids.len()];
    let mut hot_without_clone = vec![false; func_ids.len()];
    if opts.policy.is_instrumented() {
        for (k, f) in parsed.funcs.iter().enumerate() {
            if has_loop(&f.body)? {
                let index = nimports + k as u32;
                let fty = meta
                    .funcs
                    .get(index as usize)
                    .and_then(|t| meta.types.get(*t as usize))
                    .ok_or_else(|| CompileError::Codegen {
                        func: index,
                        message: "function without a type".into(),
                    })?;
                if !dev.resume_clones || (object.clones_on_demand && only_clones.is_none()) {
                    // Clones compiled on demand (or the developer option
                    // that leaves them out): the body is still the hot one
                    // (`hot_without_clone`), its rewind block asks the
                    // runtime for the clone, but no clone is declared.
                    hot_without_clone[index as usize] = true;
                    continue;
                }
                let id = emitter
                    .declare_function(&resume_symbol(index), &wasm_signature(fty, call_conv))?;
                resume_ids[index as usize] = Some(id);
            }
        }
    }
    let recursive = if matches!(opts.policy, mvvm_abi::Policy::CounterLoop { .. }) {
        crate::callgraph::recursive_functions(&meta, &parsed.funcs)?
    } else {
        Vec::new()
    };
    let unwinds = if opts.policy.is_instrumented() {
        crate::callgraph::unwinding_functions(&meta, &parsed.funcs, opts.policy, &recursive)?
    } else {
        Vec::new()
    };
    let (tail_calls, tail_target_types) = if opts.policy.is_instrumented() {
        scan_tail_calls(&meta, &parsed.funcs)?
    } else {
        (Vec::new(), Vec::new())
    };
    let info = ModuleInfo {
        meta: &meta,
        global_types: meta.global_types(),
        call_conv,
        native_call_conv,
        tail_calls,
        tail_target_types,
        frontend_config: isa.frontend_config(),
        func_ids: func_ids.iter().map(|id| id.as_u32()).collect(),
        policy: opts.policy,
        probe_trampoline: probe_id.map(|id| id.as_u32()),
        // A hot body without a clone (developer option `resume_clones:
        // false`) has a clone id no symbol has: its rewind block traps
        // instead of calling it, and `compile_functions` compiles no clone.
        resume_ids: resume_ids
            .iter()
            .zip(&hot_without_clone)
            .map(|(id, &hot)| match id {
                Some(i) => Some(i.as_u32()),
                None => hot.then_some(CLONE_LEFT_OUT),
            })
            .collect(),
        recursive,
        unwinds,
        dev: *dev,
        target: opts.target,
    };

    if let Some(only) = only_clones {
        let funcs = only.funcs;
        for &func in funcs {
            let not_clone = |message: &str| CompileError::Codegen {
                func,
                message: message.into(),
            };
            if func < nimports || func as usize >= func_ids.len() {
                return Err(not_clone("not a defined function"));
            }
            if resume_ids[func as usize].is_none() {
                return Err(not_clone(
                    "the function has no resume clone (no loop, or no checkpoint policy)",
                ));
            }
        }
        if !funcs.is_sorted_by(|a, b| a < b) {
            return Err(CompileError::Codegen {
                func: funcs.first().copied().unwrap_or(u32::MAX),
                message: "the functions of clones to compile are not sorted and distinct".into(),
            });
        }
        let mut targets = std::collections::HashMap::new();
        for (i, id) in func_ids.iter().enumerate() {
            let i = i as u32;
            let t = if i < nimports {
                CallTarget::ImportStub(i)
            } else {
                CallTarget::Body(i)
            };
            targets.insert(id.as_u32(), t);
        }
        for (i, id) in resume_ids.iter().enumerate() {
            if let Some(id) = id {
                targets.insert(id.as_u32(), CallTarget::Clone(i as u32));
            }
        }
        for (&i, id) in tramp_indices.iter().zip(&tramp_ids) {
            targets.insert(id.as_u32(), CallTarget::ArrayTrampoline(i));
        }
        if let Some(id) = probe_id {
            targets.insert(id.as_u32(), CallTarget::ProbeTrampoline);
        }
        // Everything above is done once; each batch below only translates
        // and compiles its functions (the first carries the preparation's
        // time).
        let mut prepare = started.elapsed();
        let mut handed = 0;
        for chunk in funcs.chunks(only.batch) {
            let t = std::time::Instant::now();
            let pending = parsed.funcs.iter().map(PendingFunc::duplicate).collect();
            let batch = OnlyClones {
                funcs: chunk,
                max_threads: only.max_threads,
            };
            let (compiled, _) = compile_functions(&info, &*isa, pending, &func_ids, Some(batch))?;
            let compile = t.elapsed();
            if compiled.len() != chunk.len() {
                return Err(CompileError::Codegen {
                    func: chunk.first().copied().unwrap_or(u32::MAX),
                    message: "not every clone was compiled".into(),
                });
            }
            let mut clones = Vec::with_capacity(chunk.len());
            for (&func, (code, _)) in chunk.iter().zip(compiled) {
                let calls = crate::resume_clone::calls_of(&code.relocs, &targets)
                    .map_err(|m| CompileError::Codegen { func, message: m })?;
                clones.push(CloneCode {
                    func,
                    bytes: code.bytes,
                    alignment: code.alignment,
                    calls,
                    traps: code.traps,
                    call_sites: code.call_sites,
                    tables: code.tables,
                    times: CloneTimes { prepare, compile },
                });
            }
            prepare = std::time::Duration::ZERO;
            handed += clones.len();
            if !(only.sink)(clones) {
                break;
            }
        }
        return Ok(Output::Clones(handed));
    }
    let (compiled, report) = compile_functions(&info, &*isa, parsed.funcs, &func_ids, None)?;

    // Glue: small, compiled on this thread.
    let mut ctx = Context::new();
    let mut fb_ctx = FunctionBuilderContext::new();
    let mut glue = Vec::new();
    let mut stub_saves = Vec::new();
    for j in 0..nimports {
        let ty = info.func_type(j).cloned().unwrap_or_default();
        ctx.clear();
        trampolines::import_stub(
            &info,
            j,
            &ty,
            func_ids[j as usize].as_u32(),
            &mut ctx.func,
            &mut fb_ctx,
        )
        .map_err(|message| CompileError::Codegen { func: j, message })?;
        let compiled = finish_function(&mut ctx, &*isa, func_ids[j as usize], j, 0, "")?;
        if dev.frame_map {
            stub_saves.push(
                ctx.compiled_code()
                    .map(crate::frame_labels::prologue_saves)
                    .unwrap_or_default(),
            );
        }
        glue.push((func_ids[j as usize], j, compiled));
    }
    for (&i, &id) in tramp_indices.iter().zip(&tramp_ids) {
        let ty = info
            .func_type(i)
            .cloned()
            .ok_or_else(|| CompileError::Codegen {
                func: i,
                message: "exported function out of range".into(),
            })?;
        ctx.clear();
        trampolines::array_trampoline(&info, i, &ty, id.as_u32(), &mut ctx.func, &mut fb_ctx)
            .map_err(|message| CompileError::Codegen { func: i, message })?;
        glue.push((id, i, finish_function(&mut ctx, &*isa, id, i, 0, "")?));
    }
    let mut probe_saves = Vec::new();
    if let Some(id) = probe_id {
        ctx.clear();
        trampolines::probe_trampoline(&info, id.as_u32(), &mut ctx.func, &mut fb_ctx).map_err(
            |message| CompileError::Codegen {
                func: u32::MAX,
                message,
            },
        )?;
        let compiled = finish_function(&mut ctx, &*isa, id, u32::MAX, 0, "")?;
        if dev.frame_map {
            probe_saves = ctx
                .compiled_code()
                .map(crate::frame_labels::prologue_saves)
                .unwrap_or_default();
        }
        glue.push((id, u32::MAX, compiled));
    }
    drop(info);

    let mut call_sites = Vec::new();
    let mut tables = Vec::with_capacity(compiled.len());
    let mut body_traps = Vec::with_capacity(compiled.len());
    let mut clone_traps = Vec::with_capacity(compiled.len());
    for (k, (mut code, clone)) in compiled.into_iter().enumerate() {
        let index = nimports + k as u32;
        emitter.define_function(func_ids[index as usize], index, &code)?;
        tables.push(std::mem::take(&mut code.tables));
        body_traps.push(std::mem::take(&mut code.traps));
        let mut sites = FuncCallSites {
            func: k as u32,
            body: std::mem::take(&mut code.call_sites),
            clone: Vec::new(),
        };
        let mut clone_sites = Vec::new();
        if let (Some(mut clone), Some(id)) = (clone, resume_ids[index as usize]) {
            emitter.define_function(id, index, &clone)?;
            clone_sites = std::mem::take(&mut clone.traps);
            sites.clone = clone.call_sites;
        }
        clone_traps.push(clone_sites);
        if !sites.body.is_empty() || !sites.clone.is_empty() {
            call_sites.push(sites);
        }
    }
    for (id, index, code) in &glue {
        emitter.define_function(*id, *index, code)?;
    }
    meta.call_sites = call_sites;
    meta.frame_slots = tables
        .iter()
        .filter(|t| !t.stable_points.is_empty())
        .map(|t| t.frame_capacity())
        .max()
        .unwrap_or(0)
        .try_into()
        .map_err(|_| CompileError::Object {
            step: "record a frame of more than 2^32 slots".into(),
            source: "frame too large".into(),
        })?;
    meta.checkpoint_tables = CheckpointTables::from_tables(&tables, meta.frame_slots as usize)
        .map_err(|e| CompileError::Object {
            step: "encode the checkpoint tables".into(),
            source: Box::new(e),
        })?;
    meta.trap_sites =
        TrapSiteTable::from_sites(&body_traps, &clone_traps).map_err(|e| CompileError::Object {
            step: "encode the trap sites".into(),
            source: Box::new(e),
        })?;
    meta.array_trampolines = tramp_indices;
    let nimp = nimports as usize;
    let entries = EntryIds {
        bodies: func_ids[nimp..].to_vec(),
        clones: resume_ids[nimp..].to_vec(),
        stubs: func_ids[..nimp].to_vec(),
        trampolines: tramp_ids,
    };
    let frames = if dev.frame_map {
        Some(frame_maps(&report, probe_saves, stub_saves)?)
    } else {
        None
    };
    let carried = (object.clones_on_demand && opts.policy.is_instrumented())
        .then(|| crate::resume_clone::carried_wasm(wasm))
        .transpose()
        .map_err(|message| CompileError::Invalid { offset: 0, message })?;
    let object = emitter.finish(&meta, &entries, frames.as_deref(), carried.as_deref())?;
    tracing::debug!(
        functions = meta.num_defined_funcs(),
        imports = nimports,
        trampolines = meta.array_trampolines.len(),
        object_bytes = object.len(),
        elapsed = ?started.elapsed(),
        "compiled module"
    );
    Ok(Output::Object(object, report))
}

/// The encoded frame maps of the sites found (developer option
/// `frame_map`): per body, its sites with a known return address.
fn frame_maps(
    report: &FrameReport,
    probe_saves: Vec<mvvm_abi::frame_map::RegSave>,
    stub_saves: Vec<Vec<mvvm_abi::frame_map::RegSave>>,
) -> Result<Vec<u8>, CompileError> {
    use mvvm_abi::frame_map::{BodyFrameMap, FrameBody, FrameMaps};
    let role = |b: Body| match b {
        Body::Whole => FrameBody::Whole,
        Body::Hot => FrameBody::Hot,
        Body::Resume => FrameBody::Resume,
    };
    let mut maps = FrameMaps {
        bodies: Vec::new(),
        probe_saves,
        stub_saves,
    };
    for (func, body, saves) in &report.saves {
        maps.bodies.push(BodyFrameMap {
            func: *func,
            body: role(*body),
            sites: Vec::new(),
            saves: saves.clone(),
        });
    }
    maps.bodies.sort_by_key(|b| (b.func, b.body as u8));
    for s in &report.sites {
        let Some(site) = &s.map else {
            continue;
        };
        let key = (s.func, role(s.body) as u8);
        if let Ok(i) = maps
            .bodies
            .binary_search_by_key(&key, |b| (b.func, b.body as u8))
        {
            maps.bodies[i].sites.push(site.clone());
        }
    }
    for b in &mut maps.bodies {
        b.sites.sort_by_key(|s| s.ret_offset);
        // Two sites returning at the same address cannot be told apart
        // by a walk: neither is kept (the check then skips that frame).
        let all = std::mem::take(&mut b.sites);
        for (i, s) in all.iter().enumerate() {
            let same = |o: &mvvm_abi::frame_map::FrameSite| o.ret_offset == s.ret_offset;
            let shared =
                i.checked_sub(1).is_some_and(|p| same(&all[p])) || all.get(i + 1).is_some_and(same);
            if !shared {
                b.sites.push(s.clone());
            }
        }
    }
    maps.encode().map_err(|e| CompileError::Object {
        step: "encode the frame maps".into(),
        source: Box::new(e),
    })
}

/// Which functions contain a tail call (per function index, imports
/// included as `false`), and the distinct types (first type index of each
/// structure) a tail call may enter a defined function with: the types of
/// `return_call` targets that are defined functions and of
/// `return_call_indirect`s. Used by the checkpoint rewind path (see
/// `ModuleInfo::tail_calls`).
fn scan_tail_calls(
    meta: &mvvm_abi::ModuleMeta,
    funcs: &[PendingFunc<'_>],
) -> Result<(Vec<bool>, Vec<u32>), CompileError> {
    let nimports = meta.num_imported_funcs as usize;
    let mut has = vec![false; nimports + funcs.len()];
    let mut types: Vec<u32> = Vec::new();
    let add = |t: u32, types: &mut Vec<u32>| {
        let Some(ft) = meta.types.get(t as usize) else {
            return;
        };
        if !types
            .iter()
            .any(|u| meta.types.get(*u as usize) == Some(ft))
        {
            types.push(t);
        }
    };
    for (k, f) in funcs.iter().enumerate() {
        let mut ops = f
            .body
            .get_operators_reader()
            .map_err(|e| CompileError::invalid(&e))?;
        while !ops.eof() {
            match ops.read().map_err(|e| CompileError::invalid(&e))? {
                wasmparser::Operator::ReturnCall { function_index } => {
                    has[nimports + k] = true;
                    if function_index as usize >= nimports
                        && let Some(t) = meta.funcs.get(function_index as usize)
                    {
                        add(*t, &mut types);
                    }
                }
                wasmparser::Operator::ReturnCallIndirect { type_index, .. } => {
                    has[nimports + k] = true;
                    add(type_index, &mut types);
                }
                _ => {}
            }
        }
    }
    types.sort_unstable();
    Ok((has, types))
}

/// Whether a function body contains a `loop`.
fn has_loop(body: &wasmparser::FunctionBody<'_>) -> Result<bool, CompileError> {
    let mut ops = body
        .get_operators_reader()
        .map_err(|e| CompileError::invalid(&e))?;
    while !ops.eof() {
        if let wasmparser::Operator::Loop { .. } =
            ops.read().map_err(|e| CompileError::invalid(&e))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether any function body uses relaxed SIMD's fused multiply-add (the
/// operators that need FMA on x86-64). Malformed input answers `false`:
/// the real parse reports it.
fn uses_fused_madd(wasm: &[u8]) -> bool {
    use wasmparser::{Operator as Op, Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else {
            continue;
        };
        let Ok(mut ops) = body.get_operators_reader() else {
            return false;
        };
        while !ops.eof() {
            match ops.read() {
                Ok(
                    Op::F32x4RelaxedMadd
                    | Op::F32x4RelaxedNmadd
                    | Op::F64x2RelaxedMadd
                    | Op::F64x2RelaxedNmadd,
                ) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
    false
}

/// A defined function's compiled bodies: the one under its symbol, and its
/// resume clone if it has one.
type CompiledBodies = (CompiledFunc, Option<CompiledFunc>);

/// Compiles the defined functions on `available_parallelism` workers, each
/// with its own Cranelift context; results come back in index order.
/// With `only_clones`, only those functions' resume clones are compiled
/// and returned, in the order of the list, each as a body (with its
/// tables).
fn compile_functions(
    info: &ModuleInfo<'_>,
    isa: &dyn TargetIsa,
    funcs: Vec<PendingFunc<'_>>,
    func_ids: &[FuncId],
    only_clones: Option<OnlyClones<'_>>,
) -> Result<(Vec<CompiledBodies>, FrameReport), CompileError> {
    let n = funcs.len();
    let nimports = info.meta.num_imported_funcs;
    let selected = |k: usize| {
        only_clones.is_none_or(|o| o.funcs.binary_search(&(nimports + k as u32)).is_ok())
    };
    let jobs: Vec<Mutex<Option<PendingFunc<'_>>>> =
        funcs.into_iter().map(|f| Mutex::new(Some(f))).collect();
    let results: Vec<Mutex<Option<Result<CompiledBodies, CompileError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // Developer measurements (`crate::frame_labels`): nanoseconds and
    // bodies per role, and the sites of every body.
    let role_ns: [AtomicU64; 3] = Default::default();
    let role_bodies: [AtomicU64; 3] = Default::default();
    let translate_ns = AtomicU64::new(0);
    let pass_times: Mutex<cranelift_codegen::timing::PassTimes> = Mutex::default();
    let walk_rounds: [AtomicU64; 4] = Default::default();
    let sites: Mutex<Vec<SiteReport>> = Mutex::new(Vec::new());
    let dev = info.dev;
    type BodySaves = (u32, Body, Vec<mvvm_abi::frame_map::RegSave>);
    let saves: Mutex<Vec<BodySaves>> = Mutex::new(Vec::new());
    let keep_saves = |ctx: &Context, func: u32, body: Body| {
        if dev.frame_map
            && let Some(code) = ctx.compiled_code()
            && let Ok(mut all) = saves.lock()
        {
            all.push((func, body, crate::frame_labels::prologue_saves(code)));
        }
    };
    let timed = |role: usize, t: std::time::Instant| {
        if dev.frame_labels || !dev.unwind_stores || dev.stores_in_hot_only || dev.timings {
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            role_ns[role].fetch_add(ns, Ordering::Relaxed);
            role_bodies[role].fetch_add(1, Ordering::Relaxed);
        }
    };
    let keep = |found: Vec<SiteReport>| {
        if !found.is_empty()
            && let Ok(mut all) = sites.lock()
        {
            all.extend(found);
        }
    };
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(only_clones.map_or(n, |o| o.funcs.len().min(o.max_threads)))
        .max(1);

    let work = || {
        if dev.timings {
            // This thread's earlier compilations are not this module's.
            let _ = cranelift_codegen::timing::take_current();
        }
        let mut ctx = Context::new();
        let mut fb_ctx = FunctionBuilderContext::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                break;
            }
            if !selected(k) {
                continue;
            }
            let Some(job) = jobs[k].lock().ok().and_then(|mut j| j.take()) else {
                continue;
            };
            let index = nimports + k as u32;
            let result = (|| {
                let validator = job.validator.into_validator(Default::default());
                let start = u32::try_from(job.body.range().start).unwrap_or(u32::MAX);
                let resume = info.resume_ids.get(index as usize).copied().flatten();
                // Developer option `walk_frames`: a whole body or clone is
                // compiled without the stores of its walkable sites, then
                // again with them at the sites its map misses (plan step
                // 3's fallback: two rounds, then every store).
                let walk_bodies = dev.walk_frames && info.policy.is_instrumented();
                let mut compile_body = |role: BodyRole,
                                        id: FuncId,
                                        prefix: &str|
                 -> Result<
                    (CompiledFunc, FuncTables, Vec<SiteReport>),
                    CompileError,
                > {
                    let walks = walk_bodies && !matches!(role, BodyRole::Hot { .. });
                    let mut keep: Vec<u32> = Vec::new();
                    for (round, kept_from) in walk_rounds.iter().enumerate() {
                        let walk_keep = (walks && round < 3).then_some(&keep[..]);
                        ctx.clear();
                        let input = FuncInput {
                            info,
                            index,
                            body: &job.body,
                            role,
                            walk_keep,
                        };
                        let t = std::time::Instant::now();
                        let (tables, pending) = translate_function(
                            &input,
                            validator.clone(),
                            &mut ctx.func,
                            &mut fb_ctx,
                        )?;
                        if dev.timings {
                            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            translate_ns.fetch_add(ns, Ordering::Relaxed);
                        }
                        let compiled = finish_function(&mut ctx, isa, id, index, start, prefix)?;
                        let body = match role {
                            BodyRole::Whole => Body::Whole,
                            BodyRole::Hot { .. } => Body::Hot,
                            BodyRole::Resume { .. } => Body::Resume,
                        };
                        let sites = dev_sites(&ctx, info, index, body, pending);
                        let missed: Vec<u32> = sites
                            .iter()
                            .filter(|s| s.walked && !crate::frame_labels::walk_reads(s))
                            .map(|s| s.offset)
                            .collect();
                        if walk_keep.is_none() || missed.is_empty() {
                            if walks {
                                kept_from.fetch_add(1, Ordering::Relaxed);
                            }
                            keep_saves(&ctx, index, body);
                            return Ok((compiled, tables, sites));
                        }
                        keep.extend(missed);
                        keep.sort_unstable();
                        keep.dedup();
                    }
                    Err(CompileError::Codegen {
                        func: index,
                        message: "walk_frames: no compilation converged".into(),
                    })
                };
                let clone = match resume {
                    Some(symbol) if symbol != CLONE_LEFT_OUT => {
                        let t = std::time::Instant::now();
                        let id = FuncId::from_u32(symbol);
                        let (mut compiled, tables, sites) =
                            compile_body(BodyRole::Resume { symbol }, id, "resume.")?;
                        timed(2, t);
                        keep(sites);
                        if only_clones.is_some() {
                            compiled.tables = tables;
                            return Ok((compiled, None));
                        }
                        Some(compiled)
                    }
                    Some(_) | None => None,
                };
                let t = std::time::Instant::now();
                let role = match resume {
                    Some(resume) => BodyRole::Hot { resume },
                    None => BodyRole::Whole,
                };
                let id = func_ids[index as usize];
                let (mut compiled, tables, sites) = compile_body(role, id, "")?;
                compiled.tables = tables;
                timed(if resume.is_some() { 1 } else { 0 }, t);
                keep(sites);
                Ok((compiled, clone))
            })();
            if result.is_err() {
                // A translation that failed half-way leaves the builder
                // context dirty; the next function needs a clean one.
                fb_ctx = FunctionBuilderContext::new();
            }
            if let Ok(mut slot) = results[k].lock() {
                *slot = Some(result);
            }
        }
        if dev.timings
            && let Ok(mut all) = pass_times.lock()
        {
            all.add(&cranelift_codegen::timing::take_current());
        }
    };
    if workers == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }

    let mut out = Vec::with_capacity(n);
    for (k, slot) in results.into_iter().enumerate() {
        if !selected(k) {
            continue;
        }
        let r = slot.into_inner().ok().flatten().unwrap_or_else(|| {
            Err(CompileError::Codegen {
                func: nimports + k as u32,
                message: "a compilation worker failed".into(),
            })
        })?;
        out.push(r);
    }
    let mut sites = sites.into_inner().unwrap_or_default();
    sites.sort_by_key(|s| (s.func, s.body as u8, s.offset));
    let ns = role_ns.map(|a| a.into_inner());
    let report = FrameReport {
        sites,
        saves: saves.into_inner().unwrap_or_default(),
        times: RoleTimes {
            whole_ns: ns[0],
            hot_ns: ns[1],
            resume_ns: ns[2],
            bodies: role_bodies.map(|a| a.into_inner()),
            translate_ns: translate_ns.into_inner(),
        },
        walk_rounds: walk_rounds.map(|a| a.into_inner()),
        pass_times: if dev.timings {
            pass_times
                .into_inner()
                .map(|t| t.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        },
    };
    Ok((out, report))
}

/// The sites of the body just compiled in `ctx`, with their locations
/// (developer option `frame_labels`; nothing otherwise).
fn dev_sites(
    ctx: &Context,
    info: &ModuleInfo<'_>,
    index: u32,
    body: Body,
    pending: Vec<PendingSite>,
) -> Vec<SiteReport> {
    if pending.is_empty() {
        return Vec::new();
    }
    match ctx.compiled_code() {
        Some(code) => {
            crate::frame_labels::resolve(code, &ctx.func, info.target, index, body, pending)
        }
        None => Vec::new(),
    }
}

/// Runs Cranelift on the function in `ctx` and collects its code,
/// relocations and trap sites. `body_offset` is the wasm offset reported for
/// traps outside any operator (the prologue's stack check); `dump_prefix`
/// tells a resume clone's IR dump (`MVVM_CLIF_DIR`) from its function's.
///
/// A trap site's wasm offset is the source location Cranelift kept for the
/// trapping instruction: the operator's own offset, except where Cranelift
/// folded a branch to a trap-only block into a conditional trap (an
/// `if ... unreachable`), where it is the branching operator's.
fn finish_function(
    ctx: &mut Context,
    isa: &dyn TargetIsa,
    id: FuncId,
    index: u32,
    body_offset: u32,
    dump_prefix: &str,
) -> Result<CompiledFunc, CompileError> {
    let codegen = |message: String| CompileError::Codegen {
        func: index,
        message,
    };
    let dump = clif_dump_dir();
    if let Some(dir) = &dump {
        write_clif(dir, index, &format!("{dump_prefix}in"), &ctx.func);
    }
    ctx.compile(isa, &mut ControlPlane::default())
        .map_err(|e| codegen(format!("{:?}", e.inner)))?;
    if let Some(dir) = &dump {
        write_clif(dir, index, &format!("{dump_prefix}opt"), &ctx.func);
    }
    let code = ctx
        .compiled_code()
        .ok_or_else(|| codegen("no compiled code".into()))?;
    let bytes = code.code_buffer().to_vec();
    let relocs = code
        .buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
        .collect();
    let srclocs = code.buffer.get_srclocs_sorted();
    let mut traps = Vec::with_capacity(code.buffer.traps().len());
    for trap in code.buffer.traps() {
        let kind = abi_trap(trap.code)
            .ok_or_else(|| codegen(format!("unknown trap code {}", trap.code)))?;
        // The innermost source range containing the trapping instruction.
        let pos = srclocs.partition_point(|s| s.start <= trap.offset);
        let wasm_offset = srclocs[..pos]
            .iter()
            .rev()
            .find(|s| trap.offset < s.end && !s.loc.is_default())
            .map(|s| s.loc.bits())
            .unwrap_or(body_offset);
        traps.push(TrapSite {
            code_offset: trap.offset,
            code: kind,
            wasm_offset,
        });
    }
    traps.sort_by_key(|t| t.code_offset);
    let call_sites = crate::translate::exception_call_sites(&code.buffer).map_err(codegen)?;
    u32::try_from(bytes.len()).map_err(|_| codegen("function too large".into()))?;
    Ok(CompiledFunc {
        alignment: u64::from(code.buffer.alignment),
        bytes,
        relocs,
        call_sites,
        traps,
        tables: FuncTables::default(),
    })
}

/// `MVVM_CLIF_DIR`: a directory where every function's Cranelift IR is
/// written before (`func_N.in.clif`) and after (`func_N.opt.clif`; a resume
/// clone's `func_N.resume.in.clif`, `func_N.resume.opt.clif`)
/// Cranelift's optimisations. A developer aid for reading what the
/// translator produced; never set in normal use.
fn clif_dump_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("MVVM_CLIF_DIR").map(std::path::PathBuf::from)
}

fn write_clif(dir: &std::path::Path, index: u32, stage: &str, func: &ir::Function) {
    let path = dir.join(format!("func_{index}.{stage}.clif"));
    if let Err(e) = std::fs::write(&path, func.display().to_string()) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}
