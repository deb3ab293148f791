//! A program blocked in `sock_recv` on an accepted connection is
//! checkpointed by a timer (the blocking call is interrupted and made again
//! on restore); after the restore the listener is bound again and the
//! connection, whose peer is gone, reads as reset (`CONNRESET` once; see
//! docs/sockets.md).

use mvvm_abi::Policy;
use mvvm_rt::Module;
use mvvm_rt::checkpoint::{
    CheckpointConfig, Outcome, RestoreOptions, RunOptions, SnapshotSink, SnapshotSource, Trigger,
};
use mvvm_wasi::Command;
use mvvm_wasi::{Preopen, WasiConfig};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv"
    (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "out")
  (func $emit (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 3)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (i32.store (i32.const 40) (i32.const 16))
    (i32.store (i32.const 44) (i32.const 8))
    (drop (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48))))
  (func (export "_start") (local $conn i32) (local $err i32) (local $acc i64)
    (drop (call $accept (i32.const 4) (i32.const 0) (i32.const 64)))
    (local.set $conn (i32.load (i32.const 64)))
    (i32.store (i32.const 72) (i32.const 96))
    (i32.store (i32.const 76) (i32.const 1))
    (loop $l
      (local.set $err (call $recv (local.get $conn) (i32.const 72) (i32.const 1) (i32.const 0)
        (i32.const 84) (i32.const 88)))
      (if (i32.and (i32.eqz (local.get $err)) (i32.ne (i32.load (i32.const 84)) (i32.const 0)))
        (then
          (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 10)) (i64.load8_u (i32.const 96))))
          (br $l))))
    ;; end of stream (0 bytes) or an error: report both
    (call $emit (i64.add (local.get $acc) (i64.shl (i64.extend_i32_u (local.get $err)) (i64.const 48))))
    (call $proc_exit (i32.const 0))))"#;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn blocked_recv_is_interrupted_and_the_connection_reads_reset_after_restore() {
    let opts = mvvm_aot::CompileOptions {
        policy: Policy::Loop,
        ..Default::default()
    };
    let module = Module::from_aot(&mvvm_aot::compile(WAT.as_bytes(), &opts).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("mvvm-ckpt-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_addr();
    let wasi = WasiConfig {
        args: vec!["srv".into()],
        preopens: vec![Preopen {
            host: dir.clone(),
            guest: "/w".into(),
        }],
        tcp_listeners: vec![addr],
        ..Default::default()
    };
    let client = std::thread::spawn(move || {
        let mut c = loop {
            match TcpStream::connect(addr) {
                Ok(c) => break c,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        c.write_all(&[1, 2, 3]).unwrap();
        // Keep the connection open while the guest waits in sock_recv.
        std::thread::sleep(Duration::from_millis(800));
    });
    let snap = dir.join("snap");
    let cfg = |trigger, sink| CheckpointConfig {
        trigger,
        sink,
        log_probes: false,
        signals: false,
    };
    let out = Command::new(&module)
        .config(wasi)
        .max_wasm_stack(1 << 20)
        .run(
            cfg(
                Trigger::After(Duration::from_millis(300)),
                SnapshotSink::Stream(Box::new(std::fs::File::create(&snap).unwrap())),
            ),
            RunOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Checkpointed { .. }), "{out:?}");
    client.join().unwrap();
    let out = Command::new(&module)
        .max_wasm_stack(1 << 20)
        .grants(mvvm_wasi::Grants::none().preopen(&dir, "/w").listener(addr))
        .restore(
            SnapshotSource::File(snap.clone()),
            cfg(Trigger::None, SnapshotSink::File(dir.join("next"))),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(matches!(out, Outcome::Exited { code: 0, .. }), "{out:?}");
    // 1, 2, 3 were received before the checkpoint; then the reset
    // (CONNRESET, 15, in the top bits).
    assert_eq!(
        std::fs::read(dir.join("out")).unwrap(),
        (123u64 + (15 << 48)).to_le_bytes()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
