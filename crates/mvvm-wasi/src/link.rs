//! Glue between WASI and instances: host functions for every import of
//! `wasi_snapshot_preview1` ([`add_to_linker`]) and the check that a
//! module imports nothing else ([`check_imports`]) but, for wasi-threads,
//! `wasi` `thread-spawn` and its memory (see `threads.rs`).
//!
//! The [`WasiCtx`] lives in the store's host data (a [`WasiHost`], behind
//! a lock that every thread of the program shares), so that each host
//! function reaches it together with the caller's memory 0 through
//! [`Caller::data_and_memory_access`], and so that it outlives the run (a
//! checkpoint reads its state from there). A shared memory is reached by
//! copying ([`GuestMem::shared`]), never as a slice.

use super::func::{WASI_MODULE, WasiFunc};
use super::mem::GuestMem;
use super::threads::{ExtraImports, THREAD_SPAWN, THREADS_MODULE, WasiHost, thread_spawn_type};
use super::{WasiSetupError, WasiStop};
use mvvm_abi::ImportKind;
use mvvm_rt::{
    Caller, Extern, Func, HostError, InstantiationError, Linker, MemoryAccess, Module, RunError,
    Store, Trap, Val,
};

/// Running a WASI command failed before the program could exit by itself.
#[derive(Debug, thiserror::Error)]
pub enum WasiRunError {
    /// WASI could not be set up (a preopen or a listener).
    #[error(transparent)]
    Setup(#[from] WasiSetupError),
    /// The module imports something WASI does not provide, or with the
    /// wrong type.
    #[error("unlinkable: {0}")]
    Unlinkable(String),
    /// Instantiation failed (a segment out of bounds, a resource limit).
    #[error("instantiation failed")]
    Instantiate(#[source] InstantiationError),
    /// The program trapped (in its start function or in `_start`).
    #[error("wasm trap: {0}")]
    Trap(Trap),
    /// A host function failed, or the runtime refused the call.
    #[error(transparent)]
    Call(RunError),
}

/// Checks every import of `module` against WASI preview1: each must be a
/// function of `wasi_snapshot_preview1` that exists and has its signature,
/// or, for wasi-threads, `wasi` `thread-spawn` (then the module must
/// import a shared memory and export `wasi_thread_start`), or its one
/// memory. The error names the offending import.
pub fn check_imports(module: &Module) -> Result<(), WasiRunError> {
    extra_imports(module).map(|_| ())
}

/// [`check_imports`], with what the module imports besides WASI functions.
pub(crate) fn extra_imports(module: &Module) -> Result<ExtraImports, WasiRunError> {
    let meta = module.meta();
    let mut extra = ExtraImports::default();
    for imp in &meta.imports {
        let what = format!("`{}.{}`", imp.module, imp.name);
        if let ImportKind::Memory(ty) = imp.kind {
            if extra.memory.is_some() {
                return Err(WasiRunError::Unlinkable(format!(
                    "import {what}: a second memory (one is provided)"
                )));
            }
            extra.memory = Some((imp.module.clone(), imp.name.clone(), ty));
            continue;
        }
        if imp.module == THREADS_MODULE && imp.name == THREAD_SPAWN {
            let declared = match imp.kind {
                ImportKind::Func(ty) => meta.types.get(ty as usize),
                _ => None,
            };
            if declared != Some(&thread_spawn_type()) {
                return Err(WasiRunError::Unlinkable(format!(
                    "import {what} has type {declared:?}, wasi-threads defines (i32) -> i32"
                )));
            }
            extra.threads = true;
            continue;
        }
        if imp.module != WASI_MODULE {
            return Err(WasiRunError::Unlinkable(format!(
                "import {what} is from unknown module `{}` (only `{WASI_MODULE}`, \
                 `{THREADS_MODULE}.{THREAD_SPAWN}` and a memory are provided)",
                imp.module
            )));
        }
        let Some(f) = WasiFunc::from_name(&imp.name) else {
            return Err(WasiRunError::Unlinkable(format!(
                "import {what} is not a WASI preview1 function"
            )));
        };
        let ImportKind::Func(ty) = imp.kind else {
            return Err(WasiRunError::Unlinkable(format!(
                "import {what} must be a function"
            )));
        };
        let declared = meta.types.get(ty as usize);
        if declared != Some(&f.signature()) {
            return Err(WasiRunError::Unlinkable(format!(
                "import {what} has type {declared:?}, WASI defines {:?}",
                f.signature()
            )));
        }
    }
    extra.check(module)?;
    Ok(extra)
}

/// The host function implementing `func` on the store's [`WasiCtx`].
fn host_func(store: &mut Store, func: WasiFunc) -> Func {
    Func::host(
        store,
        func.signature(),
        move |caller: &mut Caller<'_>, args: &[Val], results: &mut [Val]| {
            let mut raw = [0u64; 16];
            let n = args.len().min(raw.len());
            for (slot, v) in raw.iter_mut().zip(args) {
                *slot = match *v {
                    Val::I32(x) => x as u32 as u64,
                    Val::I64(x) => x as u64,
                    _ => {
                        return Err(HostError::Message(format!(
                            "{}: non-integer argument",
                            func.name()
                        )));
                    }
                };
            }
            // Neither needs the context: no lock (`proc_exit` must not
            // wait for a thread blocked in a call).
            match func {
                WasiFunc::ProcExit => return Err(HostError::Exit(raw[0] as u32 as i32)),
                WasiFunc::SchedYield => {
                    std::thread::yield_now();
                    if let Some(r) = results.first_mut() {
                        *r = Val::I32(0);
                    }
                    return Ok(());
                }
                _ => {}
            }
            let mut out = [0u64; 1];
            let outcome = {
                let (host, mem) = caller.data_and_memory_access::<WasiHost>();
                let host = host.ok_or_else(|| {
                    HostError::Message(format!("{}: the store holds no WASI context", func.name()))
                })?;
                let shared;
                let mut m = match mem {
                    Some(MemoryAccess::Shared(h)) => {
                        shared = h;
                        GuestMem::shared(&shared)
                    }
                    Some(MemoryAccess::Exclusive(bytes)) => GuestMem::new(bytes),
                    None => GuestMem::new(&mut []),
                };
                // A thread's sleep takes no lock (see
                // `poll_relative_clocks`); everything else does.
                let lock_free = match func {
                    WasiFunc::PollOneoff if host.program.is_some() => {
                        crate::interrupt::clear_mark();
                        crate::misc::poll_relative_clocks(&mut m, &raw[..n])
                    }
                    _ => None,
                };
                match lock_free {
                    Some(_) if crate::interrupt::take_mark() => Err(WasiStop::Interrupted),
                    Some(r) => {
                        out[0] = u64::from(r.err().unwrap_or(crate::Errno::SUCCESS).0);
                        Ok(())
                    }
                    None => host.lock().call_guest(func, &mut m, &raw[..n], &mut out),
                }
            };
            match outcome {
                Ok(()) => {
                    if let Some(r) = results.first_mut() {
                        *r = Val::I32(out[0] as u32 as i32);
                    }
                    Ok(())
                }
                Err(WasiStop::Exit(code)) => Err(HostError::Exit(code)),
                Err(WasiStop::Trap(msg)) => Err(HostError::Message(msg)),
                Err(WasiStop::Interrupted) => {
                    if caller.interrupt_for_checkpoint() {
                        Ok(())
                    } else {
                        Err(HostError::Message(format!(
                            "{}: interrupted outside of a checkpoint session",
                            func.name()
                        )))
                    }
                }
            }
        },
    )
}

/// Defines every WASI preview1 function in `linker`, as host functions of
/// `store` working on the [`WasiCtx`] of the [`WasiHost`] in the store's
/// data (put there with `store.set_data(host)` or `set_host_state`).
pub fn add_to_linker(linker: &mut Linker, store: &mut Store) {
    for &f in WasiFunc::ALL {
        let func = host_func(store, f);
        linker.define(WASI_MODULE, f.name(), Extern::Func(func));
    }
}

/// A call into wasm of a plain run ended with `e`: an exit is the run's
/// end, the rest errors.
pub(crate) fn from_run_error(e: RunError) -> Result<i32, WasiRunError> {
    match e {
        RunError::Exit(code) => Ok(code),
        RunError::Trap(t) => Err(WasiRunError::Trap(t)),
        other => Err(WasiRunError::Call(other)),
    }
}

/// A plain run's instantiation failed with `e`.
pub(crate) fn from_instantiation_error(e: InstantiationError) -> Result<i32, WasiRunError> {
    match e {
        InstantiationError::Start(e) => from_run_error(e),
        InstantiationError::Trap(t) => Err(WasiRunError::Trap(t)),
        InstantiationError::Unlinkable(m) => Err(WasiRunError::Unlinkable(m)),
        e => Err(WasiRunError::Instantiate(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WasiConfig;

    fn module(src: &[u8]) -> Module {
        let aot = mvvm_aot::compile(src, &mvvm_aot::CompileOptions::default()).expect("compile");
        Module::from_aot(&aot).expect("load")
    }

    fn run(src: &[u8], config: WasiConfig) -> Result<i32, WasiRunError> {
        crate::Command::new(&module(src))
            .config(config)
            .run_to_exit()
    }

    #[test]
    fn bad_pointer_is_efault_not_a_host_fault() {
        let wat = br#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
            (memory (export "memory") 1)
            (func (export "_start")
              (call $e (call $w (i32.const 1) (i32.const 0xfffffff0) (i32.const 1) (i32.const 0)))))"#;
        assert_eq!(run(wat, WasiConfig::default()).unwrap(), 21);
    }

    #[test]
    fn start_returning_is_exit_zero_and_no_start_is_fine() {
        let wat = br#"(module (memory (export "memory") 1) (func (export "_start")))"#;
        assert_eq!(run(wat, WasiConfig::default()).unwrap(), 0);
        let wat = br#"(module (memory 1))"#;
        assert_eq!(run(wat, WasiConfig::default()).unwrap(), 0);
    }

    #[test]
    fn unknown_imports_are_named() {
        let wat = br#"(module (import "env" "foo" (func)))"#;
        let e = run(wat, WasiConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`env.foo`"), "{e}");
        let wat = br#"(module (import "wasi_snapshot_preview1" "fd_nope" (func)))"#;
        let e = run(wat, WasiConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`wasi_snapshot_preview1.fd_nope`"), "{e}");
        let wat = br#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))))"#;
        let e = run(wat, WasiConfig::default()).unwrap_err().to_string();
        assert!(e.contains("fd_write"), "{e}");
    }

    #[test]
    fn traps_are_reported() {
        let wat = br#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#;
        assert!(matches!(
            run(wat, WasiConfig::default()),
            Err(WasiRunError::Trap(_))
        ));
    }

    #[test]
    fn c_program_exit_code() {
        let wasm = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../test/c/exit_code.wasm"
        ))
        .unwrap();
        let cfg = |how: &str| WasiConfig {
            args: vec!["exit_code".into(), how.into(), "7".into()],
            ..Default::default()
        };
        assert_eq!(run(&wasm, cfg("exit")).unwrap(), 7);
        assert_eq!(run(&wasm, cfg("return")).unwrap(), 7);
    }
}
