//! Endpoints, dialling with connection reuse, and the request side of a stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protocol::codec::{self, FRAME_HEADER_BYTES};
use protocol::wire::{ALPN, Priority, Request, Response};
use protocol::{Identity, NodeId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use crate::tls::{self, CertifiedIdentity};
use crate::{Limits, TransportError};

/// One QUIC endpoint per process: accepts connections and dials peers, all authenticated by
/// node id. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    quinn: quinn::Endpoint,
    certified: CertifiedIdentity,
    node_id: NodeId,
    limits: Limits,
    transport: Arc<quinn::TransportConfig>,
    /// Warm connections by node id, with a sequence number for oldest-first eviction.
    /// Bounded by `limits.pool_connections_max`.
    pool: Mutex<Pool>,
    /// Where to send packets meant for an address (see [`Routes`]).
    routes: Routes,
}

/// An address translation applied when dialling: packets for a peer's announced address go
/// to another address instead (a relay or link emulator in front of that peer, a NAT's
/// hairpin). Shared: endpoints holding clones of one `Routes` see each change. Bounded by
/// [`ROUTES_MAX`].
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<std::sync::RwLock<HashMap<SocketAddr, SocketAddr>>>);

/// Most entries in one [`Routes`].
pub const ROUTES_MAX: usize = 65_536;

impl Routes {
    /// No translation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dial `via` whenever `target` is dialled. False when the table is full.
    pub fn insert(&self, target: SocketAddr, via: SocketAddr) -> bool {
        let mut table = self.0.write().unwrap_or_else(|poison| poison.into_inner());
        if table.len() >= ROUTES_MAX && !table.contains_key(&target) {
            return false;
        }
        table.insert(target, via);
        true
    }

    /// Dial `target` directly again.
    pub fn remove(&self, target: &SocketAddr) {
        self.0
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(target);
    }

    /// Where packets for `target` go.
    pub fn resolve(&self, target: SocketAddr) -> SocketAddr {
        self.0
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&target)
            .copied()
            .unwrap_or(target)
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// True when nothing is translated.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
struct Pool {
    next_sequence: u64,
    connections: HashMap<NodeId, (u64, quinn::Connection)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.inner.quinn.local_addr().ok())
            .finish()
    }
}

fn transport_config(limits: &Limits) -> Result<quinn::TransportConfig, TransportError> {
    let mut config = quinn::TransportConfig::default();
    config
        .max_concurrent_bidi_streams(limits.streams_concurrent_max.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(limits.stream_receive_window_bytes.into())
        .receive_window(limits.connection_receive_window_bytes.into())
        .send_window(limits.send_window_bytes)
        .keep_alive_interval(Some(limits.keep_alive_interval))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(limits.idle_timeout)
                .map_err(|_| TransportError::Tls("idle timeout too large".into()))?,
        ));
    Ok(config)
}

impl Endpoint {
    /// Binds a UDP socket at `addr` (port 0 picks one) and serves `chorus/4` on it.
    /// Must be called inside a tokio runtime.
    pub fn bind(
        identity: &Identity,
        addr: SocketAddr,
        limits: Limits,
    ) -> Result<Self, TransportError> {
        let certified = CertifiedIdentity::new(identity)?;
        let transport = Arc::new(transport_config(&limits)?);
        let crypto = QuicServerConfig::try_from(tls::server_crypto(&certified)?)
            .map_err(|error| TransportError::Tls(error.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport.clone());
        let quinn = quinn::Endpoint::server(server, addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        Ok(Self {
            inner: Arc::new(Inner {
                quinn,
                certified,
                node_id: identity.node_id(),
                limits,
                transport,
                pool: Mutex::new(Pool::default()),
                routes: Routes::default(),
            }),
        })
    }

    /// Like [`Endpoint::bind`], dialling through `routes`.
    pub fn bind_with_routes(
        identity: &Identity,
        addr: SocketAddr,
        limits: Limits,
        routes: Routes,
    ) -> Result<Self, TransportError> {
        let mut endpoint = Self::bind(identity, addr, limits)?;
        if let Some(inner) = Arc::get_mut(&mut endpoint.inner) {
            inner.routes = routes;
        }
        Ok(endpoint)
    }

    /// The address translation this endpoint dials through.
    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    /// This endpoint's node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.quinn.local_addr()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub(crate) fn quinn(&self) -> &quinn::Endpoint {
        &self.inner.quinn
    }

    /// A connection to `node` at `addr`: the pooled one if it is still open, else a new one.
    /// The handshake fails unless the server proves it holds `node`'s key.
    pub async fn connect(&self, node: NodeId, addr: SocketAddr) -> Result<Peer, TransportError> {
        if let Some(connection) = self.pooled(&node) {
            return Ok(self.peer(connection, node));
        }
        let connection = self.dial(node, addr, ALPN).await?;
        self.remember(node, connection.clone());
        Ok(self.peer(connection, node))
    }

    /// Dials with another application protocol id, bypassing the pool. For version
    /// negotiation and its tests; a `chorus/4` server refuses any other id.
    pub async fn connect_with_alpn(
        &self,
        node: NodeId,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> Result<Peer, TransportError> {
        let connection = self.dial(node, addr, alpn).await?;
        Ok(self.peer(connection, node))
    }

    async fn dial(
        &self,
        node: NodeId,
        addr: SocketAddr,
        alpn: &[u8],
    ) -> Result<quinn::Connection, TransportError> {
        let crypto =
            QuicClientConfig::try_from(tls::client_crypto(&self.inner.certified, node, alpn)?)
                .map_err(|error| TransportError::Tls(error.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.inner.transport.clone());
        let connecting = self.inner.quinn.connect_with(
            config,
            self.inner.routes.resolve(addr),
            tls::SERVER_NAME,
        )?;
        let timeout = self.inner.limits.connect_timeout;
        let connection = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout(timeout))??;
        let found = peer_node_id(&connection)?;
        if found != node {
            // The verifier already refused this; checked again because it is the invariant
            // licensing relies on.
            connection.close(0u32.into(), b"wrong node");
            return Err(TransportError::WrongNode {
                expected: node,
                found,
            });
        }
        Ok(connection)
    }

    fn pooled(&self, node: &NodeId) -> Option<quinn::Connection> {
        let mut pool = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match pool.connections.get(node) {
            Some((_, connection)) if connection.close_reason().is_none() => {
                Some(connection.clone())
            }
            Some(_) => {
                pool.connections.remove(node);
                None
            }
            None => None,
        }
    }

    fn remember(&self, node: NodeId, connection: quinn::Connection) {
        let mut pool = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        pool.connections
            .retain(|_, (_, connection)| connection.close_reason().is_none());
        if pool.connections.len() >= self.inner.limits.pool_connections_max {
            let oldest = pool
                .connections
                .iter()
                .min_by_key(|(_, (sequence, _))| *sequence)
                .map(|(node, _)| *node);
            if let Some((_, connection)) = oldest.and_then(|node| pool.connections.remove(&node)) {
                connection.close(0u32.into(), b"pool full");
            }
        }
        let sequence = pool.next_sequence;
        pool.next_sequence += 1;
        pool.connections.insert(node, (sequence, connection));
    }

    pub(crate) fn peer(&self, connection: quinn::Connection, node: NodeId) -> Peer {
        Peer {
            connection,
            node,
            read_timeout: self.inner.limits.read_timeout,
        }
    }

    /// Waits for the next incoming connection and completes its handshake. `None` once the
    /// endpoint is closed. For custom protocols and baselines; [`crate::serve`] runs a
    /// [`crate::Service`] on every connection instead.
    pub async fn accept(&self) -> Option<Result<Peer, TransportError>> {
        let incoming = self.inner.quinn.accept().await?;
        let timeout = self.inner.limits.connect_timeout;
        let handshake = async {
            let connection = tokio::time::timeout(timeout, incoming.accept()?)
                .await
                .map_err(|_| TransportError::Timeout(timeout))??;
            let node = peer_node_id(&connection)?;
            Ok(self.peer(connection, node))
        };
        Some(handshake.await)
    }

    /// Number of warm connections in the dial pool.
    pub fn pooled_connections(&self) -> usize {
        self.inner
            .pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .connections
            .len()
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.inner.quinn.close(0u32.into(), b"shutdown");
    }

    /// Waits until every connection has been closed and its state drained.
    pub async fn wait_idle(&self) {
        self.inner.quinn.wait_idle().await;
    }
}

/// The node id a connection's peer proved in the handshake.
pub(crate) fn peer_node_id(connection: &quinn::Connection) -> Result<NodeId, TransportError> {
    let identity = connection
        .peer_identity()
        .ok_or(TransportError::NoPeerIdentity)?;
    let certificates = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| TransportError::NoPeerIdentity)?;
    let first = certificates.first().ok_or(TransportError::NoPeerIdentity)?;
    tls::node_id_of_certificate(first).map_err(|_| TransportError::NoPeerIdentity)
}

/// An authenticated connection to one node. Cheap to clone.
#[derive(Clone)]
pub struct Peer {
    connection: quinn::Connection,
    node: NodeId,
    read_timeout: Duration,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("node", &self.node)
            .field("remote", &self.connection.remote_address())
            .finish()
    }
}

/// quinn's stream priority for a request priority: higher is sent first.
pub(crate) fn stream_priority(priority: Priority) -> i32 {
    match priority {
        Priority::Playing => 2,
        Priority::Prefetch => 1,
        Priority::OfflineSync => 0,
    }
}

impl Peer {
    /// The node id the peer proved.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// The connection's current round-trip estimate.
    pub fn rtt(&self) -> Duration {
        self.connection.rtt()
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    /// Sends `request` on a new stream and returns the stream of answers.
    pub async fn request(&self, request: &Request) -> Result<ResponseStream, TransportError> {
        let mut frame = Vec::new();
        codec::encode_frame(request, &mut frame)?;
        let (mut send, recv) = self.connection.open_bi().await?;
        if let Request::ChunkRange(range) = request {
            // Only fails if the stream is already closed; the write below reports that.
            let _ = send.set_priority(stream_priority(range.priority));
        }
        tokio::time::timeout(self.read_timeout, send.write_all(&frame))
            .await
            .map_err(|_| TransportError::Timeout(self.read_timeout))??;
        send.finish()?;
        Ok(ResponseStream {
            recv,
            read_timeout: self.read_timeout,
        })
    }

    /// Sends `request` and returns its single answer (an `Error` answer becomes
    /// [`TransportError::Remote`]).
    pub async fn request_one(&self, request: &Request) -> Result<Response, TransportError> {
        let mut stream = self.request(request).await?;
        match stream.next().await? {
            Some(Response::Error(error)) => Err(TransportError::Remote(error)),
            Some(response) => Ok(response),
            None => Err(TransportError::Protocol("stream ended without an answer")),
        }
    }

    /// The underlying quinn connection: an escape hatch for raw streams (baselines in
    /// benchmarks, malformed-input tests). Requests should go through [`Peer::request`].
    pub fn quinn_connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.connection.close(0u32.into(), b"closed");
    }
}

/// The answers to one request, read frame by frame, each read under the read timeout.
#[derive(Debug)]
pub struct ResponseStream {
    recv: quinn::RecvStream,
    read_timeout: Duration,
}

impl ResponseStream {
    /// The next answer, or `None` when the responder finished the stream.
    pub async fn next(&mut self) -> Result<Option<Response>, TransportError> {
        match read_frame(&mut self.recv, self.read_timeout).await? {
            Some(body) => Ok(Some(codec::decode(&body)?)),
            None => Ok(None),
        }
    }

    /// The next frame body, undecoded (for callers that decode chunk frames without a copy).
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, TransportError> {
        read_frame(&mut self.recv, self.read_timeout).await
    }
}

/// Reads one frame body; `None` on a clean end of stream at a frame boundary.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Option<Bytes>, TransportError> {
    tokio::time::timeout(timeout, read_frame_inner(recv))
        .await
        .map_err(|_| TransportError::Timeout(timeout))?
}

async fn read_frame_inner(recv: &mut quinn::RecvStream) -> Result<Option<Bytes>, TransportError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < FRAME_HEADER_BYTES {
        match recv.read(&mut header[filled..]).await? {
            Some(read) => filled += read,
            None if filled == 0 => return Ok(None),
            None => return Err(TransportError::Truncated),
        }
    }
    // Checked against the cap before allocating.
    let len = codec::frame_body_len(header)?;
    // Copy quinn's received pieces straight into one buffer (no zero-fill first).
    let mut body = BytesMut::with_capacity(len);
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => return Err(TransportError::Truncated),
        }
    }
    Ok(Some(body.freeze()))
}
