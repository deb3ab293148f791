//! Arguments, environment, clocks, randomness and `poll_oneoff`.

use super::errno::Errno;
use super::mem::GuestMem;
use super::rights::need;
use super::state::FdKind;
use super::types::{EVENT_FD_READWRITE_HANGUP, EVENT_SIZE, SUBCLOCK_ABSTIME, SUBSCRIPTION_SIZE};
use super::types::{clockid, eventtype, rights};
use super::{WasiCtx, sys};
use std::time::Duration;

type R = Result<(), Errno>;

/// Writes `strings` as NUL-terminated strings at `buf` and their addresses
/// at `ptrs` (the `args_get`/`environ_get` layout).
fn write_string_list(m: &mut GuestMem<'_>, strings: &[String], ptrs: u32, buf: u32) -> R {
    let mut at = buf;
    for (i, s) in strings.iter().enumerate() {
        let slot = ptrs.checked_add(4 * i as u32).ok_or(Errno::FAULT)?;
        m.write_u32(slot, at)?;
        m.write_bytes(at, s.as_bytes())?;
        let nul = at.checked_add(s.len() as u32).ok_or(Errno::FAULT)?;
        m.write_u8(nul, 0)?;
        at = nul.checked_add(1).ok_or(Errno::FAULT)?;
    }
    Ok(())
}

fn write_sizes(m: &mut GuestMem<'_>, strings: &[String], count_ptr: u32, size_ptr: u32) -> R {
    let total: usize = strings.iter().map(|s| s.len() + 1).sum();
    m.write_u32(count_ptr, strings.len() as u32)?;
    m.write_u32(size_ptr, u32::try_from(total).map_err(|_| Errno::OVERFLOW)?)
}

/// A clock subscription after decoding: its deadline on the host's
/// monotonic clock.
struct ClockSub {
    userdata: u64,
    deadline_ns: u64,
}

/// An fd subscription after decoding.
struct FdSub {
    userdata: u64,
    fd: u32,
    write: bool,
}

/// One event ready to be written out.
struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

/// `poll_oneoff` whose subscriptions are all relative clocks (what
/// `sleep`, `usleep` and `nanosleep` make): it needs nothing of the WASI
/// state, so the threads of a program make it without holding the
/// context's lock (one thread's sleep must not hold up the others' calls).
/// `None` when a subscription is anything else, or a pointer is bad: the
/// caller then makes the ordinary call, which reports it. `a`: the call's
/// four arguments.
pub(crate) fn poll_relative_clocks(m: &mut GuestMem<'_>, a: &[u64]) -> Option<R> {
    let [subs_ptr, events_ptr, nsubs, nevents_ptr] = *a else {
        return None;
    };
    let (subs_ptr, events_ptr, nsubs, nevents_ptr) = (
        subs_ptr as u32,
        events_ptr as u32,
        nsubs as u32,
        nevents_ptr as u32,
    );
    if nsubs == 0 || nsubs > 64 {
        return None;
    }
    m.check(subs_ptr, nsubs.checked_mul(SUBSCRIPTION_SIZE)?)
        .ok()?;
    m.check(events_ptr, nsubs.checked_mul(EVENT_SIZE)?).ok()?;
    m.check(nevents_ptr, 4).ok()?;
    let start = sys::clock_gettime(libc::CLOCK_MONOTONIC).ok()?;
    let mut clocks = Vec::with_capacity(nsubs as usize);
    for i in 0..nsubs {
        let s = subs_ptr + i * SUBSCRIPTION_SIZE;
        if m.read_u8(s + 8).ok()? != eventtype::CLOCK
            || m.read_u16(s + 40).ok()? & SUBCLOCK_ABSTIME != 0
        {
            return None;
        }
        WasiCtx::host_clock(m.read_u32(s + 16).ok()?).ok()?;
        clocks.push(ClockSub {
            userdata: m.read_u64(s).ok()?,
            deadline_ns: start.saturating_add(m.read_u64(s + 24).ok()?),
        });
    }
    Some(sleep_until_first(m, &clocks, events_ptr, nevents_ptr))
}

/// Sleeps until the first of `clocks` is due (in slices, like every
/// blocking call: a checkpoint request or the program's end interrupts
/// it), then writes an event for each that is due.
fn sleep_until_first(
    m: &mut GuestMem<'_>,
    clocks: &[ClockSub],
    events_ptr: u32,
    nevents_ptr: u32,
) -> R {
    let earliest = clocks.iter().map(|c| c.deadline_ns).min().unwrap_or(0);
    let mut now = sys::clock_gettime(libc::CLOCK_MONOTONIC)?;
    while now < earliest {
        super::interrupt::check_request()?;
        if let Some(d) = super::interrupt::slice(Some(Duration::from_nanos(earliest - now))) {
            std::thread::sleep(d);
        }
        now = sys::clock_gettime(libc::CLOCK_MONOTONIC)?;
    }
    let mut n = 0u32;
    for c in clocks.iter().filter(|c| c.deadline_ns <= now) {
        let mut rec = [0u8; EVENT_SIZE as usize];
        rec[0..8].copy_from_slice(&c.userdata.to_le_bytes());
        rec[10] = eventtype::CLOCK;
        m.write_bytes(events_ptr + n * EVENT_SIZE, &rec)?;
        n += 1;
    }
    m.write_u32(nevents_ptr, n)
}

impl WasiCtx {
    pub(super) fn args_get(&mut self, m: &mut GuestMem<'_>, argv: u32, buf: u32) -> R {
        write_string_list(m, &self.state.args, argv, buf)
    }

    pub(super) fn args_sizes_get(&mut self, m: &mut GuestMem<'_>, c: u32, s: u32) -> R {
        write_sizes(m, &self.state.args, c, s)
    }

    pub(super) fn environ_get(&mut self, m: &mut GuestMem<'_>, env: u32, buf: u32) -> R {
        write_string_list(m, &self.state.env, env, buf)
    }

    pub(super) fn environ_sizes_get(&mut self, m: &mut GuestMem<'_>, c: u32, s: u32) -> R {
        write_sizes(m, &self.state.env, c, s)
    }

    fn host_clock(id: u32) -> Result<libc::clockid_t, Errno> {
        Ok(match id {
            clockid::REALTIME => libc::CLOCK_REALTIME,
            clockid::MONOTONIC => libc::CLOCK_MONOTONIC,
            clockid::PROCESS_CPUTIME => libc::CLOCK_PROCESS_CPUTIME_ID,
            clockid::THREAD_CPUTIME => libc::CLOCK_THREAD_CPUTIME_ID,
            _ => return Err(Errno::INVAL),
        })
    }

    /// The guest's view of clock `id`, in nanoseconds.
    pub(crate) fn now(&self, id: u32) -> Result<u64, Errno> {
        let t = sys::clock_gettime(Self::host_clock(id)?)?;
        if id == clockid::MONOTONIC {
            Ok(t.saturating_add_signed(self.state.clocks.monotonic_offset_ns))
        } else {
            Ok(t)
        }
    }

    pub(super) fn clock_res_get(&mut self, m: &mut GuestMem<'_>, id: u32, out: u32) -> R {
        let res = sys::clock_getres(Self::host_clock(id)?)?;
        m.write_u64(out, res)
    }

    pub(super) fn clock_time_get(
        &mut self,
        m: &mut GuestMem<'_>,
        id: u32,
        _precision: u64,
        out: u32,
    ) -> R {
        let t = self.now(id)?;
        m.write_u64(out, t)
    }

    pub(super) fn random_get(&mut self, m: &mut GuestMem<'_>, buf: u32, len: u32) -> R {
        m.check(buf, len)?;
        // Through a host buffer, not straight into guest memory: the kernel
        // cannot write into a write-protected chunk of a dirty-tracked
        // memory (EFAULT instead of a fault the runtime resolves), while a
        // copy by host code faults, is recorded and is retried.
        let mut bytes = vec![0u8; len as usize];
        sys::getrandom(&mut bytes)?;
        m.write_bytes(buf, &bytes)
    }

    /// Decodes one clock subscription into a host monotonic deadline.
    fn clock_deadline(&self, id: u32, timeout: u64, flags: u16) -> Result<u64, Errno> {
        let host_mono = sys::clock_gettime(libc::CLOCK_MONOTONIC)?;
        if flags & SUBCLOCK_ABSTIME == 0 {
            // Relative timeouts of any valid clock count from now.
            Self::host_clock(id)?;
            return Ok(host_mono.saturating_add(timeout));
        }
        let now = self.now(id)?;
        Ok(host_mono.saturating_add(timeout.saturating_sub(now)))
    }

    pub(super) fn poll_oneoff(
        &mut self,
        m: &mut GuestMem<'_>,
        subs_ptr: u32,
        events_ptr: u32,
        nsubs: u32,
        nevents_ptr: u32,
    ) -> R {
        if nsubs == 0 {
            return Err(Errno::INVAL);
        }
        let subs_len = nsubs.checked_mul(SUBSCRIPTION_SIZE).ok_or(Errno::FAULT)?;
        let evs_len = nsubs.checked_mul(EVENT_SIZE).ok_or(Errno::FAULT)?;
        m.check(subs_ptr, subs_len)?;
        m.check(events_ptr, evs_len)?;
        m.check(nevents_ptr, 4)?;

        let mut clocks = Vec::new();
        let mut fds = Vec::new();
        let mut ready: Vec<Event> = Vec::new();
        for i in 0..nsubs {
            let s = subs_ptr + i * SUBSCRIPTION_SIZE;
            let userdata = m.read_u64(s)?;
            let tag = m.read_u8(s + 8)?;
            match tag {
                eventtype::CLOCK => {
                    let id = m.read_u32(s + 16)?;
                    let timeout = m.read_u64(s + 24)?;
                    let flags = m.read_u16(s + 40)?;
                    match self.clock_deadline(id, timeout, flags) {
                        Ok(deadline_ns) => clocks.push(ClockSub {
                            userdata,
                            deadline_ns,
                        }),
                        Err(error) => ready.push(Event {
                            userdata,
                            error,
                            kind: tag,
                            nbytes: 0,
                            flags: 0,
                        }),
                    }
                }
                eventtype::FD_READ | eventtype::FD_WRITE => {
                    let fd = m.read_u32(s + 16)?;
                    let write = tag == eventtype::FD_WRITE;
                    let got = self.get(fd).and_then(|(entry, handle)| {
                        need(entry, rights::POLL_FD_READWRITE)?;
                        Ok((entry, handle))
                    });
                    match got {
                        Err(error) => ready.push(Event {
                            userdata,
                            error,
                            kind: tag,
                            nbytes: 0,
                            flags: 0,
                        }),
                        Ok((entry, handle)) => {
                            if matches!(entry.kind, FdKind::File) {
                                // Regular files are always ready.
                                let nbytes = if write {
                                    0
                                } else {
                                    sys::fstat(handle)
                                        .map(|st| {
                                            (st.st_size as u64).saturating_sub(entry.position)
                                        })
                                        .unwrap_or(0)
                                };
                                ready.push(Event {
                                    userdata,
                                    error: Errno::SUCCESS,
                                    kind: tag,
                                    nbytes,
                                    flags: 0,
                                });
                            } else {
                                fds.push(FdSub {
                                    userdata,
                                    fd,
                                    write,
                                });
                            }
                        }
                    }
                }
                _ => return Err(Errno::INVAL),
            }
        }

        loop {
            let now = sys::clock_gettime(libc::CLOCK_MONOTONIC)?;
            let earliest = clocks.iter().map(|c| c.deadline_ns).min();
            let mut timeout_ns: Option<u64> = earliest.map(|d| d.saturating_sub(now));
            if !ready.is_empty() {
                timeout_ns = Some(0);
            } else {
                // A checkpoint request interrupts the wait (nothing has
                // been written yet: the call is made again on restore).
                super::interrupt::check_request()?;
                timeout_ns = super::interrupt::slice(timeout_ns.map(Duration::from_nanos))
                    .map(|d| d.as_nanos() as u64);
            }
            if fds.is_empty() {
                if let Some(ns) = timeout_ns
                    && ns > 0
                {
                    std::thread::sleep(Duration::from_nanos(ns));
                }
            } else {
                let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(fds.len());
                for f in &fds {
                    let (_, h) = self.get(f.fd)?;
                    pollfds.push(libc::pollfd {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&h),
                        events: if f.write { libc::POLLOUT } else { libc::POLLIN },
                        revents: 0,
                    });
                }
                let ms: libc::c_int = match timeout_ns {
                    None => -1,
                    Some(ns) => ns.div_ceil(1_000_000).min(i32::MAX as u64) as libc::c_int,
                };
                match sys::poll(&mut pollfds, ms) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                for (f, p) in fds.iter().zip(&pollfds) {
                    if p.revents == 0 {
                        continue;
                    }
                    let error = if p.revents & libc::POLLNVAL != 0 {
                        Errno::BADF
                    } else {
                        Errno::SUCCESS
                    };
                    ready.push(Event {
                        userdata: f.userdata,
                        error,
                        kind: if f.write {
                            eventtype::FD_WRITE
                        } else {
                            eventtype::FD_READ
                        },
                        nbytes: 0,
                        flags: if p.revents & libc::POLLHUP != 0 {
                            EVENT_FD_READWRITE_HANGUP
                        } else {
                            0
                        },
                    });
                }
            }
            let now = sys::clock_gettime(libc::CLOCK_MONOTONIC)?;
            for c in &clocks {
                if c.deadline_ns <= now {
                    ready.push(Event {
                        userdata: c.userdata,
                        error: Errno::SUCCESS,
                        kind: eventtype::CLOCK,
                        nbytes: 0,
                        flags: 0,
                    });
                }
            }
            if !ready.is_empty() {
                break;
            }
        }

        for (i, e) in ready.iter().enumerate() {
            let at = events_ptr + i as u32 * EVENT_SIZE;
            let mut rec = [0u8; EVENT_SIZE as usize];
            rec[0..8].copy_from_slice(&e.userdata.to_le_bytes());
            rec[8..10].copy_from_slice(&e.error.0.to_le_bytes());
            rec[10] = e.kind;
            rec[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
            rec[24..26].copy_from_slice(&e.flags.to_le_bytes());
            m.write_bytes(at, &rec)?;
        }
        m.write_u32(nevents_ptr, ready.len() as u32)
    }
}
