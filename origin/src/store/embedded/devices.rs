//! Devices holding offline licenses (`offline_devices`: `account/node` → expiry).

use async_trait::async_trait;

use super::{EmbeddedStore, pair_key, split_pair};
use crate::store::{Devices, StoreError};

#[async_trait]
impl Devices for EmbeddedStore {
    async fn admit_offline_device(
        &self,
        account: &str,
        node: &str,
        now_ms: u64,
        devices_max: usize,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let prefix = format!("{account}/");
        let own_key = pair_key(account, node);
        // Count and insert under the store's admission lock (one process owns a sled
        // database): two concurrent admissions cannot both take the last place.
        let admitted = {
            let _admitting = self
                .0
                .admissions
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let mut active = 0;
            let mut known = false;
            for entry in self.0.offline_devices.scan_prefix(prefix.as_bytes()) {
                let (key, value) = entry?;
                let expires: u64 = serde_json::from_slice(&value)?;
                if expires <= now_ms {
                    self.0.offline_devices.remove(key)?;
                    continue;
                }
                active += 1;
                known |= key.as_ref() == own_key.as_slice();
            }
            let admitted = known || active < devices_max;
            if admitted {
                self.0
                    .offline_devices
                    .insert(own_key.as_slice(), serde_json::to_vec(&expires_at_ms)?)?;
            }
            admitted
        };
        if admitted {
            self.flush().await?;
        }
        Ok(admitted)
    }

    async fn devices_after(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let tree = &self.0.offline_devices;
        let range = match after {
            Some((account, node)) => tree.range((
                std::ops::Bound::Excluded(pair_key(account, node)),
                std::ops::Bound::Unbounded,
            )),
            None => tree.iter(),
        };
        let mut out = Vec::new();
        for entry in range.take(limit) {
            let (key, value) = entry?;
            let (account, node) = split_pair(&key);
            out.push((account, node, serde_json::from_slice(&value)?));
        }
        Ok(out)
    }

    async fn import_devices(&self, devices: &[(String, String, u64)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (account, node, expires) in devices {
            batch.insert(pair_key(account, node), serde_json::to_vec(expires)?);
        }
        self.0.offline_devices.apply_batch(batch)?;
        self.flush().await
    }
}
