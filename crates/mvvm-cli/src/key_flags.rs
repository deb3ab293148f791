//! `--key FILE`, `--new-key FILE` (both tools) and `--insecure`
//! (`mvvm-restore`): the shared secret that authenticates snapshot
//! transfers and seals snapshot files (see `mvvm_snapshot::seal` and
//! docs/security.md).

use crate::exit::Exit;
use anyhow::{Context, Result};
use clap::Args;
use mvvm_snapshot::seal::SealKey;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The key flags of both tools.
#[derive(Debug, Clone, Args)]
pub struct KeyFlags {
    /// Authenticate with the shared secret in FILE (at least 32 bytes: hex
    /// digits as `--new-key` writes them, or raw bytes; a regular file
    /// readable or writable by group or others is refused: chmod 600).
    /// Over TCP both sides first prove they hold the key (fresh nonces
    /// from both: a replayed session is refused), then every snapshot
    /// byte travels encrypted and authenticated; a snapshot file or
    /// stream is written sealed (`mvvm-checkpoint`) or must be sealed
    /// (`mvvm-restore`: an unsealed, altered or truncated one is refused,
    /// exit 125, nothing run; a sealed file is read as a stream, memory
    /// copied rather than mapped). Not with `--every` or `--incremental`
    /// (sealed snapshots are single and full).
    #[arg(long = "key", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Write a fresh random 256-bit key to FILE (64 hex digits, mode 0600;
    /// an existing file is never replaced) and exit. Copy it to the other
    /// machine over a channel you trust (e.g. scp) and give both sides
    /// `--key FILE`.
    #[arg(long = "new-key", value_name = "FILE", exclusive = true)]
    pub new_key: Option<PathBuf>,
}

impl KeyFlags {
    /// The key of `--key`, loaded and checked; `None` without the flag.
    pub fn load(&self) -> Result<Option<SealKey>> {
        self.key
            .as_deref()
            .map(|p| SealKey::load(p).context("cannot use the key given with --key"))
            .transpose()
    }
}

/// `mvvm-restore --insecure`.
#[derive(Debug, Clone, Args)]
pub struct InsecureFlag {
    /// Allow listening (`-i ADDR -e PORT`) on a non-loopback address
    /// without `--key`: anyone who can reach the port can then feed this
    /// process a snapshot, i.e. run any code with the guest's rights.
    /// Without `--key` and without this flag, a non-loopback listening
    /// address is refused (exit 125) before anything is bound.
    #[arg(long = "insecure", conflicts_with = "key")]
    pub insecure: bool,
}

/// `--new-key FILE` on the command line: parses it alone (the tools'
/// other required flags, `-t` first, make no sense with it: clap cannot
/// waive a required flag for an exclusive one), writes the key and returns
/// the exit code: 0, 125 when the key cannot be written, 2 on a usage
/// error. `None` when `--new-key` was not given: parse as usual.
pub fn new_key_command(tool: &'static str) -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let asked = args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == "--new-key" || a.starts_with("--new-key=")
    });
    if !asked {
        return None;
    }
    let cmd = clap::Command::new(tool)
        .about("Write a fresh random 256-bit key (64 hex digits, mode 0600) and exit")
        .arg(
            clap::Arg::new("new_key")
                .long("new-key")
                .value_name("FILE")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        );
    let matches = match cmd.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    let path = matches.get_one::<PathBuf>("new_key")?;
    Some(match write_new_key(tool, path) {
        Ok(exit) => exit.into(),
        Err(e) => crate::exit::report(tool, &e).into(),
    })
}

/// `--new-key FILE`: writes the key and says what to do with it.
pub fn write_new_key(tool: &str, path: &Path) -> Result<Exit> {
    SealKey::write_new(path).context("cannot write a new key")?;
    eprintln!(
        "{tool}: wrote a new 256-bit key to {} (mode 0600); give both sides --key {}",
        path.display(),
        path.display()
    );
    Ok(Exit::Guest(0))
}
