//! Snapshot paths that name a stream rather than a file: a pipe, a FIFO
//! made with `mkfifo`, `/dev/stdin`, `/dev/stdout`, `/dev/fd/N` (what a
//! shell's `>(cmd)` and `<(cmd)` give), a character device or a socket.
//!
//! Such a path cannot take the atomic write of a file snapshot (temporary
//! name, fsync, rename) nor the copy-on-write mapping of a restore, so the
//! tools write and read it front to back, once. The snapshot format is
//! made for that: `mvvm_snapshot::read` checks every section's checksum as
//! it goes, and the restore starts nothing before the whole snapshot is in
//! and checked.
//!
//! The guest's own stdout and stderr must never end up inside the snapshot
//! stream (`mvvm-checkpoint --snapshot /dev/stdout`, or `--snapshot
//! /dev/fd/3 3>&1`): [`check_not_guest_output`] refuses a sink that is the
//! same open file as the tool's stdout or stderr, with a hint. Refusing was
//! chosen over silently redirecting the guest's output: a user who pipes
//! `mvvm-checkpoint` expects the guest's output on that pipe.

use anyhow::{Context, Result, bail};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The path meaning "the tool's standard stream" (stdin for a restore,
/// stdout for a checkpoint, where it is then refused as guest output).
pub const STD_STREAM: &str = "-";

/// Whether `path` names a stream (see the module documentation). Paths
/// under `/dev/fd/` and `/proc/self/fd/` and `/dev/std*` count as streams
/// whatever they point to: even when the shell redirected them to a
/// regular file, the tool cannot rename over them.
pub fn is_stream(path: &Path) -> bool {
    if path == Path::new(STD_STREAM) {
        return true;
    }
    let special = ["/dev/stdin", "/dev/stdout", "/dev/stderr"];
    if special.iter().any(|s| path == Path::new(s))
        || path.starts_with("/dev/fd")
        || path.starts_with("/proc/self/fd")
    {
        return true;
    }
    std::fs::metadata(path).is_ok_and(|m| {
        let t = m.file_type();
        t.is_fifo() || t.is_char_device() || t.is_socket()
    })
}

/// Whether `path` is a FIFO (named pipe) on the file system.
pub fn is_fifo(path: &Path) -> bool {
    path != Path::new(STD_STREAM) && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Device and inode of an open file or a path: two equal identities are the
/// same pipe, terminal or file.
fn identity(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// The identity of one of the tool's own descriptors (stdout, stderr).
fn fd_identity(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    let owned = fd.try_clone_to_owned().ok()?;
    File::from(owned).metadata().ok().map(|m| identity(&m))
}

/// Refuses a snapshot sink that would share the guest's stdout or stderr
/// (the tool's own: the guest inherits them), so the snapshot stream never
/// carries guest output and the guest's output never lands in a snapshot.
/// `tool` names the program in the hint. A stream path that does not exist
/// (a descriptor not open) is refused too, before the program runs.
pub fn check_not_guest_output(tool: &str, path: &Path) -> Result<()> {
    let target = if path == Path::new(STD_STREAM) {
        fd_identity(std::io::stdout().as_fd())
    } else {
        // A descriptor that is not open (`/dev/fd/9` without `9>...`) is
        // an error now, not after hours of running.
        let m = std::fs::metadata(path)
            .with_context(|| format!("cannot write the snapshot to {}", path.display()))?;
        Some(identity(&m))
    };
    let Some(target) = target else {
        return Ok(());
    };
    for (name, fd) in [
        ("stdout", fd_identity(std::io::stdout().as_fd())),
        ("stderr", fd_identity(std::io::stderr().as_fd())),
    ] {
        if fd == Some(target) {
            bail!(
                "--snapshot {} is the guest's {name}: the program's output would be mixed into \
                 the snapshot. Give the snapshot its own descriptor, e.g. \
                 `{tool} ... --snapshot /dev/fd/3 3>&1 1>&2` or `--snapshot >(mvvm-restore ...)`",
                path.display()
            );
        }
    }
    Ok(())
}

/// Opens a stream path for reading a snapshot (`-` is stdin).
pub fn open_read(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    if path == Path::new(STD_STREAM) {
        return Ok(Box::new(std::io::stdin()));
    }
    Ok(Box::new(File::open(path)?))
}

/// A stream path opened on the first write, i.e. when the snapshot is
/// written: opening a FIFO blocks until a reader opens it, and a program
/// may run for hours before its checkpoint.
pub struct LazyStream {
    path: PathBuf,
    out: Option<Box<dyn Write + Send>>,
}

impl LazyStream {
    /// A writer to `path` (`-` is stdout), not opened yet.
    pub fn new(path: PathBuf) -> LazyStream {
        LazyStream { path, out: None }
    }

    fn out(&mut self) -> std::io::Result<&mut Box<dyn Write + Send>> {
        if self.out.is_none() {
            let w: Box<dyn Write + Send> = if self.path == Path::new(STD_STREAM) {
                Box::new(std::io::stdout())
            } else {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot open {}: {e}", self.path.display()),
                        )
                    })?;
                Box::new(f)
            };
            self.out = Some(w);
        }
        Ok(self.out.as_mut().expect("opened just above"))
    }
}

impl Write for LazyStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// For a run that ended without a checkpoint while its snapshot was to go
/// to a FIFO: opens and closes the FIFO without blocking, so a restore
/// waiting on the other end sees end of file (and says the sender sent
/// nothing) instead of waiting forever. Nobody reading is fine.
pub fn release_fifo(path: &Path) {
    if !is_fifo(path) {
        return;
    }
    let _ = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_files() {
        assert!(is_stream(Path::new("-")));
        assert!(is_stream(Path::new("/dev/stdin")));
        assert!(is_stream(Path::new("/dev/fd/3")));
        assert!(is_stream(Path::new("/proc/self/fd/7")));
        assert!(is_stream(Path::new("/dev/null")));
        assert!(!is_stream(Path::new("/no/such/file.bin")));
        assert!(!is_stream(Path::new("snap.bin")));
        assert!(!is_fifo(Path::new("/dev/null")));
    }

    #[test]
    fn a_closed_descriptor_is_refused_at_once() {
        assert!(check_not_guest_output("t", Path::new("/dev/fd/987")).is_err());
    }

    #[test]
    fn a_regular_file_is_not_guest_output() {
        let p = std::env::temp_dir().join(format!("mvvm-stream-path-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        assert!(check_not_guest_output("t", &p).is_ok());
        let _ = std::fs::remove_file(&p);
    }
}
