//! The compiled-object cache: `mvvm-checkpoint -t prog.wasm` and
//! `mvvm-restore -t prog.wasm` compile the module once and reuse the object
//! on later runs.
//!
//! # Where and under which name
//!
//! `$XDG_CACHE_HOME/mvvm` (a relative `XDG_CACHE_HOME` is ignored, as the
//! XDG spec says), else `$HOME/.cache/mvvm`; created with mode 0700. An
//! object is the file `KEY.aot`, `KEY` being the hex SHA-256 of
//!
//! - the input bytes (wasm binary or WAT text, as read),
//! - every field of [`mvvm_aot::CompileOptions`] (its `Debug` text, so a
//!   field added later is part of the key without anyone remembering to add
//!   it here): policy with its threshold bits, opt level, target, portable,
//! - the CPU features Cranelift detects on this host (a cache shared by
//!   machines, e.g. a home directory on NFS, must not hand a machine code
//!   for another CPU's features),
//! - the compiler's identity: the toolchain version, the `.aot` format
//!   version, and the SHA-256 of the running executable, which changes with
//!   any change of the compiler's code even when the version does not.
//!
//! Hashing the executable reads all of it (tens of MB with line tables), so
//! its digest is remembered in the cache too, in a file named after the
//! executable's identity on disk (device, inode, size, modification and
//! change times to the nanosecond): a rebuilt or replaced executable is a
//! new file with a new change time, and is hashed afresh.
//!
//! # What is trusted
//!
//! An entry is a header (magic, key, SHA-256 and length of the object) then
//! the object. A truncated, corrupted or foreign entry (wrong magic, key,
//! length or digest, or a file owned by another user) is never used: it is
//! recompiled and replaced, with a debug log. The object that passes is
//! still given to the loader, which validates it; if that fails the module
//! is compiled again and the entry replaced. The directory must be owned by
//! this user and writable by no one else, else the cache is not used.
//!
//! # Failures
//!
//! The cache is an optimisation and never makes a run fail: a directory
//! that cannot be created or written warns once (`tracing::warn`) and the
//! module is compiled in memory as without the cache. Writes are atomic
//! (temporary file in the cache directory, fsync, rename, fsync of the
//! directory), so concurrent runs at worst compile the same object twice
//! and one of them wins the rename. The cache is bounded: after a write,
//! the least recently used entries are removed beyond [`MAX_BYTES`] or
//! [`MAX_ENTRIES`] (a hit refreshes an entry's modification time).
//!
//! Hits and misses are logged at debug level (`MVVM_LOG=debug`).

use anyhow::{Context, Result, anyhow, bail};
use ring::digest::{Context as Sha256, SHA256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// Environment variable that turns the cache off (any value but empty or
/// `0`), like `--no-cache`.
pub const NO_CACHE_ENV: &str = "MVVM_NO_CACHE";

/// Total size of the entries kept; beyond it the least recently used go.
pub const MAX_BYTES: u64 = 1 << 30;

/// Number of files kept (objects and executable digests).
pub const MAX_ENTRIES: usize = 512;

/// First bytes of an entry; the last two digits are the entry format.
const ENTRY_MAGIC: &[u8; 8] = b"MVVMCC01";

/// Bytes before the object: magic, key, digest of the object, its length.
const HEADER_LEN: usize = 8 + 32 + 32 + 8;

/// Extension of object entries.
const OBJECT_EXT: &str = "aot";
/// Extension of a resume clone's entry (see [`CompileCache::read_clone`]).
const CLONE_EXT: &str = "clone";

/// Extension of the remembered digests of executables.
const EXE_ID_EXT: &str = "exe-id";

/// Prefix of temporary files (removed by pruning when older than an hour:
/// left by a process killed mid-write).
const TEMP_PREFIX: &str = ".tmp-";

/// `--no-cache`, shared by `mvvm-checkpoint` and `mvvm-restore`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheFlags {
    /// Do not use the compiled-object cache (`MVVM_NO_CACHE=1` does the
    /// same). A `.wasm`/`.wat` target is compiled once and its object kept
    /// in `$XDG_CACHE_HOME/mvvm` (default `~/.cache/mvvm`), keyed by the
    /// SHA-256 of the module, the compile options, this CPU's features and
    /// this build of MVVM; later runs load it instead of compiling again.
    /// An entry that is damaged or fails to load is compiled again and
    /// replaced; a cache directory that cannot be written only warns.
    /// Remove the directory to empty the cache. `.aot` targets are never
    /// cached.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

impl CacheFlags {
    /// The cache these flags and the environment ask for.
    pub fn cache(&self) -> CompileCache {
        if self.no_cache || env_no_cache() {
            tracing::debug!("compiled-object cache off (--no-cache or {NO_CACHE_ENV})");
            return CompileCache::disabled();
        }
        CompileCache::from_env()
    }
}

/// Whether `MVVM_NO_CACHE` is set to something other than empty or `0`.
fn env_no_cache() -> bool {
    std::env::var_os(NO_CACHE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The cache directory the environment names: `$XDG_CACHE_HOME/mvvm` or
/// `$HOME/.cache/mvvm` (only absolute paths count).
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("mvvm"))
}

/// Where compiled objects are kept, or nowhere.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How [`CompileCache::load_or_compile`] got the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Taken from the cache.
    Hit,
    /// Not in the cache: compiled (and stored, if the cache is writable).
    Miss,
    /// In the cache but damaged, foreign or refused by the loader:
    /// compiled again (and replaced, if the cache is writable).
    Replaced,
    /// Cache off or unusable: compiled in memory.
    Bypassed,
}

/// A loaded object and how it was obtained.
#[derive(Debug)]
pub struct Cached<T> {
    /// What the loader made of the object.
    pub value: T,
    /// Whether it came from the cache.
    pub lookup: Lookup,
}

impl CompileCache {
    /// No cache: every call compiles.
    pub fn disabled() -> CompileCache {
        CompileCache { dir: None }
    }

    /// A cache in `dir` (created on first use).
    pub fn at(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: Some(dir.into()),
        }
    }

    /// The cache in [`default_dir`], or none when neither `XDG_CACHE_HOME`
    /// nor `HOME` names an absolute directory.
    pub fn from_env() -> CompileCache {
        match default_dir() {
            Some(dir) => CompileCache::at(dir),
            None => {
                tracing::debug!(
                    "compiled-object cache off: neither XDG_CACHE_HOME nor HOME is an absolute path"
                );
                CompileCache::disabled()
            }
        }
    }

    /// The directory, if the cache is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The object compiled from `input` with `opts`, handed to `load`:
    /// from the cache when a valid entry is there and `load` accepts it,
    /// else compiled (and stored). `source` names the input in messages.
    ///
    /// Errors are those of compiling (with the context "cannot compile
    /// SOURCE") and of `load` on a freshly compiled object; nothing about
    /// the cache itself fails a call.
    pub fn load_or_compile<T>(
        &self,
        source: &Path,
        input: &[u8],
        opts: &mvvm_aot::CompileOptions,
        load: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Cached<T>> {
        let compile = || {
            let started = std::time::Instant::now();
            let object = mvvm_aot::compile(input, opts)
                .with_context(|| format!("cannot compile {}", source.display()))?;
            tracing::debug!(
                bytes = object.len(),
                millis = started.elapsed().as_millis() as u64,
                "compiled {}",
                source.display()
            );
            Ok::<_, anyhow::Error>(object)
        };
        let Some(entry) = self.entry_for(input, opts, None) else {
            let object = compile()?;
            return Ok(Cached {
                value: load(&object)?,
                lookup: Lookup::Bypassed,
            });
        };
        let lookup = match read_entry(&entry.path, &entry.key) {
            Ok(Some(object)) => match load(&object) {
                Ok(value) => {
                    tracing::debug!(entry = %entry.path.display(), "compiled-object cache hit");
                    touch(&entry.path);
                    return Ok(Cached {
                        value,
                        lookup: Lookup::Hit,
                    });
                }
                Err(e) => {
                    tracing::debug!(
                        entry = %entry.path.display(),
                        "compiled-object cache entry refused by the loader ({e:#}): compiling again"
                    );
                    Lookup::Replaced
                }
            },
            Ok(None) => {
                tracing::debug!(
                    entry = %entry.path.display(),
                    "compiled-object cache miss: compiling {}",
                    source.display()
                );
                Lookup::Miss
            }
            Err(EntryError::Invalid(why)) => {
                tracing::debug!(
                    entry = %entry.path.display(),
                    "compiled-object cache entry invalid ({why}): compiling again"
                );
                Lookup::Replaced
            }
            Err(EntryError::Io(e)) => {
                warn_once(&entry.dir, &e);
                Lookup::Miss
            }
        };
        let object = compile()?;
        let value = load(&object)?;
        match write_atomic(&entry.dir, &entry.path, &entry.encode(&object)) {
            Ok(()) => {
                tracing::debug!(entry = %entry.path.display(), "compiled-object cache entry written");
                prune(&entry.dir, &entry.path);
            }
            Err(e) => warn_once(&entry.dir, &e),
        }
        Ok(Cached { value, lookup })
    }

    /// The stored resume clone of function `func` of the module whose
    /// carried wasm has SHA-256 `wasm_sha256`, compiled with `opts` (see
    /// `crate::clone_compiler`); `None` on a miss, and when the cache is off,
    /// unusable or the entry is not to be trusted (logged at debug level).
    /// Its bytes are the caller's to decode and check.
    pub fn read_clone(
        &self,
        wasm_sha256: &[u8; 32],
        opts: &mvvm_aot::CompileOptions,
        func: u32,
    ) -> Option<Vec<u8>> {
        let entry = self.clone_entry(wasm_sha256, opts, func)?;
        match read_entry(&entry.path, &entry.key) {
            Ok(Some(bytes)) => {
                touch(&entry.path);
                Some(bytes)
            }
            Ok(None) => None,
            Err(EntryError::Invalid(why)) => {
                tracing::debug!(entry = %entry.path.display(), "resume clone entry invalid ({why})");
                None
            }
            Err(EntryError::Io(e)) => {
                warn_once(&entry.dir, &e);
                None
            }
        }
    }

    /// Stores `bytes` as the resume clone [`CompileCache::read_clone`]
    /// reads; a failure only warns.
    pub fn write_clone(
        &self,
        wasm_sha256: &[u8; 32],
        opts: &mvvm_aot::CompileOptions,
        func: u32,
        bytes: &[u8],
    ) {
        let Some(entry) = self.clone_entry(wasm_sha256, opts, func) else {
            return;
        };
        match write_atomic(&entry.dir, &entry.path, &entry.encode(bytes)) {
            Ok(()) => prune(&entry.dir, &entry.path),
            Err(e) => warn_once(&entry.dir, &e),
        }
    }

    /// The entry of a resume clone: keyed like an object, with the carried
    /// wasm's digest and the function as the input.
    fn clone_entry(
        &self,
        wasm_sha256: &[u8; 32],
        opts: &mvvm_aot::CompileOptions,
        func: u32,
    ) -> Option<Entry> {
        let mut input = b"resume clone of function ".to_vec();
        input.extend_from_slice(&func.to_le_bytes());
        input.extend_from_slice(wasm_sha256);
        // Keyed by the compiler's build identity, not by this executable:
        // the clones a checkpointing tool keeps are for the restoring tool,
        // another binary of the same build (`clone_compiler.rs`).
        static IDENTITY: OnceLock<[u8; 32]> = OnceLock::new();
        let identity = *IDENTITY.get_or_init(|| sha256(mvvm_aot::producer().as_bytes()));
        let mut entry = self.entry_for(&input, opts, Some(identity))?;
        entry.path.set_extension(CLONE_EXT);
        Some(entry)
    }

    /// The entry of `input` and `opts` for the compiler `identity` (none:
    /// this executable's), after making sure the directory is usable;
    /// `None` (with a warning) when it is not.
    fn entry_for(
        &self,
        input: &[u8],
        opts: &mvvm_aot::CompileOptions,
        identity: Option<[u8; 32]>,
    ) -> Option<Entry> {
        let dir = self.dir.as_ref()?;
        if let Err(e) = prepare_dir(dir) {
            warn_once(dir, &e);
            return None;
        }
        let identity = match identity.map_or_else(|| compiler_identity(dir), Ok) {
            Ok(id) => id,
            Err(e) => {
                warn_once(dir, &e);
                return None;
            }
        };
        let key = cache_key(input, opts, &identity, host_cpu_features());
        Some(Entry {
            path: dir.join(format!("{}.{OBJECT_EXT}", hex(&key))),
            dir: dir.clone(),
            key,
        })
    }
}

/// One object's place in the cache.
struct Entry {
    dir: PathBuf,
    path: PathBuf,
    key: [u8; 32],
}

impl Entry {
    /// Header and object, as stored.
    fn encode(&self, object: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + object.len());
        out.extend_from_slice(ENTRY_MAGIC);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&sha256(object));
        out.extend_from_slice(&(object.len() as u64).to_le_bytes());
        out.extend_from_slice(object);
        out
    }
}

/// Why an entry was not used.
#[derive(Debug)]
enum EntryError {
    /// The entry is there but is not one to trust.
    Invalid(String),
    /// It could not be read (other than not being there).
    Io(anyhow::Error),
}

/// The object stored at `path` under `key`; `Ok(None)` when there is no
/// entry.
fn read_entry(path: &Path, key: &[u8; 32]) -> Result<Option<Vec<u8>>, EntryError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EntryError::Io(
                anyhow!(e).context(format!("cannot open {}", path.display())),
            ));
        }
    };
    let invalid = |why: &str| Err(EntryError::Invalid(why.to_owned()));
    let meta = file.metadata().map_err(|e| {
        EntryError::Io(anyhow!(e).context(format!("cannot stat {}", path.display())))
    })?;
    if !meta.is_file() {
        return invalid("not a regular file");
    }
    if meta.uid() != euid() {
        return invalid("owned by another user");
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| {
        EntryError::Io(anyhow!(e).context(format!("cannot read {}", path.display())))
    })?;
    if bytes.len() < HEADER_LEN {
        return invalid("shorter than its header");
    }
    let (header, object) = bytes.split_at(HEADER_LEN);
    if header[..8] != ENTRY_MAGIC[..] {
        return invalid("not a cache entry of this format");
    }
    if header[8..40] != key[..] {
        return invalid("stored under another key");
    }
    let len = u64::from_le_bytes(header[72..80].try_into().expect("8 bytes"));
    if len != object.len() as u64 {
        return invalid(&format!(
            "truncated or extended: {} object bytes, header says {len}",
            object.len()
        ));
    }
    if sha256(object) != header[40..72] {
        return invalid("object digest mismatch");
    }
    bytes.drain(..HEADER_LEN);
    Ok(Some(bytes))
}

/// The key of an object: SHA-256 over every input of the compilation, each
/// one length-prefixed and labelled so no two inputs can run together.
fn cache_key(
    input: &[u8],
    opts: &mvvm_aot::CompileOptions,
    compiler: &[u8; 32],
    cpu_features: &str,
) -> [u8; 32] {
    let mut h = Sha256::new(&SHA256);
    let mut field = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update(&[0]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("mvvm compiled-object cache", ENTRY_MAGIC);
    field(
        "producer version",
        mvvm_abi::version::PRODUCER_VERSION.as_bytes(),
    );
    field(
        "aot format version",
        &mvvm_abi::version::AOT_FORMAT_VERSION.to_le_bytes(),
    );
    field("compiler executable sha256", compiler);
    field("compile options", format!("{opts:?}").as_bytes());
    field("host cpu features", cpu_features.as_bytes());
    field("input", input);
    h.finish().as_ref().try_into().expect("32 bytes")
}

/// The CPU features Cranelift detects on this host (what `mvvm-aot` uses
/// for host code), comma-separated; computed once.
fn host_cpu_features() -> &'static str {
    static FEATURES: OnceLock<String> = OnceLock::new();
    FEATURES.get_or_init(|| {
        use cranelift_codegen::settings;
        let isa = cranelift_native::builder()
            .map_err(|e| e.to_string())
            .and_then(|b| {
                b.finish(settings::Flags::new(settings::builder()))
                    .map_err(|e| e.to_string())
            });
        match isa {
            Ok(isa) => {
                let mut names: Vec<&str> = isa
                    .isa_flags()
                    .iter()
                    .filter(|v| v.name.starts_with("has_") && v.as_bool() == Some(true))
                    .map(|v| v.name)
                    .collect();
                names.sort_unstable();
                names.join(",")
            }
            // The compiler fails the same way for host code; the key only
            // needs to be stable.
            Err(e) => format!("undetected: {e}"),
        }
    })
}

/// The SHA-256 of the running executable, remembered in `dir` under the
/// executable's identity on disk so it is read and hashed only once per
/// build; computed once per process.
fn compiler_identity(dir: &Path) -> Result<[u8; 32]> {
    static IDENTITY: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(id) = IDENTITY.get() {
        return Ok(*id);
    }
    // `/proc/self/exe` opens the running file even if it was replaced or
    // removed since; `current_exe` is the fallback without procfs.
    let mut exe = File::open("/proc/self/exe")
        .or_else(|_| std::env::current_exe().and_then(File::open))
        .context("cannot open the running executable")?;
    let m = exe
        .metadata()
        .context("cannot stat the running executable")?;
    let mut h = Sha256::new(&SHA256);
    for n in [
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ] {
        h.update(&n.to_le_bytes());
    }
    let memo = dir.join(format!("{}.{EXE_ID_EXT}", hex(h.finish().as_ref())));
    let remembered = fs::read_to_string(&memo)
        .ok()
        .filter(|_| fs::metadata(&memo).is_ok_and(|m| m.uid() == euid()))
        .and_then(|s| unhex(s.trim()));
    let id = match remembered {
        Some(id) => {
            touch(&memo);
            id
        }
        None => {
            let started = std::time::Instant::now();
            let mut h = Sha256::new(&SHA256);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = exe
                    .read(&mut buf)
                    .context("cannot read the running executable")?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let id: [u8; 32] = h.finish().as_ref().try_into().expect("32 bytes");
            tracing::debug!(
                millis = started.elapsed().as_millis() as u64,
                bytes = m.size(),
                "hashed the running executable for the compiled-object cache"
            );
            // Best effort: without it the next run hashes again.
            if let Err(e) = write_atomic(dir, &memo, hex(&id).as_bytes()) {
                warn_once(dir, &e);
            }
            id
        }
    };
    Ok(*IDENTITY.get_or_init(|| id))
}

/// Creates `dir` (mode 0700, parents too) if needed and checks that it is
/// a directory of this user that no one else may write.
fn prepare_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let m = fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if !m.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if m.uid() != euid() {
        bail!(
            "{} belongs to uid {}, not to this user (uid {})",
            dir.display(),
            m.uid(),
            euid()
        );
    }
    if m.permissions().mode() & 0o022 != 0 {
        bail!(
            "{} is writable by others (mode {:o}): its objects could have been planted",
            dir.display(),
            m.permissions().mode() & 0o7777
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in `dir` (mode
/// 0600), fsync, rename over `path`, fsync of `dir`. The temporary file is
/// removed on failure.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Marks `path` as just used (its modification time orders eviction).
fn touch(path: &Path) {
    let _ = File::open(path).and_then(|f| f.set_modified(SystemTime::now()));
}

/// Removes temporary files left by killed writers and, beyond
/// [`MAX_BYTES`] or [`MAX_ENTRIES`], the least recently used entries
/// (never `keep`, the entry just written). Best effort.
fn prune(dir: &Path, keep: &Path) {
    let Ok(list) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for e in list.flatten() {
        let path = e.path();
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) {
            let age = now.duration_since(mtime).unwrap_or_default();
            if age > Duration::from_secs(3600) {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let ours = [OBJECT_EXT, CLONE_EXT, EXE_ID_EXT]
            .iter()
            .any(|ext| path.extension().is_some_and(|x| x == *ext));
        if ours && path != keep {
            entries.push((mtime, m.len(), path));
        }
    }
    let keep_len = fs::metadata(keep).map(|m| m.len()).unwrap_or(0);
    let mut total: u64 = keep_len + entries.iter().map(|e| e.1).sum::<u64>();
    let mut count = entries.len() + 1;
    entries.sort(); // oldest first
    for (_, len, path) in entries {
        if total <= MAX_BYTES && count <= MAX_ENTRIES {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            tracing::debug!(entry = %path.display(), "compiled-object cache: evicted");
            total -= len;
            count -= 1;
        }
    }
}

/// Warns, once per process, that the cache in `dir` cannot be used.
fn warn_once(dir: &Path, e: &anyhow::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "compiled-object cache in {} not usable ({e:#}); compiling without it (--no-cache or {NO_CACHE_ENV}=1 silences this)",
            dir.display()
        );
    } else {
        tracing::debug!("compiled-object cache in {}: {e:#}", dir.display());
    }
}

/// This process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvvm_aot::{CompileOptions, Policy};

    #[test]
    fn every_compile_input_changes_the_key() {
        let id = [7u8; 32];
        let base = CompileOptions::default();
        let k = |input: &[u8], opts: &CompileOptions, id: &[u8; 32], cpu: &str| {
            cache_key(input, opts, id, cpu)
        };
        let reference = k(b"(module)", &base, &id, "has_avx");
        assert_eq!(reference, k(b"(module)", &base, &id, "has_avx"));
        let variants = [
            k(b"(module )", &base, &id, "has_avx"),
            k(b"(module)", &base, &[8u8; 32], "has_avx"),
            k(b"(module)", &base, &id, "has_avx,has_avx2"),
            k(
                b"(module)",
                &CompileOptions {
                    opt_level: 0,
                    ..base
                },
                &id,
                "has_avx",
            ),
            k(
                b"(module)",
                &CompileOptions {
                    policy: Policy::Loop,
                    ..base
                },
                &id,
                "has_avx",
            ),
            k(
                b"(module)",
                &CompileOptions {
                    policy: Policy::CounterLoop { threshold_bits: 4 },
                    ..base
                },
                &id,
                "has_avx",
            ),
            k(
                b"(module)",
                &CompileOptions {
                    policy: Policy::CounterLoop { threshold_bits: 5 },
                    ..base
                },
                &id,
                "has_avx",
            ),
            k(
                b"(module)",
                &CompileOptions {
                    portable: true,
                    ..base
                },
                &id,
                "has_avx",
            ),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(*v, reference, "variant {i}");
            for (j, w) in variants.iter().enumerate().skip(i + 1) {
                assert_ne!(v, w, "variants {i} and {j}");
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        let b: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex(&hex(&b)), Some(b));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }

    #[test]
    fn host_features_are_stable() {
        assert_eq!(host_cpu_features(), host_cpu_features());
        assert!(!host_cpu_features().starts_with("undetected"));
    }
}
