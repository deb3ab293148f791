//! Running a guest program to its end: load the object, set up WASI, call
//! `_start` on a thread whose stack is large enough for the wasm stack
//! limit, and turn the outcome into an exit status.

use crate::exit::Exit;
use crate::guest_flags::GuestFlags;
use anyhow::{Context, Result};
use mvvm_rt::wasi::{Preopen, WasiConfig};

/// Stack the host keeps for itself on the guest thread, beyond the wasm
/// stack limit: host calls (WASI) and the signal handler run there.
const HOST_STACK_HEADROOM: usize = 8 << 20;

/// Loads `aot` and runs it as a WASI command with the given flags.
pub fn run_program(
    aot: &[u8],
    guest: &GuestFlags,
    program: &str,
    max_wasm_stack_mib: usize,
) -> Result<Exit> {
    let module = mvvm_rt::Module::from_aot(aot).context("cannot load the program")?;
    let mut args = vec![program.to_owned()];
    args.extend(guest.guest_args());
    let config = WasiConfig {
        args,
        env: guest.guest_env()?,
        preopens: guest
            .preopens()?
            .into_iter()
            .map(|(host, guest)| Preopen { host, guest })
            .collect(),
        tcp_listeners: guest.tcplisten.clone(),
    };
    let max_stack = max_wasm_stack_mib
        .checked_mul(1 << 20)
        .context("--max-wasm-stack is too large")?;
    let outcome = std::thread::Builder::new()
        .name("guest".into())
        .stack_size(max_stack + HOST_STACK_HEADROOM)
        .spawn(move || mvvm_rt::wasi::run_command(&module, config, max_stack))
        .context("cannot start the guest thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the guest thread panicked"))?;
    match outcome {
        Ok(code) => Ok(Exit::Guest(code)),
        Err(mvvm_rt::wasi::WasiRunError::Trap(trap)) => {
            eprintln!("{program}: {trap}");
            Ok(Exit::Trap)
        }
        Err(e) => Err(e).context("cannot run the program"),
    }
}
