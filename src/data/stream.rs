//! Reading a CSV file row by row against the schema, without holding the file or a frame of
//! it: for summaries of large files (drift reports), where [`super::table::read_table`] would
//! hold the bytes, a polars frame and a string per categorical cell at once.
//!
//! The rules are `read_table`'s: the header by `dataset.header` (auto: a first row naming the
//! schema's columns, or mostly words), cells trimmed, the missing tokens and empty cells
//! missing, numbers finite, every row as wide as the schema. A row that breaks them ends the
//! scan with the same error `read_table` gives, naming its line (never re-reading the file); a
//! line longer than [`MAX_LINE_BYTES`] ends it too. Parquet is not streamed: [`Scan::Unusual`]
//! tells the caller to read it whole. With `target_optional`, the target column may be left out
//! (a header without it, or rows one field short): drift reports need no labels.

use std::io::Read;

use super::schema::{ColumnKind, DatasetSettings};
use super::table::{check_header, is_header};
use crate::data::table::DataError;

/// The longest line a scan takes (a runaway line, `/dev/zero` say, is an error, not memory).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One cell, typed by its schema column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Missing,
    Num(f64),
    /// A categorical cell as written (trimmed); normalise with
    /// [`super::schema::normalize_category`] before comparing.
    Text(&'a str),
}

/// Why a scan stopped early.
#[derive(Debug)]
pub enum Scan {
    /// Parquet: read it with `read_table`.
    Unusual,
    /// The file breaks the schema (the error names the line).
    Bad(DataError),
    /// The reader failed.
    Io(std::io::Error),
}

/// Passes reads through, failing once a line runs past `MAX_LINE_BYTES` (naming its line).
struct LineCap<R> {
    inner: R,
    since_newline: usize,
    line: u64,
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        let too_long = |line: u64| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {line}: longer than {MAX_LINE_BYTES} bytes"),
            )
        };
        // Whole-chunk scans (they vectorise): a line wholly inside a chunk shorter than the cap
        // is shorter than the cap, so only the ends of the chunk need measuring.
        match (
            chunk.iter().position(|&b| b == b'\n'),
            chunk.iter().rposition(|&b| b == b'\n'),
        ) {
            (Some(first), Some(last)) if n <= MAX_LINE_BYTES => {
                if self.since_newline + first > MAX_LINE_BYTES {
                    return Err(too_long(self.line + 1));
                }
                self.line += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                self.since_newline = n - last - 1;
            }
            (None, _) => {
                self.since_newline += n;
                if self.since_newline > MAX_LINE_BYTES {
                    return Err(too_long(self.line + 1));
                }
            }
            _ => {
                for &b in chunk {
                    if b == b'\n' {
                        self.since_newline = 0;
                        self.line += 1;
                    } else {
                        self.since_newline += 1;
                        if self.since_newline > MAX_LINE_BYTES {
                            return Err(too_long(self.line + 1));
                        }
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Calls `row` with every data row's cells in schema column order (a left-out target is
/// `Missing`); returns the number of data rows.
pub fn scan_csv<R: Read>(
    reader: R,
    source_name: &str,
    schema: &DatasetSettings,
    target_optional: bool,
    mut row: impl FnMut(&[Cell<'_>]),
) -> Result<u64, Scan> {
    let names = schema.column_names();
    let target_at = names.iter().position(|n| *n == schema.target);
    // Parquet is told by its first bytes, before any line is read.
    let mut reader = std::io::BufReader::new(reader);
    if std::io::BufRead::fill_buf(&mut reader)
        .map_err(Scan::Io)?
        .starts_with(b"PAR1")
    {
        return Err(Scan::Unusual);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(LineCap {
            inner: reader,
            since_newline: 0,
            line: 0,
        });
    let mut record = csv::ByteRecord::new();
    // file column → schema column; set by the header, or by the first row's width.
    let mut order: Option<Vec<usize>> = None;
    let kinds: Vec<ColumnKind> = schema.columns.iter().map(|c| c.kind).collect();
    let mut first = true;
    let mut rows = 0_u64;
    let bad = |e: DataError| Scan::Bad(e);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                        bad(DataError::Read {
                            source_name: source_name.to_owned(),
                            message: io.to_string(),
                        })
                    }
                    csv::ErrorKind::Io(io) => Scan::Io(io),
                    other => bad(DataError::Csv {
                        source_name: source_name.to_owned(),
                        line,
                        message: format!("{other:?}").chars().take(200).collect(),
                    }),
                });
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if first {
            first = false;
            if record.as_slice().starts_with(b"PAR1") {
                return Err(Scan::Unusual);
            }
            let fields: Option<Vec<String>> = record
                .iter()
                .map(|f| std::str::from_utf8(f).ok().map(|s| s.trim().to_owned()))
                .collect();
            let Some(fields) = fields else {
                return Err(bad(not_text(source_name, line)));
            };
            if is_header(&fields, schema) {
                let without_target = target_optional
                    && !fields.contains(&schema.target)
                    && fields.len() + 1 == names.len();
                if without_target {
                    let others: Vec<String> = names
                        .iter()
                        .filter(|n| **n != schema.target)
                        .cloned()
                        .collect();
                    check_header(&fields, &others, source_name).map_err(bad)?;
                } else {
                    check_header(&fields, &names, source_name).map_err(bad)?;
                }
                order = Some(
                    fields
                        .iter()
                        .map(|f| names.iter().position(|n| n == f).unwrap_or(0))
                        .collect(),
                );
                continue;
            }
        }
        let order_now = order.get_or_insert_with(|| {
            if target_optional && record.len() + 1 == names.len() {
                // Rows without the target: the other columns, in schema order.
                (0..names.len()).filter(|i| Some(*i) != target_at).collect()
            } else {
                (0..names.len()).collect()
            }
        });
        if record.len() != order_now.len() {
            return Err(bad(DataError::Ragged {
                source_name: source_name.to_owned(),
                line,
                found: record.len(),
                expected: order_now.len(),
                columns: names.join(" "),
            }));
        }
        let mut cells = vec![Cell::Missing; names.len()];
        for (i, raw) in record.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(bad(not_text(source_name, line)));
            };
            let text = text.trim();
            let at = order_now.get(i).copied().unwrap_or(i);
            let cell = if text.is_empty() || schema.is_missing(text) {
                Cell::Missing
            } else {
                match kinds.get(at) {
                    Some(ColumnKind::Numeric) => match text.parse::<f64>() {
                        Ok(v) if v.is_finite() => Cell::Num(v),
                        _ => {
                            return Err(bad(DataError::NotNumeric {
                                source_name: source_name.to_owned(),
                                line,
                                column: names.get(at).cloned().unwrap_or_default(),
                                value: text.chars().take(40).collect(),
                            }));
                        }
                    },
                    _ => Cell::Text(text),
                }
            };
            if let Some(slot) = cells.get_mut(at) {
                *slot = cell;
            }
        }
        row(&cells);
        rows += 1;
    }
    if rows == 0 {
        return Err(bad(if order.is_some() {
            DataError::NoRows {
                source_name: source_name.to_owned(),
            }
        } else {
            DataError::Empty {
                source_name: source_name.to_owned(),
            }
        }));
    }
    Ok(rows)
}

fn not_text(source_name: &str, line: u64) -> DataError {
    DataError::NotText {
        source_name: source_name.to_owned(),
        reason: format!("not UTF-8 text (line {line})"),
    }
}
