//! Extractors whose rejections are the JSON error envelope, and the paging parameters.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use protocol::{AccountId, TrackId};

use super::error::ApiError;

/// JSON body extractor whose rejections are [`ApiError`]s (`invalid_json`,
/// `unsupported_media_type`, `body_too_large`).
///
/// It takes exactly the shape the document gives: serde would also read a struct from a
/// JSON array of its fields in order (`[null, "x"]`), which no schema allows, so the body's
/// shape is checked first ([`JsonBody`]).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A request body: a JSON object, or ([`JsonBody::LIST`]) a JSON array of objects.
pub trait JsonBody: DeserializeOwned {
    /// The body is an array of objects rather than one object.
    const LIST: bool = false;
}

impl JsonBody for api::accounts::NewAccount {}
impl JsonBody for api::accounts::Login {}
impl JsonBody for api::accounts::Refresh {}
impl JsonBody for api::admin::AccountChange {}
impl JsonBody for api::playback::PlayRequest {}
impl JsonBody for api::network::NodeTokenRequest {}
impl JsonBody for api::playlists::NewPlaylist {}
impl JsonBody for api::playlists::PlaylistChange {}
impl JsonBody for api::playlists::AddTracks {}
impl JsonBody for api::playlists::RemoveTracks {}
impl JsonBody for api::playlists::Reorder {}
impl JsonBody for api::library::PlayerUpdate {}
impl JsonBody for api::accounts::NewAppCredential {}
impl JsonBody for api::accounts::AppLogin {}
impl JsonBody for api::events::EventBatch {
    const LIST: bool = true;
}

impl<S: Send + Sync, T: JsonBody> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Syntax, media type and size are checked here without building a tree; the shape
        // from the raw text; then one typed parse.
        let Json(raw) = Json::<Box<RawValue>>::from_request(request, state).await?;
        let is_object = |raw: &RawValue| raw.get().trim_start().starts_with('{');
        let shaped = if T::LIST {
            serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .is_ok_and(|items| items.into_iter().all(is_object))
        } else {
            is_object(&raw)
        };
        if !shaped {
            let expected = if T::LIST {
                "an array of objects"
            } else {
                "an object"
            };
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                format!("the body must be {expected}"),
            ));
        }
        serde_json::from_str(raw.get())
            .map(ApiJson)
            .map_err(|error| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_json",
                    error.to_string(),
                )
            })
    }
}

/// Query extractor whose rejections are [`ApiError`]s (`invalid_query`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are [`ApiError`]s (`invalid_path`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Most items skipped by a page's `offset`.
pub const OFFSET_MAX: usize = 100_000;

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items per page, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50, nullable = false)]
    limit: Option<usize>,
    /// Items to skip, at most 100,000 (default 0).
    #[param(minimum = 0, maximum = 100_000, nullable = false)]
    offset: Option<usize>,
}

impl Page {
    /// (offset, limit); `invalid_query` outside their ranges.
    pub(crate) fn bounds(&self) -> Result<(usize, usize), ApiError> {
        Ok((
            bounded("offset", self.offset, 0, 0..=OFFSET_MAX)?,
            bounded("limit", self.limit, 20, 1..=50)?,
        ))
    }
}

/// A query integer within `range`, `default` when absent; `400 invalid_query` outside, so
/// the server takes exactly what the document says.
pub fn bounded(
    name: &'static str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            "invalid_query",
            format!("{name} is {} to {}", range.start(), range.end()),
        )
        .with_field(name))
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

pub use crate::text::{is_blank, trim_blank};
