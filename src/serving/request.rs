//! Turning request bodies into feature rows, checked against the dataset schema in config.
//!
//! Every problem of every field is collected, so one 422 names them all: a missing feature, an
//! unknown field, a wrong type, a number out of the configured range, an unknown category.
//! `null` is allowed for any feature and means "missing": the model's pipeline imputes it, as
//! it does `?` in the training data. Nothing here panics on any input.
//!
//! The cost of a body is bounded by its size and `serving.max_batch`: only schema columns set
//! a row count or are broadcast, an unknown key is reported once (not once per row), at most
//! [`MAX_ERRORS`] errors are kept (the rest are counted), and no message echoes more than a
//! few dozen characters of the input. A name given twice (a key repeated in one JSON object,
//! a column repeated in `dataframe_split` or a CSV header) is refused, never "the last wins".

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::data::schema::{ColumnKind, ColumnSpec, DatasetSettings, normalize_category};
use crate::error::{FieldError, bounded};
use crate::ml::features::Raw;

/// Field errors kept in a 422 (the rest are counted in one more entry): one fewer than the
/// error contract's [`crate::error::MAX_DETAILS`], so that entry is not cut again.
pub const MAX_ERRORS: usize = crate::error::MAX_DETAILS - 1;
/// Longest piece of input (a key, a category) quoted back in an error.
const MAX_ECHO: usize = 40;

/// Field errors, kept up to [`MAX_ERRORS`] and counted beyond.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<FieldError>,
    more: usize,
}

impl Errors {
    pub fn push(&mut self, error: FieldError) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(error);
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The kept errors, and one entry counting the rest.
    pub fn into_vec(mut self) -> Vec<FieldError> {
        if self.more > 0 {
            self.list.push(FieldError {
                field: "…".into(),
                message: format!("{} more errors not listed", self.more),
            });
        }
        self.list
    }

    /// Every error found, kept or only counted.
    pub fn total(&self) -> usize {
        self.list.len() + self.more
    }

    /// The errors as a parse failure that knows their true count.
    pub fn into_invalid(self) -> ParseError {
        let total = self.total();
        ParseError::Invalid {
            errors: self.into_vec(),
            total,
        }
    }
}

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

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// One feature row from a JSON object; `prefix` names the instance in errors
    /// (`instances[3].age`).
    pub fn row_from_object(
        &self,
        object: &Map<String, Value>,
        prefix: &str,
        errors: &mut Errors,
    ) -> Vec<Raw> {
        for key in object.keys() {
            if self.position(key).is_none() {
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

    /// One feature row from values in the order of `columns`, each the index of a schema
    /// column (checked once per body by the caller: known and not repeated).
    fn row_from_positions(
        &self,
        columns: &[usize],
        values: &[Value],
        prefix: &str,
        errors: &mut Errors,
    ) -> Vec<Raw> {
        if values.len() != columns.len() {
            errors.push(FieldError {
                field: prefix.to_owned(),
                message: format!("has {} values for {} columns", values.len(), columns.len()),
            });
        }
        let mut cells: Vec<Option<&Value>> = vec![None; self.columns.len()];
        for (&column, value) in columns.iter().zip(values) {
            if let Some(cell) = cells.get_mut(column) {
                *cell = Some(value);
            }
        }
        self.columns
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(column, (spec, cell))| match cell {
                None => {
                    errors.push(field(prefix, &spec.name, "missing"));
                    missing(spec)
                }
                Some(value) => self.cell(column, value, prefix, errors),
            })
            .collect()
    }

    /// Resolves a list of column names against the schema, once per body: an unknown or
    /// repeated name is an error naming it.
    fn positions(&self, names: &[Value], field_name: &str) -> Result<Vec<usize>, ParseError> {
        let mut out = Vec::with_capacity(names.len());
        let mut errors = Errors::default();
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name.as_str() else {
                errors.push(FieldError {
                    field: format!("{field_name}[{i}]"),
                    message: format!("must be a column name (a string), not {}", kind_of(name)),
                });
                continue;
            };
            match self.position(name) {
                None => errors.push(field(field_name, name, "unknown column")),
                Some(p) if out.contains(&p) => {
                    errors.push(field(field_name, name, "is given twice"))
                }
                Some(p) => out.push(p),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors.into_invalid())
        }
    }

    fn cell(&self, column: usize, value: &Value, prefix: &str, errors: &mut Errors) -> Raw {
        let (Some(spec), Some(allowed)) = (self.columns.get(column), self.allowed.get(column))
        else {
            return Raw::Num(None);
        };
        if value.is_null() {
            return missing(spec);
        }
        if let Some(mark) = value
            .as_str()
            .filter(|s| *s == INFINITY_MARK || *s == NEG_INFINITY_MARK)
        {
            errors.push(field(
                prefix,
                &spec.name,
                &format!(
                    "is {}; a value must be finite (or NaN or null for a missing one)",
                    mark.trim_start_matches('\u{0}')
                ),
            ));
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
                let Some(allowed) = allowed else {
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
                            "unknown category `{}`; one of {}",
                            bounded(&text, MAX_ECHO),
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

/// An error about `name` (a schema column or a key from the input, cut short) under `prefix`.
fn field(prefix: &str, name: &str, message: &str) -> FieldError {
    let name = bounded(name, MAX_ECHO);
    FieldError {
        field: if prefix.is_empty() {
            name
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
    /// Well-formed, but fields are wrong: 422, each field named (the first [`MAX_ERRORS`],
    /// then one entry counting the rest), with how many errors there were in all.
    Invalid {
        errors: Vec<FieldError>,
        total: usize,
    },
    /// More rows than `serving.max_batch`: 422, naming `instances`.
    TooMany { rows: usize, max: usize },
}

/// JSON, read strictly: a key repeated in an object is an error naming it (serde_json's own
/// `Value` would keep the last one silently).
pub fn parse_json(body: &[u8]) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "`{}` is given twice in one object",
                    bounded(&key, MAX_ECHO)
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
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
/// no map in between. `None` for anything else (a batch, an unknown or repeated key, bad
/// JSON): the general parser handles it and words every error.
fn parse_known_object(
    schema: &FeatureSchema,
    body: &[u8],
) -> Option<Result<PredictBody, ParseError>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let cells = ColumnSlots(schema).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    let mut errors = Errors::default();
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
    let value =
        parse_json(body).map_err(|e| ParseError::Malformed(format!("malformed JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ParseError::Malformed(format!(
            "expected a JSON object of features, or {{\"instances\": [...]}}; got {}",
            kind_of(&value)
        )));
    };
    let mut errors = Errors::default();
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

/// Reads a JSON object whose keys are all schema columns, each at most once, into one slot per
/// column. Any other input is an error, and the caller falls back to the general parser.
struct ColumnSlots<'a>(&'a FeatureSchema);

impl<'de> DeserializeSeed<'de> for ColumnSlots<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ColumnSlots<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of known features")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cells = vec![None; self.0.columns.len()];
        let mut next = 0;
        while let Some(column) = map.next_key_seed(ColumnIndex(self.0, next))? {
            let value = map.next_value_seed(StrictValue)?;
            match cells.get_mut(column) {
                Some(cell @ None) => *cell = Some(value),
                _ => return Err(A::Error::custom("a key is given twice")),
            }
            next = column + 1;
        }
        Ok(cells)
    }
}

/// A key, as the index of its column; an unknown key is an error. The second field is the
/// column expected next: clients mostly send the features in the schema's order, so that one
/// is compared first.
struct ColumnIndex<'a>(&'a FeatureSchema, usize);

impl<'de> DeserializeSeed<'de> for ColumnIndex<'_> {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnIndex<'_> {
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

fn finish(rows: Vec<Vec<Raw>>, errors: Errors, batch: bool) -> Result<PredictBody, ParseError> {
    if !errors.is_empty() {
        return Err(errors.into_invalid());
    }
    if rows.is_empty() {
        return Err(ParseError::Malformed("no rows to predict".into()));
    }
    Ok(PredictBody { rows, batch })
}

/// What an infinite value reads as after [`mlflow_literals`]: a string no JSON number can be,
/// so that the cell it lands in is named in a 422.
pub const INFINITY_MARK: &str = "\u{0}Infinity";
pub const NEG_INFINITY_MARK: &str = "\u{0}-Infinity";

/// MLflow's client writes a pandas frame with Python's `json`, which spells missing values
/// `NaN` and infinite ones `Infinity` and `-Infinity`: not JSON, but MLflow's server reads
/// them. Outside strings, `NaN` becomes `null` (a missing value, imputed like any) and an
/// infinity becomes a marker string ([`INFINITY_MARK`]) that the row parser refuses, naming
/// the field. Anything else is left as it is, for the JSON parser to judge. Linear in the
/// body; the result is at most twice its size (an `Infinity` of 8 bytes becomes 16).
pub fn mlflow_literals(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let needs = body.windows(3).any(|w| w == b"NaN") || body.windows(8).any(|w| w == b"Infinity");
    if !needs {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + body.len() / 4);
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        let rest = body.get(i..).unwrap_or_default();
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if rest.starts_with(b"NaN") {
            out.extend_from_slice(b"null");
            i += 3;
        } else if rest.starts_with(b"-Infinity") {
            out.extend_from_slice(b"\"\\u0000-Infinity\"");
            i += 9;
        } else if rest.starts_with(b"Infinity") {
            out.extend_from_slice(b"\"\\u0000Infinity\"");
            i += 8;
        } else {
            out.push(b);
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
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
    let value = parse_json(body).map_err(|e| {
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
    let [key] = present[..] else {
        // Name a few of the keys, each cut short: the body may hold many, and long ones.
        let mut keys: Vec<String> = object
            .keys()
            .take(10)
            .map(|k| format!("'{}'", bounded(k, MAX_ECHO)))
            .collect();
        if object.len() > 10 {
            keys.push(format!("… {} more", object.len() - 10));
        }
        return Err(mlflow_format_error(&format!(
            "Received dictionary with input fields: [{}]",
            keys.join(", ")
        )));
    };
    // MLflow's `params` (inference parameters) ride beside the input; Steward's models take
    // none, so they are accepted and ignored. Any other key is refused.
    for k in object.keys() {
        if k == "params" || k == key {
            continue;
        }
        return Err(ParseError::Malformed(format!(
            "unknown field `{}`: an MLflow body holds one input field and, optionally, params",
            bounded(k, MAX_ECHO)
        )));
    }
    if let Some(params) = object.get("params") {
        if !params.is_object() {
            return Err(ParseError::Malformed(format!(
                "`params` must be an object, not {}",
                kind_of(params)
            )));
        }
    }
    let Some(data) = object.get(key) else {
        return Err(mlflow_format_error("Received no input"));
    };
    let mut errors = Errors::default();
    let rows: Vec<Vec<Raw>> = match (key, data) {
        ("dataframe_split", Value::Object(split)) => {
            for k in split.keys() {
                if !matches!(k.as_str(), "columns" | "data" | "index") {
                    errors.push(field("dataframe_split", k, "unknown field"));
                }
            }
            let columns: Vec<usize> = match split.get("columns") {
                Some(Value::Array(names)) => schema.positions(names, "dataframe_split.columns")?,
                // Without columns, values are in the schema's order.
                None => (0..schema.columns.len()).collect(),
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
            // pandas' `orient="split"` index: one label per row, else the frame is malformed.
            match split.get("index") {
                None | Some(Value::Null) => {}
                Some(Value::Array(index)) if index.len() == data.len() => {}
                Some(Value::Array(index)) => errors.push(FieldError {
                    field: "dataframe_split.index".into(),
                    message: format!("has {} labels for {} rows", index.len(), data.len()),
                }),
                Some(other) => errors.push(FieldError {
                    field: "dataframe_split.index".into(),
                    message: format!("must be an array, not {}", kind_of(other)),
                }),
            }
            data.iter()
                .enumerate()
                .map(|(i, row)| match row {
                    Value::Array(values) => schema.row_from_positions(
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
            let in_order: Vec<usize> = (0..schema.columns.len()).collect();
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let prefix = format!("{key}[{i}]");
                    match item {
                        Value::Object(o) => schema.row_from_object(o, &prefix, &mut errors),
                        // A bare list of values, in the schema's feature order.
                        Value::Array(values) if key != "dataframe_records" => {
                            schema.row_from_positions(&in_order, values, &prefix, &mut errors)
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
            columnar(schema, key, columns, max_batch, &mut errors)?
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

/// A columnar body (`{"inputs": {"age": [63, 41], "sex": 1, ...}}`). The keys are checked once:
/// an unknown one is an error, as are arrays of different lengths (each column and its length
/// named) and a broadcast value that is not a scalar. Only schema columns set the row count or
/// are broadcast, so the work is rows × schema columns whatever the body holds.
fn columnar(
    schema: &FeatureSchema,
    key: &str,
    columns: &Map<String, Value>,
    max_batch: usize,
    errors: &mut Errors,
) -> Result<Vec<Vec<Raw>>, ParseError> {
    let mut bad = Errors::default();
    let mut lengths: Vec<(&str, usize)> = Vec::new();
    for (name, value) in columns {
        if schema.position(name).is_none() {
            bad.push(field(key, name, "unknown field"));
            continue;
        }
        match value {
            Value::Array(a) => lengths.push((name, a.len())),
            Value::Object(_) => bad.push(field(
                key,
                name,
                "must be an array of values or one scalar for every row, not an object",
            )),
            _ => {}
        }
    }
    let rows = lengths.iter().map(|(_, n)| *n).max().unwrap_or(1);
    if lengths.iter().any(|(_, n)| *n != rows) {
        for (name, n) in &lengths {
            bad.push(field(
                key,
                name,
                &format!("has {n} values; the columns' arrays differ in length"),
            ));
        }
    }
    if !bad.is_empty() {
        return Err(bad.into_invalid());
    }
    check_size(rows, max_batch)?;
    let cells: Vec<Option<&Value>> = schema
        .columns
        .iter()
        .map(|c| columns.get(&c.name))
        .collect();
    Ok((0..rows)
        .map(|i| {
            let prefix = format!("{key}[{i}]");
            schema
                .columns
                .iter()
                .zip(&cells)
                .enumerate()
                .map(|(column, (spec, cell))| {
                    let value = match cell {
                        Some(Value::Array(a)) => a.get(i),
                        Some(scalar) => Some(*scalar),
                        None => None,
                    };
                    match value {
                        None => {
                            errors.push(field(&prefix, &spec.name, "missing"));
                            missing(spec)
                        }
                        Some(v) => schema.cell(column, v, &prefix, errors),
                    }
                })
                .collect()
        })
        .collect())
}

/// A parsed `/invocations` CSV body: a header row of feature names (each known, none
/// repeated), then rows. Numeric columns are read as numbers; an empty cell or a missing-value
/// token is missing.
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
    let headers: Vec<Value> = reader
        .headers()
        .map_err(|e| ParseError::Malformed(format!("Failed to parse input as CSV: {e}")))?
        .iter()
        .map(|h| Value::String(h.trim().to_owned()))
        .collect();
    let columns = schema.positions(&headers, "header")?;
    let mut errors = Errors::default();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| ParseError::Malformed(format!("Failed to parse input as CSV: {e}")))?;
        check_size(i + 1, max_batch)?;
        let values: Vec<Value> = columns
            .iter()
            .zip(record.iter())
            .map(|(&column, cell)| {
                let cell = cell.trim();
                let numeric = schema
                    .columns
                    .get(column)
                    .is_some_and(|c| c.kind == ColumnKind::Numeric);
                if cell.is_empty() || missing_values.iter().any(|m| m == cell) {
                    Value::Null
                } else if numeric {
                    cell.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(cell.to_owned()))
                } else {
                    Value::String(cell.to_owned())
                }
            })
            .collect();
        rows.push(schema.row_from_positions(&columns, &values, &format!("row[{i}]"), &mut errors));
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
        let Err(ParseError::Invalid { errors, .. }) = parse_predict(&s, bad.as_bytes(), 10) else {
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
