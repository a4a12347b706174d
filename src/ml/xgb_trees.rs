//! XGBoost's trees, read from its own JSON model and walked in Rust, for serving.
//!
//! Training, SHAP contributions and the stored artifact stay XGBoost's own. This evaluator
//! only answers `predict` for the common case (gbtree, `binary:logistic`, numerical splits),
//! without the per-call costs of the C API (a DMatrix, a prediction context, OpenMP) and from
//! any number of threads at once. It follows XGBoost's arithmetic: f32 features and split
//! conditions, `value < condition` goes left, a missing value takes the default branch, leaf
//! values summed in f32 onto the base margin, then the logistic. A test checks it against the
//! library's predictions row by row; a model outside that case falls back to the library.

use serde_json::Value;

#[derive(Debug, Clone)]
struct Tree {
    left: Vec<i32>,
    right: Vec<i32>,
    feature: Vec<u32>,
    /// Split condition of an inner node; the leaf value of a leaf.
    condition: Vec<f32>,
    default_left: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct XgbTrees {
    base_margin: f32,
    num_feature: usize,
    trees: Vec<Tree>,
}

fn array<'a>(tree: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    tree.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("tree without `{key}`"))
}

fn numbers<T>(tree: &Value, key: &str, f: impl Fn(&Value) -> Option<T>) -> Result<Vec<T>, String> {
    array(tree, key)?
        .iter()
        .map(|v| f(v).ok_or_else(|| format!("`{key}` holds a non-number")))
        .collect()
}

/// `"[5E-1]"` (XGBoost 3) or `"5E-1"` (XGBoost 2).
fn parse_base_score(raw: &str) -> Option<f32> {
    raw.trim_matches(|c| c == '[' || c == ']')
        .trim()
        .parse()
        .ok()
}

impl XgbTrees {
    /// Reads a JSON model; `Err` says why it is outside what this evaluator handles.
    pub fn from_json(json: &str) -> Result<XgbTrees, String> {
        let root: Value = serde_json::from_str(json).map_err(|e| format!("model JSON: {e}"))?;
        let learner = &root["learner"];
        let objective = learner["objective"]["name"].as_str().unwrap_or_default();
        if objective != "binary:logistic" {
            return Err(format!("objective `{objective}` is not binary:logistic"));
        }
        let booster = &learner["gradient_booster"];
        if booster["name"].as_str() != Some("gbtree") {
            return Err("booster is not gbtree".into());
        }
        let param = &learner["learner_model_param"];
        if param["num_target"].as_str().is_some_and(|t| t != "1") {
            return Err("more than one target".into());
        }
        let base_score = param["base_score"]
            .as_str()
            .and_then(parse_base_score)
            .ok_or("unreadable base_score")?;
        if !(base_score > 0.0 && base_score < 1.0) {
            return Err(format!("base_score {base_score} is not a probability"));
        }
        let num_feature = param["num_feature"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .ok_or("unreadable num_feature")?;
        let trees = booster["model"]["trees"]
            .as_array()
            .ok_or("model without trees")?
            .iter()
            .map(|t| {
                let split_type: Vec<u64> = numbers(t, "split_type", Value::as_u64)?;
                if split_type.iter().any(|&s| s != 0) {
                    return Err("categorical splits".to_owned());
                }
                let tree = Tree {
                    left: numbers(t, "left_children", |v| v.as_i64().map(|x| x as i32))?,
                    right: numbers(t, "right_children", |v| v.as_i64().map(|x| x as i32))?,
                    feature: numbers(t, "split_indices", |v| v.as_u64().map(|x| x as u32))?,
                    condition: numbers(t, "split_conditions", |v| v.as_f64().map(|x| x as f32))?,
                    default_left: numbers(t, "default_left", |v| v.as_u64().map(|x| x != 0))?,
                };
                let n = tree.left.len();
                let consistent = [
                    tree.right.len(),
                    tree.feature.len(),
                    tree.condition.len(),
                    tree.default_left.len(),
                ]
                .iter()
                .all(|&len| len == n);
                let in_bounds = (0..n).all(|i| {
                    let (l, r) = (tree.left[i], tree.right[i]);
                    (l == -1 && r == -1)
                        || (l > i as i32
                            && r > i as i32
                            && (l as usize) < n
                            && (r as usize) < n
                            && (tree.feature[i] as usize) < num_feature)
                });
                if n == 0 || !consistent || !in_bounds {
                    return Err("malformed tree".to_owned());
                }
                Ok(tree)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(XgbTrees {
            base_margin: (base_score / (1.0 - base_score)).ln(),
            num_feature,
            trees,
        })
    }

    pub fn num_feature(&self) -> usize {
        self.num_feature
    }

    fn margin(&self, row: &[f32]) -> f32 {
        let mut sum = 0.0_f32;
        for t in &self.trees {
            let mut node = 0_usize;
            // Children always come after their parent (checked on load), so this ends.
            while t.left[node] != -1 {
                let value = row[t.feature[node] as usize];
                let go_left = if value.is_nan() {
                    t.default_left[node]
                } else {
                    value < t.condition[node]
                };
                node = if go_left { t.left[node] } else { t.right[node] } as usize;
            }
            sum += t.condition[node];
        }
        self.base_margin + sum
    }

    /// Class-1 probabilities of a row-major `rows × width` matrix.
    pub fn predict(&self, values: &[f64], rows: usize, width: usize) -> Result<Vec<f64>, String> {
        if width != self.num_feature || values.len() != rows * width {
            return Err(format!(
                "{} values for {rows} rows of {width} features; the model takes {}",
                values.len(),
                self.num_feature
            ));
        }
        let mut row = vec![0.0_f32; width];
        Ok((0..rows)
            .map(|r| {
                for (dst, src) in row.iter_mut().zip(&values[r * width..(r + 1) * width]) {
                    *dst = *src as f32;
                }
                let m = self.margin(&row);
                f64::from(1.0 / (1.0 + (-m).exp()))
            })
            .collect())
    }
}
