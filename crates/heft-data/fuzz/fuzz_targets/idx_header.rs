//! Fuzz target: runs the IDX header parser and the gzip decoder over any
//! bytes and asserts that an accepted header accounts for every byte.
//! libFuzzer reports any panic.

#![no_main]

use heft_data::idx::gunzip;
use heft_data::{IdxFile, IdxHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = IdxHeader::parse(data) {
        assert_eq!(data.len(), header.header_len() + header.payload_len());
        let file = IdxFile::from_bytes(data.to_vec(), "fuzz").expect("parsed once already");
        assert_eq!(file.payload().len(), header.payload_len());
    }
    if let Ok(decompressed) = gunzip(data) {
        let _ = IdxHeader::parse(&decompressed);
    }
});
