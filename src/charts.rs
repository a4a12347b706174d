//! Charts as SVG rendered on the server (askama templates under `templates/charts/`): the
//! same markup is stored as a run's artifact and inlined into dashboard pages, so no chart
//! library runs in the browser.

use askama::Template;

use crate::ml::FeatureImportance;
use crate::ml::metrics::{CalibrationBin, RocPoint};

const COLORS: [&str; 4] = ["#2563eb", "#dc2626", "#059669", "#d97706"];

/// Plot area inside a 360-wide canvas; the legend goes below it, so it never covers a curve.
const LEFT: f64 = 56.0;
const TOP: f64 = 28.0;
const SIZE_X: f64 = 284.0;
const SIZE_Y: f64 = 228.0;

struct Series {
    label: String,
    color: &'static str,
    points: String,
    /// Dots at the points (calibration bins, few-point histories); a curve is a line only.
    dots: Vec<(f64, f64)>,
}

#[derive(Template)]
#[template(path = "charts/xy.svg", escape = "html")]
struct XyChart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: Vec<Series>,
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
    diagonal: bool,
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    height: f64,
}

/// A linear axis from `min` to `max`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    min: f64,
    max: f64,
}

impl Scale {
    const UNIT: Scale = Scale { min: 0.0, max: 1.0 };

    /// A range covering `values` with a little room, never empty.
    fn covering(values: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            return Scale::UNIT;
        }
        if max - min < 1e-12 {
            return Scale {
                min: min - 0.5,
                max: max + 0.5,
            };
        }
        let pad = (max - min) * 0.05;
        Scale {
            min: min - pad,
            max: max + pad,
        }
    }

    fn share(&self, v: f64) -> f64 {
        ((v - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }

    /// The exact range of `values` (steps: folds, rounds), or [0, 1] when there are none.
    fn exact(values: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() || max - min < 1e-12 {
            return Scale::covering([min, max].into_iter());
        }
        Scale { min, max }
    }

    /// Ticks at whole steps (at most five), for an axis of steps.
    fn integer_ticks(&self) -> Vec<(f64, String)> {
        let span = (self.max - self.min).max(1.0);
        let step = (span / 4.0).ceil().max(1.0);
        let mut out = Vec::new();
        let mut v = self.min.ceil();
        while v <= self.max + 1e-9 && out.len() < 6 {
            out.push((self.share(v), format!("{v:.0}")));
            v += step;
        }
        out
    }

    /// Five ticks, labelled with as few decimals as tell them apart.
    fn ticks(&self) -> Vec<(f64, String)> {
        let step = (self.max - self.min) / 4.0;
        let decimals = if step >= 10.0 {
            0
        } else if step >= 1.0 {
            1
        } else if step >= 0.1 {
            2
        } else {
            3
        };
        (0..5)
            .map(|i| {
                let v = self.min + step * f64::from(i);
                let label = if *self == Scale::UNIT {
                    format!("{}", v)
                } else if self.max.abs().max(self.min.abs()) >= 10_000.0 {
                    // Large values in thousands or millions, so labels fit the margin.
                    compact(v, step)
                } else {
                    format!("{v:.decimals$}")
                };
                (self.share(v), label)
            })
            .collect()
    }
}

/// 215749.8 → "215.7k", 3.2e6 → "3.20M": a few digits, as many decimals as `step` needs.
fn compact(v: f64, step: f64) -> String {
    let (unit, suffix) = if v.abs().max(step) >= 1e6 {
        (1e6, "M")
    } else {
        (1e3, "k")
    };
    let scaled_step = step / unit;
    let decimals = if scaled_step >= 1.0 {
        0
    } else if scaled_step >= 0.1 {
        1
    } else if scaled_step >= 0.01 {
        2
    } else {
        3
    };
    format!("{:.decimals$}{suffix}", v / unit)
}

impl PartialEq for Scale {
    fn eq(&self, other: &Self) -> bool {
        self.min == other.min && self.max == other.max
    }
}

fn px(share: f64) -> f64 {
    LEFT + share.clamp(0.0, 1.0) * SIZE_X
}

fn py(share: f64) -> f64 {
    TOP + (1.0 - share.clamp(0.0, 1.0)) * SIZE_Y
}

fn polyline(points: impl Iterator<Item = (f64, f64)>, x: Scale, y: Scale) -> String {
    points
        .map(|(a, b)| format!("{:.1},{:.1}", px(x.share(a)), py(y.share(b))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn xy(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: Vec<Series>,
    (x, y): (Scale, Scale),
    diagonal: bool,
) -> String {
    let bottom = TOP + SIZE_Y;
    // Without the chance diagonal the x axis counts steps (folds, rounds): whole ticks.
    let x_ticks = if diagonal {
        x.ticks()
    } else {
        x.integer_ticks()
    };
    XyChart {
        title,
        x_label,
        y_label,
        x_ticks: x_ticks.into_iter().map(|(s, l)| (px(s), l)).collect(),
        y_ticks: y.ticks().into_iter().map(|(s, l)| (py(s), l)).collect(),
        height: bottom + 48.0 + series.len() as f64 * 16.0,
        series,
        diagonal,
        left: LEFT,
        top: TOP,
        right: LEFT + SIZE_X,
        bottom,
    }
    .render()
    .unwrap_or_default()
}

fn color(i: usize) -> &'static str {
    COLORS.get(i % COLORS.len()).copied().unwrap_or("#2563eb")
}

/// ROC curves, one per (label, points), over the chance diagonal.
pub fn roc(curves: &[(String, &[RocPoint])]) -> String {
    let series = curves
        .iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label: label.clone(),
            color: color(i),
            points: polyline(
                points.iter().map(|p| (p.fpr, p.tpr)),
                Scale::UNIT,
                Scale::UNIT,
            ),
            dots: Vec::new(),
        })
        .collect();
    xy(
        "ROC curve",
        "false positive rate",
        "true positive rate",
        series,
        (Scale::UNIT, Scale::UNIT),
        true,
    )
}

/// The reliability diagram: observed positive rate against mean predicted probability per bin.
pub fn calibration(label: &str, bins: &[CalibrationBin]) -> String {
    let unit = Scale::UNIT;
    let series = vec![Series {
        label: label.to_owned(),
        color: color(0),
        points: polyline(
            bins.iter().map(|b| (b.mean_predicted, b.fraction_positive)),
            unit,
            unit,
        ),
        dots: bins
            .iter()
            .map(|b| {
                (
                    px(unit.share(b.mean_predicted)),
                    py(unit.share(b.fraction_positive)),
                )
            })
            .collect(),
    }];
    xy(
        "Calibration",
        "mean predicted probability",
        "observed positive rate",
        series,
        (unit, unit),
        true,
    )
}

/// One polyline per (label, points) on the axes; series with a handful of points get dots, so
/// single points can be read.
fn line_series(lines: &[(String, Vec<(f64, f64)>)], x: Scale, y: Scale) -> Vec<Series> {
    lines
        .iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label: label.clone(),
            color: color(i),
            points: polyline(points.iter().copied(), x, y),
            dots: if points.len() <= 20 {
                points
                    .iter()
                    .map(|&(a, b)| (px(x.share(a)), py(y.share(b))))
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// A metric's history: one line per (label, points of (step, value)), on axes that fit the
/// data (XGBoost's holdout log-loss per boosting round, a metric per cross-validation fold).
/// Series with a handful of points get dots, so single folds can be read.
pub fn history(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> String {
    let x = Scale::exact(lines.iter().flat_map(|(_, p)| p.iter().map(|(a, _)| *a)));
    let y = Scale::covering(lines.iter().flat_map(|(_, p)| p.iter().map(|(_, b)| *b)));
    let series = line_series(lines, x, y);
    xy(title, x_label, y_label, series, (x, y), false)
}

#[derive(Template)]
#[template(path = "charts/confusion.svg", escape = "html")]
struct ConfusionChart {
    cells: Vec<(f64, f64, String, u64, String)>,
    total: u64,
}

/// The 2 × 2 confusion matrix, cells shaded by their share of the rows.
pub fn confusion(matrix: &[[u64; 2]; 2]) -> String {
    let total: u64 = matrix.iter().flatten().sum();
    let names = [
        ["true negatives", "false positives"],
        ["false negatives", "true positives"],
    ];
    let mut cells = Vec::new();
    for ((actual, row), row_names) in matrix.iter().enumerate().zip(names) {
        for ((predicted, &count), name) in row.iter().enumerate().zip(row_names) {
            let share = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            let fill = format!(
                "rgba(37, 99, 235, {:.2})",
                0.08 + 0.8 * share.clamp(0.0, 1.0)
            );
            cells.push((
                110.0 + predicted as f64 * 110.0,
                40.0 + actual as f64 * 90.0,
                name.to_owned(),
                count,
                fill,
            ));
        }
    }
    ConfusionChart { cells, total }.render().unwrap_or_default()
}

#[derive(Template)]
#[template(path = "charts/bars.svg", escape = "html")]
struct BarChart {
    title: String,
    height: f64,
    bars: Vec<(f64, f64, String, String)>,
}

/// The largest feature importances as horizontal bars.
pub fn importance(items: &[FeatureImportance], top: usize) -> String {
    let mut sorted: Vec<&FeatureImportance> = items.iter().collect();
    sorted.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    sorted.truncate(top);
    let items: Vec<(String, f64)> = sorted
        .iter()
        .map(|f| (f.feature.clone(), f.importance))
        .collect();
    bars("Feature importance", &items)
}

/// Horizontal bars, one per (label, value ≥ 0), scaled to the largest, in the given order; the
/// value is printed at each bar's end (an integer as such, else 3 decimals).
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let max = items
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let bars = items
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            let width = if max > 0.0 && value.is_finite() {
                value.max(0.0) / max * 200.0
            } else {
                0.0
            };
            let text = if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{value:.0}")
            } else {
                format!("{value:.3}")
            };
            (30.0 + i as f64 * 20.0, width, label.clone(), text)
        })
        .collect::<Vec<_>>();
    BarChart {
        title: title.to_owned(),
        height: 40.0 + bars.len() as f64 * 20.0,
        bars,
    }
    .render()
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_data() {
        let points = [
            RocPoint {
                fpr: 0.0,
                tpr: 0.0,
                threshold: 1.0,
            },
            RocPoint {
                fpr: 0.5,
                tpr: 1.0,
                threshold: 0.4,
            },
        ];
        let svg = roc(&[("lr <&>".into(), &points)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("lr &#60;&#38;&#62;"),
            "labels are escaped: {svg}"
        );
        assert!(svg.contains("56.0,256.0 198.0,28.0"), "{svg}");
        // The legend sits below the plot area (y past its bottom at 256), never on a curve.
        assert!(
            svg.contains(r#"y="306""#) || svg.contains(r#"y="306.0""#),
            "{svg}"
        );
        // Large values fit the margin.
        assert_eq!(compact(215_749.82, 0.25), "215.750k");
        assert_eq!(compact(3_200_000.0, 500_000.0), "3.2M");
        let svg = history(
            "Holdout log-loss",
            "round",
            "log-loss",
            &[("xgb".into(), vec![(0.0, 0.69), (1.0, 0.6), (2.0, 0.55)])],
        );
        assert!(svg.contains("<circle"), "few points get dots: {svg}");
        assert!(
            !svg.contains("stroke-dasharray"),
            "no chance diagonal: {svg}"
        );
        let svg = confusion(&[[5, 1], [2, 7]]);
        assert!(svg.contains(">7<") && svg.contains("true positives"));
    }
}

struct HistogramBar {
    x: f64,
    w: f64,
    ref_y: f64,
    cur_y: f64,
    label: String,
    ref_label: String,
    cur_label: String,
    show_label: bool,
}

#[derive(Template)]
#[template(path = "charts/histogram.svg", escape = "html")]
struct HistogramChart<'a> {
    title: &'a str,
    width: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    y_ticks: Vec<(f64, String)>,
    bars: Vec<HistogramBar>,
}

/// Reference and current shares side by side per bin (a drift check's histogram of one
/// feature): grey the reference, blue the current.
pub fn histogram(title: &str, labels: &[String], reference: &[f64], current: &[f64]) -> String {
    let (left, right, top, bottom) = (56.0, 700.0, 28.0, 240.0);
    let max = reference
        .iter()
        .chain(current)
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let y = Scale { min: 0.0, max };
    let to_y = |v: f64| bottom - y.share(v) * (bottom - top);
    let n = labels.len().max(1);
    let slot = (right - left) / n as f64;
    let w = slot * 0.4;
    // At most ~12 labels on the axis.
    let every = n.div_ceil(12).max(1);
    let bars = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let r = reference.get(i).copied().unwrap_or(0.0);
            let c = current.get(i).copied().unwrap_or(0.0);
            HistogramBar {
                x: left + slot * i as f64 + slot * 0.1,
                w,
                ref_y: to_y(r),
                cur_y: to_y(c),
                label: label.clone(),
                ref_label: format!("{:.1}%", r * 100.0),
                cur_label: format!("{:.1}%", c * 100.0),
                show_label: i % every == 0,
            }
        })
        .collect();
    HistogramChart {
        title,
        width: right + 12.0,
        left,
        right,
        top,
        bottom,
        y_ticks: y
            .ticks()
            .into_iter()
            .map(|(s, l)| (bottom - s * (bottom - top), l))
            .collect(),
        bars,
    }
    .render()
    .unwrap_or_default()
}

/// Time series for the Trends page: one line per (label, points of (check number, value)).
pub fn trend(title: &str, y_label: &str, lines: &[(String, Vec<(f64, f64)>)]) -> String {
    history(title, "check (oldest to newest)", y_label, lines)
}

/// A trend of shares (0..1) on a fixed 0–1 axis, so small moves are not magnified.
pub fn trend_unit(title: &str, y_label: &str, lines: &[(String, Vec<(f64, f64)>)]) -> String {
    let x = Scale::exact(lines.iter().flat_map(|(_, p)| p.iter().map(|(a, _)| *a)));
    let y = Scale::UNIT;
    let series = line_series(lines, x, y);
    xy(
        title,
        "check (oldest to newest)",
        y_label,
        series,
        (x, y),
        false,
    )
}
