//! The origin's HTTP listener: hyper (HTTP/1.1 and h2) with the limits a public server needs.
//!
//! `axum::serve` has no header-read or idle timeout and no connection cap, so a stranger
//! could hold every socket and file descriptor with connections that never send a request.
//! This accept loop bounds each:
//!
//! - **Connections**: at most `connections_max` at once (the next `accept` waits for a slot,
//!   the kernel's backlog holds the rest), and at most `connections_per_ip_max` from one
//!   address (an IPv6 client's /64 counts as one; a trusted proxy is exempt, since every
//!   client behind it shares its address).
//! - **First byte**: a connection that sends nothing within `header_read_timeout` is closed
//!   (HTTP/1.1 or h2 is chosen by the first bytes, so this wait happens before hyper's).
//! - **Headers**: HTTP/1.1 headers must arrive whole within `header_read_timeout` (hyper),
//!   which also ends an idle keep-alive connection that long after its last response.
//! - **Request bodies**: each piece of a body must arrive within three times
//!   `header_read_timeout` (30 s) of asking for it, so a body cannot trickle in a byte a
//!   minute.
//! - **Idle**: a connection with no request in flight for `idle_timeout` is closed, h2 ones
//!   included (h2 PINGs do not count as use). A request in flight is never cut for being
//!   slow on the server's side (an upload waiting for an ingest slot, a long transcode).
//!
//! - **TLS** (when configured): the handshake must finish within `header_read_timeout`;
//!   ALPN picks h2 or HTTP/1.1.
//!
//! Shutdown stops accepting, lets requests in flight finish for up to
//! [`SHUTDOWN_GRACE`], then drops the rest.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tower::ServiceExt;

/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits of the HTTP listener (`[http]` in the origin config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Connections open at once; more wait in the kernel's accept queue. Each costs a file
    /// descriptor and a few KiB of buffers (~40 MiB at the default).
    pub connections_max: usize,
    /// Connections open at once from one address (IPv6: one /64); more are closed at once.
    pub connections_per_ip_max: usize,
    /// Seconds a connection has to send its first byte and a request its whole header; a
    /// request body gets three times this for each next piece.
    pub header_read_timeout_s: u64,
    /// Seconds without a request in flight after which a connection is closed.
    pub idle_timeout_s: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connections_max: 4096,
            connections_per_ip_max: 256,
            header_read_timeout_s: 10,
            idle_timeout_s: 120,
        }
    }
}

/// Open connections per address; an entry goes when its count reaches zero, so the map
/// holds at most `connections_max` entries.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted under its address; uncounted when dropped.
struct AddressPlace {
    counts: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressPlace> {
        let mut counts = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` fires, then waits (at most
/// [`SHUTDOWN_GRACE`]) for requests in flight. Handlers see the peer address as
/// `ConnectInfo<SocketAddr>`. Connections from `trusted_proxies` are not capped per address.
/// With `tls`, every connection is HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    trusted_proxies: Vec<IpAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_secs(limits.header_read_timeout_s.max(1));
    let idle_timeout = Duration::from_secs(limits.idle_timeout_s.max(1));
    let body_gap_timeout = header_timeout * 3;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        // Flow-control windows that grow with the connection's bandwidth-delay product: the
        // fixed 64 KiB default caps a chunk download at one window per round trip.
        .adaptive_window(true)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a reset before accept: back off, keep serving.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let place = if trusted_proxies.contains(&remote.ip()) {
            None
        } else {
            let key = crate::ratelimit::limit_key(remote.ip());
            match per_address.enter(key, limits.connections_per_ip_max) {
                Some(place) => Some(place),
                None => {
                    tracing::debug!(%remote, "connection refused: too many from this address");
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _place = place;
            if !first_byte_within(&stream, header_timeout).await {
                return;
            }
            let connection = Connection {
                app,
                builder,
                watcher,
                remote,
                body_gap_timeout,
                idle_timeout,
            };
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %remote, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown grace period: dropped");
    }
    Ok(())
}

/// One accepted connection, before its transport is chosen.
struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    remote: SocketAddr,
    body_gap_timeout: Duration,
    idle_timeout: Duration,
}

impl Connection {
    /// Serves HTTP on `io` until the peer leaves, it idles out or shutdown drains it.
    async fn serve<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            builder,
            watcher,
            remote,
            body_gap_timeout,
            idle_timeout,
        } = self;
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let request = request.map(|body| {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(
                        body_gap_timeout,
                        body,
                    ))
                });
                let in_flight = activity.start();
                let app = app.clone();
                async move {
                    let response = app.oneshot(request).await;
                    drop(in_flight);
                    response
                }
            })
        };
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let connection = watcher.watch(connection.into_owned());
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    tracing::debug!(%error, %remote, "connection ended");
                }
            }
            () = activity.idle_for(idle_timeout) => {
                tracing::debug!(%remote, "idle connection closed");
            }
        }
    }
}

/// Waits until the peer has sent at least one byte, for at most `timeout`.
async fn first_byte_within(stream: &TcpStream, timeout: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut byte)).await,
        Ok(Ok(count)) if count > 0
    )
}

/// Requests in flight on a connection, and when the last one ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

/// A request in flight; marks the connection used until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }

    /// Completes once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle = self.opened.elapsed().saturating_sub(last);
            if self.in_flight.load(Ordering::Acquire) == 0 && idle >= timeout {
                return;
            }
            let wait = if idle >= timeout {
                timeout
            } else {
                timeout - idle
            };
            tokio::time::sleep(wait).await;
        }
    }
}
