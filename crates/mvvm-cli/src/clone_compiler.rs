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

use crate::compile_cache::{CompileCache, sha256};
use mvvm_abi::ModuleMeta;
use mvvm_abi::resume_code::CloneCode;
use mvvm_rt::ClonePurpose;
use std::sync::Arc;

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
        let opts = mvvm_aot::resume_clone::options_of(meta);
        let digest = (purpose == ClonePurpose::Rewind)
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
}

/// Lets the runtime compile resume clones on demand in this process,
/// keeping those a rewind needs in `cache` (when it is on).
pub fn install(cache: CompileCache) {
    mvvm_rt::set_clone_compiler(Arc::new(AotClones { cache }));
}
