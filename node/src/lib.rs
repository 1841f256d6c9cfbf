//! The Chorus super-node: an always-on peer run by volunteers and ISPs.
//!
//! - [`cache`]: the sans-IO cache policy (popular renditions pinned, the rest LRU), from the
//!   `policy` crate, where the simulator runs the same code.
//! - [`store`]: the disk cache of whole renditions (ciphertext and signed manifests only;
//!   never a content key), crash-safe, verified on load and before serving.
//! - [`fetch`]: fetching from ranked sources with every chunk verified and sources that
//!   send bad chunks banned (from `client-lib`).
//! - [`supernode`]: the driver behind `chorus node`.

pub use client_lib::fetch;
pub use policy::{cache, fill};
pub mod store;
pub mod supernode;

pub use supernode::{ORIGIN_PIN_FILE, SuperNode, SuperNodeConfig, SuperNodeStats};
