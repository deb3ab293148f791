//! Constants and record layouts of `wasi_snapshot_preview1` (the witx
//! definitions), as the guest sees them in linear memory.

/// `filetype` values.
pub mod filetype {
    /// Type unknown (pipes, for instance).
    pub const UNKNOWN: u8 = 0;
    /// Block device.
    pub const BLOCK_DEVICE: u8 = 1;
    /// Character device.
    pub const CHARACTER_DEVICE: u8 = 2;
    /// Directory.
    pub const DIRECTORY: u8 = 3;
    /// Regular file.
    pub const REGULAR_FILE: u8 = 4;
    /// Datagram socket.
    pub const SOCKET_DGRAM: u8 = 5;
    /// Stream socket.
    pub const SOCKET_STREAM: u8 = 6;
    /// Symbolic link.
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// `fdflags` bits.
pub mod fdflags {
    /// Writes append.
    pub const APPEND: u16 = 1;
    /// Synchronised data writes.
    pub const DSYNC: u16 = 2;
    /// Non-blocking mode.
    pub const NONBLOCK: u16 = 4;
    /// Synchronised reads.
    pub const RSYNC: u16 = 8;
    /// Synchronised writes.
    pub const SYNC: u16 = 16;
    /// Every defined bit.
    pub const ALL: u16 = 31;
}

/// `oflags` bits of `path_open`.
pub mod oflags {
    /// Create if absent.
    pub const CREAT: u16 = 1;
    /// Must be a directory.
    pub const DIRECTORY: u16 = 2;
    /// Fail if it exists.
    pub const EXCL: u16 = 4;
    /// Truncate to size 0.
    pub const TRUNC: u16 = 8;
}

/// `lookupflags`: follow a symlink in the last component.
pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

/// `fstflags` bits.
pub mod fstflags {
    /// Set the access time to the given value.
    pub const ATIM: u16 = 1;
    /// Set the access time to now.
    pub const ATIM_NOW: u16 = 2;
    /// Set the modification time to the given value.
    pub const MTIM: u16 = 4;
    /// Set the modification time to now.
    pub const MTIM_NOW: u16 = 8;
}

/// `rights` bits.
pub mod rights {
    #![allow(missing_docs)]
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;
    /// Every right.
    pub const ALL: u64 = (1 << 30) - 1;
    /// Rights that only make sense on a regular file (or stdio stream).
    pub const FILE: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;
    /// Rights of a directory itself (its inheriting rights are [`ALL`]).
    pub const DIR: u64 = FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_ADVISE
        | PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_SIZE
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE;
    /// Rights of a stream socket.
    pub const SOCKET: u64 = FD_READ
        | FD_WRITE
        | FD_FDSTAT_SET_FLAGS
        | FD_FILESTAT_GET
        | POLL_FD_READWRITE
        | SOCK_SHUTDOWN;
    /// Rights of a listening socket.
    pub const LISTENER: u64 =
        FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE | SOCK_ACCEPT;
}

/// `clockid` values.
pub mod clockid {
    /// Wall clock.
    pub const REALTIME: u32 = 0;
    /// Monotonic clock.
    pub const MONOTONIC: u32 = 1;
    /// CPU time of the process.
    pub const PROCESS_CPUTIME: u32 = 2;
    /// CPU time of the thread.
    pub const THREAD_CPUTIME: u32 = 3;
}

/// `whence` values.
pub mod whence {
    /// From the start.
    pub const SET: u32 = 0;
    /// From the current position.
    pub const CUR: u32 = 1;
    /// From the end.
    pub const END: u32 = 2;
}

/// `eventtype` values.
pub mod eventtype {
    /// A clock subscription.
    pub const CLOCK: u8 = 0;
    /// A descriptor is readable.
    pub const FD_READ: u8 = 1;
    /// A descriptor is writable.
    pub const FD_WRITE: u8 = 2;
}

/// `subclockflags`: the timeout is an absolute time.
pub const SUBCLOCK_ABSTIME: u16 = 1;
/// `eventrwflags`: the peer hung up.
pub const EVENT_FD_READWRITE_HANGUP: u16 = 1;
/// `riflags`: peek.
pub const RECV_PEEK: u16 = 1;
/// `riflags`: wait for all.
pub const RECV_WAITALL: u16 = 2;
/// `sdflags`: shut reads.
pub const SHUT_RD: u8 = 1;
/// `sdflags`: shut writes.
pub const SHUT_WR: u8 = 2;
/// `preopentype`: a directory.
pub const PREOPENTYPE_DIR: u8 = 0;

/// Size of `filestat`.
pub const FILESTAT_SIZE: u32 = 64;
/// Size of `fdstat`.
pub const FDSTAT_SIZE: u32 = 24;
/// Size of `prestat`.
pub const PRESTAT_SIZE: u32 = 8;
/// Size of a `dirent` header (the name follows it).
pub const DIRENT_SIZE: u32 = 24;
/// Size of an `iovec`/`ciovec`.
pub const IOVEC_SIZE: u32 = 8;
/// Size of a `subscription`.
pub const SUBSCRIPTION_SIZE: u32 = 48;
/// Size of an `event`.
pub const EVENT_SIZE: u32 = 32;

/// A `filestat` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filestat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// File type.
    pub filetype: u8,
    /// Link count.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Access time (ns).
    pub atim: u64,
    /// Modification time (ns).
    pub mtim: u64,
    /// Status change time (ns).
    pub ctim: u64,
}

impl Filestat {
    /// The 64-byte little-endian encoding.
    pub fn encode(&self) -> [u8; FILESTAT_SIZE as usize] {
        let mut b = [0u8; FILESTAT_SIZE as usize];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.atim.to_le_bytes());
        b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        b
    }
}
