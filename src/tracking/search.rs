//! MLflow's search syntax for runs (`search-runs`' `filter` and `order_by`), over Steward's
//! runs: clauses joined by `AND`, each `<entity>.<key> <op> <value>`.
//!
//! - entities: `metrics.` (also `metric.`), `params.` (`param.`, `parameters.`), `tags.`
//!   (`tag.`), `attributes.` (`attribute.`, `attr.`, `run.`) with `run_id`, `run_name`,
//!   `status`, `start_time`, `end_time`, `user_id`, `lifecycle_stage`; a bare key is an
//!   attribute. A key with other characters is quoted in backticks or double quotes.
//! - operators: metrics and times compare numbers (`=`, `!=`, `<`, `<=`, `>`, `>=`); params,
//!   tags and string attributes compare strings (`=`, `!=`, `LIKE`, `ILIKE`, `IN (...)`,
//!   `NOT IN (...)`); `LIKE` takes `%` and `_` as SQL does.
//! - `order_by`: `<entity>.<key> [ASC|DESC]`; runs without the key come last; ties keep the
//!   default order (newest start first, then run id).
//!
//! As in MLflow, a run matches a clause on a metric, param or tag only when it has that key.
//! Input is bounded: a filter of at most [`MAX_FILTER_CHARS`] and [`MAX_CLAUSES`] clauses.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{AppError, bounded};

pub const MAX_FILTER_CHARS: usize = 4000;
pub const MAX_CLAUSES: usize = 50;
pub const MAX_ORDER_KEYS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// What a clause is checked against: one run as MLflow shows it.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub run_id: String,
    pub run_name: String,
    /// MLflow's status name (`RUNNING`, `FINISHED`, ...).
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub user_id: String,
    pub lifecycle_stage: String,
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// The attributes a search knows: compared as strings, or as numbers.
#[derive(Debug, Clone, Copy)]
pub struct Grammar {
    pub strings: &'static [&'static str],
    pub numbers: &'static [&'static str],
}

/// `search-runs`.
pub const RUNS: Grammar = Grammar {
    strings: &["run_id", "run_name", "status", "user_id", "lifecycle_stage"],
    numbers: &["start_time", "end_time"],
};
/// `registered-models/search`.
pub const MODELS: Grammar = Grammar {
    strings: &["name"],
    numbers: &[],
};
/// `model-versions/search` (a version is compared as text: `version = '3'`).
pub const VERSIONS: Grammar = Grammar {
    strings: &["name", "run_id", "source", "version", "current_stage"],
    numbers: &[],
};

/// Something a clause is checked against.
pub trait Facts {
    fn text(&self, entity: Entity, key: &str) -> Option<std::borrow::Cow<'_, str>>;
    fn number(&self, entity: Entity, key: &str) -> Option<f64>;
}

fn bad(message: String) -> AppError {
    AppError::validation("filter", message)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Quoted(String),
    Number(f64),
    Op(String),
    Comma,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, AppError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' | '`' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("a quoted string is not closed".into())),
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                // Backticks and double quotes around a key are part of the identifier.
                if c == '`' {
                    out.push(Token::Ident(s));
                } else {
                    out.push(Token::Quoted(s));
                }
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('!', Some('=')) | ('<', Some('=')) | ('>', Some('=')) | ('=', Some('=')) => {
                        i += 2;
                        format!("{c}=")
                    }
                    ('!', _) => return Err(bad("`!` must be followed by `=`".into())),
                    _ => {
                        i += 1;
                        c.to_string()
                    }
                };
                out.push(Token::Op(if op == "==" { "=".into() } else { op }));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '+'))
                {
                    i += 1;
                }
                let s: String = chars.get(start..i).unwrap_or_default().iter().collect();
                let n: f64 = s
                    .parse()
                    .map_err(|_| bad(format!("`{}` is no number", bounded(&s, 40))))?;
                out.push(Token::Number(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while chars.get(i).is_some_and(|ch| {
                    ch.is_alphanumeric() || matches!(ch, '_' | '.' | '-' | '`' | '"')
                }) {
                    // A quoted key after the entity's dot: `metrics."a b"` or metrics.`a b`.
                    if matches!(chars.get(i), Some('`' | '"')) {
                        let quote = chars.get(i).copied().unwrap_or('"');
                        i += 1;
                        while chars.get(i).is_some_and(|&ch| ch != quote) {
                            i += 1;
                        }
                        if chars.get(i).is_none() {
                            return Err(bad("a quoted key is not closed".into()));
                        }
                    }
                    i += 1;
                }
                let s: String = chars.get(start..i).unwrap_or_default().iter().collect();
                out.push(Token::Ident(s));
            }
            other => {
                return Err(bad(format!("unexpected character `{other}`")));
            }
        }
    }
    Ok(out)
}

/// Splits `metrics.acc` or metrics.`a b` into its entity and key.
fn identifier(text: &str, grammar: Grammar) -> Result<(Entity, String), AppError> {
    let (prefix, key) = match text.split_once('.') {
        Some((p, k)) => (Some(p), k),
        None => (None, text),
    };
    let entity = match prefix.map(|p| p.to_ascii_lowercase()).as_deref() {
        None => Entity::Attribute,
        Some("metrics" | "metric") => Entity::Metric,
        Some("params" | "param" | "parameters" | "parameter") => Entity::Param,
        Some("tags" | "tag") => Entity::Tag,
        Some("attributes" | "attribute" | "attr" | "run") => Entity::Attribute,
        // A dotted key without an entity: `mlflow.runName` is no attribute.
        Some(_) => {
            return Err(bad(format!(
                "`{}`: a key is `metrics.<name>`, `params.<name>`, `tags.<name>` or an attribute",
                bounded(text, 64)
            )));
        }
    };
    let key = key
        .strip_prefix(['`', '"'])
        .and_then(|k| k.strip_suffix(['`', '"']))
        .unwrap_or(key)
        .to_owned();
    if key.is_empty() {
        return Err(bad("a key is empty".into()));
    }
    if entity == Entity::Attribute {
        let known =
            grammar.strings.contains(&key.as_str()) || grammar.numbers.contains(&key.as_str());
        if !known {
            return Err(bad(format!(
                "`{}` is no attribute here; use one of {}",
                bounded(&key, 64),
                grammar
                    .strings
                    .iter()
                    .chain(grammar.numbers.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok((entity, key))
}

fn numeric(entity: Entity, key: &str, grammar: Grammar) -> bool {
    entity == Entity::Metric || (entity == Entity::Attribute && grammar.numbers.contains(&key))
}

/// Parses a runs filter; an empty one matches every run.
pub fn parse_filter(text: &str) -> Result<Vec<Clause>, AppError> {
    parse_filter_for(text, RUNS)
}

/// Parses a filter in `grammar`; an empty one matches everything.
pub fn parse_filter_for(text: &str, grammar: Grammar) -> Result<Vec<Clause>, AppError> {
    if text.chars().count() > MAX_FILTER_CHARS {
        return Err(bad(format!(
            "must be at most {MAX_FILTER_CHARS} characters"
        )));
    }
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut it = tokens.into_iter().peekable();
    while it.peek().is_some() {
        if !clauses.is_empty() {
            match it.next() {
                Some(Token::Ident(w)) if w.eq_ignore_ascii_case("and") => {}
                _ => return Err(bad("clauses are joined by AND (OR is not supported)".into())),
            }
        }
        let (entity, key) = match it.next() {
            Some(Token::Ident(s)) => identifier(&s, grammar)?,
            _ => {
                return Err(bad(
                    "a clause starts with a key, such as metrics.accuracy".into()
                ));
            }
        };
        let op = match it.next() {
            Some(Token::Op(o)) => match o.as_str() {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                _ => return Err(bad(format!("unknown operator `{o}`"))),
            },
            Some(Token::Ident(w)) => match w.to_ascii_uppercase().as_str() {
                "LIKE" => Op::Like,
                "ILIKE" => Op::ILike,
                "IN" => Op::In,
                "NOT" => match it.next() {
                    Some(Token::Ident(w)) if w.eq_ignore_ascii_case("in") => Op::NotIn,
                    _ => return Err(bad("NOT is only used as NOT IN".into())),
                },
                _ => return Err(bad(format!("unknown operator `{}`", bounded(&w, 20)))),
            },
            _ => return Err(bad(format!("`{}` needs an operator", bounded(&key, 64)))),
        };
        let value = match (op, it.next()) {
            (Op::In | Op::NotIn, Some(Token::Open)) => {
                let mut items = Vec::new();
                loop {
                    match it.next() {
                        Some(Token::Quoted(s)) => items.push(s),
                        Some(Token::Number(n)) => items.push(n.to_string()),
                        _ => return Err(bad("IN takes a list of quoted strings".into())),
                    }
                    match it.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => break,
                        _ => return Err(bad("IN's list is not closed with `)`".into())),
                    }
                }
                Value::List(items)
            }
            (Op::In | Op::NotIn, _) => return Err(bad("IN takes a list in parentheses".into())),
            (_, Some(Token::Number(n))) => Value::Number(n),
            (_, Some(Token::Quoted(s))) => Value::Text(s),
            _ => return Err(bad(format!("`{}` needs a value", bounded(&key, 64)))),
        };
        let is_numeric = numeric(entity, &key, grammar);
        match (&value, is_numeric, op) {
            (Value::Number(_), true, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) => {}
            (Value::Text(_), false, Op::Eq | Op::Ne | Op::Like | Op::ILike) => {}
            (Value::List(_), false, Op::In | Op::NotIn) => {}
            (_, true, _) => {
                return Err(bad(format!(
                    "`{}` is compared to a number with =, !=, <, <=, > or >=",
                    bounded(&key, 64)
                )));
            }
            (_, false, _) => {
                return Err(bad(format!(
                    "`{}` is compared to a quoted string with =, !=, LIKE, ILIKE, IN or NOT IN",
                    bounded(&key, 64)
                )));
            }
        }
        clauses.push(Clause {
            entity,
            key,
            op,
            value,
        });
        if clauses.len() > MAX_CLAUSES {
            return Err(bad(format!("has more than {MAX_CLAUSES} clauses")));
        }
    }
    Ok(clauses)
}

/// Parses `order_by` entries (`metrics.acc DESC`, `start_time`, ...).
pub fn parse_order(entries: &[String]) -> Result<Vec<Order>, AppError> {
    if entries.len() > MAX_ORDER_KEYS {
        return Err(AppError::validation(
            "order_by",
            format!("takes at most {MAX_ORDER_KEYS} keys"),
        ));
    }
    entries
        .iter()
        .map(|entry| {
            let tokens = tokenize(entry).map_err(|_| {
                AppError::validation(
                    "order_by",
                    format!("`{}` is no sort key", bounded(entry, 64)),
                )
            })?;
            let mut words = tokens.into_iter();
            let (entity, key) = match words.next() {
                Some(Token::Ident(s)) => identifier(&s, RUNS)
                    .map_err(|e| AppError::validation("order_by", e.to_string()))?,
                _ => {
                    return Err(AppError::validation(
                        "order_by",
                        format!("`{}` is no sort key", bounded(entry, 64)),
                    ));
                }
            };
            let ascending = match words.next() {
                None => true,
                Some(Token::Ident(w)) if w.eq_ignore_ascii_case("asc") => true,
                Some(Token::Ident(w)) if w.eq_ignore_ascii_case("desc") => false,
                _ => {
                    return Err(AppError::validation(
                        "order_by",
                        format!("`{}`: a key is followed by ASC or DESC", bounded(entry, 64)),
                    ));
                }
            };
            if words.next().is_some() {
                return Err(AppError::validation(
                    "order_by",
                    format!(
                        "`{}` has more than a key and a direction",
                        bounded(entry, 64)
                    ),
                ));
            }
            Ok(Order {
                entity,
                key,
                ascending,
            })
        })
        .collect()
}

/// Where the next page starts after a page that showed `shown` of `total` items from
/// `offset`; `None` when it was the last.
pub fn next_page(offset: usize, shown: usize, total: usize) -> Option<usize> {
    (shown > 0 && offset + shown < total).then(|| offset + shown)
}

/// SQL's LIKE: `%` any run of characters, `_` one character.
pub fn like(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            text.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    // Dynamic programming over (pattern position, text position): linear memory.
    let mut row = vec![false; t.len() + 1];
    if let Some(first) = row.first_mut() {
        *first = true;
    }
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        if *pc == '%' {
            let mut any = false;
            for (j, slot) in next.iter_mut().enumerate() {
                any = any || row.get(j).copied().unwrap_or(false);
                *slot = any;
            }
        } else {
            for (j, tc) in t.iter().enumerate() {
                if row.get(j).copied().unwrap_or(false) && (*pc == '_' || pc == tc) {
                    if let Some(slot) = next.get_mut(j + 1) {
                        *slot = true;
                    }
                }
            }
        }
        row = next;
    }
    row.last().copied().unwrap_or(false)
}

impl Facts for RunFacts {
    fn text(&self, entity: Entity, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        text_of(self, entity, key)
    }

    fn number(&self, entity: Entity, key: &str) -> Option<f64> {
        number_of(self, entity, key)
    }
}

fn text_of<'a>(run: &'a RunFacts, entity: Entity, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match entity {
        Entity::Param => run.params.get(key).map(|s| s.as_str().into()),
        Entity::Tag => run.tags.get(key).map(|s| s.as_str().into()),
        Entity::Attribute => match key {
            "run_id" => Some(run.run_id.as_str().into()),
            "run_name" => Some(run.run_name.as_str().into()),
            "status" => Some(run.status.as_str().into()),
            "user_id" => Some(run.user_id.as_str().into()),
            "lifecycle_stage" => Some(run.lifecycle_stage.as_str().into()),
            _ => None,
        },
        Entity::Metric => None,
    }
}

fn number_of(run: &RunFacts, entity: Entity, key: &str) -> Option<f64> {
    match (entity, key) {
        (Entity::Metric, _) => run.metrics.get(key).copied(),
        (Entity::Attribute, "start_time") => Some(run.start_time as f64),
        (Entity::Attribute, "end_time") => run.end_time.map(|t| t as f64),
        _ => None,
    }
}

/// Most character comparisons the `LIKE` clauses of one search may cost (text length ×
/// pattern length, summed over the rows checked): a search past it is refused (400) rather
/// than left to run.
pub const LIKE_BUDGET: u64 = 20_000_000;

/// What checking `facts` against the `LIKE` and `ILIKE` clauses costs, in character
/// comparisons.
pub fn like_cost(facts: &dyn Facts, clauses: &[Clause]) -> u64 {
    clauses
        .iter()
        .filter(|c| matches!(c.op, Op::Like | Op::ILike))
        .map(|c| {
            let pattern = match &c.value {
                Value::Text(p) => p.chars().count() as u64,
                _ => 0,
            };
            let text = facts
                .text(c.entity, &c.key)
                .map(|t| t.chars().count() as u64)
                .unwrap_or(0);
            (text + 1) * (pattern + 1)
        })
        .sum()
}

/// Whether `facts` meet every clause.
pub fn matches(facts: &dyn Facts, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match &c.value {
        Value::Number(want) => facts.number(c.entity, &c.key).is_some_and(|v| match c.op {
            Op::Eq => v == *want,
            Op::Ne => v != *want,
            Op::Lt => v < *want,
            Op::Le => v <= *want,
            Op::Gt => v > *want,
            Op::Ge => v >= *want,
            _ => false,
        }),
        Value::Text(want) => facts.text(c.entity, &c.key).is_some_and(|v| match c.op {
            Op::Eq => v == want.as_str(),
            Op::Ne => v != want.as_str(),
            Op::Like => like(&v, want, false),
            Op::ILike => like(&v, want, true),
            _ => false,
        }),
        Value::List(items) => facts.text(c.entity, &c.key).is_some_and(|v| {
            let found = items.iter().any(|i| i.as_str() == v);
            if c.op == Op::In { found } else { !found }
        }),
    })
}

/// Sorts runs by `order` (missing keys last), after the default newest-first order.
pub fn sort(runs: &mut [RunFacts], order: &[Order]) {
    runs.sort_by(|a, b| {
        for o in order {
            let ord = if numeric(o.entity, &o.key, RUNS) {
                match (
                    number_of(a, o.entity, &o.key),
                    number_of(b, o.entity, &o.key),
                ) {
                    (Some(x), Some(y)) => {
                        let ord = x.total_cmp(&y);
                        if o.ascending { ord } else { ord.reverse() }
                    }
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            } else {
                match (text_of(a, o.entity, &o.key), text_of(b, o.entity, &o.key)) {
                    (Some(x), Some(y)) => {
                        let ord = x.cmp(&y);
                        if o.ascending { ord } else { ord.reverse() }
                    }
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| a.run_id.cmp(&b.run_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, acc: f64, model: &str, start: i64) -> RunFacts {
        RunFacts {
            run_id: id.into(),
            status: "FINISHED".into(),
            start_time: start,
            metrics: [("acc".to_owned(), acc)].into(),
            params: [("model".to_owned(), model.to_owned())].into(),
            tags: [("team".to_owned(), "heart".to_owned())].into(),
            ..RunFacts::default()
        }
    }

    #[test]
    fn clauses_on_metrics_params_tags_and_attributes() {
        let runs = [run("a", 0.9, "lr", 1), run("b", 0.4, "rf", 2)];
        let f = parse_filter("metrics.acc > 0.5 and params.model = 'lr'").unwrap_or_default();
        assert_eq!(f.len(), 2);
        assert!(matches(&runs[0], &f) && !matches(&runs[1], &f));
        let f = parse_filter("tags.team LIKE 'he%' AND attributes.status = \"FINISHED\"")
            .unwrap_or_default();
        assert!(runs.iter().all(|r| matches(r, &f)));
        let f = parse_filter("params.model IN ('rf', 'xgb')").unwrap_or_default();
        assert!(!matches(&runs[0], &f) && matches(&runs[1], &f));
        let f = parse_filter("params.model NOT IN ('rf')").unwrap_or_default();
        assert!(matches(&runs[0], &f) && !matches(&runs[1], &f));
        let f = parse_filter("metrics.`acc` >= 0.4 and start_time < 2").unwrap_or_default();
        assert!(matches(&runs[0], &f) && !matches(&runs[1], &f));
        // A run without the key does not match, whatever the operator.
        let f = parse_filter("metrics.loss != 1").unwrap_or_default();
        assert!(!matches(&runs[0], &f));
        assert!(parse_filter("").is_ok_and(|c| c.is_empty()));
    }

    #[test]
    fn bad_filters_name_the_problem() {
        for bad in [
            "metrics.acc > 'x'",
            "params.model > 1",
            "acc > 1",
            "metrics.acc > 1 or params.a = 'b'",
            "metrics.acc >",
            "params.a = 'open",
            "mlflow.runName = 'x'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_filter(&"a".repeat(MAX_FILTER_CHARS + 1)).is_err());
    }

    #[test]
    fn like_costs_text_times_pattern() {
        let r = run("a", 0.5, "lr-model", 1);
        let f = parse_filter("params.model LIKE 'lr%' and metrics.acc > 0").unwrap_or_default();
        assert_eq!(like_cost(&r, &f), (8 + 1) * (3 + 1));
        let f = parse_filter("params.missing LIKE '%'").unwrap_or_default();
        assert_eq!(like_cost(&r, &f), 2);
    }

    #[test]
    fn like_is_sqls() {
        assert!(like("heart-v2", "heart%", false));
        assert!(like("heart", "h_art", false));
        assert!(!like("Heart", "heart", false));
        assert!(like("Heart", "heart", true));
        assert!(like("", "%", false));
        assert!(!like("abc", "a_", false));
    }

    #[test]
    fn order_by_puts_missing_keys_last() {
        let mut runs = vec![run("a", 0.5, "lr", 1), run("b", 0.9, "rf", 2)];
        runs.push(RunFacts {
            run_id: "c".into(),
            start_time: 3,
            ..RunFacts::default()
        });
        let order = parse_order(&["metrics.acc DESC".to_owned()]).unwrap_or_default();
        sort(&mut runs, &order);
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        // Default: newest start first.
        sort(&mut runs, &[]);
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert!(parse_order(&["metrics.acc sideways".to_owned()]).is_err());
    }
}
