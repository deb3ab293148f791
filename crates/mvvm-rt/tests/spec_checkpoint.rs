//! "Checkpoint everywhere" over the spec testsuite: every call that a
//! `.wast` file makes with `invoke` or `assert_return (invoke ...)` is made
//! again under a checkpoint policy, checkpointed at a probe, restored
//! in-process into a fresh instance, and must still give the expected
//! results.
//!
//! The checkpoint API runs WASI commands from `_start`, so each module
//! instance of a file becomes one command (see `spec_checkpoint_support::
//! wasm`): `_start` makes the instance's calls in file order, each in its
//! own function that traps on a wrong result. Making all calls in one run
//! keeps the state (memory, globals, tables) each call sees equal to what
//! the previous directives left. Per policy:
//!
//! 1. a reference run counts the probes P (and must pass without any
//!    checkpoint);
//! 2. for every k in 1..=P (at most max(`MVVM_SPEC_CKPT_CAP`, number of
//!    calls) values, cap 256 by default, spread over 1..=P with the first
//!    and last always in), the command is checkpointed at probe k into
//!    memory, restored from that snapshot into a fresh store and run to
//!    its end, which must be a clean exit (every later call's results
//!    checked, and every earlier one's before the checkpoint). Under the
//!    same policy the restored run must make exactly the probes k..=P
//!    (probe k is made again where it resumes). Every fourth k restores
//!    into the compilation of another policy, and another fourth into the
//!    same policy compiled at -O0 (resume points are the same in all) with
//!    its resume clones left out (`--resume-clones=on-demand`), which the
//!    runtime then compiles from the wasm the object carries.
//!
//! Policies: function entry (a probe in every call), loop, and counter-loop
//! with 0 threshold bits (a poll at every loop iteration).
//!
//! What cannot be done is counted and printed with its reason, never
//! dropped silently: instances importing another spec module's exports
//! (their state lives in that instance), calls with host `externref`
//! values, calls whose expectation fails without any checkpoint (state
//! left by a trapping call that the harness cannot make), modules the
//! rewrite does not understand.
//!
//! `MVVM_SPEC_SUITE=proposals/simd` (a comma-separated list of `2.0`, the
//! default, and `proposals/NAME`: `spec_files/mod.rs`) runs
//! other directories of the testsuite crate, with counts per directory;
//! `MVVM_SPEC_FILTER=name` keeps the files whose name contains it;
//! `MVVM_SPEC_CKPT_POLICIES=N` runs the first N policies only;
//! `MVVM_SPEC_CKPT_CAP=N` changes the cap (1024: ~53k checkpoints, ~1.5
//! min on 2 loaded cores; the default ~34k, ~1 min);
//! `MVVM_SPEC_CKPT_VERBOSE=1` prints every call dropped because it fails
//! without a checkpoint; `MVVM_SPEC_CKPT_TIMES=1` the time of each file.
//!
//! The test fails on any mismatch not listed in [`KNOWN_FAILURES`], and on
//! a listed one that passes.

mod aot_clones;
mod spec_checkpoint_support;
mod spec_files;

use aot_clones::AotClones;
use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, CheckpointError, Outcome, RestoreOptions, RunOptions, SnapshotSink,
    SnapshotSource, Trigger,
};
use mvvm_wasi::Command;
use mvvm_wasi::WasiConfig;
use spec_checkpoint_support::plan::{PlannedCall, plan};
use spec_checkpoint_support::wasm::{Harness, Parsed};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Largest wasm stack of a run (the store's default is 512 KiB; the host
/// threads have 64 MiB).
const WASM_STACK: usize = 4 << 20;

/// Mismatches known today: (file, line of the module directive, policy
/// name, probe k). The test checks this list exactly, so a fix shows up.
const KNOWN_FAILURES: &[(&str, usize, &str, u64)] = &[];

const POLICIES: [Policy; 3] = [
    Policy::FunctionEntry,
    Policy::Loop,
    Policy::CounterLoop { threshold_bits: 0 },
];

/// A checkpoint/restore (or reference run) that did not give the expected
/// results.
#[derive(Debug, Clone)]
struct Mismatch {
    file: String,
    module_line: usize,
    policy: String,
    k: u64,
    what: String,
}

/// What one file gave.
#[derive(Default)]
struct FileReport {
    name: String,
    instances: usize,
    /// Calls made by some harness.
    calls: usize,
    /// (call, policy) pairs with at least one checkpoint.
    calls_checkpointed: usize,
    checkpoints: u64,
    /// Probes of the reference runs (the k values there were to choose
    /// from).
    probes: u64,
    /// Most frames saved by one checkpoint.
    max_frames: usize,
    /// Instances with calls that got no probe under a policy.
    no_probe: usize,
    skipped: BTreeMap<String, usize>,
    mismatches: Vec<Mismatch>,
}

impl FileReport {
    fn skip(&mut self, why: &str, calls: usize) {
        *self.skipped.entry(why.to_string()).or_default() += calls;
    }
}

/// An in-memory snapshot sink that the test reads back.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(trigger: Trigger, sink: SnapshotSink) -> CheckpointConfig {
    CheckpointConfig {
        trigger,
        sink,
        log_probes: false,
        signals: false,
    }
}

fn compile(bytes: &[u8], policy: Policy) -> Result<Module, String> {
    compile_at(
        bytes,
        policy,
        mvvm_aot::CompileOptions::default().opt_level,
        false,
    )
}

fn compile_at(
    bytes: &[u8],
    policy: Policy,
    opt_level: u8,
    clones_on_demand: bool,
) -> Result<Module, String> {
    let opts = mvvm_aot::CompileOptions {
        policy,
        opt_level,
        ..Default::default()
    };
    let choices = mvvm_aot::ObjectOptions {
        clones_on_demand,
        ..Default::default()
    };
    let aot = mvvm_aot::compile_with(bytes, &opts, choices).map_err(|e| format!("compile: {e}"))?;
    Module::from_aot(&aot).map_err(|e| format!("load: {e}"))
}

/// Which call a trap belongs to, by the harness function it surfaced in.
fn describe(e: &mvvm_wasi::Error, h: &Harness, calls: &[PlannedCall]) -> (Option<usize>, String) {
    if let mvvm_wasi::Error::Checkpoint(CheckpointError::Trap(t)) = e
        && let Some(i) = t
            .func
            .and_then(|f| f.checked_sub(h.first_call_func))
            .map(|i| i as usize)
            .filter(|i| *i < calls.len())
    {
        let c = &calls[i];
        let what = if t.code == mvvm_rt::TrapCode::Unreachable {
            "wrong result".to_string()
        } else {
            format!("trap `{}`", t.message)
        };
        return (
            Some(i),
            format!("{what} for `{}` (line {})", c.call.func, c.line),
        );
    }
    (None, e.to_string())
}

/// The k values to checkpoint at: all of 1..=p, or `cap` of them spread
/// evenly with 1 and p included.
fn probe_points(p: u64, cap: u64) -> Vec<u64> {
    if p <= cap {
        return (1..=p).collect();
    }
    let mut ks: Vec<u64> = (0..cap).map(|i| 1 + i * (p - 1) / (cap - 1)).collect();
    ks.dedup();
    ks
}

/// Runs the reference (probe counting) run: `Ok(P)` or the failure.
fn reference(module: &Module) -> Result<u64, mvvm_wasi::Error> {
    match Command::new(module)
        .config(WasiConfig::default())
        .max_wasm_stack(WASM_STACK)
        .run(
            config(
                Trigger::CountProbes,
                SnapshotSink::Stream(Box::new(std::io::sink())),
            ),
            RunOptions::default(),
        )? {
        Outcome::Exited { code: 0, probes } => Ok(probes),
        other => Err(CheckpointError::Host(format!("reference run ended with {other:?}")).into()),
    }
}

/// Checkpoints at probe `k` and restores into `target`, whose
/// uninterrupted run has `p` probes: the number of frames saved, or what
/// went wrong.
///
/// The restored run counts its probes: under the same policy it must make
/// exactly probes k..=p; under any, it is stopped (by a checkpoint that is
/// thrown away) past 2p + 16 of them, so that a restore that loops forever
/// is reported instead of hanging the test.
fn checkpoint_restore(
    module: &Module,
    target: &Module,
    k: u64,
    p: u64,
    h: &Harness,
    calls: &[PlannedCall],
) -> Result<usize, String> {
    let same_policy = module.meta().policy == target.meta().policy;
    let buf = SharedBuf::default();
    let out = Command::new(module)
        .config(WasiConfig::default())
        .max_wasm_stack(WASM_STACK)
        .run(
            config(
                Trigger::ProbeCount(k),
                SnapshotSink::Stream(Box::new(buf.clone())),
            ),
            RunOptions::default(),
        )
        .map_err(|e| format!("checkpoint run: {}", describe(&e, h, calls).1))?;
    let frames = match out {
        Outcome::Checkpointed { stats } if stats.probes == k => stats.frames,
        other => {
            return Err(format!(
                "checkpoint run: no checkpoint at probe {k}: {other:?}"
            ));
        }
    };
    let bytes = std::mem::take(&mut *buf.0.lock().map_err(|_| "poisoned".to_string())?);
    let out = Command::new(target)
        .max_wasm_stack(WASM_STACK)
        .restore(
            SnapshotSource::Stream(Box::new(std::io::Cursor::new(bytes))),
            config(
                Trigger::ProbeCount(2 * p + 16),
                SnapshotSink::Stream(Box::new(std::io::sink())),
            ),
            RestoreOptions::default(),
        )
        .map_err(|e| format!("after restore: {}", describe(&e, h, calls).1))?;
    match out {
        // Same probe numbering (same policy): the restored run makes the
        // probes k..=p (probe k again, where it resumes), no more, no less;
        // another count means its control flow differs.
        Outcome::Exited { code: 0, probes } if same_policy && k + probes != p + 1 => Err(format!(
            "after restore: {probes} probes, the uninterrupted run makes {} after probe {}",
            p + 1 - k,
            k - 1
        )),
        Outcome::Exited { code: 0, .. } => Ok(frames),
        Outcome::Checkpointed { .. } => Err(format!(
            "after restore: still running after {} probes (the uninterrupted run has {p})",
            2 * p + 16
        )),
        other => Err(format!("after restore: ended with {other:?}")),
    }
}

fn run_file(name: &str, text: &str, cap: u64) -> FileReport {
    let mut rep = FileReport {
        name: name.to_string(),
        ..Default::default()
    };
    let instances = match plan(text) {
        Ok(i) => i,
        Err(e) => {
            rep.mismatches.push(Mismatch {
                file: name.into(),
                module_line: 0,
                policy: "-".into(),
                k: 0,
                what: format!("cannot parse: {e}"),
            });
            return rep;
        }
    };
    for inst in instances {
        for (_, why) in &inst.skipped_calls {
            rep.skip(why, 1);
        }
        if inst.calls.is_empty() {
            continue;
        }
        rep.instances += 1;
        let Some(bytes) = &inst.bytes else {
            rep.skip("module cannot be encoded", inst.calls.len());
            continue;
        };
        let parsed = match Parsed::new(bytes) {
            Ok(p) => p,
            Err(e) => {
                let why = e.0.split(" `").next().unwrap_or("").to_string();
                let why = if e.0.contains("from another spec module") {
                    "instance imports from another spec module (its state lives there)".into()
                } else {
                    format!("module not rewritable: {why}")
                };
                rep.skip(&why, inst.calls.len());
                continue;
            }
        };
        let mut calls: Vec<PlannedCall> = Vec::new();
        for c in inst.calls {
            match parsed.check_call(&c.call) {
                Ok(()) => calls.push(c),
                Err(e) => rep.skip(&format!("call not expressible in wasm: {e}"), 1),
            }
        }
        check_instance(&mut rep, name, inst.line, &parsed, calls, cap);
    }
    rep
}

/// Whether `MVVM_SPEC_CKPT_VERBOSE` is set (print every dropped call).
fn verbose() -> bool {
    std::env::var_os("MVVM_SPEC_CKPT_VERBOSE").is_some()
}

/// The length of the shortest prefix of `calls` whose harness fails
/// without any checkpoint (compiled without a policy), if any.
fn first_failing_prefix(parsed: &Parsed, calls: &[PlannedCall]) -> Option<usize> {
    let fails = |n: usize| {
        let list: Vec<_> = calls[..n].iter().map(|c| c.call.clone()).collect();
        let Ok(h) = parsed.harness(&list) else {
            return true;
        };
        compile(&h.bytes, Policy::None).map_or(true, |m| reference(&m).is_err())
    };
    if !fails(calls.len()) {
        return None;
    }
    let (mut lo, mut hi) = (1, calls.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// Builds, references and checkpoints one instance's harness under every
/// policy.
fn check_instance(
    rep: &mut FileReport,
    file: &str,
    line: usize,
    parsed: &Parsed,
    mut calls: Vec<PlannedCall>,
    cap: u64,
) {
    let mismatch = |policy: &str, k: u64, what: String| Mismatch {
        file: file.to_string(),
        module_line: line,
        policy: policy.to_string(),
        k,
        what,
    };
    // Drop calls that fail without any checkpoint (state left by a trap
    // the harness cannot make), rebuilding each time.
    let mut drops = 0;
    let (h, mut modules) = loop {
        if calls.is_empty() {
            return;
        }
        let h = match parsed.harness(&calls.iter().map(|c| c.call.clone()).collect::<Vec<_>>()) {
            Ok(h) => h,
            Err(e) => {
                rep.skip(&format!("module not rewritable: {e}"), calls.len());
                return;
            }
        };
        let m = match compile(&h.bytes, POLICIES[0]) {
            Ok(m) => m,
            Err(e) => {
                let short: String = e.chars().take(80).collect();
                rep.skip(
                    &format!("rewritten module does not compile: {short}"),
                    calls.len(),
                );
                return;
            }
        };
        match reference(&m) {
            Ok(p) => break (h, vec![(POLICIES[0], m, p)]),
            Err(e) => {
                let (at, what) = describe(&e, &h, &calls);
                // A trap inside the called function does not say which
                // call it was: the shortest failing prefix does.
                let at = at.or_else(|| first_failing_prefix(parsed, &calls).map(|n| n - 1));
                drops += 1;
                match at {
                    Some(i) if drops <= 20 => {
                        if verbose() {
                            println!(
                                "{file}:{}: `{}` dropped: fails without a checkpoint: {what}",
                                calls[i].line, calls[i].call.func
                            );
                        }
                        rep.skip(
                            "fails without a checkpoint (state left by a trapping call the \
                             harness cannot make, or by another module)",
                            1,
                        );
                        calls.remove(i);
                    }
                    _ => {
                        rep.skip(
                            &format!(
                                "harness fails without a checkpoint: {}",
                                what.chars().take(60).collect::<String>()
                            ),
                            calls.len(),
                        );
                        return;
                    }
                }
            }
        }
    };
    rep.calls += calls.len();
    for &policy in &POLICIES[1..policy_count()] {
        let m = match compile(&h.bytes, policy) {
            Ok(m) => m,
            Err(e) => {
                rep.mismatches.push(mismatch(&policy.name(), 0, e));
                continue;
            }
        };
        match reference(&m) {
            Ok(p) => modules.push((policy, m, p)),
            Err(e) => rep.mismatches.push(mismatch(
                &policy.name(),
                0,
                format!("reference run: {}", describe(&e, &h, &calls).1),
            )),
        }
    }
    for (idx, (policy, m, p)) in modules.iter().enumerate() {
        if *p == 0 {
            rep.no_probe += 1;
            continue;
        }
        // The other policy's module, and its probe count: probes differ
        // between policies, so the restored run's limit is taken from it.
        let (_, other, other_p) = &modules[(idx + 1) % modules.len()];
        let ks = probe_points(*p, cap.max(calls.len() as u64));
        // Restores into the same policy at -O0 (other code, same resume
        // points) with its clones compiled on demand, compiled only when
        // some k uses it.
        let o0 = if ks.len() > 1 {
            match compile_at(&h.bytes, *policy, 0, true) {
                Ok(m) => Some(m),
                Err(e) => {
                    rep.mismatches
                        .push(mismatch(&policy.name(), 0, format!("-O0: {e}")));
                    None
                }
            }
        } else {
            None
        };
        rep.calls_checkpointed += calls.len();
        rep.probes += p;
        for (j, k) in ks.into_iter().enumerate() {
            let (target, target_p) = match (j % 4, &o0) {
                (3, _) => (other, *other_p),
                (1, Some(o0)) => (o0, *p),
                _ => (m, *p),
            };
            rep.checkpoints += 1;
            let done = checkpoint_restore(m, target, k, target_p, &h, &calls);
            if let Ok(frames) = done {
                rep.max_frames = rep.max_frames.max(frames);
            }
            if let Err(what) = done {
                let into = if std::ptr::eq(target, m) {
                    String::new()
                } else {
                    format!(
                        " (restored into {} -O{})",
                        target.meta().policy.name(),
                        target.meta().opt_level
                    )
                };
                rep.mismatches.push(mismatch(
                    &policy.name(),
                    k,
                    format!("probe {k} of {p}{into}: {what}"),
                ));
            }
        }
    }
}

/// `MVVM_SPEC_CKPT_POLICIES=N`: run the first N of [`POLICIES`] (1 to 3,
/// default 3). The aarch64 run under qemu, ten times slower, takes 2:
/// probes in every call and at every loop, still restored across policies.
fn policy_count() -> usize {
    std::env::var("MVVM_SPEC_CKPT_POLICIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(POLICIES.len())
        .clamp(1, POLICIES.len())
}

#[test]
fn checkpoint_everywhere_over_the_spec_testsuite() {
    mvvm_rt::set_clone_compiler(std::sync::Arc::new(AotClones));
    let filter = std::env::var("MVVM_SPEC_FILTER").ok();
    let cap: u64 = std::env::var("MVVM_SPEC_CKPT_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|c| *c >= 2)
        .unwrap_or(256);
    let files = spec_files::spec_files(filter.as_deref()).unwrap_or_else(|why| panic!("{why}"));
    let started = Instant::now();
    let queue = Mutex::new(files.clone());
    let reports: Mutex<Vec<FileReport>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get().min(2))
        .unwrap_or(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(scope, || {
                    loop {
                        let Some((name, text)) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        let t = Instant::now();
                        let rep = std::panic::catch_unwind(|| run_file(&name, text, cap))
                            .unwrap_or_else(|_| FileReport {
                                name: name.clone(),
                                mismatches: vec![Mismatch {
                                    file: name.clone(),
                                    module_line: 0,
                                    policy: "-".into(),
                                    k: 0,
                                    what: "runner panicked".into(),
                                }],
                                ..Default::default()
                            });
                        if std::env::var_os("MVVM_SPEC_CKPT_TIMES").is_some() {
                            println!("{name}: {:.1}s", t.elapsed().as_secs_f64());
                        }
                        reports.lock().unwrap().push(rep);
                    }
                })
                .expect("spawn runner thread");
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by(|a, b| a.name.cmp(&b.name));

    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let (mut calls, mut calls_ck, mut checkpoints, mut instances, mut no_probe) = (0, 0, 0, 0, 0);
    let (mut probes, mut max_frames) = (0, 0);
    let mut mismatches = Vec::new();
    // (directory, files, calls, checkpoints, files with mismatches)
    let mut dirs: Vec<(String, usize, usize, u64, usize)> = Vec::new();
    for r in &reports {
        let dir = spec_files::dir_of(&r.name);
        let bad = usize::from(!r.mismatches.is_empty());
        match dirs.iter_mut().find(|d| d.0 == dir) {
            Some(d) => {
                (d.1, d.2, d.3, d.4) = (d.1 + 1, d.2 + r.calls, d.3 + r.checkpoints, d.4 + bad);
            }
            None => dirs.push((dir.to_string(), 1, r.calls, r.checkpoints, bad)),
        }
        println!(
            "{:4} {:28} {:4} instances {:5} calls {:6} checkpoints",
            if r.mismatches.is_empty() {
                "ok"
            } else {
                "FAIL"
            },
            r.name,
            r.instances,
            r.calls,
            r.checkpoints
        );
        instances += r.instances;
        calls += r.calls;
        calls_ck += r.calls_checkpointed;
        checkpoints += r.checkpoints;
        no_probe += r.no_probe;
        probes += r.probes;
        max_frames = max_frames.max(r.max_frames);
        for (why, n) in &r.skipped {
            *skipped.entry(why.clone()).or_default() += n;
        }
        mismatches.extend(r.mismatches.iter().cloned());
    }
    for (dir, n, c, k, bad) in &dirs {
        println!(
            "spec checkpoint: {dir}: {n} files ({} passed, {bad} failed), {c} calls, \
             {k} checkpoints",
            n - bad
        );
    }
    println!(
        "spec checkpoint: {} files, {instances} instances with calls, {calls} calls made, \
         {calls_ck} (call, policy) pairs checkpointed, {checkpoints} checkpoints restored \
         (of {probes} probes, cap {cap} per instance and policy; deepest: {max_frames} frames), \
         {no_probe} (instance, policy) pairs without any probe, {:.1}s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    println!("skipped calls, by reason:");
    for (why, n) in &skipped {
        println!("  {n:6}  {why}");
    }
    let mut unexpected = Vec::new();
    let mut seen_known = Vec::new();
    for m in &mismatches {
        let key = (m.file.as_str(), m.module_line, m.policy.as_str(), m.k);
        if KNOWN_FAILURES.contains(&key) {
            seen_known.push(key);
            println!(
                "known failure {}:{} [{}] {}",
                m.file, m.module_line, m.policy, m.what
            );
        } else {
            unexpected.push(m);
        }
    }
    for m in &unexpected {
        println!(
            "MISMATCH {}:{} [{}] {}",
            m.file, m.module_line, m.policy, m.what
        );
    }
    let fixed: Vec<_> = KNOWN_FAILURES
        .iter()
        .filter(|k| filter.is_none() && spec_files::default_suite() && !seen_known.contains(k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} mismatches (see MISMATCH lines)",
        unexpected.len()
    );
    assert!(
        fixed.is_empty(),
        "known failures that now pass (remove them from KNOWN_FAILURES): {fixed:?}"
    );
}

#[test]
fn probe_points_are_spread_and_include_the_ends() {
    assert_eq!(probe_points(3, 64), vec![1, 2, 3]);
    let ks = probe_points(1000, 64);
    assert_eq!(ks.len(), 64);
    assert_eq!((ks[0], ks[63]), (1, 1000));
    assert!(ks.windows(2).all(|w| w[0] < w[1]));
}

/// The harness sees a wrong result, says which call it was, and checks
/// NaN classes; a checkpoint at every probe of a recursive function keeps
/// the results.
#[test]
fn the_harness_detects_wrong_results() {
    use spec_checkpoint_support::wasm::{Arg, Call, Expect, FloatPat};
    let wat = r#"(module
      (func $fac (export "fac") (param i64) (result i64)
        (if (result i64) (i64.eqz (local.get 0))
          (then (i64.const 1))
          (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
      (func (export "nan") (result f32 f64)
        (f32.div (f32.const 0) (f32.const 0)) (f64.const nan:0x4)))"#;
    let buf = wast::parser::ParseBuffer::new(wat).unwrap();
    let mut module = wast::parser::parse::<wast::Wat<'_>>(&buf).unwrap();
    let bytes = module.encode().unwrap();
    let parsed = Parsed::new(&bytes).unwrap();
    let call = |func: &str, args: Vec<Arg>, expect: Vec<Expect>, line| PlannedCall {
        call: Call {
            func: func.into(),
            args,
            expect: Some(expect),
            throws: false,
        },
        line,
    };
    let good = vec![
        call("fac", vec![Arg::I64(10)], vec![Expect::I64(3628800)], 1),
        call(
            "nan",
            vec![],
            vec![
                Expect::F32(FloatPat::CanonicalNan),
                Expect::F64(FloatPat::Bits(0x7ff0_0000_0000_0004)),
            ],
            2,
        ),
    ];
    let h = parsed
        .harness(&good.iter().map(|c| c.call.clone()).collect::<Vec<_>>())
        .unwrap();
    let m = compile(&h.bytes, Policy::FunctionEntry).unwrap();
    let p = reference(&m).unwrap();
    assert_eq!(p, 2 + 11 + 1 + 1, "_start, $inv_0, fac x11, $inv_1, nan");
    for k in 1..=p {
        checkpoint_restore(&m, &m, k, p, &h, &good).unwrap();
    }
    for (i, bad) in [
        call("fac", vec![Arg::I64(10)], vec![Expect::I64(3628801)], 7),
        call(
            "nan",
            vec![],
            vec![
                Expect::F32(FloatPat::CanonicalNan),
                // nan:0x4 is not an arithmetic NaN (quiet bit clear)
                Expect::F64(FloatPat::ArithmeticNan),
            ],
            8,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut calls = good.clone();
        calls.push(bad);
        let h = parsed
            .harness(&calls.iter().map(|c| c.call.clone()).collect::<Vec<_>>())
            .unwrap();
        let m = compile(&h.bytes, Policy::FunctionEntry).unwrap();
        let e = reference(&m).unwrap_err();
        let (at, what) = describe(&e, &h, &calls);
        assert_eq!(at, Some(2), "case {i}: {what}");
        assert!(what.starts_with("wrong result"), "{what}");
    }
}

/// `v128` arguments and results: the harness passes `v128.const`s and
/// compares lane by lane (NaN classes per lane); a wrong lane is a wrong
/// result, and a checkpoint at every probe keeps the values.
#[test]
fn the_harness_checks_v128_lanes() {
    use spec_checkpoint_support::wasm::{Arg, Call, Expect, FloatPat, Lanes};
    let wat = r#"(module
      (func $id (export "id") (param v128) (result v128) (local.get 0))
      (func (export "add") (param v128 v128) (result v128)
        (i32x4.add (call $id (local.get 0)) (call $id (local.get 1))))
      (func (export "nan") (result v128)
        (f32x4.div (v128.const f32x4 0 1 0 -1) (v128.const f32x4 0 1 0 1))))"#;
    let buf = wast::parser::ParseBuffer::new(wat).unwrap();
    let mut module = wast::parser::parse::<wast::Wat<'_>>(&buf).unwrap();
    let bytes = module.encode().unwrap();
    let parsed = Parsed::new(&bytes).unwrap();
    let v = |lanes: [u32; 4]| {
        let mut b = [0u8; 16];
        for (i, l) in lanes.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&l.to_le_bytes());
        }
        Arg::V128(b)
    };
    let call = |func: &str, args: Vec<Arg>, expect: Expect, line| PlannedCall {
        call: Call {
            func: func.into(),
            args,
            expect: Some(vec![expect]),
            throws: false,
        },
        line,
    };
    let i32x4 =
        |l: [i32; 4]| Expect::V128(Lanes::I32x4, l.iter().map(|x| Expect::I32(*x)).collect());
    let good = vec![
        call(
            "add",
            vec![v([1, 2, 3, u32::MAX]), v([10, 20, 30, 2])],
            i32x4([11, 22, 33, 1]),
            1,
        ),
        call(
            "id",
            vec![v([0x0201, 0, 0, 0xff00_0000])],
            Expect::V128(
                Lanes::I8x16,
                [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255]
                    .iter()
                    .map(|x| Expect::I32(*x))
                    .collect(),
            ),
            2,
        ),
        call(
            "nan",
            vec![],
            Expect::V128(
                Lanes::F32x4,
                vec![
                    Expect::F32(FloatPat::ArithmeticNan),
                    Expect::F32(FloatPat::Bits(1f32.to_bits())),
                    Expect::F32(FloatPat::ArithmeticNan),
                    Expect::F32(FloatPat::Bits((-1f32).to_bits())),
                ],
            ),
            3,
        ),
    ];
    for c in &good {
        parsed.check_call(&c.call).unwrap();
    }
    let h = parsed
        .harness(&good.iter().map(|c| c.call.clone()).collect::<Vec<_>>())
        .unwrap();
    let m = compile(&h.bytes, Policy::FunctionEntry).unwrap();
    let p = reference(&m).unwrap();
    for k in 1..=p {
        checkpoint_restore(&m, &m, k, p, &h, &good).unwrap();
    }
    let mut calls = good.clone();
    calls.push(call(
        "add",
        vec![v([1, 2, 3, 4]), v([1, 1, 1, 1])],
        i32x4([2, 3, 4, 6]),
        9,
    ));
    let h = parsed
        .harness(&calls.iter().map(|c| c.call.clone()).collect::<Vec<_>>())
        .unwrap();
    let m = compile(&h.bytes, Policy::FunctionEntry).unwrap();
    let e = reference(&m).unwrap_err();
    let (at, what) = describe(&e, &h, &calls);
    assert_eq!(at, Some(3), "{what}");
    assert!(what.starts_with("wrong result"), "{what}");
}
