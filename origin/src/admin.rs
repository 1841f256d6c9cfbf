//! Operator changes to accounts: `PATCH /v1/admin/accounts/{username}`.
//!
//! Role, tier and region are entitlements: the licensing model rests on them, so only an
//! admin changes them (sign-up never takes them from the caller). `chorus admin set-role`,
//! `set-tier` and `set-region` call this route on a running origin, or change the data
//! directory directly when the origin is stopped.

pub use api::admin::{AccountChange, AccountView};

use crate::store::Account;

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id.clone(),
            username: account.username.clone(),
            role: account.role,
            tier: account.tier,
            region: account.region.clone(),
        }
    }
}

/// A change names a region that is not an assigned ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region must be an ISO 3166-1 alpha-2 country code such as SE")]
pub struct InvalidRegion;

/// Applies `change` to `account`, checking the region.
pub fn apply_change(account: &mut Account, change: &AccountChange) -> Result<(), InvalidRegion> {
    if let Some(region) = &change.region {
        let region = protocol::Region::assigned(region).map_err(|_| InvalidRegion)?;
        account.region = region.to_string();
    }
    if let Some(role) = change.role {
        account.role = role;
    }
    if let Some(tier) = change.tier {
        account.tier = tier;
    }
    Ok(())
}
