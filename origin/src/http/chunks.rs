//! `GET /v1/chunks/{id}`: chunks over HTTP behind a signed URL.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::grant::ChunkGrant;
use utoipa_axum::routes;

#[derive(Debug, Deserialize)]
struct ChunkQuery {
    r: Option<String>,
    a: Option<String>,
    g: Option<String>,
    exp: Option<u64>,
    sig: Option<String>,
}

/// Checks a chunk URL: its signature and expiry, that the chunk belongs to the rendition it
/// was granted for (a deleted track's belongs to nothing), and the market. Returns the chunk
/// and the URL's expiry (Unix seconds).
async fn authorize(
    state: &AppState,
    id: &str,
    query: ChunkQuery,
) -> Result<(protocol::ChunkId, u64), ApiError> {
    let chunk_id: protocol::ChunkId = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "chunk ids are 64 hex characters"))?;
    let (Some(rendition), Some(account), Some(region), Some(expires_s), Some(signature)) =
        (query.r, query.a, query.g, query.exp, query.sig)
    else {
        return Err(ApiError::forbidden(
            "missing_signature",
            "chunk URLs need r, a, g, exp and sig from a play authorization",
        ));
    };
    if expires_s.saturating_mul(1000) <= now_ms() {
        return Err(ApiError::forbidden(
            "url_expired",
            "this chunk URL has expired",
        ));
    }
    let grant = ChunkGrant {
        rendition,
        account,
        region,
        expires_s,
    };
    if !grant.verify(&state.url_key, &signature) {
        return Err(ApiError::forbidden(
            "bad_signature",
            "chunk URL signature does not verify",
        ));
    }
    // Signed by us, so well formed; a deleted rendition is gone for every URL at once.
    let rendition: protocol::RenditionId = grant
        .rendition
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "rendition ids are 64 hex"))?;
    let region: protocol::Region = grant
        .region
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_region", "not a region"))?;
    // Manifests are cached; a miss is one small database read.
    match state.chunk_source.holds(&rendition, &chunk_id).await {
        None => return Err(ApiError::not_found("chunk")),
        Some(false) => {
            return Err(ApiError::forbidden(
                "not_in_rendition",
                "this URL opens chunks of another rendition",
            ));
        }
        Some(true) => {}
    }
    if !transport::chunks::ChunkSource::region_allows(&*state.chunk_source, &rendition, &region)
        .await
    {
        return Err(ApiError::forbidden(
            "not_in_market",
            format!("this track is not available in {region}"),
        ));
    }
    Ok((chunk_id, expires_s))
}

/// How long a CDN may keep a chunk URL's successful check.
pub const VERIFIED_CACHE_S: u64 = 10;

#[utoipa::path(get, path = "/v1/chunks/{id}/verify", tag = "playback", params(("id" = String, Path, pattern = "^[0-9a-f]{64}$", description = "Chunk id, 64 hex"), ("r" = String, Query, description = "Rendition id the URL was granted for"), ("a" = String, Query, description = "Account the URL was granted to"), ("g" = String, Query, description = "The account's region"), ("exp" = u64, Query, description = "Expiry, Unix seconds"), ("sig" = String, Query, description = "HMAC from the chunk URL template")), responses((status = 200, description = "The URL opens this chunk now; `Cache-Control: max-age` says for how long the answer may be kept (at most 10 s, never past the URL's expiry)"), (status = 403, body = ErrorBody, description = "missing_signature, url_expired, bad_signature, not_in_rendition, not_in_market, not_found (no such chunk, or its track was deleted)")))]
/// `GET /v1/chunks/{id}/verify`: whether a chunk URL (same query as `GET /v1/chunks/{id}`)
/// opens its chunk, without reading the chunk. A CDN in front of the origins asks this before
/// serving a chunk from its cache (nginx `auth_request`, `deploy/nginx/cdn.conf`), so a cached
/// chunk is only served to a valid URL.
async fn verify_chunk_url(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ChunkQuery>,
) -> Result<Response, ApiError> {
    // A CDN's `auth_request` passes on 401 and 403 only (anything else is its own 500): a
    // chunk that is gone is refused like any other.
    let (_, expires_s) = authorize(&state, &id, query).await.map_err(|error| {
        if error.status() == StatusCode::NOT_FOUND {
            ApiError::forbidden("not_found", "no such chunk, or its track was deleted")
        } else {
            error
        }
    })?;
    let left_s = expires_s.saturating_sub(now_ms() / 1000);
    Ok((
        StatusCode::OK,
        [(
            header::CACHE_CONTROL,
            format!("max-age={}", left_s.min(VERIFIED_CACHE_S)),
        )],
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/chunks/{id}", tag = "playback", params(("id" = String, Path, pattern = "^[0-9a-f]{64}$", description = "Chunk id, 64 hex"), ("r" = String, Query, description = "Rendition id the URL was granted for"), ("a" = String, Query, description = "Account the URL was granted to"), ("g" = String, Query, description = "The account's region"), ("exp" = u64, Query, description = "Expiry, Unix seconds"), ("sig" = String, Query, description = "HMAC from the chunk URL template")), responses((status = 200, description = "Chunk ciphertext; immutable, cacheable", content_type = "application/octet-stream"), (status = 304, description = "Not modified"), (status = 403, body = ErrorBody, description = "missing_signature, url_expired, bad_signature, not_in_rendition, not_in_market"), (status = 404, body = ErrorBody, description = "not_found: no such chunk, or its track was deleted")))]
async fn get_chunk(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ChunkQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (chunk_id, _) = authorize(&state, &id, query).await?;
    let etag = format!("\"{}\"", chunk_id.to_hex());
    let cache = [
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    // Hot chunks come from memory; others from the blob store (files read off the async
    // workers, or object storage: an outage answers 503).
    let data = state
        .store
        .blobs()
        .get(&chunk_id)
        .await
        .map_err(crate::store::StoreError::from)?
        .ok_or_else(|| ApiError::not_found("chunk"))?;
    state
        .metrics
        .chunk_bytes_http
        .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        cache,
        [(header::CONTENT_TYPE, "application/octet-stream".to_string())],
        data,
    )
        .into_response())
}

/// Signed chunk URLs: scoped by their signature, not rate-limited.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Exempt, routes!(get_chunk))
        .add(Limit::Exempt, routes!(verify_chunk_url))
        .into()
}
