//! Unit tests of WASI against a `Vec<u8>` memory and temporary directories.

use super::types::{LOOKUP_SYMLINK_FOLLOW, filetype, oflags, rights};
use super::*;
use mvvm_rt::checkpoint::RunAfter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Rights, trailing slashes and symlink targets as strict as wasmtime's.
mod strictness;

/// WAMR's socket extension: errnos on bad input, grants, restore.
mod sock_ext;

/// TCP repair: a connection read in repair mode and built again.
mod tcp_repair;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "mvvm-wasi-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MEM: usize = 65536;
/// Scratch areas of the test memory.
const PATH: u32 = 1024;
const OUT: u32 = 2048;
const IOVS: u32 = 3072;
const BUF: u32 = 4096;

struct T {
    ctx: WasiCtx,
    mem: Vec<u8>,
    _dir: TempDir,
    root: PathBuf,
}

/// Descriptor of the single preopen in [`setup`].
const ROOT_FD: u32 = 3;

/// Grants every preopen of `state` at the host path it was saved with (the
/// tests restore on the machine that saved).
fn grants_as_saved(state: &WasiState) -> super::Grants {
    super::Grants {
        preopens: state.preopens.clone(),
        tcp_listeners: Vec::new(),
        net: Default::default(),
        tcp_repair: Default::default(),
    }
}

fn setup() -> T {
    let dir = TempDir::new();
    let root = dir.0.join("root");
    std::fs::create_dir(&root).unwrap();
    let ctx = WasiCtx::new(WasiConfig {
        args: vec!["prog".into(), "a b".into()],
        env: vec![("K".into(), "V".into())],
        preopens: vec![Preopen {
            host: root.clone(),
            guest: "/sandbox".into(),
        }],
        tcp_listeners: vec![],
        net: Default::default(),
        tcp_repair: Default::default(),
    })
    .unwrap();
    T {
        ctx,
        mem: vec![0; MEM],
        _dir: dir,
        root,
    }
}

impl T {
    fn call(&mut self, f: WasiFunc, args: &[u64]) -> Errno {
        let mut r = [0u64; 1];
        self.ctx.call(f, &mut self.mem, args, &mut r).unwrap();
        Errno(r[0] as u16)
    }

    fn put(&mut self, at: u32, bytes: &[u8]) {
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }

    fn u32_at(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.mem[at as usize..at as usize + 4].try_into().unwrap())
    }

    fn u64_at(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.mem[at as usize..at as usize + 8].try_into().unwrap())
    }

    /// `path_open` relative to `dir`; the new fd or the errno.
    fn open(
        &mut self,
        dir: u32,
        path: &str,
        of: u16,
        base: u64,
        follow: bool,
    ) -> Result<u32, Errno> {
        self.put(PATH, path.as_bytes());
        let e = self.call(
            WasiFunc::PathOpen,
            &[
                dir as u64,
                if follow {
                    LOOKUP_SYMLINK_FOLLOW as u64
                } else {
                    0
                },
                PATH as u64,
                path.len() as u64,
                of as u64,
                base,
                rights::ALL,
                0,
                OUT as u64,
            ],
        );
        if e == Errno::SUCCESS {
            Ok(self.u32_at(OUT))
        } else {
            Err(e)
        }
    }

    fn path_call(&mut self, f: WasiFunc, path: &str) -> Errno {
        self.put(PATH, path.as_bytes());
        self.call(f, &[ROOT_FD as u64, PATH as u64, path.len() as u64])
    }

    /// Writes iovecs `(buf, len)` at [`IOVS`].
    fn iovs(&mut self, v: &[(u32, u32)]) {
        for (i, (b, l)) in v.iter().enumerate() {
            let at = IOVS + 8 * i as u32;
            self.put(at, &b.to_le_bytes());
            self.put(at + 4, &l.to_le_bytes());
        }
    }
}

#[test]
fn every_function_has_a_name_and_a_signature() {
    // 46 of preview1, 48 of WAMR's socket extension.
    assert_eq!(WasiFunc::ALL.len(), 46 + 48);
    for f in WasiFunc::ALL {
        assert_eq!(WasiFunc::from_name(f.name()), Some(*f));
        let sig = f.signature();
        let expect_results = if *f == WasiFunc::ProcExit { 0 } else { 1 };
        assert_eq!(sig.results.len(), expect_results, "{}", f.name());
    }
    assert_eq!(WasiFunc::from_name("fd_nope"), None);
}

#[test]
fn args_and_environ_layout() {
    let mut t = setup();
    assert_eq!(
        t.call(WasiFunc::ArgsSizesGet, &[OUT as u64, OUT as u64 + 4]),
        Errno::SUCCESS
    );
    assert_eq!((t.u32_at(OUT), t.u32_at(OUT + 4)), (2, 9));
    assert_eq!(
        t.call(WasiFunc::ArgsGet, &[OUT as u64, BUF as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), BUF);
    assert_eq!(t.u32_at(OUT + 4), BUF + 5);
    assert_eq!(&t.mem[BUF as usize..BUF as usize + 9], b"prog\0a b\0");
    assert_eq!(
        t.call(WasiFunc::EnvironGet, &[OUT as u64, BUF as u64]),
        Errno::SUCCESS
    );
    assert_eq!(&t.mem[BUF as usize..BUF as usize + 4], b"K=V\0");
}

#[test]
fn bad_pointers_give_efault() {
    let mut t = setup();
    let far = MEM as u64 - 2;
    assert_eq!(
        t.call(WasiFunc::ArgsSizesGet, &[far, OUT as u64]),
        Errno::FAULT
    );
    assert_eq!(
        t.call(WasiFunc::ArgsGet, &[u32::MAX as u64, BUF as u64]),
        Errno::FAULT
    );
    // The iovec table itself out of bounds.
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[1, far, 1, OUT as u64]),
        Errno::FAULT
    );
    // An iovec whose buffer runs past the end of memory.
    t.iovs(&[(MEM as u32 - 4, 8)]);
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[1, IOVS as u64, 1, OUT as u64]),
        Errno::FAULT
    );
    // A count so large the table size overflows.
    assert_eq!(
        t.call(
            WasiFunc::FdWrite,
            &[1, IOVS as u64, u32::MAX as u64, OUT as u64]
        ),
        Errno::FAULT
    );
    // A path out of bounds.
    assert_eq!(
        t.call(WasiFunc::PathCreateDirectory, &[ROOT_FD as u64, far, 100]),
        Errno::FAULT
    );
    assert_eq!(
        t.call(WasiFunc::RandomGet, &[BUF as u64, MEM as u64]),
        Errno::FAULT
    );
    assert_eq!(
        t.call(WasiFunc::ClockTimeGet, &[1, 0, far + 1]),
        Errno::FAULT
    );
    // Nothing was created by the faulting calls.
    assert_eq!(std::fs::read_dir(&t.root).unwrap().count(), 0);
}

#[test]
fn wrong_argument_count_is_a_trap_not_a_panic() {
    let mut t = setup();
    let mut r = [0u64; 1];
    let e = t.ctx.call(WasiFunc::FdWrite, &mut t.mem, &[1, 2], &mut r);
    assert!(matches!(e, Err(WasiStop::Trap(_))));
}

#[test]
fn proc_exit_stops_with_the_code() {
    let mut t = setup();
    let e = t.ctx.call(WasiFunc::ProcExit, &mut t.mem, &[7], &mut []);
    assert_eq!(e, Err(WasiStop::Exit(7)));
}

#[test]
fn write_and_read_through_several_iovecs() {
    let mut t = setup();
    let fd = t
        .open(
            ROOT_FD,
            "f.txt",
            oflags::CREAT,
            rights::FD_READ | rights::FD_WRITE | rights::FD_SEEK | rights::FD_TELL,
            true,
        )
        .unwrap();
    t.put(BUF, b"hello ");
    t.put(BUF + 100, b"world");
    t.iovs(&[(BUF, 6), (BUF + 100, 0), (BUF + 100, 5)]);
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[fd as u64, IOVS as u64, 3, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), 11);
    assert_eq!(std::fs::read(t.root.join("f.txt")).unwrap(), b"hello world");
    // Position is 11; tell, then seek back and read into two iovecs.
    assert_eq!(
        t.call(WasiFunc::FdTell, &[fd as u64, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u64_at(OUT), 11);
    assert_eq!(t.ctx.state().fds[&fd].position, 11);
    assert_eq!(
        t.call(
            WasiFunc::FdSeek,
            &[fd as u64, (-5i64) as u64, 1, OUT as u64]
        ),
        Errno::SUCCESS
    );
    assert_eq!(t.u64_at(OUT), 6);
    t.iovs(&[(BUF + 200, 2), (BUF + 300, 10)]);
    assert_eq!(
        t.call(WasiFunc::FdRead, &[fd as u64, IOVS as u64, 2, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), 5);
    assert_eq!(&t.mem[BUF as usize + 200..BUF as usize + 202], b"wo");
    assert_eq!(&t.mem[BUF as usize + 300..BUF as usize + 303], b"rld");
    // Seeking before the start is refused.
    assert_eq!(
        t.call(
            WasiFunc::FdSeek,
            &[fd as u64, (-1i64) as u64, 0, OUT as u64]
        ),
        Errno::INVAL
    );
    // pread does not move the position.
    t.iovs(&[(BUF + 400, 5)]);
    assert_eq!(
        t.call(
            WasiFunc::FdPread,
            &[fd as u64, IOVS as u64, 1, 0, OUT as u64]
        ),
        Errno::SUCCESS
    );
    assert_eq!(&t.mem[BUF as usize + 400..BUF as usize + 405], b"hello");
    assert_eq!(t.ctx.state().fds[&fd].position, 11);
    assert_eq!(t.call(WasiFunc::FdClose, &[fd as u64]), Errno::SUCCESS);
    assert_eq!(t.call(WasiFunc::FdClose, &[fd as u64]), Errno::BADF);
}

#[test]
fn append_writes_go_to_the_end() {
    let mut t = setup();
    std::fs::write(t.root.join("log"), b"abc").unwrap();
    t.put(PATH, b"log");
    let e = t.call(
        WasiFunc::PathOpen,
        &[
            ROOT_FD as u64,
            0,
            PATH as u64,
            3,
            0,
            rights::FD_WRITE,
            0,
            types::fdflags::APPEND as u64,
            OUT as u64,
        ],
    );
    assert_eq!(e, Errno::SUCCESS);
    let fd = t.u32_at(OUT);
    t.put(BUF, b"de");
    t.iovs(&[(BUF, 2)]);
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[fd as u64, IOVS as u64, 1, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(std::fs::read(t.root.join("log")).unwrap(), b"abcde");
    assert_eq!(t.ctx.state().fds[&fd].position, 5);
}

#[test]
fn errno_mapping_of_common_failures() {
    let mut t = setup();
    std::fs::write(t.root.join("file"), b"x").unwrap();
    std::fs::create_dir(t.root.join("dir")).unwrap();
    assert_eq!(
        t.open(ROOT_FD, "missing", 0, rights::FD_READ, true),
        Err(Errno::NOENT)
    );
    assert_eq!(
        t.open(ROOT_FD, "file", oflags::DIRECTORY, rights::FD_READ, true),
        Err(Errno::NOTDIR)
    );
    assert_eq!(
        t.open(
            ROOT_FD,
            "file",
            oflags::CREAT | oflags::EXCL,
            rights::FD_WRITE,
            true
        ),
        Err(Errno::EXIST)
    );
    assert_eq!(
        t.open(ROOT_FD, "dir", 0, rights::FD_WRITE, true),
        Err(Errno::ISDIR)
    );
    assert_eq!(
        t.open(ROOT_FD, "", 0, rights::FD_READ, true),
        Err(Errno::NOENT)
    );
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "dir"),
        Errno::EXIST
    );
    assert_eq!(t.path_call(WasiFunc::PathUnlinkFile, "dir"), Errno::ISDIR);
    assert_eq!(
        t.path_call(WasiFunc::PathRemoveDirectory, "file"),
        Errno::NOTDIR
    );
    assert_eq!(
        t.path_call(WasiFunc::PathUnlinkFile, "missing"),
        Errno::NOENT
    );
    std::fs::write(t.root.join("dir/inner"), b"").unwrap();
    assert_eq!(
        t.path_call(WasiFunc::PathRemoveDirectory, "dir"),
        Errno::NOTEMPTY
    );
    // A file descriptor used as a directory.
    let fd = t.open(ROOT_FD, "file", 0, rights::FD_READ, true).unwrap();
    t.put(PATH, b"x");
    assert_eq!(
        t.call(WasiFunc::PathCreateDirectory, &[fd as u64, PATH as u64, 1]),
        Errno::NOTDIR
    );
    // Reading a directory, bad descriptors, writing a read-only file.
    t.iovs(&[(BUF, 4)]);
    assert_eq!(
        t.call(
            WasiFunc::FdRead,
            &[ROOT_FD as u64, IOVS as u64, 1, OUT as u64]
        ),
        Errno::ISDIR
    );
    assert_eq!(
        t.call(WasiFunc::FdRead, &[99, IOVS as u64, 1, OUT as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[fd as u64, IOVS as u64, 1, OUT as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.call(WasiFunc::FdPrestatGet, &[fd as u64, OUT as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.call(WasiFunc::ClockTimeGet, &[9, 0, OUT as u64]),
        Errno::INVAL
    );
    // Rights can be dropped, not gained.
    assert_eq!(
        t.call(
            WasiFunc::FdFdstatSetRights,
            &[fd as u64, rights::FD_READ, 0]
        ),
        Errno::SUCCESS
    );
    assert_eq!(
        t.call(WasiFunc::FdFdstatSetRights, &[fd as u64, rights::ALL, 0]),
        Errno::NOTCAPABLE
    );
    assert_eq!(Errno::from_raw_os(libc::ENOTCONN), Errno::NOTCONN);
    assert_eq!(Errno::from_raw_os(libc::EXDEV), Errno::PERM);
}

#[test]
fn prestat_names_the_preopen() {
    let mut t = setup();
    assert_eq!(
        t.call(WasiFunc::FdPrestatGet, &[ROOT_FD as u64, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.mem[OUT as usize], 0);
    assert_eq!(t.u32_at(OUT + 4), 8);
    assert_eq!(
        t.call(WasiFunc::FdPrestatDirName, &[ROOT_FD as u64, BUF as u64, 8]),
        Errno::SUCCESS
    );
    assert_eq!(&t.mem[BUF as usize..BUF as usize + 8], b"/sandbox");
    assert_eq!(
        t.call(WasiFunc::FdPrestatGet, &[ROOT_FD as u64 + 1, OUT as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.call(WasiFunc::FdFdstatGet, &[ROOT_FD as u64, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.mem[OUT as usize], filetype::DIRECTORY);
    assert_eq!(t.u64_at(OUT + 16), rights::ALL);
}

/// Lists a directory with `fd_readdir` through a buffer of `buf_len` bytes,
/// following cookies the way wasi-libc does.
fn list_dir(t: &mut T, fd: u32, buf_len: u32) -> Vec<(String, u8)> {
    let mut names = Vec::new();
    let mut cookie = 0u64;
    loop {
        let e = t.call(
            WasiFunc::FdReaddir,
            &[fd as u64, BUF as u64, buf_len as u64, cookie, OUT as u64],
        );
        assert_eq!(e, Errno::SUCCESS);
        let used = t.u32_at(OUT);
        let mut at = 0u32;
        let mut progressed = false;
        while at + 24 <= used {
            let rec = BUF + at;
            let next = t.u64_at(rec);
            let namlen = t.u32_at(rec + 16);
            if at + 24 + namlen > used {
                break;
            }
            let ty = t.mem[rec as usize + 20];
            let name = &t.mem[(rec + 24) as usize..(rec + 24 + namlen) as usize];
            names.push((String::from_utf8(name.to_vec()).unwrap(), ty));
            cookie = next;
            at += 24 + namlen;
            progressed = true;
        }
        if used < buf_len {
            return names;
        }
        assert!(
            progressed,
            "buffer of {buf_len} bytes too small for one entry"
        );
    }
}

#[test]
fn readdir_cookies_resume_listing() {
    let mut t = setup();
    let mut expect = vec![
        (".".to_string(), filetype::DIRECTORY),
        ("..".to_string(), filetype::DIRECTORY),
    ];
    for i in 0..20 {
        let name = format!("file-with-a-longish-name-{i:02}");
        std::fs::write(t.root.join(&name), b"").unwrap();
        expect.push((name, filetype::REGULAR_FILE));
    }
    std::fs::create_dir(t.root.join("sub")).unwrap();
    expect.push(("sub".into(), filetype::DIRECTORY));
    std::os::unix::fs::symlink("sub", t.root.join("ln")).unwrap();
    expect.push(("ln".into(), filetype::SYMBOLIC_LINK));
    expect.sort();
    for buf_len in [64, 100, 257, 4096] {
        let mut got = list_dir(&mut t, ROOT_FD, buf_len);
        got.sort();
        assert_eq!(got, expect, "buffer of {buf_len} bytes");
    }
    let fd = t
        .open(ROOT_FD, "sub", oflags::DIRECTORY, rights::FD_READDIR, true)
        .unwrap();
    assert_eq!(list_dir(&mut t, fd, 128).len(), 2);
}

#[test]
fn sandbox_refuses_escapes() {
    let mut t = setup();
    let outside = t._dir.0.join("secret");
    std::fs::write(&outside, b"top secret").unwrap();
    std::fs::create_dir(t.root.join("d")).unwrap();
    std::os::unix::fs::symlink("/", t.root.join("to_root")).unwrap();
    std::os::unix::fs::symlink("../secret", t.root.join("to_secret")).unwrap();
    std::os::unix::fs::symlink("loop2", t.root.join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", t.root.join("loop2")).unwrap();
    std::os::unix::fs::symlink("d", t.root.join("to_d")).unwrap();
    let r = rights::FD_READ;
    assert_eq!(t.open(ROOT_FD, "../secret", 0, r, true), Err(Errno::PERM));
    assert_eq!(
        t.open(ROOT_FD, "d/../../secret", 0, r, true),
        Err(Errno::PERM)
    );
    assert_eq!(t.open(ROOT_FD, "/etc/passwd", 0, r, true), Err(Errno::PERM));
    assert_eq!(
        t.open(ROOT_FD, "to_root/etc/passwd", 0, r, true),
        Err(Errno::PERM)
    );
    assert_eq!(t.open(ROOT_FD, "to_secret", 0, r, true), Err(Errno::PERM));
    assert_eq!(t.open(ROOT_FD, "loop1", 0, r, true), Err(Errno::LOOP));
    // Not following a final symlink: as Linux answers for O_NOFOLLOW.
    assert_eq!(t.open(ROOT_FD, "to_secret", 0, r, false), Err(Errno::LOOP));
    assert_eq!(
        t.open(ROOT_FD, "to_d", oflags::DIRECTORY, r, false),
        Err(Errno::NOTDIR)
    );
    // Staying inside through `..` is fine.
    assert!(
        t.open(ROOT_FD, "d/../to_d/.", oflags::DIRECTORY, r, true)
            .is_ok()
    );
    // Calls on a last component.
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "../x"),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "/tmp/x"),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "to_root/tmp/x"),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathUnlinkFile, "../secret"),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathUnlinkFile, "to_root/../secret"),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathRemoveDirectory, ".."),
        Errno::PERM
    );
    assert_eq!(
        t.path_call(WasiFunc::PathRemoveDirectory, "d/../.."),
        Errno::PERM
    );
    assert!(outside.exists());
    // Stat following a symlink that leads outside, or of `..`.
    t.put(PATH, b"to_secret");
    let e = t.call(
        WasiFunc::PathFilestatGet,
        &[
            ROOT_FD as u64,
            LOOKUP_SYMLINK_FOLLOW as u64,
            PATH as u64,
            9,
            BUF as u64,
        ],
    );
    assert_eq!(e, Errno::PERM);
    t.put(PATH, b"..");
    let e = t.call(
        WasiFunc::PathFilestatGet,
        &[ROOT_FD as u64, 0, PATH as u64, 2, BUF as u64],
    );
    assert_eq!(e, Errno::PERM);
    // Without following, the link itself is visible.
    t.put(PATH, b"to_secret");
    let e = t.call(
        WasiFunc::PathFilestatGet,
        &[ROOT_FD as u64, 0, PATH as u64, 9, BUF as u64],
    );
    assert_eq!(e, Errno::SUCCESS);
    assert_eq!(t.mem[BUF as usize + 16], filetype::SYMBOLIC_LINK);
    // Renaming or linking out of the sandbox.
    std::fs::write(t.root.join("mine"), b"").unwrap();
    t.put(PATH, b"mine");
    t.put(PATH + 100, b"../stolen");
    let e = t.call(
        WasiFunc::PathRename,
        &[
            ROOT_FD as u64,
            PATH as u64,
            4,
            ROOT_FD as u64,
            PATH as u64 + 100,
            9,
        ],
    );
    assert_eq!(e, Errno::PERM);
    t.put(PATH, b"to_secret");
    t.put(PATH + 100, b"stolen");
    let e = t.call(
        WasiFunc::PathLink,
        &[
            ROOT_FD as u64,
            LOOKUP_SYMLINK_FOLLOW as u64,
            PATH as u64,
            9,
            ROOT_FD as u64,
            PATH as u64 + 100,
            6,
        ],
    );
    assert_eq!(e, Errno::PERM);
    assert!(!t.root.join("stolen").exists());
    assert!(!t._dir.0.join("stolen").exists());
}

#[test]
fn path_operations_work_inside() {
    let mut t = setup();
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "a"),
        Errno::SUCCESS
    );
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "a/b/"),
        Errno::SUCCESS
    );
    std::fs::write(t.root.join("a/f"), b"data").unwrap();
    // symlink + readlink
    t.put(PATH, b"f");
    t.put(PATH + 100, b"a/l");
    assert_eq!(
        t.call(
            WasiFunc::PathSymlink,
            &[PATH as u64, 1, ROOT_FD as u64, PATH as u64 + 100, 3]
        ),
        Errno::SUCCESS
    );
    t.put(PATH, b"a/l");
    assert_eq!(
        t.call(
            WasiFunc::PathReadlink,
            &[ROOT_FD as u64, PATH as u64, 3, BUF as u64, 64, OUT as u64]
        ),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), 1);
    assert_eq!(t.mem[BUF as usize], b'f');
    // link, rename, unlink
    t.put(PATH, b"a/f");
    t.put(PATH + 100, b"a/b/g");
    assert_eq!(
        t.call(
            WasiFunc::PathLink,
            &[
                ROOT_FD as u64,
                0,
                PATH as u64,
                3,
                ROOT_FD as u64,
                PATH as u64 + 100,
                5
            ]
        ),
        Errno::SUCCESS
    );
    t.put(PATH + 100, b"a/b/h");
    assert_eq!(
        t.call(
            WasiFunc::PathRename,
            &[
                ROOT_FD as u64,
                PATH as u64,
                3,
                ROOT_FD as u64,
                PATH as u64 + 100,
                5
            ]
        ),
        Errno::SUCCESS
    );
    assert_eq!(std::fs::read(t.root.join("a/b/h")).unwrap(), b"data");
    assert_eq!(std::fs::read(t.root.join("a/b/g")).unwrap(), b"data");
    assert_eq!(
        t.path_call(WasiFunc::PathUnlinkFile, "a/b/g"),
        Errno::SUCCESS
    );
    // filestat via path and via fd, set size, set times
    t.put(PATH, b"a/b/h");
    assert_eq!(
        t.call(
            WasiFunc::PathFilestatGet,
            &[ROOT_FD as u64, 1, PATH as u64, 5, BUF as u64]
        ),
        Errno::SUCCESS
    );
    assert_eq!(t.mem[BUF as usize + 16], filetype::REGULAR_FILE);
    assert_eq!(t.u64_at(BUF + 32), 4);
    assert_eq!(t.u64_at(BUF + 24), 1);
    let e = t.call(
        WasiFunc::PathFilestatSetTimes,
        &[
            ROOT_FD as u64,
            1,
            PATH as u64,
            5,
            1_000_000_000,
            2_000_000_000,
            5,
        ],
    );
    assert_eq!(e, Errno::SUCCESS);
    let md = std::fs::metadata(t.root.join("a/b/h")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((md.atime(), md.mtime()), (1, 2));
    let fd = t.open(ROOT_FD, "a/b/h", 0, rights::FILE, true).unwrap();
    assert_eq!(t.ctx.state().fds[&fd].path, "a/b/h");
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetSize, &[fd as u64, 10]),
        Errno::SUCCESS
    );
    assert_eq!(
        t.call(WasiFunc::FdFilestatGet, &[fd as u64, BUF as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u64_at(BUF + 32), 10);
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetTimes, &[fd as u64, 0, 0, 3]),
        Errno::INVAL
    );
    assert_eq!(
        t.call(WasiFunc::FdAllocate, &[fd as u64, 0, 100]),
        Errno::SUCCESS
    );
    assert_eq!(
        t.call(WasiFunc::FdAdvise, &[fd as u64, 0, 0, 1]),
        Errno::SUCCESS
    );
    assert_eq!(t.call(WasiFunc::FdSync, &[fd as u64]), Errno::SUCCESS);
    assert_eq!(t.call(WasiFunc::FdDatasync, &[fd as u64]), Errno::SUCCESS);
    // Opening relative to an opened directory records the joined path.
    let d = t
        .open(ROOT_FD, "a", oflags::DIRECTORY, rights::DIR, true)
        .unwrap();
    let f2 = t.open(d, "b/h", 0, rights::FD_READ, true).unwrap();
    assert_eq!(t.ctx.state().fds[&f2].path, "a/b/h");
    // renumber
    assert_eq!(
        t.call(WasiFunc::FdRenumber, &[f2 as u64, fd as u64]),
        Errno::SUCCESS
    );
    assert!(!t.ctx.state().fds.contains_key(&f2));
    assert_eq!(
        t.call(WasiFunc::FdRenumber, &[f2 as u64, fd as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.path_call(WasiFunc::PathRemoveDirectory, "a/b"),
        Errno::NOTEMPTY
    );
}

#[test]
fn clocks_random_and_poll() {
    let mut t = setup();
    assert_eq!(
        t.call(WasiFunc::ClockTimeGet, &[1, 1, OUT as u64]),
        Errno::SUCCESS
    );
    let a = t.u64_at(OUT);
    assert_eq!(
        t.call(WasiFunc::ClockTimeGet, &[1, 1, OUT as u64]),
        Errno::SUCCESS
    );
    assert!(t.u64_at(OUT) >= a);
    assert_eq!(
        t.call(WasiFunc::ClockResGet, &[0, OUT as u64]),
        Errno::SUCCESS
    );
    assert!(t.u64_at(OUT) > 0);
    assert_eq!(
        t.call(WasiFunc::RandomGet, &[BUF as u64, 64]),
        Errno::SUCCESS
    );
    assert!(
        t.mem[BUF as usize..BUF as usize + 64]
            .iter()
            .any(|&b| b != 0)
    );
    // poll_oneoff: one relative 20 ms clock.
    let sub = BUF;
    let mut rec = [0u8; 48];
    rec[0..8].copy_from_slice(&42u64.to_le_bytes());
    rec[8] = 0;
    rec[16..20].copy_from_slice(&1u32.to_le_bytes());
    rec[24..32].copy_from_slice(&20_000_000u64.to_le_bytes());
    t.put(sub, &rec);
    let start = std::time::Instant::now();
    assert_eq!(
        t.call(
            WasiFunc::PollOneoff,
            &[sub as u64, BUF as u64 + 100, 1, OUT as u64]
        ),
        Errno::SUCCESS
    );
    assert!(start.elapsed() >= std::time::Duration::from_millis(20));
    assert_eq!(t.u32_at(OUT), 1);
    assert_eq!(t.u64_at(BUF + 100), 42);
    assert_eq!(t.mem[BUF as usize + 110], 0);
    assert_eq!(
        t.call(
            WasiFunc::PollOneoff,
            &[sub as u64, BUF as u64 + 100, 0, OUT as u64]
        ),
        Errno::INVAL
    );
    assert_eq!(t.call(WasiFunc::SchedYield, &[]), Errno::SUCCESS);
}

#[test]
fn state_is_plain_serialisable_data() {
    let t = setup();
    let s = t.ctx.state().clone();
    let bytes = mvvm_abi::codec::encode(&s).unwrap();
    let back: WasiState = mvvm_abi::codec::decode(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(s.fds[&ROOT_FD].kind, FdKind::PreopenDir);
    assert_eq!(s.preopens[0].guest, "/sandbox");
}

#[test]
fn preopen_of_a_missing_directory_is_an_error() {
    let e = WasiCtx::new(WasiConfig {
        preopens: vec![Preopen {
            host: Path::new("/nonexistent/mvvm").into(),
            guest: "x".into(),
        }],
        ..Default::default()
    });
    assert!(matches!(e, Err(WasiSetupError::Preopen { .. })));
}

#[test]
fn split_of_paths() {
    use super::path::split;
    let s = split("a/b/c").unwrap();
    assert_eq!((s.parent, s.name, s.trailing_slash), ("a/b", "c", false));
    let s = split("c/").unwrap();
    assert_eq!((s.parent, s.name, s.trailing_slash), (".", "c", true));
    let s = split("/etc").unwrap();
    assert_eq!((s.parent, s.name), ("/", "etc"));
    let s = split("a/..").unwrap();
    assert_eq!((s.parent, s.name), ("a/..", "."));
    assert_eq!(split(""), Err(Errno::NOENT));
}

#[test]
fn restore_reopens_files_at_their_position() {
    let mut t = setup();
    std::fs::create_dir(t.root.join("d")).unwrap();
    let fd = t
        .open(
            ROOT_FD,
            "d/f",
            oflags::CREAT | oflags::TRUNC,
            rights::FD_READ | rights::FD_WRITE | rights::FD_SEEK,
            true,
        )
        .unwrap();
    t.put(BUF, b"hello world");
    t.iovs(&[(BUF, 11)]);
    assert_eq!(
        t.call(WasiFunc::FdWrite, &[fd as u64, IOVS as u64, 1, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[fd as u64, 6, 0, OUT as u64]),
        Errno::SUCCESS
    );
    let dfd = t
        .open(ROOT_FD, "d", oflags::DIRECTORY, rights::DIR, true)
        .unwrap();
    let before = t.ctx.save_state(RunAfter::Continues).unwrap();
    assert!(before.clocks.saved_monotonic_ns > 0);
    let bytes = mvvm_abi::codec::encode(&before).unwrap();
    let old = std::mem::replace(
        &mut t.ctx,
        WasiCtx::restore(
            mvvm_abi::codec::decode(&bytes).unwrap(),
            &grants_as_saved(&before),
            true,
        )
        .unwrap(),
    );
    drop(old);
    // Not truncated again, and reading continues at the saved position.
    t.iovs(&[(BUF + 100, 20)]);
    assert_eq!(
        t.call(WasiFunc::FdRead, &[fd as u64, IOVS as u64, 1, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(
        &t.mem[BUF as usize + 100..BUF as usize + 100 + t.u32_at(OUT) as usize],
        b"world"
    );
    // The reopened directory works as a base for paths.
    assert!(t.open(dfd, "f", 0, rights::FD_READ, true).is_ok());
    // The monotonic clock did not go back.
    assert_eq!(
        t.call(WasiFunc::ClockTimeGet, &[1, 0, OUT as u64]),
        Errno::SUCCESS
    );
    assert!(t.u64_at(OUT) >= before.clocks.saved_monotonic_ns);
    // A file replaced under the same name is refused when identity counts.
    let saved = t.ctx.save_state(RunAfter::Continues).unwrap();
    std::fs::remove_file(t.root.join("d/f")).unwrap();
    std::fs::write(t.root.join("d/f"), b"other").unwrap();
    assert!(matches!(
        WasiCtx::restore(saved.clone(), &grants_as_saved(&saved), true),
        Err(WasiRestoreError::Changed { .. })
    ));
    assert!(WasiCtx::restore(saved.clone(), &grants_as_saved(&saved), false).is_ok());
    std::fs::remove_file(t.root.join("d/f")).unwrap();
    assert!(matches!(
        WasiCtx::restore(saved.clone(), &grants_as_saved(&saved), false),
        Err(WasiRestoreError::Reopen {
            errno: Errno::NOENT,
            ..
        })
    ));
}

#[test]
fn readdir_while_deleting_sees_every_entry_once() {
    let mut t = setup();
    let mut expect = Vec::new();
    for i in 0..40 {
        let name = format!("victim-{i:02}");
        std::fs::write(t.root.join(&name), b"").unwrap();
        expect.push(name);
    }
    // Like `rm -r`: list a batch, delete it, continue from the cookie.
    let mut seen = Vec::new();
    let mut cookie = 0u64;
    loop {
        let e = t.call(
            WasiFunc::FdReaddir,
            &[ROOT_FD as u64, BUF as u64, 200, cookie, OUT as u64],
        );
        assert_eq!(e, Errno::SUCCESS);
        let used = t.u32_at(OUT);
        let mut at = 0;
        while at + 24 <= used {
            let namlen = t.u32_at(BUF + at + 16);
            if at + 24 + namlen > used {
                break;
            }
            let name = String::from_utf8(
                t.mem[(BUF + at + 24) as usize..(BUF + at + 24 + namlen) as usize].to_vec(),
            )
            .unwrap();
            cookie = t.u64_at(BUF + at);
            if name != "." && name != ".." {
                std::fs::remove_file(t.root.join(&name)).unwrap();
                seen.push(name);
            }
            at += 24 + namlen;
        }
        if used < 200 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, expect);
}

#[test]
fn no_function_panics_on_hostile_arguments() {
    let mut t = setup();
    for &f in WasiFunc::ALL {
        let n = f.signature().params.len();
        for fd in [ROOT_FD as u64, 1000, u32::MAX as u64] {
            for v in [
                u32::MAX as u64,
                0xffff_fff0,
                0x8000_0000,
                MEM as u64 - 1,
                u64::MAX,
            ] {
                let mut args = vec![v; n];
                if let Some(a) = args.first_mut() {
                    *a = fd;
                }
                let mut r = [0u64; 1];
                match t.ctx.call(f, &mut t.mem, &args, &mut r) {
                    Ok(()) => {}
                    Err(WasiStop::Exit(_)) => assert_eq!(f, WasiFunc::ProcExit),
                    Err(e) => panic!("{}: {e:?}", f.name()),
                }
            }
        }
    }
}

#[test]
fn listener_poll_accept_recv_send_shutdown() {
    let mut ctx = WasiCtx::new(WasiConfig {
        tcp_listeners: vec!["127.0.0.1:0".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let lfd = 3;
    let FdKind::TcpListener { addr } = ctx.state().fds[&lfd].kind.clone() else {
        panic!("fd 3 is not the listener");
    };
    let mut mem = vec![0u8; MEM];
    let call = |ctx: &mut WasiCtx, mem: &mut Vec<u8>, f: WasiFunc, args: &[u64]| {
        let mut r = [0u64; 1];
        ctx.call(f, mem, args, &mut r).unwrap();
        Errno(r[0] as u16)
    };
    // Subscriptions: read on the listener (userdata 1), a 30 ms clock (2).
    let subs = BUF;
    let mut rec = [0u8; 96];
    rec[0..8].copy_from_slice(&1u64.to_le_bytes());
    rec[8] = types::eventtype::FD_READ;
    rec[16..20].copy_from_slice(&lfd.to_le_bytes());
    rec[48..56].copy_from_slice(&2u64.to_le_bytes());
    rec[56] = types::eventtype::CLOCK;
    rec[64..68].copy_from_slice(&1u32.to_le_bytes());
    rec[72..80].copy_from_slice(&30_000_000u64.to_le_bytes());
    mem[subs as usize..subs as usize + 96].copy_from_slice(&rec);
    let poll = |ctx: &mut WasiCtx, mem: &mut Vec<u8>| {
        let mut r = [0u64; 1];
        let args = [subs as u64, BUF as u64 + 200, 2, OUT as u64];
        ctx.call(WasiFunc::PollOneoff, mem, &args, &mut r).unwrap();
        assert_eq!(r[0], 0);
        let n = u32::from_le_bytes(mem[OUT as usize..OUT as usize + 4].try_into().unwrap());
        (0..n)
            .map(|i| {
                let at = (BUF + 200 + 32 * i) as usize;
                u64::from_le_bytes(mem[at..at + 8].try_into().unwrap())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(poll(&mut ctx, &mut mem), vec![2]);
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    assert_eq!(poll(&mut ctx, &mut mem), vec![1]);
    assert_eq!(
        call(
            &mut ctx,
            &mut mem,
            WasiFunc::SockAccept,
            &[lfd as u64, 0, OUT as u64]
        ),
        Errno::SUCCESS
    );
    let conn = u32::from_le_bytes(mem[OUT as usize..OUT as usize + 4].try_into().unwrap());
    assert!(matches!(
        ctx.state().fds[&conn].kind,
        FdKind::TcpStream { .. }
    ));
    use std::io::{Read, Write};
    client.write_all(b"ping").unwrap();
    // recv with PEEK, then for real.
    mem[IOVS as usize..IOVS as usize + 8].copy_from_slice(&[0, 0x30, 0, 0, 16, 0, 0, 0]);
    let args = [conn as u64, IOVS as u64, 1, 1, OUT as u64, OUT as u64 + 8];
    assert_eq!(
        call(&mut ctx, &mut mem, WasiFunc::SockRecv, &args),
        Errno::SUCCESS
    );
    let args = [conn as u64, IOVS as u64, 1, 0, OUT as u64, OUT as u64 + 8];
    assert_eq!(
        call(&mut ctx, &mut mem, WasiFunc::SockRecv, &args),
        Errno::SUCCESS
    );
    assert_eq!(&mem[0x3000..0x3004], b"ping");
    mem[0x3000..0x3004].copy_from_slice(b"pong");
    mem[IOVS as usize..IOVS as usize + 8].copy_from_slice(&[0, 0x30, 0, 0, 4, 0, 0, 0]);
    let args = [conn as u64, IOVS as u64, 1, 0, OUT as u64];
    assert_eq!(
        call(&mut ctx, &mut mem, WasiFunc::SockSend, &args),
        Errno::SUCCESS
    );
    assert_eq!(
        call(
            &mut ctx,
            &mut mem,
            WasiFunc::SockShutdown,
            &[conn as u64, 2]
        ),
        Errno::SUCCESS
    );
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"pong");
    // Socket calls on other descriptors.
    assert_eq!(
        call(&mut ctx, &mut mem, WasiFunc::SockShutdown, &[lfd as u64, 2]),
        Errno::NOTCONN
    );
    assert_eq!(
        call(
            &mut ctx,
            &mut mem,
            WasiFunc::SockAccept,
            &[1, 0, OUT as u64]
        ),
        Errno::NOTSOCK
    );
    assert_eq!(
        call(
            &mut ctx,
            &mut mem,
            WasiFunc::SockShutdown,
            &[conn as u64, 9]
        ),
        Errno::INVAL
    );
}

#[test]
fn renames_keep_recorded_paths_current() {
    let mut t = setup();
    assert_eq!(
        t.path_call(WasiFunc::PathCreateDirectory, "./d//"),
        Errno::SUCCESS
    );
    let f = t
        .open(ROOT_FD, "d/./f", oflags::CREAT, rights::FD_WRITE, true)
        .unwrap();
    assert_eq!(t.ctx.state().fds[&f].path, "d/f");
    let d = t
        .open(ROOT_FD, "d", oflags::DIRECTORY, rights::DIR, true)
        .unwrap();
    let rename = |t: &mut T, from_fd: u32, from: &str, to_fd: u32, to: &str| {
        t.put(PATH, from.as_bytes());
        t.put(PATH + 100, to.as_bytes());
        let args = [
            from_fd as u64,
            PATH as u64,
            from.len() as u64,
            to_fd as u64,
            PATH as u64 + 100,
            to.len() as u64,
        ];
        t.call(WasiFunc::PathRename, &args)
    };
    // The file itself, relative to the opened directory.
    assert_eq!(rename(&mut t, d, "f", ROOT_FD, "d/g"), Errno::SUCCESS);
    assert_eq!(t.ctx.state().fds[&f].path, "d/g");
    // The directory above it.
    assert_eq!(rename(&mut t, ROOT_FD, "d", ROOT_FD, "e"), Errno::SUCCESS);
    assert_eq!(t.ctx.state().fds[&f].path, "e/g");
    assert_eq!(t.ctx.state().fds[&d].path, "e");
    // And a restore finds both.
    let saved = t.ctx.save_state(RunAfter::Continues).unwrap();
    assert!(WasiCtx::restore(saved.clone(), &grants_as_saved(&saved), true).is_ok());
}

/// Closes `fd` through `fd_close`.
fn close(t: &mut T, fd: u32) {
    assert_eq!(t.call(WasiFunc::FdClose, &[fd as u64]), Errno::SUCCESS);
}

/// A new file `name` in the preopen, opened for writing: its descriptor.
fn create(t: &mut T, name: &str) -> u32 {
    t.open(ROOT_FD, name, oflags::CREAT, rights::FD_WRITE, true)
        .unwrap()
}

#[test]
fn descriptor_numbers_are_reused_most_recently_freed_first_as_wasmtime_does() {
    let mut t = setup();
    // stdio 0-2, the preopen 3: new descriptors go past the highest.
    let a = create(&mut t, "a");
    let b = create(&mut t, "b");
    assert_eq!((a, b), (4, 5));
    close(&mut t, a);
    close(&mut t, b);
    // Wasmtime hands out the number freed last (POSIX would give 4).
    assert_eq!(create(&mut t, "c"), 5);
    assert_eq!(create(&mut t, "d"), 4);
    assert_eq!(create(&mut t, "e"), 6);
    // Closing stderr and opening a file gives it number 2, as under
    // Wasmtime; a renumber frees its source.
    close(&mut t, 2);
    assert_eq!(create(&mut t, "f"), 2);
    let g = create(&mut t, "g");
    assert_eq!(g, 7);
    assert_eq!(t.call(WasiFunc::FdRenumber, &[g as u64, 1]), Errno::SUCCESS);
    assert_eq!(create(&mut t, "h"), 7);
}

#[test]
fn descriptor_numbering_continues_the_same_after_a_restore() {
    let mut t = setup();
    let a = create(&mut t, "a");
    let b = create(&mut t, "b");
    close(&mut t, b);
    close(&mut t, a);
    let saved = t.ctx.save_state(RunAfter::Continues).unwrap();
    assert_eq!(saved.closed, [5, 4]);
    let bytes = mvvm_abi::codec::encode(&saved).unwrap();
    let restored = WasiCtx::restore(
        mvvm_abi::codec::decode(&bytes).unwrap(),
        &grants_as_saved(&saved),
        true,
    )
    .unwrap();
    drop(std::mem::replace(&mut t.ctx, restored));
    assert_eq!(create(&mut t, "c"), 4);
    assert_eq!(create(&mut t, "d"), 5);
}
