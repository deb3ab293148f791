//! The store's raw-pointer paths without generated code: instances of
//! code-less modules, builtins called as generated code calls them (with
//! the instance's `VMContext`), and "generated code" reads and writes
//! through the pointers in the `VMContext`, interleaved with the host API
//! and with moves of the `Store`. Under Miri (`scripts/miri.sh`) this
//! checks the invariant of `vm_box.rs` under Stacked Borrows.

use super::*;
use crate::store::{Extern, Func, Global, Store, Table, Val};
use crate::vmctx::VMFuncRef;
use crate::{Instance, Module};
use mvvm_abi::meta::{
    ConstExpr, ElemSegment, Export, ExportKind, FuncType, GlobalDef, GlobalType, Import,
    ImportKind, Limits, ModuleMeta, SegmentMode, TableType, TargetArch, ValType,
};
use std::sync::atomic::Ordering;

fn meta() -> ModuleMeta {
    ModuleMeta {
        producer: "test".into(),
        target: TargetArch::host().unwrap_or(TargetArch::X86_64),
        cpu_features: Vec::new(),
        opt_level: 0,
        policy: mvvm_abi::Policy::None,
        wasm_sha256: [0; 32],
        types: Vec::new(),
        imports: Vec::new(),
        funcs: Vec::new(),
        num_imported_funcs: 0,
        tables: Vec::new(),
        memories: Vec::new(),
        globals: Vec::new(),
        tags: Vec::new(),
        exports: Vec::new(),
        start: None,
        elems: Vec::new(),
        data: Vec::new(),
        func_names: Default::default(),
        array_trampolines: Vec::new(),
        call_sites: Vec::new(),
        frame_slots: 0,
        checkpoint_tables: Default::default(),
        trap_sites: Default::default(),
    }
}

fn unary() -> FuncType {
    FuncType {
        params: vec![ValType::I32],
        results: vec![ValType::I32],
    }
}

fn table_ty(min: u64, max: Option<u64>) -> TableType {
    TableType {
        elem: ValType::FuncRef,
        limits: Limits { min, max },
    }
}

const GLOBAL: GlobalType = GlobalType {
    ty: ValType::I32,
    mutable: true,
};

/// Exports a table (two functions of its own in it), a global and a
/// function; one passive element segment.
fn exporter() -> Module {
    let mut m = meta();
    m.types = vec![FuncType::default()];
    m.funcs = vec![0, 0];
    m.tables = vec![table_ty(2, Some(8))];
    m.globals = vec![GlobalDef {
        ty: GLOBAL,
        init: ConstExpr::I32(7),
    }];
    m.exports = vec![
        Export {
            name: "t".into(),
            kind: ExportKind::Table(0),
        },
        Export {
            name: "g".into(),
            kind: ExportKind::Global(0),
        },
        Export {
            name: "f1".into(),
            kind: ExportKind::Func(1),
        },
    ];
    m.elems = vec![
        ElemSegment {
            mode: SegmentMode::Active {
                index: 0,
                offset: ConstExpr::I32(0),
            },
            ty: ValType::FuncRef,
            items: vec![ConstExpr::RefFunc(0), ConstExpr::RefFunc(1)],
        },
        ElemSegment {
            mode: SegmentMode::Passive,
            ty: ValType::FuncRef,
            items: vec![ConstExpr::RefFunc(1)],
        },
    ];
    Module::without_code(m)
}

/// Imports a host function, the table and the global.
fn importer() -> Module {
    let mut m = meta();
    m.types = vec![unary()];
    m.funcs = vec![0];
    m.num_imported_funcs = 1;
    let import = |name: &str, kind| Import {
        module: "env".into(),
        name: name.into(),
        kind,
    };
    m.imports = vec![
        import("double", ImportKind::Func(0)),
        import("t", ImportKind::Table(table_ty(2, None))),
        import("g", ImportKind::Global(GLOBAL)),
    ];
    Module::without_code(m)
}

/// The global cell instance `vmctx` sees as global 0, read as generated
/// code reads it.
///
/// # Safety
/// `vmctx` must be a live instance's context with at least one global.
unsafe fn global0(vmctx: *mut VMContext) -> u64 {
    // SAFETY: per the contract, `globals` has an entry for global 0, the
    // base pointer of a live, aligned `GlobalCell`; no reference into it
    // is in use.
    unsafe { (**(*vmctx).globals).get_u64() }
}

#[test]
fn builtins_and_host_api_share_the_store() {
    let mut store = Store::new();
    let a = Instance::new(&mut store, &exporter(), &[]).expect("exporter");
    let vmctx_a = store.inner.instances[a.index as usize].vmctx_ptr();
    let f0 = store.inner.instances[a.index as usize].funcs_base() as u64;
    let (Some(Extern::Table(t)), Some(Extern::Global(g)), Some(Extern::Func(f1))) = (
        a.get_export(&store, "t"),
        a.get_export(&store, "g"),
        a.get_export(&store, "f1"),
    ) else {
        panic!("exports missing");
    };

    // The active segment went through `&mut StoreInner`; generated code
    // sees it through `VMTable`.
    assert_eq!(t.get(&store, 0).map(|v| v.ty()), Some(ValType::FuncRef));
    // SAFETY: instance `a` is alive and has table 0 with 2 elements.
    let first = unsafe { *(*vm_table(vmctx_a, 0)).elements };
    assert_eq!(first, f0);

    // Generated code writes the global, the host reads it, and back.
    // SAFETY: `a` has global 0; no reference into the store is in use.
    unsafe { (**(*vmctx_a).globals).set_u64(11) };
    assert_eq!(g.get(&store), Val::I32(11));
    g.set(&mut store, Val::I32(12)).expect("mutable i32");
    // SAFETY: as above.
    assert_eq!(unsafe { global0(vmctx_a) }, 12);

    // Moving the store moves no allocation generated code points to.
    let mut boxed = Box::new(store);
    let store: &mut Store = &mut boxed;

    // Table builtins, as generated code calls them.
    assert_eq!(table_grow(vmctx_a, 0, 0, 2), 2);
    assert_eq!(t.size(&*store), 4);
    assert_eq!(table_grow(vmctx_a, 0, 0, 5), -1);
    let f1_raw = f0 + std::mem::size_of::<VMFuncRef>() as u64;
    assert_eq!(mvvm_rt_table_fill(vmctx_a, 0, 2, f1_raw, 2), OK);
    assert_eq!(t.get(&*store, 3), Some(Val::FuncRef(Some(f1))));
    assert_eq!(mvvm_rt_table_fill(vmctx_a, 0, 3, 0, 2), TABLE_OOB);
    assert_eq!(mvvm_rt_table_copy(vmctx_a, 0, 0, 0, 2, 2), OK);
    assert_eq!(t.get(&*store, 0), Some(Val::FuncRef(Some(f1))));
    assert!(t.set(&mut *store, 1, Val::FuncRef(None)));
    assert_eq!(mvvm_rt_table_init(vmctx_a, 0, 1, 1, 0, 1), OK);
    assert_eq!(t.get(&*store, 1), Some(Val::FuncRef(Some(f1))));
    elem_drop(vmctx_a, 1);
    assert_eq!(mvvm_rt_table_init(vmctx_a, 0, 1, 1, 0, 1), TABLE_OOB);
    assert_eq!(mvvm_rt_table_init(vmctx_a, 0, 1, 1, 0, 0), OK);

    // No memory: the memory builtins refuse.
    assert_eq!(memory_grow(vmctx_a, 1), -1);
    assert_eq!(mvvm_rt_memory_fill(vmctx_a, 0, 0, 1), MEM_OOB);
    assert_eq!(mvvm_rt_memory_init(vmctx_a, 0, 0, 0, 0), MEM_OOB);
    data_drop(vmctx_a, 0);

    // The limits, written by "generated code" and by the host in turn.
    // SAFETY: `limits` is the store's live `VMLimits` (base pointer).
    unsafe { (*(*vmctx_a).limits).probe_flag.store(1, Ordering::SeqCst) };
    assert_eq!(store.inner.limits.probe_flag.load(Ordering::SeqCst), 1);
    // No checkpoint session: `Probe` clears the flag and never unwinds.
    assert_eq!(probe(vmctx_a, 0, 0), 0);
    // SAFETY: as above.
    let flag = unsafe { (*(*vmctx_a).limits).probe_flag.load(Ordering::SeqCst) };
    assert_eq!(flag, 0);
    store.inner.limits.unwind_state = 0;

    // A host function called by the `HostCall` builtin uses the store
    // through its `Caller` while "generated code" keeps its pointers.
    let host = Func::host(store, unary(), move |caller, args, results| {
        let Val::I32(x) = args[0] else {
            return Err(crate::HostError::Message("not an i32".into()));
        };
        g.set(caller, Val::I32(x + 1))
            .map_err(|e| crate::HostError::Message(e.to_string()))?;
        results[0] = Val::I32(x * 2);
        Ok(())
    });
    let b = Instance::new(
        store,
        &importer(),
        &[Extern::Func(host), Extern::Table(t), Extern::Global(g)],
    )
    .expect("importer");
    let vmctx_b = store.inner.instances[b.index as usize].vmctx_ptr();
    let mut values = [21u64];
    assert_eq!(host_call(vmctx_b, 0, values.as_mut_ptr()), 0);
    assert_eq!(values[0], 42);
    // The host's write is what both instances' generated code sees.
    // SAFETY: both instances are alive and import/define global 0.
    assert_eq!(unsafe { (global0(vmctx_a), global0(vmctx_b)) }, (22, 22));
    assert_eq!(
        host_call(vmctx_b, 9, values.as_mut_ptr()),
        TrapCode::HostError as i32
    );

    // Typed calls: a host function runs; a wasm function without an
    // array trampoline is refused before any code would run.
    assert_eq!(host.call(store, &[Val::I32(5)]), Ok(vec![Val::I32(10)]));
    assert_eq!(f1.call(store, &[]), Err(RunError::NotCallable(1)));
    assert_eq!(store.inner.depth, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { global0(vmctx_b) }, 6);
}

#[test]
fn handles_of_another_store_are_refused() {
    let mut one = Store::new();
    let mut two = Store::new();
    let a = Instance::new(&mut one, &exporter(), &[]).expect("exporter");
    let Some(Extern::Table(t)) = a.get_export(&one, "t") else {
        panic!("no table");
    };
    let Some(Extern::Global(g)) = a.get_export(&one, "g") else {
        panic!("no global");
    };
    let host = Func::host(&mut two, unary(), |_, _, r| {
        r[0] = Val::I32(0);
        Ok(())
    });
    let e = Instance::new(
        &mut two,
        &importer(),
        &[Extern::Func(host), Extern::Table(t), Extern::Global(g)],
    )
    .expect_err("foreign imports");
    assert!(e.to_string().contains("another store"), "{e}");
    let _ = Table::new(&mut two, table_ty(1, None), Val::FuncRef(None)).expect("table");
    let _ = Global::new(&mut two, GLOBAL, Val::I32(1)).expect("global");
}
