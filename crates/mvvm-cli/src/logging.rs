//! Logging set-up: `tracing` to stderr, filtered by `MVVM_LOG`
//! (`MVVM_LOG=debug`, `MVVM_LOG=mvvm_rt=trace`, ...). Off by default
//! except warnings, so a guest's stderr stays its own.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber; `verbose` forces the `debug` level.
pub fn init(verbose: bool) {
    init_with(verbose, false);
}

/// Installs the subscriber; `verbose` forces the `debug` level and
/// `probes` (`-i`) makes sure the runtime's checkpoint log (each probe
/// taken, each frame saved or restored, at `info`) is shown even when
/// `MVVM_LOG` is not set.
pub fn init_with(verbose: bool, probes: bool) {
    let filter = if verbose {
        EnvFilter::new("debug")
    } else {
        match EnvFilter::try_from_env("MVVM_LOG") {
            Ok(f) => f,
            Err(_) if probes => EnvFilter::new("warn,mvvm_rt=info"),
            Err(_) => EnvFilter::new("warn"),
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person watching: logs piped to a file or a
        // test harness stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Whether the runtime's checkpoint events at `info` would be shown (so
/// `MVVM_LOG=debug` turns on probe logging like `-i` does).
pub fn checkpoint_log_enabled() -> bool {
    tracing::enabled!(target: "mvvm_rt::checkpoint", tracing::Level::INFO)
}
