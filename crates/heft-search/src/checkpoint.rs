//! The binary checkpoint format.
//!
//! Layout, all integers and floats little-endian:
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `HEFTSRCH` |
//! | 4 | format version (u32, currently 1) |
//! | ... | fields, each a u8, u64, f64, or a u64 length followed by that many f32/f64/u64/bytes |
//! | 8 | FNV-1a 64-bit hash of every byte before it |
//!
//! The field sequence is fixed by the code that writes it: the optimizer's
//! shared state, then the fields of its algorithm, then (for a
//! [`Search`](crate::Search)) the history.

use crate::error::SearchError;

const MAGIC: &[u8; 8] = b"HEFTSRCH";
const VERSION: u32 = 1;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes checkpoint fields.
#[derive(Debug)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        Writer { buf }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        let h = fnv1a(&self.buf);
        self.buf.extend_from_slice(&h.to_le_bytes());
        self.buf
    }
}

/// Reads checkpoint fields written by [`Writer`], with bounds checks.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

pub(crate) fn invalid(reason: impl Into<String>) -> SearchError {
    SearchError::CheckpointInvalid {
        reason: reason.into(),
    }
}

impl<'a> Reader<'a> {
    /// Checks the magic, version and hash, and positions the reader after the header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, SearchError> {
        if bytes.len() < MAGIC.len() + 4 + 8 {
            return Err(SearchError::CheckpointTruncated {
                offset: bytes.len(),
                needed: MAGIC.len() + 12 - bytes.len(),
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(invalid(
                "missing magic bytes HEFTSRCH: not a heft-search checkpoint",
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(invalid(format!(
                "format version {version} is not supported (expected {VERSION})"
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        if stored != fnv1a(body) {
            return Err(invalid(
                "hash mismatch: the checkpoint is truncated or corrupted",
            ));
        }
        Ok(Reader {
            bytes: body,
            pos: 12,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SearchError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(SearchError::CheckpointTruncated {
                offset: self.pos,
                needed: n,
            }),
        }
    }

    pub fn u8(&mut self) -> Result<u8, SearchError> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, SearchError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn f64(&mut self) -> Result<f64, SearchError> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn len(&mut self, elem: usize) -> Result<usize, SearchError> {
        let n = self.u64()?;
        let bytes = n
            .checked_mul(elem as u64)
            .filter(|&b| b <= (self.bytes.len() - self.pos) as u64);
        match bytes {
            Some(_) => Ok(n as usize),
            None => Err(invalid(format!(
                "field length {n} at byte {} exceeds the remaining data",
                self.pos - 8
            ))),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], SearchError> {
        let n = self.len(1)?;
        self.take(n)
    }

    /// Reads a vector of f32 into `out`, which must have the stored length.
    pub fn f32s_into(&mut self, field: &str, out: &mut [f32]) -> Result<(), SearchError> {
        let n = self.len(4)?;
        if n != out.len() {
            return Err(invalid(format!(
                "field {field} has {n} values, expected {}",
                out.len()
            )));
        }
        let raw = self.take(4 * n)?;
        for (x, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
            *x = f32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        Ok(())
    }

    /// Reads a vector of f64 into `out`, which must have the stored length.
    pub fn f64s_into(&mut self, field: &str, out: &mut [f64]) -> Result<(), SearchError> {
        let n = self.len(8)?;
        if n != out.len() {
            return Err(invalid(format!(
                "field {field} has {n} values, expected {}",
                out.len()
            )));
        }
        let raw = self.take(8 * n)?;
        for (x, c) in out.iter_mut().zip(raw.chunks_exact(8)) {
            *x = f64::from_le_bytes(c.try_into().expect("8 bytes"));
        }
        Ok(())
    }

    /// Reads a vector of f64 of any length.
    pub fn f64s(&mut self) -> Result<Vec<f64>, SearchError> {
        let n = self.len(8)?;
        let mut v = vec![0.0; n];
        let raw = self.take(8 * n)?;
        for (x, c) in v.iter_mut().zip(raw.chunks_exact(8)) {
            *x = f64::from_le_bytes(c.try_into().expect("8 bytes"));
        }
        Ok(v)
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), SearchError> {
        if self.pos != self.bytes.len() {
            return Err(invalid(format!(
                "{} unread bytes at the end",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}
