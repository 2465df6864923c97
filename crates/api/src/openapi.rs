//! The OpenAPI 3.1 document, generated from the route and model definitions, served at
//! `/openapi.json` with Swagger UI at `/docs` and ReDoc at `/redoc`. Both UIs are bundled
//! into the binary, so the docs work without network access.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use ironcrest_gateway::{Gateway, RouteFamily};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{admin, compute, filesystem, status, tasks, transfer};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ironcrest", description = "FirecREST v2-compatible REST API for HPC systems."),
    modifiers(&BearerAuth),
    tags(
        (name = "status", description = "Systems, their health, and scheduler information"),
        (name = "compute", description = "Jobs: submit, list, inspect, cancel, attach"),
        (name = "filesystem", description = "File operations on the cluster's file systems"),
        (name = "transfer", description = "File operations as scheduler jobs, and S3-staged uploads and downloads"),
        (name = "tasks", description = "Every asynchronous operation of the caller's (transfer jobs, staged transfers, compute jobs): list, inspect, cancel"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Each route module describes its own paths; the document merges them.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(status::StatusDoc::openapi());
    document.merge(compute::ComputeDoc::openapi());
    document.merge(filesystem::FilesystemDoc::openapi());
    document.merge(transfer::TransferDoc::openapi());
    document.merge(tasks::TasksDoc::openapi());
    document.merge(admin::AdminDoc::openapi());
    compute::constrain_job_description(&mut document);
    document
}

const REDOC_JS: &str = include_str!("../assets/redoc/redoc.standalone.js");
const REDOC_PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Ironcrest API</title><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc><script src="/redoc/redoc.standalone.js"></script></body></html>"#;

/// The document with each operation's security requirement naming the scopes the gateway
/// requires for its route family (`gateway.scopes`) or, for the admin routes, the admin
/// scope, as configured when the server started.
pub fn document_for(gateway: &Gateway) -> utoipa::openapi::OpenApi {
    let mut document = document();
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let scopes = if path.starts_with("/admin/") {
                gateway.admin_scope().into_iter().collect()
            } else if let Some(family) = RouteFamily::of(method, path) {
                gateway.required_scopes(family)
            } else {
                continue;
            };
            if operation.security.is_some() {
                operation.security = Some(vec![SecurityRequirement::new("bearer", scopes)]);
            }
        }
    }
    document
}

pub fn router(gateway: &Gateway) -> Router {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", document_for(gateway)))
        .route("/redoc", get(|| async { Html(REDOC_PAGE) }))
        .route(
            "/redoc/redoc.standalone.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/javascript")], REDOC_JS).into_response()
            }),
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_lists_the_status_routes() {
        let json = serde_json::to_value(super::document()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in [
            "/status/systems",
            "/status/liveness/",
            "/status/{system_name}/userinfo",
        ] {
            assert!(json["paths"].get(path).is_some(), "{path} missing");
        }
    }

    #[test]
    fn operations_list_the_scopes_their_family_requires() {
        let gateway = ironcrest_gateway::Gateway::new(
            &serde_yaml_ng::from_str(
                "{scopes: {filesystem-write: [firecrest:write]}, admin_scope: firecrest:admin}",
            )
            .unwrap(),
        )
        .unwrap();
        let json = serde_json::to_value(super::document_for(&gateway)).unwrap();
        let security = |path: &str, method: &str| json["paths"][path][method]["security"].clone();
        assert_eq!(
            security("/filesystem/{system_name}/ops/mkdir", "post"),
            serde_json::json!([{"bearer": ["firecrest:write"]}])
        );
        assert_eq!(
            security("/filesystem/{system_name}/ops/ls", "get"),
            serde_json::json!([{"bearer": []}])
        );
        assert_eq!(
            security("/admin/reload", "post"),
            serde_json::json!([{"bearer": ["firecrest:admin"]}])
        );
        assert!(json["paths"]["/status/liveness/"]["get"]["security"].is_null());
    }
}
