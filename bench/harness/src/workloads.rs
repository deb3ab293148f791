//! The benchmark workloads: one C source each in `bench/src/`, a committed
//! wasm build in `bench/wasm/`, and two argument sets.
//!
//! A few sources are built twice: once as plain wasm32-wasi and once with
//! clang's `-msimd128` (auto-vectorised to the SIMD proposal's `v128`
//! operators), as a separate workload named `{source}-simd` whose native
//! comparison is built for x86-64-v2 (see [`Workload::simd`]).
//!
//! The "full" arguments are sized so that the native build runs for about
//! one to three seconds on the reference machine (2 cores, x86-64); the
//! "smoke" arguments run in a few milliseconds, so every workload can be
//! checked on every test run.

/// The family a workload belongs to, for grouping in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Graph kernels in the style of the GAP benchmark suite.
    Gap,
    /// Dense kernels in the style of PolyBench.
    PolyBench,
    /// Kernels in the style of the NAS parallel benchmarks.
    Nas,
    /// Small programs from the Computer Language Benchmarks Game.
    Classic,
    /// Application-like workloads (transformer, key-value store, memory).
    App,
}

impl Suite {
    /// Short name used in the CSV and tables.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Gap => "gap",
            Suite::PolyBench => "polybench",
            Suite::Nas => "nas",
            Suite::Classic => "classic",
            Suite::App => "app",
        }
    }
}

/// One workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Name: the module is `bench/wasm/{name}.wasm`, the native build
    /// `{name}` in the harness's work directory.
    pub name: &'static str,
    /// The C source, `bench/src/{source}.c`: the name itself, except for
    /// the SIMD variants, which share their scalar workload's source.
    pub source: &'static str,
    /// A SIMD build: the module was compiled with `clang -msimd128`
    /// (`bench/build-wasm.sh`) and the native build adds
    /// [`crate::tools::NATIVE_SIMD_CFLAGS`].
    pub simd: bool,
    /// Family.
    pub suite: Suite,
    /// Arguments of the smoke configuration.
    pub smoke: &'static [&'static str],
    /// Arguments of the full configuration.
    pub full: &'static [&'static str],
}

impl Workload {
    /// The arguments for the chosen size.
    pub fn args(&self, smoke: bool) -> &'static [&'static str] {
        if smoke { self.smoke } else { self.full }
    }
}

/// The source of a workload: its own name, or the `simd of` source.
macro_rules! source {
    ($name:literal) => {
        $name
    };
    ($name:literal, $source:literal) => {
        $source
    };
}

/// Whether a workload is a SIMD build: it names a `simd of` source.
macro_rules! simd {
    () => {
        false
    };
    ($source:literal) => {
        true
    };
}

macro_rules! workloads {
    ($( $name:literal $(simd of $source:literal)?, $suite:ident, [$($s:literal),*], [$($f:literal),*]; )*) => {
        /// Every workload, in report order.
        pub const ALL: &[Workload] = &[
            $( Workload {
                name: $name,
                source: source!($name $(, $source)?),
                simd: simd!($($source)?),
                suite: Suite::$suite,
                smoke: &[$($s),*],
                full: &[$($f),*],
            }, )*
        ];
    };
}

workloads! {
    "bc", Gap, ["-g8", "-n1"], ["-g18", "-n4"];
    "bfs", Gap, ["-g8", "-n2"], ["-g18", "-n40"];
    "pr", Gap, ["-g8", "-n1"], ["-g18", "-n4"];
    "cc", Gap, ["-g8", "-n1"], ["-g18", "-n8"];
    "sssp", Gap, ["-g8", "-n2"], ["-g18", "-n6"];
    "gemm", PolyBench, ["-s32"], ["-s1400"];
    "gemm-simd" simd of "gemm", PolyBench, ["-s32"], ["-s1400"];
    "2mm", PolyBench, ["-s32"], ["-s1000"];
    "lu", PolyBench, ["-s48"], ["-s1600"];
    "jacobi-2d", PolyBench, ["-s32", "-t4"], ["-s1500", "-t200"];
    "jacobi-2d-simd" simd of "jacobi-2d", PolyBench, ["-s32", "-t4"], ["-s1500", "-t200"];
    "floyd-warshall", PolyBench, ["-s48"], ["-s1200"];
    "cg", Nas, ["-s500", "-k5", "-i2"], ["-s75000", "-k13", "-i15"];
    "mg", Nas, ["-s4", "-i1"], ["-s7", "-i16"];
    "fft", Nas, ["-m8", "-r1"], ["-m20", "-r10"];
    "ep", Nas, ["-m12"], ["-m25"];
    "nbody", Classic, ["-n1000"], ["-n12000000"];
    "fannkuch-redux", Classic, ["-n6"], ["-n11"];
    "spectral-norm", Classic, ["-n50"], ["-n5000"];
    "mandelbrot", Classic, ["-n64"], ["-n4000"];
    "binary-trees", Classic, ["-n6"], ["-n18"];
    "llama2", App, ["-d32", "-l1", "-a2", "-v64", "-t8"], ["-d288", "-l6", "-a6", "-v4096", "-t256"];
    "kvstore", App, ["-k200", "-n2000"], ["-k1000000", "-n2000000"];
    "memfill", App, ["-m2", "-p1"], ["-m512", "-p6"];
}

/// Looks a workload up by name.
pub fn by_name(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

/// The line of a workload's output that carries its checksum.
pub const CHECKSUM_PREFIX: &str = "checksum: ";

/// Extracts the checksum from a workload's standard output: the text after
/// [`CHECKSUM_PREFIX`] on the last line that starts with it.
pub fn parse_checksum(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(CHECKSUM_PREFIX))
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
    }

    #[test]
    fn simd_variants_share_their_scalar_workloads_source_and_sizes() {
        let variants: Vec<&Workload> = ALL.iter().filter(|w| w.simd).collect();
        assert!(!variants.is_empty());
        for v in variants {
            assert_eq!(v.name, format!("{}-simd", v.source));
            let scalar = by_name(v.source).expect("the scalar workload exists");
            assert!(!scalar.simd);
            assert_eq!((v.smoke, v.full), (scalar.smoke, scalar.full), "{}", v.name);
        }
        for w in ALL.iter().filter(|w| !w.simd) {
            assert_eq!(w.source, w.name);
        }
    }

    #[test]
    fn checksum_is_taken_from_the_last_checksum_line() {
        let out = "trial 0\nchecksum: 1\nmore\nchecksum: 00ff\n";
        assert_eq!(parse_checksum(out).as_deref(), Some("00ff"));
        assert_eq!(parse_checksum("no checksum here\n"), None);
    }

    #[test]
    fn arguments_contain_no_commas() {
        // mvvm-checkpoint takes guest arguments as one comma-separated list.
        for w in ALL {
            for a in w.smoke.iter().chain(w.full) {
                assert!(!a.contains(','), "{}: {a}", w.name);
            }
        }
    }
}
