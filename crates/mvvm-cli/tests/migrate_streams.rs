//! Migration over streams that cannot seek: the snapshot goes from
//! `mvvm-checkpoint --snapshot /dev/fd/N` (or a FIFO, or bash's `>(...)`)
//! into `mvvm-restore --snapshot /dev/stdin` (or the FIFO), wired with
//! ordinary shell tools. Every case checks that the guest's output of the
//! two parts, concatenated, equals an uninterrupted run, and that the
//! snapshot stream never carries guest output.

mod checkpoint_support;

use anyhow::{Context, Result, ensure};
use checkpoint_support::{
    CHECKPOINTED, FAILURE, Guest, Policy, Scratch, TIMEOUT, Tool, aot, baseline,
};
use std::path::Path;
use std::process::{Command, Stdio};

/// What a shell pipeline left behind.
struct Shell {
    stderr: String,
}

/// Runs `script` with bash in `dir`, the tools and `AOT` in its
/// environment (`$CK`, `$RS`, `$AOT`), killed after the harness timeout.
fn shell(dir: &Path, aot: &Path, script: &str) -> Result<Shell> {
    let out = Command::new("timeout")
        .arg(TIMEOUT.as_secs().to_string())
        .arg("bash")
        .arg("-c")
        .arg(format!("set -u\n{script}"))
        .current_dir(dir)
        .env("CK", env!("CARGO_BIN_EXE_mvvm-checkpoint"))
        .env("RS", env!("CARGO_BIN_EXE_mvvm-restore"))
        .env("AOT", aot)
        .env_remove("MVVM_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run bash")?;
    ensure!(
        out.status.success(),
        "pipeline failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Shell {
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(name)).with_context(|| format!("no {name}"))
}

fn read_str(dir: &Path, name: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(dir, name)?).trim().to_owned())
}

/// The two parts' stdout (files `a.out`, `b.out`) make the whole run.
fn expect_whole(dir: &Path, base: &[u8]) -> Result<()> {
    let mut out = read(dir, "a.out")?;
    out.extend(read(dir, "b.out")?);
    ensure!(
        out == base,
        "output differs:\n{}\n--- wanted:\n{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(base)
    );
    Ok(())
}

/// `mvvm-checkpoint --snapshot /dev/fd/3 3>&1 1>a.out | mvvm-restore
/// --snapshot /dev/stdin`: the checkpoint's own stdout goes to a file, the
/// snapshot into the pipe, and the restore reads it from its stdin.
#[test]
fn pipe_from_dev_fd_to_dev_stdin() -> Result<()> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("pipe");
    let c = base.probes / 2;
    shell(
        &s.0,
        &aot,
        &format!(
            r#""$CK" -t "$AOT" -c {c} --json a.json --snapshot /dev/fd/3 3>&1 1>a.out 2>a.err \
               | "$RS" -t "$AOT" --snapshot /dev/stdin --json b.json >b.out 2>b.err
               echo "${{PIPESTATUS[@]}}" >codes"#
        ),
    )?;
    let codes = read_str(&s.0, "codes")?;
    ensure!(
        codes == format!("{CHECKPOINTED} {}", base.code),
        "exit codes {codes}; stderr:\n{}\n{}",
        read_str(&s.0, "a.err")?,
        read_str(&s.0, "b.err")?
    );
    expect_whole(&s.0, &base.stdout)?;
    let b = read_str(&s.0, "b.json")?;
    ensure!(
        b.contains("\"downtime_ms\":") && !b.contains("\"downtime_ms\":null"),
        "{b}"
    );
    // The restored run's next snapshot would go next to the target, never
    // over /dev/stdin: nothing to check beyond the clean exit above.
    Ok(())
}

/// bash's `>(cmd)`: `--snapshot >(mvvm-restore ... --snapshot /dev/stdin)`.
#[test]
fn process_substitution() -> Result<()> {
    let aot = aot("recursion", Policy::Function, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("procsub");
    let c = base.probes / 3;
    shell(
        &s.0,
        &aot,
        &format!(
            r#""$CK" -t "$AOT" -c {c} --snapshot >("$RS" -t "$AOT" --snapshot /dev/stdin >b.out 2>b.err; echo $? >b.code) >a.out 2>a.err
               echo $? >a.code
               wait $!"#
        ),
    )?;
    ensure!(
        read_str(&s.0, "a.code")? == CHECKPOINTED.to_string(),
        "checkpoint: {}",
        read_str(&s.0, "a.err")?
    );
    ensure!(
        read_str(&s.0, "b.code")? == base.code.to_string(),
        "restore: {}",
        read_str(&s.0, "b.err")?
    );
    expect_whole(&s.0, &base.stdout)
}

/// A FIFO made with `mkfifo`: the restore opens it first and waits; the
/// checkpoint opens it when the snapshot is written.
#[test]
fn fifo() -> Result<()> {
    let aot = aot("memgrow", Policy::CounterLoop(4), 0)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("fifo");
    let c = base.probes * 2 / 3;
    shell(
        &s.0,
        &aot,
        &format!(
            r#"mkfifo snap.fifo
               "$RS" -t "$AOT" --snapshot snap.fifo >b.out 2>b.err & r=$!
               "$CK" -t "$AOT" -c {c} --snapshot snap.fifo >a.out 2>a.err; echo $? >a.code
               wait $r; echo $? >b.code"#
        ),
    )?;
    ensure!(
        read_str(&s.0, "a.code")? == CHECKPOINTED.to_string(),
        "checkpoint: {}",
        read_str(&s.0, "a.err")?
    );
    ensure!(
        read_str(&s.0, "b.code")? == base.code.to_string(),
        "restore: {}",
        read_str(&s.0, "b.err")?
    );
    expect_whole(&s.0, &base.stdout)
}

/// A run that ends without a checkpoint releases the restore waiting on
/// the FIFO: it refuses (125), resumes nothing, and says why.
#[test]
fn fifo_without_a_checkpoint() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("fifo-none");
    shell(
        &s.0,
        &aot,
        r#"mkfifo snap.fifo
           "$RS" -t "$AOT" --snapshot snap.fifo >b.out 2>b.err & r=$!
           sleep 0.2
           "$CK" -t "$AOT" --snapshot snap.fifo >a.out 2>a.err; echo $? >a.code
           wait $r; echo $? >b.code"#,
    )?;
    ensure!(read_str(&s.0, "a.code")? == base.code.to_string());
    ensure!(read(&s.0, "a.out")? == base.stdout);
    let err = read_str(&s.0, "b.err")?;
    ensure!(read_str(&s.0, "b.code")? == FAILURE.to_string(), "{err}");
    ensure!(read(&s.0, "b.out")?.is_empty(), "the restore ran something");
    ensure!(err.contains("nothing was resumed"), "{err}");
    Ok(())
}

/// The guest's stdout is never mixed into the snapshot: `--snapshot
/// /dev/stdout` and `--snapshot -` are refused before the program runs,
/// and so is `/dev/fd/3` when 3 is the same pipe as stdout.
#[test]
fn snapshot_on_the_guests_stdout_is_refused() -> Result<()> {
    let aot = aot("compute", Policy::Loop, 3)?;
    for snap in ["/dev/stdout", "-", "/dev/stderr"] {
        let r = Tool::checkpoint(&aot)
            .count(5)
            .snapshot(Path::new(snap))
            .run()?;
        r.expect_code(FAILURE, snap)?;
        ensure!(r.stdout.is_empty(), "{snap}: the guest ran");
        ensure!(r.stderr.contains("mixed into"), "{snap}: {}", r.stderr);
    }
    let s = Scratch::new("mixed");
    let sh = shell(
        &s.0,
        &aot,
        r#""$CK" -t "$AOT" -c 5 --snapshot /dev/fd/3 3>&1 | cat >a.out; echo "${PIPESTATUS[0]}" >a.code"#,
    )?;
    ensure!(
        read_str(&s.0, "a.code")? == FAILURE.to_string(),
        "{}",
        sh.stderr
    );
    ensure!(sh.stderr.contains("mixed into"), "{}", sh.stderr);
    ensure!(read(&s.0, "a.out")?.is_empty());
    Ok(())
}

/// A truncated snapshot on a pipe: the restore refuses with 125 and runs
/// nothing.
#[test]
fn truncated_stream_is_refused() -> Result<()> {
    let aot = aot("memgrow", Policy::Loop, 3)?;
    let base = baseline(&aot, &Guest::default())?;
    let s = Scratch::new("trunc");
    let snap = s.join("whole.bin");
    let a = Tool::checkpoint(&aot)
        .count(base.probes / 2)
        .snapshot(&snap)
        .run()?;
    a.expect_code(CHECKPOINTED, "checkpoint to a file")?;
    let len = std::fs::metadata(&snap)?.len();
    shell(
        &s.0,
        &aot,
        &format!(
            r#"head -c {} whole.bin | "$RS" -t "$AOT" --snapshot /dev/stdin >b.out 2>b.err; echo $? >b.code"#,
            len - 1000
        ),
    )?;
    let err = read_str(&s.0, "b.err")?;
    ensure!(read_str(&s.0, "b.code")? == FAILURE.to_string(), "{err}");
    ensure!(read(&s.0, "b.out")?.is_empty(), "the restore ran something");
    ensure!(err.contains("nothing was resumed"), "{err}");
    // The whole file through the same pipe resumes.
    shell(
        &s.0,
        &aot,
        r#"cat whole.bin | "$RS" -t "$AOT" --snapshot - >c.out 2>c.err; echo $? >c.code"#,
    )?;
    ensure!(
        read_str(&s.0, "c.code")? == base.code.to_string(),
        "{}",
        read_str(&s.0, "c.err")?
    );
    let mut out = a.stdout.clone();
    out.extend(read(&s.0, "c.out")?);
    ensure!(out == base.stdout, "output differs");
    Ok(())
}
