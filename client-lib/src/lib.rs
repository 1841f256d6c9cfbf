//! The playback engine player apps embed.
//!
//! - [`scheduler`]: the sans-IO playback scheduler (which chunk from whom, when), shared with
//!   the simulator.
//!
//! The rest of the engine (driver over `transport`, local cache, offline downloads, the public
//! player API) builds on it.

pub mod scheduler;
