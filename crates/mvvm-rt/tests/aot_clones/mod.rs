//! `mvvm-aot`'s clone compilation, for tests that restore objects compiled
//! with their clones on demand (what `mvvm-cli` installs in its tools).

/// Compiles clones with `mvvm_aot::resume_clone::compile_clones_for`.
pub struct AotClones;

impl mvvm_rt::CloneCompiler for AotClones {
    fn compile(
        &self,
        meta: &mvvm_abi::ModuleMeta,
        wasm: &[u8],
        funcs: &[u32],
        max_threads: usize,
        _: mvvm_rt::ClonePurpose,
    ) -> Result<Vec<mvvm_abi::resume_code::CloneCode>, String> {
        mvvm_aot::resume_clone::compile_clones_for(meta, wasm, funcs, max_threads)
            .map_err(|e| e.to_string())
    }
}
