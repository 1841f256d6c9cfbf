//! Playlists (`playlists`) and who may see them (`account_playlists`: `account/playlist`).
//! Updates are compare-and-swap on the stored bytes, retried on the newer version.

use async_trait::async_trait;

use super::{EmbeddedStore, get_json, json_after, pair_key};
use crate::store::{
    ChangeKind, PLAYLIST_UPDATE_TRIES, PLAYLISTS_PER_ACCOUNT_MAX, PlaylistChange, PlaylistRecord,
    Playlists, Refused, StoreError,
};

#[async_trait]
impl Playlists for EmbeddedStore {
    async fn create_playlist(&self, playlist: &PlaylistRecord) -> Result<bool, StoreError> {
        self.changing(ChangeKind::Playlist, &[&playlist.id], async {
            let mut owned = 0;
            for id in self.account_playlist_ids(&playlist.owner).await? {
                if get_json::<PlaylistRecord>(&self.0.playlists, id.as_bytes())?
                    .is_some_and(|found| found.owner == playlist.owner)
                {
                    owned += 1;
                }
            }
            if owned >= PLAYLISTS_PER_ACCOUNT_MAX {
                return Ok(false);
            }
            self.0
                .playlists
                .insert(playlist.id.as_bytes(), serde_json::to_vec(playlist)?)?;
            self.0
                .account_playlists
                .insert(pair_key(&playlist.owner, &playlist.id), &[])?;
            self.flush().await?;
            Ok(true)
        })
        .await
    }

    async fn playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError> {
        get_json(&self.0.playlists, id.as_bytes())
    }

    async fn account_playlist_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{account}/");
        let mut ids = Vec::new();
        for entry in self.0.account_playlists.scan_prefix(prefix.as_bytes()) {
            let (key, _) = entry?;
            ids.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(ids)
    }

    async fn update_playlist(
        &self,
        id: &str,
        now_ms: u64,
        change: PlaylistChange<'_>,
    ) -> Result<Option<Result<PlaylistRecord, Refused>>, StoreError> {
        self.changing(ChangeKind::Playlist, &[id], async {
            for _ in 0..PLAYLIST_UPDATE_TRIES {
                let Some(current) = self.0.playlists.get(id.as_bytes())? else {
                    return Ok(None);
                };
                let mut playlist: PlaylistRecord = serde_json::from_slice(&current)?;
                let collaborators_before = playlist.collaborators.clone();
                if let Err(refused) = change(&mut playlist) {
                    return Ok(Some(Err(refused)));
                }
                playlist.version += 1;
                playlist.updated_at_ms = now_ms.max(playlist.updated_at_ms);
                let next = serde_json::to_vec(&playlist)?;
                let swapped = self.0.playlists.compare_and_swap(
                    id.as_bytes(),
                    Some(&current[..]),
                    Some(next),
                )?;
                if swapped.is_err() {
                    continue;
                }
                for added in playlist
                    .collaborators
                    .iter()
                    .filter(|account| !collaborators_before.contains(account))
                {
                    self.0.account_playlists.insert(pair_key(added, id), &[])?;
                }
                for removed in collaborators_before
                    .iter()
                    .filter(|account| !playlist.collaborators.contains(account))
                {
                    self.0.account_playlists.remove(pair_key(removed, id))?;
                }
                self.flush().await?;
                return Ok(Some(Ok(playlist)));
            }
            Err(StoreError::Transaction(format!(
                "playlist {id}: {PLAYLIST_UPDATE_TRIES} concurrent writes in a row"
            )))
        })
        .await
    }

    async fn delete_playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError> {
        self.changing(ChangeKind::Playlist, &[id], async {
            let Some(bytes) = self.0.playlists.remove(id.as_bytes())? else {
                return Ok(None);
            };
            let playlist: PlaylistRecord = serde_json::from_slice(&bytes)?;
            for account in std::iter::once(&playlist.owner).chain(&playlist.collaborators) {
                self.0.account_playlists.remove(pair_key(account, id))?;
            }
            self.flush().await?;
            Ok(Some(playlist))
        })
        .await
    }

    async fn playlists_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PlaylistRecord>, StoreError> {
        Ok(
            json_after(&self.0.playlists, after.map(str::as_bytes), limit)?
                .into_iter()
                .map(|(_, playlist)| playlist)
                .collect(),
        )
    }

    async fn import_playlists(&self, playlists: &[PlaylistRecord]) -> Result<(), StoreError> {
        self.changing(ChangeKind::Import, &[""], async {
            let (mut records, mut access) = (sled::Batch::default(), sled::Batch::default());
            for playlist in playlists {
                records.insert(playlist.id.as_bytes(), serde_json::to_vec(playlist)?);
                for account in std::iter::once(&playlist.owner).chain(&playlist.collaborators) {
                    access.insert(pair_key(account, &playlist.id), &[]);
                }
            }
            self.0.playlists.apply_batch(records)?;
            self.0.account_playlists.apply_batch(access)?;
            self.flush().await
        })
        .await
    }
}
