//! Bounds of the bulk-memory and table builtins at the very end of the
//! 32-bit space: an access ending exactly at 2^32 is in bounds (the last
//! bytes of a 4 GiB memory) and one byte more traps. The end is computed in
//! 64 bits: a 32-bit sum wraps to 0 there (it used to abort the process in
//! `memory.init`).

use mvvm_rt::{Instance, Module, RunError, Store, TrapCode, Val};

fn module(wat: &str) -> Module {
    let aot =
        mvvm_aot::compile(wat.as_bytes(), &mvvm_aot::CompileOptions::default()).expect("compile");
    Module::from_aot(&aot).expect("load")
}

fn trap_code(r: Result<Vec<Val>, RunError>) -> TrapCode {
    match r {
        Err(RunError::Trap(t)) => t.code,
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// A 4 GiB memory (65536 pages: reserved, only touched pages cost) with a
/// passive segment, and each bulk operation at its end.
const END_WAT: &str = r#"(module
  (memory 65536 65536)
  (data $d "wxyz")
  (func (export "init") (param $dst i32) (param $len i32)
    local.get $dst i32.const 0 local.get $len memory.init $d)
  (func (export "fill") (param $dst i32) (param $len i32)
    local.get $dst i32.const 0x61 local.get $len memory.fill)
  (func (export "copy") (param $dst i32) (param $src i32) (param $len i32)
    local.get $dst local.get $src local.get $len memory.copy)
  (func (export "load") (param $a i32) (result i32)
    local.get $a i32.load)
  (func (export "drop") data.drop $d)
)"#;

#[test]
fn memory_init_ending_at_4_gib_is_in_bounds_and_one_more_byte_traps() {
    let m = module(END_WAT);
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).expect("instantiate a 4 GiB memory");
    let last = 0xffff_fffcu32 as i32;
    // Ends exactly at 2^32: in bounds.
    i.invoke(&mut store, "init", &[Val::I32(last), Val::I32(4)])
        .expect("memory.init ending at 4 GiB");
    let r = i.invoke(&mut store, "load", &[Val::I32(last)]).unwrap();
    assert_eq!(r, vec![Val::I32(i32::from_le_bytes(*b"wxyz"))]);
    // A zero-length init at 2^32 itself is in bounds too.
    i.invoke(&mut store, "init", &[Val::I32(0), Val::I32(0)])
        .unwrap();
    // One byte past: a trap, not an abort.
    for (dst, len) in [(last + 1, 4), (-1, 2), (last, 5)] {
        let code = trap_code(i.invoke(&mut store, "init", &[Val::I32(dst), Val::I32(len)]));
        assert_eq!(
            code,
            TrapCode::MemoryOutOfBounds,
            "init at {dst:#x} len {len}"
        );
    }
    // fill and copy at the same edge.
    i.invoke(&mut store, "fill", &[Val::I32(last), Val::I32(4)])
        .unwrap();
    let r = i.invoke(&mut store, "load", &[Val::I32(last)]).unwrap();
    assert_eq!(r, vec![Val::I32(0x6161_6161)]);
    let code = trap_code(i.invoke(&mut store, "fill", &[Val::I32(last), Val::I32(5)]));
    assert_eq!(code, TrapCode::MemoryOutOfBounds);
    i.invoke(
        &mut store,
        "copy",
        &[Val::I32(last), Val::I32(0), Val::I32(4)],
    )
    .unwrap();
    let r = i.invoke(&mut store, "load", &[Val::I32(last)]).unwrap();
    assert_eq!(r, vec![Val::I32(0)]);
    for (dst, src) in [(last, last - 1), (last - 1, last)] {
        let code = trap_code(i.invoke(
            &mut store,
            "copy",
            &[Val::I32(dst), Val::I32(src), Val::I32(5)],
        ));
        assert_eq!(
            code,
            TrapCode::MemoryOutOfBounds,
            "copy {dst:#x} <- {src:#x}"
        );
    }
    // After data.drop, only a zero-length init is in bounds.
    i.invoke(&mut store, "drop", &[]).unwrap();
    i.invoke(&mut store, "init", &[Val::I32(last), Val::I32(0)])
        .unwrap();
    let code = trap_code(i.invoke(&mut store, "init", &[Val::I32(last), Val::I32(1)]));
    assert_eq!(code, TrapCode::MemoryOutOfBounds);
}

const TABLE_WAT: &str = r#"(module
  (table $t 8 funcref)
  (table $u 8 funcref)
  (func $f)
  (elem $e func $f $f $f)
  (func (export "init") (param $dst i32) (param $src i32) (param $len i32)
    local.get $dst local.get $src local.get $len table.init $t $e)
  (func (export "copy") (param $dst i32) (param $src i32) (param $len i32)
    local.get $dst local.get $src local.get $len table.copy $u $t)
  (func (export "fill") (param $dst i32) (param $len i32)
    local.get $dst ref.null func local.get $len table.fill $t)
  (func (export "drop") elem.drop $e)
)"#;

#[test]
fn table_builtins_compute_their_ends_without_wrapping() {
    let m = module(TABLE_WAT);
    let mut store = Store::new();
    let i = Instance::new(&mut store, &m, &[]).unwrap();
    let call = |store: &mut Store, f: &str, args: &[i32]| {
        let args: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
        i.invoke(store, f, &args)
    };
    // Ending exactly at the table's end: fine.
    call(&mut store, "init", &[5, 0, 3]).unwrap();
    call(&mut store, "copy", &[0, 5, 3]).unwrap();
    call(&mut store, "fill", &[6, 2]).unwrap();
    // Starts or lengths whose 32-bit sum wraps around to a small number.
    for (f, args) in [
        ("init", vec![-1, 0, 2]),
        ("init", vec![0, -1, 2]),
        ("init", vec![1, 1, -1]),
        ("copy", vec![-1, 0, 2]),
        ("copy", vec![0, -1, 2]),
        ("fill", vec![-1, 2]),
        ("fill", vec![1, -1]),
    ] {
        let code = trap_code(call(&mut store, f, &args));
        assert_eq!(code, TrapCode::TableOutOfBounds, "{f} {args:?}");
    }
    call(&mut store, "drop", &[]).unwrap();
    call(&mut store, "init", &[8, 0, 0]).unwrap();
    let code = trap_code(call(&mut store, "init", &[0, 0, 1]));
    assert_eq!(code, TrapCode::TableOutOfBounds);
}
