//! Fetching a whole rendition from a ranked list of sources (peers first, the origin last),
//! with every chunk verified and any source that sends a bad chunk banned at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::wire::{ErrorCode, Priority, RANGE_CHUNKS_MAX, ReportReason};
use protocol::{LicenseToken, Manifest, NodeId, RenditionId};
use transport::chunks::{RangeItem, fetch_manifest, fetch_range};
use transport::{Endpoint, TransportError};

/// Chunks asked for in one range request while filling.
pub const FILL_RANGE_CHUNKS: u32 = 64;
const _: () = assert!(FILL_RANGE_CHUNKS <= RANGE_CHUNKS_MAX);

/// Somewhere chunks can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Its node id (the handshake proves it).
    pub node: NodeId,
    /// Where to dial it.
    pub addr: SocketAddr,
}

/// Sources banned after a bad chunk, each for [`BAN_DURATION`]; at most [`BANS_MAX`] at once
/// (the oldest ban is dropped beyond that).
#[derive(Debug, Default)]
pub struct BanList {
    banned: Mutex<HashMap<NodeId, Instant>>,
}

/// How long a source that sent a bad chunk is shunned.
pub const BAN_DURATION: Duration = Duration::from_secs(3600);
/// Most bans remembered.
pub const BANS_MAX: usize = 4096;

impl BanList {
    /// Bans `node`.
    pub fn ban(&self, node: NodeId) {
        let mut banned = self.lock();
        let now = Instant::now();
        banned.retain(|_, until| *until > now);
        if banned.len() >= BANS_MAX
            && let Some(oldest) = banned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(n, _)| *n)
        {
            banned.remove(&oldest);
        }
        banned.insert(node, now + BAN_DURATION);
    }

    /// True when `node` is banned now.
    pub fn is_banned(&self, node: &NodeId) -> bool {
        self.lock()
            .get(node)
            .is_some_and(|until| *until > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Instant>> {
        self.banned
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A fetched, verified rendition.
#[derive(Debug)]
pub struct Fetched {
    /// Its verified manifest.
    pub manifest: Manifest,
    /// Its chunks, in order, each verified against the manifest.
    pub chunks: Vec<Bytes>,
    /// Bytes received from each source.
    pub bytes_from: HashMap<NodeId, u64>,
    /// Sources that failed, and how (for reports to the tracker).
    pub failures: Vec<(NodeId, ReportReason)>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No source could provide the manifest.
    #[error("no source gave the manifest: {0}")]
    NoManifest(String),
    /// The rendition is larger than the caller allows.
    #[error("rendition of {0} bytes is over the limit")]
    TooLarge(u64),
    /// Some chunk was available from no source.
    #[error("chunk {index} is available from no source: {last}")]
    Incomplete {
        /// The first chunk nobody had.
        index: u32,
        /// The last failure seen.
        last: String,
    },
}

fn reason_of(error: &TransportError) -> ReportReason {
    match error {
        TransportError::Content(_) | TransportError::Protocol(_) | TransportError::Codec(_) => {
            ReportReason::BadChunk
        }
        TransportError::Remote(remote) if remote.code == ErrorCode::NotFound => {
            ReportReason::Missing
        }
        _ => ReportReason::Unreachable,
    }
}

/// What to fetch, and under which license.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// The origin whose key signs manifests.
    pub origin: &'a NodeId,
    /// The rendition.
    pub rendition: &'a RenditionId,
    /// A token bound to the fetching node that covers it.
    pub license: &'a LicenseToken,
    /// Urgency, as sent to sources.
    pub priority: Priority,
    /// Largest rendition accepted, in bytes of ciphertext.
    pub bytes_max: u64,
}

/// Fetches all of `rendition` from `sources`, in order of preference: the manifest from the
/// first that has it (verified against `origin`), then each range of chunks from the first
/// source that still has them. A source that sends a chunk failing its hash (or breaks the
/// protocol) is banned and not asked again; one that lacks chunks or fails to answer is
/// skipped for that range. `bytes_max` bounds the rendition's size (checked from the
/// manifest before any chunk is fetched).
pub async fn fetch_rendition(
    endpoint: &Endpoint,
    request: &FetchRequest<'_>,
    sources: &[Source],
    bans: &BanList,
) -> Result<Fetched, FetchError> {
    let FetchRequest {
        origin,
        rendition,
        license,
        priority,
        bytes_max,
    } = *request;
    let mut failures = Vec::new();
    let mut last_error = String::from("no sources");
    let mut manifest = None;
    for source in sources
        .iter()
        .filter(|source| !bans.is_banned(&source.node))
    {
        let attempt = async {
            let peer = endpoint.connect(source.node, source.addr).await?;
            fetch_manifest(&peer, origin, rendition, license).await
        };
        match attempt.await {
            Ok(found) => {
                manifest = Some(found);
                break;
            }
            Err(error) => {
                last_error = format!("{}: {error}", source.node);
                failures.push((source.node, reason_of(&error)));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| FetchError::NoManifest(last_error.clone()))?;
    let count = manifest.chunk_count();
    let bytes: u64 = (0..count)
        .filter_map(|index| manifest.body().chunk_ciphertext_len(index))
        .map(u64::from)
        .sum();
    if bytes > bytes_max {
        return Err(FetchError::TooLarge(bytes));
    }
    let mut report = FetchReport {
        failures,
        ..FetchReport::default()
    };
    let chunks = fetch_chunks(
        endpoint,
        &manifest,
        license,
        priority,
        sources,
        bans,
        (0, count),
        &mut report,
    )
    .await
    .map_err(|error| match error {
        FetchError::Incomplete { index, last } if last == "no sources" => FetchError::Incomplete {
            index,
            last: last_error.clone(),
        },
        other => other,
    })?;
    let FetchReport {
        bytes_from,
        failures,
    } = report;
    Ok(Fetched {
        manifest,
        chunks,
        bytes_from,
        failures,
    })
}

/// What a fetch learnt about its sources.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// Bytes received from each source.
    pub bytes_from: HashMap<NodeId, u64>,
    /// Sources that failed, and how.
    pub failures: Vec<(NodeId, ReportReason)>,
}

/// Fetches chunks `range.0 .. range.1` of `manifest` from `sources` in order of preference,
/// in ranges of [`FILL_RANGE_CHUNKS`], each range from the first source that still has its
/// chunks; verifies every chunk; bans a source that sends a bad one. Returns the chunks in
/// order.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_chunks(
    endpoint: &Endpoint,
    manifest: &Manifest,
    license: &LicenseToken,
    priority: Priority,
    sources: &[Source],
    bans: &BanList,
    range: (u32, u32),
    report: &mut FetchReport,
) -> Result<Vec<Bytes>, FetchError> {
    let (start, stop) = (range.0, range.1.min(manifest.chunk_count()));
    let mut chunks: Vec<Option<Bytes>> = vec![None; stop.saturating_sub(start) as usize];
    let mut last_error = String::from("no sources");
    let slot = |index: u32| (index - start) as usize;
    let mut first = start;
    while first < stop {
        let end = (first + FILL_RANGE_CHUNKS).min(stop);
        for source in sources {
            if bans.is_banned(&source.node) {
                continue;
            }
            let Some(lo) = (first..end).find(|&index| chunks[slot(index)].is_none()) else {
                break;
            };
            let hi = (first..end)
                .rev()
                .find(|&index| chunks[slot(index)].is_none())
                .unwrap_or(lo);
            let attempt = async {
                let peer = endpoint.connect(source.node, source.addr).await?;
                fetch_range(&peer, manifest, lo, hi - lo + 1, priority, license).await
            };
            match attempt.await {
                Ok(items) => {
                    let mut missing = false;
                    for item in items {
                        match item {
                            RangeItem::Chunk { index, data } => {
                                *report.bytes_from.entry(source.node).or_default() +=
                                    data.len() as u64;
                                chunks[slot(index)] = Some(data);
                            }
                            RangeItem::Missing { .. } => missing = true,
                        }
                    }
                    if missing {
                        report.failures.push((source.node, ReportReason::Missing));
                    }
                }
                Err(error) => {
                    let reason = reason_of(&error);
                    if reason == ReportReason::BadChunk {
                        tracing::warn!(node = %source.node, %error, "banning a source that sent a bad chunk");
                        bans.ban(source.node);
                    }
                    last_error = format!("{}: {error}", source.node);
                    report.failures.push((source.node, reason));
                }
            }
        }
        if let Some(index) = (first..end).find(|&index| chunks[slot(index)].is_none()) {
            return Err(FetchError::Incomplete {
                index,
                last: last_error,
            });
        }
        first = end;
    }
    Ok(chunks.into_iter().flatten().collect())
}
