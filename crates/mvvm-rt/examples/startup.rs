//! Start-up of an `.aot` object without WASI: load (mapped with `--map`,
//! else read into memory first, as `std::fs::read` + `Module::from_aot`),
//! instantiate, call `_start` if exported. Prints the milliseconds from the
//! process start to the call. Used for docs/startup.md:
//!
//! ```sh
//! cargo run --release -p mvvm-rt --example startup -- [--map] big.aot
//! ```
//!
//! With `--tables`, it then times the first lookup of the checkpoint
//! tables of the last function (what a restore of one frame decodes) and
//! of every function (`tables_one_ms`, `tables_all_ms`).

use mvvm_rt::{Instance, Module, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut map = false;
    let mut tables = false;
    let mut path = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--map" => map = true,
            "--tables" => tables = true,
            _ => path = Some(std::path::PathBuf::from(a)),
        }
    }
    let path = path.ok_or("usage: startup [--map] [--tables] OBJECT.aot")?;
    let module = if map {
        Module::from_aot_file(&path)?
    } else {
        Module::from_aot(&std::fs::read(&path)?)?
    };
    let mut store = Store::new();
    let instance = Instance::new(&mut store, &module, &[])?;
    let start = mvvm_rt::loader::process_start().map(|t| t.elapsed().as_secs_f64() * 1e3);
    if module.meta().exports.iter().any(|e| e.name == "_start") {
        instance.invoke(&mut store, "_start", &[])?;
    }
    println!("startup_ms {:.3}", start.unwrap_or(f64::NAN));
    if tables {
        let meta = module.meta();
        let last = meta.funcs.len().saturating_sub(1) as u32;
        let t = std::time::Instant::now();
        let one = meta.func_tables(last)?.stable_points.len();
        let one_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let all = meta.all_func_tables()?.len();
        let all_ms = t.elapsed().as_secs_f64() * 1e3;
        println!("tables_one_ms {one_ms:.3} ({one} stable points)");
        println!("tables_all_ms {all_ms:.3} ({all} functions)");
    }
    Ok(())
}
