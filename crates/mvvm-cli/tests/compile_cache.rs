//! The compiled-object cache of `.wasm`/`.wat` targets: the first run
//! stores the object, the next ones load it (and print what an uncached run
//! prints), every compile input has its own entry, a damaged, foreign or
//! loader-refused entry is compiled again and replaced, `--no-cache` and
//! `MVVM_NO_CACHE=1` write nothing, and a cache that cannot be used only
//! warns once.

use mvvm_cli::compile_cache::{CompileCache, Lookup};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CHECKPOINT: &str = env!("CARGO_BIN_EXE_mvvm-checkpoint");
const RESTORE: &str = env!("CARGO_BIN_EXE_mvvm-restore");

/// Exit code of MVVM failing (see `exit.rs`).
const FAILURE: i32 = 125;

const HIT: &str = "compiled-object cache hit";
const MISS: &str = "compiled-object cache miss";
const INVALID: &str = "compiled-object cache entry invalid";
const REFUSED: &str = "compiled-object cache entry refused by the loader";
const UNUSABLE: &str = "not usable";

/// A fresh directory (removed when the test passes).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("compile-cache-{name}-{}", std::process::id()));
        if d.exists() {
            let _ = make_writable(&d);
            let _ = std::fs::remove_dir_all(&d);
        }
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = make_writable(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn make_writable(d: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(d)?.flatten() {
        if e.file_type()?.is_dir() {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o700))?;
            make_writable(&e.path())?;
        }
    }
    Ok(())
}

/// `test/ckpt/compute.wasm`: a deterministic C program (sieve, Collatz,
/// hash) that prints its results.
fn compute_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/ckpt/compute.wasm")
}

/// A tool run with `XDG_CACHE_HOME=xdg` (and `HOME` inside the scratch
/// directory, so the real home is never touched), `MVVM_LOG=debug`.
fn run(tool: &str, xdg: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(Stdio::null())
        .env("XDG_CACHE_HOME", xdg)
        .env("HOME", xdg.join("home"))
        .env("MVVM_LOG", "debug")
        .env_remove("MVVM_NO_CACHE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `mvvm-checkpoint -t compute.wasm` with the cache in `xdg`; checks that
/// it ran to the end (exit 0) and returns stdout and stderr.
fn checkpoint(xdg: &Path, extra: &[&str], envs: &[(&str, &str)]) -> (Vec<u8>, String) {
    let wasm = compute_wasm();
    let mut args: Vec<&std::ffi::OsStr> = vec!["-t".as_ref(), wasm.as_os_str()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    let out = run(CHECKPOINT, xdg, &args, envs);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    assert!(!out.stdout.is_empty(), "the program printed nothing");
    (out.stdout, err)
}

/// The `.aot` entries in a cache directory.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(list) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = list
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "aot"))
        .collect();
    v.sort();
    v
}

/// Files left under a name that is no entry (temporary files).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .map(|e| e.path())
                .filter(|p| !p.extension().is_some_and(|x| x == "aot" || x == "exe-id"))
                .collect()
        })
        .unwrap_or_default()
}

/// The one entry of `dir`.
fn only_entry(dir: &Path) -> PathBuf {
    let e = entries(dir);
    assert_eq!(e.len(), 1, "entries: {e:?}");
    e[0].clone()
}

/// The SHA-256 of `bytes` (for forging an entry whose digest matches).
fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Length of an entry's header (magic, key, digest, length).
const HEADER: usize = 80;

#[test]
fn first_run_stores_second_run_hits_with_the_same_output() {
    let s = Scratch::new("hit");
    let xdg = s.join("xdg");
    let cache = xdg.join("mvvm");
    let (reference, _) = checkpoint(&s.join("unused"), &["--no-cache"], &[]);

    let (out1, err1) = checkpoint(&xdg, &[], &[]);
    assert!(err1.contains(MISS), "{err1}");
    assert!(!err1.contains(HIT), "{err1}");
    let entry = only_entry(&cache);
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "cache directory mode {mode:o}");
    let before = std::fs::metadata(&entry).unwrap();
    let bytes_before = std::fs::read(&entry).unwrap();

    let (out2, err2) = checkpoint(&xdg, &[], &[]);
    assert!(err2.contains(HIT), "{err2}");
    assert!(!err2.contains(MISS), "{err2}");
    assert!(
        !err2.contains("hashed the running executable"),
        "the executable's digest is remembered:\n{err2}"
    );
    assert_eq!(only_entry(&cache), entry);
    let after = std::fs::metadata(&entry).unwrap();
    assert_eq!(before.ino(), after.ino(), "the entry was not rewritten");
    assert_eq!(std::fs::read(&entry).unwrap(), bytes_before);

    assert_eq!(out1, reference, "first (compiling) run");
    assert_eq!(out2, reference, "second (cached) run");
}

#[test]
fn restore_uses_the_cache_too() {
    let s = Scratch::new("restore");
    let xdg = s.join("xdg");
    let wasm = compute_wasm();
    let missing = s.join("no-such-snapshot.bin");
    let args: Vec<&std::ffi::OsStr> = vec![
        "-t".as_ref(),
        wasm.as_os_str(),
        "--snapshot".as_ref(),
        missing.as_os_str(),
    ];
    // No snapshot to restore: the run fails after the program is loaded.
    let first = run(RESTORE, &xdg, &args, &[]);
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(FAILURE), "{err}");
    assert!(err.contains(MISS), "{err}");
    let second = run(RESTORE, &xdg, &args, &[]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(FAILURE), "{err}");
    assert!(err.contains(HIT), "{err}");
    let mut no_cache = args.clone();
    no_cache.push("--no-cache".as_ref());
    let third = run(RESTORE, &s.join("xdg-none"), &no_cache, &[]);
    assert_eq!(third.status.code(), Some(FAILURE));
    assert!(!s.join("xdg-none").exists(), "--no-cache wrote nothing");
}

#[test]
fn every_compile_option_has_its_own_entry() {
    let s = Scratch::new("options");
    let dir = s.join("cache");
    let cache = CompileCache::at(&dir);
    let wasm = compute_wasm();
    let input = std::fs::read(&wasm).unwrap();
    let base = mvvm_aot::CompileOptions::default();
    let variants = [
        base,
        mvvm_aot::CompileOptions {
            opt_level: 0,
            ..base
        },
        mvvm_aot::CompileOptions {
            policy: mvvm_aot::Policy::Loop,
            ..base
        },
        mvvm_aot::CompileOptions {
            policy: mvvm_aot::Policy::CounterLoop { threshold_bits: 4 },
            ..base
        },
        mvvm_aot::CompileOptions {
            policy: mvvm_aot::Policy::CounterLoop { threshold_bits: 5 },
            ..base
        },
    ];
    let mut objects = Vec::new();
    for (i, opts) in variants.iter().enumerate() {
        let got = cache
            .load_or_compile(&wasm, &input, opts, |b| Ok(b.to_vec()))
            .unwrap();
        assert_eq!(got.lookup, Lookup::Miss, "variant {i}");
        assert_eq!(entries(&dir).len(), i + 1, "variant {i}");
        // What is cached is exactly what the compiler gives.
        assert_eq!(got.value, mvvm_aot::compile(&input, opts).unwrap());
        objects.push(got.value);
    }
    for (i, opts) in variants.iter().enumerate() {
        let got = cache
            .load_or_compile(&wasm, &input, opts, |b| Ok(b.to_vec()))
            .unwrap();
        assert_eq!(got.lookup, Lookup::Hit, "variant {i}");
        assert_eq!(got.value, objects[i], "variant {i}");
    }
    // Another module, same options: another entry.
    let other =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/ckpt/floats.wasm"))
            .unwrap();
    let got = cache
        .load_or_compile(&wasm, &other, &base, |b| Ok(b.to_vec()))
        .unwrap();
    assert_eq!(got.lookup, Lookup::Miss);
    assert_eq!(entries(&dir).len(), variants.len() + 1);
}

#[test]
fn a_foreign_entry_is_replaced() {
    let s = Scratch::new("foreign");
    let dir = s.join("cache");
    let cache = CompileCache::at(&dir);
    let wasm = compute_wasm();
    let input = std::fs::read(&wasm).unwrap();
    let a = mvvm_aot::CompileOptions::default();
    let b = mvvm_aot::CompileOptions { opt_level: 0, ..a };
    let load = |bytes: &[u8]| Ok(bytes.to_vec());
    let obj_a = cache
        .load_or_compile(&wasm, &input, &a, load)
        .unwrap()
        .value;
    let entry_a = only_entry(&dir);
    let obj_b = cache
        .load_or_compile(&wasm, &input, &b, load)
        .unwrap()
        .value;
    let entry_b = entries(&dir).into_iter().find(|e| *e != entry_a).unwrap();
    // B's entry now holds A's (an intact entry, but of another key).
    std::fs::copy(&entry_a, &entry_b).unwrap();
    let got = cache.load_or_compile(&wasm, &input, &b, load).unwrap();
    assert_eq!(got.lookup, Lookup::Replaced);
    assert_eq!(got.value, obj_b);
    assert_ne!(obj_a, obj_b);
    let got = cache.load_or_compile(&wasm, &input, &b, load).unwrap();
    assert_eq!(got.lookup, Lookup::Hit, "the entry was rewritten");
    assert_eq!(got.value, obj_b);
}

#[test]
fn damaged_entries_are_compiled_again_and_replaced() {
    let s = Scratch::new("damaged");
    let xdg = s.join("xdg");
    let cache = xdg.join("mvvm");
    let (reference, _) = checkpoint(&xdg, &[], &[]);
    let entry = only_entry(&cache);
    let good = std::fs::read(&entry).unwrap();
    assert!(good.len() > HEADER + 1000);

    let mut flipped_code = good.clone();
    let mid = HEADER + (good.len() - HEADER) / 2;
    flipped_code[mid] ^= 0x40;
    let mut flipped_header = good.clone();
    flipped_header[3] ^= 1;
    let mut flipped_key = good.clone();
    flipped_key[20] ^= 1;
    // A well-formed entry (digest and length match) whose object the
    // loader refuses.
    let junk = vec![0x5au8; 4096];
    let mut refused = good[..HEADER].to_vec();
    refused[40..72].copy_from_slice(&sha256(&junk));
    refused[72..80].copy_from_slice(&(junk.len() as u64).to_le_bytes());
    refused.extend_from_slice(&junk);
    let damages: [(&str, Vec<u8>, &str); 7] = [
        (
            "truncated to half",
            good[..good.len() / 2].to_vec(),
            INVALID,
        ),
        (
            "truncated by one byte",
            good[..good.len() - 1].to_vec(),
            INVALID,
        ),
        ("header only", good[..HEADER].to_vec(), INVALID),
        ("empty", Vec::new(), INVALID),
        ("one bit of the code flipped", flipped_code, INVALID),
        ("magic damaged", flipped_header, INVALID),
        ("key damaged", flipped_key, INVALID),
    ];
    for (what, bytes, expect) in
        damages
            .into_iter()
            .chain([("refused by the loader", refused, REFUSED)])
    {
        std::fs::write(&entry, &bytes).unwrap();
        let (out, err) = checkpoint(&xdg, &[], &[]);
        assert!(err.contains(expect), "{what}: {err}");
        assert!(!err.contains(HIT), "{what}: {err}");
        assert_eq!(out, reference, "{what}: the program ran as it should");
        assert_eq!(only_entry(&cache), entry, "{what}");
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: replaced");
        let (out, err) = checkpoint(&xdg, &[], &[]);
        assert!(err.contains(HIT), "{what}: then hit: {err}");
        assert_eq!(out, reference, "{what}");
    }
}

#[test]
fn no_cache_writes_nothing() {
    let s = Scratch::new("nocache");
    let xdg = s.join("xdg");
    let (out1, err) = checkpoint(&xdg, &["--no-cache"], &[]);
    assert!(!err.contains(MISS) && !err.contains(HIT), "{err}");
    assert!(!xdg.exists(), "--no-cache created {}", xdg.display());
    let (out2, _) = checkpoint(&xdg, &[], &[("MVVM_NO_CACHE", "1")]);
    assert!(!xdg.exists(), "MVVM_NO_CACHE=1 created {}", xdg.display());
    assert_eq!(out1, out2);
    // `MVVM_NO_CACHE=0` is no request to turn it off.
    let (out3, err) = checkpoint(&xdg, &[], &[("MVVM_NO_CACHE", "0")]);
    assert!(err.contains(MISS), "{err}");
    assert_eq!(out3, out1);
    assert_eq!(entries(&xdg.join("mvvm")).len(), 1);
}

#[test]
fn an_unusable_cache_only_warns() {
    let s = Scratch::new("unusable");
    let (reference, _) = checkpoint(&s.join("unused"), &["--no-cache"], &[]);

    // XDG_CACHE_HOME is a file: the directory cannot be created.
    let file = s.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (out, err) = checkpoint(&file, &[], &[]);
    assert_eq!(out, reference);
    assert_eq!(err.matches(UNUSABLE).count(), 1, "warned once:\n{err}");
    assert!(err.contains("WARN"), "{err}");

    // Without MVVM_LOG the warning is still shown (warnings are on by
    // default), once.
    let wasm = compute_wasm();
    let out = Command::new(CHECKPOINT)
        .args(["-t".as_ref(), wasm.as_os_str()])
        .env("XDG_CACHE_HOME", &file)
        .env_remove("MVVM_LOG")
        .env_remove("MVVM_NO_CACHE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(out.stdout, reference);
    assert_eq!(err.matches(UNUSABLE).count(), 1, "warned once:\n{err}");

    // A directory that others may write is not trusted.
    let open = s.join("open");
    std::fs::create_dir_all(open.join("mvvm")).unwrap();
    std::fs::set_permissions(open.join("mvvm"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (out, err) = checkpoint(&open, &[], &[]);
    assert_eq!(out, reference);
    assert!(err.contains("writable by others"), "{err}");
    assert!(entries(&open.join("mvvm")).is_empty());

    // A directory nobody may write. Root writes through a 0500 directory,
    // so as root the cache home is one the kernel refuses to create
    // anything in (`/proc/self/fdinfo`) instead: the case runs either way.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ro = if root {
        std::path::PathBuf::from("/proc/self/fdinfo")
    } else {
        let ro = s.join("ro");
        std::fs::create_dir_all(ro.join("mvvm")).unwrap();
        std::fs::set_permissions(ro.join("mvvm"), std::fs::Permissions::from_mode(0o500)).unwrap();
        ro
    };
    let (out, err) = checkpoint(&ro, &[], &[]);
    assert_eq!(out, reference);
    assert_eq!(err.matches(UNUSABLE).count(), 1, "warned once:\n{err}");
    if !root {
        assert!(entries(&ro.join("mvvm")).is_empty());
    }
}

#[test]
fn concurrent_first_runs_agree() {
    let s = Scratch::new("concurrent");
    let xdg = s.join("xdg");
    let (reference, _) = checkpoint(&s.join("unused"), &["--no-cache"], &[]);
    let wasm = compute_wasm();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(CHECKPOINT)
                .args(["-t".as_ref(), wasm.as_os_str()])
                .env("XDG_CACHE_HOME", &xdg)
                .env_remove("MVVM_LOG")
                .env_remove("MVVM_NO_CACHE")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(err.is_empty(), "no warning: {err}");
        assert_eq!(out.stdout, reference);
    }
    let cache = xdg.join("mvvm");
    only_entry(&cache);
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
    let (out, err) = checkpoint(&xdg, &[], &[]);
    assert!(err.contains(HIT), "{err}");
    assert_eq!(out, reference);
}
