//! A loaded, relocated, executable module.

use crate::code::{CodeMemory, RegistrationGuard};
use crate::jit_clone::{InstallError, JitClones, Targets};
use crate::loader::{self, LoadError};
use crate::trap::CodeInfo;
use mvvm_abi::meta::ModuleMeta;
use mvvm_abi::resume_code::CloneCode;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A compiled module loaded from an `.aot` object; cheap to clone, may be
/// instantiated any number of times in any store.
#[derive(Debug, Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

#[derive(Debug)]
pub(crate) struct ModuleInner {
    /// Shared with the trap handler's `CodeInfo`.
    pub meta: Arc<ModuleMeta>,
    /// Where the code is (shared with the registry): each body's address
    /// is read from it when taken ([`CodeInfo::body_addr`]).
    pub code: Arc<CodeInfo>,
    pub import_stubs: Vec<usize>,
    pub trampolines: HashMap<u32, usize>,
    /// Canonical signature id per type index.
    pub type_ids: Vec<u32>,
    /// The largest `FuncTables::frame_capacity` of the module's functions
    /// (0 without stable points): the frame buffer it needs
    /// (`ModuleMeta::frame_slots`).
    pub frame_slots: usize,
    /// The wasm an object whose clones are compiled on demand carries
    /// (`mvvm_abi::object::WASM_SECTION`), read in place; `None` for an
    /// object that holds its clones (see `crate::resume`).
    pub wasm: Option<crate::resume::OnDemand>,
    /// The probe trampoline (`mvvm_probe`), when the object names it: the
    /// resume clones placed at run time call it.
    pub probe_trampoline: Option<usize>,
    // Field order matters: unregister before unmapping. `clones` holds
    // the registrations of the clones placed at run time, then their
    // arena.
    _registration: RegistrationGuard,
    pub(crate) clones: JitClones,
    _code: CodeMemory,
}

impl Module {
    /// Loads an `.aot` object (the bytes are copied; they need not outlive
    /// the module). [`Module::from_aot_file`] is cheaper for a file.
    pub fn from_aot(bytes: &[u8]) -> Result<Module, LoadError> {
        Self::from_loaded(loader::load(bytes)?)
    }

    /// Loads the `.aot` object at `path` without reading it whole: the
    /// file is mapped, and its code is mapped from it (shared between the
    /// processes that run the same object, read only where it runs) when
    /// the object's layout allows, as `mvvm-aot`'s does. The file may be
    /// replaced (renamed over) while the module lives, but must not be
    /// truncated or rewritten in place, as for any mapped executable.
    pub fn from_aot_file(path: &Path) -> Result<Module, LoadError> {
        let file = std::fs::File::open(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_loaded(loader::load_file(&file, path)?)
    }

    fn from_loaded(loaded: loader::LoadedCode) -> Result<Module, LoadError> {
        let type_ids = loaded
            .meta
            .types
            .iter()
            .map(crate::types::canonical_type_id)
            .collect();
        // Recorded by the compiler (and bounded by the loader), so that
        // the checkpoint tables need not be decoded to instantiate.
        let frame_slots = loaded.meta.frame_slots as usize;
        let code = Arc::new(loaded.info);
        let registration = crate::code::register(code.clone());
        let code_end = loaded.memory.base() + loaded.memory.len();
        Ok(Module {
            inner: Arc::new(ModuleInner {
                meta: loaded.meta,
                code,
                import_stubs: loaded.import_stubs,
                trampolines: loaded.trampolines,
                type_ids,
                frame_slots,
                wasm: loaded.wasm.map(crate::resume::OnDemand::new),
                probe_trampoline: loaded.probe_trampoline,
                _registration: registration,
                clones: JitClones::new(loaded.arena, code_end),
                _code: loaded.memory,
            }),
        })
    }

    /// The module's metadata (types, imports, exports, ...).
    pub fn meta(&self) -> &ModuleMeta {
        &self.inner.meta
    }

    /// The size in bytes of defined function `func`'s body (module-wide
    /// index: imports first) and of its resume clone, if it has one, as
    /// the entries section gives them; `None` for an import or an unknown
    /// index. For tests and tools (the sizes are not checked here).
    pub fn code_sizes(&self, func: u32) -> Option<(u32, Option<u32>)> {
        let k = func.checked_sub(self.inner.meta.num_imported_funcs)? as usize;
        let t = self.inner.code.entries.table();
        Some((t.body(k)?.size, t.clone_of(k).map(|c| c.size)))
    }

    /// Places `code`, a resume clone compiled for this module
    /// (`mvvm_aot::resume_clone::compile_resume_clone` with the options of
    /// its object), in executable memory next to the module's code,
    /// patches its calls (through veneers where a call cannot reach its
    /// target, when the clone cannot go next to the code), registers it for
    /// trap, exception and frame lookups (and the perf map), and returns
    /// its entry address. Installing
    /// a function again returns the first entry; the object's own clone, if
    /// it has one, is left as it is (see [`Module::clone_entry`]). May be
    /// called from several threads at once. See `crate::jit_clone` for how
    /// and why; nothing is placed when an error is returned.
    pub fn install_clone(&self, code: &CloneCode) -> Result<usize, InstallError> {
        self.inner.clones.install(&self.clone_targets(), code)
    }

    /// Where the calls of a clone placed in this module go.
    fn clone_targets(&self) -> Targets<'_> {
        let inner = &*self.inner;
        Targets {
            code: &inner.code,
            import_stubs: &inner.import_stubs,
            trampolines: &inner.trampolines,
            probe_trampoline: inner.probe_trampoline,
        }
    }

    /// [`Module::install_clone`] for several clones at once: those not
    /// installed yet are placed together in one run of pages (small clones
    /// share pages); their entries, in the order of `codes`.
    pub fn install_clones(&self, codes: &[CloneCode]) -> Result<Vec<usize>, InstallError> {
        self.inner.clones.install_all(&self.clone_targets(), codes)
    }

    /// The entry of defined function `func`'s resume clone (module-wide
    /// index: imports first), if there is one: the object's own (its
    /// entries section), else one placed by [`Module::install_clone`].
    pub fn clone_entry(&self, func: u32) -> Option<usize> {
        crate::jit_clone::object_clone(&self.inner.code, func)
            .or_else(|| self.inner.clones.entry(func))
    }

    /// The loaded code at `addr..addr + len`: in the module's mapping or
    /// among the clones placed at run time.
    #[cfg(test)]
    pub(crate) fn code_bytes(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        let code = &self.inner._code;
        let off = addr.wrapping_sub(code.base());
        if off < code.len() && off + len <= code.len() {
            return Some(code.bytes()[off..off + len].to_vec());
        }
        self.inner.clones.placed_bytes(addr, len)
    }

    /// The module's mapping (start, length) and its arena (start, end).
    #[cfg(test)]
    pub(crate) fn spans(&self) -> ((usize, usize), Option<(usize, usize)>) {
        let code = &self.inner._code;
        ((code.base(), code.len()), self.inner.clones.arena_span())
    }

    /// A module described by `meta` with no code behind it, for unit tests
    /// of everything but running wasm (instantiation, builtins, the store):
    /// every function and import stub address is 0 and no function has an
    /// array trampoline, so nothing can be called into.
    #[cfg(test)]
    pub(crate) fn without_code(meta: ModuleMeta) -> Module {
        let type_ids = meta
            .types
            .iter()
            .map(crate::types::canonical_type_id)
            .collect();
        let nimp = meta.num_imported_funcs as usize;
        let code = CodeMemory::new(1, 0).expect("a one-page anonymous mapping");
        let meta = Arc::new(meta);
        // Every body at the start of an empty text.
        let ndef = meta.num_defined_funcs();
        let entries = mvvm_abi::entries::EntryOffsets {
            bodies: vec![(0, 0); ndef],
            clones: vec![None; ndef],
            stubs: vec![(0, 0); nimp],
            trampolines: vec![0; meta.array_trampolines.len()],
        }
        .encode()
        .expect("entries of a test module");
        let len = entries.len();
        let entries = mvvm_abi::entries::EntrySection::from_section(
            Arc::new(entries),
            0..len,
            ndef,
            nimp,
            meta.array_trampolines.len(),
        )
        .expect("entries of a test module");
        let info = Arc::new(CodeInfo {
            text_start: code.base(),
            text_end: code.base(),
            code_start: code.base(),
            code_len: 0,
            entries,
            meta: meta.clone(),
            frames: None,
        });
        Module {
            inner: Arc::new(ModuleInner {
                code: info.clone(),
                import_stubs: vec![0; nimp],
                trampolines: HashMap::new(),
                type_ids,
                frame_slots: 0,
                wasm: None,
                probe_trampoline: None,
                meta,
                _registration: crate::code::register(info),
                clones: JitClones::new(None, code.base() + code.len()),
                _code: code,
            }),
        }
    }
}
