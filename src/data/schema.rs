//! The dataset schema, from `[dataset]` in the configuration: column names in file order, each
//! numeric (with its allowed range) or categorical (with its categories), the missing-value
//! tokens and the rule that turns the target column into a binary label.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderMode {
    Auto,
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetRule {
    /// Positive when the value is greater than this.
    GreaterThan(f64),
    /// Positive when the (normalised) value is one of these.
    OneOf(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSettings {
    pub name: String,
    pub suite: String,
    pub suites_dir: std::path::PathBuf,
    pub bootstrap_file: String,
    pub header: HeaderMode,
    pub missing_values: Vec<String>,
    pub upload_limit_bytes: usize,
    pub target: String,
    pub target_rule: TargetRule,
    pub columns: Vec<ColumnSpec>,
}

impl DatasetSettings {
    /// Checks the schema; the error names the offending key.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |key: String, msg: &str| Err((key, msg.to_owned()));
        if !is_identifier(&self.name) {
            return err(
                "dataset.name".into(),
                "must be 1-64 letters, digits, '_' or '-'",
            );
        }
        if !is_identifier(&self.suite) {
            return err(
                "dataset.suite".into(),
                "must be 1-64 letters, digits, '_' or '-'",
            );
        }
        if self.upload_limit_bytes == 0 {
            return err(
                "dataset.upload_limit_bytes".into(),
                "must be greater than 0",
            );
        }
        if self.columns.len() < 2 {
            return err(
                "dataset.columns".into(),
                "needs at least one feature and the target",
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            let key = |field: &str| format!("dataset.columns[{i}].{field}");
            if c.name.trim().is_empty() {
                return err(key("name"), "must not be empty");
            }
            if !seen.insert(c.name.as_str()) {
                return err(key("name"), &format!("`{}` appears twice", c.name));
            }
            match c.kind {
                ColumnKind::Numeric => {
                    let (Some(min), Some(max)) = (c.min, c.max) else {
                        return err(key("min"), "numeric columns need min and max");
                    };
                    if !(min.is_finite() && max.is_finite() && min <= max) {
                        return err(key("max"), "must be finite and at least min");
                    }
                    if c.categories.is_some() {
                        return err(
                            key("categories"),
                            "only categorical columns have categories",
                        );
                    }
                }
                ColumnKind::Categorical => {
                    if c.categories.as_ref().is_none_or(Vec::is_empty) {
                        return err(key("categories"), "categorical columns need categories");
                    }
                    if c.min.is_some() || c.max.is_some() {
                        return err(key("min"), "categorical columns have no min or max");
                    }
                }
            }
        }
        if self.column(&self.target).is_none() {
            return err(
                "dataset.target".into(),
                &format!("`{}` is not one of dataset.columns", self.target),
            );
        }
        Ok(())
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The feature columns: every column but the target.
    pub fn features(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.name != self.target)
    }

    /// The features with whether each is numeric and how many categories it lists.
    pub fn feature_kinds(&self) -> Vec<(String, bool, usize)> {
        self.features()
            .map(|c| {
                (
                    c.name.clone(),
                    c.kind == ColumnKind::Numeric,
                    c.normalized_categories().len(),
                )
            })
            .collect()
    }

    /// The feature names in file order: what a served model must have been trained on.
    pub fn feature_names(&self) -> Vec<String> {
        self.features().map(|c| c.name.clone()).collect()
    }

    pub fn is_missing(&self, raw: &str) -> bool {
        let raw = raw.trim();
        self.missing_values.iter().any(|m| m == raw)
    }
}

impl ColumnSpec {
    /// The categories, normalised like the values they are compared with.
    pub fn normalized_categories(&self) -> Vec<String> {
        self.categories
            .iter()
            .flatten()
            .map(|c| normalize_category(c))
            .collect()
    }
}

/// Categorical values compare as text, with numbers in one spelling: `1.0`, `1` and `01` are
/// all `1`, so files that write codes as floats (like UCI's) match categories written as `1`.
pub fn normalize_category(raw: &str) -> String {
    let raw = raw.trim();
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        }
        _ => raw.to_owned(),
    }
}

/// 1-64 ASCII letters, digits, '_' or '-'.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_normalise_number_spellings() {
        assert_eq!(normalize_category("1.0"), "1");
        assert_eq!(normalize_category(" 7 "), "7");
        assert_eq!(normalize_category("2.5"), "2.5");
        assert_eq!(normalize_category("male"), "male");
    }

    #[test]
    fn the_default_schema_checks() {
        let settings = crate::config::Settings::defaults().expect("defaults");
        settings.dataset.check().expect("default schema is valid");
        assert_eq!(settings.dataset.columns.len(), 14);
        assert_eq!(settings.dataset.features().count(), 13);
    }
}
