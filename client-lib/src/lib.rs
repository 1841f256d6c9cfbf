//! The playback engine player apps embed.
//!
//! - [`cache`]: the local chunk cache on disk (size cap, LRU, damaged files dropped).
//! - [`decode`]: decoding the stream to PCM while it arrives, with the loudness gain; WAV out.
//! - [`fetch`]: fetching chunk ranges or whole renditions from ranked sources, verified,
//!   bad sources banned.
//! - [`gateway`]: a local HTTP server that serves decrypted tracks with byte ranges to
//!   unmodified players.
//! - [`origin_api`]: the origin's HTTP API (sessions, play authorization, network info).
//! - [`player`]: the driver that runs the scheduler over QUIC and yields decrypted audio in
//!   play order.
//! - [`serve`]: sharing the cache with licensed peers (upload slots, cap, metered switch)
//!   and announcing it to the tracker.
//! - [`scheduler`]: the sans-IO playback scheduler (which chunk from whom, when), shared with
//!   the simulator.
//!
//! The rest of the engine (driver over `transport`, local cache, offline downloads, the public
//! player API) builds on it.

pub mod cache;
pub mod decode;
pub mod fetch;
pub mod gateway;
pub mod origin_api;
pub mod player;
pub mod scheduler;
pub mod serve;
