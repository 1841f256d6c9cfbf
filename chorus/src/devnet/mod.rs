//! `chorus devnet`: the whole network on this machine, over emulated WAN links.
//!
//! - An origin, a tracker and super-nodes run as real `chorus` processes; listeners are
//!   `client-lib` [`Listener`](client_lib::listener::Listener)s in this process, each with its
//!   own QUIC endpoint, cache and identity.
//! - Every QUIC endpoint has a [`linkem::UdpRelay`] in front of it per region, applying that
//!   region pair's link (delay, jitter with reordering, loss, bandwidth); every dialler sends
//!   through the relay for its own region ([`transport::Routes`], `chorus node --via`). The
//!   origin's HTTP API has a [`linkem::TcpRelay`] per region.
//! - A sample catalog of synthetic music goes through the real ingest pipeline once and is
//!   kept for later runs; caches start empty every run.
//! - Listeners follow a seeded workload ([`workload`]): Zipf popularity, sessions with skips,
//!   leaving and coming back, crashes (`--kill-peers`).
//! - A live view shows the numbers; `--json` prints one summary line at the end. Checks run
//!   on every play: decoded audio as long as the ingested audio, no chunk from a node outside
//!   the track's markets.

mod crowd;
mod procs;
mod web;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use linkem::{LinkConfig, TcpRelay, UdpRelay};
use protocol::{NodeId, Quality, Region};
use serde_json::{Value, json};

use crate::bench::percentile;
use procs::Role;
use testkit::services::free_port;
use workload::WorkloadConfig;

/// Region codes given to regions in order.
const REGIONS: [&str; 8] = ["SE", "US", "BR", "JP", "DE", "IN", "AU", "ZA"];

/// The password of every devnet account (local, throwaway).
const PASSWORD: &str = "devnet password";

/// Flags of `chorus devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Listeners (in this process, each a client-lib listener with its own QUIC endpoint).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub listeners: u32,
    /// Super-node processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub super_nodes: u32,
    /// Tracks in the sample catalog.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub tracks: u32,
    /// Length of each track, seconds.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(5..=600))]
    pub track_seconds: u32,
    /// Regions (SE, US, BR, JP, DE, IN, AU, ZA, in that order). With two or more, every
    /// fourth track is licensed in the first region only.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub regions: u32,
    /// Seed of every random choice (catalog, workload, links).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Round trip between any two processes, milliseconds (per region pair with --link).
    #[arg(long, default_value_t = 40.0)]
    pub rtt_ms: f64,
    /// Jitter per direction, milliseconds (packets may overtake each other).
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// Packet loss per direction, 0..1.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Bandwidth cap per path and direction, megabits per second (default: none).
    #[arg(long)]
    pub mbps: Option<f64>,
    /// A region pair's own link, e.g. `SE-US:rtt=120,jitter=5,loss=0.01,mbps=20`
    /// (repeatable; both directions; SE-SE is within SE).
    #[arg(long = "link")]
    pub links: Vec<String>,
    /// Run this long (e.g. 120s, 5m), then print the summary; default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print one JSON summary on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Listener crashes per listener per minute online (links cut, no goodbye); a crashed
    /// listener comes back a few seconds later with its cache.
    #[arg(long, default_value_t = 0.0)]
    pub kill_peers: f64,
    /// Kill the origin this far into the run (e.g. 60s), with SIGKILL: cached and peer-held
    /// licensed tracks should keep playing. With several origins, the first is killed and
    /// the others carry on behind the edge (the summary counts the plays after it, and those
    /// that failed).
    #[arg(long, value_parser = parse_duration)]
    pub kill_origin_at: Option<Duration>,
    /// Origin processes serving one catalog (two or more need `--cdn nginx` in front and
    /// PostgreSQL with an S3 object store: `--database` and `--blobs`, or ones the devnet
    /// starts).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub origins: u32,
    /// A CDN edge in front of the origins: `nginx` (the repository's `deploy/nginx/cdn.conf`,
    /// with the run's TLS certificate). The API goes through it, load-balanced, and
    /// listeners fetch the origin's chunks through it over HTTPS, cached.
    #[arg(long, value_parser = ["nginx"])]
    pub cdn: Option<String>,
    /// The origins' PostgreSQL database (`postgres://...`); default with `--origins 2` or
    /// more: a private PostgreSQL the devnet starts and stops.
    /// (Not read from CHORUS_DATABASE: a devnet never picks up an operator's database by
    /// accident.)
    #[arg(long)]
    pub database: Option<String>,
    /// The origins' chunk store with `--database`: `s3://BUCKET[/PREFIX]` (endpoint and keys
    /// from the `AWS_*` variables, as the origin takes them); default with `--origins 2` or
    /// more: a private Garage object store the devnet starts and stops.
    #[arg(long)]
    pub blobs: Option<String>,
    /// Tracker shards (renditions split over them by rendezvous hashing).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub trackers: u32,
    /// Kill the first tracker shard this far into the run (e.g. 60s): its renditions fall
    /// back to the DHT and the origin, and no play may fail.
    #[arg(long, value_parser = parse_duration)]
    pub kill_tracker_at: Option<Duration>,
    /// Listeners announce only the renditions they hold whole, as before partial holders: a
    /// what-if to set against the default, where a listener is listed as soon as its
    /// download starts.
    #[arg(long)]
    pub whole_holders_only: bool,
    /// Chance a track is skipped, 0..1.
    #[arg(long, default_value_t = 0.2)]
    pub skip_chance: f64,
    /// Chance a listener leaves after a session (and comes back later), 0..1.
    #[arg(long, default_value_t = 0.3)]
    pub leave_chance: f64,
    /// Zipf exponent of track popularity.
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Quality every listener asks for: low, normal, high, or auto (adaptive bitrate).
    #[arg(long, default_value = "normal")]
    pub quality: String,
    /// Working directory: the origin's data (the catalog is kept between runs), caches, logs.
    #[arg(long, default_value = "chorus-devnet")]
    pub dir: PathBuf,
    /// No live view (status lines every 10 s instead).
    #[arg(long)]
    pub quiet: bool,
    /// Also draw the network live in a browser page served on this address (e.g.
    /// 127.0.0.1:8490): nodes, the last second's transfers, source shares over time.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,
}

/// A devnet duration: what [`sim::config::parse_duration`] reads (`90`, `90s`, `2m`, `1h30m`,
/// `500ms`), positive and at most a week.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = sim::config::parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(7 * 86_400) {
        return Err(format!(
            "{:?}: durations are positive and at most a week",
            text.trim()
        ));
    }
    Ok(duration)
}

/// One region pair's link settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLink {
    /// Round trip, ms.
    pub rtt_ms: f64,
    /// Jitter per direction, ms.
    pub jitter_ms: f64,
    /// Loss per direction.
    pub loss: f64,
    /// Cap per direction, Mbit/s.
    pub mbps: Option<f64>,
}

impl PairLink {
    /// One direction of it.
    pub fn direction(&self) -> LinkConfig {
        LinkConfig {
            jitter_ms: self.jitter_ms,
            loss: self.loss,
            mbps: self.mbps,
            ..LinkConfig::half_rtt(self.rtt_ms)
        }
    }
}

/// Parses `SE-US:rtt=120,jitter=5,loss=0.01,mbps=20` against `base`; returns the two regions
/// and the link.
pub fn parse_link(text: &str, base: PairLink) -> Result<(String, String, PairLink), String> {
    let (pair, settings) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected A-B:rtt=MS,… such as SE-US:rtt=120"))?;
    let (a, b) = pair
        .split_once('-')
        .ok_or_else(|| format!("{pair:?}: expected two regions such as SE-US"))?;
    let mut link = base;
    for setting in settings.split(',').filter(|part| !part.trim().is_empty()) {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("{setting:?}: expected key=value"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{setting:?}: not a number"))?;
        match key.trim() {
            "rtt" => link.rtt_ms = value,
            "jitter" => link.jitter_ms = value,
            "loss" => link.loss = value,
            "mbps" => link.mbps = Some(value),
            other => {
                return Err(format!(
                    "unknown link setting {other:?}: rtt, jitter, loss, mbps"
                ));
            }
        }
    }
    link.direction()
        .validate()
        .map_err(|error| format!("{text:?}: {error}"))?;
    Ok((a.trim().to_uppercase(), b.trim().to_uppercase(), link))
}

/// The links between regions.
#[derive(Debug, Clone)]
pub struct LinkMatrix {
    base: PairLink,
    pairs: HashMap<(usize, usize), PairLink>,
}

impl LinkMatrix {
    /// The link between regions `a` and `b` (either order).
    pub fn get(&self, a: usize, b: usize) -> PairLink {
        let key = (a.min(b), a.max(b));
        self.pairs.get(&key).copied().unwrap_or(self.base)
    }
}

/// The catalog the devnet plays, kept next to the origin's data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Catalog {
    seed: u64,
    track_seconds: u32,
    regions: u32,
    tracks: Vec<CatalogTrack>,
}

impl Catalog {
    /// True when it is the catalog `args` ask for.
    fn matches(&self, args: &DevnetArgs) -> bool {
        self.seed == args.seed
            && self.track_seconds == args.track_seconds
            && self.regions == args.regions
            && self.tracks.len() == args.tracks as usize
            && !self.tracks.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct CatalogTrack {
    id: String,
    title: String,
    /// Regions (codes) it is licensed in; empty: everywhere.
    markets: Vec<String>,
}

/// Markets of track `index` in a devnet of `regions` regions.
fn markets_of(index: usize, regions: usize) -> Vec<String> {
    if regions >= 2 && index % 4 == 3 {
        vec![REGIONS[0].to_string()]
    } else {
        Vec::new()
    }
}

/// Everything set up and validated from the flags.
struct Plan {
    regions: Vec<Region>,
    links: LinkMatrix,
    quality: Option<Quality>,
    workload: WorkloadConfig,
}

fn plan(args: &DevnetArgs) -> anyhow::Result<Plan> {
    let base = PairLink {
        rtt_ms: args.rtt_ms,
        jitter_ms: args.jitter_ms,
        loss: args.loss,
        mbps: args.mbps,
    };
    base.direction()
        .validate()
        .map_err(|error| anyhow::anyhow!("--rtt-ms/--jitter-ms/--loss/--mbps: {error}"))?;
    if args.rtt_ms > 10_000.0 {
        bail!("--rtt-ms must be at most 10000");
    }
    let regions: Vec<Region> = REGIONS[..args.regions as usize]
        .iter()
        .map(|code| code.parse())
        .collect::<Result<_, _>>()?;
    let mut pairs = HashMap::new();
    for text in &args.links {
        let (a, b, link) =
            parse_link(text, base).map_err(|error| anyhow::anyhow!("--link {error}"))?;
        let find = |code: &str| {
            REGIONS[..regions.len()]
                .iter()
                .position(|region| *region == code)
                .with_context(|| {
                    format!(
                        "--link {text}: {code} is not one of this devnet's regions ({})",
                        REGIONS[..regions.len()].join(", ")
                    )
                })
        };
        let (a, b) = (find(&a)?, find(&b)?);
        pairs.insert((a.min(b), a.max(b)), link);
    }
    for (name, value) in [
        ("--skip-chance", args.skip_chance),
        ("--leave-chance", args.leave_chance),
    ] {
        if !(0.0..=1.0).contains(&value) {
            bail!("{name} must be between 0 and 1");
        }
    }
    if !(args.kill_peers.is_finite() && (0.0..=60.0).contains(&args.kill_peers)) {
        bail!("--kill-peers must be between 0 and 60 (crashes per listener per minute)");
    }
    if !(args.zipf.is_finite() && (0.0..=5.0).contains(&args.zipf)) {
        bail!("--zipf must be between 0 and 5");
    }
    if let (Some(kill), Some(duration)) = (args.kill_origin_at, args.duration)
        && kill >= duration
    {
        bail!("--kill-origin-at must come before the end of --duration");
    }
    if args.origins > 1 && args.cdn.is_none() {
        bail!(
            "--origins {} needs an edge in front of them: add --cdn nginx",
            args.origins
        );
    }
    if args.database.is_some() != args.blobs.is_some() {
        bail!(
            "--database and --blobs go together (several origins share both); give both, or neither for ones the devnet starts"
        );
    }
    if let Some(blobs) = &args.blobs
        && !blobs.starts_with("s3://")
    {
        bail!("--blobs {blobs}: several origins share an S3 bucket, s3://BUCKET[/PREFIX]");
    }
    if let (Some(kill), Some(duration)) = (args.kill_tracker_at, args.duration)
        && kill >= duration
    {
        bail!("--kill-tracker-at must come before the end of --duration");
    }
    let quality = match args.quality.as_str() {
        "auto" => None,
        text => Some(
            Quality::ALL
                .into_iter()
                .find(|quality| quality.as_str() == text)
                .with_context(|| format!("--quality {text}: use low, normal, high or auto"))?,
        ),
    };
    Ok(Plan {
        regions,
        links: LinkMatrix { base, pairs },
        quality,
        workload: WorkloadConfig {
            zipf_alpha: args.zipf,
            skip_chance: args.skip_chance,
            leave_chance: args.leave_chance,
            kills_per_minute: args.kill_peers,
            ..WorkloadConfig::default()
        },
    })
}

/// A QUIC endpoint reachable through one relay per region.
struct Fronted {
    relays: Vec<UdpRelay>,
}

/// Puts a relay per region in front of `addr` (an endpoint in region `home`), and routes
/// every region's diallers through theirs.
async fn front(
    addr: SocketAddr,
    home: usize,
    links: &LinkMatrix,
    routes: &[transport::Routes],
    seed: u64,
) -> anyhow::Result<Fronted> {
    let mut relays = Vec::with_capacity(routes.len());
    for (region, table) in routes.iter().enumerate() {
        let link = links.get(region, home).direction();
        let relay = UdpRelay::bind(
            "127.0.0.1:0".parse()?,
            addr,
            link,
            link,
            seed ^ ((region as u64) << 56),
        )
        .await?;
        if !table.insert(addr, relay.addr()) {
            bail!("too many endpoints for the route table");
        }
        relays.push(relay);
    }
    Ok(Fronted { relays })
}

/// An origin's chunk bytes served so far, by transport, from its metrics.
#[derive(Debug, Clone, Copy, Default)]
struct Egress {
    /// Chunk URLs over HTTP(S) (behind an edge: what the edge fetched on misses).
    http: u64,
    /// Over QUIC (listeners without an edge, super-node fills).
    quic: u64,
    /// Opening chunks sent with play grants.
    opening: u64,
}

impl Egress {
    fn all(&self) -> u64 {
        self.http + self.quic + self.opening
    }
}

/// Reads an origin's [`Egress`] from its metrics at `url`.
async fn origin_egress(http: &reqwest::Client, url: &str) -> Option<Egress> {
    let text = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut egress = Egress::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("chorus_chunk_bytes_served_total{transport=\"")
            && let Some((transport, value)) = rest.split_once("\"} ")
        {
            let value = value.trim().parse::<f64>().ok()? as u64;
            match transport {
                "http" => egress.http += value,
                "quic" => egress.quic += value,
                _ => egress.opening += value,
            }
        }
    }
    Some(egress)
}

/// The servers' chunk bytes: every origin's (the last figure each gave: a killed one's
/// stays counted), and with an edge, what the edge sent rather than what it fetched.
fn server_egress(origins: &[Egress], edge: Option<&testkit::services::CdnCounts>) -> u64 {
    match edge {
        Some(edge) => {
            origins
                .iter()
                .map(|egress| egress.quic + egress.opening)
                .sum::<u64>()
                + edge.chunk_bytes
        }
        None => origins.iter().map(Egress::all).sum(),
    }
}

/// Adds the edge's figures and each origin's share of requests to `summary`.
fn add_server_side(
    summary: &mut Value,
    edge: Option<&testkit::services::CdnCounts>,
    origins: &[SocketAddr],
) {
    summary["origins"] = json!(origins.len());
    summary["cdn"] = match edge {
        Some(counts) => json!({
            "hits": counts.hits + counts.stale,
            "misses": counts.misses,
            "stale": counts.stale,
            "refused": counts.refused,
            "abandoned": counts.abandoned,
            "hit_ratio": (counts.hit_ratio() * 10_000.0).round() / 10_000.0,
            "chunk_bytes": counts.chunk_bytes,
        }),
        None => Value::Null,
    };
    if let Some(counts) = edge {
        let total: u64 = origins
            .iter()
            .filter_map(|addr| counts.by_origin.get(&addr.to_string()))
            .sum();
        summary["origin_requests"] = origins
            .iter()
            .map(|addr| {
                let requests = counts
                    .by_origin
                    .get(&addr.to_string())
                    .copied()
                    .unwrap_or(0);
                let share = if total == 0 {
                    0.0
                } else {
                    (requests as f64 / total as f64 * 1000.0).round() / 1000.0
                };
                json!({"origin": addr.to_string(), "requests": requests, "share": share})
            })
            .collect();
    }
}

async fn post_json(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: impl serde::Serialize,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    // Sign-ups and log-ins share a bounded pool of password hashings: a crowd logging in at
    // once is told `503 busy` and retries after the second it is told to wait, as any
    // client should (at most 30 times).
    let mut attempts = 0;
    loop {
        let mut request = http.post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let wait_s = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 5);
        let body = response.json().await.unwrap_or(Value::Null);
        attempts += 1;
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && body["error"]["code"] == "busy"
            && attempts < 30
        {
            tokio::time::sleep(Duration::from_secs(wait_s)).await;
            continue;
        }
        return Ok((status, body));
    }
}

/// The admin account the devnet operates the origin with (made on the stopped origin's data).
const OPERATOR: &str = "devnet_operator";

/// Logs in `username`; returns the access token.
async fn log_in(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let (status, body) = post_json(
        http,
        format!("{base}/v1/sessions"),
        None,
        api::accounts::Login {
            username: username.to_string(),
            password: PASSWORD.to_string(),
        },
    )
    .await?;
    if !status.is_success() {
        bail!("logging in {username}: {status} {body}");
    }
    let tokens: api::accounts::Tokens =
        serde_json::from_value(body).context("the log-in answer")?;
    Ok(tokens.access_token)
}

/// Creates (or reuses) an account as a stranger would (sign-up), has the operator give it its
/// role, the premium tier and its region, and logs in; returns the access token.
async fn account(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    username: &str,
    region: &str,
    role: api::Role,
) -> anyhow::Result<String> {
    let (status, body) = post_json(
        http,
        format!("{base}/v1/accounts"),
        None,
        api::accounts::NewAccount {
            username: username.to_string(),
            password: PASSWORD.to_string(),
            region: None,
            role: None,
            tier: None,
        },
    )
    .await?;
    if !status.is_success() && status != reqwest::StatusCode::CONFLICT {
        bail!("creating account {username}: {status} {body}");
    }
    let response = http
        .patch(format!("{base}/v1/admin/accounts/{username}"))
        .bearer_auth(operator)
        .json(&api::admin::AccountChange {
            role: Some(role),
            tier: Some(api::Tier::Premium),
            region: Some(region.to_string()),
        })
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("setting up account {username}: {status} {body}");
    }
    log_in(http, base, username).await
}

/// Ingests the sample catalog (or finds it from an earlier run).
async fn catalog(
    args: &DevnetArgs,
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    path: &Path,
) -> anyhow::Result<Catalog> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(found) = serde_json::from_str::<Catalog>(&text)
        && found.matches(args)
    {
        // Still there? (A database given with --database may have been emptied since.)
        let first = &found.tracks[0].id;
        let held = http
            .get(format!("{base}/v1/tracks/{first}"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if held {
            return Ok(found);
        }
    }
    let artist = account(
        http,
        base,
        operator,
        "devnet_artist",
        REGIONS[0],
        api::Role::Artist,
    )
    .await?;
    let bar = indicatif::ProgressBar::new(u64::from(args.tracks));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "ingesting the sample catalog {bar:30} {pos}/{len} tracks ({elapsed}, ~{eta} left)",
        )
        .expect("a valid progress template"),
    );
    let mut tracks = Vec::new();
    for index in 0..args.tracks as usize {
        let seed = args.seed.wrapping_mul(1000).wrapping_add(index as u64);
        let wav = origin::synth::wav(seed, f64::from(args.track_seconds), 44_100, 2);
        let title = format!("Devnet Song {}", index + 1);
        let markets = markets_of(index, args.regions as usize);
        let metadata = api::catalog::TrackMetadata {
            title: Some(title.clone()),
            artist: Some(format!("Devnet Artist {}", index % 5 + 1)),
            album: Some(format!("Devnet Album {}", index % 3 + 1)),
            track_number: Some(index as u32 / 3 + 1),
            markets: (!markets.is_empty()).then(|| markets.clone()),
            ..Default::default()
        };
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(wav).file_name(format!("song{index}.wav")),
            )
            .text("metadata", serde_json::to_string(&metadata)?);
        let response = http
            .post(format!("{base}/v1/tracks"))
            .bearer_auth(&artist)
            .multipart(form)
            .timeout(Duration::from_secs(600))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("ingesting track {}: {status} {body}", index + 1);
        }
        let track: api::catalog::TrackView =
            response.json().await.context("the upload's answer")?;
        tracks.push(CatalogTrack {
            id: track.id,
            title,
            markets,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let found = Catalog {
        seed: args.seed,
        track_seconds: args.track_seconds,
        regions: args.regions,
        tracks,
    };
    std::fs::write(path, serde_json::to_vec_pretty(&found)?)?;
    Ok(found)
}

/// Runs `chorus devnet`.
pub fn run(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let plan = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args, plan))
}

async fn run_async(args: DevnetArgs, plan: Plan) -> anyhow::Result<ExitCode> {
    // Ctrl-C or SIGTERM at any point ends the run cleanly: every process is stopped.
    let interrupt = tokio_util::sync::CancellationToken::new();
    {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            if crate::origin_cmd::wait_for_shutdown_signal().await.is_ok() {
                interrupt.cancel();
            }
        });
    }
    let regions = plan.regions.len();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let run_dir = dir.join("run");
    // Caches and logs start empty every run; the origin's catalog is kept.
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    let logs = run_dir.join("logs");
    std::fs::create_dir_all(&logs)?;

    // Where the catalog lives: the first origin's embedded store (kept between runs), the
    // PostgreSQL and S3 given (kept), or a private pair started for this run (not kept).
    let shared = SharedStore::for_run(&args).await?;
    let (origin_dirs, catalog_path): (Vec<PathBuf>, PathBuf) = match &shared {
        None => (vec![dir.join("origin")], dir.join("catalog.json")),
        Some(store) if store.private() => (
            (0..args.origins)
                .map(|index| run_dir.join(format!("origin-{index}")))
                .collect(),
            run_dir.join("catalog.json"),
        ),
        Some(_) => (
            (0..args.origins)
                .map(|index| dir.join("origins").join(index.to_string()))
                .collect(),
            dir.join("catalog-shared.json"),
        ),
    };
    let origin_data = origin_dirs[0].clone();
    if shared.is_none() {
        let catalog_matches = std::fs::read_to_string(&catalog_path)
            .ok()
            .and_then(|text| serde_json::from_str::<Catalog>(&text).ok())
            .is_some_and(|found| found.matches(&args));
        if !catalog_matches && origin_data.exists() {
            std::fs::remove_dir_all(&origin_data)?;
            let _ = std::fs::remove_file(&catalog_path);
        }
    }
    std::fs::create_dir_all(&origin_data)?;

    // The operator's admin account and the super-node accounts are made on the stopped
    // origin's data (or the shared database), as `chorus admin` does.
    let origin_id = origin::server::origin_identity(&origin_data)?.node_id();
    {
        let store = match &shared {
            None => crate::origin_cmd::open_store(&origin_data).await?,
            Some(shared) => {
                crate::origin_cmd::open_store_with(&origin_data, &shared.database).await?
            }
        };
        if store
            .accounts()
            .account_by_username(OPERATOR)
            .await?
            .is_none()
        {
            let account = origin::accounts::new_account(
                OPERATOR,
                PASSWORD,
                REGIONS[0],
                origin::store::Role::Admin,
                origin::store::Tier::Premium,
            )
            .map_err(|_| anyhow::anyhow!("could not hash a password"))?;
            store.accounts().create_account(&account).await?;
        }
        for index in 0..args.super_nodes as usize {
            let username = format!("devnet_sn{index}");
            if store
                .accounts()
                .account_by_username(&username)
                .await?
                .is_none()
            {
                let account = origin::accounts::new_account(
                    &username,
                    PASSWORD,
                    REGIONS[index % regions],
                    origin::store::Role::SuperNode,
                    origin::store::Tier::Premium,
                )
                .map_err(|_| anyhow::anyhow!("could not hash a password"))?;
                store.accounts().create_account(&account).await?;
            }
        }
    }

    // Ports first: every relay and route can then be set up before anything dials.
    let origin_https: Vec<SocketAddr> = (0..args.origins)
        .map(|_| Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))))
        .collect::<anyhow::Result<_>>()?;
    let origin_quics: Vec<SocketAddr> = (0..args.origins)
        .map(|_| Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))))
        .collect::<anyhow::Result<_>>()?;
    let tracker_addrs: Vec<SocketAddr> = (0..args.trackers)
        .map(|_| Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))))
        .collect::<anyhow::Result<_>>()?;
    let super_addrs: Vec<SocketAddr> = (0..args.super_nodes)
        .map(|_| Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))))
        .collect::<anyhow::Result<_>>()?;
    let edge_port = free_port()?;
    // TLS on, as in production: a private CA made for this run, trusted by this process and
    // (through CHORUS_CA_CERT) by every role it starts. With an edge, it holds the
    // certificate and speaks plain HTTP to the origins behind it.
    let tls_dir = run_dir.join("tls");
    transport::https::TestAuthority::generate(&["127.0.0.1".into(), "localhost".into()])?
        .write(&tls_dir)
        .with_context(|| {
            format!(
                "writing the devnet's certificates into {}",
                tls_dir.display()
            )
        })?;
    transport::https::trust_also(&tls_dir.join(transport::https::CA_FILE));
    let (cert, key) = (
        tls_dir.join(transport::https::CERT_FILE),
        tls_dir.join(transport::https::KEY_FILE),
    );
    // What listeners reach over HTTPS: the edge, or the one origin.
    let front_door: SocketAddr = if args.cdn.is_some() {
        ([127, 0, 0, 1], edge_port).into()
    } else {
        origin_https[0]
    };
    let base = format!("https://{front_door}");

    let routes: Vec<transport::Routes> = (0..regions).map(|_| transport::Routes::new()).collect();
    // The origins and the trackers sit in the first region; super-nodes are spread over all.
    let mut origin_fronts = Vec::new();
    for (index, addr) in origin_quics.iter().enumerate() {
        origin_fronts.push(
            front(
                *addr,
                0,
                &plan.links,
                &routes,
                args.seed ^ 1 ^ ((index as u64) << 44),
            )
            .await?,
        );
    }
    let mut tracker_fronts = Vec::new();
    for (index, addr) in tracker_addrs.iter().enumerate() {
        tracker_fronts.push(
            front(
                *addr,
                0,
                &plan.links,
                &routes,
                args.seed ^ 2 ^ ((index as u64) << 40),
            )
            .await?,
        );
    }
    let mut super_fronts = Vec::new();
    for (index, addr) in super_addrs.iter().enumerate() {
        super_fronts.push(
            front(
                *addr,
                index % regions,
                &plan.links,
                &routes,
                args.seed ^ (3 + index as u64),
            )
            .await?,
        );
    }
    let mut http_relays = Vec::new();
    for region in 0..regions {
        let link = plan.links.get(region, 0).direction();
        let link = LinkConfig { loss: 0.0, ..link };
        http_relays.push(
            TcpRelay::bind(
                "127.0.0.1:0".parse()?,
                front_door,
                link,
                link,
                args.seed ^ 0x4854_5450 ^ region as u64,
            )
            .await?,
        );
    }
    let region_base: Vec<String> = http_relays
        .iter()
        .map(|relay| format!("{origin_id}@https://{}", relay.addr()))
        .collect();
    // With an edge, each region's listeners fetch chunk URLs through their own relay to it.
    let region_edge: Option<Vec<String>> = args.cdn.is_some().then(|| {
        http_relays
            .iter()
            .map(|relay| format!("https://{}", relay.addr()))
            .collect()
    });

    let started_at = Instant::now();
    eprintln!(
        "devnet: {} listeners, {} super-nodes, {} regions ({}), {} ms RTT; {}{}; working in {}",
        args.listeners,
        args.super_nodes,
        regions,
        REGIONS[..regions].join(", "),
        args.rtt_ms,
        if args.origins > 1 {
            format!("{} origins", args.origins)
        } else {
            "one origin".to_string()
        },
        if args.cdn.is_some() {
            " behind an nginx edge"
        } else {
            ""
        },
        dir.display()
    );
    let timeout = Duration::from_secs(60);
    let started = start_roles(
        &args,
        &RoleAddrs {
            run_dir: &run_dir,
            logs: &logs,
            origin_dirs: &origin_dirs,
            origin_https: &origin_https,
            origin_quics: &origin_quics,
            tracker_addrs: &tracker_addrs,
            tls: (&cert, &key),
            public_url: args.cdn.is_some().then(|| base.clone()),
            shared: shared.as_ref(),
            origin_id,
        },
        timeout,
    );
    let trackers = match started {
        Ok(trackers) => trackers,
        Err(error) => {
            if let Some(mut roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).take() {
                roles.stop_all();
            }
            return Err(error);
        }
    };
    let edge = args
        .cdn
        .as_ref()
        .map(|_| {
            tokio::task::block_in_place(|| {
                testkit::services::Cdn::start_with(
                    edge_port,
                    &origin_https,
                    Some(testkit::services::EdgeTls {
                        cert: &cert,
                        key: &key,
                    }),
                )
            })
            .context("starting the nginx edge (scripts/setup installs nginx)")
        })
        .transpose();
    let edge = match edge {
        Ok(edge) => edge,
        Err(error) => {
            if let Some(mut roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).take() {
                roles.stop_all();
            }
            return Err(error);
        }
    };
    let result = devnet_body(
        &args,
        &plan,
        Setup {
            interrupt,
            dir: dir.clone(),
            run_dir: run_dir.clone(),
            logs,
            base: base.clone(),
            region_base,
            region_edge,
            routes,
            origin_quics,
            origin_https: origin_https.clone(),
            edge,
            trackers,
            super_addrs,
            catalog_path,
            started_at,
            origin_id,
        },
    )
    .await;
    // Stop every process, whatever happened.
    if let Some(mut roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).take() {
        tokio::task::block_in_place(|| roles.stop_all());
    }
    drop((origin_fronts, tracker_fronts, super_fronts, http_relays));
    tokio::task::block_in_place(|| drop(shared));
    result
}

/// PostgreSQL and S3 for several origins: given, or started for this run.
struct SharedStore {
    database: String,
    blobs: String,
    /// The variables the origins need for the blobs (the private Garage's keys).
    env: Vec<(&'static str, String)>,
    services: Option<(testkit::services::Postgres, testkit::services::Garage)>,
}

impl SharedStore {
    /// The store of this run: none for one origin on its embedded store.
    async fn for_run(args: &DevnetArgs) -> anyhow::Result<Option<Self>> {
        if let (Some(database), Some(blobs)) = (&args.database, &args.blobs) {
            return Ok(Some(Self {
                database: database.clone(),
                blobs: blobs.clone(),
                env: Vec::new(),
                services: None,
            }));
        }
        if args.origins < 2 {
            return Ok(None);
        }
        eprintln!("devnet: starting a private PostgreSQL and Garage object store for the origins");
        tokio::task::block_in_place(|| {
            let postgres = testkit::services::Postgres::start()
                .context("starting PostgreSQL (scripts/setup installs it)")?;
            let database = postgres.create_database("chorus_devnet")?;
            let garage = testkit::services::Garage::start()
                .context("starting the Garage object store (scripts/setup installs it)")?;
            garage.create_bucket("chorus-devnet")?;
            Ok(Some(Self {
                database,
                blobs: "s3://chorus-devnet".into(),
                env: garage.env(),
                services: Some((postgres, garage)),
            }))
        })
    }

    /// True when the devnet started it (nothing in it outlives the run).
    fn private(&self) -> bool {
        self.services.is_some()
    }
}

/// Where the server roles go.
struct RoleAddrs<'a> {
    run_dir: &'a Path,
    logs: &'a Path,
    origin_dirs: &'a [PathBuf],
    origin_https: &'a [SocketAddr],
    origin_quics: &'a [SocketAddr],
    tracker_addrs: &'a [SocketAddr],
    tls: (&'a Path, &'a Path),
    /// The edge's URL, when there is one (the origins' `--public-url`).
    public_url: Option<String>,
    shared: Option<&'a SharedStore>,
    origin_id: NodeId,
}

/// Changes the running roles.
fn with_roles(update: impl FnOnce(&mut RoleSet)) {
    let mut roles = ROLES.lock().unwrap_or_else(|p| p.into_inner());
    update(roles.get_or_insert_with(RoleSet::default));
}

/// Starts the trackers and the origins (into [`ROLES`]); returns the trackers' ids and
/// addresses.
fn start_roles(
    args: &DevnetArgs,
    at: &RoleAddrs<'_>,
    timeout: Duration,
) -> anyhow::Result<Vec<(NodeId, SocketAddr)>> {
    let mut ids = Vec::new();
    for (index, tracker_addr) in at.tracker_addrs.iter().enumerate() {
        let several = args.trackers > 1;
        let name = if several {
            format!("tracker {index}")
        } else {
            "tracker".to_string()
        };
        let log = if several {
            format!("tracker-{index}.log")
        } else {
            "tracker.log".to_string()
        };
        let data = if index == 0 {
            at.run_dir.join("tracker")
        } else {
            at.run_dir.join(format!("tracker-{index}"))
        };
        let tracker = tokio::task::block_in_place(|| {
            Role::spawn(
                &name,
                &[
                    "tracker".into(),
                    "--listen".into(),
                    tracker_addr.to_string(),
                    "--data".into(),
                    data.display().to_string(),
                    "--issuer".into(),
                    at.origin_id.to_string(),
                    // Every devnet node sits behind link-emulator relays on loopback.
                    "--relay-network".into(),
                    "127.0.0.0/8".into(),
                    "--status-every-s".into(),
                    "0".into(),
                ],
                &[],
                &at.logs.join(log),
                timeout,
            )
        })?;
        let id = tracker.field("node id");
        with_roles(|roles| roles.trackers.push(tracker));
        let id: NodeId = id?.parse()?;
        ids.push((id, *tracker_addr));
    }
    // Every listener reaches the origins from one loopback address, like a city behind one
    // carrier NAT: the per-address limits are raised to the crowd's size. Behind the edge,
    // the origins take the listener's address from X-Forwarded-For.
    let origin_config = at.run_dir.join("origin.toml");
    let per_address = (args.listeners as u64 * 20).clamp(1_000, u64::from(u32::MAX));
    let proxies = if at.public_url.is_some() {
        "trusted_proxies = [\"127.0.0.1\"]\n"
    } else {
        ""
    };
    std::fs::write(
        &origin_config,
        format!(
            "{proxies}[rate_limits]\nunauthenticated = {{ per_minute = {per_address}, burst = {per_address} }}\nip = {{ per_minute = {per_address}, burst = {per_address} }}\n"
        ),
    )?;
    let env: Vec<(&str, &str)> = at
        .shared
        .map(|shared| {
            shared
                .env
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect()
        })
        .unwrap_or_default();
    for (index, data) in at.origin_dirs.iter().enumerate() {
        // Every origin of the service holds the first one's keys (made when it started).
        if index > 0 {
            origin::server::copy_service_keys(&at.origin_dirs[0], data)?;
        }
        let mut origin_args: Vec<String> = vec![
            "origin".into(),
            "--config".into(),
            origin_config.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--http".into(),
            at.origin_https[index].to_string(),
            "--quic".into(),
            at.origin_quics[index].to_string(),
        ];
        match &at.public_url {
            Some(url) => origin_args.extend(["--public-url".into(), url.clone()]),
            None => origin_args.extend([
                "--tls-cert".into(),
                at.tls.0.display().to_string(),
                "--tls-key".into(),
                at.tls.1.display().to_string(),
            ]),
        }
        if let Some(shared) = at.shared {
            origin_args.extend([
                "--database".into(),
                shared.database.clone(),
                "--blobs".into(),
                shared.blobs.clone(),
            ]);
        }
        for (id, addr) in &ids {
            origin_args.push("--tracker".into());
            origin_args.push(format!("{id}@{addr}"));
        }
        let (name, log) = if args.origins > 1 {
            (format!("origin {index}"), format!("origin-{index}.log"))
        } else {
            ("origin".to_string(), "origin.log".to_string())
        };
        let origin = tokio::task::block_in_place(|| {
            Role::spawn(&name, &origin_args, &env, &at.logs.join(log), timeout)
        })?;
        with_roles(|roles| roles.origins.push(origin));
    }
    Ok(ids)
}

/// The roles running now (stopped by whoever ends the run).
#[derive(Default)]
struct RoleSet {
    origins: Vec<Role>,
    trackers: Vec<Role>,
    super_nodes: Vec<Role>,
}

impl RoleSet {
    fn stop_all(&mut self) {
        for role in self
            .super_nodes
            .iter_mut()
            .chain(self.origins.iter_mut())
            .chain(self.trackers.iter_mut())
        {
            role.stop(Duration::from_secs(5));
        }
    }

    /// Roles that exited without being asked to: (name, status, log tail).
    fn crashed(&mut self) -> Vec<(String, String, String)> {
        let mut found = Vec::new();
        for role in self
            .super_nodes
            .iter_mut()
            .chain(self.origins.iter_mut())
            .chain(self.trackers.iter_mut())
        {
            if !role.stopped
                && let Some(status) = role.exited()
            {
                role.stopped = true;
                found.push((role.name.clone(), status.to_string(), role.log_tail(8)));
            }
        }
        found
    }
}

static ROLES: Mutex<Option<RoleSet>> = Mutex::new(None);

struct Setup {
    interrupt: tokio_util::sync::CancellationToken,
    dir: PathBuf,
    run_dir: PathBuf,
    logs: PathBuf,
    base: String,
    region_base: Vec<String>,
    routes: Vec<transport::Routes>,
    /// Per region: where its listeners fetch chunk URLs (their relay to the edge).
    region_edge: Option<Vec<String>>,
    origin_quics: Vec<SocketAddr>,
    /// Each origin's HTTP address (its metrics are read there).
    origin_https: Vec<SocketAddr>,
    edge: Option<testkit::services::Cdn>,
    trackers: Vec<(NodeId, SocketAddr)>,
    super_addrs: Vec<SocketAddr>,
    catalog_path: PathBuf,
    started_at: Instant,
    /// The origins' node id (they share the key).
    origin_id: NodeId,
}

async fn devnet_body(args: &DevnetArgs, plan: &Plan, setup: Setup) -> anyhow::Result<ExitCode> {
    let regions = plan.regions.len();
    let http = api::client::http_client_builder()?
        .pool_max_idle_per_host(64)
        .build()?;
    let setup_interrupted =
        || anyhow::anyhow!("interrupted while setting up; every process was stopped");
    let operator = log_in(&http, &setup.base, OPERATOR).await?;
    let catalog = tokio::select! {
        catalog = catalog(args, &http, &setup.base, &operator, &setup.catalog_path) => catalog?,
        () = setup.interrupt.cancelled() => return Err(setup_interrupted()),
    };

    // Super-nodes, each dialling through its region's relays.
    let mut super_ids = Vec::new();
    for (index, addr) in setup.super_addrs.iter().enumerate() {
        let region = index % regions;
        let table = &setup.routes[region];
        let mut command: Vec<String> = vec![
            "node".into(),
            "--origin".into(),
            setup.region_base[region].clone(),
            "--user".into(),
            format!("devnet_sn{index}"),
            "--cache-dir".into(),
            setup
                .run_dir
                .join(format!("super-node-{index}"))
                .display()
                .to_string(),
            "--cache-bytes".into(),
            "2G".into(),
            "--listen".into(),
            addr.to_string(),
            "--no-p2p".into(),
            "--refresh-s".into(),
            "10".into(),
        ];
        for (id, addr) in &setup.trackers {
            command.push("--tracker".into());
            command.push(format!("{id}@{addr}"));
        }
        let mut targets = setup.origin_quics.clone();
        targets.extend(setup.trackers.iter().map(|(_, addr)| *addr));
        targets.extend(setup.super_addrs.iter().filter(|other| *other != addr));
        for target in targets {
            command.push("--via".into());
            command.push(format!("{target}={}", table.resolve(target)));
        }
        let role = tokio::task::block_in_place(|| {
            Role::spawn(
                &format!("super-node {index}"),
                &command,
                &[("CHORUS_PASSWORD", PASSWORD)],
                &setup.logs.join(format!("super-node-{index}.log")),
                Duration::from_secs(60),
            )
        })?;
        super_ids.push((role.field("node id")?.parse::<NodeId>()?, region));
        if let Some(roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            roles.super_nodes.push(role);
        }
    }

    if let Some(roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let pids: Vec<String> = roles
            .origins
            .iter()
            .chain(roles.trackers.iter())
            .chain(roles.super_nodes.iter())
            .map(|role| format!("{} {}", role.name, role.pid()))
            .collect();
        eprintln!("devnet: processes (pid): {}", pids.join(", "));
    }

    // Listener accounts (kept between runs), logged in concurrently.
    eprintln!("devnet: logging in {} listeners", args.listeners);
    let mut logins = tokio::task::JoinSet::new();
    for index in 0..args.listeners as usize {
        let (http, base, operator) = (http.clone(), setup.base.clone(), operator.clone());
        let region = REGIONS[index % regions];
        logins.spawn(async move {
            let token = account(
                &http,
                &base,
                &operator,
                &format!("devnet_l{index}"),
                region,
                api::Role::Listener,
            )
            .await;
            (index, token)
        });
    }
    let mut tokens = vec![String::new(); args.listeners as usize];
    loop {
        let joined = tokio::select! {
            joined = logins.join_next() => joined,
            () = setup.interrupt.cancelled() => return Err(setup_interrupted()),
        };
        let Some(joined) = joined else { break };
        let (index, token) = joined?;
        tokens[index] = token?;
    }
    if setup.interrupt.is_cancelled() {
        return Err(setup_interrupted());
    }

    // Who is where, for the region checks.
    let mut node_regions: HashMap<NodeId, usize> = super_ids.iter().copied().collect();
    let identities: Vec<protocol::Identity> = (0..args.listeners as u64)
        .map(|index| {
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&args.seed.to_le_bytes());
            secret[8..16].copy_from_slice(&index.to_le_bytes());
            secret[16..20].copy_from_slice(b"lstn");
            protocol::Identity::from_secret_bytes(&secret)
        })
        .collect();
    for (index, identity) in identities.iter().enumerate() {
        node_regions.insert(identity.node_id(), index % regions);
    }

    let deadline = args.duration.map(|duration| Instant::now() + duration);
    let crowd_config = crowd::CrowdConfig {
        seed: args.seed,
        regions: plan.regions.clone(),
        links: plan.links.clone(),
        routes: setup.routes.clone(),
        region_base: setup.region_base.clone(),
        region_edge: setup.region_edge.clone(),
        tracks: catalog
            .tracks
            .iter()
            .map(|track| crowd::Track {
                id: track.id.clone(),
                markets: track.markets.clone(),
                duration_ms: u64::from(args.track_seconds) * 1000,
            })
            .collect(),
        quality: plan.quality,
        workload: plan.workload.clone(),
        arrival_window_s: args
            .duration
            .map_or(30, |duration| (duration.as_secs() / 4).clamp(1, 30)),
        cache_root: setup.run_dir.clone(),
        node_regions: node_regions.clone(),
        partial_holders: !args.whole_holders_only,
    };
    // The origin process is new: its counters started at zero, so they hold every byte it
    // served in this run, super-node fills included.
    // The page, if asked for: every node, by region.
    let web_view = match args.web {
        Some(addr) => {
            let view = std::sync::Arc::new(web::WebView::default());
            let mut nodes = vec![web::Node {
                id: web::short(&setup.origin_id),
                kind: "origin",
                region: String::new(),
            }];
            for (node, region) in &super_ids {
                nodes.push(web::Node {
                    id: web::short(node),
                    kind: "super_node",
                    region: plan.regions[*region].to_string(),
                });
            }
            for (index, identity) in identities.iter().enumerate() {
                nodes.push(web::Node {
                    id: web::short(&identity.node_id()),
                    kind: "listener",
                    region: plan.regions[index % regions].to_string(),
                });
            }
            view.nodes(nodes);
            let bound = web::serve(addr, view.clone())
                .await
                .with_context(|| format!("serving the devnet page on {addr}"))?;
            eprintln!("devnet: watch it live at http://{bound}/");
            Some(view)
        }
        None => None,
    };
    let crowd = crowd::Crowd::start(crowd_config, identities, tokens, deadline);
    let live_counters = crowd.live_shared();
    let workload_started = Instant::now();

    // Watch: live view, crashes, the origin kill, the end.
    let interactive = !args.quiet && std::io::stderr().is_terminal();
    let mut view = View::default();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut egress_last;
    let mut origin_egress_last = vec![Egress::default(); setup.origin_https.len()];
    let mut crashed: Vec<(String, String)> = Vec::new();
    let mut origin_killed_at: Option<f64> = None;
    let mut origin_killed: Option<Instant> = None;
    let mut tracker_killed_at: Option<f64> = None;
    let mut tracker_killed: Option<Instant> = None;
    let mut interrupted = false;
    loop {
        let done = tokio::select! {
            () = setup.interrupt.cancelled() => { interrupted = true; true }
            _ = ticks.tick() => false,
            () = crowd.finished() => true,
        };
        for (index, addr) in setup.origin_https.iter().enumerate() {
            let scheme = if setup.edge.is_some() {
                "http"
            } else {
                "https"
            };
            if let Some(egress) = origin_egress(&http, &format!("{scheme}://{addr}/metrics")).await
            {
                origin_egress_last[index] = egress;
            }
        }
        let edge_counts = setup.edge.as_ref().map(testkit::services::Cdn::counts);
        egress_last = server_egress(&origin_egress_last, edge_counts.as_ref());
        if let (Some(at), None) = (args.kill_origin_at, origin_killed_at)
            && workload_started.elapsed() >= at
        {
            if let Some(roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
                && let Some(origin) = roles.origins.first_mut()
            {
                origin.kill();
            }
            origin_killed_at = Some(workload_started.elapsed().as_secs_f64());
            origin_killed = Some(Instant::now());
            if args.origins > 1 {
                view.note(format!(
                    "origin 0 of {} was killed (SIGKILL) at {:.0} s, as asked",
                    args.origins,
                    workload_started.elapsed().as_secs_f64()
                ));
            } else {
                crowd.origin_killed();
                view.note(format!(
                    "the origin was killed at {:.0} s, as asked",
                    workload_started.elapsed().as_secs_f64()
                ));
            }
        }
        if let (Some(at), None) = (args.kill_tracker_at, tracker_killed_at)
            && workload_started.elapsed() >= at
        {
            if let Some(roles) = ROLES.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
                && let Some(tracker) = roles.trackers.first_mut()
            {
                tracker.kill();
            }
            tracker_killed_at = Some(workload_started.elapsed().as_secs_f64());
            tracker_killed = Some(Instant::now());
            view.note(format!(
                "tracker shard 0 of {} was killed at {:.0} s, as asked",
                args.trackers,
                workload_started.elapsed().as_secs_f64()
            ));
        }
        let newly = ROLES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(RoleSet::crashed)
            .unwrap_or_default();
        for (name, status, tail) in newly {
            view.note(format!("CRASHED: the {name} exited ({status})"));
            eprintln!("the {name} exited unexpectedly ({status}):\n{tail}");
            crashed.push((name, status));
        }
        let snapshot = crowd.snapshot();
        let mut summary = summarize(
            &snapshot,
            prefetch_unused(&live_counters),
            egress_last,
            args,
            origin_killed,
            tracker_killed,
        );
        add_server_side(&mut summary, edge_counts.as_ref(), &setup.origin_https);
        let live = crowd.live();
        let mut starts = live
            .first_audio_ms
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default();
        starts.sort_by(f64::total_cmp);
        let live = LiveLine {
            started: live.started.load(std::sync::atomic::Ordering::Relaxed),
            playing: live.playing.load(std::sync::atomic::Ordering::Relaxed),
            p50: (!starts.is_empty()).then(|| percentile(&starts, 50.0)),
            p99: (!starts.is_empty()).then(|| percentile(&starts, 99.0)),
            egress: egress_last,
            peer_share: {
                use std::sync::atomic::Ordering::Relaxed;
                let received = &live.received;
                let (origin, shared) = (
                    received.origin.load(Relaxed),
                    received.super_nodes.load(Relaxed) + received.peers.load(Relaxed),
                );
                (origin + shared > 0).then(|| shared as f64 / (origin + shared) as f64)
            },
        };
        if let Some(web_view) = &web_view {
            use std::sync::atomic::Ordering::Relaxed;
            let received = &crowd.live().received;
            web_view.update(
                workload_started.elapsed().as_secs_f64(),
                received.edges(),
                (
                    received.origin.load(Relaxed),
                    received.super_nodes.load(Relaxed),
                    received.peers.load(Relaxed),
                ),
                json!({
                    "started": live.started,
                    "playing": live.playing,
                    "p50_ms": live.p50,
                    "p99_ms": live.p99,
                    "egress": live.egress,
                    "peer_share": live.peer_share,
                }),
            );
        }
        view.show(
            interactive,
            &summary,
            &live,
            workload_started.elapsed(),
            args.duration,
            crowd.online(),
            args.listeners,
            args.super_nodes as usize,
        );
        if done {
            break;
        }
    }
    if crowd.full() {
        eprintln!(
            "devnet: {} plays recorded, the most one run keeps: the run ends here",
            crowd::RECORDS_MAX
        );
    }
    let snapshot = crowd.stop().await;
    view.clear(interactive);
    let edge_counts = setup.edge.as_ref().map(testkit::services::Cdn::counts);
    if let Some(counts) = &edge_counts {
        // The edge's last chunks, sent after the last tick.
        egress_last = server_egress(&origin_egress_last, Some(counts));
    }
    let mut summary = summarize(
        &snapshot,
        prefetch_unused(&live_counters),
        egress_last,
        args,
        origin_killed,
        tracker_killed,
    );
    add_server_side(&mut summary, edge_counts.as_ref(), &setup.origin_https);
    summary["wall_seconds"] = json!(setup.started_at.elapsed().as_secs_f64());
    summary["crashed"] = json!(
        crashed
            .iter()
            .map(|(name, status)| json!({"role": name, "status": status}))
            .collect::<Vec<_>>()
    );
    summary["origin_killed_at_s"] = json!(origin_killed_at);
    summary["tracker_killed_at_s"] = json!(tracker_killed_at);
    summary["interrupted"] = json!(interrupted);
    print_report(&summary);
    if args.json {
        println!("{summary}");
    }
    let _ = &setup.dir;
    let checks_failed = summary["checks"]["region_violations"].as_u64().unwrap_or(0) > 0
        || summary["checks"]["duration_mismatches"]
            .as_u64()
            .unwrap_or(0)
            > 0;
    Ok(if !crashed.is_empty() || checks_failed {
        ExitCode::FAILURE
    } else if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// The summary object from the plays so far.
fn summarize(
    plays: &[crowd::PlayRecord],
    prefetch_unused: u64,
    origin_egress: u64,
    args: &DevnetArgs,
    origin_killed: Option<Instant>,
    tracker_killed: Option<Instant>,
) -> Value {
    let after_kill = |play: &crowd::PlayRecord| origin_killed.is_some_and(|at| play.started > at);
    let after_tracker_loss =
        |play: &crowd::PlayRecord| tracker_killed.is_some_and(|at| play.started > at);
    // Not plays: ones a crash cut short, and ones asked for with the origin gone and no
    // license at hand (nothing can authorize them; the listener is told so at once).
    let counted: Vec<&crowd::PlayRecord> = plays
        .iter()
        .filter(|play| !play.killed && !play.unlicensed)
        .collect();
    let failed: Vec<&&crowd::PlayRecord> = counted
        .iter()
        .filter(|play| play.failed.is_some())
        .collect();
    let mut uncached: Vec<f64> = counted
        .iter()
        .filter(|play| play.uncached)
        .filter_map(|play| play.first_audio_ms)
        .collect();
    uncached.sort_by(f64::total_cmp);
    let mut all: Vec<f64> = counted
        .iter()
        .filter_map(|play| play.first_audio_ms)
        .collect();
    all.sort_by(f64::total_cmp);
    let sum = |pick: fn(&crowd::PlayRecord) -> u64| plays.iter().map(pick).sum::<u64>();
    let bytes_origin = sum(|play| play.bytes_origin);
    let bytes_super = sum(|play| play.bytes_super_nodes);
    let bytes_peers = sum(|play| play.bytes_peers);
    let bytes_cache = sum(|play| play.bytes_cache);
    let network = bytes_origin + bytes_super + bytes_peers;
    // The floor of the origin's share: every track played leaves the origin at least once
    // (to a listener or a super-node). A track's size is the most any play of it received
    // (chunks received twice counted once).
    let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
    for play in &counted {
        let received =
            (play.bytes_origin + play.bytes_super_nodes + play.bytes_peers + play.bytes_cache)
                .saturating_sub(play.bytes_duplicate);
        let size = sizes.entry(play.track).or_default();
        *size = (*size).max(received);
    }
    let floor_bytes: u64 = sizes.values().sum();
    let stutters: u64 = counted.iter().map(|play| u64::from(play.stutters)).sum();
    let stuttered = counted.iter().filter(|play| play.stutters > 0).count();
    let started = counted
        .iter()
        .filter(|play| play.first_audio_ms.is_some())
        .count();
    let pct = |sorted: &[f64], p: f64| {
        if sorted.is_empty() {
            Value::Null
        } else {
            json!((percentile(sorted, p) * 10.0).round() / 10.0)
        }
    };
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for play in &failed {
        let reason = play.failed.clone().unwrap_or_default();
        let short: String = reason.chars().take(120).collect();
        *failures.entry(short).or_default() += 1;
    }
    json!({
        "plays": counted.len(),
        "failed_plays": failed.len(),
        "stutters": stutters,
        "plays_with_stutter": stuttered,
        "stutter_rate": if started == 0 { Value::Null } else { json!(((stuttered as f64 / started as f64) * 10_000.0).round() / 10_000.0) },
        "first_audio_ms": {"p50": pct(&all, 50.0), "p90": pct(&all, 90.0), "p99": pct(&all, 99.0), "plays": all.len()},
        "first_audio_steps_ms": steps(&counted),
        "first_audio_ms_uncached": {"p50": pct(&uncached, 50.0), "p90": pct(&uncached, 90.0), "p99": pct(&uncached, 99.0), "plays": uncached.len()},
        "bytes": {"origin": bytes_origin, "super_nodes": bytes_super, "peers": bytes_peers, "cache": bytes_cache},
        "wasted_bytes": {"prefetch": prefetch_unused, "cancelled": sum(|play| play.bytes_cancelled), "duplicate": sum(|play| play.bytes_duplicate)},
        "origin_egress_bytes": origin_egress,
        "origin_share": if network == 0 { Value::Null } else { json!(((origin_egress as f64 / network as f64) * 10_000.0).round() / 10_000.0) },
        "origin_share_floor": if network == 0 { Value::Null } else { json!(((floor_bytes.min(network) as f64 / network as f64) * 10_000.0).round() / 10_000.0) },
        "tracks_played_bytes": floor_bytes,
        "peer_share": if network == 0 { Value::Null } else { json!((((bytes_super + bytes_peers) as f64 / network as f64) * 10_000.0).round() / 10_000.0) },
        "rtt_ms": args.rtt_ms,
        "listeners": args.listeners,
        "super_nodes": args.super_nodes,
        "regions": args.regions,
        "tracks": args.tracks,
        "seed": args.seed,
        "killed_plays": plays.iter().filter(|play| play.killed).count(),
        "plays_without_origin": counted.iter().filter(|play| after_kill(play)).count(),
        "unlicensed_without_origin": plays.iter().filter(|play| play.unlicensed).count(),
        "failed_without_origin": failed.iter().filter(|play| after_kill(play)).count(),
        "trackers": args.trackers,
        "plays_after_tracker_loss": counted.iter().filter(|play| after_tracker_loss(play)).count(),
        "failed_after_tracker_loss": failed.iter().filter(|play| after_tracker_loss(play)).count(),
        "listeners_played": counted.iter().map(|play| play.listener).collect::<std::collections::BTreeSet<_>>().len(),
        "tracks_played": counted.iter().map(|play| play.track).collect::<std::collections::BTreeSet<_>>().len(),
        "skipped_plays": counted.iter().filter(|play| play.skipped).count(),
        "checks": {
            "region_violations": plays.iter().map(|play| play.region_violations).sum::<u64>(),
            "duration_mismatches": counted.iter().filter(|play| play.duration_mismatch).count(),
            "durations_checked": counted.iter().filter(|play| play.duration_checked).count(),
        },
        "failures": failures,
    })
}

/// `first_audio_ms` step by step, p50 and p90 of each: `grant` (press to authorization,
/// with the opening chunks unless prefetched), `first_chunk` (to the first decrypted audio
/// handed on), `decoder` (to the first decoded samples); as the simulator models them.
fn steps(plays: &[&crowd::PlayRecord]) -> Value {
    let mut out = serde_json::Map::new();
    for (i, name) in ["grant", "first_chunk", "decoder"].into_iter().enumerate() {
        let mut all: Vec<f64> = plays
            .iter()
            .filter_map(|play| play.first_audio_steps_ms.map(|steps| steps[i]))
            .collect();
        all.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if all.is_empty() {
                Value::Null
            } else {
                json!((percentile(&all, p) * 10.0).round() / 10.0)
            }
        };
        out.insert(
            name.to_string(),
            json!({"p50": pct(50.0), "p90": pct(90.0)}),
        );
    }
    Value::Object(out)
}

/// Bytes of prefetched openings that went unused, so far.
fn prefetch_unused(live: &crowd::Live) -> u64 {
    live.prefetch_unused_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn opt(ms: Option<f64>) -> String {
    ms.map_or("-".to_string(), |ms| format!("{ms:.0}"))
}

/// `share` (0..1) as a bar `width` characters wide.
fn bar(share: f64, width: usize) -> String {
    let filled = ((share.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn print_report(summary: &Value) {
    let get = |path: &[&str]| {
        let mut value = summary;
        for key in path {
            value = &value[*key];
        }
        value.clone()
    };
    eprintln!();
    eprintln!("devnet summary");
    eprintln!(
        "  plays          {} ({} failed, {} skipped, {} cut short by crashes)",
        get(&["plays"]),
        get(&["failed_plays"]),
        get(&["skipped_plays"]),
        get(&["killed_plays"])
    );
    eprintln!(
        "  stutters       {} in {} plays",
        get(&["stutters"]),
        get(&["plays_with_stutter"])
    );
    eprintln!(
        "  first audio    p50 {} ms, p90 {} ms, p99 {} ms ({} plays; RTT {} ms)",
        get(&["first_audio_ms", "p50"]),
        get(&["first_audio_ms", "p90"]),
        get(&["first_audio_ms", "p99"]),
        get(&["first_audio_ms", "plays"]),
        get(&["rtt_ms"])
    );
    eprintln!(
        "    steps p50    grant {} ms, first chunk {} ms, decoder {} ms",
        get(&["first_audio_steps_ms", "grant", "p50"]),
        get(&["first_audio_steps_ms", "first_chunk", "p50"]),
        get(&["first_audio_steps_ms", "decoder", "p50"])
    );
    eprintln!(
        "    uncached     p50 {} ms, p90 {} ms, p99 {} ms ({} plays neither prefetched nor cached)",
        get(&["first_audio_ms_uncached", "p50"]),
        get(&["first_audio_ms_uncached", "p90"]),
        get(&["first_audio_ms_uncached", "p99"]),
        get(&["first_audio_ms_uncached", "plays"])
    );
    let bytes = |key: &str| mib(get(&["bytes", key]).as_u64().unwrap_or(0));
    eprintln!(
        "  received       origin {}, super-nodes {}, peers {}; cache {}",
        bytes("origin"),
        bytes("super_nodes"),
        bytes("peers"),
        bytes("cache")
    );
    eprintln!(
        "  origin share   {} (server egress {} / bytes listeners received)",
        get(&["origin_share"]),
        mib(get(&["origin_egress_bytes"]).as_u64().unwrap_or(0))
    );
    let egress = get(&["origin_egress_bytes"]).as_u64().unwrap_or(0);
    let to_listeners = get(&["bytes", "origin"]).as_u64().unwrap_or(0);
    eprintln!(
        "    its floor    {}: each of the {} tracks played must leave the origin once ({})",
        get(&["origin_share_floor"]),
        get(&["tracks_played"]),
        mib(get(&["tracks_played_bytes"]).as_u64().unwrap_or(0))
    );
    eprintln!(
        "    egress       {} to listeners' plays (the first copies among them; above the floor,",
        mib(to_listeners)
    );
    eprintln!(
        "                 plays no peer served in time); {} else: super-node fills, unused",
        mib(egress.saturating_sub(to_listeners))
    );
    eprintln!(
        "                 prefetches, transfers cut off; peers and super-nodes carried {} of the",
        get(&["peer_share"])
    );
    eprintln!("                 network bytes");
    let wasted = |key: &str| mib(get(&["wasted_bytes", key]).as_u64().unwrap_or(0));
    eprintln!(
        "  wasted         prefetched unused {}, cancelled transfers {}, duplicates {}",
        wasted("prefetch"),
        wasted("cancelled"),
        wasted("duplicate")
    );
    eprintln!(
        "  checks         {} region violations, {} duration mismatches ({} checked)",
        get(&["checks", "region_violations"]),
        get(&["checks", "duration_mismatches"]),
        get(&["checks", "durations_checked"])
    );
    if let Some(line) = edge_line(summary) {
        eprintln!("  edge           {line}");
    }
    if !summary["origin_killed_at_s"].is_null() {
        eprintln!(
            "  origin killed  at {} s: {} plays after, {} failed",
            get(&["origin_killed_at_s"]),
            get(&["plays_without_origin"]),
            get(&["failed_without_origin"])
        );
    }
    if !summary["tracker_killed_at_s"].is_null() {
        eprintln!(
            "  tracker shard  0 of {} killed at {} s: {} plays after, {} failed",
            get(&["trackers"]),
            get(&["tracker_killed_at_s"]),
            get(&["plays_after_tracker_loss"]),
            get(&["failed_after_tracker_loss"])
        );
    }
    if let Some(failures) = summary["failures"].as_object() {
        for (reason, count) in failures {
            eprintln!("  failed ×{count}: {reason}");
        }
    }
}

/// The edge's hits and misses and each origin's share of requests, when there is an edge.
fn edge_line(summary: &Value) -> Option<String> {
    let cdn = summary["cdn"].as_object()?;
    let shares: Vec<String> = summary["origin_requests"]
        .as_array()
        .map(|origins| {
            origins
                .iter()
                .map(|origin| format!("{:.0}%", origin["share"].as_f64().unwrap_or(0.0) * 100.0))
                .collect()
        })
        .unwrap_or_default();
    Some(format!(
        "chunk hits {} misses {} (hit ratio {}), {} refused, {} sent; origins answered {} of requests",
        cdn["hits"],
        cdn["misses"],
        cdn["hit_ratio"],
        cdn["refused"],
        mib(cdn["chunk_bytes"].as_u64().unwrap_or(0)),
        shares.join(" / ")
    ))
}

/// What the view shows before plays end.
struct LiveLine {
    started: usize,
    playing: usize,
    p50: Option<f64>,
    p99: Option<f64>,
    egress: u64,
    /// Of the chunk bytes listeners have received so far (plays under way included), the
    /// share from super-nodes and peers.
    peer_share: Option<f64>,
}

/// The live view: a block of lines redrawn in place on a terminal, one status line every
/// ten seconds otherwise.
#[derive(Default)]
struct View {
    drawn: usize,
    notes: Vec<String>,
    last_line: Option<Instant>,
}

impl View {
    fn note(&mut self, note: String) {
        self.notes.push(note);
        if self.notes.len() > 5 {
            self.notes.remove(0);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn show(
        &mut self,
        interactive: bool,
        summary: &Value,
        live: &LiveLine,
        elapsed: Duration,
        duration: Option<Duration>,
        online: usize,
        listeners: u32,
        super_nodes: usize,
    ) {
        let share = summary["origin_share"]
            .as_f64()
            .map_or("-".to_string(), |share| format!("{:.1}%", share * 100.0));
        let percent =
            |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let peers = percent(live.peer_share);
        let floor = percent(summary["origin_share_floor"].as_f64());
        let bytes = |key: &str| mib(summary["bytes"][key].as_u64().unwrap_or(0));
        let ms = |key: &str| {
            summary["first_audio_ms"][key]
                .as_f64()
                .map_or("-".to_string(), |value| format!("{value:.0}"))
        };
        if !interactive {
            if self
                .last_line
                .is_some_and(|last| last.elapsed() < Duration::from_secs(10))
                && self.notes.is_empty()
            {
                return;
            }
            self.last_line = Some(Instant::now());
            eprintln!(
                "[{:>4.0} s] online {online}/{listeners} | started {} playing {} | ended {} (failed {}, stutters {}) | first audio p50 {} ms p99 {} ms | origin sent {} | from peers {peers}",
                elapsed.as_secs_f64(),
                live.started,
                live.playing,
                summary["plays"],
                summary["failed_plays"],
                summary["stutters"],
                opt(live.p50),
                opt(live.p99),
                mib(live.egress),
            );
            if let Some(line) = edge_line(summary) {
                eprintln!("  edge: {line}");
            }
            for note in self.notes.drain(..) {
                eprintln!("  {note}");
            }
            return;
        }
        let progress = match duration {
            Some(total) => {
                let fraction = (elapsed.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0);
                let filled = (fraction * 30.0) as usize;
                format!(
                    "[{}{}] {:>4.0}/{:.0} s",
                    "#".repeat(filled),
                    "-".repeat(30 - filled),
                    elapsed.as_secs_f64(),
                    total.as_secs_f64()
                )
            }
            None => format!("{:.0} s (Ctrl-C ends the run)", elapsed.as_secs_f64()),
        };
        let mut lines = vec![
            format!("chorus devnet  {progress}"),
            format!(
                "  peers        {online}/{listeners} listeners online; super-nodes: {super_nodes}"
            ),
            format!(
                "  plays        {} started, {} playing now; {} ended ({} failed, {} skipped), stutters {}",
                live.started,
                live.playing,
                summary["plays"],
                summary["failed_plays"],
                summary["skipped_plays"],
                summary["stutters"]
            ),
            format!(
                "  first audio  every start: p50 {} ms  p99 {} ms; uncached, ended: p50 {} ms  p90 {} ms  p99 {} ms",
                opt(live.p50),
                opt(live.p99),
                ms("p50"),
                ms("p90"),
                ms("p99"),
            ),
            format!(
                "  received     origin {}  super-nodes {}  peers {}  cache {}",
                bytes("origin"),
                bytes("super_nodes"),
                bytes("peers"),
                bytes("cache")
            ),
            format!(
                "  servers      sent {} in all (super-node fills too); share {share} of what ended plays received",
                mib(live.egress)
            ),
            format!(
                "  from peers   {} {peers} of the chunks handed to playback so far (the origin's share's floor: {floor})",
                bar(live.peer_share.unwrap_or(0.0), 30)
            ),
        ];
        if let Some(line) = edge_line(summary) {
            lines.push(format!("  edge         {line}"));
        }
        lines.extend(self.notes.iter().map(|note| format!("  ! {note}")));
        let mut err = std::io::stderr().lock();
        if self.drawn > 0 {
            let _ = write!(err, "\x1b[{}A\x1b[J", self.drawn);
        }
        for line in &lines {
            let _ = writeln!(err, "{line}");
        }
        self.drawn = lines.len();
    }

    fn clear(&mut self, interactive: bool) {
        if interactive && self.drawn > 0 {
            let _ = write!(std::io::stderr(), "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_sets_the_origin_share_against_its_floor() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: DevnetArgs,
        }
        let args = <Wrap as clap::Parser>::parse_from(["devnet"]).args;
        let now = Instant::now();
        let play = |listener, track, origin, peers| crowd::PlayRecord {
            bytes_origin: origin,
            bytes_peers: peers,
            first_audio_ms: Some(50.0),
            ..crowd::PlayRecord::new(listener, track, now)
        };
        // Track 0 (1000 bytes) from the origin, then from a peer; track 1 (500 bytes), from
        // the origin; a skipped play of track 1 that got 200 bytes.
        let plays = [
            play(0, 0, 1000, 0),
            play(1, 0, 0, 1000),
            play(2, 1, 500, 0),
            play(3, 1, 0, 200),
        ];
        let summary = summarize(&plays, 0, 1600, &args, None, None);
        assert_eq!(summary["origin_share"], json!(0.5926));
        // 1500 of 2700 bytes had to leave the origin once.
        assert_eq!(summary["tracks_played_bytes"], json!(1500));
        assert_eq!(summary["origin_share_floor"], json!(0.5556));
        assert_eq!(summary["peer_share"], json!(0.4444));
        assert_eq!(bar(0.5, 10), "[#####-----]");
        assert_eq!(bar(2.0, 4), "[####]");
    }

    #[test]
    fn durations_and_links_parse() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
        let base = PairLink {
            rtt_ms: 40.0,
            jitter_ms: 0.0,
            loss: 0.0,
            mbps: None,
        };
        let (a, b, link) = parse_link("se-US:rtt=120,loss=0.01", base).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("SE", "US"));
        assert_eq!(link.rtt_ms, 120.0);
        assert_eq!(link.loss, 0.01);
        assert_eq!(link.direction().delay_ms, 60.0);
        assert!(parse_link("SE-US:rtt=-5", base).is_err());
        assert!(parse_link("SE-US:loss=2", base).is_err());
        assert!(parse_link("SE-US:speed=5", base).is_err());
        assert!(parse_link("SEUS:rtt=5", base).is_err());
    }

    #[test]
    fn the_link_matrix_is_symmetric_with_a_default() {
        let base = PairLink {
            rtt_ms: 40.0,
            jitter_ms: 0.0,
            loss: 0.0,
            mbps: None,
        };
        let far = PairLink {
            rtt_ms: 150.0,
            ..base
        };
        let matrix = LinkMatrix {
            base,
            pairs: HashMap::from([((0, 1), far)]),
        };
        assert_eq!(matrix.get(1, 0), far);
        assert_eq!(matrix.get(0, 1), far);
        assert_eq!(matrix.get(1, 1), base);
    }

    #[test]
    fn every_fourth_track_is_licensed_in_one_region() {
        assert!(markets_of(3, 1).is_empty());
        assert_eq!(markets_of(3, 2), vec!["SE".to_string()]);
        assert!(markets_of(2, 2).is_empty());
    }
}
