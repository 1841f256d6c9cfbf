//! Liked songs (`liked_tracks`) and followed artists (`followed_artists`), each keyed
//! `account/item` with the time it was added.

use async_trait::async_trait;

use super::{EmbeddedStore, decode_u64, get_json, json_after, pair_key, split_pair};
use crate::store::{Libraries, Library, LibraryAdd, PlayerRecord, StoreError};

impl EmbeddedStore {
    fn library_tree(&self, which: Library) -> &sled::Tree {
        match which {
            Library::Tracks => &self.0.liked_tracks,
            Library::Artists => &self.0.followed_artists,
        }
    }
}

#[async_trait]
impl Libraries for EmbeddedStore {
    async fn library_add(
        &self,
        which: Library,
        account: &str,
        item: &str,
        now_ms: u64,
        items_max: usize,
    ) -> Result<LibraryAdd, StoreError> {
        let tree = self.library_tree(which);
        let key = pair_key(account, item);
        if let Some(since) = tree.get(&key)? {
            return Ok(LibraryAdd::Already(decode_u64(&since)));
        }
        let prefix = format!("{account}/");
        if tree.scan_prefix(prefix.as_bytes()).count() >= items_max {
            return Ok(LibraryAdd::Full);
        }
        // A concurrent add of the same item keeps whichever time landed first.
        match tree.compare_and_swap(&key, None as Option<&[u8]>, Some(&now_ms.to_be_bytes()[..]))? {
            Ok(()) => {
                self.flush().await?;
                Ok(LibraryAdd::Added(now_ms))
            }
            Err(conflict) => Ok(LibraryAdd::Already(
                conflict.current.as_deref().map_or(now_ms, decode_u64),
            )),
        }
    }

    async fn library_remove(
        &self,
        which: Library,
        account: &str,
        item: &str,
    ) -> Result<bool, StoreError> {
        let removed = self
            .library_tree(which)
            .remove(pair_key(account, item))?
            .is_some();
        if removed {
            self.flush().await?;
        }
        Ok(removed)
    }

    async fn library_page(
        &self,
        which: Library,
        account: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<(String, u64)>), StoreError> {
        let prefix = format!("{account}/");
        let mut items = Vec::new();
        for entry in self.library_tree(which).scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let item = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            items.push((item, decode_u64(&value)));
        }
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total = items.len();
        Ok((total, items.into_iter().skip(offset).take(limit).collect()))
    }

    async fn library_after(
        &self,
        which: Library,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let tree = self.library_tree(which);
        let range = match after {
            Some((account, item)) => tree.range((
                std::ops::Bound::Excluded(pair_key(account, item)),
                std::ops::Bound::Unbounded,
            )),
            None => tree.iter(),
        };
        let mut out = Vec::new();
        for entry in range.take(limit) {
            let (key, value) = entry?;
            let (account, item) = split_pair(&key);
            out.push((account, item, decode_u64(&value)));
        }
        Ok(out)
    }

    async fn player(&self, account: &str) -> Result<Option<PlayerRecord>, StoreError> {
        get_json(&self.0.players, account.as_bytes())
    }

    async fn put_player(&self, account: &str, state: &PlayerRecord) -> Result<bool, StoreError> {
        let key = account.as_bytes();
        let current = self.0.players.get(key)?;
        let stored_version = match &current {
            Some(bytes) => serde_json::from_slice::<PlayerRecord>(bytes)?.version,
            None => 0,
        };
        if state.version != stored_version.saturating_add(1) {
            return Ok(false);
        }
        // Compare-and-swap on the bytes read: of two writers of the same version, one wins.
        let swapped =
            self.0
                .players
                .compare_and_swap(key, current, Some(serde_json::to_vec(state)?))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flush().await?;
        Ok(true)
    }

    async fn players_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, PlayerRecord)>, StoreError> {
        Ok(
            json_after(&self.0.players, after.map(str::as_bytes), limit)?
                .into_iter()
                .map(|(key, state)| (String::from_utf8_lossy(&key).into_owned(), state))
                .collect(),
        )
    }

    async fn import_players(&self, players: &[(String, PlayerRecord)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (account, state) in players {
            batch.insert(account.as_bytes(), serde_json::to_vec(state)?);
        }
        self.0.players.apply_batch(batch)?;
        self.flush().await
    }
}
