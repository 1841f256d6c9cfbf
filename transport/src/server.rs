//! The serving side: accept connections, read one request per stream, hand it to a service.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

impl Responder {
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
/// Connections beyond `limits.connections_max` are refused; streams per connection are capped
/// by the transport (`limits.streams_concurrent_max`).
pub async fn serve<S: Service>(endpoint: Endpoint, service: Arc<S>) {
    let active = Arc::new(AtomicUsize::new(0));
    while let Some(incoming) = endpoint.quinn().accept().await {
        if active.load(Ordering::Relaxed) >= endpoint.limits().connections_max {
            incoming.refuse();
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (endpoint, service, active) = (endpoint.clone(), service.clone(), active.clone());
        tokio::spawn(async move {
            if let Err(error) = serve_connection(&endpoint, incoming, service).await {
                tracing::debug!(%error, "connection ended");
            }
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve_connection<S: Service>(
    endpoint: &Endpoint,
    incoming: quinn::Incoming,
    service: Arc<S>,
) -> Result<(), TransportError> {
    let timeout = endpoint.limits().connect_timeout;
    let connection = tokio::time::timeout(timeout, incoming.accept()?)
        .await
        .map_err(|_| TransportError::Timeout(timeout))??;
    let peer = peer_node_id(&connection)?;
    let read_timeout = endpoint.limits().read_timeout;
    loop {
        let (send, recv) = connection.accept_bi().await?;
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_stream(peer, send, recv, read_timeout, service).await {
                tracing::debug!(%error, %peer, "stream failed");
            }
        });
    }
}

async fn serve_stream<S: Service>(
    peer: NodeId,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    read_timeout: Duration,
    service: Arc<S>,
) -> Result<(), TransportError> {
    let mut responder = Responder {
        send,
        write_timeout: read_timeout,
        buffer: Vec::new(),
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
