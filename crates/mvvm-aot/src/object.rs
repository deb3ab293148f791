//! Emission of the `.aot` ELF object with cranelift-object.
//!
//! Compiled code arrives as bytes plus relocations (functions are compiled
//! in parallel, each in its own Cranelift context) and is defined here in a
//! fixed order, so the same input always gives the same bytes. The metadata
//! is a read-only data object `mvvm_meta` alone in the section
//! [`META_SECTION`].
//!
//! The layout serves start-up (see docs/startup.md):
//! - `.text` is aligned to [`text_file_align`] in the file, so the runtime
//!   maps it from the file instead of copying it: pages are shared between
//!   processes and read only when executed;
//! - the calls between functions (PC-relative relocations whose target is
//!   in `.text` too) are applied here, like a linker would, and their
//!   relocations are left out of the object: the loader neither reads
//!   nor writes anything for them and touches no code page (they were
//!   most of the relocations, and checking them one by one was a fifth of
//!   a policy object's start-up). [`crate::compile_keeping_relocations`]
//!   keeps them, for ELF tools and tests;
//! - where each body, resume clone, import stub and array trampoline
//!   is written in [`ENTRIES_SECTION`] (offsets and sizes, see
//!   `mvvm_abi::entries`), so the loader does not walk the symbol table;
//! - the resume clones (entered only while restoring a snapshot) come after
//!   every other function, so the code a run executes is packed into the
//!   first pages and the clones' pages are never read by a run that is not
//!   a restore;
//! - the functions' ELF symbols (one per body, clone, stub and trampoline:
//!   3.1 MiB of `.symtab` and `.strtab` in a policy object of 40 000
//!   functions) are left out: the runtime finds code through
//!   [`ENTRIES_SECTION`] and names it through [`NAMES_SECTION`] (its trap
//!   messages and `MVVM_PERF_MAP`). `mvvm-aot --symbols` keeps them, for
//!   `objdump`/`nm` and other ELF tools, as does an object that keeps its
//!   call relocations (which name them).

use crate::CompileError;
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::ir;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_module::{DataDescription, FuncId, Linkage, Module, ModuleReloc, ModuleRelocTarget};
use cranelift_object::object;
use cranelift_object::{ObjectBuilder, ObjectModule};
use mvvm_abi::entries::EntryOffsets;
use mvvm_abi::exception::CallSite;
use mvvm_abi::object::{
    CKPT_SECTION, ENTRIES_SECTION, FRAMES_SECTION, META_SECTION, NAMES_SECTION, TRAPS_SECTION,
    WASM_SECTION,
};
use mvvm_abi::version::{AOT_FORMAT_VERSION, META_MAGIC};
use mvvm_abi::{FuncTables, ModuleMeta, TrapSite};
use object::write::SymbolSection;

/// The name of the metadata data symbol.
pub const META_SYMBOL: &str = "mvvm_meta";

/// The name of the checkpoint tables' data symbol.
pub const CKPT_SYMBOL: &str = "mvvm_ckpt";

/// The name of the trap sites' data symbol.
pub const TRAPS_SYMBOL: &str = "mvvm_traps";

/// Prefix of the resume clones' symbols (`mvvm_abi::object::resume_symbol`).
const RESUME_PREFIX: &str = "mvvm_resume_";

/// File alignment of `.text`: a multiple of every page size the target's
/// Linux kernels use (4 KiB on x86-64; 4, 16 or 64 KiB on aarch64), so the
/// runtime can map the text straight from the file.
fn text_file_align(arch: target_lexicon::Architecture) -> u64 {
    match arch {
        target_lexicon::Architecture::X86_64 => 4 << 10,
        _ => 64 << 10,
    }
}

/// A compiled function, ready to be placed in the object.
pub(crate) struct CompiledFunc {
    /// Machine code (including its constant pool).
    pub bytes: Vec<u8>,
    /// Required alignment of the code.
    pub alignment: u64,
    /// Relocations, converted to object-module targets.
    pub relocs: Vec<ModuleReloc>,
    /// Exception call sites (those with handlers), for the metadata.
    pub call_sites: Vec<CallSite>,
    /// Trap sites sorted by code offset, for the trap sites section.
    pub traps: Vec<TrapSite>,
    /// Locals and stable points, for the checkpoint tables section.
    pub tables: FuncTables,
}

/// A function held back until [`Emitter::finish`] (a resume clone).
struct Deferred {
    id: FuncId,
    func_index: u32,
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
}

/// A PC-relative relocation from one function to another (or into one),
/// applied by [`Emitter::finish`] once every function has its offset.
struct Patch {
    /// The function holding the place, and the place's offset in it.
    from: FuncId,
    offset: u32,
    kind: Reloc,
    /// The target function, and an offset into it.
    to: FuncId,
    to_offset: u32,
    addend: i64,
}

/// Builds the object.
pub(crate) struct Emitter {
    module: ObjectModule,
    /// File alignment of `.text` (see [`text_file_align`]).
    text_align: u64,
    /// Whether a function was defined yet (the first carries the text
    /// alignment).
    defined_any: bool,
    /// The functions declared as resume clones (by `FuncId` number).
    cold: Vec<bool>,
    /// Resume clones, defined last.
    deferred: Vec<Deferred>,
    /// Calls to apply in `.text`.
    patches: Vec<Patch>,
    /// Whether the applied calls keep their relocations in the object.
    keep_call_relocations: bool,
    /// Whether the functions' symbols stay in the object.
    symbols: bool,
}

/// What the object holds besides what the runtime needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectOptions {
    /// Leave the relocations of the calls the emitter applies in the
    /// object too (for ELF tools; the loader then applies them again, to
    /// the same bytes). The symbols they name stay.
    pub keep_call_relocations: bool,
    /// Keep every function's ELF symbol.
    pub symbols: bool,
    /// Leave the resume clones out and carry the wasm instead
    /// ([`WASM_SECTION`]): the runtime compiles a clone when a rewind
    /// needs it ("Resume clones compiled on demand" in CHECKPOINT.md).
    pub clones_on_demand: bool,
}

/// The functions whose offsets go into [`ENTRIES_SECTION`], by role (see
/// `mvvm_abi::entries`).
pub(crate) struct EntryIds {
    /// Each defined function's body.
    pub bodies: Vec<FuncId>,
    /// Each defined function's resume clone, if any.
    pub clones: Vec<Option<FuncId>>,
    /// Each import stub.
    pub stubs: Vec<FuncId>,
    /// Each array trampoline, in the order of
    /// `ModuleMeta::array_trampolines`.
    pub trampolines: Vec<FuncId>,
}

/// A [`CompileError::Object`]: `step` (what the emitter was doing) failed.
fn object_err<E>(step: impl Into<String>) -> impl FnOnce(E) -> CompileError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let step = step.into();
    move |e| CompileError::Object {
        step,
        source: Box::new(e),
    }
}

/// A [`CompileError::Object`] with a message of ours.
fn layout_err(step: &str, message: String) -> CompileError {
    CompileError::Object {
        step: step.to_string(),
        source: message.into(),
    }
}

impl Emitter {
    /// A new, empty object for `isa`, holding what `options` ask for.
    pub fn new(isa: OwnedTargetIsa, options: ObjectOptions) -> Result<Self, CompileError> {
        let text_align = text_file_align(isa.triple().architecture);
        let builder = ObjectBuilder::new(isa, "mvvm", cranelift_module::default_libcall_names())
            .map_err(object_err("start the object"))?;
        Ok(Emitter {
            module: ObjectModule::new(builder),
            text_align,
            defined_any: false,
            cold: Vec::new(),
            deferred: Vec::new(),
            patches: Vec::new(),
            keep_call_relocations: options.keep_call_relocations,
            symbols: options.symbols,
        })
    }

    /// Declares an exported function symbol.
    pub fn declare_function(
        &mut self,
        name: &str,
        sig: &ir::Signature,
    ) -> Result<FuncId, CompileError> {
        let id = self
            .module
            .declare_function(name, Linkage::Export, sig)
            .map_err(object_err(format!("declare `{name}`")))?;
        let n = id.as_u32() as usize;
        if self.cold.len() <= n {
            self.cold.resize(n + 1, false);
        }
        self.cold[n] = name.starts_with(RESUME_PREFIX);
        Ok(id)
    }

    /// Defines a declared function's code (a resume clone only at
    /// [`Emitter::finish`], after every other function).
    ///
    /// Refuses relocations against anything but our own functions: the
    /// runtime resolves symbols only inside the object, so a libcall (which
    /// Cranelift emits only for operations the target lacks) must not slip
    /// through.
    pub fn define_function(
        &mut self,
        id: FuncId,
        func_index: u32,
        code: &CompiledFunc,
    ) -> Result<(), CompileError> {
        for r in &code.relocs {
            if !matches!(
                r.name,
                ModuleRelocTarget::User { namespace: 0, .. }
                    | ModuleRelocTarget::FunctionOffset(..)
            ) {
                return Err(CompileError::Codegen {
                    func: func_index,
                    message: format!(
                        "relocation against an external symbol ({}); the target CPU lacks a feature the code needs",
                        r.name
                    ),
                });
            }
        }
        if self
            .cold
            .get(id.as_u32() as usize)
            .copied()
            .unwrap_or(false)
        {
            self.deferred.push(Deferred {
                id,
                func_index,
                bytes: code.bytes.clone(),
                alignment: code.alignment,
                relocs: code.relocs.clone(),
            });
            return Ok(());
        }
        self.define_now(id, func_index, &code.bytes, code.alignment, &code.relocs)
    }

    /// Appends one function to `.text` and notes the calls to apply.
    fn define_now(
        &mut self,
        id: FuncId,
        func_index: u32,
        bytes: &[u8],
        alignment: u64,
        relocs: &[ModuleReloc],
    ) -> Result<(), CompileError> {
        // The first function starts the section: its alignment becomes the
        // section's, hence the file offset's (at no cost in padding).
        let alignment = if self.defined_any {
            alignment
        } else {
            alignment.max(self.text_align)
        };
        self.defined_any = true;
        let mut kept = Vec::with_capacity(if self.keep_call_relocations {
            relocs.len()
        } else {
            0
        });
        for r in relocs {
            let (to, to_offset) = match r.name {
                ModuleRelocTarget::User {
                    namespace: 0,
                    index,
                } => (FuncId::from_u32(index), 0),
                ModuleRelocTarget::FunctionOffset(f, off) => (f, off),
                _ => {
                    kept.push(r.clone());
                    continue;
                }
            };
            if is_pc_relative(r.kind) {
                self.patches.push(Patch {
                    from: id,
                    offset: r.offset,
                    kind: r.kind,
                    to,
                    to_offset,
                    addend: r.addend,
                });
                if !self.keep_call_relocations {
                    continue;
                }
            }
            kept.push(r.clone());
        }
        self.module
            .define_function_bytes(id, alignment, bytes, &kept)
            .map_err(object_err(format!("define function {func_index}")))
    }

    /// Writes the metadata sections (and the entry points of `entries`)
    /// and returns the object's bytes.
    pub fn finish(
        mut self,
        meta: &ModuleMeta,
        entries: &EntryIds,
        frames: Option<&[u8]>,
        wasm: Option<&[u8]>,
    ) -> Result<Vec<u8>, CompileError> {
        for d in std::mem::take(&mut self.deferred) {
            self.define_now(d.id, d.func_index, &d.bytes, d.alignment, &d.relocs)?;
        }
        let encoded = mvvm_abi::codec::encode(meta).map_err(object_err("encode the metadata"))?;
        let mut bytes = Vec::with_capacity(META_MAGIC.len() + 4 + encoded.len());
        bytes.extend_from_slice(&META_MAGIC);
        bytes.extend_from_slice(&AOT_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&encoded);
        let id = self
            .module
            .declare_data(META_SYMBOL, Linkage::Export, false, false)
            .map_err(object_err("declare the metadata"))?;
        let mut desc = DataDescription::new();
        desc.define(bytes.into_boxed_slice());
        desc.set_custom_section(META_SECTION);
        desc.set_align(8);
        self.module
            .define_data(id, &desc)
            .map_err(object_err("define the metadata"))?;
        // The checkpoint tables, in their own section: the runtime decodes
        // them per function when a checkpoint needs them, not at load.
        let id = self
            .module
            .declare_data(CKPT_SYMBOL, Linkage::Export, false, false)
            .map_err(object_err("declare the checkpoint tables"))?;
        let mut desc = DataDescription::new();
        desc.define(meta.checkpoint_tables.encoded().into());
        desc.set_custom_section(CKPT_SECTION);
        desc.set_align(8);
        self.module
            .define_data(id, &desc)
            .map_err(object_err("define the checkpoint tables"))?;
        // The trap sites, fixed-width records the runtime reads in place.
        let id = self
            .module
            .declare_data(TRAPS_SYMBOL, Linkage::Export, false, false)
            .map_err(object_err("declare the trap sites"))?;
        let mut desc = DataDescription::new();
        desc.define(meta.trap_sites.encoded().into());
        desc.set_custom_section(TRAPS_SECTION);
        desc.set_align(8);
        self.module
            .define_data(id, &desc)
            .map_err(object_err("define the trap sites"))?;
        let mut product = self.module.finish();
        let arch = product.object.architecture();
        apply_patches(&mut product, &self.patches, arch)?;
        let text = product
            .object
            .section_id(object::write::StandardSection::Text);
        let offsets = entry_offsets(&product, text, entries)?;
        // Not allocated (`Other`), like the entries below: read from the
        // file, never placed in the code mapping.
        let sec = product.object.add_section(
            Vec::new(),
            NAMES_SECTION.as_bytes().to_vec(),
            object::SectionKind::Other,
        );
        product
            .object
            .append_section_data(sec, meta.func_names.encoded(), 8);
        let encoded = offsets
            .encode()
            .map_err(object_err("encode the entry points"))?;
        // Not allocated (`Other`): read from the file by the loader, like
        // the other metadata sections, never placed in the code mapping.
        let sec = product.object.add_section(
            Vec::new(),
            ENTRIES_SECTION.as_bytes().to_vec(),
            object::SectionKind::Other,
        );
        product.object.append_section_data(sec, &encoded, 8);
        // Developer option `frame_map` only: the frame maps, read from the
        // file like the sections above.
        if let Some(frames) = frames {
            let sec = product.object.add_section(
                Vec::new(),
                FRAMES_SECTION.as_bytes().to_vec(),
                object::SectionKind::Other,
            );
            product.object.append_section_data(sec, frames, 8);
        }
        // Clones compiled on demand: the wasm they are compiled from, read
        // from the file only when a rewind needs a clone.
        if let Some(wasm) = wasm {
            let sec = product.object.add_section(
                Vec::new(),
                WASM_SECTION.as_bytes().to_vec(),
                object::SectionKind::Other,
            );
            product.object.append_section_data(sec, wasm, 8);
        }
        let bytes = product
            .object
            .write()
            .map_err(object_err("write the ELF object"))?;
        // Its sections' data is in `bytes` now: free it before the copy.
        drop(product);
        if self.symbols || self.keep_call_relocations {
            return Ok(bytes);
        }
        without_function_symbols(&bytes)
    }
}

/// Where function `f` is: its section, offset in it and size.
fn place_of(
    product: &cranelift_object::ObjectProduct,
    f: FuncId,
    step: &str,
) -> Result<(object::write::SectionId, u64, u64), CompileError> {
    let sym = product
        .functions
        .get(f)
        .copied()
        .flatten()
        .map(|(s, _)| product.object.symbol(s));
    match sym.map(|s| (s.section, s.value, s.size)) {
        Some((SymbolSection::Section(s), value, size)) => Ok((s, value, size)),
        _ => Err(layout_err(
            step,
            format!("function #{} is not defined", f.as_u32()),
        )),
    }
}

/// The offsets in `.text` of every entry point named in `ids`.
fn entry_offsets(
    product: &cranelift_object::ObjectProduct,
    text: object::write::SectionId,
    ids: &EntryIds,
) -> Result<EntryOffsets, CompileError> {
    const STEP: &str = "record the entry points";
    let at = |f: FuncId| -> Result<(u32, u32), CompileError> {
        let (sec, value, size) = place_of(product, f, STEP)?;
        if sec != text {
            return Err(layout_err(STEP, "a function outside .text".into()));
        }
        let fit = |v: u64| {
            u32::try_from(v).map_err(|_| layout_err(STEP, "a text larger than 4 GiB".into()))
        };
        Ok((fit(value)?, fit(size)?))
    };
    Ok(EntryOffsets {
        bodies: ids
            .bodies
            .iter()
            .map(|&f| at(f))
            .collect::<Result<_, _>>()?,
        clones: ids
            .clones
            .iter()
            .map(|c| c.map(at).transpose())
            .collect::<Result<_, _>>()?,
        stubs: ids.stubs.iter().map(|&f| at(f)).collect::<Result<_, _>>()?,
        trampolines: ids
            .trampolines
            .iter()
            .map(|&f| at(f).map(|p| p.0))
            .collect::<Result<_, _>>()?,
    })
}

/// Whether a relocation of `kind` is applied here (PC-relative: the same
/// value wherever `.text` is loaded) and left out of the object:
/// `R_X86_64_PC32`, `R_X86_64_PLT32`, `R_AARCH64_CALL26`.
fn is_pc_relative(kind: Reloc) -> bool {
    matches!(
        kind,
        Reloc::X86PCRel4 | Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 | Reloc::Arm64Call
    )
}

/// Applies every patch in `.text`, from the final symbol offsets.
fn apply_patches(
    product: &mut cranelift_object::ObjectProduct,
    patches: &[Patch],
    arch: object::Architecture,
) -> Result<(), CompileError> {
    const STEP: &str = "pre-link the calls";
    for p in patches {
        let (from_sec, from_off, _) = place_of(product, p.from, STEP)?;
        let (to_sec, to_off, _) = place_of(product, p.to, STEP)?;
        if from_sec != to_sec {
            return Err(layout_err(STEP, "a call between sections".into()));
        }
        let place = from_off + u64::from(p.offset);
        let target = to_off + u64::from(p.to_offset);
        let d = (target as i64)
            .wrapping_add(p.addend)
            .wrapping_sub(place as i64);
        let data = product.object.section_mut(from_sec).data_mut();
        let at = place as usize;
        let field = data
            .get_mut(at..at + 4)
            .ok_or_else(|| layout_err(STEP, "relocation outside the text".into()))?;
        let out_of_range = || layout_err(STEP, format!("call at {place:#x} out of range"));
        match (p.kind, arch) {
            (Reloc::Arm64Call, object::Architecture::Aarch64) => {
                if d & 3 != 0 || !(-(1 << 27)..(1 << 27)).contains(&d) {
                    return Err(out_of_range());
                }
                let insn = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
                let imm = ((d >> 2) as u32) & 0x03ff_ffff;
                field.copy_from_slice(&((insn & !0x03ff_ffff) | imm).to_le_bytes());
            }
            (Reloc::X86PCRel4 | Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4, _) => {
                let v = i32::try_from(d).map_err(|_| out_of_range())?;
                field.copy_from_slice(&v.to_le_bytes());
            }
            (kind, arch) => {
                return Err(layout_err(STEP, format!("relocation {kind:?} on {arch:?}")));
            }
        }
    }
    Ok(())
}

/// `bytes` (the object) rewritten without its functions' symbols, except
/// any a relocation names. cranelift-object gives every declared function
/// a symbol and cannot leave one out, so the object is read back and
/// written again: a copy of its bytes, a small part of a compilation.
fn without_function_symbols(bytes: &[u8]) -> Result<Vec<u8>, CompileError> {
    use object::build::Id;
    use object::build::elf::{Builder, SectionData};
    let step = "leave the functions' symbols out";
    let mut b = Builder::read(bytes).map_err(object_err(step))?;
    let mut named = std::collections::HashSet::new();
    for sec in b.sections.iter() {
        if let SectionData::Relocation(relocs) = &sec.data {
            named.extend(relocs.iter().filter_map(|r| r.symbol).map(|s| s.index()));
        }
    }
    for sym in b.symbols.iter_mut() {
        // The probe trampoline keeps its symbol: it is the one target of
        // a resume clone compiled at run time that the entries section
        // does not locate (see `mvvm_rt`'s `jit_clone`).
        let used = named.contains(&sym.id().index())
            || &sym.name[..] == mvvm_abi::object::PROBE_TRAMPOLINE_SYMBOL.as_bytes();
        if sym.st_type() == object::elf::STT_FUNC && !used {
            sym.delete = true;
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    b.write(&mut out).map_err(object_err(step))?;
    Ok(out)
}
