//! `GET /v1/browse/{tracks,albums,artists,genres}`: the whole catalog, listed from the search
//! index ([`crate::search::Search::browse`]).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, bounded};
use super::search::refused;
use super::state::AppState;
use super::{Limit, Routes};
use crate::publish::track_json;
use crate::ratelimit::Class;
use crate::search::{BROWSE_OFFSET_MAX, BROWSE_PAGE_MAX, Entry, Filter, Kind, Sort};
use api::browse::{
    AlbumList, AlbumSummary, ArtistList, ArtistSummary, BrowseSort, GenreCount, GenreList,
    TrackList,
};
use utoipa_axum::routes;

/// Ids one listing names at most (`ids`): a request line of 3.3 KB.
pub const IDS_MAX: usize = 100;

/// Query of `GET /v1/browse/*`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseParams {
    /// Words to search for, as `GET /v1/search` takes them: the answer is in relevance order,
    /// at most 50 a page and offsets to 1000; `sort`, `genre`, years and `seed` are ignored.
    #[param(min_length = 1, max_length = 256, nullable = false)]
    q: Option<String>,
    /// Only these ids, comma-separated (at most 500), in this order; ids not in the catalog
    /// are left out. `q`, `sort`, filters and paging do not apply.
    #[param(
        max_length = 16_500,
        pattern = "^[0-9a-f]{32}(,[0-9a-f]{32}){0,499}$",
        nullable = false
    )]
    ids: Option<String>,
    /// The order (default `popular`).
    #[param(inline, nullable = false)]
    sort: Option<BrowseSort>,
    /// Only this genre, exactly as tagged.
    #[param(min_length = 1, max_length = 200, nullable = false)]
    genre: Option<String>,
    /// Only years from this one.
    #[param(minimum = 0, maximum = 9999, nullable = false)]
    from_year: Option<u16>,
    /// Only years to this one.
    #[param(minimum = 0, maximum = 9999, nullable = false)]
    to_year: Option<u16>,
    /// The shuffle of `sort=random` (default 0).
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64, nullable = false)]
    seed: Option<u64>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, nullable = false)]
    limit: Option<usize>,
    /// Items to skip, at most 1,000,000.
    #[param(minimum = 0, maximum = 1_000_000, nullable = false)]
    offset: Option<usize>,
}

/// A page of entries of `kind`: listed, or found by `q`.
async fn page(
    state: &AppState,
    kind: Kind,
    params: BrowseParams,
) -> Result<Result<(usize, usize, usize, Vec<Entry>), Response>, ApiError> {
    let limit = bounded("limit", params.limit, 50, 1..=BROWSE_PAGE_MAX)?;
    let offset = bounded("offset", params.offset, 0, 0..=BROWSE_OFFSET_MAX)?;
    for (year, name) in [(params.from_year, "from_year"), (params.to_year, "to_year")] {
        if year.is_some_and(|year| year > 9999) {
            return Err(
                ApiError::bad_request("invalid_query", "years are 0 to 9999").with_field(name),
            );
        }
    }
    if params
        .q
        .as_ref()
        .is_some_and(|q| !(1..=256).contains(&q.chars().count()))
    {
        return Err(
            ApiError::bad_request("bad_query", "a query is 1 to 256 characters").with_field("q"),
        );
    }
    if params
        .genre
        .as_ref()
        .is_some_and(|genre| !(1..=200).contains(&genre.chars().count()))
    {
        return Err(
            ApiError::bad_request("invalid_query", "a genre is 1 to 200 characters")
                .with_field("genre"),
        );
    }
    if params.seed.is_some_and(|seed| seed > 9_007_199_254_740_991) {
        return Err(
            ApiError::bad_request("invalid_query", "seed is 0 to 2^53 - 1").with_field("seed"),
        );
    }
    let search = state.search.clone();
    let found = if let Some(ids) = params.ids {
        let ids: Vec<String> = ids.split(',').map(str::to_string).collect();
        if ids.len() > IDS_MAX
            || ids.iter().any(|id| {
                id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                "ids are at most 100 ids of 32 lower-case hex characters, comma-separated",
            )
            .with_field("ids"));
        }
        tokio::task::spawn_blocking(move || {
            let entries = search.entries(kind, &ids)?;
            Ok((entries.len(), ids.len(), 0, entries))
        })
        .await
    } else if let Some(q) = params.q {
        let limit = limit.min(crate::search::PAGE_MAX);
        let offset = offset.min(crate::search::OFFSET_MAX);
        tokio::task::spawn_blocking(move || {
            let (total, hits) = search.search(&q, &[kind], limit, offset)?;
            let ids: Vec<String> = hits.into_iter().map(|hit| hit.id).collect();
            Ok((total, limit, offset, search.entries(kind, &ids)?))
        })
        .await
    } else {
        let filter = Filter {
            genre: params.genre,
            years: match (params.from_year, params.to_year) {
                (None, None) => None,
                (from, to) => Some((from.unwrap_or(0), to.unwrap_or(9999))),
            },
        };
        let sort = match params.sort.unwrap_or(BrowseSort::Popular) {
            BrowseSort::Name => Sort::Name,
            BrowseSort::Artist => Sort::Artist,
            BrowseSort::Added => Sort::Added,
            BrowseSort::Popular => Sort::Popular,
            BrowseSort::Year => Sort::YearUp,
            BrowseSort::YearDesc => Sort::YearDown,
            BrowseSort::Random => Sort::Random(params.seed.unwrap_or(0)),
            BrowseSort::Stable => Sort::Stable,
        };
        tokio::task::spawn_blocking(move || {
            let (total, entries) = search.browse(kind, &filter, sort, limit, offset)?;
            Ok((total, limit, offset, entries))
        })
        .await
    };
    match found.map_err(ApiError::internal)? {
        Ok(page) => Ok(Ok(page)),
        Err(error) => refused(error).map(Err),
    }
}

#[utoipa::path(get, path = "/v1/browse/tracks", tag = "catalog", params(BrowseParams), responses((status = 200, body = TrackList), (status = 400, body = ErrorBody, description = "invalid_query, bad_query"), (status = 414, description = "the URI is longer than the HTTP layer takes: far longer than any valid query"), (status = 431, description = "the request line is longer than the origin reads (64 KiB): far longer than any valid query"), (status = 503, body = ErrorBody, description = "search_warming_up: the index is being built after a start; Retry-After says when to ask again")))]
/// `GET /v1/browse/tracks`: every track, filtered and ordered.
pub async fn browse_tracks(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> Result<Response, ApiError> {
    let (total, limit, offset, entries) = match page(&state, Kind::Track, params).await? {
        Ok(page) => page,
        Err(response) => return Ok(response),
    };
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        // A track deleted since the index was read is left out.
        if let Some(track) = state.store.catalog().track(&entry.id).await? {
            items.push(track_json(&track));
        }
    }
    Ok(Json(TrackList {
        total,
        items,
        limit,
        offset,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/browse/albums", tag = "catalog", params(BrowseParams), responses((status = 200, body = AlbumList), (status = 400, body = ErrorBody, description = "invalid_query, bad_query"), (status = 414, description = "the URI is longer than the HTTP layer takes: far longer than any valid query"), (status = 431, description = "the request line is longer than the origin reads (64 KiB): far longer than any valid query"), (status = 503, body = ErrorBody, description = "search_warming_up")))]
/// `GET /v1/browse/albums`: every album, filtered and ordered.
pub async fn browse_albums(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> Result<Response, ApiError> {
    let (total, limit, offset, entries) = match page(&state, Kind::Album, params).await? {
        Ok(page) => page,
        Err(response) => return Ok(response),
    };
    let items = entries
        .into_iter()
        .map(|entry| AlbumSummary {
            id: entry.id,
            title: entry.name,
            artist: entry.artist,
            artist_id: entry.artist_id,
            year: (entry.year > 0).then_some(entry.year),
            genre: entry.genre,
            track_count: entry.count,
            duration_ms: entry.extra,
            added_at_ms: entry.added_ms,
            plays: entry.plays,
        })
        .collect();
    Ok(Json(AlbumList {
        total,
        items,
        limit,
        offset,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/browse/artists", tag = "catalog", params(BrowseParams), responses((status = 200, body = ArtistList), (status = 400, body = ErrorBody, description = "invalid_query, bad_query"), (status = 414, description = "the URI is longer than the HTTP layer takes: far longer than any valid query"), (status = 431, description = "the request line is longer than the origin reads (64 KiB): far longer than any valid query"), (status = 503, body = ErrorBody, description = "search_warming_up")))]
/// `GET /v1/browse/artists`: every artist, ordered (genre and years keep none: artists have
/// neither).
pub async fn browse_artists(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> Result<Response, ApiError> {
    let (total, limit, offset, entries) = match page(&state, Kind::Artist, params).await? {
        Ok(page) => page,
        Err(response) => return Ok(response),
    };
    let items = entries
        .into_iter()
        .map(|entry| ArtistSummary {
            id: entry.id,
            name: entry.name,
            album_count: entry.count,
            track_count: entry.extra,
            added_at_ms: entry.added_ms,
            plays: entry.plays,
        })
        .collect();
    Ok(Json(ArtistList {
        total,
        items,
        limit,
        offset,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/browse/genres", tag = "catalog", responses((status = 200, body = GenreList), (status = 503, body = ErrorBody, description = "search_warming_up")))]
/// `GET /v1/browse/genres`: every genre tagged, with its tracks and albums.
pub async fn browse_genres(State(state): State<AppState>) -> Result<Response, ApiError> {
    let search = state.search.clone();
    match tokio::task::spawn_blocking(move || search.genres())
        .await
        .map_err(ApiError::internal)?
    {
        Ok(genres) => Ok(Json(GenreList {
            items: genres
                .into_iter()
                .map(|(name, track_count, album_count)| GenreCount {
                    name,
                    track_count,
                    album_count,
                })
                .collect(),
        })
        .into_response()),
        Err(error) => refused(error),
    }
}

/// Listings take the `search` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Class(Class::Search), routes!(browse_tracks))
        .add(Limit::Class(Class::Search), routes!(browse_albums))
        .add(Limit::Class(Class::Search), routes!(browse_artists))
        .add(Limit::Class(Class::Search), routes!(browse_genres))
        .into()
}
