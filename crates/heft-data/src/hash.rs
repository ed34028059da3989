//! A fixed 64-bit hash for fingerprints and cache names.

/// 64-bit FNV-1a: stable across builds, platforms and releases, unlike the
/// standard library's hasher, so its values can be stored in files. It is
/// a fingerprint, not a defence against crafted collisions.
///
/// [`Fnv1a::bytes`] feeds one step per byte, the standard FNV-1a.
/// [`Fnv1a::word`] feeds one step per 32-bit word, a quarter of the steps
/// for data that comes in words (pixels as `f32` bits, token ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Fnv1a {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// Starts a hash at the FNV-1a offset basis.
    pub const fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes`, one step each.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds one 32-bit word in one step.
    pub fn word(&mut self, word: u32) {
        self.0 = (self.0 ^ u64::from(word)).wrapping_mul(Self::PRIME);
    }

    /// Returns the hash of what was fed.
    pub const fn finish(&self) -> u64 {
        self.0
    }

    /// Returns the FNV-1a hash of `bytes`.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut hash = Fnv1a::new();
        hash.bytes(bytes);
        hash.finish()
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv1a;

    /// The 64-bit FNV-1a test vectors of the IETF draft on FNV
    /// (draft-eastlake-fnv, appendix C).
    #[test]
    fn standard_vectors() {
        assert_eq!(Fnv1a::of(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv1a::of(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv1a::of(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// A word is one step: not the same as feeding its four bytes.
    #[test]
    fn word_is_one_step() {
        let mut word = Fnv1a::new();
        word.word(0x61);
        assert_eq!(word.finish(), Fnv1a::of(b"a"));
        let mut wide = Fnv1a::new();
        wide.word(0x0102_0304);
        assert_ne!(wide.finish(), Fnv1a::of(&[4, 3, 2, 1]));
    }
}
