//! The OpenAPI description: the serving endpoints in full (from their `utoipa::path`
//! annotations, with schemas and examples), and every other route of the route table
//! ([`super::ROUTES`]) from its line there: method, path, path parameters, summary and whether
//! it needs a bearer token, with the query parameters and an example request body from the
//! tables below, so that Swagger UI's "Try it out" works for each. A test holds every route
//! that changes something to a body here or to its short list of routes that take none.

use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Required, ResponseBuilder};

use super::serving::ApiDoc;

/// Example request bodies: (method, path, media type, example).
const BODIES: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/api/v1/users",
        "application/json",
        r#"{"username": "alice", "password": "a-long-password", "role": "viewer"}"#,
    ),
    (
        "post",
        "/api/v1/tokens",
        "application/json",
        r#"{"name": "ci", "role": "viewer", "expires_in": "90d"}"#,
    ),
    (
        "post",
        "/api/v1/datasets/{name}/versions",
        "text/csv",
        "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2\n",
    ),
    (
        "put",
        "/api/v1/datasets/{name}/current",
        "application/json",
        r#"{"version": 1}"#,
    ),
    (
        "post",
        "/api/v1/validations",
        "application/json",
        r#"{"dataset": "heart", "version": 1, "suite": "heart"}"#,
    ),
    (
        "post",
        "/api/v1/runs",
        "application/json",
        r#"{"models": ["lr"], "register": true, "promote": false}"#,
    ),
    (
        "post",
        "/api/v1/models/{name}/versions/{version}/stage",
        "application/json",
        r#"{"stage": "Production", "reason": "better holdout ROC-AUC on the same data"}"#,
    ),
    (
        "post",
        "/api/v1/models/{name}/rollback",
        "application/json",
        r#"{"reason": "v3 misclassifies the Hungarian patients"}"#,
    ),
    (
        "post",
        "/agent/alerts",
        "application/json",
        r#"{"version": "4", "groupKey": "{}:{alertname=\"SlowPredictions\"}", "truncatedAlerts": 0, "status": "firing", "receiver": "steward", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "alert_type": "error_rate", "severity": "warning"}, "annotations": {"summary": "5xx above 5% for 10 minutes"}, "startsAt": "2026-11-30T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": "3f2a9c0d1e4b5a67"}]}"#,
    ),
    (
        "post",
        "/api/v1/approvals/{id}/approve",
        "application/json",
        r#"{"comment": "challenger beats v1 on the Hungarian holdout"}"#,
    ),
    (
        "post",
        "/api/v1/approvals/{id}/reject",
        "application/json",
        r#"{"comment": "wait for more labels"}"#,
    ),
    (
        "post",
        "/api/v1/notifications/test",
        "application/json",
        r#"{"channel": "ops-mail"}"#,
    ),
];

/// Query parameters: (path, [(name, description)]).
const QUERIES: &[(&str, &[(&str, &str)])] = &[
    (
        "/api/v1/notifications",
        &[
            ("status", "pending (with sending), sent or failed"),
            (
                "limit",
                "Notifications, newest first (default 50, at most 500)",
            ),
        ],
    ),
    (
        "/api/v1/reports/model-card/{version}",
        &[("format", "html (default) or pdf")],
    ),
    (
        "/api/v1/reports/drift/{id}",
        &[("format", "html (default) or pdf")],
    ),
    (
        "/api/v1/reports/weekly",
        &[
            ("format", "html (default) or pdf"),
            (
                "end",
                "The week's end: YYYY-MM-DDTHH:MM:SS (UTC), RFC 3339 or YYYY-MM-DD, from 2000-01-01 to a day from now (default now)",
            ),
        ],
    ),
    (
        "/api/v1/incidents",
        &[
            ("status", "open or resolved"),
            ("limit", "Incidents, newest first (default 50)"),
        ],
    ),
    (
        "/api/v1/decisions",
        &[
            ("action", "Only decisions of this action"),
            ("limit", "Decisions, newest first (default 50)"),
        ],
    ),
    (
        "/api/v1/approvals",
        &[
            ("status", "pending, approved, rejected or expired"),
            ("limit", "Requests, newest first (default 50)"),
        ],
    ),
    (
        "/api/v1/audit",
        &[
            ("limit", "Events, newest first (default 100)"),
            ("before", "Only events older than this seq (the next page)"),
        ],
    ),
    (
        "/api/v1/datasets/{name}/versions",
        &[
            ("file_name", "POST: the file's name, kept with the version"),
            ("message", "POST: what this version is"),
        ],
    ),
    (
        "/api/v1/datasets/{name}/diff",
        &[
            ("from", "A version (required)"),
            ("to", "Another version (required)"),
        ],
    ),
    (
        "/api/v1/validations",
        &[
            ("dataset", "Only this dataset's runs"),
            ("limit", "Runs, newest first"),
        ],
    ),
    (
        "/api/v1/expectations/{suite}/suggest",
        &[
            ("dataset", "Default: dataset.name"),
            ("version", "Default: the current one"),
        ],
    ),
    (
        "/api/v1/predictions",
        &[
            ("limit", "Rows, newest first"),
            ("version", "Only this model version"),
            ("class", "Only this predicted class (0 or 1)"),
            ("labelled", "true: with a feedback label; false: without"),
            ("before", "Rows older than this request id (the next page)"),
        ],
    ),
    (
        "/api/v1/predictions/dead-letters",
        &[("limit", "Rows, newest first")],
    ),
    (
        "/api/v1/experiments/{name}/runs",
        &[
            (
                "sort",
                "A summary metric, best first (cv_roc_auc_mean, holdout_f1, ...)",
            ),
            ("limit", "Runs"),
        ],
    ),
    (
        "/api/v1/runs",
        &[
            (
                "sort",
                "A summary metric, best first (cv_roc_auc_mean, holdout_f1, ...)",
            ),
            ("limit", "Runs"),
        ],
    ),
    (
        "/api/v1/drift/checks",
        &[("limit", "Checks, newest first (default 50, at most 500)")],
    ),
    (
        "/api/v1/runs/compare",
        &[
            ("a", "A run id (required)"),
            ("b", "Another run id (required)"),
        ],
    ),
];

/// The whole API's description.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    for spec in super::ROUTES {
        let method = match spec.method {
            "get" => HttpMethod::Get,
            "post" => HttpMethod::Post,
            "put" => HttpMethod::Put,
            "delete" => HttpMethod::Delete,
            _ => continue,
        };
        let documented = doc
            .paths
            .paths
            .get(spec.path)
            .is_some_and(|item| match method {
                HttpMethod::Get => item.get.is_some(),
                HttpMethod::Post => item.post.is_some(),
                HttpMethod::Put => item.put.is_some(),
                HttpMethod::Delete => item.delete.is_some(),
                _ => false,
            });
        if documented {
            continue;
        }
        let mut operation = OperationBuilder::new()
            .summary(Some(spec.summary))
            .tag(tag_of(spec.path))
            .operation_id(Some(operation_id(spec.method, spec.path)))
            .response(
                "200",
                ResponseBuilder::new().description("Done; the body is JSON"),
            )
            .response(
                "400",
                ResponseBuilder::new().description(
                    "A malformed body, query or path parameter (the JSON error contract)",
                ),
            )
            .response("404", ResponseBuilder::new().description("Nothing there"));
        if let Some((_, _, media, example)) = BODIES
            .iter()
            .find(|(m, p, _, _)| *m == spec.method && *p == spec.path)
        {
            let example = if *media == "application/json" {
                serde_json::from_str(example).unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::String((*example).to_owned())
            };
            operation = operation
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content(*media, ContentBuilder::new().example(Some(example)).build())
                        .required(Some(Required::True))
                        .build(),
                ))
                .response(
                    "409",
                    ResponseBuilder::new()
                        .description("Refused by the state it found (the message says why)"),
                )
                .response(
                    "422",
                    ResponseBuilder::new().description("A field is invalid (named in details)"),
                );
        }
        if let Some((_, params)) = QUERIES.iter().find(|(p, _)| *p == spec.path) {
            for (name, what) in *params {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(*name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(*what))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        for name in path_parameters(spec.path) {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Some(role) = spec.access.least_role() {
            operation = operation
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .description(Some(format!(
                    "Needs a bearer token of the {role} role or higher."
                )))
                .response(
                    "401",
                    ResponseBuilder::new().description("No or an unknown token"),
                )
                .response(
                    "403",
                    ResponseBuilder::new().description("The token's role is too low"),
                );
        }
        doc.paths
            .add_path_operation(openapi_path(spec.path), vec![method], operation);
    }
    doc
}

/// The resource a path is about: `/api/v1/models/{name}` → `models`.
fn tag_of(path: &str) -> String {
    path.trim_start_matches("/api/v1/")
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("api")
        .to_owned()
}

fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(['/', '{', '}', '.', '-'])
        .filter(|w| !w.is_empty() && *w != "api" && *w != "v1")
        .collect();
    format!("{method}_{}", words.join("_"))
}

fn path_parameters(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .map(|p| p.split(':').next().unwrap_or(p).to_owned())
        .collect()
}

/// A route's path as OpenAPI writes it: `{name:.*}` (a tail that may hold slashes) is
/// `{name}`.
pub fn openapi_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for c in path.chars() {
        match c {
            ':' if out.rfind('{') > out.rfind('}') => skipping = true,
            '}' => {
                skipping = false;
                out.push(c);
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_described() {
        let doc = document();
        let json = serde_json::to_value(&doc).expect("json");
        for spec in super::super::ROUTES {
            let op = &json["paths"][openapi_path(spec.path)][spec.method];
            assert!(op.is_object(), "{} {} is described", spec.method, spec.path);
            assert_eq!(openapi_path("/a/{id}/b/{name:.*}"), "/a/{id}/b/{name}");
        }
        let rollback = &json["paths"]["/api/v1/models/{name}/rollback"]["post"];
        assert_eq!(rollback["summary"], "Roll Production back");
        assert_eq!(rollback["parameters"][0]["name"], "name");
        assert!(rollback["security"].is_array());
    }

    /// Routes that change something and take no body.
    const NO_BODY: &[(&str, &str)] = &[
        ("post", "/api/v1/users/{username}/disable"),
        ("post", "/api/v1/drift/run"),
        ("post", "/api/v1/agent/pause"),
        ("post", "/api/v1/agent/resume"),
        ("post", "/api/v1/notifications/deliveries/{id}/retry"),
        ("delete", "/api/v1/tokens/{id}"),
    ];

    /// "Try it out" needs a body: every route that changes something has an example or is
    /// known to take none, and each example is valid JSON where it says JSON.
    #[test]
    fn every_change_has_a_body_or_is_known_to_need_none() {
        let json = serde_json::to_value(document()).expect("json");
        for spec in super::super::ROUTES {
            if spec.method == "get" || !spec.path.starts_with("/api/v1/") {
                continue;
            }
            let listed = NO_BODY.contains(&(spec.method, spec.path));
            let op = &json["paths"][openapi_path(spec.path)][spec.method];
            assert!(
                listed || op["requestBody"].is_object(),
                "{} {} has no example body",
                spec.method,
                spec.path
            );
        }
        for (_, path, media, example) in BODIES {
            if *media == "application/json" {
                assert!(
                    serde_json::from_str::<serde_json::Value>(example).is_ok(),
                    "{path}"
                );
            }
        }
        let feedback = &json["paths"]["/feedback"]["post"];
        assert!(feedback["security"].is_array(), "{feedback}");
    }

    #[test]
    fn every_api_route_answers_errors_in_json() {
        for spec in super::super::ROUTES {
            assert!(
                crate::http::headers::speaks_json(spec.path),
                "{} errors are JSON",
                spec.path
            );
        }
    }
}
