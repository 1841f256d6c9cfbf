//! The origin's HTTP API as Rust types: every request and response body, defined once and
//! used by the origin (which derives the OpenAPI document from them) and by every client.
//!
//! - One module per resource: [`accounts`], [`admin`], [`catalog`], [`playback`],
//!   [`search`], [`library`], [`playlists`], [`events`], [`recommendations`], [`network`],
//!   [`service`]; [`error`] is the envelope every refusal comes in.
//! - [`client`] (feature `client`, on by default): [`client::OriginApi`], the HTTP client
//!   that pins the origin's key and verifies what it signs.
//!
//! Ids on the wire are lowercase hex: tracks, albums, artists and accounts 32 characters,
//! renditions, chunks and nodes 64. Regions are ISO 3166-1 alpha-2 codes. Times are Unix
//! milliseconds unless a field says otherwise.

pub mod accounts;
pub mod admin;
pub mod catalog;
pub mod error;
pub mod events;
pub mod library;
pub mod network;
pub mod playback;
pub mod playlists;
pub mod recommendations;
pub mod search;
pub mod service;

#[cfg(feature = "client")]
pub mod client;

pub use accounts::{Role, Tier};
pub use error::{ErrorBody, ErrorDetail};

/// The pattern of a 32-hex id (tracks, albums, artists, accounts).
pub const ID32_PATTERN: &str = "^[0-9a-f]{32}$";
/// The pattern of a 64-hex id (renditions, chunks, nodes).
pub const ID64_PATTERN: &str = "^[0-9a-f]{64}$";
