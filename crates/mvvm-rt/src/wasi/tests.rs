//! Unit tests of WASI against a `Vec<u8>` memory.
