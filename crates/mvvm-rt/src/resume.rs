//! Where a rewind finds a function's resume clone: in the object, or
//! compiled now from the wasm the object carries ("Resume clones compiled
//! on demand" in `crates/mvvm-aot/CHECKPOINT.md`).
//!
//! A hot body's rewind block calls builtin `ResumeCode` for its clone's
//! address ([`resume_code`]). An object compiled with its clones answers
//! from its entries section; one compiled with `--resume-clones=on-demand`
//! carries its wasm instead ([`mvvm_abi::object::WASM_SECTION`]), and the
//! clone is compiled by the [`CloneCompiler`] the embedder installed (the
//! runtime does not link the compiler: `mvvm-cli` installs `mvvm-aot`'s),
//! then placed next to the module's code (`Module::install_clone`).
//!
//! A restore compiles the clones of every function on the snapshot's
//! stacks before it rewinds ([`Module::prepare_clones`], all at once on
//! the available cores), so the builtin normally finds them; it compiles
//! one itself only for a rewind nothing prepared (the first continuing
//! periodic checkpoint, say), and that time is then part of the pause.

use crate::loader::CarriedWasm;
use crate::module::Module;
use mvvm_abi::ModuleMeta;
use mvvm_abi::resume_code::CloneCode;
use std::sync::{Arc, Mutex, RwLock};

/// What a module whose clones are compiled on demand keeps for it.
#[derive(Debug)]
pub(crate) struct OnDemand {
    /// The wasm the object carries.
    wasm: CarriedWasm,
    /// Held while a restore (or a rewind) compiles and installs clones,
    /// and while the background compile installs a batch: each installs
    /// only what is still missing. (A restore does not wait for the batch
    /// the background compile is translating: both may compile a few of
    /// the same functions, and the first installed is kept.)
    compiling: Mutex<()>,
}

impl OnDemand {
    pub(crate) fn new(wasm: CarriedWasm) -> OnDemand {
        OnDemand {
            wasm,
            compiling: Mutex::new(()),
        }
    }
}

/// Compiles resume clones for the runtime: installed once per process by
/// the embedder ([`set_clone_compiler`]).
pub trait CloneCompiler: Send + Sync {
    /// The clones of `funcs` (module-wide indices, sorted, distinct) of
    /// the module whose metadata is `meta`, from its carried `wasm`, in
    /// the order of `funcs`, on at most `max_threads` threads. Compiled
    /// with the options `meta` records, so that each clone agrees with its
    /// hot body's stable points. `purpose` says why they are wanted.
    fn compile(
        &self,
        meta: &ModuleMeta,
        wasm: &[u8],
        funcs: &[u32],
        max_threads: usize,
        purpose: ClonePurpose,
    ) -> Result<Vec<CloneCode>, String>;

    /// [`CloneCompiler::compile`] `batch` functions at a time, each batch
    /// handed to `sink` as soon as it is compiled; `sink` returning
    /// `false` stops. A compiler that can prepare a module once for all
    /// the batches should (the background compile of every clone of a
    /// large module otherwise prepares it once per batch); this default
    /// calls `compile` per batch.
    #[allow(clippy::too_many_arguments)]
    fn compile_in_batches(
        &self,
        meta: &ModuleMeta,
        wasm: &[u8],
        funcs: &[u32],
        batch: usize,
        max_threads: usize,
        purpose: ClonePurpose,
        sink: &mut dyn FnMut(Vec<CloneCode>) -> bool,
    ) -> Result<(), String> {
        let compile = |chunk: &[u32]| self.compile(meta, wasm, chunk, max_threads, purpose);
        batch_by_batch(funcs, batch, compile, sink)
    }
}

/// Runs `compile` on `funcs` `batch` at a time, handing each result to
/// `sink` until it returns `false`: [`CloneCompiler::compile_in_batches`]
/// for a compiler that prepares a module per call.
pub fn batch_by_batch(
    funcs: &[u32],
    batch: usize,
    mut compile: impl FnMut(&[u32]) -> Result<Vec<CloneCode>, String>,
    sink: &mut dyn FnMut(Vec<CloneCode>) -> bool,
) -> Result<(), String> {
    for chunk in funcs.chunks(batch.max(1)) {
        if !sink(compile(chunk)?) {
            break;
        }
    }
    Ok(())
}

/// Why clones are compiled: a compiler that keeps clones beyond the
/// process (a disk cache) keeps those a rewind needed, not every clone of
/// a module compiled ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClonePurpose {
    /// A restore or a rewind needs them now.
    Rewind,
    /// Compiled ahead of any need, in the background (`--every`, a
    /// migration receiver).
    Ahead,
    /// A checkpoint just saved frames of these functions: a later
    /// restore will need their clones. Asked only to be kept (a compiler
    /// with a cache compiles those it does not hold and stores them); the
    /// runtime installs nothing.
    Keep,
}

/// The process's clone compiler, if the embedder installed one.
static COMPILER: RwLock<Option<Arc<dyn CloneCompiler>>> = RwLock::new(None);

/// Installs the compiler that makes the clones an object left out (the
/// last one installed wins). Without one, rewinding a function of such an
/// object fails with an error that says so.
pub fn set_clone_compiler(compiler: Arc<dyn CloneCompiler>) {
    let mut c = COMPILER.write().unwrap_or_else(|e| e.into_inner());
    *c = Some(compiler);
}

fn compiler() -> Option<Arc<dyn CloneCompiler>> {
    COMPILER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Why a function's resume clone cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The function has no clone in the object and the object carries no
    /// wasm to compile one from.
    #[error(
        "function {0} has no resume clone in the object, and the object carries no wasm \
         to compile one (compiled with a developer option that leaves clones out?)"
    )]
    NoClone(u32),
    /// The object carries its wasm but no compiler was installed.
    #[error(
        "function {0}'s resume clone must be compiled, and this program has no compiler \
         for it (an embedder must call mvvm_rt::set_clone_compiler)"
    )]
    NoCompiler(u32),
    /// Compiling the clones failed.
    #[error("compiling the resume clones of functions {funcs:?} failed: {message}")]
    Compile {
        /// The functions asked for.
        funcs: Vec<u32>,
        /// The compiler's message.
        message: String,
    },
    /// The compiler returned something else than what was asked.
    #[error("the clone compiler returned {got} clones for {asked} functions")]
    WrongCount {
        /// How many were asked for.
        asked: usize,
        /// How many came back.
        got: usize,
    },
    /// Placing a compiled clone failed.
    #[error("placing the resume clone of function {func}: {message}")]
    Install {
        /// The function.
        func: u32,
        /// Why.
        message: String,
    },
}

impl Module {
    /// Makes sure every function of `funcs` (module-wide indices; any
    /// order, repeats and functions without a loop allowed) that a rewind
    /// may enter through its clone has one: compiles and installs those
    /// the object left out, all in one compilation. A restore calls this
    /// with the functions of the snapshot's frames before it rewinds.
    /// Nothing to do for an object that holds its clones.
    pub fn prepare_clones(&self, funcs: &[u32]) -> Result<usize, ResumeError> {
        self.prepare_clones_on(funcs, usize::MAX, ClonePurpose::Rewind)
    }

    /// [`Module::prepare_clones`] on at most `max_threads` threads.
    fn prepare_clones_on(
        &self,
        funcs: &[u32],
        max_threads: usize,
        purpose: ClonePurpose,
    ) -> Result<usize, ResumeError> {
        let Some(on_demand) = self.inner.wasm.as_ref() else {
            return Ok(0);
        };
        let _compiling = on_demand
            .compiling
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut missing: Vec<u32> = funcs
            .iter()
            .copied()
            .filter(|&f| self.needs_clone(f) && self.clone_entry(f).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(0);
        }
        let compiler = compiler().ok_or(ResumeError::NoCompiler(missing[0]))?;
        let started = std::time::Instant::now();
        let clones = compiler
            .compile(
                &self.inner.meta,
                on_demand.wasm.bytes(),
                &missing,
                max_threads,
                purpose,
            )
            .map_err(|message| ResumeError::Compile {
                funcs: missing.clone(),
                message,
            })?;
        if clones.len() != missing.len() || clones.iter().zip(&missing).any(|(c, f)| c.func != *f) {
            return Err(ResumeError::WrongCount {
                asked: missing.len(),
                got: clones.len(),
            });
        }
        self.install_clones(&clones)
            .map_err(|e| ResumeError::Install {
                func: clones[0].func,
                message: e.to_string(),
            })?;
        tracing::debug!(
            clones = clones.len(),
            code_bytes = clones.iter().map(|c| c.bytes.len()).sum::<usize>(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "compiled resume clones on demand"
        );
        Ok(clones.len())
    }

    /// After a checkpoint: hands the compiler the functions of its frames
    /// (`CheckpointStats::stack_funcs`) that need a clone this object left
    /// out, with [`ClonePurpose::Keep`], so that a compiler with a cache
    /// has them ready for a later restore of the snapshot (which then
    /// reads them instead of compiling). Installs nothing. The number of
    /// functions handed over: zero for an object that holds its clones,
    /// or when no compiler is installed.
    pub fn keep_clones(&self, funcs: &[u32]) -> Result<usize, ResumeError> {
        let Some(on_demand) = self.inner.wasm.as_ref() else {
            return Ok(0);
        };
        let mut wanted: Vec<u32> = funcs
            .iter()
            .copied()
            .filter(|&f| self.needs_clone(f))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let Some(compiler) = compiler().filter(|_| !wanted.is_empty()) else {
            return Ok(0);
        };
        compiler
            .compile(
                &self.inner.meta,
                on_demand.wasm.bytes(),
                &wanted,
                usize::MAX,
                ClonePurpose::Keep,
            )
            .map_err(|message| ResumeError::Compile {
                funcs: wanted.clone(),
                message,
            })?;
        Ok(wanted.len())
    }

    /// Compiles every clone this object left out on one background thread,
    /// after one preparation of the module, installing them a few
    /// functions at a time, so that periodic checkpoints (`--every`),
    /// which continue by rewinding, find the clones ready instead of
    /// compiling them inside their pause. A checkpoint that comes first
    /// compiles what it needs itself (installing a clone twice keeps the
    /// first). Nothing for an object that holds its clones. Failures are
    /// logged, not fatal: the rewind that needs the clone reports them.
    pub fn compile_clones_in_background(&self) {
        if self.inner.wasm.is_none() {
            return;
        }
        let Some(compiler) = compiler() else {
            tracing::warn!("no clone compiler installed: resume clones are not compiled ahead");
            return;
        };
        let module = self.clone();
        let spawned = std::thread::Builder::new()
            .name("mvvm-clones".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let meta = &module.inner.meta;
                let Some(on_demand) = module.inner.wasm.as_ref() else {
                    return;
                };
                let nimp = meta.num_imported_funcs;
                let all: Vec<u32> = (nimp..meta.funcs.len() as u32)
                    .filter(|&f| module.needs_clone(f))
                    .collect();
                let mut done = 0;
                let mut failed = None;
                // One preparation of the module, then small batches on one
                // thread (the other cores are the program's), each usable
                // as soon as it is installed. Installing takes the module's
                // compile lock; a clone a restore installed meanwhile is
                // kept.
                let r = compiler.compile_in_batches(
                    meta,
                    on_demand.wasm.bytes(),
                    &all,
                    16,
                    1,
                    ClonePurpose::Ahead,
                    &mut |clones| {
                        let _installing = on_demand
                            .compiling
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        let missing: Vec<CloneCode> = clones
                            .into_iter()
                            .filter(|c| module.clone_entry(c.func).is_none())
                            .collect();
                        if let Err(e) = module.install_clones(&missing) {
                            failed = Some(e.to_string());
                            return false;
                        }
                        done += missing.len();
                        true
                    },
                );
                if let Some(e) = failed.or(r.err()) {
                    tracing::warn!("background compile of resume clones: {e}");
                    return;
                }
                tracing::debug!(
                    clones = done,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "background compile of resume clones done"
                );
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the background compile of resume clones: {e}");
        }
    }

    /// Whether defined function `func` has a rewind block that asks for a
    /// clone: the compiler gives one to every function with a loop, which
    /// is every function the object's stable points say has a loop header
    /// (a function's tables are decoded here, as a rewind of it does).
    fn needs_clone(&self, func: u32) -> bool {
        self.inner.meta.func_tables(func).is_ok_and(|t| {
            t.stable_points
                .iter()
                .any(|p| p.kind == mvvm_abi::StablePointKind::Loop)
        })
    }

    /// The entry of `func`'s clone for builtin `ResumeCode`: the object's,
    /// one installed earlier, or one compiled now.
    pub(crate) fn resume_entry(&self, func: u32) -> Result<usize, ResumeError> {
        if let Some(entry) = self.clone_entry(func) {
            return Ok(entry);
        }
        if self.inner.wasm.is_none() {
            return Err(ResumeError::NoClone(func));
        }
        self.prepare_clones(&[func])?;
        self.clone_entry(func).ok_or(ResumeError::NoClone(func))
    }
}

/// Builtin `ResumeCode`'s work: the clone entry of `func` in the module
/// of the instance being rewound, or why there is none.
pub(crate) fn resume_code(module: &Module, func: u32) -> Result<usize, String> {
    module.resume_entry(func).map_err(|e| e.to_string())
}
