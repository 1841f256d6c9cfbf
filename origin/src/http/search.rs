//! `GET /v1/search`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::state::AppState;
use super::{Limit, Routes};
use crate::ratelimit::Class;
use api::search::SearchResults;
use utoipa_axum::routes;

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// The text, typos allowed; the last word may be a prefix (type-ahead).
    q: String,
    /// Comma-separated kinds: `track`, `artist`, `album`, `playlist` (default all).
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Hits per page, 1 to 50 (default 20).
    limit: Option<usize>,
    /// Hits to skip (at most 1000).
    offset: Option<usize>,
}

#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams), responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody, description = "bad_query, bad_type"), (status = 503, body = ErrorBody, description = "search_warming_up: the index is being built after a start; Retry-After says when to ask again")))]
/// `GET /v1/search`: typo-tolerant search of tracks, artists, albums and public playlists,
/// ranked by relevance and popularity.
pub async fn search_catalog(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    use crate::search::{Kind, SearchError};
    let mut kinds = Vec::new();
    for name in params
        .kinds
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match Kind::parse(name) {
            Some(kind) => kinds.push(kind),
            None => {
                return Err(ApiError::bad_request(
                    "bad_type",
                    format!("type {name:?}: expected track, artist, album or playlist"),
                ));
            }
        }
    }
    let limit = params.limit.unwrap_or(20).clamp(1, crate::search::PAGE_MAX);
    let offset = params.offset.unwrap_or(0).min(crate::search::OFFSET_MAX);
    let search = state.search.clone();
    let result =
        tokio::task::spawn_blocking(move || search.search(&params.q, &kinds, limit, offset))
            .await
            .map_err(ApiError::internal)?;
    match result {
        Ok((total, items)) => Ok(Json(SearchResults {
            total,
            items,
            limit,
            offset,
        })
        .into_response()),
        Err(SearchError::BadQuery(message)) => Err(ApiError::bad_request("bad_query", message)),
        Err(warming @ SearchError::Warming(_)) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "search_warming_up",
                warming.to_string(),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            Ok(response)
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// Searches take the `search` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Class(Class::Search), routes!(search_catalog))
        .into()
}
