//! Read-through caches in front of any backend, for the reads every request makes: on a
//! networked database each read is a round trip.
//!
//! [`CachedCatalog`] keeps track and rendition records (the play path reads both on every
//! authorization). Rendition records never change once published; a track changes only when
//! deleted or re-imported, which goes through this layer and forgets it. Another origin's
//! change reaches this one through the change feed ([`crate::follow`], within a second or
//! two), and entries expire after [`RECORD_TTL`] whatever happens to the feed. Bounded: at
//! most [`RECORDS_MAX`] of each (emptied when full).
//!
//! [`CachedAccounts`] keeps sessions (an access token's record with its account), which every
//! authenticated request resolves. An access token ends when it expires (checked on every
//! request against the cached record), or when the app credential it was issued for is
//! revoked through [`Accounts::delete_app_credential`], which forgets every session here (another
//! origin sees that within [`SESSION_TTL`]); an account changes only through
//! [`Accounts::update_account`], which forgets its sessions here at once. Another origin's
//! change to an account (a tier or role) arrives through the change feed, and is seen within
//! [`SESSION_TTL`] at worst. Only found sessions
//! are kept, so a token issued by another origin works at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use protocol::ChunkId;

use crate::store::ImageSet;

use super::{
    Account, Accounts, AppCredential, Catalog, RenditionRecord, StoreError, TokenRecord,
    TrackRecord,
};

/// How long a cached record is served before it is read again.
pub const RECORD_TTL: Duration = Duration::from_secs(10);

/// Records of each kind kept.
pub const RECORDS_MAX: usize = 100_000;

/// How long a cached session is served before it is read again.
pub const SESSION_TTL: Duration = Duration::from_secs(5);

/// Sessions kept.
pub const SESSIONS_MAX: usize = 100_000;

type Entries<T, K = String> = Mutex<HashMap<K, (Instant, T)>>;

/// [`Catalog`] with its track and rendition reads cached (see the module docs).
#[derive(Debug)]
pub struct CachedCatalog {
    inner: Arc<dyn Catalog>,
    tracks: Entries<TrackRecord>,
    renditions: Entries<RenditionRecord>,
}

fn lookup<T: Clone>(entries: &Entries<T>, id: &str) -> Option<T> {
    lookup_within(entries, id, RECORD_TTL)
}

fn lookup_within<K, Q, T>(entries: &Entries<T, K>, key: &Q, ttl: Duration) -> Option<T>
where
    K: std::borrow::Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    T: Clone,
{
    let entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    entries
        .get(key)
        .filter(|(at, _)| at.elapsed() < ttl)
        .map(|(_, record)| record.clone())
}

fn remember<T>(entries: &Entries<T>, id: &str, record: T) {
    remember_within(
        entries,
        id.to_string(),
        record,
        RECORDS_MAX,
        RECORD_TTL,
        || true,
    );
}

/// Keeps `record` if `keep` (asked under the lock) agrees; when `max` are kept, the expired
/// go first, and everything if none has.
fn remember_within<K: Hash + Eq, T>(
    entries: &Entries<T, K>,
    key: K,
    record: T,
    max: usize,
    ttl: Duration,
    keep: impl FnOnce() -> bool,
) {
    let mut entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    if !keep() {
        return;
    }
    if entries.len() >= max {
        entries.retain(|_, (at, _)| at.elapsed() < ttl);
        if entries.len() >= max {
            entries.clear();
        }
    }
    entries.insert(key, (Instant::now(), record));
}

fn forget<T>(entries: &Entries<T>, ids: impl IntoIterator<Item = impl AsRef<str>>) {
    let mut entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    for id in ids {
        entries.remove(id.as_ref());
    }
}

impl CachedCatalog {
    /// `inner` with a cache in front.
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        Self {
            inner,
            tracks: Mutex::default(),
            renditions: Mutex::default(),
        }
    }

    /// Forgets track `id` and its renditions (another origin changed or deleted it).
    pub fn forget_track_id(&self, id: &str) {
        let cached = self
            .tracks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(id);
        match cached {
            Some((_, track)) => self.forget_track(&track),
            None => self
                .renditions
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .retain(|_, (_, record)| record.track != id),
        }
    }

    fn forget_track(&self, track: &TrackRecord) {
        forget(&self.tracks, [&track.id]);
        forget(
            &self.renditions,
            track
                .renditions
                .iter()
                .map(|rendition| &rendition.rendition_id),
        );
    }
}

#[async_trait]
impl Catalog for CachedCatalog {
    async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        self.forget_track(track);
        self.inner.publish_track(track, renditions).await
    }

    async fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError> {
        for (track, _) in tracks {
            self.forget_track(track);
        }
        self.inner.import_tracks(tracks).await
    }

    async fn import_renditions(
        &self,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        forget(&self.renditions, renditions.iter().map(|(id, _)| id));
        self.inner.import_renditions(renditions).await
    }

    async fn delete_track(&self, track: &TrackRecord) -> Result<Vec<ChunkId>, StoreError> {
        let result = self.inner.delete_track(track).await;
        // Forgotten whatever the outcome: a failed delete may still have removed something.
        self.forget_track(track);
        result
    }

    async fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError> {
        if let Some(track) = lookup(&self.tracks, id) {
            return Ok(Some(track));
        }
        let found = self.inner.track(id).await?;
        if let Some(track) = &found {
            remember(&self.tracks, id, track.clone());
        }
        Ok(found)
    }

    async fn has_rendition(&self, id: &str) -> Result<bool, StoreError> {
        if lookup(&self.renditions, id).is_some() {
            return Ok(true);
        }
        self.inner.has_rendition(id).await
    }

    async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        if let Some(record) = lookup(&self.renditions, id) {
            return Ok(Some(record));
        }
        let found = self.inner.rendition(id).await?;
        if let Some(record) = &found {
            remember(&self.renditions, id, record.clone());
        }
        Ok(found)
    }

    async fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.artist_tracks(artist_id, offset, limit).await
    }

    async fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.album_tracks(album_id, offset, limit).await
    }

    async fn tracks_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.tracks_after(after, limit).await
    }

    async fn image_for(&self, key: &str) -> Result<Option<ImageSet>, StoreError> {
        self.inner.image_for(key).await
    }

    async fn set_image_for(&self, key: &str, image: Option<&ImageSet>) -> Result<(), StoreError> {
        self.inner.set_image_for(key, image).await
    }

    async fn images_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ImageSet)>, StoreError> {
        self.inner.images_after(after, limit).await
    }

    async fn renditions_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RenditionRecord)>, StoreError> {
        self.inner.renditions_after(after, limit).await
    }

    async fn track_count(&self) -> Result<u64, StoreError> {
        self.inner.track_count().await
    }

    async fn settle_after_import(&self) -> Result<(), StoreError> {
        self.inner.settle_after_import().await
    }
}

type Session = (TokenRecord, Option<Account>);

/// [`Accounts`] with sessions cached (see the module docs). At most [`SESSIONS_MAX`] entries
/// of a token record and an account each (under 1 KiB: some tens of MiB when full).
#[derive(Debug)]
pub struct CachedAccounts {
    inner: Arc<dyn Accounts>,
    sessions: Entries<Session, [u8; 32]>,
    /// Bumped after every change to accounts or tokens through here: a session read that
    /// began before a change is not kept (it may hold the old record).
    changes: std::sync::atomic::AtomicU64,
}

impl CachedAccounts {
    /// `inner` with a session cache in front.
    pub fn new(inner: Arc<dyn Accounts>) -> Self {
        Self {
            inner,
            sessions: Mutex::default(),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forgets the sessions of account `id` (another origin changed it).
    pub fn forget_sessions_of(&self, id: &str) {
        self.changed();
        self.forget_account(id);
    }

    fn forget_account(&self, id: &str) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        sessions.retain(|_, (_, (token, _))| token.account != id);
    }
}

#[async_trait]
impl Accounts for CachedAccounts {
    async fn create_account(&self, account: &Account) -> Result<bool, StoreError> {
        self.inner.create_account(account).await
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        let result = self.inner.update_account(account).await;
        // Forgotten whatever the outcome; reads in flight will not put the old record back.
        self.changed();
        self.forget_account(&account.id);
        result
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.inner.account(id).await
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        self.inner.account_by_username(username).await
    }

    async fn put_tokens(&self, tokens: &[([u8; 32], TokenRecord)]) -> Result<(), StoreError> {
        self.inner.put_tokens(tokens).await
    }

    async fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token(token_hash).await
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        if let Some(session) = lookup_within(&self.sessions, token_hash, SESSION_TTL) {
            return Ok(Some(session));
        }
        let before = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        let found = self.inner.session(token_hash).await?;
        if let Some(session) = &found {
            // A change bumps the counter before it forgets: one that came after this read
            // began either shows here (not kept) or forgets after this insert.
            remember_within(
                &self.sessions,
                *token_hash,
                session.clone(),
                SESSIONS_MAX,
                SESSION_TTL,
                || self.changes.load(std::sync::atomic::Ordering::SeqCst) == before,
            );
        }
        Ok(found)
    }

    async fn take_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let result = self.inner.take_token(token_hash).await;
        self.changed();
        self.sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(token_hash);
        result
    }

    async fn purge_expired_tokens(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.inner.purge_expired_tokens(now_ms).await
    }

    async fn accounts_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        self.inner.accounts_after(after, limit).await
    }

    async fn tokens_after(
        &self,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<([u8; 32], TokenRecord)>, StoreError> {
        self.inner.tokens_after(after, limit).await
    }

    async fn put_app_credential(&self, credential: &AppCredential) -> Result<(), StoreError> {
        self.inner.put_app_credential(credential).await
    }

    async fn app_credentials(&self, account: &str) -> Result<Vec<AppCredential>, StoreError> {
        self.inner.app_credentials(account).await
    }

    async fn api_key(&self, key_hash: &[u8; 32]) -> Result<Option<AppCredential>, StoreError> {
        self.inner.api_key(key_hash).await
    }

    async fn delete_app_credential(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let result = self.inner.delete_app_credential(account, id).await;
        // The tokens it issued are gone: so are the sessions remembered for them (revoking is
        // rare, so all are forgotten).
        self.changed();
        self.sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clear();
        result
    }

    async fn app_credentials_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AppCredential>, StoreError> {
        self.inner.app_credentials_after(after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Role, Store, Tier, TokenKind};
    use super::*;

    fn account(id: &str, tier: Tier) -> Account {
        Account {
            id: id.to_string(),
            username: format!("user_{id}"),
            password_hash: String::new(),
            region: "SE".to_string(),
            role: Role::Listener,
            tier,
            created_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn sessions_follow_account_changes_and_new_tokens_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(dir.path()).await.unwrap();
        let accounts = store.accounts();
        let listener = account("a1", Tier::Free);
        assert!(accounts.create_account(&listener).await.unwrap());
        let hash = [7u8; 32];
        // Not found is not remembered: the token works as soon as it is stored.
        assert!(accounts.session(&hash).await.unwrap().is_none());
        let record = TokenRecord {
            account: listener.id.clone(),
            kind: TokenKind::Access,
            expires_at_ms: u64::MAX,
            credential: None,
        };
        accounts.put_tokens(&[(hash, record)]).await.unwrap();
        let (_, found) = accounts.session(&hash).await.unwrap().unwrap();
        assert_eq!(found.unwrap().tier, Tier::Free);
        // An upgrade through this store is seen by the next request, not SESSION_TTL later.
        accounts
            .update_account(&account("a1", Tier::Premium))
            .await
            .unwrap();
        let (_, found) = accounts.session(&hash).await.unwrap().unwrap();
        assert_eq!(found.unwrap().tier, Tier::Premium);
        // A taken token is gone at once too.
        accounts.take_token(&hash).await.unwrap();
        assert!(accounts.session(&hash).await.unwrap().is_none());
    }
}
