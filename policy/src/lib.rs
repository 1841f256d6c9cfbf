//! Chorus's decisions, without I/O: what the player, the tracker and the super-nodes decide,
//! written so that the production drivers and the simulator run the same code.
//!
//! Nothing here reads the clock, draws OS randomness, opens files or sockets, or waits: time
//! is an argument (milliseconds), randomness comes from a seed, and a state machine says
//! when it wants to be called again. `clippy.toml` in this crate bans the ways around that.
//!
//! - [`scheduler`]: which chunk to fetch from whom, when, for one track being played.
//! - [`announce`]: when a listener tells the tracker what it holds.
//! - [`prefetch`]: the next track's opening fetched ahead, peers first.
//! - [`abr`]: adaptive bitrate: the quality of each track from the measured download rate
//!   and the account's tier.
//! - [`queue`]: the play queue (playlist order, seeded shuffle, repeat).
//! - [`tracker`]: the tracker: announces as soft state, ranked peer lists under licensing and
//!   region rules, popularity, reports and quarantine.
//! - [`cache`]: the super-node's cache: popular renditions pinned, the rest LRU, in a byte
//!   budget.
//! - [`fill`]: the super-node's fills: popular renditions and pull-through on repeated
//!   misses, a few at once, failures held off.
//! - [`upload`]: upload admission: which requests a serving node takes (slots by priority,
//!   an account's share).

pub mod abr;
pub mod announce;
pub mod cache;
pub mod fill;
pub mod prefetch;
pub mod queue;
pub mod scheduler;
mod small_map;
pub mod tracker;
pub mod upload;
