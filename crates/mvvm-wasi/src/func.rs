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
            /// Every function: those of the witx file in its order, then
            /// WAMR's socket extension.
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
    // WAMR's socket extension (`wasi_socket_ext.h`), in `sock_ext.rs`.
    SockOpen = "sock_open"(I32, I32, I32, I32) -> (I32);
    SockBind = "sock_bind"(I32, I32) -> (I32);
    SockConnect = "sock_connect"(I32, I32) -> (I32);
    SockListen = "sock_listen"(I32, I32) -> (I32);
    SockClose = "sock_close"(I32) -> (I32);
    SockAddrLocal = "sock_addr_local"(I32, I32) -> (I32);
    SockAddrRemote = "sock_addr_remote"(I32, I32) -> (I32);
    SockAddrResolve = "sock_addr_resolve"(I32, I32, I32, I32, I32, I32) -> (I32);
    SockSendTo = "sock_send_to"(I32, I32, I32, I32, I32, I32) -> (I32);
    SockRecvFrom = "sock_recv_from"(I32, I32, I32, I32, I32, I32) -> (I32);
    SockGetRecvBufSize = "sock_get_recv_buf_size"(I32, I32) -> (I32);
    SockSetRecvBufSize = "sock_set_recv_buf_size"(I32, I32) -> (I32);
    SockGetSendBufSize = "sock_get_send_buf_size"(I32, I32) -> (I32);
    SockSetSendBufSize = "sock_set_send_buf_size"(I32, I32) -> (I32);
    SockGetReuseAddr = "sock_get_reuse_addr"(I32, I32) -> (I32);
    SockSetReuseAddr = "sock_set_reuse_addr"(I32, I32) -> (I32);
    SockGetReusePort = "sock_get_reuse_port"(I32, I32) -> (I32);
    SockSetReusePort = "sock_set_reuse_port"(I32, I32) -> (I32);
    SockGetKeepAlive = "sock_get_keep_alive"(I32, I32) -> (I32);
    SockSetKeepAlive = "sock_set_keep_alive"(I32, I32) -> (I32);
    SockGetBroadcast = "sock_get_broadcast"(I32, I32) -> (I32);
    SockSetBroadcast = "sock_set_broadcast"(I32, I32) -> (I32);
    SockGetTcpNoDelay = "sock_get_tcp_no_delay"(I32, I32) -> (I32);
    SockSetTcpNoDelay = "sock_set_tcp_no_delay"(I32, I32) -> (I32);
    SockGetTcpQuickAck = "sock_get_tcp_quick_ack"(I32, I32) -> (I32);
    SockSetTcpQuickAck = "sock_set_tcp_quick_ack"(I32, I32) -> (I32);
    SockGetTcpFastopenConnect = "sock_get_tcp_fastopen_connect"(I32, I32) -> (I32);
    SockSetTcpFastopenConnect = "sock_set_tcp_fastopen_connect"(I32, I32) -> (I32);
    SockGetIpv6Only = "sock_get_ipv6_only"(I32, I32) -> (I32);
    SockSetIpv6Only = "sock_set_ipv6_only"(I32, I32) -> (I32);
    SockGetTcpKeepIdle = "sock_get_tcp_keep_idle"(I32, I32) -> (I32);
    SockSetTcpKeepIdle = "sock_set_tcp_keep_idle"(I32, I32) -> (I32);
    SockGetTcpKeepIntvl = "sock_get_tcp_keep_intvl"(I32, I32) -> (I32);
    SockSetTcpKeepIntvl = "sock_set_tcp_keep_intvl"(I32, I32) -> (I32);
    SockGetIpTtl = "sock_get_ip_ttl"(I32, I32) -> (I32);
    SockSetIpTtl = "sock_set_ip_ttl"(I32, I32) -> (I32);
    SockGetIpMulticastTtl = "sock_get_ip_multicast_ttl"(I32, I32) -> (I32);
    SockSetIpMulticastTtl = "sock_set_ip_multicast_ttl"(I32, I32) -> (I32);
    SockGetIpMulticastLoop = "sock_get_ip_multicast_loop"(I32, I32, I32) -> (I32);
    SockSetIpMulticastLoop = "sock_set_ip_multicast_loop"(I32, I32, I32) -> (I32);
    SockSetIpAddMembership = "sock_set_ip_add_membership"(I32, I32, I32) -> (I32);
    SockSetIpDropMembership = "sock_set_ip_drop_membership"(I32, I32, I32) -> (I32);
    SockGetRecvTimeout = "sock_get_recv_timeout"(I32, I32) -> (I32);
    SockSetRecvTimeout = "sock_set_recv_timeout"(I32, I64) -> (I32);
    SockGetSendTimeout = "sock_get_send_timeout"(I32, I32) -> (I32);
    SockSetSendTimeout = "sock_set_send_timeout"(I32, I64) -> (I32);
    SockGetLinger = "sock_get_linger"(I32, I32, I32) -> (I32);
    SockSetLinger = "sock_set_linger"(I32, I32, I32) -> (I32);
}
