//! A growable `f32` buffer whose storage starts on a 64-byte boundary.
//!
//! 64 bytes is one cache line and one AVX-512 register, so packed GEMM
//! panels and matrix rows that start at a multiple of 16 elements never
//! split a vector load across two lines.

/// One cache line of `f32` lanes; the unit of allocation.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

const LANES: usize = 16;

// SAFETY: `Line` is `repr(C)` over `[f32; 16]`, which is 64 bytes with no
// padding, so every bit pattern is valid and the all-zero pattern is 0.0.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; `Line` is `Copy`, `'static`, has no padding and no
// invalid bit patterns.
unsafe impl bytemuck::Pod for Line {}

/// A contiguous, 64-byte-aligned vector of `f32`.
#[derive(Clone, Default)]
pub struct AlignedVec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedVec {
    /// Creates an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a buffer of `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let mut v = Self::new();
        v.resize(len, 0.0);
        v
    }

    /// Creates a buffer holding a copy of `values`.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut v = Self::zeros(values.len());
        v.as_mut_slice().copy_from_slice(values);
        v
    }

    /// Returns the number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Reports whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Resizes to `len` elements, filling new ones with `value`.
    pub fn resize(&mut self, len: usize, value: f32) {
        let old = self.len;
        self.lines.resize(len.div_ceil(LANES), Line([0.0; LANES]));
        self.len = len;
        if len > old {
            self.as_mut_slice()[old..].fill(value);
        }
    }

    /// Grows the buffer to at least `len` elements without initialising
    /// guarantees beyond "some finite value"; used for scratch space.
    pub(crate) fn ensure_len(&mut self, len: usize) {
        if self.len < len {
            self.resize(len, 0.0);
        }
    }

    /// Returns the elements as a slice.
    pub fn as_slice(&self) -> &[f32] {
        &bytemuck::cast_slice::<Line, f32>(&self.lines)[..self.len]
    }

    /// Returns the elements as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut::<Line, f32>(&mut self.lines)[..self.len]
    }
}

impl std::fmt::Debug for AlignedVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl PartialEq for AlignedVec {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_64_byte_aligned() {
        for len in [1, 15, 16, 17, 1000] {
            let v = AlignedVec::zeros(len);
            assert_eq!(v.as_slice().as_ptr() as usize % 64, 0);
            assert_eq!(v.len(), len);
        }
    }

    #[test]
    fn resize_fills_new_elements() {
        let mut v = AlignedVec::from_slice(&[1.0, 2.0]);
        v.resize(5, 7.0);
        assert_eq!(v.as_slice(), &[1.0, 2.0, 7.0, 7.0, 7.0]);
        v.resize(1, 0.0);
        assert_eq!(v.as_slice(), &[1.0]);
    }
}
