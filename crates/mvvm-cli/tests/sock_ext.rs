//! WAMR's socket extension (`sock_open`, `sock_bind`, `sock_connect`, ...)
//! under the tools, with the C programs of `test/sock` (built against our
//! `wasi_socket_ext.h`):
//!
//! - a server and a client, both guests, exchange bytes on loopback when
//!   `--allow-bind` and `--allow-connect` grant it, and a UDP round trip
//!   goes through `sock_send_to`/`sock_recv_from`;
//! - without a grant, `sock_bind` and `sock_connect` answer EACCES (2),
//!   the program sees it, and nothing was bound or connected;
//! - a server checkpointed while listening (bound by the guest) is refused
//!   on restore without a bind grant, and with one is bound again and
//!   serves a client;
//! - a client checkpointed while connected, restored without an
//!   `--allow-connect` grant for its peer, sees the connection reset (TCP
//!   repair needs the grant), and the log says why.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{CHECKPOINTED, FAILURE, Policy, Ran, Scratch, Tool, aot};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn wasm(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test/sock")
        .join(format!("{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

fn program(name: &str) -> Result<PathBuf> {
    aot(&wasm(name), Policy::Loop, 2)
}

/// A free loopback port (bound, then released for the guest).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn stdout(r: &Ran) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn a_guest_server_and_a_guest_client_talk_when_granted() -> Result<()> {
    let server = program("sock_server")?;
    let client = program("sock_client")?;
    let port = free_port()?.to_string();
    let s = Scratch::new("sock-ext-talk");
    let mut srv = Tool::checkpoint(&server)
        .args(["--allow-bind", "127.0.0.1:*"])
        .current_dir(&s.0)
        .args(["--", &port])
        .spawn()?;
    srv.wait_for_stdout("listening on")?;
    let msg = "hello through sock_connect";
    let cl = Tool::checkpoint(&client)
        // The TCP server by its exact address; the UDP round trip needs
        // any loopback port both ways.
        .args(["--allow-connect", &format!("127.0.0.1:{port}")])
        .args([
            "--allow-connect",
            "127.0.0.1:*",
            "--allow-bind",
            "127.0.0.1:*",
        ])
        .current_dir(&s.0)
        .args(["--", "127.0.0.1", &port, msg, "udp"])
        .run()?;
    let sv = srv.wait()?;
    cl.expect_code(0, "client")?;
    sv.expect_code(0, "server")?;
    let out = stdout(&cl);
    for line in [
        "resolved 1, type stream\n".to_owned(),
        "local 127.0.0.1, port set\n".to_owned(),
        "remote port matches\n".to_owned(),
        "nodelay 1\n".to_owned(),
        "recv timeout 2500000 us\n".to_owned(),
        format!("reply: echo:{msg}\n"),
        "udp: dgram from the sender's port\n".to_owned(),
    ] {
        ensure!(out.contains(&line), "client stdout lacks {line:?}:\n{out}");
    }
    let out = stdout(&sv);
    ensure!(
        out == format!(
            "listening on {port}\npeer 127.0.0.1\nserved {} bytes\n",
            msg.len()
        ),
        "server stdout:\n{out}"
    );
    Ok(())
}

#[test]
fn without_a_grant_connect_and_bind_answer_eacces_and_open_nothing() -> Result<()> {
    let server = program("sock_server")?;
    let client = program("sock_client")?;
    let s = Scratch::new("sock-ext-denied");

    // A host listener the client would reach if the call went through.
    let host = TcpListener::bind("127.0.0.1:0")?;
    host.set_nonblocking(true)?;
    let port = host.local_addr()?.port().to_string();
    // A grant for another port does not cover this one.
    let other = format!("127.0.0.1:{}", free_port()?);
    for extra in [vec![], vec!["--allow-connect".to_owned(), other]] {
        let cl = Tool::checkpoint(&client)
            .args(&extra)
            .current_dir(&s.0)
            .args(["--", "127.0.0.1", &port, "x"])
            .run()?;
        cl.expect_code(20, "client without a connect grant")?;
        ensure!(
            stdout(&cl).ends_with("connect errno 2\n"),
            "client stdout:\n{}",
            stdout(&cl)
        );
        ensure!(
            cl.stderr.contains("sock_connect refused"),
            "stderr: {}",
            cl.stderr
        );
        match host.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => anyhow::bail!("the host listener saw a connection: {other:?}"),
        }
    }

    let port = free_port()?;
    let sv = Tool::checkpoint(&server)
        .current_dir(&s.0)
        .args(["--", &port.to_string()])
        .run()?;
    sv.expect_code(10, "server without a bind grant")?;
    ensure!(
        stdout(&sv) == "bind errno 2\n",
        "server stdout:\n{}",
        stdout(&sv)
    );
    // Nothing was bound: the port is still free.
    TcpListener::bind(("127.0.0.1", port)).context("the refused bind kept the port")?;
    Ok(())
}

/// Connects to `port` (retrying while nothing listens yet), sends `msg`,
/// shuts down its side and reads the whole answer.
fn host_client(port: u16, msg: &[u8]) -> Result<Vec<u8>> {
    let start = Instant::now();
    let mut c = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                ensure!(
                    start.elapsed() < Duration::from_secs(30),
                    "cannot connect to port {port}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    c.write_all(msg)?;
    c.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_listener_bound_by_the_guest_is_bound_again_only_if_granted() -> Result<()> {
    let server = program("sock_server")?;
    let port = free_port()?;
    let s = Scratch::new("sock-ext-listener");
    let snap = s.join("snap.bin");
    let mut running = Tool::checkpoint(&server)
        .args(["--allow-bind", "127.0.0.1:*"])
        .snapshot(&snap)
        .current_dir(&s.0)
        .args(["--", &port.to_string()])
        .spawn()?;
    running.wait_for_stdout("listening on")?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(!running.has_ended()?, "the server did not wait in accept");
    running.signal("USR1")?;
    let a = running.wait()?;
    a.expect_code(CHECKPOINTED, "checkpoint while listening")?;
    ensure!(snap.is_file(), "no snapshot: {}", a.stderr);

    // No bind grant: refused before anything runs, naming the flag.
    let refused = Tool::restore(&server)
        .snapshot(&snap)
        .current_dir(&s.0)
        .run()?;
    refused.expect_code(FAILURE, "restore without a bind grant")?;
    ensure!(
        refused
            .stderr
            .contains(&format!("--allow-bind 127.0.0.1:{port}")),
        "stderr: {}",
        refused.stderr
    );
    ensure!(
        refused.stdout.is_empty(),
        "the guest ran: {:?}",
        refused.stdout
    );

    // Granted: bound again at its port, a client is served.
    let restored = Tool::restore(&server)
        .snapshot(&snap)
        .args(["--allow-bind", &format!("127.0.0.1:{port}")])
        .current_dir(&s.0)
        .spawn()?;
    let msg = b"after the restore";
    let answer = host_client(port, msg);
    let b = restored.wait()?;
    let answer = answer.with_context(|| format!("restore stderr:\n{}", b.stderr))?;
    b.expect_code(0, "restored server")?;
    ensure!(answer == b"echo:after the restore", "answer {answer:?}");
    ensure!(
        stdout(&b) == format!("peer 127.0.0.1\nserved {} bytes\n", msg.len()),
        "restored stdout:\n{}",
        stdout(&b)
    );
    Ok(())
}

#[test]
fn a_connection_made_by_the_guest_is_reset_after_a_restore() -> Result<()> {
    let client = program("sock_client")?;
    // A host server that accepts and never answers: the client waits in
    // recv.
    let host = TcpListener::bind("127.0.0.1:0")?;
    let port = host.local_addr()?.port().to_string();
    let keep = std::thread::spawn(move || host.accept().map(|(c, _)| c));
    let s = Scratch::new("sock-ext-reset");
    let snap = s.join("snap.bin");
    let grant = format!("127.0.0.1:{port}");
    let mut running = Tool::checkpoint(&client)
        .args(["--allow-connect", &grant])
        .snapshot(&snap)
        .current_dir(&s.0)
        .args(["--", "127.0.0.1", &port, "waiting for a reply"])
        .spawn()?;
    running.wait_for_stdout("recv timeout")?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(!running.has_ended()?, "the client did not wait in recv");
    running.signal("USR1")?;
    let a = running.wait()?;
    a.expect_code(CHECKPOINTED, "checkpoint while connected")?;
    let _conn = keep.join().expect("host accept thread")?;

    // The restore needs no grant for a connection (without one it is not
    // made again).
    let b = Tool::restore(&client)
        .snapshot(&snap)
        .current_dir(&s.0)
        .run()?;
    b.expect_code(23, "restored client")?;
    ensure!(stdout(&b) == "recv failed\n", "stdout:\n{}", stdout(&b));
    ensure!(
        b.stderr.contains("recv: Connection reset by peer"),
        "stderr: {}",
        b.stderr
    );
    // Not repaired (TCP repair, docs/migration.md): this restore grants
    // no --allow-connect for the peer, and the log says so.
    ensure!(
        b.stderr.contains("TCP connection not repaired on restore")
            && (b
                .stderr
                .contains("no --allow-connect grant covers the peer")
                || b.stderr.contains("no repair state")),
        "the log does not say why: {}",
        b.stderr
    );
    Ok(())
}
