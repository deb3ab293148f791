//! The threaded workloads: programs of `test/threads` (POSIX threads over
//! wasi-threads), each the threaded form of one serial workload of
//! `bench/`, run at several thread counts natively (gcc `-pthread`), under
//! MVVM and under a Wasmtime that still runs wasi-threads.
//!
//! The programs pick their thread count from `OMP_NUM_THREADS`
//! ([`THREADS_ENV`]) and print the same bytes for any count, so every run
//! is checked against the native build at one thread. Their smoke
//! arguments are the serial workload's smoke arguments made explicit, so a
//! threaded program's smoke checksum is its serial workload's entry in
//! `bench/expected-smoke.txt`.

use std::ffi::OsString;

/// The environment variable the programs read their thread count from.
pub const THREADS_ENV: &str = "OMP_NUM_THREADS";

/// Thread counts measured by default.
pub const THREAD_COUNTS: &[u32] = &[1, 2, 4];

/// The thread count of the checkpoint trial of a threaded workload.
pub const CHECKPOINT_THREADS: u32 = 4;

/// One threaded workload.
#[derive(Debug, Clone, Copy)]
pub struct ThreadedWorkload {
    /// Name: the module is `test/threads/{name}.wasm`, the source
    /// `test/threads/{name}.c`.
    pub name: &'static str,
    /// The serial workload of `bench/` whose output it reproduces for the
    /// same arguments.
    pub serial: &'static str,
    /// Arguments of the smoke configuration (the serial workload's smoke
    /// arguments with its defaults spelled out, since the threaded
    /// programs' defaults are larger).
    pub smoke: &'static [&'static str],
    /// Arguments of the full configuration (about 1 s natively on one
    /// thread on the reference machine).
    pub full: &'static [&'static str],
}

impl ThreadedWorkload {
    /// The arguments for the chosen size.
    pub fn args(&self, smoke: bool) -> &'static [&'static str] {
        if smoke { self.smoke } else { self.full }
    }
}

/// Every threaded workload, in report order.
pub const ALL: &[ThreadedWorkload] = &[
    ThreadedWorkload {
        name: "bc_mt",
        serial: "bc",
        smoke: &["-g8", "-n1", "-i1"],
        full: &["-g15", "-n2", "-i64"],
    },
    ThreadedWorkload {
        name: "gemm_mt",
        serial: "gemm",
        smoke: &["-s32", "-r1"],
        full: &["-s1000", "-r1"],
    },
    ThreadedWorkload {
        name: "jacobi-2d_mt",
        serial: "jacobi-2d",
        smoke: &["-s32", "-t4"],
        full: &["-s1200", "-t200"],
    },
];

/// Looks a threaded workload up by name.
pub fn by_name(name: &str) -> Option<&'static ThreadedWorkload> {
    ALL.iter().find(|w| w.name == name)
}

/// The `K=V` that sets the thread count.
pub fn env_entry(threads: u32) -> String {
    format!("{THREADS_ENV}={threads}")
}

/// The arguments that give an MVVM run `threads` threads: the runner does
/// not inherit the environment, it takes the guest's with `-e`.
pub fn mvvm_env_args(threads: u32) -> Vec<OsString> {
    vec!["-e".into(), env_entry(threads).into()]
}

/// Column and CSV label of one way of running at one thread count:
/// `native-t4`, `mvvm-none-t4`, `wasmtime-t4`.
pub fn label(base: &str, threads: u32) -> String {
    format!("{base}-t{threads}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threaded_workload_mirrors_a_serial_workload() {
        for w in ALL {
            assert!(
                crate::workloads::by_name(w.serial).is_some(),
                "{}: no serial workload {}",
                w.name,
                w.serial
            );
            assert!(
                crate::workloads::by_name(w.name).is_none(),
                "{} is also a serial name",
                w.name
            );
            for a in w.smoke.iter().chain(w.full) {
                assert!(!a.contains(','), "{}: {a}", w.name);
            }
        }
        assert_eq!(THREAD_COUNTS, [1, 2, 4]);
        assert!(THREAD_COUNTS.contains(&CHECKPOINT_THREADS));
    }

    #[test]
    fn labels_and_environment() {
        assert_eq!(label("mvvm-none", 4), "mvvm-none-t4");
        assert_eq!(
            mvvm_env_args(2),
            vec![OsString::from("-e"), OsString::from("OMP_NUM_THREADS=2")]
        );
    }
}
