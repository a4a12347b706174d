//! Reading a data file into a typed table with polars: CSV (with or without a header) or
//! Parquet, checked against the configured schema.
//!
//! Every problem is reported with the file, and the line and column where there is one. A CSV
//! is first walked with the `csv` crate to check its structure (ragged rows, the header), since
//! polars silently pads short rows; polars then reads the cells, and each column is converted
//! to its kind here so that a bad cell can be named.

use std::io::Cursor;
use std::sync::Arc;

use polars::prelude::*;

use super::schema::{ColumnKind, DatasetSettings, HeaderMode, normalize_category};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{source_name}: the file is empty")]
    Empty { source_name: String },
    #[error("{source_name}: has a header but no data rows")]
    NoRows { source_name: String },
    #[error("{source_name}: not a CSV or Parquet file ({reason})")]
    NotText { source_name: String, reason: String },
    #[error(
        "{source_name}, line {line}: {found} fields where the schema has {expected} ({columns})"
    )]
    Ragged {
        source_name: String,
        line: u64,
        found: usize,
        expected: usize,
        columns: String,
    },
    #[error(
        "{source_name}, line 1: the header does not match the schema; missing: [{missing}], unexpected: [{unexpected}]"
    )]
    HeaderMismatch {
        source_name: String,
        missing: String,
        unexpected: String,
    },
    #[error("{source_name}, line {line}, column `{column}`: `{value}` is not a number")]
    NotNumeric {
        source_name: String,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{source_name}: columns missing from the file: {missing}")]
    MissingColumns {
        source_name: String,
        missing: String,
    },
    #[error("{source_name}, line {line}: malformed CSV: {message}")]
    Csv {
        source_name: String,
        line: u64,
        message: String,
    },
    #[error("{source_name}: cannot read: {message}")]
    Read {
        source_name: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// A data file read against the schema: one column per schema column, in schema order;
/// numeric columns are Float64, categorical ones normalised strings; missing cells are null.
pub struct Table {
    pub frame: DataFrame,
    /// The columns as the file had them (for "columns match set").
    pub file_columns: Vec<String>,
    pub format: Format,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.frame.height()
    }

    pub fn numeric(&self, name: &str) -> Option<&Float64Chunked> {
        self.frame.column(name).ok()?.f64().ok()
    }

    pub fn categorical(&self, name: &str) -> Option<&StringChunked> {
        self.frame.column(name).ok()?.str().ok()
    }
}

const PARQUET_MAGIC: &[u8] = b"PAR1";

pub fn read_table(
    bytes: &[u8],
    source_name: &str,
    schema: &DatasetSettings,
) -> Result<Table, DataError> {
    let source = || source_name.to_owned();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::Empty {
            source_name: source(),
        });
    }
    if bytes.starts_with(PARQUET_MAGIC) {
        return read_parquet(bytes, source_name, schema);
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(DataError::NotText {
            source_name: source(),
            reason: format!("binary content (a NUL byte at offset {at})"),
        });
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(DataError::NotText {
            source_name: source(),
            reason: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        });
    }
    read_csv(bytes, source_name, schema)
}

/// What the structure pass learned: the header's names, when the file has one.
struct Structure {
    header: Option<Vec<String>>,
}

fn check_structure(
    bytes: &[u8],
    source_name: &str,
    schema: &DatasetSettings,
) -> Result<Structure, DataError> {
    let names = schema.column_names();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    let mut header = None;
    let mut data_rows = 0_u64;
    let mut first = true;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| DataError::Csv {
                source_name: source_name.to_owned(),
                line: e.position().map(|p| p.line()).unwrap_or(0),
                message: e.to_string(),
            })?;
        if !more {
            break;
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if first {
            first = false;
            let fields: Vec<String> = record.iter().map(|f| f.trim().to_owned()).collect();
            if is_header(&fields, schema) {
                check_header(&fields, &names, source_name)?;
                header = Some(fields);
                continue;
            }
        }
        if record.len() != names.len() {
            return Err(DataError::Ragged {
                source_name: source_name.to_owned(),
                line,
                found: record.len(),
                expected: names.len(),
                columns: names.join(" "),
            });
        }
        data_rows += 1;
    }
    if data_rows == 0 {
        return Err(if header.is_some() {
            DataError::NoRows {
                source_name: source_name.to_owned(),
            }
        } else {
            DataError::Empty {
                source_name: source_name.to_owned(),
            }
        });
    }
    Ok(Structure { header })
}

/// Whether the first row is a header: by configuration, or ("auto") when it names the schema's
/// columns or is mostly words where numbers belong.
pub(crate) fn is_header(fields: &[String], schema: &DatasetSettings) -> bool {
    match schema.header {
        HeaderMode::Present => true,
        HeaderMode::Absent => false,
        HeaderMode::Auto => {
            if fields.iter().any(|f| schema.column(f).is_some()) {
                return true;
            }
            let wordy = fields
                .iter()
                .filter(|f| !schema.is_missing(f) && f.parse::<f64>().is_err())
                .count();
            wordy * 2 >= fields.len().max(1)
        }
    }
}

pub(crate) fn check_header(
    fields: &[String],
    names: &[String],
    source_name: &str,
) -> Result<(), DataError> {
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| !fields.contains(n))
        .map(String::as_str)
        .collect();
    let mut unexpected: Vec<String> = fields
        .iter()
        .filter(|f| !names.contains(f))
        .map(|f| f.chars().take(40).collect())
        .collect();
    // A column named twice: the ambiguous one may be the out-of-range one.
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        if !seen.insert(f.as_str()) {
            unexpected.push(format!(
                "{} (repeated)",
                f.chars().take(40).collect::<String>()
            ));
        }
    }
    // A bounded message, whatever the header.
    if unexpected.len() > 10 {
        let more = unexpected.len() - 10;
        unexpected.truncate(10);
        unexpected.push(format!("and {more} more"));
    }
    if missing.is_empty() && unexpected.is_empty() && fields.len() == names.len() {
        return Ok(());
    }
    Err(DataError::HeaderMismatch {
        source_name: source_name.to_owned(),
        missing: missing.join(", "),
        unexpected: unexpected.join(", "),
    })
}

fn read_csv(bytes: &[u8], source_name: &str, schema: &DatasetSettings) -> Result<Table, DataError> {
    let structure = check_structure(bytes, source_name, schema)?;
    let file_columns = structure
        .header
        .clone()
        .unwrap_or_else(|| schema.column_names());
    let has_header = structure.header.is_some();
    // Fast path: polars parses the numeric columns itself. A cell it cannot parse fails the
    // whole read, and the text path below then finds and names that cell.
    let numeric_or_text = |name: &str| match schema.column(name).map(|c| c.kind) {
        Some(ColumnKind::Numeric) => DataType::Float64,
        _ => DataType::String,
    };
    if let Ok(typed) = csv_frame(bytes, &file_columns, has_header, schema, numeric_or_text) {
        if let Some(table) = typed_csv_table(&typed, &file_columns, schema) {
            return Ok(table);
        }
    }
    // Every cell as text; the kinds are applied in `typed_frame`, where a bad cell can be named.
    let raw = csv_frame(bytes, &file_columns, has_header, schema, |_| {
        DataType::String
    })
    .map_err(|e| DataError::Read {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })?;
    let first_data_line = if has_header { 2 } else { 1 };
    typed_frame(
        &raw,
        file_columns,
        Format::Csv,
        source_name,
        schema,
        first_data_line,
    )
}

fn csv_frame(
    bytes: &[u8],
    file_columns: &[String],
    has_header: bool,
    schema: &DatasetSettings,
    dtype: impl Fn(&str) -> DataType,
) -> PolarsResult<DataFrame> {
    let fields = Schema::from_iter(
        file_columns
            .iter()
            .map(|n| Field::new(n.as_str().into(), dtype(n))),
    );
    let nulls = NullValues::AllColumns(
        schema
            .missing_values
            .iter()
            .map(|m| m.as_str().into())
            .collect(),
    );
    CsvReadOptions::default()
        .with_has_header(has_header)
        .with_schema(Some(Arc::new(fields)))
        .with_parse_options(CsvParseOptions::default().with_null_values(Some(nulls)))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
}

/// The fast path's table, or `None` when a numeric cell is not finite (the text path then
/// reports it).
fn typed_csv_table(
    frame: &DataFrame,
    file_columns: &[String],
    schema: &DatasetSettings,
) -> Option<Table> {
    let mut columns = Vec::with_capacity(schema.columns.len());
    for spec in &schema.columns {
        let column = frame.column(&spec.name).ok()?;
        columns.push(match spec.kind {
            ColumnKind::Numeric => {
                if column.f64().ok()?.iter().flatten().any(|v| !v.is_finite()) {
                    return None;
                }
                column.clone()
            }
            ColumnKind::Categorical => categorical_column(&spec.name, column.str().ok()?, schema),
        });
    }
    Some(Table {
        frame: DataFrame::new(frame.height(), columns).ok()?,
        file_columns: file_columns.to_vec(),
        format: Format::Csv,
    })
}

/// Categorical cells: trimmed, missing tokens as null, numbers in one spelling.
fn categorical_column(name: &str, text: &StringChunked, schema: &DatasetSettings) -> Column {
    StringChunked::from_iter_options(
        name.into(),
        text.iter().map(|cell| {
            cell.map(str::trim)
                .filter(|v| !schema.is_missing(v))
                .map(normalize_category)
        }),
    )
    .into_column()
}

fn read_parquet(
    bytes: &[u8],
    source_name: &str,
    schema: &DatasetSettings,
) -> Result<Table, DataError> {
    let raw = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|e| DataError::Read {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
    let file_columns: Vec<String> = raw
        .get_column_names()
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    let missing: Vec<String> = schema
        .column_names()
        .into_iter()
        .filter(|n| !file_columns.contains(n))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::MissingColumns {
            source_name: source_name.to_owned(),
            missing: missing.join(", "),
        });
    }
    if raw.height() == 0 {
        return Err(DataError::NoRows {
            source_name: source_name.to_owned(),
        });
    }
    // Parquet cells are typed already; go through text so both formats share one conversion.
    let mut text_columns = Vec::with_capacity(schema.columns.len());
    for spec in &schema.columns {
        let column = raw
            .column(&spec.name)
            .and_then(|c| c.cast(&DataType::String))
            .map_err(|e| DataError::Read {
                source_name: source_name.to_owned(),
                message: format!("column `{}`: {e}", spec.name),
            })?;
        text_columns.push(column);
    }
    let text = DataFrame::new(raw.height(), text_columns).map_err(|e| DataError::Read {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })?;
    typed_frame(&text, file_columns, Format::Parquet, source_name, schema, 1)
}

/// Converts the text columns to the schema's kinds, in schema order.
fn typed_frame(
    raw: &DataFrame,
    file_columns: Vec<String>,
    format: Format,
    source_name: &str,
    schema: &DatasetSettings,
    first_data_line: u64,
) -> Result<Table, DataError> {
    let read_err = |message: String| DataError::Read {
        source_name: source_name.to_owned(),
        message,
    };
    let mut columns = Vec::with_capacity(schema.columns.len());
    for spec in &schema.columns {
        let text = raw
            .column(&spec.name)
            .and_then(|c| c.str())
            .map_err(|e| read_err(format!("column `{}`: {e}", spec.name)))?;
        let name: PlSmallStr = spec.name.as_str().into();
        let column = match spec.kind {
            ColumnKind::Numeric => {
                let mut values = Vec::with_capacity(text.len());
                for (i, cell) in text.iter().enumerate() {
                    values.push(match cell.map(str::trim) {
                        None => None,
                        Some(v) if schema.is_missing(v) => None,
                        Some(v) => match v.parse::<f64>() {
                            Ok(x) if x.is_finite() => Some(x),
                            _ => {
                                return Err(DataError::NotNumeric {
                                    source_name: source_name.to_owned(),
                                    line: first_data_line + i as u64,
                                    column: spec.name.clone(),
                                    value: v.chars().take(40).collect(),
                                });
                            }
                        },
                    });
                }
                Float64Chunked::from_iter_options(name, values.into_iter()).into_column()
            }
            ColumnKind::Categorical => categorical_column(&spec.name, text, schema),
        };
        columns.push(column);
    }
    let frame = DataFrame::new(raw.height(), columns).map_err(|e| read_err(e.to_string()))?;
    Ok(Table {
        frame,
        file_columns,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> DatasetSettings {
        crate::config::Settings::defaults()
            .expect("defaults")
            .dataset
    }

    const ROW: &str = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n";

    #[test]
    fn reads_uci_rows_without_a_header() {
        let bytes = format!("{ROW}67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,?,3.0,2\n");
        let table = read_table(bytes.as_bytes(), "t.csv", &schema()).expect("reads");
        assert_eq!(table.rows(), 2);
        assert_eq!(table.numeric("age").expect("age").get(1), Some(67.0));
        assert_eq!(table.numeric("ca").expect("ca").get(1), None);
        assert_eq!(table.categorical("cp").expect("cp").get(0), Some("1"));
    }

    #[test]
    fn the_text_path_catches_what_the_fast_path_passes_on() {
        let s = schema();
        // Padded cells and a padded missing token are read all the same.
        let padded = ROW
            .replacen("63.0", " 63.0 ", 1)
            .replacen("6.0,0", " ? ,0", 1);
        let table = read_table(padded.as_bytes(), "p.csv", &s).expect("reads");
        assert_eq!(table.numeric("age").expect("age").get(0), Some(63.0));
        assert_eq!(table.categorical("thal").expect("thal").get(0), None);
        // A number polars would take but that is not finite is refused with its place.
        let nan = format!("{ROW}{}", ROW.replacen("233.0", "NaN", 1));
        let err = read_table(nan.as_bytes(), "n.csv", &s)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("n.csv, line 2, column `chol`: `NaN` is not a number")
        );
    }

    #[test]
    fn reads_a_header_in_any_order() {
        let names = schema().column_names();
        let mut header = names.clone();
        header.swap(0, 1);
        let row: Vec<&str> = ROW.trim().split(',').collect();
        let mut swapped = row.clone();
        swapped.swap(0, 1);
        let bytes = format!("{}\n{}\n", header.join(","), swapped.join(","));
        let table = read_table(bytes.as_bytes(), "t.csv", &schema()).expect("reads");
        assert_eq!(table.numeric("age").expect("age").get(0), Some(63.0));
    }

    #[test]
    fn bad_input_names_file_line_and_column() {
        let s = schema();
        let err = |bytes: &[u8]| {
            read_table(bytes, "f.csv", &s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };

        assert!(err(b"").contains("f.csv: the file is empty"));
        assert!(err(b"PK\x03\x04\x00\x00binary").contains("not a CSV"));
        let ragged = err(format!("{ROW}1,2,3\n").as_bytes());
        assert!(
            ragged.contains("line 2") && ragged.contains("3 fields"),
            "{ragged}"
        );
        let header = err(format!("age,sex,colour\n{ROW}").as_bytes());
        assert!(
            header.contains("header does not match") && header.contains("colour"),
            "{header}"
        );
        let bad = err(format!("{ROW}{}", ROW.replacen("233.0", "high", 1)).as_bytes());
        assert!(
            bad.contains("line 2, column `chol`: `high` is not a number"),
            "{bad}"
        );
    }
}
