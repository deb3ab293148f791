//! WASI preview1.
