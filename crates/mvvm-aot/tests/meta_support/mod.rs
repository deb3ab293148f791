//! Reading the metadata back out of a compiled object, for the tests that
//! check what the compiler recorded (shared by `compile.rs` and `simd.rs`).

use mvvm_abi::ModuleMeta;
use mvvm_abi::entries::EntryTable;
use mvvm_abi::object::{CKPT_SECTION, ENTRIES_SECTION, META_SECTION, NAMES_SECTION, TRAPS_SECTION};
use mvvm_abi::version::{AOT_FORMAT_VERSION, META_MAGIC};
use object::{Object, ObjectSection};

/// The metadata section of object `obj`, decoded, with its checkpoint
/// tables and trap sites sections attached; panics (a test failure) when
/// one is missing or the metadata is of another format version.
pub fn read_meta(obj: &[u8]) -> ModuleMeta {
    let file = object::File::parse(obj).expect("ELF");
    let section = file.section_by_name(META_SECTION).expect("meta section");
    let data = section.data().expect("meta data");
    assert_eq!(&data[..8], &META_MAGIC);
    assert_eq!(
        u32::from_le_bytes(data[8..12].try_into().unwrap()),
        AOT_FORMAT_VERSION
    );
    let mut meta: ModuleMeta = mvvm_abi::codec::decode(&data[12..]).expect("decodes");
    let tables = file.section_by_name(CKPT_SECTION).expect("tables section");
    meta.attach_tables_section(tables.data().expect("tables data"))
        .expect("tables header");
    let traps = file
        .section_by_name(TRAPS_SECTION)
        .expect("trap sites section");
    meta.attach_trap_section(traps.data().expect("trap sites data"))
        .expect("trap sites section checks");
    if let Some(names) = file.section_by_name(NAMES_SECTION) {
        meta.attach_names_section(names.data().expect("names data"))
            .expect("names section header");
    }
    meta
}

/// The size of each defined function's body and of its resume clone (if
/// any), from the entries section of `obj` (whose metadata is `meta`).
#[allow(dead_code)]
pub fn code_sizes(obj: &[u8], meta: &ModuleMeta) -> Vec<(u32, Option<u32>)> {
    let file = object::File::parse(obj).expect("ELF");
    let data = file
        .section_by_name(ENTRIES_SECTION)
        .expect("entries section")
        .data()
        .expect("entries data");
    let t = EntryTable::parse(
        data,
        meta.num_defined_funcs(),
        meta.num_imported_funcs as usize,
        meta.array_trampolines.len(),
    )
    .expect("entries section checks");
    (0..t.funcs())
        .map(|k| {
            (
                t.body(k).expect("a body").size,
                t.clone_of(k).map(|c| c.size),
            )
        })
        .collect()
}
