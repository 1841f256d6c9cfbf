//! Listening events, trending and royalties.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, bounded};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::activity::{
    EVENT_AGE_MAX_MS, EVENT_FUTURE_MAX_MS, FraudLimits, FraudRule, count_royalties, month_range,
};
use crate::events::{
    EVENT_ID_BYTES_MAX, EVENTS_PER_BATCH_MAX, POSITION_MS_MAX, ROYALTY_STREAMS_MAX,
};
use crate::store::EventInput;
use crate::store::{Role, Store, StreamRecord};
use api::events::{
    ArtistRoyalty, EventBatch, EventsAccepted, Flagged, Royalties, TrackRoyalty, Trending,
    TrendingItem,
};
use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

fn valid_id(id: &str) -> bool {
    (1..=EVENT_ID_BYTES_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn refuse(status: StatusCode, code: &'static str, index: usize, why: String) -> ApiError {
    ApiError::new(status, code, format!("event {index}: {why}")).with_index(index)
}

#[utoipa::path(post, path = "/v1/events", tag = "activity", security(("bearer" = [])), request_body = EventBatch, responses(
    (status = 200, body = EventsAccepted, description = "Recorded, all or nothing"),
    (status = 400, body = ErrorBody, description = "no_events, too_many_events, invalid_event_id, invalid_play_id, invalid_id, invalid_position, invalid_region, error.index names the event"),
    (status = 404, body = ErrorBody, description = "unknown_track (error.index names the event)"),
    (status = 409, body = ErrorBody, description = "play_track_mismatch: a play_id already used for another track (error.index names the event)")))]
/// `POST /v1/events`: a batch of listening events, recorded all or nothing.
pub async fn post_events(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiJson(EventBatch(events)): ApiJson<EventBatch>,
) -> Result<Json<EventsAccepted>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::bad_request(
            "no_events",
            "send at least one event",
        ));
    }
    if events.len() > EVENTS_PER_BATCH_MAX {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!("at most {EVENTS_PER_BATCH_MAX} events per batch"),
        ));
    }
    let now = now_ms();
    let bad = |code, index, why: String| refuse(StatusCode::BAD_REQUEST, code, index, why);
    let mut tracks = HashMap::new();
    let mut inputs = Vec::with_capacity(events.len());
    let mut reported = Vec::new();
    let mut skipped = 0;
    for (index, event) in events.into_iter().enumerate() {
        if !valid_id(&event.id) {
            return Err(bad(
                "invalid_event_id",
                index,
                "ids are 1 to 64 of A-Z a-z 0-9 _ -".into(),
            ));
        }
        if !valid_id(&event.play_id) {
            return Err(bad(
                "invalid_play_id",
                index,
                "play ids are 1 to 64 of A-Z a-z 0-9 _ -".into(),
            ));
        }
        if event.track_id.parse::<protocol::TrackId>().is_err() {
            return Err(bad(
                "invalid_id",
                index,
                "track ids are 32 hex characters".into(),
            ));
        }
        if event.position_ms > POSITION_MS_MAX {
            return Err(bad(
                "invalid_position",
                index,
                format!("position_ms is at most {POSITION_MS_MAX}"),
            ));
        }
        if event.sources.is_some_and(|sources| !sources.in_bounds()) {
            return Err(bad(
                "invalid_sources",
                index,
                format!(
                    "each source's bytes are at most {}",
                    api::events::SOURCE_BYTES_MAX
                ),
            ));
        }
        let region = match event.region {
            Some(region) if region.parse::<protocol::Region>().is_ok() => region,
            Some(_) => {
                return Err(bad(
                    "invalid_region",
                    index,
                    "region must be an ISO 3166-1 alpha-2 code".into(),
                ));
            }
            None => account.region.clone(),
        };
        // Outside the window the ids are remembered for, an event cannot be deduplicated:
        // it is skipped (and counted), not recorded, and the rest of the batch is.
        if event.at > now + EVENT_FUTURE_MAX_MS || event.at.saturating_add(EVENT_AGE_MAX_MS) < now {
            skipped += 1;
            continue;
        }
        if let Some(sources) = event.sources {
            reported.push(sources);
        }
        if !tracks.contains_key(&event.track_id) {
            let track = state
                .store
                .catalog()
                .track(&event.track_id)
                .await?
                .ok_or_else(|| {
                    refuse(
                        StatusCode::NOT_FOUND,
                        "unknown_track",
                        index,
                        format!("no track {}", event.track_id),
                    )
                })?;
            tracks.insert(event.track_id.clone(), track);
        }
        let track = &tracks[&event.track_id];
        inputs.push(EventInput {
            id: event.id,
            play_id: event.play_id,
            kind: event.kind,
            artist_id: track.artist_id.clone(),
            genre: track.genre.clone(),
            track: event.track_id,
            region,
            position_ms: event.position_ms,
            at_ms: event.at,
        });
    }
    let recorded = state.store.record_events(&account.id, &inputs).await?;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err((index, refused)) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "play_track_mismatch",
                index,
                refused.to_string(),
            ));
        }
    };
    state.activity.record(&recorded.streams);
    // What listeners reported getting from where, once: a batch sent again (all duplicates)
    // adds nothing; one partly seen before is left out rather than counted twice.
    if recorded.duplicates == 0 {
        for sources in &reported {
            state.traffic.add_reported(now, sources);
        }
    }
    Ok(Json(EventsAccepted {
        accepted: recorded.accepted,
        duplicates: recorded.duplicates,
        skipped,
        streams: recorded.streams.len(),
    }))
}

/// Query of `GET /v1/trending`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// ISO region (default: the world).
    #[param(pattern = "^[A-Z]{2}$", nullable = false)]
    region: Option<String>,
    /// Genre, case-insensitive (default: all).
    #[param(max_length = 200, nullable = false)]
    genre: Option<String>,
    /// At most this many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/trending", tag = "activity", params(TrendingParams), responses((status = 200, body = Trending, description = "Decayed stream counts (half-life 24 h) over a 7-day window"), (status = 400, body = ErrorBody, description = "invalid_region")))]
/// `GET /v1/trending`: the tracks streamed most lately, per region and genre.
pub async fn trending(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<TrendingParams>,
) -> Result<Json<Trending>, ApiError> {
    if let Some(region) = &params.region
        && region.parse::<protocol::Region>().is_err()
    {
        return Err(ApiError::bad_request(
            "invalid_region",
            "region must be an ISO 3166-1 alpha-2 code",
        ));
    }
    if params
        .genre
        .as_deref()
        .is_some_and(|genre| genre.chars().count() > 200)
    {
        return Err(
            ApiError::bad_request("invalid_query", "genre is at most 200 characters")
                .with_field("genre"),
        );
    }
    let genre = params.genre.as_deref().filter(|genre| !genre.is_empty());
    let limit = bounded("limit", params.limit, 20, 1..=100)?;
    // Ask for a few more: tracks deleted since are skipped.
    let top = state
        .activity
        .top(params.region.as_deref(), genre, now_ms(), limit + 10);
    let mut items = Vec::with_capacity(limit);
    for entry in top {
        if items.len() == limit {
            break;
        }
        if let Some(track) = state.store.catalog().track(&entry.track_id).await? {
            items.push(TrendingItem {
                track: crate::publish::track_json(&track),
                score: entry.score,
                streams: u64::from(entry.streams),
            });
        }
    }
    Ok(Json(Trending {
        region: params.region,
        genre: genre.map(str::to_string),
        items,
    }))
}

/// Query of `GET /v1/royalties`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoyaltyParams {
    /// `YYYY-MM` (UTC).
    #[param(pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$")]
    month: String,
    /// Tracks and artists listed, most streamed first, 1 to 1000 (default 100); totals
    /// and shares always cover everything.
    #[param(minimum = 1, maximum = 1000, nullable = false)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/royalties", tag = "activity", security(("bearer" = [])), params(RoyaltyParams), responses(
    (status = 200, body = Royalties),
    (status = 400, body = ErrorBody, description = "invalid_month"),
    (status = 403, body = ErrorBody, description = "admin_only"),
    (status = 507, body = ErrorBody, description = "too_many_streams: the month is too large for an online report")))]
/// `GET /v1/royalties`: qualified streams per track and artist in a month, fraud excluded,
/// and each one's pro-rata share of the counted streams.
pub async fn royalties(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiQuery(params): ApiQuery<RoyaltyParams>,
) -> Result<Json<Royalties>, ApiError> {
    if account.role != Role::Admin {
        return Err(ApiError::forbidden(
            "admin_only",
            "royalty reports are for admins",
        ));
    }
    let (from, to) = month_range(&params.month)
        .ok_or_else(|| ApiError::bad_request("invalid_month", "month is YYYY-MM"))?;
    let limit = bounded("limit", params.limit, 100, 1..=1000)?;
    let report = royalty_report(&state.store, from, to, limit).await?;
    let flagged = |rule| report.0.flagged.get(&rule).copied().unwrap_or(0);
    Ok(Json(Royalties {
        streams: report.0.streams,
        counted: report.0.counted,
        flagged: Flagged {
            looping: flagged(FraudRule::Looping),
            impossible_travel: flagged(FraudRule::ImpossibleTravel),
            burst: flagged(FraudRule::Burst),
        },
        tracks_total: report.0.tracks.len(),
        artists_total: report.3,
        tracks: report.1,
        artists: report.2,
        month: params.month,
    }))
}

/// The month's royalty report with every track, as CSV: `track_id,title,artist_id,artist,
/// streams,share`, most streamed first. Text fields are quoted where they must be, and one
/// that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`) starts with `'`.
pub(crate) async fn royalty_csv(state: &AppState, month: &str) -> Result<String, ApiError> {
    let (from, to) = month_range(month)
        .ok_or_else(|| ApiError::bad_request("invalid_month", "month is YYYY-MM"))?;
    let (_, tracks, artists, _) = royalty_report(&state.store, from, to, usize::MAX).await?;
    let names: HashMap<&str, &str> = artists
        .iter()
        .filter_map(|artist| Some((artist.artist_id.as_str(), artist.name.as_deref()?)))
        .collect();
    let mut csv = String::from("track_id,title,artist_id,artist,streams,share\n");
    for track in &tracks {
        let title = csv_field(track.title.as_deref().unwrap_or(""));
        let artist = csv_field(names.get(track.artist_id.as_str()).copied().unwrap_or(""));
        csv.push_str(&format!(
            "{},{title},{},{artist},{},{:.8}\n",
            track.track_id, track.artist_id, track.streams, track.share
        ));
    }
    Ok(csv)
}

/// One CSV text field: quoted when it holds a comma, quote or line break; a leading
/// formula character defused with `'`.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

type Report = (
    crate::activity::RoyaltyCount,
    Vec<TrackRoyalty>,
    Vec<ArtistRoyalty>,
    usize,
);

async fn royalty_report(
    store: &Store,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<Report, ApiError> {
    const PAGE: usize = 10_000;
    // The day before is context for the fraud rules' windows.
    let mut streams: Vec<StreamRecord> = Vec::new();
    loop {
        let page = store
            .listening()
            .streams_between(
                from.saturating_sub(24 * 3600 * 1000),
                to,
                streams.last(),
                PAGE,
            )
            .await?;
        let done = page.len() < PAGE;
        streams.extend(page);
        if streams.len() > ROYALTY_STREAMS_MAX {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "too_many_streams",
                format!("more than {ROYALTY_STREAMS_MAX} streams: run the batch pipeline"),
            ));
        }
        if done {
            break;
        }
    }
    let count = count_royalties(&streams, from, to, &FraudLimits::default());
    let mut artist_of: HashMap<&str, &str> = HashMap::new();
    for stream in &streams {
        artist_of.insert(&stream.track, &stream.artist_id);
    }
    let counted = count.counted.max(1) as f64;
    let mut tracks: Vec<(&String, u64)> = count.tracks.iter().map(|(t, n)| (t, *n)).collect();
    tracks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut artists: HashMap<&str, u64> = HashMap::new();
    for (track, n) in &tracks {
        *artists.entry(artist_of[track.as_str()]).or_default() += n;
    }
    let mut artists: Vec<(&str, u64)> = artists.into_iter().collect();
    artists.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let artists_total = artists.len();
    let mut track_rows = Vec::new();
    for (track, n) in tracks.iter().take(limit) {
        let record = store.catalog().track(track).await?;
        track_rows.push(TrackRoyalty {
            track_id: track.to_string(),
            title: record.as_ref().map(|record| record.title.clone()),
            artist_id: artist_of[track.as_str()].to_string(),
            streams: *n,
            share: *n as f64 / counted,
        });
    }
    let mut artist_rows = Vec::new();
    for (artist, n) in artists.iter().take(limit) {
        let name = store
            .catalog()
            .artist_tracks(artist, 0, 1)
            .await?
            .first()
            .map(|track| track.artist.clone());
        artist_rows.push(ArtistRoyalty {
            artist_id: artist.to_string(),
            name,
            streams: *n,
            share: *n as f64 / counted,
        });
    }
    Ok((count, track_rows, artist_rows, artists_total))
}

/// Listening events, trending and royalties.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(
            Limit::Ip,
            routes!(post_events).layer(DefaultBodyLimit::max(crate::events::EVENTS_BODY_BYTES_MAX)),
        )
        .add(Limit::Ip, routes!(trending))
        .add(Limit::Ip, routes!(royalties))
        .into()
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("Night Songs"), "Night Songs");
        assert_eq!(csv_field("Hello, \"World\""), "\"Hello, \"\"World\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
