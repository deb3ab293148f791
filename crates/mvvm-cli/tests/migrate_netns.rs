//! Migration between two network namespaces joined by a veth pair
//! (`scripts/netns/downtime.sh --mode netns`): the sender runs in one
//! namespace, the listening receiver in the other, at 16 MiB of guest
//! memory; the migrated output must equal an uninterrupted run and the
//! downtime is printed; once without a key (the receiver then needs
//! `--insecure`: its address is not loopback) and once with `--key` on both
//! sides. Needs root and `ip netns`: skipped with the reason printed
//! otherwise (the script exits 77 then), except in CI, where it fails
//! (`.ci/run` runs as root and `scripts/setup.sh` installs `iproute2`).

#[path = "checkpoint_support/netns_script.rs"]
mod netns_script;
#[path = "checkpoint_support/require.rs"]
mod require;

use anyhow::{Result, ensure};
use std::path::Path;
use std::process::Command;

/// Runs the script in network-namespace mode at 16 MiB with `extra`
/// arguments; returns its netns result line, or `None` when skipped.
fn netns_run(extra: &[std::ffi::OsString]) -> Result<Option<String>> {
    let mut args: Vec<std::ffi::OsString> = vec!["--sizes".into(), "16".into()];
    args.extend_from_slice(extra);
    let line = netns_script::netns_line(&args, 120, "the network-namespace migration")?;
    if let Some(line) = &line {
        ensure!(line.contains("downtime"), "{line}");
    }
    Ok(line)
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
