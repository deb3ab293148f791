//! The object loader on real `.aot` objects, intact and damaged.

use mvvm_abi::meta::TargetArch;
use mvvm_abi::version::{AOT_FORMAT_VERSION, META_MAGIC};
use mvvm_rt::loader::{LoadError, check_host, read_meta};
use mvvm_rt::{Instance, Module, RunError, Store, Val};
use object::{Object, ObjectSection};

const WAT: &str = r#"(module
  (memory 1)
  (func $helper (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func (export "twice") (param i32) (result i32)
    local.get 0 call $helper call $helper)
  (func (export "f") (result f64) f64.const 1.5 f64.const 2.25 f64.add))"#;

fn aot(target: TargetArch) -> Vec<u8> {
    let opts = mvvm_aot::CompileOptions {
        target,
        ..Default::default()
    };
    mvvm_aot::compile(WAT.as_bytes(), &opts).expect("compile")
}

fn host() -> TargetArch {
    TargetArch::host().expect("supported host")
}

#[test]
fn relocated_calls_and_constants_work() {
    let m = Module::from_aot(&aot(host())).unwrap();
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).unwrap();
    assert_eq!(
        i.invoke(&mut store, "twice", &[Val::I32(5)]).unwrap(),
        vec![Val::I32(7)]
    );
    assert_eq!(
        i.invoke(&mut store, "f", &[]).unwrap(),
        vec![Val::F64(3.75f64.to_bits())]
    );
}

#[test]
fn wrong_format_version_is_refused() {
    let mut bytes = aot(host());
    let at = bytes
        .windows(8)
        .position(|w| w == META_MAGIC)
        .expect("magic")
        + 8;
    // The previous format (entry points found by symbol, call
    // relocations kept) and a future one are refused alike, naming both
    // versions.
    for found in [AOT_FORMAT_VERSION - 1, AOT_FORMAT_VERSION + 7] {
        bytes[at..at + 4].copy_from_slice(&found.to_le_bytes());
        match Module::from_aot(&bytes) {
            Err(e @ LoadError::FormatVersion { .. }) => {
                let LoadError::FormatVersion {
                    found: f, expected, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*f, *expected), (found, AOT_FORMAT_VERSION));
                let m = e.to_string();
                assert!(m.contains(&found.to_string()), "{m}");
            }
            other => panic!("expected FormatVersion, got {other:?}"),
        }
    }
}

/// A module whose functions have trap sites of several codes.
const TRAPS_WAT: &str = r#"(module
  (memory 1)
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "loads") (param i32) (result i32)
    (i32.add (i32.load (local.get 0))
      (i32.wrap_i64 (i64.load32_u offset=9 (local.get 0)))))
  (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0)))
  (func (export "boom") unreachable))"#;

/// `bytes` with the bytes of the object's section `name` passed to
/// `damage`.
fn damage_section(mut bytes: Vec<u8>, name: &str, damage: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let file = object::File::parse(&*bytes).unwrap();
    let (off, size) = file
        .section_by_name(name)
        .unwrap_or_else(|| panic!("a section {name}"))
        .file_range()
        .unwrap();
    drop(file);
    damage(&mut bytes[off as usize..(off + size) as usize]);
    bytes
}

/// `bytes` with the trap sites section's bytes passed to `damage`.
fn damage_trap_sites(bytes: Vec<u8>, damage: impl FnOnce(&mut [u8])) -> Vec<u8> {
    damage_section(bytes, mvvm_abi::object::TRAPS_SECTION, damage)
}

/// The trap sites section is read in place by the signal handler. What
/// holds it together is checked at load (a damaged header or index end
/// refuses the load with a message naming it); a function's own sites
/// are checked when used, so a load reads nothing per function: a trap
/// in a function whose sites are damaged is still a trap (never a
/// crash, never a lookup into another function's sites), reported as
/// the damage. An intact section, read from the mapped file, reports
/// the trap's code and wasm offset.
#[test]
fn damaged_trap_sites_are_refused() {
    let good = mvvm_aot::compile(TRAPS_WAT.as_bytes(), &Default::default()).expect("compile");
    let count = |s: &[u8]| u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
    let index_end = |s: &[u8]| 4 + 4 * (2 * count(s) + 1);
    let idx = |s: &[u8], i: usize| u32::from_le_bytes(s[4 + 4 * i..8 + 4 * i].try_into().unwrap());
    let at_load: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong count",
            damage_trap_sites(good.clone(), |s| {
                s[..4].copy_from_slice(&9u32.to_le_bytes())
            }),
            "9 functions",
        ),
        (
            "index not ending at the last record",
            damage_trap_sites(good.clone(), |s| {
                let e = index_end(s);
                s[e - 4..e].copy_from_slice(&0u32.to_le_bytes());
            }),
            "the index covers 0",
        ),
        (
            "section missing",
            {
                let mut b = good.clone();
                let name = mvvm_abi::object::TRAPS_SECTION.as_bytes();
                let at = b.windows(name.len()).position(|w| w == name).expect("name");
                b[at + name.len() - 1] = b'X';
                b
            },
            "no .mvvm.traps section",
        ),
    ];
    for (what, bytes, says) in at_load {
        match Module::from_aot(&bytes) {
            Err(e @ LoadError::BadMeta(_)) => {
                let m = e.to_string();
                assert!(m.contains(says), "{what}: {m}");
                assert!(
                    m.contains("trap sites") || m.contains(".mvvm.traps"),
                    "{what}: {m}"
                );
            }
            other => panic!("{what}: expected BadMeta, got {other:?}"),
        }
    }
    // Damage to one function's part: (what, bytes, export that traps, its
    // argument, what the trap says).
    let first_record = |s: &[u8], k: usize| index_end(s) + 12 * idx(s, k) as usize;
    let when_used: Vec<(&str, Vec<u8>, &str, i32, &str)> = vec![
        (
            "index past the records",
            damage_trap_sites(good.clone(), |s| s[8..12].fill(0xff)),
            "load",
            70_000,
            "range 0",
        ),
        (
            "unknown trap code",
            damage_trap_sites(good.clone(), |s| {
                let at = first_record(s, 0);
                s[at + 8] = 0xee;
            }),
            "load",
            70_000,
            "unknown trap code 238",
        ),
        (
            "sites out of order",
            damage_trap_sites(good.clone(), |s| {
                assert!(idx(s, 2) - idx(s, 1) >= 2, "`loads` has two sites");
                let at = first_record(s, 1);
                s[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }),
            "loads",
            70_000,
            "not sorted",
        ),
        (
            // A trap instruction (not a fault) whose site is missed.
            "an unreachable's site damaged",
            damage_trap_sites(good.clone(), |s| {
                let at = first_record(s, 3);
                s[at + 8] = 0xee;
            }),
            "boom",
            0,
            "unknown trap code 238",
        ),
    ];
    for (what, bytes, export, arg, says) in when_used {
        let m = Module::from_aot(&bytes)
            .unwrap_or_else(|e| panic!("{what}: a function's sites are not read at load: {e}"));
        let mut store = Store::new();
        let i = Instance::new(&mut store, &m, &[]).unwrap();
        let args = if export == "boom" {
            vec![]
        } else {
            vec![Val::I32(arg)]
        };
        match i.invoke(&mut store, export, &args) {
            Err(RunError::Trap(t)) => {
                let msg = t.to_string();
                assert!(
                    msg.contains("corrupt .aot") && msg.contains(says),
                    "{what}: {msg}"
                );
            }
            other => panic!("{what}: expected a trap, got {other:?}"),
        }
        // The checkpoint tables of the function say so too.
        let func = ["load", "loads", "div", "boom"]
            .iter()
            .position(|e| *e == export)
            .unwrap() as u32;
        let e = m.meta().func_tables(func).unwrap_err().to_string();
        assert!(e.contains(says), "{what}: {e}");
        // The other functions trap as before.
        if export != "div" {
            match i.invoke(&mut store, "div", &[Val::I32(0)]) {
                Err(RunError::Trap(t)) => {
                    assert_eq!(t.code, mvvm_abi::TrapCode::IntegerDivisionByZero, "{what}");
                    assert!(t.wasm_offset.is_some(), "{what}: {t}");
                }
                other => panic!("{what}: expected a trap, got {other:?}"),
            }
        }
    }
    // Intact, mapped from a file: traps are found with their offsets.
    let dir = std::env::temp_dir().join(format!("mvvm-loader-traps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("traps.aot");
    std::fs::write(&path, &good).unwrap();
    let m = Module::from_aot_file(&path).unwrap();
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).unwrap();
    for (name, arg, code) in [
        ("load", 70_000, mvvm_abi::TrapCode::MemoryOutOfBounds),
        ("div", 0, mvvm_abi::TrapCode::IntegerDivisionByZero),
        ("boom", -1, mvvm_abi::TrapCode::Unreachable),
    ] {
        let args = if name == "boom" {
            vec![]
        } else {
            vec![Val::I32(arg)]
        };
        let t = match i.invoke(&mut store, name, &args) {
            Err(RunError::Trap(t)) => t,
            other => panic!("{name}: expected a trap, got {other:?}"),
        };
        assert_eq!(t.code, code, "{name}");
        assert!(t.wasm_offset.is_some_and(|o| o > 0), "{name}: {t}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resume clones' trap sites are not read at load (a run that does
/// not restore never executes a clone): a damaged clone record leaves the
/// load and a plain run intact, and is reported by the function's
/// checkpoint tables, which every rewind of its frames looks up first.
#[test]
fn a_damaged_clone_trap_site_fails_its_tables_not_the_load() {
    let wat = r#"(module
      (memory 1)
      (func (export "sum") (param i32) (result i32) (local i32)
        (block $out (loop $l
          (br_if $out (i32.eqz (local.get 0)))
          (local.set 1 (i32.add (local.get 1) (i32.load (local.get 0))))
          (local.set 0 (i32.sub (local.get 0) (i32.const 4)))
          (br $l)))
        (local.get 1)))"#;
    let opts = mvvm_aot::CompileOptions {
        policy: mvvm_abi::Policy::Loop,
        ..Default::default()
    };
    let good = mvvm_aot::compile(wat.as_bytes(), &opts).expect("compile");
    let bytes = damage_trap_sites(good, |s| {
        let n = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
        assert_eq!(n, 1);
        let idx = |i: usize| u32::from_le_bytes(s[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        let (start, end) = (idx(1), idx(2));
        assert!(end > start, "the clone has trap sites");
        s[4 + 4 * 3 + 12 * start as usize + 8] = 0xee;
    });
    let m = Module::from_aot(&bytes).expect("the load does not read clone records");
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).unwrap();
    assert_eq!(
        i.invoke(&mut store, "sum", &[Val::I32(0)]).unwrap(),
        vec![Val::I32(0)]
    );
    let e = m.meta().func_tables(0).unwrap_err().to_string();
    assert!(
        e.contains("trap sites") && e.contains("unknown trap code 238"),
        "{e}"
    );
}

/// `bytes` with the entries section's bytes passed to `damage`.
fn damage_entries(bytes: Vec<u8>, damage: impl FnOnce(&mut [u8])) -> Vec<u8> {
    damage_section(bytes, mvvm_abi::object::ENTRIES_SECTION, damage)
}

/// The entry points are read from their section, not from the symbol
/// table: damage the load reads (counts, length, the stubs and
/// trampolines it takes the addresses of) is refused at load with a
/// message naming what is wrong, whether the object is read or mapped
/// from its file. The bodies' entries are read when used (see
/// `a_damaged_body_entry_fails_when_used_not_at_load`).
#[test]
fn damaged_entries_are_refused() {
    let good = aot(host());
    let put = |s: &mut [u8], at: usize, v: u32| s[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong function count",
            damage_entries(good.clone(), |s| put(s, 0, 9)),
            "entries for 9 defined functions",
        ),
        (
            "wrong trampoline count",
            damage_entries(good.clone(), |s| put(s, 8, 1000)),
            "1000 array trampolines",
        ),
        (
            "trampoline outside the text",
            damage_entries(good.clone(), |s| {
                let end = s.len();
                put(s, end - 4, u32::MAX)
            }),
            "outside the text",
        ),
        (
            "section missing",
            {
                let mut b = good.clone();
                let name = mvvm_abi::object::ENTRIES_SECTION.as_bytes();
                let at = b.windows(name.len()).position(|w| w == name).expect("name");
                b[at + name.len() - 1] = b'X';
                b
            },
            "no .mvvm.entries section",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("mvvm-loader-entries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (what, bytes, says) in cases {
        let path = dir.join("damaged.aot");
        std::fs::write(&path, &bytes).unwrap();
        for (how, got) in [
            ("read", Module::from_aot(&bytes)),
            ("mapped", Module::from_aot_file(&path)),
        ] {
            match got {
                Err(e @ (LoadError::BadMeta(_) | LoadError::BadObject(_))) => {
                    let m = e.to_string();
                    assert!(m.contains(says), "{what} ({how}): {m}");
                }
                other => panic!("{what} ({how}): expected a refusal, got {other:?}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A body's entry is read in place when its address is first taken (at
/// instantiation, for the instance's function references), not at load,
/// so that a load does nothing per function: a body placed outside the
/// text fails there with a message naming it (never a jump outside the
/// text), read or mapped. A clone's entry is only ever searched by the
/// trap handler: one outside the text is never found, and a run that
/// does not restore is not affected.
#[test]
fn a_damaged_body_entry_fails_when_used_not_at_load() {
    let good = aot(host());
    let put = |s: &mut [u8], at: usize, v: u32| s[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let dir = std::env::temp_dir().join(format!("mvvm-loader-lazy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("damaged.aot");
    // Body 0's offset (the first pair after the 12-byte header).
    let bytes = damage_entries(good.clone(), |s| put(s, 12, u32::MAX - 8));
    std::fs::write(&path, &bytes).unwrap();
    for (how, m) in [
        ("read", Module::from_aot(&bytes)),
        ("mapped", Module::from_aot_file(&path)),
    ] {
        let m = m.unwrap_or_else(|e| panic!("{how}: the load reads no body entry: {e}"));
        let mut store = Store::new();
        match Instance::new(&mut store, &m, &[]) {
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("corrupt .aot") && e.contains("body of function 0"),
                    "{how}: {e}"
                );
            }
            Ok(_) => panic!("{how}: instantiated with a body outside the text"),
        }
    }
    // A body's size that runs past the text: the same.
    let bytes = damage_entries(good.clone(), |s| put(s, 16, u32::MAX));
    let m = Module::from_aot(&bytes).expect("the load reads no body entry");
    let e = Instance::new(&mut Store::new(), &m, &[])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the text"), "{e}");
    // A clone entry where the function has none, outside the text: the
    // trap handler never finds it; the program runs as before.
    let bytes = damage_entries(good, |s| {
        let n = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
        put(s, 12 + 8 * n, u32::MAX - 8);
        put(s, 12 + 8 * n + 4, 64);
    });
    let m = Module::from_aot(&bytes).expect("the load reads no clone entry");
    assert_eq!(m.code_sizes(0).map(|s| s.1), Some(Some(64)));
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).unwrap();
    assert_eq!(
        i.invoke(&mut store, "twice", &[Val::I32(5)]).unwrap(),
        vec![Val::I32(7)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The function names are read in place when a message needs one: a
/// names section whose header is damaged is refused at load; a damaged
/// name reads as none (the trap names the function by its index), and
/// the other names still read.
#[test]
fn damaged_names_are_refused_or_read_as_none() {
    let wat = r#"(module
      (func $first (export "first") unreachable)
      (func $second (export "second") unreachable))"#;
    let good = mvvm_aot::compile(wat.as_bytes(), &Default::default()).expect("compile");
    let trap_of = |bytes: &[u8], name: &str| {
        let m = Module::from_aot(bytes).expect("loads");
        let mut store = Store::new();
        let i = Instance::new(&mut store, &m, &[]).unwrap();
        match i.invoke(&mut store, name, &[]) {
            Err(RunError::Trap(t)) => t,
            other => panic!("{name}: expected a trap, got {other:?}"),
        }
    };
    let t = trap_of(&good, "second");
    assert_eq!((t.func, t.func_name.as_deref()), (Some(1), Some("second")));
    let names = mvvm_abi::object::NAMES_SECTION;
    let bytes = damage_section(good.clone(), names, |s| {
        s[..4].copy_from_slice(&1_000_000u32.to_le_bytes())
    });
    match Module::from_aot(&bytes) {
        Err(e @ LoadError::BadMeta(_)) => {
            let m = e.to_string();
            assert!(m.contains("names") && m.contains("1000000"), "{m}");
        }
        other => panic!("expected BadMeta, got {other:?}"),
    }
    // The last name's end (record 1: index, end) past the end of the
    // section.
    let bytes = damage_section(good, names, |s| {
        s[16..20].copy_from_slice(&u32::MAX.to_le_bytes())
    });
    let t = trap_of(&bytes, "second");
    assert_eq!((t.func, t.func_name.as_deref()), (Some(1), None), "{t}");
    let t = trap_of(&bytes, "first");
    assert_eq!(t.func_name.as_deref(), Some("first"));
}

#[test]
fn wrong_target_is_refused() {
    let other = match host() {
        TargetArch::X86_64 => TargetArch::Aarch64,
        TargetArch::Aarch64 => TargetArch::X86_64,
    };
    match Module::from_aot(&aot(other)) {
        Err(LoadError::WrongTarget { found, host: h }) => {
            assert_eq!(found, other.name());
            assert_eq!(h, host().name());
        }
        other => panic!("expected WrongTarget, got {other:?}"),
    }
}

#[test]
fn unknown_cpu_feature_is_refused() {
    let mut meta = read_meta(&aot(host())).unwrap();
    check_host(&meta).unwrap();
    meta.cpu_features.push("has_time_travel".into());
    assert!(matches!(
        check_host(&meta),
        Err(LoadError::MissingCpuFeature(f)) if f == "has_time_travel"
    ));
}

#[test]
fn unknown_relocation_is_refused() {
    // The usual object has no relocation left (calls are pre-linked):
    // one that keeps them.
    let opts = mvvm_aot::CompileOptions {
        target: host(),
        ..Default::default()
    };
    let mut bytes = mvvm_aot::compile_keeping_relocations(WAT.as_bytes(), &opts).expect("compile");
    let file = object::File::parse(&*bytes).unwrap();
    let rela = file
        .sections()
        .find(|s| s.name().is_ok_and(|n| n.starts_with(".rela.text")) && s.size() >= 24)
        .expect("a .rela.text section");
    let (off, _) = rela.file_range().unwrap();
    drop(file);
    // Elf64_Rela: r_offset (8), r_info (8: symbol << 32 | type), r_addend.
    let info_at = off as usize + 8;
    let mut info = u64::from_le_bytes(bytes[info_at..info_at + 8].try_into().unwrap());
    info = (info & !0xffff_ffff) | 250; // no such relocation type
    bytes[info_at..info_at + 8].copy_from_slice(&info.to_le_bytes());
    match Module::from_aot(&bytes) {
        Err(LoadError::UnsupportedRelocation { kind, .. }) => {
            assert_eq!(kind, "ELF relocation type 250");
        }
        other => panic!("expected UnsupportedRelocation, got {other:?}"),
    }
}

#[test]
fn truncated_and_garbage_objects_are_refused() {
    let bytes = aot(host());
    for cut in [0, 16, 64, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        assert!(Module::from_aot(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut garbage = bytes.clone();
    for (i, b) in garbage.iter_mut().enumerate().skip(64) {
        *b ^= (i * 31) as u8;
    }
    assert!(Module::from_aot(&garbage).is_err());
    assert!(matches!(
        Module::from_aot(b"hello"),
        Err(LoadError::Elf { .. })
    ));
}

#[test]
fn object_without_metadata_is_refused() {
    let mut bytes = aot(host());
    let file = object::File::parse(&*bytes).unwrap();
    let at = file
        .sections()
        .find(|s| s.name() == Ok(mvvm_abi::object::META_SECTION))
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    drop(file);
    bytes[at] ^= 0xff;
    assert!(matches!(Module::from_aot(&bytes), Err(LoadError::BadMagic)));
}

/// A frame buffer size that the checkpoint tables cannot need (a corrupt
/// `frame_slots`) is refused at load: it would size an allocation. A
/// missing tables section is not (checkpoints report it).
#[test]
fn frame_buffer_beyond_the_tables_is_refused() {
    let mut bytes = aot(host());
    let file = object::File::parse(&*bytes).unwrap();
    let (at, size) = file
        .section_by_name(mvvm_abi::object::META_SECTION)
        .unwrap()
        .file_range()
        .unwrap();
    drop(file);
    let range = at as usize + 12..(at + size) as usize;
    let mut meta: mvvm_abi::ModuleMeta = mvvm_abi::codec::decode(&bytes[range.clone()]).unwrap();
    meta.frame_slots = u32::MAX;
    let encoded = mvvm_abi::codec::encode(&meta).unwrap();
    assert_eq!(encoded.len(), range.len(), "fixed-size integers");
    bytes[range].copy_from_slice(&encoded);
    match Module::from_aot(&bytes) {
        Err(LoadError::BadMeta(m)) => assert!(m.contains("frame buffer"), "{m}"),
        other => panic!("expected BadMeta, got {other:?}"),
    }
}

/// Deterministic mutation fuzzing: flipped bytes anywhere in a valid object
/// must give an error or a module, never a panic or a crash (nothing is
/// run: a mutated object that still loads only has its checkpoint tables
/// decoded).
#[test]
fn mutated_objects_never_panic() {
    let bytes = aot(host());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let mut m = bytes.clone();
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let at = (next() % m.len() as u64) as usize;
            m[at] ^= (next() % 255 + 1) as u8;
        }
        // The checkpoint tables are decoded on use: decode them all (an
        // error or tables, never a panic).
        if let Ok(module) = Module::from_aot(&m) {
            let _ = module.meta().all_func_tables();
        }
    }
    for cut in (0..bytes.len()).step_by(97) {
        assert!(Module::from_aot(&bytes[..cut]).is_err());
    }
}

/// The sections read in place and checked when used (entries, trap
/// sites, names): random damage to them gives a refusal, an error when
/// the part is used, or an intact-looking module, never a panic, through
/// every use that runs no code: each function's tables (which check its
/// trap sites), code sizes and name, and instantiation (which takes every
/// body's address).
#[test]
fn mutated_in_place_sections_never_panic() {
    let wat = r#"(module
      (memory 1)
      (func $a (export "a") (param i32) (result i32)
        (block $out (loop $l
          (br_if $out (i32.eqz (local.get 0)))
          (local.set 0 (i32.sub (local.get 0) (i32.load (local.get 0))))
          (br $l)))
        (local.get 0))
      (func $b (export "b") (param i32) (result i32)
        (i32.div_u (call $a (local.get 0)) (local.get 0)))
      (func $c (export "c") unreachable))"#;
    let opts = mvvm_aot::CompileOptions {
        policy: mvvm_abi::Policy::Loop,
        ..Default::default()
    };
    let good = mvvm_aot::compile(wat.as_bytes(), &opts).expect("compile");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut loaded, mut refused) = (0, 0);
    for name in [
        mvvm_abi::object::ENTRIES_SECTION,
        mvvm_abi::object::TRAPS_SECTION,
        mvvm_abi::object::NAMES_SECTION,
    ] {
        for _ in 0..300 {
            let flips = 1 + next() % 3;
            let bytes = damage_section(good.clone(), name, |s| {
                for _ in 0..flips {
                    let at = (next() % s.len() as u64) as usize;
                    s[at] ^= (next() % 255 + 1) as u8;
                }
            });
            let Ok(m) = Module::from_aot(&bytes) else {
                refused += 1;
                continue;
            };
            loaded += 1;
            let meta = m.meta();
            for f in 0..4 {
                let _ = (meta.func_tables(f), m.code_sizes(f), meta.func_name(f));
            }
            let _ = Instance::new(&mut Store::new(), &m, &[]);
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "{loaded} loaded, {refused} refused"
    );
}
