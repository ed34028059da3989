//! A small reader for delimited text (CSV, TSV) following RFC 4180.
//!
//! The crate has its own reader instead of depending on the `csv` crate
//! because it needs only one feature set (byte slices in, byte-offset and
//! record numbers in errors) and the core crates keep their dependency list
//! short.
//!
//! Rules:
//! - Records end at `\n` or `\r\n` outside quotes. A `\r` that is not
//!   followed by `\n` is an ordinary byte.
//! - A field that starts with `"` is quoted: it ends at the next `"` that is
//!   not doubled, may contain delimiters and line breaks, and `""` is one
//!   `"`. After the closing quote only a delimiter, a line break or the end
//!   of the data may follow. Anything else is [`ErrorKind::Malformed`], and
//!   so is a quote that is never closed.
//! - A `"` inside an unquoted field is kept as an ordinary byte (common in
//!   files written by hand; RFC 4180 does not allow it).
//! - Empty lines between records are skipped. A final line break does not
//!   start a new record.
//!
//! Fields are returned as bytes. Checking UTF-8 is left to the caller so that
//! the error can name the column.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind, Result};

/// One record: its fields, its number and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The fields, with quotes removed and `""` unescaped.
    pub fields: Vec<Cow<'a, [u8]>>,
    /// Zero-based record number, counting a header line as record 0.
    pub number: u64,
    /// One-based line number of the record's first line.
    pub line: u64,
    /// Byte offset of the record's first byte.
    pub offset: u64,
}

/// An iterator over the records of delimited data held in memory.
#[derive(Clone, Debug)]
pub struct DelimitedReader<'a> {
    data: &'a [u8],
    pos: usize,
    delimiter: u8,
    record: u64,
    line: u64,
    failed: bool,
}

impl<'a> DelimitedReader<'a> {
    /// Creates a reader over `data` with the given field delimiter (for
    /// example `b','` or `b'\t'`). The delimiter must not be `"`, `\r` or
    /// `\n`; such a delimiter makes every record [`ErrorKind::InvalidArgument`].
    /// A UTF-8 byte-order mark at the start of `data` is skipped, so a header
    /// written by spreadsheet programs still matches its column names.
    pub fn new(data: &'a [u8], delimiter: u8) -> DelimitedReader<'a> {
        const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";
        DelimitedReader {
            data,
            pos: if data.starts_with(BYTE_ORDER_MARK) {
                BYTE_ORDER_MARK.len()
            } else {
                0
            },
            delimiter,
            record: 0,
            line: 1,
            failed: false,
        }
    }

    fn read_record(&mut self) -> Result<Record<'a>> {
        let start = self.pos;
        let start_line = self.line;
        let number = self.record;
        let mut fields = Vec::new();
        loop {
            let (field, end) = self.read_field(number, start)?;
            fields.push(field);
            match end {
                FieldEnd::Delimiter => continue,
                FieldEnd::LineBreak | FieldEnd::Eof => break,
            }
        }
        self.record += 1;
        Ok(Record {
            fields,
            number,
            line: start_line,
            offset: start as u64,
        })
    }

    /// Reads one field starting at `self.pos` and consumes its terminator.
    fn read_field(
        &mut self,
        record: u64,
        record_start: usize,
    ) -> Result<(Cow<'a, [u8]>, FieldEnd)> {
        let data = self.data;
        if data.get(self.pos) == Some(&b'"') {
            return self.read_quoted_field(record, record_start);
        }
        let start = self.pos;
        let mut i = start;
        while i < data.len() {
            let b = data[i];
            if b == self.delimiter {
                self.pos = i + 1;
                return Ok((Cow::Borrowed(&data[start..i]), FieldEnd::Delimiter));
            }
            if b == b'\n' {
                let end = if i > start && data[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                self.pos = i + 1;
                self.line += 1;
                return Ok((Cow::Borrowed(&data[start..end]), FieldEnd::LineBreak));
            }
            i += 1;
        }
        self.pos = data.len();
        Ok((Cow::Borrowed(&data[start..]), FieldEnd::Eof))
    }

    fn read_quoted_field(
        &mut self,
        record: u64,
        record_start: usize,
    ) -> Result<(Cow<'a, [u8]>, FieldEnd)> {
        let data = self.data;
        let open = self.pos;
        let content_start = open + 1;
        let mut owned: Option<Vec<u8>> = None;
        let mut segment_start = content_start;
        let mut i = content_start;
        loop {
            let Some(&b) = data.get(i) else {
                return Err(Error::new(
                    ErrorKind::Malformed,
                    format!(
                        "quoted field opened at byte {open} (line {}) is never closed",
                        self.line
                    ),
                )
                .at_record(record, record_start as u64));
            };
            if b == b'\n' {
                self.line += 1;
            }
            if b != b'"' {
                i += 1;
                continue;
            }
            if data.get(i + 1) == Some(&b'"') {
                // A doubled quote: keep one and continue the field.
                let buf = owned.get_or_insert_with(Vec::new);
                buf.extend_from_slice(&data[segment_start..=i]);
                i += 2;
                segment_start = i;
                continue;
            }
            let field = match owned {
                Some(mut buf) => {
                    buf.extend_from_slice(&data[segment_start..i]);
                    Cow::Owned(buf)
                }
                None => Cow::Borrowed(&data[content_start..i]),
            };
            let after = i + 1;
            return match (data.get(after), data.get(after + 1)) {
                (None, _) => {
                    self.pos = after;
                    Ok((field, FieldEnd::Eof))
                }
                (Some(&d), _) if d == self.delimiter => {
                    self.pos = after + 1;
                    Ok((field, FieldEnd::Delimiter))
                }
                (Some(b'\n'), _) => {
                    self.pos = after + 1;
                    self.line += 1;
                    Ok((field, FieldEnd::LineBreak))
                }
                (Some(b'\r'), Some(b'\n')) => {
                    self.pos = after + 2;
                    self.line += 1;
                    Ok((field, FieldEnd::LineBreak))
                }
                (Some(&other), _) => Err(Error::new(
                    ErrorKind::Malformed,
                    format!(
                        "byte {other:#04x} follows the closing quote at byte {i} (line {}); \
                         expected a delimiter or a line break",
                        self.line
                    ),
                )
                .at_record(record, record_start as u64)),
            };
        }
    }

    /// Skips empty lines (`\n` or `\r\n`) before a record.
    fn skip_empty_lines(&mut self) {
        loop {
            match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
                (Some(b'\n'), _) => {
                    self.pos += 1;
                    self.line += 1;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    self.pos += 2;
                    self.line += 1;
                }
                _ => return,
            }
        }
    }
}

enum FieldEnd {
    Delimiter,
    LineBreak,
    Eof,
}

impl<'a> Iterator for DelimitedReader<'a> {
    type Item = Result<Record<'a>>;

    /// Returns the next record; after the first error it returns `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if matches!(self.delimiter, b'"' | b'\r' | b'\n') {
            self.failed = true;
            return Some(Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "delimiter {:#04x} is invalid; it must not be a quote or a line break",
                    self.delimiter
                ),
            )));
        }
        self.skip_empty_lines();
        if self.pos >= self.data.len() {
            return None;
        }
        let result = self.read_record();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}
