//! `--sync`: how durable each snapshot file is when a tool reports it
//! written (`docs/migration.md`, "Durability of snapshot files").

use clap::ValueEnum;
use mvvm_snapshot::SyncMode;

/// The values of `--sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SyncFlag {
    /// fsync the file, then its directory after the rename: the snapshot
    /// survives a power loss once reported.
    #[default]
    Full,
    /// fdatasync the file (its data and what is needed to read it back,
    /// not its timestamps), then fsync the directory.
    Data,
    /// No sync: a crash of the tool never leaves a half snapshot under the
    /// final name (temporary name, rename), a power loss may.
    None,
}

impl From<SyncFlag> for SyncMode {
    fn from(f: SyncFlag) -> SyncMode {
        match f {
            SyncFlag::Full => SyncMode::Full,
            SyncFlag::Data => SyncMode::Data,
            SyncFlag::None => SyncMode::None,
        }
    }
}
