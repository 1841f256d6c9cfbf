//! Origin configuration: flags for the common settings, a TOML file for the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

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
    /// `https://` (with TLS) or `http://` + the bound HTTP address.
    pub public_url: Option<String>,
    /// PEM certificate chain (leaf first): with `tls_key`, the HTTP API speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// With TLS on, also serve plain HTTP here; loopback addresses only (monitoring, or a
    /// reverse proxy on the same machine).
    pub http_plain_addr: Option<SocketAddr>,
    /// The tracker clients should use, as `NODE_ID@HOST:PORT`, if one runs (one shard; see
    /// `trackers`).
    pub tracker: Option<String>,
    /// The tracker shards, `NODE_ID@HOST:PORT` each: renditions are split over them by
    /// rendezvous hashing (`protocol::shards`). With none, `tracker` is the only one.
    #[serde(default)]
    pub trackers: Vec<String>,
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
    /// Ingest jobs run at once; more wait (their uploads spooled to disk, not memory).
    pub ingest_jobs_max: usize,
    /// Uploads one account may have under way at once (read, waiting or transcoding); more
    /// get `429 too_many_ingests`.
    pub ingest_per_account_max: usize,
    /// Write each ingest's encoded renditions to temporary files in `DATA/uploads` while they
    /// grow (true), or hold them in memory (false: faster on a slow disk, about 65 MB more
    /// per concurrent ingest of a 15-minute track, and up to four times that for a pure tone,
    /// whose ladder a second pass of nine encoders reorders).
    pub ingest_spool: bool,
    /// Rate limits per account and per IP (`[rate_limits]`, see [`crate::ratelimit`]).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client for per-IP limits.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The recommendation model is rebuilt at least this often, seconds; after a catalog
    /// change, within a minute (or this, if shorter). 0 turns recommendations off.
    pub recommendations_refresh_s: u64,
    /// The region of a new account whose address no `region_networks` entry covers (an ISO
    /// 3166-1 alpha-2 code). Callers never choose their region: the operator's rules do.
    pub default_region: String,
    /// Networks whose sign-ups get a region, most specific first:
    /// `[[region_networks]] cidr = "203.0.113.0/24"` and `region = "US"`. The client address
    /// is the connection's, or `X-Forwarded-For`'s last entry behind a `trusted_proxies` proxy.
    pub region_networks: Vec<RegionNetwork>,
    /// Whether anyone may sign up as an artist. Closed by default: an admin grants the role
    /// (`chorus admin set-role`).
    pub artist_signup: bool,
    /// Password hashes (argon2id, ~20 MiB and tens of ms each) computed at once; more wait,
    /// and past eight waiting per slot a request gets `503 busy` with `Retry-After`.
    /// 0 means one per core.
    pub password_jobs_max: usize,
    /// Limits of the HTTP listener (`[http]`: connections, header and idle timeouts).
    pub http: crate::listener::HttpLimits,
    /// Where metadata lives: `embedded` (sled in the data directory; the default, no set-up)
    /// or a `postgres://user:password@host:port/database` URL.
    pub database: String,
    /// Connections kept in the PostgreSQL pool.
    pub database_pool: usize,
    /// Where chunks live: `files` (in the data directory; the default) or
    /// `s3://BUCKET[/PREFIX]` on any S3-compatible store, its endpoint and credentials from
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and
    /// `AWS_ALLOW_HTTP`.
    pub blobs: String,
    /// Bytes of hot chunks kept in memory in front of the blob store.
    pub chunk_cache_bytes: usize,
    /// Settings of the S3 endpoint that override the `AWS_*` variables (`[s3]`). Usually
    /// empty: the variables are the standard place for them.
    pub s3: S3Settings,
}

/// `[s3]`: the S3 endpoint and credentials, each overriding its `AWS_*` variable when set.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Overrides `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Overrides `AWS_REGION`.
    pub region: Option<String>,
    /// Overrides `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Overrides `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Overrides `AWS_ALLOW_HTTP`.
    pub allow_http: Option<bool>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// One `[[region_networks]]` rule: sign-ups from `cidr` get `region`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegionNetwork {
    /// A network, e.g. `203.0.113.0/24` or `2001:db8::/32`.
    pub cidr: String,
    /// Its ISO 3166-1 alpha-2 region.
    pub region: String,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("chorus-origin"),
            http_addr: "127.0.0.1:8470".parse().expect("literal address"),
            quic_addr: "127.0.0.1:8471".parse().expect("literal address"),
            quic_public_addr: None,
            public_url: None,
            tls_cert: None,
            tls_key: None,
            http_plain_addr: None,
            tracker: None,
            trackers: Vec::new(),
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
            ingest_per_account_max: 2,
            ingest_spool: true,
            rate_limits: crate::ratelimit::RateLimits::default(),
            trusted_proxies: Vec::new(),
            recommendations_refresh_s: 600,
            default_region: "SE".to_string(),
            region_networks: Vec::new(),
            artist_signup: false,
            password_jobs_max: 0,
            http: crate::listener::HttpLimits::default(),
            database: "embedded".to_string(),
            database_pool: crate::store::postgres::POOL_SIZE_DEFAULT,
            blobs: "files".to_string(),
            chunk_cache_bytes: crate::store::blobs::CHUNK_CACHE_BYTES_DEFAULT,
            s3: S3Settings::default(),
        }
    }
}

impl OriginConfig {
    /// Where the store lives (see [`crate::store::StoreConfig`]).
    /// The tracker shards (`trackers`, or `tracker` alone), checked: `(node id, the entry)`.
    pub fn tracker_shards(&self) -> anyhow::Result<TrackerShards> {
        let entries: Vec<&String> = if self.trackers.is_empty() {
            self.tracker.iter().collect()
        } else {
            self.trackers.iter().collect()
        };
        let mut shards = Vec::with_capacity(entries.len());
        for entry in entries {
            let (node, addr) = entry
                .split_once('@')
                .with_context(|| format!("tracker {entry:?}: expected NODE_ID@HOST:PORT"))?;
            let node: protocol::NodeId = node
                .parse()
                .map_err(|_| anyhow::anyhow!("tracker {entry:?}: the node id is 64 hex"))?;
            addr.parse::<SocketAddr>()
                .with_context(|| format!("tracker {entry:?}: the address is HOST:PORT"))?;
            if shards.iter().any(|(known, _)| *known == node) {
                anyhow::bail!("tracker {entry:?} is listed twice");
            }
            shards.push((node, entry.clone()));
        }
        Ok(TrackerShards(shards))
    }

    pub fn store_config(&self) -> anyhow::Result<crate::store::StoreConfig> {
        use crate::store::{Blobs, Database};
        let mut database = Database::parse(&self.database).map_err(anyhow::Error::msg)?;
        if let Database::Postgres { pool_size, .. } = &mut database {
            *pool_size = self.database_pool.max(1);
        }
        let mut blobs = Blobs::parse(&self.blobs).map_err(anyhow::Error::msg)?;
        if let Blobs::S3 { access, .. } = &mut blobs {
            let s3 = &self.s3;
            access.endpoint = s3.endpoint.clone().or(access.endpoint.take());
            access.region = s3.region.clone().or(access.region.take());
            access.access_key_id = s3.access_key_id.clone().or(access.access_key_id.take());
            access.secret_access_key = s3
                .secret_access_key
                .clone()
                .or(access.secret_access_key.take());
            access.allow_http = s3.allow_http.unwrap_or(access.allow_http);
        }
        Ok(crate::store::StoreConfig {
            data_dir: self.data_dir.clone(),
            database,
            blobs,
            chunk_cache_bytes: self.chunk_cache_bytes,
        })
    }

    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(toml::from_str(&text)?)
    }

    /// The sign-up region rules, checked: the default region and every network's region
    /// must be assigned ISO 3166-1 codes and every network must parse.
    pub fn region_rules(&self) -> anyhow::Result<RegionRules> {
        let default = protocol::Region::assigned(&self.default_region).map_err(|_| {
            anyhow::anyhow!(
                "default_region {:?} is not an ISO 3166-1 alpha-2 country code",
                self.default_region
            )
        })?;
        let mut networks = Vec::with_capacity(self.region_networks.len());
        for rule in &self.region_networks {
            let network: ipnet::IpNet = rule.cidr.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "region_networks: {:?} is not a network such as 10.0.0.0/8",
                    rule.cidr
                )
            })?;
            let region = protocol::Region::assigned(&rule.region).map_err(|_| {
                anyhow::anyhow!(
                    "region_networks: {:?} is not an ISO 3166-1 alpha-2 country code",
                    rule.region
                )
            })?;
            networks.push((network.trunc(), region));
        }
        // The most specific network wins.
        networks.sort_by_key(|(network, _)| std::cmp::Reverse(network.prefix_len()));
        Ok(RegionRules { default, networks })
    }
}

/// The checked form of `default_region` and `region_networks`.
#[derive(Debug, Clone)]
pub struct RegionRules {
    default: protocol::Region,
    networks: Vec<(ipnet::IpNet, protocol::Region)>,
}

impl RegionRules {
    /// The region a sign-up from `client` gets: the most specific network containing it,
    /// else the default. An IPv4-mapped IPv6 address is matched as IPv4.
    pub fn region_for(&self, client: Option<std::net::IpAddr>) -> protocol::Region {
        let client = client.map(|ip| match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        });
        client
            .and_then(|ip| {
                self.networks
                    .iter()
                    .find(|(network, _)| network.contains(&ip))
                    .map(|(_, region)| *region)
            })
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_rules_pick_the_most_specific_network() {
        let config = OriginConfig {
            default_region: "SE".into(),
            region_networks: vec![
                RegionNetwork {
                    cidr: "10.0.0.0/8".into(),
                    region: "NO".into(),
                },
                RegionNetwork {
                    cidr: "10.1.0.0/16".into(),
                    region: "US".into(),
                },
                RegionNetwork {
                    cidr: "2001:db8::/32".into(),
                    region: "DE".into(),
                },
            ],
            ..OriginConfig::default()
        };
        let rules = config.region_rules().unwrap();
        let region = |ip: &str| rules.region_for(Some(ip.parse().unwrap())).to_string();
        assert_eq!(region("10.1.2.3"), "US");
        assert_eq!(region("10.2.2.3"), "NO");
        assert_eq!(region("::ffff:10.2.2.3"), "NO");
        assert_eq!(region("192.0.2.1"), "SE");
        assert_eq!(region("2001:db8::1"), "DE");
        assert_eq!(rules.region_for(None).to_string(), "SE");
    }

    #[test]
    fn region_rules_refuse_unassigned_codes_and_bad_networks() {
        let mut config = OriginConfig {
            default_region: "XX".into(),
            ..OriginConfig::default()
        };
        assert!(
            config
                .region_rules()
                .unwrap_err()
                .to_string()
                .contains("XX")
        );
        config.default_region = "SE".into();
        config.region_networks = vec![RegionNetwork {
            cidr: "10.0.0.0/33".into(),
            region: "SE".into(),
        }];
        assert!(config.region_rules().is_err());
        config.region_networks = vec![RegionNetwork {
            cidr: "10.0.0.0/8".into(),
            region: "ZZ".into(),
        }];
        assert!(
            config
                .region_rules()
                .unwrap_err()
                .to_string()
                .contains("ZZ")
        );
    }
}

/// The tracker shards an origin names (see [`OriginConfig::tracker_shards`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerShards(Vec<(protocol::NodeId, String)>);

impl TrackerShards {
    /// Every shard, as configured (`NODE_ID@HOST:PORT`).
    pub fn all(&self) -> Vec<String> {
        self.0.iter().map(|(_, entry)| entry.clone()).collect()
    }

    /// Every shard's node id and `HOST:PORT`.
    pub fn nodes(&self) -> Vec<(protocol::NodeId, String)> {
        self.0
            .iter()
            .map(|(node, entry)| {
                let addr = entry
                    .split_once('@')
                    .map_or(entry.as_str(), |(_, addr)| addr);
                (*node, addr.to_string())
            })
            .collect()
    }

    /// The first shard (what clients from before shards read).
    pub fn first(&self) -> Option<String> {
        self.0.first().map(|(_, entry)| entry.clone())
    }

    /// The shard of `rendition` (rendezvous hashing, `protocol::shards`).
    pub fn shard_of(&self, rendition: &protocol::RenditionId) -> Option<String> {
        protocol::shards::shard_of(rendition, self.0.iter().map(|(node, _)| node))
            .map(|index| self.0[index].1.clone())
    }
}
