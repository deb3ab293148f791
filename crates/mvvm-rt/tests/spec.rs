//! The WebAssembly 2.0 spec testsuite, run through the whole toolchain:
//! every module is compiled by `mvvm-aot`, loaded by the real object
//! loader and run by the runtime.
//!
//! Usage: `cargo test -p mvvm-rt --test spec [-- FILTER]`, or
//! `MVVM_SPEC_FILTER=i32 cargo test -p mvvm-rt --test spec`. A filter keeps
//! the files whose name contains it. `MVVM_SPEC_VERBOSE=1` prints every
//! failure (by default the first 10 per file). `MVVM_SPEC_OPT=N` compiles
//! at optimisation level N (default: the compiler's default).
//!
//! `MVVM_SPEC_SUITE` selects other directories of the testsuite crate, a
//! comma-separated list: `2.0` (the default) or
//! `proposals/NAME`, e.g. `MVVM_SPEC_SUITE=proposals/simd,proposals/tail-call
//! cargo test -p mvvm-rt --test spec` (see `spec_files/mod.rs`). The
//! runner prints the counts of each file and of each directory; without a
//! filter, each directory is checked against its expected number of
//! assertions (`spec_files::SPEC_ASSERTIONS`, `PROPOSAL_ASSERTIONS`).
//!
//! Files run on two threads, each with a 64 MiB stack so that the
//! recursion tests hit the wasm stack limit, not the host's.

mod spec_files;

use anyhow::{Context, Result, anyhow, bail};
use mvvm_rt::{
    Extern, Func, FuncType, Global, GlobalType, Instance, InstantiationError, Limits, Linker,
    Memory, MemoryType, Module, RunError, Store, Table, TableType, TrapCode, Val, ValType,
};
use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Mutex;
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::{QuoteWat, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

/// Result of one file.
#[derive(Default)]
struct FileReport {
    name: String,
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

fn main() -> ExitCode {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("MVVM_SPEC_FILTER").ok());
    let verbose = std::env::var_os("MVVM_SPEC_VERBOSE").is_some();
    let files = match spec_files::spec_files(filter.as_deref()) {
        Ok(files) => files,
        Err(why) => {
            println!("spec: FAIL: {why}");
            return ExitCode::FAILURE;
        }
    };
    let queue = Mutex::new(files.clone().into_iter().enumerate().collect::<Vec<_>>());
    let reports: Mutex<Vec<Option<FileReport>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get().min(2))
        .unwrap_or(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(scope, || {
                    loop {
                        let Some((i, (name, text))) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        let report = std::panic::catch_unwind(|| run_file(&name, text))
                            .unwrap_or_else(|_| FileReport {
                                name: name.clone(),
                                failed: 1,
                                failures: vec!["runner panicked".into()],
                                ..Default::default()
                            });
                        reports.lock().unwrap()[i] = Some(report);
                    }
                })
                .expect("spawn runner thread");
        }
    });
    let reports = reports.into_inner().unwrap();
    let (mut passed, mut failed) = (0, 0);
    // (directory, files, passed, failed), in file order (sorted by name).
    let mut dirs: Vec<(String, usize, usize, usize)> = Vec::new();
    for r in reports.into_iter().flatten() {
        passed += r.passed;
        failed += r.failed;
        let dir = spec_files::dir_of(&r.name);
        match dirs.iter_mut().find(|d| d.0 == dir) {
            Some(d) => (d.1, d.2, d.3) = (d.1 + 1, d.2 + r.passed, d.3 + r.failed),
            None => dirs.push((dir.to_string(), 1, r.passed, r.failed)),
        }
        let status = if r.failed == 0 { "ok" } else { "FAIL" };
        println!(
            "{status:4} {:32} {:5} passed, {:4} failed",
            r.name, r.passed, r.failed
        );
        let shown = if verbose { r.failures.len() } else { 10 };
        for f in r.failures.iter().take(shown) {
            println!("       {f}");
        }
        if r.failures.len() > shown {
            println!("       ... {} more", r.failures.len() - shown);
        }
    }
    let mut short = false;
    for (dir, n, p, f) in &dirs {
        println!("spec: {dir}: {n} files, {p} passed, {f} failed");
        let expected = spec_files::PROPOSAL_ASSERTIONS
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, count)| *count);
        if let Some(expected) = expected.filter(|e| filter.is_none() && p + f < *e) {
            println!(
                "spec: FAIL: {dir}: {} assertions, expected {expected}",
                p + f
            );
            short = true;
        }
    }
    if short {
        return ExitCode::FAILURE;
    }
    println!(
        "spec: {} files, {} assertions: {passed} passed, {failed} failed",
        files.len(),
        passed + failed
    );
    println!("spec: {passed} passed, {failed} failed");
    if filter.is_none()
        && spec_files::default_suite()
        && passed + failed < spec_files::SPEC_ASSERTIONS
    {
        println!(
            "spec: FAIL: {} assertions, expected {}",
            passed + failed,
            spec_files::SPEC_ASSERTIONS
        );
        return ExitCode::FAILURE;
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_file(name: &str, text: &'static str) -> FileReport {
    let mut report = FileReport {
        name: name.to_string(),
        ..Default::default()
    };
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = match wast::parser::ParseBuffer::new_with_lexer(lexer) {
        Ok(b) => b,
        Err(e) => {
            report.failed = 1;
            report.failures.push(format!("cannot lex: {e}"));
            return report;
        }
    };
    let wast = match wast::parser::parse::<wast::Wast<'_>>(&buf) {
        Ok(w) => w,
        Err(e) => {
            report.failed = 1;
            report.failures.push(format!("cannot parse: {e}"));
            return report;
        }
    };
    let mut ctx = Runner::new(spec_files::may_need_refused(name));
    ctx.superseded = spec_files::superseded(name);
    for directive in wast.directives {
        let (line, col) = directive.span().linecol_in(text);
        match ctx.run(directive) {
            Ok(Done::Passed) => report.passed += 1,
            Ok(Done::Refused) => ctx.refusals += 1,
            Ok(Done::LeftOut) => ctx.left_out += 1,
            Ok(Done::Superseded) => ctx.superseded_count += 1,
            Err(e) => {
                report.failed += 1;
                report
                    .failures
                    .push(format!("{name}:{}:{}: {e:#}", line + 1, col + 1));
            }
        }
    }
    if !ctx.superseded.is_empty() {
        if ctx.superseded_count == 0 {
            report.failed += 1;
            report.failures.push(format!(
                "{name}: no assertion was superseded by WebAssembly 2.0: \
                 update spec_files::SUPERSEDED"
            ));
        } else {
            println!(
                "spec: {name}: {} assertions that WebAssembly 2.0 contradicts left out",
                ctx.superseded_count
            );
        }
    }
    if let Some(proposal) = ctx.may_refuse {
        if ctx.refusals == 0 {
            report.failed += 1;
            report.failures.push(format!(
                "{name}: no module was refused for needing {proposal}: \
                 update spec_files::MAY_NEED_REFUSED"
            ));
        } else {
            println!(
                "spec: {name}: {} modules refused (they need {proposal}), {} directives \
                 that use them left out",
                ctx.refusals, ctx.left_out
            );
        }
    }
    report
}

/// How a directive that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// It ran and its assertion held.
    Passed,
    /// Its module was refused for needing the proposal its file may need
    /// (`spec_files::MAY_NEED_REFUSED`).
    Refused,
    /// It uses a refused module (invokes or registers it, imports from
    /// it), so it was not run.
    LeftOut,
    /// An `assert_invalid` that WebAssembly 2.0 contradicts
    /// (`spec_files::SUPERSEDED`): its module compiled.
    Superseded,
}

struct Runner {
    store: Store,
    linker: Linker,
    named: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last: Option<Instance>,
    /// The refused proposal modules of this file may need.
    may_refuse: Option<&'static str>,
    /// Names of refused modules (and module definitions), and of the
    /// instances of refused definitions.
    refused: HashSet<String>,
    /// Whether the last module was refused.
    refused_last: bool,
    /// Names refused modules were registered under.
    refused_registered: HashSet<String>,
    refusals: usize,
    left_out: usize,
    /// Messages of this file's `assert_invalid`s that 2.0 contradicts.
    superseded: Vec<&'static str>,
    superseded_count: usize,
}

/// The compiler's options: the default, at `MVVM_SPEC_OPT` when set.
fn compile_options() -> mvvm_aot::CompileOptions {
    let mut opts = mvvm_aot::CompileOptions::default();
    if let Some(level) = std::env::var("MVVM_SPEC_OPT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.opt_level = level;
    }
    opts
}

fn compile(bytes: &[u8]) -> Result<Module> {
    let aot = mvvm_aot::compile(bytes, &compile_options()).map_err(|e| anyhow!("compile: {e}"))?;
    Module::from_aot(&aot).context("load")
}

fn spectest(store: &mut Store, linker: &mut Linker) {
    let prints: [(&str, &[ValType]); 7] = [
        ("print", &[]),
        ("print_i32", &[ValType::I32]),
        ("print_i64", &[ValType::I64]),
        ("print_f32", &[ValType::F32]),
        ("print_f64", &[ValType::F64]),
        ("print_i32_f32", &[ValType::I32, ValType::F32]),
        ("print_f64_f64", &[ValType::F64, ValType::F64]),
    ];
    for (name, params) in prints {
        let ty = FuncType {
            params: params.to_vec(),
            results: vec![],
        };
        let f = Func::host(store, ty, |_, _, _| Ok(()));
        linker.define("spectest", name, Extern::Func(f));
    }
    let globals = [
        ("global_i32", ValType::I32, Val::I32(666)),
        ("global_i64", ValType::I64, Val::I64(666)),
        ("global_f32", ValType::F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", ValType::F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, ty, v) in globals {
        let g = Global::new(store, GlobalType { ty, mutable: false }, v).expect("spectest global");
        linker.define("spectest", name, Extern::Global(g));
    }
    let table = Table::new(
        store,
        TableType {
            elem: ValType::FuncRef,
            limits: Limits {
                min: 10,
                max: Some(20),
            },
        },
        Val::FuncRef(None),
    )
    .expect("spectest table");
    linker.define("spectest", "table", Extern::Table(table));
    let memory = Memory::new(
        store,
        MemoryType {
            limits: Limits {
                min: 1,
                max: Some(2),
            },
            shared: false,
        },
    )
    .expect("spectest memory");
    linker.define("spectest", "memory", Extern::Memory(memory));
    // The threads proposal's `imports.wast` imports a shared memory of the
    // same limits.
    let shared = Memory::new(
        store,
        MemoryType {
            limits: Limits {
                min: 1,
                max: Some(2),
            },
            shared: true,
        },
    )
    .expect("spectest shared memory");
    linker.define("spectest", "shared_memory", Extern::Memory(shared));
}

/// Whether a trap message matches the spec's expected text. One trap code
/// covers both "undefined element" (call_indirect) and "out of bounds table
/// access" (table instructions), so both are accepted for it.
fn trap_matches(code: TrapCode, actual: &str, expected: &str) -> bool {
    if actual.contains(expected) || expected.starts_with(actual) {
        return true;
    }
    code == TrapCode::TableOutOfBounds
        && (expected.starts_with("undefined element")
            || expected.starts_with("out of bounds table access"))
}

impl Runner {
    fn new(may_refuse: Option<&'static str>) -> Runner {
        let mut store = Store::new();
        let mut linker = Linker::new();
        spectest(&mut store, &mut linker);
        Runner {
            store,
            linker,
            named: HashMap::new(),
            definitions: HashMap::new(),
            last: None,
            may_refuse,
            refused: HashSet::new(),
            refused_last: false,
            refused_registered: HashSet::new(),
            refusals: 0,
            left_out: 0,
            superseded: Vec::new(),
            superseded_count: 0,
        }
    }

    /// Compiles `bytes`; `None` when the compiler refuses the module for
    /// needing the proposal this file may need.
    fn compile_or_refuse(&self, bytes: &[u8]) -> Result<Option<Module>> {
        match mvvm_aot::compile(bytes, &compile_options()) {
            Ok(aot) => Ok(Some(Module::from_aot(&aot).context("load")?)),
            Err(mvvm_aot::CompileError::Unsupported { feature, .. })
                if self
                    .may_refuse
                    .is_some_and(|p| feature.contains(&format!("the {p} proposal"))) =>
            {
                Ok(None)
            }
            Err(e) => Err(anyhow!("compile: {e}")),
        }
    }

    /// Records that the module `name` (the last one, and named so if
    /// `Some`) was refused or depends on a refused one.
    fn mark_refused(&mut self, name: Option<String>) {
        self.last = None;
        self.refused_last = true;
        if let Some(n) = name {
            self.refused.insert(n);
        }
    }

    /// Whether the module `id` names (the last one for `None`) was refused.
    fn targets_refused(&self, id: Option<wast::token::Id<'_>>) -> bool {
        match id {
            None => self.refused_last,
            Some(id) => self.refused.contains(id.name()),
        }
    }

    /// Whether `e` is an import from a name only refused modules were
    /// registered under.
    fn unlinked_by_refusal(&self, e: &InstantiationError) -> bool {
        let InstantiationError::Unlinkable(msg) = e else {
            return false;
        };
        msg.strip_prefix("unknown import: `")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(module, _)| self.refused_registered.contains(module))
    }

    /// Whether directive `d` uses a refused module (and so is left out).
    fn uses_refused(&self, d: &WastDirective<'_>) -> bool {
        let exec = |e: &WastExecute<'_>| match e {
            WastExecute::Invoke(inv) => self.targets_refused(inv.module),
            WastExecute::Get { module, .. } => self.targets_refused(*module),
            WastExecute::Wat(_) => false,
        };
        match d {
            WastDirective::Invoke(inv) => self.targets_refused(inv.module),
            WastDirective::AssertReturn { exec: e, .. }
            | WastDirective::AssertTrap { exec: e, .. }
            | WastDirective::AssertException { exec: e, .. } => exec(e),
            WastDirective::AssertExhaustion { call, .. } => self.targets_refused(call.module),
            WastDirective::Register { module, .. } => self.targets_refused(*module),
            WastDirective::ModuleInstance { module, .. } => {
                module.is_some_and(|m| self.refused.contains(m.name()))
            }
            _ => false,
        }
    }

    fn instance(&self, id: Option<wast::token::Id<'_>>) -> Result<Instance> {
        match id {
            Some(id) => self
                .named
                .get(id.name())
                .copied()
                .ok_or_else(|| anyhow!("no module named ${}", id.name())),
            None => self
                .last
                .ok_or_else(|| anyhow!("no module instantiated yet")),
        }
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, InstantiationError> {
        self.linker.instantiate(&mut self.store, module)
    }

    fn module(&mut self, mut wat: QuoteWat<'_>) -> Result<Done> {
        let name = wat.name().map(|id| id.name().to_string());
        let bytes = wat.encode().context("encode")?;
        let Some(module) = self.compile_or_refuse(&bytes)? else {
            self.mark_refused(name);
            return Ok(Done::Refused);
        };
        let inst = match self.instantiate(&module) {
            Ok(inst) => inst,
            Err(e) if self.unlinked_by_refusal(&e) => {
                self.mark_refused(name);
                return Ok(Done::LeftOut);
            }
            Err(e) => bail!("instantiate: {e}"),
        };
        if let Some(n) = name {
            self.refused.remove(&n);
            self.named.insert(n, inst);
        }
        self.last = Some(inst);
        self.refused_last = false;
        Ok(Done::Passed)
    }

    fn invoke(&mut self, inv: WastInvoke<'_>) -> Result<Result<Vec<Val>, RunError>> {
        let inst = self.instance(inv.module)?;
        let args = inv.args.iter().map(arg).collect::<Result<Vec<_>>>()?;
        Ok(inst.invoke(&mut self.store, inv.name, &args))
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> Result<Result<Vec<Val>, RunError>> {
        match exec {
            WastExecute::Invoke(inv) => self.invoke(inv),
            WastExecute::Get { module, global, .. } => {
                let inst = self.instance(module)?;
                match inst.get_export(&self.store, global) {
                    Some(Extern::Global(g)) => Ok(Ok(vec![g.get(&self.store)])),
                    _ => bail!("no global export `{global}`"),
                }
            }
            WastExecute::Wat(mut wat) => {
                let bytes = wat.encode().context("encode")?;
                let module = compile(&bytes)?;
                match self.instantiate(&module) {
                    Ok(_) => Ok(Ok(vec![])),
                    Err(InstantiationError::Trap(t)) => Ok(Err(RunError::Trap(t))),
                    Err(InstantiationError::Start(e)) => Ok(Err(e)),
                    Err(e) => bail!("instantiate: {e}"),
                }
            }
        }
    }

    fn run(&mut self, d: WastDirective<'_>) -> Result<Done> {
        if self.uses_refused(&d) {
            match &d {
                WastDirective::Register { name, .. } => {
                    self.refused_registered.insert(name.to_string());
                }
                WastDirective::ModuleInstance { instance, .. } => {
                    self.mark_refused(instance.map(|i| i.name().to_string()));
                }
                _ => {}
            }
            return Ok(Done::LeftOut);
        }
        match d {
            WastDirective::Module(wat) => self.module(wat),
            WastDirective::ModuleDefinition(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                let bytes = wat.encode().context("encode")?;
                let Some(module) = self.compile_or_refuse(&bytes)? else {
                    if let Some(n) = name {
                        self.refused.insert(n);
                    }
                    return Ok(Done::Refused);
                };
                if let Some(n) = name {
                    self.refused.remove(&n);
                    self.definitions.insert(n, module);
                }
                Ok(Done::Passed)
            }
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let bytes = module.encode().context("encode")?;
                let Some(m) = self.compile_or_refuse(&bytes)? else {
                    return Ok(Done::Refused);
                };
                match self.instantiate(&m) {
                    Ok(_) => bail!("expected unlinkable `{message}`, but it linked"),
                    Err(e) if self.unlinked_by_refusal(&e) => Ok(Done::LeftOut),
                    Err(InstantiationError::Unlinkable(msg)) if msg.contains(message) => {
                        Ok(Done::Passed)
                    }
                    Err(e) => bail!("expected unlinkable `{message}`, got {e}"),
                }
            }
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } if self.superseded.contains(&message) => {
                let Ok(bytes) = module.encode() else {
                    return Ok(Done::Passed);
                };
                match compile(&bytes) {
                    Ok(_) => Ok(Done::Superseded),
                    Err(_) => Ok(Done::Passed),
                }
            }
            d => self.run_assertion(d).map(|()| Done::Passed),
        }
    }

    /// Runs a directive that is not a module (or whose module the file
    /// may not refuse).
    fn run_assertion(&mut self, d: WastDirective<'_>) -> Result<()> {
        match d {
            WastDirective::Module(_) | WastDirective::ModuleDefinition(_) => {
                bail!("module directives are run by `run`")
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let m = module
                    .and_then(|m| self.definitions.get(m.name()).cloned())
                    .ok_or_else(|| anyhow!("unknown module definition"))?;
                let inst = self
                    .instantiate(&m)
                    .map_err(|e| anyhow!("instantiate: {e}"))?;
                if let Some(i) = instance {
                    self.named.insert(i.name().to_string(), inst);
                }
                self.last = Some(inst);
                Ok(())
            }
            WastDirective::Register { name, module, .. } => {
                let inst = self.instance(module)?;
                self.linker.define_instance(&self.store, name, inst);
                self.refused_registered.remove(name);
                Ok(())
            }
            WastDirective::Invoke(inv) => match self.invoke(inv)? {
                Ok(_) => Ok(()),
                Err(e) => bail!("invoke failed: {e}"),
            },
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = self.execute(exec)?.map_err(|e| anyhow!("{e}"))?;
                if got.len() != results.len() {
                    bail!("expected {} results, got {got:?}", results.len());
                }
                for (i, (v, want)) in got.iter().zip(&results).enumerate() {
                    let WastRet::Core(want) = want else {
                        bail!("component values are not supported");
                    };
                    if !val_matches(v, want) {
                        bail!("result {i}: expected {want:?}, got {v:?}");
                    }
                }
                Ok(())
            }
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec)? {
                Ok(v) => bail!("expected trap `{message}`, got {v:?}"),
                Err(RunError::Trap(t)) if trap_matches(t.code, &t.message, message) => Ok(()),
                Err(e) => bail!("expected trap `{message}`, got {e}"),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(call)? {
                Ok(v) => bail!("expected exhaustion `{message}`, got {v:?}"),
                Err(RunError::Trap(t)) if t.code == TrapCode::StackOverflow => Ok(()),
                Err(e) => bail!("expected exhaustion `{message}`, got {e}"),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            }
            | WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => {
                let Ok(bytes) = module.encode() else {
                    return Ok(());
                };
                match compile(&bytes) {
                    Ok(_) => bail!("expected failure `{message}`, but the module compiled"),
                    Err(_) => Ok(()),
                }
            }
            WastDirective::AssertUnlinkable { .. } => {
                bail!("assert_unlinkable is run by `run`")
            }
            WastDirective::AssertInvalidCustom { .. }
            | WastDirective::AssertMalformedCustom { .. } => Ok(()),
            WastDirective::AssertException { exec, .. } => match self.execute(exec)? {
                Ok(v) => bail!("expected an uncaught exception, got {v:?}"),
                Err(RunError::Trap(t)) if t.code == TrapCode::UncaughtException => Ok(()),
                Err(e) => bail!("expected an uncaught exception, got {e}"),
            },
            WastDirective::AssertSuspension { .. }
            | WastDirective::Thread(_)
            | WastDirective::Wait { .. } => bail!("directive outside WebAssembly 2.0"),
        }
    }
}

fn arg(a: &WastArg<'_>) -> Result<Val> {
    let WastArg::Core(a) = a else {
        bail!("component arguments are not supported");
    };
    Ok(match a {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::V128(c) => Val::V128(u128::from_le_bytes(c.to_le_bytes())),
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Func | AbstractHeapType::NoFunc,
            ..
        }) => Val::FuncRef(None),
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Extern | AbstractHeapType::NoExtern,
            ..
        }) => Val::ExternRef(None),
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Exn | AbstractHeapType::NoExn,
            ..
        }) => Val::ExnRef(None),
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(*n)),
        other => bail!("unsupported argument {other:?}"),
    })
}

fn f32_matches(bits: u32, p: &NanPattern<wast::token::F32>) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn f64_matches(bits: u64, p: &NanPattern<wast::token::F64>) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

/// Whether the `v128` `v` (little-endian: lane 0 in the low bits) matches
/// `p` lane by lane, NaN patterns per lane.
fn v128_matches(v: u128, p: &V128Pattern) -> bool {
    let b = v.to_le_bytes();
    let lane = |i: usize, n: usize| -> u64 {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[i * n..(i + 1) * n]);
        u64::from_le_bytes(x)
    };
    match p {
        V128Pattern::I8x16(l) => l
            .iter()
            .enumerate()
            .all(|(i, w)| lane(i, 1) == u64::from(*w as u8)),
        V128Pattern::I16x8(l) => l
            .iter()
            .enumerate()
            .all(|(i, w)| lane(i, 2) == u64::from(*w as u16)),
        V128Pattern::I32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, w)| lane(i, 4) == u64::from(*w as u32)),
        V128Pattern::I64x2(l) => l.iter().enumerate().all(|(i, w)| lane(i, 8) == *w as u64),
        V128Pattern::F32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, w)| f32_matches(lane(i, 4) as u32, w)),
        V128Pattern::F64x2(l) => l
            .iter()
            .enumerate()
            .all(|(i, w)| f64_matches(lane(i, 8), w)),
    }
}

fn val_matches(v: &Val, want: &WastRetCore<'_>) -> bool {
    match (v, want) {
        (Val::V128(a), WastRetCore::V128(p)) => v128_matches(*a, p),
        (Val::I32(a), WastRetCore::I32(b)) => a == b,
        (Val::I64(a), WastRetCore::I64(b)) => a == b,
        (Val::F32(a), WastRetCore::F32(p)) => f32_matches(*a, p),
        (Val::F64(a), WastRetCore::F64(p)) => f64_matches(*a, p),
        (Val::FuncRef(None), WastRetCore::RefNull(_)) => true,
        (Val::ExternRef(None), WastRetCore::RefNull(_)) => true,
        (Val::ExnRef(None), WastRetCore::RefNull(_)) => true,
        (Val::ExternRef(Some(a)), WastRetCore::RefExtern(Some(b))) => a == b,
        (Val::ExternRef(Some(_)), WastRetCore::RefExtern(None)) => true,
        (Val::FuncRef(Some(_)), WastRetCore::RefFunc(_)) => true,
        (_, WastRetCore::Either(list)) => list.iter().any(|w| val_matches(v, w)),
        _ => false,
    }
}
