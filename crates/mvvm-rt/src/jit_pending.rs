//! TEMPORARY (removed when wip/jit merges): object clones only.
use crate::module::Module;
impl Module {
    /// The entry of `func`'s clone in the object.
    pub fn clone_entry(&self, func: u32) -> Option<usize> {
        let k = func.checked_sub(self.inner.meta.num_imported_funcs)? as usize;
        let e = self.inner.code.entries.table().clone_of(k)?;
        Some(self.inner.code.code_start + e.offset as usize)
    }
    /// Not yet.
    pub fn install_clone(&self, _code: &mvvm_abi::resume_code::CloneCode) -> Result<usize, String> {
        Err("placing clones is not built yet".into())
    }
}
