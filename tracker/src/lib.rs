//! The Chorus tracker: who holds what, under licensing and region rules.
//!
//! - [`core`]: the sans-IO state machine (announces as soft state, ranked peer lists,
//!   popularity, reports and quarantine). Time is an argument; every map is bounded. It lives
//!   in the `policy` crate ([`policy::tracker`]), where the simulator drives the same code.
//! - [`server`]: the QUIC driver (`chorus tracker`): verifies license signatures and feeds the
//!   core.

pub use policy::tracker as core;
pub mod server;

pub use crate::core::{Announced, Tracker, TrackerConfig, TrackerStats};
pub use server::TrackerService;
