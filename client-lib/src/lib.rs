//! The playback engine player apps embed.
//!
//! - [`abr`] (from the `policy` crate): adaptive bitrate: the quality of each track from the
//!   measured download rate and the account's tier.
//! - [`cache`]: the local chunk cache on disk (size cap, LRU, damaged files dropped).
//! - [`decode`]: decoding the stream to PCM while it arrives, with the loudness gain; WAV out.
//! - [`edge`]: the origin's chunks over HTTP(S) through the signed chunk URLs (a CDN edge),
//!   verified.
//! - [`events`]: listening events for the origin (the 30-second rule, trending, royalties),
//!   queued while offline, sent in batches.
//! - [`fetch`]: fetching chunk ranges or whole renditions from ranked sources, verified,
//!   bad sources banned.
//! - [`gateway`]: a local HTTP server that serves decrypted tracks with byte ranges to
//!   unmodified players.
//! - [`listener`]: what a player app drives: plays a queue track after track with
//!   pause/resume/skip/previous/stop, prefetching the next track and adapting the bitrate.
//! - [`offline`]: offline downloads: whole renditions with their 30-day license, renewal,
//!   expiry.
//! - [`player`]: the driver that runs the scheduler over QUIC and yields decrypted audio in
//!   play order.
//! - [`queue`] (from `policy`): the play queue (playlist order, seeded shuffle, repeat).
//! - [`serve`]: sharing the cache with licensed peers (upload slots, cap, metered switch)
//!   and announcing it to the tracker.
//! - `sound` (cargo feature `sound`): `SoundSink`, PCM to the sound card.
//! - [`subsonic`]: the OpenSubsonic API the gateway serves at `/rest`.
//! - [`web`]: the web player the gateway serves at `/` (sign-in, the origin's API passed
//!   through, streams, where their bytes came from, offline downloads).
//! - [`scheduler`] (from `policy`): the playback scheduler (which chunk from whom, when),
//!   shared with the simulator.
//!
//! The decisions without I/O live in the `policy` crate, which the simulator runs too; they
//! are re-exported here under their old paths.

pub mod cache;
pub mod decode;
pub mod edge;
pub mod events;
pub mod fetch;
pub mod gateway;
pub mod listener;
pub mod offline;
pub mod place;
pub mod player;
pub mod serve;
#[cfg(feature = "sound")]
pub mod sound;
pub mod subsonic;
pub mod web;

pub use policy::{abr, queue, scheduler};
