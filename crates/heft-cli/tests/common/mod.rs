//! Helpers shared by the CLI's integration tests.

use std::path::Path;

/// Writes an IDX file of unsigned bytes with the given dimensions.
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}
