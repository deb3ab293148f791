//! Probe counting cost: `cargo run --release -p mvvm-rt --example probe_cost -- PROG.wasm`
//! runs the program compiled with no policy, with `loop` and with
//! `counter-loop:16`, each with `Trigger::CountProbes` (probes counted
//! through the builtin) and `Trigger::None` (probes on the fast path), and
//! prints the wall times (stdout of the program goes to /dev/null).

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{CheckpointConfig, RunOptions, SnapshotSink, Trigger};
use mvvm_wasi::Command;
use mvvm_wasi::WasiConfig;
use std::os::fd::AsRawFd;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("PROG.wasm");
    let wasm = std::fs::read(&path).expect("read");
    let null = std::fs::File::create("/dev/null").unwrap();
    // SAFETY: redirecting our own stdout.
    let saved = unsafe { libc::dup(1) };
    // SAFETY: as above.
    unsafe { libc::dup2(null.as_raw_fd(), 1) };
    let mut lines = Vec::new();
    for policy in [
        Policy::None,
        Policy::Loop,
        Policy::CounterLoop { threshold_bits: 16 },
    ] {
        let opts = mvvm_aot::CompileOptions {
            policy,
            ..Default::default()
        };
        let module = Module::from_aot(&mvvm_aot::compile(&wasm, &opts).unwrap()).unwrap();
        let triggers: Vec<Trigger> = if policy == Policy::None {
            vec![Trigger::None]
        } else {
            vec![Trigger::CountProbes, Trigger::None]
        };
        for trigger in triggers {
            let name = format!("{:?}", trigger);
            let cfg = CheckpointConfig {
                trigger,
                sink: SnapshotSink::Stream(Box::new(std::io::sink())),
                log_probes: false,
                signals: false,
            };
            let wasi = WasiConfig {
                args: vec!["prog".into()],
                ..Default::default()
            };
            let t = Instant::now();
            let out = Command::new(&module)
                .config(wasi)
                .max_wasm_stack(8 << 20)
                .run(cfg, RunOptions::default())
                .unwrap();
            lines.push(format!(
                "{:<22} {:<28} {:>8.1} ms  {out:?}",
                policy.name(),
                name,
                t.elapsed().as_secs_f64() * 1e3
            ));
        }
    }
    // SAFETY: restoring our stdout.
    unsafe { libc::dup2(saved, 1) };
    for l in lines {
        println!("{l}");
    }
}
