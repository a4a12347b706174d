//! The OpenAPI description: the serving endpoints in full (from their `utoipa::path`
//! annotations, with schemas and examples), and every other route of the route table
//! ([`super::ROUTES`]) from its line there: method, path, path parameters, summary and whether
//! it needs a bearer token. A route added to the table is described without more work.

use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Required, ResponseBuilder};

use super::serving::ApiDoc;

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
            .add_path_operation(spec.path, vec![method], operation);
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
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_described() {
        let doc = document();
        let json = serde_json::to_value(&doc).expect("json");
        for spec in super::super::ROUTES {
            let op = &json["paths"][spec.path][spec.method];
            assert!(op.is_object(), "{} {} is described", spec.method, spec.path);
        }
        let rollback = &json["paths"]["/api/v1/models/{name}/rollback"]["post"];
        assert_eq!(rollback["summary"], "Roll Production back");
        assert_eq!(rollback["parameters"][0]["name"], "name");
        assert!(rollback["security"].is_array());
    }
}
