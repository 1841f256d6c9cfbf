//! The Chorus test kit: the fixtures the crates' tests (and the benchmarks) share, so each
//! exists once.
//!
//! - [`rendition`]: a sealed rendition with a signed manifest, from a few numbers.
//! - [`local`]: an origin in this process, with accounts made as operators make them and
//!   synthetic uploads.
//! - [`app`]: the origin's router without sockets, for handler tests (`oneshot`).
//! - [`process`]: a child process started until it prints `ready`, killed on drop.
//! - [`chorus`]: `chorus origin` as a child process (with a test CA for HTTPS).
//! - [`http`]: blocking HTTP calls over the `api` types.

pub mod app;
pub mod chorus;
pub mod http;
pub mod local;
pub mod picture;
pub mod process;
pub mod rendition;
pub mod services;

pub use http::PASSWORD;
pub use rendition::{Rendition, RenditionSpec};
