//! Offline downloads: whole renditions kept outside the LRU cache with their 30-day offline
//! license, so they play with no network at all until the license runs out.
//!
//! Layout: one directory per track, `<dir>/<track id>/` with `grant.json` (the signed manifest,
//! the content key, the license, the gain, the expiry, the origin's address) and `chunks`
//! (every ciphertext chunk, in order). Both are written to temporary names and renamed, the
//! chunks first, so a crash leaves either the old download or the new one. Every load checks
//! the manifest's signature and every chunk against its id: a damaged download is reported
//! (download it again), never played.
//!
//! The origin counts devices with offline licenses per account (`device_limit`); renewing
//! (asking for a new offline license while online) keeps a download playable for another 30
//! days. An expired download refuses to play.
//!
//! The content key is stored as the origin sent it, in a file only the user can read; a
//! player app on a platform with a key store should wrap it with a device key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use protocol::{ContentKey, LicenseToken, SignedManifest, codec};

use api::client::{Grant, NodeAddr};

/// Renew a download's license when less than this remains (milliseconds): a week.
pub const RENEW_BEFORE_MS: u64 = 7 * 24 * 3600 * 1000;

/// Most downloads kept.
pub const DOWNLOADS_MAX: usize = 10_000;

/// Most grants of recently played tracks kept (for playing cached tracks offline).
pub const RECENT_GRANTS_MAX: usize = 1_000;

/// Why a download cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// Its offline license ran out.
    #[error(
        "the offline license of {track} expired {ago_h} h ago: connect to the origin to renew it"
    )]
    Expired {
        /// The track.
        track: String,
        /// Hours since it expired.
        ago_h: u64,
    },
    /// Its files are damaged (a chunk fails its hash, the manifest its signature, …).
    #[error("the download of {track} is damaged ({reason}): download it again")]
    Damaged {
        /// The track.
        track: String,
        /// What is wrong.
        reason: String,
    },
    /// The store is full.
    #[error("at most {DOWNLOADS_MAX} downloads")]
    Full,
    /// A file could not be read or written.
    #[error("offline store: {0}")]
    Io(#[from] std::io::Error),
}

/// What `list` says about one download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadInfo {
    /// The track.
    pub track_id: String,
    /// Its quality.
    pub quality: protocol::Quality,
    /// Bytes of ciphertext kept.
    pub bytes: u64,
    /// Audio duration.
    pub duration_ms: u64,
    /// When the offline license expires (Unix ms).
    pub expires_at_ms: u64,
}

/// A download ready to play: its grant and every chunk, by index.
pub type Downloaded = (Grant, HashMap<u32, Bytes>);

/// The offline store in one directory.
#[derive(Debug, Clone)]
pub struct OfflineStore {
    dir: PathBuf,
}

fn valid_track_id(track_id: &str) -> bool {
    track_id.len() == 32 && track_id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    transport::keyfile::write_private(path, contents)
}

impl OfflineStore {
    /// The store in `dir` (created when first written).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn track_dir(&self, track_id: &str) -> Result<PathBuf, OfflineError> {
        if !valid_track_id(track_id) {
            return Err(OfflineError::Damaged {
                track: track_id.to_string(),
                reason: "not a track id".into(),
            });
        }
        Ok(self.dir.join(track_id.to_ascii_lowercase()))
    }

    /// Keeps `grant` (an offline grant) and all its `chunks` (ciphertext, in order, each
    /// checked against the manifest).
    pub fn save(&self, grant: &Grant, chunks: &[Bytes]) -> Result<(), OfflineError> {
        let dir = self.track_dir(&grant.track_id)?;
        if !dir.exists() && self.list()?.len() >= DOWNLOADS_MAX {
            return Err(OfflineError::Full);
        }
        let manifest = &grant.manifest;
        let damaged = |reason: String| OfflineError::Damaged {
            track: grant.track_id.clone(),
            reason,
        };
        if chunks.len() != manifest.chunk_count() as usize {
            return Err(damaged(format!(
                "{} chunks for a manifest of {}",
                chunks.len(),
                manifest.chunk_count()
            )));
        }
        let mut all = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            let id = manifest
                .chunk_id(index as u32)
                .ok_or_else(|| damaged(format!("no id for chunk {index}")))?;
            protocol::content::verify_chunk(id, chunk)
                .map_err(|error| damaged(format!("chunk {index}: {error}")))?;
            all.extend_from_slice(chunk);
        }
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join("chunks"), &all)?;
        self.save_grant(&dir, grant)
    }

    fn save_grant(&self, dir: &Path, grant: &Grant) -> Result<(), OfflineError> {
        let body = serde_json::json!({
            "track_id": grant.track_id,
            "manifest": hex::encode(codec::encode(grant.manifest.signed()).map_err(std::io::Error::other)?),
            "content_key": hex::encode(grant.content_key.0),
            "license": hex::encode(grant.license.to_bytes().map_err(std::io::Error::other)?),
            "origin": grant.origin.to_string(),
            "tracker": grant.tracker.map(|tracker| tracker.to_string()),
            "trackers": grant.trackers.all().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "gain_db": grant.gain_db,
            "expires_at": grant.expires_at_ms,
        });
        write_atomic(&dir.join("grant.json"), body.to_string().as_bytes())?;
        Ok(())
    }

    /// Replaces the license of a kept download with a renewed offline `grant` of the same
    /// rendition.
    pub fn renew(&self, grant: &Grant) -> Result<(), OfflineError> {
        let dir = self.track_dir(&grant.track_id)?;
        let (kept, _) = self.read_grant(&grant.track_id)?;
        if kept.manifest.id() != grant.manifest.id() {
            return Err(OfflineError::Damaged {
                track: grant.track_id.clone(),
                reason: "the renewed license is for another rendition".into(),
            });
        }
        self.save_grant(&dir, grant)
    }

    fn read_grant(&self, track_id: &str) -> Result<(Grant, u64), OfflineError> {
        let dir = self.track_dir(track_id)?;
        self.read_grant_in(&dir, track_id)
    }

    fn read_grant_in(&self, dir: &Path, track_id: &str) -> Result<(Grant, u64), OfflineError> {
        let damaged = |reason: String| OfflineError::Damaged {
            track: track_id.to_string(),
            reason,
        };
        let text = std::fs::read(dir.join("grant.json"))?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|error| damaged(error.to_string()))?;
        let field = |name: &str| {
            value[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| damaged(format!("no {name}")))
        };
        let origin: NodeAddr = field("origin")?
            .parse()
            .map_err(|error: anyhow::Error| damaged(error.to_string()))?;
        let tracker = match value["tracker"].as_str() {
            Some(text) => Some(
                text.parse()
                    .map_err(|error: anyhow::Error| damaged(error.to_string()))?,
            ),
            None => None,
        };
        // Kept before shards: the rendition's tracker was the only one.
        let trackers: Vec<String> = match value["trackers"].as_array() {
            Some(list) => list
                .iter()
                .filter_map(|entry| entry.as_str().map(str::to_string))
                .collect(),
            None => tracker.iter().map(ToString::to_string).collect(),
        };
        let trackers =
            api::client::Trackers::parse(&trackers).map_err(|error| damaged(error.to_string()))?;
        let hex_field = |name: &str| {
            hex::decode(field(name)?).map_err(|error| damaged(format!("{name}: {error}")))
        };
        let signed: SignedManifest = codec::decode(&hex_field("manifest")?)
            .map_err(|error| damaged(format!("manifest: {error}")))?;
        let manifest = signed
            .verify(&origin.node)
            .map_err(|error| damaged(format!("manifest: {error}")))?;
        let key: [u8; 32] = hex_field("content_key")?
            .try_into()
            .map_err(|_| damaged("content key is not 32 bytes".into()))?;
        let license = LicenseToken::from_bytes(&hex_field("license")?)
            .map_err(|error| damaged(format!("license: {error}")))?;
        let expires_at_ms = value["expires_at"]
            .as_u64()
            .ok_or_else(|| damaged("no expiry".into()))?;
        let grant = Grant {
            opening: Vec::new(),
            track_id: track_id.to_string(),
            manifest,
            content_key: ContentKey(key),
            license,
            origin,
            tracker,
            trackers,
            gain_db: value["gain_db"].as_f64().unwrap_or(0.0),
            expires_at_ms,
            // Chunk URLs expire within hours: an offline grant plays from the cache, and
            // over QUIC from the origin for anything missing.
            chunk_url_template: String::new(),
        };
        Ok((grant, expires_at_ms))
    }

    fn recent_dir(&self, track_id: &str) -> Result<PathBuf, OfflineError> {
        self.track_dir(track_id)?;
        Ok(self.dir.join("recent").join(track_id.to_ascii_lowercase()))
    }

    /// Keeps the streaming `grant` of a track just played, so that while its license lasts
    /// (hours) the track still plays from the local cache when the origin is unreachable. At
    /// most [`RECENT_GRANTS_MAX`] are kept, the oldest dropped.
    pub fn remember(&self, grant: &Grant) -> Result<(), OfflineError> {
        let dir = self.recent_dir(&grant.track_id)?;
        std::fs::create_dir_all(&dir)?;
        self.save_grant(&dir, grant)?;
        let recent = self.dir.join("recent");
        let mut kept: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&recent)?
            .flatten()
            .map(|entry| {
                let modified = entry
                    .path()
                    .join("grant.json")
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, entry.path())
            })
            .collect();
        if kept.len() > RECENT_GRANTS_MAX {
            kept.sort();
            for (_, path) in &kept[..kept.len() - RECENT_GRANTS_MAX] {
                let _ = std::fs::remove_dir_all(path);
            }
        }
        Ok(())
    }

    /// The remembered streaming grant of `track_id`, if its license still runs at `now_ms`.
    pub fn recent(&self, track_id: &str, now_ms: u64) -> Result<Option<Grant>, OfflineError> {
        let dir = self.recent_dir(track_id)?;
        if !dir.join("grant.json").exists() {
            return Ok(None);
        }
        let (grant, expires_at_ms) = self.read_grant_in(&dir, track_id)?;
        if now_ms >= expires_at_ms {
            return Err(OfflineError::Expired {
                track: track_id.to_string(),
                ago_h: (now_ms - expires_at_ms) / 3_600_000,
            });
        }
        Ok(Some(grant))
    }

    /// Whether `track_id` is downloaded (in any state).
    pub fn has(&self, track_id: &str) -> bool {
        self.track_dir(track_id)
            .is_ok_and(|dir| dir.join("grant.json").exists())
    }

    /// The download of `track_id` ready to play at `now_ms`: its grant and every chunk,
    /// checked. `Ok(None)` when it is not downloaded; an error when it expired or is damaged.
    pub fn load(&self, track_id: &str, now_ms: u64) -> Result<Option<Downloaded>, OfflineError> {
        if !self.has(track_id) {
            return Ok(None);
        }
        let (grant, expires_at_ms) = self.read_grant(track_id)?;
        if now_ms >= expires_at_ms {
            return Err(OfflineError::Expired {
                track: track_id.to_string(),
                ago_h: (now_ms - expires_at_ms) / 3_600_000,
            });
        }
        let dir = self.track_dir(track_id)?;
        let all = Bytes::from(std::fs::read(dir.join("chunks"))?);
        let manifest = &grant.manifest;
        let mut chunks = HashMap::new();
        let mut at = 0usize;
        for index in 0..manifest.chunk_count() {
            let damaged = |reason: String| OfflineError::Damaged {
                track: track_id.to_string(),
                reason,
            };
            let len = manifest
                .body()
                .chunk_ciphertext_len(index)
                .ok_or_else(|| damaged(format!("no length for chunk {index}")))?
                as usize;
            let chunk = all
                .get(at..at + len)
                .ok_or_else(|| damaged("chunks file too short".into()))?;
            let id = manifest
                .chunk_id(index)
                .ok_or_else(|| damaged(format!("no id for chunk {index}")))?;
            protocol::content::verify_chunk(id, chunk)
                .map_err(|error| damaged(format!("chunk {index}: {error}")))?;
            chunks.insert(index, all.slice(at..at + len));
            at += len;
        }
        if at != all.len() {
            return Err(OfflineError::Damaged {
                track: track_id.to_string(),
                reason: "chunks file too long".into(),
            });
        }
        Ok(Some((grant, chunks)))
    }

    /// Downloads whose license expires within [`RENEW_BEFORE_MS`] of `now_ms` (or already
    /// has): what to renew when online.
    pub fn due_for_renewal(&self, now_ms: u64) -> Result<Vec<String>, OfflineError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|info| info.expires_at_ms < now_ms.saturating_add(RENEW_BEFORE_MS))
            .map(|info| info.track_id)
            .collect())
    }

    /// Every download, damaged ones left out.
    pub fn list(&self) -> Result<Vec<DownloadInfo>, OfflineError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(track_id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !valid_track_id(&track_id) {
                continue;
            }
            let Ok((grant, expires_at_ms)) = self.read_grant(&track_id) else {
                continue;
            };
            let bytes = std::fs::metadata(entry.path().join("chunks")).map_or(0, |meta| meta.len());
            found.push(DownloadInfo {
                track_id,
                quality: grant.manifest.body().quality,
                bytes,
                duration_ms: grant.manifest.body().duration_ms,
                expires_at_ms,
            });
            if found.len() >= DOWNLOADS_MAX {
                break;
            }
        }
        found.sort_by(|a, b| a.track_id.cmp(&b.track_id));
        Ok(found)
    }

    /// Deletes the download of `track_id`; false when there was none.
    pub fn remove(&self, track_id: &str) -> Result<bool, OfflineError> {
        let dir = self.track_dir(track_id)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// Downloads `track_id` for offline play: asks the origin for an offline grant (30-day
/// license; counts against the account's device limit), takes the chunks the local `cache`
/// holds, fetches the rest from the origin at offline-sync priority (the lowest), checks
/// every chunk and keeps the whole rendition in `store`.
pub async fn download(
    endpoint: &transport::Endpoint,
    api: &api::client::OriginApi,
    access_token: &str,
    track_id: &str,
    quality: Option<protocol::Quality>,
    store: &OfflineStore,
    cache: Option<std::sync::Arc<crate::cache::ClientCache>>,
) -> anyhow::Result<DownloadInfo> {
    use anyhow::Context;
    let grant = api
        .play(
            access_token,
            track_id,
            &endpoint.node_id(),
            quality.map(protocol::Quality::as_str),
            true,
        )
        .await
        .context("asking for an offline license")?;
    let manifest = grant.manifest.clone();
    let mut held = match &cache {
        Some(cache) => {
            let (cache, manifest) = (cache.clone(), manifest.clone());
            tokio::task::spawn_blocking(move || cache.chunks_of(&manifest)).await?
        }
        None => HashMap::new(),
    };
    let total = manifest.chunk_count();
    let sources = [crate::fetch::Source {
        node: grant.origin.node,
        addr: grant.origin.addr,
    }];
    let bans = crate::fetch::BanList::default();
    let mut index = 0;
    while index < total {
        if held.contains_key(&index) {
            index += 1;
            continue;
        }
        let end = (index..total)
            .find(|at| held.contains_key(at))
            .unwrap_or(total);
        let fetched = crate::fetch::fetch_chunks(
            endpoint,
            &manifest,
            &grant.license,
            protocol::wire::Priority::OfflineSync,
            &sources,
            &bans,
            (index, end),
            &mut crate::fetch::FetchReport::default(),
        )
        .await
        .with_context(|| format!("fetching chunks {index}..{end}"))?;
        for (offset, data) in fetched.into_iter().enumerate() {
            held.insert(index + offset as u32, data);
        }
        index = end;
    }
    let chunks: Vec<Bytes> = (0..total)
        .map(|index| held.remove(&index).unwrap_or_default())
        .collect();
    let (store, saved) = (store.clone(), grant.clone());
    tokio::task::spawn_blocking(move || store.save(&saved, &chunks)).await??;
    Ok(DownloadInfo {
        track_id: track_id.to_string(),
        quality: manifest.body().quality,
        bytes: (0..total)
            .filter_map(|index| manifest.body().chunk_ciphertext_len(index))
            .map(u64::from)
            .sum(),
        duration_ms: manifest.body().duration_ms,
        expires_at_ms: grant.expires_at_ms,
    })
}

/// Renews the offline license of every download of `store` due within
/// [`RENEW_BEFORE_MS`] of `now_ms` (at the quality it was downloaded in). Returns what
/// happened to each.
pub async fn renew_due(
    endpoint: &transport::Endpoint,
    api: &api::client::OriginApi,
    access_token: &str,
    store: &OfflineStore,
    now_ms: u64,
) -> Vec<(String, anyhow::Result<u64>)> {
    let due = match store.list() {
        Ok(list) => list
            .into_iter()
            .filter(|info| info.expires_at_ms < now_ms.saturating_add(RENEW_BEFORE_MS))
            .collect::<Vec<_>>(),
        Err(error) => return vec![(String::new(), Err(error.into()))],
    };
    let mut results = Vec::new();
    for info in due {
        let result = async {
            let grant = api
                .play(
                    access_token,
                    &info.track_id,
                    &endpoint.node_id(),
                    Some(info.quality.as_str()),
                    true,
                )
                .await?;
            store.renew(&grant)?;
            Ok(grant.expires_at_ms)
        }
        .await;
        results.push((info.track_id, result));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_track_ids_never_touch_the_disk() {
        let dir = std::env::temp_dir().join(format!("chorus-offline-{}", std::process::id()));
        let store = OfflineStore::new(&dir);
        assert!(!store.has("../../etc"));
        assert!(matches!(
            store.load("../../etc/passwd", 0),
            Ok(None) | Err(OfflineError::Damaged { .. })
        ));
        assert!(store.remove("..").is_err());
        assert_eq!(store.list().unwrap(), Vec::new());
    }
}
