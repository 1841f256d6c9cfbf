//! The playback engine player apps embed: scheduler, cache, peer serving, offline.
//!
//! Empty until its issue lands; the shared protocol lives in `protocol`, the data plane in
//! `transport`.
