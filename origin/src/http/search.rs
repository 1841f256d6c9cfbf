//! `GET /v1/search`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, bounded};
use super::state::AppState;
use super::{Limit, Routes};
use crate::ratelimit::Class;
use api::search::SearchResults;
use utoipa_axum::routes;

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text, typos allowed; the last word may be a prefix (type-ahead).
    #[param(min_length = 1, max_length = 256)]
    q: String,
    /// Comma-separated kinds: `track`, `artist`, `album`, `playlist` (default: these four),
    /// `lyrics` (tracks found by the words of their lyrics; the hit's id is the track's).
    #[param(
        pattern = "^(track|artist|album|playlist|lyrics)(,(track|artist|album|playlist|lyrics))*$",
        nullable = false
    )]
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Hits per page, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50, nullable = false)]
    limit: Option<usize>,
    /// Hits to skip (at most 1000).
    #[param(minimum = 0, maximum = 1000, nullable = false)]
    offset: Option<usize>,
}

#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams), responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody, description = "bad_query, bad_type"), (status = 503, body = ErrorBody, description = "search_warming_up: the index is being built after a start; Retry-After says when to ask again")))]
/// `GET /v1/search`: typo-tolerant search of tracks, artists, albums and public playlists,
/// ranked by relevance and popularity.
pub async fn search_catalog(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    use crate::search::Kind;
    let mut kinds = Vec::new();
    for name in params
        .kinds
        .as_deref()
        .into_iter()
        .flat_map(|kinds| kinds.split(','))
    {
        match Kind::parse(name) {
            Some(kind) => kinds.push(kind),
            None => {
                return Err(ApiError::bad_request(
                    "bad_type",
                    format!("type {name:?}: expected track, artist, album, playlist or lyrics"),
                ));
            }
        }
    }
    let limit = bounded("limit", params.limit, 20, 1..=crate::search::PAGE_MAX)?;
    let offset = bounded("offset", params.offset, 0, 0..=crate::search::OFFSET_MAX)?;
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
        Err(error) => refused(error),
    }
}

/// The answer to a search or listing the index refused: `400 bad_query`, `503
/// search_warming_up` with `Retry-After` while the index is built, else an internal error.
pub(crate) fn refused(error: crate::search::SearchError) -> Result<Response, ApiError> {
    use crate::search::SearchError;
    match error {
        SearchError::BadQuery(message) => Err(ApiError::bad_request("bad_query", message)),
        warming @ SearchError::Warming(_) => {
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
        error => Err(ApiError::internal(error)),
    }
}

/// Searches take the `search` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Class(Class::Search), routes!(search_catalog))
        .into()
}
