//! Enforcement of WASI preview1 rights.
//!
//! Every descriptor carries `rights_base` (what calls on it may do) and
//! `rights_inheriting` (what descriptors opened through it may get), both
//! in its [`FdEntry`], so they are part of the saved state and hold the
//! same after a restore.
//!
//! The rules, applied the same way by every function:
//!
//! - a call that needs a right its descriptor lacks fails with `NOTCAPABLE`
//!   (the right each call needs is [`need`]'s argument at its call site);
//! - errors that do not depend on rights come first, so that programs see
//!   what POSIX gives them: a descriptor of the wrong kind (`NOTDIR` for a
//!   file used as a directory, `ISDIR` for reading a directory) and, for
//!   files, the access mode the host handle was opened with (`BADF` for a
//!   write to a file opened read-only, as `write(2)` answers);
//! - `fd_fdstat_set_rights` may only drop rights;
//! - `path_open` gives the new descriptor the rights it asks for that its
//!   directory may pass on (`rights_inheriting`), limited to what makes
//!   sense for what was opened ([`rights::DIR`] for a directory, so never
//!   `FD_SEEK`; [`rights::FILE`] otherwise). wasi-libc asks for every
//!   right, so ordinary opens are not affected;
//! - `path_open` with `O_TRUNC` needs `PATH_FILESTAT_SET_SIZE` on the
//!   directory, with `O_CREAT` `PATH_CREATE_FILE`, and always `PATH_OPEN`.

use super::errno::Errno;
use super::state::FdEntry;
use super::types::rights;

/// `Ok` when `entry` holds every right of `needed`, `NOTCAPABLE` otherwise.
pub(super) fn need(entry: &FdEntry, needed: u64) -> Result<(), Errno> {
    if entry.rights_base & needed == needed {
        Ok(())
    } else {
        Err(Errno::NOTCAPABLE)
    }
}

/// The base rights of a descriptor `path_open` made: what was asked for,
/// what its directory passes on, and what fits a directory or a file.
pub(super) fn opened_base(asked: u64, parent_inheriting: u64, is_dir: bool) -> u64 {
    let fits = if is_dir { rights::DIR } else { rights::FILE };
    asked & parent_inheriting & fits
}

/// The rights the directory of a `path_open` needs for `oflags`.
pub(super) fn for_open(of: u16) -> u64 {
    use super::types::oflags;
    let mut r = rights::PATH_OPEN;
    if of & oflags::CREAT != 0 {
        r |= rights::PATH_CREATE_FILE;
    }
    if of & oflags::TRUNC != 0 {
        r |= rights::PATH_FILESTAT_SET_SIZE;
    }
    r
}
