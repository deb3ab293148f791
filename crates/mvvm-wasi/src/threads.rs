//! wasi-threads: the `wasi` `thread-spawn` import and the
//! `wasi_thread_start` export, over the runtime's threads
//! (`mvvm_rt::ThreadGroup`, `mvvm_rt::SharedMemory`).
//!
//! ```text
//!  main thread: Store ─ instance ─ _start            thread n: Store ─ instance ─ wasi_thread_start(n, arg)
//!        │  WasiHost { ctx, program }                      │  WasiHost { ctx, program }
//!        └──────────────┬──────────────────────────────────┘
//!                       ▼
//!  Arc<Mutex<WasiCtx>>  one WASI state (descriptors, clocks) for every thread
//!  Arc<Program>         the module, the thread group, thread ids, how the program ended
//!  SharedMemory         the one memory every instance imports
//! ```
//!
//! A thread is an OS thread that builds its own store (stores are not
//! `Send`), instantiates the module in it with the same imports (the WASI
//! functions on the shared context, `thread-spawn`, the shared memory)
//! and calls `wasi_thread_start(tid, arg)`. Everything it takes from the
//! spawning thread is `Send` and checked so by the compiler: the
//! `Arc<Program>`, the `SharedMemory`, the `Arc<Mutex<WasiCtx>>` and its
//! `ThreadMember` (taken before the thread starts, so that a checkpoint
//! never misses a starting thread).
//!
//! How the program ends (as in wasi-threads and Wasmtime):
//!
//! - a thread that returns from `wasi_thread_start` ends itself only;
//! - `proc_exit(n)` in any thread, or a trap in any thread, ends the whole
//!   program: the end is recorded (the first one wins), the group is
//!   terminated (every other thread's wasm stops, see
//!   `mvvm_rt::ThreadGroup::terminate`) and the main thread's run returns
//!   that end: the exit code, or the trap (with the thread's id);
//! - `_start` returning in the main thread ends the program with code 0,
//!   whatever the other threads are doing.
//!
//! [`Program::finish`] is where the main thread's run joins them all.

use crate::link::{WasiRunError, add_to_linker};
use crate::{Errno, WasiCtx};
use mvvm_abi::{ExportKind, MemoryType, ValType};
use mvvm_rt::checkpoint::ThreadRestore;
use mvvm_rt::{
    Extern, Func, FuncType, HostError, Instance, InstantiationError, Linker, Memory, Module,
    RunError, SharedMemory, Store, ThreadGroup, ThreadMember, Trap, TrapCode, Val,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// The import module of `thread-spawn`.
pub const THREADS_MODULE: &str = "wasi";
/// The import name of `thread-spawn`.
pub const THREAD_SPAWN: &str = "thread-spawn";
/// The export a new thread starts in: `(tid: i32, start_arg: i32) -> ()`.
pub const THREAD_START: &str = mvvm_rt::checkpoint::THREAD_ENTRY;
/// The largest thread id (wasi-threads: ids are in `1..=0x1FFF_FFFF`).
pub const MAX_THREAD_ID: u32 = 0x1FFF_FFFF;
/// Stack beyond the wasm stack that a thread keeps for host calls
/// (WASI, builtins, signal handling).
const HOST_STACK_HEADROOM: usize = 2 << 20;

/// `thread-spawn`'s type.
pub fn thread_spawn_type() -> FuncType {
    FuncType {
        params: vec![ValType::I32],
        results: vec![ValType::I32],
    }
}

/// `wasi_thread_start`'s type.
fn thread_start_type() -> FuncType {
    FuncType {
        params: vec![ValType::I32, ValType::I32],
        results: vec![],
    }
}

/// What a module imports besides WASI preview1 functions, as
/// [`crate::link::check_imports`] found it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraImports {
    /// Its memory, if it imports it: where (module, name) and its type.
    pub memory: Option<(String, String, MemoryType)>,
    /// Whether it imports `wasi` `thread-spawn` (then its memory is a
    /// shared import and it exports `wasi_thread_start`: checked).
    pub threads: bool,
}

impl ExtraImports {
    /// Checks what wasi-threads needs of a module that spawns threads.
    pub(crate) fn check(&self, module: &Module) -> Result<(), WasiRunError> {
        if !self.threads {
            return Ok(());
        }
        if !self.memory.as_ref().is_some_and(|(_, _, t)| t.shared) {
            return Err(WasiRunError::Unlinkable(format!(
                "the module imports `{THREADS_MODULE}.{THREAD_SPAWN}` but no shared memory: \
                 wasi-threads needs the memory imported, and shared"
            )));
        }
        let meta = module.meta();
        let start = meta.exports.iter().find_map(|e| match e.kind {
            ExportKind::Func(i) if e.name == THREAD_START => Some(i),
            _ => None,
        });
        let Some(i) = start else {
            return Err(WasiRunError::Unlinkable(format!(
                "the module imports `{THREADS_MODULE}.{THREAD_SPAWN}` but does not export \
                 `{THREAD_START}`"
            )));
        };
        let ty = meta
            .funcs
            .get(i as usize)
            .and_then(|t| meta.types.get(*t as usize));
        if ty != Some(&thread_start_type()) {
            return Err(WasiRunError::Unlinkable(format!(
                "`{THREAD_START}` has type {ty:?}, wasi-threads wants (i32, i32) -> ()"
            )));
        }
        Ok(())
    }
}

/// Where a thread starts.
enum ThreadStart {
    /// `wasi_thread_start(tid, arg)`: a thread the program spawns.
    Fresh(u32),
    /// From its frames in a snapshot (boxed: a record is large, and the
    /// enum travels to the new OS thread).
    Restored(Box<ThreadRestore>),
}

/// How a program ended, as its threads report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProgramEnd {
    /// `proc_exit(n)`, or `_start` returned (0).
    Exit(i32),
    /// A thread trapped.
    Trap(Trap),
    /// A thread could not run (instantiation failed, a host function
    /// failed).
    Error(RunError),
}

/// What the threads of one program share. `Send + Sync` (checked below):
/// it travels to every thread in an `Arc`.
#[derive(Debug)]
pub(crate) struct Program {
    module: Module,
    imports: ExtraImports,
    group: ThreadGroup,
    max_wasm_stack: usize,
    /// How the program ended: set once, by the first thread that ends it.
    end: Mutex<Option<ProgramEnd>>,
    /// Threads started and not joined yet.
    handles: Mutex<Vec<JoinHandle<()>>>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Program>();
    send_sync::<Mutex<WasiCtx>>();
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each is updated by one assignment or `Vec` call: never half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The host data of every store of a WASI program: the WASI context
/// (shared by all threads of a wasi-threads program) and, for such a
/// program, what its threads share. The main store's is its host state:
/// a checkpoint saves the context through it.
#[derive(Debug)]
pub struct WasiHost {
    pub(crate) ctx: Arc<Mutex<WasiCtx>>,
    pub(crate) program: Option<Arc<Program>>,
}

impl WasiHost {
    /// A program's host data; `program` for a wasi-threads program.
    pub(crate) fn new(ctx: WasiCtx, program: Option<Arc<Program>>) -> WasiHost {
        WasiHost {
            ctx: Arc::new(Mutex::new(ctx)),
            program,
        }
    }

    /// The WASI context, locked (a call of one thread at a time).
    pub fn lock(&self) -> MutexGuard<'_, WasiCtx> {
        // A panic in a WASI call (caught by the runtime) leaves the
        // context as the call left it; the next calls go on with it.
        self.ctx.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl mvvm_rt::checkpoint::HostState for WasiHost {
    fn save(
        &self,
        after: mvvm_rt::checkpoint::RunAfter,
    ) -> Result<mvvm_rt::checkpoint::SavedHostState, mvvm_rt::checkpoint::HostStateError> {
        mvvm_rt::checkpoint::HostState::save(&*self.lock(), after)
    }
}

impl Program {
    /// A wasi-threads program of `module`, whose threads get
    /// `max_wasm_stack` bytes of wasm stack each.
    pub(crate) fn new(
        module: &Module,
        imports: ExtraImports,
        group: ThreadGroup,
        max_wasm_stack: usize,
    ) -> Arc<Program> {
        Arc::new(Program {
            module: module.clone(),
            imports,
            group,
            max_wasm_stack,
            end: Mutex::new(None),
            handles: Mutex::new(Vec::new()),
        })
    }

    /// Records how the program ended, unless a thread already did.
    fn record(&self, end: ProgramEnd) {
        let mut e = lock(&self.end);
        if e.is_none() {
            tracing::debug!(?end, "program ends");
            *e = Some(end);
        }
    }

    /// Starts a thread running `wasi_thread_start(tid, arg)` on `memory`
    /// with the WASI context `ctx`; its id, or a negative WASI errno.
    fn spawn(self: &Arc<Self>, memory: SharedMemory, ctx: Arc<Mutex<WasiCtx>>, arg: i32) -> i32 {
        let again = -i32::from(Errno::AGAIN.0);
        if self.group.is_terminated() {
            return again;
        }
        // Ids are never reused, across restores either (the group keeps
        // the last one, and a snapshot records it).
        let Some(tid) = self.group.next_thread_id(MAX_THREAD_ID) else {
            return again;
        };
        match self.launch(memory, ctx, tid, ThreadStart::Fresh(arg as u32)) {
            Ok(()) => tid as i32,
            Err(e) => {
                tracing::warn!("thread-spawn: {e}");
                again
            }
        }
    }

    /// Starts the restored threads of a program (see
    /// `mvvm_rt::checkpoint::Restore::resume_with_threads`), each on
    /// `memory` with the WASI context `ctx`.
    pub(crate) fn respawn(
        self: &Arc<Self>,
        memory: &SharedMemory,
        ctx: &Arc<Mutex<WasiCtx>>,
        threads: Vec<ThreadRestore>,
    ) -> Result<(), String> {
        for t in threads {
            let tid = t.tid();
            self.launch(
                memory.clone(),
                Arc::clone(ctx),
                tid,
                ThreadStart::Restored(Box::new(t)),
            )?;
        }
        Ok(())
    }

    /// Starts the OS thread of thread `tid`.
    fn launch(
        self: &Arc<Self>,
        memory: SharedMemory,
        ctx: Arc<Mutex<WasiCtx>>,
        tid: u32,
        start: ThreadStart,
    ) -> Result<(), String> {
        // Counted alive from now: a checkpoint decided before the thread
        // has built its store already waits for it.
        let member = self.group.add_thread();
        let program = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("wasm-thread-{tid}"))
            .stack_size(self.max_wasm_stack.saturating_add(HOST_STACK_HEADROOM))
            .spawn(move || program.run_thread(member, memory, ctx, tid, start));
        match spawned {
            Ok(h) => {
                lock(&self.handles).push(h);
                tracing::debug!(tid, "thread started");
                Ok(())
            }
            Err(e) => Err(format!("cannot start an OS thread for thread {tid}: {e}")),
        }
    }

    /// The body of thread `tid`: builds its store and instance, runs
    /// `wasi_thread_start`, and ends the program if the thread exits or
    /// traps.
    fn run_thread(
        self: Arc<Self>,
        member: ThreadMember,
        memory: SharedMemory,
        ctx: Arc<Mutex<WasiCtx>>,
        tid: u32,
        start: ThreadStart,
    ) {
        let r = self.thread_body(member, memory, ctx, tid, start);
        let end = match r {
            Ok(()) => None,
            Err(RunError::Exit(code)) => Some(ProgramEnd::Exit(code)),
            Err(RunError::Trap(t)) if t.code == TrapCode::Terminated => None,
            Err(RunError::Trap(mut t)) => {
                t.message = format!("{} (thread {tid})", t.message);
                Some(ProgramEnd::Trap(t))
            }
            Err(RunError::Host(m)) => Some(ProgramEnd::Error(RunError::Host(format!(
                "thread {tid}: {m}"
            )))),
            Err(e) => Some(ProgramEnd::Error(e)),
        };
        tracing::debug!(tid, ?end, "thread ended");
        if let Some(end) = end {
            self.record(end);
            self.group.terminate();
        }
    }

    /// Runs thread `tid` in a store of its own (dropped before the thread
    /// ends, its member last: the thread counts as alive until then).
    fn thread_body(
        self: &Arc<Self>,
        member: ThreadMember,
        memory: SharedMemory,
        ctx: Arc<Mutex<WasiCtx>>,
        tid: u32,
        start: ThreadStart,
    ) -> Result<(), RunError> {
        let mut store = Store::new();
        store.set_max_wasm_stack(self.max_wasm_stack);
        store.set_thread(member);
        store.set_data(WasiHost {
            ctx,
            program: Some(Arc::clone(self)),
        });
        let mem = Extern::Memory(memory.attach(&mut store));
        let imports = link(&mut store, &self.module, &self.imports, Some(mem))
            .map_err(|e| RunError::Host(format!("cannot link the thread's instance: {e}")))?;
        let arg = match start {
            ThreadStart::Restored(t) => return t.run(&mut store, &imports),
            ThreadStart::Fresh(arg) => arg,
        };
        let instance = match Instance::new(&mut store, &self.module, &imports) {
            Ok(i) => i,
            Err(InstantiationError::Trap(t)) => return Err(RunError::Trap(t)),
            Err(InstantiationError::Start(e)) => return Err(e),
            Err(e) => return Err(RunError::Host(format!("instantiation failed: {e}"))),
        };
        // `wasi_thread_start(tid, arg)`, stopped and saved with the
        // program when it is checkpointed.
        mvvm_rt::checkpoint::run_thread(&mut store, instance, tid, arg)
    }

    /// Ends the program from the main thread, whose run ended with
    /// `main` (`None`: it was stopped because another thread ended the
    /// program): records it (unless a thread ended the program first),
    /// stops every other thread, joins them and returns how the program
    /// ended (`None` when nothing ended it: a checkpoint stopped the run).
    pub(crate) fn finish(&self, main: Option<ProgramEnd>) -> Option<ProgramEnd> {
        if let Some(end) = main {
            self.record(end);
        }
        self.group.terminate();
        loop {
            let handles = std::mem::take(&mut *lock(&self.handles));
            if handles.is_empty() {
                // A thread being spawned counts as alive before its handle
                // is in the list; the main thread's store is the one left.
                if self.group.alive() <= 1 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            for h in handles {
                let _ = h.join();
            }
        }
        lock(&self.end).clone()
    }
}

/// The imports of `module` in `store`: the WASI functions on the store's
/// [`WasiHost`], `thread-spawn` for a wasi-threads module, and `memory`
/// as its memory import.
pub(crate) fn link(
    store: &mut Store,
    module: &Module,
    extra: &ExtraImports,
    memory: Option<Extern>,
) -> Result<Vec<Extern>, InstantiationError> {
    let mut linker = Linker::new();
    add_to_linker(&mut linker, store);
    if extra.threads {
        let f = thread_spawn_func(store);
        linker.define(THREADS_MODULE, THREAD_SPAWN, Extern::Func(f));
    }
    if let (Some((m, n, _)), Some(mem)) = (&extra.memory, memory) {
        linker.define(m, n, mem);
    }
    linker.resolve(module)
}

/// The memory a fresh main store imports, of the type the module
/// declares: a new [`SharedMemory`] for a shared type (which the threads
/// will import too), a plain memory otherwise.
pub(crate) fn new_memory(store: &mut Store, ty: MemoryType) -> Result<Memory, InstantiationError> {
    let r = if ty.shared {
        SharedMemory::new(ty).map(|m| m.attach(store))
    } else {
        Memory::new(store, ty)
    };
    r.map_err(|e| InstantiationError::Resource(e.to_string()))
}

/// The `thread-spawn` host function of `store` (whose data is a
/// [`WasiHost`] of a wasi-threads program).
fn thread_spawn_func(store: &mut Store) -> Func {
    Func::host(store, thread_spawn_type(), |caller, args, results| {
        let arg = match args.first() {
            Some(Val::I32(a)) => *a,
            _ => return Err(HostError::Message("thread-spawn: bad argument".into())),
        };
        let (program, ctx) = match caller.data::<WasiHost>() {
            Some(WasiHost {
                program: Some(p),
                ctx,
            }) => (Arc::clone(p), Arc::clone(ctx)),
            _ => {
                return Err(HostError::Message(
                    "thread-spawn: the store holds no wasi-threads program".into(),
                ));
            }
        };
        let Some(memory) = caller.shared_memory() else {
            return Err(HostError::Message(
                "thread-spawn: the calling instance has no shared memory".into(),
            ));
        };
        let tid = program.spawn(memory, ctx, arg);
        if let Some(r) = results.first_mut() {
            *r = Val::I32(tid);
        }
        Ok(())
    })
}
