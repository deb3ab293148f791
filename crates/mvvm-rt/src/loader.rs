//! Loads an `.aot` object: checks its metadata against this host, lays its
//! code and read-only data out in fresh executable memory, applies the
//! relocations itself (no system linker) and finds the symbols the runtime
//! calls.
//!
//! ```text
//!  CodeMemory (one mapping per module)
//!  +0                 .text sections, each at its alignment    → R+X
//!                     (mapped from the file when it can be)
//!  +align(text, page) read-only sections (.rodata*, .eh_frame)  → R
//!                     GOT slots (one u64 per GOT-referenced symbol)
//! ```
//!
//! Start-up cost is kept proportional to what a run uses, not to the size
//! of the object (see docs/startup.md): a file is mapped rather than read
//! ([`load_file`]); its text is mapped copy-on-write from the file when its
//! file offset is page aligned (which `mvvm-aot` ensures), so pages are
//! read from disk only when executed and are shared by every process
//! running the object; the writer applies the calls between functions
//! itself and leaves their relocations out, so the loader reads nothing
//! for them and the text is not touched at load time; the metadata
//! section is decoded, not copied; and nothing is read or built per
//! function: the entries (`mvvm_abi::entries`), trap sites and names are
//! read in place when used, each checked then, and the object carries no
//! per-function symbols to read.

use crate::code::{CodeMemory, align_up, page_size};
use crate::trap::CodeInfo;
use mvvm_abi::entries::{EntrySection, EntryTable};
use mvvm_abi::meta::{ModuleMeta, TargetArch};
use mvvm_abi::names::FuncNames;
use mvvm_abi::object as names;
use mvvm_abi::tables::{CheckpointTables, SharedBytes, TablesError};
use mvvm_abi::trap_sites::TrapSiteTable;
use mvvm_abi::version::{AOT_FORMAT_VERSION, META_MAGIC};
use object::elf;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SectionKind, SymbolIndex,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// When this process started running code: set by [`record_process_start`]
/// before `main`.
static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Records [`PROCESS_START`]; run by the dynamic loader (or the static
/// start-up code) from `.init_array`, before `main` and before any other
/// Rust code of the program, so that tools can report their start-up
/// time from (almost) the process's start rather than from `main`.
extern "C" fn record_process_start() {
    let _ = PROCESS_START.set(Instant::now());
}

// SAFETY: `.init_array` holds pointers to functions the C runtime calls
// once, before `main`, with (argc, argv, envp), which an `extern "C" fn()`
// ignores (extra arguments are harmless in the C calling convention).
// `record_process_start` reads the monotonic clock (a vDSO call, usable
// before `main`) and stores it in a `OnceLock` (atomics only, no
// allocation); it neither panics nor depends on any other initialiser.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_PROCESS_START: extern "C" fn() = record_process_start;

/// When this process started (just before `main`, see
/// [`record_process_start`]); `None` on a platform without `.init_array`.
pub fn process_start() -> Option<Instant> {
    PROCESS_START.get().copied()
}

/// Why an `.aot` object was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The ELF structure is inconsistent in a way MVVM checks itself.
    #[error("not a valid .aot object: {0}")]
    BadObject(String),
    /// The ELF object is malformed or truncated: the object crate could not
    /// read `what`; its reason is the source.
    #[error("not a valid .aot object: cannot read {what}")]
    Elf {
        /// The part of the object that could not be read.
        what: String,
        /// The object crate's error.
        #[source]
        source: object::Error,
    },
    /// The object has no `.mvvm.meta` section.
    #[error("not an MVVM .aot object: no {} section", names::META_SECTION)]
    MissingMeta,
    /// The metadata section does not start with the magic bytes.
    #[error("not an MVVM .aot object: bad magic in {}", names::META_SECTION)]
    BadMagic,
    /// Produced for another format version.
    #[error(
        ".aot format version {found} (producer {producer}), this runtime reads version {expected}"
    )]
    FormatVersion {
        /// Version in the file.
        found: u32,
        /// Version this runtime reads.
        expected: u32,
        /// Producer version, when the metadata could still be decoded.
        producer: String,
    },
    /// The metadata decodes but is inconsistent.
    #[error("corrupt .aot metadata: {0}")]
    BadMeta(String),
    /// The metadata could not be decoded.
    #[error("corrupt .aot metadata: it does not decode")]
    MetaDecode(#[source] mvvm_abi::codec::CodecError),
    /// Compiled for another ISA.
    #[error("compiled for {found}, this host is {host}")]
    WrongTarget {
        /// Target of the file.
        found: &'static str,
        /// This host.
        host: &'static str,
    },
    /// The code uses a CPU feature this host lacks (or one this runtime
    /// does not know).
    #[error("compiled for CPU feature `{0}`, which this host does not have")]
    MissingCpuFeature(String),
    /// A relocation kind the loader does not implement.
    #[error("unsupported relocation {kind} against `{symbol}`")]
    UnsupportedRelocation {
        /// Relocation type name or number.
        kind: String,
        /// Target symbol.
        symbol: String,
    },
    /// A relocation whose value does not fit its field.
    #[error("relocation {kind} against `{symbol}` out of range")]
    RelocationOutOfRange {
        /// Relocation type name.
        kind: String,
        /// Target symbol.
        symbol: String,
    },
    /// The object references a symbol it does not define.
    #[error("undefined symbol `{0}` (an .aot object must be self-contained)")]
    UndefinedSymbol(String),
    /// A symbol the runtime needs is missing.
    #[error("missing symbol `{0}`")]
    MissingSymbol(String),
    /// Mapping memory failed.
    #[error("cannot map code memory")]
    Mmap(#[from] std::io::Error),
    /// The object file could not be opened or mapped.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The result of loading: code in memory plus addresses of interest.
#[derive(Debug)]
pub(crate) struct LoadedCode {
    /// Shared with [`CodeInfo::meta`], which reads trap and call sites
    /// from it.
    pub meta: Arc<ModuleMeta>,
    pub memory: CodeMemory,
    /// Address of `mvvm_import_{j}` per imported function.
    pub import_stubs: Vec<usize>,
    /// Address of `mvvm_array_{i}` per function that has one.
    pub trampolines: HashMap<u32, usize>,
    /// Trap lookup data for the signal handler, and where each body is
    /// (read in place, [`CodeInfo::body_addr`]).
    pub info: CodeInfo,
    /// The wasm of an object whose clones are compiled on demand.
    pub wasm: Option<CarriedWasm>,
    /// Address space right after `memory` for resume clones compiled at
    /// run time (`crate::jit_clone`): only with a checkpoint policy, and
    /// when one fits in call range ([`crate::jit_clone::arena_len`]).
    pub arena: Option<crate::code::CodeArena>,
    /// Address of the probe trampoline (`mvvm_probe`), which those clones
    /// call: known only when the object keeps its symbol (see
    /// [`probe_trampoline`]).
    pub probe_trampoline: Option<usize>,
}

/// The wasm an object carries to compile its resume clones from
/// ([`names::WASM_SECTION`]), read in place: borrowed from the mapped
/// file (read from disk only when a clone is compiled), or a copy for an
/// object loaded from bytes.
#[derive(Clone)]
pub(crate) struct CarriedWasm(SharedBytes, std::ops::Range<usize>);

impl CarriedWasm {
    /// The wasm bytes (checked to lie inside the object at load).
    pub fn bytes(&self) -> &[u8] {
        self.0.as_ref().as_ref().get(self.1.clone()).unwrap_or(&[])
    }
}

impl std::fmt::Debug for CarriedWasm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CarriedWasm({} bytes)", self.1.len())
    }
}

/// The wasm section of an object compiled with its clones on demand, in
/// place; `None` when the object has none. A section that does not lie
/// inside the file or does not start like a wasm module refuses the load.
fn carried_wasm(
    file: &object::File<'_>,
    owner: Option<&SharedBytes>,
) -> Result<Option<CarriedWasm>, LoadError> {
    let Some(sec) = file.section_by_name(names::WASM_SECTION) else {
        return Ok(None);
    };
    let (bytes, range) = section_in_place(&sec, owner, names::WASM_SECTION)?;
    let wasm = CarriedWasm(bytes, range.clone());
    if wasm.bytes().len() != range.len() || !wasm.bytes().starts_with(b"\0asm") {
        return Err(LoadError::BadObject(format!(
            "section `{}` does not hold a wasm module",
            names::WASM_SECTION
        )));
    }
    Ok(Some(wasm))
}

/// Reads and checks the metadata section, and attaches (copies of) the
/// checkpoint tables, trap sites and names sections, read on use.
pub fn read_meta(bytes: &[u8]) -> Result<ModuleMeta, LoadError> {
    let file = object::File::parse(bytes).map_err(elf("the ELF header or tables"))?;
    let mut meta = meta_of(&file)?;
    check_counts(&meta)?;
    attach_tables(&file, &mut meta, None)?;
    attach_trap_sites(&file, &mut meta, None)?;
    attach_names(&file, &mut meta, None)?;
    Ok(meta)
}

/// Checks what the function counts and the exception call sites promise
/// every later step: as many defined functions as `funcs` has beyond the
/// imports, and call sites listed once per defined function, in order.
/// Linear in the functions that have call sites only.
fn check_counts(meta: &ModuleMeta) -> Result<(), LoadError> {
    if meta.num_imported_funcs as usize > meta.funcs.len() {
        return Err(LoadError::BadMeta(
            "more imported functions than functions".into(),
        ));
    }
    let ndef = meta.num_defined_funcs();
    let in_order = meta.call_sites.windows(2).all(|w| w[0].func < w[1].func);
    if !in_order
        || meta
            .call_sites
            .last()
            .is_some_and(|c| c.func as usize >= ndef)
    {
        return Err(LoadError::BadMeta(
            "exception call sites not listed once per defined function, in order".into(),
        ));
    }
    Ok(())
}

/// Attaches the checkpoint tables section to `meta`, without decoding it:
/// `owner`, when given, holds the object's bytes (the mapped file) and the
/// tables borrow from it; otherwise the section is copied. Only the
/// header is checked here (constant time): a missing or malformed section
/// makes every lookup fail, so that checkpoints and restores report it,
/// not start-up. `meta.frame_slots` is checked against the section's size
/// (a value type is 4 bytes of its table there and takes at most two
/// slots), so that a corrupt count cannot size a huge frame buffer.
fn attach_tables(
    file: &object::File<'_>,
    meta: &mut ModuleMeta,
    owner: Option<&SharedBytes>,
) -> Result<(), LoadError> {
    let count = meta.num_defined_funcs();
    let frame_slots = meta.frame_slots as usize;
    let Some(sec) = file.section_by_name(names::CKPT_SECTION) else {
        if frame_slots > 1 {
            return Err(LoadError::BadMeta(format!(
                "a frame buffer of {frame_slots} slots without a {} section",
                names::CKPT_SECTION
            )));
        }
        meta.checkpoint_tables = CheckpointTables::unusable(TablesError::Section(format!(
            "the object has no {} section",
            names::CKPT_SECTION
        )));
        return Ok(());
    };
    let (bytes, range) = section_in_place(&sec, owner, names::CKPT_SECTION)?;
    if frame_slots > range.len() / 2 + 1 {
        return Err(LoadError::BadMeta(format!(
            "a frame buffer of {frame_slots} slots for {} bytes of checkpoint tables",
            range.len()
        )));
    }
    meta.checkpoint_tables = CheckpointTables::from_section(bytes, range, count, frame_slots)
        .unwrap_or_else(CheckpointTables::unusable);
    Ok(())
}

/// The bytes of section `sec` (named `name`) to read in place: the
/// section's range of `owner` (the mapped file) when given, else a copy of
/// its data. A range outside `owner` is left for the reader to refuse.
fn section_in_place(
    sec: &object::Section<'_, '_>,
    owner: Option<&SharedBytes>,
    name: &str,
) -> Result<(SharedBytes, std::ops::Range<usize>), LoadError> {
    Ok(match (owner, sec.file_range()) {
        (Some(owner), Some((offset, size))) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
            (owner.clone(), start..end)
        }
        _ => {
            let data = sec
                .data()
                .map_err(elf(format!("the data of section `{name}`")))?;
            let copy: SharedBytes = Arc::new(data.to_vec());
            (copy, 0..data.len())
        }
    })
}

/// Attaches the trap sites section to `meta`, read in place: borrowed
/// from `owner` (the mapped file) when given, else copied. Unlike the
/// checkpoint tables, a missing section, or one whose header or index
/// ends are wrong, refuses the load: the signal handler needs the sites
/// of any code that runs. The check is constant time; each function's
/// sites are checked when used (`mvvm_abi::trap_sites`).
fn attach_trap_sites(
    file: &object::File<'_>,
    meta: &mut ModuleMeta,
    owner: Option<&SharedBytes>,
) -> Result<(), LoadError> {
    let sec = file.section_by_name(names::TRAPS_SECTION).ok_or_else(|| {
        LoadError::BadMeta(format!(
            "the object has no {} section",
            names::TRAPS_SECTION
        ))
    })?;
    let (bytes, range) = section_in_place(&sec, owner, names::TRAPS_SECTION)?;
    meta.trap_sites = TrapSiteTable::from_section(bytes, range, meta.num_defined_funcs())
        .map_err(|e| LoadError::BadMeta(e.to_string()))?;
    Ok(())
}

/// Attaches the function names section to `meta`, read in place (from
/// `owner` when given, else copied). A module without names has no
/// section; one whose header is damaged is refused (a damaged name,
/// found only when read, reads as no name: see `mvvm_abi::names`).
fn attach_names(
    file: &object::File<'_>,
    meta: &mut ModuleMeta,
    owner: Option<&SharedBytes>,
) -> Result<(), LoadError> {
    let Some(sec) = file.section_by_name(names::NAMES_SECTION) else {
        return Ok(());
    };
    let (bytes, range) = section_in_place(&sec, owner, names::NAMES_SECTION)?;
    meta.func_names =
        FuncNames::from_section(bytes, range).map_err(|e| LoadError::BadMeta(e.to_string()))?;
    Ok(())
}

/// The frame maps of an object compiled with the developer option
/// `frame_map` (see `crate::frame_walk`), checked; `None` without them.
fn frame_maps(
    file: &object::File<'_>,
) -> Result<Option<mvvm_abi::frame_map::FrameMaps>, LoadError> {
    let Some(sec) = file.section_by_name(names::FRAMES_SECTION) else {
        return Ok(None);
    };
    let data = sec.data().map_err(elf(format!(
        "the data of section `{}`",
        names::FRAMES_SECTION
    )))?;
    mvvm_abi::frame_map::FrameMaps::decode(data)
        .map(Some)
        .map_err(|e| LoadError::BadMeta(e.to_string()))
}

fn meta_of(file: &object::File<'_>) -> Result<ModuleMeta, LoadError> {
    let sec = file
        .section_by_name(names::META_SECTION)
        .ok_or(LoadError::MissingMeta)?;
    let data = sec.data().map_err(elf(format!(
        "the data of section `{}`",
        names::META_SECTION
    )))?;
    if data.len() < 12 {
        return Err(LoadError::BadMagic);
    }
    if data[..8] != META_MAGIC {
        return Err(LoadError::BadMagic);
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != AOT_FORMAT_VERSION {
        // Try to name the producer; a different version may not decode.
        let producer = mvvm_abi::codec::decode::<ModuleMeta>(&data[12..])
            .map(|m| m.producer)
            .unwrap_or_else(|_| "unknown".into());
        return Err(LoadError::FormatVersion {
            found: version,
            expected: AOT_FORMAT_VERSION,
            producer,
        });
    }
    mvvm_abi::codec::decode::<ModuleMeta>(&data[12..]).map_err(LoadError::MetaDecode)
}

/// Checks the target and CPU features of `meta` against this host.
pub fn check_host(meta: &ModuleMeta) -> Result<(), LoadError> {
    let host = TargetArch::host();
    if host != Some(meta.target) {
        return Err(LoadError::WrongTarget {
            found: meta.target.name(),
            host: host.map(|h| h.name()).unwrap_or(std::env::consts::ARCH),
        });
    }
    for f in &meta.cpu_features {
        if host_has_feature(f) != Some(true) {
            return Err(LoadError::MissingCpuFeature(f.clone()));
        }
    }
    Ok(())
}

/// Whether this host has the CPU feature named like Cranelift's ISA flag
/// `name`; `None` when the name is unknown (the loader then refuses).
pub fn host_has_feature(name: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as d;
        Some(match name {
            "has_sse3" => d!("sse3"),
            "has_ssse3" => d!("ssse3"),
            "has_sse41" => d!("sse4.1"),
            "has_sse42" => d!("sse4.2"),
            "has_popcnt" => d!("popcnt"),
            "has_avx" => d!("avx"),
            "has_avx2" => d!("avx2"),
            "has_fma" => d!("fma"),
            "has_bmi1" => d!("bmi1"),
            "has_bmi2" => d!("bmi2"),
            "has_lzcnt" => d!("lzcnt"),
            "has_f16c" => d!("f16c"),
            "has_cmpxchg16b" => d!("cmpxchg16b"),
            "has_avx512f" => d!("avx512f"),
            "has_avx512vl" => d!("avx512vl"),
            "has_avx512dq" => d!("avx512dq"),
            "has_avx512bitalg" => d!("avx512bitalg"),
            "has_avx512vbmi" => d!("avx512vbmi"),
            "has_avx512vnni" => d!("avx512vnni"),
            "has_avx_vnni" => d!("avxvnni"),
            _ => return None,
        })
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as d;
        Some(match name {
            "has_lse" => d!("lse"),
            "has_pauth" => d!("paca"),
            "has_fp16" => d!("fp16"),
            "has_dotprod" => d!("dotprod"),
            "has_i8mm" => d!("i8mm"),
            _ => return None,
        })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = name;
        None
    }
}

fn bad(what: impl Into<String>) -> LoadError {
    LoadError::BadObject(what.into())
}

/// A [`LoadError::Elf`]: the object crate refused `what`.
fn elf(what: impl Into<String>) -> impl FnOnce(object::Error) -> LoadError {
    let what = what.into();
    move |source| LoadError::Elf { what, source }
}

/// Largest code + read-only data a module may map (a bound that keeps a
/// corrupt size field from asking for absurd amounts of memory).
const MAX_CODE_SIZE: usize = 1 << 30;

/// Largest section alignment accepted. Code needs at most a cache line;
/// the writer aligns `.text` to 64 KiB only so that its file offset is a
/// multiple of any page size (the text is then mapped from the file), and
/// in memory the text starts the (page-aligned) mapping anyway.
const MAX_SECTION_ALIGN: u64 = 1 << 16;

/// `cursor + size`, refusing layouts larger than [`MAX_CODE_SIZE`].
fn grow_layout(cursor: usize, size: usize) -> Result<usize, LoadError> {
    cursor
        .checked_add(size)
        .filter(|&end| end <= MAX_CODE_SIZE)
        .ok_or_else(|| bad("code and data larger than 1 GiB"))
}

/// A section's alignment: a power of two, at most [`MAX_SECTION_ALIGN`];
/// in memory at most a page is honoured (see there).
fn section_align(sec: &object::Section<'_, '_>) -> Result<usize, LoadError> {
    let a = sec.align().max(1);
    if !a.is_power_of_two() || a > MAX_SECTION_ALIGN {
        return Err(bad(format!(
            "section `{}` has alignment {a}",
            sec.name().unwrap_or("?")
        )));
    }
    Ok((a as usize).min(page_size()))
}

/// Where a section was placed, relative to the mapping base.
#[derive(Clone, Copy)]
struct Placed {
    offset: usize,
    size: usize,
    /// The section's `sh_addr` (0 in relocatable objects): symbol values
    /// are relative to it.
    address: u64,
    /// Whether it is code (mapped read+execute).
    text: bool,
}

/// One relocation the loader must write.
struct Pending {
    /// Offset of the place in the mapping.
    at: usize,
    r_type: u32,
    target: RelocationTarget,
    addend: i64,
}

/// Where everything of the object goes in its mapping, decided before the
/// mapping exists (its size is the layout's), with the relocations still
/// to apply.
struct Layout {
    /// The loaded sections (text and read-only data), by section index.
    placed: Vec<Option<Placed>>,
    /// Length of the executable part (the text sections, page aligned).
    text_len: usize,
    /// One GOT slot per symbol a GOT-relative relocation names.
    got: HashMap<SymbolIndex, usize>,
    /// The relocations to apply, in section and offset order.
    pending: Vec<Pending>,
    /// The section `.text` (where the entry offsets are counted from).
    text: Option<SectionIndex>,
    /// Bytes used, GOT included.
    end: usize,
}

impl Layout {
    fn placed(&self, index: SectionIndex) -> Option<Placed> {
        self.placed.get(index.0).copied().flatten()
    }
}

/// How long each step of a load took, for `MVVM_LOG=debug`.
struct Phases {
    start: Instant,
    last: Instant,
}

impl Phases {
    fn new() -> Phases {
        let now = Instant::now();
        Phases {
            start: now,
            last: now,
        }
    }

    /// Milliseconds since the previous call (or the start).
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        ms
    }

    fn total(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e3
    }
}

/// Loads `bytes` (an `.aot` ELF object) into executable memory: a copy of
/// the text and data, the caller's bytes need not outlive the module.
pub(crate) fn load(bytes: &[u8]) -> Result<LoadedCode, LoadError> {
    load_from(bytes, None, None)
}

/// Loads the `.aot` object `file` (named `path` in errors): the object is
/// mapped, not read, and its text is mapped from the file (shared with
/// every process running the same object, read from disk only where it
/// runs) when its file offset is page aligned; otherwise as [`load`].
pub(crate) fn load_file(file: &std::fs::File, path: &Path) -> Result<LoadedCode, LoadError> {
    // SAFETY: a private read-only mapping; the bytes are only read, and
    // every read is bounds-checked by the object crate. Another process
    // truncating the file while it is mapped would make a read fault
    // (SIGBUS), as for any mapped executable: `mvvm-aot` replaces objects
    // by renaming a new file, which leaves a mapped inode intact.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Kept mapped while the module lives: its checkpoint tables are
    // decoded from the mapping when first needed (pages read then).
    let map = Arc::new(map);
    let owner: SharedBytes = map.clone();
    load_from(&map, Some(file), Some(&owner))
}

/// The steps, each a function below: check the object against this host,
/// lay the sections out (and list the relocations that need writing),
/// map or copy them into a fresh mapping, fill the GOT and apply the
/// relocations, find the symbols the runtime calls and the code range of
/// each function, then make the code executable.
fn load_from(
    bytes: &[u8],
    file: Option<&std::fs::File>,
    owner: Option<&SharedBytes>,
) -> Result<LoadedCode, LoadError> {
    let mut phases = Phases::new();
    let obj = object::File::parse(bytes).map_err(elf("the ELF header or tables"))?;
    let mut meta = checked_meta(&obj)?;
    check_counts(&meta)?;
    attach_tables(&obj, &mut meta, owner)?;
    attach_trap_sites(&obj, &mut meta, owner)?;
    attach_names(&obj, &mut meta, owner)?;
    let frames = frame_maps(&obj)?;
    let wasm = carried_wasm(&obj, owner)?;
    let layout = lay_out(&obj, meta.target)?;
    let t_parse = phases.lap();
    // Slack so that an 8-byte relocation at the very end stays in bounds.
    let mem_len = layout.end + 8;
    // Only a module with a checkpoint policy has resume clones to place.
    let arena_len = if meta.policy.is_instrumented() {
        crate::jit_clone::arena_len_for_load(meta.target, align_up(mem_len, page_size()))
    } else {
        0
    };
    let (mut mem, arena) = CodeMemory::with_arena(mem_len, layout.text_len, arena_len)?;
    // `perf` names code in a file mapping from the file's ELF symbols,
    // which an object has only with `mvvm-aot --symbols`, and reads the
    // perf map only for anonymous memory: with `MVVM_PERF_MAP` the text
    // is copied, so that the map (from the names section) names it.
    let file = file.filter(|_| !crate::perf_map::wanted());
    let mapped = place_sections(&obj, &layout, &mut mem, file)?;
    let t_map = phases.lap();
    let symbols = Symbols {
        file: &obj,
        layout: &layout,
        base: mem.base(),
    };
    fill_got(&symbols, &layout, &mut mem)?;
    relocate(meta.target, &symbols, &layout, &mut mem)?;
    let t_reloc = phases.lap();
    let text = mem.base()..mem.base() + layout.text_len;
    let text_section = layout
        .text
        .and_then(|si| layout.placed(si))
        .map(|p| mem.base() + p.offset..mem.base() + p.offset + p.size)
        .ok_or_else(|| bad("the object has no .text section"))?;
    let entry_section = entry_section(&obj, &meta, owner)?;
    let entries = find_entries(&meta, &entry_section.table(), &text_section)?;
    let probe_trampoline = if meta.policy.is_instrumented() {
        probe_trampoline(&symbols, &text_section)?
    } else {
        None
    };
    mem.publish()?;
    let t_entries = phases.lap();
    tracing::debug!(
        object_bytes = bytes.len(),
        text_bytes = layout.text_len,
        text_mapped_from_file = mapped,
        relocations_applied = layout.pending.len(),
        parse_and_meta_ms = t_parse,
        map_ms = t_map,
        relocate_ms = t_reloc,
        entries_ms = t_entries,
        total_ms = phases.total(),
        "loaded module"
    );
    let meta = Arc::new(meta);
    let info = CodeInfo {
        text_start: text.start,
        text_end: text.end,
        code_start: text_section.start,
        code_len: text_section.end - text_section.start,
        entries: entry_section,
        meta: meta.clone(),
        frames,
    };
    if crate::perf_map::wanted() {
        append_perf_map(&info);
    }
    Ok(LoadedCode {
        meta,
        memory: mem,
        import_stubs: entries.import_stubs,
        trampolines: entries.trampolines,
        info,
        wasm,
        arena,
        probe_trampoline,
    })
}

/// The address of the probe trampoline
/// ([`names::PROBE_TRAMPOLINE_SYMBOL`]), when the object names it: the
/// runtime finds every other piece of code through the entries section,
/// which does not list the probe trampoline, and `mvvm_aot::compile`
/// leaves the functions' symbols out (`compile_with_symbols` and
/// `compile_keeping_relocations` keep them). Only resume clones placed at
/// run time need it (they call it); without it, installing one that calls
/// it fails. One scan of the symbol table, only for a module with a
/// checkpoint policy. A symbol outside `.text` is refused.
fn probe_trampoline(
    symbols: &Symbols<'_, '_>,
    text: &std::ops::Range<usize>,
) -> Result<Option<usize>, LoadError> {
    let Some(sym) = symbols.file.symbol_by_name(names::PROBE_TRAMPOLINE_SYMBOL) else {
        return Ok(None);
    };
    let addr = symbols.resolve_symbol(&sym)?;
    if !text.contains(&addr) {
        return Err(bad(format!(
            "symbol `{}` outside .text",
            names::PROBE_TRAMPOLINE_SYMBOL
        )));
    }
    Ok(Some(addr))
}

/// The object's metadata, once it and the ELF header agree with this host.
fn checked_meta(file: &object::File<'_>) -> Result<ModuleMeta, LoadError> {
    let meta = meta_of(file)?;
    check_host(&meta)?;
    let expected_machine = match meta.target {
        TargetArch::X86_64 => object::Architecture::X86_64,
        TargetArch::Aarch64 => object::Architecture::Aarch64,
    };
    if file.architecture() != expected_machine {
        return Err(LoadError::BadObject(format!(
            "ELF machine {:?} does not match the metadata target {}",
            file.architecture(),
            meta.target.name()
        )));
    }
    Ok(meta)
}

/// Lays out the text sections first, then (page aligned) the read-only
/// sections, then the GOT, and lists the relocations to apply. Writable
/// sections are refused: generated code keeps no state of its own. The
/// metadata section is not loaded (it is decoded from the object).
fn lay_out(file: &object::File<'_>, arch: TargetArch) -> Result<Layout, LoadError> {
    let nsections = file.sections().map(|s| s.index().0 + 1).max().unwrap_or(0);
    let mut placed: Vec<Option<Placed>> = vec![None; nsections];
    let mut cursor = 0usize;
    let mut ro: Vec<object::Section<'_, '_>> = Vec::new();
    let mut text = None;
    for sec in file.sections() {
        let size = sec.size() as usize;
        let name = sec.name().unwrap_or("");
        if names::METADATA_SECTIONS.contains(&name) {
            continue;
        }
        match sec.kind() {
            SectionKind::Text => {
                if name == ".text" {
                    text = Some(sec.index());
                }
                cursor = align_up(cursor, section_align(&sec)?);
                placed[sec.index().0] = Some(Placed {
                    offset: cursor,
                    size,
                    address: sec.address(),
                    text: true,
                });
                cursor = grow_layout(cursor, size)?;
            }
            SectionKind::ReadOnlyData
            | SectionKind::ReadOnlyString
            | SectionKind::ReadOnlyDataWithRel => ro.push(sec),
            SectionKind::Data | SectionKind::UninitializedData | SectionKind::Tls if size > 0 => {
                return Err(LoadError::BadObject(format!(
                    "writable section `{name}` is not supported"
                )));
            }
            _ => {}
        }
    }
    let text_len = align_up(cursor, page_size());
    cursor = text_len;
    for sec in &ro {
        cursor = align_up(cursor, section_align(sec)?);
        placed[sec.index().0] = Some(Placed {
            offset: cursor,
            size: sec.size() as usize,
            address: sec.address(),
            text: false,
        });
        cursor = grow_layout(cursor, sec.size() as usize)?;
    }

    // One pass over the relocations: check each, give GOT-relative ones
    // a slot (one per target symbol). The object holds only relocations
    // that need writing (the writer applied the calls between functions
    // and left theirs out), usually none.
    let mut got: HashMap<SymbolIndex, usize> = HashMap::new();
    let mut pending = Vec::new();
    cursor = align_up(cursor, 8);
    for sec in file.sections() {
        let Some(p) = placed.get(sec.index().0).copied().flatten() else {
            continue;
        };
        for (offset, r) in sec.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                return Err(LoadError::UnsupportedRelocation {
                    kind: format!("{:?}", r.flags()),
                    symbol: target_name(file, r.target()),
                });
            };
            if r.has_implicit_addend() {
                return Err(LoadError::UnsupportedRelocation {
                    kind: "REL (implicit addend)".into(),
                    symbol: target_name(file, r.target()),
                });
            }
            let off = usize::try_from(offset).unwrap_or(usize::MAX);
            if off >= p.size {
                return Err(bad("relocation outside its section"));
            }
            let target = r.target();
            match target {
                RelocationTarget::Symbol(s) => {
                    if is_got_reloc(r_type) && !got.contains_key(&s) {
                        got.insert(s, cursor);
                        cursor = grow_layout(cursor, 8)?;
                    }
                }
                RelocationTarget::Section(_) => {}
                _ => {
                    return Err(LoadError::UnsupportedRelocation {
                        kind: format!("{:?}", r.flags()),
                        symbol: "<absolute>".into(),
                    });
                }
            };
            if !is_known_reloc(arch, r_type) {
                return Err(LoadError::UnsupportedRelocation {
                    kind: reloc_name(arch, r_type),
                    symbol: target_name(file, target),
                });
            }
            pending.push(Pending {
                at: p.offset + off,
                r_type,
                target,
                addend: r.addend(),
            });
        }
    }
    Ok(Layout {
        placed,
        text_len,
        got,
        pending,
        text,
        end: cursor,
    })
}

/// The name of a relocation's target, for messages.
fn target_name(file: &object::File<'_>, target: RelocationTarget) -> String {
    match target {
        RelocationTarget::Symbol(s) => file
            .symbol_by_index(s)
            .ok()
            .and_then(|s| s.name().ok().map(str::to_string))
            .unwrap_or_else(|| format!("symbol #{}", s.0)),
        RelocationTarget::Section(si) => format!("section #{}", si.0),
        _ => "<absolute>".into(),
    }
}

/// Puts the contents of every placed section at its place: the text
/// straight from the file when `file` is given and the layout allows it
/// (whole pages mapped copy-on-write, the last partial page copied),
/// everything else copied. Returns whether text was mapped from the file.
fn place_sections(
    file: &object::File<'_>,
    layout: &Layout,
    mem: &mut CodeMemory,
    backing: Option<&std::fs::File>,
) -> Result<bool, LoadError> {
    let page = page_size();
    let mut mapped = false;
    for sec in file.sections() {
        let Some(p) = layout.placed(sec.index()) else {
            continue;
        };
        let name = sec.name().unwrap_or("?");
        let compressed = sec
            .compressed_data()
            .map_err(elf(format!("the data of section `{name}`")))?;
        if compressed.format != object::CompressionFormat::None {
            return Err(bad("compressed sections are not supported"));
        }
        // Also checks that the data lies inside the object.
        let data = sec
            .data()
            .map_err(elf(format!("the data of section `{name}`")))?;
        if data.len() > p.size {
            return Err(bad("section data larger than its size"));
        }
        let mut copied_from = 0;
        if let (Some(f), true, Some((file_off, _))) = (backing, p.text, sec.file_range()) {
            let whole = data.len() & !(page - 1);
            if whole > 0 && p.offset.is_multiple_of(page) && file_off.is_multiple_of(page as u64) {
                mem.map_file(p.offset, whole, f, file_off)?;
                copied_from = whole;
                mapped = true;
            }
        }
        if copied_from < data.len() {
            mem.write(p.offset + copied_from, &data[copied_from..]);
        }
    }
    Ok(mapped)
}

/// Resolves the object's symbols to absolute addresses in the mapping.
struct Symbols<'a, 'data> {
    file: &'a object::File<'data>,
    layout: &'a Layout,
    base: usize,
}

impl Symbols<'_, '_> {
    /// The address of symbol `idx`, which must be defined in a loaded
    /// section (an `.aot` object is self-contained). Its name is only
    /// looked up for an error.
    fn resolve(&self, idx: SymbolIndex) -> Result<usize, LoadError> {
        let sym = self
            .file
            .symbol_by_index(idx)
            .map_err(elf(format!("symbol #{}", idx.0)))?;
        self.resolve_symbol(&sym)
    }

    fn resolve_symbol(&self, sym: &object::Symbol<'_, '_>) -> Result<usize, LoadError> {
        let name = || sym.name().unwrap_or("?").to_string();
        if sym.is_undefined() {
            return Err(LoadError::UndefinedSymbol(name()));
        }
        let si = sym
            .section_index()
            .ok_or_else(|| LoadError::UndefinedSymbol(name()))?;
        let p = self.layout.placed(si).ok_or_else(|| {
            LoadError::BadObject(format!(
                "symbol `{}` is in a section that is not loaded",
                name()
            ))
        })?;
        let off = sym
            .address()
            .checked_sub(p.address)
            .ok_or_else(|| bad("symbol before its section"))? as usize;
        if off > p.size {
            return Err(bad(format!("symbol `{}` outside its section", name())));
        }
        Ok(self.base + p.offset + off)
    }
}

/// Writes each GOT slot: the address of its symbol.
fn fill_got(
    symbols: &Symbols<'_, '_>,
    layout: &Layout,
    mem: &mut CodeMemory,
) -> Result<(), LoadError> {
    for (s, slot) in &layout.got {
        let addr = symbols.resolve(*s)?;
        mem.write(*slot, &(addr as u64).to_le_bytes());
    }
    Ok(())
}

/// Applies the relocations [`lay_out`] kept (RELA only, of the kinds
/// [`apply`] knows). `mvvm-aot` writes none (it applies the calls
/// itself); an object from `mvvm_aot::compile_keeping_relocations` still
/// has those of its calls, applied again here to the same bytes.
fn relocate(
    arch: TargetArch,
    symbols: &Symbols<'_, '_>,
    layout: &Layout,
    mem: &mut CodeMemory,
) -> Result<(), LoadError> {
    let base = symbols.base;
    for r in &layout.pending {
        let (target, got_slot) = match r.target {
            RelocationTarget::Symbol(s) => (
                symbols.resolve(s)?,
                layout.got.get(&s).map(|o| (base + o) as u64),
            ),
            RelocationTarget::Section(si) => {
                let pl = layout
                    .placed(si)
                    .ok_or_else(|| bad("relocation against a section that is not loaded"))?;
                (base + pl.offset, None)
            }
            _ => unreachable!("lay_out keeps symbol and section targets only"),
        };
        if r.at + 8 > mem.len() {
            return Err(bad("relocation outside its section"));
        }
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&mem.bytes()[r.at..r.at + 8]);
        apply(
            arch,
            r.r_type,
            &mut buf,
            (base + r.at) as u64,
            target as u64,
            r.addend,
            got_slot,
            "",
        )
        .map_err(|e| name_symbol(e, || target_name(symbols.file, r.target)))?;
        mem.write(r.at, &buf[..reloc_width(arch, r.r_type)]);
    }
    Ok(())
}

/// `e` with the relocation's target named (resolved only on error).
fn name_symbol(e: LoadError, name: impl FnOnce() -> String) -> LoadError {
    match e {
        LoadError::RelocationOutOfRange { kind, .. } => LoadError::RelocationOutOfRange {
            kind,
            symbol: name(),
        },
        LoadError::UnsupportedRelocation { kind, .. } => LoadError::UnsupportedRelocation {
            kind,
            symbol: name(),
        },
        e => e,
    }
}

/// Bytes a relocation of `r_type` writes (so that an applied relocation
/// dirties only its own bytes of a copy-on-write page).
fn reloc_width(arch: TargetArch, r_type: u32) -> usize {
    match (arch, r_type) {
        (TargetArch::X86_64, elf::R_X86_64_64) | (TargetArch::Aarch64, elf::R_AARCH64_ABS64) => 8,
        _ => 4,
    }
}

/// Where the runtime enters the code, besides the bodies (whose addresses
/// are read from the entries when taken, [`CodeInfo::body_addr`]).
struct Entries {
    /// Address of `mvvm_import_{j}` per imported function.
    import_stubs: Vec<usize>,
    /// Address of `mvvm_array_{i}` per function that has one.
    trampolines: HashMap<u32, usize>,
}

/// The entries section of `file`, checked against the module's counts
/// (constant time), read in place: from `owner` (the mapped file) when
/// given, else copied.
fn entry_section(
    file: &object::File<'_>,
    meta: &ModuleMeta,
    owner: Option<&SharedBytes>,
) -> Result<EntrySection, LoadError> {
    let sec = file
        .section_by_name(names::ENTRIES_SECTION)
        .ok_or_else(|| {
            LoadError::BadMeta(format!(
                "the object has no {} section",
                names::ENTRIES_SECTION
            ))
        })?;
    let (bytes, range) = section_in_place(&sec, owner, names::ENTRIES_SECTION)?;
    EntrySection::from_section(
        bytes,
        range,
        meta.num_defined_funcs(),
        meta.num_imported_funcs as usize,
        meta.array_trampolines.len(),
    )
    .map_err(|e| LoadError::BadMeta(e.to_string()))
}

/// Finds each import stub and array trampoline at its offset in
/// `entries` from `text` (the `.text` section's place in memory), checks
/// that each lies in that section, and checks the exception call sites
/// against the code they are in. Nothing here is per defined function:
/// a body's entry is checked when its address is taken, and the trap
/// handler searches the entries in place.
fn find_entries(
    meta: &ModuleMeta,
    entries: &EntryTable<'_>,
    text: &std::ops::Range<usize>,
) -> Result<Entries, LoadError> {
    let nimp = meta.num_imported_funcs as usize;
    let text_len = text.end - text.start;
    // The address of `size` bytes at `offset` into `.text`, if they fit.
    let place = |offset: u32, size: u32| -> Option<usize> {
        let end = (offset as usize).checked_add(size as usize)?;
        (end <= text_len).then_some(text.start + offset as usize)
    };
    let mut import_stubs = Vec::with_capacity(nimp);
    for j in 0..nimp {
        let start = entries
            .stub(j)
            .and_then(|e| place(e.offset, e.size.max(1)))
            .ok_or_else(|| bad(format!("import stub {j} outside the text")))?;
        import_stubs.push(start);
    }
    let mut trampolines = HashMap::with_capacity(meta.array_trampolines.len());
    for (t, &i) in meta.array_trampolines.iter().enumerate() {
        let addr = entries
            .trampoline(t)
            .and_then(|o| place(o, 1))
            .ok_or_else(|| bad(format!("array trampoline {i} outside the text")))?;
        trampolines.insert(i, addr);
    }
    // The exception walk jumps to handlers: only for the functions that
    // have some, each checked against its code's entry.
    for c in &meta.call_sites {
        let k = c.func as usize;
        let index = nimp + k;
        for (what, entry, sites) in [
            ("body", entries.body(k), &c.body),
            ("resume clone", entries.clone_of(k), &c.clone),
        ] {
            if sites.is_empty() {
                continue;
            }
            let e = entry
                .filter(|e| place(e.offset, e.size).is_some())
                .ok_or_else(|| {
                    bad(format!(
                        "exception call sites for the {what} of function {index}, which has no code in the text"
                    ))
                })?;
            check_call_sites(sites, e.size, || format!("the {what} of function {index}"))?;
        }
    }
    Ok(Entries {
        import_stubs,
        trampolines,
    })
}

/// The call sites of a body of `size` bytes (`what`), once they
/// are known to be sorted by return address, inside the body, and to name
/// handlers inside it: the exception walk jumps to `code_start +
/// code_offset`, so a handler outside its function would be a jump into
/// arbitrary code.
fn check_call_sites(
    sites: &[mvvm_abi::exception::CallSite],
    size: u32,
    what: impl FnOnce() -> String,
) -> Result<(), LoadError> {
    if !call_sites_sound(sites, size) {
        return Err(LoadError::BadMeta(format!(
            "exception call sites of {} unsorted or outside its code",
            what()
        )));
    }
    Ok(())
}

/// Whether `sites` are sorted by return address, inside code of `size`
/// bytes, and name handlers inside it (see [`check_call_sites`]; also the
/// check of a resume clone placed at run time, `crate::jit_clone`).
pub(crate) fn call_sites_sound(sites: &[mvvm_abi::exception::CallSite], size: u32) -> bool {
    let sorted = sites
        .windows(2)
        .all(|w| w[0].return_offset < w[1].return_offset);
    let inside = sites
        .iter()
        .all(|c| c.return_offset <= size && c.handlers.iter().all(|h| h.code_offset < size));
    sorted && inside
}

/// Names every code range in `/tmp/perf-PID.map` (`MVVM_PERF_MAP=1`), so
/// `perf report` shows wasm functions.
fn append_perf_map(info: &CodeInfo) {
    let named: Vec<(usize, usize, String)> = info
        .all_ranges()
        .map(|r| {
            let name = match info.name(&r) {
                Some(n) => format!("wasm[{}] {n}", r.index),
                None => format!("wasm[{}]", r.index),
            };
            (r.start, r.end - r.start, name)
        })
        .collect();
    crate::perf_map::append(&named);
}

/// Whether [`apply`] implements relocation `r_type` of `arch`.
fn is_known_reloc(arch: TargetArch, r_type: u32) -> bool {
    match arch {
        TargetArch::X86_64 => {
            matches!(
                r_type,
                elf::R_X86_64_64 | elf::R_X86_64_PC32 | elf::R_X86_64_PLT32
            ) || is_got_reloc(r_type)
        }
        TargetArch::Aarch64 => matches!(
            r_type,
            elf::R_AARCH64_ABS64
                | elf::R_AARCH64_CALL26
                | elf::R_AARCH64_JUMP26
                | elf::R_AARCH64_ADR_PREL_PG_HI21
                | elf::R_AARCH64_ADD_ABS_LO12_NC
                | elf::R_AARCH64_PREL32
        ),
    }
}

fn is_got_reloc(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_GOTPCREL | elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX
    )
}

fn reloc_name(arch: TargetArch, r_type: u32) -> String {
    let known = match arch {
        TargetArch::X86_64 => match r_type {
            elf::R_X86_64_64 => "R_X86_64_64",
            elf::R_X86_64_PC32 => "R_X86_64_PC32",
            elf::R_X86_64_PLT32 => "R_X86_64_PLT32",
            elf::R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
            elf::R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
            elf::R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
            elf::R_X86_64_32 => "R_X86_64_32",
            elf::R_X86_64_32S => "R_X86_64_32S",
            elf::R_X86_64_TLSGD => "R_X86_64_TLSGD",
            _ => "",
        },
        TargetArch::Aarch64 => match r_type {
            elf::R_AARCH64_ABS64 => "R_AARCH64_ABS64",
            elf::R_AARCH64_CALL26 => "R_AARCH64_CALL26",
            elf::R_AARCH64_JUMP26 => "R_AARCH64_JUMP26",
            elf::R_AARCH64_ADR_PREL_PG_HI21 => "R_AARCH64_ADR_PREL_PG_HI21",
            elf::R_AARCH64_ADD_ABS_LO12_NC => "R_AARCH64_ADD_ABS_LO12_NC",
            elf::R_AARCH64_PREL32 => "R_AARCH64_PREL32",
            _ => "",
        },
    };
    if known.is_empty() {
        format!("ELF relocation type {r_type}")
    } else {
        known.to_string()
    }
}

fn write_u32(buf: &mut [u8], v: u32) {
    buf[..4].copy_from_slice(&v.to_le_bytes());
}

fn read_u32(buf: &[u8]) -> u32 {
    u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])
}

/// Applies one relocation at `buf[0..]` (the place, at address `place`).
#[allow(clippy::too_many_arguments)]
fn apply(
    arch: TargetArch,
    r_type: u32,
    buf: &mut [u8],
    place: u64,
    target: u64,
    addend: i64,
    got_slot: Option<u64>,
    symbol: &str,
) -> Result<(), LoadError> {
    let s_a = target.wrapping_add(addend as u64);
    let out_of_range = || LoadError::RelocationOutOfRange {
        kind: reloc_name(arch, r_type),
        symbol: symbol.to_string(),
    };
    let pcrel32 = |buf: &mut [u8], value: u64| -> Result<(), LoadError> {
        let d = value.wrapping_sub(place) as i64;
        let v = i32::try_from(d).map_err(|_| out_of_range())?;
        write_u32(buf, v as u32);
        Ok(())
    };
    match (arch, r_type) {
        (TargetArch::X86_64, elf::R_X86_64_64) | (TargetArch::Aarch64, elf::R_AARCH64_ABS64) => {
            buf[..8].copy_from_slice(&s_a.to_le_bytes());
        }
        (TargetArch::X86_64, elf::R_X86_64_PC32 | elf::R_X86_64_PLT32)
        | (TargetArch::Aarch64, elf::R_AARCH64_PREL32) => pcrel32(buf, s_a)?,
        (TargetArch::X86_64, r) if is_got_reloc(r) => {
            let slot = got_slot.ok_or_else(out_of_range)?;
            pcrel32(buf, slot.wrapping_add(addend as u64))?;
        }
        (TargetArch::Aarch64, elf::R_AARCH64_CALL26 | elf::R_AARCH64_JUMP26) => {
            let d = s_a.wrapping_sub(place) as i64;
            if d & 3 != 0 || !(-(1 << 27)..(1 << 27)).contains(&d) {
                return Err(out_of_range());
            }
            let insn = read_u32(buf);
            let imm = ((d >> 2) as u32) & 0x03ff_ffff;
            write_u32(buf, (insn & !0x03ff_ffff) | imm);
        }
        (TargetArch::Aarch64, elf::R_AARCH64_ADR_PREL_PG_HI21) => {
            let d = ((s_a & !0xfff) as i64).wrapping_sub((place & !0xfff) as i64) >> 12;
            if !(-(1 << 20)..(1 << 20)).contains(&d) {
                return Err(out_of_range());
            }
            let d = d as u32;
            let immlo = d & 0x3;
            let immhi = (d >> 2) & 0x7_ffff;
            let insn = read_u32(buf) & !((0x3 << 29) | (0x7_ffff << 5));
            write_u32(buf, insn | (immlo << 29) | (immhi << 5));
        }
        (TargetArch::Aarch64, elf::R_AARCH64_ADD_ABS_LO12_NC) => {
            let imm = (s_a & 0xfff) as u32;
            let insn = read_u32(buf) & !(0xfff << 10);
            write_u32(buf, insn | (imm << 10));
        }
        _ => {
            return Err(LoadError::UnsupportedRelocation {
                kind: reloc_name(arch, r_type),
                symbol: symbol.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_pc32_and_abs64_values() {
        let mut b = [0u8; 8];
        apply(
            TargetArch::X86_64,
            elf::R_X86_64_PLT32,
            &mut b,
            0x1000,
            0x2000,
            -4,
            None,
            "f",
        )
        .unwrap();
        assert_eq!(i32::from_le_bytes(b[..4].try_into().unwrap()), 0x1000 - 4);
        apply(
            TargetArch::X86_64,
            elf::R_X86_64_64,
            &mut b,
            0x1000,
            0x1234_5678_9abc,
            4,
            None,
            "f",
        )
        .unwrap();
        assert_eq!(u64::from_le_bytes(b), 0x1234_5678_9ac0);
        let far = apply(
            TargetArch::X86_64,
            elf::R_X86_64_PC32,
            &mut b,
            0,
            1 << 40,
            0,
            None,
            "far",
        );
        assert!(matches!(far, Err(LoadError::RelocationOutOfRange { .. })));
    }

    #[test]
    fn x86_gotpcrel_uses_slot() {
        let mut b = [0u8; 8];
        apply(
            TargetArch::X86_64,
            elf::R_X86_64_GOTPCREL,
            &mut b,
            0x1000,
            0x9999_0000,
            -4,
            Some(0x3000),
            "g",
        )
        .unwrap();
        assert_eq!(i32::from_le_bytes(b[..4].try_into().unwrap()), 0x2000 - 4);
    }

    #[test]
    fn aarch64_call26_adrp_add() {
        // bl #0
        let mut b = 0x9400_0000u32.to_le_bytes().to_vec();
        b.resize(8, 0);
        apply(
            TargetArch::Aarch64,
            elf::R_AARCH64_CALL26,
            &mut b,
            0x1000,
            0x1010,
            0,
            None,
            "f",
        )
        .unwrap();
        assert_eq!(read_u32(&b), 0x9400_0004);
        // adrp x0, #0 ; target two pages up
        let mut b = 0x9000_0000u32.to_le_bytes().to_vec();
        b.resize(8, 0);
        apply(
            TargetArch::Aarch64,
            elf::R_AARCH64_ADR_PREL_PG_HI21,
            &mut b,
            0x1004,
            0x3008,
            0,
            None,
            "d",
        )
        .unwrap();
        // immlo = 2 & 3 = 2 -> bits 29..30
        assert_eq!(read_u32(&b), 0x9000_0000 | (2 << 29));
        // add x0, x0, #0
        let mut b = 0x9100_0000u32.to_le_bytes().to_vec();
        b.resize(8, 0);
        apply(
            TargetArch::Aarch64,
            elf::R_AARCH64_ADD_ABS_LO12_NC,
            &mut b,
            0,
            0x3008,
            0,
            None,
            "d",
        )
        .unwrap();
        assert_eq!(read_u32(&b), 0x9100_0000 | (8 << 10));
    }

    #[test]
    fn aarch64_branch_backwards_and_out_of_range() {
        // b #0, to 16 bytes before the place: imm26 = -4.
        let mut b = 0x1400_0000u32.to_le_bytes().to_vec();
        b.resize(8, 0);
        apply(
            TargetArch::Aarch64,
            elf::R_AARCH64_JUMP26,
            &mut b,
            0x1010,
            0x1000,
            0,
            None,
            "f",
        )
        .unwrap();
        assert_eq!(read_u32(&b), 0x1400_0000 | 0x03ff_fffc);
        // bl reaches +-128 MiB only; a misaligned target is refused too.
        for target in [0x1000 + (128 << 20), 0x1002] {
            let mut b = 0x9400_0000u32.to_le_bytes().to_vec();
            b.resize(8, 0);
            let r = apply(
                TargetArch::Aarch64,
                elf::R_AARCH64_CALL26,
                &mut b,
                0x1000,
                target,
                0,
                None,
                "far",
            );
            assert!(
                matches!(r, Err(LoadError::RelocationOutOfRange { .. })),
                "{target:#x}: {r:?}"
            );
        }
    }

    #[test]
    fn unknown_relocation_is_refused_by_name() {
        let mut b = [0u8; 8];
        let e = apply(
            TargetArch::X86_64,
            elf::R_X86_64_TLSGD,
            &mut b,
            0,
            0,
            0,
            None,
            "tls",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported relocation R_X86_64_TLSGD against `tls`"
        );
    }

    #[test]
    fn garbage_and_truncated_input_are_refused() {
        assert!(matches!(load(b"not an elf"), Err(LoadError::Elf { .. })));
        assert!(matches!(load(&[]), Err(LoadError::Elf { .. })));
        assert!(matches!(
            load(b"\x7fELF\x02\x01\x01"),
            Err(LoadError::Elf { .. })
        ));
    }

    #[test]
    fn an_elf_error_is_the_source_not_part_of_the_message() {
        let e = load(b"not an elf").unwrap_err();
        let source = std::error::Error::source(&e).expect("the object crate's error");
        assert!(
            !e.to_string().contains(&source.to_string()),
            "{e} repeats its source {source}"
        );
    }

    #[test]
    fn feature_names_are_checked() {
        assert_eq!(host_has_feature("has_no_such_thing"), None);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            host_has_feature("has_sse3"),
            Some(std::arch::is_x86_feature_detected!("sse3"))
        );
        #[cfg(target_arch = "aarch64")]
        {
            use std::arch::is_aarch64_feature_detected as d;
            assert_eq!(host_has_feature("has_lse"), Some(d!("lse")));
            assert_eq!(host_has_feature("has_fp16"), Some(d!("fp16")));
            // An x86-64 flag means nothing here.
            assert_eq!(host_has_feature("has_sse3"), None);
        }
    }
}
