//! The deployment files against what they describe: render.yaml against Render's Blueprint
//! specification (https://render.com/docs/blueprint-spec: the fields it documents, each env
//! var with one source, secrets never inline) and against Steward (its health check is an open
//! route, its settings exist, its disk is where the image keeps its state); the Dockerfile's
//! runtime stage and compose.yaml against the image and the shipped Prometheus files.

use std::collections::BTreeSet;

use serde_yaml::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).expect(path)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().expect("a string key").to_owned())
        .collect()
}

fn within(what: &str, v: &Value, allowed: &[&str]) {
    for k in keys(v) {
        assert!(
            allowed.contains(&k.as_str()),
            "{what}: `{k}` is not a Blueprint field"
        );
    }
}

/// The runtime stage's `ENV` value of a variable, from the Dockerfile.
fn dockerfile_env(dockerfile: &str, name: &str) -> Option<String> {
    let runtime = dockerfile.rsplit("\nFROM ").next()?;
    runtime
        .split(|c: char| c.is_whitespace() || c == '\\')
        .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// `section.key` of a `STEWARD__SECTION__KEY` variable exists in config/default.toml.
fn setting_exists(defaults: &toml::Table, var: &str) -> bool {
    let Some(path) = var.strip_prefix("STEWARD__") else {
        return false;
    };
    let mut at = toml::Value::Table(defaults.clone());
    for part in path.split("__") {
        match at.get(part.to_ascii_lowercase()) {
            Some(next) => at = next.clone(),
            None => return false,
        }
    }
    true
}

#[test]
fn render_yaml_is_a_blueprint_of_steward() {
    let blueprint: Value = serde_yaml::from_str(&read("render.yaml")).expect("YAML");
    let dockerfile = read("Dockerfile");
    let defaults: toml::Table = read("config/default.toml").parse().expect("TOML");
    within(
        "root",
        &blueprint,
        &[
            "services",
            "databases",
            "envVarGroups",
            "projects",
            "ungrouped",
            "previews",
            "version",
        ],
    );
    let databases = blueprint["databases"].as_sequence().expect("databases");
    let mut database_names = BTreeSet::new();
    for db in databases {
        within(
            "database",
            db,
            &[
                "name",
                "databaseName",
                "user",
                "plan",
                "previewPlan",
                "region",
                "postgresMajorVersion",
                "diskSizeGB",
                "previewDiskSizeGB",
                "ipAllowList",
                "readReplicas",
                "highAvailability",
            ],
        );
        let major = db["postgresMajorVersion"]
            .as_str()
            .expect("a quoted version");
        assert!(major.parse::<u32>().is_ok_and(|m| m >= 13), "{major}");
        database_names.insert(db["name"].as_str().expect("a name").to_owned());
    }
    let services = blueprint["services"].as_sequence().expect("services");
    let web: Vec<&Value> = services.iter().filter(|s| s["type"] == "web").collect();
    assert_eq!(web.len(), 1, "one web service");
    for service in services {
        within(
            "service",
            service,
            &[
                "type",
                "name",
                "runtime",
                "plan",
                "previewPlan",
                "region",
                "repo",
                "branch",
                "rootDir",
                "dockerfilePath",
                "dockerContext",
                "dockerCommand",
                "registryCredential",
                "image",
                "buildCommand",
                "startCommand",
                "preDeployCommand",
                "healthCheckPath",
                "numInstances",
                "scaling",
                "disk",
                "envVars",
                "autoDeploy",
                "autoDeployTrigger",
                "buildFilter",
                "domains",
                "maxShutdownDelaySeconds",
                "ipAllowList",
                "pullRequestPreviewsEnabled",
                "previews",
                "initialDeployHook",
                "schedule",
            ],
        );
        assert!(
            ["web", "pserv", "worker", "cron", "keyvalue", "redis"]
                .contains(&service["type"].as_str().expect("a type"))
        );
        assert_eq!(service["runtime"], "docker", "built from the Dockerfile");
        let path = service["dockerfilePath"].as_str().expect("dockerfilePath");
        assert!(
            std::path::Path::new(ROOT).join(path).is_file(),
            "{path} exists"
        );
        assert!(
            std::path::Path::new(ROOT)
                .join(service["dockerContext"].as_str().unwrap_or("."))
                .is_dir()
        );
        if let Some(disk) = service.get("disk") {
            within("disk", disk, &["name", "mountPath", "sizeGB"]);
            // Steward's state directory in the image is the disk.
            let storage = dockerfile_env(&dockerfile, "STEWARD__STORAGE__DIR").expect("storage");
            assert_eq!(disk["mountPath"].as_str(), Some(storage.as_str()));
            assert!(dockerfile.contains(&format!("VOLUME {storage}")));
            assert!(disk["sizeGB"].as_u64().is_some_and(|g| g >= 1));
            // Render runs a service with a disk as one instance.
            assert_eq!(service["numInstances"].as_u64().unwrap_or(1), 1);
        }
        let mut seen = BTreeSet::new();
        for var in service["envVars"].as_sequence().expect("envVars") {
            within(
                "envVar",
                var,
                &[
                    "key",
                    "value",
                    "generateValue",
                    "sync",
                    "fromDatabase",
                    "fromService",
                    "fromGroup",
                ],
            );
            let sources = [
                "value",
                "generateValue",
                "sync",
                "fromDatabase",
                "fromService",
                "fromGroup",
            ]
            .iter()
            .filter(|s| var.get(**s).is_some())
            .count();
            assert_eq!(sources, 1, "one source per variable: {var:?}");
            let Some(key) = var["key"].as_str() else {
                assert!(var.get("fromGroup").is_some(), "{var:?}");
                continue;
            };
            assert!(seen.insert(key.to_owned()), "{key} twice");
            if var.get("sync").is_some() {
                assert_eq!(
                    var["sync"],
                    Value::Bool(false),
                    "{key}: sync is only ever false"
                );
            }
            if var.get("generateValue").is_some() {
                assert_eq!(var["generateValue"], Value::Bool(true), "{key}");
            }
            if let Some(from) = var.get("fromDatabase") {
                within("fromDatabase", from, &["name", "property"]);
                assert!(database_names.contains(from["name"].as_str().expect("name")));
                assert!(
                    [
                        "connectionString",
                        "host",
                        "port",
                        "user",
                        "password",
                        "database"
                    ]
                    .contains(&from["property"].as_str().expect("property"))
                );
            }
            // Secrets are generated or entered in Render's dashboard, never committed.
            let secret = ["PASSWORD", "SECRET", "TOKEN", "_KEY"]
                .iter()
                .any(|s| key.contains(s));
            if secret {
                assert!(
                    var.get("value").is_none(),
                    "{key} is a secret: generateValue or sync: false"
                );
            }
            // Each Steward variable names a real setting (or one Steward reads by name).
            assert!(
                setting_exists(&defaults, key)
                    || ["DATABASE_URL", "STEWARD_ADMIN_PASSWORD", "PORT"].contains(&key),
                "{key} is not a Steward setting"
            );
        }
        if service["type"] == "web" {
            // PostgreSQL from the managed database.
            let url = service["envVars"]
                .as_sequence()
                .expect("envVars")
                .iter()
                .find(|v| v["key"] == "DATABASE_URL")
                .expect("DATABASE_URL");
            assert_eq!(url["fromDatabase"]["property"], "connectionString");
            // The health check is an open GET route.
            let health = service["healthCheckPath"]
                .as_str()
                .expect("healthCheckPath");
            let route = steward::api::ROUTES
                .iter()
                .find(|r| r.path == health && r.method == "get")
                .expect("a route");
            assert!(
                matches!(route.access, steward::http::Access::Open),
                "{health}"
            );
        }
    }
}

#[test]
fn the_dockerfile_runtime_stage_is_small_non_root_and_supervisable() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile.split("\nFROM ").collect();
    assert_eq!(stages.len(), 3, "a build stage and a runtime stage");
    let build = stages[1];
    let runtime = stages[2];
    assert!(build.contains("AS build") && build.contains("cmake ninja-build libclang-dev"));
    assert!(runtime.starts_with("debian:bookworm-slim"));
    for line in [
        "USER steward",
        "STOPSIGNAL SIGTERM",
        "CMD [\"steward\", \"health\"]",
        "COPY --from=build /usr/local/bin/steward /usr/local/bin/libxgboost.so.3 /usr/local/bin/",
        "ENTRYPOINT [\"steward\"]",
    ] {
        assert!(runtime.contains(line), "the runtime stage has `{line}`");
    }
    assert!(runtime.contains("HEALTHCHECK"));
    assert!(runtime.contains("--no-install-recommends ca-certificates libgomp1"));
    assert!(
        !runtime.contains("cargo"),
        "no toolchain in the runtime stage"
    );
}

#[test]
fn compose_runs_the_shipped_prometheus_files_against_steward() {
    let compose: Value = serde_yaml::from_str(&read("compose.yaml")).expect("YAML");
    let services = &compose["services"];
    for name in [
        "steward",
        "postgres",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.get(name).is_some(), "{name}");
    }
    assert_eq!(services["steward"]["build"], ".");
    let db = services["steward"]["environment"]["DATABASE_URL"]
        .as_str()
        .expect("DATABASE_URL");
    assert!(db.starts_with("postgres://") && db.contains("@postgres:5432/"));
    // Every file a service mounts from the repository exists.
    for (_, service) in services.as_mapping().expect("services") {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().expect("short syntax");
            if let Some(path) = spec.strip_prefix("./") {
                let path = path.split(':').next().expect("a path");
                if !path.starts_with("var/") {
                    assert!(
                        std::path::Path::new(ROOT).join(path).exists(),
                        "{path} is mounted but missing"
                    );
                }
            }
        }
    }
    // Prometheus's config names the steward service and Alertmanager's posts to it.
    assert!(read("config/prometheus/prometheus.yml").contains("'steward:8080'"));
    assert!(
        read("config/prometheus/alertmanager.yml").contains("http://steward:8080/agent/alerts")
    );
}

/// On Render, links in notifications use the service's public address (`RENDER_EXTERNAL_URL`)
/// unless `STEWARD__NOTIFY__PUBLIC_URL` names another; `PORT` and `DATABASE_URL` are read too.
#[test]
fn render_environment_variables_are_read() {
    let config = |extra: &[(&str, &str)]| -> serde_json::Value {
        let out = std::process::Command::new(crate::helpers::steward_bin())
            .arg("config")
            .env("RENDER_EXTERNAL_URL", "https://steward-x.onrender.com")
            .env("PORT", "10000")
            .env(
                "DATABASE_URL",
                "postgresql://u:secret@db.internal:5432/steward",
            )
            .envs(extra.iter().copied())
            .output()
            .expect("steward config");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let shown = config(&[]);
    assert_eq!(
        shown["notify"]["public_url"],
        "https://steward-x.onrender.com"
    );
    assert_eq!(shown["server"]["port"], 10000);
    let url = shown["database"]["url"].as_str().expect("url");
    assert!(
        url.starts_with("postgresql://") && !url.contains("secret"),
        "{url}"
    );
    let named = config(&[("STEWARD__NOTIFY__PUBLIC_URL", "https://steward.example.com")]);
    assert_eq!(named["notify"]["public_url"], "https://steward.example.com");
}
