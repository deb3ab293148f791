//! Migration between two network namespaces joined by a veth pair
//! (`scripts/netns/downtime.sh --mode netns`): the sender runs in one
//! namespace, the listening receiver in the other, at 16 MiB of guest
//! memory; the migrated output must equal an uninterrupted run and the
//! downtime is printed. Needs root and `ip netns`: skipped with the reason
//! printed otherwise (the script exits 77 then).

use anyhow::{Context, Result, ensure};
use std::path::Path;
use std::process::Command;

/// Exit status of the script when the network mode cannot run here.
const SKIPPED: i32 = 77;

#[test]
fn downtime_between_network_namespaces() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = Path::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .parent()
        .context("binary directory")?;
    let out = Command::new("timeout")
        .arg("120")
        .arg(root.join("scripts/netns/downtime.sh"))
        .args(["--mode", "netns", "--sizes", "16", "--bin"])
        .arg(bin)
        .env_remove("MVVM_LOG")
        .output()
        .context("cannot run scripts/netns/downtime.sh")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIPPED) {
        eprintln!("skipped: {}", stderr.trim());
        return Ok(());
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
    ensure!(
        line.contains("downtime") && line.ends_with("output ok"),
        "{line}"
    );
    eprintln!("{line}");
    Ok(())
}
