//! Developer measurement for the frame-walk unwinder ("Reading frames
//! where they are" in CHECKPOINT.md): per module, how many values of the
//! frame records at call stable points Cranelift's value-label ranges
//! locate, and what the per-site unwind code costs in compile time.
//!
//! ```text
//! cargo run --release -p mvvm-aot --example frame_labels -- [OPTIONS] FILE.wasm...
//!   --policy P          loop (default), counter-loop, function
//!   --keep-stores       label today's code (unwind blocks kept); default:
//!                       the redesign's shape (one shared return block)
//!   --time N            instead of labels: compile N times each with no
//!                       policy, the policy, the policy with unwind
//!                       stores in hot bodies only, and the policy without
//!                       unwind stores; then with frame maps (the runtime's
//!                       check) and with `walk_frames` (records made from
//!                       the walk); print mean CPU and minimum wall times, the
//!                       time per body role and the object sizes (without the
//!                       frame-map section, printed apart)
//!   --per-site-labels   one label per site and value (no shadowing)
//!   --sites             also print every site with a missing value
//!   --opt-level N       0..=3 (default 3)
//!   --target T          x86_64 or aarch64 (default: this host)
//!   --json              one JSON object per module
//! ```

#[path = "support/cpu_time.rs"]
mod cpu_time;

use anyhow::{Context, Result, bail};
use cpu_time::cpu_time;
use mvvm_aot::frame_labels::{
    Body, DevOptions, FrameReport, Location, Role, SiteKind, SiteReport, compile_with,
};
use mvvm_aot::{CompileOptions, Policy, TargetArch};
use std::time::{Duration, Instant};

struct Args {
    policy: Policy,
    keep_stores: bool,
    time: Option<usize>,
    sites: bool,
    json: bool,
    opt_level: u8,
    per_site: bool,
    target: TargetArch,
    files: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        policy: Policy::Loop,
        keep_stores: false,
        time: None,
        sites: false,
        json: false,
        opt_level: 3,
        per_site: false,
        target: TargetArch::host().unwrap_or(TargetArch::X86_64),
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--policy" => {
                a.policy = match it.next().as_deref() {
                    Some("loop") => Policy::Loop,
                    Some("counter-loop") => Policy::CounterLoop { threshold_bits: 16 },
                    Some("function") => Policy::FunctionEntry,
                    other => bail!("unknown policy {other:?}"),
                }
            }
            "--keep-stores" => a.keep_stores = true,
            "--time" => a.time = Some(it.next().context("--time N")?.parse()?),
            "--sites" => a.sites = true,
            "--per-site-labels" => a.per_site = true,
            "--target" => {
                a.target = match it.next().as_deref() {
                    Some("x86_64") => TargetArch::X86_64,
                    Some("aarch64") => TargetArch::Aarch64,
                    other => bail!("unknown target {other:?}"),
                }
            }
            "--json" => a.json = true,
            "--opt-level" => a.opt_level = it.next().context("--opt-level N")?.parse()?,
            "--help" | "-h" => {
                println!("see the doc comment of crates/mvvm-aot/examples/frame_labels.rs");
                return Ok(a);
            }
            f => a.files.push(f.to_string()),
        }
    }
    Ok(a)
}

/// Counters over the sites of one kind.
#[derive(Default)]
struct Tally {
    sites: u64,
    no_ret_addr: u64,
    covered: u64,
    ambiguous_sites: u64,
    values: u64,
    located: u64,
    in_callee_saved: u64,
    in_stack: u64,
    in_other_reg: u64,
    miss_constant: u64,
    miss_label_lost: u64,
    miss_not_live: u64,
    miss_shadowed: u64,
    args: u64,
    args_located: u64,
    /// Bodies with at least one site, and those whose sites are all covered.
    bodies: u64,
    bodies_covered: u64,
}

/// Whether a location holds its value while the callee runs.
fn survives(kind: SiteKind, l: &Location) -> bool {
    match l {
        Location::Stack { .. } => true,
        // The probe trampoline is `preserve_all`: every register survives.
        Location::Reg { callee_saved, .. } => *callee_saved || kind == SiteKind::Probe,
    }
}

fn tally(sites: &[SiteReport], kind: SiteKind, body: Option<Body>, list: bool) -> Tally {
    let mut t = Tally::default();
    let mut per_body: std::collections::HashMap<(u32, u8), bool> = Default::default();
    for s in sites
        .iter()
        .filter(|s| s.kind == kind && body.is_none_or(|b| b == s.body))
    {
        t.sites += 1;
        if s.ret_addr.is_none() {
            t.no_ret_addr += 1;
        }
        let mut all = true;
        let mut ambiguous = false;
        for v in &s.values {
            let good: Vec<&Location> = v.locations.iter().filter(|l| survives(kind, l)).collect();
            if let Role::Arg(_) = v.role {
                t.args += 1;
                if !good.is_empty() {
                    t.args_located += 1;
                }
                continue;
            }
            t.values += 1;
            if good.len() > 1 {
                ambiguous = true;
            }
            match good.first() {
                Some(Location::Stack { .. }) => t.in_stack += 1,
                Some(Location::Reg { .. })
                    if good.iter().any(|l| {
                        matches!(
                            l,
                            Location::Reg {
                                callee_saved: true,
                                ..
                            }
                        )
                    }) =>
                {
                    t.in_callee_saved += 1
                }
                Some(Location::Reg { .. }) => t.in_other_reg += 1,
                None => {}
            }
            if good.is_empty() {
                all = false;
                if v.constant {
                    t.miss_constant += 1;
                } else if !v.label_seen {
                    t.miss_label_lost += 1;
                } else if v.shadowed {
                    t.miss_shadowed += 1;
                } else {
                    t.miss_not_live += 1;
                }
            } else {
                t.located += 1;
            }
        }
        let ok = all && s.ret_addr.is_some();
        *per_body.entry((s.func, s.body as u8)).or_insert(true) &= ok;
        if ok {
            t.covered += 1;
        } else if list {
            let missing: Vec<String> = s
                .values
                .iter()
                .filter(|v| !matches!(v.role, Role::Arg(_)))
                .filter(|v| !v.locations.iter().any(|l| survives(kind, l)))
                .map(|v| format!("{:?}{}", v.role, if v.constant { "=const" } else { "" }))
                .collect();
            println!(
                "  miss func {} {:?} @{:#x} ret={:?}: {}",
                s.func,
                s.body,
                s.offset,
                s.ret_addr,
                missing.join(" ")
            );
        }
        if ambiguous {
            t.ambiguous_sites += 1;
        }
    }
    t.bodies = per_body.len() as u64;
    t.bodies_covered = per_body.values().filter(|ok| **ok).count() as u64;
    t
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

fn print_tally(name: &str, what: &str, t: &Tally, json: bool) {
    if json {
        println!(
            "{{\"module\":\"{name}\",\"sites\":\"{what}\",\"count\":{},\"no_ret_addr\":{},\"covered\":{},\"ambiguous\":{},\"values\":{},\"located\":{},\"callee_saved\":{},\"stack\":{},\"other_reg\":{},\"miss_constant\":{},\"miss_label_lost\":{},\"miss_not_live\":{},\"miss_shadowed\":{},\"args\":{},\"args_located\":{},\"bodies\":{},\"bodies_covered\":{}}}",
            t.sites,
            t.no_ret_addr,
            t.covered,
            t.ambiguous_sites,
            t.values,
            t.located,
            t.in_callee_saved,
            t.in_stack,
            t.in_other_reg,
            t.miss_constant,
            t.miss_label_lost,
            t.miss_not_live,
            t.miss_shadowed,
            t.args,
            t.args_located,
            t.bodies,
            t.bodies_covered
        );
        return;
    }
    println!(
        "{name} {what}: {} sites, covered {:.1}% (bodies {}/{} fully), ambiguous {}, no ret addr {}; values {} located {:.1}% (callee-saved reg {}, stack {}, other reg {}); misses: const {}, label lost {}, shadowed or value gone {}, no range {}; args located {}/{}",
        t.sites,
        pct(t.covered, t.sites),
        t.bodies_covered,
        t.bodies,
        t.ambiguous_sites,
        t.no_ret_addr,
        t.values,
        pct(t.located, t.values),
        t.in_callee_saved,
        t.in_stack,
        t.in_other_reg,
        t.miss_constant,
        t.miss_label_lost,
        t.miss_shadowed,
        t.miss_not_live,
        t.args_located,
        t.args
    );
}

/// Bytes of the frame-map section of `object` (0 without one).
fn frames_section_bytes(object: &[u8]) -> Result<usize> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(object)?;
    Ok(file
        .section_by_name(mvvm_abi::object::FRAMES_SECTION)
        .map_or(0, |s| s.size() as usize))
}

fn timed(
    wasm: &[u8],
    opts: &CompileOptions,
    dev: &DevOptions,
    n: usize,
) -> Result<(Duration, Duration, usize, FrameReport)> {
    let mut best_wall = Duration::MAX;
    let mut cpu = Duration::ZERO;
    let mut size = 0;
    let mut report = FrameReport::default();
    for _ in 0..n {
        let c0 = cpu_time()?;
        let t0 = Instant::now();
        let (object, r) = compile_with(wasm, opts, dev)?;
        best_wall = best_wall.min(t0.elapsed());
        cpu += cpu_time()? - c0;
        size = object.len();
        report = r;
    }
    // CPU time comes in 10 ms ticks: the mean over the runs, not the
    // minimum, resolves small modules.
    Ok((cpu / n.max(1) as u32, best_wall, size, report))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    for file in &args.files {
        let wasm = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let name = std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let opts = CompileOptions {
            policy: args.policy,
            opt_level: args.opt_level,
            target: args.target,
            ..CompileOptions::default()
        };
        if let Some(n) = args.time {
            let none = CompileOptions {
                policy: Policy::None,
                ..opts
            };
            let mut rows = Vec::new();
            for (label, o, stores, hot_only) in [
                ("none", none, true, false),
                ("policy", opts, true, false),
                ("policy-stores-in-hot-bodies-only", opts, true, true),
                ("policy-no-unwind-stores", opts, false, false),
            ] {
                // `unwind_stores: true` with `frame_labels: false` is the
                // default compilation, which records no role times; the
                // role split comes from a labelled run below.
                let dev = DevOptions {
                    frame_labels: false,
                    unwind_stores: stores,
                    per_site_labels: false,
                    stores_in_hot_only: hot_only,
                    frame_map: false,
                    walk_frames: false,
                    ..DevOptions::default()
                };
                let (cpu, wall, size, _) = timed(&wasm, &o, &dev, n)?;
                rows.push((label, cpu, wall, size));
            }
            // The runtime-checked shapes: frame maps beside every store,
            // and records made from the walk where the maps allow (sizes
            // without the `.mvvm.frames` section, which a product format
            // would encode more compactly; its bytes are printed apart).
            let mut walk_rounds = [0; 4];
            for (label, dev) in [
                ("policy-frame-map", DevOptions::frame_map()),
                ("policy-walk-frames", DevOptions::walk_frames()),
            ] {
                let (cpu, wall, size, r) = timed(&wasm, &opts, &dev, n)?;
                let frames = frames_section_bytes(&compile_with(&wasm, &opts, &dev)?.0)?;
                println!("{name} {label}: .mvvm.frames {frames} B");
                rows.push((label, cpu, wall, size - frames));
                if dev.walk_frames {
                    walk_rounds = r.walk_rounds;
                }
            }
            println!(
                "{name} walk_frames: whole bodies and clones kept from compilation 1 / 2 / 3 / all stores: {walk_rounds:?}"
            );
            // One more compilation of each policy shape for the split per
            // body role (the report's times need a developer option on:
            // labels add a little work, so these are shares, not totals).
            let mut split = Vec::new();
            for stores in [true, false] {
                let dev = DevOptions {
                    frame_labels: true,
                    unwind_stores: stores,
                    per_site_labels: false,
                    stores_in_hot_only: false,
                    frame_map: false,
                    walk_frames: false,
                    ..DevOptions::default()
                };
                let (_, _, _, r) = timed(&wasm, &opts, &dev, 1)?;
                split.push(r.times);
            }
            let base = rows[0].1.as_secs_f64().max(1e-9);
            let base_wall = rows[0].2.as_secs_f64().max(1e-9);
            for (label, cpu, wall, size) in &rows {
                if args.json {
                    println!(
                        "{{\"module\":\"{name}\",\"compile\":\"{label}\",\"cpu_s\":{:.3},\"wall_s\":{:.3},\"object_bytes\":{size}}}",
                        cpu.as_secs_f64(),
                        wall.as_secs_f64()
                    );
                } else {
                    println!(
                        "{name} {label}: cpu {:.3}s ({:.2}x) wall {:.3}s ({:.2}x) object {size} B ({:.2}x)",
                        cpu.as_secs_f64(),
                        cpu.as_secs_f64() / base,
                        wall.as_secs_f64(),
                        wall.as_secs_f64() / base_wall,
                        *size as f64 / rows[0].3.max(1) as f64
                    );
                }
            }
            for (stores, t) in [true, false].iter().zip(&split) {
                let total = (t.whole_ns + t.hot_ns + t.resume_ns).max(1) as f64;
                println!(
                    "{name} role split (unwind stores {stores}): whole {:.0}% hot {:.0}% resume clones {:.0}% of {:.3}s in bodies; bodies {:?}",
                    100.0 * t.whole_ns as f64 / total,
                    100.0 * t.hot_ns as f64 / total,
                    100.0 * t.resume_ns as f64 / total,
                    total / 1e9,
                    t.bodies
                );
            }
            continue;
        }
        let dev = DevOptions {
            frame_labels: true,
            unwind_stores: args.keep_stores,
            per_site_labels: args.per_site,
            stores_in_hot_only: false,
            frame_map: false,
            walk_frames: false,
            ..DevOptions::default()
        };
        let (_, report) = compile_with(&wasm, &opts, &dev)?;
        for (what, kind, body) in [
            ("call sites (all bodies)", SiteKind::Call, None),
            ("call sites (hot bodies)", SiteKind::Call, Some(Body::Hot)),
            (
                "call sites (whole bodies)",
                SiteKind::Call,
                Some(Body::Whole),
            ),
            (
                "call sites (resume clones)",
                SiteKind::Call,
                Some(Body::Resume),
            ),
            ("probes (all bodies)", SiteKind::Probe, None),
            ("probes (hot bodies)", SiteKind::Probe, Some(Body::Hot)),
            (
                "probes (resume clones)",
                SiteKind::Probe,
                Some(Body::Resume),
            ),
        ] {
            let t = tally(&report.sites, kind, body, args.sites && body.is_none());
            print_tally(&name, what, &t, args.json);
        }
    }
    Ok(())
}
