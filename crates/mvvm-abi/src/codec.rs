//! The one place that knows how MVVM metadata is encoded.
//!
//! bincode 2 (with serde) is used today; keeping every call behind these two
//! functions lets it be replaced without touching the compiler, the runtime
//! or the snapshot format code.

use serde::{Serialize, de::DeserializeOwned};

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ 1 << 30 }>()
}

/// Encodes `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError(e.to_string()))
}

/// Decodes a value, requiring that all of `bytes` is consumed.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "{} trailing bytes after the encoded value",
            bytes.len() - used
        )));
    }
    Ok(v)
}
