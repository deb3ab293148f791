//! MVVM's runtime.

pub mod wasi;
