//! Glue between WASI and instances: filled in once the runtime core's
//! public API exists.

/// Running a WASI command failed before it could exit.
#[derive(Debug, thiserror::Error)]
pub enum WasiRunError {
    /// WASI could not be set up.
    #[error(transparent)]
    Setup(#[from] super::WasiSetupError),
}

/// Placeholder until the core API lands.
pub fn run_command() {}
