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

    /// With `-o`/`-s`: pre-copy live migration. When the checkpoint's
    /// trigger fires the program keeps running while its whole memory is
    /// sent, then rounds of the 64 KiB chunks it wrote meanwhile, until a
    /// round is small (under about 5 ms to send, or 4 chunks), stops
    /// shrinking, or `--max-rounds`; only then does it stop, and only the
    /// last chunks written go with the stopped part. Downtime then follows
    /// what the program writes, not its memory size. The receiver is the
    /// usual `mvvm-restore -i ADDR -e PORT`. Not with `--every`.
    #[arg(long = "live", requires = "offload_addr")]
    pub live: bool,

    /// With `--live`: the most pre-copy rounds, the first (whole memory)
    /// included (1 to 64; default 8).
    #[arg(long = "max-rounds", value_name = "N", requires = "live",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_rounds: Option<u32>,
}

impl OffloadFlags {
    /// The pre-copy settings when `--live` was given.
    pub fn live_options(&self) -> Option<mvvm_rt::checkpoint::LiveOptions> {
        self.live.then(|| {
            let mut o = mvvm_rt::checkpoint::LiveOptions::default();
            if let Some(n) = self.max_rounds {
                o.max_rounds = n;
            }
            o
        })
    }

    /// `tcp://ADDR:PORT` when both flags were given.
    pub fn location(&self) -> Option<SnapshotLocation> {
        match (&self.offload_addr, self.offload_port) {
            (Some(addr), Some(port)) => Some(SnapshotLocation::connect(addr, port)),
            _ => None,
        }
    }
}
