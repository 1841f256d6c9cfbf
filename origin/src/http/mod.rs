//! The origin's HTTP API: one router per resource, its OpenAPI document generated from the
//! routes themselves.
//!
//! ```text
//!  mod.rs      app(): the resource routers merged, the global layers, the fallback;
//!              document(): the OpenAPI document of exactly those routes
//!    │
//!    ├── accounts  admin  catalog  playback  chunks  search  library
//!    │   playlists  events  recommendations  network  service
//!    │        each: its handlers and `router()`, every operation added with its Limit
//!    │
//!    └── leaves: state (AppState)  error (ApiError, the JSON envelope)
//!                auth (Authed, ClientIp)  extract (ApiJson, ApiQuery, ApiPath, Page)
//!                limit (admit, Limit, enforce)
//! ```
//!
//! Resource modules import the leaves and the domain modules (`store`, `publish`, `search`,
//! ...); the leaves import no resource module, and no domain module imports `http`.
//! A route is declared once, in its resource's `router()`, with `routes!` over a handler
//! carrying `#[utoipa::path]`: the router, the rate-limit class and the document come from
//! that one place.

pub mod accounts;
pub mod admin;
pub mod app_passwords;
pub mod auth;
pub mod browse;
pub mod catalog;
pub mod chunks;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod library;
pub mod limit;
pub mod network;
pub mod playback;
pub mod playlists;
pub mod recommendations;
pub mod search;
pub mod service;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::any;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use limit::Limit;
pub use state::{AppState, Shared, now_ms};

/// A resource's routes under construction: every operation is added with the [`Limit`] it
/// is rate-limited under, which the document shows as `x-rate-limit`.
#[derive(Default)]
pub struct Routes(OpenApiRouter<AppState>);

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `operations` (from `utoipa_axum::routes!`), each limited under `limit`.
    pub fn add(self, limit: Limit, operations: UtoipaMethodRouter<AppState>) -> Self {
        let (schemas, mut paths, method_router) = operations;
        for item in paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("x-rate-limit".into(), limit.as_str().into());
                declare_common_responses(operation, limit);
            }
        }
        let limited = (schemas, paths, method_router).layer(axum::middleware::from_fn(
            move |request, next| limit::enforce(limit, request, next),
        ));
        Self(self.0.routes(limited))
    }
}

/// Declares the answers every operation of its kind can give, whatever its handler does: the
/// extractors' rejections, authentication, rate limits. A handler's own annotation of the same
/// status keeps its description, with these codes added.
fn declare_common_responses(operation: &mut utoipa::openapi::path::Operation, limit: Limit) {
    use utoipa::openapi::path::ParameterIn;
    let body_types: Vec<String> = operation
        .request_body
        .as_ref()
        .map(|body| body.content.keys().cloned().collect())
        .unwrap_or_default();
    let json_body = body_types.iter().any(|kind| kind == "application/json");
    let form_body = body_types.iter().any(|kind| kind == "multipart/form-data");
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let query = parameters
        .iter()
        .any(|parameter| parameter.parameter_in == ParameterIn::Query);
    let path = parameters
        .iter()
        .any(|parameter| parameter.parameter_in == ParameterIn::Path);
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|security| !security.is_empty());
    let mut common: Vec<(&str, &str)> = Vec::new();
    if secured {
        common.push((
            "401",
            "unauthorized: no bearer token, or an invalid or expired one",
        ));
    }
    if json_body {
        common.push(("400", "invalid_json: the body is not JSON"));
        common.push(("413", "body_too_large"));
        common.push((
            "415",
            "unsupported_media_type: the body is not application/json",
        ));
        common.push((
            "422",
            "invalid_json: JSON of another shape than the schema's",
        ));
    }
    if form_body {
        common.push((
            "400",
            "invalid_multipart, missing_file, missing_metadata, invalid_metadata",
        ));
        common.push(("413", "upload_too_large, body_too_large"));
    }
    if query {
        common.push((
            "400",
            "invalid_query: a query parameter of the wrong type or range",
        ));
    }
    if path {
        common.push(("400", "invalid_path, invalid_id: a malformed id"));
    }
    if limit != Limit::Exempt {
        common.push(("429", "rate_limited: Retry-After says when to ask again"));
    }
    for (status, codes) in common {
        add_error_response(&mut operation.responses, status, codes);
    }
}

/// Adds an error answer with `codes` to `status`, or its codes to the one declared.
fn add_error_response(responses: &mut utoipa::openapi::Responses, status: &str, codes: &str) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    match responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(codes) {
                if !response.description.is_empty() {
                    response.description.push_str("; ");
                }
                response.description.push_str(codes);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(codes)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            responses
                .responses
                .insert(status.to_string(), RefOr::T(response));
        }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

impl From<Routes> for OpenApiRouter<AppState> {
    fn from(routes: Routes) -> Self {
        routes.0
    }
}

/// Settings the routes themselves depend on.
#[derive(Debug, Clone, Copy)]
pub struct RouteLimits {
    /// Largest upload body (the file, its metadata and the form's framing).
    pub upload_body_bytes: usize,
}

impl Default for RouteLimits {
    fn default() -> Self {
        let config = crate::config::OriginConfig::default();
        Self::from(&config)
    }
}

impl From<&crate::config::OriginConfig> for RouteLimits {
    fn from(config: &crate::config::OriginConfig) -> Self {
        Self {
            upload_body_bytes: usize::try_from(config.upload_bytes_max)
                .unwrap_or(usize::MAX)
                .saturating_add(64 * 1024),
        }
    }
}

/// Every route of the API with its documentation.
pub fn routes(limits: RouteLimits) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(base_document())
        .merge(service::router())
        .merge(accounts::router())
        .merge(app_passwords::router())
        .merge(admin::router())
        .merge(console::router())
        .merge(catalog::router(limits))
        .merge(playback::router())
        .merge(chunks::router())
        .merge(search::router())
        .merge(browse::router())
        .merge(library::router())
        .merge(playlists::router())
        .merge(events::router())
        .merge(recommendations::router())
        .merge(network::router())
}

/// The document's info, security scheme and tags, before the routes add their paths.
fn base_document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Chorus origin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Catalog, accounts, ingest, playback authorization and chunks. Every error \
                     is `{\"error\": {\"code\", \"message\"}}` with a stable code; \
                     `x-rate-limit` on an operation names the bucket it takes from.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                .build(),
        ))
        .build()
}

/// The OpenAPI document of the routes [`app`] serves (also at `GET /v1/openapi.json`).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = routes(RouteLimits::default()).into_openapi();
    spell_links_as_openapi_does(&mut document);
    document
}

/// utoipa 5 writes a link's `operationId` and `requestBody` as `operation_id` and
/// `request_body`, which no OpenAPI tool reads; they move into the link's extension map, which
/// is written verbatim.
fn spell_links_as_openapi_does(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::extensions::Extensions;
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                for link in response.links.values_mut() {
                    let RefOr::T(link) = link else { continue };
                    let mut spelled = serde_json::Map::new();
                    let id = std::mem::take(&mut link.operation_id);
                    if !id.is_empty() {
                        spelled.insert("operationId".into(), id.into());
                    }
                    if let Some(body) = link.request_body.take() {
                        spelled.insert("requestBody".into(), body);
                    }
                    link.extensions
                        .get_or_insert_with(Extensions::default)
                        .merge(Extensions::from_iter(spelled));
                }
            }
        }
    }
}

/// [`document`] as pretty JSON, as `docs/openapi.json` keeps it.
pub fn document_json() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document does not serialize");
        "{}".into()
    })
}

/// The application: every route, its limits, the JSON error envelope for whatever axum
/// answers itself, and metrics.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(RouteLimits::from(&*state.config)).split_for_parts();
    let no_route =
        any(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
            .layer(axum::middleware::from_fn(|request, next| {
                limit::enforce(Limit::Ip, request, next)
            }))
            .with_state(state.clone());
    router
        .merge(
            console::pages().layer(axum::middleware::from_fn(|request, next| {
                limit::enforce(Limit::Ip, request, next)
            })),
        )
        .fallback_service(no_route)
        .layer(axum::middleware::map_response(error::envelope_plain_errors))
        .layer(DefaultBodyLimit::max(state.config.json_bytes_max))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(super::document()).unwrap()
    }

    #[test]
    fn the_repository_keeps_the_document_the_routes_make() {
        let kept = include_str!("../../../docs/openapi.json");
        let kept: Value = serde_json::from_str(kept).expect("docs/openapi.json is JSON");
        assert!(
            kept == document(),
            "docs/openapi.json differs from the routes: run `chorus openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn every_link_leads_to_an_operation_of_the_document() {
        let document = document();
        let mut operations = std::collections::HashSet::new();
        let mut links = Vec::new();
        for (_, item) in document["paths"].as_object().unwrap() {
            for (_, operation) in item.as_object().unwrap() {
                if let Some(id) = operation["operationId"].as_str() {
                    operations.insert(id.to_string());
                }
                for (_, response) in operation["responses"].as_object().into_iter().flatten() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        links.push((
                            name.clone(),
                            link["operationId"].as_str().map(str::to_string),
                        ));
                    }
                }
            }
        }
        assert!(
            links.len() >= 20,
            "the stateful phase needs links: {links:?}"
        );
        for (name, target) in links {
            let target = target.unwrap_or_else(|| panic!("link {name} names no operationId"));
            assert!(
                operations.contains(&target),
                "link {name} leads to {target}, which is not an operation"
            );
        }
    }

    #[test]
    fn every_operation_names_its_rate_limit() {
        let document = document();
        let limit = |path: &str, method: &str| {
            document["paths"][path][method]["x-rate-limit"]
                .as_str()
                .map(str::to_string)
        };
        let expected = [
            ("/v1/tracks/{id}/play", "post", "stream"),
            ("/v1/search", "get", "search"),
            ("/v1/playlists", "post", "playlist_write"),
            ("/v1/playlists/{id}", "put", "playlist_write"),
            ("/v1/playlists/{id}/tracks", "put", "playlist_write"),
            ("/v1/playlists/{id}/tracks", "delete", "playlist_write"),
            ("/v1/playlists/{id}", "get", "ip"),
            ("/v1/accounts", "post", "unauthenticated"),
            ("/v1/sessions", "post", "unauthenticated"),
            ("/v1/sessions/refresh", "post", "unauthenticated"),
            ("/v1/chunks/{id}", "get", "none"),
            ("/v1/chunks/{id}/verify", "get", "none"),
            ("/metrics", "get", "none"),
            ("/healthz", "get", "none"),
            ("/v1/openapi.json", "get", "none"),
            ("/v1/me", "get", "ip"),
        ];
        for (path, method, class) in expected {
            assert_eq!(
                limit(path, method).as_deref(),
                Some(class),
                "{method} {path}"
            );
        }
        let mut operations = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                assert!(
                    operation["x-rate-limit"].is_string(),
                    "{method} {path} has no rate limit"
                );
            }
        }
        assert_eq!(operations, 59, "every route is in the document");
    }
}
