//! Wire messages of the `chorus/4` protocol.
//!
//! # Spec
//!
//! **Goals.** Move sealed chunks and manifests between any two Chorus nodes (origin, super-node,
//! client) and carry tracker announces and peer queries, over QUIC, with every input bounded
//! and every chunk verifiable against its id. **Non-goals:** carrying content keys (those only
//! travel from the origin to a licensed client over HTTPS), catalog and account traffic (HTTP).
//!
//! **Connection.** QUIC with ALPN [`ALPN`] (`chorus/4`). Both ends present a self-signed
//! certificate for their ed25519 node key; the dialer checks the server's key against the node
//! id it meant to reach, and the server learns the client's node id from its certificate.
//!
//! **Message flow.** One bidirectional stream per request. The requester writes one
//! [`Request`] frame and finishes its send side; the responder writes zero or more
//! [`Response`] frames and finishes. A range is complete once `count` answers have arrived,
//! so the requester need not wait for the end of the stream. Frames are a 4-byte big-endian length and a bincode body
//! (see [`crate::codec`]).
//!
//! | request | responses |
//! |---|---|
//! | `ChunkRange` | exactly one `Chunk` or `ChunkMissing` per index, in index order; or one `Error` |
//! | `Manifest` | `Manifest`, or `Error` |
//! | `Announce` | `AnnounceAck`, or `Error` |
//! | `PeerQuery` | `PeerList`, or `Error` |
//! | `Ping` | `Pong` |
//! | `Popular` | `Popular`, or `Error` |
//! | `Report` | `Reported`, or `Error` |
//! | `Refresh` | `AnnounceAck`, or `Error` (`set_unknown`: announce in full) |
//!
//! **Limits.** Frame body ≤ [`crate::codec::FRAME_BYTES_MAX`]; a range asks for at most
//! [`RANGE_CHUNKS_MAX`] chunks; announces carry at most [`ANNOUNCE_RENDITIONS_MAX`] renditions,
//! [`ANNOUNCE_PROOFS_MAX`] proofs, [`ANNOUNCE_PARTIAL_MAX`] partial holdings and
//! [`NODE_ADDRS_MAX`] addresses; peer lists at most [`PEER_LIST_MAX`] peers; popularity
//! lists at most [`POPULAR_LIST_MAX`] renditions; error
//! messages at most [`ERROR_MESSAGE_BYTES_MAX`] bytes. Anything larger is a protocol error.
//!
//! **Partial holders** (since `chorus/3`). A node downloading a rendition announces it as a
//! [`Partial`]: the chunks it holds from the first without a gap, and how fast that prefix
//! grows. A tracker lists it among the rendition's holders with a [`Holding`] extrapolated to
//! the answer's time, ranked after the complete holders of the same region and role, and
//! evicted first when a rendition's list of holders is full; a requester
//! asks it only for chunks it will hold in time. A holder asked for a chunk it does not hold
//! answers `ChunkMissing` with `held`, its prefix now, so a requester corrects its estimate
//! instead of taking the miss for a fault.
//!
//! **Chunk timing** (`chorus/4`). Manifests are version 2: they carry, for each chunk, how far
//! playback reaches once it and the chunks before it are held (from the Ogg granule positions,
//! [`crate::ogg`]). A `chorus/3` node would refuse them, so the ALPN changed with them.
//!
//! **Refresh.** An announce names everything a node holds (up to
//! [`ANNOUNCE_RENDITIONS_MAX`] renditions), yet most announces repeat the last one to keep it
//! alive. A node whose set has not changed since its last accepted announce sends a
//! [`Refresh`] instead: the set's [`announce_set`] digest, its addresses, spare upload and
//! partial progress, and its credential. A tracker that holds that set for the node, live,
//! fully proven and with the node's rank unchanged, refreshes it and acks as for an announce;
//! otherwise it answers `Error` with [`ErrorCode::SetUnknown`] and the node announces in full.
//! A tracker that predates `Refresh` fails to decode it, and the node announces in full too.
//!
//! **Verification.** A sender checks a chunk against its id before sending it; a receiver
//! checks it against the manifest before using or storing it. License tokens are checked by
//! whoever serves a chunk or answers a peer query.
//!
//! **Errors.** [`ErrorCode`] values and their names are stable; new codes are only appended.

use std::net::SocketAddr;

use crate::codec::{CodecError, Validate};
use crate::content::{CHUNK_BYTES_MAX, TAG_BYTES};
use crate::ids::{NodeId, Region, RenditionId};
use crate::license::{LicenseError, LicenseToken};
use crate::manifest::SignedManifest;

/// The versioned QUIC application protocol id.
pub const ALPN: &[u8] = b"chorus/4";
/// Most chunks one range request may ask for (4 MiB at 16 KiB chunks).
pub const RANGE_CHUNKS_MAX: u32 = 256;
/// Most renditions in one announce.
pub const ANNOUNCE_RENDITIONS_MAX: usize = 1024;
/// Most license tokens one announce carries as proof of what it holds
/// ([`Announce::proofs`]); a node holding more proves the rest in later announces.
pub const ANNOUNCE_PROOFS_MAX: usize = 64;
/// Most renditions one announce names as still downloading ([`Announce::partial`]): a
/// player downloads the track it plays and the next.
pub const ANNOUNCE_PARTIAL_MAX: usize = 8;
/// Most addresses a node advertises.
pub const NODE_ADDRS_MAX: usize = 8;
/// Most peers in one peer list.
pub const PEER_LIST_MAX: usize = 50;
/// Most renditions in one popularity list.
pub const POPULAR_LIST_MAX: usize = 1024;
/// Longest error message text, in bytes.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 512;
/// Largest chunk payload in a [`Response::Chunk`].
pub const CHUNK_PAYLOAD_BYTES_MAX: usize = CHUNK_BYTES_MAX as usize + TAG_BYTES;

/// How urgent a request is; servers serve lower values first.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, bincode::Encode, bincode::Decode,
)]
pub enum Priority {
    /// Needed for the track playing now.
    Playing,
    /// The next track in the queue.
    Prefetch,
    /// Offline download in the background.
    OfflineSync,
}

/// What kind of node announces itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub enum NodeRole {
    /// A listener's client.
    Client,
    /// An always-on super-node.
    SuperNode,
    /// An origin server.
    Origin,
}

/// Ask for chunks `first .. first + count` of a rendition.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ChunkRangeRequest {
    /// The rendition.
    pub rendition: RenditionId,
    /// First chunk index.
    pub first: u32,
    /// Number of chunks, 1..=[`RANGE_CHUNKS_MAX`].
    pub count: u32,
    /// Urgency.
    pub priority: Priority,
    /// A token bound to the requesting node that covers the rendition.
    pub license: LicenseToken,
}

/// Ask for the signed manifest of a rendition.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ManifestRequest {
    /// The rendition.
    pub rendition: RenditionId,
    /// A token bound to the requesting node that covers the rendition.
    pub license: LicenseToken,
}

/// Tell a tracker what this node holds (soft state: repeat before the ack's TTL runs out).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Announce {
    /// The node's region.
    pub region: Region,
    /// What kind of node it is.
    pub role: NodeRole,
    /// Where it accepts QUIC connections (empty when it only dials out).
    pub addrs: Vec<SocketAddr>,
    /// Renditions it holds in full and serves.
    pub renditions: Vec<RenditionId>,
    /// Renditions it is downloading and serves the held part of (at most
    /// [`ANNOUNCE_PARTIAL_MAX`]; licensed like `renditions`).
    pub partial: Vec<Partial>,
    /// Upload capacity it has to spare, in kbit/s. Self-declared: a tracker caps it and
    /// ranks by the rates peers report this node delivered, when it has them.
    pub upload_spare_kbps: u32,
    /// A token bound to the announcing node (role token for super-nodes).
    pub credential: LicenseToken,
    /// Tokens bound to the announcing node that cover renditions in `renditions` the
    /// credential does not: a node may announce only what it was licensed to fetch. Expired
    /// tokens count (the node fetched under them while they were current). At most
    /// [`ANNOUNCE_PROOFS_MAX`]; a tracker remembers what a node proved, so only renditions
    /// new since the last announce, or named `unproven` in the last ack, need one.
    pub proofs: Vec<LicenseToken>,
}

/// Keep the set of a node's last accepted [`Announce`] alive without naming it again (see
/// the module's **Refresh**): what an announce says besides the set.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Refresh {
    /// [`announce_set`] of the announce this refreshes.
    pub set: [u8; 16],
    /// The node's region.
    pub region: Region,
    /// What kind of node it is.
    pub role: NodeRole,
    /// Where it accepts QUIC connections now.
    pub addrs: Vec<SocketAddr>,
    /// Progress of the partial holdings the set names (by rendition; others are ignored).
    pub partial: Vec<Partial>,
    /// Upload capacity it has to spare now, kbit/s.
    pub upload_spare_kbps: u32,
    /// A token bound to the node (role token for super-nodes), as in an announce.
    pub credential: LicenseToken,
}

/// The digest a [`Refresh`] names an announce's set by: order-insensitive, and cheap on the
/// node and the tracker alike (a few nanoseconds a rendition). Two 64-bit lanes start at 0.
/// For each rendition held whole, `h` starts at the seed `0x243f6a8885a308d3` and takes each
/// of the id's four little-endian 64-bit words in turn as `h = set_mix(h ^ word)`; then
/// `lane0 += h` and `lane1 += set_mix(h ^ C)`, with `C = 0xa4093822299f31d0`. After the list,
/// `lane0 += n × (C ^ seed)` and `lane1 += n × seed` for its length `n`. The renditions held
/// in part follow the same way with the seed `0x13198a2e03707344`. The digest is lane 0 then
/// lane 1, little-endian; arithmetic wraps. For content-addressed ids two different sets
/// agree by chance with a probability of about 2^-64 (a tracker compares 56 bits of it:
/// 2^-56). The digest is not keyed: ids chosen to make sets collide are possible, and gain
/// the node nothing, since a tracker only ever matches a digest against that node's own
/// accepted, already proven set.
pub fn announce_set<'a>(
    renditions: impl Iterator<Item = &'a RenditionId>,
    partial: impl Iterator<Item = &'a RenditionId>,
) -> [u8; 16] {
    let mut lanes = [0u64; 2];
    add_to_lanes(&mut lanes, renditions, 0x243f_6a88_85a3_08d3);
    add_to_lanes(&mut lanes, partial, 0x1319_8a2e_0370_7344);
    let mut set = [0; 16];
    set[..8].copy_from_slice(&lanes[0].to_le_bytes());
    set[8..].copy_from_slice(&lanes[1].to_le_bytes());
    set
}

/// One list's share of [`announce_set`]'s lanes, its renditions mixed from `seed`.
fn add_to_lanes<'a>(lanes: &mut [u64; 2], list: impl Iterator<Item = &'a RenditionId>, seed: u64) {
    const COUNT: u64 = 0xa409_3822_299f_31d0;
    let mut count = 0u64;
    for rendition in list {
        let mut h = seed;
        for word in rendition.0.chunks_exact(8) {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            h = set_mix(h ^ u64::from_le_bytes(bytes));
        }
        lanes[0] = lanes[0].wrapping_add(h);
        lanes[1] = lanes[1].wrapping_add(set_mix(h ^ COUNT));
        count += 1;
    }
    lanes[0] = lanes[0].wrapping_add(count.wrapping_mul(COUNT ^ seed));
    lanes[1] = lanes[1].wrapping_add(count.wrapping_mul(seed));
}

/// The mix of [`announce_set`]: SplitMix64's finalizer.
pub fn set_mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Announce {
    /// [`announce_set`] of this announce.
    pub fn set(&self) -> [u8; 16] {
        announce_set(
            self.renditions.iter(),
            self.partial.iter().map(|partial| &partial.rendition),
        )
    }
}

/// A rendition a node is still downloading: what it holds and how fast that grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Partial {
    /// The rendition.
    pub rendition: RenditionId,
    /// Chunks it holds from the first on, without a gap.
    pub held: u32,
    /// Chunks that prefix grows by per minute (0 when it has stopped growing).
    pub per_min: u32,
}

/// What a partial holder in a peer list holds, as the tracker reckons it at the answer:
/// the prefix it announced, grown at its announced rate since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Holding {
    /// Chunks held from the first on, as of the answer (may exceed the rendition's count:
    /// the tracker does not know it).
    pub held: u32,
    /// Chunks the prefix grows by per minute.
    pub per_min: u32,
}

/// Ask a tracker who holds a rendition.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PeerQuery {
    /// The rendition.
    pub rendition: RenditionId,
    /// Most peers wanted, 1..=[`PEER_LIST_MAX`].
    pub want: u16,
    /// A token bound to the asking node that covers the rendition.
    pub license: LicenseToken,
}

/// One peer in a peer list.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PeerInfo {
    /// The peer's node id (the dialer checks it in the TLS handshake).
    pub node: NodeId,
    /// Where to reach it.
    pub addrs: Vec<SocketAddr>,
    /// Its region.
    pub region: Region,
    /// What kind of node it is.
    pub role: NodeRole,
    /// Spare upload capacity it announced, in kbit/s.
    pub upload_spare_kbps: u32,
    /// `None` for a holder of the whole rendition; what it holds so far for a node still
    /// downloading it.
    pub holding: Option<Holding>,
}

/// A tracker's answer to a [`PeerQuery`].
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PeerList {
    /// The rendition asked about.
    pub rendition: RenditionId,
    /// Peers, best first.
    pub peers: Vec<PeerInfo>,
}

/// Ask a tracker which renditions are most in demand (super-nodes pin these).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PopularQuery {
    /// Most renditions wanted, 1..=[`POPULAR_LIST_MAX`].
    pub want: u16,
    /// A token bound to the asking node (the super-node role token).
    pub credential: LicenseToken,
}

/// One rendition in a popularity list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PopularEntry {
    /// The rendition.
    pub rendition: RenditionId,
    /// Peer queries for it, decayed with the tracker's half-life (a relative weight).
    pub score: u32,
}

/// A tracker's answer to a [`PopularQuery`], most popular first.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PopularList {
    /// Renditions, most popular first.
    pub renditions: Vec<PopularEntry>,
}

/// Why a client reports a listed peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
pub enum ReportReason {
    /// It answered `ChunkMissing` or `NotFound` for a rendition it announced.
    Missing,
    /// It sent a chunk that failed its hash.
    BadChunk,
    /// It could not be reached at its announced addresses.
    Unreachable,
    /// Not a failure: it served the rendition, at this rate (kbit/s, as measured by the
    /// reporter). Trackers rank holders by the rates reporters measured.
    Delivered {
        /// The measured rate, kbit/s.
        kbps: u32,
    },
}

/// Tell a tracker how a peer it listed served a rendition: a failure, or the rate it
/// delivered ([`ReportReason::Delivered`]).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PeerReport {
    /// The peer reported on.
    pub peer: NodeId,
    /// The rendition it served, or failed to.
    pub rendition: RenditionId,
    /// What went wrong, or the rate it delivered.
    pub reason: ReportReason,
    /// A token bound to the reporting node that covers the rendition.
    pub license: LicenseToken,
}

/// Stable error codes. The numeric value (declaration order) and the name never change; new
/// codes are appended at the end.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, bincode::Encode, bincode::Decode)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or breaks a limit.
    BadRequest,
    /// The license token's signature is not the origin's.
    LicenseForged,
    /// The license token has expired (or is not valid yet).
    LicenseExpired,
    /// The license token is bound to another node.
    LicenseWrongNode,
    /// The license token does not cover the rendition.
    LicenseNotCovered,
    /// The region rules forbid this.
    NotInRegion,
    /// The rendition or chunk is not known here.
    NotFound,
    /// Too busy: retry later or elsewhere.
    Overloaded,
    /// Something failed on the server; details are in its log.
    Internal,
    /// A [`Refresh`] named a set the tracker does not hold for the node (or no longer as it
    /// was): announce in full.
    SetUnknown,
}

impl ErrorCode {
    /// The stable snake_case name, as logged and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::LicenseForged => "license_forged",
            ErrorCode::LicenseExpired => "license_expired",
            ErrorCode::LicenseWrongNode => "license_wrong_node",
            ErrorCode::LicenseNotCovered => "license_not_covered",
            ErrorCode::NotInRegion => "not_in_region",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::SetUnknown => "set_unknown",
        }
    }
}

/// An error answer: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct WireError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable detail, at most [`ERROR_MESSAGE_BYTES_MAX`] bytes.
    pub message: String,
}

impl WireError {
    /// An error with `message` cut to [`ERROR_MESSAGE_BYTES_MAX`] bytes at a char boundary.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > ERROR_MESSAGE_BYTES_MAX {
            let mut end = ERROR_MESSAGE_BYTES_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self { code, message }
    }
}

impl From<&LicenseError> for WireError {
    fn from(error: &LicenseError) -> Self {
        let code = match error {
            LicenseError::Malformed(_) => ErrorCode::BadRequest,
            LicenseError::Forged => ErrorCode::LicenseForged,
            LicenseError::Expired { .. } | LicenseError::NotYetValid => ErrorCode::LicenseExpired,
            LicenseError::WrongNode { .. } => ErrorCode::LicenseWrongNode,
            LicenseError::NotCovered(_) => ErrorCode::LicenseNotCovered,
        };
        WireError::new(code, error.to_string())
    }
}

/// Every request a node can receive.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// Chunks of a rendition.
    ChunkRange(ChunkRangeRequest),
    /// A rendition's signed manifest.
    Manifest(ManifestRequest),
    /// Tracker: I hold these.
    Announce(Announce),
    /// Tracker: who holds this?
    PeerQuery(PeerQuery),
    /// Liveness and round-trip measurement.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Tracker: what is in demand?
    Popular(PopularQuery),
    /// Tracker: a listed peer failed to serve.
    Report(PeerReport),
    /// Tracker: I still hold what I announced last.
    Refresh(Refresh),
}

/// Every response frame a node can send.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Response {
    /// One sealed chunk.
    Chunk {
        /// Its index in the rendition.
        index: u32,
        /// Its ciphertext; hashes to the manifest's chunk id at `index`.
        data: Vec<u8>,
    },
    /// The responder does not hold this chunk; ask elsewhere.
    ChunkMissing {
        /// The index.
        index: u32,
        /// Chunks the responder holds from the first on, without a gap (0 when none, or when
        /// it holds no prefix): a partial holder's progress.
        held: u32,
    },
    /// A signed manifest.
    Manifest(SignedManifest),
    /// Announce accepted; announce again within `ttl_ms`.
    AnnounceAck {
        /// How long the tracker keeps the announce.
        ttl_ms: u32,
        /// Announced renditions the tracker did not record because no license of the node
        /// covered them: prove them with [`Announce::proofs`] in the next announce.
        unproven: Vec<RenditionId>,
    },
    /// Peers holding a rendition.
    PeerList(PeerList),
    /// Answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The request failed.
    Error(WireError),
    /// Renditions in demand, most popular first.
    Popular(PopularList),
    /// A report was taken into account.
    Reported,
}

fn check(condition: bool, what: &'static str) -> Result<(), CodecError> {
    if condition {
        Ok(())
    } else {
        Err(CodecError::Invalid(what))
    }
}

fn check_addrs(addrs: &[SocketAddr]) -> Result<(), CodecError> {
    check(addrs.len() <= NODE_ADDRS_MAX, "too many addresses")
}

impl Validate for PeerInfo {
    fn validate(&self) -> Result<(), CodecError> {
        check(self.region.is_valid(), "peer region is not a region code")?;
        check_addrs(&self.addrs)
    }
}

impl Validate for Request {
    fn validate(&self) -> Result<(), CodecError> {
        match self {
            Request::ChunkRange(request) => {
                check(
                    (1..=RANGE_CHUNKS_MAX).contains(&request.count),
                    "range count out of bounds",
                )?;
                check(
                    request.first.checked_add(request.count).is_some(),
                    "range overflows",
                )?;
                request.license.validate()
            }
            Request::Manifest(request) => request.license.validate(),
            Request::Announce(announce) => {
                check(
                    announce.region.is_valid(),
                    "announce region is not a region code",
                )?;
                check_addrs(&announce.addrs)?;
                check(
                    announce.renditions.len() <= ANNOUNCE_RENDITIONS_MAX,
                    "too many renditions",
                )?;
                check(
                    announce.proofs.len() <= ANNOUNCE_PROOFS_MAX,
                    "too many proofs",
                )?;
                check(
                    announce.partial.len() <= ANNOUNCE_PARTIAL_MAX,
                    "too many partial holdings",
                )?;
                for proof in &announce.proofs {
                    proof.validate()?;
                }
                announce.credential.validate()
            }
            Request::PeerQuery(query) => {
                check(
                    (1..=PEER_LIST_MAX as u16).contains(&query.want),
                    "want out of bounds",
                )?;
                query.license.validate()
            }
            Request::Ping { .. } => Ok(()),
            Request::Popular(query) => {
                check(
                    (1..=POPULAR_LIST_MAX as u16).contains(&query.want),
                    "want out of bounds",
                )?;
                query.credential.validate()
            }
            Request::Report(report) => report.license.validate(),
            Request::Refresh(refresh) => {
                check(
                    refresh.region.is_valid(),
                    "refresh region is not a region code",
                )?;
                check_addrs(&refresh.addrs)?;
                check(
                    refresh.partial.len() <= ANNOUNCE_PARTIAL_MAX,
                    "too many partial holdings",
                )?;
                refresh.credential.validate()
            }
        }
    }
}

impl Validate for Response {
    fn validate(&self) -> Result<(), CodecError> {
        match self {
            Response::Chunk { data, .. } => {
                check(
                    data.len() <= CHUNK_PAYLOAD_BYTES_MAX,
                    "chunk payload too large",
                )?;
                check(
                    data.len() >= TAG_BYTES,
                    "chunk payload shorter than its tag",
                )
            }
            Response::Manifest(manifest) => manifest.validate(),
            Response::PeerList(list) => {
                check(list.peers.len() <= PEER_LIST_MAX, "peer list too long")?;
                for peer in &list.peers {
                    peer.validate()?;
                }
                Ok(())
            }
            Response::Error(error) => check(
                error.message.len() <= ERROR_MESSAGE_BYTES_MAX,
                "error message too long",
            ),
            Response::Popular(list) => check(
                list.renditions.len() <= POPULAR_LIST_MAX,
                "popularity list too long",
            ),
            Response::AnnounceAck { unproven, .. } => check(
                unproven.len() <= ANNOUNCE_RENDITIONS_MAX,
                "too many unproven renditions",
            ),
            Response::ChunkMissing { .. } | Response::Pong { .. } | Response::Reported => Ok(()),
        }
    }
}

/// Encodes the frame header and message prefix of `Response::Chunk { index, data }` for a
/// payload of `payload_len` bytes, so a server can write the payload straight from its store
/// without copying it into an encode buffer. `prefix ++ payload` is byte-for-byte the frame
/// [`crate::codec::encode_frame`] would produce (a test pins this).
pub fn chunk_frame_prefix(index: u32, payload_len: usize) -> Result<Vec<u8>, CodecError> {
    check(
        payload_len <= CHUNK_PAYLOAD_BYTES_MAX,
        "chunk payload too large",
    )?;
    check(
        payload_len >= TAG_BYTES,
        "chunk payload shorter than its tag",
    )?;
    let mut body_prefix = Vec::with_capacity(16);
    // Variant tag of Response::Chunk (0), then the index, then the byte length, all varints.
    varint(0, &mut body_prefix);
    varint(u64::from(index), &mut body_prefix);
    varint(payload_len as u64, &mut body_prefix);
    let mut out = Vec::with_capacity(crate::codec::FRAME_HEADER_BYTES + body_prefix.len());
    out.extend_from_slice(&crate::codec::frame_header(
        body_prefix.len() + payload_len,
    )?);
    out.extend_from_slice(&body_prefix);
    Ok(out)
}

/// Recognises a well-formed `Response::Chunk` frame body without copying its payload: returns
/// the chunk index and the offset where the payload starts. `None` means "not a valid chunk
/// frame": decode it with [`crate::codec::decode`] instead, which says what is wrong. When this
/// returns `Some`, `codec::decode` yields the same chunk (a property test pins this).
pub fn split_chunk_frame(body: &[u8]) -> Option<(u32, usize)> {
    let (tag, mut at) = read_varint(body, 0)?;
    if tag != 0 {
        return None;
    }
    let index;
    (index, at) = read_varint(body, at)?;
    let (len, at) = read_varint(body, at)?;
    let index = u32::try_from(index).ok()?;
    let len = usize::try_from(len).ok()?;
    let payload_ok = (TAG_BYTES..=CHUNK_PAYLOAD_BYTES_MAX).contains(&len);
    (payload_ok && body.len().checked_sub(at)? == len).then_some((index, at))
}

/// Reads a bincode 2 unsigned varint at `at`; the value and the offset after it. Rejects
/// non-canonical (overlong) encodings, which the encoder never writes.
fn read_varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let marker = *bytes.get(at)?;
    let (width, min) = match marker {
        0..=250 => return Some((u64::from(marker), at + 1)),
        251 => (2, 251),
        252 => (4, 0x1_0000),
        253 => (8, 0x1_0000_0000),
        _ => return None,
    };
    let raw = bytes.get(at + 1..at + 1 + width)?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(raw);
    let value = u64::from_le_bytes(le);
    (value >= min).then_some((value, at + 1 + width))
}

/// bincode 2's unsigned varint: < 251 in one byte, else a marker byte and little-endian bytes.
fn varint(value: u64, out: &mut Vec<u8>) {
    match value {
        0..=250 => out.push(value as u8),
        251..=0xFFFF => {
            out.push(251);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(252);
            out.extend_from_slice(&(value as u32).to_le_bytes());
        }
        _ => {
            out.push(253);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn an_announce_set_digest_is_the_set_not_its_order() {
        let ids: Vec<RenditionId> = (0u8..5).map(|n| RenditionId([n; 32])).collect();
        let set = |whole: &[usize], part: &[usize]| {
            announce_set(
                whole.iter().map(|&i| &ids[i]),
                part.iter().map(|&i| &ids[i]),
            )
        };
        assert_eq!(set(&[0, 1, 2], &[3]), set(&[2, 0, 1], &[3]));
        let others = [
            set(&[0, 1], &[3]),
            set(&[0, 1, 2], &[]),
            set(&[0, 1, 2, 3], &[]),
            set(&[0, 1], &[2, 3]),
            set(&[0, 1, 2, 2], &[3]),
            set(&[0, 1, 4], &[3]),
            set(&[], &[]),
        ];
        for (at, other) in others.iter().enumerate() {
            assert_ne!(set(&[0, 1, 2], &[3]), *other, "{at}");
        }
        // As its documentation says, step by step (nodes and trackers compute it apart).
        let mut lanes = [0u64; 2];
        for (list, seed) in [
            (&ids[..3], 0x243f_6a88_85a3_08d3_u64),
            (&ids[3..4], 0x1319_8a2e_0370_7344),
        ] {
            for id in list {
                let mut h = seed;
                for word in 0..4 {
                    let bytes: [u8; 8] = id.0[word * 8..word * 8 + 8].try_into().unwrap();
                    h = set_mix(h ^ u64::from_le_bytes(bytes));
                }
                lanes[0] = lanes[0].wrapping_add(h);
                lanes[1] = lanes[1].wrapping_add(set_mix(h ^ 0xa409_3822_299f_31d0));
            }
            let n = list.len() as u64;
            lanes[0] = lanes[0].wrapping_add(n.wrapping_mul(0xa409_3822_299f_31d0 ^ seed));
            lanes[1] = lanes[1].wrapping_add(n.wrapping_mul(seed));
        }
        let mut documented = lanes[0].to_le_bytes().to_vec();
        documented.extend(lanes[1].to_le_bytes());
        assert_eq!(set(&[0, 1, 2], &[3]).to_vec(), documented);
        // Pinned, so a change to it is a deliberate protocol change.
        assert_eq!(
            hex::encode(set(&[0, 1, 2], &[3])),
            "81b88c3267ea5f4e08a6a70366d271bb"
        );
        assert_eq!(set_mix(1), 0x5692_161d_100b_05e5);
    }

    #[test]
    fn chunk_prefix_matches_codec() {
        for (index, len) in [
            (0u32, 16usize),
            (250, 251),
            (70_000, 16 * 1024 + 16),
            (u32::MAX, 1 << 20),
        ] {
            let data = vec![0xAB; len];
            let mut expected = Vec::new();
            codec::encode_frame(
                &Response::Chunk {
                    index,
                    data: data.clone(),
                },
                &mut expected,
            )
            .unwrap();
            let mut actual = chunk_frame_prefix(index, len).unwrap();
            actual.extend_from_slice(&data);
            assert_eq!(actual, expected, "index {index} len {len}");
        }
        assert!(chunk_frame_prefix(0, CHUNK_PAYLOAD_BYTES_MAX + 1).is_err());
    }

    #[test]
    fn error_messages_are_capped_at_char_boundaries() {
        let error = WireError::new(ErrorCode::Internal, "é".repeat(400));
        assert!(error.message.len() <= ERROR_MESSAGE_BYTES_MAX);
        assert!(Response::Error(error).validate().is_ok());
        assert_eq!(ErrorCode::LicenseWrongNode.as_str(), "license_wrong_node");
    }
}
