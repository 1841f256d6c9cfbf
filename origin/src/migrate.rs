//! Copying one origin store into another (`chorus admin migrate`): an embedded origin's data
//! directory into PostgreSQL and object storage, say.
//!
//! Every domain is copied a page at a time in key order, through the same traits the origin
//! uses, so any backend can be a source or a target. Every import is an idempotent upsert and
//! the position after each page is saved to a checkpoint file, so an interrupted migration
//! resumes where it stopped (and a page copied twice is harmless). Chunks are copied before
//! the renditions that list them, and renditions before the tracks that name them, so the
//! target never holds a track whose chunks are missing, even mid-migration. Content keys are
//! copied sealed: the target origin runs with the same `content.kek` (the same data
//! directory).
//!
//! At the end it verifies: every domain's count in the target equals the source's, and every
//! chunk of every rendition reads back from the target and hashes to its id.

use std::path::{Path, PathBuf};

use protocol::ChunkId;
use serde::{Deserialize, Serialize};

use crate::store::{Library, Store, StoreError, manifest_chunks};

/// Items copied per page.
const PAGE: usize = 1_000;

/// The domains, in the order they are copied.
pub const PHASES: [Phase; 12] = [
    Phase::Accounts,
    Phase::Tokens,
    Phase::AppCredentials,
    Phase::Renditions,
    Phase::Tracks,
    Phase::Images,
    Phase::Playlists,
    Phase::LikedTracks,
    Phase::FollowedArtists,
    Phase::Devices,
    Phase::Players,
    Phase::Listening,
];

/// One domain being copied (or verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Accounts.
    Accounts,
    /// Bearer tokens (hashes).
    Tokens,
    /// App passwords (sealed) and API keys (hashes).
    AppCredentials,
    /// Renditions and their chunks.
    Renditions,
    /// Tracks with their play counts (and their lyrics and cover art blobs).
    Tracks,
    /// Pictures uploaded for albums and artists, with their blobs.
    Images,
    /// Playlists.
    Playlists,
    /// Liked songs.
    LikedTracks,
    /// Followed artists.
    FollowedArtists,
    /// Offline devices.
    Devices,
    /// Player states (`/v1/me/player`).
    Players,
    /// Event ids, plays, streams and play counts.
    Listening,
    /// Verifying counts and chunk hashes.
    Verify,
}

impl Phase {
    /// A short name for progress output.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Accounts => "accounts",
            Phase::Tokens => "tokens",
            Phase::AppCredentials => "app passwords and API keys",
            Phase::Renditions => "renditions and chunks",
            Phase::Tracks => "tracks",
            Phase::Images => "album and artist pictures",
            Phase::Playlists => "playlists",
            Phase::LikedTracks => "liked songs",
            Phase::FollowedArtists => "followed artists",
            Phase::Devices => "offline devices",
            Phase::Players => "player states",
            Phase::Listening => "listening history",
            Phase::Verify => "verifying",
        }
    }
}

/// Where an interrupted migration stands: the phases done and the last key copied in the
/// current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Phases finished.
    pub done: Vec<Phase>,
    /// The phase under way and the cursor after its last copied page.
    pub current: Option<(Phase, String)>,
    /// Chunks copied so far (for the report).
    pub chunks: u64,
}

impl Checkpoint {
    /// The checkpoint in `path`, or a fresh one.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error.into()),
        }
    }

    /// Writes it durably (temporary file, fsync, rename).
    fn save(&self, path: &Path) -> Result<(), StoreError> {
        let temp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&serde_json::to_vec_pretty(self)?)?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, path)?;
        Ok(())
    }

    fn cursor(&self, phase: Phase) -> Option<String> {
        match &self.current {
            Some((current, cursor)) if *current == phase => Some(cursor.clone()),
            _ => None,
        }
    }
}

/// What a migration copied and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Items of each domain in the target after the copy, as verified.
    pub counts: Vec<(String, u64)>,
    /// Chunks read back from the target and found to hash to their ids.
    pub chunks_verified: u64,
}

/// Progress: the phase, items done in it, and its total when known.
pub trait Progress {
    /// Called after every page.
    fn update(&self, phase: Phase, done: u64, total: Option<u64>);
}

impl<F: Fn(Phase, u64, Option<u64>)> Progress for F {
    fn update(&self, phase: Phase, done: u64, total: Option<u64>) {
        self(phase, done, total)
    }
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A store failed (the migration can be run again: it resumes).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A chunk a rendition lists is missing from the source.
    #[error("chunk {0} of rendition {1} is missing from the source")]
    MissingChunk(ChunkId, String),
    /// Verification found the target differs from the source.
    #[error("verification failed: {0}")]
    Mismatch(String),
}

/// The default checkpoint file for a migration out of `data_dir`.
pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join("migrate.checkpoint.json")
}

/// Copies everything in `from` into `to`, resuming from the checkpoint in `checkpoint`, then
/// verifies. The checkpoint file is removed once verification passes.
pub async fn migrate(
    from: &Store,
    to: &Store,
    checkpoint: &Path,
    progress: &dyn Progress,
) -> Result<Report, MigrateError> {
    let mut state = Checkpoint::load(checkpoint)?;
    for phase in PHASES {
        if state.done.contains(&phase) {
            continue;
        }
        copy_phase(from, to, phase, &mut state, checkpoint, progress).await?;
        state.done.push(phase);
        state.current = None;
        state.save(checkpoint)?;
    }
    to.catalog().settle_after_import().await?;
    let report = verify(from, to, progress).await?;
    let _ = std::fs::remove_file(checkpoint);
    Ok(report)
}

/// Copies one phase, a page at a time from the checkpoint's cursor.
async fn copy_phase(
    from: &Store,
    to: &Store,
    phase: Phase,
    state: &mut Checkpoint,
    checkpoint: &Path,
    progress: &dyn Progress,
) -> Result<(), MigrateError> {
    let mut cursor = state.cursor(phase);
    let total = match phase {
        Phase::Tracks => Some(from.catalog().track_count().await?),
        _ => None,
    };
    let mut done = 0u64;
    loop {
        let (copied, next) = match phase {
            Phase::Accounts => {
                let page = from
                    .accounts()
                    .accounts_after(cursor.as_deref(), PAGE)
                    .await?;
                for account in &page {
                    to.accounts().create_account(account).await?;
                    to.accounts().update_account(account).await?;
                }
                (page.len(), page.last().map(|account| account.id.clone()))
            }
            Phase::Tokens => {
                let after = cursor
                    .as_deref()
                    .and_then(|hex_text| hex::decode(hex_text).ok())
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
                let page = from.accounts().tokens_after(after.as_ref(), PAGE).await?;
                if !page.is_empty() {
                    to.accounts().put_tokens(&page).await?;
                }
                (page.len(), page.last().map(|(hash, _)| hex::encode(hash)))
            }
            Phase::AppCredentials => {
                let page = from
                    .accounts()
                    .app_credentials_after(cursor.as_deref(), PAGE)
                    .await?;
                for credential in &page {
                    to.accounts().put_app_credential(credential).await?;
                }
                (
                    page.len(),
                    page.last()
                        .map(|credential| format!("{}/{}", credential.account, credential.id)),
                )
            }
            Phase::Renditions => {
                let page = from
                    .catalog()
                    .renditions_after(cursor.as_deref(), PAGE / 10)
                    .await?;
                for (id, record) in &page {
                    for chunk in manifest_chunks(&record.manifest) {
                        if to
                            .blobs()
                            .contains(&chunk)
                            .await
                            .map_err(StoreError::from)?
                        {
                            continue;
                        }
                        let data = from
                            .blobs()
                            .get(&chunk)
                            .await
                            .map_err(StoreError::from)?
                            .ok_or_else(|| MigrateError::MissingChunk(chunk, id.clone()))?;
                        to.blobs()
                            .put(&chunk, data)
                            .await
                            .map_err(StoreError::from)?;
                        state.chunks += 1;
                    }
                }
                if !page.is_empty() {
                    to.catalog().import_renditions(&page).await?;
                }
                (page.len(), page.last().map(|(id, _)| id.clone()))
            }
            Phase::Tracks => {
                let page = from.catalog().tracks_after(cursor.as_deref(), PAGE).await?;
                // Lyrics and cover art live in blobs the records point at: copied first, so
                // no copied record points at nothing. One the source lost is left out (and
                // logged): the track still plays.
                for track in &page {
                    for blob in track.side_blobs() {
                        let Ok(id) = blob.parse::<protocol::ChunkId>() else {
                            continue;
                        };
                        if to.blobs().contains(&id).await.map_err(StoreError::from)? {
                            continue;
                        }
                        match from.blobs().get(&id).await.map_err(StoreError::from)? {
                            Some(data) => {
                                to.blobs().put(&id, data).await.map_err(StoreError::from)?;
                                state.chunks += 1;
                            }
                            None => {
                                tracing::warn!(track = %track.id, %id, "a lyrics or artwork blob is missing at the source");
                            }
                        }
                    }
                }
                let ids: Vec<String> = page.iter().map(|track| track.id.clone()).collect();
                let counts = from.listening().play_counts(&ids).await?;
                let last = page.last().map(|track| track.id.clone());
                let with_counts: Vec<_> = page.into_iter().zip(counts).collect();
                if !with_counts.is_empty() {
                    to.catalog().import_tracks(&with_counts).await?;
                }
                (with_counts.len(), last)
            }
            Phase::Images => {
                let page = from.catalog().images_after(cursor.as_deref(), PAGE).await?;
                for (key, image) in &page {
                    for size in &image.sizes {
                        let Ok(id) = size.blob.parse::<ChunkId>() else {
                            continue;
                        };
                        if to.blobs().contains(&id).await.map_err(StoreError::from)? {
                            continue;
                        }
                        match from.blobs().get(&id).await.map_err(StoreError::from)? {
                            Some(data) => {
                                to.blobs().put(&id, data).await.map_err(StoreError::from)?;
                                state.chunks += 1;
                            }
                            None => {
                                tracing::warn!(%key, %id, "an uploaded picture's blob is missing at the source");
                            }
                        }
                    }
                    to.catalog().set_image_for(key, Some(image)).await?;
                }
                (page.len(), page.last().map(|(key, _)| key.clone()))
            }
            Phase::Playlists => {
                let page = from
                    .playlists()
                    .playlists_after(cursor.as_deref(), PAGE)
                    .await?;
                if !page.is_empty() {
                    to.playlists().import_playlists(&page).await?;
                }
                (page.len(), page.last().map(|playlist| playlist.id.clone()))
            }
            Phase::LikedTracks | Phase::FollowedArtists => {
                let which = if phase == Phase::LikedTracks {
                    Library::Tracks
                } else {
                    Library::Artists
                };
                let after = cursor.as_deref().and_then(|text| text.split_once('\n'));
                let page = from.libraries().library_after(which, after, PAGE).await?;
                for (account, item, at) in &page {
                    to.libraries()
                        .library_add(which, account, item, *at, usize::MAX)
                        .await?;
                }
                (
                    page.len(),
                    page.last()
                        .map(|(account, item, _)| format!("{account}\n{item}")),
                )
            }
            Phase::Devices => {
                let after = cursor.as_deref().and_then(|text| text.split_once('\n'));
                let page = from.devices().devices_after(after, PAGE).await?;
                if !page.is_empty() {
                    to.devices().import_devices(&page).await?;
                }
                (
                    page.len(),
                    page.last()
                        .map(|(account, node, _)| format!("{account}\n{node}")),
                )
            }
            Phase::Players => {
                let page = from
                    .libraries()
                    .players_after(cursor.as_deref(), PAGE)
                    .await?;
                if !page.is_empty() {
                    to.libraries().import_players(&page).await?;
                }
                (page.len(), page.last().map(|(account, _)| account.clone()))
            }
            Phase::Listening => {
                let (page, next) = from
                    .listening()
                    .export_listening(cursor.as_deref(), PAGE)
                    .await?;
                if !page.is_empty() {
                    to.listening().import_listening(&page).await?;
                }
                let copied = page.len();
                // The export cursor is opaque; `None` means done.
                match next {
                    Some(next) => (copied.max(1), Some(next)),
                    None => (0, None),
                }
            }
            Phase::Verify => (0, None),
        };
        done += copied as u64;
        progress.update(phase, done, total);
        let Some(next) = next else {
            return Ok(());
        };
        if copied == 0 {
            return Ok(());
        }
        cursor = Some(next.clone());
        state.current = Some((phase, next));
        state.save(checkpoint)?;
    }
}

/// Counts every domain on both sides and reads back every chunk from the target.
async fn verify(from: &Store, to: &Store, progress: &dyn Progress) -> Result<Report, MigrateError> {
    let mut report = Report::default();
    let source = counts(from).await?;
    let target = counts(to).await?;
    for ((name, have), (_, got)) in source.iter().zip(&target) {
        if got < have {
            return Err(MigrateError::Mismatch(format!(
                "{name}: {have} in the source, {got} in the target"
            )));
        }
    }
    report.counts = target;
    let mut after: Option<String> = None;
    loop {
        let page = to
            .catalog()
            .renditions_after(after.as_deref(), PAGE / 10)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.0.clone());
        for (id, record) in &page {
            for chunk in manifest_chunks(&record.manifest) {
                let data = to
                    .blobs()
                    .backend()
                    .get(&chunk)
                    .await
                    .map_err(StoreError::from)?
                    .ok_or_else(|| {
                        MigrateError::Mismatch(format!(
                            "chunk {chunk} of rendition {id} is missing"
                        ))
                    })?;
                if ChunkId::of(&data) != chunk {
                    return Err(MigrateError::Mismatch(format!(
                        "chunk {chunk} of rendition {id} does not hash to its id"
                    )));
                }
                report.chunks_verified += 1;
            }
        }
        progress.update(Phase::Verify, report.chunks_verified, None);
    }
    Ok(report)
}

/// Items of each domain in `store`, counted by paging.
async fn counts(store: &Store) -> Result<Vec<(String, u64)>, StoreError> {
    const COUNT_PAGE: usize = 10_000;
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .accounts()
            .accounts_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    out.push(("accounts".to_string(), n));
    let (mut n, mut after) = (0u64, None::<String>);
    loop {
        let page = store
            .accounts()
            .app_credentials_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => {
                after = Some(format!("{}/{}", last.account, last.id))
            }
            _ => break,
        }
    }
    out.push(("app passwords and API keys".to_string(), n));
    out.push(("tracks".to_string(), store.catalog().track_count().await?));
    let (mut n, mut after) = (0u64, None::<String>);
    loop {
        let page = store
            .catalog()
            .renditions_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => after = Some(last.0.clone()),
            _ => break,
        }
    }
    out.push(("renditions".to_string(), n));
    let (mut n, mut after) = (0u64, None::<String>);
    loop {
        let page = store
            .catalog()
            .images_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => after = Some(last.0.clone()),
            _ => break,
        }
    }
    out.push(("pictures".to_string(), n));
    let (mut n, mut after) = (0u64, None::<String>);
    loop {
        let page = store
            .libraries()
            .players_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => after = Some(last.0.clone()),
            _ => break,
        }
    }
    out.push(("player states".to_string(), n));
    let (mut n, mut after) = (0u64, None::<String>);
    loop {
        let page = store
            .playlists()
            .playlists_after(after.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == COUNT_PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    out.push(("playlists".to_string(), n));
    for (name, which) in [
        ("liked songs", Library::Tracks),
        ("followed artists", Library::Artists),
    ] {
        let (mut n, mut after) = (0u64, None::<(String, String)>);
        loop {
            let page = store
                .libraries()
                .library_after(
                    which,
                    after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                    COUNT_PAGE,
                )
                .await?;
            n += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == COUNT_PAGE => {
                    after = Some((last.0.clone(), last.1.clone()))
                }
                _ => break,
            }
        }
        out.push((name.to_string(), n));
    }
    let (mut n, mut cursor) = (0u64, None::<String>);
    loop {
        let (page, next) = store
            .listening()
            .export_listening(cursor.as_deref(), COUNT_PAGE)
            .await?;
        n += page.len() as u64;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.push(("listening rows".to_string(), n));
    Ok(out)
}
