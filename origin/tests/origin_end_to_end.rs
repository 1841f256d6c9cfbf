//! A real origin on loopback: accounts, upload and ingest, play authorization, and chunks over
//! HTTP (signed URLs) and QUIC (license tokens), decrypted and decoded back to audio; on the
//! embedded store (sled and files). `origin_end_to_end_postgres.rs` runs the same cases
//! (`end_to_end/cases.rs`) on PostgreSQL and S3.

/// The store these cases run on.
const BACKEND: testkit::local::Backend = testkit::local::Backend::Embedded;

#[path = "end_to_end/cases.rs"]
mod cases;
