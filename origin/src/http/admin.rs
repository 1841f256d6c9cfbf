//! `PATCH /v1/admin/accounts/{username}`: operator changes to entitlements.

use axum::Json;
use axum::extract::State;

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::state::AppState;
use super::{Limit, Routes};
use crate::admin::{AccountChange, AccountView, apply_change};
use crate::store::Role;
use utoipa_axum::routes;

#[utoipa::path(patch, path = "/v1/admin/accounts/{username}", tag = "admin", security(("bearer" = [])), params(("username" = String, Path, pattern = "^[A-Za-z0-9_.-]{3,32}$")), request_body = AccountChange, responses((status = 200, body = AccountView), (status = 400, body = ErrorBody, description = "invalid_region, invalid_json"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "admin_only"), (status = 404, body = ErrorBody)))]
/// `PATCH /v1/admin/accounts/{username}`: an admin changes an account's role, tier or region.
pub async fn patch_account(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiPath(username): ApiPath<String>,
    ApiJson(change): ApiJson<AccountChange>,
) -> Result<Json<AccountView>, ApiError> {
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden(
            "admin_only",
            "only an admin changes roles, tiers and regions",
        ));
    }
    let mut account = state
        .store
        .accounts()
        .account_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    apply_change(&mut account, &change).map_err(|error| {
        ApiError::bad_request("invalid_region", error.to_string()).with_field("region")
    })?;
    state.store.accounts().update_account(&account).await?;
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

/// Operator changes.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new().add(Limit::Ip, routes!(patch_account)).into()
}
