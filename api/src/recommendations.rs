//! Recommendations and radio.

use serde::{Deserialize, Serialize};

use crate::catalog::TrackView;

/// Why a track is recommended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// `co_listening`, `co_playlisting`, `similar_sound`, `same_artist`, `by_artist`,
    /// `popular_in_region` or `popular`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The seed track it follows from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_track: Option<String>,
    /// The seed artist it follows from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_artist: Option<String>,
    /// A sentence for the listener.
    pub text: String,
}

/// One recommended track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// The track.
    pub track: TrackView,
    /// Relative strength (higher first).
    pub score: f32,
    /// Why.
    pub reason: Reason,
}

/// The seeds a recommendation started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Seeds {
    /// Seed tracks.
    pub tracks: Vec<String>,
    /// Seed artists.
    pub artists: Vec<String>,
}

/// `GET /v1/recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// The seeds used: those asked for, else the listener's own.
    pub seeds: Seeds,
    /// Best first.
    pub items: Vec<Recommendation>,
}

/// `GET /v1/tracks/{id}/radio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Radio {
    /// The seed track.
    pub seed: String,
    /// The station, in order.
    pub items: Vec<Recommendation>,
}
