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
pub mod browse;
pub mod catalog;
pub mod error;
pub mod events;
pub mod int;
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

/// The schema of a region a caller may name where only assigned codes are taken (sign-up,
/// admin changes): one of the 249 ISO 3166-1 alpha-2 codes, or `null` (not stated).
pub fn assigned_region_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let codes = protocol::ids::ISO_3166_ALPHA2
        .iter()
        .map(|code| serde_json::Value::from(String::from_utf8_lossy(code).into_owned()))
        .chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(codes))
        .build()
}

fn track_id_items() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(ID32_PATTERN))
        .build()
}

/// 1 to 100 track ids.
pub fn track_id_list_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(track_id_items())
        .min_items(Some(1))
        .max_items(Some(100))
        .build()
}

/// Up to 1000 track ids (a saved play queue).
pub fn queue_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(track_id_items())
        .max_items(Some(1_000))
        .build()
}

/// Up to 100 track ids, or `null`.
pub fn optional_track_id_list_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(track_id_items())
        .max_items(Some(100))
        .build()
}

/// Up to 100 playlist positions, or `null`.
pub fn position_list_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(9_999)),
        )
        .max_items(Some(100))
        .build()
}

/// Up to 250 regions (two capital letters), or `null`.
pub fn markets_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Z]{2}$")),
        )
        .max_items(Some(250))
        .build()
}
