//! Support of the `spec_checkpoint` test: reading the `.wast` directives
//! into per-instance call lists ([`plan`]) and rewriting each module into a
//! WASI command that makes those calls ([`wasm`]).

pub mod plan;
pub mod wasm;
