//! Expectation suites in Great Expectations' JSON shape, and their evaluation against a table.
//!
//! A suite is `{"name", "expectations": [{"type", "kwargs", "meta"}]}` (GX 0.x's
//! `expectation_suite_name` and `expectation_type` are accepted too). `meta.critical = true`
//! marks an expectation whose failure blocks training. Results follow GX's validation result:
//! per expectation `success`, `observed_value`, `unexpected_count` and `unexpected_percent`
//! (over non-missing values, as GX counts them), and up to 20 unexpected values with their
//! 0-based row indices; overall `statistics`.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::profile::TableProfile;
use super::schema::{ColumnKind, DatasetSettings, normalize_category};
use super::table::Table;

/// Unexpected values listed per expectation, as GX's `partial_unexpected_list`.
pub const PARTIAL_LIMIT: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("expectation suite {source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("expectation suite {source_name}, expectation #{index} ({kind}): {message}")]
    Expectation {
        source_name: String,
        index: usize,
        kind: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub expectations: Vec<Expectation>,
    /// BLAKE3 of the suite file, stored with every result.
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct Expectation {
    pub check: Check,
    pub critical: bool,
    /// `{type, kwargs, meta}` as written, echoed in the result like GX's `expectation_config`.
    pub config: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Mean,
    Stdev,
    Min,
    Max,
}

#[derive(Debug, Clone)]
pub enum Check {
    ColumnsMatchSet {
        column_set: Vec<String>,
        exact_match: bool,
    },
    ColumnExists {
        column: String,
    },
    RowCountBetween {
        min: Option<f64>,
        max: Option<f64>,
    },
    NotNull {
        column: String,
        mostly: f64,
    },
    Between {
        column: String,
        min: Option<f64>,
        max: Option<f64>,
        mostly: f64,
    },
    InSet {
        column: String,
        values: Vec<String>,
        mostly: f64,
    },
    Unique {
        column: String,
        mostly: f64,
    },
    StatisticBetween {
        statistic: Statistic,
        column: String,
        min: Option<f64>,
        max: Option<f64>,
    },
}

impl Check {
    pub fn column(&self) -> Option<&str> {
        match self {
            Check::ColumnsMatchSet { .. } | Check::RowCountBetween { .. } => None,
            Check::ColumnExists { column }
            | Check::NotNull { column, .. }
            | Check::Between { column, .. }
            | Check::InSet { column, .. }
            | Check::Unique { column, .. }
            | Check::StatisticBetween { column, .. } => Some(column),
        }
    }
}

#[derive(Deserialize)]
struct RawSuite {
    #[serde(alias = "expectation_suite_name")]
    name: String,
    expectations: Vec<RawExpectation>,
}

#[derive(Deserialize)]
struct RawExpectation {
    #[serde(rename = "type", alias = "expectation_type")]
    kind: String,
    #[serde(default)]
    kwargs: serde_json::Map<String, Value>,
    #[serde(default)]
    meta: serde_json::Map<String, Value>,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsMatchSetArgs {
    column_set: Vec<String>,
    #[serde(default = "yes")]
    exact_match: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnArgs {
    column: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeArgs {
    min_value: Option<f64>,
    max_value: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MostlyArgs {
    column: String,
    #[serde(default = "one")]
    mostly: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BetweenArgs {
    column: String,
    min_value: Option<f64>,
    max_value: Option<f64>,
    #[serde(default = "one")]
    mostly: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InSetArgs {
    column: String,
    value_set: Vec<Value>,
    #[serde(default = "one")]
    mostly: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatisticArgs {
    column: String,
    min_value: Option<f64>,
    max_value: Option<f64>,
}

/// The expectation types Steward evaluates.
pub const KNOWN_TYPES: &[&str] = &[
    "expect_table_columns_to_match_set",
    "expect_column_to_exist",
    "expect_table_row_count_to_be_between",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_column_mean_to_be_between",
    "expect_column_stdev_to_be_between",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
];

fn parse_check(kind: &str, kwargs: Value) -> Result<Check, String> {
    fn args<T: for<'de> Deserialize<'de>>(kwargs: Value) -> Result<T, String> {
        serde_json::from_value(kwargs).map_err(|e| format!("bad kwargs: {e}"))
    }
    let check_mostly = |mostly: f64| {
        if (0.0..=1.0).contains(&mostly) {
            Ok(mostly)
        } else {
            Err(format!(
                "bad kwargs: mostly must be between 0 and 1, not {mostly}"
            ))
        }
    };
    let need_bound = |min: Option<f64>, max: Option<f64>| {
        if min.is_none() && max.is_none() {
            Err("bad kwargs: give min_value, max_value or both".to_owned())
        } else {
            Ok(())
        }
    };
    let statistic = |statistic, kwargs| -> Result<Check, String> {
        let a: StatisticArgs = args(kwargs)?;
        need_bound(a.min_value, a.max_value)?;
        Ok(Check::StatisticBetween {
            statistic,
            column: a.column,
            min: a.min_value,
            max: a.max_value,
        })
    };
    match kind {
        "expect_table_columns_to_match_set" => {
            let a: ColumnsMatchSetArgs = args(kwargs)?;
            Ok(Check::ColumnsMatchSet {
                column_set: a.column_set,
                exact_match: a.exact_match,
            })
        }
        "expect_column_to_exist" => {
            let a: ColumnArgs = args(kwargs)?;
            Ok(Check::ColumnExists { column: a.column })
        }
        "expect_table_row_count_to_be_between" => {
            let a: RangeArgs = args(kwargs)?;
            need_bound(a.min_value, a.max_value)?;
            Ok(Check::RowCountBetween {
                min: a.min_value,
                max: a.max_value,
            })
        }
        "expect_column_values_to_not_be_null" => {
            let a: MostlyArgs = args(kwargs)?;
            Ok(Check::NotNull {
                column: a.column,
                mostly: check_mostly(a.mostly)?,
            })
        }
        "expect_column_values_to_be_between" => {
            let a: BetweenArgs = args(kwargs)?;
            need_bound(a.min_value, a.max_value)?;
            Ok(Check::Between {
                column: a.column,
                min: a.min_value,
                max: a.max_value,
                mostly: check_mostly(a.mostly)?,
            })
        }
        "expect_column_values_to_be_in_set" => {
            let a: InSetArgs = args(kwargs)?;
            let values = a
                .value_set
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(normalize_category(s)),
                    Value::Number(n) => Ok(normalize_category(&n.to_string())),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(format!("bad kwargs: value_set holds {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Check::InSet {
                column: a.column,
                values,
                mostly: check_mostly(a.mostly)?,
            })
        }
        "expect_column_values_to_be_unique" => {
            let a: MostlyArgs = args(kwargs)?;
            Ok(Check::Unique {
                column: a.column,
                mostly: check_mostly(a.mostly)?,
            })
        }
        "expect_column_mean_to_be_between" => statistic(Statistic::Mean, kwargs),
        "expect_column_stdev_to_be_between" => statistic(Statistic::Stdev, kwargs),
        "expect_column_min_to_be_between" => statistic(Statistic::Min, kwargs),
        "expect_column_max_to_be_between" => statistic(Statistic::Max, kwargs),
        other => Err(format!(
            "unknown expectation type `{other}`; known: {}",
            KNOWN_TYPES.join(", ")
        )),
    }
}

impl Suite {
    pub fn parse(json: &str, source_name: &str) -> Result<Suite, SuiteError> {
        let raw: RawSuite = serde_json::from_str(json).map_err(|e| SuiteError::Parse {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        if raw.expectations.is_empty() {
            return Err(SuiteError::Parse {
                source_name: source_name.to_owned(),
                message: "has no expectations".into(),
            });
        }
        let mut expectations = Vec::with_capacity(raw.expectations.len());
        for (index, e) in raw.expectations.into_iter().enumerate() {
            let config = json!({ "type": e.kind, "kwargs": e.kwargs, "meta": e.meta });
            let check = parse_check(&e.kind, Value::Object(e.kwargs)).map_err(|message| {
                SuiteError::Expectation {
                    source_name: source_name.to_owned(),
                    index,
                    kind: e.kind.clone(),
                    message,
                }
            })?;
            let critical = match e.meta.get("critical") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(SuiteError::Expectation {
                        source_name: source_name.to_owned(),
                        index,
                        kind: e.kind,
                        message: format!("meta.critical must be true or false, not {other}"),
                    });
                }
            };
            expectations.push(Expectation {
                check,
                critical,
                config,
            });
        }
        Ok(Suite {
            name: raw.name,
            expectations,
            hash: blake3::hash(json.as_bytes()).to_hex().to_string(),
        })
    }

    /// Loads `<dir>/<name>.json`. The name is an identifier (letters, digits, `_`, `-`, `.`,
    /// not starting with `.`), never a path; errors name the suite, not the server's folders.
    pub fn load(dir: &Path, name: &str) -> Result<Suite, SuiteError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(SuiteError::Parse {
                source_name: "(name refused)".into(),
                message:
                    "a suite name is 1-64 letters, digits, '_', '-' or '.', not starting with '.'"
                        .into(),
            });
        }
        let shown = format!("`{name}`");
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| SuiteError::Parse {
            source_name: shown.clone(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => "no such suite".to_owned(),
                _ => "cannot be read".to_owned(),
            },
        })?;
        Suite::parse(&text, &shown)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResultDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexpected_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_unexpected_list: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_unexpected_index_list: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExceptionInfo {
    pub raised_exception: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception_message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectationResult {
    pub expectation_config: Value,
    pub success: bool,
    pub result: ResultDetail,
    pub exception_info: ExceptionInfo,
}

impl ExpectationResult {
    pub fn kind(&self) -> &str {
        self.expectation_config
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("?")
    }

    pub fn column(&self) -> Option<&str> {
        self.expectation_config
            .pointer("/kwargs/column")
            .and_then(Value::as_str)
    }

    pub fn is_critical(&self) -> bool {
        self.expectation_config.pointer("/meta/critical") == Some(&Value::Bool(true))
    }

    /// `type(column)`, for messages.
    pub fn label(&self) -> String {
        match self.column() {
            Some(c) => format!("{}({c})", self.kind()),
            None => self.kind().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statistics {
    pub evaluated_expectations: u64,
    pub successful_expectations: u64,
    pub unsuccessful_expectations: u64,
    pub success_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationResult {
    pub success: bool,
    pub statistics: Statistics,
    pub results: Vec<ExpectationResult>,
    pub meta: Value,
}

impl ValidationResult {
    /// The failed expectations marked critical.
    pub fn critical_failures(&self) -> Vec<&ExpectationResult> {
        self.results
            .iter()
            .filter(|r| !r.success && r.is_critical())
            .collect()
    }
}

/// One cell, as the checks see it.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Num(f64),
    Text(&'a str),
}

impl Cell<'_> {
    fn as_f64(self) -> Option<f64> {
        match self {
            Cell::Num(x) => Some(x),
            Cell::Text(s) => s.parse().ok(),
        }
    }

    fn key(self) -> String {
        match self {
            Cell::Num(x) => normalize_category(&x.to_string()),
            Cell::Text(s) => s.to_owned(),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Cell::Num(x) => json!(x),
            Cell::Text(s) => json!(s),
        }
    }
}

type Cells<'a> = Box<dyn Iterator<Item = Option<Cell<'a>>> + 'a>;

fn cells<'a>(table: &'a Table, column: &str) -> Option<Cells<'a>> {
    if let Some(ca) = table.numeric(column) {
        return Some(Box::new(ca.iter().map(|v| v.map(Cell::Num))));
    }
    table
        .categorical(column)
        .map(|ca| Box::new(ca.iter().map(|v| v.map(Cell::Text))) as Cells<'a>)
}

/// GX's column-map rule: each non-missing value passes or not; success when the passing share
/// of non-missing values is at least `mostly`.
fn column_map<'a>(
    cells: Cells<'a>,
    mostly: f64,
    mut unexpected: impl FnMut(Cell<'a>) -> bool,
) -> (bool, ResultDetail) {
    let mut element_count = 0_u64;
    let mut missing = 0_u64;
    let mut bad = 0_u64;
    let mut values = Vec::new();
    let mut indices = Vec::new();
    for (i, cell) in cells.enumerate() {
        element_count += 1;
        match cell {
            None => missing += 1,
            Some(c) if unexpected(c) => {
                bad += 1;
                if values.len() < PARTIAL_LIMIT {
                    values.push(c.to_json());
                    indices.push(i as u64);
                }
            }
            Some(_) => {}
        }
    }
    let present = element_count - missing;
    let unexpected_percent = percent(bad, present);
    let success = present == 0 || (present - bad) as f64 / present as f64 >= mostly;
    (
        success,
        ResultDetail {
            element_count: Some(element_count),
            missing_count: Some(missing),
            missing_percent: Some(percent(missing, element_count)),
            unexpected_count: Some(bad),
            unexpected_percent: Some(unexpected_percent),
            partial_unexpected_list: values,
            partial_unexpected_index_list: indices,
            ..Default::default()
        },
    )
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn within(x: f64, min: Option<f64>, max: Option<f64>) -> bool {
    min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)
}

fn statistic_of(table: &Table, column: &str, statistic: Statistic) -> Result<Option<f64>, String> {
    let ca = table
        .numeric(column)
        .ok_or_else(|| format!("column `{column}` is not numeric"))?;
    Ok(match statistic {
        Statistic::Mean => ca.mean(),
        Statistic::Stdev => ChunkVar::std(ca, 1),
        Statistic::Min => ChunkAgg::min(ca),
        Statistic::Max => ChunkAgg::max(ca),
    })
}

fn evaluate(check: &Check, table: &Table) -> Result<(bool, ResultDetail), String> {
    let column_cells = |column: &str| {
        cells(table, column).ok_or_else(|| format!("column `{column}` is not in the data"))
    };
    Ok(match check {
        Check::ColumnsMatchSet {
            column_set,
            exact_match,
        } => {
            let missing: Vec<&String> = column_set
                .iter()
                .filter(|c| !table.file_columns.contains(c))
                .collect();
            let unexpected: Vec<&String> = table
                .file_columns
                .iter()
                .filter(|c| !column_set.contains(c))
                .collect();
            let success = missing.is_empty() && (!exact_match || unexpected.is_empty());
            (
                success,
                ResultDetail {
                    observed_value: Some(json!(table.file_columns)),
                    details: Some(
                        json!({ "mismatched": { "missing": missing, "unexpected": unexpected } }),
                    ),
                    ..Default::default()
                },
            )
        }
        Check::ColumnExists { column } => {
            (table.file_columns.contains(column), ResultDetail::default())
        }
        Check::RowCountBetween { min, max } => {
            let rows = table.rows();
            (
                within(rows as f64, *min, *max),
                ResultDetail {
                    observed_value: Some(json!(rows)),
                    ..Default::default()
                },
            )
        }
        Check::NotNull { column, mostly } => {
            let mut element_count = 0_u64;
            let mut indices = Vec::new();
            let mut nulls = 0_u64;
            for (i, cell) in column_cells(column)?.enumerate() {
                element_count += 1;
                if cell.is_none() {
                    nulls += 1;
                    if indices.len() < PARTIAL_LIMIT {
                        indices.push(i as u64);
                    }
                }
            }
            let success = element_count == 0
                || (element_count - nulls) as f64 / element_count as f64 >= *mostly;
            (
                success,
                ResultDetail {
                    element_count: Some(element_count),
                    unexpected_count: Some(nulls),
                    unexpected_percent: Some(percent(nulls, element_count)),
                    partial_unexpected_list: indices.iter().map(|_| Value::Null).collect(),
                    partial_unexpected_index_list: indices,
                    ..Default::default()
                },
            )
        }
        Check::Between {
            column,
            min,
            max,
            mostly,
        } => column_map(column_cells(column)?, *mostly, |c| {
            c.as_f64().is_none_or(|x| !within(x, *min, *max))
        }),
        Check::InSet {
            column,
            values,
            mostly,
        } => column_map(column_cells(column)?, *mostly, |c| {
            !values.contains(&c.key())
        }),
        Check::Unique { column, mostly } => {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for c in column_cells(column)?.flatten() {
                *counts.entry(c.key()).or_default() += 1;
            }
            column_map(column_cells(column)?, *mostly, |c| {
                counts.get(&c.key()).copied().unwrap_or(0) > 1
            })
        }
        Check::StatisticBetween {
            statistic,
            column,
            min,
            max,
        } => {
            let observed = statistic_of(table, column, *statistic)?;
            (
                observed.is_some_and(|x| within(x, *min, *max)),
                ResultDetail {
                    observed_value: Some(json!(observed)),
                    ..Default::default()
                },
            )
        }
    })
}

/// Runs every expectation of the suite against the table.
pub fn validate(suite: &Suite, table: &Table, source_name: &str) -> ValidationResult {
    let results: Vec<ExpectationResult> = suite
        .expectations
        .iter()
        .map(|e| match evaluate(&e.check, table) {
            Ok((success, result)) => ExpectationResult {
                expectation_config: e.config.clone(),
                success,
                result,
                exception_info: ExceptionInfo::default(),
            },
            Err(message) => ExpectationResult {
                expectation_config: e.config.clone(),
                success: false,
                result: ResultDetail::default(),
                exception_info: ExceptionInfo {
                    raised_exception: true,
                    exception_message: Some(message),
                },
            },
        })
        .collect();
    let evaluated = results.len() as u64;
    let successful = results.iter().filter(|r| r.success).count() as u64;
    let mut result = ValidationResult {
        success: successful == evaluated,
        statistics: Statistics {
            evaluated_expectations: evaluated,
            successful_expectations: successful,
            unsuccessful_expectations: evaluated - successful,
            success_percent: percent(successful, evaluated),
        },
        results,
        meta: Value::Null,
    };
    let critical: Vec<String> = result
        .critical_failures()
        .iter()
        .map(|r| r.label())
        .collect();
    result.meta = json!({
        "expectation_suite_name": suite.name,
        "suite_hash": suite.hash,
        "source": source_name,
        "rows": table.rows(),
        "critical_failures": critical,
    });
    result
}

/// Drafts a suite from what a dataset version holds: its columns, row count, ranges,
/// categories and missingness, with the structural checks marked critical.
pub fn suggest(name: &str, profile: &TableProfile, schema: &DatasetSettings) -> Value {
    let mut expectations = vec![
        json!({"type": "expect_table_columns_to_match_set",
               "kwargs": {"column_set": schema.column_names(), "exact_match": true},
               "meta": {"critical": true}}),
        json!({"type": "expect_table_row_count_to_be_between",
               "kwargs": {"min_value": (profile.rows / 2).max(1), "max_value": profile.rows.saturating_mul(100)},
               "meta": {"critical": true}}),
    ];
    for c in &profile.columns {
        let present = if profile.rows == 0 {
            1.0
        } else {
            c.count as f64 / profile.rows as f64
        };
        // Leave five points of slack under what was observed, rounded down to whole percent.
        let mostly = ((present - 0.05).max(0.0) * 100.0).floor() / 100.0;
        let critical = c.name == schema.target;
        expectations.push(json!({"type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": c.name, "mostly": if c.missing == 0 { 1.0 } else { mostly }},
            "meta": {"critical": critical}}));
        match c.kind {
            ColumnKind::Numeric => {
                if let (Some(min), Some(max)) = (c.min, c.max) {
                    let pad = ((max - min) * 0.1).max(f64::EPSILON);
                    expectations.push(json!({"type": "expect_column_values_to_be_between",
                        "kwargs": {"column": c.name, "min_value": min - pad, "max_value": max + pad, "mostly": 0.99},
                        "meta": {"critical": critical}}));
                }
                if let (Some(mean), Some(std)) = (c.mean, c.std) {
                    expectations.push(json!({"type": "expect_column_mean_to_be_between",
                        "kwargs": {"column": c.name, "min_value": mean - std, "max_value": mean + std},
                        "meta": {"critical": false}}));
                }
            }
            ColumnKind::Categorical => {
                let set: Vec<&String> = c.categories.iter().map(|(k, _)| k).collect();
                expectations.push(json!({"type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": c.name, "value_set": set, "mostly": 0.99},
                    "meta": {"critical": critical}}));
            }
        }
    }
    json!({ "name": name, "expectations": expectations, "meta": { "generated_by": "steward expectations suggest" } })
}
