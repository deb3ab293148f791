//! `mvvm-aot -o`: a regular file is replaced atomically; a character
//! device or a FIFO is written to as it is and never replaced (as root, a
//! rename over `/dev/null` used to turn the device into a regular file).
//! `--symbols` keeps the functions' ELF symbols.

#[path = "checkpoint_support/require.rs"]
mod require;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WAT: &str = r#"(module (func (export "_start")))"#;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mvvm-aot-output-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("m.wat"), WAT).unwrap();
    d
}

fn aot(input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mvvm-aot"))
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--opt-level")
        .arg("0")
        .output()
        .expect("run mvvm-aot")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "mvvm-aot failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn dev_null_stays_a_character_device() {
    let d = scratch("null");
    let null = Path::new("/dev/null");
    let before = std::fs::symlink_metadata(null).unwrap();
    assert!(
        before.file_type().is_char_device(),
        "/dev/null is not a device on this machine"
    );
    ok(&aot(&d.join("m.wat"), null));
    let after = std::fs::symlink_metadata(null).unwrap();
    assert!(after.file_type().is_char_device(), "/dev/null was replaced");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.rdev(), after.rdev());
    assert_eq!(before.ino(), after.ino());
    // Nothing was left beside it.
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_fifo_gets_the_object_and_stays_a_fifo() {
    let d = scratch("fifo");
    let file = d.join("m.aot");
    ok(&aot(&d.join("m.wat"), &file));
    let expected = std::fs::read(&file).unwrap();
    let fifo = d.join("pipe");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        require::missing("a_fifo_gets_the_object_and_stays_a_fifo", "mkfifo failed");
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&aot(&d.join("m.wat"), &fifo));
    let got = reader.join().unwrap();
    assert_eq!(got, expected, "the FIFO received the object");
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_regular_file_is_replaced_whole_and_no_temporary_is_left() {
    let d = scratch("file");
    let out = d.join("m.aot");
    std::fs::write(&out, b"old contents").unwrap();
    ok(&aot(&d.join("m.wat"), &out));
    let bytes = std::fs::read(&out).unwrap();
    assert_ne!(bytes, b"old contents");
    assert!(mvvm_rt::Module::from_aot(&bytes).is_ok());
    let mut names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["m.aot", "m.wat"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// `--symbols`: the functions' ELF symbols only on request (the runtime
/// reads none of them); both objects run alike.
#[test]
fn function_symbols_only_with_the_flag() {
    let d = scratch("symbols");
    let plain = d.join("plain.aot");
    let with = d.join("with.aot");
    ok(&aot(&d.join("m.wat"), &plain));
    let o = Command::new(env!("CARGO_BIN_EXE_mvvm-aot"))
        .arg(d.join("m.wat"))
        .args(["-o"])
        .arg(&with)
        .args(["--opt-level", "0", "--symbols"])
        .output()
        .expect("run mvvm-aot");
    ok(&o);
    let has = |path: &Path, name: &[u8]| {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(name.len()).any(|w| w == name)
    };
    assert!(has(&with, b"mvvm_func_0\0"), "--symbols keeps them");
    assert!(!has(&plain, b"mvvm_func_0\0"), "left out by default");
    assert!(std::fs::metadata(&plain).unwrap().len() < std::fs::metadata(&with).unwrap().len());
    for obj in [&plain, &with] {
        let run = Command::new(env!("CARGO_BIN_EXE_mvvm-checkpoint"))
            .arg("-t")
            .arg(obj)
            .output()
            .expect("run mvvm-checkpoint");
        assert!(
            run.status.success(),
            "{}: {}",
            obj.display(),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}
