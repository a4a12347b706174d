//! Charts as SVG rendered on the server (askama templates under `templates/charts/`): the
//! same markup is stored as a run's artifact and inlined into dashboard pages, so no chart
//! library runs in the browser.

use askama::Template;

use crate::ml::FeatureImportance;
use crate::ml::metrics::{CalibrationBin, RocPoint};

const COLORS: [&str; 4] = ["#2563eb", "#dc2626", "#059669", "#d97706"];

/// Plot area inside a 360 × 300 canvas.
const LEFT: f64 = 48.0;
const TOP: f64 = 28.0;
const SIZE_X: f64 = 292.0;
const SIZE_Y: f64 = 228.0;

struct Series {
    label: String,
    color: &'static str,
    points: String,
    /// Dots at the points (calibration bins); the ROC curve is a line only.
    dots: Vec<(f64, f64)>,
}

#[derive(Template)]
#[template(path = "charts/xy.svg", escape = "html")]
struct XyChart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: Vec<Series>,
    ticks: Vec<(f64, f64, String)>,
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

fn px(x: f64) -> f64 {
    LEFT + x.clamp(0.0, 1.0) * SIZE_X
}

fn py(y: f64) -> f64 {
    TOP + (1.0 - y.clamp(0.0, 1.0)) * SIZE_Y
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    points
        .map(|(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn xy(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> String {
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|&t| (px(t), py(t), format!("{t}")))
        .collect();
    XyChart {
        title,
        x_label,
        y_label,
        series,
        ticks,
        left: LEFT,
        top: TOP,
        right: LEFT + SIZE_X,
        bottom: TOP + SIZE_Y,
    }
    .render()
    .unwrap_or_default()
}

/// ROC curves, one per (label, points), over the chance diagonal.
pub fn roc(curves: &[(String, &[RocPoint])]) -> String {
    let series = curves
        .iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label: label.clone(),
            color: COLORS.get(i % COLORS.len()).copied().unwrap_or("#2563eb"),
            points: polyline(points.iter().map(|p| (p.fpr, p.tpr))),
            dots: Vec::new(),
        })
        .collect();
    xy(
        "ROC curve",
        "false positive rate",
        "true positive rate",
        series,
    )
}

/// The reliability diagram: observed positive rate against mean predicted probability per bin.
pub fn calibration(label: &str, bins: &[CalibrationBin]) -> String {
    let series = vec![Series {
        label: label.to_owned(),
        color: COLORS[0],
        points: polyline(bins.iter().map(|b| (b.mean_predicted, b.fraction_positive))),
        dots: bins
            .iter()
            .map(|b| (px(b.mean_predicted), py(b.fraction_positive)))
            .collect(),
    }];
    xy(
        "Calibration",
        "mean predicted probability",
        "observed positive rate",
        series,
    )
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
    let max = sorted.first().map(|f| f.importance).unwrap_or(0.0);
    let bars = sorted
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let width = if max > 0.0 {
                f.importance / max * 200.0
            } else {
                0.0
            };
            (
                30.0 + i as f64 * 20.0,
                width,
                f.feature.clone(),
                format!("{:.3}", f.importance),
            )
        })
        .collect::<Vec<_>>();
    BarChart {
        title: "Feature importance".into(),
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
        assert!(svg.contains("48.0,256.0 194.0,28.0"), "{svg}");
        let svg = confusion(&[[5, 1], [2, 7]]);
        assert!(svg.contains(">7<") && svg.contains("true positives"));
    }
}
