//! Operator changes to accounts: `PATCH /v1/admin/accounts/{username}`.
//!
//! Role, tier and region are entitlements: the licensing model rests on them, so only an
//! admin changes them (sign-up never takes them from the caller). `chorus admin set-role`,
//! `set-tier` and `set-region` call this route on a running origin, or change the data
//! directory directly when the origin is stopped.

use serde::{Deserialize, Serialize};

use crate::store::{Account, Role, Tier};

/// The fields an admin may change; those left out stay as they are.
#[derive(Debug, Default, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// New role.
    pub role: Option<Role>,
    /// New tier.
    pub tier: Option<Tier>,
    /// New region, an assigned ISO 3166-1 alpha-2 code.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub region: Option<String>,
}

/// An account as an admin sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Account id, 32 hex.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Tier.
    pub tier: Tier,
    /// Region.
    pub region: String,
}

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
