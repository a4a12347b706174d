//! Reports in HTML and PDF: the model card, a check's drift report and the weekly summary,
//! through the API and the CLI. Each PDF is read back with poppler (pdfinfo for the page count,
//! pdftotext for its text, pdftoppm for its pages as PNG, kept under target/ to look at).

use std::path::{Path, PathBuf};
use std::process::Command;

use steward::ml::models::ModelKind;

use crate::helpers::{run_check, simulate, spawn_app_with};
use crate::notify::pdftotext;

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

fn pages(path: &Path) -> usize {
    let out = Command::new("pdfinfo")
        .arg(path)
        .output()
        .expect("pdfinfo (poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a page count")
}

/// Renders every page as a PNG under target/report-<name>-N.png; returns how many.
fn to_png(path: &Path, name: &str) -> usize {
    let out_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target"));
    let prefix = out_dir.join(format!("report-{name}"));
    let ours = |n: &str| n.starts_with(&format!("report-{name}-")) && n.ends_with(".png");
    // Pages of an earlier run go first.
    for e in std::fs::read_dir(&out_dir).expect("as set up").flatten() {
        if ours(&e.file_name().to_string_lossy()) {
            std::fs::remove_file(e.path()).expect("as set up");
        }
    }
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "60"])
        .arg(path)
        .arg(&prefix)
        .output()
        .expect("pdftoppm (poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(&out_dir)
        .expect("as set up")
        .flatten()
        .filter(|e| ours(&e.file_name().to_string_lossy()))
        .count()
}

async fn download(
    app: &crate::helpers::TestApp,
    token: &str,
    path: &str,
) -> (u16, String, Vec<u8>) {
    let response = crate::helpers::client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("as set up");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("as set up").to_owned())
        .unwrap_or_default();
    (
        status,
        kind,
        response.bytes().await.expect("as set up").to_vec(),
    )
}

/// A PDF's pages, text and PNGs; asserts it has at least `min_pages` and the texts.
fn check_pdf(bytes: &[u8], name: &str, min_pages: usize, texts: &[&str]) -> String {
    assert!(bytes.starts_with(b"%PDF-"), "{name}: not a PDF");
    let dir = tempfile::tempdir().expect("as set up");
    let path = dir.path().join(format!("{name}.pdf"));
    std::fs::write(&path, bytes).expect("as set up");
    let n = pages(&path);
    assert!(n >= min_pages, "{name}: {n} pages");
    assert_eq!(to_png(&path, name), n, "{name}: one PNG per page");
    // Every font is embedded (poppler's pdffonts: the "emb" column).
    let fonts = Command::new("pdffonts")
        .arg(&path)
        .output()
        .expect("pdffonts (poppler-utils)");
    let fonts = String::from_utf8_lossy(&fonts.stdout).into_owned();
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{name}: no fonts\n{fonts}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cols.len() >= 5 && cols[cols.len() - 5] == "yes",
            "{name}: a font not embedded: {row}"
        );
    }
    let text = pdftotext(&path);
    for t in texts {
        assert!(text.contains(t), "{name}: no {t:?} in\n{text}");
    }
    text
}

#[tokio::test]
async fn model_card_drift_and_weekly_reports_in_html_and_pdf() {
    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr, ModelKind::Rf];
        s.training.rf.trees = 30;
    })
    .await;
    let token = app.admin_token().await;

    // The model card of v1, in both formats.
    let (status, kind, html) = download(&app, &token, "/api/v1/reports/model-card/1").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&html));
    assert!(kind.starts_with("text/html"), "{kind}");
    let html = String::from_utf8(html).expect("as set up");
    for t in [
        "Model card: heart-disease v1",
        "<svg",
        "Calibration",
        "Feature importance",
        "Stage history",
        "Slices",
    ] {
        assert!(html.contains(t), "no {t:?} in the HTML card");
    }
    assert!(!html.contains("<script"), "self-contained, no script");
    let (status, kind, pdf) =
        download(&app, &token, "/api/v1/reports/model-card/1?format=pdf").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/pdf");
    let text = check_pdf(
        &pdf,
        "model-card",
        2,
        &[
            "Model card: heart-disease v1",
            "Metrics",
            "CV mean",
            "Slices",
            "female",
            "Calibration",
            "Feature importance",
            "thalach",
            "Stage history",
            "Production",
            "Live performance",
        ],
    );
    // The charts are drawn into the PDF: their labels are text in it.
    assert!(
        text.contains("false positive rate") || text.contains("ROC"),
        "{text}"
    );

    // A check's drift report, after Hungarian traffic.
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &token,
        true,
    )
    .await;
    let check = run_check(&app, &token).await;
    let id = check["id"].as_str().expect("as set up");
    let (status, _, pdf) = download(
        &app,
        &token,
        &format!("/api/v1/reports/drift/{id}?format=pdf"),
    )
    .await;
    assert_eq!(status, 200);
    check_pdf(
        &pdf,
        "drift",
        2,
        &[
            "Drift report: heart-disease v1",
            "Features",
            "stattest",
            "chol",
            "Distributions",
        ],
    );
    let (status, _, html) = download(&app, &token, &format!("/api/v1/reports/drift/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(html)
            .expect("as set up")
            .contains("Dataset drift")
    );

    // The weekly summary: the traffic just sent, the check, the first promotion.
    let (status, _, pdf) = download(&app, &token, "/api/v1/reports/weekly?format=pdf").await;
    assert_eq!(status, 200);
    let text = check_pdf(
        &pdf,
        "weekly",
        1,
        &[
            "Weekly summary: heart-disease",
            "Traffic",
            "Predictions",
            "Drift",
            "Incidents",
            "Actions",
            "Approvals",
            "Model changes",
        ],
    );
    assert!(
        text.contains("294"),
        "Hungary's 294 predictions are counted: {text}"
    );

    // The CLI writes both files from the same store.
    let dir = tempfile::tempdir().expect("as set up");
    let (pdf_path, html_path) = (dir.path().join("card.pdf"), dir.path().join("card.html"));
    let out = app
        .cli()
        .args(["report", "model-card", "1", "--pdf"])
        .arg(&pdf_path)
        .arg("--html")
        .arg(&html_path)
        .output()
        .expect("as set up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&pdf_path)
            .expect("as set up")
            .starts_with(b"%PDF-")
    );
    assert!(
        std::fs::read_to_string(&html_path)
            .expect("as set up")
            .contains("Model card")
    );
    let out = app
        .cli()
        .args(["report", "weekly", "--end", "2026-13-01"])
        .output()
        .expect("as set up");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("end"));

    // Bad input is named; a missing version or check is a 404.
    for (path, code) in [
        ("/api/v1/reports/model-card/0", 422),
        ("/api/v1/reports/model-card/x", 422),
        ("/api/v1/reports/model-card/99", 404),
        ("/api/v1/reports/model-card/1?format=docx", 422),
        ("/api/v1/reports/model-card/1?end=2026-11-30", 422),
        ("/api/v1/reports/model-card/1?colour=red", 400),
        ("/api/v1/reports/drift/nope?format=pdf", 404),
        ("/api/v1/reports/weekly?end=yesterday", 422),
        ("/api/v1/reports/weekly?end=%2B262142-12-31", 422),
        ("/api/v1/reports/weekly?end=1999-12-31", 422),
        ("/api/v1/reports/weekly?end=2200-01-01", 422),
        (
            "/api/v1/reports/weekly?end=2026-11-29T08:00:00Z&colour=red",
            400,
        ),
    ] {
        let (status, _, body) = download(&app, &token, path).await;
        assert_eq!(status, code, "{path}: {}", String::from_utf8_lossy(&body));
    }
    // Anonymous visitors get nothing (public_read is off).
    let anonymous = crate::helpers::client()
        .get(app.url("/api/v1/reports/model-card/1?format=pdf"))
        .send()
        .await
        .expect("as set up");
    assert_eq!(anonymous.status(), 401);
}
