//! `chorus bench tracker`: the sans-IO tracker core under an announce+query mix, on one core,
//! with 1,000,000 (peer, rendition) entries; and the live heap bytes per entry.
//!
//! State: `peers` peers each announcing `per_peer` renditions out of a catalog sized so every
//! rendition has exactly `peers_per_rendition_max` (20) holders: `peers × per_peer` entries.
//! Claims are built ahead (the driver verifies signatures before the core; `chorus bench
//! tracker` reports the signature check's own rate separately, since it runs on any core and
//! is cached per token).
//!
//! Mix: 1 re-announce of a peer's 10 renditions per 4 peer queries (a listener queries once
//! per track; peers re-announce every 40 s); a quarter of the re-announces change the set
//! (one rendition swapped), the rest repeat it (the core only refreshes those). Every peer
//! re-announces in turn, and the clock advances 1 ms every 100 operations, so over the default
//! 5 × 1,000,000 operations (50 s of tracker time) no announce expires (TTL 120 s) and none is
//! refused as a flood (each peer re-announces every 5 s).
//!
//! Queries go through `Tracker::query_into` with one reused answer buffer, as a driver
//! answering many queries would.
//!
//! Baseline in the same run: the bare data-structure work of a query (a `HashMap` lookup of
//! the rendition, ranking its 20 holder ids, copying out 10 `PeerInfo`s) without the rules.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope};
use protocol::wire::{Announce, NodeRole, PeerInfo, PeerQuery};
use protocol::{AccountId, Identity, LicenseToken, NodeId, Region, RenditionId, UnixMillis};
use tracker::{Tracker, TrackerConfig};

use super::{median, print_table, progress, progress_done};

/// Flags of `chorus bench tracker`.
#[derive(Debug, Args)]
pub struct TrackerBenchArgs {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Rounds; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// (peer, rendition) entries held.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=20_000_000))]
    pub entries: u32,
    /// Renditions each peer announces.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub per_peer: u32,
    /// Operations per round.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    pub ops: u32,
}

fn node(n: u32) -> NodeId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    bytes[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
    NodeId(bytes)
}

fn rendition(n: u32) -> RenditionId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.wrapping_mul(2_246_822_519).to_le_bytes());
    bytes[4..8].copy_from_slice(&n.to_le_bytes());
    RenditionId(bytes)
}

fn claims(node: NodeId, region: Region, scope: LicenseScope, now: u64) -> LicenseClaims {
    LicenseClaims {
        version: LICENSE_VERSION,
        issuer: NodeId([9; 32]),
        account: AccountId([1; 16]),
        node,
        region,
        scope,
        markets: Vec::new(),
        issued_at: UnixMillis(now),
        expires_at: UnixMillis(now + 24 * 3_600_000),
        offline: false,
    }
}

struct World {
    per_peer: u32,
    catalog: u32,
    regions: [Region; 4],
    token: LicenseToken,
}

impl World {
    fn region(&self, n: u32) -> Region {
        self.regions[(n % 4) as usize]
    }

    /// A peer's announce, its credential's claims, and the proof of what it holds (for a
    /// client: the licenses it fetched its renditions under, as one claims set covering
    /// both the announced set and the bench's changed variant of it; none for super-nodes).
    fn announce(&self, peer: u32) -> (NodeId, LicenseClaims, Vec<LicenseClaims>, Announce) {
        let id = node(peer);
        let region = self.region(peer);
        let scope = LicenseScope::Play {
            renditions: vec![rendition(0)],
        };
        let renditions: Vec<RenditionId> = (0..self.per_peer)
            .map(|k| rendition((peer * self.per_peer + k) % self.catalog))
            .collect();
        let mut held = renditions.clone();
        held.push(self.variant_rendition(peer));
        let announce = Announce {
            partial: Vec::new(),
            region,
            role: if peer.is_multiple_of(50) {
                NodeRole::SuperNode
            } else {
                NodeRole::Client
            },
            addrs: vec![SocketAddr::from((
                [10, 0, (peer >> 8) as u8, peer as u8],
                4470,
            ))],
            renditions,
            upload_spare_kbps: peer % 5000,
            credential: self.token.clone(),
            proofs: Vec::new(),
        };
        if announce.role == NodeRole::SuperNode {
            let role = claims(id, region, LicenseScope::SuperNode, 0);
            return (id, role, Vec::new(), announce);
        }
        let proof = claims(id, region, LicenseScope::Play { renditions: held }, 0);
        (id, claims(id, region, scope, 0), vec![proof], announce)
    }

    /// The rendition the bench's changed announce of `peer` ends with.
    fn variant_rendition(&self, peer: u32) -> RenditionId {
        rendition(peer.wrapping_mul(31) % self.catalog)
    }
}

pub fn run(args: &TrackerBenchArgs) -> anyhow::Result<ExitCode> {
    let config = TrackerConfig::default();
    let per_peer = args.per_peer;
    let peers = args.entries.div_ceil(per_peer);
    let catalog = (u64::from(peers) * u64::from(per_peer) / config.peers_per_rendition_max as u64)
        .max(1) as u32;
    // One real token, shared (its bytes travel in announces; the core does not re-verify).
    let issuer = Identity::from_secret_bytes(&[9; 32]);
    let mut token_claims = claims(issuer.node_id(), "SE".parse()?, LicenseScope::SuperNode, 0);
    token_claims.issuer = issuer.node_id();
    let token = LicenseToken::issue(&issuer, &token_claims)?;
    let world = World {
        per_peer,
        catalog,
        regions: ["SE".parse()?, "DE".parse()?, "US".parse()?, "BR".parse()?],
        token,
    };

    // Populate, counting live heap bytes.
    let before = crate::alloc::live_bytes();
    let mut core = Tracker::new(config.clone());
    let started = Instant::now();
    for peer in 0..peers {
        if peer % 10_000 == 0 {
            progress(&format!("tracker: populating {peer}/{peers} peers"));
        }
        let (id, claims, proofs, announce) = world.announce(peer);
        core.announce(UnixMillis(1), &id, &claims, &proofs, &announce)
            .map_err(|error| anyhow::anyhow!("populate: {error}"))?;
    }
    let populate_s = started.elapsed().as_secs_f64();
    let heap = crate::alloc::live_bytes().saturating_sub(before);
    let entries = core.entries();
    let bytes_per_entry = heap as f64 / entries as f64;

    // Query claims: a pool of listeners, each licensed for one rendition.
    let queries: Vec<(NodeId, LicenseClaims, PeerQuery)> = (0..10_000u32)
        .map(|n| {
            let asker = node(peers + n);
            let wanted = rendition(n.wrapping_mul(7919) % catalog);
            let scope = LicenseScope::Play {
                renditions: vec![wanted],
            };
            let query = PeerQuery {
                rendition: wanted,
                want: 10,
                license: world.token.clone(),
            };
            (asker, claims(asker, world.region(n), scope, 0), query)
        })
        .collect();
    let announces: Vec<(NodeId, LicenseClaims, Vec<LicenseClaims>, Announce)> =
        (0..peers).map(|n| world.announce(n)).collect();
    // A quarter of the peers change their set at every re-announce (they cached a new track):
    // the variant swaps the last rendition for another one.
    let variants: Vec<Announce> = announces
        .iter()
        .enumerate()
        .map(|(n, (_, _, _, announce))| {
            let mut changed = announce.clone();
            if let Some(last) = changed.renditions.last_mut() {
                *last = world.variant_rendition(n as u32);
            }
            changed
        })
        .collect();

    // Baseline: the bare lookup-rank-copy of a query.
    let mut bare: HashMap<RenditionId, Vec<(u32, Region, u32)>> = HashMap::new();
    for peer in 0..peers.min(200_000) {
        for k in 0..per_peer {
            let holders = bare
                .entry(rendition((peer * per_peer + k) % catalog))
                .or_default();
            if holders.len() < 20 {
                holders.push((peer, world.region(peer), peer % 5000));
            }
        }
    }

    let ops = args.ops as usize;
    // Past the populating announces' flood window.
    let mut now_ms = 2_000u64;
    // Tracker time per operation: slow enough that a peer's turns to re-announce (every
    // `peers × 5` operations) are over 2 s apart (no flood refusals), fast enough that no
    // announce outlives the 120 s TTL (0.01 ms per operation at the default size).
    let ms_per_op = (2_000.0 / (f64::from(peers) * 5.0)).max(0.01);
    let (mut chorus_rates, mut bare_rates) = (Vec::new(), Vec::new());
    let mut refused = 0u64;
    let mut answer = protocol::wire::PeerList {
        rendition: rendition(0),
        peers: Vec::new(),
    };
    for round in 1..=args.rounds {
        progress(&format!("tracker: round {round}/{}", args.rounds));
        let started = Instant::now();
        for op in 0..ops {
            let now = UnixMillis(now_ms + (op as f64 * ms_per_op) as u64);
            if op % 5 == 0 {
                let k = op / 5;
                let i = k % announces.len();
                let (id, claims, proofs, announce) = &announces[i];
                let cycle = k / announces.len() + round as usize;
                let announce = if i.is_multiple_of(4) && cycle % 2 == 1 {
                    &variants[i]
                } else {
                    announce
                };
                if core.announce(now, id, claims, proofs, announce).is_err() {
                    refused += 1;
                }
            } else {
                let (asker, claims, query) = &queries[op % queries.len()];
                // The driver reuses its answer buffer, as `chorus tracker` does.
                match core.query_into(now, asker, claims, query, &mut answer) {
                    Ok(()) => {
                        black_box(&answer);
                    }
                    Err(_) => refused += 1,
                }
            }
        }
        chorus_rates.push(ops as f64 / started.elapsed().as_secs_f64());
        now_ms += (ops as f64 * ms_per_op) as u64;

        let started = Instant::now();
        for op in 0..ops {
            let (_, claims, query) = &queries[op % queries.len()];
            if let Some(holders) = bare.get(&query.rendition) {
                let mut ranked: Vec<&(u32, Region, u32)> = holders.iter().collect();
                ranked.sort_unstable_by_key(|(_, region, spare)| {
                    (
                        std::cmp::Reverse(*region == claims.region),
                        std::cmp::Reverse(*spare),
                    )
                });
                let list: Vec<PeerInfo> = ranked
                    .iter()
                    .take(10)
                    .map(|(peer, region, spare)| PeerInfo {
                        holding: None,
                        node: node(*peer),
                        addrs: vec![SocketAddr::from(([10, 0, 0, 1], 4470))],
                        region: *region,
                        role: NodeRole::Client,
                        upload_spare_kbps: *spare,
                    })
                    .collect();
                black_box(list);
            }
        }
        bare_rates.push(ops as f64 / started.elapsed().as_secs_f64());
    }
    progress_done();

    // The janitor's full sweep (the driver runs it every 5 s under the core's lock), at a
    // time when nothing has expired yet: the cost of walking everything.
    let started = Instant::now();
    let expired = core.expire(UnixMillis(now_ms));
    let expire_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Signature verification, for scale: the driver's cost per uncached token.
    let verifier = Identity::from_secret_bytes(&[9; 32]).node_id();
    let started = Instant::now();
    let checks = 2_000;
    for _ in 0..checks {
        black_box(world.token.verify(&verifier, &verifier, UnixMillis(1)).ok());
    }
    let verify_per_s = f64::from(checks) / started.elapsed().as_secs_f64();

    let ops_per_s = median(&mut chorus_rates);
    let baseline = median(&mut bare_rates);
    print_table(
        &format!(
            "tracker core: {entries} entries ({peers} peers × {per_peer}, {catalog} renditions × 20 holders), one core, median of {} rounds of {ops} ops (1 announce : 4 queries; 1 in 4 announces changes the set)",
            args.rounds
        ),
        &[
            ("ops/s (announce+query)", format!("{ops_per_s:.0}")),
            (
                "baseline ops/s (bare lookup+rank+copy)",
                format!("{baseline:.0}"),
            ),
            ("ratio", format!("{:.2}", ops_per_s / baseline)),
            ("heap bytes per entry", format!("{bytes_per_entry:.1}")),
            ("heap MiB", format!("{:.1}", heap as f64 / 1048576.0)),
            ("populate s", format!("{populate_s:.2}")),
            ("refused ops", refused.to_string()),
            (
                "expire sweep ms (whole state, nothing expired)",
                format!("{expire_ms:.1} ({expired} removed)"),
            ),
            (
                "signature checks/s (uncached tokens)",
                format!("{verify_per_s:.0}"),
            ),
        ],
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ops_per_s": ops_per_s.round(),
                "bytes_per_entry": (bytes_per_entry * 10.0).round() / 10.0,
                "entries": entries,
                "baseline_ops_per_s": baseline.round(),
                "ratio": (ops_per_s / baseline * 1000.0).round() / 1000.0,
                "verify_per_s": verify_per_s.round(),
                "refused": refused,
                "expire_ms": (expire_ms * 10.0).round() / 10.0,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
