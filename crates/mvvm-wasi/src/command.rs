//! [`Command`]: a WASI program and the world it runs in, run fresh
//! ([`Command::run`], [`Command::run_to_exit`]) or resumed from a snapshot
//! ([`Command::restore`]).
//!
//! Both paths build their store in one place (`Command::build`): the
//! imports are checked against WASI, the [`WasiCtx`] is made (from the
//! configuration for a fresh run, from the snapshot's state and the
//! granted capabilities for a restore), and becomes the store's host state
//! (so a checkpoint saves it), and the WASI host functions are linked.
//! What differs is only where the context comes from.
//!
//! Capabilities on restore come from [`Command::grants`], never from the
//! snapshot (see [`crate::grants`]).

use crate::grants::{Grants, NotGranted};
use crate::link::{WasiRunError, extra_imports, from_instantiation_error, from_run_error};
use crate::threads::{Program, ProgramEnd, WasiHost, link, new_memory};
use crate::{Errno, WasiConfig, WasiCtx, WasiRestoreError, WasiSetupError, WasiState};
use mvvm_abi::ExportKind;
use mvvm_rt::checkpoint::{
    CheckpointConfig, CheckpointError, Outcome, Restore, RestoreOptions, Run, RunOptions,
    SnapshotSource,
};
use mvvm_rt::{
    DEFAULT_MAX_WASM_STACK, Extern, Instance, InstantiationError, Module, Store, ThreadGroup,
    TrapCode,
};
use std::sync::Arc;

/// Default [`Command::max_descriptors`]: 65536 open descriptors (stdio,
/// preopens, files, sockets), a constant rather than this process's
/// `RLIMIT_NOFILE`, so that whether a snapshot is accepted does not depend
/// on the shell it is restored from. Far above what a guest uses; the OS
/// limit still applies when the files are reopened (an `EMFILE` is then a
/// WASI restore error).
pub const DEFAULT_MAX_DESCRIPTORS: u64 = 1 << 16;

/// Why a WASI run or restore failed. Each variant keeps its cause
/// ([`std::error::Error::source`]), so a tool prints every cause once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime refused or failed the run or the restore: bad trigger,
    /// unreadable or mismatched snapshot, trap, instantiation.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The module imports something WASI does not provide.
    #[error("the module cannot run under WASI")]
    Unlinkable(#[source] WasiRunError),
    /// WASI could not be set up for a fresh run (a preopen, a listener).
    #[error("WASI cannot be set up")]
    Setup(#[source] WasiSetupError),
    /// The snapshot needs a preopen or listener the restoring side did not
    /// grant; nothing was opened or run.
    #[error(transparent)]
    NotGranted(#[from] NotGranted),
    /// A file the guest had open is gone or was replaced.
    #[error("file `{path}` changed since the checkpoint: {why}")]
    FileChanged {
        /// The guest's path (relative to its preopen).
        path: String,
        /// What differs.
        why: String,
    },
    /// The snapshot's WASI state does not decode (damaged or altered; the
    /// snapshot's checksums passed, so written that way).
    #[error("snapshot does not match the module: its WASI state cannot be decoded")]
    StateDecode(#[source] mvvm_abi::codec::CodecError),
    /// The saved WASI state could not be brought back.
    #[error("the WASI state cannot be restored")]
    Restore(#[source] WasiRestoreError),
}

/// A WASI command module with its world: the configuration of a fresh
/// run, or what a restore grants. Built with the setters, then run once.
#[derive(Debug, Clone)]
pub struct Command<'m> {
    module: &'m Module,
    max_wasm_stack: usize,
    config: WasiConfig,
    grants: Grants,
    allow_changed_files: bool,
    max_descriptors: u64,
}

/// A store [`Command::build`] made: the store, the module's imports in
/// it, and, for a wasi-threads module, what its threads share.
struct Built {
    store: Store,
    imports: Vec<Extern>,
    program: Option<Arc<Program>>,
    /// The imported memory (a wasi-threads program's shared one).
    memory: Option<mvvm_rt::Memory>,
}

/// What [`Command::build`] could not do.
enum BuildError<E> {
    /// An import is not WASI's.
    Unlinkable(WasiRunError),
    /// The context could not be made.
    Ctx(E),
    /// The imports could not be resolved.
    Resolve(InstantiationError),
}

impl<'m> Command<'m> {
    /// `module` with no arguments, environment, preopens or grants, and
    /// the default wasm stack ([`DEFAULT_MAX_WASM_STACK`]).
    pub fn new(module: &'m Module) -> Command<'m> {
        Command {
            module,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            config: WasiConfig::default(),
            grants: Grants::none(),
            allow_changed_files: false,
            max_descriptors: DEFAULT_MAX_DESCRIPTORS,
        }
    }

    /// How many bytes of the calling thread's stack wasm may use (the
    /// thread's stack must be larger, with room for host calls).
    pub fn max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// The world of a fresh run: arguments, environment, preopens,
    /// listeners.
    pub fn config(mut self, config: WasiConfig) -> Self {
        self.config = config;
        self
    }

    /// The capabilities a restore gives the guest: every preopen and
    /// listener the snapshot needs must be granted, or the restore is
    /// refused before anything runs ([`Error::NotGranted`]). Default:
    /// nothing.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// On restore, reopen files even if they are not the files that were
    /// open at checkpoint time (other device/inode; needed on another
    /// host). Without it, a changed or vanished file is
    /// [`Error::FileChanged`].
    pub fn allow_changed_files(mut self, allow: bool) -> Self {
        self.allow_changed_files = allow;
        self
    }

    /// On restore, the most descriptors (preopens and saved deleted files
    /// counted alike) a snapshot may hold; above, it is refused before any
    /// is opened. Default [`DEFAULT_MAX_DESCRIPTORS`].
    pub fn max_descriptors(mut self, max: u64) -> Self {
        self.max_descriptors = max;
        self
    }

    /// Runs the program (start function, then `_start`) without checkpoint
    /// machinery and returns its exit code: 0 when `_start` (or, without
    /// `_start`, the start function) returns, `n` on `proc_exit(n)`.
    pub fn run_to_exit(self) -> Result<i32, WasiRunError> {
        let config = self.config.clone();
        let built = self.build(|| WasiCtx::new(config)).map_err(|e| match e {
            BuildError::Unlinkable(e) => e,
            BuildError::Ctx(e) => WasiRunError::Setup(e),
            BuildError::Resolve(e) => WasiRunError::Instantiate(e),
        })?;
        let Built {
            mut store,
            imports,
            program,
            ..
        } = built;
        let r = self.run_main(&mut store, &imports);
        let Some(program) = program else {
            return r;
        };
        // wasi-threads: the program's end is the first thread's to end it.
        let main = match &r {
            Ok(code) => Some(ProgramEnd::Exit(*code)),
            Err(WasiRunError::Trap(t)) if t.code == TrapCode::Terminated => None,
            Err(WasiRunError::Trap(t)) => Some(ProgramEnd::Trap(t.clone())),
            Err(WasiRunError::Call(e)) => Some(ProgramEnd::Error(e.clone())),
            Err(_) => None,
        };
        match program.finish(main) {
            Some(ProgramEnd::Exit(code)) => Ok(code),
            Some(ProgramEnd::Trap(t)) => Err(WasiRunError::Trap(t)),
            Some(ProgramEnd::Error(e)) => Err(WasiRunError::Call(e)),
            None => r,
        }
    }

    /// The main thread of [`Command::run_to_exit`]: instantiation (the
    /// start function), then `_start`.
    fn run_main(&self, store: &mut Store, imports: &[Extern]) -> Result<i32, WasiRunError> {
        let instance = match Instance::new(store, self.module, imports) {
            Ok(i) => i,
            Err(e) => return from_instantiation_error(e),
        };
        let has_start = self
            .module
            .meta()
            .exports
            .iter()
            .any(|e| e.name == "_start" && matches!(e.kind, ExportKind::Func(_)));
        if !has_start {
            return Ok(0);
        }
        match instance.invoke(store, "_start", &[]) {
            Ok(_) => Ok(0),
            Err(e) => from_run_error(e),
        }
    }

    /// Runs the program and checkpoints it when `cfg.trigger` (or a
    /// signal) fires.
    pub fn run(self, cfg: CheckpointConfig, opts: RunOptions) -> Result<Outcome, Error> {
        let run = Run::new(self.module, cfg, opts)?;
        let config = self.config.clone();
        let mut built = self
            .build(|| WasiCtx::new(config))
            .map_err(|e| build_error(e, Error::Setup))?;
        let r = run.start(&mut built.store, &built.imports);
        park_if_stopped(&built.store, &r);
        finish_threads(built.program.as_deref(), r)
    }

    /// Resumes the program saved in `source` (taken from any
    /// checkpoint-enabled compilation of the same wasm) with the granted
    /// capabilities, and runs it to its end or to the next checkpoint
    /// `cfg` asks for.
    pub fn restore(
        self,
        source: SnapshotSource,
        cfg: CheckpointConfig,
        opts: RestoreOptions,
    ) -> Result<Outcome, Error> {
        let restore = Restore::open(self.module, source, self.max_wasm_stack, cfg, opts)?;
        let state: WasiState =
            mvvm_abi::codec::decode(restore.host_state()).map_err(Error::StateDecode)?;
        check_descriptors(&state, self.max_descriptors)?;
        let check_identity = !self.allow_changed_files;
        let grants = &self.grants;
        let built = self
            .build(|| WasiCtx::restore(state, grants, check_identity))
            .map_err(|e| build_error(e, restore_error))?;
        let Built {
            mut store,
            imports,
            program,
            memory,
        } = built;
        let r = match (&program, memory) {
            (Some(p), Some(m)) => {
                let ctx = match store.data::<WasiHost>() {
                    Some(h) => Arc::clone(&h.ctx),
                    None => {
                        return Err(CheckpointError::Host(
                            "the store lost its WASI host state".into(),
                        )
                        .into());
                    }
                };
                restore.resume_with_threads(&mut store, &imports, |store, threads| {
                    let shared = m
                        .shared(store)
                        .ok_or("the program's memory is not shared")?;
                    p.respawn(&shared, &ctx, threads)
                })
            }
            _ => restore.resume(&mut store, &imports),
        };
        park_if_stopped(&store, &r);
        finish_threads(program.as_deref(), r)
    }

    /// The one place a store is made for this command: checks that every
    /// import is WASI's (or wasi-threads': `thread-spawn` and the memory),
    /// makes the context with `make_ctx` (only then, so that nothing is
    /// opened for a module that cannot run), puts it in a new store as its
    /// host state, makes the imported memory if there is one (a
    /// [`mvvm_rt::SharedMemory`] when shared), links the WASI functions
    /// and resolves the module's imports. A wasi-threads module's store is
    /// the main thread of a new thread group.
    fn build<E>(
        &self,
        make_ctx: impl FnOnce() -> Result<WasiCtx, E>,
    ) -> Result<Built, BuildError<E>> {
        let extra = extra_imports(self.module).map_err(BuildError::Unlinkable)?;
        let ctx = make_ctx().map_err(BuildError::Ctx)?;
        let mut store = Store::new();
        store.set_max_wasm_stack(self.max_wasm_stack);
        let program = extra.threads.then(|| {
            let group = ThreadGroup::new();
            store.set_thread(group.add_thread());
            Program::new(self.module, extra.clone(), group, self.max_wasm_stack)
        });
        store.set_host_state(WasiHost::new(ctx, program.clone()));
        let memory = match &extra.memory {
            Some((_, _, ty)) => Some(new_memory(&mut store, *ty).map_err(BuildError::Resolve)?),
            None => None,
        };
        let imports = link(&mut store, self.module, &extra, memory.map(Extern::Memory))
            .map_err(BuildError::Resolve)?;
        Ok(Built {
            store,
            imports,
            program,
            memory,
        })
    }
}

/// The end of a checkpointed run or a restore of a wasi-threads program:
/// stops and joins its other threads, and reports the program's end (the
/// first thread's to end it) rather than the main thread's own when they
/// differ. Without threads, `r` as it is.
fn finish_threads(
    program: Option<&Program>,
    r: Result<Outcome, CheckpointError>,
) -> Result<Outcome, Error> {
    let Some(program) = program else {
        return Ok(r?);
    };
    let main = match &r {
        Ok(Outcome::Exited { code, .. }) => Some(ProgramEnd::Exit(*code)),
        Ok(Outcome::Checkpointed { .. }) => None,
        Err(CheckpointError::Trap(t)) if t.code == TrapCode::Terminated => None,
        Err(CheckpointError::Trap(t)) => Some(ProgramEnd::Trap(t.clone())),
        Err(CheckpointError::Call(e)) => Some(ProgramEnd::Error(e.clone())),
        Err(_) => None,
    };
    let probes = match &r {
        Ok(Outcome::Exited { probes, .. }) => *probes,
        _ => 0,
    };
    match (program.finish(main), r) {
        (_, Ok(o @ Outcome::Checkpointed { .. })) => Ok(o),
        (Some(ProgramEnd::Exit(code)), _) => Ok(Outcome::Exited { code, probes }),
        (Some(ProgramEnd::Trap(t)), _) => Err(CheckpointError::Trap(t).into()),
        (Some(ProgramEnd::Error(e)), _) => Err(CheckpointError::Call(e).into()),
        (None, r) => Ok(r?),
    }
}

/// When the run stopped at a checkpoint (the process then exits), leaves
/// the TCP connections the checkpoint saved in repair mode, so that their
/// close does not end them for the peer (`tcp_repair.rs`).
fn park_if_stopped(store: &Store, r: &Result<Outcome, CheckpointError>) {
    if let (Ok(Outcome::Checkpointed { .. }), Some(host)) = (r, store.data::<WasiHost>()) {
        host.lock().park_connections();
    }
}

/// A [`BuildError`] of a checkpointed run or a restore as an [`Error`],
/// the context's own error through `ctx`.
fn build_error<E>(e: BuildError<E>, ctx: impl FnOnce(E) -> Error) -> Error {
    match e {
        BuildError::Unlinkable(e) => Error::Unlinkable(e),
        BuildError::Ctx(e) => ctx(e),
        BuildError::Resolve(e) => CheckpointError::Instantiate(e).into(),
    }
}

/// Refuses a WASI state with more descriptors (or preopens, or saved
/// deleted files) than `max`, before any of them is opened.
fn check_descriptors(state: &WasiState, max: u64) -> Result<(), CheckpointError> {
    let counts = [
        ("the number of WASI descriptors", state.fds.len()),
        (
            "the number of freed WASI descriptor numbers",
            state.closed.len(),
        ),
        ("the number of WASI preopens", state.preopens.len()),
        ("the number of saved deleted files", state.unlinked.len()),
    ];
    for (what, n) in counts {
        if n as u64 > max {
            return Err(mvvm_snapshot::SnapshotError::LimitExceeded {
                what: what.to_string(),
                found: n as u64,
                limit: max,
            }
            .into());
        }
    }
    Ok(())
}

/// A WASI restore error, with changed or vanished files and missing grants
/// singled out.
fn restore_error(e: WasiRestoreError) -> Error {
    match e {
        WasiRestoreError::Changed { fd, path } => Error::FileChanged {
            path,
            why: format!("descriptor {fd}: the path now names another file (device/inode differ)"),
        },
        WasiRestoreError::Reopen { fd, path, errno } if errno == Errno::NOENT => {
            Error::FileChanged {
                path,
                why: format!("descriptor {fd}: the file is gone ({errno})"),
            }
        }
        WasiRestoreError::NotGranted(n) => Error::NotGranted(n),
        other => Error::Restore(other),
    }
}
