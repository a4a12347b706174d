//! Turning request bodies into feature rows, checked against the dataset schema in config.
//!
//! Every problem of every field is collected, so one 422 names them all: a missing feature, an
//! unknown field, a wrong type, a number out of the configured range, an unknown category.
//! `null` is allowed for any feature and means "missing": the model's pipeline imputes it, as
//! it does `?` in the training data. Nothing here panics on any input.

use serde_json::{Map, Value};

use crate::data::schema::{ColumnKind, ColumnSpec, DatasetSettings, normalize_category};
use crate::error::FieldError;
use crate::ml::features::Raw;

/// The feature columns a request must carry, in the model's order.
#[derive(Debug, Clone)]
pub struct FeatureSchema {
    pub columns: Vec<ColumnSpec>,
    /// Each column's allowed categories, normalized once here rather than per request.
    allowed: Vec<Option<Vec<String>>>,
}

impl FeatureSchema {
    pub fn from_dataset(schema: &DatasetSettings) -> Self {
        let columns: Vec<ColumnSpec> = schema.features().cloned().collect();
        let allowed = columns
            .iter()
            .map(|c| {
                c.categories
                    .as_ref()
                    .map(|cats| cats.iter().map(|c| normalize_category(c)).collect())
            })
            .collect();
        FeatureSchema { columns, allowed }
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// One feature row from a JSON object; `prefix` names the instance in errors
    /// (`instances[3].age`).
    pub fn row_from_object(
        &self,
        object: &Map<String, Value>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Vec<Raw> {
        for key in object.keys() {
            if !self.columns.iter().any(|c| c.name == *key) {
                errors.push(field(prefix, key, "unknown field"));
            }
        }
        self.columns
            .iter()
            .enumerate()
            .map(|(column, spec)| match object.get(&spec.name) {
                None => {
                    errors.push(field(prefix, &spec.name, "missing"));
                    missing(spec)
                }
                Some(value) => self.cell(column, value, prefix, errors),
            })
            .collect()
    }

    /// One feature row from values in the given column order (MLflow's `dataframe_split`).
    pub fn row_from_values(
        &self,
        columns: &[String],
        values: &[Value],
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Vec<Raw> {
        if values.len() != columns.len() {
            errors.push(FieldError {
                field: prefix.to_owned(),
                message: format!("has {} values for {} columns", values.len(), columns.len()),
            });
        }
        let object: Map<String, Value> = columns
            .iter()
            .cloned()
            .zip(values.iter().cloned())
            .collect();
        self.row_from_object(&object, prefix, errors)
    }

    fn cell(
        &self,
        column: usize,
        value: &Value,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Raw {
        let spec = &self.columns[column];
        if value.is_null() {
            return missing(spec);
        }
        match spec.kind {
            ColumnKind::Numeric => {
                let Some(v) = value.as_f64().filter(|v| v.is_finite()) else {
                    errors.push(field(
                        prefix,
                        &spec.name,
                        &format!("must be a number, not {}", kind_of(value)),
                    ));
                    return Raw::Num(None);
                };
                let below = spec.min.is_some_and(|min| v < min);
                let above = spec.max.is_some_and(|max| v > max);
                if below || above {
                    errors.push(field(
                        prefix,
                        &spec.name,
                        &format!(
                            "{v} is out of range [{}, {}]",
                            bound(spec.min),
                            bound(spec.max)
                        ),
                    ));
                }
                Raw::Num(Some(v))
            }
            ColumnKind::Categorical => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    // An integer is already in its normal form.
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => i.to_string(),
                        None => normalize_category(&n.to_string()),
                    },
                    Value::Bool(b) => b.to_string(),
                    other => {
                        errors.push(field(
                            prefix,
                            &spec.name,
                            &format!(
                                "must be a category (string or number), not {}",
                                kind_of(other)
                            ),
                        ));
                        return Raw::Cat(None);
                    }
                };
                let Some(allowed) = &self.allowed[column] else {
                    return Raw::Cat(Some(normalize_category(&text)));
                };
                // Most requests spell a category as normalized already.
                if allowed.contains(&text) {
                    return Raw::Cat(Some(text));
                }
                let category = normalize_category(&text);
                if !allowed.contains(&category) {
                    errors.push(field(
                        prefix,
                        &spec.name,
                        &format!(
                            "unknown category `{text}`; one of {}",
                            spec.categories.as_deref().unwrap_or_default().join(", ")
                        ),
                    ));
                }
                Raw::Cat(Some(category))
            }
        }
    }
}

fn missing(spec: &ColumnSpec) -> Raw {
    match spec.kind {
        ColumnKind::Numeric => Raw::Num(None),
        ColumnKind::Categorical => Raw::Cat(None),
    }
}

fn bound(b: Option<f64>) -> String {
    b.map(|v| v.to_string()).unwrap_or_else(|| "∞".into())
}

fn field(prefix: &str, name: &str, message: &str) -> FieldError {
    FieldError {
        field: if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        },
        message: message.to_owned(),
    }
}

pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why a body could not become feature rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not JSON, or not the expected shape: 400.
    Malformed(String),
    /// MLflow's own error for a body with none or several of its input keys: 400 in MLflow's
    /// error shape.
    MlflowFormat(String),
    /// Well-formed, but fields are wrong: 422, every field named.
    Invalid(Vec<FieldError>),
    /// More rows than `serving.max_batch`: 422, naming `instances`.
    TooMany { rows: usize, max: usize },
}

/// A parsed `/predict` body: one object of features, or `{"instances": [...]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictBody {
    pub rows: Vec<Vec<Raw>>,
    pub batch: bool,
}

pub fn parse_predict(
    schema: &FeatureSchema,
    body: &[u8],
    max_batch: usize,
) -> Result<PredictBody, ParseError> {
    match parse_known_object(schema, body) {
        Some(parsed) => parsed,
        None => parse_predict_general(schema, body, max_batch),
    }
}

/// The common request, one object of known features, read straight into column slots with
/// no map in between. `None` for anything else (a batch, an unknown key, bad JSON): the
/// general parser handles it and words every error.
fn parse_known_object(
    schema: &FeatureSchema,
    body: &[u8],
) -> Option<Result<PredictBody, ParseError>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let cells =
        serde::de::DeserializeSeed::deserialize(ColumnSlots(schema), &mut deserializer).ok()?;
    deserializer.end().ok()?;
    let mut errors = Vec::new();
    let row = schema
        .columns
        .iter()
        .zip(cells)
        .enumerate()
        .map(|(column, (spec, cell))| match cell {
            None => {
                errors.push(field("", &spec.name, "missing"));
                missing(spec)
            }
            Some(value) => schema.cell(column, &value, "", &mut errors),
        })
        .collect();
    Some(finish(vec![row], errors, false))
}

fn parse_predict_general(
    schema: &FeatureSchema,
    body: &[u8],
    max_batch: usize,
) -> Result<PredictBody, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("malformed JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ParseError::Malformed(format!(
            "expected a JSON object of features, or {{\"instances\": [...]}}; got {}",
            kind_of(&value)
        )));
    };
    let mut errors = Vec::new();
    if object.len() == 1 && object.contains_key("instances") {
        let Some(Value::Array(items)) = object.get("instances") else {
            return Err(ParseError::Malformed("`instances` must be an array".into()));
        };
        check_size(items.len(), max_batch)?;
        let rows = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(o) => {
                    schema.row_from_object(o, &format!("instances[{i}]"), &mut errors)
                }
                other => {
                    errors.push(FieldError {
                        field: format!("instances[{i}]"),
                        message: format!("must be an object of features, not {}", kind_of(other)),
                    });
                    Vec::new()
                }
            })
            .collect();
        return finish(rows, errors, true);
    }
    let row = schema.row_from_object(&object, "", &mut errors);
    finish(vec![row], errors, false)
}

/// Reads a JSON object whose keys are all schema columns into one slot per column (the last
/// of a repeated key wins, as in a `serde_json::Map`). Any other input is an error, and the
/// caller falls back to the general parser.
struct ColumnSlots<'a>(&'a FeatureSchema);

impl<'de> serde::de::DeserializeSeed<'de> for ColumnSlots<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ColumnSlots<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of known features")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cells = vec![None; self.0.columns.len()];
        let mut next = 0;
        while let Some(column) = map.next_key_seed(ColumnIndex(self.0, next))? {
            cells[column] = Some(map.next_value::<Value>()?);
            next = column + 1;
        }
        Ok(cells)
    }
}

/// A key, as the index of its column; an unknown key is an error. The second field is the
/// column expected next: clients mostly send the features in the schema's order, so that one
/// is compared first.
struct ColumnIndex<'a>(&'a FeatureSchema, usize);

impl<'de> serde::de::DeserializeSeed<'de> for ColumnIndex<'_> {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ColumnIndex<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a feature name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<usize, E> {
        let columns = &self.0.columns;
        if columns.get(self.1).is_some_and(|c| c.name == key) {
            return Ok(self.1);
        }
        columns
            .iter()
            .position(|c| c.name == key)
            .ok_or_else(|| E::custom("unknown field"))
    }
}

fn check_size(rows: usize, max: usize) -> Result<(), ParseError> {
    if rows > max {
        return Err(ParseError::TooMany { rows, max });
    }
    Ok(())
}

fn finish(
    rows: Vec<Vec<Raw>>,
    errors: Vec<FieldError>,
    batch: bool,
) -> Result<PredictBody, ParseError> {
    if !errors.is_empty() {
        return Err(ParseError::Invalid(errors));
    }
    if rows.is_empty() {
        return Err(ParseError::Malformed("no rows to predict".into()));
    }
    Ok(PredictBody { rows, batch })
}

/// MLflow's input keys, in the order its messages list them.
pub const MLFLOW_FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// MLflow's message for a body without exactly one input key (its scoring protocol since 2.0).
fn mlflow_format_error(received: &str) -> ParseError {
    ParseError::MlflowFormat(format!(
        "The input must be a JSON dictionary with exactly one of the input fields {{{}}}. {received}.",
        MLFLOW_FORMATS
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A parsed `/invocations` JSON body, in any of MLflow's four input formats.
pub fn parse_invocations_json(
    schema: &FeatureSchema,
    body: &[u8],
    max_batch: usize,
) -> Result<Vec<Vec<Raw>>, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ParseError::MlflowFormat(format!(
            "Failed to parse input from JSON. Ensure that input is a valid JSON formatted string. Error: '{e}'"
        ))
    })?;
    let object = match value {
        Value::Object(o) => o,
        Value::Array(_) => return Err(mlflow_format_error("Received a list")),
        other => {
            return Err(mlflow_format_error(&format!(
                "Received unexpected input type '{}'",
                kind_of(&other)
            )));
        }
    };
    let present: Vec<&str> = MLFLOW_FORMATS
        .iter()
        .copied()
        .filter(|k| object.contains_key(*k))
        .collect();
    if present.len() != 1 {
        let keys: Vec<String> = object.keys().map(|k| format!("'{k}'")).collect();
        return Err(mlflow_format_error(&format!(
            "Received dictionary with input fields: [{}]",
            keys.join(", ")
        )));
    }
    let key = present[0];
    let data = &object[key];
    let mut errors = Vec::new();
    let rows: Vec<Vec<Raw>> = match (key, data) {
        ("dataframe_split", Value::Object(split)) => {
            let columns: Vec<String> = match split.get("columns") {
                Some(Value::Array(c)) => c
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
                // Without columns, values are in the schema's order.
                None => schema.names(),
                Some(other) => {
                    return Err(ParseError::Malformed(format!(
                        "dataframe_split.columns must be an array, not {}",
                        kind_of(other)
                    )));
                }
            };
            let Some(Value::Array(data)) = split.get("data") else {
                return Err(ParseError::Malformed(
                    "dataframe_split.data must be an array of rows".into(),
                ));
            };
            check_size(data.len(), max_batch)?;
            data.iter()
                .enumerate()
                .map(|(i, row)| match row {
                    Value::Array(values) => schema.row_from_values(
                        &columns,
                        values,
                        &format!("dataframe_split.data[{i}]"),
                        &mut errors,
                    ),
                    other => {
                        errors.push(FieldError {
                            field: format!("dataframe_split.data[{i}]"),
                            message: format!("must be an array of values, not {}", kind_of(other)),
                        });
                        Vec::new()
                    }
                })
                .collect()
        }
        (_, Value::Array(items)) => {
            check_size(items.len(), max_batch)?;
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let prefix = format!("{key}[{i}]");
                    match item {
                        Value::Object(o) => schema.row_from_object(o, &prefix, &mut errors),
                        // A bare list of values, in the schema's feature order.
                        Value::Array(values) if key != "dataframe_records" => {
                            schema.row_from_values(&schema.names(), values, &prefix, &mut errors)
                        }
                        other => {
                            errors.push(FieldError {
                                field: prefix,
                                message: format!(
                                    "must be an object of features, not {}",
                                    kind_of(other)
                                ),
                            });
                            Vec::new()
                        }
                    }
                })
                .collect()
        }
        // Columnar: {"inputs": {"age": [63, 41], "sex": [1, 0], ...}}.
        ("instances" | "inputs", Value::Object(columns)) => {
            let n = columns
                .values()
                .map(|v| v.as_array().map(Vec::len).unwrap_or(1))
                .max()
                .unwrap_or(0);
            check_size(n, max_batch)?;
            (0..n)
                .map(|i| {
                    let row: Map<String, Value> = columns
                        .iter()
                        .map(|(k, v)| {
                            let cell = match v {
                                Value::Array(a) => a.get(i).cloned().unwrap_or(Value::Null),
                                scalar => scalar.clone(),
                            };
                            (k.clone(), cell)
                        })
                        .collect();
                    schema.row_from_object(&row, &format!("{key}[{i}]"), &mut errors)
                })
                .collect()
        }
        (_, other) => {
            return Err(ParseError::Malformed(format!(
                "`{key}` must be an array of records{}, not {}",
                if key == "dataframe_split" {
                    " (or an object with columns and data)"
                } else {
                    ""
                },
                kind_of(other)
            )));
        }
    };
    finish(rows, errors, true).map(|b| b.rows)
}

/// A parsed `/invocations` CSV body: a header row of feature names, then rows. Numeric columns
/// are read as numbers; an empty cell or a missing-value token is missing.
pub fn parse_invocations_csv(
    schema: &FeatureSchema,
    body: &[u8],
    max_batch: usize,
    missing_values: &[String],
) -> Result<Vec<Vec<Raw>>, ParseError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ParseError::Malformed(format!("Failed to parse input as CSV: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| ParseError::Malformed(format!("Failed to parse input as CSV: {e}")))?;
        check_size(i + 1, max_batch)?;
        let object: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, cell)| {
                let cell = cell.trim();
                let numeric = schema
                    .columns
                    .iter()
                    .any(|c| c.name == *h && c.kind == ColumnKind::Numeric);
                let value = if cell.is_empty() || missing_values.iter().any(|m| m == cell) {
                    Value::Null
                } else if numeric {
                    cell.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(cell.to_owned()))
                } else {
                    Value::String(cell.to_owned())
                };
                (h.clone(), value)
            })
            .collect();
        rows.push(schema.row_from_object(&object, &format!("row[{i}]"), &mut errors));
    }
    finish(rows, errors, true).map(|b| b.rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use proptest::prelude::*;

    fn schema() -> FeatureSchema {
        FeatureSchema::from_dataset(&Settings::defaults().expect("defaults").dataset)
    }

    const PATIENT: &str = r#"{"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1,
        "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}"#;

    #[test]
    fn a_valid_patient_parses_and_every_bad_field_is_named() {
        let s = schema();
        let ok = parse_predict(&s, PATIENT.as_bytes(), 10).expect("valid");
        assert_eq!(ok.rows.len(), 1);
        assert!(!ok.batch);
        let bad = r#"{"age": "old", "sex": 7, "cp": 1, "trestbps": 900, "fbs": 1, "restecg": 2,
            "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": null, "thal": 6, "colour": "red"}"#;
        let Err(ParseError::Invalid(errors)) = parse_predict(&s, bad.as_bytes(), 10) else {
            panic!("expected field errors");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["colour", "age", "sex", "trestbps", "chol"],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("unknown field"));
        assert!(errors[1].message.contains("must be a number"));
        assert!(errors[2].message.contains("unknown category"));
        assert!(errors[3].message.contains("out of range"));
        assert!(errors[4].message.contains("missing"));
    }

    #[test]
    fn mlflow_formats_agree() {
        let s = schema();
        let record: Value = serde_json::from_str(PATIENT).expect("json");
        let names = s.names();
        let values: Vec<Value> = names.iter().map(|n| record[n].clone()).collect();
        let bodies = [
            serde_json::json!({ "dataframe_records": [record.clone()] }),
            serde_json::json!({ "dataframe_split": { "columns": names, "data": [values.clone()] } }),
            serde_json::json!({ "instances": [record.clone()] }),
            serde_json::json!({ "inputs": [values] }),
        ];
        let expected = parse_predict(&s, PATIENT.as_bytes(), 10)
            .expect("valid")
            .rows;
        for body in bodies {
            let rows = parse_invocations_json(&s, body.to_string().as_bytes(), 10).expect("valid");
            assert_eq!(rows, expected, "{body}");
        }
        for body in [
            r#"{"data": []}"#,
            r#"{"instances": [], "inputs": []}"#,
            "[1]",
        ] {
            let err = parse_invocations_json(&s, body.as_bytes(), 10).expect_err("refused");
            assert!(
                matches!(err, ParseError::MlflowFormat(ref m) if m.contains("exactly one of the input fields")),
                "{err:?}"
            );
        }
        let csv = format!("{}\n63,1,1,145,233,1,2,150,0,2.3,3,0,6\n", names.join(","));
        let rows = parse_invocations_csv(&s, csv.as_bytes(), 10, &["?".into()]).expect("csv");
        assert_eq!(rows, expected);
        let too_many = serde_json::json!({ "instances": vec![record; 3] }).to_string();
        assert_eq!(
            parse_predict(&s, too_many.as_bytes(), 2),
            Err(ParseError::TooMany { rows: 3, max: 2 })
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            "[a-z_]{0,8}".prop_map(Value::String),
            prop_oneof![
                Just("age"),
                Just("sex"),
                Just("cp"),
                Just("instances"),
                Just("inputs")
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("age".to_owned()),
                Just("sex".to_owned()),
                Just("thal".to_owned()),
                Just("instances".to_owned()),
                Just("inputs".to_owned()),
                Just("dataframe_split".to_owned()),
                Just("dataframe_records".to_owned()),
                Just("columns".to_owned()),
                Just("data".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No body, JSON or not, makes the parsers panic; each gets a row set or an error.
        #[test]
        fn the_parsers_never_panic(value in json_value(), noise in prop::collection::vec(any::<u8>(), 0..64)) {
            let s = schema();
            let text = value.to_string();
            let _ = parse_predict(&s, text.as_bytes(), 50);
            let _ = parse_invocations_json(&s, text.as_bytes(), 50);
            let _ = parse_predict(&s, &noise, 50);
            let _ = parse_invocations_json(&s, &noise, 50);
            let _ = parse_invocations_csv(&s, &noise, 50, &["?".into()]);
            if let Ok(body) = parse_predict(&s, text.as_bytes(), 50) {
                prop_assert!(body.rows.iter().all(|r| r.len() == s.columns.len()));
            }
        }

        /// The fast path for one object of features answers exactly as the general parser:
        /// the same row, or the same errors.
        #[test]
        fn the_fast_path_agrees_with_the_general_parser(
            fields in prop::collection::btree_map(feature_name(), json_value(), 0..16),
        ) {
            let s = schema();
            let text = Value::Object(fields.into_iter().collect()).to_string();
            let general = parse_predict_general(&s, text.as_bytes(), 50);
            match parse_known_object(&s, text.as_bytes()) {
                Some(fast) => prop_assert_eq!(fast, general),
                // Only an unknown key sends a well-formed object to the general parser,
                // which refuses it.
                None => prop_assert!(general.is_err(), "{text}"),
            }
        }
    }

    /// Mostly the schema's feature names, sometimes another key.
    fn feature_name() -> impl Strategy<Value = String> {
        let names = schema().names();
        prop_oneof![
            9 => prop::sample::select(names),
            1 => "[a-z]{1,6}",
        ]
    }
}
