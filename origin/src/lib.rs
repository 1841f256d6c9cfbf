//! The Chorus origin: ingest, catalog, accounts, play authorization and chunk serving.
//!
//! - [`http`]: the HTTP API, one router per resource, its OpenAPI document generated from
//!   the routes (see its docs for the layers).
//! - [`ingest`]: decode any common audio file, measure loudness, encode the rendition ladder.
//! - [`store`]: the storage seams, one async trait per domain (accounts, catalog, playlists,
//!   libraries, listening, devices) and the chunk blob store with its memory cache, over the
//!   embedded backend (sled and files); [`chunk_source`]: published manifests as both chunk
//!   paths see them; [`grant`]: signed chunk URLs.
//! - [`publish`]: sealing and storing an ingested track, track views, ingest admission.
//! - [`activity`] (sans-IO) and [`events`]: listening events, the 30-second rule, trending,
//!   royalties and their fraud rules.
//! - [`features`], [`recommend`] (the model) and [`recommendations`] (its background job).
//! - [`ratelimit`]: token buckets per account and per IP (sans-IO).
//! - [`accounts`]: passwords, tokens, usernames; [`admin`]: operator changes to accounts;
//!   [`passwords`]: argon2 in a bounded pool.
//! - [`listener`]: the HTTP accept loop with a connection cap and header and idle timeouts.
//! - [`server`]: runs the HTTP API and the QUIC chunk protocol together.
//! - [`synth`]: deterministic synthetic music for tests, benchmarks and sample catalogs.
//! - [`text`]: blank and trimmed text as the document's patterns mean them.
//! - [`traffic`]: the console's traffic log (egress measured, peer bytes reported) and
//!   super-node roster.

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod artwork;
pub mod chunk_source;
pub mod config;
pub mod events;
pub mod features;
pub mod follow;
pub mod grant;
pub mod http;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod migrate;
pub mod passwords;
pub mod publish;
pub mod ratelimit;
pub mod recommend;
pub mod recommendations;
pub mod search;
pub mod server;
pub mod store;
pub mod synth;
pub mod tags;
pub mod text;
pub mod traffic;

/// The wall clock in Unix milliseconds. Policy code takes time as an argument; drivers
/// (handlers, jobs, operator tools) read it here.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
