//! The contract between `mvvm-aot` (which writes code and metadata) and
//! `mvvm-rt` (which loads and runs it).
//!
//! Everything both sides must agree on is written once, here: the layout of
//! the `VMContext` that generated code reads ([`vmctx`]), the runtime calls
//! generated code may make ([`builtins`]), the trap codes ([`trap`]), how exceptions reach their handlers
//! ([`exception`]), the
//! symbol and section names of the `.aot` object ([`object`]), the metadata
//! that travels with the code ([`meta`], and the checkpoint tables decoded
//! on demand, [`tables`], and the trap sites and names read in place, [`trap_sites`], [`names`]; the
//! developer-only frame maps, [`frame_map`]) and the one codec used to encode it
//! ([`codec`]). This crate has no unsafe code.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod builtins;
pub mod checkpoint;
pub mod codec;
pub mod entries;
pub mod exception;
pub mod frame_map;
mod indexed_section;
pub mod meta;
pub mod names;
pub mod object;
pub mod resume_code;
pub mod tables;
pub mod trap;
pub mod trap_sites;
pub mod version;
pub mod vmctx;

pub use checkpoint::{Policy, StablePoint, StablePointKind};
pub use meta::*;
pub use tables::{CheckpointTables, FuncTables, TablesError};
pub use trap::TrapCode;
pub use trap_sites::{TrapSiteTable, TrapSitesError};
