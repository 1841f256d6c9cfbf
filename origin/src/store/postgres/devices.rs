//! `offline_devices`: which devices hold an account's offline licenses, until when.

use async_trait::async_trait;

use super::{PostgresStore, account_lock, big, count, db_error, unbig};
use crate::store::{Devices, StoreError};

#[async_trait]
impl Devices for PostgresStore {
    async fn admit_offline_device(
        &self,
        account: &str,
        node: &str,
        now_ms: u64,
        devices_max: usize,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        // Expire, count and admit under the account's lock: two concurrent admissions cannot
        // both take the last place.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&account_lock("devices", account)],
            )
            .await
            .map_err(db_error)?;
        transaction
            .execute(
                "DELETE FROM offline_devices WHERE account = $1 AND expires_at_ms <= $2",
                &[&account, &big(now_ms)],
            )
            .await
            .map_err(db_error)?;
        let row = transaction
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE node = $2)
                 FROM offline_devices WHERE account = $1",
                &[&account, &node],
            )
            .await
            .map_err(db_error)?;
        let (active, known): (i64, i64) = (row.get(0), row.get(1));
        if known == 0 && unbig(active) as usize >= devices_max {
            transaction.commit().await.map_err(db_error)?;
            return Ok(false);
        }
        transaction
            .execute(
                "INSERT INTO offline_devices (account, node, expires_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (account, node) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms",
                &[&account, &node, &big(expires_at_ms)],
            )
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn devices_after(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let (after_account, after_node) = after.unzip();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, node, expires_at_ms FROM offline_devices
                 WHERE $1::text IS NULL OR (account, node) > ($1, $2::text)
                 ORDER BY account, node LIMIT $3",
                &[&after_account, &after_node, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), unbig(row.get(2))))
            .collect())
    }

    async fn import_devices(&self, devices: &[(String, String, u64)]) -> Result<(), StoreError> {
        let accounts: Vec<&str> = devices.iter().map(|(a, _, _)| a.as_str()).collect();
        let nodes: Vec<&str> = devices.iter().map(|(_, n, _)| n.as_str()).collect();
        let expiries: Vec<i64> = devices.iter().map(|(_, _, e)| big(*e)).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO offline_devices (account, node, expires_at_ms)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (account, node) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms",
                &[&accounts, &nodes, &expiries],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
