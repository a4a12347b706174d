//! Reading a CSV file row by row against the schema, without holding the file or a frame of
//! it: for summaries of large files (drift reports), where [`super::table::read_table`] would
//! hold the bytes, a polars frame and a string per categorical cell at once.
//!
//! The rules are `read_table`'s for the common case: the header by `dataset.header` (auto: a first
//! row naming the schema's columns, or mostly words), cells trimmed, the missing tokens and empty
//! cells missing, numbers finite. Anything else (Parquet, a ragged row, a cell that is not a
//! number, text that is not UTF-8) ends the scan with [`Scan::Unusual`], and the caller reads the
//! file with `read_table`, which names the problem (or reads it, Parquet).

use std::io::Read;

use super::schema::{ColumnKind, DatasetSettings};
use super::table::{check_header, is_header};
use crate::data::table::DataError;

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
    /// The file needs `read_table` (see the module doc).
    Unusual,
    /// The header names other columns than the schema's.
    Header(DataError),
    /// The reader failed.
    Io(std::io::Error),
}

/// Calls `row` with every data row's cells in schema column order; returns the number of data
/// rows.
pub fn scan_csv<R: Read>(
    reader: R,
    source_name: &str,
    schema: &DatasetSettings,
    mut row: impl FnMut(&[Cell<'_>]),
) -> Result<u64, Scan> {
    let names = schema.column_names();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    // file column → schema column
    let mut order: Vec<usize> = (0..names.len()).collect();
    let kinds: Vec<ColumnKind> = schema.columns.iter().map(|c| c.kind).collect();
    let mut first = true;
    let mut rows = 0_u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(io) => Scan::Io(io),
                    _ => Scan::Unusual,
                });
            }
        }
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
                return Err(Scan::Unusual);
            };
            if is_header(&fields, schema) {
                check_header(&fields, &names, source_name).map_err(Scan::Header)?;
                order = fields
                    .iter()
                    .map(|f| names.iter().position(|n| n == f).unwrap_or(0))
                    .collect();
                continue;
            }
        }
        if record.len() != names.len() {
            return Err(Scan::Unusual);
        }
        let mut cells = vec![Cell::Missing; names.len()];
        for (i, raw) in record.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(Scan::Unusual);
            };
            let text = text.trim();
            let at = order.get(i).copied().unwrap_or(i);
            let cell = if text.is_empty() || schema.is_missing(text) {
                Cell::Missing
            } else {
                match kinds.get(at) {
                    Some(ColumnKind::Numeric) => match text.parse::<f64>() {
                        Ok(v) if v.is_finite() => Cell::Num(v),
                        _ => return Err(Scan::Unusual),
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
    Ok(rows)
}
