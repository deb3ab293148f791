//! Resume clones compiled alone (`mvvm_aot::resume_clone`), installed in a
//! loaded module that also holds them in its object: the installed clone
//! must be the object's clone once patched for its place, and the
//! registry must see it as it sees the object's.

use super::*;
use crate::Module;
use crate::code::{func_at, lookup_pc, with_call_site, with_frame_site};
use mvvm_abi::Policy;
use mvvm_aot::CompileOptions;
use mvvm_aot::resume_clone::compile_resume_clone;

/// A loop with a call of a defined function, of an import (and of a
/// function that throws, inside a `try_table`), memory accesses and a
/// division (trap sites), and a probe (loop policy).
const WAT: &str = r#"(module
  (tag $e (param i32))
  (import "env" "f" (func $f (param i32)))
  (memory 1)
  (func $thrower (param i32) (if (local.get 0) (then (throw $e (local.get 0)))))
  (func $twice (param i32) (result i32) (i32.add (local.get 0) (local.get 0)))
  (func $work (export "run") (param $n i32) (result i32) (local $s i32)
    (block $out
      (loop $l
        (br_if $out (i32.eqz (local.get $n)))
        (block $h (result i32)
          (try_table (catch $e $h)
            (call $thrower (i32.rem_u (local.get $n) (i32.const 3)))
            (call $f (local.get $n)))
          (i32.const 0))
        (local.set $s (i32.add (local.get $s)))
        (i32.store (i32.const 64) (call $twice (local.get $s)))
        (local.set $s (i32.div_u (i32.load (local.get $n)) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $s)))"#;

/// Whether generated code can be compiled, mapped and registered here:
/// not under Miri (`scripts/miri.sh`), which has no `mprotect` and would
/// take hours to run Cranelift. There such a test is skipped with the
/// reason, and fails when every test must run (CI, `MVVM_REQUIRE_ALL`).
fn real_code_here() -> bool {
    crate::memory::tests::not_under_miri("Miri cannot map code or call mprotect")
}

/// `$work`: the import is function 0.
const WORK: u32 = 3;

fn opts(policy: Policy) -> CompileOptions {
    CompileOptions {
        policy,
        ..CompileOptions::default()
    }
}

/// `wasm` compiled with `opts`, symbols kept (the probe trampoline's
/// among them), loaded.
fn load(wasm: &[u8], opts: &CompileOptions) -> Module {
    let obj = mvvm_aot::compile_with_symbols(wasm, opts).expect("compiles");
    Module::from_aot(&obj).expect("loads")
}

/// binary-trees, and the options its tests compile it with (`-O2`, loop).
fn binary_trees() -> (Vec<u8>, CompileOptions) {
    let o = CompileOptions {
        opt_level: 2,
        ..opts(Policy::Loop)
    };
    (workspace_file("bench/wasm/binary-trees.wasm"), o)
}

fn workspace_file(rel: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The absolute target of call `c` of code at `at` whose bytes are `code`.
fn decoded_target(code: &[u8], at: usize, c: &CloneCall) -> i128 {
    let disp = read_field(code, c.offset as usize, c.field).expect("field inside the code");
    at as i128 + i128::from(c.offset) + i128::from(disp)
        - i128::from(c.addend)
        - i128::from(c.target_offset)
}

/// Where call `c` of the clone installed at `jit` (its code `code`,
/// placed with its veneers up to `end`) goes, as [`decoded_target`] gives
/// it: directly, or through a veneer after its code (then `true`), which
/// is decoded and must be one.
fn resolved_target(
    module: &Module,
    code: &CloneCode,
    jit: usize,
    end: usize,
    c: &CloneCall,
) -> (i128, bool) {
    let bytes = module.code_bytes(jit, end - jit).expect("placed bytes");
    let disp = read_field(&bytes, c.offset as usize, c.field).expect("field inside the code");
    let bias = i128::from(veneer::pc_bias(c.field));
    let hit = jit as i128 + i128::from(c.offset) + bias + i128::from(disp);
    let code_end = (jit + code.bytes.len()) as i128;
    let (dest, through) = if hit >= code_end && hit < end as i128 {
        let off = (hit - jit as i128) as usize;
        let first = crate::code::align_up(code.bytes.len(), veneer::ALIGN);
        assert!(
            off >= first && (off - first).is_multiple_of(veneer::size(c.field)),
            "call at {:#x} lands at {off:#x}, past the code but not on a veneer",
            c.offset
        );
        let d = veneer::decode(c.field, &bytes[off..])
            .unwrap_or_else(|| panic!("no veneer at {off:#x} for the call at {:#x}", c.offset));
        (i128::from(d), true)
    } else {
        (hit, false)
    };
    (
        dest - bias - i128::from(c.addend) - i128::from(c.target_offset),
        through,
    )
}

/// `code` with the call fields of `calls` zeroed.
fn masked(code: &[u8], calls: &[CloneCall]) -> Vec<u8> {
    let mut out = code.to_vec();
    for c in calls {
        let f = &mut out[c.offset as usize..c.offset as usize + 4];
        match c.field {
            CallField::X86Rel32 => f.fill(0),
            CallField::Arm64Call26 => {
                let insn = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) & !0x03ff_ffff;
                f.copy_from_slice(&insn.to_le_bytes());
            }
        }
    }
    out
}

/// How the clones of [`check_against_object`] were placed.
#[derive(Debug, Default)]
struct Placed {
    /// The targets of their calls.
    seen: Vec<CallTarget>,
    /// Clones in the arena, and in pages of their own.
    in_arena: usize,
    own_pages: usize,
    /// Calls that go through a veneer, and those that go directly.
    through_veneers: usize,
    direct: usize,
}

/// Installs the clone of every function of `module` (from `wasm`,
/// `opts`) that has one in the object, and compares it with the object's:
/// bytes, call targets (followed through veneers), trap lookups, names,
/// exception call sites, frame lookups. With `far`, every clone outside
/// the arena must call through veneers only; in the arena, none may.
fn check_against_object(
    name: &str,
    wasm: &[u8],
    opts: &CompileOptions,
    module: &Module,
    far: bool,
) -> Placed {
    let meta = module.meta();
    let nimp = meta.num_imported_funcs;
    let mut placed = Placed::default();
    let mut installed = 0;
    for func in nimp..nimp + meta.num_defined_funcs() as u32 {
        let Some(obj) = module.clone_entry(func) else {
            continue;
        };
        let code = compile_resume_clone(wasm, opts, func).expect("the clone compiles alone");
        let jit = module.install_clone(&code).expect("installs");
        assert_ne!(
            jit, obj,
            "{name}: {func}: installed over the object's clone"
        );
        installed += 1;
        // Its own fresh pages, in the arena or of its own.
        assert!(
            jit.is_multiple_of(page_size()),
            "{name}: {func}: not at a page start"
        );
        let (start, end, own) = module.inner.clones.placed(func).expect("placed");
        assert_eq!(start, jit);
        assert!(end >= jit + code.bytes.len(), "{name}: {func}");
        let in_arena = module
            .spans()
            .1
            .is_some_and(|(lo, hi)| lo <= jit && end <= hi);
        assert_eq!(in_arena, !own, "{name}: {func}: in the arena or not");
        if own {
            placed.own_pages += 1;
            assert_eq!(perms_at(jit).as_deref(), Some("r-xp"), "{name}: {func}");
        } else {
            placed.in_arena += 1;
        }
        // The object's clone is still the entry: installing leaves it.
        assert_eq!(module.clone_entry(func), Some(obj));
        let size = code.bytes.len();
        let jit_bytes = module.code_bytes(jit, size).expect("installed bytes");
        let obj_bytes = module.code_bytes(obj, size).expect("object clone bytes");
        assert!(
            masked(&jit_bytes, &code.calls) == masked(&obj_bytes, &code.calls),
            "{name}: {func}: code differs outside the call fields"
        );
        let mut veneered = 0;
        for c in &code.calls {
            let (to, through) = resolved_target(module, &code, jit, end, c);
            assert_eq!(
                to,
                decoded_target(&obj_bytes, obj, c),
                "{name}: {func}: call at {:#x} to {:?} (through a veneer: {through})",
                c.offset,
                c.target
            );
            if through {
                veneered += 1;
                placed.through_veneers += 1;
            } else {
                placed.direct += 1;
            }
            placed.seen.push(c.target);
        }
        if !own {
            assert_eq!(veneered, 0, "{name}: {func}: a veneer in the arena");
        } else if far {
            assert_eq!(
                veneered,
                code.calls.len(),
                "{name}: {func}: a call reaches 16 GiB directly"
            );
        }
        if veneered == 0 {
            assert_eq!(end, jit + size, "{name}: {func}: nothing after the code");
        } else {
            // The veneers belong to the clone for every lookup.
            let v = crate::code::align_up(size, veneer::ALIGN);
            assert_eq!(lookup_pc(jit + v).and_then(|l| l.func), Some(func));
            assert_eq!(func_at(end - 1).and_then(|f| f.0), Some(func));
        }
        // Trap sites: the same trap at the same offset of either clone.
        for t in &code.traps {
            let off = t.code_offset as usize;
            let (j, o) = (lookup_pc(jit + off), lookup_pc(obj + off));
            assert_eq!(j, o, "{name}: {func}: trap site at {off:#x}");
            let j = j.expect("registered");
            assert_eq!((j.func, j.code), (Some(func), Some(t.code)));
            assert_eq!(j.wasm_offset, Some(t.wasm_offset));
        }
        let j = lookup_pc(jit + size - 1).expect("the last byte is registered");
        assert_eq!(j.func, Some(func));
        assert!(lookup_pc(end).is_none_or(|l| l.func != Some(func)));
        // Names for trap messages.
        let (f, n, damage) = func_at(jit).expect("func_at finds the clone");
        assert_eq!((f, damage), (Some(func), None), "{name}: {func}");
        assert_eq!(n, func_at(obj).and_then(|x| x.1), "{name}: {func}: name");
        // Exception call sites: same handlers, relative to each clone.
        for s in &code.call_sites {
            let ret = s.return_offset as usize;
            let j = with_call_site(jit + ret, |l| match l {
                SiteLookup::Wasm { code_start, site } => (code_start, site.cloned()),
                SiteLookup::NotWasm => (0, None),
            });
            let o = with_call_site(obj + ret, |l| match l {
                SiteLookup::Wasm { code_start, site } => (code_start, site.cloned()),
                SiteLookup::NotWasm => (0, None),
            });
            assert_eq!((j.0, o.0), (jit, obj), "{name}: {func}: call site {ret:#x}");
            assert_eq!(j.1.as_ref(), Some(s), "{name}: {func}: call site {ret:#x}");
            assert_eq!(j.1, o.1);
        }
        // The frame walk sees a clone frame.
        let frame = with_frame_site(jit + 4, |f| f.map(|f| (f.func, f.ret_offset, f.body)));
        assert_eq!(frame, Some((func, 4, 2)), "{name}: {func}: frame site");
        // The perf map's line: the symbol, then the wasm name.
        let reg = JitClone {
            start: jit,
            end: jit + size,
            func,
            module: module.inner.code.clone(),
            traps: Vec::new(),
            call_sites: Vec::new(),
        };
        let perf = perf_name(&reg);
        match &n {
            Some(n) => assert_eq!(perf, format!("mvvm_resume_{func} {n}")),
            None => assert_eq!(perf, format!("mvvm_resume_{func}")),
        }
        // Installing again gives the first entry, placing nothing.
        assert_eq!(module.install_clone(&code).expect("again"), jit);
    }
    assert!(installed > 0, "{name}: no clone installed");
    placed
}

#[test]
fn an_installed_clone_is_the_object_clone_patched_for_its_place() {
    if !real_code_here() {
        return;
    }
    for policy in [Policy::Loop, Policy::CounterLoop { threshold_bits: 4 }] {
        let o = opts(policy);
        let module = load(WAT.as_bytes(), &o);
        assert!(
            module.inner.probe_trampoline.is_some(),
            "{policy:?}: probe found"
        );
        let seen = check_against_object("wat", WAT.as_bytes(), &o, &module, false).seen;
        let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
        let jit = module.install_clone(&code).expect("installed before");
        assert_eq!(func_at(jit).and_then(|f| f.1).as_deref(), Some("work"));
        for want in [
            CallTarget::Body(1),
            CallTarget::Body(2),
            CallTarget::ProbeTrampoline,
        ] {
            assert!(
                seen.contains(&want),
                "{policy:?}: no call to {want:?} in {seen:?}"
            );
        }
        assert!(!code.call_sites.is_empty() && !code.traps.is_empty());
    }
}

#[test]
fn every_clone_of_a_bench_module_installs_as_its_object_clone() {
    if !real_code_here() {
        return;
    }
    let (wasm, o) = binary_trees();
    let module = load(&wasm, &o);
    let p = check_against_object("binary-trees", &wasm, &o, &module, false);
    assert!(p.seen.len() > 50, "{} calls compared", p.seen.len());
    assert_eq!((p.own_pages, p.through_veneers), (0, 0), "all in the arena");
}

#[test]
fn the_arena_follows_the_code_within_call_range_and_only_with_a_policy() {
    if !real_code_here() {
        return;
    }
    let module = load(WAT.as_bytes(), &opts(Policy::Loop));
    let ((base, len), arena) = module.spans();
    let (lo, hi) = arena.expect("a policy module has an arena");
    assert_eq!(lo, base + len, "the arena starts where the mapping ends");
    assert_eq!(hi - lo, MAX_ARENA);
    assert!(hi - base <= (128 << 20) - RANGE_SLACK);
    let plain = load(WAT.as_bytes(), &opts(Policy::None));
    assert_eq!(plain.spans().1, None, "no arena without a policy");
    assert_eq!(plain.inner.probe_trampoline, None);
    let code = compile_resume_clone(WAT.as_bytes(), &opts(Policy::Loop), WORK).expect("clone");
    assert!(
        matches!(
            plain.install_clone(&code),
            Err(InstallError::BadCode { func: WORK, .. })
        ),
        "another policy's clone"
    );
    assert_eq!(plain.clone_entry(WORK), None);
}

#[test]
fn arena_sizes_keep_text_and_arena_in_call_range() {
    let mib = 1usize << 20;
    assert_eq!(arena_len(TargetArch::Aarch64, 4096), 64 * mib);
    assert_eq!(arena_len(TargetArch::Aarch64, 100 * mib), 20 * mib);
    assert_eq!(arena_len(TargetArch::Aarch64, 120 * mib), 0);
    assert_eq!(arena_len(TargetArch::Aarch64, 130 * mib), 0);
    assert_eq!(arena_len(TargetArch::X86_64, 1 << 30), 64 * mib);
    for len in [1, 57 * mib + 5, 119 * mib + 4095] {
        let a = arena_len(TargetArch::Aarch64, len);
        assert!(
            len + a <= 120 * mib && a.is_multiple_of(page_size()),
            "{len}: {a}"
        );
    }
}

#[test]
fn a_clone_is_refused_when_it_cannot_be_placed_right() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    // A displacement that cannot reach its target, in a field that is
    // not a call's (no veneer can carry it).
    let mut far = code.clone();
    let k = far
        .calls
        .iter()
        .position(|c| matches!(c.target, CallTarget::Body(_)))
        .expect("a call of a body");
    // 4 GiB on: beyond either ISA's reach (and a multiple of 4).
    far.calls[k].target_offset = 0xffff_fffc;
    let off = far.calls[k].offset;
    match far.calls[k].field {
        CallField::X86Rel32 => {
            // `lea rax, [rip + rel32]`'s ModRM byte before the field.
            far.bytes[off as usize - 1] = 0x05;
            match module.install_clone(&far) {
                Err(InstallError::OutOfRange {
                    func: WORK,
                    offset,
                    why: PatchError::NoVeneer { .. },
                    ..
                }) => assert_eq!(offset, off),
                other => panic!("{other:?}"),
            }
        }
        CallField::Arm64Call26 => {
            // `adr x0, 0`: refused as not a branch, in range or not.
            far.bytes[off as usize..off as usize + 4]
                .copy_from_slice(&0x1000_0000u32.to_le_bytes());
            match module.install_clone(&far) {
                Err(InstallError::BadCode { func: WORK, why }) => {
                    assert!(why.contains("not a `b` or `bl`"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // Targets the module does not have.
    for bad in [
        CallTarget::Body(0),
        CallTarget::Body(99),
        CallTarget::ImportStub(1),
        CallTarget::ArrayTrampoline(1),
        CallTarget::Clone(1),
    ] {
        let mut c = code.clone();
        c.calls[0].target = bad;
        assert!(
            matches!(module.install_clone(&c), Err(InstallError::UnknownTarget { target, .. }) if target == bad),
            "{bad:?}"
        );
    }
    // Malformed: a field outside the code, a call of the other ISA,
    // unsorted trap sites, another module's function.
    let bad_code = |c: &CloneCode, want: &str| match module.install_clone(c) {
        Err(InstallError::BadCode { func: WORK, why }) => {
            assert!(why.contains(want), "{why:?} does not say {want:?}")
        }
        other => panic!("{want}: {other:?}"),
    };
    let mut c = code.clone();
    c.calls[0].offset = c.bytes.len() as u32 - 2;
    bad_code(&c, "outside the code");
    let mut c = code.clone();
    c.calls[0].field = match c.calls[0].field {
        CallField::X86Rel32 => CallField::Arm64Call26,
        CallField::Arm64Call26 => CallField::X86Rel32,
    };
    bad_code(&c, "call (at offset");
    let mut c = code.clone();
    c.traps.reverse();
    bad_code(&c, "trap sites");
    let other = r#"(module (func (param i32) (local i64 f32) (loop $l (br_if $l (local.get 0)))))"#;
    let mut c = compile_resume_clone(other.as_bytes(), &o, 0).expect("clone");
    c.func = WORK;
    bad_code(&c, "checkpoint tables");
    for func in [0, 4] {
        let mut c = code.clone();
        c.func = func;
        assert!(matches!(
            module.install_clone(&c),
            Err(InstallError::NotDefined { func: f }) if f == func
        ));
    }
    // None of these placed anything: the real clone takes the arena's
    // first pages.
    let at = module.install_clone(&code).expect("installs");
    assert_eq!(Some(at), module.spans().1.map(|a| a.0));
}

/// Every kind of target, each put in place of a call of a body (the
/// compiler emits no call of a clone or of a stub in this module): the
/// patched field reaches the module's code for it.
#[test]
fn each_kind_of_call_target_is_patched_to_its_address() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let obj = mvvm_aot::compile_with_symbols(WAT.as_bytes(), &o).expect("compiles");
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let k = code
        .calls
        .iter()
        .position(|c| matches!(c.target, CallTarget::Body(_)))
        .expect("a call of a body");
    for target in [
        CallTarget::Body(2),
        CallTarget::Clone(WORK),
        CallTarget::ImportStub(0),
        CallTarget::ArrayTrampoline(WORK),
        CallTarget::ProbeTrampoline,
    ] {
        let module = Module::from_aot(&obj).expect("loads");
        let inner = &module.inner;
        let want = match target {
            CallTarget::Body(n) => inner.code.body_addr((n - 1) as usize).expect("body"),
            CallTarget::Clone(n) => module.clone_entry(n).expect("the object's clone"),
            CallTarget::ImportStub(j) => inner.import_stubs[j as usize],
            CallTarget::ArrayTrampoline(i) => inner.trampolines[&i],
            CallTarget::ProbeTrampoline => inner.probe_trampoline.expect("probe"),
        };
        let mut c = code.clone();
        c.calls[k].target = target;
        let jit = module.install_clone(&c).expect("installs");
        let bytes = module.code_bytes(jit, c.bytes.len()).expect("bytes");
        assert_eq!(
            decoded_target(&bytes, jit, &c.calls[k]),
            want as i128,
            "{target:?}"
        );
    }
}

#[test]
fn a_plain_object_names_its_probe_trampoline_for_clones() {
    if !real_code_here() {
        return;
    }
    // `mvvm_aot::compile` leaves the functions' symbols out, but for the
    // probe trampoline's: the one clone target the entries do not give.
    let o = opts(Policy::Loop);
    let obj = mvvm_aot::compile(WAT.as_bytes(), &o).expect("compiles");
    let module = Module::from_aot(&obj).expect("loads");
    let probe = module.inner.probe_trampoline.expect("probe trampoline");
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let k = code
        .calls
        .iter()
        .position(|c| c.target == CallTarget::ProbeTrampoline)
        .expect("the clone probes");
    let jit = module.install_clone(&code).expect("installs");
    let bytes = module.code_bytes(jit, code.bytes.len()).expect("bytes");
    assert_eq!(decoded_target(&bytes, jit, &code.calls[k]), probe as i128);
}

#[test]
fn threads_installing_one_clone_get_one_entry() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let entries: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| module.install_clone(&code).expect("installs")))
            .collect();
        hs.into_iter().map(|h| h.join().expect("joins")).collect()
    });
    assert!(entries.iter().all(|&e| e == entries[0]), "{entries:x?}");
    // One placement: the next clone would go to the second page.
    let (lo, _) = module.spans().1.expect("arena");
    assert_eq!(entries[0], lo);
}

#[test]
fn dropping_the_module_unregisters_its_clones() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let jit = module.install_clone(&code).expect("installs");
    assert!(lookup_pc(jit).is_some());
    drop(module);
    assert_eq!(lookup_pc(jit), None);
}

#[test]
fn aarch64_bl_fields_are_patched_in_words_and_range_checked() {
    let bl = 0x9400_0000u32.to_le_bytes();
    let b = 0x1400_0000u32.to_le_bytes();
    let mut code = [bl, b, [0x1f, 0x20, 0x03, 0xd5]].concat(); // bl; b; nop
    let f = CallField::Arm64Call26;
    for disp in [
        0i64,
        4,
        -4,
        0x0234_5678 & !3,
        -0x0234_5678 & !3,
        (1 << 27) - 4,
        -(1 << 27),
    ] {
        patch_field(&mut code, 0, f, disp).expect("in range");
        assert_eq!(read_field(&code, 0, f), Some(disp));
        assert_eq!(code[3] & 0xfc, 0x94, "still a bl");
        patch_field(&mut code, 4, f, disp).expect("in range");
        assert_eq!(read_field(&code, 4, f), Some(disp));
        assert_eq!(code[7] & 0xfc, 0x14, "still a b");
    }
    // bl +8 is 0x94000002.
    patch_field(&mut code, 0, f, 8).expect("in range");
    assert_eq!(code[..4], 0x9400_0002u32.to_le_bytes());
    patch_field(&mut code, 0, f, -8).expect("in range");
    assert_eq!(code[..4], 0x97ff_fffeu32.to_le_bytes());
    let before = code.clone();
    for (disp, want) in [
        (
            1 << 27,
            PatchError::Range {
                disp: 1 << 27,
                field: f,
            },
        ),
        (
            -(1 << 27) - 4,
            PatchError::Range {
                disp: -(1 << 27) - 4,
                field: f,
            },
        ),
        (6, PatchError::Misaligned(6)),
        (
            (1 << 27) + 2,
            PatchError::Range {
                disp: (1 << 27) + 2,
                field: f,
            },
        ),
    ] {
        assert_eq!(patch_field(&mut code, 0, f, disp), Err(want));
    }
    assert_eq!(
        patch_field(&mut code, 8, f, 4),
        Err(PatchError::NotABranch(0xd503_201f))
    );
    assert_eq!(patch_field(&mut code, 2, f, 4), Err(PatchError::Outside));
    assert_eq!(patch_field(&mut code, 10, f, 4), Err(PatchError::Outside));
    assert_eq!(code, before, "a refused patch writes nothing");
}

#[test]
fn x86_rel32_fields_are_range_checked() {
    let f = CallField::X86Rel32;
    let mut code = [0xe8, 0, 0, 0, 0];
    for disp in [0i64, -5, i64::from(i32::MAX), i64::from(i32::MIN)] {
        patch_field(&mut code, 1, f, disp).expect("in range");
        assert_eq!(read_field(&code, 1, f), Some(disp));
        assert_eq!(code[0], 0xe8);
    }
    let d = i64::from(i32::MAX) + 1;
    assert_eq!(
        patch_field(&mut code, 1, f, d),
        Err(PatchError::Range { disp: d, field: f })
    );
    assert_eq!(patch_field(&mut code, 2, f, 0), Err(PatchError::Outside));
}

/// The patching of the other ISA's clones (they cannot be loaded here):
/// each clone of an object compiled for it, compiled alone and patched
/// for a place beyond the object's text, calls what the object's clone
/// calls (the addresses are the object's, its `.text` at 0).
#[test]
fn clones_of_the_other_isa_patch_to_the_object_targets() {
    if !real_code_here() {
        return;
    }
    use mvvm_abi::object as names;
    use object::{Object, ObjectSection, ObjectSymbol};
    let target = match TargetArch::host() {
        Some(TargetArch::Aarch64) => TargetArch::X86_64,
        _ => TargetArch::Aarch64,
    };
    let o = CompileOptions {
        target,
        portable: true,
        ..opts(Policy::Loop)
    };
    let wasm = workspace_file("bench/wasm/binary-trees.wasm");
    for (name, wasm) in [("wat", WAT.as_bytes()), ("binary-trees", &wasm[..])] {
        let obj = mvvm_aot::compile_with_symbols(wasm, &o).expect("compiles");
        let file = object::File::parse(&*obj).expect("ELF");
        let text = file.section_by_name(".text").expect(".text");
        let data = text.data().expect("text");
        let addr = |sym: &str| -> Option<usize> {
            file.symbol_by_name(sym)
                .map(|s| (s.address() - text.address()) as usize)
        };
        let place = (data.len() + 0xffff) & !0xffff;
        let mut clones = 0;
        for s in file.symbols() {
            let Some(func) = s
                .name()
                .ok()
                .and_then(|n| n.strip_prefix("mvvm_resume_"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let start = (s.address() - text.address()) as usize;
            let code = compile_resume_clone(wasm, &o, func).expect("clone");
            let mut bytes = code.bytes.clone();
            for c in &code.calls {
                let sym = match c.target {
                    CallTarget::Body(n) => names::func_symbol(n),
                    CallTarget::Clone(n) => names::resume_symbol(n),
                    CallTarget::ImportStub(n) => names::import_stub_symbol(n),
                    CallTarget::ArrayTrampoline(n) => names::array_trampoline_symbol(n),
                    CallTarget::ProbeTrampoline => names::PROBE_TRAMPOLINE_SYMBOL.into(),
                };
                let to = addr(&sym).unwrap_or_else(|| panic!("{name}: no {sym}"));
                patch_call(&mut bytes, place + func as usize * 0x1000, to, c).expect("patches");
            }
            let at = place + func as usize * 0x1000;
            let theirs = &data[start..start + bytes.len()];
            assert!(masked(&bytes, &code.calls) == masked(theirs, &code.calls));
            for c in &code.calls {
                assert_eq!(
                    decoded_target(&bytes, at, c),
                    decoded_target(theirs, start, c),
                    "{name}: {func}: call at {:#x}",
                    c.offset
                );
            }
            clones += 1;
        }
        assert!(clones > 0, "{name}: {target:?}: no clone");
    }
}

/// The permissions of the mapping holding `addr`, from `/proc/self/maps`
/// (`r-xp`, `---p`, ...).
fn perms_at(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        (lo <= addr && addr < hi).then(|| rest.split(' ').next().unwrap_or("").to_string())
    })
}

/// W^X: an installed clone's pages are read-execute, never writable; the
/// rest of the arena stays inaccessible.
#[test]
fn installed_pages_are_executable_and_not_writable() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    let code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let jit = module.install_clone(&code).expect("installs");
    let (_, hi) = module.spans().1.expect("arena");
    let next = jit + crate::code::align_up(code.bytes.len(), page_size());
    let Some(placed) = perms_at(jit) else {
        let why = "no /proc/self/maps";
        assert!(!crate::memory::tests::must_run_all(), "cannot run: {why}");
        println!("skipped: {why}");
        return;
    };
    assert_eq!(placed, "r-xp", "the clone's pages");
    assert_eq!(
        perms_at(next).as_deref(),
        Some("---p"),
        "the arena after it"
    );
    assert_eq!(perms_at(hi - 1).as_deref(), Some("---p"), "the arena's end");
}

/// No arena (a module whose code is too large for one on aarch64): each
/// clone gets pages of its own; placed far from the code, every call goes
/// through a veneer after the clone's code that jumps to the object
/// clone's target, and the registry sees the clone (veneers included) as
/// it sees one in the arena.
#[test]
fn without_an_arena_clones_get_their_own_pages_and_call_through_veneers() {
    if !real_code_here() {
        return;
    }
    let bt = workspace_file("bench/wasm/binary-trees.wasm");
    let cases: [(&str, &[u8], Policy); 3] = [
        ("wat", WAT.as_bytes(), Policy::Loop),
        (
            "wat",
            WAT.as_bytes(),
            Policy::CounterLoop { threshold_bits: 4 },
        ),
        ("binary-trees", &bt, Policy::Loop),
    ];
    for (name, wasm, policy) in cases {
        let o = opts(policy);
        let module = load(wasm, &o);
        module.inner.clones.force_fallback(None, true);
        assert_eq!(module.spans().1, None, "{name}: the arena is gone");
        let p = check_against_object(name, wasm, &o, &module, true);
        assert_eq!(p.in_arena, 0, "{name}");
        assert!(p.own_pages > 0, "{name}");
        assert_eq!(p.direct, 0, "{name}: {p:?}");
        assert!(p.through_veneers > 0, "{name}: {p:?}");
        for want in [CallTarget::Body(2), CallTarget::ProbeTrampoline] {
            assert!(
                name != "wat" || p.seen.contains(&want),
                "{name}: no call to {want:?}"
            );
        }
        // Dropping the module unregisters the clone (then unmaps it).
        let nimp = module.meta().num_imported_funcs;
        let (jit, end, _) = (nimp..nimp + module.meta().num_defined_funcs() as u32)
            .find_map(|f| module.inner.clones.placed(f))
            .expect("a clone placed");
        assert!(lookup_pc(jit).is_some() && lookup_pc(end - 1).is_some());
        drop(module);
        assert_eq!(lookup_pc(jit), None, "{name}");
    }
}

/// Without an arena and without the far placement (the normal fallback):
/// pages of their own wherever the kernel puts them, each call direct or
/// through a veneer, and either way at the object's target.
#[test]
fn without_an_arena_clones_are_placed_anywhere_and_reach_their_targets() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    module.inner.clones.force_fallback(None, false);
    let p = check_against_object("wat", WAT.as_bytes(), &o, &module, false);
    assert_eq!(p.in_arena, 0);
    assert!(p.own_pages > 0);
    assert!(p.direct + p.through_veneers > 0);
}

/// An arena too small (full but for one page): the clones that fit go in
/// it and call directly, the others get pages of their own (far: through
/// veneers). A later clone of the same module still installs.
#[test]
fn clones_the_arena_cannot_hold_get_their_own_pages() {
    if !real_code_here() {
        return;
    }
    let (wasm, o) = binary_trees();
    let module = load(&wasm, &o);
    module.inner.clones.force_fallback(Some(page_size()), true);
    let (lo, hi) = module.spans().1.expect("the arena");
    let p = check_against_object("binary-trees", &wasm, &o, &module, true);
    assert!(p.in_arena >= 1, "{p:?}: nothing in the arena's last page");
    assert!(p.own_pages >= 1, "{p:?}: everything fitted one page");
    assert!(p.through_veneers > 0 && p.direct > 0, "{p:?}");
    assert_eq!(module.spans().1, Some((lo, hi)));
}

/// A call of a clone in the arena that cannot reach its target (there, a
/// target 4 GiB beyond a body) goes through a veneer after the clone's
/// code, in the arena: only that call; the rest stay direct.
#[test]
fn a_call_out_of_reach_from_the_arena_goes_through_a_veneer() {
    if !real_code_here() {
        return;
    }
    let o = opts(Policy::Loop);
    let module = load(WAT.as_bytes(), &o);
    let mut code = compile_resume_clone(WAT.as_bytes(), &o, WORK).expect("clone");
    let k = code
        .calls
        .iter()
        .position(|c| c.target == CallTarget::Body(2))
        .expect("a call of $twice");
    code.calls[k].target_offset = 0xffff_fffc;
    let jit = module.install_clone(&code).expect("installs");
    let (start, end, own) = module.inner.clones.placed(WORK).expect("placed");
    let (lo, hi) = module.spans().1.expect("the arena");
    assert!(
        !own && start == jit && lo <= jit && end <= hi,
        "in the arena"
    );
    let body = module.inner.code.body_addr(1).expect("$twice") as i128;
    for (i, c) in code.calls.iter().enumerate() {
        let (to, through) = resolved_target(&module, &code, jit, end, c);
        assert_eq!(through, i == k, "call {i} at {:#x}", c.offset);
        if i == k {
            assert_eq!(to, body, "the veneer goes where the call meant to");
            let bytes = module.code_bytes(jit, end - jit).expect("bytes");
            let v = crate::code::align_up(code.bytes.len(), veneer::ALIGN);
            assert_eq!(
                veneer::decode(c.field, &bytes[v..]).map(i128::from),
                Some(body + 0xffff_fffc),
                "the first veneer, right after the code"
            );
            assert_eq!(end - jit, v + veneer::size(c.field), "one veneer");
        }
    }
}

/// Clones installed together (`Module::install_clones`, as a restore and
/// the background compile install them) are laid out one after the other
/// in one run of pages: small clones share a page, each is 16-byte
/// aligned, and each is still the object's clone patched for its place,
/// with the object's call targets and its own trap sites and name; in the
/// arena and, with the arena gone, in pages of their own (through
/// veneers there). Installing them again places nothing.
#[test]
fn clones_installed_together_share_pages() {
    if !real_code_here() {
        return;
    }
    let (wasm, o) = binary_trees();
    for own_pages in [false, true] {
        let module = load(&wasm, &o);
        if own_pages {
            module.inner.clones.force_fallback(None, true);
        }
        let meta = module.meta();
        let nimp = meta.num_imported_funcs;
        let funcs: Vec<u32> = (nimp..nimp + meta.num_defined_funcs() as u32)
            .filter(|&f| module.clone_entry(f).is_some())
            .collect();
        let codes: Vec<CloneCode> = funcs
            .iter()
            .map(|&f| compile_resume_clone(&wasm, &o, f).expect("the clone compiles alone"))
            .collect();
        let entries = module.install_clones(&codes).expect("installs together");
        assert_eq!(entries.len(), codes.len());
        let mut pages: Vec<usize> = entries.iter().map(|e| e / page_size()).collect();
        pages.sort_unstable();
        pages.dedup();
        assert!(
            pages.len() < entries.len(),
            "own pages {own_pages}: {} clones on {} pages: none shares a page",
            entries.len(),
            pages.len()
        );
        for (code, &jit) in codes.iter().zip(&entries) {
            let func = code.func;
            let obj = module.clone_entry(func).expect("the object's clone");
            assert!(
                jit.is_multiple_of(16),
                "{func}: entry {jit:#x} not 16-aligned"
            );
            let (start, end, own) = module.inner.clones.placed(func).expect("placed");
            assert_eq!((start, own), (jit, own_pages), "{func}");
            let size = code.bytes.len();
            let jit_bytes = module.code_bytes(jit, size).expect("installed bytes");
            let obj_bytes = module.code_bytes(obj, size).expect("object clone bytes");
            assert!(
                masked(&jit_bytes, &code.calls) == masked(&obj_bytes, &code.calls),
                "{func}: code differs outside the call fields"
            );
            for c in &code.calls {
                let (to, through) = resolved_target(&module, code, jit, end, c);
                assert_eq!(
                    to,
                    decoded_target(&obj_bytes, obj, c),
                    "{func}: call at {:#x}",
                    c.offset
                );
                assert!(own_pages || !through, "{func}: a veneer in the arena");
            }
            for t in &code.traps {
                let off = t.code_offset as usize;
                let j = lookup_pc(jit + off).expect("registered");
                assert_eq!(
                    (j.func, j.code),
                    (Some(func), Some(t.code)),
                    "{func}: trap at {off:#x}"
                );
            }
            assert_eq!(func_at(jit).and_then(|f| f.0), Some(func));
            assert_eq!(func_at(end - 1).and_then(|f| f.0), Some(func));
        }
        assert_eq!(module.install_clones(&codes).expect("again"), entries);
    }
}
