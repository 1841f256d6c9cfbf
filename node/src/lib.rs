//! The super-node: caches and serves ciphertext chunks to licensed peers.
//!
//! Empty until its issue lands; the shared protocol lives in `protocol`, the data plane in
//! `transport`.
