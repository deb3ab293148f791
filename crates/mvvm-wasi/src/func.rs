//! The functions of `wasi_snapshot_preview1`: names and signatures.
//!
//! Written once as a table so that the linker (which checks the module's
//! imports) and the dispatcher (which decodes arguments) cannot disagree.

use mvvm_abi::{FuncType, ValType};

/// The import module name of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

macro_rules! wasi_funcs {
    ($( $variant:ident = $name:literal ( $($p:ident),* ) -> ( $($r:ident),* ); )*) => {
        /// One function of `wasi_snapshot_preview1`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum WasiFunc {
            $( $variant, )*
        }

        impl WasiFunc {
            /// Every function, in the order of the witx file.
            pub const ALL: &'static [WasiFunc] = &[ $(WasiFunc::$variant,)* ];

            /// The import field name.
            pub fn name(self) -> &'static str {
                match self {
                    $(WasiFunc::$variant => $name,)*
                }
            }

            /// The function named `name` (a field of `wasi_snapshot_preview1`).
            pub fn from_name(name: &str) -> Option<WasiFunc> {
                match name {
                    $($name => Some(WasiFunc::$variant),)*
                    _ => None,
                }
            }

            /// The core wasm signature.
            pub fn signature(self) -> FuncType {
                match self {
                    $(WasiFunc::$variant => FuncType {
                        params: vec![$(ValType::$p),*],
                        results: vec![$(ValType::$r),*],
                    },)*
                }
            }
        }
    };
}

wasi_funcs! {
    ArgsGet = "args_get"(I32, I32) -> (I32);
    ArgsSizesGet = "args_sizes_get"(I32, I32) -> (I32);
    EnvironGet = "environ_get"(I32, I32) -> (I32);
    EnvironSizesGet = "environ_sizes_get"(I32, I32) -> (I32);
    ClockResGet = "clock_res_get"(I32, I32) -> (I32);
    ClockTimeGet = "clock_time_get"(I32, I64, I32) -> (I32);
    FdAdvise = "fd_advise"(I32, I64, I64, I32) -> (I32);
    FdAllocate = "fd_allocate"(I32, I64, I64) -> (I32);
    FdClose = "fd_close"(I32) -> (I32);
    FdDatasync = "fd_datasync"(I32) -> (I32);
    FdFdstatGet = "fd_fdstat_get"(I32, I32) -> (I32);
    FdFdstatSetFlags = "fd_fdstat_set_flags"(I32, I32) -> (I32);
    FdFdstatSetRights = "fd_fdstat_set_rights"(I32, I64, I64) -> (I32);
    FdFilestatGet = "fd_filestat_get"(I32, I32) -> (I32);
    FdFilestatSetSize = "fd_filestat_set_size"(I32, I64) -> (I32);
    FdFilestatSetTimes = "fd_filestat_set_times"(I32, I64, I64, I32) -> (I32);
    FdPread = "fd_pread"(I32, I32, I32, I64, I32) -> (I32);
    FdPrestatGet = "fd_prestat_get"(I32, I32) -> (I32);
    FdPrestatDirName = "fd_prestat_dir_name"(I32, I32, I32) -> (I32);
    FdPwrite = "fd_pwrite"(I32, I32, I32, I64, I32) -> (I32);
    FdRead = "fd_read"(I32, I32, I32, I32) -> (I32);
    FdReaddir = "fd_readdir"(I32, I32, I32, I64, I32) -> (I32);
    FdRenumber = "fd_renumber"(I32, I32) -> (I32);
    FdSeek = "fd_seek"(I32, I64, I32, I32) -> (I32);
    FdSync = "fd_sync"(I32) -> (I32);
    FdTell = "fd_tell"(I32, I32) -> (I32);
    FdWrite = "fd_write"(I32, I32, I32, I32) -> (I32);
    PathCreateDirectory = "path_create_directory"(I32, I32, I32) -> (I32);
    PathFilestatGet = "path_filestat_get"(I32, I32, I32, I32, I32) -> (I32);
    PathFilestatSetTimes = "path_filestat_set_times"(I32, I32, I32, I32, I64, I64, I32) -> (I32);
    PathLink = "path_link"(I32, I32, I32, I32, I32, I32, I32) -> (I32);
    PathOpen = "path_open"(I32, I32, I32, I32, I32, I64, I64, I32, I32) -> (I32);
    PathReadlink = "path_readlink"(I32, I32, I32, I32, I32, I32) -> (I32);
    PathRemoveDirectory = "path_remove_directory"(I32, I32, I32) -> (I32);
    PathRename = "path_rename"(I32, I32, I32, I32, I32, I32) -> (I32);
    PathSymlink = "path_symlink"(I32, I32, I32, I32, I32) -> (I32);
    PathUnlinkFile = "path_unlink_file"(I32, I32, I32) -> (I32);
    PollOneoff = "poll_oneoff"(I32, I32, I32, I32) -> (I32);
    ProcExit = "proc_exit"(I32) -> ();
    ProcRaise = "proc_raise"(I32) -> (I32);
    SchedYield = "sched_yield"() -> (I32);
    RandomGet = "random_get"(I32, I32) -> (I32);
    SockAccept = "sock_accept"(I32, I32, I32) -> (I32);
    SockRecv = "sock_recv"(I32, I32, I32, I32, I32, I32) -> (I32);
    SockSend = "sock_send"(I32, I32, I32, I32, I32) -> (I32);
    SockShutdown = "sock_shutdown"(I32, I32) -> (I32);
}
