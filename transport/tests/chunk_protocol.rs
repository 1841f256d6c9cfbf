//! The chunk protocol between real endpoints on loopback: delivery, verification, licensing,
//! authentication and bad input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protocol::content::ChunkCipher;
use protocol::license::{LICENSE_VERSION, LicenseScope};
use protocol::wire::{ErrorCode, Priority, Request, Response};
use protocol::*;
use rand::SeedableRng;
use transport::chunks::{self, ChunkService, ChunkSource, MemoryChunkSource, RangeItem};
use transport::{Endpoint, Limits, Responder, Service, TransportError};

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
const TRACK: TrackId = TrackId([3; 16]);

struct World {
    origin: Identity,
    server: Endpoint,
    server_addr: SocketAddr,
    client: Endpoint,
    client_identity: Identity,
    manifest: Manifest,
    plaintext: Vec<u8>,
    cipher: ChunkCipher,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn fixed_clock() -> chunks::Clock {
    Arc::new(|| NOW)
}

fn seal(origin: &Identity, chunk_count: usize) -> (Manifest, Vec<Bytes>, Vec<u8>, ChunkCipher) {
    // The last chunk short of full.
    let plaintext: Vec<u8> = (0..chunk_count * 4096 - 100)
        .map(|i| (i % 251) as u8)
        .collect();
    let sealed = testkit::RenditionSpec::new(3)
        .track(TRACK)
        .key([8; 32])
        .quality(Quality::High)
        .plaintext(plaintext)
        .timing(320_000, 48_000, 1_000)
        .seal(origin)
        .unwrap();
    (
        sealed.manifest,
        sealed.chunks,
        sealed.plaintext,
        sealed.cipher,
    )
}

fn license_for(
    origin: &Identity,
    node: NodeId,
    scope: LicenseScope,
    expires_at: UnixMillis,
) -> LicenseToken {
    let claims = LicenseClaims {
        version: LICENSE_VERSION,
        issuer: origin.node_id(),
        account: AccountId([1; 16]),
        node,
        region: "SE".parse().unwrap(),
        scope,
        markets: Vec::new(),
        issued_at: UnixMillis(NOW.0 - 1000),
        expires_at,
        offline: false,
    };
    LicenseToken::issue(origin, &claims).unwrap()
}

impl World {
    fn license(&self) -> LicenseToken {
        license_for(
            &self.origin,
            self.client_identity.node_id(),
            LicenseScope::Play {
                renditions: vec![self.manifest.id()],
            },
            UnixMillis(NOW.0 + 60_000),
        )
    }
}

async fn world_with<S: Service>(
    limits: Limits,
    make: impl FnOnce(&Identity, &Manifest, Vec<Bytes>) -> S,
) -> World {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let origin = Identity::generate(&mut rng);
    let server_identity = Identity::generate(&mut rng);
    let client_identity = Identity::generate(&mut rng);
    let (manifest, sealed, plaintext, cipher) = seal(&origin, 10);
    let service = make(&origin, &manifest, sealed);
    let server = Endpoint::bind(&server_identity, loopback(), limits.clone()).unwrap();
    let server_addr = server.local_addr().unwrap();
    tokio::spawn(transport::serve(server.clone(), Arc::new(service)));
    let client = Endpoint::bind(&client_identity, loopback(), limits).unwrap();
    World {
        origin,
        server,
        server_addr,
        client,
        client_identity,
        manifest,
        plaintext,
        cipher,
    }
}

fn memory_service(
    origin: &Identity,
    manifest: &Manifest,
    sealed: Vec<Bytes>,
) -> ChunkService<MemoryChunkSource> {
    let source = MemoryChunkSource::new();
    source
        .insert(manifest, sealed.into_iter().map(Some).collect())
        .unwrap();
    ChunkService::new(source, origin.node_id(), fixed_clock())
}

async fn world() -> World {
    world_with(Limits::default(), memory_service).await
}

#[tokio::test]
async fn a_licensed_client_fetches_verifies_and_decrypts_every_chunk() {
    let w = world().await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    assert_eq!(peer.node_id(), w.server.node_id());
    let fetched =
        chunks::fetch_manifest(&peer, &w.origin.node_id(), &w.manifest.id(), &w.license())
            .await
            .unwrap();
    assert_eq!(fetched, w.manifest);
    let received = std::sync::atomic::AtomicU64::new(0);
    let items = chunks::fetch_range_counted(
        &peer,
        &w.manifest,
        0,
        10,
        Priority::Playing,
        &w.license(),
        &received,
    )
    .await
    .unwrap();
    // The counter has every chunk's ciphertext as it arrived (what an abandoned range wastes).
    let ciphertext: u64 = items
        .iter()
        .map(|item| match item {
            RangeItem::Chunk { data, .. } => data.len() as u64,
            RangeItem::Missing { .. } => 0,
        })
        .sum();
    assert!(ciphertext > 0);
    assert_eq!(received.into_inner(), ciphertext);
    let mut audio = Vec::new();
    for item in items {
        let RangeItem::Chunk { index, data } = item else {
            panic!("missing chunk")
        };
        audio.extend(
            w.cipher
                .open(index, w.manifest.chunk_id(index).unwrap(), &data)
                .unwrap(),
        );
    }
    assert_eq!(audio, w.plaintext);
}

#[tokio::test]
async fn connections_are_reused_and_requests_multiplexed() {
    let w = world().await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for first in 0..10u32 {
        let peer = w
            .client
            .connect(w.server.node_id(), w.server_addr)
            .await
            .unwrap();
        let (manifest, license) = (w.manifest.clone(), w.license());
        tasks.push(tokio::spawn(async move {
            chunks::fetch_range(&peer, &manifest, first, 1, Priority::Prefetch, &license).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(w.client.pooled_connections(), 1);
    let pong = peer.request_one(&Request::Ping { nonce: 5 }).await.unwrap();
    assert_eq!(pong, Response::Pong { nonce: 5 });
}

#[tokio::test]
async fn the_dialer_refuses_a_server_that_is_not_the_expected_node() {
    let w = world().await;
    let error = w
        .client
        .connect(w.origin.node_id(), w.server_addr)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Connection(_)), "{error:?}");
    // The right id still works afterwards.
    assert!(
        w.client
            .connect(w.server.node_id(), w.server_addr)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_wrong_alpn_is_refused() {
    let w = world().await;
    let error = w
        .client
        .connect_with_alpn(w.server.node_id(), w.server_addr, b"chorus/0")
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Connection(_)), "{error:?}");
}

async fn refused_with(w: &World, license: LicenseToken) -> ErrorCode {
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    match chunks::fetch_range(&peer, &w.manifest, 0, 2, Priority::Playing, &license).await {
        Err(TransportError::Remote(error)) => error.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_serving_peer_enforces_the_license_matrix() {
    let w = world().await;
    let me = w.client_identity.node_id();
    let play = LicenseScope::Play {
        renditions: vec![w.manifest.id()],
    };
    let later = UnixMillis(NOW.0 + 60_000);

    let expired = license_for(&w.origin, me, play.clone(), UnixMillis(NOW.0 - 1));
    assert_eq!(refused_with(&w, expired).await, ErrorCode::LicenseExpired);

    let forger = Identity::from_secret_bytes(&[0xEE; 32]);
    let mut forged = license_for(&forger, me, play.clone(), later);
    assert_eq!(
        refused_with(&w, forged.clone()).await,
        ErrorCode::LicenseForged
    );
    forged.claims = w.license().claims; // the origin's claims under a forger's signature
    assert_eq!(refused_with(&w, forged).await, ErrorCode::LicenseForged);

    let someone_else = license_for(&w.origin, NodeId([9; 32]), play, later);
    assert_eq!(
        refused_with(&w, someone_else).await,
        ErrorCode::LicenseWrongNode
    );

    let other_track = license_for(
        &w.origin,
        me,
        LicenseScope::Play {
            renditions: vec![RenditionId([1; 32])],
        },
        later,
    );
    assert_eq!(
        refused_with(&w, other_track).await,
        ErrorCode::LicenseNotCovered
    );

    // A super-node role token covers any rendition.
    let role = license_for(&w.origin, me, LicenseScope::SuperNode, later);
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    assert!(
        chunks::fetch_range(&peer, &w.manifest, 0, 2, Priority::OfflineSync, &role)
            .await
            .is_ok()
    );
}

/// A source whose stored chunk 1 has rotted on disk.
struct Rotten(MemoryChunkSource);

impl ChunkSource for Rotten {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        self.0.manifest(rendition).await
    }
    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        self.0.chunk_count(rendition).await
    }
    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        let (id, data) = self.0.chunk(rendition, index).await?;
        if index != 1 {
            return Some((id, data));
        }
        let mut bad = data.to_vec();
        bad[0] ^= 0xFF;
        Some((id, Bytes::from(bad)))
    }
}

#[tokio::test]
async fn a_corrupt_stored_chunk_is_reported_missing_not_sent() {
    let w = world_with(Limits::default(), |origin, manifest, sealed| {
        let source = MemoryChunkSource::new();
        source
            .insert(manifest, sealed.into_iter().map(Some).collect())
            .unwrap();
        ChunkService::new(Rotten(source), origin.node_id(), fixed_clock())
    })
    .await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let items = chunks::fetch_range(&peer, &w.manifest, 0, 3, Priority::Playing, &w.license())
        .await
        .unwrap();
    assert!(matches!(items[0], RangeItem::Chunk { index: 0, .. }));
    assert_eq!(items[1], RangeItem::Missing { index: 1, held: 0 });
    assert!(matches!(items[2], RangeItem::Chunk { index: 2, .. }));
}

/// A malicious server that sends a tampered chunk 0.
struct Liar(Bytes);

impl Service for Liar {
    async fn handle(
        &self,
        _peer: NodeId,
        _request: Request,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        let mut bad = self.0.to_vec();
        bad[5] ^= 1;
        responder.send_chunk(0, Bytes::from(bad)).await
    }
}

#[tokio::test]
async fn a_tampered_chunk_from_a_peer_is_rejected() {
    let w = world_with(Limits::default(), |_, _, sealed| Liar(sealed[0].clone())).await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let error = chunks::fetch_range(&peer, &w.manifest, 0, 1, Priority::Playing, &w.license())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Content(ContentError::HashMismatch { .. })
        ),
        "{error:?}"
    );
}

async fn raw_exchange(w: &World, bytes: &[u8]) -> Vec<u8> {
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let (mut send, mut recv) = peer.quinn_connection().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(64 * 1024).await.unwrap()
}

fn decode_error(answer: &[u8]) -> ErrorCode {
    let frames = codec::FrameDecoder::new().push(answer).unwrap();
    match codec::decode::<Response>(&frames[0]).unwrap() {
        Response::Error(error) => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_truncated_and_oversized_frames_get_typed_errors() {
    let w = world().await;
    // Garbage body in a well-formed frame.
    let mut garbage = codec::frame_header(5).unwrap().to_vec();
    garbage.extend_from_slice(&[0xFF, 1, 2, 3, 4]);
    assert_eq!(
        decode_error(&raw_exchange(&w, &garbage).await),
        ErrorCode::BadRequest
    );
    // Truncated: a header promising 100 bytes, then the stream ends.
    let mut truncated = codec::frame_header(100).unwrap().to_vec();
    truncated.extend_from_slice(&[0; 10]);
    assert_eq!(
        decode_error(&raw_exchange(&w, &truncated).await),
        ErrorCode::BadRequest
    );
    // Oversized: a header over the cap is refused before reading the body.
    let oversized = ((codec::FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
    assert_eq!(
        decode_error(&raw_exchange(&w, &oversized).await),
        ErrorCode::BadRequest
    );
    // Range past the end of the rendition.
    let mut past_end = Vec::new();
    let request = Request::ChunkRange(protocol::wire::ChunkRangeRequest {
        rendition: w.manifest.id(),
        first: 8,
        count: 5,
        priority: Priority::Playing,
        license: w.license(),
    });
    codec::encode_frame(&request, &mut past_end).unwrap();
    assert_eq!(
        decode_error(&raw_exchange(&w, &past_end).await),
        ErrorCode::BadRequest
    );
    // The connection still serves good requests afterwards.
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    assert!(
        chunks::fetch_range(&peer, &w.manifest, 0, 1, Priority::Playing, &w.license())
            .await
            .is_ok()
    );
}

/// A server that never answers.
struct Silent;

impl Service for Silent {
    async fn handle(
        &self,
        _peer: NodeId,
        _request: Request,
        _responder: &mut Responder,
    ) -> Result<(), TransportError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

#[tokio::test]
async fn every_read_has_a_timeout() {
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let w = world_with(limits, |_, _, _| Silent).await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let error = peer
        .request_one(&Request::Ping { nonce: 1 })
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn streams_beyond_the_cap_wait_their_turn() {
    let limits = Limits {
        streams_concurrent_max: 2,
        ..Limits::default()
    };
    let w = world_with(limits, memory_service).await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for index in 0..10u32 {
        let (peer, manifest, license) = (peer.clone(), w.manifest.clone(), w.license());
        tasks.push(tokio::spawn(async move {
            chunks::fetch_range(&peer, &manifest, index, 1, Priority::Playing, &license).await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
}

/// A server that answers a range out of order.
struct Shuffler(Vec<Bytes>);

impl Service for Shuffler {
    async fn handle(
        &self,
        _peer: NodeId,
        _request: Request,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        responder.send_chunk(1, self.0[1].clone()).await?;
        responder.send_chunk(0, self.0[0].clone()).await
    }
}

#[tokio::test]
async fn answers_out_of_order_are_a_protocol_error() {
    let w = world_with(Limits::default(), |_, _, sealed| Shuffler(sealed)).await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let error = chunks::fetch_range(&peer, &w.manifest, 0, 2, Priority::Playing, &w.license())
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn a_closed_pooled_connection_is_replaced_on_the_next_dial() {
    let w = world().await;
    let first = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    first.close();
    assert!(first.is_closed());
    let second = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    assert!(!second.is_closed());
    assert_eq!(
        second
            .request_one(&Request::Ping { nonce: 9 })
            .await
            .unwrap(),
        Response::Pong { nonce: 9 }
    );
    assert_eq!(w.client.pooled_connections(), 1);
}

#[tokio::test]
async fn a_request_for_an_unknown_rendition_is_not_found() {
    let w = world().await;
    let peer = w
        .client
        .connect(w.server.node_id(), w.server_addr)
        .await
        .unwrap();
    let role = license_for(
        &w.origin,
        w.client_identity.node_id(),
        LicenseScope::SuperNode,
        UnixMillis(NOW.0 + 60_000),
    );
    let unknown = protocol::wire::ManifestRequest {
        rendition: RenditionId([0xAA; 32]),
        license: role,
    };
    match peer.request_one(&Request::Manifest(unknown)).await {
        Err(TransportError::Remote(error)) => assert_eq!(error.code, ErrorCode::NotFound),
        other => panic!("expected not_found, got {other:?}"),
    }
}

#[tokio::test]
async fn routes_send_dials_for_an_address_elsewhere() {
    let w = world().await;
    // An address nobody listens on, routed to the server: the dial reaches the server.
    let announced: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let routes = transport::Routes::new();
    assert!(routes.is_empty());
    assert!(routes.insert(announced, w.server_addr));
    assert_eq!(routes.resolve(announced), w.server_addr);
    let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
    assert_eq!(
        routes.resolve(other),
        other,
        "others are dialled as they are"
    );
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    let routed = Endpoint::bind_with_routes(
        &Identity::generate(&mut rng),
        loopback(),
        Limits::default(),
        routes.clone(),
    )
    .unwrap();
    let peer = routed.connect(w.server.node_id(), announced).await.unwrap();
    let pong = peer.request_one(&Request::Ping { nonce: 1 }).await.unwrap();
    assert_eq!(pong, Response::Pong { nonce: 1 });
    // Changes are seen by every holder of the table; removed, the address is dialled as is
    // (nothing there: the dial fails).
    routes.remove(&announced);
    assert_eq!(routed.routes().resolve(announced), announced);
    let limits = Limits {
        connect_timeout: std::time::Duration::from_millis(300),
        ..Limits::default()
    };
    let direct =
        Endpoint::bind_with_routes(&Identity::generate(&mut rng), loopback(), limits, routes)
            .unwrap();
    assert!(direct.connect(w.server.node_id(), announced).await.is_err());
}

#[tokio::test]
async fn connections_are_capped_per_address_and_per_node() {
    let limits = Limits {
        connections_per_ip_max: 2,
        connections_per_node_max: 1,
        connect_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let w = world_with(limits, memory_service).await;
    let server = w.server.node_id();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let ping = |endpoint: Endpoint| async move {
        let peer = endpoint.connect(server, w.server_addr).await?;
        peer.request_one(&Request::Ping { nonce: 9 }).await
    };
    let at = |ip: [u8; 4], identity: &Identity| {
        Endpoint::bind(identity, SocketAddr::from((ip, 0)), Limits::default()).unwrap()
    };
    // Two strangers from one address get in; a third from the same address is refused.
    let mut held = Vec::new();
    for _ in 0..2 {
        let endpoint = at([127, 0, 0, 1], &Identity::generate(&mut rng));
        assert!(ping(endpoint.clone()).await.is_ok());
        held.push(endpoint);
    }
    let third = at([127, 0, 0, 1], &Identity::generate(&mut rng));
    assert!(
        ping(third).await.is_err(),
        "a third connection from one address"
    );
    // Another address still gets in.
    let elsewhere = at([127, 0, 0, 2], &Identity::generate(&mut rng));
    assert!(ping(elsewhere.clone()).await.is_ok());
    // One node id from two addresses: the second connection is closed.
    let twin = Identity::generate(&mut rng);
    let first = at([127, 0, 0, 3], &twin);
    assert!(ping(first.clone()).await.is_ok());
    let second = at([127, 0, 0, 4], &twin);
    assert!(
        ping(second).await.is_err(),
        "a second connection from one node id"
    );
    // Closing one frees its place (once the server has seen the close: retried, bounded).
    held.pop().unwrap().close();
    let later = at([127, 0, 0, 1], &Identity::generate(&mut rng));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ping(later.clone()).await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the closed connection's place never came back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop((first, elsewhere, held));
}
