//! A real origin, a real tracker, two super-nodes and listeners on loopback: role tokens,
//! popularity-driven fills (peer first, origin last), real chunks decrypted and decoded,
//! the licensing/region matrix at a serving super-node, lying and corrupting peers, and a
//! tracker restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use api::client::{NodeAddr, Trackers};
use bytes::Bytes;
use discovery::{Discovery, DiscoveryConfig};
use node::fetch::{BanList, FetchRequest, Source, fetch_rendition};
use node::{SuperNode, SuperNodeConfig};
use origin::config::OriginConfig;
use origin::server;
use origin::store::{Role, Tier};
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope};
use protocol::wire::{
    Announce, ErrorCode, NodeRole, PeerList, PeerQuery, PeerReport, Priority, ReportReason,
    Request, Response,
};
use protocol::{
    AccountId, ChunkCipher, ChunkId, ContentKey, Identity, LicenseToken, Manifest, NodeId, Region,
    RenditionId, SealLabel, SignedManifest, UnixMillis, codec,
};
use serde_json::{Value, json};
use testkit::local::LocalOrigin;
use tracker::{TrackerConfig, TrackerService};
use transport::chunks::{ChunkService, ChunkSource, fetch_range, system_clock};
use transport::{Endpoint, Limits, TransportError};

use testkit::PASSWORD;

struct Net {
    origin: LocalOrigin,
    tracker_identity: Identity,
    tracker_addr: SocketAddr,
    tracker_endpoint: Option<Endpoint>,
    tracker_config: TrackerConfig,
    /// The first tracker's service (its counters), when the test started one.
    tracker_service: Option<Arc<TrackerService>>,
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn start_tracker(
    identity: &Identity,
    addr: SocketAddr,
    config: TrackerConfig,
    issuer: NodeId,
) -> (Endpoint, Arc<TrackerService>) {
    // A restarted tracker may find its port still held for a moment by the closing one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let endpoint = loop {
        match Endpoint::bind(identity, addr, Limits::default()) {
            Ok(endpoint) => break endpoint,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("{error}"),
        }
    };
    let service = Arc::new(TrackerService::new(config, issuer, system_clock()));
    tokio::spawn(transport::serve(endpoint.clone(), service.clone()));
    (endpoint, service)
}

impl Net {
    async fn start() -> Self {
        let origin = LocalOrigin::start_with(|config| {
            config.rate_limits = origin::ratelimit::RateLimits::off();
            config.upload_bytes_max = OriginConfig::default().upload_bytes_max;
        })
        .await
        .unwrap();
        let tracker_identity = Identity::from_secret_bytes(&[0x71; 32]);
        // Short TTL so nodes re-announce every few seconds (the restart test waits on it).
        let tracker_config = TrackerConfig {
            announce_ttl_ms: 6_000,
            // Fill rounds in this test must see the latest queries.
            popular_refresh_ms: 0,
            ..TrackerConfig::default()
        };
        let (tracker_endpoint, tracker_service) = start_tracker(
            &tracker_identity,
            "127.0.0.1:0".parse().unwrap(),
            tracker_config.clone(),
            origin.running.node_id,
        );
        let tracker_addr = tracker_endpoint.local_addr().unwrap();
        Self {
            origin,
            tracker_identity,
            tracker_addr,
            tracker_endpoint: Some(tracker_endpoint),
            tracker_config,
            tracker_service: Some(tracker_service),
        }
    }

    fn tracker(&self) -> NodeAddr {
        NodeAddr {
            node: self.tracker_identity.node_id(),
            addr: self.tracker_addr,
        }
    }

    /// An account as an operator makes it (role and region are the operator's to give).
    async fn account(&self, username: &str, region: &str, role: &str) -> String {
        let role = match role {
            "artist" => Role::Artist,
            "listener" => Role::Listener,
            other => panic!("no test role {other}"),
        };
        self.origin
            .create_account(username, region, role, Tier::Free)
            .await
            .unwrap()
    }

    async fn super_node_account(&self, username: &str, region: &str) {
        let account = origin::accounts::new_account(
            username,
            PASSWORD,
            region,
            Role::SuperNode,
            Tier::Premium,
        )
        .unwrap();
        assert!(
            self.origin
                .running
                .store()
                .accounts()
                .create_account(&account)
                .await
                .unwrap()
        );
    }

    async fn upload(&self, artist: &str, seed: u64, seconds: f64, markets: &[&str]) -> String {
        let file = origin::synth::wav(seed, seconds, 44_100, 2);
        let metadata =
            json!({"title": format!("Track {seed}"), "artist": "Synth", "markets": markets});
        let (status, track) = self
            .origin
            .upload(artist, file, &format!("track-{seed}.wav"), metadata)
            .await;
        assert!(status.is_success(), "{status}: {track}");
        track["id"].as_str().unwrap().to_string()
    }

    async fn play(&self, listener: &str, track: &str, node: &Identity) -> Grant {
        let grant = post(
            &self.origin.http,
            format!("{}/v1/tracks/{track}/play", self.origin.base),
            Some(listener),
            json!({"node_id": node.node_id().to_hex()}),
        )
        .await;
        let signed: SignedManifest =
            codec::decode(&hex::decode(grant["manifest"].as_str().unwrap()).unwrap()).unwrap();
        let manifest = signed.verify(&self.origin.running.node_id).unwrap();
        let key: [u8; 32] = hex::decode(grant["content_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let license =
            LicenseToken::from_bytes(&hex::decode(grant["license"].as_str().unwrap()).unwrap())
                .unwrap();
        Grant {
            manifest,
            key: ContentKey(key),
            license,
        }
    }

    async fn super_node(&self, username: &str, cache_bytes: u64) -> (SuperNode, tempfile::TempDir) {
        self.super_node_with(username, cache_bytes, Some(self.tracker()), None)
            .await
    }

    async fn super_node_with(
        &self,
        username: &str,
        cache_bytes: u64,
        tracker: Option<NodeAddr>,
        discovery: Option<DiscoveryConfig>,
    ) -> (SuperNode, tempfile::TempDir) {
        self.super_node_configured(username, cache_bytes, tracker, discovery, |_| {})
            .await
    }

    async fn super_node_configured(
        &self,
        username: &str,
        cache_bytes: u64,
        tracker: Option<NodeAddr>,
        discovery: Option<DiscoveryConfig>,
        configure: impl FnOnce(&mut SuperNodeConfig),
    ) -> (SuperNode, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SuperNodeConfig::new(
            dir.path().to_path_buf(),
            self.origin.base.clone(),
            username.to_string(),
            PASSWORD.to_string(),
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.cache_bytes = cache_bytes;
        config.trackers = tracker.into_iter().collect();
        config.discovery = discovery;
        // The test drives fill rounds itself.
        config.background_fill = false;
        configure(&mut config);
        let node = SuperNode::start(config).await.unwrap();
        (node, dir)
    }

    /// A token signed with the origin's own key, for the cases the origin would never issue.
    fn forge_with_origin_key(&self, claims: LicenseClaims) -> LicenseToken {
        let key = server::origin_identity(self.origin.data_dir()).unwrap();
        LicenseToken::issue(&key, &claims).unwrap()
    }
}

struct Grant {
    manifest: Manifest,
    key: ContentKey,
    license: LicenseToken,
}

async fn ask_tracker(endpoint: &Endpoint, tracker: NodeAddr, request: &Request) -> Response {
    let peer = endpoint.connect(tracker.node, tracker.addr).await.unwrap();
    peer.request_one(request).await.unwrap()
}

async fn peers_of(
    endpoint: &Endpoint,
    tracker: NodeAddr,
    rendition: RenditionId,
    license: &LicenseToken,
) -> PeerList {
    let request = Request::PeerQuery(PeerQuery {
        rendition,
        want: 10,
        license: license.clone(),
    });
    match ask_tracker(endpoint, tracker, &request).await {
        Response::PeerList(list) => list,
        other => panic!("{other:?}"),
    }
}

async fn wait_listed(
    endpoint: &Endpoint,
    tracker: NodeAddr,
    rendition: RenditionId,
    license: &LicenseToken,
    node: NodeId,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = peers_of(endpoint, tracker, rendition, license).await;
        if list.peers.iter().any(|peer| peer.node == node) {
            return;
        }
        assert!(Instant::now() < deadline, "{node} never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn playing<'a>(
    net: &'a Net,
    rendition: &'a RenditionId,
    license: &'a LicenseToken,
) -> FetchRequest<'a> {
    FetchRequest {
        origin: &net.origin.running.node_id,
        rendition,
        license,
        priority: Priority::Playing,
        bytes_max: u64::MAX,
    }
}

fn decoded_ms(grant: &Grant, chunks: &[Bytes]) -> u64 {
    let cipher = ChunkCipher::new(
        &grant.key,
        SealLabel {
            track: grant.manifest.body().track,
            quality: grant.manifest.body().quality,
        },
    );
    let mut plain = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let id = grant.manifest.chunk_id(index as u32).unwrap();
        plain.extend(cipher.open(index as u32, id, chunk).unwrap());
    }
    let (frames, rate) = origin::ingest::decoded_frames(&plain).unwrap();
    frames * 1000 / u64::from(rate)
}

fn remote_code(result: Result<Vec<transport::chunks::RangeItem>, TransportError>) -> ErrorCode {
    match result {
        Err(TransportError::Remote(error)) => error.code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A peer that serves chunks that do not match their ids (it skips the pre-send check by
/// claiming its source is verified).
#[derive(Debug)]
struct Corrupting {
    manifest: SignedManifest,
    chunks: Vec<ChunkId>,
}

impl ChunkSource for Corrupting {
    async fn manifest(&self, _: &RenditionId) -> Option<SignedManifest> {
        Some(self.manifest.clone())
    }
    async fn chunk_count(&self, _: &RenditionId) -> Option<u32> {
        Some(self.chunks.len() as u32)
    }
    async fn chunk(&self, _: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        Some((self.chunks[index as usize], Bytes::from(vec![0xEE; 1024])))
    }
    fn verified_on_load(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_nodes_fill_from_each_other_and_serve_licensed_listeners() {
    let mut net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener_se", "SE", "listener").await;
    let listener_de = net.account("listener_de", "DE", "listener").await;
    let everywhere = net.upload(&artist, 1, 20.0, &[]).await;
    let de_only = net.upload(&artist, 2, 6.0, &["DE"]).await;
    net.super_node_account("sn_a", "SE").await;
    net.super_node_account("sn_b", "SE").await;
    let (a, _a_dir) = net.super_node("sn_a", 64 << 20).await;
    let (b, _b_dir) = net.super_node("sn_b", 64 << 20).await;

    // A listener plays: the tracker has no holders yet, and counts the demand.
    let client = Identity::from_secret_bytes(&[0x31; 32]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let grant = net.play(&listener, &everywhere, &client).await;
    let rendition = grant.manifest.id();
    assert!(
        peers_of(&endpoint, net.tracker(), rendition, &grant.license)
            .await
            .peers
            .is_empty()
    );
    // DE listeners ask for the DE-only track: popular, but not licensed in the SE nodes' region.
    let client_de = Identity::from_secret_bytes(&[0x32; 32]);
    let endpoint_de = Endpoint::bind(
        &client_de,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    let grant_de = net.play(&listener_de, &de_only, &client_de).await;
    for _ in 0..3 {
        peers_of(
            &endpoint_de,
            net.tracker(),
            grant_de.manifest.id(),
            &grant_de.license,
        )
        .await;
    }

    // A learns popularity and fills from the origin (nobody else holds it yet); the DE-only
    // track is refused to it by the origin's region rule.
    assert_eq!(a.fill_round().await, 1);
    assert!(a.cache().holds(&rendition));
    assert!(!a.cache().holds(&grant_de.manifest.id()));
    assert!(a.stats().fill_failures.load(Ordering::Relaxed) >= 1);
    assert!(a.stats().bytes_from_origin.load(Ordering::Relaxed) > 0);
    assert_eq!(a.stats().bytes_from_peers.load(Ordering::Relaxed), 0);
    assert!(a.cache().with_policy(|policy| policy.is_pinned(&rendition)));
    // The fill wakes the announce loop, which tells the tracker.
    wait_listed(
        &endpoint,
        net.tracker(),
        rendition,
        &grant.license,
        a.node_id,
    )
    .await;

    // B fills from A, not from the origin.
    assert_eq!(b.fill_round().await, 1);
    assert!(b.stats().bytes_from_peers.load(Ordering::Relaxed) > 0);
    assert_eq!(b.stats().bytes_from_origin.load(Ordering::Relaxed), 0);
    wait_listed(
        &endpoint,
        net.tracker(),
        rendition,
        &grant.license,
        b.node_id,
    )
    .await;

    // The listener finds both super-nodes and fetches the whole track from them.
    let list = peers_of(&endpoint, net.tracker(), rendition, &grant.license).await;
    let found: Vec<NodeId> = list.peers.iter().map(|peer| peer.node).collect();
    assert!(
        found.contains(&a.node_id) && found.contains(&b.node_id),
        "{found:?}"
    );
    assert!(
        list.peers
            .iter()
            .all(|peer| peer.role == NodeRole::SuperNode)
    );
    let sources: Vec<Source> = list
        .peers
        .iter()
        .map(|peer| Source {
            node: peer.node,
            addr: peer.addrs[0],
        })
        .collect();
    let bans = BanList::default();
    let fetched = fetch_rendition(
        &endpoint,
        &playing(&net, &rendition, &grant.license),
        &sources,
        &bans,
    )
    .await
    .unwrap();
    assert!(fetched.failures.is_empty(), "{:?}", fetched.failures);
    assert!(!fetched.bytes_from.contains_key(&net.origin.running.node_id));
    let ms = decoded_ms(&grant, &fetched.chunks);
    assert!((ms as i64 - 20_000).abs() < 100, "decoded {ms} ms");

    // A peer that sends chunks failing their hash is banned after its first bad chunk, and
    // the fetch completes from the next source.
    let evil_identity = Identity::from_secret_bytes(&[0x66; 32]);
    let evil = Endpoint::bind(
        &evil_identity,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    let corrupting = Corrupting {
        manifest: grant.manifest.signed().clone(),
        chunks: grant.manifest.body().chunks.clone(),
    };
    let service = ChunkService::new(corrupting, net.origin.running.node_id, system_clock());
    tokio::spawn(transport::serve(evil.clone(), Arc::new(service)));
    let evil_source = Source {
        node: evil_identity.node_id(),
        addr: evil.local_addr().unwrap(),
    };
    let fetched = fetch_rendition(
        &endpoint,
        &playing(&net, &rendition, &grant.license),
        &[evil_source, sources[0]],
        &bans,
    )
    .await
    .unwrap();
    assert!(bans.is_banned(&evil_identity.node_id()));
    assert!(
        fetched
            .failures
            .contains(&(evil_identity.node_id(), ReportReason::BadChunk))
    );
    assert!(!fetched.bytes_from.contains_key(&evil_identity.node_id()));
    assert_eq!(fetched.chunks.len(), grant.manifest.chunk_count() as usize);

    // A peer that announces what it does not hold: it answers NotFound, the client reports
    // it, and the tracker drops the entry.
    let liar_identity = Identity::from_secret_bytes(&[0x67; 32]);
    let liar = Endpoint::bind(
        &liar_identity,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    let empty = transport::chunks::MemoryChunkSource::new();
    let liar_service = ChunkService::new(empty, net.origin.running.node_id, system_clock());
    tokio::spawn(transport::serve(liar.clone(), Arc::new(liar_service)));
    let liar_listener = net.account("liar", "SE", "listener").await;
    let liar_grant = net.play(&liar_listener, &everywhere, &liar_identity).await;
    let ack = ask_tracker(
        &liar,
        net.tracker(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: "SE".parse().unwrap(),
            role: NodeRole::Client,
            addrs: vec![liar.local_addr().unwrap()],
            renditions: vec![rendition],
            upload_spare_kbps: 100_000,
            proofs: Vec::new(),
            credential: liar_grant.license.clone(),
        }),
    )
    .await;
    assert!(matches!(ack, Response::AnnounceAck { .. }), "{ack:?}");
    let listed = peers_of(&endpoint, net.tracker(), rendition, &grant.license).await;
    assert!(
        listed
            .peers
            .iter()
            .any(|peer| peer.node == liar_identity.node_id())
    );
    let fetched = fetch_rendition(
        &endpoint,
        &playing(&net, &rendition, &grant.license),
        &[
            Source {
                node: liar_identity.node_id(),
                addr: liar.local_addr().unwrap(),
            },
            sources[0],
        ],
        &bans,
    )
    .await
    .unwrap();
    let (who, reason) = fetched.failures[0];
    assert_eq!(
        (who, reason),
        (liar_identity.node_id(), ReportReason::Missing)
    );
    let reported = ask_tracker(
        &endpoint,
        net.tracker(),
        &Request::Report(PeerReport {
            peer: who,
            rendition,
            reason,
            license: grant.license.clone(),
        }),
    )
    .await;
    assert_eq!(reported, Response::Reported);
    let listed = peers_of(&endpoint, net.tracker(), rendition, &grant.license).await;
    assert!(
        listed
            .peers
            .iter()
            .all(|peer| peer.node != liar_identity.node_id())
    );

    // The licensing and region matrix at a serving super-node (A, region SE).
    let peer_a = endpoint.connect(a.node_id, a.quic_addr).await.unwrap();
    let manifest = &grant.manifest;
    let now = UnixMillis(system_clock()().0);
    let claims =
        |node: NodeId, region: &str, markets: &[&str], expires_at: UnixMillis| LicenseClaims {
            version: LICENSE_VERSION,
            issuer: net.origin.running.node_id,
            account: AccountId([9; 16]),
            node,
            region: region.parse::<Region>().unwrap(),
            scope: LicenseScope::Play {
                renditions: vec![rendition],
            },
            markets: markets.iter().map(|m| m.parse().unwrap()).collect(),
            issued_at: UnixMillis(now.0 - 10_000),
            expires_at,
            offline: false,
        };
    let later = now.plus_ms(600_000);
    let fetch = |license: LicenseToken| {
        let peer = peer_a.clone();
        let manifest = manifest.clone();
        async move { fetch_range(&peer, &manifest, 0, 2, Priority::Playing, &license).await }
    };
    // Valid.
    assert_eq!(fetch(grant.license.clone()).await.unwrap().len(), 2);
    // Expired.
    let expired =
        net.forge_with_origin_key(claims(client.node_id(), "SE", &[], UnixMillis(now.0 - 1)));
    assert_eq!(remote_code(fetch(expired).await), ErrorCode::LicenseExpired);
    // Forged (signed by another key).
    let mut forged_claims = claims(client.node_id(), "SE", &[], later);
    forged_claims.issuer = client.node_id();
    let forged = LicenseToken::issue(&client, &forged_claims).unwrap();
    assert_eq!(remote_code(fetch(forged).await), ErrorCode::LicenseForged);
    // Bound to another node.
    let other = net.forge_with_origin_key(claims(NodeId([5; 32]), "SE", &[], later));
    assert_eq!(remote_code(fetch(other).await), ErrorCode::LicenseWrongNode);
    // Wrong region: the requester's region is outside the track's markets.
    let wrong_region =
        net.forge_with_origin_key(claims(client.node_id(), "US", &["SE", "DE"], later));
    assert_eq!(
        remote_code(fetch(wrong_region).await),
        ErrorCode::NotInRegion
    );
    // Out-of-market for the serving node: licensed in DE, this node is in SE.
    let out_of_market = net.forge_with_origin_key(claims(client.node_id(), "DE", &["DE"], later));
    assert_eq!(
        remote_code(fetch(out_of_market).await),
        ErrorCode::NotInRegion
    );

    // Tracker restart: a new tracker process on the same address starts empty, and the
    // super-nodes' periodic announces rebuild its state.
    let old = net.tracker_endpoint.take().unwrap();
    old.close();
    old.wait_idle().await;
    drop(old);
    let (restarted, _) = start_tracker(
        &net.tracker_identity,
        net.tracker_addr,
        net.tracker_config.clone(),
        net.origin.running.node_id,
    );
    let fresh = Identity::from_secret_bytes(&[0x35; 32]);
    let fresh_endpoint =
        Endpoint::bind(&fresh, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let fresh_grant = net.play(&listener, &everywhere, &fresh).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = peers_of(
            &fresh_endpoint,
            net.tracker(),
            rendition,
            &fresh_grant.license,
        )
        .await;
        let nodes: Vec<NodeId> = list.peers.iter().map(|peer| peer.node).collect();
        if nodes.contains(&a.node_id) && nodes.contains(&b.node_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "announces did not rebuild the tracker: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The restarted tracker answered the super-nodes' refreshes `set_unknown`, so they
    // announced in full; from then on their unchanged sets are refreshed by digest again.
    let refreshes = || a.stats().refreshes.load(Ordering::Relaxed);
    let before = refreshes();
    let deadline = Instant::now() + Duration::from_secs(20);
    while refreshes() == before {
        assert!(Instant::now() < deadline, "no refresh after the restart");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    restarted.close();
    a.shutdown().await;
    b.shutdown().await;
}

fn loopback_discovery(bootstrap: Vec<discovery::Addr>) -> DiscoveryConfig {
    DiscoveryConfig {
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap,
        mdns: false,
        autonat_global_only: false,
        query_timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tracker_listeners_find_super_nodes_through_the_dht() {
    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 3, 8.0, &[]).await;
    net.super_node_account("sn_dht", "SE").await;
    // No tracker anywhere: the origin names none and the node is given none.
    let (node, _dir) = net
        .super_node_with("sn_dht", 64 << 20, None, Some(loopback_discovery(vec![])))
        .await;
    let node_discovery = node.discovery().unwrap();
    let mut bootstrap = Vec::new();
    while bootstrap.is_empty() {
        bootstrap = node_discovery.listen_addrs().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = Identity::from_secret_bytes(&[0x41; 32]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let client_discovery = Discovery::start(&client, loopback_discovery(bootstrap))
        .await
        .unwrap();
    let grant = net.play(&listener, &track, &client).await;
    let rendition = grant.manifest.id();

    // Two requests for a rendition the node lacks make it fetch the rendition.
    let peer = endpoint
        .connect(node.node_id, node.quic_addr)
        .await
        .unwrap();
    for _ in 0..2 {
        let result = fetch_range(
            &peer,
            &grant.manifest,
            0,
            1,
            Priority::Playing,
            &grant.license,
        )
        .await;
        assert_eq!(remote_code(result), ErrorCode::NotFound);
    }
    assert_eq!(node.fill_round().await, 1);
    assert!(
        !node
            .cache()
            .with_policy(|policy| policy.is_pinned(&rendition))
    );

    // The node provides it in the DHT; the listener finds it there and plays from it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let _ = node.publish_now().await;
        let found = client_discovery.find_peers(&rendition, 10).await.unwrap();
        if !found.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the DHT never listed the super-node"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(found[0].node, node.node_id);
    let source = Source {
        node: found[0].node,
        addr: found[0].addrs[0],
    };
    let fetched = fetch_rendition(
        &endpoint,
        &playing(&net, &rendition, &grant.license),
        &[source],
        &BanList::default(),
    )
    .await
    .unwrap();
    let ms = decoded_ms(&grant, &fetched.chunks);
    assert!((ms as i64 - 8_000).abs() < 100, "decoded {ms} ms");

    // The player asks the DHT when there is no tracker, and plays from the super-node.
    let player_client = Identity::from_secret_bytes(&[0x42; 32]);
    let player_endpoint = Endpoint::bind(
        &player_client,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();
    let player_grant = api
        .play(&listener, &track, &player_client.node_id(), None, false)
        .await
        .unwrap();
    assert!(player_grant.tracker.is_none());
    // This track is only three chunks: let the origin carry just the first, so the rest waits
    // for the DHT's answer.
    let options = client_lib::player::PlayOptions {
        discovery: Some(client_discovery.clone()),
        scheduler: client_lib::scheduler::SchedulerConfig {
            opening_chunks: 1,
            search_lead_ms: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(async move {
        client_lib::player::play(
            &player_endpoint,
            &player_grant,
            Default::default(),
            options,
            out,
        )
        .await
    });
    while outputs.recv().await.is_some() {}
    let stats = task.await.unwrap().unwrap();
    assert!(stats.bytes_super_nodes > 0, "{stats:?}");
    assert_eq!(stats.stutters, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_super_node_pulls_a_rendition_through_on_its_second_miss() {
    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 6, 8.0, &[]).await;
    net.super_node_account("sn_pull", "SE").await;
    let (node, _dir) = net
        .super_node_configured("sn_pull", 64 << 20, Some(net.tracker()), None, |config| {
            config.background_fill = true;
            // One popularity round at start (nothing is popular yet), the next in an
            // hour: only the misses can start this fill.
            config.refresh = Duration::from_secs(3_600);
        })
        .await;
    let client = Identity::from_secret_bytes(&[0x51; 32]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let grant = net.play(&listener, &track, &client).await;
    let rendition = grant.manifest.id();
    let peer = endpoint
        .connect(node.node_id, node.quic_addr)
        .await
        .unwrap();
    let ask = || {
        fetch_range(
            &peer,
            &grant.manifest,
            0,
            1,
            Priority::Playing,
            &grant.license,
        )
    };
    assert_eq!(remote_code(ask().await), ErrorCode::NotFound);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.stats().fills.load(Ordering::Relaxed), 0, "one miss");
    assert_eq!(remote_code(ask().await), ErrorCode::NotFound);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.cache().holds(&rendition) {
        assert!(
            Instant::now() < deadline,
            "the second miss never started a fill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !node
            .cache()
            .with_policy(|policy| policy.is_pinned(&rendition)),
        "a pull-through fill is not pinned"
    );
    let chunks = ask().await.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(node.stats().fills.load(Ordering::Relaxed), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_plays_mostly_from_super_nodes() {
    use client_lib::player::{self, Output, PlayOptions};

    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 5, 30.0, &[]).await;
    net.super_node_account("sn_play", "SE").await;
    let (node, _dir) = net.super_node("sn_play", 64 << 20).await;

    // Make the track popular, let the super-node cache and announce it.
    let warm = Identity::from_secret_bytes(&[0x61; 32]);
    let warm_endpoint =
        Endpoint::bind(&warm, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let warm_grant = net.play(&listener, &track, &warm).await;
    peers_of(
        &warm_endpoint,
        net.tracker(),
        warm_grant.manifest.id(),
        &warm_grant.license,
    )
    .await;
    assert_eq!(node.fill_round().await, 1);
    wait_listed(
        &warm_endpoint,
        net.tracker(),
        warm_grant.manifest.id(),
        &warm_grant.license,
        node.node_id,
    )
    .await;

    // A listener plays through the real driver; the grant names the tracker.
    let client = Identity::from_secret_bytes(&[0x62; 32]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();
    let mut grant = api
        .play(&listener, &track, &client.node_id(), None, false)
        .await
        .unwrap();
    grant.tracker = Some(net.tracker());
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let playback = {
        let (endpoint, grant) = (endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            player::play(
                &endpoint,
                &grant,
                Default::default(),
                PlayOptions::default(),
                out,
            )
            .await
        })
    };
    let mut audio = Vec::new();
    let mut started = false;
    while let Some(output) = outputs.recv().await {
        match output {
            Output::Audio(piece) => audio.extend_from_slice(&piece),
            Output::Event(client_lib::scheduler::PlayerEvent::Started { .. }) => started = true,
            _ => {}
        }
    }
    let stats = playback.await.unwrap().unwrap();
    assert!(started);
    assert_eq!(stats.stutters, 0);
    let (frames, rate) = origin::ingest::decoded_frames(&audio).unwrap();
    assert!((frames * 1000 / u64::from(rate)) as i64 - 30_000 < 100);
    // The opening (and what the origin may fetch while the peer lookup is out) came from the
    // origin, the rest from the super-node. This synthetic track is 11 chunks; on a 4-minute
    // track the same three chunks are ~1% of the bytes.
    let chunk = u64::from(grant.manifest.body().chunk_bytes) + 16;
    assert!(stats.bytes_origin > 0 && stats.bytes_origin <= 3 * chunk);
    assert!(
        stats.bytes_super_nodes > 2 * stats.bytes_origin,
        "origin {} super-nodes {}",
        stats.bytes_origin,
        stats.bytes_super_nodes
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_share_their_cache_with_licensed_peers() {
    use client_lib::cache::ClientCache;
    use client_lib::player::{self, PlayOptions};
    use client_lib::serve::{ServeConfig, Serving, own_claims};

    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 6, 5.0, &[]).await;
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();

    // Listener A plays the track; its cache fills.
    let a = Identity::from_secret_bytes(&[0x74; 32]);
    let a_endpoint = Endpoint::bind(&a, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ClientCache::open(cache_dir.path(), 64 << 20).unwrap());
    let grant = api
        .play(&listener, &track, &a.node_id(), None, false)
        .await
        .unwrap();
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let options = PlayOptions {
        cache: Some(cache.clone()),
        ..PlayOptions::default()
    };
    let task = {
        let (endpoint, grant) = (a_endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            player::play(&endpoint, &grant, Default::default(), options, out).await
        })
    };
    while outputs.recv().await.is_some() {}
    task.await.unwrap().unwrap();
    assert_eq!(cache.complete_renditions(10), vec![grant.manifest.id()]);

    // On a metered network it does not share.
    let region = own_claims(&grant.license).unwrap().region;
    let metered = ServeConfig {
        metered: true,
        ..ServeConfig::default()
    };
    assert!(
        Serving::start(
            &a_endpoint,
            cache.clone(),
            net.origin.running.node_id,
            region,
            metered
        )
        .is_none()
    );
    // Otherwise it serves and announces. Its credential is the license of another track it
    // is about to play: the cached rendition goes with the license A played it under, kept
    // in the cache, as proof.
    let serving = Serving::start(
        &a_endpoint,
        cache.clone(),
        net.origin.running.node_id,
        region,
        ServeConfig::default(),
    )
    .unwrap();
    let other = net.upload(&artist, 4, 3.0, &[]).await;
    let other_grant = net.play(&listener, &other, &a).await;
    assert!(
        !own_claims(&other_grant.license)
            .unwrap()
            .permits(&grant.manifest.id())
    );
    assert_eq!(
        cache.license(&grant.manifest.id()),
        Some(grant.license.clone())
    );
    let trackers = Trackers::new(vec![net.tracker()]);
    let announce = || {
        serving.announce(
            &a_endpoint,
            &trackers,
            &other_grant.license,
            &cache,
            a_endpoint.local_addr().unwrap(),
        )
    };
    announce().await.unwrap();
    // The same cache again: the tracker accepted that set whole, so it is refreshed by its
    // digest rather than sent again.
    let counts = || net.tracker_service.as_ref().unwrap().snapshot().0;
    assert_eq!((counts().announces, counts().refreshes), (1, 0));
    announce().await.unwrap();
    assert_eq!((counts().announces, counts().refreshes), (1, 1));
    // Once the shard no longer holds the set (here its record expired), the refresh is
    // answered `set_unknown` and the set goes in full; then it is refreshed again.
    tokio::time::sleep(Duration::from_millis(
        net.tracker_config.announce_ttl_ms + 500,
    ))
    .await;
    announce().await.unwrap();
    let after = counts();
    assert_eq!(
        (after.announces, after.refreshes, after.refreshes_unknown),
        (2, 1, 1)
    );
    announce().await.unwrap();
    assert_eq!((counts().announces, counts().refreshes), (2, 2));

    // A node without a license for the rendition cannot announce it: the tracker leaves it
    // out and says so.
    let c = Identity::from_secret_bytes(&[0x75; 32]);
    let c_endpoint = Endpoint::bind(&c, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let c_grant = net.play(&listener, &other, &c).await;
    let ack = ask_tracker(
        &c_endpoint,
        net.tracker(),
        &Request::Announce(Announce {
            partial: Vec::new(),
            region: "SE".parse().unwrap(),
            role: NodeRole::Client,
            addrs: vec![c_endpoint.local_addr().unwrap()],
            renditions: vec![grant.manifest.id(), c_grant.manifest.id()],
            upload_spare_kbps: 1_000,
            credential: c_grant.license.clone(),
            // A's proof is bound to A: it proves nothing for C.
            proofs: vec![grant.license.clone()],
        }),
    )
    .await;
    match ack {
        Response::AnnounceAck { unproven, .. } => {
            assert_eq!(unproven, vec![grant.manifest.id()]);
        }
        other => panic!("{other:?}"),
    }

    // Listener B finds A through the tracker and plays from it.
    let b = Identity::from_secret_bytes(&[0x72; 32]);
    let b_endpoint = Endpoint::bind(&b, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let b_grant = net.play(&listener, &track, &b).await;
    let list = peers_of(
        &b_endpoint,
        net.tracker(),
        b_grant.manifest.id(),
        &b_grant.license,
    )
    .await;
    assert_eq!(list.peers.len(), 1);
    assert_eq!(
        (list.peers[0].node, list.peers[0].role),
        (a.node_id(), NodeRole::Client)
    );
    let fetched = fetch_rendition(
        &b_endpoint,
        &playing(&net, &b_grant.manifest.id(), &b_grant.license),
        &[Source {
            node: a.node_id(),
            addr: list.peers[0].addrs[0],
        }],
        &BanList::default(),
    )
    .await
    .unwrap();
    let ms = decoded_ms(&b_grant, &fetched.chunks);
    assert!((ms as i64 - 5_000).abs() < 100, "decoded {ms} ms");
    // A license for another node is refused by A like by any serving node.
    let stranger = Identity::from_secret_bytes(&[0x73; 32]);
    let stranger_endpoint =
        Endpoint::bind(&stranger, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let peer = stranger_endpoint
        .connect(a.node_id(), a_endpoint.local_addr().unwrap())
        .await
        .unwrap();
    let result = fetch_range(
        &peer,
        &b_grant.manifest,
        0,
        1,
        Priority::Playing,
        &b_grant.license,
    )
    .await;
    assert_eq!(remote_code(result), ErrorCode::LicenseWrongNode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_still_downloading_a_track_serves_the_part_it_holds() {
    use client_lib::cache::ClientCache;
    use client_lib::player::{self, Output, PlayOptions};
    use client_lib::serve::{ServeConfig, Serving, own_claims};

    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 8, 30.0, &[]).await;
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();

    // Listener A has the first half of the track (its download is under way): manifest,
    // license and chunks from the origin, as its player stores them.
    let a = Identity::from_secret_bytes(&[0x76; 32]);
    let a_endpoint = Endpoint::bind(&a, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ClientCache::open(cache_dir.path(), 64 << 20).unwrap());
    let grant = api
        .play(&listener, &track, &a.node_id(), None, false)
        .await
        .unwrap();
    let rendition = grant.manifest.id();
    let chunks = grant.manifest.chunk_count();
    let half = chunks / 2;
    assert!(half >= 4, "{chunks} chunks");
    let origin = Source {
        node: grant.origin.node,
        addr: grant.origin.addr,
    };
    let fetched = fetch_rendition(
        &a_endpoint,
        &playing(&net, &rendition, &grant.license),
        &[origin],
        &BanList::default(),
    )
    .await
    .unwrap();
    cache.put_manifest(grant.manifest.signed()).unwrap();
    cache.put_license(&rendition, &grant.license).unwrap();
    for index in 0..half {
        let id = grant.manifest.chunk_id(index).unwrap();
        cache.put(id, &fetched.chunks[index as usize]).unwrap();
    }
    let holdings = cache.holdings(10, 10);
    assert_eq!(holdings.whole, Vec::<RenditionId>::new());
    assert_eq!(holdings.partial, vec![(rendition, half)]);

    // It serves and announces itself as a partial holder.
    let region = own_claims(&grant.license).unwrap().region;
    let serving = Serving::start(
        &a_endpoint,
        cache.clone(),
        net.origin.running.node_id,
        region,
        ServeConfig::default(),
    )
    .unwrap();
    serving
        .announce(
            &a_endpoint,
            &Trackers::new(vec![net.tracker()]),
            &grant.license,
            &cache,
            a_endpoint.local_addr().unwrap(),
        )
        .await
        .unwrap();

    // B finds A with what it holds, and A answers a chunk past its prefix with that prefix.
    let b = Identity::from_secret_bytes(&[0x77; 32]);
    let b_endpoint = Endpoint::bind(&b, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let mut b_grant = api
        .play(&listener, &track, &b.node_id(), None, false)
        .await
        .unwrap();
    b_grant.tracker = Some(net.tracker());
    let list = peers_of(&b_endpoint, net.tracker(), rendition, &b_grant.license).await;
    assert_eq!(list.peers.len(), 1);
    assert_eq!(list.peers[0].node, a.node_id());
    assert_eq!(
        list.peers[0].holding.map(|holding| holding.held),
        Some(half)
    );
    let peer = b_endpoint
        .connect(a.node_id(), a_endpoint.local_addr().unwrap())
        .await
        .unwrap();
    let items = fetch_range(
        &peer,
        &b_grant.manifest,
        half - 1,
        2,
        Priority::Playing,
        &b_grant.license,
    )
    .await
    .unwrap();
    assert!(
        matches!(items[0], transport::chunks::RangeItem::Chunk { index, .. } if index == half - 1)
    );
    assert_eq!(
        items[1],
        transport::chunks::RangeItem::Missing {
            index: half,
            held: half
        }
    );

    // B plays the track: A carries chunks of the part it holds, the origin the rest (that a
    // partial holder's misses are not reported is the scheduler's, tested in `policy`).
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let playback = {
        let (endpoint, grant) = (b_endpoint.clone(), b_grant.clone());
        tokio::spawn(async move {
            player::play(
                &endpoint,
                &grant,
                Default::default(),
                PlayOptions::default(),
                out,
            )
            .await
        })
    };
    let mut sources = Vec::new();
    while let Some(output) = outputs.recv().await {
        if let Output::Sources(list) = output {
            sources = list;
        }
    }
    let stats = playback.await.unwrap().unwrap();
    assert_eq!(stats.stutters, 0);
    let chunk = u64::from(b_grant.manifest.body().chunk_bytes) + 16;
    let from_a = sources
        .iter()
        .find(|(node, ..)| *node == a.node_id())
        .map_or(0, |(_, _, bytes)| *bytes);
    assert!(from_a > 0, "A delivered nothing: {sources:?}");
    assert!(
        from_a <= u64::from(half) * chunk,
        "A delivered past its prefix"
    );
    assert_eq!(stats.bytes_peers, from_a);
    drop(serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playback_pauses_resumes_and_stops_on_command() {
    use client_lib::player::{Control, Output, PlayOptions, play_with_controls};

    let net = Net::start().await;
    let artist = net.account("artist", "SE", "artist").await;
    let listener = net.account("listener", "SE", "listener").await;
    let track = net.upload(&artist, 8, 3.0, &[]).await;
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();
    let client = Identity::from_secret_bytes(&[0x75; 32]);
    let endpoint =
        Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let grant = api
        .play(&listener, &track, &client.node_id(), None, false)
        .await
        .unwrap();

    // Paused for 1.5 s right after it starts: the 3 s track takes at least 4.5 s.
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let (control, controls) = tokio::sync::mpsc::channel(4);
    let began = Instant::now();
    let task = {
        let (endpoint, grant) = (endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            play_with_controls(
                &endpoint,
                &grant,
                Default::default(),
                PlayOptions::default(),
                out,
                controls,
            )
            .await
        })
    };
    while let Some(output) = outputs.recv().await {
        if let Output::Event(client_lib::scheduler::PlayerEvent::Started { .. }) = output {
            control.send(Control::Pause).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            control.send(Control::Resume).await.unwrap();
        }
    }
    let stats = task.await.unwrap().unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(4_400),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(stats.stutters, 0, "a pause is not a stutter");

    // Stop ends it at once.
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let (control, controls) = tokio::sync::mpsc::channel(4);
    let began = Instant::now();
    let task = {
        let (endpoint, grant) = (endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            play_with_controls(
                &endpoint,
                &grant,
                Default::default(),
                PlayOptions::default(),
                out,
                controls,
            )
            .await
        })
    };
    control.send(Control::Stop).await.unwrap();
    while outputs.recv().await.is_some() {}
    task.await.unwrap().unwrap();
    assert!(began.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_shards_split_renditions_and_a_lost_shard_fails_no_play() {
    use client_lib::player::{self, Output, PlayOptions};

    // Two tracker shards, bound first so the origin can name them.
    let shard_ids = [
        Identity::from_secret_bytes(&[0x81; 32]),
        Identity::from_secret_bytes(&[0x82; 32]),
    ];
    let endpoints: Vec<Endpoint> = shard_ids
        .iter()
        .map(|id| Endpoint::bind(id, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap())
        .collect();
    let shards: Vec<NodeAddr> = shard_ids
        .iter()
        .zip(&endpoints)
        .map(|(id, endpoint)| NodeAddr {
            node: id.node_id(),
            addr: endpoint.local_addr().unwrap(),
        })
        .collect();
    let origin = LocalOrigin::start_with(|config| {
        config.rate_limits = origin::ratelimit::RateLimits::off();
        config.upload_bytes_max = OriginConfig::default().upload_bytes_max;
        config.trackers = shards.iter().map(ToString::to_string).collect();
    })
    .await
    .unwrap();
    let tracker_config = TrackerConfig {
        announce_ttl_ms: 6_000,
        popular_refresh_ms: 0,
        ..TrackerConfig::default()
    };
    for endpoint in &endpoints {
        let service = Arc::new(TrackerService::new(
            tracker_config.clone(),
            origin.running.node_id,
            system_clock(),
        ));
        tokio::spawn(transport::serve(endpoint.clone(), service));
    }
    let net = Net {
        origin,
        tracker_identity: Identity::from_secret_bytes(&[0x81; 32]),
        tracker_addr: shards[0].addr,
        tracker_endpoint: None,
        tracker_config,
        tracker_service: None,
    };
    let artist = net.account("shard_artist", "SE", "artist").await;
    let listener = net.account("shard_listener", "SE", "listener").await;
    net.super_node_account("sn_shards", "SE").await;
    // The super-node learns the shards from the origin.
    let (node, _dir) = net.super_node_with("sn_shards", 64 << 20, None, None).await;
    assert_eq!(node.trackers.all().len(), 2);
    let trackers = Trackers::new(shards.clone());

    // Each rendition has one shard, the one every party computes.
    let warm = Identity::from_secret_bytes(&[0x83; 32]);
    let warm_endpoint =
        Endpoint::bind(&warm, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
    let api = api::client::OriginApi::new(&net.origin.base).unwrap();
    let mut tracks = Vec::new();
    // Track ids are random, so which shard a rendition lands on is too: upload until both
    // shards hold some (at least four tracks; all sixteen, what one fill round fetches, on
    // one shard is a 2^-15 chance).
    for seed in 0..16 {
        let covered = shards
            .iter()
            .all(|shard| tracks.iter().any(|(_, _, held)| held == shard));
        if seed >= 4 && covered {
            break;
        }
        let track = net.upload(&artist, 40 + seed, 24.0, &[]).await;
        let grant = api
            .play(&listener, &track, &warm.node_id(), None, false)
            .await
            .unwrap();
        let rendition = grant.manifest.id();
        let shard = trackers.shard_of(&rendition).unwrap();
        assert_eq!(
            grant.tracker,
            Some(shard),
            "the grant names the rendition's shard"
        );
        assert_eq!(grant.trackers, trackers, "and lists every shard");
        // Demand, on the rendition's shard.
        peers_of(&warm_endpoint, shard, rendition, &grant.license).await;
        tracks.push((track, grant, shard));
    }
    for shard in &shards {
        assert!(
            tracks.iter().any(|(_, _, held)| held == shard),
            "every shard holds some renditions"
        );
    }
    // The super-node merges both shards' popularity, fetches everything, and announces each
    // rendition to its own shard only.
    assert_eq!(node.fill_round().await, tracks.len());
    for (_, grant, shard) in &tracks {
        let rendition = grant.manifest.id();
        wait_listed(
            &warm_endpoint,
            *shard,
            rendition,
            &grant.license,
            node.node_id,
        )
        .await;
        let other = shards.iter().find(|other| *other != shard).unwrap();
        let listed = peers_of(&warm_endpoint, *other, rendition, &grant.license).await;
        assert!(listed.peers.is_empty(), "announced to the wrong shard");
    }

    // A shard dies: its renditions play from the origin, the other shard's from the
    // super-node; no play fails.
    endpoints[1].close();
    let player_id = Identity::from_secret_bytes(&[0x84; 32]);
    let player_endpoint = Endpoint::bind(
        &player_id,
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
    )
    .unwrap();
    // One play per shard (plays run in real time).
    for shard in &shards {
        let (track, _, _) = tracks.iter().find(|(_, _, held)| held == shard).unwrap();
        let grant = api
            .play(&listener, track, &player_id.node_id(), None, false)
            .await
            .unwrap();
        let (out, mut outputs) = tokio::sync::mpsc::channel(64);
        let playback = {
            let (endpoint, grant) = (player_endpoint.clone(), grant.clone());
            tokio::spawn(async move {
                player::play(
                    &endpoint,
                    &grant,
                    Default::default(),
                    PlayOptions::default(),
                    out,
                )
                .await
            })
        };
        let mut started = false;
        while let Some(output) = outputs.recv().await {
            if let Output::Event(client_lib::scheduler::PlayerEvent::Started { .. }) = output {
                started = true;
            }
        }
        let stats = playback.await.unwrap().unwrap();
        assert!(started, "track {track} played");
        assert_eq!(stats.stutters, 0);
        if *shard == shards[0] {
            assert!(
                stats.bytes_super_nodes > 0,
                "the live shard's renditions come from peers"
            );
        } else {
            assert_eq!(
                stats.bytes_super_nodes, 0,
                "the dead shard's fall back to the origin"
            );
            assert!(stats.bytes_origin > 0);
        }
    }
    node.shutdown().await;
}
