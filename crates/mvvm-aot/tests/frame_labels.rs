//! The developer measurement of `mvvm_aot::frame_labels` (see "Reading
//! frames where they are" in CHECKPOINT.md): with its options off the
//! compilation is the normal one, byte for byte; with labels on it finds
//! the return address of every unwinding call stable point and locations
//! for the locals live across it.

use mvvm_aot::frame_labels::{DevOptions, Location, Role, SiteKind, compile_with};
use mvvm_aot::{CompileOptions, Policy, compile};

/// `$work` loops, so under the loop policy a call of it may unwind; `$a`,
/// `$b` and `$k` are read after each call, `$dead` never again.
const MODULE: &str = r#"
(module
  (memory 1)
  (func $work (param $n i32) (result i32)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
    (local.get $i))
  (func (export "run") (param $a i32) (param $b i32) (result i32)
    (local $k i32) (local $dead i32)
    (local.set $k (i32.load (local.get $a)))
    (local.set $dead (i32.load (local.get $b)))
    (i32.store (i32.const 0) (local.get $dead))
    (i32.add (local.get $b)
      (call $work (i32.add (local.get $a) (local.get $k))))
    (i32.add (call $work (local.get $b)))
    (i32.add (local.get $a))
    (i32.add (local.get $k))))
"#;

fn opts(policy: Policy, opt_level: u8) -> CompileOptions {
    CompileOptions {
        policy,
        opt_level,
        ..CompileOptions::default()
    }
}

#[test]
fn default_dev_options_give_the_normal_object() {
    for policy in [
        Policy::None,
        Policy::FunctionEntry,
        Policy::Loop,
        Policy::CounterLoop { threshold_bits: 4 },
    ] {
        let o = opts(policy, 3);
        let normal = compile(MODULE.as_bytes(), &o).expect("compile");
        let (dev, report) =
            compile_with(MODULE.as_bytes(), &o, &DevOptions::default()).expect("compile_with");
        assert_eq!(
            normal, dev,
            "{policy:?}: the default developer options changed the object"
        );
        assert!(
            report.sites.is_empty(),
            "{policy:?}: sites reported without labels"
        );
    }
}

/// Labels on, and the hot-code shape of the redesign (no unwind stores).
fn labels_without_stores() -> DevOptions {
    DevOptions {
        frame_labels: true,
        unwind_stores: false,
        per_site_labels: false,
        stores_in_hot_only: false,
        frame_map: false,
        walk_frames: false,
        ..DevOptions::default()
    }
}

#[test]
fn labels_locate_the_locals_live_across_a_call() {
    let dev = labels_without_stores();
    // Level 0: Cranelift's egraph pass (levels 1-3) drops the labels of
    // the values it rewrites, which is one of the findings, not a bug of
    // the measurement.
    let (_, report) =
        compile_with(MODULE.as_bytes(), &opts(Policy::Loop, 0), &dev).expect("compile");
    let run = 1;
    let calls: Vec<_> = report
        .sites
        .iter()
        .filter(|s| s.func == run && s.kind == SiteKind::Call)
        .collect();
    assert_eq!(
        calls.len(),
        2,
        "two unwinding calls in run: {:#?}",
        report.sites
    );
    // First call: $a, $b, $k live (indices 0, 1, 2; $dead, 3, is not),
    // and $b's value on the stack below the argument. Second call: $b was
    // its argument and is not read again.
    let expected_locals = [vec![0, 1, 2], vec![0, 2]];
    for (site, want) in calls.iter().zip(&expected_locals) {
        assert!(site.ret_addr.is_some(), "no return address: {site:?}");
        let mut locals: Vec<u32> = Vec::new();
        let mut stack = 0;
        for v in &site.values {
            let held = v.locations.iter().any(|l| match l {
                Location::Stack { .. } => true,
                Location::Reg { callee_saved, .. } => *callee_saved,
            });
            match v.role {
                Role::Local(i) => {
                    locals.push(i);
                    assert!(
                        held,
                        "local {i} at {:#x}: no location that survives the call: {v:?}",
                        site.offset
                    );
                }
                Role::Stack(d) => {
                    stack += 1;
                    assert!(
                        held,
                        "stack value {d} at {:#x}: no location that survives the call: {v:?}",
                        site.offset
                    );
                }
                Role::Arg(_) => {}
            }
        }
        assert_eq!(&locals, want, "live locals at {:#x}", site.offset);
        assert_eq!(stack, 1, "values kept on the stack at {:#x}", site.offset);
    }
}

#[test]
fn tags_survive_the_optimiser() {
    let dev = labels_without_stores();
    let (_, report) =
        compile_with(MODULE.as_bytes(), &opts(Policy::Loop, 3), &dev).expect("compile");
    assert!(!report.sites.is_empty());
    for site in &report.sites {
        assert!(
            site.ret_addr.is_some(),
            "site without an address at level 3: {site:?}"
        );
    }
}
