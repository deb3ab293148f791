//! Checked access to guest linear memory.
//!
//! WASI calls receive guest pointers (`u32` offsets) and lengths; every one
//! of them goes through [`GuestMem`], which checks the whole range against
//! the current memory length and answers [`Errno::FAULT`] when it does not
//! fit, so a bad pointer can never touch host memory. Values are
//! little-endian and need no alignment.

use super::errno::Errno;
use super::types::IOVEC_SIZE;
use mvvm_rt::SharedMemory;

/// Most bytes one `fd_read`/`fd_write` moves through a host buffer; larger
/// requests are served short, which POSIX and WASI allow.
pub const MAX_IO_CHUNK: usize = 16 << 20;

/// The guest's linear memory: one slice of its current length when the
/// store has it to itself, or a shared memory (wasi-threads) that other
/// threads may be running on, reached only by copying (never through a
/// slice: see `mvvm_rt::SharedMemory`).
pub struct GuestMem<'a> {
    backing: Backing<'a>,
}

enum Backing<'a> {
    Slice(&'a mut [u8]),
    Shared(&'a SharedMemory),
}

impl<'a> GuestMem<'a> {
    /// Wraps the whole linear memory.
    pub fn new(bytes: &'a mut [u8]) -> GuestMem<'a> {
        GuestMem {
            backing: Backing::Slice(bytes),
        }
    }

    /// Wraps a shared memory.
    pub fn shared(memory: &'a SharedMemory) -> GuestMem<'a> {
        GuestMem {
            backing: Backing::Shared(memory),
        }
    }

    /// Current length in bytes.
    fn len(&self) -> u64 {
        match &self.backing {
            Backing::Slice(b) => b.len() as u64,
            Backing::Shared(m) => m.size_bytes(),
        }
    }

    fn range(&self, ptr: u32, len: u64) -> Result<std::ops::Range<usize>, Errno> {
        let start = ptr as u64;
        let end = start.checked_add(len).ok_or(Errno::FAULT)?;
        if end > self.len() {
            return Err(Errno::FAULT);
        }
        Ok(start as usize..end as usize)
    }

    /// Checks that `len` bytes at `ptr` lie in memory (`FAULT` otherwise),
    /// before a call does anything it could not undo.
    pub fn check(&self, ptr: u32, len: u32) -> Result<(), Errno> {
        self.range(ptr, len as u64).map(|_| ())
    }

    /// The NUL-terminated string at `ptr` (without its NUL), of at most
    /// `max` bytes: `NAMETOOLONG` when no NUL comes within `max + 1`
    /// bytes, `FAULT` when memory ends first.
    pub fn read_cstr(&self, ptr: u32, max: u32) -> Result<Vec<u8>, Errno> {
        let avail = self
            .len()
            .saturating_sub(u64::from(ptr))
            .min(u64::from(max) + 1);
        let bytes = self.read_bytes(ptr, avail as u32)?;
        match bytes.iter().position(|&b| b == 0) {
            Some(n) => Ok(bytes[..n].to_vec()),
            None if avail == u64::from(max) + 1 => Err(Errno::NAMETOOLONG),
            None => Err(Errno::FAULT),
        }
    }

    /// Copies `len` bytes at `ptr`.
    pub fn read_bytes(&self, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        let r = self.range(ptr, len as u64)?;
        match &self.backing {
            Backing::Slice(b) => Ok(b[r].to_vec()),
            Backing::Shared(m) => {
                let mut out = vec![0u8; r.len()];
                if !m.read(r.start as u64, &mut out) {
                    return Err(Errno::FAULT);
                }
                Ok(out)
            }
        }
    }

    /// Copies `data` to `ptr`.
    pub fn write_bytes(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let r = self.range(ptr, data.len() as u64)?;
        match &mut self.backing {
            Backing::Slice(b) => b[r].copy_from_slice(data),
            Backing::Shared(m) => {
                if !m.write(r.start as u64, data) {
                    return Err(Errno::FAULT);
                }
            }
        }
        Ok(())
    }

    fn read_array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let r = self.range(ptr, N as u64)?;
        let mut a = [0u8; N];
        match &self.backing {
            Backing::Slice(b) => a.copy_from_slice(&b[r]),
            Backing::Shared(m) => {
                if !m.read(r.start as u64, &mut a) {
                    return Err(Errno::FAULT);
                }
            }
        }
        Ok(a)
    }

    /// Reads a `u8`.
    pub fn read_u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.read_array::<1>(ptr)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn read_u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.read_array(ptr)?))
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.read_array(ptr)?))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, ptr: u32) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.read_array(ptr)?))
    }

    /// Writes a `u8`.
    pub fn write_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write_bytes(ptr, &[v])
    }

    /// Writes a little-endian `u16`.
    pub fn write_u16(&mut self, ptr: u32, v: u16) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// A UTF-8 string of `len` bytes at `ptr` (`ILSEQ` if it is not UTF-8,
    /// as wasmtime answers).
    pub fn read_str(&self, ptr: u32, len: u32) -> Result<String, Errno> {
        String::from_utf8(self.read_bytes(ptr, len)?).map_err(|_| Errno::ILSEQ)
    }

    /// Reads and checks an array of `count` iovecs at `ptr`: each buffer
    /// must lie inside memory. Returns `(buf, len)` pairs.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let table = self.read_bytes(ptr, count.checked_mul(IOVEC_SIZE).ok_or(Errno::FAULT)?)?;
        let mut v = Vec::with_capacity(count as usize);
        for rec in table.chunks_exact(IOVEC_SIZE as usize) {
            let buf = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let len = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
            self.range(buf, len as u64)?;
            v.push((buf, len));
        }
        Ok(v)
    }

    /// Concatenates the bytes of `iovs` (for writes), at most
    /// [`MAX_IO_CHUNK`] of them.
    pub fn gather(&self, iovs: &[(u32, u32)]) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        for &(buf, len) in iovs {
            let room = MAX_IO_CHUNK - out.len();
            let take = (len as usize).min(room) as u32;
            out.extend_from_slice(&self.read_bytes(buf, take)?);
            if out.len() == MAX_IO_CHUNK {
                break;
            }
        }
        Ok(out)
    }

    /// Spreads `data` over `iovs` in order (for reads); `data` is never
    /// longer than the iovecs' total (see [`iovecs_total`]).
    pub fn scatter(&mut self, iovs: &[(u32, u32)], mut data: &[u8]) -> Result<(), Errno> {
        for &(buf, len) in iovs {
            if data.is_empty() {
                break;
            }
            let n = (len as usize).min(data.len());
            self.write_bytes(buf, &data[..n])?;
            data = &data[n..];
        }
        Ok(())
    }
}

/// How many bytes a read into `iovs` may take: their total, at most
/// [`MAX_IO_CHUNK`].
pub fn iovecs_total(iovs: &[(u32, u32)]) -> usize {
    iovs.iter()
        .map(|&(_, l)| l as usize)
        .sum::<usize>()
        .min(MAX_IO_CHUNK)
}
