//! The Chorus QUIC data plane, shared by origin, super-node, tracker and client.
//!
//! - [`Endpoint`]: one quinn endpoint per process, built from the node's [`protocol::Identity`];
//!   it dials peers by node id (the handshake proves the key), keeps connections warm and
//!   reuses them, and accepts connections whose node id it reports.
//! - [`Peer`]: a connection to a known node; [`Peer::request`] opens one bidirectional
//!   stream per request and returns the [`ResponseStream`] of framed answers.
//! - [`serve`]: runs a [`Service`] on every stream an endpoint accepts.
//! - [`chunks`]: the chunk protocol: [`chunks::ChunkService`] serves a [`chunks::ChunkSource`]
//!   to licensed peers; [`chunks::fetch_range`] fetches and verifies a range of chunks.
//!
//! Every read has a timeout, every frame a size cap ([`protocol::FRAME_BYTES_MAX`]), every
//! connection a cap on concurrent streams and on bytes in flight ([`Limits`]).

pub mod chunks;
mod endpoint;
pub mod https;
pub mod keyfile;
mod server;
pub mod tls;
pub mod upload;

use std::time::Duration;

pub use endpoint::{Endpoint, Peer, ROUTES_MAX, ResponseStream, Routes};
pub use server::{Responder, Service, serve};

use protocol::wire::WireError;
use protocol::{CodecError, ContentError, NodeId};

/// Limits of an endpoint. Worst-case memory per connection is about
/// `connection_receive_window_bytes + streams_concurrent_max × FRAME_BYTES_MAX`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bidirectional streams a peer may have open at once (requests in flight).
    pub streams_concurrent_max: u32,
    /// Bytes a peer may have in flight towards us on one stream.
    pub stream_receive_window_bytes: u32,
    /// Bytes a peer may have in flight towards us on one connection.
    pub connection_receive_window_bytes: u32,
    /// Bytes we keep unacknowledged towards a peer on one connection.
    pub send_window_bytes: u64,
    /// Connections accepted at once; more are refused.
    pub connections_max: usize,
    /// Connections accepted at once from one address (an IPv6 client's /64 counts as one);
    /// more are refused before their handshake costs anything.
    pub connections_per_ip_max: usize,
    /// Connections accepted at once from one node id (after the handshake proves it).
    pub connections_per_node_max: usize,
    /// Connections kept in the dial pool; the oldest is closed beyond this.
    pub pool_connections_max: usize,
    /// Longest wait for any one frame or write.
    pub read_timeout: Duration,
    /// Longest wait for a handshake.
    pub connect_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval that keeps pooled connections warm.
    pub keep_alive_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            streams_concurrent_max: 64,
            stream_receive_window_bytes: 2 * 1024 * 1024,
            connection_receive_window_bytes: 16 * 1024 * 1024,
            send_window_bytes: 16 * 1024 * 1024,
            connections_max: 1024,
            connections_per_ip_max: 128,
            connections_per_node_max: 8,
            pool_connections_max: 256,
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(10),
        }
    }
}

/// Errors of the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Building TLS configuration or a certificate failed.
    #[error("tls setup: {0}")]
    Tls(String),
    /// Binding the UDP socket failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The dial could not start (bad address, endpoint closed...).
    #[error("connecting: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed (includes a wrong node id or ALPN in the handshake).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer's certificate did not carry a node id.
    #[error("peer presented no node certificate")]
    NoPeerIdentity,
    /// The peer is not the node we dialled.
    #[error("expected node {expected}, reached {found}")]
    WrongNode {
        /// Who we wanted.
        expected: NodeId,
        /// Who answered.
        found: NodeId,
    },
    /// Writing to a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading from a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Finishing a stream failed.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// A frame or handshake did not arrive in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The stream ended in the middle of a frame.
    #[error("stream ended mid-frame")]
    Truncated,
    /// A frame could not be decoded or broke a limit.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The peer broke the protocol (unexpected frame, chunk out of range...).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A chunk failed verification.
    #[error("content: {0}")]
    Content(#[from] ContentError),
    /// The peer answered with an error.
    #[error("remote error: {0}")]
    Remote(WireError),
}
