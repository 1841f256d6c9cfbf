//! Accounts and sessions: sign-up, log-in, token refresh, the caller's own account.

use api::accounts::{AccountCreated, Login, Me, NewAccount, Refresh, Tokens};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::auth::Authed;
use super::auth::ClientIp;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::accounts;
use crate::config::OriginConfig;
use crate::ratelimit::Class;
use crate::store::{Account, Role, Tier, TokenKind, TokenRecord};
use utoipa_axum::routes;

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = NewAccount, responses((status = 201, body = AccountCreated, description = "Created", links(("LogIn" = (operation_id = "create_session", request_body = json!({"username": "$request.body#/username", "password": "$request.body#/password"}))))), (status = 400, body = ErrorBody, description = "invalid_username, invalid_password, invalid_region"), (status = 403, body = ErrorBody, description = "not_allowed: a role, tier or region the caller may not have (error.field names it)"), (status = 409, body = ErrorBody, description = "username_taken"), (status = 503, body = ErrorBody, description = "busy: too many log-ins at once")))]
async fn create_account(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(new): ApiJson<NewAccount>,
) -> Result<impl IntoResponse, ApiError> {
    if !accounts::valid_username(&new.username) {
        return Err(ApiError::bad_request(
            "invalid_username",
            "3 to 32 characters of a-z, A-Z, 0-9, _ . -",
        )
        .with_field("username"));
    }
    if !accounts::PASSWORD_CHARS.contains(&new.password.chars().count()) {
        return Err(
            ApiError::bad_request("invalid_password", "passwords are 8 to 256 characters")
                .with_field("password"),
        );
    }
    let region = state
        .region_rules
        .region_for(client.map(|axum::Extension(ClientIp(ip))| ip));
    let role = signup_role(&state.config, new.role)?;
    if let Some(asked) = &new.region {
        let asked = protocol::Region::assigned(asked).map_err(|_| {
            ApiError::bad_request(
                "invalid_region",
                "region must be an ISO 3166-1 alpha-2 country code such as SE",
            )
            .with_field("region")
        })?;
        if asked != region {
            return Err(ApiError::forbidden(
                "not_allowed",
                format!(
                    "the region is set by the operator: sign-ups from here are in {region}, not {asked}"
                ),
            )
            .with_field("region"));
        }
    }
    if new.tier.is_some_and(|tier| tier != Tier::Free) {
        return Err(ApiError::forbidden(
            "not_allowed",
            "sign-ups are on the free tier; an operator changes tiers",
        )
        .with_field("tier"));
    }
    let account = Account {
        id: hex::encode(rand::random::<[u8; 16]>()),
        username: new.username,
        password_hash: state.passwords.hash(new.password).await?,
        region: region.to_string(),
        role,
        tier: Tier::Free,
        created_at_ms: now_ms(),
    };
    let created = state.store.accounts().create_account(&account).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "that username is taken",
        )
        .with_field("username"));
    }
    Ok((
        StatusCode::CREATED,
        Json(AccountCreated {
            id: account.id,
            region: account.region,
            role: account.role,
            tier: account.tier,
        }),
    ))
}

/// The role a sign-up gets: a listener, or an artist where the operator opened that.
fn signup_role(config: &OriginConfig, asked: Option<Role>) -> Result<Role, ApiError> {
    match asked.unwrap_or(Role::Listener) {
        Role::Listener => Ok(Role::Listener),
        Role::Artist if config.artist_signup => Ok(Role::Artist),
        Role::Artist => Err(ApiError::forbidden(
            "not_allowed",
            "artist sign-up is closed here: an operator grants the artist role",
        )
        .with_field("role")),
        Role::Admin | Role::SuperNode => Err(ApiError::forbidden(
            "not_allowed",
            "admin and super-node accounts are made by an operator (`chorus admin`)",
        )
        .with_field("role")),
    }
}

#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = Login, responses((status = 200, body = Tokens, links(("Refresh" = (operation_id = "refresh_session", request_body = json!({"refresh_token": "$response.body#/refresh_token"}))))), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody, description = "busy: too many log-ins at once")))]
async fn create_session(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<Json<Tokens>, ApiError> {
    let account = state
        .store
        .accounts()
        .account_by_username(&login.username)
        .await?;
    let password_hash = account
        .as_ref()
        .map(|account| account.password_hash.clone());
    // Unknown users verify against a real stand-in hash, so timing does not reveal which exist.
    let verified = state
        .passwords
        .verify(login.password, password_hash)
        .await?;
    match account {
        Some(account) if verified => issue_tokens(&state, &account.id).await.map(Json),
        _ => Err(ApiError::unauthorized("wrong username or password")),
    }
}

async fn issue_tokens(state: &AppState, account_id: &str) -> Result<Tokens, ApiError> {
    let now = now_ms();
    let (access_token, access_hash) = accounts::new_token();
    let (refresh_token, refresh_hash) = accounts::new_token();
    let access = TokenRecord {
        account: account_id.to_string(),
        kind: TokenKind::Access,
        expires_at_ms: now + state.config.access_token_ttl_s * 1000,
        credential: None,
    };
    let refresh = TokenRecord {
        account: account_id.to_string(),
        kind: TokenKind::Refresh,
        expires_at_ms: now + state.config.refresh_token_ttl_s * 1000,
        credential: None,
    };
    // One durable write for both (a log-in costs one flush, not two).
    state
        .store
        .accounts()
        .put_tokens(&[(access_hash, access), (refresh_hash, refresh)])
        .await?;
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: state.config.access_token_ttl_s,
        token_type: "Bearer".into(),
    })
}

#[utoipa::path(post, path = "/v1/sessions/refresh", tag = "accounts", request_body = Refresh, responses((status = 200, body = Tokens, description = "New tokens; the refresh token used is spent"), (status = 401, body = ErrorBody)))]
async fn refresh_session(
    State(state): State<AppState>,
    ApiJson(refresh): ApiJson<Refresh>,
) -> Result<Json<Tokens>, ApiError> {
    // Refresh tokens rotate: taking one removes it, so it works exactly once.
    let record = state
        .store
        .accounts()
        .take_token(&accounts::token_hash(&refresh.refresh_token))
        .await?
        .filter(|record| record.kind == TokenKind::Refresh && record.expires_at_ms > now_ms())
        .ok_or_else(|| ApiError::unauthorized("invalid, used or expired refresh token"))?;
    issue_tokens(&state, &record.account).await.map(Json)
}

#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(Authed(account): Authed) -> Json<Me> {
    Json(Me {
        id: account.id,
        username: account.username,
        region: account.region,
        role: account.role,
        tier: account.tier,
    })
}

/// Sign-up, log-in and refresh take the address's `unauthenticated` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(
            Limit::Class(Class::Unauthenticated),
            routes!(create_account),
        )
        .add(
            Limit::Class(Class::Unauthenticated),
            routes!(create_session),
        )
        .add(
            Limit::Class(Class::Unauthenticated),
            routes!(refresh_session),
        )
        .add(Limit::Ip, routes!(me))
        .into()
}
