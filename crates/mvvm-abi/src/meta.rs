//! Metadata of a compiled module, stored in the `.aot` object's
//! [`META_SECTION`](crate::object::META_SECTION).
//!
//! It is everything the runtime needs to instantiate the module without the
//! original wasm: types, imports, exports, memories, tables, globals,
//! segments, names. The trap sites that map a faulting code offset back to
//! a trap code and bytecode offset are in a section of their own
//! ([`trap_sites`](crate::trap_sites)), as are the checkpoint tables
//! ([`tables`](crate::tables)).

use crate::checkpoint::Policy;
use crate::names::FuncNames;
use crate::tables::{CheckpointTables, FuncTables, TablesError};
use crate::trap::TrapCode;
use crate::trap_sites::{TrapSiteTable, TrapSitesError};
use serde::{Deserialize, Serialize};

/// A wasm value type (WebAssembly 2.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValType {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `v128`: two value slots wherever values sit in `u64` slots (see
    /// [`ValType::slots`]), a whole 16-byte cell as a global.
    V128,
    /// `funcref`
    FuncRef,
    /// `externref`
    ExternRef,
    /// `exnref` (exception handling): a handle the runtime hands out for a
    /// caught exception, 0 for null; see [`crate::exception`].
    ExnRef,
}

impl ValType {
    /// How many consecutive [`VALUE_SLOT_SIZE`](crate::vmctx::VALUE_SLOT_SIZE)
    /// slots a value of this type takes in an array call's value array and
    /// in a saved frame: two for `v128` (low 8 bytes first, little-endian),
    /// one for the others. Compiler and runtime both count slots with this.
    pub const fn slots(self) -> usize {
        match self {
            ValType::V128 => 2,
            _ => 1,
        }
    }
}

/// A function signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FuncType {
    /// Parameter types.
    pub params: Vec<ValType>,
    /// Result types.
    pub results: Vec<ValType>,
}

/// Limits of a memory (in pages) or a table (in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Initial size.
    pub min: u64,
    /// Maximum size, if declared.
    pub max: Option<u64>,
}

/// A memory type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryType {
    /// Size limits in wasm pages.
    pub limits: Limits,
    /// Shared memory (threads proposal): it always has a maximum, its
    /// length changes with atomic stores, and `memory.atomic.wait*` may
    /// block on it (see `docs/threads.md`). Imports match only memories of
    /// the same sharedness.
    pub shared: bool,
}

/// A table type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableType {
    /// Element type (`FuncRef` or `ExternRef`).
    pub elem: ValType,
    /// Size limits in elements.
    pub limits: Limits,
}

/// A global type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalType {
    /// Value type.
    pub ty: ValType,
    /// Whether `global.set` is allowed.
    pub mutable: bool,
}

/// A constant expression (global initialisers, segment offsets, element
/// items), evaluated by the runtime at instantiation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConstExpr {
    /// `i32.const`
    I32(i32),
    /// `i64.const`
    I64(i64),
    /// `f32.const` (bits)
    F32(u32),
    /// `f64.const` (bits)
    F64(u64),
    /// `ref.null`
    RefNull(ValType),
    /// `ref.func`
    RefFunc(u32),
    /// `global.get` of an (imported) global
    GlobalGet(u32),
    /// `v128.const`: the 16 bytes in memory order (lane 0 first), as a
    /// global cell holds them.
    V128([u8; 16]),
    /// An extended constant expression (the extended-const proposal):
    /// integer constants, `global.get` and `i32`/`i64` `add`, `sub`, `mul`,
    /// in the wasm order (postfix), evaluated on a stack with wrapping
    /// arithmetic. Kept as a flat list rather than a tree so that decoding
    /// and evaluating it never recurse, whatever its length. Expressions of
    /// one instruction use the variants above.
    Extended(Vec<ConstOp>),
}

/// One instruction of a [`ConstExpr::Extended`] expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConstOp {
    /// `i32.const`: pushes an `i32`.
    I32Const(i32),
    /// `i64.const`: pushes an `i64`.
    I64Const(i64),
    /// `global.get`: pushes the global's value.
    GlobalGet(u32),
    /// `i32.add` (wrapping).
    I32Add,
    /// `i32.sub` (wrapping).
    I32Sub,
    /// `i32.mul` (wrapping).
    I32Mul,
    /// `i64.add` (wrapping).
    I64Add,
    /// `i64.sub` (wrapping).
    I64Sub,
    /// `i64.mul` (wrapping).
    I64Mul,
}

impl ConstOp {
    /// Applies a binary operator to `a` and `b` (raw bits, `i32`s in the
    /// low 32 bits); `None` for an instruction that is not one.
    pub fn apply(self, a: u64, b: u64) -> Option<u64> {
        let (a32, b32) = (a as u32, b as u32);
        Some(match self {
            ConstOp::I32Add => u64::from(a32.wrapping_add(b32)),
            ConstOp::I32Sub => u64::from(a32.wrapping_sub(b32)),
            ConstOp::I32Mul => u64::from(a32.wrapping_mul(b32)),
            ConstOp::I64Add => a.wrapping_add(b),
            ConstOp::I64Sub => a.wrapping_sub(b),
            ConstOp::I64Mul => a.wrapping_mul(b),
            ConstOp::I32Const(_) | ConstOp::I64Const(_) | ConstOp::GlobalGet(_) => return None,
        })
    }
}

/// What an import provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImportKind {
    /// A function of the given type index.
    Func(u32),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// A tag (exception handling) of the given type index (a function type
    /// whose parameters are the exception's payload, no results).
    Tag(u32),
}

/// One import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Import {
    /// Module name.
    pub module: String,
    /// Field name.
    pub name: String,
    /// What is imported.
    pub kind: ImportKind,
}

/// The kind of an exported item, with its index in its index space
/// (imports first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportKind {
    /// Function index.
    Func(u32),
    /// Table index.
    Table(u32),
    /// Memory index.
    Memory(u32),
    /// Global index.
    Global(u32),
    /// Tag index.
    Tag(u32),
}

/// One export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// Export name.
    pub name: String,
    /// What is exported.
    pub kind: ExportKind,
}

/// A defined global.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalDef {
    /// Its type.
    pub ty: GlobalType,
    /// Its initial value.
    pub init: ConstExpr,
}

/// Whether a segment is copied at instantiation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SegmentMode {
    /// Used only by `memory.init` / `table.init`.
    Passive,
    /// Copied into the memory or table at instantiation, at the offset.
    Active {
        /// Memory or table index.
        index: u32,
        /// Offset expression.
        offset: ConstExpr,
    },
    /// Declared only (element segments): dropped at instantiation.
    Declared,
}

/// A data segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSegment {
    /// Mode.
    pub mode: SegmentMode,
    /// Bytes.
    pub bytes: Vec<u8>,
}

/// An element segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElemSegment {
    /// Mode.
    pub mode: SegmentMode,
    /// Element type.
    pub ty: ValType,
    /// Items, each a constant expression (`RefFunc`, `RefNull`, `GlobalGet`).
    pub items: Vec<ConstExpr>,
}

/// One trapping instruction in generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrapSite {
    /// Offset from the start of the function's symbol.
    pub code_offset: u32,
    /// The trap.
    pub code: TrapCode,
    /// Bytecode offset of the wasm instruction, from the start of the module.
    pub wasm_offset: u32,
}

/// The exception call sites of one defined function: those of its calls
/// that have handlers, in its body and in its resume clone, each sorted
/// by `return_offset`. Listed only for the functions that have some, so
/// that a module without exception handling stores and decodes nothing
/// per function. (The sizes and places of the bodies and clones are in
/// the entries section, `crate::entries`.)
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FuncCallSites {
    /// The defined function (index minus `num_imported_funcs`).
    pub func: u32,
    /// Call sites of its body.
    pub body: Vec<crate::exception::CallSite>,
    /// Call sites of its resume clone (empty without one).
    pub clone: Vec<crate::exception::CallSite>,
}

/// The ISA the code was generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetArch {
    /// x86-64
    X86_64,
    /// aarch64
    Aarch64,
}

impl TargetArch {
    /// The architecture of this host, if supported.
    pub fn host() -> Option<TargetArch> {
        if cfg!(target_arch = "x86_64") {
            Some(TargetArch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(TargetArch::Aarch64)
        } else {
            None
        }
    }

    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TargetArch::X86_64 => "x86_64",
            TargetArch::Aarch64 => "aarch64",
        }
    }
}

/// Everything the runtime needs besides the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleMeta {
    /// Producer (toolchain) version.
    pub producer: String,
    /// Target ISA.
    pub target: TargetArch,
    /// CPU features the code was compiled to use (names as Cranelift's ISA
    /// flags, e.g. `has_avx`); the runtime refuses a host that lacks one.
    pub cpu_features: Vec<String>,
    /// Optimisation level the module was compiled with (0..=3).
    pub opt_level: u8,
    /// Checkpoint policy the module was compiled with.
    pub policy: Policy,
    /// SHA-256 of the wasm module bytes.
    pub wasm_sha256: [u8; 32],
    /// Function signatures, by type index.
    pub types: Vec<FuncType>,
    /// Imports, in order.
    pub imports: Vec<Import>,
    /// Type index of every function (imported ones first).
    pub funcs: Vec<u32>,
    /// Number of imported functions.
    pub num_imported_funcs: u32,
    /// Defined tables.
    pub tables: Vec<TableType>,
    /// Defined memories.
    pub memories: Vec<MemoryType>,
    /// Defined globals.
    pub globals: Vec<GlobalDef>,
    /// Defined tags: the type index of each (imported tags are in
    /// `imports`, and come first in the tag index space).
    pub tags: Vec<u32>,
    /// Exports.
    pub exports: Vec<Export>,
    /// Start function.
    pub start: Option<u32>,
    /// Element segments.
    pub elems: Vec<ElemSegment>,
    /// Data segments.
    pub data: Vec<DataSegment>,
    /// Function names from the name section: not part of this encoding
    /// but of [`NAMES_SECTION`](crate::object::NAMES_SECTION), attached by
    /// whoever reads the object and read in place (see
    /// [`names`](crate::names)).
    #[serde(skip)]
    pub func_names: FuncNames,
    /// Functions that have an array-call trampoline, sorted.
    pub array_trampolines: Vec<u32>,
    /// The exception call sites of the defined functions that have
    /// some, by increasing [`FuncCallSites::func`] (empty in a module
    /// without exception handling).
    pub call_sites: Vec<FuncCallSites>,
    /// Slots of the frame buffer checkpoint code writes frames into: the
    /// largest [`FuncTables::frame_capacity`] of the functions that have
    /// stable points (0 when none has). Recorded here so that
    /// instantiating does not need the tables; a table that claims more
    /// is refused when decoded.
    pub frame_slots: u32,
    /// Every defined function's locals and stable points: not part of this
    /// encoding but of [`CKPT_SECTION`](crate::object::CKPT_SECTION),
    /// attached by whoever reads the object and decoded on first use (see
    /// [`ModuleMeta::func_tables`]).
    #[serde(skip)]
    pub checkpoint_tables: CheckpointTables,
    /// Every body's and resume clone's trap sites: not part of this
    /// encoding but of [`TRAPS_SECTION`](crate::object::TRAPS_SECTION),
    /// attached by whoever reads the object and read in place (the
    /// signal handler searches it).
    #[serde(skip)]
    pub trap_sites: TrapSiteTable,
}

impl ModuleMeta {
    /// The checkpoint tables of function `func` (module-wide index:
    /// imports first), decoded on the first call. An error names what is
    /// wrong: an imported or unknown function, or malformed tables.
    ///
    /// Every frame is checked against these tables before it is rewound,
    /// and only a rewind enters a function's resume clone: so this is
    /// also where the function's trap sites (body and clone), left
    /// unchecked at load, are checked ([`TrapSiteTable::check_func`]).
    pub fn func_tables(&self, func: u32) -> Result<&FuncTables, TablesError> {
        let k = func
            .checked_sub(self.num_imported_funcs)
            .ok_or(TablesError::NotDefined(func))?;
        let tables = self.checkpoint_tables.get(k as usize, func)?;
        self.trap_sites
            .check_func(k as usize)
            .map_err(|e| TablesError::Func {
                func,
                why: e.to_string(),
            })?;
        Ok(tables)
    }

    /// Attaches a copy of `section` (the bytes of
    /// [`CKPT_SECTION`](crate::object::CKPT_SECTION)) as this module's
    /// checkpoint tables, checking its header; for tools and tests that
    /// read an object's sections themselves.
    pub fn attach_tables_section(&mut self, section: &[u8]) -> Result<(), TablesError> {
        let bytes: crate::tables::SharedBytes = std::sync::Arc::new(section.to_vec());
        self.checkpoint_tables = CheckpointTables::from_section(
            bytes,
            0..section.len(),
            self.num_defined_funcs(),
            self.frame_slots as usize,
        )?;
        Ok(())
    }

    /// Attaches a copy of `section` (the bytes of
    /// [`TRAPS_SECTION`](crate::object::TRAPS_SECTION)) as this module's
    /// trap sites, checking it; for tools and tests that read an object's
    /// sections themselves.
    pub fn attach_trap_section(&mut self, section: &[u8]) -> Result<(), TrapSitesError> {
        let bytes: crate::tables::SharedBytes = std::sync::Arc::new(section.to_vec());
        self.trap_sites =
            TrapSiteTable::from_section(bytes, 0..section.len(), self.num_defined_funcs())?;
        Ok(())
    }

    /// Every defined function's checkpoint tables, in order (decoding
    /// them all), or the first error.
    pub fn all_func_tables(&self) -> Result<Vec<&FuncTables>, TablesError> {
        (0..self.num_defined_funcs() as u32)
            .map(|k| self.func_tables(self.num_imported_funcs + k))
            .collect()
    }

    /// Number of imported tables.
    pub fn num_imported_tables(&self) -> u32 {
        self.imports
            .iter()
            .filter(|i| matches!(i.kind, ImportKind::Table(_)))
            .count() as u32
    }

    /// Number of imported memories.
    pub fn num_imported_memories(&self) -> u32 {
        self.imports
            .iter()
            .filter(|i| matches!(i.kind, ImportKind::Memory(_)))
            .count() as u32
    }

    /// Number of imported globals.
    pub fn num_imported_globals(&self) -> u32 {
        self.imports
            .iter()
            .filter(|i| matches!(i.kind, ImportKind::Global(_)))
            .count() as u32
    }

    /// The name of function `index` from the name section, if any (read
    /// in place; a damaged name reads as none, see [`crate::names`]).
    pub fn func_name(&self, index: u32) -> Option<&str> {
        self.func_names.get(index)
    }

    /// Attaches a copy of `section` (the bytes of
    /// [`NAMES_SECTION`](crate::object::NAMES_SECTION)) as this module's
    /// function names, checking its header; for tools and tests that read
    /// an object's sections themselves.
    pub fn attach_names_section(&mut self, section: &[u8]) -> Result<(), crate::names::NamesError> {
        let bytes: crate::tables::SharedBytes = std::sync::Arc::new(section.to_vec());
        self.func_names = FuncNames::from_section(bytes, 0..section.len())?;
        Ok(())
    }

    /// Number of defined functions (0 when the counts disagree, which the
    /// loader refuses).
    pub fn num_defined_funcs(&self) -> usize {
        self.funcs
            .len()
            .saturating_sub(self.num_imported_funcs as usize)
    }

    /// The exception call sites of defined function `k`, if it has some.
    pub fn func_call_sites(&self, k: usize) -> Option<&FuncCallSites> {
        let k = u32::try_from(k).ok()?;
        self.call_sites
            .binary_search_by_key(&k, |c| c.func)
            .ok()
            .map(|i| &self.call_sites[i])
    }

    /// Type of every global (imported first).
    pub fn global_types(&self) -> Vec<GlobalType> {
        let mut v: Vec<GlobalType> = self
            .imports
            .iter()
            .filter_map(|i| match i.kind {
                ImportKind::Global(g) => Some(g),
                _ => None,
            })
            .collect();
        v.extend(self.globals.iter().map(|g| g.ty));
        v
    }

    /// Type of every table (imported first).
    pub fn table_types(&self) -> Vec<TableType> {
        let mut v: Vec<TableType> = self
            .imports
            .iter()
            .filter_map(|i| match i.kind {
                ImportKind::Table(t) => Some(t),
                _ => None,
            })
            .collect();
        v.extend(self.tables.iter().copied());
        v
    }

    /// Number of imported tags.
    pub fn num_imported_tags(&self) -> u32 {
        self.imports
            .iter()
            .filter(|i| matches!(i.kind, ImportKind::Tag(_)))
            .count() as u32
    }

    /// Type index of every tag (imported first).
    pub fn tag_types(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .imports
            .iter()
            .filter_map(|i| match i.kind {
                ImportKind::Tag(t) => Some(t),
                _ => None,
            })
            .collect();
        v.extend(self.tags.iter().copied());
        v
    }

    /// Type of every memory (imported first).
    pub fn memory_types(&self) -> Vec<MemoryType> {
        let mut v: Vec<MemoryType> = self
            .imports
            .iter()
            .filter_map(|i| match i.kind {
                ImportKind::Memory(m) => Some(m),
                _ => None,
            })
            .collect();
        v.extend(self.memories.iter().copied());
        v
    }
}
