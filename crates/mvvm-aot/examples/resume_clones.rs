//! Developer measurement for compiling resume clones on demand ("Resume
//! clones compiled on demand" in CHECKPOINT.md, issues 12 and 16): what
//! leaving the clones out of the ahead-of-time compilation would save,
//! where the rest of a policy compilation's time goes, and what compiling
//! one clone alone would cost a restore.
//!
//! ```text
//! cargo run --release -p mvvm-aot --example resume_clones -- [OPTIONS] FILE...
//!   --time N        compile N times each with no policy, then with each
//!                   policy with and without resume clones
//!                   (`DevOptions::resume_clones`), and without clones nor
//!                   unwind stores (`unwind_stores`); print the mean CPU time
//!                   of the process (user+system, 10 ms ticks) and the
//!                   object size, both also as ratios to no policy
//!   --passes        one more compilation of each policy, with and without
//!                   clones, with `DevOptions::timings`: translation time and
//!                   Cranelift's time per pass (summed over the workers)
//!   --restore N     the cost a restore would pay: the largest function with
//!                   a loop (by body bytes) compiled alone N times
//!                   (`mvvm_aot::resume_clone`, one thread): the mean of the
//!                   module-wide preparation and of the clone's compilation
//!                   (wall), per policy; also the bytes an object would carry
//!                   (the wasm, its code section, the bodies with a loop)
//!   --write DIR     write each policy's object without clones to
//!                   DIR/NAME.POLICY.no-clones.aot (to run them: such an
//!                   object runs like the normal one and traps when a
//!                   rewind needs a clone)
//!   --write-tests DIR
//!                   write each policy's object (with clones) in four shapes
//!                   to DIR/NAME.POLICY.SHAPE.aot: `tests` (today's code),
//!                   `no-after-call` (`DevOptions::after_call_tests: false`),
//!                   `no-entry` (`entry_rewind_tests: false`) and `no-tests`
//!                   (both off). For measuring the per-call tests' upper
//!                   bound (issue 15): the last three run like the first
//!                   while nothing checkpoints, and cannot checkpoint or
//!                   restore correctly
//!   --portable      compile for the ISA's baseline (as `mvvm-aot --portable`)
//!   --opt-level N   0..=3 (default 3)
//! ```
//!
//! Policies: loop and counter-loop:16. FILE may be wasm or WAT (WAT is
//! converted to wasm once, before any timing).

#[path = "support/cpu_time.rs"]
mod cpu_time;

use anyhow::{Context, Result, bail};
use cpu_time::cpu_time;
use mvvm_aot::frame_labels::{DevOptions, FrameReport, compile_with};
use mvvm_aot::{CompileOptions, Policy};
use std::time::Duration;

struct Args {
    time: usize,
    passes: bool,
    restore: usize,
    write: Option<std::path::PathBuf>,
    write_tests: Option<std::path::PathBuf>,
    portable: bool,
    opt_level: u8,
    files: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        time: 0,
        passes: false,
        restore: 0,
        write: None,
        write_tests: None,
        portable: false,
        opt_level: 3,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--time" => a.time = it.next().context("--time N")?.parse()?,
            "--passes" => a.passes = true,
            "--write" => a.write = Some(it.next().context("--write DIR")?.into()),
            "--write-tests" => {
                a.write_tests = Some(it.next().context("--write-tests DIR")?.into());
            }
            "--portable" => a.portable = true,
            "--restore" => a.restore = it.next().context("--restore N")?.parse()?,
            "--opt-level" => a.opt_level = it.next().context("--opt-level N")?.parse()?,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            _ => a.files.push(arg),
        }
    }
    Ok(a)
}

/// Mean CPU time of `n` compilations, the object size and the last report.
fn timed(
    wasm: &[u8],
    opts: &CompileOptions,
    dev: &DevOptions,
    n: usize,
) -> Result<(Duration, usize, FrameReport)> {
    let mut cpu = Duration::ZERO;
    let mut size = 0;
    let mut report = FrameReport::default();
    for _ in 0..n.max(1) {
        let c0 = cpu_time()?;
        let (object, r) = compile_with(wasm, opts, dev)?;
        cpu += cpu_time()? - c0;
        size = object.len();
        report = r;
    }
    Ok((cpu / n.max(1) as u32, size, report))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let policies = [
        ("loop", Policy::Loop),
        (
            "counter-loop:16",
            Policy::CounterLoop { threshold_bits: 16 },
        ),
    ];
    let without_clones = DevOptions {
        resume_clones: false,
        ..DevOptions::default()
    };
    for file in &args.files {
        let input = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let wasm = wat::parse_bytes(&input)?.into_owned();
        let name = std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let none = CompileOptions {
            policy: Policy::None,
            opt_level: args.opt_level,
            portable: args.portable,
            ..CompileOptions::default()
        };
        if args.time > 0 {
            let (base_cpu, base_size, _) = timed(&wasm, &none, &DevOptions::default(), args.time)?;
            println!(
                "{name} none: cpu {:.3}s object {base_size} B (wasm {} B)",
                base_cpu.as_secs_f64(),
                wasm.len()
            );
            let base = base_cpu.as_secs_f64().max(1e-9);
            for (label, policy) in policies {
                let opts = CompileOptions { policy, ..none };
                // The last shape adds the other half (no unwind stores
                // anywhere: the frame-walk plan's limit): the floor of
                // both ideas together; such an object cannot checkpoint.
                let floor = DevOptions {
                    unwind_stores: false,
                    ..without_clones
                };
                for (shape, dev) in [
                    ("clones", DevOptions::default()),
                    ("no-clones", without_clones),
                    ("no-clones-no-stores", floor),
                ] {
                    let (cpu, size, _) = timed(&wasm, &opts, &dev, args.time)?;
                    println!(
                        "{name} {label} {shape}: cpu {:.3}s ({:.2}x) object {size} B ({:.2}x)",
                        cpu.as_secs_f64(),
                        cpu.as_secs_f64() / base,
                        size as f64 / base_size.max(1) as f64
                    );
                }
            }
        }
        if let Some(dir) = &args.write {
            for (label, policy) in policies {
                let opts = CompileOptions { policy, ..none };
                let (object, _) = compile_with(&wasm, &opts, &without_clones)?;
                let path = dir.join(format!("{name}.{label}.no-clones.aot"));
                std::fs::write(&path, object).with_context(|| format!("{}", path.display()))?;
            }
        }
        if let Some(dir) = &args.write_tests {
            for (label, policy) in policies {
                let opts = CompileOptions { policy, ..none };
                for (shape, after_call_tests, entry_rewind_tests) in [
                    ("tests", true, true),
                    ("no-after-call", false, true),
                    ("no-entry", true, false),
                    ("no-tests", false, false),
                ] {
                    let dev = DevOptions {
                        after_call_tests,
                        entry_rewind_tests,
                        ..DevOptions::default()
                    };
                    let (object, _) = compile_with(&wasm, &opts, &dev)?;
                    let path = dir.join(format!("{name}.{label}.{shape}.aot"));
                    std::fs::write(&path, object).with_context(|| format!("{}", path.display()))?;
                }
            }
        }
        if args.restore > 0 {
            restore_cost(&name, &wasm, &none, args.restore)?;
        }
        if args.passes {
            let dev = DevOptions {
                timings: true,
                ..DevOptions::default()
            };
            let (cpu, _, r) = timed(&wasm, &none, &dev, 1)?;
            println!(
                "{name} none: cpu {:.3}s; body time {:.3}s, of which translation {:.3}s",
                cpu.as_secs_f64(),
                r.times.whole_ns as f64 / 1e9,
                r.times.translate_ns as f64 / 1e9
            );
            println!("{}", r.pass_times);
            for (label, policy) in policies {
                let opts = CompileOptions { policy, ..none };
                for (shape, resume_clones) in [("clones", true), ("no-clones", false)] {
                    let dev = DevOptions {
                        resume_clones,
                        timings: true,
                        ..DevOptions::default()
                    };
                    let (cpu, _, r) = timed(&wasm, &opts, &dev, 1)?;
                    let t = &r.times;
                    println!(
                        "{name} {label} {shape}: cpu {:.3}s; bodies whole/hot/clone {:?}, body time {:.3}s (whole {:.3} hot {:.3} clones {:.3}), of which translation {:.3}s",
                        cpu.as_secs_f64(),
                        t.bodies,
                        (t.whole_ns + t.hot_ns + t.resume_ns) as f64 / 1e9,
                        t.whole_ns as f64 / 1e9,
                        t.hot_ns as f64 / 1e9,
                        t.resume_ns as f64 / 1e9,
                        t.translate_ns as f64 / 1e9
                    );
                    println!("{}", r.pass_times);
                }
            }
        }
    }
    Ok(())
}

/// A defined function (index, imports included), its body's size in bytes
/// and whether it has a `loop`.
type BodyInfo = (u32, usize, bool);

/// Every defined function's [`BodyInfo`], and the code section's size.
fn bodies(wasm: &[u8]) -> Result<(Vec<BodyInfo>, usize)> {
    use wasmparser::{Operator, Parser, Payload};
    let mut out = Vec::new();
    let mut imported = 0u32;
    let mut code_bytes = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    if matches!(imp?.ty, wasmparser::TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionStart { size, .. } => code_bytes = size as usize,
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader()?;
                let mut has_loop = false;
                while !ops.eof() {
                    if let Operator::Loop { .. } = ops.read()? {
                        has_loop = true;
                    }
                }
                let index = imported + out.len() as u32;
                let r = body.range();
                out.push((index, (r.end - r.start) as usize, has_loop));
            }
            _ => {}
        }
    }
    Ok((out, code_bytes))
}

fn restore_cost(name: &str, wasm: &[u8], none: &CompileOptions, n: usize) -> Result<()> {
    let (all, code_bytes) = bodies(wasm)?;
    let loop_bytes: usize = all.iter().filter(|b| b.2).map(|b| b.1).sum();
    let looped = all.iter().filter(|b| b.2).count();
    println!(
        "{name} carry: wasm {} B, code section {code_bytes} B, bodies with a loop {loop_bytes} B ({looped} of {} functions)",
        wasm.len(),
        all.len()
    );
    let Some(&(func, size, _)) = all.iter().filter(|b| b.2).max_by_key(|b| b.1) else {
        println!("{name}: no function with a loop");
        return Ok(());
    };
    for (label, policy) in [
        ("loop", Policy::Loop),
        (
            "counter-loop:16",
            Policy::CounterLoop { threshold_bits: 16 },
        ),
    ] {
        let opts = CompileOptions { policy, ..*none };
        let mut prepare = Duration::ZERO;
        let mut compile = Duration::ZERO;
        let mut code = 0;
        for _ in 0..n.max(1) {
            let c = mvvm_aot::resume_clone::compile_resume_clone(wasm, &opts, func)?;
            prepare += c.times.prepare;
            compile += c.times.compile;
            code = c.bytes.len();
        }
        let k = n.max(1) as u32;
        println!(
            "{name} {label} restore: function {func} ({size} B of wasm, clone {code} B of code): prepare {:.2} ms, compile clone {:.2} ms",
            (prepare / k).as_secs_f64() * 1e3,
            (compile / k).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
