//! Measures the snapshot format: crc32 and zero-scan speed, writing and
//! reading a 1 GiB half-full memory, and the file size of a 1 MiB memory
//! with scattered non-zero bytes under the chosen layout (64 KiB runs) and
//! the alternative (4 KiB chunks, file offset congruent to guest offset
//! modulo 64 KiB).
//!
//! ```text
//! cargo run --release -p mvvm-snapshot --example throughput [DIR] [MiB]
//! ```
//!
//! DIR (default: the system temp dir) receives a temporary snapshot file;
//! MiB (default 1024) is the memory size.

use anyhow::{Context, Result};
use mvvm_snapshot::{
    OpenOptions, SnapshotInfo, SnapshotParts, WasmValue, open_file, read, write, write_file_atomic,
};
use std::io::BufReader;
use std::time::Instant;

const PAGE: usize = 65536;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn parts(memory: &[u8]) -> SnapshotParts<'_> {
    SnapshotParts {
        info: SnapshotInfo {
            producer: "throughput example".into(),
            wasm_sha256: [0; 32],
            policy: "counter-loop:16".into(),
            source_arch: std::env::consts::ARCH.into(),
            created_unix_nanos: 0,
            note: String::new(),
        },
        frames: vec![],
        globals: vec![WasmValue::I32(0); 4],
        tables: vec![],
        exceptions: vec![],
        dropped_data: vec![],
        dropped_elems: vec![],
        wasi: vec![],
        monotonic_offset_nanos: 0,
        threads: vec![],
        last_thread_id: 0,
        memory,
        max_pages: None,
    }
}

/// MB/s (10^6 bytes per second) for `bytes` in `secs`.
fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Times `f`, prints a line, returns its result.
fn timed<T>(label: &str, bytes: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let v = f()?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{label:<48} {:>8.1} ms {:>9.0} MB/s (of {} MiB)",
        s * 1e3,
        mbps(bytes, s),
        bytes >> 20
    );
    Ok(v)
}

/// A memory of `mib` MiB where about half the pages are non-zero, in runs
/// of 1 to 64 pages separated by gaps of 1 to 64 pages; non-zero pages hold
/// pseudo-random data. Every page is touched, so zero pages are real pages
/// (like a heap that was written and freed), not the kernel's shared zero
/// page, which would make the zero scan look faster than it is.
fn half_full_memory(mib: usize) -> Vec<u8> {
    let mut mem = vec![0u8; mib << 20];
    let zero = std::hint::black_box(0u8);
    for page in mem.chunks_mut(PAGE) {
        page.fill(zero);
    }
    let pages = mem.len() / PAGE;
    let mut rng = Rng(42);
    let mut p = 0;
    while p < pages {
        let run = 1 + rng.below(64) as usize;
        for q in p..(p + run).min(pages) {
            for w in mem[q * PAGE..(q + 1) * PAGE].chunks_exact_mut(8) {
                w.copy_from_slice(&rng.next().to_le_bytes());
            }
        }
        p += run + 1 + rng.below(64) as usize;
    }
    mem
}

/// Data-region size of the alternative layout: 4 KiB chunks, runs of
/// non-zero chunks, each run's file offset congruent to its guest offset
/// modulo 64 KiB (minimal padding before each run). Returns (bytes, runs).
fn congruent_4k_data_size(mem: &[u8]) -> (u64, u64) {
    let chunk = 4096;
    let mut size = 0u64;
    let mut runs = 0u64;
    let mut prev_end = 0u64; // guest end of the previous run (0: data start)
    let mut in_run = false;
    for (i, c) in mem.chunks(chunk).enumerate() {
        let nonzero = c.iter().any(|&b| b != 0);
        let off = (i * chunk) as u64;
        if nonzero && !in_run {
            runs += 1;
            size += (off - prev_end) % PAGE as u64; // padding
        }
        if nonzero {
            size += chunk as u64;
            prev_end = off + chunk as u64;
        }
        in_run = nonzero;
    }
    (size, runs)
}

fn scattered_sizes() -> Result<()> {
    println!("\n1 MiB memory, N non-zero bytes at random places (mean of 20 seeds):");
    println!(
        "{:>5} {:>22} {:>30} {:>18}",
        "N", "64 KiB runs (file)", "4 KiB congruent (est. file)", "4 KiB data only"
    );
    for n in [1u64, 4, 16, 64, 256, 4096] {
        let (mut ours, mut alt, mut dense) = (0u64, 0u64, 0u64);
        let (mut our_runs, mut alt_runs) = (0u64, 0u64);
        let seeds = 20;
        for seed in 0..seeds {
            let mut mem = vec![0u8; 1 << 20];
            let mut rng = Rng(0x1234_5678 + seed);
            for _ in 0..n {
                let i = rng.below(mem.len() as u64) as usize;
                mem[i] = 1;
            }
            let mut out = Vec::new();
            let stats = write(&mut out, &parts(&mem))?;
            ours += stats.total_bytes;
            our_runs += stats.runs as u64;
            let (data, runs) = congruent_4k_data_size(&mem);
            // Same metadata, padding to 64 KiB, run entries are 20 bytes.
            let meta = stats.metadata_bytes - 20 * stats.runs as u64 + 20 * runs;
            let head = if runs == 0 {
                meta
            } else {
                meta.div_ceil(PAGE as u64) * PAGE as u64
            };
            alt += head + data;
            alt_runs += runs;
            dense += mem
                .chunks(4096)
                .filter(|c| c.iter().any(|&b| b != 0))
                .count() as u64
                * 4096;
        }
        println!(
            "{n:>5} {:>12} B ({:>4.1} runs) {:>19} B ({:>5.1} runs) {:>16} B",
            ours / seeds,
            our_runs as f64 / seeds as f64,
            alt / seeds,
            alt_runs as f64 / seeds as f64,
            dense / seeds
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mib: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);

    let mem = half_full_memory(mib);
    let len = mem.len() as u64;
    let nonzero = mem
        .chunks(PAGE)
        .filter(|c| c.iter().any(|&b| b != 0))
        .count() as u64
        * PAGE as u64;
    println!(
        "memory: {mib} MiB, {} MiB non-zero ({:.0}%)",
        nonzero >> 20,
        100.0 * nonzero as f64 / len as f64
    );

    timed("crc32fast over the whole memory", len, || {
        Ok(crc32fast::hash(&mem))
    })?;
    let mut zero = vec![0u8; mem.len()];
    zero.fill(std::hint::black_box(0));
    timed(
        "write, all-zero memory, to io::sink (zero scan)",
        len,
        || Ok(write(std::io::sink(), &parts(&zero))?),
    )?;
    drop(zero);
    let stats = timed("write to io::sink (planning pass: scan + crc)", len, || {
        Ok(write(std::io::sink(), &parts(&mem))?)
    })?;
    println!(
        "  -> {} runs, {} MiB data, {} bytes metadata, {} bytes padding, file {} bytes",
        stats.runs,
        stats.memory_data_bytes >> 20,
        stats.metadata_bytes,
        stats.padding_bytes,
        stats.total_bytes
    );
    timed("write to /dev/null", len, || {
        let f = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        Ok(write(f, &parts(&mem))?)
    })?;
    let path = dir.join("mvvm-throughput.snap");
    timed("write to a file (page cache, no fsync)", len, || {
        Ok(write(std::fs::File::create(&path)?, &parts(&mem))?)
    })?;
    timed("write_file_atomic (fsync + rename)", len, || {
        Ok(write_file_atomic(&path, &parts(&mem))?)
    })?;
    let (mut rx, tx) = std::io::pipe()?;
    timed("write through a pipe to a reader thread", len, || {
        let reader = std::thread::spawn(move || read(&mut rx));
        write(tx, &parts(&mem))?;
        let snap = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        Ok(snap.memory.runs().len())
    })?;

    let snap = timed("read (stream, from the file, all checks)", len, || {
        Ok(read(BufReader::new(std::fs::File::open(&path)?))?)
    })?;
    drop(snap);
    let snap = timed("open_file (verify_memory = true)", len, || {
        Ok(open_file(&path)?)
    })?;
    let _ = timed("open_file (verify_memory = false)", len, || {
        Ok(OpenOptions::new().verify_memory(false).open(&path)?)
    })?;
    let mut dest = vec![0u8; mem.len()];
    timed("copy_into (pread of every run)", len, || {
        Ok(snap.memory.copy_into(&mut dest)?)
    })?;
    anyhow::ensure!(dest == mem, "memory read back differs");
    std::fs::remove_file(&path).context("removing the snapshot")?;

    scattered_sizes()
}
