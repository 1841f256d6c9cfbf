//! The serving side: accept connections, read one request per stream, hand it to a service.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use protocol::NodeId;
use protocol::codec;
use protocol::wire::{self, ErrorCode, Priority, Request, Response, WireError};

use crate::endpoint::{peer_node_id, read_frame, stream_priority};
use crate::{Endpoint, TransportError};

/// Answers requests. Implemented by the chunk service here and by tracker and node services.
pub trait Service: Send + Sync + 'static {
    /// Answers one `request` from the authenticated node `peer` by writing frames to
    /// `responder`. The stream is finished after this returns.
    fn handle(
        &self,
        peer: NodeId,
        request: Request,
        responder: &mut Responder,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// Writes the answer frames of one request.
#[derive(Debug)]
pub struct Responder {
    send: quinn::SendStream,
    write_timeout: Duration,
    buffer: Vec<u8>,
    remote: SocketAddr,
}

impl Responder {
    /// The address the request's connection comes from, as this endpoint observes it (a
    /// NAT's or relay's public address, not necessarily the peer's own).
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Sends one response frame.
    pub async fn send(&mut self, response: &Response) -> Result<(), TransportError> {
        self.buffer.clear();
        codec::encode_frame(response, &mut self.buffer)?;
        let write = self.send.write_all(&self.buffer);
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| TransportError::Timeout(self.write_timeout))??;
        Ok(())
    }

    /// Sends `Response::Chunk { index, data }` without copying `data` into an encode buffer.
    pub async fn send_chunk(&mut self, index: u32, data: Bytes) -> Result<(), TransportError> {
        let prefix = Bytes::from(wire::chunk_frame_prefix(index, data.len())?);
        let mut pieces = [prefix, data];
        let write = self.send.write_all_chunks(&mut pieces);
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| TransportError::Timeout(self.write_timeout))??;
        Ok(())
    }

    /// Sends an error answer.
    pub async fn send_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), TransportError> {
        self.send(&Response::Error(WireError::new(code, message)))
            .await
    }

    /// Orders this stream's bytes against others on the connection.
    pub fn set_priority(&self, priority: Priority) {
        // Fails only on a closed stream, which the next write reports.
        let _ = self.send.set_priority(stream_priority(priority));
    }
}

/// Runs `service` on every connection `endpoint` accepts until the endpoint is closed.
/// Connections beyond `limits.connections_max` in all, `connections_per_ip_max` from one
/// address (IPv6: one /64) or `connections_per_node_max` from one node id are refused;
/// streams per connection are capped by the transport (`limits.streams_concurrent_max`).
pub async fn serve<S: Service>(endpoint: Endpoint, service: Arc<S>) {
    let active = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(ConnectionCounts::default());
    while let Some(incoming) = endpoint.quinn().accept().await {
        let limits = endpoint.limits();
        if active.load(Ordering::Relaxed) >= limits.connections_max {
            incoming.refuse();
            continue;
        }
        let ip = address_key(incoming.remote_address().ip());
        // A source address is only a claim until the peer answers a Retry: once an address
        // has used half its places, new connections from it must prove it, so spoofed
        // Initial packets cannot use up a victim's places.
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && counts.count_ip(ip) >= limits.connections_per_ip_max / 2
        {
            let _ = incoming.retry();
            continue;
        }
        let Some(ip_guard) = counts.enter_ip(ip, limits.connections_per_ip_max) else {
            tracing::debug!(%ip, "connection refused: too many from this address");
            incoming.refuse();
            continue;
        };
        active.fetch_add(1, Ordering::Relaxed);
        let active_guard = Active(active.clone());
        let (endpoint, service, counts) = (endpoint.clone(), service.clone(), counts.clone());
        tokio::spawn(async move {
            // Released however the task ends (a panicking service included).
            let _guards = (active_guard, ip_guard);
            if let Err(error) = serve_connection(&endpoint, incoming, service, &counts).await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
}

/// The address a connection is counted under: itself for IPv4, its /64 for IPv6.
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
        v4 => v4,
    }
}

/// Open connections per address and per node id. Entries go when their count reaches zero,
/// so each map holds at most `connections_max` entries.
#[derive(Debug, Default)]
struct ConnectionCounts {
    by_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    by_node: Mutex<HashMap<NodeId, usize>>,
}

/// One counted connection; uncounted when dropped.
struct Counted<'a, K: std::hash::Hash + Eq + Copy> {
    map: &'a Mutex<HashMap<K, usize>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Copy> Drop for Counted<'_, K> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

fn enter<K: std::hash::Hash + Eq + Copy>(
    map: &Mutex<HashMap<K, usize>>,
    key: K,
    max: usize,
) -> Option<Counted<'_, K>> {
    let mut counts = map.lock().unwrap_or_else(|poison| poison.into_inner());
    let count = counts.entry(key).or_insert(0);
    if *count >= max.max(1) {
        return None;
    }
    *count += 1;
    Some(Counted { map, key })
}

/// One accepted connection in the endpoint's count.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionCounts {
    /// Connections open from `ip` now.
    fn count_ip(&self, ip: std::net::IpAddr) -> usize {
        self.by_ip
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    /// Counts a connection from `ip`, unless `max` are open from it already.
    fn enter_ip(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<IpCounted> {
        let mut counts = self
            .by_ip
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(IpCounted {
            counts: self.clone(),
            ip,
        })
    }
}

/// A connection counted under its address, held across the connection's task.
struct IpCounted {
    counts: Arc<ConnectionCounts>,
    ip: std::net::IpAddr,
}

impl Drop for IpCounted {
    fn drop(&mut self) {
        drop(Counted {
            map: &self.counts.by_ip,
            key: self.ip,
        });
    }
}

async fn serve_connection<S: Service>(
    endpoint: &Endpoint,
    incoming: quinn::Incoming,
    service: Arc<S>,
    counts: &ConnectionCounts,
) -> Result<(), TransportError> {
    let timeout = endpoint.limits().connect_timeout;
    let connection = tokio::time::timeout(timeout, incoming.accept()?)
        .await
        .map_err(|_| TransportError::Timeout(timeout))??;
    let peer = peer_node_id(&connection)?;
    let Some(_node_guard) = enter(
        &counts.by_node,
        peer,
        endpoint.limits().connections_per_node_max,
    ) else {
        connection.close(
            quinn::VarInt::from_u32(1),
            b"too many connections from this node",
        );
        return Err(TransportError::Protocol(
            "too many connections from one node id",
        ));
    };
    let read_timeout = endpoint.limits().read_timeout;
    loop {
        let (send, recv) = connection.accept_bi().await?;
        let service = service.clone();
        let remote = connection.remote_address();
        tokio::spawn(async move {
            if let Err(error) = serve_stream(peer, remote, send, recv, read_timeout, service).await
            {
                tracing::debug!(%error, %peer, "stream failed");
            }
        });
    }
}

async fn serve_stream<S: Service>(
    peer: NodeId,
    remote: SocketAddr,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    read_timeout: Duration,
    service: Arc<S>,
) -> Result<(), TransportError> {
    let mut responder = Responder {
        send,
        write_timeout: read_timeout,
        buffer: Vec::new(),
        remote,
    };
    let request = match read_frame(&mut recv, read_timeout).await {
        Ok(Some(body)) => codec::decode::<Request>(&body).map_err(TransportError::from),
        Ok(None) => Err(TransportError::Protocol("stream ended before a request")),
        Err(error) => Err(error),
    };
    match request {
        Ok(request) => service.handle(peer, request, &mut responder).await?,
        Err(error) => {
            // Tell the peer what was wrong; a protocol error costs it the stream, nothing more.
            responder
                .send_error(ErrorCode::BadRequest, error.to_string())
                .await?;
        }
    }
    responder.send.finish()?;
    Ok(())
}
