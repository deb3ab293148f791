//! The one place that knows how MVVM metadata is encoded.
//!
//! bincode 2 (with serde) is used today; keeping every call behind these two
//! functions lets it be replaced without touching the compiler, the runtime
//! or the snapshot format code.
//!
//! Decoding is bounded by the input, not by what it claims: bincode
//! allocates a string's bytes from its length prefix before reading them,
//! up to the configured limit, so [`decode`] picks the smallest of a few
//! limits (16 KiB, 1 MiB, 64 MiB, 1 GiB) that still covers the input. A
//! well-formed value never claims more than the bytes it consumes, so it
//! always decodes; a lying length prefix fails with `LimitExceeded` after
//! allocating at most 64 times the input (sequences are never preallocated
//! beyond 1 MiB: serde grows them as elements actually decode).

use serde::{Serialize, de::DeserializeOwned};

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

impl CodecError {
    /// An error with `message`, for encodings built on this codec (the
    /// checkpoint tables' index).
    pub fn new(message: impl Into<String>) -> CodecError {
        CodecError(message.into())
    }
}

/// Largest input [`decode`] accepts (and the largest value [`encode`]
/// is meant to produce).
pub const MAX_DECODE_BYTES: usize = 1 << 30;

fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<LIMIT>()
}

/// Encodes `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::<MAX_DECODE_BYTES>())
        .map_err(|e| CodecError(e.to_string()))
}

/// Decodes a value, requiring that all of `bytes` is consumed. Nothing it
/// allocates is sized by a length prefix beyond 64 times `bytes.len()`
/// (see the module documentation).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let decoded = match bytes.len() {
        n if n <= 1 << 14 => bincode::serde::decode_from_slice(bytes, config::<{ 1 << 14 }>()),
        n if n <= 1 << 20 => bincode::serde::decode_from_slice(bytes, config::<{ 1 << 20 }>()),
        n if n <= 1 << 26 => bincode::serde::decode_from_slice(bytes, config::<{ 1 << 26 }>()),
        n if n <= MAX_DECODE_BYTES => {
            bincode::serde::decode_from_slice(bytes, config::<MAX_DECODE_BYTES>())
        }
        n => {
            return Err(CodecError(format!(
                "{n} bytes to decode exceed the limit of {MAX_DECODE_BYTES} bytes"
            )));
        }
    };
    let (v, used) = decoded.map_err(|e| CodecError(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError(format!(
            "{} trailing bytes after the encoded value",
            bytes.len() - used
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_every_size_class_round_trip() {
        for n in [0usize, 10, (1 << 14) - 8, 1 << 14, 1 << 18, (1 << 20) + 3] {
            let v = (
                String::from_utf8(vec![b'a'; n]).unwrap(),
                vec![7u32; n / 64],
            );
            let bytes = encode(&v).unwrap();
            let back: (String, Vec<u32>) = decode(&bytes).unwrap();
            assert_eq!(back, v, "{n}");
        }
        // Exactly at a class boundary: 8 bytes of length, 16376 of text.
        let s = "b".repeat((1 << 14) - 8);
        let bytes = encode(&s).unwrap();
        assert_eq!(bytes.len(), 1 << 14);
        assert_eq!(decode::<String>(&bytes).unwrap(), s);
    }

    #[test]
    fn a_lying_string_length_is_refused_without_a_large_allocation() {
        // A string that claims 512 MiB in a 16-byte input: the limit for a
        // 16-byte input is 16 KiB, so bincode refuses before allocating.
        let mut bytes = (512u64 << 20).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abcdefgh");
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.to_string().to_lowercase().contains("limit"), "{err}");
        // A sequence that claims 2^60 elements fails at the end of the input.
        let bytes = (1u64 << 60).to_le_bytes();
        assert!(decode::<Vec<u64>>(&bytes).is_err());
    }
}
