//! IDX reader and writer: round trips, header checks, gzip, file lookup.

mod common;

use common::{assert_error, gzip, TempDir};
use heft_data::idx::{self, candidate_names, find_in_dir, gunzip};
use heft_data::{Backing, DType, Element, ErrorKind, IdxFile, IdxHeader, Location};

/// Shapes from rank 0 (one element) to rank 5, with odd sizes.
const SHAPES: &[&[usize]] = &[
    &[],
    &[1],
    &[7],
    &[3, 5],
    &[2, 3, 4],
    &[1, 2, 1, 3],
    &[2, 1, 3, 1, 2],
];

fn check_round_trip<T: Element + PartialEq + std::fmt::Debug>(
    dir: &TempDir,
    make: impl Fn(usize) -> T,
) {
    for (case, dims) in SHAPES.iter().enumerate() {
        let count: usize = dims.iter().product();
        let data: Vec<T> = (0..count).map(&make).collect();
        for ext in ["", ".gz"] {
            let path = dir.join(&format!("{}-{case}{ext}", T::DTYPE));
            idx::write(&path, dims, &data).unwrap();
            for backing in [Backing::Map, Backing::Read] {
                let file = IdxFile::open_with(&path, backing).unwrap();
                assert_eq!(file.dtype(), T::DTYPE);
                assert_eq!(file.dims(), *dims);
                assert_eq!(file.element_count(), count);
                assert_eq!(file.to_vec::<T>().unwrap(), data, "{}", path.display());
                assert_eq!(file.values::<T>().unwrap().len(), count);
                assert_eq!(file.get::<T>(count - 1).unwrap(), Some(data[count - 1]));
                assert_eq!(file.get::<T>(count).unwrap(), None);
            }
        }
    }
}

#[test]
fn round_trip_u8_every_rank() {
    let dir = TempDir::new("rt-u8");
    check_round_trip(&dir, |i| (i * 37 % 256) as u8);
}

#[test]
fn round_trip_i8_every_rank() {
    let dir = TempDir::new("rt-i8");
    check_round_trip(&dir, |i| (i as i64 * 37 % 256 - 128) as i8);
}

#[test]
fn round_trip_i16_every_rank() {
    let dir = TempDir::new("rt-i16");
    check_round_trip(&dir, |i| (i as i32 * 4099 - 30_000) as i16);
}

#[test]
fn round_trip_i32_every_rank() {
    let dir = TempDir::new("rt-i32");
    check_round_trip(&dir, |i| (i as i32).wrapping_mul(-1_000_003));
}

#[test]
fn round_trip_f32_every_rank() {
    let dir = TempDir::new("rt-f32");
    check_round_trip(&dir, |i| i as f32 * -0.37 + 1e-3);
}

#[test]
fn round_trip_f64_every_rank() {
    let dir = TempDir::new("rt-f64");
    check_round_trip(&dir, |i| i as f64 * 1.0e-7 - 3.25);
}

#[test]
fn raw_file_is_mapped_and_viewed_in_place() {
    let dir = TempDir::new("mapped");
    let path = dir.join("a-idx3-ubyte");
    let data: Vec<u8> = (0..60).collect();
    idx::write(&path, &[3, 4, 5], &data).unwrap();
    let file = IdxFile::open(&path).unwrap();
    assert!(file.is_mapped());
    assert_eq!(file.as_u8().unwrap(), &data[..]);
    let read = IdxFile::open_with(&path, Backing::Read).unwrap();
    assert!(!read.is_mapped());
}

#[test]
fn i8_view_keeps_sign() {
    let dir = TempDir::new("i8view");
    let path = dir.join("s");
    idx::write(&path, &[4], &[-128i8, -1, 0, 127]).unwrap();
    let file = IdxFile::open(&path).unwrap();
    assert_eq!(file.as_i8().unwrap(), &[-128i8, -1, 0, 127]);
}

#[test]
fn encoded_bytes_are_big_endian() {
    let bytes = idx::encode(&[2], &[1i16, -2]).unwrap();
    assert_eq!(bytes, [0, 0, 0x0b, 1, 0, 0, 0, 2, 0x00, 0x01, 0xff, 0xfe]);
    let bytes = idx::encode(&[1], &[1.0f32]).unwrap();
    assert_eq!(&bytes[8..], &[0x3f, 0x80, 0, 0]);
}

#[test]
fn wrong_element_type_is_type_mismatch() {
    let dir = TempDir::new("mismatch");
    let path = dir.join("f");
    idx::write(&path, &[2], &[1.0f32, 2.0]).unwrap();
    let file = IdxFile::open(&path).unwrap();
    assert_error(file.as_u8(), ErrorKind::TypeMismatch, &path);
    assert_error(file.to_vec::<f64>(), ErrorKind::TypeMismatch, &path);
}

#[test]
fn encode_rejects_bad_shapes() {
    let zero = idx::encode(&[0, 3], &[] as &[u8]).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidArgument);
    let count = idx::encode(&[2, 3], &[0u8; 5]).unwrap_err();
    assert_eq!(count.kind(), ErrorKind::InvalidArgument);
    let rank = idx::encode(&[1; 256], &[0u8]).unwrap_err();
    assert_eq!(rank.kind(), ErrorKind::InvalidArgument);
}

// ---- One test per error kind of the header checks ----

#[test]
fn empty_file_is_empty_error() {
    let dir = TempDir::new("empty");
    let path = dir.write("train-images-idx3-ubyte", b"");
    assert_error(IdxFile::open(&path), ErrorKind::Empty, &path);
    let gz = dir.write("train-images-idx3-ubyte.gz", b"");
    assert_error(IdxFile::open(&gz), ErrorKind::Empty, &gz);
}

#[test]
fn header_shorter_than_rank_needs() {
    let dir = TempDir::new("short-header");
    // Rank 3 needs 16 header bytes; give 4 + 2 dims.
    let path = dir.write("images", &[0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2]);
    let err = assert_error(IdxFile::open(&path), ErrorKind::TruncatedHeader, &path);
    assert_eq!(err.location(), Some(Location::Byte(12)));
    assert!(err.message().contains("needs 16"), "{err}");
    // Shorter than the magic itself (a label file cut at 3 bytes).
    let tiny = dir.write("labels", &[0, 0, 8]);
    assert_error(IdxFile::open(&tiny), ErrorKind::TruncatedHeader, &tiny);
}

#[test]
fn gzip_stream_given_as_raw_file() {
    let dir = TempDir::new("gzip-raw");
    let idx_bytes = idx::encode(&[2, 2], &[1u8, 2, 3, 4]).unwrap();
    // Named without .gz, so it is parsed as raw IDX.
    let path = dir.write("train-images-idx3-ubyte", &gzip(&idx_bytes));
    let err = assert_error(IdxFile::open(&path), ErrorKind::BadMagic, &path);
    assert!(err.message().contains("gzip"), "{err}");
}

#[test]
fn little_endian_header_is_rejected() {
    let dir = TempDir::new("le");
    // 0x00000803 written little-endian, then dims little-endian.
    let mut bytes = vec![3, 8, 0, 0];
    for dim in [1u32, 2, 2] {
        bytes.extend_from_slice(&dim.to_le_bytes());
    }
    bytes.extend_from_slice(&[0; 4]);
    let path = dir.write("images", &bytes);
    let err = assert_error(IdxFile::open(&path), ErrorKind::BadMagic, &path);
    assert!(err.message().contains("little-endian"), "{err}");
}

#[test]
fn non_idx_magic_is_rejected() {
    let dir = TempDir::new("magic");
    let path = dir.write("text", b"a\x00 plain text file");
    assert_error(IdxFile::open(&path), ErrorKind::BadMagic, &path);
    let unknown_type = dir.write("type", &[0, 0, 0x0a, 1, 0, 0, 0, 1, 0]);
    let err = assert_error(
        IdxFile::open(&unknown_type),
        ErrorKind::BadMagic,
        &unknown_type,
    );
    assert_eq!(err.location(), Some(Location::Byte(2)));
}

#[test]
fn html_page_saved_as_gz() {
    let dir = TempDir::new("html");
    let mut page = b"<!DOCTYPE html>\n<html><head><title>302 Found</title></head><body>".to_vec();
    while page.len() < 713 {
        page.extend_from_slice(b"<p>The document has moved.</p>");
    }
    page.truncate(713);
    page.extend_from_slice(b"</body></html>");
    assert_eq!(page.len(), 727);
    let path = dir.write("train-images-idx3-ubyte.gz", &page);
    let err = assert_error(IdxFile::open(&path), ErrorKind::Gzip, &path);
    assert!(err.message().contains("not a gzip stream"), "{err}");
    assert!(err.message().contains("727 bytes"), "{err}");
}

#[test]
fn truncated_payload() {
    let dir = TempDir::new("trunc");
    let mut bytes = idx::encode(&[10, 4, 4], &[7u8; 160]).unwrap();
    bytes.truncate(bytes.len() - 5);
    let path = dir.write("images", &bytes);
    let err = assert_error(IdxFile::open(&path), ErrorKind::TruncatedPayload, &path);
    assert_eq!(err.location(), Some(Location::Byte(bytes.len() as u64)));
    assert!(err.message().contains("5 bytes short"), "{err}");
}

#[test]
fn valid_header_with_empty_body() {
    // A header that promises data, followed by nothing at all.
    let dir = TempDir::new("empty-body");
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&60_000u32.to_be_bytes());
    let path = dir.write("labels", &bytes);
    assert_error(IdxFile::open(&path), ErrorKind::TruncatedPayload, &path);
}

#[test]
fn trailing_bytes() {
    let dir = TempDir::new("trailing");
    let mut bytes = idx::encode(&[3], &[1i32, 2, 3]).unwrap();
    let expected_len = bytes.len() as u64;
    bytes.push(0);
    let path = dir.write("values", &bytes);
    let err = assert_error(IdxFile::open(&path), ErrorKind::TrailingBytes, &path);
    assert_eq!(err.location(), Some(Location::Byte(expected_len)));
}

#[test]
fn zero_sized_dimension() {
    let dir = TempDir::new("zero");
    let path = dir.write("images", &[0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2]);
    let err = assert_error(IdxFile::open(&path), ErrorKind::ZeroDimension, &path);
    assert_eq!(err.location(), Some(Location::Byte(8)));
}

#[test]
fn dimension_product_overflow() {
    let dir = TempDir::new("overflow");
    let mut bytes = vec![0, 0, 0x0e, 3];
    for _ in 0..3 {
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    let path = dir.write("huge", &bytes);
    assert_error(IdxFile::open(&path), ErrorKind::SizeOverflow, &path);
}

#[test]
fn truncated_gzip() {
    let dir = TempDir::new("gz-trunc");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let compressed = gzip(&idx::encode(&[20_000], &data).unwrap());
    let half = &compressed[..compressed.len() / 2];
    let path = dir.write("train-labels-idx1-ubyte.gz", half);
    let err = assert_error(IdxFile::open(&path), ErrorKind::Gzip, &path);
    assert!(err.message().contains("truncated or corrupt"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn corrupt_gzip_checksum() {
    let dir = TempDir::new("gz-crc");
    let mut compressed = gzip(&idx::encode(&[4], &[1u8, 2, 3, 4]).unwrap());
    // Flip a bit of the CRC-32 in the trailer (8 bytes before the end).
    let crc_at = compressed.len() - 8;
    compressed[crc_at] ^= 0x01;
    let path = dir.write("labels.gz", &compressed);
    assert_error(IdxFile::open(&path), ErrorKind::Gzip, &path);
}

#[test]
fn corrupt_deflate_data() {
    let dir = TempDir::new("gz-corrupt");
    let data: Vec<u8> = (0..5_000u32).map(|i| (i % 13) as u8).collect();
    let mut compressed = gzip(&idx::encode(&[5_000], &data).unwrap());
    for byte in &mut compressed[10..20] {
        *byte = 0xff;
    }
    let path = dir.write("labels.gz", &compressed);
    assert_error(IdxFile::open(&path), ErrorKind::Gzip, &path);
}

#[test]
fn gzip_header_errors_name_the_gz_file() {
    // A well-formed gzip whose content is a truncated IDX file.
    let dir = TempDir::new("gz-inner");
    let mut bytes = idx::encode(&[8], &[1u8; 8]).unwrap();
    bytes.truncate(10);
    let path = dir.write("labels-idx1-ubyte.gz", &gzip(&bytes));
    assert_error(IdxFile::open(&path), ErrorKind::TruncatedPayload, &path);
}

#[test]
fn header_parse_reports_sizes() {
    let bytes = idx::encode(&[5, 3], &[0.5f64; 15]).unwrap();
    let header = IdxHeader::parse(&bytes).unwrap();
    assert_eq!(header.dtype(), DType::F64);
    assert_eq!(header.dims(), &[5, 3]);
    assert_eq!(header.header_len(), 12);
    assert_eq!(header.payload_len(), 120);
}

#[test]
fn gunzip_round_trip() {
    let data = b"some bytes to compress".repeat(100);
    assert_eq!(gunzip(&gzip(&data)).unwrap(), data);
}

#[test]
fn dtype_codes_round_trip() {
    for dtype in DType::ALL {
        assert_eq!(DType::from_code(dtype.code()), Some(dtype));
    }
    assert_eq!(DType::from_code(0x0a), None);
}

// ---- File lookup ----

#[test]
fn candidate_names_cover_both_spellings() {
    assert_eq!(
        candidate_names("train-images-idx3-ubyte"),
        [
            "train-images-idx3-ubyte",
            "train-images.idx3-ubyte",
            "train-images-idx3-ubyte.gz",
            "train-images.idx3-ubyte.gz"
        ]
    );
    assert_eq!(
        candidate_names("t10k-labels.idx1-ubyte.gz"),
        candidate_names("t10k-labels-idx1-ubyte")
    );
}

#[test]
fn find_in_dir_accepts_every_spelling() {
    let bytes = idx::encode(&[1], &[3u8]).unwrap();
    for name in [
        "train-labels-idx1-ubyte",
        "train-labels.idx1-ubyte",
        "train-labels-idx1-ubyte.gz",
        "train-labels.idx1-ubyte.gz",
    ] {
        let dir = TempDir::new("lookup");
        let content = if name.ends_with(".gz") {
            gzip(&bytes)
        } else {
            bytes.clone()
        };
        let path = dir.write(name, &content);
        let found = find_in_dir(dir.path(), "train-labels-idx1-ubyte").unwrap();
        assert_eq!(found, path);
        assert_eq!(IdxFile::open(&found).unwrap().as_u8().unwrap(), &[3]);
    }
}

#[test]
fn find_in_dir_prefers_raw_over_gz() {
    let dir = TempDir::new("prefer");
    let bytes = idx::encode(&[1], &[3u8]).unwrap();
    dir.write("x-idx1-ubyte.gz", &gzip(&bytes));
    let raw = dir.write("x.idx1-ubyte", &bytes);
    assert_eq!(find_in_dir(dir.path(), "x-idx1-ubyte").unwrap(), raw);
}

#[test]
fn find_in_dir_missing_file_lists_names() {
    let dir = TempDir::new("missing");
    let err = assert_error(
        find_in_dir(dir.path(), "t10k-images-idx3-ubyte"),
        ErrorKind::NotFound,
        dir.path(),
    );
    assert!(err.message().contains("t10k-images.idx3-ubyte.gz"), "{err}");
}

#[test]
fn missing_file_is_io_error() {
    let dir = TempDir::new("nofile");
    let path = dir.join("absent");
    let err = assert_error(IdxFile::open(&path), ErrorKind::Io, &path);
    assert!(std::error::Error::source(&err).is_some());
}
