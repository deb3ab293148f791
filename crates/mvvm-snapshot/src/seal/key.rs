//! The shared secret: loading it from a key file, checking the file is
//! private, and writing a fresh one.
//!
//! A key file holds either hex digits (what [`SealKey::write_new`] writes:
//! 64 hex digits and a newline, easy to copy between machines) or raw
//! bytes (e.g. `head -c 32 /dev/urandom > key`). A file whose content,
//! ASCII whitespace aside, is an even number of hex digits is decoded as
//! hex; anything else is taken as raw bytes. Either way the key must be at
//! least [`MIN_KEY_BYTES`] bytes: 256 bits, so that guessing it is out of
//! reach whatever the attacker's budget.
//!
//! A regular key file readable or writable by group or others is refused
//! (as ssh refuses such a private key): a secret that other local users
//! can read authenticates nobody.

use super::error::SealError;
use super::{MAX_KEY_BYTES, MIN_KEY_BYTES};
use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Bytes of a key written by [`SealKey::write_new`].
pub const NEW_KEY_BYTES: usize = 32;

/// A shared secret of [`MIN_KEY_BYTES`] to [`MAX_KEY_BYTES`] bytes. Its
/// bytes are wiped from memory when it is dropped, and `Debug` does not
/// show them.
#[derive(Clone)]
pub struct SealKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({} bytes, redacted)", self.bytes.len())
    }
}

impl SealKey {
    /// A key from its bytes; fails outside [`MIN_KEY_BYTES`]..=[`MAX_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SealKey, SealError> {
        check_len("given", bytes.len())?;
        Ok(SealKey {
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// A fresh random key of [`NEW_KEY_BYTES`] bytes.
    pub fn generate() -> Result<SealKey, SealError> {
        let mut bytes = Zeroizing::new(vec![0u8; NEW_KEY_BYTES]);
        super::random(&mut bytes)?;
        Ok(SealKey { bytes })
    }

    /// Reads the key file at `path` (hex or raw; see the module
    /// documentation). A regular file with any permission bit for group or
    /// others is refused with [`SealError::KeyFilePermissions`].
    pub fn load(path: &Path) -> Result<SealKey, SealError> {
        let key_err = |error| SealError::KeyFile {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::open(path).map_err(key_err)?;
        let meta = file.metadata().map_err(key_err)?;
        check_private(path, &meta)?;
        // Bounded read: a key file is small, and a path to a huge file or
        // an endless device must not exhaust memory.
        let limit = (MAX_KEY_BYTES * 2 + 64) as u64;
        let mut content = Zeroizing::new(Vec::new());
        file.take(limit + 1)
            .read_to_end(&mut content)
            .map_err(key_err)?;
        if content.len() as u64 > limit {
            return Err(SealError::KeyLength {
                what: path.display().to_string(),
                len: content.len(),
                min: MIN_KEY_BYTES,
                max: MAX_KEY_BYTES,
            });
        }
        let bytes = decode_hex(&content).unwrap_or_else(|| content.clone());
        check_len(&path.display().to_string(), bytes.len())?;
        Ok(SealKey { bytes })
    }

    /// Writes a fresh key to a new file at `path` (mode 0600, 64 hex digits
    /// and a newline, synced) and returns it. An existing file is never
    /// replaced: overwriting a key by accident would lock out every sealed
    /// file made with it.
    pub fn write_new(path: &Path) -> Result<SealKey, SealError> {
        let key = SealKey::generate()?;
        let key_err = |error| SealError::KeyFile {
            path: path.to_path_buf(),
            error,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(key_err)?;
        let mut text = Zeroizing::new(String::with_capacity(key.bytes.len() * 2 + 1));
        for b in key.bytes.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 15)]));
        }
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(key_err)?;
        file.sync_all().map_err(key_err)?;
        Ok(key)
    }

    /// The secret bytes (for key derivation inside this module only).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.bytes
    }
}

/// Lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Fails unless `len` is an accepted key length.
fn check_len(what: &str, len: usize) -> Result<(), SealError> {
    if (MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&len) {
        Ok(())
    } else {
        Err(SealError::KeyLength {
            what: what.to_string(),
            len,
            min: MIN_KEY_BYTES,
            max: MAX_KEY_BYTES,
        })
    }
}

/// Refuses a regular key file that group or others may access. Pipes and
/// other special files (`--key <(cmd)`, `/dev/fd/N`) are not checked:
/// their permission bits say nothing about who can read the secret.
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), SealError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            return Err(SealError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// `content` decoded as hex when it is (ASCII whitespace aside) a non-empty
/// even number of hex digits; `None` otherwise.
fn decode_hex(content: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        content
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.chunks_exact(2) {
        out.push(value(pair[0])? << 4 | value(pair[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mvvm-seal-key-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    #[test]
    fn hex_and_raw_keys() {
        assert_eq!(decode_hex(b"0aFf\n").unwrap().as_slice(), &[0x0a, 0xff]);
        assert!(decode_hex(b"0a f").is_none());
        assert!(decode_hex(b"zz").is_none());
        assert!(decode_hex(b"  \n").is_none());
        assert!(SealKey::from_bytes(&[1; 31]).is_err());
        assert!(SealKey::from_bytes(&[1; 32]).is_ok());
        assert!(SealKey::from_bytes(&vec![1; MAX_KEY_BYTES + 1]).is_err());
    }

    #[test]
    fn new_key_file_is_private_hex_and_never_overwritten() {
        let p = scratch("new");
        let k = SealKey::write_new(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = SealKey::load(&p).unwrap();
        assert_eq!(loaded.secret(), k.secret());
        assert!(matches!(
            SealKey::write_new(&p),
            Err(SealError::KeyFile { .. })
        ));
        assert_eq!(SealKey::load(&p).unwrap().secret(), k.secret());
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    #[cfg(unix)]
    fn loose_permissions_and_short_keys_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let p = scratch("loose");
        std::fs::write(&p, [7u8; 40]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SealKey::load(&p),
            Err(SealError::KeyFilePermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SealKey::load(&p).unwrap().secret(), &[7u8; 40]);
        std::fs::write(&p, "abcd\n").unwrap();
        assert!(matches!(
            SealKey::load(&p),
            Err(SealError::KeyLength { len: 2, .. })
        ));
        let _ = std::fs::remove_file(&p);
    }
}
