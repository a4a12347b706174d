//! The layers hold: the two faces (JSON API, dashboard) call the domain and the shared HTTP
//! plumbing, never each other; domain modules know no HTTP, templates or shared state; and
//! `config` names no domain module but the settings types it is made of.

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    if root.with_extension("rs").is_file() {
        let file = root.with_extension("rs");
        let text = std::fs::read_to_string(&file).expect("source");
        out.push((file, text));
    }
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// Code lines only: doc and ordinary comments may name other layers.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_none(dir: &str, forbidden: &[&str]) {
    for (path, text) in sources(dir) {
        let code = code(&text);
        for f in forbidden {
            assert!(
                !code.contains(f),
                "{} uses {f}, which its layer may not",
                path.display()
            );
        }
    }
}

#[test]
fn the_faces_never_import_each_other() {
    assert_none("web", &["crate::api"]);
    assert_none("api", &["crate::web"]);
}

#[test]
fn domain_modules_know_no_http_screens_or_shared_state() {
    for dir in [
        "data",
        "ml",
        "registry",
        "tracking",
        "training",
        "serving",
        "auth",
        "monitoring",
        "agent",
    ] {
        assert_none(
            dir,
            &[
                "actix_web",
                "askama",
                "crate::web",
                "crate::api",
                "crate::http",
                "crate::state",
                "crate::reports",
                "crate::agent",
                "crate::notify",
            ],
        );
    }
    // Notifications and reports are no faces either; domain events reach notify through the
    // outbox, and neither calls the other.
    assert_none(
        "notify",
        &[
            "actix_web",
            "askama",
            "crate::web",
            "crate::api",
            "crate::http",
            "crate::state",
            "crate::reports",
        ],
    );
    assert_none(
        "reports",
        &[
            "actix_web",
            "crate::web",
            "crate::api",
            "crate::http",
            "crate::state",
            "crate::notify",
        ],
    );
    assert_none(
        "outbox",
        &["actix_web", "askama", "crate::notify", "crate::reports"],
    );
}

#[test]
fn config_knows_no_domain_logic() {
    let text = code(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs"))
            .expect("config"),
    );
    let uses: Vec<&str> = text
        .match_indices("crate::")
        .map(|(i, _)| {
            text[i..]
                .split(|c: char| !(c.is_alphanumeric() || c == ':' || c == '_'))
                .next()
                .unwrap_or("")
        })
        .collect();
    for u in uses {
        assert!(
            u == "crate::data::schema::DatasetSettings"
                || u == "crate::ml::TrainingSettings"
                || u == "crate::ml::models::ModelKind"
                || u == "crate::monitoring::settings::MonitoringSettings"
                || u == "crate::agent::settings::AgentSettings"
                || u == "crate::notify::settings::NotifySettings"
                || u == "crate::reports::ReportsSettings",
            "config.rs uses {u}"
        );
    }
}
