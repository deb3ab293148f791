//! Call-graph facts the checkpoint instrumentation needs: which defined
//! functions can be part of a recursion (the functions that need an entry
//! probe under the counter-loop policy, [`recursive_functions`]), and which
//! can unwind for a checkpoint while they run ([`unwinding_functions`]).
//!
//! Why: counter-loop probes loop headers, and function entries so that a
//! computation without loops (a tree walk) still polls. But a function that
//! is on no cycle of the call graph and has no loop runs a bounded amount of
//! code before it returns, and its callers' loops or recursions poll around
//! it; only the functions of a cycle need their entries probed. Probing
//! every entry cost allocation-heavy code (malloc and free wrappers) a flag
//! test, and the frame set-up of a non-leaf cold path, on every call.
//!
//! The graph is conservative: `call_indirect` may reach every function whose
//! reference escapes (element segments, `ref.func`, global initialisers,
//! exports), and so may a call to an import from outside WASI (another
//! instance can call back into an export). WASI never calls back.

use crate::CompileError;
use crate::module::PendingFunc;
use mvvm_abi::meta::ImportKind;
use mvvm_abi::{ConstExpr, ExportKind, ModuleMeta, Policy};
use wasmparser::Operator;

/// Import modules whose functions never call back into wasm.
const NO_CALLBACK_MODULES: &[&str] = &["wasi_snapshot_preview1", "wasi_unstable"];

/// Per function index (imports included, always `false` for them): whether
/// the function lies on a cycle of the call graph (self-calls included).
pub(crate) fn recursive_functions(
    meta: &ModuleMeta,
    funcs: &[PendingFunc<'_>],
) -> Result<Vec<bool>, CompileError> {
    let nimports = meta.num_imported_funcs as usize;
    let n = nimports + funcs.len();
    let callback_imports: Vec<bool> = meta
        .imports
        .iter()
        .filter(|i| matches!(i.kind, ImportKind::Func(_)))
        .map(|i| !NO_CALLBACK_MODULES.contains(&i.module.as_str()))
        .collect();

    // Functions whose reference escapes: possible targets of an indirect
    // call or of a call back from outside.
    let mut escapes = vec![false; n];
    let mut mark = |f: u32| {
        if let Some(e) = escapes.get_mut(f as usize) {
            *e = true;
        }
    };
    for seg in &meta.elems {
        for item in &seg.items {
            if let ConstExpr::RefFunc(f) = item {
                mark(*f);
            }
        }
    }
    for g in &meta.globals {
        if let ConstExpr::RefFunc(f) = g.init {
            mark(f);
        }
    }
    for e in &meta.exports {
        if let ExportKind::Func(f) = e.kind {
            mark(f);
        }
    }

    let mut direct: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut unknown_callee = vec![false; n];
    for (k, f) in funcs.iter().enumerate() {
        let me = nimports + k;
        let mut ops = f
            .body
            .get_operators_reader()
            .map_err(|e| CompileError::invalid(&e))?;
        while !ops.eof() {
            match ops.read().map_err(|e| CompileError::invalid(&e))? {
                // A tail call is an edge too: mutual recursion through
                // `return_call` runs in constant stack but must still poll.
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    let callee = function_index as usize;
                    if callee < nimports {
                        if callback_imports.get(callee).copied().unwrap_or(true) {
                            unknown_callee[me] = true;
                        }
                    } else {
                        direct[me].push(function_index);
                    }
                }
                Operator::CallIndirect { .. } | Operator::ReturnCallIndirect { .. } => {
                    unknown_callee[me] = true
                }
                Operator::RefFunc { function_index } => mark(function_index),
                _ => {}
            }
        }
    }
    let graph = call_graph(nimports, direct, &unknown_callee, &escapes);
    let mut cyclic = on_cycles(&graph);
    cyclic.truncate(n);
    Ok(cyclic)
}

/// The call graph [`on_cycles`] reads: node `f < n` is function `f` (its
/// edges: its direct calls of defined functions), node `n` is `hub`.
///
/// An indirect call may reach every escaping function. Rather than an edge
/// from each such caller to each escaping function (quadratic: a module of
/// 40 000 functions, all in a table and all calling through it, made 1.6
/// billion edges, 6 GB), every caller with an unknown callee has one edge
/// to `hub`, which has an edge to each escaping function. The paths between
/// real functions are the same (f -> g through the table becomes
/// f -> hub -> g), so are their strongly connected components; a function
/// alone with the hub in its component calls through the table and
/// escapes, so it has an edge to itself in the direct graph: on a cycle
/// either way.
fn call_graph(
    nimports: usize,
    direct: Vec<Vec<u32>>,
    unknown_callee: &[bool],
    escapes: &[bool],
) -> Vec<Vec<u32>> {
    let n = direct.len();
    let hub = n as u32;
    let mut graph: Vec<Vec<u32>> = Vec::with_capacity(n + 1);
    for (mut callees, unknown) in direct.into_iter().zip(unknown_callee) {
        callees.retain(|&g| (g as usize) >= nimports && (g as usize) < n);
        if *unknown {
            callees.push(hub);
        }
        graph.push(callees);
    }
    graph.push(
        (nimports..n)
            .filter(|&f| escapes.get(f).copied().unwrap_or(false))
            .map(|f| f as u32)
            .collect(),
    );
    graph
}

/// Per function index (imports included): whether a checkpoint can start
/// while the function runs, that is whether a call of it may return with
/// `unwind_state == UNWINDING` in a compilation under `policy`.
/// `recursive` is [`recursive_functions`]'s answer (empty unless the policy
/// is counter-loop).
///
/// Only three things start an unwind: a probe, an import stub whose host
/// call gave up for a checkpoint (`HOST_CALL_UNWIND`) and a
/// `memory.atomic.wait*` the runtime interrupts. So a function may unwind
/// if it has a probe under the policy (every function under
/// `FunctionEntry`; a function with a `loop` under the loop policies, and
/// under counter-loop also one on a call-graph cycle), waits, calls an
/// import, calls through a table (`call_indirect` and
/// `return_call_indirect` may reach anything: conservatively yes), or
/// calls or tail-calls a function that may unwind.
///
/// A call of a function that cannot unwind needs no `unwind_state` test
/// after it, and in a hot body no resume block (see
/// `translate/checkpoint.rs`): the stable point stays in the tables, so a
/// snapshot of another compilation that holds a frame there still
/// restores (through the resume clone, or the landing of a function
/// without one).
pub(crate) fn unwinding_functions(
    meta: &ModuleMeta,
    funcs: &[PendingFunc<'_>],
    policy: Policy,
    recursive: &[bool],
) -> Result<Vec<bool>, CompileError> {
    let nimports = meta.num_imported_funcs as usize;
    let n = nimports + funcs.len();
    let mut unwinds = vec![true; n];
    if matches!(policy, Policy::None | Policy::FunctionEntry) {
        // Without a policy nothing unwinds, but nothing asks either; with
        // function-entry probes every function probes.
        return Ok(unwinds);
    }
    // Callers of each defined function, for the propagation below.
    let mut callers: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (k, f) in funcs.iter().enumerate() {
        let me = nimports + k;
        let mut own = recursive.get(me).copied().unwrap_or(false)
            && matches!(policy, Policy::CounterLoop { .. });
        let mut ops = f
            .body
            .get_operators_reader()
            .map_err(|e| CompileError::invalid(&e))?;
        while !ops.eof() {
            match ops.read().map_err(|e| CompileError::invalid(&e))? {
                Operator::Loop { .. }
                | Operator::MemoryAtomicWait32 { .. }
                | Operator::MemoryAtomicWait64 { .. }
                | Operator::CallIndirect { .. }
                | Operator::ReturnCallIndirect { .. } => own = true,
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    if (function_index as usize) < nimports {
                        own = true;
                    } else if let Some(c) = callers.get_mut(function_index as usize) {
                        c.push(me as u32);
                    }
                }
                _ => {}
            }
        }
        unwinds[me] = own;
    }
    // Every caller of a function that may unwind may unwind: a worklist
    // from the functions that unwind on their own (imports included).
    let mut work: Vec<usize> = (0..n).filter(|&f| unwinds[f]).collect();
    while let Some(f) = work.pop() {
        for &c in &callers[f] {
            if !unwinds[c as usize] {
                unwinds[c as usize] = true;
                work.push(c as usize);
            }
        }
    }
    Ok(unwinds)
}

/// Whether each node of `graph` (adjacency lists) lies on a cycle: in a
/// strongly connected component of two or more nodes, or with an edge to
/// itself. Tarjan's algorithm, iterative (call graphs can be deep).
fn on_cycles(graph: &[Vec<u32>]) -> Vec<bool> {
    const UNSEEN: usize = usize::MAX;
    let n = graph.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut result = vec![false; n];
    let mut next = 0usize;
    // (node, position in its successor list)
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        work.push((root, 0));
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.len().checked_sub(1) {
            let (v, pos) = work[top];
            if let Some(&w) = graph[v].get(pos) {
                work[top].1 += 1;
                let w = w as usize;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                let cyclic = members.len() > 1 || graph[v].contains(&(v as u32));
                for m in members {
                    result[m] = cyclic;
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{call_graph, on_cycles, recursive_functions, unwinding_functions};
    use crate::module::{MetaHeader, parse};
    use mvvm_abi::{Policy, TargetArch};

    /// `unwinding_functions` of the module `wat` under `policy`, defined
    /// functions only.
    fn unwinds(wat: &str, policy: Policy) -> Vec<bool> {
        let wasm = wat::parse_str(wat).expect("wat");
        let header = MetaHeader {
            target: TargetArch::X86_64,
            cpu_features: Vec::new(),
            opt_level: 0,
            policy,
        };
        let parsed = parse(&wasm, header).expect("parse");
        let recursive = if matches!(policy, Policy::CounterLoop { .. }) {
            recursive_functions(&parsed.meta, &parsed.funcs).expect("graph")
        } else {
            Vec::new()
        };
        let all =
            unwinding_functions(&parsed.meta, &parsed.funcs, policy, &recursive).expect("unwinds");
        let nimports = parsed.meta.num_imported_funcs as usize;
        assert!(all[..nimports].iter().all(|&u| u), "imports may unwind");
        all[nimports..].to_vec()
    }

    /// Functions 1..=10 (0 is the import): a leaf, its caller, a loop, the
    /// loop's caller, an import caller, an indirect caller, a self-recursion
    /// without a loop, a tail caller of the loop, a waiter, and a caller of
    /// the leaf's caller.
    const GRAPH: &str = r#"
      (module
        (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
        (type $t (func (result i32)))
        (memory 1 1 shared)
        (table 1 funcref)
        (elem (i32.const 0) $leaf)
        (func $leaf (result i32) (i32.const 1))
        (func $calls_leaf (result i32) (call $leaf))
        (func $looping (result i32) (local $i i32)
          (loop $l (br_if $l (i32.eqz (local.get $i)))) (i32.const 2))
        (func $calls_loop (result i32) (call $looping))
        (func $calls_import (result i32) (call $yield))
        (func $indirect (result i32) (call_indirect (type $t) (i32.const 0)))
        (func $rec (param $n i32) (result i32)
          (if (result i32) (local.get $n)
            (then (call $rec (i32.sub (local.get $n) (i32.const 1))))
            (else (i32.const 0))))
        (func $tail_loop (result i32) (return_call $looping))
        (func $waits (result i32)
          (memory.atomic.wait32 (i32.const 0) (i32.const 1) (i64.const 0)))
        (func $calls_calls_leaf (result i32) (call $calls_leaf)))
    "#;

    #[test]
    fn what_may_unwind_follows_the_policy_and_the_call_tree() {
        //            leaf   c_leaf looping c_loop import indir  rec    tail   waits  cc_leaf
        let looping = [
            false, false, true, true, true, true, false, true, true, false,
        ];
        assert_eq!(unwinds(GRAPH, Policy::Loop), looping);
        assert_eq!(unwinds(GRAPH, Policy::LoopDirty), looping);
        // Counter-loop also probes the entries of recursive functions.
        let mut counter = looping;
        counter[6] = true;
        assert_eq!(
            unwinds(GRAPH, Policy::CounterLoop { threshold_bits: 4 }),
            counter
        );
        // Function-entry probes: everything may unwind.
        assert!(unwinds(GRAPH, Policy::FunctionEntry).iter().all(|&u| u));
    }

    #[test]
    fn cycles_self_calls_and_chains() {
        // 0 -> 1 -> 2 -> 1 (cycle 1,2); 3 -> 3 (self); 4 -> 0 (chain); 5 alone.
        let g = vec![vec![1], vec![2], vec![1], vec![3], vec![0], vec![]];
        assert_eq!(on_cycles(&g), [false, true, true, true, false, false]);
    }

    #[test]
    fn a_deep_chain_does_not_overflow() {
        let n = 200_000;
        let mut g: Vec<Vec<u32>> = (0..n).map(|i| vec![(i + 1) as u32]).collect();
        g[n - 1] = vec![0];
        assert!(on_cycles(&g).iter().all(|&c| c));
    }

    /// Defined functions on a cycle of the module `wat`.
    fn recursive(wat: &str) -> Vec<bool> {
        let wasm = wat::parse_str(wat).expect("wat");
        let header = MetaHeader {
            target: TargetArch::X86_64,
            cpu_features: Vec::new(),
            opt_level: 0,
            policy: Policy::CounterLoop { threshold_bits: 4 },
        };
        let parsed = parse(&wasm, header).expect("parse");
        recursive_functions(&parsed.meta, &parsed.funcs).expect("graph")
    }

    #[test]
    fn table_calls_make_cycles_only_through_escaping_functions() {
        // 0: in the table, calls through it (a cycle with itself); 1: in the
        // table, a leaf; 2: calls through the table, not in it; 3: in the
        // table, calls 4, which calls through the table (3 -> 4 -> 3).
        let wat = r#"
          (module
            (type $t (func))
            (table 3 funcref)
            (elem (i32.const 0) $self $leaf $three)
            (func $self (call_indirect (type $t) (i32.const 0)))
            (func $leaf)
            (func $outside (call_indirect (type $t) (i32.const 1)))
            (func $three (call $four))
            (func $four (call_indirect (type $t) (i32.const 2))))
        "#;
        assert_eq!(recursive(wat), [true, false, false, true, true]);
    }

    /// The graph through the hub puts the same functions on cycles as the
    /// graph with an edge from every unknown callee to every escaping
    /// function, on pseudo-random graphs.
    #[test]
    fn the_hub_keeps_the_cycles_of_the_expanded_graph() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..500 {
            let nimports = next(3) as usize;
            let n = nimports + 1 + next(12) as usize;
            let mut direct = vec![Vec::new(); n];
            let mut unknown = vec![false; n];
            let mut escapes = vec![false; n];
            for f in nimports..n {
                for _ in 0..next(3) {
                    direct[f].push(next(n as u64) as u32);
                }
                unknown[f] = next(4) == 0;
                escapes[f] = next(3) == 0;
            }
            let expanded: Vec<Vec<u32>> = (0..n)
                .map(|f| {
                    let mut s: Vec<u32> = direct[f]
                        .iter()
                        .copied()
                        .filter(|&g| g as usize >= nimports)
                        .collect();
                    if unknown[f] {
                        s.extend((nimports..n).filter(|&g| escapes[g]).map(|g| g as u32));
                    }
                    s
                })
                .collect();
            let mut hub = on_cycles(&call_graph(nimports, direct, &unknown, &escapes));
            hub.truncate(n);
            assert_eq!(hub, on_cycles(&expanded));
        }
    }

    /// 40 000 functions all in the table and all calling through it: two
    /// edges each, not 40 000.
    #[test]
    fn table_calls_cost_one_edge_per_caller() {
        let n = 40_000;
        let graph = call_graph(0, vec![Vec::new(); n], &vec![true; n], &vec![true; n]);
        assert_eq!(graph.iter().map(Vec::len).sum::<usize>(), 2 * n);
        assert!(on_cycles(&graph).iter().all(|&c| c));
    }
}
