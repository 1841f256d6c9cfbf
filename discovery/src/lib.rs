//! Peer discovery that does not depend on the tracker, over libp2p (DESIGN.md §5).
//!
//! - **Kademlia provider records keyed by rendition id**: a node that holds a rendition
//!   provides the 32-byte rendition id; a node looking for peers asks the DHT for its
//!   providers. Provider records name libp2p peers, so each node also stores a small signed-by-
//!   transport record under `chorus/peer/<peer id>` with its Chorus [`PeerInfo`] (node id, QUIC
//!   addresses, region, role). The libp2p key *is* the node's Chorus ed25519 key, so a record
//!   is accepted only when its node id is the key behind the provider's peer id, and the QUIC
//!   handshake proves the node id again when the peer is dialled.
//! - **mDNS** finds peers on the same LAN without any bootstrap node.
//! - **AutoNAT** tells a node whether others can dial it. A node that is not publicly
//!   reachable does not advertise addresses: it only dials out.
//!
//! One task owns the libp2p swarm; [`Discovery`] talks to it over a bounded channel. Every
//! query has a timeout, every answer a cap. Region rules do not live in the DHT: the caller
//! filters by the region in each [`PeerInfo`] against its license's markets, and the serving
//! peer checks the license again before sending a chunk.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, Quorum, Record};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, identify, mdns, noise, tcp, yamux};
use protocol::wire::{NODE_ADDRS_MAX, PeerInfo};
use protocol::{Identity, NodeId, RenditionId, codec};
use tokio::sync::{mpsc, oneshot, watch};

pub use libp2p::Multiaddr as Addr;

/// The Kademlia protocol name of Chorus's DHT (separate from the public IPFS DHT).
pub const KAD_PROTOCOL: &str = "/chorus/kad/1";
/// Most providers collected for one rendition.
pub const PROVIDERS_MAX: usize = 20;
/// Most renditions one node provides at once.
pub const PROVIDED_MAX: usize = 4096;
/// Queries in flight at once; more wait for the channel.
pub const QUERIES_MAX: usize = 256;
const RECORD_PREFIX: &[u8] = b"chorus/peer/";

/// Settings of the discovery node.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Where libp2p listens (TCP), e.g. `/ip4/0.0.0.0/tcp/4473`.
    pub listen: Multiaddr,
    /// Known DHT nodes, each `/ip4/.../tcp/.../p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the LAN by multicast DNS.
    pub mdns: bool,
    /// AutoNAT: probe only with peers at global addresses (true on the internet; false in a
    /// devnet on loopback).
    pub autonat_global_only: bool,
    /// Longest a DHT query may take.
    pub query_timeout: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            listen: "/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"),
            bootstrap: Vec::new(),
            mdns: true,
            autonat_global_only: true,
            query_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether other nodes can dial this one, as AutoNAT last concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Not known yet (too few probes).
    Unknown,
    /// Others reached it.
    Public,
    /// Others could not reach it: dial out only.
    Private,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// libp2p could not be set up.
    #[error("libp2p setup: {0}")]
    Setup(String),
    /// The discovery task has stopped.
    #[error("discovery stopped")]
    Stopped,
    /// A DHT operation failed.
    #[error("dht: {0}")]
    Dht(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
    autonat: autonat::Behaviour,
    mdns: libp2p::swarm::behaviour::toggle::Toggle<mdns::tokio::Behaviour>,
}

enum Command {
    Publish {
        me: PeerInfo,
        renditions: Vec<RenditionId>,
        reply: oneshot::Sender<Result<(), DiscoveryError>>,
    },
    Providers {
        rendition: RenditionId,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    PeerRecord {
        peer: PeerId,
        reply: oneshot::Sender<Option<PeerInfo>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
    },
}

/// A handle on the discovery node (cheap to clone).
#[derive(Debug, Clone)]
pub struct Discovery {
    commands: mpsc::Sender<Command>,
    reachability: watch::Receiver<Reachability>,
    peer_id: PeerId,
    node_id: NodeId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// The libp2p peer id of a Chorus node id (the same ed25519 key).
pub fn peer_id_of(node: &NodeId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(node.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

fn record_key(peer: &PeerId) -> kad::RecordKey {
    let mut key = RECORD_PREFIX.to_vec();
    key.extend_from_slice(&peer.to_bytes());
    kad::RecordKey::new(&key)
}

/// Decodes a peer record and checks that it belongs to `provider`.
fn decode_record(provider: &PeerId, value: &[u8]) -> Option<PeerInfo> {
    let info: PeerInfo = codec::decode(value).ok()?;
    if info.addrs.len() > NODE_ADDRS_MAX || peer_id_of(&info.node)? != *provider {
        return None;
    }
    Some(info)
}

impl Discovery {
    /// Starts a discovery node with the Chorus identity's key.
    pub async fn start(
        identity: &Identity,
        config: DiscoveryConfig,
    ) -> Result<Self, DiscoveryError> {
        let setup = |error: &dyn std::fmt::Display| DiscoveryError::Setup(error.to_string());
        let mut secret = *identity.secret_bytes();
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|error| setup(&error))?;
        let peer_id = keypair.public().to_peer_id();
        let query_timeout = config.query_timeout;
        let autonat_config = autonat::Config {
            only_global_ips: config.autonat_global_only,
            boot_delay: Duration::from_secs(2),
            retry_interval: Duration::from_secs(30),
            throttle_server_period: Duration::from_secs(5),
            ..autonat::Config::default()
        };
        let use_mdns = config.mdns;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|error| setup(&error))?
            .with_behaviour(|key| {
                let local = key.public().to_peer_id();
                let mut kad_config = kad::Config::new(libp2p::StreamProtocol::new(KAD_PROTOCOL));
                kad_config.set_query_timeout(query_timeout);
                let mut kad = kad::Behaviour::with_config(
                    local,
                    kad::store::MemoryStore::new(local),
                    kad_config,
                );
                // Serve the DHT even before an external address is confirmed (LANs, devnets).
                kad.set_mode(Some(kad::Mode::Server));
                let mdns = if use_mdns {
                    Some(mdns::tokio::Behaviour::new(mdns::Config::default(), local)?)
                } else {
                    None
                };
                Ok(Behaviour {
                    kad,
                    identify: identify::Behaviour::new(identify::Config::new(
                        "/chorus/id/1".to_string(),
                        key.public(),
                    )),
                    autonat: autonat::Behaviour::new(local, autonat_config),
                    mdns: mdns.into(),
                })
            })
            .map_err(|error| setup(&error))?
            .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm
            .listen_on(config.listen.clone())
            .map_err(|error| setup(&error))?;
        for addr in &config.bootstrap {
            let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(DiscoveryError::Setup(format!(
                    "bootstrap address {addr} lacks /p2p/<peer id>"
                )));
            };
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm
                .behaviour_mut()
                .autonat
                .add_server(peer, Some(addr.clone()));
            let _ = swarm.dial(addr.clone());
        }
        if !config.bootstrap.is_empty() {
            let _ = swarm.behaviour_mut().kad.bootstrap();
        }
        let (commands, receiver) = mpsc::channel(QUERIES_MAX);
        let (reachability_tx, reachability) = watch::channel(Reachability::Unknown);
        tokio::spawn(run(swarm, receiver, reachability_tx));
        Ok(Self {
            commands,
            reachability,
            peer_id,
            node_id: identity.node_id(),
        })
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's Chorus node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// What AutoNAT concluded so far.
    pub fn reachability(&self) -> Reachability {
        *self.reachability.borrow()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DiscoveryError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| DiscoveryError::Stopped)?;
        answer.await.map_err(|_| DiscoveryError::Stopped)
    }

    /// The addresses libp2p listens on, each with `/p2p/<peer id>` (give them to others as
    /// bootstrap addresses).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, DiscoveryError> {
        let peer = self.peer_id;
        let addrs = self.ask(|reply| Command::ListenAddrs { reply }).await?;
        Ok(addrs
            .into_iter()
            .map(|addr| addr.with(libp2p::multiaddr::Protocol::P2p(peer)))
            .collect())
    }

    /// Dials a libp2p address (e.g. a peer learnt out of band) and adds it to the DHT.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DiscoveryError> {
        self.commands
            .send(Command::Dial { addr })
            .await
            .map_err(|_| DiscoveryError::Stopped)
    }

    /// Publishes this node's peer record (`me`) and provides `renditions` (at most
    /// [`PROVIDED_MAX`]; the rest are ignored). A node that is not publicly reachable
    /// publishes `me` without addresses. Call again when holdings change; records are
    /// republished by the DHT's own schedule.
    pub async fn publish(
        &self,
        mut me: PeerInfo,
        mut renditions: Vec<RenditionId>,
    ) -> Result<(), DiscoveryError> {
        if self.reachability() == Reachability::Private {
            me.addrs.clear();
        }
        me.addrs.truncate(NODE_ADDRS_MAX);
        renditions.truncate(PROVIDED_MAX);
        self.ask(|reply| Command::Publish {
            me,
            renditions,
            reply,
        })
        .await?
    }

    /// Peers that provide `rendition`, with their Chorus addresses, at most `limit`
    /// (and at most [`PROVIDERS_MAX`]). Never this node itself; never a peer without a
    /// dialable address.
    pub async fn find_peers(
        &self,
        rendition: &RenditionId,
        limit: usize,
    ) -> Result<Vec<PeerInfo>, DiscoveryError> {
        let rendition = *rendition;
        let providers = self
            .ask(|reply| Command::Providers { rendition, reply })
            .await?;
        let mut found = Vec::new();
        for peer in providers.into_iter().filter(|peer| *peer != self.peer_id) {
            if found.len() >= limit.min(PROVIDERS_MAX) {
                break;
            }
            if let Some(info) = self
                .ask(|reply| Command::PeerRecord { peer, reply })
                .await?
                && !info.addrs.is_empty()
            {
                found.push(info);
            }
        }
        Ok(found)
    }
}

enum Pending {
    Providers {
        reply: oneshot::Sender<Vec<PeerId>>,
        found: HashSet<PeerId>,
    },
    Record {
        peer: PeerId,
        reply: oneshot::Sender<Option<PeerInfo>>,
    },
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    reachability: watch::Sender<Reachability>,
) {
    let mut pending: HashMap<QueryId, Pending> = HashMap::new();
    let mut provided: HashSet<RenditionId> = HashSet::new();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                handle_command(&mut swarm, command, &mut pending, &mut provided);
            }
            event = swarm.select_next_some() => {
                handle_event(&mut swarm, event, &mut pending, &reachability);
            }
        }
    }
}

fn handle_command(
    swarm: &mut Swarm<Behaviour>,
    command: Command,
    pending: &mut HashMap<QueryId, Pending>,
    provided: &mut HashSet<RenditionId>,
) {
    let kad = &mut swarm.behaviour_mut().kad;
    match command {
        Command::Publish {
            me,
            renditions,
            reply,
        } => {
            let result = (|| {
                let value =
                    codec::encode(&me).map_err(|error| DiscoveryError::Dht(error.to_string()))?;
                let key = record_key(
                    &peer_id_of(&me.node).ok_or(DiscoveryError::Dht("bad node id".into()))?,
                );
                kad.put_record(Record::new(key, value), Quorum::One)
                    .map_err(|error| DiscoveryError::Dht(error.to_string()))?;
                let wanted: HashSet<RenditionId> = renditions.into_iter().collect();
                for gone in provided.difference(&wanted) {
                    kad.stop_providing(&kad::RecordKey::new(gone.as_bytes()));
                }
                for rendition in &wanted {
                    if !provided.contains(rendition) {
                        kad.start_providing(kad::RecordKey::new(rendition.as_bytes()))
                            .map_err(|error| DiscoveryError::Dht(error.to_string()))?;
                    }
                }
                *provided = wanted;
                Ok(())
            })();
            let _ = reply.send(result);
        }
        Command::Providers { rendition, reply } => {
            if pending.len() >= QUERIES_MAX {
                let _ = reply.send(Vec::new());
                return;
            }
            let id = kad.get_providers(kad::RecordKey::new(rendition.as_bytes()));
            pending.insert(
                id,
                Pending::Providers {
                    reply,
                    found: HashSet::new(),
                },
            );
        }
        Command::PeerRecord { peer, reply } => {
            // A record this node already stores answers at once.
            if let Some(record) = kad::store::RecordStore::get(kad.store_mut(), &record_key(&peer))
            {
                let _ = reply.send(decode_record(&peer, &record.value));
                return;
            }
            if pending.len() >= QUERIES_MAX {
                let _ = reply.send(None);
                return;
            }
            let id = kad.get_record(record_key(&peer));
            pending.insert(id, Pending::Record { peer, reply });
        }
        Command::ListenAddrs { reply } => {
            let _ = reply.send(swarm.listeners().cloned().collect());
        }
        Command::Dial { addr } => {
            if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            let _ = swarm.dial(addr);
        }
    }
}

fn handle_event(
    swarm: &mut Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    pending: &mut HashMap<QueryId, Pending>,
    reachability: &watch::Sender<Reachability>,
) {
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
            id,
            result,
            step,
            ..
        })) => match result {
            QueryResult::GetProviders(result) => {
                let done = match (result, pending.get_mut(&id)) {
                    (
                        Ok(GetProvidersOk::FoundProviders { providers, .. }),
                        Some(Pending::Providers { found, .. }),
                    ) => {
                        found.extend(providers);
                        step.last || found.len() >= PROVIDERS_MAX
                    }
                    _ => true,
                };
                if done {
                    if let Some(mut query) = swarm.behaviour_mut().kad.query_mut(&id) {
                        query.finish();
                    }
                    if let Some(Pending::Providers { reply, found }) = pending.remove(&id) {
                        let _ = reply.send(found.into_iter().take(PROVIDERS_MAX).collect());
                    }
                }
            }
            QueryResult::GetRecord(result) => {
                let answer = match (&result, pending.get(&id)) {
                    (Ok(GetRecordOk::FoundRecord(found)), Some(Pending::Record { peer, .. })) => {
                        decode_record(peer, &found.record.value)
                    }
                    _ => None,
                };
                if answer.is_some() || step.last || result.is_err() {
                    if let Some(mut query) = swarm.behaviour_mut().kad.query_mut(&id) {
                        query.finish();
                    }
                    if let Some(Pending::Record { reply, .. }) = pending.remove(&id) {
                        let _ = reply.send(answer);
                    }
                }
            }
            _ => {}
        },
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
            peer_id,
            info,
            ..
        })) => {
            let speaks_kad = info
                .protocols
                .iter()
                .any(|protocol| protocol.as_ref() == KAD_PROTOCOL);
            if speaks_kad {
                for addr in info.listen_addrs.into_iter().take(NODE_ADDRS_MAX) {
                    swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
            for (peer, addr) in found.into_iter().take(64) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                let _ = swarm.dial(addr);
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged {
            new,
            ..
        })) => {
            let status = match new {
                autonat::NatStatus::Public(_) => Reachability::Public,
                autonat::NatStatus::Private => Reachability::Private,
                autonat::NatStatus::Unknown => Reachability::Unknown,
            };
            tracing::info!(?status, "AutoNAT reachability");
            let _ = reachability.send(status);
        }
        _ => {}
    }
}
