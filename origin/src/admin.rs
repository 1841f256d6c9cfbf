//! Operator changes to accounts: `PATCH /v1/admin/accounts/{username}`.
//!
//! Role, tier and region are entitlements: the licensing model rests on them, so only an
//! admin changes them (sign-up never takes them from the caller). `chorus admin set-role`,
//! `set-tier` and `set-region` call this route on a running origin, or change the data
//! directory directly when the origin is stopped.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ApiJson, AppState, Authed};
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

/// Applies `change` to `account`, checking the region.
pub fn apply_change(account: &mut Account, change: &AccountChange) -> Result<(), ApiError> {
    if let Some(region) = &change.region {
        let region = protocol::Region::assigned(region).map_err(|_| {
            crate::api::bad_request(
                "invalid_region",
                "region must be an ISO 3166-1 alpha-2 country code such as SE",
            )
            .with_field("region")
        })?;
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

#[utoipa::path(patch, path = "/v1/admin/accounts/{username}", tag = "admin", security(("bearer" = [])), params(("username" = String, Path, pattern = "^[A-Za-z0-9_.-]{3,32}$")), request_body = AccountChange, responses((status = 200, body = AccountView), (status = 400, body = crate::api::ErrorBody, description = "invalid_region, invalid_json"), (status = 401, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody, description = "admin_only"), (status = 404, body = crate::api::ErrorBody)))]
/// `PATCH /v1/admin/accounts/{username}`: an admin changes an account's role, tier or region.
pub async fn patch_account(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(username): Path<String>,
    ApiJson(change): ApiJson<AccountChange>,
) -> Result<Json<AccountView>, ApiError> {
    if caller.role != Role::Admin {
        return Err(crate::api::forbidden(
            "admin_only",
            "only an admin changes roles, tiers and regions",
        ));
    }
    let mut account = state
        .store
        .account_by_username(&username)?
        .ok_or_else(|| crate::api::not_found("account"))?;
    apply_change(&mut account, &change)?;
    let store = state.store.clone();
    let stored = account.clone();
    tokio::task::spawn_blocking(move || store.update_account(&stored))
        .await
        .map_err(ApiError::internal)??;
    tracing::info!(
        admin = %caller.username,
        account = %account.username,
        role = ?account.role,
        tier = ?account.tier,
        region = %account.region,
        "account entitlements changed"
    );
    Ok(Json(AccountView::from(&account)))
}
