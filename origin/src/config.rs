//! Origin configuration: flags for the common settings, a TOML file for the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything an origin needs to run. Every field has a default, so `chorus origin` works
/// with no flags and no file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Where the database, chunk files and keys live.
    pub data_dir: PathBuf,
    /// HTTP API and chunk path.
    pub http_addr: SocketAddr,
    /// QUIC chunk protocol.
    pub quic_addr: SocketAddr,
    /// The QUIC address clients are told, when it is not the bound one (a NAT's public
    /// address, a relay, a link emulator). Default: the bound address.
    pub quic_public_addr: Option<SocketAddr>,
    /// Base URL clients use for chunk URLs (a CDN in front of the origin, say). Default:
    /// `http://` + the bound HTTP address.
    pub public_url: Option<String>,
    /// The tracker clients should use, as `NODE_ID@HOST:PORT`, if one runs.
    pub tracker: Option<String>,
    /// Largest accepted upload, in bytes.
    pub upload_bytes_max: u64,
    /// Largest accepted JSON body, in bytes.
    pub json_bytes_max: usize,
    /// Longest accepted audio, in milliseconds.
    pub audio_ms_max: u64,
    /// Access token lifetime, seconds.
    pub access_token_ttl_s: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_token_ttl_s: u64,
    /// Streaming license lifetime, seconds.
    pub license_ttl_s: u64,
    /// Offline license lifetime, seconds (30 days).
    pub offline_license_ttl_s: u64,
    /// Devices (node ids) per account that may hold offline licenses at once.
    pub offline_devices_max: usize,
    /// Lifetime of signed chunk URLs, seconds.
    pub chunk_url_ttl_s: u64,
    /// Ingest jobs run at once; more wait.
    pub ingest_jobs_max: usize,
    /// Rate limits per account and per IP (`[rate_limits]`, see [`crate::ratelimit`]).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client for per-IP limits.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The recommendation model is rebuilt at least this often, seconds; after a catalog
    /// change, within a minute (or this, if shorter). 0 turns recommendations off.
    pub recommendations_refresh_s: u64,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("chorus-origin"),
            http_addr: "127.0.0.1:8470".parse().expect("literal address"),
            quic_addr: "127.0.0.1:8471".parse().expect("literal address"),
            quic_public_addr: None,
            public_url: None,
            tracker: None,
            upload_bytes_max: 200 * 1024 * 1024,
            json_bytes_max: 64 * 1024,
            audio_ms_max: 2 * 3600 * 1000,
            access_token_ttl_s: 3600,
            refresh_token_ttl_s: 30 * 24 * 3600,
            license_ttl_s: 6 * 3600,
            offline_license_ttl_s: 30 * 24 * 3600,
            offline_devices_max: 5,
            chunk_url_ttl_s: 6 * 3600,
            ingest_jobs_max: 2,
            rate_limits: crate::ratelimit::RateLimits::default(),
            trusted_proxies: Vec::new(),
            recommendations_refresh_s: 600,
        }
    }
}

impl OriginConfig {
    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(toml::from_str(&text)?)
    }
}
