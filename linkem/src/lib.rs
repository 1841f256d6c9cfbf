//! A userspace link emulator. This machine has no kernel netem, so latency, jitter, loss,
//! reordering and bandwidth limits between Chorus processes are applied by relays that sit
//! between them.
//!
//! - [`Link`]: the sans-IO model of one direction of a link: given a packet's size and the
//!   time, it says when the packet arrives, or that it is lost. Choices come from a seeded RNG,
//!   so a seed replays the same losses and jitter for the same traffic.
//! - [`UdpRelay`]: a UDP relay (QUIC) applying one [`Link`] each way.
//! - [`TcpRelay`]: a TCP relay (HTTP) applying delay, jitter (order kept) and the bandwidth cap
//!   each way; TCP has its own loss recovery, so no loss is applied to it.
//!
//! Every queue is bounded: a link holds at most [`LinkConfig::queue_ms`] of backlog at its
//! bandwidth (tail drop beyond, as a router would), a UDP relay at most
//! [`UDP_CLIENTS_MAX`] clients.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way delay, milliseconds (half the round trip of a symmetric link).
    pub delay_ms: f64,
    /// Extra delay drawn uniformly from `0..jitter_ms` per packet (reorders UDP packets
    /// closer together than the jitter).
    pub jitter_ms: f64,
    /// Probability that a packet is lost (UDP only).
    pub loss: f64,
    /// Bandwidth cap, Mbit/s; `None` for none.
    pub mbps: Option<f64>,
    /// Most backlog at the bandwidth cap, milliseconds; packets beyond are dropped.
    pub queue_ms: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay_ms: 0.0,
            jitter_ms: 0.0,
            loss: 0.0,
            mbps: None,
            queue_ms: 200.0,
        }
    }
}

impl LinkConfig {
    /// A link with a one-way delay of half `rtt_ms`, and nothing else.
    pub fn half_rtt(rtt_ms: f64) -> Self {
        Self {
            delay_ms: rtt_ms / 2.0,
            ..Self::default()
        }
    }

    /// Checks the values: finite, not negative, loss a probability.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |value: f64| value.is_finite() && value >= 0.0;
        if !finite(self.delay_ms) || !finite(self.jitter_ms) || !finite(self.queue_ms) {
            return Err("delay, jitter and queue must be finite and not negative".into());
        }
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss {} is not a probability", self.loss));
        }
        if let Some(mbps) = self.mbps
            && !(mbps.is_finite() && mbps > 0.0)
        {
            return Err(format!("bandwidth {mbps} Mbit/s must be positive"));
        }
        Ok(())
    }
}

/// What a link did to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It arrives at this time (microseconds, the caller's clock).
    Deliver(u64),
    /// Lost on the way.
    Lost,
    /// Dropped: the queue at the bandwidth cap was full.
    QueueFull,
}

/// The sans-IO model of one direction of a link.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    rng: ChaCha8Rng,
    /// When the bandwidth-limited sender is free again (µs).
    busy_until_us: u64,
    /// The latest arrival handed out, for links that keep order.
    last_arrival_us: u64,
    keep_order: bool,
}

impl Link {
    /// A link with `config`, its random choices drawn from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            busy_until_us: 0,
            last_arrival_us: 0,
            keep_order: false,
        }
    }

    /// Arrivals never overtake each other (a byte stream).
    pub fn keeping_order(mut self) -> Self {
        self.keep_order = true;
        self
    }

    /// The settings.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// A packet of `bytes` sent at `now_us`: when it arrives, or why it does not.
    pub fn send(&mut self, now_us: u64, bytes: usize) -> Fate {
        if self.config.loss > 0.0 && self.rng.gen_bool(self.config.loss.min(1.0)) {
            return Fate::Lost;
        }
        let mut leaves = now_us;
        if let Some(mbps) = self.config.mbps {
            let start = self.busy_until_us.max(now_us);
            if (start - now_us) as f64 > self.config.queue_ms * 1000.0 {
                return Fate::QueueFull;
            }
            // Mbit/s = bits per µs.
            let serialize_us = (bytes as f64 * 8.0 / mbps).ceil() as u64;
            self.busy_until_us = start + serialize_us;
            leaves = self.busy_until_us;
        }
        let jitter = if self.config.jitter_ms > 0.0 {
            self.rng.gen_range(0.0..self.config.jitter_ms)
        } else {
            0.0
        };
        let mut arrives = leaves + ((self.config.delay_ms + jitter) * 1000.0).round() as u64;
        if self.keep_order {
            arrives = arrives.max(self.last_arrival_us);
            self.last_arrival_us = arrives;
        }
        Fate::Deliver(arrives)
    }
}

/// Most clients one UDP relay keeps (each gets its own socket toward the target).
pub const UDP_CLIENTS_MAX: usize = 4096;

/// Largest UDP datagram relayed.
const DATAGRAM_MAX: usize = 65_536;

/// Counters of a relay.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Packets (or TCP reads) delivered.
    pub delivered: std::sync::atomic::AtomicU64,
    /// Packets lost by the link model.
    pub lost: std::sync::atomic::AtomicU64,
    /// Packets dropped at a full queue.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl RelayStats {
    fn count(&self, fate: Fate) {
        use std::sync::atomic::Ordering::Relaxed;
        match fate {
            Fate::Deliver(_) => self.delivered.fetch_add(1, Relaxed),
            Fate::Lost => self.lost.fetch_add(1, Relaxed),
            Fate::QueueFull => self.dropped.fetch_add(1, Relaxed),
        };
    }
}

/// The time base of a relay: microseconds since it started.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
    fn at(&self, us: u64) -> Instant {
        self.0 + Duration::from_micros(us)
    }
}

/// Packets waiting for their arrival time, earliest first.
struct Pending {
    heap: BinaryHeap<std::cmp::Reverse<(u64, u64)>>,
    packets: HashMap<u64, Vec<u8>>,
    next: u64,
}

impl Pending {
    fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            packets: HashMap::new(),
            next: 0,
        }
    }
    fn push(&mut self, at_us: u64, packet: Vec<u8>) {
        self.next += 1;
        self.heap.push(std::cmp::Reverse((at_us, self.next)));
        self.packets.insert(self.next, packet);
    }
    fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|std::cmp::Reverse((at, _))| *at)
    }
    fn pop_due(&mut self, now_us: u64) -> Option<Vec<u8>> {
        let std::cmp::Reverse((at, key)) = *self.heap.peek()?;
        if at > now_us {
            return None;
        }
        self.heap.pop();
        self.packets.remove(&key)
    }
}

/// Runs one direction: packets in from `input`, through `link`, out by `send` at their time.
async fn pace<F, Fut>(
    clock: Clock,
    mut link: Link,
    mut input: mpsc::Receiver<Vec<u8>>,
    stats: Arc<RelayStats>,
    mut send: F,
) where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut pending = Pending::new();
    let mut open = true;
    while open || pending.next_at().is_some() {
        let wake = pending.next_at().map(|at| clock.at(at));
        tokio::select! {
            packet = input.recv(), if open => match packet {
                Some(packet) => {
                    let fate = link.send(clock.now_us(), packet.len());
                    stats.count(fate);
                    if let Fate::Deliver(at) = fate {
                        pending.push(at, packet);
                    }
                }
                None => open = false,
            },
            () = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = clock.now_us();
                while let Some(packet) = pending.pop_due(now) {
                    if !send(packet).await {
                        return;
                    }
                }
            }
        }
    }
}

/// A UDP relay: datagrams to its address go to `target` through the `up` link, answers come
/// back through the `down` link. Each client address gets its own socket toward the target,
/// so the target sees distinct peers.
#[derive(Debug)]
pub struct UdpRelay {
    addr: SocketAddr,
    stats: Arc<RelayStats>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    /// Relays datagrams arriving on `socket` to `target`. Link choices come from `seed`
    /// (each client's two directions get seeds derived from it and the order clients arrive
    /// in).
    pub fn start(
        socket: UdpSocket,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> std::io::Result<Self> {
        up.validate().map_err(std::io::Error::other)?;
        down.validate().map_err(std::io::Error::other)?;
        let addr = socket.local_addr()?;
        let stats = Arc::new(RelayStats::default());
        let socket = Arc::new(socket);
        let clock = Clock(Instant::now());
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(run_udp(
            socket,
            target,
            (up, down),
            seed,
            clock,
            stats.clone(),
            cut.clone(),
        ));
        Ok(Self {
            addr,
            stats,
            cut,
            task,
        })
    }

    /// Binds `listen` and relays to `target`.
    pub async fn bind(
        listen: SocketAddr,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> std::io::Result<Self> {
        Self::start(UdpSocket::bind(listen).await?, target, up, down, seed)
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the links did so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Cuts the link: from now on every packet either way is dropped, as when the far end
    /// crashes or its cable is pulled (no close, no ICMP: peers only see silence).
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Packets queued toward a pacing task before the relay drops them (the link's own queue
/// bound applies after).
const CHANNEL_PACKETS: usize = 4096;

async fn run_udp(
    socket: Arc<UdpSocket>,
    target: SocketAddr,
    (up, down): (LinkConfig, LinkConfig),
    seed: u64,
    clock: Clock,
    stats: Arc<RelayStats>,
    cut: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut clients: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut buffer = vec![0u8; DATAGRAM_MAX];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if cut.load(Relaxed) {
            continue;
        }
        let packet = buffer[..len].to_vec();
        if !clients.contains_key(&from) {
            if clients.len() >= UDP_CLIENTS_MAX {
                stats.count(Fate::QueueFull);
                continue;
            }
            // A loopback client keeps its own address upstream (127.0.0.0/8 is all local), so
            // a server behind the relay tells clients apart by address as it would on a
            // real network (per-address limits see each client, not the relay).
            let bind: SocketAddr = if from.ip().is_loopback() && from.is_ipv4() == target.is_ipv4()
            {
                (from.ip(), 0).into()
            } else if target.is_ipv4() {
                ([127, 0, 0, 1], 0).into()
            } else {
                (std::net::Ipv6Addr::LOCALHOST, 0).into()
            };
            let Ok(upstream) = UdpSocket::bind(bind).await else {
                continue;
            };
            if upstream.connect(target).await.is_err() {
                continue;
            }
            let upstream = Arc::new(upstream);
            let n = clients.len() as u64;
            let (up_tx, up_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_PACKETS);
            let (down_tx, down_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_PACKETS);
            // Client → target.
            let sender = upstream.clone();
            tasks.spawn(pace(
                clock,
                Link::new(up, seed ^ (n * 2 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                up_rx,
                stats.clone(),
                move |packet| {
                    let sender = sender.clone();
                    async move {
                        let _ = sender.send(&packet).await;
                        true
                    }
                },
            ));
            // Target → client.
            let reply = socket.clone();
            tasks.spawn(pace(
                clock,
                Link::new(down, seed ^ (n * 2 + 2).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                down_rx,
                stats.clone(),
                move |packet| {
                    let reply = reply.clone();
                    async move {
                        let _ = reply.send_to(&packet, from).await;
                        true
                    }
                },
            ));
            let receiver = upstream;
            let cut = cut.clone();
            tasks.spawn(async move {
                let mut buffer = vec![0u8; DATAGRAM_MAX];
                while let Ok(len) = receiver.recv(&mut buffer).await {
                    if cut.load(Relaxed) {
                        continue;
                    }
                    if down_tx.try_send(buffer[..len].to_vec()).is_err() && down_tx.is_closed() {
                        break;
                    }
                }
            });
            clients.insert(from, up_tx);
        }
        if let Some(up) = clients.get(&from) {
            // A full channel is a full queue: the packet is dropped, as a router would.
            if up.try_send(packet).is_err() {
                stats.count(Fate::QueueFull);
            }
        }
    }
}

/// A TCP relay: connections to its address are joined to `target`, each direction paced by
/// a [`Link`] that keeps order (delay, jitter, bandwidth; no loss).
#[derive(Debug)]
pub struct TcpRelay {
    addr: SocketAddr,
    stats: Arc<RelayStats>,
    task: tokio::task::JoinHandle<()>,
}

/// Most connections one TCP relay carries at once.
pub const TCP_CONNECTIONS_MAX: usize = 1024;

impl TcpRelay {
    /// Relays connections accepted on `listener` to `target`.
    pub fn start(
        listener: TcpListener,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> std::io::Result<Self> {
        up.validate().map_err(std::io::Error::other)?;
        down.validate().map_err(std::io::Error::other)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(RelayStats::default());
        let clock = Clock(Instant::now());
        let counters = stats.clone();
        let task = tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(TCP_CONNECTIONS_MAX));
            let mut n = 0u64;
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                n += 1;
                let stats = counters.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    // Connecting costs the round trip it would cost on the emulated link.
                    let handshake = Duration::from_secs_f64((up.delay_ms + down.delay_ms) / 1000.0);
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::time::sleep(handshake).await;
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let seed_up = seed ^ (n * 2 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let seed_down = seed ^ (n * 2 + 2).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let forward = pipe(
                        clock,
                        Link::new(up, seed_up).keeping_order(),
                        in_read,
                        out_write,
                        stats.clone(),
                    );
                    let back = pipe(
                        clock,
                        Link::new(down, seed_down).keeping_order(),
                        out_read,
                        in_write,
                        stats,
                    );
                    tokio::join!(forward, back);
                });
            }
        });
        Ok(Self { addr, stats, task })
    }

    /// Binds `listen` and relays to `target`.
    pub async fn bind(
        listen: SocketAddr,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> std::io::Result<Self> {
        Self::start(TcpListener::bind(listen).await?, target, up, down, seed)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the links did so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One direction of a TCP connection: reads, paces, writes; a closed side closes the other.
async fn pipe(
    clock: Clock,
    link: Link,
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: tokio::net::tcp::OwnedWriteHalf,
    stats: Arc<RelayStats>,
) {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    let to = Arc::new(tokio::sync::Mutex::new(to));
    let writer = to.clone();
    // A TCP link never loses bytes: a full queue waits instead (back-pressure).
    let unlimited = LinkConfig {
        loss: 0.0,
        queue_ms: f64::MAX,
        ..*link.config()
    };
    let link = Link {
        config: unlimited,
        ..link
    };
    let pacing = pace(clock, link, rx, stats, move |bytes| {
        let writer = writer.clone();
        async move { writer.lock().await.write_all(&bytes).await.is_ok() }
    });
    let reading = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(len) => {
                    if tx.send(buffer[..len].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::join!(reading, pacing);
    let _ = to.lock().await.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_jitter_loss_and_bandwidth_follow_the_config_and_the_seed() {
        let config = LinkConfig {
            delay_ms: 20.0,
            jitter_ms: 5.0,
            loss: 0.1,
            mbps: Some(8.0),
            queue_ms: 50.0,
        };
        let run = |seed| {
            let mut link = Link::new(config, seed);
            (0..1000)
                .map(|i| link.send(i * 2_000, 1_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1), "a seed replays");
        assert_ne!(run(1), run(2));
        let fates = run(1);
        let lost = fates.iter().filter(|fate| **fate == Fate::Lost).count();
        assert!((60..140).contains(&lost), "{lost} of 1000 lost at 10%");
        for (i, fate) in fates.iter().enumerate() {
            if let Fate::Deliver(at) = fate {
                // 1000 bytes at 8 Mbit/s = 1 ms on the wire, then 20–25 ms.
                let sent = i as u64 * 2_000;
                assert!(*at >= sent + 21_000 && *at <= sent + 26_000, "{i}: {at}");
            }
        }
        // Faster than the link: the backlog grows to the queue bound, then packets drop.
        let mut link = Link::new(
            LinkConfig {
                jitter_ms: 0.0,
                loss: 0.0,
                ..config
            },
            3,
        );
        let fates: Vec<Fate> = (0..200).map(|_| link.send(0, 1_000)).collect();
        assert_eq!(
            fates
                .iter()
                .filter(|fate| **fate == Fate::QueueFull)
                .count(),
            149
        );
        // Order kept when asked, whatever the jitter.
        let mut ordered = Link::new(
            LinkConfig {
                jitter_ms: 30.0,
                ..LinkConfig::default()
            },
            4,
        )
        .keeping_order();
        let times: Vec<u64> = (0..100)
            .filter_map(|i| match ordered.send(i * 100, 10) {
                Fate::Deliver(at) => Some(at),
                _ => None,
            })
            .collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(
            LinkConfig {
                loss: 1.5,
                ..LinkConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LinkConfig {
                delay_ms: -1.0,
                ..LinkConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LinkConfig {
                mbps: Some(0.0),
                ..LinkConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(LinkConfig::half_rtt(40.0).validate().is_ok());
    }
}
