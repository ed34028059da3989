//! Seeded random and mutated inputs through the parser entry points that the
//! cargo-fuzz targets cover: none may panic.

use heft_data::idx::{self, gunzip};
use heft_data::text::delimited::DelimitedReader;
use heft_data::{IdxHeader, SplitMix64};

/// Valid IDX files of several types and ranks to mutate.
fn idx_seeds() -> Vec<Vec<u8>> {
    vec![
        idx::encode(&[3, 2, 2], &[7u8; 12]).unwrap(),
        idx::encode(&[5], &[1u8, 2, 3, 4, 5]).unwrap(),
        idx::encode(&[2, 3], &[1.5f32; 6]).unwrap(),
        idx::encode(&[], &[-4i16]).unwrap(),
        idx::encode(&[1, 1, 1, 1, 2], &[9.0f64, -1.0]).unwrap(),
    ]
}

fn csv_seeds() -> Vec<Vec<u8>> {
    vec![
        b"a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"two\nlines\",\n".to_vec(),
        b"label\ttext\npos\tgood\n\nneg\t\"bad\"\n".to_vec(),
        b"\"\"\"\",\"\",\n,,,\r\n".to_vec(),
    ]
}

/// Applies one to four random byte edits: flip, overwrite, insert, delete or
/// truncate.
fn mutate(rng: &mut SplitMix64, input: &[u8]) -> Vec<u8> {
    const INTERESTING: [u8; 8] = [0x00, 0xff, 0x08, 0x0e, 0x1f, 0x8b, b'"', b'\n'];
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len() as u64;
        let at = if len == 0 { 0 } else { rng.below(len) as usize };
        match rng.below(5) {
            0 if len > 0 => out[at] ^= 1 << rng.below(8),
            1 if len > 0 => out[at] = INTERESTING[rng.below(8) as usize],
            2 => out.insert(at, INTERESTING[rng.below(8) as usize]),
            3 if len > 0 => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn random_bytes(rng: &mut SplitMix64, max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len + 1) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn exercise_idx(bytes: &[u8]) {
    if let Ok(header) = IdxHeader::parse(bytes) {
        assert_eq!(bytes.len(), header.header_len() + header.payload_len());
        let file = heft_data::IdxFile::from_bytes(bytes.to_vec(), "fuzz").unwrap();
        assert_eq!(file.payload().len(), header.payload_len());
    }
    let _ = gunzip(bytes);
}

fn exercise_delimited(bytes: &[u8]) {
    for delimiter in [b',', b'\t', b'"'] {
        let mut end = 0u64;
        for record in DelimitedReader::new(bytes, delimiter) {
            match record {
                Ok(record) => {
                    assert!(record.offset >= end || end == 0, "offsets go back");
                    assert!(record.offset < bytes.len() as u64);
                    end = record.offset;
                }
                Err(_) => break,
            }
        }
    }
}

#[test]
fn no_panic_on_random_inputs() {
    let mut rng = SplitMix64::new(0x5eed);
    let idx_seeds = idx_seeds();
    let csv_seeds = csv_seeds();
    for round in 0..4_000 {
        let seed = &idx_seeds[round % idx_seeds.len()];
        exercise_idx(&mutate(&mut rng, seed));
        exercise_idx(&random_bytes(&mut rng, 64));
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(seed).unwrap();
            e.finish().unwrap()
        };
        exercise_idx(&mutate(&mut rng, &gz));

        let csv = &csv_seeds[round % csv_seeds.len()];
        exercise_delimited(&mutate(&mut rng, csv));
        exercise_delimited(&random_bytes(&mut rng, 48));
    }
}
