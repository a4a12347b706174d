//! `steward data infer-schema`: drafts the `[dataset]` configuration from a file. polars infers
//! the column types; a numeric column with few distinct whole values is drafted as categorical.

use std::io::Cursor;

use polars::prelude::*;

use super::schema::{
    ColumnKind, ColumnSpec, DatasetSettings, HeaderMode, TargetRule, normalize_category,
};
use super::table::DataError;

/// A numeric column with at most this many distinct whole values is drafted as categorical.
const MAX_CODES: usize = 10;

/// Drafts a schema from a CSV or Parquet file. Without a header, columns are named
/// `column_1`…; the last column is taken as the target.
pub fn infer_schema(
    bytes: &[u8],
    source_name: &str,
    missing_values: &[String],
) -> Result<DatasetSettings, DataError> {
    let read_err = |e: PolarsError| DataError::Read {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::Empty {
            source_name: source_name.to_owned(),
        });
    }
    let frame = if bytes.starts_with(b"PAR1") {
        ParquetReader::new(Cursor::new(bytes))
            .finish()
            .map_err(read_err)?
    } else {
        if bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
            return Err(DataError::NotText {
                source_name: source_name.to_owned(),
                reason: "binary content".into(),
            });
        }
        let nulls =
            NullValues::AllColumns(missing_values.iter().map(|m| m.as_str().into()).collect());
        CsvReadOptions::default()
            .with_has_header(looks_like_header(bytes, missing_values))
            .with_infer_schema_length(Some(100_000))
            .with_parse_options(CsvParseOptions::default().with_null_values(Some(nulls)))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()
            .map_err(read_err)?
    };
    let mut columns = Vec::new();
    for (i, column) in frame.columns().iter().enumerate() {
        let name = match column.name().as_str() {
            n if n.starts_with("column_") || n.is_empty() => format!("column_{}", i + 1),
            n => n.to_owned(),
        };
        let series = column.as_materialized_series();
        let spec = if series.dtype().is_primitive_numeric() {
            let values = series.cast(&DataType::Float64).map_err(read_err)?;
            let ca = values.f64().map_err(read_err)?;
            let distinct: std::collections::BTreeSet<i64> = ca
                .iter()
                .flatten()
                .filter(|v| v.fract() == 0.0)
                .map(|v| v as i64)
                .collect();
            let all_whole = ca.iter().flatten().all(|v| v.fract() == 0.0);
            if all_whole && distinct.len() <= MAX_CODES && !distinct.is_empty() {
                ColumnSpec {
                    name,
                    kind: ColumnKind::Categorical,
                    min: None,
                    max: None,
                    categories: Some(distinct.iter().map(i64::to_string).collect()),
                    description: String::new(),
                }
            } else {
                ColumnSpec {
                    name,
                    kind: ColumnKind::Numeric,
                    min: Some(ChunkAgg::min(ca).unwrap_or(0.0)),
                    max: Some(ChunkAgg::max(ca).unwrap_or(0.0)),
                    categories: None,
                    description: String::new(),
                }
            }
        } else {
            let text = series.cast(&DataType::String).map_err(read_err)?;
            let categories: std::collections::BTreeSet<String> = text
                .str()
                .map_err(read_err)?
                .iter()
                .flatten()
                .map(normalize_category)
                .collect();
            ColumnSpec {
                name,
                kind: ColumnKind::Categorical,
                min: None,
                max: None,
                categories: Some(categories.into_iter().collect()),
                description: String::new(),
            }
        };
        columns.push(spec);
    }
    let target = columns.last().map(|c| c.name.clone()).unwrap_or_default();
    Ok(DatasetSettings {
        name: "dataset".into(),
        suite: "dataset".into(),
        suites_dir: "config/expectations".into(),
        bootstrap_file: String::new(),
        header: HeaderMode::Auto,
        missing_values: missing_values.to_vec(),
        upload_limit_bytes: 512 * 1024 * 1024,
        target,
        target_rule: TargetRule::GreaterThan(0.0),
        columns,
    })
}

/// The first line is a header when most of its fields are not numbers.
fn looks_like_header(bytes: &[u8], missing: &[String]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    let fields: Vec<&str> = line.trim().split(',').map(str::trim).collect();
    let wordy = fields
        .iter()
        .filter(|f| !missing.iter().any(|m| m == *f) && f.parse::<f64>().is_err())
        .count();
    wordy * 2 >= fields.len().max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn drafts_the_uci_layout() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/uci-heart-disease/processed.cleveland.data"
        ))
        .expect("bundled data");
        let schema = super::infer_schema(&bytes, "cleveland", &["?".into()]).expect("infers");
        assert_eq!(schema.columns.len(), 14);
        assert_eq!(schema.target, "column_14");
        let cp = &schema.columns[2];
        assert_eq!(
            cp.categories.as_deref(),
            Some(&["1".to_string(), "2".into(), "3".into(), "4".into()][..])
        );
        let chol = &schema.columns[4];
        assert_eq!((chol.min, chol.max), (Some(126.0), Some(564.0)));
    }
}
