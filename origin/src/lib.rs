//! The origin: ingest, catalog, accounts, play authorization, chunk origin (HTTP and QUIC).
//!
//! Empty until its issue lands; the shared protocol lives in `protocol`, the data plane in
//! `transport`.
