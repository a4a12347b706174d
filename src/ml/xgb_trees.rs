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

/// One node, with everything a step of the walk reads side by side.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// 0 for a leaf: the root is never a child, since children come after their parent.
    left: u32,
    right: u32,
    feature: u32,
    /// Split condition of an inner node; the leaf value of a leaf.
    value: f32,
    default_left: bool,
}

/// A tree's nodes, root first.
type Tree = Box<[Node]>;

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
                let left = numbers(t, "left_children", Value::as_i64)?;
                let right = numbers(t, "right_children", Value::as_i64)?;
                let feature = numbers(t, "split_indices", Value::as_u64)?;
                let condition = numbers(t, "split_conditions", |v| v.as_f64().map(|x| x as f32))?;
                let default_left = numbers(t, "default_left", |v| v.as_u64().map(|x| x != 0))?;
                let n = left.len();
                let consistent = [
                    right.len(),
                    feature.len(),
                    condition.len(),
                    default_left.len(),
                ]
                .iter()
                .all(|&len| len == n);
                if n == 0 || !consistent {
                    return Err("malformed tree".to_owned());
                }
                (0..n)
                    .map(|i| {
                        let (l, r) = (left[i], right[i]);
                        let leaf = l == -1 && r == -1;
                        let inner = l > i as i64
                            && r > i as i64
                            && (l as usize) < n
                            && (r as usize) < n
                            && (feature[i] as usize) < num_feature;
                        if !leaf && !inner {
                            return Err("malformed tree".to_owned());
                        }
                        Ok(Node {
                            left: if leaf { 0 } else { l as u32 },
                            right: if leaf { 0 } else { r as u32 },
                            feature: if leaf { 0 } else { feature[i] as u32 },
                            value: condition[i],
                            default_left: default_left[i],
                        })
                    })
                    .collect::<Result<Tree, String>>()
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
        for tree in &self.trees {
            let mut node = &tree[0];
            // Children always come after their parent (checked on load), so this ends.
            while node.left != 0 {
                let value = row[node.feature as usize];
                let go_left = if value.is_nan() {
                    node.default_left
                } else {
                    value < node.value
                };
                node = &tree[if go_left { node.left } else { node.right } as usize];
            }
            sum += node.value;
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
