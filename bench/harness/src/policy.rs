//! The checkpoint policies measured, as `mvvm-aot` flags.
//!
//! Each is tried when the modules are compiled; a compiler that rejects the
//! flags (clap's usage error, exit code 2) marks the policy "n/a (not yet
//! supported)" instead of failing the run, so the harness works with the
//! compiler as it is today and picks policies up as they land.

/// One compilation configuration of MVVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Short name, used in file names, the CSV and column headers.
    pub name: &'static str,
    /// Extra `mvvm-aot` flags.
    pub flags: &'static [&'static str],
}

/// No checkpoint support compiled in: the baseline.
pub const NONE: Policy = Policy {
    name: "none",
    flags: &[],
};

/// Every policy, baseline first.
pub const ALL: &[Policy] = &[
    NONE,
    Policy {
        name: "func-entry",
        flags: &["--enable-checkpoint"],
    },
    Policy {
        name: "loop",
        flags: &["--enable-loop-checkpoint"],
    },
    Policy {
        name: "counter-8",
        flags: &["--enable-counter-loop-checkpoint", "--threshold-bits=8"],
    },
    Policy {
        name: "counter-16",
        flags: &["--enable-counter-loop-checkpoint", "--threshold-bits=16"],
    },
    Policy {
        name: "counter-20",
        flags: &["--enable-counter-loop-checkpoint", "--threshold-bits=20"],
    },
    Policy {
        name: "loop-dirty",
        flags: &["--enable-loop-dirty-checkpoint"],
    },
];
