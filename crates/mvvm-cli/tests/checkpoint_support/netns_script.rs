//! `scripts/netns/downtime.sh` in network-namespace mode, as the migration
//! tests run it: one size, the debug tools, the script's own checks (the
//! migrated output equals an uninterrupted run's), and its result line.

use super::require;
use anyhow::{Context, Result, ensure};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Exit status of the script when the network mode cannot run here.
const SKIPPED: i32 = 77;

/// Runs the script with `--mode netns --bin <debug tools>` and `args`,
/// killed after `timeout_secs`; returns its `netns` result line, or `None`
/// when the mode cannot run here (no root, no `ip netns`: a failure under
/// CI, see [`require::missing`], with `what` naming the test).
pub fn netns_line<A: AsRef<OsStr>>(
    args: &[A],
    timeout_secs: u32,
    what: &str,
) -> Result<Option<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = Path::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .parent()
        .context("binary directory")?;
    let out = Command::new("timeout")
        .arg(timeout_secs.to_string())
        .arg(root.join("scripts/netns/downtime.sh"))
        .args(["--mode", "netns", "--bin"])
        .arg(bin)
        .args(args)
        .env_remove("MVVM_LOG")
        .output()
        .context("cannot run scripts/netns/downtime.sh")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIPPED) {
        require::missing(what, stderr.trim());
        return Ok(None);
    }
    ensure!(
        out.status.success(),
        "downtime.sh failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("netns"))
        .with_context(|| format!("no netns result:\n{stdout}\n{stderr}"))?;
    ensure!(line.ends_with("output ok"), "{line}");
    eprintln!("{line}");
    Ok(Some(line.to_owned()))
}
