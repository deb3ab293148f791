//! Checkpoint-everywhere driver for real programs, for manual runs:
//! `cargo run --release -p mvvm-rt --example ckpt_matrix -- PROG.wasm POLICY [ARGS...]`
//! with POLICY one of `function`, `loop`, `counter:N`. Runs the program
//! once (stdout to `ref.out` in a temporary directory, which is also
//! preopened as `/work` and is the working directory), then for N in 1, 2,
//! P/3, P/2, P-1, P checkpoints at probe N and restores, and compares
//! stdout (checkpointed run + restored run) and the exit code. Each run is
//! a child process of this one, so stdout can be redirected.

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_wasi::{Preopen, WasiConfig};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

fn policy(s: &str) -> Policy {
    match s {
        "function" => Policy::FunctionEntry,
        "loop" => Policy::Loop,
        s => Policy::CounterLoop {
            threshold_bits: s.trim_start_matches("counter:").parse().expect("policy"),
        },
    }
}

fn module(wasm: &Path, p: Policy) -> Module {
    let opts = mvvm_aot::CompileOptions {
        policy: p,
        ..Default::default()
    };
    let bytes = std::fs::read(wasm).expect("read wasm");
    Module::from_aot(&mvvm_aot::compile(&bytes, &opts).expect("compile")).expect("load")
}

fn wasi(dir: &Path, args: &[String]) -> WasiConfig {
    WasiConfig {
        args: args.to_vec(),
        preopens: vec![Preopen {
            host: dir.to_path_buf(),
            guest: "/work".into(),
        }],
        ..Default::default()
    }
}

/// Child mode: `child MODE WASM POLICY DIR OUT N ARGS...`, stdout appended
/// to OUT; prints the outcome on stderr.
fn child(a: &[String]) -> ! {
    let (mode, wasm, pol, dir, out, n) = (&a[0], &a[1], &a[2], &a[3], &a[4], &a[5]);
    let args = &a[6..];
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap();
    // SAFETY: redirecting our own stdout to a file we own.
    unsafe { libc::dup2(f.as_raw_fd(), 1) };
    let m = module(Path::new(wasm), policy(pol));
    let dir = PathBuf::from(dir);
    std::env::set_current_dir(&dir).unwrap();
    let n: u64 = n.parse().unwrap();
    let trigger = if n == 0 {
        Trigger::CountProbes
    } else {
        Trigger::ProbeCount(n)
    };
    let cfg = CheckpointConfig {
        trigger,
        sink: SnapshotSink::File(dir.join("snap")),
        log_probes: false,
        signals: false,
    };
    let r = match mode.as_str() {
        "run" => mvvm_wasi::Command::new(&m)
            .config(wasi(&dir, args))
            .max_wasm_stack(8 << 20)
            .run(cfg, RunOptions::default()),
        _ => mvvm_wasi::Command::new(&m).max_wasm_stack(8 << 20).restore(
            SnapshotSource::File(dir.join("snap")),
            cfg,
            RestoreOptions::default(),
        ),
    };
    match r {
        Ok(Outcome::Exited { code, probes }) => {
            eprintln!("exited {code} probes {probes}");
            std::process::exit(0)
        }
        Ok(Outcome::Checkpointed { stats }) => {
            eprintln!("checkpointed frames {}", stats.frames);
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("error {e}");
            std::process::exit(1)
        }
    }
}

fn spawn(
    mode: &str,
    wasm: &str,
    pol: &str,
    dir: &Path,
    out: &Path,
    n: u64,
    args: &[String],
) -> String {
    let o = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .args([mode, wasm, pol])
        .arg(dir)
        .arg(out)
        .arg(n.to_string())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.first().map(String::as_str) == Some("child") {
        child(&a[1..]);
    }
    let (wasm, pol) = (&a[0], &a[1]);
    let args: Vec<String> = std::iter::once("prog".to_string())
        .chain(a[2..].iter().cloned())
        .collect();
    let fresh = |tag: &str| {
        let d = std::env::temp_dir().join(format!("ckpt-matrix-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let d = fresh("ref");
    let r = spawn("run", wasm, pol, &d, &d.join("stdout"), 0, &args);
    let want = std::fs::read(d.join("stdout")).unwrap_or_default();
    let p: u64 = r.rsplit(' ').next().unwrap().parse().unwrap_or(0);
    println!("reference: {r}");
    let mut ns = vec![1, 2, p / 3, p / 2, p.saturating_sub(1), p];
    ns.retain(|n| *n > 0);
    ns.sort();
    ns.dedup();
    let mut bad = 0;
    for n in ns {
        let d = fresh(&n.to_string());
        let r1 = spawn("run", wasm, pol, &d, &d.join("stdout"), n, &args);
        let r2 = spawn("restore", wasm, pol, &d, &d.join("stdout"), 0, &args);
        let got = std::fs::read(d.join("stdout")).unwrap_or_default();
        let ok = got == want && r2.starts_with(r.split(" probes").next().unwrap());
        if !ok {
            bad += 1;
        }
        println!(
            "N={n}: {r1} / {r2}: {}",
            if ok { "same" } else { "DIFFERENT" }
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    std::process::exit(if bad == 0 { 0 } else { 1 });
}
