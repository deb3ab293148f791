//! Migration between two network namespaces joined by a veth pair
//! (`scripts/netns/downtime.sh --mode netns`): the sender runs in one
//! namespace, the listening receiver in the other, at 16 MiB of guest
//! memory; the migrated output must equal an uninterrupted run and the
//! downtime is printed; once without a key (the receiver then needs
//! `--insecure`: its address is not loopback) and once with `--key` on both
//! sides. Needs root and `ip netns`: skipped with the reason printed
//! otherwise (the script exits 77 then), except in CI, where it fails
//! (`.ci/run` runs as root and `scripts/setup.sh` installs `iproute2`).

#[path = "checkpoint_support/require.rs"]
mod require;

use anyhow::{Context, Result, ensure};
use std::path::Path;
use std::process::Command;

/// Exit status of the script when the network mode cannot run here.
const SKIPPED: i32 = 77;

/// Runs the script in network-namespace mode at 16 MiB with `extra`
/// arguments; returns its netns result line, or `None` when skipped.
fn netns_run(extra: &[std::ffi::OsString]) -> Result<Option<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = Path::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .parent()
        .context("binary directory")?;
    let out = Command::new("timeout")
        .arg("120")
        .arg(root.join("scripts/netns/downtime.sh"))
        .args(["--mode", "netns", "--sizes", "16", "--bin"])
        .arg(bin)
        .args(extra)
        .env_remove("MVVM_LOG")
        .output()
        .context("cannot run scripts/netns/downtime.sh")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIPPED) {
        require::missing("the network-namespace migration", stderr.trim());
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
    ensure!(
        line.contains("downtime") && line.ends_with("output ok"),
        "{line}"
    );
    eprintln!("{line}");
    Ok(Some(line.to_owned()))
}

/// Without a key the receiver listens on the veth address with
/// `--insecure` (a non-loopback address is refused otherwise).
#[test]
fn downtime_between_network_namespaces() -> Result<()> {
    if let Some(line) = netns_run(&[])? {
        ensure!(line.contains("no-key"), "{line}");
    }
    Ok(())
}

/// The same with `--key` on both sides: authenticated and encrypted.
#[test]
fn keyed_migration_between_network_namespaces() -> Result<()> {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("key");
    let st = Command::new(env!("CARGO_BIN_EXE_mvvm-restore"))
        .arg("--new-key")
        .arg(&key)
        .status()?;
    ensure!(st.success(), "--new-key failed");
    let line = netns_run(&["--key".into(), key.clone().into_os_string()]);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(line) = line? {
        ensure!(line.contains(" key "), "{line}");
    }
    Ok(())
}
