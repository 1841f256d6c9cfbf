//! `accounts` (username unique) and `tokens` (keyed by the token's SHA-256).

use async_trait::async_trait;
use tokio_postgres::types::Json;

use super::{PostgresStore, big, count, db_error, note_changes};
use crate::store::{Account, Accounts, AppCredential, ChangeKind, StoreError, TokenRecord};

#[async_trait]
impl Accounts for PostgresStore {
    async fn create_account(&self, account: &Account) -> Result<bool, StoreError> {
        let inserted = self
            .run(
                "INSERT INTO accounts (id, username, record) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&account.id, &account.username, &Json(account)],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        transaction
            .execute(
                "UPDATE accounts SET username = $2, record = $3 WHERE id = $1",
                &[&account.id, &account.username, &Json(account)],
            )
            .await
            .map_err(db_error)?;
        note_changes(&transaction, ChangeKind::Account, &[&account.id]).await?;
        transaction.commit().await.map_err(db_error)
    }

    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let row = self
            .row("SELECT record FROM accounts WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<Account>>(0).0))
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let row = self
            .row(
                "SELECT record FROM accounts WHERE username = $1",
                &[&username],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, Json<Account>>(0).0))
    }

    async fn put_tokens(&self, tokens: &[([u8; 32], TokenRecord)]) -> Result<(), StoreError> {
        let hashes: Vec<&[u8]> = tokens.iter().map(|(hash, _)| &hash[..]).collect();
        let expiries: Vec<i64> = tokens
            .iter()
            .map(|(_, record)| big(record.expires_at_ms))
            .collect();
        let records: Vec<Json<&TokenRecord>> =
            tokens.iter().map(|(_, record)| Json(record)).collect();
        self.run(
            "INSERT INTO tokens (hash, expires_at_ms, record)
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::jsonb[])
                 ON CONFLICT (hash) DO UPDATE
                 SET expires_at_ms = EXCLUDED.expires_at_ms, record = EXCLUDED.record",
            &[&hashes, &expiries, &records],
        )
        .await?;
        Ok(())
    }

    async fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = self
            .row(
                "SELECT record FROM tokens WHERE hash = $1",
                &[&&token_hash[..]],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, Json<TokenRecord>>(0).0))
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(TokenRecord, Option<Account>)>, StoreError> {
        let row = self
            .row(
                "SELECT t.record, a.record FROM tokens t
                 LEFT JOIN accounts a ON a.id = t.record->>'account'
                 WHERE t.hash = $1",
                &[&&token_hash[..]],
            )
            .await?;
        Ok(row.map(|row| {
            (
                row.get::<_, Json<TokenRecord>>(0).0,
                row.get::<_, Option<Json<Account>>>(1)
                    .map(|account| account.0),
            )
        }))
    }

    async fn take_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let row = self
            .row(
                "DELETE FROM tokens WHERE hash = $1 RETURNING record",
                &[&&token_hash[..]],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, Json<TokenRecord>>(0).0))
    }

    async fn purge_expired_tokens(&self, now_ms: u64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM tokens WHERE expires_at_ms <= $1",
                &[&big(now_ms)],
            )
            .await
            .map_err(db_error)?;
        Ok(removed as usize)
    }

    async fn accounts_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM accounts WHERE $1::text IS NULL OR id > $1
                 ORDER BY id LIMIT $2",
                &[&after, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Json<Account>>(0).0)
            .collect())
    }

    async fn tokens_after(
        &self,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<([u8; 32], TokenRecord)>, StoreError> {
        let client = self.client().await?;
        let after: Option<&[u8]> = after.map(|hash| &hash[..]);
        let rows = client
            .query(
                "SELECT hash, record FROM tokens WHERE $1::bytea IS NULL OR hash > $1
                 ORDER BY hash LIMIT $2",
                &[&after, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let hash: &[u8] = row.get(0);
            if let Ok(hash) = <[u8; 32]>::try_from(hash) {
                out.push((hash, row.get::<_, Json<TokenRecord>>(1).0));
            }
        }
        Ok(out)
    }

    async fn put_app_credential(&self, credential: &AppCredential) -> Result<(), StoreError> {
        let key_hash = hex::decode(&credential.key_hash)
            .ok()
            .filter(|hash| !hash.is_empty());
        self.run(
            "INSERT INTO app_credentials (account, id, key_hash, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, id) DO UPDATE
             SET key_hash = EXCLUDED.key_hash, record = EXCLUDED.record",
            &[
                &credential.account,
                &credential.id,
                &key_hash,
                &Json(credential),
            ],
        )
        .await?;
        Ok(())
    }

    async fn app_credentials(&self, account: &str) -> Result<Vec<AppCredential>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM app_credentials WHERE account = $1 ORDER BY id",
                &[&account],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Json<AppCredential>>(0).0)
            .collect())
    }

    async fn api_key(&self, key_hash: &[u8; 32]) -> Result<Option<AppCredential>, StoreError> {
        let row = self
            .row(
                "SELECT record FROM app_credentials WHERE key_hash = $1",
                &[&&key_hash[..]],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, Json<AppCredential>>(0).0))
    }

    async fn delete_app_credential(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let removed = transaction
            .execute(
                "DELETE FROM app_credentials WHERE account = $1 AND id = $2",
                &[&account, &id],
            )
            .await
            .map_err(db_error)?;
        transaction
            .execute(
                "DELETE FROM tokens WHERE record ? 'credential'
                 AND record->>'credential' = $2 AND record->>'account' = $1",
                &[&account, &id],
            )
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(removed == 1)
    }

    async fn app_credentials_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AppCredential>, StoreError> {
        let (account, id) = match after.and_then(|key| key.split_once('/')) {
            Some((account, id)) => (Some(account), id),
            None => (None, ""),
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM app_credentials
                 WHERE $1::text IS NULL OR (account, id) > ($1, $2)
                 ORDER BY account, id LIMIT $3",
                &[&account, &id, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Json<AppCredential>>(0).0)
            .collect())
    }
}
