//! Accounts (`accounts`, `usernames`) and tokens (`tokens`, keyed by the token's SHA-256).

use async_trait::async_trait;

use super::{EmbeddedStore, get_json, json_after, pair_key};
use crate::store::{
    Account, Accounts, AppCredential, ChangeKind, CredentialKind, StoreError, TokenRecord,
};

#[async_trait]
impl Accounts for EmbeddedStore {
    async fn create_account(&self, account: &Account) -> Result<bool, StoreError> {
        let claimed = self.0.usernames.compare_and_swap(
            account.username.as_bytes(),
            None as Option<&[u8]>,
            Some(account.id.as_bytes()),
        )?;
        if claimed.is_err() {
            return Ok(false);
        }
        self.0
            .accounts
            .insert(account.id.as_bytes(), serde_json::to_vec(account)?)?;
        self.flush().await?;
        Ok(true)
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        self.changing(ChangeKind::Account, &[&account.id], async {
            self.0
                .accounts
                .insert(account.id.as_bytes(), serde_json::to_vec(account)?)?;
            self.flush().await
        })
        .await
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        get_json(&self.0.accounts, id.as_bytes())
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        match self.0.usernames.get(username.as_bytes())? {
            Some(id) => get_json(&self.0.accounts, &id),
            None => Ok(None),
        }
    }

    async fn put_tokens(&self, tokens: &[([u8; 32], TokenRecord)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (hash, record) in tokens {
            batch.insert(&hash[..], serde_json::to_vec(record)?);
        }
        self.0.tokens.apply_batch(batch)?;
        self.flush().await
    }

    async fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        get_json(&self.0.tokens, token_hash)
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(TokenRecord, Option<Account>)>, StoreError> {
        let Some(record) = get_json::<TokenRecord>(&self.0.tokens, token_hash)? else {
            return Ok(None);
        };
        let account = get_json(&self.0.accounts, record.account.as_bytes())?;
        Ok(Some((record, account)))
    }

    async fn take_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let taken = match self.0.tokens.remove(token_hash)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes)?),
            None => return Ok(None),
        };
        self.flush().await?;
        Ok(taken)
    }

    async fn purge_expired_tokens(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.0.tokens.iter() {
            let (key, value) = entry?;
            let record: TokenRecord = serde_json::from_slice(&value)?;
            if record.expires_at_ms <= now_ms {
                self.0.tokens.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn accounts_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        Ok(
            json_after(&self.0.accounts, after.map(str::as_bytes), limit)?
                .into_iter()
                .map(|(_, account)| account)
                .collect(),
        )
    }

    async fn tokens_after(
        &self,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<([u8; 32], TokenRecord)>, StoreError> {
        let mut out = Vec::new();
        for (key, record) in json_after(&self.0.tokens, after.map(|hash| &hash[..]), limit)? {
            if let Ok(hash) = <[u8; 32]>::try_from(&key[..]) {
                out.push((hash, record));
            }
        }
        Ok(out)
    }

    async fn put_app_credential(&self, credential: &AppCredential) -> Result<(), StoreError> {
        let key = pair_key(&credential.account, &credential.id);
        if credential.kind == CredentialKind::ApiKey {
            let hash = hex::decode(&credential.key_hash)
                .map_err(|_| StoreError::Corrupt("an API key hash is not hex".into()))?;
            self.0.api_keys.insert(hash, key.clone())?;
        }
        self.0
            .app_credentials
            .insert(key, serde_json::to_vec(credential)?)?;
        self.flush().await
    }

    async fn app_credentials(&self, account: &str) -> Result<Vec<AppCredential>, StoreError> {
        let mut out = Vec::new();
        for entry in self.0.app_credentials.scan_prefix(pair_key(account, "")) {
            let (_, bytes) = entry?;
            out.push(serde_json::from_slice(&bytes)?);
        }
        Ok(out)
    }

    async fn api_key(&self, key_hash: &[u8; 32]) -> Result<Option<AppCredential>, StoreError> {
        match self.0.api_keys.get(key_hash)? {
            Some(key) => get_json(&self.0.app_credentials, &key),
            None => Ok(None),
        }
    }

    async fn delete_app_credential(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.0.app_credentials.remove(pair_key(account, id))? else {
            return Ok(false);
        };
        let credential: AppCredential = serde_json::from_slice(&bytes)?;
        if let Ok(hash) = hex::decode(&credential.key_hash) {
            self.0.api_keys.remove(hash)?;
        }
        // Tokens are few per account; a full pass is what revocation costs here.
        for entry in self.0.tokens.iter() {
            let (key, value) = entry?;
            let record: TokenRecord = serde_json::from_slice(&value)?;
            if record.account == account && record.credential.as_deref() == Some(id) {
                self.0.tokens.remove(key)?;
            }
        }
        self.flush().await?;
        Ok(true)
    }

    async fn app_credentials_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AppCredential>, StoreError> {
        Ok(
            json_after(&self.0.app_credentials, after.map(str::as_bytes), limit)?
                .into_iter()
                .map(|(_, credential)| credential)
                .collect(),
        )
    }
}
