//! Threads, phase 1 (one thread): shared memories and the atomic
//! operators, compiled at -O0 and -O3 and run, beyond what the spec
//! testsuite checks (`proposals/threads`, run by `spec.rs`):
//!
//! - every load, store, read-modify-write and `cmpxchg` of every width
//!   against a model, on random values at every aligned position of a
//!   word (a narrow `cmpxchg` whose expected value has bits above the
//!   access width must not store);
//! - alignment is that of the effective address (`addr + offset`, without
//!   wrapping), checked before the bounds;
//! - `memory.atomic.wait32/wait64` and `notify`: not-equal, timeouts (a
//!   finite one sleeps), the traps and their order, an unshared memory;
//! - shared memories: `memory.grow`/`memory.size`, imports that match only
//!   the same sharedness, a host-made shared memory needs a maximum;
//! - checkpoint and restore: a WASI program using atomics on a shared
//!   memory, checkpointed at every N-th probe under each policy and
//!   restored into the same compilation, an -O0 one or another policy's,
//!   ends as an uninterrupted run does (and as the model says); periodic
//!   incremental checkpoints, whose dirty tracking write-protects the
//!   memory under the atomic read-modify-writes, change nothing either.

mod ckpt_common;

use ckpt_common::{cfg, compile, grants, temp_dir, wasi};
use mvvm_abi::Policy;
use mvvm_rt::checkpoint::{CheckpointStats, Outcome, RestoreOptions, RunOptions, Trigger};
use mvvm_rt::{
    Extern, Instance, InstantiationError, Limits, Linker, Memory, MemoryError, MemoryType, Module,
    RunError, SharedMemory, Store, TrapCode, Val,
};
use mvvm_wasi::Command;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const OPT_LEVELS: [u8; 2] = [0, 3];
const STACK: usize = 1 << 20;

/// `wat` compiled without a policy at `opt` and instantiated with no
/// imports in a fresh store.
fn instance(wat: &str, opt: u8) -> (Store, Instance) {
    let m = compile(wat, Policy::None, opt);
    let mut store = Store::new();
    let inst = Linker::new()
        .instantiate(&mut store, &m)
        .unwrap_or_else(|e| panic!("instantiate: {e}"));
    (store, inst)
}

fn call(store: &mut Store, inst: Instance, name: &str, args: &[Val]) -> Result<Vec<Val>, RunError> {
    inst.invoke(store, name, args)
}

fn i32_of(r: Result<Vec<Val>, RunError>, what: &str) -> i32 {
    match r {
        Ok(v) => match v[..] {
            [Val::I32(x)] => x,
            _ => panic!("{what}: {v:?}"),
        },
        Err(e) => panic!("{what}: {e}"),
    }
}

fn i64_of(r: Result<Vec<Val>, RunError>, what: &str) -> i64 {
    match r {
        Ok(v) => match v[..] {
            [Val::I64(x)] => x,
            _ => panic!("{what}: {v:?}"),
        },
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The trap a call ended with (its code and message).
fn trap_of(r: Result<Vec<Val>, RunError>, what: &str) -> (TrapCode, String) {
    match r {
        Err(RunError::Trap(t)) => (t.code, t.message),
        other => panic!("{what}: expected a trap, got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// Every operator against a model.

/// An atomic operator of the model test.
#[derive(Clone, Copy, Debug)]
enum Op {
    Load,
    Store,
    Add,
    Sub,
    And,
    Or,
    Xor,
    Xchg,
    Cmpxchg,
}

const OPS: [Op; 9] = [
    Op::Load,
    Op::Store,
    Op::Add,
    Op::Sub,
    Op::And,
    Op::Or,
    Op::Xor,
    Op::Xchg,
    Op::Cmpxchg,
];

/// `(wasm type is i64, access width in bytes)`: every form the proposal
/// has.
const FORMS: [(bool, u32); 7] = [
    (false, 1),
    (false, 2),
    (false, 4),
    (true, 1),
    (true, 2),
    (true, 4),
    (true, 8),
];

/// The instruction of `op` on a `(wide, bytes)` form.
fn instr(op: Op, wide: bool, bytes: u32) -> String {
    let t = if wide { "i64" } else { "i32" };
    let full = bytes == if wide { 8 } else { 4 };
    let bits = bytes * 8;
    match op {
        Op::Load if full => format!("{t}.atomic.load"),
        Op::Load => format!("{t}.atomic.load{bits}_u"),
        Op::Store if full => format!("{t}.atomic.store"),
        Op::Store => format!("{t}.atomic.store{bits}"),
        _ => {
            let name = format!("{op:?}").to_lowercase();
            if full {
                format!("{t}.atomic.rmw.{name}")
            } else {
                format!("{t}.atomic.rmw{bits}.{name}_u")
            }
        }
    }
}

/// A module exporting `f<op>_<form>` for every operator and form, with
/// `(addr, value[, replacement])` parameters, and a plain `get`/`set` of
/// the 8-byte word at an address.
fn model_module() -> String {
    let mut m = String::from(
        "(module (memory 1 1 shared)
           (func (export \"get\") (param i32) (result i64) (i64.load (local.get 0)))
           (func (export \"set\") (param i32 i64) (i64.store (local.get 0) (local.get 1)))\n",
    );
    for (o, op) in OPS.iter().enumerate() {
        for (f, (wide, bytes)) in FORMS.iter().enumerate() {
            let t = if *wide { "i64" } else { "i32" };
            let ins = instr(*op, *wide, *bytes);
            let (params, result, body) = match op {
                Op::Load => (
                    "(param i32)".to_string(),
                    format!("(result {t})"),
                    "(local.get 0)",
                ),
                Op::Store => (
                    format!("(param i32 {t})"),
                    String::new(),
                    "(local.get 0) (local.get 1)",
                ),
                Op::Cmpxchg => (
                    format!("(param i32 {t} {t})"),
                    format!("(result {t})"),
                    "(local.get 0) (local.get 1) (local.get 2)",
                ),
                _ => (
                    format!("(param i32 {t})"),
                    format!("(result {t})"),
                    "(local.get 0) (local.get 1)",
                ),
            };
            m.push_str(&format!(
                "(func (export \"f{o}_{f}\") {params} {result} ({ins} {body}))\n"
            ));
        }
    }
    m.push(')');
    m
}

/// A small deterministic generator (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = self.0 >> 32;
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (a << 32) | (self.0 >> 32)
    }
}

/// The model: `op` on the `bytes`-wide lane at byte `off` of the
/// little-endian word `w`, with operands `v` and `r` (as the wasm values,
/// zero-extended); the result (zero-extended) and the new word.
fn model(op: Op, w: u64, off: u32, bytes: u32, v: u64, r: u64) -> (Option<u64>, u64) {
    let mask = if bytes == 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    };
    let shift = off * 8;
    let old = (w >> shift) & mask;
    let new = match op {
        Op::Load => old,
        Op::Store => v & mask,
        Op::Add => old.wrapping_add(v) & mask,
        Op::Sub => old.wrapping_sub(v) & mask,
        Op::And => old & v & mask,
        Op::Or => (old | v) & mask,
        Op::Xor => (old ^ v) & mask,
        Op::Xchg => v & mask,
        // The whole expected value, not its low bits.
        Op::Cmpxchg => {
            if old == v {
                r & mask
            } else {
                old
            }
        }
    };
    let w = (w & !(mask << shift)) | (new << shift);
    let result = (!matches!(op, Op::Store)).then_some(old);
    (result, w)
}

fn val(wide: bool, v: u64) -> Val {
    if wide {
        Val::I64(v as i64)
    } else {
        Val::I32(v as u32 as i32)
    }
}

#[test]
fn every_operator_of_every_width_matches_the_model() {
    let wat = model_module();
    for opt in OPT_LEVELS {
        let (mut store, inst) = instance(&wat, opt);
        let mut rng = Rng(0x5eed ^ u64::from(opt));
        let mut cmpxchg_stores = [0u32; 2];
        for (o, op) in OPS.iter().enumerate() {
            for (f, &(wide, bytes)) in FORMS.iter().enumerate() {
                let name = format!("f{o}_{f}");
                let vmask = if wide { u64::MAX } else { u64::from(u32::MAX) };
                for trial in 0..24 {
                    let word: i32 = 64 + 8 * (trial % 4);
                    let off = (rng.next() as u32 % (8 / bytes)) * bytes;
                    let w = rng.next();
                    call(
                        &mut store,
                        inst,
                        "set",
                        &[Val::I32(word), Val::I64(w as i64)],
                    )
                    .unwrap();
                    let lane_mask = if bytes == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (bytes * 8)) - 1
                    };
                    let current = (w >> (off * 8)) & lane_mask;
                    let mut v = rng.next() & vmask;
                    if matches!(op, Op::Cmpxchg) {
                        // Half the time the value found; for a narrow
                        // form, a quarter of the time the value found with
                        // a bit above the width (must not store).
                        v = match trial % 4 {
                            0 | 1 => current,
                            2 if bytes < 8 && (wide || bytes < 4) => {
                                current | (1u64 << (bytes * 8))
                            }
                            _ => v,
                        };
                    }
                    let r = rng.next() & vmask;
                    let addr = Val::I32(word + off as i32);
                    let args: Vec<Val> = match op {
                        Op::Load => vec![addr],
                        Op::Cmpxchg => vec![addr, val(wide, v), val(wide, r)],
                        _ => vec![addr, val(wide, v)],
                    };
                    let got = call(&mut store, inst, &name, &args)
                        .unwrap_or_else(|e| panic!("-O{opt} {name} {args:?}: {e}"));
                    let (want, want_w) = model(*op, w, off, bytes, v, r);
                    let got = match got[..] {
                        [] => None,
                        [Val::I32(x)] => Some(u64::from(x as u32)),
                        [Val::I64(x)] => Some(x as u64),
                        _ => panic!("{name}: {got:?}"),
                    };
                    let ins = instr(*op, wide, bytes);
                    assert_eq!(
                        got, want,
                        "-O{opt} {ins} at +{off} of {w:#x} with {v:#x} {r:#x}"
                    );
                    let after =
                        i64_of(call(&mut store, inst, "get", &[Val::I32(word)]), "get") as u64;
                    assert_eq!(
                        after, want_w,
                        "-O{opt} {ins} at +{off} of {w:#x} with {v:#x} {r:#x}: memory"
                    );
                    if matches!(op, Op::Cmpxchg) {
                        cmpxchg_stores[usize::from(after != w)] += 1;
                    }
                }
            }
        }
        // Both outcomes of `cmpxchg` were seen.
        assert!(
            cmpxchg_stores.iter().all(|&n| n >= 20),
            "{cmpxchg_stores:?}"
        );
    }
}

/// The narrow `cmpxchg` with an expected value wider than the access:
/// the spec compares the zero-extended value loaded with the whole
/// operand, so it never matches (comparing the low bits would store).
#[test]
fn narrow_cmpxchg_compares_the_whole_expected_value() {
    let wat = r#"(module (memory 1 1 shared)
      (func (export "cas8") (param i32 i32 i32) (result i32)
        (i32.atomic.rmw8.cmpxchg_u (local.get 0) (local.get 1) (local.get 2)))
      (func (export "cas32") (param i32 i64 i64) (result i64)
        (i64.atomic.rmw32.cmpxchg_u (local.get 0) (local.get 1) (local.get 2)))
      (func (export "get") (param i32) (result i64) (i64.load (local.get 0)))
      (data (i32.const 0) "\11\22\33\44\55\66\77\88"))"#;
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(wat, opt);
        let r = i32_of(
            call(
                &mut s,
                i,
                "cas8",
                &[Val::I32(0), Val::I32(0x111), Val::I32(0x42)],
            ),
            "cas8",
        );
        assert_eq!(r, 0x11, "-O{opt}");
        let w = i64_of(call(&mut s, i, "get", &[Val::I32(0)]), "get");
        assert_eq!(w as u64, 0x8877_6655_4433_2211, "-O{opt}: no store");
        let r = i64_of(
            call(
                &mut s,
                i,
                "cas32",
                &[Val::I32(4), Val::I64(0x1_8877_6655), Val::I64(0)],
            ),
            "cas32",
        );
        assert_eq!(r, 0x8877_6655, "-O{opt}");
        let w = i64_of(call(&mut s, i, "get", &[Val::I32(0)]), "get");
        assert_eq!(w as u64, 0x8877_6655_4433_2211, "-O{opt}: no store");
        // The same values without the high bit do store.
        let r = i32_of(
            call(
                &mut s,
                i,
                "cas8",
                &[Val::I32(0), Val::I32(0x11), Val::I32(0x142)],
            ),
            "cas8",
        );
        assert_eq!(r, 0x11, "-O{opt}");
        let w = i64_of(call(&mut s, i, "get", &[Val::I32(0)]), "get");
        assert_eq!(w as u64, 0x8877_6655_4433_2242, "-O{opt}: stored");
    }
}

// ---------------------------------------------------------------------
// Alignment and bounds.

const ADDRESSES: &str = r#"(module (memory 1 1 shared)
  (func (export "load_off1") (param i32) (result i32) (i32.atomic.load offset=1 (local.get 0)))
  (func (export "load_off4") (param i32) (result i32) (i32.atomic.load offset=4 (local.get 0)))
  (func (export "rmw_off6") (param i32) (result i64)
    (i64.atomic.rmw16.add_u offset=6 (local.get 0) (i64.const 1)))
  (func (export "store_max") (param i32)
    (i64.atomic.store offset=4294967295 (local.get 0) (i64.const 1)))
  (func (export "load8_max") (param i32) (result i32)
    (i32.atomic.load8_u offset=4294967295 (local.get 0)))
  (func (export "cas") (param i32) (result i32)
    (i32.atomic.rmw.cmpxchg (local.get 0) (i32.const 0) (i32.const 1)))
  (func (export "fence") (atomic.fence)))"#;

#[test]
fn alignment_is_that_of_the_effective_address_and_comes_first() {
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(ADDRESSES, opt);
        let ok = |s: &mut Store, name: &str, addr: i32| {
            call(s, i, name, &[Val::I32(addr)])
                .unwrap_or_else(|e| panic!("-O{opt} {name}({addr}): {e}"));
        };
        // addr + offset aligned, addr not.
        ok(&mut s, "load_off1", 3);
        ok(&mut s, "load_off1", 65531);
        ok(&mut s, "rmw_off6", 0);
        ok(&mut s, "rmw_off6", 4);
        call(&mut s, i, "fence", &[]).unwrap();
        let trap = |s: &mut Store, name: &str, addr: i32| {
            let what = format!("-O{opt} {name}({addr:#x})");
            trap_of(call(s, i, name, &[Val::I32(addr)]), &what)
        };
        let unaligned = (TrapCode::UnalignedAtomic, "unaligned atomic".to_string());
        let oob = (
            TrapCode::MemoryOutOfBounds,
            "out of bounds memory access".to_string(),
        );
        // addr aligned, addr + offset not.
        assert_eq!(trap(&mut s, "load_off1", 0), unaligned);
        assert_eq!(trap(&mut s, "rmw_off6", 1), unaligned);
        // Misaligned and out of bounds: the misalignment.
        assert_eq!(trap(&mut s, "load_off1", 65536), unaligned);
        assert_eq!(trap(&mut s, "cas", -1), unaligned);
        assert_eq!(trap(&mut s, "cas", 65538), unaligned);
        // Aligned and out of bounds, also when addr + offset passes 2^32
        // (no wrapping: 0xfffffffc + 4 is 2^32, not 0).
        assert_eq!(trap(&mut s, "load_off1", 65535), oob);
        assert_eq!(trap(&mut s, "load_off4", -4), oob);
        assert_eq!(trap(&mut s, "cas", 65536), oob);
        assert_eq!(trap(&mut s, "cas", -4), oob);
        // 0xffffffff + 1 = 2^32, a multiple of 8.
        assert_eq!(trap(&mut s, "store_max", 1), oob);
        assert_eq!(trap(&mut s, "store_max", 0), unaligned);
        // A byte is always aligned.
        assert_eq!(trap(&mut s, "load8_max", 0), oob);
    }
}

// ---------------------------------------------------------------------
// Wait and notify.

fn wait_module(shared: bool) -> String {
    let shared = if shared { "shared" } else { "" };
    format!(
        r#"(module (memory 1 2 {shared})
      (func (export "wait32") (param i32 i32 i64) (result i32)
        (memory.atomic.wait32 (local.get 0) (local.get 1) (local.get 2)))
      (func (export "wait64") (param i32 i64 i64) (result i32)
        (memory.atomic.wait64 (local.get 0) (local.get 1) (local.get 2)))
      (func (export "wait32_off") (param i32 i32 i64) (result i32)
        (memory.atomic.wait32 offset=65532 (local.get 0) (local.get 1) (local.get 2)))
      (func (export "notify") (param i32 i32) (result i32)
        (memory.atomic.notify (local.get 0) (local.get 1)))
      (func (export "notify_max") (param i32 i32) (result i32)
        (memory.atomic.notify offset=4294967295 (local.get 0) (local.get 1)))
      (func (export "size") (result i32) (memory.size))
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "store64") (param i32 i64) (i64.atomic.store (local.get 0) (local.get 1)))
      (func (export "load64") (param i32) (result i64) (i64.atomic.load (local.get 0))))"#
    )
}

#[test]
fn waits_compare_then_time_out_and_notify_wakes_nobody() {
    let wat = wait_module(true);
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(&wat, opt);
        let w32 = |s: &mut Store, addr: i32, exp: i32, t: i64| {
            call(
                s,
                i,
                "wait32",
                &[Val::I32(addr), Val::I32(exp), Val::I64(t)],
            )
        };
        let w64 = |s: &mut Store, addr: i32, exp: i64, t: i64| {
            call(
                s,
                i,
                "wait64",
                &[Val::I32(addr), Val::I64(exp), Val::I64(t)],
            )
        };
        call(
            &mut s,
            i,
            "store64",
            &[Val::I32(8), Val::I64(0x1_0000_0007)],
        )
        .unwrap();
        // Not equal: 1, whatever the timeout (an infinite one too).
        assert_eq!(i32_of(w32(&mut s, 8, 6, -1), "wait32"), 1, "-O{opt}");
        assert_eq!(i32_of(w32(&mut s, 12, 0, -1), "wait32"), 1, "-O{opt}");
        assert_eq!(i32_of(w64(&mut s, 8, 7, -1), "wait64"), 1, "-O{opt}");
        // Equal, no other thread: timed out (2); a finite timeout sleeps.
        assert_eq!(i32_of(w32(&mut s, 8, 7, 0), "wait32"), 2, "-O{opt}");
        assert_eq!(i32_of(w32(&mut s, 12, 1, 0), "wait32"), 2, "-O{opt}");
        let t0 = Instant::now();
        assert_eq!(
            i32_of(w64(&mut s, 8, 0x1_0000_0007, 20_000_000), "wait64"),
            2,
            "-O{opt}"
        );
        assert!(t0.elapsed() >= Duration::from_millis(20), "-O{opt}");
        let t0 = Instant::now();
        assert_eq!(i32_of(w32(&mut s, 8, 7, 5_000_000), "wait32"), 2, "-O{opt}");
        assert!(t0.elapsed() >= Duration::from_millis(5), "-O{opt}");
        // Notify: nobody waits.
        for count in [0, 1, -1] {
            assert_eq!(
                i32_of(
                    call(&mut s, i, "notify", &[Val::I32(8), Val::I32(count)]),
                    "notify"
                ),
                0,
                "-O{opt}"
            );
        }
        // Traps: alignment, then bounds (effective address, no wrapping).
        let unaligned = (TrapCode::UnalignedAtomic, "unaligned atomic".to_string());
        let oob = (
            TrapCode::MemoryOutOfBounds,
            "out of bounds memory access".to_string(),
        );
        assert_eq!(trap_of(w32(&mut s, 2, 0, 0), "wait32"), unaligned);
        assert_eq!(trap_of(w64(&mut s, 4, 0, 0), "wait64"), unaligned);
        assert_eq!(trap_of(w32(&mut s, 65536, 0, 0), "wait32"), oob);
        assert_eq!(trap_of(w64(&mut s, 65532, 0, 0), "wait64"), unaligned);
        assert_eq!(i32_of(w64(&mut s, 65528, 0, 0), "wait64"), 2, "-O{opt}");
        assert_eq!(trap_of(w32(&mut s, -2, 0, 0), "wait32"), unaligned);
        assert_eq!(trap_of(w32(&mut s, -4, 0, 0), "wait32"), oob);
        let off = |s: &mut Store, addr: i32| {
            call(
                s,
                i,
                "wait32_off",
                &[Val::I32(addr), Val::I32(1), Val::I64(0)],
            )
        };
        assert_eq!(i32_of(off(&mut s, 0), "wait32_off"), 1, "-O{opt}");
        assert_eq!(trap_of(off(&mut s, 4), "wait32_off"), oob);
        assert_eq!(trap_of(off(&mut s, -4), "wait32_off"), oob);
        let notify =
            |s: &mut Store, name: &str, addr: i32| call(s, i, name, &[Val::I32(addr), Val::I32(1)]);
        assert_eq!(trap_of(notify(&mut s, "notify", 6), "notify"), unaligned);
        assert_eq!(trap_of(notify(&mut s, "notify", 65536), "notify"), oob);
        assert_eq!(trap_of(notify(&mut s, "notify_max", 1), "notify"), oob);
        assert_eq!(
            trap_of(notify(&mut s, "notify_max", 0), "notify"),
            unaligned
        );
    }
}

#[test]
fn wait_on_an_unshared_memory_traps_and_notify_returns_zero() {
    let wat = wait_module(false);
    let unshared = (
        TrapCode::WaitOnUnsharedMemory,
        "expected shared memory".to_string(),
    );
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(&wat, opt);
        let w32 = |s: &mut Store, addr: i32, exp: i32| {
            call(
                s,
                i,
                "wait32",
                &[Val::I32(addr), Val::I32(exp), Val::I64(0)],
            )
        };
        // Whether or not the value matches.
        assert_eq!(trap_of(w32(&mut s, 0, 0), "wait32"), unshared, "-O{opt}");
        assert_eq!(trap_of(w32(&mut s, 0, 1), "wait32"), unshared, "-O{opt}");
        let r = call(
            &mut s,
            i,
            "wait64",
            &[Val::I32(8), Val::I64(0), Val::I64(-1)],
        );
        assert_eq!(trap_of(r, "wait64"), unshared, "-O{opt}");
        // The order of the reference interpreter: alignment, sharedness,
        // bounds.
        assert_eq!(
            trap_of(w32(&mut s, 65537, 0), "wait32").0,
            TrapCode::UnalignedAtomic
        );
        assert_eq!(trap_of(w32(&mut s, 65536, 0), "wait32"), unshared);
        // Notify checks alignment and bounds, then wakes nobody.
        let notify =
            |s: &mut Store, addr: i32| call(s, i, "notify", &[Val::I32(addr), Val::I32(5)]);
        assert_eq!(i32_of(notify(&mut s, 0), "notify"), 0, "-O{opt}");
        assert_eq!(
            trap_of(notify(&mut s, 2), "notify").0,
            TrapCode::UnalignedAtomic
        );
        assert_eq!(
            trap_of(notify(&mut s, 65536), "notify").0,
            TrapCode::MemoryOutOfBounds
        );
    }
}

// ---------------------------------------------------------------------
// Shared memories.

#[test]
fn a_shared_memory_grows_to_its_maximum() {
    let wat = wait_module(true);
    for opt in OPT_LEVELS {
        let (mut s, i) = instance(&wat, opt);
        let size = |s: &mut Store| i32_of(call(s, i, "size", &[]), "size");
        let grow = |s: &mut Store, d: i32| i32_of(call(s, i, "grow", &[Val::I32(d)]), "grow");
        assert_eq!(size(&mut s), 1);
        // Past the new end before growing: out of bounds.
        let r = call(&mut s, i, "load64", &[Val::I32(65536)]);
        assert_eq!(trap_of(r, "load64").0, TrapCode::MemoryOutOfBounds);
        assert_eq!(grow(&mut s, 0), 1);
        assert_eq!(grow(&mut s, 1), 1);
        assert_eq!(size(&mut s), 2);
        assert_eq!(grow(&mut s, 1), -1);
        assert_eq!(size(&mut s), 2);
        // The new page is accessible to atomics and waits.
        call(&mut s, i, "store64", &[Val::I32(131064), Val::I64(-2)]).unwrap();
        assert_eq!(
            i64_of(call(&mut s, i, "load64", &[Val::I32(131064)]), "load64"),
            -2
        );
        let r = call(
            &mut s,
            i,
            "wait64",
            &[Val::I32(131064), Val::I64(-2), Val::I64(0)],
        );
        assert_eq!(i32_of(r, "wait64"), 2);
    }
}

fn shared_type(min: u64, max: Option<u64>, shared: bool) -> MemoryType {
    MemoryType {
        limits: Limits { min, max },
        shared,
    }
}

#[test]
fn shared_memory_imports_match_sharedness() {
    let importer = |shared: &str| {
        format!(
            r#"(module (import "env" "mem" (memory 1 2 {shared}))
              (func (export "add") (param i32 i32) (result i32)
                (i32.atomic.rmw.add (local.get 0) (local.get 1)))
              (func (export "grow") (result i32) (memory.grow (i32.const 1)))
              (func (export "size") (result i32) (memory.size)))"#
        )
    };
    for opt in OPT_LEVELS {
        let shared_module = compile(&importer("shared"), Policy::None, opt);
        let plain_module = compile(&importer(""), Policy::None, opt);
        let mut store = Store::new();
        let shared = Memory::new(&mut store, shared_type(1, Some(2), true)).unwrap();
        let plain = Memory::new(&mut store, shared_type(1, Some(2), false)).unwrap();
        let link = |store: &mut Store, m: &Module, mem: Memory| {
            let mut l = Linker::new();
            l.define("env", "mem", Extern::Memory(mem));
            l.instantiate(store, m)
        };
        for (m, mem) in [(&shared_module, plain), (&plain_module, shared)] {
            match link(&mut store, m, mem) {
                Err(InstantiationError::Unlinkable(msg)) => {
                    assert!(msg.contains("incompatible import type"), "{msg}")
                }
                other => panic!("-O{opt}: sharedness mismatch linked: {:?}", other.err()),
            }
        }
        // Two instances on one shared memory see each other's atomics and
        // growth.
        let a = link(&mut store, &shared_module, shared).unwrap();
        let b = link(&mut store, &shared_module, shared).unwrap();
        let add = |s: &mut Store, inst: Instance, v: i32| {
            i32_of(call(s, inst, "add", &[Val::I32(16), Val::I32(v)]), "add")
        };
        assert_eq!(add(&mut store, a, 5), 0);
        assert_eq!(add(&mut store, b, 7), 5);
        assert_eq!(add(&mut store, a, 0), 12);
        assert_eq!(i32_of(call(&mut store, b, "grow", &[]), "grow"), 1);
        assert_eq!(i32_of(call(&mut store, a, "size", &[]), "size"), 2);
        assert_eq!(shared.size_pages(&store), 2);
        assert_eq!(shared.ty(&store), shared_type(2, Some(2), true));
        assert_eq!(shared.data(&store)[16], 12);
    }
    // A host-made shared memory needs a maximum, as validation requires of
    // a module's.
    let mut store = Store::new();
    assert!(Memory::new(&mut store, shared_type(1, None, true)).is_err());
}

// ---------------------------------------------------------------------
// Checkpoint and restore.

/// A WASI program on a shared memory: `$step(i)` runs atomics of every
/// kind on fixed cells, waits (not equal, then timed out at once) and
/// notifies, and `_start` logs what they return every `every` steps of
/// `n`, then the cells, into the file `out`, and exits with 7. A call of
/// `$spin` (a loop) in each step is a stable point under every policy.
fn atomics_program(n: u32, every: u32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1 shared)
  (data (i32.const 0) "out")
  (global $pos (mut i32) (i32.const 1024))
  (func $log (param $v i64)
    (i64.atomic.store (global.get $pos) (local.get $v))
    (global.set $pos (i32.add (global.get $pos) (i32.const 8))))
  (func $spin (param $k i32) (result i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
    (local.get $k))
  (func $step (param $i i32) (result i64) (local $a i32) (local $b i64) (local $r i32)
    (local.set $a (i32.atomic.rmw.add (i32.const 256) (call $spin (local.get $i))))
    (local.set $b (i64.atomic.rmw.xor (i32.const 264)
      (i64.mul (i64.extend_i32_u (local.get $i)) (i64.const 0x9e3779b97f4a7c15))))
    (drop (i32.atomic.rmw8.add_u (i32.const 272) (local.get $i)))
    (drop (i32.atomic.rmw16.sub_u (i32.const 274) (local.get $i)))
    (drop (i64.atomic.rmw32.or_u (i32.const 276)
      (i64.shl (i64.const 1) (i64.extend_i32_u (i32.rem_u (local.get $i) (i32.const 32))))))
    (drop (i32.atomic.rmw.cmpxchg (i32.const 280) (i32.atomic.load (i32.const 280)) (local.get $i)))
    (drop (i32.atomic.rmw16.xchg_u offset=4 (i32.const 280) (i32.mul (local.get $i) (i32.const 3))))
    (atomic.fence)
    (local.set $r (memory.atomic.wait32 (i32.const 280) (i32.add (local.get $i) (i32.const 1)) (i64.const -1)))
    (local.set $r (i32.add (local.get $r)
      (i32.shl (memory.atomic.wait64 (i32.const 264) (i64.atomic.load (i32.const 264)) (i64.const 0))
        (i32.const 4))))
    (local.set $r (i32.add (local.get $r)
      (i32.shl (memory.atomic.notify (i32.const 256) (i32.const 1)) (i32.const 8))))
    (i64.add
      (i64.add (i64.extend_i32_u (local.get $a)) (i64.shl (i64.extend_i32_u (local.get $r)) (i64.const 40)))
      (i64.rotl (local.get $b) (i64.const 7))))
  (func (export "_start") (local $i i32) (local $v i64)
    (loop $l
      (local.set $v (call $step (local.get $i)))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const {every})))
        (then (call $log (local.get $v))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
    (call $log (i64.atomic.load (i32.const 256)))
    (call $log (i64.atomic.load (i32.const 264)))
    (call $log (i64.atomic.load8_u (i32.const 272)))
    (call $log (i64.atomic.load16_u (i32.const 274)))
    (call $log (i64.atomic.load32_u (i32.const 276)))
    (call $log (i64.atomic.load (i32.const 280)))
    (call $log (i64.extend_i32_u (memory.size)))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 1024))
    (i32.store (i32.const 44) (i32.sub (global.get $pos) (i32.const 1024)))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
    (call $proc_exit (i32.const 7))))"#
    )
}

/// What [`atomics_program`]`(n, every)` writes, computed here.
fn atomics_model(n: u32, every: u32) -> Vec<u8> {
    let (mut c, mut x, mut b8, mut h16, mut w32, mut s32, mut t16) =
        (0u32, 0u64, 0u8, 0u16, 0u32, 0u32, 0u16);
    let mut log = Vec::new();
    for i in 0..n {
        let a = c;
        c = c.wrapping_add(i);
        let b = x;
        x ^= u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        b8 = b8.wrapping_add(i as u8);
        h16 = h16.wrapping_sub(i as u16);
        w32 |= 1 << (i % 32);
        s32 = i;
        t16 = i.wrapping_mul(3) as u16;
        // wait32: not equal (1); wait64: timed out (2); notify: 0 woken.
        let r = 1u64 | (2 << 4);
        if i % every == 0 {
            log.push(
                u64::from(a)
                    .wrapping_add(r << 40)
                    .wrapping_add(b.rotate_left(7)),
            );
        }
    }
    // The cells: 256 (4 bytes, then 4 zero bytes), 264, 272, 274, 276,
    // and 280 read as one i64 (280: the cmpxchg's, 284: the xchg's).
    log.extend([
        u64::from(c),
        x,
        u64::from(b8),
        u64::from(h16),
        u64::from(w32),
        u64::from(s32) | (u64::from(t16) << 32),
        1,
    ]);
    log.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The file `out` of `dir`, empty when there is none; removes `dir`.
fn output(dir: &Path) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("out")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(dir);
    bytes
}

/// An uninterrupted run of `module` counting probes: its output and probe
/// count.
fn reference(module: &Module) -> (Vec<u8>, u64) {
    let dir = temp_dir("atomics", "ref");
    let r = Command::new(module)
        .config(wasi(&dir))
        .max_wasm_stack(STACK)
        .run(
            cfg(Trigger::CountProbes, &dir.join("snap")),
            RunOptions::default(),
        )
        .expect("reference run");
    let Outcome::Exited { code: 7, probes } = r else {
        panic!("reference run: {r:?}");
    };
    (output(&dir), probes)
}

const POLICIES: [Policy; 3] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 0 },
];

#[test]
fn atomics_checkpoint_and_restore_anywhere() {
    let (n, every) = (24, 1);
    let wat = atomics_program(n, every);
    let want = atomics_model(n, every);
    let plain = compile(&wat, Policy::None, 3);
    let (out, _) = reference(&plain);
    assert_eq!(out, want, "uninterrupted run against the model");
    let modules: Vec<Module> = POLICIES.iter().map(|p| compile(&wat, *p, 3)).collect();
    let mut checkpoints = 0;
    for (i, (policy, module)) in POLICIES.iter().zip(&modules).enumerate() {
        let (got, p) = reference(module);
        assert_eq!(got, want, "{policy:?}: uninterrupted run");
        assert!(p >= 2 * u64::from(n), "{policy:?}: only {p} probes");
        let o0 = compile(&wat, *policy, 0);
        let step = p.div_ceil(40).max(1);
        let mut ks: Vec<u64> = (1..=p).step_by(step as usize).collect();
        ks.extend([p - 1, p]);
        ks.dedup();
        for k in ks {
            let dir = temp_dir("atomics", "ckpt");
            let snap = dir.join("snap.bin");
            ckpt_common::checkpoint_at(module, &dir, STACK, k, &snap);
            assert!(!dir.join("out").exists(), "output before the end");
            // The snapshot of a shared memory is a snapshot like any.
            let read = mvvm_snapshot::open_file(&snap).expect("read the snapshot");
            let memory = read.memory_bytes().expect("memory");
            assert_eq!(memory.len(), 65536, "{policy:?} at probe {k}");
            assert!(!read.frames.is_empty(), "{policy:?} at probe {k}");
            let target = match k % 3 {
                0 => module,
                1 => &o0,
                _ => &modules[(i + 1) % modules.len()],
            };
            let r = Command::new(target)
                .max_wasm_stack(STACK)
                .grants(grants(&dir))
                .restore(
                    mvvm_rt::checkpoint::SnapshotSource::File(snap.clone()),
                    cfg(Trigger::None, &dir.join("unused.bin")),
                    RestoreOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{policy:?}: restore of probe {k}: {e}"));
            assert!(matches!(r, Outcome::Exited { code: 7, .. }), "{r:?}");
            assert_eq!(
                output(&dir),
                want,
                "{policy:?}: checkpoint at probe {k} of {p}"
            );
            checkpoints += 1;
        }
    }
    assert!(checkpoints >= 60, "{checkpoints} checkpoints");
}

static PERIODIC: AtomicU64 = AtomicU64::new(0);

fn count_periodic(_: &CheckpointStats) {
    PERIODIC.fetch_add(1, Ordering::SeqCst);
}

/// Periodic checkpoints of a loop-dirty module: after the first, the
/// memory is write-protected and every chunk's first write faults, here
/// always in an atomic read-modify-write (x86-64: `lock xadd`, `lock
/// cmpxchg`; aarch64: an exclusive or LSE store); the run goes on after
/// each checkpoint and ends as the model says. The period is wall-clock
/// time: a run that saw fewer than two checkpoints (a fast machine) is
/// repeated four times longer.
#[test]
fn periodic_incremental_checkpoints_under_atomics() {
    let mut n = 250_000;
    for attempt in 0..4 {
        let every = n / 10;
        let wat = atomics_program(n, every);
        let want = atomics_model(n, every);
        let module = compile(&wat, Policy::LoopDirty, 3);
        let dir = temp_dir("atomics", "every");
        let snap = dir.join("e.bin");
        PERIODIC.store(0, Ordering::SeqCst);
        let r = Command::new(&module)
            .config(wasi(&dir))
            .max_wasm_stack(STACK)
            .run(
                cfg(Trigger::Every(Duration::from_millis(2)), &snap),
                RunOptions {
                    on_checkpoint: Some(count_periodic),
                    incremental: true,
                    ..Default::default()
                },
            )
            .expect("periodic run");
        assert!(matches!(r, Outcome::Exited { code: 7, .. }), "{r:?}");
        let n_ckpt = PERIODIC.load(Ordering::SeqCst);
        let out = std::fs::read(dir.join("out")).unwrap_or_default();
        let depth = mvvm_snapshot::open_file(&snap).ok().map(|s| s.depth());
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("{n} steps: {n_ckpt} periodic checkpoints, the last of depth {depth:?}");
        assert_eq!(out, want, "{n} steps, after {n_ckpt} periodic checkpoints");
        if n_ckpt >= 2 {
            // The second and later snapshots are incremental, up to the
            // longest chain; the one after it is full again.
            let max = u64::from(mvvm_rt::checkpoint::MAX_INCREMENTAL_DEPTH);
            let want = (n_ckpt - 1) % (max + 1);
            assert_eq!(
                depth,
                Some(want as u32),
                "{n_ckpt} periodic checkpoints: the last one's depth"
            );
            return;
        }
        assert!(
            attempt < 3,
            "only {n_ckpt} periodic checkpoints in {n} steps"
        );
        n *= 4;
    }
}

/// A shared memory needs a maximum and grows up to it; the length every
/// thread reads is the new one. (An integration test: the reservation is
/// an `mmap` Miri cannot run, and `scripts/miri.sh` runs the unit tests.)
#[test]
fn shared_memories_need_a_maximum_and_grow_to_it() {
    let shared = |min, max| MemoryType {
        limits: Limits { min, max },
        shared: true,
    };
    assert!(matches!(
        SharedMemory::new(shared(1, None)),
        Err(MemoryError::Unsupported(_))
    ));
    let m = SharedMemory::new(shared(1, Some(2))).unwrap();
    assert!(m.ty().shared);
    assert_eq!(m.grow(1), Some(1));
    assert_eq!(m.grow(1), None);
    assert_eq!(m.size_bytes(), 2 * 65536);
    assert!(m.write(2 * 65536 - 1, &[1]));
    assert!(!m.write(2 * 65536, &[1]));
}
