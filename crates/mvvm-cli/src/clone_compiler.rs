//! The compiler the runtime calls for the resume clones an object left
//! out (`mvvm-aot --resume-clones=on-demand`): `mvvm-aot`'s, installed by
//! every tool that runs wasm ([`install`]). The runtime does not link the
//! compiler itself; see `mvvm_rt::CloneCompiler`.
//!
//! The clones a rewind needed are kept in the compiled-object cache
//! ([`CompileCache::read_clone`]: same directory, trust rules and
//! `--no-cache`), one entry per function, keyed by the carried wasm's
//! SHA-256, the options the object records and the compiler's identity:
//! a second restore of the same object pays no compilation. Clones
//! compiled ahead in the background neither read nor write it: a module's
//! every clone would flood it, and each background batch would hash the
//! whole carried wasm again for its keys. A stored clone that does not
//! decode, or is for another function, is compiled again; the runtime
//! checks what it installs against the module (tables, sites, calls).
//!
//! A run that stops at a checkpoint written to a file puts the clones of
//! the functions on its stacks into the cache before the tool exits
//! ([`keep_for_restore`]), so that a restore on this machine finds them.

use crate::compile_cache::{CompileCache, sha256};
use mvvm_abi::ModuleMeta;
use mvvm_abi::resume_code::CloneCode;
use mvvm_rt::ClonePurpose;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `mvvm-aot`'s clone compilation, with the options the object records,
/// behind the cache.
struct AotClones {
    cache: CompileCache,
}

impl mvvm_rt::CloneCompiler for AotClones {
    fn compile(
        &self,
        meta: &ModuleMeta,
        wasm: &[u8],
        funcs: &[u32],
        max_threads: usize,
        purpose: ClonePurpose,
    ) -> Result<Vec<CloneCode>, String> {
        // Before the cache too: a clone, compiled now or stored, must come
        // from the build that compiled the object's hot bodies.
        mvvm_aot::resume_clone::same_compiler(meta).map_err(|e| e.to_string())?;
        let opts = mvvm_aot::resume_clone::options_of(meta);
        let digest = (purpose != ClonePurpose::Ahead)
            .then(|| self.cache.dir().map(|_| sha256(wasm)))
            .flatten();
        let mut found: Vec<Option<CloneCode>> = funcs
            .iter()
            .map(|&f| {
                let bytes = self.cache.read_clone(digest.as_ref()?, &opts, f)?;
                let code: CloneCode = mvvm_abi::codec::decode(&bytes).ok()?;
                (code.func == f).then_some(code)
            })
            .collect();
        let missing: Vec<u32> = funcs
            .iter()
            .zip(&found)
            .filter(|(_, c)| c.is_none())
            .map(|(&f, _)| f)
            .collect();
        tracing::debug!(
            asked = funcs.len(),
            cached = funcs.len() - missing.len(),
            "resume clones"
        );
        if !missing.is_empty() {
            let compiled =
                mvvm_aot::resume_clone::compile_clones_for(meta, wasm, &missing, max_threads)
                    .map_err(|e| e.to_string())?;
            let mut compiled = compiled.into_iter();
            for slot in found.iter_mut().filter(|c| c.is_none()) {
                let code = compiled
                    .next()
                    .ok_or("the compiler returned too few clones")?;
                if let Some(d) = &digest
                    && let Ok(bytes) = mvvm_abi::codec::encode(&code)
                {
                    self.cache.write_clone(d, &opts, code.func, &bytes);
                }
                *slot = Some(code);
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

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
        if purpose != ClonePurpose::Ahead {
            // Through the cache, batch by batch.
            let compile = |chunk: &[u32]| self.compile(meta, wasm, chunk, max_threads, purpose);
            return mvvm_rt::batch_by_batch(funcs, batch, compile, sink);
        }
        mvvm_aot::resume_clone::compile_clones_for_in_batches(
            meta,
            wasm,
            funcs,
            max_threads,
            batch,
            sink,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }
}

/// Whether the installed compiler keeps clones in a cache.
static CACHING: AtomicBool = AtomicBool::new(false);

/// Lets the runtime compile resume clones on demand in this process,
/// keeping those a rewind needs in `cache` (when it is on).
pub fn install(cache: CompileCache) {
    CACHING.store(cache.dir().is_some(), Ordering::Relaxed);
    mvvm_rt::set_clone_compiler(Arc::new(AotClones { cache }));
}

/// After a run stopped at a checkpoint written to a file: puts the resume
/// clones of the functions on its stacks (`CheckpointStats::stack_funcs`)
/// into the clone cache, so that restoring that snapshot on this machine
/// compiles nothing (with an object compiled with
/// `--resume-clones=on-demand`; nothing to do for one holding its clones,
/// or with `--no-cache`). Runs after the snapshot is durable, so it only
/// delays the tool's exit; a failure is logged, not fatal: the restore
/// compiles what it misses.
pub fn keep_for_restore(module: &mvvm_rt::Module, stats: &mvvm_rt::checkpoint::CheckpointStats) {
    if !CACHING.load(Ordering::Relaxed) {
        return;
    }
    let started = std::time::Instant::now();
    match module.keep_clones(&stats.stack_funcs) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(
            clones = n,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "resume clones of the snapshot's frames kept for its restore"
        ),
        Err(e) => tracing::warn!("keeping the snapshot's resume clones for its restore: {e}"),
    }
}
