//! `chorus tracker` and `chorus node`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use api::client::{NodeAddr, OriginApi};
use clap::Args;
use protocol::NodeId;
use tracker::{TrackerConfig, TrackerService};
use transport::{Endpoint, Limits};

use crate::origin_cmd::{ShutdownSignal, password};

/// Flags of `chorus tracker`.
#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// QUIC listen address.
    #[arg(long, default_value = "0.0.0.0:4471")]
    listen: SocketAddr,
    /// Directory for the tracker's identity key (its node id survives restarts).
    #[arg(long, default_value = "chorus-tracker")]
    data: PathBuf,
    /// The origin whose licenses to trust: URL or NODE_ID@URL. Without a node id its key is
    /// read from GET /v1/network at first start and pinned in --data (origin.pin).
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    origin: String,
    /// Trust this origin node id instead of asking the origin (hex).
    #[arg(long)]
    issuer: Option<NodeId>,
    /// Most peers in one answer.
    #[arg(long, default_value_t = 10)]
    peers_returned: usize,
    /// Most recent holders kept per rendition.
    #[arg(long, default_value_t = 20)]
    peers_per_rendition: usize,
    /// Seconds an announce counts.
    #[arg(long, default_value_t = 120)]
    ttl_s: u64,
    /// Most peers tracked.
    #[arg(long, default_value_t = 1_000_000)]
    peers_max: usize,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, default_value_t = 10)]
    status_every_s: u64,
    /// A network (CIDR) of relays the operator runs in front of nodes: announces arriving
    /// from it keep the addresses they name. From anywhere else an announced address must be
    /// the connection's observed one (otherwise the observed one replaces it). Repeatable.
    #[arg(long = "relay-network", value_name = "CIDR")]
    relay_networks: Vec<ipnet::IpNet>,
}

async fn learn_issuer(origin: &str, pin_file: &std::path::Path) -> anyhow::Result<NodeAddr> {
    let api = OriginApi::new(origin)?;
    api.pin_from_file(pin_file)?;
    let started = Instant::now();
    loop {
        match api.network().await {
            Ok(network) => {
                api.keep_pin(pin_file)?;
                return Ok(network.origin);
            }
            Err(error) if error.is::<api::client::KeyChanged>() => return Err(error),
            Err(error) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("waiting for the origin at {origin}: {error:#}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => {
                return Err(error).context(
                    "could not learn the origin's key; start an origin or pass --issuer HEX",
                );
            }
        }
    }
}

/// Runs a tracker until Ctrl-C or SIGTERM.
pub fn run_tracker(args: TrackerArgs) -> anyhow::Result<ExitCode> {
    if args.peers_returned == 0 || args.peers_returned > protocol::wire::PEER_LIST_MAX {
        anyhow::bail!(
            "--peers-returned must be 1..={}",
            protocol::wire::PEER_LIST_MAX
        );
    }
    if args.peers_per_rendition < args.peers_returned {
        anyhow::bail!("--peers-per-rendition must be at least --peers-returned");
    }
    if args.ttl_s < 10 {
        anyhow::bail!("--ttl-s must be at least 10");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let identity = transport::keyfile::load_or_create_identity(&args.data.join("node.key"))
            .with_context(|| format!("node key in {}", args.data.display()))?;
        let (issuer, origin_quic) = match args.issuer {
            Some(issuer) => (issuer, None),
            None => {
                let network =
                    learn_issuer(&args.origin, &args.data.join(node::ORIGIN_PIN_FILE)).await?;
                (network.node, Some(network.addr))
            }
        };
        let config = TrackerConfig {
            peers_returned_max: args.peers_returned,
            peers_per_rendition_max: args.peers_per_rendition,
            announce_ttl_ms: args.ttl_s * 1000,
            peers_max: args.peers_max,
            ..TrackerConfig::default()
        };
        let endpoint = Endpoint::bind(&identity, args.listen, Limits::default())
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = endpoint.local_addr()?;
        let service = Arc::new(
            TrackerService::new(config, issuer, transport::chunks::system_clock())
                .with_relays(args.relay_networks.clone()),
        );
        let janitor = service.spawn_janitor(Duration::from_secs(5));
        let serve = tokio::spawn(transport::serve(endpoint.clone(), service.clone()));
        println!("chorus tracker {}", env!("CARGO_PKG_VERSION"));
        println!("  node id  {}", identity.node_id());
        println!("  quic     {addr}");
        println!("  trusts   {issuer} (the origin)");
        let shown = match origin_quic {
            Some(toward) => transport::keyfile::advertised_addr(addr, toward),
            None => addr,
        };
        println!("  address  {}@{shown}", identity.node_id());
        let shutdown = ShutdownSignal::listen()?;
        println!(
            "ready; start the origin with --tracker {}@{shown} so clients and super-nodes find it; Ctrl-C stops it",
            identity.node_id()
        );
        let status = tokio::spawn(status_lines(service.clone(), args.status_every_s));
        shutdown.wait().await?;
        status.abort();
        janitor.abort();
        endpoint.close();
        serve.abort();
        eprintln!("tracker stopped (its state is soft: peers rebuild it by announcing)");
        Ok(ExitCode::SUCCESS)
    })
}

async fn status_lines(service: Arc<TrackerService>, every_s: u64) {
    if every_s == 0 {
        return;
    }
    let mut last = service.snapshot().0;
    let mut ticks = tokio::time::interval(Duration::from_secs(every_s));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (stats, peers, renditions) = service.snapshot();
        eprintln!(
            "peers {peers:>8}  renditions {renditions:>8}  announces/s {:>7.1}  refreshes/s {:>7.1}  queries/s {:>7.1}  refused {:>6}  quarantined {:>4}  addresses replaced {:>6}  unproven {:>6}  rates reported {:>6}",
            (stats.announces - last.announces) as f64 / every_s as f64,
            (stats.refreshes - last.refreshes) as f64 / every_s as f64,
            (stats.queries - last.queries) as f64 / every_s as f64,
            stats.refused,
            stats.quarantined,
            service.addresses_replaced(),
            stats.unproven,
            stats.rates_reported,
        );
        last = stats;
    }
}

/// Flags of `chorus node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The origin's URL, or NODE_ID@URL to pin its key (role token, origin address, default
    /// tracker). Without a node id the key seen at the first log-in is pinned in
    /// --cache-dir (origin.pin).
    #[arg(long, default_value = "http://127.0.0.1:8470")]
    origin: String,
    /// Super-node account (password from CHORUS_PASSWORD or a prompt), created by the
    /// operator with `chorus admin create-super-node`.
    #[arg(long)]
    user: String,
    /// Cache directory (also keeps the node's identity key).
    #[arg(long, default_value = "chorus-node")]
    cache_dir: PathBuf,
    /// Cache budget, e.g. 500M, 20G.
    #[arg(long, default_value = "10G", value_parser = parse_bytes)]
    cache_bytes: u64,
    /// QUIC listen address.
    #[arg(long, default_value = "0.0.0.0:4472")]
    listen: SocketAddr,
    /// Address to announce when peers reach this node elsewhere (NAT, 0.0.0.0).
    #[arg(long)]
    public_addr: Option<SocketAddr>,
    /// Tracker as NODE_ID@HOST:PORT; repeat it for several shards (default: the ones the
    /// origin names).
    #[arg(long = "tracker")]
    trackers: Vec<NodeAddr>,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 256)]
    upload_slots: usize,
    /// Upload cap in megabits per second (default: none).
    #[arg(long)]
    upload_mbps: Option<f64>,
    /// Share of the cache the most popular renditions may pin (0..1).
    #[arg(long, default_value_t = 0.5)]
    pin_fraction: f64,
    /// Seconds between popularity and fill rounds.
    #[arg(long, default_value_t = 30)]
    refresh_s: u64,
    /// Renditions fetched into the cache at once (1..=64). Fills draw on their sources'
    /// upload, mostly listeners'; more finish a popular list sooner where holders are many.
    #[arg(long, default_value_t = node::fill::FillConfig::default().at_once as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    fills_at_once: u64,
    /// libp2p listen address for tracker-independent discovery (Kademlia, mDNS, AutoNAT).
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4473")]
    p2p_listen: discovery::Addr,
    /// A DHT node to join, /ip4/HOST/tcp/PORT/p2p/PEER_ID (repeatable).
    #[arg(long)]
    bootstrap: Vec<discovery::Addr>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Turn tracker-independent discovery off.
    #[arg(long)]
    no_p2p: bool,
    /// AutoNAT may use peers at private addresses as probes (LANs, test networks).
    #[arg(long)]
    private_network: bool,
    /// Dial TARGET through VIA, as TARGET=VIA (repeatable): a relay or link emulator in front
    /// of the origin, the tracker or a peer (`chorus devnet` uses it).
    #[arg(long, value_parser = parse_route)]
    via: Vec<(SocketAddr, SocketAddr)>,
}

/// Parses `HOST:PORT=HOST:PORT`.
pub fn parse_route(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (target, via) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected TARGET=VIA, both HOST:PORT"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<SocketAddr>()
            .map_err(|_| format!("{part:?} is not an address such as 127.0.0.1:4472"))
    };
    Ok((parse(target)?, parse(via)?))
}

/// Parses `123`, `500K`, `20M`, `10G`, `1T` (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let value: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 500M or 20G"))?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" | "KI" => 1 << 10,
        "M" | "MI" => 1 << 20,
        "G" | "GI" => 1 << 30,
        "T" | "TI" => 1 << 40,
        _ => return Err(format!("unknown unit in {text:?}: use K, M, G or T")),
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: the size must be positive"));
    }
    Ok((value * scale as f64) as u64)
}

/// Runs a super-node until Ctrl-C or SIGTERM.
pub fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.pin_fraction) {
        anyhow::bail!("--pin-fraction must be between 0 and 1");
    }
    if args
        .upload_mbps
        .is_some_and(|mbps| mbps.is_nan() || mbps <= 0.0)
    {
        anyhow::bail!("--upload-mbps must be positive");
    }
    let password = password()?;
    let mut config =
        node::SuperNodeConfig::new(args.cache_dir.clone(), args.origin, args.user, password);
    config.cache_bytes = args.cache_bytes;
    config.listen = args.listen;
    config.public_addr = args.public_addr;
    config.trackers = args.trackers;
    config.upload_slots = args.upload_slots;
    config.upload_bytes_per_s = args.upload_mbps.map(|mbps| (mbps * 1e6 / 8.0) as u64);
    config.pin_fraction = args.pin_fraction;
    config.refresh = Duration::from_secs(args.refresh_s.max(1));
    config.fills_at_once = args.fills_at_once as usize;
    for (target, via) in &args.via {
        if !config.routes.insert(*target, *via) {
            anyhow::bail!("too many --via routes (at most {})", transport::ROUTES_MAX);
        }
    }
    config.discovery = (!args.no_p2p).then(|| discovery::DiscoveryConfig {
        listen: args.p2p_listen.clone(),
        bootstrap: args.bootstrap.clone(),
        mdns: !args.no_mdns,
        autonat_global_only: !args.private_network,
        ..discovery::DiscoveryConfig::default()
    });
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let node = node::SuperNode::start(config).await?;
        let (used, capacity) = node.cache().usage();
        println!("chorus node {}", env!("CARGO_PKG_VERSION"));
        println!("  node id  {}", node.node_id);
        println!("  quic     {}", node.quic_addr);
        println!("  announce {}", node.announce_addr);
        println!("  region   {}", node.region);
        if node.trackers.is_empty() {
            println!("  tracker  none (set --tracker or the origin's --tracker)");
        }
        for tracker in node.trackers.all() {
            println!("  tracker  {tracker}");
        }
        println!("  cache    {} ({} of {} MiB used)", args.cache_dir.display(), used >> 20, capacity >> 20);
        if let Some(discovery) = node.discovery() {
            // Listeners appear shortly after start.
            tokio::time::sleep(Duration::from_millis(200)).await;
            for addr in discovery.listen_addrs().await.unwrap_or_default() {
                println!("  p2p      {addr}");
            }
        }
        let shutdown = ShutdownSignal::listen()?;
        println!("ready; Ctrl-C or SIGTERM stops it");
        let stats = node.stats().clone();
        let cache = node.cache().clone();
        let status = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(10));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let (used, capacity) = cache.usage();
                eprintln!(
                    "cache {:>6}/{} MiB  renditions {:>5}  fills {:>5} (failed {})  from origin {:>6} MiB  from peers {:>6} MiB",
                    used >> 20,
                    capacity >> 20,
                    cache.held().len(),
                    stats.fills.load(Ordering::Relaxed),
                    stats.fill_failures.load(Ordering::Relaxed),
                    stats.bytes_from_origin.load(Ordering::Relaxed) >> 20,
                    stats.bytes_from_peers.load(Ordering::Relaxed) >> 20,
                );
            }
        });
        shutdown.wait().await?;
        status.abort();
        node.shutdown().await;
        eprintln!("node stopped; its cache stays in place for the next start");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("500M"), Ok(500 << 20));
        assert_eq!(parse_bytes("10G"), Ok(10 << 30));
        assert_eq!(parse_bytes("1.5K"), Ok(1536));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert!(parse_bytes("-1G").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5X").is_err());
    }
}
