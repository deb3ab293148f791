//! Logging set-up: `tracing` to stderr, filtered by `MVVM_LOG`
//! (`MVVM_LOG=debug`, `MVVM_LOG=mvvm_rt=trace`, ...). Off by default
//! except warnings, so a guest's stderr stays its own.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; `verbose` forces the `debug` level.
pub fn init(verbose: bool) {
    let filter = if verbose {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_env("MVVM_LOG").unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
