//! What the compile-time examples (`frame_labels`, `resume_clones`)
//! measure a compilation by.

use anyhow::{Context, Result};
use std::time::Duration;

/// User+system CPU time of this process so far (from /proc/self/stat,
/// in clock ticks of 10 ms).
pub fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}
