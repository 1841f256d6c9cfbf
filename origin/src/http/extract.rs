//! Extractors whose rejections are the JSON error envelope, and the paging parameters.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query};
use serde::Deserialize;

use protocol::{AccountId, TrackId};

use super::error::ApiError;

/// JSON body extractor whose rejections are [`ApiError`]s (`invalid_json`,
/// `unsupported_media_type`, `body_too_large`).
#[derive(Debug, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections are [`ApiError`]s (`invalid_query`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are [`ApiError`]s (`invalid_path`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// Items per page, 1 to 50 (default 20).
    limit: Option<usize>,
    /// Items to skip.
    offset: Option<usize>,
}

impl Page {
    /// (offset, limit), the limit clamped to 1..=50.
    pub(crate) fn bounds(&self) -> (usize, usize) {
        (
            self.offset.unwrap_or(0),
            self.limit.unwrap_or(20).clamp(1, 50),
        )
    }
}

/// Checks a track (or album) id from a path: 32 hex characters (`invalid_id` otherwise).
pub fn check_track_id(id: &str) -> Result<(), ApiError> {
    id.parse::<TrackId>()
        .map(|_| ())
        .map_err(|_| ApiError::bad_request("invalid_id", "track ids are 32 hex characters"))
}

/// Checks an artist (account) id from a path: 32 hex characters (`invalid_id` otherwise).
pub fn check_artist_id(id: &str) -> Result<(), ApiError> {
    id.parse::<AccountId>()
        .map(|_| ())
        .map_err(|_| ApiError::bad_request("invalid_id", "artist ids are 32 hex characters"))
}
