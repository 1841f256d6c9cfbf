//! The Chorus simulator: a seeded discrete-event engine that runs the real sans-IO state
//! machines — the client's playback [`Scheduler`](policy::scheduler::Scheduler), the
//! [`Tracker`](policy::tracker::Tracker) core and the super-node's
//! [`CachePolicy`](policy::cache::CachePolicy) — for up to a million simulated peers over a
//! flow-level network model.
//!
//! - [`config`]: scenarios (TOML, `sim/scenarios/`), `--set` overrides and sweeps.
//! - [`workload`]: Zipf popularity, Weibull sessions and gaps, the diurnal curve.
//! - [`queue`]: the event queue (a timing wheel with a heap for far-off events).
//! - [`engine`]: the event loop, the drivers around the real state machines, the network
//!   model and the checkers.
//! - [`report`]: the summary, time series, per-play records, CSV and SVG output.
//!
//! ```no_run
//! let text = std::fs::read_to_string("sim/scenarios/spotify-2010.toml").unwrap();
//! let scenario = sim::Scenario::from_toml(&text, &[("peers".into(), "1000".into())]).unwrap();
//! let outcome = sim::Engine::new(scenario).unwrap().run(&mut |_| {}).unwrap();
//! println!("{}", outcome.summary.deterministic_json());
//! ```

pub mod config;
pub mod engine;
pub mod queue;
pub mod report;
pub mod svg;
pub mod tracker_link;
pub mod workload;

pub use config::{Scenario, ScenarioError, expand_sets};
pub use engine::{Engine, Progress, SimError};
pub use report::{Outcome, Summary};
