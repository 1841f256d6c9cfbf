//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Chorus origin API", description = "Catalog, accounts, ingest, playback authorization and chunks."),
    paths(
        crate::api::healthz,
        crate::api::render_metrics,
        crate::api::openapi_json,
        crate::api::create_account,
        crate::api::create_session,
        crate::api::refresh_session,
        crate::api::me,
        crate::admin::patch_account,
        crate::api::get_chunk,
        crate::publish::upload_track,
        crate::publish::get_track,
        crate::publish::delete_track,
        crate::publish::artist,
        crate::publish::artist_tracks,
        crate::publish::album,
        crate::publish::play,
        crate::api::search_catalog,
        crate::library::like_track,
        crate::library::unlike_track,
        crate::library::liked_tracks,
        crate::library::follow_artist,
        crate::library::unfollow_artist,
        crate::library::followed_artists,
        crate::playlists::create,
        crate::playlists::read,
        crate::playlists::change,
        crate::playlists::add_tracks,
        crate::playlists::remove_tracks,
        crate::playlists::reorder,
        crate::playlists::mine,
        crate::events::post_events,
        crate::events::trending,
        crate::events::royalties,
        crate::recommendations::recommendations,
        crate::recommendations::radio,
        crate::nodes::network,
        crate::nodes::node_token,
    ),
    components(schemas(crate::api::ErrorBody, crate::admin::AccountChange, crate::admin::AccountView, crate::publish::TrackView, crate::publish::TrackMetadata, crate::search::Hit, crate::playlists::NewPlaylist, crate::playlists::PlaylistChange, crate::playlists::AddTracks, crate::playlists::RemoveTracks, crate::playlists::Reorder, crate::events::Event, crate::activity::EventKind, crate::recommend::Reason)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `GET /v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
