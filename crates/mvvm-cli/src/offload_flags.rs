//! `-o ADDR -s PORT`: where a checkpoint is sent over TCP, shared by
//! `mvvm-checkpoint` (its snapshot) and `mvvm-restore` (the next snapshot
//! of the resumed run, for chains A → B → C).

use crate::snapshot_location::SnapshotLocation;
use clap::Args;

/// The original MVVM's offload flags. Both or neither; they conflict with
/// the tool's own snapshot-path flag (which names `offload_addr` and
/// `offload_port` in its `conflicts_with_all`).
#[derive(Debug, Clone, Args)]
pub struct OffloadFlags {
    /// Live migration: send the snapshot (for `mvvm-restore`, the next one
    /// of the resumed run) to a `mvvm-restore -i ADDR -e PORT` listening at
    /// ADDR (a name or an IP address), port `-s`. The connection is made
    /// at checkpoint time.
    #[arg(
        short = 'o',
        long = "offload-addr",
        value_name = "ADDR",
        requires = "offload_port"
    )]
    pub offload_addr: Option<String>,

    /// With `-o`: the port the receiving `mvvm-restore` listens on.
    #[arg(
        short = 's',
        long = "offload-port",
        value_name = "PORT",
        requires = "offload_addr"
    )]
    pub offload_port: Option<u16>,
}

impl OffloadFlags {
    /// `tcp://ADDR:PORT` when both flags were given.
    pub fn location(&self) -> Option<SnapshotLocation> {
        match (&self.offload_addr, self.offload_port) {
            (Some(addr), Some(port)) => Some(SnapshotLocation::connect(addr, port)),
            _ => None,
        }
    }
}
