//! `write_file_atomic` through the public API: replacing, and failures
//! that must leave the previous snapshot and no temporary file behind.
//! (Failures injected in the middle of the write are tested inside the
//! crate, in `src/internal_tests.rs`.)

mod common;

use common::{memory, parts, temp_dir};
use mvvm_snapshot::{SnapshotError, SnapshotParts, open_file, write_file_atomic};

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn replaces_the_previous_snapshot() {
    let dir = temp_dir("atomic-replace");
    let path = dir.join("app.snap");
    let mem1 = memory(2, |p| p == 0);
    let mem2 = memory(3, |p| p == 2);
    write_file_atomic(&path, &parts(&mem1)).unwrap();
    write_file_atomic(&path, &parts(&mem2)).unwrap();
    assert_eq!(open_file(&path).unwrap().memory_bytes().unwrap(), mem2);
    assert_eq!(entries(&dir), vec!["app.snap".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_rename_keeps_nothing_behind() {
    let dir = temp_dir("atomic-rename");
    // A non-empty directory where the snapshot should go: rename fails.
    let path = dir.join("target");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), b"x").unwrap();
    let mem = memory(2, |_| true);
    let err = write_file_atomic(&path, &parts(&mem)).unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    assert!(err.to_string().contains("renaming"), "{err}");
    assert_eq!(entries(&dir), vec!["target".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO (like a device) at the destination is never replaced by the
/// final rename: as root, a snapshot file renamed onto /dev/null would
/// replace the device.
#[test]
fn a_fifo_is_never_replaced() {
    let dir = temp_dir("atomic-fifo");
    let path = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    if !made.map(|s| s.success()).unwrap_or(false) {
        panic!("mkfifo failed: cannot set up the test");
    }
    let mem = memory(1, |_| true);
    let err = write_file_atomic(&path, &parts(&mem)).unwrap_err();
    assert!(matches!(err, SnapshotError::InvalidInput { .. }), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(entries(&dir), vec!["pipe".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_input_touches_nothing() {
    let dir = temp_dir("atomic-invalid");
    let path = dir.join("app.snap");
    let mem = memory(1, |_| true);
    write_file_atomic(&path, &parts(&mem)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let odd = vec![0u8; 100];
    let p = SnapshotParts {
        memory: &odd,
        ..parts(&mem)
    };
    assert!(write_file_atomic(&path, &p).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(entries(&dir), vec!["app.snap".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_directory_is_an_io_error() {
    let dir = temp_dir("atomic-missing");
    let path = dir.join("no/such/dir/app.snap");
    let err = write_file_atomic(&path, &parts(&[])).unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
