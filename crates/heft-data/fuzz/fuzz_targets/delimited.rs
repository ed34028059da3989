//! Fuzz target: runs the delimited text reader over any bytes, with the
//! first input byte as the delimiter, and checks record offsets. libFuzzer
//! reports any panic.

#![no_main]

use heft_data::text::delimited::DelimitedReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&delimiter, body)) = data.split_first() else {
        return;
    };
    for record in DelimitedReader::new(body, delimiter) {
        match record {
            Ok(record) => assert!(record.offset < body.len() as u64),
            Err(_) => break,
        }
    }
});
