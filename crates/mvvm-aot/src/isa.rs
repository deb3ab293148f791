//! Target selection and Cranelift flags.
//!
//! The flags chosen here are part of the code generation contract with the
//! runtime (see `mvvm_abi`): no PIC (the runtime applies relocations
//! itself), frame pointers kept (the runtime and debuggers walk frames),
//! no probestack (the stack limit check in each prologue replaces it), no
//! unwind info (traps unwind through the runtime, not through DWARF), and
//! multi-value returns lowered with an implicit return area so any wasm
//! result arity works with the default calling convention.

use crate::CompileError;
use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use mvvm_abi::TargetArch;
use target_lexicon::Triple;

/// A configured Cranelift ISA and the CPU features its code relies on.
pub(crate) struct Target {
    /// The ISA every function is compiled for.
    pub isa: OwnedTargetIsa,
    /// Names of the ISA feature flags that are enabled (`has_*`), recorded
    /// in the metadata so the runtime can refuse a CPU that lacks one.
    pub cpu_features: Vec<String>,
}

/// Cranelift's `opt_level` for MVVM's 0..=3 scale.
///
/// Cranelift has only three levels. 0 turns the optimiser off (fast
/// compiles, debuggable code); 1 and 2 use `speed`; 3 uses
/// `speed_and_size`, which today optimises like `speed` and additionally
/// prefers smaller sequences where Cranelift knows any.
pub(crate) fn cranelift_opt_level(level: u8) -> &'static str {
    match level {
        0 => "none",
        1 | 2 => "speed",
        _ => "speed_and_size",
    }
}

/// The triple used for each supported architecture (ELF, System V ABI).
fn triple(arch: TargetArch) -> Result<Triple, CompileError> {
    let text = match arch {
        TargetArch::X86_64 => "x86_64-unknown-linux-gnu",
        TargetArch::Aarch64 => "aarch64-unknown-linux-gnu",
    };
    // target-lexicon's ParseError is no `std::error::Error`: its message
    // goes into ours (a literal triple; this cannot fail in practice).
    text.parse::<Triple>().map_err(|e| CompileError::Codegen {
        func: 0,
        message: format!("bad target triple {text}: {e}"),
    })
}

fn setting_error(name: &str, e: settings::SetError) -> CompileError {
    CompileError::Target {
        what: format!("cannot set Cranelift flag {name}"),
        source: Box::new(e),
    }
}

/// Builds the ISA for `arch` at `opt_level` (with Cranelift's unwind
/// information when `unwind_info`).
///
/// When `arch` is the host's and `portable` is false, the host's CPU
/// features are detected and used. Otherwise the architecture's baseline
/// is used, except that
/// x86-64 cross builds enable SSE3/SSSE3/SSE4.1/SSE4.2 (x86-64-v2, every
/// x86-64 CPU since 2009): without SSE4.1 Cranelift lowers float rounding
/// (`ceil`, `floor`, `trunc`, `nearest`) to libcalls, which would leave
/// undefined symbols in the object. `fused` (the module uses relaxed
/// SIMD's fused multiply-add) adds AVX and FMA to an x86-64 baseline:
/// unfused code would compute other values than aarch64's, and without the
/// features Cranelift calls a libcall the object cannot link (see
/// `docs/simd.md`). The object then records both, and the loader refuses
/// it on a CPU without them.
pub(crate) fn build(
    arch: TargetArch,
    opt_level: u8,
    portable: bool,
    fused: bool,
    unwind_info: bool,
) -> Result<Target, CompileError> {
    let mut flags = settings::builder();
    let shared: [(&str, &str); 7] = [
        ("opt_level", cranelift_opt_level(opt_level)),
        ("is_pic", "false"),
        (
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        ),
        ("enable_probestack", "false"),
        ("preserve_frame_pointers", "true"),
        ("enable_multi_ret_implicit_sret", "true"),
        // Only the developer option `frame_map` asks for it: the
        // prologues' register saves go into the frame maps.
        ("unwind_info", if unwind_info { "true" } else { "false" }),
    ];
    for (name, value) in shared {
        flags.set(name, value).map_err(|e| setting_error(name, e))?;
    }

    let host = TargetArch::host() == Some(arch) && !portable;
    let mut builder = if host {
        cranelift_native::builder().map_err(|e| CompileError::Target {
            what: "cannot detect the host CPU".into(),
            source: e.into(),
        })?
    } else {
        let triple = triple(arch)?;
        isa::lookup(triple).map_err(|e| CompileError::Target {
            what: format!("target {} unavailable", arch.name()),
            source: Box::new(e),
        })?
    };
    if !host && arch == TargetArch::X86_64 {
        for name in ["has_sse3", "has_ssse3", "has_sse41", "has_sse42"] {
            builder.enable(name).map_err(|e| setting_error(name, e))?;
        }
        if fused {
            for name in ["has_avx", "has_fma"] {
                builder.enable(name).map_err(|e| setting_error(name, e))?;
            }
        }
    }
    let isa = builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| CompileError::Target {
            what: format!("cannot build the {} ISA", arch.name()),
            source: Box::new(e),
        })?;
    let mut cpu_features: Vec<String> = isa
        .isa_flags()
        .iter()
        .filter(|v| v.name.starts_with("has_") && v.as_bool() == Some(true))
        .map(|v| v.name.to_string())
        .collect();
    cpu_features.sort();
    Ok(Target { isa, cpu_features })
}
