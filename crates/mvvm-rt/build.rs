//! Builds the small C part of the runtime: `setjmp`/`longjmp` based entry
//! into wasm and the trapping builtin shims (Rust cannot call `setjmp`
//! itself, and the shims need `__builtin_return_address`).

fn main() {
    println!("cargo:rerun-if-changed=src/native/entry.c");
    cc::Build::new()
        .file("src/native/entry.c")
        .flag_if_supported("-fno-omit-frame-pointer")
        .warnings(true)
        .compile("mvvm_rt_native");
}
