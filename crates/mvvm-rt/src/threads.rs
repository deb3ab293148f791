//! The threads of one program (wasi-threads): a [`ThreadGroup`] counts
//! them and ends them together.
//!
//! Each thread of a program is an OS thread with its own store
//! holding its own instance of the module (stores are not `Send`: a
//! thread builds its store itself; see [`crate::Store`]). What the threads share is `Send +
//! Sync` and checked so by the compiler: the [`Module`](crate::Module)
//! (its code), the [`SharedMemory`](crate::SharedMemory), and the group.
//! A store joins a group with a [`ThreadMember`], which the spawning
//! thread takes before the new thread exists ([`ThreadGroup::add_thread`]),
//! so that the count never misses a thread that is starting.
//!
//! ```text
//!  ThreadGroup (Arc, Send + Sync)
//!  ├── terminated: Arc<AtomicBool>   the program is ending
//!  ├── alive: count of ThreadMembers (one per thread, held by its store)
//!  └── running: members inside wasm now, with their OS thread
//! ```
//!
//! **Ending the program.** [`ThreadGroup::terminate`] sets the flag and
//! stops every other thread's wasm wherever it is:
//!
//! - a thread entering wasm (`call::call_raw`) is refused;
//! - a thread parked in `memory.atomic.wait*` is woken
//!   ([`crate::atomic_wait::wake_all`]) and its wait traps;
//! - a thread returning from a host call traps at the import stub
//!   (`builtins::host_call`); host layers' blocking calls look at
//!   [`current_terminated`] between slices of their wait;
//! - a thread running generated code gets [`terminate_signal`], whose
//!   handler, when the interrupted PC is in generated code, unwinds to
//!   the thread's wasm entry with [`TrapCode::Terminated`] (as a fault
//!   does). Not in generated code (a builtin, a host function), it does
//!   nothing: `terminate` sends the signal again every millisecond until
//!   the thread has left wasm. One signal at a time per thread: the next
//!   is sent only once the handler has run (real-time signals queue, and
//!   a thread stuck in a system call would otherwise get them all at
//!   once, nested on its alternate stack).
//!
//! Every trap of a terminated thread is [`TrapCode::Terminated`], which
//! the host layer (`mvvm-wasi`) turns into the program's recorded end.

use crate::sys::{signal, thread, ucontext};
use crate::trap::{RawTrap, current_jmp_buf, unwind_with};
use mvvm_abi::TrapCode;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

/// The flag a thread of a group looks at to know that its program ends.
pub(crate) type StopFlag = Arc<AtomicBool>;

/// What the threads of one program share; see the module documentation.
#[derive(Debug)]
struct GroupInner {
    /// Set once, by [`ThreadGroup::terminate`].
    terminated: StopFlag,
    /// Live [`ThreadMember`]s.
    alive: AtomicUsize,
    /// Source of member ids.
    next_member: AtomicU64,
    /// Checkpoints of the whole program (`checkpoint::rendezvous`).
    rendezvous: crate::checkpoint::rendezvous::Rendezvous,
    /// The last wasi-threads thread id given (0: none yet); a restore
    /// continues from the snapshot's.
    last_tid: AtomicU32,
    /// Members running wasm now (their outermost entry). A member removes
    /// itself, under the lock, before its entry returns, so an entry found
    /// here under the lock names a live thread.
    running: Mutex<Vec<Running>>,
}

/// A member inside wasm, as `terminate` finds it.
#[derive(Debug)]
struct Running {
    /// The member.
    id: u64,
    /// Its OS thread.
    thread: thread::ThreadId,
    /// A terminate signal was sent and its handler has not run yet: no
    /// other is sent meanwhile. Real-time signals queue, and the handler
    /// runs with the signal unblocked (it may leave by `longjmp`), so
    /// signals sent to a thread stuck in a system call would all be
    /// delivered at once, nested, and overflow the alternate stack.
    signalled: Arc<AtomicBool>,
}

/// The threads of one program: counted, and ended together. Cheap to
/// clone; `Send` and `Sync`.
#[derive(Debug, Clone)]
pub struct ThreadGroup {
    inner: Arc<GroupInner>,
}

/// One thread's membership of a [`ThreadGroup`]: counted alive from
/// [`ThreadGroup::add_thread`] until dropped. Given to the thread's store
/// ([`crate::Store::set_thread`]), which drops it last (after its memories).
/// `Send`, so that the spawning thread can take it for the new one.
#[derive(Debug)]
pub struct ThreadMember {
    group: Arc<GroupInner>,
    id: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The list is updated by single `Vec` calls: a panic cannot leave it
    // half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for ThreadGroup {
    fn default() -> Self {
        ThreadGroup::new()
    }
}

impl ThreadGroup {
    /// A group with no thread yet.
    pub fn new() -> ThreadGroup {
        ThreadGroup {
            inner: Arc::new(GroupInner {
                terminated: Arc::new(AtomicBool::new(false)),
                alive: AtomicUsize::new(0),
                next_member: AtomicU64::new(1),
                rendezvous: Default::default(),
                last_tid: AtomicU32::new(0),
                running: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Counts one more thread (alive until the member is dropped).
    pub fn add_thread(&self) -> ThreadMember {
        self.inner.alive.fetch_add(1, Ordering::SeqCst);
        ThreadMember {
            group: Arc::clone(&self.inner),
            id: self.inner.next_member.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Threads alive (members not dropped yet).
    pub fn alive(&self) -> usize {
        self.inner.alive.load(Ordering::SeqCst)
    }

    /// Whether [`ThreadGroup::terminate`] was called.
    pub fn is_terminated(&self) -> bool {
        self.inner.terminated.load(Ordering::SeqCst)
    }

    /// A new thread id, one above the last given, or `None` past `max`
    /// (ids are never reused, across restores too: a snapshot records the
    /// last one).
    pub fn next_thread_id(&self, max: u32) -> Option<u32> {
        self.inner
            .last_tid
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t < max).then_some(t + 1)
            })
            .ok()
            .map(|prev| prev + 1)
    }

    /// The last thread id given (0: none).
    pub fn last_thread_id(&self) -> u32 {
        self.inner.last_tid.load(Ordering::SeqCst)
    }

    /// Continues thread ids after `last` (a restore).
    pub(crate) fn set_last_thread_id(&self, last: u32) {
        self.inner.last_tid.fetch_max(last, Ordering::SeqCst);
    }

    /// The checkpoint rendezvous of the group's threads.
    pub(crate) fn rendezvous(&self) -> &crate::checkpoint::rendezvous::Rendezvous {
        &self.inner.rendezvous
    }

    /// The flag [`ThreadGroup::terminate`] sets.
    pub(crate) fn terminated_flag(&self) -> &AtomicBool {
        &self.inner.terminated
    }

    /// Ends the program: every thread of the group stops running wasm
    /// (its call returns a [`TrapCode::Terminated`] trap) and no thread
    /// can enter wasm again. Returns once no thread of the group but the
    /// caller runs wasm. Called by a thread that is not running wasm itself
    /// (a host function must not: its own thread would be waited for).
    ///
    /// A thread stuck in a host call that never returns keeps this call
    /// waiting; host layers wait in slices and look at
    /// [`current_terminated`] (WASI does).
    pub fn terminate(&self) {
        let g = &self.inner;
        g.terminated.store(true, Ordering::SeqCst);
        // Threads parked for a checkpoint (or a restore) give up.
        g.rendezvous.wake();
        install_handler();
        let me = thread::current();
        loop {
            crate::atomic_wait::wake_all();
            {
                let running = lock(&g.running);
                let mut others = running.iter().filter(|r| r.thread != me).peekable();
                if others.peek().is_none() {
                    return;
                }
                for r in others {
                    if r.signalled.swap(true, Ordering::SeqCst) {
                        // The last one is not handled yet.
                        continue;
                    }
                    // SAFETY: `r` is in the list, read under its lock: its
                    // thread is inside a wasm entry, which removes it
                    // under the same lock before returning, so the thread
                    // has not ended.
                    let _ = unsafe { thread::kill(r.thread, terminate_signal()) };
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl ThreadMember {
    /// The group this member belongs to.
    pub fn group(&self) -> ThreadGroup {
        ThreadGroup {
            inner: Arc::clone(&self.group),
        }
    }

    /// How many other threads of the group are alive.
    #[cfg(test)]
    pub(crate) fn others_alive(&self) -> usize {
        self.group.alive.load(Ordering::SeqCst).saturating_sub(1)
    }

    /// The member's id in its group.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether the program is ending.
    pub(crate) fn terminated(&self) -> bool {
        self.group.terminated.load(Ordering::SeqCst)
    }

    /// The group's stop flag (for waits).
    pub(crate) fn stop_flag(&self) -> StopFlag {
        Arc::clone(&self.group.terminated)
    }

    /// Marks this thread as running wasm (the store's outermost entry)
    /// until the guard is dropped; `None` when the program is ending (the
    /// entry must be refused).
    pub(crate) fn enter(&self) -> Option<RunningGuard> {
        // The alternate signal stack first: the terminate signal's handler
        // runs on it, and may come as soon as the entry is listed.
        crate::signals::prepare_thread();
        let signalled = Arc::new(AtomicBool::new(false));
        let previous = (
            CURRENT.with(|c| c.replace(Arc::as_ptr(&self.group.terminated))),
            SIGNALLED.with(|c| c.replace(Arc::as_ptr(&signalled))),
        );
        let mut running = lock(&self.group.running);
        // Tested under the lock: `terminate` sets the flag, then looks at
        // the list under the lock, so either it sees this entry or the
        // entry sees the flag.
        if self.terminated() {
            drop(running);
            CURRENT.with(|c| c.set(previous.0));
            SIGNALLED.with(|c| c.set(previous.1));
            return None;
        }
        running.push(Running {
            id: self.id,
            thread: thread::current(),
            signalled: Arc::clone(&signalled),
        });
        drop(running);
        Some(RunningGuard {
            group: Arc::clone(&self.group),
            id: self.id,
            _signalled: signalled,
            previous,
        })
    }
}

impl Drop for ThreadMember {
    fn drop(&mut self) {
        self.group.alive.fetch_sub(1, Ordering::SeqCst);
        // A checkpoint may be waiting for this thread.
        self.group.rendezvous.wake();
    }
}

/// A member inside wasm; see [`ThreadMember::enter`]. Owns what it needs
/// (no reference into the store may live while wasm runs: `vm_box.rs`).
pub(crate) struct RunningGuard {
    group: Arc<GroupInner>,
    id: u64,
    /// Kept alive while [`SIGNALLED`] points at it.
    _signalled: Arc<AtomicBool>,
    /// The thread locals of the entry this one nests in (another store's,
    /// in principle), put back on exit.
    previous: (*const AtomicBool, *const AtomicBool),
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut running = lock(&self.group.running);
        if let Some(at) = running.iter().position(|r| r.id == self.id) {
            running.swap_remove(at);
        }
        drop(running);
        // After leaving the list: a signal still on its way finds these
        // cleared (or the outer entry's) and does nothing.
        CURRENT.with(|c| c.set(self.previous.0));
        SIGNALLED.with(|c| c.set(self.previous.1));
    }
}

thread_local! {
    /// The stop flag of the group whose wasm this thread runs (null when
    /// it runs none, or its store is not a thread of a group). Read by the
    /// signal handler: a constant-initialised `Cell` of a raw pointer,
    /// no allocation, no destructor.
    static CURRENT: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
    /// The running entry's "signal on its way" flag (see [`Running`]),
    /// cleared by the handler; null outside an entry of a group.
    static SIGNALLED: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
}

/// Clears the "signal on its way" flag of this thread's entry, so that
/// `terminate` may send the next one. Async-signal-safe.
fn signal_handled() {
    let p = SIGNALLED.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: non-null, `p` is the flag of the running entry of this
        // thread, kept alive by its guard, which resets the pointer before
        // it drops the flag.
        unsafe { (*p).store(false, Ordering::SeqCst) };
    }
}

/// Whether the program whose wasm this thread runs is ending: host
/// functions that block (WASI's sleeps and reads) look at it between
/// slices of their wait and give up.
pub fn current_terminated() -> bool {
    let p = CURRENT.with(|c| c.get());
    // SAFETY: non-null, `p` is the stop flag of the group of the store
    // whose wasm entry is live on this thread: the store's member keeps
    // the `Arc` alive, and the entry's guard clears the pointer before
    // the entry returns.
    !p.is_null() && unsafe { (*p).load(Ordering::SeqCst) }
}

/// Whether this thread runs wasm of a thread group (then host layers'
/// blocking calls must wait in slices, looking at [`current_terminated`]).
pub fn current_in_group() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// The signal [`ThreadGroup::terminate`] sends to threads running wasm:
/// a real-time signal the C library leaves free (`SIGRTMIN + 3`).
pub fn terminate_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

static INSTALL: Once = Once::new();

/// Installs the handler of [`terminate_signal`] (once per process).
fn install_handler() {
    INSTALL.call_once(|| {
        // On the alternate stack (the thread may be near its stack limit),
        // not deferred (the handler leaves with `longjmp`, which does not
        // restore the signal mask).
        signal::install_info(terminate_signal(), on_terminate, true, true);
    });
}

extern "C" fn on_terminate(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Whatever happens next, `terminate` may send another one.
    signal_handled();
    if !current_terminated() {
        return;
    }
    let jb = current_jmp_buf();
    if jb.is_null() {
        return;
    }
    // SAFETY: `ctx` is the kernel's `ucontext_t` for this running handler.
    let pc = unsafe { ucontext::fault_pc(ctx) };
    // Only in generated code: there, between the jump buffer and here lie
    // generated frames only, which own nothing. Elsewhere (a builtin, a
    // host function, the runtime) leave it be: `terminate` signals again.
    if crate::code::lookup_pc_now(pc).is_none() {
        return;
    }
    // SAFETY: `jb` is the jump buffer of the `mvvm_rt_enter` frame live on
    // this thread below the generated code that was interrupted (the PC
    // is in registered code and a jump buffer is installed); between it
    // and here lie only generated code and this handler's frame, which
    // holds nothing to drop. Generated code holds no lock and no
    // half-updated runtime state (it changes the runtime's state only
    // through builtins, which are not generated code).
    unsafe {
        unwind_with(
            jb,
            RawTrap {
                code: TrapCode::Terminated,
                pc,
                exact: true,
                wasm_offset: None,
            },
        )
    }
}

// The compiler checks what threads share: a build error here means a
// change made one of them unshareable.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<ThreadGroup>();
    send::<ThreadMember>();
    send_sync::<crate::Module>();
    send_sync::<crate::SharedMemory>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting only: `terminate` installs a signal handler, which Miri
    /// cannot run, so it is tested in `tests/threads.rs`.
    #[test]
    fn members_are_counted_until_dropped() {
        let g = ThreadGroup::new();
        assert_eq!(g.alive(), 0);
        let a = g.add_thread();
        let b = g.add_thread();
        assert_eq!(g.alive(), 2);
        assert_eq!(a.others_alive(), 1);
        let b = std::thread::spawn(move || drop(b));
        b.join().unwrap();
        assert_eq!(a.others_alive(), 0);
        assert!(!g.is_terminated());
        assert!(a.enter().is_some());
        drop(a);
        assert_eq!(g.alive(), 0);
    }
}
