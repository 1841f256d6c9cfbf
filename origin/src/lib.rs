//! The Chorus origin: ingest, catalog, accounts, play authorization and chunk serving.
//!
//! - [`ingest`]: decode any common audio file, measure loudness, encode the rendition ladder.
//! - [`store`]: accounts, tokens and the catalog in sled; [`chunks`]: chunk files.
//! - [`api`] and [`publish`]: the HTTP API of API.md.
//! - [`activity`] (sans-IO) and [`events`]: listening events, the 30-second rule, trending,
//!   royalties and their fraud rules.
//! - [`features`], [`recommend`] (the model) and [`recommendations`] (its routes and job).
//! - [`ratelimit`]: per-account and per-IP limits.
//! - [`admin`]: operator changes to accounts (role, tier, region).
//! - [`passwords`]: argon2 in a bounded pool.
//! - [`nodes`]: network info and super-node role tokens.
//! - [`listener`]: the HTTP accept loop with a connection cap and header and idle timeouts.
//! - [`server`]: runs the HTTP API and the QUIC chunk protocol together.
//! - [`synth`]: deterministic synthetic music for tests, benchmarks and sample catalogs.

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod api;
pub mod chunks;
pub mod config;
pub mod events;
pub mod features;
pub mod ingest;
pub mod library;
pub mod listener;
pub mod metrics;
pub mod nodes;
pub mod openapi;
pub mod passwords;
pub mod playlists;
pub mod publish;
pub mod ratelimit;
pub mod recommend;
pub mod recommendations;
pub mod search;
pub mod server;
pub mod store;
pub mod synth;
