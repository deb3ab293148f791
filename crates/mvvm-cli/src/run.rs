//! How the tools run a guest: its WASI world from the flags, and a thread
//! whose stack is large enough for the wasm stack limit. Shared by the
//! checkpoint and restore commands (a run without a trigger is the plain
//! runner: `mvvm_wasi::Command::run` with `Trigger::None`).

use crate::guest_flags::GuestFlags;
use anyhow::{Context, Result};
use mvvm_wasi::WasiConfig;

/// Stack the host keeps for itself on the guest thread, beyond the wasm
/// stack limit: host calls (WASI), snapshot writing and the signal handler
/// run there.
const HOST_STACK_HEADROOM: usize = 8 << 20;

/// The guest's WASI world from the command-line flags; `program` is its
/// `argv[0]`.
pub fn wasi_config(guest: &GuestFlags, program: &str) -> Result<WasiConfig> {
    let mut args = vec![program.to_owned()];
    args.extend(guest.guest_args());
    Ok(WasiConfig {
        args,
        env: guest.guest_env()?,
        preopens: guest.grants.preopens()?,
        tcp_listeners: guest.grants.tcplisten.clone(),
        net: guest.grants.net(),
        tcp_repair: guest.grants.tcp_repair(),
    })
}

/// `--max-wasm-stack` (MiB) in bytes.
pub fn max_stack_bytes(mib: usize) -> Result<usize> {
    mib.checked_mul(1 << 20)
        .filter(|b| b.checked_add(HOST_STACK_HEADROOM).is_some())
        .context("--max-wasm-stack is too large")
}

/// Runs `f` on a thread whose stack holds `max_stack` bytes of wasm stack
/// plus the host's headroom, and waits for it. Wasm code runs on the
/// calling native stack, so the main thread's 8 MiB would not do.
pub fn on_guest_thread<T, F>(max_stack: usize, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name("guest".into())
        .stack_size(max_stack + HOST_STACK_HEADROOM)
        .spawn(f)
        .context("cannot start the guest thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the guest thread panicked"))
}
