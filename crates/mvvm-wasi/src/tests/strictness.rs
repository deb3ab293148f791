//! Regression tests of the places where MVVM's WASI was laxer than
//! wasmtime's preview1 (found with the official WASI testsuite): trailing
//! slashes on new link paths, directories opened for writing, rights
//! (dropped, inherited, needed by each call, kept across a restore) and
//! symlinks with absolute targets. Every test asserts exact errnos.

use super::*;

/// The rights of `fd` as `fd_fdstat_get` reports them: (base, inheriting).
fn rights_of(t: &mut T, fd: u32) -> (u64, u64) {
    assert_eq!(
        t.call(WasiFunc::FdFdstatGet, &[fd as u64, OUT as u64]),
        Errno::SUCCESS
    );
    (t.u64_at(OUT + 8), t.u64_at(OUT + 16))
}

fn set_rights(t: &mut T, fd: u32, base: u64, inheriting: u64) -> Errno {
    t.call(WasiFunc::FdFdstatSetRights, &[fd as u64, base, inheriting])
}

/// Drops `base` and `inheriting` rights from `fd`, which must succeed.
fn drop_rights(t: &mut T, fd: u32, base: u64, inheriting: u64) {
    let (b, i) = rights_of(t, fd);
    assert_eq!(
        set_rights(t, fd, b & !base, i & !inheriting),
        Errno::SUCCESS
    );
}

/// `path_open` relative to `dir` with explicit inheriting rights.
fn open_with(
    t: &mut T,
    dir: u32,
    path: &str,
    of: u16,
    base: u64,
    inheriting: u64,
) -> Result<u32, Errno> {
    t.put(PATH, path.as_bytes());
    let e = t.call(
        WasiFunc::PathOpen,
        &[
            dir as u64,
            LOOKUP_SYMLINK_FOLLOW as u64,
            PATH as u64,
            path.len() as u64,
            of as u64,
            base,
            inheriting,
            0,
            OUT as u64,
        ],
    );
    if e == Errno::SUCCESS {
        Ok(t.u32_at(OUT))
    } else {
        Err(e)
    }
}

/// `path_link(old_dir, follow, old, new_dir, new)`.
fn link(t: &mut T, old_dir: u32, follow: bool, old: &str, new_dir: u32, new: &str) -> Errno {
    t.put(PATH, old.as_bytes());
    t.put(PATH + 200, new.as_bytes());
    t.call(
        WasiFunc::PathLink,
        &[
            old_dir as u64,
            if follow {
                LOOKUP_SYMLINK_FOLLOW as u64
            } else {
                0
            },
            PATH as u64,
            old.len() as u64,
            new_dir as u64,
            PATH as u64 + 200,
            new.len() as u64,
        ],
    )
}

/// `path_symlink(target, dir, new)`.
fn symlink(t: &mut T, target: &str, dir: u32, new: &str) -> Errno {
    t.put(PATH, target.as_bytes());
    t.put(PATH + 200, new.as_bytes());
    t.call(
        WasiFunc::PathSymlink,
        &[
            PATH as u64,
            target.len() as u64,
            dir as u64,
            PATH as u64 + 200,
            new.len() as u64,
        ],
    )
}

fn write(t: &mut T, fd: u32, data: &[u8]) -> Errno {
    t.put(BUF, data);
    t.iovs(&[(BUF, data.len() as u32)]);
    t.call(WasiFunc::FdWrite, &[fd as u64, IOVS as u64, 1, OUT as u64])
}

fn read(t: &mut T, fd: u32, len: u32) -> Errno {
    t.iovs(&[(BUF, len)]);
    t.call(WasiFunc::FdRead, &[fd as u64, IOVS as u64, 1, OUT as u64])
}

/// A call on a path relative to `dir` (create/remove directory, unlink).
fn path_call_in(t: &mut T, f: WasiFunc, dir: u32, path: &str) -> Errno {
    t.put(PATH, path.as_bytes());
    t.call(f, &[dir as u64, PATH as u64, path.len() as u64])
}

#[test]
fn path_link_trailing_slash() {
    let mut t = setup();
    std::fs::write(t.root.join("file"), b"x").unwrap();
    std::fs::write(t.root.join("other"), b"y").unwrap();
    std::fs::create_dir(t.root.join("dir")).unwrap();
    // A new path ending with `/` names a directory, which a link never is.
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file", ROOT_FD, "link/"),
        Errno::NOENT
    );
    assert_eq!(
        link(&mut t, ROOT_FD, true, "file", ROOT_FD, "link/"),
        Errno::NOENT
    );
    assert!(!t.root.join("link").exists());
    // Taken names: a file with a slash is not a directory; a directory is
    // there already.
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file", ROOT_FD, "other/"),
        Errno::NOTDIR
    );
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file", ROOT_FD, "dir/"),
        Errno::EXIST
    );
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file", ROOT_FD, "dir"),
        Errno::EXIST
    );
    // An old path with a slash must be a directory, and directories are
    // not hard-linked.
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file/", ROOT_FD, "link"),
        Errno::NOTDIR
    );
    assert_eq!(
        link(&mut t, ROOT_FD, false, "dir/", ROOT_FD, "link"),
        Errno::PERM
    );
    assert_eq!(
        link(&mut t, ROOT_FD, false, "missing", ROOT_FD, "link/"),
        Errno::NOENT
    );
    assert!(!t.root.join("link").exists());
    // Without the slash it works.
    assert_eq!(
        link(&mut t, ROOT_FD, false, "file", ROOT_FD, "link"),
        Errno::SUCCESS
    );
    assert_eq!(std::fs::read(t.root.join("link")).unwrap(), b"x");
}

#[test]
fn path_symlink_trailing_slash() {
    let mut t = setup();
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target/"), Errno::NOENT);
    assert!(std::fs::symlink_metadata(t.root.join("target")).is_err());
    std::fs::create_dir(t.root.join("target")).unwrap();
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target/"), Errno::EXIST);
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target"), Errno::EXIST);
    std::fs::remove_dir(t.root.join("target")).unwrap();
    std::fs::write(t.root.join("target"), b"").unwrap();
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target/"), Errno::NOTDIR);
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target"), Errno::EXIST);
    std::fs::remove_file(t.root.join("target")).unwrap();
    // A dangling link without the slash is fine.
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target"), Errno::SUCCESS);
    assert_eq!(
        std::fs::read_link(t.root.join("target")).unwrap(),
        Path::new("source")
    );
    // The name of a symlink with a slash after it is taken.
    assert_eq!(symlink(&mut t, "source", ROOT_FD, "target/"), Errno::EXIST);
}

#[test]
fn path_open_dir_with_write_rights_is_isdir() {
    let mut t = setup();
    std::fs::create_dir(t.root.join("dir")).unwrap();
    for of in [oflags::DIRECTORY, 0] {
        for r in [
            rights::FD_WRITE,
            rights::FD_READ | rights::FD_WRITE,
            rights::FD_ALLOCATE,
            rights::FD_FILESTAT_SET_SIZE,
        ] {
            assert_eq!(
                open_with(&mut t, ROOT_FD, "dir", of, r, 0),
                Err(Errno::ISDIR),
                "oflags {of}, rights {r:#x}"
            );
        }
    }
    assert_eq!(
        open_with(&mut t, ROOT_FD, ".", oflags::DIRECTORY, rights::ALL, 0),
        Err(Errno::ISDIR)
    );
    // Reading a directory is fine, with or without `O_DIRECTORY`.
    let r = rights::FD_READ | rights::FD_READDIR;
    assert!(open_with(&mut t, ROOT_FD, "dir", oflags::DIRECTORY, r, 0).is_ok());
    assert!(open_with(&mut t, ROOT_FD, "dir", 0, r, 0).is_ok());
    // A directory that may not pass on write rights opens read-only.
    let d = open_with(
        &mut t,
        ROOT_FD,
        "dir",
        oflags::DIRECTORY,
        rights::DIR,
        rights::ALL & !rights::FD_WRITE,
    )
    .unwrap();
    std::fs::write(t.root.join("dir/f"), b"").unwrap();
    let f = open_with(&mut t, d, "f", 0, rights::FD_READ | rights::FD_WRITE, 0).unwrap();
    assert!(!t.ctx.state().fds[&f].write);
    assert_eq!(write(&mut t, f, b"no"), Errno::BADF);
}

#[test]
fn fd_fdstat_set_rights_drops_are_enforced() {
    let mut t = setup();
    let asked = rights::FD_READ | rights::FD_WRITE | rights::FD_SEEK | rights::FD_TELL;
    let fd = open_with(&mut t, ROOT_FD, "file", oflags::CREAT, asked, 0).unwrap();
    assert_eq!(rights_of(&mut t, fd), (asked, 0));
    assert_eq!(write(&mut t, fd, b"0123"), Errno::SUCCESS);
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[fd as u64, 0, 0, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(read(&mut t, fd, 4), Errno::SUCCESS);
    assert_eq!(t.u32_at(OUT), 4);

    drop_rights(&mut t, fd, rights::FD_READ | rights::FD_WRITE, 0);
    assert_eq!(
        rights_of(&mut t, fd),
        (rights::FD_SEEK | rights::FD_TELL, 0)
    );
    // The handle could, the descriptor may not.
    assert_eq!(read(&mut t, fd, 4), Errno::NOTCAPABLE);
    assert_eq!(write(&mut t, fd, b"x"), Errno::NOTCAPABLE);
    t.iovs(&[(BUF, 4)]);
    assert_eq!(
        t.call(
            WasiFunc::FdPread,
            &[fd as u64, IOVS as u64, 1, 0, OUT as u64]
        ),
        Errno::NOTCAPABLE
    );
    assert_eq!(
        t.call(
            WasiFunc::FdPwrite,
            &[fd as u64, IOVS as u64, 1, 0, OUT as u64]
        ),
        Errno::NOTCAPABLE
    );
    assert_eq!(std::fs::read(t.root.join("file")).unwrap(), b"0123");
    // What is left still works.
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[fd as u64, 1, 0, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(
        t.call(WasiFunc::FdTell, &[fd as u64, OUT as u64]),
        Errno::SUCCESS
    );
    assert_eq!(t.u64_at(OUT), 1);
    // Rights never come back.
    assert_eq!(set_rights(&mut t, fd, asked, 0), Errno::NOTCAPABLE);
    assert_eq!(
        set_rights(&mut t, fd, rights::FD_SEEK, rights::FD_READ),
        Errno::NOTCAPABLE
    );
    drop_rights(&mut t, fd, rights::FD_SEEK, 0);
    // Only `fd_tell`'s form of seeking is left.
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[fd as u64, 1, 0, OUT as u64]),
        Errno::NOTCAPABLE
    );
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[fd as u64, 0, 1, OUT as u64]),
        Errno::SUCCESS
    );
    drop_rights(&mut t, fd, rights::FD_TELL, 0);
    assert_eq!(
        t.call(WasiFunc::FdTell, &[fd as u64, OUT as u64]),
        Errno::NOTCAPABLE
    );
    assert_eq!(rights_of(&mut t, fd), (0, 0));

    // On a directory: a dropped base right stops its call, a dropped
    // inheriting right is missing from what is opened through it.
    let d = open_with(
        &mut t,
        ROOT_FD,
        ".",
        oflags::DIRECTORY,
        rights::DIR,
        rights::ALL,
    )
    .unwrap();
    drop_rights(&mut t, d, rights::PATH_CREATE_DIRECTORY, rights::FD_READ);
    assert_eq!(
        path_call_in(&mut t, WasiFunc::PathCreateDirectory, d, "sub"),
        Errno::NOTCAPABLE
    );
    assert!(!t.root.join("sub").exists());
    let f = open_with(&mut t, d, "file", 0, rights::ALL, rights::ALL).unwrap();
    let (base, inh) = rights_of(&mut t, f);
    assert_eq!(base, rights::FILE & !rights::FD_READ);
    assert_eq!(inh, rights::ALL & !rights::FD_READ);
    assert_eq!(read(&mut t, f, 1), Errno::NOTCAPABLE);
    // The preopen itself is untouched.
    assert_eq!(
        path_call_in(&mut t, WasiFunc::PathCreateDirectory, ROOT_FD, "sub"),
        Errno::SUCCESS
    );
}

#[test]
fn truncate_needs_filestat_set_size_right() {
    let mut t = setup();
    std::fs::write(t.root.join("file"), b"contents").unwrap();
    let d = open_with(
        &mut t,
        ROOT_FD,
        ".",
        oflags::DIRECTORY,
        rights::DIR,
        rights::ALL,
    )
    .unwrap();
    // Truncating through path_open needs PATH_FILESTAT_SET_SIZE on the
    // directory, and nothing of the new descriptor (it asks for none).
    let f = open_with(&mut t, d, "file", oflags::TRUNC, 0, 0).unwrap();
    assert_eq!(rights_of(&mut t, f), (0, 0));
    assert_eq!(std::fs::metadata(t.root.join("file")).unwrap().len(), 0);
    std::fs::write(t.root.join("file"), b"contents").unwrap();
    // Without FD_FILESTAT_SET_SIZE to pass on, it still truncates.
    drop_rights(&mut t, d, 0, rights::FD_FILESTAT_SET_SIZE);
    let g = open_with(&mut t, d, "file", oflags::TRUNC, rights::ALL, 0).unwrap();
    assert_eq!(std::fs::metadata(t.root.join("file")).unwrap().len(), 0);
    // ... but the new descriptor may not resize.
    assert_eq!(rights_of(&mut t, g).0 & rights::FD_FILESTAT_SET_SIZE, 0);
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetSize, &[g as u64, 3]),
        Errno::NOTCAPABLE
    );
    assert_eq!(
        t.call(WasiFunc::FdAllocate, &[g as u64, 0, 3]),
        Errno::SUCCESS
    );
    assert_eq!(std::fs::metadata(t.root.join("file")).unwrap().len(), 3);
    std::fs::write(t.root.join("file"), b"contents").unwrap();
    // Without PATH_FILESTAT_SET_SIZE no truncating open, and nothing
    // happens to the file.
    drop_rights(&mut t, d, rights::PATH_FILESTAT_SET_SIZE, 0);
    assert_eq!(
        open_with(&mut t, d, "file", oflags::TRUNC, 0, 0),
        Err(Errno::NOTCAPABLE)
    );
    assert_eq!(
        open_with(
            &mut t,
            d,
            "file",
            oflags::TRUNC | oflags::CREAT,
            rights::ALL,
            0
        ),
        Err(Errno::NOTCAPABLE)
    );
    assert_eq!(std::fs::read(t.root.join("file")).unwrap(), b"contents");
    // Opening without truncating is still allowed.
    assert!(open_with(&mut t, d, "file", 0, rights::FD_READ, 0).is_ok());
    // A descriptor whose FD_FILESTAT_SET_SIZE was dropped cannot ftruncate.
    let h = open_with(&mut t, ROOT_FD, "file", 0, rights::ALL, 0).unwrap();
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetSize, &[h as u64, 1]),
        Errno::SUCCESS
    );
    drop_rights(&mut t, h, rights::FD_FILESTAT_SET_SIZE, 0);
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetSize, &[h as u64, 0]),
        Errno::NOTCAPABLE
    );
    assert_eq!(std::fs::metadata(t.root.join("file")).unwrap().len(), 1);
}

#[test]
fn dir_rights_have_no_seek() {
    let mut t = setup();
    std::fs::create_dir(t.root.join("dir")).unwrap();
    let (base, inheriting) = rights_of(&mut t, ROOT_FD);
    assert_eq!((base, inheriting), (rights::DIR, rights::ALL));
    assert_eq!(base & (rights::FD_SEEK | rights::FD_TELL), 0);
    // Asked for seeking, a directory gets only directory rights.
    let asked = rights::FD_SEEK | rights::FD_TELL | rights::FD_READDIR;
    let d = open_with(&mut t, ROOT_FD, "dir", oflags::DIRECTORY, asked, 0).unwrap();
    assert_eq!(rights_of(&mut t, d), (rights::FD_READDIR, 0));
    assert_eq!(
        t.call(WasiFunc::FdSeek, &[d as u64, 0, 1, OUT as u64]),
        Errno::BADF
    );
    assert_eq!(
        t.call(WasiFunc::FdTell, &[d as u64, OUT as u64]),
        Errno::BADF
    );
    // Everything asked: the directory set; a file gets the file set.
    let d = open_with(&mut t, ROOT_FD, "dir", oflags::DIRECTORY, rights::ALL, 0);
    assert_eq!(d, Err(Errno::ISDIR), "write rights on a directory");
    let no_write =
        rights::ALL & !(rights::FD_WRITE | rights::FD_ALLOCATE) & !rights::FD_FILESTAT_SET_SIZE;
    let d = open_with(&mut t, ROOT_FD, "dir", oflags::DIRECTORY, no_write, 0).unwrap();
    assert_eq!(rights_of(&mut t, d).0, rights::DIR);
    std::fs::write(t.root.join("f"), b"").unwrap();
    let f = open_with(&mut t, ROOT_FD, "f", 0, rights::ALL, 0).unwrap();
    assert_eq!(rights_of(&mut t, f).0, rights::FILE);
}

#[test]
fn path_symlink_absolute_target_refused() {
    let mut t = setup();
    for target in ["/", "/etc/passwd", "//x"] {
        assert_eq!(symlink(&mut t, target, ROOT_FD, "abs"), Errno::PERM);
        assert!(std::fs::symlink_metadata(t.root.join("abs")).is_err());
    }
    // A relative target leading out is only text (as wasmtime allows); it
    // is refused when followed.
    let outside = t._dir.0.join("secret");
    std::fs::write(&outside, b"top secret").unwrap();
    assert_eq!(symlink(&mut t, "../secret", ROOT_FD, "out"), Errno::SUCCESS);
    assert_eq!(
        open_with(&mut t, ROOT_FD, "out", 0, rights::FD_READ, 0),
        Err(Errno::PERM)
    );
    // The check comes before the new path is even looked at.
    assert_eq!(symlink(&mut t, "/", ROOT_FD, "missing/abs"), Errno::PERM);
}

#[test]
fn each_call_needs_its_right() {
    let mut t = setup();
    std::fs::create_dir(t.root.join("d")).unwrap();
    std::fs::create_dir(t.root.join("d/sub")).unwrap();
    std::fs::write(t.root.join("d/f"), b"data").unwrap();
    std::os::unix::fs::symlink("f", t.root.join("d/l")).unwrap();
    let no_write = rights::DIR;
    // A fresh directory descriptor lacking exactly `right`.
    let dir_without = |t: &mut T, right: u64| {
        open_with(
            t,
            ROOT_FD,
            "d",
            oflags::DIRECTORY,
            no_write & !right,
            rights::ALL,
        )
        .unwrap()
    };
    let d = dir_without(&mut t, rights::PATH_OPEN);
    assert_eq!(
        open_with(&mut t, d, "f", 0, rights::FD_READ, 0),
        Err(Errno::NOTCAPABLE)
    );
    let d = dir_without(&mut t, rights::PATH_CREATE_FILE);
    assert_eq!(
        open_with(&mut t, d, "new", oflags::CREAT, rights::FD_READ, 0),
        Err(Errno::NOTCAPABLE)
    );
    assert!(!t.root.join("d/new").exists());
    let d = dir_without(&mut t, rights::PATH_REMOVE_DIRECTORY);
    assert_eq!(
        path_call_in(&mut t, WasiFunc::PathRemoveDirectory, d, "sub"),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::PATH_UNLINK_FILE);
    assert_eq!(
        path_call_in(&mut t, WasiFunc::PathUnlinkFile, d, "f"),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::PATH_SYMLINK);
    assert_eq!(symlink(&mut t, "f", d, "l2"), Errno::NOTCAPABLE);
    let d = dir_without(&mut t, rights::PATH_LINK_SOURCE);
    assert_eq!(link(&mut t, d, false, "f", ROOT_FD, "h"), Errno::NOTCAPABLE);
    let d = dir_without(&mut t, rights::PATH_LINK_TARGET);
    assert_eq!(
        link(&mut t, ROOT_FD, false, "d/f", d, "h"),
        Errno::NOTCAPABLE
    );
    assert!(!t.root.join("h").exists() && !t.root.join("d/h").exists());
    let d = dir_without(&mut t, rights::PATH_RENAME_SOURCE);
    let rename = |t: &mut T, a: u32, b: u32| {
        t.put(PATH, b"f");
        t.put(PATH + 200, b"g");
        t.call(
            WasiFunc::PathRename,
            &[a as u64, PATH as u64, 1, b as u64, PATH as u64 + 200, 1],
        )
    };
    assert_eq!(rename(&mut t, d, d), Errno::NOTCAPABLE);
    let d2 = dir_without(&mut t, rights::PATH_RENAME_TARGET);
    assert_eq!(rename(&mut t, d2, d2), Errno::NOTCAPABLE);
    assert!(t.root.join("d/f").exists());
    let d = dir_without(&mut t, rights::PATH_READLINK);
    t.put(PATH, b"l");
    assert_eq!(
        t.call(
            WasiFunc::PathReadlink,
            &[d as u64, PATH as u64, 1, BUF as u64, 16, OUT as u64]
        ),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::PATH_FILESTAT_GET);
    t.put(PATH, b"f");
    assert_eq!(
        t.call(
            WasiFunc::PathFilestatGet,
            &[d as u64, 0, PATH as u64, 1, BUF as u64]
        ),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::PATH_FILESTAT_SET_TIMES);
    t.put(PATH, b"f");
    assert_eq!(
        t.call(
            WasiFunc::PathFilestatSetTimes,
            &[d as u64, 0, PATH as u64, 1, 0, 0, 10]
        ),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::FD_READDIR);
    assert_eq!(
        t.call(
            WasiFunc::FdReaddir,
            &[d as u64, BUF as u64, 256, 0, OUT as u64]
        ),
        Errno::NOTCAPABLE
    );
    let d = dir_without(&mut t, rights::FD_FILESTAT_GET);
    assert_eq!(
        t.call(WasiFunc::FdFilestatGet, &[d as u64, BUF as u64]),
        Errno::NOTCAPABLE
    );
    // A file descriptor used as a directory stays NOTDIR.
    let f = open_with(&mut t, ROOT_FD, "d/f", 0, rights::FD_READ, 0).unwrap();
    assert_eq!(
        open_with(&mut t, f, "x", 0, rights::FD_READ, 0),
        Err(Errno::NOTDIR)
    );
    // fd_* calls on a file, one right missing each.
    let all = rights::FILE;
    let file_without =
        |t: &mut T, right: u64| open_with(t, ROOT_FD, "d/f", 0, all & !right, 0).unwrap();
    let f = file_without(&mut t, rights::FD_SYNC);
    assert_eq!(t.call(WasiFunc::FdSync, &[f as u64]), Errno::NOTCAPABLE);
    let f = file_without(&mut t, rights::FD_DATASYNC);
    assert_eq!(t.call(WasiFunc::FdDatasync, &[f as u64]), Errno::NOTCAPABLE);
    let f = file_without(&mut t, rights::FD_ADVISE);
    assert_eq!(
        t.call(WasiFunc::FdAdvise, &[f as u64, 0, 0, 0]),
        Errno::NOTCAPABLE
    );
    let f = file_without(&mut t, rights::FD_ALLOCATE);
    assert_eq!(
        t.call(WasiFunc::FdAllocate, &[f as u64, 0, 100]),
        Errno::NOTCAPABLE
    );
    let f = file_without(&mut t, rights::FD_FDSTAT_SET_FLAGS);
    assert_eq!(
        t.call(WasiFunc::FdFdstatSetFlags, &[f as u64, 1]),
        Errno::NOTCAPABLE
    );
    let f = file_without(&mut t, rights::FD_FILESTAT_GET);
    assert_eq!(
        t.call(WasiFunc::FdFilestatGet, &[f as u64, BUF as u64]),
        Errno::NOTCAPABLE
    );
    let f = file_without(&mut t, rights::FD_FILESTAT_SET_TIMES);
    assert_eq!(
        t.call(WasiFunc::FdFilestatSetTimes, &[f as u64, 0, 0, 10]),
        Errno::NOTCAPABLE
    );
    let f = file_without(&mut t, rights::FD_SEEK);
    t.iovs(&[(BUF, 4)]);
    assert_eq!(
        t.call(
            WasiFunc::FdPread,
            &[f as u64, IOVS as u64, 1, 0, OUT as u64]
        ),
        Errno::NOTCAPABLE
    );
    // poll_oneoff reports a missing POLL_FD_READWRITE in the event.
    let f = file_without(&mut t, rights::POLL_FD_READWRITE);
    let mut sub = [0u8; 48];
    sub[0..8].copy_from_slice(&7u64.to_le_bytes());
    sub[8] = 1; // fd_read
    sub[16..20].copy_from_slice(&f.to_le_bytes());
    t.put(BUF, &sub);
    assert_eq!(
        t.call(
            WasiFunc::PollOneoff,
            &[BUF as u64, BUF as u64 + 100, 1, OUT as u64]
        ),
        Errno::SUCCESS
    );
    assert_eq!(t.u32_at(OUT), 1);
    assert_eq!(t.u64_at(BUF + 100), 7);
    assert_eq!(
        u16::from_le_bytes([t.mem[BUF as usize + 108], t.mem[BUF as usize + 109]]),
        Errno::NOTCAPABLE.0
    );
    // Access modes come before rights: a read-only file refuses writes
    // with BADF, as write(2) does.
    let f = open_with(&mut t, ROOT_FD, "d/f", 0, rights::FD_READ, 0).unwrap();
    assert_eq!(write(&mut t, f, b"x"), Errno::BADF);
    assert_eq!(std::fs::read(t.root.join("d/f")).unwrap(), b"data");
}

#[test]
fn rights_survive_checkpoint_restore() {
    let mut t = setup();
    std::fs::write(t.root.join("file"), b"data").unwrap();
    std::fs::create_dir(t.root.join("d")).unwrap();
    let f = open_with(
        &mut t,
        ROOT_FD,
        "file",
        0,
        rights::FD_READ | rights::FD_WRITE | rights::FD_SEEK,
        0,
    )
    .unwrap();
    drop_rights(&mut t, f, rights::FD_WRITE, 0);
    let d = open_with(
        &mut t,
        ROOT_FD,
        "d",
        oflags::DIRECTORY,
        rights::DIR,
        rights::ALL,
    )
    .unwrap();
    drop_rights(
        &mut t,
        d,
        rights::PATH_CREATE_FILE | rights::PATH_FILESTAT_SET_SIZE,
        rights::FD_WRITE,
    );
    drop_rights(&mut t, ROOT_FD, rights::PATH_CREATE_DIRECTORY, 0);
    let before = t.ctx.save_state(RunAfter::Continues).unwrap();
    let bytes = mvvm_abi::codec::encode(&before).unwrap();
    let decoded: WasiState = mvvm_abi::codec::decode(&bytes).unwrap();
    assert_eq!(
        decoded.fds[&f].rights_base,
        rights::FD_READ | rights::FD_SEEK
    );
    let restored = WasiCtx::restore(decoded, &grants_as_saved(&before), true).unwrap();
    drop(std::mem::replace(&mut t.ctx, restored));
    // Every dropped right is still dropped...
    assert_eq!(rights_of(&mut t, f), (rights::FD_READ | rights::FD_SEEK, 0));
    assert_eq!(write(&mut t, f, b"x"), Errno::NOTCAPABLE);
    assert_eq!(
        open_with(&mut t, d, "new", oflags::CREAT, rights::FD_READ, 0),
        Err(Errno::NOTCAPABLE)
    );
    std::fs::write(t.root.join("d/g"), b"keep").unwrap();
    assert_eq!(
        open_with(&mut t, d, "g", oflags::TRUNC, 0, 0),
        Err(Errno::NOTCAPABLE)
    );
    let g = open_with(&mut t, d, "g", 0, rights::ALL, 0).unwrap();
    assert_eq!(rights_of(&mut t, g).0 & rights::FD_WRITE, 0);
    assert_eq!(
        path_call_in(&mut t, WasiFunc::PathCreateDirectory, ROOT_FD, "x"),
        Errno::NOTCAPABLE
    );
    // ... cannot be regained...
    assert_eq!(
        set_rights(&mut t, f, rights::FD_READ | rights::FD_WRITE, 0),
        Errno::NOTCAPABLE
    );
    // ... and what was kept works.
    assert_eq!(read(&mut t, f, 4), Errno::SUCCESS);
    assert_eq!(&t.mem[BUF as usize..BUF as usize + 4], b"data");
    assert_eq!(std::fs::read(t.root.join("d/g")).unwrap(), b"keep");
    assert!(!t.root.join("d/new").exists() && !t.root.join("x").exists());
}
