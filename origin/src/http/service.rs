//! Service routes: readiness, metrics and the OpenAPI document.

use std::sync::LazyLock;

use api::service::Health;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use super::{Limit, Routes};

#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = Health, description = "Ready: the store answers"), (status = 500, body = ErrorBody, description = "internal: the store does not answer")))]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    // Ready means the store answers.
    state.store.catalog().track(&"0".repeat(32)).await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// The document as JSON, made once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&super::document()).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document does not serialize");
        "{}".into()
    })
});

#[utoipa::path(get, path = "/v1/openapi.json", tag = "service", responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, body = String, description = "Prometheus text format", content_type = "text/plain")))]
async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    // A store that does not answer shows 0 tracks; /healthz reports the failure.
    let tracks = state.store.catalog().track_count().await.unwrap_or(0);
    let mut body = state.metrics.render(tracks as usize);
    let head = state
        .store
        .coordination()
        .feed_state()
        .await
        .map(|feed| feed.head)
        .ok();
    body.push_str(&state.search.render_metrics(head));
    body.push_str(&state.recommender.render_metrics(crate::now_ms()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Health, metrics and the document: not rate-limited.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Exempt, routes!(healthz))
        .add(Limit::Exempt, routes!(openapi_json))
        .add(Limit::Exempt, routes!(render_metrics))
        .into()
}
