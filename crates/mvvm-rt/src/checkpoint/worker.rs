//! The threads of a program other than the main one ("workers"), as a
//! checkpoint sees them: each runs its start function
//! ([`THREAD_ENTRY`]`(tid, start_arg)`) in its own store, under a session
//! that only answers requests (the main thread's triggers decide), and
//! when it unwinds it hands its record to the main thread
//! (`rendezvous`) and either ends (the program stopped) or rewinds and
//! runs on (a periodic checkpoint).

use super::CheckpointError;
use super::capture::{rewind_queue, thread_record};
use super::control::{Armed, RawFrame, Session, SessionConfig};
use super::rendezvous::{ProbeReport, Release};
use crate::store::{FuncKind, RunError, Store};
use crate::threads::ThreadGroup;
use crate::{Func, Instance, Module, Val};
use mvvm_abi::checkpoint::{REWINDING, UNWINDING};
use mvvm_abi::meta::ExportKind;

/// The export a thread of a wasi-threads program starts in:
/// `(tid: i32, start_arg: i32) -> ()`.
pub const THREAD_ENTRY: &str = "wasi_thread_start";

/// The function index of [`THREAD_ENTRY`] in `module`, if it exports it.
pub(crate) fn thread_entry(module: &Module) -> Option<u32> {
    module.meta().exports.iter().find_map(|e| match e.kind {
        ExportKind::Func(i) if e.name == THREAD_ENTRY => Some(i),
        _ => None,
    })
}

/// A worker's checkpoint session: armed on its store and registered with
/// its group's rendezvous (so that the main thread can ask it to stop);
/// unregistered before it disarms, and both before the store goes.
pub(crate) struct WorkerSession {
    group: ThreadGroup,
    member: u64,
    /// The main thread counts probes: this thread's go here when it ends.
    report: Option<ProbeReport>,
    _session: Session,
}

impl WorkerSession {
    /// Arms `store`, a thread of a group running an instrumented
    /// `module`; `None` otherwise (nothing to checkpoint).
    pub(crate) fn arm(store: &mut Store, module: &Module) -> Option<WorkerSession> {
        if !module.meta().policy.is_instrumented() {
            return None;
        }
        let (group, member) = {
            let t = store.inner.thread.as_ref()?;
            (t.group(), t.id())
        };
        let report = group.rendezvous().counting();
        let session = Session::arm(
            store,
            module,
            SessionConfig {
                armed: Armed::Async,
                count: report.is_some(),
                log_probes: group.rendezvous().log_probes(),
                signals: false,
                after: None,
                every: false,
            },
        );
        group
            .rendezvous()
            .register(member, store.inner.limits.as_ptr().cast_const());
        Some(WorkerSession {
            group,
            member,
            report,
            _session: session,
        })
    }
}

impl Drop for WorkerSession {
    fn drop(&mut self) {
        self.group.rendezvous().unregister(self.member);
    }
}

/// Runs thread `tid` of a program in `store`: `instance`'s
/// [`THREAD_ENTRY`]`(tid, start_arg)`, checkpointed with the program
/// (see the module documentation). `Ok` when the entry returned, or when
/// a checkpoint stopped the program (the thread then ends without a
/// trace); the entry's error otherwise.
pub fn run_thread(
    store: &mut Store,
    instance: Instance,
    tid: u32,
    start_arg: u32,
) -> Result<(), RunError> {
    let module = instance
        .module(store)
        .ok_or_else(|| RunError::Host("the thread's instance is not in its store".into()))?;
    let entry =
        thread_entry(&module).ok_or_else(|| RunError::NoSuchExport(THREAD_ENTRY.to_string()))?;
    let session = WorkerSession::arm(store, &module);
    let thread = Thread {
        instance,
        entry,
        tid,
        start_arg,
    };
    thread.run(store, session.as_ref(), false)
}

/// What a worker runs.
pub(crate) struct Thread {
    pub instance: Instance,
    pub entry: u32,
    pub tid: u32,
    pub start_arg: u32,
}

impl Thread {
    /// Runs the entry, fresh or (`rewinding`: the frames are loaded) from
    /// its frames, and again after each periodic checkpoint.
    pub(crate) fn run(
        &self,
        store: &mut Store,
        session: Option<&WorkerSession>,
        mut rewinding: bool,
    ) -> Result<(), RunError> {
        // A stop asked before this thread entered wasm: it has no frame to
        // save, and restarts from its entry.
        if let Some(ws) = session
            && !rewinding
            && ws.group.rendezvous().pending()
            && self.hand_over(store, ws, Vec::new())? == Release::Stop
        {
            return Ok(());
        }
        loop {
            let args = if rewinding {
                vec![Val::I32(0), Val::I32(0)]
            } else {
                vec![Val::I32(self.tid as i32), Val::I32(self.start_arg as i32)]
            };
            let f = Func {
                store: store.inner.id,
                kind: FuncKind::Wasm {
                    instance: self.instance.index,
                    index: self.entry,
                },
            };
            f.call(store, &args)?;
            let Some(ws) = session else {
                return Ok(());
            };
            if store.inner.limits.unwind_state != UNWINDING {
                let (left, probes) = store
                    .inner
                    .ckpt
                    .as_ref()
                    .map_or((0, 0), |c| (c.rewind.len(), c.probes));
                if left > 0 {
                    return Err(RunError::Host(format!(
                        "thread {}: its entry returned with {left} frames not rewound",
                        self.tid
                    )));
                }
                if let Some(report) = ws.report {
                    report(self.tid, probes);
                }
                return Ok(());
            }
            store.inner.limits.unwind_state = mvvm_abi::checkpoint::UNWIND_NONE;
            let raw = store
                .inner
                .ckpt
                .as_deref_mut()
                .map(|c| std::mem::take(&mut c.unwound))
                .unwrap_or_default();
            if raw.is_empty() {
                return Err(RunError::Host(format!(
                    "thread {}: wasm unwound but saved no frame",
                    self.tid
                )));
            }
            match self.hand_over(store, ws, raw.clone())? {
                Release::Stop => return Ok(()),
                Release::Continue => {
                    load_own_frames(store, &raw).map_err(|e| RunError::Host(e.to_string()))?;
                    rewinding = true;
                }
            }
        }
    }

    /// Saves this thread's record (frames `raw`, innermost first) for the
    /// main thread and waits for the release.
    fn hand_over(
        &self,
        store: &Store,
        ws: &WorkerSession,
        raw: Vec<RawFrame>,
    ) -> Result<Release, RunError> {
        let record = thread_record(store, self.instance, self.tid, self.start_arg, &raw)
            .map_err(|e| RunError::Host(format!("thread {}: {e}", self.tid)))?;
        Ok(ws
            .group
            .rendezvous()
            .deposit(record, ws.group.terminated_flag()))
    }
}

/// After a periodic checkpoint: the frames this thread just unwound
/// (innermost first) become the frames it rewinds.
fn load_own_frames(store: &mut Store, raw: &[RawFrame]) -> Result<(), CheckpointError> {
    let s = &mut *store.inner;
    let Some(c) = s.ckpt.as_deref_mut() else {
        return Err(CheckpointError::Host("no checkpoint session".into()));
    };
    c.rewind = rewind_queue(c.module.meta(), raw)?;
    s.limits.unwind_state = REWINDING;
    Ok(())
}
