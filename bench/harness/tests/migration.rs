//! `mvvm-bench migration` without root: the table, CSV and plot from a
//! fixture of the scripts' result lines, and one quick loopback run of
//! MVVM's two modes at 8 MiB through the real scripts, where CRIU is
//! either measured (root and a CRIU found without building one) or its
//! rows say why not.
//!
//! The quick run needs mvvm-aot, mvvm-checkpoint and mvvm-restore:
//! `$MVVM_TOOLS_DIR`, else the debug build next to this test's target
//! directory, else `target/debug` (`cargo build -p mvvm-cli` first; a
//! test never runs cargo). Without them it skips with the reason, except
//! in CI (`CI=true` or `MVVM_REQUIRE_ALL=1`), where it fails.

use mvvm_bench::criu::{self, CriuTool};
use mvvm_bench::migration::{self, Config, MigrationResults, MigrationRun};
use mvvm_bench::plot;
use mvvm_bench::tools::{MvvmTools, Paths};
use std::path::PathBuf;

#[path = "../../../crates/mvvm-cli/tests/checkpoint_support/require.rs"]
mod require;
use require::missing;

/// Result lines as the two scripts print them (one per mode, network and
/// size, two repetitions), as the harness would have collected them.
const FIXTURE: &[(&str, usize, &str)] = &[
    (
        migration::MVVM_STOP,
        1,
        "loopback    64 MiB  snapshot   67239936 bytes  sent   67239936 bytes  checkpoint+send   80.2 ms  downtime   110.0 ms  migration   110.0 ms  total     5142 ms  no-key  output ok",
    ),
    (
        migration::MVVM_STOP,
        2,
        "loopback    64 MiB  snapshot   67239936 bytes  sent   67239936 bytes  checkpoint+send   90.0 ms  downtime   130.0 ms  migration   130.0 ms  total     5142 ms  no-key  output ok",
    ),
    (
        migration::MVVM_STOP,
        1,
        "loopback   256 MiB  snapshot  268566528 bytes  sent  268566528 bytes  checkpoint+send  300.0 ms  downtime   420.0 ms  migration   420.0 ms  total     6000 ms  no-key  output ok",
    ),
    (
        migration::MVVM_LIVE,
        1,
        "loopback    64 MiB  snapshot    9830551 bytes  sent   69000000 bytes  checkpoint+send    0.491 ms  downtime    3.042 ms  migration    130.16 ms  total     5193 ms  live rounds [64.1] MiB  final 1245185 B  transfer 127.6 ms  pause 0.488 ms  no-key  output ok",
    ),
    (
        migration::CRIU_STOP,
        1,
        "criu        64 MiB  pages   67227648 bytes  sent   67233153 bytes  dump      805 ms  restore    611 ms  downtime     1417 ms  migration     1417 ms  rest of run   4799 ms  output ok",
    ),
    (
        migration::CRIU_STOP,
        1,
        "criu       256 MiB  pages  268435456 bytes  sent  268440961 bytes  dump     2805 ms  restore    900 ms  downtime     3705 ms  migration     3705 ms  rest of run   4799 ms  output ok",
    ),
];

fn fixture() -> MigrationResults {
    let mut r = MigrationResults::default();
    for (mode, rep, line) in FIXTURE {
        let l = migration::parse_line(line).unwrap_or_else(|| panic!("fixture line: {line}"));
        r.runs.push(MigrationRun {
            mode: (*mode).to_owned(),
            network: "loopback".to_owned(),
            mib: l.mib,
            rep: *rep,
            downtime_ms: l.downtime_ms,
            migration_ms: l.migration_ms,
            sent_bytes: l.sent_bytes,
        });
    }
    r.skipped.push(migration::Skipped {
        mode: migration::CRIU_PRE.to_owned(),
        network: "loopback".to_owned(),
        reason: "criu check --feature mem_dirty_track fails".to_owned(),
    });
    r
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mvvm-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_report_gives_medians_ranges_and_why_a_mode_did_not_run() {
    let r = fixture();
    let md = migration::markdown(&r, "t");
    // Two repetitions at 64 MiB: the median of 110 and 130.
    assert!(
        md.contains("| MVVM stop-and-copy | loopback | 64 | 120 | 110-130 | 120 | 64.1 | 2 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| MVVM pre-copy (--live) | loopback | 64 | 3.04 | 3.04-3.04 | 130 | 65.8 | 1 |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| CRIU stop-and-copy | loopback | 256 | 3705 |"),
        "{md}"
    );
    assert!(md.contains("| CRIU pre-copy (pre-dump) | loopback | - | not run: criu check --feature mem_dirty_track fails |"), "{md}");
    // Pre-copy's sizes without runs get no row.
    assert!(
        !md.contains("| MVVM pre-copy (--live) | loopback | 256 |"),
        "{md}"
    );

    let csv = migration::csv(&r);
    assert_eq!(csv.lines().count(), FIXTURE.len() + 1);
    assert!(
        csv.contains("MVVM stop-and-copy,loopback,64,2,130,130,67239936"),
        "{csv}"
    );

    // Only where both modes ran.
    let q = migration::ratios(&r, migration::MVVM_LIVE);
    assert_eq!(q.len(), 1);
    assert!((q[&64] - 1417.0 / 3.042).abs() < 1e-9);

    let lines = r.downtime_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].0, "MVVM stop-and-copy, loopback");
    assert_eq!(lines[0].1, vec![(64.0, 120.0), (256.0, 420.0)]);
    let dir = temp_dir("migration-report");
    let svg_path = dir.join("migration.svg");
    assert!(plot::downtime_plot(&svg_path, &lines).unwrap());
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.contains("MVVM pre-copy (--live), loopback") && svg.contains("median, log scale"),
        "3 ms to 3.7 s wants a log axis"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The MVVM tools for the quick run, or why there are none.
fn tools() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("MVVM_TOOLS_DIR") {
        dirs.push(d.into());
    }
    // target/debug/deps/migration-HASH -> target/debug
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(PathBuf::from))
    {
        dirs.push(d);
    }
    dirs.push(Paths::from_build().root.join("target").join("debug"));
    for d in &dirs {
        if let Some(t) = MvvmTools::in_dir(d)
            && t.restore.is_some()
            && t.responds()
        {
            return Ok(d.clone());
        }
    }
    Err(format!(
        "no mvvm-aot, mvvm-checkpoint and mvvm-restore that answer --version in {} \
         (cargo build -p mvvm-cli, or set MVVM_TOOLS_DIR)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[test]
fn a_quick_loopback_run_measures_mvvm_and_says_why_criu_did_not_run() {
    const TEST: &str = "a_quick_loopback_run_measures_mvvm_and_says_why_criu_did_not_run";
    let dir = match tools() {
        Ok(d) => d,
        Err(why) => {
            missing(TEST, &why);
            return;
        }
    };
    let paths = Paths::from_build();
    // Never builds CRIU (it may install packages); a CRIU already there
    // runs as well, as root.
    let criu = match criu::find(&paths, None, false) {
        CriuTool::Ready { path, .. } => Ok(path),
        CriuTool::Unavailable(why) => Err(why),
        CriuTool::Off => Err("off".to_owned()),
    };
    let work = temp_dir("migration-quick");
    let cfg = Config {
        sizes: vec![8],
        reps: 1,
        mvvm_dir: Some(dir),
        mvvm_missing: String::new(),
        criu: criu.clone(),
        netns: false,
        work: work.clone(),
        // Away from the default of `mvvm-bench migration`.
        port: 8390,
    };
    let mut steps = 0;
    let r = migration::run(&paths.root, &cfg, &mut |_| steps += 1).expect("the scripts run");
    std::fs::remove_dir_all(&work).unwrap();
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    for mode in [migration::MVVM_STOP, migration::MVVM_LIVE] {
        let runs = r.of(mode, migration::LOOPBACK, 8);
        assert_eq!(runs.len(), 1, "{mode}: {r:#?}");
        let x = runs[0];
        assert!(x.downtime_ms > 0.0 && x.migration_ms > 0.0, "{x:?}");
        // The whole 8 MiB filled with non-zero data travels.
        assert!(x.sent_bytes >= 8 << 20, "{x:?}");
    }
    let stop = r.of(migration::MVVM_STOP, migration::LOOPBACK, 8)[0];
    assert_eq!(stop.migration_ms, stop.downtime_ms);
    let live = r.of(migration::MVVM_LIVE, migration::LOOPBACK, 8)[0];
    assert!(live.migration_ms >= live.downtime_ms * 0.5, "{live:?}");
    // MVVM between namespaces was not asked for: a row says so.
    assert!(
        r.skipped
            .iter()
            .any(|s| s.mode == migration::MVVM_STOP && s.network == migration::NETNS),
        "{:#?}",
        r.skipped
    );
    match criu {
        Ok(_) => {
            assert_eq!(steps, 3);
            assert_eq!(r.of(migration::CRIU_STOP, migration::LOOPBACK, 8).len(), 1);
        }
        Err(why) => {
            assert_eq!(steps, 2);
            for mode in [
                migration::CRIU_STOP,
                migration::CRIU_PRE,
                migration::CRIU_LAZY,
            ] {
                let s = r
                    .skipped
                    .iter()
                    .find(|s| s.mode == mode && s.network == migration::LOOPBACK)
                    .unwrap_or_else(|| panic!("no row for {mode}: {:#?}", r.skipped));
                assert_eq!(s.reason, why.trim());
            }
            if !nix::unistd::geteuid().is_root() {
                assert!(why.contains("not root"), "{why}");
            }
            let md = migration::markdown(&r, "quick");
            assert!(
                md.contains(&format!(
                    "| {} | loopback | - | not run: {}",
                    migration::CRIU_STOP,
                    why.trim()
                )),
                "{md}"
            );
        }
    }
}
