//! The compiler the runtime calls for the resume clones an object left
//! out (`mvvm-aot --resume-clones=on-demand`): `mvvm-aot`'s, installed by
//! every tool that runs wasm ([`install`]). The runtime does not link the
//! compiler itself; see `mvvm_rt::CloneCompiler`.

use mvvm_abi::ModuleMeta;
use mvvm_abi::resume_code::CloneCode;
use std::sync::Arc;

/// `mvvm-aot`'s clone compilation, with the options the object records.
struct AotClones;

impl mvvm_rt::CloneCompiler for AotClones {
    fn compile(
        &self,
        meta: &ModuleMeta,
        wasm: &[u8],
        funcs: &[u32],
        max_threads: usize,
    ) -> Result<Vec<CloneCode>, String> {
        mvvm_aot::resume_clone::compile_clones_for(meta, wasm, funcs, max_threads)
            .map_err(|e| e.to_string())
    }
}

/// Lets the runtime compile resume clones on demand in this process.
pub fn install() {
    mvvm_rt::set_clone_compiler(Arc::new(AotClones));
}
