//! `POST /v1/tracks/{id}/play`: play authorization.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};
use protocol::manifest::SignedManifest;
use protocol::{UnixMillis, codec};

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, check_track_id};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::ratelimit::Class;
use crate::store::Tier;
use api::network::OriginAddr;
use api::playback::{OPENING_CHUNKS_MAX, OPENING_MS_MAX, PlayGrant, PlayRequest};
use utoipa_axum::routes;

#[utoipa::path(post, path = "/v1/tracks/{id}/play", tag = "playback", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), request_body = PlayRequest, responses((status = 200, body = PlayGrant), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_in_market, tier_quality, device_limit"), (status = 404, body = ErrorBody)))]
/// `POST /v1/tracks/{id}/play`: checks market and tier, answers with the signed manifest, the
/// content key, a license bound to the client's node id, and where to fetch chunks.
pub async fn play(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Json<PlayGrant>, ApiError> {
    check_track_id(&id)?;
    let node = super::error::parse_node_id(&request.node_id)?;
    let track = state
        .store
        .catalog()
        .track(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("track"))?;
    if !track.markets.is_empty() && !track.markets.contains(&account.region) {
        return Err(ApiError::forbidden(
            "not_in_market",
            format!("this track is not available in {}", account.region),
        ));
    }
    let default_quality = if account.tier == Tier::Premium {
        "high"
    } else {
        "normal"
    };
    let quality =
        super::error::parse_quality(request.quality.as_deref().unwrap_or(default_quality))?;
    if account.tier == Tier::Free && quality == protocol::Quality::High {
        return Err(ApiError::forbidden(
            "tier_quality",
            "high quality needs a premium account",
        ));
    }
    let summary = track
        .renditions
        .iter()
        .find(|rendition| rendition.quality == quality.as_str())
        .ok_or_else(|| ApiError::not_found("rendition"))?;
    let rendition = state
        .store
        .rendition(&summary.rendition_id)
        .await?
        .ok_or_else(|| ApiError::not_found("rendition"))?;
    let offline = request.offline.unwrap_or(false);
    let now = now_ms();
    if offline {
        let admitted = state
            .store
            .devices()
            .admit_offline_device(
                &account.id,
                &request.node_id,
                now,
                state.config.offline_devices_max,
                now + state.config.offline_license_ttl_s * 1000,
            )
            .await?;
        if !admitted {
            return Err(ApiError::forbidden(
                "device_limit",
                format!(
                    "offline downloads are limited to {} devices",
                    state.config.offline_devices_max
                ),
            ));
        }
    }
    let ttl_s = if offline {
        state.config.offline_license_ttl_s
    } else {
        state.config.license_ttl_s
    };
    let expires_at = now + ttl_s * 1000;
    let claims = LicenseClaims {
        version: LICENSE_VERSION,
        issuer: state.identity.node_id(),
        account: account.id.parse().map_err(ApiError::internal)?,
        node,
        region: account.region.parse().map_err(ApiError::internal)?,
        scope: LicenseScope::Play {
            renditions: vec![summary.rendition_id.parse().map_err(ApiError::internal)?],
        },
        markets: track
            .markets
            .iter()
            .map(|market| market.parse())
            .collect::<Result<_, _>>()
            .map_err(ApiError::internal)?,
        issued_at: UnixMillis(now),
        expires_at: UnixMillis(expires_at),
        offline,
    };
    let opening = request.opening_chunks.unwrap_or(0);
    if opening > OPENING_CHUNKS_MAX {
        return Err(ApiError::bad_request(
            "bad_opening_chunks",
            format!("opening_chunks is at most {OPENING_CHUNKS_MAX}"),
        ));
    }
    let opening_ms = request.opening_ms.unwrap_or(0);
    if opening_ms > OPENING_MS_MAX {
        return Err(ApiError::bad_request(
            "bad_opening_ms",
            format!("opening_ms is at most {OPENING_MS_MAX}"),
        ));
    }
    let opening_chunks = if opening == 0 && opening_ms == 0 {
        Vec::new()
    } else {
        let signed: SignedManifest = hex::decode(&rendition.manifest)
            .map_err(ApiError::internal)
            .and_then(|bytes| codec::decode(&bytes).map_err(ApiError::internal))?;
        let manifest = signed
            .verify(&state.identity.node_id())
            .map_err(ApiError::internal)?;
        // Enough chunks to reach `opening_ms` of audio, within the limit.
        let reaching = protocol::ogg::chunks_reaching(&manifest.body().chunk_end_ms, opening_ms);
        let count = opening.max(reaching).min(OPENING_CHUNKS_MAX);
        let mut chunks = Vec::new();
        for index in 0..count.min(manifest.chunk_count()) {
            let Some(id) = manifest.chunk_id(index) else {
                break;
            };
            // The chunk cache answers hot openings from memory.
            let data = state
                .store
                .blobs()
                .get(id)
                .await
                .map_err(crate::store::StoreError::from)?;
            match data {
                Some(data) => {
                    state
                        .metrics
                        .chunk_bytes_opening
                        .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    chunks.push(base64::engine::general_purpose::STANDARD.encode(data));
                }
                None => break,
            }
        }
        chunks
    };
    let license = LicenseToken::issue(&state.identity, &claims).map_err(ApiError::internal)?;
    let license_bytes = license.to_bytes().map_err(ApiError::internal)?;
    let url_expires_s = now / 1000 + state.config.chunk_url_ttl_s;
    let chunk_grant = crate::grant::ChunkGrant {
        rendition: summary.rendition_id.clone(),
        account: account.id.clone(),
        region: account.region.clone(),
        expires_s: url_expires_s,
    };
    Ok(Json(PlayGrant {
        track_id: track.id,
        quality: quality.as_str().to_string(),
        rendition_id: summary.rendition_id.clone(),
        manifest: rendition.manifest,
        content_key: rendition.content_key,
        license: hex::encode(license_bytes),
        chunk_url_template: chunk_grant.url_template(&state.public_url, &state.url_key),
        origin: OriginAddr {
            node_id: state.identity.node_id().to_hex(),
            quic: state.quic_addr.to_string(),
        },
        tracker: summary
            .rendition_id
            .parse()
            .ok()
            .and_then(|rendition| state.trackers.shard_of(&rendition)),
        trackers: state.trackers.all(),
        gain_db: track.gain_db,
        duration_ms: track.duration_ms,
        expires_at,
        opening_chunks,
    }))
}

/// Play authorizations take the account's `stream` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Class(Class::Stream), routes!(play))
        .into()
}
