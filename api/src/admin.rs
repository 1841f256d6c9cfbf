//! `PATCH /v1/admin/accounts/{username}`: operator changes to entitlements.

use serde::{Deserialize, Serialize};

use crate::accounts::{Role, Tier};

/// The fields an admin may change; those left out stay as they are.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// New tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// New region, an assigned ISO 3166-1 alpha-2 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::assigned_region_schema)]
    pub region: Option<String>,
}

/// An account as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Account id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
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
