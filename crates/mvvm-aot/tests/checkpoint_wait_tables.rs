//! `memory.atomic.wait32/wait64` are stable points (`AtomicWait`) under
//! every policy, with the wait's three operands on top of the saved stack;
//! the tables that list them are the same for every policy, opt level and
//! target, and code without a policy has none.

use mvvm_abi::object::{CKPT_SECTION, META_SECTION};
use mvvm_abi::{ModuleMeta, Policy, StablePoint, StablePointKind, TargetArch, ValType};
use mvvm_aot::{CompileOptions, compile};
use object::{Object, ObjectSection};

const POLICIES: [Policy; 5] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 16 },
    Policy::CounterLoop { threshold_bits: 0 },
    Policy::LoopDirty,
];

/// A wait32 under a value of the enclosing expression, a wait64 in a loop
/// (whose result feeds the loop test), and a function without waits.
const WAT: &str = r#"
(module
  (memory 1 1 shared)
  (func $w (param $a i32) (param $t i64) (result i32) (local $x i64)
    (i32.add
      (local.get $a)
      (memory.atomic.wait32 offset=8 (local.get $a) (i32.const 0) (local.get $t)))
    (loop $l (param i32) (result i32)
      (local.set $x (i64.const 3))
      (br_if $l
        (i32.eqz (memory.atomic.wait64 (i32.const 16) (local.get $x) (i64.const 0)))))
  )
  (func $plain (result i32) (i32.const 1))
)
"#;

fn compile_meta(policy: Policy, opt_level: u8, target: TargetArch) -> ModuleMeta {
    let opts = CompileOptions {
        opt_level,
        target,
        policy,
        portable: false,
    };
    let obj = compile(WAT.as_bytes(), &opts)
        .unwrap_or_else(|e| panic!("{} -O{opt_level} {target:?}: {e}", policy.name()));
    let file = object::File::parse(&*obj).expect("ELF");
    let data = file
        .section_by_name(META_SECTION)
        .expect("meta")
        .data()
        .expect("meta data");
    let mut meta: ModuleMeta = mvvm_abi::codec::decode(&data[12..]).expect("meta decodes");
    let tables = file.section_by_name(CKPT_SECTION).expect("tables");
    meta.attach_tables_section(tables.data().expect("tables data"))
        .expect("tables header");
    assert_eq!(meta.policy, policy);
    meta
}

/// The tables of the first defined function.
fn f0(meta: &ModuleMeta) -> &mvvm_abi::FuncTables {
    meta.all_func_tables().expect("tables decode")[0]
}

fn points(meta: &ModuleMeta) -> Vec<Vec<StablePoint>> {
    meta.all_func_tables()
        .expect("tables decode")
        .iter()
        .map(|f| f.stable_points.clone())
        .collect()
}

#[test]
fn waits_are_atomic_wait_points_with_their_operands_on_top() {
    let meta = compile_meta(Policy::Loop, 3, TargetArch::X86_64);
    let got: Vec<(StablePointKind, Vec<ValType>)> = f0(&meta)
        .stable_points
        .iter()
        .map(|p| (p.kind, p.stack.clone()))
        .collect();
    use ValType::{I32, I64};
    assert_eq!(
        got,
        [
            (StablePointKind::Entry, vec![]),
            // `$a` below, then address, expected, timeout.
            (StablePointKind::AtomicWait, vec![I32, I32, I32, I64]),
            // The loop's parameter.
            (StablePointKind::Loop, vec![I32]),
            (StablePointKind::AtomicWait, vec![I32, I32, I64, I64]),
        ]
    );
    // The offsets are those of the wait operators, in order.
    let pts = &f0(&meta).stable_points;
    assert!(pts.windows(2).all(|w| w[0].offset < w[1].offset));
    assert_eq!(
        meta.all_func_tables().unwrap()[1].stable_points.len(),
        1,
        "only the entry"
    );
    // The frame buffer has room for the largest frame (3 locals, 4 stack
    // values).
    assert!(f0(&meta).frame_capacity() >= 7);
}

#[test]
fn wait_points_are_the_same_for_every_policy_opt_level_and_target() {
    let reference = points(&compile_meta(Policy::Loop, 3, TargetArch::X86_64));
    for policy in POLICIES {
        for opt in [0, 3] {
            for target in [TargetArch::X86_64, TargetArch::Aarch64] {
                let meta = compile_meta(policy, opt, target);
                assert_eq!(
                    points(&meta),
                    reference,
                    "{} -O{opt} {target:?}",
                    policy.name()
                );
            }
        }
    }
    let none = compile_meta(Policy::None, 3, TargetArch::X86_64);
    assert!(
        none.all_func_tables()
            .unwrap()
            .iter()
            .all(|f| f.stable_points.is_empty())
    );
}
